from imdb_sentiment.serving.state import WORKER_STOPPED, ServingState


class Batcher:
    def __init__(self, alive: bool) -> None:
        self.alive = alive


def test_a_server_serves_only_with_a_live_batcher_and_says_why_not():
    loading = ServingState()
    assert not loading.serving and not loading.started
    assert "loading" in loading.unavailable_reason()
    failed = ServingState(error="models/end_to_end.keras: model not found")
    assert failed.unavailable_reason() == "models/end_to_end.keras: model not found"
    live = ServingState(predictor=object(), batcher=Batcher(alive=True))
    assert live.serving and live.started
    stopped = ServingState(predictor=object(), batcher=Batcher(alive=False))
    assert stopped.started and not stopped.serving
    assert stopped.unavailable_reason() == WORKER_STOPPED

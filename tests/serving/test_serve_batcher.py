"""MicroBatcher with stand-in predictors: cancellation, failures, bounds, deadlines."""

import asyncio
import contextlib

import pytest

from imdb_sentiment.serving import serve
from tests.serving_stubs import BlockingPredictor


async def scoring_started(predictor: BlockingPredictor) -> None:
    assert await asyncio.to_thread(predictor.started.wait, 5)
    predictor.started.clear()


def run(scenario):
    return asyncio.run(asyncio.wait_for(scenario(), 20))


def test_a_request_cancelled_while_scored_does_not_stop_the_batcher():
    async def scenario():
        predictor = BlockingPredictor()
        batcher = serve.MicroBatcher(predictor, 0.5, max_batch=4, max_wait_s=0)
        cancelled = asyncio.create_task(batcher.predict(["a"]))
        await scoring_started(predictor)
        cancelled.cancel()
        predictor.release.set()
        with contextlib.suppress(asyncio.CancelledError):
            await cancelled
        answer = await asyncio.wait_for(batcher.predict(["b"]), 5)
        alive = batcher.alive
        await batcher.close()
        return answer, alive

    answer, alive = run(scenario)
    assert [p.text for p in answer] == ["b"] and alive


def test_the_worker_survives_a_failing_batch_and_its_requests_get_the_error():
    async def scenario():
        predictor = BlockingPredictor(fail=RuntimeError("kernel exploded"), hold=False)
        batcher = serve.MicroBatcher(predictor, 0.5, max_batch=4, max_wait_s=0)
        with pytest.raises(RuntimeError, match="kernel exploded"):
            await batcher.predict(["a"])
        predictor.fail = None
        answer = await asyncio.wait_for(batcher.predict(["b"]), 5)
        await batcher.close()
        return answer

    assert [p.text for p in run(scenario)] == ["b"]


def test_a_stopped_worker_fails_waiting_and_new_requests_at_once():
    async def scenario():
        predictor = BlockingPredictor(fail=asyncio.CancelledError())
        batcher = serve.MicroBatcher(predictor, 0.5, max_batch=1, max_wait_s=0)
        first = asyncio.create_task(batcher.predict(["a"]))
        await scoring_started(predictor)
        queued = asyncio.create_task(batcher.predict(["b"]))
        await asyncio.sleep(0)
        predictor.release.set()
        outcomes = await asyncio.gather(first, queued, return_exceptions=True)
        with pytest.raises(serve.Unavailable, match="worker has stopped"):
            await batcher.predict(["c"])
        return outcomes, batcher.alive

    outcomes, alive = run(scenario)
    assert not alive
    assert all(isinstance(o, serve.Unavailable) for o in outcomes), outcomes


def test_close_fails_the_requests_still_waiting():
    async def scenario():
        predictor = BlockingPredictor()
        batcher = serve.MicroBatcher(predictor, 0.5, max_batch=1, max_wait_s=0)
        scored = asyncio.create_task(batcher.predict(["a"]))
        await scoring_started(predictor)
        waiting = [asyncio.create_task(batcher.predict([t])) for t in "bc"]
        await asyncio.sleep(0)
        await batcher.close()
        predictor.release.set()
        return await asyncio.gather(scored, *waiting, return_exceptions=True)

    outcomes = run(scenario)
    assert all(isinstance(o, serve.Unavailable) for o in outcomes), outcomes


def test_a_request_past_its_deadline_times_out_and_is_never_scored():
    async def scenario():
        predictor = BlockingPredictor()
        batcher = serve.MicroBatcher(predictor, 0.5, max_batch=4, max_wait_s=0)
        first = asyncio.create_task(batcher.predict(["first"]))
        await scoring_started(predictor)
        with pytest.raises(TimeoutError):
            await batcher.predict(["given up"], timeout_s=0.05)
        predictor.release.set()
        await first
        await batcher.predict(["next"])
        await batcher.close()
        return predictor.batches

    assert run(scenario) == [["first"], ["next"]]


def test_queued_reviews_are_bounded():
    async def scenario():
        predictor = BlockingPredictor()
        batcher = serve.MicroBatcher(
            predictor, 0.5, max_batch=4, max_wait_s=0, max_queued_reviews=3
        )
        first = asyncio.create_task(batcher.predict(["being scored"]))
        await scoring_started(predictor)
        queued = asyncio.create_task(batcher.predict(["a", "b", "c"]))
        await asyncio.sleep(0)
        with pytest.raises(serve.Unavailable, match=r"3 reviews queued \(max_queued_reviews 3\)"):
            await batcher.predict(["one too many"])
        predictor.release.set()
        answers = await asyncio.gather(first, queued)
        room_again = await batcher.predict(["x", "y", "z"])
        await batcher.close()
        return answers, room_again, batcher.queued_reviews

    answers, room_again, left = run(scenario)
    assert [[p.text for p in answer] for answer in answers] == [["being scored"], ["a", "b", "c"]]
    assert [p.text for p in room_again] == ["x", "y", "z"] and left == 0


@pytest.mark.parametrize(
    ("job_sizes", "max_batch", "expected"),
    [
        ([3, 4], 4, [3, 4]),  # 7 reviews would overshoot: the second job starts a new batch
        ([1, 2, 1, 3], 4, [4, 3]),
        ([2, 2, 2], 4, [4, 2]),
        ([5, 1], 4, [5, 1]),  # a job larger than max_batch (the UI never sends one) goes alone
    ],
)
def test_batches_never_exceed_max_batch(job_sizes, max_batch, expected):
    async def scenario():
        predictor = BlockingPredictor(hold=False)
        batcher = serve.MicroBatcher(predictor, 0.5, max_batch=max_batch, max_wait_s=0.05)
        jobs = [[f"{n}-{i}" for i in range(size)] for n, size in enumerate(job_sizes)]
        answers = await asyncio.gather(*(batcher.predict(job) for job in jobs))
        await batcher.close()
        return jobs, answers, [len(batch) for batch in predictor.batches]

    jobs, answers, sizes = run(scenario)
    assert [[p.text for p in answer] for answer in answers] == jobs and sizes == expected


class RecordingPredictor:
    """Stands in for Predictor: records the size of each batch it is asked to score."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def predict(self, reviews: list[str], threshold: float) -> list[str]:
        self.batches.append(len(reviews))
        return list(reviews)


@pytest.mark.parametrize(("max_wait_s", "expected"), [(0.05, [3]), (0.0, [1, 1, 1])])
def test_micro_batcher_gathers_requests_that_arrive_within_the_wait(max_wait_s, expected):
    async def three_staggered_requests() -> tuple[list, list[int]]:
        predictor = RecordingPredictor()
        batcher = serve.MicroBatcher(predictor, 0.5, max_batch=8, max_wait_s=max_wait_s)

        async def request(text: str, delay: float) -> list:
            await asyncio.sleep(delay)
            return await batcher.predict([text])

        results = await asyncio.gather(*(request(t, 0.01 * i) for i, t in enumerate("abc")))
        await batcher.close()
        return results, predictor.batches

    results, batches = asyncio.run(three_staggered_requests())
    assert results == [["a"], ["b"], ["c"]] and batches == expected


def test_micro_batcher_stops_gathering_at_max_batch():
    async def five_requests_at_once() -> list[int]:
        predictor = RecordingPredictor()
        batcher = serve.MicroBatcher(predictor, 0.5, max_batch=2, max_wait_s=0.05)
        await asyncio.gather(*(batcher.predict([t]) for t in "abcde"))
        await batcher.close()
        return predictor.batches

    assert asyncio.run(five_requests_at_once()) == [2, 2, 1]

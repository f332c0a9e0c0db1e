import concurrent.futures
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from imdb_sentiment.serving import cli
from tests.conftest import free_port
from tests.serving_stubs import sample


@pytest.fixture(scope="module")
def model(pipeline_run):
    return str(pipeline_run / "models/end_to_end.keras")


def run(capsys, *args):
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_predict_texts_as_table(capsys, model):
    code, out, _ = run(capsys, "predict", "An instant classic.", "Dull.", "--model", model)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["label", "p(positive)", "confidence"]
    assert len(lines) == 4 and lines[2].endswith("An instant classic.")


def test_json_and_csv_formats(capsys, model):
    _, out, _ = run(capsys, "predict", "Great!", "--model", model, "--format", "json")
    [row] = json.loads(out)
    assert set(row) == {"text", "label", "probability_positive", "confidence", "known_words"}
    _, out, _ = run(capsys, "predict", "Great!", "--model", model, "--format", "csv")
    assert out.splitlines()[0] == "text,label,probability_positive,confidence,known_words"


def test_a_review_with_no_known_words_is_flagged(capsys, model):
    code, out, err = run(capsys, "predict", "great film", "!!! ???", "--model", model)
    assert code == 0 and out.splitlines()[0].split()[3] == "known"
    assert [line.split()[3] for line in out.splitlines()[2:]] == ["2", "0"]
    assert err.strip() == "sentiment: warning: review 2: " + (
        "no word of this review is in the model's vocabulary: the label is a guess"
    )


@pytest.mark.parametrize(
    ("threshold", "label"), [("0.000001", "positive"), ("0.999999", "negative")]
)
def test_threshold_changes_the_label_both_ways(capsys, model, threshold, label):
    _, out, _ = run(
        capsys, "predict", "ok", "--model", model, "--format", "json", "--threshold", threshold
    )
    assert json.loads(out)[0]["label"] == label


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("reviews.txt", "Great film\n\nAwful film\n"),
        ("reviews.csv", 'id,text\n1,Great film\n2,"Awful, film"\n'),
        ("reviews.jsonl", '{"text": "Great film"}\n"Awful film"\n'),
    ],
)
def test_batch_files(capsys, model, tmp_path, name, content):
    (tmp_path / name).write_text(content)
    code, out, _ = run(
        capsys, "predict", "--file", str(tmp_path / name), "--model", model, "--format", "json"
    )
    assert code == 0 and len(json.loads(out)) == 2


def test_stdin(capsys, model, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("Great film\nAwful film\n"))
    code, out, _ = run(capsys, "predict", "--file", "-", "--model", model, "--format", "json")
    assert code == 0 and [r["text"] for r in json.loads(out)] == ["Great film", "Awful film"]


def test_dash_argument_reads_stdin_in_place(capsys, model, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("Great film\nAwful film\n"))
    code, out, _ = run(capsys, "predict", "first", "-", "--model", model, "--format", "json")
    assert code == 0 and [r["text"] for r in json.loads(out)] == [
        "first",
        "Great film",
        "Awful film",
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["predict", "x", "--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
        (["predict", "x", "--batch-size", "two"], "--batch-size: invalid integer value: 'two'"),
        (["serve", "--port", "99999"], "--port: must be between 0 and 65535, got 99999"),
        (["serve", "--max-text-chars", "0"], "--max-text-chars: must be at least 1, got 0"),
        (["serve", "--max-batch", "-1"], "--max-batch: must be at least 1, got -1"),
        (["serve", "--max-body-bytes", "0"], "--max-body-bytes: must be at least 1, got 0"),
        (["serve", "--batch-wait-ms", "-2"], "--batch-wait-ms: must be 0 or more, got -2"),
        (["serve", "--workers", "0"], "--workers: must be at least 1, got 0"),
    ],
)
def test_bad_numeric_options_are_rejected_by_name(capsys, arguments, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(arguments)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_progress_on_long_input(capsys, model, monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "PROGRESS_THRESHOLD", 3)
    (tmp_path / "many.txt").write_text("good film\n" * 5)
    code, out, err = run(
        capsys,
        "predict",
        "--file",
        str(tmp_path / "many.txt"),
        "--model",
        model,
        "--batch-size",
        "2",
    )
    assert code == 0 and "predicting" in err and len(out.splitlines()) == 7


def test_missing_model_exit_code_and_message(capsys, tmp_path):
    code, _, err = run(capsys, "predict", "x", "--model", str(tmp_path / "none.keras"))
    assert code == 1 and "run `dvc repro` first" in err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("absent.txt", None, "cannot read"),
        ("bad.csv", "id,review\n1,x\n", "no 'text' column"),
        ("bad.jsonl", '{"text": "ok"}\n{oops\n', "bad.jsonl:2: not JSON"),
        ("latin1.txt", b"caf\xe9\n", "cannot read"),
    ],
)
def test_unreadable_inputs(capsys, model, tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    code, _, err = run(capsys, "predict", "--file", str(path), "--model", model)
    assert code == 2 and message in err


def test_no_input_is_an_error(capsys, model):
    code, _, err = run(capsys, "predict", "--model", model)
    assert code == 2 and "no reviews given" in err


def test_bad_threshold_is_rejected(capsys, model):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["predict", "x", "--model", model, "--threshold", "1.5"])
    assert (
        exit_info.value.code == 2 and "threshold must be between 0 and 1" in capsys.readouterr().err
    )


def test_console_script_is_installed():
    # pip puts console scripts beside the interpreter of the environment it installs into.
    executable = shutil.which("sentiment", path=str(Path(sys.executable).parent))
    assert executable, "no `sentiment` console script beside python; pip install -e ."
    result = subprocess.run([executable, "predict", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--format" in result.stdout


def test_serve_passes_its_options_to_the_app_and_uvicorn(monkeypatch):
    import uvicorn

    from imdb_sentiment.serving import serve

    settings, options = [], []
    monkeypatch.setattr(serve, "create_app", settings.append)
    monkeypatch.setattr(uvicorn, "run", lambda app, **given: options.append(given))
    argv = ["serve", "--no-ui", "--no-access-log", "--batch-wait-ms", "5", "--port", "8123"]
    assert cli.main(argv) == 0 and cli.main(["serve"]) == 0
    assert settings[0].ui is False and settings[0].batch_wait_ms == 5.0
    assert options[0]["port"] == 8123 and settings[0].access_log is False
    assert settings[1].ui is True and settings[1].batch_wait_ms == 2.0
    assert options[1]["port"] == 8000 and settings[1].access_log is True
    # The app writes the access log (JSON, with request ids); uvicorn's own plain one is off.
    assert options[0]["access_log"] is options[1]["access_log"] is False


def test_a_bad_row_stops_the_command_before_any_prediction_is_written(capsys, model, tmp_path):
    (tmp_path / "reviews.jsonl").write_text('{"text": "fine"}\n' * 5 + "{oops\n")
    code, out, err = run(
        capsys, "predict", "--file", str(tmp_path / "reviews.jsonl"), "--model", model
    )
    assert code == 2 and out == "" and "reviews.jsonl:6: not JSON" in err


def test_jsonl_output_is_one_object_per_review_written_batch_by_batch(capsys, model, tmp_path):
    (tmp_path / "many.txt").write_text("".join(f"film number {i}\n" for i in range(7)))
    arguments = ["predict", "--file", str(tmp_path / "many.txt"), "--model", model]
    code, out, _ = run(capsys, *arguments, "--format", "jsonl", "--batch-size", "3")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [row["text"] for row in rows] == [f"film number {i}" for i in range(7)]


def test_a_long_csv_field_is_read_and_an_oversized_one_is_named_with_its_row(
    capsys, model, tmp_path, monkeypatch
):
    path = tmp_path / "long.csv"
    path.write_text("text\nshort\n" + "word " * 40_000 + "\n")  # 200 kB: over csv's default
    code, out, _ = run(capsys, "predict", "--file", str(path), "--model", model, "--format", "json")
    assert code == 0 and len(json.loads(out)) == 2
    previous = csv.field_size_limit(1_000)
    try:
        code, out, err = run(capsys, "predict", "--file", str(path), "--model", model)
    finally:
        csv.field_size_limit(previous)
    assert code == 2 and out == "" and "long.csv: row 2: not readable as CSV" in err


def test_the_table_strips_terminal_escape_sequences(capsys, model):
    code, out, _ = run(capsys, "predict", "evil \x1b[2J\x1b]0;title\x07 film", "--model", model)
    assert code == 0 and "\x1b" not in out and "\x07" not in out and "evil" in out


def test_a_model_sha256_pin_refuses_another_file(capsys, model):
    code, _, err = run(capsys, "predict", "x", "--model", model, "--model-sha256", "0" * 64)
    assert code == 1 and "not the expected" in err


def test_several_workers_start_from_the_app_factory_and_too_many_are_warned_of(capsys, monkeypatch):
    import uvicorn

    from imdb_sentiment.serving import serve

    options = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **given: options.append((app, given)))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "environ", dict(os.environ))
    assert cli.main(["serve", "--workers", "3", "--max-batch", "7"]) == 0
    app, given = options[0]
    assert app == "imdb_sentiment.serving.serve:app_from_environment" and given["factory"] is True
    assert given["workers"] == 3
    # uvicorn's 5 s default would kill each worker while it loads the model, for ever
    assert given["timeout_worker_healthcheck"] == 120
    assert "--workers 3 is more than this machine's 2 CPUs" in capsys.readouterr().err
    settings = json.loads(os.environ[serve.SETTINGS_VARIABLE])
    assert settings["max_batch"] == 7
    assert settings["serve_while_loading"] is False  # a loading worker takes no requests
    assert cli.main(["serve", "--workers", "2"]) == 0 and capsys.readouterr().err == ""


@pytest.mark.integration
def test_two_worker_processes_each_load_the_model_and_answer(model):
    port = free_port()
    command = ["sentiment", "serve", "--workers", "2", "--no-ui", "--no-access-log"]
    server = subprocess.Popen(
        [*command, "--model", model, "--host", "127.0.0.1", "--port", str(port)],
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not _ready(base):
            assert server.poll() is None and time.monotonic() < deadline, "never ready"
            time.sleep(0.2)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: _score(base, f"review {i} was great"), range(64)))
        # Served from the first ready worker while the other may still load: no 503s
        assert answers == [200] * 64
        workers = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        assert len(workers) >= 2  # uvicorn's two workers (and its resource tracker, if any)
        answering = _pids_answering_health(base, wanted=2, deadline=time.monotonic() + 120)
        assert len(answering) == 2 and answering <= {int(pid) for pid in workers}
        # Whichever worker answers /metrics, it counts every worker's requests
        # (prometheus-client's multiprocess mode), and each worker's loaded model once.
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        served = sample(metrics, "sentiment_requests_total", route="/predict", status="200")
        assert served == 64
        models = [s for f in text_string_to_metric_families(metrics) for s in f.samples
                  if s.name == "sentiment_model_info"]  # fmt: skip
        assert {int(s.labels["pid"]) for s in models} == answering
    finally:
        server.terminate()
        server.wait(60)


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _pids_answering_health(base: str, wanted: int, deadline: float) -> set[int]:
    """The worker processes seen answering /health with a loaded model, on fresh connections."""
    pids: set[int] = set()
    while len(pids) < wanted and time.monotonic() < deadline:
        health = httpx.get(f"{base}/health", timeout=10).json()
        assert health["status"] == "ok", health  # a worker answers only once it has the model
        pids.add(health["pid"])
    return pids


def _score(base: str, review: str) -> int:
    return httpx.post(f"{base}/predict", json={"text": review}, timeout=30).status_code

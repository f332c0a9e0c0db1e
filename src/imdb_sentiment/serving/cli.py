"""`sentiment`: predict from the command line, or serve the REST API and web UI."""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from imdb_sentiment.serving.predict import (
    DEFAULT_MODEL,
    NO_KNOWN_WORDS,
    ModelError,
    Prediction,
    check_threshold,
)

PROGRESS_THRESHOLD = 2048  # reviews; below this a progress bar is noise


class InputError(ValueError):
    """An input file or stream that cannot be read as reviews."""


CSV_FIELD_LIMIT = 16 * 2**20  # characters: a review far beyond the API's limit, not a whole file
csv.field_size_limit(CSV_FIELD_LIMIT)
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0/C1: terminal escapes among them


def iter_reviews(source: str, column: str = "text") -> Iterator[str]:
    """Reviews, one at a time, from a .txt (one per line), .csv (a text column) or .jsonl
    file, or '-' (stdin, one per line); blank ones are skipped."""
    if source == "-":
        yield from _non_empty(line.rstrip("\r\n") for line in sys.stdin)
        return
    path = Path(source)
    suffix = path.suffix.lower()
    try:
        with open(path, encoding="utf-8", newline="" if suffix == ".csv" else None) as stream:
            if suffix == ".csv":
                yield from _from_csv(path, stream, column)
            elif suffix == ".jsonl":
                yield from _from_jsonl(path, stream, column)
            else:
                yield from _non_empty(line.rstrip("\n") for line in stream)
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read {path}: {error}") from error


def _non_empty(lines: Iterable[str]) -> Iterator[str]:
    return (line for line in lines if line.strip())


def _from_csv(path: Path, stream: TextIO, column: str) -> Iterator[str]:
    reader = csv.DictReader(stream)
    try:
        if column not in (reader.fieldnames or []):
            raise InputError(f"{path}: no '{column}' column (columns: {reader.fieldnames})")
        for row in reader:
            if (row.get(column) or "").strip():
                yield row[column]
    except csv.Error as error:
        row_number = reader.line_num  # lines read, header included: the failing data row's number
        raise InputError(f"{path}: row {row_number}: not readable as CSV: {error}") from error


def _from_jsonl(path: Path, stream: TextIO, column: str) -> Iterator[str]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}:{number}: not JSON: {error}") from error
        value = record.get(column) if isinstance(record, dict) else record
        if not isinstance(value, str):
            raise InputError(f"{path}:{number}: expected a string or an object with '{column}'")
        if value.strip():
            yield value


class PredictionWriter:
    """Writes predictions to ``stream`` as they come: a table, CSV, a JSON array or JSON lines
    (the one to pick for large inputs: each line stands alone)."""

    FIELDS = ("text", "label", "probability_positive", "confidence", "known_words")

    def __init__(self, style: str, stream: TextIO) -> None:
        self.style, self.stream, self.count = style, stream, 0
        if style == "table":
            header = f"{'label':<9} {'p(positive)':>11} {'confidence':>10} {'known':>6}  text"
            stream.write(f"{header}\n{'-' * len(header)}\n")
        elif style == "csv":
            self.csv = csv.DictWriter(stream, fieldnames=self.FIELDS, lineterminator="\n")
            self.csv.writeheader()
        elif style == "json":
            stream.write("[")

    def write(self, predictions: Sequence[Prediction]) -> None:
        for prediction in predictions:
            row = prediction.as_dict()
            if self.style == "table":
                self.stream.write(_table_row(prediction) + "\n")
            elif self.style == "csv":
                self.csv.writerow(row)
            elif self.style == "json":
                separator = "," if self.count else ""
                self.stream.write(f"{separator}\n  {json.dumps(row, ensure_ascii=False)}")
            else:
                self.stream.write(json.dumps(row, ensure_ascii=False) + "\n")
            self.count += 1
        self.stream.flush()

    def close(self) -> None:
        if self.style == "json":
            self.stream.write("\n]\n")


def _table_row(p: Prediction) -> str:
    snippet = " ".join(CONTROL_CHARACTERS.sub(" ", p.text).split())
    snippet = snippet if len(snippet) <= 60 else snippet[:57] + "..."
    return (
        f"{p.label:<9} {p.probability_positive:>11.4f} {p.confidence:>10.4f} "
        f"{p.known_words:>6}  {snippet}"
    )


def warn_unknown(predictions: Sequence[Prediction], first_number: int = 1) -> None:
    """A line on stderr for each review the model knows no word of."""
    for number, prediction in enumerate(predictions, start=first_number):
        if prediction.known_words == 0:
            print(f"sentiment: warning: review {number}: {NO_KNOWN_WORDS}", file=sys.stderr)


def predict_command(args: argparse.Namespace) -> int:
    # A file is read through once before any output, so a bad row stops the command before a
    # single prediction is written; its reviews are then streamed, a batch at a time.
    total = sum(1 for _ in iter_reviews(args.file, args.column)) if _rereadable(args.file) else None
    if not args.texts and (args.file is None or total == 0):
        raise InputError("no reviews given: pass text arguments, --file PATH, or - for stdin")
    from imdb_sentiment.serving.predict import Predictor  # TensorFlow loads only when needed

    predictor = Predictor.load(model_file(args), args.batch_size, args.model_sha256)
    reviews = _all_reviews(args.texts, args.file, args.column)
    batches = _batches(reviews, args.batch_size)
    known_count = (total or 0) + len(args.texts)
    if known_count >= PROGRESS_THRESHOLD:
        from tqdm import tqdm

        expected = -(-known_count // args.batch_size)
        batches = tqdm(batches, desc="predicting", unit=" batches", total=expected, file=sys.stderr)
    writer, done = PredictionWriter(args.format, sys.stdout), 0
    for batch in batches:
        predictions = predictor.predict(batch, args.threshold)
        warn_unknown(predictions, done + 1)
        writer.write(predictions)
        done += len(batch)
    writer.close()
    if done == 0:
        raise InputError("no reviews given: the input held only blank lines")
    return 0


def _rereadable(source: str | None) -> bool:
    return source is not None and source != "-"


def _all_reviews(texts: Sequence[str], source: str | None, column: str) -> Iterator[str]:
    for text in texts:  # a lone "-" means stdin, as for --file
        yield from iter_reviews("-") if text == "-" else [text]
    if source is not None:
        yield from iter_reviews(source, column)


def _batches(reviews: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for review in reviews:
        batch.append(review)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def model_file(args: argparse.Namespace) -> Path:
    """--model as a file: the path, or what its registry reference points to."""
    from imdb_sentiment.serving import registry

    try:
        return registry.resolve(args.model, args.registry)
    except registry.RegistryError as error:
        raise ModelError(str(error)) from error


SERVER_LIMITS = (
    "max_text_chars",
    "max_batch",
    "max_body_bytes",
    "batch_wait_ms",
    "max_queued_reviews",
    "request_timeout_s",
    "max_connections",
    "worker_healthcheck_s",
)


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from imdb_sentiment.serving import telemetry
    from imdb_sentiment.serving.request_log import log_to_stderr
    from imdb_sentiment.serving.serve import (
        ServerSettings,
        create_app,
        settings_to_environment,
        uvicorn_options,
    )

    settings = ServerSettings(
        model_path=model_file(args),
        model_sha256=args.model_sha256,
        threshold=args.threshold,
        # The limits a user left out take ServerSettings' defaults, defined there only.
        **{name: getattr(args, name) for name in SERVER_LIMITS if hasattr(args, name)},
        serve_while_loading=args.workers == 1,
        ui=not args.no_ui,
        access_log=not args.no_access_log,
        metrics=not args.no_metrics,
    )
    cpus = os.cpu_count() or 1
    if args.workers > cpus:
        print(
            f"serve: warning: --workers {args.workers} is more than this machine's {cpus} CPUs;"
            " the extra workers compete for them and add memory, not throughput",
            file=sys.stderr,
        )
    # One process: the app object. Several: uvicorn starts each worker from an import string,
    # and each builds its own app (loading and verifying the model) from the environment.
    app: object = (
        create_app(settings)
        if args.workers == 1
        else "imdb_sentiment.serving.serve:app_from_environment"
    )
    log_to_stderr()
    if args.workers > 1:
        os.environ.update(settings_to_environment(settings))
        # Before the workers import prometheus-client: each then writes its metrics there.
        folder = os.environ.get(telemetry.MULTIPROCESS_DIR) or tempfile.mkdtemp(prefix="metrics-")
        telemetry.prepare_multiprocess_dir(Path(folder))
    uvicorn.run(
        app,
        factory=args.workers > 1,
        workers=args.workers,
        host=args.host,
        port=args.port,
        log_level="info",
        access_log=False,  # the app logs each request as JSON instead (request_log.py)
        **uvicorn_options(settings),
    )
    return 0


def _int_between(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high], named in the error if it is not."""

    def parse(value: str) -> int:
        number = int(value)
        if number < low or (high is not None and number > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return number

    parse.__name__ = "integer"  # argparse names the type in "invalid integer value: 'x'"
    return parse


def _non_negative(value: str) -> float:
    number = float(value)
    if not number >= 0.0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return number


def _positive(value: str) -> float:
    number = float(value)
    if not number > 0.0:
        raise argparse.ArgumentTypeError(f"must be over 0, got {value}")
    return number


def _threshold(value: str) -> float:
    number = float(value)
    try:
        check_threshold(number)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sentiment", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--model",
        default=str(DEFAULT_MODEL),
        help="end-to-end .keras model: a path, or a registry reference such as "
        "sentiment-model#prod or sentiment-model@v1.0.0 (fetched with dvc artifacts get)",
    )
    common.add_argument(
        "--registry",
        default=".",
        help="with a registry reference: the git repository (path or URL) whose GTO tags "
        "and DVC remote hold the model (default: this one)",
    )
    common.add_argument("--threshold", type=_threshold, default=0.5, help="P(positive) cut-off")
    common.add_argument(
        "--model-sha256", help="refuse to load a model file whose sha256 is not this one"
    )

    predict = commands.add_parser("predict", parents=[common], help="classify reviews")
    predict.add_argument("texts", nargs="*", help="review texts; - reads stdin, one per line")
    predict.add_argument("--file", help="a .txt, .csv or .jsonl file of reviews, or - for stdin")
    predict.add_argument("--column", default="text", help="text column/key in .csv/.jsonl")
    predict.add_argument(
        "--format",
        choices=["table", "json", "jsonl", "csv"],
        default="table",
        help="jsonl: one JSON object per line, written as each batch is scored (large inputs)",
    )
    predict.add_argument("--batch-size", type=_int_between(1), default=256)
    predict.set_defaults(handler=predict_command)

    serve = commands.add_parser("serve", parents=[common], help="REST API and web UI")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_int_between(0, 65535), default=8000, help="0: any free port")
    limits = serve.add_argument_group("limits", "default: ServerSettings' (docs/serving.md)")
    limits.add_argument("--max-text-chars", type=_int_between(1), default=argparse.SUPPRESS)
    limits.add_argument("--max-batch", type=_int_between(1), default=argparse.SUPPRESS)
    limits.add_argument("--max-body-bytes", type=_int_between(1), default=argparse.SUPPRESS)
    limits.add_argument(
        "--batch-wait-ms",
        type=_non_negative,
        default=argparse.SUPPRESS,
        help="how long a micro-batch waits for concurrent requests to join it",
    )
    limits.add_argument(
        "--max-queued-reviews",
        type=_int_between(1),
        default=argparse.SUPPRESS,
        help="reviews waiting to be scored before new requests get 503 + Retry-After",
    )
    limits.add_argument(
        "--request-timeout-s",
        type=_positive,
        default=argparse.SUPPRESS,
        help="seconds a request waits for its answer before 504",
    )
    limits.add_argument(
        "--max-connections",
        type=_int_between(1),
        default=argparse.SUPPRESS,
        help="open connections uvicorn accepts before answering 503",
    )
    serve.add_argument(
        "--workers",
        type=_int_between(1),
        default=1,
        help="server processes, each loading the model (a warning above the CPU count)",
    )
    limits.add_argument(
        "--worker-healthcheck-s",
        type=_int_between(1),
        default=argparse.SUPPRESS,
        help="with --workers: seconds a worker may take to answer uvicorn's ping (model loading)",
    )
    serve.add_argument("--no-ui", action="store_true", help="API only, without the Gradio UI")
    serve.add_argument(
        "--no-access-log", action="store_true", help="do not log a JSON line per request"
    )
    serve.add_argument("--no-metrics", action="store_true", help="no Prometheus /metrics")
    serve.set_defaults(handler=serve_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (InputError, ModelError) as error:
        print(f"sentiment: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, InputError) else 1


if __name__ == "__main__":
    sys.exit(main())

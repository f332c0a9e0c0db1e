"""`sentiment`: predict from the command line, or serve the REST API and web UI."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from imdb_sentiment.predict import (
    DEFAULT_MODEL,
    NO_KNOWN_WORDS,
    ModelError,
    Prediction,
    check_threshold,
)

PROGRESS_THRESHOLD = 2048  # reviews; below this a progress bar is noise


class InputError(ValueError):
    """An input file or stream that cannot be read as reviews."""


def read_reviews(source: str, column: str = "text") -> list[str]:
    """Reviews from a .txt (one per line), .csv (a text column) or .jsonl file, or '-' (stdin)."""
    if source == "-":
        return _non_empty(sys.stdin.read().splitlines())
    path = Path(source)
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read {path}: {error}") from error
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _from_csv(path, content, column)
    if suffix == ".jsonl":
        return _from_jsonl(path, content, column)
    return _non_empty(content.splitlines())


def _non_empty(lines: Sequence[str]) -> list[str]:
    return [line for line in lines if line.strip()]


def _from_csv(path: Path, content: str, column: str) -> list[str]:
    reader = csv.DictReader(io.StringIO(content))
    if column not in (reader.fieldnames or []):
        raise InputError(f"{path}: no '{column}' column (columns: {reader.fieldnames})")
    return _non_empty([row[column] or "" for row in reader])


def _from_jsonl(path: Path, content: str, column: str) -> list[str]:
    reviews = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}:{number}: not JSON: {error}") from error
        value = record.get(column) if isinstance(record, dict) else record
        if not isinstance(value, str):
            raise InputError(f"{path}:{number}: expected a string or an object with '{column}'")
        reviews.append(value)
    return _non_empty(reviews)


def format_predictions(predictions: Sequence[Prediction], style: str) -> str:
    rows = [p.as_dict() for p in predictions]
    if style == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False)
    if style == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    header = f"{'label':<9} {'p(positive)':>11} {'confidence':>10} {'known':>6}  text"
    lines = [header, "-" * len(header)]
    for p in predictions:
        snippet = " ".join(p.text.split())
        snippet = snippet if len(snippet) <= 60 else snippet[:57] + "..."
        lines.append(
            f"{p.label:<9} {p.probability_positive:>11.4f} {p.confidence:>10.4f} "
            f"{p.known_words:>6}  {snippet}"
        )
    return "\n".join(lines)


def warn_unknown(predictions: Sequence[Prediction], first_number: int = 1) -> None:
    """A line on stderr for each review the model knows no word of."""
    for number, prediction in enumerate(predictions, start=first_number):
        if prediction.known_words == 0:
            print(f"sentiment: warning: review {number}: {NO_KNOWN_WORDS}", file=sys.stderr)


def predict_command(args: argparse.Namespace) -> int:
    reviews = []
    for text in args.texts:  # a lone "-" means stdin, as for --file
        reviews += read_reviews("-") if text == "-" else [text]
    if args.file:
        reviews += read_reviews(args.file, args.column)
    if not reviews:
        raise InputError("no reviews given: pass text arguments, --file PATH, or - for stdin")
    from imdb_sentiment.predict import Predictor  # TensorFlow loads only when needed

    predictor = Predictor.load(args.model, args.batch_size)
    predictions = []
    chunks = range(0, len(reviews), args.batch_size)
    if len(reviews) >= PROGRESS_THRESHOLD:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc="predicting", unit=" batches", file=sys.stderr)
    for start in chunks:
        predictions += predictor.predict(reviews[start : start + args.batch_size], args.threshold)
    warn_unknown(predictions)
    print(format_predictions(predictions, args.format))
    return 0


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from imdb_sentiment.serve import ServerSettings, create_app, uvicorn_options

    settings = ServerSettings(
        model_path=Path(args.model),
        threshold=args.threshold,
        max_text_chars=args.max_text_chars,
        max_batch=args.max_batch,
        max_body_bytes=args.max_body_bytes,
        batch_wait_ms=args.batch_wait_ms,
        max_queued_reviews=args.max_queued_reviews,
        request_timeout_s=args.request_timeout_s,
        max_connections=args.max_connections,
        ui=not args.no_ui,
    )
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level="info",
        access_log=not args.no_access_log,
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
    common.add_argument("--model", default=str(DEFAULT_MODEL), help="end-to-end .keras model")
    common.add_argument("--threshold", type=_threshold, default=0.5, help="P(positive) cut-off")

    predict = commands.add_parser("predict", parents=[common], help="classify reviews")
    predict.add_argument("texts", nargs="*", help="review texts; - reads stdin, one per line")
    predict.add_argument("--file", help="a .txt, .csv or .jsonl file of reviews, or - for stdin")
    predict.add_argument("--column", default="text", help="text column/key in .csv/.jsonl")
    predict.add_argument("--format", choices=["table", "json", "csv"], default="table")
    predict.add_argument("--batch-size", type=_int_between(1), default=256)
    predict.set_defaults(handler=predict_command)

    serve = commands.add_parser("serve", parents=[common], help="REST API and web UI")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_int_between(0, 65535), default=8000, help="0: any free port")
    serve.add_argument("--max-text-chars", type=_int_between(1), default=20_000)
    serve.add_argument("--max-batch", type=_int_between(1), default=256)
    serve.add_argument("--max-body-bytes", type=_int_between(1), default=2_000_000)
    serve.add_argument(
        "--batch-wait-ms",
        type=_non_negative,
        default=2.0,
        help="how long a micro-batch waits for concurrent requests to join it",
    )
    serve.add_argument(
        "--max-queued-reviews",
        type=_int_between(1),
        default=4096,
        help="reviews waiting to be scored before new requests get 503 + Retry-After",
    )
    serve.add_argument(
        "--request-timeout-s",
        type=_positive,
        default=10.0,
        help="seconds a request waits for its answer before 504",
    )
    serve.add_argument(
        "--max-connections",
        type=_int_between(1),
        default=512,
        help="open connections uvicorn accepts before answering 503",
    )
    serve.add_argument("--no-ui", action="store_true", help="API only, without the Gradio UI")
    serve.add_argument("--no-access-log", action="store_true", help="do not log a line per request")
    serve.set_defaults(handler=serve_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (InputError, ModelError) as error:
        print(f"sentiment: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, InputError) else 1


if __name__ == "__main__":
    sys.exit(main())

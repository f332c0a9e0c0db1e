"""The params.yaml schema: one pydantic model per section, each key with its type, range and
what it does. Stages validate their section against it before any work (:mod:`params`), and
the parameter reference, docs/parameters.md, is generated from it
(``python -m imdb_sentiment.schema > docs/parameters.md``; a test keeps the two equal).

A key marked ``engine`` only chooses how the work is computed: changing it leaves the model
and the metrics the same, to float rounding.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

SHA256_PATTERN = r"[0-9a-fA-F]{64}"  # a sha256 hex digest, wherever one is read
Sha256 = Annotated[str, Field(pattern=f"^{SHA256_PATTERN}$")]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
Rate = Annotated[float, Field(ge=0.0, lt=1.0)]
Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]
ENGINE = {"engine": True}  # json_schema_extra of a key that never changes the model


def _each_once(seeds: list[int]) -> list[int]:
    if len(set(seeds)) != len(seeds):
        raise ValueError("names a seed twice")
    return seeds


class Section(BaseModel):
    """A section of params.yaml: every key required, none unknown, no type coercion."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class DownloadParams(Section):
    """``download``: where the reviews come from. The keys after ``format`` are for
    ``format: table`` only (docs/own-data.md) and null otherwise."""

    url: str = Field(
        description="http(s) URL, local path or `file://` URL of `aclImdb_v1.tar.gz`, or with "
        "`format: table` of your training file; `IMDB_ARCHIVE` overrides it for the archive"
    )
    sha256: Sha256 = Field(description="expected sha256 of that file")
    format: Literal["aclimdb", "table"] = Field(
        description="`aclimdb`, or `table`: a CSV, JSON-lines or Parquet file "
        "([own-data.md](own-data.md))"
    )
    text_column: str | None = Field(description="with `table`: the column of texts")
    label_column: str | None = Field(description="with `table`: the column of labels")
    positive_labels: list | None = Field(
        description="with `table`: label values that mean positive, compared as text "
        '(`1`, `1.0` and `"1"` are one value)'
    )
    negative_labels: list | None = Field(
        description="with `table`: label values that mean negative"
    )
    label_threshold: float | None = Field(
        description="with `table`, instead of the lists: numeric labels at or above it are positive"
    )
    group_column: str | None = Field(
        description="with `table`: kept on one side of the test and validation splits "
        "(null: rows split one by one, stratified)"
    )
    test_url: str | None = Field(description="with `table`: a second file as the test set ...")
    test_sha256: Sha256 | None = Field(description="... and its sha256")
    test_fraction: Fraction | None = Field(
        description="... or this fraction of the one file, split off by groups and "
        "stratified by label"
    )
    test_seed: Count | None = Field(description="seed of that split (null: 42)")
    empty_texts: Literal["drop", "error"] | None = Field(
        description="`drop` (null) counts and skips empty or whitespace-only texts; `error` "
        "refuses the file"
    )

    def table_keys(self) -> list[str]:
        names = list(type(self).model_fields)
        return names[names.index("format") + 1 :]


class PreprocessParams(Section):
    """``preprocess``: cleaning, vocabulary, encoding and the validation split."""

    vocab_size: Annotated[int, Field(ge=3)] = Field(
        description="embedding rows, including padding (0) and out-of-vocabulary (1)"
    )
    max_length: Positive = Field(
        description="tokens kept per review (the median review has ~230, the 90th percentile ~450)"
    )
    padding: Literal["pre", "post"] = Field(
        description="`pre` or `post` (padding is masked, so this does not change results)"
    )
    truncating: Literal["pre", "post"] = Field(
        description="`pre` keeps a long review's ending, where the verdict usually is; "
        "`post` its beginning"
    )
    validation_fraction: Fraction = Field(
        description="share of the training reviews held out, by whole movies, for early "
        "stopping, calibration and the validation figures"
    )
    seed: Count = Field(description="seed of the validation split")
    lowercase: bool = Field(description="lowercase the text")
    strip_html: bool = Field(description="replace `<br />` tags with spaces")
    strip_punctuation: bool = Field(
        description="replace punctuation with spaces (keeps in-word apostrophes)"
    )


class LinearBaselineParams(Section):
    """``linear_baseline``: the NB-weighted logistic regression every LSTM figure is
    compared with, and whose out-of-fold scores the student may learn from."""

    ngram_max: Annotated[int, Field(ge=1, le=3)] = Field(
        description="features: binary word 1..n-grams of the cleaned text (the LSTM's cleaning)"
    )
    C: float = Field(  # noqa: N815 (scikit-learn's name)
        gt=0.0, description="inverse L2 strength of the logistic regression (scikit-learn's `C`)"
    )
    nb_alpha: float = Field(
        gt=0.0,
        description="smoothing of the naive-Bayes log-count ratio that scales each n-gram "
        "(Wang & Manning 2012)",
    )
    folds: Annotated[int, Field(ge=2)] = Field(
        description="the training reviews are also scored out-of-fold (each by a model fitted "
        "on the other folds), for `train.linear_teacher_weight`"
    )
    seed: Count = Field(description="seed of those folds")


class TeachersParams(Section):
    """``teachers``: which teacher stages run. Only dvc.yaml's ``matrix:`` and the train
    stage read it, so adding a seed trains only the new teacher."""

    seeds: Annotated[list[Count], AfterValidator(_each_once)] = Field(
        description="one `teacher@<seed>` stage per seed, each training one teacher from that "
        "seed; the student learns their average P(positive). `[]`: no teachers, the student "
        "learns the labels (blended with the linear baseline's scores)"
    )


class NetworkParams(Section):
    """``teacher``: each LSTM teacher, trained on the labels and never served. Its keys are
    the first keys of ``train`` too, and mean the same for the student."""

    embedding_dim: Positive = Field(description="embedding size")
    lstm_units: Positive = Field(description="units per LSTM direction")
    lstm_layers: Positive = Field(description="stacked LSTM layers")
    bidirectional: bool = Field(description="wrap each LSTM in `Bidirectional`")
    lstm_kernel: Literal["hoisted", "keras"] = Field(
        description="`hoisted`: the LSTMs train on a compiled CPU loop "
        "(`imdb_sentiment.training.hoisted_lstm`, tested against Keras; "
        "[benchmarks](benchmarks.md)); `keras`: Keras' own loop. The saved model is a "
        "`keras.layers.LSTM` either way; a GPU always trains on Keras' path (cuDNN)",
        json_schema_extra=ENGINE,
    )
    dropout: Rate = Field(description="dropout after each LSTM layer")
    embedding_dropout: Rate = Field(
        description="spatial dropout on the embeddings (whole channels)"
    )
    pooling: Literal["last", "max", "mean_max"] = Field(
        description="`last` (final LSTM state), `max`, or `mean_max` (mask-aware max and mean "
        "over every step's output, concatenated)"
    )
    pair_vocab_size: Count = Field(
        description='> 0: a second LSTM reads the most frequent word pairs ("not good"), with '
        "this many embedding rows (including padding and unknown pair); the model averages the "
        "branches. 0: words only"
    )
    triple_vocab_size: Count = Field(
        description='> 0: one more LSTM over the most frequent word triples ("not worth the"). '
        "0: none"
    )
    learning_rate: float = Field(gt=0.0, description="Adam learning rate")
    learning_rate_schedule: Literal["constant", "linear"] = Field(
        description="`constant`, or `linear`: the rate falls linearly to 0 over `max_epochs`"
    )
    clipnorm: float = Field(gt=0.0, description="Adam gradient-norm clipping")
    rowwise_embedding_updates: bool = Field(
        description='"lazy" Adam: only the embedding rows a batch used are updated, with '
        "their moments (`imdb_sentiment.training.rowwise_adam`; much faster on a CPU, and a "
        "slightly different optimiser: a row's moments decay only at steps that use it); `false`: "
        "Keras' Adam, which updates every row every step"
    )
    ema_momentum: Rate = Field(
        description="> 0: keep an exponential moving average of the weights; validation, early "
        "stopping and the saved model use the averaged weights. 0: off"
    )
    batch_size: Positive = Field(description="reviews per training step")
    max_epochs: Positive = Field(
        description="upper bound on the epochs; early stopping keeps the best epoch up to it "
        "(at 2, it can only choose epoch 1 or 2: raise it to let patience matter)"
    )
    bucket_by_length: bool = Field(
        description="batch reviews of similar length and trim padding: far fewer LSTM steps"
    )
    early_stopping_monitor: Literal["val_loss", "val_accuracy"] = Field(
        description="`val_loss` or `val_accuracy`; with word pairs the loss is the sum of the "
        "average's and each branch's cross-entropy (`val_multi_view_loss`)"
    )
    early_stopping_patience: Count = Field(description="epochs without improvement before stopping")
    early_stopping_min_delta: float = Field(
        ge=0.0, description="smallest change that counts as improvement"
    )


class StudentParams(NetworkParams):
    """``train``: the student, the LSTM that is saved and served, and what it learns from."""

    linear_teacher_weight: float = Field(
        ge=0.0,
        le=1.0,
        description="the student learns `(1 - w) x` the LSTM teachers' average `+ w x` the "
        "linear baseline's out-of-fold P(positive) of each training review; 0: the teachers alone",
    )
    window_copies: Count = Field(
        description="the student also learns from this many random windows of each training "
        "review, with its review's target, so it sees short texts as users type them; 0: none"
    )
    window_min_tokens: Positive = Field(
        description="a window's length in tokens is drawn from `window_min_tokens`.."
        "`window_max_tokens` (a shorter review is taken whole)"
    )
    window_max_tokens: Positive = Field(description="see `window_min_tokens`")
    calibrate: bool = Field(
        description="fit one temperature on the validation reviews and their first and last "
        "20 tokens, folded into the saved model's output, so the served probability is "
        "calibrated (`temperature` in metrics/train.json)"
    )
    linear_branch: bool = Field(
        description="serve the LSTM beside a linear branch: an NB-weighted logistic regression "
        "over the network's own word and n-gram ids, fitted on the training labels, blended "
        "with the LSTM by text length on the validation reviews and their first and last 20 "
        "tokens (which calibrates the output); evaluate reports each branch alone"
    )
    linear_branch_C: float = Field(
        gt=0.0, description="inverse L2 strength of the linear branch's logistic regression"
    )
    linear_branch_triples: Count = Field(
        description="> 0: the linear branch also weighs the most frequent word triples of the "
        "training reviews, this many ids (including padding and unknown triple), its own "
        "vocabulary beside the LSTM's words and pairs; 0: words and the LSTM's n-grams only"
    )
    linear_branch_pairs: Count = Field(
        description="> 0: the linear branch weighs the most frequent word pairs of the "
        "training reviews, this many ids (including padding and unknown pair), its own "
        "vocabulary instead of the LSTM's pairs; 0: the LSTM's pairs (`pair_vocab_size`)"
    )
    linear_branch_sentences: float = Field(
        ge=0.0,
        description="> 0: fit the linear branch on every sentence of at least 4 words of each "
        "training review too (cut by preprocess), with its review's label, the sentences of "
        "one review weighing this much in all (a review weighs 1); 0: none",
    )
    linear_branch_short_views: bool = Field(
        description="fit the linear branch on each training review's last sentence and first "
        "20 words too (the short views evaluate scores, cut by preprocess), each with its "
        "review's label: users type sentences, not reviews"
    )
    seed: Count = Field(
        description="the student's seed of weights, dropout, batch order and windows"
    )


class EvaluateParams(Section):
    """``evaluate``: scoring the test set and your extra sets."""

    threshold: Fraction = Field(description="P(positive) at or above which a review is positive")
    batch_size: Positive = Field(description="reviews per scoring batch", json_schema_extra=ENGINE)
    confident_errors: Count = Field(description="how many confidently wrong test reviews to list")
    extra_sets: list[dict[str, Any]] = Field(
        description="further labelled test sets (`name`, `url`, `sha256`, `text_column`, "
        "`label_column`, and the label lists or `label_threshold`), each scored under "
        "`extra_sets.<name>` in metrics/eval.json ([own-data.md](own-data.md))"
    )


SECTIONS: dict[str, type[Section]] = {
    "download": DownloadParams,
    "preprocess": PreprocessParams,
    "linear_baseline": LinearBaselineParams,
    "teachers": TeachersParams,
    "teacher": NetworkParams,
    "train": StudentParams,
    "evaluate": EvaluateParams,
}


HEADER = """# Parameter reference

What this page is for: every key of `params.yaml`, what it does, and its value in the
repository's `params.yaml`. This page is generated from the schema, `src/imdb_sentiment/schema.py`
(`python -m imdb_sentiment.schema > docs/parameters.md`); a test keeps the two equal. Each
stage reads whole sections (`dvc.yaml`'s `params:`), so changing a key reruns only the stages
that read its section. Keys marked *engine* only choose how the work is computed: the model
and the metrics stay the same. How the values were chosen is in the
[history](history.md).

Every stage validates its sections before doing any work: a missing key, an unknown key (with
a "did you mean" hint), a wrong type or an out-of-range value stops it with a message that
names the file, the key and the value, such as
`params.yaml: preprocess.max_length = 0 is out of range: must be >= 1`.
"""


def reference_markdown(params_file: Path = Path("params.yaml")) -> str:
    """docs/parameters.md: a table per section, from the schema and ``params_file``."""
    document = yaml.safe_load(Path(params_file).read_text(encoding="utf-8"))
    parts = [HEADER]
    for section, schema in SECTIONS.items():
        parts.append(f"## `{section}`\n\n{_first_paragraph(schema)}\n")
        parts.append("| key | value | meaning |\n|---|---|---|")
        for key, field in schema.model_fields.items():
            value = yaml.safe_dump(document[section][key], default_flow_style=True).strip()
            value = value.removesuffix("\n...").removesuffix("...").strip()
            engine = "*engine*: " if (field.json_schema_extra or {}).get("engine") else ""
            parts.append(f"| `{key}` | `{value}` | {engine}{field.description} |")
        parts.append("")
    return "\n".join(parts)


def _first_paragraph(schema: type[Section]) -> str:
    """The docstring's first paragraph, in Markdown, less its leading "``section``: "."""
    paragraph = " ".join((schema.__doc__ or "").split("\n\n")[0].split()).replace("``", "`")
    paragraph = paragraph.split(": ", 1)[1] if paragraph.startswith("`") else paragraph
    return paragraph[:1].upper() + paragraph[1:]


if __name__ == "__main__":
    sys.stdout.write(reference_markdown())

"""Mutation score of the core modules (issue 36), measured with mutmut.

    python bench/mutation.py                      # every module in MODULES
    python bench/mutation.py --module fileio      # one (repeatable)

Each module is mutated in its own scratch copy of src/ and tests/ (under --scratch) and run
against its own mirrored tests only, so a module takes a minute or a few, not hours. Writes
bench/mutation.json: per module the mutants killed, survived, timed out and reached by no
test, and each survivor's diff; docs/architecture.md's tests section reads from it.

Two of mutmut's rules are widened here, and only here (:func:`widen_mutmut`):
mutmut leaves every decorated function alone, which would leave out the two atomic writers
(``@contextlib.contextmanager``) and the serving kernel's numba loops. Functions whose
decorators are all in SAFE_DECORATORS are mutated: the trampoline gets the decorators, the
mutant copies none. The kernel's loops run as plain Python for it (NUMBA_DISABLE_JIT=1), so
each mutant needs no compile; the tests feed it tiny networks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# module (under src/imdb_sentiment/) -> the tests that mirror it
MODULES = {
    "data/archive.py": ["tests/data/test_archive.py"],
    "data/tables.py": ["tests/data/test_tables.py"],
    "data/text.py": ["tests/data/test_text.py"],
    "data/dataset.py": ["tests/data/test_dataset.py"],
    "data/ngrams.py": ["tests/data/test_ngrams.py"],
    "scoring/evaluation.py": ["tests/scoring/test_evaluation.py"],
    "fileio.py": ["tests/test_fileio.py"],
    "params.py": ["tests/test_params.py"],
    "scoring/lstm_kernel.py": ["tests/scoring/test_lstm_kernel.py"],
}
# Their tests run TensorFlow ops, and TensorFlow's thread pools do not survive a fork: a child
# forked from mutmut's main process (which has run the tests to collect its statistics) hangs
# until mutmut's timeout, which would count as killed. For these, mutmut's fork server
# (its `process_isolation` setting) forks each mutant's process from a server that has only
# collected the tests (`forkserver_warmup = "collect"`): TensorFlow is imported there, but no
# op has run, so no thread pool exists yet (checked: its eager context is not initialised
# after collection). Each mutant's process skips the import and collection: what that saves,
# and that the outcomes stay the same, is in docs/architecture.md's "Mutation score".
TENSORFLOW_TESTS = {"data/text.py", "data/ngrams.py", "scoring/lstm_kernel.py"}
# timeout_constant: mutmut's time limit is 30 x (the tests' own time + this) CPU seconds.
FORK_SERVER = (
    'process_isolation = "forkserver"\nforkserver_warmup = "collect"\ntimeout_constant = 10\n'
)
SAFE_DECORATORS = {"contextmanager", "njit", "compiled"}
# What the mirrored tests read besides the package: they import the stages, read docs, probes
# and params. Copied into the scratch copy, and by mutmut into its own.
TEST_INPUTS = ("tests", "stages", "docs", "data/probes.csv", "params.yaml", "dvc.yaml")
WARM_UP = "a warm-up call only traces; its values and dtypes are cast to the signature's"
FLOAT64_SCRATCH = (
    "float64 scratch in one review's loop: the states stored are float32 either way; answers "
    "move within float32 rounding (which numba's compiler also changes)"
)
# Surviving mutants reviewed as equivalent: no behaviour a test could observe here changes.
# By module, then mutmut's name of the mutant (the function and its number), with the reason.
EQUIVALENT: dict[str, dict[str, str]] = {
    "fileio.py": {
        "x__read_umask__mutmut_20": "the fallback sets a umask and restores it at once",
        "x_write_json__mutmut_3": "utf-8 is the locale's encoding (Python's UTF-8 mode)",
        "x_write_json__mutmut_5": "utf-8 is the locale's encoding (Python's UTF-8 mode)",
        "x_write_json__mutmut_17": "'UTF-8' and 'utf-8' name one codec",
        "x__remove_stale_scratch__mutmut_6": "guards a race with a second writer (none in tests)",
        "x__remove_stale_scratch__mutmut_8": "guards a race with a second writer (none in tests)",
        "x__remove_stale_scratch__mutmut_9": "guards a race with a second writer (none in tests)",
        "x__remove_stale_scratch__mutmut_10": "guards a race with a second writer (none in tests)",
        "x__remove_stale_scratch__mutmut_11": "guards a race with a second writer (none in tests)",
    },
    "params.py": {
        "x__explain__mutmut_9": "no parameter is a list of lists: a key has one index at most",
        "x__explain__mutmut_28": "only the closest match is used, whatever the number asked",
        "x__explain__mutmut_30": "only the closest match is used, whatever the number asked",
        "x__problem__mutmut_5": "the bounds' errors, the only ones read, always carry a context",
        "x__problem__mutmut_7": "the bounds' errors, the only ones read, always carry a context",
        "x__read_section__mutmut_5": "utf-8 is the locale's encoding (Python's UTF-8 mode)",
        "x__read_section__mutmut_7": "'UTF-8' and 'utf-8' name one codec",
        "x_run_stage__mutmut_7": "each stage passes its section's own model, also the default",
        "x_run_stage__mutmut_9": "each stage passes its section's own model, also the default",
    },
    "data/archive.py": {
        "x_resolve_source__mutmut_19": "utf-8 is the locale's encoding (Python's UTF-8 mode)",
        "x_resolve_source__mutmut_21": "'UTF-8' and 'utf-8' name one codec",
        "x__check_sha256__mutmut_11": "the block size changes memory use, not the digest",
        "x__check_sha256__mutmut_13": "the block size changes memory use, not the digest",
        "x__check_sha256__mutmut_14": "the block size changes memory use, not the digest",
        "x__progress__mutmut_5": "mininterval: how often the bar redraws",
        "x__progress__mutmut_10": "mininterval: how often the bar redraws",
        "x__progress__mutmut_14": "mininterval: how often the bar redraws",
        "x_read_reviews__mutmut_28": "tarfile's default mode 'r' is 'r:*'",
        "x_read_reviews__mutmut_36": "mininterval: how often the bar redraws",
        "x_read_reviews__mutmut_40": "mininterval: how often the bar redraws",
        "x_read_reviews__mutmut_43": "mininterval: how often the bar redraws",
        "x__collect__mutmut_27": "utf-8 is bytes.decode's default",
        "x__collect__mutmut_30": "'UTF-8' and 'utf-8' name one codec",
        "x__collect__mutmut_36": "'UTF-8' and 'utf-8' name one codec",
        "x_write_tables__mutmut_2": "pandas writes no index for index=None either",
        "x_write_tables__mutmut_3": "'\\n' is os.linesep on Linux (it keeps Windows' files equal)",
        "x_write_tables__mutmut_6": "'\\n' is os.linesep on Linux (it keeps Windows' files equal)",
        "x_texts_of__mutmut_11": "float labels find their int rows in the index too",
    },
    "data/tables.py": {
        "xǁLabelMappingǁlabels__mutmut_11": "the 0.0/1.0 floats become int64 on return",
        "xǁLabelMappingǁlabels__mutmut_39": "the labels are int64 already (map and astype(int))",
        "x__groups__mutmut_4": "pandas stores the column as text whatever numpy's dtype",
        "x__groups__mutmut_7": "pandas stores the column as text whatever numpy's dtype",
        "x__groups__mutmut_9": "pandas stores the column as text whatever numpy's dtype",
        "x_load_labelled__mutmut_10": "the sha256 is compared lower-cased wherever it is checked",
        "x_load_labelled__mutmut_15": "the sha256 is compared lower-cased wherever it is checked",
    },
    "scoring/evaluation.py": {
        "x_classification_metrics__mutmut_2": "predictions as floats 0.0/1.0 count the same",
        "x_classification_metrics__mutmut_7": "ROC AUC needs both labels: the matrix is 2x2",
        "x_classification_metrics__mutmut_10": "ROC AUC needs both labels: the matrix is 2x2",
        "x_classification_metrics__mutmut_20": "astype(None) is float64",
        "x_classification_metrics__mutmut_69": "recall's denominator is never 0: both labels occur",
        "x_classification_metrics__mutmut_70": "recall's denominator is never 0: both labels occur",
        "x_classification_metrics__mutmut_84": "F1's denominator is never 0: both labels occur",
        "x_classification_metrics__mutmut_85": "F1's denominator is never 0: both labels occur",
        "x_classification_metrics__mutmut_108": "both labels occur, which is what [0, 1] names",
        "x_classification_metrics__mutmut_111": "both labels occur, which is what [0, 1] names",
        "x__thin__mutmut_1": "a curve of exactly CURVE_POINTS rows keeps every row either way",
        "x__thin__mutmut_6": "iloc takes whole-number floats as positions",
        "x_confident_errors__mutmut_2": "float predictions compare with the labels the same",
        "x__confidence_bins__mutmut_2": "astype(None) is float64",
        "x_reliability_table__mutmut_12": "labels as floats compare with booleans as 0/1 do",
        "x_view_metrics__mutmut_4": "labels as floats compare with booleans as 0/1 do",
        "x_length_bucket__mutmut_10": "side='left' is searchsorted's default",
        "x_accuracy_by_length__mutmut_9": "labels as floats compare with booleans as 0/1 do",
        "x_accuracy_by_length__mutmut_17": "the rows are sorted by (model, bucket) afterwards",
        "x_accuracy_by_length__mutmut_19": "the rows are sorted by (model, bucket) afterwards",
        "x_accuracy_by_length__mutmut_22": "the rows are sorted by (model, bucket) afterwards",
        "x_probe_results__mutmut_14": "float predictions compare with the expected 0/1 the same",
    },
    "data/text.py": {
        "xǁTextEncoderǁcall__mutmut_17": "PAD_ID is 0, which to_tensor pads with by default",
        "xǁTextEncoderǁcall__mutmut_19": "PAD_ID is 0, which to_tensor pads with by default",
        "xǁTextEncoderǁencode__mutmut_1": "the chunk size changes memory use, not the ids",
        "x_tokenize__mutmut_7": "a tensor of Python strings is tf.string anyway",
        "x_tokenize__mutmut_9": "a tensor of Python strings is tf.string anyway",
        "x__as_str__mutmut_5": "'UTF-8' and 'utf-8' name one codec",
        "x_load_encoder__mutmut_2": "utf-8 is the locale's encoding (Python's UTF-8 mode)",
        "x_load_encoder__mutmut_5": "'UTF-8' and 'utf-8' name one codec",
    },
    "data/ngrams.py": {
        "x_ngram_keys__mutmut_24": "padding added at the end is cut off by the slice after it",
        "x_build_ngram_vocabulary__mutmut_13": "a complete n-gram's key is at least 1 + words",
        "x_build_ngram_vocabulary__mutmut_14": "a complete n-gram's key is at least 1 + words",
        "x_build_ngram_vocabulary__mutmut_23": "numpy reads the sort kind without regard to case",
        "xǁWordNgramsǁcall__mutmut_10": "the vocabulary is an int64 array already",
        "xǁWordNgramsǁcall__mutmut_12": "the vocabulary is an int64 array already",
        "xǁWordNgramsǁcall__mutmut_22": "an int32 OOV id is the same id: the ids end as int32",
        "xǁWordNgramsǁcall__mutmut_24": "an int32 OOV id is the same id: the ids end as int32",
        "xǁWordNgramsǁcall__mutmut_74": "a complete n-gram's key is at least 1 + words",
        "xǁWordNgramsǁcall__mutmut_75": "a complete n-gram's key is at least 1 + words",
        "xǁWordNgramsǁtraced__mutmut_6": "the kernel passes 2-D ids, which any shape admits",
        "xǁWordNgramsǁtraced__mutmut_9": "word ids below 2**24 pass float32 exactly; call casts",
        "xǁWordNgramsǁtraced__mutmut_13": "its callers pass int32 ids already",
        "xǁWordNgramsǁtraced__mutmut_15": "its callers pass int32 ids already",
    },
    "scoring/lstm_kernel.py": {
        **dict.fromkeys(
            [f"x__run_review__mutmut_{n}" for n in (5, 7, 12, 14, 17, 19)], FLOAT64_SCRATCH
        ),
        **dict.fromkeys(
            [f"x_lstm_weights__mutmut_{n}" for n in (52, 54, 59, 61)],
            "Keras' weights are float32: the tables come out float32 without the cast",
        ),
        "x_lstm_weights__mutmut_69": "units only narrows the traced signature; states fit both",
        "x__head__mutmut_5": "TensorSpec's dtype defaults to float32",
        **dict.fromkeys(
            [f"x_compile_lstm_scorer__mutmut_{n}" for n in (16, 18)],
            "no members: iterating None raises TypeError, caught and declined as [] is",
        ),
        **dict.fromkeys(
            [f"x_compile_lstm_scorer__mutmut_{n}" for n in (57, 59)],
            "ids keep their integer type: the n-gram layers and the blend cast to int32, and "
            "the loop indexes with any (test_the_kernel_reads_ids_of_any_integer_type_as_int32)",
        ),
        "x_compile_lstm_scorer__mutmut_48": WARM_UP,
        "x_compile_lstm_scorer__mutmut_49": WARM_UP,
        **dict.fromkeys(
            [f"x__lstm_network__mutmut_{n}" for n in (7, 8, 9)],
            "compile_lstm_scorer catches the ValueError and declines; its text is never shown",
        ),
        "x__lstm_network__mutmut_18": "a spec of any rank admits the 1-D scores; one trace still",
        "x__lstm_network__mutmut_21": "TensorSpec's dtype defaults to float32",
        **dict.fromkeys(
            [f"x__lstm_network__mutmut_{n}" for n in (27, 29, 31, 33, 34, 37, 39)], WARM_UP
        ),
        **dict.fromkeys(
            [f"x__kernel_branches__mutmut_{n}" for n in (11, 14, 17)],
            "resolve_views returns one view per described view: the lengths always match",
        ),
        **dict.fromkeys([f"x__ids_of__mutmut_{n}" for n in (5, 7, 8, 9)], WARM_UP),
        **dict.fromkeys(
            [f"x__check_table_rows__mutmut_{n}" for n in (17, 19)],
            "needing 1 row where none was asked refuses nothing: every table has a row",
        ),
        **dict.fromkeys(
            [f"x__branch_probability__mutmut_{n}" for n in (34, 36)],
            "score casts the members' average to float32, empty or not",
        ),
    },
    "data/dataset.py": {
        "x_shortest_first__mutmut_11": "numpy reads the sort kind without regard to case",
        "x_random_windows__mutmut_19": "integers(high) draws the same numbers as integers(0, high)",
        "x__pre_padded_windows__mutmut_21": "take_along_axis' default axis is the last (1)",
        "x__pre_padded_windows__mutmut_23": "a negative source index picks a column `keep` drops",
        "x__pre_padded_windows__mutmut_24": "source stays <= width - 1: starts + lengths <= counts",
        "x__pre_padded_windows__mutmut_29": "source stays <= width - 1: starts + lengths <= counts",
    },
}
# Survivors of a recorded run that a test added since kills (each checked by applying the
# mutant by hand), by module, then mutant, then the test: the score stays the run's until the
# module is measured again, and the list empties then. Empty since the runs of 7 Dec 09:21.
TESTED_SINCE: dict[str, dict[str, str]] = {}
STATUSES = ("killed", "survived", "timeout", "no tests", "suspicious", "segfault", "skipped")


def mutmut_config(module: str, tests: list[str]) -> str:
    """The [tool.mutmut] table for one module: the whole package is copied (so the mutated
    package imports whole), one file is mutated."""
    package = REPO_ROOT / "src"
    others = sorted(
        str(path.relative_to(REPO_ROOT))
        for path in package.rglob("*.py")
        if path != package / "imdb_sentiment" / module
    )
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["src/"]\n'
        f"do_not_mutate = {json.dumps(others)}\n"
        f"also_copy = {json.dumps(sorted({Path(name).parts[0] for name in TEST_INPUTS}))}\n"
        'pytest_add_cli_args = ["-n", "0", "-p", "no:cacheprovider"]\n'
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        + (FORK_SERVER if module in TENSORFLOW_TESTS else "")
    )


def prepare_scratch(folder: Path, module: str, tests: list[str]) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO_ROOT / "src", folder / "src", ignore=ignore)
    for name in TEST_INPUTS:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, folder / name, ignore=ignore)
        else:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, folder / name)
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    pyproject = re.sub(r"^addopts = .*$", 'addopts = "-ra"', pyproject, flags=re.M)
    (folder / "pyproject.toml").write_text(pyproject + mutmut_config(module, tests))


def mutant_names(module: str) -> list[str]:
    """mutmut's full name of every mutant of ``module`` (under these widened rules), without
    running anything: for drawing a sample."""
    from mutmut.mutation import file_mutation

    widen_mutmut()
    path = REPO_ROOT / "src" / "imdb_sentiment" / module
    mutated = file_mutation.mutate_file_contents(str(path), path.read_text())
    dotted = "imdb_sentiment." + module.removesuffix(".py").replace("/", ".")
    return [f"{dotted}.{name}" for name in mutated.mutant_names]


def run_module(module: str, scratch: Path, sample: int = 0, seed: int = 0) -> dict:
    """``sample`` > 0: only that many mutants, drawn at random (seeded) from all of them."""
    folder = scratch / module.replace("/", "_").removesuffix(".py")
    prepare_scratch(folder, module, MODULES[module])
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    chosen: list[str] = []
    if sample:
        every = mutant_names(module)
        chosen = sorted(random.Random(seed).sample(every, min(sample, len(every))))
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--inside", *chosen],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if run.returncode:
        tail = run.stdout[-3000:]
        raise SystemExit(f"mutmut failed on {module} (exit {run.returncode}):\n{tail}")
    listing = mutmut(folder, "results", "--all", "true")
    # mutmut's name: the module's dotted path, then the mutant (the function and its number)
    found = re.findall(r"^\s*((?:\S+\.)?(\S+)): (.+)$", listing, flags=re.M)
    if chosen:
        drawn = set(chosen)
        found = [entry for entry in found if entry[0] in drawn]
    statuses = {short: status for _, short, status in found}
    counts = {status: sum(1 for s in statuses.values() if s == status) for status in STATUSES}
    not_killed = {
        short: {"status": status, "diff": _diff(mutmut(folder, "show", full))}
        for full, short, status in found if status not in ("killed", "timeout")
    }  # fmt: skip
    result = {
        "module": f"src/imdb_sentiment/{module}",
        "tests": MODULES[module],
        "mutants": len(statuses),
        **counts,
        "seconds": round(seconds, 1),
        "not_killed": not_killed,
    }
    if chosen:
        result["sample_of"] = len(every)
    return apply_review(module, result)


def apply_review(module: str, result: dict) -> dict:
    """Mark the survivors reviewed as equivalent (EQUIVALENT, with why) and score the rest:
    the killed share, timeouts included, of the mutants not reviewed as equivalent. A review
    added after a run applies to its recorded survivors (``--review``)."""
    reviewed = EQUIVALENT.get(module, {})
    for name, entry in result["not_killed"].items():
        entry["equivalent"] = reviewed.get(name)
    equivalent = sum(1 for entry in result["not_killed"].values() if entry["equivalent"])
    scored = result["mutants"] - equivalent - result["skipped"]
    killed = result["killed"] + result["timeout"]
    return {**result, "equivalent": equivalent, "score": round(killed / max(scored, 1), 4)}


def score_table(report: dict) -> str:
    """The score per module, for docs/architecture.md's tests section."""
    lines = [
        "| module | mutants | killed | timeout | survived | no test | equivalent | killed of all "
        "| score |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for module, result in report["modules"].items():
        lines.append(
            f"| `{module}` | {result['mutants']}{_sampled(result)} | {result['killed']} "
            f"| {result['timeout']} "
            f"| {result['survived']} | {result['no tests']} | {result['equivalent']} "
            f"| {(result['killed'] + result['timeout']) / result['mutants']:.1%} "
            f"| {result['score']:.1%} |"
        )
    return "\n".join(lines) + "\n"


def _sampled(result: dict) -> str:
    return f" (a sample of {result['sample_of']})" if "sample_of" in result else ""


def markdown(report: dict) -> str:
    """docs/mutation.md: every mutant no test killed, each marked equivalent (with why) or
    not."""
    lines = [
        "# Mutants no test killed",
        "",
        "What this page is for: every mutant of the core modules that no test killed, each",
        "reviewed as equivalent (with why) or not. Generated by `python bench/mutation.py",
        "--markdown > docs/mutation.md` from `bench/mutation.json` (updated",
        f"{report.get('updated', '?')}). The score per module and how it is measured:",
        "[architecture](architecture.md#mutation-score).",
    ]
    for module, result in report["modules"].items():
        lines += ["", f"## {module}", ""]
        for name, entry in result["not_killed"].items():
            why = f"equivalent: {entry['equivalent']}" if entry["equivalent"] else entry["status"]
            if test := TESTED_SINCE.get(module, {}).get(name):
                why += f"; killed since by `{test}`"
            diff = " / ".join(line.strip() for line in entry["diff"].splitlines())
            lines.append(f"- `{name}` ({why}): `{diff}`")
    return "\n".join(lines) + "\n"


def mutmut(folder: Path, *arguments: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "mutmut", *arguments],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _diff(shown: str) -> str:
    """The changed lines of a mutant, as ``-old`` / ``+new``."""
    return "\n".join(
        line
        for line in shown.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    )


def widen_mutmut() -> None:
    """Let mutmut mutate functions whose decorators are all in SAFE_DECORATORS: the trampoline
    keeps the decorators, the original and mutant copies get none (a decorated copy would
    hand the trampoline a context manager where it expects a generator)."""
    import libcst as cst
    from mutmut.mutation import file_mutation

    def decorator_name(decorator: cst.Decorator) -> str:
        node = decorator.decorator
        while isinstance(node, cst.Call):
            node = node.func
        return node.attr.value if isinstance(node, cst.Attribute) else getattr(node, "value", "")

    def safe(node: object) -> bool:
        return (
            isinstance(node, cst.FunctionDef)
            and bool(node.decorators)
            and all(decorator_name(d) in SAFE_DECORATORS for d in node.decorators)
        )

    # mutmut's private rule (its one name with a leading underscore here): without it, run
    # with mutmut's own rules, so decorated functions go unmutated, and say so.
    skip = getattr(file_mutation.MutationVisitor, "_skip_node_and_children", None)
    arrange = getattr(file_mutation, "function_trampoline_arrangement", None)
    if skip is None or arrange is None:
        warnings.warn("mutmut changed: decorated functions are not mutated", stacklevel=2)
        return

    layer_constructors: set[int] = set()

    def skip_unless_safe(self: object, node: cst.CSTNode) -> bool:
        # Keras reads a layer's __init__ signature when the layer is made, and a trampoline
        # has none: a Keras layer's constructor stays unmutated (its other methods do not).
        if isinstance(node, cst.ClassDef) and any(
            decorator_name(cst.Decorator(base.value)).endswith("Layer") for base in node.bases
        ):
            layer_constructors.update(
                id(item)
                for item in node.body.body
                if isinstance(item, cst.FunctionDef) and item.name.value == "__init__"
            )
        if id(node) in layer_constructors:
            return True
        return False if safe(node) else skip(self, node)

    def arrange_safe(function: cst.FunctionDef, mutants: object, class_name: str | None):
        if not safe(function):
            return arrange(function, mutants, class_name)
        declarations, methods, assignments, names = arrange(
            function.with_changes(decorators=[]), mutants, class_name
        )
        methods[0] = methods[0].with_changes(
            decorators=[*function.decorators, *methods[0].decorators]
        )
        return declarations, methods, assignments, names

    file_mutation.MutationVisitor._skip_node_and_children = skip_unless_safe
    file_mutation.function_trampoline_arrangement = arrange_safe


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", choices=sorted(MODULES))
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/imdb-mutation"))
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "mutation.json")
    parser.add_argument("--markdown", action="store_true", help="print docs/mutation.md")
    parser.add_argument("--table", action="store_true", help="print the score per module")
    parser.add_argument(
        "--review", action="store_true", help="apply EQUIVALENT to the recorded survivors"
    )
    parser.add_argument("--sample", type=int, default=0, help="only this many random mutants")
    parser.add_argument("--seed", type=int, default=0, help="of the sample")
    parser.add_argument("--inside", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside is not None:  # in the scratch copy, run by run_module (mutant names)
        import threading

        import tqdm
        from mutmut.__main__ import cli

        # mutmut forks a child per mutant and kills one that runs too long. tqdm's default
        # lock is shared between processes: a child killed while holding it would leave every
        # later child waiting forever (false "timeouts"). Each child gets its own lock, and
        # no monitor thread holds it at the fork.
        tqdm.tqdm.monitor_interval = 0
        tqdm.tqdm.set_lock(threading.RLock())
        widen_mutmut()
        cli(["run", *args.inside], standalone_mode=True)
        return 0
    report = json.loads(args.out.read_text()) if args.out.exists() else {"modules": {}}
    if args.review:
        for module, result in report["modules"].items():
            report["modules"][module] = apply_review(module, result)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        return 0
    if args.markdown or args.table:
        print(markdown(report) if args.markdown else score_table(report), end="")
        return 0
    for module in args.module or MODULES:
        print(f"mutating {module} ...", flush=True)
        result = run_module(module, args.scratch, args.sample, args.seed)
        report["modules"][module] = result
        report["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
        args.out.write_text(json.dumps(report, indent=1) + "\n")  # after each: a long run
        print(
            f"  {result['killed']} killed, {result['survived']} survived of "
            f"{result['mutants']} in {result['seconds']} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

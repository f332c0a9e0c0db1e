"""The benchmarks' reports on synthetic figures (the real runs take ~20 minutes), and the
wrk load generator against the tiny model."""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench import ablation, benchmark, mutation, serving, soak, training_profile
from stages import preprocess, train

# CI installs wrk and sets REQUIRE_WRK=1 so a missing wrk fails instead of skipping.
WRK_MISSING = shutil.which("wrk") is None and not os.environ.get("REQUIRE_WRK")


def fake_figures(accuracy: float, last: float, first: float, ece: float = 0.01) -> dict:
    return {
        "accuracy": accuracy,
        "ece": ece,
        "short_views": {
            "last_sentence": {"accuracy": last, "ece": 0.04},
            "first_20_words": {"accuracy": first, "ece": 0.06},
        },
        "probes_passed": 20,
        "probes_total": 32,
    }


def fake_run(reviews_per_second: float, accuracy: float, wall: float = 50.0) -> dict:
    stages = {s: {"wall_s": wall / 5, "peak_rss_mb": 500} for s in benchmark.STAGES}
    evaluation = {"validation_accuracy": 0.9, "f1": 0.9, "roc_auc": 0.95}
    evaluation.update(fake_figures(accuracy, 0.78, 0.75))
    evaluation["linear_baseline"] = fake_figures(0.914, 0.73, 0.71, ece=0.05)
    return {
        "stages": stages,
        "total_wall_s": wall,
        "max_peak_rss_mb": 500,
        "train": {"epochs_run": 2, "train_reviews_per_second": reviews_per_second},
        "eval": evaluation,
    }


def fake_report() -> dict:
    view = {"accuracy": 0.7457, "ece": 0.03}
    report = {
        "commit": "0123456789abcdef",
        "date": "20260101T000000Z",
        "command": "python bench/benchmark.py --archive a.tar.gz",
        "machine": {"cores": 2, "cpu": "test cpu"},
        "pipeline": fake_run(300.0, 0.921, wall=60.0),
        "defaults_6_dec": fake_run(250.0, 0.911, wall=80.0),
        "reference": fake_run(100.0, 0.91, wall=150.0),
        "tfidf": {"fit_seconds": 21.0, "full": {"accuracy": 0.906, "ece": 0.02},
                  "last_sentence": view, "first_20_words": {**view, "accuracy": 0.7169}},
        "time_ratio_vs_reference": 0.4,
        "time_ratio_vs_dec_6": 0.75,
        "compute_use": {
            "training_mflop_per_review": 136.0,
            "mean_tokens_per_review": 230.0,
            "achieved_gflops": 40.8,
            "matrix_gflops": 200.0,
            "share_of_matrix_rate": 0.204,
        },
        "naive": {"train": {"train_reviews_per_second": 100.0}},
        "baseline": fake_run(150.0, 0.85),
        "throughput_ratio_vs_naive": 3.0,
        "throughput_ratio_vs_baseline": 2.0,
        "reproduced": {
            "eval_json_changes": {},
            "outputs_changed": [],
        },
    }  # fmt: skip
    report["targets"] = benchmark.targets(report)
    return report


def test_markdown_report_lists_every_stage_and_the_ratios():
    table = benchmark.markdown(fake_report())
    for stage in benchmark.STAGES:
        assert (
            f"| {stage}: wall s / peak MB | 12.0 / 500 | 16.0 / 500 | 30.0 / 500 | 10.0 / 500 |"
            in table
        )
    assert "| test accuracy | 0.921 | 0.911 | 0.91 | 0.85 |" in table
    assert "pipeline / 6 Dec defaults: **0.75**; pipeline / round-13 reference: **0.4**" in table
    assert "**20.4%** of the machine's float32 matrix rate (200.0 GFLOP/s" in table
    assert "(test cpu, ?, float32 matrix rate 200.0 GFLOP/s)" in table
    assert "pipeline / naive: **3.0x**" in table and "(naive, 1 epoch): 100.0 reviews/s" in table
    assert "`metrics/eval.json`): identical. Outputs whose hash differs" in table


def test_accuracy_table_puts_every_model_side_by_side():
    table = benchmark.markdown(fake_report())
    assert (
        "| LSTM: pipeline | 1.0 min (repro) | 0.921 | 0.78 | 0.75 | 0.01 / 0.04 / 0.06 | 20/32 |"
        in table
    )
    assert "| NB-weighted LR (linear_baseline stage) | 12 s | 0.914 | 0.73 | 0.71 |" in table
    assert (
        "| TF-IDF LR (benchmark) | 21 s (fit) | 0.906 | 0.7457 | 0.7169 | 0.02 / 0.03 / 0.03 | - |"
        in table
    )
    assert "| ECE first_20_words <= 0.05 | 0.06 | **no** |" in table


def test_a_report_without_round_13_or_the_baseline_says_so():
    report = fake_report()
    report["reference"] = {"skipped": True}
    for key in ("naive", "baseline", "time_ratio_vs_reference"):
        del report[key]
    table = benchmark.markdown(report)
    assert "| train: wall s / peak MB | 12.0 / 500 | 16.0 / 500 |" in table
    assert "pipeline / round-13 reference: **not run (--skip-round-13)**" in table
    assert "LSTM: reference" not in table and "naive" not in table


def test_targets_name_each_margin_and_verdict():
    checks = fake_report()["targets"]
    assert checks["test accuracy >= 0.920"] == {"value": 0.921, "met": True}
    # 0.921 - 0.914 = 0.007 above the NB baseline: met.
    assert checks["test accuracy >= NB baseline + 0.006"] == {"value": 0.007, "met": True}
    # Short views against the better linear model of each: TF-IDF (0.7457), then TF-IDF (0.7169).
    assert checks["last_sentence >= best linear + 0.02"] == {"value": 0.0343, "met": True}
    assert checks["first_20_words >= best linear + 0.02"] == {"value": 0.0331, "met": True}
    assert checks["ECE last_sentence <= 0.05"] == {"value": 0.04, "met": True}
    assert checks["ECE first_20_words <= 0.05"] == {"value": 0.06, "met": False}
    assert checks["repro time / 6 Dec defaults <= 1"] == {"value": 0.75, "met": True}
    assert checks["max stage peak <= 2560 MiB"] == {"value": 500, "met": True}


def test_the_6_dec_reference_pins_every_key_and_turns_the_new_ones_off():
    committed = committed_params()
    dec_6 = benchmark.dec_6_params(committed)
    for section in ("preprocess", "teachers", "teacher", "train"):
        assert set(dec_6[section]) == set(committed[section]), section
    assert dec_6["train"]["lstm_kernel"] == "hoisted" and dec_6["train"]["max_epochs"] == 2
    assert dec_6["train"]["linear_teacher_weight"] == 0 and not dec_6["train"]["calibrate"]
    assert not dec_6["train"]["linear_branch"]
    assert dec_6["train"]["window_copies"] == 0 and dec_6["teachers"]["seeds"] == [42, 43, 44]
    assert dec_6["teacher"]["lstm_kernel"] == "hoisted" and dec_6["teacher"]["max_epochs"] == 2
    assert dec_6["train"]["seed"] == 45  # after the teachers, as when one stage trained all


def write_run(folder, accuracy: float, train_md5: str) -> None:
    (folder / "metrics").mkdir(parents=True)
    eval_json = {"accuracy": accuracy, "count": 10}
    (folder / "metrics/eval.json").write_text(json.dumps(eval_json))
    stages = {
        "download": {"outs": [{"path": "data/raw", "md5": "aaa.dir"}]},
        "train": {"outs": [{"path": "models", "md5": train_md5}]},
    }
    (folder / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}))


def test_comparison_with_the_committed_run_names_changed_metrics_and_outputs(tmp_path):
    write_run(tmp_path / "committed", 0.8901, "bbb.dir")
    write_run(tmp_path / "same", 0.8901, "bbb.dir")
    write_run(tmp_path / "other", 0.8897, "ccc.dir")

    same = benchmark.compare_with_committed(tmp_path / "same", tmp_path / "committed")
    assert same["eval_json_changes"] == {}
    assert benchmark.reproduction_line(same).startswith(
        "Same params and data twice (this run vs. the committed `metrics/eval.json`): identical."
    )

    other = benchmark.compare_with_committed(tmp_path / "other", tmp_path / "committed")
    assert other["eval_json_changes"] == {"accuracy": [0.8901, 0.8897]}
    assert other["outputs_changed"] == ["models"]
    line = benchmark.reproduction_line(other)
    assert "DIFFERENT (accuracy 0.8901 -> 0.8897)" in line
    assert line.endswith("the committed `dvc.lock`: `models`.")


def test_ablation_overrides_dotted_keys_and_tabulates_rows(tmp_path):
    params = ablation.merged_params({"train.dropout": 0.5, "preprocess.vocab_size": 20000})
    assert params["train"]["dropout"] == 0.5 and params["preprocess"]["vocab_size"] == 20000
    row = {
        "variant": "dropout-0.5",
        "overrides": {"train.dropout": 0.5},
        "best_val_accuracy": 0.88561,
        "best_val_loss": 0.28,
        "epochs_run": 3,
        "best_epoch": 2,
        "train_minutes": 4.25,
    }
    ablation.write_table([row], tmp_path / "table.md")
    lines = (tmp_path / "table.md").read_text().splitlines()
    assert lines[2] == "| dropout-0.5 | `train.dropout=0.5` | 0.8856 | 0.2800 | 3 (2) | 4.2 |"


@pytest.mark.skipif(WRK_MISSING, reason="wrk not installed (apt-get install wrk)")
def test_wrk_load_test_counts_requests_and_latencies(live_server):
    result = serving.wrk_load_test(live_server, ["A fine film.", "Dull."], clients=4, seconds=1)
    assert result["requests"] > 0 and result["errors"] == 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]


@pytest.mark.skipif(WRK_MISSING, reason="wrk not installed (apt-get install wrk)")
def test_wrk_load_test_counts_rejected_requests_as_errors(live_server):
    result = serving.wrk_load_test(live_server, ["   "], clients=2, seconds=1)  # 422: blank
    assert result["requests"] > 0 and result["errors"] == result["requests"]


def committed_params() -> dict:
    return yaml.safe_load((benchmark.REPO_ROOT / "params.yaml").read_text())


def test_baseline_trains_one_reference_style_model_on_the_labels():
    committed = committed_params()
    baseline = benchmark.baseline_params(committed, epochs=2)
    trained = train.Params(**baseline["train"])
    assert baseline["teachers"]["seeds"] == [] and trained.max_epochs == 2
    assert trained.linear_teacher_weight == 0 and trained.window_copies == 0
    assert (trained.embedding_dim, trained.lstm_units, trained.lstm_layers) == (128, 64, 1)
    assert not trained.bidirectional and not trained.bucket_by_length
    assert trained.pooling == "last" and trained.batch_size == 32
    prepared = preprocess.Params(**baseline["preprocess"])
    assert (prepared.vocab_size, prepared.max_length, prepared.padding) == (10000, 500, "post")
    assert committed == committed_params()


def test_baseline_does_not_follow_the_pipelines_optimiser_settings():
    committed = committed_params()
    retuned = benchmark.with_overrides(
        committed, {"train": {"learning_rate": 0.01, "clipnorm": 5.0, "batch_size": 128}}
    )
    assert benchmark.baseline_params(retuned, 2) == benchmark.baseline_params(committed, 2)
    assert benchmark.baseline_params(committed, 2)["train"]["learning_rate"] == 0.002


def test_ui_clicker_clicks_analyse_through_gradios_client(live_server):
    with serving.ui_clicker(live_server, "a great film " * 20) as clicks:
        deadline = time.monotonic() + 60
        while clicks["clicks"] < 2:
            assert time.monotonic() < deadline and clicks["errors"] == 0
            time.sleep(0.1)
    assert clicks["errors"] == 0 and len(clicks["seconds"]) == clicks["clicks"]


def test_soak_runs_bounded_and_reports_each_minute(pipeline_run, tmp_path, monkeypatch):
    reviews = tmp_path / "reviews.csv"
    reviews.write_text("text\nA fine film.\nDull and long.\nThe best acting of the year.\n")
    out = tmp_path / "soak.json"
    argv = ["soak.py", "--model", str(pipeline_run / "models/end_to_end.keras")]
    argv += ["--reviews", str(reviews), "--minutes", "0.1", "--clients", "3", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    started = time.monotonic()
    assert soak.main() == 0
    report = json.loads(out.read_text())
    assert time.monotonic() - started < 120
    (minute,) = report["minutes"]
    assert minute["requests"] > 0 and minute["errors"] == 0 and minute["rss_mb"] > 0
    assert minute["given_up"] >= 1 and report["ui_clicks"] >= 1 and report["server_alive_at_end"]


def test_ablation_finds_every_rounds_files_in_bench_rounds():
    for name in ("round1", "round2", "round3", "round5", "round14", "round15"):
        folder = ablation.round_folder(name)
        rows = [json.loads(line) for line in (folder / "ablation.jsonl").read_text().splitlines()]
        variants = yaml.safe_load((folder / "ablations.yaml").read_text())
        assert rows and {row["variant"] for row in rows} <= set(variants)
        assert (folder / "ablation.md").read_text().startswith("| variant |")
    assert ablation.round_folder().name == "round15"
    with pytest.raises(SystemExit, match="rounds: round1, round2"):
        ablation.round_folder("round99")


def test_the_naive_reference_is_the_students_network_unbucketed_for_one_epoch_on_labels():
    committed = committed_params()
    naive = benchmark.naive_params(committed)
    changed = {
        (section, key)
        for section, values in naive.items()
        for key, value in values.items()
        if committed[section][key] != value
    }
    learns_the_labels = {("teachers", "seeds"), ("train", "linear_teacher_weight"),
                         ("train", "window_copies"), ("train", "calibrate"),
                         ("train", "linear_branch"),
                         ("train", "linear_branch_triples"),
                         ("train", "linear_branch_pairs"),
                         ("train", "linear_branch_short_views"),
                         ("train", "linear_branch_sentences")}  # fmt: skip
    assert changed == {("train", "bucket_by_length"), ("train", "max_epochs")} | learns_the_labels
    assert naive["train"]["bucket_by_length"] is False and naive["train"]["max_epochs"] == 1
    assert committed == committed_params()


def test_peak_rss_of_tree_counts_the_children_of_a_process():
    # The parent holds ~0 MB extra; its child holds 150 MB: the tree's peak must include it.
    child = "x = bytearray(150 * 2**20); import time; time.sleep(1.5)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    process = subprocess.Popen([sys.executable, "-c", parent])
    peak = benchmark.peak_rss_of_tree(process, interval=0.05)
    process.wait(30)
    time.sleep(0.1)
    assert peak[0] > 150 * 2**20


def test_the_reference_is_the_pipelines_own_run_when_the_params_are_round_13s():
    report = {"pipeline": fake_run(300.0, 0.88), "reference": {"same_as_pipeline": True}}
    assert benchmark.reference_run(report) is report["pipeline"]


def test_the_round_13_reference_pins_every_key_and_ignores_retuning():
    committed = committed_params()
    for section in ("preprocess", "teachers", "teacher", "train"):
        assert set(benchmark.ROUND_13[section]) == set(committed[section]), section
    retuned = benchmark.with_overrides(committed, {"teachers": {"seeds": [1]}})
    assert benchmark.reference_params(retuned) == benchmark.reference_params(committed)
    assert benchmark.reference_params(retuned)["teachers"]["seeds"] == [42, 43, 44]


def test_compute_use_divides_the_achieved_rate_by_the_matrix_rate(tmp_path):
    from bench import flops
    from imdb_sentiment.data import dataset

    x = np.array([[0, 0, 5, 6], [7, 8, 9, 3]], np.int32)  # 2 and 4 tokens: 3 on average
    (tmp_path / "data/prepared").mkdir(parents=True)
    dataset.save_arrays(tmp_path / "data/prepared/train.npz", np.arange(2), x, np.array([0, 1]))
    run = {"params": committed_params(), "train": {"train_reviews_per_second": 1000.0}}
    use = benchmark.compute_use(run, tmp_path, matrix_gflops=100.0)
    network = argparse.Namespace(**run["params"]["train"])
    expected = flops.training_flops_per_review(network, 3.0) * 1000.0 / 1e9
    assert use["mean_tokens_per_review"] == 3.0
    assert use["achieved_gflops"] == round(expected, 1)
    assert use["share_of_matrix_rate"] == round(expected / 100.0, 3)


def test_the_matrix_rate_is_a_positive_gflops_figure():
    assert benchmark.matrix_rate_gflops(size=64, repeats=3) > 0


def test_the_lstm_kernels_timed_by_the_profile_compute_keras_lstm():
    _, keras_outputs = training_profile.lstm_pass("Keras LSTM", 3, 7, 5, 4)
    for implementation in ("BlockLSTMV2", "HoistedLSTM"):
        _, outputs = training_profile.lstm_pass(implementation, 3, 7, 5, 4)
        np.testing.assert_allclose(outputs(), keras_outputs(), atol=1e-6)
    step, _ = training_profile.lstm_pass("Keras LSTM, XLA", 3, 7, 5, 4)
    assert [gradient.shape for gradient in step()] == [(5, 16), (4, 16), (16,)]


def test_the_profile_times_an_epoch_of_the_real_trainer(pipeline_run):
    variants = {"words only": {"pair_vocab_size": 0}}
    (row,) = training_profile.epoch_rows(pipeline_run / "data/prepared", 10, variants)
    assert row["case"] == "words only" and row["reviews"] == 10 and row["reviews_per_s"] > 0


def test_the_student_rerun_report_gives_both_times_the_ratio_and_what_reran():
    from bench import student_rerun

    run = {"repro_s": 600.0, "student_experiment_s": 150.0, "repro_stages": [],
           "student_experiment_stages": ["train", "evaluate"]}  # fmt: skip
    report = {
        "date": "2026-12-06 17:00 UTC", "command": "python bench/student_rerun.py",
        "machine": {"cores": 2, "cpu": "AMD EPYC"}, "single_stage_rev": "21313a5",
        "teacher_stages": run, "ratio": 0.3, "eval_json": "the same bytes",
        "single_train_stage": {**run, "student_experiment_s": 500.0},
    }  # fmt: skip
    text = student_rerun.markdown(report)
    assert "| teacher stages (this commit) | 10.0 | 2.5 | train, evaluate |" in text
    assert "| one train stage (21313a5) | 10.0 | 8.3 | train, evaluate |" in text
    assert "**0.3**" in text and "the same bytes" in text and "AMD EPYC" in text


def test_write_report_writes_the_figures_and_the_text(tmp_path, capsys):
    benchmark.write_report({"ratio": 0.3}, "# text\n", tmp_path / "out/student-rerun")
    assert json.loads((tmp_path / "out/student-rerun.json").read_text()) == {"ratio": 0.3}
    assert (tmp_path / "out/student-rerun.md").read_text() == "# text\n"
    assert "# text" in capsys.readouterr().out


def test_the_overhead_alternates_plain_and_instrumented_servers_and_divides_medians(
    monkeypatch,
):
    started = []

    class Server:
        def terminate(self) -> None: ...

        def wait(self, seconds: float) -> None: ...

    def start(model, instrumented=False, **_):
        started.append(instrumented)
        return Server(), "on" if instrumented else "off"

    figures = iter([(10, 100), (12, 90), (10, 120), (14, 90)])  # off, on, off, on

    def load_test(base: str) -> dict:
        p99, rate = next(figures)
        return {"p99_ms": p99, "requests_per_second": rate, "server": base}

    monkeypatch.setattr(serving, "start_server", start)
    cost = serving.observability_overhead(Path("m.keras"), load_test, rounds=2)
    assert started == [False, True, False, True]
    assert [r["server"] for r in cost["runs"]["on"]] == ["on", "on"]
    assert cost["p99_ratio"] == round(13 / 10, 3)  # medians: on 13 ms, off 10 ms
    assert cost["throughput_ratio"] == round(90 / 110, 3)


def test_mutation_modules_and_their_tests_exist():
    for module, tests in mutation.MODULES.items():
        assert (mutation.REPO_ROOT / "src" / "imdb_sentiment" / module).is_file(), module
        assert all((mutation.REPO_ROOT / test).is_file() for test in tests), tests


SOURCE_WITH_DECORATORS = """
import contextlib
import functools
import numba


@contextlib.contextmanager
def plus_one(x):
    yield x + 1


@numba.njit(inline="always")
def double(a):
    return a * 2


@functools.cache
def cached(a):
    return a - 1
"""


def test_mutmut_is_widened_to_context_managers_and_numba_loops_only(monkeypatch):
    from mutmut.mutation import file_mutation, trampoline

    arrangement = file_mutation.function_trampoline_arrangement  # both restored after the test
    monkeypatch.setattr(file_mutation, "function_trampoline_arrangement", arrangement)
    visitor = file_mutation.MutationVisitor
    monkeypatch.setattr(visitor, "_skip_node_and_children", visitor._skip_node_and_children)
    mutation.widen_mutmut()
    mutated = file_mutation.mutate_file_contents("m.py", SOURCE_WITH_DECORATORS)
    functions = {name.split("__mutmut")[0] for name in mutated.mutant_names}
    assert functions == {"x_plus_one", "x_double"}  # not the cached one
    namespace = {"__name__": "m"}
    exec(compile(mutated.code, "m.py", "exec"), namespace)
    plus_one_mutant = next(n for n in mutated.mutant_names if n.startswith("x_plus_one"))
    for mutant, expected in (("", 2), (f"m.{plus_one_mutant}", 0)):
        trampoline.set_mutant_under_test(mutant)
        monkeypatch.setenv("MUTANT_UNDER_TEST", mutant)
        with namespace["plus_one"](1) as value:
            assert value == expected, mutant
    trampoline.set_mutant_under_test(None)


def test_mutation_report_tables_the_scores_and_lists_every_survivor():
    entry = {"mutants": 4, "killed": 2, "timeout": 0, "survived": 2, "no tests": 0}
    report = {
        "updated": "2026-12-07T03:00:00+00:00",
        "modules": {
            "fileio.py": {
                **entry, "equivalent": 1, "score": 2 / 3,
                "not_killed": {
                    "x_a__mutmut_1": {"status": "survived", "diff": "-a\n+b", "equivalent": None},
                    "x_a__mutmut_2": {"status": "survived", "diff": "-c\n+d", "equivalent": "same"},
                },
            }
        },
    }  # fmt: skip
    assert "| `fileio.py` | 4 | 2 | 0 | 2 | 0 | 1 | 50.0% | 66.7% |" in mutation.score_table(report)
    listing = mutation.markdown(report)
    assert "- `x_a__mutmut_1` (survived): `-a / +b`" in listing
    assert "- `x_a__mutmut_2` (equivalent: same): `-c / +d`" in listing


def test_without_mutmuts_private_rule_the_run_keeps_mutmuts_own_rules(monkeypatch):
    from mutmut.mutation import file_mutation

    monkeypatch.delattr(file_mutation.MutationVisitor, "_skip_node_and_children")
    arrangement = file_mutation.function_trampoline_arrangement
    with pytest.warns(UserWarning, match="decorated functions are not mutated"):
        mutation.widen_mutmut()
    assert file_mutation.function_trampoline_arrangement is arrangement


def test_blend_forms_scores_each_review_by_a_blend_fitted_on_the_other_folds():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from bench import blend_forms

    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 20)
    features = {
        v: rng.normal(y[:, None] * (i + 1), 1.0, (40, 2)) for i, v in enumerate(blend_forms.VIEWS)
    }
    scored = blend_forms.cross_fitted(features, y)
    fitted_on, held_out = next(StratifiedKFold(5, shuffle=True, random_state=0).split(y, y))
    regression = LogisticRegression(C=blend_forms.linear_branch.BLEND_C, max_iter=1000).fit(
        np.concatenate([features[v][fitted_on] for v in blend_forms.VIEWS]),
        np.tile(y[fitted_on], len(blend_forms.VIEWS)),
    )
    for view in blend_forms.VIEWS:
        expected = regression.predict_proba(features[view][held_out])[:, 1]
        np.testing.assert_allclose(scored[view][held_out], expected, rtol=1e-6)
    # Positives at 0.9 (right, 0.1 under-confident), negatives at 0.6 (wrong, 0.6 over).
    scores = np.where(y == 1, 0.9, 0.6)
    table = blend_forms.table({"m": {v: scores for v in blend_forms.VIEWS}}, y)
    assert "| m | 0.5000 / 0.350 | 0.5000 / 0.350 | 0.5000 / 0.350 |" in table


def test_a_review_marks_the_listed_survivors_equivalent_and_scores_the_rest(monkeypatch):
    monkeypatch.setitem(mutation.EQUIVALENT, "m.py", {"x_b__mutmut_2": "same output"})
    monkeypatch.setitem(mutation.TESTED_SINCE, "m.py", {"x_a__mutmut_1": "test_a"})
    result = {
        "mutants": 10, "killed": 6, "timeout": 1, "survived": 3, "skipped": 0,
        "not_killed": {name: {"status": "survived", "diff": "-a\n+b"} for name in
                       ("x_a__mutmut_1", "x_b__mutmut_2", "x_c__mutmut_3")},
    }  # fmt: skip
    reviewed = mutation.apply_review("m.py", result)
    assert reviewed["equivalent"] == 1 and reviewed["score"] == round(7 / 9, 4)
    assert reviewed["not_killed"]["x_b__mutmut_2"]["equivalent"] == "same output"
    listing = mutation.markdown({"modules": {"m.py": reviewed}})
    assert "- `x_a__mutmut_1` (survived; killed since by `test_a`): `-a / +b`" in listing
    assert "- `x_c__mutmut_3` (survived): `-a / +b`" in listing


def test_modules_whose_tests_run_tensorflow_get_mutmuts_fork_server():
    forked = mutation.mutmut_config("data/text.py", ["tests/data/test_text.py"])
    assert 'process_isolation = "forkserver"' in forked and "timeout_constant = 10" in forked
    assert "forkserver" not in mutation.mutmut_config("fileio.py", ["tests/test_fileio.py"])
    assert set(mutation.TENSORFLOW_TESTS) <= set(mutation.MODULES)


def test_a_sample_is_drawn_from_mutmuts_own_names_and_tabled_as_one():
    names = mutation.mutant_names("params.py")
    assert len(names) == len(set(names)) > 100
    assert all(re.fullmatch(r"imdb_sentiment\.params\.x\w*__mutmut_\d+", n) for n in names)
    entry = {"mutants": 4, "killed": 3, "timeout": 0, "survived": 1, "no tests": 0,
             "equivalent": 0, "score": 0.75, "sample_of": 455, "not_killed": {}}  # fmt: skip
    table = mutation.score_table({"modules": {"scoring/lstm_kernel.py": entry}})
    assert "| `scoring/lstm_kernel.py` | 4 (a sample of 455) | 3 | 0 | 1 |" in table


REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(
    path.name
    for path in (REPO_ROOT / "bench").glob("*.py")
    if "def main" in path.read_text() and "argparse" in path.read_text()
)


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_bench_script_runs_as_its_docs_say(script: str) -> None:
    """`python bench/<script> --help` from the repository root, as the docs run them: a
    script that imports `bench` as a package must find it without PYTHONPATH."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, f"bench/{script}", "--help"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "usage:" in run.stdout


def blend_forms_project(folder, x: np.ndarray, y: np.ndarray, monkeypatch) -> None:
    """A project folder holding only the training split blend_forms' regressions read, with
    one pair vocabulary of 50."""
    from bench import blend_forms
    from imdb_sentiment.data import dataset

    prepared = folder / "data" / "prepared"
    prepared.mkdir(parents=True)
    dataset.save_arrays(prepared / "train.npz", np.arange(len(x)), x, y)
    monkeypatch.setattr(blend_forms, "PAIR_VOCABULARIES", (50,))


def test_blend_forms_fits_a_bag_of_id_triples_beside_words_and_pairs(tmp_path, monkeypatch):
    """Positives read 2 3 2 4 2, negatives 2 4 2 3 2: the same words and the same pairs, so
    only the bag of triples ((3, 2, 4) against (4, 2, 3)) tells them apart."""
    from bench import blend_forms

    y = np.arange(200) % 2
    x = np.array([[0, 2, 3, 2, 4, 2] if label else [0, 2, 4, 2, 3, 2] for label in y], np.int32)
    blend_forms_project(tmp_path, x, y, monkeypatch)
    encoded = {view: x[:40] for view in blend_forms.VIEWS}
    scored = blend_forms.id_regressions(tmp_path, encoded, 10, triples=(100,))
    assert set(scored) == {"NB LR over ids, 50 pairs", "NB LR over ids, 50 pairs + 100 triples"}
    pairs_only = scored["NB LR over ids, 50 pairs"]["full"]
    assert np.ptp(pairs_only) == 0  # one answer for every review: it cannot tell them apart
    with_triples = scored["NB LR over ids, 50 pairs + 100 triples"]["full"]
    assert np.array_equal(with_triples >= 0.5, y[:40] == 1)
    tfidf = blend_forms.id_regressions(tmp_path, encoded, 10, triples=(100,), tfidf=True)
    weighted = tfidf["TF-IDF LR over ids, 50 pairs + 100 triples"]["full"]
    assert np.array_equal(weighted >= 0.5, y[:40] == 1)
    assert not np.allclose(weighted, with_triples)  # weighted otherwise


def test_blend_forms_windows_are_runs_of_their_reviews_with_their_labels(tmp_path, monkeypatch):
    from bench import blend_forms

    rng = np.random.default_rng(3)
    y = np.arange(60) % 2
    x = np.zeros((60, 50), np.int32)
    for row, length in enumerate(rng.integers(3, 50, 60)):
        x[row, -length:] = rng.integers(2, 10, length) + 10 * y[row]  # labels own the ids
    x_all, y_all = blend_forms.with_windows(x, y, 2)
    assert x_all.shape == (180, 50) and np.array_equal(y_all, np.tile(y, 3))
    assert np.array_equal(x_all[:60], x)
    for row, window in enumerate(x_all[60:]):
        tokens, review = window[window != 0], x[row % 60][x[row % 60] != 0]
        assert min(5, len(review)) <= len(tokens) <= 40
        assert any(np.array_equal(review[i : i + len(tokens)], tokens) for i in range(len(review)))
    blend_forms_project(tmp_path, x, y, monkeypatch)
    encoded = {view: x[:10] for view in blend_forms.VIEWS}
    scored = blend_forms.id_regressions(tmp_path, encoded, 20, triples=(100,), windows=(2,))
    windowed = scored["NB LR over ids, 50 pairs + 100 triples, and 2 window(s) of each review"]
    plain = scored["NB LR over ids, 50 pairs + 100 triples"]
    assert not np.allclose(windowed["full"], plain["full"])  # fitted on more rows
    assert np.array_equal(windowed["full"] >= 0.5, y[:10] == 1)


def test_blend_forms_blend_with_a_second_linear_model_uses_its_logit():
    """The first linear model is noise, the second knows the labels: only a blend that reads
    the second one's logit can tell the reviews apart."""
    from bench import blend_forms

    rng = np.random.default_rng(4)
    y = np.arange(300) % 2
    ids = np.zeros((300, 30), np.int32)
    ids[:, -10:] = 5
    noise = {v: rng.uniform(0.2, 0.8, 300) for v in blend_forms.VIEWS}
    knows = {v: np.where(y == 1, 0.9, 0.1) for v in blend_forms.VIEWS}
    encoded = {v: ids for v in blend_forms.VIEWS}
    alone = blend_forms.length_aware_blend(noise, noise, encoded, y)
    both = blend_forms.length_aware_blend(noise, noise, encoded, y, second=knows)
    assert np.mean((alone["full"] >= 0.5) == y) < 0.7
    assert np.array_equal(both["full"] >= 0.5, y == 1)


def test_window_targets_draws_the_windows_the_train_stage_draws():
    from bench import window_targets
    from imdb_sentiment.params import load_stage_params
    from imdb_sentiment.training import fitting

    rng = np.random.default_rng(5)
    x = np.zeros((30, 60), np.int32)
    for row, length in enumerate(rng.integers(1, 60, 30)):
        x[row, -length:] = rng.integers(2, 50, length)
    params = load_stage_params("train", train.Params, Path("params.yaml"))
    params = params.model_copy(update={"window_copies": 2})
    staged, _ = fitting.with_windows(params, (x, np.zeros(30)), params.seed + 1)
    assert np.array_equal(np.concatenate([x, *window_targets.windows_of(params, x, 2)]), staged)


def test_window_targets_trains_on_the_windows_and_targets_it_is_given(monkeypatch):
    from bench import window_targets
    from imdb_sentiment.params import load_stage_params
    from imdb_sentiment.training import fitting

    params = load_stage_params("train", train.Params, Path("params.yaml"))
    x, windows = np.ones((4, 8), np.int32), [np.full((4, 8), 3, np.int32)]
    seen = {}

    def fake_train_student(params, train_split, validation, words, placement, *soft):
        seen["student"] = fitting.with_windows(params, train_split, 0)
        return argparse.Namespace(classifier="network")

    monkeypatch.setattr(fitting, "train_student", fake_train_student)
    original = fitting.with_windows
    soft = (np.full(4, 0.8, np.float32), np.full(4, 0.4, np.float32))
    data = {"train": (x, np.ones(4)), "validation": (x, np.ones(4))}
    window_targets_given = np.full(4, 0.25, np.float32)
    model = window_targets.served_network(params, data, 10, soft, windows, window_targets_given)
    x_all, y_all = seen["student"]
    review_targets = fitting.student_targets(params, *soft)
    assert model == "network" and fitting.with_windows is original
    assert np.array_equal(x_all, np.concatenate([x, windows[0]]))
    assert np.allclose(y_all, np.concatenate([review_targets, window_targets_given]))


def test_blend_rows_scores_each_review_by_a_blend_fitted_on_the_other_folds_chosen_rows():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from bench import blend_rows

    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 20)
    kinds = (*blend_rows.VIEWS, *blend_rows.EDGES)
    features = {k: rng.normal(y[:, None] * (i + 1), 1.0, (40, 5)) for i, k in enumerate(kinds)}
    fitted_on = ("full", "last_20_tokens")
    scored = blend_rows.cross_fitted_on(features, y, fitted_on)
    folds = StratifiedKFold(blend_rows.FOLDS, shuffle=True, random_state=0).split(y, y)
    train_reviews, held_out = next(iter(folds))
    regression = LogisticRegression(C=blend_rows.linear_branch.BLEND_C, max_iter=1000).fit(
        np.concatenate([features[k][train_reviews] for k in fitted_on]),
        np.tile(y[train_reviews], 2),
    )
    for view in blend_rows.VIEWS:
        np.testing.assert_allclose(
            scored[view][held_out], regression.predict_proba(features[view][held_out])[:, 1]
        )


def test_linear_views_picks_every_sentence_the_last_k_or_k_random_ones_in_order():
    from bench import linear_views

    rng = np.random.default_rng(0)
    parts = ["a", "b", "c", "d"]
    assert linear_views.picked(parts, "every", rng) == [0, 1, 2, 3]
    assert linear_views.picked(parts, "last 3", rng) == [1, 2, 3]
    assert linear_views.picked(parts[:2], "last 3", rng) == [0, 1]
    chosen = linear_views.picked(parts, "random 2", rng)
    assert len(chosen) == 2 and chosen == sorted(set(chosen)) and set(chosen) <= {0, 1, 2, 3}


@pytest.mark.parametrize("student, linear_branch", [(True, False), (False, True), (True, True)])
def test_short_views_adds_the_views_to_what_each_learner_is_given(
    monkeypatch, student, linear_branch
):
    from bench import short_views
    from imdb_sentiment.params import load_stage_params
    from imdb_sentiment.training import fitting

    params = load_stage_params("train", train.Params, Path("params.yaml"))
    params = params.model_copy(update={"window_copies": 0})
    x, views = np.ones((3, 5), np.int32), np.full((6, 5), 7, np.int32)
    targets, labels = np.array([0.9, 0.2, 0.6]), np.array([1, 0, 1])
    seen = {}
    monkeypatch.setattr(fitting, "fit_linear_model", lambda *a: seen.setdefault("branch", a[1]))
    original = (fitting.with_windows, fitting.fit_linear_model)
    with short_views.learning_views(student, linear_branch, views, 0):
        x_student, y_student = fitting.with_windows(params, (x, targets), 0)
        fitting.fit_linear_model(params, (x, labels), None, None)
    assert (fitting.with_windows, fitting.fit_linear_model) == original
    x_branch, y_branch = seen["branch"]
    assert len(x_student) == (9 if student else 3) and len(x_branch) == (9 if linear_branch else 3)
    if student:
        np.testing.assert_array_equal(x_student[3:], views)
        np.testing.assert_allclose(y_student, np.tile(targets, 3))
    if linear_branch:
        np.testing.assert_array_equal(x_branch[3:], views)
        np.testing.assert_array_equal(y_branch, np.tile(labels, 3))


def test_served_views_full_column_is_evaluates_validation_accuracy(
    pipeline_run, capsys, monkeypatch
):
    """The full-review column is the validation accuracy that evaluate reports for the same
    network; the same project under a second name gives the same row."""
    from bench import served_views

    argv = ["served_views.py", f"a={pipeline_run}", f"b={pipeline_run}"]
    monkeypatch.setattr(sys, "argv", argv)
    assert served_views.main() == 0
    lines = capsys.readouterr().out.splitlines()
    (row_a,) = [line for line in lines if line.startswith("| a |")]
    (row_b,) = [line for line in lines if line.startswith("| b |")]
    assert row_a[5:] == row_b[5:]
    report = json.loads((pipeline_run / "metrics/eval.json").read_text())
    assert row_a.split(" | ")[1].split(" / ")[0] == f"{report['validation_accuracy']:.4f}"


def test_served_views_refuses_an_argument_without_a_name():
    from bench import served_views

    with pytest.raises(SystemExit, match="'models' is not NAME=PROJECT"):
        served_views.projects_of(["models"])

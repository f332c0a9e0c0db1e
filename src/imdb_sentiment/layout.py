"""Where the pipeline's stages read and write, relative to the project root: named once here
for the stage scripts; dvc.yaml declares the same paths as deps and outs, and
tests/test_dvc_pipeline.py holds the two equal."""

from pathlib import Path

RAW_DIR = Path("data/raw")  # download: train.csv, test.csv, source.json
CACHE_DIR = Path("data/cache")  # downloaded archives and tables (not a DVC output)
PREPARED_DIR = Path("data/prepared")  # preprocess: encoded arrays, encoder.json
PREPROCESS_METRICS = Path("metrics/preprocess.json")
LINEAR_DIR = Path("data/linear_baseline")
LINEAR_MODEL = LINEAR_DIR / "model.pkl"
LINEAR_SCORES = LINEAR_DIR / "out_of_fold.npz"  # what the student may learn from
LINEAR_METRICS = Path("metrics/linear_baseline.json")
TEACHERS_DIR = Path("data/teachers")  # <seed>.npz per teacher stage
LIVE_DIR = Path("dvclive")  # DVCLive's folder per member: teacher-<seed>, student
MODELS_DIR = Path("models")  # train: classifier.keras, end_to_end.keras, model_card.json
END_TO_END_MODEL = MODELS_DIR / "end_to_end.keras"  # what serving loads by default
TRAIN_METRICS = Path("metrics/train.json")
EVAL_METRICS = Path("metrics/eval.json")
PLOTS_DIR = Path("plots/evaluate")
ERRORS_DIR = Path("data/evaluation")  # confidently wrong reviews, probe results
PROBES_FILE = Path("data/probes.csv")
EXPORT_DIR = Path("exported/sentiment")  # TensorFlow Serving's <model name> folder

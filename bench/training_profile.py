"""Where a training step's time goes: the LSTM kernels alone, then one epoch of the real trainer.

    python bench/training_profile.py --prepared data/prepared --reviews 3200

Part 1 times one forward and backward pass of a single LSTM (64 units over 128-wide inputs,
230 steps, the default network's size) in four implementations on the same weights:
Keras' LSTM layer (round 13's kernel), `imdb_sentiment.training.hoisted_lstm.HoistedLSTM` (today's),
TensorFlow's fused CPU op `BlockLSTMV2`, and Keras' layer under XLA (`jit_compile`); and Keras'
layer at batch 128 and 256. Part 2 trains one
epoch of the pipeline's own trainer (`imdb_sentiment.training.fitting`) on a seeded subset of the
prepared training reviews, with the committed train params and with one change at a time; it
times the second epoch, after the first has traced the step for every bucket's shape.
Prints a table and writes bench/training-profile.json; name the CPU with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # run as a script: the stages and bench as packages

from bench.benchmark import machine, matrix_rate_gflops, median_seconds  # noqa: E402
from imdb_sentiment.training.hoisted_lstm import HoistedLSTM  # noqa: E402

ROUND_13_KERNELS = {"lstm_kernel": "keras", "rowwise_embedding_updates": False}
EPOCH_VARIANTS = {
    "committed params": {},
    "Keras' LSTM and Adam (round 13)": ROUND_13_KERNELS,
    "hoisted LSTM, Keras' Adam": {"rowwise_embedding_updates": False},
    "Keras' LSTM, row-wise Adam": {"lstm_kernel": "keras"},
    "words only (pair_vocab_size 0)": {"pair_vocab_size": 0},
    "no weight averaging (ema_momentum 0)": {"ema_momentum": 0.0},
}


def lstm_pass(implementation: str, batch: int, steps: int, width: int, units: int):
    """(a compiled forward+backward pass returning the gradients, the sequence outputs),
    on the same inputs and weights for every implementation."""
    keras.utils.set_random_seed(0)
    inputs = tf.random.normal([batch, steps, width], seed=1)
    hoisted = implementation == "HoistedLSTM"
    layer = (HoistedLSTM if hoisted else keras.layers.LSTM)(units, return_sequences=True)
    layer.build((batch, steps, width))
    cell = layer.cell
    weights = [cell.kernel, cell.recurrent_kernel, cell.bias]

    def outputs() -> tf.Tensor:
        if implementation != "BlockLSTMV2":
            return layer(inputs, mask=tf.ones([batch, steps], bool), training=True)
        zeros = tf.zeros([batch, units])
        peephole = tf.zeros([units])
        sequences = tf.raw_ops.BlockLSTMV2(
            seq_len_max=tf.constant(steps, tf.int64),
            x=tf.transpose(inputs, [1, 0, 2]),
            cs_prev=zeros,
            h_prev=zeros,
            w=tf.concat([cell.kernel, cell.recurrent_kernel], 0),
            wci=peephole,
            wcf=peephole,
            wco=peephole,
            b=cell.bias,
            cell_clip=0.0,
            use_peephole=False,
        )[6]
        return tf.transpose(sequences, [1, 0, 2])

    @tf.function(jit_compile=implementation == "Keras LSTM, XLA")
    def forward_backward() -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(outputs())
        return tape.gradient(loss, weights)

    return forward_backward, outputs


def kernel_rows(steps: int, repeats: int) -> list[dict]:
    rows = []
    names = ("Keras LSTM", "HoistedLSTM", "BlockLSTMV2", "Keras LSTM, XLA")
    cases = [(name, 64) for name in names]
    cases += [("Keras LSTM", 128), ("Keras LSTM", 256)]
    for implementation, batch in cases:
        step, _ = lstm_pass(implementation, batch, steps, 128, 64)
        ms = median_seconds(step, repeats) * 1000
        rows.append({"case": f"{implementation}, batch {batch}", "ms_per_pass": round(ms, 1),
                     "reviews_per_s": round(batch / ms * 1000)})  # fmt: skip
    return rows


def epoch_rows(prepared: Path, reviews: int, variants: dict[str, dict]) -> list[dict]:
    from imdb_sentiment.data import dataset, text
    from imdb_sentiment.training import batches, fitting, model
    from stages import train

    committed = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["train"]
    _, x, y = dataset.load_arrays(prepared, "train")
    pick = np.random.default_rng(0).choice(len(x), min(reviews, len(x)), replace=False)
    x, y = x[pick], y[pick]
    words = text.load_encoder(prepared / "encoder.json").vocab_size
    rows = []
    for name, overrides in variants.items():
        params = train.Params(**{**committed, **overrides})
        vocabularies = fitting.build_vocabularies(params, x, words)
        keras.utils.set_random_seed(params.seed)
        _, trainer = fitting._build(params, vocabularies, "profiled")
        model.compile_classifier(
            trainer,
            params.learning_rate,
            params.clipnorm,
            params.ema_momentum,
            rowwise_embeddings=params.rowwise_embedding_updates,
        )
        batches = batches.BucketedBatches(x, y, params.batch_size, params.seed, True).as_dataset()
        trainer.fit(batches, verbose=0)  # an epoch to trace every bucket's shape first
        started = time.perf_counter()
        trainer.fit(batches, verbose=0)
        seconds = time.perf_counter() - started
        rows.append({"case": name, "reviews": len(x), "epoch_s": round(seconds, 2),
                     "reviews_per_s": round(len(x) / seconds)})  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepared", type=Path, required=True, help="preprocess's output")
    parser.add_argument("--reviews", type=int, default=3200, help="training reviews to time")
    parser.add_argument("--steps", type=int, default=230, help="LSTM steps in part 1")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench/training-profile.json")
    args = parser.parse_args()
    report = {
        "command": " ".join(["python", "bench/training_profile.py", *sys.argv[1:]]),
        "machine": {**machine(), "matrix_gflops": matrix_rate_gflops()},
        "kernels": kernel_rows(args.steps, args.repeats),
        "epochs": epoch_rows(args.prepared, args.reviews, EPOCH_VARIANTS),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for row in report["kernels"] + report["epochs"]:
        print(" | ".join(f"{key} {value}" for key, value in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

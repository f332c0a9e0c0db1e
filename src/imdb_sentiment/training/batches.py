"""Training batches: reviews of similar length together, trimmed to their longest member."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from imdb_sentiment.data import dataset
from imdb_sentiment.malloc import reuse_large_buffers


class BucketedBatches:
    """Batches of similar-length reviews, trimmed to their longest member.

    An LSTM costs time per step, padded or not; grouping reviews by length cuts the steps.
    Reviews are shuffled, then sorted within windows of ``window_batches`` batches, so each
    epoch (each iteration) still sees a fresh order drawn from the seeded generator.
    With ``seed=None`` the order is fixed (for validation).
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        seed: int | None,
        bucketed: bool = True,
        window_batches: int = 32,
    ) -> None:
        self.x, self.y = x, y.astype("float32").reshape(-1, 1)
        self.batch_size, self.bucketed, self.window = batch_size, bucketed, window_batches
        self.lengths = dataset.token_counts(x)
        self.rng = np.random.default_rng(seed) if seed is not None else None
        self.shards, self.shard = 1, 0

    def sharded(self, shards: int, shard: int) -> BucketedBatches:
        """Keep rows ``shard``, ``shard + shards``, ... of every batch: one worker's share.
        Every worker plans the same epoch (same seed), so the workers' shares of a step
        make up the one batch a single process would take, and a step's gradient is that
        batch's; a last batch of fewer rows than workers is left out."""
        self.shards, self.shard = shards, shard
        return self

    def __len__(self) -> int:
        batches = math.ceil(len(self.x) / self.batch_size)
        last = len(self.x) - (batches - 1) * self.batch_size
        return batches - (0 < last < self.shards)

    def plan(self) -> list[np.ndarray]:
        """Row indices of each batch for one epoch."""
        order = np.arange(len(self.x)) if self.rng is None else self.rng.permutation(len(self.x))
        if self.bucketed:
            window = self.batch_size * self.window
            chunks = np.split(order, range(window, len(order), window))
            order = np.concatenate([dataset.shortest_first(self.lengths, c) for c in chunks])
        batches = np.split(order, range(self.batch_size, len(order), self.batch_size))
        if self.rng is not None:
            self.rng.shuffle(batches)
        if self.shards > 1:
            batches = [
                rows[self.shard :: self.shards] for rows in batches if len(rows) >= self.shards
            ]
        return batches

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        # Here, not at import: TensorFlow resets glibc's thresholds when a generator dataset
        # first runs, which is before this generator's first batch.
        reuse_large_buffers()
        for rows in self.plan():
            x = self.x[rows]
            yield (dataset.trim_padding(x) if self.bucketed else x), self.y[rows]

    def as_dataset(self) -> tf.data.Dataset:
        """A tf.data pipeline over this object; each epoch re-iterates, so re-plans."""
        # Declared, not inferred: Keras would otherwise fix the length from the first batches.
        signature = (
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([None, 1], tf.float32),
        )
        dataset = tf.data.Dataset.from_generator(self.__iter__, output_signature=signature)
        cardinality = tf.data.experimental.assert_cardinality(len(self))
        options = tf.data.Options()
        # Under a multi-worker strategy each worker reads its own share (sharded()) already.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        # No autotuning: closing an iterator waited for its tuner's next wake-up (at 5.1,
        # 10.2, 20.5, 41 s ... after the iterator opened), costing up to half an epoch.
        options.autotune.enabled = False
        return dataset.apply(cardinality).prefetch(2).with_options(options)

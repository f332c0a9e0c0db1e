"""glibc's allocator settings for training: large buffers are reused, not handed back.

TensorFlow's generator dataset (``tf.data.Dataset.from_generator``, which
:class:`~imdb_sentiment.training.batches.BucketedBatches` feeds) sets glibc's trim threshold
to 128 KB
the first time it runs (its log says "Memory patch applied"). Setting it also pins the mmap
threshold at 128 KB, so from then on every buffer over 128 KB, each LSTM's gates and most of a
training step's tensors among them, is a fresh ``mmap`` that the kernel zeroes page by page and
takes back when freed. Raising both thresholds again lets freed buffers serve the next step:
one step of the default trainer took 97 instead of 124 ms (docs/benchmarks.md).

The price is memory that stays with the process once freed; :func:`release_free_memory` hands
it back between classifiers.
"""

from __future__ import annotations

import ctypes
import gc
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
# Above glibc's own dynamic ceiling (32 MB), so that the gates of a 600-step batch (39 MB)
# are reused too; free memory above the heap's top is returned past twice that.
MMAP_THRESHOLD = 64 * 2**20
TRIM_THRESHOLD = 128 * 2**20


def reuse_large_buffers() -> bool:
    """Raise glibc's mmap and trim thresholds; False where the C library is not glibc."""
    libc = _glibc()
    return libc is not None and bool(
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def release_free_memory() -> bool:
    """Free what only reference cycles keep (a trained classifier's trainer and optimizer
    state) and return the free memory of glibc's heaps to the system; False if not glibc."""
    gc.collect()
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL("libc.so.6")

import gc
import os
import platform
import resource
from pathlib import Path

import numpy as np
import pytest

from imdb_sentiment import malloc
from imdb_sentiment.training import batches

glibc_only = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's"
)


def page_faults_of_buffers(megabytes: int, times: int) -> int:
    """Minor page faults while a buffer of that size is filled and freed, again and again."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        np.ones(megabytes * 2**18, np.float32)  # freed at once
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc_only
def test_reading_batches_leaves_large_buffers_reusable():
    # TensorFlow's generator dataset drops glibc's thresholds to 128 KB when it first runs:
    # every large buffer then comes from the kernel again, page by page.
    x = np.random.default_rng(0).integers(1, 50, (16, 10)).astype(np.int32)
    for _ in batches.BucketedBatches(x, np.zeros(16), 8, seed=0).as_dataset():
        pass
    page_faults_of_buffers(16, 1)  # the first buffer of the size may fault
    assert page_faults_of_buffers(16, 20) < 20


@glibc_only
def test_thresholds_are_set_on_glibc():
    assert malloc.reuse_large_buffers() is True


def resident_megabytes() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@glibc_only
def test_memory_that_only_cycles_held_goes_back_to_the_system():
    malloc.reuse_large_buffers()  # as in training: a 48 MB buffer comes from the heap
    gc.disable()  # so that the collection happens in the call under test, not before it
    try:
        cycle = [np.ones(48 * 2**18, np.float32)]
        cycle.append(cycle)
        del cycle
        before = resident_megabytes()
        assert malloc.release_free_memory() is True
        assert resident_megabytes() < before - 40
    finally:
        gc.enable()

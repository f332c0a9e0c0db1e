import numba
import numpy as np
import pytest

from imdb_sentiment import numba_math


def test_tanh_approximation_is_float32_accurate_and_saturates() -> None:
    x = np.concatenate([np.linspace(-12, 12, 20001), [-1e30, 1e30]]).astype(np.float32)
    approximation = np.array([numba_math.tanh(value) for value in x], np.float32)
    assert np.abs(approximation - np.tanh(x)).max() < 1e-6


def test_compiled_functions_compile_without_a_writable_cache_folder(monkeypatch) -> None:
    # The locator numba uses only inside IPython finds no folder here: as on a read-only install.
    monkeypatch.setattr(numba.config, "CACHE_LOCATOR_CLASSES", "IPythonCacheLocator")
    with pytest.raises(RuntimeError, match="no locator"):
        numba.njit(cache=True)(lambda x: x + 1)
    add_one = numba_math.compiled()(lambda x: x + 1)
    assert add_one(1) == 2

import re
import warnings
from pathlib import Path

from imdb_sentiment import contracts

REPO_ROOT = Path(__file__).resolve().parent.parent


class Owner:
    present = 1

    def method(self, a: int, b: int = 0) -> int:
        return a + b


def test_missing_members_names_the_type_and_member() -> None:
    assert contracts.missing_members(Owner(), ["present", "gone"]) == ["Owner.gone is gone"]
    assert contracts.missing_members(Owner, ["present"]) == []


def test_signature_changed_names_what_it_found() -> None:
    assert contracts.signature_changed(Owner().method, ["a", "b"], "Owner.method") == []
    assert contracts.signature_changed(Owner().method, ["a"], "Owner.method") == [
        "Owner.method takes ['a', 'b'], not ['a']"
    ]
    assert contracts.signature_changed(None, ["a"], "Owner.lost") == ["Owner.lost is gone"]


def test_warn_fallback_says_what_is_off_why_and_what_runs() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        contracts.warn_fallback("Fast path", ["X.y is gone"], "The slow path runs.")
    assert str(caught[0].message) == "Fast path is turned off: X.y is gone. The slow path runs."
    assert caught[0].category is contracts.InternalsChanged


# The private Keras/TensorFlow names issue 35 listed, and the one module allowed each.
PRIVATE_NAMES = {
    "_momentums": "training/rowwise_adam.py",
    "_velocities": "training/rowwise_adam.py",
    "_get_variable_index": "training/rowwise_adam.py",
    "_var_key": "training/rowwise_adam.py",
    "_model_variables_moving_average": "training/rowwise_adam.py",
    "_trainable_variables": "training/rowwise_adam.py",
    "_update_model_variables_moving_average": "training/rowwise_adam.py",
    "_swap_variables": "training/rowwise_adam.py",
    "_ema_weights_in_model": "training/rowwise_adam.py",
    "_symbolic_build": "training/multi_worker_fit.py",
    "_maybe_symbolic_build": "training/multi_worker_fit.py",
    "inner_loop": "training/hoisted_lstm.py",
    "GatherV2": "training/hoisted_lstm.py",
    "_flatten_layers": None,
    "_inbound_nodes": None,
    "_gradient_registry": None,
}


def test_private_library_names_appear_only_in_their_one_module():
    sources = [*REPO_ROOT.glob("src/imdb_sentiment/**/*.py"), *REPO_ROOT.glob("stages/*.py")]
    sources += list(REPO_ROOT.glob("bench/*.py"))
    for path in sources:
        text = path.read_text()
        package = REPO_ROOT / "src" / "imdb_sentiment"
        relative = path.relative_to(package) if path.is_relative_to(package) else None
        for name, allowed in PRIVATE_NAMES.items():
            if re.search(rf"\b{name}\b", text):
                assert str(relative) == allowed, f"{path}: uses {name}"


def test_the_contract_checks_draw_no_randomness():
    # They run while networks are built: a draw from Keras' seeded generator there would
    # start every network after it from other weights (it did, once: teachers' scores moved).
    import keras
    import numpy as np

    from imdb_sentiment.training import hoisted_lstm, model, multi_worker_fit, rowwise_adam

    def initial_weights() -> list:
        network = model.build_classifier(50, 4, 3, 1, False, 0.0, lstm_kernel="keras")
        return network.get_weights()

    keras.utils.set_random_seed(7)
    expected = initial_weights()
    for check in (hoisted_lstm, rowwise_adam, multi_worker_fit):
        keras.utils.set_random_seed(7)
        assert check.contract_problems() == []
        after = initial_weights()
        assert all(np.array_equal(a, b) for a, b in zip(expected, after, strict=True)), check

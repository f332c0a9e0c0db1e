import keras
import numpy as np
import pytest
import tensorflow as tf

from imdb_sentiment.data import ngrams, text
from imdb_sentiment.network import layers, model_file
from imdb_sentiment.scoring import lstm_kernel
from imdb_sentiment.serving import predict
from imdb_sentiment.training import model
from tests.networks import average_of

VOCAB = 50


def random_classifier(pooling: str, **architecture: object) -> keras.Model:
    """A classifier with weights large enough that every gate saturates somewhere."""
    classifier = model.build_classifier(
        VOCAB,
        embedding_dim=8,
        lstm_units=6,
        lstm_layers=int(architecture.get("lstm_layers", 1)),
        bidirectional=bool(architecture.get("bidirectional", False)),
        dropout=0.2,
        pooling=pooling,
        embedding_dropout=0.1,
        lstm_kernel=str(architecture.get("lstm_kernel", "keras")),
    )
    rng = np.random.default_rng(int(architecture.get("seed", 0)))
    weights = [rng.normal(0, 1.5, w.shape).astype("float32") for w in classifier.get_weights()]
    classifier.set_weights(weights)
    return classifier


def id_rows() -> np.ndarray:
    """Pre-padded, post-padded, gaps in the middle (occluded words), long, and empty rows."""
    rng = np.random.default_rng(1)
    rows = rng.integers(2, VOCAB, size=(8, 40)).astype(np.int32)
    rows[0, :30] = 0
    rows[1, 5:] = 0
    rows[2, [3, 10, 11, 25]] = 0
    rows[3, ::2] = 0
    rows[4] = 0
    rows[5, :39] = 0
    return rows


@pytest.mark.parametrize("lstm", ["keras", "hoisted"])
@pytest.mark.parametrize("pooling", model_file.POOLINGS)
def test_kernel_matches_keras(pooling: str, lstm: str) -> None:
    classifier = random_classifier(pooling, lstm_kernel=lstm)
    ids = id_rows()
    score = lstm_kernel.compile_lstm_scorer(classifier)
    expected = classifier(ids, training=False).numpy().reshape(-1)
    assert np.allclose(score(ids), expected, atol=1e-5)
    assert np.allclose(score(ids[2:3]), expected[2:3], atol=1e-5)
    copies = lstm_kernel.PARALLEL_MIN_ROWS // len(ids) + 1  # enough rows for the threaded loop
    assert np.allclose(score(np.tile(ids, (copies, 1))), np.tile(expected, copies), atol=1e-5)


def test_kernel_averages_the_members_of_an_ensemble() -> None:
    members = [random_classifier("mean_max", seed=seed) for seed in (0, 1)]
    for number, member in enumerate(members, start=1):
        member.name = f"member_{number}"
    ensemble = average_of(members)
    ids = id_rows()
    expected = ensemble(ids, training=False).numpy().reshape(-1)
    assert not np.allclose(members[0](ids).numpy(), members[1](ids).numpy())
    score = lstm_kernel.compile_lstm_scorer(ensemble)
    assert np.allclose(score(ids), expected, atol=1e-5)  # members side by side
    copies = lstm_kernel.PARALLEL_MIN_ROWS // len(ids) + 1  # members in turn, rows threaded
    assert np.allclose(score(np.tile(ids, (copies, 1))), np.tile(expected, copies), atol=1e-5)


def test_kernel_declines_an_ensemble_with_a_member_it_cannot_run() -> None:
    members = [random_classifier("max"), random_classifier("max", bidirectional=True)]
    for number, member in enumerate(members, start=1):
        member.name = f"member_{number}"
    assert lstm_kernel.compile_lstm_scorer(average_of(members)) is None


def random_multi_view(
    seed: int = 0, bidirectional: bool = False, ns: tuple[int, ...] = (2,)
) -> keras.Model:
    kept = {n: ngrams.build_ngram_vocabulary(id_rows(), VOCAB, 2 + 60, n) for n in ns}
    branch = {"embedding_dim": 8, "lstm_units": 6, "lstm_layers": 1, "dropout": 0.2}
    classifier, _ = model.build_multi_view(
        VOCAB, kept, bidirectional=bidirectional, pooling="mean_max", **branch
    )
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 1.5, w.shape).astype("float32") for w in classifier.get_weights()]
    classifier.set_weights(weights)
    return classifier


@pytest.mark.parametrize("ns", [(2,), (2, 3)], ids=["pairs", "pairs+triples"])
def test_kernel_runs_every_branch_of_a_multi_view_classifier_and_of_its_ensembles(ns) -> None:
    multi_views = [random_multi_view(seed, ns=ns) for seed in (0, 1)]
    for number, member in enumerate(multi_views, start=1):
        member.name = f"member_{number}"
    ids = id_rows()
    for classifier in (multi_views[0], average_of(multi_views)):
        expected = classifier(ids, training=False).numpy().reshape(-1)
        score = lstm_kernel.compile_lstm_scorer(classifier)
        assert np.allclose(score(ids), expected, atol=1e-5)  # branches side by side
        copies = lstm_kernel.PARALLEL_MIN_ROWS // len(ids) + 1  # in turn, rows threaded
        assert np.allclose(score(np.tile(ids, (copies, 1))), np.tile(expected, copies), atol=1e-5)


def test_kernel_declines_a_multi_view_classifier_with_branches_it_cannot_run() -> None:
    assert lstm_kernel.compile_lstm_scorer(random_multi_view(bidirectional=True)) is None


@pytest.mark.parametrize(
    "architecture", [{"bidirectional": True}, {"lstm_layers": 2}], ids=["bidirectional", "stacked"]
)
def test_kernel_declines_other_architectures(architecture: dict) -> None:
    assert lstm_kernel.compile_lstm_scorer(random_classifier("max", **architecture)) is None


def test_kernel_refuses_a_word_table_smaller_than_the_encoder_vocabulary() -> None:
    classifier = random_classifier("max")
    assert lstm_kernel.compile_lstm_scorer(classifier, word_vocab_size=VOCAB) is not None
    message = f"member 1's word embedding has {VOCAB} rows, but its ids run to {VOCAB}: "
    with pytest.raises(lstm_kernel.KernelMismatch, match=f"^{message}"):
        lstm_kernel.compile_lstm_scorer(classifier, word_vocab_size=VOCAB + 1)


def test_a_table_too_small_is_named_by_its_member_in_an_ensemble() -> None:
    members = [random_classifier("max"), random_multi_view()]
    for number, member in enumerate(members, start=1):
        member.name = f"member_{number}"
    layer = next(la for la in members[1].layers if isinstance(la, ngrams.WordNgrams))
    rows = layer.vocab_size
    layer.vocabulary = np.arange(rows + 5, dtype=np.int64)  # ids run to rows + 5 + 2 - 1
    message = f"member 2's 2-gram embedding has {rows} rows, but its ids run to {rows + 6}: "
    with pytest.raises(lstm_kernel.KernelMismatch, match=f"^{message}"):
        lstm_kernel.compile_lstm_scorer(average_of(members))


def test_kernel_refuses_an_ngram_vocabulary_larger_than_its_table() -> None:
    classifier = random_multi_view()
    layer = next(la for la in classifier.layers if isinstance(la, ngrams.WordNgrams))
    rows = layer.vocab_size
    layer.vocabulary = np.arange(rows + 5, dtype=np.int64)  # ids past the table's last row
    with pytest.raises(lstm_kernel.KernelMismatch, match=f"2-gram embedding has {rows} rows"):
        lstm_kernel.compile_lstm_scorer(classifier)


@pytest.mark.parametrize("bad_id", [VOCAB, -1])
def test_kernel_refuses_ids_outside_its_word_table(bad_id: int) -> None:
    score = lstm_kernel.compile_lstm_scorer(random_classifier("max"))
    ids = id_rows()
    ids[1, 2] = bad_id
    with pytest.raises(lstm_kernel.KernelMismatch, match=f"token id {bad_id} is outside"):
        score(ids)


def test_a_model_smaller_than_its_encoder_is_refused_on_load(tmp_path) -> None:
    encoder = text.TextEncoder([f"w{i}" for i in range(VOCAB)], max_length=40)
    end_to_end = model.build_end_to_end(encoder, random_classifier("max"))  # VOCAB rows
    path = tmp_path / "mismatched.keras"
    end_to_end.save(path)
    with pytest.raises(predict.ModelError, match="mismatched.keras.*word embedding has"):
        predict.Predictor.load(path)


def test_the_kernel_runs_from_a_description_and_declines_one_that_does_not_fit() -> None:
    classifier = random_classifier("mean_max")
    described = model_file.network_description(classifier)
    ids = id_rows()
    expected = classifier(ids, training=False).numpy().reshape(-1)
    np.testing.assert_allclose(
        lstm_kernel.compile_lstm_scorer(classifier, architecture=described)(ids),
        expected,
        atol=1e-5,
    )
    view = described["members"][0]["views"][0]
    for wrong in ({"lstm_units": 7}, {"embedding_rows": VOCAB + 1}, {"pooling": "max"}):
        misfit = {"members": [{"member": None, "views": [{**view, **wrong}]}]}
        assert lstm_kernel.compile_lstm_scorer(classifier, architecture=misfit) is None, wrong
    missing = {"members": [{"member": "no_such_layer", "views": [view]}]}
    assert lstm_kernel.compile_lstm_scorer(classifier, architecture=missing) is None


def test_the_kernel_pools_and_classifies_with_the_networks_own_layers(monkeypatch) -> None:
    """Pooling lives once, in MaskedPooling1D: the kernel runs the LSTM and hands its states
    to the network's own pooling and Dense layers."""
    pooled_by = []
    original = layers.MaskedPooling1D.call

    def spy(self, inputs, mask=None):
        pooled_by.append(self)
        return original(self, inputs, mask)

    monkeypatch.setattr(layers.MaskedPooling1D, "call", spy)
    classifier = random_classifier("mean_max")
    own_pools = [la for la in classifier.layers if isinstance(la, layers.MaskedPooling1D)]
    pooled_by.clear()  # building the network called them; what follows is the kernel's
    score = lstm_kernel.compile_lstm_scorer(classifier)
    assert {id(layer) for layer in pooled_by} == {id(layer) for layer in own_pools}
    ids = id_rows()
    expected = classifier(ids, training=False).numpy().reshape(-1)
    np.testing.assert_allclose(score(ids), expected, atol=1e-5)


def blended_network() -> keras.Model:
    """A two-view network beside a linear branch, every weight random and large."""
    from imdb_sentiment.training import linear_branch

    keras.utils.set_random_seed(3)
    pairs = np.sort(np.random.default_rng(4).choice(VOCAB**2, 200, replace=False))
    student, _ = model.build_multi_view(
        VOCAB, {2: pairs}, name="lstm", embedding_dim=8, lstm_units=6, lstm_layers=1,
        bidirectional=False, dropout=0.0, pooling="mean_max",
    )  # fmt: skip
    network = linear_branch.with_linear_branch(student, VOCAB, {2: pairs}, "net")
    rng = np.random.default_rng(5)
    network.set_weights(
        [rng.normal(0, 1.0, w.shape).astype("float32") for w in network.get_weights()]
    )
    return network


def test_the_kernel_runs_the_lstms_of_a_network_with_a_linear_branch_and_its_own_blend() -> None:
    network = blended_network()
    described = model_file.network_description(network)
    assert described["blend"] == "lstm" and len(described["members"][0]["views"]) == 2
    ids = id_rows()
    expected = network(ids, training=False).numpy().reshape(-1)
    score = lstm_kernel.compile_lstm_scorer(network, architecture=described)
    np.testing.assert_allclose(score(ids), expected, atol=1e-5)
    lstm_alone = network.get_layer("lstm")(ids, training=False).numpy().reshape(-1)
    assert np.abs(expected - lstm_alone).max() > 0.01  # the blend changes the answer
    # A description naming a blend of a network without one leaves it to Keras.
    plain = random_classifier("mean_max")
    misfit = {**model_file.network_description(plain), "blend": "lstm"}
    assert lstm_kernel.compile_lstm_scorer(plain, architecture=misfit) is None


def test_the_kernel_keeps_float32_from_its_states_to_its_answer() -> None:
    """Half the memory of float64 states, and the dtype every caller stores."""
    classifier = random_classifier("mean_max")
    weights = lstm_kernel.lstm_weights(classifier)
    ids = id_rows()
    serial = lstm_kernel._states_serial(ids, weights["gate_table"], weights["recurrent"])
    parallel = lstm_kernel._states_parallel(ids, weights["gate_table"], weights["recurrent"])
    assert serial.dtype == parallel.dtype == np.float32
    np.testing.assert_array_equal(serial, parallel)
    assert lstm_kernel.compile_lstm_scorer(classifier)(ids).dtype == np.float32


def hand_built(
    lstm: dict | None = None, modes: tuple[str, ...] = ("max",), hidden_units: int = 0
) -> keras.Model:
    """Embedding -> LSTM -> MaskedPooling1D per mode -> [Dense(hidden_units)] -> Dense: the
    shape the kernel runs, with one thing changed at a time."""
    ids = keras.Input(shape=(None,), dtype="int32")
    hidden = keras.layers.Embedding(VOCAB, 8, mask_zero=True)(ids)
    hidden = keras.layers.LSTM(6, return_sequences=True, **(lstm or {}))(hidden)
    pooled = [layers.MaskedPooling1D(mode)(hidden) for mode in modes]
    hidden = keras.layers.Concatenate()(pooled) if len(pooled) > 1 else pooled[0]
    if hidden_units:
        hidden = keras.layers.Dense(hidden_units)(hidden)
    return keras.Model(ids, keras.layers.Dense(1, activation="sigmoid")(hidden))


def test_the_kernel_runs_a_hand_built_network_of_its_shape() -> None:
    network = hand_built(modes=("max", "mean"))
    ids = id_rows()
    expected = network(ids, training=False).numpy().reshape(-1)
    np.testing.assert_allclose(lstm_kernel.compile_lstm_scorer(network)(ids), expected, atol=1e-5)


@pytest.mark.parametrize(
    "changed",
    [
        {"lstm": {"use_bias": False}},
        {"lstm": {"go_backwards": True}},
        {"lstm": {"activation": "relu"}},
        {"lstm": {"recurrent_activation": "hard_sigmoid"}},
        {"modes": ("mean",)},  # a pooling build_classifier never makes
        {"hidden_units": 4},  # a layer between the pooling and the output
    ],
    ids=["no bias", "backwards", "relu", "hard sigmoid", "mean alone", "hidden dense"],
)
def test_the_kernel_declines_each_lstm_or_head_it_does_not_compute(changed: dict) -> None:
    """One difference at a time: the kernel would compute something else, so Keras runs it."""
    assert lstm_kernel.compile_lstm_scorer(hand_built(**changed)) is None


def test_the_kernel_reads_a_non_dense_output_as_a_network_it_does_not_run() -> None:
    ids = keras.Input(shape=(None,), dtype="int32")
    hidden = keras.layers.Embedding(VOCAB, 8, mask_zero=True)(ids)
    hidden = layers.MaskedPooling1D("max")(keras.layers.LSTM(6, return_sequences=True)(hidden))
    output = keras.layers.EinsumDense("bd,do->bo", output_shape=1, activation="sigmoid")(hidden)
    assert lstm_kernel.compile_lstm_scorer(keras.Model(ids, output)) is None


def test_the_kernel_scores_a_batch_of_no_reviews_as_no_probabilities() -> None:
    for classifier in (random_classifier("mean_max"), random_multi_view()):
        scored = lstm_kernel.compile_lstm_scorer(classifier)(np.zeros((0, 40), np.int32))
        assert scored.shape == (0,) and scored.dtype == np.float32


def test_the_head_is_traced_once_for_every_batch_and_length() -> None:
    """Its input signature leaves batch and length open: a new review length is no retrace."""
    head = lstm_kernel.lstm_weights(random_classifier("mean_max"))["head"]
    for rows, steps in ((1, 5), (3, 17), (2, 1)):
        states = tf.zeros((rows, steps, 6), tf.float32)
        assert head(states, tf.ones((rows, steps), tf.bool)).shape == (rows,)
    assert head.experimental_get_tracing_count() == 1


def test_the_blend_is_traced_once_and_takes_int32_ids_and_float32_scores() -> None:
    network = blended_network()
    _, blended = lstm_kernel._lstm_network(network, model_file.network_description(network))
    ids = id_rows()
    for rows in (1, 3, 8):
        lstm = tf.fill([rows], 0.25)
        assert blended(tf.constant(ids[:rows]), lstm).shape == (rows,)
    assert blended.experimental_get_tracing_count() == 1


def test_the_kernel_reads_ids_of_any_integer_type_as_int32() -> None:
    network = blended_network()
    score = lstm_kernel.compile_lstm_scorer(network)
    ids = id_rows()
    np.testing.assert_array_equal(score(ids.astype(np.int64)), score(ids))


class RecordingPool:
    """Stands in for the member threads: runs the branches in turn, counting the batches."""

    def __init__(self) -> None:
        self.batches = 0

    def map(self, function, items):
        self.batches += 1
        return map(function, items)


@pytest.mark.parametrize(
    ("rows", "multi_view", "threaded_loop", "branch_threads"),
    [
        (lstm_kernel.PARALLEL_MIN_ROWS - 1, True, False, True),
        (lstm_kernel.PARALLEL_MIN_ROWS, True, True, False),
        (lstm_kernel.PARALLEL_MIN_ROWS - 1, False, False, False),
    ],
    ids=["small batch, two branches", "large batch", "small batch, one branch"],
)
def test_small_batches_run_branches_side_by_side_and_large_ones_thread_their_rows(
    monkeypatch, rows: int, multi_view: bool, threaded_loop: bool, branch_threads: bool
) -> None:
    """The split the API's latency figures rest on (docs/serving.md): one core per branch for
    a serving-sized batch, every core on the rows of an evaluation-sized one."""
    classifier = random_multi_view() if multi_view else random_classifier("max")
    score = lstm_kernel.compile_lstm_scorer(classifier)
    loops = []
    for name in ("_states_serial", "_states_parallel"):
        original = getattr(lstm_kernel, name)
        monkeypatch.setattr(
            lstm_kernel, name, lambda *args, n=name, f=original: loops.append(n) or f(*args)
        )
    pool = RecordingPool()
    monkeypatch.setattr(lstm_kernel, "_MEMBER_THREADS", pool)
    ids = np.resize(id_rows(), (rows, 40))
    expected = classifier(ids, training=False).numpy().reshape(-1)
    np.testing.assert_allclose(score(ids), expected, atol=1e-5)
    assert set(loops) == {"_states_parallel" if threaded_loop else "_states_serial"}
    assert pool.batches == int(branch_threads)

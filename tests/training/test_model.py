import io
import json
import time
import zipfile

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from imdb_sentiment.data import ngrams, text
from imdb_sentiment.network import model_file
from imdb_sentiment.training import model
from imdb_sentiment.training.batches import BucketedBatches
from tests.networks import average_of, views_of


@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, True)])
def test_classifier_outputs_one_probability_per_review(layers, bidirectional):
    classifier = model.build_classifier(50, 8, 4, layers, bidirectional, 0.1)
    probabilities = classifier(np.array([[0, 0, 5, 6], [7, 8, 9, 10]], np.int32)).numpy()
    assert probabilities.shape == (2, 1)
    assert ((probabilities > 0) & (probabilities < 1)).all()


def test_padding_is_masked():
    classifier = model.build_classifier(50, 8, 4, 1, True, 0.0)
    short = classifier(np.array([[5, 6]], np.int32)).numpy()
    padded = classifier(np.array([[0, 0, 0, 5, 6]], np.int32)).numpy()
    assert np.allclose(short, padded, atol=1e-6)


def test_bucketed_batches_cover_every_review_once_per_epoch():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 20, 103)
    x = np.array([[0] * (20 - n) + list(range(1, n + 1)) for n in lengths])
    y = np.arange(103) % 2
    batches = BucketedBatches(x, y, batch_size=10, seed=3, window_batches=4)
    epochs = [batches.plan(), batches.plan()]
    for plan in epochs:
        assert len(plan) == len(batches) == 11
        assert sorted(np.concatenate(plan).tolist()) == list(range(103))
    assert [b.tolist() for b in epochs[0]] != [b.tolist() for b in epochs[1]]
    twin = BucketedBatches(x, y, batch_size=10, seed=3, window_batches=4)
    for (bx, by), rows in zip(twin, epochs[0], strict=True):
        assert by.shape == (len(bx), 1)
        assert bx.shape[1] == lengths[rows].max()


def test_bucketed_batches_are_seeded():
    x = np.arange(1, 41).reshape(20, 2)
    y = np.zeros(20)
    first = BucketedBatches(x, y, 4, seed=1).plan()
    again = BucketedBatches(x, y, 4, seed=1).plan()
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_dataset_accepts_any_sequence_length_whatever_the_first_batches():
    x = np.array([[0, 0, 0, 1]] * 8 + [[1, 2, 3, 4]] * 8 + [[0, 0, 1, 2]] * 8, np.int32)
    batches = BucketedBatches(x, np.zeros(24), batch_size=8, seed=None)
    widths = [bx.shape[1] for bx, _ in batches.as_dataset()]
    assert widths == [1, 2, 4]
    classifier = model.build_classifier(10, 4, 4, 1, False, 0.0)
    model.compile_classifier(classifier, 0.01, 1.0)
    classifier.fit(batches.as_dataset(), epochs=1, verbose=0, shuffle=False)


def test_batches_are_read_without_tf_data_autotuning():
    # Autotuning's thread made closing an iterator wait for its next wake-up (5.1, 10.2, 20.5,
    # 41 s ... after the iterator opened): up to half an epoch of a training run lost, at
    # random (docs/benchmarks.md). A fixed prefetch of 2 keeps the next batch ready.
    x = np.random.default_rng(0).integers(1, 50, (40, 30)).astype(np.int32)
    batches = BucketedBatches(x, np.zeros(40), batch_size=8, seed=0).as_dataset()
    assert batches.options().autotune.enabled is False
    assert sum(len(bx) for bx, _ in batches) == 40


@pytest.mark.parametrize("ema_momentum", [0.0, 0.9])
def test_saved_weights_are_the_validated_weights_of_the_best_epoch(ema_momentum):
    rng = np.random.default_rng(0)
    x = rng.integers(2, 10, (64, 5)).astype(np.int32)
    y = (x[:, 0] > 5).astype("float32")
    keras.utils.set_random_seed(0)
    classifier = model.build_classifier(10, 4, 4, 1, False, 0.0)
    model.compile_classifier(classifier, 0.05, 1.0, ema_momentum)
    stopper = keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)
    history = classifier.fit(
        x,
        y,
        validation_data=(x, y),
        epochs=4,
        batch_size=16,
        callbacks=model.training_callbacks(stopper, ema_momentum),
        verbose=0,
    )
    loss = classifier.evaluate(x, y, verbose=0)[0]
    assert loss == pytest.approx(min(history.history["val_loss"]), rel=1e-5)


def test_end_to_end_model_matches_classifier_on_encoded_text(tmp_path):
    encoder = text.TextEncoder(["good", "bad", "film"], 6)
    classifier = model.build_classifier(encoder.vocab_size, 4, 4, 1, True, 0.0)
    end_to_end = model.build_end_to_end(encoder, classifier)
    end_to_end.save(tmp_path / "e2e.keras")
    reloaded = model_file.load_model(tmp_path / "e2e.keras")
    reviews = ["A good film!", "bad, bad <br />film", "unknown words only"]
    served = reloaded(tf.constant([[r] for r in reviews])).numpy().reshape(-1)
    direct = classifier(encoder.encode(reviews)).numpy().reshape(-1)
    assert np.allclose(served, direct, atol=1e-6)


def test_end_to_end_model_leaves_the_optimizer_behind(tmp_path):
    encoder = text.TextEncoder(["good", "bad"], 6)
    classifier = model.build_classifier(encoder.vocab_size, 4, 4, 1, False, 0.0)
    model.compile_classifier(classifier, 0.01, 1.0)
    classifier.fit(np.array([[2, 3], [3, 2]], np.int32), np.array([1, 0]), epochs=1, verbose=0)
    model.build_end_to_end(encoder, classifier).save(tmp_path / "e2e.keras")
    classifier.save(tmp_path / "classifier.keras")

    def saved_groups(path):
        with zipfile.ZipFile(path) as archive:
            return set(h5py.File(io.BytesIO(archive.read("model.weights.h5"))).keys())

    assert "optimizer" in saved_groups(tmp_path / "classifier.keras")
    assert "optimizer" not in saved_groups(tmp_path / "e2e.keras")


def test_missing_model_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run `dvc repro` first"):
        model_file.load_model(tmp_path / "absent.keras")


@pytest.mark.parametrize("pooling", ["max", "mean_max"])
def test_pooling_ignores_padding(pooling):
    classifier = model.build_classifier(50, 8, 4, 1, True, 0.0, pooling, embedding_dropout=0.2)
    short = classifier(np.array([[5, 6, 7]], np.int32)).numpy()
    padded = classifier(np.array([[0] * 9 + [5, 6, 7]], np.int32)).numpy()
    assert np.allclose(short, padded, atol=1e-6)


@pytest.mark.parametrize("pooling", ["last", "max", "mean_max"])
def test_a_review_with_no_tokens_gets_a_finite_probability(pooling):
    classifier = model.build_classifier(50, 8, 4, 1, False, 0.0, pooling)
    probability = classifier(np.zeros((1, 5), np.int32)).numpy()
    assert np.isfinite(probability).all() and 0 < probability[0, 0] < 1


def test_unknown_pooling_is_refused():
    with pytest.raises(ValueError, match="pooling must be one of"):
        model.build_classifier(50, 8, 4, 1, False, 0.0, "median")


def test_pooled_model_survives_saving(tmp_path):
    classifier = model.build_classifier(50, 8, 4, 1, True, 0.0, "mean_max")
    classifier.save(tmp_path / "pooled.keras")
    x = np.array([[0, 3, 4, 5]], np.int32)
    reloaded = model_file.load_model(tmp_path / "pooled.keras")
    assert np.allclose(reloaded(x).numpy(), classifier(x).numpy(), atol=1e-6)


def test_the_description_names_the_members_of_an_average_in_order():
    members = [
        model.build_classifier(30, 4, 3, 1, False, 0.0, "max", name=f"member_{n}") for n in (1, 2)
    ]
    described = model_file.network_description(average_of(members))
    assert [member["member"] for member in described["members"]] == ["member_1", "member_2"]
    one = model_file.network_description(members[0])
    assert [member["member"] for member in one["members"]] == [None]


def test_agreement_is_accuracy_for_labels_and_same_side_of_one_half_for_probabilities():
    predictions = np.array([[0.8], [0.4], [0.3], [0.5]], dtype="float32")
    labels = np.array([[1.0], [0.0], [1.0], [1.0]], dtype="float32")
    keras_accuracy = keras.metrics.binary_accuracy(labels, predictions).numpy().reshape(-1)
    ours = model.agreement(labels, predictions).numpy().reshape(-1)
    assert np.array_equal(ours, keras_accuracy) and np.array_equal(ours, [1, 1, 0, 0])
    teacher = np.array([[0.9], [0.2], [0.6], [0.1]], dtype="float32")
    assert np.array_equal(model.agreement(teacher, predictions).numpy().reshape(-1), [1, 1, 0, 1])


def multi_view(ns: tuple[int, ...] = (2,)) -> tuple[keras.Model, keras.Model, np.ndarray]:
    x = np.random.default_rng(0).integers(0, 30, size=(16, 9)).astype("int32")
    x[:4, :5] = 0
    vocabularies = {n: ngrams.build_ngram_vocabulary(x, 30, 2 + 20, n) for n in ns}
    branch = {"embedding_dim": 4, "lstm_units": 3, "lstm_layers": 1, "bidirectional": False}
    built = model.build_multi_view(30, vocabularies, **branch, dropout=0.0, pooling="mean_max")
    return *built, x


@pytest.mark.parametrize("ns", [(2,), (2, 3)], ids=["pairs", "pairs+triples"])
def test_multi_view_averages_a_words_branch_and_a_branch_per_ngram(ns):
    classifier, trainer, x = multi_view(ns)
    views = views_of(classifier)
    assert [branch.name for _, branch in views] == ["words", "pairs", "triples"][: len(ns) + 1]
    assert views[0][0] is None and [layer.n for layer, _ in views[1:]] == list(ns)
    each = [branch(x if layer is None else layer(x)).numpy() for layer, branch in views]
    for layer, branch in views[1:]:
        assert branch.layers[1].input_dim == layer.vocab_size == 22
    assert not np.allclose(each[0], each[1])
    averaged = classifier(x).numpy()
    assert np.allclose(averaged, np.mean(each, axis=0), atol=1e-6)
    assert np.allclose(trainer(x).numpy(), np.concatenate([averaged, *each], axis=1), atol=1e-6)
    assert [m["member"] for m in model_file.network_description(classifier)["members"]] == [None]


@pytest.mark.parametrize("ns", [(2,), (2, 3)], ids=["pairs", "pairs+triples"])
def test_multi_view_trainer_sums_the_losses_and_scores_the_average(tmp_path, ns):
    classifier, trainer, x = multi_view(ns)
    model.compile_classifier(trainer, 0.01, 1.0)
    y = (np.arange(len(x)) % 2).astype("float32").reshape(-1, 1)
    columns = trainer(x).numpy()
    assert columns.shape[1] == len(ns) + 2
    expected = sum(
        keras.losses.binary_crossentropy(y, columns[:, i : i + 1]).numpy().mean()
        for i in range(columns.shape[1])
    )
    loss, accuracy = trainer.evaluate(x, y, verbose=0)
    assert loss == pytest.approx(expected, rel=1e-4)
    assert accuracy == pytest.approx(np.mean((columns[:, 0] > 0.5) == (y[:, 0] > 0.5)))
    trainer.fit(x, y, epochs=1, verbose=0)
    assert not np.allclose(classifier(x).numpy(), columns[:, :1])  # shared weights moved
    classifier.save(tmp_path / "multi_view.keras")
    reloaded = model_file.load_model(tmp_path / "multi_view.keras")
    assert np.allclose(reloaded(x).numpy(), classifier(x).numpy(), atol=1e-6)
    assert [layer and layer.n for layer, _ in views_of(reloaded)] == [None, *ns]


def test_view_branches_refuses_other_models():
    pairs = ngrams.WordNgrams(np.array([33, 34]), 30)
    words, pairs_branch = (model.build_classifier(30, 4, 3, 1, False, 0.0, name=n) for n in "wp")
    ids = keras.Input(shape=(None,), dtype="int32")
    pair_ids = pairs(ids)
    both_pairs = keras.Model(ids, keras.layers.Average()([words(pair_ids), pairs_branch(pair_ids)]))
    assert views_of(both_pairs) is None  # no branch reads the words
    assert views_of(words) is None
    members = [model.build_classifier(30, 4, 3, 1, False, 0.0, name=f"m{n}") for n in (1, 2)]
    assert views_of(average_of(members)) is None


def test_two_saves_of_one_model_are_byte_identical_and_still_load(tmp_path):
    classifier = model.build_classifier(20, 4, 4, 1, False, 0.0)
    paths = [tmp_path / "a.keras", tmp_path / "b.keras"]
    for path in paths:
        model_file.save_model(classifier, path)
        time.sleep(1.1)  # the zip timestamps Keras writes have two-second steps
    assert paths[0].read_bytes() == paths[1].read_bytes()
    with zipfile.ZipFile(paths[0]) as archive:
        metadata = json.loads(archive.read("metadata.json"))
        assert {info.date_time for info in archive.infolist()} == {model_file.ZIP_EPOCH}
    assert metadata["keras_version"] == keras.__version__
    loaded = model_file.load_model(paths[0])
    ids = np.array([[0, 2, 3, 4]], np.int32)
    assert np.array_equal(loaded(ids).numpy(), classifier(ids).numpy())


def test_saves_of_equal_models_built_apart_are_byte_identical(tmp_path):
    # Built twice, the objects they share live at other addresses, which Keras writes down
    paths = []
    for attempt in ("a", "b"):
        keras.backend.clear_session()  # the same layer names, as in a fresh process
        keras.utils.set_random_seed(0)
        classifier = model.build_classifier(20, 4, 4, 1, False, 0.0, name="lstm_classifier")
        paths.append(tmp_path / f"{attempt}.keras")
        model_file.save_model(classifier, paths[-1])
    with zipfile.ZipFile(paths[0]) as archive:
        config = archive.read("config.json").decode()
    assert '"shared_object_id": 0' in config
    assert paths[0].read_bytes() == paths[1].read_bytes()
    model_file.load_model(paths[0])


def test_decay_steps_make_the_rate_fall_linearly_to_zero():
    classifier = model.build_classifier(10, 4, 4, 1, False, 0.0)
    model.compile_classifier(classifier, 0.01, 1.0, decay_steps=10)
    rate = classifier.optimizer._learning_rate
    assert [round(float(rate(step)), 6) for step in (0, 5, 10, 20)] == [0.01, 0.005, 0.0, 0.0]
    model.compile_classifier(classifier, 0.01, 1.0)
    assert float(classifier.optimizer.learning_rate) == pytest.approx(0.01)


def test_the_network_description_names_members_views_sizes_and_pooling():
    classifier, _, _ = multi_view((2, 3))
    view = {"embedding_rows": 22, "lstm_units": 3, "lstm_layers": 1, "pooling": "mean_max"}
    assert model_file.network_description(classifier) == {
        "members": [
            {
                "member": None,
                "views": [
                    {"branch": "words", "ngrams": None, "n": 1, **view, "embedding_rows": 30},
                    {"branch": "pairs", "ngrams": "word_pairs", "n": 2, **view},
                    {"branch": "triples", "ngrams": "word_triples", "n": 3, **view},
                ],
            }
        ]
    }
    plain = [model.build_classifier(30, 4, 5, 1, False, 0.0, "max", name=f"m{n}") for n in (1, 2)]
    single = {"branch": None, "ngrams": None, "n": 1, "embedding_rows": 30, "lstm_units": 5}
    single |= {"lstm_layers": 1, "pooling": "max"}
    assert model_file.network_description(plain[0]) == {
        "members": [{"member": None, "views": [single]}]
    }
    ensemble = model_file.network_description(average_of(plain))
    assert ensemble == {"members": [{"member": m, "views": [single]} for m in ("m1", "m2")]}
    stacked = model.build_classifier(30, 4, 5, 2, True, 0.0, "last")
    assert model_file.network_description(stacked)["members"][0]["views"][0]["pooling"] == "last"


def test_a_model_nesting_others_some_other_way_has_no_description():
    inner = model.build_classifier(30, 4, 3, 1, False, 0.0, "max")
    ids = keras.Input(shape=(None,), dtype="int32")
    wrapped = keras.Model(ids, keras.layers.Dense(1)(inner(ids)))
    assert model_file.network_description(wrapped) is None


def test_save_model_stores_the_description_and_keras_still_loads_the_file(tmp_path):
    classifier, _, x = multi_view((2,))
    description = model_file.network_description(classifier)
    model_file.save_model(classifier, tmp_path / "described.keras", description)
    with zipfile.ZipFile(tmp_path / "described.keras") as saved:
        assert model_file.saved_architecture(saved) == description
    reloaded = model_file.load_model(tmp_path / "described.keras")
    np.testing.assert_allclose(reloaded(x).numpy(), classifier(x).numpy(), atol=1e-6)
    model_file.save_model(classifier, tmp_path / "plain.keras")
    with zipfile.ZipFile(tmp_path / "plain.keras") as saved:
        assert model_file.saved_architecture(saved) is None


@pytest.mark.parametrize(
    "entry, message",
    [(b"{not json", "architecture.json is not JSON"), (b'{"views": []}', "no list of members")],
)
def test_a_broken_description_is_named(tmp_path, entry, message):
    path = tmp_path / "broken.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(model_file.ARCHITECTURE_ENTRY, entry)
    with zipfile.ZipFile(path) as archive, pytest.raises(ValueError, match=message):
        model_file.saved_architecture(archive)

"""The linear branch beside the LSTM and the length-aware blend
(imdb_sentiment.training.linear_branch, the layers in imdb_sentiment.network.layers)."""

import json
import shutil
import zipfile
from collections import Counter

import keras
import numpy as np
import pytest
import scipy.sparse

from imdb_sentiment.data import dataset, ngrams, text
from imdb_sentiment.data.ngrams import WordNgrams
from imdb_sentiment.network.branches import branches_alone, has_linear_branch, linear_logit
from imdb_sentiment.network.layers import BagOfIds, LengthAwareBlend, blend_features
from imdb_sentiment.network.model_file import load_model
from imdb_sentiment.params import ParamsError
from imdb_sentiment.serving.predict import Predictor
from imdb_sentiment.training import linear, linear_branch
from imdb_sentiment.training.model import build_classifier
from tests.stages.test_train import train_briefly, train_params

IDS = np.array([[0, 0, 3, 5, 3, 1], [2, 2, 2, 2, 2, 2], [0, 0, 0, 0, 0, 0]], np.int32)


def test_a_bag_sums_the_weight_of_each_distinct_id_once_and_skips_padding():
    bag = BagOfIds(6)
    bag.build(IDS.shape)
    bag.set_weights([np.array([100, 1, 2, 4, 8, 16], np.float32), np.array([0.5], np.float32)])
    # Row 1: ids 1, 3, 5 (3 twice); row 2: id 2 once; row 3: padding only, the bias.
    np.testing.assert_array_equal(bag(IDS).numpy(), [[1 + 4 + 16 + 0.5], [2.5], [0.5]])


def test_blend_features_by_hand():
    p = np.array([[0.8], [0.5]], np.float32)
    logit = np.array([[-1.5], [2.0]], np.float32)
    ids = np.zeros((2, 60), np.int32)
    ids[0, -55:] = 7  # 55 tokens
    ids[1, -1] = 7  # 1 token
    a = np.log(0.8 / 0.2)
    f0, f1 = (np.log(55) - 4) / 2, (0 - 4) / 2
    expected = [[a, -1.5, a * f0, -1.5 * f0, f0], [0, 2.0, 0, 2.0 * f1, f1]]
    np.testing.assert_allclose(
        blend_features(p, logit, ids).numpy(), expected, rtol=1e-5, atol=1e-6
    )
    blend = LengthAwareBlend()
    blend.build([(2, 1), (2, 1), (2, 60)])
    weights = np.array([1.0, 0.5, -0.25, 0.125, 2.0], np.float32)
    blend.set_weights([weights, np.array([-0.3], np.float32)])
    z = np.asarray(expected) @ weights - 0.3
    np.testing.assert_allclose(
        blend([p, logit, ids]).numpy()[:, 0], 1 / (1 + np.exp(-z)), rtol=1e-5
    )


def test_id_features_are_binary_blocks_of_word_then_ngram_ids():
    pairs = WordNgrams(np.array([3 * 6 + 5]), 6, 2)  # keeps the pair (3, 5) only: id 2
    views = [None, pairs.traced()]
    features = linear_branch.id_features(IDS, views, [6, pairs.vocab_size]).toarray()
    # Row 1: words 1, 3, 5; pairs (3,5) known -> 2, (5,3) and (3,1) unknown -> 1.
    np.testing.assert_array_equal(features[0], [0, 1, 0, 1, 0, 1] + [0, 1, 1])
    np.testing.assert_array_equal(features[1], [0, 0, 1, 0, 0, 0] + [0, 1, 0])
    np.testing.assert_array_equal(features[2], [0] * 9)


def test_id_features_are_the_same_built_in_chunks_of_reviews(monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 6, (7, 9)).astype(np.int32)
    pairs = WordNgrams(np.array([2 * 6 + 2, 3 * 6 + 5, 4 * 6 + 1]), 6, 2)
    views, rows = [None, pairs.traced()], [6, pairs.vocab_size]
    whole = linear_branch.id_features(x, views, rows).toarray()
    monkeypatch.setattr(linear_branch, "FEATURE_CHUNK", 3)  # chunks of 3, 3 and 1 reviews
    chunked = linear_branch.id_features(x, views, rows)
    np.testing.assert_array_equal(chunked.toarray(), whole)
    for review in range(7):  # each review's own words and pairs, each once
        expected = np.zeros(11)
        expected[np.unique(x[review][x[review] != 0])] = 1
        expected[6 + np.unique(np.asarray(pairs.traced()(x[review : review + 1]))[0])] = 1
        expected[6] = 0  # pair id 0: padding
        np.testing.assert_array_equal(whole[review], expected)
    assert linear_branch.id_features(x[:0], views, rows).shape == (0, 11)


TINY_PAIRS = np.array([3 * 6 + 5])  # tiny_network's one word pair: (3, 5)


def tiny_network() -> keras.Model:
    keras.utils.set_random_seed(0)
    student = build_classifier(6, 4, 3, 1, False, 0.0, "mean_max", name="lstm")
    return linear_branch.with_linear_branch(student, 6, {2: TINY_PAIRS}, "net")


def fit_tiny_branch(model, x, y, c, sample_weight=None) -> float:
    """Fit :func:`tiny_network`'s linear branch (its one pair) as the train stage fits one."""
    fitted = linear_branch.fit_linear(x, y, 6, {2: TINY_PAIRS}, c, sample_weight)
    linear_branch.set_linear_weights(model, fitted)
    return fitted.accuracy


def test_the_linear_branch_gets_the_nb_weighted_regressions_logit():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, (200, 8)).astype(np.int32)
    y = ((x == 3).sum(1) + rng.integers(0, 2, 200) > 2).astype(np.int64)
    model = tiny_network()
    accuracy = fit_tiny_branch(model, x, y, c=1.0)
    pairs = model.get_layer("linear_word_pairs")
    features = linear_branch.id_features(x, [None, pairs.traced()], [6, pairs.vocab_size])
    head = linear.nb_head(1.0, 1.0).fit(features, y)
    np.testing.assert_allclose(
        linear_logit(model).predict_on_batch(x)[:, 0], head.decision_function(features), atol=1e-5
    )
    assert accuracy == np.mean(head.predict(features) == y)


def test_the_linear_branch_fits_blocks_of_any_width_with_row_weights():
    """Sentences are stored narrower than reviews: a block's width must not change its
    features, and each row's weight must reach the regression."""
    rng = np.random.default_rng(2)
    x = rng.integers(0, 6, (200, 8)).astype(np.int32)
    short = rng.integers(2, 6, (100, 3)).astype(np.int32)
    labels = np.r_[((x == 3).sum(1) + rng.integers(0, 2, 200) > 2), (short == 3).any(1)]
    weights = np.r_[np.ones(200), np.full(100, 0.25)]
    model = tiny_network()
    accuracy = fit_tiny_branch(model, [x, short], labels, 1.0, weights)
    pairs = model.get_layer("linear_word_pairs")
    views, rows = [None, pairs.traced()], [6, pairs.vocab_size]
    padded = np.concatenate([x, np.pad(short, ((0, 0), (5, 0)))])  # one width, pre-padded
    features = linear_branch.id_features(padded, views, rows)
    head = linear.nb_head(1.0, 1.0).fit(features, labels, logisticregression__sample_weight=weights)
    np.testing.assert_allclose(
        linear_logit(model).predict_on_batch(x)[:, 0],
        head.decision_function(features[:200]),
        atol=1e-5,
    )
    assert accuracy == np.mean(head.predict(features) == labels)
    unweighted = linear.nb_head(1.0, 1.0).fit(features, labels)
    assert not np.allclose(unweighted.decision_function(features), head.decision_function(features))


def test_a_fit_of_other_vocabularies_is_refused_by_the_network():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, (50, 8)).astype(np.int32)
    y = (x == 3).any(1).astype(np.int64)
    fitted = linear_branch.fit_linear(x, y, 6, {2: np.array([3 * 6 + 5, 4 * 6 + 5])}, c=1.0)
    with pytest.raises(ValueError, match="net: its bags have 9 rows, the fit 10"):
        linear_branch.set_linear_weights(tiny_network(), fitted)


def test_the_blend_is_a_logistic_regression_on_the_branches_and_length():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 6, (300, 8)).astype(np.int32)
    x[:100, :6] = 0  # short texts
    y = ((x == 3).sum(1) >= 2).astype(np.int64)
    model = tiny_network()
    fit_tiny_branch(model, x, y, c=1.0)
    weights = linear_branch.fit_blend(model, x, y)
    assert list(weights) == ["lstm", "linear", "lstm_x_length", "linear_x_length", "length"]
    assert list(weights) == list(linear_branch.BLEND_FEATURES)
    parts = branches_alone(model)
    features = blend_features(
        parts["lstm"].predict_on_batch(x), linear_logit(model).predict_on_batch(x), x
    ).numpy()
    kernel, bias = model.get_layer("blend").get_weights()
    np.testing.assert_allclose(kernel, list(weights.values()), atol=1e-4)
    expected = 1 / (1 + np.exp(-(features @ kernel + bias)))
    np.testing.assert_allclose(model.predict_on_batch(x)[:, 0], expected, rtol=1e-5)


def test_a_student_with_a_linear_branch_is_saved_served_and_reported(pipeline_run, tmp_path):
    train_briefly(pipeline_run, tmp_path, pair_vocab_size=60, linear_branch=True)
    classifier = load_model(tmp_path / "models/classifier.keras")
    assert has_linear_branch(classifier) and classifier.name == "lstm_classifier"
    summary = json.loads((tmp_path / "t.json").read_text())
    fitted = summary["linear_branch"]
    assert set(fitted["branches"]) == {"lstm", "linear"}
    assert set(fitted["weights"]) == {
        "lstm",
        "linear",
        "lstm_x_length",
        "linear_x_length",
        "length",
    }
    _, x, _ = dataset.load_arrays(pipeline_run / "data/prepared", "validation")
    parts = branches_alone(classifier)
    features = blend_features(
        parts["lstm"].predict_on_batch(x), linear_logit(classifier).predict_on_batch(x), x
    ).numpy()
    kernel, bias = classifier.get_layer("blend").get_weights()
    expected = 1 / (1 + np.exp(-(features @ kernel + bias)))
    np.testing.assert_allclose(classifier.predict_on_batch(x)[:, 0], expected, rtol=1e-5)
    predictor = Predictor.load(tmp_path / "models/end_to_end.keras")
    assert predictor.kernel == "numba"  # the LSTMs on the kernel, then the network's own blend
    assert predictor.probabilities(["a fine film", "dull"]).shape == (2,)


def test_the_linear_branch_weighs_its_own_triples_beside_the_lstms_words(pipeline_run, tmp_path):
    """linear_branch_triples: a bag of the most frequent word triples of the training
    reviews, fitted in one regression with the word ids, though the LSTM reads words only."""
    train_briefly(
        pipeline_run, tmp_path, linear_branch=True, linear_branch_triples=30,
        linear_branch_pairs=0, linear_branch_short_views=False, linear_branch_sentences=0.0,
    )  # fmt: skip
    classifier = load_model(tmp_path / "models/classifier.keras")
    bags = [layer.name for layer in classifier.layers if isinstance(layer, BagOfIds)]
    assert bags == ["linear_words", "linear_triples"]
    triples = classifier.get_layer("linear_word_triples")
    _, x, y = dataset.load_arrays(pipeline_run / "data/prepared", "train")
    words = text.load_encoder(pipeline_run / "data/prepared/encoder.json").vocab_size
    assert triples.n == 3 and triples.vocab_size == 30
    assert np.array_equal(triples.vocabulary, ngrams.build_ngram_vocabulary(x, words, 30, 3))
    features = linear_branch.id_features(x, [None, triples.traced()], [words, 30])
    head = linear.nb_head(0.1, 1.0).fit(features, y)
    np.testing.assert_allclose(
        linear_logit(classifier).predict_on_batch(x)[:, 0],
        head.decision_function(features),
        atol=1e-4,
    )
    served = Predictor.load(tmp_path / "models/end_to_end.keras")
    encoder = text.load_encoder(pipeline_run / "data/prepared/encoder.json")
    reviews = ["a fine film , not bad at all", "dull and long"]
    np.testing.assert_allclose(
        served.probabilities(reviews),
        classifier.predict_on_batch(encoder.encode(reviews))[:, 0],
        atol=1e-5,
    )


def test_the_linear_branch_learns_the_training_reviews_short_views_too(pipeline_run, tmp_path):
    """linear_branch_short_views: the branch (its triples' vocabulary too) is fitted on the
    training reviews and the last sentences and first 20 words that preprocess cut from them,
    each with its review's label."""
    train_briefly(
        pipeline_run, tmp_path, linear_branch=True, linear_branch_triples=30,
        linear_branch_pairs=0, linear_branch_short_views=True, linear_branch_sentences=0.0,
    )  # fmt: skip
    classifier = load_model(tmp_path / "models/classifier.keras")
    _, x, y = dataset.load_arrays(pipeline_run / "data/prepared", "train")
    _, views, _ = dataset.load_arrays(pipeline_run / "data/prepared", dataset.SHORT_VIEWS_SPLIT)
    x_all = np.concatenate([x, views])
    words = text.load_encoder(pipeline_run / "data/prepared/encoder.json").vocab_size
    triples = classifier.get_layer("linear_word_triples")
    assert np.array_equal(triples.vocabulary, ngrams.build_ngram_vocabulary(x_all, words, 30, 3))
    views_of = [None, triples.traced()]
    head = linear.nb_head(0.1, 1.0).fit(
        linear_branch.id_features(x_all, views_of, [words, 30]), np.tile(y, 3)
    )
    np.testing.assert_allclose(
        linear_logit(classifier).predict_on_batch(x)[:, 0],
        head.decision_function(linear_branch.id_features(x, views_of, [words, 30])),
        atol=1e-4,
    )


def test_the_linear_branch_learns_every_sentence_each_review_weighing_the_same(
    pipeline_run, tmp_path
):
    """linear_branch_sentences: the branch is also fitted on every sentence of 4 words or more
    of each training review (preprocess), with its review's label, one review's sentences
    weighing linear_branch_sentences in all; linear_branch_pairs: pairs of its own."""
    train_briefly(
        pipeline_run, tmp_path, linear_branch=True, linear_branch_triples=0,
        linear_branch_pairs=40, linear_branch_short_views=False, linear_branch_sentences=2.0,
    )  # fmt: skip
    classifier = load_model(tmp_path / "models/classifier.keras")
    prepared = pipeline_run / "data/prepared"
    ids, x, y = dataset.load_arrays(prepared, "train")
    sentence_ids, sentences, sentence_labels = dataset.load_arrays(prepared, "train_sentences")
    per_review = Counter(zip(sentence_ids.tolist(), sentence_labels.tolist(), strict=True))
    assert max(per_review.values()) > 1  # else every weight would be the total
    weights = [2.0 / per_review[key] for key in zip(sentence_ids, sentence_labels, strict=True)]
    words = text.load_encoder(prepared / "encoder.json").vocab_size
    pairs = classifier.get_layer("linear_word_pairs")
    assert pairs.vocab_size == 40  # its own, beside no LSTM pairs (pair_vocab_size 0)
    assert np.array_equal(pairs.vocabulary, ngrams.build_ngram_vocabulary(x, words, 40, 2))
    views, rows = [None, pairs.traced()], [words, 40]
    features = scipy.sparse.vstack(
        [linear_branch.id_features(block, views, rows) for block in (x, sentences)]
    )
    head = linear.nb_head(0.1, 1.0).fit(
        features, np.r_[y, sentence_labels],
        logisticregression__sample_weight=np.r_[np.ones(len(x)), weights],
    )  # fmt: skip
    np.testing.assert_allclose(
        linear_logit(classifier).predict_on_batch(x)[:, 0],
        head.decision_function(features[: len(x)]),
        atol=1e-4,
    )


# split -> (the switches that read it, its rows made another split's, what the error says)
EXTRA_SPLITS = {
    dataset.SHORT_VIEWS_SPLIT: (
        {"linear_branch_short_views": True, "linear_branch_sentences": 0.0},
        lambda ids: ids[::-1],
        "its reviews are not the training split's",
    ),
    dataset.SENTENCES_SPLIT: (
        {"linear_branch_short_views": False, "linear_branch_sentences": 1.0},
        lambda ids: ids + 10_000,
        "its sentences are not the training split's",
    ),
}


@pytest.mark.parametrize("split", EXTRA_SPLITS)
@pytest.mark.parametrize("broken", ["missing", "other reviews"])
def test_extra_training_rows_that_do_not_fit_the_training_split_are_refused(
    pipeline_run, tmp_path, split, broken
):
    from stages import train

    switches, misfit, misfit_message = EXTRA_SPLITS[split]
    prepared = tmp_path / "prepared"
    shutil.copytree(pipeline_run / "data/prepared", prepared)
    path = prepared / f"{split}.npz"
    if broken == "missing":
        path.unlink()
        error, message = FileNotFoundError, f"{path}: not found"
    else:
        ids, x, labels = dataset.load_arrays(prepared, split)
        dataset.save_arrays(path, misfit(ids), x, labels)
        error, message = train.PreparedDataError, misfit_message
    values = {**train_params(pipeline_run), "max_epochs": 1, "pair_vocab_size": 0}
    values.update(linear_branch=True, **switches)
    with pytest.raises(error, match=message):
        train.run(
            train.Params(**values), [], prepared, tmp_path / "models", tmp_path / "t.json",
            tmp_path / "live", pipeline_run / "data/linear_baseline/out_of_fold.npz",
        )  # fmt: skip
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("key", ["linear_branch_triples", "linear_branch_pairs"])
@pytest.mark.parametrize("size", [1, 2])
def test_linear_branch_ngrams_too_few_for_one_ngram_are_refused(pipeline_run, tmp_path, key, size):
    with pytest.raises(ParamsError, match=f"train.{key} = {size} is out of range"):
        train_briefly(pipeline_run, tmp_path, linear_branch=True, **{key: size})
    assert not (tmp_path / "models").exists()


def test_the_linear_branch_needs_a_positive_c(pipeline_run, tmp_path):
    with pytest.raises(ValueError, match="linear_branch_C"):
        train_briefly(pipeline_run, tmp_path, linear_branch=True, linear_branch_C=0.0)


def test_a_compiled_student_leaves_its_optimizer_out_of_the_saved_files(tmp_path):
    """A words-only student is its own trainer, compiled with the training-only optimizer:
    the saved network must load with the serving layers alone."""
    from imdb_sentiment.data.text import TextEncoder
    from imdb_sentiment.training import export
    from imdb_sentiment.training.model import compile_classifier

    keras.utils.set_random_seed(0)
    student = build_classifier(6, 4, 3, 1, False, 0.0, "mean_max", name="lstm")
    compile_classifier(student, 0.01, 1.0, rowwise_embeddings=True)
    network = linear_branch.with_linear_branch(student, 6, {}, "net")
    export.write_models(network, TextEncoder(["good", "bad", "film", "dull"], 8), tmp_path)
    for name in (export.CLASSIFIER_FILE, export.END_TO_END_FILE):
        with zipfile.ZipFile(tmp_path / name) as saved:
            config = saved.read("config.json").decode()
        assert "Rowwise" not in config and "optimizer" not in config, name

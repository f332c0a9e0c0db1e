import numpy as np
import pytest
import scipy.sparse
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from imdb_sentiment.training import linear

CLEANING = {"lowercase": True, "strip_html": True, "strip_punctuation": True}
POSITIVE = ["a great film", "great acting and a great story", "wonderful and great", "loved it"]
NEGATIVE = ["a dull film", "dull acting and a bad story", "awful and dull", "hated it"]


def test_log_count_ratio_by_hand():
    # Columns: a feature in both positive rows, one in a negative row, one in both classes.
    features = scipy.sparse.csr_matrix(np.array([[1, 0, 1], [1, 0, 0], [0, 1, 1]], np.float32))
    ratio = linear.LogCountRatio(alpha=1.0).fit(features, np.array([1, 1, 0])).ratio_
    positive, negative = np.array([3.0, 1.0, 2.0]), np.array([1.0, 2.0, 2.0])
    expected = np.log(positive / 6) - np.log(negative / 5)
    np.testing.assert_allclose(ratio, expected, rtol=1e-6)
    scaled = linear.LogCountRatio(1.0).fit(features, np.array([1, 1, 0])).transform(features)
    np.testing.assert_allclose(scaled.toarray()[0], [expected[0], 0, expected[2]], rtol=1e-6)


def test_a_column_no_row_has_gets_no_ratio_and_stays_out_of_the_totals():
    features = scipy.sparse.csr_matrix(np.array([[1, 0, 0], [0, 0, 1]], np.float32))
    ratio = linear.LogCountRatio(alpha=1.0).fit(features, np.array([1, 0])).ratio_
    # Columns 0 and 2 only: positive counts 2, 1 (total 3); negative 1, 2 (total 3).
    np.testing.assert_allclose(ratio, [np.log(2), 0, -np.log(2)])


def test_cleaning_is_the_pipelines():
    assert linear.clean_texts(["Great!<br />It's <b>GOOD</b>, isn't it?"], CLEANING) == [
        "great it's b good b isn't it"
    ]
    assert linear.clean_texts([], CLEANING) == []


def test_cleaning_in_chunks_keeps_every_text_in_order():
    texts = ["A <br />b!", "", "C, d.", "E", "f G h"]
    expected = ["a b", "", "c d", "e", "f g h"]
    assert linear.clean_texts(texts, CLEANING) == expected
    assert linear.clean_texts(texts, CLEANING, chunk=2) == expected  # chunks of 2, 2 and 1


def test_nb_model_learns_and_round_trips(tmp_path):
    texts, labels = POSITIVE + NEGATIVE, np.array([1] * 4 + [0] * 4)
    pipeline = nb_pipeline(ngram_max=2, c=10.0, alpha=1.0)
    model = linear.LinearModel(pipeline.fit(linear.clean_texts(texts, CLEANING), labels), CLEANING)
    scores = model.probabilities(["GREAT, great!", "so DULL"])
    assert scores.dtype == np.float32 and scores[0] > 0.5 > scores[1]
    assert "great story" in model.pipeline[0].vocabulary_  # word pairs are features
    model.save(tmp_path / "model.pkl")
    np.testing.assert_array_equal(
        linear.LinearModel.load(tmp_path / "model.pkl").probabilities(["GREAT, great!"]),
        scores[:1],
    )


def test_a_texts_score_is_its_distinct_ngrams_weights_by_hand():
    texts, labels = POSITIVE + NEGATIVE, np.array([1] * 4 + [0] * 4)
    pipeline = nb_pipeline(ngram_max=2, c=10.0, alpha=1.0)
    model = linear.LinearModel(pipeline.fit(linear.clean_texts(texts, CLEANING), labels), CLEANING)
    vocabulary, ratio = pipeline[0].vocabulary_, pipeline[1].ratio_
    weights, intercept = pipeline[-1].coef_[0], pipeline[-1].intercept_[0]
    # "great" twice counts once (binary features); "unseen" and "great dull" are no features.
    candidates = {"great", "dull", "great great", "great dull", "dull great", "unseen"}
    ngrams = candidates & set(vocabulary)
    assert ngrams == {"great", "dull"}
    logit = intercept + sum(weights[vocabulary[n]] * ratio[vocabulary[n]] for n in ngrams)
    [score] = model.probabilities(["Great great DULL unseen"])
    assert score == pytest.approx(1 / (1 + np.exp(-logit)), abs=1e-6)


def test_fit_nb_model_scores_each_fold_with_a_model_fitted_on_the_others():
    texts = linear.clean_texts(POSITIVE + NEGATIVE + ["great fun", "bad fun"], CLEANING)
    labels = np.array([1] * 4 + [0] * 4 + [1, 0])
    pipeline, scores = linear.fit_nb_model(texts, labels, 2, c=10.0, alpha=1.0, folds=2, seed=3)
    folds = StratifiedKFold(2, shuffle=True, random_state=3).split(labels, labels)
    for fitted_on, held_out in folds:
        fold = nb_pipeline(2, 10.0, 1.0).fit([texts[i] for i in fitted_on], labels[fitted_on])
        np.testing.assert_allclose(
            scores[held_out], fold.predict_proba([texts[i] for i in held_out])[:, 1], atol=1e-6
        )
    whole = nb_pipeline(2, 10.0, 1.0).fit(texts, labels).predict_proba(texts)[:, 1]
    np.testing.assert_allclose(pipeline.predict_proba(texts)[:, 1], whole, atol=1e-6)


def test_loading_a_missing_or_foreign_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.pkl: not found; run the linear_baseline"):
        linear.LinearModel.load(tmp_path / "model.pkl")
    (tmp_path / "other.pkl").write_bytes(__import__("pickle").dumps({"not": "a model"}))
    with pytest.raises(TypeError, match="other.pkl: not a linear baseline model"):
        linear.LinearModel.load(tmp_path / "other.pkl")


def test_out_of_fold_scores_come_from_models_that_never_saw_the_text():
    # Each text's n-gram is unique to it, so only a model that saw the text can be sure of it:
    # out-of-fold, every probability stays at the class prior the other folds learned.
    texts = [f"word{i}" for i in range(12)]
    labels = np.array([0, 1] * 6)
    scores = linear.out_of_fold_probabilities(
        lambda: nb_pipeline(1, 100.0, 1.0), texts, labels, folds=3, seed=0
    )
    assert scores.shape == (12,) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, 0.5, atol=0.05)
    fitted = nb_pipeline(1, 100.0, 1.0).fit(texts, labels)
    in_sample = fitted.predict_proba(texts)[:, 1]
    assert np.mean((in_sample >= 0.5) == labels) == 1.0  # what the folds avoid


def test_tfidf_model_is_issue_32s():
    model = linear.tfidf_model()
    features, classifier = model[0], model[-1]
    assert features.ngram_range == (1, 2) and features.sublinear_tf and features.min_df == 2
    assert features.max_features == 300_000 and classifier.C == 8.0


def test_scoring_in_chunks_gives_the_same_scores():
    texts, labels = POSITIVE + NEGATIVE, np.array([1] * 4 + [0] * 4)
    pipeline = nb_pipeline(ngram_max=2, c=10.0, alpha=1.0)
    model = linear.LinearModel(pipeline.fit(linear.clean_texts(texts, CLEANING), labels), CLEANING)
    whole = model.probabilities(texts, chunk=100)
    np.testing.assert_array_equal(model.probabilities(texts, chunk=3), whole)
    assert model.probabilities([]).shape == (0,)


def nb_pipeline(ngram_max: int, c: float, alpha: float) -> Pipeline:
    """The NB-weighted model unfitted: the counts, then the stage's head."""
    return Pipeline(
        [("countvectorizer", linear.ngram_counts(ngram_max)), *linear.nb_head(c, alpha).steps]
    )

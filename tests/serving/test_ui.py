import os
import re
import shutil
from html.parser import HTMLParser

import gradio as gr
import httpx
import pytest

from imdb_sentiment.serving import ui
from imdb_sentiment.serving.predict import Predictor
from imdb_sentiment.serving.serve import ServerSettings
from imdb_sentiment.serving.state import ServingState

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# CI installs chromium and sets REQUIRE_BROWSER=1 so a missing browser fails instead of skipping.
BROWSER_MISSING = not os.path.exists(CHROMIUM) and not os.environ.get("REQUIRE_BROWSER")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SETTINGS = ServerSettings(max_text_chars=200)


class Spans(HTMLParser):
    """The word spans of ui.highlight's HTML: word, direction, influence, colour alpha."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict] = []
        self.inside = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "span" and attributes.get("class") == "word":
            self.inside = True
            alpha = re.search(r"rgba\([^)]*, ([0-9.]+)\)", attributes.get("style", ""))
            self.found.append(
                {
                    "word": "",
                    "direction": attributes.get("data-direction"),
                    "influence": float(attributes["data-influence"]),
                    "alpha": float(alpha.group(1)) if alpha else None,
                }
            )

    def handle_endtag(self, tag: str) -> None:
        self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.found[-1]["word"] += data


def spans(page: str) -> list[dict]:
    parser = Spans()
    parser.feed(page)
    return parser.found


@pytest.fixture(scope="module")
def predictor(pipeline_run):
    return Predictor.load(pipeline_run / "models/end_to_end.keras")


@pytest.fixture(scope="module")
def ready_state(predictor):
    return ServingState(predictor=predictor, batcher=object())


def test_analyse_returns_bars_words_and_verdict(ready_state, predictor):
    bars, words, verdict = ui.analyse("Great film, awful ending", ready_state, SETTINGS)
    assert set(bars) == {"positive", "negative"} and sum(bars.values()) == pytest.approx(1.0)
    assert [span["word"] for span in spans(words)] == ["great", "film", "awful", "ending"]
    expected = predictor.predict(["Great film, awful ending"])[0]
    assert verdict == f"{expected.label} ({expected.confidence:.1%} confidence)"


def test_highlight_strength_follows_the_influence_and_skips_noise():
    page = ui.highlight([("superb", 0.40), ("good", 0.10), ("the", 0.004), ("waste", -0.20)])
    by_word = {span["word"]: span for span in spans(page)}
    assert by_word["the"]["direction"] is None and by_word["the"]["alpha"] is None
    alphas = [by_word[word]["alpha"] for word in ("superb", "waste", "good")]
    assert alphas == sorted(alphas, reverse=True) and alphas[0] == 1.0
    assert by_word["waste"]["direction"] == "toward negative"


def test_highlighted_words_are_escaped():
    page = ui.highlight([("<script>", 0.5)])
    assert "<script>" not in page and spans(page)[0]["word"] == "<script>"


def test_analyse_refuses_empty_long_text_and_unloaded_model(ready_state):
    with pytest.raises(gr.Error):
        ui.analyse("   ", ready_state, SETTINGS)
    with pytest.raises(gr.Error, match="201 characters; the limit is 200"):
        ui.analyse("x" * 201, ready_state, SETTINGS)
    with pytest.raises(gr.Error, match="loading"):
        ui.analyse("good", ServingState(), SETTINGS)
    with pytest.raises(gr.Error, match="no such file"):
        ui.analyse("good", ServingState(error="no such file"), SETTINGS)


def test_a_review_with_no_known_words_says_the_label_is_a_guess(ready_state):
    _, _, verdict = ui.analyse("!!! ???", ready_state, SETTINGS)
    assert verdict.split()[0] in ("positive", "negative") and "guess" in verdict


def test_the_ui_queue_is_bounded_and_its_cache_cleaned(ready_state):
    demo = ui.build_ui(ready_state, ServerSettings(ui_queue_size=3))
    assert demo._queue.max_size == 3 and demo._queue.default_concurrency_limit == 1
    assert demo.delete_cache == (3600, 3600)


def test_the_header_comes_from_the_model_card():
    card = {
        "architecture": "one-direction LSTM (1 x 64 units) over words and word pairs",
        "train_reviews": 23750,
        "test_accuracy": 0.9117,
    }
    assert ui.describe(card) == (
        "One-direction LSTM (1 x 64 units) over words and word pairs. Trained by the DVC "
        "pipeline on 23,750 reviews; test accuracy 91.2%."
    )
    assert ui.describe(None) == "An LSTM classifier. Trained by the DVC pipeline."


def test_api_and_ui_share_one_server(live_server):
    assert httpx.get(f"{live_server}/ui/", timeout=10).status_code == 200
    response = httpx.post(f"{live_server}/predict", json={"text": "great"}, timeout=10)
    assert response.status_code == 200


@pytest.mark.skipif(BROWSER_MISSING, reason="chromium not installed (apt-get install chromium)")
def test_browser_shows_the_models_verdict_highlights_and_header(live_server, predictor):
    from playwright.sync_api import sync_playwright

    review = "A great and wonderful film, but an awful ending."
    card = httpx.get(f"{live_server}/health", timeout=10).json()["model"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(f"{live_server}/ui/", wait_until="networkidle")
            page.wait_for_function(
                "() => document.querySelector('#model-description')"
                " && document.querySelector('#model-description').innerText.includes('Trained by')",
                timeout=30_000,
            )
            header = page.locator("#model-description").inner_text()
            page.get_by_label("Review").fill(review)
            page.locator("#analyse").click()
            verdict = page.locator("#verdict textarea")
            page.wait_for_function(
                "el => el.value.length > 0", arg=verdict.element_handle(), timeout=30_000
            )
            shown_verdict = verdict.input_value()
            bars = page.locator("#probabilities").inner_text()
            shown = page.locator("#words span.word").evaluate_all(
                "els => els.map(e => [e.textContent, e.dataset.direction || null])"
            )
        finally:
            browser.close()
    expected = predictor.predict([review])[0]
    assert shown_verdict == f"{expected.label} ({expected.confidence:.1%} confidence)"
    assert "positive" in bars and "negative" in bars
    influences = predictor.word_influence(review)
    assert shown == [[word, ui.direction(score)] for word, score in influences]
    assert header == ui.describe(card) and "one-direction LSTM" in card["architecture"]

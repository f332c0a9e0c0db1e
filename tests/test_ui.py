import os
import shutil

import gradio as gr
import httpx
import pytest

from imdb_sentiment import ui
from imdb_sentiment.predict import Predictor

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


@pytest.fixture(scope="module")
def ready_state(pipeline_run):
    predictor = Predictor.load(pipeline_run / "models/end_to_end.keras")
    return {"predictor": predictor, "batcher": object(), "error": None}


def test_analyse_returns_bars_words_and_verdict(ready_state):
    bars, words, verdict = ui.analyse("Great film, awful ending", ready_state, 0.5)
    assert set(bars) == {"positive", "negative"} and sum(bars.values()) == pytest.approx(1.0)
    assert [w.strip() for w, _ in words] == ["great", "film", "awful", "ending"]
    assert {label for _, label in words} <= {"toward positive", "toward negative", None}
    assert any(label is not None for _, label in words)
    assert verdict.split()[0] in ("positive", "negative") and "confidence" in verdict


def test_analyse_refuses_empty_text_and_unloaded_model(ready_state):
    with pytest.raises(gr.Error):
        ui.analyse("   ", ready_state, 0.5)
    with pytest.raises(gr.Error):
        ui.analyse("good", {"predictor": None, "error": None}, 0.5)


def test_api_and_ui_share_one_server(live_server):
    assert httpx.get(f"{live_server}/ui/", timeout=10).status_code == 200
    response = httpx.post(f"{live_server}/predict", json={"text": "great"}, timeout=10)
    assert response.status_code == 200


@pytest.mark.skipif(BROWSER_MISSING, reason="chromium not installed (apt-get install chromium)")
def test_browser_types_a_review_and_reads_label_and_highlights(live_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(f"{live_server}/ui/", wait_until="networkidle")
            page.get_by_label("Review").fill("A great and wonderful film, but an awful ending.")
            page.locator("#analyse").click()
            verdict = page.locator("#verdict textarea")
            page.wait_for_function(
                "el => el.value.length > 0", arg=verdict.element_handle(), timeout=30_000
            )
            label, _ = verdict.input_value().split(" ", 1)
            assert label in ("positive", "negative")
            bars = page.locator("#probabilities").inner_text()
            assert "positive" in bars and "negative" in bars
            words = page.locator("#words").inner_text()
            for word in ("great", "wonderful", "awful", "ending"):
                assert word in words
        finally:
            browser.close()

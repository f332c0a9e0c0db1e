"""Gradio web UI at /ui: probabilities, example reviews, and word-level highlighting."""

from __future__ import annotations

from typing import Any

import gradio as gr
from fastapi import FastAPI

EXAMPLES = [
    "An instant classic. The performances are superb and the story stays with you for days.",
    "Two hours I will never get back. Dull, predictable and badly acted.",
    "The first half drags, but the ending is wonderful and surprisingly moving.",
    "I wanted to love it: great cast, beautiful score, but the script is a mess.",
]
NOT_READY = "The model is still loading; try again in a moment."
COLOURS = {"toward positive": "#2e9d48", "toward negative": "#d64545"}
NOTABLE = 0.1  # share of the strongest word's effect below which a word is left unmarked


def analyse(review: str, state: dict[str, Any], threshold: float) -> tuple[dict, list, str]:
    """Probabilities for the label bars, (word, influence) pairs, and a one-line verdict."""
    predictor = state.get("predictor")
    if predictor is None or "batcher" not in state:
        raise gr.Error(state.get("error") or NOT_READY)
    if not review or not review.strip():
        raise gr.Error("Type or paste a review first.")
    prediction = predictor.predict([review], threshold)[0]
    influences = predictor.word_influence(review)
    strongest = max((abs(score) for _, score in influences), default=0.0) or 1.0
    highlighted = [(word + " ", _direction(score / strongest)) for word, score in influences]
    probabilities = {
        "positive": prediction.probability_positive,
        "negative": 1.0 - prediction.probability_positive,
    }
    verdict = f"{prediction.label} ({prediction.confidence:.1%} confidence)"
    return probabilities, highlighted, verdict


def _direction(relative_effect: float) -> str | None:
    if abs(relative_effect) < NOTABLE:
        return None
    return "toward positive" if relative_effect > 0 else "toward negative"


def build_ui(state: dict[str, Any], threshold: float) -> gr.Blocks:
    with gr.Blocks(title="IMDB sentiment") as demo:
        gr.Markdown(
            "# IMDB review sentiment\n"
            "A bidirectional LSTM trained by the DVC pipeline on 25k IMDB reviews. "
            "Highlighted words pushed the prediction toward **positive** (green) or "
            "**negative** (red), judged by how the prediction moves when the word is left out."
        )
        review = gr.Textbox(label="Review", lines=6, placeholder="Paste a movie review…")
        submit = gr.Button("Analyse", variant="primary", elem_id="analyse")
        verdict = gr.Textbox(label="Prediction", interactive=False, elem_id="verdict")
        bars = gr.Label(label="Probabilities", num_top_classes=2, elem_id="probabilities")
        words = gr.HighlightedText(
            label="Word influence",
            combine_adjacent=False,
            show_legend=True,
            color_map=COLOURS,
            elem_id="words",
        )
        gr.Examples(EXAMPLES, inputs=review, label="Examples (click one)")
        submit.click(
            lambda text: analyse(text, state, threshold),
            inputs=review,
            outputs=[bars, words, verdict],
            api_name="analyse",
        )
    return demo


def mount_ui(app: FastAPI, state: dict[str, Any], settings: Any) -> FastAPI:
    return gr.mount_gradio_app(app, build_ui(state, settings.threshold), path="/ui")

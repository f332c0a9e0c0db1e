"""Gradio web UI at /ui: probabilities, example reviews, and word-level highlighting."""

from __future__ import annotations

import html
import logging
from typing import Any

import gradio as gr
from fastapi import FastAPI

from imdb_sentiment.serving.predict import NO_KNOWN_WORDS
from imdb_sentiment.serving.state import ServingState

logger = logging.getLogger(__name__)
EXAMPLES = [
    "An instant classic. The performances are superb and the story stays with you for days.",
    "Two hours I will never get back. Dull, predictable and badly acted.",
    "The first half drags, but the ending is wonderful and surprisingly moving.",
    "I wanted to love it: great cast, beautiful score, but the script is a mess.",
]
NOT_READY = "The model is still loading; try again in a moment."
COLOURS = {"toward positive": (46, 157, 72), "toward negative": (214, 69, 69)}
# A word that moves P(positive) by less than this (one percentage point) is noise, not marked
NOISE_FLOOR = 0.01


def analyse(review: str, state: ServingState, settings: Any) -> tuple[dict, str, str]:
    """Probabilities for the label bars, the review as highlighted HTML, and a verdict line."""
    predictor = state.predictor
    if not state.started:
        raise gr.Error(state.error or NOT_READY)
    if not review or not review.strip():
        raise gr.Error("Type or paste a review first.")
    if len(review) > settings.max_text_chars:
        raise gr.Error(
            f"The review has {len(review):,} characters; the limit is "
            f"{settings.max_text_chars:,} (max_text_chars)."
        )
    try:
        prediction = predictor.predict([review], settings.threshold)[0]
        influences = predictor.word_influence(review)
    except Exception as error:  # users see a short message; the log has the detail
        logger.exception("UI prediction failed")
        raise gr.Error("Prediction failed; the server log has the details.") from error
    probabilities = {
        "positive": prediction.probability_positive,
        "negative": 1.0 - prediction.probability_positive,
    }
    verdict = f"{prediction.label} ({prediction.confidence:.1%} confidence)"
    if prediction.known_words == 0:
        verdict += f" - {NO_KNOWN_WORDS}"
    return probabilities, highlight(influences), verdict


def direction(influence: float) -> str | None:
    """Which way a word pushed the prediction, or None when its push is below the noise floor."""
    if abs(influence) < NOISE_FLOOR:
        return None
    return "toward positive" if influence > 0 else "toward negative"


def highlight(influences: list[tuple[str, float]]) -> str:
    """The words as HTML spans, each as strongly coloured as its push relative to the
    strongest word's."""
    strongest = max((abs(score) for _, score in influences), default=0.0)
    spans = []
    for word, score in influences:
        category = direction(score)
        attributes = f'data-influence="{score:.4f}" title="{score:+.3f}"'
        if category is None:
            spans.append(f'<span class="word" {attributes}>{html.escape(word)}</span>')
            continue
        red, green, blue = COLOURS[category]
        alpha = 0.15 + 0.85 * abs(score) / strongest
        spans.append(
            f'<span class="word" data-direction="{category}" {attributes} '
            f'style="background: rgba({red}, {green}, {blue}, {alpha:.2f}); '
            f'border-radius: 3px; padding: 0 2px">{html.escape(word)}</span>'
        )
    return f'<div class="influence" style="line-height: 1.9">{" ".join(spans)}</div>'


def describe(card: dict | None) -> str:
    """The header's line on the model, from the model card that /health serves too."""
    card = card or {}
    architecture = card.get("architecture") or "an LSTM classifier"
    line = f"{architecture[0].upper()}{architecture[1:]}. Trained by the DVC pipeline"
    if card.get("train_reviews"):
        line += f" on {card['train_reviews']:,} reviews"
    if card.get("test_accuracy") is not None:
        line += f"; test accuracy {card['test_accuracy']:.1%}"
    return line + "."


def build_ui(state: ServingState, settings: Any) -> gr.Blocks:
    # Gradio keeps each session's files; delete those older than an hour, every hour
    with gr.Blocks(title="IMDB sentiment", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# IMDB review sentiment")
        header = gr.Markdown(elem_id="model-description")
        gr.Markdown(
            "Highlighted words pushed the prediction toward **positive** (green) or "
            "**negative** (red), judged by how the prediction moves when the word is left out; "
            "the stronger the colour, the larger the push. Pushes under one percentage point "
            "are left unmarked."
        )
        review = gr.Textbox(label="Review", lines=6, placeholder="Paste a movie review…")
        submit = gr.Button("Analyse", variant="primary", elem_id="analyse")
        verdict = gr.Textbox(label="Prediction", interactive=False, elem_id="verdict")
        bars = gr.Label(label="Probabilities", num_top_classes=2, elem_id="probabilities")
        words = gr.HTML(label="Word influence", elem_id="words")
        gr.Examples(EXAMPLES, inputs=review, label="Examples (click one)")
        submit.click(
            lambda text: analyse(text, state, settings),
            inputs=review,
            outputs=[bars, words, verdict],
            api_name="analyse",
        )
        demo.load(lambda: describe(state.card), outputs=header, api_name=False)
    # One click at a time (the model takes one caller anyway), and a bounded line behind it
    return demo.queue(max_size=settings.ui_queue_size, default_concurrency_limit=1)


def mount_ui(app: FastAPI, state: ServingState, settings: Any, path: str) -> FastAPI:
    return gr.mount_gradio_app(
        app,
        build_ui(state, settings),
        path=path,
        max_file_size=settings.max_body_bytes,
        show_error=False,  # gr.Error messages still show; raw exceptions do not
    )

"""Drives the API's Open Inference Protocol routes with Triton's stock client, tritonclient.

Run by tests/serving/test_open_inference.py in a virtual environment of its own (tritonclient pins
packages older than TensorFlow's), as a user's separate client would be:

    python tests/oip_client.py 127.0.0.1:8000 "review one" "review two"

Prints one JSON object: health, metadata, the probabilities, the echoed id, and the error the
client reports for a blank review.
"""

import json
import sys

import numpy as np
import tritonclient.http as http
from tritonclient.utils import InferenceServerException

MODEL = "sentiment-model"


def text_input(reviews: list[str]) -> http.InferInput:
    tensor = http.InferInput("text", [len(reviews)], "BYTES")
    tensor.set_data_from_numpy(np.array(reviews, dtype=object), binary_data=False)
    return tensor


def main() -> None:
    url, reviews = sys.argv[1], sys.argv[2:]
    client = http.InferenceServerClient(url)
    wanted = [http.InferRequestedOutput("probability_positive", binary_data=False)]
    report = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready(MODEL),
        "metadata": client.get_model_metadata(MODEL),
    }
    result = client.infer(MODEL, [text_input(reviews)], outputs=wanted, request_id="req-7")
    report["probabilities"] = result.as_numpy("probability_positive").tolist()
    report["id"] = result.get_response()["id"]
    try:
        client.infer(MODEL, [text_input(["   "])], outputs=wanted)
        report["blank_error"] = None
    except InferenceServerException as refused:
        report["blank_error"] = {"status": refused.status(), "message": refused.message()}
    print(json.dumps(report))


if __name__ == "__main__":
    main()

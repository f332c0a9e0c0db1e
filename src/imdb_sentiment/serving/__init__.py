"""Serving a trained model: prediction from raw text, the REST API, the web UI, the CLI,
the KServe routes, metrics, request logs and the model registry."""

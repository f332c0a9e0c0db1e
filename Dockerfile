# The API and the UI in a container (docs/serving.md#docker). The model is copied from the
# workspace, so get it first (dvc pull, or dvc repro), then:
#   docker build -t imdb-sentiment . && docker run -p 8000:8000 imdb-sentiment
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False
WORKDIR /app

# the serving pins only (no dvc, no test tools); TensorFlow at requirements.txt's CPU pin
COPY requirements-serve.txt ./
RUN pip install tensorflow-cpu==2.21.0 -r requirements-serve.txt
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-deps .

# the model, and what /health reports beside it (its card: the params that made it; the test
# accuracy)
COPY models/end_to_end.keras models/model_card.json models/
COPY metrics/eval.json metrics/

RUN useradd --create-home --uid 10001 sentiment
USER sentiment

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4)"
CMD ["sentiment", "serve", "--host", "0.0.0.0", "--port", "8000", "--model", "models/end_to_end.keras"]

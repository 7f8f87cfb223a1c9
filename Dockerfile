# hybridrec: one image for the trainer and the three services.
# Build stage: compiles wheels (annoy and hnswlib need a C++ compiler); final stage has no build tools.
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY training ./training
COPY hybridrec ./hybridrec
# CPU-only PyTorch (the default wheel on PyPI is a multi-GB CUDA build).
RUN pip wheel --no-cache-dir --wheel-dir /wheels \
        --extra-index-url https://download.pytorch.org/whl/cpu \
        torch==2.13.0 . \
    && rm -f /wheels/nvidia_*

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    KERAS_BACKEND=tensorflow \
    HYBRIDREC_HOST=0.0.0.0 \
    HYBRIDREC_ARTIFACTS=/artifacts \
    HYBRIDREC_STATE_DIR=/state \
    HYBRIDREC_DATA=/app/data/ml-latest-small.zip
RUN useradd --create-home --uid 10001 hybridrec \
    && mkdir -p /artifacts /state /app/data \
    && chown hybridrec:hybridrec /artifacts /state
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels hybridrec torch==2.13.0 \
    && rm -rf /wheels
COPY data/ml-latest-small.zip /app/data/ml-latest-small.zip
WORKDIR /app
USER hybridrec
EXPOSE 8000 8001 8002
CMD ["hybridrec", "serve", "gateway"]

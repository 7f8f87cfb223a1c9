# hybridrec: one image for the trainer and the three services.
#
# BASE_IMAGE: any Debian-based image with python3 3.11 and its venv module. The default is
# the registry's python:3.11-slim; where no registry is reachable, deploy/base_image.sh
# builds hybridrec-base:bookworm from a debootstrap rootfs (Debian bookworm's python3 is
# 3.11) and `make compose-test` passes it here.
# Python packages come from pip's index: PIP_INDEX_URL / PIP_EXTRA_INDEX_URL /
# PIP_FIND_LINKS (build arguments; the default adds PyTorch's CPU-only index, since the
# default torch wheel on PyPI is a multi-GB CUDA build); PIP_CERT_URL: a CA bundle for
# pip to trust (a TLS-inspecting proxy's), fetched at build time and left in the build
# stage only. Build with `--network host` to reach URLs on the build machine's loopback.
# Build stage: a virtualenv with every dependency (annoy and hnswlib compile C++);
# the final stage copies the venv and has no build tools.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# python3-dev: headers for Debian's python3 (python:3.11-slim has its own in /usr/local).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential python3-dev \
    && rm -rf /var/lib/apt/lists/*
# Declared after apt-get, so that changing where pip looks keeps that layer cached.
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_FIND_LINKS=
ARG PIP_CERT_URL=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DEFAULT_TIMEOUT=180
RUN if [ -n "$PIP_CERT_URL" ]; then \
        python3 -c "import sys, urllib.request as u; u.urlretrieve(sys.argv[1], '/etc/pip-ca.pem')" "$PIP_CERT_URL" \
        && printf '[global]\ncert = /etc/pip-ca.pem\n' > /etc/pip.conf; fi
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --upgrade pip wheel setuptools
WORKDIR /src
# Dependencies first (a layer that survives code changes): torch pinned to the CPU build.
COPY pyproject.toml README.md ./
RUN /opt/venv/bin/python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb')); print('\n'.join(d['project']['dependencies']))" > /tmp/requirements.txt \
    && /opt/venv/bin/pip install torch==2.13.0 -r /tmp/requirements.txt \
    && /opt/venv/bin/python -c "import torch; assert not torch.cuda.is_available(); print('torch', torch.__version__)"
COPY shared ./shared
COPY services ./services
COPY training ./training
COPY hybridrec ./hybridrec
RUN /opt/venv/bin/pip install --no-deps . \
    && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
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
COPY --from=build /opt/venv /opt/venv
COPY data/ml-latest-small.zip /app/data/ml-latest-small.zip
WORKDIR /app
USER hybridrec
EXPOSE 8000 8001 8002
CMD ["hybridrec", "serve", "gateway"]

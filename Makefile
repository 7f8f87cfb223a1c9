# hybridrec: two commands set everything up.
#   make demo   install, train on the bundled data if no bundle exists, start the services
#   make test   install, lint, run the whole test suite (real Redis, TensorFlow, BERT, Annoy)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hybridrec-installed
ARTIFACTS ?= artifacts
DATA ?= data/ml-latest-small.zip
# Optional: a PyTorch index serving CPU-only wheels (avoids a multi-GB CUDA build on Linux), e.g.
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
# make bench: synthetic catalogue size, and extra flags for `python -m bench.run` (--retrain, --skip ann)
BENCH_ITEMS ?= 1000000
BENCH_ARGS ?=
# Training at scale (bench/train_scale.py): `make bench TRAIN_SCALE_SIZES=1M,5M,25M` adds the
# section to make bench (hours at 25M, so off by default); `make bench-train-scale` runs it alone.
TRAIN_SCALE_SIZES ?=
TRAIN_SCALE_ALL := 1M,5M,25M

.PHONY: install lint test demo train evaluate openapi clean bench bench-load bench-soak compose-test bench-train-scale

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel setuptools
	@if [ -n "$(TORCH_INDEX)" ]; then \
		$(BIN)/python -m pip install --quiet torch==2.13.0 --index-url "$(TORCH_INDEX)"; fi
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy shared services training hybridrec bench harness
	$(BIN)/python -m hybridrec.openapi_export --check

test: lint
	$(BIN)/python -m pytest -q

train: install
	$(BIN)/hybridrec train --data $(DATA) --out $(ARTIFACTS)

evaluate: install
	$(BIN)/hybridrec evaluate --data $(DATA) --split random --seeds 3 --out reports/random
	$(BIN)/hybridrec evaluate --data $(DATA) --split temporal --seeds 3 --out reports/temporal
	$(BIN)/hybridrec evaluate --data $(DATA) --split cold-items --seeds 3 --out reports/cold-items

demo: install
	@if [ ! -e $(ARTIFACTS)/latest ]; then \
		echo "No bundle in $(ARTIFACTS)/: training on $(DATA) (a few minutes, once)"; \
		$(BIN)/hybridrec train --data $(DATA) --out $(ARTIFACTS) || exit 1; \
	else echo "Using the bundle in $(ARTIFACTS)/latest"; fi
	$(BIN)/hybridrec serve all --artifacts $(ARTIFACTS)

bench: install
	$(BIN)/python -m bench.run --items $(BENCH_ITEMS) $(BENCH_ARGS)
	@if [ -n "$(TRAIN_SCALE_SIZES)" ]; then $(BIN)/python -m bench.train_scale --sizes $(TRAIN_SCALE_SIZES); fi

bench-train-scale: install
	$(BIN)/python -m bench.train_scale --sizes $(or $(TRAIN_SCALE_SIZES),$(TRAIN_SCALE_ALL))

# The gateway under load from a separate process (needs Redis at 127.0.0.1:6379; loopback only).
# bench-load: 50, 100, 200, 400 req/s for 20 s each, with the result cache (Zipf-skewed users)
# and without it (the baseline), for the split and then for one process per core (combined); bench-soak: 10 min at 100 req/s with every recommendation
# computed (SOAK_ARGS= to soak with the cache), with a verdict.
LOAD_RATES ?= 50,100,200,400
LOAD_DURATION ?= 20
SOAK_ARGS ?= --no-cache

bench-load: install
	$(BIN)/python -m bench.load load --rates $(LOAD_RATES) --duration $(LOAD_DURATION)
	$(BIN)/python -m bench.load load --rates $(LOAD_RATES) --duration $(LOAD_DURATION) --combined

bench-soak: install
	$(BIN)/python -m bench.load soak --rate 100 --duration 600 --warmup 60 $(SOAK_ARGS)

# The whole stack in Docker, for real (not part of `make test`: it builds images, ~GBs).
# Installs nothing: needs Docker + compose (Debian: apt-get install docker.io docker-compose
# debootstrap; a running dockerd), and debootstrap + root when python:3.11-slim cannot be
# pulled. COMPOSE_TEST_ARGS: e.g. --quick-train, --keep. See docs/operations.md.
COMPOSE_TEST_ARGS ?=

compose-test:
	$(PYTHON) deploy/compose_test.py $(COMPOSE_TEST_ARGS)

openapi: install
	$(BIN)/python -m hybridrec.openapi_export

clean:
	rm -rf .pytest_cache .ruff_cache .mypy_cache build *.egg-info

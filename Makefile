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

.PHONY: install lint test demo train evaluate openapi clean

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
	$(BIN)/mypy shared services training hybridrec
	$(BIN)/python -m hybridrec.openapi_export --check

test: lint
	$(BIN)/python -m pytest -q

train: install
	$(BIN)/hybridrec train --data $(DATA) --out $(ARTIFACTS)

evaluate: install
	$(BIN)/hybridrec evaluate --data $(DATA) --split random --out reports/random
	$(BIN)/hybridrec evaluate --data $(DATA) --split temporal --out reports/temporal
	$(BIN)/hybridrec evaluate --data $(DATA) --split cold-items --out reports/cold-items

demo: install
	@if [ ! -e $(ARTIFACTS)/latest ]; then \
		echo "No bundle in $(ARTIFACTS)/: training on $(DATA) (a few minutes, once)"; \
		$(BIN)/hybridrec train --data $(DATA) --out $(ARTIFACTS) || exit 1; \
	else echo "Using the bundle in $(ARTIFACTS)/latest"; fi
	$(BIN)/hybridrec serve all --artifacts $(ARTIFACTS)

openapi: install
	$(BIN)/python -m hybridrec.openapi_export

clean:
	rm -rf .pytest_cache .ruff_cache .mypy_cache build *.egg-info

# Quick start: `make demo` and `make test` both set up .venv from the package registries first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned, so pip takes the CPU wheel on disk instead of a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	# the reference LPIPS package, for tests/test_lpips.py only; --no-deps because its declared dependencies pull
	# torchvision (which cannot be imported here; the test hands it a stub torchvision)
	$(BIN)/python -m pip install -q --no-deps lpips==0.1.4
	touch $(STAMP)

# the demo's extra (scikit-image's sample photos) on top of the test setup; redone when pyproject.toml changes
$(DEMO_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q -e '.[demo]'
	touch $(DEMO_STAMP)

setup: $(STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python scripts/demo.py --out-dir out

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/stylize.py --out bench-results/stylize.json

clean:
	rm -rf $(VENV) out bench-results

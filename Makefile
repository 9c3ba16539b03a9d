# genmatch: `make demo` and `make test` do all the set-up on a fresh machine.
# Versions come from pyproject.toml only (the single source of truth); torch is installed first,
# pinned, so that no dependency can pull an unpinned (multi-GB CUDA) build.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.genmatch-installed
PYTEST_ARGS ?=

.PHONY: install demo test test-slow test-all clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), f"genmatch needs Python >= 3.11, found {sys.version.split()[0]}"'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade "pip>=23.2"
	@echo "installing the build backend of pyproject.toml [build-system] (tests/test_standalone.py builds a wheel offline)"
	@$(PY) -c 'import subprocess, sys, tomllib; subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", \
		"--disable-pip-version-check", *tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]])'
	@TORCH=$$($(PY) tools/pins.py torch) && echo "installing $$TORCH (first, pinned)" && \
		$(PY) -m pip install -q --disable-pip-version-check "$$TORCH"
	@echo "installing genmatch and its pinned dependencies"
	@$(PY) -m pip install -q --disable-pip-version-check -e ".[test]"
	@NODEPS=$$($(PY) tools/pins.py --no-deps) && echo "installing $$NODEPS (pinned, --no-deps)" && \
		$(PY) -m pip install -q --disable-pip-version-check --no-deps $$NODEPS
	@$(PY) tools/pins.py --check-installed
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/genmatch demo

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q -m "" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# `make demo` and `make test` work on a fresh machine: they create .venv, install the pinned
# dependencies and the package, then run. Re-running skips the install unless the pins changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The shared CIFAR archives beside the checkout, when present (see README: data root).
export FILTERPRIOR_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)

.PHONY: demo test test-fast setup clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/filterprior demo

test: $(STAMP)
	$(PY) -m pytest -q

# The quick tier while working: every test not marked slow (see CONTRIBUTING: test tiers).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) demo_out

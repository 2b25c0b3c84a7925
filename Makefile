# The two commands of the README: `make demo` and `make test`. Both build what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
JS_DEPS := tests/native/js/node_modules/.package-lock.json

.PHONY: demo test install

demo: $(INSTALLED)
	$(BIN)/distspace demo

test: $(INSTALLED) $(JS_DEPS)
	$(BIN)/python -m pytest

install: $(INSTALLED)

$(INSTALLED): pyproject.toml native/Cargo.toml native/Cargo.lock $(wildcard native/src/*.rs)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

$(JS_DEPS): tests/native/js/package-lock.json
	npm ci --silent --no-audit --no-fund --prefix tests/native/js

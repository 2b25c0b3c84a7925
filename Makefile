# The two commands of the README: `make demo` and `make test`. Both build what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
JS_DEPS := tests/native/js/node_modules/.package-lock.json
# js-libp2p, the foreign peer of tests/node/test_interop_js.py.
INTEROP_DEPS := tests/interop/js/node_modules/.package-lock.json
# The TypeScript client (clients/js), built for its tests (tests/clients/test_js_client.py).
JS_CLIENT := clients/js/dist/index.js

.PHONY: demo test install lint kubo

demo: $(INSTALLED)
	$(BIN)/distspace demo

test: $(INSTALLED) $(JS_DEPS) $(INTEROP_DEPS) $(JS_CLIENT)
	$(BIN)/python -m pytest

install: $(INSTALLED)

# The kubo IPFS daemon for the IPFS tests, built and cached by .ci/kubo (needs Go; they skip without it).
kubo:
	.ci/kubo

# Style and types (ruff, mypy --strict; settings in pyproject.toml). .ci/run runs it before the tests.
LINT_TOOLS := ruff==0.17.6 mypy==2.4.1
LINTERS := $(VENV)/.linters

lint: $(LINTERS)
	$(BIN)/ruff check .
	$(BIN)/mypy

# trio-typing (a dependency of libp2p) installs stubs written for trio 0.2x as `trio-stubs`; mypy
# prefers stubs to a package's own types, and trio has shipped its own (py.typed) since 0.22.
$(LINTERS): $(INSTALLED)
	$(BIN)/python -m pip install -q $(LINT_TOOLS)
	rm -rf "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/trio-stubs"
	touch $@

$(INSTALLED): pyproject.toml native/Cargo.toml native/Cargo.lock $(wildcard native/src/*.rs)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

$(JS_DEPS): tests/native/js/package-lock.json
	npm ci --silent --no-audit --no-fund --prefix tests/native/js

$(INTEROP_DEPS): tests/interop/js/package-lock.json
	npm ci --silent --no-audit --no-fund --prefix tests/interop/js

# Its types are generated from the API schema at build, so a schema change rebuilds it.
$(JS_CLIENT): clients/js/package-lock.json clients/js/tsconfig.json clients/js/scripts/generate_api_types.mjs node/api_schema.json $(wildcard clients/js/src/*.ts)
	npm ci --silent --no-audit --no-fund --prefix clients/js
	npm run --silent --prefix clients/js build

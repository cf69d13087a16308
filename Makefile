# kumocore — the two commands in the README are `make serve` and `make test`.
VENV := .venv
BIN := $(VENV)/bin
POLICY ?= kumocore/defaults/default-policy.lua
export KUMOCORE_VAR ?= $(CURDIR)/var
export NO_MKDOCS_2_WARNING := 1

.PHONY: install serve test test-fast lint check bench bench-short reliability reliability-short docs dist clean

install: $(BIN)/kumocore

$(BIN)/kumocore: pyproject.toml $(wildcard plugins/*/pyproject.toml) scripts/setup.sh
	scripts/setup.sh
	@touch $@

serve: install
	$(BIN)/kumocore serve --policy $(POLICY)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install lint
	$(BIN)/pytest -q -p no:cacheprovider

test-fast: install
	$(BIN)/pytest -q -m "not slow"

check: test

bench: install
	$(BIN)/python -m bench.run --mode full

bench-short: install
	$(BIN)/python -m bench.run --mode short

reliability: install
	$(BIN)/python -m bench.reliability --mode full

reliability-short: install
	$(BIN)/python -m bench.reliability --mode short

dist: install
	rm -rf dist && $(BIN)/pip wheel -q --no-deps -w dist . plugins/*/
	@ls dist

docs: install
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) var build dist site .pytest_cache .mypy_cache .ruff_cache

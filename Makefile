# kumocore — the two commands in the README are `make serve` and `make test`.
VENV := .venv
BIN := $(VENV)/bin
POLICY ?= kumocore/defaults/default-policy.lua
export KUMOCORE_VAR ?= $(CURDIR)/var
export NO_MKDOCS_2_WARNING := 1

.PHONY: install install-test c-extension serve test test-fast lint check bench bench-short reliability reliability-short docs dist clean status-screenshot

EXAMPLE_PLUGINS := kumocore-hello kumocore-webhook-sink

install: $(BIN)/kumocore c-extension

# The editable install builds the C line check in place; a tree cleaned since (say
# `git clean -fdx -e .venv`) keeps the virtualenv but loses the module, and kumocore would
# fall back to the slower line check without a word. Rebuild it whenever it is missing.
c-extension: | $(BIN)/kumocore
	@$(BIN)/python -c 'import kumocore.mail._crlfscan' 2>/dev/null || { \
	  echo "install: building kumocore.mail._crlfscan (the C line check)"; \
	  $(BIN)/pip install -q --no-deps -e . >/dev/null 2>&1 \
	    || echo "install: no C line check (no compiler?): the NumPy one is used"; }

$(BIN)/kumocore: pyproject.toml setup.py kumocore/mail/_crlfscan.c $(wildcard plugins/*/pyproject.toml) scripts/setup.sh
	scripts/setup.sh
	@touch $@

# The tests also need the example third-party plugins; `make serve` must not load them.
install-test: $(VENV)/.examples-installed c-extension

$(VENV)/.examples-installed: $(BIN)/kumocore $(wildcard docs/examples/*/pyproject.toml)
	scripts/setup.sh --examples
	@touch $@

serve: install
	@if $(BIN)/pip show -q $(EXAMPLE_PLUGINS) >/dev/null 2>&1; then \
	  echo "serve: removing the example plugins installed for the tests"; \
	  $(BIN)/pip uninstall -q -y $(EXAMPLE_PLUGINS); rm -f $(VENV)/.examples-installed; fi
	$(BIN)/kumocore serve --policy $(POLICY)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# Three pytest-xdist workers (most tests wait on sockets and child processes, so three
# fit two cores), then the few tests marked `serial` (throughput in a fixed time) alone.
test: install-test lint
	$(BIN)/pytest -q -p no:cacheprovider -n 3 --dist loadgroup -m "not serial"
	$(BIN)/pytest -q -p no:cacheprovider -m serial

test-fast: install-test
	$(BIN)/pytest -q -m "not slow"

check: test

bench: install
	$(BIN)/python -m bench.perf.run --mode full

bench-short: install
	$(BIN)/python -m bench.perf.run --mode short

reliability: install
	$(BIN)/python -m bench.reliability --mode full

reliability-short: install
	$(BIN)/python -m bench.reliability --mode short

# The status page screenshot in docs/operations.md, taken by its browser test.
status-screenshot: install-test
	STATUS_SCREENSHOT=$(CURDIR)/docs/images/status.png $(BIN)/pytest -q -p no:cacheprovider \
	  tests/status/test_status_browser.py -k suspends_a_queue

dist: install
	rm -rf dist && $(BIN)/pip wheel -q --no-deps -w dist . plugins/*/
	@ls dist

docs: install
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) var build dist site .pytest_cache .mypy_cache .ruff_cache

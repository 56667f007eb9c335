# Calciphylaxis case registry. Quick start: `make demo`, `make test`.
# Everything installs into ./.venv from PyPI (pinned in pyproject.toml and constraints.txt);
# all state goes under $(REGISTRY_HOME) (default ./data).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export REGISTRY_HOME ?= $(CURDIR)/data
PYTEST_ARGS ?=

.PHONY: install demo serve test test-fast bench browser clean distclean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 13), "Python 3.11-3.13 is required, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/registry prepare
	@touch $@

demo: install
	$(BIN)/registry demo

serve: install
	$(BIN)/registry serve

# Browser tests drive Debian's chromium through Playwright (Playwright cannot download its own browser here);
# the report test looks at PDF pages with poppler's pdftoppm.
browser:
	@{ command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; } && command -v pdftoppm >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium and poppler-utils for the browser and report tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium poppler-utils >/dev/null; }

# pytest exits 5 when it collects no test: treated as a failure here, since the suite must run.
# The layer contracts (import-linter, see pyproject.toml and docs/architecture.md) run first.
test: install browser
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

test-fast: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 -m "not slow and not browser" $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench.run

clean:
	rm -rf tests/artifacts .pytest_cache dbt_project/target dbt_project/logs

distclean: clean
	rm -rf $(VENV) data

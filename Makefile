# Shouhu: two commands on a fresh machine, `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := $(PYTHON) -m uv
VENV := .venv
BIN := $(VENV)/bin
export SHOUHU_HOME ?= $(CURDIR)/.shouhu

.PHONY: install fonts browsers demo test lint bench docs clean

## install: create .venv from the lock file (idempotent; quick when nothing changed)
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --python 3.11
	@touch $@

## demo: synthetic population → ingest → features → train → promote → score → serve
demo: install fonts
	$(BIN)/shouhu demo

## fonts: a font with Chinese glyphs for the explanation charts, installed only when missing
fonts:
	@test -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || $(call apt_install,fonts-wqy-microhei)

## browsers: Debian's chromium and the Chinese font for the browser tests (tests/browser),
## installed only when missing; Playwright drives /usr/bin/chromium, never a browser of its own
browsers: fonts
	@command -v chromium >/dev/null || $(call apt_install,chromium)

# apt-get install as root or through sudo; without either, say what is missing and go on
# (the charts fall back to English labels, the browser tests are skipped).
define apt_install
{ if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
  else echo "$(1) is missing and apt-get needs root: skipped" >&2; exit 0; fi; \
  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(1); }
endef

## test: lint, architecture contracts, and the whole test suite
test: install browsers lint
	$(BIN)/pytest -n 2 --dist loadfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

## bench: speed and memory figures (prints them; never a pass/fail test)
bench: install
	$(BIN)/python -m benchmarks.run

## docs: regenerate the documents generated from code
docs: install
	$(BIN)/shouhu features datamodel --out docs/data-model.md
	$(BIN)/shouhu features featuredoc --out docs/feature-store.md
	$(BIN)/shouhu review doc

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache

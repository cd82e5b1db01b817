# One-command set-up on a fresh Debian/Ubuntu machine: every target installs what it needs.
# Every install comes from the lock files in requirements/ (exact versions of every package);
# `make lock` refreshes them from pyproject.toml and `make check-latest` tries the newest allowed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.stemsplit-installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PIP_VERSION := 25.3

.PHONY: install ffmpeg browser lean-check lint docs lock check-latest test test-fast separate benchmark clean

install: $(STAMP) ffmpeg

# Re-installs when the package metadata or the lock changes; the editable install picks up code
# changes. Development gets everything in requirements/dev.txt: the train and stream extras, the
# test tools, ruff, mkdocs and the reference packages of the parity tests. The package itself is
# installed without resolving anything (--no-deps), so nothing but the lock decides a version.
$(STAMP): pyproject.toml requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "pip==$(PIP_VERSION)"
	$(PY) -m pip install --quiet -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# musdb's stempeg refuses to import without ffmpeg and ffprobe on PATH.
ffmpeg:
	@if command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; then \
		echo "ffmpeg: found $$(command -v ffmpeg)"; \
	else \
		echo "ffmpeg: installing with apt-get"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg; \
	fi

# The listening report's browser test (tests/test_html_browser.py) drives the OS's headless
# Chromium through Playwright: Playwright's own browser download does not work offline.
# Where apt cannot install it the test is skipped with its reason, except in CI, which fails.
browser:
	@if command -v chromium >/dev/null 2>&1; then \
		echo "chromium: found $$(command -v chromium)"; \
	else \
		echo "chromium: installing with apt-get"; \
		( $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium ) \
		|| { if [ -n "$$CI" ]; then exit 1; fi; echo "chromium: not installed; the browser test will be skipped"; }; \
	fi

# The lean install: the package without extras (not editable) into a fresh venv in a temporary
# folder, from requirements/base.txt, then `stemsplit separate` on a generated song; fails if
# torch got in.
lean-check:
	PYTHON=$(PYTHON) scripts/check_lean_install.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The user documentation (docs/, mkdocs.yml): a broken link or a page missing from the nav fails.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --quiet --site-dir $(VENV)/site

# Refreshes requirements/*.txt from pyproject.toml (needs the package index).
lock: $(STAMP)
	requirements/compile.sh $(VENV)/bin/uv

# Drift check: the newest versions pyproject.toml allows, in a fresh venv, then the fast tests.
# What fails here will fail for a user who installs without the lock; fix it, then `make lock`.
check-latest: ffmpeg
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --quiet "pip==$(PIP_VERSION)"
	.venv-latest/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e ".[train,stream,dev]"
	.venv-latest/bin/python -m pip list --format=freeze > .venv-latest/versions.txt
	.venv-latest/bin/python -m pytest -m "not slow" -x
	@echo "check-latest: the fast tests pass on the newest allowed versions (.venv-latest/versions.txt)"

test: install browser lint docs lean-check
	$(PY) -m pytest

test-fast: install browser
	$(PY) -m pytest -m "not slow"

# make separate SONG=path/to/song.mp3 [MODEL=name-or-checkpoint]
separate: install
	@if [ -z "$(SONG)" ]; then echo "usage: make separate SONG=path/to/song.mp3 [MODEL=...]"; exit 2; fi
	$(VENV)/bin/stemsplit separate "$(SONG)" $(if $(MODEL),--model "$(MODEL)")

benchmark: install
	$(PY) scripts/benchmark.py

clean:
	rm -rf $(VENV) .venv-latest build dist *.egg-info .pytest_cache

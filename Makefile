# One-command set-up on a fresh Debian/Ubuntu machine: every target installs what it needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.stemsplit-installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install ffmpeg browser lean-check test test-fast separate benchmark clean

install: $(STAMP) ffmpeg

# Re-installs when the package metadata changes; the editable install picks up code changes.
# Development gets everything: the train extra (torch, torchaudio, musdb, museval, onnx, matplotlib)
# and the test tools. Users who only separate need `pip install stemsplit` (see lean-check).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[train,dev]"
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

# The lean install: `pip install stemsplit` without extras (not editable) into a fresh venv in a
# temporary folder, then `stemsplit separate` on a generated song; fails if torch got in.
lean-check:
	PYTHON=$(PYTHON) scripts/check_lean_install.sh

test: install browser lean-check
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
	rm -rf $(VENV) build dist *.egg-info .pytest_cache

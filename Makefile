# Two entry points for a fresh clone (see README.md):
#   make audit   create .venv, install, audit the example notes
#   make test    create .venv, install with test extras (and Chromium), run the whole suite
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: audit test install install-test browser clean

$(BIN)/linkhealth: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

install: $(BIN)/linkhealth

$(VENV)/.test-installed: $(BIN)/linkhealth
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install-test: $(VENV)/.test-installed

# The browser test drives Debian's Chromium (no browser download: none is reachable here).
# fonts-noto-cjk: Chinese titles render as glyphs, not boxes, in the report's screenshots.
browser:
	@{ command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi "noto.*cjk"; } || { \
	  echo "installing Debian's chromium and CJK fonts for the browser test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    chromium fonts-noto-cjk >/dev/null; }

# Exit 1 means "failing links found": the audit worked, so make does not fail on it.
audit: install
	$(BIN)/linkhealth audit examples/notes; status=$$?; test $$status -le 1

test: install-test browser
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .linkhealth build *.egg-info

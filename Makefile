# make install | make test | make test-fast | make lint | make run   (see README.md)
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip --quiet
STAMP   := $(VENV)/.installed
# CPU wheel on these machines; a bare `torch` would pull the newest CUDA build (GBs).
TORCH   ?= torch==2.13.0
NPM     ?= npm
WEB     := kgserve/browser
WEB_STAMP := $(WEB)/node_modules/.installed
# mermaid, which the tests run in Chromium on `kgmigrate graph --format mermaid`.
TOOLS   := tools/mermaid
TOOLS_STAMP := $(TOOLS)/node_modules/.installed

# The test suite runs deploy/nginx.conf with Debian's nginx (tests/kgserve/test_nginx.py), and
# Graphviz's dot on `kgmigrate graph --format dot` (tests/kgmigrate/test_graph.py).
NGINX_PKG ?= nginx-light
GRAPHVIZ_PKG ?= graphviz

.PHONY: install test test-fast lint run clean system-packages chromium

install: $(STAMP) $(WEB_STAMP) $(TOOLS_STAMP) system-packages

# Debian packages the suite needs, installed when missing (as root; otherwise it says what to
# run, and only test_nginx.py fails without them: `make run` does not need nginx).
system-packages:
	@$(call need_package,nginx,$(NGINX_PKG),the suite runs deploy/nginx.conf with it)
	@$(call need_package,dot,$(GRAPHVIZ_PKG),the suite checks the output of kgmigrate graph with it)

# $(call need_package,COMMAND,PACKAGE,WHY): install PACKAGE when COMMAND is missing (as root;
# otherwise say what to run).
define need_package
if ! command -v $(1) >/dev/null 2>&1 && [ ! -x /usr/sbin/$(1) ]; then \
  if [ "$$(id -u)" = 0 ]; then \
    apt-get install -y -q $(2) || { apt-get update -q && apt-get install -y -q $(2); }; \
  else \
    echo "WARNING: $(1) is missing; $(3): sudo apt-get install -y $(2)" >&2; \
  fi; \
fi
endef

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel
	$(PIP) install $(TORCH)
	$(PIP) install -e '.[serve,test,dev]'
	touch $(STAMP)

# transformers.js and ONNX Runtime Web for /browser/, at the versions in package-lock.json, copied
# into kgserve/browser/vendor/ (package data: a wheel built afterwards carries them).
# --ignore-scripts: kgserve serves their browser files only; the Node.js runtimes they also pull
# in (onnxruntime-node, sharp) would run install scripts that download binaries.
$(WEB_STAMP): $(WEB)/package.json $(WEB)/package-lock.json $(WEB)/vendored.py
	@command -v $(NPM) >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y npm || { apt-get update && apt-get install -y npm; }; fi; }
	@command -v $(NPM) >/dev/null || { echo "npm is missing: run 'sudo apt-get install -y npm'"; exit 1; }
	$(NPM) ci --prefix $(WEB) --ignore-scripts --no-audit --no-fund
	$(PYTHON) $(WEB)/vendored.py
	touch $(WEB_STAMP)

$(TOOLS_STAMP): $(TOOLS)/package.json $(TOOLS)/package-lock.json $(WEB_STAMP)
	$(NPM) ci --prefix $(TOOLS) --ignore-scripts --no-audit --no-fund
	touch $(TOOLS_STAMP)

# The whole suite, and lint first.
test: install chromium lint
	$(VENV)/bin/pytest

# The inner loop: every test but those marked as needing a browser, nginx, gunicorn workers or
# a real model export, or as slow (the markers are described in pyproject.toml), in
# FAST_WORKERS processes (pytest-xdist; each starts its own PostgreSQL cluster).
FAST_TESTS   ?= not (slow or browser or nginx or gunicorn or export)
FAST_WORKERS ?= 2
test-fast: install
	$(VENV)/bin/pytest -m "$(FAST_TESTS)" -n $(FAST_WORKERS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The browser tests drive Debian's chromium (playwright cannot download its own browser here).
# Installed when missing and this runs as root; otherwise the tests fail saying what to run.
chromium:
	@command -v chromium >/dev/null || [ -n "$$KG_CHROMIUM" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y chromium || { apt-get update && apt-get install -y chromium; } \
	      || echo "could not install chromium: run 'sudo apt-get install -y chromium'"; \
	  else echo "chromium is missing for the browser tests: run 'sudo apt-get install -y chromium'"; fi; }

run: install
	$(VENV)/bin/kgmigrate localdb start
	$(VENV)/bin/kgmigrate up -y
	$(VENV)/bin/flask --app kgserve embedding set --if-changed --allow-dimension-change \
	  --provider local --model-name sentence-transformers/all-MiniLM-L6-v2 --dimensions 384 \
	  --fastest-backend
	-$(VENV)/bin/flask --app kgserve embedding browser
	$(VENV)/bin/python -m kgserve.devserver

clean:
	-$(VENV)/bin/kgmigrate localdb stop
	rm -rf .kgdata

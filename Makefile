# Two commands do everything on a fresh machine: `make run` and `make test`.
# Everything they need (the virtualenv, the Kafka jars, the FerretDB build, htmx for the desk pages, Debian's
# prometheus with promtool for the monitoring and its alert rules and, for the browser tests, Debian's chromium)
# is installed on first use and reused after; each step says what it is doing.
# `run`, `bench` and `docs` run the services in development mode (DEV_MODE=true): the public development
# secrets are allowed, with a warning. A deployment sets its own secrets and never DEV_MODE.

PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# The `triage` command is tools/, which the product's distribution leaves out: a wrapper runs it from this
# checkout (see tools/__main__.py).
TRIAGE := $(BIN)/triage

.PHONY: run test setup model assets browser prometheus infra reliability bench evaluate lint docs clean

$(STAMP): pyproject.toml
	@echo "==> python: creating $(VENV) and installing the project with its dev tools"
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check --progress-bar off -q --upgrade pip
	$(BIN)/pip install --disable-pip-version-check --progress-bar off -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

$(TRIAGE): $(STAMP)
	@echo "==> writing $(TRIAGE): runs the checkout's tools/ (python -m tools)"
	@printf '%s\n' '#!/bin/sh' \
	  '# written by `make setup`: the development tools are not in the product wheel (see tools/__main__.py)' \
	  'PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}" exec "$(abspath $(BIN)/python)" -m tools "$$@"' > $@
	@chmod +x $@

setup: $(STAMP) $(TRIAGE)

# The classification model: trained from the corpus once, into plain files the services load (never commit it).
# Always invoked; it rebuilds only when the corpus, the rule terms or the training code changed, and says which.
MODEL_DIR ?= model
model: setup  ## build the classification model into model/ (skipped while its inputs are unchanged)
	$(BIN)/python -m tools.model --out $(MODEL_DIR)

# The browser libraries the desk pages load (htmx): fetched from the npm registry once into
# ~/.cache/grievance-triage (pinned by version and sha512, see tools/infra/assets.py) and copied to the dir the
# desk API serves (DESK_ASSETS_DIR); district networks have no CDN. Never committed.
ASSETS_DIR ?= .triage/assets
assets: setup  ## the desk pages' browser libraries, served from $(ASSETS_DIR) (downloaded once)
	$(TRIAGE) assets --out $(ASSETS_DIR)

# The browser tests (tests/browser) drive Debian's headless Chromium through its chromedriver; without the
# Noto CJK font Chinese renders as boxes. Installed with apt-get once (as root, or with passwordless sudo).
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver
BROWSER_PACKAGES := chromium chromium-driver fonts-noto-cjk
APT_GET := apt-get
browser:  ## headless Chromium, its driver and the CJK font for the browser tests (Debian packages, once)
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ] && \
	    { fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || \
	      dpkg-query -W -f='$${Status}' fonts-noto-cjk 2>/dev/null | grep -q "ok installed"; }; then \
	  echo "==> browser: chromium $$($(CHROMIUM) --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -n1) present"; \
	else \
	  echo "==> browser: installing chromium, chromium-driver, fonts-noto-cjk from Debian (once)"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	  else echo "browser: installing needs root: run \`sudo $(APT_GET) install -y $(BROWSER_PACKAGES)\` once," \
	    "or \`make browser\` as root (this user is not root and has no passwordless sudo)" >&2; exit 1; fi; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive $(APT_GET) update && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y $(BROWSER_PACKAGES) && \
	  { test -x $(CHROMIUM) && test -x $(CHROMEDRIVER) || \
	    { echo "browser: apt-get finished, but $(CHROMIUM) or $(CHROMEDRIVER) is still missing" >&2; exit 1; }; } && \
	  echo "==> browser: chromium $$($(CHROMIUM) --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -n1) installed"; \
	fi

# Prometheus and promtool from Debian's package (2.42 on bookworm): `triage infra up` runs a local Prometheus
# with the alert rules of deploy/prometheus/rules, and `make test` checks those rules with promtool. Installed
# with apt-get once (as root, or with passwordless sudo), without its recommended node exporter, which the
# project does not scrape. On a machine with systemd, Debian also enables its own Prometheus on port 9090;
# the local one listens on 9190 ($$TRIAGE_PROMETHEUS_PORT), so the two do not meet.
PROMETHEUS := /usr/bin/prometheus
PROMTOOL := /usr/bin/promtool
PROMETHEUS_PACKAGES := prometheus
prometheus:  ## Prometheus and promtool (Debian's package, once)
	@if [ -x $(PROMETHEUS) ] && [ -x $(PROMTOOL) ]; then \
	  echo "==> prometheus: $$($(PROMETHEUS) --version 2>&1 | head -n1) present"; \
	else \
	  echo "==> prometheus: installing $(PROMETHEUS_PACKAGES) from Debian (once)"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	  else echo "prometheus: installing needs root: run \`sudo $(APT_GET) install -y --no-install-recommends" \
	    "$(PROMETHEUS_PACKAGES)\` once, or \`make prometheus\` as root (this user is not root and has no" \
	    "passwordless sudo)" >&2; exit 1; fi; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive $(APT_GET) update && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y --no-install-recommends $(PROMETHEUS_PACKAGES) && \
	  { test -x $(PROMETHEUS) && test -x $(PROMTOOL) || \
	    { echo "prometheus: apt-get finished, but $(PROMETHEUS) or $(PROMTOOL) is still missing" >&2; exit 1; }; } && \
	  echo "==> prometheus: $$($(PROMETHEUS) --version 2>&1 | head -n1) installed"; \
	fi

infra: setup prometheus  ## build and start the local Kafka broker, FerretDB and Prometheus
	$(BIN)/triage infra up

run: infra model assets  ## everything up, a stream of complaints, routed cases on screen; Ctrl-C stops it all
	DEV_MODE=true $(BIN)/triage run

test: setup model assets browser prometheus  ## the whole suite: lint, types, unit, integration and end-to-end on the real broker and server
	$(BIN)/python -m pytest

reliability: setup  ## fault injection on the real broker and server; the JSON summary is the last line
	$(BIN)/python -m pytest tests/reliability -q
	@cat .triage/reliability-summary.json

bench: infra model  ## the raw transport against the pipeline on the same broker
	DEV_MODE=true $(BIN)/triage bench --cases 5000

evaluate: setup model
	$(BIN)/triage evaluate

docs: setup  ## the AsyncAPI document of every service
	@mkdir -p docs/asyncapi
	@for s in intake classification routing followup feed; do \
	  DEV_MODE=true $(BIN)/faststream docs gen services.$$s.main:app --out docs/asyncapi/$$s.json >/dev/null && echo "docs/asyncapi/$$s.json"; \
	done

clean:
	-$(BIN)/triage infra down
	rm -rf .triage .pytest_cache .mypy_cache .ruff_cache

# Two commands do all the set-up on a fresh machine:
#   make demo   installs everything and runs a demo meeting
#   make test   installs everything and runs the tests
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
BROWSER_STAMP := $(VENV)/.browser-installed

.PHONY: setup demo test lint typecheck check bench clean

NATIVE := setup.py plugins/crypto/conf_crypto/_srtp_gcm.c plugins/crypto/conf_crypto/_gcm_vaes.h plugins/transport_udp_rtp/conf_transport_udp_rtp/_sendmany.c \
	conf_cli/bench/_blast.c plugins/transport_zmq/conf_transport_zmq/_seal.c

$(STAMP): pyproject.toml scripts/setup-system.sh $(NATIVE)
	./scripts/setup-system.sh
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,bench]'
	$(VENV)/bin/pip install -q -e examples/conf-transport-websocket
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/conf demo

# The web page's tests drive a headless Chromium.
$(BROWSER_STAMP): $(STAMP)
	./scripts/setup-system.sh --browser
	touch $(BROWSER_STAMP)

test: $(STAMP) $(BROWSER_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy conf_cli plugins examples fuzz
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -q -rs --durations=30

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/fanout.py

typecheck: $(STAMP)
	$(VENV)/bin/mypy conf_cli plugins examples fuzz

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Two commands: `make run` (set up, then index this checkout and publish it)
# and `make test` (set up, then run the test suite). Everything installs into
# the project folder: a virtualenv in .venv and scip-python in tools/scip-python.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SCIP_DIR := tools/scip-python
SCIP := $(SCIP_DIR)/node_modules/.bin/scip-python
SCIP_PROTO := codeintel_assets/core/scip/proto

export DAGSTER_HOME ?= $(CURDIR)/dagster_home

.PHONY: setup run test lint ui bench scip-bindings serve screenshot clean

setup: $(VENV)/.installed $(SCIP)

# torch is pinned to the CPU build that lies on this machine's disk; other torch
# versions would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

$(SCIP): $(SCIP_DIR)/package.json
	npm ci --prefix $(SCIP_DIR) --no-audit --no-fund --loglevel=error
	touch $@

run: setup
	$(VENV)/bin/indexctl build
	$(VENV)/bin/indexctl search "build the faiss index" --k 3

test: setup
	$(PY) -m pytest -q -p no:cacheprovider codeintel_assets_tests

lint: setup
	$(VENV)/bin/ruff check codeintel_assets codeintel_assets_tests benchmarks

ui: setup
	$(VENV)/bin/dagster dev -w workspace.yaml

bench: setup
	$(PY) benchmarks/bench_build.py

# Regenerate the SCIP bindings from the vendored schema (protoc of grpcio-tools, a dev
# dependency); commit scip_pb2.py and scip_pb2.pyi with the schema they came from.
scip-bindings: $(VENV)/.installed
	$(PY) -m grpc_tools.protoc -I $(SCIP_PROTO) --python_out=$(SCIP_PROTO) \
		--pyi_out=$(SCIP_PROTO) $(SCIP_PROTO)/scip.proto

serve: setup
	$(VENV)/bin/indexctl serve

# The search page's screenshot in docs/: headless Debian chromium (installed with apt-get
# when missing) against a server of this checkout's published index on a free port.
SCREENSHOT_PORT ?= 8799
QUERY ?= build the faiss index
NAV ?= callers:build_index
screenshot: setup
	command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)
	$(VENV)/bin/indexctl serve --port $(SCREENSHOT_PORT) & pid=$$!; \
	trap "kill $$pid" EXIT; \
	for i in $$(seq 60); do curl -sf localhost:$(SCREENSHOT_PORT)/healthz >/dev/null && break; sleep 1; done; \
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,900 \
	  --virtual-time-budget=15000 --screenshot=docs/search_page.png \
	  "http://127.0.0.1:$(SCREENSHOT_PORT)/?q=$(QUERY)&nav=$(NAV)"

clean:
	rm -rf $(VENV) $(SCIP_DIR)/node_modules

# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# every test, benchmark and demo that touches LSL stays on the loopback interface (loopback-only discovery)
export LSLAPICFG := $(CURDIR)/tests/lsl_api.cfg
# the official BIDS validator (npm package), installed with npm next to the venv; the BIDS export
# test runs it with node (tests/test_bids.py finds it through this variable)
BIDS_VALIDATOR_VERSION := 1.15.0
NODE_DIR := $(VENV)/node
NODE_STAMP := $(NODE_DIR)/.installed-$(BIDS_VALIDATOR_VERSION)
export BIDS_VALIDATOR := $(abspath $(NODE_DIR))/node_modules/bids-validator/bin/bids-validator

.PHONY: install test demo demo-model lint bench bench-gpu clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# the exact tested versions (constraints.txt) of everything the tests use: dev tools, the
# training code (train), LCM-LoRA (lcm); pyproject.toml holds only ranges
EXTRAS := dev,train,lcm

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "setuptools<81" wheel -c constraints.txt
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]" -c constraints.txt
	touch $(STAMP)

$(NODE_STAMP):
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
		npm install --prefix $(NODE_DIR) --save-exact --no-audit --no-fund \
			bids-validator@$(BIDS_VALIDATOR_VERSION) && touch $@; \
	else \
		echo "node or npm not found: the BIDS validator is not installed (install Node.js to" \
			"validate BIDS exports; tests/test_bids.py then skips the validator run)"; \
	fi

install: $(STAMP) $(NODE_STAMP)

test: install
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest
	$(VENV)/bin/ruff check .

# the demo needs only the Python packages (not the BIDS validator)
demo: $(STAMP)
	$(PY) -m dd_live demo

# rebuilds dd_live/assets/demo from scratch with the project's own training code (~20-25 min on 2 cores)
demo-model: install
	$(PY) -m training.demo.build --out dd_live/assets/demo

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) benchmarks/streaming.py
	$(PY) benchmarks/stream_stage.py
	$(PY) benchmarks/faults.py
	$(PY) benchmarks/encoder.py
	$(PY) benchmarks/generator.py
	$(PY) benchmarks/live.py
	$(PY) benchmarks/decoders.py
	$(PY) benchmarks/runtime.py
	$(PY) benchmarks/training.py
	$(PY) benchmarks/pipeline.py --quick
	$(PY) benchmarks/calibration.py

# EEG window -> pixels at full size on one GPU (random weights, same compute): p50/p95 at 1, 2
# and 4 steps with and without CUDA graphs against the reference sampler; fits in 8 minutes
bench-gpu: install
	timeout 480 $(PY) benchmarks/pipeline.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

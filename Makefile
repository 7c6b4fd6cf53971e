VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: install install-local iam-simulator test demo bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

install: $(PY)
	$(PIP) install --quiet -e '.[dev]'

install-local: $(PY)
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
		$(PIP) install --quiet -e '.[dev,local]'

# The offline main job: install with the local extra, then run the app and drive the scenario.
demo: install-local
	$(PY) -m agent.demo

# The IAM policy simulator the ABAC tests run (Node.js, pinned by tests/iam/package-lock.json).
# Without Node.js those tests are skipped (and say so); npm ci only needs the npm registry.
IAM_SIM_DIR := tests/iam
IAM_SIM := $(IAM_SIM_DIR)/node_modules/.package-lock.json

$(IAM_SIM): $(IAM_SIM_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(IAM_SIM_DIR) --no-audit --no-fund --loglevel=error; \
	else \
		echo "npm not found: the IAM policy simulation tests will be skipped"; \
	fi

iam-simulator: $(IAM_SIM)

test: install iam-simulator
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .state .pytest_cache build $(IAM_SIM_DIR)/node_modules

# Every benchmark with its defaults (about 1.5 minutes on 2 cores), or a chosen few:
#   make bench BENCH="local_index app" BENCH_ARGS="--sizes 1000,10000"   (args go to each one run)
#   make bench BENCH_JSON=1    writes $(BENCH_RESULTS)/<name>.jsonl (one JSON document per table)
# Results go under build/, which the AgentCore starter toolkit never uploads.
BENCH ?= $(patsubst bench/bench_%.py,%,$(wildcard bench/bench_*.py))
BENCH_ARGS ?=
BENCH_JSON ?=
BENCH_RESULTS ?= build/bench-results

bench: install
	@mkdir -p $(BENCH_RESULTS)
	@for n in $(BENCH); do \
		if [ -n "$(BENCH_JSON)" ]; then \
			$(PY) -m bench.bench_$$n --json $(BENCH_ARGS) > $(BENCH_RESULTS)/$$n.jsonl || exit 1; \
			echo "wrote $(BENCH_RESULTS)/$$n.jsonl"; \
		else \
			$(PY) -m bench.bench_$$n $(BENCH_ARGS) || exit 1; \
		fi; \
	done

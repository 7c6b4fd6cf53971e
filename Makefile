VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: install install-local test demo bench clean

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

test: install
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .state .pytest_cache

bench: install
	@for b in bench/bench_*.py; do $(PY) -m bench.$$(basename $$b .py) || exit 1; done

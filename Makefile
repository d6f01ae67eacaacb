# hoststate: `make run` starts the local stack, `make test` runs the test suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test unit lint bench demo crds controlplane venv clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	# The test extra's libvirt-python builds from source against Debian's libvirt (hoststate[libvirt]): a C compiler and Python's headers too.
	bash scripts/install-test-tools.sh pkg-config:pkg-config cc:gcc python3.11-config:python3.11-dev lib/libvirt:libvirt-dev
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# kube-apiserver, etcd and kubectl built from the Go module proxy, cached in ~/.cache/hoststate/bin/.
controlplane:
	bash scripts/build-control-plane.sh >/dev/null

crds: $(STAMP)
	$(PY) -m hoststate.resources.crd deploy/crds

# The fault-management flow end to end (fault, monitor, force-down, notification, evacuation).
demo: $(STAMP) controlplane
	$(PY) -m hoststate.cli demo

run: $(STAMP) controlplane
	$(PY) -m hoststate.cli run

test: $(STAMP) controlplane lint
	bash scripts/install-test-tools.sh
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check operator tests bench
	$(VENV)/bin/ruff format --check operator tests bench

# Benchmarks (not part of `make test`): prints a table, writes bench/results/latest.json.
bench: $(STAMP) controlplane
	bash scripts/install-test-tools.sh wrk:wrk
	$(PY) -m bench $(BENCH_ARGS)

unit: $(STAMP)
	$(PY) -m pytest -m "not cluster" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .run .pytest_cache

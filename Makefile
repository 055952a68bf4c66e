# sj2lava: `make test` and `make demo` work on a fresh machine; the venv is built on first use.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.sj2lava-installed
PYTEST_ARGS ?=

.PHONY: test test-fast demo lint bench verify-emulator verify-frontends fuzz gpu-check lock clean core-test release-check

$(STAMP): pyproject.toml requirements.lock
	@if ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then \
	  py=$$(./tools/find_python310.sh) || exit 1; \
	  echo "creating $(VENV) with $$py"; rm -rf $(VENV); "$$py" -m venv $(VENV) || exit 1; \
	fi
	$(PY) -m pip install -q --disable-pip-version-check --upgrade "pip>=23,<25"
	$(PY) -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[lava,dev]'
	@touch $@

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The edit-test loop: everything that starts no Lava process and no subprocess (tests/conftest.py marks the rest
# `slow`); CI runs `make test`, the whole suite.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check sj2lava tests tools benchmarks examples
	$(PY) -m mypy

demo: $(STAMP)
	$(PY) -m sj2lava.demo

bench: $(STAMP)
	$(PY) benchmarks/bench_block.py
	$(PY) benchmarks/bench_lava.py
	$(PY) benchmarks/bench_emulator.py
	$(PY) benchmarks/bench_evaluate.py

# The emulator against Lava on NETS seeded random networks (the suite runs a subset).
NETS ?= 200
verify-emulator: $(STAMP)
	$(PY) tools/verify_emulator.py --nets $(NETS)

# The front-ends against their frameworks on NETS seeded random nets each (SpikingJelly, snnTorch, lava-dl, NIR),
# every layer spike for spike; the first LAVA_NETS of each also through Lava (the suite runs a subset).
LAVA_NETS ?= 3
verify-frontends: $(STAMP)
	$(PY) tools/verify_frontends.py --nets $(NETS) --lava $(LAVA_NETS)

# Hostile .net files: MUTANTS seeded mutants through load, inspect and emulate, each in a limited child
# process (the suite runs 300).
MUTANTS ?= 1000
fuzz: $(STAMP)
	$(PY) tools/fuzz_netx.py --mutants $(MUTANTS)
	$(PY) tools/fuzz_nir.py --mutants $(MUTANTS)

# Every check that needs a GPU, with one summary table; without CUDA it is the CPU dry run the suite runs.
gpu-check: $(STAMP)
	$(PY) tools/gpu_check.py

# Re-pin the tested stack from the current venv.
lock: $(STAMP)
	{ head -2 requirements.lock; $(PY) -m pip freeze --exclude-editable | grep -v '^sj2lava'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

# The core where lava-dl cannot go: Python 3.11, SpikingJelly 2.x, numpy 2, no Lava. Its `core` tests write a .net
# into HANDOFF; the 3.10 environment then runs that file in Lava against the output recorded there.
CORE_VENV  := .venv-core
CORE_PY    := $(CORE_VENV)/bin/python
CORE_STAMP := $(CORE_VENV)/.sj2lava-installed
HANDOFF    := $(CURDIR)/build/core-handoff

$(CORE_STAMP): pyproject.toml
	@py=$$(./tools/find_python_core.sh) || exit 1; \
	  echo "creating $(CORE_VENV) with $$py"; rm -rf $(CORE_VENV); "$$py" -m venv $(CORE_VENV) || exit 1
	$(CORE_PY) -m pip install -q --disable-pip-version-check torch==2.13.0 spikingjelly==2.0.0 "numpy>=2" pytest tqdm
	$(CORE_PY) -m pip install -q --disable-pip-version-check -e .
	@$(CORE_PY) -c 'import numpy, sys; sys.exit(int(numpy.__version__.split(".")[0]) < 2)' || \
	  { echo "error: installing sj2lava took numpy below 2 in the core environment"; exit 1; }
	@touch $@

core-test: $(CORE_STAMP) $(STAMP)
	rm -rf $(HANDOFF)
	SJ2LAVA_HANDOFF=$(HANDOFF) $(CORE_PY) -m pytest -p no:cacheprovider -m core tests/test_core_env.py
	SJ2LAVA_HANDOFF=$(HANDOFF) $(PY) -m pytest -p no:cacheprovider tests/test_core_env.py -k runs_in_lava

# Before a release: build the sdist and the wheel, install each into a fresh Python 3.11 venv (numpy 2, no Lava)
# and run the emulator from it.
RELEASE := $(CURDIR)/build/release
release-check: $(CORE_STAMP)
	rm -rf $(RELEASE) && mkdir -p $(RELEASE)
	$(CORE_PY) -m pip install -q --disable-pip-version-check build
	$(CORE_PY) -m build -q --sdist --wheel --outdir $(RELEASE)/dist .
	@for kind in whl tar.gz; do \
	  v=$(RELEASE)/venv-$$kind; $(CORE_PY) -m venv $$v || exit 1; \
	  $$v/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0 $(RELEASE)/dist/*.$$kind || exit 1; \
	  (cd $(RELEASE) && $$v/bin/python -c "import numpy, torch, sj2lava; from sj2lava.netx.random_nets import random_spec; \
	    s = random_spec(3); x = (torch.rand(8, 2, *s.input_shape) < .4).float(); \
	    assert torch.equal(sj2lava.emulate(s, x), sj2lava.emulate(s, x, backend='torch')); \
	    print('$$kind: sj2lava', sj2lava.__version__, 'numpy', numpy.__version__, 'emulates')") || exit 1; \
	  $$v/bin/sj2lava --version || exit 1; \
	done

clean:
	rm -rf $(VENV) $(CORE_VENV) .pytest_cache build *.egg-info

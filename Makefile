# `make test` and `make demo` work on a fresh clone: they create .venv and install what is missing.
PY ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-all demo bench-office gpu-check clean-venv

$(VPY):
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip

# torch first: the CPU build. Into an empty venv, verl would otherwise pull a multi-GB CUDA torch.
$(STAMP): requirements.txt pyproject.toml | $(VPY)
	$(VPY) -m pip install -q "$$(grep '^torch==' requirements.txt)"
	$(VPY) -m pip install -q -r requirements.txt
	$(VPY) -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(VPY) -m pytest

test-all: $(STAMP)
	$(VPY) -m pytest -m "not gpu"

# The whole pipeline on the embedded demo (under 10 min on 2 CPU cores from a fresh clone: 459 s = ~76 s install + 383 s
# pipeline with THREADS=1); results in results/demo/.
# Knobs are environment variables, e.g. `make demo THREADS=1` or `STAGE1_STEPS=600 make demo`.
demo: $(STAMP)
	PYTHON=$(abspath $(VPY)) bash run_pipeline.sh

# The Office_Products benchmark (stage 1 alone: STAGES=1, about 24 min on 2 CPU cores); needs data/Amazon (python scripts/download_data.py) or DATA_DIR.
# Other categories of the release layout: CATEGORY=...; stop early: STAGES=1 or 2.
bench-office: $(STAMP)
	$(VPY) benchmarks/office_benchmark.py $(if $(DATA_DIR),--data_dir $(DATA_DIR),) \
		$(if $(CATEGORY),--category $(CATEGORY),) $(if $(STAGES),--stages $(STAGES),)

# On a GPU node, in the environment of environment-gpu.yml (README "GPU quickstart"): `pytest -m gpu`, then every
# stage for a few steps on a small demo set and stage 3 on verl (scripts/gpu_smoke.py); a table of seconds and
# PASS/FAIL, non-zero exit on a failure. Without CUDA it stops at once (exit 2). `make gpu-check GPU_CHECK_DEVICE=cpu`
# runs the same smoke on the CPU with .venv (no GPU tests, no verl; 66-74 s on the 2-core CPU).
# GPU_CHECK_ARGS passes flags on, e.g. GPU_CHECK_ARGS="--verl on --work_dir /tmp/smoke" (--help lists them).
GPU_PY ?= $(if $(filter cpu,$(GPU_CHECK_DEVICE)),$(VPY),python)
gpu-check:
	$(if $(filter-out cpu cuda,$(GPU_CHECK_DEVICE)),$(error GPU_CHECK_DEVICE must be cpu or cuda, got '$(GPU_CHECK_DEVICE)'))
	$(GPU_PY) scripts/gpu_smoke.py $(if $(filter cpu,$(GPU_CHECK_DEVICE)),--cpu,) $(GPU_CHECK_ARGS)

clean-venv:
	rm -rf $(VENV)

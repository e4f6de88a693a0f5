# `make test` and `make demo` work on a fresh clone: they create .venv and install what is missing.
PY ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-all demo bench-office clean-venv

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

# The whole pipeline on the embedded demo (under 10 min on 2 CPU cores from a fresh clone: 531 s = ~94 s install + 437 s
# pipeline with THREADS=1); results in results/demo/.
# Knobs are environment variables, e.g. `make demo THREADS=1` or `STAGE1_STEPS=600 make demo`.
demo: $(STAMP)
	PYTHON=$(abspath $(VPY)) bash run_pipeline.sh

# The Office_Products benchmark (stage 1 alone: STAGES=1, about 24 min on 2 CPU cores); needs ../shared/data/Amazon or DATA_DIR.
# Other categories of the release layout: CATEGORY=...; stop early: STAGES=1 or 2.
bench-office: $(STAMP)
	$(VPY) benchmarks/office_benchmark.py $(if $(DATA_DIR),--data_dir $(DATA_DIR),) \
		$(if $(CATEGORY),--category $(CATEGORY),) $(if $(STAGES),--stages $(STAGES),)

clean-venv:
	rm -rf $(VENV)

# `make test` and `make demo` work on a fresh clone: they create .venv and install what is missing.
PY ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-all demo bench clean-venv

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

demo: $(STAMP)
	@echo "make demo: the end-to-end pipeline is not yet available (issue 6)."
	@echo "Available now: scripts/make_demo_data.py, scripts/build_sids.py, scripts/make_tiny_model.py, scripts/check_data.py."

clean-venv:
	rm -rf $(VENV)

# Two commands do all the set-up on a fresh machine: `make demo` and `make test` (both create .venv if missing).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-clean tour test clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The main job on the embedded dataset (a few minutes); rerunning resumes, `make demo-clean` starts over.
demo: $(STAMP)
	$(PY) -m trainers.cifar --flagfile=demo.flags

demo-clean:
	rm -rf runs/demo

tour: $(STAMP)
	$(PY) -m examples.quick_tour

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info

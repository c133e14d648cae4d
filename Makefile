# Two commands do all the set-up on a fresh machine: `make demo` and `make test` (both create .venv if missing).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-clean tour test figure2 clean

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
	$(PY) -m pytest -q -n 2 --dist loadfile  # 2 processes, one test file each at a time (module fixtures stay whole)

# The Figure 2 sweep at CPU scale (README, "Figure 2 at CPU scale"): about 75 minutes on 2 cores; rerunning resumes.
figure2: $(STAMP)
	PYTHON=$(PY) tuning/run_figure2.sh
	$(PY) -m tuning.frontier runs/figure2 --out results/figure2/frontier.png --csv results/figure2/figure2.csv \
		--runs_csv results/figure2/runs.csv
	$(PY) -m tuning.probe runs/figure2 --csv results/figure2/probe.csv --runs_csv results/figure2/probe_runs.csv

clean:
	rm -rf $(VENV) build *.egg-info

# Two commands do all the set-up on a fresh machine: `make demo` and `make test` (both create .venv if missing).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-clean tour lint test figure2 figure2-report figure3 clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The main job on the embedded dataset (a few minutes); rerunning resumes, `make demo-clean` starts over.
demo: $(STAMP)
	$(PY) -m trainers.cifar --flagfile=demo.flags
	$(PY) -m trainers.demo_figure --model_dir=runs/demo --out=runs/demo/demo.png

demo-clean:
	rm -rf runs/demo

tour: $(STAMP)
	$(PY) -m examples.quick_tour

# ruff (pyproject.toml's rules: pyflakes' errors, import order, 120 columns), then the suite.
lint: $(STAMP)
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest -q -n 2 --dist loadfile  # 2 processes, one test file each at a time (module fixtures stay whole)

# The 8x8 Figure 2 study (studies/figure2_8x8/README.md); rerunning resumes where it stopped.
F2 := studies/figure2_8x8/results
F2_SEARCHES = $(wildcard $(F2)/search $(F2)/search_extension)

figure2: $(STAMP)
	PYTHON=$(PY) studies/figure2_8x8/run.sh
	$(MAKE) figure2-report

# Tables and plot of the sweep so far, main grid and extension (works on a partial sweep).
figure2-report: $(STAMP)
	$(PY) -m tuning.frontier $(F2_SEARCHES) --out $(F2)/frontier.png --csv $(F2)/figure2.csv \
		--runs_csv $(F2)/runs.csv --gaps_csv $(F2)/gaps.csv --floor $(F2)/entropy_floor.json | tee $(F2)/frontier.txt
	$(PY) -m tuning.frontier $(F2)/search > $(F2)/frontier_main_grid.txt
	$(PY) -m tuning.curves $(F2_SEARCHES) --out $(F2)/curves.png
	$(PY) -m tuning.extend --list $(F2_SEARCHES) > $(F2)/extended_runs.txt
	$(PY) -m tuning.probe $(F2_SEARCHES) --csv $(F2)/probe.csv --runs_csv $(F2)/probe_runs.csv > $(F2)/probe.txt
	$(PY) -m tuning.noisy_evaluation $(F2_SEARCHES) $(wildcard $(F2)/search_rescore) \
		--csv $(F2)/noisy_evaluation.csv > $(F2)/noisy_evaluation.txt

# Figure 3's grids (samples, and rows sharing z) from the sweep's finished seed-0 runs that still have checkpoints.
figure3: $(STAMP)
	$(PY) -m studies.figure2_8x8.figure3 --search=$(F2)/search --out=studies/figure2_8x8/figure3

clean:
	rm -rf $(VENV) build *.egg-info

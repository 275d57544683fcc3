# mmlego: `make demo` runs the workflow on the synthetic demo cohort, `make test` the test suite.
# Both create the virtual environment (.venv, pinned in pyproject.toml) when it is missing.
VENV ?= .venv
CORES ?= 2
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup demo pancancer test lint format bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[all,dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	snakemake --cores $(CORES)

# every cohort of pancancer.folder (config/pancancer.yaml) as one run: results/pancancer/.
# Snakemake re-plans whenever a job ends, and, while its job-rate limit is on, once per limit
# window too, in rounds that pile up over a long run. The scheduling options of the cluster
# profile (its job-rate window, its scheduler and how many ready jobs a round weighs) are read
# from there, so that a local and a cluster run plan alike (README, "Pan-cancer benchmark").
SCHEDULING ?= $(shell sed -n 's/^\(max-jobs-per-timespan\|scheduler\|scheduler-subsample\): *\([^ #]*\).*/--\1 \2/p' cluster/config.yaml)
pancancer: setup
	snakemake -s workflow/pancancer.smk --cores $(CORES) $(SCHEDULING)

# on $(TEST_WORKERS) workers, one test file at a time each (tests/conftest.py shares the tiny run);
# the slowest tests and their times are listed at the end
TEST_WORKERS ?= 3
test: setup
	python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=20

lint: setup
	ruff check mmlego scripts tests
	ruff format --check mmlego scripts tests
	snakefmt --check workflow/Snakefile workflow/pancancer.smk rules
	snakemake --lint

format: setup
	ruff check --fix mmlego scripts tests
	ruff format mmlego scripts tests
	snakefmt workflow/Snakefile workflow/pancancer.smk rules

bench: setup
	python -m mmlego.bench

clean:
	rm -rf results .snakemake

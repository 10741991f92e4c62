# Spillway. Two commands do all the set-up on a fresh Debian/Ubuntu machine:
#   make run    install what is missing, start the whole stack (Ctrl-C stops it)
#   make test   the same bootstrap on separate ports under var/test, then pytest
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
N ?= 410000

.PHONY: help run run-ha test test-cluster check status seed warm bench soak sysdeps venv lock clean

help:
	@echo "make run         start MariaDB, Redis, web, worker and Flower (Ctrl-C stops all)"
	@echo "                 ROLE=web|worker|flower|data: one role of a stack spread over hosts (docs/scaling.md)"
	@echo "make run-ha      the same, plus a Redis replica and three Sentinels (failover), under var/ha"
	@echo "make test        checks (ruff, mypy, import contracts), then the tests against private servers"
	@echo "make test-cluster the multi-host tests alone (root: network namespaces), a cluster per durability mode"
	@echo "make check       only the checks: ruff, mypy, lint-imports (seconds, no servers)"
	@echo "make status      the queue, the drain, dead letters and the processes at a glance"
	@echo "make seed N=...  load N demo items into the stack's MySQL (default $(N))"
	@echo "make warm        load every item from MySQL into the Redis cache"
	@echo "make bench       the load bench; writes bench/report.md and charts"
	@echo "make soak        a day of traffic in SOAK_MINUTES (default 30); writes bench/soak.md and charts"
	@echo "make lock        rewrite requirements.lock (the runtime pins and what they pull in, with hashes) with uv"
	@echo "make clean       remove var/ (private servers' data, logs) and the virtualenv"

run: sysdeps venv
	$(PY) -m deploy.run $(if $(ROLE),--role $(ROLE))

run-ha: sysdeps venv
	$(PY) -m deploy.run --ha

test: SYSDEPS = test
test: sysdeps venv check
	promtool check rules deploy/prometheus-alerts.yml
	promtool check config deploy/prometheus.yml
	promtool test rules deploy/prometheus-alerts.test.yml
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-cluster: SYSDEPS = test
test-cluster: sysdeps venv
	$(PY) -m pytest tests/cluster $(PYTEST_ARGS)

check: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

status: venv
	@$(PY) -m deploy.status

seed: sysdeps venv
	$(PY) -m deploy.seed $(N)

warm: sysdeps venv
	$(PY) -m deploy.seed --warm

bench: SYSDEPS = wrk
bench: sysdeps venv
	@$(PY) -m pip install -q --disable-pip-version-check -r bench/requirements.txt
	$(PY) -m bench.run

soak: sysdeps venv
	@$(PY) -m pip install -q --disable-pip-version-check -r bench/requirements.txt
	$(PY) -m bench.soak

# the Debian packages every target needs, plus those of $(SYSDEPS) (set per target above)
sysdeps:
	@deploy/sysdeps.sh $(SYSDEPS)

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (PYTHON=$(PYTHON))"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

# requirements.lock: requirements.txt's pins and everything they pull in, for every platform, with
# hashes; for `pip install --require-hashes -r requirements.lock` (docs/development.md). uv runs
# from a virtualenv of its own under var/, so .venv stays as requirements-dev.txt makes it.
UV := var/uv/bin/uv
lock:
	@test -x $(UV) || { $(PYTHON) -m venv var/uv && var/uv/bin/pip install -q --disable-pip-version-check uv==0.13.8; }
	$(UV) pip compile pyproject.toml --constraint requirements.txt --universal --python-version 3.11 \
		--generate-hashes --custom-compile-command "make lock" --quiet --output-file requirements.lock

clean:
	rm -rf var $(VENV)

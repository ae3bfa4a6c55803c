# Care Connect. `make run` serves; `make test` runs the whole suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PORT ?= 8067
HOST ?= 0.0.0.0
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# PostgreSQL and Redis for the tests that need them (make test-services).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
WORKERS ?= 2
BENCH_FLAGS ?=

.PHONY: help run serve demo setup test test-fast test-services bench bench-full manage \
	run-cluster lint format lock clean

help:
	@echo "make run          set up and serve HTTP + WebSocket on port $(PORT)"
	@echo "make test         run the whole test suite"
	@echo "make demo         a simulated day against a running make run (Ctrl-C stops)"
	@echo "make manage ARGS=...  a manage.py command with the local settings (plan_day, createsuperuser)"
	@echo "make bench        quick benchmarks (BENCH_FLAGS=--full for the full set)"
	@echo "make run-cluster  WORKERS workers on successive ports (PostgreSQL + Redis)"

# A Python >= 3.12: .python-version (via pyenv) first, then the usual names.
$(VPY):
	@py=""; \
	for cand in python3.13 python3.12 python3.14 python3 python; do \
	  p=$$(command -v $$cand 2>/dev/null) || continue; \
	  if $$p -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then py=$$p; break; fi; \
	done; \
	if [ -z "$$py" ]; then \
	  echo "ERROR: Care Connect needs Python 3.12 or newer, and none was found on PATH."; \
	  echo "       Install it (e.g. 'pyenv install 3.13' or your OS's python3.13 package) and run again."; \
	  exit 1; \
	fi; \
	echo "Creating $(VENV) with $$py ($$($$py --version))"; \
	$$py -m venv $(VENV)

$(STAMP): $(VPY) pyproject.toml requirements.lock
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

# The local server's signing key: made once, kept out of git. `make run`
# serves with DEBUG on and this key unless the environment gives others.
LOCAL_KEY := .secret-key
LOCAL_ENV = DEBUG=$${DEBUG:-1} SECRET_KEY=$${SECRET_KEY:-$$(cat $(LOCAL_KEY))}

$(LOCAL_KEY): | $(VPY)
	@umask 077; $(VPY) -c 'import secrets; print(secrets.token_urlsafe(64))' > $@
	@echo "Made a local signing key in $@ (kept out of git)."

setup: $(STAMP) $(LOCAL_KEY)
	$(LOCAL_ENV) $(VPY) manage.py migrate --noinput
	$(LOCAL_ENV) $(VPY) manage.py collectstatic --noinput --verbosity 0
	$(LOCAL_ENV) $(VPY) manage.py seed_demo

run: setup serve

# Any manage.py command with the local key and DEBUG: make manage ARGS=plan_day
manage: $(STAMP) $(LOCAL_KEY)
	$(LOCAL_ENV) $(VPY) manage.py $(ARGS)

# A simulated day against a running `make run` (start that first, in another
# terminal): drivers moving, rides booked, assigned and completed. Ctrl-C stops.
demo: $(STAMP) $(LOCAL_KEY)
	$(LOCAL_ENV) PORT=$(PORT) $(VPY) manage.py simulate $(SIM_FLAGS)

# A local demo: staff sign in with their password alone, unless STAFF_2FA=1
# is given (settings refuse STAFF_2FA=0 when DEBUG is off).
serve: export STAFF_2FA ?= 0
serve: $(LOCAL_KEY)
	@echo "Serving HTTP and WebSocket on http://$(HOST):$(PORT)/ (console: /console/, admin: /admin/)"
	@if [ "$$STAFF_2FA" = 0 ]; then echo "Staff sign in without an authenticator code (STAFF_2FA=0); STAFF_2FA=1 make run asks for it."; fi
	$(LOCAL_ENV) $(VPY) -m project.serve -b $(HOST) -p $(PORT) project.asgi:application

# Lint first, so CI and a developer's `make test` fail on the same things.
test: lint
	$(VPY) -m pytest -m "not postgres and not redis"
	$(MAKE) --no-print-directory test-services

test-fast: $(STAMP)
	$(VPY) -m pytest -m "not postgres and not redis and not browser and not server"

# The tests that need PostgreSQL and Redis. They skip, saying why, when those
# are not reachable; under CI=true they fail instead.
test-services: $(STAMP)
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	  $(VPY) -m pytest -m "postgres or redis"

bench: $(STAMP)
	$(VPY) -m bench $(BENCH_FLAGS)

bench-full: $(STAMP)
	$(VPY) -m bench --full

run-cluster: $(STAMP) $(LOCAL_KEY)
	$(LOCAL_ENV) $(VPY) -m deploy.cluster --workers $(WORKERS) --port $(PORT) --seed

# ruff, and no model change without its migration.
lint: $(STAMP) $(LOCAL_KEY)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(LOCAL_ENV) $(VPY) manage.py makemigrations --check --dry-run

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

lock: $(VPY)
	$(VPY) -m pip install --quiet -e '.[dev]'
	$(VPY) -m pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

clean:
	rm -rf $(VENV) staticfiles .pytest_cache

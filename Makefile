# The two commands of the README: `make run` and `make test`. Both prepare what they need.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Debian packages the test suite needs: the browser tests drive the system Chromium.
TEST_SYSTEM_PACKAGES ?= chromium chromium-driver
# The WhatsApp bot that `make run` starts drives the system Chromium too.
RUN_SYSTEM_PACKAGES ?= chromium chromium-driver

.PHONY: run test lint ci bench reliability messages clean

$(STAMP): requirements.txt requirements-dev.txt scripts/bootstrap.sh
	sh scripts/bootstrap.sh
	@touch $(STAMP)

## make run: the whole product on embedded defaults (SQLite, demo catalog, private Redis if needed)
run: $(STAMP)
	@if [ -n "$(RUN_SYSTEM_PACKAGES)" ]; then sh scripts/bootstrap.sh $(RUN_SYSTEM_PACKAGES) \
		|| echo "make run: going on without them; the WhatsApp bot needs Chromium"; fi
	$(PY) manage.py runlocal

## make test: the full suite (SQLite by default; DATABASE_URL/REDIS_URL choose other servers)
test: $(STAMP)
	@if [ -n "$(TEST_SYSTEM_PACKAGES)" ]; then sh scripts/bootstrap.sh $(TEST_SYSTEM_PACKAGES); fi
	$(PY) -m pytest $(PYTEST_ARGS)

## make lint: ruff, formatting and migrations in step with the models
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run

## make bench: the benchmarks under bench/ (PostgreSQL at DATABASE_URL, Redis on 127.0.0.1:6379)
bench: $(STAMP)
	sh scripts/bootstrap.sh wrk
	$(PY) bench/api_products.py
	$(PY) bench/ws_fanout.py
	$(PY) bench/engine.py
	$(PY) bench/whatsapp_latency.py

## make reliability: the fuzzers and fault scripts under reliability/ (figures in
## docs/reliability.md); the API fuzzer runs on the PostgreSQL of DATABASE_URL when it names one,
## the fault scripts start private Redis and PostgreSQL servers. For the daphne comparison:
## .venv/bin/python reliability/ws_fuzz.py --server daphne
reliability: $(STAMP)
	$(PY) reliability/api_fuzz.py
	$(PY) reliability/ws_fuzz.py
	$(PY) reliability/redis_outage.py
	$(PY) reliability/db_restart.py

## make messages: refresh and compile the translation catalogs (needs gettext)
messages: $(STAMP)
	$(PY) manage.py makemessages -l pt_BR -l en --ignore=.venv --ignore=var
	$(PY) manage.py compilemessages --ignore=.venv

clean:
	rm -rf $(VENV) var/test.sqlite3 .pytest_cache .ruff_cache

# callscope: `make run` starts the service, `make test` runs every check. Both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run serve migrate test pytest lint fmt type check bench bench-ai bench-live bench-local lock clean

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "callscope needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: install  ## everything in one process; embedded PostgreSQL unless CALLSCOPE_DATABASE_URL is set
	$(BIN)/callscope run

serve: install
	$(BIN)/callscope serve

migrate: install
	$(BIN)/callscope migrate

test: lint type pytest  ## static checks, then the whole test suite

pytest: install  ## the test suite under branch coverage (floor in pyproject.toml)
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

type: install
	$(BIN)/mypy

check: test

bench: install  ## ingest benchmark: callscope vs a bare endpoint (needs wrk)
	$(BIN)/python -m benchmarks.ingest

bench-ai: install  ## 200 calls through one AI worker against the brief's flaky provider
	$(BIN)/python -m benchmarks.ai

bench-live: install  ## commit-to-WebSocket delay at 10 supervisors under a steady ingest load
	$(BIN)/python -m benchmarks.live

bench-local: install  ## real-time factor of Whisper tiny.en + VADER on the recordings
	$(BIN)/python -m benchmarks.local_ai

lock: install
	{ echo "# Every package, pinned: make installs exactly these, then callscope itself with --no-deps."; \
	  echo "# Regenerate after changing pyproject.toml: make lock."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^callscope'; \
	  echo "audioop-lts==0.2.2 ; python_version >= '3.13'"; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

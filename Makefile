# callscope: `make run` starts the service, `make test` runs every check. Both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run serve migrate test test-fast pytest lint fmt type check docs bench bench-instructions bench-spans bench-streams bench-ai bench-live bench-local bench-retention cluster containers eval-ai lock clean

# Tests run on two processes (pytest-xdist), each with its own throw-away database.
PYTEST_WORKERS ?= 2
# Let Python keep compiled modules: every test process and every server a test starts would
# otherwise compile callscope and its tests again (seconds each).
unexport PYTHONDONTWRITEBYTECODE

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

test-fast: lint type  ## the loop while coding: static checks, unit and integration tests, no slow ones
	$(BIN)/python -m pytest -m "(unit or integration) and not slow" -n $(PYTEST_WORKERS) --dist worksteal -q

pytest: install  ## the test suite under branch coverage (floor in pyproject.toml)
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest -n $(PYTEST_WORKERS) --dist worksteal --durations=15
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

docs: install  ## regenerate the README's configuration table from Settings
	$(BIN)/python -m callscope.config_table README.md

bench: install  ## ingest: callscope vs a bare endpoint, and with metrics + tracing vs without (needs wrk)
	$(BIN)/python -m benchmarks.ingest

bench-instructions: install  ## what metrics + tracing cost per ingest request, in instructions (needs valgrind, wrk)
	$(BIN)/python -m benchmarks.ingest_instructions

bench-spans: install  ## CPU of one sampled ingest request's two spans: callscope's tracing vs the SDK's tracer
	$(BIN)/python -m benchmarks.kept_spans

bench-streams: install  ## media streams: Twilio, native and HTTP against a bare endpoint, CPU per frame
	$(BIN)/python -m benchmarks.streams

bench-ai: install  ## 200 calls through one worker: time to archive, peak connections, a 20 s provider outage
	$(BIN)/python -m benchmarks.ai

bench-live: install  ## commit-to-WebSocket delay at 10 supervisors under a steady ingest load
	$(BIN)/python -m benchmarks.live

bench-retention: install  ## ingest latency and CPU with and without a large pruning run
	$(BIN)/python -m benchmarks.retention

cluster: install  ## nginx in front of CALLSCOPE_API_REPLICAS servers and CALLSCOPE_WORKERS workers, one database
	$(BIN)/python -m callscope.cluster

containers: install  ## build the image and Debian stand-ins with Podman, then run the image and compose stack tests
	deploy/image/build.sh
	deploy/image/stand-ins/build.sh
	CALLSCOPE_IMAGE=localhost/callscope:dev STAND_INS_IMAGE=localhost/callscope-stand-ins:bookworm \
	  $(BIN)/python -m pytest -q tests/deploy/test_image.py tests/deploy/test_compose_stack.py

eval-ai: install  ## WER, sentiment labels and real-time factor of the local engines on the evaluation set
	$(BIN)/python -m benchmarks.eval_ai

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

# Two commands for a newcomer: `make up` (run the embedded stack) and `make test` (everything CI runs).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# promtool checks deploy/prometheus and the dashboard's queries (tests/deploy); PROMTOOL= overrides.
PROMTOOL ?= build/tools/promtool
export PROMTOOL
# Debian's kcat and jq run the READMEs' kcat pipelines (tests/embedded); KCAT= overrides.
KCAT ?= build/tools/kcat
export KCAT
# Debian's redis-server for tests and the embedded stack (router_service/embedded/redis_server.py).
REDIS_SERVER_BIN ?= build/tools/redis-server
export REDIS_SERVER_BIN
PYTHON ?= python3

.PHONY: install lock up test lint typecheck buf gen check-gen proto-ts pytest bench clean

# Everything, runtime and dev, transitive dependencies and pip and the build backend included,
# comes from requirements.lock, by hash; the project itself is then installed on top of it,
# pulling nothing. `pip check` fails when pyproject.toml asks for a version the lock lacks
# (run `make lock`).
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $(STAMP)

# Re-resolve requirements.lock after changing a dependency in pyproject.toml (or
# requirements-build.in): versions already locked stay unless the change needs others; add
# UPGRADE=--upgrade to move every package to its latest allowed version (README "Dependencies").
# uv comes from the lock itself, so that this works while pyproject.toml and the lock disagree.
lock:
	@test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && \
	  $(PY) -m pip install --quiet --require-hashes --no-deps -r requirements.lock; }
	$(BIN)/uv pip compile pyproject.toml requirements-build.in --extra dev --universal \
	  --python-version 3.11 --generate-hashes --custom-compile-command "make lock" \
	  --quiet $(UPGRADE) --output-file requirements.lock

install: $(STAMP)

$(PROMTOOL): scripts/fetch_promtool.sh
	scripts/fetch_promtool.sh $@

$(KCAT): scripts/fetch_kcat.sh scripts/apt_tool.sh
	scripts/fetch_kcat.sh $@

$(REDIS_SERVER_BIN): scripts/fetch_redis.sh scripts/apt_tool.sh
	scripts/fetch_redis.sh $@

## Run the embedded stack in the foreground; Ctrl-C stops it.
up: install $(REDIS_SERVER_BIN)
	$(BIN)/router-service up

## Lint, type checks, buf checks, generated-code drift, the TypeScript contract check, all tests.
test: install lint typecheck buf check-gen proto-ts pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# Breaking-change check against the previous commit (CI: HEAD is the submission) or, with
# uncommitted proto edits, against HEAD. Skipped only where there is no earlier commit.
buf: install
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code
	@if ! git diff --quiet HEAD -- protos 2>/dev/null; then against=HEAD; \
	 elif git rev-parse -q --verify HEAD~1 >/dev/null; then against=HEAD~1; else against=; fi; \
	 if [ -n "$$against" ]; then echo "buf breaking --against .git#ref=$$against"; \
	   $(BIN)/buf breaking --against ".git#ref=$$against"; \
	 else echo "buf breaking: no earlier commit to compare against"; fi

## Regenerate router_contract/_gen from protos/.
gen: install
	PYTHON=$(PY) scripts/gen_protos.sh

# Fails when the committed generated code differs from what the protos generate.
check-gen: install
	@tmp=$$(mktemp -d) && PYTHON=$(PY) OUT=$$tmp scripts/gen_protos.sh && \
	 diff -r -x __pycache__ router_contract/_gen $$tmp && echo "generated code is up to date" || \
	 { echo "router_contract/_gen is stale: run 'make gen' and commit"; exit 1; }

# Second language: TypeScript stubs from the same protos must compile.
proto-ts: install
	cd clients/typescript && npm ci --silent --no-audit --no-fund
	$(BIN)/buf generate
	cd clients/typescript && npx --no-install tsc --noEmit -p .

pytest: install $(PROMTOOL) $(KCAT) $(REDIS_SERVER_BIN)
	$(BIN)/pytest -q --durations=25

bench: install
	$(PY) bench/overhead.py

clean:
	rm -rf $(VENV) clients/typescript/node_modules clients/typescript/gen .pytest_cache .mypy_cache .ruff_cache

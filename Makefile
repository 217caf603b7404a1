# GlobalMart — the two commands: `make run` (platform) and `make test` (the whole test suite).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test setup stop status lock parse-times memory unit integration e2e cluster compose-config docs lock-cluster

## run: install what is missing, start every service locally, print addresses and login
run: setup
	$(BIN)/globalmart platform up

## test: install what is missing, then unit, integration and e2e tests against real services
test: setup
	$(BIN)/pytest

## setup: idempotent install (Debian packages, venv, jars, FerretDB, MailDev)
setup:
	@bash scripts/setup.sh

stop:
	$(BIN)/globalmart platform down

status:
	$(BIN)/globalmart platform status

unit: setup
	$(BIN)/pytest -m unit

integration: setup
	$(BIN)/pytest -m integration

e2e: setup
	$(BIN)/pytest -m e2e

## cluster: the cluster-mode checks (docker-compose.yaml through the Compose CLI, the cluster profile)
cluster: setup
	$(BIN)/pytest -m cluster

## compose-config: docker-compose.yaml as Compose resolves it (secrets from .env; no Docker engine needed)
compose-config: setup
	"$${GLOBALMART_STATE_DIR:-.state}/bin/docker-compose" config

## docs: render docs/architecture.svg from docs/architecture.dot (Graphviz)
docs: setup
	$(BIN)/python scripts/render_architecture.py

## parse-times: how long each DAG file takes to parse (run by hand, prints figures)
parse-times: setup
	$(BIN)/python scripts/measure_dag_parse.py

## memory: resident memory (RSS and PSS) of the running platform, per service
memory:
	$(BIN)/python scripts/measure_platform_memory.py

## lock: re-resolve requirements.lock from pyproject.toml
lock: setup
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 -o requirements.lock

## lock-cluster: re-resolve the cluster image's Celery additions against requirements.lock
lock-cluster: setup
	$(BIN)/uv pip compile deploy/requirements-cluster.in -c requirements.lock --python-version 3.11 -o deploy/requirements-cluster.lock

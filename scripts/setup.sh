#!/usr/bin/env bash
# Installs everything the local platform and the tests need, idempotently: a second run
# skips each step whose inputs (lock files, pom, Go sources) have not changed.
#   Debian packages (PostgreSQL server) · Python venv from requirements.lock ·
#   JVM jars from Maven Central (jvm/pom.xml) · FerretDB (Go) · MailDev (npm) ·
#   Docker Compose CLI (Go; validates docker-compose.yaml) · Graphviz (docs/architecture.svg)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${GLOBALMART_STATE_DIR:-$ROOT/.state}"
VENV="$ROOT/.venv"
STAMPS="$STATE_DIR/stamps"
mkdir -p "$STAMPS" "$STATE_DIR/bin" "$STATE_DIR/jars"

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[setup] %s\033[0m\n' "$*" >&2; exit 1; }
fingerprint() { cat "$@" | sha256sum | cut -c1-16; }
# up_to_date NAME FILES...: true when NAME was last done with these exact inputs
up_to_date() { local name=$1; shift; [ -f "$STAMPS/$name" ] && [ "$(cat "$STAMPS/$name")" = "$(fingerprint "$@")" ]; }
mark_done() { local name=$1; shift; fingerprint "$@" > "$STAMPS/$name"; }

SECONDS=0

# --- Debian packages --------------------------------------------------------------------
apt_missing=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || apt_missing+=(postgresql postgresql-contrib)
command -v java >/dev/null || apt_missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || apt_missing+=(maven)
command -v npm >/dev/null || apt_missing+=(nodejs npm)
command -v dot >/dev/null || apt_missing+=(graphviz)
command -v chromium >/dev/null || apt_missing+=(chromium)  # the dashboards' browser test and screenshots
if [ ${#apt_missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing Debian packages (${apt_missing[*]}): run as root or install them"
  log "installing Debian packages: ${apt_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d 101: do not auto-start Debian's own PostgreSQL cluster; the platform runs its own
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
command -v go >/dev/null || die "Go toolchain not found (needed to build FerretDB): install Go >= 1.22"

# --- Python virtualenv ------------------------------------------------------------------
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || die "Python 3.11 is required ($PYTHON is $("$PYTHON" --version))"
# compiled to bytecode at install: with PYTHONDONTWRITEBYTECODE set (as on CI machines) every
# process (each Airflow task, each spark-submit) would compile pandas, Great Expectations,
# Airflow... from source again at every start, more than doubling their import time
if ! up_to_date venv-compiled "$ROOT/requirements.lock" "$ROOT/pyproject.toml" || [ ! -x "$VENV/bin/python" ]; then
  log "creating Python venv from requirements.lock"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check uv==0.13.8
  "$VENV/bin/uv" pip sync -q --compile-bytecode --python "$VENV/bin/python" "$ROOT/requirements.lock"
  "$VENV/bin/uv" pip install -q --compile-bytecode --python "$VENV/bin/python" --no-deps -e "$ROOT"
  mark_done venv-compiled "$ROOT/requirements.lock" "$ROOT/pyproject.toml"
else
  log "venv up to date"
fi

# --- JVM jars ---------------------------------------------------------------------------
for profile in kafka-broker spark-connectors; do
  dest="$STATE_DIR/jars/${profile%%-*}"   # kafka-broker -> jars/kafka, spark-connectors -> jars/spark
  if ! up_to_date "jars-$profile" "$ROOT/jvm/pom.xml" || [ -z "$(ls "$dest" 2>/dev/null)" ]; then
    log "fetching $profile jars from Maven Central"
    rm -rf "$dest"
    mvn_log="$STATE_DIR/logs/setup-mvn-$profile.log"
    mkdir -p "$(dirname "$mvn_log")"
    mvn -B -f "$ROOT/jvm/pom.xml" -P "$profile" dependency:copy-dependencies -DoutputDirectory="$dest" > "$mvn_log" 2>&1 \
      || { tail -30 "$mvn_log" >&2; die "Maven could not fetch the $profile jars (full log: $mvn_log)"; }
    mark_done "jars-$profile" "$ROOT/jvm/pom.xml"
  else
    log "$profile jars up to date"
  fi
done

# --- FerretDB (MongoDB wire protocol on PostgreSQL) -------------------------------------
ferret_src="$ROOT/tools/ferretdb"
if ! up_to_date ferretdb "$ferret_src/main.go" "$ferret_src/go.mod" "$ferret_src/go.sum" || [ ! -x "$STATE_DIR/bin/ferretdb" ]; then
  log "building FerretDB from the Go module proxy"
  (cd "$ferret_src" && GOFLAGS=-mod=mod go build -trimpath -o "$STATE_DIR/bin/ferretdb" .)
  mark_done ferretdb "$ferret_src/main.go" "$ferret_src/go.mod" "$ferret_src/go.sum"
else
  log "FerretDB up to date"
fi

# --- Docker Compose CLI (checks docker-compose.yaml; no Docker engine needed) -------------
# `go install github.com/docker/compose/v5/cmd@…` refuses the module (its go.mod has exclude
# directives): tools/compose pins it as a tool dependency and builds it from the module source
compose_src="$ROOT/tools/compose"
if ! up_to_date compose "$compose_src/go.mod" "$compose_src/go.sum" || [ ! -x "$STATE_DIR/bin/docker-compose" ]; then
  log "building the Docker Compose CLI from the Go module proxy"
  compose_version="$(awk '$1 == "github.com/docker/compose/v5" {print $2}' "$compose_src/go.mod")"
  (cd "$compose_src" && go build -trimpath \
    -ldflags "-s -w -X github.com/docker/compose/v5/internal.Version=$compose_version" \
    -o "$STATE_DIR/bin/docker-compose" github.com/docker/compose/v5/cmd)
  mark_done compose "$compose_src/go.mod" "$compose_src/go.sum"
else
  log "Docker Compose CLI up to date"
fi

# --- MailDev (SMTP catcher with web inbox) ----------------------------------------------
maildev_dir="$ROOT/tools/maildev"
if ! up_to_date maildev "$maildev_dir/package-lock.json" || [ ! -x "$maildev_dir/node_modules/.bin/maildev" ]; then
  log "installing MailDev from npm"
  (cd "$maildev_dir" && npm ci --no-audit --no-fund --silent)
  mark_done maildev "$maildev_dir/package-lock.json"
else
  log "MailDev up to date"
fi

log "setup done in ${SECONDS}s"

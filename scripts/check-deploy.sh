#!/usr/bin/env bash
# Offline checks of the container image definition and the Helm chart (no Docker engine, no
# cluster, no helm CLI needed):
#   1. hadolint the Dockerfile (any finding, even style, fails);
#   2. helm lint --strict and render helm/gateway for the default values (SQLite), the production
#      example (PostgreSQL + S3) and a few more scenarios, through helm-python-sdk (Helm v4 SDK);
#   3. validate every rendered object with kubernetes-validate --strict for KUBE_VERSION; the
#      Prometheus Operator objects get a structural check instead (see scripts/check_chart.py),
#      and `promtool check rules` when promtool is installed;
# The chart's behaviour tests (tests/deploy) run with the rest of the pytest suite.
# Usage: scripts/check-deploy.sh      (VENV=path to another virtualenv, KUBE_VERSION=1.30)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="$VENV/bin/python"
KUBE_VERSION="${KUBE_VERSION:-1.30}"

for tool in "$PYTHON" "$VENV/bin/hadolint"; do
  if [[ ! -x "$tool" ]]; then
    echo "check-deploy: $tool not found; install the dev dependencies (make test sets them up)" >&2
    exit 2
  fi
done

echo "== hadolint $("$VENV/bin/hadolint" --version | awk '{print $NF}'): Dockerfile"
"$VENV/bin/hadolint" --no-color --failure-threshold style Dockerfile
echo "Dockerfile OK"

echo "== helm chart: lint, render, kubernetes-validate --strict"
"$PYTHON" scripts/check_chart.py --kube-version "$KUBE_VERSION"

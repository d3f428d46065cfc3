#!/usr/bin/env bash
# Delete the Minikube profile (runs only when the node resource is deleted and not protected).
# Longhorn's data under /var/lib/longhorn is left on the host on purpose.
# Inputs: PROFILE.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -E"; fi

: "${PROFILE:?}"
if command -v minikube >/dev/null 2>&1; then
  $SUDO minikube delete -p "$PROFILE" >&2
else
  printf '[minikube-delete] minikube not installed; nothing to delete\n' >&2
fi

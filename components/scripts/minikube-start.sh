#!/usr/bin/env bash
# Start (or confirm) the Minikube node and print its kubeconfig on stdout, nothing else.
# Idempotent: a profile that is already running with the requested Kubernetes version is left
# as it is. Inputs (exported by the MinikubeNode component): PROFILE, DRIVER, CONTAINER_RUNTIME,
# CNI, KUBERNETES_VERSION, DISK_SIZE, APISERVER_FLAG, HOST_ADDRESS, EXTRA_CONFIG (space separated
# key=value pairs for the kubelet).
set -euo pipefail

# Everything minikube says goes to stderr; fd 3 keeps the real stdout for the kubeconfig.
exec 3>&1 1>&2

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -E"; fi

log() { printf '[minikube-start] %s\n' "$*" >&2; }

running_version() {
  $SUDO minikube -p "$PROFILE" kubectl -- version -o json 2>/dev/null |
    sed -n 's/.*"gitVersion": *"\(v[0-9.]*\)".*/\1/p' | tail -n 1
}

is_running() {
  $SUDO minikube -p "$PROFILE" status --format '{{.APIServer}}' 2>/dev/null | grep -qx Running
}

start() {
  local args=(
    start
    -p "$PROFILE"
    --driver="$DRIVER"
    --container-runtime="$CONTAINER_RUNTIME"
    --cni="$CNI"
    --kubernetes-version="$KUBERNETES_VERSION"
    --disk-size="$DISK_SIZE"
    "$APISERVER_FLAG"
    --embed-certs
    --wait=all
  )
  local pair
  for pair in $EXTRA_CONFIG; do
    args+=("--extra-config=kubelet.${pair}")
  done
  log "minikube ${args[*]}"
  $SUDO minikube "${args[@]}"
}

main() {
  : "${PROFILE:?}" "${DRIVER:?}" "${CONTAINER_RUNTIME:?}" "${CNI:?}" "${KUBERNETES_VERSION:?}"
  : "${DISK_SIZE:?}" "${APISERVER_FLAG:?}" "${HOST_ADDRESS:?}"
  EXTRA_CONFIG="${EXTRA_CONFIG:-}"
  if is_running && [ "$(running_version)" = "$KUBERNETES_VERSION" ]; then
    log "profile ${PROFILE} already runs Kubernetes ${KUBERNETES_VERSION}; leaving it as it is"
  else
    start
  fi
  # Longhorn is the default StorageClass; minikube's hostPath one must not compete with it.
  local addon
  for addon in default-storageclass storage-provisioner; do
    $SUDO minikube -p "$PROFILE" addons disable "$addon" >&2
  done
  # The kubeconfig the operator's machine uses: certificates inlined, server on the host address.
  $SUDO minikube -p "$PROFILE" kubectl -- config view --flatten --minify --context "$PROFILE" |
    sed -E "s#server: https://[^:]+:([0-9]+)#server: https://${HOST_ADDRESS}:\\1#" >&3
}

main "$@"

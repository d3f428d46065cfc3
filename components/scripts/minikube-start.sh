#!/usr/bin/env bash
# Start the Minikube node, or bring a running one to the requested settings, and print its
# kubeconfig on stdout, nothing else.
# Converges in place: the arguments of the last successful `minikube start` are recorded on the
# host. A running node with the requested Kubernetes version and the same recorded arguments is
# left as it is; otherwise `minikube start` runs again with the requested arguments, which
# minikube applies to the existing profile. Nothing is ever deleted here. With the `none` driver
# the kubelet is enabled once the node runs, so that it starts the node again after a reboot.
# Inputs (exported by the MinikubeNode component): PROFILE, DRIVER, CONTAINER_RUNTIME, CNI,
# KUBERNETES_VERSION, DISK_SIZE, APISERVER_FLAG, HOST_ADDRESS, NODE_IP, EXTRA_CONFIG (space
# separated key=value pairs for the kubelet). NODE_STATE_DIR overrides where the arguments are
# recorded (tests point it at a scratch directory).
set -euo pipefail

# Everything minikube says goes to stderr; fd 3 keeps the real stdout for the kubeconfig.
exec 3>&1 1>&2

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -E"; fi
STATE_DIR="${NODE_STATE_DIR:-/var/lib/thanos-multi-cluster}"
START_ARGS=()

log() { printf '[minikube-start] %s\n' "$*" >&2; }

build_start_args() {
  START_ARGS=(
    start
    -p "$PROFILE"
    --driver="$DRIVER"
    --container-runtime="$CONTAINER_RUNTIME"
    --cni="$CNI"
    --kubernetes-version="$KUBERNETES_VERSION"
    --disk-size="$DISK_SIZE"
    "$APISERVER_FLAG"
    # NetworkPolicies and the other clusters know the node by this address, whatever NICs it has.
    --extra-config="kubelet.node-ip=${NODE_IP}"
    --embed-certs
    --wait=all
  )
  local pairs pair
  read -r -a pairs <<<"$EXTRA_CONFIG"
  for pair in "${pairs[@]}"; do
    START_ARGS+=("--extra-config=kubelet.${pair}")
  done
}

args_file() { printf '%s/%s.start-args' "$STATE_DIR" "$PROFILE"; }
requested_args() { printf '%s\n' "${START_ARGS[@]}"; }
recorded_args() { $SUDO cat "$(args_file)" 2>/dev/null || true; }

record_args() {
  $SUDO mkdir -p "$STATE_DIR"
  requested_args | $SUDO tee "$(args_file)" >/dev/null
}

running_version() {
  $SUDO minikube -p "$PROFILE" kubectl -- version -o json 2>/dev/null </dev/null |
    sed -n 's/.*"gitVersion": *"\(v[0-9.]*\)".*/\1/p' | tail -n 1
}

is_running() {
  $SUDO minikube -p "$PROFILE" status --format '{{.APIServer}}' 2>/dev/null </dev/null | grep -x Running >/dev/null
}

needs_start() {
  # true (with the reason logged) when `minikube start` must run.
  if ! is_running; then
    log "profile ${PROFILE} is not running: starting it"
    return 0
  fi
  local version
  version="$(running_version)"
  if [ "$version" != "$KUBERNETES_VERSION" ]; then
    log "profile ${PROFILE} runs Kubernetes ${version:-of unknown version}, ${KUBERNETES_VERSION} is requested: starting it again"
    return 0
  fi
  if [ "$(recorded_args)" != "$(requested_args)" ]; then
    log "the start arguments differ from those recorded in $(args_file) (< recorded, > requested): starting it again"
    diff <(recorded_args) <(requested_args) >&2 || true
    return 0
  fi
  log "profile ${PROFILE} already runs Kubernetes ${KUBERNETES_VERSION} with the requested arguments; leaving it as it is"
  return 1
}

start() {
  log "minikube ${START_ARGS[*]}"
  if ! $SUDO minikube "${START_ARGS[@]}" </dev/null; then
    log "minikube start failed (see above). A change minikube cannot make to an existing node (a Kubernetes" \
      "downgrade, another driver, runtime or CNI) needs a new cluster, and this script never deletes one:" \
      "to do it, run ${SUDO:+${SUDO} }minikube delete -p ${PROFILE} on the host as $(id -un) (the cluster and" \
      "its state are lost; /var/lib/longhorn stays) and run pulumi up --refresh"
    exit 1
  fi
  record_args
}

enable_kubelet() {
  # minikube's none driver starts the kubelet with systemctl but never enables it: after a reboot
  # nothing would start it, and with it the control plane's static pods. (containerd and iscsid
  # are enabled by host-prerequisites.sh.) Other drivers run the kubelet inside their machine.
  if [ "$DRIVER" != none ]; then return; fi
  if systemctl is-enabled --quiet kubelet </dev/null 2>/dev/null; then return; fi
  log "enabling the kubelet, so that the node starts again after a reboot"
  $SUDO systemctl enable kubelet </dev/null >&2
}

main() {
  : "${PROFILE:?}" "${DRIVER:?}" "${CONTAINER_RUNTIME:?}" "${CNI:?}" "${KUBERNETES_VERSION:?}"
  : "${DISK_SIZE:?}" "${APISERVER_FLAG:?}" "${HOST_ADDRESS:?}" "${NODE_IP:?}"
  EXTRA_CONFIG="${EXTRA_CONFIG:-}"
  build_start_args
  if needs_start; then start; fi
  enable_kubelet
  # Longhorn is the default StorageClass; minikube's hostPath one must not compete with it.
  local addon
  for addon in default-storageclass storage-provisioner; do
    $SUDO minikube -p "$PROFILE" addons disable "$addon" </dev/null >&2
  done
  # The kubeconfig the operator's machine uses: certificates inlined, server on the host address.
  $SUDO minikube -p "$PROFILE" kubectl -- config view --flatten --minify --context "$PROFILE" </dev/null |
    sed -E "s#server: https://[^:]+:([0-9]+)#server: https://${HOST_ADDRESS}:\\1#" >&3
}

main "$@"

#!/usr/bin/env bash
# Host prerequisites for `minikube start --driver=none --container-runtime=containerd` (DESIGN C1, C4).
# Idempotent: every step checks before it changes anything, so re-running it is safe.
# Inputs (exported by the MinikubeNode component): CRICTL_VERSION, CNI_PLUGINS_VERSION,
# MINIKUBE_MINIMUM_VERSION.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

log() { printf '[host-prerequisites] %s\n' "$*" >&2; }

need_apt() {
  if ! command -v apt-get >/dev/null 2>&1; then
    log "this script supports Debian/Ubuntu hosts (apt-get); install the packages by hand: $*"
    exit 1
  fi
}

install_packages() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    need_apt "${missing[@]}"
    log "installing ${missing[*]}"
    $SUDO apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  fi
}

arch() {
  case "$(uname -m)" in
    x86_64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) log "unsupported architecture $(uname -m)"; exit 1 ;;
  esac
}

install_crictl() {
  if command -v crictl >/dev/null 2>&1 && crictl --version | grep -q "${CRICTL_VERSION}"; then return; fi
  log "installing crictl ${CRICTL_VERSION}"
  curl -fsSL "https://github.com/kubernetes-sigs/cri-tools/releases/download/${CRICTL_VERSION}/crictl-${CRICTL_VERSION}-linux-$(arch).tar.gz" |
    $SUDO tar -xz -C /usr/local/bin crictl
}

install_cni_plugins() {
  if [ -x /opt/cni/bin/bridge ] && [ -x /opt/cni/bin/portmap ]; then return; fi
  log "installing CNI plugins ${CNI_PLUGINS_VERSION} into /opt/cni/bin"
  $SUDO mkdir -p /opt/cni/bin
  curl -fsSL "https://github.com/containernetworking/plugins/releases/download/${CNI_PLUGINS_VERSION}/cni-plugins-linux-$(arch)-${CNI_PLUGINS_VERSION}.tgz" |
    $SUDO tar -xz -C /opt/cni/bin
}

enable_service() {
  $SUDO systemctl enable --now "$1" >/dev/null
}

persist_sysctl() {
  local file=/etc/sysctl.d/99-thanos-multi-cluster.conf
  local line="vm.max_map_count=262144" # OpenSearch refuses to start below this
  if ! grep -qx "$line" "$file" 2>/dev/null; then
    echo "$line" | $SUDO tee "$file" >/dev/null
  fi
  $SUDO sysctl -q -w vm.max_map_count=262144
}

version_at_least() {
  # true when $1 >= $2 (dotted versions)
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

check_minikube() {
  if ! command -v minikube >/dev/null 2>&1; then
    log "minikube is not installed. Install ${MINIKUBE_MINIMUM_VERSION} or newer:"
    log "  curl -LO https://storage.googleapis.com/minikube/releases/latest/minikube-linux-$(arch)"
    log "  sudo install minikube-linux-$(arch) /usr/local/bin/minikube"
    exit 1
  fi
  local found
  found="$(minikube version --short | sed 's/^v//')"
  if ! version_at_least "$found" "$MINIKUBE_MINIMUM_VERSION"; then
    log "minikube ${found} is older than the supported ${MINIKUBE_MINIMUM_VERSION}; upgrade it (see above)"
    exit 1
  fi
}

main() {
  : "${CRICTL_VERSION:?}" "${CNI_PLUGINS_VERSION:?}" "${MINIKUBE_MINIMUM_VERSION:?}"
  # containerd is the runtime (C1); conntrack is required by the none driver; open-iscsi and
  # nfs-common by Longhorn (C4), whose volumes attach over iSCSI and RWX shares over NFS.
  install_packages containerd conntrack socat curl ca-certificates open-iscsi nfs-common
  install_crictl
  install_cni_plugins
  enable_service containerd
  enable_service iscsid
  persist_sysctl
  check_minikube
  log "host is ready"
}

main "$@"

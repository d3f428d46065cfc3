#!/usr/bin/env bash
# Host prerequisites for `minikube start --driver=none --container-runtime=containerd` on
# Debian 12 and Ubuntu 22.04/24.04 (apt). Idempotent: every step checks before it changes
# anything, so re-running it is safe; the MinikubeNode component re-runs it in place whenever
# its text changes.
# Inputs (exported by the MinikubeNode component): CRICTL_VERSION, CNI_PLUGINS_VERSION,
# MINIKUBE_MINIMUM_VERSION, KUBERNETES_VERSION and CONTAINERD_MINIMUM_VERSION (the oldest
# containerd that Kubernetes version supports). HOST_ROOT (empty on a host) prefixes every path
# under /etc and /usr/local, so that tests can point the steps at a scratch directory.
# Sourcing this file defines the functions without running main (the tests do that). The
# component feeds the script to `bash -s`: every command that reads stdin gets it redirected,
# or it would swallow the rest of the script.
set -euo pipefail

# sysctl and multipathd live in sbin, which a non-root user's PATH lacks on Debian.
PATH="${PATH}:/usr/sbin:/sbin"
HOST_ROOT="${HOST_ROOT:-}"
CNI_BIN_DIR=/opt/cni/bin # where the CNI plugins below and Calico's own plugins are installed
CONTAINERD_CONFIG="${HOST_ROOT}/etc/containerd/config.toml"
# Where containerd's release binaries go (its getting-started guide: tar -C /usr/local).
CONTAINERD_RELEASE_BINARY="${HOST_ROOT}/usr/local/bin/containerd"
MULTIPATH_CONFIG="${HOST_ROOT}/etc/multipath.conf"
SYSCTL_FILE="${HOST_ROOT}/etc/sysctl.d/99-thanos-multi-cluster.conf"
# Longhorn KB "Troubleshooting: MountVolume.SetUp failed for volume due to multipathd on the
# node": multipathd claims the sd* devices Longhorn attaches over iSCSI, and the mount fails.
LONGHORN_BLACKLIST='devnode "^sd[a-z0-9]+"'
# Kernel settings, raised to at least these values (a host tuned higher keeps its value).
SYSCTLS=(
  # Kubernetes' own prerequisite: pods' traffic is routed through the host. minikube sets it at each
  # start without persisting it, so after a reboot, which only the kubelet survives, it would be off.
  net.ipv4.ip_forward=1
  vm.max_map_count=262144 # OpenSearch refuses to start below this
  # inotify: every kubelet, controller, Fluent-bit tail and config reloader holds instances and
  # watches; the defaults (128 instances) end in "too many open files" on a busy node.
  fs.inotify.max_user_instances=8192
  fs.inotify.max_user_watches=524288
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

log() { printf '[host-prerequisites] %s\n' "$*" >&2; }

# --- packages -----------------------------------------------------------------------------

package_installed() {
  # `dpkg -s` also succeeds for a removed package whose config files remain: read its status.
  # (grep without -q reads all input: with pipefail, an early exit could fail dpkg on SIGPIPE.)
  dpkg -s "$1" 2>/dev/null | grep -x 'Status: install ok installed' >/dev/null
}

containerd_package() {
  # The package that provides containerd, on stdout; nothing for containerd's release binaries.
  # Docker's containerd.io conflicts with Debian's containerd: installing that one would make apt
  # fail or remove Docker; next to release binaries it would be a second containerd.
  if package_installed containerd.io; then
    log "Docker's containerd.io is installed: using its containerd (Debian's containerd package conflicts" \
      "with it and is not installed); its config.toml, which disables the CRI plugin, is checked below"
    echo containerd.io
  elif ! package_installed containerd && [ -x "$CONTAINERD_RELEASE_BINARY" ]; then
    log "containerd's release binaries are installed (${CONTAINERD_RELEASE_BINARY}): using them, no containerd package"
  else
    echo containerd
  fi
}

dotted_version() {
  # stdin: text starting with a version (v2.1.4, 1.6.20~ds1, 1:1.7.24-0ubuntu1); stdout: 2.1.4, 1.6.20, 1.7.24.
  sed -E 's/^v//; s/^[0-9]+://' | { grep -oE '^[0-9]+(\.[0-9]+)+' || true; }
}

containerd_remedy() {
  echo "install Docker's containerd.io ${CONTAINERD_MINIMUM_VERSION} or newer from Docker's apt repository" \
    "(https://docs.docker.com/engine/install/, then sudo apt-get install containerd.io: it replaces the" \
    "distribution's containerd package, and this script uses it as it is), or containerd's release binaries" \
    "in /usr/local (https://github.com/containerd/containerd/blob/main/docs/getting-started.md), then run" \
    "pulumi up again"
}

refuse_old_containerd() {
  # $1: the version found (empty: none); $2: what it is, for the message. Exits when $1 is too old.
  if [ -n "$1" ] && version_at_least "$1" "$CONTAINERD_MINIMUM_VERSION"; then return; fi
  log "${2}, but Kubernetes ${KUBERNETES_VERSION} needs containerd ${CONTAINERD_MINIMUM_VERSION} or newer:" \
    "$(containerd_remedy)"
  exit 1
}

check_installed_containerd() {
  # $1: the package that provides containerd (empty: release binaries). Nothing to check before it is installed.
  local binary=containerd found
  if [ -z "$1" ]; then
    binary="$CONTAINERD_RELEASE_BINARY"
  elif ! package_installed "$1"; then
    return
  fi
  # `containerd --version`: "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1" (Debian),
  # "containerd containerd.io v2.1.4 <commit>" (Docker), "containerd github.com/containerd/containerd/v2 v2.1.4 <commit>".
  found="$("$binary" --version </dev/null 2>/dev/null | awk '{ print $3 }' | dotted_version)"
  refuse_old_containerd "$found" "containerd ${found:-of unknown version (see containerd --version)} is installed"
}

check_containerd_candidate() {
  # Before apt installs Debian's or Ubuntu's containerd: the version it would install.
  local found
  found="$(LC_ALL=C apt-cache policy containerd </dev/null 2>/dev/null | awk '$1 == "Candidate:" { print $2 }' | dotted_version)"
  if [ -z "$found" ]; then
    refuse_old_containerd "" "apt has no containerd package to install (apt-cache policy containerd)"
  fi
  refuse_old_containerd "$found" "apt would install containerd ${found} (the distribution's package)"
}

need_apt() {
  if ! command -v apt-get >/dev/null 2>&1; then
    log "this script supports Debian/Ubuntu hosts (apt-get); install the packages by hand: $*"
    exit 1
  fi
}

apt_install() {
  need_apt "$@"
  log "installing $*"
  if ! $SUDO apt-get update -q </dev/null; then
    log "apt-get update failed (see above): fix the host's apt sources, or install by hand" \
      "(sudo apt-get install $*), then run pulumi up again"
    exit 1
  fi
  local pkg
  for pkg in "$@"; do
    if [ "$pkg" = containerd ]; then check_containerd_candidate; fi
  done
  # confold: keep a locally changed config file rather than stop at dpkg's question.
  if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "$@" </dev/null; then
    log "apt-get install $* failed (see above). On the host: if dpkg was interrupted, run" \
      "sudo dpkg --configure -a; if another apt run holds the lock, wait for it; if packages are held" \
      "or conflict, run sudo apt-get install $* to see which and resolve them. Then run pulumi up again"
    exit 1
  fi
}

install_packages() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    package_installed "$pkg" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
}

arch() {
  case "$(uname -m)" in
    x86_64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) log "unsupported architecture $(uname -m)"; exit 1 ;;
  esac
}

install_crictl() {
  if command -v crictl >/dev/null 2>&1 && crictl --version | grep "${CRICTL_VERSION}" >/dev/null; then return; fi
  log "installing crictl ${CRICTL_VERSION}"
  curl -fsSL "https://github.com/kubernetes-sigs/cri-tools/releases/download/${CRICTL_VERSION}/crictl-${CRICTL_VERSION}-linux-$(arch).tar.gz" |
    $SUDO tar -xz -C /usr/local/bin crictl
}

install_cni_plugins() {
  if [ -x "${CNI_BIN_DIR}/bridge" ] && [ -x "${CNI_BIN_DIR}/portmap" ]; then return; fi
  log "installing CNI plugins ${CNI_PLUGINS_VERSION} into ${CNI_BIN_DIR}"
  $SUDO mkdir -p "$CNI_BIN_DIR"
  curl -fsSL "https://github.com/containernetworking/plugins/releases/download/${CNI_PLUGINS_VERSION}/cni-plugins-linux-$(arch)-${CNI_PLUGINS_VERSION}.tgz" |
    $SUDO tar -xz -C "$CNI_BIN_DIR"
}

enable_service() {
  $SUDO systemctl enable --now "$1" >/dev/null
}

write_file() {
  # stdin replaces the file $1 in one rename: a half-written config would break its service.
  local file="$1"
  $SUDO mkdir -p "$(dirname "$file")"
  $SUDO tee "${file}.new" >/dev/null
  $SUDO mv "${file}.new" "$file"
}

# --- containerd ---------------------------------------------------------------------------

containerd_config_problem() {
  # stdin: a containerd config. stdout: why minikube cannot use it, or nothing when it can.
  local config
  config="$(cat)"
  if grep -E "^[[:space:]]*disabled_plugins[[:space:]]*=.*[\"'](io\.containerd\.grpc\.v1\.)?cri[\"']" \
    <<<"$config" >/dev/null; then
    echo "it disables the CRI plugin the kubelet talks to (Docker's containerd.io ships it so)"
  elif ! grep -E '^[[:space:]]*SystemdCgroup[[:space:]]*=' <<<"$config" >/dev/null; then
    # minikube's none driver sets the cgroup driver with `sed s/SystemdCgroup = .../`: without
    # the line, containerd and the kubelet would disagree. minikube owns its value afterwards.
    echo "it has no SystemdCgroup line for minikube to set"
  elif ! grep -E "^[[:space:]]*bin_dirs?[[:space:]]*=.*[\"']${CNI_BIN_DIR}/?[\"']" <<<"$config" >/dev/null; then
    echo "its CNI bin_dir is not ${CNI_BIN_DIR}, where Calico installs its plugins (Debian's default is /usr/lib/cni)"
  fi
}

rewrite_containerd_config() {
  # stdin: `containerd config default`; stdout: the same with the CRI runtime's runc using the
  # systemd cgroup driver and CNI plugins looked up in CNI_BIN_DIR. Both formats: version 2
  # (containerd 1.6/1.7, [plugins."io.containerd.grpc.v1.cri"...]) and version 3 (containerd 2.x,
  # [plugins.'io.containerd.cri.v1.runtime'...]). containerd 2.x prints no SystemdCgroup line
  # (one is added), and from 2.1 lists `bin_dirs`, which must not be set together with the
  # deprecated `bin_dir` (that one is dropped then).
  local config has_bin_dirs=0
  config="$(cat)"
  if grep -E '^[[:space:]]*bin_dirs[[:space:]]*=' <<<"$config" >/dev/null; then has_bin_dirs=1; fi
  awk -v dir="$CNI_BIN_DIR" -v has_bin_dirs="$has_bin_dirs" '
    function indent(line) { match(line, /^[ \t]*/); return substr(line, 1, RLENGTH) }
    # Blank lines are held back so that an added SystemdCgroup line ends its section, not follows it.
    function emit(line) { printf "%s", blanks; blanks = ""; print line }
    function close_options() {
      if (in_options && !systemd_set) print options_indent "  SystemdCgroup = true"
      in_options = 0
    }
    /^[ \t]*$/ { blanks = blanks $0 "\n"; next }
    /^[ \t]*\[/ {
      close_options()
      in_cni = ($0 ~ /\.cni\][ \t]*$/)
      if ($0 ~ /\.containerd\.runtimes\.runc\.options\][ \t]*$/) {
        in_options = 1; systemd_set = 0; options_indent = indent($0)
      }
      emit($0); next
    }
    in_options && /^[ \t]*SystemdCgroup[ \t]*=/ { emit(indent($0) "SystemdCgroup = true"); systemd_set = 1; next }
    in_cni && /^[ \t]*bin_dirs[ \t]*=/ { emit(indent($0) "bin_dirs = [\"" dir "\"]"); next }
    in_cni && /^[ \t]*bin_dir[ \t]*=/ { if (!has_bin_dirs) emit(indent($0) "bin_dir = \"" dir "\""); next }
    { emit($0) }
    END { close_options(); printf "%s", blanks }
  ' <<<"$config"
}

configure_containerd() {
  local problem config backup="${CONTAINERD_CONFIG}.before-thanos-multi-cluster"
  if [ -f "$CONTAINERD_CONFIG" ]; then
    problem="$(containerd_config_problem <"$CONTAINERD_CONFIG")"
    if [ -z "$problem" ]; then return; fi
    log "replacing ${CONTAINERD_CONFIG}: ${problem}"
    if [ ! -e "$backup" ]; then
      $SUDO cp -p "$CONTAINERD_CONFIG" "$backup"
      log "the previous config is kept as ${backup}"
    fi
  else
    log "writing ${CONTAINERD_CONFIG}: minikube's none driver edits it and fails when it is missing"
  fi
  config="$(containerd config default </dev/null | rewrite_containerd_config)"
  problem="$(containerd_config_problem <<<"$config")"
  if [ -n "$problem" ]; then
    # Writing it anyway would rewrite the file and restart containerd on every run.
    log "cannot prepare a containerd config from \`containerd config default\`: ${problem}; fix ${CONTAINERD_CONFIG} by hand"
    exit 1
  fi
  printf '%s\n' "$config" | write_file "$CONTAINERD_CONFIG"
  log "restarting containerd with the new config (running containers, Docker's included, keep running)"
  $SUDO systemctl restart containerd
}

# --- multipath ----------------------------------------------------------------------------

with_longhorn_blacklist() {
  # stdin: multipath.conf (possibly empty); stdout: the same with LONGHORN_BLACKLIST added to
  # the existing blacklist section, or to a new one when there is none.
  awk -v entry="$LONGHORN_BLACKLIST" '
    !added && /^[ \t]*blacklist[ \t]*\{/ { print; print "    " entry; added = 1; next }
    { print }
    END {
      if (!added) {
        if (NR > 0) print ""
        print "blacklist {"; print "    " entry; print "}"
      }
    }
  '
}

has_longhorn_blacklist() {
  # stdin: multipath.conf; true when a line (indentation aside) is LONGHORN_BLACKLIST.
  awk -v entry="$LONGHORN_BLACKLIST" '{ sub(/^[ \t]+/, "") } $0 == entry { found = 1 } END { exit !found }'
}

blacklist_longhorn_devices() {
  local current
  if ! command -v multipathd >/dev/null 2>&1; then return; fi
  current="$(cat "$MULTIPATH_CONFIG" 2>/dev/null || true)"
  if has_longhorn_blacklist <<<"$current"; then return; fi
  log "multipathd is installed: blacklisting the sd* devices Longhorn attaches over iSCSI in ${MULTIPATH_CONFIG}"
  if [ -n "$current" ]; then printf '%s\n' "$current"; fi | with_longhorn_blacklist | write_file "$MULTIPATH_CONFIG"
  if systemctl is-active --quiet multipathd.service; then
    $SUDO systemctl restart multipathd.service
  fi
}

# --- kernel settings ----------------------------------------------------------------------

sysctl_lines() {
  # SYSCTLS as key=value lines, each raised to the running value when that is higher.
  local setting key wanted current
  for setting in "${SYSCTLS[@]}"; do
    key="${setting%%=*}"
    wanted="${setting#*=}"
    current="$(sysctl -n "$key" 2>/dev/null || true)"
    if [[ "$current" =~ ^[0-9]+$ ]] && [ "$current" -gt "$wanted" ]; then wanted="$current"; fi
    printf '%s=%s\n' "$key" "$wanted"
  done
}

persist_sysctl() {
  local wanted
  wanted="$(sysctl_lines)"
  if [ "$(cat "$SYSCTL_FILE" 2>/dev/null || true)" != "$wanted" ]; then
    log "writing ${SYSCTL_FILE}: $(tr '\n' ' ' <<<"$wanted")"
    printf '%s\n' "$wanted" | write_file "$SYSCTL_FILE"
  fi
  $SUDO sysctl -q -p "$SYSCTL_FILE" >/dev/null
}

# --- minikube -----------------------------------------------------------------------------

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
  found="$(minikube version --short </dev/null | sed 's/^v//')"
  if ! version_at_least "$found" "$MINIKUBE_MINIMUM_VERSION"; then
    log "minikube ${found} is older than the supported ${MINIKUBE_MINIMUM_VERSION}; upgrade it (see above)"
    exit 1
  fi
}

install_host_packages() {
  # containerd, refused when too old for KUBERNETES_VERSION (the installed one, or the one apt
  # would install), and what the none driver and Longhorn need.
  local runtime
  runtime="$(containerd_package)"
  check_installed_containerd "$runtime"
  # conntrack and socat: required by the none driver; open-iscsi and nfs-common: Longhorn
  # attaches its volumes over iSCSI and serves RWX volumes over NFS.
  install_packages ${runtime:+"$runtime"} conntrack socat curl ca-certificates open-iscsi nfs-common
}

main() {
  : "${CRICTL_VERSION:?}" "${CNI_PLUGINS_VERSION:?}" "${MINIKUBE_MINIMUM_VERSION:?}"
  : "${KUBERNETES_VERSION:?}" "${CONTAINERD_MINIMUM_VERSION:?}"
  install_host_packages
  configure_containerd
  enable_service containerd
  install_crictl
  install_cni_plugins
  enable_service iscsid
  blacklist_longhorn_devices
  persist_sysctl
  check_minikube
  log "host is ready"
}

# Run main unless the file is being sourced (`return` only succeeds in a sourced file).
(return 0 2>/dev/null) || main "$@"

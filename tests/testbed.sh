#!/usr/bin/env bash
# testbed.sh — real Debian 12 (or 13) hosts on this machine, for provision's tests and demo.
#
# Each host is a systemd-nspawn container booted with systemd as PID 1, on an
# overlayfs over a shared debootstrap base (one per Debian release, bookworm by
# default: tests/testbed_base.sh), in its own network namespace on the
# 10.77.0.0/24 bridge pvtb0. Hosts reach each other on every port and the Debian
# registry (via NAT) and nothing else. See ../shared/TESTBED.md for what was
# tried by hand on this machine kind. One testbed per machine: the bridge,
# subnet, namespace and chain names are global; PROVISION_TESTBED moves files only.
# Each container has CAP_NET_ADMIN in its own network namespace, so a firewall
# role (nftables) can be tested on it.
#
# Usage:
#   tests/testbed.sh up [--rebuild-base] [--release bookworm|trixie] NAME[=ADDRESS]... | N
#   tests/testbed.sh down [NAME...]     (no names: everything the testbed made)
#   tests/testbed.sh status | inventory | ssh NAME [CMD...]
#   tests/testbed.sh sim up N | down | inventory [N] [ROLE...] | status
#                                       (light simulated hosts: tests/testbed_sim.sh)
set -euo pipefail

STATE=${PROVISION_TESTBED:-/var/lib/provision-testbed}
BASE=$STATE/base                 # cached Debian rootfs (overlay lower layer): bookworm's;
                                 # `up --release R` sets it to R's (base_dir)
HOSTS=$STATE/hosts               # one dir per host: upper/ work/ root/ address pid log
KEY=$STATE/id_ed25519
KNOWN=$STATE/known_hosts
INVENTORY=$STATE/inventory.yml
SUBNET=10.77.0.0/24
PREFIX=10.77.0
GATEWAY=$PREFIX.1
BRIDGE=pvtb0
REGISTRY=deb.debian.org
# Our own chains, so that `down` removes exactly what we added and nothing else.
FWD_CHAIN=PVTB-FWD   # filter FORWARD: hosts -> hosts / registry only
IN_CHAIN=PVTB-IN     # filter INPUT: hosts may not open connections to the machine
NAT_CHAIN=PVTB-NAT   # nat POSTROUTING: masquerade to the registry only
BOOT_TIMEOUT=60

log() { echo "testbed: $*" >&2; }
die() { echo "testbed: error: $*" >&2; exit 1; }

# Strict host-key checking against the testbed's own known_hosts only (callers
# add -o UserKnownHostsFile=...: ssh keeps the first value given for an option).
SSH_OPTS=(-i "$KEY" -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes
  -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=5 -o LogLevel=ERROR)

# ---------------------------------------------------------------- machine checks

require_root() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (it creates namespaces, mounts and iptables rules)"
}

# Install what we need on the machine with apt itself, only when missing.
ensure_packages() {
  local -A need=([debootstrap]=debootstrap [systemd-nspawn]=systemd-container
    [iptables]=iptables [iptables-restore]=iptables [ssh]=openssh-client [ssh-keygen]=openssh-client
    [ssh-keyscan]=openssh-client [ip]=iproute2 [setsid]=util-linux
    [findmnt]=util-linux [mountpoint]=util-linux [flock]=util-linux [sysctl]=procps [getent]=libc-bin)
  local missing=() cmd
  for cmd in "${!need[@]}"; do
    command -v "$cmd" >/dev/null || missing+=("${need[$cmd]}")
  done
  ((${#missing[@]})) || return 0
  log "installing machine packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
}

# Fail early and clearly where containers cannot run, instead of a timeout later.
check_nspawn() {
  systemd-nspawn --version >/dev/null 2>&1 || die "systemd-nspawn is not usable on this machine"
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
    die "this kernel has no overlayfs"
  local out
  if ! out=$(systemd-nspawn -q --register=no --keep-unit --read-only --private-network \
      --resolv-conf=off --timezone=off --link-journal=no -D "$BASE" /bin/true 2>&1); then
    die "systemd-nspawn cannot start a container here: $out"
  fi
}

registry_ips() {
  getent ahostsv4 "$REGISTRY" | awk '{print $1}' | sort -u
}

# ---------------------------------------------------------------- base rootfs

# The cached bases, one per release (ensure_base, build_base, mask_units...).
source "$(dirname "${BASH_SOURCE[0]}")/testbed_base.sh"

# ---------------------------------------------------------------- host state

host_addr() { cat "$HOSTS/$1/address"; }
veth_name() { echo "pvtbv${1##*.}"; }   # from the last octet: unique, < 16 chars

host_names() {
  [[ -d $HOSTS ]] || return 0
  local d
  for d in "$HOSTS"/*/; do [[ -d $d ]] && basename "$d"; done
  return 0
}

# A host is healthy when a run of `up` finished it (ready) and it is still alive.
host_ready() { [[ -f $HOSTS/$1/ready ]] && host_alive "$1"; }

# A host is alive while its systemd-nspawn process is.
host_alive() {
  local pid
  pid=$(cat "$HOSTS/$1/pid" 2>/dev/null) || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == systemd-nspawn ]]
}

# Stop one host's container: SIGTERM makes nspawn power the container off
# cleanly; SIGKILL after a timeout; then kill anything left in its netns.
stop_host() {
  local name=$1 pid i
  if host_alive "$name"; then
    pid=$(cat "$HOSTS/$name/pid")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do host_alive "$name" || break; sleep 0.2; done
    host_alive "$name" && kill -KILL "$pid" 2>/dev/null || true
  fi
  if [[ -e /run/netns/pvtb-$name ]]; then
    ip netns pids "pvtb-$name" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
  fi
}

# Remove everything belonging to one host (which must already be stopped).
remove_host() {
  local name=$1 dir=$HOSTS/$1 addr=""
  [[ -f $dir/address ]] && addr=$(cat "$dir/address")
  # nspawn's own files for this host, left when it was killed rather than
  # stopped (/run is not a tmpfs here): its lock, named after the root's inode,
  # and its (empty) mount propagation dir.
  if mountpoint -q "$dir/root"; then
    rm -f "/run/systemd/nspawn/locks/inode-$(stat -c %d:%i "$dir/root")"
  fi
  rmdir "/run/systemd/nspawn/propagate/$name" 2>/dev/null || true
  remove_cgroups "$name"
  umount_below "$dir"
  ip netns delete "pvtb-$name" 2>/dev/null || true
  [[ -n $addr ]] && ip link delete "$(veth_name "$addr")" 2>/dev/null || true
  [[ -n $addr && -f $KNOWN ]] && ssh-keygen -q -R "$addr" -f "$KNOWN" >/dev/null 2>&1 || true
  rm -f "$KNOWN.old"
  rm -rf --one-file-system "$dir"
}

# Hosts whose nspawn died, or that a crashed `up` never finished, are removed
# with all they held, and so are namespaces and links no host dir accounts for.
clean_stale() {
  local name ns link
  for name in $(host_names); do
    host_ready "$name" && continue
    log "removing stale host $name"
    stop_host "$name"; remove_host "$name"
  done
  for ns in $(ip netns list | awk '$1 ~ /^pvtb-/ {print $1}'); do
    [[ -d $HOSTS/${ns#pvtb-} ]] && continue
    ip netns pids "$ns" | xargs -r kill -KILL 2>/dev/null || true
    ip netns delete "$ns"
  done
  for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^pvtbv' || true); do
    grep -qx "$PREFIX.${link#pvtbv}" "$HOSTS"/*/address 2>/dev/null || ip link delete "$link"
  done
}

# ---------------------------------------------------------------- network

setup_network() {
  local ips=("$@") ip
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$GATEWAY/24" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  set_sysctl net.ipv4.ip_forward 1
  # All hosts run as the machine's root (no user namespaces), so their systemd,
  # journald, logind... share root's inotify limit (128 by default): with a few
  # dozen hosts inotify_init fails (EMFILE) and .path units fail ("resources").
  (($(sysctl -n fs.inotify.max_user_instances) >= 4096)) || set_sysctl fs.inotify.max_user_instances 4096

  # Rebuild our chains each time (the registry address may change), in one
  # transaction: a chain line flushes that chain, so there is no moment with
  # the chains half filled. Order matters: hosts<->hosts, hosts->registry,
  # replies, then drop everything else.
  {
    echo '*filter'
    echo ":$FWD_CHAIN - [0:0]"
    echo "-A $FWD_CHAIN -s $SUBNET -d $SUBNET -j ACCEPT"
    for ip in "${ips[@]}"; do echo "-A $FWD_CHAIN -s $SUBNET -d $ip/32 -j ACCEPT"; done
    echo "-A $FWD_CHAIN -d $SUBNET -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    echo "-A $FWD_CHAIN -s $SUBNET -j DROP"
    echo "-A $FWD_CHAIN -d $SUBNET -j DROP"
    # Hosts may answer the machine (ssh) but not open connections to it.
    echo ":$IN_CHAIN - [0:0]"
    echo "-A $IN_CHAIN -s $SUBNET -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    echo "-A $IN_CHAIN -s $SUBNET -j DROP"
    echo COMMIT
    echo '*nat'
    echo ":$NAT_CHAIN - [0:0]"
    for ip in "${ips[@]}"; do echo "-A $NAT_CHAIN -s $SUBNET -d $ip/32 -j MASQUERADE"; done
    echo COMMIT
  } | iptables-restore --noflush

  # Jumps go first in the built-in chains so no earlier ACCEPT can bypass them.
  ensure_jump filter FORWARD -s "$SUBNET" -j "$FWD_CHAIN"
  ensure_jump filter FORWARD -d "$SUBNET" -j "$FWD_CHAIN"
  ensure_jump filter INPUT -s "$SUBNET" -j "$IN_CHAIN"
  ensure_jump nat POSTROUTING -s "$SUBNET" -j "$NAT_CHAIN"
}

ensure_jump() {
  local table=$1 chain=$2; shift 2
  iptables -t "$table" -C "$chain" "$@" 2>/dev/null || iptables -t "$table" -I "$chain" 1 "$@"
}

teardown_network() {
  local spec
  # Delete every jump to our chains (repeat: a crashed run may have added twice). Without
  # iptables on the machine (a fresh one, before the first `up`) we cannot have made rules.
  command -v iptables >/dev/null && for spec in "filter FORWARD $FWD_CHAIN" "filter INPUT $IN_CHAIN" "nat POSTROUTING $NAT_CHAIN"; do
    set -- $spec
    iptables -t "$1" -S "$2" | { grep -- "-j $3\$" || true; } | sed 's/^-A /-D /' |
      while read -r rule; do eval "iptables -t $1 $rule"; done
    iptables -t "$1" -F "$3" 2>/dev/null || true
    iptables -t "$1" -X "$3" 2>/dev/null || true
  done
  ip link delete "$BRIDGE" 2>/dev/null || true
  if [[ -f $STATE/sysctl.orig ]]; then
    sysctl -qp "$STATE/sysctl.orig" >/dev/null
    rm -f "$STATE/sysctl.orig"
  fi
}

# Machine settings we change: the first value seen is kept for `down`.
set_sysctl() {
  local key=$1 value=$2
  grep -qs "^$key=" "$STATE/sysctl.orig" || echo "$key=$(sysctl -n "$key")" >>"$STATE/sysctl.orig"
  sysctl -qw "$key=$value"
}

# Veth pair: eth0 inside the host's netns, the other end on the bridge.
# $3 is a registry address, to find the machine's uplink.
setup_host_net() {
  local name=$1 addr=$2 ns=pvtb-$1 veth mtu
  veth=$(veth_name "$addr")
  # Match the uplink's MTU so big replies from the registry are not dropped.
  mtu=$(cat "/sys/class/net/$(ip route get "$3" | grep -o 'dev [^ ]*' | cut -d' ' -f2)/mtu")
  ip netns add "$ns"
  ip link add "$veth" mtu "$mtu" type veth peer name eth0 mtu "$mtu" netns "$ns"
  ip link set "$veth" master "$BRIDGE" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "$GATEWAY"
}

# ---------------------------------------------------------------- hosts

# Overlay root with this host's identity written into its upper layer.
create_host_fs() {
  local name=$1 addr=$2 dir=$HOSTS/$1 root=$HOSTS/$1/root ip
  shift 2
  mkdir -p "$dir/upper" "$dir/work" "$root"
  echo "$addr" >"$dir/address"
  echo "$RELEASE" >"$dir/release"
  mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$dir/upper,workdir=$dir/work" "$root"
  echo "$name" >"$root/etc/hostname"
  tr -d - </proc/sys/kernel/random/uuid >"$root/etc/machine-id"
  {
    printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$name"
    for ip in "$@"; do printf '%s\t%s\n' "$ip" "$REGISTRY"; done
  } >"$root/etc/hosts"
  ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f "$root/etc/ssh/ssh_host_ed25519_key"
  mask_units "$root"
}

# The cgroup hierarchies systemd uses: the named v1 one and the unified one
# (both here, as cgroup v1 is mounted), or /sys/fs/cgroup on a cgroup2 machine.
cgroup_roots() {
  local d
  for d in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
    [[ $(stat -fc %T "$d" 2>/dev/null) == cgroup2fs || $d == */systemd && -d $d ]] && echo "$d"
  done
  return 0
}

start_host() {
  local name=$1 dir=$HOSTS/$1
  # setsid+nohup: the container outlives this script and its terminal. It gets
  # no fd of ours but 0-2: an inherited pipe would keep a caller's $(...) or
  # our lock (fd 9) open for as long as the host runs.
  # Its own cgroup: with --keep-unit and no systemd on the machine, nspawn
  # puts the container in its own cgroup's "payload" child. Left in the root
  # cgroup, every container shares /payload: each one's systemd then manages
  # the same system.slice/*.service cgroups as all the others (units fail at
  # random with "Failed to attach to cgroup", stops wait on foreign processes).
  (
    for cg in $(cgroup_roots); do
      mkdir -p "$cg/pvtb/$name"
      echo "$BASHPID" >"$cg/pvtb/$name/cgroup.procs"
    done
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      ((fd > 2)) && eval "exec $fd>&-"
    done
    exec setsid nohup systemd-nspawn --quiet --boot --register=no --keep-unit \
      --machine="$name" --directory="$dir/root" \
      --network-namespace-path="/run/netns/pvtb-$name" \
      --capability=CAP_NET_ADMIN \
      --resolv-conf=off --timezone=off --link-journal=no --console=read-only
  ) </dev/null >"$dir/log" 2>&1 &
  echo $! >"$dir/pid"
}

# Remove a stopped host's cgroups (empty dirs, deepest first).
remove_cgroups() {
  local cg
  for cg in $(cgroup_roots); do
    [[ ! -d $cg/pvtb/$1 ]] || find "$cg/pvtb/$1" -depth -type d -exec rmdir {} + 2>/dev/null || true
    rmdir "$cg/pvtb" 2>/dev/null || true
  done
}

# Wait for sshd, record its host key (checked against the one we generated),
# then wait for systemd to finish booting.
wait_host() {
  local name=$1 addr dir=$HOSTS/$1 deadline state
  addr=$(host_addr "$name")
  deadline=$((SECONDS + BOOT_TIMEOUT))
  until ssh-keyscan -T 2 -t ed25519 "$addr" 2>/dev/null >"$dir/keyscan" && [[ -s $dir/keyscan ]]; do
    # kill -0, not host_alive: the pid is still our subshell until it execs nspawn.
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || { log "$name: container exited, see $dir/log"; return 1; }
    ((SECONDS < deadline)) || { log "$name: sshd did not answer in ${BOOT_TIMEOUT}s"; return 1; }
    sleep 0.3
  done
  if [[ $(awk '{print $3}' "$dir/keyscan") != $(awk '{print $2}' "$dir/root/etc/ssh/ssh_host_ed25519_key.pub") ]]; then
    log "$name: host key from $addr differs from the generated one"; return 1
  fi
  state=$(ssh "${SSH_OPTS[@]}" -o BatchMode=yes -o UserKnownHostsFile="$dir/keyscan" "root@$addr" \
    timeout "$BOOT_TIMEOUT" systemctl is-system-running --wait 2>&1) || true
  case $state in
    running) ;;
    degraded)
      log "$name: degraded; failed units:"
      ssh "${SSH_OPTS[@]}" -o BatchMode=yes -o UserKnownHostsFile="$dir/keyscan" "root@$addr" systemctl --failed --no-legend >&2 || true ;;
    *) log "$name: systemd did not come up: $state"; return 1 ;;
  esac
}

next_free_addr() {
  local i used
  used=$(cat "$HOSTS"/*/address 2>/dev/null || true)
  for ((i = 11; i < 255; i++)); do
    grep -qx "$PREFIX.$i" <<<"$used$(printf '\n%s' "${TAKEN[@]}")" || { echo "$PREFIX.$i"; return; }
  done
  die "no free address left in $SUBNET"
}

write_inventory() {
  local name
  {
    echo "# generated by tests/testbed.sh; do not edit"
    echo "stage: testbed"
    echo "ssh:"
    echo "  identity_file: $KEY"
    echo "  known_hosts: $KNOWN"
    echo "hosts:"
    for name in $(for n in $(host_names); do [[ -f $HOSTS/$n/ready ]] && echo "$(host_addr "$n" | cut -d. -f4) $n"; done | sort -n | cut -d' ' -f2); do
      echo "  $name:"
      echo "    address: $(host_addr "$name")"
      echo "    user: root"
      echo "    roles: []"
    done
  } >"$INVENTORY.tmp"
  mv "$INVENTORY.tmp" "$INVENTORY"
}

# ---------------------------------------------------------------- commands

# One up/down at a time: a second waits (a lock on the state dir itself, so
# no lock file is left behind).
lock_state() {
  exec 9<"$STATE"
  flock -w 600 9 || die "another tests/testbed.sh up/down holds $STATE"
}

cmd_up() {
  local rebuild=no args=() spec name addr
  RELEASE=${RELEASES[0]}
  while (($#)); do
    case $1 in
      --rebuild-base) rebuild=yes ;;
      --release) (($# >= 2)) || die "--release needs a value (${RELEASES[*]})"; RELEASE=$2; shift ;;
      --release=*) RELEASE=${1#--release=} ;;
      *) args+=("$1") ;;
    esac
    shift
  done
  ((${#args[@]})) || die "usage: up [--rebuild-base] [--release $(IFS="|"; echo "${RELEASES[*]}")] NAME[=ADDRESS]... | N"
  check_release "$RELEASE"
  BASE=$(base_dir "$RELEASE")
  if [[ ${#args[@]} -eq 1 && ${args[0]} =~ ^[0-9]+$ ]]; then
    local n=${args[0]} i; args=()
    for ((i = 1; i <= n; i++)); do args+=("h$i"); done
  fi
  require_root
  ensure_packages
  mkdir -p "$STATE" "$HOSTS"
  chmod 700 "$STATE"
  lock_state
  clean_stale
  if [[ $rebuild == yes ]]; then
    for name in $(host_names); do
      [[ $(host_release "$name") != "$RELEASE" ]] || die "--rebuild-base: $RELEASE hosts are up ($name), run down first"
    done
  fi
  ensure_key
  ensure_base "$RELEASE" "$rebuild"
  check_nspawn

  # Decide names and addresses before touching anything.
  local names=() addrs=(); TAKEN=()
  for spec in "${args[@]}"; do
    name=${spec%%=*}; addr=""
    [[ $spec == *=* ]] && addr=${spec#*=}
    [[ $name =~ ^[a-z][a-z0-9-]{0,30}$ ]] || die "bad host name '$name' (a-z, 0-9, -)"
    if [[ -d $HOSTS/$name ]]; then
      [[ $(host_release "$name") == "$RELEASE" ]] ||
        die "$name is already up with $(host_release "$name"), not $RELEASE (down $name first)"
      log "$name is already up"; continue
    fi
    [[ " ${names[*]} " == *" $name "* ]] && die "host $name given twice"
    if [[ -z $addr ]]; then
      addr=$(next_free_addr)
    else
      [[ $addr =~ ^10\.77\.0\.([0-9]+)$ ]] && ((BASH_REMATCH[1] >= 2 && BASH_REMATCH[1] <= 254)) ||
        die "address $addr for $name is not a host address in $SUBNET (10.77.0.2-254)"
      if grep -qx "$addr" "$HOSTS"/*/address 2>/dev/null || [[ " ${TAKEN[*]} " == *" $addr "* ]]; then
        die "address $addr is already taken"
      fi
    fi
    names+=("$name"); addrs+=("$addr"); TAKEN+=("$addr")
  done

  local ips
  mapfile -t ips < <(registry_ips)
  ((${#ips[@]})) || die "cannot resolve $REGISTRY on this machine"
  setup_network "${ips[@]}"
  # Hosts kept from before get their bridge port back (the bridge may be new).
  for name in $(host_names); do
    ip link set "$(veth_name "$(host_addr "$name")")" master "$BRIDGE" up 2>/dev/null || true
  done

  # Create and start all hosts first, then wait: they boot in parallel.
  local i pids=() failed=0
  for i in "${!names[@]}"; do
    create_host_fs "${names[i]}" "${addrs[i]}" "${ips[@]}"
    setup_host_net "${names[i]}" "${addrs[i]}" "${ips[0]}"
    start_host "${names[i]}"
  done
  for i in "${!names[@]}"; do wait_host "${names[i]}" & pids+=($!); done

  # Record each booted host's key (replacing old entries for the same
  # address) and mark it ready; a failed host stays for its log until next up.
  touch "$KNOWN"
  for i in "${!names[@]}"; do
    wait "${pids[i]}" || { failed=1; continue; }
    addr=${addrs[i]}
    ssh-keygen -q -R "$addr" -f "$KNOWN" >/dev/null 2>&1 || true
    cat "$HOSTS/${names[i]}/keyscan" >>"$KNOWN"
    touch "$HOSTS/${names[i]}/ready"
  done
  rm -f "$KNOWN.old"
  write_inventory
  ((failed == 0)) || die "some hosts did not come up (logs in $HOSTS/NAME/log)"
  cmd_status
}

cmd_down() {
  require_root
  [[ -d $STATE ]] && lock_state
  (($#)) && { remove_hosts "$@"; write_inventory; return; }
  # Stop all containers in parallel, then remove their files and links.
  remove_hosts $(host_names)
  clean_stale
  teardown_network
  local tmp
  for tmp in "$STATE"/base.tmp "$STATE"/base-*.tmp; do   # base builds that crashed
    umount_below "$tmp"
    rm -rf --one-file-system "$tmp"
  done
  rm -rf --one-file-system "$HOSTS"
  rm -f "$INVENTORY" "$INVENTORY.tmp" "$KNOWN"
  # The simulated hosts too: `down` leaves nothing the testbed made.
  "$(dirname "$0")/testbed_sim.sh" down
  log "down (the cached base and the key are kept in $STATE)"
}

# Stop the named hosts in parallel, then remove their files and links.
remove_hosts() {
  local name pid pids=()
  for name in "$@"; do
    [[ -d $HOSTS/$name ]] || die "no host named $name"
  done
  for name in "$@"; do stop_host "$name" & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid" || true; done
  for name in "$@"; do remove_host "$name"; done
}

cmd_status() {
  local name addr state
  [[ -n $(host_names) ]] || { echo "no testbed hosts"; return 0; }
  for name in $(host_names); do
    addr=$(host_addr "$name")
    if host_alive "$name"; then
      state=$(ssh "${SSH_OPTS[@]}" -o BatchMode=yes -o UserKnownHostsFile="$KNOWN" "root@$addr" systemctl is-system-running 2>/dev/null) || true
      state=${state:-unreachable}
    else
      state=down
    fi
    printf '%-12s %-15s %s\n' "$name" "$addr" "$state"
  done
}

cmd_ssh() {
  (($#)) || die "usage: ssh NAME [CMD...]"
  local name=$1; shift
  [[ -f $HOSTS/$name/address ]] || die "no host named $name"
  exec ssh "${SSH_OPTS[@]}" -o UserKnownHostsFile="$KNOWN" "root@$(host_addr "$name")" "$@"
}

main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status ;;
    ssh) cmd_ssh "$@" ;;
    inventory) echo "$INVENTORY" ;;
    sim) exec "$(dirname "$0")/testbed_sim.sh" "$@" ;;
    *) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0" >&2; exit 2 ;;
  esac
}

main "$@"

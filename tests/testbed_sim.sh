#!/usr/bin/env bash
# testbed_sim.sh — many light simulated hosts, for scale tests and benches
# (called as `tests/testbed.sh sim ...`).
#
# A simulated host is an sshd in its own network namespace: no container, no
# systemd, no filesystem of its own. It shares the machine's filesystem (so a
# workload must write under its own directory, /srv/sim/NAME, given to it as the
# host variable `sim_dir`), except two per-host directories bind-mounted in a
# private mount namespace: /var/lib/provision (provision's run lock and handler
# journal), /tmp (provision's run dirs, ansible's and pyinfra's temp files) and
# /root (the login's home: empty, so no dotfile of the machine's root runs in a
# session, and tools' ~/.ansible and the like stay per host), so that no two
# simulated hosts share a lock, a temp dir or a home. (With the machine's /root,
# every session ran root's .bashrc, here `pyenv init`, whose rehash takes a lock
# in the shared home: 50 sessions queued on it, and one killed mid-rehash left
# the lock behind, so every later login waited 60 s.)
#
# Hosts s1..sN get 10.77.4.2.. on their own bridge pvsim0 (10.77.4.1/22, up to
# 1021 hosts), apart from the container testbed's pvtb0 (10.77.0.0/24) so that
# either can be brought up and down alone. They have no default route: they
# reach the machine and each other, nothing else. Each has its own ed25519 host
# key (made once per name, kept in $STATE/sim/keys like the testbed's base) and
# accepts the testbed key for root.
#
# Usage:
#   tests/testbed.sh sim up N             # s1..sN (hosts already up are kept)
#   tests/testbed.sh sim down             # everything sim up made, keys excepted
#   tests/testbed.sh sim inventory [N] [ROLE...]   # print an inventory of s1..sN
#   tests/testbed.sh sim status
#
# Limits raised, and why (each only when lower, each put back by `sim down`):
#   net.ipv4.neigh.default.gc_thresh1/2/3 -> 2048/8192/16384: the machine keeps one
#     neighbour (ARP) entry per simulated host; past gc_thresh2 (512 by default)
#     the kernel evicts entries still in use and connections stall on ARP.
#   Per sshd: MaxStartups 100:30:200 and MaxSessions 100 (defaults 10:30:100 and
#     10), so tools that open several connections or sessions per host at once
#     (ansible's ControlMaster plus its transfers, pyinfra's sftp) are never
#     refused. One sshd serves one host, so the machine-wide count of
#     unauthenticated connections is never the bottleneck.
#   The controller's open files: see bench/scale_sim.sh (ulimit -n).
set -euo pipefail

STATE=${PROVISION_TESTBED:-/var/lib/provision-testbed}
SIM=$STATE/sim
KEY=$STATE/id_ed25519
KEYS=$SIM/keys                # s1, s1.pub, ...: kept by down, like the testbed's base
HOSTS=$SIM/hosts              # per host: address pid log sshd_config lib/ tmp/ root/ ready
KNOWN=$SIM/known_hosts
INVENTORY=$SIM/inventory.yml
WORK=/srv/sim                 # the workload's directories, /srv/sim/NAME
BRIDGE=pvsim0
GATEWAY=10.77.4.1
PLEN=22
MAX_HOSTS=1021                # 10.77.4.2 .. 10.77.7.254
SSHD=/usr/sbin/sshd

log() { echo "testbed sim: $*" >&2; }
die() { echo "testbed sim: error: $*" >&2; exit 1; }

require_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (it creates namespaces and mounts)"; }

# Host i: name s<i>, address 10.77.4.2 + (i-1), veth pvs<i>, netns pvsim-s<i>.
# Sets ADDR (no subshell: with hundreds of hosts, every fork counts).
sim_addr() { local o=$(($1 + 1)); ADDR="10.77.$((4 + o / 256)).$((o % 256))"; }

sim_names() {
  [[ -d $HOSTS ]] || return 0
  local d
  for d in "$HOSTS"/s*/; do [[ -d $d ]] && basename "$d"; done | sort -V
  return 0
}

sim_alive() {
  local pid comm
  read -r pid 2>/dev/null <"$HOSTS/$1/pid" || return 1
  read -r comm 2>/dev/null <"/proc/$pid/comm" || return 1
  [[ $comm == sshd ]]
}

lock_sim() {
  mkdir -p "$SIM"
  chmod 700 "$STATE" "$SIM"
  exec 8<"$SIM"
  flock -w 600 8 || die "another sim up/down holds $SIM"
}

# Machine settings we change: the first value seen is kept for `down`.
raise_sysctl() {
  local key=$1 value=$2
  (($(sysctl -n "$key") >= value)) && return 0
  grep -qs "^$key=" "$SIM/sysctl.orig" || echo "$key=$(sysctl -n "$key")" >>"$SIM/sysctl.orig"
  sysctl -qw "$key=$value"
}

# A directory the binds need on the machine: made if missing, and removed by down then.
ensure_dir() {
  [[ -d $1 ]] && return 0
  mkdir -p "$1"
  chmod "$2" "$1"
  echo "$1" >>"$SIM/made_dirs"
}

ensure_sshd() {
  [[ -x $SSHD ]] && return 0
  log "installing openssh-server (its service is not started: only our sshds run)"
  apt-get update -qq
  # Debian starts the service on install unless policy-rc.d says no.
  local policy=/usr/sbin/policy-rc.d made_policy=no
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; made_policy=yes; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
  [[ $made_policy == no ]] || rm -f "$policy"
}

write_config() {
  local name=$1 addr=$2
  printf '%s\n' "# generated by tests/testbed_sim.sh for $name" "ListenAddress $addr:22" \
    "HostKey $KEYS/$name" "PidFile none" "AuthorizedKeysFile $SIM/authorized_keys" \
    "PermitRootLogin prohibit-password" "PubkeyAuthentication yes" "PasswordAuthentication no" \
    "KbdInteractiveAuthentication no" "UsePAM no" "UseDNS no" "PrintMotd no" "PrintLastLog no" \
    "MaxStartups 100:30:200" "MaxSessions 100" "Subsystem sftp internal-sftp" "LogLevel ERROR" \
    >"$HOSTS/$name/sshd_config"
}

# Start one host's sshd: in the host's netns, in a private mount namespace with
# its own /var/lib/provision and /tmp, and its own host name (UTS namespace). setsid/ip/unshare/sh all exec, so the
# recorded pid is the sshd's own. Only fds 0-2 are passed on (not our lock).
start_sim_host() {
  local name=$1 addr=$2 dir=$HOSTS/$1
  setsid ip netns exec "pvsim-$name" unshare -m -u --propagation private sh -c '
    echo "$3" >/proc/sys/kernel/hostname &&
    printf "link set lo up\naddr add %s/'$PLEN' dev eth0\nlink set eth0 up\n" "$2" | ip -batch - &&
    mount --bind "$1/lib" /var/lib/provision && mount --bind "$1/tmp" /tmp && mount --bind "$1/root" /root &&
    exec '$SSHD' -D -e -f "$1/sshd_config"' sh "$dir" "$addr" "$name" </dev/null >"$dir/log" 2>&1 8<&- &
  echo $! >"$dir/pid"
}

# Wait until every host's launcher has become its sshd (the address is set
# before that exec), then until each takes a TCP connection on port 22 (a
# refused connection returns at once). Builtins only: no fork per host.
wait_listening() {
  local deadline=$((SECONDS + 120)) name pid comm addr pending=("$@") still
  while ((${#pending[@]})); do
    still=()
    for name in "${pending[@]}"; do
      read -r pid <"$HOSTS/$name/pid"
      if ! read -r comm 2>/dev/null <"/proc/$pid/comm"; then die "$name: its sshd exited, see $HOSTS/$name/log"; fi
      if [[ $comm != sshd ]]; then still+=("$name"); continue; fi
      read -r addr <"$HOSTS/$name/address"
      if { exec 3<>"/dev/tcp/$addr/22"; } 2>/dev/null; then exec 3<&-; else still+=("$name"); fi
    done
    pending=("${still[@]+"${still[@]}"}")
    ((${#pending[@]})) || break
    ((SECONDS < deadline)) || die "${#pending[@]} sshd(s) not listening after 120 s, first: ${pending[0]} (logs in $HOSTS/NAME/log)"
    sleep 0.2
  done
}

cmd_up() {
  [[ ${1:-} =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= MAX_HOSTS)) || die "usage: sim up N (1..$MAX_HOSTS)"
  local n=$1 i name addr start=$SECONDS
  require_root
  ensure_sshd
  [[ -f $KEY ]] || { mkdir -p "$STATE"; ssh-keygen -q -t ed25519 -N '' -C provision-testbed -f "$KEY"; }
  lock_sim
  mkdir -p "$KEYS" "$HOSTS"
  install -m 600 "$KEY.pub" "$SIM/authorized_keys"

  # Hosts whose sshd died are removed and made again.
  local stale=()
  for name in $(sim_names); do sim_alive "$name" && [[ -f $HOSTS/$name/ready ]] || stale+=("$name"); done
  ((${#stale[@]} == 0)) || { log "removing ${#stale[@]} stale host(s)"; remove_sim_hosts "${stale[@]}"; }

  local new=()
  for ((i = 1; i <= n; i++)); do [[ -d $HOSTS/s$i ]] || new+=("$i"); done
  ensure_dir /var/lib/provision 700
  ensure_dir /run/sshd 755
  ensure_dir "$WORK" 755
  raise_sysctl net.ipv4.neigh.default.gc_thresh1 2048
  raise_sysctl net.ipv4.neigh.default.gc_thresh2 8192
  raise_sysctl net.ipv4.neigh.default.gc_thresh3 16384
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$GATEWAY/$PLEN" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up

  # Keys first (made once per name), then all namespaces and links in one `ip -batch`.
  local batch=$SIM/up.batch dirs=() t0=$SECONDS
  : >"$batch"
  for i in "${new[@]+"${new[@]}"}"; do
    [[ -f $KEYS/s$i ]] || ssh-keygen -q -t ed25519 -N '' -C "root@s$i" -f "$KEYS/s$i"
    dirs+=("$HOSTS/s$i")
  done
  if ((${#dirs[@]})); then
    mkdir -p "${dirs[@]/%//lib}" "${dirs[@]/%//tmp}" "${dirs[@]/%//root}"
    chmod 700 "${dirs[@]/%//lib}" "${dirs[@]/%//root}"; chmod 1777 "${dirs[@]/%//tmp}"
  fi
  for i in "${new[@]+"${new[@]}"}"; do
    name=s$i; sim_addr "$i"
    echo "$ADDR" >"$HOSTS/$name/address"
    write_config "$name" "$ADDR"
    printf 'netns add pvsim-%s\nlink add pvs%s type veth peer name eth0 netns pvsim-%s\nlink set pvs%s master %s up\n' \
      "$name" "$i" "$name" "$i" "$BRIDGE" >>"$batch"
  done
  local t1=$SECONDS
  [[ -s $batch ]] && ip -batch "$batch"
  rm -f "$batch"
  local t2=$SECONDS started=()
  for i in "${new[@]+"${new[@]}"}"; do
    sim_addr "$i"
    start_sim_host "s$i" "$ADDR"
    started+=("s$i")
  done
  local t3=$SECONDS
  ((${#started[@]} == 0)) || wait_listening "${started[@]}"
  for name in "${started[@]+"${started[@]}"}"; do : >"$HOSTS/$name/ready"; done
  write_known_hosts
  cmd_inventory >"$INVENTORY.tmp" && mv "$INVENTORY.tmp" "$INVENTORY"
  log "files $((t1 - t0)) s, namespaces and links $((t2 - t1)) s, sshds started $((t3 - t2)) s, all listening $((SECONDS - t3)) s"
  log "$n simulated host(s) up (${#new[@]} started) in $((SECONDS - start)) s; inventory: $INVENTORY"
}

# The known_hosts of the simulated hosts, from the keys we made (no keyscan needed).
write_known_hosts() {
  local name addr type key rest
  for name in $(sim_names); do
    read -r addr <"$HOSTS/$name/address"
    read -r type key rest <"$KEYS/$name.pub"
    printf '%s %s %s\n' "$addr" "$type" "$key"
  done >"$KNOWN.tmp"
  mv "$KNOWN.tmp" "$KNOWN"
}

cmd_inventory() {
  local n=${1:-} roles name i
  if [[ -n $n ]]; then shift; fi
  roles=$(IFS=,; echo "$*"); roles=${roles//,/, }
  local names=($(sim_names))
  ((${#names[@]})) || die "no simulated hosts: run sim up N first"
  [[ -z $n ]] && n=${#names[@]}
  [[ $n =~ ^[0-9]+$ ]] && ((n <= ${#names[@]})) || die "only ${#names[@]} simulated hosts are up"
  echo "# generated by tests/testbed.sh sim; do not edit"
  echo "stage: sim"
  echo "ssh:"
  echo "  identity_file: $KEY"
  echo "  known_hosts: $KNOWN"
  echo "hosts:"
  for ((i = 1; i <= n; i++)); do
    name=s$i; sim_addr "$i"
    echo "  $name: {address: $ADDR, user: root, roles: [$roles], vars: {sim_dir: $WORK/$name}}"
  done
}

# Kill the hosts' sshds (by recorded pid), then anything else still in their
# namespaces (sessions), then remove namespaces, links and dirs.
remove_sim_hosts() {
  local name pid pids=() inodes=() batch=$SIM/down.batch dirs=() i
  for name in "$@"; do
    if sim_alive "$name"; then read -r pid <"$HOSTS/$name/pid"; pids+=("$pid"); fi
  done
  ((${#pids[@]} == 0)) || kill -TERM "${pids[@]}" 2>/dev/null || true
  : >"$batch"
  for name in "$@"; do
    [[ -e /run/netns/pvsim-$name ]] || continue
    inodes+=("/run/netns/pvsim-$name")
    echo "netns delete pvsim-$name" >>"$batch"
  done
  if ((${#inodes[@]})); then
    # Processes in those namespaces: one stat over every process's netns, not one
    # `ip netns pids` per host.
    local -A ours=()
    for i in $(stat -L -c %i "${inodes[@]}" 2>/dev/null); do ours[$i]=1; done
    pids=()
    while read -r i pid; do
      [[ -n ${ours[$i]:-} ]] && pids+=("${pid#/proc/}")
    done < <(stat -L -c '%i %n' /proc/[0-9]*/ns/net 2>/dev/null | sed 's|/ns/net$||')
    ((${#pids[@]} == 0)) || kill -KILL "${pids[@]}" 2>/dev/null || true
    # Deleting a namespace deletes its eth0 and so the veth pair.
    ip -force -batch "$batch" 2>/dev/null || true
  fi
  rm -f "$batch"
  : >"$batch"
  for name in "$@"; do
    [[ -e /sys/class/net/pvs${name#s} ]] && echo "link delete pvs${name#s}" >>"$batch"
    dirs+=("$HOSTS/$name" "$WORK/$name")
  done
  [[ -s $batch ]] && ip -force -batch "$batch" 2>/dev/null || true
  rm -f "$batch"
  ((${#dirs[@]} == 0)) || rm -rf --one-file-system "${dirs[@]}"
}

cmd_down() {
  require_root
  [[ -d $SIM ]] || return 0
  lock_sim
  local names
  names=($(sim_names))
  ((${#names[@]} == 0)) || remove_sim_hosts "${names[@]}"
  # Namespaces and links that no host dir accounts for (a crashed up).
  local ns link
  for ns in $(ip netns list | awk '$1 ~ /^pvsim-/ {print $1}'); do
    ip netns pids "$ns" | xargs -r kill -KILL 2>/dev/null || true
    ip netns delete "$ns"
  done
  for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^pvs[0-9]+$' || true); do
    ip link delete "$link" 2>/dev/null || true
  done
  ip link delete "$BRIDGE" 2>/dev/null || true
  if [[ -f $SIM/sysctl.orig ]]; then
    sysctl -qp "$SIM/sysctl.orig" >/dev/null
    rm -f "$SIM/sysctl.orig"
  fi
  rm -rf --one-file-system "$HOSTS" "$WORK"
  if [[ -f $SIM/made_dirs ]]; then
    # Only dirs we made, and only when empty (rmdir): /srv/sim went above.
    tac "$SIM/made_dirs" | while read -r d; do [[ ! -d $d ]] || rmdir "$d" 2>/dev/null || true; done
    rm -f "$SIM/made_dirs"
  fi
  rm -f "$KNOWN" "$KNOWN.tmp" "$INVENTORY" "$INVENTORY.tmp" "$SIM/authorized_keys" "$SIM"/*.batch
  log "down (host keys are kept in $KEYS)"
}

cmd_status() {
  local name up=0 down=0
  for name in $(sim_names); do if sim_alive "$name"; then up=$((up + 1)); else down=$((down + 1)); fi; done
  echo "simulated hosts: $up up, $down down"
}

main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    inventory) cmd_inventory "$@" ;;
    status) cmd_status ;;
    *) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0" >&2; exit 2 ;;
  esac
}

main "$@"

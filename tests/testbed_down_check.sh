#!/usr/bin/env bash
# testbed_down_check.sh — run after `tests/testbed.sh down`: fails (non-zero,
# one line per leftover) if anything the testbed makes is still there.
# The cached base and the key are meant to stay and are not checked.
# With --sim, only what `tests/testbed.sh sim up` makes is checked (the simulated
# hosts' host keys are meant to stay too).
set -euo pipefail

STATE=${PROVISION_TESTBED:-/var/lib/provision-testbed}
leftovers=0

leftover() { echo "testbed down check: leftover: $*" >&2; leftovers=$((leftovers + 1)); }

[[ $(id -u) -eq 0 ]] || { echo "testbed down check: must run as root" >&2; exit 1; }

# ---- the simulated hosts (tests/testbed_sim.sh)
SIM=$STATE/sim
while read -r ns; do
  leftover "network namespace $ns"
done < <(ip netns list | awk '$1 ~ /^pvsim-/ {print $1}')
while read -r link; do
  leftover "link $link"
done < <(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^(pvsim0|pvs[0-9]+)$' || true)
# Their sshds: started with a config below $SIM (any namespace).
while read -r pid args; do
  leftover "process $pid: $args"
done < <(pgrep -a -f "sshd -D -e -f $SIM/" || true)
[[ ! -e /srv/sim ]] || leftover "/srv/sim: $(ls -A /srv/sim | head -5 | tr '\n' ' ')"
for f in hosts known_hosts inventory.yml sysctl.orig authorized_keys made_dirs; do
  [[ ! -e $SIM/$f ]] || leftover "$SIM/$f"
done

if [[ ${1:-} == --sim ]]; then
  if ((leftovers)); then echo "testbed down check (sim): FAILED, $leftovers leftover(s)" >&2; exit 1; fi
  echo "testbed down check (sim): ok, nothing left behind"
  exit 0
fi

# Mounts: the per-host overlays (and anything else) below the state dir.
while read -r target; do
  leftover "mount $target"
done < <(findmnt -rn -o TARGET | awk -v p="$STATE/" 'index($0, p) == 1')

# Network namespaces named pvtb-*.
while read -r ns; do
  leftover "network namespace $ns"
done < <(ip netns list | awk '$1 ~ /^pvtb/ {print $1}')

# Links: the bridge pvtb0 and the veths pvtbv*.
while read -r link; do
  leftover "link $link"
done < <(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^pvtb' || true)

# iptables: our chains, jumps to them, and any rule naming the testbed subnet.
# (A machine without iptables has none: the testbed installs it on its first `up`.)
command -v iptables >/dev/null && for table in filter nat; do
  while read -r rule; do
    leftover "iptables -t $table: $rule"
  done < <(iptables -t "$table" -S | grep -E 'PVTB|10\.77\.0\.' || true)
done

# Processes: any systemd-nspawn at all (the testbed is the only user here).
while read -r pid args; do
  leftover "process $pid: $args"
done < <(pgrep -a -x systemd-nspawn || true)

# Container inits that outlived their nspawn (it does not take them down when
# killed with SIGKILL): PID 1 in their own PID namespace, started by nspawn.
for status in /proc/[0-9]*/status; do
  pid=${status#/proc/}; pid=${pid%/status}
  nspid=$(awk '/^NSpid:/ {print $NF, NF}' "$status" 2>/dev/null) || continue
  [[ $nspid == "1 "[3-9]* ]] || continue
  { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qx 'container=systemd-nspawn' || continue
  leftover "container init $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline"))"
done

# The hosts' cgroups.
for dir in /sys/fs/cgroup/*/pvtb /sys/fs/cgroup/pvtb; do
  [[ ! -e $dir ]] || leftover "cgroup $dir"
done

# nspawn's per-machine dirs, left when a container is killed rather than stopped.
for dir in /run/systemd/nspawn/propagate/*; do
  [[ ! -e $dir ]] || leftover "nspawn propagation dir $dir"
done

# Per-host state and the generated inventory / known_hosts.
if [[ -d $STATE/hosts ]]; then
  leftover "per-host dir $STATE/hosts: $(ls -A "$STATE/hosts" | tr '\n' ' ')"
fi
for f in inventory.yml known_hosts base.tmp sysctl.orig; do
  [[ ! -e $STATE/$f ]] || leftover "$STATE/$f"
done
# A crashed base build of another release (tests/testbed_base.sh: base-RELEASE.tmp).
for f in "$STATE"/base-*.tmp; do
  [[ ! -e $f ]] || leftover "$f"
done

if ((leftovers)); then
  echo "testbed down check: FAILED, $leftovers leftover(s)" >&2
  exit 1
fi
echo "testbed down check: ok, nothing left behind"

#!/usr/bin/env bash
# bench/run.sh — provision vs ansible-core vs pyinfra vs the ssh floor, on testbed hosts.
#
#   bench/run.sh                                   # the full bench: 1, 5 and 20 hosts, 5 runs each
#   BENCH_HOSTS="1 5" BENCH_RUNS=3 BENCH_CHANGE_RUNS=1 bench/run.sh   # quick mode
#
# Environment: BENCH_HOSTS (host counts, default "1 5 20"), BENCH_RUNS (no-op runs per tool
# and count, default 5), BENCH_CHANGE_RUNS (changing runs, each after a reset, default 5),
# BENCH_TOOLS (default "provision ansible pyinfra"), ANSIBLE_CORE_VERSION, PYINFRA_VERSION,
# PROVISION_BIN (default: target/release/provision, built here), BENCH_CHANGE_RUNS_PROVISION /
# _ANSIBLE / _PYINFRA (changing runs of one tool), BENCH_APPEND=1 (add these host counts to
# the results already in bench/results/results.json instead of starting over).
#
# What it does: builds provision (release), installs ansible-core and pyinfra into
# bench/.venv, brings up testbed hosts b1..bN at 10.77.0.101.. (tests/testbed.sh up, never
# down), installs python3 on them for Ansible and fills their apt cache with the workload's
# packages (setup, not timed), then runs bench/lib/bench.py, which times every tool and
# writes bench/RESULTS.md. Run as root on the testbed machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
export BENCH_HOSTS=${BENCH_HOSTS:-"1 5 20"}
export BENCH_RUNS=${BENCH_RUNS:-5}
export BENCH_CHANGE_RUNS=${BENCH_CHANGE_RUNS:-5}
ANSIBLE_CORE_VERSION=${ANSIBLE_CORE_VERSION:-2.19.14}
PYINFRA_VERSION=${PYINFRA_VERSION:-3.10.0}
STATE=${PROVISION_TESTBED:-/var/lib/provision-testbed}
log() { echo "bench: $*" >&2; }

[[ $(id -u) -eq 0 ]] || { echo "bench: run as root (the testbed needs it)" >&2; exit 1; }

# The exact command, for RESULTS.md.
cmd="bench/run.sh"
for v in BENCH_HOSTS BENCH_RUNS BENCH_CHANGE_RUNS BENCH_CHANGE_RUNS_PROVISION BENCH_CHANGE_RUNS_ANSIBLE BENCH_CHANGE_RUNS_PYINFRA BENCH_TOOLS BENCH_APPEND PROVISION_BIN; do
  [[ -n ${!v:-} ]] && cmd="$v=\"${!v}\" $cmd"
done
export BENCH_COMMAND=$cmd

log "building provision (release)"
cargo build --release --quiet
export PROVISION_BIN=${PROVISION_BIN:-$ROOT/target/release/provision}

if [[ ! -x $BENCH/.venv/bin/ansible-playbook || ! -x $BENCH/.venv/bin/pyinfra ]] ||
   ! "$BENCH/.venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('ansible-core') != '$ANSIBLE_CORE_VERSION' or m.version('pyinfra') != '$PYINFRA_VERSION')"; then
  log "installing ansible-core $ANSIBLE_CORE_VERSION and pyinfra $PYINFRA_VERSION into bench/.venv"
  python3 -m venv "$BENCH/.venv"
  "$BENCH/.venv/bin/pip" install -q --upgrade pip
  "$BENCH/.venv/bin/pip" install -q "ansible-core==$ANSIBLE_CORE_VERSION" "pyinfra==$PYINFRA_VERSION"
fi

max=0
for n in $BENCH_HOSTS; do ((n > max)) && max=$n; done
((max <= 20)) || { echo "bench: at most 20 hosts (b1..b20 at 10.77.0.101..120)" >&2; exit 1; }
specs=()
for ((i = 1; i <= max; i++)); do specs+=("b$i=10.77.0.$((100 + i))"); done
log "bringing up testbed hosts b1..b$max"
tests/testbed.sh up "${specs[@]}"

# Setup, not timed: python3 for Ansible, fresh apt lists, and the workload's packages in
# the apt cache so that every tool's changing run installs from the same local cache.
log "setup on the hosts: apt-get update, python3, the workload's packages downloaded"
SSH=(ssh -i "$STATE/id_ed25519" -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes
  -o "UserKnownHostsFile=$STATE/known_hosts" -o GlobalKnownHostsFile=/dev/null
  -o ConnectTimeout=10 -o BatchMode=yes)
pids=()
for ((i = 1; i <= max; i++)); do
  "${SSH[@]}" "root@10.77.0.$((100 + i))" 'set -e
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq -o Dpkg::Lock::Timeout=120
    apt-get install -y -qq -o Dpkg::Lock::Timeout=120 python3 >/dev/null
    apt-get install -y -qq --download-only tree jq >/dev/null
    rm -f /etc/apt/apt.conf.d/docker-clean' >"/tmp/bench-setup-b$i.log" 2>&1 &
  pids+=($!)
done
fail=0
for ((i = 0; i < ${#pids[@]}; i++)); do
  wait "${pids[$i]}" || { log "setup failed on b$((i + 1)):"; cat "/tmp/bench-setup-b$((i + 1)).log" >&2; fail=1; }
done
((fail == 0)) || exit 1

exec "$BENCH/.venv/bin/python" "$BENCH/lib/bench.py"

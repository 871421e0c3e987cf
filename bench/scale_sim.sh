#!/usr/bin/env bash
# bench/scale_sim.sh — provision vs pyinfra vs ansible-core vs the ssh floor on 100 and 500
# simulated hosts (tests/testbed.sh sim: an sshd per network namespace), in one run.
#
#   bench/scale_sim.sh
#   BENCH_HOSTS="100" BENCH_TOOLS="provision pyinfra" bench/scale_sim.sh     # a part
#
# Environment: BENCH_HOSTS (default "100 500"), BENCH_FORKS (hosts at once, for every tool
# and the floor; default 50), BENCH_RUNS (floor and provision no-op runs, median; default 3),
# BENCH_TOOLS (default "provision pyinfra ansible"), BENCH_ANSIBLE_MAX_HOSTS (Ansible only
# up to this many hosts, default 100: at 500 one run takes far longer than the rest of the
# bench), BENCH_TIMEOUT (seconds a run may take, default 1200; BENCH_TIMEOUT_PYINFRA,
# _ANSIBLE, ... per tool; a run killed at its timeout is reported as a lower bound),
# BENCH_CHANGING_TOOLS (the tools that also get a changing run, default all; the others run
# their no-op on the hosts provision converged: the same end state), BENCH_VENV (default
# /var/cache/provision-bench/venv), ANSIBLE_CORE_VERSION, PYINFRA_VERSION, PROVISION_BIN
# (default: the release build, built here), BENCH_KEEP_SIM=1 (leave the simulated hosts up).
#
# The workload: 25 file, directory and link resources per host under /srv/sim/NAME
# (bench/scale_sim/provision/roles/simwork, the same as bench/scale_sim/pyinfra/deploy.py and
# bench/scale_sim/ansible/site.yml). Per host count: the floor (`ssh HOST true` to every host,
# BENCH_FORKS at a time, by xargs -P), then per tool a changing run on empty host directories
# and no-op runs. Prints a table (wall time, ratios, controller CPU, the peak PSS and RSS of
# the controller's whole process tree, ssh processes included); raw data in
# bench/results/scale_sim.json. Run as root on the testbed machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export BENCH_HOSTS=${BENCH_HOSTS:-"100 500"}
export BENCH_VENV=${BENCH_VENV:-/var/cache/provision-bench/venv}
ANSIBLE_CORE_VERSION=${ANSIBLE_CORE_VERSION:-2.19.14}
PYINFRA_VERSION=${PYINFRA_VERSION:-3.10.0}
log() { echo "scale bench: $*" >&2; }
[[ $(id -u) -eq 0 ]] || { echo "scale bench: run as root (the simulated hosts need it)" >&2; exit 1; }

# The exact command, for RESULTS.md.
cmd="bench/scale_sim.sh"
for v in BENCH_HOSTS BENCH_FORKS BENCH_RUNS BENCH_TOOLS BENCH_CHANGING_TOOLS BENCH_ANSIBLE_MAX_HOSTS BENCH_TIMEOUT \
    BENCH_TIMEOUT_PYINFRA BENCH_TIMEOUT_ANSIBLE PROVISION_BIN; do
  [[ -n ${!v:-} ]] && cmd="$v=\"${!v}\" $cmd"
done
export BENCH_COMMAND=$cmd

if [[ -z ${PROVISION_BIN:-} ]]; then
  log "building provision (release)"
  cargo build --release --locked --quiet
  export PROVISION_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/provision
fi

if ! "$BENCH_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('ansible-core') != '$ANSIBLE_CORE_VERSION' or m.version('pyinfra') != '$PYINFRA_VERSION')" 2>/dev/null; then
  log "installing ansible-core $ANSIBLE_CORE_VERSION and pyinfra $PYINFRA_VERSION into $BENCH_VENV"
  mkdir -p "$(dirname "$BENCH_VENV")"
  python3 -m venv "$BENCH_VENV"
  "$BENCH_VENV/bin/pip" install -q "ansible-core==$ANSIBLE_CORE_VERSION" "pyinfra==$PYINFRA_VERSION"
fi

# Limits: the controller's open files (each tool holds a few per host it works on at once;
# Ansible's ControlPersist masters outlive their host's turn), raised to the hard limit.
ulimit -n "$(ulimit -Hn)"

max=0
for n in $BENCH_HOSTS; do ((n > max)) && max=$n; done
log "bringing up $max simulated hosts"
tests/testbed.sh sim up "$max"
[[ ${BENCH_KEEP_SIM:-} == 1 ]] || trap 'tests/testbed.sh sim down' EXIT
"$BENCH_VENV/bin/python" bench/scale_sim/scale.py

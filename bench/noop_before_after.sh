#!/usr/bin/env bash
# bench/noop_before_after.sh — the no-op run of this tree against another commit's, in one
# run, on the same hosts, with the ssh floor (`ssh host true`) measured alongside.
#
#   bench/noop_before_after.sh [BASE_COMMIT]     # default: the commit before the shell module
#
# Environment: HOSTS (default 5, hosts b1..bN at 10.77.0.101..), RUNS (default 15).
# It builds both in release mode (the base in a git worktree under target/), brings up the
# testbed hosts (never down), converges them once with this tree, then alternates no-op
# runs of base, this tree and the floor, and prints medians and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BASE=${1:-0e2208d}
HOSTS=${HOSTS:-5}
RUNS=${RUNS:-15}
STATE=/var/lib/provision-testbed
log() { echo "bench: $*" >&2; }

log "building this tree and $BASE (release)"
cargo build --release --quiet
NEW=$ROOT/target/release/provision
WT=$ROOT/target/bench-base
if [[ ! -d $WT ]]; then git worktree add -q --detach "$WT" "$BASE"; else git -C "$WT" checkout -q --detach "$BASE"; fi
(cd "$WT" && CARGO_TARGET_DIR=$ROOT/target/bench-base-target cargo build --release --quiet)
OLD=$ROOT/target/bench-base-target/release/provision

specs=()
for ((i = 1; i <= HOSTS; i++)); do specs+=("b$i=10.77.0.$((100 + i))"); done
tests/testbed.sh up "${specs[@]}" >&2
INV=$(mktemp -d)/bench.yml
{
  echo "stage: bench"
  echo "ssh: {identity_file: $STATE/id_ed25519, known_hosts: $STATE/known_hosts}"
  echo "hosts:"
  for ((i = 1; i <= HOSTS; i++)); do echo "  b$i: {address: 10.77.0.$((100 + i)), user: root, roles: [bench]}"; done
} >"$INV"
cp -rL bench/provision/roles "$(dirname "$INV")/"
log "converging b1..b$HOSTS once (setup, not timed)"
"$NEW" "$INV" >/dev/null || "$NEW" "$INV" >/dev/null

now() { date +%s%N; }
declare -a t_old t_new t_floor
for ((r = 0; r < RUNS; r++)); do
  a=$(now); "$OLD" "$INV" >/dev/null; b=$(now); t_old+=($(((b - a) / 1000000)))
  a=$(now); "$NEW" "$INV" >/dev/null; b=$(now); t_new+=($(((b - a) / 1000000)))
  a=$(now)
  for ((i = 1; i <= HOSTS; i++)); do
    ssh -i $STATE/id_ed25519 -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$STATE/known_hosts -o BatchMode=yes root@10.77.0.$((100 + i)) true &
  done
  wait
  b=$(now); t_floor+=($(((b - a) / 1000000)))
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
mo=$(median "${t_old[@]}"); mn=$(median "${t_new[@]}"); mf=$(median "${t_floor[@]}")
rt=$("$NEW" "$INV" --format json | python3 -c 'import json,sys; print(max(h["round_trips"] for h in json.load(sys.stdin)["hosts"]))')
echo "no-op on $HOSTS hosts, $RUNS runs each, medians: base $BASE ${mo} ms, this tree ${mn} ms, ssh floor ${mf} ms"
echo "ratios: this/base $(python3 -c "print(f'{$mn/$mo:.2f}')"), this/floor $(python3 -c "print(f'{$mn/$mf:.2f}')"), base/floor $(python3 -c "print(f'{$mo/$mf:.2f}')"); round trips per host: $rt"

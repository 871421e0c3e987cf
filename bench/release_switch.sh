#!/usr/bin/env bash
# bench/release_switch.sh — a good release's time to switch, this tree (health gate before
# traffic) against another commit's (no gate), in one run, on the same hosts.
#
#   bench/release_switch.sh [BASE_COMMIT]     # default: aa15b1f, the last release without a gate
#
# Environment: RUNS (default 9 releases each).
# It builds both in release mode (the base in a git worktree under target/), brings up the
# sandbox stack (never down), bootstraps and converges it once with this tree (setup, not timed), then
# alternates releases of examples/shop (the sandbox's app; each release builds its assets) by the base and by this tree and prints medians
# of two measures and their ratios:
#   wall    the whole `provision release`, lock to unlock (here it includes the gate);
#   switch  the switch phase alone: current switched, puma restarted, health checked
#           ("[5-7/8]" in the base, "[6-7/8]" here).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BASE=${1:-aa15b1f}
RUNS=${RUNS:-9}
log() { echo "bench: $*" >&2; }

log "building this tree and $BASE (release)"
cargo build --release --quiet
NEW=$ROOT/target/release/provision
WT=$ROOT/target/bench-base
if [[ ! -d $WT ]]; then git worktree add -q --detach "$WT" "$BASE"; else git -C "$WT" checkout -q --detach "$BASE"; fi
(cd "$WT" && CARGO_TARGET_DIR=$ROOT/target/bench-base-target cargo build --release --quiet)
OLD=$ROOT/target/bench-base-target/release/provision

tests/testbed.sh up web1=10.77.0.21 app1=10.77.0.22 app2=10.77.0.23 worker1=10.77.0.24 db1=10.77.0.25 db2=10.77.0.26 faye1=10.77.0.27 >&2
log "bootstrapping and converging the sandbox stack once (setup, not timed)"
NO_COLOR=1 "$NEW" bootstrap inventories/sandbox.yml >/dev/null
NO_COLOR=1 "$NEW" inventories/sandbox.yml >/dev/null || NO_COLOR=1 "$NEW" inventories/sandbox.yml >/dev/null
# The base reads no `!cmd` (the admin's keys, which only bootstrap needs): it releases as
# root (the sandbox keeps root's key login) from a copy without those lines; roles/ is
# found above the copy, in this tree.
BASE_INV=$ROOT/target/bench-inventory/sandbox.yml
mkdir -p "${BASE_INV%/*}"
sed -e '/!cmd/d' -e 's/^    user: admin$/    user: root/' inventories/sandbox.yml >"$BASE_INV"

now() { date +%s%N; }
# release BIN LABEL INVENTORY: prints "wall_ms switch_ms gate_ms" for one good release (gate 0: none).
release() {
  local out a b
  a=$(now)
  out=$(NO_COLOR=1 "$1" release "$3" --dir examples/shop --revision "$2" 2>&1) || { echo "$out" >&2; log "release $2 failed"; exit 1; }
  b=$(now)
  local switch
  switch=$(grep -oE '\[[0-9-]+/8\] current -> .* in [0-9]+ ms' <<<"$out" | grep -oE '[0-9]+ ms$' | grep -oE '[0-9]+')
  [[ -n $switch ]] || { echo "$out" >&2; log "no switch phase line in the output"; exit 1; }
  local gate
  gate=$(grep -oE '\[5/8\] health gate: .*\(([0-9]+) ms\)' <<<"$out" | grep -oE '[0-9]+ ms\)$' | grep -oE '[0-9]+' || echo 0)
  echo "$(((b - a) / 1000000)) $switch $gate"
}
# A pause of random length before each release: sidekiq's stop waits for its fetcher's
# blocking BRPOP (a 2 s cycle from its start), so releases at fixed intervals would give one
# side a fixed, unfair share of that wait. Random pauses spread it over both.
pause() { sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", r / 32767 * 2 }')"; }
declare -a w_old s_old w_new s_new g_new
for ((r = 0; r < RUNS; r++)); do
  pause; read -r w s g < <(release "$OLD" "bench-base-$r" "$BASE_INV"); w_old+=("$w"); s_old+=("$s")
  pause; read -r w s g < <(release "$NEW" "bench-this-$r" inventories/sandbox.yml); w_new+=("$w"); s_new+=("$s"); g_new+=("$g")
  log "run $r: base wall ${w_old[-1]} ms switch ${s_old[-1]} ms; this wall ${w_new[-1]} ms gate ${g_new[-1]} ms switch ${s_new[-1]} ms"
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
mwo=$(median "${w_old[@]}"); mso=$(median "${s_old[@]}")
mwn=$(median "${w_new[@]}"); msn=$(median "${s_new[@]}"); mgn=$(median "${g_new[@]}")
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
echo "good release of examples/shop on the sandbox stack, $RUNS releases each, medians:"
echo "  base $BASE: wall ${mwo} ms, switch phase ${mso} ms"
echo "  this tree:     wall ${mwn} ms, switch phase ${msn} ms, health gate before it ${mgn} ms"
echo "ratios this/base: wall $(ratio "$mwn" "$mwo"), switch phase $(ratio "$msn" "$mso")"

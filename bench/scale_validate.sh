#!/usr/bin/env bash
# bench/scale_validate.sh — `provision validate` of generated stack inventories of N hosts in
# production's shape (two web, a primary and a replica, redis, a tenth sidekiq, two faye,
# the rest puma), release build: wall and CPU time per N and the ratio of each N to the one
# before. Nothing connects (documentation addresses).
#
#   bench/scale_validate.sh [N...]          # default: 250 500 1000 2000
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SIZES=("${@:-250 500 1000 2000}")
read -r -a SIZES <<<"${SIZES[*]}"
[[ -x /usr/bin/time ]] || { echo "bench/scale_validate.sh: needs GNU time (apt-get install time)" >&2; exit 1; }
cargo build --release --quiet
BIN=$ROOT/target/release/provision
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ln -s "$ROOT/roles" "$WORK/roles"
ln -s "$ROOT/examples" "$WORK/examples"
mkdir "$WORK/inventories"
inventory() {
  local n=$1 i r extra
  echo "stage: staging"
  echo "vars: {app: flipper, secret_key_base: !secret bench-key-base-0123456789, mysql_app_password: !secret pw1, mysql_replication_password: !secret pw2, redis_password: !secret pw3}"
  echo "hosts:"
  for ((i = 1; i <= n; i++)); do
    if ((i <= 2)); then r=nginx; elif ((i <= 4)); then r=mysql; elif ((i <= 5)); then r="redis, example_release, sidekiq"
    elif ((i <= n / 10)); then r="example_release, sidekiq"; elif ((i <= n / 10 + 2)); then r=faye; else r="example_release, puma"; fi
    extra=""; ((i == 3)) && extra=", primary: true"
    echo "  h$i: {address: 192.0.2.1, port: $((1000 + i)), roles: [$r]$extra}"
  done
}
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
prev_wall="" prev_n=""
for n in "${SIZES[@]}"; do
  inventory "$n" >"$WORK/inventories/s$n.yml"
  walls=() cpus=()
  for _ in 1 2 3; do
    out=$( { /usr/bin/time -f "%e %U %S" "$BIN" validate "$WORK/inventories/s$n.yml" >/dev/null; } 2>&1 | tail -1)
    read -r w u s <<<"$out"
    walls+=("$w"); cpus+=("$(python3 -c "print(round($u+$s, 2))")")
  done
  mw=$(median "${walls[@]}"); mc=$(median "${cpus[@]}")
  ratio=""
  [[ -n $prev_wall ]] && ratio=" ($(python3 -c "print(f'{$mw/$prev_wall:.2f}')")x the time of $prev_n hosts)"
  echo "validate $n hosts: wall ${mw} s, CPU ${mc} s, median of 3$ratio"
  prev_wall=$mw prev_n=$n
done

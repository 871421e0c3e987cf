#!/usr/bin/env bash
# The project's test command. On a fresh Debian 12 machine, as root, it installs what it
# needs (apt packages, the testbed, the Rust build), brings the testbed hosts up once,
# runs every test, and tears the hosts down at the end, also when a test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) -eq 0 ]] || { echo "tests/run.sh: run as root (the testbed creates containers, namespaces and firewall rules)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "tests/run.sh: cargo is missing; install the Rust toolchain first" >&2; exit 1; }

need=()
for pair in curl:curl ssh:openssh-client age:age; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
# tests/release_rails.rs and tests/shop.rs build Rails apps' assets on this machine: Debian's
# Rails and the gems of their Gemfile.locks (no `rails` package: it pulls webpacker and Node).
for pkg in ruby ruby-rails ruby-sprockets-rails bundler ruby-mysql2 ruby-sidekiq ruby-redis puma ruby-sd-notify; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if ((${#need[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

echo "== build"
cargo build --locked --tests --bins
# tests/bad_input.rs runs its table against the release build too (it fails on CI without it).
# Built while the testbed comes up (one is CPU, the other mostly waiting), and waited for
# before the tests.
release_log=$(mktemp)
cargo build --locked --release --bin provision >"$release_log" 2>&1 &
release_pid=$!
export PROVISION_RELEASE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/provision"

# tests/sim.rs brings its own 500 simulated hosts up and down (tests/testbed.sh sim), so
# only that test pays for them; the teardown's `down` also takes them down if it died.
# Core and fault tests use t1..t3, the bootstrap test t4; the stack test uses the sandbox topology (fixed addresses, the
# same as inventories/sandbox.yml); tests/https.rs uses tls1 (nginx) and acme1 (pebble, a test ACME server).
# tests/backup.rs: a MariaDB primary and replica and a backup host of their own.
# tests/mail.rs: ml1 (exim4 catching every message locally; --check needs it fresh).
BACKUP_HOSTS=(bkdb1=10.77.0.41 bkdb2=10.77.0.42 bk1=10.77.0.43)
SANDBOX=(web1=10.77.0.21 app1=10.77.0.22 app2=10.77.0.23 worker1=10.77.0.24 db1=10.77.0.25 db2=10.77.0.26 faye1=10.77.0.27)
# tests/release_rails.rs: a Rails app's release (app + puma, and its mysql primary).
RAILS_HOSTS=(rr-app1=10.77.0.71 rr-db1=10.77.0.72)
# tests/shop.rs: examples/shop (Rails) on nginx+faye, two puma hosts (one with sidekiq, redis
# and the mail role), a MariaDB primary and replica, and a production stage's MariaDB.
SHOP=(sh-web1=10.77.0.61 sh-app1=10.77.0.62 sh-db1=10.77.0.63 sh-app2=10.77.0.64 sh-db2=10.77.0.65 sh-pdb1=10.77.0.66)
# tests/trixie.rs: the stack on five Debian 13 hosts (their own cached base, $STATE/base-trixie).
TRIXIE=(tx-web1=10.77.0.51 tx-app1=10.77.0.52 tx-worker1=10.77.0.53 tx-db1=10.77.0.54 tx-db2=10.77.0.55)
teardown() {
  local rc=$?
  echo "== testbed down"
  tests/testbed.sh down || rc=1
  tests/testbed_down_check.sh || rc=1   # the simulated hosts' leftovers too
  exit $rc
}
trap teardown EXIT
echo "== testbed up"
start=$(date +%s)
# Fresh hosts every run: a host changed by an earlier run (t4 has no root login after the
# bootstrap test) would make the tests depend on history.
tests/testbed.sh down
tests/testbed.sh up t1 t2 t3 t4 "${SANDBOX[@]}" tls1=10.77.0.31 acme1=10.77.0.32 "${BACKUP_HOSTS[@]}" ml1=10.77.0.81 "${RAILS_HOSTS[@]}" "${SHOP[@]}"
# After the bookworm hosts, not beside them: an `up` holds the testbed's state lock for its
# whole run (the base build included), so a second one in the background would only wait.
tests/testbed.sh up --release trixie "${TRIXIE[@]}"
echo "testbed: 30 hosts up in $(( $(date +%s) - start )) s"
if ! wait "$release_pid"; then
  cat "$release_log" >&2
  echo "tests/run.sh: the release build failed" >&2
  exit 1
fi
echo "release build: done (waited for it until $(( $(date +%s) - start )) s after the testbed started)"
rm -f "$release_log"

echo "== tests"
measurements=target/tmp/measurements.txt
rm -f "$measurements"
# --no-fail-fast: one run shows every failing test binary, not just the first.
cargo test --locked --no-fail-fast -- --test-threads=4
echo "== measurements"
cat "$measurements" 2>/dev/null || true

#!/usr/bin/env bash
# A first look without servers of your own: brings up the sandbox hosts on this machine
# (web1, app1, app2, worker1, db1, db2, faye1), bootstraps them as a new server is
# (root with a key -> an admin with sudo, no root password login) and provisions the whole
# Rails stack on them with the shipped roles, connecting as the admin, and releases the
# Rails app examples/shop onto them. Run as root on
# Debian 12. `tests/testbed.sh down` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
[[ $(id -u) -eq 0 ]] || { echo "tests/try-it.sh: run as root (the testbed creates containers and firewall rules)" >&2; exit 1; }

cargo build --release --locked --bins
provision=${CARGO_TARGET_DIR:-target}/release/provision
tests/testbed.sh up web1=10.77.0.21 app1=10.77.0.22 app2=10.77.0.23 worker1=10.77.0.24 db1=10.77.0.25 db2=10.77.0.26 faye1=10.77.0.27
"$provision" bootstrap inventories/sandbox.yml
"$provision" inventories/sandbox.yml --check || [[ $? -eq 2 ]]
"$provision" inventories/sandbox.yml
# The app: examples/shop, a Rails 6.1 app on Debian's gems. Its assets are built on this
# machine (Debian's ruby-rails), then bundle, migrations and the health gate on the hosts.
for pkg in ruby-rails ruby-sprockets-rails bundler ruby-mysql2 ruby-sidekiq ruby-redis puma; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then apt-get install -y -qq "${missing[@]}"; fi
"$provision" release inventories/sandbox.yml --dir examples/shop
# web1 serves HTTPS with a certificate of the sandbox CA made on it (nginx_tls: self_signed).
ca=$(mktemp --suffix=.pem)
tests/testbed.sh ssh web1 cat /etc/nginx/tls/ca.pem > "$ca"
cat <<MSG

The stack is up. Try (web1's certificate is for the name web1; its CA is in $ca):
  curl --cacert $ca --resolve web1:443:10.77.0.21 https://web1/              # the shop's page, from app1 or app2, through nginx on web1
  curl --cacert $ca --resolve web1:443:10.77.0.21 -X POST https://web1/jobs   # a Sidekiq job on worker1 writes a row on db1 (replicated to db2)
  # or open https://web1/ in a browser (with 10.77.0.21 web1 in /etc/hosts) and order: the
  # mail lands on worker1 in /var/mail/mailcatch, addressed to admins@example.com
  curl -I http://10.77.0.21/                   # port 80 redirects to HTTPS
  $provision inventories/sandbox.yml --check    # nothing left to change
  tests/testbed.sh ssh web1                    # a shell on a host (as root: the sandbox keeps root's key login)
  tests/testbed.sh down                        # remove everything
MSG

# testbed_base.sh — the cached Debian base rootfs of tests/testbed.sh (sourced by it).
#
# One base per Debian release, each the overlay lower layer of that release's hosts:
#   bookworm (Debian 12, the default): $STATE/base   (the path every existing cache uses)
#   trixie   (Debian 13):              $STATE/base-trixie
# Uses testbed.sh's STATE, KEY, REGISTRY, log and die.

RELEASES=(bookworm trixie)   # what `up --release` accepts; the first is the default

# The base directory of release $1.
base_dir() {
  if [[ $1 == "${RELEASES[0]}" ]]; then echo "$STATE/base"; else echo "$STATE/base-$1"; fi
}

# debootstrap's log for release $1 (bookworm keeps the name it always had).
base_log() {
  if [[ $1 == "${RELEASES[0]}" ]]; then echo "$STATE/debootstrap.log"; else echo "$STATE/debootstrap-$1.log"; fi
}

check_release() {
  [[ " ${RELEASES[*]} " == *" $1 "* ]] || die "unknown release '$1' (known: ${RELEASES[*]})"
}

# The release of host $1 (hosts made before releases existed are bookworm's).
host_release() {
  local r
  r=$(cat "$HOSTS/$1/release" 2>/dev/null) || r=${RELEASES[0]}
  echo "$r"
}

ensure_key() {
  [[ -f $KEY ]] || ssh-keygen -q -t ed25519 -N '' -C provision-testbed -f "$KEY"
}

# Unmount whatever a crashed debootstrap left mounted (proc, sys...) below $1.
umount_below() {
  findmnt -rn -o TARGET | awk -v p="$1/" 'index($0, p) == 1' | sort -r |
    while read -r m; do umount -l "$m" || true; done
}

# Build release $1's base into a temp dir and rename it into place at the end, so
# that a crashed build is never mistaken for a cached base.
build_base() {
  local release=$1 base tmp logf start=$SECONDS
  base=$(base_dir "$release"); tmp=$base.tmp; logf=$(base_log "$release")
  umount_below "$tmp"; rm -rf --one-file-system "$tmp"
  log "building base rootfs (debootstrap $release minbase, about a minute)"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,openssh-server,sudo,iproute2 \
    "$release" "$tmp" "http://$REGISTRY/debian" >"$logf" 2>&1 ||
    die "debootstrap $release failed, see $logf"

  # Identity is per host: machine-id and host keys are written at create time.
  : >"$tmp/etc/machine-id"
  rm -f "$tmp"/etc/ssh/ssh_host_*
  # Only the ed25519 host key exists, so tell sshd not to look for others.
  echo 'HostKey /etc/ssh/ssh_host_ed25519_key' >"$tmp/etc/ssh/sshd_config.d/testbed.conf"
  # No DNS inside: the registry comes from /etc/hosts.
  : >"$tmp/etc/resolv.conf"
  echo "deb http://$REGISTRY/debian $release main" >"$tmp/etc/apt/sources.list"
  echo 'Acquire::Languages "none";' >"$tmp/etc/apt/apt.conf.d/99testbed"
  install -d -m 700 "$tmp/root/.ssh"
  install -m 600 "$KEY.pub" "$tmp/root/.ssh/authorized_keys"
  rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*

  [[ -d $base ]] && { rm -rf --one-file-system "$base.old"; mv "$base" "$base.old"; }
  mv "$tmp" "$base"
  rm -rf --one-file-system "$base.old"
  log "base $release built in $((SECONDS - start))s"
}

# Applied to each host's own layer at create time (so a base cached by an
# older version of this script gets them too).
mask_units() {
  local root=$1 unit
  # A minbase host boots to `running` in nspawn with nothing masked. But the apt
  # timers would run apt in the background and hold the dpkg lock while a test
  # or provision installs packages; and the console is read-only (its output
  # goes to the host's log), so a login prompt there serves no one.
  for unit in apt-daily.timer apt-daily-upgrade.timer console-getty.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
  done
}

# ensure_base RELEASE yes|no: build the release's base when asked to or when missing.
ensure_base() {
  local release=$1 rebuild=$2
  if [[ $rebuild == yes || ! -d $(base_dir "$release") ]]; then
    build_base "$release"
  fi
}

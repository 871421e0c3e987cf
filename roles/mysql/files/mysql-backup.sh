#!/bin/sh
# Written by provision (role mysql). The one dump of the app database: `provision do
# mysql:backup` and the APP-mysql-backup timer's service both run this, with the settings
# file provision writes (sh assignments, every value quoted by provision) as $1.
# A consistent dump (--single-transaction) to BACKUP_DIR/DB-DATE.sql.gz (0600, the
# directory 0700), the last BACKUP_KEEP kept; then, when a backup host is set, a copy to
# it over SSH with a key of its own and a strictly checked host key.
set -eu
umask 077
export LC_ALL=C
[ $# -eq 1 ] || { echo "usage: $0 SETTINGS_FILE" >&2; exit 64; }
. "$1"
case ${BACKUP_KEEP:-} in '' | *[!0-9]* | 0) echo "$0: BACKUP_KEEP must be a number >= 1" >&2; exit 64 ;; esac
case ${BACKUP_DB:-} in '' | -*) echo "$0: BACKUP_DB is not a database name" >&2; exit 64 ;; esac
case ${BACKUP_DIR:-} in /*) ;; *) echo "$0: BACKUP_DIR must be an absolute path" >&2; exit 64 ;; esac

install -d -m 0700 -o root -g root -- "$BACKUP_DIR"
name="$BACKUP_DB-$(date -u +%Y%m%dT%H%M%SZ).sql.gz"
f="$BACKUP_DIR/$name"
raw="$BACKUP_DIR/.dump.part"
part="$BACKUP_DIR/.$name.part"
trap 'rm -f -- "$raw" "$part"' EXIT
# No --databases: the dump holds no CREATE DATABASE or USE, so `mysql:restore` can load it
# into another (scratch) database. Into a file first: sh has no pipefail, and a failed
# mysqldump piped into gzip would leave a short dump that looks fine.
mysqldump --single-transaction --routines --triggers --events "$BACKUP_DB" > "$raw"
gzip -c -- "$raw" > "$part"
mv -- "$part" "$f"
ls -1t -- "$BACKUP_DIR/$BACKUP_DB"-*.sql.gz | tail -n +$((BACKUP_KEEP + 1)) | xargs -r -d '\n' rm -f --
n=$(ls -1 -- "$BACKUP_DIR/$BACKUP_DB"-*.sql.gz | wc -l)
echo "wrote $f ($(stat -c %s -- "$f") bytes); $n kept (at most $BACKUP_KEEP)"

if [ -n "${BACKUP_REMOTE_HOST:-}" ]; then
  # -F /dev/null: root's own ssh config plays no part. The receiving side's forced command
  # takes only `put NAME` and writes stdin to a new file of that name.
  ssh -F /dev/null -i "$BACKUP_SSH_KEY" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$BACKUP_KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null \
    -o ConnectTimeout=20 -p "$BACKUP_REMOTE_PORT" -l "$BACKUP_REMOTE_USER" -- "$BACKUP_REMOTE_HOST" put "$name" < "$f"
  echo "copied $name to $BACKUP_REMOTE_USER@$BACKUP_REMOTE_HOST"
fi

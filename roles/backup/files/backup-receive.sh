#!/bin/sh
# Written by provision (role backup): the forced command of every key of the backup user
# (authorized_keys: restrict,command="backup-receive DIR KEEP"). A sender may do one thing:
# `put NAME`, which stores stdin as the new file DIR/NAME (0600). NAME must be letters,
# digits and . _ - ending in .sql.gz, not starting with . or -, at most 128 bytes; anything
# else, and any other command (a shell, `id`, scp, sftp), is refused. DIR and KEEP come
# from root's authorized_keys, never from the sender. The newest KEEP files are kept.
set -eu
umask 077
export LC_ALL=C
refuse() { echo "backup-receive: $*" >&2; exit 1; }
[ $# -eq 2 ] || refuse "usage: backup-receive DIR KEEP (from authorized_keys)"
dir=$1 keep=$2
case $keep in '' | *[!0-9]* | 0) refuse "KEEP must be a number >= 1" ;; esac
cmd=${SSH_ORIGINAL_COMMAND:-}
case $cmd in
  "put "*) name=${cmd#put } ;;
  *) refuse "only \`put NAME\` is allowed here" ;;
esac
case $name in
  '' | .* | -* | *[!A-Za-z0-9._-]*) refuse "not an allowed file name" ;;
  *.sql.gz) ;;
  *) refuse "not an allowed file name (NAME.sql.gz)" ;;
esac
[ ${#name} -le 128 ] || refuse "file name too long"
mkdir -p -m 0700 -- "$dir"
[ ! -e "$dir/$name" ] && [ ! -L "$dir/$name" ] || refuse "$name exists; files are never overwritten"
part="$dir/.$name.part"
trap 'rm -f -- "$part"' EXIT
cat > "$part"
gzip -t -- "$part" 2>/dev/null || refuse "$name is not a whole gzip file"
mv -- "$part" "$dir/$name"
trap - EXIT
ls -1t -- "$dir" | grep '\.sql\.gz$' | tail -n +$((keep + 1)) | while IFS= read -r old; do rm -f -- "$dir/$old"; done
echo "stored $name ($(stat -c %s -- "$dir/$name") bytes)"

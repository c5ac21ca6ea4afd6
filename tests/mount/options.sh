#!/bin/bash
# A domain's driver options (user.vstor.options) and this host's secrets
# for it (vstor secret): a bad option is refused with EINVAL and changes
# nothing; a good one is recorded, applies at the next attach (sync=on
# opens the objects O_DSYNC) and survives a restart and a catalog rebuild;
# a secret's value shows up in no xattr, no vstor output and no log line;
# a secrets file others could read is refused (EACCES) and named.
. "$(dirname "$0")/lib.sh"
requires getfattr setfattr sqlite3
if [ -z "${VSTOR:-}" ]; then
    c=$(dirname "$(dirname "$VSTORFS")")/tools/vstor
    [ -x "$c" ] && VSTOR=$c
fi
[ -n "${VSTOR:-}" ] || bail "no vstor binary: set VSTOR"

SECRET='Zq8-unique,secret=value'

start_vstorfs
D=$MNT/dom
V=$D/img/vol
mkdir "$D" "$D/img" "$V" || bail "cannot create the tree"
truncate -s 1M "$V/data" || bail "cannot size the volume"
UUID=$(xget "$D" user.vstor.uuid)

assert_eq "" "$(xget "$D" user.vstor.options)" "a new domain has no options"
assert_eq "$DATA/secrets/$UUID" "$(xget "$D" user.vstor.secrets-file)" \
    "user.vstor.secrets-file names the host's file for the domain"

# Refusals: EINVAL, one log line naming the key, nothing changed.
refused EINVAL setxattr "$D" user.vstor.options bogus=1
check "the log names the unknown key" log_has "unknown option 'bogus'"
refused EINVAL setxattr "$D" user.vstor.options sync=maybe
refused EINVAL setxattr "$D" user.vstor.options 'sync=on,sync=off'
refused EINVAL setxattr "$D" user.vstor.options 'Sync=on'
refused EPERM setxattr "$D/img" user.vstor.options sync=on
assert_eq "" "$(xget "$D" user.vstor.options)" "the refusals changed nothing"

# A good option: recorded on the storage and in the catalog.
check "setfattr sync=on" setfattr -n user.vstor.options -v sync=on "$D"
assert_eq "sync=on" "$(xget "$D" user.vstor.options)" "user.vstor.options reads it back"
assert_eq "sync=on" "$(sqlite3 "$DATA/catalog.db" "SELECT options FROM nodes WHERE uuid = '$UUID'")" \
    "the catalog row holds it"
check "the domain record on the storage holds it" \
    grep -aq "options=sync=on" "$DATA/domains/$UUID/metadata"

# It applies at the next attach: objects open O_DSYNC (fdinfo flags 010000).
dsync_open() {
    local fd flags
    for fd in /proc/"$VSTORFS_PID"/fd/*; do
        [ "$(readlink "$fd")" == "$DATA/domains/$UUID/$(xget "$V" user.vstor.object)" ] || continue
        flags=$(awk '/^flags:/ {print $2}' /proc/"$VSTORFS_PID"/fdinfo/"${fd##*/}")
        (((8#$flags & 8#10000) != 0)) && return 0
    done
    return 1
}
check "vstor rescan attaches it again" "$VSTOR" rescan "$MNT"
exec 7<>"$V/data"
check "after the attach, the volume's object is open O_DSYNC" dsync_open
exec 7>&-

# A secret: from standard input, into a 0600 file of a 0700 directory.
check "vstor secret set reads the value from stdin" \
    bash -c "printf '%s\n' '$SECRET' | '$VSTOR' secret set '$D' chap_password"
assert_eq "600" "$(stat -c %a "$DATA/secrets/$UUID")" "the secrets file is 0600"
assert_eq "700" "$(stat -c %a "$DATA/secrets")" "the secrets directory is 0700"
assert_eq "chap_password" "$("$VSTOR" secret list "$D")" "vstor secret list shows the key only"
# the dir driver takes no secret: the trial attach of a change refuses it
refused EINVAL setxattr "$D" user.vstor.options sync=off
check "the log names the secret's key" log_has "unknown secret 'chap_password'"
assert_eq "sync=on" "$(xget "$D" user.vstor.options)" "the options did not change"
"$VSTOR" rescan "$MNT" >/dev/null 2>&1
expect_errno EIO open "$V/data" O_RDONLY # a secret the driver does not take: unserved
no_secret() {
    local what=$1 text=$2
    if grep -aqF -- "Zq8-unique" <<<"$text"; then
        not_ok "$what shows no secret value" "found in: $text"
    else
        ok "$what shows no secret value"
    fi
}
no_secret "getfattr -d -m - of the domain" "$(getfattr -d -m - "$D" 2>&1)"
no_secret "getfattr -R of the mount" "$(getfattr -R -d -m - "$MNT" 2>&1)"
no_secret "vstor ls --json" "$("$VSTOR" ls --json "$MNT" 2>&1)"
no_secret "vstor ls -l" "$("$VSTOR" ls -l "$MNT" 2>&1)"
no_secret "vstor info" "$("$VSTOR" info "$V" 2>&1)"
no_secret "the catalog" "$(sqlite3 "$DATA/catalog.db" .dump 2>&1)"
no_secret "the domain's storage" "$(cat "$DATA/domains/$UUID"/* 2>&1 | tr -d '\0')"

# A secrets file others could read is refused, and named in the log.
chmod 0644 "$DATA/secrets/$UUID"
log_mark
"$VSTOR" rescan "$MNT" >/dev/null 2>&1
check "a 0644 secrets file: the log says its mode is too wide" \
    log_gained "secrets file '$DATA/secrets/$UUID' has mode 0644, wider than 0600"
expect_errno EIO open "$V/data" O_RDONLY
check "vstor secret set refuses it too" \
    bash -c "! printf 'x\n' | '$VSTOR' secret set '$D' other"
chmod 0600 "$DATA/secrets/$UUID"
check "vstor secret unset" "$VSTOR" secret unset "$D" chap_password
check "the file is gone with its last secret" test ! -e "$DATA/secrets/$UUID"
check "vstor rescan" "$VSTOR" rescan "$MNT"
check "the domain is served again" stat "$V/data"
no_secret "the log" "$(cat "$LOG")"

# The options survive a restart and a rebuild of the catalog.
stop_vstorfs
start_vstorfs
assert_eq "sync=on" "$(xget "$D" user.vstor.options)" "the options survive a restart"
stop_vstorfs
rm -f "$DATA/catalog.db" "$DATA/catalog.db-wal" "$DATA/catalog.db-shm"
start_vstorfs
assert_eq "sync=on" "$(xget "$D" user.vstor.options)" \
    "the options survive a rebuild of the catalog (from the domain record)"
exec 7<>"$V/data"
check "after the rebuild, the object is open O_DSYNC" dsync_open
exec 7>&-
check "setfattr sync=off" setfattr -n user.vstor.options -v sync=off "$D"
check "an empty value clears the options" setfattr -n user.vstor.options -v "" "$D"
assert_eq "" "$(xget "$D" user.vstor.options)" "no options left"

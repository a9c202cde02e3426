#!/bin/bash
# Installs or updates left4me on a Debian 13 host. Idempotent: a second run
# with the same inputs changes nothing (and says "0 changes").
#
#   deploy/install.sh --bin-dir DIR [--public-ip IP] [--system-cpus LIST|none] [--enable]
#
#   --bin-dir DIR       directory with the release binaries (target/release):
#                       left4me l4d2ctl l4d2-launch left4me-admin left4me-overlay
#                       left4me-systemctl left4me-journalctl left4me-script-sandbox
#   --public-ip IP      the address game servers send their live events to
#                       (LOG_LISTENER_ADDR=IP:28000 in /etc/left4me/web.env);
#                       without it they use the loopback alias 127.0.0.2.
#   --system-cpus LIST  CPUs kept for the system, the web app and overlay builds
#                       (cpuset syntax, default 0); all other online CPUs go to
#                       l4d2-game.slice. "none" disables the split.
#   --enable            enable left4me-web.service, the workshop-refresh, update-check and backup timers.
set -euo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FILES="$DEPLOY_DIR/files"
BIN_DIR=""
SYSTEM_CPUS="0"
PUBLIC_IP=""
ENABLE=0
CHANGES=0
UNITS_CHANGED=0
SYSCTL_CHANGED=0

die() { echo "install.sh: error: $*" >&2; exit 1; }
changed() { CHANGES=$((CHANGES + 1)); echo "changed: $*"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) BIN_DIR=${2:?--bin-dir needs a directory}; shift 2 ;;
        --system-cpus) SYSTEM_CPUS=${2:?--system-cpus needs a CPU list or none}; shift 2 ;;
        --public-ip) PUBLIC_IP=${2:?--public-ip needs an address}; shift 2 ;;
        --enable) ENABLE=1; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

[ "$(id -u)" = 0 ] || die "must run as root"
[ -n "$BIN_DIR" ] || die "--bin-dir is required"
if [ -n "$PUBLIC_IP" ]; then
    # Source keeps a log destination of exactly 127.0.0.1 in an internal
    # queue and never sends it: live events need a real address.
    [[ "$PUBLIC_IP" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die "--public-ip $PUBLIC_IP is not an IPv4 address"
    [[ "$PUBLIC_IP" != 127.* ]] || die "--public-ip $PUBLIC_IP is a loopback address; leave --public-ip out and game servers send their events to 127.0.0.2"
fi
LIBEXEC_BINS="left4me-overlay left4me-systemctl left4me-journalctl left4me-script-sandbox"
OPT_BINS="left4me l4d2ctl l4d2-launch"
for bin in $OPT_BINS $LIBEXEC_BINS left4me-admin; do
    [ -x "$BIN_DIR/$bin" ] || die "missing binary $BIN_DIR/$bin (build with: cargo build --release --workspace)"
done

# --- CPU split (validated before anything changes) -------------------------
# Expands a cpuset list ("0-2,5") to one number per line.
expand_cpus() {
    local part
    tr ',' '\n' <<<"$1" | while read -r part; do
        [ -n "$part" ] || continue
        if [[ "$part" =~ ^([0-9]+)-([0-9]+)$ ]]; then
            seq "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
        elif [[ "$part" =~ ^[0-9]+$ ]]; then
            echo "$part"
        else
            return 1
        fi
    done
}
GAME_CPUS=""
if [ "$SYSTEM_CPUS" != none ]; then
    ONLINE=$(expand_cpus "$(cat /sys/devices/system/cpu/online)") || die "cannot read online CPUs"
    SYSTEM_SET=$(expand_cpus "$SYSTEM_CPUS") || die "bad --system-cpus $SYSTEM_CPUS (cpuset syntax, e.g. 0 or 0-1)"
    [ -n "$SYSTEM_SET" ] || die "bad --system-cpus $SYSTEM_CPUS"
    for cpu in $SYSTEM_SET; do
        grep -qx "$cpu" <<<"$ONLINE" || die "--system-cpus $SYSTEM_CPUS names CPU $cpu, which is not online"
    done
    GAME_CPUS=$(comm -23 <(sort <<<"$ONLINE") <(sort <<<"$SYSTEM_SET") | sort -n | paste -sd, -)
    [ -n "$GAME_CPUS" ] || die "--system-cpus $SYSTEM_CPUS leaves no CPU for game servers on this $(wc -l <<<"$ONLINE")-CPU host; use --system-cpus none to disable the split"
fi

# --- helpers ---------------------------------------------------------------
# ensure_owner_mode PATH OWNER GROUP MODE
ensure_owner_mode() {
    local path=$1 owner=$2 group=$3 mode=$4
    if [ "$(stat -c '%U:%G' "$path")" != "$owner:$group" ]; then
        chown "$owner:$group" "$path"; changed "owner of $path -> $owner:$group"
    fi
    if [ "$(stat -c '%a' "$path")" != "${mode#0}" ]; then
        chmod "$mode" "$path"; changed "mode of $path -> $mode"
    fi
}
# ensure_dir PATH OWNER GROUP MODE
ensure_dir() {
    if [ ! -d "$1" ]; then
        install -d -o "$2" -g "$3" -m "$4" "$1"; changed "created $1"
    else
        ensure_owner_mode "$@"
    fi
}
# ensure_file SRC DEST OWNER GROUP MODE: copies only when the content differs.
ensure_file() {
    local src=$1 dest=$2
    if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
        ensure_owner_mode "$dest" "$3" "$4" "$5"
        return 1
    fi
    install -D -o "$3" -g "$4" -m "$5" "$src" "$dest"; changed "installed $dest"
}
# ensure_content DEST OWNER GROUP MODE <<<CONTENT
ensure_content() {
    local tmp
    tmp=$(mktemp)
    cat >"$tmp"
    local rc=0
    ensure_file "$tmp" "$@" || rc=$?
    rm -f "$tmp"
    return $rc
}
ensure_absent() {
    if [ -e "$1" ]; then rm -f "$1"; changed "removed $1"; fi
}

# --- users -----------------------------------------------------------------
ensure_user() { # NAME ID HOME
    if ! getent group "$1" >/dev/null; then
        groupadd --system --gid "$2" "$1"; changed "group $1 ($2)"
    fi
    if ! getent passwd "$1" >/dev/null; then
        useradd --system --uid "$2" --gid "$2" --home-dir "$3" --no-create-home \
            --shell /usr/sbin/nologin "$1"
        changed "user $1 ($2)"
    fi
}
ensure_user left4me 980 /var/lib/left4me
# Overlay builds run as this user; an idmapped bind maps its writes to left4me.
ensure_user left4me-build 981 /nonexistent

# --- directories -----------------------------------------------------------
ensure_dir /opt/left4me root root 0755
ensure_dir /opt/left4me/bin root root 0755
ensure_dir /usr/local/libexec/left4me root root 0755
ensure_dir /usr/local/lib/systemd/system root root 0755
ensure_dir /etc/left4me root root 0755
ensure_dir /var/lib/left4me left4me left4me 0750
for sub in installation steam overlays workshop_cache instances runtime tmp; do
    ensure_dir "/var/lib/left4me/$sub" left4me left4me 0750
done
# Backups hold every secret of the panel: only the service user reads them.
ensure_dir /var/backups/left4me left4me left4me 0700
# The database and its WAL sidecars must stay writable by the service user
# (a root-owned -wal/-shm after an ad-hoc root sqlite3 session breaks writes).
for db in /var/lib/left4me/left4me.db /var/lib/left4me/left4me.db-wal /var/lib/left4me/left4me.db-shm; do
    [ -e "$db" ] && ensure_owner_mode "$db" left4me left4me 0640
done

# --- binaries --------------------------------------------------------------
for bin in $OPT_BINS; do
    ensure_file "$BIN_DIR/$bin" "/opt/left4me/bin/$bin" root root 0755 || true
done
for bin in $LIBEXEC_BINS; do
    ensure_file "$BIN_DIR/$bin" "/usr/local/libexec/left4me/$bin" root root 0755 || true
done
ensure_file "$BIN_DIR/left4me-admin" /usr/local/sbin/left4me root root 0755 || true

# --- units, drop-ins -------------------------------------------------------
while IFS= read -r -d '' src; do
    rel=${src#"$FILES"}
    ensure_file "$src" "$rel" root root 0644 && UNITS_CHANGED=1
done < <(find "$FILES/usr/local/lib/systemd/system" "$FILES/etc/systemd/system" -type f -print0 | sort -z)
ensure_dir /etc/systemd/system/l4d2-game.slice.d root root 0755
ensure_dir /etc/systemd/system/l4d2-build.slice.d root root 0755
ensure_dir /etc/systemd/system/system.slice.d root root 0755
if [ "$SYSTEM_CPUS" = none ]; then
    for f in l4d2-game.slice.d/50-cpus.conf l4d2-build.slice.d/50-cpus.conf system.slice.d/50-left4me-cpus.conf; do
        [ -e "/etc/systemd/system/$f" ] && UNITS_CHANGED=1
        ensure_absent "/etc/systemd/system/$f"
    done
else
    header="# Written by left4me deploy/install.sh --system-cpus $SYSTEM_CPUS"
    printf '%s\n[Slice]\nAllowedCPUs=%s\n' "$header" "$GAME_CPUS" |
        ensure_content /etc/systemd/system/l4d2-game.slice.d/50-cpus.conf root root 0644 && UNITS_CHANGED=1
    printf '%s\n[Slice]\nAllowedCPUs=%s\n' "$header" "$SYSTEM_CPUS" |
        ensure_content /etc/systemd/system/l4d2-build.slice.d/50-cpus.conf root root 0644 && UNITS_CHANGED=1
    printf '%s\n[Slice]\nAllowedCPUs=%s\n' "$header" "$SYSTEM_CPUS" |
        ensure_content /etc/systemd/system/system.slice.d/50-left4me-cpus.conf root root 0644 && UNITS_CHANGED=1
fi

# --- sudoers (validated before it goes live) ----------------------------------
visudo -cqf "$FILES/etc/sudoers.d/left4me" || die "deploy sudoers file fails visudo -c"
ensure_dir /etc/sudoers.d root root 0755
ensure_file "$FILES/etc/sudoers.d/left4me" /etc/sudoers.d/left4me root root 0440 || true
visudo -cq || die "sudoers configuration invalid after install (visudo -c)"

# --- sysctl, env files -----------------------------------------------------
ensure_file "$FILES/etc/sysctl.d/99-left4me.conf" /etc/sysctl.d/99-left4me.conf root root 0644 && SYSCTL_CHANGED=1
ensure_file "$FILES/etc/left4me/sandbox-resolv.conf" /etc/left4me/sandbox-resolv.conf root root 0644 || true
# Env files are the operator's: created from the templates once, never overwritten.
if [ ! -e /etc/left4me/host.env ]; then
    install -o root -g root -m 0644 "$DEPLOY_DIR/templates/host.env" /etc/left4me/host.env
    changed "created /etc/left4me/host.env"
fi
ensure_owner_mode /etc/left4me/host.env root root 0644
if [ ! -e /etc/left4me/web.env ]; then
    secret=$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n')
    sed "s/^SECRET_KEY=\$/SECRET_KEY=$secret/" "$DEPLOY_DIR/templates/web.env" |
        install -o root -g left4me -m 0640 /dev/stdin /etc/left4me/web.env
    changed "created /etc/left4me/web.env (with a generated SECRET_KEY)"
fi
ensure_owner_mode /etc/left4me/web.env root left4me 0640
if [ -n "$PUBLIC_IP" ] && ! grep -qx "LOG_LISTENER_ADDR=$PUBLIC_IP:28000" /etc/left4me/web.env; then
    sed -i "s/^LOG_LISTENER_ADDR=.*/LOG_LISTENER_ADDR=$PUBLIC_IP:28000/" /etc/left4me/web.env
    grep -qx "LOG_LISTENER_ADDR=$PUBLIC_IP:28000" /etc/left4me/web.env ||
        echo "LOG_LISTENER_ADDR=$PUBLIC_IP:28000" >>/etc/left4me/web.env
    changed "LOG_LISTENER_ADDR=$PUBLIC_IP:28000 in /etc/left4me/web.env"
fi

# Client (P+10000) and SourceTV (P+20000) ports of the game port range:
# reserved, so the kernel never hands them out as ephemeral ports.
range_var() { sed -n "s/^$1=//p" /etc/left4me/host.env | tail -1; }
PORT_START=$(range_var LEFT4ME_PORT_RANGE_START); PORT_START=${PORT_START:-27000}
PORT_END=$(range_var LEFT4ME_PORT_RANGE_END); PORT_END=${PORT_END:-27999}
[[ "$PORT_START" =~ ^[0-9]+$ && "$PORT_END" =~ ^[0-9]+$ && "$PORT_START" -le "$PORT_END" && "$PORT_END" -le 45535 ]] ||
    die "LEFT4ME_PORT_RANGE_START/_END in /etc/left4me/host.env must be a range ending at 45535 or below (got $PORT_START-$PORT_END)"
printf '# Written by left4me deploy/install.sh from the game port range %s-%s.\nnet.ipv4.ip_local_reserved_ports = %s-%s,%s-%s\n' \
    "$PORT_START" "$PORT_END" $((PORT_START + 10000)) $((PORT_END + 10000)) $((PORT_START + 20000)) $((PORT_END + 20000)) |
    ensure_content /etc/sysctl.d/99-left4me-ports.conf root root 0644 && SYSCTL_CHANGED=1

# --- activate --------------------------------------------------------------
if [ -d /run/systemd/system ]; then
    if [ "$UNITS_CHANGED" = 1 ]; then
        systemctl daemon-reload; echo "ran: systemctl daemon-reload"
    fi
    if [ "$ENABLE" = 1 ]; then
        for unit in left4me-web.service left4me-workshop-refresh.timer left4me-update-check.timer left4me-backup.timer; do
            if [ "$(systemctl is-enabled "$unit" 2>/dev/null)" != enabled ]; then
                systemctl enable --quiet "$unit"; changed "enabled $unit"
            fi
        done
    fi
else
    echo "note: systemd is not running; skipped daemon-reload"
fi
if [ "$SYSCTL_CHANGED" = 1 ]; then
    # Failing keys (e.g. a read-only /proc/sys in a container) apply at next boot.
    for conf in /etc/sysctl.d/99-left4me.conf /etc/sysctl.d/99-left4me-ports.conf; do
        sysctl -q -p "$conf" ||
            echo "warning: some settings of $conf could not be applied now; they apply at boot" >&2
    done
fi

echo "install.sh: done, $CHANGES changes"

#!/bin/bash
# left4me system test under real systemd 257 (SPEC §10.2, issue 3).
#
#   deploy/systest/run.sh [--bin-dir DIR]     (as root; default: cargo build --workspace, target/debug)
#
# Boots a Debian 13 (trixie) root filesystem (debootstrap, cached in
# /var/cache/left4me-systest) with systemd as PID 1 in its own PID, mount,
# UTS, IPC, network and cgroup namespaces (unshare + chroot), installs deploy/
# with its own install script (twice: the second run must change nothing),
# then runs the server lifecycle as the left4me user through sudo and the
# helpers, the script sandbox checks and prints `systemd-analyze security`.
# Network: only the container's loopback and a veth to a test-host network
# namespace on 192.0.2.0/24 (documentation range) that this script creates.
# Always tears down; prints a PASS/FAIL summary; exits non-zero on failure.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=/var/cache/left4me-systest
MIRROR=http://deb.debian.org/debian
INCLUDE="systemd,systemd-sysv,dbus,sudo,mount,util-linux,iproute2,procps,socat"
BIN_DIR=""
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) BIN_DIR=$2; shift 2 ;;
        *) echo "usage: $0 [--bin-dir DIR]" >&2; exit 2 ;;
    esac
done

START=$(date +%s)
PASSES=()
FAILS=()
pass() { PASSES+=("$1"); echo "PASS: $1"; }
fail() { FAILS+=("$1"); echo "FAIL: $1" >&2; }
check() { # NAME COMMAND...
    local name=$1; shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}
die() { fail "$*"; exit 1; }
elapsed() { echo "$(( $(date +%s) - START ))s"; }

[ "$(id -u)" = 0 ] || { echo "run.sh: must run as root" >&2; exit 2; }
for tool in debootstrap unshare nsenter ip python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: missing $tool (apt-get install debootstrap util-linux iproute2 python3)" >&2; exit 2; }
done

WORK=$(mktemp -d /var/tmp/left4me-systest.XXXXXX)
ROOTFS=$WORK/rootfs
NETNS=l4m-systest-$$
CG_BASE=$(findmnt -n -t cgroup2 -o TARGET | head -1)
CGROUP=$CG_BASE/left4me-systest-$$
UNSHARE_PID=""
CPID=""

summary() {
    echo
    echo "================ left4me system test summary ($(elapsed)) ================"
    for p in "${PASSES[@]}"; do echo "  PASS  $p"; done
    for f in "${FAILS[@]}"; do echo "  FAIL  $f"; done
    if [ ${#FAILS[@]} -eq 0 ] && [ ${#PASSES[@]} -gt 0 ]; then
        echo "RESULT: PASS (${#PASSES[@]} checks)"
        return 0
    fi
    echo "RESULT: FAIL (${#FAILS[@]} failed, ${#PASSES[@]} passed); logs kept in $WORK/*.log"
    return 1
}

stop_container() {
    [ -n "$UNSHARE_PID" ] || return 0
    if kill -0 "$UNSHARE_PID" 2>/dev/null; then
        [ -n "$CPID" ] && kill -s SIGRTMIN+4 "$CPID" 2>/dev/null # systemd: poweroff
        for _ in $(seq 1 30); do kill -0 "$UNSHARE_PID" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$UNSHARE_PID" 2>/dev/null; then
            # Killing PID 1 of the namespace kills every process in it.
            [ -n "$CPID" ] && kill -9 "$CPID" 2>/dev/null
            wait "$UNSHARE_PID" 2>/dev/null
        fi
    fi
    wait "$UNSHARE_PID" 2>/dev/null
    UNSHARE_PID=""
    CPID=""
}

teardown() {
    local rc=$?
    stop_container
    ip netns del "$NETNS" 2>/dev/null
    if [ -d "$CGROUP" ]; then
        find "$CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null
    fi
    summary
    local ok=$?
    if [ $ok -eq 0 ]; then rm -rf "$WORK"; fi
    [ $ok -eq 0 ] && [ $rc -eq 0 ] && exit 0
    exit 1
}
trap teardown EXIT
trap 'exit 130' INT TERM

# --- binaries ------------------------------------------------------------------
if [ -z "$BIN_DIR" ]; then
    echo "== cargo build --workspace"
    (cd "$REPO" && cargo build --workspace --bins -q) || die "cargo build --workspace"
    BIN_DIR=$REPO/target/debug
fi
NEEDED="left4me l4d2ctl left4me-admin left4me-overlay left4me-systemctl left4me-journalctl left4me-script-sandbox srcds-sim steamcmd-sim"
for bin in $NEEDED; do
    [ -x "$BIN_DIR/$bin" ] || die "binary $BIN_DIR/$bin missing"
done

# --- root filesystem (cached) --------------------------------------------------------
KEY=$(printf 'trixie minbase %s' "$INCLUDE" | sha256sum | cut -c1-12)
CACHED=$CACHE/rootfs-$KEY
if [ ! -d "$CACHED" ]; then
    echo "== debootstrap trixie into $CACHED (first run only)"
    mkdir -p "$CACHE"
    rm -rf "$CACHED.partial"
    timeout 900 debootstrap --variant=minbase --include="$INCLUDE" trixie "$CACHED.partial" "$MIRROR" \
        >"$CACHE/debootstrap-$KEY.log" 2>&1 || die "debootstrap failed, see $CACHE/debootstrap-$KEY.log"
    mv "$CACHED.partial" "$CACHED"
fi
echo "== copy root filesystem ($(elapsed))"
cp -a "$CACHED" "$ROOTFS" || die "copy rootfs"
mkdir -p "$ROOTFS/root/deploy" "$ROOTFS/root/bin"
cp -a "$REPO/deploy/." "$ROOTFS/root/deploy/"
for bin in $NEEDED; do cp "$BIN_DIR/$bin" "$ROOTFS/root/bin/"; done
echo left4me-systest >"$ROOTFS/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 left4me-systest\n' >"$ROOTFS/etc/hosts"
: >"$ROOTFS/etc/machine-id"
# Test-only drop-ins for what this environment cannot honour (see their comments).
if [ -d "$REPO/deploy/systest/dropins" ]; then
    cp -a "$REPO/deploy/systest/dropins/." "$ROOTFS/etc/systemd/system/"
fi

# --- boot ----------------------------------------------------------------------------
mkdir -p "$CGROUP" || die "create cgroup $CGROUP"
boot() {
    local log=$1
    # The child moves itself into a fresh cgroup (so the container's systemd
    # owns a whole subtree), then unshares; the mount setup runs as PID 1 of
    # the new PID namespace and execs systemd in the chroot.
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin ROOTFS="$ROOTFS" CGROUP="$CGROUP" \
        /bin/sh -c 'echo $$ > "$CGROUP/cgroup.procs" && exec unshare --fork --pid --mount --uts --ipc --net --cgroup --propagation private -- /bin/sh -ec "
            R=\$ROOTFS
            mount --bind \$R \$R
            mount -t proc proc \$R/proc
            # host sysctls stay untouched: /proc/sys read-only, as in other containers
            mount --bind \$R/proc/sys \$R/proc/sys && mount -o remount,bind,ro \$R/proc/sys
            mount -t sysfs -o ro sysfs \$R/sys
            # this host is cgroup v1 hybrid; systemd 257 needs the unified hierarchy
            mount -t cgroup2 cgroup2 \$R/sys/fs/cgroup
            mount -t tmpfs -o mode=755,nosuid tmpfs \$R/dev
            for n in null zero full random urandom tty; do touch \$R/dev/\$n; mount --bind /dev/\$n \$R/dev/\$n; done
            mkdir \$R/dev/pts \$R/dev/shm
            mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts \$R/dev/pts
            ln -s pts/ptmx \$R/dev/ptmx
            hostname left4me-systest
            # pivot_root rather than a bare chroot: the kernel refuses new user
            # namespaces (idmapped mounts, PrivateUsers=) to chrooted processes.
            mkdir -p \$R/.oldroot
            cd \$R && pivot_root . .oldroot && cd /
            umount -l /.oldroot && rmdir /.oldroot
            exec /usr/bin/env -i container=left4me-systest /lib/systemd/systemd --log-target=console
        "' >"$log" 2>&1 &
    UNSHARE_PID=$!
    CPID=""
    for _ in $(seq 1 50); do
        CPID=$(cat /proc/"$UNSHARE_PID"/task/*/children 2>/dev/null | awk '{print $1}')
        [ -n "$CPID" ] && [ "$(cat /proc/"$CPID"/comm 2>/dev/null)" = systemd ] && break
        sleep 0.2
    done
    [ -n "$CPID" ] || return 1
    # Wait (bounded) until systemd finished booting.
    local state=""
    for _ in $(seq 1 120); do
        state=$(in_ct systemctl is-system-running 2>/dev/null)
        case "$state" in running|degraded) break ;; esac
        sleep 0.5
    done
    echo "   system state: $state"
    [ "$state" = degraded ] && in_ct systemctl --failed --no-legend --plain
    case "$state" in running|degraded) return 0 ;; *) return 1 ;; esac
}
in_ct() { # run a command as root in the container
    nsenter -t "$CPID" -m -p -u -i -n -C -r -w -- /usr/bin/env -i \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}
as_l4m() { # run a shell snippet as the left4me user with host.env loaded
    in_ct runuser -u left4me -- /bin/bash -c "set -a; . /etc/left4me/host.env; set +a; PATH=/opt/left4me/bin:\$PATH; cd /var/lib/left4me; $1"
}
in_ct_net() { # run a host tool inside the container's network namespace only
    nsenter -t "$CPID" -n -- "$@"
}

echo "== boot systemd ($(elapsed))"
boot "$WORK/boot1.log" || die "systemd did not boot (see $WORK/boot1.log)"
pass "systemd $(in_ct systemctl --version | head -1 | awk '{print $2}') booted as PID 1 ($(elapsed))"

# --- install (twice) -----------------------------------------------------------------
echo "== install.sh ($(elapsed))"
manifest() {
    in_ct /bin/sh -c 'find /opt/left4me /usr/local/libexec/left4me /usr/local/sbin /usr/local/lib/systemd/system \
        /etc/systemd/system /etc/left4me /etc/sudoers.d /etc/sysctl.d /var/lib/left4me -xdev \
        -printf "%p %U:%G %m %s %T@\n" | sort; getent passwd left4me left4me-build; getent group left4me left4me-build'
}
in_ct bash /root/deploy/install.sh --bin-dir /root/bin --system-cpus 0 --enable >"$WORK/install1.log" 2>&1
check "install.sh first run" test $? -eq 0
cat "$WORK/install1.log"
before=$(manifest)
in_ct bash /root/deploy/install.sh --bin-dir /root/bin --system-cpus 0 --enable >"$WORK/install2.log" 2>&1
rc=$?
after=$(manifest)
check "install.sh second run succeeds" test $rc -eq 0
check "install.sh second run reports 0 changes" grep -q "done, 0 changes" "$WORK/install2.log"
check "install.sh second run leaves every file, owner, mode and mtime unchanged" test "$before" = "$after"
check "left4me user is uid/gid 980" test "$(in_ct id -u left4me):$(in_ct id -g left4me)" = "980:980"
check "sudoers passes visudo -c" in_ct visudo -cq
check "sudo -l for left4me lists only the helpers" \
    bash -c "[ \"\$(nsenter -t $CPID -m -p -u -i -n -C -r -w -- runuser -u left4me -- sudo -n -l 2>&1 | grep -c '/usr/local/libexec/left4me/')\" -ge 1 ]"
check "install refuses a CPU split that leaves no game CPU" \
    bash -c "! nsenter -t $CPID -m -p -u -i -n -C -r -w -- bash /root/deploy/install.sh --bin-dir /root/bin --system-cpus 0-$(( $(nproc) - 1 )) >/dev/null 2>&1"

# --- lifecycle as left4me ------------------------------------------------------------
echo "== lifecycle ($(elapsed))"
in_ct install -o left4me -g left4me -m 0755 /root/bin/steamcmd-sim /var/lib/left4me/steam/steamcmd.sh
in_ct install -o left4me -g left4me -m 0755 /root/bin/srcds-sim /var/lib/left4me/steam/srcds-sim
as_l4m "SRCDS_SIM_BIN=/var/lib/left4me/steam/srcds-sim STEAMCMD_SIM_CONTENT_MB=1 l4d2ctl install" >"$WORK/l4d2ctl-install.log" 2>&1
check "l4d2ctl install (steamcmd-sim) as left4me" test $? -eq 0
as_l4m "mkdir -p overlays/base/left4dead2/cfg && echo 'echo base-overlay' > overlays/base/left4dead2/cfg/base.cfg && cat > tmp/srv1.yaml <<'EOF'
port: 27115
overlays: [overlays/base]
args: [\"+map\", \"c1m1_hotel\"]
config: |
  hostname left4me-systest
  rcon_password systest-rcon
EOF
l4d2ctl initialize srv1 -f tmp/srv1.yaml && l4d2ctl start srv1" >"$WORK/start.log" 2>&1
check "l4d2ctl initialize + start as left4me" test $? -eq 0
wait_active() { # UNIT: bounded wait for active
    for _ in $(seq 1 40); do
        [ "$(in_ct systemctl is-active "$1")" = active ] && return 0
        sleep 0.25
    done
    return 1
}
check "left4me-server@srv1.service active" wait_active left4me-server@srv1.service
check "overlay mounted in PID 1's mount namespace" in_ct findmnt -n -t overlay /var/lib/left4me/runtime/srv1/merged
check "unit enabled" test "$(in_ct systemctl is-enabled left4me-server@srv1.service)" = enabled

a2s_probe() { # PORT: A2S_INFO (with challenge) from the container's network namespace
    in_ct_net python3 - "$1" <<'PY'
import socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.0)
req = b"\xff\xff\xff\xffTSource Engine Query\x00"
for attempt in range(20):
    try:
        s.sendto(req, ("127.0.0.1", port)); data, _ = s.recvfrom(4096)
        if data[4:5] == b"A":
            s.sendto(req + data[5:9], ("127.0.0.1", port)); data, _ = s.recvfrom(4096)
        if data[4:5] == b"I":
            print("A2S_INFO name:", data[6:].split(b"\x00")[0].decode(errors="replace")); sys.exit(0)
    except OSError:
        pass
sys.exit(1)
PY
}
check "srcds-sim answers A2S_INFO on port 27115" a2s_probe 27115
as_l4m "l4d2ctl logs srv1 --lines 20 --no-follow" >"$WORK/logs.log" 2>&1
check "l4d2ctl logs through left4me-journalctl" test -s "$WORK/logs.log"
status_json=$(as_l4m "l4d2ctl status srv1 --json")
echo "   status: $status_json"
check "l4d2ctl status reports active" grep -q '"active_state": *"active"' <<<"$status_json"

rcon() { # PORT PASSWORD COMMAND: Source RCON from the container's network namespace
    in_ct_net python3 - "$@" <<'PY'
import socket, struct, sys
port, pw, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def pkt(i, t, body): b = struct.pack("<ii", i, t) + body.encode() + b"\x00\x00"; return struct.pack("<i", len(b)) + b
s = socket.create_connection(("127.0.0.1", port), timeout=3)
s.sendall(pkt(1, 3, pw)); s.recv(4096)
s.sendall(pkt(2, 2, cmd))
try: s.recv(4096)
except OSError: pass
PY
}
pid_before=$(in_ct systemctl show -P MainPID left4me-server@srv1.service)
rcon 27115 systest-rcon sim_crash >/dev/null 2>&1
restarted() {
    for _ in $(seq 1 60); do
        local n pid
        n=$(in_ct systemctl show -P NRestarts left4me-server@srv1.service)
        pid=$(in_ct systemctl show -P MainPID left4me-server@srv1.service)
        if [ "${n:-0}" -ge 1 ] && [ "$pid" != 0 ] && [ "$pid" != "$pid_before" ] &&
            [ "$(in_ct systemctl is-active left4me-server@srv1.service)" = active ]; then
            return 0
        fi
        sleep 0.25
    done
    return 1
}
check "crash (sim_crash) -> restarted by systemd" restarted
check "overlay intact after restart" in_ct findmnt -n -t overlay /var/lib/left4me/runtime/srv1/merged
check "A2S answers after restart" a2s_probe 27115

as_l4m "l4d2ctl stop srv1" >"$WORK/stop.log" 2>&1
check "l4d2ctl stop" test $? -eq 0
check "stop: overlay unmounted on the first try" bash -c "! nsenter -t $CPID -m -- findmnt -n /var/lib/left4me/runtime/srv1/merged >/dev/null"
check "stop: work/work removed" bash -c "! nsenter -t $CPID -m -r -- test -e /var/lib/left4me/runtime/srv1/work/work"
check "stop: unit inactive and disabled" test "$(in_ct systemctl is-enabled left4me-server@srv1.service 2>/dev/null)" != enabled

as_l4m "l4d2ctl start srv1" >>"$WORK/start.log" 2>&1
check "start again" wait_active left4me-server@srv1.service

# --- security scores (while the unit is loaded) -----------------------------------------
echo "== systemd-analyze security ($(elapsed))"
score() { in_ct systemd-analyze security --no-pager "$1" 2>/dev/null | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p'; }
GAME_SCORE=$(score left4me-server@srv1.service)
WEB_SCORE=$(score left4me-web.service)
echo "   left4me-server@srv1.service exposure: ${GAME_SCORE:-?} (target <= 1.3)"
echo "   left4me-web.service exposure:         ${WEB_SCORE:-?} (target <= 4.1)"
in_ct systemd-analyze security --no-pager left4me-server@srv1.service >"$WORK/security-game.log" 2>&1
in_ct systemd-analyze security --no-pager left4me-web.service >"$WORK/security-web.log" 2>&1
check "game unit exposure ${GAME_SCORE:-?} <= 1.3" awk -v s="${GAME_SCORE:-99}" 'BEGIN{exit !(s <= 1.3)}'
check "web unit exposure ${WEB_SCORE:-?} <= 4.1" awk -v s="${WEB_SCORE:-99}" 'BEGIN{exit !(s <= 4.1)}'

# --- reboot: the enabled unit comes back by itself ------------------------------------
echo "== reboot ($(elapsed))"
stop_container
boot "$WORK/boot2.log" || die "systemd did not boot again (see $WORK/boot2.log)"
check "after reboot: left4me-server@srv1.service active by itself" wait_active left4me-server@srv1.service
check "after reboot: overlay mounted" in_ct findmnt -n -t overlay /var/lib/left4me/runtime/srv1/merged
check "after reboot: A2S answers" a2s_probe 27115

as_l4m "l4d2ctl delete srv1" >"$WORK/delete.log" 2>&1
check "l4d2ctl delete" test $? -eq 0
check "delete: instance and runtime dirs gone" bash -c "! nsenter -t $CPID -m -r -- test -e /var/lib/left4me/instances/srv1 && ! nsenter -t $CPID -m -r -- test -e /var/lib/left4me/runtime/srv1"
check "delete of a missing instance succeeds" as_l4m "l4d2ctl delete srv1"

# --- script sandbox --------------------------------------------------------------------
echo "== script sandbox ($(elapsed))"
source "$REPO/deploy/systest/sandbox.sh"

exit 0

# Script sandbox checks of the system test; sourced by run.sh with the
# container running (uses its functions: in_ct, as_l4m, check, ...).

TESTHOST_PID=""
cleanup_testhost() { [ -n "$TESTHOST_PID" ] && kill "$TESTHOST_PID" 2>/dev/null; ip netns del "$NETNS" 2>/dev/null; }
trap 'cleanup_testhost; teardown' EXIT

# A test host on the documentation range 192.0.2.0/24, in its own network
# namespace, linked to the container by a veth pair. Nothing else is reachable.
ip netns add "$NETNS" || die "ip netns add"
ip link add "l4mh$$" type veth peer name "l4mc$$" || die "veth"
ip link set "l4mh$$" netns "$NETNS"
ip link set "l4mc$$" netns "$CPID"
ip -n "$NETNS" addr add 192.0.2.2/24 dev "l4mh$$"
ip -n "$NETNS" link set "l4mh$$" up
ip -n "$NETNS" link set lo up
in_ct ip addr add 192.0.2.1/24 dev "l4mc$$"
in_ct ip link set "l4mc$$" up
ip netns exec "$NETNS" python3 -c '
import socketserver
class H(socketserver.StreamRequestHandler):
    def handle(self): self.wfile.write(b"testhost-ok\n")
socketserver.TCPServer.allow_reuse_address = True
socketserver.TCPServer(("192.0.2.2", 8080), H).serve_forever()' &
TESTHOST_PID=$!
# A listener on the container's loopback and on an RFC1918 address.
in_ct ip addr add 10.99.0.1/32 dev lo
in_ct systemd-run --quiet --unit=systest-listener /usr/bin/socat TCP-LISTEN:18080,fork,reuseaddr SYSTEM:"echo local-ok"
probe_ct() { in_ct timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2; head -c 64 <&3" 2>/dev/null | grep -q "$3"; }
for _ in $(seq 1 20); do probe_ct 192.0.2.2 8080 testhost-ok && probe_ct 127.0.0.1 18080 local-ok && break; sleep 0.25; done
check "control: root outside the sandbox reaches 127.0.0.1:18080" probe_ct 127.0.0.1 18080 local-ok
check "control: root outside the sandbox reaches 10.99.0.1:18080" probe_ct 10.99.0.1 18080 local-ok
check "control: root outside the sandbox reaches test host 192.0.2.2:8080" probe_ct 192.0.2.2 8080 testhost-ok

as_l4m "mkdir -p overlays/42 && [ -e left4me.db ] || { echo 'SQLite format 3' > left4me.db; chmod 0640 left4me.db; }
cat > tmp/build.sh <<'SH'
set -u
echo built > /overlay/built.txt
mkdir -p /overlay/left4dead2/addons && echo vpk > /overlay/left4dead2/addons/a.vpk
probe() { timeout 3 bash -c \"exec 3<>/dev/tcp/\$1/\$2; head -c 64 <&3\" 2>/dev/null; }
if cat /var/lib/left4me/left4me.db >/dev/null 2>&1; then echo DB-READABLE; else echo db-unreadable; fi
if probe 127.0.0.1 18080 | grep -q local-ok; then echo LOOPBACK-REACHED; else echo loopback-blocked; fi
if probe 10.99.0.1 18080 | grep -q local-ok; then echo RFC1918-REACHED; else echo rfc1918-blocked; fi
if probe 192.0.2.2 8080 | grep -q testhost-ok; then echo testhost-reached; else echo TESTHOST-UNREACHABLE; fi
echo uid=\$(id -u)
SH"

sandbox_checks() { # LABEL LOG RC
    local label=$1 log=$2 rc=$3
    check "$label: build exits 0" test "$rc" -eq 0
    check "$label: files land owned by left4me" \
        test "$(in_ct stat -c %U /var/lib/left4me/overlays/42/built.txt /var/lib/left4me/overlays/42/left4dead2/addons/a.vpk | sort -u)" = left4me
    check "$label: runs as left4me-build" grep -qx "uid=981" "$log"
    check "$label: cannot read the database" grep -qx db-unreadable "$log"
    check "$label: cannot reach 127.0.0.1" grep -qx loopback-blocked "$log"
    check "$label: cannot reach RFC1918 10.99.0.1" grep -qx rfc1918-blocked "$log"
    check "$label: reaches the test host 192.0.2.2" grep -qx testhost-reached "$log"
}
as_l4m "sudo -n /usr/local/libexec/left4me/left4me-script-sandbox 42 /var/lib/left4me/tmp/build.sh" >"$WORK/sandbox1.log" 2>&1
sandbox_checks "sandbox (sudo from a login shell)" "$WORK/sandbox1.log" $?
cat "$WORK/sandbox1.log"
in_ct rm -rf /var/lib/left4me/overlays/42/built.txt /var/lib/left4me/overlays/42/left4dead2
# As the web app does it: from a unit with a private mount namespace and the web hardening.
in_ct systemd-run --quiet --wait --pipe --collect -p User=left4me -p PrivateTmp=yes -p ProtectSystem=strict \
    -p ProtectProc=invisible -p ReadWritePaths=/var/lib/left4me -p ReadWritePaths=-/run/sudo \
    /usr/bin/sudo -n /usr/local/libexec/left4me/left4me-script-sandbox 42 /var/lib/left4me/tmp/build.sh \
    >"$WORK/sandbox2.log" 2>&1
sandbox_checks "sandbox (from a hardened unit, like the web app)" "$WORK/sandbox2.log" $?
cat "$WORK/sandbox2.log"

# RuntimeMaxSec: a short test-only override (production: 3600 s).
in_ct mkdir -p /etc/systemd/system/left4me-script-.service.d
in_ct /bin/sh -c 'printf "# systest only: prove the build is killed at RuntimeMaxSec without waiting an hour\n[Service]\nRuntimeMaxSec=3s\n" > /etc/systemd/system/left4me-script-.service.d/50-systest-runtime.conf'
in_ct systemctl daemon-reload
as_l4m "printf 'echo started\nsleep 60\necho NOT-KILLED\n' > tmp/slow.sh"
t0=$(date +%s)
as_l4m "sudo -n /usr/local/libexec/left4me/left4me-script-sandbox 42 /var/lib/left4me/tmp/slow.sh" >"$WORK/sandbox-timeout.log" 2>&1
rc=$?
took=$(( $(date +%s) - t0 ))
check "sandbox: killed at RuntimeMaxSec (exit $rc after ${took}s)" test "$rc" -ne 0 -a "$took" -ge 2 -a "$took" -lt 30
check "sandbox: the killed script did not finish" bash -c "grep -q started '$WORK/sandbox-timeout.log' && ! grep -q NOT-KILLED '$WORK/sandbox-timeout.log'"
in_ct rm -f /etc/systemd/system/left4me-script-.service.d/50-systest-runtime.conf
in_ct systemctl daemon-reload

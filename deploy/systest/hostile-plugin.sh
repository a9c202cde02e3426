#!/bin/bash
# A hostile "native plugin": run by the attacker's game server (srcds-sim
# starts addons/sim-plugins/* the way srcds loads .so plugins, with the
# game's rights) and trying every way to another tenant's server or the
# panel. Prints "PROBE PASS <what>" when the attack was blocked and
# "PROBE FAIL <what>: <how it got through>" when it was not.
# @VICTIM_NAME@, @VICTIM_PORT@, @VICTIM_OVERLAY@ are filled in by the test.
set -u
ROOT=/var/lib/left4me
VICTIM=@VICTIM_NAME@
VICTIM_PORT=@VICTIM_PORT@
VICTIM_OVERLAY=@VICTIM_OVERLAY@
# srcds runs from merged/ (srcds_run cds to its own directory).
SELF=$(sed -n 's#^.*/runtime/\([^/]*\)/merged.*$#\1#p' <<<"$PWD")
GAME="$ROOT/runtime/$SELF/merged/left4dead2"

blocked() { # WHAT COMMAND...: the command must fail
    local what=$1; shift
    if out=$("$@" 2>&1); then
        echo "PROBE FAIL $what: $(head -c 200 <<<"$out")"
    else
        echo "PROBE PASS $what"
    fi
}

echo "PROBE START as uid $(id -u) in $PWD (instance $SELF)"

# Second start (after the restart the test asks for): the links planted on
# the first start must have been replaced by the panel's own file, which
# this server reads; nothing is probed or planted again.
cfg="$GAME/cfg"
if [ -e "$cfg/.probe-planted" ]; then
    if [ ! -L "$cfg/server.cfg" ] && grep -q "managed by left4me" "$cfg/server.cfg" 2>/dev/null; then
        echo "PROBE PASS after the restart its server.cfg is the panel's file, not the planted link"
    else
        echo "PROBE FAIL after the restart its server.cfg is the panel's file: $(ls -l "$cfg/server.cfg" 2>&1)"
    fi
    echo "PROBE RESTARTED"
    exit 0
fi
uid=$(id -u)
if [ "$uid" != 0 ] && [ "$uid" != 980 ]; then echo "PROBE PASS runs as its own user (uid $uid)"; else echo "PROBE FAIL runs as its own user: uid $uid"; fi

seen=$(ls -A "$ROOT" | sort | tr '\n' ' ')
extra=$(ls -A "$ROOT" | grep -vxE '\.steam|runtime|steam|workshop_cache')
if [ -z "$extra" ]; then echo "PROBE PASS sees only its own view of the data root ($seen)"; else echo "PROBE FAIL sees only its own view of the data root: $seen"; fi
others=$(ls -A "$ROOT/runtime" | grep -vx "$SELF")
if [ -z "$others" ]; then echo "PROBE PASS sees no other instance under runtime/"; else echo "PROBE FAIL sees no other instance under runtime/: $others"; fi

blocked "read the victim's instance server.cfg" cat "$ROOT/instances/$VICTIM/server.cfg"
blocked "read the victim's staged server.cfg (rcon_password)" cat "$ROOT/runtime/$VICTIM/upper/left4dead2/cfg/server.cfg"
blocked "read the victim's game files through runtime/" ls "$ROOT/runtime/$VICTIM/merged"
blocked "read the panel database" cat "$ROOT/left4me.db"
blocked "read the panel's configuration" cat /etc/left4me/web.env
blocked "list other tenants' overlays" ls "$ROOT/overlays"
blocked "read the victim's overlay" cat "$ROOT/overlays/$VICTIM_OVERLAY/left4dead2/cfg/built.cfg"
blocked "write the shared installation" touch "$ROOT/installation/srcds_run"
blocked "write the workshop cache" touch "$ROOT/workshop_cache/planted"
blocked "write the Steam client libraries" touch "$ROOT/steam/linux32/planted"
blocked "write the data root itself" touch "$ROOT/planted"
blocked "read the spec files in tmp/" ls "$ROOT/tmp"

if [ "$(cat /proc/1/comm)" != systemd ]; then echo "PROBE PASS has its own PID namespace (PID 1 is $(cat /proc/1/comm))"; else echo "PROBE FAIL has its own PID namespace: PID 1 is systemd"; fi
procs=$(for p in /proc/[0-9]*; do cat "$p/comm" 2>/dev/null; done | sort | uniq -c | tr '\n' ' ')
if ! grep -q "left4me\|systemd\|sudo" <<<"$procs"; then echo "PROBE PASS sees no process outside its own server ($procs)"; else echo "PROBE FAIL sees no process outside its own server: $procs"; fi

# Ports: only its own may be bound (SocketBindAllow=), not the victim's,
# not the panel's, not any other.
for spec in "UDP-LISTEN:$VICTIM_PORT" "TCP-LISTEN:$VICTIM_PORT" "UDP-LISTEN:28001" "TCP-LISTEN:8001" "UDP-LISTEN:$((VICTIM_PORT + 10000))"; do
    out=$(timeout 2 socat -u "$spec" /dev/null 2>&1); rc=$?
    if [ "$rc" = 124 ]; then
        echo "PROBE FAIL bind $spec: it listened"
    elif grep -q "Operation not permitted" <<<"$out"; then
        echo "PROBE PASS bind $spec refused (Operation not permitted)"
    else
        echo "PROBE FAIL bind $spec refused by the kernel's rule: $(head -c 160 <<<"$out")"
    fi
done

blocked "gain root through sudo" sudo -n true
blocked "mount a filesystem" mount -t tmpfs planted /tmp
blocked "create a user namespace" unshare --user --map-root-user true
blocked "read the kernel log" dmesg

# The staging attack: links planted in its own writable layer, pointing at
# another tenant's file, for the panel to write through on the next start.
mkdir -p "$cfg"
target="$ROOT/overlays/$VICTIM_OVERLAY/left4dead2/cfg/built.cfg"
ln -sfn "$target" "$cfg/server.cfg" && ln -sfn "$target" "$cfg/.server.cfg.l4d2ctl-tmp" &&
    touch "$cfg/.probe-planted" && echo "PROBE PLANTED links in its upper layer to $target"
echo "PROBE DONE"

#!/usr/bin/env python3
"""Drives the deployed left4me web app the way an operator does: over HTTP
(cookies, CSRF tokens, forms, server-sent events), plus A2S and the game's
own ports on real sockets. Run by run.sh inside the container's network
namespace, one phase at a time (run.sh reboots, kills and inspects the
container between phases); state between phases lives in a JSON file.

Every check prints "PASS: <what>" or "FAIL: <what>"; run.sh collects them.
Standard library only: the test machine has python3 and nothing else.
"""

import http.client
import json
import os
import re
import socket
import statistics
import concurrent.futures
import sys
import time
import urllib.parse

BASE_HOST, BASE_PORT = "127.0.0.1", 8000
FAILS = 0


def check(name, ok, detail=""):
    global FAILS
    if ok:
        print(f"PASS: {name}", flush=True)
    else:
        FAILS += 1
        detail = " | ".join(str(detail).splitlines()) if detail else ""
        print(f"FAIL: {name}" + (f" ({detail[:1500]})" if detail else ""), flush=True)
    return ok


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def location(self):
        return self.headers.get("location", "")


class Browserless:
    """An HTTP client that keeps the session cookie and the page's CSRF
    token, and never follows redirects (checks see what the server said)."""

    def __init__(self):
        self.cookie = None
        self.csrf = None

    def request(self, method, path, fields=None, timeout=30):
        conn = http.client.HTTPConnection(BASE_HOST, BASE_PORT, timeout=timeout)
        headers = {}
        body = None
        if self.cookie:
            headers["Cookie"] = f"left4me_session={self.cookie}"
        if fields is not None:
            pairs = list(fields.items()) if isinstance(fields, dict) else list(fields)
            if self.csrf and not any(k == "csrf_token" for k, _ in pairs):
                pairs.append(("csrf_token", self.csrf))
            body = urllib.parse.urlencode(pairs)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        res = conn.getresponse()
        text = res.read().decode("utf-8", "replace")
        hdrs = {k.lower(): v for k, v in res.getheaders()}
        for k, v in res.getheaders():
            if k.lower() == "set-cookie" and v.startswith("left4me_session="):
                token = v.split(";", 1)[0].split("=", 1)[1]
                self.cookie = token or None
        m = re.search(r'name="csrf_token" value="([^"]+)"', text)
        if m:
            self.csrf = m.group(1)
        conn.close()
        return Response(res.status, hdrs, text)

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, fields=()):
        return self.request("POST", path, fields)

    def login(self, user, password):
        self.get("/login")
        r = self.post("/login", {"username": user, "password": password})
        if r.status == 303:
            self.get("/servers")
        return r


def page_error(body):
    """The message a refused form or an error page shows."""
    for pattern in (r'class="field-error"[^>]*>(.*?)</p>', r'class="error"[^>]*>(.*?)</', r"<h1>(.*?)</h1>\s*<p>(.*?)</p>"):
        m = re.search(pattern, body, re.S)
        if m:
            return html_unescape(" ".join(m.groups()))
    return body[:200]


def flash_job(page):
    m = re.search(r"job #(\d+)", page)
    return int(m.group(1)) if m else None


def job_page(c, job):
    return c.get(f"/jobs/{job}").body


def wait_job(c, job, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        page = job_page(c, job)
        m = re.search(r'id="job-state" class="badge state-(\w+)"', page)
        if m and m.group(1) in ("succeeded", "failed"):
            return m.group(1), page
        time.sleep(0.3)
    return "timeout", job_page(c, job)


def job_log(page):
    return [
        html_unescape(l)
        for l in re.findall(r'<div class="l s-\w+">(.*?)</div>', page, re.S)
    ]


def html_unescape(s):
    import html

    return html.unescape(s)


def a2s_info(port, timeout=1.0, attempts=20, host="127.0.0.1"):
    """A2S_INFO with the challenge round trip (Valve's server query protocol)."""
    req = b"\xff\xff\xff\xffTSource Engine Query\x00"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        for _ in range(attempts):
            try:
                s.sendto(req, (host, port))
                data, _ = s.recvfrom(4096)
                if data[4:5] == b"A":
                    s.sendto(req + data[5:9], (host, port))
                    data, _ = s.recvfrom(4096)
                if data[4:5] == b"I":
                    fields = data[6:].split(b"\x00")
                    return {"name": fields[0].decode("utf-8", "replace"), "map": fields[1].decode()}
            except OSError:
                time.sleep(0.25)
        return None
    finally:
        s.close()


def sse_until(c, path, predicate, timeout=30):
    """Reads a server-sent event stream until `predicate(event, data)`."""
    conn = http.client.HTTPConnection(BASE_HOST, BASE_PORT, timeout=timeout)
    headers = {"Accept": "text/event-stream"}
    if c.cookie:
        headers["Cookie"] = f"left4me_session={c.cookie}"
    conn.request("GET", path, headers=headers)
    res = conn.getresponse()
    if res.status != 200:
        return None, f"HTTP {res.status}"
    deadline = time.time() + timeout
    event, data, seen = "message", [], []
    try:
        while time.time() < deadline:
            line = res.fp.readline()
            if not line:
                break
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            if line == "":
                text = "\n".join(data)
                seen.append((event, text[:300]))
                if predicate(event, text):
                    return text, None
                event, data = "message", []
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" ") if line[5:6] == " " else line[5:])
    except (socket.timeout, TimeoutError):
        pass
    finally:
        conn.close()
    return None, f"last frames: {seen[-3:]}"


def server_action(c, sid, action):
    r = c.post(f"/servers/{sid}/{action}")
    if r.status != 303:
        return None, r
    page = c.get(r.location() or f"/servers/{sid}").body
    return flash_job(page), r


def create_overlay(c, name, kind, script="", refs=""):
    r = c.post("/overlays", {"name": name, "kind": kind, "description": "", "script": script, "refs": refs})
    m = re.match(r"/overlays/(\d+)", r.location())
    return int(m.group(1)) if m else None, r


def build_overlay(c, oid, clean=False):
    fields = {"clean": "1"} if clean else {}
    r = c.post(f"/overlays/{oid}/build", fields)
    m = re.match(r"/jobs/(\d+)", r.location())
    return int(m.group(1)) if m else None


def create_blueprint(c, name, args, config, overlays=()):
    r = c.post("/blueprints", {"name": name, "args": args, "config": config})
    m = re.match(r"/blueprints/(\d+)", r.location())
    if not m:
        return None, r
    bp = int(m.group(1))
    for oid in overlays:
        c.post(f"/blueprints/{bp}/stack", {"op": "add", "overlay_id": str(oid)})
    return bp, r


def create_server(c, name, bp):
    r = c.post("/servers", {"name": name, "blueprint_id": str(bp)})
    m = re.match(r"/servers/(\d+)", r.location())
    return int(m.group(1)) if m else None, r


def server_port(c, sid):
    page = c.get(f"/servers/{sid}").body
    m = re.search(r"Port (\d{4,5})", page)
    return int(m.group(1)) if m else None


def wait_a2s(port, want_name=None, timeout=30):
    deadline = time.time() + timeout
    info = None
    while time.time() < deadline:
        info = a2s_info(port, attempts=2)
        if info and (want_name is None or info["name"] == want_name):
            return info
        time.sleep(0.5)
    return info


# ---------------------------------------------------------------- phases


def res_figure(body, key):
    m = re.search(r'id="res-%s-current">([^<]+)</strong>' % key, body)
    return html_unescape(m.group(1)) if m else None


def check_resources(admin, sid):
    """CPU and memory from the unit's cgroup (systemd's CPUUsageNSec and
    MemoryCurrent through l4d2ctl list), drawn on the server page."""
    # A host on cgroup v1 leaves the container's cgroup2 tree without the
    # memory controller (run.sh tells): systemd then has no MemoryCurrent.
    memcg = os.environ.get("SYSTEST_MEMORY_CONTROLLER") == "1"
    deadline, page = time.time() + 60, ""
    while time.time() < deadline:
        page = admin.get(f"/servers/{sid}").body
        if res_figure(page, "cpu") and (res_figure(page, "memory") or not memcg):
            break
        time.sleep(2)
    cpu, mem = res_figure(page, "cpu"), res_figure(page, "memory")
    check("the server page shows the game's CPU from its unit's cgroup",
          bool(cpu and re.fullmatch(r"\d+\.\d %", cpu)),
          (re.findall(r'<figure class="chart" id="res-cpu">.*?</figure>', page, re.S) or [page[-1500:]])[0])
    memory_block = (re.findall(r'<figure class="chart" id="res-memory">.*?</figure>', page, re.S) or [""])[0]
    if memcg:
        check("the server page shows the game's memory from its unit's cgroup",
              bool(mem and re.fullmatch(r"\d+(\.\d)? (B|KiB|MiB|GiB)", mem) and not mem.startswith("0 ")), mem)
    else:
        print("FIGURE: memory: this container's cgroup tree has no memory controller (a cgroup v1 host), so systemd reports no MemoryCurrent", flush=True)
        check("without a memory controller the page says it has no memory figure rather than a wrong one",
              mem is None and "not reported by this host" in memory_block, memory_block or page[-800:])
    charts = ("cpu", "memory") if memcg else ("cpu",)
    check("the sparklines are drawn (" + " and ".join(charts) + ")",
          all(re.search(r'<figure class="chart" id="res-%s">.*?<svg class="sparkline"' % k, page, re.S) for k in charts))
    dash = admin.get("/servers").body
    disk = res_figure(dash, "host-disk")
    check("the dashboard shows the host's free disk", bool(disk and " free of " in disk), disk)


def phase_main(st):
    admin = Browserless()
    r = admin.login("admin", st["admin_password"])
    check("the admin created with the admin wrapper logs in", r.status == 303, f"HTTP {r.status}")
    page = admin.get("/servers")
    check("logged in: the servers dashboard", page.status == 200 and "Servers" in page.body)

    r = admin.post("/admin/users", {"username": "mallory", "password": st["mallory_password"]})
    check("admin creates a second (non-admin) user", r.status == 303, f"HTTP {r.status}")

    # The game, through the install job (steamcmd under the web unit).
    r = admin.post("/admin/install")
    job = int(re.match(r"/jobs/(\d+)", r.location()).group(1)) if r.status == 303 else None
    state, page = wait_job(admin, job) if job else ("none", "")
    check("install job (steamcmd through the web app) succeeds", state == "succeeded", "\n".join(job_log(page)[-5:]))
    if job:
        got, why = sse_until(admin, f"/jobs/{job}/stream", lambda e, d: e == "progress")
        check("the install job's page shows steamcmd's progress as a bar",
              got is not None and got.startswith("<progress") and "100.0 %" in got, got or why)

    # A script overlay built in the systemd sandbox from the web app.
    script = (
        "set -eu\n"
        "mkdir -p left4dead2/cfg\n"
        "echo 'echo built-marker-1' > left4dead2/cfg/built.cfg\n"
        "if cat /var/lib/left4me/left4me.db >/dev/null 2>&1; then echo DB-READABLE; else echo probe: db-unreadable; fi\n"
        "probe() { timeout 3 bash -c \"exec 3<>/dev/tcp/$1/$2; head -c 64 <&3\" 2>/dev/null; }\n"
        "if probe 127.0.0.1 8000 >/dev/null; then echo PANEL-REACHED; else echo probe: panel-unreachable; fi\n"
        "if probe 10.99.0.1 18080 >/dev/null; then echo LAN-REACHED; else echo probe: lan-unreachable; fi\n"
        "if probe 192.0.2.2 8080 | grep -q testhost-ok; then echo probe: internet-reached; else echo INTERNET-UNREACHABLE; fi\n"
        "echo probe: uid=$(id -u)\n"
    )
    oid, r = create_overlay(admin, "marker", "script", script=script)
    check("script overlay created", oid is not None, page_error(r.body))
    job = build_overlay(admin, oid)
    state, page = wait_job(admin, job)
    log = job_log(page)
    check("script build from the web app succeeds under systemd (helper leaves the web unit's sandbox)", state == "succeeded", "\n".join(log[-6:]))
    check("the build log names its systemd sandbox first", bool(log) and "systemd transient unit" in log[0], log[:1])
    check("the build cannot read the database", "probe: db-unreadable" in log, log)
    check("the build cannot reach the panel on 127.0.0.1", "probe: panel-unreachable" in log, log)
    check("the build cannot reach an RFC1918 address", "probe: lan-unreachable" in log, log)
    check("the build reaches the (simulated) internet", "probe: internet-reached" in log, log)
    check("the build runs as left4me-build", "probe: uid=981" in log, log)
    st["marker_overlay"] = oid

    # A workshop overlay from the Steam stand-in (recorded responses).
    wid, r = create_overlay(admin, "workshop", "workshop", refs="3434972877")
    check("workshop overlay created", wid is not None, page_error(r.body))
    job = build_overlay(admin, wid)
    state, page = wait_job(admin, job)
    check("workshop sync from the Steam stand-in succeeds", state == "succeeded", "\n".join(job_log(page)[-6:]))
    page = admin.get(f"/overlays/{wid}").body
    check("the synced item is listed and cached", "3434972877" in page and ">ok<" in page, page[-800:])
    st["workshop_overlay"] = wid

    # Blueprint + server; start through the web app.
    bp, r = create_blueprint(
        admin,
        "coop",
        "+map c1m1_hotel -sim_players 2 -sim_churn 0 -sim_stop_delay 3",
        'hostname "systest coop"\nexec built\n',
        overlays=[oid, wid],
    )
    check("blueprint with both overlays created", bp is not None, page_error(r.body))
    sid, r = create_server(admin, "srv1", bp)
    check("server created", sid is not None, page_error(r.body))
    job, _ = server_action(admin, sid, "start")
    state, page = wait_job(admin, job)
    check("start job succeeds", state == "succeeded", "\n".join(job_log(page)[-6:]))
    port = server_port(admin, sid)
    info = wait_a2s(port, "systest coop")
    check(f"the server answers A2S_INFO on its port {port}", info is not None and info["name"] == "systest coop", info)
    st.update(server=sid, port=port, blueprint=bp)

    # Live panel: map and players; game events through the log listener.
    text, why = sse_until(admin, f"/servers/{sid}/live/stream", lambda e, d: e == "panel" and "c1m1_hotel" in d and "2/" in d)
    check("live panel shows the map and the players (A2S + RCON status, pushed over SSE)", text is not None, why)
    r = admin.get(f"/servers/{sid}/rcon")
    check("the admin's RCON console opens", r.status == 200, f"HTTP {r.status}")
    # Subscribe first, then speak: the line must be pushed as it happens.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pushed = pool.submit(sse_until, admin, f"/servers/{sid}/live/stream", lambda e, d: e == "event" and "systest-chat-line" in d, 20)
        time.sleep(1)
        admin.post(f"/servers/{sid}/rcon", {"command": "say systest-chat-line"})
        text, why = pushed.result()
    check("game events arrive through the UDP log listener on the public address (pushed over SSE)", text is not None, why)
    fragment = admin.get(f"/servers/{sid}/live").body
    check("the event stays in the panel's recent events", "systest-chat-line" in fragment, fragment[-600:])
    m = re.search(r'<p class="meta event-health" id="event-health" data-state="([a-z]+)">([^<]*)</p>', fragment)
    check("the live panel's health line says events arrive via the UDP log",
          m is not None and m.group(1) == "udp" and m.group(2) == "events via UDP log", fragment[-800:])
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        seen = pool.submit(sse_until, admin, f"/servers/{sid}/console",
                           lambda e, d: "systest-both-ways" in html_unescape(d), 20)
        time.sleep(1)
        admin.post(f"/servers/{sid}/rcon", {"command": "say systest-both-ways"})
        text, why = seen.result()
    check("the console (left4me-journalctl) carries the HL log line", text is not None, why)
    time.sleep(2)
    fragment = admin.get(f"/servers/{sid}/live").body
    check("an event heard over UDP and on the console is shown once",
          fragment.count("systest-both-ways") == 1, fragment[-800:])
    page = admin.get(f"/servers/{sid}/rcon").body
    check("RCON output is in the console history", "say systest-chat-line" in page)
    admin.post(f"/servers/{sid}/rcon", {"command": "status"})
    page = admin.get(f"/servers/{sid}/rcon").body
    check("RCON status reaches the server (hostname in its output)", "systest coop" in page)

    # Players: a ban reaches the running game (banid … kick) and survives a
    # restart (banned_user.cfg in the upper layer, exec'd by server.cfg).
    def game(cmd):
        r = admin.post(f"/servers/{sid}/rcon/exec", {"command": cmd})
        return "\n".join(html_unescape(l) for l in re.findall(r'<div class="l (?:reply|error)">(.*?)</div>', r.body, re.S))
    out = game("sim_join Griefer STEAM_1:0:777")
    check("a simulated player with a chosen Steam id joins", out.startswith("sim_join: userid"), out)
    r = admin.post(f"/servers/{sid}/players/ban", {"steam_id": "STEAM_1:0:777", "unit": "permanent", "reason": "systest"})
    page = html_unescape(admin.get(f"/servers/{sid}").body)
    check("the ban is accepted and applied at once", r.status == 303 and "kicked if they were on" in page, page_error(r.body) if r.status != 303 else page[:400])
    check("the ban is listed on the server page", 'id="ban-list"' in page and "STEAM_1:0:777" in page)
    listed = game("listid")
    check("the game lists the ban (listid)", "1 STEAM_1:0:777 : permanent" in listed, listed)
    check("the banned player was kicked", "Griefer" not in game("status"))
    job, _ = server_action(admin, sid, "restart")
    state, jp = wait_job(admin, job)
    check("restart with a ban succeeds", state == "succeeded", "\n".join(job_log(jp)[-6:]))
    wait_a2s(port, "systest coop")
    listed = game("listid")
    check("after the restart under systemd the game has the ban again (banned_user.cfg)", "STEAM_1:0:777 : permanent" in listed, listed)
    out = game("sim_join Griefer STEAM_1:0:777")
    check("and refuses the banned player", "STEAM UserID STEAM_1:0:777 is banned" in out, out)
    r = admin.post(f"/servers/{sid}/players/unban", {"steam_id": "STEAM_1:0:777"})
    listed = game("listid")
    check("unban lifts it at once", r.status == 303 and listed.strip() == "ID filter list: empty", listed)

    # Console through left4me-journalctl: the overlay's cfg ran in the game.
    text, why = sse_until(admin, f"/servers/{sid}/console", lambda e, d: "built-marker-1" in d, timeout=20)
    check("the console (journal through left4me-journalctl) shows the script overlay's cfg running in the game", text is not None, why)

    # Rebuild the overlay, restart: the running server sees the new build.
    admin.post(f"/overlays/{oid}", {"name": "marker", "description": "", "script": script.replace("built-marker-1", "built-marker-2")})
    job = build_overlay(admin, oid)
    state, _ = wait_job(admin, job)
    job, _ = server_action(admin, sid, "restart")
    state, page = wait_job(admin, job)
    check("restart job succeeds", state == "succeeded", "\n".join(job_log(page)[-6:]))
    text, why = sse_until(admin, f"/servers/{sid}/console", lambda e, d: "built-marker-2" in d, timeout=20)
    check("after a rebuild and a restart the server runs the new overlay build", text is not None, why)

    # Reset: a fresh upper layer, running again.
    job, _ = server_action(admin, sid, "reset")
    state, page = wait_job(admin, job)
    check("reset job succeeds", state == "succeeded", "\n".join(job_log(page)[-6:]))
    check("the server answers A2S after the reset", wait_a2s(port, "systest coop") is not None)
    check_resources(admin, sid)

    # A second server that stays up through the reboot.
    sid2, _ = create_server(admin, "srv2", bp)
    job, _ = server_action(admin, sid2, "start")
    state, _ = wait_job(admin, job)
    st.update(server2=sid2, port2=server_port(admin, sid2))
    check("a second server starts", state == "succeeded" and wait_a2s(st["port2"]) is not None)


def phase_hostile(st):
    """A plain user ships a native 'plugin' (sim-plugins: run inside the game
    process's unit) that probes every path to other tenants."""
    mallory = Browserless()
    r = mallory.login("mallory", st["mallory_password"])
    check("the second user logs in", r.status == 303)
    # What the probe attacks: the admin's server and the panel.
    probe = (
        open(st["probe_script"])
        .read()
        .replace("@VICTIM_NAME@", "srv1")
        .replace("@VICTIM_PORT@", str(st["port"]))
        .replace("@VICTIM_OVERLAY@", str(st["marker_overlay"]))
    )
    script = (
        "set -eu\n"
        "mkdir -p left4dead2/addons/sim-plugins\n"
        "cat > left4dead2/addons/sim-plugins/probe.sh <<'PROBE'\n" + probe + "PROBE\n"
        "chmod 0755 left4dead2/addons/sim-plugins/probe.sh\n"
    )
    oid, r = create_overlay(mallory, "evil", "script", script=script)
    job = build_overlay(mallory, oid)
    state, page = wait_job(mallory, job)
    check("the hostile plugin overlay builds", state == "succeeded", "\n".join(job_log(page)[-6:]))
    # Victim facts for the probe: the other server's port and files.
    bp, r = create_blueprint(mallory, "evil", "+map c1m1_hotel -sim_players 0", "", overlays=[oid])
    check("the hostile blueprint is accepted", bp is not None, page_error(r.body))
    sid, r = create_server(mallory, "evil1", bp)
    job, _ = server_action(mallory, sid, "start")
    state, page = wait_job(mallory, job)
    check("the hostile server starts", state == "succeeded", "\n".join(job_log(page)[-6:]))
    st.update(evil_server=sid, evil_port=server_port(mallory, sid))
    # Page-level rules hold too.
    for path in (f"/servers/{st['server']}", f"/servers/{st['server']}/console", f"/servers/{st['server']}/live/stream", f"/overlays/{st['marker_overlay']}/files"):
        check(f"another tenant gets 404 for {path}", mallory.get(path).status == 404)


def phase_hostile_restart(st):
    mallory = Browserless()
    mallory.login("mallory", st["mallory_password"])
    job, _ = server_action(mallory, st["evil_server"], "restart")
    state, page = wait_job(mallory, job)
    check("the attacker's server restarts (its planted links replaced, not followed)", state == "succeeded", "\n".join(job_log(page)[-5:]))


def phase_slow_build(st):
    admin = Browserless()
    admin.login("admin", st["admin_password"])
    oid, _ = create_overlay(admin, "slow", "script", script="echo started\nsleep 60\necho NOT-KILLED\n")
    t0 = time.time()
    job = build_overlay(admin, oid)
    state, page = wait_job(admin, job, timeout=90)
    took = time.time() - t0
    log = job_log(page)
    check(f"a build is killed at the sandbox's time limit (failed after {took:.0f} s)", state == "failed" and took < 30, state)
    check("the killed build did not finish", "started" in log and "NOT-KILLED" not in log, log[-4:])


def phase_browser(st):
    """A real headless Chromium (WebDriver) logs in and watches a server."""
    wd = WebDriver()
    try:
        wd.get(f"http://{BASE_HOST}:{BASE_PORT}/login")
        wd.type("input[name=username]", "admin")
        wd.type("input[name=password]", st["admin_password"])
        wd.click("#login-form button")
        ok = wd.wait(lambda: "/servers" in wd.url(), 15)
        check("browser: logs in and lands on the servers dashboard", ok, wd.url())
        wd.get(f"http://{BASE_HOST}:{BASE_PORT}/servers/{st['server2']}")
        ok = wd.wait(lambda: "c1m1_hotel" in (wd.text("#live-map") or ""), 30)
        check("browser: the server page's live panel shows the map over SSE", ok, wd.text("body")[:300] if not ok else "")
        wide = wd.script("return document.documentElement.scrollWidth <= window.innerWidth")
        check("browser: the server page fits the window", wide is True, wide)

        # Phone width: every page of the deployed panel fits a 360 px screen.
        wd.s("POST", "/window/rect", {"width": 360, "height": 800})
        inner = wd.script("return window.innerWidth")
        pages = ["/servers", f"/servers/{st['server2']}", f"/servers/{st['server2']}/rcon", "/blueprints",
                 "/overlays", f"/overlays/{st['workshop_overlay']}", f"/overlays/{st['marker_overlay']}/files",
                 "/jobs", f"/jobs/{st['kill_job']}", "/audit", "/account", "/tokens", "/alerts",
                 "/admin/users", "/servers/999999"]
        wd.get(f"http://{BASE_HOST}:{BASE_PORT}/blueprints")
        bp = wd.script("const a = document.querySelector('#blueprints a'); return a && a.getAttribute('href')")
        if bp:
            pages.append(bp)
        too_wide = []
        for p in pages:
            wd.get(f"http://{BASE_HOST}:{BASE_PORT}{p}")
            time.sleep(1)  # the live panel and the state block arrive over HTMX
            over = wd.script("return document.documentElement.scrollWidth - window.innerWidth")
            if not isinstance(over, int) or over > 0:
                too_wide.append(f"{p}: {over} px too wide")
        check(f"browser: every page of the deployed panel fits a {inner} px phone screen", inner == 360 and not too_wide, too_wide)
        wd.s("POST", "/window/rect", {"width": 1280, "height": 900})
    finally:
        wd.quit()


class WebDriver:
    """Just enough of the W3C WebDriver protocol (chromedriver on :9515)."""

    def __init__(self):
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "goog:chromeOptions": {
                        "args": [
                            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                            "--no-first-run", "--disable-background-networking",
                            "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                        ]
                    }
                }
            }
        }
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", 9515, timeout=60)
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers={"Content-Type": "application/json"})
        res = json.loads(conn.getresponse().read() or b"{}")
        conn.close()
        return res.get("value", res)

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def get(self, url):
        self.s("POST", "/url", {"url": url})

    def url(self):
        return self.s("GET", "/url")

    def find(self, css):
        v = self.s("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(v.values())) if isinstance(v, dict) and v and "error" not in v else None

    def type(self, css, text):
        self.s("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css):
        self.s("POST", f"/element/{self.find(css)}/click", {})

    def text(self, css):
        el = self.find(css)
        return self.s("GET", f"/element/{el}/text") if el else None

    def script(self, js):
        return self.s("POST", "/execute/sync", {"script": js, "args": []})

    def wait(self, cond, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if cond():
                    return True
            except Exception:
                pass
            time.sleep(0.5)
        return False

    def quit(self):
        self.s("DELETE", "")


def phase_refresh_check(st):
    admin = Browserless()
    admin.login("admin", st["admin_password"])
    page = admin.get("/jobs").body
    m = re.search(r'<a href="/jobs/(\d+)">\d+</a></td><td[^>]*>refresh all workshop overlays', page)
    check("the workshop-refresh service queued one coalesced refresh job", m is not None, page[-1500:])
    if m:
        state, page = wait_job(admin, int(m.group(1)))
        check("the workshop refresh job succeeds", state == "succeeded", "\n".join(job_log(page)[-5:]))
    checks = jobs_titled(admin, "check Steam for a new game build")
    check("the update-check service queued a check", bool(checks), page[-1500:])
    if checks:
        state, page = wait_job(admin, checks[0][0])
        log = job_log(page)
        check("the timer's update check runs under the web unit and finds the installed build current",
              state == "succeeded" and any("the newest build is installed" in l for l in log), "\n".join(log[-4:]))


def jobs_titled(c, needle):
    """(id, state) of the jobs on the jobs page whose title contains needle."""
    page = c.get("/jobs").body
    out = []
    for m in re.finditer(r'<a href="/jobs/(\d+)">\d+</a></td><td[^>]*>([^<]*)</td>\s*<td[^>]*>[^<]*<span class="badge state-(\w+)"', page):
        if needle in html_unescape(m.group(2)):
            out.append((int(m.group(1)), m.group(3)))
    return out


def webhook_events():
    """The JSON bodies the (simulated) internet's webhook receiver got."""
    try:
        with open(os.environ["LEFT4ME_SYSTEST_WEBHOOKS"]) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, KeyError, ValueError):
        return []


def phase_routine(st):
    """What runs by itself day to day: a scheduled restart, a server that
    keeps crashing under systemd, and the webhook that tells its owner."""
    admin = Browserless()
    admin.login("admin", st["admin_password"])
    r = admin.post("/alerts", [("name", "ops"), ("url", "http://192.0.2.2:8082/hook"), ("format", "json"),
                               ("event", "server.crashed"), ("event", "server.crash_loop"), ("event", "server.recovered")])
    check("a webhook to a receiver on the internet is added", r.status == 303, page_error(r.body))

    # Crashes one second after every start: systemd restarts it until its start limit.
    bp, r = create_blueprint(admin, "crashy", "+map c1m1_hotel -sim_crash_after 1 -sim_churn 0", "")
    sid, r = create_server(admin, "crash1", bp)
    check("a server that crashes after every start is created", sid is not None, page_error(r.body))
    job, _ = server_action(admin, sid, "start")
    wait_job(admin, job)

    r = admin.post(f"/servers/{st['server2']}/schedules", {"action": "restart", "cron": "* * * * *", "time_zone": "Europe/Berlin"})
    check("a restart every minute is scheduled on srv2", r.status == 303, page_error(r.body))
    page = admin.get(f"/servers/{st['server2']}").body
    check("the schedule shows its next runs in its time zone", "Europe/Berlin" in page and page.count('class="next-run"') == 3, page[-1500:])

    deadline = time.time() + 100
    scheduled = []
    while time.time() < deadline and not any(s == "succeeded" for _, s in scheduled):
        time.sleep(2)
        scheduled = jobs_titled(admin, "restart server srv2 (scheduled: * * * * *)")
    check("the scheduled restart ran as a job of srv2's owner and succeeded", any(s == "succeeded" for _, s in scheduled), scheduled)
    m = re.search(r'id="schedule-(\d+)"', admin.get(f"/servers/{st['server2']}").body)
    if m:
        admin.post(f"/schedules/{m.group(1)}/delete")
    check("srv2 answers A2S after its scheduled restart", wait_a2s(st["port2"], timeout=30) is not None)

    deadline = time.time() + 90
    page = ""
    while time.time() < deadline:
        page = admin.get(f"/servers/{sid}").body
        if 'id="server-state"' in page and ">crash loop<" in page:
            break
        time.sleep(2)
    check("systemd's start limit shows as a crash loop on the server page", ">crash loop<" in page, re.findall(r'id="server-state"[^>]*>([^<]*)', page))
    m = re.search(r'id="crash-count">(\d+)<', page)
    check("the page counts the crashes (systemd restarts seen by the panel)", m is not None and int(m.group(1)) >= 4, m and m.group(1))
    exits = re.findall(r'id="last-exit">([^<]*)', page)
    check("the last exit is in an operator's words (systemd's exit status or signal)", bool(exits) and re.match(r"(exit status \d+|killed by signal \d+)", exits[0]) is not None, exits)
    deadline = time.time() + 30
    events = []
    while time.time() < deadline:
        events = [e for e in webhook_events() if e.get("server", {}).get("name") == "crash1"]
        if any(e.get("event") == "server.crash_loop" for e in events):
            break
        time.sleep(1)
    check("the crash loop reached the owner's webhook", any(e.get("event") == "server.crash_loop" for e in events), events[-3:])
    check("the crashes reached it too", sum(e.get("event") == "server.crashed" for e in events) >= 4, [e.get("event") for e in events])
    job, _ = server_action(admin, sid, "delete")
    state, _ = wait_job(admin, job)
    check("the crashing server is deleted", state == "succeeded")

    # Sharing: the other tenant as a viewer of srv2, then not at all.
    srv2 = st["server2"]
    mallory = Browserless()
    mallory.login("mallory", st["mallory_password"])
    check("without a role another tenant's server does not exist for mallory", mallory.get(f"/servers/{srv2}").status == 404)
    r = admin.post(f"/servers/{srv2}/shares", {"username": "mallory", "role": "viewer"})
    check("the owner shares srv2 with mallory as a viewer", r.status == 303, page_error(r.body))
    page = mallory.get(f"/servers/{srv2}")
    check("the viewer sees srv2's page, marked as shared", page.status == 200 and "shared with you as viewer" in page.body, page.status)
    r = mallory.post(f"/servers/{srv2}/stop")
    check("the viewer may not stop it (403)", r.status == 403, r.status)
    check("nor open its RCON console (403)", mallory.get(f"/servers/{srv2}/rcon").status == 403)
    check("srv2 still answers after the viewer's refused stop", wait_a2s(st["port2"], timeout=10) is not None)
    uid = re.search(r'/servers/\d+/shares/(\d+)/revoke', admin.get(f"/servers/{srv2}").body)
    r = admin.post(f"/servers/{srv2}/shares/{uid.group(1)}/revoke") if uid else None
    check("the owner revokes it", r is not None and r.status == 303)
    check("after the revoke srv2 is gone for mallory again (404)", mallory.get(f"/servers/{srv2}").status == 404)
    page = admin.get("/audit?kind=server").body
    check("the audit log has the sharing and its revoke, by the admin", "server.shared" in page and "server.unshared" in page, page[-1200:])
    page_all = admin.get("/audit?kind=server.stop").body
    check("the viewer's refused stop is in the audit log", "refused" in page_all and "mallory" in page_all, page_all[-1200:])

    # The HTTP API with a personal access token, under the hardened unit.
    r = admin.post("/tokens", {"name": "systest", "scope": "operate", "days": "1"})
    m = re.search(r'id="token-value">([^<]+)<', r.body)
    check("a personal access token is created and shown once", r.status == 200 and m is not None, r.status)
    if m:
        conn = http.client.HTTPConnection(BASE_HOST, BASE_PORT, timeout=30)
        conn.request("GET", "/api/v1/servers", headers={"Authorization": f"Bearer {m.group(1)}"})
        res = conn.getresponse()
        body = json.loads(res.read().decode() or "null")
        conn.close()
        check("the API lists the servers with the token", res.status == 200 and "srv2" in json.dumps(body), (res.status, str(body)[:300]))


def phase_restart_for_kill(st):
    admin = Browserless()
    admin.login("admin", st["admin_password"])
    job, _ = server_action(admin, st["server"], "restart")
    st["kill_job"] = job
    # The stop takes 3 s (-sim_stop_delay): run.sh kills the panel meanwhile.
    # A running job's log is on its stream, not on its page.
    text, why = sse_until(admin, f"/jobs/{job}/stream", lambda e, d: "l4d2ctl stop srv1" in d, timeout=20)
    check("the restart job is stopping the server when the panel is killed", text is not None, why)


def wait_health(timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if Browserless().get("/health").status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def phase_after_kill(st):
    check("systemd brought the panel back after kill -9", wait_health())
    admin = Browserless()
    admin.login("admin", st["admin_password"])
    state, page = wait_job(admin, st["kill_job"], timeout=10)
    check("the interrupted job is failed, not left running", state == "failed", state)
    check("the server is running again without anyone clicking", wait_a2s(st["port"], "systest coop", timeout=60) is not None)
    jobs = admin.get("/jobs").body
    check("a job brought it back to its desired state", "desired state after the panel restarted" in jobs)
    running = re.findall(r"state-running", jobs)
    deadline = time.time() + 30
    while running and time.time() < deadline:
        time.sleep(1)
        running = re.findall(r"state-running", admin.get("/jobs").body)
    check("no job stays running", not running)


def phase_stop(st):
    admin = Browserless()
    admin.login("admin", st["admin_password"])
    job, _ = server_action(admin, st["server"], "stop")
    state, page = wait_job(admin, job)
    check("stop job succeeds", state == "succeeded", "\n".join(job_log(page)[-5:]))
    check("the stopped server no longer answers", a2s_info(st["port"], attempts=3) is None)


def phase_delete(st):
    admin = Browserless()
    admin.login("admin", st["admin_password"])
    job, _ = server_action(admin, st["server"], "delete")
    state, page = wait_job(admin, job)
    check("delete job succeeds (no busy mount anywhere)", state == "succeeded", "\n".join(job_log(page)[-5:]))
    check("the deleted server is gone from the panel", admin.get(f"/servers/{st['server']}").status == 404)


def phase_after_reboot(st):
    check("the panel is up after the reboot by itself", wait_health(90))
    admin = Browserless()
    r = admin.login("admin", st["admin_password"])
    check("login works after the reboot", r.status == 303)
    check("a server that was running is back after the reboot", wait_a2s(st["port2"], timeout=60) is not None)
    check("the other tenant's server is back too", wait_a2s(st["evil_port"], timeout=60) is not None)
    deadline = time.time() + 60
    recovered = []
    while time.time() < deadline and not recovered:
        recovered = [e for e in webhook_events() if e.get("event") == "server.recovered"]
        time.sleep(1)
    check("the owner's webhook heard that srv2 is back after the reboot", any(e.get("server", {}).get("name") == "srv2" for e in recovered), recovered)
    check("nobody else's server was reported to the admin's webhook", all(e.get("server", {}).get("name") == "srv2" for e in recovered), recovered)
    deadline = time.time() + 30
    page = admin.get("/servers").body
    while 'class="drift"' in page and time.time() < deadline:
        time.sleep(1)
        page = admin.get("/servers").body
    check("the dashboard shows no drift after the reboot", 'class="drift"' not in page, re.findall(r'class="drift">([^<]*)', page))


def phase_after_restore(st):
    """The panel on a data root restored from the backup timer's backup."""
    check("the panel is up on the restored data root", wait_health(90))
    admin = Browserless()
    r = admin.login("admin", st["admin_password"])
    check("after restore the admin logs in with the same password", r.status == 303)
    page = admin.get(f"/servers/{st['server2']}")
    check("after restore the admin's server is there", page.status == 200 and "srv2" in page.body, page.status)
    page = admin.get(f"/overlays/{st['marker_overlay']}")
    check("after restore the admin's overlay is there", page.status == 200, page.status)
    mallory = Browserless()
    r = mallory.login("mallory", st["mallory_password"])
    check("after restore the other tenant logs in", r.status == 303)
    page = mallory.get(f"/servers/{st['evil_server']}")
    check("after restore the other tenant's server is there", page.status == 200, page.status)
    check("after restore a tenant still does not see another's server", mallory.get(f"/servers/{st['server2']}").status == 404)
    check("after restore the administrator still sees every server", admin.get(f"/servers/{st['evil_server']}").status == 200)
    check("after restore the servers meant to run are running again", wait_a2s(st["port2"], timeout=90) is not None)
    check("after restore the other tenant's server runs again too", wait_a2s(st["evil_port"], timeout=90) is not None)


STEAM_GUARD_CODE = "F7K2Q"


def phase_steam_account(st):
    """A Steam account for steamcmd, set up as the deploy README says, with
    Steam Guard: the install asks for a code, the code entered on the
    Jobs page logs in once, the next install runs unattended."""
    check("the panel is up with a Steam account configured", wait_health(90))
    admin = Browserless()
    admin.login("admin", st["admin_password"])
    r = admin.post("/admin/install")
    job = int(re.match(r"/jobs/(\d+)", r.location()).group(1)) if r.status == 303 else None
    state, page = wait_job(admin, job) if job else ("none", "")
    jobs = admin.get("/jobs").body
    check("an install with a Steam Guard account fails asking for a code, on the Jobs page",
          state == "failed" and 'id="steam-guard"' in jobs and "Steam asks for a Steam Guard code" in jobs,
          "\n".join(job_log(page)[-3:]))
    r = admin.post("/admin/install", [("steam_guard_code", STEAM_GUARD_CODE)])
    job = int(re.match(r"/jobs/(\d+)", r.location()).group(1)) if r.status == 303 else None
    state, page = wait_job(admin, job) if job else ("none", "")
    check("the install with the Steam Guard code entered on the Jobs page succeeds",
          state == "succeeded", "\n".join(job_log(page)[-3:]))
    r = admin.post("/admin/install")
    job = int(re.match(r"/jobs/(\d+)", r.location()).group(1)) if r.status == 303 else None
    state, page = wait_job(admin, job) if job else ("none", "")
    check("the next install logs in unattended with steamcmd's saved login", state == "succeeded",
          "\n".join(job_log(page)[-3:]))
    check("the Jobs page no longer asks for a code", 'id="steam-guard"' not in admin.get("/jobs").body)


def publish_build(build_id):
    """Valve publishes a new build: the simulated Steam (steamcmd-sim, and
    srcds-sim's master server check) reads it from the container's /etc."""
    d = os.path.join(os.environ["SYSTEST_ROOTFS"], "etc/left4me-sim")
    os.makedirs(d, mode=0o755, exist_ok=True)
    tmp = os.path.join(d, "published-build.tmp")
    with open(tmp, "w") as f:
        f.write(f"{build_id}\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, os.path.join(d, "published-build"))


def update_check_outcome(admin, job, build):
    """Waits for update check `job`; with automatic installs it queues the
    install of the new build. Returns the install's job id."""
    state, page = wait_job(admin, job) if job else ("none", "")
    log = job_log(page)
    check(f"the update check under the web unit finds build {build}",
          state == "succeeded" and any(f"→ {build}" in l for l in log), "\n".join(log[-4:]))
    m = next((re.search(r"installing it beside the current build: job (\d+)", l) for l in log if "installing it beside" in l), None)
    check("the check queues the install of the new build", m is not None, "\n".join(log[-4:]))
    return int(m.group(1)) if m else None


def check_for_update(admin, build):
    """The administrator's "Check for a new build now"."""
    r = admin.post("/admin/update-check")
    job = int(re.match(r"/jobs/(\d+)", r.location()).group(1)) if r.status == 303 else None
    return update_check_outcome(admin, job, build)


def build_line(admin, sid):
    page = html_unescape(admin.get(f"/servers/{sid}").body)
    m = re.search(r'<div id="game-build"><p class="meta">([^<]*)</p>', page)
    return m.group(1) if m else ""


def wait_build_line(admin, sid, needle, timeout=90):
    deadline = time.time() + timeout
    line = ""
    while time.time() < deadline:
        line = build_line(admin, sid)
        if needle in line:
            return line
        time.sleep(1)
    return line


def phase_game_update(st):
    """A new game build under systemd: the game hears of it, the check finds
    it, the install puts it beside the running build, the when-empty policy
    moves an empty server, a busy one waits, and a rollback holds."""
    admin = Browserless()
    admin.login("admin", st["admin_password"])
    sid = st["server"]
    check("srv1 runs on the first build", "game build 15000001 (the newest)" in build_line(admin, sid), build_line(admin, sid))
    bp, r = create_blueprint(admin, "updates", "+map c1m1_hotel -sim_players 0 -sim_churn 0 -sim_master_interval 2", "")
    r = admin.post(f"/blueprints/{bp}/rollout", {"policy": "when-empty", "minutes": "0"})
    check("a blueprint gets the when-empty update policy", r.status == 303, page_error(r.body))
    r = admin.post(f"/blueprints/{st['blueprint']}/rollout", {"policy": "when-empty", "minutes": "0"})
    upd, _ = create_server(admin, "upd1", bp)
    job, _ = server_action(admin, upd, "start")
    state, page = wait_job(admin, job)
    check("a server on the updates blueprint starts", state == "succeeded", "\n".join(job_log(page)[-4:]))

    publish_build(15000002)
    # The game asks Steam and hears its build is old (srcds: MasterRequestRestart).
    text, why = sse_until(admin, f"/servers/{upd}/console",
                          lambda e, d: "Your server needs to be restarted in order to receive the latest update." in html_unescape(d), timeout=30)
    check("the running game says Steam wants it restarted for the update (console through the journal)", text is not None, why)
    t_available = time.time()
    time.sleep(2)
    signalled = jobs_titled(admin, "a server said Steam wants it restarted")
    check("that console line queues an update check by itself", bool(signalled), "")
    install = update_check_outcome(admin, signalled[-1][0] if signalled else None, 15000002)
    state, page = wait_job(admin, install, timeout=300) if install else ("none", "")
    check("the new build installs beside the running one under the web unit", state == "succeeded", "\n".join(job_log(page)[-4:]))
    line = wait_build_line(admin, upd, "game build 15000002 (the newest)")
    check("the empty server moved onto the new build by itself", "game build 15000002 (the newest)" in line, line)
    print(f"FIGURE: update available to the empty server on the new build (check, install, restart, systemd): {time.time() - t_available:.1f} s", flush=True)
    line = build_line(admin, sid)
    check("srv1, with players on it, stays on its build", "game build 15000001" in line and "build 15000002 is installed" in line, line)
    check("srv1 still answers on its port", wait_a2s(st["port"], "systest coop") is not None)
    jobs = html_unescape(admin.get("/jobs").body)
    check("the Jobs page lists both builds and who runs on which",
          'id="builds"' in jobs and "15000002 (newest)" in jobs and "upd1" in jobs and "srv1" in jobs, jobs[-1500:])

    # Rollback: the server restarts on the previous build and stays there.
    r = admin.post(f"/servers/{upd}/build", {"build": "15000001"})
    job = flash_job(html_unescape(admin.get(f"/servers/{upd}").body)) if r.status == 303 else None
    state, page = wait_job(admin, job) if job else ("none", "")
    check("rolling a server back restarts it on the previous build", state == "succeeded", "\n".join(job_log(page)[-4:]))
    time.sleep(4)
    line = build_line(admin, upd)
    check("the rolled-back server stays on the previous build", "kept on build 15000001 (rolled back)" in line and "game build 15000001" in line, line)
    r = admin.post(f"/blueprints/{st['blueprint']}/rollout", {"policy": "manual", "minutes": "10"})
    job, _ = server_action(admin, upd, "delete")
    wait_job(admin, job)
    st["build2_installed"] = True


def phase_bench(st):
    """40 running servers: what one dashboard view costs."""
    admin = Browserless()
    admin.login("admin", st["admin_password"])
    bp, _ = create_blueprint(admin, "bench", "+map c1m1_hotel -sim_players 0 -sim_churn 0", "")
    ids, jobs = [], []
    for i in range(40):
        sid, _ = create_server(admin, f"bench-{i:02}", bp)
        ids.append(sid)
        job, _ = server_action(admin, sid, "start")
        jobs.append(job)
    states = [wait_job(admin, j, timeout=300)[0] for j in jobs]
    check("40 servers started through the web app", states.count("succeeded") == 40, states)
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        r = admin.get("/servers")
        times.append((time.perf_counter() - t0) * 1000)
    check("the dashboard lists all 40", r.body.count("bench-") >= 40)
    check("the dashboard knows every server's state (no status error)", 'id="status-error"' not in r.body, page_error(r.body))
    print(f"FIGURE: dashboard GET /servers with {len(ids) + 3} servers: median {statistics.median(times):.0f} ms, max {max(times):.0f} ms", flush=True)
    st["bench_servers"] = ids

    # The rollout benchmark: a new build reaches 40 empty servers by the
    # when-empty policy (0 minutes), under systemd, through sudo.
    r = admin.post(f"/blueprints/{bp}/rollout", {"policy": "when-empty", "minutes": "0"})
    publish_build(15000003)
    t0 = time.time()
    install = check_for_update(admin, 15000003)
    state, page = wait_job(admin, install, timeout=300) if install else ("none", "")
    t_installed = time.time()
    n, row = 0, None
    while time.time() < t0 + 900:
        jobs = html_unescape(admin.get("/jobs").body)
        row = re.search(r'<td data-label="Build">15000003 \(newest\)</td><td data-label="Size">([^<]*)</td><td data-label="Servers on it">([^<]*)</td>', jobs)
        n = len([x for x in row.group(2).split(", ") if x.startswith("bench-")]) if row else 0
        if n == len(ids):
            break
        time.sleep(2)
    check(f"the when-empty policy moves all {len(ids)} empty servers onto the new build", n == len(ids), f"{n} of {len(ids)}")
    print(f"FIGURE: update available to {n} of {len(ids)} empty servers on the new build: {time.time() - t0:.0f} s "
          f"(check + install {t_installed - t0:.0f} s, moves {time.time() - t_installed:.0f} s)", flush=True)
    sizes = re.findall(r'<td data-label="Build">(\d+)[^<]*</td><td data-label="Size">([^<]*)</td>', html_unescape(admin.get("/jobs").body))
    print(f"FIGURE: game builds on disk after three installs (simulated game, ext4 without reflink: each build a full copy): {sizes}", flush=True)
    admin.post(f"/blueprints/{bp}/rollout", {"policy": "manual", "minutes": "10"})
    # A server counts as moved once it is initialised on the new build; its
    # start is still running then. The idle panel is measured after them.
    busy = lambda: re.search(r'class="badge state-(queued|running)"', admin.get("/jobs").body)
    deadline = time.time() + 300
    while time.time() < deadline and busy():
        time.sleep(1)
    check("every job of the rollout has finished", not busy())


def phase_bench_cleanup(st):
    admin = Browserless()
    admin.login("admin", st["admin_password"])
    jobs = [server_action(admin, sid, "delete")[0] for sid in st.get("bench_servers", [])]
    states = [wait_job(admin, j, timeout=300)[0] for j in jobs]
    check("the 40 bench servers are deleted", states.count("succeeded") == len(jobs), states)


PHASES = {
    "main": phase_main,
    "steam-account": phase_steam_account,
    "game-update": phase_game_update,
    "hostile": phase_hostile,
    "hostile-restart": phase_hostile_restart,
    "refresh-check": phase_refresh_check,
    "slow-build": phase_slow_build,
    "browser": phase_browser,
    "restart-for-kill": phase_restart_for_kill,
    "routine": phase_routine,
    "after-kill": phase_after_kill,
    "stop": phase_stop,
    "delete": phase_delete,
    "after-reboot": phase_after_reboot,
    "after-restore": phase_after_restore,
    "bench": phase_bench,
    "bench-cleanup": phase_bench_cleanup,
}


def main():
    phase, state_file = sys.argv[1], sys.argv[2]
    with open(state_file) as f:
        st = json.load(f)
    try:
        PHASES[phase](st)
    except Exception as e:  # a crash of the driver is a failed check, with its reason
        import traceback

        traceback.print_exc()
        check(f"phase {phase} ran to its end", False, repr(e))
    with open(state_file, "w") as f:
        json.dump(st, f)
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()

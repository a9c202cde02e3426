//! Where srcds-sim has to behave like the real engine for left4me's
//! guarantees: the order of autoexec.cfg, the command line and server.cfg;
//! the native-plugin stand-ins; RCON brute-force bans and connection bounds;
//! the client / SourceTV ports and `-strictportbind`.

use crate::util::*;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// server.cfg as the panel writes it: the blueprint's text, then the
/// managed lines.
const PANEL_CFG: &str = "echo order-servercfg\n\
hostname \"blueprint host\"\n\
sv_tags blueprint\n\
// managed by left4me\n\
rcon_password \"managed-pw\"\n\
sv_logsecret 1234\n\
log on\n";

const CFG: &str = "hostname \"Sim Test Server\"\nrcon_password s3cret\n";

fn installed(cfg: &str) -> Root {
    let root = Root::new();
    root.install();
    root.write_server_cfg(cfg);
    root
}

fn position(console: &str, needle: &str) -> usize {
    console
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in console: {console}"))
}

fn cvar(rcon: &mut Rcon, id: i32, name: &str) -> String {
    let (out, _) = rcon.exec(id, name);
    // "name" = "value" ( def. "..." )
    let prefix = format!("\"{name}\" = \"");
    let rest = out
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("unexpected reply to {name}: {out:?}"));
    rest[..rest.find('"').unwrap()].to_string()
}

// ---- 1. Config order ---------------------------------------------------

#[test]
fn server_cfg_runs_after_the_command_line_and_again_at_every_map_change() {
    let root = installed(PANEL_CFG);
    root.write_cfg(
        "autoexec.cfg",
        "echo order-autoexec\nz_difficulty Hard\nsv_tags from-autoexec\nsv_search_key from-autoexec\n",
    );
    let sim = Sim::start(
        &root,
        &[
            "+echo",
            "order-cmdline",
            "+rcon_password",
            "user-pw",
            "+log",
            "off",
            // After +map on the command line: still before the map loads.
            "+map",
            "c1m1_hotel",
            "+sv_logsecret",
            "999",
            "+hostname",
            "late-cmdline",
            "+sv_search_key",
            "from-cmdline",
            "-sim_players",
            "0",
            "-sim_churn",
            "0",
        ],
    );
    sim.wait_console("Started map \"c1m1_hotel\"");
    let console = sim.console_text();
    let autoexec = position(&console, "order-autoexec");
    let cmdline = position(&console, "order-cmdline");
    let exec = position(
        &console,
        "Executing dedicated server config file server.cfg",
    );
    let servercfg = position(&console, "order-servercfg");
    let started = position(&console, "Started map \"c1m1_hotel\"");
    assert!(
        autoexec < cmdline && cmdline < exec && exec < servercfg && servercfg < started,
        "autoexec.cfg, command line, map load with server.cfg: {console}"
    );

    // The managed lines at the end of server.cfg beat the command line.
    let mut user = Rcon::connect(sim.addr());
    assert_eq!(user.auth("user-pw"), -1, "+rcon_password was overwritten");
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("managed-pw"), 1);
    assert_eq!(cvar(&mut rcon, 2, "sv_logsecret"), "1234");
    assert_eq!(cvar(&mut rcon, 4, "hostname"), "blueprint host");
    let (log, _) = rcon.exec(6, "log");
    assert!(log.contains("currently logging"), "{log}");
    // Elsewhere each later source wins: server.cfg over autoexec.cfg, the
    // command line over autoexec.cfg, autoexec.cfg where nobody else sets it.
    assert_eq!(cvar(&mut rcon, 8, "sv_tags"), "blueprint");
    assert_eq!(cvar(&mut rcon, 10, "sv_search_key"), "from-cmdline");
    assert_eq!(cvar(&mut rcon, 12, "z_difficulty"), "Hard");

    // Changed at runtime, then a changelevel: server.cfg runs again and
    // restores its values, also over a command run in the same batch after
    // the changelevel (the level change happens after the batch).
    rcon.exec(14, "sv_logsecret 5; hostname rcon-host; log off");
    assert_eq!(cvar(&mut rcon, 16, "sv_logsecret"), "5");
    let (out, _) = rcon.exec(18, "changelevel c2m1_highway; hostname same-batch");
    assert_eq!(out, "");
    assert_eq!(cvar(&mut rcon, 20, "sv_logsecret"), "1234");
    assert_eq!(cvar(&mut rcon, 22, "hostname"), "blueprint host");
    let (log, _) = rcon.exec(24, "log");
    assert!(log.contains("currently logging"), "{log}");
    assert_eq!(
        cvar(&mut rcon, 26, "sv_search_key"),
        "from-cmdline",
        "the command line is not run again"
    );
    let info = a2s::A2SClient::new().unwrap().info(sim.addr()).unwrap();
    assert_eq!(
        (info.map.as_str(), info.name.as_str()),
        ("c2m1_highway", "blueprint host")
    );
    // The console is read by another thread: wait for the new map's last
    // line before counting.
    sim.wait_console("Started map \"c2m1_highway\"");
    let console = sim.console_text();
    assert_eq!(
        console
            .matches("Executing dedicated server config file server.cfg")
            .count(),
        2,
        "{console}"
    );
    assert_eq!(
        console.matches("order-autoexec").count(),
        1,
        "autoexec.cfg runs once"
    );
    let mut user = Rcon::connect(sim.addr());
    assert_eq!(user.auth("user-pw"), -1);
}

#[test]
fn servercfgfile_on_the_command_line_replaces_server_cfg() {
    // The one way the command line beats the managed lines: the engine execs
    // the file named by servercfgfile at each map load, not server.cfg.
    let root = installed(PANEL_CFG);
    root.write_cfg("mine.cfg", "hostname mine\nrcon_password mine-pw\n");
    let sim = Sim::start(
        &root,
        &[
            "+servercfgfile",
            "mine.cfg",
            "+map",
            "c1m1_hotel",
            "-sim_churn",
            "0",
        ],
    );
    sim.wait_console("Executing dedicated server config file mine.cfg");
    assert!(!sim.console_text().contains("config file server.cfg"));
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("managed-pw"), -1);
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("mine-pw"), 1);
    assert_eq!(cvar(&mut rcon, 2, "hostname"), "mine");
}

// ---- 2. Native-plugin stand-ins -----------------------------------------

fn uid() -> u32 {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}

/// `/proc/<pid>/stat` fields after the command name: (state, ppid, pgrp).
fn proc_stat(pid: u32) -> Option<(char, u32, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    Some((state, ppid, pgrp))
}

/// The pid a plugin wrote to `file` (waits for it).
fn read_pid(file: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "no pid in {}", file.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `pid` is gone (or a zombie waiting for init) and is not
/// the plugin's `sleep` any more.
fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive = match proc_stat(pid) {
            None => false,
            Some((state, _, _)) => {
                state != 'Z'
                    && std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| c.starts_with(b"sleep"))
            }
        };
        if !alive {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "plugin process {pid} survived the server"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const SLEEPER: &str = "#!/bin/sh\necho $$ > \"$PLUGIN_OUT/sleeper.pid\"\nexec sleep 600\n";

#[test]
fn plugins_run_with_the_servers_rights_and_die_with_it() {
    let root = installed(CFG);
    let out = tempfile::tempdir().unwrap();
    root.write_plugin(
        "10-info",
        "#!/bin/sh\necho \"uid=$(id -u) cwd=$(pwd -P) probe=$SIM_PLUGIN_PROBE\"\necho to-stderr >&2\n",
        0o755,
    );
    root.write_plugin("20-sleeper", SLEEPER, 0o700);
    // Not plugins: a file without x bits and a directory.
    root.write_plugin("05-notes.txt", "#!/bin/sh\necho SHOULD-NOT-RUN\n", 0o644);
    std::fs::create_dir_all(
        root.installation()
            .join("left4dead2/addons/sim-plugins/15-dir"),
    )
    .unwrap();
    let out_s = out.path().to_str().unwrap();
    let mut sim = Sim::start_with_env(
        &root,
        &["+map", "c1m1_hotel", "-sim_churn", "0"],
        &[("SIM_PLUGIN_PROBE", "probe-value"), ("PLUGIN_OUT", out_s)],
    );

    // Same uid, working directory (srcds_run's own directory) and environment.
    let cwd = root.installation().canonicalize().unwrap();
    sim.wait_console(&format!(
        "[plugin 10-info] uid={} cwd={} probe=probe-value",
        uid(),
        cwd.display()
    ));
    sim.wait_stderr("[plugin 10-info] to-stderr");
    // An exited plugin is reported and not restarted.
    sim.wait_console("srcds-sim: plugin 10-info exited with status 0 (not restarted)");

    let console = sim.console_text();
    let first = position(&console, "srcds-sim: starting plugin 10-info");
    let second = position(&console, "srcds-sim: starting plugin 20-sleeper");
    let map = position(&console, "Executing dedicated server config file");
    assert!(
        first < second && second < map,
        "sorted, before the first map: {console}"
    );
    assert!(!console.contains("05-notes.txt") && !console.contains("SHOULD-NOT-RUN"));
    assert!(!console.contains("15-dir"));

    // The sleeper is the server's child, in its own process group.
    let pid = read_pid(&out.path().join("sleeper.pid"));
    let (_, ppid, pgrp) = proc_stat(pid).expect("sleeper running");
    assert_eq!(ppid, sim.child.id(), "a child of the server process");
    assert_eq!(pgrp, pid, "its own process group");

    sim.signal(libc::SIGINT);
    assert_eq!(sim.wait_exit().code(), Some(0));
    wait_gone(pid);
    assert_eq!(
        sim.console_text().matches("[plugin 10-info] uid=").count(),
        1,
        "ran once"
    );
}

#[test]
fn plugins_die_when_the_server_is_killed_or_crashes() {
    let root = installed(CFG);
    let out = tempfile::tempdir().unwrap();
    root.write_plugin("sleeper", SLEEPER, 0o755);
    let env = [("PLUGIN_OUT", out.path().to_str().unwrap())];

    // SIGKILL: no cleanup code runs at all; PR_SET_PDEATHSIG does it.
    let mut sim = Sim::start_with_env(&root, &["+map", "c1m1_hotel"], &env);
    let pid = read_pid(&out.path().join("sleeper.pid"));
    sim.signal(libc::SIGKILL);
    let _ = sim.wait_exit();
    wait_gone(pid);

    // The simulated crash (abort).
    std::fs::remove_file(out.path().join("sleeper.pid")).unwrap();
    let mut sim = Sim::start_with_env(&root, &["+map", "c1m1_hotel"], &env);
    let pid = read_pid(&out.path().join("sleeper.pid"));
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("s3cret"), 1);
    rcon.send(2, 2, b"sim_crash");
    assert!(!sim.wait_exit().success());
    wait_gone(pid);
}

// ---- 3. RCON hardening ---------------------------------------------------

#[test]
fn rcon_brute_force_is_banned_while_other_addresses_get_in() {
    let root = installed(CFG);
    let sim = Sim::start(&root, &["+map", "c1m1_hotel", "-sim_churn", "0"]);
    let attacker = Ipv4Addr::new(127, 0, 0, 2);

    // Engine defaults: more than sv_rcon_minfailures (5) failures within
    // sv_rcon_minfailuretime (30 s) ban the address (sv_rcon_banpenalty 0:
    // permanently). Five get the usual -1 ...
    let mut brute = Rcon::connect_from(attacker, sim.addr());
    for i in 0..5 {
        assert_eq!(brute.auth(&format!("guess-{i}")), -1, "attempt {i}");
    }
    // ... the sixth closes the connection without an answer.
    brute.send(99, 3, b"guess-5");
    assert!(brute.is_closed_by_server(), "closed at once on the ban");
    sim.wait_console("Banning 127.0.0.2 for rcon hacking attempts");

    // Further connections from it are closed at once, right password or not.
    let mut again = Rcon::connect_from(attacker, sim.addr());
    let _ = again.try_send(1, 3, b"s3cret");
    assert!(again.is_closed_by_server(), "banned address refused");
    // The ban covers the game port too ("Banned by server").
    let udp = UdpSocket::bind((attacker, 0)).unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    udp.send_to(&info_request(None), sim.addr()).unwrap();
    let mut buf = [0u8; 256];
    let (n, _) = udp.recv_from(&mut buf).expect("ban notice");
    assert_eq!(&buf[..n], b"\xFF\xFF\xFF\xFFlBanned by server\n\0");

    // The correct password from another address still works.
    let mut admin = Rcon::connect(sim.addr());
    assert_eq!(admin.auth("s3cret"), 1);
    let (list, _) = admin.exec(2, "listip");
    assert_eq!(
        list,
        "IP filter list: 1 entry\n1 127.  0.  0.  2 : permanent\n"
    );

    // The limits are cvars: with sv_rcon_minfailures 2 and a 30-minute
    // penalty, a second attacker is banned at its third failure.
    admin.exec(4, "sv_rcon_minfailures 2; sv_rcon_banpenalty 30");
    let second = Ipv4Addr::new(127, 0, 0, 3);
    let mut brute = Rcon::connect_from(second, sim.addr());
    assert_eq!(brute.auth("a"), -1);
    assert_eq!(brute.auth("b"), -1);
    brute.send(7, 3, b"c");
    assert!(brute.is_closed_by_server());
    let (list, _) = admin.exec(6, "listip");
    assert!(list.contains("2 127.  0.  0.  3 : 30.000 min"), "{list}");

    // removeip lifts a ban.
    let (out, _) = admin.exec(8, "removeip 127.0.0.2");
    assert_eq!(out, "removeip:  filter removed for 127.0.0.2\n");
    let mut back = Rcon::connect_from(attacker, sim.addr());
    assert_eq!(back.auth("s3cret"), 1);
}

#[test]
fn forty_idle_connections_do_not_lock_out_a_legitimate_client() {
    let root = installed(CFG);
    let sim = Sim::start(&root, &["+map", "c1m1_hotel", "-sim_churn", "0"]);
    // Connected, never authenticating, from the same address as the admin.
    let mut idle: Vec<Rcon> = (0..40).map(|_| Rcon::connect(sim.addr())).collect();
    let mut admin = Rcon::connect(sim.addr());
    assert_eq!(admin.auth("s3cret"), 1);
    let (echo, _) = admin.exec(2, "echo still in");
    assert_eq!(echo, "still in\n");
    // sim_rcon_max_unauthenticated is 16: the oldest idle connections were
    // closed to make room, 40 + 1 - 16 of them.
    for (i, c) in idle.iter_mut().take(25).enumerate() {
        assert!(c.is_closed_by_server(), "idle connection {i} still open");
    }
}

#[test]
fn unauthenticated_connections_time_out_authenticated_ones_stay() {
    let root = installed(&format!("{CFG}sim_rcon_auth_timeout 1\n"));
    let sim = Sim::start(&root, &["+map", "c1m1_hotel", "-sim_churn", "0"]);
    let mut admin = Rcon::connect(sim.addr());
    assert_eq!(admin.auth("s3cret"), 1);
    let mut idle = Rcon::connect(sim.addr());
    idle.stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    assert!(idle.is_closed_by_server(), "closed for not authenticating");
    sim.wait_console("not authenticated within sim_rcon_auth_timeout");
    // The admin connected before the idle one and is still served.
    let (echo, _) = admin.exec(2, "echo after the timeout");
    assert_eq!(echo, "after the timeout\n");
}

// ---- 4. Ports ------------------------------------------------------------

fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

fn udp_port_taken(port: u16) -> bool {
    matches!(UdpSocket::bind(("127.0.0.1", port)), Err(e) if e.kind() == std::io::ErrorKind::AddrInUse)
}

/// Runs srcds_run to completion (for startups that must fail).
fn run_to_exit(root: &Root, args: &[&str]) -> std::process::Output {
    let mut child = Command::new(root.installation().join("srcds_run"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("srcds_run {args:?} kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn clientport_is_bound_and_a_busy_one_moves_with_the_engine_warning() {
    let root = installed(CFG);
    let client = free_udp_port().to_string();
    let sim = Sim::start(&root, &["+clientport", &client, "+map", "c1m1_hotel"]);
    sim.wait_console(&format!("ports {} SV / {client} CL", sim.port));
    assert!(udp_port_taken(client.parse().unwrap()), "client port bound");

    // Taken, without -strictportbind: the next port, with the warning.
    let busy = UdpSocket::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let sim = Sim::start(
        &root,
        &["+clientport", &busy_port.to_string(), "+map", "c1m1_hotel"],
    );
    sim.wait_console(&format!(
        "WARNING: Port {busy_port} was unavailable - bound to port "
    ));
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("s3cret"), 1, "the server runs on");
}

#[test]
fn strictportbind_refuses_to_start_on_a_busy_port() {
    let root = installed(CFG);
    let strict = |host: u16, client: u16, extra: &[&str]| {
        let (host, client) = (host.to_string(), client.to_string());
        let mut args = vec![
            "-game",
            "left4dead2",
            "-strictportbind",
            "+ip",
            "127.0.0.1",
            "+hostport",
            &host,
            "+clientport",
            &client,
            "+map",
            "c1m1_hotel",
        ];
        args.extend_from_slice(extra);
        run_to_exit(&root, &args)
    };
    let message = |port: u16| {
        format!("ERROR: Port {port} was unavailable - quitting due to \"-strictportbind\" command-line flag!")
    };

    // The host port.
    let busy = UdpSocket::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let out = strict(busy_port, free_udp_port(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&message(busy_port)), "{stdout}");
    assert!(!stdout.contains("Started map"), "{stdout}");

    // The client port: the engine applies -strictportbind to it too.
    let out = strict(free_port(), busy_port, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&message(busy_port)), "{stdout}");

    // SourceTV's port, once tv_enable makes the server open it.
    let out = strict(
        free_port(),
        free_udp_port(),
        &["+tv_enable", "1", "+tv_port", &busy_port.to_string()],
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&message(busy_port)), "{stdout}");

    // Without -strictportbind a busy host port still fails as before.
    let out = run_to_exit(
        &root,
        &[
            "-game",
            "left4dead2",
            "+ip",
            "127.0.0.1",
            "+hostport",
            &busy_port.to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot bind UDP"));
    drop(busy);

    // All ports free: -strictportbind starts normally.
    let port = free_port();
    let client = free_udp_port();
    let sim = Sim::spawn_on(
        &root,
        port,
        &[
            "-strictportbind",
            "+clientport",
            &client.to_string(),
            "+map",
            "c1m1_hotel",
        ],
        &[],
    );
    sim.wait_console("Started map \"c1m1_hotel\"");
    assert!(udp_port_taken(client));
}

#[test]
fn tv_port_is_bound_only_with_tv_enable() {
    let root = installed(CFG);
    let tv = free_udp_port();
    let tv_s = tv.to_string();
    let sim = Sim::start(&root, &["+tv_port", &tv_s, "+map", "c1m1_hotel"]);
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("s3cret"), 1);
    assert_eq!(cvar(&mut rcon, 2, "tv_port"), tv_s, "accepted as the cvar");
    assert!(!udp_port_taken(tv), "tv_enable 0: no SourceTV socket");
    drop(sim);

    let sim = Sim::start(
        &root,
        &["+tv_enable", "1", "+tv_port", &tv_s, "+map", "c1m1_hotel"],
    );
    sim.wait_console(&format!("SourceTV port {tv}"));
    assert!(udp_port_taken(tv), "tv_enable 1: SourceTV socket bound");
}

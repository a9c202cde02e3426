//! srcds-sim as a real process started through `srcds_run` from a
//! steamcmd-sim installation, exercised over real UDP and TCP sockets.

use crate::util::*;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

const CFG: &str = "// test server\n\
hostname \"Sim Test Server\" // trailing comment\n\
rcon_password s3cret\n\
sv_maxplayers 6\n";

fn installed(cfg: &str) -> Root {
    let root = Root::new();
    root.install();
    root.write_server_cfg(cfg);
    root
}

/// The A2S_INFO challenge round trip, checked byte by byte.
#[test]
fn a2s_info_challenge_and_layout() {
    let root = installed(CFG);
    let sim = Sim::start(
        &root,
        &[
            "+map",
            "c1m1_hotel",
            "-sim_players",
            "3",
            "-sim_churn",
            "0",
            "-tickrate",
            "60",
        ],
    );

    let first = udp_query(sim.addr(), &info_request(None));
    assert_eq!(first.len(), 9, "S2C_CHALLENGE is header + 'A' + long");
    assert_eq!(&first[..5], &[0xFF, 0xFF, 0xFF, 0xFF, 0x41]);
    let challenge: [u8; 4] = first[5..9].try_into().unwrap();

    // A wrong challenge is answered with the challenge again.
    let wrong = [
        challenge[0] ^ 0xFF,
        challenge[1],
        challenge[2],
        challenge[3],
    ];
    let again = udp_query(sim.addr(), &info_request(Some(wrong)));
    assert_eq!(&again[..5], &[0xFF, 0xFF, 0xFF, 0xFF, 0x41]);
    assert_eq!(&again[5..], &challenge);

    let reply = udp_query(sim.addr(), &info_request(Some(challenge)));
    let mut c = Cursor(&reply);
    assert_eq!(c.long(), -1);
    assert_eq!(c.byte(), 0x49, "S2A_INFO");
    assert_eq!(c.byte(), 17, "protocol");
    assert_eq!(c.string(), "Sim Test Server");
    assert_eq!(c.string(), "c1m1_hotel");
    assert_eq!(c.string(), "left4dead2");
    assert_eq!(c.string(), "Left 4 Dead 2");
    assert_eq!(c.short(), 550, "app id");
    assert_eq!(c.byte(), 3, "players");
    assert_eq!(c.byte(), 6, "max players from sv_maxplayers");
    assert_eq!(c.byte(), 0, "bots");
    assert_eq!(c.byte(), b'd');
    assert_eq!(c.byte(), b'l');
    assert_eq!(c.byte(), 0, "no sv_password: public");
    assert_eq!(c.byte(), 1, "VAC");
    assert_eq!(c.string(), "2.2.3.6", "PatchVersion from steam.inf");
    let edf = c.byte();
    assert_eq!(edf, 0x80 | 0x10 | 0x20 | 0x01);
    assert_eq!(c.short() as u16, sim.port);
    let steam_id = c.long_long();
    assert_eq!(steam_id >> 52, 0x014, "anonymous game server SteamID");
    assert!(c.string().starts_with("coop,"));
    assert_eq!(c.long_long(), 550, "game id");
    assert!(c.0.is_empty(), "no trailing bytes");
}

#[test]
fn a2s_player_and_rules_need_the_challenge() {
    let root = installed(CFG);
    let sim = Sim::start(
        &root,
        &[
            "+map",
            "c2m1_highway",
            "-sim_players",
            "2",
            "-sim_churn",
            "0",
        ],
    );
    let mut req = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x55];
    req.extend_from_slice(&(-1i32).to_le_bytes());
    let ch = udp_query(sim.addr(), &req);
    assert_eq!(&ch[..5], &[0xFF, 0xFF, 0xFF, 0xFF, 0x41]);
    let mut req = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x55];
    req.extend_from_slice(&ch[5..9]);
    let reply = udp_query(sim.addr(), &req);
    let mut c = Cursor(&reply);
    assert_eq!(c.long(), -1);
    assert_eq!(c.byte(), 0x44, "S2A_PLAYER");
    let n = c.byte();
    assert_eq!(n, 2);
    let mut names = Vec::new();
    for _ in 0..n {
        let _index = c.byte();
        names.push(c.string());
        let _score = c.long();
        let duration = c.float();
        assert!((0.0..3600.0).contains(&duration));
    }
    assert!(c.0.is_empty());

    // The same players show in status.
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("s3cret"), 1);
    let (status, _) = rcon.exec(10, "status");
    for name in &names {
        assert!(
            status.contains(&format!("\"{name}\"")),
            "{name} missing in {status}"
        );
    }
    // The benchmark counters: `status` over RCON counted, A2S_INFO answers
    // counted (a challenge reply is not an answer), the counter query itself not.
    let counts = |rcon: &mut Rcon, id| -> (u64, u64) {
        let (text, _) = rcon.exec(id, "sim_query_counts");
        let words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(words.len(), 4, "{text:?}");
        assert_eq!((words[0], words[2]), ("a2s_info", "rcon_status"));
        (words[1].parse().unwrap(), words[3].parse().unwrap())
    };
    let (info_before, status_before) = counts(&mut rcon, 11);
    assert_eq!(status_before, 1);
    let mut info = b"\xFF\xFF\xFF\xFFTSource Engine Query\0".to_vec();
    let ch = udp_query(sim.addr(), &info);
    assert_eq!(ch[4], 0x41, "challenge first");
    info.extend_from_slice(&ch[5..9]);
    assert_eq!(udp_query(sim.addr(), &info)[4], 0x49, "S2A_INFO");
    assert_eq!(counts(&mut rcon, 12), (info_before + 1, 1));
    rcon.exec(13, "status");
    assert_eq!(counts(&mut rcon, 14), (info_before + 1, 2));

    let mut rules = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x56];
    rules.extend_from_slice(&ch[5..9]);
    let reply = udp_query(sim.addr(), &rules);
    let mut c = Cursor(&reply);
    assert_eq!(c.long(), -1);
    assert_eq!(c.byte(), 0x45);
    let count = c.short();
    let pairs: Vec<(String, String)> = (0..count).map(|_| (c.string(), c.string())).collect();
    assert!(
        pairs.contains(&("mp_gamemode".into(), "coop".into())),
        "{pairs:?}"
    );
    assert!(pairs.contains(&("sv_password".into(), "0".into())));
}

/// An independent client (the `a2s` crate) agrees with our replies.
#[test]
fn a2s_crate_reads_our_replies() {
    let root = installed(CFG);
    let sim = Sim::start(
        &root,
        &[
            "+map",
            "c1m2_streets",
            "-sim_players",
            "2",
            "-sim_churn",
            "0",
        ],
    );
    let client = a2s::A2SClient::new().unwrap();
    let info = client.info(sim.addr()).unwrap();
    assert_eq!(info.name, "Sim Test Server");
    assert_eq!(info.map, "c1m2_streets");
    assert_eq!(info.folder, "left4dead2");
    assert_eq!(info.app_id, 550);
    assert_eq!(info.players, 2);
    assert_eq!(info.max_players, 6);
    assert_eq!(info.extended_server_info.port, Some(sim.port));
    let players = client.players(sim.addr()).unwrap();
    assert_eq!(players.len(), 2);
    let rules = client.rules(sim.addr()).unwrap();
    assert!(rules.iter().any(|r| r.name == "mp_gamemode"));
}

#[test]
fn malformed_udp_does_not_crash() {
    let root = installed(CFG);
    let sim = Sim::start(&root, &["+map", "c1m1_hotel", "-sim_churn", "0"]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xFF],
        vec![0xFF, 0xFF, 0xFF, 0xFF],
        vec![0xFF, 0xFF, 0xFF, 0xFF, 0x54],
        vec![0xFF, 0xFF, 0xFF, 0xFF, 0x54, b'S', b'o'],
        vec![0xFF, 0xFF, 0xFF, 0xFF, 0x55, 1],
        vec![0xFE, 0xFF, 0xFF, 0xFF, 0x54],
        vec![0xFF, 0xFF, 0xFF, 0xFF, 0x00],
        vec![0xAB; 1500],
    ];
    for j in &junk {
        sock.send_to(j, sim.addr()).unwrap();
    }
    // Junk gets no reply; a proper query still does.
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        sock.recv_from(&mut buf).is_err(),
        "malformed requests must not be answered"
    );
    let reply = udp_query(sim.addr(), &info_request(None));
    assert_eq!(reply[4], 0x41);
}

#[test]
fn rcon_auth_good_bad_and_before_auth() {
    let root = installed(CFG);
    let sim = Sim::start(&root, &["+map", "c1m1_hotel", "-sim_churn", "0"]);

    let mut bad = Rcon::connect(sim.addr());
    assert_eq!(bad.auth("wrong"), -1, "bad password: AUTH_RESPONSE id -1");
    // Commands without auth get the auth failure reply.
    bad.send(5, 2, b"status");
    let p = bad.read();
    assert_eq!((p.id, p.kind), (-1, 2));
    // A retry with the right password on the same connection works.
    assert_eq!(bad.auth("s3cret"), 1);

    let mut good = Rcon::connect(sim.addr());
    good.send(77, 3, b"s3cret");
    let empty = good.read();
    assert_eq!(
        (empty.size, empty.id, empty.kind, empty.payload.as_slice()),
        (10, 77, 0, &[0u8, 0][..])
    );
    let auth = good.read();
    assert_eq!((auth.size, auth.id, auth.kind), (10, 77, 2));
    let (echo, _) = good.exec(100, "echo hello there");
    assert_eq!(echo, "hello there\n");
    let (unknown, _) = good.exec(102, "frobnicate 1");
    assert_eq!(unknown, "Unknown command \"frobnicate\"\n");
    let (host, _) = good.exec(104, "hostname");
    assert!(
        host.starts_with("\"hostname\" = \"Sim Test Server\""),
        "{host}"
    );
}

#[test]
fn rcon_refused_without_rcon_password() {
    let root = installed("hostname nopw\n");
    let sim = Sim::start(&root, &["+map", "c1m1_hotel", "-sim_churn", "0"]);
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth(""), -1);
    // srcds closes such connections.
    let mut buf = [0u8; 1];
    assert_eq!(
        std::io::Read::read(&mut rcon.stream, &mut buf).unwrap(),
        0,
        "connection closed"
    );
}

#[test]
fn rcon_status_in_l4d2_format() {
    let root = installed(CFG);
    let sim = Sim::start(
        &root,
        &["+map", "c1m1_hotel", "-sim_players", "2", "-sim_churn", "0"],
    );
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("s3cret"), 1);
    let (status, _) = rcon.exec(3, "status");
    let lines: Vec<&str> = status.lines().collect();
    assert_eq!(lines[0], "hostname: Sim Test Server");
    assert!(lines[1].starts_with("version : 2.2.3.6 "), "{status}");
    assert_eq!(lines[2], format!("udp/ip  : 127.0.0.1:{}", sim.port));
    assert_eq!(lines[3], "os      : Linux Dedicated");
    assert_eq!(lines[4], "map     : c1m1_hotel");
    assert_eq!(
        lines[5],
        "players : 2 humans, 0 bots (6 max) (not hibernating) (unreserved)"
    );
    assert_eq!(lines[6], "");
    assert_eq!(
        lines[7],
        "# userid name uniqueid connected ping loss state rate adr"
    );
    for (slot, row) in lines[8..10].iter().enumerate() {
        // #  2 1 "Name" STEAM_1:0:123 00:01 45 0 active 30000 203.0.113.7:27005
        assert!(row.starts_with('#'), "{row}");
        let (head, rest) = row.split_once(" \"").unwrap();
        let nums: Vec<&str> = head[1..].split_whitespace().collect();
        assert_eq!(nums[1], (slot + 1).to_string(), "{row}");
        assert!(nums[0].parse::<u32>().unwrap() >= 2);
        let (_name, tail) = rest.split_once("\" ").unwrap();
        let f: Vec<&str> = tail.split(' ').collect();
        assert!(f[0].starts_with("STEAM_1:"), "{row}");
        assert_eq!(f[1].len(), 5, "mm:ss in {row}");
        assert!(f[2].parse::<u32>().is_ok());
        assert_eq!(&f[3..6], &["0", "active", "30000"]);
        assert!(f[6].ends_with(":27005"));
    }
    assert_eq!(lines[10], "#end");
    assert_eq!(lines.len(), 11);
}

#[test]
fn rcon_multi_packet_reply() {
    let root = installed(CFG);
    let sim = Sim::start(
        &root,
        &["+map", "c1m1_hotel", "-sim_churn", "0", "-sim_players", "0"],
    );
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("s3cret"), 1);
    let (text, packets) = rcon.exec(20, "sim_long 300");
    assert!(packets.len() >= 5, "{} packets", packets.len());
    assert!(packets.iter().all(|p| p.size <= 4096));
    assert!(
        packets[..packets.len() - 1].iter().all(|p| p.size == 4096),
        "full packets before the last"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 300);
    assert!(lines[0].starts_with("sim_long line 000001 of 000300"));
    assert!(lines[299].starts_with("sim_long line 000300 of 000300"));
    // The connection keeps working afterwards.
    let (echo, _) = rcon.exec(30, "echo after");
    assert_eq!(echo, "after\n");
    let (cvars, _) = rcon.exec(40, "cvarlist");
    assert!(cvars.contains("total convars/concommands"));
}

#[test]
fn malformed_rcon_does_not_crash() {
    let root = installed(CFG);
    let sim = Sim::start(&root, &["+map", "c1m1_hotel", "-sim_churn", "0"]);
    let garbage: Vec<Vec<u8>> = vec![
        (-1i32).to_le_bytes().to_vec(),
        5000i32.to_le_bytes().to_vec(),
        {
            let mut v = 10i32.to_le_bytes().to_vec();
            v.extend_from_slice(&[1, 0, 0, 0, 3, 0, 0, 0, b'x', b'y']);
            v
        },
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![12, 0, 0], // truncated, then the peer hangs up
    ];
    for g in garbage {
        let mut s = TcpStream::connect(sim.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&g).unwrap();
        drop(s);
    }
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("s3cret"), 1);
    let (echo, _) = rcon.exec(2, "echo still alive");
    assert_eq!(echo, "still alive\n");
}

#[test]
fn say_changelevel_kick_and_log_lines() {
    let root = installed(&format!("{CFG}log on\n"));
    let sim = Sim::start(
        &root,
        &[
            "+map",
            "c1m1_hotel",
            "-sim_players",
            "0",
            "-sim_churn",
            "0",
            "-sim_log_loopback",
        ],
    );
    let logs = LogListener::new();
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("s3cret"), 1);
    let (added, _) = rcon.exec(2, &format!("logaddress_add {}", logs.addr()));
    assert_eq!(added, format!("logaddress_add:  {}\n", logs.addr()));
    let (list, _) = rcon.exec(4, "logaddress_list");
    assert!(list.contains(&logs.addr().to_string()), "{list}");

    rcon.exec(6, "say hello survivors");
    let pkt = logs.wait_for("say \"hello survivors\"");
    assert_eq!(&pkt[..5], &[0xFF, 0xFF, 0xFF, 0xFF, b'R']);
    assert_eq!(&pkt[pkt.len() - 2..], b"\n\0");
    let line = std::str::from_utf8(&pkt[5..pkt.len() - 2]).unwrap();
    // L MM/DD/YYYY - HH:MM:SS: <event>
    let b = line.as_bytes();
    assert!(line.starts_with("L "), "{line}");
    assert_eq!(
        (b[4], b[7], &line[12..15], b[17], b[20], &line[23..25]),
        (b'/', b'/', " - ", b':', b':', ": "),
        "{line}"
    );
    assert_eq!(
        &line[25..],
        "\"Console<0><Console><Console>\" say \"hello survivors\""
    );
    sim.wait_console("Console: hello survivors");

    let (ok, _) = rcon.exec(8, "changelevel c2m1_highway");
    assert_eq!(ok, "");
    logs.wait_for("Loading map \"c2m1_highway\"");
    logs.wait_for("Started map \"c2m1_highway\"");
    let info = a2s::A2SClient::new().unwrap().info(sim.addr()).unwrap();
    assert_eq!(info.map, "c2m1_highway");
    let (bad, _) = rcon.exec(10, "changelevel c9m9_nowhere");
    assert_eq!(
        bad,
        "CModelLoader::Map_IsValid:  No such map 'maps/c9m9_nowhere.bsp'\nchangelevel failed: c9m9_nowhere not found\n"
    );
    let (bad_map, _) = rcon.exec(10, "map c9m9_nothere");
    assert!(
        bad_map.ends_with("map load failed: c9m9_nothere not found or invalid\n"),
        "{bad_map}"
    );
    // The answer goes to the RCON client only, as the engine redirects it;
    // the level that runs stays.
    assert!(!sim.console_text().contains("map load failed: c9m9_nothere"));
    let info = a2s::A2SClient::new().unwrap().info(sim.addr()).unwrap();
    assert_eq!(info.map, "c2m1_highway");
    let (escape, _) = rcon.exec(11, "changelevel ../../etc/passwd");
    assert!(
        escape.ends_with("changelevel failed: ../../etc/passwd not found\n"),
        "{escape}"
    );

    let (joined, _) = rcon.exec(12, "sim_join Test Player");
    assert!(joined.starts_with("sim_join: userid "), "{joined}");
    let connected = logs.wait_for("\"Test Player<");
    assert!(String::from_utf8_lossy(&connected).contains("connected, address \"203.0.113."));
    logs.wait_for("entered the game");
    let (status, _) = rcon.exec(14, "status");
    assert!(status.contains("\"Test Player\""));
    let userid: u32 = joined.trim().rsplit(' ').next().unwrap().parse().unwrap();

    let (kicked, _) = rcon.exec(16, &format!("kick #{userid}"));
    assert_eq!(kicked, "");
    logs.wait_for("was kicked by \"Console\"");
    logs.wait_for("disconnected (reason \"Kicked by Console\")");
    let (status, _) = rcon.exec(18, "status");
    assert!(!status.contains("\"Test Player\""), "{status}");
    let (missing, _) = rcon.exec(20, "kick Nobody");
    assert_eq!(missing, "Can't kick \"Nobody\", no such player\n");

    // rcon commands themselves are logged, like srcds does.
    logs.wait_for(": command \"status\"");
    let (del, _) = rcon.exec(22, &format!("logaddress_del {}", logs.addr()));
    assert_eq!(del, format!("logaddress_del:  {}\n", logs.addr()));
}

#[test]
fn log_lines_carry_the_secret() {
    let root = installed(&format!("{CFG}sv_logsecret 4242\nlog on\n"));
    let sim = Sim::start(
        &root,
        &[
            "+map",
            "c1m1_hotel",
            "-sim_players",
            "0",
            "-sim_churn",
            "0",
            "-sim_log_loopback",
        ],
    );
    let logs = LogListener::new();
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("s3cret"), 1);
    rcon.exec(2, &format!("logaddress_add {}", logs.addr()));
    rcon.exec(4, "sim_join Secretive");
    let pkt = logs.wait_for("Secretive<");
    assert_eq!(&pkt[..9], b"\xFF\xFF\xFF\xFFS4242");
    assert_eq!(&pkt[9..11], b"L ");
}

#[test]
fn log_lines_for_127_0_0_1_stay_in_the_engine_like_srcds() {
    let root = installed(&format!("{CFG}log on\n"));
    let sim = Sim::start(
        &root,
        &["+map", "c1m1_hotel", "-sim_players", "0", "-sim_churn", "0"],
    );
    let localhost = LogListener::new();
    let alias = LogListener::on("127.0.0.2");
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("s3cret"), 1);
    rcon.exec(2, &format!("logaddress_add {}", localhost.addr()));
    rcon.exec(3, &format!("logaddress_add {}", alias.addr()));
    rcon.exec(4, "say only the alias hears this");
    // Another loopback address is a real destination.
    alias.wait_for("only the alias hears this");
    let mut buf = [0u8; 2048];
    localhost
        .sock
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(
        localhost.sock.recv_from(&mut buf).is_err(),
        "no packet to exactly 127.0.0.1 (the engine's in-process loopback)"
    );
    // Unless the engine is told to use sockets for loopback.
    rcon.exec(5, "net_usesocketsforloopback 1");
    rcon.exec(6, "say now both hear this");
    localhost.wait_for("now both hear this");
    alias.wait_for("now both hear this");
}

#[test]
fn server_cfg_defaults_and_quoting() {
    // No server.cfg at all: srcds's default hostname.
    let root = Root::new();
    root.install();
    let sim = Sim::start(&root, &["+map", "c1m1_hotel", "-sim_churn", "0"]);
    let info = a2s::A2SClient::new().unwrap().info(sim.addr()).unwrap();
    assert_eq!(info.name, "Left 4 Dead 2");
    assert_eq!(info.max_players, 4, "coop default");
    drop(sim);

    root.write_server_cfg("hostname Unquoted;sv_password \"pw\"\nrcon_password \"a b\"\nmp_gamemode versus\nsm_plugin_cvar 1\n");
    let sim = Sim::start(&root, &["+map", "c1m1_hotel", "-sim_churn", "0"]);
    let info = a2s::A2SClient::new().unwrap().info(sim.addr()).unwrap();
    assert_eq!(info.name, "Unquoted");
    assert_eq!(info.max_players, 8, "versus default");
    assert!(info.visibility, "sv_password set");
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("a b"), 1);
    sim.wait_console("Unknown command \"sm_plugin_cvar\"");
}

#[test]
fn sigint_shuts_down_cleanly() {
    let root = installed(&format!("{CFG}log on\n"));
    let mut sim = Sim::start(
        &root,
        &[
            "+map",
            "c1m1_hotel",
            "-sim_log_loopback",
            "-sim_churn",
            "0.2",
        ],
    );
    let logs = LogListener::new();
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("s3cret"), 1);
    rcon.exec(2, &format!("logaddress_add {}", logs.addr()));
    sim.signal(libc::SIGINT);
    let status = sim.wait_exit();
    assert_eq!(status.code(), Some(0), "SIGINT exits 0");
    logs.wait_for("Log file closed.");
    sim.wait_console("Server shutdown complete.");
    // The port is free again.
    assert!(UdpSocket::bind(("127.0.0.1", sim.port)).is_ok());
}

#[test]
fn sigterm_and_quit_shut_down_cleanly() {
    let root = installed(CFG);
    let mut sim = Sim::start(&root, &["+map", "c1m1_hotel"]);
    sim.signal(libc::SIGTERM);
    assert_eq!(sim.wait_exit().code(), Some(0));

    let mut sim = Sim::start(&root, &["+map", "c1m1_hotel"]);
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("s3cret"), 1);
    rcon.send(2, 2, b"quit");
    assert_eq!(sim.wait_exit().code(), Some(0));
}

#[test]
fn crash_switches_exit_abnormally() {
    use std::os::unix::process::ExitStatusExt;
    let root = installed(CFG);
    let mut sim = Sim::start(&root, &["+map", "c1m1_hotel"]);
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("s3cret"), 1);
    rcon.send(2, 2, b"sim_crash");
    let status = sim.wait_exit();
    assert!(!status.success());
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}");

    let mut sim = Sim::start(&root, &["+map", "c1m1_hotel", "-sim_crash_after", "2"]);
    let status = sim.wait_exit();
    assert!(!status.success(), "{status:?}");
}

#[test]
fn bad_command_lines_fail_clearly() {
    let root = installed(CFG);
    let run = |args: &[&str]| {
        std::process::Command::new(root.installation().join("srcds_run"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["-game", "left4dead2", "+map", "c1m1_hotel"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing +hostport"));
    let out = run(&["-game", "left4dead2", "+hostport", "99999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid +hostport value \"99999\""));
    let out = run(&["-game", "nosuchgame", "+hostport", "27015"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("game directory \"nosuchgame\" not found")
    );
    let out = run(&["+hostport", "27015"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing -game"));

    // Port already in use.
    let busy = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let out = run(&[
        "-game",
        "left4dead2",
        "+ip",
        "127.0.0.1",
        "+hostport",
        &port,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot bind UDP"));
}

#[test]
fn unknown_map_at_start_keeps_running_without_map() {
    let root = installed(CFG);
    let sim = Sim::start(
        &root,
        &[
            "+map",
            "c9m9_nowhere",
            "-unknownflag",
            "+sv_lan",
            "1",
            "+rcon_password",
            "from-cmdline",
        ],
    );
    sim.wait_console("CModelLoader::Map_IsValid:  No such map 'maps/c9m9_nowhere.bsp'");
    sim.wait_console("map load failed: c9m9_nowhere not found or invalid");
    let info = a2s::A2SClient::new().unwrap().info(sim.addr()).unwrap();
    assert_eq!(info.map, "");
    assert_eq!(info.players, 0, "nobody joins a server without a map");
    // No map, no server.cfg: the engine runs it only at a map load, so its
    // hostname and rcon_password never apply.
    assert_eq!(info.name, "Left 4 Dead 2");
    assert!(!sim
        .console_text()
        .contains("Executing dedicated server config file"));
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("s3cret"), -1, "server.cfg's password is not set");
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("from-cmdline"), 1);
    let (lan, _) = rcon.exec(2, "sv_lan");
    assert!(lan.starts_with("\"sv_lan\" = \"1\""), "{lan}");
}

#[test]
fn players_churn_over_time() {
    let root = installed(&format!("{CFG}log on\n"));
    let sim = Sim::start(
        &root,
        &[
            "+map",
            "c1m1_hotel",
            "-sim_players",
            "1",
            "-sim_churn",
            "0.1",
        ],
    );
    // With a 0.1 s churn, both later joins and leaves show up in the console.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = sim.console_text();
        if text.contains("Dropped ") && text.matches("Client \"").count() >= 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no churn: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `stats`: the engine's header and one row of eight values; FPS follows
/// the tick rate, Players counts humans, map changes and connects count up.
#[test]
fn stats_in_the_engine_layout() {
    let root = installed(CFG);
    let sim = Sim::start(
        &root,
        &[
            "+map",
            "c2m1_highway",
            "-sim_players",
            "2",
            "-sim_churn",
            "0",
            "-tickrate",
            "60",
        ],
    );
    let mut rcon = Rcon::connect(sim.addr());
    assert_eq!(rcon.auth("s3cret"), 1);
    let row = |rcon: &mut Rcon, id| -> Vec<String> {
        let (text, _) = rcon.exec(id, "stats");
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("CPU    In (KB/s)  Out (KB/s)  Uptime  Map changes  FPS      Players  Connects"),
            "{text:?}"
        );
        let row: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        assert_eq!(row.len(), 8, "{text:?}");
        assert_eq!(lines.next(), None, "{text:?}");
        row
    };
    let first = row(&mut rcon, 2);
    let fps: f64 = first[5].parse().unwrap();
    assert!((58.0..=60.0).contains(&fps), "{first:?}");
    let cpu: f64 = first[0].parse().unwrap();
    assert!((0.0..=100.0).contains(&cpu), "{first:?}");
    assert!(
        first[1].parse::<f64>().unwrap() > 0.0,
        "two players send data"
    );
    assert_eq!(&first[3..5], ["0", "0"], "uptime minutes, map changes");
    assert_eq!(&first[6..], ["2", "2"], "players, connects");
    rcon.exec(3, "changelevel c2m1_highway");
    rcon.exec(4, "sim_join Late Comer");
    let second = row(&mut rcon, 5);
    assert_eq!(second[4], "1", "{second:?}");
    assert_eq!(&second[6..], ["3", "3"], "{second:?}");
}

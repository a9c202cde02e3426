//! Every parser against good samples, every prefix truncation of them,
//! mutated samples, random bytes, oversized/negative sizes and invalid
//! UTF-8: correct values for good input, an error (never a panic) for bad.

use source_proto::a2s::{self, A2sError, SplitCollector};
use source_proto::hllog::{self, LogError, LogEvent};
use source_proto::listener::{DropReason, LogListener};
use source_proto::rcon::{self, Packet, RconError};
use source_proto::status::{self, StatusError};
use source_proto::steamid;

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
    /// `sample` with a few bytes overwritten, inserted or removed.
    fn mutate(&mut self, sample: &[u8]) -> Vec<u8> {
        let mut v = sample.to_vec();
        for _ in 0..=self.below(4) {
            match self.below(3) {
                0 if !v.is_empty() => {
                    let i = self.below(v.len());
                    v[i] = self.next() as u8;
                }
                1 => {
                    let i = self.below(v.len() + 1);
                    v.insert(i, self.next() as u8);
                }
                _ if !v.is_empty() => {
                    let i = self.below(v.len());
                    v.remove(i);
                }
                _ => {}
            }
        }
        v
    }
}

const ROUNDS: usize = 5000;

// ---------------------------------------------------------------- RCON

fn raw_packet(size: i32, id: i32, kind: i32, payload: &[u8]) -> Vec<u8> {
    let mut v = size.to_le_bytes().to_vec();
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(&kind.to_le_bytes());
    v.extend_from_slice(payload);
    v
}

#[test]
fn rcon_roundtrip_and_stream_of_packets() {
    let p = Packet {
        id: 7,
        kind: rcon::SERVERDATA_AUTH,
        body: b"pw".to_vec(),
    };
    let bytes = rcon::encode_packet(&p).unwrap();
    assert_eq!(
        bytes,
        vec![12, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0, 0, b'p', b'w', 0, 0]
    );
    let mut stream = bytes.clone();
    // srcds's end-marker trailer: body 00 01 00 00 after the mirror.
    stream.extend(raw_packet(14, 9, 0, &[0, 1, 0, 0, 0, 0]));
    let (first, used) = rcon::decode_packet(&stream).unwrap();
    assert_eq!((first, used), (p, 16));
    let (trailer, used2) = rcon::decode_packet(&stream[used..]).unwrap();
    assert_eq!(
        (trailer.id, trailer.kind, trailer.body.len(), used2),
        (9, 0, 0, 18)
    );
}

#[test]
fn rcon_every_truncation_is_incomplete() {
    let full = rcon::encode_packet(&Packet {
        id: 42,
        kind: 0,
        body: b"hostname: x\nmap     : c1m1_hotel\n".to_vec(),
    })
    .unwrap();
    for cut in 0..full.len() {
        match rcon::decode_packet(&full[..cut]) {
            Err(RconError::Incomplete { have, need }) => {
                assert_eq!(have, cut);
                assert!(need > cut);
            }
            other => panic!("prefix {cut}: {other:?}"),
        }
    }
    assert!(rcon::decode_packet(&full).is_ok());
}

#[test]
fn rcon_bad_sizes_and_terminators() {
    for size in [
        i32::MIN,
        -1,
        0,
        9,
        rcon::MAX_RESPONSE_PACKET_SIZE + 1,
        i32::MAX,
    ] {
        let bytes = raw_packet(size, 1, 0, &[0, 0]);
        assert!(
            matches!(rcon::decode_packet(&bytes), Err(RconError::BadSize { size: s, .. }) if s == size),
            "size {size}"
        );
    }
    // No NUL anywhere in the payload.
    let bytes = raw_packet(10, 1, 0, b"ab");
    assert!(matches!(
        rcon::decode_packet(&bytes),
        Err(RconError::Unterminated)
    ));
    // Invalid UTF-8 in a body is kept as bytes (the client decodes lossily).
    let (p, _) = rcon::decode_packet(&raw_packet(12, 1, 0, &[0xFF, 0xC3, 0, 0])).unwrap();
    assert_eq!(p.body, vec![0xFF, 0xC3]);
    // Requests that cannot be framed.
    let long = Packet {
        id: 1,
        kind: 2,
        body: vec![b'a'; rcon::MAX_COMMAND_LEN + 1],
    };
    assert!(matches!(
        rcon::encode_packet(&long),
        Err(RconError::CommandTooLong { .. })
    ));
    let nul = Packet {
        id: 1,
        kind: 2,
        body: b"a\0b".to_vec(),
    };
    assert!(matches!(
        rcon::encode_packet(&nul),
        Err(RconError::CommandHasNul)
    ));
}

#[test]
fn rcon_random_and_mutated_bytes_never_panic() {
    let mut rng = Rng(0x5EED_0001);
    let sample = rcon::encode_packet(&Packet {
        id: 3,
        kind: 0,
        body: b"output".to_vec(),
    })
    .unwrap();
    for _ in 0..ROUNDS {
        for input in [rng.bytes(64), rng.mutate(&sample)] {
            if let Ok((p, used)) = rcon::decode_packet(&input) {
                assert!(used <= input.len() && used >= 14);
                assert!(p.body.len() <= used - 13);
            }
        }
    }
}

// ---------------------------------------------------------------- A2S

fn info_sample() -> Vec<u8> {
    let mut v = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x49, 17];
    for s in [
        "My \"L4D2\" Server",
        "c1m1_hotel",
        "left4dead2",
        "Left 4 Dead 2",
    ] {
        v.extend_from_slice(s.as_bytes());
        v.push(0);
    }
    v.extend_from_slice(&550u16.to_le_bytes());
    v.extend_from_slice(&[3, 8, 1, b'd', b'l', 0, 1]);
    v.extend_from_slice(b"2.2.3.6\0");
    v.push(0x80 | 0x10 | 0x40 | 0x20 | 0x01);
    v.extend_from_slice(&27015u16.to_le_bytes());
    v.extend_from_slice(&90_071_992_547_409_920u64.to_le_bytes());
    v.extend_from_slice(&27020u16.to_le_bytes());
    v.extend_from_slice(b"SourceTV\0");
    v.extend_from_slice(b"coop,secure\0");
    v.extend_from_slice(&550u64.to_le_bytes());
    v
}

/// Offset just after the version string: the reply is complete there too.
fn info_core_len() -> usize {
    let s = info_sample();
    let version_at = s.windows(8).position(|w| w == b"2.2.3.6\0").unwrap();
    version_at + 8
}

fn players_sample() -> Vec<u8> {
    let mut v = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x44, 2];
    v.push(0);
    v.extend_from_slice("Ellis ünï".as_bytes());
    v.push(0);
    v.extend_from_slice(&5i32.to_le_bytes());
    v.extend_from_slice(&61.5f32.to_le_bytes());
    v.push(1);
    v.extend_from_slice(b"<Keith's \"Cousin\">\0");
    v.extend_from_slice(&(-2i32).to_le_bytes());
    v.extend_from_slice(&3.25f32.to_le_bytes());
    v
}

#[test]
fn a2s_info_fields() {
    let info = a2s::parse_info(&info_sample()).unwrap();
    assert_eq!(info.name, "My \"L4D2\" Server");
    assert_eq!(info.map, "c1m1_hotel");
    assert_eq!(
        (info.app_id, info.players, info.max_players, info.bots),
        (550, 3, 8, 1)
    );
    assert_eq!((info.server_type, info.environment), ('d', 'l'));
    assert!(!info.password_protected && info.vac);
    assert_eq!(info.port, Some(27015));
    assert_eq!(info.steam_id, Some(90_071_992_547_409_920));
    assert_eq!(info.source_tv, Some((27020, "SourceTV".into())));
    assert_eq!(info.keywords.as_deref(), Some("coop,secure"));
    assert_eq!(info.game_id, Some(550));
    let core = a2s::parse_info(&info_sample()[..info_core_len()]).unwrap();
    assert_eq!((core.port, core.keywords), (None, None));
}

#[test]
fn a2s_every_truncation_is_an_error() {
    let info = info_sample();
    let core = info_core_len();
    for cut in 0..info.len() {
        let r = a2s::parse_info(&info[..cut]);
        if cut == core {
            assert!(r.is_ok(), "the reply without extra data is valid");
        } else {
            assert!(r.is_err(), "info prefix {cut} accepted: {r:?}");
        }
    }
    let players = players_sample();
    for cut in 0..players.len() {
        assert!(
            a2s::parse_players(&players[..cut]).is_err(),
            "players prefix {cut}"
        );
    }
    let p = a2s::parse_players(&players).unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(
        (p[0].name.as_str(), p[0].score, p[0].duration),
        ("Ellis ünï", 5, 61.5)
    );
    assert_eq!(
        (p[1].name.as_str(), p[1].score),
        ("<Keith's \"Cousin\">", -2)
    );
}

#[test]
fn a2s_wrong_header_type_trailing_and_utf8() {
    let mut bad = info_sample();
    bad[0] = 0xFE;
    assert!(matches!(a2s::parse_info(&bad), Err(A2sError::BadHeader(_))));
    assert!(matches!(
        a2s::parse_info(&players_sample()),
        Err(A2sError::WrongType {
            got: 0x44,
            expected: 0x49
        })
    ));
    let mut trailing = info_sample();
    trailing.push(7);
    assert!(matches!(
        a2s::parse_info(&trailing),
        Err(A2sError::Trailing(1))
    ));
    // A count promising more players than bytes.
    let mut many = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x44, 255, 0];
    many.extend_from_slice(b"one\0");
    assert!(matches!(
        a2s::parse_players(&many),
        Err(A2sError::Truncated { .. })
    ));
    // Invalid UTF-8 (a name cut mid-character) is replaced, not fatal.
    let mut cut = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x44, 1, 0];
    cut.extend_from_slice(&[b'A', 0xC3, 0]);
    cut.extend_from_slice(&[0; 8]);
    assert_eq!(a2s::parse_players(&cut).unwrap()[0].name, "A\u{FFFD}");
    // Challenge replies.
    assert_eq!(
        a2s::parse_challenge(&[0xFF, 0xFF, 0xFF, 0xFF, 0x41, 1, 0, 0, 0]),
        Some(1)
    );
    assert_eq!(
        a2s::parse_challenge(&[0xFF, 0xFF, 0xFF, 0xFF, 0x41, 1, 0, 0]),
        None
    );
    assert_eq!(
        a2s::parse_challenge(&[0xFF, 0xFF, 0xFF, 0xFF, 0x41, 1, 0, 0, 0, 0]),
        None
    );
}

fn split(id: i32, total: u8, number: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = (-2i32).to_le_bytes().to_vec();
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(&[total, number]);
    v.extend_from_slice(&1248u16.to_le_bytes());
    v.extend_from_slice(payload);
    v
}

#[test]
fn a2s_split_packets() {
    let whole = info_sample();
    let (a, b) = whole.split_at(30);
    let (b, c) = b.split_at(20);
    // Out of order.
    let mut col = SplitCollector::new();
    assert_eq!(col.push(&split(77, 3, 2, c)).unwrap(), None);
    assert_eq!(col.push(&split(77, 3, 0, a)).unwrap(), None);
    let joined = col.push(&split(77, 3, 1, b)).unwrap().unwrap();
    assert_eq!(joined, whole);
    assert_eq!(a2s::parse_info(&joined).unwrap().map, "c1m1_hotel");
    // Single packets pass through.
    assert_eq!(col.push(&whole).unwrap(), Some(whole.clone()));

    let errs = [
        split(i32::MIN | 5, 2, 0, a), // compressed
        split(5, 0, 0, a),            // zero packets
        split(5, 2, 2, a),            // number beyond total
        split(5, a2s::MAX_SPLIT_PACKETS + 1, 0, a),
    ];
    for e in &errs {
        assert!(SplitCollector::new().push(e).is_err(), "{e:?}");
    }
    let mut mixed = SplitCollector::new();
    mixed.push(&split(1, 2, 0, a)).unwrap();
    assert!(matches!(
        mixed.push(&split(2, 2, 1, b)),
        Err(A2sError::BadSplit(_))
    ));
    let s = split(9, 2, 1, b);
    for cut in 0..12 {
        assert!(
            SplitCollector::new().push(&s[..cut]).is_err(),
            "split prefix {cut}"
        );
    }
}

#[test]
fn a2s_random_and_mutated_bytes_never_panic() {
    let mut rng = Rng(0x5EED_0002);
    let info = info_sample();
    let players = players_sample();
    let mut col = SplitCollector::new();
    for _ in 0..ROUNDS {
        for input in [rng.bytes(200), rng.mutate(&info), rng.mutate(&players)] {
            let _ = a2s::parse_info(&input);
            let _ = a2s::parse_players(&input);
            let _ = a2s::parse_challenge(&input);
            if col.push(&input).is_err() {
                col = SplitCollector::new();
            }
        }
        // Random split fragments with a valid header.
        let mut frag = (-2i32).to_le_bytes().to_vec();
        frag.extend(rng.bytes(40));
        if col.push(&frag).is_err() {
            col = SplitCollector::new();
        }
    }
}

// ---------------------------------------------------------------- HL log

const LINES: &[&str] = &[
    "L 11/22/2025 - 00:35:07: \"Nick<2><STEAM_1:0:123><>\" connected, address \"203.0.113.5:27005\"",
    "L 11/22/2025 - 00:35:08: \"Nick<2><STEAM_1:0:123><>\" STEAM USERID validated",
    "L 11/22/2025 - 00:35:09: \"Nick<2><STEAM_1:0:123><>\" entered the game",
    "L 11/22/2025 - 00:35:09: \"Nick<2><STEAM_1:0:123><Survivor>\" joined team \"Survivor\"",
    "L 11/22/2025 - 00:36:00: \"a<b>\"c\" <x<3><STEAM_1:1:9><Survivor>\" say \"hi >\" say \"there\"",
    "L 11/22/2025 - 00:36:01: \"Ro<4><BOT><Infected>\" say_team \"tank!\"",
    "L 11/22/2025 - 00:37:00: \"Nick<2><STEAM_1:0:123><Survivor>\" disconnected (reason \"Disconnect by user.\")",
    "L 11/22/2025 - 00:38:00: Loading map \"c2m1_highway\"",
    "L 11/22/2025 - 00:38:01: Started map \"c2m1_highway\" (CRC \"-12345\")",
    "L 11/22/2025 - 00:38:02: server_cvar: \"sv_cheats\" \"0\"",
    "L 11/22/2025 - 00:38:03: \"Console<0><Console><Console>\" say \"restart soon\"",
];

fn frame(line: &str, secret: Option<&str>) -> Vec<u8> {
    let mut v = vec![0xFF; 4];
    match secret {
        Some(s) => {
            v.push(b'S');
            v.extend_from_slice(s.as_bytes());
        }
        None => v.push(b'R'),
    }
    v.extend_from_slice(line.as_bytes());
    v.extend_from_slice(b"\n\0");
    v
}

#[test]
fn hllog_packets_and_events() {
    let p = hllog::parse_packet(&frame(LINES[0], Some("4242"))).unwrap();
    assert_eq!(
        (p.secret.as_deref(), p.line.as_str()),
        (Some("4242"), LINES[0])
    );
    let p = hllog::parse_packet(&frame(LINES[0], None)).unwrap();
    assert_eq!((p.secret, p.line.as_str()), (None, LINES[0]));

    let ev: Vec<LogEvent> = LINES
        .iter()
        .map(|l| hllog::parse_line(l).unwrap())
        .collect();
    match &ev[0] {
        LogEvent::Connected { player, address } => {
            assert_eq!((player.name.as_str(), player.userid), ("Nick", 2));
            assert_eq!(
                (player.steam_id.as_str(), player.team.as_str()),
                ("STEAM_1:0:123", "")
            );
            assert_eq!(address, "203.0.113.5:27005");
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(&ev[1], LogEvent::Other(s) if s.ends_with("STEAM USERID validated")));
    assert!(matches!(&ev[2], LogEvent::Entered { player } if player.userid == 2));
    assert!(matches!(&ev[3], LogEvent::TeamChange { team, .. } if team == "Survivor"));
    match &ev[4] {
        LogEvent::Say {
            player,
            team_only,
            text,
        } => {
            assert_eq!(player.name, "a<b>\"c\" <x");
            assert_eq!(
                (player.userid, player.steam_id.as_str()),
                (3, "STEAM_1:1:9")
            );
            assert!(!team_only);
            assert_eq!(text, "hi >\" say \"there");
        }
        e => panic!("{e:?}"),
    }
    assert!(
        matches!(&ev[5], LogEvent::Say { team_only: true, text, player } if text == "tank!" && player.steam_id == "BOT")
    );
    assert!(
        matches!(&ev[6], LogEvent::Disconnected { reason, .. } if reason == "Disconnect by user.")
    );
    assert_eq!(
        ev[7],
        LogEvent::MapLoading {
            map: "c2m1_highway".into()
        }
    );
    assert_eq!(
        ev[8],
        LogEvent::MapStarted {
            map: "c2m1_highway".into()
        }
    );
    assert_eq!(
        ev[9],
        LogEvent::Other("server_cvar: \"sv_cheats\" \"0\"".into())
    );
    assert!(
        matches!(&ev[10], LogEvent::Say { player, .. } if player.name == "Console" && player.userid == 0)
    );
    let (t, _) = hllog::parse_line_with_time(LINES[0]).unwrap();
    assert_eq!(
        (t.year, t.month, t.day, t.hour, t.minute, t.second),
        (2025, 11, 22, 0, 35, 7)
    );
}

#[test]
fn hllog_bad_packets_and_lines() {
    assert_eq!(hllog::parse_packet(&[]), Err(LogError::TooShort(0)));
    assert_eq!(
        hllog::parse_packet(b"\xFF\xFF\xFF\xFER"),
        Err(LogError::BadHeader)
    );
    assert_eq!(
        hllog::parse_packet(b"\xFF\xFF\xFF\xFFXL 1"),
        Err(LogError::UnknownType(b'X'))
    );
    assert_eq!(
        hllog::parse_packet(b"\xFF\xFF\xFF\xFFR\n\0"),
        Err(LogError::EmptyLine)
    );
    for bad_secret in [
        &b"SL 11/"[..],
        b"Sabc L 1",
        b"S12",
        b"S12 L 11/",
        b"S123456789012345678901L 11/",
    ] {
        let mut v = vec![0xFF; 4];
        v.extend_from_slice(bad_secret);
        assert_eq!(
            hllog::parse_packet(&v),
            Err(LogError::BadSecret),
            "{bad_secret:?}"
        );
    }
    // Invalid UTF-8 in a line is replaced, the line still parses.
    let mut v = frame("L 11/22/2025 - 00:35:07: \"N", Some("1"));
    v.splice(
        v.len() - 2..v.len() - 2,
        [
            0xC3, b'<', b'2', b'>', b'<', b'B', b'>', b'<', b'>', b'"', b' ', b'e',
        ],
    );
    let p = hllog::parse_packet(&v).unwrap();
    assert!(p.line.contains('\u{FFFD}'));
    assert!(hllog::parse_line(&p.line).is_ok());

    for bad in [
        "",
        "L",
        "L 11/22/2025 - 00:35:07:",
        "L 11/22/2025 - 00:35:07:  ",
        "L 13/22/2025 - 00:35:07: x",
        "L 11/32/2025 - 00:35:07: x",
        "L 11/22/2025 - 24:35:07: x",
        "L 11/22/2025 - 00:60:07: x",
        "L 1a/22/2025 - 00:35:07: x",
        "L 11-22-2025 - 00:35:07: x",
        "X 11/22/2025 - 00:35:07: x",
        "L 11/22/2025 – 00:35:07: x",
    ] {
        assert!(hllog::parse_line(bad).is_err(), "{bad:?} accepted");
    }
    // Tags that do not close properly are not player events, but still lines.
    for odd in [
        "L 11/22/2025 - 00:35:07: \"Nick<2><STEAM_1:0:1>\" entered the game",
        "L 11/22/2025 - 00:35:07: \"Nick<x><STEAM_1:0:1><>\" entered the game",
        "L 11/22/2025 - 00:35:07: \"Nick<2><STEAM_1:0:1><>\" disconnected (reason \"x\"",
        "L 11/22/2025 - 00:35:07: Loading map c1m1",
        "L 11/22/2025 - 00:35:07: \"",
    ] {
        assert!(
            matches!(hllog::parse_line(odd), Ok(LogEvent::Other(_))),
            "{odd:?}"
        );
    }
}

#[test]
fn hllog_every_truncation_and_random_input_never_panics() {
    for line in LINES {
        let packet = frame(line, Some("4242"));
        for cut in 0..packet.len() {
            if let Ok(p) = hllog::parse_packet(&packet[..cut]) {
                assert!(line.starts_with(&p.line), "prefix {cut} of {line}");
                let _ = hllog::parse_line(&p.line);
            }
        }
        for (cut, _) in line.char_indices() {
            let r = hllog::parse_line(&line[..cut]);
            if cut < 26 {
                assert!(r.is_err(), "prefix {cut} of {line:?} accepted");
            }
        }
    }
    let mut rng = Rng(0x5EED_0003);
    let sample = frame(LINES[4], Some("77"));
    for _ in 0..ROUNDS {
        for input in [rng.bytes(120), rng.mutate(&sample)] {
            if let Ok(p) = hllog::parse_packet(&input) {
                let _ = hllog::parse_line(&p.line);
            }
            let text = String::from_utf8_lossy(&input);
            let _ = hllog::parse_line(&text);
        }
    }
}

const STAMP: &str = "L 11/22/2025 - 00:35:07: ";

/// `STAMP` + `"` + `>" ` repeated up to `len` bytes: every position looks
/// like the end of a player tag whose fields never come.
fn hostile_line(len: usize) -> String {
    let mut line = format!("{STAMP}\"");
    while line.len() + 3 <= len {
        line.push_str(">\" ");
    }
    line
}

#[test]
fn hllog_maximal_hostile_lines_parse_and_longer_ones_are_refused() {
    // The longest line srcds can send, made of nothing but tag look-alikes:
    // not a player event, but a well-formed line.
    let line = hostile_line(hllog::MAX_LINE_BYTES);
    assert!(line.len() > hllog::MAX_LINE_BYTES - 3);
    assert!(matches!(hllog::parse_line(&line), Ok(LogEvent::Other(_))));
    let p = hllog::parse_packet(&frame(&line, Some("77"))).unwrap();
    assert_eq!(p.line, line);

    // Maximal and still a real event at its very end: the whole line is
    // read, and the first `>" ` closing a valid tag wins.
    let tail = "Nick<2><STEAM_1:0:1><>\" entered the game";
    let mut line = hostile_line(hllog::MAX_LINE_BYTES - tail.len());
    line.push_str(tail);
    assert!(line.len() <= hllog::MAX_LINE_BYTES);
    match hllog::parse_line(&line) {
        Ok(LogEvent::Entered { player }) => {
            assert!(player.name.ends_with(">\" Nick"), "{:?}", player.name);
            assert_eq!(
                (player.userid, player.steam_id.as_str()),
                (2, "STEAM_1:0:1")
            );
        }
        other => panic!("{other:?}"),
    }

    // Other hostile shapes at the limit: only `<`, only digits in tags.
    for body in ["<", "<1>", "<1><2>", "\"<1><2><3>"] {
        let mut line = format!("{STAMP}\"");
        while line.len() + body.len() <= hllog::MAX_LINE_BYTES {
            line.push_str(body);
        }
        assert!(hllog::parse_line(&line).is_ok(), "{body:?}");
    }

    // One byte more than srcds sends is refused, not parsed.
    let mut long = format!("{STAMP}x");
    long.push_str(&"y".repeat(hllog::MAX_LINE_BYTES - long.len()));
    assert!(hllog::parse_line(&long).is_ok());
    long.push('z');
    assert!(matches!(
        hllog::parse_line(&long),
        Err(LogError::TooLong { what: "line", .. })
    ));
    // Same for packets: the line (packet fits) and the datagram itself.
    assert!(matches!(
        hllog::parse_packet(&frame(&long, Some("77"))),
        Err(LogError::TooLong { what: "line", .. })
    ));
    let huge = frame(&hostile_line(65_000), Some("77"));
    assert!(matches!(
        hllog::parse_packet(&huge),
        Err(LogError::TooLong { what: "packet", .. })
    ));
    assert!(matches!(
        hllog::parse_line(&hostile_line(65_000)),
        Err(LogError::TooLong { .. })
    ));
    // The largest datagram srcds sends is still read.
    let mut v = vec![0xFF; 4];
    v.push(b'R');
    let filler = "x".repeat(hllog::MAX_PACKET_BYTES - 5 - STAMP.len());
    v.extend_from_slice(format!("{STAMP}{filler}").as_bytes());
    assert_eq!(v.len(), hllog::MAX_PACKET_BYTES);
    assert!(!matches!(
        hllog::parse_packet(&v),
        Err(LogError::TooLong { what: "packet", .. })
    ));

    // The limit is srcds' byte count: invalid UTF-8 turned into U+FFFD (3
    // bytes each) or multi-byte names never push an accepted packet's line
    // over it in parse_line.
    let mut bytes = format!("{STAMP}\"").into_bytes();
    bytes.resize(hllog::MAX_LINE_BYTES, 0xC3);
    let mut packet = vec![0xFF, 0xFF, 0xFF, 0xFF, b'S', b'7'];
    packet.extend_from_slice(&bytes);
    let p = hllog::parse_packet(&packet).unwrap();
    assert!(p.line.len() > hllog::MAX_LINE_BYTES);
    assert!(matches!(hllog::parse_line(&p.line), Ok(LogEvent::Other(_))));
    let wide = format!("{STAMP}{}", "é".repeat(hllog::MAX_EVENT_BYTES));
    assert!(hllog::parse_line(&wide).is_ok());
}

#[tokio::test]
async fn listener_counts_overlong_datagrams_as_too_long() {
    let listener = LogListener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    listener.register("77".into(), 5).unwrap();
    let from = "127.0.0.1:9".parse().unwrap();
    let hostile = hostile_line(hllog::MAX_LINE_BYTES);
    assert!(listener.classify(&frame(&hostile, Some("77"))).is_ok());
    for too_long in [
        frame(&hostile_line(hllog::MAX_LINE_BYTES + 3), Some("77")),
        frame(&hostile_line(65_000), Some("77")),
        frame(&hostile_line(65_000), None),
    ] {
        assert_eq!(
            listener.handle_datagram(&too_long, from),
            Err(DropReason::TooLong)
        );
    }
    let s = listener.stats();
    assert_eq!((s.received, s.dropped_too_long, s.accepted), (3, 3, 0));
    assert_eq!(s.received, s.dropped());
}

#[tokio::test]
async fn listener_classifies_garbage_without_panicking() {
    let listener = LogListener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    listener.register("77".into(), 5).unwrap();
    // Secrets must be what srcds sends: a non-zero integer.
    for bad in ["", "0", "000", "12a", "-5", " 5", "123456789012345678901"] {
        assert!(listener.register(bad.into(), 1).is_err(), "{bad:?}");
    }
    assert!(
        listener.register("77".into(), 6).is_err(),
        "secret reused by another server"
    );
    assert!(listener.register("77".into(), 5).is_ok(), "idempotent");

    let from = "127.0.0.1:9".parse().unwrap();
    let ok = frame(LINES[2], Some("77"));
    let ev = listener.classify(&ok).unwrap();
    assert_eq!(ev.server_key, 5);
    assert_eq!(
        listener.handle_datagram(&frame(LINES[2], None), from),
        Err(DropReason::NoSecret)
    );
    assert_eq!(
        listener.handle_datagram(&frame(LINES[2], Some("78")), from),
        Err(DropReason::UnknownSecret)
    );
    assert_eq!(
        listener.handle_datagram(&frame("hello", Some("77")), from),
        Err(DropReason::Malformed)
    );
    let mut rng = Rng(0x5EED_0004);
    for _ in 0..ROUNDS {
        let _ = listener.handle_datagram(&rng.bytes(100), from);
        let _ = listener.handle_datagram(&rng.mutate(&ok), from);
    }
    let s = listener.stats();
    assert_eq!(s.received, 3 + 2 * ROUNDS as u64);
    assert_eq!(s.received, s.accepted + s.dropped());
    assert!(s.dropped_no_secret >= 1 && s.dropped_unknown_secret >= 1 && s.dropped_malformed >= 1);
    assert_eq!(listener.unregister_server(5), 1);
    assert_eq!(listener.classify(&ok), Err(DropReason::UnknownSecret));
}

// ---------------------------------------------------------------- status

const STATUS: &str = "hostname: [EU] Left 4 Dead 2 \"Versus\" Server
version : 2.2.2.6 8491 secure  (unknown)
udp/ip  : 0.0.0.0:27015 [ public 203.0.113.10:27015 ]
os      : Linux Dedicated
map     : c5m1_waterfront
players : 3 humans, 1 bots (8 max) (not hibernating) (unreserved)

# userid name uniqueid connected ping loss state rate adr
#  2 1 \"Nick \"the\" <Gambler>\" STEAM_1:0:11111111 1:02:03 45 0 active 100000 203.0.113.5:27005
#  3 2 \"ÄÖÜ 日本\" STEAM_1:1:2222 05:07 80 2 spawning 30000 198.51.100.7:27005
#  5 3 \"  spaced  \" STEAM_ID_PENDING 00:03 120 0 connecting 30000 192.0.2.1:27005
#  6 \"Coach\" BOT active
#end
L 11/22/2025 - 00:35:07: rcon from \"127.0.0.1:5000\": command \"status\"
";

#[test]
fn status_real_l4d2_sample() {
    let s = status::parse_status(STATUS).unwrap();
    assert_eq!(s.hostname, "[EU] Left 4 Dead 2 \"Versus\" Server");
    assert_eq!(s.version, "2.2.2.6 8491 secure  (unknown)");
    assert_eq!(s.address, Some("0.0.0.0:27015".parse().unwrap()));
    assert_eq!(s.map, "c5m1_waterfront");
    assert_eq!(
        (s.humans, s.bots, s.max_players, s.hibernating),
        (Some(3), Some(1), Some(8), Some(false))
    );
    assert_eq!(s.players.len(), 4);
    let nick = &s.players[0];
    assert_eq!(
        (nick.userid, nick.slot, nick.name.as_str()),
        (2, Some(1), "Nick \"the\" <Gambler>")
    );
    assert_eq!(
        nick.steam_id64,
        Some(steamid::parse_steam_id("STEAM_1:0:11111111").unwrap())
    );
    assert_eq!(
        (nick.connected_secs, nick.ping, nick.loss, nick.rate),
        (Some(3723), Some(45), Some(0), Some(100000))
    );
    assert_eq!(nick.adr.as_deref(), Some("203.0.113.5:27005"));
    assert_eq!(s.players[1].name, "ÄÖÜ 日本");
    assert_eq!(s.players[1].state, "spawning");
    assert_eq!(s.players[2].name, "  spaced  ");
    assert_eq!(
        (s.players[2].unique_id.as_str(), s.players[2].steam_id64),
        ("STEAM_ID_PENDING", None)
    );
    let bot = &s.players[3];
    assert!(bot.is_bot);
    assert_eq!(
        (bot.userid, bot.slot, bot.name.as_str(), bot.state.as_str()),
        (6, None, "Coach", "active")
    );
    assert_eq!((bot.ping, bot.adr.clone()), (None, None));

    // Hibernating, empty, old-style count.
    let empty = "hostname: x\nmap     : \nplayers : 0 (4 max)\n\n# userid name uniqueid connected ping loss state rate adr\n#end\n";
    let e = status::parse_status(empty).unwrap();
    assert_eq!(
        (e.humans, e.max_players, e.players.len(), e.map.as_str()),
        (Some(0), Some(4), 0, "")
    );
}

#[test]
fn status_broken_tables_are_errors() {
    assert_eq!(status::parse_status(""), Err(StatusError::NotStatus));
    assert_eq!(
        status::parse_status("Unknown command \"status\"\n"),
        Err(StatusError::NotStatus)
    );
    assert_eq!(
        status::parse_status("hostname: x\nmap     : y\n"),
        Err(StatusError::NoTable)
    );
    let header = "hostname: x\n# userid name uniqueid connected ping loss state rate adr\n";
    for row in [
        "#  2 1 Nick STEAM_1:0:1 00:01 1 0 active 1 a", // unquoted name
        "#  2 1 \"Nick STEAM_1:0:1 00:01 1 0 active 1 a", // unclosed quote
        "#  x 1 \"Nick\" STEAM_1:0:1 00:01 1 0 active 1 a", // userid
        "#  2 1 \"Nick\" STEAM_1:0:1 00:01 1 0",        // short
        "#  2 1 \"Nick\" STEAM_1:0:1 aa:01 1 0 active 1 a", // time
        "#  2 1 \"Nick\" STEAM_1:0:1 00:01 -1 0 active 1 a", // ping
        "#  2 1 \"Nick\" STEAM_1:0:1 00:01 1 0 active 1 a b", // long
        "#  2 1 \"Nick\"",                              // no uniqueid
        "#  3 \"Coach\" BOT",                           // bot without state
        "#  1 2 3 \"Nick\" STEAM_1:0:1 00:01 1 0 active 1 a", // extra leading column
        "#  99999999999 \"Coach\" BOT active",          // userid overflow
    ] {
        let text = format!("{header}{row}\n#end\n");
        assert!(
            matches!(status::parse_status(&text), Err(StatusError::BadRow { .. })),
            "{row:?} accepted"
        );
    }
    assert!(matches!(
        status::parse_status("hostname: x\nplayers : lots\n# userid\n#end\n"),
        Err(StatusError::BadHeader { .. })
    ));
}

#[test]
fn status_every_truncation_and_random_input_never_panics() {
    for (cut, _) in STATUS.char_indices() {
        let r = status::parse_status(&STATUS[..cut]);
        if let Ok(s) = r {
            assert!(s.players.len() <= 4);
        }
    }
    let mut rng = Rng(0x5EED_0005);
    let bytes = STATUS.as_bytes();
    for _ in 0..ROUNDS {
        for input in [rng.bytes(300), rng.mutate(bytes)] {
            let _ = status::parse_status(&String::from_utf8_lossy(&input));
        }
    }
}

// ---------------------------------------------------------------- SteamID

#[test]
fn steamid_roundtrips_truncations_and_random_input() {
    let mut rng = Rng(0x5EED_0006);
    for _ in 0..ROUNDS {
        let account = rng.next() as u32;
        let id = 76561197960265728u64 + u64::from(account);
        let s2 = steamid::to_steam2(id).unwrap();
        let s3 = steamid::to_steam3(id).unwrap();
        assert_eq!(steamid::parse_steam_id(&s2), Ok(id), "{s2}");
        assert_eq!(steamid::parse_steam_id(&s3), Ok(id), "{s3}");
        assert_eq!(steamid::parse_steam_id(&id.to_string()), Ok(id));
        let garbage = String::from_utf8_lossy(&rng.mutate(s2.as_bytes())).into_owned();
        if let Ok(parsed) = steamid::parse_steam_id(&garbage) {
            assert!(steamid::to_steam3(parsed).is_ok());
        }
        let _ = steamid::parse_steam_id(&String::from_utf8_lossy(&rng.bytes(24)));
    }
    // Every prefix before the account number, and every prefix of [U:..].
    for (sample, upto) in [("STEAM_1:0:11111111", 10), ("[U:1:22222222]", 14)] {
        for cut in 0..upto {
            assert!(
                steamid::parse_steam_id(&sample[..cut]).is_err(),
                "{}",
                &sample[..cut]
            );
        }
    }
    assert!(steamid::parse_steam_id("STEAM_1:1:2147483647").is_ok());
    assert!(steamid::parse_steam_id("STEAM_1:0:2147483648").is_err());
    assert!(steamid::parse_steam_id("99999999999999999999999").is_err());
    assert!(steamid::parse_steam_id("ＳTEAM_1:0:1").is_err());
    assert!(
        steamid::to_steam2(0x0170_0000_0000_0001).is_err(),
        "clan ids are not players"
    );
}

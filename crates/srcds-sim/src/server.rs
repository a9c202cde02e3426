//! The running server: binds UDP (A2S + log sending) and TCP (RCON) on
//! `+ip:+hostport`, runs the player simulation, and shuts down cleanly on
//! SIGINT/SIGTERM. Plain std threads: a handful of sockets do not need an
//! async runtime, and the binary stays small.

use crate::a2s::{self, Challenges, Request};
use crate::args::SrcdsArgs;
use crate::clock;
use crate::hllog;
use crate::rcon::{self, Packet};
use crate::rng::Rng;
use crate::state::{State, RULES_CVARS};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};
use thiserror::Error;

/// A2S protocol byte L4D2 reports.
pub const PROTOCOL: u8 = 17;
/// The game id L4D2 servers report in A2S (the client app, not the
/// dedicated server app 222860).
pub const GAME_APP_ID: u16 = 550;
/// Version reported when `<game>/steam.inf` has no PatchVersion.
pub const DEFAULT_VERSION: &str = "2.2.3.6";
/// Network build number shown in `status` and "Log file started".
pub const BUILD: &str = "9183";
/// At most this many RCON connections at once; more are closed at accept.
const MAX_RCON_CONNECTIONS: usize = 32;
const POLL: Duration = Duration::from_millis(100);

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("game directory {0:?} not found under the working directory {1:?}")]
    GameDirMissing(String, PathBuf),
    #[error("cannot determine the working directory: {0}")]
    Cwd(#[source] std::io::Error),
    #[error("cannot bind UDP {0}: {1}")]
    BindUdp(SocketAddr, #[source] std::io::Error),
    #[error("cannot bind TCP {0} for RCON: {1}")]
    BindTcp(SocketAddr, #[source] std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("socket setup failed: {0}")]
    Socket(#[source] std::io::Error),
}

/// Where a command came from (decides logging and console echo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// server.cfg or another exec'd script.
    Script,
    /// A `+command` from the command line.
    CommandLine,
    /// RCON from this peer.
    Rcon(SocketAddr),
    /// The simulator itself.
    Internal,
}

/// The shared server.
pub struct Server {
    pub args: SrcdsArgs,
    /// Absolute game directory (`<cwd>/<-game>`).
    pub game_dir: PathBuf,
    pub version: String,
    pub steam_id: u64,
    pub started: Instant,
    pub shutdown: Arc<AtomicBool>,
    pub(crate) state: Mutex<State>,
    pub(crate) challenges: Challenges,
    pub(crate) log_socket: OnceLock<UdpSocket>,
    rcon_connections: AtomicUsize,
}

/// Prints a console line (stdout is line-buffered; flush anyway so a pipe
/// reader sees it immediately).
pub fn console(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn read_patch_version(game_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(game_dir.join("steam.inf")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("PatchVersion="))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl Server {
    /// Builds the server for `args`, with the game dir resolved against `cwd`.
    pub fn new(args: SrcdsArgs, cwd: &Path) -> Result<Arc<Self>, StartError> {
        let game_dir = cwd.join(&args.game);
        if !game_dir.is_dir() {
            return Err(StartError::GameDirMissing(
                args.game.clone(),
                cwd.to_path_buf(),
            ));
        }
        let mut rng = Rng::from_entropy();
        let challenges = Challenges::new(rng.next_u64());
        // An anonymous game server SteamID (universe 1, type 4).
        let steam_id = 0x0140_0000_0000_0000 | (rng.next_u64() & 0xFFFF_FFFF);
        let version = read_patch_version(&game_dir).unwrap_or_else(|| DEFAULT_VERSION.into());
        Ok(Arc::new(Server {
            args,
            game_dir,
            version,
            steam_id,
            started: Instant::now(),
            shutdown: Arc::new(AtomicBool::new(false)),
            state: Mutex::new(State::new(rng)),
            challenges,
            log_socket: OnceLock::new(),
            rcon_connections: AtomicUsize::new(0),
        }))
    }

    /// The state, even if a thread panicked while holding the lock (the
    /// data stays usable for a simulator).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// Writes an HL log line: echoed to the console (`sv_logecho`) and sent to
    /// every log address, when logging is on.
    pub(crate) fn log(&self, st: &State, event: &str) {
        if !st.logging {
            return;
        }
        let line = hllog::line(&clock::now().log_stamp(), event);
        if st.cvar("sv_logecho") != "0" {
            console(&line);
        }
        let Some(sock) = self.log_socket.get() else {
            return;
        };
        let packet = hllog::packet(&line, hllog::effective_secret(st.cvar("sv_logsecret")));
        for addr in &st.log_addresses {
            // srcds silently drops loopback destinations; the simulator
            // does too unless asked (-sim_log_loopback) for local demos/tests.
            if addr.ip().is_loopback() && !self.args.sim_log_loopback {
                continue;
            }
            let _ = sock.send_to(&packet, addr);
        }
    }

    /// Simulated crash: no cleanup, abnormal termination (SIGABRT).
    pub(crate) fn crash(&self, why: &str) -> ! {
        console(&format!("srcds-sim: simulated crash ({why})"));
        eprintln!("Segmentation fault (simulated by srcds-sim: {why})");
        std::process::abort();
    }

    /// Answers one A2S datagram; `None` for anything we do not answer.
    pub fn answer_query(&self, datagram: &[u8], from: IpAddr) -> Option<Vec<u8>> {
        let request = a2s::parse_request(datagram).ok()?;
        let expected = self.challenges.for_addr(from);
        let st = self.lock();
        Some(match request {
            Request::GetChallenge => a2s::encode_challenge(expected),
            Request::Info { challenge } if challenge != Some(expected) => {
                a2s::encode_challenge(expected)
            }
            Request::Player { challenge } | Request::Rules { challenge }
                if challenge != expected =>
            {
                a2s::encode_challenge(expected)
            }
            Request::Info { .. } => a2s::encode_info(&self.info(&st)),
            Request::Player { .. } => {
                let now = Instant::now();
                let entries: Vec<a2s::PlayerEntry> = st
                    .players
                    .iter()
                    .enumerate()
                    .map(|(i, p)| a2s::PlayerEntry {
                        index: i as u8,
                        name: p.name.clone(),
                        score: p.score,
                        duration_secs: now.duration_since(p.joined).as_secs_f32(),
                    })
                    .collect();
                a2s::encode_players(&entries)
            }
            Request::Rules { .. } => {
                let mut rules: Vec<(String, String)> = RULES_CVARS
                    .iter()
                    .map(|n| (n.to_string(), st.cvar(n).to_string()))
                    .collect();
                // Protected cvars are reported as set/unset, never their value.
                let pw = if st.cvar("sv_password").is_empty() {
                    "0"
                } else {
                    "1"
                };
                rules.push(("sv_password".into(), pw.into()));
                a2s::encode_rules(&rules)
            }
        })
    }

    /// The A2S_INFO fields for the current state.
    pub fn info(&self, st: &State) -> a2s::Info {
        a2s::Info {
            protocol: PROTOCOL,
            name: st.hostname().to_string(),
            map: st.map.clone().unwrap_or_default(),
            folder: self.args.game.clone(),
            game: "Left 4 Dead 2".into(),
            app_id: GAME_APP_ID as i16,
            players: st.players.len().min(255) as u8,
            max_players: st.max_players(),
            bots: 0,
            server_type: b'd',
            environment: b'l',
            visibility: u8::from(!st.cvar("sv_password").is_empty()),
            vac: 1,
            version: self.version.clone(),
            port: self.args.port,
            steam_id: self.steam_id,
            keywords: format!(
                "{},{}secure",
                st.cvar("mp_gamemode"),
                if st.players.is_empty() { "empty," } else { "" }
            ),
            game_id: u64::from(GAME_APP_ID),
        }
    }
}

fn udp_loop(server: Arc<Server>, sock: UdpSocket) {
    let mut buf = [0u8; 2048];
    while !server.is_shutting_down() {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                if let Some(reply) = server.answer_query(&buf[..n], from.ip()) {
                    let _ = sock.send_to(&reply, from);
                }
            }
            Err(e) if is_poll_timeout(&e) => {}
            // e.g. ICMP port unreachable from an earlier reply: keep serving.
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn tcp_loop(server: Arc<Server>, listener: TcpListener) {
    while !server.is_shutting_down() {
        match listener.accept() {
            Ok((stream, peer)) => {
                if server.rcon_connections.load(Ordering::SeqCst) >= MAX_RCON_CONNECTIONS {
                    drop(stream);
                    continue;
                }
                server.rcon_connections.fetch_add(1, Ordering::SeqCst);
                let s = Arc::clone(&server);
                let spawned = thread::Builder::new().name("rcon".into()).spawn(move || {
                    rcon_session(&s, stream, peer);
                    s.rcon_connections.fetch_sub(1, Ordering::SeqCst);
                });
                if spawned.is_err() {
                    server.rcon_connections.fetch_sub(1, Ordering::SeqCst);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(25))
            }
            Err(_) => thread::sleep(Duration::from_millis(25)),
        }
    }
}

fn send_all(stream: &mut TcpStream, packets: &[Packet]) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    for p in packets {
        bytes.extend_from_slice(&p.encode());
    }
    stream.write_all(&bytes)
}

/// One RCON connection: authenticate, then execute commands in order.
fn rcon_session(server: &Server, mut stream: TcpStream, peer: SocketAddr) {
    if stream.set_nonblocking(false).is_err()
        || stream
            .set_read_timeout(Some(Duration::from_millis(250)))
            .is_err()
    {
        return;
    }
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut authed = false;
    loop {
        if server.is_shutting_down() {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_poll_timeout(&e) => continue,
            Err(_) => return,
        }
        loop {
            let packet = match rcon::take_packet(&mut buf) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                // Garbage on the stream: srcds drops the connection.
                Err(_) => return,
            };
            let keep = handle_rcon_packet(server, &mut stream, peer, &mut authed, packet);
            if !keep {
                return;
            }
        }
    }
}

/// Handles one packet; returns false to close the connection.
fn handle_rcon_packet(
    server: &Server,
    stream: &mut TcpStream,
    peer: SocketAddr,
    authed: &mut bool,
    packet: Packet,
) -> bool {
    use rcon::*;
    match packet.kind {
        SERVERDATA_AUTH => {
            let (password_set, ok) = {
                let st = server.lock();
                let pw = st.cvar("rcon_password");
                let ok = !pw.is_empty() && packet.body == pw.as_bytes();
                if !ok {
                    server.log(&st, &format!("rcon from \"{peer}\": Bad Password"));
                }
                (!pw.is_empty(), ok)
            };
            *authed = ok;
            let reply_id = if ok { packet.id } else { -1 };
            let sent = send_all(
                stream,
                &[
                    Packet::new(packet.id, SERVERDATA_RESPONSE_VALUE, Vec::new()),
                    Packet::new(reply_id, SERVERDATA_AUTH_RESPONSE, Vec::new()),
                ],
            );
            // With no rcon_password srcds refuses RCON altogether.
            sent.is_ok() && password_set
        }
        SERVERDATA_EXECCOMMAND if *authed => {
            let output = server.execute(&packet.text(), Origin::Rcon(peer));
            send_all(stream, &response_packets(packet.id, output.as_bytes())).is_ok()
        }
        SERVERDATA_EXECCOMMAND => {
            // Commands before a successful auth get the auth failure reply.
            send_all(
                stream,
                &[Packet::new(-1, SERVERDATA_AUTH_RESPONSE, Vec::new())],
            )
            .is_ok()
        }
        SERVERDATA_RESPONSE_VALUE if *authed => {
            // The end-of-response trick: mirror the empty packet, then send
            // the 0x00 0x01 0x00 0x00 body srcds follows it with.
            send_all(
                stream,
                &[
                    Packet::new(packet.id, SERVERDATA_RESPONSE_VALUE, Vec::new()),
                    Packet::new(packet.id, SERVERDATA_RESPONSE_VALUE, MIRROR_TRAILER_BODY),
                ],
            )
            .is_ok()
        }
        // Anything else is ignored, as srcds does.
        _ => true,
    }
}

fn simulation_loop(server: Arc<Server>) {
    let mut next_churn = server.args.sim_churn.map(|d| Instant::now() + d);
    while !server.is_shutting_down() {
        thread::sleep(POLL);
        if let Some(after) = server.args.sim_crash_after {
            if server.started.elapsed() >= after {
                server.crash("-sim_crash_after");
            }
        }
        if let (Some(due), Some(every)) = (next_churn, server.args.sim_churn) {
            if Instant::now() >= due {
                server.churn();
                next_churn = Some(Instant::now() + every);
            }
        }
    }
}

/// Runs the server until SIGINT/SIGTERM or `quit`. Returns after a clean
/// shutdown; startup problems are errors.
pub fn run(args: SrcdsArgs) -> Result<(), StartError> {
    let cwd = std::env::current_dir().map_err(StartError::Cwd)?;
    let server = Server::new(args, &cwd)?;
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&server.shutdown))
            .map_err(StartError::Signals)?;
    }

    let a = &server.args;
    console("srcds-sim: simulated Left 4 Dead 2 dedicated server (left4me test/demo stand-in, not the real game)");
    console("Setting breakpad minidump AppID = 222860");
    console("Using breakpad crash handler");
    console("Console initialized.");
    console("Game.dll loaded for \"Left 4 Dead 2\"");
    if !a.ignored.is_empty() {
        console(&format!(
            "srcds-sim: ignoring launch options {}",
            a.ignored.join(" ")
        ));
    }
    let addr = SocketAddr::new(IpAddr::V4(a.ip), a.port);
    let udp = UdpSocket::bind(addr).map_err(|e| StartError::BindUdp(addr, e))?;
    udp.set_read_timeout(Some(POLL))
        .map_err(StartError::Socket)?;
    let tcp = TcpListener::bind(addr).map_err(|e| StartError::BindTcp(addr, e))?;
    tcp.set_nonblocking(true).map_err(StartError::Socket)?;
    let log_sock = udp.try_clone().map_err(StartError::Socket)?;
    let _ = server.log_socket.set(log_sock);
    console(&format!(
        "Network: IP {}, mode MP, dedicated Yes, ports {} SV / {} CL",
        a.ip,
        a.port,
        a.port.wrapping_sub(10)
    ));
    if let Some(t) = a.tickrate {
        console(&format!("Tickrate set to {t}"));
    }

    server.startup();

    let mut threads = Vec::new();
    for (name, job) in [
        (
            "a2s",
            Box::new({
                let s = Arc::clone(&server);
                move || udp_loop(s, udp)
            }) as Box<dyn FnOnce() + Send>,
        ),
        (
            "rcon-accept",
            Box::new({
                let s = Arc::clone(&server);
                move || tcp_loop(s, tcp)
            }),
        ),
        (
            "players",
            Box::new({
                let s = Arc::clone(&server);
                move || simulation_loop(s)
            }),
        ),
    ] {
        let handle = thread::Builder::new()
            .name(name.into())
            .spawn(job)
            .map_err(StartError::Socket)?;
        threads.push(handle);
    }

    while !server.is_shutting_down() {
        thread::sleep(Duration::from_millis(50));
    }

    console("Server shutting down: received shutdown request");
    {
        let mut st = server.lock();
        server.log(&st, "server_message: \"quit\"");
        server.log(&st, "Log file closed.");
        st.logging = false;
    }
    for t in threads {
        let _ = t.join();
    }
    console("Server shutdown complete.");
    Ok(())
}

/// A socket read that ended because its poll timeout ran out (or a signal
/// interrupted it): the loop just checks for shutdown and reads again.
fn is_poll_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

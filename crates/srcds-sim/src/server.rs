//! The running server: binds UDP (A2S + log sending) and TCP (RCON) on
//! `+ip:+hostport`, plus the engine's client port (and SourceTV's, with
//! `tv_enable 1`), runs the native-plugin stand-ins and the player
//! simulation, and shuts down cleanly on SIGINT/SIGTERM. Plain std threads:
//! a handful of sockets do not need an async runtime, and the binary stays
//! small.

use crate::a2s::{self, Challenges, Request};
use crate::args::SrcdsArgs;
use crate::build::{self, BuildId};
use crate::clock;
use crate::filter;
use crate::hllog;
use crate::net::{self, BindError};
use crate::plugins::{self, Plugins};
use crate::rcon_server::{self, Gate};
use crate::rng::Rng;
use crate::state::{State, RULES_CVARS};
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
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
const POLL: Duration = Duration::from_millis(100);
/// `A2A_PRINT` "Banned by server" (`Filter_SendBan`, engine/sv_filter.cpp):
/// the answer to any datagram from a banned address.
const BANNED_REPLY: &[u8] = b"\xFF\xFF\xFF\xFFlBanned by server\n\0";

/// Why the server could not start (or had to stop).
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
    /// Where the engine calls `Sys_Exit` (e.g. `-strictportbind`).
    #[error("{0}")]
    Port(#[from] BindError),
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
    /// The Steam build this tree holds (its appmanifest's "buildid");
    /// `None` = unknown, never reported as outdated.
    pub build: Option<BuildId>,
    /// Where "the master server" learns the current build
    /// (`LEFT4ME_SIM_PUBLISHED_BUILD_FILE`).
    pub published_build_file: PathBuf,
    pub steam_id: u64,
    pub started: Instant,
    pub shutdown: Arc<AtomicBool>,
    pub(crate) state: Mutex<State>,
    pub(crate) challenges: Challenges,
    pub(crate) log_socket: OnceLock<UdpSocket>,
    /// The engine's client socket (`+clientport`), held open like srcds.
    pub(crate) client_socket: OnceLock<(UdpSocket, u16)>,
    /// SourceTV's socket (`+tv_port`), opened at the first map load with
    /// `tv_enable 1`.
    pub(crate) tv_socket: OnceLock<(UdpSocket, u16)>,
    /// Set when the engine would have exited mid-run (`Sys_Exit`).
    pub(crate) fatal: Mutex<Option<BindError>>,
    pub(crate) rcon_gate: Gate,
    pub(crate) plugins: Mutex<Plugins>,
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
        let mut rng = match args.sim_seed {
            Some(seed) => Rng::with_seed(seed),
            None => Rng::from_entropy(),
        };
        let challenges = Challenges::new(rng.next_u64());
        // An anonymous game server SteamID (universe 1, type 4).
        let steam_id = 0x0140_0000_0000_0000 | (rng.next_u64() & 0xFFFF_FFFF);
        let version = read_patch_version(&game_dir).unwrap_or_else(|| DEFAULT_VERSION.into());
        Ok(Arc::new(Server {
            args,
            game_dir,
            version,
            build: build::installed_build(cwd),
            published_build_file: build::published_build_file(std::env::var_os(
                build::PUBLISHED_BUILD_FILE_VAR,
            )),
            steam_id,
            started: Instant::now(),
            shutdown: Arc::new(AtomicBool::new(false)),
            state: Mutex::new(State::new(rng)),
            challenges,
            log_socket: OnceLock::new(),
            client_socket: OnceLock::new(),
            tv_socket: OnceLock::new(),
            fatal: Mutex::new(None),
            rcon_gate: Gate::default(),
            plugins: Mutex::new(Plugins::default()),
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
            if self.kept_in_process(st, addr) {
                continue;
            }
            let _ = sock.send_to(&packet, addr);
        }
    }

    /// Whether the engine would put a packet for `addr` into its in-process
    /// loopback queue instead of a socket: `NET_SendPacket` (engine/net_ws.cpp)
    /// does so for exactly 127.0.0.1 (`netadr_t::IsLocalhost`) unless
    /// `net_usesocketsforloopback` is set, and on a dedicated server nothing
    /// reads that queue. Every other address, 127.0.0.2 included, gets a
    /// real datagram. `-sim_log_loopback` acts as `net_usesocketsforloopback 1`.
    fn kept_in_process(&self, st: &State, addr: &SocketAddr) -> bool {
        let localhost = addr.ip() == std::net::IpAddr::from([127, 0, 0, 1]);
        let use_sockets =
            self.args.sim_log_loopback || st.cvar_int("net_usesocketsforloopback") != 0;
        localhost && !use_sockets
    }

    /// Simulated crash: no cleanup, abnormal termination (SIGABRT).
    pub(crate) fn crash(&self, why: &str) -> ! {
        console(&format!("srcds-sim: simulated crash ({why})"));
        // Native plugins are code inside the game process and die with it;
        // their stand-ins get PR_SET_PDEATHSIG too, this also reaches what
        // they spawned. try_lock: a crash must never wait.
        if let Ok(p) = self.plugins.try_lock() {
            for pid in p.pids() {
                plugins::kill_group(pid);
            }
        }
        eprintln!("Segmentation fault (simulated by srcds-sim: {why})");
        std::process::abort();
    }

    /// Ends the process the way the engine's `Sys_Exit` would, from a
    /// thread other than main: run() returns the error after shutdown.
    pub(crate) fn fail(&self, why: BindError) {
        console(&why.to_string());
        *self.fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        self.shutdown.store(true, Ordering::SeqCst);
    }

    /// Opens SourceTV's port at a map load once `tv_enable` is 1 (the
    /// SourceTV master starts with the level). The Source SDK 2013 engine
    /// opens the hltv socket with the others unless `-nohltv`; L4D2 servers
    /// evidently do not (LinuxGSM runs several L4D2 servers per host with
    /// `-strictportbind` and no `+tv_port`, which would fail on a shared
    /// 27020, while its CS:S config does pass `+tv_port`), hence only with
    /// `tv_enable 1` here.
    pub(crate) fn open_sourcetv(&self, st: &State) -> Result<(), BindError> {
        if self.args.no_hltv || st.cvar_int("tv_enable") == 0 || self.tv_socket.get().is_some() {
            return Ok(());
        }
        let port = net::port_from_cvar(st.cvar_int("tv_port"));
        let opened = net::open_udp(self.args.ip, port, net::HLTV, self.args.strict_port_bind)?;
        for w in &opened.warnings {
            console(w);
        }
        console(&format!("SourceTV port {}", opened.port));
        let _ = self.tv_socket.set((opened.socket, opened.port));
        Ok(())
    }

    /// Answers one A2S datagram; `None` for anything we do not answer.
    pub fn answer_query(&self, datagram: &[u8], from: IpAddr) -> Option<Vec<u8>> {
        if filter::should_discard(&mut self.lock(), from) {
            // The engine filters before looking at the packet at all.
            return Some(BANNED_REPLY.to_vec());
        }
        let request = a2s::parse_request(datagram).ok()?;
        let expected = self.challenges.for_addr(from);
        let mut st = self.lock();
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
            Request::Info { .. } => {
                st.query_counts.a2s_info += 1;
                a2s::encode_info(&self.info(&st))
            }
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
            // Humans only, and no bots: L4D2 counts its survivor and
            // infected bots in neither (see game.rs), like `status`'s header.
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

fn simulation_loop(server: Arc<Server>) {
    let mut next_churn = server.args.sim_churn.map(|d| Instant::now() + d);
    let mut next_step = server.args.sim_busy.map(|d| Instant::now() + d);
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
        if let (Some(due), Some(every)) = (next_step, server.args.sim_busy) {
            if Instant::now() >= due {
                server.game_step(&mut server.lock());
                next_step = Some(Instant::now() + every);
            }
        }
    }
}

/// The master server's answer to a heartbeat from an outdated build, as
/// the engine prints it (`CMaster::ProcessConnectionlessPacket`, engine.dll:
/// `Msg("%cMasterRequestRestart\n", 3)`, then the second line when the game
/// runs from Steam): the first line starts with the byte 0x03.
pub const MASTER_REQUEST_RESTART: [&str; 2] = [
    "\x03MasterRequestRestart",
    "Your server needs to be restarted in order to receive the latest update.",
];

/// Asks "the master server" every `-sim_master_interval` (the first time
/// right after the network is up) whether this build is current. The real
/// engine learns it from its master server heartbeat; the simulator reads
/// the published build file. A missing file means up to date; a broken one
/// is ignored with one warning until it changes.
fn master_loop(server: Arc<Server>) {
    let mut next = Instant::now();
    let mut warned: Option<String> = None;
    while !server.is_shutting_down() {
        if Instant::now() >= next {
            match build::read_published(&server.published_build_file) {
                Ok(published) => {
                    warned = None;
                    let outdated = matches!(
                        (published, server.build),
                        (Some(p), Some(own)) if p.id > own
                    );
                    if outdated {
                        for line in MASTER_REQUEST_RESTART {
                            console(line);
                        }
                    }
                }
                Err(e) => {
                    let why = e.to_string();
                    if warned.as_deref() != Some(why.as_str()) {
                        console(&format!("srcds-sim: warning: ignoring {why}"));
                        warned = Some(why);
                    }
                }
            }
            next = Instant::now() + server.args.sim_master_interval;
        }
        thread::sleep(POLL);
    }
}

/// Stops the plugins however run() returns.
struct StopPlugins<'a>(&'a Server);

impl Drop for StopPlugins<'_> {
    fn drop(&mut self) {
        self.0
            .plugins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stop();
    }
}

/// Binds the host port (UDP for A2S and logs, TCP for RCON) and the client
/// port. Today's behaviour for a busy host port (exit with "cannot bind")
/// is kept without `-strictportbind`; the engine would try the next port.
fn bind_ports(server: &Server) -> Result<(UdpSocket, TcpListener), StartError> {
    let a = &server.args;
    let addr = SocketAddr::new(IpAddr::V4(a.ip), a.port);
    let udp = match UdpSocket::bind(addr) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && a.strict_port_bind => {
            return Err(BindError::Strict(a.port).into());
        }
        Err(e) => return Err(StartError::BindUdp(addr, e)),
    };
    udp.set_read_timeout(Some(POLL))
        .map_err(StartError::Socket)?;
    let tcp = TcpListener::bind(addr).map_err(|e| StartError::BindTcp(addr, e))?;
    tcp.set_nonblocking(true).map_err(StartError::Socket)?;
    let log_sock = udp.try_clone().map_err(StartError::Socket)?;
    let _ = server.log_socket.set(log_sock);

    let client_port = net::port_from_cvar(server.lock().cvar_int("clientport"));
    let client = net::open_udp(a.ip, client_port, net::CLIENT, a.strict_port_bind)?;
    for w in &client.warnings {
        console(w);
    }
    let _ = server.client_socket.set((client.socket, client.port));
    Ok((udp, tcp))
}

/// Runs the server until SIGINT/SIGTERM or `quit`. Returns after a clean
/// shutdown; startup problems are errors.
///
/// The order is the engine's (sources at `Server::run_startup_configs` in console.rs):
/// plugins, autoexec.cfg, the `+commands`, the network, then the `+map`
/// with server.cfg.
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

    // Started on this (the main) thread: see Plugins::start.
    *server.plugins.lock().unwrap_or_else(|p| p.into_inner()) = Plugins::start(&server.game_dir);
    let _stop_plugins = StopPlugins(&server);

    server.run_startup_configs();

    let (udp, tcp) = match bind_ports(&server) {
        Ok(sockets) => sockets,
        Err(e) => {
            if matches!(e, StartError::Port(_)) {
                console(&e.to_string());
            }
            return Err(e);
        }
    };
    let client_port = server.client_socket.get().map_or(0, |(_, p)| *p);
    console(&format!(
        "Network: IP {}, mode MP, dedicated Yes, ports {} SV / {} CL",
        a.ip, a.port, client_port
    ));
    if let Some(t) = a.tickrate {
        console(&format!("Tickrate set to {t}"));
    }

    if let Err(e) = server.start_game() {
        console(&e.to_string());
        return Err(e.into());
    }

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
                move || rcon_server::accept_loop(s, tcp)
            }),
        ),
        (
            "players",
            Box::new({
                let s = Arc::clone(&server);
                move || simulation_loop(s)
            }),
        ),
        (
            "master",
            Box::new({
                let s = Arc::clone(&server);
                move || master_loop(s)
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
    if let Some(delay) = server.args.sim_stop_delay {
        thread::sleep(delay);
    }
    {
        let mut st = server.lock();
        server.log(&st, "server_message: \"quit\"");
        server.log(&st, "Log file closed.");
        st.logging = false;
    }
    for t in threads {
        let _ = t.join();
    }
    server
        .plugins
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .stop();
    if let Some(e) = server
        .fatal
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        return Err(e.into());
    }
    console("Server shutdown complete.");
    Ok(())
}

/// A socket read that ended because its poll timeout ran out (or a signal
/// interrupted it): the loop just checks for shutdown and reads again.
pub(crate) fn is_poll_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

//! The simulated game for tests: an installation made by `steamcmd-sim`
//! through the real steamcmd argv, a running `srcds-sim` (started through its
//! `srcds_run`, console captured), and raw A2S and Source RCON clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{bin_dir, free_port, require, workspace_bin};

/// True when both simulator binaries are built; otherwise a loud skip.
pub fn sims_built() -> bool {
    let dir = bin_dir();
    require(
        dir.join("srcds-sim").is_file() && dir.join("steamcmd-sim").is_file(),
        "srcds-sim/steamcmd-sim not built (run `cargo build -p srcds-sim` or `cargo test --workspace`)",
    )
}

/// A data root with steamcmd-sim linked as `<root>/steam/steamcmd.sh`; the
/// game goes to `<root>/installation`.
pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Default for Root {
    fn default() -> Self {
        Self::new()
    }
}

impl Root {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("create temp root");
        std::fs::create_dir_all(dir.path().join("steam")).expect("create steam dir");
        std::os::unix::fs::symlink(
            workspace_bin("steamcmd-sim"),
            dir.path().join("steam/steamcmd.sh"),
        )
        .expect("link steamcmd-sim");
        Root { dir }
    }

    /// A root with the game installed and `server_cfg` as its server.cfg.
    pub fn installed(server_cfg: &str) -> Self {
        let root = Self::new();
        root.install();
        root.write_server_cfg(server_cfg);
        root
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn installation(&self) -> PathBuf {
        self.path().join("installation")
    }

    pub fn steamcmd(&self, args: &[&str]) -> std::process::Output {
        Command::new(self.path().join("steam/steamcmd.sh"))
            .args(args)
            .env("STEAMCMD_SIM_CONTENT_MB", "1")
            .env_remove("SRCDS_SIM_BIN")
            .stdin(Stdio::null())
            .output()
            .expect("spawn steamcmd-sim")
    }

    /// One steamcmd pass, with the exact argv `l4d2ctl install` uses.
    pub fn pass(&self, platform: &str, app: &str) -> std::process::Output {
        let dir = self.installation();
        self.steamcmd(&[
            "+force_install_dir",
            dir.to_str().expect("UTF-8 temp path"),
            "+login",
            "anonymous",
            "+@sSteamCmdForcePlatformType",
            platform,
            "+app_update",
            app,
            "validate",
            "+quit",
        ])
    }

    /// The two passes `l4d2ctl install` runs.
    pub fn install(&self) {
        for platform in ["windows", "linux"] {
            let out = self.pass(platform, "222860");
            assert!(
                out.status.success(),
                "{platform} pass failed: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }

    pub fn write_server_cfg(&self, text: &str) {
        self.write_cfg("server.cfg", text);
    }

    /// Writes `<installation>/left4dead2/cfg/<name>`.
    pub fn write_cfg(&self, name: &str, text: &str) {
        let cfg = self.installation().join("left4dead2/cfg");
        std::fs::create_dir_all(&cfg).expect("create cfg dir");
        std::fs::write(cfg.join(name), text).expect("write cfg");
    }

    /// Writes an executable plugin stand-in into `left4dead2/addons/sim-plugins/`.
    pub fn write_plugin(&self, name: &str, script: &str, mode: u32) -> PathBuf {
        let dir = self.installation().join("left4dead2/addons/sim-plugins");
        std::fs::create_dir_all(&dir).expect("create plugin dir");
        let path = dir.join(name);
        crate::write_executable(&path, script, mode);
        path
    }
}

/// A running srcds_run with captured console output.
pub struct Sim {
    pub child: Child,
    pub port: u16,
    pub console: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    srcds_run: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// Appends the lines of `from` to `sink` on a thread of its own.
fn collect_into(from: impl Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
}

impl Sim {
    /// Starts `<installation>/srcds_run -game left4dead2 +ip 127.0.0.1 +hostport <free> <extra>`
    /// from an unrelated cwd (srcds_run must cd itself) and waits for A2S.
    pub fn start(root: &Root, extra: &[&str]) -> Sim {
        Sim::start_with_env(root, extra, &[])
    }

    /// [`Sim::start`] with extra environment variables.
    pub fn start_with_env(root: &Root, extra: &[&str], env: &[(&str, &str)]) -> Sim {
        let sim = Sim::spawn_on(root, free_port(), extra, env);
        sim.wait_for_a2s();
        sim
    }

    /// Starts the server on `port` without waiting for it.
    pub fn spawn_on(root: &Root, port: u16, extra: &[&str], env: &[(&str, &str)]) -> Sim {
        let console = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let srcds_run = root.installation().join("srcds_run");
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let child = Self::spawn(&srcds_run, port, &args, &env, &console, &stderr);
        Sim {
            child,
            port,
            console,
            stderr,
            srcds_run,
            args,
            env,
        }
    }

    fn spawn(
        srcds_run: &Path,
        port: u16,
        args: &[String],
        env: &[(String, String)],
        console: &Arc<Mutex<Vec<String>>>,
        stderr: &Arc<Mutex<Vec<String>>>,
    ) -> Child {
        let port = port.to_string();
        let mut child = Command::new(srcds_run)
            .args([
                "-game",
                "left4dead2",
                "+ip",
                "127.0.0.1",
                "+hostport",
                &port,
            ])
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn srcds_run");
        collect_into(child.stdout.take().unwrap(), Arc::clone(console));
        collect_into(child.stderr.take().unwrap(), Arc::clone(stderr));
        child
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits for stderr to contain `needle`.
    pub fn wait_stderr(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.stderr_text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("stderr never showed {needle:?}: {}", self.stderr_text());
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Waits until the server answers a raw A2S_INFO probe (any reply).
    pub fn wait_for_a2s(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 1400];
        while Instant::now() < deadline {
            let _ = sock.send_to(&info_request(None), self.addr());
            if sock.recv_from(&mut buf).is_ok() {
                return;
            }
        }
        panic!(
            "srcds-sim did not answer A2S on port {}; console: {:?}",
            self.port,
            self.console_text()
        );
    }

    pub fn console_text(&self) -> String {
        self.console.lock().unwrap().join("\n")
    }

    /// Waits for the console to contain `needle`.
    pub fn wait_console(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.console_text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("console never showed {needle:?}: {}", self.console_text());
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for exit (panics after 15 s).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "srcds-sim did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGINT and wait for exit (srcds's clean stop); killed after 15 s.
    pub fn stop(&mut self) {
        // A reaped pid may already name another process.
        if self.child.try_wait().unwrap().is_some() {
            return;
        }
        self.signal(libc::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops and starts the server again on the same port with the same
    /// arguments, and waits for A2S; the console keeps its earlier lines.
    pub fn restart(&mut self) {
        self.stop();
        self.child = Self::spawn(
            &self.srcds_run,
            self.port,
            &self.args,
            &self.env,
            &self.console,
            &self.stderr,
        );
        self.wait_for_a2s();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `FF FF FF FF 'T' "Source Engine Query\0" [challenge]`.
pub fn info_request(challenge: Option<[u8; 4]>) -> Vec<u8> {
    let mut v = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x54];
    v.extend_from_slice(b"Source Engine Query\0");
    if let Some(c) = challenge {
        v.extend_from_slice(&c);
    }
    v
}

/// Polls A2S_INFO (a real client crate, independent of our simulator) until
/// the server answers or `timeout` passes.
pub fn wait_for_a2s(port: u16, timeout: Duration) -> Option<a2s::info::Info> {
    let mut client = a2s::A2SClient::new().ok()?;
    // Short: a query sent before the server bound its socket is simply lost,
    // and a long timeout would then dominate what the benchmark measures.
    client.set_timeout(Duration::from_millis(50)).ok()?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(info) = client.info(("127.0.0.1", port)) {
            return Some(info);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Minimal Source RCON exchange on 127.0.0.1: authenticate, run one
/// command, return the first response body.
pub fn rcon(port: u16, password: &str, command: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect rcon");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let send = |s: &mut TcpStream, id: i32, kind: i32, body: &str| {
        let mut packet = Vec::new();
        packet.extend_from_slice(&id.to_le_bytes());
        packet.extend_from_slice(&kind.to_le_bytes());
        packet.extend_from_slice(body.as_bytes());
        packet.extend_from_slice(&[0, 0]);
        let mut framed = (packet.len() as i32).to_le_bytes().to_vec();
        framed.extend(packet);
        s.write_all(&framed).unwrap();
    };
    let recv = |s: &mut TcpStream| -> (i32, i32, String) {
        let mut size = [0u8; 4];
        s.read_exact(&mut size).unwrap();
        let mut body = vec![0u8; i32::from_le_bytes(size) as usize];
        s.read_exact(&mut body).unwrap();
        let id = i32::from_le_bytes(body[0..4].try_into().unwrap());
        let kind = i32::from_le_bytes(body[4..8].try_into().unwrap());
        let text = String::from_utf8_lossy(&body[8..body.len() - 2]).into_owned();
        (id, kind, text)
    };
    send(&mut stream, 1, 3, password);
    loop {
        let (id, kind, _) = recv(&mut stream);
        if kind == 2 {
            assert_eq!(id, 1, "rcon auth rejected");
            break;
        }
    }
    send(&mut stream, 2, 2, command);
    let (_, _, text) = recv(&mut stream);
    text
}

/// A raw RCON packet as read from the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct RawPacket {
    pub size: i32,
    pub id: i32,
    pub kind: i32,
    /// Everything after the type field (body + the two NULs).
    pub payload: Vec<u8>,
}

impl RawPacket {
    pub fn body(&self) -> &[u8] {
        &self.payload[..self.payload.len() - 2]
    }
}

/// A TCP connection to `to` from the local address `from` (any 127.0.0.0/8
/// address is local on Linux), so tests can play several client hosts.
pub fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(to) = to else {
        panic!("IPv4 only")
    };
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor we own; the sockaddr_in
    // values live across the calls; the fd is handed to TcpStream (which
    // closes it) or closed here on error.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let local = sockaddr(from, 0);
        let remote = sockaddr(*to.ip(), to.port());
        if libc::bind(fd, &local as *const _ as *const libc::sockaddr, len) != 0
            || libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len) != 0
        {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        Ok(TcpStream::from_raw_fd(fd))
    }
}

/// A raw Source RCON client that checks the wire format as it goes.
pub struct Rcon {
    pub stream: TcpStream,
}

impl Rcon {
    pub fn connect(addr: SocketAddr) -> Rcon {
        let stream = TcpStream::connect(addr).unwrap();
        Rcon::from_stream(stream)
    }

    pub fn connect_from(from: Ipv4Addr, addr: SocketAddr) -> Rcon {
        Rcon::from_stream(connect_from(from, addr).unwrap())
    }

    pub fn from_stream(stream: TcpStream) -> Rcon {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Rcon { stream }
    }

    /// True once the server has closed the connection (EOF or reset);
    /// waits up to the read timeout for that.
    pub fn is_closed_by_server(&mut self) -> bool {
        let mut buf = [0u8; 64];
        match self.stream.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ),
        }
    }

    fn frame(id: i32, kind: i32, body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 10) as i32).to_le_bytes().to_vec();
        v.extend_from_slice(&id.to_le_bytes());
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(body);
        v.extend_from_slice(&[0, 0]);
        v
    }

    /// Like [`Rcon::send`], for a connection the server may have closed.
    pub fn try_send(&mut self, id: i32, kind: i32, body: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(&Self::frame(id, kind, body))
    }

    pub fn send(&mut self, id: i32, kind: i32, body: &[u8]) {
        self.stream.write_all(&Self::frame(id, kind, body)).unwrap();
    }

    pub fn read(&mut self) -> RawPacket {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).unwrap();
        let size = i32::from_le_bytes(size);
        assert!((10..=4096).contains(&size), "bad size {size}");
        let mut rest = vec![0u8; size as usize];
        self.stream.read_exact(&mut rest).unwrap();
        RawPacket {
            size,
            id: i32::from_le_bytes(rest[..4].try_into().unwrap()),
            kind: i32::from_le_bytes(rest[4..8].try_into().unwrap()),
            payload: rest[8..].to_vec(),
        }
    }

    /// Authenticates; returns the AUTH_RESPONSE id.
    pub fn auth(&mut self, password: &str) -> i32 {
        self.send(1, 3, password.as_bytes());
        let empty = self.read();
        assert_eq!(
            (empty.kind, empty.body()),
            (0, &b""[..]),
            "empty RESPONSE_VALUE before AUTH_RESPONSE"
        );
        let resp = self.read();
        assert_eq!(resp.kind, 2, "AUTH_RESPONSE");
        resp.id
    }

    /// Runs a command, collecting a (possibly multi-packet) response with
    /// the empty-packet mirror trick. Returns (text, packets).
    pub fn exec(&mut self, id: i32, command: &str) -> (String, Vec<RawPacket>) {
        self.send(id, 2, command.as_bytes());
        self.send(id + 1, 0, b"");
        let mut packets = Vec::new();
        loop {
            let p = self.read();
            if p.id == id + 1 {
                assert_eq!(p.body(), b"", "mirrored empty packet");
                let trailer = self.read();
                assert_eq!(trailer.id, id + 1);
                assert_eq!(trailer.kind, 0);
                assert_eq!(
                    trailer.body(),
                    &[0x00, 0x01, 0x00, 0x00],
                    "srcds's end marker body"
                );
                break;
            }
            assert_eq!((p.id, p.kind), (id, 0), "RESPONSE_VALUE for the command");
            packets.push(p);
        }
        let text: Vec<u8> = packets.iter().flat_map(|p| p.body().to_vec()).collect();
        (String::from_utf8(text).unwrap(), packets)
    }
}

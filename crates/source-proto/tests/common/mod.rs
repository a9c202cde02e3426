//! A real srcds-sim process (installed by steamcmd-sim like a real install,
//! started through its `srcds_run`) for the protocol tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "pr0to-s3cret";

/// True when both simulator binaries are built; otherwise a loud skip.
pub fn sims_built() -> bool {
    let dir = test_support::bin_dir();
    test_support::require(
        dir.join("srcds-sim").is_file() && dir.join("steamcmd-sim").is_file(),
        "srcds-sim/steamcmd-sim not built (run `cargo build -p srcds-sim` or `cargo test --workspace`)",
    )
}

/// An installation tree made by steamcmd-sim through the real steamcmd argv.
pub struct Install {
    pub dir: tempfile::TempDir,
}

impl Install {
    pub fn new(server_cfg: &str) -> Install {
        let dir = tempfile::tempdir().unwrap();
        let installation = dir.path().join("installation");
        for platform in ["windows", "linux"] {
            let out = Command::new(test_support::workspace_bin("steamcmd-sim"))
                .args([
                    "+force_install_dir",
                    installation.to_str().unwrap(),
                    "+login",
                    "anonymous",
                    "+@sSteamCmdForcePlatformType",
                    platform,
                    "+app_update",
                    "222860",
                    "validate",
                    "+quit",
                ])
                .env("STEAMCMD_SIM_CONTENT_MB", "1")
                .env_remove("SRCDS_SIM_BIN")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "steamcmd-sim {platform} pass: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let install = Install { dir };
        install.write_cfg(server_cfg);
        install
    }
    pub fn installation(&self) -> PathBuf {
        self.dir.path().join("installation")
    }
    pub fn write_cfg(&self, text: &str) {
        let cfg = self.installation().join("left4dead2/cfg");
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::write(cfg.join("server.cfg"), text).unwrap();
    }
}

/// A port free for both UDP and TCP on 127.0.0.1.
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running simulated server.
pub struct Sim {
    child: Option<Child>,
    pub port: u16,
    installation: PathBuf,
    args: Vec<String>,
    pub console: Arc<Mutex<Vec<String>>>,
}

impl Sim {
    /// `srcds_run -game left4dead2 +ip 127.0.0.1 +hostport <free> -sim_churn 0 <extra>`.
    pub fn start(install: &Install, extra: &[&str]) -> Sim {
        let mut sim = Sim {
            child: None,
            port: free_port(),
            installation: install.installation(),
            args: extra.iter().map(|s| s.to_string()).collect(),
            console: Arc::new(Mutex::new(Vec::new())),
        };
        sim.spawn();
        sim
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let mut child = Command::new(self.installation.join("srcds_run"))
            .args([
                "-game",
                "left4dead2",
                "+ip",
                "127.0.0.1",
                "+hostport",
                &port,
            ])
            .args(["-sim_churn", "0"])
            .args(&self.args)
            .current_dir("/")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&self.console);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        self.child = Some(child);
        self.wait_ready();
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Waits until the server answers a raw A2S_INFO probe (any reply).
    fn wait_ready(&self) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut probe = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x54];
        probe.extend_from_slice(b"Source Engine Query\0");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 1400];
        while Instant::now() < deadline {
            let _ = sock.send_to(&probe, self.addr());
            if sock.recv_from(&mut buf).is_ok() {
                return;
            }
        }
        panic!(
            "srcds-sim never answered on {}: {:?}",
            self.port,
            self.console.lock().unwrap()
        );
    }

    /// SIGINT and wait for exit (srcds's clean stop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let deadline = Instant::now() + Duration::from_secs(15);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Stops and starts the server again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

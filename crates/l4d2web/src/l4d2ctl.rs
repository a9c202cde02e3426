//! The one way the web app runs `l4d2ctl` (the host contract: a process
//! boundary, argv only) and the other host programs it starts: finding the
//! binary, a scrubbed environment, the data root as working directory, an
//! own process group, death with the panel, and, for the read-only calls,
//! a timeout and decoding into the contract's types.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::config::Config;

pub use l4d2_contract::status::InstanceStatus;

/// Longest output line kept; longer lines are cut (progress spam guard).
pub const MAX_LINE: usize = 8 * 1024;

/// Read-only calls must not hang a page or the live poller.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Environment variables never passed to a child: game servers run
/// third-party plugins and must never see the panel's secrets.
const SECRET_VARS: [&str; 6] = [
    "SECRET_KEY",
    "STEAM_WEB_API_KEY",
    "LEFT4ME_METRICS_TOKEN",
    "DATABASE_URL",
    "LEFT4ME_ADMIN_PASSWORD",
    "NOTIFY_SOCKET",
];

#[derive(Debug, Clone, thiserror::Error)]
pub enum HostError {
    #[error("cannot find l4d2ctl: set LEFT4ME_L4D2CTL or install it next to the left4me binary (looked in {0})")]
    NotFound(String),
    #[error("l4d2ctl {args} did not answer within {} s", READ_TIMEOUT.as_secs())]
    Timeout { args: String },
    #[error("cannot run l4d2ctl {args}: {reason}")]
    Spawn { args: String, reason: String },
    #[error("l4d2ctl {args} failed: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("l4d2ctl {args} printed something unexpected: {reason}")]
    Unexpected { args: String, reason: String },
}

/// Runs host programs for the panel. Cheap to clone.
#[derive(Clone)]
pub struct HostClient {
    config: Arc<Config>,
}

impl HostClient {
    pub fn new(config: Arc<Config>) -> Self {
        HostClient { config }
    }

    /// `l4d2ctl` (no arguments yet).
    pub fn l4d2ctl(&self) -> Result<Command, HostError> {
        Ok(self.command(&self.l4d2ctl_path()?))
    }

    /// Any host program with the same rules: no secrets in its environment
    /// (the configured child environment added), the data root as working
    /// directory (relative paths in job logs mean the data root), its own
    /// process group (a shutdown can stop its children too) and SIGKILL
    /// when the panel dies (a kill -9 of the panel leaves nothing running
    /// unsupervised).
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        for var in SECRET_VARS {
            cmd.env_remove(var);
        }
        // l4d2ctl accepts exactly the ports the panel allocates from.
        cmd.env(
            "LEFT4ME_PORT_RANGE_START",
            self.config.port_range.0.to_string(),
        )
        .env(
            "LEFT4ME_PORT_RANGE_END",
            self.config.port_range.1.to_string(),
        );
        for (k, v) in &self.config.child_env {
            cmd.env(k, v);
        }
        cmd.current_dir(&self.config.root).process_group(0);
        // SAFETY: prctl(PR_SET_PDEATHSIG) only, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))?;
                Ok(())
            });
        }
        cmd
    }

    fn l4d2ctl_path(&self) -> Result<PathBuf, HostError> {
        if let Some(p) = &self.config.l4d2ctl {
            return Ok(p.clone());
        }
        let dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        match dir {
            Some(dir) if dir.join("l4d2ctl").is_file() => Ok(dir.join("l4d2ctl")),
            Some(dir) => Err(HostError::NotFound(dir.display().to_string())),
            None => Err(HostError::NotFound("<unknown executable dir>".into())),
        }
    }

    /// Every instance on the host by name, in one `l4d2ctl list --json`.
    pub async fn list(&self) -> Result<HashMap<String, InstanceStatus>, HostError> {
        let all: Vec<InstanceStatus> = self.read_json(&["list", "--json"]).await?;
        Ok(all.into_iter().map(|s| (s.name.clone(), s)).collect())
    }

    /// One instance (`l4d2ctl status <name> --json`).
    pub async fn status(&self, name: &str) -> Result<InstanceStatus, HostError> {
        self.read_json(&["status", name, "--json"]).await
    }

    /// The installed game builds (`l4d2ctl builds --json`).
    pub async fn builds(&self) -> Result<l4d2_contract::builds::BuildsReport, HostError> {
        self.read_json(&["builds", "--json"]).await
    }

    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        args: &[&str],
    ) -> Result<T, HostError> {
        let shown = args.join(" ");
        let mut cmd = self.l4d2ctl()?;
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = tokio::time::timeout(READ_TIMEOUT, cmd.output())
            .await
            .map_err(|_| HostError::Timeout {
                args: shown.clone(),
            })?
            .map_err(|e| HostError::Spawn {
                args: shown.clone(),
                reason: e.to_string(),
            })?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(HostError::Failed {
                args: shown,
                stderr: err.lines().last().unwrap_or("").trim().to_string(),
            });
        }
        serde_json::from_slice(&out.stdout).map_err(|e| HostError::Unexpected {
            args: shown,
            reason: e.to_string(),
        })
    }
}

/// Which pipe of a child a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipe {
    Stdout,
    Stderr,
}

/// Reads a child's pipe line by line (lossy UTF-8, trailing CR/LF
/// stripped, lines longer than [`MAX_LINE`] cut) into `out`, until the pipe
/// closes or nobody receives.
pub async fn read_lines<R: AsyncRead + Unpin>(
    pipe: R,
    which: Pipe,
    out: mpsc::Sender<(Pipe, String)>,
) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while matches!(buf.last(), Some(b'\n' | b'\r')) {
                    buf.pop();
                }
                buf.truncate(MAX_LINE);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if out.send((which, text)).await.is_err() {
                    return;
                }
            }
        }
    }
}

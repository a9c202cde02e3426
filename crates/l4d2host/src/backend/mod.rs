//! Service backends: who runs the game process (SPEC §4). Both sit behind
//! [`Backend`]; `LEFT4ME_BACKEND=systemd|local` chooses, otherwise systemd is
//! used when it is PID 1 and the helpers are installed.

mod local;
mod systemd;

use std::io::Write;

pub use local::LocalBackend;
pub use systemd::{SystemdBackend, SystemdCommand, HELPER_DIR};

use crate::instance::InstanceError;
use crate::overlay::OverlayError;
use crate::{InstanceName, Layout};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("LEFT4ME_BACKEND={0:?} is not a backend (expected `systemd` or `local`)")]
    Unknown(String),
    #[error(transparent)]
    Instance(#[from] InstanceError),
    #[error(transparent)]
    Overlay(#[from] OverlayError),
    #[error("cannot start instance {name}: {message}")]
    Spawn { name: InstanceName, message: String },
    #[error("instance {name}: process {pid} did not exit after SIGINT and SIGKILL")]
    Unkillable { name: InstanceName, pid: i32 },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("cannot run `{command}`: {source}")]
    Exec {
        command: String,
        source: std::io::Error,
    },
    #[error("unexpected output from `{command}`: {message}")]
    Parse { command: String, message: String },
    #[error("writing logs: {0}")]
    Output(std::io::Error),
}

/// What the service manager says about an instance, in systemd's words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceState {
    /// `active`, `inactive`, `failed`, `activating`, `deactivating`, …
    pub active_state: String,
    /// `running`, `dead`, `failed`, `auto-restart`, …
    pub sub_state: String,
    pub pid: Option<u32>,
    /// Whether it comes back after a reboot (systemd only).
    pub enabled: Option<bool>,
    /// How often systemd restarted it since it was started (systemd only).
    pub restarts: Option<u32>,
}

impl ServiceState {
    pub fn stopped() -> ServiceState {
        ServiceState {
            active_state: "inactive".into(),
            sub_state: "dead".into(),
            pid: None,
            enabled: None,
            restarts: None,
        }
    }
}

#[derive(Debug)]
pub enum Backend {
    Local(LocalBackend),
    Systemd(SystemdBackend),
}

impl Backend {
    /// `LEFT4ME_BACKEND`, or auto-detection.
    pub fn from_env() -> Result<Backend, BackendError> {
        match std::env::var("LEFT4ME_BACKEND")
            .ok()
            .as_deref()
            .map(str::trim)
        {
            Some("systemd") => Ok(Backend::Systemd(SystemdBackend)),
            Some("local") => Ok(Backend::Local(LocalBackend)),
            None | Some("") => Ok(Self::detect()),
            Some(other) => Err(BackendError::Unknown(other.to_owned())),
        }
    }

    fn detect() -> Backend {
        let systemd_is_pid1 = std::path::Path::new("/run/systemd/system").is_dir();
        let helpers = std::path::Path::new(HELPER_DIR)
            .join("left4me-systemctl")
            .is_file();
        if systemd_is_pid1 && helpers {
            Backend::Systemd(SystemdBackend)
        } else {
            Backend::Local(LocalBackend)
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Local(_) => "local",
            Backend::Systemd(_) => "systemd",
        }
    }

    /// Starts the instance and marks it to come back after a reboot where the
    /// backend can. Starting a running instance is a no-op.
    pub fn start(&self, layout: &Layout, name: &InstanceName) -> Result<(), BackendError> {
        match self {
            Backend::Local(b) => b.start(layout, name),
            Backend::Systemd(b) => b.start(name),
        }
    }

    /// Stops the instance (SIGINT, then SIGKILL after the grace period) and
    /// unmounts its overlay once the process is gone.
    pub fn stop(&self, layout: &Layout, name: &InstanceName) -> Result<(), BackendError> {
        match self {
            Backend::Local(b) => b.stop(layout, name),
            Backend::Systemd(b) => b.stop(name),
        }
    }

    pub fn state(
        &self,
        layout: &Layout,
        name: &InstanceName,
    ) -> Result<ServiceState, BackendError> {
        match self {
            Backend::Local(b) => Ok(b.state(layout, name)),
            Backend::Systemd(b) => b.state(name),
        }
    }

    pub fn logs(
        &self,
        layout: &Layout,
        name: &InstanceName,
        lines: usize,
        follow: bool,
        out: &mut dyn Write,
    ) -> Result<(), BackendError> {
        match self {
            Backend::Local(_) => crate::logs::tail(&layout.console_log(name), lines, follow, out)
                .map_err(BackendError::Output),
            Backend::Systemd(b) => b.logs(name, lines, follow),
        }
    }
}

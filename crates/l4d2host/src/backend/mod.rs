//! Service backends: who runs the game process (docs/host-contract.md, Backends). Both sit behind
//! [`Backend`]; `LEFT4ME_BACKEND=systemd|local` chooses, otherwise systemd is
//! used when it is PID 1 and the helpers are installed.

mod local;
mod procfs;
mod systemd;

use std::io::Write;

pub use local::LocalBackend;
pub use systemd::{SystemdBackend, SystemdCommand, HELPER_DIR};

use crate::instance::InstanceError;
use crate::overlay::OverlayError;
use crate::view::ViewError;
use crate::{InstanceName, Layout, ServiceState};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("LEFT4ME_BACKEND={0:?} is not a backend (expected `systemd` or `local`)")]
    Unknown(String),
    #[error(transparent)]
    Instance(#[from] InstanceError),
    #[error(transparent)]
    Overlay(#[from] OverlayError),
    #[error(transparent)]
    View(#[from] ViewError),
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
    /// disables it at boot. Its overlay lives only in the game's namespace
    /// and is gone with the process.
    pub fn stop(&self, layout: &Layout, name: &InstanceName) -> Result<(), BackendError> {
        match self {
            Backend::Local(b) => b.stop(layout, name),
            Backend::Systemd(b) => b.stop(name),
        }
    }

    /// Stops the instance and forgets whatever the backend keeps about it
    /// (systemd: the unit's per-instance configuration).
    pub fn delete(&self, layout: &Layout, name: &InstanceName) -> Result<(), BackendError> {
        match self {
            Backend::Local(b) => b.stop(layout, name),
            Backend::Systemd(b) => b.delete(name),
        }
    }

    /// The state of each of `names`, in order (systemd: one call for all).
    pub fn states(
        &self,
        layout: &Layout,
        names: &[InstanceName],
    ) -> Result<Vec<ServiceState>, BackendError> {
        match self {
            Backend::Local(b) => Ok(b.states(layout, names)),
            Backend::Systemd(b) => b.states(names),
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

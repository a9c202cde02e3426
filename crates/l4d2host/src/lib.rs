//! Host-side operations for left4me: the data-root layout, instance specs,
//! overlayfs mounts, service backends (systemd / local), the steamcmd install
//! and console logs. `l4d2ctl` is a thin CLI over [`Host`]; the privileged
//! `left4me-overlay` helper calls [`overlay`] directly.
//!
//! Deliberately absent (the web app serialises operations per server): locks,
//! rollback, preflight checks.

pub mod backend;
pub mod builds;
pub mod fsx;
pub mod install;
pub mod instance;
pub mod launch;
mod layout;
pub mod logs;
pub mod overlay;
pub mod spec;
pub mod view;

use std::io::Write;
use std::path::Path;

pub use backend::{Backend, BackendError};
pub use install::InstallError;
pub use instance::InstanceError;
pub use l4d2_contract::builds::{BuildId, BuildsReport, UpdateCheck};
pub use l4d2_contract::status::{InstanceStatus, ServiceState};
pub use l4d2_contract::{InstanceName, NameError};
pub use layout::{Layout, DEFAULT_ROOT};
pub use overlay::OverlayError;
pub use spec::{InstanceSpec, PortRange, SpecError};
pub use view::ViewError;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Instance(#[from] InstanceError),
    #[error(transparent)]
    Overlay(#[from] OverlayError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error(transparent)]
    View(#[from] ViewError),
    #[error(transparent)]
    Builds(#[from] builds::BuildsError),
    #[error("cannot determine the data root: {0}")]
    Root(std::io::Error),
}

/// The host: a data root and the backend that runs its instances.
#[derive(Debug)]
pub struct Host {
    pub layout: Layout,
    pub backend: Backend,
    pub ports: PortRange,
}

impl Host {
    /// `LEFT4ME_ROOT`, `LEFT4ME_BACKEND`, `LEFT4ME_PORT_RANGE_START`/`_END`.
    pub fn from_env() -> Result<Host, HostError> {
        Ok(Host {
            layout: Layout::from_env().map_err(HostError::Root)?,
            backend: Backend::from_env()?,
            ports: PortRange::from_env()?,
        })
    }

    /// Installs the newest build beside the others; returns it.
    pub fn install(&self, out: &mut dyn Write) -> Result<BuildId, HostError> {
        let steamcmd = install::steamcmd_from_env(&self.layout)?;
        let login = install::SteamLogin::from_env()?;
        Ok(install::install(&self.layout, &steamcmd, &login, out)?)
    }

    pub fn builds(&self) -> Result<BuildsReport, HostError> {
        Ok(builds::report(&self.layout)?)
    }

    /// The newest installed build against Steam's public one.
    pub fn check_update(&self, out: &mut dyn Write) -> Result<UpdateCheck, HostError> {
        let steamcmd = install::steamcmd_from_env(&self.layout)?;
        let login = install::SteamLogin::from_env()?;
        let published = install::published_build(&self.layout, &steamcmd, &login, out)?;
        let installed = builds::installed(&self.layout)?.first().copied();
        let installed = match installed {
            Some(id) => Some(id),
            None if builds::is_legacy(&self.layout) => {
                Some(builds::manifest_build(&self.layout.installation())?)
            }
            None => None,
        };
        Ok(UpdateCheck {
            installed,
            published,
        })
    }

    /// Validates the spec completely before anything is written.
    pub fn initialize(&self, name: &InstanceName, spec_file: &Path) -> Result<(), HostError> {
        let spec = InstanceSpec::from_file(spec_file, &self.layout, self.ports)?;
        instance::initialize(&self.layout, name, &spec)?;
        Ok(())
    }

    pub fn start(&self, name: &InstanceName) -> Result<(), HostError> {
        self.require(name)?;
        instance::stage_server_cfg(&self.layout, name)?;
        self.backend.start(&self.layout, name)?;
        Ok(())
    }

    /// Stops the instance. Its overlay existed only in the game's own
    /// namespace; the `work/work` directory overlayfs leaves is removed.
    pub fn stop(&self, name: &InstanceName) -> Result<(), HostError> {
        self.require(name)?;
        self.backend.stop(&self.layout, name)?;
        instance::remove_tree(&self.layout.work(name).join("work"))?;
        Ok(())
    }

    /// Stops and removes the instance. A missing instance is a success.
    pub fn delete(&self, name: &InstanceName) -> Result<(), HostError> {
        let defined = instance::exists(&self.layout, name);
        if defined || self.layout.runtime_dir(name).exists() {
            if defined {
                self.backend.delete(&self.layout, name)?;
            }
            instance::remove(&self.layout, name)?;
        }
        Ok(())
    }

    pub fn status(&self, name: &InstanceName) -> Result<InstanceStatus, HostError> {
        let mut all = self.statuses(std::slice::from_ref(name))?;
        Ok(all.remove(0))
    }

    /// Status of every defined instance, sorted by name, with one backend
    /// query for all of them.
    pub fn list(&self) -> Result<Vec<InstanceStatus>, HostError> {
        let dir = self.layout.instances();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(instance::io_err("cannot list", &dir)(e).into()),
        };
        let mut names: Vec<InstanceName> = entries
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| InstanceName::parse(n).ok())
            })
            .filter(|n| instance::exists(&self.layout, n))
            .collect();
        names.sort();
        self.statuses(&names)
    }

    fn statuses(&self, names: &[InstanceName]) -> Result<Vec<InstanceStatus>, HostError> {
        let defined: Vec<InstanceName> = names
            .iter()
            .filter(|n| instance::exists(&self.layout, n))
            .cloned()
            .collect();
        let mut states = self.backend.states(&self.layout, &defined)?.into_iter();
        Ok(names
            .iter()
            .map(|name| {
                let exists = defined.contains(name);
                let service = if exists {
                    states.next().unwrap_or_else(ServiceState::stopped)
                } else {
                    ServiceState::stopped()
                };
                InstanceStatus {
                    name: name.to_string(),
                    exists,
                    backend: self.backend.name().to_string(),
                    port: exists
                        .then(|| instance::InstanceEnv::read(&self.layout, name).ok())
                        .flatten()
                        .map(|e| e.port),
                    service,
                }
            })
            .collect())
    }

    pub fn logs(
        &self,
        name: &InstanceName,
        lines: usize,
        follow: bool,
        out: &mut dyn Write,
    ) -> Result<(), HostError> {
        self.require(name)?;
        self.backend.logs(&self.layout, name, lines, follow, out)?;
        Ok(())
    }

    fn require(&self, name: &InstanceName) -> Result<(), HostError> {
        if instance::exists(&self.layout, name) {
            Ok(())
        } else {
            Err(InstanceError::Missing(name.clone()).into())
        }
    }
}

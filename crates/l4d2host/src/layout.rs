//! The data-root layout (`LEFT4ME_ROOT`, docs/host-contract.md, Data root). All paths are derived here
//! so nothing else hard-codes a directory name.

use std::path::{Path, PathBuf};

use crate::InstanceName;

/// Production data root.
pub const DEFAULT_ROOT: &str = "/var/lib/left4me";

#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    /// `LEFT4ME_ROOT`, or the production default. Relative roots are made
    /// absolute against the working directory, because the paths end up in
    /// instance.env and mount options where a relative path would be wrong.
    pub fn from_env() -> std::io::Result<Layout> {
        let root = std::env::var_os("LEFT4ME_ROOT")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
        Ok(Layout::new(std::path::absolute(root)?))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn installation(&self) -> PathBuf {
        self.root.join("installation")
    }
    pub fn steam_dir(&self) -> PathBuf {
        self.root.join("steam")
    }
    /// Where srcds looks for `steamclient.so` (`$HOME/.steam/sdk32`, HOME = root).
    pub fn dot_steam(&self) -> PathBuf {
        self.root.join(".steam")
    }
    pub fn overlays(&self) -> PathBuf {
        self.root.join("overlays")
    }
    pub fn workshop_cache(&self) -> PathBuf {
        self.root.join("workshop_cache")
    }
    pub fn instances(&self) -> PathBuf {
        self.root.join("instances")
    }
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    pub fn instance_dir(&self, name: &InstanceName) -> PathBuf {
        self.instances().join(name.as_str())
    }
    pub fn instance_env(&self, name: &InstanceName) -> PathBuf {
        self.instance_dir(name).join("instance.env")
    }
    pub fn instance_server_cfg(&self, name: &InstanceName) -> PathBuf {
        self.instance_dir(name).join("server.cfg")
    }
    pub fn runtime(&self) -> PathBuf {
        self.root.join("runtime")
    }
    pub fn runtime_dir(&self, name: &InstanceName) -> PathBuf {
        self.runtime().join(name.as_str())
    }
    pub fn upper(&self, name: &InstanceName) -> PathBuf {
        self.runtime_dir(name).join("upper")
    }
    pub fn work(&self, name: &InstanceName) -> PathBuf {
        self.runtime_dir(name).join("work")
    }
    pub fn merged(&self, name: &InstanceName) -> PathBuf {
        self.runtime_dir(name).join("merged")
    }
    /// The server.cfg staged into the upper layer so it wins over every overlay.
    pub fn staged_server_cfg(&self, name: &InstanceName) -> PathBuf {
        self.upper(name).join("left4dead2/cfg/server.cfg")
    }
    /// Local backend: `<pid> <starttime>` of the supervised process.
    pub fn pid_file(&self, name: &InstanceName) -> PathBuf {
        self.runtime_dir(name).join("server.pid")
    }
    /// Local backend: the server's console output.
    pub fn console_log(&self, name: &InstanceName) -> PathBuf {
        self.runtime_dir(name).join("console.log")
    }
    /// Directories an overlay lowerdir may come from (besides the installation).
    pub fn overlay_roots(&self) -> [PathBuf; 2] {
        [self.overlays(), self.workshop_cache()]
    }
}

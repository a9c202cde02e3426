//! The instance spec: the YAML file `l4d2ctl initialize <name> -f <file>`
//! reads. The web app writes it (serde); the host parses it by hand so every
//! error names the field (see `l4d2host::spec`), into this same type.

use serde::{Deserialize, Serialize};

/// The kernel stacks at most 500 lower layers.
pub const MAX_LOWERDIRS: usize = 500;
/// Overlays a spec may list: every lower layer but the installation.
pub const MAX_OVERLAYS: usize = MAX_LOWERDIRS - 1;
/// server.cfg text larger than this is certainly a mistake.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// Launch arguments (tokens) a spec may carry.
pub const MAX_ARGS: usize = 64;
/// Longest single launch argument.
pub const MAX_ARG_LEN: usize = 256;
/// Largest spec file.
pub const MAX_SPEC_BYTES: usize = 1024 * 1024;

/// The keys of a spec file, for error messages.
pub const KEYS: &str = "port, overlays, args, config";

/// One instance definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    /// The game port (UDP game traffic, TCP RCON). The client and SourceTV
    /// ports follow from it ([`crate::launch::GamePorts`]).
    pub port: u16,
    /// Overlay directories, uppermost first: absolute, or relative to the
    /// data root (`overlays/<id>`). The installation is always the lowest layer.
    #[serde(default)]
    pub overlays: Vec<String>,
    /// Extra srcds arguments a blueprint chose (see [`crate::launch`]).
    #[serde(default)]
    pub args: Vec<String>,
    /// server.cfg text.
    #[serde(default)]
    pub config: String,
}

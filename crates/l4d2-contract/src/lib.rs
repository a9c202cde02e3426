//! The contract between the left4me web app (`l4d2web`) and the host side
//! (`l4d2host`, `l4d2ctl`, the privileged helpers).
//!
//! The web app never links `l4d2host`: it runs `l4d2ctl` as a subprocess.
//! What crosses that process boundary is defined here once and linked by
//! both sides, so the two cannot drift apart silently:
//!
//! - [`InstanceName`]: the one name rule (`^[a-z0-9][a-z0-9_-]{0,63}$`);
//! - [`spec`]: the YAML spec `l4d2ctl initialize` reads and its limits;
//! - [`status`]: the JSON `l4d2ctl status|list --json` prints;
//! - [`launch`]: which srcds launch arguments belong to the panel and which
//!   a blueprint may set, and the ports and unit user of an instance;
//! - [`server_cfg`]: the cvars the panel manages in server.cfg;
//! - [`builds`]: game build ids and what `l4d2ctl builds|check-update
//!   --json` print;
//! - [`install`]: `l4d2ctl install`'s exit codes for a Steam login that
//!   needs attention, and steamcmd's progress lines in its output with the
//!   rate measured from them.
//!
//! Only types, rules and constants live here; no I/O.

pub mod builds;
pub mod install;
pub mod launch;
mod name;
pub mod server_cfg;
pub mod spec;
pub mod status;

pub use name::{InstanceName, NameError};

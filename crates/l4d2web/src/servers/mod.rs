//! Servers and their blueprints (docs/product.md): the recipe, the
//! instances made from it, and what their jobs do on the host.
//!
//! - [`model`]: server rows, ownership, desired state, creation;
//! - [`access`]: roles on a server (owner, shared users, administrators)
//!   and what each allows;
//! - [`actions`]: the work of start, stop, restart, reset and delete;
//! - [`blueprints`]: the recipes (overlay stack, launch args, server.cfg);
//! - [`spec`]: the instance spec handed to `l4d2ctl initialize`;
//! - [`status`]: actual state from `l4d2ctl`, and drift;
//! - [`console`]: the shared console log followers;
//! - [`crashes`]: telling a crash from a stop, counting them, and the
//!   local backend's restart policy;
//! - [`rcon`]: console commands and their history;
//! - [`players`]: Steam id bans and SourceMod admins, and the kick, ban
//!   and unban commands;
//! - [`ports`]: free port search;
//! - [`resources`]: one hour of CPU, memory and FPS history in memory;
//!   [`host_usage`]: the host's own CPU, memory and disk.

pub mod access;
mod actions;
pub mod blueprints;
pub mod console;
pub mod crashes;
pub mod host_usage;
mod model;
pub mod players;
pub mod ports;
pub mod rcon;
pub mod resources;
pub mod spec;
pub mod status;

pub use actions::{run_action, start_refusal, ActionEnv};
pub use model::{
    converge_action, create_server, find_owned, find_owned_rcon, list_all, list_owned, lock_key,
    log_secrets, record_request, running_targets, subject, subject_server, switch_blueprint,
    using_blueprint, validate_name, Action, CreateError, DesiredState, NameError, RconTarget,
    ServerRow, SwitchError,
};

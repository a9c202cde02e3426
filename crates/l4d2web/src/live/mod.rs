//! Live state of running servers (docs/product.md, Live state): map and
//! players from A2S and RCON `status`, game events from the UDP log
//! listener, Steam persona names and avatars, fanned out to any number of
//! viewers.
//!
//! - [`hub`]: the one [`LiveHub`] per process and its background tasks;
//! - [`state`]: the board they write and viewers read;
//! - [`poll`]: the poller (A2S always, RCON `status` while watched);
//! - [`events`]: the log listener's lines as panel events, and its secrets
//!   kept in step with the `servers` table;
//! - [`paths`]: the two ways log lines arrive (UDP, the console),
//!   de-duplicated, and the per-server counters behind the health line;
//! - [`ownership`]: RCON only to a port the instance itself holds.

mod events;
mod hub;
mod ownership;
mod paths;
mod poll;
mod state;

pub use hub::{ConsoleRconError, LiveError, LiveHub};
pub use ownership::NotOwned;
pub use paths::{EventHealth, PathCounts, Via};
pub use state::{LiveEvent, LivePlayer, LiveState, LiveSubscription, LiveUpdate, Reading};

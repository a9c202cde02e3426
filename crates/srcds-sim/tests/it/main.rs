//! srcds-sim's integration tests: one binary, one module per area; the
//! simulated game harness is `test_support::sim`.

mod bans;
mod builds;
mod engine;
mod game;
mod server;
mod steamcmd;
mod util;

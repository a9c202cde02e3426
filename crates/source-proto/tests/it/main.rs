//! source-proto's integration tests: one binary, one module per area.

mod listener_thread;
mod malformed;
mod rcon_peer;
mod sim;

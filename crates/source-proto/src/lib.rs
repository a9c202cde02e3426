//! Client side of the Source engine protocols left4me speaks to running
//! Left 4 Dead 2 servers (the web app's live panel):
//!
//! * [`rcon`]: Source RCON over TCP (auth, commands, multi-packet replies,
//!   timeouts, one reconnect after a server restart).
//! * [`status`]: parser for L4D2's `status` console output.
//! * [`stats`]: parser for the `stats` console command (CPU, traffic, FPS).
//! * [`steamid`]: `STEAM_X:Y:Z` / `[U:1:N]` ⇄ SteamID64.
//! * [`a2s`]: A2S_INFO / A2S_PLAYER over UDP with the challenge dance.
//! * [`hllog`]: HL Log Standard UDP packets and log lines.
//! * [`listener`]: the UDP log listener that attributes lines to servers by
//!   their `sv_logsecret`.
//!
//! Every parser takes untrusted bytes and returns an error, never panics.
//! This crate shares no code with `srcds-sim` on purpose: the simulator is the
//! server side, and tests between the two prove the protocols interoperate.

pub mod a2s;
pub mod hllog;
pub mod listener;
pub mod rcon;
pub mod stats;
pub mod status;
pub mod steamid;

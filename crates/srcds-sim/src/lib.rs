//! `srcds-sim`: a stand-in for the Left 4 Dead 2 dedicated server (srcds) and
//! for steamcmd, used by left4me's demo mode and tests because no real game
//! server can be downloaded here.
//!
//! The simulator speaks the real protocols byte for byte (Valve Developer Wiki:
//! *Server queries* for A2S over UDP, *Source RCON Protocol* over TCP, *HL Log
//! Standard* for `logaddress_add` UDP log lines), reads `<game>/cfg/server.cfg`
//! like srcds, and simulates players joining and leaving.
//!
//! Modules hold the pieces; the binaries `srcds-sim` and `steamcmd-sim` are thin.

pub mod a2s;
pub mod args;
pub mod clock;
pub mod config;
pub mod console;
pub mod hllog;
pub mod rcon;
pub mod rng;
pub mod server;
pub mod state;
pub mod steamcmd;

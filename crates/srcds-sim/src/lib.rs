//! `srcds-sim`: a stand-in for the Left 4 Dead 2 dedicated server (srcds) and
//! for steamcmd, used by left4me's demo mode and tests because no real game
//! server can be downloaded here.
//!
//! The simulator speaks the real protocols byte for byte (Valve Developer Wiki:
//! *Server queries* for A2S over UDP, *Source RCON Protocol* over TCP, *HL Log
//! Standard* for `logaddress_add` UDP log lines), and simulates players
//! joining and leaving. Where left4me's guarantees depend on the engine, it
//! follows the engine's code (Source SDK 2013 / CS:GO trees, cited in each
//! module):
//!
//! - **Startup order** ([`console`]): plugins, `autoexec.cfg`, the `+commands`
//!   in argv order (`+map` only schedules the map), the network, then the map
//!   load, which execs `server.cfg` (the `servercfgfile` cvar) — again at
//!   every `map`/`changelevel`. So server.cfg's last lines win over the
//!   command line, except that `+servercfgfile other.cfg` replaces server.cfg.
//! - **The stand-in for native plugins** ([`plugins`]): real srcds runs `.so`
//!   plugins (Metamod/SourceMod, `left4dead2/addons/`) with the same rights
//!   as the game; the simulator runs every regular executable file in
//!   `<game dir>/addons/sim-plugins/` (sorted by name) as a child process
//!   with its uid, environment and working directory, output prefixed
//!   `[plugin <name>] `, in its own process group with `PR_SET_PDEATHSIG`,
//!   killed when the server exits, never restarted. They start at engine
//!   init, before autoexec.cfg and the first map, where srcds loads plugins.
//! - **RCON hardening** ([`filter`], [`rcon_server`]): the engine's
//!   `sv_rcon_maxfailures` 10 / `sv_rcon_minfailures` 5 /
//!   `sv_rcon_minfailuretime` 30 / `sv_rcon_banpenalty` 0 (permanent) bans
//!   via `addip`, with `removeip`/`listip`; plus the simulator's own bounds
//!   for connections that never authenticate (`sim_rcon_max_unauthenticated`,
//!   `sim_rcon_auth_timeout`), which the engine does not need.
//! - **Steam id bans** ([`userfilter`]): `banid <minutes> <userid|id> [kick]`,
//!   `removeid`, `listid`, `writeid` (permanent bans to `cfg/banned_user.cfg`),
//!   and a banned client dropped at validation; `sim_join [name] [steamid]`
//!   joins a player with a chosen Steam id.
//! - **Ports** ([`net`]): `+clientport` is bound like the engine's client
//!   socket, `+tv_port` with `tv_enable 1`; a busy port moves to the next one
//!   with the engine's warning, or ends the start under `-strictportbind`.
//!
//! - **The busy game** ([`game`], `-sim_busy`): survivor bots in empty
//!   survivor slots, special infected bots spawning and dying with L4D's
//!   `(DEATH)` kill lines, chat, and hibernation when the last human leaves.
//!
//! Modules hold the pieces; the binaries `srcds-sim` and `steamcmd-sim` are thin.

pub mod a2s;
pub mod args;
pub mod build;
pub mod clock;
pub mod config;
pub mod console;
pub mod filter;
pub mod game;
pub mod hllog;
pub mod net;
pub mod plugins;
pub mod rcon;
pub mod rcon_server;
pub mod rng;
pub mod server;
pub mod state;
pub mod stats;
pub mod steamcmd;
pub mod userfilter;

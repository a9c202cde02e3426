//! The web app's integration tests: one binary, one module per area;
//! `util` is the in-process server harness, the HTTP client and the
//! browser driver they share.

mod util;

mod alerts;
mod api;
mod architecture;
mod audit;
mod backup;
mod browser;
mod browser_servers;
mod browser_ux;
mod console;
mod converge;
mod db_files;
mod demo;
mod events;
mod game_builds;
mod hardening;
mod http;
mod jobs;
mod live;
mod metrics;
mod overlays;
mod overlays_workshop;
mod players;
mod process;
mod resources;
mod schedules;
mod server_state;
mod servers;
mod servers_demo;
mod servers_input;
mod sharing;
mod totp;

//! `l4d2-launch`: starts an instance's game process once its view of the
//! data root exists (see `l4d2host::launch`). Run by the
//! `left4me-server@` unit (`wait`) and by the local backend as root
//! (`local`); not meant to be run by hand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use l4d2host::{launch, InstanceName, Layout};

#[derive(Parser)]
#[command(
    name = "l4d2-launch",
    version,
    about = "Start a Left 4 Dead 2 server once its view of the data root exists (used by the left4me-server@ unit and l4d2ctl)"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Wait for the view placed by `left4me-overlay attach`, then exec the game
    /// (port and arguments from L4D2_PORT / L4D2_ARGS).
    Wait { root: PathBuf, name: String },
    /// As root: build the view in a new mount namespace, drop to the
    /// instance's uid, exec the game.
    Local { root: PathBuf, name: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (root, name) = match &cli.mode {
        Mode::Wait { root, name } | Mode::Local { root, name } => (root, name),
    };
    let name = match InstanceName::parse(name) {
        Ok(name) => name,
        Err(e) => {
            eprintln!("l4d2-launch: {e}");
            return ExitCode::from(2);
        }
    };
    let error = match cli.mode {
        Mode::Wait { .. } => launch::wait_and_exec(root, &name),
        Mode::Local { .. } => launch::local_exec(&Layout::new(root.clone()), &name),
    };
    eprintln!("l4d2-launch: instance {name}: {error}");
    ExitCode::FAILURE
}

//! `left4me-overlay [--dry-run] mount|umount <name>` (see `left4me_helpers::overlay`).
use std::process::ExitCode;

use left4me_helpers::{config, overlay};

fn main() -> ExitCode {
    let (dry_run, args) = left4me_helpers::split_dry_run(std::env::args_os().skip(1).collect());
    let request = match overlay::parse(&args) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("left4me-overlay: {e}");
            return ExitCode::from(2);
        }
    };
    let root = match config::data_root() {
        Ok(root) => root,
        Err(e) => {
            eprintln!("left4me-overlay: {e}");
            return ExitCode::FAILURE;
        }
    };
    if dry_run {
        println!("{}", overlay::dry_run_line(&request, &root));
        return ExitCode::SUCCESS;
    }
    match overlay::run(&request, &root) {
        Ok(outcome) => {
            println!("{outcome}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("left4me-overlay: {e}");
            ExitCode::FAILURE
        }
    }
}

//! `left4me-overlay [--dry-run] attach <name>` (see `left4me_helpers::overlay`).
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
    let main_pid = overlay::main_pid_from_env();
    if dry_run {
        println!("{}", overlay::dry_run_line(&request, &root, main_pid));
        return ExitCode::SUCCESS;
    }
    let Some(pid) = main_pid else {
        eprintln!("left4me-overlay: {}", overlay::AttachError::NoMainPid);
        return ExitCode::FAILURE;
    };
    match overlay::attach(&request, &root, pid) {
        Ok(outcome) => {
            println!("{outcome}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("left4me-overlay: instance {}: {e}", request.name);
            ExitCode::FAILURE
        }
    }
}

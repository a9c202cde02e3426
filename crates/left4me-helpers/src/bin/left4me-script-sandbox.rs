//! `left4me-script-sandbox [--dry-run] <overlay_id> <script>` (see `left4me_helpers::sandbox`).
use std::process::ExitCode;

use left4me_helpers::{config, sandbox};

fn main() -> ExitCode {
    let (dry_run, args) = left4me_helpers::split_dry_run(std::env::args_os().skip(1).collect());
    let request = match sandbox::parse(&args) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("left4me-script-sandbox: {e}");
            return ExitCode::from(2);
        }
    };
    match run(dry_run, &request) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("left4me-script-sandbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(dry_run: bool, request: &sandbox::Request) -> anyhow::Result<i32> {
    let root = config::data_root()?;
    let plan = sandbox::resolve(request, &root, sandbox::Ids::lookup()?)?;
    if dry_run {
        for line in plan.dry_run_lines() {
            println!("{line}");
        }
        return Ok(0);
    }
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "must run as root (through sudo)"
    );
    if !sandbox::in_pid1_mount_namespace() {
        let wrapper = sandbox::pid1_wrapper_argv(request);
        return Err(anyhow::anyhow!(
            "cannot exec {}: {}",
            wrapper.program,
            wrapper.exec()
        ));
    }
    Ok(sandbox::execute(&plan)?)
}

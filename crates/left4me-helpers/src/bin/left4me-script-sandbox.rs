//! `left4me-script-sandbox [--dry-run] <overlay_id> <script>` (see `left4me_helpers::sandbox`).
use std::process::ExitCode;

use left4me_helpers::{config, hop, sandbox};

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
    if !dry_run {
        anyhow::ensure!(
            nix::unistd::geteuid().is_root(),
            "must run as root (through sudo)"
        );
        // Called from the web app's sandbox: leave it before opening any
        // path (it could not even traverse the data root from there).
        if !hop::fully_privileged() {
            anyhow::ensure!(
                !hop::is_hop(),
                "no root privileges even in the transient unit; is this systemd?"
            );
            let argv = sandbox::hop_argv(request);
            return Err(anyhow::anyhow!(
                "cannot exec {}: {}",
                argv.program,
                argv.exec()
            ));
        }
    }
    let root = config::data_root()?;
    let plan = sandbox::resolve(request, &root, sandbox::Ids::lookup()?)?;
    if dry_run {
        for line in plan.dry_run_lines() {
            println!("{line}");
        }
        return Ok(0);
    }
    Ok(sandbox::execute(&plan)?)
}

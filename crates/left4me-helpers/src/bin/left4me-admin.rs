//! Admin wrapper, installed as `/usr/local/sbin/left4me` (see `left4me_helpers::admin`).
use std::process::ExitCode;

use left4me_helpers::admin;

fn main() -> ExitCode {
    let (dry_run, args) = left4me_helpers::split_dry_run(std::env::args_os().skip(1).collect());
    let plan = match admin::plan(&args, |k| std::env::var(k).ok()) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("left4me: {e}");
            return ExitCode::from(2);
        }
    };
    if dry_run {
        for line in plan.dry_run_lines() {
            println!("{line}");
        }
        return ExitCode::SUCCESS;
    }
    let err = plan.exec();
    eprintln!("left4me: {err}");
    ExitCode::FAILURE
}

//! `left4me-systemctl [--dry-run] enable|disable|show <name>` (see `left4me_helpers::systemctl`).
use std::process::ExitCode;

fn main() -> ExitCode {
    let (dry_run, args) = left4me_helpers::split_dry_run(std::env::args_os().skip(1).collect());
    let argv = match left4me_helpers::systemctl::plan(&args) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("left4me-systemctl: {e}");
            return ExitCode::from(2);
        }
    };
    if dry_run {
        println!("{}", argv.to_json_line());
        return ExitCode::SUCCESS;
    }
    let err = argv.exec();
    eprintln!("left4me-systemctl: cannot exec {}: {err}", argv.program);
    ExitCode::FAILURE
}

//! `left4me-journalctl [--dry-run] <name> --lines N --follow|--no-follow` (see `left4me_helpers::journalctl`).
use std::process::ExitCode;

fn main() -> ExitCode {
    let (dry_run, args) = left4me_helpers::split_dry_run(std::env::args_os().skip(1).collect());
    let argv = match left4me_helpers::journalctl::plan(&args) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("left4me-journalctl: {e}");
            return ExitCode::from(2);
        }
    };
    if dry_run {
        println!("{}", argv.to_json_line());
        return ExitCode::SUCCESS;
    }
    let err = argv.exec();
    eprintln!("left4me-journalctl: cannot exec {}: {err}", argv.program);
    ExitCode::FAILURE
}

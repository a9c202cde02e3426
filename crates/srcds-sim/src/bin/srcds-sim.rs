//! `srcds-sim`: the simulated L4D2 dedicated server (installed as
//! `srcds_linux` and started through `srcds_run`). See the library docs.

use srcds_sim::args::SrcdsArgs;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = match SrcdsArgs::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("srcds-sim: {e}");
            eprintln!("usage: srcds_run -game left4dead2 +ip <addr> +hostport <port> [+map <map>] [+clientport <port>] [+tv_port <port>] [-strictportbind] [-tickrate <n>] [-sim_players <n>] [-sim_churn <s>] [-sim_crash_after <s>] [-sim_stop_delay <s>] [-sim_master_interval <s>] [-sim_log_loopback]");
            return ExitCode::from(1);
        }
    };
    // Same switch as -sim_log_loopback, for launchers that cannot add args.
    if std::env::var("SRCDS_SIM_LOG_LOOPBACK").is_ok_and(|v| v == "1") {
        args.sim_log_loopback = true;
    }
    match srcds_sim::server::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("srcds-sim: {e}");
            ExitCode::from(1)
        }
    }
}

//! `steamcmd-sim`: a simulated steamcmd that installs srcds-sim as app
//! 222860. See `srcds_sim::steamcmd`.

use srcds_sim::build::{self, BuildId, Published};
use srcds_sim::steamcmd::{self, Environment, DEFAULT_CONTENT_MB};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut argv = std::env::args_os();
    let argv0 = argv.next().map(PathBuf::from).unwrap_or_default();
    let args: Vec<String> = argv.map(|a| a.to_string_lossy().into_owned()).collect();
    // The directory we were invoked from, symlinks NOT resolved.
    let steam_dir = match argv0.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    let Some(content_mb) = number_var("STEAMCMD_SIM_CONTENT_MB", "MiB", DEFAULT_CONTENT_MB) else {
        return ExitCode::from(1);
    };
    let Some(download_kib_per_sec) = number_var("STEAMCMD_SIM_KIB_PER_SEC", "KiB/s", 0) else {
        return ExitCode::from(1);
    };
    let published_file =
        build::published_build_file(std::env::var_os(build::PUBLISHED_BUILD_FILE_VAR));
    let published = match build::read_published(&published_file) {
        Ok(Some(p)) => Ok(p),
        Ok(None) => match fallback_build() {
            Some(id) => Ok(Published {
                id,
                time_updated: build::DEFAULT_TIME_UPDATED,
            }),
            None => return ExitCode::from(1),
        },
        Err(e) => Err(e),
    };
    let env = Environment {
        published,
        steam_dir,
        sim_binary: steamcmd::find_sim_binary(
            std::env::var_os("SRCDS_SIM_BIN").map(PathBuf::from),
            std::env::current_exe(),
        ),
        content_mb,
        download_kib_per_sec,
        account: std::env::var("STEAMCMD_SIM_ACCOUNT").ok().and_then(|a| {
            steamcmd::SimAccount::parse(&a, std::env::var("STEAMCMD_SIM_GUARD_CODE").ok())
        }),
        saved_login_expired: std::env::var("STEAMCMD_SIM_LOGIN_EXPIRED").is_ok_and(|v| v == "1"),
        anonymous_refused: std::env::var("STEAMCMD_SIM_ANONYMOUS_REFUSED").is_ok_and(|v| v == "1"),
        home: std::env::var_os("HOME").map(PathBuf::from),
    };
    let code = steamcmd::run(
        &env,
        &args,
        std::io::stdout().lock(),
        std::io::stdin().lock(),
    );
    ExitCode::from(code)
}

/// A whole-number knob from the environment; `None` (after saying why)
/// when it is set to something else.
fn number_var(name: &str, unit: &str, default: u64) -> Option<u64> {
    match std::env::var(name) {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                eprintln!("steamcmd-sim: {name}={v:?} is not a whole number of {unit}");
                None
            }
        },
        Err(_) => Some(default),
    }
}

/// The build without a published build file: `STEAMCMD_SIM_BUILD_ID`, else
/// the default; `None` (after saying why) when the variable is garbage.
fn fallback_build() -> Option<BuildId> {
    match std::env::var(build::BUILD_ID_VAR) {
        Ok(v) if !v.is_empty() => match v.parse() {
            Ok(id) => Some(id),
            Err(e) => {
                eprintln!("steamcmd-sim: {}: {e}", build::BUILD_ID_VAR);
                None
            }
        },
        _ => Some(build::DEFAULT_BUILD_ID),
    }
}

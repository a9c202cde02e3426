//! The shared game installation as the panel sees it: the install job and
//! its Steam login; the installed [`builds`] and the update check; the
//! [`rollout`] of new builds to servers.
//!
//! An install logs in as whatever the host is configured with (anonymous,
//! or a Steam account the web app never reads: `l4d2ctl` reads the file
//! `LEFT4ME_STEAM_ACCOUNT_FILE` names). When Steam asks for a Steam Guard code, an
//! administrator enters it on the Jobs page; the code is kept in memory for
//! the next install only (never in the database or a job's log) and handed
//! to `l4d2ctl` in its environment. steamcmd then keeps the login, so
//! later installs run unattended until Steam lets that login expire.

pub mod builds;
pub mod rollout;

use std::sync::{Arc, Mutex};

use l4d2_contract::install::{
    EXIT_STEAM_GUARD_CODE_NEEDED, EXIT_STEAM_LOGIN_REFUSED, STEAM_GUARD_CODE_VAR,
};
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;

use crate::db;
use crate::jobs::{JobCtx, JobFailure};
use crate::l4d2ctl::HostClient;

#[derive(Debug, thiserror::Error)]
pub enum GameError {
    #[error("a Steam Guard code is the 5 letters or digits from Steam's email or the Steam app")]
    BadGuardCode,
}

/// A Steam Guard code waiting for the next install.
#[derive(Clone, Default)]
pub struct SteamGuard(Arc<Mutex<Option<String>>>);

impl SteamGuard {
    /// Keeps `code` for the next install (replacing an unused one).
    pub fn offer(&self, code: &str) -> Result<(), GameError> {
        let code = code.trim();
        if code.len() != 5 || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(GameError::BadGuardCode);
        }
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(code.to_owned());
        Ok(())
    }

    fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// How the last install's Steam login went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum SteamLogin {
    /// No install ran yet, or the last one logged in.
    Fine,
    /// Steam asks for a Steam Guard code; `message` is l4d2ctl's reason.
    CodeNeeded { message: String },
    /// Steam refused the login.
    Refused { message: String },
}

const FACT: &str = "steam_login";

/// The Steam login's state after the last install.
pub async fn steam_login(pool: &SqlitePool) -> Result<SteamLogin, sqlx::Error> {
    Ok(db::fact(pool, FACT)
        .await?
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or(SteamLogin::Fine))
}

/// The install job: `l4d2ctl <args>` (the tasks module knows the verb),
/// with a waiting Steam Guard code in its environment; what it said about
/// the login is kept for the page.
pub async fn install_job(
    ctx: &mut JobCtx,
    host: &HostClient,
    args: &[&str],
    guard: &SteamGuard,
) -> Result<(), JobFailure> {
    let mut cmd = host.l4d2ctl().map_err(JobFailure::from_error)?;
    cmd.args(args);
    let shown = format!("$ l4d2ctl {}", args.join(" "));
    if let Some(code) = guard.take() {
        cmd.env(STEAM_GUARD_CODE_VAR, code);
        ctx.say(format!(
            "{shown} (with the Steam Guard code entered on the Jobs page)"
        ))
        .await?;
    } else {
        ctx.say(shown).await?;
    }
    let run = ctx.run_command(cmd, "l4d2ctl").await?;
    remember_login(ctx, &run).await?;
    run.into_result("l4d2ctl")
}

/// Keeps what an `l4d2ctl` run that logs in to Steam (install, update
/// check) said about the login, for the Jobs page; a failure for another
/// reason leaves the login's state as it was.
pub(crate) async fn remember_login(
    ctx: &JobCtx,
    run: &crate::jobs::CommandRun,
) -> Result<(), JobFailure> {
    let reason = run
        .last_stderr
        .strip_prefix("l4d2ctl: error: ")
        .unwrap_or(&run.last_stderr)
        .to_owned();
    let login = match run.status.code().and_then(|c| u8::try_from(c).ok()) {
        Some(EXIT_STEAM_GUARD_CODE_NEEDED) => SteamLogin::CodeNeeded { message: reason },
        Some(EXIT_STEAM_LOGIN_REFUSED) => SteamLogin::Refused { message: reason },
        Some(0) => SteamLogin::Fine,
        _ => return Ok(()),
    };
    let value = serde_json::to_string(&login).map_err(JobFailure::from_error)?;
    db::set_fact(ctx.pool(), FACT, &value).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_steam_guard_code_is_kept_and_only_once() {
        let guard = SteamGuard::default();
        for bad in ["", "1234", "123456", "12; r", "ab cd", "ÄÖÜßx"] {
            assert!(guard.offer(bad).is_err(), "{bad:?}");
        }
        assert_eq!(guard.take(), None);
        guard.offer(" f7k2q ").expect("a code");
        assert_eq!(guard.take().as_deref(), Some("f7k2q"));
        assert_eq!(guard.take(), None, "used once");
    }
}

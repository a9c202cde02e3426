//! `left4me` admin wrapper (installed as `/usr/local/sbin/left4me`): run by
//! root, loads `/etc/left4me/host.env` + `web.env`, drops to the `left4me`
//! user and execs `/opt/left4me/bin/left4me <admin subcommand> ...`, so admin
//! commands touch the database and data root with the service's identity.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::{read_root_owned_env, ConfigError, DEFAULT_ROOT, HOST_ENV, WEB_ENV};
use crate::grammar::{utf8, GrammarError};

pub const USAGE: &str =
    "left4me [--dry-run] create-user|reset-two-factor|seed-script-overlays|workshop-refresh|update-check|migrate|backup|restore [ARGS...]";

/// The web binary this wrapper runs.
pub const WEB_BINARY: &str = "/opt/left4me/bin/left4me";
/// The service user.
pub const SERVICE_USER: &str = "left4me";
/// Admin subcommands of the web binary the wrapper passes on (not `serve` or
/// `demo`: those are run by the unit / by developers, not by an admin as root).
pub const SUBCOMMANDS: &[&str] = &[
    "create-user",
    "reset-two-factor",
    "seed-script-overlays",
    "workshop-refresh",
    "update-check",
    "migrate",
    "backup",
    "restore",
];
/// The one caller variable passed through: lets scripted installs create the
/// first admin without a terminal (`left4me create-user` reads it).
pub const PASSTHROUGH: &[&str] = &["LEFT4ME_ADMIN_PASSWORD"];

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Grammar(#[from] GrammarError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("unknown subcommand {0:?}: expected one of create-user, reset-two-factor, seed-script-overlays, workshop-refresh, update-check, migrate, backup, restore")]
    UnknownSubcommand(String),
    #[error("must be run as root (e.g. with sudo)")]
    NotRoot,
    #[error("user {SERVICE_USER:?} does not exist (run the deploy install script)")]
    NoSuchUser,
    #[error("cannot look up user {SERVICE_USER:?}: {0}")]
    UserLookup(nix::Error),
    #[error("cannot exec {WEB_BINARY}: {0}")]
    Exec(std::io::Error),
}

/// What the wrapper will run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub args: Vec<OsString>,
    /// Environment for the child (only these variables).
    pub env: Vec<(String, String)>,
    pub uid: u32,
    pub gid: u32,
    pub workdir: PathBuf,
}

/// Parses and validates the subcommand; loads the env files.
pub fn plan(
    args: &[OsString],
    caller_env: impl Fn(&str) -> Option<String>,
) -> Result<Plan, AdminError> {
    let Some(sub) = args.first() else {
        return Err(GrammarError::Usage(USAGE).into());
    };
    let sub = utf8(sub, "subcommand")?;
    if !SUBCOMMANDS.contains(&sub) {
        return Err(AdminError::UnknownSubcommand(sub.to_string()));
    }
    let user = nix::unistd::User::from_name(SERVICE_USER)
        .map_err(AdminError::UserLookup)?
        .ok_or(AdminError::NoSuchUser)?;
    let mut file_env = Vec::new();
    for path in [HOST_ENV, WEB_ENV] {
        if let Some(vars) = read_root_owned_env(Path::new(path))? {
            file_env.extend(vars);
        }
    }
    let workdir = file_env
        .iter()
        .rev()
        .find(|(k, _)| k == "LEFT4ME_ROOT")
        .map(|(_, v)| PathBuf::from(v))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
    let mut env = vec![
        ("PATH".to_string(), crate::SAFE_PATH.to_string()),
        ("LANG".to_string(), "C.UTF-8".to_string()),
        ("HOME".to_string(), workdir.display().to_string()),
        ("USER".to_string(), SERVICE_USER.to_string()),
        ("LOGNAME".to_string(), SERVICE_USER.to_string()),
    ];
    env.extend(file_env);
    for key in PASSTHROUGH {
        if let Some(value) = caller_env(key) {
            env.push((key.to_string(), value));
        }
    }
    Ok(Plan {
        args: args.to_vec(),
        env,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        workdir,
    })
}

impl Plan {
    /// Dry-run output: the argv as JSON, then the identity and the names (not
    /// the values: they include secrets) of the environment.
    pub fn dry_run_lines(&self) -> Vec<String> {
        let mut argv = vec![WEB_BINARY.to_string()];
        argv.extend(self.args.iter().map(|a| a.to_string_lossy().into_owned()));
        let keys: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        vec![
            serde_json::Value::from(argv).to_string(),
            serde_json::json!({"uid": self.uid, "gid": self.gid, "workdir": self.workdir, "env": keys})
                .to_string(),
        ]
    }

    /// Drops to the service user (std clears supplementary groups when root
    /// sets a uid) and execs the web binary. Returns only on failure.
    pub fn exec(&self) -> AdminError {
        if !nix::unistd::geteuid().is_root() {
            return AdminError::NotRoot;
        }
        let mut cmd = Command::new(WEB_BINARY);
        cmd.args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .uid(self.uid)
            .gid(self.gid);
        if self.workdir.is_dir() {
            cmd.current_dir(&self.workdir);
        } else {
            cmd.current_dir("/");
        }
        AdminError::Exec(cmd.exec())
    }
}

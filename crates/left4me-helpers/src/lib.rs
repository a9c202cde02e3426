//! Privileged helpers for left4me: the only code that runs as root.
//!
//! Each helper is a thin binary over one module here:
//! `left4me-overlay` ([`overlay`]), `left4me-systemctl` ([`systemctl`]),
//! `left4me-journalctl` ([`journalctl`]), `left4me-script-sandbox`
//! ([`sandbox`]) and the admin wrapper `left4me-admin` ([`admin`], installed
//! as `/usr/local/sbin/left4me`).
//!
//! Rules every helper follows: a fixed argument grammar (parsed by hand, see
//! [`grammar`], because the grammar *is* the security boundary and must not
//! accept the many spellings a general CLI parser allows), validated names,
//! fixed absolute tool paths, no trust in the caller's environment (children
//! get a cleared environment; the data root comes from the root-owned
//! [`config::HOST_ENV`]), and `--dry-run` as the first argument to print the
//! exact argv of every command instead of running it.

pub mod admin;
pub mod config;
pub mod grammar;
pub mod hop;
pub mod journalctl;
pub mod overlay;
pub mod sandbox;
pub mod systemctl;
pub mod units;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Fixed absolute paths of every tool a helper runs.
pub mod tools {
    pub const SYSTEMCTL: &str = "/usr/bin/systemctl";
    pub const JOURNALCTL: &str = "/usr/bin/journalctl";
    pub const SYSTEMD_RUN: &str = "/usr/bin/systemd-run";
    pub const MOUNT: &str = "/usr/bin/mount";
    pub const UMOUNT: &str = "/usr/bin/umount";
    pub const BASH: &str = "/usr/bin/bash";
}

/// The only `PATH` a helper's children see.
pub const SAFE_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// One command a helper runs: program and arguments, nothing inherited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argv {
    pub program: String,
    pub args: Vec<String>,
}

impl Argv {
    pub fn new(program: &str, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Argv {
            program: program.to_string(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// The argv as one JSON array line: exact and unambiguous, for `--dry-run`.
    pub fn to_json_line(&self) -> String {
        let mut all = vec![self.program.clone()];
        all.extend(self.args.iter().cloned());
        serde_json::Value::from(all).to_string()
    }

    /// A `Command` with a cleared environment (only a fixed `PATH` and `LANG`),
    /// so nothing from the caller leaks into a privileged child.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", SAFE_PATH)
            .env("LANG", "C.UTF-8");
        cmd
    }

    /// Replaces the current process with this command (exit status and
    /// signals then belong to the tool itself). Returns only on failure.
    pub fn exec(&self) -> std::io::Error {
        self.command().exec()
    }
}

/// Splits an optional leading `--dry-run` off the arguments (program name
/// already removed). `--dry-run` is accepted only in first position.
pub fn split_dry_run(args: Vec<OsString>) -> (bool, Vec<OsString>) {
    match args.first() {
        Some(first) if first == "--dry-run" => (true, args[1..].to_vec()),
        _ => (false, args),
    }
}

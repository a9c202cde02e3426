//! `l4d2ctl`: the host contract of left4me (docs/host-contract.md) as a CLI, a thin layer
//! over `l4d2host`. Exit 0 on success; otherwise non-zero with a one-line
//! reason on stderr.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use l4d2host::{Host, HostError, InstanceName};

mod progress;

#[derive(Parser)]
#[command(
    name = "l4d2ctl",
    version,
    about = "Manage Left 4 Dead 2 server instances on this host"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install or update the game with steamcmd (LEFT4ME_STEAMCMD).
    ///
    /// Logs in anonymously unless a Steam account is configured: the file
    /// in LEFT4ME_STEAM_ACCOUNT_FILE (account name on the first line,
    /// password on the second). A Steam Guard code goes in
    /// LEFT4ME_STEAM_GUARD_CODE.
    /// Exits 3 when Steam asks for a Steam Guard code, 4 when it refused
    /// the login.
    Install,
    /// List the installed game builds: size and the instances on each
    /// (read-only).
    Builds {
        #[arg(long)]
        json: bool,
    },
    /// Ask Steam for the newest game build and compare it with the newest
    /// installed one (read-only; steamcmd's output goes to stderr with
    /// --json). Logs in like install.
    CheckUpdate {
        #[arg(long)]
        json: bool,
    },
    /// Write (or replace) an instance definition from a YAML spec.
    Initialize {
        #[arg(allow_hyphen_values = true)]
        name: String,
        /// The spec file (keys: port, build, overlays, args, config, bans, admins).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Stage server.cfg, then start the instance (and enable it at boot).
    Start {
        #[arg(allow_hyphen_values = true)]
        name: String,
    },
    /// Stop the instance (and disable it at boot); unmounts its overlay.
    Stop {
        #[arg(allow_hyphen_values = true)]
        name: String,
    },
    /// Stop and remove the instance. A missing instance is not an error.
    Delete {
        #[arg(allow_hyphen_values = true)]
        name: String,
    },
    /// Show the state of one instance.
    Status {
        #[arg(allow_hyphen_values = true)]
        name: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show the state of every instance (read-only; one call for many servers).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Print the last console lines, optionally following new ones.
    Logs {
        #[arg(allow_hyphen_values = true)]
        name: String,
        #[arg(long, default_value_t = 100)]
        lines: usize,
        /// Keep printing new lines until interrupted.
        #[arg(long, overrides_with = "no_follow")]
        follow: bool,
        /// Print and exit (the default).
        #[arg(long = "no-follow")]
        no_follow: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("L4D2CTL_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .without_time()
        .init();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whole cause chain: the web app shows stderr to users.
            let message = format!("{e:#}").replace('\n', " ");
            eprintln!("l4d2ctl: error: {message}");
            exit_code(&e)
        }
    }
}

/// 1, or the contract's own codes for a Steam login that needs a person.
fn exit_code(e: &anyhow::Error) -> ExitCode {
    use l4d2_contract::install::{EXIT_STEAM_GUARD_CODE_NEEDED, EXIT_STEAM_LOGIN_REFUSED};
    use l4d2host::InstallError;
    match e.downcast_ref::<HostError>() {
        Some(HostError::Install(InstallError::GuardCodeNeeded { .. })) => {
            ExitCode::from(EXIT_STEAM_GUARD_CODE_NEEDED)
        }
        Some(HostError::Install(InstallError::LoginRefused { .. })) => {
            ExitCode::from(EXIT_STEAM_LOGIN_REFUSED)
        }
        _ => ExitCode::FAILURE,
    }
}

fn run(command: Cmd) -> anyhow::Result<()> {
    let host = Host::from_env()?;
    let name = |raw: &str| InstanceName::parse(raw).map_err(HostError::from);
    let mut stdout = std::io::stdout().lock();
    match command {
        Cmd::Install if stdout.is_terminal() => {
            drop(stdout);
            host.install(&mut progress::TerminalProgress::new())?;
        }
        Cmd::Install => {
            host.install(&mut stdout)?;
        }
        Cmd::Builds { json } => {
            let report = host.builds()?;
            if json {
                writeln!(stdout, "{}", serde_json::to_string(&report)?)?;
            } else {
                for b in &report.builds {
                    let newest = if report.newest == Some(b.id) {
                        " (newest)"
                    } else {
                        ""
                    };
                    writeln!(
                        stdout,
                        "{}{newest}\t{}\t{} MiB\t{}",
                        b.id,
                        b.dir,
                        b.size_bytes / (1024 * 1024),
                        b.instances.join(",")
                    )?;
                }
            }
        }
        Cmd::CheckUpdate { json } => {
            let check = if json {
                host.check_update(&mut std::io::stderr())?
            } else {
                host.check_update(&mut stdout)?
            };
            if json {
                writeln!(stdout, "{}", serde_json::to_string(&check)?)?;
            } else {
                let installed = check
                    .installed
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "none".into());
                let verdict = if check.update_available() {
                    "update available"
                } else {
                    "up to date"
                };
                writeln!(
                    stdout,
                    "installed build {installed}, Steam's build {}: {verdict}",
                    check.published
                )?;
            }
        }
        Cmd::Initialize { name: n, file } => host.initialize(&name(&n)?, &file)?,
        Cmd::Start { name: n } => host.start(&name(&n)?)?,
        Cmd::Stop { name: n } => host.stop(&name(&n)?)?,
        Cmd::Delete { name: n } => host.delete(&name(&n)?)?,
        Cmd::Status { name: n, json } => {
            let status = host.status(&name(&n)?)?;
            if json {
                writeln!(stdout, "{}", serde_json::to_string(&status)?)?;
            } else {
                let port = status
                    .port
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into());
                writeln!(
                    stdout,
                    "{}: {} ({}) port {port}{}",
                    status.name,
                    status.service.active_state,
                    status.service.sub_state,
                    if status.exists { "" } else { " [not defined]" }
                )?;
            }
        }
        Cmd::List { json } => {
            let all = host.list()?;
            if json {
                writeln!(stdout, "{}", serde_json::to_string(&all)?)?;
            } else {
                for s in all {
                    let port = s.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
                    writeln!(
                        stdout,
                        "{}\t{}\t{}\t{port}",
                        s.name, s.service.active_state, s.service.sub_state
                    )?;
                }
            }
        }
        Cmd::Logs {
            name: n,
            lines,
            follow,
            no_follow,
        } => {
            let follow = follow && !no_follow;
            match host.logs(&name(&n)?, lines, follow, &mut stdout) {
                // The reader went away (e.g. `| head`, a closed SSE stream).
                Err(HostError::Backend(l4d2host::BackendError::Output(e)))
                    if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.context("reading logs")?,
            }
        }
    }
    Ok(())
}

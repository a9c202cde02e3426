//! The `left4me` command line (clap derive). `main.rs` only calls [`main`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config;
use crate::jobs::Jobs;
use crate::tasks::{self, Task};
use crate::{accounts, backup, db};

#[derive(Parser)]
#[command(name = "left4me", version, about = "left4me web app and admin CLI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the web app (its settings come from the environment: see `left4me serve --help`).
    #[command(after_help = config::help_table())]
    Serve,
    /// One-command demo: local data dir, simulated install, generated admin.
    Demo {
        /// Address to serve on.
        #[arg(long, default_value = "127.0.0.1:8000")]
        bind: SocketAddr,
    },
    /// Create a user (password from LEFT4ME_ADMIN_PASSWORD or a prompt).
    CreateUser {
        name: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Turn off a user's two-factor login (a lost authenticator and no
    /// recovery codes left, with no other administrator to reset it).
    ResetTwoFactor { name: String },
    /// Apply database migrations and exit.
    Migrate,
    /// Seed example script overlays from a directory.
    SeedScriptOverlays { dir: PathBuf },
    /// Enqueue the coalesced workshop refresh job.
    WorkshopRefresh,
    /// Enqueue the coalesced check for a new game build on Steam (it
    /// installs the build when automatic installs are on).
    UpdateCheck,
    /// Back up the database, instances and overlays into a new directory
    /// (safe while the panel runs; the game and workshop downloads are left out).
    Backup {
        /// Directory to create (or an empty one); with --keep, the directory
        /// holding the rotated backups.
        dir: PathBuf,
        /// Write a new `left4me-<time>` backup inside DIR and remove the
        /// oldest complete ones beyond this many.
        #[arg(long, value_name = "N")]
        keep: Option<usize>,
    },
    /// Restore a backup into an empty data root (LEFT4ME_ROOT), checking
    /// every file against the backup's manifest first.
    Restore {
        /// A directory written by `left4me backup`.
        dir: PathBuf,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            config::env_var("LEFT4ME_LOG")
                .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
                .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("left4me: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("left4me: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            raise_open_file_limit();
            let config = config::from_process_env()?;
            let listener = tokio::net::TcpListener::bind(config.bind)
                .await
                .with_context(|| format!("cannot listen on {} (LEFT4ME_BIND)", config.bind))?;
            crate::serve(config, listener, shutdown_on_signal()?).await
        }
        Command::Demo { bind } => {
            raise_open_file_limit();
            crate::demo::run(bind, shutdown_on_signal()?).await
        }
        Command::CreateUser { name, admin } => create_user(&name, admin).await,
        Command::ResetTwoFactor { name } => {
            let (_, url) = config::database_location_from_env()?;
            let pool = db::connect(&url).await?;
            db::migrate(&pool).await?;
            let Some(user) = accounts::find_by_name(&pool, &name).await? else {
                bail!("no user {name:?}; nothing was changed");
            };
            crate::auth::totp::disable(&pool, user.id).await?;
            println!(
                "two-factor login of {} is off: the password alone logs them in",
                user.username
            );
            Ok(())
        }
        Command::Migrate => {
            let (_, url) = config::database_location_from_env()?;
            let pool = db::connect(&url).await?;
            db::migrate(&pool).await?;
            println!("database {url} is up to date");
            Ok(())
        }
        Command::SeedScriptOverlays { dir } => crate::overlays::seed::run_cli(&dir).await,
        Command::WorkshopRefresh => enqueue(&Task::WorkshopRefresh).await,
        Command::UpdateCheck => enqueue(&Task::UpdateCheck).await,
        Command::Backup { dir, keep } => {
            let (root, url) = config::database_location_from_env()?;
            let pool = db::connect(&url).await?;
            let (target, summary, removed) = match keep {
                Some(keep) => backup::backup_rotated(&pool, &root, &dir, keep).await?,
                None => (
                    dir.clone(),
                    backup::backup(&pool, &root, &dir).await?,
                    Vec::new(),
                ),
            };
            println!(
                "backed up {} files ({} bytes) into {}",
                summary.files,
                summary.bytes,
                target.display()
            );
            for skipped in summary.skipped {
                println!("left out: {skipped}");
            }
            for old in removed {
                println!("removed the old backup {}", old.display());
            }
            Ok(())
        }
        Command::Restore { dir } => {
            let (root, url) = config::database_location_from_env()?;
            let database = db::file_of(&url)?;
            let summary = backup::restore(&dir, &root, &database)?;
            println!(
                "restored {} files ({} bytes) into {}; a backup holds no game installation, \
                 steamcmd or workshop downloads: move them back or download them again \
                 (install job, workshop refresh) before servers can start",
                summary.files,
                summary.bytes,
                root.display()
            );
            Ok(())
        }
    }
}

/// `left4me workshop-refresh` and `left4me update-check` (also their
/// timers): queue only; the serving process's workers (they poll the
/// database) run the job.
async fn enqueue(task: &Task) -> anyhow::Result<()> {
    let (_, url) = config::database_location_from_env()?;
    let pool = db::connect(&url).await?;
    db::migrate(&pool).await?;
    let jobs = Jobs::new(pool, std::time::Duration::ZERO);
    let queued = tasks::submit(&jobs, task, None).await?;
    let what = task.title();
    if queued.new {
        println!(
            "queued job #{} ({what}); the left4me web service runs it",
            queued.id
        );
    } else {
        println!(
            "job #{} ({what}) is already queued; nothing added",
            queued.id
        );
    }
    Ok(())
}

async fn create_user(name: &str, admin: bool) -> anyhow::Result<()> {
    accounts::validate_username(name)?;
    let password = match config::env_var("LEFT4ME_ADMIN_PASSWORD") {
        Some(p) => p,
        None => {
            let p = rpassword::prompt_password(format!("Password for {name}: ")).context(
                "cannot read the password (set LEFT4ME_ADMIN_PASSWORD when there is no terminal)",
            )?;
            let again = rpassword::prompt_password("Repeat password: ")
                .context("cannot read the password")?;
            if p != again {
                bail!("the passwords do not match; no user was created");
            }
            p
        }
    };
    accounts::validate_password(&password)?;
    let (_, url) = config::database_location_from_env()?;
    let pool = db::connect(&url).await?;
    db::migrate(&pool).await?;
    let user = accounts::create_user(&pool, name, &password, admin).await?;
    println!(
        "created {} {}",
        if user.is_admin {
            "administrator"
        } else {
            "user"
        },
        user.username
    );
    Ok(())
}

/// Every SSE viewer holds a socket: lift the soft open-file limit to the
/// hard limit (like Go's runtime does), so thousands of viewers fit.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        let wanted = Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        if setrlimit(Resource::Nofile, wanted).is_err() {
            tracing::warn!(
                "cannot raise the open-file limit; live viewers are limited to {:?}",
                lim.current
            );
        }
    }
}

/// A token cancelled on SIGTERM or SIGINT.
fn shutdown_on_signal() -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{signal, SignalKind};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let t = token.clone();
    tokio::spawn(async move {
        // Cancel before logging: logging can fail (a closed stderr),
        // stopping must not.
        tokio::select! {
            _ = term.recv() => { t.cancel(); tracing::info!("SIGTERM: shutting down") }
            _ = int.recv() => { t.cancel(); tracing::info!("SIGINT: shutting down") }
        }
    });
    Ok(token)
}

//! The `left4me` command line (clap derive). `main.rs` only calls [`main`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{self, EnvSource};
use crate::{accounts, db};

#[derive(Parser)]
#[command(name = "left4me", version, about = "left4me web app and admin CLI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the web app (settings come from the environment; crates/l4d2web/README.md lists them).
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
    /// Apply database migrations and exit.
    Migrate,
    /// Seed example script overlays from a directory.
    SeedScriptOverlays { dir: PathBuf },
    /// Enqueue the coalesced workshop refresh job.
    WorkshopRefresh,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LEFT4ME_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
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
        Command::Migrate => {
            let (_, url) = config::database_location(&EnvSource(|k| std::env::var(k).ok()))?;
            let pool = db::connect(&url).await?;
            db::migrate(&pool).await?;
            println!("database {url} is up to date");
            Ok(())
        }
        Command::SeedScriptOverlays { dir } => crate::overlays::seed::run_cli(&dir).await,
        Command::WorkshopRefresh => crate::overlays::workshop::refresh_cli().await,
    }
}

async fn create_user(name: &str, admin: bool) -> anyhow::Result<()> {
    accounts::validate_username(name)?;
    let password = match std::env::var("LEFT4ME_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => {
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
    let (_, url) = config::database_location(&EnvSource(|k| std::env::var(k).ok()))?;
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
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                tracing::warn!(
                    "cannot raise the open-file limit; live viewers are limited to {}",
                    lim.rlim_cur
                );
            }
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

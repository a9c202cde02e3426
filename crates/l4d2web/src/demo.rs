//! `left4me demo` (docs/product.md, The simulator and the demo): no root, no configuration.

use std::net::SocketAddr;
use std::os::unix::fs::{symlink, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;

use crate::config::{self, EnvSource};
use crate::jobs::Jobs;
use crate::tasks::{self, Task};
use crate::{accounts, db};

pub async fn run(bind: SocketAddr, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Binaries first: a missing build changes nothing on disk.
    let exe_dir = std::env::current_exe()
        .context("cannot locate the left4me executable")?
        .parent()
        .map(Path::to_path_buf)
        .context("the left4me executable has no directory")?;
    let steamcmd_sim = exe_dir.join("steamcmd-sim");
    if !steamcmd_sim.is_file() {
        bail!(
            "steamcmd-sim not found at {}: build the workspace first (cargo build --workspace)",
            steamcmd_sim.display()
        );
    }
    let l4d2ctl = match config::env_var("LEFT4ME_L4D2CTL") {
        Some(p) => PathBuf::from(p),
        None => exe_dir.join("l4d2ctl"),
    };
    if !l4d2ctl.is_file() {
        bail!(
            "l4d2ctl not found at {}: build the workspace first (cargo build --workspace)",
            l4d2ctl.display()
        );
    }
    let root = match config::env_var("LEFT4ME_ROOT") {
        Some(r) => PathBuf::from(r),
        None => PathBuf::from("left4me-data"),
    };
    // The demo's data (database, every server's RCON password, log
    // secrets) is nobody else's business: everything it and its children
    // create is private to the user, and an older, wider data directory is
    // tightened.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    std::fs::create_dir_all(&root)
        .with_context(|| format!("cannot create the demo data directory {}", root.display()))?;
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("cannot make {} private", root.display()))?;
    let root = root
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", root.display()))?;

    let steamcmd = link_steamcmd(&root, &steamcmd_sim)?;
    let secret = demo_secret(&root)?;

    let root_text = root.display().to_string();
    let bind_text = bind.to_string();
    // The live panel's log listener on a free port of the loopback alias
    // 127.0.0.2: the engine (and srcds-sim with it) keeps log packets for
    // exactly 127.0.0.1 in-process, any other address gets them.
    let log_listener = match config::env_var("LOG_LISTENER_BIND") {
        Some(v) => v,
        None => {
            let probe = std::net::UdpSocket::bind("127.0.0.2:0")
                .context("cannot find a free UDP port for the log listener")?;
            probe
                .local_addr()
                .context("cannot find a free UDP port for the log listener")?
                .to_string()
        }
    };
    let mut config = config::load(&EnvSource(|k| match k {
        "LEFT4ME_ROOT" => Some(root_text.clone()),
        "SECRET_KEY" => Some(secret.clone()),
        "LEFT4ME_BIND" => Some(bind_text.clone()),
        "LEFT4ME_L4D2CTL" => Some(l4d2ctl.display().to_string()),
        "LEFT4ME_BACKEND" => Some("local".into()),
        "LOG_LISTENER_BIND" | "LOG_LISTENER_ADDR" => Some(log_listener.clone()),
        other => config::env_var(other),
    }))?;
    config.child_env = vec![
        ("LEFT4ME_ROOT".into(), root_text.clone()),
        ("LEFT4ME_BACKEND".into(), "local".into()),
        ("LEFT4ME_STEAMCMD".into(), steamcmd.display().to_string()),
    ];

    let pool = db::connect(&config.database_url).await?;
    db::migrate(&pool).await?;
    let first_run = accounts::count(&pool).await? == 0;
    let mut banner = format!("left4me demo\n  data directory: {root_text}\n");
    if first_run {
        let password = accounts::generate_password()?;
        let admin = accounts::create_user(&pool, "admin", &password, true).await?;
        example_blueprint(&pool, admin.id).await?;
        banner.push_str(&format!(
            "  administrator: admin / {password}   (shown only this once)\n"
        ));
        banner.push_str(
            "  example blueprint \"example\": create a server from it under Servers, then start it\n",
        );
    } else {
        banner.push_str("  existing data directory reused; log in with your admin account\n");
    }
    let jobs = Jobs::new(pool.clone(), std::time::Duration::ZERO);
    if !jobs.ever_succeeded(Task::Install.kind()).await? {
        // Queued now; the server's workers run it and it shows up under
        // Jobs with its live log.
        tasks::submit(&jobs, &Task::Install, None).await?;
        banner.push_str("  installing the simulated game: see the install job under Jobs\n");
    }
    pool.close().await;

    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind} (choose another with --bind)"))?;
    banner.push_str(&format!("  open http://{}/\n", listener.local_addr()?));
    // A closed stdout (e.g. piped into `head`) must not stop the server.
    let mut out = std::io::stdout().lock();
    let _ = std::io::Write::write_all(&mut out, banner.as_bytes());
    let _ = std::io::Write::flush(&mut out);
    drop(out);
    crate::serve(config, listener, shutdown).await
}

/// The demo admin's example blueprint: ready to start once the install job
/// is done (no overlays needed: the plain simulated installation).
async fn example_blueprint(pool: &sqlx::SqlitePool, owner: i64) -> anyhow::Result<()> {
    use crate::servers::blueprints;
    let input = blueprints::BlueprintInput::validate(
        "example",
        "+map c1m1_hotel -tickrate 30 -sim_players 3",
        "hostname \"left4me demo server\"\nsv_region 255\nsv_allow_lobby_connect_only 0\nmp_gamemode coop\n",
    )
    .map_err(|e| anyhow::anyhow!("example blueprint: {e}"))?;
    blueprints::create(pool, owner, &input)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the example blueprint: {e}"))?;
    Ok(())
}

/// `<root>/steam/steamcmd.sh` → the steamcmd-sim binary (replaced if it
/// points elsewhere, e.g. after moving the build directory).
fn link_steamcmd(root: &Path, sim: &Path) -> anyhow::Result<PathBuf> {
    let steam = root.join("steam");
    std::fs::create_dir_all(&steam)
        .with_context(|| format!("cannot create {}", steam.display()))?;
    let link = steam.join("steamcmd.sh");
    match std::fs::read_link(&link) {
        Ok(target) if target == sim => return Ok(link),
        Ok(_) => std::fs::remove_file(&link)
            .with_context(|| format!("cannot replace {}", link.display()))?,
        Err(_) if link.exists() => {
            bail!("{} exists and is not a symlink; remove it", link.display())
        }
        Err(_) => {}
    }
    symlink(sim, &link)
        .with_context(|| format!("cannot link {} to {}", link.display(), sim.display()))?;
    Ok(link)
}

/// The demo's SECRET_KEY, generated once and kept in the data directory
/// (mode 0600) so sessions survive restarts.
fn demo_secret(root: &Path) -> anyhow::Result<String> {
    let path = root.join("secret_key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let key = text.trim().to_string();
        if key.len() >= 32 {
            return Ok(key);
        }
    }
    let key = accounts::random_hex(32)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, key.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key)
}

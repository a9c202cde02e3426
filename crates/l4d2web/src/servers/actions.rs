//! What a server job does on the host, through `l4d2ctl`. Start, restart
//! and reset re-initialise the instance from a spec generated from the
//! blueprint as it is *now*: that is how blueprint edits and blueprint
//! switches reach a server on its next action.

use std::path::Path;

use sqlx::SqlitePool;

use super::blueprints;
use super::model::{subject, Action, DesiredState, ServerRow};
use super::players;
use super::spec;
use crate::config::Config;
use crate::jobs::{JobCtx, JobFailure, Jobs};
use crate::l4d2ctl::HostClient;
use crate::overlays;

/// What a server job needs besides its context.
pub struct ActionEnv<'a> {
    pub config: &'a Config,
    pub host: &'a HostClient,
}

/// The server as a job needs it, secrets included.
#[derive(sqlx::FromRow)]
struct JobServer {
    name: String,
    blueprint_id: i64,
    port: i64,
    rcon_password: String,
    log_secret: String,
    desired_state: DesiredState,
    pinned_build: Option<i64>,
}

/// Runs `action` on server `server_id`.
pub async fn run_action(
    ctx: &mut JobCtx,
    env: &ActionEnv<'_>,
    server_id: i64,
    action: Action,
) -> Result<(), JobFailure> {
    let server: Option<JobServer> = sqlx::query_as(
        "SELECT name, blueprint_id, port, rcon_password, log_secret, desired_state, pinned_build FROM servers WHERE id = ?",
    )
    .bind(server_id)
    .fetch_optional(ctx.pool())
    .await?;
    let Some(server) = server else {
        return Err(JobFailure::msg(format!(
            "server {server_id} no longer exists (deleted before this job ran)"
        )));
    };
    let name = server.name.clone();
    let host = env.host;
    match action {
        Action::Stop => l4d2ctl(ctx, host, "stop", &name).await,
        Action::Delete => {
            l4d2ctl(ctx, host, "delete", &name).await?;
            remove_row(ctx.pool(), server_id).await?;
            ctx.say(format!("server {name} removed from the panel"))
                .await?;
            Ok(())
        }
        Action::Start => {
            let spec = prepare_spec(ctx, env, server_id, &server).await?;
            initialize(ctx, env, &name, &spec).await?;
            l4d2ctl(ctx, host, "start", &name).await
        }
        Action::Restart => {
            let spec = prepare_spec(ctx, env, server_id, &server).await?;
            l4d2ctl(ctx, host, "stop", &name).await?;
            initialize(ctx, env, &name, &spec).await?;
            l4d2ctl(ctx, host, "start", &name).await
        }
        Action::Reset => {
            let spec = prepare_spec(ctx, env, server_id, &server).await?;
            l4d2ctl(ctx, host, "delete", &name).await?;
            initialize(ctx, env, &name, &spec).await?;
            if server.desired_state == DesiredState::Running {
                l4d2ctl(ctx, host, "start", &name).await
            } else {
                ctx.say("desired state is stopped: not starting").await?;
                Ok(())
            }
        }
    }
}

/// Deletes the row; its jobs stay in their owners' lists but no longer
/// belong to it (a new server may get the same id).
async fn remove_row(pool: &SqlitePool, id: i64) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM servers WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Jobs::detach_subject(&mut tx, &subject(id)).await?;
    tx.commit().await
}

/// Refuses to start a server while no game build is installed. An install
/// running meanwhile is no reason: it assembles its build under another
/// name and never writes one a server uses.
fn check_game_installed(env: &ActionEnv<'_>, name: &str) -> Result<(), JobFailure> {
    if !game_installed(&env.config.root) {
        return Err(JobFailure::msg(format!(
            "not starting {name}: the game is not installed (no build in installation/); an administrator runs \"Install / update game\" on the Jobs page first"
        )));
    }
    Ok(())
}

/// Whether a game build is installed: `installation/<build>/srcds_run`, or
/// the single installation directory of older versions.
pub fn game_installed(root: &Path) -> bool {
    let installation = root.join("installation");
    if installation.join("srcds_run").is_file() {
        return true;
    }
    std::fs::read_dir(&installation).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| l4d2_contract::builds::BuildId::parse(n).is_ok())
                && e.path().join("srcds_run").is_file()
        })
    })
}

/// Why starting `server` would be refused right now (an overlay of its
/// blueprint is not ready), asked when the
/// start is requested so the refusal shows where the operator clicked.
/// The job checks again when it runs.
pub async fn start_refusal(
    pool: &SqlitePool,
    root: &Path,
    server: &ServerRow,
) -> Result<Option<String>, sqlx::Error> {
    for layer in blueprints::stack(pool, server.blueprint_id).await? {
        match overlays::check_ready(pool, root, layer.overlay_id).await {
            Ok(()) => {}
            Err(overlays::NotReady::Db { source, .. }) => return Err(source),
            Err(e) => return Ok(Some(e.to_string())),
        }
    }
    Ok(None)
}

/// Checks every overlay of the blueprint and builds the spec YAML from the
/// blueprint as it is now. Fails (changing nothing) when an overlay is not
/// ready.
async fn prepare_spec(
    ctx: &mut JobCtx,
    env: &ActionEnv<'_>,
    server_id: i64,
    server: &JobServer,
) -> Result<String, JobFailure> {
    let bp: Option<(String, String, String)> =
        sqlx::query_as("SELECT name, args, config FROM blueprints WHERE id = ?")
            .bind(server.blueprint_id)
            .fetch_optional(ctx.pool())
            .await?;
    let Some((bp_name, args, config)) = bp else {
        return Err(JobFailure::msg(format!(
            "the blueprint of server {} no longer exists",
            server.name
        )));
    };
    check_game_installed(env, &server.name)?;
    let root = &env.config.root;
    let stack = blueprints::stack(ctx.pool(), server.blueprint_id).await?;
    for layer in &stack {
        overlays::check_ready(ctx.pool(), root, layer.overlay_id)
            .await
            .map_err(|e| JobFailure::msg(format!("not starting {}: {e}", server.name)))?;
    }
    let args = blueprints::split_args(&args)
        .map_err(|e| JobFailure::msg(format!("blueprint {bp_name:?}: {e}")))?;
    let port = u16::try_from(server.port).map_err(|_| {
        JobFailure::msg(format!(
            "server {} has an invalid port {}",
            server.name, server.port
        ))
    })?;
    // Ban minutes count from now: what is left of each ban.
    let now = chrono::Utc::now().timestamp();
    let (bans, admins) = players::spec_entries(ctx.pool(), server_id, now).await?;
    let cfg = spec::server_cfg(
        &config,
        &spec::Managed {
            rcon_password: &server.rcon_password,
            log_secret: &server.log_secret,
            log_listener: env.config.log_listener_addr,
        },
    );
    let build = match server.pinned_build {
        Some(b) => Some(
            u64::try_from(b)
                .ok()
                .and_then(|b| l4d2_contract::builds::BuildId::parse(&b.to_string()).ok())
                .ok_or_else(|| {
                    JobFailure::msg(format!(
                        "server {} is kept on an invalid build {b}",
                        server.name
                    ))
                })?,
        ),
        None => None,
    };
    let spec = spec::InstanceSpec {
        port,
        build,
        overlays: stack
            .iter()
            .map(|l| format!("overlays/{}", l.overlay_id))
            .collect(),
        args,
        config: cfg,
        bans,
        admins,
    };
    let overlays_text = if stack.is_empty() {
        "no overlays".to_string()
    } else {
        stack
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            .join(" > ")
    };
    // The spec holds the rcon password: describe it, never print it.
    let build_text = match build {
        Some(b) => format!("game build {b} (kept on it)"),
        None => "the newest game build".into(),
    };
    ctx.say(format!(
        "blueprint {bp_name:?}: {build_text}, port {port}, overlays (uppermost first): {overlays_text}, args: {}",
        spec.args.join(" ")
    ))
    .await?;
    spec::to_yaml(&spec).map_err(JobFailure::from_error)
}

/// `l4d2ctl <verb> <name>`.
async fn l4d2ctl(
    ctx: &mut JobCtx,
    host: &HostClient,
    verb: &str,
    name: &str,
) -> Result<(), JobFailure> {
    ctx.l4d2ctl(host, &[verb, name]).await
}

/// `l4d2ctl initialize <name> -f <spec file>`; the file is removed after.
async fn initialize(
    ctx: &mut JobCtx,
    env: &ActionEnv<'_>,
    name: &str,
    spec_yaml: &str,
) -> Result<(), JobFailure> {
    let root = &env.config.root;
    let path = spec::write_spec_file(root, name, spec_yaml).map_err(JobFailure::from_error)?;
    // Relative to the data root, l4d2ctl's working directory: job logs
    // do not need to show where the data root lives.
    let shown = path
        .strip_prefix(root)
        .unwrap_or(&path)
        .display()
        .to_string();
    let result = ctx
        .l4d2ctl(env.host, &["initialize", name, "-f", &shown])
        .await;
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(file = %path.display(), error = %e, "cannot remove a spec file");
    }
    result
}

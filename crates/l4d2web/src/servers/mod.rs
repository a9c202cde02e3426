//! Blueprints and servers (docs/product.md): the recipe, the instances made from
//! it, and the jobs that drive them through `l4d2ctl`.
//!
//! Every server action is a job with lock key `server:<name>`, so actions on
//! one server run one at a time in the order they were requested. Start,
//! restart and reset re-initialise the instance from a spec generated from
//! the blueprint as it is *now*: that is how blueprint edits and blueprint
//! switches reach a server on its next action.

pub mod blueprints;
pub mod console;
pub mod ports;
pub mod spec;
pub mod status;

use std::collections::HashSet;

use sqlx::SqlitePool;

use crate::accounts::User;
use crate::config::Config;
use crate::jobs::{JobCtx, JobFailure, Jobs, NewJob};
use crate::web::AppError;

/// A server as pages see it (no secrets).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServerRow {
    pub id: i64,
    pub name: String,
    pub owner_id: i64,
    pub blueprint_id: i64,
    pub blueprint_name: String,
    pub port: i64,
    pub desired_state: String,
    /// A delete was requested and has not finished.
    pub deleting: bool,
    pub created_at: String,
}

const SERVER_COLUMNS: &str = "s.id, s.name, s.owner_id, s.blueprint_id, b.name AS blueprint_name, s.port, s.desired_state, s.deleting, s.created_at";

/// The server `id` if `user` owns it, else 404 (also for admins: servers
/// are private to their owner, docs/product.md, Security rules).
pub async fn find_owned_server(
    pool: &SqlitePool,
    user: &User,
    id: i64,
) -> Result<ServerRow, AppError> {
    sqlx::query_as(&format!(
        "SELECT {SERVER_COLUMNS} FROM servers s JOIN blueprints b ON b.id = s.blueprint_id
         WHERE s.id = ? AND s.owner_id = ?"
    ))
    .bind(id)
    .bind(user.id)
    .fetch_optional(pool)
    .await?
    .ok_or(AppError::NotFound)
}

pub async fn list_owned(pool: &SqlitePool, owner: i64) -> Result<Vec<ServerRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {SERVER_COLUMNS} FROM servers s JOIN blueprints b ON b.id = s.blueprint_id
         WHERE s.owner_id = ? ORDER BY s.name"
    ))
    .bind(owner)
    .fetch_all(pool)
    .await
}

/// Checks an instance name: the contract's rule, with a message for the
/// create form.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("enter a server name".into());
    }
    l4d2_contract::InstanceName::parse(name)
        .map(drop)
        .map_err(|_| {
            format!(
                "server name {name:?} is invalid: use 1–64 characters a-z, 0-9, '_' or '-', starting with a letter or digit"
            )
        })
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("{0}")]
    Invalid(String),
    #[error("a server named {0:?} already exists (names are unique on this host)")]
    NameTaken(String),
    #[error("no free port left in the range {0}–{1}: delete a server or widen LEFT4ME_PORT_RANGE_START/_END")]
    NoPort(u16, u16),
    #[error("blueprint not found")]
    NoBlueprint,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

fn random_hex(bytes: usize) -> Result<String, CreateError> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b)
        .map_err(|e| CreateError::Invalid(format!("no randomness available: {e}")))?;
    Ok(hex::encode(b))
}

/// A random `sv_logsecret`: srcds keeps it in an int cvar and only sends it
/// when non-zero, so it must be in 1..=i32::MAX or the game's packets would
/// carry a different number than the one stored here.
fn random_log_secret() -> Result<u32, CreateError> {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b)
        .map_err(|e| CreateError::Invalid(format!("no randomness available: {e}")))?;
    Ok((u32::from_le_bytes(b) & 0x7FFF_FFFF).max(1))
}

/// Creates a server row: validated unique name, the owner's blueprint, the
/// lowest free port, fresh secrets. Nothing touches the host until the
/// first start.
pub async fn create_server(
    pool: &SqlitePool,
    config: &Config,
    owner: i64,
    name: &str,
    blueprint_id: i64,
) -> Result<ServerRow, CreateError> {
    validate_name(name).map_err(CreateError::Invalid)?;
    blueprints::find_owned(pool, owner, blueprint_id)
        .await
        .map_err(|e| match e {
            blueprints::BlueprintError::Db(e) => CreateError::Db(e),
            _ => CreateError::NoBlueprint,
        })?;
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM servers WHERE name = ?")
        .bind(name)
        .fetch_optional(pool)
        .await?;
    if exists.is_some() {
        return Err(CreateError::NameTaken(name.into()));
    }
    // Retry: another request may take the same port (or log secret) between
    // our look-up and INSERT; the UNIQUE constraints decide.
    for _ in 0..20 {
        let taken: HashSet<u16> = sqlx::query_scalar::<_, i64>("SELECT port FROM servers")
            .fetch_all(pool)
            .await?
            .into_iter()
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        let range = config.port_range;
        let port = tokio::task::spawn_blocking(move || ports::lowest_free(range, &taken))
            .await
            .map_err(|e| CreateError::Invalid(format!("port probe failed: {e}")))?
            .ok_or(CreateError::NoPort(range.0, range.1))?;
        let rcon = random_hex(12)?;
        let secret = random_log_secret()?.to_string();
        let res: Result<i64, sqlx::Error> = sqlx::query_scalar(
            "INSERT INTO servers (name, owner_id, blueprint_id, port, rcon_password, log_secret)
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(owner)
        .bind(blueprint_id)
        .bind(port as i64)
        .bind(&rcon)
        .bind(&secret)
        .fetch_one(pool)
        .await;
        match res {
            Ok(id) => {
                return sqlx::query_as(&format!(
                    "SELECT {SERVER_COLUMNS} FROM servers s JOIN blueprints b ON b.id = s.blueprint_id WHERE s.id = ?"
                ))
                .bind(id)
                .fetch_one(pool)
                .await
                .map_err(CreateError::Db);
            }
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                if d.message().contains("servers.name") {
                    return Err(CreateError::NameTaken(name.into()));
                }
                continue;
            }
            Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {
                return Err(CreateError::NoBlueprint)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(CreateError::Invalid(
        "could not allocate a port: too many concurrent requests, try again".into(),
    ))
}

/// A server action a user can request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Restart,
    Reset,
    Delete,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "start" => Some(Action::Start),
            "stop" => Some(Action::Stop),
            "restart" => Some(Action::Restart),
            "reset" => Some(Action::Reset),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }
    pub fn from_kind(kind: &str) -> Option<Action> {
        Action::parse(kind.strip_prefix("server-")?)
    }
    pub fn verb(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Reset => "reset",
            Action::Delete => "delete",
        }
    }
    /// The desired state this action expresses (None: unchanged).
    pub fn desired(self) -> Option<&'static str> {
        match self {
            Action::Start | Action::Restart => Some("running"),
            Action::Stop => Some("stopped"),
            Action::Reset | Action::Delete => None,
        }
    }
}

/// Records the desired state and queues the action's job (after any job
/// already queued or running for this server), in one transaction: the
/// desired state always matches the last requested job, however requests
/// race. Returns the job id.
pub async fn request_action(
    jobs: &Jobs,
    server: &ServerRow,
    action: Action,
    user_id: i64,
) -> Result<i64, sqlx::Error> {
    let mut tx = jobs.pool.begin().await?;
    // The first statement writes, so concurrent requests serialise here.
    // The newest request wins: any action but delete cancels a pending one.
    sqlx::query(
        "UPDATE servers SET desired_state = COALESCE(?, desired_state), deleting = ? WHERE id = ?",
    )
    .bind(action.desired())
    .bind(action == Action::Delete)
    .bind(server.id)
    .execute(&mut *tx)
    .await?;
    let id = Jobs::submit_in(&mut tx, action_job(server, action, Some(user_id), None)).await?;
    tx.commit().await?;
    jobs.wake();
    Ok(id)
}

fn action_job(
    server: &ServerRow,
    action: Action,
    user_id: Option<i64>,
    why: Option<&str>,
) -> NewJob<'static> {
    let kind: &'static str = match action {
        Action::Start => "server-start",
        Action::Stop => "server-stop",
        Action::Restart => "server-restart",
        Action::Reset => "server-reset",
        Action::Delete => "server-delete",
    };
    let title = match why {
        Some(why) => format!("{} server {} ({why})", action.verb(), server.name),
        None => format!("{} server {}", action.verb(), server.name),
    };
    NewJob {
        kind,
        payload: serde_json::json!({ "server_id": server.id }),
        user_id,
        lock_key: Some(format!("server:{}", server.name)),
        title: Some(title),
    }
}

/// What a converge pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Converged {
    /// Jobs queued, by server name and action.
    pub queued: Vec<(String, Action)>,
}

/// Brings every server to its desired state after the panel was down (a
/// crash, a kill, a reboot): a server that should run but does not is
/// started, one that should be stopped but runs is stopped, an unfinished
/// delete is finished. Servers with a job already queued are left to it.
/// Runs once at startup, after interrupted jobs were recovered; the jobs it
/// queues belong to the servers' owners, so they see them in their lists.
pub async fn converge(jobs: &Jobs) -> Result<Converged, ConvergeError> {
    let rows: Vec<ServerRow> = sqlx::query_as(&format!(
        "SELECT {SERVER_COLUMNS} FROM servers s JOIN blueprints b ON b.id = s.blueprint_id ORDER BY s.name"
    ))
    .fetch_all(&jobs.pool)
    .await?;
    if rows.is_empty() {
        return Ok(Converged::default());
    }
    let busy: HashSet<String> = sqlx::query_scalar::<_, String>(
        "SELECT lock_key FROM jobs WHERE state IN ('queued', 'running') AND lock_key IS NOT NULL",
    )
    .fetch_all(&jobs.pool)
    .await?
    .into_iter()
    .collect();
    let actual = status::list_all(&jobs.host)
        .await
        .map_err(ConvergeError::Status)?;
    let mut done = Converged::default();
    for server in rows {
        if busy.contains(&format!("server:{}", server.name)) {
            continue;
        }
        let up = actual.get(&server.name).is_some_and(|s| s.is_up());
        let action = if server.deleting {
            Some(Action::Delete)
        } else {
            match server.desired_state.as_str() {
                "running" if !up => Some(Action::Start),
                "stopped" if up => Some(Action::Stop),
                _ => None,
            }
        };
        let Some(action) = action else { continue };
        let mut tx = jobs.pool.begin().await?;
        Jobs::submit_in(
            &mut tx,
            action_job(
                &server,
                action,
                Some(server.owner_id),
                Some("back to its desired state after the panel restarted"),
            ),
        )
        .await?;
        tx.commit().await?;
        done.queued.push((server.name.clone(), action));
    }
    if !done.queued.is_empty() {
        jobs.wake();
    }
    Ok(done)
}

#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    #[error("cannot read the servers' state: {0}")]
    Status(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

#[derive(serde::Deserialize)]
struct Payload {
    server_id: i64,
}

/// The server as a job needs it, secrets included.
#[derive(sqlx::FromRow)]
struct JobServer {
    name: String,
    blueprint_id: i64,
    port: i64,
    rcon_password: String,
    log_secret: String,
    desired_state: String,
}

/// Runs a `server-*` job.
pub async fn run_job(ctx: &mut JobCtx) -> Result<(), JobFailure> {
    let action = Action::from_kind(&ctx.job.kind).ok_or_else(|| {
        JobFailure::msg(format!(
            "unknown server job kind {:?} (known: server-start, -stop, -restart, -reset, -delete)",
            ctx.job.kind
        ))
    })?;
    let Payload { server_id } = ctx.payload()?;
    let server: Option<JobServer> = sqlx::query_as(
        "SELECT name, blueprint_id, port, rcon_password, log_secret, desired_state FROM servers WHERE id = ?",
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
    match action {
        Action::Stop => l4d2ctl(ctx, "stop", &name).await,
        Action::Delete => {
            l4d2ctl(ctx, "delete", &name).await?;
            sqlx::query("DELETE FROM servers WHERE id = ?")
                .bind(server_id)
                .execute(ctx.pool())
                .await?;
            ctx.say(format!("server {name} removed from the panel"))
                .await?;
            Ok(())
        }
        Action::Start => {
            let spec = prepare_spec(ctx, &server).await?;
            initialize(ctx, &name, &spec).await?;
            l4d2ctl(ctx, "start", &name).await
        }
        Action::Restart => {
            let spec = prepare_spec(ctx, &server).await?;
            l4d2ctl(ctx, "stop", &name).await?;
            initialize(ctx, &name, &spec).await?;
            l4d2ctl(ctx, "start", &name).await
        }
        Action::Reset => {
            let spec = prepare_spec(ctx, &server).await?;
            l4d2ctl(ctx, "delete", &name).await?;
            initialize(ctx, &name, &spec).await?;
            if server.desired_state == "running" {
                l4d2ctl(ctx, "start", &name).await
            } else {
                ctx.say("desired state is stopped: not starting").await?;
                Ok(())
            }
        }
    }
}

/// Refuses to start a server while the game is missing or being installed:
/// an overlay mounted over a half-written installation keeps showing the
/// files as missing (overlayfs caches lower-layer lookups), so the server
/// would stay broken after the install finished.
async fn check_game_installed(
    ctx: &mut JobCtx,
    root: &std::path::Path,
    name: &str,
) -> Result<(), JobFailure> {
    let installing: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM jobs WHERE kind = 'install' AND state = 'running' ORDER BY id LIMIT 1",
    )
    .fetch_optional(ctx.pool())
    .await?;
    if let Some(job) = installing {
        return Err(JobFailure::msg(format!(
            "not starting {name}: the game is being installed or updated (job {job}); start it again when that job has finished"
        )));
    }
    if !root.join("installation/srcds_run").is_file() {
        return Err(JobFailure::msg(format!(
            "not starting {name}: the game is not installed (installation/srcds_run is missing); an administrator runs \"Install / update game\" on the Jobs page first"
        )));
    }
    Ok(())
}

/// Checks every overlay of the blueprint and builds the spec YAML from the
/// blueprint as it is now. Fails (changing nothing) when an overlay is not
/// ready.
async fn prepare_spec(ctx: &mut JobCtx, server: &JobServer) -> Result<String, JobFailure> {
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
    let root = ctx.config().root.clone();
    check_game_installed(ctx, &root, &server.name).await?;
    let stack = blueprints::stack(ctx.pool(), server.blueprint_id).await?;
    for layer in &stack {
        crate::overlays::check_ready(ctx.pool(), &root, layer.overlay_id)
            .await
            .map_err(|m| JobFailure::msg(format!("not starting {}: {m}", server.name)))?;
    }
    let args = blueprints::split_args(&args)
        .map_err(|m| JobFailure::msg(format!("blueprint {bp_name:?}: {m}")))?;
    let port = u16::try_from(server.port).map_err(|_| {
        JobFailure::msg(format!(
            "server {} has an invalid port {}",
            server.name, server.port
        ))
    })?;
    let cfg = spec::server_cfg(
        &config,
        &spec::Managed {
            rcon_password: &server.rcon_password,
            log_secret: &server.log_secret,
            log_listener: ctx.config().log_listener_addr,
        },
    );
    let spec = spec::InstanceSpec {
        port,
        overlays: stack
            .iter()
            .map(|l| format!("overlays/{}", l.overlay_id))
            .collect(),
        args,
        config: cfg,
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
    ctx.say(format!(
        "blueprint {bp_name:?}: port {port}, overlays (uppermost first): {overlays_text}, args: {}",
        spec.args.join(" ")
    ))
    .await?;
    spec::to_yaml(&spec).map_err(JobFailure::msg)
}

/// `l4d2ctl <verb> <name>` (owned argv: nothing borrowed lives across the await).
async fn l4d2ctl(ctx: &mut JobCtx, verb: &str, name: &str) -> Result<(), JobFailure> {
    let argv = vec![verb.to_string(), name.to_string()];
    ctx.l4d2ctl(&argv).await
}

/// `l4d2ctl initialize <name> -f <spec file>`; the file is removed after.
async fn initialize(ctx: &mut JobCtx, name: &str, spec_yaml: &str) -> Result<(), JobFailure> {
    let root = ctx.config().root.clone();
    let path = spec::write_spec_file(&root, name, spec_yaml).map_err(JobFailure::msg)?;
    // Relative to the data root, l4d2ctl's working directory: job logs
    // do not need to show where the data root lives.
    let path_text = path
        .strip_prefix(&root)
        .unwrap_or(&path)
        .display()
        .to_string();
    let argv = vec![
        "initialize".to_string(),
        name.to_string(),
        "-f".to_string(),
        path_text,
    ];
    let result = ctx.l4d2ctl(&argv).await;
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(file = %path.display(), error = %e, "cannot remove a spec file");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "alpha", "0-x_y", &"a".repeat(64)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "A",
            "a b",
            "a/b",
            "ä",
            &"a".repeat(65),
            "a.b",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn actions() {
        assert_eq!(Action::from_kind("server-reset"), Some(Action::Reset));
        assert_eq!(Action::from_kind("server-x"), None);
        assert_eq!(Action::parse("reconcile"), None);
    }
}

//! Server rows: creating them (name, port, secrets), finding them for
//! their owner, the desired state, and the few other lookups the panel
//! needs. Servers are private to their owner (administrators included).

use std::collections::HashSet;

use sqlx::SqlitePool;

use super::blueprints::{self, BlueprintError};
use super::ports;
use crate::config::Config;

/// A server as pages see it (no secrets).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServerRow {
    pub id: i64,
    pub name: String,
    pub owner_id: i64,
    pub blueprint_id: i64,
    pub blueprint_name: String,
    /// When its blueprint was last edited (RFC 3339).
    pub blueprint_updated_at: String,
    pub port: i64,
    pub desired_state: DesiredState,
    /// A delete was requested and has not finished.
    pub deleting: bool,
    pub created_at: String,
    /// Crashes the panel has seen since the server was created.
    pub crash_count: i64,
    pub last_crash_at: Option<String>,
    /// How the last crash ended, in an operator's words.
    pub last_exit: Option<String>,
    /// Crashed too often to be restarted (the panel's supervisor gave up,
    /// or systemd hit the unit's start limit) until someone acts on it.
    pub crash_loop: bool,
    /// The game build it is kept on (a rollback); None: the newest.
    pub pinned_build: Option<i64>,
}

/// What the owner last asked for. Stored as lower-case text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
pub enum DesiredState {
    Running,
    Stopped,
}

impl DesiredState {
    pub fn as_str(self) -> &'static str {
        match self {
            DesiredState::Running => "running",
            DesiredState::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for DesiredState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(super) const SERVER_COLUMNS: &str = "s.id, s.name, s.owner_id, s.blueprint_id, b.name AS blueprint_name, b.updated_at AS blueprint_updated_at, s.port, s.desired_state, s.deleting, s.created_at, s.crash_count, s.last_crash_at, s.last_exit, s.crash_loop, s.pinned_build";

/// Jobs on one instance run one at a time, in the order requested. Keyed
/// by name: a new server reusing a deleted one's name waits for its delete.
pub fn lock_key(name: &str) -> String {
    format!("server:{name}")
}

/// The job subject of server `id`.
pub fn subject(id: i64) -> String {
    format!("server:{id}")
}

/// The server a job subject names, if it names one.
pub fn subject_server(subject: &str) -> Option<i64> {
    subject.strip_prefix("server:")?.parse().ok()
}

/// Server `id` if `owner` owns it.
pub async fn find_owned(
    pool: &SqlitePool,
    owner: i64,
    id: i64,
) -> Result<Option<ServerRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {SERVER_COLUMNS} FROM servers s JOIN blueprints b ON b.id = s.blueprint_id
         WHERE s.id = ? AND s.owner_id = ?"
    ))
    .bind(id)
    .bind(owner)
    .fetch_optional(pool)
    .await
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

/// Every server on the host, by name.
pub async fn list_all(pool: &SqlitePool) -> Result<Vec<ServerRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {SERVER_COLUMNS} FROM servers s JOIN blueprints b ON b.id = s.blueprint_id ORDER BY s.name"
    ))
    .fetch_all(pool)
    .await
}

#[derive(Debug, thiserror::Error)]
pub enum NameError {
    #[error("enter a server name")]
    Empty,
    #[error("server name {0:?} is invalid: use 1–64 characters a-z, 0-9, '_' or '-', starting with a letter or digit")]
    Invalid(String),
}

/// Checks an instance name: the contract's rule, with a message for the
/// create form.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    l4d2_contract::InstanceName::parse(name)
        .map(drop)
        .map_err(|_| NameError::Invalid(name.to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("a server named {0:?} already exists (names are unique on this host)")]
    NameTaken(String),
    #[error("no free port left in the range {0}–{1}: delete a server or widen LEFT4ME_PORT_RANGE_START/_END")]
    NoPort(u16, u16),
    #[error("blueprint not found")]
    NoBlueprint,
    #[error("no randomness available for the server's secrets: {0}")]
    Random(String),
    #[error("could not allocate a port: {0}")]
    PortProbe(String),
    #[error("could not allocate a port: too many concurrent requests, try again")]
    Contended,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

fn random_hex(bytes: usize) -> Result<String, CreateError> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).map_err(|e| CreateError::Random(e.to_string()))?;
    Ok(hex::encode(b))
}

/// A random `sv_logsecret`: srcds keeps it in an int cvar and only sends it
/// when non-zero, so it must be in 1..=i32::MAX or the game's packets would
/// carry a different number than the one stored here.
fn random_log_secret() -> Result<u32, CreateError> {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).map_err(|e| CreateError::Random(e.to_string()))?;
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
    validate_name(name)?;
    blueprints::find_owned(pool, owner, blueprint_id)
        .await
        .map_err(|e| match e {
            BlueprintError::Db(e) => CreateError::Db(e),
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
            .map_err(|e| CreateError::PortProbe(e.to_string()))?
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
        .bind(i64::from(port))
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
    Err(CreateError::Contended)
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
    pub fn desired(self) -> Option<DesiredState> {
        match self {
            Action::Start | Action::Restart => Some(DesiredState::Running),
            Action::Stop => Some(DesiredState::Stopped),
            Action::Reset | Action::Delete => None,
        }
    }
}

/// Records what `action` on server `id` wants, inside the transaction that
/// queues its job. The newest request wins: any action but delete cancels
/// a pending delete, and someone acting on a server in a crash loop has
/// seen it: the supervisor tries again.
pub async fn record_request(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: i64,
    action: Action,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE servers SET desired_state = COALESCE(?, desired_state), deleting = ?, crash_loop = 0 WHERE id = ?",
    )
    .bind(action.desired())
    .bind(action == Action::Delete)
    .bind(id)
    .execute(&mut **tx)
    .await
    .map(drop)
}

/// What brings `server` back to its desired state when its instance is
/// (`up`) or is not running: a server that should run but does not is
/// started, one that should be stopped but runs is stopped, an unfinished
/// delete is finished.
pub fn converge_action(server: &ServerRow, up: bool) -> Option<Action> {
    if server.deleting {
        return Some(Action::Delete);
    }
    match server.desired_state {
        DesiredState::Running if !up => Some(Action::Start),
        DesiredState::Stopped if up => Some(Action::Stop),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error("blueprint {0:?} does not exist or is not yours")]
    NoBlueprint(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Links `server` to another of its owner's blueprints (the blueprint id
/// as typed); it applies on the server's next start, restart or reset.
/// Returns the blueprint's name.
pub async fn switch_blueprint(
    pool: &SqlitePool,
    server: &ServerRow,
    blueprint_id: &str,
) -> Result<String, SwitchError> {
    let no_blueprint = || SwitchError::NoBlueprint(blueprint_id.to_string());
    let id: i64 = blueprint_id.trim().parse().map_err(|_| no_blueprint())?;
    let target = blueprints::find_owned(pool, server.owner_id, id)
        .await
        .map_err(|e| match e {
            BlueprintError::Db(e) => SwitchError::Db(e),
            _ => no_blueprint(),
        })?;
    sqlx::query("UPDATE servers SET blueprint_id = ? WHERE id = ? AND owner_id = ?")
        .bind(target.id)
        .bind(server.id)
        .bind(server.owner_id)
        .execute(pool)
        .await?;
    Ok(target.name)
}

/// The servers made from blueprint `id`, by name.
pub async fn using_blueprint(
    pool: &SqlitePool,
    blueprint_id: i64,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, name FROM servers WHERE blueprint_id = ? ORDER BY name")
        .bind(blueprint_id)
        .fetch_all(pool)
        .await
}

/// Where and how the panel reaches a server over RCON.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RconTarget {
    pub id: i64,
    pub name: String,
    pub port: i64,
    pub rcon_password: String,
}

impl RconTarget {
    pub fn port(&self) -> Option<u16> {
        u16::try_from(self.port).ok()
    }
}

/// The RCON target of server `id` if `owner` owns it.
pub async fn find_owned_rcon(
    pool: &SqlitePool,
    owner: i64,
    id: i64,
) -> Result<Option<RconTarget>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, port, rcon_password FROM servers WHERE id = ? AND owner_id = ?",
    )
    .bind(id)
    .bind(owner)
    .fetch_optional(pool)
    .await
}

/// The RCON targets of every server meant to be running (the live poller).
pub async fn running_targets(pool: &SqlitePool) -> Result<Vec<RconTarget>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, port, rcon_password FROM servers WHERE desired_state = 'running'",
    )
    .fetch_all(pool)
    .await
}

/// Every server's id and `sv_logsecret` (the log listener's keys).
pub async fn log_secrets(pool: &SqlitePool) -> Result<Vec<(i64, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, log_secret FROM servers")
        .fetch_all(pool)
        .await
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
        assert_eq!(Action::parse("reset"), Some(Action::Reset));
        assert_eq!(Action::parse("reconcile"), None);
        assert_eq!(Action::Stop.desired(), Some(DesiredState::Stopped));
        assert_eq!(Action::Delete.desired(), None);
    }
}

//! The audit log (docs/product.md, Audit log): logins, user management and
//! every change users make to servers, blueprints, overlays, schedules and
//! webhooks, and the RCON commands they send, with who, from where, to what
//! and the result.
//!
//! Append-only, enforced by the database (migration 0010): an UPDATE of an
//! entry is refused, and so is a DELETE of an entry younger than the
//! retention. [`purge`] writes the configured retention into the one-row
//! `audit_retention` table and deletes what is older, in one transaction;
//! it is the only delete path. (Whoever can write the database file can of
//! course change anything; the triggers keep the app's own code honest.)
//!
//! Visibility: administrators see every entry; another user sees the
//! entries they made and those concerning servers they owned at the time,
//! from their account's lifetime only (ids of deleted users and servers can
//! be given again; an entry never passes to the new holder).

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log: {0}")]
    Db(#[from] sqlx::Error),
    #[error(
        "unknown kind {0:?}: use an area such as \"server\" or a kind such as \"server.start\""
    )]
    UnknownKind(String),
}

macro_rules! kinds {
    ($($variant:ident = $text:literal,)*) => {
        /// What happened (the `kind` column, dotted: area, then event).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Kind {
            $($variant,)*
        }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$variant => $text,)*
                }
            }
        }
    };
}

kinds! {
    LoginSucceeded = "login.succeeded",
    LoginFailed = "login.failed",
    LoginLocked = "login.locked",
    UserCreated = "user.created",
    UserDisabled = "user.disabled",
    UserEnabled = "user.enabled",
    UserDeleted = "user.deleted",
    UserPasswordSet = "user.password_set",
    UserUnlocked = "user.unlocked",
    ServerCreated = "server.created",
    ServerStart = "server.start",
    ServerStop = "server.stop",
    ServerRestart = "server.restart",
    ServerReset = "server.reset",
    ServerDelete = "server.delete",
    ServerReconcile = "server.reconcile",
    ServerBlueprintSwitched = "server.blueprint_switched",
    ServerShared = "server.shared",
    ServerUnshared = "server.unshared",
    ServerBuildChanged = "server.build_changed",
    BlueprintCreated = "blueprint.created",
    BlueprintSaved = "blueprint.saved",
    BlueprintDeleted = "blueprint.deleted",
    BlueprintStackChanged = "blueprint.stack_changed",
    BlueprintRolloutSet = "blueprint.rollout_set",
    OverlayCreated = "overlay.created",
    OverlaySaved = "overlay.saved",
    OverlayDeleted = "overlay.deleted",
    OverlayBuildRequested = "overlay.build_requested",
    RconCommand = "rcon.command",
    PlayerKicked = "player.kicked",
    PlayerBanned = "player.banned",
    PlayerUnbanned = "player.unbanned",
    PlayerAdminSet = "player.admin_set",
    PlayerAdminRemoved = "player.admin_removed",
    ScheduleAdded = "schedule.added",
    SchedulePaused = "schedule.paused",
    ScheduleResumed = "schedule.resumed",
    ScheduleDeleted = "schedule.deleted",
    WebhookAdded = "webhook.added",
    WebhookChanged = "webhook.changed",
    WebhookDeleted = "webhook.deleted",
    WebhookTested = "webhook.tested",
    TokenCreated = "token.created",
    TokenRevoked = "token.revoked",
    TokenDeleted = "token.deleted",
}

impl Kind {
    /// The kind of a server action named in a URL (`start`, `reconcile`...).
    pub fn server_action(verb: &str) -> Option<Kind> {
        Some(match verb {
            "start" => Kind::ServerStart,
            "stop" => Kind::ServerStop,
            "restart" => Kind::ServerRestart,
            "reset" => Kind::ServerReset,
            "delete" => Kind::ServerDelete,
            "reconcile" => Kind::ServerReconcile,
            _ => return None,
        })
    }

    /// The area before the dot (`server` of `server.start`).
    pub fn area(self) -> &'static str {
        self.as_str().split('.').next().unwrap_or("")
    }
}

/// The areas, in the order of [`Kind::ALL`] (for the filter's choices).
pub fn areas() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for k in Kind::ALL {
        if !out.contains(&k.area()) {
            out.push(k.area());
        }
    }
    out
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Not allowed (not the owner, not an administrator, rate-limited).
    Refused,
    /// Allowed, tried, and it did not work (a wrong password, an RCON error).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

/// Longest stored texts (characters); longer ones are cut with "…".
pub const MAX_NAME: usize = 64;
pub const MAX_TARGET_NAME: usize = 128;
pub const MAX_DETAIL: usize = 1024;

/// One entry to record.
#[derive(Debug, Clone)]
pub struct Entry {
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub source_ip: Option<String>,
    pub kind: Kind,
    /// `user`, `server`, `blueprint`, `overlay`, `schedule`, `webhook`, or
    /// empty.
    pub target_type: &'static str,
    pub target_id: Option<i64>,
    pub target_name: String,
    /// The server it concerns and that server's owner (who also sees it).
    pub server_id: Option<i64>,
    pub server_owner_id: Option<i64>,
    pub result: Outcome,
    /// Never a secret: see [`mask_secrets`] for RCON command text.
    pub detail: String,
}

impl Entry {
    pub fn new(kind: Kind) -> Entry {
        Entry {
            actor_id: None,
            actor_name: String::new(),
            source_ip: None,
            kind,
            target_type: "",
            target_id: None,
            target_name: String::new(),
            server_id: None,
            server_owner_id: None,
            result: Outcome::Ok,
            detail: String::new(),
        }
    }
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((i, _)) => format!("{}…", &text[..i]),
    }
}

/// Cvars whose value is a secret: their argument is replaced by `***` in
/// RCON command text before it is recorded.
const SECRET_CVARS: &[&str] = &["rcon_password", "sv_password", "sv_logsecret"];

/// `command` with the value after a secret cvar masked, in each `;`-separated
/// part: `sv_password hunter2` → `sv_password ***`.
pub fn mask_secrets(command: &str) -> String {
    command
        .split(';')
        .map(|part| {
            let trimmed = part.trim_start();
            let lead = &part[..part.len() - trimmed.len()];
            let name_len = trimmed
                .find(|c: char| c.is_whitespace() || c == '"')
                .unwrap_or(trimmed.len());
            let (name, rest) = trimmed.split_at(name_len);
            if SECRET_CVARS.iter().any(|s| s.eq_ignore_ascii_case(name)) && !rest.trim().is_empty()
            {
                format!("{lead}{name} ***")
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Appends `entry`. Callers record after their action succeeded; an error
/// here means the action happened but is not in the log, so it is returned
/// (the web layer logs it at error level and still answers the action).
pub async fn record(pool: &SqlitePool, entry: &Entry) -> Result<(), AuditError> {
    insert(pool, entry, None).await.map(drop)
}

/// Like [`record`], but only when no entry of the same kind from the same
/// address was recorded in the last `window_secs` (refusals an attacker can
/// repeat at will are noted once per window, not once per request).
/// Whether it was recorded.
pub async fn record_once_per(
    pool: &SqlitePool,
    entry: &Entry,
    window_secs: u64,
) -> Result<bool, AuditError> {
    insert(pool, entry, Some(window_secs)).await
}

async fn insert(
    pool: &SqlitePool,
    entry: &Entry,
    once_per: Option<u64>,
) -> Result<bool, AuditError> {
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
        "INSERT INTO audit_log (actor_id, actor_name, source_ip, kind, target_type, target_id,
         target_name, server_id, server_owner_id, result, detail) SELECT ",
    );
    let mut values = q.separated(", ");
    values
        .push_bind(entry.actor_id)
        .push_bind(cut(&entry.actor_name, MAX_NAME))
        .push_bind(entry.source_ip.clone())
        .push_bind(entry.kind.as_str())
        .push_bind(entry.target_type)
        .push_bind(entry.target_id)
        .push_bind(cut(&entry.target_name, MAX_TARGET_NAME))
        .push_bind(entry.server_id)
        .push_bind(entry.server_owner_id)
        .push_bind(entry.result.as_str())
        .push_bind(cut(&entry.detail, MAX_DETAIL));
    if let Some(window) = once_per {
        q.push(" WHERE NOT EXISTS (SELECT 1 FROM audit_log WHERE kind = ")
            .push_bind(entry.kind.as_str())
            .push(" AND source_ip IS ")
            .push_bind(entry.source_ip.clone())
            .push(" AND at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ")
            .push_bind(format!("-{window} seconds"))
            .push("))");
    }
    let done = q.build().execute(pool).await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the entries older than `retention_days` (the only way entries
/// leave the log); returns how many.
pub async fn purge(pool: &SqlitePool, retention_days: u32) -> Result<u64, AuditError> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE audit_retention SET days = ? WHERE id = 1")
        .bind(retention_days)
        .execute(&mut *tx)
        .await?;
    let gone = sqlx::query(
        "DELETE FROM audit_log
         WHERE at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || ? || ' days')",
    )
    .bind(retention_days)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(gone)
}

/// Filter by kind: one kind, or every kind of an area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindFilter {
    Exact(Kind),
    Area(&'static str),
}

impl KindFilter {
    /// `server` (an area) or `server.start` (a kind); anything else is an
    /// error.
    pub fn parse(text: &str) -> Result<KindFilter, AuditError> {
        let text = text.trim();
        if let Some(k) = Kind::ALL.iter().find(|k| k.as_str() == text) {
            return Ok(KindFilter::Exact(*k));
        }
        areas()
            .into_iter()
            .find(|a| *a == text)
            .map(KindFilter::Area)
            .ok_or_else(|| AuditError::UnknownKind(cut(text, MAX_NAME)))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KindFilter::Exact(k) => k.as_str(),
            KindFilter::Area(a) => a,
        }
    }
}

/// Who is looking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    Admin,
    User(i64),
}

/// Which entries to list.
#[derive(Debug, Clone)]
pub struct Filter {
    pub viewer: Viewer,
    pub actor_id: Option<i64>,
    pub server_id: Option<i64>,
    pub kind: Option<KindFilter>,
}

/// One stored entry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub id: i64,
    pub at: String,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub source_ip: Option<String>,
    pub kind: String,
    pub target_type: String,
    pub target_id: Option<i64>,
    pub target_name: String,
    pub server_id: Option<i64>,
    pub result: String,
    pub detail: String,
}

/// Entries per page.
pub const PAGE_SIZE: i64 = 50;

/// One page of entries, newest first.
pub struct Page<T> {
    pub rows: Vec<T>,
    /// 1 is the newest page.
    pub number: u32,
    pub has_older: bool,
}

/// The entries `filter` selects and its viewer may see, page `page` (1:
/// the newest [`PAGE_SIZE`]).
pub async fn list(pool: &SqlitePool, filter: &Filter, page: u32) -> Result<Page<Row>, AuditError> {
    let page = page.max(1);
    let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
        "SELECT a.id, a.at, a.actor_id, a.actor_name, a.source_ip, a.kind, a.target_type,
         a.target_id, a.target_name, a.server_id, a.result, a.detail
         FROM audit_log a WHERE 1 = 1",
    );
    if let Viewer::User(me) = filter.viewer {
        q.push(" AND (a.actor_id = ")
            .push_bind(me)
            .push(" OR a.server_owner_id = ")
            .push_bind(me)
            .push(
                ") AND a.at >= (SELECT strftime('%Y-%m-%dT%H:%M:%fZ', created_at)
                 FROM users WHERE id = ",
            )
            .push_bind(me)
            .push(")");
    }
    if let Some(actor) = filter.actor_id {
        q.push(" AND a.actor_id = ").push_bind(actor);
    }
    if let Some(server) = filter.server_id {
        q.push(" AND a.server_id = ").push_bind(server);
    }
    match filter.kind {
        Some(KindFilter::Exact(k)) => {
            q.push(" AND a.kind = ").push_bind(k.as_str());
        }
        Some(KindFilter::Area(area)) => {
            // Areas are fixed words without LIKE wildcards.
            q.push(" AND a.kind LIKE ").push_bind(format!("{area}.%"));
        }
        None => {}
    }
    q.push(" ORDER BY a.id DESC LIMIT ")
        .push_bind(PAGE_SIZE + 1)
        .push(" OFFSET ")
        .push_bind((i64::from(page) - 1) * PAGE_SIZE);
    let mut rows: Vec<Row> = q.build_query_as().fetch_all(pool).await?;
    let has_older = rows.len() as i64 > PAGE_SIZE;
    rows.truncate(PAGE_SIZE as usize);
    Ok(Page {
        rows,
        number: page,
        has_older,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_cvars_are_masked() {
        assert_eq!(mask_secrets("sv_password hunter2"), "sv_password ***");
        assert_eq!(
            mask_secrets("say hi; RCON_PASSWORD \"x y\";status"),
            "say hi; RCON_PASSWORD ***;status"
        );
        assert_eq!(
            mask_secrets("sv_password"),
            "sv_password",
            "a query shows nothing"
        );
        assert_eq!(
            mask_secrets("say sv_password hunter2"),
            "say sv_password hunter2"
        );
        assert_eq!(mask_secrets("sv_passwordx 1"), "sv_passwordx 1");
    }

    #[test]
    fn kind_filters_are_areas_or_kinds() {
        assert_eq!(
            KindFilter::parse("server").unwrap(),
            KindFilter::Area("server")
        );
        assert_eq!(
            KindFilter::parse("rcon.command").unwrap(),
            KindFilter::Exact(Kind::RconCommand)
        );
        for bad in ["", "serv", "server.", "server.%", "login.succeeded.x"] {
            assert!(KindFilter::parse(bad).is_err(), "{bad:?}");
        }
        assert!(areas().contains(&"webhook") && areas().len() < Kind::ALL.len());
    }

    #[test]
    fn long_texts_are_cut() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "abc…");
        assert_eq!(cut("ääää", 2), "ää…");
    }
}

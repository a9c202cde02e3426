//! Webhooks and their delivery log in the database: the owner-only CRUD the
//! pages use, [`raise`] (what the rest of the app calls) and the queue
//! operations of the sender.

use std::collections::BTreeSet;

use sqlx::{Row, SqlitePool};
use tokio::sync::Notify;

use super::event::{AlertEvent, EventKind, Format, KINDS};
use super::target::{self, TargetError};
use crate::db::{now_text, now_unix};
use crate::servers;

/// Longest webhook name.
pub const MAX_NAME: usize = 64;
/// Webhooks one user may have: each raised event becomes one delivery per
/// webhook, so this bounds what one tenant can make the panel send.
pub const MAX_WEBHOOKS: i64 = 20;
/// Deliveries kept per webhook; older ones are pruned.
pub const KEEP_DELIVERIES: i64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("you already have a webhook named {0:?}")]
    Duplicate(String),
    #[error("you have {MAX_WEBHOOKS} webhooks already; delete one first")]
    TooMany,
    #[error("not found")]
    NotFound,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// The set of event kinds a webhook is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventSet(BTreeSet<EventKind>);

impl EventSet {
    pub fn all() -> Self {
        EventSet(EventKind::toggleable().map(|k| k.kind).collect())
    }

    /// The set named by wire names (a form's checkboxes); an unknown name
    /// is an error naming it.
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<Self, AlertError> {
        let mut set = BTreeSet::new();
        for key in keys {
            match EventKind::from_key(key) {
                Some(k) if k.info().column.is_some() => {
                    set.insert(k);
                }
                _ => return Err(AlertError::Invalid(format!("unknown event {key:?}"))),
            }
        }
        Ok(EventSet(set))
    }

    pub fn contains(&self, kind: EventKind) -> bool {
        kind == EventKind::Test || self.0.contains(&kind)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Labels of the kinds in the set, for lists.
    pub fn labels(&self) -> Vec<&'static str> {
        self.0.iter().map(|k| k.info().label).collect()
    }
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub url: String,
    pub format: Format,
    pub events: EventSet,
    pub created_at: String,
}

impl Webhook {
    /// The URL as lists show it: scheme, host and port, the path hidden
    /// (Discord's carries the webhook's token).
    pub fn url_host(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(u) => {
                let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
                format!(
                    "{}://{}{port}/…",
                    u.scheme(),
                    u.host_str().unwrap_or_default()
                )
            }
            Err(_) => String::new(),
        }
    }
}

/// The enabled-flag columns, in [`KINDS`] order.
fn columns() -> impl Iterator<Item = (EventKind, &'static str)> {
    KINDS.iter().filter_map(|k| k.column.map(|c| (k.kind, c)))
}

fn select_webhooks() -> String {
    let flags: Vec<&str> = columns().map(|(_, c)| c).collect();
    format!(
        "SELECT id, user_id, name, url, format, created_at, {} FROM webhooks",
        flags.join(", ")
    )
}

fn webhook_from(row: &sqlx::sqlite::SqliteRow) -> Result<Webhook, sqlx::Error> {
    let mut events = BTreeSet::new();
    for (kind, column) in columns() {
        if row.try_get::<bool, _>(column)? {
            events.insert(kind);
        }
    }
    let format: String = row.try_get("format")?;
    Ok(Webhook {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        url: row.try_get("url")?,
        // The table's CHECK allows only the two formats.
        format: Format::parse(&format).unwrap_or(Format::Json),
        events: EventSet(events),
        created_at: row.try_get("created_at")?,
    })
}

/// A new webhook from a form, checked by its form.
pub struct WebhookInput {
    pub name: String,
    pub url: reqwest::Url,
    pub format: Format,
    pub events: EventSet,
}

impl WebhookInput {
    pub fn validate<'a>(
        name: &str,
        url: &str,
        format: &str,
        events: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, AlertError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(AlertError::Invalid("enter a name for the webhook".into()));
        }
        if name.chars().count() > MAX_NAME {
            return Err(AlertError::Invalid(format!(
                "webhook name is longer than {MAX_NAME} characters"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(AlertError::Invalid(
                "webhook name contains control characters".into(),
            ));
        }
        let format = Format::parse(format).ok_or_else(|| {
            AlertError::Invalid(format!(
                "unknown format {format:?}: choose Discord or generic JSON"
            ))
        })?;
        let url = target::parse(url)?;
        Ok(WebhookInput {
            name: name.to_string(),
            url,
            format,
            events: EventSet::from_keys(events)?,
        })
    }
}

/// Creates a webhook for `user_id`. Its host must resolve to addresses the
/// rule allows (`allow_private`: LEFT4ME_WEBHOOK_ALLOW_PRIVATE) now; the
/// sender checks again at every delivery.
pub async fn create(
    pool: &SqlitePool,
    user_id: i64,
    input: &WebhookInput,
    allow_private: bool,
) -> Result<Webhook, AlertError> {
    target::resolve(&input.url, allow_private, RESOLVE_TIMEOUT).await?;
    let mut tx = pool.begin().await?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE user_id = ?")
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
    if count >= MAX_WEBHOOKS {
        return Err(AlertError::TooMany);
    }
    let flags: Vec<&str> = columns().map(|(_, c)| c).collect();
    let marks = vec!["?"; flags.len()].join(", ");
    let sql = format!(
        "INSERT INTO webhooks (user_id, name, url, format, {}) VALUES (?, ?, ?, ?, {marks}) RETURNING id",
        flags.join(", ")
    );
    let mut q = sqlx::query_scalar::<_, i64>(&sql)
        .bind(user_id)
        .bind(&input.name)
        .bind(input.url.as_str())
        .bind(input.format.as_str());
    for (kind, _) in columns() {
        q = q.bind(input.events.contains(kind));
    }
    let id = match q.fetch_one(&mut *tx).await {
        Ok(id) => id,
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(AlertError::Duplicate(input.name.clone()))
        }
        Err(e) => return Err(e.into()),
    };
    tx.commit().await?;
    get(pool, user_id, id).await
}

/// How long creating a webhook waits for its host to resolve.
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The user's webhooks, by name.
pub async fn list(pool: &SqlitePool, user_id: i64) -> Result<Vec<Webhook>, AlertError> {
    let sql = format!("{} WHERE user_id = ? ORDER BY name, id", select_webhooks());
    let rows = sqlx::query(&sql).bind(user_id).fetch_all(pool).await?;
    Ok(rows.iter().map(webhook_from).collect::<Result<_, _>>()?)
}

/// Webhook `id` if `user_id` owns it; anyone else's is [`AlertError::NotFound`].
pub async fn get(pool: &SqlitePool, user_id: i64, id: i64) -> Result<Webhook, AlertError> {
    let sql = format!("{} WHERE id = ? AND user_id = ?", select_webhooks());
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(user_id)
        .fetch_optional(pool)
        .await?
        .ok_or(AlertError::NotFound)?;
    Ok(webhook_from(&row)?)
}

/// Switches the webhook's events to exactly `events`.
pub async fn set_events(
    pool: &SqlitePool,
    user_id: i64,
    id: i64,
    events: &EventSet,
) -> Result<(), AlertError> {
    let sets: Vec<String> = columns().map(|(_, c)| format!("{c} = ?")).collect();
    let sql = format!(
        "UPDATE webhooks SET {} WHERE id = ? AND user_id = ?",
        sets.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for (kind, _) in columns() {
        q = q.bind(events.contains(kind));
    }
    let done = q.bind(id).bind(user_id).execute(pool).await?;
    if done.rows_affected() == 0 {
        return Err(AlertError::NotFound);
    }
    Ok(())
}

/// Deletes the webhook and its log; returns its name.
pub async fn delete(pool: &SqlitePool, user_id: i64, id: i64) -> Result<String, AlertError> {
    sqlx::query_scalar("DELETE FROM webhooks WHERE id = ? AND user_id = ? RETURNING name")
        .bind(id)
        .bind(user_id)
        .fetch_optional(pool)
        .await?
        .ok_or(AlertError::NotFound)
}

/// The state of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

/// One line of a webhook's delivery log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: i64,
    pub event: String,
    pub payload: String,
    pub state: DeliveryState,
    pub attempts: i64,
    /// Unix milliseconds.
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl Delivery {
    /// The event's label, or its wire name if unknown.
    pub fn event_label(&self) -> &str {
        EventKind::from_key(&self.event)
            .map(|k| k.info().label)
            .unwrap_or(&self.event)
    }
}

/// The webhook's latest deliveries, newest first (owner only).
pub async fn deliveries(
    pool: &SqlitePool,
    user_id: i64,
    webhook_id: i64,
    limit: i64,
) -> Result<Vec<Delivery>, AlertError> {
    get(pool, user_id, webhook_id).await?;
    Ok(sqlx::query_as(
        "SELECT id, webhook_id, event, payload, state, attempts, next_attempt_at, last_status,
                last_error, created_at, finished_at
         FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT ?",
    )
    .bind(webhook_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Raised for every sender of the process: one wake-up for all (tests run
/// several panels in one process; a sender woken for another database
/// costs one query).
pub(super) static WAKE: Notify = Notify::const_new();

/// Unix milliseconds now.
pub(super) fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(now_unix() * 1000)
}

/// Queues `event` for every webhook of `user_id` that has it switched on,
/// and wakes the sender. Returns how many deliveries were queued. Texts of
/// the event that quote a secret of the user's servers have it hidden.
pub async fn raise(
    pool: &SqlitePool,
    user_id: i64,
    event: &AlertEvent,
) -> Result<usize, AlertError> {
    let hooks: Vec<Webhook> = list(pool, user_id)
        .await?
        .into_iter()
        .filter(|w| w.events.contains(event.kind()))
        .collect();
    if hooks.is_empty() {
        return Ok(0);
    }
    let event = event.redacted(&user_secrets(pool, user_id).await?);
    queue(pool, &hooks, &event).await
}

/// Queues a test delivery to webhook `id` of `user_id` alone.
pub async fn send_test(pool: &SqlitePool, user_id: i64, id: i64) -> Result<(), AlertError> {
    let hook = get(pool, user_id, id).await?;
    queue(pool, &[hook], &AlertEvent::Test).await?;
    Ok(())
}

/// The RCON passwords and log secrets of the user's servers (and every log
/// secret: they are what attributes log packets).
async fn user_secrets(pool: &SqlitePool, user_id: i64) -> Result<Vec<String>, sqlx::Error> {
    let mut secrets: Vec<String> = servers::log_secrets(pool)
        .await?
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    for s in servers::list_owned(pool, user_id).await? {
        if let Some(t) = servers::find_owned_rcon(pool, user_id, s.id).await? {
            secrets.push(t.rcon_password);
        }
    }
    Ok(secrets)
}

async fn queue(
    pool: &SqlitePool,
    hooks: &[Webhook],
    event: &AlertEvent,
) -> Result<usize, AlertError> {
    let now = time::OffsetDateTime::now_utc();
    let due = now_ms();
    let mut tx = pool.begin().await?;
    for hook in hooks {
        let payload = event.payload(hook.format, now).to_string();
        sqlx::query(
            "INSERT INTO webhook_deliveries (webhook_id, event, payload, next_attempt_at)
             VALUES (?, ?, ?, ?)",
        )
        .bind(hook.id)
        .bind(event.kind().key())
        .bind(&payload)
        .bind(due)
        .execute(&mut *tx)
        .await?;
        // The log stays bounded whatever a crash loop raises.
        sqlx::query(
            "DELETE FROM webhook_deliveries WHERE webhook_id = ?1 AND id NOT IN
               (SELECT id FROM webhook_deliveries WHERE webhook_id = ?1 ORDER BY id DESC LIMIT ?2)",
        )
        .bind(hook.id)
        .bind(KEEP_DELIVERIES)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    WAKE.notify_waiters();
    Ok(hooks.len())
}

/// A pending delivery with where it goes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct Outgoing {
    pub id: i64,
    pub webhook_id: i64,
    pub url: String,
    pub payload: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
}

/// The earliest `limit` pending deliveries, due or not.
pub(super) async fn pending(pool: &SqlitePool, limit: i64) -> Result<Vec<Outgoing>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.id, d.webhook_id, w.url, d.payload, d.attempts, d.next_attempt_at
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
         WHERE d.state = 'pending' ORDER BY d.next_attempt_at, d.id LIMIT ?",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// What one attempt came to.
pub(super) struct Attempt {
    pub status: Option<u16>,
    pub error: Option<String>,
    /// Some: try again at this Unix millisecond; None: final.
    pub retry_at: Option<i64>,
    pub delivered: bool,
}

/// Records an attempt of delivery `id`.
pub(super) async fn record(pool: &SqlitePool, id: i64, a: &Attempt) -> Result<(), sqlx::Error> {
    let state = if a.delivered {
        DeliveryState::Delivered
    } else if a.retry_at.is_some() {
        DeliveryState::Pending
    } else {
        DeliveryState::Failed
    };
    let finished = (state != DeliveryState::Pending).then(now_text);
    sqlx::query(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, state = ?, last_status = ?,
                last_error = ?, next_attempt_at = COALESCE(?, next_attempt_at), finished_at = ?
         WHERE id = ?",
    )
    .bind(state)
    .bind(a.status.map(i64::from))
    .bind(&a.error)
    .bind(a.retry_at)
    .bind(finished)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

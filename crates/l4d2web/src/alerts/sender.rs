//! The background sender: posts pending deliveries, retries with backoff,
//! records every attempt in the delivery log. It sleeps until the earliest
//! next attempt or until [`super::store::raise`] wakes it; idle, it does
//! not wake at all. Deliveries still pending at shutdown stay pending and
//! go out after the next start.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use sqlx::SqlitePool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::store::{self, Attempt, Outgoing, WAKE};
use super::target::{self, Resolved};
use crate::config::Config;

/// How the sender delivers. [`SenderSettings::from_config`] is production;
/// tests shorten the timeout and the backoff.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    /// Limit of one attempt: resolving, connecting, the response's head.
    pub timeout: Duration,
    /// Wait after the 1st, 2nd, ... failed attempt (the last repeats).
    pub backoff: Vec<Duration>,
    /// Attempts before a delivery is given up as failed.
    pub max_attempts: u32,
    /// The longest Retry-After of a 429 that is honoured as it is.
    pub max_retry_after: Duration,
    /// Loopback and private targets allowed (LEFT4ME_WEBHOOK_ALLOW_PRIVATE).
    pub allow_private: bool,
    /// Deliveries in flight at once (one slow receiver delays no one else).
    pub parallel: usize,
}

impl SenderSettings {
    pub fn from_config(config: &Config) -> Self {
        SenderSettings {
            timeout: Duration::from_secs(10),
            backoff: [10, 60, 300, 900].map(Duration::from_secs).to_vec(),
            max_attempts: 5,
            max_retry_after: Duration::from_secs(900),
            allow_private: config.webhook_allow_private,
            parallel: 8,
        }
    }

    fn delay_after(&self, attempt: i64) -> Duration {
        let i = usize::try_from(attempt.saturating_sub(1)).unwrap_or(0);
        self.backoff
            .get(i)
            .or(self.backoff.last())
            .copied()
            .unwrap_or(Duration::from_secs(60))
    }
}

/// The sender of one panel (one database).
pub struct AlertSender {
    pool: SqlitePool,
    settings: Arc<SenderSettings>,
    /// The panel's own secrets: a payload quoting one is never sent.
    secrets: Arc<Vec<String>>,
}

impl AlertSender {
    pub fn new(pool: SqlitePool, config: &Config) -> Self {
        Self::with_settings(pool, config, SenderSettings::from_config(config))
    }

    pub fn with_settings(pool: SqlitePool, config: &Config, settings: SenderSettings) -> Self {
        let mut secrets = vec![String::from_utf8_lossy(&config.secret_key).into_owned()];
        secrets.extend(config.steam_web_api_key.clone());
        AlertSender {
            pool,
            settings: Arc::new(settings),
            secrets: Arc::new(secrets),
        }
    }

    pub fn spawn(self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    /// Sends until `shutdown`; deliveries in flight then are dropped
    /// unrecorded, so they stay pending.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut running: JoinSet<()> = JoinSet::new();
        let mut in_flight: HashMap<tokio::task::Id, i64> = HashMap::new();
        loop {
            // Armed before the queue is read: a raise after the read wakes us.
            let wake = WAKE.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            let busy: HashSet<i64> = in_flight.values().copied().collect();
            let next = match self.start_due(&mut running, &mut in_flight, &busy).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the webhook queue failed; retrying in 5 s");
                    Some(store::now_ms() + 5000)
                }
            };
            let sleep = async {
                match next {
                    Some(at) => {
                        let ms = u64::try_from(at - store::now_ms()).unwrap_or(0);
                        tokio::time::sleep(Duration::from_millis(ms)).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = &mut wake => {}
                _ = sleep => {}
                Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(e) => {
                            tracing::error!(error = %e, "a webhook delivery task failed");
                            e.id()
                        }
                    };
                    in_flight.remove(&id);
                }
            }
        }
        running.abort_all();
        while running.join_next().await.is_some() {}
    }

    /// Starts every due delivery there is room for; returns when the next
    /// one not started falls due (None: nothing to wait for but a wake-up
    /// or a delivery finishing).
    async fn start_due(
        &self,
        running: &mut JoinSet<()>,
        in_flight: &mut HashMap<tokio::task::Id, i64>,
        busy: &HashSet<i64>,
    ) -> Result<Option<i64>, sqlx::Error> {
        let parallel = self.settings.parallel.max(1);
        let limit = i64::try_from(busy.len() + parallel).unwrap_or(i64::MAX);
        let now = store::now_ms();
        for row in store::pending(&self.pool, limit).await? {
            if busy.contains(&row.id) {
                continue;
            }
            if row.next_attempt_at > now {
                return Ok(Some(row.next_attempt_at));
            }
            if running.len() >= parallel {
                return Ok(None);
            }
            let job = Delivery {
                pool: self.pool.clone(),
                settings: self.settings.clone(),
                secrets: self.secrets.clone(),
            };
            let delivery_id = row.id;
            let handle = running.spawn(async move { job.run(row).await });
            in_flight.insert(handle.id(), delivery_id);
        }
        Ok(None)
    }
}

/// One delivery attempt and its record.
struct Delivery {
    pool: SqlitePool,
    settings: Arc<SenderSettings>,
    secrets: Arc<Vec<String>>,
}

impl Delivery {
    async fn run(self, row: Outgoing) {
        let attempt = self.attempt(&row).await;
        match (&attempt.error, attempt.delivered, attempt.retry_at) {
            (_, true, _) => {
                tracing::debug!(
                    webhook = row.webhook_id,
                    delivery = row.id,
                    "webhook delivered"
                )
            }
            (error, false, Some(_)) => tracing::info!(
                webhook = row.webhook_id,
                delivery = row.id,
                error = error.as_deref().unwrap_or_default(),
                "webhook delivery failed; will retry"
            ),
            (error, false, None) => tracing::warn!(
                webhook = row.webhook_id,
                delivery = row.id,
                error = error.as_deref().unwrap_or_default(),
                "webhook delivery given up"
            ),
        }
        if let Err(e) = store::record(&self.pool, row.id, &attempt).await {
            // Left pending: it is tried again, which is better than lost.
            tracing::warn!(delivery = row.id, error = %e, "recording a webhook attempt failed");
        }
    }

    async fn attempt(&self, row: &Outgoing) -> Attempt {
        let n = row.attempts + 1;
        if self
            .secrets
            .iter()
            .any(|s| !s.is_empty() && row.payload.contains(s.as_str()))
        {
            return give_up(
                None,
                "not sent: the payload contained a secret of the panel".into(),
            );
        }
        let url = match target::parse(&row.url) {
            Ok(u) => u,
            Err(e) => return give_up(None, e.to_string()),
        };
        let resolved =
            match target::resolve(&url, self.settings.allow_private, self.settings.timeout).await {
                Ok(r) => r,
                Err(e) if e.is_refusal() => return give_up(None, format!("not sent: {e}")),
                Err(e) => return self.retry(n, None, e.to_string(), None),
            };
        let client = match client(&resolved, self.settings.timeout) {
            Ok(c) => c,
            Err(e) => return self.retry(n, None, short_error(&e), None),
        };
        let sent = client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(row.payload.clone())
            .send()
            .await;
        match sent {
            Ok(res) if res.status().is_success() => Attempt {
                status: Some(res.status().as_u16()),
                error: None,
                retry_at: None,
                delivered: true,
            },
            Ok(res) if res.status() == StatusCode::TOO_MANY_REQUESTS => {
                let wait = retry_after(res.headers()).map(|w| w.min(self.settings.max_retry_after));
                let error = match wait {
                    Some(w) => format!(
                        "rate limited (HTTP 429); the receiver asked to wait {} s",
                        w.as_secs()
                    ),
                    None => "rate limited (HTTP 429)".to_string(),
                };
                self.retry(n, Some(res.status()), error, wait)
            }
            Ok(res) => {
                let s = res.status();
                let error = format!(
                    "HTTP {}{}",
                    s.as_u16(),
                    s.canonical_reason()
                        .map(|r| format!(" {r}"))
                        .unwrap_or_default()
                );
                self.retry(n, Some(s), error, None)
            }
            Err(e) if e.is_timeout() => self.retry(
                n,
                None,
                format!("no answer within {} s", self.settings.timeout.as_secs_f32()),
                None,
            ),
            Err(e) => self.retry(n, None, short_error(&e), None),
        }
    }

    /// Attempt `n` failed: schedule the next, or give up after the last.
    fn retry(
        &self,
        n: i64,
        status: Option<StatusCode>,
        error: String,
        wait: Option<Duration>,
    ) -> Attempt {
        let status = status.map(|s| s.as_u16());
        if n >= i64::from(self.settings.max_attempts) {
            return give_up(status, format!("{error}; gave up after {n} attempts"));
        }
        let wait = wait.unwrap_or_else(|| self.settings.delay_after(n));
        let ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
        Attempt {
            status,
            error: Some(error),
            retry_at: Some(store::now_ms().saturating_add(ms)),
            delivered: false,
        }
    }
}

fn give_up(status: Option<u16>, error: String) -> Attempt {
    Attempt {
        status,
        error: Some(error),
        retry_at: None,
        delivered: false,
    }
}

/// A client that connects to the checked addresses only: the host's name
/// is pinned to them, any other lookup is refused, no proxy, no redirects
/// (a redirect could point anywhere).
fn client(resolved: &Resolved, timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent("left4me")
        .dns_resolver(Arc::new(NoLookups));
    if let Some(name) = &resolved.name {
        b = b.resolve_to_addrs(name, &resolved.addrs);
    }
    b.build()
}

/// The resolver behind the pinned names: anything else is not looked up.
struct NoLookups;

impl reqwest::dns::Resolve for NoLookups {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_string();
        Box::pin(async move {
            Err(format!("{name} was not checked by the webhook rule; not looked up").into())
        })
    }
}

/// A 429's Retry-After: seconds, or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (at - time::OffsetDateTime::now_utc())
        .whole_seconds()
        .max(0);
    Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

/// An HTTP client error in a line: its causes, without the URL (a Discord
/// webhook URL carries its token).
fn short_error(e: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let head = if e.is_connect() {
        "connection failed"
    } else if e.is_request() {
        "request failed"
    } else {
        "sending failed"
    };
    text.push_str(head);
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    if text.chars().count() > 300 {
        text = text.chars().take(299).collect();
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a past date: now");
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn backoff_repeats_its_last_step() {
        let s = SenderSettings {
            timeout: Duration::from_secs(1),
            backoff: vec![Duration::from_secs(10), Duration::from_secs(60)],
            max_attempts: 5,
            max_retry_after: Duration::from_secs(900),
            allow_private: false,
            parallel: 1,
        };
        assert_eq!(s.delay_after(1), Duration::from_secs(10));
        assert_eq!(s.delay_after(2), Duration::from_secs(60));
        assert_eq!(s.delay_after(4), Duration::from_secs(60));
    }
}

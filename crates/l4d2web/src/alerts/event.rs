//! What an alert says: the event kinds, the events the app raises, and the
//! two payload formats. A payload is built from the event's fixed fields
//! only (an allow-list), with its texts cleaned and capped, so nothing but
//! what an event names can reach a webhook: no job logs, no secrets.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The kinds of event a webhook can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    ServerCrashed,
    CrashLoop,
    JobFailed,
    ServerRecovered,
    Test,
}

/// What the app knows about one event kind.
pub struct KindInfo {
    pub kind: EventKind,
    /// The wire name, in payloads and the delivery log.
    pub key: &'static str,
    /// The webhook's enabled flag (None: always sent, i.e. the test).
    pub column: Option<&'static str>,
    /// How the form and the log name it.
    pub label: &'static str,
    /// Discord embed colour.
    pub colour: u32,
}

/// Every event kind, the one list the form, the toggles and the SQL are
/// made from: a new kind is one row here (with its variant in
/// [`AlertEvent`] and its column in a migration).
#[rustfmt::skip]
pub const KINDS: &[KindInfo] = &[
    kind(EventKind::ServerCrashed, "server.crashed", Some("on_server_crashed"), "Server crashed", 0xE74C3C),
    kind(EventKind::CrashLoop, "server.crash_loop", Some("on_crash_loop"), "Crash loop (restarts given up)", 0x992D22),
    kind(EventKind::JobFailed, "job.failed", Some("on_job_failed"), "Job failed", 0xE67E22),
    kind(EventKind::ServerRecovered, "server.recovered", Some("on_server_recovered"), "Server back after a host reboot", 0x2ECC71),
    kind(EventKind::Test, "test", None, "Test", 0x3498DB),
];

const fn kind(
    kind: EventKind,
    key: &'static str,
    column: Option<&'static str>,
    label: &'static str,
    colour: u32,
) -> KindInfo {
    KindInfo {
        kind,
        key,
        column,
        label,
        colour,
    }
}

impl EventKind {
    pub fn info(self) -> &'static KindInfo {
        // KINDS has a row for every variant (tested below).
        KINDS
            .iter()
            .find(|k| k.kind == self)
            .unwrap_or(&KINDS[KINDS.len() - 1])
    }

    pub fn key(self) -> &'static str {
        self.info().key
    }

    /// The kind of a wire name.
    pub fn from_key(key: &str) -> Option<EventKind> {
        KINDS.iter().find(|k| k.key == key).map(|k| k.kind)
    }

    /// The kinds a webhook can switch on and off (all but the test).
    pub fn toggleable() -> impl Iterator<Item = &'static KindInfo> {
        KINDS.iter().filter(|k| k.column.is_some())
    }
}

/// An event the app raises for a user ([`super::store::raise`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertEvent {
    /// A server stopped without being asked to.
    ServerCrashed {
        server_id: i64,
        server_name: String,
        detail: String,
    },
    /// A server crashed again and again; its restarts were given up
    /// (systemd's start limit).
    CrashLoop {
        server_id: i64,
        server_name: String,
        detail: String,
    },
    /// A job of the user failed. `summary` is one line of what went wrong,
    /// never the job's log.
    JobFailed {
        job_id: i64,
        title: String,
        summary: String,
    },
    /// A server came back after the host rebooted.
    ServerRecovered { server_id: i64, server_name: String },
    /// The webhook page's test button.
    Test,
}

/// The two payload formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Discord's webhook body (also understood by Slack-like receivers
    /// that accept `content`).
    Discord,
    /// A plain JSON object for one's own receivers.
    Json,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Discord => "discord",
            Format::Json => "json",
        }
    }

    pub fn parse(text: &str) -> Option<Format> {
        match text.trim() {
            "discord" => Some(Format::Discord),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Longest server name or job title in a payload.
const MAX_NAME: usize = 200;
/// Longest detail or summary in a payload.
const MAX_DETAIL: usize = 500;

/// `text` without control characters (a newline could forge lines in a
/// chat message), trimmed and cut to `max` characters.
fn clean(text: &str, max: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = one_line.trim();
    if trimmed.chars().count() <= max {
        return trimmed.to_string();
    }
    let mut cut: String = trimmed.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `text` with every occurrence of a secret replaced.
fn hide(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s.as_str(), "[hidden]");
    }
    out
}

/// What an event is about, as the payload names it.
enum Subject<'a> {
    Server { id: i64, name: &'a str },
    Job { id: i64, title: &'a str },
    Nothing,
}

impl AlertEvent {
    pub fn kind(&self) -> EventKind {
        match self {
            AlertEvent::ServerCrashed { .. } => EventKind::ServerCrashed,
            AlertEvent::CrashLoop { .. } => EventKind::CrashLoop,
            AlertEvent::JobFailed { .. } => EventKind::JobFailed,
            AlertEvent::ServerRecovered { .. } => EventKind::ServerRecovered,
            AlertEvent::Test => EventKind::Test,
        }
    }

    /// The server the event is about, if any.
    pub fn server_id(&self) -> Option<i64> {
        match self {
            AlertEvent::ServerCrashed { server_id, .. }
            | AlertEvent::CrashLoop { server_id, .. }
            | AlertEvent::ServerRecovered { server_id, .. } => Some(*server_id),
            AlertEvent::JobFailed { .. } | AlertEvent::Test => None,
        }
    }

    /// The event with every occurrence of `secrets` (RCON passwords, log
    /// secrets) in its texts replaced: the caller's texts come from the
    /// host and the game, which may quote them.
    pub fn redacted(&self, secrets: &[String]) -> AlertEvent {
        let h = |t: &String| hide(t, secrets);
        match self {
            AlertEvent::ServerCrashed {
                server_id,
                server_name,
                detail,
            } => AlertEvent::ServerCrashed {
                server_id: *server_id,
                server_name: h(server_name),
                detail: h(detail),
            },
            AlertEvent::CrashLoop {
                server_id,
                server_name,
                detail,
            } => AlertEvent::CrashLoop {
                server_id: *server_id,
                server_name: h(server_name),
                detail: h(detail),
            },
            AlertEvent::JobFailed {
                job_id,
                title,
                summary,
            } => AlertEvent::JobFailed {
                job_id: *job_id,
                title: h(title),
                summary: h(summary),
            },
            AlertEvent::ServerRecovered {
                server_id,
                server_name,
            } => AlertEvent::ServerRecovered {
                server_id: *server_id,
                server_name: h(server_name),
            },
            AlertEvent::Test => AlertEvent::Test,
        }
    }

    fn subject(&self) -> Subject<'_> {
        match self {
            AlertEvent::ServerCrashed {
                server_id,
                server_name,
                ..
            }
            | AlertEvent::CrashLoop {
                server_id,
                server_name,
                ..
            }
            | AlertEvent::ServerRecovered {
                server_id,
                server_name,
            } => Subject::Server {
                id: *server_id,
                name: server_name,
            },
            AlertEvent::JobFailed { job_id, title, .. } => Subject::Job { id: *job_id, title },
            AlertEvent::Test => Subject::Nothing,
        }
    }

    /// The one-sentence message.
    pub fn message(&self) -> String {
        let name = |n: &str| clean(n, MAX_NAME);
        match self {
            AlertEvent::ServerCrashed { server_name, .. } => {
                format!("Server {} crashed", name(server_name))
            }
            AlertEvent::CrashLoop { server_name, .. } => format!(
                "Server {} keeps crashing; it is not restarted any more",
                name(server_name)
            ),
            AlertEvent::JobFailed { job_id, title, .. } => {
                format!("Job #{job_id} failed: {}", name(title))
            }
            AlertEvent::ServerRecovered { server_name, .. } => {
                format!(
                    "Server {} is running again after a host reboot",
                    name(server_name)
                )
            }
            AlertEvent::Test => "Test alert from left4me: this webhook works".to_string(),
        }
    }

    /// The detail line (crash reason, failure summary), if the event has one.
    fn detail(&self) -> Option<String> {
        match self {
            AlertEvent::ServerCrashed { detail, .. } | AlertEvent::CrashLoop { detail, .. } => {
                Some(clean(detail, MAX_DETAIL))
            }
            AlertEvent::JobFailed { summary, .. } => Some(clean(summary, MAX_DETAIL)),
            AlertEvent::ServerRecovered { .. } | AlertEvent::Test => None,
        }
        .filter(|d| !d.is_empty())
    }

    /// The body sent to a webhook of `format`, at `now`.
    pub fn payload(&self, format: Format, now: OffsetDateTime) -> Value {
        let info = self.kind().info();
        let time = now
            .replace_nanosecond(0)
            .unwrap_or(now)
            .format(&Rfc3339)
            .unwrap_or_default();
        let message = self.message();
        let detail = self.detail();
        match format {
            Format::Discord => json!({
                "username": "left4me",
                "content": message,
                // A server name or detail saying "@everyone" pings nobody.
                "allowed_mentions": { "parse": [] },
                "embeds": [{
                    "title": info.label,
                    "description": detail.unwrap_or_else(|| message.clone()),
                    "color": info.colour,
                    "timestamp": time,
                }],
            }),
            Format::Json => {
                let mut body = json!({
                    "event": info.key,
                    "message": message,
                    "time": time,
                });
                match self.subject() {
                    Subject::Server { id, name } => {
                        body["server"] = json!({ "id": id, "name": clean(name, MAX_NAME) });
                    }
                    Subject::Job { id, title } => {
                        body["job"] = json!({ "id": id, "title": clean(title, MAX_NAME) });
                    }
                    Subject::Nothing => {}
                }
                if let Some(d) = detail {
                    body["detail"] = Value::String(d);
                }
                body
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_row() {
        for k in [
            EventKind::ServerCrashed,
            EventKind::CrashLoop,
            EventKind::JobFailed,
            EventKind::ServerRecovered,
            EventKind::Test,
        ] {
            assert_eq!(KINDS.iter().filter(|i| i.kind == k).count(), 1, "{k:?}");
            assert_eq!(EventKind::from_key(k.key()), Some(k));
        }
    }

    #[test]
    fn texts_are_one_line_and_capped() {
        assert_eq!(clean("a\nb\r\u{7}c ", 10), "a b  c");
        let long = clean(&"x".repeat(600), MAX_DETAIL);
        assert_eq!(long.chars().count(), MAX_DETAIL);
        assert!(long.ends_with('…'));
        assert_eq!(
            hide("pw=hunter22 ok", &["hunter22".into()]),
            "pw=[hidden] ok"
        );
    }
}

//! Errors of this crate. Every message names what failed and on which input (workshop id, URL the
//! user typed, or the API endpoint by name). The API key is never part of any message: endpoints are
//! named, not printed as URLs, and reqwest errors are stripped of their URL before they are stored.

use std::fmt;

/// Everything that can go wrong talking to Steam or using what it returned.
#[derive(Debug, thiserror::Error)]
pub enum SteamError {
    /// The user's input is neither a workshop id nor a workshop URL.
    #[error("not a Steam Workshop id or URL: {input:?}: {reason}")]
    InvalidRef { input: String, reason: String },

    /// The configured base URL (or another setting) is unusable.
    #[error("Steam API configuration: {0}")]
    Config(String),

    /// `GetPlayerSummaries` needs a Web API key and none is configured.
    #[error("{endpoint} needs a Steam Web API key (STEAM_WEB_API_KEY) and none is configured")]
    MissingKey { endpoint: &'static str },

    /// The request did not complete within the configured timeout.
    #[error("request to {endpoint} timed out")]
    Timeout { endpoint: &'static str },

    /// No connection came about: the name did not resolve, or the
    /// address refused or could not be reached.
    #[error("cannot reach {endpoint}: {detail}")]
    Unreachable {
        endpoint: &'static str,
        /// As for `Transport`.
        detail: String,
    },

    /// Connection reset, a body cut off midway, ...
    #[error("request to {endpoint} failed: {detail}")]
    Transport {
        endpoint: &'static str,
        /// reqwest's error chain, taken from the error after `without_url()` (the URL may carry `?key=`).
        detail: String,
    },

    /// Steam answered with a non-success HTTP status.
    #[error("{endpoint} answered HTTP {status}: {meaning}")]
    Status {
        endpoint: &'static str,
        status: u16,
        meaning: &'static str,
    },

    /// The response body exceeded the size limit for API responses.
    #[error("response from {endpoint} is larger than {limit} bytes; refusing to read it")]
    ResponseTooLarge {
        endpoint: &'static str,
        limit: usize,
    },

    /// HTTP 200 but the body is not the JSON Steam documents (HTML error page, truncated JSON, ...).
    #[error("response from {endpoint} is not the expected JSON: {reason}")]
    BadResponse {
        endpoint: &'static str,
        reason: String,
    },

    /// One or more workshop items cannot be used; every problem is listed.
    #[error("{}", UnusableDisplay(.0))]
    Unusable(Vec<ItemProblem>),
}

/// Why one workshop item (or collection) cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemProblem {
    pub id: u64,
    pub reason: ProblemKind,
}

/// The reasons a workshop id is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// Steam's per-item `result` is not 1 (9 = not found, deleted or private).
    Unavailable { result: i64 },
    /// Steam did not mention the id in its answer at all.
    NotInResponse,
    /// The item belongs to another game.
    WrongApp { app_id: Option<u64> },
    /// No direct download (e.g. content only available through SteamPipe/steamcmd).
    NoFileUrl,
    /// `file_url` is not an http(s) URL.
    BadFileUrl { url: String },
    /// The item reports a size of 0 bytes.
    EmptyFile,
    /// Collections nested deeper than [`crate::MAX_COLLECTION_DEPTH`].
    NestedTooDeep { depth: usize },
}

impl fmt::Display for ItemProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.id;
        match &self.reason {
            ProblemKind::Unavailable { result } => write!(
                f,
                "workshop item {id} is unavailable (Steam result {result}: not found, deleted, or private)"
            ),
            ProblemKind::NotInResponse => {
                write!(f, "workshop item {id} is missing from Steam's answer")
            }
            ProblemKind::WrongApp { app_id: Some(app) } => write!(
                f,
                "workshop item {id} is for app {app}, not Left 4 Dead 2 (550)"
            ),
            ProblemKind::WrongApp { app_id: None } => write!(
                f,
                "workshop item {id} names no app; expected Left 4 Dead 2 (550)"
            ),
            ProblemKind::NoFileUrl => write!(
                f,
                "workshop item {id} has no direct download (file_url is empty)"
            ),
            ProblemKind::BadFileUrl { url } => write!(
                f,
                "workshop item {id} has a download URL that is not http(s): {url:?}"
            ),
            ProblemKind::EmptyFile => write!(f, "workshop item {id} reports a file size of 0 bytes"),
            ProblemKind::NestedTooDeep { depth } => write!(
                f,
                "workshop collection {id} is nested deeper than {depth} levels"
            ),
        }
    }
}

struct UnusableDisplay<'a>(&'a [ItemProblem]);

impl fmt::Display for UnusableDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} workshop items cannot be used: ", many.len())?;
                for (i, p) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
        }
    }
}

impl SteamError {
    /// Wraps a reqwest error, removing the URL (it may carry the API key) and telling timeouts apart.
    pub(crate) fn from_reqwest(endpoint: &'static str, err: reqwest::Error) -> Self {
        if err.is_timeout() {
            return SteamError::Timeout { endpoint };
        }
        // reqwest reports resolver failures as connect errors too.
        if err.is_connect() {
            return SteamError::Unreachable {
                endpoint,
                detail: error_chain(&err.without_url()),
            };
        }
        SteamError::Transport {
            endpoint,
            detail: error_chain(&err.without_url()),
        }
    }

    pub(crate) fn status(endpoint: &'static str, status: reqwest::StatusCode) -> Self {
        let meaning = match status.as_u16() {
            400 => "Steam rejected the request as malformed",
            401 | 403 => "Steam refused access; check STEAM_WEB_API_KEY",
            404 => "Steam does not know this endpoint; check the API base URL",
            429 => "rate limited by Steam; try again later",
            500..=599 => "Steam server error; try again later",
            _ => "unexpected HTTP status",
        };
        SteamError::Status {
            endpoint,
            status: status.as_u16(),
            meaning,
        }
    }
}

/// `outer: inner: innermost`, because reqwest's own message ("error sending request") hides the cause.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

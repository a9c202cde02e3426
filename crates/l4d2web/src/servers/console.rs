//! Live console logs: ONE `l4d2ctl logs <name> --lines 200 --follow` child
//! per server while it has viewers, fanned out to every viewer. The child
//! ends when the last viewer leaves, when it exits by itself, or on
//! shutdown.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::fanout::{Fanout, Subscription, TopicId};
use crate::l4d2ctl::{self, HostClient, HostError, Pipe};

/// Lines a newcomer gets from an already running follower (and what the
/// child prints at start).
pub const BACKLOG: usize = 200;
/// Lines a slow viewer may fall behind before it is told it skipped some.
const VIEWER_LAG: usize = 1024;

/// A viewer of one server's console.
pub type ConsoleSubscription = Subscription<String, Arc<str>>;

/// Sees every line a follower reads from server `id`'s console (the live
/// hub derives game events from them).
pub type LineTap = Arc<dyn Fn(i64, &str) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("cannot start l4d2ctl logs for {name}: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
}

/// Every console being followed; cheap to clone.
#[derive(Clone)]
pub struct ConsoleHub {
    viewers: Fanout<String, Arc<str>>,
    host: HostClient,
    tap: Option<LineTap>,
}

impl ConsoleHub {
    pub fn new(host: HostClient) -> Self {
        ConsoleHub {
            viewers: Fanout::new(VIEWER_LAG, BACKLOG),
            host,
            tap: None,
        }
    }

    /// Hands every line of every follower to `tap` too.
    pub fn with_tap(mut self, tap: LineTap) -> Self {
        self.tap = Some(tap);
        self
    }

    /// Number of running followers (one per followed server).
    pub fn followers(&self) -> usize {
        self.viewers.topic_count()
    }

    /// Joins the follower of server `id` named `name`, starting it if
    /// nobody follows yet.
    pub fn subscribe(
        &self,
        id: i64,
        name: &str,
        shutdown: &CancellationToken,
    ) -> Result<ConsoleSubscription, ConsoleError> {
        let sub = self.viewers.subscribe(name.to_string());
        if !sub.first {
            return Ok(sub);
        }
        match self.spawn(name) {
            Ok(child) => {
                tokio::spawn(pump(
                    self.viewers.clone(),
                    Followed {
                        id,
                        name: name.to_string(),
                        tap: self.tap.clone(),
                    },
                    sub.topic,
                    child,
                    shutdown.clone(),
                ));
                Ok(sub)
            }
            Err(e) => {
                // Whoever joined meanwhile is told too.
                self.viewers.close_topic(&name.to_string(), sub.topic, None);
                Err(e)
            }
        }
    }

    fn spawn(&self, name: &str) -> Result<tokio::process::Child, ConsoleError> {
        let mut cmd = self.host.l4d2ctl()?;
        cmd.args(["logs", name, "--lines", &BACKLOG.to_string(), "--follow"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd.spawn().map_err(|source| ConsoleError::Spawn {
            name: name.to_string(),
            source,
        })
    }
}

/// The server a follower reads.
struct Followed {
    id: i64,
    name: String,
    tap: Option<LineTap>,
}

async fn pump(
    viewers: Fanout<String, Arc<str>>,
    followed: Followed,
    topic: TopicId,
    mut child: tokio::process::Child,
    shutdown: CancellationToken,
) {
    let (line_tx, mut line_rx) = tokio::sync::mpsc::channel::<(Pipe, String)>(256);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(l4d2ctl::read_lines(out, Pipe::Stdout, line_tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(l4d2ctl::read_lines(err, Pipe::Stderr, line_tx.clone()));
    }
    drop(line_tx);
    let Followed { id, name, tap } = followed;
    let mut idle_check = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => { viewers.close_topic(&name, topic, None); break; }
            line = line_rx.recv() => match line {
                Some((pipe, text)) => {
                    if let (Some(tap), Pipe::Stdout) = (&tap, pipe) {
                        tap(id, &text);
                    }
                    if !viewers.publish_to(&name, topic, text.into()) {
                        break;
                    }
                }
                None => {
                    // The child closed its output (it exited): viewers end.
                    viewers.close_topic(&name, topic, None);
                    break;
                }
            },
            _ = idle_check.tick() => {
                if !viewers.is_current(&name, topic) {
                    break;
                }
            }
        }
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    tracing::debug!(server = %name, "console follower ended");
}

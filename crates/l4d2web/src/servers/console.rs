//! Live console logs: ONE `l4d2ctl logs <name> --lines 200 --follow` child
//! per server while it has viewers, fanned out to every viewer. The child
//! ends when the last viewer leaves, when it exits by itself, or on
//! shutdown.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
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

/// A level that failed to load, as the game said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapFailure {
    pub map: String,
    /// The game's reason ("not found or invalid").
    pub reason: String,
}

/// What a console line says about the level, in the engine's words
/// (engine/host_cmd.cpp of the Source SDK 2013 engine): `map` warns
/// "map load failed: <map> not found or invalid", `changelevel`
/// "changelevel failed: <map> not found"; a level that loads logs
/// `Started map "<map>" (CRC "…")` (echoed to the console while logging
/// is on, as the panel's server.cfg turns it on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapLine {
    Failed(MapFailure),
    Loaded(String),
}

pub fn map_line(line: &str) -> Option<MapLine> {
    for (prefix, suffix) in [
        ("map load failed: ", " not found or invalid"),
        ("changelevel failed: ", " not found"),
    ] {
        if let Some(at) = line.find(prefix) {
            let rest = line[at + prefix.len()..].trim_end();
            let map = rest.strip_suffix(suffix).unwrap_or(rest);
            if !map.is_empty() {
                return Some(MapLine::Failed(MapFailure {
                    map: map.to_string(),
                    reason: suffix.trim_start().to_string(),
                }));
            }
        }
    }
    let at = line.find("Started map \"")?;
    let rest = &line[at + "Started map \"".len()..];
    let map = &rest[..rest.find('"')?];
    (!map.is_empty()).then(|| MapLine::Loaded(map.to_string()))
}

/// The last level failure of each server, by name, until a level loads.
#[derive(Clone, Default)]
struct MapNotes(Arc<Mutex<HashMap<String, MapFailure>>>);

impl MapNotes {
    fn note(&self, name: &str, text: &str) {
        let Ok(mut notes) = self.0.lock() else { return };
        for line in text.lines() {
            match map_line(line) {
                Some(MapLine::Failed(f)) => {
                    notes.insert(name.to_string(), f);
                }
                Some(MapLine::Loaded(_)) => {
                    notes.remove(name);
                }
                None => {}
            }
        }
    }
}

/// Every console being followed; cheap to clone.
#[derive(Clone)]
pub struct ConsoleHub {
    viewers: Fanout<String, Arc<str>>,
    host: HostClient,
    maps: MapNotes,
    tap: Option<LineTap>,
}

impl ConsoleHub {
    pub fn new(host: HostClient) -> Self {
        ConsoleHub {
            viewers: Fanout::new(VIEWER_LAG, BACKLOG),
            host,
            maps: MapNotes::default(),
            tap: None,
        }
    }

    /// The level of `name` that last failed to load, if no level loaded
    /// since (as its followed console or an RCON answer said).
    pub fn map_failure(&self, name: &str) -> Option<MapFailure> {
        self.maps.0.lock().ok()?.get(name).cloned()
    }

    /// Reads what the game answered to an RCON command for level changes:
    /// the engine sends a command's output to the RCON client only, so a
    /// failed `map` over RCON never reaches the console.
    pub fn note_reply(&self, name: &str, reply: &str) {
        self.maps.note(name, reply);
    }

    /// Forgets what was noted about `name` (it stopped or is gone).
    pub fn forget(&self, name: &str) {
        if let Ok(mut notes) = self.maps.0.lock() {
            notes.remove(name);
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
                        maps: self.maps.clone(),
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
    maps: MapNotes,
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
    let Followed {
        id,
        name,
        maps,
        tap,
    } = followed;
    let mut idle_check = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => { viewers.close_topic(&name, topic, None); break; }
            line = line_rx.recv() => match line {
                Some((pipe, text)) => {
                    maps.note(&name, &text);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_failures_and_loads_in_the_engines_words() {
        let failed = |map: &str, reason: &str| {
            Some(MapLine::Failed(MapFailure {
                map: map.into(),
                reason: reason.into(),
            }))
        };
        assert_eq!(
            map_line("map load failed: c9m9_nothere not found or invalid"),
            failed("c9m9_nothere", "not found or invalid")
        );
        assert_eq!(
            map_line("changelevel failed: c9m9_nothere not found\n"),
            failed("c9m9_nothere", "not found")
        );
        assert_eq!(
            map_line(r#"L 12/01/2026 - 12:00:00: Started map "c1m1_hotel" (CRC "-123")"#),
            Some(MapLine::Loaded("c1m1_hotel".into()))
        );
        assert_eq!(
            map_line("CModelLoader::Map_IsValid:  No such map 'maps/x.bsp'"),
            None
        );
        assert_eq!(map_line("map load failed: "), None);
        assert_eq!(map_line("Started map \"unterminated"), None);

        let notes = MapNotes::default();
        notes.note(
            "a",
            "Console: hi\nmap load failed: c9m9_nothere not found or invalid",
        );
        assert_eq!(notes.0.lock().unwrap()["a"].map, "c9m9_nothere");
        notes.note("b", "Started map \"c1m1_hotel\"");
        assert!(notes.0.lock().unwrap().contains_key("a"), "per server");
        notes.note("a", "Started map \"c1m1_hotel\" (CRC \"1\")");
        assert!(notes.0.lock().unwrap().is_empty());
    }
}

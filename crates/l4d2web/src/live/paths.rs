//! The two paths a server's log lines reach the panel by, the UDP log
//! listener and the server's own console (with `log on` the engine echoes
//! every log line there), de-duplicated, with per-server counters for the
//! server page's health line.
//!
//! De-duplication pairs a line with the same text that came the *other*
//! way within [`PAIR_WINDOW`]: either path may be first (UDP is usually
//! milliseconds ahead; the console passes through a file or the journal and
//! a follower). A line is only ever paired once, so a genuine repeat (the
//! same text twice in one second, e.g. a player saying "gg" twice) arrives
//! twice each way and counts twice.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long a line waits for its twin from the other path.
pub(super) const PAIR_WINDOW: Duration = Duration::from_secs(10);
/// A path that carried a line within this long counts as working.
pub(super) const RECENT: Duration = Duration::from_secs(120);
/// Unpaired lines kept per server (a flood cannot grow the memory).
const MAX_PENDING: usize = 512;

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Udp,
    Console,
}

/// What the server page says about a running server's game events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventHealth {
    /// Log lines arrive over UDP.
    Udp,
    /// Only the console carries them (the UDP log does not arrive).
    Console,
    /// Nothing from either path for this many whole minutes.
    Silent { minutes: u64 },
}

impl EventHealth {
    /// A stable word for tests and styling.
    pub fn key(&self) -> &'static str {
        match self {
            EventHealth::Udp => "udp",
            EventHealth::Console => "console",
            EventHealth::Silent { .. } => "none",
        }
    }

    /// The line as an operator reads it.
    pub fn text(&self) -> String {
        match self {
            EventHealth::Udp => "events via UDP log".into(),
            EventHealth::Console => "events via console (the UDP log is not arriving)".into(),
            EventHealth::Silent { minutes: 0 } => "no events for under a minute".into(),
            EventHealth::Silent { minutes: 1 } => "no events for 1 minute".into(),
            EventHealth::Silent { minutes } => format!("no events for {minutes} minutes"),
        }
    }
}

struct Pending {
    line: String,
    via: Via,
    at: Instant,
}

/// One server's paths.
#[derive(Default)]
struct ServerPaths {
    /// Since when the server is known to run (the first poll since it
    /// started), for "no events for N minutes".
    since: Option<Instant>,
    last_udp: Option<Instant>,
    last_console: Option<Instant>,
    udp_lines: u64,
    console_lines: u64,
    pending: VecDeque<Pending>,
}

/// Every server's paths.
#[derive(Default)]
pub(super) struct Paths {
    servers: HashMap<i64, ServerPaths>,
}

/// Lines counted per path, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathCounts {
    pub udp_lines: u64,
    pub console_lines: u64,
}

impl Paths {
    /// Counts `line` from `via` and says whether it is new (true) or the
    /// twin of one the other path already delivered (false).
    pub(super) fn admit(&mut self, id: i64, line: &str, via: Via, now: Instant) -> bool {
        let s = self.servers.entry(id).or_default();
        match via {
            Via::Udp => {
                s.last_udp = Some(now);
                s.udp_lines += 1;
            }
            Via::Console => {
                s.last_console = Some(now);
                s.console_lines += 1;
            }
        }
        while s
            .pending
            .front()
            .is_some_and(|p| now.saturating_duration_since(p.at) > PAIR_WINDOW)
        {
            s.pending.pop_front();
        }
        let line = line.trim_end();
        if let Some(i) = s
            .pending
            .iter()
            .position(|p| p.via != via && p.line == line)
        {
            s.pending.remove(i);
            return false;
        }
        if s.pending.len() == MAX_PENDING {
            s.pending.pop_front();
        }
        s.pending.push_back(Pending {
            line: line.to_string(),
            via,
            at: now,
        });
        true
    }

    /// The server was polled while running: its silence is counted from now
    /// on if nothing was heard yet.
    pub(super) fn running(&mut self, id: i64, now: Instant) {
        self.servers.entry(id).or_default().since.get_or_insert(now);
    }

    /// The server stopped: a later start counts afresh.
    pub(super) fn stopped(&mut self, id: i64) {
        self.servers.remove(&id);
    }

    pub(super) fn counts(&self, id: i64) -> PathCounts {
        self.servers
            .get(&id)
            .map(|s| PathCounts {
                udp_lines: s.udp_lines,
                console_lines: s.console_lines,
            })
            .unwrap_or_default()
    }

    /// The health line of server `id`.
    pub(super) fn health(&self, id: i64, now: Instant) -> EventHealth {
        let Some(s) = self.servers.get(&id) else {
            return EventHealth::Silent { minutes: 0 };
        };
        let recent =
            |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) <= RECENT);
        if recent(s.last_udp) {
            return EventHealth::Udp;
        }
        if recent(s.last_console) {
            return EventHealth::Console;
        }
        let last = [s.last_udp, s.last_console, s.since]
            .into_iter()
            .flatten()
            .max();
        EventHealth::Silent {
            minutes: last.map_or(0, |t| now.saturating_duration_since(t).as_secs() / 60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"L 12/01/2026 - 12:00:00: "Ellis<5><STEAM_1:0:1><Survivor>" say "gg""#;

    #[test]
    fn a_line_both_ways_counts_once_whichever_comes_first() {
        let t = Instant::now();
        let mut p = Paths::default();
        assert!(p.admit(1, LINE, Via::Udp, t));
        assert!(!p.admit(1, LINE, Via::Console, t + Duration::from_millis(300)));
        assert!(
            p.admit(1, LINE, Via::Console, t + Duration::from_secs(1)),
            "a third copy is a new event"
        );
        assert!(!p.admit(1, LINE, Via::Udp, t + Duration::from_secs(1)));
        assert_eq!(
            p.counts(1),
            PathCounts {
                udp_lines: 2,
                console_lines: 2
            }
        );
        // Other servers are separate.
        assert!(p.admit(2, LINE, Via::Console, t));
    }

    #[test]
    fn a_genuine_repeat_on_one_path_is_kept() {
        let t = Instant::now();
        let mut p = Paths::default();
        assert!(p.admit(1, LINE, Via::Udp, t));
        assert!(p.admit(1, LINE, Via::Udp, t), "said twice in one second");
        assert!(!p.admit(1, LINE, Via::Console, t));
        assert!(!p.admit(1, LINE, Via::Console, t));
        assert!(
            p.admit(1, LINE, Via::Console, t),
            "the console's own third copy"
        );
    }

    #[test]
    fn twins_are_only_paired_within_the_window() {
        let t = Instant::now();
        let mut p = Paths::default();
        assert!(p.admit(1, LINE, Via::Udp, t));
        assert!(p.admit(
            1,
            LINE,
            Via::Console,
            t + PAIR_WINDOW + Duration::from_secs(1)
        ));
        // Trailing whitespace (a console's \r) does not make a line new.
        assert!(!p.admit(
            1,
            &format!("{LINE}\r"),
            Via::Udp,
            t + PAIR_WINDOW + Duration::from_secs(2)
        ));
    }

    #[test]
    fn pending_lines_are_bounded() {
        let t = Instant::now();
        let mut p = Paths::default();
        for i in 0..(MAX_PENDING * 3) {
            assert!(p.admit(1, &format!("{LINE} {i}"), Via::Udp, t));
        }
        assert_eq!(p.servers[&1].pending.len(), MAX_PENDING);
    }

    #[test]
    fn health_prefers_udp_then_console_then_counts_the_silence() {
        let t = Instant::now();
        let mut p = Paths::default();
        p.running(1, t);
        assert_eq!(
            p.health(1, t + Duration::from_secs(30)),
            EventHealth::Silent { minutes: 0 }
        );
        assert_eq!(
            p.health(1, t + Duration::from_secs(190)),
            EventHealth::Silent { minutes: 3 }
        );
        p.admit(1, LINE, Via::Console, t + Duration::from_secs(200));
        assert_eq!(
            p.health(1, t + Duration::from_secs(201)),
            EventHealth::Console
        );
        p.admit(1, LINE, Via::Udp, t + Duration::from_secs(202));
        assert_eq!(p.health(1, t + Duration::from_secs(203)), EventHealth::Udp);
        let later = t + Duration::from_secs(202) + RECENT + Duration::from_secs(60 * 4);
        assert_eq!(p.health(1, later), EventHealth::Silent { minutes: 6 });
        p.stopped(1);
        assert_eq!(p.counts(1), PathCounts::default());
        assert_eq!(
            EventHealth::Silent { minutes: 1 }.text(),
            "no events for 1 minute"
        );
        assert_eq!(
            EventHealth::Silent { minutes: 7 }.text(),
            "no events for 7 minutes"
        );
    }
}

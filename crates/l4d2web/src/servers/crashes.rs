//! Crashes: telling one from a stop, counting them, and the restart policy
//! of the local backend.
//!
//! Under systemd the unit restarts a crashed game itself
//! (`Restart=on-failure`, then `StartLimitBurst` gives up); the panel only
//! notices: `NRestarts` going up is a crash, and the unit left `failed`
//! while it should run is a crash loop (with `Restart=on-failure` a crash
//! leads to `activating (auto-restart)`; only the start limit leaves it
//! failed, and systemd 257 then keeps the crash's own `Result=`, such as
//! `signal`, not `start-limit-hit`). The local backend (demo, development) has no supervisor, so
//! the panel is one: a crash is restarted after a growing pause (1, 2, 4,
//! 8 s) and after [`LOOP_CRASHES`] crashes within [`LOOP_WINDOW`] it gives
//! up and marks the server as in a crash loop, until someone acts on it.
//!
//! [`CrashWatch`] is that policy without I/O; `tasks` feeds it what
//! `l4d2ctl list` observed and carries out its verdicts.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use l4d2_contract::status::InstanceStatus;
use sqlx::SqlitePool;

/// This many crashes within [`LOOP_WINDOW`] are a crash loop.
pub const LOOP_CRASHES: usize = 5;
pub const LOOP_WINDOW: Duration = Duration::from_secs(60);

/// What the local backend reports for a process that ended without `stop`.
const LOCAL_EXIT: &str = "the game process ended without being stopped";

/// What the watch concluded from one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The server crashed (`exit` says how, in an operator's words).
    Crashed { exit: String },
    /// It crashed too often: no more restarts until someone acts.
    CrashLoop { exit: String },
    /// Came back up after the host rebooted.
    Recovered,
}

/// One server's crash history as the panel has seen it.
#[derive(Debug, Default)]
pub struct CrashWatch {
    /// What the last observation showed; None before the first one.
    seen: Option<Seen>,
    /// Local backend: crashes within [`LOOP_WINDOW`].
    recent: VecDeque<Instant>,
    /// Local backend: when the pending restart is due.
    restart_at: Option<Instant>,
    /// Gave up (or systemd did) until the crash loop is cleared.
    given_up: bool,
    /// Expected up again after a host reboot: say so once it is.
    after_reboot: bool,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    up: bool,
    failed: bool,
    restarts: Option<u32>,
}

/// What the supervisor knows about a server besides the host's status.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// Its desired state is running.
    pub should_run: bool,
    /// A job for it is queued or running: that job owns the state.
    pub busy: bool,
    /// The database's crash-loop flag (cleared by any action on it).
    pub crash_loop: bool,
}

impl CrashWatch {
    /// A watch for a server that should come back because the host
    /// rebooted since the panel last ran.
    pub fn after_reboot() -> CrashWatch {
        CrashWatch {
            after_reboot: true,
            ..CrashWatch::default()
        }
    }

    /// Takes in one observation of the server at `now`.
    pub fn observe(&mut self, status: &InstanceStatus, cx: Context, now: Instant) -> Vec<Verdict> {
        let mut out = Vec::new();
        if self.given_up && !cx.crash_loop {
            // Someone acted on it: a fresh start for the policy.
            self.given_up = false;
            self.recent.clear();
        }
        let up = status.is_up();
        if up && self.after_reboot {
            self.after_reboot = false;
            out.push(Verdict::Recovered);
        }
        let seen = self.seen.replace(Seen {
            up,
            failed: status.exists && status.service.active_state == "failed",
            restarts: status.service.restarts,
        });
        let Some(before) = seen else {
            return out; // the first look is the baseline
        };
        if cx.busy {
            // The job decides what the state becomes.
            self.restart_at = None;
        } else if status.backend == "systemd" {
            self.observe_systemd(status, before, cx, &mut out);
        } else if !cx.should_run {
            self.restart_at = None;
        } else if status.exists && status.service.active_state == "failed" && before.up {
            self.local_crash(now, &mut out);
        }
        out
    }

    fn observe_systemd(
        &mut self,
        status: &InstanceStatus,
        before: Seen,
        cx: Context,
        out: &mut Vec<Verdict>,
    ) {
        let exit = systemd_exit(status);
        let restarted = match (before.restarts, status.service.restarts) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => 0,
        };
        for _ in 0..restarted {
            out.push(Verdict::Crashed { exit: exit.clone() });
        }
        let failed = status.exists && status.service.active_state == "failed";
        if failed && !before.failed {
            // The crash systemd did not restart (it counts only restarts).
            out.push(Verdict::Crashed { exit: exit.clone() });
        }
        if failed && cx.should_run && !self.given_up {
            self.given_up = true;
            out.push(Verdict::CrashLoop { exit });
        }
    }

    fn local_crash(&mut self, now: Instant, out: &mut Vec<Verdict>) {
        // A crash is counted once: until the restart is submitted it is
        // not seen up again.
        self.mark_down();
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > LOOP_WINDOW)
        {
            self.recent.pop_front();
        }
        let exit = LOCAL_EXIT.to_string();
        if self.recent.len() >= LOOP_CRASHES {
            self.given_up = true;
            self.restart_at = None;
            out.push(Verdict::Crashed { exit: exit.clone() });
            out.push(Verdict::CrashLoop { exit });
        } else {
            let pause = Duration::from_secs(1 << (self.recent.len() - 1).min(3));
            self.restart_at = Some(now + pause);
            out.push(Verdict::Crashed { exit });
        }
    }

    fn mark_down(&mut self) {
        if let Some(seen) = &mut self.seen {
            seen.up = false;
        }
    }

    /// When the restart the local policy wants is due, if any.
    pub fn restart_due(&self) -> Option<Instant> {
        self.restart_at.filter(|_| !self.given_up)
    }

    /// The restart was submitted: what follows it (up, or failed again)
    /// is judged as a new run.
    pub fn restart_submitted(&mut self) {
        self.restart_at = None;
        if let Some(seen) = &mut self.seen {
            seen.up = true;
        }
    }
}

/// systemd's account of the last exit: "killed by signal 11 (SIGSEGV)",
/// with the unit's result when it adds something.
fn systemd_exit(status: &InstanceStatus) -> String {
    let exit = status.service.last_exit.map(|e| e.describe());
    let result = status
        .service
        .result
        .as_deref()
        .filter(|r| !matches!(*r, "success" | "exit-code" | "signal" | "core-dump"));
    match (exit, result) {
        (Some(e), Some(r)) => format!("{e} ({r})"),
        (Some(e), None) => e,
        (None, Some(r)) => r.to_string(),
        (None, None) => "ended without being stopped".into(),
    }
}

/// Counts one crash of server `id`.
pub async fn record_crash(pool: &SqlitePool, id: i64, exit: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE servers SET crash_count = crash_count + 1, last_exit = ?,
             last_crash_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE id = ?",
    )
    .bind(exit)
    .bind(id)
    .execute(pool)
    .await
    .map(drop)
}

/// Marks server `id` as in a crash loop (cleared by the next action on it).
pub async fn record_crash_loop(pool: &SqlitePool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE servers SET crash_loop = 1 WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use l4d2_contract::status::{ProcessExit, ServiceState};

    fn status(backend: &str, active: &str, restarts: Option<u32>) -> InstanceStatus {
        InstanceStatus {
            name: "a".into(),
            exists: true,
            backend: backend.into(),
            port: Some(27015),
            service: ServiceState {
                active_state: active.into(),
                sub_state: "x".into(),
                restarts,
                ..ServiceState::stopped()
            },
        }
    }

    const RUN: Context = Context {
        should_run: true,
        busy: false,
        crash_loop: false,
    };

    #[test]
    fn local_crashes_restart_with_backoff_then_give_up() {
        let mut w = CrashWatch::default();
        let t0 = Instant::now();
        let up = status("local", "active", None);
        let failed = status("local", "failed", None);
        assert!(w.observe(&up, RUN, t0).is_empty());
        let mut pauses = Vec::new();
        for i in 0..LOOP_CRASHES as u64 {
            let now = t0 + Duration::from_secs(i * 5);
            let v = w.observe(&failed, RUN, now);
            assert!(matches!(v[0], Verdict::Crashed { .. }), "{v:?}");
            // Seen failed again before the restart: no second crash.
            assert!(w.observe(&failed, RUN, now).is_empty());
            if i + 1 < LOOP_CRASHES as u64 {
                let due = w.restart_due().unwrap();
                pauses.push(due.duration_since(now).as_secs());
                // What follows the restart is judged as a new run.
                w.restart_submitted();
            } else {
                assert!(matches!(v[1], Verdict::CrashLoop { .. }), "{v:?}");
                assert_eq!(w.restart_due(), None);
            }
        }
        assert_eq!(pauses, [1, 2, 4, 8]);
    }

    #[test]
    fn local_crash_loop_needs_five_crashes_within_a_minute() {
        let mut w = CrashWatch::default();
        let t0 = Instant::now();
        let up = status("local", "active", None);
        let failed = status("local", "failed", None);
        w.observe(&up, RUN, t0);
        // Crashes 30 s apart: never five within 60 s.
        for i in 1..=8u64 {
            let v = w.observe(&failed, RUN, t0 + Duration::from_secs(i * 30));
            assert_eq!(v.len(), 1, "crash {i}: {v:?}");
            w.restart_submitted();
        }
        assert!(w.restart_due().is_none());
    }

    #[test]
    fn local_stops_and_busy_servers_are_not_crashes() {
        let mut w = CrashWatch::default();
        let t = Instant::now();
        w.observe(&status("local", "active", None), RUN, t);
        let busy = Context { busy: true, ..RUN };
        assert!(w
            .observe(&status("local", "failed", None), busy, t)
            .is_empty());
        let stopped = Context {
            should_run: false,
            ..RUN
        };
        let mut w = CrashWatch::default();
        w.observe(&status("local", "active", None), RUN, t);
        assert!(w
            .observe(&status("local", "inactive", None), stopped, t)
            .is_empty());
        assert!(w
            .observe(&status("local", "failed", None), stopped, t)
            .is_empty());
        // Failed at the first look (the panel just started): converge owns it.
        let mut w = CrashWatch::default();
        assert!(w
            .observe(&status("local", "failed", None), RUN, t)
            .is_empty());
        assert!(w
            .observe(&status("local", "failed", None), RUN, t)
            .is_empty());
    }

    #[test]
    fn cleared_crash_loop_restarts_the_policy() {
        let mut w = CrashWatch::default();
        let t0 = Instant::now();
        w.observe(&status("local", "active", None), RUN, t0);
        for i in 0..LOOP_CRASHES {
            w.observe(&status("local", "failed", None), RUN, t0);
            if i + 1 < LOOP_CRASHES {
                w.restart_submitted();
            }
        }
        assert!(w.restart_due().is_none());
        let flagged = Context {
            crash_loop: true,
            ..RUN
        };
        assert!(w
            .observe(&status("local", "failed", None), flagged, t0)
            .is_empty());
        // The owner starts it again: the flag is cleared, it runs.
        w.observe(&status("local", "active", None), RUN, t0);
        let v = w.observe(&status("local", "failed", None), RUN, t0);
        assert_eq!(v.len(), 1);
        assert!(w.restart_due().is_some());
    }

    #[test]
    fn systemd_restarts_are_crashes_and_the_start_limit_a_loop() {
        let mut w = CrashWatch::default();
        let t = Instant::now();
        assert!(w
            .observe(&status("systemd", "active", Some(0)), RUN, t)
            .is_empty());
        let mut s = status("systemd", "active", Some(2));
        s.service.last_exit = Some(ProcessExit::Killed(11));
        let v = w.observe(&s, RUN, t);
        assert_eq!(
            v,
            vec![
                Verdict::Crashed {
                    exit: "killed by signal 11 (SIGSEGV)".into()
                };
                2
            ]
        );
        // The start limit: failed, with the crash's own result (systemd 257).
        let mut s = status("systemd", "failed", Some(2));
        s.service.result = Some("signal".into());
        s.service.last_exit = Some(ProcessExit::Killed(11));
        let exit = "killed by signal 11 (SIGSEGV)".to_string();
        assert_eq!(
            w.observe(&s, RUN, t),
            vec![
                Verdict::Crashed { exit: exit.clone() },
                Verdict::CrashLoop { exit }
            ]
        );
        // Said once (the panel has recorded it by the next look).
        let flagged = Context {
            crash_loop: true,
            ..RUN
        };
        assert!(w.observe(&s, flagged, t).is_empty());
        // The owner starts it again: while that job runs nothing is said.
        let busy = Context { busy: true, ..RUN };
        assert!(w.observe(&s, busy, t).is_empty());
        // systemd restarts by itself: the panel never schedules one.
        assert_eq!(w.restart_due(), None);
    }

    #[test]
    fn systemd_failures_and_counters_that_reset() {
        let mut w = CrashWatch::default();
        let t = Instant::now();
        w.observe(&status("systemd", "active", Some(3)), RUN, t);
        // A stop that timed out and was killed: failed, but not meant to run.
        let stopping = Context {
            should_run: false,
            ..RUN
        };
        let mut s = status("systemd", "failed", Some(3));
        s.service.result = Some("timeout".into());
        s.service.last_exit = Some(ProcessExit::Killed(9));
        let exit = "killed by signal 9 (SIGKILL) (timeout)".to_string();
        assert_eq!(
            w.observe(&s, stopping, t),
            vec![Verdict::Crashed { exit: exit.clone() }]
        );
        // Failed already at the panel's first look: a loop, not a new crash.
        let mut fresh = CrashWatch::default();
        assert!(fresh.observe(&s, RUN, t).is_empty());
        assert_eq!(fresh.observe(&s, RUN, t), vec![Verdict::CrashLoop { exit }]);
        // A manual start resets NRestarts: not a crash.
        assert!(w
            .observe(&status("systemd", "active", Some(0)), RUN, t)
            .is_empty());
    }

    #[test]
    fn recovery_after_reboot_is_said_once_it_is_up() {
        let mut w = CrashWatch::after_reboot();
        let t = Instant::now();
        assert!(w
            .observe(&status("systemd", "inactive", Some(0)), RUN, t)
            .is_empty());
        assert_eq!(
            w.observe(&status("systemd", "active", Some(0)), RUN, t),
            vec![Verdict::Recovered]
        );
        assert!(w
            .observe(&status("systemd", "active", Some(0)), RUN, t)
            .is_empty());
    }
}

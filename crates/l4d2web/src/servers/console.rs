//! Live console logs: ONE `l4d2ctl logs <name> --lines 200 --follow` child
//! per server while it has viewers, fanned out to every viewer through a
//! broadcast channel. The child ends when the last viewer leaves, when it
//! exits by itself, or on shutdown.

use std::collections::{HashMap, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::jobs::Jobs;

/// Lines a newcomer gets from an already running follower (and what the
/// child prints at start).
pub const BACKLOG: usize = 200;

/// Shared by all requests of one router (an axum `Extension`).
#[derive(Default)]
pub struct ConsoleHub {
    followers: Mutex<HashMap<String, Arc<Follower>>>,
}

struct Follower {
    tx: broadcast::Sender<Arc<str>>,
    /// The last lines, so a late viewer sees what the first one saw.
    backlog: Mutex<VecDeque<Arc<str>>>,
}

/// A viewer's subscription: the backlog at subscribe time, then live lines.
/// The receiver closes when the follower ends.
pub struct Subscription {
    pub backlog: Vec<Arc<str>>,
    pub rx: broadcast::Receiver<Arc<str>>,
}

impl ConsoleHub {
    /// Number of running followers (one per followed server).
    pub fn followers(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Follower>>> {
        self.followers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the follower of `name`, starting it if nobody follows yet.
    pub fn subscribe(
        self: &Arc<Self>,
        jobs: &Jobs,
        name: &str,
        shutdown: &CancellationToken,
    ) -> Result<Subscription, String> {
        let mut map = self.lock();
        if let Some(f) = map.get(name) {
            // Backlog snapshot and subscription under the backlog lock: the
            // pump pushes and sends under the same lock, so nothing is lost
            // or doubled in between.
            let backlog = f.backlog.lock().unwrap_or_else(|p| p.into_inner());
            return Ok(Subscription {
                backlog: backlog.iter().cloned().collect(),
                rx: f.tx.subscribe(),
            });
        }
        let mut cmd = jobs.l4d2ctl_command().map_err(|e| e.to_string())?;
        cmd.args(["logs", name, "--lines", &BACKLOG.to_string(), "--follow"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: prctl only sets this child's parent-death signal, so the
        // follower dies with left4me even after a kill -9.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start l4d2ctl logs: {e}"))?;
        let (tx, rx) = broadcast::channel(1024);
        let follower = Arc::new(Follower {
            tx,
            backlog: Mutex::new(VecDeque::with_capacity(BACKLOG)),
        });
        map.insert(name.to_string(), follower.clone());
        drop(map);
        tokio::spawn(pump(
            self.clone(),
            name.to_string(),
            follower,
            child,
            shutdown.clone(),
        ));
        Ok(Subscription {
            backlog: Vec::new(),
            rx,
        })
    }

    /// Removes `name`'s follower if it is `f` and (unless `force`) nobody
    /// listens; returns whether it was removed.
    fn retire(&self, name: &str, f: &Arc<Follower>, force: bool) -> bool {
        let mut map = self.lock();
        let mine = map.get(name).is_some_and(|cur| Arc::ptr_eq(cur, f));
        if mine && (force || f.tx.receiver_count() == 0) {
            map.remove(name);
            return true;
        }
        !mine
    }
}

async fn pump(
    hub: Arc<ConsoleHub>,
    name: String,
    f: Arc<Follower>,
    mut child: tokio::process::Child,
    shutdown: CancellationToken,
) {
    let (line_tx, mut line_rx) = tokio::sync::mpsc::channel::<(&'static str, String)>(256);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(crate::jobs::pump_lines(out, "stdout", line_tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(crate::jobs::pump_lines(err, "stderr", line_tx.clone()));
    }
    drop(line_tx);
    let mut idle_check = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => { hub.retire(&name, &f, true); break; }
            line = line_rx.recv() => match line {
                Some((_, text)) => {
                    let text: Arc<str> = text.into();
                    let mut backlog = f.backlog.lock().unwrap_or_else(|p| p.into_inner());
                    if backlog.len() == BACKLOG { backlog.pop_front(); }
                    backlog.push_back(text.clone());
                    let _ = f.tx.send(text);
                }
                None => {
                    // The child closed its output (it exited): followers end.
                    hub.retire(&name, &f, true);
                    break;
                }
            },
            _ = idle_check.tick() => {
                if f.tx.receiver_count() == 0 && hub.retire(&name, &f, false) {
                    break;
                }
            }
        }
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    tracing::debug!(server = %name, "console follower ended");
}

//! One hour of resource history per server and for the host, in memory:
//! CPU % and memory from the supervisor's `l4d2ctl list` (every 2 s locally,
//! 10 s under systemd), FPS from the live poller's RCON `stats` (only while
//! someone watches the server's page). Nothing here asks the host itself;
//! it keeps what the running loops already fetch.
//!
//! A server's history is dropped when it stops and when it is deleted.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::host_usage::{CpuTimes, MemInfo};

/// How far back the history reaches.
pub const WINDOW: Duration = Duration::from_secs(3600);
/// At most this many samples per series (one hour at the local
/// supervisor's 2 s), whatever feeds it.
pub const MAX_SAMPLES: usize = 1800;

/// A bounded, time-windowed series of samples.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    samples: VecDeque<(Instant, f64)>,
}

impl Ring {
    pub fn push(&mut self, at: Instant, value: f64) {
        if !value.is_finite() {
            return;
        }
        // Samples arrive in order; one from the past (a clock oddity)
        // would fold the line back on itself.
        if self.samples.back().is_some_and(|(last, _)| at < *last) {
            return;
        }
        self.samples.push_back((at, value));
        while self.samples.len() > MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.prune(at);
    }

    fn prune(&mut self, now: Instant) {
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > WINDOW)
        {
            self.samples.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples within the window before `now`, as seconds before `now`
    /// and value, oldest first.
    pub fn series(&self, now: Instant) -> Series {
        let points: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) <= WINDOW)
            .map(|(t, v)| (now.saturating_duration_since(*t).as_secs_f64(), *v))
            .collect();
        Series::new(points)
    }
}

/// A series ready to draw: points (seconds ago, value), oldest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(points: Vec<(f64, f64)>) -> Series {
        Series { points }
    }

    pub fn current(&self) -> Option<f64> {
        self.points.last().map(|p| p.1)
    }

    pub fn min(&self) -> Option<f64> {
        self.points.iter().map(|p| p.1).reduce(f64::min)
    }

    pub fn max(&self) -> Option<f64> {
        self.points.iter().map(|p| p.1).reduce(f64::max)
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// CPU % from a cumulative CPU-time counter: the CPU time used between two
/// readings over the wall time between them, 100 % being one core.
#[derive(Debug, Clone, Copy, Default)]
struct CpuCounter {
    last: Option<(Instant, u64)>,
}

impl CpuCounter {
    /// The percentage since the previous reading, if there was one. A
    /// counter that went backwards (the server restarted: a new cgroup or
    /// process tree) starts over instead of giving a negative spike.
    fn observe(&mut self, at: Instant, nsec: u64) -> Option<f64> {
        let previous = self.last.replace((at, nsec));
        let (then, before) = previous?;
        let wall = at.checked_duration_since(then)?.as_nanos();
        if wall == 0 || nsec < before {
            return None;
        }
        Some((nsec - before) as f64 / wall as f64 * 100.0)
    }
}

/// One server's history.
#[derive(Debug, Clone, Default)]
struct ServerHistory {
    cpu_counter: CpuCounter,
    cpu: Ring,
    memory: Ring,
    fps: Ring,
}

/// What the server page draws.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerResources {
    /// Percent of one core.
    pub cpu: Series,
    /// Bytes.
    pub memory: Series,
    /// Server frames per second (from the game's `stats`).
    pub fps: Series,
}

/// The host's history and its last figures.
#[derive(Debug, Default)]
struct HostHistory {
    cpu_last: Option<CpuTimes>,
    cpu: Ring,
    memory: Ring,
    memory_total: Option<u64>,
}

/// What the dashboard draws about the host.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostResources {
    /// Percent of all cores together.
    pub cpu: Series,
    /// Bytes in use (total less available).
    pub memory: Series,
    pub memory_total: Option<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    servers: HashMap<i64, ServerHistory>,
    host: HostHistory,
}

/// The history of every server and the host; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    inner: Arc<Mutex<Inner>>,
}

impl Resources {
    pub fn new() -> Resources {
        Resources::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves the data consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A reading of a running server's CPU time (ns since it started) and
    /// memory, as `l4d2ctl list` gave it.
    pub fn record_usage(
        &self,
        server: i64,
        at: Instant,
        cpu_nsec: Option<u64>,
        memory: Option<u64>,
    ) {
        let mut inner = self.lock();
        let h = inner.servers.entry(server).or_default();
        if let Some(nsec) = cpu_nsec {
            if let Some(percent) = h.cpu_counter.observe(at, nsec) {
                h.cpu.push(at, percent);
            }
        }
        if let Some(bytes) = memory {
            h.memory.push(at, bytes as f64);
        }
    }

    /// The frame rate the game reported.
    pub fn record_fps(&self, server: i64, at: Instant, fps: f64) {
        self.lock()
            .servers
            .entry(server)
            .or_default()
            .fps
            .push(at, fps);
    }

    /// Drops a server's history (it stopped, or it is gone).
    pub fn forget(&self, server: i64) {
        self.lock().servers.remove(&server);
    }

    /// Keeps only the servers `keep` says exist.
    pub fn retain(&self, keep: impl Fn(i64) -> bool) {
        self.lock().servers.retain(|id, _| keep(*id));
    }

    pub fn server(&self, server: i64, now: Instant) -> ServerResources {
        let inner = self.lock();
        match inner.servers.get(&server) {
            None => ServerResources::default(),
            Some(h) => ServerResources {
                cpu: h.cpu.series(now),
                memory: h.memory.series(now),
                fps: h.fps.series(now),
            },
        }
    }

    /// One look at the host (from `/proc/stat` and `/proc/meminfo`).
    pub fn record_host(&self, at: Instant, cpu: Option<CpuTimes>, memory: Option<MemInfo>) {
        let mut inner = self.lock();
        let host = &mut inner.host;
        if let Some(now) = cpu {
            if let Some(percent) = host
                .cpu_last
                .and_then(|before| now.busy_percent_since(&before))
            {
                host.cpu.push(at, percent);
            }
            host.cpu_last = Some(now);
        }
        if let Some(m) = memory {
            host.memory.push(at, m.used() as f64);
            host.memory_total = Some(m.total);
        }
    }

    pub fn host(&self, now: Instant) -> HostResources {
        let inner = self.lock();
        HostResources {
            cpu: inner.host.cpu.series(now),
            memory: inner.host.memory.series(now),
            memory_total: inner.host.memory_total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn ring_is_bounded_by_count_and_time() {
        let t0 = Instant::now();
        let mut r = Ring::default();
        for i in 0..(MAX_SAMPLES as u32 + 500) {
            r.push(t0 + SEC * i, f64::from(i));
        }
        assert_eq!(r.len(), MAX_SAMPLES);
        let mut r = Ring::default();
        for i in 0..400u32 {
            r.push(t0 + SEC * 10 * i, 1.0);
        }
        // 400 samples 10 s apart span 66 min: only the last hour is kept.
        assert_eq!(r.len(), 361);
        let s = r.series(t0 + SEC * 3990);
        assert!(s.points.iter().all(|(ago, _)| *ago <= 3600.0), "{s:?}");
        // Non-finite values and samples from the past are refused.
        r.push(t0 + SEC * 5000, f64::NAN);
        r.push(t0, 5.0);
        assert_eq!(r.len(), 361);
    }

    #[test]
    fn cpu_percent_from_counter_deltas() {
        let t0 = Instant::now();
        let res = Resources::new();
        res.record_usage(1, t0, Some(1_000_000_000), Some(100));
        // The first reading has no interval yet: memory only.
        let s = res.server(1, t0);
        assert!(s.cpu.is_empty());
        assert_eq!(s.memory.current(), Some(100.0));
        // 0.5 s of CPU over 2 s of wall time: 25 % of one core.
        res.record_usage(1, t0 + SEC * 2, Some(1_500_000_000), Some(200));
        // Two cores busy for 2 s: 200 %.
        res.record_usage(1, t0 + SEC * 4, Some(5_500_000_000), None);
        let s = res.server(1, t0 + SEC * 4);
        let values: Vec<f64> = s.cpu.points.iter().map(|p| p.1).collect();
        assert_eq!(values.len(), 2);
        assert!((values[0] - 25.0).abs() < 1e-9, "{values:?}");
        assert!((values[1] - 200.0).abs() < 1e-9, "{values:?}");
        assert_eq!((s.cpu.min(), s.cpu.max()), (Some(values[0]), Some(200.0)));
        assert_eq!(s.memory.points.len(), 2);
        assert_eq!(s.cpu.points[1].0, 0.0);
        assert_eq!(s.cpu.points[0].0, 2.0);
    }

    #[test]
    fn a_restart_resets_the_counter_without_a_negative_spike() {
        let t0 = Instant::now();
        let res = Resources::new();
        res.record_usage(1, t0, Some(90_000_000_000), None);
        res.record_usage(1, t0 + SEC * 2, Some(91_000_000_000), None);
        // Restarted: a new process tree counts from near zero.
        res.record_usage(1, t0 + SEC * 4, Some(10_000_000), None);
        res.record_usage(1, t0 + SEC * 6, Some(210_000_000), None);
        let s = res.server(1, t0 + SEC * 6);
        let values: Vec<f64> = s.cpu.points.iter().map(|p| p.1).collect();
        assert_eq!(values.len(), 2, "{values:?}");
        assert!(values.iter().all(|v| *v >= 0.0), "{values:?}");
        assert!((values[0] - 50.0).abs() < 1e-9 && (values[1] - 10.0).abs() < 1e-9);
        // Two readings at the same instant give no point either.
        res.record_usage(2, t0, Some(1), None);
        res.record_usage(2, t0, Some(2), None);
        assert!(res.server(2, t0).cpu.is_empty());
    }

    #[test]
    fn forgetting_and_retaining() {
        let t0 = Instant::now();
        let res = Resources::new();
        res.record_fps(1, t0, 29.9);
        res.record_fps(2, t0, 30.0);
        res.record_usage(3, t0, None, Some(5));
        res.forget(1);
        assert!(res.server(1, t0).fps.is_empty());
        res.retain(|id| id == 3);
        assert!(res.server(2, t0).fps.is_empty());
        assert_eq!(res.server(3, t0).memory.current(), Some(5.0));
    }

    #[test]
    fn host_cpu_from_stat_deltas() {
        let t0 = Instant::now();
        let res = Resources::new();
        let times = |busy: u64, idle: u64| CpuTimes {
            busy,
            total: busy + idle,
        };
        res.record_host(
            t0,
            Some(times(100, 900)),
            Some(MemInfo {
                total: 1000,
                available: 250,
            }),
        );
        res.record_host(t0 + SEC, Some(times(150, 950)), None);
        let h = res.host(t0 + SEC);
        assert_eq!(h.cpu.current(), Some(50.0));
        assert_eq!(h.memory.current(), Some(750.0));
        assert_eq!(h.memory_total, Some(1000));
    }
}

//! The `stats` console command: one header line and one line of values,
//! in the engine's layout. Real Source servers answer (as recorded by
//! HLstatsX:CE's server tracker, serveme's `ServerMetric` and rubycon's
//! README, from TF2 and CS:S servers on the same engine branch as L4D2):
//!
//! ```text
//! CPU    In (KB/s)  Out (KB/s)  Uptime  Map changes  FPS      Players  Connects
//! 24.88  35.29      54.48       6       2            66.67    9        12
//! ```
//!
//! The column widths match a `%-6.2f %-10.2f %-11.2f %-7i %-12i %-8.2f
//! %-8i %-8i` row. Uptime is in minutes; Players counts human clients.
//!
//! Simplified: CPU is this process's own CPU time over its uptime (the
//! engine averages recent frames), the traffic is a per-player estimate, and
//! FPS is the tick rate less a little jitter (a real server's frame rate
//! follows `-tickrate`/`fps_max` and the host's timer).

use std::fmt::Write as _;

use crate::server::Server;
use crate::state::State;

/// L4D2's tick rate without `-tickrate`.
const DEFAULT_TICKRATE: u32 = 30;

pub const HEADER: &str =
    "CPU    In (KB/s)  Out (KB/s)  Uptime  Map changes  FPS      Players  Connects";

/// The values row of `stats`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub cpu_percent: f64,
    pub in_kbps: f64,
    pub out_kbps: f64,
    pub uptime_minutes: u64,
    pub map_changes: u32,
    pub fps: f64,
    pub players: u32,
    pub connects: u32,
}

/// The command's whole answer.
pub fn format(stats: &Stats) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{HEADER}");
    let _ = writeln!(
        out,
        "{:<6.2} {:<10.2} {:<11.2} {:<7} {:<12} {:<8.2} {:<8} {:<8}",
        stats.cpu_percent,
        stats.in_kbps,
        stats.out_kbps,
        stats.uptime_minutes,
        stats.map_changes,
        stats.fps,
        stats.players,
        stats.connects
    );
    out
}

/// This process's user + system CPU time, in seconds.
fn own_cpu_seconds() -> Option<f64> {
    // SAFETY: getrusage writes only into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(secs(usage.ru_utime) + secs(usage.ru_stime))
}

impl Server {
    /// `stats`, measured now.
    pub(crate) fn stats(&self, st: &mut State) -> String {
        let uptime = self.started.elapsed();
        let humans = u32::try_from(
            st.players
                .iter()
                .filter(|p| !p.steam_id.eq_ignore_ascii_case("BOT"))
                .count(),
        )
        .unwrap_or(u32::MAX);
        let cpu_percent = match own_cpu_seconds() {
            Some(cpu) if uptime.as_secs_f64() > 0.0 => {
                (cpu / uptime.as_secs_f64() * 100.0).clamp(0.0, 100.0)
            }
            _ => 0.0,
        };
        let tickrate = self.args.tickrate.unwrap_or(DEFAULT_TICKRATE).max(1);
        // A frame now and then runs late: up to 3 % under the tick rate.
        let jitter = st.rng.range(0, 300) as f64 / 10_000.0;
        let fps = f64::from(tickrate) * (1.0 - jitter);
        let per_player = |lo: u64, hi: u64, rng: &mut crate::rng::Rng| {
            (0..humans)
                .map(|_| rng.range(lo, hi) as f64 / 100.0)
                .sum::<f64>()
        };
        let in_kbps = per_player(150, 350, &mut st.rng);
        let out_kbps = per_player(600, 1200, &mut st.rng);
        format(&Stats {
            cpu_percent,
            in_kbps,
            out_kbps,
            uptime_minutes: uptime.as_secs() / 60,
            map_changes: st.map_changes,
            fps,
            players: humans,
            connects: st.connects,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_engine_layout() {
        // The recorded real answer, re-printed from its values.
        let text = format(&Stats {
            cpu_percent: 24.88,
            in_kbps: 35.29,
            out_kbps: 54.48,
            uptime_minutes: 6,
            map_changes: 2,
            fps: 66.67,
            players: 9,
            connects: 12,
        });
        assert_eq!(
            text,
            "CPU    In (KB/s)  Out (KB/s)  Uptime  Map changes  FPS      Players  Connects\n\
             24.88  35.29      54.48       6       2            66.67    9        12      \n"
        );
    }
}

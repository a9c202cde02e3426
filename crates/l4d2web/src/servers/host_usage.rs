//! The host's own CPU, memory and disk, for the dashboard: `/proc/stat`,
//! `/proc/meminfo` and `statvfs` of the data root. All three work in the
//! hardened web unit (`ProtectProc=invisible` hides other users'
//! processes, not these files; `statfs` is in `@system-service`).
//! Servers' own figures never come from here: they come through `l4d2ctl`.

use std::path::Path;

/// The aggregate `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Ticks spent on anything but idle and iowait.
    pub busy: u64,
    pub total: u64,
}

impl CpuTimes {
    /// Busy share of all cores between `before` and now, in percent.
    /// None if no time passed or the counters went backwards.
    pub fn busy_percent_since(&self, before: &CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(before.total)?;
        let busy = self.busy.checked_sub(before.busy)?;
        if total == 0 || busy > total {
            return None;
        }
        Some(busy as f64 / total as f64 * 100.0)
    }
}

/// Parses the first (`cpu `) line of `/proc/stat`: user nice system idle
/// iowait irq softirq steal (guest time is already counted in user).
pub fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    if values.len() < 4 {
        return None;
    }
    let total = values.iter().try_fold(0u64, |a, v| a.checked_add(*v))?;
    let idle = values[3].checked_add(values.get(4).copied().unwrap_or(0))?;
    Some(CpuTimes {
        busy: total.checked_sub(idle)?,
        total,
    })
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    pub total: u64,
    pub available: u64,
}

impl MemInfo {
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.available)
    }
}

pub fn parse_meminfo(text: &str) -> Option<MemInfo> {
    let field = |name: &str| -> Option<u64> {
        let rest = text.lines().find_map(|l| l.strip_prefix(name))?;
        let mut parts = rest.split_whitespace();
        let kb: u64 = parts.next()?.parse().ok()?;
        (parts.next()? == "kB").then_some(())?;
        kb.checked_mul(1024)
    };
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?;
    (available <= total).then_some(MemInfo { total, available })
}

pub fn read_cpu() -> Option<CpuTimes> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

pub fn read_memory() -> Option<MemInfo> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// Free (for an unprivileged user) and total bytes of a filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    pub free: u64,
    pub total: u64,
}

pub fn disk_space(path: &Path) -> Result<DiskSpace, std::io::Error> {
    let st = rustix::fs::statvfs(path)?;
    Ok(DiskSpace {
        free: st.f_bavail.saturating_mul(st.f_frsize),
        total: st.f_blocks.saturating_mul(st.f_frsize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat() {
        let text = "cpu  100 5 45 800 50 0 0 0 0 0\ncpu0 50 2 20 400 25 0 0 0 0 0\nintr 1 2\n";
        let t = parse_proc_stat(text).unwrap();
        assert_eq!(
            t,
            CpuTimes {
                busy: 150,
                total: 1000
            }
        );
        let later = CpuTimes {
            busy: 200,
            total: 1100,
        };
        assert_eq!(later.busy_percent_since(&t), Some(50.0));
        assert_eq!(t.busy_percent_since(&later), None, "counters went back");
        assert_eq!(t.busy_percent_since(&t), None, "no time passed");
        for bad in [
            "",
            "cpu0 1 2 3 4\n",
            "cpu  1 2\n",
            "cpu  a b c d e\n",
            "cpu  18446744073709551615 18446744073709551615 1 1\n",
        ] {
            assert_eq!(parse_proc_stat(bad), None, "{bad:?}");
        }
        assert!(read_cpu().is_some(), "this host's /proc/stat");
    }

    #[test]
    fn meminfo() {
        let text = "MemTotal:       16000000 kB\nMemFree:   100 kB\nMemAvailable:    4000000 kB\n";
        let m = parse_meminfo(text).unwrap();
        assert_eq!(m.total, 16_000_000 * 1024);
        assert_eq!(m.used(), 12_000_000 * 1024);
        for bad in [
            "",
            "MemTotal: 10 kB\n",
            "MemTotal: 10 kB\nMemAvailable: 20 kB\n",
            "MemTotal: x kB\nMemAvailable: 1 kB\n",
            "MemTotal: 10 MB\nMemAvailable: 1 MB\n",
        ] {
            assert_eq!(parse_meminfo(bad), None, "{bad:?}");
        }
        assert!(read_memory().is_some(), "this host's /proc/meminfo");
    }

    #[test]
    fn disk() {
        let d = disk_space(Path::new("/")).unwrap();
        assert!(d.total > 0 && d.free <= d.total, "{d:?}");
        assert!(disk_space(Path::new("/no/such/dir")).is_err());
    }
}

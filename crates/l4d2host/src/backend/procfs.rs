//! What `/proc` says about a process: identity, and the CPU time and memory
//! of a locally run game's whole process tree. Every parser takes the text a
//! process can influence (its command name) and returns None on anything
//! unexpected, never panics.

use std::collections::HashMap;

/// The fields of `/proc/<pid>/stat` the backend uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub state: char,
    /// The session id (field 6): the locally run game leads its own.
    pub session: i32,
    /// utime + stime + cutime + cstime, in clock ticks: this process's CPU
    /// time and that of the children it has reaped.
    pub cpu_ticks: u64,
    /// When the process started, in clock ticks since boot (field 22).
    pub start_time: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may contain spaces
/// and parentheses, so fields are counted after the last ')'.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field N is fields[N - 3].
    let field = |n: usize| fields.get(n - 3).copied();
    let state = field(3)?.chars().next()?;
    let session = field(6)?.parse().ok()?;
    let mut cpu_ticks: u64 = 0;
    for n in 14..=17 {
        // cutime/cstime are signed in the kernel's format; never below 0.
        let ticks: i64 = field(n)?.parse().ok()?;
        cpu_ticks = cpu_ticks.checked_add(u64::try_from(ticks.max(0)).ok()?)?;
    }
    let start_time = field(22)?.parse().ok()?;
    Some(ProcStat {
        state,
        session,
        cpu_ticks,
        start_time,
    })
}

pub(crate) fn read_stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `VmRSS` of `/proc/<pid>/status`, in bytes (the kernel prints kB).
/// None when absent (a kernel thread, a zombie) or malformed.
pub(crate) fn parse_vm_rss(status: &str) -> Option<u64> {
    let value = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let mut parts = value.split_whitespace();
    let kb: u64 = parts.next()?.parse().ok()?;
    if parts.next()? != "kB" {
        return None;
    }
    kb.checked_mul(1024)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), None if unknown.
fn clock_ticks_per_second() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0)
}

/// CPU time and memory of a process tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TreeUsage {
    pub cpu_usage_nsec: Option<u64>,
    pub memory_bytes: Option<u64>,
}

/// Every live process's session, CPU time and memory, read once for all
/// instances (a list of 40 local servers walks `/proc` once, not 40 times).
#[derive(Debug, Default)]
pub(crate) struct ProcessTable {
    /// Session id → (CPU ticks, resident bytes) summed over its processes.
    sessions: HashMap<i32, (u64, Option<u64>)>,
    ticks_per_second: Option<u64>,
}

impl ProcessTable {
    /// Reads `/proc`; processes that vanish meanwhile are skipped.
    pub(crate) fn read() -> ProcessTable {
        let mut table = ProcessTable {
            sessions: HashMap::new(),
            ticks_per_second: clock_ticks_per_second(),
        };
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return table;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let Some(stat) = read_stat(pid) else {
                continue;
            };
            if stat.state == 'Z' || stat.state == 'X' || stat.session <= 0 {
                continue;
            }
            let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| parse_vm_rss(&s));
            table.add(stat.session, stat.cpu_ticks, rss);
        }
        table
    }

    fn add(&mut self, session: i32, cpu_ticks: u64, rss: Option<u64>) {
        let entry = self.sessions.entry(session).or_insert((0, None));
        entry.0 = entry.0.saturating_add(cpu_ticks);
        if let Some(rss) = rss {
            entry.1 = Some(entry.1.unwrap_or(0).saturating_add(rss));
        }
    }

    /// The usage of the session `leader` leads (the game, its srcds
    /// processes and whatever they started).
    pub(crate) fn session_usage(&self, leader: i32) -> TreeUsage {
        let Some(&(ticks, rss)) = self.sessions.get(&leader) else {
            return TreeUsage::default();
        };
        TreeUsage {
            cpu_usage_nsec: self.ticks_per_second.and_then(|hz| {
                u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(hz)).ok()
            }),
            memory_bytes: rss,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (srcds_linux) S 4200 4242 4242 0 -1 4194560 1200 0 3 0 150 50 7 3 20 0 12 0 98765 1000000 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn parses_stat_fields() {
        let s = parse_stat(STAT).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.session, 4242);
        assert_eq!(s.cpu_ticks, 150 + 50 + 7 + 3);
        assert_eq!(s.start_time, 98765);
    }

    #[test]
    fn command_names_with_parentheses_and_spaces() {
        let odd = STAT.replace("(srcds_linux)", "(evil) (S 1 1 1 9 9 9)");
        let s = parse_stat(&odd).unwrap();
        assert_eq!((s.session, s.cpu_ticks, s.start_time), (4242, 210, 98765));
    }

    #[test]
    fn garbage_stat_is_none() {
        for bad in [
            "",
            "no parenthesis at all",
            "1 (x)",
            "1 (x) S 1 2",
            "1 (x) S 1 1 notanumber 0 -1 0 0 0 0 0 1 1 1 1 20 0 1 0 5",
            "1 (x) S 1 1 1 0 -1 0 0 0 0 0 18446744073709551616 1 1 1 20 0 1 0 5",
            ")))))",
            "1 (\u{0}) \u{fffd} 1 1 1",
        ] {
            assert_eq!(parse_stat(bad), None, "{bad:?}");
        }
        // A negative child time counts as none, not as a wrap-around.
        let neg = STAT.replace(" 7 3 20 ", " -7 3 20 ");
        assert_eq!(parse_stat(&neg).unwrap().cpu_ticks, 150 + 50 + 3);
    }

    #[test]
    fn own_process_parses() {
        let me = read_stat(std::process::id() as i32).unwrap();
        assert!(me.start_time > 0);
        assert!(read_stat(i32::MAX).is_none());
    }

    #[test]
    fn vm_rss() {
        assert_eq!(
            parse_vm_rss("Name:\tsrcds\nVmPeak:\t 9 kB\nVmRSS:\t  51200 kB\n"),
            Some(51200 * 1024)
        );
        for bad in [
            "",
            "VmRSS:",
            "VmRSS: lots kB",
            "VmRSS: 12 MB",
            "VmRSS: 99999999999999999999 kB",
        ] {
            assert_eq!(parse_vm_rss(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sums_a_session() {
        let mut t = ProcessTable {
            sessions: HashMap::new(),
            ticks_per_second: Some(100),
        };
        t.add(10, 150, Some(1000));
        t.add(10, 50, None);
        t.add(11, 5, Some(7));
        let u = t.session_usage(10);
        assert_eq!(u.cpu_usage_nsec, Some(2_000_000_000));
        assert_eq!(u.memory_bytes, Some(1000));
        assert_eq!(t.session_usage(12), TreeUsage::default());
    }

    /// A child started in its own session, as the local backend starts the
    /// game. (The test runner's own session may be led by a process outside
    /// this pid namespace, which /proc reports as session 0.)
    #[test]
    fn reads_a_session_led_by_a_child() {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("30");
        // SAFETY: setsid(2) only, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::setsid()?;
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        let pid = child.id() as i32;
        // The session id is set in the child before exec; wait for it.
        let mut usage = TreeUsage::default();
        for _ in 0..100 {
            if read_stat(pid).is_some_and(|s| s.session == pid) {
                usage = ProcessTable::read().session_usage(pid);
                if usage.memory_bytes.is_some() {
                    break;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(usage.memory_bytes.unwrap_or(0) > 0, "{usage:?}");
        assert!(usage.cpu_usage_nsec.is_some(), "{usage:?}");
    }
}

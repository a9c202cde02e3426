//! Local wall-clock formatting for HL log lines (`MM/DD/YYYY - HH:MM:SS`).
//! srcds stamps log lines with the host's local time; libc's `localtime_r`
//! gives us that without pulling in a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Broken-down local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// `secs` (Unix time) broken down in local time (UTC if that fails).
fn local_tm(secs: libc::time_t) -> libc::tm {
    // SAFETY: `tm` is plain data; localtime_r writes it and is thread-safe.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        // SAFETY: as above.
        unsafe { libc::gmtime_r(&secs, &mut tm) };
    }
    tm
}

/// C's `asctime` layout in local time, `Sat Sep  6 14:58:05 2025`: how
/// steamcmd prints an app's "last change".
pub fn asctime(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let tm = local_tm(libc::time_t::try_from(unix_secs).unwrap_or(libc::time_t::MAX));
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[tm.tm_wday.clamp(0, 6) as usize],
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        tm.tm_year + 1900
    )
}

/// The current local time (UTC if the conversion fails).
pub fn now() -> LocalTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as libc::time_t)
        .unwrap_or(0);
    let tm = local_tm(secs);
    LocalTime {
        year: tm.tm_year + 1900,
        month: (tm.tm_mon + 1) as u32,
        day: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        minute: tm.tm_min as u32,
        second: tm.tm_sec as u32,
    }
}

impl LocalTime {
    /// `11/22/2025 - 00:35:07`, the HL Log Standard timestamp.
    pub fn log_stamp(&self) -> String {
        format!(
            "{:02}/{:02}/{:04} - {:02}:{:02}:{:02}",
            self.month, self.day, self.year, self.hour, self.minute, self.second
        )
    }

    /// `L1122000.log`-style log file name srcds reports in "Log file started".
    pub fn log_file_name(&self) -> String {
        format!("L{:02}{:02}{:03}.log", self.month, self.day, 0)
    }
}

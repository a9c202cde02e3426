//! Parser for the `stats` console command of a Source dedicated server:
//! a header line and one row of values, e.g.
//!
//! ```text
//! CPU    In (KB/s)  Out (KB/s)  Uptime  Map changes  FPS      Players  Connects
//! 24.88  35.29      54.48       6       2            66.67    9        12
//! ```
//!
//! Over RCON the answer may be followed by log lines (`L 12/01/2026 - …`)
//! when the server echoes its log; the row is the first non-empty line
//! after the header.

use thiserror::Error;

/// Output that is not `stats` output we can read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StatsError {
    #[error("not `stats` output: no header line naming CPU and FPS")]
    NoHeader,
    #[error("`stats` output has no row of values after its header")]
    NoRow,
    #[error("malformed `stats` row {row:?}: {why}")]
    BadRow { row: String, why: &'static str },
}

/// The values of one `stats` answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerStats {
    /// The engine's own CPU estimate, percent.
    pub cpu_percent: f64,
    pub in_kbps: f64,
    pub out_kbps: f64,
    pub uptime_minutes: u64,
    pub map_changes: u64,
    /// Server frames per second (at most the tick rate on L4D2).
    pub fps: f64,
    /// Human clients.
    pub players: u32,
    pub connects: u64,
}

/// The header's columns, in order.
const COLUMNS: usize = 8;
/// Longest row looked at (a real one is under 100 bytes).
const MAX_ROW: usize = 512;

/// Parses the text `stats` printed.
pub fn parse_stats(text: &str) -> Result<ServerStats, StatsError> {
    let mut lines = text.lines();
    lines
        .by_ref()
        .find(|l| {
            let l = l.trim_start();
            l.starts_with("CPU") && l.contains("FPS") && l.contains("Uptime")
        })
        .ok_or(StatsError::NoHeader)?;
    let row = lines
        .find(|l| !l.trim().is_empty())
        .ok_or(StatsError::NoRow)?;
    let bad = |why| StatsError::BadRow {
        row: row.chars().take(80).collect(),
        why,
    };
    if row.len() > MAX_ROW {
        return Err(bad("too long"));
    }
    let fields: Vec<&str> = row.split_whitespace().collect();
    if fields.len() != COLUMNS {
        return Err(bad("expected 8 values"));
    }
    let float = |s: &str| -> Result<f64, StatsError> {
        s.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| bad("not a non-negative number"))
    };
    let int = |s: &str| -> Result<u64, StatsError> {
        s.parse::<u64>()
            .map_err(|_| bad("not a non-negative whole number"))
    };
    Ok(ServerStats {
        cpu_percent: float(fields[0])?,
        in_kbps: float(fields[1])?,
        out_kbps: float(fields[2])?,
        uptime_minutes: int(fields[3])?,
        map_changes: int(fields[4])?,
        fps: float(fields[5])?,
        players: u32::try_from(int(fields[6])?).map_err(|_| bad("player count too large"))?,
        connects: int(fields[7])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = "CPU    In (KB/s)  Out (KB/s)  Uptime  Map changes  FPS      Players  Connects\n24.88  35.29      54.48       6       2            66.67    9        12\n";

    #[test]
    fn parses_a_real_answer() {
        let s = parse_stats(REAL).unwrap();
        assert_eq!(
            s,
            ServerStats {
                cpu_percent: 24.88,
                in_kbps: 35.29,
                out_kbps: 54.48,
                uptime_minutes: 6,
                map_changes: 2,
                fps: 66.67,
                players: 9,
                connects: 12,
            }
        );
    }

    #[test]
    fn tolerates_leading_noise_and_trailing_log_lines() {
        let text = format!(
            "\n{REAL}L 12/01/2026 - 17:00:00: rcon from \"127.0.0.1:5000\": command \"stats\"\n"
        );
        assert_eq!(parse_stats(&text).unwrap().fps, 66.67);
        let indented = REAL.replace("\n24.88", "\n\n   24.88");
        assert_eq!(parse_stats(&indented).unwrap().players, 9);
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(parse_stats(""), Err(StatsError::NoHeader));
        assert_eq!(
            parse_stats("Unknown command \"stats\"\n"),
            Err(StatsError::NoHeader)
        );
        let header = REAL.lines().next().unwrap();
        assert_eq!(parse_stats(header), Err(StatsError::NoRow));
        assert_eq!(
            parse_stats(&format!("{header}\n  \n")),
            Err(StatsError::NoRow)
        );
        for row in [
            "24.88 35.29 54.48 6 2 66.67 9",
            "24.88 35.29 54.48 6 2 66.67 9 12 13",
            "24.88 35.29 54.48 -6 2 66.67 9 12",
            "24.88 35.29 54.48 6 2 NaN 9 12",
            "24.88 35.29 54.48 6 2 inf 9 12",
            "24.88 35.29 54.48 6 2 -1 9 12",
            "x y z 6 2 66.67 9 12",
            "24.88 35.29 54.48 6 2 66.67 99999999999 12",
            "\u{fffd}\u{0} 35.29 54.48 6 2 66.67 9 12",
        ] {
            let err = parse_stats(&format!("{header}\n{row}\n")).unwrap_err();
            assert!(matches!(err, StatsError::BadRow { .. }), "{row:?}: {err:?}");
        }
        let long = format!("{header}\n{}\n", "9 ".repeat(400));
        assert!(matches!(
            parse_stats(&long),
            Err(StatsError::BadRow {
                why: "too long",
                ..
            })
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..2000 {
            let len = (seed % 200) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    // Mostly the characters a row is made of.
                    b"0123456789. \nCPUFS-x"[(seed % 20) as usize]
                })
                .collect();
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_stats(&format!("CPU Uptime FPS\n{text}"));
            let _ = parse_stats(&text);
        }
    }
}

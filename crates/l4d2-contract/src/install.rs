//! `l4d2ctl install`: its exit codes, and steamcmd's progress lines, which
//! it passes through to its output unchanged:
//!
//! ```text
//!  Update state (0x61) downloading, progress: 45.12 (4521234 / 10023412)
//! ```
//!
//! `l4d2ctl` draws them as a progress bar on a terminal; the web app shows
//! them on the install job's page. Both read them with [`parse`], and both
//! measure the rate with a [`RateMeter`], so the two never disagree on what
//! a line means.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// `l4d2ctl install` exits with this when Steam asks for a Steam Guard
/// code: run it again with the code in `LEFT4ME_STEAM_GUARD_CODE`.
pub const EXIT_STEAM_GUARD_CODE_NEEDED: u8 = 3;
/// `l4d2ctl install` exits with this when Steam refused the login (account
/// name or password, a wrong Steam Guard code, too many attempts).
pub const EXIT_STEAM_LOGIN_REFUSED: u8 = 4;
/// Environment variable carrying a Steam Guard code for one install.
pub const STEAM_GUARD_CODE_VAR: &str = "LEFT4ME_STEAM_GUARD_CODE";

/// One progress report of steamcmd's `app_update`.
#[derive(Debug, Clone, PartialEq)]
pub struct InstallProgress {
    /// steamcmd's state flags (`0x61` while downloading).
    pub code: u32,
    /// What it is doing: `downloading`, `verifying install`, `committing`, …
    pub stage: String,
    /// Bytes of this stage done so far.
    pub done: u64,
    /// Bytes this stage covers (0 while steamcmd does not know yet).
    pub total: u64,
}

impl InstallProgress {
    /// Done as a percentage of the total, 0–100. Computed from the byte
    /// counts rather than taken from the line, whose percentage is rounded
    /// and, for an unknown total, meaningless.
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        (self.done.min(self.total) as f64 * 100.0) / self.total as f64
    }
}

/// Stage names are short words; a longer one is not a steamcmd line.
const MAX_STAGE_LEN: usize = 64;

/// Reads one output line; `None` for every line that is not exactly a
/// steamcmd progress line (anything may appear in that output).
pub fn parse(line: &str) -> Option<InstallProgress> {
    let rest = line.trim().strip_prefix("Update state (0x")?;
    let (code, rest) = rest.split_once(") ")?;
    let code = u32::from_str_radix(code, 16).ok()?;
    let (stage, rest) = rest.split_once(", progress: ")?;
    if stage.is_empty()
        || stage.len() > MAX_STAGE_LEN
        || !stage.chars().all(|c| c.is_ascii_alphabetic() || c == ' ')
    {
        return None;
    }
    let (percent, rest) = rest.split_once(" (")?;
    let percent: f64 = percent.parse().ok()?;
    if !(0.0..=100.0).contains(&percent) {
        return None;
    }
    let counts = rest.strip_suffix(')')?;
    let (done, total) = counts.split_once(" / ")?;
    let done: u64 = done.parse().ok()?;
    let total: u64 = total.parse().ok()?;
    if total != 0 && done > total {
        return None;
    }
    Some(InstallProgress {
        code,
        stage: stage.to_owned(),
        done,
        total,
    })
}

/// How far back the rate looks: long enough to smooth steamcmd's bursts,
/// short enough to follow a change of speed.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Bytes per second over the last few seconds of progress reports. A new
/// stage (or a count that went backwards) starts the measurement again,
/// since steamcmd counts each stage from zero.
#[derive(Debug, Default)]
pub struct RateMeter {
    stage: Option<(u32, String)>,
    samples: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes a report seen at `at`; returns the rate, once two reports of
    /// the same stage at different instants exist.
    pub fn observe(&mut self, progress: &InstallProgress, at: Instant) -> Option<f64> {
        let stage = (progress.code, progress.stage.clone());
        let went_back = self
            .samples
            .back()
            .is_some_and(|&(_, done)| progress.done < done);
        if self.stage.as_ref() != Some(&stage) || went_back {
            self.stage = Some(stage);
            self.samples.clear();
        }
        self.samples.push_back((at, progress.done));
        while self.samples.len() > 2
            && self
                .samples
                .front()
                .is_some_and(|&(t, _)| at.saturating_duration_since(t) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        self.rate()
    }

    /// The current rate, if there is one.
    pub fn rate(&self) -> Option<f64> {
        let (&(t0, d0), &(t1, d1)) = (self.samples.front()?, self.samples.back()?);
        let secs = t1.saturating_duration_since(t0).as_secs_f64();
        (secs > 0.0).then(|| (d1.saturating_sub(d0)) as f64 / secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_real_progress_lines() {
        let p = parse(" Update state (0x61) downloading, progress: 45.12 (4521234 / 10023412)")
            .expect("a progress line");
        assert_eq!(p.code, 0x61);
        assert_eq!(p.stage, "downloading");
        assert_eq!((p.done, p.total), (4521234, 10023412));
        assert!((p.percent() - 45.107).abs() < 0.01);
        let p = parse("Update state (0x5) verifying install, progress: 3.21 (123 / 3832)\r")
            .expect("a verifying line");
        assert_eq!(p.stage, "verifying install");
        let p = parse(" Update state (0x3) reconfiguring, progress: 0.00 (0 / 0)").expect("zero");
        assert_eq!(p.percent(), 0.0);
    }

    #[test]
    fn refuses_everything_else() {
        for line in [
            "",
            "Success! App '222860' fully installed.",
            "Update state (0x61) downloading, progress: 45.12",
            "Update state (0xzz) downloading, progress: 45.12 (1 / 2)",
            "Update state (0x61) downloading, progress: 145.12 (1 / 2)",
            "Update state (0x61) downloading, progress: NaN (1 / 2)",
            "Update state (0x61) downloading, progress: 45.12 (3 / 2)",
            "Update state (0x61) downloading, progress: 45.12 (-1 / 2)",
            "Update state (0x61) downloading, progress: 45.12 (1 / 2",
            "Update state (0x61) <script>, progress: 45.12 (1 / 2)",
            "Update state (0x61) , progress: 45.12 (1 / 2)",
            "Update state (0x61) downloading, progress: 45.12 (1 / 99999999999999999999999)",
            "\u{0}\u{ffff}Update state (0x",
        ] {
            assert_eq!(parse(line), None, "{line:?}");
        }
    }

    #[test]
    fn rate_follows_one_stage_and_restarts_on_the_next() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let p = |stage: &str, done| InstallProgress {
            code: 0x61,
            stage: stage.into(),
            done,
            total: 1_000_000,
        };
        let mut m = RateMeter::new();
        assert_eq!(m.observe(&p("downloading", 0), at(0)), None);
        assert_eq!(m.observe(&p("downloading", 2000), at(2)), Some(1000.0));
        // Old samples leave the window.
        m.observe(&p("downloading", 4000), at(11));
        assert_eq!(m.observe(&p("downloading", 24000), at(21)), Some(2000.0));
        // A new stage counts from zero again.
        assert_eq!(m.observe(&p("verifying install", 10), at(22)), None);
        // As does a count going backwards.
        m.observe(&p("verifying install", 500), at(23));
        assert_eq!(m.observe(&p("verifying install", 100), at(24)), None);
        // Two reports at the same instant give no rate.
        let mut m = RateMeter::new();
        m.observe(&p("downloading", 0), at(0));
        assert_eq!(m.observe(&p("downloading", 10), at(0)), None);
    }
}

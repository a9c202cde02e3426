//! `l4d2ctl install` on a terminal: steamcmd's progress lines become one
//! progress bar (stage, bytes, rate) instead of hundreds of lines. Every
//! other line is printed above the bar. Off a terminal (the web app reads
//! the output) the lines pass through unchanged.

use std::io::{self, Write};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use l4d2_contract::install::{self, RateMeter};

/// A line-buffered writer that draws progress lines as a bar.
pub struct TerminalProgress {
    bar: ProgressBar,
    pending: Vec<u8>,
    meter: RateMeter,
}

impl TerminalProgress {
    pub fn new() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
        let style = ProgressStyle::with_template(
            "{msg:>18} [{bar:30}] {decimal_bytes}/{decimal_total_bytes} {prefix}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        Self {
            bar,
            pending: Vec::new(),
            meter: RateMeter::new(),
        }
    }

    fn line(&mut self, raw: &[u8]) {
        let line = String::from_utf8_lossy(raw);
        let line = line.trim_end_matches('\r');
        match install::parse(line) {
            Some(p) => {
                let rate = self.meter.observe(&p, Instant::now());
                self.bar.set_message(p.stage.clone());
                self.bar.set_length(p.total);
                self.bar.set_position(p.done);
                self.bar.set_prefix(match rate {
                    Some(r) => format!("{}/s", indicatif::DecimalBytes(r as u64)),
                    None => String::new(),
                });
            }
            None => self.bar.println(line),
        }
    }
}

impl Write for TerminalProgress {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.line(&line[..line.len() - 1]);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for TerminalProgress {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.line(&rest);
        }
        self.bar.finish_and_clear();
    }
}

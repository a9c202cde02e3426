//! Console logs of the local backend: the last N lines, optionally followed.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

const POLL: Duration = Duration::from_millis(100);

/// Writes the last `lines` lines of `path` to `out`; with `follow`, keeps
/// writing what is appended until the reader goes away. A missing file is
/// an empty log (the server never ran), not an error.
pub fn tail(path: &Path, lines: usize, follow: bool, out: &mut dyn Write) -> std::io::Result<()> {
    let mut file = loop {
        match File::open(path) {
            Ok(f) => break f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && follow => {
                std::thread::sleep(POLL)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    };
    let start = last_lines_offset(&mut file, lines)?;
    file.seek(SeekFrom::Start(start))?;
    let mut pos = start + std::io::copy(&mut file, out)?;
    out.flush()?;
    if !follow {
        return Ok(());
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let len = file.metadata()?.len();
        if len < pos {
            // Truncated or replaced: start over from the beginning.
            file.seek(SeekFrom::Start(0))?;
            pos = 0;
        }
        let n = file.read(&mut buf)?;
        if n == 0 {
            std::thread::sleep(POLL);
            continue;
        }
        out.write_all(&buf[..n])?;
        out.flush()?;
        pos += n as u64;
    }
}

/// Offset where the last `lines` lines begin, scanning backwards in blocks
/// so a large log is not read whole.
fn last_lines_offset(file: &mut File, lines: usize) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    if lines == 0 {
        return Ok(len);
    }
    let mut end = len;
    let mut newlines = 0usize;
    let mut block = vec![0u8; 8192];
    // A trailing newline ends the last line; it does not start a new one.
    let mut skip_trailing = true;
    while end > 0 {
        let size = block.len().min(end as usize);
        let begin = end - size as u64;
        file.seek(SeekFrom::Start(begin))?;
        file.read_exact(&mut block[..size])?;
        for i in (0..size).rev() {
            if block[i] == b'\n' {
                if skip_trailing && begin + i as u64 == len - 1 {
                    continue;
                }
                newlines += 1;
                if newlines == lines {
                    return Ok(begin + i as u64 + 1);
                }
            }
        }
        skip_trailing = false;
        end = begin;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail_of(content: &str, n: usize) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, content).unwrap();
        let mut out = Vec::new();
        tail(&path, n, false, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn last_lines() {
        assert_eq!(tail_of("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail_of("a\nb\nc", 2), "b\nc");
        assert_eq!(tail_of("a\nb\nc\n", 10), "a\nb\nc\n");
        assert_eq!(tail_of("a\nb\nc\n", 0), "");
        assert_eq!(tail_of("", 3), "");
        let big: String = (0..5000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(tail_of(&big, 3), "line 4997\nline 4998\nline 4999\n");
    }

    #[test]
    fn missing_file_is_empty_log() {
        let mut out = Vec::new();
        tail(Path::new("/nonexistent/left4me.log"), 5, false, &mut out).unwrap();
        assert!(out.is_empty());
    }
}

//! `l4d2ctl install`'s progress output: steamcmd's lines unchanged when the
//! output is read by a program (the web app), a progress bar on a terminal.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;

use l4d2_contract::install_progress;
use test_support::DataRoot;

#[test]
fn piped_output_keeps_steamcmds_progress_lines() {
    let root = DataRoot::empty();
    let out = root.l4d2ctl(["install"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let reports: Vec<_> = text.lines().filter_map(install_progress::parse).collect();
    let downloads: Vec<_> = reports
        .iter()
        .filter(|p| p.stage == "downloading")
        .collect();
    // Both passes download, and the large archive reports more than once.
    assert!(downloads.len() > 4, "{text}");
    // Each of the two passes downloads to the end.
    let complete = downloads.iter().filter(|p| p.percent() == 100.0).count();
    assert_eq!(complete, 2, "{text}");
}

/// A pseudo-terminal pair: (controller, terminal side).
fn pty() -> (OwnedFd, OwnedFd) {
    let (mut controller, mut terminal) = (-1, -1);
    // SAFETY: openpty writes two new descriptors we then own.
    let rc = unsafe {
        libc::openpty(
            &mut controller,
            &mut terminal,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both are fresh descriptors owned by nobody else.
    unsafe {
        (
            OwnedFd::from_raw_fd(controller),
            OwnedFd::from_raw_fd(terminal),
        )
    }
}

#[test]
fn a_terminal_gets_a_progress_bar_instead_of_the_lines() {
    let root = DataRoot::empty();
    let (controller, terminal) = pty();
    let mut cmd = root.l4d2ctl_command(["install"]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(terminal.try_clone().expect("dup pty")))
        .stderr(Stdio::piped())
        .env("TERM", "xterm");
    let mut child = cmd.spawn().expect("spawn l4d2ctl");
    // Only the child holds the terminal side now: reading ends with EIO
    // once it exits.
    drop(terminal);
    drop(cmd);
    let mut output = Vec::new();
    let mut file = std::fs::File::from(controller);
    let mut buf = [0u8; 8192];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => output.extend_from_slice(&buf[..n]),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) => panic!("reading the terminal: {e}"),
        }
    }
    let status = child.wait().expect("wait l4d2ctl");
    let text = String::from_utf8_lossy(&output);
    assert!(status.success(), "{text}");
    // Ordinary lines are still printed…
    assert!(
        text.contains("Success! App '222860' fully installed."),
        "{text}"
    );
    assert!(text.contains("l4d2ctl: installation ready at"), "{text}");
    // …progress lines are not: they are drawn as a bar with byte counts.
    assert!(!text.contains("Update state (0x61)"), "{text}");
    assert!(text.contains("downloading ["), "{text}");
    assert!(text.contains(" MB/"), "{text}");
}

//! Checks on the shipped deploy/ tree that need no running systemd.

use std::path::PathBuf;
use std::process::Command;

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

#[test]
fn sudoers_passes_visudo() {
    let visudo = ["/usr/sbin/visudo", "/usr/bin/visudo"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    if !test_support::require(
        visudo.is_some(),
        "visudo not installed (apt-get install sudo)",
    ) {
        return;
    }
    let file = deploy().join("files/etc/sudoers.d/left4me");
    let out = Command::new(visudo.unwrap())
        .arg("-cf")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "visudo -c failed: {out:?}");
    // Exactly the three sudo-reachable helpers, nothing else.
    let text = std::fs::read_to_string(&file).unwrap();
    let granted: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ',' || c == '\\')
        .filter(|w| w.starts_with('/'))
        .collect();
    assert_eq!(
        granted,
        [
            "/usr/local/libexec/left4me/left4me-systemctl",
            "/usr/local/libexec/left4me/left4me-journalctl",
            "/usr/local/libexec/left4me/left4me-script-sandbox"
        ]
    );
}

#[test]
fn install_script_parses_and_refuses_non_root_or_missing_bins() {
    let script = deploy().join("install.sh");
    let out = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(out.status.success(), "bash -n: {out:?}");
    // Missing --bin-dir binaries: refused before anything changes.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(&script)
        .arg("--bin-dir")
        .arg(empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing binary") || err.contains("must run as root"),
        "{err}"
    );
}

//! `l4d2ctl install`'s progress output: steamcmd's lines unchanged when the
//! output is read by a program (the web app), a progress bar on a terminal.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;

use l4d2_contract::install;
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
    let reports: Vec<_> = text.lines().filter_map(install::parse).collect();
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
    assert!(
        text.contains("l4d2ctl: installation ready: newest build 15000001"),
        "{text}"
    );
    // …progress lines are not: they are drawn as a bar with byte counts.
    assert!(!text.contains("Update state (0x61)"), "{text}");
    assert!(text.contains("downloading ["), "{text}");
    assert!(text.contains(" MB/"), "{text}");
}

/// The Steam account the simulated Steam accepts, with Steam Guard.
const USER: &str = "left4me_host";
const PASSWORD: &str = "correct horse: battery staple";
const GUARD: &str = "F7K2Q";

/// A data root whose steamcmd records its arguments (to prove the
/// password is never among them) before running steamcmd-sim, which knows
/// one account with Steam Guard; and the account file for it.
fn account_root(account_file: &str) -> (DataRoot, std::path::PathBuf) {
    let root = DataRoot::empty();
    let script = root.path().join("steam/steamcmd.sh");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    test_support::write_executable(
        &script,
        &format!(
            "#!/bin/sh\necho \"$@\" >> {argv}\nexec {sim} \"$@\"\n",
            argv = root.path().join("argv.log").display(),
            sim = test_support::workspace_bin("steamcmd-sim").display()
        ),
        0o755,
    );
    let file = root.path().join("steam-account");
    std::fs::write(&file, account_file).unwrap();
    (root, file)
}

fn install_as(
    root: &DataRoot,
    file: &std::path::Path,
    env: &[(&str, &str)],
) -> std::process::Output {
    steamcmd_verb_as(root, file, &["install"], env)
}

/// `l4d2ctl <args>` with the account file and the simulated Steam's
/// account.
fn steamcmd_verb_as(
    root: &DataRoot,
    file: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = root.l4d2ctl_command(args);
    cmd.env("LEFT4ME_STEAM_ACCOUNT_FILE", file)
        .env("STEAMCMD_SIM_ACCOUNT", format!("{USER}:{PASSWORD}"))
        .env("STEAMCMD_SIM_GUARD_CODE", GUARD)
        .env_remove("LEFT4ME_STEAM_GUARD_CODE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("spawn l4d2ctl")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Nothing under the data root but the account file itself holds the
/// password, nor did any steamcmd argument list.
fn assert_password_nowhere(root: &DataRoot, file: &std::path::Path) {
    for entry in walk(root.path()) {
        if entry == file || entry.is_dir() {
            continue;
        }
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(PASSWORD),
            "the password is in {}",
            entry.display()
        );
    }
    let tmp = root.path().join("tmp");
    let leftovers: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "left in tmp/: {leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn a_steam_account_with_steam_guard_logs_in_once_with_a_code_then_unattended() {
    let (root, file) = account_root(&format!("{USER}\n{PASSWORD}\n"));
    // First: Steam asks for a code, and says so with its own exit code.
    let out = install_as(&root, &file, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Steam asks for a Steam Guard code for the account left4me_host"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("expired"), "{}", stderr(&out));
    // A wrong code is a refused login.
    let out = install_as(&root, &file, &[("LEFT4ME_STEAM_GUARD_CODE", "AAAAA")]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the Steam Guard code is wrong"),
        "{}",
        stderr(&out)
    );
    // Something that is not a code at all changes nothing.
    let out = install_as(&root, &file, &[("LEFT4ME_STEAM_GUARD_CODE", "12; rm")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("5 letters or digits"),
        "{}",
        stderr(&out)
    );
    assert!(!root.path().join("installation/15000001").exists());
    // The right code installs, and steamcmd keeps the login…
    let out = install_as(&root, &file, &[("LEFT4ME_STEAM_GUARD_CODE", GUARD)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(root
        .path()
        .join("installation/15000001/srcds_run")
        .is_file());
    // …so the next update needs no code.
    let out = install_as(&root, &file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Until that saved login expires: a code is asked for again, and why.
    let out = install_as(&root, &file, &[("STEAMCMD_SIM_LOGIN_EXPIRED", "1")]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("its saved login has expired"),
        "{}",
        stderr(&out)
    );
    assert_password_nowhere(&root, &file);
    let argv = std::fs::read_to_string(root.path().join("argv.log")).unwrap();
    assert!(argv.contains("+runscript"), "{argv}");
    assert!(!argv.contains("anonymous"), "{argv}");
}

#[test]
fn the_update_check_logs_in_as_the_account_and_asks_for_its_steam_guard_code() {
    let (root, file) = account_root(&format!("{USER}\n{PASSWORD}\n"));
    let check =
        |env: &[(&str, &str)]| steamcmd_verb_as(&root, &file, &["check-update", "--json"], env);
    let out = check(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Steam asks for a Steam Guard code for the account left4me_host"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty(), "no answer without a login");
    let out = check(&[("LEFT4ME_STEAM_GUARD_CODE", "AAAAA")]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    // With the code the check answers, and later ones need none.
    for env in [&[("LEFT4ME_STEAM_GUARD_CODE", GUARD)][..], &[]] {
        let out = check(env);
        assert!(out.status.success(), "{}", stderr(&out));
        let answer: l4d2_contract::builds::UpdateCheck =
            serde_json::from_slice(&out.stdout).expect("check-update --json");
        assert_eq!(answer.installed, None, "nothing is installed");
        assert!(answer.update_available(), "{answer:?}");
    }
    assert_password_nowhere(&root, &file);
    let argv = std::fs::read_to_string(root.path().join("argv.log")).unwrap();
    assert!(argv.contains("+app_info_print"), "{argv}");
    assert!(!argv.contains("anonymous"), "{argv}");
}

#[test]
fn a_wrong_password_is_a_refused_login_that_never_shows_the_password() {
    let (root, file) = account_root(&format!("{USER}\nnot the password\n"));
    // What a killed install left behind goes with the next one.
    std::fs::create_dir_all(root.path().join("tmp")).unwrap();
    std::fs::write(root.path().join("tmp/.steamcmd-login-stale"), PASSWORD).unwrap();
    let out = install_as(&root, &file, &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Steam refused the login of the account left4me_host: the account name or password is wrong"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("not the password"));
    assert_password_nowhere(&root, &file);
}

#[test]
fn bad_account_files_are_refused_before_steamcmd_runs() {
    for (content, problem) in [
        ("", "must hold the account name on the first line"),
        (
            "only_a_name\n",
            "must hold the account name on the first line",
        ),
        (
            "bad name!\nsecret-pw\n",
            "may only hold letters, digits and _",
        ),
        ("name\nsecret\"pw\n", "contains a double quote"),
        ("name\nsecret-pw\nthird line\n", "has more than two lines"),
    ] {
        let (root, file) = account_root(content);
        let out = install_as(&root, &file, &[]);
        assert_eq!(out.status.code(), Some(1), "{content:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(problem),
            "{content:?}: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("secret"),
            "{content:?}: {}",
            stderr(&out)
        );
        assert!(
            !root.path().join("argv.log").exists(),
            "steamcmd ran for {content:?}"
        );
    }
    let (root, _) = account_root("");
    let out = install_as(&root, &root.path().join("missing"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot be read"), "{}", stderr(&out));
}

#[test]
fn an_anonymous_download_steam_refuses_says_what_to_do() {
    let root = DataRoot::empty();
    let out = root
        .l4d2ctl_command(["install"])
        .env("STEAMCMD_SIM_ANONYMOUS_REFUSED", "1")
        .env_remove("LEFT4ME_STEAM_ACCOUNT_FILE")
        .output()
        .expect("spawn l4d2ctl");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Steam refused the anonymous download (Invalid platform)")
            && stderr(&out).contains("configure a Steam account"),
        "{}",
        stderr(&out)
    );
}

//! Runs the helper binaries with every accepted and rejected argument form.
//! Accepted forms use `--dry-run` (prints the exact argv, runs nothing);
//! rejected forms must fail with exit 2 and a message, and print nothing on stdout.

use std::process::{Command, Output};

use test_support::{is_root, require, workspace_bin};

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(workspace_bin(bin))
        .args(args)
        // Hostile caller environment: must not influence anything.
        .env("LEFT4ME_ROOT", "/tmp/evil-root")
        .env("PATH", "/tmp/evil-bin")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_rejected(bin: &str, args: &[&str], needle: &str) {
    let out = run(bin, args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{bin} {args:?} should be rejected: {out:?}"
    );
    assert!(
        out.stdout.is_empty(),
        "{bin} {args:?} printed {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains(needle),
        "{bin} {args:?}: stderr {:?} lacks {needle:?}",
        stderr(&out)
    );
}

#[test]
fn systemctl_accepted_forms() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["disable", "srv-1"],
            r#"["/usr/bin/systemctl","disable","--now","left4me-server@srv-1.service"]"#,
        ),
        (
            &["show", "srv-1", "srv-2"],
            r#"{"dbus":"LoadUnit + Properties.Get","properties":"Id,ActiveState,SubState,MainPID,UID,NRestarts,Result,ExecMainCode,ExecMainStatus,CPUUsageNSec,MemoryCurrent,UnitFileState","units":["left4me-server@srv-1.service","left4me-server@srv-2.service"]}"#,
        ),
        (
            &["delete", "srv-1"],
            "[\"/usr/bin/systemctl\",\"disable\",\"--now\",\"left4me-server@srv-1.service\"]\n{\"remove\":\"/etc/systemd/system/left4me-server@srv-1.service.d\"}",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["--dry-run"];
        all.extend_from_slice(args);
        let out = run("left4me-systemctl", &all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out).trim(), expected);
    }
}

#[test]
fn systemctl_enable_writes_the_instance_drop_in_from_its_definition() {
    if !private_host_available() {
        return;
    }
    let bin = workspace_bin("left4me-systemctl");
    let out = in_private_host(
        r#"
        mkdir -p /var/lib/left4me/instances/srv-1
        printf 'L4D2_PORT=27015\nL4D2_ARGS=""\nL4D2_LOWERDIRS="/var/lib/left4me/installation"\n' > /var/lib/left4me/instances/srv-1/instance.env
        exec "$1" --dry-run enable srv-1
        "#,
        &[bin.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let write: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(
        write["write"],
        "/etc/systemd/system/left4me-server@srv-1.service.d/50-left4me-instance.conf"
    );
    let content = write["content"].as_str().unwrap();
    for needed in [
        "User=l4d2-srv-1",
        "SocketBindAllow=udp:27015",
        "SocketBindAllow=tcp:27015",
        "SocketBindAllow=udp:37015",
    ] {
        assert!(content.contains(needed), "{needed}: {content}");
    }
    assert_eq!(lines[1], r#"["/usr/bin/systemctl","daemon-reload"]"#);
    assert_eq!(
        lines[3],
        r#"["/usr/bin/systemctl","enable","--now","left4me-server@srv-1.service"]"#
    );

    // A symlinked definition (root would follow it) is refused.
    let out = in_private_host(
        r#"
        mkdir -p /var/lib/left4me/instances/srv-1
        ln -s /etc/shadow /var/lib/left4me/instances/srv-1/instance.env
        exec "$1" --dry-run enable srv-1
        "#,
        &[bin.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("symlink"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("root:"), "{}", stderr(&out));
}

#[test]
fn systemctl_rejected_forms() {
    let bin = "left4me-systemctl";
    assert_rejected(bin, &["--dry-run"], "usage");
    assert_rejected(bin, &[], "usage");
    assert_rejected(bin, &["enable"], "usage");
    assert_rejected(bin, &["enable", "a", "b"], "usage");
    assert_rejected(bin, &["start", "a"], "unknown verb \"start\"");
    assert_rejected(bin, &["show"], "usage");
    assert_rejected(bin, &["show", "a", "B"], "invalid instance name");
    assert_rejected(bin, &["restart", "a"], "unknown verb");
    assert_rejected(bin, &["enable", "A"], "invalid instance name \"A\"");
    assert_rejected(bin, &["enable", "a.service"], "invalid instance name");
    assert_rejected(bin, &["enable", "x@y"], "invalid instance name");
    assert_rejected(bin, &["enable", "-a"], "invalid instance name");
    assert_rejected(bin, &["enable", "../../etc"], "invalid instance name");
    assert_rejected(bin, &["enable", &"a".repeat(65)], "invalid instance name");
    // --dry-run only in first position.
    assert_rejected(bin, &["enable", "a", "--dry-run"], "usage");
    assert_rejected(bin, &["enable", "--dry-run", "a"], "usage");
    assert_rejected(bin, &["enable", "--dry-run"], "invalid instance name");
}

#[test]
fn journalctl_accepted_forms() {
    let out = run(
        "left4me-journalctl",
        &["--dry-run", "srv", "--lines", "200", "--no-follow"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        r#"["/usr/bin/journalctl","--unit","left4me-server@srv.service","--lines","200","--output=cat","--no-pager"]"#
    );
    let out = run(
        "left4me-journalctl",
        &["--dry-run", "srv", "--lines", "0", "--follow"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        r#"["/usr/bin/journalctl","--unit","left4me-server@srv.service","--lines","0","--output=cat","--no-pager","--follow"]"#
    );
}

#[test]
fn journalctl_rejected_forms() {
    let bin = "left4me-journalctl";
    assert_rejected(bin, &[], "usage");
    assert_rejected(bin, &["srv"], "usage");
    assert_rejected(bin, &["srv", "--lines", "5"], "usage");
    assert_rejected(bin, &["srv", "--lines=5", "--follow"], "usage");
    assert_rejected(bin, &["srv", "--follow", "--lines", "5"], "usage");
    assert_rejected(bin, &["srv", "-n", "5", "--follow"], "usage");
    assert_rejected(bin, &["srv", "--lines", "5", "-f"], "usage");
    assert_rejected(bin, &["srv", "--lines", "5", "--follow", "x"], "usage");
    assert_rejected(
        bin,
        &["srv", "--lines", "-1", "--follow"],
        "invalid line count",
    );
    assert_rejected(
        bin,
        &["srv", "--lines", "1e3", "--follow"],
        "invalid line count",
    );
    assert_rejected(
        bin,
        &["srv", "--lines", "100001", "--follow"],
        "invalid line count",
    );
    assert_rejected(
        bin,
        &["srv", "--lines", "", "--follow"],
        "invalid line count",
    );
    assert_rejected(
        bin,
        &["a/b", "--lines", "5", "--follow"],
        "invalid instance name",
    );
    assert_rejected(
        bin,
        &["--unit=x", "--lines", "5", "--follow"],
        "invalid instance name",
    );
}

#[test]
fn overlay_accepted_forms() {
    let out = run("left4me-overlay", &["--dry-run", "attach", "srv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(line["operation"], "attach");
    assert_eq!(line["instance"], "srv");
    // The caller's LEFT4ME_ROOT is ignored: the root comes from /etc/left4me/host.env or the default.
    assert_ne!(line["data_root"], "/tmp/evil-root");
    assert!(line["main_pid"].is_null());
    // Without the unit's MAINPID there is nothing to attach to.
    let out = run("left4me-overlay", &["attach", "srv"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("MAINPID"), "{}", stderr(&out));
}

#[test]
fn overlay_rejected_forms() {
    let bin = "left4me-overlay";
    assert_rejected(bin, &[], "usage");
    assert_rejected(bin, &["attach"], "usage");
    assert_rejected(bin, &["attach", "a", "b"], "usage");
    assert_rejected(bin, &["mount", "a"], "unknown verb");
    assert_rejected(bin, &["umount", "a"], "unknown verb");
    assert_rejected(bin, &["attach", "../a"], "invalid instance name");
    assert_rejected(bin, &["attach", ""], "invalid instance name");
}

#[test]
fn script_sandbox_rejected_forms() {
    let bin = "left4me-script-sandbox";
    assert_rejected(bin, &[], "usage");
    assert_rejected(bin, &["7"], "usage");
    assert_rejected(bin, &["7", "/x.sh", "extra"], "usage");
    assert_rejected(bin, &["7", "relative.sh"], "absolute path");
    assert_rejected(bin, &["../7", "/x.sh"], "invalid overlay id");
    assert_rejected(bin, &["7.0", "/x.sh"], "invalid overlay id");
}

#[test]
fn admin_rejected_forms() {
    let bin = "left4me-admin";
    assert_rejected(bin, &[], "usage");
    assert_rejected(bin, &["serve"], "unknown subcommand \"serve\"");
    assert_rejected(bin, &["demo"], "unknown subcommand");
    assert_rejected(bin, &["--dry-run", "sh"], "unknown subcommand");
    assert_rejected(bin, &["CREATE-USER"], "unknown subcommand");
}

/// Runs `shell` as root in a private mount namespace: a tmpfs over /var/lib
/// and a throwaway /etc/passwd + /etc/group with the left4me users, so the
/// accepted forms can be exercised without touching the host.
fn in_private_host(shell: &str, args: &[&str]) -> Output {
    Command::new("/usr/bin/unshare")
        .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-euc"])
        .arg(format!(
            r#"
            mount -t tmpfs test /var/lib
            mkdir -p /var/lib/test-etc
            cp /etc/passwd /etc/group /var/lib/test-etc/
            echo 'left4me:x:980:980::/var/lib/left4me:/usr/sbin/nologin' >> /var/lib/test-etc/passwd
            echo 'left4me-build:x:981:981::/nonexistent:/usr/sbin/nologin' >> /var/lib/test-etc/passwd
            echo 'left4me:x:980:' >> /var/lib/test-etc/group
            echo 'left4me-build:x:981:' >> /var/lib/test-etc/group
            mount --bind /var/lib/test-etc/passwd /etc/passwd
            mount --bind /var/lib/test-etc/group /etc/group
            {shell}
            "#
        ))
        .arg("sh")
        .args(args)
        .env("LEFT4ME_ROOT", "/tmp/evil-root")
        .env("LEFT4ME_ADMIN_PASSWORD", "s3cret-value")
        .output()
        .unwrap()
}

fn private_host_available() -> bool {
    require(
        is_root() && std::path::Path::new("/usr/bin/unshare").exists(),
        "helper dry-run tests with users need root and unshare(1) for a private mount namespace",
    ) && !std::path::Path::new("/etc/left4me/host.env").exists()
}

#[test]
fn script_sandbox_accepted_form_prints_every_command() {
    if !private_host_available() {
        return;
    }
    let out = in_private_host(
        r#"
        mkdir -p /var/lib/left4me/overlays/7 /var/lib/left4me/tmp
        echo 'echo hi > /overlay/x' > /var/lib/left4me/tmp/build.sh
        chown 980:980 /var/lib/left4me/tmp/build.sh
        exec "$1" --dry-run 7 /var/lib/left4me/tmp/build.sh
        "#,
        &[workspace_bin("left4me-script-sandbox").to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Vec<String>> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{}", stdout(&out));
    let (mount, run, umount) = (&lines[0], &lines[1], &lines[2]);
    assert_eq!(mount[0], "/usr/bin/mount");
    assert!(mount.contains(&"--map-users=980:981:1".to_string()));
    assert!(mount.contains(&"--map-groups=980:981:1".to_string()));
    assert!(mount.contains(&"/var/lib/left4me/overlays/7".to_string()));
    assert_eq!(run[0], "/usr/bin/systemd-run");
    for needed in [
        "--wait",
        "--pipe",
        "--collect",
        "--unit=left4me-script-7.service",
        "--slice=l4d2-build.slice",
        "--uid=left4me-build",
        "--property=ProtectSystem=strict",
        "--property=ProtectHome=yes",
        "--property=PrivateTmp=yes",
        "--property=PrivateDevices=yes",
        "--property=NoNewPrivileges=yes",
        "--property=CapabilityBoundingSet=",
        "--property=SystemCallFilter=@system-service @network-io",
        "--property=RestrictNamespaces=yes",
        "--property=MemoryDenyWriteExecute=yes",
        "--property=TemporaryFileSystem=/etc /var/lib",
        "--property=BindReadOnlyPaths=/etc/left4me/sandbox-resolv.conf:/etc/resolv.conf",
        "--property=MemoryMax=4G",
        "--property=TasksMax=512",
        "--property=CPUQuota=200%",
        "--property=RuntimeMaxSec=3600",
        "/usr/bin/bash",
    ] {
        assert!(
            run.contains(&needed.to_string()),
            "missing {needed} in {run:?}"
        );
    }
    let deny = run
        .iter()
        .find(|a| a.starts_with("--property=IPAddressDeny="))
        .expect("IPAddressDeny property");
    for net in [
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "fe80::/10",
        "224.0.0.0/4",
        "ff00::/8",
        "fc00::/7",
    ] {
        assert!(
            deny.split(['=', ' ']).any(|n| n == net),
            "{net} not denied: {deny}"
        );
    }
    assert!(!run.iter().any(|a| a.contains("IPAddressAllow")));
    assert_eq!(umount[0], "/usr/bin/umount");
}

#[test]
fn script_sandbox_rejects_scripts_it_must_not_read() {
    if !private_host_available() {
        return;
    }
    let bin = workspace_bin("left4me-script-sandbox");
    let setup = r#"
        mkdir -p /var/lib/left4me/overlays/7 /var/lib/left4me/tmp
        echo 'true' > /var/lib/left4me/tmp/rootowned.sh
        ln -s /etc/shadow /var/lib/left4me/tmp/shadow.sh
        cp /etc/hostname /var/lib/left4me/elsewhere.sh; chown 980 /var/lib/left4me/elsewhere.sh
    "#;
    for (script, id, needle) in [
        ("/var/lib/left4me/tmp/rootowned.sh", "7", "owned by uid 0"),
        ("/var/lib/left4me/tmp/shadow.sh", "7", "without symlinks"),
        ("/var/lib/left4me/elsewhere.sh", "7", "must be a path under"),
        ("/var/lib/left4me/tmp/missing.sh", "7", "No such file"),
        (
            "/var/lib/left4me/tmp/rootowned.sh",
            "8",
            "overlay directory",
        ),
    ] {
        let out = in_private_host(
            &format!("{setup}\nexec \"$1\" --dry-run {id} {script}"),
            &[bin.to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(1), "{script}: {out:?}");
        assert!(out.stdout.is_empty());
        assert!(stderr(&out).contains(needle), "{script}: {}", stderr(&out));
    }
}

#[test]
fn admin_accepted_form_drops_to_left4me_with_clean_env() {
    if !private_host_available() {
        return;
    }
    let out = in_private_host(
        r#"exec "$1" --dry-run create-user alice --admin"#,
        &[workspace_bin("left4me-admin").to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        r#"["/opt/left4me/bin/left4me","create-user","alice","--admin"]"#
    );
    let identity: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(identity["uid"], 980);
    assert_eq!(identity["gid"], 980);
    assert_eq!(identity["workdir"], "/var/lib/left4me");
    let env: Vec<&str> = identity["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"LEFT4ME_ADMIN_PASSWORD"), "{env:?}");
    // Caller's LEFT4ME_ROOT not passed on; secret values never printed.
    assert!(!env.contains(&"LEFT4ME_ROOT"), "{env:?}");
    assert!(!text.contains("s3cret-value"));
}

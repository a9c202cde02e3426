//! Script overlay builds. A build never runs unsandboxed:
//!
//! - **systemd backend**: the root helper `left4me-script-sandbox` runs the
//!   script as a hardened transient unit (SPEC §6; public internet only,
//!   no host or LAN, resource limits, `RuntimeMaxSec=3600`).
//! - **local backend**: bubblewrap (no root needed): own user, mount, pid,
//!   net, ipc, uts and cgroup namespaces, all capabilities dropped, no
//!   nested user namespaces, read-only `/usr`, empty `/tmp`, only the
//!   overlay directory writable (at `/overlay`). Its network namespace is
//!   empty, so local builds have **no network at all** (the host's
//!   127.0.0.1 and LAN included); the log says so.
//!
//! Both run the script as `bash <script>` (no implied `-e`), so a script
//! behaves the same on both backends; recipes start with `set -euo pipefail`.
//! Builds run **in place** by default (the directory keeps the previous
//! build's files, so a map-sync recipe only fetches what changed, as in the
//! original system); "clean build" empties the directory first.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{job_overlay, mark_built, overlay_dir};
use crate::config::{HostBackend, HELPER_DIR};
use crate::jobs::{JobCtx, JobFailure};

/// Where bubblewrap may be installed; fixed, never looked up in `$PATH`.
pub const BWRAP_CANDIDATES: [&str; 2] = ["/usr/bin/bwrap", "/usr/local/bin/bwrap"];
const TIMEOUT_CANDIDATES: [&str; 2] = ["/usr/bin/timeout", "/bin/timeout"];
const SUDO: &str = "/usr/bin/sudo";
/// Build time limit (seconds), read from the environment at build time.
pub const BUILD_TIMEOUT_VAR: &str = "LEFT4ME_BUILD_TIMEOUT_SECS";
pub const DEFAULT_BUILD_TIMEOUT_SECS: u64 = 3600;
/// The uid/gid a local build runs as inside its user namespace (never 0:
/// tools like tar then do not try to restore foreign owners).
pub const SANDBOX_UID: u32 = 1000;

pub const BWRAP_ISOLATION: &str = "sandbox: bubblewrap (user+mount+pid+net+ipc+uts+cgroup namespaces, all capabilities dropped, no nested user namespaces, no network, read-only /usr, private /tmp, only /overlay writable)";
pub const SYSTEMD_ISOLATION: &str = "sandbox: systemd transient unit via left4me-script-sandbox (l4d2-build.slice, ProtectSystem=strict, PrivateTmp, PrivateDevices, NoNewPrivileges, no capabilities, seccomp, /etc and /var/lib masked, public internet only: loopback/LAN/link-local denied, MemoryMax=4G, TasksMax=512, CPUQuota=200%, RuntimeMaxSec=3600)";
pub const NO_SANDBOX: &str = "no sandbox available: install bubblewrap (apt install bubblewrap; looked for /usr/bin/bwrap and /usr/local/bin/bwrap) or use the systemd backend; left4me never runs build scripts unsandboxed";

/// The build time limit from [`BUILD_TIMEOUT_VAR`] (default one hour).
pub fn build_timeout() -> Result<Duration, String> {
    parse_timeout(std::env::var(BUILD_TIMEOUT_VAR).ok().as_deref())
}

fn parse_timeout(value: Option<&str>) -> Result<Duration, String> {
    match value {
        None => Ok(Duration::from_secs(DEFAULT_BUILD_TIMEOUT_SECS)),
        Some(v) if v.trim().is_empty() => Ok(Duration::from_secs(DEFAULT_BUILD_TIMEOUT_SECS)),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if (1..=86_400).contains(&n) => Ok(Duration::from_secs(n)),
            _ => Err(format!(
                "{BUILD_TIMEOUT_VAR}: expected a number of seconds between 1 and 86400 (got {v:?})"
            )),
        },
    }
}

pub fn find_bwrap() -> Option<PathBuf> {
    first_existing(&BWRAP_CANDIDATES)
}

fn first_existing(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Files a local build sees besides `/overlay`.
pub struct LocalBuildFiles {
    pub script: PathBuf,
    pub passwd: PathBuf,
    pub group: PathBuf,
}

/// The bubblewrap argv (without the program) for a local build.
pub fn bwrap_args(overlay: &Path, files: &LocalBuildFiles) -> Vec<String> {
    let mut a: Vec<String> = [
        "--unshare-all",
        // Explicit: fail rather than silently run without a user namespace.
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--cap-drop",
        "ALL",
        "--uid",
        &SANDBOX_UID.to_string(),
        "--gid",
        &SANDBOX_UID.to_string(),
        "--hostname",
        "left4me-build",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Merged-/usr hosts have /bin etc. as symlinks; others as directories.
    for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        let p = Path::new(top);
        match std::fs::read_link(p) {
            Ok(target) => a.extend(["--symlink".into(), target.display().to_string(), top.into()]),
            Err(_) if p.is_dir() => a.extend(["--ro-bind".into(), top.into(), top.into()]),
            Err(_) => {}
        }
    }
    // /etc: only what programs need to start (dynamic linker cache,
    // alternatives such as awk, TLS roots for later use), never the host's
    // users, hosts or secrets.
    for etc in [
        "/etc/alternatives",
        "/etc/ld.so.cache",
        "/etc/ld.so.conf",
        "/etc/ld.so.conf.d",
        "/etc/localtime",
        "/etc/ssl",
        "/etc/ca-certificates",
        "/etc/mime.types",
    ] {
        if Path::new(etc).exists() {
            a.extend(["--ro-bind".into(), etc.into(), etc.into()]);
        }
    }
    a.extend([
        "--ro-bind".into(),
        files.passwd.display().to_string(),
        "/etc/passwd".into(),
        "--ro-bind".into(),
        files.group.display().to_string(),
        "/etc/group".into(),
        "--proc".into(),
        "/proc".into(),
        "--dev".into(),
        "/dev".into(),
        "--tmpfs".into(),
        "/tmp".into(),
        "--bind".into(),
        overlay.display().to_string(),
        "/overlay".into(),
        "--ro-bind".into(),
        files.script.display().to_string(),
        "/build/script.sh".into(),
        "--chdir".into(),
        "/overlay".into(),
    ]);
    for (k, v) in [
        ("HOME", "/tmp"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"),
        ("LANG", "C.UTF-8"),
        ("USER", "build"),
        ("LOGNAME", "build"),
        ("TMPDIR", "/tmp"),
        ("OVERLAY", "/overlay"),
    ] {
        a.extend(["--setenv".into(), k.into(), v.into()]);
    }
    a.extend([
        "--".into(),
        "/usr/bin/bash".into(),
        "/build/script.sh".into(),
    ]);
    a
}

/// Runs the `overlay-build` job.
pub async fn run(ctx: &mut JobCtx, overlay_id: i64, clean: bool) -> Result<(), JobFailure> {
    let overlay = job_overlay(ctx, overlay_id).await?;
    if !overlay.is_script() {
        return Err(JobFailure::msg(format!(
            "overlay {:?} is a {} overlay; only script overlays are built",
            overlay.name, overlay.kind
        )));
    }
    let timeout = build_timeout().map_err(JobFailure::msg)?;
    let root = ctx.config().root.clone();
    let backend = ctx.config().backend;
    let dir = overlay_dir(&root, overlay.id);

    // Decide the sandbox before touching anything, and say it first.
    let bwrap = match backend {
        HostBackend::Systemd => {
            ctx.say(SYSTEMD_ISOLATION).await?;
            None
        }
        HostBackend::Local => match find_bwrap() {
            Some(b) => {
                ctx.say(BWRAP_ISOLATION).await?;
                ctx.say("network: none. Local builds cannot download anything (the host's 127.0.0.1 and LAN are unreachable too); recipes that fetch files need the systemd backend").await?;
                Some(b)
            }
            None => return Err(JobFailure::msg(NO_SANDBOX)),
        },
    };
    ctx.say(format!(
        "building overlay {:?} (#{}) into {}; time limit {} s ({BUILD_TIMEOUT_VAR})",
        overlay.name,
        overlay.id,
        dir.display(),
        timeout.as_secs()
    ))
    .await?;

    prepare_dir(&dir, clean).map_err(JobFailure::msg)?;
    if clean {
        ctx.say("clean build: the overlay directory was emptied first")
            .await?;
    } else {
        ctx.say(
            "in-place build: files of the previous build are kept unless the script removes them",
        )
        .await?;
    }

    let tmp = root.join("tmp");
    let stem = format!("overlay-{}-job-{}", overlay.id, ctx.job.id);
    let result = match bwrap {
        Some(bwrap) => {
            let work = tmp.join(&stem);
            let files = write_local_files(&work, &overlay.script).map_err(JobFailure::msg);
            let outcome = match files {
                Ok(files) => {
                    let mut args = vec![bwrap.display().to_string()];
                    args.extend(bwrap_args(&dir, &files));
                    run_limited(ctx, &args, timeout, "build script").await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = super::remove_tree(&work) {
                tracing::warn!(path = %work.display(), error = %e, "cannot remove build files");
            }
            outcome
        }
        None => {
            let script = tmp.join(format!("{stem}.sh"));
            let outcome = match write_exclusive(&tmp, &script, &overlay.script) {
                Ok(()) => {
                    let helper = Path::new(HELPER_DIR).join("left4me-script-sandbox");
                    let args = vec![
                        SUDO.to_string(),
                        "-n".into(),
                        helper.display().to_string(),
                        overlay.id.to_string(),
                        script.display().to_string(),
                    ];
                    run_limited(ctx, &args, timeout, "build script").await
                }
                Err(e) => Err(JobFailure::msg(e)),
            };
            if let Err(e) = std::fs::remove_file(&script) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %script.display(), error = %e, "cannot remove the build script copy");
                }
            }
            outcome
        }
    };
    result?;
    mark_built(ctx, overlay.id).await?;
    ctx.say(format!("overlay {:?} built", overlay.name)).await?;
    Ok(())
}

/// Makes sure the overlay directory exists; `clean` empties it (entries are
/// removed without following symlinks).
fn prepare_dir(dir: &Path, clean: bool) -> Result<(), String> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(format!(
                "{} is not a directory; refusing to build into it",
                dir.display()
            ))
        }
        Err(_) => std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?,
    }
    if clean {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
                .path();
            super::remove_tree(&path)
                .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Writes `body` to a new file (0600, O_EXCL: never into something a
/// concurrent writer or an attacker placed there).
fn write_exclusive(dir: &Path, path: &Path, body: &str) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(body.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn write_local_files(work: &Path, script: &str) -> Result<LocalBuildFiles, String> {
    if let Some(parent) = work.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    // A leftover from a killed process with the same job id is stale.
    let _ = super::remove_tree(work);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(work)
        .map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let files = LocalBuildFiles {
        script: work.join("script.sh"),
        passwd: work.join("passwd"),
        group: work.join("group"),
    };
    write_exclusive(work, &files.script, script)?;
    write_exclusive(
        work,
        &files.passwd,
        &format!(
            "build:x:{SANDBOX_UID}:{SANDBOX_UID}:left4me build:/tmp:/usr/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
    )?;
    write_exclusive(
        work,
        &files.group,
        &format!("build:x:{SANDBOX_UID}:\nnogroup:x:65534:\n"),
    )?;
    Ok(files)
}

/// Runs `argv` under coreutils `timeout` (TERM to the whole group, KILL 10 s
/// later), with a tokio backstop that drops (kills) the child if even that
/// hangs. The exit status decides; a timeout says so.
async fn run_limited(
    ctx: &mut JobCtx,
    argv: &[String],
    limit: Duration,
    what: &str,
) -> Result<(), JobFailure> {
    let mut full: Vec<String> = Vec::new();
    if let Some(t) = first_existing(&TIMEOUT_CANDIDATES) {
        full.extend([
            t.display().to_string(),
            "--kill-after=10".into(),
            format!("{}", limit.as_secs()),
        ]);
    }
    full.extend(argv.iter().cloned());
    let mut cmd = ctx.child_command(Path::new(&full[0]));
    cmd.args(&full[1..]);
    let started = Instant::now();
    let backstop = limit + Duration::from_secs(30);
    let run = match tokio::time::timeout(backstop, ctx.run_command(cmd, what)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(JobFailure::msg(format!(
                "{what} timed out after {} s ({BUILD_TIMEOUT_VAR}); the sandbox was killed",
                limit.as_secs()
            )))
        }
    };
    let timed_out = matches!(run.status.code(), Some(124 | 137)) && started.elapsed() >= limit;
    if timed_out {
        return Err(JobFailure::msg(format!(
            "{what} timed out after {} s ({BUILD_TIMEOUT_VAR}); the sandbox was killed",
            limit.as_secs()
        )));
    }
    run.into_result(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bwrap_argv_isolates() {
        let files = LocalBuildFiles {
            script: "/r/tmp/x/script.sh".into(),
            passwd: "/r/tmp/x/passwd".into(),
            group: "/r/tmp/x/group".into(),
        };
        let a = bwrap_args(Path::new("/r/overlays/7"), &files);
        let joined = a.join(" ");
        for needed in [
            "--unshare-all",
            "--unshare-user",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--cap-drop ALL",
            "--ro-bind /usr /usr",
            "--proc /proc",
            "--dev /dev",
            "--tmpfs /tmp",
            "--bind /r/overlays/7 /overlay",
            "--ro-bind /r/tmp/x/script.sh /build/script.sh",
            "--chdir /overlay",
            "--setenv HOME /tmp",
        ] {
            assert!(joined.contains(needed), "missing {needed}: {joined}");
        }
        assert!(!joined.contains("--share-net"));
        // The only writable bind is the overlay.
        assert_eq!(a.iter().filter(|s| *s == "--bind").count(), 1);
        assert_eq!(a.last().map(String::as_str), Some("/build/script.sh"));
    }

    #[test]
    fn timeout_values_are_validated() {
        assert_eq!(parse_timeout(None).unwrap(), Duration::from_secs(3600));
        assert_eq!(
            parse_timeout(Some(" 15 ")).unwrap(),
            Duration::from_secs(15)
        );
        for bad in ["0", "-1", "abc", "86401"] {
            let e = parse_timeout(Some(bad)).unwrap_err();
            assert!(e.starts_with(BUILD_TIMEOUT_VAR), "{e}");
        }
    }

    #[test]
    fn clean_prepare_removes_entries_without_following_links() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        let ov = d.path().join("ov");
        std::fs::create_dir_all(ov.join("a/b")).unwrap();
        std::fs::write(ov.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, ov.join("link")).unwrap();
        prepare_dir(&ov, false).unwrap();
        assert!(ov.join("a/b/f").exists());
        prepare_dir(&ov, true).unwrap();
        assert_eq!(std::fs::read_dir(&ov).unwrap().count(), 0);
        assert!(outside.join("keep").exists());
    }
}

//! Script overlay builds. A build never runs unsandboxed:
//!
//! - **systemd backend**: the root helper `left4me-script-sandbox` runs the
//!   script as a hardened transient unit (see docs/deployment.md; public internet only,
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
//!
//! A build never produces privilege:
//!
//! - **root web app, local backend** (demo, CI, `serve` without systemd):
//!   bubblewrap would map the sandbox user to real root, so the child drops
//!   to an unprivileged uid/gid before it starts bubblewrap ([`BuildOwner`]:
//!   the data root's owner if that is not root, else 65534:65534). The
//!   overlay tree is handed to that uid first (fd-based, never following a
//!   symlink); a private mount namespace binds the overlay and the build
//!   files under a fresh `/tmp`, so the build user needs no access to the
//!   data root's parent directories. **Ownership afterwards:** when the
//!   build ran as 65534 (a uid many daemons share) the tree is given back
//!   to root:root, so nothing running as nobody can alter it between
//!   builds; when it ran as the data root's owner, the files stay that
//!   user's.
//! - **every build, both backends**: afterwards the overlay directory is
//!   walked without following symlinks and setuid/setgid bits are cleared on
//!   every regular file and directory (one job line says how many); a walk
//!   that fails fails the job.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};

use super::model::{job_overlay, mark_built, overlay_dir, remove_tree};
use super::sandbox::{
    build_owner, bwrap_args, find_bwrap, first_existing, BuildOwner, LocalBuildFiles, RootDrop,
    BWRAP_ISOLATION, NO_SANDBOX, SANDBOX_UID, STAGE_OVERLAY, STAGE_WORK, SYSTEMD_ISOLATION,
};
use super::tree::{chown_fd, chown_tree, clear_setid_tree, io_err, TreeError, TreeReport};
use crate::config::{Config, HostBackend, HELPER_DIR};
use crate::jobs::{JobCtx, JobFailure};
use crate::l4d2ctl::HostClient;

const TIMEOUT_CANDIDATES: [&str; 2] = ["/usr/bin/timeout", "/bin/timeout"];
const SUDO: &str = "/usr/bin/sudo";
/// Where the build time limit is configured (named in job logs).
const BUILD_TIMEOUT_VAR: &str = "LEFT4ME_BUILD_TIMEOUT_SECS";

/// Why a build could not run or be checked.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0} is not a directory; refusing to build into it")]
    NotADirectory(PathBuf),
    #[error("the overlay walk did not finish: {0}")]
    Walk(String),
    #[error(transparent)]
    Tree(#[from] TreeError),
}

/// Runs a blocking filesystem walk off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BuildError> + Send + 'static,
) -> Result<T, BuildError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(BuildError::Walk(e.to_string())),
    }
}

/// The `what` failure of `path`, for std's errors.
fn std_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.to_path_buf();
    move |source| BuildError::Tree(TreeError::Io { what, path, source })
}

/// Runs the `overlay-build` job.
pub async fn run(
    ctx: &mut JobCtx,
    config: &Config,
    host: &HostClient,
    overlay_id: i64,
    clean: bool,
) -> Result<(), JobFailure> {
    let overlay = job_overlay(ctx, overlay_id).await?;
    if !overlay.is_script() {
        return Err(JobFailure::msg(format!(
            "overlay {:?} is a {} overlay; only script overlays are built",
            overlay.name, overlay.kind
        )));
    }
    let timeout = Duration::from_secs(config.build_timeout_secs);
    let root = config.root.clone();
    let backend = config.backend;
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
        "building overlay {:?} (#{}) into overlays/{}/; time limit {} s ({BUILD_TIMEOUT_VAR})",
        overlay.name,
        overlay.id,
        overlay.id,
        timeout.as_secs()
    ))
    .await?;

    prepare_dir(&dir, clean).map_err(JobFailure::from_error)?;
    if clean {
        ctx.say("clean build: the overlay directory was emptied first")
            .await?;
    } else {
        ctx.say(
            "in-place build: files of the previous build are kept unless the script removes them",
        )
        .await?;
    }

    // A root web app never lets bubblewrap map the build to root.
    let owner = match bwrap {
        Some(_) => build_owner(&root).map_err(|e| JobFailure::msg(e.to_string()))?,
        None => None,
    };
    if let Some(o) = owner {
        ctx.say(format!(
            "the web app runs as root: the build runs as uid {}:{} ({}); {}",
            o.uid,
            o.gid,
            if o.return_to_root {
                "nobody, the data root belongs to root"
            } else {
                "the data root's owner"
            },
            if o.return_to_root {
                "the overlay's files are given back to root:root afterwards"
            } else {
                "the overlay's files stay that user's"
            }
        ))
        .await?;
        let d = dir.clone();
        blocking(move || Ok(chown_tree(&d, o.uid, o.gid)?))
            .await
            .map_err(|e| {
                JobFailure::msg(format!(
                    "cannot hand the overlay directory to the build user: {e}"
                ))
            })?;
    }

    let tmp = root.join("tmp");
    let stem = format!("overlay-{}-job-{}", overlay.id, ctx.job().id);
    let result = match bwrap {
        Some(bwrap) => {
            let work = tmp.join(&stem);
            let files =
                write_local_files(&work, &overlay.script, owner).map_err(JobFailure::from_error);
            let outcome = match files {
                Ok(files) => match owner {
                    None => {
                        let mut args = vec![bwrap.display().to_string()];
                        args.extend(bwrap_args(&dir, &files));
                        run_limited(ctx, host, &args, timeout, "build script", None).await
                    }
                    Some(o) => match RootDrop::new(&dir, &work, o) {
                        Ok(drop) => {
                            // The same files, seen where the child binds them.
                            let stage = Path::new(STAGE_WORK);
                            let staged = LocalBuildFiles {
                                script: stage.join("script.sh"),
                                passwd: stage.join("passwd"),
                                group: stage.join("group"),
                            };
                            let mut args = vec![bwrap.display().to_string()];
                            args.extend(bwrap_args(Path::new(STAGE_OVERLAY), &staged));
                            run_limited(ctx, host, &args, timeout, "build script", Some(&drop))
                                .await
                        }
                        Err(e) => Err(JobFailure::msg(format!(
                            "cannot prepare the build sandbox: {e}"
                        ))),
                    },
                },
                Err(e) => Err(e),
            };
            if let Err(e) = remove_tree(&work) {
                tracing::warn!(path = %work.display(), error = %e, "cannot remove build files");
            }
            outcome
        }
        None => {
            let script = tmp.join(format!("{stem}.sh"));
            let outcome = match write_exclusive(&tmp, &script, &overlay.script, None) {
                Ok(()) => {
                    let helper = Path::new(HELPER_DIR).join("left4me-script-sandbox");
                    let args = vec![
                        SUDO.to_string(),
                        "-n".into(),
                        helper.display().to_string(),
                        overlay.id.to_string(),
                        script.display().to_string(),
                    ];
                    run_limited(ctx, host, &args, timeout, "build script", None).await
                }
                Err(e) => Err(JobFailure::from_error(e)),
            };
            if let Err(e) = std::fs::remove_file(&script) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %script.display(), error = %e, "cannot remove the build script copy");
                }
            }
            outcome
        }
    };
    // After every build, whatever its outcome: a failed one may have left
    // files too.
    let d = dir.clone();
    let give_back = owner.filter(|o| o.return_to_root).map(|_| (0, 0));
    let walk = blocking(move || Ok(clear_setid_tree(&d, give_back)?)).await;
    match (result, walk) {
        (Ok(()), Ok(report)) => {
            ctx.say(setid_line(report)).await?;
        }
        (Err(build), Ok(report)) => {
            ctx.say(setid_line(report)).await?;
            return Err(build);
        }
        (Ok(()), Err(e)) => {
            return Err(JobFailure::msg(format!(
                "cannot check the overlay for setuid/setgid files: {e}"
            )))
        }
        (Err(build), Err(e)) => {
            return Err(JobFailure::msg(format!(
                "{build}; then the overlay could not be checked for setuid/setgid files: {e}"
            )))
        }
    }
    mark_built(ctx, overlay.id).await?;
    ctx.say(format!("overlay {:?} built", overlay.name)).await?;
    Ok(())
}

fn setid_line(r: TreeReport) -> String {
    format!(
        "setuid/setgid bits cleared on {} of {} entries in the overlay directory",
        r.cleared, r.entries
    )
}

/// Makes sure the overlay directory exists; `clean` empties it (entries are
/// removed without following symlinks).
fn prepare_dir(dir: &Path, clean: bool) -> Result<(), BuildError> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(BuildError::NotADirectory(dir.to_path_buf())),
        Err(_) => std::fs::create_dir_all(dir).map_err(std_err("create", dir))?,
    }
    if clean {
        for entry in std::fs::read_dir(dir).map_err(std_err("read", dir))? {
            let path = entry.map_err(std_err("read", dir))?.path();
            remove_tree(&path).map_err(std_err("remove", &path))?;
        }
    }
    Ok(())
}

/// Writes `body` to a new file (0600, O_EXCL: never into something a
/// concurrent writer or an attacker placed there), owned by `owner` if set.
fn write_exclusive(
    dir: &Path,
    path: &Path,
    body: &str,
    owner: Option<BuildOwner>,
) -> Result<(), BuildError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(std_err("create", dir))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(std_err("create", path))?;
    if let Some(o) = owner {
        chown_fd(f.as_fd(), o.uid, o.gid, path)?;
    }
    f.write_all(body.as_bytes()).map_err(std_err("write", path))
}

fn write_local_files(
    work: &Path,
    script: &str,
    owner: Option<BuildOwner>,
) -> Result<LocalBuildFiles, BuildError> {
    if let Some(parent) = work.parent() {
        std::fs::create_dir_all(parent).map_err(std_err("create", parent))?;
    }
    // A leftover from a killed process with the same job id is stale.
    let _ = remove_tree(work);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(work)
        .map_err(std_err("create", work))?;
    if let Some(o) = owner {
        // Only the build user reads these (0700/0600), so it must own them.
        let fd = rustix::fs::open(
            work,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err("open", work))?;
        chown_fd(fd.as_fd(), o.uid, o.gid, work)?;
    }
    let files = LocalBuildFiles {
        script: work.join("script.sh"),
        passwd: work.join("passwd"),
        group: work.join("group"),
    };
    write_exclusive(work, &files.script, script, owner)?;
    write_exclusive(
        work,
        &files.passwd,
        &format!(
            "build:x:{SANDBOX_UID}:{SANDBOX_UID}:left4me build:/tmp:/usr/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
        owner,
    )?;
    write_exclusive(
        work,
        &files.group,
        &format!("build:x:{SANDBOX_UID}:\nnogroup:x:65534:\n"),
        owner,
    )?;
    Ok(files)
}

/// Runs `argv` under coreutils `timeout` (TERM to the whole group, KILL 10 s
/// later), with a tokio backstop that drops (kills) the child if even that
/// hangs. The exit status decides; a timeout says so.
async fn run_limited(
    ctx: &mut JobCtx,
    host: &HostClient,
    argv: &[String],
    limit: Duration,
    what: &str,
    root_drop: Option<&RootDrop>,
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
    let mut cmd = host.command(Path::new(&full[0]));
    cmd.args(&full[1..]);
    if let Some(d) = root_drop {
        d.install(&mut cmd);
    }
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

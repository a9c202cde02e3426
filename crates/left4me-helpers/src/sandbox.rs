//! `left4me-script-sandbox <overlay_id> <script>`: runs a user-written bash
//! script as a transient, heavily restricted systemd service that may write
//! only into `overlays/<overlay_id>` (seen at `/overlay`).
//!
//! Steps (all as root, in PID 1's mount namespace, see [`hop_argv`]):
//! 1. copy the script (opened without following symlinks, owned by the
//!    `left4me` user, under `<root>/tmp/`) into a root-owned staging dir, so
//!    the caller cannot swap it after validation;
//! 2. idmapped bind of the overlay dir into the staging dir: the build user's
//!    writes land on disk as `left4me`;
//! 3. `systemd-run --wait --pipe --collect` with every restriction of docs/deployment.md, The helpers;
//! 4. unmount and remove the staging dir, exit with the script's status.

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::grammar::{utf8, validate_name, GrammarError};
use crate::{tools, Argv};

pub const USAGE: &str = "left4me-script-sandbox [--dry-run] <overlay_id> <script>";

/// The user owning overlays (and the web app, the game servers).
pub const OWNER_USER: &str = "left4me";
/// The unprivileged user builds run as; mapped to [`OWNER_USER`] on `/overlay`.
pub const BUILD_USER: &str = "left4me-build";
/// Root-only directory for per-build staging (mount points and script copies).
pub const STAGING_BASE: &str = "/run/left4me-sandbox";
/// Where the script appears inside the sandbox (inside the `/var/lib` tmpfs,
/// so systemd's mount point never lands on the host's filesystem).
pub const SCRIPT_IN_SANDBOX: &str = "/var/lib/left4me-build/script.sh";
/// Public resolvers: the host's resolver is usually on a private address the sandbox cannot reach.
pub const SANDBOX_RESOLV: &str = "/etc/left4me/sandbox-resolv.conf";
/// Largest accepted script.
pub const MAX_SCRIPT_BYTES: u64 = 1024 * 1024;

/// Destinations a build may never reach: loopback, link-local, multicast,
/// RFC1918, CGNAT, ULA, "this network". No `IPAddressAllow=`: on systemd 257
/// an allow list overrides the deny list.
pub const DENIED_NETWORKS: &str = "0.0.0.0/8 127.0.0.0/8 ::1/128 169.254.0.0/16 fe80::/10 \
224.0.0.0/4 ff00::/8 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 100.64.0.0/10 fc00::/7";

/// Read-only host files a script needs once `/etc` is an empty tmpfs
/// (`-` prefix: skipped when missing).
const ETC_PASSTHROUGH: &[&str] = &[
    "-/etc/alternatives",
    "-/etc/ssl",
    "-/etc/ca-certificates",
    "-/etc/nsswitch.conf",
    "-/etc/hosts",
    "-/etc/passwd",
    "-/etc/group",
    "-/etc/ld.so.cache",
    "-/etc/localtime",
];

/// The parsed, syntactically valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub overlay_id: String,
    pub script: PathBuf,
}

pub fn parse(args: &[OsString]) -> Result<Request, GrammarError> {
    let [overlay_id, script] = args else {
        return Err(GrammarError::Usage(USAGE));
    };
    let overlay_id = utf8(overlay_id, "overlay id")?;
    validate_name(overlay_id, "overlay id")?;
    let script = PathBuf::from(utf8(script, "script path")?);
    if !script.is_absolute() {
        return Err(GrammarError::Usage(
            "the script must be an absolute path under <data root>/tmp/",
        ));
    }
    Ok(Request {
        overlay_id: overlay_id.to_string(),
        script,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("user {0:?} does not exist (run the deploy install script)")]
    NoSuchUser(&'static str),
    #[error("cannot look up user {user:?}: {source}")]
    UserLookup {
        user: &'static str,
        source: nix::Error,
    },
    #[error("overlay directory {0} does not exist or is not a plain directory")]
    BadOverlayDir(PathBuf),
    #[error("script {path}: {reason}")]
    BadScript { path: PathBuf, reason: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot enter PID 1's mount namespace: {0}")]
    Setns(nix::Error),
    #[error("`{argv}` failed: {reason}")]
    Command { argv: String, reason: String },
}

/// Numeric ids of the overlay owner and the build user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub owner_uid: u32,
    pub owner_gid: u32,
    pub build_uid: u32,
    pub build_gid: u32,
}

impl Ids {
    pub fn lookup() -> Result<Ids, SandboxError> {
        let user = |name: &'static str| {
            nix::unistd::User::from_name(name)
                .map_err(|source| SandboxError::UserLookup { user: name, source })?
                .ok_or(SandboxError::NoSuchUser(name))
        };
        let owner = user(OWNER_USER)?;
        let build = user(BUILD_USER)?;
        Ok(Ids {
            owner_uid: owner.uid.as_raw(),
            owner_gid: owner.gid.as_raw(),
            build_uid: build.uid.as_raw(),
            build_gid: build.gid.as_raw(),
        })
    }
}

/// Everything a build needs, validated against the filesystem.
#[derive(Debug, Clone)]
pub struct Plan {
    pub overlay_id: String,
    pub overlay_dir: PathBuf,
    pub script_source: PathBuf,
    pub staging_dir: PathBuf,
    pub unit: String,
    pub ids: Ids,
}

impl Plan {
    pub fn staging_overlay(&self) -> PathBuf {
        self.staging_dir.join("overlay")
    }

    pub fn staging_script(&self) -> PathBuf {
        self.staging_dir.join("script.sh")
    }

    /// The idmapped bind: on-disk owner (`left4me`) appears as the build user
    /// inside the mount, and the build user's writes land as `left4me`.
    pub fn mount_argv(&self) -> Argv {
        let Ids {
            owner_uid,
            owner_gid,
            build_uid,
            build_gid,
        } = self.ids;
        Argv::new(
            tools::MOUNT,
            [
                "--bind".to_string(),
                format!("--map-users={owner_uid}:{build_uid}:1"),
                format!("--map-groups={owner_gid}:{build_gid}:1"),
                "--".to_string(),
                self.overlay_dir.display().to_string(),
                self.staging_overlay().display().to_string(),
            ],
        )
    }

    pub fn umount_argv(&self) -> Argv {
        Argv::new(
            tools::UMOUNT,
            ["--", self.staging_overlay().display().to_string().as_str()],
        )
    }

    /// The transient service with every restriction of docs/deployment.md, The helpers.
    pub fn systemd_run_argv(&self) -> Argv {
        let mut args: Vec<String> = [
            "--quiet",
            "--wait",
            "--pipe",
            "--collect",
            "--service-type=exec",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("--unit={}", self.unit));
        args.push("--slice=l4d2-build.slice".into());
        args.push(format!("--uid={BUILD_USER}"));
        args.push(format!("--gid={BUILD_USER}"));
        args.push("--working-directory=/overlay".into());
        args.push("--setenv=HOME=/tmp".into());
        args.push(format!("--setenv=LEFT4ME_OVERLAY_ID={}", self.overlay_id));
        let mut props: Vec<String> = vec![
            format!("BindPaths={}:/overlay", self.staging_overlay().display()),
            format!(
                "BindReadOnlyPaths={}:{SCRIPT_IN_SANDBOX}",
                self.staging_script().display()
            ),
            "TemporaryFileSystem=/etc /var/lib".into(),
            format!("BindReadOnlyPaths={SANDBOX_RESOLV}:/etc/resolv.conf"),
        ];
        props.extend(
            ETC_PASSTHROUGH
                .iter()
                .map(|p| format!("BindReadOnlyPaths={p}")),
        );
        props.extend(
            [
                "ProtectSystem=strict",
                "ProtectHome=yes",
                "PrivateTmp=yes",
                "PrivateDevices=yes",
                "PrivateIPC=yes",
                "NoNewPrivileges=yes",
                "CapabilityBoundingSet=",
                "AmbientCapabilities=",
                "RestrictSUIDSGID=yes",
                "ProtectKernelTunables=yes",
                "ProtectKernelModules=yes",
                "ProtectKernelLogs=yes",
                "ProtectControlGroups=yes",
                "ProtectClock=yes",
                "ProtectHostname=yes",
                "ProtectProc=invisible",
                "LockPersonality=yes",
                "RestrictRealtime=yes",
                "RestrictNamespaces=yes",
                "MemoryDenyWriteExecute=yes",
                "SystemCallArchitectures=native",
                "SystemCallFilter=@system-service @network-io",
                "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                "KeyringMode=private",
                "UMask=0022",
                "MemoryMax=4G",
                "TasksMax=512",
                "CPUQuota=200%",
                "RuntimeMaxSec=3600",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        props.push(format!("IPAddressDeny={DENIED_NETWORKS}"));
        for prop in props {
            args.push(format!("--property={prop}"));
        }
        args.push("--".into());
        args.push(tools::BASH.into());
        args.push(SCRIPT_IN_SANDBOX.into());
        Argv::new(tools::SYSTEMD_RUN, args)
    }

    /// The dry-run output: every command, one JSON argv per line.
    pub fn dry_run_lines(&self) -> Vec<String> {
        vec![
            self.mount_argv().to_json_line(),
            self.systemd_run_argv().to_json_line(),
            self.umount_argv().to_json_line(),
        ]
    }
}

/// Validates the request against the data root: the overlay dir must be a
/// plain directory `overlays/<id>` (no symlink), the script a regular file
/// under `tmp/` owned by the overlay owner, at most [`MAX_SCRIPT_BYTES`].
pub fn resolve(request: &Request, root: &Path, ids: Ids) -> Result<Plan, SandboxError> {
    let overlay_dir = root.join("overlays").join(&request.overlay_id);
    let is_plain_dir = std::fs::symlink_metadata(&overlay_dir).is_ok_and(|m| m.is_dir())
        && std::fs::canonicalize(&overlay_dir).is_ok_and(|c| c == overlay_dir);
    if !is_plain_dir {
        return Err(SandboxError::BadOverlayDir(overlay_dir));
    }
    let bad_script = |reason: &str| SandboxError::BadScript {
        path: request.script.clone(),
        reason: reason.to_string(),
    };
    let tmp = root.join("tmp");
    let canonical =
        std::fs::canonicalize(&request.script).map_err(|e| bad_script(&e.to_string()))?;
    if canonical != request.script || !canonical.starts_with(&tmp) {
        return Err(bad_script(&format!(
            "must be a path under {} without symlinks",
            tmp.display()
        )));
    }
    // Validate what we will actually read: the opened file, never a path again.
    let file = open_script(&request.script).map_err(|e| bad_script(&e.to_string()))?;
    let meta = file.metadata().map_err(|e| bad_script(&e.to_string()))?;
    if !meta.is_file() {
        return Err(bad_script("not a regular file"));
    }
    if meta.uid() != ids.owner_uid {
        return Err(bad_script(&format!(
            "owned by uid {}, expected {OWNER_USER} ({})",
            meta.uid(),
            ids.owner_uid
        )));
    }
    if meta.len() > MAX_SCRIPT_BYTES {
        return Err(bad_script(&format!("larger than {MAX_SCRIPT_BYTES} bytes")));
    }
    Ok(Plan {
        overlay_id: request.overlay_id.clone(),
        overlay_dir,
        script_source: request.script.clone(),
        staging_dir: Path::new(STAGING_BASE).join(format!(
            "{}.{}",
            request.overlay_id,
            std::process::id()
        )),
        unit: format!("left4me-script-{}.service", request.overlay_id),
        ids,
    })
}

fn open_script(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

/// The installed path of this helper (what the transient unit runs).
pub const HELPER_PATH: &str = "/usr/local/libexec/left4me/left4me-script-sandbox";

/// The transient root unit this helper re-runs itself in when called from
/// the web app's sandbox (see [`crate::hop`]): nothing on disk is opened or
/// validated before that.
pub fn hop_argv(request: &Request) -> Argv {
    crate::hop::transient_argv(
        &format!("left4me script build of overlay {}", request.overlay_id),
        HELPER_PATH,
        &[
            request.overlay_id.clone(),
            request.script.display().to_string(),
        ],
    )
}

fn run_checked(argv: &Argv) -> Result<(), SandboxError> {
    let status = argv.command().status().map_err(|e| SandboxError::Command {
        argv: argv.to_json_line(),
        reason: e.to_string(),
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(SandboxError::Command {
            argv: argv.to_json_line(),
            reason: status.to_string(),
        })
    }
}

/// Prepares staging, runs the build and always cleans up. Returns the exit
/// code to exit with (the script's, as reported by `systemd-run --wait`).
pub fn execute(plan: &Plan) -> Result<i32, SandboxError> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| SandboxError::Io { what, path, source }
    };
    let base = Path::new(STAGING_BASE);
    std::fs::create_dir_all(base).map_err(io("cannot create", base))?;
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        base,
        nix::sys::stat::Mode::from_bits_truncate(0o700),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| SandboxError::Io {
        what: "cannot chmod",
        path: base.to_path_buf(),
        source: e.into(),
    })?;
    std::fs::create_dir(&plan.staging_dir).map_err(io("cannot create", &plan.staging_dir))?;
    let result = stage_and_run(plan);
    // Cleanup runs whatever happened; a failed cleanup is reported but the
    // build's own result wins.
    let mounted = is_mount_point(&plan.staging_overlay());
    if mounted {
        if let Err(e) = run_checked(&plan.umount_argv()) {
            eprintln!("left4me-script-sandbox: cleanup: {e}");
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&plan.staging_dir) {
        eprintln!(
            "left4me-script-sandbox: cleanup: cannot remove {}: {e}",
            plan.staging_dir.display()
        );
    }
    result
}

fn stage_and_run(plan: &Plan) -> Result<i32, SandboxError> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| SandboxError::Io { what, path, source }
    };
    let mut body = Vec::new();
    open_script(&plan.script_source)
        .map_err(io("cannot open", &plan.script_source))?
        .take(MAX_SCRIPT_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(io("cannot read", &plan.script_source))?;
    if body.len() as u64 > MAX_SCRIPT_BYTES {
        return Err(SandboxError::BadScript {
            path: plan.script_source.clone(),
            reason: format!("larger than {MAX_SCRIPT_BYTES} bytes"),
        });
    }
    let script = plan.staging_script();
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&script)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &body))
        .map_err(io("cannot write", &script))?;
    let overlay = plan.staging_overlay();
    std::fs::create_dir(&overlay).map_err(io("cannot create", &overlay))?;
    run_checked(&plan.mount_argv())?;
    let argv = plan.systemd_run_argv();
    let status = argv.command().status().map_err(|e| SandboxError::Command {
        argv: argv.to_json_line(),
        reason: e.to_string(),
    })?;
    Ok(status.code().unwrap_or(1))
}

/// True when `path` is a mount point (its device differs from its parent's,
/// or the same bind appears in mountinfo).
fn is_mount_point(path: &Path) -> bool {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = path.display().to_string();
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mount_point| mount_point == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn ids() -> Ids {
        let me = nix::unistd::geteuid().as_raw();
        Ids {
            owner_uid: me,
            owner_gid: 980,
            build_uid: 981,
            build_gid: 981,
        }
    }

    fn root_with(id: &str, script_body: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("overlays").join(id)).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::write(root.join("tmp/build.sh"), script_body).unwrap();
        (dir, root)
    }

    #[test]
    fn grammar() {
        let req = parse(&os(&["12", "/var/lib/left4me/tmp/x.sh"])).unwrap();
        assert_eq!(req.overlay_id, "12");
        for bad in [
            vec![],
            vec!["12"],
            vec!["12", "x.sh"],
            vec!["12", "/a", "b"],
            vec!["../12", "/a"],
            vec!["a/b", "/a"],
        ] {
            assert!(parse(&os(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn resolve_accepts_a_script_under_tmp() {
        let (_d, root) = root_with("7", "echo hi > /overlay/x\n");
        let req = Request {
            overlay_id: "7".into(),
            script: root.join("tmp/build.sh"),
        };
        let plan = resolve(&req, &root, ids()).unwrap();
        assert_eq!(plan.unit, "left4me-script-7.service");
        let run = plan.systemd_run_argv();
        assert_eq!(run.program, "/usr/bin/systemd-run");
        for needed in [
            "--wait",
            "--pipe",
            "--collect",
            "--slice=l4d2-build.slice",
            "--property=MemoryDenyWriteExecute=yes",
            "--property=TemporaryFileSystem=/etc /var/lib",
            "--property=RuntimeMaxSec=3600",
            "--property=CapabilityBoundingSet=",
            "--property=SystemCallFilter=@system-service @network-io",
        ] {
            assert!(run.args.iter().any(|a| a == needed), "missing {needed}");
        }
        assert!(!run.args.iter().any(|a| a.contains("IPAddressAllow")));
        let deny = run
            .args
            .iter()
            .find(|a| a.starts_with("--property=IPAddressDeny="))
            .unwrap();
        for net in [
            "127.0.0.0/8",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "fc00::/7",
            "169.254.0.0/16",
            "224.0.0.0/4",
        ] {
            assert!(deny.contains(net), "{net}");
        }
        let mount = plan.mount_argv();
        assert_eq!(
            mount.args[1],
            format!("--map-users={}:981:1", ids().owner_uid)
        );
        assert_eq!(mount.args[4], root.join("overlays/7").display().to_string());
    }

    #[test]
    fn resolve_rejects_bad_paths() {
        let (_d, root) = root_with("7", "true\n");
        let reject = |id: &str, script: PathBuf| {
            resolve(
                &Request {
                    overlay_id: id.into(),
                    script,
                },
                &root,
                ids(),
            )
            .unwrap_err()
            .to_string()
        };
        // Missing overlay dir.
        assert!(reject("8", root.join("tmp/build.sh")).contains("overlay directory"));
        // Script outside tmp/.
        std::fs::write(root.join("outside.sh"), "true\n").unwrap();
        assert!(reject("7", root.join("outside.sh")).contains("must be a path under"));
        // Symlink inside tmp/ pointing outside.
        std::os::unix::fs::symlink(root.join("outside.sh"), root.join("tmp/link.sh")).unwrap();
        assert!(reject("7", root.join("tmp/link.sh")).contains("without symlinks"));
        // `..` escaping tmp/.
        assert!(reject("7", root.join("tmp/../outside.sh")).contains("must be a path under"));
        // Missing script.
        assert!(reject("7", root.join("tmp/none.sh")).contains("No such file"));
        // A directory.
        std::fs::create_dir(root.join("tmp/dir.sh")).unwrap();
        assert!(reject("7", root.join("tmp/dir.sh")).contains("not a regular file"));
        // Too large.
        std::fs::write(root.join("tmp/big.sh"), vec![b'#'; 1024 * 1024 + 1]).unwrap();
        assert!(reject("7", root.join("tmp/big.sh")).contains("larger than"));
        // Overlay dir that is a symlink.
        std::os::unix::fs::symlink(root.join("tmp"), root.join("overlays/9")).unwrap();
        assert!(reject("9", root.join("tmp/build.sh")).contains("overlay directory"));
    }

    #[test]
    fn resolve_rejects_a_script_owned_by_someone_else() {
        let (_d, root) = root_with("7", "true\n");
        let mut other = ids();
        other.owner_uid += 1;
        let err = resolve(
            &Request {
                overlay_id: "7".into(),
                script: root.join("tmp/build.sh"),
            },
            &root,
            other,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("owned by uid"), "{err}");
    }
}

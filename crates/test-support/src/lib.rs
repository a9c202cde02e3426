//! Shared helpers for left4me's tests (dev-dependency only).
//!
//! * [`require`]: a test that cannot run here says so loudly and is skipped;
//!   with `LEFT4ME_REQUIRE_ALL=1` (CI) the skip is a failure instead.
//! * [`workspace_bin`]: path of a binary built by `cargo test --workspace`.
//! * [`DataRoot`]: a fresh `LEFT4ME_ROOT` with the simulated game installed
//!   through the real `l4d2ctl install` code path.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Returns `true` when the test may proceed. When `available` is false it
/// prints a loud SKIP line and returns `false`, or panics when
/// `LEFT4ME_REQUIRE_ALL=1` is set (CI must not silently skip).
pub fn require(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    if std::env::var("LEFT4ME_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        panic!("LEFT4ME_REQUIRE_ALL=1 but this test cannot run here: {what}");
    }
    // Straight to the stderr handle: libtest captures `eprintln!` of passing
    // tests, and a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!! SKIPPED: {what} (set LEFT4ME_REQUIRE_ALL=1 to make this a failure) !!!!!\n"
    );
    false
}

/// True when the test process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The directory holding the workspace's built binaries (`target/<profile>`),
/// derived from the running test executable (`target/<profile>/deps/<test>`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe of the test binary");
    let deps = exe.parent().expect("test binary has a parent dir");
    let dir = if deps.file_name() == Some(OsStr::new("deps")) {
        deps.parent().expect("deps has a parent").to_path_buf()
    } else {
        deps.to_path_buf()
    };
    dir
}

/// Path of a workspace binary. Panics with a clear message when it has not
/// been built (run the tests with `cargo test --workspace`).
pub fn workspace_bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "binary {} not built; run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}

/// A temporary data root (`LEFT4ME_ROOT`) for one test.
pub struct DataRoot {
    dir: tempfile::TempDir,
}

impl DataRoot {
    /// An empty data root. Created under `$LEFT4ME_TEST_TMP` or the system
    /// temp dir, world-traversable so a test may hand it to another uid.
    pub fn empty() -> Self {
        let base = std::env::var_os("LEFT4ME_TEST_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("left4me-test-")
            .tempdir_in(base)
            .expect("create temp data root");
        DataRoot { dir }
    }

    /// A data root with the simulated game installed by `l4d2ctl install`
    /// (steamcmd-sim as `steam/steamcmd.sh`).
    pub fn installed() -> Self {
        let root = Self::empty();
        let out = root.l4d2ctl(["install"]);
        assert!(
            out.status.success(),
            "l4d2ctl install failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        root
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where the simulated steamcmd is linked: `<root>/steam/steamcmd.sh`.
    pub fn steamcmd(&self) -> PathBuf {
        let steam = self.path().join("steam");
        let link = steam.join("steamcmd.sh");
        if !link.exists() {
            std::fs::create_dir_all(&steam).expect("create steam dir");
            std::os::unix::fs::symlink(workspace_bin("steamcmd-sim"), &link)
                .expect("link steamcmd-sim");
        }
        link
    }

    /// An `l4d2ctl` command with this root's environment (local backend).
    pub fn l4d2ctl_command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(workspace_bin("l4d2ctl"));
        cmd.args(args)
            .env("LEFT4ME_ROOT", self.path())
            .env("LEFT4ME_STEAMCMD", self.steamcmd())
            .env("LEFT4ME_BACKEND", "local");
        cmd
    }

    /// Runs `l4d2ctl` with `args` and returns its output.
    pub fn l4d2ctl<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.l4d2ctl_command(args).output().expect("spawn l4d2ctl")
    }
}

//! Shared helpers for left4me's tests (dev-dependency only).
//!
//! * [`require`]: a test that cannot run here says so loudly and is skipped;
//!   with `LEFT4ME_REQUIRE_ALL=1` (CI) the skip is a failure instead.
//! * [`workspace_bin`]: path of a binary built by `cargo test --workspace`.
//! * [`DataRoot`]: a fresh `LEFT4ME_ROOT` with the simulated game installed
//!   through the real `l4d2ctl install` code path.
//! * [`free_port`], [`free_game_port`]: ports no other test of this process
//!   was handed (every crate's tests share one process).
//! * [`run_in_child_with_env!`]: a test that needs process-wide state (an
//!   environment variable the code reads) runs alone in a child process.
//! * [`write_executable`], [`copy_executable`]: executables other processes
//!   run soon after, written without a descriptor children could inherit.
//! * `sim` (feature): the simulated game server and steamcmd, A2S and RCON.
//! * `steam` (feature): a fake Steam Web API replaying recorded answers.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "steam")]
pub mod steam;

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
            .env("LEFT4ME_BACKEND", "local")
            .env(
                "LEFT4ME_SIM_PUBLISHED_BUILD_FILE",
                self.published_build_file(),
            );
        cmd
    }

    /// The file the simulated Steam reads its newest build from (absent:
    /// build 15000001), private to this root so tests never see another's.
    pub fn published_build_file(&self) -> PathBuf {
        self.path().join("sim-published-build")
    }

    /// Valve publishes build `id`: the next install or update check sees it,
    /// and a running simulated game older than it asks to be restarted.
    pub fn publish_build(&self, id: u64) {
        let file = self.published_build_file();
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, format!("{id}\n")).expect("write the published build");
        std::fs::rename(&tmp, &file).expect("publish the build");
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

/// Ports already handed out by this process: a port is free when checked but
/// only taken once its server binds it, so two concurrent tests must never be
/// handed the same one.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Records `port` as handed out; false when it already was.
fn claim(port: u16) -> bool {
    HANDED_OUT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(port)
}

/// A port free for both UDP and TCP on 127.0.0.1.
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = tcp.local_addr().expect("local_addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() && claim(port) {
            return port;
        }
    }
}

/// A port inside the default game port range (27000-27999) that is free for
/// both UDP and TCP on all addresses now.
pub fn free_game_port() -> u16 {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64;
    for i in 0..1000u64 {
        let port = 27000 + ((seed.wrapping_mul(2654435761).wrapping_add(i * 7919)) % 1000) as u16;
        let udp = UdpSocket::bind(("0.0.0.0", port));
        let tcp = TcpListener::bind(("0.0.0.0", port));
        if udp.is_ok() && tcp.is_ok() && claim(port) {
            return port;
        }
    }
    panic!("no free port in 27000-27999");
}

/// Writes an executable file (`text`, then `mode`) through a child process,
/// never through a descriptor of this one: every child another test forks
/// while such a descriptor is open inherits it, and running the file fails
/// with "Text file busy" until that child has exec'd.
pub fn write_executable(path: &Path, text: &str, mode: u32) {
    let status = Command::new("/bin/sh")
        .args([
            "-c",
            "printf '%s' \"$3\" > \"$1\" && chmod \"$2\" \"$1\"",
            "sh",
        ])
        .arg(path)
        .arg(format!("{mode:o}"))
        .arg(text)
        .stdin(Stdio::null())
        .status()
        .expect("spawn sh");
    assert!(status.success(), "cannot write {}", path.display());
}

/// Copies an executable (content and mode) through a child process, for the
/// reason given at [`write_executable`].
pub fn copy_executable(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("--preserve=mode")
        .arg("--")
        .arg(from)
        .arg(to)
        .stdin(Stdio::null())
        .status()
        .expect("spawn cp");
    assert!(
        status.success(),
        "cannot copy {} to {}",
        from.display(),
        to.display()
    );
}

/// Marks the child process [`run_in_child_with_env`] starts, naming its test.
const CHILD_VAR: &str = "LEFT4ME_TEST_CHILD";

/// The libtest name (`module::test`) of the test whose body expands this.
#[macro_export]
macro_rules! current_test {
    () => {{
        fn here() {}
        $crate::test_name_of(::std::any::type_name_of_val(&here))
    }};
}

/// In a test: `if test_support::run_in_child_with_env!(ENV) { return; }`.
/// See [`run_in_child_with_env`].
#[macro_export]
macro_rules! run_in_child_with_env {
    ($env:expr) => {
        $crate::run_in_child_with_env(&$crate::current_test!(), $env)
    };
}

/// `crate::module::test::{{closure}}::here` (the type name of a function
/// item declared in a test, async or not) to libtest's `module::test`.
pub fn test_name_of(type_name: &str) -> String {
    let mut name = type_name
        .strip_suffix("::here")
        .expect("current_test!() names its probe function `here`");
    while let Some(outer) = name.strip_suffix("::{{closure}}") {
        name = outer;
    }
    match name.split_once("::") {
        Some((_crate, path)) => path.to_string(),
        None => name.to_string(),
    }
}

/// For a test that needs `env` in the process environment (code under test
/// reads it, and setting it here would change every other test of this
/// binary): in the test process, runs just `test` again in a child process
/// of this binary with `env` added, fails when the child's run failed or ran
/// anything but that one test, and returns true (the test is done). In that
/// child, returns false: the test body runs there.
pub fn run_in_child_with_env(test: &str, env: &[(&str, &str)]) -> bool {
    if std::env::var_os(CHILD_VAR).is_some_and(|v| v == OsStr::new(test)) {
        for (key, value) in env {
            assert_eq!(
                std::env::var(key).as_deref(),
                Ok(*value),
                "{test}: the child process lacks {key}"
            );
        }
        return false;
    }
    let exe = std::env::current_exe().expect("current_exe of the test binary");
    // stderr stays the terminal's: SKIPPED lines must be seen.
    let out = Command::new(exe)
        .args([test, "--exact", "--test-threads=1"])
        .env(CHILD_VAR, test)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("spawn the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{test} failed in its child process ({}):\n{stdout}",
        out.status
    );
    assert!(
        stdout.contains("test result: ok. 1 passed;"),
        "the child process did not run exactly {test}:\n{stdout}"
    );
    // Through libtest's capture, like the test's own output would be.
    print!("{stdout}");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_names_drop_the_crate_and_async_closures() {
        assert_eq!(test_name_of("it::overlays::crud::here"), "overlays::crud");
        assert_eq!(
            test_name_of("it::overlays::crud::{{closure}}::here"),
            "overlays::crud"
        );
        assert_eq!(
            current_test!(),
            "tests::test_names_drop_the_crate_and_async_closures"
        );
    }

    #[test]
    fn executables_are_written_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sh");
        let text = "#!/bin/sh\necho \"it's $1\" '%s' \\n\n";
        write_executable(&path, text, 0o750);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o750);
        let out = Command::new(&path).arg("here").output().unwrap();
        // The shell drops the backslash of the unquoted `\n`.
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's here %s n\n");
        let copy = dir.path().join("y.sh");
        copy_executable(&path, &copy);
        assert_eq!(std::fs::read(&copy).unwrap(), text.as_bytes());
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o750);
    }

    #[test]
    fn ports_are_never_handed_out_twice() {
        let ports: BTreeSet<u16> = (0..50).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 50);
        let game = free_game_port();
        assert!((27000..28000).contains(&game) && !ports.contains(&game));
    }
}

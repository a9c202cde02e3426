//! The stand-in for native plugins.
//!
//! Real srcds loads native server plugins (Metamod:Source, SourceMod and
//! their extensions: `.so` files under `left4dead2/addons/`) into the game
//! process: arbitrary code with the server's uid, environment, working
//! directory and file access. The simulator cannot load `.so` plugins, so it
//! runs every regular executable file in `<game dir>/addons/sim-plugins/`
//! (sorted by file name) as a child process with the same rights:
//!
//! - same uid, environment and working directory as the simulator;
//! - stdout/stderr go to the simulator's stdout/stderr, each line prefixed
//!   with `[plugin <file name>] `; stdin is closed;
//! - each plugin runs in its own process group and gets
//!   `PR_SET_PDEATHSIG(SIGKILL)`, so it dies when the simulator dies; a clean
//!   shutdown (and the simulated crash) kills the whole process group;
//! - a plugin that exits is not restarted; a missing directory means no
//!   plugins.
//!
//! When: at engine start, once the game directory is known and before
//! autoexec.cfg, the command line and the first map — where srcds loads
//! server plugins (`SV_InitGameDLL` → `g_pServerPluginHandler->LoadPlugins()`
//! runs inside `Host_Init`, before `exec valve.rc`; engine/sv_main.cpp and
//! engine/host.cpp in the Source SDK 2013 tree). The game's ports are not
//! bound yet at that point, as for a real plugin's `Load`.

use crate::server::console;
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;

/// The plugin directory below the game directory.
pub const PLUGIN_DIR: &str = "addons/sim-plugins";

/// One started plugin.
#[derive(Debug)]
struct Plugin {
    name: String,
    child: Child,
}

/// The running plugins; [`Plugins::stop`] kills them.
#[derive(Debug, Default)]
pub struct Plugins {
    running: Vec<Plugin>,
}

/// Regular executable files (symlinks followed, as dlopen would) in `dir`,
/// sorted by file name. A missing or unreadable directory is no plugins.
pub fn find(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(OsString, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::metadata(e.path())
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .map(|e| (e.file_name(), e.path()))
        .collect();
    found.sort();
    found
        .into_iter()
        .map(|(name, path)| (name.to_string_lossy().into_owned(), path))
        .collect()
}

/// Copies `from` line by line to stdout or stderr with the plugin prefix.
fn forward(name: String, from: impl Read + Send + 'static, to_stderr: bool) {
    let spawned = thread::Builder::new()
        .name("plugin-output".into())
        .spawn(move || {
            let mut reader = BufReader::new(from);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']);
                let prefixed = format!("[plugin {name}] {text}");
                if to_stderr {
                    let mut err = io::stderr().lock();
                    let _ = writeln!(err, "{prefixed}");
                } else {
                    console(&prefixed);
                }
            }
        });
    if let Err(e) = spawned {
        console(&format!("srcds-sim: cannot forward plugin output: {e}"));
    }
}

/// Reports a plugin's exit without reaping it: the zombie keeps its pid —
/// and so its process group id — reserved until [`Plugins::stop`], so the
/// group kill there can never hit an unrelated process.
fn watch_exit(name: String, pid: u32) {
    let spawned = thread::Builder::new()
        .name("plugin-wait".into())
        .spawn(move || {
            let id: libc::id_t = pid;
            loop {
                // SAFETY: waitid only writes the zeroed siginfo_t we own;
                // WNOWAIT leaves the child to be reaped by Child::wait.
                let (rc, info) = unsafe {
                    let mut info: libc::siginfo_t = std::mem::zeroed();
                    let rc =
                        libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT);
                    (rc, info)
                };
                if rc == 0 {
                    // SAFETY: after a successful waitid with WEXITED the
                    // si_status/si_code fields are the ones set for SIGCHLD.
                    let (code, status) = unsafe { (info.si_code, info.si_status()) };
                    let how = if code == libc::CLD_EXITED {
                        format!("exited with status {status}")
                    } else {
                        format!("was killed by signal {status}")
                    };
                    console(&format!("srcds-sim: plugin {name} {how} (not restarted)"));
                    return;
                }
                if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    // ECHILD: already reaped by stop().
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        console(&format!("srcds-sim: cannot watch plugin {pid}: {e}"));
    }
}

impl Plugins {
    /// Starts every plugin found in `<game_dir>/addons/sim-plugins/`.
    ///
    /// Must be called on the thread that lives as long as the simulator (the
    /// main thread): PR_SET_PDEATHSIG fires when the *thread* that forked
    /// the child ends, not the process.
    pub fn start(game_dir: &Path) -> Plugins {
        let dir = game_dir.join(PLUGIN_DIR);
        let mut running = Vec::new();
        for (name, path) in find(&dir) {
            console(&format!("srcds-sim: starting plugin {name}"));
            match spawn(&path) {
                Ok(mut child) => {
                    if let Some(out) = child.stdout.take() {
                        forward(name.clone(), out, false);
                    }
                    if let Some(err) = child.stderr.take() {
                        forward(name.clone(), err, true);
                    }
                    watch_exit(name.clone(), child.id());
                    running.push(Plugin { name, child });
                }
                Err(e) => console(&format!("srcds-sim: plugin {name} failed to start: {e}")),
            }
        }
        Plugins { running }
    }

    /// Process ids of the started plugins (each is its process group id).
    pub fn pids(&self) -> Vec<u32> {
        self.running.iter().map(|p| p.child.id()).collect()
    }

    /// Kills every plugin's process group and reaps the plugins.
    pub fn stop(&mut self) {
        for p in &self.running {
            kill_group(p.child.id());
        }
        for mut p in self.running.drain(..) {
            if let Err(e) = p.child.wait() {
                console(&format!("srcds-sim: cannot reap plugin {}: {e}", p.name));
            }
        }
    }
}

impl Drop for Plugins {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGKILL to the process group led by `pid`.
pub fn kill_group(pid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals that process group only;
    // the group id is a child of ours that has not been reaped yet (see
    // watch_exit), so it cannot name anyone else's group.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

fn spawn(path: &Path) -> io::Result<Child> {
    let parent = std::process::id();
    let mut cmd = Command::new(path);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group: a group kill reaches what the plugin spawns,
        // and the plugin never receives the terminal's or launcher's
        // signals meant for the server.
        .process_group(0);
    // SAFETY: the closure runs in the forked child before exec and calls
    // only async-signal-safe functions (prctl, getppid); it allocates
    // nothing (io::Error::last_os_error / from_raw_os_error do not allocate).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The simulator may have died between fork and prctl; then no
            // death signal would ever come.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    cmd.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_regular_executables_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |name: &str, mode: u32| {
            let p = dir.path().join(name);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        mk("20-b", 0o755);
        mk("10-a", 0o700);
        mk("readme.txt", 0o644);
        std::fs::create_dir(dir.path().join("05-dir")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("10-a"), dir.path().join("30-link")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", dir.path().join("40-dangling")).unwrap();
        let names: Vec<String> = find(dir.path()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["10-a", "20-b", "30-link"]);
        assert!(find(&dir.path().join("missing")).is_empty());
    }
}

//! Starting the game process once its view of the data root exists
//! (`l4d2-launch`).
//!
//! - Under systemd the unit runs `l4d2-launch wait <root> <name>` as the
//!   instance's dynamic user, without privileges. `left4me-overlay attach`
//!   (`ExecStartPost=+`) places the view into this process's mount
//!   namespace; the launcher waits for it, then execs `srcds_run` from the
//!   merged tree. Port and arguments come from the unit's environment
//!   (`EnvironmentFile=instance.env`): the instance files are not visible
//!   to the game.
//! - The local backend as root runs `l4d2-launch local <root> <name>`: it
//!   builds the same view in its own new mount namespace, drops to the
//!   instance's uid and execs `srcds_run`.
//!
//! Either way the game's command line is [`game_args`]: the panel's managed
//! arguments, then the blueprint's, re-checked here.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use l4d2_contract::launch::{self as rules, GamePorts};

use crate::instance::InstanceEnv;
use crate::view::{GameIds, Target, ViewPlan};
use crate::{InstanceName, Layout};

/// The descriptor on which `l4d2-launch local` reports a failure to its
/// starter (named by [`STATUS_FD_ENV`]); it closes unused when the game
/// starts.
pub const STATUS_FD: i32 = 3;
pub const STATUS_FD_ENV: &str = "L4D2_LAUNCH_STATUS_FD";

/// How long the unprivileged launcher waits for its view.
pub const VIEW_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{var} is not set; l4d2-launch runs from the left4me-server@ unit, which loads it from instance.env")]
    MissingEnv { var: &'static str },
    #[error("L4D2_PORT is not a port number")]
    BadPort,
    #[error(transparent)]
    Port(#[from] rules::PortTooHigh),
    #[error("instance arguments: {0}")]
    Args(#[from] rules::LaunchArgError),
    #[error("the game's view of the data root did not appear within {} s (did `left4me-overlay attach` fail? see the unit's log)", VIEW_TIMEOUT.as_secs())]
    NoView,
    #[error(transparent)]
    Instance(#[from] crate::InstanceError),
    #[error(transparent)]
    View(#[from] crate::ViewError),
    #[error("l4d2-launch local must run as root (the local backend starts it when l4d2ctl runs as root)")]
    NotRoot,
    #[error("cannot set no_new_privs: {0}")]
    NoNewPrivs(std::io::Error),
    #[error("cannot start {}: {source}", .program.display())]
    Exec {
        program: PathBuf,
        source: std::io::Error,
    },
}

/// The game's arguments: managed ones first, then the instance's own
/// (checked again: instance.env may have been edited by hand).
pub fn game_args(env: &InstanceEnv) -> Result<Vec<String>, LaunchError> {
    let ports = GamePorts::for_game_port(env.port)?;
    rules::check_user_args(&env.args)?;
    let mut args = rules::managed_args(ports);
    args.extend(env.args.iter().cloned());
    Ok(args)
}

/// systemd mode: waits for the view, then execs the game. Returns only on
/// failure.
pub fn wait_and_exec(root: &Path, name: &InstanceName) -> LaunchError {
    let env = match env_from_process() {
        Ok(env) => env,
        Err(e) => return e,
    };
    let args = match game_args(&env) {
        Ok(args) => args,
        Err(e) => return e,
    };
    let merged = root.join("runtime").join(name.as_str()).join("merged");
    let deadline = Instant::now() + VIEW_TIMEOUT;
    while !view_ready(&merged) {
        if Instant::now() >= deadline {
            return LaunchError::NoView;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    exec_game(&merged, &args, None)
}

/// Local mode (root): builds the view in a new private namespace, drops to
/// the instance's uid, execs the game. Returns only on failure.
pub fn local_exec(layout: &Layout, name: &InstanceName) -> LaunchError {
    let status = status_pipe();
    let error = local_exec_inner(layout, name);
    if let Some(mut pipe) = status {
        use std::io::Write;
        let _ = writeln!(pipe, "{error}");
    }
    error
}

/// The status pipe from the starter, marked close-on-exec so a successful
/// exec of the game closes it.
fn status_pipe() -> Option<std::fs::File> {
    let fd: i32 = std::env::var(STATUS_FD_ENV).ok()?.parse().ok()?;
    std::env::remove_var(STATUS_FD_ENV);
    // SAFETY: the starter passed this descriptor for us alone; nothing else
    // in this process owns it.
    let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC).ok()?;
    Some(owned.into())
}

fn local_exec_inner(layout: &Layout, name: &InstanceName) -> LaunchError {
    let run = || -> Result<(PathBuf, Vec<String>, GameIds), LaunchError> {
        if !rustix::process::geteuid().is_root() {
            return Err(LaunchError::NotRoot);
        }
        let env = InstanceEnv::read(layout, name)?;
        let args = game_args(&env)?;
        let uid = rules::local_game_uid(GamePorts::for_game_port(env.port)?);
        let game = GameIds { uid, gid: uid };
        ViewPlan::prepare(layout, name)?.place(game, Target::Current)?;
        rustix::thread::set_no_new_privs(true).map_err(|e| LaunchError::NoNewPrivs(e.into()))?;
        Ok((layout.merged(name), args, game))
    };
    match run() {
        Ok((merged, args, game)) => exec_game(&merged, &args, Some(game)),
        Err(e) => e,
    }
}

/// The view is in place when `merged` is a mount root with the game in it.
fn view_ready(merged: &Path) -> bool {
    let is_mount = rustix::fs::statx(
        rustix::fs::CWD,
        merged,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        rustix::fs::StatxFlags::BASIC_STATS,
    )
    .is_ok_and(|st| {
        st.stx_attributes_mask
            .contains(rustix::fs::StatxAttributes::MOUNT_ROOT)
            && st
                .stx_attributes
                .contains(rustix::fs::StatxAttributes::MOUNT_ROOT)
    });
    is_mount && merged.join("srcds_run").is_file()
}

fn exec_game(merged: &Path, args: &[String], ids: Option<GameIds>) -> LaunchError {
    // srcds_run cds to its own directory: it must be started through the
    // merged tree, never the installation.
    let program = merged.join("srcds_run");
    let mut cmd = std::process::Command::new(&program);
    cmd.args(args).current_dir(merged.join(rules::GAME_DIR));
    if let Some(ids) = ids {
        // std clears supplementary groups when root sets a uid.
        cmd.uid(ids.uid).gid(ids.gid);
    }
    LaunchError::Exec {
        source: cmd.exec(),
        program,
    }
}

/// Port and arguments as systemd passes them from instance.env.
fn env_from_process() -> Result<InstanceEnv, LaunchError> {
    let port =
        std::env::var("L4D2_PORT").map_err(|_| LaunchError::MissingEnv { var: "L4D2_PORT" })?;
    let port = port
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or(LaunchError::BadPort)?;
    let args =
        std::env::var("L4D2_ARGS").map_err(|_| LaunchError::MissingEnv { var: "L4D2_ARGS" })?;
    Ok(InstanceEnv {
        port,
        args: args.split_whitespace().map(str::to_owned).collect(),
        lowerdirs: Vec::new(),
    })
}

//! Before the panel sends a server's RCON password to `127.0.0.1:<port>`,
//! it checks that every socket listening on that TCP port belongs to the
//! server's own game process. A port another process holds (a stopped
//! server's port taken by someone else, anything squatting on loopback)
//! never receives the password.
//!
//! Under systemd every instance runs as its own (dynamic) user, so the
//! socket's owner uid in `/proc/net/tcp{,6}` identifies it. The local
//! backend run by an unprivileged user runs every game as that same user;
//! there the socket must also be one of the instance's processes' own
//! descriptors (the server leads its own session).

use std::collections::HashSet;

use crate::l4d2ctl::InstanceStatus;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotOwned {
    #[error("the server is not running")]
    NotRunning,
    #[error("nothing listens on TCP port {0}")]
    NoListener(u16),
    #[error("TCP port {port} is held by another process (uid {uid}), not by this server; its RCON password was not sent")]
    OtherUid { port: u16, uid: u32 },
    #[error("TCP port {0} is held by another process of the same user, not by this server; its RCON password was not sent")]
    OtherProcess(u16),
    #[error("cannot read the host's sockets: {0}")]
    Proc(String),
}

/// A listening TCP socket: its owner uid and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Listener {
    uid: u32,
    inode: u64,
}

/// Checks that `port` belongs to the instance described by `status`.
pub fn check(port: u16, status: Option<&InstanceStatus>) -> Result<(), NotOwned> {
    let Some((uid, pid)) = status
        .filter(|s| s.is_up())
        .and_then(|s| Some((s.service.uid?, s.service.pid?)))
    else {
        return Err(NotOwned::NotRunning);
    };
    let mut listeners = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(table) {
            Ok(text) => listeners.extend(listeners_on(&text, port)),
            // No IPv6 on this host.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(NotOwned::Proc(format!("{table}: {e}"))),
        }
    }
    if listeners.is_empty() {
        return Err(NotOwned::NoListener(port));
    }
    if let Some(other) = listeners.iter().find(|l| l.uid != uid) {
        return Err(NotOwned::OtherUid {
            port,
            uid: other.uid,
        });
    }
    // The instance shares its uid with the panel (local backend as a
    // normal user): the uid proves nothing, the descriptors do.
    if uid == rustix::process::geteuid().as_raw() {
        let own = session_sockets(pid);
        if listeners.iter().any(|l| !own.contains(&l.inode)) {
            return Err(NotOwned::OtherProcess(port));
        }
    }
    Ok(())
}

/// Listening sockets on local `port` in one `/proc/net/tcp*` table.
fn listeners_on(table: &str, port: u16) -> Vec<Listener> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, uid, inode) = (
                fields.get(1)?,
                fields.get(3)?,
                fields.get(7)?,
                fields.get(9)?,
            );
            let local_port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (local_port == port && *state == LISTEN).then_some(Listener {
                uid: uid.parse().ok()?,
                inode: inode.parse().ok()?,
            })
        })
        .collect()
}

/// Inodes of the sockets held by the processes of session `sid`.
fn session_sockets(sid: u32) -> HashSet<u64> {
    let mut inodes = HashSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return inodes;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if session_of(pid) != Some(sid) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if let Some(inode) = target
                    .to_str()
                    .and_then(|t| t.strip_prefix("socket:["))
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|t| t.parse().ok())
                {
                    inodes.insert(inode);
                }
            }
        }
    }
    inodes
}

/// Field 6 of `/proc/<pid>/stat` (after the parenthesised command name).
fn session_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:6993 00000000:0000 0A 00000000:00000000 00:00000000 00000000 61234        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:6993 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 0 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000   980        0 777 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn finds_only_listeners_on_the_port() {
        assert_eq!(
            listeners_on(TABLE, 27027),
            vec![Listener {
                uid: 61234,
                inode: 4242
            }]
        );
        assert_eq!(listeners_on(TABLE, 8000).len(), 1);
        assert!(listeners_on(TABLE, 1).is_empty());
        assert!(listeners_on("garbage\nmore garbage", 27027).is_empty());
    }

    #[test]
    fn a_stopped_server_gets_nothing() {
        assert_eq!(check(27027, None), Err(NotOwned::NotRunning));
    }

    #[test]
    fn a_socket_of_another_uid_or_process_is_refused() {
        // A listener of this test process, seen as the "instance" of a
        // different uid and of a different session.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = rustix::process::geteuid().as_raw();
        let status = |uid: u32, pid: u32| InstanceStatus {
            name: "a".into(),
            exists: true,
            backend: "local".into(),
            port: Some(port),
            service: l4d2_contract::status::ServiceState {
                active_state: "active".into(),
                sub_state: "running".into(),
                pid: Some(pid),
                uid: Some(uid),
                ..l4d2_contract::status::ServiceState::stopped()
            },
        };
        let e = check(port, Some(&status(me + 1, 1))).unwrap_err();
        assert!(
            matches!(e, NotOwned::OtherUid { uid, .. } if uid == me),
            "{e}"
        );
        // Same uid, but not in the instance's session (pid 1's).
        assert_eq!(
            check(port, Some(&status(me, 1))),
            Err(NotOwned::OtherProcess(port))
        );
        // Our own session holds it: accepted.
        let sid = session_of(std::process::id()).unwrap();
        assert_eq!(check(port, Some(&status(me, sid))), Ok(()));
        drop(listener);
        assert_eq!(
            check(port, Some(&status(me, sid))),
            Err(NotOwned::NoListener(port))
        );
    }
}

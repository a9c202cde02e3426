//! The RCON listener: accepting connections, authentication, bans and the
//! bounds on connections that never authenticate.
//!
//! Like srcds (`engine/sv_rcon.cpp`, `engine/sv_remoteaccess.cpp`):
//! - a connection from an address on the `addip` list is closed at accept
//!   (`CRConServer::ShouldAcceptSocket` → `Filter_ShouldDiscard`);
//! - a wrong password is answered with AUTH_RESPONSE id -1, unless it makes
//!   the address cross the `sv_rcon_*` limits: then the address is banned
//!   and the connection closed without a reply (`BadPassword`,
//!   `HandleFailedRconAuth`; see filter.rs).
//!
//! Not like srcds: the engine polls every socket from its frame loop, so an
//! idle socket costs it nothing and it has no limit or timeout for
//! unauthenticated connections. The simulator spends a thread per
//! connection, so it bounds them instead, with its own cvars:
//! - `sim_rcon_max_unauthenticated` (default 16): when a new connection
//!   would exceed it, the *oldest* unauthenticated connection is closed — a
//!   flood of idle sockets cannot lock a legitimate client out, it only
//!   shortens how long an unauthenticated socket may wait;
//! - `sim_rcon_auth_timeout` (seconds, default 15): a connection that has
//!   not authenticated by then is closed.
//!
//! Authenticated connections are capped at [`MAX_AUTHENTICATED`].

use crate::filter::{self, Verdict};
use crate::rcon::{self, Packet};
use crate::server::{console, is_poll_timeout, Origin, Server};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// At most this many authenticated RCON connections at once.
pub const MAX_AUTHENTICATED: usize = 32;
/// How often a session wakes to check shutdown and its deadline.
const READ_POLL: Duration = Duration::from_millis(250);

/// Book-keeping of live connections.
#[derive(Debug, Default)]
pub struct Gate {
    next_id: AtomicU64,
    /// Unauthenticated connections, oldest first, with a handle to close them.
    waiting: Mutex<VecDeque<(u64, SocketAddr, TcpStream)>>,
    authenticated: AtomicUsize,
}

impl Gate {
    fn waiting(&self) -> MutexGuard<'_, VecDeque<(u64, SocketAddr, TcpStream)>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection, closing the oldest unauthenticated ones
    /// beyond `max`. `None` if the stream cannot be tracked.
    fn admit(&self, stream: &TcpStream, peer: SocketAddr, max: usize) -> Option<u64> {
        let handle = stream.try_clone().ok()?;
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let mut waiting = self.waiting();
        while waiting.len() >= max.max(1) {
            let Some((_, old_peer, old)) = waiting.pop_front() else {
                break;
            };
            // The session's blocking read returns at once and it ends.
            let _ = old.shutdown(Shutdown::Both);
            console(&format!(
                "srcds-sim: RCON: closing unauthenticated connection from {old_peer} (more than sim_rcon_max_unauthenticated = {max})"
            ));
        }
        waiting.push_back((id, peer, handle));
        Some(id)
    }

    /// Moves a connection from waiting to authenticated. False if it was
    /// closed meanwhile or the authenticated limit is reached.
    fn promote(&self, id: u64) -> bool {
        let mut waiting = self.waiting();
        let Some(i) = waiting.iter().position(|(w, _, _)| *w == id) else {
            return false;
        };
        waiting.remove(i);
        let n = self.authenticated.fetch_add(1, Ordering::SeqCst);
        if n >= MAX_AUTHENTICATED {
            self.authenticated.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        true
    }

    fn forget(&self, id: u64, was_authenticated: bool) {
        if was_authenticated {
            self.authenticated.fetch_sub(1, Ordering::SeqCst);
        } else {
            let mut waiting = self.waiting();
            if let Some(i) = waiting.iter().position(|(w, _, _)| *w == id) {
                waiting.remove(i);
            }
        }
    }
}

/// Accepts RCON connections until shutdown.
pub fn accept_loop(server: std::sync::Arc<Server>, listener: TcpListener) {
    while !server.is_shutting_down() {
        match listener.accept() {
            Ok((stream, peer)) => {
                let max = {
                    let mut st = server.lock();
                    if filter::should_discard(&mut st, peer.ip()) {
                        // Closed at once, nothing sent: a banned address.
                        drop(stream);
                        continue;
                    }
                    usize::try_from(st.cvar_int("sim_rcon_max_unauthenticated")).unwrap_or(1)
                };
                let Some(id) = server.rcon_gate.admit(&stream, peer, max) else {
                    continue;
                };
                let s = std::sync::Arc::clone(&server);
                let spawned = thread::Builder::new().name("rcon".into()).spawn(move || {
                    let authenticated = session(&s, stream, peer, id);
                    s.rcon_gate.forget(id, authenticated);
                });
                if spawned.is_err() {
                    server.rcon_gate.forget(id, false);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(25))
            }
            Err(_) => thread::sleep(Duration::from_millis(25)),
        }
    }
}

fn send_all(stream: &mut TcpStream, packets: &[Packet]) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    for p in packets {
        bytes.extend_from_slice(&p.encode());
    }
    stream.write_all(&bytes)
}

/// Per-connection state.
struct Conn {
    id: u64,
    peer: SocketAddr,
    accepted: Instant,
    /// May run commands now.
    authed: bool,
    /// Holds an authenticated slot (a later bad password clears `authed`
    /// but not this, as the engine keeps such a socket open).
    promoted: bool,
}

/// One RCON connection: authenticate, then execute commands in order.
/// Returns whether it held an authenticated slot.
fn session(server: &Server, mut stream: TcpStream, peer: SocketAddr, id: u64) -> bool {
    let mut conn = Conn {
        id,
        peer,
        accepted: Instant::now(),
        authed: false,
        promoted: false,
    };
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(READ_POLL)).is_err() {
        return false;
    }
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if server.is_shutting_down() {
            return conn.promoted;
        }
        if !conn.promoted {
            let timeout = server.lock().cvar_float("sim_rcon_auth_timeout");
            if timeout > 0.0 && conn.accepted.elapsed().as_secs_f64() >= timeout {
                console(&format!(
                    "srcds-sim: RCON: closing connection from {peer}: not authenticated within sim_rcon_auth_timeout ({timeout} s)"
                ));
                return false;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return conn.promoted,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_poll_timeout(&e) => continue,
            Err(_) => return conn.promoted,
        }
        loop {
            let packet = match rcon::take_packet(&mut buf) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                // Garbage on the stream: srcds drops the connection.
                Err(_) => return conn.promoted,
            };
            if !handle_packet(server, &mut stream, &mut conn, packet) {
                return conn.promoted;
            }
        }
    }
}

/// Handles one packet; returns false to close the connection.
fn handle_packet(server: &Server, stream: &mut TcpStream, conn: &mut Conn, packet: Packet) -> bool {
    use rcon::*;
    let peer = conn.peer;
    match packet.kind {
        SERVERDATA_AUTH => {
            let mut lines = Vec::new();
            let (password_set, verdict) = {
                let mut st = server.lock();
                let pw = st.cvar("rcon_password").to_string();
                let ok = !pw.is_empty() && packet.body == pw.as_bytes();
                let verdict = if ok {
                    None
                } else {
                    server.log(&st, &format!("rcon from \"{peer}\": Bad Password"));
                    Some(filter::record_failure(&mut st, peer, &mut lines))
                };
                (!pw.is_empty(), verdict)
            };
            for line in &lines {
                console(line);
            }
            match verdict {
                None => {
                    if !conn.promoted {
                        if !server.rcon_gate.promote(conn.id) {
                            // Closed for the unauthenticated limit meanwhile,
                            // or too many authenticated connections.
                            return false;
                        }
                        conn.promoted = true;
                    }
                    conn.authed = true;
                }
                // Banned: closed without an answer (BCloseAcceptedSocket).
                Some(Verdict::Banned) => return false,
                Some(Verdict::Refused) => conn.authed = false,
            }
            let reply_id = if conn.authed { packet.id } else { -1 };
            let sent = send_all(
                stream,
                &[
                    Packet::new(packet.id, SERVERDATA_RESPONSE_VALUE, Vec::new()),
                    Packet::new(reply_id, SERVERDATA_AUTH_RESPONSE, Vec::new()),
                ],
            );
            // With no rcon_password srcds refuses RCON altogether.
            sent.is_ok() && password_set
        }
        SERVERDATA_EXECCOMMAND if conn.authed => {
            let output = server.execute(&packet.text(), Origin::Rcon(peer));
            send_all(stream, &response_packets(packet.id, output.as_bytes())).is_ok()
        }
        SERVERDATA_EXECCOMMAND => {
            // Commands before a successful auth get the auth failure reply.
            send_all(
                stream,
                &[Packet::new(-1, SERVERDATA_AUTH_RESPONSE, Vec::new())],
            )
            .is_ok()
        }
        SERVERDATA_RESPONSE_VALUE if conn.authed => {
            // The end-of-response trick: mirror the empty packet, then send
            // the 0x00 0x01 0x00 0x00 body srcds follows it with.
            send_all(
                stream,
                &[
                    Packet::new(packet.id, SERVERDATA_RESPONSE_VALUE, Vec::new()),
                    Packet::new(packet.id, SERVERDATA_RESPONSE_VALUE, MIRROR_TRAILER_BODY),
                ],
            )
            .is_ok()
        }
        // Anything else is ignored, as srcds does.
        _ => true,
    }
}

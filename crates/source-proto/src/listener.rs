//! The UDP log listener: game servers send their HL log lines here
//! (`logaddress_add <addr>`), each with its own `sv_logsecret`. A line is
//! attributed to the server registered under its secret; lines without a
//! secret, with an unknown secret or malformed are dropped and counted.
//!
//! Events go out on a tokio broadcast channel: any number of subscribers
//! (live panels), and a slow subscriber lags instead of stalling the socket.

use crate::hllog::{self, LogEvent, LogTime};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::broadcast;

/// Default capacity of the event channel.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 4096;
/// Receive buffer we ask the kernel for: bursts (map changes, many servers
/// at once) must not overflow the default ~200 KiB. The kernel caps it at
/// `net.core.rmem_max` (deploy/ raises that to 8 MiB).
pub const RECV_BUFFER_BYTES: usize = 8 * 1024 * 1024;
/// Largest datagram read; longer ones are truncated by the kernel and then
/// fail to parse only if the framing breaks.
const MAX_DATAGRAM: usize = 65_535;

/// Listener setup errors.
#[derive(Debug, Error)]
pub enum ListenerError {
    #[error("cannot bind the log listener to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid log secret: must be 1-{} decimal digits and not 0 (srcds only sends a non-zero integer sv_logsecret)", hllog::MAX_SECRET_LEN)]
    BadSecret,
    #[error("that log secret is already registered for another server")]
    SecretInUse,
}

/// One attributed log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLogEvent {
    pub server_key: i64,
    pub time: LogTime,
    pub event: LogEvent,
    /// The whole line as received (without the newline).
    pub line: String,
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// 'R' packet: the server has no sv_logsecret, so it cannot be trusted.
    NoSecret,
    /// A secret no registered server uses.
    UnknownSecret,
    /// Not a log packet, or a line that is not an HL log line.
    Malformed,
}

/// Counters since the listener was bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerStats {
    pub received: u64,
    pub accepted: u64,
    pub dropped_no_secret: u64,
    pub dropped_unknown_secret: u64,
    pub dropped_malformed: u64,
}

impl ListenerStats {
    pub fn dropped(&self) -> u64 {
        self.dropped_no_secret + self.dropped_unknown_secret + self.dropped_malformed
    }
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    accepted: AtomicU64,
    no_secret: AtomicU64,
    unknown_secret: AtomicU64,
    malformed: AtomicU64,
}

struct Inner {
    socket: UdpSocket,
    secrets: RwLock<HashMap<String, i64>>,
    counters: Counters,
    tx: broadcast::Sender<ServerLogEvent>,
}

/// A bound log listener. Cheap to clone; all clones share the socket,
/// registrations, counters and channel.
#[derive(Clone)]
pub struct LogListener {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LogListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of Debug output (they authenticate servers).
        f.debug_struct("LogListener")
            .field("local_addr", &self.inner.socket.local_addr().ok())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn valid_secret(secret: &str) -> bool {
    !secret.is_empty()
        && secret.len() <= hllog::MAX_SECRET_LEN
        && secret.bytes().all(|b| b.is_ascii_digit())
        && secret.bytes().any(|b| b != b'0')
}

/// A non-blocking UDP socket with a large receive buffer.
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(RECV_BUFFER_BYTES) {
        // Not fatal: the default buffer works, it only drops more in bursts.
        tracing::warn!(error = %e, "cannot enlarge the log listener's receive buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

impl LogListener {
    /// Binds the UDP socket (e.g. `0.0.0.0:28000`); call [`run`](Self::run)
    /// (or [`spawn`](Self::spawn)) to start receiving. Must be called inside
    /// a tokio runtime.
    pub async fn bind(addr: SocketAddr) -> Result<LogListener, ListenerError> {
        Self::bind_with_capacity(addr, DEFAULT_CHANNEL_CAPACITY).await
    }

    /// Like [`bind`](Self::bind) with a chosen event-channel capacity.
    pub async fn bind_with_capacity(
        addr: SocketAddr,
        capacity: usize,
    ) -> Result<LogListener, ListenerError> {
        let socket = bind_udp(addr).map_err(|source| ListenerError::Bind { addr, source })?;
        let (tx, _) = broadcast::channel(capacity.max(1));
        Ok(LogListener {
            inner: Arc::new(Inner {
                socket,
                secrets: RwLock::new(HashMap::new()),
                counters: Counters::default(),
                tx,
            }),
        })
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.socket.local_addr()
    }

    /// Attributes lines carrying `secret` to `server_key`. Re-registering
    /// the same secret for the same key is a no-op.
    pub fn register(&self, secret: String, server_key: i64) -> Result<(), ListenerError> {
        if !valid_secret(&secret) {
            return Err(ListenerError::BadSecret);
        }
        let mut map = self
            .inner
            .secrets
            .write()
            .unwrap_or_else(|p| p.into_inner());
        match map.get(&secret) {
            Some(k) if *k != server_key => Err(ListenerError::SecretInUse),
            _ => {
                map.insert(secret, server_key);
                Ok(())
            }
        }
    }

    /// Forgets a secret; returns the server key it was registered for.
    pub fn unregister(&self, secret: &str) -> Option<i64> {
        self.inner
            .secrets
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(secret)
    }

    /// Forgets every secret of `server_key` (e.g. the server was deleted).
    pub fn unregister_server(&self, server_key: i64) -> usize {
        let mut map = self
            .inner
            .secrets
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let before = map.len();
        map.retain(|_, k| *k != server_key);
        before - map.len()
    }

    /// A receiver of all attributed events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ServerLogEvent> {
        self.inner.tx.subscribe()
    }

    /// Counters since bind.
    pub fn stats(&self) -> ListenerStats {
        let c = &self.inner.counters;
        ListenerStats {
            received: c.received.load(Ordering::Relaxed),
            accepted: c.accepted.load(Ordering::Relaxed),
            dropped_no_secret: c.no_secret.load(Ordering::Relaxed),
            dropped_unknown_secret: c.unknown_secret.load(Ordering::Relaxed),
            dropped_malformed: c.malformed.load(Ordering::Relaxed),
        }
    }

    /// Parses and attributes one datagram without touching counters or the
    /// channel (the pure part of the run loop).
    pub fn classify(&self, datagram: &[u8]) -> Result<ServerLogEvent, DropReason> {
        let packet = hllog::parse_packet(datagram).map_err(|_| DropReason::Malformed)?;
        let Some(secret) = packet.secret else {
            return Err(DropReason::NoSecret);
        };
        let server_key = {
            let map = self.inner.secrets.read().unwrap_or_else(|p| p.into_inner());
            *map.get(&secret).ok_or(DropReason::UnknownSecret)?
        };
        let (time, event) =
            hllog::parse_line_with_time(&packet.line).map_err(|_| DropReason::Malformed)?;
        Ok(ServerLogEvent {
            server_key,
            time,
            event,
            line: packet.line,
        })
    }

    /// Handles one datagram: counts it, and broadcasts it if attributed.
    pub fn handle_datagram(&self, datagram: &[u8], from: SocketAddr) -> Result<(), DropReason> {
        let c = &self.inner.counters;
        c.received.fetch_add(1, Ordering::Relaxed);
        match self.classify(datagram) {
            Ok(ev) => {
                c.accepted.fetch_add(1, Ordering::Relaxed);
                // No subscribers is not an error: nobody is watching.
                let _ = self.inner.tx.send(ev);
                Ok(())
            }
            Err(reason) => {
                let counter = match reason {
                    DropReason::NoSecret => &c.no_secret,
                    DropReason::UnknownSecret => &c.unknown_secret,
                    DropReason::Malformed => &c.malformed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(%from, ?reason, len = datagram.len(), "log datagram dropped");
                Err(reason)
            }
        }
    }

    /// Receives datagrams forever. Socket errors (e.g. ICMP noise) are
    /// logged and the loop goes on; it only ends when the task is dropped.
    pub async fn run(self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            match self.inner.socket.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    let _ = self.handle_datagram(&buf[..n], from);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "log listener receive failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    }

    /// Spawns [`run`](Self::run) on the current tokio runtime.
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.clone().run())
    }
}

//! The UDP log listener: game servers send their HL log lines here
//! (`logaddress_add <addr>`), each with its own `sv_logsecret`. A line is
//! attributed to the server registered under its secret; lines without a
//! secret, with an unknown secret or malformed are dropped and counted.
//!
//! Events go out on a tokio broadcast channel: any number of subscribers
//! (live panels), and a slow subscriber lags instead of stalling the socket.
//!
//! Parsing never runs on the tokio workers: the receive loop only checks a
//! datagram's size and hands it to one dedicated parser thread through a
//! bounded queue. A flood of (even authenticated) lines can then cost at
//! most that thread's time; datagrams the queue has no room for, and ones
//! longer than srcds sends, are dropped and counted.

use crate::hllog::{self, LogEvent, LogTime};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
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
/// Receive buffer: the largest UDP payload, so a datagram's real length is
/// seen (and one longer than srcds sends refused) instead of truncated.
const MAX_DATAGRAM: usize = 65_535;
/// Datagrams waiting for the parser thread. Each is at most
/// [`hllog::MAX_PACKET_BYTES`], so the queue holds at most ~5 MiB.
pub const PARSE_QUEUE_CAPACITY: usize = 4096;
/// Name of the thread that parses and attributes log lines.
pub const PARSER_THREAD_NAME: &str = "hllog-parse";

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
    /// Longer than srcds ever sends (see [`hllog::MAX_PACKET_BYTES`] and
    /// [`hllog::MAX_LINE_BYTES`]): refused before it is parsed.
    TooLong,
    /// The parser thread's queue was full (or the thread could not be
    /// started): the datagram was not parsed.
    Overloaded,
}

/// Counters since the listener was bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerStats {
    pub received: u64,
    pub accepted: u64,
    pub dropped_no_secret: u64,
    pub dropped_unknown_secret: u64,
    pub dropped_malformed: u64,
    pub dropped_too_long: u64,
    pub dropped_overloaded: u64,
}

impl ListenerStats {
    pub fn dropped(&self) -> u64 {
        self.dropped_no_secret
            + self.dropped_unknown_secret
            + self.dropped_malformed
            + self.dropped_too_long
            + self.dropped_overloaded
    }
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    accepted: AtomicU64,
    no_secret: AtomicU64,
    unknown_secret: AtomicU64,
    malformed: AtomicU64,
    too_long: AtomicU64,
    overloaded: AtomicU64,
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
            dropped_too_long: c.too_long.load(Ordering::Relaxed),
            dropped_overloaded: c.overloaded.load(Ordering::Relaxed),
        }
    }

    /// Parses and attributes one datagram without touching counters or the
    /// channel (the pure part of the run loop).
    pub fn classify(&self, datagram: &[u8]) -> Result<ServerLogEvent, DropReason> {
        let packet = hllog::parse_packet(datagram).map_err(drop_reason)?;
        let Some(secret) = packet.secret else {
            return Err(DropReason::NoSecret);
        };
        let server_key = {
            let map = self.inner.secrets.read().unwrap_or_else(|p| p.into_inner());
            *map.get(&secret).ok_or(DropReason::UnknownSecret)?
        };
        let (time, event) = hllog::parse_line_with_time(&packet.line).map_err(drop_reason)?;
        Ok(ServerLogEvent {
            server_key,
            time,
            event,
            line: packet.line,
        })
    }

    /// Handles one datagram on the calling thread: counts it, parses it and
    /// broadcasts it if attributed. ([`run`](Self::run) calls this on its
    /// parser thread, never on a tokio worker.)
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
                self.count_drop(reason, from, datagram.len());
                Err(reason)
            }
        }
    }

    fn count_drop(&self, reason: DropReason, from: SocketAddr, len: usize) {
        let c = &self.inner.counters;
        let counter = match reason {
            DropReason::NoSecret => &c.no_secret,
            DropReason::UnknownSecret => &c.unknown_secret,
            DropReason::Malformed => &c.malformed,
            DropReason::TooLong => &c.too_long,
            DropReason::Overloaded => &c.overloaded,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(%from, ?reason, len, "log datagram dropped");
    }

    /// Counts a datagram that never reaches [`handle_datagram`](Self::handle_datagram).
    fn drop_unparsed(&self, reason: DropReason, from: SocketAddr, len: usize) {
        self.inner.counters.received.fetch_add(1, Ordering::Relaxed);
        self.count_drop(reason, from, len);
    }

    /// Starts the parser thread; it ends when the returned sender is dropped.
    fn start_parser(&self) -> std::io::Result<SyncSender<(Vec<u8>, SocketAddr)>> {
        let (tx, rx) = mpsc::sync_channel::<(Vec<u8>, SocketAddr)>(PARSE_QUEUE_CAPACITY);
        let listener = self.clone();
        std::thread::Builder::new()
            .name(PARSER_THREAD_NAME.into())
            .spawn(move || {
                while let Ok((datagram, from)) = rx.recv() {
                    let _ = listener.handle_datagram(&datagram, from);
                }
            })?;
        Ok(tx)
    }

    /// Hands one received datagram to the parser thread (starting it if
    /// needed) without waiting: only its size is looked at here.
    fn dispatch(
        &self,
        parser: &mut Option<SyncSender<(Vec<u8>, SocketAddr)>>,
        datagram: &[u8],
        from: SocketAddr,
        warned: &mut bool,
    ) {
        if datagram.len() > hllog::MAX_PACKET_BYTES {
            self.drop_unparsed(DropReason::TooLong, from, datagram.len());
            return;
        }
        let mut item = (datagram.to_vec(), from);
        // Twice at most: a parser thread that ended (it should not: the
        // parsers never panic) is replaced once, then the datagram is lost.
        for _ in 0..2 {
            let tx = match parser {
                Some(tx) => tx,
                None => match self.start_parser() {
                    Ok(tx) => {
                        *warned = false;
                        parser.insert(tx)
                    }
                    Err(e) => {
                        if !std::mem::replace(warned, true) {
                            tracing::error!(error = %e, "cannot start the log parser thread; log lines are dropped");
                        }
                        break;
                    }
                },
            };
            match tx.try_send(item) {
                Ok(()) => return,
                Err(TrySendError::Full(_)) => break,
                Err(TrySendError::Disconnected(back)) => {
                    *parser = None;
                    item = back;
                }
            }
        }
        self.drop_unparsed(DropReason::Overloaded, from, datagram.len());
    }

    /// Receives datagrams forever and hands them to the parser thread.
    /// Socket errors (e.g. ICMP noise) are logged and the loop goes on; it
    /// only ends when the task is dropped, and the parser thread with it.
    pub async fn run(self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut parser = None;
        let mut warned = false;
        loop {
            match self.inner.socket.recv_from(&mut buf).await {
                Ok((n, from)) => self.dispatch(&mut parser, &buf[..n], from, &mut warned),
                Err(e) => {
                    tracing::warn!(error = %e, "log listener receive failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    }

    /// Spawns [`run`](Self::run) on the current tokio runtime. Aborting the
    /// task also ends the parser thread.
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.clone().run())
    }
}

fn drop_reason(e: hllog::LogError) -> DropReason {
    match e {
        hllog::LogError::TooLong { .. } => DropReason::TooLong,
        _ => DropReason::Malformed,
    }
}

//! Source RCON client (Valve Developer Wiki, *Source RCON Protocol*).
//!
//! Frame: `size:i32le id:i32le type:i32le body NUL NUL`, where `size` counts
//! the bytes after itself. The client authenticates with SERVERDATA_AUTH and
//! gets SERVERDATA_AUTH_RESPONSE with its id back, or id -1 for a wrong
//! password. Long command output arrives as several RESPONSE_VALUE packets;
//! the end is found with the standard trick: send an empty RESPONSE_VALUE
//! right after the command; the server answers commands in order, so its
//! mirror of that packet marks the end of the command's output.
//!
//! Hand-written rather than a crate: the protocol is tiny, and we must own
//! the limits (packet size, total response size) and timeouts, because the
//! peer is a game server that may be hostile, hung or restarting.

use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Client → server: log in with the rcon_password.
pub const SERVERDATA_AUTH: i32 = 3;
/// Server → client: result of SERVERDATA_AUTH (same value as EXECCOMMAND).
pub const SERVERDATA_AUTH_RESPONSE: i32 = 2;
/// Client → server: run a console command.
pub const SERVERDATA_EXECCOMMAND: i32 = 2;
/// Server → client: command output (also the client's end marker).
pub const SERVERDATA_RESPONSE_VALUE: i32 = 0;
/// Smallest legal `size`: id + type + two NUL terminators.
pub const MIN_PACKET_SIZE: i32 = 10;
/// Largest `size` we send; the wiki's limit, which srcds enforces on input.
pub const MAX_REQUEST_SIZE: i32 = 4096;
/// Largest `size` we accept from a server. srcds itself stays within 4096,
/// but some Source-protocol servers send more; anything beyond this is
/// garbage or an attack, not output.
pub const MAX_RESPONSE_PACKET_SIZE: i32 = 16 * 1024;
/// Default cap on one command's total output.
pub const DEFAULT_MAX_RESPONSE: usize = 4 * 1024 * 1024;
/// Longest command that fits one request packet.
pub const MAX_COMMAND_LEN: usize = (MAX_REQUEST_SIZE - MIN_PACKET_SIZE) as usize;

/// Everything that can go wrong talking RCON.
#[derive(Debug, Error)]
pub enum RconError {
    #[error("cannot connect to RCON at {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("RCON I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("RCON server closed the connection")]
    ConnectionClosed,
    #[error("RCON authentication failed: wrong rcon_password")]
    AuthFailed,
    #[error("RCON {what} timed out after {after:?}")]
    Timeout { what: &'static str, after: Duration },
    #[error("incomplete RCON packet: have {have} bytes, need {need}")]
    Incomplete { have: usize, need: usize },
    #[error("RCON packet size {size} outside {MIN_PACKET_SIZE}..={max}")]
    BadSize { size: i32, max: i32 },
    #[error("RCON packet body is not NUL-terminated")]
    Unterminated,
    #[error("RCON command is {len} bytes; at most {MAX_COMMAND_LEN} fit one packet")]
    CommandTooLong { len: usize },
    #[error("RCON command contains a NUL byte")]
    CommandHasNul,
    #[error("RCON response exceeds the {limit}-byte cap")]
    ResponseTooLarge { limit: usize },
    #[error("unexpected RCON packet (id {id}, type {kind}) while {during}")]
    Unexpected {
        id: i32,
        kind: i32,
        during: &'static str,
    },
    #[error("RCON connection is unusable after an earlier failure; reconnect")]
    Broken,
}

impl RconError {
    /// True for failures after which the TCP connection cannot be trusted
    /// and a fresh connection may succeed (e.g. the server restarted).
    pub fn is_connection_failure(&self) -> bool {
        matches!(
            self,
            RconError::Io(_)
                | RconError::ConnectionClosed
                | RconError::Broken
                | RconError::Connect { .. }
        )
    }
}

/// One RCON packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub id: i32,
    pub kind: i32,
    /// Body up to its NUL terminator.
    pub body: Vec<u8>,
}

/// Wire bytes of a request packet. Errors when the body cannot be framed
/// (too long for [`MAX_REQUEST_SIZE`] or containing NUL).
pub fn encode_packet(packet: &Packet) -> Result<Vec<u8>, RconError> {
    if packet.body.contains(&0) {
        return Err(RconError::CommandHasNul);
    }
    if packet.body.len() > MAX_COMMAND_LEN {
        return Err(RconError::CommandTooLong {
            len: packet.body.len(),
        });
    }
    let size = packet.body.len() as i32 + MIN_PACKET_SIZE;
    let mut out = Vec::with_capacity(size as usize + 4);
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&packet.id.to_le_bytes());
    out.extend_from_slice(&packet.kind.to_le_bytes());
    out.extend_from_slice(&packet.body);
    out.extend_from_slice(&[0, 0]);
    Ok(out)
}

/// Decodes one packet from the front of `buf`; returns it with the number of
/// bytes it used. [`RconError::Incomplete`] means more bytes are needed;
/// other errors mean the stream is garbage.
pub fn decode_packet(buf: &[u8]) -> Result<(Packet, usize), RconError> {
    let Some(size_bytes) = buf.get(..4) else {
        return Err(RconError::Incomplete {
            have: buf.len(),
            need: 4,
        });
    };
    let size = i32::from_le_bytes([size_bytes[0], size_bytes[1], size_bytes[2], size_bytes[3]]);
    if !(MIN_PACKET_SIZE..=MAX_RESPONSE_PACKET_SIZE).contains(&size) {
        return Err(RconError::BadSize {
            size,
            max: MAX_RESPONSE_PACKET_SIZE,
        });
    }
    // In range 10..=16384, so the cast and addition cannot overflow.
    let total = 4 + size as usize;
    let Some(frame) = buf.get(4..total) else {
        return Err(RconError::Incomplete {
            have: buf.len(),
            need: total,
        });
    };
    let id = i32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
    let kind = i32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let payload = &frame[8..];
    // The body is a C string; the empty second string follows it. srcds's
    // end marker carries bytes after the first NUL, which we ignore.
    let end = payload
        .iter()
        .position(|b| *b == 0)
        .ok_or(RconError::Unterminated)?;
    Ok((
        Packet {
            id,
            kind,
            body: payload[..end].to_vec(),
        },
        total,
    ))
}

/// An authenticated RCON connection. Not `Clone`; one command at a time.
pub struct RconClient {
    stream: TcpStream,
    peer: SocketAddr,
    timeout: Duration,
    max_response: usize,
    next_id: i32,
    /// Bytes read but not yet decoded.
    buf: Vec<u8>,
    /// Set after any failure that leaves the stream in an unknown state.
    broken: bool,
}

impl std::fmt::Debug for RconClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RconClient")
            .field("peer", &self.peer)
            .field("timeout", &self.timeout)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl RconClient {
    /// Connects and authenticates; `timeout` bounds the connect + auth and
    /// later each [`exec`](Self::exec).
    pub async fn connect(
        addr: SocketAddr,
        password: &str,
        timeout: Duration,
    ) -> Result<RconClient, RconError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(RconError::Timeout {
                    what: "connect",
                    after: timeout,
                })
            }
            Ok(Err(source)) => return Err(RconError::Connect { addr, source }),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let mut client = RconClient {
            stream,
            peer: addr,
            timeout,
            max_response: DEFAULT_MAX_RESPONSE,
            next_id: 1,
            buf: Vec::with_capacity(8192),
            broken: false,
        };
        match tokio::time::timeout(timeout, client.authenticate(password)).await {
            Err(_) => Err(RconError::Timeout {
                what: "authentication",
                after: timeout,
            }),
            Ok(r) => r.map(|()| client),
        }
    }

    /// Caps one command's total output (default [`DEFAULT_MAX_RESPONSE`]).
    pub fn set_max_response(&mut self, bytes: usize) {
        self.max_response = bytes;
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// This end's address (the engine logs it as `rcon from "ip:port"`).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.stream.local_addr().ok()
    }

    fn take_id(&mut self) -> i32 {
        let id = self.next_id;
        // Positive ids only: -1 means "auth failed".
        self.next_id = if self.next_id >= i32::MAX - 2 {
            1
        } else {
            self.next_id + 1
        };
        id
    }

    async fn authenticate(&mut self, password: &str) -> Result<(), RconError> {
        let id = self.take_id();
        self.send(id, SERVERDATA_AUTH, password.as_bytes()).await?;
        loop {
            let p = self.read_packet().await?;
            match p.kind {
                // srcds sends an empty RESPONSE_VALUE before the auth reply.
                SERVERDATA_RESPONSE_VALUE => continue,
                SERVERDATA_AUTH_RESPONSE if p.id == id => return Ok(()),
                SERVERDATA_AUTH_RESPONSE if p.id == -1 => return Err(RconError::AuthFailed),
                _ => {
                    return Err(RconError::Unexpected {
                        id: p.id,
                        kind: p.kind,
                        during: "authenticating",
                    })
                }
            }
        }
    }

    async fn send(&mut self, id: i32, kind: i32, body: &[u8]) -> Result<(), RconError> {
        let bytes = encode_packet(&Packet {
            id,
            kind,
            body: body.to_vec(),
        })?;
        self.stream.write_all(&bytes).await?;
        Ok(())
    }

    async fn read_packet(&mut self) -> Result<Packet, RconError> {
        loop {
            match decode_packet(&self.buf) {
                Ok((packet, used)) => {
                    self.buf.drain(..used);
                    return Ok(packet);
                }
                Err(RconError::Incomplete { .. }) => {}
                Err(e) => return Err(e),
            }
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(RconError::ConnectionClosed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Runs `command` and returns its whole output (all packets joined;
    /// invalid UTF-8 from the server is replaced, since srcds may cut a
    /// player name mid-character).
    pub async fn exec(&mut self, command: &str) -> Result<String, RconError> {
        if self.broken {
            return Err(RconError::Broken);
        }
        // Validate before anything reaches the wire.
        if command.len() > MAX_COMMAND_LEN {
            return Err(RconError::CommandTooLong { len: command.len() });
        }
        if command.as_bytes().contains(&0) {
            return Err(RconError::CommandHasNul);
        }
        let result = match tokio::time::timeout(self.timeout, self.exec_inner(command)).await {
            Err(_) => Err(RconError::Timeout {
                what: "command",
                after: self.timeout,
            }),
            Ok(r) => r,
        };
        if result.is_err() {
            // Half-read output would be taken for the next command's.
            self.broken = true;
        }
        result
    }

    async fn exec_inner(&mut self, command: &str) -> Result<String, RconError> {
        let id = self.take_id();
        let marker = self.take_id();
        self.send(id, SERVERDATA_EXECCOMMAND, command.as_bytes())
            .await?;
        self.send(marker, SERVERDATA_RESPONSE_VALUE, b"").await?;
        let mut output = Vec::new();
        loop {
            let p = self.read_packet().await?;
            match (p.kind, p.id) {
                (SERVERDATA_RESPONSE_VALUE, pid) if pid == id => {
                    if output.len() + p.body.len() > self.max_response {
                        return Err(RconError::ResponseTooLarge {
                            limit: self.max_response,
                        });
                    }
                    output.extend_from_slice(&p.body);
                }
                // The mirror of our empty packet: the command's output is
                // complete. srcds follows it with one more packet of the
                // same id (body 00 01 00 00); ids only grow, so that one is
                // skipped as stale by the next exec.
                (SERVERDATA_RESPONSE_VALUE, pid) if pid == marker => break,
                (SERVERDATA_AUTH_RESPONSE, -1) => return Err(RconError::AuthFailed),
                // Leftovers of earlier commands (e.g. the end-marker trailer).
                (_, pid) if pid < id && pid > 0 => continue,
                (kind, pid) => {
                    return Err(RconError::Unexpected {
                        id: pid,
                        kind,
                        during: "reading command output",
                    })
                }
            }
        }
        Ok(String::from_utf8_lossy(&output).into_owned())
    }
}

/// An RCON connection that reconnects once when the connection broke (e.g.
/// the server restarted) before giving up. Holds the password to log in
/// again; it never appears in `Debug` output.
pub struct RconSession {
    addr: SocketAddr,
    password: String,
    timeout: Duration,
    max_response: usize,
    client: Option<RconClient>,
}

impl std::fmt::Debug for RconSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RconSession")
            .field("addr", &self.addr)
            .field("password", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("connected", &self.client.is_some())
            .finish()
    }
}

impl RconSession {
    /// A session; connects lazily on the first command.
    pub fn new(addr: SocketAddr, password: impl Into<String>, timeout: Duration) -> Self {
        RconSession {
            addr,
            password: password.into(),
            timeout,
            max_response: DEFAULT_MAX_RESPONSE,
            client: None,
        }
    }

    /// This end's address while connected.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.client.as_ref()?.local_addr()
    }

    /// Caps one command's total output.
    pub fn set_max_response(&mut self, bytes: usize) {
        self.max_response = bytes;
        if let Some(c) = self.client.as_mut() {
            c.set_max_response(bytes);
        }
    }

    async fn connected(&mut self) -> Result<&mut RconClient, RconError> {
        if self.client.is_none() {
            let mut c = RconClient::connect(self.addr, &self.password, self.timeout).await?;
            c.set_max_response(self.max_response);
            self.client = Some(c);
        }
        // Just set above when it was None.
        self.client.as_mut().ok_or(RconError::Broken)
    }

    /// Runs `command`; on a broken connection reconnects once and retries.
    /// A command interrupted by a server restart may thus run twice; auth
    /// failures and timeouts are not retried (a retry cannot fix them and a
    /// hung server would double the wait).
    pub async fn exec(&mut self, command: &str) -> Result<String, RconError> {
        let first = match self.connected().await {
            Ok(client) => client.exec(command).await,
            Err(e) => Err(e),
        };
        match first {
            Ok(out) => Ok(out),
            Err(e) if e.is_connection_failure() => {
                tracing::debug!(addr = %self.addr, error = %e, "RCON connection lost; reconnecting once");
                self.client = None;
                let result = self.connected().await?.exec(command).await;
                if result.is_err() {
                    self.client = None;
                }
                result
            }
            Err(e) => {
                if self.client.as_ref().is_some_and(|c| c.broken) {
                    self.client = None;
                }
                Err(e)
            }
        }
    }
}

//! Binding the server's UDP ports the way the engine does.
//!
//! `NET_OpenSocket` / `OpenSocketInternal` in `engine/net_ws.cpp` (the
//! Source SDK 2013 tree, github.com/nillerusr/source-engine, and the CS:GO
//! tree, github.com/perilouswithadollarsign/cstrike15_src, agree):
//!
//! - a port in use (EADDRINUSE) makes the engine try the next one, up to
//!   `PORT_TRY_MAX` (32) ports; it warns
//!   `WARNING: Port <p> was unavailable - bound to port <q> instead`;
//! - with `-strictportbind` any such shift ends the process with
//!   `ERROR: Port <p> was unavailable - quitting due to "-strictportbind" command-line flag!`
//!   — for every UDP socket it opens, the client and SourceTV ones included;
//! - when no port of the range is free the socket is not opened
//!   (`WARNING: UDP_OpenSocket: unable to bind socket`); the client socket
//!   then takes any port, the others end the process
//!   (`Couldn't allocate any <name> IP port`);
//! - a cvar value of 0 means the module's default port (for the client
//!   socket that default is `PORT_SERVER`, 27015 — an engine quirk kept here).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use thiserror::Error;

/// `PORT_TRY_MAX` (engine/net.h).
pub const PORT_TRY_MAX: u16 = 32;
/// `PORT_SERVER` (common/proto_oob.h).
pub const PORT_SERVER: u16 = 27015;
/// `PORT_HLTV` (common/proto_oob.h).
pub const PORT_HLTV: u16 = 27020;

/// A socket the engine would have ended the process over.
#[derive(Debug, Error)]
pub enum BindError {
    #[error(
        "ERROR: Port {0} was unavailable - quitting due to \"-strictportbind\" command-line flag!"
    )]
    Strict(u16),
    #[error("Couldn't allocate any {0} IP port")]
    NoPort(&'static str),
}

/// An opened socket, the port it got and the engine's warnings on the way.
#[derive(Debug)]
pub struct Opened {
    pub socket: UdpSocket,
    pub port: u16,
    pub warnings: Vec<String>,
}

/// Which socket, with its defaults (the `OpenSocketInternal` arguments).
#[derive(Debug, Clone, Copy)]
pub struct Module {
    pub name: &'static str,
    pub default_port: u16,
    /// Retry with any port when the range is exhausted (the client socket).
    pub try_any: bool,
}

pub const CLIENT: Module = Module {
    name: "client",
    default_port: PORT_SERVER,
    try_any: true,
};
pub const HLTV: Module = Module {
    name: "hltv",
    default_port: PORT_HLTV,
    try_any: false,
};

/// A port cvar as `ConVar::GetInt` yields it; what does not fit a port
/// number is treated as 0 (the module's default).
pub fn port_from_cvar(value: i64) -> u16 {
    u16::try_from(value).unwrap_or(0)
}

/// `NET_OpenSocket`: `Ok(None)` when the socket is not opened (the engine
/// returns 0 and the caller decides), `Err` where the engine exits.
fn open_socket(
    ip: Ipv4Addr,
    port: u16,
    strict: bool,
    warnings: &mut Vec<String>,
) -> Result<Option<(UdpSocket, u16)>, BindError> {
    if port == 0 {
        // PORT_ANY: one attempt, any error is final.
        return Ok(match UdpSocket::bind(SocketAddr::from((ip, 0))) {
            Ok(s) => {
                let p = s.local_addr().map(|a| a.port()).unwrap_or(0);
                Some((s, p))
            }
            Err(e) => {
                warnings.push(format!("WARNING: NNET_OpenSocket: bind: {e}"));
                None
            }
        });
    }
    for offset in 0..PORT_TRY_MAX {
        let Some(candidate) = port.checked_add(offset) else {
            break;
        };
        match UdpSocket::bind(SocketAddr::from((ip, candidate))) {
            Ok(s) => {
                if offset > 0 {
                    if strict {
                        return Err(BindError::Strict(port));
                    }
                    warnings.push(format!(
                        "WARNING: Port {port} was unavailable - bound to port {candidate} instead"
                    ));
                }
                return Ok(Some((s, candidate)));
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => {
                warnings.push(format!("WARNING: NNET_OpenSocket: bind: {e}"));
                return Ok(None);
            }
        }
    }
    if strict {
        return Err(BindError::Strict(port));
    }
    warnings.push("WARNING: UDP_OpenSocket: unable to bind socket".into());
    Ok(None)
}

/// `OpenSocketInternal` for `module`, with `port` from its cvar.
pub fn open_udp(
    ip: Ipv4Addr,
    port: u16,
    module: Module,
    strict: bool,
) -> Result<Opened, BindError> {
    let port = if port == 0 { module.default_port } else { port };
    let mut warnings = Vec::new();
    let mut opened = open_socket(ip, port, strict, &mut warnings)?;
    if opened.is_none() && module.try_any {
        opened = open_socket(ip, 0, strict, &mut warnings)?;
    }
    match opened {
        Some((socket, port)) => Ok(Opened {
            socket,
            port,
            warnings,
        }),
        None => Err(BindError::NoPort(module.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_udp_port() -> (UdpSocket, u16) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = s.local_addr().unwrap().port();
        (s, p)
    }

    #[test]
    fn free_port_binds_as_asked() {
        let (probe, port) = free_udp_port();
        drop(probe);
        let o = open_udp(Ipv4Addr::LOCALHOST, port, CLIENT, true).unwrap();
        assert_eq!(o.port, port);
        assert!(o.warnings.is_empty());
    }

    #[test]
    fn busy_port_shifts_or_quits_with_strictportbind() {
        let (busy, port) = free_udp_port();
        match open_udp(Ipv4Addr::LOCALHOST, port, CLIENT, true) {
            Err(BindError::Strict(p)) => assert_eq!(p, port),
            other => panic!("expected the strict error, got {other:?}"),
        }
        let o = open_udp(Ipv4Addr::LOCALHOST, port, CLIENT, false).unwrap();
        assert_ne!(o.port, port);
        assert!(
            o.warnings[0].starts_with(&format!(
                "WARNING: Port {port} was unavailable - bound to port "
            )),
            "{:?}",
            o.warnings
        );
        assert_eq!(
            BindError::Strict(port).to_string(),
            format!("ERROR: Port {port} was unavailable - quitting due to \"-strictportbind\" command-line flag!")
        );
        drop(busy);
    }

    #[test]
    fn out_of_range_cvar_values_mean_the_default() {
        assert_eq!(port_from_cvar(27005), 27005);
        assert_eq!(port_from_cvar(-1), 0);
        assert_eq!(port_from_cvar(70000), 0);
    }
}

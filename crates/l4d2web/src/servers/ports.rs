//! Game port allocation: the lowest port of the configured range that no
//! server row has and no other process holds.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};

use l4d2_contract::launch::GamePorts;

/// True when every port a server on game port `port` binds is free right
/// now: UDP and TCP on the game port (game traffic and A2S, RCON), UDP on
/// its client and SourceTV ports ([`GamePorts`]). The probe sockets close
/// at once.
pub fn port_is_free(port: u16) -> bool {
    let Ok(ports) = GamePorts::for_game_port(port) else {
        return false;
    };
    let udp = |p: u16| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, p)).is_ok();
    udp(ports.game)
        && TcpListener::bind((Ipv4Addr::UNSPECIFIED, ports.game)).is_ok()
        && udp(ports.client)
        && udp(ports.tv)
}

/// The lowest port in `range` (inclusive) that is not in `taken` and is free
/// on the host, or None when the range is exhausted.
pub fn lowest_free(range: (u16, u16), taken: &HashSet<u16>) -> Option<u16> {
    (range.0..=range.1).find(|p| !taken.contains(p) && port_is_free(*p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_client_or_sourcetv_port_makes_the_game_port_unusable() {
        let game = 26_500;
        let client = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, game + 10_000));
        if let Ok(held) = client {
            assert!(!port_is_free(game));
            drop(held);
        }
        let tv = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, game + 20_000));
        if let Ok(held) = tv {
            assert!(!port_is_free(game));
            drop(held);
        }
    }

    #[test]
    fn skips_taken_and_bound_ports() {
        // A port some process (this test) holds on UDP is skipped.
        let held = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let p = held.local_addr().unwrap().port();
        assert!(!port_is_free(p));
        assert_eq!(lowest_free((p, p), &HashSet::new()), None);
        let taken: HashSet<u16> = [p].into();
        assert_eq!(lowest_free((p, p), &taken), None);
        drop(held);
        assert_eq!(lowest_free((p, p), &taken), None, "a server row keeps it");
    }
}

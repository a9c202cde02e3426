//! Game port allocation: the lowest port of the configured range that no
//! server row has and no other process holds.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};

/// True when both UDP and TCP `0.0.0.0:port` can be bound right now (srcds
/// needs both: A2S/game on UDP, RCON on TCP). The probe sockets close at once.
pub fn port_is_free(port: u16) -> bool {
    UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
        && TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
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

//! Which of this node's addresses it tells others (cards, presence
//! records): never where it happens to be listening on a machine's
//! loopback or private network, unless the user said so.
//!
//! A node that listens on a wildcard (`0.0.0.0`, `::`, the default) is
//! told of an address per interface; announcing those would hand every
//! contact (and every relay that stores a record) the machine's loopback,
//! LAN and VPN addresses. What is shared:
//! 1. relay circuit addresses (they work from anywhere and name only the
//!    relay);
//! 2. addresses given with `--announce`;
//! 3. addresses bound for an IP given with `--listen` (not a wildcard);
//! 4. other addresses, and external ones AutoNAT confirmed, only if their
//!    IP is global (not loopback, private, link-local, shared or
//!    documentation ranges).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

/// What the user configured: the IPs named in `--listen` and the
/// `--announce` addresses.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    named: Vec<IpAddr>,
    announce: Vec<Multiaddr>,
}

impl AddressPolicy {
    pub fn new(listen: &[Multiaddr], announce: Vec<Multiaddr>) -> Self {
        let named = listen
            .iter()
            .filter_map(ip_of)
            .filter(|ip| !ip.is_unspecified())
            .collect();
        Self { named, announce }
    }

    /// The addresses to share, in order of preference: circuits, then
    /// announced, then confirmed external, then listened on; each once.
    pub fn shared<'a>(
        &'a self,
        listening: &'a [Multiaddr],
        external: impl Iterator<Item = &'a Multiaddr>,
    ) -> Vec<Multiaddr> {
        let circuits = listening.iter().filter(|a| is_circuit(a));
        let direct = listening.iter().filter(|a| !is_circuit(a));
        let mut out: Vec<Multiaddr> = Vec::new();
        for a in circuits
            .chain(self.announce.iter())
            .chain(external.filter(|a| self.direct_ok(a)))
            .chain(direct.filter(|a| self.direct_ok(a)))
        {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }

    /// A direct (not circuit) address is shared if the user named its IP
    /// or it is global.
    fn direct_ok(&self, addr: &Multiaddr) -> bool {
        match ip_of(addr) {
            Some(ip) => self.named.contains(&ip) || is_global(ip),
            // A DNS name can only have come from the user.
            None => addr
                .iter()
                .any(|p| matches!(p, Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_))),
        }
    }
}

pub(crate) fn is_circuit(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// Whether an IP is reachable on the Internet at large (the ranges of RFC
/// 6890 that are not: loopback, private, shared CGNAT, link-local,
/// documentation, benchmarking, unique local, multicast, unspecified).
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_global_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => is_global_v4(v4),
            None => is_global_v6(ip),
        },
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10, shared address space (carrier-grade NAT).
        || (a == 100 && (b & 0xc0) == 64)
        // 192.0.0.0/24, protocol assignments.
        || (a == 192 && b == 0 && c == 0)
        // 198.18.0.0/15, benchmarking.
        || (a == 198 && (b & 0xfe) == 18)
        // 240.0.0.0/4, reserved.
        || a >= 240)
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local.
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        // 2001:db8::/32 documentation.
        || (s[0] == 0x2001 && s[1] == 0x0db8))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<Multiaddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn a_wildcard_listener_shares_no_loopback_or_private_address() {
        let policy = AddressPolicy::new(&addrs(&["/ip4/0.0.0.0/tcp/0"]), Vec::new());
        let listening = addrs(&[
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/192.168.1.20/tcp/4001",
            "/ip4/10.8.0.2/tcp/4001",
            "/ip4/172.17.0.1/tcp/4001",
            "/ip4/100.101.2.3/tcp/4001",
            "/ip4/169.254.3.4/tcp/4001",
            "/ip6/::1/tcp/4001",
            "/ip6/fe80::1/tcp/4001",
            "/ip6/fd00::5/tcp/4001",
            "/ip4/203.0.114.9/tcp/4001",
            "/ip4/198.51.100.1/tcp/7001/p2p/12D3KooWGzBD1ZuujVuDWk8cqHRWwpWtSvnTNNCXSYb6SGw2vyLx/p2p-circuit",
        ]);
        let shared = policy.shared(&listening, std::iter::empty());
        assert_eq!(
            shared,
            addrs(&[
                "/ip4/198.51.100.1/tcp/7001/p2p/12D3KooWGzBD1ZuujVuDWk8cqHRWwpWtSvnTNNCXSYb6SGw2vyLx/p2p-circuit",
                "/ip4/203.0.114.9/tcp/4001",
            ])
        );
    }

    #[test]
    fn named_listen_ips_and_announced_addresses_are_shared() {
        let policy = AddressPolicy::new(
            &addrs(&["/ip4/127.0.0.1/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"]),
            addrs(&["/dns4/me.example/tcp/4001", "/ip4/192.168.1.20/tcp/4001"]),
        );
        let listening = addrs(&[
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/127.0.0.1/udp/5000/quic-v1",
            "/ip4/192.168.1.20/udp/5000/quic-v1",
        ]);
        let external = addrs(&["/ip4/10.0.0.1/tcp/9", "/ip4/8.8.4.4/tcp/4001"]);
        let shared = policy.shared(&listening, external.iter());
        assert_eq!(
            shared,
            addrs(&[
                "/dns4/me.example/tcp/4001",
                "/ip4/192.168.1.20/tcp/4001",
                "/ip4/8.8.4.4/tcp/4001",
                "/ip4/127.0.0.1/tcp/4001",
                "/ip4/127.0.0.1/udp/5000/quic-v1",
            ])
        );
    }

    #[test]
    fn global_ranges() {
        for ip in ["1.1.1.1", "2a00:1450:4001::1", "::ffff:1.1.1.1"] {
            assert!(is_global(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "172.31.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.0.1",
            "198.19.0.1",
            "224.0.0.251",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:192.168.0.1",
            "fc00::1",
            "fe80::1",
            "2001:db8::1",
        ] {
            assert!(!is_global(ip.parse().unwrap()), "{ip}");
        }
    }
}

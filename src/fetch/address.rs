//! Which addresses an image download may reach: only globally reachable ones. The IANA
//! special-purpose registries come from `ip_network` (`is_global`); on top of them this file
//! refuses what that crate still calls global but a server must not dial on a client's behalf
//! (multicast, IPv6 transition and protocol-assignment ranges), and checks the IPv4 address
//! embedded in IPv4-mapped, NAT64 and 6to4 addresses against the IPv4 rules, so
//! `::ffff:10.0.0.1`, `64:ff9b::a00:1` and `2002:0a00:0001::` are as private as `10.0.0.1`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ip_network::{Ipv4Network, Ipv6Network};

/// IPv4 ranges refused although `ip_network` counts them as global.
const V4_REFUSED: &[(Ipv4Addr, u8)] = &[
    // Multicast: never a web server.
    (Ipv4Addr::new(224, 0, 0, 0), 4),
];

/// IPv6 ranges refused outright: their IPv4 part (if any) cannot be trusted to be checked.
const V6_REFUSED: &[(Ipv6Addr, u8)] = &[
    // IPv4-compatible (deprecated, RFC 4291), which also holds `::` and `::1`.
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96),
    // IPv4/IPv6 translation, local use (RFC 8215).
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48),
    // Discard-only (RFC 6666).
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),
    // IETF protocol assignments (RFC 2928): Teredo 2001::/32, benchmarking, ORCHID, …
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    // Documentation (RFC 3849, RFC 9637).
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),
    // Segment routing SIDs (RFC 9602).
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16),
    // Unique local, site-local (deprecated), link-local.
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
    // Multicast, every scope.
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
];

/// Whether a download may connect to `ip`.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let global = Ipv4Network::new(ip, 32).is_ok_and(|n| n.is_global());
    global && !V4_REFUSED.iter().any(|&(net, len)| in_v4(net, len, ip))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let global = Ipv6Network::new(ip, 128).is_ok_and(|n| n.is_global());
    global && !V6_REFUSED.iter().any(|&(net, len)| in_v6(net, len, ip))
}

/// The IPv4 address an IPv6 address stands for, where the IPv6 range is a way to reach IPv4:
/// IPv4-mapped (`::ffff:a.b.c.d`), NAT64 well-known prefix (`64:ff9b::a.b.c.d`, RFC 6052) and
/// 6to4 (`2002:AABB:CCDD::/48`, RFC 3056).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    if in_v6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96, ip)
        || in_v6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96, ip)
    {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if in_v6(Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16, ip) {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

/// Membership in a table entry; an entry the crate would not take counts as a match, so a
/// mistake in the table refuses rather than allows.
fn in_v4(net: Ipv4Addr, len: u8, ip: Ipv4Addr) -> bool {
    Ipv4Network::new(net, len).map_or(true, |n| n.contains(ip))
}

fn in_v6(net: Ipv6Addr, len: u8, ip: Ipv6Addr) -> bool {
    Ipv6Network::new(net, len).map_or(true, |n| n.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(ip: &str) -> bool {
        is_public(ip.parse().unwrap())
    }

    #[test]
    fn table_entries_are_valid_networks() {
        for &(net, len) in V4_REFUSED {
            assert!(Ipv4Network::new(net, len).is_ok(), "{net}/{len}");
        }
        for &(net, len) in V6_REFUSED {
            assert!(Ipv6Network::new(net, len).is_ok(), "{net}/{len}");
        }
    }

    #[test]
    fn ipv4_special_purpose_ranges_are_refused() {
        for ip in [
            "0.0.0.0",         // this network
            "0.1.2.3",         // this network
            "10.1.2.3",        // private
            "172.16.5.5",      // private
            "172.31.255.255",  // private
            "192.168.0.1",     // private
            "100.64.0.1",      // shared address space (CGNAT)
            "100.127.255.254", // shared address space
            "127.0.0.1",       // loopback
            "127.255.0.9",     // loopback
            "169.254.169.254", // link-local (cloud metadata)
            "192.0.0.1",       // IETF protocol assignments
            "192.0.0.170",     // NAT64 discovery
            "192.0.2.1",       // TEST-NET-1
            "198.51.100.7",    // TEST-NET-2
            "203.0.113.9",     // TEST-NET-3
            "198.18.0.1",      // benchmarking
            "198.19.255.255",  // benchmarking
            "224.0.0.1",       // multicast
            "239.255.255.250", // multicast (SSDP)
            "240.0.0.1",       // reserved
            "255.255.255.255", // broadcast
        ] {
            assert!(!public(ip), "{ip} must be refused");
        }
    }

    #[test]
    fn ipv6_special_purpose_ranges_are_refused() {
        for ip in [
            "::",                  // unspecified
            "::1",                 // loopback
            "::7f00:1",            // IPv4-compatible 127.0.0.1
            "::808:808",           // IPv4-compatible, even of a public address
            "64:ff9b:1::a00:1",    // local-use NAT64
            "100::1",              // discard-only
            "2001::1",             // Teredo
            "2001:0:4136:e378::1", // Teredo
            "2001:2::1",           // benchmarking
            "2001:10::1",          // ORCHID
            "2001:db8::1",         // documentation
            "3fff::1",             // documentation
            "5f00::1",             // SRv6 SIDs
            "fc00::1",             // unique local
            "fd12:3456::1",        // unique local
            "fec0::1",             // site-local
            "fe80::1",             // link-local
            "ff02::1",             // multicast, link scope
            "ff0e::1",             // multicast, global scope
        ] {
            assert!(!public(ip), "{ip} must be refused");
        }
    }

    #[test]
    fn embedded_ipv4_addresses_follow_the_ipv4_rules() {
        for ip in [
            "::ffff:127.0.0.1", // mapped loopback
            "::ffff:10.0.0.1",  // mapped private
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",    // NAT64 of 127.0.0.1
            "64:ff9b::a00:1",     // NAT64 of 10.0.0.1
            "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
            "2002:7f00:1::1",     // 6to4 of 127.0.0.1
            "2002:a00:1::",       // 6to4 of 10.0.0.1
            "2002:c0a8:101::1",   // 6to4 of 192.168.1.1
        ] {
            assert!(!public(ip), "{ip} must be refused");
        }
        for ip in ["::ffff:1.1.1.1", "64:ff9b::101:101", "2002:101:101::1"] {
            assert!(public(ip), "{ip} embeds a public address");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "192.0.0.9",
            "2606:4700::1111",
            "2a00:1450:4001::1",
        ] {
            assert!(public(ip), "{ip} is public");
        }
    }
}

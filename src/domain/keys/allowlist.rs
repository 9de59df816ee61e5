//! CIDR blocks and a key's IP allowlist: parsed with std's `IpAddr` and prefix arithmetic, kept in
//! canonical form (host bits cleared, IPv4-mapped IPv6 written as IPv4), checked without a query.

use std::fmt;
use std::net::IpAddr;

/// The most entries one key's allowlist may hold.
pub const MAX_ENTRIES: usize = 100;

/// An address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// An address (a block of one) or `address/prefix`. Host bits are cleared and an IPv4-mapped
    /// IPv6 block (`::ffff:10.0.0.0/104`) becomes the IPv4 block it means.
    pub fn parse(value: &str) -> Result<Self, String> {
        let (addr, prefix) = match value.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (value, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{value:?} is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{value:?} has a bad prefix length"))?,
            None => max,
        };
        Ok(Self::canonical(addr, prefix))
    }

    fn canonical(addr: IpAddr, prefix: u8) -> Self {
        match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => Self::canonical(IpAddr::V4(v4), prefix - 96),
                _ => Self {
                    addr: IpAddr::V6(mask(v6.octets(), prefix).into()),
                    prefix,
                },
            },
            IpAddr::V4(v4) => Self {
                addr: IpAddr::V4(mask(v4.octets(), prefix).into()),
                prefix,
            },
        }
    }

    /// Whether `ip` is in the block; an IPv4-mapped IPv6 address counts as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_matches(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_matches(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V4(ip)) => {
                prefix_matches(&net.octets(), &ip.to_ipv6_mapped().octets(), self.prefix)
            }
            (IpAddr::V4(_), IpAddr::V6(ip)) => ip
                .to_ipv4_mapped()
                .is_some_and(|ip| self.contains(IpAddr::V4(ip))),
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask<const N: usize>(mut octets: [u8; N], prefix: u8) -> [u8; N] {
    for (i, octet) in octets.iter_mut().enumerate() {
        let bits = usize::from(prefix).saturating_sub(i * 8).min(8);
        *octet &= if bits == 0 { 0 } else { 0xffu8 << (8 - bits) };
    }
    octets
}

fn prefix_matches(net: &[u8], ip: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if net[..full] != ip[..full] {
        return false;
    }
    rest == 0 || (net[full] ^ ip[full]) >> (8 - rest) == 0
}

/// The addresses a key may be used from. Empty: any address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpAllowlist {
    nets: Vec<IpNet>,
    /// False only for an empty list: a stored list whose entries all failed to parse still
    /// restricts (to nothing), so a damaged list never opens a key to every address.
    restricted: bool,
}

impl IpAllowlist {
    /// Entries as a form holds them: separated by commas, spaces or new lines.
    pub fn split(input: &str) -> Vec<String> {
        input
            .split([',', ' ', '\n', '\r', '\t'])
            .filter(|entry| !entry.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Entries separated by commas, spaces or new lines. The message names the first bad entry.
    pub fn parse(input: &str) -> Result<Self, String> {
        Self::from_entries(&Self::split(input))
    }

    /// One address or CIDR block an entry (surrounding blanks ignored; an empty entry is refused).
    /// The message names the first bad entry.
    pub fn from_entries(entries: &[String]) -> Result<Self, String> {
        let mut nets: Vec<IpNet> = Vec::new();
        for entry in entries {
            let net = IpNet::parse(entry.trim()).map_err(|_| {
                format!(
                    "{entry:?} is not an IP address or CIDR block (write e.g. 203.0.113.0/24 or 2001:db8::/32)."
                )
            })?;
            if !nets.contains(&net) {
                nets.push(net);
            }
        }
        if nets.len() > MAX_ENTRIES {
            return Err(format!(
                "An allowlist holds at most {MAX_ENTRIES} entries; combine addresses into wider blocks."
            ));
        }
        Ok(Self {
            restricted: !nets.is_empty(),
            nets,
        })
    }

    /// As stored (canonical entries). An entry that no longer parses matches nothing.
    pub fn stored(entries: &[String]) -> Self {
        Self {
            nets: entries
                .iter()
                .filter_map(|entry| IpNet::parse(entry).ok())
                .collect(),
            restricted: !entries.is_empty(),
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.restricted
    }

    /// Whether a client at `client` may use the key; an unknown client only when the list is empty.
    pub fn allows(&self, client: Option<IpAddr>) -> bool {
        !self.restricted || client.is_some_and(|ip| self.nets.iter().any(|net| net.contains(ip)))
    }

    /// The canonical entries, as stored and shown.
    pub fn entries(&self) -> Vec<String> {
        self.nets.iter().map(ToString::to_string).collect()
    }

    /// One line for pages and the audit trail: "any address" when empty.
    pub fn label(&self) -> String {
        if !self.restricted {
            "any address".into()
        } else {
            self.entries().join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(value: &str) -> IpAddr {
        value.parse().unwrap()
    }

    #[test]
    fn cidr_blocks_match_their_addresses_only() {
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        let one = IpNet::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        let v6 = IpNet::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fe80::1")));
        let odd = IpNet::parse("192.168.0.0/23").unwrap();
        assert!(odd.contains(ip("192.168.1.9")));
        assert!(!odd.contains(ip("192.168.2.9")));
    }

    #[test]
    fn entries_are_kept_in_canonical_form() {
        let list = IpAllowlist::parse(
            "10.1.2.3/16, 203.0.113.9\n2001:DB8:0:0::1/32 ::ffff:192.0.2.0/120 10.1.0.0/16",
        )
        .unwrap();
        assert_eq!(
            list.entries(),
            [
                "10.1.0.0/16",
                "203.0.113.9/32",
                "2001:db8::/32",
                "192.0.2.0/24"
            ]
        );
        assert_eq!(IpAllowlist::parse(" ").unwrap().label(), "any address");
    }

    #[test]
    fn a_bad_entry_is_named() {
        let err = IpAllowlist::parse("10.0.0.0/8, 300.1.1.1").unwrap_err();
        assert!(err.contains("\"300.1.1.1\""), "{err}");
        assert!(
            IpAllowlist::parse("10.0.0.0/33")
                .unwrap_err()
                .contains("10.0.0.0/33")
        );
        assert!(IpAllowlist::parse("fd00::/129").is_err());
    }

    #[test]
    fn an_allowlist_admits_its_addresses_and_mapped_ones_only() {
        let list = IpAllowlist::parse("203.0.113.0/24, 2001:db8::/32").unwrap();
        assert!(list.allows(Some(ip("203.0.113.9"))));
        assert!(list.allows(Some(ip("::ffff:203.0.113.9"))));
        assert!(list.allows(Some(ip("2001:db8:1::5"))));
        assert!(!list.allows(Some(ip("198.51.100.1"))));
        assert!(!list.allows(Some(ip("2001:db9::1"))));
        assert!(!list.allows(None), "no client address: fail closed");
        assert!(IpAllowlist::default().allows(None));
    }

    #[test]
    fn a_damaged_stored_list_admits_nobody() {
        let list = IpAllowlist::stored(&["garbage".into()]);
        assert!(!list.allows(Some(ip("203.0.113.9"))));
        assert!(!list.allows(Some(ip("::"))));
    }
}

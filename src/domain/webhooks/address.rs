//! Where a webhook may go: the SSRF checks on an endpoint's URL and on the addresses it reaches
//! (loopback, private, link-local and other internal addresses are refused unless allowed).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::vocabulary::Role;

/// An endpoint URL: http or https, a host, no credentials in it (receiver authentication is for
/// that), and no internal address written in it unless `allow_private`. A name is checked again
/// at every delivery, against the address it then resolves to.
pub fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    if url.chars().any(char::is_control) {
        return Err("The URL cannot contain control characters.".into());
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|_| "Give a full URL like https://example.com/hooks/gatehouse.".to_owned())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err("The URL must start with https:// (or http://) and name a host.".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("Put credentials under receiver authentication, not in the URL.".into());
    }
    if url.len() > 2000 {
        return Err("The URL is too long (2000 characters at most).".into());
    }
    if let Some(ip) = literal_address(url)
        && !allow_private
        && is_internal(ip)
    {
        return Err(format!(
            "{} is an internal address: webhooks go to public addresses only. For local use, \
             the operator can allow internal addresses with GATEHOUSE_WEBHOOK_ALLOW_PRIVATE=1.",
            shown(ip)
        ));
    }
    Ok(())
}

/// An endpoint's URL as `role` may read it: a receiver's query string often carries a token, so
/// only admins (who may change the endpoint) see it; others see that there is one
/// (`https://hooks.example.com/in?••••`). A fragment is never sent, but is masked with it.
pub fn url_shown_to(url: &str, role: Role) -> String {
    if role >= Role::Admin {
        return url.to_owned();
    }
    match url.find(['?', '#']) {
        Some(at) => format!("{}{}••••", &url[..at], &url[at..=at]),
        None => url.to_owned(),
    }
}

/// An address as a refusal names it: an IPv6 address that carries an IPv4 address with that
/// address beside it (`2002:7f00:1:: (127.0.0.1)`).
pub fn shown(ip: IpAddr) -> String {
    let written = ip.to_string();
    match ip {
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) if !written.ends_with(&v4.to_string()) => format!("{written} ({v4})"),
            _ => written,
        },
        IpAddr::V4(_) => written,
    }
}

/// The IP address written as the URL's host, if one is.
pub fn literal_address(url: &str) -> Option<IpAddr> {
    let url = reqwest::Url::parse(url).ok()?;
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Loopback, private, link-local (cloud metadata), multicast, unspecified and other
/// not-publicly-routed addresses: what a webhook must not reach unless allowed. An IPv6 address
/// that carries an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) is judged by it.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_internal_v4(ip),
        IpAddr::V6(ip) => {
            let first = ip.segments()[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local (fd00:ec2::254 metadata too)
                || (first & 0xffc0) == 0xfe80 // link-local
                || ip.segments()[..3] == [0x64, 0xff9b, 1] // local-use NAT64 (64:ff9b:1::/48)
                || embedded_v4(ip).is_some_and(is_internal_v4)
        }
    }
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`), 6to4 (`2002:AABB:CCDD::/48`, the address in bits
/// 16–48) or Teredo (`2001:0::/32`, the client's address in the last 32 bits, inverted).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let segments = ip.segments();
    let octets = ip.octets();
    let last = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
    match segments {
        [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0, 0, ..] | [0, 0, 0, 0, 0xffff, 0, ..] => {
            Some(last)
        }
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => Some(last),
        [0x2002, ..] => Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5])),
        [0x2001, 0, ..] => Some(Ipv4Addr::from(!u32::from(last))),
        _ => None,
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || a >= 240
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admins_read_a_receiver_urls_query_string() {
        let url = "https://hooks.example.com/in?token=abc#part";
        assert_eq!(url_shown_to(url, Role::Admin), url);
        for role in [Role::Developer, Role::Viewer] {
            assert_eq!(url_shown_to(url, role), "https://hooks.example.com/in?••••");
            assert_eq!(
                url_shown_to("https://hooks.example.com/in", role),
                "https://hooks.example.com/in"
            );
        }
    }

    #[test]
    fn internal_addresses_are_told_from_public_ones() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "224.0.0.1",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "ff02::1",
            "64:ff9b:1::a00:1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "172.32.0.1",
        ] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    /// `v4` written in each IPv6 form that carries an IPv4 address.
    fn embeddings(v4: Ipv4Addr) -> Vec<(&'static str, Ipv6Addr)> {
        let [a, b, c, d] = v4.octets();
        let high = u16::from_be_bytes([a, b]);
        let low = u16::from_be_bytes([c, d]);
        let [ia, ib, ic, id] = (!u32::from(v4)).to_be_bytes();
        vec![
            ("mapped", v4.to_ipv6_mapped()),
            ("compatible", Ipv6Addr::new(0, 0, 0, 0, 0, 0, high, low)),
            ("NAT64", Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, high, low)),
            ("6to4", Ipv6Addr::new(0x2002, high, low, 0, 0, 0, 0, 1)),
            (
                "Teredo",
                // Server 65.54.227.120, flags 0x8000, port 0xffff ^ 40000.
                Ipv6Addr::new(
                    0x2001,
                    0,
                    0x4136,
                    0xe378,
                    0x8000,
                    0xffff ^ 40000,
                    u16::from_be_bytes([ia, ib]),
                    u16::from_be_bytes([ic, id]),
                ),
            ),
        ]
    }

    #[test]
    fn an_ipv6_address_carrying_an_ipv4_address_is_judged_by_it() {
        for internal in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
        ] {
            for (form, ip) in embeddings(internal.parse().unwrap()) {
                assert!(is_internal(IpAddr::V6(ip)), "{internal} as {form}: {ip}");
            }
        }
        for public in ["93.184.216.34", "1.1.1.1", "8.8.8.8", "172.32.0.1"] {
            for (form, ip) in embeddings(public.parse().unwrap()) {
                assert!(!is_internal(IpAddr::V6(ip)), "{public} as {form}: {ip}");
            }
        }
        // As they are written in URLs.
        for written in [
            "::127.0.0.1",
            "::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::10.0.0.1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2002:c0a8:101::",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "2001:0:4136:e378:8000:63bf:5601:5601",
        ] {
            assert!(is_internal(written.parse().unwrap()), "{written}");
        }
        assert!(!is_internal("2002:5db8:d822::1".parse().unwrap()));
        assert!(!is_internal(
            "2001:0:4136:e378:8000:63bf:a247:27dd".parse().unwrap()
        ));
    }
}

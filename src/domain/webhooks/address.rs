//! Where a webhook may go: the SSRF checks on an endpoint's URL and on the addresses it reaches
//! (loopback, private, link-local and other internal addresses are refused unless allowed).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
            "{ip} is an internal address: webhooks go to public addresses only."
        ));
    }
    Ok(())
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
/// not-publicly-routed addresses: what a webhook must not reach unless allowed.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_internal_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let first = ip.segments()[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local (fd00:ec2::254 metadata too)
                || (first & 0xffc0) == 0xfe80 // link-local
                || ip == Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xa9fe, 0xa9fe)
        }
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
}

//! Which registry hosts a build may make this server contact: an operator-configured mirror or insecure
//! registry always; any other host only when it resolves to public addresses, unless the operator allows
//! private ones (`--registry-allow-private`). A base image named by a tenant must not turn the server into
//! a client of its own loopback, private or link-local networks (cloud metadata included).
//!
//! The check resolves the name once before the pull; the registry client resolves it again, so a name
//! that changes its answer in between (DNS rebinding) is not covered.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::options::RegistryConfig;
use crate::error::{ImageError, ImageResult};

/// Fails when `host` (`name[:port]`, `[v6]:port`) may not be contacted under `config`.
pub(crate) async fn check_host(config: &RegistryConfig, host: &str) -> ImageResult<()> {
    let configured = config.insecure.contains(host) || config.mirrors.values().any(|mirror| mirror.host == host);
    if config.allow_private || configured {
        return Ok(());
    }
    let (name, port) = split_host(host);
    // A name that does not resolve is left to the client, which reports it as unreachable.
    let Ok(addresses) = tokio::net::lookup_host((name.as_str(), port)).await else { return Ok(()) };
    for address in addresses {
        if !is_public(address.ip()) {
            return Err(ImageError::ForbiddenRegistry { registry: host.to_owned(), address: address.ip() });
        }
    }
    Ok(())
}

/// `(name, port)` of a registry host; 443 when no port is given.
fn split_host(host: &str) -> (String, u16) {
    if let Some(rest) = host.strip_prefix('[') {
        let (name, tail) = rest.split_once(']').unwrap_or((rest, ""));
        return (name.to_owned(), tail.strip_prefix(':').and_then(|p| p.parse().ok()).unwrap_or(443));
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.parse::<u16>().is_ok() => (name.to_owned(), port.parse().unwrap_or(443)),
        _ => (host.to_owned(), 443),
    }
}

/// Whether `ip` is a public unicast address (not loopback, private, shared, link-local, unspecified,
/// broadcast, multicast, documentation or unique-local; IPv4-mapped IPv6 judged as its IPv4 address).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b); // 100.64.0.0/10, carrier-grade NAT
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || shared
        || a == 0)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || unique_local || link_local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn hosts_split_into_name_and_port() {
        assert_eq!(split_host("127.0.0.1:5000"), ("127.0.0.1".to_owned(), 5000));
        assert_eq!(split_host("registry.example.com"), ("registry.example.com".to_owned(), 443));
        assert_eq!(split_host("[::1]:5000"), ("::1".to_owned(), 5000));
    }

    #[tokio::test]
    async fn private_hosts_are_refused_unless_configured_or_allowed() {
        let mut config = RegistryConfig::default();
        let refused = check_host(&config, "127.0.0.1:5000").await.unwrap_err();
        assert_eq!(refused.code(), "registry_forbidden");
        assert!(check_host(&config, "169.254.169.254").await.is_err(), "cloud metadata");
        config.insecure.insert("127.0.0.1:5000".into());
        assert!(check_host(&config, "127.0.0.1:5000").await.is_ok(), "an insecure registry is configured");
        assert!(check_host(&config, "127.0.0.1:6000").await.is_err(), "another port is not");
        config.allow_private = true;
        assert!(check_host(&config, "127.0.0.1:6000").await.is_ok());
    }
}

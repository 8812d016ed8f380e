//! Which addresses webhook deliveries may go to. By default a webhook may not reach this host or the
//! networks behind it: loopback, private (RFC 1918, shared CGNAT space, IPv6 unique local), link-local,
//! unspecified, multicast, broadcast and reserved addresses, and every address of this server itself, are
//! refused, unless the operator allows them (`--webhook-allow-private`, or `--webhook-allow-cidr` for
//! chosen networks).
//!
//! The check runs when a webhook is registered (a 400) and again at every delivery: the delivery client
//! resolves the host through [`CheckedResolver`], which refuses the name when any of its addresses is
//! refused and otherwise hands exactly the checked addresses to the connector, so a DNS answer that
//! changes between check and connect (rebinding) cannot redirect a delivery.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// The operator's webhook destination policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Allow every address (`--webhook-allow-private`).
    pub allow_private: bool,
    /// Networks allowed even though they would be refused (`--webhook-allow-cidr`).
    pub allow: Vec<IpNet>,
}

/// A destination address the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook destination {address} is refused: it is {kind}; the server operator can allow it with --webhook-allow-private or --webhook-allow-cidr")]
pub struct Refused {
    /// The address.
    pub address: IpAddr,
    /// What kind of address it is.
    pub kind: &'static str,
}

impl TargetPolicy {
    /// A policy allowing every destination (tests, and servers started with `--webhook-allow-private`).
    pub fn allow_all() -> Self {
        Self { allow_private: true, allow: Vec::new() }
    }

    /// Checks one address a delivery would connect to.
    pub fn check(&self, address: IpAddr) -> Result<(), Refused> {
        let address = address.to_canonical();
        if self.allow_private || self.allow.iter().any(|net| net.contains(&address)) {
            return Ok(());
        }
        if let Some(kind) = special_kind(address) {
            return Err(Refused { address, kind });
        }
        if is_own_address(address) {
            return Err(Refused { address, kind: "an address of this server" });
        }
        Ok(())
    }

    /// Checks every address of `host` (an IP literal or a name resolved now); a name that does not
    /// resolve passes (its deliveries are checked when they resolve).
    pub async fn check_host(&self, host: &url::Host<&str>) -> Result<(), Refused> {
        match host {
            url::Host::Ipv4(ip) => self.check(IpAddr::V4(*ip)),
            url::Host::Ipv6(ip) => self.check(IpAddr::V6(*ip)),
            url::Host::Domain(name) => {
                if self.allow_private {
                    return Ok(());
                }
                let Ok(addresses) = tokio::net::lookup_host((*name, 0)).await else { return Ok(()) };
                addresses.into_iter().try_for_each(|address| self.check(address.ip()))
            }
        }
    }
}

/// What kind of non-public address `address` is, if it is one.
pub fn special_kind(address: IpAddr) -> Option<&'static str> {
    match address.to_canonical() {
        IpAddr::V4(ip) => special_v4(ip),
        IpAddr::V6(ip) => special_v6(ip),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(if ip.is_unspecified() || a == 0 {
        "unspecified (0.0.0.0/8)"
    } else if ip.is_loopback() {
        "loopback"
    } else if ip.is_private() {
        "private (RFC 1918)"
    } else if a == 100 && (64..128).contains(&b) {
        "shared address space (100.64.0.0/10)"
    } else if ip.is_link_local() {
        "link-local"
    } else if ip.is_multicast() {
        "multicast"
    } else if ip.is_broadcast() || a >= 240 {
        "reserved or broadcast"
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        "IETF protocol assignments (192.0.0.0/24)"
    } else if ip.is_documentation() || (a == 198 && (18..20).contains(&b)) {
        "documentation or benchmarking"
    } else {
        return None;
    })
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(if ip.is_unspecified() {
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if ip.is_multicast() {
        "multicast"
    } else if first & 0xfe00 == 0xfc00 {
        "unique local (fc00::/7)"
    } else if first & 0xffc0 == 0xfe80 {
        "link-local"
    } else if first & 0xffc0 == 0xfec0 {
        "site-local"
    } else if ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64 well-known prefix: the embedded IPv4 address decides.
        let [.., hi, lo] = ip.segments();
        let embedded = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
        return special_v4(embedded).map(|_| "a NAT64 form of a non-public IPv4 address");
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        "documentation"
    } else {
        return None;
    })
}

/// Whether `address` is one of this host's own addresses (binding a socket to it succeeds).
fn is_own_address(address: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(address, 0)).is_ok()
}

/// The resolver of the webhook delivery client: refuses a name when any address is refused, and
/// returns only checked addresses, which are the ones the client then connects to.
#[derive(Debug, Clone)]
pub struct CheckedResolver {
    policy: Arc<TargetPolicy>,
}

impl CheckedResolver {
    /// A resolver applying `policy`.
    pub fn new(policy: Arc<TargetPolicy>) -> Self {
        Self { policy }
    }
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            for address in &addresses {
                policy.check(address.ip())?;
            }
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// The refusal in `error`'s source chain, if the policy refused the destination.
pub fn refusal_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(refused) = error.downcast_ref::<Refused>() {
            return Some(refused);
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_classified() {
        for refused in [
            "127.0.0.1",
            "127.8.9.10",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "64:ff9b::7f00:1",
        ] {
            assert!(special_kind(ip(refused)).is_some(), "{refused} not refused");
        }
        for public in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "64:ff9b::808:808"] {
            assert_eq!(special_kind(ip(public)), None, "{public} refused");
        }
    }

    #[test]
    fn the_policy_refuses_unless_allowed() {
        let strict = TargetPolicy::default();
        let refused = strict.check(ip("127.0.0.1")).unwrap_err();
        assert_eq!(refused.kind, "loopback");
        assert!(refused.to_string().contains("--webhook-allow-private"));
        assert!(strict.check(ip("169.254.169.254")).is_err());
        assert!(strict.check(ip("8.8.8.8")).is_ok());
        assert!(TargetPolicy::allow_all().check(ip("127.0.0.1")).is_ok());
        let listed = TargetPolicy { allow_private: false, allow: vec!["10.9.0.0/16".parse().unwrap()] };
        assert!(listed.check(ip("10.9.1.1")).is_ok());
        assert!(listed.check(ip("10.8.1.1")).is_err());
        assert!(listed.check(ip("127.0.0.1")).is_err());
    }

    #[tokio::test]
    async fn names_are_refused_by_what_they_resolve_to() {
        let strict = TargetPolicy::default();
        assert!(strict.check_host(&url::Host::Domain("localhost")).await.is_err());
        assert!(strict.check_host(&url::Host::Ipv4(Ipv4Addr::LOCALHOST)).await.is_err());
        assert!(strict.check_host(&url::Host::Domain("no-such-host.invalid")).await.is_ok());
        assert!(TargetPolicy::allow_all().check_host(&url::Host::Domain("localhost")).await.is_ok());
    }
}

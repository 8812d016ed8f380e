//! A sandbox's egress policy ([`NetworkPolicy`]), its validation, and its evaluation order.
//!
//! Semantics (the protocol only names the fields; these follow the SDK's create options and the
//! `--network-json '{"allow_out": [...]}'` CLI example, which must restrict on its own):
//! - `internet_access: false` → nothing leaves the sandbox (DNS included); the lists are ignored.
//! - Otherwise every packet to a new destination is matched against `deny_out` and `allow_out` by
//!   **longest prefix**: the most specific entry containing the destination decides; on equal prefix
//!   length, deny wins. So `deny_out: ["0.0.0.0/0"], allow_out: ["1.2.3.4"]` allows only 1.2.3.4, and
//!   `allow_out: ["10.0.0.0/8"], deny_out: ["10.1.0.0/16"]` allows 10/8 except 10.1/16.
//! - No entry matches → allowed when `allow_out` is empty, denied when it is not (an allowlist).
//! - DNS (port 53) to the node's configured resolvers stays allowed unless a `deny_out` entry contains
//!   the resolver, so allowlisted sandboxes can still resolve names.
//! - Always, independent of the policy: no traffic to the host itself, to other sandboxes, or to
//!   link-local addresses (169.254.0.0/16, cloud metadata endpoints).
//!
//! Entries are IPv4 CIDRs or bare IPv4 addresses. IPv6 entries are accepted in `deny_out` and ignored
//! (sandboxes have no IPv6 at all) and rejected in `allow_out`.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

use super::error::NetworkError;

/// Most entries accepted in each of `allow_out` and `deny_out`.
pub const MAX_POLICY_ENTRIES: usize = 256;

/// Outbound policy of one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPolicy {
    /// Whether the sandbox may reach anything outside the host at all.
    pub internet_access: bool,
    /// Destinations allowed; non-empty turns the policy into an allowlist.
    #[serde(default)]
    pub allow_out: Vec<IpNet>,
    /// Destinations denied.
    #[serde(default)]
    pub deny_out: Vec<IpNet>,
}

impl Default for NetworkPolicy {
    /// Internet on, no lists: the API's default.
    fn default() -> Self {
        Self { internet_access: true, allow_out: Vec::new(), deny_out: Vec::new() }
    }
}

/// Parses one `allow_out`/`deny_out` entry as given in the API: a CIDR (`203.0.113.0/24`) or a bare
/// address (`1.1.1.1`, taken as /32). Host bits are cleared. Domain names are not supported.
pub fn parse_destination(entry: &str) -> Result<IpNet, NetworkError> {
    let entry = entry.trim();
    let parsed = entry.parse::<IpNet>().or_else(|_| entry.parse::<IpAddr>().map(IpNet::from));
    parsed.map(|net| net.trunc()).map_err(|_| NetworkError::InvalidPolicy {
        reason: format!("{entry:?} is not an IP address or CIDR (domain names are not supported)"),
    })
}

pub(crate) fn validate(policy: &NetworkPolicy) -> Result<(), NetworkError> {
    let invalid = |reason: String| Err(NetworkError::InvalidPolicy { reason });
    for (name, list) in [("allow_out", &policy.allow_out), ("deny_out", &policy.deny_out)] {
        if list.len() > MAX_POLICY_ENTRIES {
            return invalid(format!("{name} has {} entries; at most {MAX_POLICY_ENTRIES} are allowed", list.len()));
        }
    }
    if let Some(v6) = policy.allow_out.iter().find(|n| matches!(n, IpNet::V6(_))) {
        return invalid(format!("allow_out entry {v6} is IPv6; sandboxes have IPv4 only"));
    }
    Ok(())
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accept,
    Reject,
}

/// The policy compiled into first-match-wins order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EgressPlan {
    /// Resolvers reachable on port 53 (empty when internet access is off).
    pub dns: Vec<Ipv4Addr>,
    /// Destination rules, most specific first, deny before allow on ties.
    pub rules: Vec<(Ipv4Net, Verdict)>,
    /// Verdict when no rule matches.
    pub default: Verdict,
}

pub(crate) fn plan(policy: &NetworkPolicy, resolvers: &[Ipv4Addr]) -> EgressPlan {
    if !policy.internet_access {
        return EgressPlan { dns: Vec::new(), rules: Vec::new(), default: Verdict::Reject };
    }
    let v4 = |list: &[IpNet]| -> Vec<Ipv4Net> {
        list.iter().filter_map(|n| if let IpNet::V4(n) = n { Some(n.trunc()) } else { None }).collect()
    };
    let (allow, deny) = (v4(&policy.allow_out), v4(&policy.deny_out));
    let mut rules: Vec<(Ipv4Net, Verdict)> = deny
        .iter()
        .map(|n| (*n, Verdict::Reject))
        .chain(allow.iter().filter(|n| !deny.contains(n)).map(|n| (*n, Verdict::Accept)))
        .collect();
    // Stable sort: longest prefix first; deny entries were placed first, so they win ties.
    rules.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
    rules.dedup();
    let dns = resolvers.iter().copied().filter(|r| !deny.iter().any(|n| n.contains(r))).collect();
    let default = if allow.is_empty() { Verdict::Accept } else { Verdict::Reject };
    EgressPlan { dns, rules, default }
}

impl EgressPlan {
    /// What the plan decides for a new connection to `dest` on `port` (the reference semantics the
    /// generated nft rules implement; used by the unit tests).
    #[cfg(test)]
    pub(crate) fn decide(&self, dest: Ipv4Addr, port: u16) -> Verdict {
        if port == 53 && self.dns.contains(&dest) {
            return Verdict::Accept;
        }
        self.rules.iter().find(|(net, _)| net.contains(&dest)).map_or(self.default, |(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(internet: bool, allow: &[&str], deny: &[&str]) -> NetworkPolicy {
        let parse = |l: &[&str]| l.iter().map(|e| parse_destination(e).unwrap()).collect();
        NetworkPolicy { internet_access: internet, allow_out: parse(allow), deny_out: parse(deny) }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    const DNS: [Ipv4Addr; 1] = [Ipv4Addr::new(9, 9, 9, 9)];

    #[test]
    fn parses_addresses_and_cidrs() {
        assert_eq!(parse_destination("1.1.1.1").unwrap().to_string(), "1.1.1.1/32");
        assert_eq!(parse_destination(" 203.0.113.7/24 ").unwrap().to_string(), "203.0.113.0/24");
        assert_eq!(parse_destination("2001:db8::1").unwrap().to_string(), "2001:db8::1/128");
        for bad in ["example.com", "1.2.3.4/33", "", "*"] {
            assert!(matches!(parse_destination(bad), Err(NetworkError::InvalidPolicy { .. })), "{bad}");
        }
    }

    #[test]
    fn validation_limits_lists_and_ipv6_allows() {
        validate(&policy(true, &["1.1.1.1"], &["::/0", "0.0.0.0/0"])).unwrap();
        assert!(validate(&policy(true, &["2001:db8::/32"], &[])).is_err());
        let big = NetworkPolicy {
            deny_out: (0..=MAX_POLICY_ENTRIES as u32).map(|i| IpNet::from(IpAddr::from(Ipv4Addr::from(i)))).collect(),
            ..NetworkPolicy::default()
        };
        assert!(validate(&big).is_err());
    }

    #[test]
    fn default_policy_allows_everything() {
        let p = plan(&NetworkPolicy::default(), &DNS);
        assert_eq!(p.decide(ip("8.8.8.8"), 443), Verdict::Accept);
        assert!(p.rules.is_empty());
    }

    #[test]
    fn internet_off_denies_everything_including_dns_and_allow_entries() {
        let p = plan(&policy(false, &["8.8.8.8"], &[]), &DNS);
        assert_eq!(p.decide(ip("8.8.8.8"), 443), Verdict::Reject);
        assert_eq!(p.decide(DNS[0], 53), Verdict::Reject);
    }

    #[test]
    fn deny_list_blocks_only_its_entries() {
        let p = plan(&policy(true, &[], &["203.0.113.0/24"]), &DNS);
        assert_eq!(p.decide(ip("203.0.113.9"), 80), Verdict::Reject);
        assert_eq!(p.decide(ip("198.51.100.1"), 80), Verdict::Accept);
    }

    #[test]
    fn allow_list_alone_denies_everything_else_but_keeps_dns() {
        let p = plan(&policy(true, &["203.0.113.0/24"], &[]), &DNS);
        assert_eq!(p.decide(ip("203.0.113.9"), 80), Verdict::Accept);
        assert_eq!(p.decide(ip("198.51.100.1"), 80), Verdict::Reject);
        assert_eq!(p.decide(DNS[0], 53), Verdict::Accept);
        assert_eq!(p.decide(DNS[0], 443), Verdict::Reject);
    }

    #[test]
    fn most_specific_entry_wins_and_deny_wins_ties() {
        let p = plan(
            &policy(true, &["1.2.3.4", "10.0.0.0/8", "172.16.0.0/12"], &["0.0.0.0/0", "10.1.0.0/16", "172.16.0.0/12"]),
            &DNS,
        );
        assert_eq!(p.decide(ip("1.2.3.4"), 443), Verdict::Accept);
        assert_eq!(p.decide(ip("1.2.3.5"), 443), Verdict::Reject);
        assert_eq!(p.decide(ip("10.2.0.1"), 443), Verdict::Accept);
        assert_eq!(p.decide(ip("10.1.0.1"), 443), Verdict::Reject);
        assert_eq!(p.decide(ip("172.16.0.1"), 443), Verdict::Reject);
        // 0.0.0.0/0 is denied and contains the resolver: no DNS either.
        assert!(p.dns.is_empty());
    }

    #[test]
    fn ipv6_deny_entries_are_ignored() {
        let p = plan(&policy(true, &[], &["::/0"]), &DNS);
        assert!(p.rules.is_empty());
        assert_eq!(p.default, Verdict::Accept);
    }

    #[test]
    fn policy_json_round_trips_with_optional_lists() {
        let p: NetworkPolicy = serde_json::from_str(r#"{"internet_access":true,"allow_out":["1.1.1.1/32"]}"#).unwrap();
        assert_eq!(p.allow_out.len(), 1);
        assert!(p.deny_out.is_empty());
    }
}

//! nftables: one table `inet nullspace_<bridge>` holding the base chains (host input guard, forward
//! guard, NAT) and one chain per sandbox, reached through the `sandboxes` verdict map keyed by the
//! sandbox address. Every change is one `nft -f -` script, applied atomically.
//!
//! ```text
//! bridges: set of ifname, every bridge of the subnet's segments (see `config`), existing or not yet
//! input_guard   (hook input,  prio -1): from @bridges: established/related accept, everything else drop
//! forward_guard (hook forward, prio -1): @bridges→@bridges drop (sandbox to sandbox, on one bridge
//!                                          or across segments)
//!                                        →@bridges established/related accept, other →@bridges drop
//!                                        @bridges→169.254.0.0/16 reject
//!                                        @bridges: ip saddr vmap @sandboxes (jump sb_<hash>)
//!                                        @bridges: drop (unknown source address)
//! nat_out       (hook postrouting, srcnat): subnet → not @bridges: masquerade
//! sb_<hash>: established accept; [internet off: reject] DNS accept; rules by longest prefix; default
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::command::{self, Tool};
use super::error::NetworkError;
use super::names::CHAIN_PREFIX;
use super::policy::{EgressPlan, Verdict};

/// The verdict map from sandbox address to its chain.
const MAP: &str = "sandboxes";
/// The set of the node's bridges (one per segment of the subnet).
const BRIDGES: &str = "bridges";
const REJECT: &str = "reject with icmpx type admin-prohibited";

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Accept => "accept",
        Verdict::Reject => REJECT,
    }
}

/// The base chains, map and bridge set (`bridges`: every bridge of the subnet's segments, first one
/// first); idempotent (re-flushes and refills the base chains and the set, keeps sandbox chains).
pub(crate) fn base_script(table: &str, bridges: &[String], subnet: Ipv4Net) -> String {
    let t = format!("inet {table}");
    let br = format!("@{BRIDGES}");
    let names = bridges.iter().map(|b| format!("\"{b}\"")).collect::<Vec<_>>().join(", ");
    let mut s = String::new();
    let _ = writeln!(s, "add table {t}");
    let _ = writeln!(s, "add map {t} {MAP} {{ type ipv4_addr : verdict; }}");
    let _ = writeln!(s, "add set {t} {BRIDGES} {{ type ifname; }}");
    let _ = writeln!(s, "flush set {t} {BRIDGES}");
    let _ = writeln!(s, "add element {t} {BRIDGES} {{ {names} }}");
    let _ = writeln!(s, "add chain {t} input_guard {{ type filter hook input priority -1; policy accept; }}");
    let _ = writeln!(s, "flush chain {t} input_guard");
    let _ = writeln!(s, "add rule {t} input_guard iifname {br} ct state established,related accept");
    let _ = writeln!(s, "add rule {t} input_guard iifname {br} drop");
    let _ = writeln!(s, "add chain {t} forward_guard {{ type filter hook forward priority -1; policy accept; }}");
    let _ = writeln!(s, "flush chain {t} forward_guard");
    let _ = writeln!(s, "add rule {t} forward_guard iifname {br} oifname {br} drop");
    let _ = writeln!(s, "add rule {t} forward_guard oifname {br} ct state established,related accept");
    let _ = writeln!(s, "add rule {t} forward_guard oifname {br} drop");
    let _ = writeln!(s, "add rule {t} forward_guard iifname {br} ip daddr 169.254.0.0/16 {REJECT}");
    let _ = writeln!(s, "add rule {t} forward_guard iifname {br} ip saddr vmap @{MAP}");
    let _ = writeln!(s, "add rule {t} forward_guard iifname {br} drop");
    let _ = writeln!(s, "add chain {t} nat_out {{ type nat hook postrouting priority srcnat; policy accept; }}");
    let _ = writeln!(s, "flush chain {t} nat_out");
    let _ = writeln!(s, "add rule {t} nat_out ip saddr {subnet} oifname != {br} masquerade");
    s
}

/// Adds the chain of one sandbox and its map element.
pub(crate) fn sandbox_script(table: &str, chain: &str, addr: Ipv4Addr, plan: &EgressPlan) -> String {
    let t = format!("inet {table}");
    let mut s = String::new();
    let _ = writeln!(s, "add chain {t} {chain}");
    let _ = writeln!(s, "flush chain {t} {chain}");
    let _ = writeln!(s, "add rule {t} {chain} ct state established,related accept");
    if !plan.dns.is_empty() {
        let resolvers = plan.dns.iter().map(Ipv4Addr::to_string).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            s,
            "add rule {t} {chain} ip daddr {{ {resolvers} }} meta l4proto {{ tcp, udp }} th dport 53 accept"
        );
    }
    for (net, v) in &plan.rules {
        let _ = writeln!(s, "add rule {t} {chain} ip daddr {net} {}", verdict(*v));
    }
    let _ = writeln!(s, "add rule {t} {chain} {}", verdict(plan.default));
    let _ = writeln!(s, "add element {t} {MAP} {{ {addr} : jump {chain} }}");
    s
}

/// What of this module's objects a table currently holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TableState {
    /// Whether the table exists at all.
    pub exists: bool,
    /// Per-sandbox chains (`sb_…`).
    pub chains: BTreeSet<String>,
    /// Map elements: sandbox address → chain it jumps to.
    pub elements: BTreeMap<Ipv4Addr, String>,
    /// Number of rules per chain (base chains included).
    pub rules: BTreeMap<String, usize>,
}

impl TableState {
    /// Removes the given sandbox chains and every element pointing at them or keyed by `addrs`;
    /// `None` when there is nothing to remove.
    pub(crate) fn removal_script(&self, table: &str, chains: &BTreeSet<String>, addrs: &[Ipv4Addr]) -> Option<String> {
        let t = format!("inet {table}");
        let mut s = String::new();
        for (addr, target) in &self.elements {
            if chains.contains(target) || addrs.contains(addr) {
                let _ = writeln!(s, "delete element {t} {MAP} {{ {addr} }}");
            }
        }
        for chain in chains.intersection(&self.chains) {
            let _ = writeln!(s, "flush chain {t} {chain}");
            let _ = writeln!(s, "delete chain {t} {chain}");
        }
        (!s.is_empty()).then_some(s)
    }
}

/// Parses `nft -j list table inet <table>` output.
pub(crate) fn parse_table(table: &str, json: &str) -> Result<TableState, NetworkError> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|source| NetworkError::ParseRuleset { table: table.to_owned(), source })?;
    let mut state = TableState::default();
    let items = value.get("nftables").and_then(|v| v.as_array()).cloned().unwrap_or_default();
    for item in items {
        if item.get("table").is_some() {
            state.exists = true;
        }
        if let Some(chain) = item.get("chain").and_then(|c| c.get("name")).and_then(|n| n.as_str()) {
            if chain.starts_with(CHAIN_PREFIX) {
                state.chains.insert(chain.to_owned());
            }
        }
        if let Some(chain) = item.get("rule").and_then(|r| r.get("chain")).and_then(|n| n.as_str()) {
            *state.rules.entry(chain.to_owned()).or_default() += 1;
        }
        let Some(map) = item.get("map").filter(|m| m.get("name").and_then(|n| n.as_str()) == Some(MAP)) else {
            continue;
        };
        for elem in map.get("elem").and_then(|e| e.as_array()).into_iter().flatten() {
            let addr = elem.get(0).and_then(|a| a.as_str()).and_then(|a| a.parse::<Ipv4Addr>().ok());
            let target = elem.get(1).and_then(|v| v.get("jump")).and_then(|j| j.get("target")).and_then(|t| t.as_str());
            if let (Some(addr), Some(target)) = (addr, target) {
                state.elements.insert(addr, target.to_owned());
            }
        }
    }
    Ok(state)
}

/// Applies a script atomically.
pub(crate) async fn apply(script: &str) -> Result<(), NetworkError> {
    command::run(Tool::Nft, &["-f", "-"], Some(script)).await.map(drop)
}

/// Blocking variant of [`apply`].
pub(crate) fn apply_blocking(script: &str) -> Result<(), NetworkError> {
    command::run_blocking(Tool::Nft, &["-f", "-"], Some(script)).map(drop)
}

/// The current state of `table` (empty when it does not exist).
pub(crate) async fn state(table: &str) -> Result<TableState, NetworkError> {
    match command::run(Tool::Nft, &["-j", "list", "table", "inet", table], None).await {
        Ok(json) => parse_table(table, &json),
        Err(NetworkError::Command { stderr, .. }) if stderr.contains("No such file") => Ok(TableState::default()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::policy::{plan, NetworkPolicy};

    #[test]
    fn base_script_guards_host_and_sandboxes_and_masquerades() {
        let bridges = ["nsbr0".to_owned(), "nsbr0-1".to_owned()];
        let s = base_script("nullspace_nsbr0", &bridges, "10.213.0.0/16".parse().unwrap());
        let expected = [
            "add table inet nullspace_nsbr0",
            "add map inet nullspace_nsbr0 sandboxes { type ipv4_addr : verdict; }",
            "add set inet nullspace_nsbr0 bridges { type ifname; }",
            "add element inet nullspace_nsbr0 bridges { \"nsbr0\", \"nsbr0-1\" }",
            "add rule inet nullspace_nsbr0 input_guard iifname @bridges drop",
            "add rule inet nullspace_nsbr0 forward_guard iifname @bridges oifname @bridges drop",
            "add rule inet nullspace_nsbr0 forward_guard iifname @bridges ip saddr vmap @sandboxes",
            "add rule inet nullspace_nsbr0 nat_out ip saddr 10.213.0.0/16 oifname != @bridges masquerade",
        ];
        for line in expected {
            assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
        }
        // Base chains and the set are flushed before being refilled, so re-running is idempotent.
        let flush = s.find("flush set inet nullspace_nsbr0 bridges").unwrap();
        assert!(flush < s.find("add element inet nullspace_nsbr0 bridges").unwrap());
        for chain in ["input_guard", "forward_guard", "nat_out"] {
            let flush = s.find(&format!("flush chain inet nullspace_nsbr0 {chain}")).unwrap();
            let first_rule = s.find(&format!("add rule inet nullspace_nsbr0 {chain} ")).unwrap();
            assert!(flush < first_rule);
        }
        assert!(!s.contains("delete"), "base script never deletes sandbox state");
    }

    #[test]
    fn sandbox_script_orders_rules_like_the_plan() {
        let policy = NetworkPolicy {
            internet_access: true,
            allow_out: vec!["203.0.113.0/24".parse().unwrap()],
            deny_out: vec!["203.0.113.128/25".parse().unwrap()],
        };
        let plan = plan(&policy, &[Ipv4Addr::new(9, 9, 9, 9)]);
        let s = sandbox_script("t", "sb_1", Ipv4Addr::new(10, 213, 0, 2), &plan);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines,
            [
                "add chain inet t sb_1",
                "flush chain inet t sb_1",
                "add rule inet t sb_1 ct state established,related accept",
                "add rule inet t sb_1 ip daddr { 9.9.9.9 } meta l4proto { tcp, udp } th dport 53 accept",
                "add rule inet t sb_1 ip daddr 203.0.113.128/25 reject with icmpx type admin-prohibited",
                "add rule inet t sb_1 ip daddr 203.0.113.0/24 accept",
                "add rule inet t sb_1 reject with icmpx type admin-prohibited",
                "add element inet t sandboxes { 10.213.0.2 : jump sb_1 }",
            ]
        );
    }

    #[test]
    fn internet_off_rejects_everything_new() {
        let plan =
            plan(&NetworkPolicy { internet_access: false, ..NetworkPolicy::default() }, &[Ipv4Addr::new(9, 9, 9, 9)]);
        let s = sandbox_script("t", "sb_1", Ipv4Addr::new(10, 213, 0, 2), &plan);
        assert!(!s.contains("dport 53"));
        assert!(!s.contains(" accept\nadd element") && s.contains("sb_1 reject with icmpx"));
        assert_eq!(s.matches("add rule").count(), 2);
    }

    const LISTING: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "inet", "name": "t", "handle": 2}},
        {"map": {"family": "inet", "name": "sandboxes", "table": "t", "type": "ipv4_addr", "map": "verdict",
                 "elem": [["10.213.0.2", {"jump": {"target": "sb_1"}}], ["10.213.0.3", {"jump": {"target": "sb_2"}}]]}},
        {"chain": {"family": "inet", "table": "t", "name": "forward_guard", "type": "filter", "hook": "forward"}},
        {"chain": {"family": "inet", "table": "t", "name": "sb_1"}},
        {"chain": {"family": "inet", "table": "t", "name": "sb_2"}},
        {"rule": {"family": "inet", "table": "t", "chain": "sb_1", "expr": []}},
        {"rule": {"family": "inet", "table": "t", "chain": "sb_1", "expr": []}},
        {"rule": {"family": "inet", "table": "t", "chain": "forward_guard", "expr": []}}]}"#;

    #[test]
    fn parses_a_table_listing() {
        let state = parse_table("t", LISTING).unwrap();
        assert!(state.exists);
        assert_eq!(state.chains, BTreeSet::from(["sb_1".to_owned(), "sb_2".to_owned()]));
        assert_eq!(state.elements.get(&Ipv4Addr::new(10, 213, 0, 3)).map(String::as_str), Some("sb_2"));
        assert_eq!(state.rules.get("sb_1"), Some(&2));
        assert!(parse_table("t", "not json").is_err());
    }

    #[test]
    fn removal_touches_only_existing_objects_of_the_sandbox() {
        let state = parse_table("t", LISTING).unwrap();
        let chains = BTreeSet::from(["sb_1".to_owned(), "sb_gone".to_owned()]);
        let s = state.removal_script("t", &chains, &[]).unwrap();
        assert_eq!(
            s.lines().collect::<Vec<_>>(),
            ["delete element inet t sandboxes { 10.213.0.2 }", "flush chain inet t sb_1", "delete chain inet t sb_1"]
        );
        assert!(state.removal_script("t", &BTreeSet::from(["sb_gone".to_owned()]), &[]).is_none());
        let by_addr = state.removal_script("t", &BTreeSet::new(), &[Ipv4Addr::new(10, 213, 0, 3)]).unwrap();
        assert_eq!(by_addr, "delete element inet t sandboxes { 10.213.0.3 }\n");
    }
}

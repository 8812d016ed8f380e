//! Checks and normal forms of single instruction values: Go-style durations (HEALTHCHECK), exposed
//! ports, file modes, stop signals, and lexical path cleaning that never climbs above the root.

/// Parses a Go `time.ParseDuration` string (`30s`, `1m30s`, `1.5h`, `250ms`) into nanoseconds.
pub(super) fn duration_ns(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid duration {text:?} (use e.g. 30s, 1m30s, 500ms)");
    if text == "0" {
        return Ok(0);
    }
    let mut rest = text;
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    if total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(total.round() as u64)
}

/// EXPOSE operand: `80`, `80/tcp`, `53/UDP`, `8000-8002/tcp` → `["80/tcp"]` (ranges spelled out).
pub(super) fn exposed_ports(text: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = match text.split_once('/') {
        Some((ports, proto)) => (ports, proto.to_ascii_lowercase()),
        None => (text, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid protocol in {text:?}: use tcp, udp or sctp"));
    }
    let port = |p: &str| match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("invalid port {p:?} in {text:?}: use 1-65535")),
    };
    let (first, last) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(ports)?, port(ports)?),
    };
    if last < first {
        return Err(format!("invalid port range {text:?}"));
    }
    Ok((first..=last).map(|p| format!("{p}/{proto}")).collect())
}

/// `--chmod` takes an octal mode (`755`, `0644`, `4755`).
pub(super) fn check_mode(text: &str) -> Result<(), String> {
    let ok = (3..=4).contains(&text.len())
        && text.chars().all(|c| c.is_digit(8))
        && u32::from_str_radix(text, 8).is_ok_and(|m| m <= 0o7777);
    if ok {
        Ok(())
    } else {
        Err(format!("invalid --chmod {text:?}: use an octal mode such as 755 or 0644"))
    }
}

/// STOPSIGNAL: a signal number (1-64) or a name (`SIGTERM`, `TERM`, `SIGRTMIN+3`).
pub(super) fn check_signal(text: &str) -> Result<(), String> {
    let number = text.parse::<u32>().ok();
    let name = text.strip_prefix("SIG").unwrap_or(text);
    let ok = match number {
        Some(n) => (1..=64).contains(&n),
        None => {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '+' || c == '-')
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("invalid stop signal {text:?}: use a name such as SIGTERM or a number"))
    }
}

/// Lexically cleans `path` against `base` (an absolute directory): `.` and `..` resolved, repeated
/// slashes removed, never above `/`. Returns an absolute path without a trailing slash (except `/`).
pub(super) use nullspace_types::rel_path::resolve_under as clean_under;

/// A build-context source: relative to the context root, cleaned; `None` if it climbs out of it.
pub(super) fn context_source(path: &str) -> Option<String> {
    let mut depth: usize = 0;
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
                depth = depth.checked_sub(1)?;
            }
            p => {
                parts.push(p);
                depth += 1;
            }
        }
    }
    Some(if parts.is_empty() { ".".to_string() } else { parts.join("/") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_go_syntax() {
        assert_eq!(duration_ns("30s"), Ok(30_000_000_000));
        assert_eq!(duration_ns("1m30s"), Ok(90_000_000_000));
        assert_eq!(duration_ns("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(duration_ns("250ms"), Ok(250_000_000));
        assert_eq!(duration_ns("10us"), Ok(10_000));
        assert_eq!(duration_ns("0"), Ok(0));
        for bad in ["", "30", "5x", "s", "1m-3s", "1..2s"] {
            assert!(duration_ns(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_default_to_tcp_and_ranges_expand() {
        assert_eq!(exposed_ports("80").unwrap(), ["80/tcp"]);
        assert_eq!(exposed_ports("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(exposed_ports("8000-8002/tcp").unwrap(), ["8000/tcp", "8001/tcp", "8002/tcp"]);
        for bad in ["0", "70000", "80/icmp", "x", "9-8", ""] {
            assert!(exposed_ports(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modes_and_signals() {
        assert!(check_mode("755").is_ok() && check_mode("0644").is_ok());
        assert!(check_mode("u+x").is_err() && check_mode("999").is_err() && check_mode("7").is_err());
        assert!(check_signal("SIGTERM").is_ok() && check_signal("9").is_ok());
        assert!(check_signal("SIGRTMIN+3").is_ok() && check_signal("QUIT").is_ok());
        assert!(check_signal("0").is_err() && check_signal("sig term").is_err());
    }

    #[test]
    fn paths_never_climb_out() {
        assert_eq!(clean_under("/app", "src/../lib/"), "/app/lib");
        assert_eq!(clean_under("/app", "/../../etc"), "/etc");
        assert_eq!(clean_under("/", "."), "/");
        assert_eq!(context_source("./src/../app.py").as_deref(), Some("app.py"));
        assert_eq!(context_source("/abs/x").as_deref(), Some("abs/x"));
        assert_eq!(context_source(".").as_deref(), Some("."));
        assert_eq!(context_source("../secret"), None);
        assert_eq!(context_source("a/../../b"), None);
    }
}

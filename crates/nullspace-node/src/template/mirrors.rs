//! Which Debian mirrors a template build uses: the ones the host's apt is configured with (so a host
//! behind a local mirror or proxy builds without extra setup), falling back to deb.debian.org.

use std::path::Path;

const FALLBACK_ARCHIVE: &str = "http://deb.debian.org/debian";
const FALLBACK_SECURITY: &str = "http://deb.debian.org/debian-security";
const DEBIAN_SUITES: &[&str] = &[
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "oldoldstable",
    "oldstable",
    "stable",
    "testing",
    "unstable",
];
/// apt options copied from the host's configuration into the build (proxies, and the snapshot-mirror
/// switches some hosts need).
const FORWARDED_APT_OPTIONS: &[&str] =
    &["Acquire::http::Proxy", "Acquire::https::Proxy", "Acquire::Check-Valid-Until", "Acquire::Check-Date"];

/// One enabled `deb` entry of the host's apt sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSource {
    /// Archive URI without a trailing slash.
    pub uri: String,
    /// Suites the entry names.
    pub suites: Vec<String>,
}

/// The sources list lines and apt options handed to mmdebstrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorPlan {
    /// One-line `deb URI SUITE COMPONENTS` entries.
    pub lines: Vec<String>,
    /// `Key "value";` apt options.
    pub apt_options: Vec<String>,
    /// Whether the host's sources were used (false: the deb.debian.org fallback).
    pub from_host: bool,
}

impl MirrorPlan {
    /// The plan for `suite` from the host's apt configuration under `etc_apt` (normally `/etc/apt`).
    pub fn from_host(etc_apt: &Path, suite: &str, components: &[String]) -> Self {
        let mut plan = plan(&read_sources(etc_apt), suite, components);
        plan.apt_options = host_apt_options();
        plan
    }
}

/// Builds the sources for `suite` from the host's entries: every Debian archive URI of the host serves
/// `suite` and `suite-updates`, every security URI serves `suite-security`.
pub fn plan(sources: &[AptSource], suite: &str, components: &[String]) -> MirrorPlan {
    let mut archives: Vec<&str> = Vec::new();
    let mut security: Vec<&str> = Vec::new();
    for source in sources {
        let usable = ["http://", "https://", "file:/"].iter().any(|s| source.uri.starts_with(s));
        for host_suite in source.suites.iter().filter(|_| usable) {
            let target = if host_suite.ends_with("-security") || host_suite.ends_with("/updates") {
                &mut security
            } else {
                &mut archives
            };
            let base = host_suite.split(['-', '/']).next().unwrap_or_default();
            if DEBIAN_SUITES.contains(&base) && !target.contains(&source.uri.as_str()) {
                target.push(source.uri.as_str());
            }
        }
    }
    let from_host = !archives.is_empty();
    if !from_host {
        archives = vec![FALLBACK_ARCHIVE];
        security = vec![FALLBACK_SECURITY];
    }
    let components = components.join(" ");
    let rolling = matches!(suite, "sid" | "unstable" | "experimental");
    let mut lines = Vec::new();
    for uri in &archives {
        lines.push(format!("deb {uri} {suite} {components}"));
        if !rolling {
            lines.push(format!("deb {uri} {suite}-updates {components}"));
        }
    }
    for uri in security.iter().filter(|_| !rolling) {
        lines.push(format!("deb {uri} {suite}-security {components}"));
    }
    MirrorPlan { lines, apt_options: Vec::new(), from_host }
}

/// Enabled `deb` entries of `sources.list` and `sources.list.d/*.{list,sources}`, in apt's order.
pub fn read_sources(etc_apt: &Path) -> Vec<AptSource> {
    let mut files = vec![etc_apt.join("sources.list")];
    if let Ok(entries) = std::fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut extra: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        extra.sort();
        files.extend(extra);
    }
    let mut sources = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        match file.extension().and_then(|e| e.to_str()) {
            Some("list") => sources.extend(parse_one_line(&text)),
            Some("sources") => sources.extend(parse_deb822(&text)),
            _ => {}
        }
    }
    sources
}

/// Parses one-line-style entries: `deb [options] URI SUITE [COMPONENT...]`.
pub fn parse_one_line(text: &str) -> Vec<AptSource> {
    let mut sources = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let Some(rest) = line.strip_prefix("deb ").or_else(|| line.strip_prefix("deb\t")) else {
            continue;
        };
        let mut rest = rest.trim_start();
        if rest.starts_with('[') {
            let Some(end) = rest.find(']') else { continue };
            rest = &rest[end + 1..];
        }
        let mut words = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            sources.push(AptSource { uri: uri.trim_end_matches('/').to_owned(), suites: vec![suite.to_owned()] });
        }
    }
    sources
}

/// Parses deb822-style stanzas (`Types:`, `URIs:`, `Suites:`, `Enabled:`).
pub fn parse_deb822(text: &str) -> Vec<AptSource> {
    let mut sources = Vec::new();
    let mut stanza: Vec<(String, String)> = Vec::new();
    let mut flush = |stanza: &mut Vec<(String, String)>| {
        let field = |name: &str| {
            stanza.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).unwrap_or("")
        };
        let enabled = !field("Enabled").trim().eq_ignore_ascii_case("no");
        let is_deb = field("Types").split_whitespace().any(|t| t == "deb");
        if enabled && is_deb {
            let suites: Vec<String> = field("Suites").split_whitespace().map(str::to_owned).collect();
            for uri in field("URIs").split_whitespace() {
                sources.push(AptSource { uri: uri.trim_end_matches('/').to_owned(), suites: suites.clone() });
            }
        }
        stanza.clear();
    };
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut stanza);
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = stanza.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            stanza.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    flush(&mut stanza);
    sources
}

/// Proxy and validity options from `apt-config dump`, as `Key "value";` lines.
fn host_apt_options() -> Vec<String> {
    let Ok(output) = std::process::Command::new("apt-config").arg("dump").output() else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&output.stdout);
    filter_apt_options(&text)
}

fn filter_apt_options(dump: &str) -> Vec<String> {
    dump.lines()
        .filter(|line| {
            let key = line.split_whitespace().next().unwrap_or_default();
            let value = line[key.len()..].trim();
            FORWARDED_APT_OPTIONS.iter().any(|o| key.eq_ignore_ascii_case(o) || key.starts_with(&format!("{o}::")))
                && value.starts_with('"')
                && value.ends_with("\";")
                && value != "\"\";"
        })
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_DEB822: &str = "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
        URIs: http://mirror.local/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n\
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
        Types: deb\nURIs: http://mirror.local/debian-security\nSuites: bookworm-security\nComponents: main\n\n\
        Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n\n\
        Types: deb-src\nURIs: http://src.local/debian\nSuites: bookworm\n\n\
        Types: deb\nEnabled: no\nURIs: http://disabled.local/debian\nSuites: bookworm\n";

    fn main() -> Vec<String> {
        vec!["main".to_owned()]
    }

    #[test]
    fn deb822_host_mirrors_are_reused_for_the_recipe_suite() {
        let sources = parse_deb822(HOST_DEB822);
        assert_eq!(sources.len(), 3, "{sources:?}");
        let plan = plan(&sources, "bookworm", &main());
        assert!(plan.from_host);
        assert_eq!(
            plan.lines,
            [
                "deb http://mirror.local/debian bookworm main",
                "deb http://mirror.local/debian bookworm-updates main",
                "deb http://mirror.local/debian-security bookworm-security main",
            ]
        );
    }

    #[test]
    fn one_line_sources_with_options_and_comments() {
        let text = "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://ftp.example/debian trixie main contrib\n\
            deb-src http://ftp.example/debian trixie main\n\
            deb http://security.example/debian-security trixie-security main # trailing\n\
            deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n\
            deb cdrom:[Debian]/ bookworm main\n";
        let sources = parse_one_line(text);
        assert_eq!(sources.len(), 4);
        let plan = plan(&sources, "bookworm", &main());
        assert_eq!(
            plan.lines,
            [
                "deb http://ftp.example/debian bookworm main",
                "deb http://ftp.example/debian bookworm-updates main",
                "deb http://security.example/debian-security bookworm-security main",
            ]
        );
    }

    #[test]
    fn non_debian_hosts_fall_back_to_deb_debian_org() {
        let ubuntu = parse_one_line("deb http://archive.ubuntu.com/ubuntu jammy main universe\n");
        let plan = plan(&ubuntu, "bookworm", &main());
        assert!(!plan.from_host);
        assert_eq!(plan.lines[0], "deb http://deb.debian.org/debian bookworm main");
        assert_eq!(plan.lines[2], "deb http://deb.debian.org/debian-security bookworm-security main");
        let sid = super::plan(&[], "sid", &main());
        assert_eq!(sid.lines, ["deb http://deb.debian.org/debian sid main"]);
    }

    #[test]
    fn reads_the_host_layout_and_ignores_disabled_files() {
        let dir = std::env::temp_dir().join(format!("nullspace-mirrors-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sources.list.d")).expect("mkdir");
        std::fs::write(dir.join("sources.list.d/debian.sources"), HOST_DEB822).expect("write");
        std::fs::write(dir.join("sources.list.d/x.list.disabled"), "deb http://no.example/debian bookworm main")
            .expect("write");
        let sources = read_sources(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(sources.iter().all(|s| !s.uri.contains("no.example")));
        assert_eq!(sources.len(), 3);
    }

    #[test]
    fn forwards_only_proxy_and_validity_options() {
        let dump = "APT \"\";\nAcquire::http::Proxy \"http://proxy:3128\";\nAcquire::https::Proxy \"\";\n\
            Acquire::Check-Valid-Until \"false\";\nAcquire::http::Proxy::deb.example \"DIRECT\";\n\
            Dir::Etc \"etc/apt/\";\n";
        assert_eq!(
            filter_apt_options(dump),
            [
                "Acquire::http::Proxy \"http://proxy:3128\";",
                "Acquire::Check-Valid-Until \"false\";",
                "Acquire::http::Proxy::deb.example \"DIRECT\";",
            ]
        );
    }
}

//! Which manifest of a multi-platform image index this host runs: linux/amd64, and among those the one
//! built for the most capable x86-64 micro-architecture level (`variant` `v1`…`v4`) this CPU supports.
//!
//! An entry that names a level is an exact match for that level and is preferred to one that names none
//! (which a builder writes when it did not say what it targeted); levels above the host's are never
//! chosen (their code would fault on an unsupported instruction). Entries that demand OS features or an
//! OS version (Windows-only notions) are skipped. `oci-client`'s own `linux_amd64_resolver` takes the
//! first linux/amd64 entry whatever its variant, which picks the wrong image from such an index.

use oci_client::manifest::{ImageIndexEntry, Platform};

/// The x86-64 micro-architecture level (1–4, the psABI's `x86-64-v1`…`v4`) of the CPU this runs on.
pub fn host_amd64_level() -> u8 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let v2 =
            has!("cmpxchg16b") && has!("popcnt") && has!("sse3") && has!("sse4.1") && has!("sse4.2") && has!("ssse3");
        let v3 = v2
            && has!("avx")
            && has!("avx2")
            && has!("bmi1")
            && has!("bmi2")
            && has!("f16c")
            && has!("fma")
            && has!("lzcnt")
            && has!("movbe")
            && has!("xsave");
        let v4 = v3 && has!("avx512f") && has!("avx512bw") && has!("avx512cd") && has!("avx512dq") && has!("avx512vl");
        1 + u8::from(v2) + u8::from(v3) + u8::from(v4)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        1
    }
}

/// The digest of the entry of `manifests` this host should run (see the module doc), if any;
/// `host_level` is [`host_amd64_level`].
pub fn choose_manifest(manifests: &[ImageIndexEntry], host_level: u8) -> Option<String> {
    manifests
        .iter()
        .enumerate()
        .filter_map(|(index, entry)| Some((rank(entry.platform.as_ref()?, host_level)?, index, entry)))
        // Best rank first; among equals, the index's own order.
        .max_by(|(rank_a, index_a, _), (rank_b, index_b, _)| rank_a.cmp(rank_b).then(index_b.cmp(index_a)))
        .map(|(_, _, entry)| entry.digest.clone())
}

/// How well `platform` fits: `None` when it cannot run here; otherwise higher is better (an explicit
/// level `n` ranks `n`, no level ranks 0).
fn rank(platform: &Platform, host_level: u8) -> Option<u8> {
    let linux_amd64 =
        platform.os == oci_spec::image::Os::Linux && platform.architecture == oci_spec::image::Arch::Amd64;
    let demands_os = platform.os_features.as_ref().is_some_and(|f| !f.is_empty()) || platform.os_version.is_some();
    if !linux_amd64 || demands_os {
        return None;
    }
    match platform.variant.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => Some(0),
        Some(variant) => {
            let level = variant.strip_prefix('v')?.parse::<u8>().ok().filter(|level| (1..=4).contains(level))?;
            (level <= host_level).then_some(level)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(digest: &str, os: &str, arch: &str, variant: Option<&str>) -> ImageIndexEntry {
        let mut platform = serde_json::json!({"os": os, "architecture": arch});
        if let Some(variant) = variant {
            platform["variant"] = variant.into();
        }
        serde_json::from_value(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": 1,
            "platform": platform,
        }))
        .unwrap()
    }

    #[test]
    fn an_exact_level_beats_a_variantless_entry_listed_first() {
        let index = [entry("none", "linux", "amd64", None), entry("v1", "linux", "amd64", Some("v1"))];
        assert_eq!(choose_manifest(&index, 1).as_deref(), Some("v1"));
        assert_eq!(choose_manifest(&index, 3).as_deref(), Some("v1"));
    }

    #[test]
    fn the_highest_level_the_host_supports_wins_and_higher_ones_are_never_chosen() {
        let index = [
            entry("v1", "linux", "amd64", Some("v1")),
            entry("v3", "linux", "amd64", Some("v3")),
            entry("v4", "linux", "amd64", Some("v4")),
        ];
        assert_eq!(choose_manifest(&index, 3).as_deref(), Some("v3"));
        assert_eq!(choose_manifest(&index, 1).as_deref(), Some("v1"));
        assert_eq!(choose_manifest(&index[2..], 3), None, "only a level above the host's");
    }

    #[test]
    fn other_platforms_and_unknown_variants_are_skipped_and_ties_keep_index_order() {
        let index = [
            entry("arm", "linux", "arm64", Some("v8")),
            entry("win", "windows", "amd64", None),
            entry("odd", "linux", "amd64", Some("haswell")),
            entry("first", "linux", "amd64", None),
            entry("second", "linux", "amd64", None),
        ];
        assert_eq!(choose_manifest(&index, 4).as_deref(), Some("first"));
        assert_eq!(choose_manifest(&index[..3], 4), None);
    }

    #[test]
    fn entries_demanding_os_features_or_versions_are_skipped() {
        let mut featured = entry("featured", "linux", "amd64", Some("v1"));
        featured.platform.as_mut().unwrap().os_features = Some(vec!["win32k".into()]);
        let index = [featured, entry("plain", "linux", "amd64", None)];
        assert_eq!(choose_manifest(&index, 2).as_deref(), Some("plain"));
    }

    #[test]
    fn this_host_has_a_level() {
        assert!((1..=4).contains(&host_amd64_level()));
    }
}

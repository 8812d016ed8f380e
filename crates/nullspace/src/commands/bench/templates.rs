//! `nullspace bench`'s template figures, each next to its baseline in the same run: pull + unpack of a
//! registry image by our engine (`nullspace_node::images::pull`, the server's code, into a fresh layer
//! store) next to `skopeo copy` + `umoci raw unpack` of the same image; the first and a second identical
//! template build (every layer step must be a cache hit); and the disk the layers of N templates on
//! that image hold (hard links counted once) next to N separate copies of them.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nullspace_client::{BuildLogEntry, Client};
use nullspace_node::images::{self, ImageReference, LayerId, LayerStore, PulledImage, RegistryAuth, RegistryConfig};
use nullspace_types::template_api::{BuildRequest, Step};

use super::report::{summarize, Summary};
use crate::exit::UserError;

/// How to get an image for these figures.
pub(super) const IMAGE_HINT: &str =
    "serve the fixture images with `scripts/registry-fixtures.sh serve 127.0.0.1:5057 DIR`, \
     start the server with `--insecure-registry 127.0.0.1:5057`, and pass \
     `--registry-image 127.0.0.1:5057/library/debian:stable-slim`";

/// What the template figures need.
pub(super) struct TemplateBench<'a> {
    /// The image (`HOST:PORT/REPO:TAG`).
    pub(super) image: &'a str,
    /// The server's data directory, for the disk figure.
    pub(super) data_dir: Option<&'a Path>,
    /// Timed pulls (and skopeo + umoci runs).
    pub(super) pulls: usize,
    /// Templates built for the disk figure.
    pub(super) templates: usize,
}

/// The template figures.
#[derive(Debug, serde::Serialize)]
pub(super) struct TemplateFigures {
    image: String,
    image_layers: usize,
    image_unpacked_bytes: u64,
    pull_unpack: Summary,
    skopeo_copy_umoci_unpack: Summary,
    pull_vs_skopeo_umoci_p50_ratio: f64,
    first_build_ms: f64,
    second_build_ms: f64,
    second_build_layer_cache_hits: usize,
    /// `None` without `--data-dir`.
    disk: Option<DiskFigures>,
}

/// Disk held by N templates' layers, shared and as N copies.
#[derive(Debug, serde::Serialize)]
struct DiskFigures {
    templates: usize,
    shared_bytes: u64,
    copies_bytes: u64,
    shared_vs_copies_ratio: f64,
}

/// A finished build.
struct Built {
    elapsed: Duration,
    template_id: String,
    entries: Vec<BuildLogEntry>,
}

/// Measures the figures; the bench templates are deleted afterwards (also after a failure).
pub(super) async fn measure(client: &Client, bench: &TemplateBench<'_>) -> anyhow::Result<TemplateFigures> {
    let reference = ImageReference::parse(bench.image).map_err(|error| {
        UserError::new(
            format!("--registry-image {:?} is not an image reference: {error}", bench.image),
            Some(IMAGE_HINT),
        )
    })?;
    eprintln!("bench: pull + unpack of {reference} ×{} (nullspace, then skopeo + umoci)", bench.pulls);
    let (pull, pulled, image_bytes) = measure_pull(&reference, bench.pulls).await?;
    let baseline = measure_skopeo_umoci(&reference, bench.pulls).await?;
    let mut created = Vec::new();
    let outcome = measure_builds(client, bench, &pulled, &mut created).await;
    let cleanup = delete_templates(client, &created).await;
    let (first, second, hits, disk) = outcome?;
    cleanup?;
    Ok(TemplateFigures {
        image: reference.to_string(),
        image_layers: pulled.layers.len(),
        image_unpacked_bytes: image_bytes,
        pull_vs_skopeo_umoci_p50_ratio: pull.p50_ms / baseline.p50_ms.max(f64::EPSILON),
        pull_unpack: pull,
        skopeo_copy_umoci_unpack: baseline,
        first_build_ms: ms(first),
        second_build_ms: ms(second),
        second_build_layer_cache_hits: hits,
        disk,
    })
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Prints the figures as rows of `nullspace bench`'s table.
pub(super) fn print_rows(figures: &TemplateFigures, row: impl Fn(&str, &Summary)) {
    row("image pull + unpack", &figures.pull_unpack);
    row("skopeo copy+umoci unpack", &figures.skopeo_copy_umoci_unpack);
    println!(
        "{:<24} {:.2}× skopeo + umoci (p50; {}, {} layers, {} unpacked)",
        "pull + unpack",
        figures.pull_vs_skopeo_umoci_p50_ratio,
        figures.image,
        figures.image_layers,
        human(figures.image_unpacked_bytes)
    );
    let target = if figures.second_build_ms <= 1000.0 { "met" } else { "NOT met" };
    println!(
        "{:<24} first {:.0} ms   second identical {:.0} ms ({} layer steps, all cache hits; target ≤ 1 s {target})",
        "template build", figures.first_build_ms, figures.second_build_ms, figures.second_build_layer_cache_hits
    );
    match &figures.disk {
        Some(disk) => println!(
            "{:<24} {} templates on one image: {} on disk vs {} as {} copies ({:.2}×)",
            "template disk",
            disk.templates,
            human(disk.shared_bytes),
            human(disk.copies_bytes),
            disk.templates,
            disk.shared_vs_copies_ratio
        ),
        None => println!("{:<24} skipped: pass the server's --data-dir (on the server's host)", "template disk"),
    }
}

/// `12.3 MiB`.
fn human(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

/// Our engine: `pulls` pulls of `reference`, each into a fresh layer store. Returns the timings, the
/// pulled image and the disk its layers hold.
async fn measure_pull(reference: &ImageReference, pulls: usize) -> anyhow::Result<(Summary, PulledImage, u64)> {
    // The registry the user named is reached as configured insecure registries are: HTTPS without
    // verification, then plain HTTP; a loopback or private host is allowed.
    let config = RegistryConfig {
        insecure: [reference.registry().to_owned()].into(),
        allow_private: true,
        ..RegistryConfig::default()
    };
    let mut samples = Vec::with_capacity(pulls);
    let mut last = None;
    for _ in 0..pulls {
        let dir = bench_dir("nullspace-bench-pull-")?;
        let store = LayerStore::new(dir.path().join("layers")).context("creating a bench layer store")?;
        let started = Instant::now();
        let pulled =
            images::pull(&store, &config, reference, &RegistryAuth::Anonymous, &|_| {}).await.map_err(|error| {
                UserError::new(format!("nullspace could not pull {reference}: {error}"), Some(IMAGE_HINT))
            })?;
        samples.push(started.elapsed());
        let dirs: Vec<PathBuf> = pulled.layers.iter().map(|id| store.root().join(id.short())).collect();
        let bytes = disk_usage(&dirs).context("measuring the pulled layers")?;
        last = Some((pulled, bytes));
    }
    let (pulled, bytes) = last.context("no pull was timed")?;
    Ok((summarize(&mut samples), pulled, bytes))
}

/// A fresh directory under /var/tmp (where the other bench figures write), removed when dropped.
fn bench_dir(prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(prefix).tempdir_in("/var/tmp").context("creating a bench directory in /var/tmp")
}

/// The baseline: `skopeo copy docker://REF oci:DIR:bench` + `umoci raw unpack`, each into a fresh dir.
async fn measure_skopeo_umoci(reference: &ImageReference, pulls: usize) -> anyhow::Result<Summary> {
    let mut samples = Vec::with_capacity(pulls);
    for _ in 0..pulls {
        let dir = bench_dir("nullspace-bench-skopeo-")?;
        let layout = format!("{}:bench", dir.path().join("oci").display());
        let started = Instant::now();
        tool(
            "skopeo",
            &[
                "--insecure-policy",
                "copy",
                "--quiet",
                "--src-tls-verify=false",
                &format!("docker://{reference}"),
                &format!("oci:{layout}"),
            ],
        )
        .await?;
        let rootfs = dir.path().join("rootfs");
        tool("umoci", &["raw", "unpack", "--image", &layout, &rootfs.display().to_string()]).await?;
        samples.push(started.elapsed());
    }
    Ok(summarize(&mut samples))
}

/// Runs a baseline tool; a missing one is the user's to install.
async fn tool(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await;
    let output = match output {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(UserError::new(
                format!("{program} is not installed (the template figures' baseline)"),
                Some("install the Debian packages skopeo and umoci (scripts/install-host-deps.sh)"),
            )
            .into())
        }
        Err(error) => return Err(error).with_context(|| format!("running {program}")),
    };
    if !output.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The first and second identical build, then (with a data dir) the disk figure. Every template made
/// is pushed to `created`.
async fn measure_builds(
    client: &Client,
    bench: &TemplateBench<'_>,
    pulled: &PulledImage,
    created: &mut Vec<String>,
) -> anyhow::Result<(Duration, Duration, usize, Option<DiskFigures>)> {
    // A token of this run in every step, so the first builds do not hit an earlier run's cache.
    let run = nullspace_client::new_idempotency_key()[..8].to_owned();
    let request = BuildRequest {
        base_image: Some(bench.image.to_owned()),
        steps: vec![run_step(format!("echo {run} > /etc/nullspace-bench")), run_step("mkdir -p /opt/bench".into())],
        name: Some(format!("bench-{run}")),
        ..BuildRequest::default()
    };
    eprintln!("bench: template build from {}, then the same build again", bench.image);
    let first = build(client, &request, created).await?;
    let second = build(client, &request, created).await?;
    let hits = all_layer_cache_hits(&second.entries).map_err(|detail| {
        anyhow::anyhow!("the second identical build of bench-{run} was not all cache hits: {detail}")
    })?;
    let Some(data_dir) = bench.data_dir else {
        eprintln!("bench: template disk figure skipped: pass the server's --data-dir (on the server's host)");
        return Ok((first.elapsed, second.elapsed, hits, None));
    };
    eprintln!("bench: {} templates on {}, one small distinct step each", bench.templates, bench.image);
    let mut builds = Vec::with_capacity(bench.templates);
    for index in 0..bench.templates {
        let request = BuildRequest {
            base_image: Some(bench.image.to_owned()),
            steps: vec![run_step(format!("echo {run} {index} > /etc/nullspace-bench"))],
            name: Some(format!("bench-{run}-{index}")),
            ..BuildRequest::default()
        };
        builds.push(build(client, &request, created).await?);
    }
    let disk = measure_disk(&data_dir.join("layers"), &pulled.layers, &builds)?;
    Ok((first.elapsed, second.elapsed, hits, Some(disk)))
}

fn run_step(command: String) -> Step {
    Step::Run { command, user: None }
}

/// Streams one build to its end; a failed build is an error saying what to do.
async fn build(client: &Client, request: &BuildRequest, created: &mut Vec<String>) -> anyhow::Result<Built> {
    let name = request.name.clone().unwrap_or_default();
    let started = Instant::now();
    let mut stream = client.build_template(request).await.with_context(|| format!("starting bench build {name}"))?;
    let mut entries = Vec::new();
    while let Some(entry) = stream.next().await {
        let entry = entry.with_context(|| format!("the stream of bench build {name} broke"))?;
        if entries.is_empty() && !entry.template_id.is_empty() {
            created.push(entry.template_id.clone());
        }
        let kind = entry.kind.clone();
        entries.push(entry);
        match kind.as_str() {
            "end" => {
                let elapsed = started.elapsed();
                let template_id = entries.last().map(|e| e.template_id.clone()).unwrap_or_default();
                return Ok(Built { elapsed, template_id, entries });
            }
            "error" | "cancelled" => return Err(build_failure(&name, entries.last().expect("pushed")).into()),
            _ => {}
        }
    }
    bail!("the stream of bench build {name} ended without an end entry")
}

fn build_failure(name: &str, entry: &BuildLogEntry) -> UserError {
    let (code, message) = match &entry.error_detail {
        Some(detail) => (detail.code.as_str(), detail.message.as_str()),
        None => (entry.kind.as_str(), entry.message.as_str()),
    };
    let hint = match code {
        "registry_forbidden" | "registry_unreachable" => {
            "the server must reach the image's registry: start it with `--insecure-registry HOST:PORT` (or \
             `--registry-allow-private`) for a loopback registry"
                .to_owned()
        }
        _ => format!("read the log with `nullspace template logs {}`", entry.build_id),
    };
    UserError { message: format!("bench build {name} failed ({code}): {message}"), hint: Some(hint) }
}

/// Deletes the bench templates (ids seen twice once); the first failure is the result.
async fn delete_templates(client: &Client, created: &[String]) -> anyhow::Result<()> {
    let mut result = Ok(());
    let mut seen = HashSet::new();
    for id in created.iter().filter(|id| seen.insert(id.as_str())) {
        match client.delete_template(id).await {
            Ok(()) => {}
            Err(error) if error.status() == Some(404) => {}
            Err(error) if result.is_ok() => {
                result = Err(error).with_context(|| format!("deleting bench template {id}"))
            }
            Err(error) => eprintln!("bench: could not delete bench template {id}: {error}"),
        }
    }
    result
}

/// The cache decisions of a build's layer steps: (status, subject, message).
fn layer_cache_lines(entries: &[BuildLogEntry]) -> impl Iterator<Item = (&str, Option<&str>, &str)> {
    entries
        .iter()
        .filter(|e| e.kind == "cache" && e.extra.get("cache_kind").and_then(|v| v.as_str()) == Some("layer"))
        .map(|e| {
            let status = e.extra.get("cache_status").and_then(|v| v.as_str()).unwrap_or("");
            (status, e.extra.get("cache_subject").and_then(|v| v.as_str()), e.message.as_str())
        })
}

/// How many layer steps the build had, when every one was a cache hit; otherwise the first that was
/// not (or that there were none).
fn all_layer_cache_hits(entries: &[BuildLogEntry]) -> Result<usize, String> {
    let mut hits = 0;
    for (status, _, message) in layer_cache_lines(entries) {
        if status != "hit" {
            return Err(format!("{status}: {message}"));
        }
        hits += 1;
    }
    if hits == 0 {
        return Err("its log has no layer cache decision".to_owned());
    }
    Ok(hits)
}

/// The step layers a build's template stacks: the subjects of its layer cache hits and stores.
fn step_layers(entries: &[BuildLogEntry]) -> anyhow::Result<Vec<LayerId>> {
    layer_cache_lines(entries)
        .filter(|(status, _, _)| matches!(*status, "hit" | "stored"))
        .map(|(_, subject, message)| {
            let subject = subject.with_context(|| format!("the cache line {message:?} names no layer"))?;
            LayerId::parse(subject).with_context(|| format!("the cache line {message:?} names no layer id"))
        })
        .collect()
}

/// Disk held by the builds' layers in the server's layer store `store` (image layers plus each build's
/// step layers), shared, next to the sum of each template's layers measured on their own.
fn measure_disk(store: &Path, image: &[LayerId], builds: &[Built]) -> anyhow::Result<DiskFigures> {
    let mut all = Vec::new();
    let mut copies = 0;
    for built in builds {
        let ids = image.iter().cloned().chain(step_layers(&built.entries)?);
        let dirs: Vec<PathBuf> = ids.map(|id| store.join(id.short())).collect();
        if let Some(missing) = dirs.iter().find(|dir| !dir.join("fs").is_dir()) {
            return Err(UserError::new(
                format!(
                    "layer {} of bench template {} is not in the layer store {}",
                    missing.display(),
                    built.template_id,
                    store.display()
                ),
                Some("pass the data directory of the server the bench talks to (`nullspace server --data-dir`)"),
            )
            .into());
        }
        copies += disk_usage(&dirs).context("measuring a template's layers")?;
        all.extend(dirs);
    }
    all.sort();
    all.dedup();
    let shared = disk_usage(&all).context("measuring the templates' layers")?;
    Ok(DiskFigures {
        templates: builds.len(),
        shared_bytes: shared,
        copies_bytes: copies,
        shared_vs_copies_ratio: shared as f64 / (copies as f64).max(1.0),
    })
}

/// Bytes allocated on disk (`st_blocks` × 512, as `du` counts) under `roots`, each inode counted once
/// (hard links and roots that overlap); symlinks are not followed and the walk stays on each root's
/// file system.
fn disk_usage(roots: &[PathBuf]) -> std::io::Result<u64> {
    let mut seen = HashSet::new();
    let mut bytes = 0;
    for root in roots {
        for entry in walkdir::WalkDir::new(root).follow_links(false).same_file_system(true) {
            let metadata = entry?.metadata()?;
            if seen.insert((metadata.dev(), metadata.ino())) {
                bytes += metadata.blocks() * 512;
            }
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn blocks(path: &Path) -> u64 {
        std::fs::symlink_metadata(path).unwrap().blocks() * 512
    }

    #[test]
    fn disk_usage_counts_a_hard_linked_file_once_and_follows_no_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let data = a.join("data");
        std::fs::write(&data, vec![7u8; 256 << 10]).unwrap();
        std::fs::hard_link(&data, b.join("link")).unwrap();
        std::os::unix::fs::symlink(&a, b.join("to-a")).unwrap();
        let file = blocks(&data);
        assert!(file >= 256 << 10, "the file takes its blocks: {file}");
        let (alone_a, alone_b) =
            (disk_usage(std::slice::from_ref(&a)).unwrap(), disk_usage(std::slice::from_ref(&b)).unwrap());
        // Each tree on its own holds the file; together they hold it once.
        assert_eq!(alone_a, blocks(&a) + file);
        assert_eq!(alone_b, blocks(&b) + file + blocks(&b.join("to-a")));
        assert_eq!(disk_usage(&[a.clone(), b.clone()]).unwrap(), alone_a + alone_b - file);
        // A root listed twice, or inside another, is not counted again.
        assert_eq!(disk_usage(&[a.clone(), a.clone(), data]).unwrap(), alone_a);
        assert!(disk_usage(&[dir.path().join("missing")]).is_err());
    }

    fn cache_entry(status: &str, subject: &str) -> BuildLogEntry {
        let extra = json!({"cache_kind": "layer", "cache_status": status, "cache_subject": subject});
        BuildLogEntry {
            kind: "cache".into(),
            message: format!("cache {status}: RUN x"),
            extra: extra.as_object().unwrap().clone(),
            ..BuildLogEntry::default()
        }
    }

    #[test]
    fn a_second_build_passes_only_when_every_layer_step_hit() {
        let id = LayerId::for_cache_key("a").to_string();
        let message = BuildLogEntry { kind: "message".into(), message: "step 1/2".into(), ..Default::default() };
        let hits = [message.clone(), cache_entry("hit", &id), cache_entry("hit", &id)];
        assert_eq!(all_layer_cache_hits(&hits), Ok(2));
        let missed = [cache_entry("hit", &id), cache_entry("miss", &id), cache_entry("stored", &id)];
        assert_eq!(all_layer_cache_hits(&missed), Err("miss: cache miss: RUN x".to_owned()));
        assert!(all_layer_cache_hits(&[message]).is_err(), "a log without cache lines is not all hits");
    }

    #[test]
    fn step_layers_are_the_hits_and_stores_not_the_missed_candidates() {
        let (a, b, c) = (LayerId::for_cache_key("a"), LayerId::for_cache_key("b"), LayerId::for_cache_key("c"));
        let entries = [
            cache_entry("hit", &a.to_string()),
            cache_entry("miss", &b.to_string()),
            cache_entry("stored", &c.to_string()),
        ];
        assert_eq!(step_layers(&entries).unwrap(), [a, c]);
        assert!(step_layers(&[cache_entry("stored", "not-an-id")]).is_err());
    }
}

//! guestd as a real process: a 1 GiB resumable upload (4 parts in flight) keeps guestd's peak memory
//! flat — parts stream to disk and publishing copies through a fixed buffer. Takes ~25 s in a debug
//! build; run with `--nocapture` to see the measurement.

mod common;

use common::*;
use sha2::{Digest, Sha256};

const TOTAL: usize = 1024 * 1024 * 1024;

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap()
}

fn part_bytes(n: usize, len: usize) -> Vec<u8> {
    let seed = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..len).map(|i| (seed.rotate_left((i % 64) as u32) as u8) ^ (i as u8)).collect()
}

#[tokio::test]
async fn one_gib_upload_keeps_memory_flat() {
    let guest = Guest::start().await;
    let pid = guest.pid();
    let hwm_before = status_kib(pid, "VmHWM:");
    let started = Instant::now();
    let body =
        json!({"kind": "file", "source_kind": "restartable_file", "target_path": "huge.bin", "content_length": TOTAL});
    let (status, created) = guest
        .with_headers("POST", "/uploads", &[("content-type", "application/json")], body.to_string().into_bytes())
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["session"]["upload_id"].as_str().unwrap().to_owned();
    let part_size = created["session"]["part_size"].as_u64().unwrap() as usize;
    let part_count = created["session"]["part_count"].as_u64().unwrap() as usize;
    let concurrency = created["session"]["max_concurrency"].as_u64().unwrap() as usize;

    let mut whole = Sha256::new();
    let mut next = 0;
    while next < part_count {
        let batch: Vec<_> = (next..(next + concurrency).min(part_count))
            .map(|n| (n, part_bytes(n, part_size.min(TOTAL - n * part_size))))
            .collect();
        for (_, bytes) in &batch {
            whole.update(bytes);
        }
        let sends = batch.iter().map(|(n, bytes)| {
            let digest = hex::encode(Sha256::digest(bytes));
            let guest = &guest;
            let id = &id;
            async move {
                let path = format!("/uploads/{id}/parts/{n}");
                let headers =
                    [("content-type", "application/octet-stream"), ("x-nullspace-part-sha256", digest.as_str())];
                guest.with_headers("PUT", &path, &headers, bytes.clone()).await
            }
        });
        for (status, answer) in futures::future::join_all(sends).await {
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
        next += concurrency;
    }
    let hwm_parts = status_kib(pid, "VmHWM:");
    let sum = hex::encode(whole.finalize());
    let (status, done) = guest
        .with_headers(
            "POST",
            &format!("/uploads/{id}/complete"),
            &[("content-type", "application/json")],
            json!({"whole_checksum_sha256": sum}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["published_bytes"], json!(TOTAL));
    let hwm_after = status_kib(pid, "VmHWM:");
    let rss_after = status_kib(pid, "VmRSS:");
    let elapsed = started.elapsed();
    eprintln!(
        "1 GiB upload: {part_count} parts of {part_size} B in {elapsed:?}; guestd VmHWM {hwm_before} KiB before, {hwm_parts} KiB after parts, {hwm_after} KiB after complete; VmRSS {rss_after} KiB"
    );
    assert_eq!(std::fs::metadata(format!("{}/huge.bin", guest.cwd())).unwrap().len(), TOTAL as u64);
    // 4 parts of 8 MiB in flight would be 32 MiB if buffered; streaming stays far below.
    assert!(hwm_after < hwm_before + 48 * 1024, "peak grew from {hwm_before} to {hwm_after} KiB");
}

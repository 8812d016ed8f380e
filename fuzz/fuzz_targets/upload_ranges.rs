//! Resumable uploads (guestd's `uploads`): the part plan of any content length, parts sent with any
//! number, declared length and body size, and session files reloaded from the staging directory (which
//! root inside the sandbox can edit) as guestd does at boot.
//!
//! Invariants: the plan covers the content exactly (every part but the last is `part_size`, 8–64 MiB,
//! the last is 1..=part_size, at most 8192 parts); a part is accepted only with its exact size and
//! number, and then `accepted_bytes` is the sum of the received parts' sizes, `next_part` the first gap,
//! the status `staged` exactly when nothing is missing; refusals are 4xx; a reloaded session obeys the
//! same plan, whatever its file said.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nullspace_guest::fuzzing::{upload_plan, SessionView, UploadSessions};
use nullspace_types::upload_api::UploadStatus;

const MIB: u64 = 1024 * 1024;

struct Part {
    n: u64,
    declared: Option<u64>,
    /// Body chunk sizes (zeros are sent).
    chunks: Vec<u64>,
}

/// The input is text: a first line `PLAN_LENGTH LENGTH DIRECTORY(0|1)`, then lines
/// `part N DECLARED|- CHUNK,CHUNK,…`, then optionally a line `session` followed by a `session.json`
/// planted in the staging directory before a reload.
struct Input<'a> {
    plan_length: u64,
    /// Content length of the session (cut to 20 MiB so parts are real files).
    length: u64,
    directory: bool,
    parts: Vec<Part>,
    session_file: Option<&'a [u8]>,
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Option<Self> {
        let (text, session_file) = match data.windows(9).position(|w| w == b"\nsession\n") {
            Some(at) => (&data[..at], Some(&data[at + 9..])),
            None => (data, None),
        };
        let text = std::str::from_utf8(text).ok()?;
        let mut lines = text.lines();
        let mut head = lines.next()?.split_whitespace().map(|word| word.parse::<u64>().ok());
        let plan_length = head.next().flatten().unwrap_or(0);
        let length = head.next().flatten().unwrap_or(0) % (20 * MIB);
        let directory = head.next().flatten() == Some(1);
        let parts = lines
            .filter_map(|line| {
                let mut words = line.strip_prefix("part ")?.split_whitespace();
                let n: u64 = words.next()?.parse().ok()?;
                let declared = words.next()?.parse().ok();
                let chunks = words
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .filter_map(|size| size.parse::<u64>().ok())
                    .map(|size| size % (9 * MIB))
                    .take(4)
                    .collect();
                Some(Part { n: n % 8, declared, chunks })
            })
            .take(8)
            .collect();
        Some(Self { plan_length, length, directory, parts, session_file })
    }
}

fn check_plan(content_length: u64, lens: &[u64]) {
    assert_eq!(lens.iter().sum::<u64>(), content_length, "parts {lens:?} do not cover {content_length}");
    assert!(lens.len() <= 8192, "{} parts", lens.len());
    if let Some((last, rest)) = lens.split_last() {
        let part_size = rest.first().copied().unwrap_or(*last);
        assert!(rest.iter().all(|len| *len == part_size));
        assert!((1..=part_size).contains(last), "last part {last} of {part_size}");
        if !rest.is_empty() {
            assert!((8 * MIB..=64 * MIB).contains(&part_size), "part size {part_size}");
        }
    }
}

fn check_session(view: &SessionView) {
    assert!(view.part_lens.len() as u64 == view.part_count || view.part_count > 1 << 14);
    check_plan(view.content_length, &view.part_lens);
    if let Some(first) = view.part_lens.first() {
        assert_eq!(*first, view.part_size.min(view.content_length));
    }
    assert!(view.received.iter().all(|n| *n < view.part_count), "received {:?} of {}", view.received, view.part_count);
    let accepted: u64 = view.received.iter().map(|n| view.part_lens[*n as usize]).sum();
    assert_eq!(view.accepted_bytes, accepted);
    assert!(view.accepted_bytes <= view.content_length);
    if !matches!(
        view.status,
        UploadStatus::Completed | UploadStatus::Aborted | UploadStatus::Failed | UploadStatus::Expired
    ) {
        let first_gap = (0..view.part_count).find(|n| !view.received.contains(n));
        assert_eq!(view.next_part, first_gap);
        if view.part_count > 0 {
            assert_eq!(view.status == UploadStatus::Staged, first_gap.is_none(), "{view:?}");
        } else {
            // An empty upload has nothing to stage: `created` until completed (`staged` after a reload).
            assert!(matches!(view.status, UploadStatus::Created | UploadStatus::Staged), "{view:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else { return };
    match upload_plan(input.plan_length) {
        Some(lens) => check_plan(input.plan_length, &lens),
        None => assert!(input.plan_length > 512 * 1024 * MIB),
    }

    let staging = tempfile::tempdir().unwrap();
    let sessions = UploadSessions::open(staging.path());
    let length = input.length;
    let kind = if input.directory { "directory_tar" } else { "file" };
    let body = format!(
        r#"{{"kind":"{kind}","source_kind":"restartable_file","target_path":"/workspace/x","content_length":{length}}}"#
    );
    let created = sessions.create(body.as_bytes(), "/workspace/x").expect("a valid create");
    check_session(&created);
    let mut last = created.clone();
    for part in &input.parts {
        let n = part.n;
        let chunks: Vec<Vec<u8>> = part.chunks.iter().map(|size| vec![0u8; *size as usize]).collect();
        let sent: u64 = chunks.iter().map(|chunk| chunk.len() as u64).sum();
        let declared = part.declared;
        match sessions.put_part(&created.upload_id, n, declared, chunks) {
            Ok(view) => {
                check_session(&view);
                assert!(n < view.part_count, "part {n} accepted of {}", view.part_count);
                assert_eq!(sent, view.part_lens[n as usize], "part {n} accepted with {sent} bytes");
                assert!(declared.is_none_or(|declared| declared == sent));
                assert!(view.received.contains(&n));
                last = view;
            }
            Err(refusal) => {
                assert!((400..500).contains(&refusal.status), "{} {:?}", refusal.status, refusal.body);
            }
        }
    }

    // What guestd finds after a restart: the real sessions, and a planted one.
    if let Some(file) = input.session_file {
        let planted = staging.path().join("up_planted");
        std::fs::create_dir_all(&planted).unwrap();
        std::fs::write(planted.join("session.json"), file).unwrap();
    }
    drop(sessions);
    let reloaded = UploadSessions::open(staging.path());
    for view in reloaded.sessions() {
        check_session(&view);
        if view.upload_id == last.upload_id {
            assert_eq!(view.received, last.received, "a reload lost or invented parts");
        }
    }
});

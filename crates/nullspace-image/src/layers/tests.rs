//! Layer store tests on real tar streams built with the `tar` crate. Unpacking creates device nodes,
//! sets ownership and `trusted.*` xattrs: those tests need root (CI runs as root) and say so when skipped.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

use super::*;

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

fn root() -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        eprintln!("skipping layer unpack test: not root (mknod, chown and trusted.* xattrs need root)");
    }
    root
}

fn xattr(path: impl AsRef<Path>, name: &str) -> Option<Vec<u8>> {
    let mut buf = [0u8; 256];
    let n = rustix::fs::lgetxattr(path.as_ref(), name, &mut buf[..]).ok()?;
    Some(buf[..n].to_vec())
}

/// A tar stream under construction.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn header(kind: EntryType, mode: u32, size: u64) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(1_600_000_000);
        header.set_uid(0);
        header.set_gid(0);
        header
    }

    fn dir(mut self, path: &str) -> Self {
        let mut header = Self::header(EntryType::Directory, 0o755, 0);
        self.0.append_data(&mut header, path, std::io::empty()).unwrap();
        self
    }

    fn file(mut self, path: &str, content: &[u8]) -> Self {
        let mut header = Self::header(EntryType::Regular, 0o644, content.len() as u64);
        self.0.append_data(&mut header, path, content).unwrap();
        self
    }

    fn with(mut self, path: &str, mut header: Header, content: &[u8]) -> Self {
        self.0.append_data(&mut header, path, content).unwrap();
        self
    }

    fn link(mut self, kind: EntryType, path: &str, target: &str) -> Self {
        let mut header = Self::header(kind, 0o777, 0);
        self.0.append_link(&mut header, path, target).unwrap();
        self
    }

    /// An entry whose name (or link name) is written verbatim: the builder refuses `..` and absolute paths.
    fn raw(mut self, kind: EntryType, name: &[u8], link_name: &[u8], content: &[u8]) -> Self {
        let mut header = Self::header(kind, 0o644, content.len() as u64);
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name);
        gnu.linkname[..link_name.len()].copy_from_slice(link_name);
        header.set_cksum();
        self.0.append(&header, content).unwrap();
        self
    }

    /// A PAX extended header ('x') for the next entry.
    fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        let mut body = Vec::new();
        for (key, value) in records {
            let payload = [b" ".as_slice(), key.as_bytes(), b"=", value, b"\n"].concat();
            // The record's length includes its own decimal digits.
            let mut len = payload.len() + 1;
            while len != payload.len() + len.to_string().len() {
                len = payload.len() + len.to_string().len();
            }
            body.extend_from_slice(len.to_string().as_bytes());
            body.extend_from_slice(&payload);
        }
        let mut header = Self::header(EntryType::XHeader, 0o644, body.len() as u64);
        self.0.append_data(&mut header, "PaxHeader", body.as_slice()).unwrap();
        self
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn diff_id(tar: &[u8]) -> LayerId {
    LayerId::from_sha256(Sha256::digest(tar).into())
}

fn oci(tar: &[u8]) -> LayerSource {
    LayerSource::Oci { digest: diff_id(tar).to_string(), media_type: TAR.into() }
}

fn store() -> (tempfile::TempDir, LayerStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LayerStore::new(dir.path().join("layers")).unwrap();
    (dir, store)
}

fn publish(store: &LayerStore, tar: &[u8]) -> ImageResult<LayerInfo> {
    store.unpack_layer(&diff_id(tar), TAR, tar, oci(tar))
}

/// Nothing was published and no staging directory is left.
fn assert_empty(store: &LayerStore) {
    let names: Vec<_> = fs::read_dir(store.root()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(names.is_empty(), "the store holds {names:?}");
}

#[test]
fn whiteouts_become_overlay_whiteouts_and_opaque_dirs() {
    if !root() {
        return;
    }
    let (_tmp, store) = store();
    let tar = Layer::new()
        .dir("a/")
        .file("a/.wh.deleted", b"")
        .file("top/.wh.gone-dir", b"")
        .dir("o/")
        .file("o/.wh..wh..opq", b"")
        .file("o/new", b"new")
        .file("o/.wh..wh.plnk", b"")
        .finish();
    let info = publish(&store, &tar).unwrap();
    let fs_dir = store.path(&info.id);
    for whiteout in ["a/deleted", "top/gone-dir"] {
        let meta = fs::symlink_metadata(fs_dir.join(whiteout)).unwrap();
        assert!(meta.file_type().is_char_device(), "{whiteout} is a char device");
        assert_eq!(meta.rdev(), 0, "{whiteout} is device 0:0");
    }
    assert!(!fs_dir.join("a/.wh.deleted").exists());
    assert!(!fs_dir.join("o/.wh..wh..opq").exists());
    assert!(!fs_dir.join("o/.wh..wh.plnk").exists());
    let opaque = xattr(fs_dir.join("o"), "trusted.overlay.opaque").unwrap();
    assert_eq!(opaque, b"y");
    assert!(xattr(fs_dir.join("a"), "trusted.overlay.opaque").is_none());
    assert_eq!(fs::read(fs_dir.join("o/new")).unwrap(), b"new");
}

#[test]
fn ownership_modes_mtimes_links_and_xattrs_are_kept() {
    if !root() {
        return;
    }
    let (_tmp, store) = store();
    let mut setuid = Layer::header(EntryType::Regular, 0o4755, 2);
    setuid.set_uid(1234);
    setuid.set_gid(5678);
    let mut dir = Layer::header(EntryType::Directory, 0o700, 0);
    dir.set_uid(42);
    dir.set_mtime(1_500_000_000);
    let mut builder = Layer::new().with("d/", dir, b"").with("d/suid", setuid, b"#!").file("d/plain", b"hello");
    builder =
        builder.link(EntryType::Link, "d/hard", "d/plain").link(EntryType::Symlink, "d/sym", "/nonexistent/target");
    let pax: [(&str, &[u8]); 3] = [
        ("SCHILY.xattr.user.note", b"v1"),
        ("mtime", b"1400000000.25"),
        ("SCHILY.xattr.trusted.overlay.redirect", b"/x"),
    ];
    let tar = builder.pax(&pax).file("d/xattr", b"x").finish();
    let info = publish(&store, &tar).unwrap();
    let fs_dir = store.path(&info.id);
    let meta = |p: &str| fs::symlink_metadata(fs_dir.join(p)).unwrap();
    let suid = meta("d/suid");
    assert_eq!((suid.uid(), suid.gid(), suid.mode() & 0o7777), (1234, 5678, 0o4755));
    assert_eq!(suid.mtime(), 1_600_000_000);
    let d = meta("d");
    assert_eq!((d.uid(), d.mode() & 0o7777, d.mtime()), (42, 0o700, 1_500_000_000), "dir metadata applied last");
    assert_eq!(meta("d/hard").ino(), meta("d/plain").ino());
    assert_eq!(meta("d/plain").nlink(), 2);
    assert_eq!(fs::read_link(fs_dir.join("d/sym")).unwrap(), Path::new("/nonexistent/target"));
    let x = meta("d/xattr");
    assert_eq!((x.mtime(), x.mtime_nsec()), (1_400_000_000, 250_000_000));
    assert_eq!(xattr(fs_dir.join("d/xattr"), "user.note").unwrap(), b"v1");
    assert!(xattr(fs_dir.join("d/xattr"), "trusted.overlay.redirect").is_none());
    // "hello" once (hard link counted once) + "#!" + "x" + the symlink's target length.
    assert_eq!(info.size_bytes, 5 + 2 + 1 + "/nonexistent/target".len() as u64);
    assert_eq!(store.get(&info.id), Some(info.clone()));
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(fs_dir.with_file_name("layer.json")).unwrap()).unwrap();
    assert_eq!(json["source"]["kind"], "oci");
}

#[test]
fn device_nodes_and_fifos_are_refused_and_nothing_is_published() {
    let cases = [
        (EntryType::Fifo, "run/fifo", "fifo"),
        (EntryType::Char, "dev/null", "char_device"),
        (EntryType::Block, "dev/sda", "block_device"),
    ];
    for (kind, path, name) in cases {
        let (_tmp, store) = store();
        let mut special = Layer::header(kind, 0o644, 0);
        special.set_device_major(8).unwrap();
        special.set_device_minor(0).unwrap();
        let tar = Layer::new().file("etc/before", b"kept?").with(path, special, b"").file("etc/after", b"x").finish();
        let error = publish(&store, &tar).unwrap_err();
        assert_eq!(error.code(), "oci_unsupported_special_file", "{name}: {error}");
        let details = error.details().expect("details");
        assert_eq!(details["reason"], "oci_unsupported_special_file");
        assert_eq!(details["path"], path);
        assert_eq!(details["entry_type"], name);
        assert_eq!(details["layer"], diff_id(&tar).to_string());
        assert!(error.to_string().contains(path), "{error}");
        assert_empty(&store);
    }
}

#[test]
fn compressed_blobs_unpack_and_are_checked_against_the_uncompressed_digest() {
    if !root() {
        return;
    }
    let (_tmp, store) = store();
    let tar = Layer::new().file("f", b"compressed content").finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let info = store.unpack_layer(&diff_id(&tar), TAR_GZIP, gz.as_slice(), oci(&tar)).unwrap();
    assert_eq!(fs::read(store.path(&info.id).join("f")).unwrap(), b"compressed content");
    let other = Layer::new().file("g", b"zstd").finish();
    let zst = zstd::encode_all(other.as_slice(), 3).unwrap();
    let info = store.unpack_layer(&diff_id(&other), TAR_ZSTD, zst.as_slice(), oci(&other)).unwrap();
    assert_eq!(fs::read(store.path(&info.id).join("g")).unwrap(), b"zstd");
    let error = store.unpack_layer(&diff_id(&other), "application/x-foo", other.as_slice(), oci(&other)).unwrap_err();
    assert_eq!(error.code(), "unsupported_media_type");
}

#[test]
fn a_digest_mismatch_is_refused_and_nothing_is_published() {
    if !root() {
        return;
    }
    let (_tmp, store) = store();
    let tar = Layer::new().file("f", b"real").finish();
    let claimed = diff_id(b"something else");
    let error = store.unpack_layer(&claimed, TAR, tar.as_slice(), oci(&tar)).unwrap_err();
    assert_eq!(error.code(), "digest_mismatch", "{error}");
    assert!(!store.contains(&claimed));
    assert_empty(&store);
    // Trailing bytes after the tar's end marker are part of the digest too.
    let mut padded = tar.clone();
    padded.extend_from_slice(b"appended");
    let error = store.unpack_layer(&diff_id(&tar), TAR, padded.as_slice(), oci(&tar)).unwrap_err();
    assert_eq!(error.code(), "digest_mismatch", "{error}");
    assert_empty(&store);
}

#[test]
fn escaping_paths_and_hard_links_are_refused() {
    if !root() {
        return;
    }
    let (tmp, store) = store();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("parent dir", Layer::new().raw(EntryType::Regular, b"../evil", b"", b"x").finish()),
        ("nested parent dir", Layer::new().dir("a/").raw(EntryType::Regular, b"a/../../evil", b"", b"x").finish()),
        ("absolute", Layer::new().raw(EntryType::Regular, b"/evil", b"", b"x").finish()),
        ("hard link up", Layer::new().raw(EntryType::Link, b"h", b"../layers/x", b"").finish()),
        ("hard link absolute", Layer::new().raw(EntryType::Link, b"h", b"/etc/passwd", b"").finish()),
        ("whiteout up", Layer::new().raw(EntryType::Regular, b"../.wh.layers", b"", b"").finish()),
    ];
    for (case, tar) in cases {
        let error = publish(&store, &tar).unwrap_err();
        assert_eq!(error.code(), "layer_unpack_failed", "{case}: {error}");
        assert_empty(&store);
    }
    assert!(!tmp.path().join("evil").exists());
    assert!(!Path::new("/evil").exists());
}

#[test]
fn a_symlink_then_write_attack_is_refused() {
    if !root() {
        return;
    }
    let (_tmp, store) = store();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap();
    let attacks = [
        Layer::new().link(EntryType::Symlink, "esc", target).file("esc/pwned", b"x").finish(),
        Layer::new().link(EntryType::Symlink, "esc", target).file("esc/sub/pwned", b"x").finish(),
        Layer::new().link(EntryType::Symlink, "esc", target).file("esc/.wh.pwned", b"").finish(),
        Layer::new().link(EntryType::Symlink, "esc", target).dir("esc/pwned/").finish(),
        Layer::new().link(EntryType::Symlink, "esc", "..").file("esc/pwned", b"x").finish(),
        Layer::new()
            .file("victim", b"")
            .link(EntryType::Symlink, "esc", target)
            .link(EntryType::Link, "esc/pwned", "victim")
            .finish(),
    ];
    for tar in attacks {
        let error = publish(&store, &tar).unwrap_err();
        assert_eq!(error.code(), "layer_unpack_failed", "{error}");
        assert!(error.to_string().contains("symlink"), "{error}");
        assert_empty(&store);
    }
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0, "nothing was written outside");
    // A symlink the layer replaces with a file is just replaced, never written through.
    let tar = Layer::new().link(EntryType::Symlink, "f", &format!("{target}/through")).file("f", b"mine").finish();
    let info = publish(&store, &tar).unwrap();
    assert_eq!(fs::read(store.path(&info.id).join("f")).unwrap(), b"mine");
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn the_same_content_is_published_once() {
    if !root() {
        return;
    }
    let (_tmp, store) = store();
    let tar = Layer::new().file("f", b"same").finish();
    let first = publish(&store, &tar).unwrap();
    let second = publish(&store, &tar).unwrap();
    assert_eq!(first, second);
    // A concurrent build that staged the same content loses the race: its copy is discarded.
    let racing = store.stage().unwrap();
    fs::write(racing.path().join("f"), b"same").unwrap();
    let staged_dir = racing.path().parent().unwrap().to_owned();
    assert_eq!(racing.publish(&first.id, oci(&tar)).unwrap(), first);
    assert!(!staged_dir.exists());
    assert_eq!(store.list(), vec![first]);
}

#[test]
fn publish_dir_moves_a_directory_in_and_staging_is_removed_when_dropped() {
    let (tmp, store) = store();
    let upper = tmp.path().join("upper");
    fs::create_dir_all(upper.join("etc")).unwrap();
    fs::write(upper.join("etc/conf"), b"abc").unwrap();
    let id = LayerId::for_cache_key("RUN echo");
    let source = LayerSource::Step { cache_key: "RUN echo".into() };
    let info = store.publish_dir(&id, &upper, source.clone()).unwrap();
    assert_eq!((info.size_bytes, &info.source), (3, &source));
    assert!(!upper.exists());
    assert_eq!(fs::read(store.path(&id).join("etc/conf")).unwrap(), b"abc");
    let dropped = store.stage().unwrap();
    fs::write(dropped.path().join("x"), b"x").unwrap();
    let dropped_dir = dropped.path().parent().unwrap().to_owned();
    drop(dropped);
    assert!(!dropped_dir.exists());
    let names: Vec<_> = fs::read_dir(store.root()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, [id.short()]);
    let mode = fs::metadata(store.root()).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn leftovers_are_removed_and_gc_keeps_what_is_kept_or_in_use() {
    let (_tmp, store) = store();
    let ids: Vec<LayerId> = (0..3).map(|i| LayerId::for_cache_key(&format!("k{i}"))).collect();
    for id in &ids {
        let staging = store.stage().unwrap();
        fs::write(staging.path().join("f"), id.hex()).unwrap();
        staging.publish(id, LayerSource::Step { cache_key: id.hex().into() }).unwrap();
    }
    let crashed = store.root().join(".staging-1-0000000000000000");
    fs::create_dir_all(crashed.join("fs/deep")).unwrap();
    let half = store.root().join(LayerId::for_cache_key("half").short());
    fs::create_dir_all(half.join("fs")).unwrap();
    let own = store.stage().unwrap();
    assert_eq!(store.remove_leftovers(), 2);
    assert!(!crashed.exists() && !half.exists());
    assert!(own.path().exists(), "this process's own staging survives");
    drop(own);
    assert_eq!(store.list().len(), 3);
    let keep: HashSet<LayerId> = [ids[0].clone()].into();
    let busy = store.path(&ids[1]);
    assert!(store.gc(&HashSet::new(), Duration::from_secs(3600), |_| false).is_empty(), "all were used recently");
    let removed = store.gc(&keep, Duration::ZERO, |path| path == busy);
    assert_eq!(removed, vec![ids[2].clone()]);
    assert!(store.contains(&ids[0]) && store.contains(&ids[1]) && !store.contains(&ids[2]));
    assert_eq!(fs::read_dir(store.root()).unwrap().count(), 2, "no trash left");
}

#[test]
fn gc_never_removes_through_a_mount_point() {
    if !root() {
        return;
    }
    let (_tmp, store) = store();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("precious"), b"keep me").unwrap();
    let id = LayerId::for_cache_key("mounted");
    let staging = store.stage().unwrap();
    fs::create_dir(staging.path().join("mnt")).unwrap();
    staging.publish(&id, LayerSource::Step { cache_key: "mounted".into() }).unwrap();
    let mnt = store.path(&id).join("mnt");
    let status = std::process::Command::new("mount").arg("--bind").arg(outside.path()).arg(&mnt).status().unwrap();
    assert!(status.success(), "mount --bind");
    let removed = store.gc(&HashSet::new(), Duration::ZERO, |_| false);
    assert_eq!(removed, vec![id.clone()], "the layer leaves the store");
    assert_eq!(fs::read(outside.path().join("precious")).unwrap(), b"keep me");
    // The mount moved with the renamed directory; once it is gone the leftover is cleaned up.
    let trash: Vec<_> = fs::read_dir(store.root()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(trash.len(), 1);
    let status = std::process::Command::new("umount").arg(trash[0].join("fs/mnt")).status().unwrap();
    assert!(status.success(), "umount");
    assert_eq!(store.remove_leftovers(), 0, "this process's own gc trash is not a crash leftover");
    tree::remove_tree(&trash[0]).unwrap();
    assert_eq!(fs::read(outside.path().join("precious")).unwrap(), b"keep me");
}

#[test]
fn gc_keeps_the_build_cache_for_its_grace_counted_from_the_last_use() {
    let (_tmp, store) = store();
    let age = |id: &LayerId, by: Duration| {
        let info = store.path(id).with_file_name("layer.json");
        let file = fs::File::options().append(true).open(info).unwrap();
        file.set_modified(SystemTime::now() - by).unwrap();
    };
    let ids: Vec<LayerId> = ["old", "used"]
        .iter()
        .map(|key| {
            let id = LayerId::for_cache_key(key);
            store.publish_dir(&id, &empty_dir(), LayerSource::Step { cache_key: (*key).into() }).unwrap();
            age(&id, Duration::from_secs(7200));
            id
        })
        .collect();
    store.mark_used(&ids[1]);
    let removed = store.gc(&HashSet::new(), Duration::from_secs(3600), |_| false);
    assert_eq!(removed, vec![ids[0].clone()], "only the layer unused for longer than the grace goes");
    assert!(store.contains(&ids[1]));
}

/// An empty directory for `publish_dir` to move into the store.
fn empty_dir() -> std::path::PathBuf {
    tempfile::tempdir().unwrap().keep()
}

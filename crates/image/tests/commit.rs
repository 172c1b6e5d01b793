//! `commit` (an overlay upper dir becomes a layer, whiteouts included) and
//! `write_tree` (export), on real overlay mounts.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use berth_image::{
    ApplyOptions, CommitOptions, ContainerRootfs, ImageStore, ImportOptions, LoadOptions,
    Reference, RootfsMode, TreeKind, WhiteoutFormat, commit, import, write_tree,
};
use common::{Layer, is_root, xattr};

fn usable() -> bool {
    if !is_root() || !berth_image::rootfs::overlay_supported() {
        eprintln!("skipped: needs root and overlayfs");
        return false;
    }
    true
}

fn apply() -> ApplyOptions {
    ApplyOptions {
        whiteouts: WhiteoutFormat::Overlay,
        ..ApplyOptions::default()
    }
}

/// Unmounts and removes the rootfs however the test ends.
struct Guard(Option<ContainerRootfs>);
impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            let _ = r.remove();
        }
    }
}

/// The entries of a (gzip) layer blob: (path, type, size, link target).
fn entries(images: &ImageStore, digest: &berth_image::Digest) -> Vec<(String, char, u64, String)> {
    let blob = images.content().open_blob(digest).unwrap();
    let mut out = Vec::new();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(blob));
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let t = match e.header().entry_type() {
            tar::EntryType::Regular => 'f',
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Fifo => 'p',
            _ => '?',
        };
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push((
            e.path().unwrap().to_string_lossy().into_owned(),
            t,
            data.len() as u64,
            link,
        ));
    }
    out
}

#[test]
fn commit_turns_overlay_changes_into_a_layer() {
    if !usable() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let images = ImageStore::open(t.path().join("store")).unwrap();
    let mut base = Layer::new();
    base.dir("etc", 0o755)
        .file("etc/keep", b"keep\n", 0o644)
        .file("etc/change", b"old\n", 0o644)
        .file("etc/remove-me", b"x", 0o644)
        .dir("data", 0o755)
        .file("data/a", b"a", 0o644)
        .file("data/b", b"b", 0o644);
    let tag = Reference::parse_normalized("base:1").unwrap();
    let base_rec = import(
        &images,
        &base.finish()[..],
        Some(&tag),
        &ImportOptions {
            changes: vec!["CMD [\"/bin/true\"]".into(), "ENV A=1".into()],
            load: LoadOptions {
                apply: apply(),
                ..LoadOptions::default()
            },
            ..ImportOptions::default()
        },
    )
    .unwrap();

    let dir = t.path().join("ctr");
    let g = Guard(Some(
        ContainerRootfs::prepare(
            images.snapshots(),
            &base_rec.chain_ids,
            &dir,
            RootfsMode::Overlay,
        )
        .unwrap(),
    ));
    let r = g.0.as_ref().unwrap();
    let m = r.path();
    fs::write(m.join("etc/change"), b"new\n").unwrap();
    fs::remove_file(m.join("etc/remove-me")).unwrap();
    fs::remove_dir_all(m.join("data")).unwrap();
    fs::create_dir(m.join("data")).unwrap();
    fs::write(m.join("data/c"), b"c").unwrap();
    fs::create_dir_all(m.join("new/dir")).unwrap();
    fs::write(m.join("new/dir/file"), b"hello").unwrap();
    fs::set_permissions(m.join("new/dir/file"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("/etc/keep", m.join("new/link")).unwrap();
    fs::hard_link(m.join("new/dir/file"), m.join("new/hard")).unwrap();
    std::process::Command::new("mkfifo")
        .arg(m.join("new/fifo"))
        .status()
        .unwrap();
    std::process::Command::new("setfattr")
        .args(["-n", "user.berth", "-v", "yes"])
        .arg(m.join("new/dir/file"))
        .status()
        .ok();

    let upper = r.upper().unwrap();
    let new_tag = Reference::parse_normalized("committed:1").unwrap();
    let rec = commit(
        &images,
        Some(&base_rec),
        &upper,
        Some(&new_tag),
        &CommitOptions {
            changes: vec!["ENV B=2".into()],
            author: Some("tester".into()),
            message: Some("a message".into()),
            created_by: Some("/bin/sh".into()),
            apply: apply(),
            ..CommitOptions::default()
        },
    )
    .unwrap();
    assert_eq!(rec.chain_ids.len(), 2);
    assert_eq!(rec.chain_ids[0], base_rec.chain_ids[0]);
    assert_eq!(images.get("committed:1").unwrap().id, rec.id);

    // The layer: OCI whiteouts, the opaque marker, the new files.
    let manifest: serde_json::Value =
        serde_json::from_slice(&images.content().read_blob(&rec.manifest, 1 << 20).unwrap())
            .unwrap();
    let layer: berth_image::Digest = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        manifest["layers"][1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let e = entries(&images, &layer);
    let names: Vec<&str> = e.iter().map(|x| x.0.trim_end_matches('/')).collect();
    for want in [
        "etc/change",
        "etc/.wh.remove-me",
        "data",
        "data/.wh..wh..opq",
        "data/c",
        "new/dir/file",
        "new/link",
        "new/hard",
        "new/fifo",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(!names.contains(&"etc/keep"), "{names:?}");
    let link = e.iter().find(|x| x.0 == "new/link").unwrap();
    assert_eq!((link.1, link.3.as_str()), ('l', "/etc/keep"));
    let hard = e
        .iter()
        .find(|x| x.0 == "new/hard" || x.0 == "new/dir/file");
    assert!(hard.is_some());
    assert!(e.iter().any(|x| x.1 == 'h'), "{e:?}");

    // The config: the base's plus the changes, history and diff_id.
    let cfg: serde_json::Value =
        serde_json::from_slice(&images.content().read_blob(&rec.id, 1 << 20).unwrap()).unwrap();
    assert_eq!(cfg["config"]["Cmd"], serde_json::json!(["/bin/true"]));
    let env = cfg["config"]["Env"].as_array().unwrap();
    assert!(env.contains(&serde_json::json!("A=1")) && env.contains(&serde_json::json!("B=2")));
    assert_eq!(cfg["author"], "tester");
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    let hist = cfg["history"].as_array().unwrap();
    assert_eq!(hist.last().unwrap()["comment"], "a message");
    assert_eq!(hist.last().unwrap()["created_by"], "/bin/sh");

    // A container of the committed image sees the changes.
    let dir2 = t.path().join("ctr2");
    let g2 = Guard(Some(
        ContainerRootfs::prepare(
            images.snapshots(),
            &rec.chain_ids,
            &dir2,
            RootfsMode::Overlay,
        )
        .unwrap(),
    ));
    let m2 = g2.0.as_ref().unwrap().path();
    assert_eq!(fs::read(m2.join("etc/change")).unwrap(), b"new\n");
    assert_eq!(fs::read(m2.join("etc/keep")).unwrap(), b"keep\n");
    assert!(!m2.join("etc/remove-me").exists());
    let mut data: Vec<_> = fs::read_dir(m2.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    data.sort();
    assert_eq!(data, ["c"]);
    let f = fs::metadata(m2.join("new/dir/file")).unwrap();
    assert_eq!(f.mode() & 0o7777, 0o640);
    assert_eq!(f.ino(), fs::metadata(m2.join("new/hard")).unwrap().ino());
    assert_eq!(
        fs::read_link(m2.join("new/link")).unwrap(),
        Path::new("/etc/keep")
    );
    if let Some(v) = xattr(&m2.join("new/dir/file"), "user.berth") {
        assert_eq!(v, b"yes");
    }
}

#[test]
fn export_writes_the_tree_without_following_symlinks() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("a/b")).unwrap();
    fs::write(root.join("a/b/f"), b"data").unwrap();
    // A symlink to the host's /etc and one that loops: both archived as
    // links, nothing of /etc read.
    std::os::unix::fs::symlink("/etc", root.join("etc-link")).unwrap();
    std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
    let mut out = Vec::new();
    let n = write_tree(&root, TreeKind::Full, &mut out).unwrap();
    assert_eq!(n, 5);
    let mut a = tar::Archive::new(&out[..]);
    let mut seen = Vec::new();
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        seen.push((
            e.path().unwrap().to_string_lossy().into_owned(),
            e.header().entry_type().is_symlink(),
        ));
    }
    assert_eq!(
        seen,
        vec![
            ("a".to_string(), false),
            ("a/b".to_string(), false),
            ("a/b/f".to_string(), false),
            ("etc-link".to_string(), true),
            ("loop".to_string(), true),
        ]
    );
    // A missing tree is an error naming it.
    let e = write_tree(&t.path().join("nope"), TreeKind::Full, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
}

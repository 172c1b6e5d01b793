//! Image records: add, tag, untag, remove, prune, GC, crash consistency.

mod common;

use std::collections::HashSet;
use std::fs;

use berth_image::{ApplyOptions, Digest, Error, ImageStore, Platform, Reference};
use common::{Layer, gzip};

/// Writes a one- or more-layer OCI image into the store's content; returns
/// the manifest digest.
pub fn put_image(s: &ImageStore, files: &[(&str, &[u8])], created: &str) -> Digest {
    let mut diff_ids = Vec::new();
    let mut layers = Vec::new();
    for (name, data) in files {
        let mut l = Layer::new();
        l.file(name, data, 0o644);
        let tar = l.finish();
        diff_ids.push(Digest::sha256(&tar).to_string());
        let gz = gzip(&tar);
        let info = s.content().write_blob_bytes(&gz, None).unwrap();
        layers.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": info.digest.to_string(), "size": info.size}));
    }
    let p = Platform::host();
    let config = serde_json::json!({
        "created": created, "architecture": p.architecture, "os": p.os,
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let cb = serde_json::to_vec(&config).unwrap();
    let c = s.content().write_blob_bytes(&cb, None).unwrap();
    let m = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": c.digest.to_string(), "size": c.size},
        "layers": layers,
    });
    let mb = serde_json::to_vec(&m).unwrap();
    s.content().write_blob_bytes(&mb, None).unwrap().digest
}

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

fn opts() -> ApplyOptions {
    ApplyOptions::default()
}

const NONE: &dyn Fn(&Digest) -> bool = &|_| false;

#[test]
fn add_tag_lookup_and_persist() {
    let t = tempfile::tempdir().unwrap();
    let s = ImageStore::open(t.path()).unwrap();
    let m = put_image(&s, &[("a", b"aa"), ("b", b"bbb")], "2024-01-01T00:00:00Z");
    let rec = s
        .add(&m, &Platform::host(), &[r("busybox")], &opts())
        .unwrap();
    assert_eq!(rec.repo_tags, vec!["docker.io/library/busybox:latest"]);
    assert_eq!(rec.familiar_tags(), vec!["busybox:latest"]);
    assert_eq!(rec.manifest, m);
    assert_eq!(rec.target, m);
    assert_eq!(rec.chain_ids.len(), 2);
    assert_eq!(rec.blobs.len(), 4);
    assert!(rec.size >= 5);
    assert_eq!(rec.created.as_deref(), Some("2024-01-01T00:00:00Z"));
    for c in &rec.chain_ids {
        assert!(s.snapshots().exists(c));
    }
    // Lookups: tag, familiar tag, full id, short id, sha256: prefix, manifest digest.
    for name in [
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox:latest",
        &rec.id.to_string(),
        &rec.id.hex()[..12],
        &format!("sha256:{}", &rec.id.hex()[..8]),
        &m.to_string(),
    ] {
        assert_eq!(s.get(name).unwrap().id, rec.id, "{name}");
    }
    assert!(matches!(s.get("nothere"), Err(Error::ImageNotFound(n)) if n == "nothere"));
    // Persisted: a new handle sees it.
    let s2 = ImageStore::open(t.path()).unwrap();
    assert_eq!(s2.list().unwrap(), vec![rec.clone()]);
    assert_eq!(s2.config(&rec).unwrap().digest, rec.id);

    // tag moves a tag between images; untag leaves the image dangling.
    let m2 = put_image(&s, &[("c", b"c")], "2025-01-01T00:00:00Z");
    let rec2 = s
        .add(&m2, &Platform::host(), &[r("other:1")], &opts())
        .unwrap();
    s.tag("other:1", &r("busybox:latest")).unwrap();
    assert!(s.get(&rec.id.to_string()).unwrap().is_dangling());
    let list = s.list().unwrap();
    assert_eq!(list[0].id, rec2.id, "newest first");
    assert_eq!(
        list[0].familiar_tags(),
        vec!["busybox:latest".to_string(), "other:1".to_string()]
    );
    assert_eq!(s.untag(&r("other:1")).unwrap(), rec2.id);
    assert!(matches!(
        s.untag(&r("other:1")),
        Err(Error::ImageNotFound(_))
    ));
    let by_digest = r(&format!("x@sha256:{}", "a".repeat(64)));
    let e = s.tag("busybox", &by_digest).unwrap_err();
    assert!(e.to_string().contains("without a digest"), "{e}");
}

#[test]
fn remove_untags_then_deletes_and_collects() {
    let t = tempfile::tempdir().unwrap();
    let s = ImageStore::open(t.path()).unwrap();
    let shared = put_image(&s, &[("base", b"base")], "2024-01-01T00:00:00Z");
    let a = s
        .add(&shared, &Platform::host(), &[r("a"), r("a:2")], &opts())
        .unwrap();
    let mb = put_image(
        &s,
        &[("base", b"base"), ("top", b"top")],
        "2024-02-01T00:00:00Z",
    );
    let b = s.add(&mb, &Platform::host(), &[r("b")], &opts()).unwrap();
    assert_eq!(a.chain_ids[0], b.chain_ids[0], "the base layer is shared");

    // By id with two tags: refused unless forced.
    let e = s.remove(&a.id.to_string(), false, NONE).unwrap_err();
    assert!(matches!(e, Error::ImageConflict { .. }), "{e}");
    assert!(e.to_string().contains("multiple repositories"), "{e}");
    // By tag with another tag left: untag only.
    let rep = s.remove("a:2", false, NONE).unwrap();
    assert_eq!(rep.untagged, vec!["docker.io/library/a:2"]);
    assert!(rep.deleted.is_empty());
    // In use: refused; forced, it only loses its tags.
    let used = |d: &Digest| *d == a.id;
    let e = s.remove("a", false, &used).unwrap_err();
    assert!(e.to_string().contains("being used by a container"), "{e}");
    let rep = s.remove("a", true, &used).unwrap();
    assert!(rep.deleted.is_empty());
    assert!(s.get(&a.id.to_string()).unwrap().is_dangling());
    // prune keeps an in-use dangling image.
    let rep = s.prune(false, &used).unwrap();
    assert!(rep.deleted.is_empty());
    assert!(s.snapshots().exists(&a.chain_ids[0]));
    // Not in use any more: pruned; the shared base layer and blob stay.
    let rep = s.prune(false, NONE).unwrap();
    assert_eq!(rep.deleted, vec![a.id.clone()]);
    assert!(rep.gc.removed.contains(&a.id));
    assert!(s.content().has_blob(&b.id));
    for c in &b.chain_ids {
        assert!(s.snapshots().exists(c));
    }
    for d in &b.blobs {
        s.content().verify_blob(d).unwrap();
    }
    // Deleting the last image collects everything.
    let rep = s.remove("b", false, NONE).unwrap();
    assert_eq!(rep.deleted, vec![b.id.clone()]);
    assert_eq!(rep.snapshots_removed.len(), 2);
    assert!(s.list().unwrap().is_empty());
    assert!(s.content().list_blobs().unwrap().is_empty());
    assert!(s.snapshots().list().unwrap().is_empty());
}

#[test]
fn failed_add_leaves_records_and_gc_collects_its_blobs() {
    let t = tempfile::tempdir().unwrap();
    let s = ImageStore::open(t.path()).unwrap();
    let good = put_image(&s, &[("g", b"g")], "2024-01-01T00:00:00Z");
    let g = s
        .add(&good, &Platform::host(), &[r("good")], &opts())
        .unwrap();
    let before = fs::read(t.path().join("images.json")).unwrap();

    // A manifest whose layer blob is missing.
    let m = put_image(&s, &[("x", b"x")], "2024-01-01T00:00:00Z");
    let man: serde_json::Value =
        serde_json::from_slice(&s.content().read_blob(&m, 1 << 20).unwrap()).unwrap();
    let layer: Digest = man["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    s.content().delete_blob(&layer).unwrap();
    let e = s
        .add(&m, &Platform::host(), &[r("good")], &opts())
        .unwrap_err();
    assert!(
        matches!(e, Error::BlobNotFound(ref d) if *d == layer),
        "{e}"
    );
    assert_eq!(fs::read(t.path().join("images.json")).unwrap(), before);
    assert_eq!(s.get("good").unwrap().id, g.id, "the tag did not move");

    // GC removes what the failed add left, keeps the good image whole.
    let rep = s.gc().unwrap();
    assert!(rep.gc.removed.contains(&m));
    let all: HashSet<_> = s.content().list_blobs().unwrap().into_iter().collect();
    assert_eq!(all, g.blobs.iter().cloned().collect());

    // A leftover temp record file (a crash mid-write) is ignored and cleaned.
    fs::write(t.path().join(".images.json.tmp-1-2-3"), b"{garbage").unwrap();
    let s = ImageStore::open(t.path()).unwrap();
    assert_eq!(s.list().unwrap().len(), 1);
    s.gc().unwrap();
    assert!(!t.path().join(".images.json.tmp-1-2-3").exists());

    // A damaged record file is an error naming it, not an empty store.
    fs::write(t.path().join("images.json"), b"{not json").unwrap();
    let e = ImageStore::open(t.path()).unwrap_err();
    assert!(e.to_string().contains("images.json"), "{e}");
}

#[test]
fn concurrent_transactions_do_not_lose_updates() {
    let t = tempfile::tempdir().unwrap();
    let s = ImageStore::open(t.path()).unwrap();
    let m = put_image(&s, &[("a", b"a")], "2024-01-01T00:00:00Z");
    s.add(&m, &Platform::host(), &[], &opts()).unwrap();
    std::thread::scope(|sc| {
        for i in 0..8 {
            let root = t.path().to_path_buf();
            let m = m.clone();
            sc.spawn(move || {
                let s = ImageStore::open(&root).unwrap();
                s.tag(&m.to_string(), &r(&format!("t:{i}"))).unwrap();
            });
        }
    });
    assert_eq!(s.list().unwrap()[0].repo_tags.len(), 8);
}

/// GC leaves content a writer holds a lease for (written, not yet
/// recorded), and collects it once the lease is gone.
#[test]
fn gc_spares_leased_content() {
    let t = tempfile::tempdir().unwrap();
    let store = berth_image::ImageStore::open(t.path()).unwrap();
    let blob = store
        .content()
        .write_blob_bytes(b"written by a pull in progress", None)
        .unwrap();
    let lease = store.lease().unwrap();
    let report = store.gc().unwrap();
    assert!(report.gc.removed.is_empty());
    assert!(store.content().has_blob(&blob.digest));
    drop(lease);
    let report = store.gc().unwrap();
    assert_eq!(report.gc.removed, vec![blob.digest.clone()]);
    assert!(!store.content().has_blob(&blob.digest));
}

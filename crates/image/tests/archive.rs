//! Archives: docker-archive and OCI-layout load, save round trips, import,
//! hostile archives refused with nothing left behind.

mod common;

use std::collections::BTreeMap;

use berth_image::archive::config_json;
use berth_image::{
    ArchiveFormat, Digest, Error, ImageStore, ImportOptions, LoadOptions, Platform, Reference,
    import, load, save,
};
use common::{Layer, gzip};
use serde_json::json;
use tar::{EntryType, Header};

/// A tar of (name, content) files; `None` content is a directory.
fn tar_of(files: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = Header::new_gnu();
        match data {
            Some(d) => {
                h.set_entry_type(EntryType::Regular);
                h.set_size(d.len() as u64);
                h.set_mode(0o644);
            }
            None => {
                h.set_entry_type(EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
            }
        }
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name.as_bytes());
        }
        h.set_cksum();
        b.append(&h, data.unwrap_or(&[])).unwrap();
    }
    b.into_inner().unwrap()
}

fn layer(name: &str, data: &[u8]) -> Vec<u8> {
    let mut l = Layer::new();
    l.dir("etc", 0o755)
        .file(&format!("etc/{name}"), data, 0o644);
    l.finish()
}

fn config(diff_ids: &[&[u8]], cmd: &str) -> Vec<u8> {
    let p = Platform::host();
    let ids: Vec<String> = diff_ids
        .iter()
        .map(|l| Digest::sha256(l).to_string())
        .collect();
    serde_json::to_vec(&json!({
        "created": "2024-05-01T10:00:00Z", "architecture": p.architecture, "os": p.os,
        "config": {"Cmd": [cmd]},
        "rootfs": {"type": "layers", "diff_ids": ids},
        "history": [{"created": "2024-05-01T10:00:00Z", "created_by": "test"}],
    }))
    .unwrap()
}

/// A docker-archive with two images sharing a layer.
fn docker_archive() -> (Vec<u8>, Digest, Digest) {
    let (l0, l1) = (layer("base", b"base"), layer("top", b"top"));
    let c1 = config(&[&l0], "one");
    let c2 = config(&[&l0, &l1], "two");
    let (d1, d2) = (Digest::sha256(&c1), Digest::sha256(&c2));
    let h0 = Digest::sha256(&l0).hex().to_string();
    let h1 = Digest::sha256(&l1).hex().to_string();
    let manifest = serde_json::to_vec(&json!([
        {"Config": format!("{}.json", d1.hex()), "RepoTags": ["one:latest"],
         "Layers": [format!("{h0}/layer.tar")]},
        {"Config": format!("{}.json", d2.hex()), "RepoTags": ["two:1", "reg.example:5000/x/two:2"],
         "Layers": [format!("{h0}/layer.tar"), format!("{h1}/layer.tar")]},
    ]))
    .unwrap();
    let repos = br#"{"one":{"latest":"x"}}"#;
    let (n1, n2) = (format!("{}.json", d1.hex()), format!("{}.json", d2.hex()));
    let (p0, p1) = (format!("{h0}/layer.tar"), format!("{h1}/layer.tar"));
    let gz1 = gzip(&l1);
    let t = tar_of(&[
        (&h0, None),
        (&p0, Some(&l0)),
        (&h1, None),
        (&p1, Some(&gz1)), // docker load accepts compressed layer.tar too
        (&n1, Some(&c1)),
        (&n2, Some(&c2)),
        ("repositories", Some(repos)),
        ("manifest.json", Some(&manifest)),
    ]);
    (t, d1, d2)
}

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

fn store_state(s: &ImageStore) -> (Vec<Digest>, Vec<Digest>, Vec<u8>) {
    (
        s.content().list_blobs().unwrap(),
        s.snapshots().list().unwrap(),
        std::fs::read(s.root().join("images.json")).unwrap_or_default(),
    )
}

#[test]
fn docker_archive_loads_and_round_trips() {
    let t = tempfile::tempdir().unwrap();
    let s = ImageStore::open(t.path()).unwrap();
    let (ar, d1, d2) = docker_archive();
    let recs = load(&s, &ar[..], &LoadOptions::default()).unwrap();
    assert_eq!(
        recs.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![d1.clone(), d2.clone()]
    );
    assert_eq!(recs[0].familiar_tags(), vec!["one:latest"]);
    assert_eq!(
        recs[1].familiar_tags(),
        vec!["two:1", "reg.example:5000/x/two:2"]
    );
    assert_eq!(s.list().unwrap().len(), 2);
    // Only the images' blobs stay (manifest.json, repositories are gone).
    let mut want: Vec<Digest> = recs.iter().flat_map(|r| r.blobs.clone()).collect();
    want.sort();
    want.dedup();
    assert_eq!(s.content().list_blobs().unwrap(), want);
    let two = s.get("two:1").unwrap();
    assert_eq!(
        config_json(&s, &two).unwrap()["config"]["Cmd"],
        json!(["two"])
    );
    let top = s.snapshots().fs_path(two.chain_ids.last().unwrap());
    assert_eq!(std::fs::read(top.join("etc/top")).unwrap(), b"top");

    // save → load into a fresh store, both layouts: same ids, same tags.
    for format in [ArchiveFormat::Docker, ArchiveFormat::Oci] {
        let mut out = Vec::new();
        save(
            &s,
            &[
                "one".into(),
                "two:1".into(),
                "reg.example:5000/x/two:2".into(),
            ],
            format,
            &mut out,
        )
        .unwrap();
        let t2 = tempfile::tempdir().unwrap();
        let s2 = ImageStore::open(t2.path()).unwrap();
        let recs2 = load(&s2, &out[..], &LoadOptions::default()).unwrap();
        let mut got: Vec<_> = recs2
            .iter()
            .map(|r| (r.id.clone(), r.familiar_tags()))
            .collect();
        got.sort();
        let mut want: Vec<_> = recs
            .iter()
            .map(|r| (r.id.clone(), r.familiar_tags()))
            .collect();
        want.sort();
        assert_eq!(got, want, "{format:?}");
        if format == ArchiveFormat::Oci {
            // The OCI layout keeps the manifests as they are.
            let mut m2: Vec<_> = recs2.iter().map(|r| r.manifest.clone()).collect();
            let mut m1: Vec<_> = recs.iter().map(|r| r.manifest.clone()).collect();
            m1.sort();
            m2.sort();
            assert_eq!(m1, m2);
        } else {
            // Docker layout: layer.tar are uncompressed tars named by diff_id.
            let mut a = tar::Archive::new(&out[..]);
            let names: Vec<String> = a
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
                .collect();
            for d in s.config(&two).unwrap().diff_ids() {
                assert!(
                    names.contains(&format!("{}/layer.tar", d.hex())),
                    "{names:?}"
                );
            }
            assert!(names.contains(&"repositories".to_string()));
        }
    }
    // Saving by id: no tags in the archive.
    let mut out = Vec::new();
    save(
        &s,
        &[d1.hex()[..12].to_string()],
        ArchiveFormat::Docker,
        &mut out,
    )
    .unwrap();
    let t3 = tempfile::tempdir().unwrap();
    let s3 = ImageStore::open(t3.path()).unwrap();
    let recs3 = load(&s3, &out[..], &LoadOptions::default()).unwrap();
    assert!(recs3[0].is_dangling());
    assert!(matches!(
        save(&s, &["nope".into()], ArchiveFormat::Oci, Vec::new()),
        Err(Error::ImageNotFound(_))
    ));
}

#[test]
fn oci_layout_loads_with_names() {
    let t = tempfile::tempdir().unwrap();
    let s = ImageStore::open(t.path()).unwrap();
    let l0 = gzip(&layer("a", b"a"));
    let c = config(&[&layer("a", b"a")], "x");
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::sha256(&c).to_string(), "size": c.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": Digest::sha256(&l0).to_string(), "size": l0.len()}],
    }))
    .unwrap();
    let md = Digest::sha256(&m);
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(),
         "size": m.len(), "annotations": {"org.opencontainers.image.ref.name": "example.com/app:v1"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(),
         "size": m.len(), "annotations": {"io.containerd.image.name": "docker.io/library/app:latest",
                                          "org.opencontainers.image.ref.name": "latest"}},
    ]}))
    .unwrap();
    let b = |d: &[u8]| format!("blobs/sha256/{}", Digest::sha256(d).hex());
    let (bl, bc, bm) = (b(&l0), b(&c), b(&m));
    let ar = tar_of(&[
        ("oci-layout", Some(br#"{"imageLayoutVersion":"1.0.0"}"#)),
        ("index.json", Some(&index)),
        ("blobs", None),
        ("blobs/sha256", None),
        (&bl, Some(&l0)),
        (&bc, Some(&c)),
        (&bm, Some(&m)),
    ]);
    let recs = load(&s, &ar[..], &LoadOptions::default()).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].id, Digest::sha256(&c));
    assert_eq!(recs[0].manifest, md);
    assert_eq!(
        recs[0].familiar_tags(),
        vec!["app:latest", "example.com/app:v1"]
    );
}

#[test]
fn hostile_archives_are_refused_and_leave_nothing() {
    let t = tempfile::tempdir().unwrap();
    let s = ImageStore::open(t.path()).unwrap();
    // Something already stored must survive every refusal untouched.
    let (good, _, _) = docker_archive();
    load(&s, &good[..], &LoadOptions::default()).unwrap();
    let before = store_state(&s);

    let l = layer("x", b"x");
    let c = config(&[&l], "x");
    let cname = format!("{}.json", Digest::sha256(&c).hex());
    let man = |layers: &[&str], cfg: &str| {
        serde_json::to_vec(&json!([{"Config": cfg, "RepoTags": ["one:latest"], "Layers": layers}]))
            .unwrap()
    };
    let bad_blob = format!("blobs/sha256/{}", Digest::sha256(b"other").hex());
    let wrong_cfg = format!("{}.json", Digest::sha256(b"zzz").hex());
    let m_ok = man(&["l/layer.tar"], &cname);
    let m_missing = man(&["nothere/layer.tar"], &cname);
    let m_wrong = man(&["l/layer.tar"], &wrong_cfg);
    let bad_layer = layer("y", b"y"); // not the config's diff_id
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "escaping entry",
            tar_of(&[("../evil", Some(b"x")), ("manifest.json", Some(&m_ok))]),
            "\"../evil\"",
        ),
        (
            "absolute entry",
            tar_of(&[("/etc/evil", Some(b"x"))]),
            "\"/etc/evil\"",
        ),
        (
            "missing layer",
            tar_of(&[(&cname, Some(&c)), ("manifest.json", Some(&m_missing))]),
            "nothere/layer.tar",
        ),
        (
            "blob digest mismatch",
            tar_of(&[(&bad_blob, Some(b"not other"))]),
            &bad_blob,
        ),
        (
            "config name mismatch",
            tar_of(&[
                ("l/layer.tar", Some(&l)),
                (&wrong_cfg, Some(&c)),
                ("manifest.json", Some(&m_wrong)),
            ]),
            &wrong_cfg,
        ),
        (
            "diff_id mismatch",
            tar_of(&[
                ("l/layer.tar", Some(&bad_layer)),
                (&cname, Some(&c)),
                ("manifest.json", Some(&m_ok)),
            ]),
            "diff_id",
        ),
        (
            "no manifest",
            tar_of(&[("l/layer.tar", Some(&l))]),
            "no manifest.json",
        ),
        ("legacy", tar_of(&[("repositories", Some(b"{}"))]), "legacy"),
    ];
    for (what, ar, needle) in cases {
        let e = load(&s, &ar[..], &LoadOptions::default()).unwrap_err();
        assert!(e.to_string().contains(needle), "{what}: {e}");
        assert!(store_state(&s) == before, "{what} left something");
    }
    // Truncated: the archive cut in the middle of a layer.
    let full = tar_of(&[
        (&cname, Some(&c)),
        ("l/layer.tar", Some(&l)),
        ("manifest.json", Some(&m_ok)),
    ]);
    let cut = &full[..full.len() / 2 + 100];
    let e = load(&s, cut, &LoadOptions::default()).unwrap_err();
    assert!(
        e.to_string().contains("layer.tar") || e.to_string().contains("archive"),
        "{e}"
    );
    assert!(store_state(&s) == before);
    // A symlink out of the archive.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "l/layer.tar", "../../../etc/passwd")
        .unwrap();
    let ar = b.into_inner().unwrap();
    let e = load(&s, &ar[..], &LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("l/layer.tar"), "{e}");
    assert!(store_state(&s) == before);
    // The good images are intact.
    for img in s.list().unwrap() {
        for d in &img.blobs {
            s.content().verify_blob(d).unwrap();
        }
    }
}

#[test]
fn import_makes_a_one_layer_image() {
    let t = tempfile::tempdir().unwrap();
    let s = ImageStore::open(t.path()).unwrap();
    let mut l = Layer::new();
    l.dir("bin", 0o755)
        .file("bin/hello", b"#!/bin/sh\necho hi\n", 0o755);
    let tarball = gzip(&l.finish());
    let opts = ImportOptions {
        changes: vec![
            "CMD [\"/bin/hello\"]".into(),
            "ENV PATH=/bin".into(),
            "EXPOSE 8080".into(),
            "LABEL org.example=yes".into(),
        ],
        message: Some("from test".into()),
        ..Default::default()
    };
    let rec = import(&s, &tarball[..], Some(&r("imported:v1")), &opts).unwrap();
    assert_eq!(rec.familiar_tags(), vec!["imported:v1"]);
    assert_eq!(rec.chain_ids.len(), 1);
    let cfg = config_json(&s, &rec).unwrap();
    assert_eq!(cfg["config"]["Cmd"], json!(["/bin/hello"]));
    assert_eq!(cfg["config"]["Env"], json!(["PATH=/bin"]));
    assert_eq!(cfg["config"]["ExposedPorts"], json!({"8080/tcp": {}}));
    assert_eq!(cfg["config"]["Labels"], json!({"org.example": "yes"}));
    assert_eq!(cfg["history"][0]["comment"], "from test");
    assert_eq!(cfg["os"], Platform::host().os);
    let fs = s.snapshots().fs_path(&rec.chain_ids[0]);
    assert_eq!(
        std::fs::read(fs.join("bin/hello")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );

    // A bad change or a bad tarball: refused, nothing left.
    let before = store_state(&s);
    let bad = ImportOptions {
        changes: vec!["RUN rm -rf /".into()],
        ..Default::default()
    };
    let e = import(&s, &tarball[..], None, &bad).unwrap_err();
    assert!(e.to_string().contains("RUN"), "{e}");
    let mut evil = Layer::new();
    evil.raw(
        EntryType::Regular,
        b"../escape",
        b"",
        b"x",
        &Default::default(),
    );
    let e = import(&s, &evil.finish()[..], None, &ImportOptions::default()).unwrap_err();
    assert!(e.to_string().contains("../escape"), "{e}");
    assert!(store_state(&s) == before);
    let _ = BTreeMap::<(), ()>::new();
}

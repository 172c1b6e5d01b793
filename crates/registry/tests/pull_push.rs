//! `pull` and `push` end to end against Debian's docker-registry (the CNCF
//! distribution registry) in its three auth modes, and through a proxy that
//! injects faults into downloads.

mod common;

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use berth_image::manifest::media_types as media;
use berth_image::{
    ApplyOptions, Digest, ImageRecord, ImageStore, Platform, Reference, WhiteoutFormat,
};
use berth_registry::{
    Client, ClientOptions, Credentials, Error, NoProgress, NoPushProgress, PullOptions, pull, push,
};
use common::{Fault, FaultProxy, Registry, TokenIssuer};

fn opts() -> ApplyOptions {
    ApplyOptions {
        whiteouts: WhiteoutFormat::Overlay,
        ..ApplyOptions::default()
    }
}

fn pull_opts() -> PullOptions {
    PullOptions {
        apply: opts(),
        ..PullOptions::default()
    }
}

/// A tar with `files` (name, content).
fn tar_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    tar.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// Bytes that do not compress (so a gzip layer is as large as its tar).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn desc(media_type: &str, digest: &Digest, size: usize) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest.to_string(), "size": size})
}

/// A store holding one image of `layers` (each a tar, stored gzipped),
/// tagged `tag`.
fn store_with(tag: &str, layers: &[Vec<u8>]) -> (tempfile::TempDir, ImageStore, ImageRecord) {
    store_with_layers(tag, layers, true)
}

/// `store_with`, the layers gzipped or stored as plain tars.
fn store_with_layers(
    tag: &str,
    layers: &[Vec<u8>],
    gzipped: bool,
) -> (tempfile::TempDir, ImageStore, ImageRecord) {
    let dir = tempfile::tempdir().unwrap();
    let images = ImageStore::open(dir.path()).unwrap();
    let content = images.content();
    let mut diff_ids = Vec::new();
    let mut descs = Vec::new();
    for tar in layers {
        diff_ids.push(Digest::sha256(tar).to_string());
        let (blob, media_type) = if gzipped {
            (gzip(tar), media::OCI_LAYER_GZIP)
        } else {
            (tar.clone(), media::OCI_LAYER)
        };
        let info = content.write_blob_bytes(&blob, None).unwrap();
        descs.push(desc(media_type, &info.digest, blob.len()));
    }
    let host = Platform::host();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": host.architecture, "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let c = content.write_blob_bytes(&config, None).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": desc(media::OCI_CONFIG, &c.digest, config.len()),
        "layers": descs,
    }))
    .unwrap();
    let m = content.write_blob_bytes(&manifest, None).unwrap();
    let tag = Reference::parse_normalized(tag).unwrap();
    let rec = images
        .transaction(|t| t.add(&m.digest, &host, std::slice::from_ref(&tag), &opts()))
        .unwrap();
    (dir, images, rec)
}

fn client(addr: &str, creds: Option<Credentials>) -> Client {
    Client::new(
        addr,
        ClientOptions {
            credentials: creds,
            backoff: Some(Duration::from_millis(20)),
            idle_timeout: Some(Duration::from_secs(2)),
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

fn reference(addr: &str, repo_tag: &str) -> Reference {
    Reference::parse_normalized(&format!("{addr}/{repo_tag}")).unwrap()
}

async fn push_image(c: &Client, images: &ImageStore, rec: &ImageRecord, repo: &str, tag: &str) {
    push(c, images, rec, repo, tag, 3, Arc::new(NoPushProgress))
        .await
        .unwrap();
}

/// Pulls into a fresh store.
async fn pull_fresh(
    c: &Client,
    repo: &str,
    r: &Reference,
) -> (
    tempfile::TempDir,
    ImageStore,
    berth_registry::Result<berth_registry::Pulled>,
) {
    let dir = tempfile::tempdir().unwrap();
    let images = ImageStore::open(dir.path()).unwrap();
    let res = pull(c, &images, repo, r, &pull_opts(), Arc::new(NoProgress)).await;
    (dir, images, res)
}

fn two_layers() -> Vec<Vec<u8>> {
    vec![
        tar_of(&[
            ("a.txt", b"first layer".to_vec()),
            ("big", noise(3 << 20, 1)),
        ]),
        tar_of(&[("b.txt", b"second layer".to_vec())]),
    ]
}

fn file_in(images: &ImageStore, rec: &ImageRecord, layer: usize, name: &str) -> Vec<u8> {
    std::fs::read(images.snapshots().fs_path(&rec.chain_ids[layer]).join(name)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_push_round_trip_anonymous() {
    let Some(reg) = Registry::start(&[]) else {
        return;
    };
    let (_d, src, rec) = store_with("x/app:1", &two_layers());
    let c = client(&reg.addr, None);
    push_image(&c, &src, &rec, "team/app", "v1").await;

    let r = reference(&reg.addr, "team/app:v1");
    let (_d2, dst, pulled) = pull_fresh(&c, "team/app", &r).await;
    let pulled = pulled.unwrap();
    assert!(pulled.changed);
    assert_eq!(pulled.record.id, rec.id);
    assert_eq!(pulled.record.chain_ids, rec.chain_ids);
    assert_eq!(pulled.digest, rec.manifest);
    assert_eq!(file_in(&dst, &pulled.record, 0, "a.txt"), b"first layer");
    assert_eq!(file_in(&dst, &pulled.record, 1, "b.txt"), b"second layer");
    assert_eq!(file_in(&dst, &pulled.record, 0, "big"), noise(3 << 20, 1));
    assert_eq!(dst.get(&r.to_string()).unwrap().id, rec.id);
    assert!(
        pulled
            .record
            .repo_digests
            .contains(&format!("{}/team/app@{}", reg.addr, rec.manifest))
    );
    for b in &rec.blobs {
        assert!(dst.content().has_blob(b), "{b} missing after the pull");
        dst.content().verify_blob(b).unwrap();
    }

    // Again: nothing changes.
    let again = pull(&c, &dst, "team/app", &r, &pull_opts(), Arc::new(NoProgress))
        .await
        .unwrap();
    assert!(!again.changed);

    // By digest: the same image, recorded under its repo digest, no tag.
    let by_digest = reference(&reg.addr, &format!("team/app@{}", rec.manifest));
    let (_d3, dst3, p3) = pull_fresh(&c, "team/app", &by_digest).await;
    let p3 = p3.unwrap();
    assert_eq!(p3.record.id, rec.id);
    assert!(p3.record.repo_tags.is_empty());
    assert_eq!(dst3.get(&by_digest.to_string()).unwrap().id, rec.id);

    // A pulled image pushed to another repository: the blobs are mounted.
    push_image(&c, &dst, &pulled.record, "other/app", "v2").await;
    let (_d4, _dst4, p4) = pull_fresh(&c, "other/app", &reference(&reg.addr, "other/app:v2")).await;
    assert_eq!(p4.unwrap().record.id, rec.id);

    // And to another registry: uploaded from the store, same digest.
    let Some(reg2) = Registry::start(&[]) else {
        return;
    };
    let c2 = client(&reg2.addr, None);
    let pushed = push(
        &c2,
        &dst,
        &pulled.record,
        "moved/app",
        "v3",
        3,
        Arc::new(NoPushProgress),
    )
    .await
    .unwrap();
    assert_eq!(pushed.digest, rec.manifest);
    let (_d5, _dst5, p5) =
        pull_fresh(&c2, "moved/app", &reference(&reg2.addr, "moved/app:v3")).await;
    assert_eq!(p5.unwrap().record.id, rec.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_and_missing_tag() {
    let Some(reg) = Registry::start(&[]) else {
        return;
    };
    let (_d, src, rec) = store_with("x/app:1", &two_layers());
    let c = Client::new(
        &reg.addr,
        ClientOptions {
            upload_chunk_size: Some(256 << 10),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    push_image(&c, &src, &rec, "chunked/app", "latest").await;
    let (_d2, dst, p) = pull_fresh(&c, "chunked/app", &reference(&reg.addr, "chunked/app")).await;
    let p = p.unwrap();
    assert_eq!(p.record.id, rec.id);
    assert_eq!(file_in(&dst, &p.record, 0, "big"), noise(3 << 20, 1));

    let (_d3, dst3, missing) =
        pull_fresh(&c, "chunked/app", &reference(&reg.addr, "chunked/app:nope")).await;
    let e = missing.unwrap_err().to_string();
    assert!(e.contains("404") && e.contains("nope"), "{e}");
    assert!(dst3.list().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_pull_push() {
    let Some(reg) = Registry::start(&[("alice", "s3cret")]) else {
        return;
    };
    let (_d, src, rec) = store_with("x/app:1", &two_layers());
    let creds = Some(Credentials::new("alice", "s3cret"));
    let c = client(&reg.addr, creds);
    push_image(&c, &src, &rec, "basic/app", "v1").await;
    let r = reference(&reg.addr, "basic/app:v1");
    let (_d2, _dst, p) = pull_fresh(&c, "basic/app", &r).await;
    assert_eq!(p.unwrap().record.id, rec.id);

    let anon = client(&reg.addr, None);
    let (_d3, dst3, p) = pull_fresh(&anon, "basic/app", &r).await;
    assert!(matches!(p, Err(Error::Unauthorized { .. })), "{p:?}");
    assert!(dst3.list().unwrap().is_empty());
    let wrong = client(&reg.addr, Some(Credentials::new("alice", "nope")));
    let (_d4, _dst4, p) = pull_fresh(&wrong, "basic/app", &r).await;
    assert!(matches!(p, Err(Error::Unauthorized { .. })), "{p:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_pull_push() {
    let Some(issuer) = TokenIssuer::start("bob", "hunter2") else {
        return;
    };
    let Some(reg) = Registry::start_token(&issuer) else {
        return;
    };
    let (_d, src, rec) = store_with("x/app:1", &two_layers());
    let c = client(&reg.addr, Some(Credentials::new("bob", "hunter2")));
    c.ping().await.unwrap();
    push_image(&c, &src, &rec, "tok/app", "v1").await;
    let r = reference(&reg.addr, "tok/app:v1");
    let (_d2, dst, p) = pull_fresh(&c, "tok/app", &r).await;
    let p = p.unwrap();
    assert_eq!(p.record.id, rec.id);
    assert_eq!(file_in(&dst, &p.record, 1, "b.txt"), b"second layer");
    let scopes = issuer.scopes.lock().unwrap().clone();
    assert!(
        scopes.iter().any(|s| s == "repository:tok/app:pull,push"),
        "{scopes:?}"
    );
    assert!(
        scopes.iter().any(|s| s == "repository:tok/app:pull"),
        "{scopes:?}"
    );

    let anon = client(&reg.addr, None);
    let (_d3, _dst3, p) = pull_fresh(&anon, "tok/app", &r).await;
    assert!(matches!(p, Err(Error::Unauthorized { .. })), "{p:?}");
    let wrong = client(&reg.addr, Some(Credentials::new("bob", "wrong")));
    assert!(matches!(
        wrong.ping().await,
        Err(Error::Unauthorized { .. })
    ));
}

/// The big layer's digest (the fault target) of an image pushed to `reg`.
async fn pushed(
    reg: &Registry,
    repo: &str,
) -> (tempfile::TempDir, ImageStore, ImageRecord, Digest) {
    let (d, src, rec) = store_with("x/app:1", &two_layers());
    push_image(&client(&reg.addr, None), &src, &rec, repo, "v1").await;
    let bytes = src.content().read_blob(&rec.manifest, 1 << 20).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let big: Digest = m["layers"][0]["digest"].as_str().unwrap().parse().unwrap();
    (d, src, rec, big)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_is_resumed_with_range() {
    let Some(reg) = Registry::start(&[]) else {
        return;
    };
    let (_d, _src, rec, big) = pushed(&reg, "fault/drop").await;
    let proxy = FaultProxy::start(
        &reg.addr,
        big.hex(),
        Fault::DropAfter {
            bytes: 700_000,
            times: 2,
        },
    );
    let c = client(&proxy.addr, None);
    let (_d2, dst, p) =
        pull_fresh(&c, "fault/drop", &reference(&proxy.addr, "fault/drop:v1")).await;
    let p = p.unwrap();
    assert_eq!(p.record.id, rec.id);
    assert_eq!(file_in(&dst, &p.record, 0, "big"), noise(3 << 20, 1));
    let seen = proxy.seen.lock().unwrap().clone();
    let ranges: Vec<_> = seen
        .iter()
        .filter(|s| s.path.contains(big.hex()))
        .map(|s| s.range.clone())
        .collect();
    assert_eq!(
        ranges,
        vec![
            None,
            Some("bytes=700000-".to_string()),
            Some("bytes=1400000-".to_string())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_download_times_out_and_resumes() {
    let Some(reg) = Registry::start(&[]) else {
        return;
    };
    let (_d, _src, rec, big) = pushed(&reg, "fault/stall").await;
    let proxy = FaultProxy::start(
        &reg.addr,
        big.hex(),
        Fault::Stall {
            bytes: 500_000,
            secs: 6,
            times: 1,
        },
    );
    let c = client(&proxy.addr, None);
    let (_d2, _dst, p) =
        pull_fresh(&c, "fault/stall", &reference(&proxy.addr, "fault/stall:v1")).await;
    assert_eq!(p.unwrap().record.id, rec.id);
    let seen = proxy.seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|s| s.range.as_deref() == Some("bytes=500000-")),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried() {
    let Some(reg) = Registry::start(&[]) else {
        return;
    };
    let (_d, _src, rec, _big) = pushed(&reg, "fault/503").await;
    let proxy = FaultProxy::start(&reg.addr, "-", Fault::Unavailable { times: 3 });
    let c = client(&proxy.addr, None);
    let (_d2, _dst, p) = pull_fresh(&c, "fault/503", &reference(&proxy.addr, "fault/503:v1")).await;
    assert_eq!(p.unwrap().record.id, rec.id);

    // More failures than retries: a clear error naming the status.
    let proxy = FaultProxy::start(&reg.addr, "-", Fault::Unavailable { times: 100 });
    let c = client(&proxy.addr, None);
    let (_d3, dst, p) = pull_fresh(&c, "fault/503", &reference(&proxy.addr, "fault/503:v1")).await;
    let e = p.unwrap_err().to_string();
    assert!(e.contains("503"), "{e}");
    assert!(dst.list().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_blob_fails_naming_the_digest_and_keeps_the_store() {
    let Some(reg) = Registry::start(&[]) else {
        return;
    };
    let (_d, _src, rec, big) = pushed(&reg, "fault/corrupt").await;
    // The target store already holds another image: it must survive.
    let (_d0, dst, other) = store_with("x/keep:1", &[tar_of(&[("k", b"keep".to_vec())])]);
    let proxy = FaultProxy::start(&reg.addr, big.hex(), Fault::Corrupt);
    let c = client(&proxy.addr, None);
    let r = reference(&proxy.addr, "fault/corrupt:v1");
    let e = pull(
        &c,
        &dst,
        "fault/corrupt",
        &r,
        &pull_opts(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&big.to_string()), "{msg}");
    assert!(!dst.content().has_blob(&big));
    assert!(dst.get(&r.to_string()).is_err());
    let list = dst.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, other.id);
    for b in &other.blobs {
        dst.content().verify_blob(b).unwrap();
    }
    // No half-written blob or snapshot stays behind.
    let ingest: Vec<_> = std::fs::read_dir(dst.root().join("content/ingest"))
        .unwrap()
        .collect();
    assert!(ingest.is_empty(), "{ingest:?}");
    // The other image's snapshot stays; the corrupt layer has none (the
    // good layer pulled beside it may: complete layers are kept for the
    // next pull).
    let snaps = dst.snapshots().list().unwrap();
    assert!(snaps.contains(&other.chain_ids[0]));
    assert!(!snaps.contains(&rec.chain_ids[0]), "{snaps:?}");
    let leftovers: Vec<_> = std::fs::read_dir(dst.snapshots().root())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("incomplete"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_resolves_to_the_platform() {
    let Some(reg) = Registry::start(&[]) else {
        return;
    };
    let c = client(&reg.addr, None);
    // The host's image and an arm64 one, under one index.
    let (_d, src, rec) = store_with("x/app:1", &[tar_of(&[("host", b"h".to_vec())])]);
    push_image(&c, &src, &rec, "multi/app", &rec.manifest.to_string()).await;
    let arm_config = serde_json::to_vec(&serde_json::json!({
        "architecture": "arm64", "variant": "v8", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap();
    let ac = src.content().write_blob_bytes(&arm_config, None).unwrap();
    let arm_manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": desc(media::OCI_CONFIG, &ac.digest, arm_config.len()),
        "layers": [],
    }))
    .unwrap();
    let am = src.content().write_blob_bytes(&arm_manifest, None).unwrap();
    let config_desc = berth_image::Descriptor {
        media_type: media::OCI_CONFIG.into(),
        digest: ac.digest.clone(),
        size: ac.size,
        platform: None,
        urls: vec![],
        annotations: Default::default(),
    };
    c.push_blob("multi/app", &config_desc, src.content())
        .await
        .unwrap();
    c.put_manifest(
        "multi/app",
        &am.digest.to_string(),
        &arm_manifest,
        media::OCI_MANIFEST,
    )
    .await
    .unwrap();
    let host = Platform::host();
    let host_size = src.content().blob_size(&rec.manifest).unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media::OCI_INDEX,
        "manifests": [
            {"mediaType": media::OCI_MANIFEST, "digest": am.digest.to_string(), "size": am.size,
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": media::OCI_MANIFEST, "digest": rec.manifest.to_string(), "size": host_size,
             "platform": {"os": "linux", "architecture": host.architecture}},
        ],
    }))
    .unwrap();
    let idx = c
        .put_manifest("multi/app", "latest", &index, media::OCI_INDEX)
        .await
        .unwrap();

    let r = reference(&reg.addr, "multi/app:latest");
    let (_d2, _dst, p) = pull_fresh(&c, "multi/app", &r).await;
    let p = p.unwrap();
    assert_eq!(p.digest, idx);
    assert_eq!(p.record.id, rec.id);
    assert_eq!(p.record.manifest, rec.manifest);

    let dir = tempfile::tempdir().unwrap();
    let images = ImageStore::open(dir.path()).unwrap();
    let arm = PullOptions {
        platform: "linux/arm64".parse().unwrap(),
        ..pull_opts()
    };
    let p = pull(&c, &images, "multi/app", &r, &arm, Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(p.record.id, ac.digest);
    assert_eq!(p.record.manifest, am.digest);

    let none = PullOptions {
        platform: "linux/s390x".parse().unwrap(),
        ..pull_opts()
    };
    let e = pull(&c, &images, "multi/app", &r, &none, Arc::new(NoProgress))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("s390x"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncompressed_layers_are_compressed_once() {
    let Some(reg) = Registry::start(&[]) else {
        return;
    };
    let (_d, src, rec) = store_with_layers("x/plain:1", &two_layers(), false);
    let c = client(&reg.addr, None);
    let first = push(
        &c,
        &src,
        &rec,
        "plain/app",
        "v1",
        3,
        Arc::new(NoPushProgress),
    )
    .await
    .unwrap();
    assert_eq!(first.compressed.len(), 2);
    assert_ne!(first.digest, rec.manifest);
    // The record now references the compressed form: GC keeps it.
    let after = src.get(&rec.id.to_string()).unwrap();
    assert_eq!(after.manifest, first.digest);
    src.gc().unwrap();
    let second = push(
        &c,
        &src,
        &after,
        "plain/again",
        "v1",
        3,
        Arc::new(NoPushProgress),
    )
    .await
    .unwrap();
    assert!(second.compressed.is_empty(), "{:?}", second.compressed);
    assert_eq!(second.digest, first.digest);

    let (_d2, dst, p) = pull_fresh(&c, "plain/app", &reference(&reg.addr, "plain/app:v1")).await;
    let p = p.unwrap();
    assert_eq!(p.record.id, rec.id);
    let m: serde_json::Value = serde_json::from_slice(
        &dst.content()
            .read_blob(&p.record.manifest, 1 << 20)
            .unwrap(),
    )
    .unwrap();
    for l in m["layers"].as_array().unwrap() {
        assert_eq!(l["mediaType"], media::OCI_LAYER_GZIP);
    }
    assert_eq!(file_in(&dst, &p.record, 0, "big"), noise(3 << 20, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_certs_d_ca() {
    const HOST: &str = "registry.berth.test";
    let Some((_tls, ca, crt, key)) = common::tls_material(HOST) else {
        return;
    };
    let Some(reg) = Registry::start_tls(&crt, &key) else {
        return;
    };
    let addr: std::net::SocketAddr = reg.addr.parse().unwrap();
    let endpoint = format!("{HOST}:{}", addr.port());
    // docker's layout: certs.d/HOST:PORT/ca.crt
    let certs = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(certs.path().join(&endpoint)).unwrap();
    std::fs::copy(&ca, certs.path().join(&endpoint).join("ca.crt")).unwrap();
    let cfg = berth_registry::RegistriesConfig {
        certs_dirs: vec![certs.path().to_path_buf()],
        ..Default::default()
    };
    let mut o = cfg.client_options(&endpoint).unwrap();
    o.resolve = vec![(HOST.to_string(), addr)];
    let c = Client::new(&endpoint, o).unwrap();
    assert!(c.base_url().as_str().starts_with("https://"));
    let (_d, src, rec) = store_with("x/app:1", &[tar_of(&[("t", b"tls".to_vec())])]);
    push_image(&c, &src, &rec, "tls/app", "v1").await;
    let (_d2, _dst, p) = pull_fresh(&c, "tls/app", &reference(&endpoint, "tls/app:v1")).await;
    assert_eq!(p.unwrap().record.id, rec.id);

    // Without the CA the certificate is not trusted: an error, no retry
    // loop, nothing stored.
    let plain = Client::new(
        &endpoint,
        ClientOptions {
            resolve: vec![(HOST.to_string(), addr)],
            retries: Some(0),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let (_d3, dst3, p) = pull_fresh(&plain, "tls/app", &reference(&endpoint, "tls/app:v1")).await;
    let e = format!("{:?}", p.unwrap_err());
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    assert!(dst3.list().unwrap().is_empty());
}

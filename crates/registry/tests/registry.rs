//! The client against a real registry (Debian's `docker-registry`, the CNCF
//! distribution registry) started on 127.0.0.1, and against a small fake
//! server for the faults a real registry does not make.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use berth_image::manifest::media_types as media;
use berth_image::{ContentStore, Descriptor, Digest, Document};
use berth_registry::{Client, ClientOptions, Credentials, Error};

mod common;
use common::Registry;

/// A small image in a content store: a gzip layer, its config, an OCI
/// manifest.
struct TestImage {
    store: ContentStore,
    _dir: tempfile::TempDir,
    config: Descriptor,
    layers: Vec<Descriptor>,
    manifest: Vec<u8>,
}

fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest,
        size,
        platform: None,
        urls: Vec::new(),
        annotations: Default::default(),
    }
}

fn desc_json(d: &Descriptor) -> serde_json::Value {
    serde_json::json!({"mediaType": d.media_type, "digest": d.digest.to_string(), "size": d.size})
}

fn test_image(text: &str) -> TestImage {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path().join("content")).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, "hello.txt", text.as_bytes())
        .unwrap();
    let tar = tar.into_inner().unwrap();
    let diff_id = Digest::sha256(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let layer = gz.finish().unwrap();
    let layer_info = store.write_blob_bytes(&layer, None).unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    }))
    .unwrap();
    let config_info = store.write_blob_bytes(&config, None).unwrap();
    let config = descriptor(media::OCI_CONFIG, config_info.digest, config_info.size);
    let layers = vec![descriptor(
        media::OCI_LAYER_GZIP,
        layer_info.digest,
        layer_info.size,
    )];
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": desc_json(&config),
        "layers": layers.iter().map(desc_json).collect::<Vec<_>>(),
    }))
    .unwrap();
    TestImage {
        store,
        _dir: dir,
        config,
        layers,
        manifest,
    }
}

/// Pushes `img` to `repo:tag` (blobs, then the manifest); returns the
/// manifest digest and how many blobs were uploaded.
async fn push(client: &Client, repo: &str, tag: &str, img: &TestImage) -> (Digest, usize) {
    let mut uploaded = 0;
    for d in std::iter::once(&img.config).chain(&img.layers) {
        if client.push_blob(repo, d, &img.store).await.unwrap() {
            uploaded += 1;
        }
    }
    let digest = client
        .put_manifest(repo, tag, &img.manifest, media::OCI_MANIFEST)
        .await
        .unwrap();
    (digest, uploaded)
}

/// Pulls `repo:reference` into a fresh store; returns the store (and its
/// dir) and the blob digests it pulled.
async fn pull(
    client: &Client,
    repo: &str,
    reference: &str,
) -> (tempfile::TempDir, ContentStore, Digest, Vec<Digest>) {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let m = client.get_manifest(repo, reference).await.unwrap();
    assert_eq!(m.media_type, media::OCI_MANIFEST);
    let Document::Manifest(manifest) =
        berth_image::manifest::parse_document(&m.bytes, Some(&m.media_type)).unwrap()
    else {
        panic!("not a manifest");
    };
    store.write_blob_bytes(&m.bytes, Some(&m.digest)).unwrap();
    let mut blobs = vec![];
    let config = client
        .fetch_blob(repo, &manifest.config, &store)
        .await
        .unwrap();
    blobs.push(config.digest);
    for layer in &manifest.layers {
        let info = client
            .fetch_blob(repo, &layer.descriptor, &store)
            .await
            .unwrap();
        blobs.push(info.digest);
    }
    (dir, store, m.digest, blobs)
}

#[tokio::test]
async fn push_then_pull_by_tag_and_digest() {
    let Some(reg) = Registry::start(&[]) else {
        return;
    };
    let client = Client::new(&reg.addr, ClientOptions::default()).unwrap();
    client.ping().await.unwrap();
    let img = test_image("hello from berth\n");
    let repo = "berth/test";

    assert!(
        !client
            .blob_exists(repo, &img.layers[0].digest)
            .await
            .unwrap()
    );
    let (digest, uploaded) = push(&client, repo, "v1", &img).await;
    assert_eq!(digest, Digest::sha256(&img.manifest));
    assert_eq!(uploaded, 2);
    assert!(
        client
            .blob_exists(repo, &img.layers[0].digest)
            .await
            .unwrap()
    );
    assert!(client.blob_exists(repo, &img.config.digest).await.unwrap());

    // A second push finds every blob there.
    let (again, uploaded) = push(&client, repo, "v2", &img).await;
    assert_eq!((again, uploaded), (digest.clone(), 0));

    let want: Vec<Digest> = std::iter::once(&img.config)
        .chain(&img.layers)
        .map(|d| d.digest.clone())
        .collect();
    for reference in ["v1", "v2", &digest.to_string()] {
        let (_dir, store, got, blobs) = pull(&client, repo, reference).await;
        assert_eq!(got, digest, "{reference}");
        assert_eq!(blobs, want, "{reference}");
        for d in &want {
            store.verify_blob(d).unwrap();
            assert_eq!(
                store.read_blob(d, 1 << 20).unwrap(),
                img.store.read_blob(d, 1 << 20).unwrap()
            );
        }
        store.verify_blob(&digest).unwrap();
    }

    // Cross-repository mount: the layer appears in another repository
    // without an upload; a blob the source does not have is not mounted.
    let layer = &img.layers[0];
    assert!(
        !client
            .blob_exists("berth/other", &layer.digest)
            .await
            .unwrap()
    );
    assert!(client.mount_blob("berth/other", layer, repo).await.unwrap());
    assert!(
        client
            .blob_exists("berth/other", &layer.digest)
            .await
            .unwrap()
    );
    let absent = descriptor(media::OCI_LAYER_GZIP, Digest::sha256(b"absent"), 6);
    assert!(
        !client
            .mount_blob("berth/other", &absent, repo)
            .await
            .unwrap()
    );

    // Unknown tag and unknown digest: the registry's 404, not a panic.
    match client.get_manifest(repo, "nope").await {
        Err(Error::Status { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }
    let missing = Digest::sha256(b"missing");
    match client.get_manifest(repo, &missing.to_string()).await {
        Err(Error::Status { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(!client.blob_exists(repo, &missing).await.unwrap());
}

#[tokio::test]
async fn large_blob_streams_both_ways() {
    let Some(reg) = Registry::start(&[]) else {
        return;
    };
    let client = Client::new(&reg.addr, ClientOptions::default()).unwrap();
    let src_dir = tempfile::tempdir().unwrap();
    let src = ContentStore::open(src_dir.path()).unwrap();
    // 6 MiB of incompressible-ish bytes: many 256 KiB chunks each way.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..6 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let info = src.write_blob_bytes(&data, None).unwrap();
    let desc = descriptor("application/octet-stream", info.digest.clone(), info.size);
    assert!(client.push_blob("big/blob", &desc, &src).await.unwrap());
    assert!(!client.push_blob("big/blob", &desc, &src).await.unwrap());
    let dst_dir = tempfile::tempdir().unwrap();
    let dst = ContentStore::open(dst_dir.path()).unwrap();
    let got = client.fetch_blob("big/blob", &desc, &dst).await.unwrap();
    assert_eq!(
        (got.digest.clone(), got.size),
        (info.digest.clone(), info.size)
    );
    dst.verify_blob(&info.digest).unwrap();
    // Already there: not downloaded again.
    assert_eq!(
        client.fetch_blob("big/blob", &desc, &dst).await.unwrap(),
        got
    );
    // A descriptor with the wrong size is refused before anything lands.
    let other = tempfile::tempdir().unwrap();
    let other = ContentStore::open(other.path()).unwrap();
    let short = descriptor(
        "application/octet-stream",
        info.digest.clone(),
        info.size - 1,
    );
    assert!(client.fetch_blob("big/blob", &short, &other).await.is_err());
    assert!(other.list_blobs().unwrap().is_empty());
}

#[tokio::test]
async fn htpasswd_basic_auth() {
    let Some(reg) = Registry::start(&[("alice", "s3cret")]) else {
        return;
    };
    let img = test_image("basic auth\n");
    let repo = "private/img";

    let anonymous = Client::new(&reg.addr, ClientOptions::default()).unwrap();
    match anonymous.ping().await {
        Err(Error::Unauthorized { .. }) => {}
        other => panic!("{other:?}: {}", reg.log()),
    }
    let wrong = Client::new(
        &reg.addr,
        ClientOptions {
            credentials: Some(Credentials::new("alice", "wrong")),
            ..Default::default()
        },
    )
    .unwrap();
    match wrong.ping().await {
        Err(Error::Unauthorized { .. }) => {}
        other => panic!("{other:?}"),
    }

    let client = Client::new(
        &reg.addr,
        ClientOptions {
            credentials: Some(Credentials::new("alice", "s3cret")),
            ..Default::default()
        },
    )
    .unwrap();
    let (digest, uploaded) = push(&client, repo, "latest", &img).await;
    assert_eq!(uploaded, 2);
    let (_dir, _store, got, _) = pull(&client, repo, "latest").await;
    assert_eq!(got, digest);
    // A fresh client goes through 401 → Basic on its first request.
    let fresh = Client::new(
        &reg.addr,
        ClientOptions {
            credentials: Some(Credentials::new("alice", "s3cret")),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        fresh
            .get_manifest(repo, &digest.to_string())
            .await
            .unwrap()
            .digest,
        digest
    );
}

// ---- a fake registry for faults and the Bearer flow ----

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn respond(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Response {
    Response {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.to_vec(),
    }
}

type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Serves `handler` on a free port of 127.0.0.1 (one request per
/// connection); returns `127.0.0.1:PORT`.
fn fake_server(handler: Handler) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let handler = handler.clone();
            std::thread::spawn(move || serve_one(conn, &*handler));
        }
    });
    addr
}

fn serve_one(conn: TcpStream, handler: &(dyn Fn(&Request) -> Response + Send + Sync)) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            if n.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    let req = Request {
        method,
        path,
        headers,
    };
    let resp = handler(&req);
    let mut out = format!(
        "HTTP/1.1 {} X\r\nConnection: close\r\nContent-Length: {}\r\n",
        resp.status,
        resp.body.len()
    );
    for (n, v) in &resp.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut conn = conn;
    let _ = conn.write_all(out.as_bytes());
    if req.method != "HEAD" {
        let _ = conn.write_all(&resp.body);
    }
}

#[tokio::test]
async fn manifest_digest_mismatch_is_refused() {
    let img = test_image("mismatch\n");
    let good = Digest::sha256(&img.manifest);
    let manifest = img.manifest.clone();
    let tampered = {
        let mut m = img.manifest.clone();
        m.push(b' ');
        m
    };
    let good_str = good.to_string();
    let addr = fake_server(Arc::new(move |req: &Request| {
        let ct = ("Content-Type", media::OCI_MANIFEST);
        match req.path.as_str() {
            // Announces the right digest, sends other bytes.
            "/v2/a/manifests/lying" => {
                respond(200, &[ct, ("Docker-Content-Digest", &good_str)], &tampered)
            }
            // Asked by digest, sends other bytes and no header.
            p if p == format!("/v2/a/manifests/{good_str}") => respond(200, &[ct], &tampered),
            "/v2/a/manifests/honest" => {
                respond(200, &[ct, ("Docker-Content-Digest", &good_str)], &manifest)
            }
            _ => respond(404, &[], b""),
        }
    }));
    let client = Client::new(&addr, ClientOptions::default()).unwrap();
    assert_eq!(
        client.get_manifest("a", "honest").await.unwrap().digest,
        good
    );
    for reference in ["lying".to_string(), good.to_string()] {
        match client.get_manifest("a", &reference).await {
            Err(Error::DigestMismatch { expected, .. }) => assert_eq!(expected, good),
            other => panic!("{reference}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn blob_digest_mismatch_leaves_the_store_clean() {
    let img = test_image("blob\n");
    let layer = img.layers[0].clone();
    let mut wrong = img.store.read_blob(&layer.digest, 1 << 20).unwrap();
    wrong[0] ^= 0xff; // same size, other content
    let addr = fake_server(Arc::new(move |_req: &Request| respond(200, &[], &wrong)));
    let client = Client::new(&addr, ClientOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    match client.fetch_blob("a", &layer, &store).await {
        Err(Error::Image(berth_image::Error::DigestMismatch { expected, .. })) => {
            assert_eq!(expected, layer.digest)
        }
        other => panic!("{other:?}"),
    }
    assert!(!store.has_blob(&layer.digest));
    assert!(store.list_blobs().unwrap().is_empty());
}

#[tokio::test]
async fn bearer_token_flow_caches_per_scope_and_renews() {
    let img = test_image("bearer\n");
    let manifest = img.manifest.clone();
    let tokens_issued = Arc::new(AtomicUsize::new(0));
    let valid = Arc::new(Mutex::new(String::new()));
    let scopes = Arc::new(Mutex::new(Vec::<String>::new()));
    let addr_cell = Arc::new(Mutex::new(String::new()));
    let handler: Handler = {
        let (tokens_issued, valid, scopes, addr_cell) = (
            tokens_issued.clone(),
            valid.clone(),
            scopes.clone(),
            addr_cell.clone(),
        );
        Arc::new(move |req: &Request| {
            if req.path.starts_with("/token?") {
                assert_eq!(
                    req.header("authorization"),
                    Some("Basic Ym9iOnB3"),
                    "bob:pw"
                );
                let n = tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
                let query = req.path.split_once('?').unwrap().1.to_string();
                scopes.lock().unwrap().push(query);
                let token = format!("tok{n}");
                *valid.lock().unwrap() = token.clone();
                return respond(200, &[], format!(r#"{{"token":"{token}"}}"#).as_bytes());
            }
            let want = format!("Bearer {}", valid.lock().unwrap());
            if req.header("authorization") != Some(want.as_str()) {
                let challenge = format!(
                    r#"Bearer realm="http://{}/token",service="fake",scope="repository:a/b:pull""#,
                    addr_cell.lock().unwrap()
                );
                return respond(401, &[("WWW-Authenticate", &challenge)], b"{}");
            }
            respond(200, &[("Content-Type", media::OCI_MANIFEST)], &manifest)
        })
    };
    let addr = fake_server(handler);
    *addr_cell.lock().unwrap() = addr.clone();
    let client = Client::new(
        &addr,
        ClientOptions {
            credentials: Some(Credentials::new("bob", "pw")),
            ..Default::default()
        },
    )
    .unwrap();
    // The ping's challenge has a scope of its own here; a token without
    // one is what `/v2/` needs.
    client.ping().await.unwrap();
    assert_eq!(tokens_issued.load(Ordering::SeqCst), 1);
    let want = Digest::sha256(&img.manifest);
    assert_eq!(client.get_manifest("a/b", "t").await.unwrap().digest, want);
    assert_eq!(client.get_manifest("a/b", "t").await.unwrap().digest, want);
    assert_eq!(
        tokens_issued.load(Ordering::SeqCst),
        2,
        "the token is cached"
    );
    assert_eq!(
        scopes.lock().unwrap()[1],
        "service=fake&scope=repository%3Aa%2Fb%3Apull"
    );
    // A mount asks for both repositories' scopes in one token.
    let layer = &img.layers[0];
    *valid.lock().unwrap() = "none-yet".into();
    let _ = client.mount_blob("a/b", layer, "c/d").await;
    assert_eq!(
        scopes.lock().unwrap()[2],
        "service=fake&scope=repository%3Aa%2Fb%3Apull%2Cpush&scope=repository%3Ac%2Fd%3Apull"
    );
    *valid.lock().unwrap() = "tok2".into();
    // The server forgets the token: the client gets a new one, once.
    *valid.lock().unwrap() = "expired-elsewhere".into();
    assert_eq!(client.get_manifest("a/b", "t").await.unwrap().digest, want);
    assert_eq!(tokens_issued.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn bearer_refused_token_is_an_error_not_a_loop() {
    let hits = Arc::new(AtomicUsize::new(0));
    let addr_cell = Arc::new(Mutex::new(String::new()));
    let handler: Handler = {
        let (hits, addr_cell) = (hits.clone(), addr_cell.clone());
        Arc::new(move |req: &Request| {
            if req.path.starts_with("/token") {
                return respond(200, &[], br#"{"access_token":"never-good"}"#);
            }
            hits.fetch_add(1, Ordering::SeqCst);
            let challenge = format!(
                r#"Bearer realm="http://{}/token",service="fake""#,
                addr_cell.lock().unwrap()
            );
            respond(401, &[("WWW-Authenticate", &challenge)], b"")
        })
    };
    let addr = fake_server(handler);
    *addr_cell.lock().unwrap() = addr.clone();
    let client = Client::new(&addr, ClientOptions::default()).unwrap();
    match client.get_manifest("a/b", "t").await {
        Err(Error::Unauthorized { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2, "one retry");
}

#[tokio::test]
async fn tag_lists_follow_link_pages() {
    let addr = fake_server(Arc::new(|req: &Request| {
        if req.path == "/v2/" {
            return respond(200, &[], b"{}");
        }
        if req.path == "/v2/lib/app/tags/list" {
            return respond(
                200,
                &[("Link", "</v2/lib/app/tags/list?last=b&n=2>; rel=\"next\"")],
                br#"{"name":"lib/app","tags":["b","a"]}"#,
            );
        }
        if req.path == "/v2/lib/app/tags/list?last=b&n=2" {
            return respond(200, &[], br#"{"name":"lib/app","tags":["c"]}"#);
        }
        if req.path == "/v2/lib/evil/tags/list" {
            return respond(200, &[], br#"{"name":"lib/evil","tags":["../x"]}"#);
        }
        respond(404, &[], b"")
    }));
    let c = Client::new(&addr, ClientOptions::default()).unwrap();
    assert_eq!(c.list_tags("lib/app").await.unwrap(), ["a", "b", "c"]);
    assert!(c.list_tags("lib/evil").await.is_err());
    assert!(c.list_tags("lib/none").await.is_err());
}

#[tokio::test]
async fn credentials_never_follow_a_location_to_another_host() {
    // The upload URL the registry hands out is on another host: it gets
    // the blob, never the registry's password.
    let seen_auth = Arc::new(Mutex::new(Vec::<Option<String>>::new()));
    let seen = seen_auth.clone();
    let other = fake_server(Arc::new(move |req: &Request| {
        seen.lock()
            .unwrap()
            .push(req.header("authorization").map(str::to_string));
        respond(201, &[], b"")
    }));
    let other2 = other.clone();
    let reg = fake_server(Arc::new(move |req: &Request| {
        if req.header("authorization").is_none() {
            return respond(401, &[("WWW-Authenticate", "Basic realm=\"test\"")], b"");
        }
        match req.method.as_str() {
            "HEAD" => respond(404, &[], b""),
            "POST" => {
                let loc = format!("http://{other2}/upload/1");
                respond(202, &[("Location", loc.as_str())], b"")
            }
            _ => respond(400, &[], b""),
        }
    }));
    let img = test_image("secret-test");
    let c = Client::new(
        &reg,
        ClientOptions {
            credentials: Some(Credentials::new("u", "p")),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    assert!(c.push_blob("a/b", &img.config, &img.store).await.unwrap());
    let seen = seen_auth.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(Option::is_none), "{seen:?}");
}

//! Test helpers: Debian's docker-registry on a free port of 127.0.0.1.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A registry process on a free port of 127.0.0.1, killed on drop.
pub struct Registry {
    child: Child,
    pub addr: String,
    pub _dir: tempfile::TempDir,
    /// The network namespace it serves in (`/run/netns/NAME`), if not this process's.
    netns: Option<String>,
}

impl Registry {
    /// Starts a registry; with `htpasswd`, it requires Basic auth of those
    /// users (`(user, password)`).
    pub fn start(htpasswd: &[(&str, &str)]) -> Option<Registry> {
        Registry::start_with(htpasswd, None, None, None)
    }

    /// A registry on the loopback of network namespace `netns`
    /// (`/run/netns/NAME`), for a berth that runs there.
    pub fn start_in(netns: &str) -> Option<Registry> {
        Registry::start_with(&[], None, None, Some(netns))
    }

    /// A registry that takes Bearer tokens from `issuer` (its `auth:
    /// token` mode).
    pub fn start_token(issuer: &TokenIssuer) -> Option<Registry> {
        Registry::start_with(&[], Some(issuer), None, None)
    }

    /// A registry serving HTTPS with this certificate and key.
    pub fn start_tls(cert: &Path, key: &Path) -> Option<Registry> {
        Registry::start_with(&[], None, Some((cert, key)), None)
    }

    fn start_with(
        htpasswd: &[(&str, &str)],
        issuer: Option<&TokenIssuer>,
        tls: Option<(&Path, &Path)>,
        netns: Option<&str>,
    ) -> Option<Registry> {
        if !Path::new(REGISTRY_BIN).exists() {
            eprintln!("skipping: {REGISTRY_BIN} is missing (apt-get install docker-registry)");
            return None;
        }
        // The port is free when picked, but another test may take it before the
        // registry binds it: then the registry exits ("address already in use")
        // and a new port is tried.
        for _attempt in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = format!("127.0.0.1:{port}");
            let storage = dir.path().join("storage");
            let mut config = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                storage.display()
            );
            if let Some((cert, key)) = tls {
                config.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    cert.display(),
                    key.display()
                ));
            }
            if !htpasswd.is_empty() {
                let path = dir.path().join("htpasswd");
                let lines: String = htpasswd
                    .iter()
                    .map(|(u, p)| format!("{u}:{}\n", bcrypt::hash(p, 5).unwrap()))
                    .collect();
                std::fs::write(&path, lines).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    path.display()
                ));
            }
            if let Some(t) = issuer {
                config.push_str(&format!(
                "auth:\n  token:\n    realm: http://{}/token\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                t.addr,
                TokenIssuer::SERVICE,
                TokenIssuer::ISSUER,
                t.cert.display()
            ));
            }
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut cmd = match netns {
                Some(ns) => {
                    let mut c = Command::new("nsenter");
                    c.arg(format!("--net={ns}")).arg(REGISTRY_BIN);
                    c
                }
                None => Command::new(REGISTRY_BIN),
            };
            let child = cmd
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let mut reg = Registry {
                child,
                addr,
                _dir: dir,
                netns: netns.map(str::to_string),
            };
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Ok(Some(status)) = reg.child.try_wait() {
                    let log = reg.log();
                    if log.contains("address already in use") {
                        break;
                    }
                    panic!("the registry exited with {status}: {log}");
                }
                // Listening, and it is this registry that answers (not another
                // test's listener on the same port).
                let listening = reg.netns.is_some() || TcpStream::connect(&reg.addr).is_ok();
                if listening && (tls.is_some() || reg.answers()) {
                    return Some(reg);
                }
                assert!(
                    Instant::now() < deadline,
                    "the registry did not start: {}",
                    reg.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("no free port for the registry after 5 attempts");
    }

    /// GET /v2/ is answered with the registry's API version header.
    fn answers(&self) -> bool {
        if let Some(ns) = &self.netns {
            // Another namespace's loopback: curl there.
            return Command::new("nsenter")
                .arg(format!("--net={ns}"))
                .args([
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "-D",
                    "-",
                    "--max-time",
                    "2",
                ])
                .arg(format!("http://{}/v2/", self.addr))
                .output()
                .is_ok_and(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .to_ascii_lowercase()
                        .contains("docker-distribution-api-version")
                });
        }
        let Ok(mut c) = TcpStream::connect(&self.addr) else {
            return false;
        };
        let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
        let req = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
        if c.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut head = String::new();
        let _ = c.read_to_string(&mut head);
        head.to_ascii_lowercase()
            .contains("docker-distribution-api-version")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// A token server for the registry's `auth: token` mode: an RSA key and a
/// self-signed certificate made with openssl; tokens are JWTs (RS256, the
/// certificate in `x5c`) granting what was asked to the user whose Basic
/// credentials match, and nothing to anyone else.
pub struct TokenIssuer {
    pub addr: String,
    pub cert: PathBuf,
    /// Every scope asked for, in order.
    pub scopes: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl TokenIssuer {
    pub const SERVICE: &str = "berth-test-registry";
    pub const ISSUER: &str = "berth-test-issuer";

    pub fn start(user: &str, password: &str) -> Option<TokenIssuer> {
        if Command::new("openssl").arg("version").output().is_err() {
            eprintln!("skipping: openssl is missing (apt-get install openssl)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        let st = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=berth-test-token"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "openssl req");
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .unwrap()
            .stdout;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let scopes = Arc::new(Mutex::new(Vec::new()));
        let seen = scopes.clone();
        let key2 = key.clone();
        let addr = serve_http(Arc::new(move |req: &HttpRequest| {
            if !req.path.starts_with("/token") {
                return (404, vec![], b"no".to_vec());
            }
            if req.header("authorization") != Some(expected.as_str()) {
                return (401, vec![], b"{\"details\":\"bad credentials\"}".to_vec());
            }
            let query = req.path.split_once('?').map_or("", |(_, q)| q);
            let mut access = Vec::new();
            for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
                if k == "scope" {
                    seen.lock().unwrap().push(v.to_string());
                    let parts: Vec<&str> = v.split(':').collect();
                    if let [typ, name, actions] = parts.as_slice() {
                        access.push(serde_json::json!({
                            "type": typ, "name": name,
                            "actions": actions.split(',').collect::<Vec<_>>(),
                        }));
                    }
                }
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
            let claims = serde_json::json!({
                "iss": TokenIssuer::ISSUER, "sub": "tester", "aud": TokenIssuer::SERVICE,
                "exp": now + 300, "nbf": now - 10, "iat": now - 10,
                "jti": format!("{now}-{}", access.len()), "access": access,
            });
            let signing_input = format!(
                "{}.{}",
                b64url(header.to_string().as_bytes()),
                b64url(claims.to_string().as_bytes())
            );
            let mut child = Command::new("openssl")
                .args(["dgst", "-sha256", "-sign"])
                .arg(&key2)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(signing_input.as_bytes())
                .unwrap();
            let sig = child.wait_with_output().unwrap().stdout;
            let token = format!("{signing_input}.{}", b64url(&sig));
            let body = serde_json::json!({"token": token, "expires_in": 300});
            (
                200,
                vec![("Content-Type".into(), "application/json".into())],
                body.to_string().into_bytes(),
            )
        }));
        Some(TokenIssuer {
            addr,
            cert,
            scopes,
            _dir: dir,
        })
    }
}

// ---- a small HTTP server for the token issuer and the fault proxy ----

pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Reply = (u16, Vec<(String, String)>, Vec<u8>);
pub type HttpHandler = Arc<dyn Fn(&HttpRequest) -> Reply + Send + Sync>;

fn read_request(reader: &mut impl BufRead) -> Option<HttpRequest> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
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
    reader.read_exact(&mut body).ok()?;
    Some(HttpRequest {
        method,
        path,
        headers,
        body,
    })
}

/// Serves `handler` on a free port of 127.0.0.1, one request per
/// connection; returns `127.0.0.1:PORT`.
pub fn serve_http(handler: HttpHandler) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let handler = handler.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let Some(req) = read_request(&mut reader) else {
                    return;
                };
                let (status, headers, body) = handler(&req);
                let mut out = format!(
                    "HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {}\r\n",
                    body.len()
                );
                for (n, v) in &headers {
                    out.push_str(&format!("{n}: {v}\r\n"));
                }
                out.push_str("\r\n");
                let mut conn = conn;
                let _ = conn.write_all(out.as_bytes());
                if req.method != "HEAD" {
                    let _ = conn.write_all(&body);
                }
            });
        }
    });
    addr
}

/// What the fault proxy does to a blob download.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Pass everything through.
    None,
    /// Send the headers and this many body bytes, then drop the
    /// connection (the first `times` downloads of the blob).
    DropAfter { bytes: usize, times: usize },
    /// Answer 503 to the first `times` requests of any kind.
    Unavailable { times: usize },
    /// Flip one byte in the middle of the blob's body (every time).
    Corrupt,
    /// Send this many body bytes, then stall for `secs` before closing
    /// (the first `times` downloads).
    Stall {
        bytes: usize,
        secs: u64,
        times: usize,
    },
}

/// A request the proxy saw: method, path, Range header.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
}

/// An HTTP proxy in front of a registry that injects faults into the
/// downloads of blobs whose path contains `target` (a digest hex).
pub struct FaultProxy {
    pub addr: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl FaultProxy {
    pub fn start(upstream: &str, target: &str, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(Mutex::new((fault, 0usize)));
        let upstream = upstream.to_string();
        let target = target.to_string();
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (upstream, target, seen, state) = (
                    upstream.clone(),
                    target.clone(),
                    seen2.clone(),
                    state.clone(),
                );
                std::thread::spawn(move || {
                    proxy_one(conn, &upstream, &target, &seen, &state);
                });
            }
        });
        FaultProxy { addr, seen }
    }
}

fn proxy_one(
    conn: TcpStream,
    upstream: &str,
    target: &str,
    seen: &Mutex<Vec<Seen>>,
    state: &Mutex<(Fault, usize)>,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let Some(req) = read_request(&mut reader) else {
        return;
    };
    seen.lock().unwrap().push(Seen {
        method: req.method.clone(),
        path: req.path.clone(),
        range: req.header("range").map(str::to_string),
    });
    let mut conn = conn;
    let is_target =
        req.method == "GET" && req.path.contains("/blobs/") && req.path.contains(target);
    let fault = {
        let mut st = state.lock().unwrap();
        let (fault, count) = &mut *st;
        match fault.clone() {
            Fault::Unavailable { times } if *count < times => {
                *count += 1;
                Some(Fault::Unavailable { times })
            }
            f @ (Fault::DropAfter { times, .. } | Fault::Stall { times, .. })
                if is_target && *count < times =>
            {
                *count += 1;
                Some(f)
            }
            Fault::Corrupt if is_target => Some(Fault::Corrupt),
            _ => None,
        }
    };
    if let Some(Fault::Unavailable { .. }) = fault {
        let _ = conn.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        );
        return;
    }
    // Forward, one request per connection.
    let mut up = TcpStream::connect(upstream).unwrap();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {upstream}\r\nConnection: close\r\n",
        req.method, req.path
    );
    for (n, v) in &req.headers {
        if !n.eq_ignore_ascii_case("host") && !n.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    up.write_all(head.as_bytes()).unwrap();
    up.write_all(&req.body).unwrap();
    let mut resp = Vec::new();
    let _ = up.read_to_end(&mut resp);
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(resp.len(), |p| p + 4);
    let (headers, body) = resp.split_at(split);
    match fault {
        Some(Fault::DropAfter { bytes, .. }) => {
            let _ = conn.write_all(headers);
            let _ = conn.write_all(&body[..bytes.min(body.len())]);
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
        Some(Fault::Stall { bytes, secs, .. }) => {
            let _ = conn.write_all(headers);
            let _ = conn.write_all(&body[..bytes.min(body.len())]);
            std::thread::sleep(Duration::from_secs(secs));
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
        Some(Fault::Corrupt) if !body.is_empty() => {
            let mut body = body.to_vec();
            let mid = body.len() / 2;
            body[mid] ^= 0xff;
            let _ = conn.write_all(headers);
            let _ = conn.write_all(&body);
        }
        _ => {
            let _ = conn.write_all(&resp);
        }
    }
}

/// A CA and a server certificate it signed for `host` (PEM files in a
/// temp dir): `(dir, ca.crt, server.crt, server.key)`.
pub fn tls_material(host: &str) -> Option<(tempfile::TempDir, PathBuf, PathBuf, PathBuf)> {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipping: openssl is missing (apt-get install openssl)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let run = |args: &[&str]| {
        let st = Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=berth-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        &format!("/CN={host}"),
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        p("ext.cnf"),
        format!(
            "subjectAltName=DNS:{host}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.crt",
    ]);
    let (ca, crt, key) = (p("ca.crt"), p("server.crt"), p("server.key"));
    Some((dir, ca, crt, key))
}

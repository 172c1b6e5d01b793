//! The registry client.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use berth_image::manifest::media_types as media;
use berth_image::{BlobInfo, ContentStore, Descriptor, Digest};
use bytes::Bytes;
use futures_util::{AsyncReadExt as _, TryStreamExt as _};
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use url::Url;

use crate::challenge::{self, Challenge};
use crate::error::{Error, Result};

/// What `get_manifest` accepts, most preferred first.
pub const MANIFEST_ACCEPT: &[&str] = &[
    media::OCI_INDEX,
    media::OCI_MANIFEST,
    media::DOCKER_MANIFEST_LIST,
    media::DOCKER_MANIFEST,
];

/// Largest manifest read into memory (the distribution spec suggests 4 MiB).
const MANIFEST_LIMIT: usize = 4 << 20;
/// Largest error body kept in an error message.
const ERROR_BODY_LIMIT: usize = 512;

/// A user name and password (or identity token) for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// How a [`Client`] connects.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Credentials for Basic auth and for fetching Bearer tokens;
    /// anonymous without.
    pub credentials: Option<Credentials>,
    /// Registries (`host` or `host:port`) reached over plain HTTP besides
    /// localhost and 127.0.0.0/8.
    pub insecure: Vec<String>,
    /// The User-Agent; `berth/<version>` by default.
    pub user_agent: Option<String>,
    /// CA certificates (PEM) trusted besides the system's, as docker's
    /// `/etc/docker/certs.d/HOST:PORT/*.crt`.
    pub ca_certs: Vec<Vec<u8>>,
    /// A client certificate and its key (PEM, concatenated) for mutual TLS
    /// (certs.d's `*.cert` + `*.key`).
    pub identity: Option<Vec<u8>>,
    /// How long connecting may take (30 s by default).
    pub connect_timeout: Option<Duration>,
    /// The longest wait for the next bytes of an answer (60 s by default).
    pub idle_timeout: Option<Duration>,
    /// Retries of a transient failure (connection refused or dropped,
    /// timeout, 429, 5xx): 4 by default, with backoff from `backoff`
    /// (250 ms by default), doubled each time.
    pub retries: Option<u32>,
    pub backoff: Option<Duration>,
    /// Host names resolved to these addresses instead of by DNS (as curl's
    /// `--resolve`).
    pub resolve: Vec<(String, std::net::SocketAddr)>,
    /// Blobs larger than this are uploaded in PATCH chunks of this size
    /// (16 MiB by default); smaller ones in one PUT.
    pub upload_chunk_size: Option<u64>,
}

/// Resumes of one blob download after which a failure is final even if
/// each attempt made progress.
const MAX_RESUMES: u32 = 64;

/// A manifest as fetched: its bytes, media type and verified digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

impl FetchedManifest {
    /// A descriptor of this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            platform: None,
            urls: Vec::new(),
            annotations: Default::default(),
        }
    }
}

/// The body of a request, rebuilt for each attempt (a 401 retry sends it
/// again).
enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of the file from `offset`.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

/// A client of one registry.
pub struct Client {
    http: reqwest::Client,
    registry: String,
    base: Url,
    credentials: Option<Credentials>,
    auth: Mutex<AuthState>,
    idle_timeout: Duration,
    retries: u32,
    backoff: Duration,
    chunk_size: u64,
}

#[derive(Default)]
struct AuthState {
    /// The registry asked for Basic auth.
    basic: bool,
    /// Bearer tokens by scope.
    tokens: HashMap<String, String>,
}

/// Whether `registry` (`host`, `host:port`, `[v6]:port`) is reached over
/// plain HTTP: localhost, 127.0.0.0/8, ::1, or listed in `insecure`.
pub(crate) fn is_plain_http(registry: &str, insecure: &[String]) -> bool {
    let registry = registry.to_ascii_lowercase();
    if insecure.iter().any(|i| i.to_ascii_lowercase() == registry) {
        return true;
    }
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.rsplit_once(':').map_or(&*registry, |(h, _)| h)
    };
    if insecure.iter().any(|i| i.to_ascii_lowercase() == host) {
        return true;
    }
    if host == "localhost" {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.octets()[0] == 127,
        Ok(IpAddr::V6(v6)) => v6.is_loopback(),
        Err(_) => false,
    }
}

fn bad_name(name: &str, reason: &str) -> Error {
    Error::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    }
}

/// A repository name as the distribution spec has them: `/`-separated
/// components of `[a-z0-9]` runs joined by `.`, `_` or `-`.
pub(crate) fn check_repo(repo: &str) -> Result<()> {
    if repo.is_empty() || repo.len() > 255 {
        return Err(bad_name(repo, "a repository name has 1 to 255 characters"));
    }
    for component in repo.split('/') {
        let bytes = component.as_bytes();
        let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
            return Err(bad_name(
                repo,
                "each component starts and ends with [a-z0-9]",
            ));
        }
        if !bytes.iter().all(|c| alnum(c) || b"._-".contains(c)) {
            return Err(bad_name(repo, "only [a-z0-9._-] and '/' are allowed"));
        }
    }
    Ok(())
}

/// A tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`) or a digest.
pub(crate) fn check_reference(reference: &str) -> Result<()> {
    if reference.contains(':') {
        return reference
            .parse::<Digest>()
            .map(drop)
            .map_err(|e| bad_name(reference, &e.to_string()));
    }
    let ok = reference.len() <= 128
        && reference
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        && reference
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(bad_name(reference, "not a tag or a digest"))
    }
}

fn scope_for(repo: &str, push: bool) -> String {
    if push {
        format!("repository:{repo}:pull,push")
    } else {
        format!("repository:{repo}:pull")
    }
}

fn http_err(method: &Method, url: &Url, err: reqwest::Error) -> Error {
    Error::Http {
        method: method.to_string(),
        url: url.to_string(),
        err,
    }
}

/// At most about `limit` bytes of an answer's body, as text (the rest is
/// not read: a hostile registry cannot make us buffer an endless error).
async fn body_prefix(mut resp: Response, limit: usize) -> String {
    let mut out = Vec::new();
    while out.len() <= limit {
        match resp.chunk().await {
            Ok(Some(c)) => out.extend_from_slice(&c),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn status_err(method: &Method, url: &Url, resp: Response) -> Error {
    let status = resp.status().as_u16();
    let mut body = body_prefix(resp, ERROR_BODY_LIMIT).await;
    if body.len() > ERROR_BODY_LIMIT {
        let mut cut = ERROR_BODY_LIMIT;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
        body.push('…');
    }
    Error::Status {
        method: method.to_string(),
        url: url.to_string(),
        status,
        body: body.trim().to_string(),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Reads a response body to its end, refusing more than `limit` bytes.
async fn read_limited(
    method: &Method,
    url: &Url,
    mut resp: Response,
    limit: usize,
) -> Result<Vec<u8>> {
    if let Some(len) = resp.content_length()
        && len > limit as u64
    {
        return Err(Error::Protocol {
            url: url.to_string(),
            reason: format!("body of {len} bytes is over the {limit}-byte limit"),
        });
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| http_err(method, url, e))? {
        if out.len() + chunk.len() > limit {
            return Err(Error::Protocol {
                url: url.to_string(),
                reason: format!("body is over the {limit}-byte limit"),
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A blocking `Read` over an async byte stream, for the content store's
/// streaming write on a blocking thread: each read waits for the next
/// bytes of the body, so only one network chunk is held at a time.
struct BlockingBody<R> {
    inner: R,
    handle: tokio::runtime::Handle,
}

impl<R: futures_util::AsyncRead + Unpin> Read for BlockingBody<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let inner = &mut self.inner;
        self.handle.block_on(inner.read(buf))
    }
}

impl Client {
    /// A client of `registry` (`host`, `host:port`; docker's `docker.io`
    /// is not rewritten here).
    pub fn new(registry: &str, options: ClientOptions) -> Result<Client> {
        let scheme = if is_plain_http(registry, &options.insecure) {
            "http"
        } else {
            "https"
        };
        let raw = format!("{scheme}://{registry}/");
        let base = Url::parse(&raw).map_err(|e| Error::InvalidUrl {
            url: raw.clone(),
            reason: e.to_string(),
        })?;
        if base.path() != "/" || base.query().is_some() || !base.username().is_empty() {
            return Err(Error::InvalidUrl {
                url: raw,
                reason: "a registry is host[:port]".into(),
            });
        }
        let idle_timeout = options.idle_timeout.unwrap_or(Duration::from_secs(60));
        let mut builder = reqwest::Client::builder()
            .user_agent(
                options
                    .user_agent
                    .clone()
                    .unwrap_or_else(|| format!("berth/{}", env!("CARGO_PKG_VERSION"))),
            )
            .connect_timeout(options.connect_timeout.unwrap_or(Duration::from_secs(30)))
            .read_timeout(idle_timeout);
        for (host, addr) in &options.resolve {
            builder = builder.resolve(host, *addr);
        }
        for pem in &options.ca_certs {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| Error::Tls {
                registry: registry.to_string(),
                reason: format!("a CA certificate does not parse: {e}"),
            })?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        if let Some(pem) = &options.identity {
            let id = reqwest::Identity::from_pem(pem).map_err(|e| Error::Tls {
                registry: registry.to_string(),
                reason: format!("the client certificate or key does not parse: {e}"),
            })?;
            builder = builder.identity(id);
        }
        let http = builder
            .build()
            .map_err(|e| http_err(&Method::GET, &base, e))?;
        Ok(Client {
            http,
            registry: registry.to_string(),
            base,
            credentials: options.credentials,
            auth: Mutex::new(AuthState::default()),
            idle_timeout,
            retries: options.retries.unwrap_or(4),
            backoff: options.backoff.unwrap_or(Duration::from_millis(250)),
            chunk_size: options.upload_chunk_size.unwrap_or(16 << 20).max(1),
        })
    }

    /// The registry's base URL (`http://127.0.0.1:5000/`, `https://…/`).
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.base.join(path).map_err(|e| Error::InvalidUrl {
            url: format!("{}{path}", self.base),
            reason: e.to_string(),
        })
    }

    /// `v2/REPO/REST`, with `repo` checked to be a repository name (so
    /// that it cannot step out of its path).
    fn repo_url(&self, repo: &str, rest: &str) -> Result<Url> {
        check_repo(repo)?;
        self.url(&format!("v2/{repo}/{rest}"))
    }

    fn manifest_url(&self, repo: &str, reference: &str) -> Result<Url> {
        check_reference(reference)?;
        self.repo_url(repo, &format!("manifests/{reference}"))
    }

    fn auth_header(&self, scope: Option<&str>) -> Option<String> {
        let state = self.auth.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = state.tokens.get(scope.unwrap_or("")) {
            return Some(format!("Bearer {token}"));
        }
        if state.basic {
            return self.credentials.as_ref().map(Credentials::basic_header);
        }
        None
    }

    /// The registry this client talks to (`host[:port]`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The wait before retry `attempt` (1-based): the backoff doubled each
    /// time, at most 8 s.
    fn backoff_for(&self, attempt: u32) -> Duration {
        (self.backoff * 2u32.saturating_pow(attempt.saturating_sub(1).min(5)))
            .min(Duration::from_secs(8))
    }

    /// Sends a request; an idempotent one (GET, HEAD, PUT, DELETE) is sent
    /// again after a transient failure, up to the retry limit.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        scope: Option<&str>,
        headers: &[(header::HeaderName, String)],
        body: Body<'_>,
    ) -> Result<Response> {
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE
        );
        let mut attempt = 0;
        loop {
            let r = self
                .send_once(method.clone(), url, scope, headers, &body)
                .await;
            let transient = match &r {
                Ok(resp) => is_transient_status(resp.status()),
                Err(e) => e.is_transient(),
            };
            if !idempotent || !transient || attempt >= self.retries {
                return r;
            }
            attempt += 1;
            tokio::time::sleep(self.backoff_for(attempt)).await;
        }
    }

    /// Sends a request, answering one 401 with the auth its challenge asks
    /// for and sending the request again.
    async fn send_once(
        &self,
        method: Method,
        url: &Url,
        scope: Option<&str>,
        headers: &[(header::HeaderName, String)],
        body: &Body<'_>,
    ) -> Result<Response> {
        let mut retried = false;
        loop {
            let mut req = self.http.request(method.clone(), url.clone());
            for (name, value) in headers {
                req = req.header(name, value);
            }
            // Credentials go to the registry itself only, never to another
            // host or scheme an upload Location points at.
            if url.origin() == self.base.origin()
                && let Some(auth) = self.auth_header(scope)
            {
                req = req.header(header::AUTHORIZATION, auth);
            }
            req = match body {
                Body::Empty => req,
                Body::Bytes(b) => req.body(b.to_vec()),
                Body::File { path, offset, len } => {
                    use tokio::io::AsyncSeekExt as _;
                    let io_err = |err| Error::Io {
                        what: format!("reading {}", path.display()),
                        err,
                    };
                    let mut file = tokio::fs::File::open(path).await.map_err(io_err)?;
                    file.seek(io::SeekFrom::Start(*offset))
                        .await
                        .map_err(io_err)?;
                    req.header(header::CONTENT_LENGTH, len.to_string())
                        .body(reqwest::Body::wrap_stream(file_stream(file, *len)))
                }
            };
            let resp = req.send().await.map_err(|e| http_err(&method, url, e))?;
            if resp.status() != StatusCode::UNAUTHORIZED || retried {
                if resp.status() == StatusCode::UNAUTHORIZED {
                    let detail = body_prefix(resp, ERROR_BODY_LIMIT).await;
                    return Err(Error::Unauthorized {
                        registry: self.registry.clone(),
                        detail: format!(
                            "{method} {url} still refused after authenticating: {}",
                            detail
                                .trim()
                                .chars()
                                .take(ERROR_BODY_LIMIT)
                                .collect::<String>()
                        ),
                    });
                }
                return Ok(resp);
            }
            retried = true;
            self.authenticate(resp.headers(), scope).await?;
        }
    }

    /// Answers a 401's challenges: Basic (when there are credentials) or a
    /// Bearer token for `scope` (replacing a cached one the registry no
    /// longer takes).
    async fn authenticate(&self, headers: &HeaderMap, scope: Option<&str>) -> Result<()> {
        let unauthorized = |detail: String| Error::Unauthorized {
            registry: self.registry.clone(),
            detail,
        };
        let values: Vec<&str> = headers
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return Err(unauthorized(
                "401 without a WWW-Authenticate challenge".into(),
            ));
        }
        let mut challenges = Vec::new();
        for v in &values {
            challenges.extend(challenge::parse(v).ok_or_else(|| Error::InvalidChallenge {
                registry: self.registry.clone(),
                detail: format!("{v:?}"),
            })?);
        }
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            // Tokens are cached under the scope the request needs (none for
            // the ping), whatever scope the challenge names.
            let token = self
                .fetch_token(bearer, scope.or_else(|| bearer.param("scope")))
                .await?;
            let mut state = self.auth.lock().unwrap_or_else(|e| e.into_inner());
            state.tokens.insert(scope.unwrap_or("").to_string(), token);
            return Ok(());
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            if self.credentials.is_none() {
                return Err(unauthorized(
                    "the registry asks for Basic auth and there are no credentials".into(),
                ));
            }
            self.auth.lock().unwrap_or_else(|e| e.into_inner()).basic = true;
            return Ok(());
        }
        Err(unauthorized(format!(
            "no supported auth scheme in {}",
            values.join(", ")
        )))
    }

    /// Fetches a Bearer token from the challenge's realm (with the
    /// credentials as Basic auth when there are some).
    async fn fetch_token(&self, bearer: &Challenge, scope: Option<&str>) -> Result<String> {
        let bad = |detail: String| Error::InvalidChallenge {
            registry: self.registry.clone(),
            detail,
        };
        let realm = bearer
            .param("realm")
            .ok_or_else(|| bad("Bearer challenge without a realm".into()))?;
        let mut url = Url::parse(realm).map_err(|e| bad(format!("realm {realm:?}: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(bad(format!("realm {realm:?} is not an http(s) URL")));
        }
        if url.scheme() == "http"
            && !is_plain_http(
                &url[url::Position::BeforeHost..url::Position::AfterPort],
                &[],
            )
            && self.base.scheme() != "http"
        {
            return Err(bad(format!(
                "realm {realm:?} is plain HTTP for a registry reached over HTTPS"
            )));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = bearer.param("service") {
                q.append_pair("service", service);
            }
            // Several scopes (a mount's target and source) are separate
            // `scope` parameters.
            for s in scope.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
                q.append_pair("scope", s);
            }
        }
        let mut req = self.http.get(url.clone());
        if let Some(c) = &self.credentials {
            req = req.header(header::AUTHORIZATION, c.basic_header());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| http_err(&Method::GET, &url, e))?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            return Err(Error::Unauthorized {
                registry: self.registry.clone(),
                detail: format!("the token server {realm} refused: {}", resp.status()),
            });
        }
        if !resp.status().is_success() {
            return Err(status_err(&Method::GET, &url, resp).await);
        }
        let body = read_limited(&Method::GET, &url, resp, 1 << 20).await?;
        #[derive(Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("token answer from {realm}: {e}")))?;
        answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad(format!("token answer from {realm} has no token")))
    }

    /// `GET /v2/`: checks that this is a distribution-spec registry and
    /// that the credentials (if any) are taken.
    pub async fn ping(&self) -> Result<()> {
        let url = self.url("v2/")?;
        let resp = self.send(Method::GET, &url, None, &[], Body::Empty).await?;
        if !resp.status().is_success() {
            return Err(status_err(&Method::GET, &url, resp).await);
        }
        Ok(())
    }

    /// Fetches the manifest (or index) `reference` (a tag or a digest) of
    /// `repo`. The digest is checked: against `reference` when it is a
    /// digest, against the `Docker-Content-Digest` header when the registry
    /// sends one; otherwise it is the sha256 of the bytes.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<FetchedManifest> {
        let url = self.manifest_url(repo, reference)?;
        let scope = scope_for(repo, false);
        let accept = (header::ACCEPT, MANIFEST_ACCEPT.join(", "));
        let resp = self
            .send(Method::GET, &url, Some(&scope), &[accept], Body::Empty)
            .await?;
        if !resp.status().is_success() {
            return Err(status_err(&Method::GET, &url, resp).await);
        }
        let announced = header_str(
            resp.headers(),
            &header::HeaderName::from_static("docker-content-digest"),
        )
        .map(str::to_string);
        let content_type = header_str(resp.headers(), &header::CONTENT_TYPE)
            .map(|v| v.split(';').next().unwrap_or("").trim().to_string());
        let bytes = read_limited(&Method::GET, &url, resp, MANIFEST_LIMIT).await?;
        let requested = reference
            .parse::<Digest>()
            .ok()
            .filter(|_| reference.contains(':'));
        let digest =
            verify_manifest_digest(&bytes, requested.as_ref(), announced.as_deref(), &url)?;
        let media_type = manifest_media_type(&bytes, content_type.as_deref());
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// The tags of `repo` (`GET /v2/REPO/tags/list`), following the
    /// `Link: <…>; rel="next"` pages, sorted.
    pub async fn list_tags(&self, repo: &str) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Tags {
            tags: Option<Vec<String>>,
        }
        let scope = scope_for(repo, false);
        let mut url = self.repo_url(repo, "tags/list")?;
        let mut out = Vec::new();
        for _ in 0..1000 {
            let resp = self
                .send(Method::GET, &url, Some(&scope), &[], Body::Empty)
                .await?;
            if !resp.status().is_success() {
                return Err(status_err(&Method::GET, &url, resp).await);
            }
            let next = header_str(resp.headers(), &header::LINK)
                .and_then(next_link)
                .map(|n| url.join(n))
                .transpose()
                .map_err(|e| Error::Protocol {
                    url: url.to_string(),
                    reason: format!("bad Link header: {e}"),
                })?;
            let body = read_limited(&Method::GET, &url, resp, MANIFEST_LIMIT).await?;
            let t: Tags = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
                url: url.to_string(),
                reason: format!("not a tag list: {e}"),
            })?;
            for tag in t.tags.unwrap_or_default() {
                check_reference(&tag)?;
                out.push(tag);
            }
            match next {
                // Pages stay on this registry.
                Some(n) if n.origin() == url.origin() => url = n,
                Some(n) => {
                    return Err(Error::Protocol {
                        url: url.to_string(),
                        reason: format!("next page {n} is on another host"),
                    });
                }
                None => break,
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Whether `repo` has the blob `digest` (`HEAD`).
    pub async fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<bool> {
        self.exists(repo, &format!("blobs/{digest}"), false).await
    }

    async fn exists(&self, repo: &str, path: &str, push: bool) -> Result<bool> {
        let url = self.repo_url(repo, path)?;
        let scope = scope_for(repo, push);
        let resp = self
            .send(Method::HEAD, &url, Some(&scope), &[], Body::Empty)
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_err(&Method::HEAD, &url, resp).await),
        }
    }

    /// Downloads the blob `desc` of `repo` into `store`, streaming: the
    /// body goes through the store's digest- and size-checking write, so a
    /// blob that is not what `desc` says never lands in the store. A blob
    /// the store already has is not downloaded.
    pub async fn fetch_blob(
        &self,
        repo: &str,
        desc: &Descriptor,
        store: &ContentStore,
    ) -> Result<BlobInfo> {
        if store.has_blob(&desc.digest) {
            return Ok(store.write_blob_sized(io::empty(), Some(&desc.digest), Some(desc.size))?);
        }
        let url = self.repo_url(repo, &format!("blobs/{}", desc.digest))?;
        let scope = scope_for(repo, false);
        let resp = self
            .send(Method::GET, &url, Some(&scope), &[], Body::Empty)
            .await?;
        if !resp.status().is_success() {
            return Err(status_err(&Method::GET, &url, resp).await);
        }
        if let Some(len) = resp.content_length()
            && len != desc.size
        {
            return Err(Error::Image(berth_image::Error::SizeMismatch {
                digest: desc.digest.to_string(),
                expected: desc.size,
                actual: len,
            }));
        }
        let reader = BlockingBody {
            inner: resp
                .bytes_stream()
                .map_err(io::Error::other)
                .into_async_read(),
            handle: tokio::runtime::Handle::current(),
        };
        let store = store.clone();
        let desc = desc.clone();
        let info = tokio::task::spawn_blocking(move || {
            store.write_blob_sized(reader, Some(&desc.digest), Some(desc.size))
        })
        .await
        .map_err(|e| Error::Io {
            what: "blob download task".into(),
            err: io::Error::other(e),
        })??;
        Ok(info)
    }

    /// Uploads the blob `desc` from `store` to `repo` unless the registry
    /// already has it (`HEAD`). `POST` opens an upload; a blob up to the
    /// chunk size then goes in one `PUT …?digest=` (monolithic), a larger
    /// one in `PATCH` chunks with `Content-Range` and a closing `PUT`.
    /// A transient failure starts the upload again. Returns whether it
    /// uploaded.
    pub async fn push_blob(
        &self,
        repo: &str,
        desc: &Descriptor,
        store: &ContentStore,
    ) -> Result<bool> {
        let path = format!("blobs/{}", desc.digest);
        if self.exists(repo, &path, true).await? {
            return Ok(false);
        }
        let size = store.blob_size(&desc.digest)?;
        if size != desc.size {
            return Err(Error::Image(berth_image::Error::SizeMismatch {
                digest: desc.digest.to_string(),
                expected: desc.size,
                actual: size,
            }));
        }
        let mut attempt = 0;
        loop {
            match self.upload(repo, desc, store).await {
                Err(e) if e.is_transient() && attempt < self.retries => {
                    attempt += 1;
                    tokio::time::sleep(self.backoff_for(attempt)).await;
                }
                r => return r.map(|()| true),
            }
        }
    }

    async fn upload(&self, repo: &str, desc: &Descriptor, store: &ContentStore) -> Result<()> {
        let scope = scope_for(repo, true);
        let start = self.repo_url(repo, "blobs/uploads/")?;
        let resp = self
            .send(Method::POST, &start, Some(&scope), &[], Body::Empty)
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_err(&Method::POST, &start, resp).await);
        }
        let mut location = self.location(&start, resp.headers())?;
        let path = store.blob_path(&desc.digest);
        let octets = (header::CONTENT_TYPE, "application/octet-stream".to_string());
        let mut offset = 0;
        if desc.size > self.chunk_size {
            while offset < desc.size {
                let len = self.chunk_size.min(desc.size - offset);
                let range = (
                    header::CONTENT_RANGE,
                    format!("{offset}-{}", offset + len - 1),
                );
                let resp = self
                    .send_once(
                        Method::PATCH,
                        &location,
                        Some(&scope),
                        &[octets.clone(), range],
                        &Body::File {
                            path: path.clone(),
                            offset,
                            len,
                        },
                    )
                    .await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(status_err(&Method::PATCH, &location, resp).await);
                }
                location = self.location(&location, resp.headers())?;
                offset += len;
            }
        }
        location
            .query_pairs_mut()
            .append_pair("digest", &desc.digest.to_string());
        let body = if offset < desc.size {
            Body::File {
                path,
                offset: 0,
                len: desc.size,
            }
        } else {
            Body::Empty
        };
        let resp = self
            .send_once(Method::PUT, &location, Some(&scope), &[octets], &body)
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_err(&Method::PUT, &location, resp).await);
        }
        Ok(())
    }

    /// Streams the blob `desc` of `repo` into `tx`, chunk by chunk as it
    /// arrives, calling `progress` with the bytes received so far. A
    /// connection that drops (or stalls past the idle timeout, or ends
    /// short) is resumed where it stopped with a `Range` request (or, when
    /// the registry ignores ranges, from the start with the bytes already
    /// sent skipped), with backoff, as long as attempts make progress.
    /// More bytes than `desc.size` is an error. Returns false when the
    /// receiver went away (its side failed and says why).
    pub async fn stream_blob(
        &self,
        repo: &str,
        desc: &Descriptor,
        tx: &tokio::sync::mpsc::Sender<io::Result<Bytes>>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<bool> {
        let url = self.repo_url(repo, &format!("blobs/{}", desc.digest))?;
        let scope = scope_for(repo, false);
        let mut offset = 0u64;
        let mut failures = 0u32;
        let mut resumes = 0u32;
        loop {
            let mut headers = Vec::new();
            if offset > 0 {
                headers.push((header::RANGE, format!("bytes={offset}-")));
            }
            let mut resp = self
                .send(Method::GET, &url, Some(&scope), &headers, Body::Empty)
                .await?;
            let mut skip = 0u64;
            match resp.status() {
                StatusCode::OK => {
                    skip = offset;
                    if let Some(len) = resp.content_length()
                        && len != desc.size
                    {
                        return Err(Error::Image(berth_image::Error::SizeMismatch {
                            digest: desc.digest.to_string(),
                            expected: desc.size,
                            actual: len,
                        }));
                    }
                }
                StatusCode::PARTIAL_CONTENT if offset > 0 => {
                    let range = header_str(resp.headers(), &header::CONTENT_RANGE).unwrap_or("");
                    if !range.starts_with(&format!("bytes {offset}-")) {
                        return Err(Error::Protocol {
                            url: url.to_string(),
                            reason: format!(
                                "asked for bytes {offset}- and got Content-Range {range:?}"
                            ),
                        });
                    }
                }
                _ => return Err(status_err(&Method::GET, &url, resp).await),
            }
            let failure = loop {
                let chunk = match tokio::time::timeout(self.idle_timeout, resp.chunk()).await {
                    Err(_) => {
                        break Error::Protocol {
                            url: url.to_string(),
                            reason: format!(
                                "no data for {:?} after {offset} of {} bytes",
                                self.idle_timeout, desc.size
                            ),
                        };
                    }
                    Ok(Err(e)) => break http_err(&Method::GET, &url, e),
                    Ok(Ok(None)) if offset == desc.size => return Ok(true),
                    Ok(Ok(None)) => {
                        break Error::Protocol {
                            url: url.to_string(),
                            reason: format!(
                                "the connection ended after {offset} of {} bytes",
                                desc.size
                            ),
                        };
                    }
                    Ok(Ok(Some(c))) => c,
                };
                let chunk = if skip > 0 {
                    let k = skip.min(chunk.len() as u64) as usize;
                    skip -= k as u64;
                    chunk.slice(k..)
                } else {
                    chunk
                };
                if chunk.is_empty() {
                    continue;
                }
                offset += chunk.len() as u64;
                if offset > desc.size {
                    return Err(Error::Image(berth_image::Error::SizeMismatch {
                        digest: desc.digest.to_string(),
                        expected: desc.size,
                        actual: offset,
                    }));
                }
                failures = 0;
                progress(offset);
                if tx.send(Ok(chunk)).await.is_err() {
                    return Ok(false);
                }
            };
            failures += 1;
            resumes += 1;
            if failures > self.retries || resumes > MAX_RESUMES {
                return Err(failure);
            }
            tokio::time::sleep(self.backoff_for(failures)).await;
        }
    }

    /// Mounts the blob `desc` from the repository `from` of the same
    /// registry into `repo` (`POST …?mount=&from=`), without any upload.
    /// Returns whether the registry mounted it; when it does not (it does
    /// not have the blob in `from`, or does not do mounts), the upload it
    /// opened instead is cancelled and the caller pushes the blob.
    pub async fn mount_blob(&self, repo: &str, desc: &Descriptor, from: &str) -> Result<bool> {
        check_repo(from)?;
        let scope = format!("{} {}", scope_for(repo, true), scope_for(from, false));
        let mut url = self.repo_url(repo, "blobs/uploads/")?;
        url.query_pairs_mut()
            .append_pair("mount", &desc.digest.to_string())
            .append_pair("from", from);
        let resp = self
            .send(Method::POST, &url, Some(&scope), &[], Body::Empty)
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                if let Ok(upload) = self.location(&url, resp.headers()) {
                    // Best effort: an abandoned upload expires on its own.
                    let _ = self
                        .send(Method::DELETE, &upload, Some(&scope), &[], Body::Empty)
                        .await;
                }
                Ok(false)
            }
            _ => Err(status_err(&Method::POST, &url, resp).await),
        }
    }

    fn location(&self, request: &Url, headers: &HeaderMap) -> Result<Url> {
        let raw = header_str(headers, &header::LOCATION).ok_or_else(|| Error::Protocol {
            url: request.to_string(),
            reason: "upload answer without a Location".into(),
        })?;
        request.join(raw).map_err(|e| Error::Protocol {
            url: request.to_string(),
            reason: format!("Location {raw:?}: {e}"),
        })
    }

    /// Pushes a manifest (or index) to `repo` under `reference` (a tag or
    /// its digest). Returns its digest (checked against the registry's
    /// `Docker-Content-Digest` when it sends one).
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest> {
        let url = self.manifest_url(repo, reference)?;
        let scope = scope_for(repo, true);
        let resp = self
            .send(
                Method::PUT,
                &url,
                Some(&scope),
                &[(header::CONTENT_TYPE, media_type.to_string())],
                Body::Bytes(bytes),
            )
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_err(&Method::PUT, &url, resp).await);
        }
        let announced = header_str(
            resp.headers(),
            &header::HeaderName::from_static("docker-content-digest"),
        )
        .map(str::to_string);
        let requested = reference
            .parse::<Digest>()
            .ok()
            .filter(|_| reference.contains(':'));
        verify_manifest_digest(bytes, requested.as_ref(), announced.as_deref(), &url)
    }
}

/// Streams `len` bytes of a file (from its current offset) as chunks of
/// up to 256 KiB.
fn file_stream(
    file: tokio::fs::File,
    len: u64,
) -> impl futures_util::Stream<Item = io::Result<Vec<u8>>> + Send + 'static {
    futures_util::stream::try_unfold((file, len), |(mut file, left)| async move {
        use tokio::io::AsyncReadExt as _;
        if left == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; (256 * 1024).min(left) as usize];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file is shorter than the upload",
            ));
        }
        buf.truncate(n);
        Ok(Some((buf, (file, left - n as u64))))
    })
}

/// Answers worth another try: too many requests, a timeout, or a server
/// error other than "not implemented".
fn is_transient_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS
        || s == StatusCode::REQUEST_TIMEOUT
        || (s.is_server_error() && s != StatusCode::NOT_IMPLEMENTED)
}

/// The digest of manifest `bytes`, checked against the digest that was
/// asked for and the one the registry announced (each hashed with its own
/// algorithm).
pub(crate) fn verify_manifest_digest(
    bytes: &[u8],
    requested: Option<&Digest>,
    announced: Option<&str>,
    url: &Url,
) -> Result<Digest> {
    let check = |expected: &Digest, what: &str| -> Result<()> {
        let actual = Digest::of(expected.algorithm(), bytes);
        if actual != *expected {
            return Err(Error::DigestMismatch {
                what: format!("manifest {url} ({what})"),
                expected: expected.clone(),
                actual,
            });
        }
        Ok(())
    };
    if let Some(d) = requested {
        check(d, "the requested digest")?;
    }
    if let Some(raw) = announced {
        let d: Digest = raw.trim().parse().map_err(|_| Error::Protocol {
            url: url.to_string(),
            reason: format!("Docker-Content-Digest {raw:?} is not a digest"),
        })?;
        check(&d, "Docker-Content-Digest")?;
    }
    Ok(match requested {
        Some(d) => d.clone(),
        None => Digest::sha256(bytes),
    })
}

/// The media type of a fetched manifest: the registry's Content-Type when
/// it is a specific one, else the document's own `mediaType`, else
/// (OCI allows it to be absent) by shape.
fn manifest_media_type(bytes: &[u8], content_type: Option<&str>) -> String {
    if let Some(ct) = content_type
        && !ct.is_empty()
        && ct != "application/json"
        && ct != "text/plain"
        && ct != "application/octet-stream"
    {
        return ct.to_string();
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe {
            media_type: Some(m),
            ..
        }) => m,
        Ok(Probe {
            manifests: Some(_), ..
        }) => media::OCI_INDEX.to_string(),
        _ => media::OCI_MANIFEST.to_string(),
    }
}

/// The target of a `Link` header's `rel="next"` entry (the distribution spec's pagination:
/// `</v2/r/tags/list?n=2&last=b>; rel="next"`), as written (relative or absolute).
pub fn next_link(header: &str) -> Option<&str> {
    header
        .split(',')
        .find(|p| p.contains("rel=\"next\""))
        .and_then(|p| {
            let start = p.find('<')? + 1;
            let end = start + p[start..].find('>')?;
            Some(&p[start..end])
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next_page() {
        assert_eq!(
            next_link("</v2/r/tags/list?n=2&last=b>; rel=\"next\""),
            Some("/v2/r/tags/list?n=2&last=b")
        );
        assert_eq!(
            next_link("<https://a/prev>; rel=\"prev\", <https://a/next>; rel=\"next\""),
            Some("https://a/next")
        );
        assert_eq!(next_link("<https://a/prev>; rel=\"prev\""), None);
        assert_eq!(next_link("rel=\"next\" <x"), None);
        assert_eq!(next_link("é<>rel=\"next\""), Some(""));
    }

    #[test]
    fn plain_http_only_for_loopback_and_insecure() {
        let none: Vec<String> = Vec::new();
        assert!(is_plain_http("localhost", &none));
        assert!(is_plain_http("localhost:5000", &none));
        assert!(is_plain_http("127.0.0.1:5000", &none));
        assert!(is_plain_http("127.3.2.1", &none));
        assert!(is_plain_http("[::1]:5000", &none));
        assert!(!is_plain_http("128.0.0.1:5000", &none));
        assert!(!is_plain_http("registry.example", &none));
        assert!(!is_plain_http("localhost.example:5000", &none));
        assert!(!is_plain_http("[::2]:5000", &none));
        let insecure = vec!["reg.lan:5000".to_string(), "other.lan".to_string()];
        assert!(is_plain_http("reg.lan:5000", &insecure));
        assert!(!is_plain_http("reg.lan:5001", &insecure));
        assert!(is_plain_http("other.lan:443", &insecure));
    }

    #[test]
    fn names_are_checked() {
        for ok in ["a", "library/busybox", "a.b/c_d/e-f", "a__b", "x1/2y"] {
            check_repo(ok).unwrap();
        }
        for bad in [
            "", "A", "a/../b", "..", "a//b", "/a", "a/", "a?b", "a#b", "-a", "a b",
        ] {
            assert!(
                matches!(check_repo(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
        let d = Digest::sha256(b"x").to_string();
        for ok in ["latest", "v1.2-rc_3", "_x", d.as_str()] {
            check_reference(ok).unwrap();
        }
        for bad in ["", ".x", "-x", "a/b", "../x", "sha256:zz", "a?b"] {
            assert!(check_reference(bad).is_err(), "{bad:?}");
        }
        assert!(check_reference(&"a".repeat(129)).is_err());
    }

    #[test]
    fn client_schemes() {
        let c = Client::new("127.0.0.1:5000", ClientOptions::default()).unwrap();
        assert_eq!(c.base_url().as_str(), "http://127.0.0.1:5000/");
        let c = Client::new("ghcr.io", ClientOptions::default()).unwrap();
        assert_eq!(c.base_url().as_str(), "https://ghcr.io/");
        assert!(Client::new("ghcr.io/x", ClientOptions::default()).is_err());
    }

    #[test]
    fn manifest_digests_are_verified() {
        let url = Url::parse("http://127.0.0.1/v2/a/manifests/b").unwrap();
        let bytes = br#"{"schemaVersion":2}"#;
        let good = Digest::sha256(bytes);
        let bad = Digest::sha256(b"other");
        assert_eq!(
            verify_manifest_digest(bytes, None, None, &url).unwrap(),
            good
        );
        assert_eq!(
            verify_manifest_digest(bytes, Some(&good), Some(&good.to_string()), &url).unwrap(),
            good
        );
        assert!(matches!(
            verify_manifest_digest(bytes, Some(&bad), None, &url),
            Err(Error::DigestMismatch { .. })
        ));
        assert!(matches!(
            verify_manifest_digest(bytes, None, Some(&bad.to_string()), &url),
            Err(Error::DigestMismatch { .. })
        ));
        assert!(matches!(
            verify_manifest_digest(bytes, None, Some("nonsense"), &url),
            Err(Error::Protocol { .. })
        ));
        let sha512 = Digest::of(berth_image::Algorithm::Sha512, bytes);
        assert_eq!(
            verify_manifest_digest(bytes, None, Some(&sha512.to_string()), &url).unwrap(),
            good
        );
    }

    #[test]
    fn media_type_from_header_or_document() {
        assert_eq!(
            manifest_media_type(b"{}", Some(media::DOCKER_MANIFEST)),
            media::DOCKER_MANIFEST
        );
        assert_eq!(
            manifest_media_type(br#"{"mediaType":"x/y"}"#, Some("application/json")),
            "x/y"
        );
        assert_eq!(
            manifest_media_type(br#"{"manifests":[]}"#, None),
            media::OCI_INDEX
        );
        assert_eq!(
            manifest_media_type(br#"{"layers":[]}"#, None),
            media::OCI_MANIFEST
        );
    }
}

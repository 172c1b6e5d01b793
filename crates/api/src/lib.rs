//! The Docker Engine API over the engine library: `berth serve`.
//!
//! A thin front, as the CLI is: requests are parsed here and answered with
//! docker's JSON shapes and status codes; what they do is
//! `berth_engine`'s. The engine is synchronous (each call a few
//! milliseconds of SQLite and files): handlers run it on tokio's blocking
//! pool, with a small pool of open engines. Containers belong to their
//! monitors, not to this server: stopping it leaves them running.
//!
//! ```text
//! lib.rs         options, state, the accept loops and the router
//! listen.rs      -H unix:// and tcp:// listeners, LISTEN_FDS activation
//! body.rs        whole and streamed bodies, async <-> blocking bridges
//! stream.rs      docker's stream framing and the connection hijack
//! system.rs      /_ping /version /info /system/df /events
//! containers.rs  /containers/...
//! exec.rs        /containers/{id}/exec, /exec/...
//! images.rs      /images/...
//! objects.rs     /volumes/... /networks/...
//! build.rs       /build /commit
//! stats.rs       /containers/{id}/stats
//! helper.rs      pull, push and build by a `berth` subprocess
//! ```

#![recursion_limit = "256"]

pub mod body;
mod build;
mod containers;
pub mod error;
mod exec;
mod helper;
mod images;
pub mod listen;
mod objects;
mod stats;
mod stream;
mod system;
pub mod tls;

pub use containers::container_config;

use std::collections::HashMap;
use std::convert::Infallible;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_engine::Engine;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::oneshot;

use crate::body::Body;
pub use crate::error::{ApiError, Error};

/// The newest API version served, and the oldest (dockerd's minimum).
pub use berth_engine::system::{API_VERSION, MIN_API_VERSION};

/// What `berth serve` was asked for.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// `-H` values (`unix:///run/berth.sock`, `tcp://ADDR:PORT`, `fd://`).
    pub hosts: Vec<String>,
    /// The state root (`--root`).
    pub root: PathBuf,
    /// The berth executable: containers' monitors run it.
    pub exe: PathBuf,
    /// TLS for tcp:// (`--tls`, `--tlsverify` and their files).
    pub tls: Option<tls::TlsFiles>,
    /// Plain TCP without TLS, explicitly asked for.
    pub insecure_tcp: bool,
}

/// The server's shared state.
pub struct State {
    pub root: PathBuf,
    pub exe: PathBuf,
    /// Opened engines, reused (each holds a SQLite connection).
    pool: Mutex<Vec<Engine>>,
    /// Attach requests made before their container started (`docker run`
    /// attaches first): `start` hands them the monitor's first connection,
    /// so no output is missed.
    pending_attach: Mutex<HashMap<String, Vec<oneshot::Sender<UnixStream>>>>,
    /// Exit codes seen by attached streams, for the waits of containers
    /// that remove themselves (`--rm`) before a wait could read the record.
    exits: Mutex<HashMap<String, i32>>,
    exits_changed: tokio::sync::Notify,
    execs: Mutex<HashMap<String, exec::ExecRecord>>,
}

type Shared = Arc<State>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    pub fn new(root: PathBuf, exe: PathBuf) -> State {
        State {
            root,
            exe,
            pool: Mutex::new(Vec::new()),
            pending_attach: Mutex::new(HashMap::new()),
            exits: Mutex::new(HashMap::new()),
            exits_changed: tokio::sync::Notify::new(),
            execs: Mutex::new(HashMap::new()),
        }
    }

    fn record_exit(&self, id: &str, code: i32) {
        let mut m = lock(&self.exits);
        if m.len() > 1024 {
            m.clear();
        }
        m.insert(id.to_string(), code);
        drop(m);
        self.exits_changed.notify_waiters();
    }
}

/// Runs `f` with an engine on the blocking pool.
async fn engine<T: Send + 'static>(
    st: &Shared,
    f: impl FnOnce(&mut Engine) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let st = st.clone();
    tokio::task::spawn_blocking(move || {
        let taken = lock(&st.pool).pop();
        let mut e = match taken {
            Some(e) => e,
            None => Engine::open(&st.root)?,
        };
        let r = f(&mut e);
        let mut pool = lock(&st.pool);
        if pool.len() < 8 {
            pool.push(e);
        }
        r
    })
    .await
    .map_err(|e| ApiError::internal(format!("request task failed: {e}")))?
}

/// Runs `f` with an engine of its own (long calls: follows, waits,
/// streams), on the blocking pool. The future owns what it needs (it can
/// be spawned).
fn engine_own<T: Send + 'static>(
    st: &Shared,
    f: impl FnOnce(&mut Engine) -> Result<T, ApiError> + Send + 'static,
) -> impl std::future::Future<Output = Result<T, ApiError>> + Send + 'static {
    let root = st.root.clone();
    async move {
        tokio::task::spawn_blocking(move || {
            let mut e = Engine::open(&root)?;
            f(&mut e)
        })
        .await
        .map_err(|e| ApiError::internal(format!("request task failed: {e}")))?
    }
}

/// Runs `berth serve` until SIGINT or SIGTERM.
pub fn serve(opts: ServeOptions) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    rt.block_on(async move {
        let listeners = listen::bind(&opts)?;
        let st = Arc::new(State::new(opts.root.clone(), opts.exe.clone()));
        let mut paths = Vec::new();
        for l in listeners {
            if let Some(p) = l.path() {
                paths.push(p);
            }
            tokio::spawn(accept_loop(st.clone(), l));
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(Error::Runtime)?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        // Our sockets go; the containers stay with their monitors.
        for p in paths {
            let _ = std::fs::remove_file(p);
        }
        Ok(())
    })?;
    // Streams still open (follows, attaches) are cut, not awaited.
    rt.shutdown_background();
    Ok(())
}

async fn accept_loop(st: Shared, l: listen::Listener) {
    loop {
        let conn = match l.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: wait a little rather than spin.
                eprintln!("berth serve: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let st = st.clone();
        let tls = l.tls();
        tokio::spawn(async move {
            let conn: Box<dyn listen::Io> = match tls {
                None => conn,
                // The handshake in the connection's task: a slow client
                // holds up nobody else.
                Some(a) => {
                    let hs =
                        tokio::time::timeout(std::time::Duration::from_secs(10), a.accept(conn));
                    match hs.await {
                        Ok(Ok(s)) => Box::new(s),
                        _ => return,
                    }
                }
            };
            let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
            let io = hyper_util::rt::TokioIo::new(conn);
            let _ = hyper::server::conn::http1::Builder::new()
                // A slow client cannot hold a connection open without
                // sending its headers.
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(60))
                .serve_connection(io, svc)
                .with_upgrades()
                .await;
        });
    }
}

/// A request's query parameters.
pub struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
    pub fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// docker's boolean parameters: `1`, `true`, `True`… (absent: false).
    pub fn flag(&self, k: &str) -> bool {
        self.get(k)
            .is_some_and(|v| !matches!(v, "" | "0" | "false" | "False" | "FALSE" | "no"))
    }
    pub fn int<T: std::str::FromStr>(&self, k: &str) -> Result<Option<T>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad(format!("invalid value for {k}: {v:?}"))),
        }
    }
    /// `filters`: docker's JSON map of name to values (or the old form,
    /// a map of name to {value: true}), as `name=value` strings.
    pub fn filters(&self) -> Result<Vec<String>, ApiError> {
        let Some(f) = self.get("filters").filter(|f| !f.is_empty()) else {
            return Ok(vec![]);
        };
        let v: serde_json::Value =
            serde_json::from_str(f).map_err(|e| ApiError::bad(format!("invalid filter: {e}")))?;
        let Some(m) = v.as_object() else {
            return Err(ApiError::bad("invalid filter: not a JSON object"));
        };
        let mut out = vec![];
        for (k, vals) in m {
            match vals {
                serde_json::Value::Array(a) => {
                    for x in a {
                        out.push(format!("{k}={}", x.as_str().unwrap_or_default()));
                    }
                }
                serde_json::Value::Object(o) => {
                    for (x, on) in o {
                        if on.as_bool() == Some(true) {
                            out.push(format!("{k}={x}"));
                        }
                    }
                }
                _ => return Err(ApiError::bad(format!("invalid filter {k:?}"))),
            }
        }
        Ok(out)
    }
    /// The prune filters (`until`, `label`, `label!`) of `filters`, the
    /// other keys (`all`, `dangling`) left to the caller.
    pub fn prune_filter(&self) -> Result<berth_engine::prune::PruneFilter, ApiError> {
        let f: Vec<String> = self
            .filters()?
            .into_iter()
            .filter(|f| !f.starts_with("all=") && !f.starts_with("dangling="))
            .collect();
        berth_engine::prune::PruneFilter::parse(&f).map_err(|e| ApiError::bad(e.to_string()))
    }
}

/// The API version of a path (`/v1.41/...`) and the path without it.
fn split_version(path: &str) -> Result<(Option<String>, &str), ApiError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((None, path));
    };
    let (v, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let Some((major, minor)) = v.split_once('.') else {
        return Ok((None, path));
    };
    let (Ok(major), Ok(minor)) = (major.parse::<u32>(), minor.parse::<u32>()) else {
        return Ok((None, path));
    };
    let num = |s: &str| -> (u32, u32) {
        let (a, b) = s.split_once('.').unwrap_or(("1", "0"));
        (a.parse().unwrap_or(1), b.parse().unwrap_or(0))
    };
    if (major, minor) < num(MIN_API_VERSION) {
        return Err(ApiError::bad(format!(
            "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    if (major, minor) > num(API_VERSION) {
        return Err(ApiError::bad(format!(
            "client version {v} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    Ok((Some(v.to_string()), tail))
}

/// A percent-decoded path segment.
fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// One request: routed, answered, never a panic (a failing handler is a
/// 500 with its message).
async fn handle(st: Shared, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let mut resp = match route(st, req).await {
        Ok(r) => r,
        Err(e) => e.response(),
    };
    let h = resp.headers_mut();
    h.insert(
        "Api-Version",
        hyper::header::HeaderValue::from_static(API_VERSION),
    );
    h.insert("Server", hyper::header::HeaderValue::from_static("Berth"));
    h.insert("Ostype", hyper::header::HeaderValue::from_static("linux"));
    Ok(resp)
}

async fn route(st: Shared, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let raw_path = req.uri().path().to_string();
    let (_version, path) = split_version(&raw_path)?;
    let q = Query::parse(req.uri().query());
    let m = req.method().clone();
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    use Method as M;
    match (&m, s.as_slice()) {
        (&M::GET | &M::HEAD, ["_ping"]) => Ok(system::ping(&m)),
        (&M::GET, ["version"]) => Ok(system::version()),
        (&M::GET, ["info"]) => system::info(&st).await,
        (&M::GET, ["system", "df"]) => system::df(&st).await,
        (&M::GET, ["events"]) => system::events(&st, &q).await,
        (&M::POST, ["auth"]) => Ok(system::auth()),

        (&M::POST, ["containers", "create"]) => containers::create(&st, &q, req).await,
        (&M::GET, ["containers", "json"]) => containers::list(&st, &q).await,
        (&M::POST, ["containers", "prune"]) => containers::prune(&st, &q).await,
        (&M::GET, ["containers", id, "json"]) => containers::inspect(&st, id).await,
        (&M::GET, ["containers", id, "top"]) => containers::top(&st, id, &q).await,
        (&M::GET, ["containers", id, "logs"]) => containers::logs(&st, id, &q).await,
        (&M::GET, ["containers", id, "export"]) => containers::export(&st, id).await,
        (&M::POST, ["containers", id, "start"]) => containers::start(&st, id).await,
        (&M::POST, ["containers", id, "stop"]) => containers::stop(&st, id, &q, false).await,
        (&M::POST, ["containers", id, "restart"]) => containers::stop(&st, id, &q, true).await,
        (&M::POST, ["containers", id, "kill"]) => containers::kill(&st, id, &q).await,
        (&M::POST, ["containers", id, "wait"]) => containers::wait(&st, id, &q).await,
        (&M::POST, ["containers", id, "pause"]) => containers::pause(&st, id, true).await,
        (&M::POST, ["containers", id, "unpause"]) => containers::pause(&st, id, false).await,
        (&M::POST, ["containers", id, "rename"]) => containers::rename(&st, id, &q).await,
        (&M::POST, ["containers", id, "resize"]) => containers::resize(&st, id, &q).await,
        (&M::POST, ["containers", id, "attach"]) => containers::attach(&st, id, &q, req).await,
        (&M::POST, ["containers", id, "update"]) => containers::update(&st, id, req).await,
        (&M::GET, ["containers", id, "changes"]) => containers::changes(&st, id).await,
        (&M::GET, ["containers", id, "stats"]) => stats::stats(&st, id, &q).await,
        (&M::DELETE, ["containers", id]) => containers::remove(&st, id, &q).await,
        (&M::HEAD | &M::GET, ["containers", id, "archive"]) => {
            containers::archive_get(&st, id, &q, &m).await
        }
        (&M::PUT, ["containers", id, "archive"]) => containers::archive_put(&st, id, &q, req).await,

        (&M::POST, ["containers", id, "exec"]) => exec::create(&st, id, req).await,
        (&M::POST, ["exec", id, "start"]) => exec::start(&st, id, req).await,
        (&M::POST, ["exec", id, "resize"]) => exec::resize(&st, id, &q),
        (&M::GET, ["exec", id, "json"]) => exec::inspect(&st, id),

        (&M::GET, ["images", "json"]) => images::list(&st, &q).await,
        (&M::POST, ["images", "create"]) => images::create(&st, &q, req).await,
        (&M::POST, ["images", "load"]) => images::load(&st, &q, req).await,
        (&M::GET, ["images", "get"]) => images::get(&st, q.all("names")).await,
        (&M::POST, ["images", "prune"]) => images::prune(&st, &q).await,
        (&M::GET, ["images", "search"]) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "image search is offline: berth serve does not query registries' search services; pull images by name",
        )),
        (_, ["images", rest @ ..]) if !rest.is_empty() => {
            images::by_name(&st, &m, rest, &q, req.headers()).await
        }
        (&M::POST, ["build"]) => build::build(&st, &q, req).await,
        (&M::POST, ["commit"]) => build::commit(&st, &q, req).await,
        (&M::GET, ["distribution", ..]) => Err(ApiError::not_found(
            "distribution inspect is not implemented by berth serve yet",
        )),

        (&M::GET, ["volumes"]) => objects::volume_list(&st, &q).await,
        (&M::POST, ["volumes", "create"]) => objects::volume_create(&st, req).await,
        (&M::POST, ["volumes", "prune"]) => objects::volume_prune(&st, &q).await,
        (&M::GET, ["volumes", name]) => objects::volume_inspect(&st, name).await,
        (&M::DELETE, ["volumes", name]) => objects::volume_remove(&st, name, &q).await,

        (&M::GET, ["networks"]) => objects::network_list(&st, &q).await,
        (&M::POST, ["networks", "create"]) => objects::network_create(&st, req).await,
        (&M::POST, ["networks", "prune"]) => objects::network_prune(&st, &q).await,
        (&M::POST, ["build", "prune"]) => images::build_prune(&st, &q).await,
        (&M::GET, ["networks", id]) => objects::network_inspect(&st, id).await,
        (&M::DELETE, ["networks", id]) => objects::network_remove(&st, id).await,
        (&M::POST, ["networks", id, "connect"]) => objects::network_connect(&st, id, req).await,
        (&M::POST, ["networks", id, "disconnect"]) => {
            objects::network_disconnect(&st, id, req).await
        }
        _ => Err(ApiError::not_found("page not found")),
    }
}

/// A JSON response.
fn json_response(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(body::full(v.to_string() + "\n"));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn ok_json(v: &serde_json::Value) -> Response<Body> {
    json_response(StatusCode::OK, v)
}

fn no_content() -> Response<Body> {
    let mut r = Response::new(body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(split_version("/_ping").ok().map(|v| v.1), Some("/_ping"));
        let (v, p) = split_version("/v1.41/containers/json").expect("valid");
        assert_eq!((v.as_deref(), p), (Some("1.41"), "/containers/json"));
        assert!(split_version("/v1.12/info").is_err());
        assert!(split_version("/v9.99/info").is_err());
        // Not a version: an ordinary path.
        assert_eq!(
            split_version("/volumes").ok().map(|v| v.1),
            Some("/volumes")
        );
    }

    #[test]
    fn filters() {
        let q = Query::parse(Some(
            "filters=%7B%22status%22%3A%5B%22exited%22%5D%2C%22label%22%3A%7B%22a%3Db%22%3Atrue%7D%7D",
        ));
        let mut f = q.filters().expect("valid");
        f.sort();
        assert_eq!(f, vec!["label=a=b", "status=exited"]);
        assert!(Query::parse(Some("filters=%5B1")).filters().is_err());
    }

    /// The fuzz target's seed of a full create body (the fields the docker CLI sends) reads
    /// as the config `berth create`'s flags make.
    #[test]
    fn create_body_of_the_docker_cli() {
        let body = include_bytes!("../../../fuzz/corpus/api_create/seed1");
        let c = container_config(body).expect("a valid body");
        assert_eq!(c.image, "busybox:latest");
        assert_eq!(c.memory_reservation, Some(32 << 20));
        assert_eq!(c.blkio_weight, Some(300));
        assert_eq!(c.device_read_bps[0].rate, 1 << 20);
        assert_eq!(c.device_cgroup_rules, ["c 42:* rmw"]);
        assert_eq!(c.links, ["db:data", "db"]);
        assert_eq!(c.annotations["run.oci.keep_original_groups"], "1");
        assert_eq!(c.network_aliases, ["web"]);
        assert_eq!(c.ip.as_deref(), Some("172.17.0.9"));
        assert!(container_config(b"{\"Image\": 1}").is_err());
        assert!(container_config(b"{}").is_err(), "no image");
    }
}

//! Requests answered by a `berth` subprocess: pull, push and build.
//!
//! The registry client and the builder are the CLI's commands over the
//! engine (`berth pull`, `berth push`, `berth build`); the builder must run
//! single-threaded (it clones containers and holds the terminating
//! signals), which this multi-threaded server is not. So these requests
//! run `berth --root ROOT …` and turn its output into docker's JSON
//! progress stream. Credentials from `X-Registry-Auth` reach it as a
//! private docker config file that lives as long as the subprocess.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::HeaderMap;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::Shared;
use crate::body::{self, Body};
use crate::error::ApiError;

/// One line of docker's JSON progress stream.
pub fn line(v: Value) -> Bytes {
    Bytes::from(v.to_string() + "\r\n")
}

/// docker's error message in a progress stream.
pub fn error_line(m: &str) -> Bytes {
    line(json!({"errorDetail": {"message": m}, "error": m}))
}

/// A directory removed when dropped (a private `DOCKER_CONFIG`, a build's
/// files).
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new directory (mode 0700) under the server's root.
    pub fn new(st: &Shared, what: &str) -> Result<TempDir, ApiError> {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = st.root.join("api");
        let dir = base.join(format!(
            "{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let made = std::fs::create_dir_all(&base).and_then(|()| {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o700).create(&dir)
        });
        made.map_err(|e| ApiError::internal(format!("creating {}: {e}", dir.display())))?;
        Ok(TempDir(dir))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The credentials of an `X-Registry-Auth` header (base64url of docker's
/// JSON AuthConfig), if it carries any.
pub fn registry_auth(h: &HeaderMap) -> Result<Option<(String, String)>, ApiError> {
    let Some(v) = h.get("X-Registry-Auth") else {
        return Ok(None);
    };
    let raw = v
        .to_str()
        .map_err(|_| ApiError::bad("X-Registry-Auth is not ASCII"))?
        .trim();
    if raw.is_empty() {
        return Ok(None);
    }
    use base64::engine::general_purpose as b64;
    let json = [
        &b64::URL_SAFE,
        &b64::URL_SAFE_NO_PAD,
        &b64::STANDARD,
        &b64::STANDARD_NO_PAD,
    ]
    .iter()
    .find_map(|e| e.decode(raw).ok())
    .ok_or_else(|| ApiError::bad("X-Registry-Auth is not base64"))?;
    let cfg: Value = serde_json::from_slice(&json)
        .map_err(|e| ApiError::bad(format!("X-Registry-Auth is not a JSON auth config: {e}")))?;
    let s = |k: &str| cfg.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (mut user, mut pass) = (s("username"), s("password"));
    if user.is_empty() {
        let auth = s("auth");
        if !auth.is_empty() {
            let d = b64::STANDARD
                .decode(auth.trim())
                .map_err(|_| ApiError::bad("X-Registry-Auth: \"auth\" is not base64"))?;
            let d = String::from_utf8(d)
                .map_err(|_| ApiError::bad("X-Registry-Auth: \"auth\" is not UTF-8"))?;
            if let Some((u, p)) = d.split_once(':') {
                (user, pass) = (u.to_string(), p.to_string());
            }
        }
    }
    if user.is_empty() {
        if !s("identitytoken").is_empty() || !s("registrytoken").is_empty() {
            return Err(ApiError::bad(
                "X-Registry-Auth: identity and registry tokens are not supported; send a username and password",
            ));
        }
        return Ok(None);
    }
    Ok(Some((user, pass)))
}

/// A private docker config holding `creds` for `registry`, for one
/// subprocess.
pub fn config_dir(
    st: &Shared,
    registry: &str,
    creds: (String, String),
) -> Result<TempDir, ApiError> {
    let d = TempDir::new(st, "auth")?;
    let doc = json!({"auths": {registry: {"username": creds.0, "password": creds.1}}});
    let path = d.path().join("config.json");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(doc.to_string().as_bytes()).map(|()| f));
        f.as_mut()
            .map_err(|e| ApiError::internal(format!("writing {}: {e}", path.display())))?;
    }
    Ok(d)
}

/// What a subprocess needs besides its arguments.
#[derive(Default)]
pub struct Run {
    /// The request body, copied to its stdin.
    pub input: Option<Incoming>,
    /// A private `DOCKER_CONFIG` (removed when the subprocess ends).
    pub config: Option<TempDir>,
}

/// Its output, as the handler turns it into progress lines.
pub struct Output {
    /// stdout lines (progress of pull and push).
    pub stdout: mpsc::Receiver<String>,
    /// stderr lines (the build's progress; errors).
    pub stderr: mpsc::Receiver<String>,
    /// Its success, once both streams ended.
    pub done: tokio::sync::oneshot::Receiver<bool>,
}

/// Starts `berth --root ROOT ARGS…`; killed if the server drops it.
pub fn spawn(st: &Shared, args: &[String], run: Run) -> Result<Output, ApiError> {
    let mut cmd = tokio::process::Command::new(&st.exe);
    cmd.arg("--root")
        .arg(&st.root)
        .args(args)
        .stdin(if run.input.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(c) = &run.config {
        cmd.env("DOCKER_CONFIG", c.path());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| ApiError::internal(format!("running {}: {e}", st.exe.display())))?;
    if let (Some(mut body), Some(mut stdin)) = (run.input, child.stdin.take()) {
        tokio::spawn(async move {
            while let Some(Ok(f)) = body.frame().await {
                if let Ok(d) = f.into_data()
                    && stdin.write_all(&d).await.is_err()
                {
                    return;
                }
            }
            // Dropping stdin closes it: the end of the context.
        });
    }
    let lines = |r: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
        let (tx, rx) = mpsc::channel::<String>(64);
        let task = tokio::spawn(async move {
            let Some(r) = r else { return };
            let mut rd = tokio::io::BufReader::new(r);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match rd.read_until(b'\n', &mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let s = String::from_utf8_lossy(&buf).into_owned();
                        // A receiver gone: keep draining, so the child
                        // never blocks on a full pipe.
                        let _ = tx.send(s).await;
                    }
                }
            }
        });
        (rx, task)
    };
    let out = child
        .stdout
        .take()
        .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>);
    let err = child
        .stderr
        .take()
        .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>);
    let (stdout, t1) = lines(out);
    let (stderr, t2) = lines(err);
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let config = run.config;
    tokio::spawn(async move {
        let _ = t1.await;
        let _ = t2.await;
        let ok = child.wait().await.is_ok_and(|s| s.success());
        drop(config);
        let _ = done_tx.send(ok);
    });
    Ok(Output {
        stdout,
        stderr,
        done,
    })
}

/// Pull or push: stdout's progress lines become docker's status messages,
/// stderr the error message when it fails.
pub fn progress(st: &Shared, args: &[String], run: Run) -> Body {
    let (tx, body) = body::channel();
    let out = spawn(st, args, run);
    tokio::spawn(async move {
        let mut out = match out {
            Ok(o) => o,
            Err(e) => {
                let _ = tx.send(error_line(&e.message)).await;
                return;
            }
        };
        while let Some(l) = out.stdout.recv().await {
            for part in l.split('\r').map(str::trim).filter(|p| !p.is_empty()) {
                // A client that went away: the pull goes on (its blobs
                // are not wasted); its output is dropped.
                let _ = tx.send(line(json!({"status": part}))).await;
            }
        }
        let mut err_text = String::new();
        while let Some(l) = out.stderr.recv().await {
            err_text.push_str(&l);
        }
        if !out.done.await.unwrap_or(false) {
            let _ = tx.send(error_line(&failure(&err_text))).await;
        }
    });
    body
}

/// The error message of a failed subprocess: its last `Error:` line (the
/// CLI's), else its whole stderr.
pub fn failure(stderr: &str) -> String {
    let last = stderr.lines().rev().find_map(|l| {
        l.strip_prefix("Error: ")
            .or_else(|| l.strip_prefix("berth: "))
    });
    let m = last.map_or_else(|| stderr.trim().to_string(), |l| l.trim().to_string());
    if m.is_empty() {
        "failed".to_string()
    } else {
        m
    }
}

/// Reads a whole small file the subprocess wrote.
pub async fn read_file(p: &Path) -> Option<String> {
    let mut f = tokio::fs::File::open(p).await.ok()?;
    let mut s = String::new();
    f.read_to_string(&mut s).await.ok()?;
    Some(s)
}

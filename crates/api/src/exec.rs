//! `exec`: create records what to run; start runs it through `berth exec`
//! (a process of its own: exec may have to re-execute from a sealed copy
//! of the binary, CVE-2019-5736, which a server cannot do to itself), its
//! stdio bridged to the hijacked connection: a pty for `Tty`, else pipes
//! with docker's stream multiplexing. The exit code is recorded before the
//! stream closes, so the client's inspect right after sees it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use berth_engine::db;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::body::{self, Body};
use crate::error::ApiError;
use crate::stream;
use crate::{Query, Shared, engine, json_response, lock, ok_json};

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecBody {
    attach_stdin: Option<bool>,
    attach_stdout: Option<bool>,
    attach_stderr: Option<bool>,
    tty: Option<bool>,
    cmd: Option<Vec<String>>,
    env: Option<Vec<String>>,
    user: Option<String>,
    working_dir: Option<String>,
    privileged: Option<bool>,
    console_size: Option<Vec<u16>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: Option<bool>,
    tty: Option<bool>,
    console_size: Option<Vec<u16>>,
}

pub struct ExecRecord {
    container: String,
    body: ExecBody,
    running: bool,
    started: bool,
    exit_code: Option<i32>,
    pid: u32,
    /// The pty's master, for resizes.
    pty: Option<Arc<OwnedFd>>,
}

fn new_id() -> String {
    let mut b = [0u8; 32];
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        // Unique enough without the kernel's entropy: time and a counter.
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let c = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return format!("{t:032x}{c:016x}{:016x}", std::process::id());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub async fn create(
    st: &Shared,
    id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let b: ExecBody = body::json(req.into_body()).await?;
    if b.cmd.as_ref().is_none_or(|c| c.is_empty()) {
        return Err(ApiError::bad("No exec command specified"));
    }
    let key = id.to_string();
    let row = engine(st, move |e| Ok(e.get(&key)?)).await?;
    match row.state.as_str() {
        db::RUNNING => {}
        db::PAUSED => {
            return Err(ApiError::conflict(format!(
                "Container {} is paused, unpause the container before exec",
                row.id
            )));
        }
        _ => {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                row.id
            )));
        }
    }
    let exec_id = new_id();
    let mut m = lock(&st.execs);
    // Finished execs are forgotten once many pile up.
    if m.len() > 1024 {
        m.retain(|_, r| r.running || !r.started);
    }
    m.insert(
        exec_id.clone(),
        ExecRecord {
            container: row.id,
            body: b,
            running: false,
            started: false,
            exit_code: None,
            pid: 0,
            pty: None,
        },
    );
    Ok(json_response(StatusCode::CREATED, &json!({"Id": exec_id})))
}

fn no_such_exec(id: &str) -> ApiError {
    ApiError::not_found(format!("No such exec instance: {id}"))
}

fn set_size(fd: &OwnedFd, h: u16, w: u16) {
    let ws = libc::winsize {
        ws_row: h,
        ws_col: w,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
    unsafe {
        libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws);
    }
}

fn openpty() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (mut m, mut s) = (-1, -1);
    // SAFETY: out pointers are valid; name, termios and winsize may be null.
    let r = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openpty returned two new descriptors, ours.
    let (m, s) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
    for fd in [&m, &s] {
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    Ok((m, s))
}

pub async fn start(
    st: &Shared,
    id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let (parts, incoming) = req.into_parts();
    let sb: StartBody = body::json(incoming).await?;
    let (container, b) = {
        let mut m = lock(&st.execs);
        let r = m.get_mut(id).ok_or_else(|| no_such_exec(id))?;
        if r.started {
            return Err(ApiError::conflict(format!(
                "Exec {id} has already been started"
            )));
        }
        r.started = true;
        r.running = true;
        (r.container.clone(), r.body.clone())
    };
    let tty = sb.tty.or(b.tty).unwrap_or(false);
    let stdin = b.attach_stdin.unwrap_or(false);
    let detach = sb.detach.unwrap_or(false);
    let mut cmd = tokio::process::Command::new(&st.exe);
    cmd.arg("--root").arg(&st.root).arg("exec");
    if stdin && !detach {
        cmd.arg("-i");
    }
    if tty && !detach {
        cmd.arg("-t");
    }
    if let Some(u) = b.user.as_deref().filter(|u| !u.is_empty()) {
        cmd.arg("-u").arg(u);
    }
    if let Some(w) = b.working_dir.as_deref().filter(|w| !w.is_empty()) {
        cmd.arg("-w").arg(w);
    }
    for e in b.env.iter().flatten() {
        cmd.arg("-e").arg(e);
    }
    if b.privileged == Some(true) {
        cmd.arg("--privileged");
    }
    cmd.arg(&container).args(b.cmd.iter().flatten());
    cmd.kill_on_drop(false);
    let fail = |st: &Shared, e: std::io::Error| {
        if let Some(r) = lock(&st.execs).get_mut(id) {
            r.running = false;
            r.exit_code = Some(126);
        }
        ApiError::internal(format!("running berth exec: {e}"))
    };
    if detach {
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().map_err(|e| fail(st, e))?;
        let (st, id) = (st.clone(), id.to_string());
        if let Some(r) = lock(&st.execs).get_mut(&id) {
            r.pid = child.id().unwrap_or(0);
        }
        tokio::spawn(async move {
            let code = exit_code(&mut child).await;
            if let Some(r) = lock(&st.execs).get_mut(&id) {
                r.running = false;
                r.exit_code = Some(code);
            }
        });
        return Ok(Response::new(body::empty()));
    }
    let req = Request::from_parts(parts, ());
    if !req
        .headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
    {
        if let Some(r) = lock(&st.execs).get_mut(id) {
            r.started = false;
            r.running = false;
        }
        return Err(ApiError::bad(
            "exec start hijacks the connection: send \"Connection: Upgrade\" and \"Upgrade: tcp\" (or Detach)",
        ));
    }
    let mut master = None;
    if tty {
        let (m, s) = openpty().map_err(|e| fail(st, e))?;
        if let Some(sz) = sb.console_size.or(b.console_size.clone())
            && let [h, w] = sz[..]
        {
            set_size(&m, h, w);
        }
        let dup = |s: &OwnedFd| s.try_clone().map(std::process::Stdio::from);
        cmd.stdin(dup(&s).map_err(|e| fail(st, e))?)
            .stdout(dup(&s).map_err(|e| fail(st, e))?)
            .stderr(std::process::Stdio::from(s));
        master = Some(Arc::new(m));
    } else {
        cmd.stdin(if stdin {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    }
    let child = cmd.spawn().map_err(|e| fail(st, e))?;
    if let Some(r) = lock(&st.execs).get_mut(id) {
        r.pid = child.id().unwrap_or(0);
        r.pty = master.clone();
    }
    let (st2, id2) = (st.clone(), id.to_string());
    let mut req = req;
    tokio::spawn(async move {
        let done = |code: i32| {
            if let Some(r) = lock(&st2.execs).get_mut(&id2) {
                r.running = false;
                r.exit_code = Some(code);
                r.pty = None;
            }
        };
        match hyper::upgrade::on(&mut req).await {
            Ok(client) => bridge(client, child, master, stdin, done).await,
            Err(_) => {
                let mut child = child;
                done(exit_code(&mut child).await);
            }
        }
    });
    Ok(stream::upgraded(if tty {
        stream::RAW
    } else {
        stream::MUX
    }))
}

/// A process's exit code (255 when it cannot be had).
async fn exit_code(child: &mut tokio::process::Child) -> i32 {
    child
        .wait()
        .await
        .ok()
        .and_then(|s| s.code())
        .unwrap_or(255)
}

/// Copies between the client and the exec process until it exits; `done`
/// gets its exit code before the stream closes (the client inspects the
/// exec as soon as its stream ends). The client's half-close ends the
/// process's stdin.
async fn bridge(
    client: hyper::upgrade::Upgraded,
    mut child: tokio::process::Child,
    master: Option<Arc<OwnedFd>>,
    stdin: bool,
    done: impl FnOnce(i32),
) {
    let (mut cr, cw) = tokio::io::split(TokioIo::new(client));
    let cw = Arc::new(tokio::sync::Mutex::new(cw));
    let mut tasks = Vec::new();
    match master {
        Some(m) => {
            let (Ok(rfd), Ok(wfd)) = (m.try_clone(), m.try_clone()) else {
                done(exit_code(&mut child).await);
                return;
            };
            let mut r = tokio::fs::File::from_std(std::fs::File::from(rfd));
            let mut w = tokio::fs::File::from_std(std::fs::File::from(wfd));
            let out = cw.clone();
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 32 * 1024];
                // EIO once every slave is closed: the process is done.
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 || out.lock().await.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }));
            if stdin {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        let _ = w.flush().await;
                    }
                });
            }
        }
        None => {
            for (s, pipe) in [
                (
                    1u8,
                    child
                        .stdout
                        .take()
                        .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
                ),
                (
                    2u8,
                    child
                        .stderr
                        .take()
                        .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
                ),
            ] {
                let Some(mut pipe) = pipe else { continue };
                let out = cw.clone();
                tasks.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    while let Ok(n) = pipe.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if out
                            .lock()
                            .await
                            .write_all(&stream::mux(s, &buf[..n]))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }));
            }
            if let Some(mut w) = child.stdin.take() {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    // Dropping w closes the process's stdin.
                });
            }
        }
    }
    let code = exit_code(&mut child).await;
    for t in tasks {
        // A pty's master reports EIO once the process (and its children
        // holding the slave) are gone; give the last output a moment.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), t).await;
    }
    done(code);
    let _ = cw.lock().await.shutdown().await;
}

pub fn resize(st: &Shared, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let h = q.int::<u16>("h")?.unwrap_or(0);
    let w = q.int::<u16>("w")?.unwrap_or(0);
    let m = lock(&st.execs);
    let r = m.get(id).ok_or_else(|| no_such_exec(id))?;
    if let Some(p) = &r.pty {
        set_size(p, h, w);
    }
    Ok(Response::new(body::empty()))
}

pub fn inspect(st: &Shared, id: &str) -> Result<Response<Body>, ApiError> {
    let m = lock(&st.execs);
    let r = m.get(id).ok_or_else(|| no_such_exec(id))?;
    let cmd = r.body.cmd.clone().unwrap_or_default();
    Ok(ok_json(&json!({
        "ID": id,
        "Running": r.running,
        "ExitCode": r.exit_code,
        "ProcessConfig": {
            "tty": r.body.tty.unwrap_or(false),
            "entrypoint": cmd.first().cloned().unwrap_or_default(),
            "arguments": cmd.iter().skip(1).collect::<Vec<_>>(),
            "privileged": r.body.privileged.unwrap_or(false),
            "user": r.body.user.clone().unwrap_or_default(),
        },
        "OpenStdin": r.body.attach_stdin.unwrap_or(false),
        "OpenStderr": r.body.attach_stderr.unwrap_or(false),
        "OpenStdout": r.body.attach_stdout.unwrap_or(false),
        "CanRemove": false,
        "ContainerID": r.container,
        "DetachKeys": "",
        "Pid": r.pid,
    })))
}

//! docker's streams: the 8-byte multiplexing header (`[stream, 0, 0, 0,
//! length u32 BE]`, stream 1 stdout, 2 stderr) used when a container has no
//! tty, and the connection hijack of attach and exec start: the request
//! carries `Upgrade: tcp`, the answer is `101 UPGRADED`, and from then the
//! connection is a raw byte stream both ways (the client half-closes its
//! side when its stdin ends).

use bytes::{BufMut, Bytes, BytesMut};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use berth_engine::attach;

use crate::Shared;
use crate::body::{Body, empty};
use crate::error::ApiError;

pub const RAW: &str = "application/vnd.docker.raw-stream";
pub const MUX: &str = "application/vnd.docker.multiplexed-stream";

/// One multiplexed frame.
pub fn mux(stream: u8, data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + data.len());
    b.put_slice(&[stream, 0, 0, 0]);
    b.put_u32(data.len() as u32);
    b.put_slice(data);
    b.freeze()
}

/// A frame of the monitor's attach protocol.
pub fn monitor_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    // Writing into a Vec cannot fail.
    let _ = attach::write_frame(&mut v, kind, payload);
    v
}

/// Whether the client asked for the hijack (`Connection: Upgrade`,
/// `Upgrade: tcp`).
pub fn wants_upgrade(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
}

pub fn require_upgrade(req: &Request<Incoming>) -> Result<(), ApiError> {
    if wants_upgrade(req) {
        Ok(())
    } else {
        Err(ApiError::bad(
            "this endpoint hijacks the connection: send \"Connection: Upgrade\" and \"Upgrade: tcp\"",
        ))
    }
}

/// The `101 UPGRADED` answer.
pub fn upgraded(content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    h.insert(header::UPGRADE, header::HeaderValue::from_static("tcp"));
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}

/// What an attach passes on.
#[derive(Clone)]
pub struct AttachOpts {
    pub tty: bool,
    /// The client's end of input closes the container's stdin (docker's
    /// StdinOnce, never for a tty).
    pub stdin_once: bool,
    /// The sequence that detaches a tty client (`detachKeys`).
    pub detach: Vec<u8>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// A pause before the first bytes after a `101`: docker-py reads a hijacked stream from the
/// raw socket under its HTTP reader, so bytes that arrive together with the response head are
/// left in that reader's buffer and lost to it. dockerd's own delay (reading the logs after the
/// upgrade) hides the same race; this makes it certain.
pub const AFTER_UPGRADE: std::time::Duration = std::time::Duration::from_millis(50);

/// Bridges a hijacked client connection and a container's monitor
/// connection (after `backlog`, past output) until the container exits or the client goes (the container
/// is not affected by the latter: the monitor drops a client it cannot
/// reach).
pub async fn bridge_monitor(
    st: Shared,
    id: String,
    client: hyper::upgrade::Upgraded,
    conn: std::os::unix::net::UnixStream,
    opts: AttachOpts,
    backlog: Vec<Bytes>,
) {
    if conn.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(conn) = tokio::net::UnixStream::from_std(conn) else {
        return;
    };
    let (mut mr, mut mw) = conn.into_split();
    let (mut cr, mut cw) = tokio::io::split(TokioIo::new(client));
    if !backlog.is_empty() {
        tokio::time::sleep(AFTER_UPGRADE).await;
    }
    for b in backlog {
        if cw.write_all(&b).await.is_err() {
            return;
        }
    }
    let input = async {
        if opts.stdin {
            let mut buf = vec![0u8; 32 * 1024];
            let mut matched = 0usize;
            loop {
                match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        // The client's stdin ended (half-close): so does the
                        // container's when it was created to (StdinOnce).
                        if opts.stdin_once {
                            let _ = mw.write_all(&monitor_frame(attach::STDIN_CLOSE, b"")).await;
                        }
                        break;
                    }
                    Ok(n) => {
                        // The detach keys (tty only, as docker): the client
                        // leaves, the container runs on with its stdin open.
                        if opts.tty && !opts.detach.is_empty() {
                            for &b in &buf[..n] {
                                matched = if opts.detach.get(matched) == Some(&b) {
                                    matched + 1
                                } else {
                                    usize::from(opts.detach.first() == Some(&b))
                                };
                                if matched == opts.detach.len() {
                                    return;
                                }
                            }
                        }
                        if mw
                            .write_all(&monitor_frame(attach::STDIN, &buf[..n]))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        }
        std::future::pending::<()>().await
    };
    let output = async {
        let mut dec = attach::Decoder::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match mr.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
            dec.push(&buf[..n]);
            while let Ok(Some((kind, data))) = dec.next_frame() {
                let out = match kind {
                    attach::STDOUT if opts.stdout => Some(1),
                    attach::STDERR if opts.stderr => Some(2),
                    attach::EXITED => {
                        return String::from_utf8_lossy(&data).trim().parse::<i32>().ok();
                    }
                    _ => None,
                };
                if let Some(s) = out {
                    let w = if opts.tty {
                        cw.write_all(&data).await
                    } else {
                        cw.write_all(&mux(s, &data)).await
                    };
                    if w.is_err() {
                        return None; // the client went away
                    }
                }
            }
        }
    };
    tokio::select! {
        code = output => {
            if let Some(c) = code {
                st.record_exit(&id, c);
            }
        }
        _ = input => {}
    }
    let _ = cw.shutdown().await;
}

//! Response bodies (whole, or streamed from a channel) and the bridges
//! between hyper's async bodies and the engine's blocking readers and
//! writers (a request body is read through berth-registry's
//! `ChannelReader`, the same bridge its downloads use).

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use tokio::sync::mpsc;

use berth_registry::ChannelReader;

use crate::error::ApiError;

pub type Body = BoxBody<Bytes, Infallible>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

pub fn empty() -> Body {
    Empty::new().boxed()
}

/// A body fed by a channel: each message is sent as it comes (chunked),
/// so headers go out before the first one.
pub struct ChanBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChanBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b))))
    }
}

/// A streamed body and its sender (the body ends when the sender is dropped;
/// sending fails once the client has gone).
pub fn channel() -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel(16);
    (tx, ChanBody(rx).boxed())
}

/// A blocking writer into a streamed body (for the engine's tar writers
/// and log readers, run on the blocking pool): a write fails with
/// BrokenPipe once the client has gone, which stops the producer.
pub struct ChanWriter(pub mpsc::Sender<Bytes>);

impl io::Write for ChanWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Streams a request body into a blocking reader.
pub fn reader(mut body: Incoming) -> ChannelReader {
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        while let Some(f) = body.frame().await {
            let msg = match f {
                Ok(f) => match f.into_data() {
                    Ok(d) => Ok(d),
                    Err(_) => continue, // trailers
                },
                Err(e) => Err(io::Error::other(e)),
            };
            let stop = msg.is_err();
            if tx.send(msg).await.is_err() || stop {
                return;
            }
        }
    });
    ChannelReader::new(rx)
}

/// The largest JSON body accepted (a container config with a seccomp
/// profile is well under it).
pub const MAX_JSON: usize = 4 << 20;

/// Reads a whole (JSON) request body, at most [`MAX_JSON`] bytes.
pub async fn collect(body: Incoming) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, MAX_JSON);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ApiError::new(
                    hyper::StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body is larger than {MAX_JSON} bytes"),
                ))
            } else {
                Err(ApiError::bad(format!("reading the request body: {e}")))
            }
        }
    }
}

/// A JSON request body as `T` (an empty body is `T`'s default, as dockerd
/// takes it); malformed JSON or a field of the wrong type is a 400.
pub async fn json<T: serde::de::DeserializeOwned + Default>(body: Incoming) -> Result<T, ApiError> {
    parse_json(&collect(body).await?)
}

/// A request body's JSON (an empty body is the default value, as dockerd takes it).
pub fn parse_json<T: serde::de::DeserializeOwned + Default>(b: &[u8]) -> Result<T, ApiError> {
    if b.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(b).map_err(|e| ApiError::bad(format!("invalid JSON: {e}")))
}

//! The monitor's attach protocol over a unix stream socket: frames of
//! `[kind: u8][length: u32 big-endian][payload]`.
//!
//! Monitor to client: `R` started, `E` start failed (`CODE\nMESSAGE`),
//! `1` stdout, `2` stderr, `X` exited (`CODE`). Client to monitor: `0`
//! stdin, `C` stdin closed, `W` window size (`ROWS COLS`), `K` signal.

use std::io::{self, Read, Write};

pub const STARTED: u8 = b'R';
pub const FAILED: u8 = b'E';
pub const STDOUT: u8 = b'1';
pub const STDERR: u8 = b'2';
pub const EXITED: u8 = b'X';
pub const STDIN: u8 = b'0';
pub const STDIN_CLOSE: u8 = b'C';
pub const RESIZE: u8 = b'W';
pub const SIGNAL: u8 = b'K';

/// Largest payload accepted (a bad peer cannot make us allocate more).
const MAX_FRAME: usize = 1 << 20;

pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(payload.len() + 5);
    buf.push(kind);
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(payload);
    w.write_all(&buf)
}

/// Reads one frame; None at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("attach frame of {len} bytes is too large"),
        ));
    }
    let mut p = vec![0u8; len];
    r.read_exact(&mut p)?;
    Ok(Some((head[0], p)))
}

/// Incremental frame decoder for a non-blocking reader.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame; Err for a frame too large.
    pub fn next_frame(&mut self) -> io::Result<Option<(u8, Vec<u8>)>> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "attach frame too large",
            ));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let kind = self.buf[0];
        let payload = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Ok(Some((kind, payload)))
    }
}

/// `--detach-keys` / `detachKeys`: `ctrl-p,ctrl-q` (docker's default), `a`,
/// `ctrl-@`… as the bytes a client types.
pub fn parse_detach_keys(spec: Option<&str>) -> crate::Result<Vec<u8>> {
    let spec = spec.filter(|s| !s.is_empty()).unwrap_or("ctrl-p,ctrl-q");
    let unknown = |k: &str| crate::Error::Invalid {
        what: "detach keys".into(),
        reason: format!("Unknown character: '{k}'"),
    };
    let mut keys = vec![];
    for k in spec.split(',') {
        let b = match k.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => {
                let c = c.as_bytes()[0].to_ascii_uppercase();
                if !(b'@'..=b'_').contains(&c) {
                    return Err(unknown(k));
                }
                c - b'@'
            }
            None if k.len() == 1 => k.as_bytes()[0],
            _ => return Err(unknown(k)),
        };
        keys.push(b);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_roundtrip() {
        let mut v = Vec::new();
        write_frame(&mut v, STDOUT, b"hello").unwrap();
        write_frame(&mut v, EXITED, b"3").unwrap();
        let mut d = Decoder::default();
        d.push(&v[..3]);
        assert!(d.next_frame().unwrap().is_none());
        d.push(&v[3..]);
        assert_eq!(d.next_frame().unwrap(), Some((STDOUT, b"hello".to_vec())));
        assert_eq!(d.next_frame().unwrap(), Some((EXITED, b"3".to_vec())));
        let mut r = &v[..];
        assert_eq!(read_frame(&mut r).unwrap().unwrap().1, b"hello");
        let bad = [b'1', 0xff, 0xff, 0xff, 0xff];
        assert!(read_frame(&mut &bad[..]).is_err());
    }
}

//! Content digests (`sha256:<64 hex>`, `sha512:<128 hex>`) and streaming
//! hashers.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::Digest as _;

use crate::error::{Error, Result};

/// A digest algorithm the store accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex encoding.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    pub fn hasher(self) -> Hasher {
        Hasher::new(self)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated digest: a known algorithm and the lowercase hex encoding of
/// the right length.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// A digest from its parts; the hex must be lowercase and of the
    /// algorithm's length.
    pub fn new(algorithm: Algorithm, hex: &str) -> Result<Digest> {
        let bad = |reason: String| Error::InvalidDigest {
            digest: format!("{algorithm}:{hex}"),
            reason,
        };
        if hex.len() != algorithm.hex_len() {
            return Err(bad(format!(
                "{algorithm} needs {} hex digits, got {}",
                algorithm.hex_len(),
                hex.len()
            )));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("the encoded part must be lowercase hex".into()));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// The digest of `data`.
    pub fn of(algorithm: Algorithm, data: &[u8]) -> Digest {
        let mut h = Hasher::new(algorithm);
        h.update(data);
        h.finish()
    }

    /// The sha256 digest of `data`.
    pub fn sha256(data: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, data)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex encoding (the part after the colon).
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex digits, as docker shows image ids.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Digest> {
        let bad = |reason: &str| Error::InvalidDigest {
            digest: s.to_string(),
            reason: reason.to_string(),
        };
        let (alg, hex) = s.split_once(':').ok_or_else(|| bad("missing ':'"))?;
        let algorithm = Algorithm::from_name(alg).ok_or_else(|| {
            bad(&format!(
                "unsupported algorithm {alg:?} (sha256 and sha512 are)"
            ))
        })?;
        Digest::new(algorithm, hex).map_err(|e| match e {
            Error::InvalidDigest { reason, .. } => bad(&reason),
            e => e,
        })
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = Error;
    fn try_from(d: &oci_spec::image::Digest) -> Result<Digest> {
        d.to_string().parse()
    }
}

impl From<&Digest> for oci_spec::image::Digest {
    fn from(d: &Digest) -> oci_spec::image::Digest {
        // A validated sha256/sha512 digest is always a valid OCI digest.
        match oci_spec::image::Digest::from_str(&d.to_string()) {
            Ok(d) => d,
            Err(e) => unreachable!("validated digest {d} rejected by oci-spec: {e}"),
        }
    }
}

/// A streaming hasher for one of the supported algorithms.
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, bytes) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            Hasher::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        Digest {
            algorithm,
            hex: to_hex(&bytes),
        }
    }
}

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}

/// A reader that hashes and counts every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, algorithm: Algorithm) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(algorithm),
            count: 0,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Reads (and hashes) whatever is left of the stream.
    pub fn drain(&mut self) -> io::Result<u64> {
        io::copy(self, &mut io::sink())
    }

    pub fn finish(self) -> (Digest, u64) {
        (self.hasher.finish(), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parse_and_display() {
        let d: Digest = format!("sha256:{EMPTY256}").parse().unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.hex(), EMPTY256);
        assert_eq!(d.to_string(), format!("sha256:{EMPTY256}"));
        assert_eq!(d.short(), "e3b0c44298fc");
        assert_eq!(Digest::sha256(b""), d);
        let d512 = Digest::of(Algorithm::Sha512, b"");
        assert_eq!(d512.hex().len(), 128);
        assert_eq!(d512.to_string().parse::<Digest>().unwrap(), d512);
    }

    #[test]
    fn rejects_bad_digests() {
        for bad in [
            "sha256",
            "sha256:",
            "sha256:abc",
            &format!("sha256:{}", EMPTY256.to_uppercase()),
            &format!("sha256:{EMPTY256}0"),
            &format!("md5:{EMPTY256}"),
            &format!("sha512:{EMPTY256}"),
            &format!("sha256:{}g", &EMPTY256[..63]),
        ] {
            let e = bad.parse::<Digest>().unwrap_err();
            assert!(
                matches!(&e, Error::InvalidDigest { digest, .. } if digest == bad),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn hashing_reader_counts() {
        let mut r = HashingReader::new(&b"hello world"[..], Algorithm::Sha256);
        let mut buf = [0u8; 5];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(r.count(), 5);
        r.drain().unwrap();
        let (d, n) = r.finish();
        assert_eq!(n, 11);
        assert_eq!(d, Digest::sha256(b"hello world"));
    }

    #[test]
    fn serde_roundtrip() {
        let d = Digest::sha256(b"x");
        let j = serde_json::to_string(&d).unwrap();
        assert_eq!(j, format!("\"{d}\""));
        assert_eq!(serde_json::from_str::<Digest>(&j).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:00\"").is_err());
        let o: oci_spec::image::Digest = (&d).into();
        assert_eq!(Digest::try_from(&o).unwrap(), d);
    }
}

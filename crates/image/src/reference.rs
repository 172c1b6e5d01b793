//! Image references, parsed as docker parses them (the grammar of
//! `github.com/distribution/reference`, with `ParseNormalizedNamed`'s
//! defaults):
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path-component { "/" path-component }
//! domain     := host [ ":" port ]          host: DNS-ish components or [ipv6]
//! path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [\w][\w.-]{0,127}
//! ```
//!
//! The first component is a domain only if it contains `.` or `:`, is
//! `localhost`, or has an uppercase letter; otherwise the domain is
//! `docker.io`, and a single-component path on `docker.io` gets `library/`.
//! `busybox` is `docker.io/library/busybox:latest`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{Error, Result};

pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
pub const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_LENGTH_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// A fully qualified image reference: domain, repository path, and a tag
/// and/or digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses `s` the way `docker pull`/`docker run` do: normalised (domain
    /// and `library/` added) and tagged `latest` when it has neither a tag
    /// nor a digest.
    pub fn parse(s: &str) -> Result<Reference> {
        let mut r = Reference::parse_normalized(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Parses and normalises `s` without adding a default tag (docker's
    /// `ParseNormalizedNamed`): `busybox` is `docker.io/library/busybox`.
    pub fn parse_normalized(s: &str) -> Result<Reference> {
        let bad = |reason: String| Error::InvalidReference {
            reference: s.to_string(),
            reason,
        };
        if s.is_empty() {
            return Err(bad(
                "repository name must have at least one component".into()
            ));
        }
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad(
                "cannot specify 64-byte hexadecimal strings as a repository name".into(),
            ));
        }

        // Digest: everything after the '@'.
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest = parse_digest(d).map_err(&bad)?;
                (rest, Some(digest))
            }
            None => (s, None),
        };

        // Tag: after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(i) if last_slash.is_none_or(|sl| i > sl) => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            check_tag(tag).map_err(&bad)?;
        }

        // Domain: docker's splitDockerDomain.
        let (mut domain, mut path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.to_lowercase() != first =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        if domain == LEGACY_DEFAULT_DOMAIN {
            domain = DEFAULT_DOMAIN.to_string();
        }
        if domain == DEFAULT_DOMAIN && !path.contains('/') {
            path = format!("{OFFICIAL_REPO_PREFIX}{path}");
        }

        check_domain(&domain).map_err(&bad)?;
        if path.to_lowercase() != path {
            return Err(bad(format!("repository name {path:?} must be lowercase")));
        }
        check_path(&path).map_err(&bad)?;
        let full_len = domain.len() + 1 + path.len();
        if full_len > NAME_TOTAL_LENGTH_MAX {
            return Err(bad(format!(
                "repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters, is {full_len}"
            )));
        }
        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The registry host (and port): `docker.io`, `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry: `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The full repository name: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The repository as docker shows it: `busybox`, `foo/bar`,
    /// `localhost:5000/x`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(short) if !short.contains('/') => short.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// The whole reference as docker shows it: `busybox:latest`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    /// This reference with `tag` (the digest kept).
    pub fn with_tag(&self, tag: &str) -> Result<Reference> {
        check_tag(tag).map_err(|reason| Error::InvalidReference {
            reference: format!("{}:{tag}", self.name()),
            reason,
        })?;
        Ok(Reference {
            tag: Some(tag.to_string()),
            ..self.clone()
        })
    }

    /// This repository at `digest`, without a tag.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The repository alone (no tag, no digest).
    pub fn repository(&self) -> Reference {
        Reference {
            tag: None,
            digest: None,
            ..self.clone()
        }
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `[\w][\w.-]{0,127}`
fn check_tag(tag: &str) -> std::result::Result<(), String> {
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= TAG_MAX
        && is_word(b[0])
        && b[1..].iter().all(|&c| is_word(c) || c == b'.' || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid tag {tag:?}: a tag is 1 to {TAG_MAX} of [A-Za-z0-9_.-], not starting with '.' or '-'"
        ))
    }
}

/// `[a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*` for each `/`-separated component.
fn check_path(path: &str) -> std::result::Result<(), String> {
    for comp in path.split('/') {
        if !path_component_ok(comp.as_bytes()) {
            return Err(if comp.is_empty() {
                format!("empty path component in repository name {path:?}")
            } else {
                format!(
                    "invalid path component {comp:?} in repository name {path:?}: lowercase letters and digits, separated by '.', '_', '__' or dashes"
                )
            });
        }
    }
    Ok(())
}

fn path_component_ok(c: &[u8]) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    let mut expect_alnum = true;
    while i < c.len() {
        if alnum(c[i]) {
            expect_alnum = false;
            i += 1;
            continue;
        }
        if expect_alnum {
            return false;
        }
        // A separator: ".", "_", "__" or one or more "-".
        let sep_len = match c[i] {
            b'.' => 1,
            b'_' => {
                if c.get(i + 1) == Some(&b'_') {
                    2
                } else {
                    1
                }
            }
            b'-' => c[i..].iter().take_while(|&&b| b == b'-').count(),
            _ => return false,
        };
        i += sep_len;
        expect_alnum = true;
    }
    !c.is_empty() && !expect_alnum
}

/// host [":" port], host being DNS-style components or a bracketed IPv6
/// address.
fn check_domain(domain: &str) -> std::result::Result<(), String> {
    let bad = || format!("invalid domain {domain:?}");
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').ok_or_else(bad)?;
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(bad());
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (None, port)
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        let comp_ok = |c: &str| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        };
        if !host.split('.').all(comp_ok) {
            return Err(bad());
        }
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("invalid port {port:?} in domain {domain:?}"));
    }
    Ok(())
}

fn parse_digest(d: &str) -> std::result::Result<Digest, String> {
    d.parse::<Digest>().map_err(|e| match e {
        Error::InvalidDigest { reason, .. } => format!("invalid digest {d:?}: {reason}"),
        e => e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex() -> String {
        // 64 lowercase hex digits.
        "0123456789abcdef".repeat(4)
    }

    #[test]
    fn docker_normalisation() {
        let cases = [
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
            ),
            (
                "library/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "docker.io/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            ("foo/bar", "docker.io/foo/bar:latest", "foo/bar:latest"),
            (
                "docker.io/library/a/b",
                "docker.io/library/a/b:latest",
                "library/a/b:latest",
            ),
            (
                "quay.io/coreos/etcd:v3",
                "quay.io/coreos/etcd:v3",
                "quay.io/coreos/etcd:v3",
            ),
            (
                "localhost/foo",
                "localhost/foo:latest",
                "localhost/foo:latest",
            ),
            (
                "localhost:5000/foo/bar:tag",
                "localhost:5000/foo/bar:tag",
                "localhost:5000/foo/bar:tag",
            ),
            (
                "localhost:5000",
                "docker.io/library/localhost:5000",
                "localhost:5000",
            ),
            (
                "example.com:443/a_b__c-d--e.f:T_1.x-y",
                "example.com:443/a_b__c-d--e.f:T_1.x-y",
                "example.com:443/a_b__c-d--e.f:T_1.x-y",
            ),
            ("Foo/bar", "Foo/bar:latest", "Foo/bar:latest"),
            ("[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x:latest"),
        ];
        for (input, full, familiar) in cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), full, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(Reference::parse(&r.to_string()).unwrap(), r, "{input}");
        }
    }

    #[test]
    fn digests() {
        let h = hex();
        let r = Reference::parse(&format!("busybox@sha256:{h}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().hex(), h);
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/busybox@sha256:{h}")
        );
        assert_eq!(r.familiar(), format!("busybox@sha256:{h}"));

        let r = Reference::parse(&format!("host:5000/name:tag@sha256:{h}")).unwrap();
        assert_eq!(r.domain(), "host:5000");
        assert_eq!(r.path(), "name");
        assert_eq!(r.tag(), Some("tag"));
        assert!(r.digest().is_some());
        assert_eq!(r.to_string(), format!("host:5000/name:tag@sha256:{h}"));
        assert_eq!(r.with_digest(r.digest().unwrap().clone()).tag(), None);
        assert_eq!(r.repository().to_string(), "host:5000/name");
        assert_eq!(
            r.with_tag("v2").unwrap().to_string(),
            format!("host:5000/name:v2@sha256:{h}")
        );
        assert!(r.with_tag("-x").is_err());
    }

    #[test]
    fn normalized_has_no_default_tag() {
        let r = Reference::parse_normalized("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox");
        assert_eq!(r.tag(), None);
    }

    fn err(input: &str) -> String {
        match Reference::parse(input) {
            Ok(r) => panic!("{input:?} parsed as {r}"),
            Err(e @ Error::InvalidReference { .. }) => e.to_string(),
            Err(e) => panic!("{input:?}: unexpected error {e:?}"),
        }
    }

    #[test]
    fn errors_name_the_bad_part() {
        assert!(err("").contains("at least one component"));
        assert!(err("BusyBox").contains("\"library/BusyBox\" must be lowercase"));
        assert!(err("foo/Bar").contains("must be lowercase"));
        assert!(err("busybox:-bad").contains("invalid tag \"-bad\""));
        assert!(err("busybox:.bad").contains("invalid tag"));
        assert!(err(&format!("busybox:{}", "a".repeat(129))).contains("invalid tag"));
        assert!(Reference::parse(&format!("busybox:{}", "a".repeat(128))).is_ok());
        assert!(err("busybox:a b").contains("invalid tag"));
        assert!(err("busybox@sha256:abc").contains("invalid digest \"sha256:abc\""));
        assert!(err(&format!("busybox@md5:{}", hex())).contains("unsupported algorithm"));
        assert!(err(&format!("busybox@sha256:{}", hex().to_uppercase())).contains("lowercase hex"));
        assert!(err("a..b").contains("invalid path component \"a..b\""));
        assert!(err("a___b").contains("invalid path component"));
        assert!(err("-ab").contains("invalid path component"));
        assert!(err("ab-").contains("invalid path component"));
        assert!(err("foo//bar").contains("empty path component"));
        assert!(err("foo/").contains("empty path component"));
        assert!(err("exa_mple.com/foo").contains("invalid domain \"exa_mple.com\""));
        assert!(err("-example.com/foo").contains("invalid domain"));
        assert!(err("example.com:po/foo").contains("invalid port \"po\""));
        assert!(err("example.com:/foo").contains("invalid port"));
        assert!(err(&hex()).contains("64-byte hexadecimal"));
        assert!(err(&format!("{}/x", "a".repeat(250))).contains("255"));
        assert!(err("a@b@c").contains("invalid digest"));
    }

    #[test]
    fn path_components() {
        for ok in [
            "a",
            "a0",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "a.b_c__d-e",
        ] {
            assert!(path_component_ok(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "", ".", "a.", ".a", "a..b", "a._b", "a___b", "a-_b", "A", "a/b",
        ] {
            assert!(!path_component_ok(bad.as_bytes()), "{bad}");
        }
    }
}

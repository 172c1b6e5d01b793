//! Image metadata: OCI image indexes, manifests and configs, and Docker's
//! v2 schema 2 manifests and manifest lists, normalised into one
//! representation ([`Index`], [`Manifest`], [`ImageConfig`]); platform
//! selection from an index.
//!
//! Docker's schema 2 documents have the same shape as OCI's (the OCI format
//! grew out of them), so both are parsed with `oci-spec` and told apart by
//! their media types. Schema 1 manifests are refused.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use oci_spec::image as oci;
use serde::Deserialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::Compression;

/// Media types the image layer understands.
pub mod media_types {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_LAYER_ND: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
    pub const OCI_LAYER_ND_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    pub const OCI_LAYER_ND_ZSTD: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    pub const DOCKER_MANIFEST_V1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
    pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
}

use media_types as mt;

/// Which family a document comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Oci,
    Docker,
}

/// A content descriptor (`mediaType`, `digest`, `size`, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub platform: Option<Platform>,
    pub urls: Vec<String>,
    pub annotations: BTreeMap<String, String>,
}

/// A layer of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    pub descriptor: Descriptor,
    /// What the media type says (the bytes decide when it's applied).
    pub compression: Compression,
    /// Docker foreign / OCI non-distributable layers: fetched from `urls`
    /// and never pushed.
    pub foreign: bool,
}

/// An image manifest (OCI, or Docker schema 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub format: Format,
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Layer>,
    pub annotations: BTreeMap<String, String>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Index {
    pub format: Format,
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
    pub annotations: BTreeMap<String, String>,
}

/// A parsed manifest-ish document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Document {
    Index(Index),
    Manifest(Box<Manifest>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
    fs_layers: Option<serde_json::Value>,
}

fn invalid(what: &str, reason: impl Into<String>) -> Error {
    Error::InvalidDocument {
        what: what.to_string(),
        reason: reason.into(),
    }
}

/// Parses a manifest, index or manifest list. `media_type` is what the
/// source said the document is (a registry's Content-Type, the
/// descriptor that pointed to it); it must agree with the document's own
/// `mediaType` when both are present. Without either, the shape decides
/// (`manifests` → index, `config`/`layers` → manifest), as OCI allows.
pub fn parse_document(bytes: &[u8], media_type: Option<&str>) -> Result<Document> {
    let probe: Probe = serde_json::from_slice(bytes)
        .map_err(|e| invalid("manifest", format!("not a JSON object: {e}")))?;
    if probe.schema_version == Some(1) || probe.fs_layers.is_some() {
        return Err(Error::UnsupportedMediaType {
            media_type: media_type
                .or(probe.media_type.as_deref())
                .unwrap_or(mt::DOCKER_MANIFEST_V1)
                .to_string(),
            context: "Docker schema 1 manifests are not supported".into(),
        });
    }
    let hint = media_type.filter(|m| !m.is_empty() && !is_generic_json(m));
    let declared = match (hint, probe.media_type.as_deref()) {
        (Some(h), Some(d)) if h != d => {
            return Err(invalid(
                "manifest",
                format!("the document says it is {d:?} but was served as {h:?}"),
            ));
        }
        (Some(h), _) => Some(h.to_string()),
        (None, d) => d.map(str::to_string),
    };
    let kind = match declared.as_deref() {
        Some(mt::OCI_INDEX) => (Format::Oci, true),
        Some(mt::DOCKER_MANIFEST_LIST) => (Format::Docker, true),
        Some(mt::OCI_MANIFEST) => (Format::Oci, false),
        Some(mt::DOCKER_MANIFEST) => (Format::Docker, false),
        Some(mt::DOCKER_MANIFEST_V1 | mt::DOCKER_MANIFEST_V1_SIGNED) => {
            return Err(Error::UnsupportedMediaType {
                media_type: declared.unwrap_or_default(),
                context: "Docker schema 1 manifests are not supported".into(),
            });
        }
        Some(other) => {
            return Err(Error::UnsupportedMediaType {
                media_type: other.to_string(),
                context: "not an image manifest or index".into(),
            });
        }
        None if probe.manifests.is_some() => (Format::Oci, true),
        None if probe.config.is_some() || probe.layers.is_some() => (Format::Oci, false),
        None => {
            return Err(invalid(
                "manifest",
                "no mediaType and neither manifests nor layers",
            ));
        }
    };
    if probe.schema_version != Some(2) {
        return Err(invalid(
            "manifest",
            format!(
                "schemaVersion must be 2, is {}",
                probe
                    .schema_version
                    .map_or("missing".to_string(), |v| v.to_string())
            ),
        ));
    }
    // Digests first, so a bad one is named with its place in the document
    // (oci-spec's error only gives a line and column).
    let mut descs: Vec<(String, &serde_json::Value)> = Vec::new();
    if let Some(c) = &probe.config {
        descs.push(("config".into(), c));
    }
    for (key, list) in [("layers", &probe.layers), ("manifests", &probe.manifests)] {
        if let Some(serde_json::Value::Array(a)) = list {
            descs.extend(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| (format!("{key}[{i}]"), v)),
            );
        }
    }
    for (what, v) in descs {
        if let Some(d) = v.get("digest").and_then(|d| d.as_str()) {
            d.parse::<Digest>()
                .map_err(|e| invalid("manifest", format!("{what}.digest: {e}")))?;
        }
    }
    let media_type = declared.unwrap_or_else(|| {
        if kind.1 {
            mt::OCI_INDEX
        } else {
            mt::OCI_MANIFEST
        }
        .to_string()
    });
    match kind {
        (format, true) => {
            let idx = oci::ImageIndex::from_reader(bytes)
                .map_err(|e| invalid("image index", error_chain(&e)))?;
            let manifests = idx
                .manifests()
                .iter()
                .enumerate()
                .map(|(i, d)| descriptor(d, &format!("manifests[{i}]")))
                .collect::<Result<Vec<_>>>()?;
            Ok(Document::Index(Index {
                format,
                media_type,
                manifests,
                annotations: annotations(idx.annotations()),
            }))
        }
        (format, false) => {
            let m = oci::ImageManifest::from_reader(bytes)
                .map_err(|e| invalid("image manifest", error_chain(&e)))?;
            let config = descriptor(m.config(), "config")?;
            if !matches!(
                config.media_type.as_str(),
                mt::OCI_CONFIG | mt::DOCKER_CONFIG
            ) {
                return Err(Error::UnsupportedMediaType {
                    media_type: config.media_type,
                    context: "the manifest's config is not a container image config".into(),
                });
            }
            let layers = m
                .layers()
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let what = format!("layers[{i}]");
                    let descriptor = descriptor(d, &what)?;
                    let (compression, foreign) = layer_media_type(&descriptor.media_type)
                        .ok_or_else(|| Error::UnsupportedMediaType {
                            media_type: descriptor.media_type.clone(),
                            context: format!("{what} ({}) is not a tar layer", descriptor.digest),
                        })?;
                    Ok(Layer {
                        descriptor,
                        compression,
                        foreign,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Document::Manifest(Box::new(Manifest {
                format,
                media_type,
                config,
                layers,
                annotations: annotations(m.annotations()),
            })))
        }
    }
}

/// An error with its sources ("serde failed: invalid digest …").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn is_generic_json(m: &str) -> bool {
    matches!(m, "application/json" | "text/plain")
}

/// (compression, foreign) of a layer media type; None when it is not a tar
/// layer.
pub fn layer_media_type(m: &str) -> Option<(Compression, bool)> {
    Some(match m {
        mt::OCI_LAYER | mt::DOCKER_LAYER => (Compression::None, false),
        mt::OCI_LAYER_GZIP | mt::DOCKER_LAYER_GZIP => (Compression::Gzip, false),
        mt::OCI_LAYER_ZSTD | mt::DOCKER_LAYER_ZSTD => (Compression::Zstd, false),
        mt::OCI_LAYER_ND => (Compression::None, true),
        mt::OCI_LAYER_ND_GZIP | mt::DOCKER_FOREIGN_LAYER_GZIP => (Compression::Gzip, true),
        mt::OCI_LAYER_ND_ZSTD => (Compression::Zstd, true),
        _ => return None,
    })
}

fn annotations(a: &Option<std::collections::HashMap<String, String>>) -> BTreeMap<String, String> {
    a.as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn descriptor(d: &oci::Descriptor, what: &str) -> Result<Descriptor> {
    let digest = Digest::try_from(d.digest()).map_err(|e| invalid(what, e.to_string()))?;
    Ok(Descriptor {
        media_type: d.media_type().to_string(),
        digest,
        size: d.size(),
        platform: d.platform().as_ref().map(|p| Platform {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone().filter(|v| !v.is_empty()),
            os_version: p.os_version().clone(),
            os_features: p.os_features().clone().unwrap_or_default(),
        }),
        urls: d.urls().clone().unwrap_or_default(),
        annotations: annotations(d.annotations()),
    })
}

/// An image config (OCI `application/vnd.oci.image.config.v1+json` or
/// Docker `application/vnd.docker.container.image.v1+json`).
#[derive(Clone, Debug)]
pub struct ImageConfig {
    /// The digest of the config blob (the image id).
    pub digest: Digest,
    pub config: oci::ImageConfiguration,
    diff_ids: Vec<Digest>,
}

impl ImageConfig {
    /// Parses a config blob; its digest is computed from `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig> {
        let config = oci::ImageConfiguration::from_reader(bytes)
            .map_err(|e| invalid("image config", error_chain(&e)))?;
        if config.rootfs().typ() != "layers" {
            return Err(invalid(
                "image config",
                format!(
                    "rootfs.type must be \"layers\", is {:?}",
                    config.rootfs().typ()
                ),
            ));
        }
        let diff_ids = config
            .rootfs()
            .diff_ids()
            .iter()
            .enumerate()
            .map(|(i, d)| {
                d.parse::<Digest>()
                    .map_err(|e| invalid("image config", format!("rootfs.diff_ids[{i}]: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ImageConfig {
            digest: Digest::sha256(bytes),
            config,
            diff_ids,
        })
    }

    /// The uncompressed digests of the layers, bottom first.
    pub fn diff_ids(&self) -> &[Digest] {
        &self.diff_ids
    }

    /// The chain ids of the layers, bottom first (the snapshot ids).
    pub fn chain_ids(&self) -> Vec<Digest> {
        crate::snapshot::chain_ids(&self.diff_ids)
    }

    /// The platform the image was built for.
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.config.os().to_string(),
            architecture: self.config.architecture().to_string(),
            variant: self.config.variant().clone().filter(|v| !v.is_empty()),
            os_version: self.config.os_version().clone(),
            os_features: self.config.os_features().clone().unwrap_or_default(),
        }
    }
}

/// An `os/arch[/variant]` platform.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub os_version: Option<String>,
    pub os_features: Vec<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
            ..Platform::default()
        }
    }

    /// The platform of this machine (as Go names it): `linux/amd64`,
    /// `linux/arm64/v8`, …
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "arm" => "arm",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "loongarch64" => "loong64",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            other => other,
        };
        Platform::new("linux", arch, None).normalized()
    }

    /// Go/containerd's normalisation: `x86_64` is `amd64`, `aarch64` is
    /// `arm64`, arm64's default variant is `v8`, arm's is `v7`, variants
    /// are `vN`.
    pub fn normalized(&self) -> Platform {
        let os = self.os.to_ascii_lowercase();
        let mut variant = self.variant.clone().map(|v| v.to_ascii_lowercase());
        let arch = match self.architecture.to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" | "amd64" => {
                if variant.as_deref() == Some("v1") {
                    variant = None;
                }
                "amd64".to_string()
            }
            "i386" | "i486" | "i586" | "i686" | "386" => {
                variant = None;
                "386".to_string()
            }
            "aarch64" | "arm64" => {
                variant = match variant.as_deref() {
                    None | Some("8" | "v8") => Some("v8".to_string()),
                    Some(v) => Some(v.to_string()),
                };
                "arm64".to_string()
            }
            "armhf" => {
                variant = Some("v7".to_string());
                "arm".to_string()
            }
            "armel" => {
                variant = Some("v6".to_string());
                "arm".to_string()
            }
            "arm" => {
                variant = match variant.as_deref() {
                    None => Some("v7".to_string()),
                    Some(v @ ("5" | "6" | "7" | "8")) => Some(format!("v{v}")),
                    Some(v) => Some(v.to_string()),
                };
                "arm".to_string()
            }
            other => other.to_string(),
        };
        Platform {
            os,
            architecture: arch,
            variant,
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
        }
    }

    /// How well a `candidate` (from an index) fits this wanted platform:
    /// None if it can't run here, lower is better.
    pub fn match_rank(&self, candidate: &Platform) -> Option<u32> {
        let want = self.normalized();
        let have = candidate.normalized();
        if want.os != have.os || want.architecture != have.architecture {
            return None;
        }
        let num = |v: &Option<String>| {
            v.as_deref()
                .and_then(|v| v.strip_prefix('v'))
                .and_then(|n| n.parse::<u32>().ok())
        };
        match (&want.variant, &have.variant) {
            (a, b) if a == b => Some(0),
            // arm: a v7 machine runs v6 and v5 code; amd64: v3 runs v2, v1.
            _ if matches!(want.architecture.as_str(), "arm" | "amd64") => {
                let w = num(&want.variant).unwrap_or(1);
                let h = num(&have.variant).unwrap_or(1);
                if self.variant.is_none() && want.architecture == "amd64" {
                    // No variant asked for: any amd64 level will do, the
                    // baseline first.
                    Some(h)
                } else if h <= w {
                    Some(w - h)
                } else {
                    None
                }
            }
            _ => None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = Error;

    /// `os`, `os/arch` or `os/arch/variant` (docker's `--platform`); a
    /// missing architecture is the host's.
    fn from_str(s: &str) -> Result<Platform> {
        let bad = |reason: &str| Error::InvalidPlatform {
            platform: s.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        let ok_part = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        if parts.len() > 3 || !parts.iter().all(|p| ok_part(p)) {
            return Err(bad("expected os[/arch[/variant]]"));
        }
        let p = match parts.as_slice() {
            [os] => Platform {
                os: os.to_string(),
                ..Platform::host()
            },
            [os, arch] => Platform::new(os, arch, None),
            [os, arch, variant] => Platform::new(os, arch, Some(variant)),
            _ => return Err(bad("expected os[/arch[/variant]]")),
        };
        Ok(p.normalized())
    }
}

/// Picks the manifest of `index` (whose digest is `index_digest`, for the
/// error) for platform `want`. Entries without a platform are taken only
/// when nothing else fits (the caller checks the config); entries for
/// `unknown/unknown` (attestations) never match.
pub fn select_platform<'a>(
    index: &'a Index,
    index_digest: &Digest,
    want: &Platform,
) -> Result<&'a Descriptor> {
    let mut best: Option<(u32, &Descriptor)> = None;
    for d in &index.manifests {
        if !matches!(
            d.media_type.as_str(),
            mt::OCI_MANIFEST | mt::DOCKER_MANIFEST
        ) {
            continue;
        }
        let rank = match &d.platform {
            Some(p) => want.match_rank(p),
            None => Some(1000),
        };
        if let Some(r) = rank
            && best.is_none_or(|(b, _)| r < b)
        {
            best = Some((r, d));
        }
    }
    best.map(|(_, d)| d)
        .ok_or_else(|| Error::NoMatchingPlatform {
            wanted: want.to_string(),
            digest: index_digest.to_string(),
            available: {
                let mut v: Vec<String> = index
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref())
                    .filter(|p| p.os != "unknown")
                    .map(|p| p.to_string())
                    .collect();
                v.dedup();
                v
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    fn docker_manifest() -> String {
        format!(
            r#"{{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {{
      "mediaType": "application/vnd.docker.container.image.v1+json",
      "size": 1469,
      "digest": "sha256:{}"
   }},
   "layers": [
      {{
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": 2219949,
         "digest": "sha256:{}"
      }},
      {{
         "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
         "size": 5,
         "digest": "sha256:{}",
         "urls": ["https://example.invalid/layer"]
      }}
   ]
}}"#,
            h('a'),
            h('b'),
            h('c')
        )
    }

    #[test]
    fn docker_schema2_manifest() {
        let Document::Manifest(m) = parse_document(docker_manifest().as_bytes(), None).unwrap()
        else {
            panic!("not a manifest")
        };
        assert_eq!(m.format, Format::Docker);
        assert_eq!(m.config.digest.hex(), h('a'));
        assert_eq!(m.config.size, 1469);
        assert_eq!(m.layers.len(), 2);
        assert_eq!(m.layers[0].compression, Compression::Gzip);
        assert!(!m.layers[0].foreign);
        assert!(m.layers[1].foreign);
        assert_eq!(
            m.layers[1].descriptor.urls,
            ["https://example.invalid/layer"]
        );
        // Served with its own media type: fine; with another: refused.
        assert!(parse_document(docker_manifest().as_bytes(), Some(mt::DOCKER_MANIFEST)).is_ok());
        assert!(parse_document(docker_manifest().as_bytes(), Some("application/json")).is_ok());
        let e = parse_document(docker_manifest().as_bytes(), Some(mt::OCI_MANIFEST)).unwrap_err();
        assert!(e.to_string().contains("served as"), "{e}");
    }

    #[test]
    fn oci_manifest_without_media_type() {
        let j = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","size":2,"digest":"sha256:{}"}},
            "layers":[{{"mediaType":"{}","size":3,"digest":"sha256:{}"}},
                      {{"mediaType":"{}","size":3,"digest":"sha512:{}"}}],
            "annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}"#,
            mt::OCI_CONFIG,
            h('1'),
            mt::OCI_LAYER_ZSTD,
            h('2'),
            mt::OCI_LAYER,
            h('3').repeat(2)
        );
        let Document::Manifest(m) = parse_document(j.as_bytes(), None).unwrap() else {
            panic!()
        };
        assert_eq!(m.format, Format::Oci);
        assert_eq!(m.media_type, mt::OCI_MANIFEST);
        assert_eq!(m.layers[0].compression, Compression::Zstd);
        assert_eq!(m.layers[1].compression, Compression::None);
        assert_eq!(m.annotations["org.opencontainers.image.ref.name"], "v1");
    }

    #[test]
    fn refusals() {
        let schema1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        let e = parse_document(schema1.as_bytes(), None).unwrap_err();
        assert!(e.to_string().contains("schema 1"), "{e}");
        let e = parse_document(b"[1,2]", None).unwrap_err();
        assert!(e.to_string().contains("JSON"), "{e}");
        // A helm chart: not an image.
        let j = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","size":2,"digest":"sha256:{}"}},"layers":[]}}"#,
            mt::OCI_MANIFEST,
            h('1')
        );
        let e = parse_document(j.as_bytes(), None).unwrap_err();
        assert!(e.to_string().contains("helm"), "{e}");
        // A layer of an unknown type names the layer.
        let j = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","size":2,"digest":"sha256:{}"}},"layers":[{{"mediaType":"application/x-bzip2","size":1,"digest":"sha256:{}"}}]}}"#,
            mt::OCI_CONFIG,
            h('1'),
            h('2')
        );
        let e = parse_document(j.as_bytes(), None).unwrap_err();
        assert!(e.to_string().contains("layers[0]"), "{e}");
        // Digests are validated.
        let j = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","size":2,"digest":"sha256:abcd"}},"layers":[]}}"#,
            mt::OCI_CONFIG
        );
        let e = parse_document(j.as_bytes(), None).unwrap_err();
        assert!(e.to_string().contains("sha256:abcd"), "{e}");
        let e = parse_document(br#"{"schemaVersion":3,"manifests":[]}"#, None).unwrap_err();
        assert!(e.to_string().contains("schemaVersion"), "{e}");
        let e =
            parse_document(br#"{"schemaVersion":2,"mediaType":"text/html"}"#, None).unwrap_err();
        assert!(matches!(e, Error::UnsupportedMediaType { .. }), "{e}");
    }

    fn list() -> Index {
        let entry = |d: char, arch: &str, variant: Option<&str>, os: &str| {
            let v = variant.map_or(String::new(), |v| format!(r#","variant":"{v}""#));
            format!(
                r#"{{"mediaType":"{}","size":100,"digest":"sha256:{}","platform":{{"architecture":"{arch}","os":"{os}"{v}}}}}"#,
                mt::DOCKER_MANIFEST,
                h(d)
            )
        };
        let j = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{},{},{},{},{},{}]}}"#,
            mt::DOCKER_MANIFEST_LIST,
            entry('1', "amd64", None, "linux"),
            entry('2', "arm", Some("v6"), "linux"),
            entry('3', "arm", Some("v7"), "linux"),
            entry('4', "arm64", Some("v8"), "linux"),
            entry('5', "unknown", None, "unknown"),
            entry('6', "amd64", None, "windows"),
        );
        match parse_document(j.as_bytes(), None).unwrap() {
            Document::Index(i) => i,
            _ => panic!(),
        }
    }

    #[test]
    fn platform_selection() {
        let idx = list();
        assert_eq!(idx.format, Format::Docker);
        let d = Digest::sha256(b"list");
        let pick = |p: &str| {
            select_platform(&idx, &d, &p.parse().unwrap()).map(|m| m.digest.hex()[..1].to_string())
        };
        assert_eq!(pick("linux/amd64").unwrap(), "1");
        assert_eq!(pick("linux/x86_64").unwrap(), "1");
        assert_eq!(pick("linux/arm64").unwrap(), "4");
        assert_eq!(pick("linux/aarch64").unwrap(), "4");
        assert_eq!(pick("linux/arm64/v8").unwrap(), "4");
        assert_eq!(pick("linux/arm").unwrap(), "3");
        assert_eq!(pick("linux/arm/v7").unwrap(), "3");
        assert_eq!(pick("linux/arm/v6").unwrap(), "2");
        assert_eq!(pick("windows/amd64").unwrap(), "6");
        let e = pick("linux/arm/v5").unwrap_err().to_string();
        assert!(e.contains("linux/arm/v5"), "{e}");
        let e = pick("linux/s390x").unwrap_err().to_string();
        assert!(
            e.contains(
                "available: linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8, windows/amd64"
            ),
            "{e}"
        );
        assert!(!e.contains("unknown"), "{e}");
        assert_eq!(
            select_platform(&idx, &d, &Platform::host())
                .unwrap()
                .digest
                .hex()[..1],
            *match Platform::host().architecture.as_str() {
                "amd64" => "1",
                "arm64" => "4",
                _ => "?",
            }
        );
    }

    #[test]
    fn platform_strings() {
        assert_eq!(
            "linux/amd64".parse::<Platform>().unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            "linux/arm64".parse::<Platform>().unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            "linux/armhf".parse::<Platform>().unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!("linux".parse::<Platform>().unwrap().os, "linux");
        for bad in ["", "linux/", "a/b/c/d", "linux/amd 64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(Platform::host().to_string(), "linux/amd64");
        }
    }

    #[test]
    fn docker_config_parses() {
        let diff = h('d');
        let j = format!(
            r##"{{"architecture":"amd64","os":"linux","docker_version":"24.0.0",
            "config":{{"Hostname":"","Env":["PATH=/bin"],"Cmd":["sh"],"Labels":null,"Volumes":null,
                       "ExposedPorts":{{"80/tcp":{{}}}},"Entrypoint":null,"OnBuild":null}},
            "container_config":{{"Cmd":["/bin/sh","-c","#(nop) CMD [\"sh\"]"]}},
            "created":"2024-01-01T00:00:00Z",
            "history":[{{"created":"2024-01-01T00:00:00Z","created_by":"ADD file"}}],
            "rootfs":{{"type":"layers","diff_ids":["sha256:{diff}"]}}}}"##
        );
        let c = ImageConfig::parse(j.as_bytes()).unwrap();
        assert_eq!(c.diff_ids().len(), 1);
        assert_eq!(c.chain_ids(), c.diff_ids());
        assert_eq!(c.platform().to_string(), "linux/amd64");
        assert_eq!(c.digest, Digest::sha256(j.as_bytes()));
        let cfg = c.config.config().as_ref().unwrap();
        assert_eq!(cfg.cmd().as_ref().unwrap(), &["sh"]);
        assert_eq!(cfg.exposed_ports().as_ref().unwrap(), &["80/tcp"]);

        let bad = j.replace("\"layers\"", "\"other\"");
        assert!(ImageConfig::parse(bad.as_bytes()).is_err());
        let bad = j.replace(&format!("sha256:{diff}"), "sha256:12");
        let e = ImageConfig::parse(bad.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("diff_ids[0]"), "{e}");
    }
}

//! Layers made distributable for a push: an image whose layers are stored
//! uncompressed (a `docker save` archive, `import`, a commit) gets a gzip
//! blob per such layer, made once and remembered by diff_id under
//! `<root>/compressed/`, and a manifest that lists those blobs. A second
//! push of the same image (or of another image sharing the layer) finds
//! them and compresses nothing.

use std::fs;
use std::io::{self, Read, Write};

use serde_json::Value;

use crate::digest::Digest;
use crate::error::{Context, Error, Result};
use crate::image::MANIFEST_LIMIT;
use crate::images::{ImageRecord, ImageStore};
use crate::layer::Compression;
use crate::manifest::{Document, layer_media_type, media_types as mt, parse_document};
use crate::store::{BlobInfo, unique_name};

/// The manifest to push for an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Distributable {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub media_type: String,
    /// Layers that were compressed by this call (not found in the cache).
    pub compressed: Vec<Digest>,
}

/// The image's manifest with every uncompressed, distributable layer
/// replaced by its gzip blob (made now or found in the cache); the
/// manifest as stored when there is none. The new manifest and blobs are
/// in the content store, the manifest is not yet referenced by any record
/// (the caller records it once pushed).
pub fn distributable_manifest(images: &ImageStore, image: &ImageRecord) -> Result<Distributable> {
    let content = images.content();
    let bytes = content.read_blob(&image.manifest, MANIFEST_LIMIT)?;
    let Document::Manifest(m) = parse_document(&bytes, None)? else {
        return Err(Error::InvalidDocument {
            what: format!("image {}", image.id),
            reason: "its manifest is an index".into(),
        });
    };
    let config_bytes = content.read_blob(&m.config.digest, crate::image::CONFIG_LIMIT)?;
    let config = crate::manifest::ImageConfig::parse(&config_bytes)?;
    let mut doc: Value = serde_json::from_slice(&bytes).map_err(|e| Error::InvalidDocument {
        what: format!("manifest {}", image.manifest),
        reason: e.to_string(),
    })?;
    let mut compressed = Vec::new();
    let mut changed = false;
    for (i, layer) in m.layers.iter().enumerate() {
        if !matches!(
            layer_media_type(&layer.descriptor.media_type),
            Some((Compression::None, false))
        ) {
            continue;
        }
        let diff_id = config
            .diff_ids()
            .get(i)
            .ok_or_else(|| Error::InvalidDocument {
                what: format!("image {}", image.id),
                reason: format!("no diff_id for layer {i}"),
            })?;
        let (blob, fresh) = gzip_layer(images, &layer.descriptor.digest, diff_id)?;
        if fresh {
            compressed.push(layer.descriptor.digest.clone());
        }
        let gz_type = if layer.descriptor.media_type == mt::DOCKER_LAYER {
            mt::DOCKER_LAYER_GZIP
        } else {
            mt::OCI_LAYER_GZIP
        };
        let entry = &mut doc["layers"][i];
        entry["mediaType"] = Value::String(gz_type.into());
        entry["digest"] = Value::String(blob.digest.to_string());
        entry["size"] = Value::from(blob.size);
        changed = true;
    }
    if !changed {
        return Ok(Distributable {
            digest: image.manifest.clone(),
            media_type: m.media_type,
            bytes,
            compressed,
        });
    }
    let out = serde_json::to_vec(&doc).map_err(|e| Error::InvalidDocument {
        what: format!("manifest {}", image.manifest),
        reason: e.to_string(),
    })?;
    let info = content.write_blob_bytes(&out, None)?;
    Ok(Distributable {
        bytes: out,
        digest: info.digest,
        media_type: m.media_type,
        compressed,
    })
}

/// The gzip blob of the uncompressed layer `blob` (diff_id `diff_id`):
/// from the cache when its blob is still in the store, else made and
/// cached. True when it was made now.
fn gzip_layer(images: &ImageStore, blob: &Digest, diff_id: &Digest) -> Result<(BlobInfo, bool)> {
    let content = images.content();
    let dir = images.root().join("compressed");
    let entry = dir.join(diff_id.hex());
    if let Ok(s) = fs::read_to_string(&entry)
        && let Ok(d) = s.trim().parse::<Digest>()
        && let Ok(size) = content.blob_size(&d)
    {
        return Ok((BlobInfo { digest: d, size }, false));
    }
    let src = content.open_blob(blob)?;
    let mut writer = content.writer(None, None)?;
    {
        let mut gz = flate2::write::GzEncoder::new(&mut writer, flate2::Compression::default());
        let mut src = io::BufReader::with_capacity(256 * 1024, src);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = src.read(&mut buf).at(content.blob_path(blob))?;
            if n == 0 {
                break;
            }
            gz.write_all(&buf[..n]).map_err(|e| Error::Sys {
                what: format!("compressing layer {blob}"),
                err: e,
            })?;
        }
        gz.finish().map_err(|e| Error::Sys {
            what: format!("compressing layer {blob}"),
            err: e,
        })?;
    }
    let info = writer.commit()?;
    fs::create_dir_all(&dir).at(&dir)?;
    let tmp = dir.join(format!(".{}", unique_name("tmp-")));
    fs::write(&tmp, format!("{}\n", info.digest)).at(&tmp)?;
    fs::rename(&tmp, &entry).at(&entry)?;
    Ok((info, true))
}

//! Plain HTTP(S) downloads, for the builder's `ADD https://…`: one GET (redirects followed,
//! the proxy variables honoured, the system's CA roots), streamed to a writer and hashed as
//! it goes. Blocking: a current-thread runtime is made and dropped per call, so no thread of
//! it outlives the call (the builder clones containers from this process afterwards).

use std::io::Write;

use berth_image::Digest;
use berth_image::digest::Hasher;

use crate::error::{Error, Result};

/// What [`fetch`] downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// sha256 of the body.
    pub digest: Digest,
    pub size: u64,
    /// The `Last-Modified` header, as sent.
    pub last_modified: Option<String>,
}

/// GETs `url` (http or https) into `out`; more than `limit` bytes is an error.
pub fn fetch(url: &str, out: &mut dyn Write, limit: u64) -> Result<Fetched> {
    let parsed = url::Url::parse(url).map_err(|e| Error::InvalidUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::InvalidUrl {
            url: url.to_string(),
            reason: "only http and https URLs can be fetched".into(),
        });
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| Error::Io {
            what: "starting the I/O runtime".into(),
            err,
        })?;
    let http = |err| Error::Http {
        method: "GET".into(),
        url: url.to_string(),
        err,
    };
    let r = rt.block_on(async {
        let client = reqwest::Client::builder().build().map_err(http)?;
        let mut resp = client.get(parsed).send().await.map_err(http)?;
        if !resp.status().is_success() {
            return Err(Error::Status {
                method: "GET".into(),
                url: url.to_string(),
                status: resp.status().as_u16(),
                body: String::new(),
            });
        }
        let last_modified = resp
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut hasher = Hasher::new(berth_image::Algorithm::Sha256);
        let mut size = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(http)? {
            size += chunk.len() as u64;
            if size > limit {
                return Err(Error::Protocol {
                    url: url.to_string(),
                    reason: format!("more than {limit} bytes"),
                });
            }
            hasher.update(&chunk);
            out.write_all(&chunk).map_err(|err| Error::Io {
                what: format!("writing what {url} sent"),
                err,
            })?;
        }
        Ok(Fetched {
            digest: hasher.finish(),
            size,
            last_modified,
        })
    });
    // The runtime's threads (a DNS lookup's) are joined here.
    drop(rt);
    r
}

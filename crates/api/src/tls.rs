//! TLS for `tcp://` listeners, as dockerd's flags: `--tls` (the server's
//! certificate) and `--tlsverify` (clients must show a certificate signed
//! by `--tlscacert`). rustls with ring, the stack the registry client
//! already links.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::Error;

/// The files of `--tlscert`, `--tlskey`, `--tlscacert`, and `--tlsverify`.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: Option<PathBuf>,
    pub verify: bool,
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Tls {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let v: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(path, e))?;
    if v.is_empty() {
        return Err(bad(path, "no certificate in the file"));
    }
    Ok(v)
}

/// The acceptor of a TLS listener.
pub fn acceptor(f: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(&f.cert)?;
    let key = PrivateKeyDer::from_pem_file(&f.key).map_err(|e| bad(&f.key, e))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&f.cert, e))?;
    let builder = if f.verify {
        let ca = f.ca.as_deref().ok_or_else(|| Error::Host {
            host: "--tlsverify".into(),
            reason: "needs --tlscacert (the CA that signs the clients' certificates)".into(),
        })?;
        let mut roots = rustls::RootCertStore::empty();
        for c in certs(ca)? {
            roots.add(c).map_err(|e| bad(ca, e))?;
        }
        let v =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| bad(ca, e))?;
        builder.with_client_cert_verifier(v)
    } else {
        builder.with_no_client_auth()
    };
    let cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| bad(&f.key, e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

//! Errors of the registry client.

use berth_image::Digest;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A registry name or URL that does not make a valid URL.
    #[error("invalid registry URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// A repository name, tag or digest that is not one.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },

    /// The transport failed (connection refused, TLS, dropped body, …).
    #[error("{method} {url}: {}", error_chain(.err))]
    Http {
        method: String,
        url: String,
        #[source]
        err: reqwest::Error,
    },

    /// The registry answered with a status the operation does not expect.
    #[error("{method} {url}: {status}{}", body_suffix(.body))]
    Status {
        method: String,
        url: String,
        status: u16,
        body: String,
    },

    /// Authentication failed or was refused (after the one retry).
    #[error("unauthorized at {registry}: {detail}")]
    Unauthorized { registry: String, detail: String },

    /// A `WWW-Authenticate` challenge or a token answer that does not parse.
    #[error("invalid auth challenge from {registry}: {detail}")]
    InvalidChallenge { registry: String, detail: String },

    /// Content whose digest is not what it was asked or announced to be.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },

    /// A registry answer that breaks the distribution spec.
    #[error("invalid response from {url}: {reason}")]
    Protocol { url: String, reason: String },

    /// A layer that could not be downloaded, checked or unpacked.
    #[error("layer {digest}: {err}")]
    Layer {
        digest: Digest,
        #[source]
        err: Box<Error>,
    },

    /// TLS material that cannot be used.
    #[error("TLS setup for {registry}: {reason}")]
    Tls { registry: String, reason: String },

    /// A configuration or credentials file that cannot be used.
    #[error("{path}: {reason}")]
    Config { path: String, reason: String },

    /// The content store or a document failed.
    #[error(transparent)]
    Image(#[from] berth_image::Error),

    #[error("{what}: {err}")]
    Io {
        what: String,
        #[source]
        err: std::io::Error,
    },
}

impl Error {
    /// Whether trying again may help: the transport failed (refused,
    /// reset, timed out, cut short) or the registry answered 429/5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Http { err, .. } => {
                err.is_connect() || err.is_timeout() || err.is_body() || err.is_request()
            }
            Error::Status { status, .. } => {
                *status == 429 || *status == 408 || (*status >= 500 && *status != 501)
            }
            Error::Io { err, .. } => matches!(
                err.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::TimedOut
            ),
            Error::Layer { err, .. } => err.is_transient(),
            _ => false,
        }
    }
}

/// An error and its causes, `: `-joined (reqwest's own message leaves out
/// the cause: "error sending request" without the refused connection or
/// the untrusted certificate).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// The error body as a person reads it: the distribution spec's
/// `{"errors": [{"code", "message", "detail"}]}` the way docker prints it
/// (`manifest unknown: manifest unknown`), anything else as sent.
fn body_suffix(body: &str) -> String {
    if body.is_empty() {
        return String::new();
    }
    match readable_errors(body) {
        Some(text) => format!(": {text}"),
        None => format!(": {body}"),
    }
}

fn readable_errors(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let errors = v.get("errors")?.as_array()?;
    let parts: Vec<String> = errors
        .iter()
        .filter_map(|e| {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let code = code.to_ascii_lowercase().replace('_', " ");
            let message = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
            match (code.is_empty(), message.is_empty()) {
                (true, true) => None,
                (false, true) => Some(code),
                (true, false) => Some(message.to_string()),
                (false, false) => Some(format!("{code}: {message}")),
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_errors_read_as_docker_prints_them() {
        let e = Error::Status {
            method: "GET".into(),
            url: "http://127.0.0.1:5000/v2/x/manifests/nope".into(),
            status: 404,
            body: r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}}]}"#.into(),
        };
        assert_eq!(
            e.to_string(),
            "GET http://127.0.0.1:5000/v2/x/manifests/nope: 404: manifest unknown: manifest unknown"
        );
        let two = body_suffix(
            r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"},{"code":"UNAUTHORIZED"}]}"#,
        );
        assert_eq!(
            two,
            ": denied: requested access to the resource is denied; unauthorized"
        );
        assert_eq!(body_suffix("plain text"), ": plain text");
        assert_eq!(body_suffix(r#"{"other": 1}"#), r#": {"other": 1}"#);
    }
}

//! Errors: the server's own (typed, for `berth serve`), and a request's,
//! answered as dockerd does (`{"message": "..."}` with its status codes).

use std::io;
use std::path::PathBuf;

use hyper::{Response, StatusCode, header};

use crate::body::{Body, full};

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("listening on {addr}: {err}")]
    Listen { addr: String, err: io::Error },
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: io::Error },
    #[error("invalid host {host:?}: {reason}")]
    Host { host: String, reason: String },
    #[error("TLS file {path}: {reason}")]
    Tls { path: PathBuf, reason: String },
    #[error("the async runtime: {0}")]
    Runtime(io::Error),
}

/// A request's failure: docker's status code and message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    pub fn response(&self) -> Response<Body> {
        let body = serde_json::json!({ "message": self.message }).to_string();
        let mut r = Response::new(full(body + "\n"));
        *r.status_mut() = self.status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        r
    }
}

impl From<berth_engine::Error> for ApiError {
    fn from(e: berth_engine::Error) -> ApiError {
        use berth_engine::Error as E;
        match e {
            E::NoSuchContainer(x) => ApiError::not_found(format!("No such container: {x}")),
            E::NoSuchImage(x) => ApiError::not_found(format!("No such image: {x}")),
            E::NoSuchVolume(x) => ApiError::not_found(format!("get {x}: no such volume")),
            E::NoSuchNetwork(x) => ApiError::not_found(format!("network {x} not found")),
            E::NameInUse { name, id } => ApiError::conflict(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
            )),
            E::BadState { .. } | E::InUse(_) => ApiError::conflict(e.to_string()),
            E::InvalidName(_)
            | E::Ambiguous(_)
            | E::Invalid { .. }
            | E::BadConfig(_)
            | E::BadFilter(_) => ApiError::bad(e.to_string()),
            // The program is missing or cannot run: the request's fault.
            E::Start { msg, code } if code == 126 || code == 127 => ApiError::bad(msg),
            E::Image(i) => i.into(),
            e => ApiError::internal(e.to_string()),
        }
    }
}

impl From<berth_image::Error> for ApiError {
    fn from(e: berth_image::Error) -> ApiError {
        use berth_image::Error as E;
        match e {
            E::ImageNotFound(x) => ApiError::not_found(format!("No such image: {x}")),
            E::ImageConflict { .. } => ApiError::conflict(e.to_string()),
            E::InvalidReference { .. } | E::InvalidPlatform { .. } => ApiError::bad(e.to_string()),
            e => ApiError::internal(e.to_string()),
        }
    }
}

impl From<io::Error> for ApiError {
    fn from(e: io::Error) -> ApiError {
        ApiError::internal(e.to_string())
    }
}

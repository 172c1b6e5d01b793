//! The runtime's typed errors. Each names the container, path or field.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// runc's wording: containerd and podman match on it.
    #[error("container does not exist")]
    NotExist(String),
    /// runc's wording.
    #[error("container not running")]
    NotRunning(String),
    #[error("container with id {0} already exists")]
    Exists(String),
    #[error("invalid container id {0:?}: {1}")]
    InvalidId(String, &'static str),
    #[error("cannot {action} container {id} in state {status}")]
    BadState {
        id: String,
        action: &'static str,
        status: String,
    },
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: io::Error },
    #[error("{what}: {err}")]
    Sys { what: String, err: io::Error },
    #[error("invalid config {path}: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error("invalid spec: {0}")]
    Spec(String),
    #[error("{0}")]
    Container(String),
    #[error("hook {hook} ({path}) failed: {msg}")]
    Hook {
        hook: &'static str,
        path: PathBuf,
        msg: String,
    },
    #[error("cgroup {controller}: {msg}")]
    Cgroup { controller: String, msg: String },
    #[error("state of container {id}: {msg}")]
    State { id: String, msg: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a path or a description to io errors.
pub trait Context<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
    fn what(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|err| Error::Io {
            path: path.into(),
            err,
        })
    }
    fn what(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|err| Error::Sys { what: what(), err })
    }
}

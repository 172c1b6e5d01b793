//! The engine's typed errors. Each names the container, image, path or
//! flag it is about; the CLI maps them to docker's exit codes.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    #[error("no such image: {0}")]
    NoSuchImage(String),
    #[error("no such volume: {0}")]
    NoSuchVolume(String),
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    #[error("name {name:?} is already in use by container {id}")]
    NameInUse { name: String, id: String },
    #[error("invalid container name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    #[error("multiple containers match {0:?}: use a longer id")]
    Ambiguous(String),
    #[error("container {id} is {state}: {what}")]
    BadState {
        id: String,
        state: String,
        what: String,
    },
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    /// The program could not be run (docker's 126) or was not found (127).
    #[error("{msg}")]
    Start { msg: String, code: i32 },
    #[error("state database {path}: {err}")]
    Db { path: PathBuf, err: rusqlite::Error },
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: io::Error },
    #[error("{what}: {err}")]
    Sys { what: String, err: io::Error },
    #[error(transparent)]
    Image(#[from] berth_image::Error),
    #[error(transparent)]
    Runtime(#[from] berth_runtime::Error),
    #[error(transparent)]
    Rootless(#[from] crate::rootless::RootlessError),
    #[error(transparent)]
    Slirp(#[from] berth_net::slirp::SlirpError),
    /// An object something else still uses (a volume a container mounts).
    #[error("{0}")]
    InUse(String),
    /// Options that do not go together (`--restart` with `--rm`…).
    #[error("{0}")]
    BadConfig(String),
    /// A `--filter`/`filters` entry the command does not know.
    #[error("{0}")]
    BadFilter(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Invalid {
        what: what.into(),
        reason: reason.into(),
    }
}

/// Adds a path or a description to io errors.
pub(crate) trait Context<T> {
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

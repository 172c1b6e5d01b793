//! Berth's OCI runtime library: everything `berth-oci` does, as functions.
//!
//! The library is synchronous and single-threaded around clone/fork by
//! design: the child of clone3 runs Rust code of this crate until execve,
//! which is only sound while no other thread can hold a lock.

pub mod cgroups;
pub mod container;
pub mod devices_bpf;
pub mod error;
pub mod features;
pub mod fs;
pub mod hooks;
pub mod mounts;
pub mod namespaces;
pub mod process;
pub mod resources;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod specgen;
pub mod state;
pub mod stats;
pub mod sys;

pub use container::{CreateOpts, ExecOpts, Runtime};
pub use error::{Error, Result};
pub use state::{Container, OciState, Status};

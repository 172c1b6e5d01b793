//! `berth-init`, the pid 1 of `berth run --init`, as bytes: the program
//! (`crates/nolibc`, a static binary with no libc, built by `build.rs`) is
//! embedded so that the engine can put it into any container without
//! depending on files installed beside `berth`.

/// The static `berth-init` executable.
pub const BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-init"));

//! Berth's OCI runtime library: everything `berth-oci` does, as functions.
//!
//! The library is synchronous and single-threaded around clone/fork by
//! design: the child of clone3 runs Rust code of this crate until execve,
//! which is only sound while no other thread can hold a lock.

pub mod cgroups;
pub mod container;
pub mod devices_bpf;
pub mod error;
pub mod exeseal;
pub mod features;
pub mod foreground;
pub mod fs;
pub mod hooks;
pub mod idmap;
pub mod lsm;
pub mod mounts;
pub mod namespaces;
pub mod netdev;
pub mod process;
pub mod resources;
pub mod rootfs;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod specgen;
pub mod state;
pub mod stats;
pub mod sys;

pub use container::{CreateOpts, ExecOpts, Runtime};
pub use error::{Error, Result};
pub use state::{Container, OciState, Status};

/// Phase timing for `--debug`: prints the time since the process started
/// at a few points of create/start, to see where a container's start-up
/// time goes.
pub mod timing {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    static START: OnceLock<Instant> = OnceLock::new();
    static ON: AtomicBool = AtomicBool::new(false);

    /// Whether `BERTH_DEBUG` asks for debug output: set and not empty
    /// (`1`, or `/path` to append the lines to).
    pub fn requested() -> bool {
        std::env::var_os("BERTH_DEBUG").is_some_and(|v| !v.is_empty())
    }

    /// Turns phase output on (and starts the clock).
    pub fn enable() {
        START.get_or_init(Instant::now);
        ON.store(true, Ordering::Relaxed);
    }

    /// Notes a phase on stderr when enabled.
    pub fn phase(name: &str) {
        if ON.load(Ordering::Relaxed) {
            let t = START.get_or_init(Instant::now).elapsed();
            let rss = std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmHWM:"))
                        .map(|l| l[6..].trim().to_string())
                })
                .unwrap_or_default();
            // Wall-clock too (seconds.µs within the minute), so that the
            // lines of several processes (CLI, monitor, init) line up.
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let line = format!(
                "berth[{}]: {:>2}.{:06} {:>7}us {name} (peak rss {rss})\n",
                std::process::id(),
                wall.as_secs() % 60,
                wall.subsec_micros(),
                t.as_micros()
            );
            // BERTH_DEBUG=/path: appended there (processes whose stderr is
            // /dev/null, like the engine's monitor, show up too).
            match std::env::var_os("BERTH_DEBUG").filter(|v| v.to_string_lossy().starts_with('/')) {
                Some(path) => {
                    use std::io::Write as _;
                    if let Ok(mut f) = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                    {
                        let _ = f.write_all(line.as_bytes());
                    }
                }
                None => eprint!("{line}"),
            }
        }
    }
}

//! What the escape tests of berth-oci (tests/security.rs) and of the engine
//! (crates/cli/tests/escapes.rs, which includes this file) share: the attack
//! programs built from the C sources here, a glibc image's libraries, and a
//! full pipe that keeps a victim process alive on purpose.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::process::Command;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/attacks");

fn attacks_dir() -> PathBuf {
    // The engine's tests include this file from crates/cli: the sources are
    // beside it either way.
    let here = Path::new(DIR);
    if here.join("exe_overwrite.c").is_file() {
        here.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../oci-cli/tests/attacks")
    }
}

fn cc(args: &[&str], src: &str, out: &Path) {
    let o = Command::new("cc")
        .args(args)
        .arg("-o")
        .arg(out)
        .arg(attacks_dir().join(src))
        .output()
        .expect("running cc (Debian's gcc and libc6-dev)");
    assert!(
        o.status.success(),
        "cc {src}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// exe_overwrite.c (CVE-2019-5736's attacker, a static program) built into `dir`.
pub fn build_exe_overwrite(dir: &Path) -> PathBuf {
    let out = dir.join("exe_overwrite");
    cc(&["-static", "-O2"], "exe_overwrite.c", &out);
    out
}

/// breakout_probe.c (the engine-level escape attempts) built into `dir`.
pub fn build_breakout_probe(dir: &Path) -> PathBuf {
    let out = dir.join("breakout_probe");
    cc(&["-static", "-O2"], "breakout_probe.c", &out);
    out
}

/// evil_preload.c (CVE-2019-5736's hostile library) built into `dir`.
pub fn build_evil_preload(dir: &Path) -> PathBuf {
    let out = dir.join("evil.so");
    cc(&["-shared", "-fPIC", "-O2"], "evil_preload.c", &out);
    out
}

/// The shared libraries and the dynamic loader `bin` needs (`ldd`): what a
/// glibc image has, so the host's binary can run inside the container.
pub fn dynamic_deps(bin: &Path) -> Vec<PathBuf> {
    let o = Command::new("ldd").arg(bin).output().expect("running ldd");
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

/// Copies [`dynamic_deps`] of `bin` into `root` at the same paths.
pub fn copy_dynamic_deps(bin: &Path, root: &Path) {
    for lib in dynamic_deps(bin) {
        let dest = root.join(lib.strip_prefix("/").unwrap_or(&lib));
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(&lib, &dest).unwrap_or_else(|e| panic!("copying {}: {e}", lib.display()));
    }
}

/// A pipe whose buffer is already full: a process that writes to the write end
/// blocks until the test reads from the read end. Keeps a victim alive on purpose.
pub fn full_pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh descriptors from pipe2.
    let (r, w) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // SAFETY: F_GETFL/F_SETFL on our own descriptor.
    let fl = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK) };
    let chunk = [b'x'; 4096];
    let mut wr = &w;
    while io::Write::write(&mut wr, &chunk).is_ok() {}
    // SAFETY: as above; back to blocking for the process that gets it.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETFL, fl) };
    (r, w)
}

/// Reads `r` to its end on a thread of its own (unblocks whoever writes to a full pipe).
pub fn drain(r: File) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = r;
        let _ = io::copy(&mut r, &mut io::sink());
    })
}

/// After a CVE-2019-5736 attack: `binary` (the runtime the attack aimed at) has the bytes
/// it had `before`, the attacker (exe_overwrite.c, evil_preload.c) reported no write, and
/// none of what it captured (`CAPTURED ... link=PATH`) was that binary.
pub fn assert_binary_kept(binary: &Path, before: &[u8], said: &str, report: &str) {
    assert!(
        before == fs::read(binary).unwrap(),
        "the container overwrote {}:\n{report}",
        binary.display()
    );
    assert!(!said.contains("WROTE"), "a write got through:\n{report}");
    let host_path = binary.to_string_lossy().into_owned();
    for line in said.lines().filter(|l| l.starts_with("CAPTURED")) {
        let link = line.split("link=").nth(1).unwrap_or("");
        assert!(
            !link.contains(&host_path),
            "the host's binary was in reach ({line}):\n{report}"
        );
    }
}

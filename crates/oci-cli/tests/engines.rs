//! berth-oci as the runtime of the engines people already run: podman, containerd (`ctr`)
//! and dockerd, each installed from Debian's packages and driving a busybox container
//! through berth-oci.
//!
//! * Every test works in its own temporary directory: the engine's storage, state, sockets,
//!   runtime root and logs all live there, and its containers go into a cgroup of its own.
//!   Nothing of the host's engines is used or touched (no default socket, no /var/lib/docker,
//!   no bridge, no iptables: `--network none`, `--bridge=none`, `--iptables=false`).
//! * The engines run berth-oci through a small shell wrapper that appends every call's argv
//!   and exit status to `berth-oci.trace` in that directory; a failing test prints it, with
//!   the tail of the daemons' logs.
//! * Cleanup runs when the test ends, also when it panics: containers removed through the
//!   engine, daemons stopped by pid (SIGTERM, then SIGKILL), any process still naming the
//!   temporary directory (conmon, shims) killed, the test's cgroups emptied and removed,
//!   mounts under the directory detached, then the directory removed.
//! * The packages come from `scripts/test.sh`; run alone, a test installs its package with
//!   apt-get (services kept from starting by a temporary `policy-rc.d`) and prints
//!   `skipped: ...` only if that install fails.
//!
//! The image is a busybox rootfs (Debian's busybox-static) made by the tests: `podman import`
//! of a tar of it, and for containerd and dockerd an archive with both an OCI layout
//! (index.json) and docker's manifest.json, for `ctr image import` and `docker load`.

mod common;

use common::{Output, Spawned, cgroup_dirs, cgroup_v2_only, host, populate_rootfs, skip, unique};
use serde_json::json;
use std::cell::RefCell;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// One engine command (they are quick; the first `docker run` compiles a seccomp profile).
const ENGINE_TIMEOUT: Duration = Duration::from_secs(90);
/// apt-get install of an engine.
const APT_TIMEOUT: Duration = Duration::from_secs(900);
/// How long a daemon may take to answer on its socket.
const DAEMON_START: Duration = Duration::from_secs(60);
/// PATH of the engines: Debian's packaged binaries, never /usr/local.
const STD_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

const IMAGE_REPO: &str = "berth-bb";
const IMAGE_TAG: &str = "test";

// ---------------------------------------------------------------------------------------
// commands
// ---------------------------------------------------------------------------------------

/// Run to completion with stdin from /dev/null, killed after `timeout`.
fn run_t(mut c: Command, timeout: Duration) -> Output {
    c.stdin(Stdio::null());
    Spawned::spawn(c).wait(timeout)
}

fn run(c: Command) -> Output {
    run_t(c, ENGINE_TIMEOUT)
}

fn command<S: AsRef<OsStr>>(prog: impl AsRef<OsStr>, args: &[S]) -> Command {
    let mut c = Command::new(prog);
    c.args(args).env("PATH", STD_PATH);
    c
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Single-quote `s` for sh.
fn shq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `argv` run under `script -qec` so that it has a terminal (for `-it` / `-t`).
fn in_pty(argv: &[String], env: &[(String, String)]) -> Command {
    let line = argv.iter().map(|a| shq(a)).collect::<Vec<_>>().join(" ");
    let mut c = command("script", &["-qec", &line, "/dev/null"]);
    // An open, silent stdin: with /dev/null (as under CI) script passes EOF
    // to the terminal at once, and `-i` engines may hang up before the
    // container's output has been copied.
    c.stdin(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    c.env("SHELL", "/bin/sh");
    c
}

/// An engine's command line: program, its fixed leading arguments and environment.
#[derive(Clone)]
struct Cli {
    argv: Vec<String>,
    env: Vec<(String, String)>,
}

impl Cli {
    fn full(&self, args: &[&str]) -> Vec<String> {
        let mut v = self.argv.clone();
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let v = self.full(args);
        let mut c = command(&v[0], &v[1..]);
        for (k, val) in &self.env {
            c.env(k, val);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        run(self.cmd(args))
    }

    /// The command with a terminal on its stdio (`script`).
    fn run_tty(&self, args: &[&str]) -> Output {
        run(in_pty(&self.full(args), &self.env))
    }

    fn spawn(&self, args: &[&str]) -> Spawned {
        let mut c = self.cmd(args);
        c.stdin(Stdio::null());
        Spawned::spawn(c)
    }
}

// ---------------------------------------------------------------------------------------
// packages
// ---------------------------------------------------------------------------------------

/// Replaces /usr/sbin/policy-rc.d with one that refuses every service start while a
/// package is installed (docker.io's postinst would start a dockerd through
/// /etc/init.d/docker otherwise); puts back what was there when dropped.
struct NoServiceStarts {
    backup: Option<PathBuf>,
}

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

impl NoServiceStarts {
    fn new() -> Result<Self, String> {
        let p = Path::new(POLICY_RC_D);
        let backup = if p.exists() || p.is_symlink() {
            let b = PathBuf::from(format!("{POLICY_RC_D}.berth-engines-backup"));
            fs::rename(p, &b).map_err(|e| format!("move {POLICY_RC_D} aside: {e}"))?;
            Some(b)
        } else {
            None
        };
        let guard = NoServiceStarts { backup };
        fs::write(
            p,
            "#!/bin/sh\n# berth engines tests: no service starts during apt-get\nexit 101\n",
        )
        .map_err(|e| format!("write {POLICY_RC_D}: {e}"))?;
        fs::set_permissions(p, fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod {POLICY_RC_D}: {e}"))?;
        Ok(guard)
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        let _ = fs::remove_file(POLICY_RC_D);
        if let Some(b) = &self.backup {
            let _ = fs::rename(b, POLICY_RC_D);
        }
    }
}

/// Make sure `files` (absolute paths of the packages' binaries) exist, installing `pkgs`
/// with apt-get if not. Err (the reason) only if they cannot be installed.
fn ensure_packages(pkgs: &[&str], files: &[&str]) -> Result<(), String> {
    static APT: Mutex<()> = Mutex::new(());
    let _one_at_a_time = APT.lock().unwrap_or_else(|e| e.into_inner());
    let missing = || files.iter().filter(|f| !Path::new(f).exists()).count();
    if missing() == 0 {
        return Ok(());
    }
    eprintln!("engines: installing {pkgs:?} with apt-get");
    let _policy = NoServiceStarts::new()?;
    let install = || {
        let mut c = command(
            "apt-get",
            &["install", "-y", "-qq", "--no-install-recommends"],
        );
        c.args(pkgs).env("DEBIAN_FRONTEND", "noninteractive");
        run_t(c, APT_TIMEOUT)
    };
    let mut o = install();
    if !o.success() {
        let mut up = command("apt-get", &["update", "-qq"]);
        up.env("DEBIAN_FRONTEND", "noninteractive");
        let _ = run_t(up, APT_TIMEOUT);
        o = install();
    }
    if !o.success() {
        return Err(format!(
            "apt-get install {} failed:\n{}",
            pkgs.join(" "),
            o.stderr.trim()
        ));
    }
    if missing() > 0 {
        return Err(format!(
            "{pkgs:?} installed but one of {files:?} is missing"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// host directories the engines create outside their roots
// ---------------------------------------------------------------------------------------

/// containerd's shims bind their sockets in /run/containerd/s and dockerd creates
/// /run/docker/plugins whatever their roots are. Those the tests created are removed (if
/// empty) when the last daemon of this test binary is gone.
struct HostDirs {
    active: usize,
    created: Vec<PathBuf>,
}

static HOST_DIRS: Mutex<HostDirs> = Mutex::new(HostDirs {
    active: 0,
    created: Vec::new(),
});

const ENGINE_HOST_DIRS: [&str; 4] = [
    "/run/containerd",
    "/run/containerd/s",
    "/run/docker",
    "/run/docker/plugins",
];

fn host_dirs_enter() {
    let mut h = HOST_DIRS.lock().unwrap_or_else(|e| e.into_inner());
    if h.active == 0 {
        h.created = ENGINE_HOST_DIRS
            .iter()
            .map(PathBuf::from)
            .filter(|p| !p.exists())
            .collect();
    }
    h.active += 1;
}

fn host_dirs_leave() {
    let mut h = HOST_DIRS.lock().unwrap_or_else(|e| e.into_inner());
    h.active = h.active.saturating_sub(1);
    if h.active == 0 {
        for p in h.created.iter().rev() {
            let _ = fs::remove_dir(p); // only if empty
        }
        h.created.clear();
    }
}

/// Network interfaces an engine would create on the host if it set up networking.
const ENGINE_BRIDGES: [&str; 3] = ["docker0", "cni-podman0", "podman0"];

fn engine_bridges() -> Vec<String> {
    ENGINE_BRIDGES
        .iter()
        .filter(|n| Path::new("/sys/class/net").join(n).exists())
        .map(|s| s.to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------
// the work directory and its cleanup
// ---------------------------------------------------------------------------------------

struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn spawn(name: &str, mut c: Command, log: PathBuf) -> Daemon {
        let f = File::create(&log).expect("daemon log");
        c.stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f);
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Daemon {
            name: name.to_string(),
            child,
            log,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let v: Vec<&str> = text.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, then SIGKILL after `grace`.
    fn stop(&mut self, grace: Duration) {
        if !self.alive() {
            return;
        }
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Hook = Box<dyn FnOnce()>;

/// A test's temporary directory, the berth-oci wrapper, the daemons it started, the cgroups
/// its containers use, and the cleanup of all of them.
struct Work {
    dir: Option<tempfile::TempDir>,
    /// Directories with short paths (see [`Work::short_dir`]), cleaned up like `dir`.
    short: RefCell<Vec<tempfile::TempDir>>,
    path: PathBuf,
    /// The berth-oci the engines are given (the logging wrapper).
    runtime: PathBuf,
    trace: PathBuf,
    daemons: RefCell<Vec<Daemon>>,
    /// Run first (LIFO), daemons still up: remove containers through the engine.
    before_stop: RefCell<Vec<Hook>>,
    /// Run after daemons and leftover processes are gone (LIFO).
    after_stop: RefCell<Vec<Hook>>,
    /// Cgroup paths (relative to each hierarchy) emptied and removed at the end.
    cgroups: RefCell<Vec<String>>,
    bridges_before: Vec<String>,
}

impl Work {
    fn new(engine: &str) -> Work {
        let dir = tempfile::Builder::new()
            .prefix(&format!("berth-{engine}-"))
            .tempdir()
            .expect("tempdir");
        let path = dir.path().to_path_buf();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        let trace = path.join("berth-oci.trace");
        let runtime = match std::env::var_os("BERTH_ENGINES_NO_WRAPPER") {
            Some(v) if !v.is_empty() => common::bin(),
            _ => {
                let bin_dir = path.join("bin");
                fs::create_dir(&bin_dir).unwrap();
                let w = bin_dir.join("berth-oci");
                let script = format!(
                    "#!/bin/sh\n\
                     # berth-oci with every call logged (argv, then exit status)\n\
                     t={trace}\n\
                     {{ printf '%s [%s]' \"$(date +%T.%N)\" \"$$\"; for a in \"$@\"; do printf ' %s' \"$a\"; done; echo; }} >> \"$t\"\n\
                     {bin} \"$@\"\n\
                     rc=$?\n\
                     echo \"$(date +%T.%N) [$$] exit $rc\" >> \"$t\"\n\
                     exit $rc\n",
                    trace = shq(trace.to_str().unwrap()),
                    bin = shq(common::bin().to_str().expect("UTF-8 path")),
                );
                fs::write(&w, script).unwrap();
                fs::set_permissions(&w, fs::Permissions::from_mode(0o755)).unwrap();
                w
            }
        };
        Work {
            dir: Some(dir),
            short: RefCell::new(Vec::new()),
            path,
            runtime,
            trace,
            daemons: RefCell::new(Vec::new()),
            before_stop: RefCell::new(Vec::new()),
            after_stop: RefCell::new(Vec::new()),
            cgroups: RefCell::new(Vec::new()),
            bridges_before: engine_bridges(),
        }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    fn s(&self, rel: &str) -> String {
        self.p(rel).to_str().unwrap().to_string()
    }

    fn mkdir(&self, rel: &str) -> String {
        let p = self.p(rel);
        fs::create_dir_all(&p).unwrap();
        p.to_str().unwrap().to_string()
    }

    fn runtime(&self) -> &str {
        self.runtime.to_str().unwrap()
    }

    /// A directory with a path as short as /tmp/bXXXXXX, for state roots that hold unix
    /// sockets (sun_path is 108 bytes: see `dockerd_long_exec_root`).
    fn short_dir(&self) -> String {
        let d = tempfile::Builder::new()
            .prefix("b")
            .tempdir_in("/tmp")
            .expect("tempdir");
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let p = d.path().to_str().unwrap().to_string();
        self.short.borrow_mut().push(d);
        p
    }

    /// Every directory of the test.
    fn dirs(&self) -> Vec<PathBuf> {
        let mut v = vec![self.path.clone()];
        v.extend(self.short.borrow().iter().map(|d| d.path().to_path_buf()));
        v
    }

    /// A fresh cgroup name (no leading slash), removed at the end of the test.
    fn cgroup(&self, what: &str) -> String {
        let name = unique(&format!("berth-eng-{what}"));
        self.cgroups.borrow_mut().push(name.clone());
        name
    }

    fn before_stop(&self, f: impl FnOnce() + 'static) {
        self.before_stop.borrow_mut().push(Box::new(f));
    }

    fn after_stop(&self, f: impl FnOnce() + 'static) {
        self.after_stop.borrow_mut().push(Box::new(f));
    }

    fn add_daemon(&self, d: Daemon) {
        self.daemons.borrow_mut().push(d);
    }

    /// Poll `ready` until it succeeds; panics with the daemon's log if it dies or times out.
    fn wait_daemon(&self, name: &str, mut ready: impl FnMut() -> Output) {
        let deadline = Instant::now() + DAEMON_START;
        loop {
            let o = ready();
            if o.success() {
                return;
            }
            let mut ds = self.daemons.borrow_mut();
            let d = ds
                .iter_mut()
                .find(|d| d.name == name)
                .expect("daemon registered");
            if !d.alive() {
                panic!("{name} exited while starting; its log:\n{}", d.log_tail(60));
            }
            if Instant::now() > deadline {
                panic!(
                    "{name} does not answer after {DAEMON_START:?}:\n{o}\n--- {name} log ---\n{}",
                    d.log_tail(60)
                );
            }
            drop(ds);
            sleep(Duration::from_millis(200));
        }
    }

    fn trace_text(&self) -> String {
        fs::read_to_string(&self.trace).unwrap_or_default()
    }

    /// The subcommands berth-oci was called with, in order.
    fn runtime_verbs(&self) -> Vec<String> {
        self.trace_text()
            .lines()
            .filter(|l| !l.contains("] exit "))
            .filter_map(|l| {
                let mut it = l.split(' ').skip(2); // time, [pid]
                while let Some(a) = it.next() {
                    match a {
                        "--root" | "--log" | "--log-format" | "--criu" | "--rootless" => {
                            it.next();
                        }
                        a if a.starts_with('-') => {}
                        a => return Some(a.to_string()),
                    }
                }
                None
            })
            .collect()
    }

    /// Assert that the engine drove berth-oci through each of `verbs`.
    #[track_caller]
    fn assert_runtime_called(&self, verbs: &[&str]) {
        if self.runtime != self.p("bin/berth-oci") {
            return; // no wrapper, no trace
        }
        let seen = self.runtime_verbs();
        for v in verbs {
            assert!(
                seen.iter().any(|s| s == v),
                "the engine never ran `berth-oci {v}`; calls seen: {seen:?}"
            );
        }
    }

    /// Assert that no engine bridge appeared on the host.
    #[track_caller]
    fn assert_host_network_untouched(&self) {
        let new: Vec<String> = engine_bridges()
            .into_iter()
            .filter(|b| !self.bridges_before.contains(b))
            .collect();
        assert!(
            new.is_empty(),
            "the engine created host interfaces {new:?}: networking must stay off"
        );
    }

    /// Processes (other than this one) whose command line names the work directory:
    /// conmon, containerd shims, daemons.
    fn processes_naming_dir(&self) -> Vec<i32> {
        let me = std::process::id() as i32;
        let dirs = self.dirs();
        let needles: Vec<&[u8]> = dirs
            .iter()
            .map(|d| d.to_str().unwrap().as_bytes())
            .collect();
        let mut v = Vec::new();
        for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if needles
                .iter()
                .any(|n| cmd.windows(n.len()).any(|w| w == *n))
            {
                v.push(pid);
            }
        }
        v
    }

    fn cleanup(&mut self) {
        let hooks: Vec<Hook> = self.before_stop.borrow_mut().drain(..).rev().collect();
        for h in hooks {
            h();
        }
        for d in self.daemons.borrow_mut().iter_mut().rev() {
            d.stop(Duration::from_secs(15));
        }
        // conmon, shims, anything else still running from our directory.
        for _ in 0..5 {
            let pids = self.processes_naming_dir();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            sleep(Duration::from_millis(200));
        }
        // Container processes left in our cgroups, then the cgroups.
        for cg in self.cgroups.borrow().iter() {
            for _ in 0..5 {
                let mut any = false;
                for d in cgroup_dirs(cg) {
                    for pid in procs_under(&d) {
                        any = true;
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
                if !any {
                    break;
                }
                sleep(Duration::from_millis(200));
            }
            for d in cgroup_dirs(cg) {
                remove_cgroup_tree(&d);
            }
        }
        // Mounts under the work directory (overlay rootfs, shm, bind mounts...).
        for _ in 0..3 {
            let targets: Vec<String> = self.dirs().iter().flat_map(|d| mounts_under(d)).collect();
            if targets.is_empty() {
                break;
            }
            for t in targets {
                if let Ok(c) = std::ffi::CString::new(t) {
                    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                }
            }
        }
        let hooks: Vec<Hook> = self.after_stop.borrow_mut().drain(..).rev().collect();
        for h in hooks {
            h();
        }
        for d in self.short.borrow_mut().drain(..) {
            let p = d.path().to_path_buf();
            if let Err(e) = d.close() {
                eprintln!("engines: removing {}: {e}", p.display());
            }
        }
        if let Some(d) = self.dir.take()
            && let Err(e) = d.close()
        {
            eprintln!("engines: removing {}: {e}", self.path.display());
        }
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- berth-oci calls ({}) ---\n{}",
                self.trace.display(),
                self.trace_text()
            );
            for d in self.daemons.borrow().iter() {
                eprintln!("--- {} log (tail) ---\n{}", d.name, d.log_tail(40));
            }
        }
        self.cleanup();
    }
}

/// Pids in cgroup directory `d` and below.
fn procs_under(d: &Path) -> Vec<i32> {
    let mut v: Vec<i32> = fs::read_to_string(d.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for e in fs::read_dir(d).into_iter().flatten().flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            v.extend(procs_under(&e.path()));
        }
    }
    v
}

fn remove_cgroup_tree(dir: &Path) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_cgroup_tree(&e.path());
        }
    }
    for _ in 0..50 {
        if fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        sleep(Duration::from_millis(20));
    }
}

/// Mount points under `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<String> {
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<String> = mi
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|t| {
            t.replace("\\040", " ")
                .replace("\\011", "\t")
                .replace("\\012", "\n")
                .replace("\\134", "\\")
        })
        .filter(|t| Path::new(t).starts_with(dir))
        .collect();
    v.sort_by_key(|t| std::cmp::Reverse(t.len()));
    v.dedup();
    v
}

// ---------------------------------------------------------------------------------------
// images
// ---------------------------------------------------------------------------------------

/// A tar of a busybox rootfs (bin/busybox plus applet symlinks, /etc/passwd...).
fn rootfs_tar(w: &Work) -> PathBuf {
    let root = w.p("rootfs");
    populate_rootfs(&root);
    let tar = w.p("rootfs.tar");
    run(command(
        "tar",
        &[
            "--numeric-owner",
            "-C",
            root.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ],
    ))
    .ok();
    tar
}

fn sha256_file(p: &Path) -> String {
    let o = run(command("sha256sum", &[p.to_str().unwrap()]));
    o.ok();
    o.stdout.split_whitespace().next().unwrap().to_string()
}

/// Store `bytes` as a blob of the layout at `dir`; returns (digest hex, size).
fn put_blob(dir: &Path, bytes: &[u8]) -> (String, u64) {
    let tmp = dir.join("blob.tmp");
    fs::write(&tmp, bytes).unwrap();
    let hex = sha256_file(&tmp);
    fs::rename(&tmp, dir.join("blobs/sha256").join(&hex)).unwrap();
    (hex, bytes.len() as u64)
}

/// A one-layer image archive of `layer` (an uncompressed tar) that is both an OCI image
/// layout (oci-layout, index.json, blobs/sha256) and a docker-archive (manifest.json), so
/// `ctr image import` and `docker load` take it. Named docker.io/library/berth-bb:test.
fn image_archive(w: &Work, layer: &Path) -> PathBuf {
    let dir = w.p("image");
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let layer_hex = sha256_file(layer);
    let layer_size = fs::metadata(layer).unwrap().len();
    fs::copy(layer, dir.join("blobs/sha256").join(&layer_hex)).unwrap();
    let config = json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"]
        },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{layer_hex}")] },
        "history": [{ "created_by": "berth-oci engines test: busybox rootfs" }]
    });
    let (cfg_hex, cfg_size) = put_blob(&dir, &serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{cfg_hex}"),
            "size": cfg_size
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{layer_hex}"),
            "size": layer_size
        }]
    });
    let (man_hex, man_size) = put_blob(&dir, &serde_json::to_vec(&manifest).unwrap());
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{man_hex}"),
            "size": man_size,
            "annotations": {
                "io.containerd.image.name": format!("docker.io/library/{IMAGE_REPO}:{IMAGE_TAG}"),
                "org.opencontainers.image.ref.name": IMAGE_TAG
            }
        }]
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let docker_manifest = json!([{
        "Config": format!("blobs/sha256/{cfg_hex}"),
        "RepoTags": [format!("{IMAGE_REPO}:{IMAGE_TAG}")],
        "Layers": [format!("blobs/sha256/{layer_hex}")]
    }]);
    fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&docker_manifest).unwrap(),
    )
    .unwrap();
    let tar = w.p("image.tar");
    run(command(
        "tar",
        &[
            "--numeric-owner",
            "-C",
            dir.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            "oci-layout",
            "index.json",
            "manifest.json",
            "blobs",
        ],
    ))
    .ok();
    tar
}

// ---------------------------------------------------------------------------------------
// cgroup checks
// ---------------------------------------------------------------------------------------

/// The cgroup path of `pid` for v1 `controller` (or the unified one on v2), with the
/// directory it is in.
fn cgroup_of(pid: i32, controller: &str) -> Option<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for l in text.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctls, path) = (f.next()?, f.next()?, f.next()?);
        let rel = path.trim_start_matches('/');
        if cgroup_v2_only() {
            if ctls.is_empty() {
                return Some(Path::new("/sys/fs/cgroup").join(rel));
            }
        } else if ctls.split(',').any(|c| c == controller) {
            return Some(Path::new("/sys/fs/cgroup").join(controller).join(rel));
        }
    }
    None
}

/// Whether the cgroup of `pid` is frozen (freezer.state on v1, cgroup.events on v2).
fn frozen(pid: i32) -> Option<bool> {
    let d = cgroup_of(pid, "freezer")?;
    if cgroup_v2_only() {
        let ev = fs::read_to_string(d.join("cgroup.events")).ok()?;
        Some(ev.lines().any(|l| l.trim() == "frozen 1"))
    } else {
        let st = fs::read_to_string(d.join("freezer.state")).ok()?;
        Some(st.trim() == "FROZEN")
    }
}

/// (file, value) of the CPU weight of `pid`'s cgroup, with the value a cgroup has when
/// nobody set it: cpu.shares 1024 on v1, cpu.weight 100 on v2.
fn cpu_weight(pid: i32) -> Option<(PathBuf, String, &'static str)> {
    let d = cgroup_of(pid, "cpu")?;
    let (file, default) = if cgroup_v2_only() {
        (d.join("cpu.weight"), "100")
    } else {
        (d.join("cpu.shares"), "1024")
    };
    let v = fs::read_to_string(&file).ok()?;
    Some((file, v.trim().to_string(), default))
}

#[track_caller]
fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    assert!(
        common::wait_until(timeout, &mut f),
        "timed out waiting for {what}"
    );
}

/// The `--ulimit` values podman is given: its defaults (nofile 1048576) are above the hard
/// limits of some hosts, where raising them fails without CAP_SYS_RESOURCE.
fn ulimit_args() -> Vec<String> {
    let hard = |res| {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        unsafe { libc::getrlimit(res, &mut r) };
        r.rlim_max
    };
    let nofile = hard(libc::RLIMIT_NOFILE).min(20000);
    let nproc = hard(libc::RLIMIT_NPROC).min(32768);
    vec![
        "--ulimit".into(),
        format!("nofile={nofile}:{nofile}"),
        "--ulimit".into(),
        format!("nproc={nproc}:{nproc}"),
    ]
}

/// A script for a long-running container that exits with `code` on SIGTERM and prints
/// "ready" first.
fn term_script(code: i32) -> String {
    format!("trap 'echo got-term; exit {code}' TERM; echo ready; while :; do sleep 0.1; done")
}

// ---------------------------------------------------------------------------------------
// podman
// ---------------------------------------------------------------------------------------

#[test]
fn podman_run_tty_exec_pause_stop() {
    if let Err(e) = ensure_packages(&["podman"], &["/usr/bin/podman", "/usr/bin/conmon"]) {
        return skip(&format!("podman cannot be installed: {e}"));
    }
    let w = Work::new("podman");
    let tmp = w.mkdir("tmp");
    let net = w.mkdir("net");
    let conf = w.p("containers.conf");
    // netns = "none": even a command without --network none sets up no CNI bridge.
    // lock_type = "file": locks in tmp_dir, not in the host's shared /dev/shm segment.
    fs::write(
        &conf,
        format!(
            "[containers]\nnetns = \"none\"\n\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             lock_type = \"file\"\ntmp_dir = \"{tmp}\"\n\n\
             [network]\nnetwork_config_dir = \"{net}\"\n"
        ),
    )
    .unwrap();
    let podman = Cli {
        argv: [
            "/usr/bin/podman",
            "--root",
            &w.mkdir("storage"),
            "--runroot",
            &w.mkdir("runroot"),
            "--tmpdir",
            &tmp,
            "--network-config-dir",
            &net,
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--runtime",
            w.runtime(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        env: vec![
            ("CONTAINERS_CONF".into(), conf.to_str().unwrap().into()),
            ("TMPDIR".into(), tmp.clone()),
        ],
    };
    {
        // Podman keeps berth-oci's state in berth-oci's default root (see
        // docs/integration.md); delete whatever podman left there.
        let p = podman.clone();
        w.before_stop(move || {
            let ids = p.run(&["ps", "-aq", "--no-trunc"]).stdout;
            let _ = p.run(&["rm", "-af", "-t", "0"]);
            for id in ids.split_whitespace() {
                let _ = run_t(
                    command(common::bin(), &["delete", "--force", id]),
                    Duration::from_secs(20),
                );
            }
        });
    }
    // `podman import` keeps a blob-info cache in /var/lib/containers/cache whatever --root
    // is (containers/image's default for root); remove it if this test made it.
    if !Path::new("/var/lib/containers").exists() {
        w.after_stop(|| {
            let _ = fs::remove_file("/var/lib/containers/cache/blob-info-cache-v1.boltdb");
            let _ = fs::remove_dir("/var/lib/containers/cache");
            let _ = fs::remove_dir("/var/lib/containers");
        });
    }
    let cgroup_parent = format!("/{}", w.cgroup("podman"));
    let image = format!("localhost/{IMAGE_REPO}:{IMAGE_TAG}");

    let tar = rootfs_tar(&w);
    podman.run(&["import", tar.to_str().unwrap(), &image]).ok();

    let run_args = |extra: &[&str], cmd: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["run".into()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(["--network", "none", "--cgroup-parent", &cgroup_parent].map(String::from));
        v.extend(ulimit_args());
        v.push(image.clone());
        v.extend(cmd.iter().map(|s| s.to_string()));
        v
    };
    // 1. run --rm ... echo ok
    let o = podman.run(&refs(&run_args(&["--rm"], &["echo", "ok"])));
    o.ok();
    assert_eq!(o.out(), "ok", "podman run output:\n{o}");

    // The exit status comes back.
    let o = podman.run(&refs(&run_args(&["--rm"], &["sh", "-c", "exit 3"])));
    o.code_is(3);

    // 2. -it: the terminal goes through --console-socket.
    // The short pause before exiting: podman's conmon can lose the last
    // output of a terminal container that exits at once (runc too, ~1 in
    // 10 here; the faster the runtime, the more often).
    let o = podman.run_tty(&refs(&run_args(
        &["--rm", "-it"],
        &["sh", "-c", "tty; echo tty-ok; sleep 0.3"],
    )));
    o.ok();
    assert!(
        o.stdout.contains("/dev/pts/") && o.stdout.contains("tty-ok"),
        "podman run -it: expected a /dev/pts terminal:\n{o}"
    );

    // 3. A detached container: exec, exec -it, pause/unpause, stop.
    let name = unique("bb");
    let o = podman.run(&refs(&run_args(
        &["-d", "--name", &name],
        &["sh", "-c", &term_script(0)],
    )));
    o.ok();
    let pid: i32 = podman
        .run(&["inspect", "-f", "{{.State.Pid}}", &name])
        .out()
        .parse()
        .expect("podman inspect pid");
    assert!(pid > 0);

    let o = podman.run(&["exec", &name, "sh", "-c", "echo exec-ok; exit 5"]);
    o.code_is(5);
    assert_eq!(o.out(), "exec-ok", "podman exec:\n{o}");

    let o = podman.run_tty(&["exec", "-it", &name, "sh", "-c", "tty; sleep 0.3"]);
    o.ok();
    assert!(o.stdout.contains("/dev/pts/"), "podman exec -it:\n{o}");

    podman.run(&["pause", &name]).ok();
    assert_eq!(
        podman
            .run(&["inspect", "-f", "{{.State.Status}}", &name])
            .out(),
        "paused"
    );
    assert_eq!(
        frozen(pid),
        Some(true),
        "cgroup of {pid} is not frozen after pause"
    );
    podman.run(&["unpause", &name]).ok();
    assert_eq!(
        podman
            .run(&["inspect", "-f", "{{.State.Status}}", &name])
            .out(),
        "running"
    );
    assert_eq!(
        frozen(pid),
        Some(false),
        "cgroup of {pid} still frozen after unpause"
    );

    // stop: SIGTERM through `berth-oci kill`; the trap exits 0 well before the timeout.
    let t0 = Instant::now();
    podman.run(&["stop", "-t", "30", &name]).ok();
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "podman stop took {:?}: SIGTERM did not reach the container",
        t0.elapsed()
    );
    assert_eq!(
        podman
            .run(&[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}}",
                &name
            ])
            .out(),
        "exited 0"
    );
    let id = podman
        .run(&["inspect", "-f", "{{.Id}}", &name])
        .out()
        .to_string();
    podman.run(&["rm", &name]).ok();
    assert!(
        !Path::new("/run/berth-oci").join(&id).exists(),
        "berth-oci state of {id} left after podman rm"
    );

    w.assert_runtime_called(&[
        "create", "start", "exec", "pause", "resume", "kill", "delete",
    ]);
    w.assert_host_network_untouched();
}

// ---------------------------------------------------------------------------------------
// containerd
// ---------------------------------------------------------------------------------------

struct Containerd {
    sock: String,
}

/// Start a containerd of its own under `w` (root, state, sockets in the work directory;
/// CRI, opt and the snapshotters it cannot use disabled).
fn start_containerd(w: &Work) -> Containerd {
    let root = w.mkdir("containerd/root");
    let state = w.mkdir("containerd/state");
    let sock = w.s("containerd/containerd.sock");
    let config = w.p("containerd/config.toml");
    fs::write(
        &config,
        format!(
            "version = 2\n\
             root = \"{root}\"\n\
             state = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.internal.v1.opt\", \
             \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \
             \"io.containerd.snapshotter.v1.devmapper\", \"io.containerd.snapshotter.v1.aufs\", \
             \"io.containerd.tracing.processor.v1.otlp\", \"io.containerd.internal.v1.tracing\"]\n\
             [grpc]\n  address = \"{sock}\"\n\
             [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [debug]\n  address = \"\"\n\
             [metrics]\n  address = \"\"\n"
        ),
    )
    .unwrap();
    host_dirs_enter();
    w.after_stop(host_dirs_leave);
    // Shims killed by the cleanup leave their sockets in /run/containerd/s.
    let st = PathBuf::from(&state);
    w.after_stop(move || {
        let base = st.join("io.containerd.runtime.v2.task");
        for ns in fs::read_dir(&base).into_iter().flatten().flatten() {
            for c in fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                if let Ok(a) = fs::read_to_string(c.path().join("address"))
                    && let Some(p) = a.trim().strip_prefix("unix://")
                {
                    let _ = fs::remove_file(p);
                }
            }
        }
    });
    w.add_daemon(Daemon::spawn(
        "containerd",
        command(
            "/usr/bin/containerd",
            &["--config", config.to_str().unwrap()],
        ),
        w.p("containerd/log"),
    ));
    let probe = sock.clone();
    w.wait_daemon("containerd", || {
        run_t(
            command("/usr/bin/ctr", &["--address", &probe, "version"]),
            Duration::from_secs(10),
        )
    });
    Containerd { sock }
}

/// containerd of its own with berth-oci as the runc shim's binary (ctr's `--runc-binary`),
/// the test image imported, and a ctr for a namespace of its own.
struct CtrEnv {
    _cd: Containerd,
    ctr: Cli,
    ns: String,
    runc_root: String,
    fifo: String,
    image: String,
    runtime: String,
}

impl CtrEnv {
    fn new(w: &Work) -> CtrEnv {
        let cd = start_containerd(w);
        // ctr puts a container in cgroup /<namespace>/<id>: a unique namespace keeps them apart.
        let ns = w.cgroup("ctr");
        let ctr = Cli {
            argv: ["/usr/bin/ctr", "--address", &cd.sock, "--namespace", &ns]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            env: vec![],
        };
        {
            let c = ctr.clone();
            w.before_stop(move || {
                let ids = c.run(&["containers", "ls", "-q"]).stdout;
                for id in ids.split_whitespace() {
                    let _ = c.run(&["task", "kill", "-s", "SIGKILL", id]);
                    let _ = c.run(&["task", "delete", "-f", id]);
                    let _ = c.run(&["containers", "delete", id]);
                }
            });
        }
        let runc_root = w.mkdir("runc-root");
        let fifo = w.mkdir("fifo");
        let image = format!("docker.io/library/{IMAGE_REPO}:{IMAGE_TAG}");
        let layer = rootfs_tar(w);
        let archive = image_archive(w, &layer);
        let o = ctr.run(&["images", "import", archive.to_str().unwrap()]);
        o.ok();
        assert!(
            ctr.run(&["images", "ls", "-q"]).stdout.contains(&image),
            "ctr images import did not create {image}:\n{o}"
        );
        CtrEnv {
            _cd: cd,
            ctr,
            ns,
            runc_root,
            fifo,
            image,
            runtime: w.runtime().to_string(),
        }
    }

    /// `ctr run EXTRA… --runtime io.containerd.runc.v2 --runc-binary berth-oci … IMAGE ID CMD…`
    fn run_args(&self, extra: &[&str], id: &str, cmd: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec!["run".into()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(
            [
                "--runtime",
                "io.containerd.runc.v2",
                "--runc-binary",
                &self.runtime,
                "--runc-root",
                &self.runc_root,
                "--fifo-dir",
                &self.fifo,
                &self.image,
                id,
            ]
            .map(String::from),
        );
        v.extend(cmd.iter().map(|s| s.to_string()));
        v
    }
}

fn containerd_available() -> Result<(), String> {
    ensure_packages(
        &["containerd"],
        &[
            "/usr/bin/containerd",
            "/usr/bin/ctr",
            "/usr/bin/containerd-shim-runc-v2",
        ],
    )
}

#[test]
fn containerd_ctr_run_tty_exec_pause_kill() {
    if let Err(e) = containerd_available() {
        return skip(&format!("containerd cannot be installed: {e}"));
    }
    let w = Work::new("containerd");
    let env = CtrEnv::new(&w);
    let ctr = &env.ctr;
    let run_args = |extra: &[&str], id: &str, cmd: &[&str]| env.run_args(extra, id, cmd);
    let (runc_root, fifo, ns) = (&env.runc_root, &env.fifo, &env.ns);

    // 1. ctr run --rm ... echo ok
    let o = ctr.run(&refs(&run_args(&["--rm"], &unique("t"), &["echo", "ok"])));
    o.ok();
    assert_eq!(o.out(), "ok", "ctr run output:\n{o}");

    // The exit status comes back.
    let o = ctr.run(&refs(&run_args(
        &["--rm"],
        &unique("t"),
        &["sh", "-c", "exit 3"],
    )));
    o.code_is(3);

    // 2. -t: the shim's console socket.
    let o = ctr.run_tty(&refs(&run_args(
        &["--rm", "-t"],
        &unique("t"),
        &["sh", "-c", "tty; echo tty-ok; sleep 0.3"],
    )));
    o.ok();
    assert!(
        o.stdout.contains("/dev/pts/") && o.stdout.contains("tty-ok"),
        "ctr run -t: expected a /dev/pts terminal:\n{o}"
    );

    // 3. A task in the foreground of one ctr; exec, pause/resume, kill from others.
    let id = unique("t");
    let mut fg = ctr.spawn(&refs(&run_args(
        &["--rm"],
        &id,
        &["sh", "-c", &term_script(7)],
    )));
    assert!(
        fg.wait_for_stdout("ready", ENGINE_TIMEOUT),
        "ctr run did not start the task:\nstdout: {}\nstderr: {}",
        fg.stdout_now(),
        fg.stderr_now()
    );
    let o = ctr.run(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "--fifo-dir",
        fifo,
        &id,
        "sh",
        "-c",
        "echo exec-ok; exit 5",
    ]);
    o.code_is(5);
    assert_eq!(o.out(), "exec-ok", "ctr task exec:\n{o}");

    let o = ctr.run_tty(&[
        "task",
        "exec",
        "-t",
        "--exec-id",
        "e2",
        "--fifo-dir",
        fifo,
        &id,
        "sh",
        "-c",
        "tty; sleep 0.2",
    ]);
    o.ok();
    assert!(o.stdout.contains("/dev/pts/"), "ctr task exec -t:\n{o}");

    let task_status = || -> String {
        let o = ctr.run(&["task", "ls"]);
        o.lines()
            .iter()
            .find(|l| l.split_whitespace().next() == Some(id.as_str()))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("")
            .to_string()
    };
    let pid: i32 = ctr
        .run(&["task", "ls"])
        .lines()
        .iter()
        .find(|l| l.split_whitespace().next() == Some(id.as_str()))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .expect("task pid in ctr task ls");
    ctr.run(&["task", "pause", &id]).ok();
    assert_eq!(task_status(), "PAUSED");
    assert_eq!(
        frozen(pid),
        Some(true),
        "cgroup of {pid} is not frozen after pause"
    );
    ctr.run(&["task", "resume", &id]).ok();
    assert_eq!(task_status(), "RUNNING");
    assert_eq!(
        frozen(pid),
        Some(false),
        "cgroup of {pid} still frozen after resume"
    );

    // kill (SIGTERM): the trap exits 7, which the foreground `ctr run` returns.
    ctr.run(&["task", "kill", &id]).ok();
    let o = fg.wait(Duration::from_secs(30));
    assert!(
        o.code == Some(7) && o.stdout.contains("got-term"),
        "ctr run should exit 7 after `ctr task kill` (SIGTERM):\n{o}"
    );
    wait_for(
        "the container to be removed",
        Duration::from_secs(10),
        || !ctr.run(&["containers", "ls", "-q"]).stdout.contains(&id),
    );
    let leftovers: Vec<_> = fs::read_dir(Path::new(&runc_root).join(ns))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        leftovers.is_empty(),
        "berth-oci state left in the shim's runc root: {leftovers:?}"
    );

    w.assert_runtime_called(&[
        "create", "start", "exec", "pause", "resume", "kill", "delete",
    ]);
    w.assert_host_network_untouched();
}

/// Processes of the host whose argv is exactly `argv`.
fn procs_running(argv: &[&str]) -> Vec<i32> {
    let want = argv.join("\0") + "\0";
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want.as_bytes()))
        .collect()
}

/// Kubernetes' path (kubelet → containerd's CRI → the runc v2 shim → berth-oci), the
/// two behaviours it relies on (issue 20), driven through containerd's shim as CRI does:
/// `rootfsPropagation: rshared` with an rshared bind of a shared host directory
/// (`mountPropagation: Bidirectional`) shares mounts both ways; and when a container of a
/// pod (sharing the pod's pid namespace) exits, the shim's `kill --all` kills what it
/// left behind.
#[test]
fn containerd_rshared_propagation_and_kill_all_in_a_shared_pid_namespace() {
    if let Err(e) = containerd_available() {
        return skip(&format!("containerd cannot be installed: {e}"));
    }
    let w = Work::new("containerd-k8s");
    let env = CtrEnv::new(&w);
    let ctr = &env.ctr;

    // 1. Bidirectional propagation.
    let vol = w.mkdir("vol");
    host("mount", &["--bind", &vol, &vol]);
    host("mount", &["--make-shared", &vol]);
    {
        let v = vol.clone();
        w.before_stop(move || {
            let _ = Command::new("umount").args(["-R", "-l", &v]).status();
        });
    }
    let id = unique("rshared");
    let mount = format!("type=bind,src={vol},dst=/vol,options=rbind:rshared");
    ctr.run(&refs(&env.run_args(
        &[
            "-d",
            "--privileged",
            "--rootfs-propagation",
            "rshared",
            "--mount",
            &mount,
        ],
        &id,
        &[
            "sh",
            "-c",
            "mkdir -p /vol/in && mount -t tmpfs tmpfs /vol/in && touch /vol/in/mark && sleep 1000",
        ],
    )))
    .ok();
    let vol_path = Path::new(&vol);
    wait_for(
        "the container's mount to reach the host",
        Duration::from_secs(20),
        || vol_path.join("in/mark").exists(),
    );
    let from_host = vol_path.join("from-host");
    fs::create_dir_all(&from_host).unwrap();
    host(
        "mount",
        &["-t", "tmpfs", "tmpfs", from_host.to_str().unwrap()],
    );
    fs::write(from_host.join("mark"), "").unwrap();
    let o = ctr.run(&[
        "task",
        "exec",
        "--exec-id",
        "look",
        "--fifo-dir",
        &env.fifo,
        &id,
        "sh",
        "-c",
        "test -e /vol/from-host/mark && echo SEEN",
    ]);
    assert!(
        o.stdout.contains("SEEN"),
        "the host's mount did not reach the container:\n{o}"
    );
    let _ = ctr.run(&["task", "kill", "-s", "SIGKILL", &id]);

    // 2. A pod's shared pid namespace: the pod container, then one that starts a child
    //    and exits.
    let pod = unique("pod");
    ctr.run(&refs(&env.run_args(&["-d"], &pod, &["sleep", "1000"])))
        .ok();
    let pod_pid: i32 = ctr
        .run(&["task", "ls"])
        .lines()
        .iter()
        .find(|l| l.split_whitespace().next() == Some(pod.as_str()))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .expect("the pod container's pid in ctr task ls");
    let with_ns = format!("pid:/proc/{pod_pid}/ns/pid");
    let o = ctr.run(&refs(&env.run_args(
        &["--rm", "--with-ns", &with_ns],
        &unique("left"),
        &["sh", "-c", "sleep 1001 & exit 0"],
    )));
    o.ok();
    wait_for(
        "kill --all to end what the exited container left",
        Duration::from_secs(20),
        || procs_running(&["sleep", "1001"]).is_empty(),
    );
    // containerd logged these after berth-oci refused `kill --all` (never with runc).
    let log = fs::read_to_string(w.p("containerd/log")).unwrap_or_default();
    for bad in ["failed to kill init's children", "Failed to pipe"] {
        assert!(!log.contains(bad), "containerd logged {bad:?}:\n{log}");
    }
    w.assert_runtime_called(&["create", "start", "exec", "kill", "delete"]);
    w.assert_host_network_untouched();
}

// ---------------------------------------------------------------------------------------
// dockerd
// ---------------------------------------------------------------------------------------

/// A dockerd of its own (data-root, exec-root, socket, pidfile in the work directory) on a
/// containerd of its own, with berth-oci registered as runtime `berth`. No bridge, no
/// iptables, no IP forwarding.
fn start_dockerd(w: &Work, exec_root: &str) -> Cli {
    let cd = start_containerd(w);
    let cgroup_parent = format!("/{}", w.cgroup("docker"));
    let sock = w.s("docker/docker.sock");
    w.mkdir("docker");
    let daemon_json = w.p("docker/daemon.json");
    // dockerd 20.10 writes its trust key to /etc/docker/key.json unless told otherwise.
    fs::write(
        &daemon_json,
        serde_json::to_vec(&json!({ "deprecated-key-path": w.s("docker/key.json") })).unwrap(),
    )
    .unwrap();
    let runtime_arg = format!("berth={}", w.runtime());
    let host_arg = format!("unix://{sock}");
    let args = [
        "--config-file",
        daemon_json.to_str().unwrap(),
        "--containerd",
        &cd.sock,
        "--data-root",
        &w.mkdir("docker/data"),
        "--exec-root",
        exec_root,
        "--pidfile",
        &w.s("docker/docker.pid"),
        "-H",
        &host_arg,
        "--add-runtime",
        &runtime_arg,
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--ip-forward=false",
        "--ip-masq=false",
        "--userland-proxy=false",
        "--cgroup-parent",
        &cgroup_parent,
    ];
    w.add_daemon(Daemon::spawn(
        "dockerd",
        command("/usr/sbin/dockerd", &args),
        w.p("docker/log"),
    ));
    let docker = Cli {
        argv: vec!["/usr/bin/docker".into(), "-H".into(), host_arg.clone()],
        env: vec![("DOCKER_CONFIG".into(), w.mkdir("docker/cli"))],
    };
    let probe = docker.clone();
    w.wait_daemon("dockerd", || {
        run_t(probe.cmd(&["version"]), Duration::from_secs(10))
    });
    let d = docker.clone();
    w.before_stop(move || {
        let ids = d.run(&["ps", "-aq"]).stdout;
        for id in ids.split_whitespace() {
            let _ = d.run(&["rm", "-f", id]);
        }
    });
    docker
}

fn docker_packages() -> Result<(), String> {
    ensure_packages(
        &["docker.io", "containerd"],
        &[
            "/usr/sbin/dockerd",
            "/usr/bin/docker",
            "/usr/bin/containerd",
            "/usr/bin/ctr",
            "/usr/bin/containerd-shim-runc-v2",
        ],
    )
}

fn docker_run_args(extra: &[&str], cmd: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec!["run".into()];
    v.extend(extra.iter().map(|s| s.to_string()));
    v.extend(["--runtime", "berth", "--network", "none"].map(String::from));
    v.push(format!("{IMAGE_REPO}:{IMAGE_TAG}"));
    v.extend(cmd.iter().map(|s| s.to_string()));
    v
}

fn load_image(w: &Work, docker: &Cli) {
    let layer = rootfs_tar(w);
    let archive = image_archive(w, &layer);
    let o = docker.run(&["load", "-i", archive.to_str().unwrap()]);
    o.ok();
    assert!(
        o.stdout
            .contains(&format!("Loaded image: {IMAGE_REPO}:{IMAGE_TAG}")),
        "docker load:\n{o}"
    );
}

#[test]
fn dockerd_run_tty_exec_pause_stop() {
    if let Err(e) = docker_packages() {
        return skip(&format!("docker.io cannot be installed: {e}"));
    }
    let w = Work::new("dockerd");
    let docker = start_dockerd(&w, &w.short_dir());
    load_image(&w, &docker);

    // 1. docker run --rm --runtime berth --network none IMAGE echo ok
    let o = docker.run(&refs(&docker_run_args(&["--rm"], &["echo", "ok"])));
    o.ok();
    assert_eq!(o.out(), "ok", "docker run output:\n{o}");

    let o = docker.run(&refs(&docker_run_args(&["--rm"], &["sh", "-c", "exit 3"])));
    o.code_is(3);

    // 2. -it
    let o = docker.run_tty(&refs(&docker_run_args(
        &["--rm", "-it"],
        &["sh", "-c", "tty; echo tty-ok; sleep 0.3"],
    )));
    o.ok();
    assert!(
        o.stdout.contains("/dev/pts/") && o.stdout.contains("tty-ok"),
        "docker run -it: expected a /dev/pts terminal:\n{o}"
    );

    // 3. Detached: cgroup settings, exec, exec -it, pause/unpause, stop.
    let name = unique("bb");
    let o = docker.run(&refs(&docker_run_args(
        &["-d", "--name", &name],
        &["sh", "-c", &term_script(0)],
    )));
    o.ok();
    let pid: i32 = docker
        .run(&["inspect", "-f", "{{.State.Pid}}", &name])
        .out()
        .parse()
        .expect("docker inspect pid");
    assert!(pid > 0);
    // dockerd sends cpu.shares = 0 for "not set": the container keeps the default weight.
    if let Some((file, value, default)) = cpu_weight(pid) {
        assert_eq!(
            value,
            default,
            "{} of a docker container without --cpu-shares",
            file.display()
        );
    }

    let o = docker.run(&["exec", &name, "sh", "-c", "echo exec-ok; exit 5"]);
    o.code_is(5);
    assert_eq!(o.out(), "exec-ok", "docker exec:\n{o}");

    let o = docker.run_tty(&["exec", "-it", &name, "sh", "-c", "tty; sleep 0.3"]);
    o.ok();
    assert!(o.stdout.contains("/dev/pts/"), "docker exec -it:\n{o}");

    docker.run(&["pause", &name]).ok();
    assert_eq!(
        docker
            .run(&["inspect", "-f", "{{.State.Status}}", &name])
            .out(),
        "paused"
    );
    assert_eq!(
        frozen(pid),
        Some(true),
        "cgroup of {pid} is not frozen after pause"
    );
    docker.run(&["unpause", &name]).ok();
    assert_eq!(
        docker
            .run(&["inspect", "-f", "{{.State.Status}}", &name])
            .out(),
        "running"
    );
    assert_eq!(
        frozen(pid),
        Some(false),
        "cgroup of {pid} still frozen after unpause"
    );

    let t0 = Instant::now();
    docker.run(&["stop", "-t", "30", &name]).ok();
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "docker stop took {:?}: SIGTERM did not reach the container",
        t0.elapsed()
    );
    assert_eq!(
        docker
            .run(&[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}}",
                &name
            ])
            .out(),
        "exited 0"
    );
    docker.run(&["rm", &name]).ok();

    w.assert_runtime_called(&[
        "create", "start", "exec", "pause", "resume", "kill", "delete",
    ]);
    w.assert_host_network_untouched();
}

#[test]
fn dockerd_update_resources() {
    if let Err(e) = docker_packages() {
        return skip(&format!("docker.io cannot be installed: {e}"));
    }
    let w = Work::new("dockerd-update");
    let docker = start_dockerd(&w, &w.short_dir());
    load_image(&w, &docker);
    let name = unique("bb");
    docker
        .run(&refs(&docker_run_args(
            &[
                "-d",
                "--name",
                &name,
                "--memory",
                "64m",
                "--cpu-shares",
                "512",
            ],
            &["sh", "-c", &term_script(0)],
        )))
        .ok();
    let pid: i32 = docker
        .run(&["inspect", "-f", "{{.State.Pid}}", &name])
        .out()
        .parse()
        .expect("docker inspect pid");
    let before = cpu_weight(pid);

    // docker update → `berth-oci update --resources -` with every other field 0.
    let o = docker.run(&["update", "--memory", "128m", "--memory-swap", "256m", &name]);
    o.ok();
    if !cgroup_v2_only() {
        let mem = cgroup_of(pid, "memory").unwrap();
        let limit = fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap();
        assert_eq!(
            limit.trim(),
            (128u64 << 20).to_string(),
            "memory limit after update"
        );
    } else {
        let d = cgroup_of(pid, "").unwrap();
        let max = fs::read_to_string(d.join("memory.max")).unwrap();
        assert_eq!(
            max.trim(),
            (128u64 << 20).to_string(),
            "memory.max after update"
        );
    }
    // The fields docker did not ask to change stay as they were (shares 512).
    assert_eq!(
        cpu_weight(pid).map(|c| c.1),
        before.map(|c| c.1),
        "docker update --memory changed the CPU weight"
    );
    docker.run(&["rm", "-f", &name]).ok();
    w.assert_runtime_called(&["create", "start", "update"]);
    w.assert_host_network_untouched();
}

#[test]
fn dockerd_long_exec_root() {
    if let Err(e) = docker_packages() {
        return skip(&format!("docker.io cannot be installed: {e}"));
    }
    // EXEC_ROOT/runtime-runc/moby/<64 hex>/exec.sock is 125 bytes here.
    let w = Work::new("dockerd-long");
    let exec_root = w.mkdir("docker/exec-root");
    let docker = start_dockerd(&w, &exec_root);
    load_image(&w, &docker);
    let o = docker.run(&refs(&docker_run_args(&["--rm"], &["echo", "ok"])));
    o.ok();
    assert_eq!(o.out(), "ok", "docker run output:\n{o}");
}

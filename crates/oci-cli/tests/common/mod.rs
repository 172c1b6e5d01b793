//! Shared fixtures for the `berth-oci` integration tests.
//!
//! * [`busybox`]: the host's static busybox (Debian's `busybox-static`), checked once per
//!   test binary; every bundle gets its own copy of it plus one symlink per applet.
//! * [`Runtime`]: the binary with a private `--root`, unique container ids, and a guard
//!   that force-deletes every container, kills stray processes, removes cgroups and
//!   temporary directories when it is dropped (also when the test panics).
//! * [`Bundle`]: a bundle directory whose config.json comes from `berth-oci spec` and is
//!   then edited as JSON.
//! * [`Output`] / [`Spawned`]: commands run with a timeout; stdout and stderr go to
//!   temporary files (a container that inherits them cannot block the test).
//!
//! `BERTH_OCI_BIN=/path/to/runtime` runs the suite against another binary (e.g. runc) to
//! check the tests themselves.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt, symlink};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A command that takes longer than this is killed and the test fails.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for a container to reach a status.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(20);
/// Environment variable put on every runtime invocation and in every container's env,
/// so that stray processes of a test can be found and killed.
pub const TAG_ENV: &str = "BERTH_TEST_TAG";

/// The runtime binary under test.
pub fn bin() -> PathBuf {
    match std::env::var_os("BERTH_OCI_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_berth-oci")),
    }
}

/// A string unique in this test process (and across concurrently running test binaries).
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Print why a test does not apply to this host. Use as `return skip("...")`.
pub fn skip(reason: &str) {
    eprintln!("skipped: {reason}");
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("non-UTF-8 path")
}

// ---------------------------------------------------------------------------------------
// busybox rootfs
// ---------------------------------------------------------------------------------------

pub struct Busybox {
    pub path: PathBuf,
    pub applets: Vec<String>,
}

/// The host's static busybox, checked once per test binary.
pub fn busybox() -> &'static Busybox {
    static BB: OnceLock<Busybox> = OnceLock::new();
    BB.get_or_init(|| {
        let path = PathBuf::from("/bin/busybox");
        assert!(
            path.exists(),
            "/bin/busybox is missing: install Debian's busybox-static package \
             (apt-get install busybox-static); the tests build their rootfs from it"
        );
        assert!(
            is_static_elf(&path),
            "/bin/busybox is dynamically linked: install Debian's busybox-static package \
             (apt-get install busybox-static) so it runs inside a bare rootfs"
        );
        let out = Command::new(&path)
            .arg("--list")
            .output()
            .expect("run /bin/busybox --list");
        assert!(out.status.success(), "/bin/busybox --list failed");
        let applets: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.contains('/') && *l != "busybox")
            .map(String::from)
            .collect();
        for needed in [
            "sh", "cat", "id", "stat", "readlink", "hostname", "sleep", "touch", "ls", "grep",
            "wc", "tty", "pwd", "kill", "echo", "true", "false",
        ] {
            assert!(
                applets.iter().any(|a| a == needed),
                "/bin/busybox lacks the `{needed}` applet the tests need"
            );
        }
        Busybox { path, applets }
    })
}

/// True if `path` is an ELF file without a PT_INTERP program header.
fn is_static_elf(path: &Path) -> bool {
    let Ok(data) = fs::read(path) else {
        return false;
    };
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        return false; // not a little-endian ELF64
    }
    let u16at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(data[32..40].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16at(54), u16at(56));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        o + 4 <= data.len() && u32::from_le_bytes(data[o..o + 4].try_into().unwrap()) != 3
    })
}

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
user:x:1000:1000:user:/home/user:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
pub const GROUP: &str = "root:x:0:\nwheel:x:10:root\nuucp:x:20:\nuser:x:1000:\nnogroup:x:65534:\n";

/// Fill `root` with a busybox userland.
pub fn populate_rootfs(root: &Path) {
    let bb = busybox();
    for d in [
        "",
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "etc",
        "proc",
        "sys",
        "dev",
        "root",
        "home",
        "home/user",
        "var",
        "run",
        "mnt",
    ] {
        let p = root.join(d);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let tmp = root.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).unwrap();
    let home = root.join("home/user");
    std::os::unix::fs::chown(&home, Some(1000), Some(1000)).unwrap();
    fs::copy(&bb.path, root.join("bin/busybox")).expect("copy busybox into rootfs");
    fs::set_permissions(root.join("bin/busybox"), fs::Permissions::from_mode(0o755)).unwrap();
    for a in &bb.applets {
        match symlink("busybox", root.join("bin").join(a)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => panic!("symlink applet {a}: {e}"),
        }
    }
    fs::write(root.join("etc/passwd"), PASSWD).unwrap();
    fs::write(root.join("etc/group"), GROUP).unwrap();
    fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
}

/// chown -h every file under `root` (for user-namespace tests).
pub fn chown_tree(root: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(root, Some(uid), Some(gid)).unwrap();
    let meta = fs::symlink_metadata(root).unwrap();
    if meta.is_dir() {
        for e in fs::read_dir(root).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

// ---------------------------------------------------------------------------------------
// running commands
// ---------------------------------------------------------------------------------------

/// Result of a command run to completion (or killed at its timeout).
pub struct Output {
    pub cmdline: String,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command: {}", self.cmdline)?;
        if self.timed_out {
            writeln!(f, "TIMED OUT after {:?} (killed)", self.elapsed)?;
        }
        writeln!(f, "exit code: {:?}, signal: {:?}", self.code, self.signal)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// Assert exit status 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.success(), "expected success:\n{self}");
        self
    }

    /// Assert a clean failure: the command exited by itself with a non-zero status.
    #[track_caller]
    pub fn fails(&self) -> &Self {
        assert!(
            !self.timed_out,
            "expected a failure, but the command hung:\n{self}"
        );
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "expected a non-zero exit status:\n{self}"
        );
        self
    }

    /// Assert exit status `code`.
    #[track_caller]
    pub fn code_is(&self, code: i32) -> &Self {
        assert!(
            !self.timed_out && self.code == Some(code),
            "expected exit status {code}:\n{self}"
        );
        self
    }

    /// Assert that stderr contains (case-insensitively) at least one of `words`.
    #[track_caller]
    pub fn stderr_mentions(&self, words: &[&str]) -> &Self {
        let e = self.stderr.to_lowercase();
        assert!(
            words.iter().any(|w| e.contains(&w.to_lowercase())),
            "expected stderr to mention one of {words:?}:\n{self}"
        );
        self
    }

    pub fn out(&self) -> &str {
        self.stdout.trim()
    }

    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().map(str::trim_end).collect()
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not valid JSON ({e}):\n{self}"))
    }
}

fn read_all(f: &File) -> String {
    // pread: the child shares the file offset, so never seek.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut off = 0u64;
    loop {
        match f.read_at(&mut chunk, off) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                off += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A running command whose output goes to temporary files.
pub struct Spawned {
    child: Child,
    out: File,
    err: File,
    pub cmdline: String,
    start: Instant,
    status: Option<ExitStatus>,
}

impl Spawned {
    pub fn spawn(mut cmd: Command) -> Spawned {
        let out = tempfile::tempfile().expect("tempfile");
        let err = tempfile::tempfile().expect("tempfile");
        cmd.stdout(out.try_clone().unwrap())
            .stderr(err.try_clone().unwrap());
        Self::spawn_capturing(cmd, out, err)
    }

    /// Like [`Spawned::spawn`], but stdout and stderr are what `cmd` already has (the
    /// captured output is then empty).
    pub fn spawn_with_stdio(cmd: Command) -> Spawned {
        let out = tempfile::tempfile().expect("tempfile");
        let err = tempfile::tempfile().expect("tempfile");
        Self::spawn_capturing(cmd, out, err)
    }

    fn spawn_capturing(mut cmd: Command, out: File, err: File) -> Spawned {
        let cmdline = format!("{cmd:?}");
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmdline}: {e}"));
        Spawned {
            child,
            out,
            err,
            cmdline,
            start: Instant::now(),
            status: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stdout_now(&self) -> String {
        read_all(&self.out)
    }

    pub fn stderr_now(&self) -> String {
        read_all(&self.err)
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Wait until stdout contains `needle`; false if the command exits first or on timeout.
    pub fn wait_for_stdout(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stdout_now().contains(needle) {
                return true;
            }
            if self.try_wait().is_some() {
                return self.stdout_now().contains(needle);
            }
            if Instant::now() > deadline {
                return false;
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the command to exit, killing it after `timeout`.
    pub fn wait(mut self, timeout: Duration) -> Output {
        let deadline = self.start + timeout;
        let mut timed_out = false;
        let mut pause = Duration::from_millis(2);
        let status = loop {
            if let Some(st) = self.try_wait() {
                break st;
            }
            if Instant::now() > deadline {
                timed_out = true;
                let _ = self.child.kill();
                let st = self.child.wait().expect("wait after kill");
                self.status = Some(st);
                break st;
            }
            sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        };
        Output {
            cmdline: self.cmdline.clone(),
            code: status.code(),
            signal: status.signal(),
            timed_out,
            stdout: read_all(&self.out),
            stderr: read_all(&self.err),
            elapsed: self.start.elapsed(),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.status.is_none() && self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run `cmd` (stdin from /dev/null unless set) with the standard timeout.
pub fn run_cmd(cmd: Command) -> Output {
    Spawned::spawn(cmd).wait(CMD_TIMEOUT)
}

/// Run a host command and return its trimmed stdout, asserting success.
#[track_caller]
pub fn host(prog: &str, args: &[&str]) -> String {
    let mut c = Command::new(prog);
    c.args(args).stdin(Stdio::null());
    let o = run_cmd(c);
    o.ok();
    o.stdout.trim().to_string()
}

/// `readlink /proc/PID/ns/NS` (PID may be "self").
pub fn ns_of(pid: &str, ns: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap_or_else(|e| panic!("readlink /proc/{pid}/ns/{ns}: {e}"))
        .to_string_lossy()
        .into_owned()
}

pub fn pid_alive(pid: i32) -> bool {
    // A zombie still "exists"; treat it as dead.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start())
                .unwrap_or("");
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

#[track_caller]
pub fn wait_pid_gone(pid: i32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while pid_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "process {pid} still alive after {timeout:?}"
        );
        sleep(Duration::from_millis(20));
    }
}

/// Poll `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        sleep(Duration::from_millis(20));
    }
}

/// A `/proc/mounts` (or mountinfo-like) line split into fields.
pub struct MountLine {
    pub source: String,
    pub target: String,
    pub fstype: String,
    pub options: Vec<String>,
}

pub fn parse_mounts(text: &str) -> Vec<MountLine> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4).then(|| MountLine {
                source: f[0].into(),
                target: f[1].into(),
                fstype: f[2].into(),
                options: f[3].split(',').map(String::from).collect(),
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// cgroups
// ---------------------------------------------------------------------------------------

pub fn cgroup_v2_only() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Mount points of every cgroup hierarchy (v1 controllers, named, unified).
pub fn cgroup_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if cgroup_v2_only() {
        return vec![base.to_path_buf()];
    }
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir(base) {
        for e in rd.flatten() {
            let p = e.path();
            if fs::symlink_metadata(&p)
                .map(|m| m.is_dir())
                .unwrap_or(false)
            {
                v.push(p);
            }
        }
    }
    v
}

/// Existing directories of cgroup `path` in any hierarchy.
pub fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        return vec![];
    }
    cgroup_roots()
        .into_iter()
        .map(|r| r.join(rel))
        .filter(|p| p.is_dir())
        .collect()
}

/// Directory of cgroup `path` for a v1 `controller` (or the unified hierarchy on v2).
pub fn cgroup_dir(controller: &str, path: &str) -> PathBuf {
    let rel = path.trim_start_matches('/');
    if cgroup_v2_only() {
        Path::new("/sys/fs/cgroup").join(rel)
    } else {
        Path::new("/sys/fs/cgroup").join(controller).join(rel)
    }
}

pub fn cgroup_controller_available(controller: &str) -> bool {
    if cgroup_v2_only() {
        fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .map(|c| c.split_whitespace().any(|x| x == controller))
            .unwrap_or(false)
    } else {
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join("cgroup.procs")
            .exists()
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    for _ in 0..50 {
        if fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// Runtime
// ---------------------------------------------------------------------------------------

/// The binary under test with a private state directory. Dropping it cleans up everything
/// the test created.
pub struct Runtime {
    base: Option<tempfile::TempDir>,
    base_path: PathBuf,
    root: PathBuf,
    tag: String,
    ids: Mutex<Vec<String>>,
    cgroups: Mutex<Vec<String>>,
    counter: AtomicUsize,
    global: Vec<String>,
    /// The binary this Runtime runs ([`bin`] unless [`Runtime::with_own_copy`]).
    bin: PathBuf,
}

/// A container created by [`Runtime::start_container`].
#[derive(Clone, Debug)]
pub struct Container {
    pub id: String,
    pub pid: i32,
}

impl Runtime {
    pub fn new() -> Runtime {
        Self::with_global_args(&[])
    }

    /// Extra global flags (placed before the subcommand on every invocation).
    pub fn with_global_args(global: &[&str]) -> Runtime {
        let base = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .expect("tempdir");
        let base_path = base.path().to_path_buf();
        fs::set_permissions(&base_path, fs::Permissions::from_mode(0o755)).unwrap();
        let root = base_path.join("root");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
        Runtime {
            base: Some(base),
            base_path,
            root,
            tag: unique("t"),
            ids: Mutex::new(Vec::new()),
            cgroups: Mutex::new(Vec::new()),
            counter: AtomicUsize::new(0),
            global: global.iter().map(|s| s.to_string()).collect(),
            bin: bin(),
        }
    }

    /// A Runtime that runs its own copy of the binary (in its temporary
    /// directory): an attack that manages to write the binary it runs
    /// damages only that copy, which the test then inspects.
    pub fn with_own_copy() -> Runtime {
        let mut rt = Self::new();
        let dir = rt.scratch();
        let copy = dir.join(bin().file_name().expect("binary name"));
        fs::copy(bin(), &copy).expect("copying the runtime binary");
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
        rt.bin = copy;
        rt
    }

    /// The binary this Runtime runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The `--root` state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// A fresh container id, force-deleted when the Runtime is dropped.
    pub fn new_id(&self, prefix: &str) -> String {
        let id = unique(prefix);
        self.track(&id);
        id
    }

    /// Register an id (e.g. a malformed one) for cleanup.
    pub fn track(&self, id: &str) {
        self.ids.lock().unwrap().push(id.to_string());
    }

    /// A fresh empty directory (mode 0755), removed with the Runtime.
    pub fn scratch(&self) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let p = self.base_path.join(format!("s{n}"));
        fs::create_dir(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// `berth-oci --root ROOT [global flags] ARGS...`, stdin from /dev/null.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root);
        c.args(&self.global);
        c.args(args);
        c.env(TAG_ENV, &self.tag);
        c.stdin(Stdio::null());
        c
    }

    /// Run the binary with `args` to completion (30 s timeout).
    pub fn cmd<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        run_cmd(self.command(args))
    }

    /// Start the binary with `args` in the background.
    pub fn spawn<S: AsRef<OsStr>>(&self, args: &[S]) -> Spawned {
        Spawned::spawn(self.command(args))
    }

    /// A bundle: busybox rootfs plus config.json from `berth-oci spec`, edited so that
    /// process.terminal=false, the test tag is in process.env and linux.cgroupsPath is
    /// unique. process.args is left as `spec` wrote it: set it in the test.
    pub fn bundle(&self) -> Bundle {
        let dir = self.scratch();
        populate_rootfs(&dir.join("rootfs"));
        let o = self.cmd(&["spec", "--bundle", s(&dir)]);
        assert!(
            o.success(),
            "`berth-oci spec --bundle DIR` failed; every test needs it:\n{o}"
        );
        assert!(
            dir.join("config.json").is_file(),
            "`berth-oci spec --bundle {}` exited 0 but wrote no config.json:\n{o}",
            dir.display()
        );
        let cgroup = format!("/{}", unique("berth-test"));
        self.cgroups.lock().unwrap().push(cgroup.clone());
        let b = Bundle { dir, cgroup };
        let tag = format!("{TAG_ENV}={}", self.tag);
        b.edit(|c| {
            c["process"]["terminal"] = json!(false);
            env_push(c, &tag);
            c["linux"]["cgroupsPath"] = json!(b.cgroup);
        });
        b
    }

    // ----- container operations -----

    pub fn create(&self, b: &Bundle, id: &str) -> Output {
        self.cmd(&["create", "--bundle", s(&b.dir), id])
    }

    pub fn start(&self, id: &str) -> Output {
        self.cmd(&["start", id])
    }

    /// `run --bundle B ID` in the foreground; returns its output and exit status.
    pub fn run_fg(&self, b: &Bundle) -> Output {
        let id = self.new_id("run");
        self.cmd(&["run", "--bundle", s(&b.dir), &id])
    }

    /// Run `script` with `sh -c` in the foreground in a fresh container of bundle `b`,
    /// asserting success; returns stdout.
    #[track_caller]
    pub fn sh_output(&self, b: &Bundle, script: &str) -> String {
        b.sh(script);
        let o = self.run_fg(b);
        o.ok();
        o.stdout
    }

    /// `exec ID ARGS...`
    pub fn exec(&self, id: &str, args: &[&str]) -> Output {
        self.exec_with(&[], id, args)
    }

    /// `exec OPTIONS... ID ARGS...` (options go before the id, as with runc).
    pub fn exec_with(&self, opts: &[&str], id: &str, args: &[&str]) -> Output {
        let mut v = vec!["exec"];
        v.extend_from_slice(opts);
        v.push(id);
        v.extend_from_slice(args);
        self.cmd(&v)
    }

    /// create + start; asserts the container is running and returns its id and pid.
    #[track_caller]
    pub fn start_container(&self, b: &Bundle) -> Container {
        let id = self.new_id("c");
        self.create(b, &id).ok();
        self.start(&id).ok();
        let st = self.state(&id);
        let pid = st["pid"].as_i64().unwrap_or(0) as i32;
        assert!(pid > 0, "state of a started container has no pid: {st}");
        assert_eq!(st["status"], "running", "state after start: {st}");
        Container { id, pid }
    }

    /// `state ID` as JSON (asserts success).
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let o = self.cmd(&["state", id]);
        o.ok();
        o.json()
    }

    /// The container's status, or None if `state` fails.
    pub fn status(&self, id: &str) -> Option<String> {
        let o = self.cmd(&["state", id]);
        if !o.success() {
            return None;
        }
        serde_json::from_str::<Value>(&o.stdout)
            .ok()
            .and_then(|v| v["status"].as_str().map(String::from))
    }

    #[track_caller]
    pub fn wait_status(&self, id: &str, want: &str) {
        let mut last = None;
        let ok = wait_until(STATUS_TIMEOUT, || {
            last = self.status(id);
            last.as_deref() == Some(want)
        });
        assert!(
            ok,
            "container {id} did not become {want:?} (last status {last:?})"
        );
    }

    #[track_caller]
    pub fn assert_gone(&self, id: &str) {
        let o = self.cmd(&["state", id]);
        o.fails().stderr_mentions(&["does not exist"]);
        assert!(
            !self.root.join(id).exists(),
            "{} still exists",
            self.root.join(id).display()
        );
    }

    // ----- leftovers -----

    /// Live processes carrying this runtime's tag (env) or sitting in one of its cgroups.
    pub fn tagged_processes(&self) -> Vec<(i32, String)> {
        let needle = format!("{TAG_ENV}={}", self.tag);
        let cgroups = self.cgroups.lock().unwrap().clone();
        let me = std::process::id() as i32;
        let mut found = Vec::new();
        let Ok(rd) = fs::read_dir("/proc") else {
            return found;
        };
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            if pid == me || !pid_alive(pid) {
                continue;
            }
            let env = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let mut hit = env.split(|&b| b == 0).any(|v| v == needle.as_bytes());
            if !hit {
                let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
                hit = cg.lines().any(|l| {
                    cgroups
                        .iter()
                        .any(|c| l.ends_with(c.as_str()) || l.contains(&format!("{c}/")))
                });
            }
            if hit {
                let comm = fs::read_to_string(format!("/proc/{pid}/cmdline"))
                    .unwrap_or_default()
                    .replace('\0', " ");
                found.push((pid, comm));
            }
        }
        found
    }

    /// Assert that a refused `create`/`run` of `id` left nothing behind: no state, no
    /// process, no cgroup.
    #[track_caller]
    pub fn assert_nothing_left(&self, id: &str, b: Option<&Bundle>) {
        if !id.is_empty() && !id.contains('/') && id != "." && id != ".." {
            assert!(
                !self.root.join(id).exists(),
                "state directory {} left behind",
                self.root.join(id).display()
            );
            let o = self.cmd(&["state", id]);
            assert!(
                !o.success(),
                "state still reports the refused container:\n{o}"
            );
        }
        let mut procs = Vec::new();
        let gone = wait_until(Duration::from_secs(3), || {
            procs = self.tagged_processes();
            procs.is_empty()
        });
        assert!(gone, "processes left behind: {procs:?}");
        if let Some(b) = b {
            let mut dirs = Vec::new();
            let gone = wait_until(Duration::from_secs(3), || {
                dirs = cgroup_dirs(&b.cgroup);
                dirs.is_empty()
            });
            assert!(gone, "cgroup directories left behind: {dirs:?}");
        }
    }

    fn teardown(&self) {
        let ids = self.ids.lock().unwrap().clone();
        for id in ids.iter().filter(|i| !i.is_empty()) {
            let o = Spawned::spawn(self.command(["delete", "--force", id.as_str()]))
                .wait(Duration::from_secs(10));
            drop(o);
        }
        // Kill whatever survived (hung init, leaked children...).
        for _ in 0..3 {
            let procs = self.tagged_processes();
            if procs.is_empty() {
                break;
            }
            for (pid, _) in &procs {
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            wait_until(Duration::from_secs(2), || {
                self.tagged_processes().is_empty()
            });
        }
        for cg in self.cgroups.lock().unwrap().iter() {
            for d in cgroup_dirs(cg) {
                remove_cgroup_tree(&d);
            }
        }
        // Mounts left under our directories would make removal fail.
        if let Ok(mi) = fs::read_to_string("/proc/self/mountinfo") {
            let mut targets: Vec<String> = mi
                .lines()
                .filter_map(|l| l.split(' ').nth(4).map(unescape_mount))
                .filter(|t| Path::new(t).starts_with(&self.base_path))
                .collect();
            targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
            for t in targets {
                if let Ok(c) = std::ffi::CString::new(t) {
                    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                }
            }
        }
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.teardown();
        if let Some(base) = self.base.take() {
            let _ = base.close();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Bundle
// ---------------------------------------------------------------------------------------

/// A bundle directory owned by a [`Runtime`] (removed with it).
#[derive(Clone, Debug)]
pub struct Bundle {
    pub dir: PathBuf,
    /// linux.cgroupsPath (unique per bundle).
    pub cgroup: String,
}

fn env_push(c: &mut Value, kv: &str) {
    let key = kv.split('=').next().unwrap().to_string();
    if !c["process"]["env"].is_array() {
        c["process"]["env"] = json!([]);
    }
    let env = c["process"]["env"].as_array_mut().unwrap();
    env.retain(|e| e.as_str().and_then(|s| s.split('=').next()) != Some(key.as_str()));
    env.push(json!(kv));
}

impl Bundle {
    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    pub fn config(&self) -> Value {
        let text = fs::read_to_string(self.config_path()).expect("read config.json");
        serde_json::from_str(&text).expect("config.json is JSON")
    }

    pub fn write_config(&self, v: &Value) {
        fs::write(self.config_path(), serde_json::to_string_pretty(v).unwrap()).unwrap();
    }

    /// Load config.json, apply `f`, write it back.
    pub fn edit(&self, f: impl FnOnce(&mut Value)) -> &Self {
        let mut v = self.config();
        f(&mut v);
        self.write_config(&v);
        self
    }

    pub fn args(&self, args: &[&str]) -> &Self {
        self.edit(|c| c["process"]["args"] = json!(args))
    }

    /// process.args = ["sh", "-c", script]
    pub fn sh(&self, script: &str) -> &Self {
        self.args(&["sh", "-c", script])
    }

    pub fn terminal(&self, on: bool) -> &Self {
        self.edit(|c| c["process"]["terminal"] = json!(on))
    }

    pub fn readonly_root(&self, ro: bool) -> &Self {
        self.edit(|c| c["root"]["readonly"] = json!(ro))
    }

    pub fn hostname(&self, name: &str) -> &Self {
        self.edit(|c| c["hostname"] = json!(name))
    }

    pub fn no_hostname(&self) -> &Self {
        self.edit(|c| {
            if let Some(o) = c.as_object_mut() {
                o.remove("hostname");
            }
        })
    }

    pub fn env(&self, kv: &str) -> &Self {
        self.edit(|c| env_push(c, kv))
    }

    pub fn cwd(&self, dir: &str) -> &Self {
        self.edit(|c| c["process"]["cwd"] = json!(dir))
    }

    pub fn user(&self, uid: u32, gid: u32) -> &Self {
        self.edit(|c| {
            c["process"]["user"]["uid"] = json!(uid);
            c["process"]["user"]["gid"] = json!(gid);
        })
    }

    pub fn add_mount(&self, m: Value) -> &Self {
        self.edit(|c| {
            if !c["mounts"].is_array() {
                c["mounts"] = json!([]);
            }
            c["mounts"].as_array_mut().unwrap().push(m);
        })
    }

    pub fn remove_mount(&self, dest: &str) -> &Self {
        self.edit(|c| {
            if let Some(a) = c["mounts"].as_array_mut() {
                a.retain(|m| m["destination"] != dest);
            }
        })
    }

    pub fn namespaces(&self) -> Vec<String> {
        self.config()["linux"]["namespaces"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n["type"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Add namespace `ty` (or replace it), optionally joining `path`.
    pub fn namespace(&self, ty: &str, path: Option<&str>) -> &Self {
        self.edit(|c| {
            if !c["linux"]["namespaces"].is_array() {
                c["linux"]["namespaces"] = json!([]);
            }
            let a = c["linux"]["namespaces"].as_array_mut().unwrap();
            a.retain(|n| n["type"] != ty);
            let mut n = json!({ "type": ty });
            if let Some(p) = path {
                n["path"] = json!(p);
            }
            a.push(n);
        })
    }

    pub fn remove_namespace(&self, ty: &str) -> &Self {
        self.edit(|c| {
            if let Some(a) = c["linux"]["namespaces"].as_array_mut() {
                a.retain(|n| n["type"] != ty);
            }
        })
    }

    /// Append a hook to hooks.KIND.
    pub fn hook(&self, kind: &str, hook: Value) -> &Self {
        self.edit(|c| {
            if !c["hooks"][kind].is_array() {
                c["hooks"][kind] = json!([]);
            }
            c["hooks"][kind].as_array_mut().unwrap().push(hook);
        })
    }
}

/// Receives one message and the one descriptor it carries (SCM_RIGHTS), as runc's
/// callers receive a pty master or a seccomp notify fd.
pub fn recv_fd_with_data(
    stream: &std::os::unix::net::UnixStream,
) -> io::Result<(Vec<u8>, std::os::fd::OwnedFd)> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    let mut data = vec![0u8; 65536];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; 64];
    // SAFETY: msghdr is plain data; the pointers set below outlive recvmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: a valid socket and a msghdr describing live buffers.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: walking the control messages recvmsg filled in; each
    // SCM_RIGHTS payload is an array of descriptors now ours.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let p = libc::CMSG_DATA(c) as *const RawFd;
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(p.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let mut it = fds.into_iter();
    let fd = it
        .next()
        .ok_or_else(|| io::Error::other(format!("no fd in the message ({n} data bytes)")))?;
    assert!(it.next().is_none(), "more than one fd sent");
    data.truncate(n as usize);
    Ok((data, fd))
}

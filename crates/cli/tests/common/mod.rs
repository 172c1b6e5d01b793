//! Helpers shared by the `berth` CLI tests.
//!
//! Containers get bridge networking by default, so every test that runs them makes a
//! throwaway network namespace that plays the host ([`TestNetns`]) and runs each `berth`
//! invocation in it with `nsenter --net=…` (not `ip netns exec`, which remounts /sys and
//! hides the cgroup hierarchies). Bridges, veths, sysctls and Berth's nftables table then
//! live in that namespace, never on this machine's own interfaces, routes or firewall; the
//! namespace is deleted on drop (also when the test panics), taking them with it.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The namespace `berth --root ROOT` runs in, per root.
static NAMESPACES: Mutex<Option<HashMap<PathBuf, String>>> = Mutex::new(None);

/// A throwaway network namespace (`ip netns add berthtest-…`, lo up), deleted on drop.
pub struct TestNetns {
    pub name: String,
}

impl TestNetns {
    pub fn new(role: &str) -> TestNetns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("berthtest-{}-{n}-{role}", std::process::id());
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip netns add");
        assert!(st.success(), "ip netns add {name}");
        let ns = TestNetns { name };
        ns.sh(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// `/run/netns/NAME`.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// A command run inside the namespace (through nsenter).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path())).arg(program);
        c
    }

    /// Runs a command inside the namespace and asserts success; its stdout.
    pub fn sh(&self, args: &[&str]) -> String {
        let o = self
            .command(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .output()
            .expect("nsenter");
        assert!(
            o.status.success(),
            "{args:?} in {}: {}",
            self.name,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Makes `berth --root ROOT` (through these helpers) run in this namespace.
    pub fn host_berth(&self, root: &Path) {
        let mut g = NAMESPACES.lock().unwrap();
        g.get_or_insert_with(HashMap::new)
            .insert(root.to_path_buf(), self.name.clone());
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        if let Ok(mut g) = NAMESPACES.lock()
            && let Some(m) = g.as_mut()
        {
            m.retain(|_, v| *v != self.name);
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The namespace berth runs in for `root`, if any.
pub fn netns_of(root: &Path) -> Option<String> {
    NAMESPACES.lock().ok()?.as_ref()?.get(root).cloned()
}

/// `berth --root ROOT`, inside the root's test namespace when it has one.
pub fn berth_command(root: &Path) -> Command {
    let mut c = match netns_of(root) {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}"))
                .arg(env!("CARGO_BIN_EXE_berth"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_berth")),
    };
    c.arg("--root").arg(root);
    c
}

/// The same as a shell command line prefix (for `script -c` and `sh -c`).
pub fn berth_shell(root: &Path) -> String {
    let b = format!("{} --root {}", env!("CARGO_BIN_EXE_berth"), root.display());
    match netns_of(root) {
        Some(ns) => format!("nsenter --net=/run/netns/{ns} {b}"),
        None => b,
    }
}

/// Runs `berth --root ROOT ARGS...` with no stdin.
pub fn berth(root: &Path, args: &[&str]) -> Output {
    berth_command(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs `c` with `stdin` fed to it (none: /dev/null); its output.
pub fn output_with_stdin(mut c: Command, stdin: Option<&[u8]>) -> Output {
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let (Some(s), Some(mut i)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        // The command may exit (a usage error) without reading it.
        let _ = i.write_all(s);
    }
    child.wait_with_output().unwrap()
}

/// Runs berth and asserts success; returns stdout.
pub fn ok(root: &Path, args: &[&str]) -> String {
    let o = berth(root, args);
    assert!(
        o.status.success(),
        "berth {args:?}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs berth and asserts exit code `code`; returns stderr.
pub fn fails(root: &Path, args: &[&str], code: i32) -> String {
    let o = berth(root, args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "berth {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stderr).unwrap()
}

/// This machine's own nftables ruleset (to check that a test left it as it was).
/// This machine's own nftables ruleset, without its packet and byte counters (`nft -s`:
/// other traffic on the machine moves those; a test only checks that no rule was added or
/// removed).
pub fn host_ruleset() -> String {
    Command::new("nft")
        .args(["-s", "list", "ruleset"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The test namespaces of this process that still exist.
pub fn leftover_namespaces() -> Vec<String> {
    let prefix = format!("berthtest-{}-", std::process::id());
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// The pids of berth monitors of container `id` (and of the adopter that took
/// it over when its monitor died), not of its output keeper.
/// Polls `f` every 20 ms until it holds or `timeout` passes (then asks once more).
pub fn wait_until(timeout: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = std::time::Instant::now();
    while t.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    f()
}

pub fn monitor_pids(id: &str) -> Vec<i32> {
    monitor_processes(id, false)
}

/// The container's monitor processes and its output keeper: everything that
/// executes `berth` for it (as a crash of all of them would leave it).
pub fn monitor_and_keeper_pids(id: &str) -> Vec<i32> {
    monitor_processes(id, true)
}

fn monitor_processes(id: &str, with_keeper: bool) -> Vec<i32> {
    let mut v = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        // A monitor's output keeper is a fork of it (same command line, its own name).
        let keeper = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim() == "berth-keeper");
        if (cmd.contains("__monitor") || cmd.contains("__adopt"))
            && cmd.contains(id)
            && (with_keeper || !keeper)
        {
            v.push(pid);
        }
    }
    v
}

/// An image's root filesystem as a tar (for `berth import`): directories, files and
/// symlinks, with Debian's static busybox and its applet links as the usual start.
pub struct RootfsTar {
    b: tar::Builder<Vec<u8>>,
}

impl RootfsTar {
    /// `dirs` (0755), `/bin/busybox` (Debian's busybox-static) and `bin/LINK` → busybox.
    pub fn busybox(dirs: &[&str], links: &[&str]) -> RootfsTar {
        let mut t = RootfsTar {
            b: tar::Builder::new(Vec::new()),
        };
        for d in dirs {
            t.dir(d);
        }
        let bb = std::fs::read("/bin/busybox").expect("needs Debian's busybox-static");
        t.file("bin/busybox", &bb, 0o755);
        for l in links {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            t.b.append_link(&mut h, format!("bin/{l}"), "busybox")
                .unwrap();
        }
        t
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        self.b
            .append_data(&mut h, name.trim_start_matches('/'), std::io::empty())
            .unwrap();
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        self.b
            .append_data(&mut h, name.trim_start_matches('/'), data)
            .unwrap();
        self
    }

    /// A symlink `name` → `target` (any target: hostile images point out of their root).
    #[allow(dead_code)]
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        self.b
            .append_link(&mut h, name.trim_start_matches('/'), target)
            .unwrap();
        self
    }

    /// Shared libraries at their host paths, with the directories above them (what a glibc
    /// image has for the host's own binaries: `ldd`'s list).
    pub fn libraries(&mut self, libs: &[PathBuf]) -> &mut Self {
        let mut dirs = std::collections::BTreeSet::new();
        for l in libs {
            let mut d = l.parent();
            while let Some(x) = d.filter(|x| *x != Path::new("/")) {
                dirs.insert(x.to_path_buf());
                d = x.parent();
            }
        }
        for d in &dirs {
            self.dir(&d.to_string_lossy());
        }
        for l in libs {
            self.file(&l.to_string_lossy(), &std::fs::read(l).unwrap(), 0o755);
        }
        self
    }

    /// Writes the tar to `path`.
    pub fn write(self, path: &Path) {
        std::fs::write(path, self.b.into_inner().unwrap()).unwrap();
    }
}

/// A temporary `--root` with `busybox:latest` imported (Debian's busybox-static, with `dirs`
/// and the applet `links`), whose `berth` runs in a throwaway namespace of its own. Every
/// container is removed when it is dropped (before the namespace goes).
pub struct BusyboxRoot {
    pub t: tempfile::TempDir,
    pub root: PathBuf,
    /// The temporary directory (for the test's own files).
    pub dir: PathBuf,
    pub ns: TestNetns,
}

impl BusyboxRoot {
    pub fn new(dirs: &[&str], links: &[&str]) -> BusyboxRoot {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let tarball = t.path().join("busybox.tar");
        RootfsTar::busybox(dirs, links).write(&tarball);
        let ns = TestNetns::new("host");
        ns.host_berth(&root);
        ok(
            &root,
            &["import", tarball.to_str().unwrap(), "busybox:latest"],
        );
        BusyboxRoot {
            dir: t.path().to_path_buf(),
            root,
            t,
            ns,
        }
    }

    pub fn ok(&self, args: &[&str]) -> String {
        ok(&self.root, args)
    }
}

impl Drop for BusyboxRoot {
    fn drop(&mut self) {
        let ids = berth(&self.root, &["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = berth(&self.root, &["rm", "-f", id]);
        }
    }
}

/// A loop device over an 8 MiB file of the test's, detached when dropped: a block device
/// the tests may read and write (the host's own disks are not touched).
pub struct LoopDevice(pub String);

impl LoopDevice {
    pub fn new(dir: &Path) -> LoopDevice {
        let img = dir.join("loop.img");
        std::fs::File::create(&img)
            .and_then(|f| f.set_len(8 << 20))
            .unwrap();
        let o = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&img)
            .output()
            .unwrap();
        assert!(o.status.success(), "losetup: {o:?}");
        LoopDevice(String::from_utf8(o.stdout).unwrap().trim().to_string())
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

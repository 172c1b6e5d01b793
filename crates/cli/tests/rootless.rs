//! Rootless Berth as an ordinary user runs it: a login user made by the
//! test (with subordinate ids in /etc/subuid and /etc/subgid, and one
//! without) pulls from a local registry, runs, execs, publishes ports,
//! builds, commits, copies and pushes with no root at all.
//!
//! The user, its subordinate ranges, its processes (the namespace holder,
//! monitors, slirp4netns) and its files are removed when a test ends, also
//! when it fails. `/dev/net/tun` is 0600 on these machines; the test makes
//! it 0666 as udev would on a normal host and puts the mode back after.

#[path = "../../registry/tests/common/mod.rs"]
mod regcommon;

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use regcommon::Registry;

/// useradd/userdel and the subordinate id files, one test at a time.
static USERS: Mutex<()> = Mutex::new(());

/// A user made for a test, removed with everything it owns on drop.
struct TestUser {
    name: String,
    uid: u32,
    /// 0755: home/ (the user's), run/ (its XDG_RUNTIME_DIR), bin/berth.
    dir: tempfile::TempDir,
    /// The first of its 65536 subordinate ids, if it has any.
    sub_start: Option<u32>,
}

fn sh(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("spawn")
}

fn must(cmd: &mut Command) -> String {
    let o = sh(cmd);
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Removes `name`'s lines from /etc/subuid and /etc/subgid.
fn drop_ranges(name: &str) {
    for f in ["/etc/subuid", "/etc/subgid"] {
        if let Ok(t) = std::fs::read_to_string(f) {
            let kept: String = t
                .lines()
                .filter(|l| !l.starts_with(&format!("{name}:")))
                .map(|l| format!("{l}\n"))
                .collect();
            let _ = std::fs::write(f, kept);
        }
    }
}

impl TestUser {
    fn new(tag: &str, with_ranges: bool) -> TestUser {
        let _g = USERS.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id();
        let name = format!("brl{tag}{}", pid % 100_000);
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // No automatic ranges: the test chooses them (or none).
        must(Command::new("useradd").args([
            "-M",
            "-d",
            &dir.path().join("home").to_string_lossy(),
            "-s",
            "/bin/sh",
            "-K",
            "SUB_UID_COUNT=0",
            "-K",
            "SUB_GID_COUNT=0",
            &name,
        ]));
        let uid: u32 = must(Command::new("id").args(["-u", &name]))
            .trim()
            .parse()
            .unwrap();
        let mut u = TestUser {
            name,
            uid,
            dir,
            sub_start: None,
        };
        if with_ranges {
            // High above any login user's, different for each test process.
            let start =
                2_000_000_000 + (pid % 10_000) * 140_000 + if tag == "a" { 0 } else { 70_000 };
            for f in ["/etc/subuid", "/etc/subgid"] {
                let mut t = std::fs::read_to_string(f).unwrap_or_default();
                t.push_str(&format!("{}:{start}:65536\n", u.name));
                std::fs::write(f, t).unwrap();
            }
            u.sub_start = Some(start);
        }
        for d in ["home", "run"] {
            let p = u.dir.path().join(d);
            std::fs::create_dir(&p).unwrap();
            std::os::unix::fs::chown(&p, Some(uid), Some(uid)).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        // Its own copy: the build's target directory need not be reachable
        // by other users.
        let bin = u.dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_berth"), bin.join("berth")).unwrap();
        u
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A command run as the user, with a login's environment and nothing
    /// of ours (no BERTH_ROOT).
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.uid))
            .arg("--clear-groups")
            .arg("--")
            .arg("env")
            .arg("-i")
            .arg(format!("HOME={}", self.path("home").display()))
            .arg(format!("XDG_RUNTIME_DIR={}", self.path("run").display()))
            .arg(format!("USER={}", self.name))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .arg(program);
        c
    }

    fn berth(&self, args: &[&str]) -> Output {
        sh(self
            .command(&self.path("bin/berth").to_string_lossy())
            .args(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.berth(args);
        assert!(
            o.status.success(),
            "berth {args:?} as {}: {}{}",
            self.name,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Fails with a message; stderr.
    fn fails(&self, args: &[&str]) -> String {
        let o = self.berth(args);
        assert!(
            !o.status.success(),
            "berth {args:?} should fail: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let ids = self.berth(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = self.berth(&["rm", "-f", id]);
        }
        let _g = USERS.lock().unwrap_or_else(|e| e.into_inner());
        // The namespace holder, monitors, slirp4netns: all the user's.
        for _ in 0..50 {
            let _ = sh(Command::new("pkill").args(["-KILL", "-u", &self.name]));
            let left = sh(Command::new("pgrep").args(["-u", &self.name]));
            if !left.status.success() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = sh(Command::new("userdel").args(["-f", &self.name]));
        drop_ranges(&self.name);
    }
}

/// `/dev/net/tun` usable by users (as udev makes it), its mode put back on
/// drop.
struct TunOpen(Option<u32>);

impl TunOpen {
    fn new() -> TunOpen {
        let p = Path::new("/dev/net/tun");
        let old = std::fs::metadata(p)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777);
        if old.is_some_and(|m| m & 0o006 != 0o006) {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).unwrap();
            return TunOpen(old);
        }
        TunOpen(None)
    }
}

impl Drop for TunOpen {
    fn drop(&mut self) {
        if let Some(m) = self.0 {
            let _ = std::fs::set_permissions("/dev/net/tun", std::fs::Permissions::from_mode(m));
        }
    }
}

const LINKS: &[&str] = &[
    "sh", "ls", "id", "cat", "touch", "mkdir", "httpd", "echo", "sleep", "chown", "chmod", "rm",
    "cp", "mknod", "stat", "tty", "true", "wget", "grep",
];

/// Images the root engine builds and pushes to `reg`: `rl/busybox` and
/// `rl/owners` (a layer with files of several owners, a setuid binary, a
/// device node, and a directory replaced in a later layer: an opaque
/// whiteout).
fn push_images(reg: &Registry) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let tarball = t.path().join("busybox.tar");
    common::RootfsTar::busybox(&["etc", "tmp", "proc", "sys", "dev"], LINKS).write(&tarball);
    let r = |args: &[&str]| common::ok(&root, args);
    r(&["import", tarball.to_str().unwrap(), "busybox:latest"]);
    let ctx = t.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:latest\n\
         RUN mkdir -p /data/sub && touch /data/sub/old && chown -R 1000:1000 /data \
             && touch /own2 && chown 65534:100 /own2 \
             && cp /bin/busybox /suid && chmod 4755 /suid && mknod /devnull c 1 3\n\
         RUN rm -rf /data/sub && mkdir /data/sub && touch /data/sub/new\n",
    )
    .unwrap();
    let owners = format!("{}/rl/owners", reg.addr);
    let busybox = format!("{}/rl/busybox", reg.addr);
    r(&[
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        &owners,
        ctx.to_str().unwrap(),
    ]);
    r(&["tag", "busybox:latest", &busybox]);
    r(&["push", &owners]);
    r(&["push", &busybox]);
    t
}

fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let mut last = String::new();
    for _ in 0..100 {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(mut s) => {
                let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
                let mut b = String::new();
                let _ = s.read_to_string(&mut b);
                if !b.is_empty() {
                    return b;
                }
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("127.0.0.1:{port}: {last}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The whole workflow of a user with subordinate ids.
#[test]
fn rootless_user_workflow() {
    let Some(reg) = Registry::start(&[]) else {
        return;
    };
    let _images = push_images(&reg);
    let _tun = TunOpen::new();
    let u = TestUser::new("a", true);
    let owners = format!("{}/rl/owners", reg.addr);
    let busybox = format!("{}/rl/busybox", reg.addr);
    let start = u.sub_start.unwrap();

    // info: rootless, the store in the user's XDG dirs, the id maps.
    let info = u.ok(&["info"]);
    assert!(info.contains("  rootless\n"), "{info}");
    assert!(
        info.contains(&format!(
            "Docker Root Dir: {}",
            u.path("home/.local/share/berth").display()
        )),
        "{info}"
    );
    assert!(
        info.contains(&format!("UID: 0:{}:1 1:{start}:65536", u.uid)),
        "{info}"
    );
    assert!(
        info.contains(&format!("Run Dir: {}", u.path("run/berth").display())),
        "{info}"
    );

    // pull, and a layer's owners, setuid bit, device and opaque directory.
    u.ok(&["pull", "-q", &owners]);
    let ls = u.ok(&[
        "run",
        "--rm",
        &owners,
        "sh",
        "-c",
        "stat -c '%n %u:%g %a' /data /own2 /suid; ls /data/sub; ls /devnull 2>&1 || true; id -u",
    ]);
    assert!(ls.contains("/data 1000:1000 755"), "{ls}");
    assert!(ls.contains("/own2 65534:100 644"), "{ls}");
    assert!(ls.contains("/suid 0:0 4755"), "{ls}");
    assert!(
        ls.contains("new\n") && !ls.contains("old"),
        "the opaque directory: {ls}"
    );
    assert!(ls.contains("No such file"), "the device is left out: {ls}");
    assert!(ls.trim_end().ends_with('0'), "root inside: {ls}");
    // On the host those files belong to the user's subordinate ids.
    let snapshots = u.path("home/.local/share/berth/snapshots");
    let mut found = false;
    for e in std::fs::read_dir(&snapshots).unwrap() {
        let p = e.unwrap().path().join("fs/data");
        if let Ok(m) = std::fs::metadata(&p) {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(m.uid(), start + 999, "{}", p.display());
            found = true;
        }
    }
    assert!(found, "no snapshot has /data");

    // -d, published port reached from the host, exec, logs, stop, restart.
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    u.ok(&[
        "run", "-d", "--name", "web", "-p", &publish, &busybox, "sh", "-c",
        "mkdir -p /www && echo rootless-web > /www/index.html && echo started && exec httpd -f -p 80 -h /www",
    ]);
    assert!(http_get(port).contains("rootless-web"));
    assert_eq!(
        u.ok(&["port", "web"]).trim(),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    assert_eq!(
        u.ok(&["exec", "web", "cat", "/www/index.html"]),
        "rootless-web\n"
    );
    assert!(u.ok(&["logs", "web"]).contains("started"));
    u.ok(&["restart", "-t", "1", "web"]);
    assert!(http_get(port).contains("rootless-web"));
    // The container's root is the user: a setuid-root binary gains nothing.
    let who = u.ok(&["exec", "web", "cat", "/proc/self/uid_map"]);
    let first: Vec<&str> = who.split_whitespace().take(3).collect();
    assert_eq!(first, ["0", u.uid.to_string().as_str(), "1"], "{who}");
    u.ok(&["rm", "-f", "web"]);

    // --rm leaves nothing; -it through a pty.
    assert_eq!(u.ok(&["run", "--rm", &busybox, "echo", "hi"]), "hi\n");
    let tty = sh(u
        .command("script")
        .arg("-qec")
        .arg(format!(
            "{} run -it --rm {busybox} tty",
            u.path("bin/berth").display()
        ))
        .arg("/dev/null"));
    assert!(
        String::from_utf8_lossy(&tty.stdout).contains("/dev/pts/"),
        "{tty:?}"
    );
    assert_eq!(u.ok(&["ps", "-aq"]), "");

    // Volumes.
    u.ok(&[
        "run",
        "--rm",
        "-v",
        "rlvol:/v",
        &busybox,
        "sh",
        "-c",
        "echo kept > /v/f && chown 123 /v/f",
    ]);
    assert_eq!(
        u.ok(&[
            "run", "--rm", "-v", "rlvol:/v", &busybox, "stat", "-c", "%u %n", "/v/f"
        ]),
        "123 /v/f\n"
    );
    u.ok(&["volume", "rm", "rlvol"]);

    // --userns keep-id: the user's own uid inside, owning what it writes.
    let keep = u.ok(&["run", "--rm", "--userns", "keep-id", &busybox, "id", "-u"]);
    assert_eq!(keep.trim(), u.uid.to_string());
    assert!(
        u.fails(&["run", "--rm", "--userns", "host", &busybox, "true"])
            .contains("--userns")
    );

    // A bind mount of root's files: even the container's root cannot read
    // a root-only file or write to root's directory.
    let secret = u.path("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::write(secret.join("key"), "s3cret").unwrap();
    std::fs::set_permissions(secret.join("key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(secret.join("pub"), "public").unwrap();
    let bind = format!("{}:/m", secret.display());
    let out = u.berth(&[
        "run", "--rm", "-v", &bind, &busybox, "sh", "-c",
        "cat /m/pub; echo; cat /m/key && echo READ-KEY; echo x >> /m/pub && echo WROTE; touch /m/new && echo CREATED; chown 0 /m/key && echo CHOWNED; true",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("public"), "{text}");
    for bad in ["READ-KEY", "WROTE", "CREATED", "CHOWNED", "s3cret"] {
        assert!(!text.contains(bad), "{bad}: {text}");
    }
    assert_eq!(
        std::fs::read_to_string(secret.join("pub")).unwrap(),
        "public"
    );
    assert!(!secret.join("new").exists());

    // Limits cannot be enforced on cgroup v1 rootless: podman's warning.
    let lim = u.berth(&["run", "--rm", "-m", "64m", &busybox, "true"]);
    assert!(lim.status.success());
    let cg_v1 = !Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if cg_v1 {
        assert!(
            String::from_utf8_lossy(&lim.stderr).contains(
                "Resource limits are not supported and ignored on cgroups V1 rootless systems"
            ),
            "{lim:?}"
        );
    }

    // build (a RUN that chowns), commit, cp, push: all rootless.
    let ctx = u.path("home/ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {busybox}\nRUN echo built > /built && chown 42:42 /built\n"),
    )
    .unwrap();
    must(Command::new("chown").args([
        "-R",
        &format!("{}:{}", u.uid, u.uid),
        ctx.to_str().unwrap(),
    ]));
    u.ok(&[
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        "rl/built",
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(
        u.ok(&["run", "--rm", "rl/built", "stat", "-c", "%u %n", "/built"]),
        "42 /built\n"
    );
    u.ok(&["create", "--name", "c1", &busybox, "true"]);
    u.ok(&["cp", &format!("{}/Dockerfile", ctx.display()), "c1:/copied"]);
    u.ok(&["commit", "c1", "rl/committed"]);
    assert!(
        u.ok(&["run", "--rm", "rl/committed", "cat", "/copied"])
            .contains("chown 42:42")
    );
    let pushed = format!("{}/rl/from-user", reg.addr);
    u.ok(&["tag", "rl/committed", &pushed]);
    u.ok(&["push", &pushed]);
    u.ok(&["rm", "c1"]);
}

/// A user without subordinate ids: one id mapped; images whose files have
/// other owners still run, those files given to root, as documented.
#[test]
fn rootless_user_without_subordinate_ids() {
    let Some(reg) = Registry::start(&[]) else {
        return;
    };
    let _images = push_images(&reg);
    let u = TestUser::new("b", false);
    let owners = format!("{}/rl/owners", reg.addr);
    let info = u.ok(&["info"]);
    assert!(info.contains(&format!("UID: 0:{}:1\n", u.uid)), "{info}");
    assert!(info.contains("no subordinate ids"), "{info}");
    u.ok(&["pull", "-q", &owners]);
    let ls = u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &owners,
        "stat",
        "-c",
        "%n %u:%g %a",
        "/data",
        "/own2",
        "/suid",
    ]);
    assert!(ls.contains("/data 0:0 755"), "{ls}");
    assert!(ls.contains("/own2 0:0 644"), "{ls}");
    assert!(ls.contains("/suid 0:0 4755"), "{ls}");
    // Only root exists inside: changing a file's owner fails.
    let o = u.berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        &owners,
        "chown",
        "1:1",
        "/own2",
    ]);
    assert!(!o.status.success());
}

/// Without XDG_RUNTIME_DIR, a clear error that says what to set.
#[test]
fn rootless_needs_xdg_runtime_dir() {
    let u = TestUser::new("c", false);
    let o = sh(Command::new("setpriv")
        .arg(format!("--reuid={}", u.uid))
        .arg(format!("--regid={}", u.uid))
        .arg("--clear-groups")
        .args(["--", "env", "-i"])
        .arg(format!("HOME={}", u.path("home").display()))
        .arg(u.path("bin/berth"))
        .arg("ps"));
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("XDG_RUNTIME_DIR") && err.contains(&format!("/run/user/{}", u.uid)),
        "{err}"
    );
}

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

#[path = "../../oci-cli/tests/attacks/mod.rs"]
mod attacks;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

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
            // High above any login user's, different for each test process
            // and for each tag (one letter, a to h) within it.
            let slot = u32::from(tag.as_bytes()[0].saturating_sub(b'a')).min(7);
            let start = 2_000_000_000 + (pid % 3_000) * 560_000 + slot * 70_000;
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
        // BERTH_BIN: another build (to show a test fails without a fix).
        let under_test = std::env::var_os("BERTH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_berth")));
        std::fs::copy(under_test, bin.join("berth")).unwrap();
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

    /// `command(program)` started from a shell that first moves itself
    /// into the cgroup v2 directory `cg` (as a login session's scope is).
    fn command_in_cgroup(&self, cg: &Path, program: &str) -> Command {
        let inner = self.command(program);
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec \"$@\"",
                cg.display()
            ))
            .arg("sh")
            .arg(inner.get_program())
            .args(inner.get_args());
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

    // A user-defined network in the rootless network namespace: names resolve between
    // containers, and a published port is reached from the host.
    u.ok(&["network", "create", "rlnet"]);
    let port2 = free_port();
    let publish2 = format!("127.0.0.1:{port2}:80");
    u.ok(&[
        "run",
        "-d",
        "--network",
        "rlnet",
        "--name",
        "db",
        "-p",
        &publish2,
        &busybox,
        "sh",
        "-c",
        "mkdir -p /www && echo from-db > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    let mut got = String::new();
    for _ in 0..50 {
        let o = u.berth(&[
            "run",
            "--rm",
            "--network",
            "rlnet",
            &busybox,
            "wget",
            "-qO-",
            "http://db/",
        ]);
        got = String::from_utf8_lossy(&o.stdout).into_owned();
        if got == "from-db\n" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(got, "from-db\n");
    assert!(http_get(port2).contains("from-db"));
    // An address waits for its old veth (network.rs's an_address_waits_for_its_old_veth)
    // in the rootless network namespace too: a process holding db's namespace keeps its veth
    // on the bridge after `rm`, so the next container gets another address.
    let ip_of = |c: &str| {
        u.ok(&[
            "inspect",
            "-f",
            "{{(index .NetworkSettings.Networks \"rlnet\").IPAddress}}",
            c,
        ])
        .trim()
        .to_string()
    };
    let db_ip = ip_of("db");
    let pid = u.ok(&["inspect", "-f", "{{.State.Pid}}", "db"]);
    let mut holder = Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", pid.trim()))
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    u.ok(&["rm", "-f", "db"]);
    u.ok(&[
        "run",
        "-d",
        "--network",
        "rlnet",
        "--name",
        "next",
        &busybox,
        "sleep",
        "60",
    ]);
    let next_ip = ip_of("next");
    let _ = holder.kill();
    let _ = holder.wait();
    assert_ne!(
        next_ip, db_ip,
        "the address of a veth still on the bridge was handed out again"
    );
    u.ok(&["rm", "-f", "next"]);
    u.ok(&["network", "rm", "rlnet"]);

    // A restart policy: the monitor brings the container back.
    u.ok(&[
        "run",
        "-d",
        "--name",
        "again",
        "--restart",
        "on-failure:2",
        &busybox,
        "sh",
        "-c",
        "sleep 0.2; exit 3",
    ]);
    let mut restarts = String::new();
    for _ in 0..100 {
        restarts = u.ok(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}",
            "again",
        ]);
        if restarts.trim() == "2 exited 3" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(restarts.trim(), "2 exited 3");
    u.ok(&["rm", "again"]);

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

/// The user's pause process killed (an OOM kill, a `pkill -u`): until its parent reaps it,
/// it is a zombie that keeps its name and user namespace but has no mount namespace any
/// more. The next `berth` makes a new one instead of failing to join the dead one. The
/// zombie is kept on purpose: python3, a child subreaper, runs `berth` and does not reap
/// the orphaned pause process until the end.
#[test]
fn rootless_survives_a_killed_pause_process() {
    let u = TestUser::new("g", false);
    let pid_file = u.path("run/berth/pause.pid");
    let script = format!(
        r#"
import ctypes, os, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
def berth():
    r = subprocess.run(sys.argv[1:] + ["ps", "-q"], capture_output=True, text=True)
    return r.returncode, r.stderr
print("first", *berth())
pid = int(open("{pid_file}").read())
os.kill(pid, 9)
while "Z" not in open(f"/proc/{{pid}}/stat").read().split(")")[1].split()[0]:
    time.sleep(0.01)
print("zombie", pid)
print("again", *berth())
new = int(open("{pid_file}").read())
print("new", new != pid)
os.waitpid(pid, 0)
"#,
        pid_file = pid_file.display()
    );
    let bin = u.path("bin/berth");
    let inner = u.command(&bin.to_string_lossy());
    let o = sh(Command::new("python3")
        .arg("-c")
        .arg(&script)
        .arg(inner.get_program())
        .args(inner.get_args()));
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("first 0 \n"), "{out}");
    assert!(out.contains("zombie "), "{out}");
    assert!(out.contains("again 0 \n"), "the next berth failed: {out}");
    assert!(out.contains("new True"), "{out}");
}

/// A cgroup v2 subtree delegated to a user (what systemd's Delegate=yes
/// gives user@UID.service), removed on drop.
struct Delegated {
    base: PathBuf,
}

impl Drop for Delegated {
    fn drop(&mut self) {
        // Container cgroups berth left (none, if it cleaned up), then ours.
        if let Ok(rd) = std::fs::read_dir(&self.base) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&self.base);
    }
}

/// cgroup v2 with a delegated subtree: --memory, --pids-limit and --cpus
/// are enforced for a rootless container (run by scripts/test.sh in the
/// cgroup v2 VM, with --overlay for useradd; skipped on a v1 host).
#[test]
fn rootless_limits_on_a_delegated_cgroup_v2() {
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        eprintln!(
            "skipped: this host is not cgroup v2 (scripts/test.sh runs it in the cgroup v2 VM)"
        );
        return;
    }
    let u = TestUser::new("d", true);
    let d = Delegated {
        base: PathBuf::from(format!("/sys/fs/cgroup/berthrl-{}", std::process::id())),
    };
    let session = d.base.join("session");
    std::fs::create_dir_all(&session).unwrap();
    std::fs::write(d.base.join("cgroup.subtree_control"), "+memory +pids +cpu").unwrap();
    for p in [
        d.base.clone(),
        d.base.join("cgroup.procs"),
        d.base.join("cgroup.subtree_control"),
        d.base.join("cgroup.threads"),
        session.clone(),
        session.join("cgroup.procs"),
    ] {
        std::os::unix::fs::chown(&p, Some(u.uid), Some(u.uid)).unwrap();
    }
    import_busybox(&u);
    let bin = u.path("bin/berth");
    let o = sh(u.command_in_cgroup(&session, &bin.to_string_lossy()).args([
        "run",
        "--rm",
        "--network",
        "none",
        "-m",
        "64m",
        "--pids-limit",
        "20",
        "--cpus",
        "0.5",
        "busybox:latest",
        "cat",
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/pids.max",
        "/sys/fs/cgroup/cpu.max",
    ]));
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}{err}");
    assert_eq!(out, "67108864\n20\n50000 100000\n", "{err}");
    assert!(!err.contains("WARNING"), "{err}");
    // Without delegation (the root cgroup's session), a clear warning.
    let o = sh(u.command(&bin.to_string_lossy()).args([
        "run",
        "--rm",
        "--network",
        "none",
        "-m",
        "64m",
        "busybox:latest",
        "true",
    ]));
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no delegated cgroup v2 subtree"),
        "{o:?}"
    );
}

/// The busybox image of LINKS, imported by `u` as `busybox:latest`.
fn import_busybox(u: &TestUser) {
    let tarball = u.path("busybox.tar");
    common::RootfsTar::busybox(&["etc", "tmp", "proc", "sys", "dev"], LINKS).write(&tarball);
    std::fs::set_permissions(&tarball, std::fs::Permissions::from_mode(0o644)).unwrap();
    u.ok(&["import", tarball.to_str().unwrap(), "busybox:latest"]);
}

/// The attempts of breakout.rs (crates/oci-cli/tests/attacks/breakout_probe.c), made by a
/// rootless container: its root is the user, so what it could reach first on the way out is
/// the user's own processes, files and sockets. Every attempt is blocked, with no network
/// and on slirp4netns. The control, `--privileged --network host`, gets through where the
/// guards are off, so a blocked line is a guard's work.
#[test]
fn rootless_breakout_attempts_are_blocked() {
    let _tun = TunOpen::new();
    let u = TestUser::new("e", true);
    import_busybox(&u);
    let probe = attacks::build_breakout_probe(u.dir.path());
    // A process of the user's own, outside the container: the same uid as the
    // container's root, so only the namespaces and the filter keep it out of reach.
    let mut victim = u.command("sleep").arg("120").spawn().unwrap();
    let name = format!("berth-rl-breakout-{}", std::process::id());
    let mut listener = u
        .command(&probe.to_string_lossy())
        .args(["listen", &name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(listener.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "listening\n");
    let vol = format!("{}:/probe:ro", probe.display());
    let pid = victim.id().to_string();
    let run = |extra: &[&str]| {
        let mut a = vec!["run", "--rm", "-v", &vol];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["busybox:latest", "/probe", &pid, &name]);
        u.ok(&a)
    };
    let out = run(&["--network", "none"]);
    // As many as breakout.rs counts: every attempt reported.
    assert_eq!(out.lines().count(), 29, "{out}");
    let allowed: Vec<&str> = out.lines().filter(|l| !l.contains(": blocked")).collect();
    assert!(
        allowed.is_empty(),
        "ways out that were not blocked: {allowed:#?}"
    );
    let out = run(&[]);
    assert_eq!(out.lines().count(), 29, "{out}");
    assert!(!out.contains("ALLOWED"), "{out}");

    let out = run(&["--privileged", "--network", "host"]);
    for way in [
        "mount tmpfs: ALLOWED",
        "unshare(CLONE_NEWNS): ALLOWED",
        "keyctl(JOIN_SESSION_KEYRING): ALLOWED",
        "connect @host-abstract-socket: ALLOWED",
    ] {
        assert!(out.contains(way), "{way} in\n{out}");
    }
    // Still the user, even privileged: the host's files stay out of reach.
    assert!(
        out.contains("write /proc/sys/kernel/core_pattern: blocked"),
        "{out}"
    );
    let _ = listener.kill();
    let _ = listener.wait();
    let _ = victim.kill();
    let _ = victim.wait();
}

/// CVE-2019-5736 (escapes.rs) against a rootless user whose `berth` is their own file, as
/// `cargo install` or a download into ~/.local/bin leaves it. The container's root is that
/// user, so without the guard the binary is writable from inside: the next `berth` the user
/// runs would be the attacker's program, outside the container with all the user's rights.
/// The image is a glibc one holding `/evil` (`#!/proc/self/exe`), the attacker
/// (exe_overwrite.c) and a hostile library (evil_preload.c). Three triggers: `exec` of
/// `/evil` while the container's process waits to write whatever the kernel ran; the same
/// exec with the hostile library loaded into that process; the container's own process
/// being `/evil` with the library. After each, the monitor is killed (nothing executes
/// `berth` any more) and the attacker tries to write. The binary never changes.
#[test]
fn rootless_cve_2019_5736_against_the_users_own_berth() {
    let u = TestUser::new("f", true);
    let bin = u.path("bin/berth");
    std::os::unix::fs::chown(&bin, Some(u.uid), Some(u.uid)).unwrap();
    let before = std::fs::read(&bin).unwrap();
    let host = bin.to_string_lossy().into_owned();
    let out = u.path("out");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::chown(&out, Some(u.uid), Some(u.uid)).unwrap();

    let attacker = attacks::build_exe_overwrite(u.dir.path());
    let lib = attacks::build_evil_preload(u.dir.path());
    let mut tar = common::RootfsTar::busybox(
        &["bin", "etc", "tmp", "out", "proc", "sys", "dev"],
        &["sh", "sleep", "cat", "ls", "true"],
    );
    tar.file("exe_overwrite", &std::fs::read(&attacker).unwrap(), 0o755)
        .file("evil.so", &std::fs::read(&lib).unwrap(), 0o755)
        .file("evil", b"#!/proc/self/exe\n", 0o755);
    tar.libraries(&attacks::dynamic_deps(&bin));
    let tarball = u.path("hostile.tar");
    tar.write(&tarball);
    std::fs::set_permissions(&tarball, std::fs::Permissions::from_mode(0o644)).unwrap();
    u.ok(&["import", tarball.to_str().unwrap(), "hostile:latest"]);

    let vol = format!("{}:/out", out.display());
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_default();
    let kill_monitor = |c: &str| {
        let id = u.ok(&["inspect", "-f", "{{.Id}}", c]).trim().to_string();
        // With its output keeper: nothing executes `berth` for it any more.
        for pid in common::monitor_and_keeper_pids(&id) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        // Nor the user's pause process (as after a crash or `system migrate`; the
        // next `berth` makes a new one), which runs the same binary.
        let _ = sh(Command::new("pkill").args(["-KILL", "-u", &u.name, "-x", "berth-pause"]));
    };

    // 1. `exec C /evil`, the container's process the attacker.
    u.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "a",
        "-v",
        &vol,
        "-e",
        "EXE_GO=/out/go",
        "hostile:latest",
        "sh",
        "-c",
        "/exe_overwrite 30 >/out/attacker 2>&1",
    ]);
    assert!(
        common::wait_until(Duration::from_secs(10), || read("attacker")
            .contains("READY")),
        "the attacker did not start: {}",
        read("attacker")
    );
    let (r, w) = attacks::full_pipe();
    let mut trigger = u.command(&host);
    trigger
        .args(["exec", "a", "/evil"])
        .stdin(Stdio::null())
        .stdout(w.try_clone().unwrap())
        .stderr(w.try_clone().unwrap());
    let child = trigger.spawn().unwrap();
    drop(trigger);
    drop(w);
    let captured = common::wait_until(Duration::from_secs(10), || {
        read("attacker").contains("CAPTURED")
    });
    let drain = attacks::drain(r);
    let t = child.wait_with_output().unwrap();
    kill_monitor("a");
    std::fs::write(out.join("go"), "").unwrap();
    common::wait_until(Duration::from_secs(30), || {
        read("attacker").contains("DONE")
    });
    let said = read("attacker");
    let _ = u.berth(&["rm", "-f", "a"]);
    let _ = drain.join();
    let report = format!("trigger: {t:?}\nattacker:\n{said}");
    attacks::assert_binary_kept(&bin, &before, &said, &report);
    assert!(
        said.contains("DONE"),
        "the attacker did not finish:\n{report}"
    );
    assert!(captured, "the attacker caught nothing:\n{report}");
    assert!(said.contains("DENIED"), "no write was tried:\n{report}");

    // 2. and 3. The hostile library inside whatever the kernel starts for /evil.
    for (name, container_process) in [("b", false), ("c", true)] {
        let result = format!("result-{name}");
        let env = format!("EVIL_RESULT=/out/{result}");
        let trigger = if container_process {
            u.berth(&[
                "run",
                "-d",
                "--network",
                "none",
                "--name",
                name,
                "-v",
                &vol,
                "-e",
                "LD_PRELOAD=/evil.so",
                "-e",
                &env,
                "hostile:latest",
                "/evil",
            ])
        } else {
            u.ok(&[
                "run",
                "-d",
                "--network",
                "none",
                "--name",
                name,
                "-v",
                &vol,
                "hostile:latest",
                "sleep",
                "1000",
            ]);
            u.berth(&[
                "exec",
                "-e",
                "LD_PRELOAD=/evil.so",
                "-e",
                &env,
                name,
                "/evil",
            ])
        };
        if common::wait_until(Duration::from_secs(5), || {
            read(&result).contains("CAPTURED")
        }) {
            kill_monitor(name);
            common::wait_until(Duration::from_secs(30), || read(&result).contains("DONE"));
        }
        let said = read(&result);
        let logs = u.berth(&["logs", name]);
        let logs = format!(
            "{}{}",
            String::from_utf8_lossy(&logs.stdout),
            String::from_utf8_lossy(&logs.stderr)
        );
        let _ = u.berth(&["rm", "-f", name]);
        let report = format!("{name}: trigger: {trigger:?}\nlogs: {logs}\nresult:\n{said}");
        attacks::assert_binary_kept(&bin, &before, &said, &report);
        let stderr = String::from_utf8_lossy(&trigger.stderr);
        assert!(
            stderr.contains("berth-exec") || logs.contains("berth-exec") || said.contains("DENIED"),
            "neither the exec helper nor a denied write:\n{report}"
        );
    }
}

/// The namespace modes as a rootless user: `--pid host` shows the user's own processes
/// outside any container (the host's /proc bound, as podman does: a new proc mount of the
/// host's pid namespace is refused to the user's namespace), `--pid container:X` and `--ipc container:X` join another
/// rootless container's namespaces, `--uts host` has the host's name, `--ipc host` the
/// host's System V limits.
#[test]
fn rootless_namespace_modes() {
    let u = TestUser::new("n", true);
    import_busybox(&u);
    let mut outside = u.command("sleep").arg("300").spawn().unwrap();
    let pid = outside.id();
    let run = |flags: &[&str], script: &str| {
        let mut a = vec!["run", "--rm", "--network", "none"];
        a.extend_from_slice(flags);
        a.extend_from_slice(&["busybox", "sh", "-c", script]);
        u.berth(&a)
    };
    let o = run(
        &["--pid", "host"],
        &format!(
            "cat /proc/{pid}/cmdline | busybox tr '\\0' ' '; echo; echo $$; \
             busybox wc -c < /proc/timer_list"
        ),
    );
    let _ = outside.kill();
    let _ = outside.wait();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{o:?}");
    assert!(out.starts_with("sleep 300 \n"), "{o:?}");
    assert_ne!(
        out.lines().nth(1),
        Some("1"),
        "not pid 1 in the host's namespace: {o:?}"
    );
    // The host's /proc is bound there, with the masked paths still masked (timer_list,
    // root's only on the host, is /dev/null there).
    assert_eq!(out.lines().nth(2), Some("0"), "/proc/timer_list: {o:?}");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let o = run(&["--uts", "host"], "busybox hostname");
    assert_eq!(String::from_utf8_lossy(&o.stdout), hostname, "{o:?}");
    u.ok(&[
        "run",
        "-d",
        "--name",
        "x",
        "--network",
        "none",
        "--ipc",
        "shareable",
        "busybox",
        "sh",
        "-c",
        "echo shared > /dev/shm/f; sleep 300",
    ]);
    let o = run(
        &["--pid", "container:x", "--ipc", "container:x"],
        "busybox ps -o comm | grep -c sleep; cat /dev/shm/f",
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1\nshared\n", "{o:?}");
    u.ok(&["rm", "-f", "x"]);
}

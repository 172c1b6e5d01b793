//! The container commands end to end: the `berth` binary as a user runs
//! it, on a busybox image made in the test from Debian's /bin/busybox
//! (busybox-static), under a temporary `--root` (its `run/` dir holds the
//! runtime state, so nothing stays on the host; every container is
//! removed and its cgroup checked gone).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{
    LoopDevice, RootfsTar, TestNetns, berth, berth_command, berth_shell, fails, monitor_pids, ok,
};

const LINKS: &[&str] = &[
    "sh", "echo", "cat", "ls", "sleep", "true", "false", "id", "hostname", "pwd", "touch", "grep",
    "mount", "tty", "seq", "head", "wc", "env", "kill", "yes", "mkdir", "ln", "tr", "readlink",
    "df",
];

/// A temporary root with `busybox:latest` imported.
struct Fixture {
    _t: tempfile::TempDir,
    root: PathBuf,
    dir: PathBuf,
    /// The namespace that plays the host for every `berth` of this fixture.
    ns: Option<TestNetns>,
    /// This machine's own nftables ruleset when the fixture was made.
    ruleset: String,
}

impl Fixture {
    fn new() -> Fixture {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let dir = t.path().to_path_buf();
        let pw = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:u:/home/u:/bin/sh\n";
        let mut tar = RootfsTar::busybox(&["bin", "etc", "tmp", "mnt", "data"], LINKS);
        tar.file("etc/passwd", pw.as_bytes(), 0o644);
        let tarball = t.path().join("busybox.tar");
        tar.write(&tarball);
        let ruleset = common::host_ruleset();
        let ns = TestNetns::new("host");
        ns.host_berth(&root);
        ok(
            &root,
            &["import", tarball.to_str().unwrap(), "busybox:latest"],
        );
        Fixture {
            _t: t,
            root,
            dir,
            ns: Some(ns),
            ruleset,
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&self.root, args)
    }

    fn fails(&self, args: &[&str], code: i32) -> String {
        fails(&self.root, args, code)
    }

    /// `create ARGS busybox true` is refused (125) with a message containing `msg` (in any
    /// case).
    fn create_refused(&self, args: &[&str], msg: &str) {
        let mut a = vec!["create"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["busybox", "true"]);
        let e = self.fails(&a, 125);
        assert!(
            e.to_lowercase().contains(&msg.to_lowercase()),
            "{args:?}: {e}"
        );
    }

    fn inspect(&self, c: &str) -> Value {
        let v: Value = serde_json::from_str(&self.ok(&["inspect", c])).unwrap();
        v[0].clone()
    }

    fn state(&self, c: &str) -> String {
        self.inspect(c)["State"]["Status"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn wait_for(&self, c: &str, want: &str) {
        let t = Instant::now();
        loop {
            let o = berth(&self.root, &["inspect", "-f", "{{.State.Status}}", c]);
            if o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == want {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "{c} never became {want}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Remove whatever a failed test left running, then check that
        // nothing of it stays on the host.
        let ids = berth(&self.root, &["ps", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = berth(&self.root, &["rm", "-f", id]);
            assert!(cgroup_gone(id), "cgroup of {id} left behind");
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = self.root.to_string_lossy().to_string();
        for l in mounts.lines().filter(|l| l.contains(&root)) {
            let target = l.split(' ').nth(4).unwrap_or("").to_string();
            let _ = Command::new("umount").arg("-l").arg(&target).status();
            if !std::thread::panicking() {
                panic!("mount left behind: {l}");
            }
        }
        // The namespace goes (with berth0 and Berth's table in it); this machine's own
        // interfaces and firewall were never touched.
        let name = self.ns.take().map(|n| n.name.clone());
        if !std::thread::panicking() {
            if let Some(name) = name {
                assert!(
                    !common::leftover_namespaces().contains(&name),
                    "namespace {name} left behind"
                );
            }
            assert_eq!(
                common::host_ruleset(),
                self.ruleset,
                "this machine's own nftables ruleset changed"
            );
        }
    }
}

/// Whether no hierarchy has the container's cgroup (v2 or v1).
fn cgroup_gone(id: &str) -> bool {
    let name = format!("berth-{id}");
    if Path::new("/sys/fs/cgroup").join(&name).exists() {
        return false;
    }
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .all(|h| !h.path().join(&name).exists())
}

fn out_err(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn run_in_the_foreground_gives_output_and_exit_codes() {
    let f = Fixture::new();
    let o = berth(
        &f.root,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    );
    let (out, err) = out_err(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert_eq!(out, "out\n");
    assert!(err.contains("err"), "{err}");
    assert_eq!(f.ok(&["run", "--rm", "busybox", "echo", "a", "b"]), "a b\n");
    // docker's codes: 127 not found, 126 not executable, 125 engine error.
    let e = f.fails(&["run", "--rm", "busybox", "nosuchprogram"], 127);
    assert!(e.contains("executable file not found"), "{e}");
    f.fails(&["run", "--rm", "busybox", "/etc/passwd"], 126);
    // (--pull never: the default would look for it on Docker Hub.)
    let e = f.fails(&["run", "--rm", "--pull", "never", "nosuchimage"], 125);
    assert!(e.contains("no such image: nosuchimage"), "{e}");
    f.ok(&["create", "--name", "taken", "busybox", "true"]);
    let e = f.fails(&["run", "--name", "taken", "busybox", "true"], 125);
    assert!(
        e.contains("name \"/taken\" is already in use by container"),
        "{e}"
    );
    let e = f.fails(&["run", "--name", "bad/name", "busybox", "true"], 125);
    assert!(e.contains("invalid container name"), "{e}");
    let e = f.fails(&["run", "--bogus", "busybox"], 125);
    assert!(e.contains("unknown flag: --bogus"), "{e}");
    // A failed start leaves the container created with the exit code.
    f.fails(&["run", "--name", "nf", "busybox", "nosuch"], 127);
    let v = f.inspect("nf");
    assert_eq!(v["State"]["Status"], "created");
    assert_eq!(v["State"]["ExitCode"], 127);
    // --rm containers are gone.
    let all = f.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = all.lines().collect();
    names.sort();
    assert_eq!(names, ["nf", "taken"]);
    f.ok(&["rm", "taken", "nf"]);
}

#[test]
fn detached_logs_survive_the_cli_and_ps_inspect_show_it() {
    let f = Fixture::new();
    let id = f
        .ok(&[
            "run",
            "-d",
            "--name",
            "ticker",
            "-l",
            "app=t",
            "busybox",
            "sh",
            "-c",
            "for i in 1 2 3; do echo line $i; echo oops >&2; done; sleep 0.3; echo done",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    // The CLI has exited; the monitor keeps collecting output.
    assert_eq!(f.ok(&["wait", "ticker"]), "0\n");
    let logs = berth(&f.root, &["logs", "ticker"]);
    let (out, err) = out_err(&logs);
    assert_eq!(out, "line 1\nline 2\nline 3\ndone\n");
    assert_eq!(err, "oops\noops\noops\n");
    assert_eq!(f.ok(&["logs", "--tail", "1", "ticker"]), "done\n");
    let ts = f.ok(&["logs", "-t", "--tail", "1", "ticker"]);
    assert!(ts.starts_with("20") && ts.contains("Z done"), "{ts}");
    // docker's json-file format.
    let v = f.inspect("ticker");
    let log = std::fs::read_to_string(v["LogPath"].as_str().unwrap()).unwrap();
    let first: Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert!(first["log"] == "line 1\n" || first["log"] == "oops\n");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["Id"], id);
    assert_eq!(v["Name"], "/ticker");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["Running"], false);
    assert_eq!(v["Path"], "sh");
    assert_eq!(v["Config"]["Labels"]["app"], "t");
    assert_eq!(v["HostConfig"]["NetworkMode"], "bridge");
    // ps: default table, -a, filters, formats.
    assert_eq!(f.ok(&["ps", "-q"]), "");
    let table = f.ok(&["ps", "-a"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&id[..12]) && row.contains("Exited (0)") && row.ends_with("ticker"),
        "{row}"
    );
    // docker 28: arguments with a space in single quotes, cut at 20.
    assert!(row.contains("\"sh -c 'for i in 1 2…\""), "{row}");
    assert_eq!(f.ok(&["ps", "-aq", "--no-trunc"]).trim(), id);
    assert_eq!(
        f.ok(&[
            "ps",
            "-a",
            "--filter",
            "status=exited",
            "--format",
            "{{.ID}} {{.State}}"
        ])
        .trim(),
        format!("{} exited", &id[..12])
    );
    assert_eq!(
        f.ok(&["ps", "-a", "--filter", "label=app=t", "-q"]).trim(),
        &id[..12]
    );
    assert_eq!(f.ok(&["ps", "-a", "--filter", "status=running", "-q"]), "");
    assert_eq!(
        f.ok(&["ps", "-n", "1", "--format", "{{.Names}}"]),
        "ticker\n"
    );
    let e = f.fails(&["ps", "--filter", "bogus=1"], 1);
    assert!(e.contains("invalid filter"), "{e}");
    assert_eq!(
        f.ok(&[
            "inspect",
            "-f",
            "{{.State.ExitCode}} {{.Config.Image}}",
            &id[..8]
        ]),
        "0 busybox\n"
    );
    f.ok(&["rename", "ticker", "tocker"]);
    f.ok(&["rm", "tocker"]);
    let e = f.fails(&["inspect", "tocker"], 1);
    assert!(e.to_lowercase().contains("no such"), "{e}");
}

#[test]
fn logs_follow_and_rotation() {
    let f = Fixture::new();
    f.ok(&[
        "run",
        "-d",
        "--name",
        "rot",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        "seq 1 2000",
    ]);
    assert_eq!(f.ok(&["wait", "rot"]), "0\n");
    let path = PathBuf::from(f.inspect("rot")["LogPath"].as_str().unwrap());
    assert!(Path::new(&format!("{}.1", path.display())).exists());
    assert!(Path::new(&format!("{}.2", path.display())).exists());
    assert!(!Path::new(&format!("{}.3", path.display())).exists());
    for i in ["", ".1", ".2"] {
        let len = std::fs::metadata(format!("{}{i}", path.display()))
            .unwrap()
            .len();
        assert!(len <= 2048, "{i}: {len}");
    }
    let logs = f.ok(&["logs", "rot"]);
    assert!(logs.ends_with("2000\n"), "{logs}");
    f.ok(&["rm", "rot"]);
    // -f follows a running container and ends with it.
    f.ok(&[
        "run",
        "-d",
        "--name",
        "fol",
        "busybox",
        "sh",
        "-c",
        "echo a; sleep 1; echo b",
    ]);
    let t = Instant::now();
    assert_eq!(f.ok(&["logs", "-f", "fol"]), "a\nb\n");
    assert!(t.elapsed() < Duration::from_secs(10));
    f.ok(&["rm", "fol"]);
}

#[test]
fn stop_kill_restart_and_rm() {
    let f = Fixture::new();
    // sh as pid 1 ignores SIGTERM: stop falls back to SIGKILL (137).
    f.ok(&["run", "-d", "--name", "s", "busybox", "sleep", "100"]);
    assert_eq!(f.state("s"), "running");
    let pid = f.inspect("s")["State"]["Pid"].as_i64().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let t = Instant::now();
    assert_eq!(f.ok(&["stop", "-t", "1", "s"]), "s\n");
    assert!(t.elapsed() < Duration::from_secs(8));
    let v = f.inspect("s");
    assert_eq!(v["State"]["ExitCode"], 137);
    assert_eq!(v["State"]["Status"], "exited");
    // A trapped SIGTERM ends it with its own status.
    f.ok(&[
        "run",
        "-d",
        "--name",
        "t",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' TERM; while :; do sleep 0.1; done",
    ]);
    f.ok(&["stop", "t"]);
    assert_eq!(f.inspect("t")["State"]["ExitCode"], 7);
    // --stop-signal
    f.ok(&[
        "run",
        "-d",
        "--name",
        "u",
        "--stop-signal",
        "USR1",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 9' USR1; while :; do sleep 0.1; done",
    ]);
    f.ok(&["stop", "u"]);
    assert_eq!(f.inspect("u")["State"]["ExitCode"], 9);
    // restart runs it again.
    f.ok(&["restart", "-t", "1", "s"]);
    assert_eq!(f.state("s"), "running");
    // kill: SIGKILL by default, -s for others.
    f.ok(&["kill", "s"]);
    f.wait_for("s", "exited");
    assert_eq!(f.inspect("s")["State"]["ExitCode"], 137);
    let e = f.fails(&["kill", "s"], 1);
    assert!(e.contains("not running"), "{e}");
    // rm refuses a running container without -f.
    f.ok(&["start", "s"]);
    let e = f.fails(&["rm", "s"], 1);
    assert!(
        e.contains("container is running: stop the container before removing or force remove"),
        "{e}"
    );
    // pause / unpause
    f.ok(&["pause", "s"]);
    assert_eq!(f.state("s"), "paused");
    assert!(f.ok(&["ps"]).contains("(Paused)"));
    f.ok(&["unpause", "s"]);
    assert_eq!(f.state("s"), "running");
    let id = f.inspect("s")["Id"].as_str().unwrap().to_string();
    f.ok(&["rm", "-f", "s"]);
    assert!(cgroup_gone(&id));
    assert!(!f.root.join("containers").join(&id).exists());
    f.ok(&["rm", "t", "u"]);
    assert_eq!(f.ok(&["ps", "-aq"]), "");
    let e = f.fails(&["rm", "nosuch"], 1);
    assert!(e.contains("no such container: nosuch"), "{e}");
}

#[test]
fn rm_flag_removes_after_exit() {
    let f = Fixture::new();
    f.ok(&["run", "--rm", "--name", "a", "busybox", "true"]);
    f.ok(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "b",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2",
    ]);
    let t = Instant::now();
    while !f.ok(&["ps", "-aq"]).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "--rm container stayed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_dir(f.root.join("containers"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn volumes_binds_and_tmpfs() {
    let f = Fixture::new();
    f.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        f.ok(&[
            "run",
            "--rm",
            "-v",
            "data:/data",
            "busybox",
            "cat",
            "/data/f"
        ]),
        "kept\n"
    );
    assert_eq!(f.ok(&["volume", "ls", "-q"]), "data\n");
    let v: Value = serde_json::from_str(&f.ok(&["volume", "inspect", "data"])).unwrap();
    assert_eq!(v[0]["Name"], "data");
    assert_eq!(v[0]["Driver"], "local");
    // bind mounts, read-only or not.
    let host = f.dir.join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("in"), "from host\n").unwrap();
    let spec = format!("{}:/mnt", host.display());
    assert_eq!(
        f.ok(&[
            "run",
            "--rm",
            "-v",
            &spec,
            "busybox",
            "sh",
            "-c",
            "cat /mnt/in; echo back > /mnt/out"
        ]),
        "from host\n"
    );
    assert_eq!(std::fs::read_to_string(host.join("out")).unwrap(), "back\n");
    let ro = format!("type=bind,source={},target=/mnt,readonly", host.display());
    let o = berth(
        &f.root,
        &["run", "--rm", "--mount", &ro, "busybox", "touch", "/mnt/x"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(!host.join("x").exists());
    // A --mount bind of a missing path is refused (a -v one is created, as
    // docker 23+ does: dash_v_takes_relative_paths_and_creates_missing_dirs).
    let e = f.fails(
        &[
            "run",
            "--rm",
            "--mount",
            "type=bind,source=/nonexistent/berth,target=/mnt",
            "busybox",
            "true",
        ],
        125,
    );
    assert!(e.contains("bind source path does not exist"), "{e}");
    // Anonymous volumes go with rm -v; named ones stay and are protected.
    f.ok(&[
        "create",
        "--name",
        "anon",
        "-v",
        "/anon",
        "-v",
        "data:/data",
        "busybox",
        "true",
    ]);
    let vols = f.ok(&["volume", "ls", "-q"]);
    assert_eq!(vols.lines().count(), 2, "{vols}");
    let e = f.fails(&["volume", "rm", "data"], 1);
    assert!(e.contains("volume is in use"), "{e}");
    f.ok(&["rm", "-v", "anon"]);
    assert_eq!(f.ok(&["volume", "ls", "-q"]), "data\n");
    f.ok(&["volume", "rm", "data"]);
    assert_eq!(f.ok(&["volume", "ls", "-q"]), "");
    f.ok(&["volume", "create", "v2"]);
    f.ok(&["volume", "prune", "-f", "-a"]);
    assert_eq!(f.ok(&["volume", "ls", "-q"]), "");
    // --tmpfs and --read-only.
    let out = f.ok(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch:size=1m",
        "busybox",
        "sh",
        "-c",
        "touch /x 2>/dev/null || echo ro; touch /scratch/y && echo tmpfs-ok",
    ]);
    assert_eq!(out, "ro\ntmpfs-ok\n");
}

#[test]
fn process_settings_from_flags() {
    let f = Fixture::new();
    let envf = f.dir.join("env");
    std::fs::write(&envf, "# comment\nFROMFILE=yes\n").unwrap();
    let out = f.ok(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "--env-file",
        envf.to_str().unwrap(),
        "-w",
        "/tmp",
        "-u",
        "1000",
        "-h",
        "myhost",
        "--add-host",
        "db:10.0.0.2",
        "busybox",
        "sh",
        "-c",
        "echo $A $FROMFILE; pwd; id -u; hostname; grep db /etc/hosts; echo $HOSTNAME",
    ]);
    assert_eq!(out, "1 yes\n/tmp\n1000\nmyhost\n10.0.0.2\tdb\nmyhost\n");
    assert_eq!(
        f.ok(&[
            "run",
            "--rm",
            "--entrypoint",
            "echo",
            "busybox",
            "via",
            "entrypoint"
        ]),
        "via entrypoint\n"
    );
    // Limits land in the container's cgroup.
    let (files, want) = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        (
            "/sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max",
            "67108864\n20\n50000 100000\n",
        )
    } else {
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max \
             /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us",
            "67108864\n20\n50000\n100000\n",
        )
    };
    let out = f.ok(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        "--pids-limit",
        "20",
        "--cpus",
        "0.5",
        "busybox",
        "sh",
        "-c",
        &format!("cat {files}"),
    ]);
    assert_eq!(out, want);
    let out = f.ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=100:200",
        "busybox",
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn",
    ]);
    assert_eq!(out, "100\n200\n");
    let e = f.fails(&["run", "--rm", "--memory", "lots", "busybox", "true"], 125);
    assert!(e.contains("size"), "{e}");
}

#[test]
fn default_security_and_privileged() {
    let f = Fixture::new();
    let status = |extra: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(extra);
        a.extend([
            "busybox",
            "sh",
            "-c",
            "grep -E '^(CapBnd|Seccomp|NoNewPrivs):' /proc/self/status",
        ]);
        f.ok(&a)
    };
    let s = status(&[]);
    // docker's default capability set.
    assert!(s.contains("CapBnd:\t00000000a80425fb"), "{s}");
    assert!(s.contains("Seccomp:\t2"), "{s}");
    assert!(s.contains("NoNewPrivs:\t0"), "{s}");
    let s = status(&[
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CHOWN",
        "--security-opt",
        "no-new-privileges",
    ]);
    assert!(s.contains("CapBnd:\t0000000000000001"), "{s}");
    assert!(s.contains("NoNewPrivs:\t1"), "{s}");
    let s = status(&["--privileged"]);
    assert!(s.contains("Seccomp:\t0"), "{s}");
    assert!(!s.contains("CapBnd:\t00000000a80425fb"), "{s}");
    // The seccomp allowlist and missing CAP_SYS_ADMIN stop mount and
    // namespace creation; /proc paths are masked / read-only.
    let out = f.ok(&[
        "run", "--rm", "busybox", "sh", "-c",
        "mount -t tmpfs t /mnt 2>/dev/null || echo no-mount; cat /proc/kcore | wc -c; echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo ro-sys",
    ]);
    assert_eq!(out, "no-mount\n0\nro-sys\n");
    assert_eq!(
        f.ok(&[
            "run",
            "--rm",
            "--privileged",
            "busybox",
            "sh",
            "-c",
            "mount -t tmpfs t /mnt && echo mounted"
        ]),
        "mounted\n"
    );
    // A profile file: here one that denies mkdir.
    let prof = f.dir.join("prof.json");
    std::fs::write(
        &prof,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", prof.display());
    let o = berth(
        &f.root,
        &[
            "run",
            "--rm",
            "--security-opt",
            &opt,
            "busybox",
            "sh",
            "-c",
            "mkdir /tmp/d || echo denied",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "denied\n");
    // --network none: only lo, and it is up. host: the host's interfaces.
    let out = f.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "ls /sys/class/net; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags",
    ]);
    assert!(out.starts_with("lo\n") && out.contains("0x9"), "{out}");
    // The "host" is the fixture's namespace (its lo, and berth0 once a container used it).
    let host = f.ns.as_ref().unwrap().sh(&["ip", "-o", "link"]);
    let out = f.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(out.lines().count(), host.lines().count(), "{out}\n{host}");
    let e = f.fails(
        &["run", "--rm", "--network", "nosuch", "busybox", "true"],
        125,
    );
    assert!(e.contains("network nosuch not found"), "{e}");
}

#[test]
fn killed_monitor_leaves_the_container_tracked() {
    let f = Fixture::new();
    let id = f
        .ok(&["run", "-d", "--name", "m", "busybox", "sleep", "100"])
        .trim()
        .to_string();
    let mons = monitor_pids(&id);
    assert_eq!(mons.len(), 1, "{mons:?}");
    Command::new("kill")
        .args(["-9", &mons[0].to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // The container runs on, tracked without its monitor.
    assert_eq!(f.state("m"), "running");
    assert!(f.ok(&["ps"]).contains("Up "));
    // Stopping it still works; its status cannot be known: 255.
    f.ok(&["stop", "-t", "1", "m"]);
    let v = f.inspect("m");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 255);
    assert!(
        v["State"]["Error"]
            .as_str()
            .unwrap()
            .contains("monitor died")
    );
    // And it starts again under a new monitor.
    f.ok(&["start", "m"]);
    assert_eq!(f.state("m"), "running");
    f.ok(&["rm", "-f", "m"]);
}

#[test]
fn killed_cli_during_run_d_leaves_truthful_state() {
    let f = Fixture::new();
    for delay_ms in [0u64, 5, 15, 30, 60, 120] {
        let mut c = berth_command(&f.root)
            .args(["run", "-d", "busybox", "sleep", "100"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = c.kill();
        let _ = c.wait();
    }
    std::thread::sleep(Duration::from_millis(300));
    let ps = f.ok(&["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.State}}"]);
    for l in ps.lines() {
        let (id, state) = l.split_once(' ').unwrap();
        let v = f.inspect(id);
        match state {
            "running" => {
                let pid = v["State"]["Pid"].as_i64().unwrap();
                assert!(Path::new(&format!("/proc/{pid}")).exists(), "{l}");
                assert_eq!(monitor_pids(id).len(), 1, "{l}");
            }
            "created" | "exited" => {
                assert_eq!(v["State"]["Pid"], 0);
            }
            s => panic!("unexpected state {s}"),
        }
    }
    for l in ps.lines() {
        f.ok(&["rm", "-f", l.split(' ').next().unwrap()]);
    }
}

#[test]
fn fifty_concurrent_runs() {
    let f = Fixture::new();
    let root = f.root.clone();
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let root = root.clone();
            std::thread::spawn(move || {
                let o = berth(&root, &["run", "--rm", "busybox", "echo", &format!("n{i}")]);
                (i, o)
            })
        })
        .collect();
    for h in handles {
        let (i, o) = h.join().unwrap();
        let (out, err) = out_err(&o);
        assert!(o.status.success(), "run {i}: {err}");
        assert_eq!(out, format!("n{i}\n"));
    }
    assert_eq!(f.ok(&["ps", "-aq"]), "");
    // And 20 detached ones with generated names, all distinct.
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let root = root.clone();
            std::thread::spawn(move || ok(&root, &["run", "-d", "busybox", "true"]))
        })
        .collect();
    let ids: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().unwrap().trim().to_string())
        .collect();
    // `run -d` returns once the container runs; prune only takes stopped ones (a
    // container's stop now includes disconnecting it from its network).
    let mut wait = vec!["wait"];
    wait.extend(ids.iter().map(String::as_str));
    f.ok(&wait);
    let names = f.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let mut n: Vec<&str> = names.lines().collect();
    assert_eq!(n.len(), 20);
    n.sort();
    n.dedup();
    assert_eq!(n.len(), 20);
    f.ok(&["container", "prune", "-f"]);
    assert_eq!(f.ok(&["ps", "-aq"]), "");
}

#[test]
fn interactive_tty_through_a_real_pty() {
    let f = Fixture::new();
    let line = format!(
        "{} run -it --rm busybox sh -c 'tty; echo $TERM; exit 4'",
        berth_shell(&f.root)
    );
    let mut c = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("SHELL", "/bin/sh")
        .spawn()
        .unwrap();
    // Keep the pty's input open (script passes EOF on otherwise).
    let stdin = c.stdin.take();
    let o = c.wait_with_output().unwrap();
    drop(stdin);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("xterm"), "{out}");
    assert_eq!(o.status.code(), Some(4), "{out}");
    // Ctrl-P Ctrl-Q detaches; the container runs on.
    let line = format!("{} run -it --name dk busybox sh", berth_shell(&f.root));
    let mut c = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .env("SHELL", "/bin/sh")
        .spawn()
        .unwrap();
    f.wait_for("dk", "running");
    let mut stdin = c.stdin.take().unwrap();
    {
        use std::io::Write;
        stdin.write_all(b"echo typed\r").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        stdin.write_all(&[0x10, 0x11]).unwrap();
    }
    let o = c.wait_with_output().unwrap();
    drop(stdin);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("typed"), "{out}");
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert_eq!(f.state("dk"), "running");
    f.ok(&["rm", "-f", "dk"]);
    // Input typed on the terminal reaches the container.
    let line = format!(
        "{} run -i --rm busybox sh -c 'read x; echo got-$x'",
        berth_shell(&f.root)
    );
    let mut c = Command::new("sh")
        .args(["-c", &line])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let o = c.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "got-hello\n");
}

#[test]
fn exec_runs_in_the_container() {
    let f = Fixture::new();
    f.ok(&[
        "run",
        "-d",
        "--name",
        "ex",
        "-e",
        "FROMRUN=1",
        "busybox",
        "sleep",
        "100",
    ]);
    // Same pid namespace and environment as the container.
    let out = f.ok(&["exec", "ex", "sh", "-c", "echo $$ $FROMRUN; id -u; pwd"]);
    let mut l = out.lines();
    let pid: i32 = l
        .next()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(pid > 1 && pid < 100, "{out}");
    assert!(out.starts_with(&format!("{pid} 1\n0\n/\n")), "{out}");
    assert_eq!(
        f.ok(&[
            "exec",
            "-u",
            "1000",
            "-w",
            "/tmp",
            "-e",
            "X=5",
            "ex",
            "sh",
            "-c",
            "id -u; pwd; echo $X"
        ]),
        "1000\n/tmp\n5\n"
    );
    let o = berth(&f.root, &["exec", "ex", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    let e = f.fails(&["exec", "ex", "nosuch"], 127);
    assert!(e.contains("executable file not found"), "{e}");
    // -i feeds our stdin.
    let mut c = berth_command(&f.root)
        .args(["exec", "-i", "ex", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(b"piped\n").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout),
        "piped\n"
    );
    // -d returns at once; the process runs on in the container.
    f.ok(&["exec", "-d", "ex", "sh", "-c", "echo bg > /tmp/bg"]);
    let t = Instant::now();
    while f.ok(&["exec", "ex", "cat", "/tmp/bg"]) != "bg\n" {
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(50));
    }
    f.ok(&["stop", "-t", "0", "ex"]);
    let e = f.fails(&["exec", "ex", "true"], 1);
    assert!(e.contains("not running"), "{e}");
    f.ok(&["rm", "ex"]);
}

#[test]
fn top_stats_info_version_attach_and_start_a() {
    let f = Fixture::new();
    f.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "--memory",
        "64m",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    let top = f.ok(&["top", "busy"]);
    let mut l = top.lines();
    assert!(l.next().unwrap().contains("PID"));
    let rows: Vec<&str> = l.collect();
    assert_eq!(rows.len(), 1, "{top}");
    assert!(rows[0].contains("while :; do :; done"), "{top}");
    let st = f.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}} {{.PIDs}} {{.CPUPerc}}",
    ]);
    let w: Vec<&str> = st.split_whitespace().collect();
    assert_eq!(w[0], "busy", "{st}");
    assert_eq!(w[3], "64MiB", "{st}");
    assert_eq!(w[4], "1", "{st}");
    let cpu: f64 = w[5].trim_end_matches('%').parse().unwrap();
    assert!(cpu > 10.0, "{st}");
    let info = f.ok(&["info"]);
    assert!(info.contains("Containers: 1\n  Running: 1"), "{info}");
    assert!(info.contains("Images: 1"), "{info}");
    assert!(f.ok(&["version"]).contains("Version:"));
    // --format over docker's /info and {Client, Server} models (what scripts read).
    assert_eq!(
        f.ok(&[
            "info",
            "--format",
            "{{.ContainersRunning}} {{.Images}} {{.Driver}} {{.ClientInfo.Context}}"
        ]),
        "1 1 overlay2 default\n"
    );
    let cg = f.ok(&["info", "-f", "{{.CgroupVersion}}"]);
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    assert_eq!(cg, if v2 { "2\n" } else { "1\n" });
    let v: Value = serde_json::from_str(&f.ok(&["info", "--format", "json"])).unwrap();
    assert_eq!(v["DockerRootDir"], f.root.display().to_string());
    assert_eq!(
        f.ok(&[
            "version",
            "--format",
            "{{.Server.ApiVersion}} {{.Client.Os}}"
        ]),
        "1.45 linux\n"
    );
    // dockerd's warnings for what the kernel cannot enforce, on stderr (this host's blkio
    // has no weight files).
    if !v2 && !Path::new("/sys/fs/cgroup/blkio/blkio.weight").exists() {
        let o = berth(&f.root, &["info"]);
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("WARNING: No blkio weight support\n"),
            "{o:?}"
        );
        assert!(
            v["Warnings"]
                .to_string()
                .contains("No blkio weight support"),
            "{v}"
        );
    }
    f.ok(&["rm", "-f", "busy"]);
    // attach to a running container sees its output and its exit code.
    f.ok(&[
        "run",
        "-d",
        "--name",
        "att",
        "busybox",
        "sh",
        "-c",
        "sleep 0.5; echo late; exit 5",
    ]);
    let o = berth(&f.root, &["attach", "att"]);
    assert_eq!(o.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "late\n");
    // start -a runs a created container attached.
    f.ok(&[
        "create",
        "--name",
        "cr",
        "busybox",
        "sh",
        "-c",
        "echo from-start; exit 2",
    ]);
    assert_eq!(f.state("cr"), "created");
    let o = berth(&f.root, &["start", "-a", "cr"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "from-start\n");
    // and again, right away: logs keep both runs.
    let o = berth(&f.root, &["start", "-a", "cr"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(f.ok(&["logs", "cr"]), "from-start\nfrom-start\n");
    f.ok(&["rm", "att", "cr"]);
}

#[test]
fn foreground_run_forwards_signals() {
    let f = Fixture::new();
    let mut c = berth_command(&f.root)
        .args([
            "run",
            "--rm",
            "--name",
            "sig",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    loop {
        let o = berth(&f.root, &["inspect", "-f", "{{.State.Status}}", "sig"]);
        if o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "running" {
            break;
        }
        if let Ok(Some(st)) = c.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("run ended ({st}) before the container ran: {err}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "sig never became running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status()
        .unwrap();
    let mut out = String::new();
    use std::io::Read;
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let st = c.wait().unwrap();
    assert_eq!(st.code(), Some(42), "{out}");
    assert_eq!(out, "ready\ngot-term\n");
}

#[test]
fn rmi_keeps_images_that_containers_use() {
    let f = Fixture::new();
    f.ok(&["create", "--name", "user", "busybox", "true"]);
    let e = f.fails(&["rmi", "busybox"], 1);
    assert!(e.contains("being used by a container"), "{e}");
    f.ok(&["image", "prune", "-a", "-f"]);
    assert!(f.ok(&["images", "-q"]).len() >= 12);
    // The container still starts from its image.
    assert_eq!(f.ok(&["start", "-a", "user"]), "");
    f.ok(&["rm", "user"]);
    f.ok(&["rmi", "busybox"]);
}

#[test]
fn cp_both_ways_and_export_stay_inside_the_container() {
    let f = Fixture::new();
    f.ok(&[
        "create", "--name", "c", "busybox", "sh", "-c",
        "mkdir -p /data/sub; echo inside > /data/sub/f; ln -s /etc/passwd /data/link; ln -s / /data/rootlink",
    ]);
    berth(&f.root, &["start", "-a", "c"]);
    // Out of a stopped container: a directory, its symlinks kept as links.
    let out = f.dir.join("out");
    f.ok(&["cp", "c:/data", out.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(out.join("sub/f")).unwrap(),
        "inside\n"
    );
    assert_eq!(
        std::fs::read_link(out.join("link")).unwrap(),
        Path::new("/etc/passwd")
    );
    // A symlink on the path resolves inside the container: /data/rootlink/etc/passwd
    // is the container's passwd, never the host's.
    let pw = f.dir.join("pw");
    f.ok(&["cp", "c:/data/rootlink/etc/passwd", pw.to_str().unwrap()]);
    assert!(
        std::fs::read_to_string(&pw)
            .unwrap()
            .contains("user:x:1000")
    );
    let e = f.fails(&["cp", "c:/nope", pw.to_str().unwrap()], 1);
    assert!(e.contains("Could not find the file /nope"), "{e}");
    // Into a running container.
    f.ok(&["run", "-d", "--name", "r", "busybox", "sleep", "100"]);
    let host = f.dir.join("h.txt");
    std::fs::write(&host, "from host\n").unwrap();
    f.ok(&["cp", host.to_str().unwrap(), "r:/tmp/"]);
    assert_eq!(f.ok(&["exec", "r", "cat", "/tmp/h.txt"]), "from host\n");
    f.ok(&["cp", out.to_str().unwrap(), "r:/copied"]);
    assert_eq!(f.ok(&["exec", "r", "cat", "/copied/sub/f"]), "inside\n");
    // A symlink in the container does not redirect a write to the host.
    f.ok(&["exec", "r", "ln", "-s", "/", "/tmp/escape"]);
    f.ok(&["cp", host.to_str().unwrap(), "r:/tmp/escape/tmp/x.txt"]);
    assert_eq!(f.ok(&["exec", "r", "cat", "/tmp/x.txt"]), "from host\n");
    assert!(
        !Path::new("/tmp/x.txt").exists()
            || std::fs::read_to_string("/tmp/x.txt").unwrap() != "from host\n"
    );
    // export: a tar of the whole filesystem.
    let tarball = f.dir.join("c.tar");
    f.ok(&["export", "-o", tarball.to_str().unwrap(), "c"]);
    let mut a = tar::Archive::new(std::fs::File::open(&tarball).unwrap());
    let names: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "bin/busybox"), "{names:?}");
    assert!(names.iter().any(|n| n == "data/sub/f"), "{names:?}");
    f.ok(&["rm", "-f", "r", "c"]);
}

#[test]
fn oom_kill_is_recorded() {
    let f = Fixture::new();
    let o = berth(
        &f.root,
        &[
            "run",
            "--name",
            "oom",
            "--memory",
            "8m",
            "busybox",
            "sh",
            "-c",
            "x=$(head -c 60000000 /dev/zero | tr '\\0' a); echo survived",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let v = f.inspect("oom");
    assert_eq!(v["State"]["OOMKilled"], true);
    assert_eq!(v["State"]["ExitCode"], 137);
    f.ok(&["rm", "oom"]);
}

#[test]
fn sizes_in_ps_and_prune() {
    let f = Fixture::new();
    f.ok(&[
        "run",
        "--name",
        "w",
        "busybox",
        "sh",
        "-c",
        "head -c 300000 /dev/zero > /tmp/big",
    ]);
    let ps = f.ok(&["ps", "-a", "-s", "--format", "{{.Names}} {{.Size}}"]);
    assert!(
        ps.starts_with("w 300kB (virtual ") && ps.ends_with("MB)\n"),
        "{ps}"
    );
    let table = f.ok(&["ps", "-as"]);
    assert!(table.lines().next().unwrap().ends_with("SIZE"), "{table}");
    let out = f.ok(&["container", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space: 300kB"), "{out}");
    assert_eq!(f.ok(&["ps", "-aq"]), "");
}

#[test]
fn init_reaps_forwards_and_keeps_the_exit_code() {
    let f = Fixture::new();
    // pid 1 is berth-init; the command is its child; its status is ours.
    let out = f.ok(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "tr '\\0' ' ' < /proc/1/cmdline; echo; echo parent=$PPID",
    ]);
    assert!(out.starts_with("/sbin/docker-init -- sh -c"), "{out}");
    assert!(out.contains("parent=1"), "{out}");
    let o = berth(
        &f.root,
        &["run", "--rm", "--init", "busybox", "sh", "-c", "exit 9"],
    );
    assert_eq!(o.status.code(), Some(9));
    let o = berth(&f.root, &["run", "--rm", "--init", "busybox", "nothere"]);
    assert_eq!(o.status.code(), Some(127));
    // Orphans are reaped: no zombie after the background children end.
    let out = f.ok(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "sh -c 'sleep 0.1 & sleep 0.1 & exit 0'; sleep 0.6; cat /proc/[0-9]*/stat",
    ]);
    assert!(
        !out.lines()
            .any(|l| l.split(") ").nth(1).is_some_and(|r| r.starts_with('Z'))),
        "zombie left:\n{out}"
    );
    // The init binary is read-only in the container (not even root may
    // change it through /proc/1/exe).
    let out = f.ok(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "echo x > /proc/1/exe && echo WROTE || echo refused",
    ]);
    assert!(out.contains("refused"), "{out}");
    // stop's SIGTERM reaches the command through init: a shell that traps
    // it exits with its own code, quickly.
    let id = f
        .ok(&[
            "run",
            "-d",
            "--init",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 42' TERM; while :; do sleep 0.05; done",
        ])
        .trim()
        .to_string();
    let t = Instant::now();
    f.ok(&["stop", "-t", "10", &id]);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(f.inspect(&id)["State"]["ExitCode"], 42);
    f.ok(&["rm", &id]);
}

#[test]
fn commit_makes_an_image_of_the_changes() {
    let f = Fixture::new();
    f.ok(&[
        "run",
        "--name",
        "src",
        "-e",
        "GREETING=hi",
        "-w",
        "/data",
        "busybox",
        "sh",
        "-c",
        "echo made > /data/new; rm /etc/passwd; mkdir -p /opt/x; echo y > /opt/x/y",
    ]);
    let id = f
        .ok(&[
            "commit",
            "-a",
            "tester",
            "-m",
            "a message",
            "-c",
            "LABEL made=by-commit",
            "src",
            "committed:v1",
        ])
        .trim()
        .to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    // The changes, whiteouts included, and the container's config.
    let out = f.ok(&[
        "run",
        "--rm",
        "committed:v1",
        "sh",
        "-c",
        "cat new /opt/x/y; test -e /etc/passwd && echo passwd-back; echo $GREETING; pwd",
    ]);
    assert_eq!(out, "made\ny\nhi\n/data\n");
    let img: Value = serde_json::from_str(&f.ok(&["image", "inspect", "committed:v1"])).unwrap();
    assert_eq!(img[0]["Author"], "tester");
    assert_eq!(img[0]["Config"]["Labels"]["made"], "by-commit");
    let hist = f.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.Comment}}",
        "committed:v1",
    ]);
    assert!(hist.contains("a message"), "{hist}");
    // A running container is paused for the commit and keeps running.
    let run = f
        .ok(&[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "echo live > /tmp/l; sleep 30",
        ])
        .trim()
        .to_string();
    f.wait_for(&run, "running");
    let t = Instant::now();
    loop {
        let o = berth(&f.root, &["exec", &run, "cat", "/tmp/l"]);
        if o.status.success() || t.elapsed() > Duration::from_secs(10) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f.ok(&["commit", &run, "live:1"]);
    assert_eq!(f.state(&run), "running");
    assert_eq!(f.ok(&["run", "--rm", "live:1", "cat", "/tmp/l"]), "live\n");
    f.ok(&["rm", "-f", &run]);
    f.ok(&["rm", "src"]);
    // Bad input.
    let e = f.fails(&["commit", "no-such-container"], 1);
    assert!(e.contains("no-such-container"), "{e}");
    f.ok(&["create", "--name", "c2", "busybox", "true"]);
    let e = f.fails(&["commit", "-c", "BOGUS x", "c2"], 1);
    assert!(e.contains("BOGUS"), "{e}");
    f.ok(&["rm", "c2"]);
}

#[test]
fn system_df_counts_and_sizes() {
    let f = Fixture::new();
    f.ok(&["volume", "create", "dfvol"]);
    f.ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "dfvol:/data",
        "busybox",
        "sh",
        "-c",
        "head -c 5000 /dev/zero > /tmp/blob; head -c 3000 /dev/zero > /data/v",
    ]);
    let out = f.ok(&["system", "df"]);
    let line = |t: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.starts_with(t))
            .unwrap_or_else(|| panic!("no {t} line in\n{out}"))[t.len()..]
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let imgs = line("Images");
    assert_eq!(&imgs[..2], ["1", "1"], "{out}");
    let ctrs = line("Containers");
    // One stopped container whose writable layer holds the 5 kB file: all
    // of it reclaimable.
    assert_eq!(&ctrs[..2], ["1", "0"], "{out}");
    assert_eq!(ctrs[2], "5kB", "{out}");
    assert_eq!(ctrs[3..].join(" "), "5kB (100%)", "{out}");
    let vols = line("Local Volumes");
    assert_eq!(&vols[..3], ["1", "1", "3kB"], "{out}");
    let json = f.ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(json.contains("Containers 1"), "{json}");
    let v = f.ok(&["system", "df", "-v"]);
    assert!(v.contains("writer") && v.contains("dfvol"), "{v}");
    f.ok(&["rm", "writer"]);
    let e = f.fails(&["system", "bogus"], 125);
    assert!(e.contains("bogus"), "{e}");
}

#[test]
fn new_volumes_start_with_the_image_content() {
    let f = Fixture::new();
    // An image with content at /etc (its passwd) and a VOLUME over it.
    f.ok(&[
        "run",
        "--name",
        "base",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /conf/sub && echo v1 > /conf/a && echo deep > /conf/sub/b && chown -R 1000:1000 /conf/sub && chmod 750 /conf",
    ]);
    f.ok(&["commit", "-c", "VOLUME /conf", "base", "withvol:1"]);
    f.ok(&["rm", "base"]);
    // A named volume, new: seeded from the image; then it keeps its own.
    let out = f.ok(&[
        "run",
        "--rm",
        "-v",
        "confvol:/conf",
        "withvol:1",
        "sh",
        "-c",
        "cat /conf/a /conf/sub/b; stat -c '%u %a' /conf/sub /conf; echo v2 > /conf/a",
    ]);
    assert_eq!(out, "v1\ndeep\n1000 755\n0 750\n");
    let out = f.ok(&[
        "run",
        "--rm",
        "-v",
        "confvol:/conf",
        "withvol:1",
        "cat",
        "/conf/a",
    ]);
    assert_eq!(out, "v2\n");
    // The image's VOLUME alone: an anonymous volume, seeded too.
    let out = f.ok(&["run", "--rm", "withvol:1", "cat", "/conf/sub/b"]);
    assert_eq!(out, "deep\n");
    // nocopy: empty.
    let out = f.ok(&[
        "run",
        "--rm",
        "-v",
        "empty:/conf:nocopy",
        "withvol:1",
        "ls",
        "-A",
        "/conf",
    ]);
    assert_eq!(out, "");
    f.ok(&["volume", "rm", "confvol", "empty"]);
}

#[test]
fn stats_streams_until_interrupted() {
    use std::io::BufRead;
    let f = Fixture::new();
    let id = f
        .ok(&["run", "-d", "busybox", "sh", "-c", "while :; do :; done"])
        .trim()
        .to_string();
    let mut child = berth_command(&f.root)
        .args(["stats", "--format", "{{.Name}} {{.CPUPerc}} {{.PIDs}}", &id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut samples = Vec::new();
    let t = Instant::now();
    while samples.len() < 3 && t.elapsed() < Duration::from_secs(20) {
        match lines.next() {
            Some(Ok(l)) if !l.trim().is_empty() => samples.push(l),
            Some(_) => {}
            None => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(samples.len(), 3, "{samples:?}");
    // A busy loop: close to one CPU in the later samples, one process.
    let cpu: f64 = samples[2]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(cpu > 20.0, "{samples:?}");
    assert!(samples[2].ends_with(" 1"), "{samples:?}");
    f.ok(&["rm", "-f", &id]);
}

#[test]
fn restart_policies() {
    let f = Fixture::new();
    let wait_count = |id: &str, n: i64| {
        let t = Instant::now();
        loop {
            let c: i64 = f
                .ok(&["inspect", "-f", "{{.RestartCount}}", id])
                .trim()
                .parse()
                .unwrap();
            if c >= n {
                return c;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "{id}: {c} restarts");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // on-failure:2: the first run and two restarts, then it stays exited.
    let id = f
        .ok(&[
            "run",
            "-d",
            "--restart",
            "on-failure:2",
            "busybox",
            "sh",
            "-c",
            "echo run; exit 3",
        ])
        .trim()
        .to_string();
    assert_eq!(wait_count(&id, 2), 2);
    std::thread::sleep(Duration::from_millis(800));
    f.wait_for(&id, "exited");
    assert_eq!(
        f.ok(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.ExitCode}}",
            &id
        ]),
        "2 3\n"
    );
    assert_eq!(f.ok(&["logs", &id]), "run\nrun\nrun\n");
    // on-failure: a clean exit is not restarted.
    let ok = f
        .ok(&["run", "-d", "--restart", "on-failure", "busybox", "true"])
        .trim()
        .to_string();
    assert_eq!(f.ok(&["wait", &ok]), "0\n");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(f.ok(&["inspect", "-f", "{{.RestartCount}}", &ok]), "0\n");
    // always: restarted until stopped; a stop sticks.
    let al = f
        .ok(&[
            "run",
            "-d",
            "--restart",
            "always",
            "busybox",
            "sh",
            "-c",
            "sleep 0.1",
        ])
        .trim()
        .to_string();
    wait_count(&al, 2);
    f.ok(&["stop", &al]);
    let after: i64 = f
        .ok(&["inspect", "-f", "{{.RestartCount}}", &al])
        .trim()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let later: i64 = f
        .ok(&["inspect", "-f", "{{.RestartCount}}", &al])
        .trim()
        .parse()
        .unwrap();
    assert!(later <= after + 1, "{after} -> {later}");
    assert_eq!(f.state(&al), "exited");
    // Bad input.
    f.fails(
        &["run", "--rm", "--restart", "always", "busybox", "true"],
        125,
    );
    f.fails(&["run", "--restart", "sometimes", "busybox", "true"], 125);
    f.fails(&["run", "--restart", "always:3", "busybox", "true"], 125);
    f.ok(&["rm", "-f", &id, &ok, &al]);
}

#[test]
fn stdin_backpressure_does_not_stall_the_output() {
    use std::io::{Read, Write};
    let f = Fixture::new();
    // The container writes 300 kB before it reads its 2 MB of input: the
    // monitor must keep copying output while the input waits.
    let mut c = berth_command(&f.root)
        .args([
            "run",
            "--rm",
            "-i",
            "busybox",
            "sh",
            "-c",
            "head -c 300000 /dev/zero | tr '\\0' a; echo; wc -c",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..32 {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let mut out = String::new();
    let mut so = c.stdout.take().unwrap();
    let t = Instant::now();
    let reader = std::thread::spawn(move || {
        so.read_to_string(&mut out).unwrap();
        out
    });
    loop {
        if let Ok(Some(_)) = c.try_wait() {
            break;
        }
        if t.elapsed() > Duration::from_secs(30) {
            let _ = c.kill();
            panic!("berth run -i stalled");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    writer.join().unwrap();
    let out = reader.join().unwrap();
    let mut lines = out.lines();
    assert_eq!(lines.next().map(str::len), Some(300_000));
    assert_eq!(
        lines.next().map(str::trim),
        Some("2097152"),
        "{}",
        &out[out.len().saturating_sub(100)..]
    );
}

/// `cp` resolves a running container's paths through its own mounts, as docker does
/// (docker 28 CLI on dockerd 20.10): a file in a volume copies out, a copy into a
/// volume lands in the volume (not in the rootfs underneath), and the engine's
/// /etc/hosts copies out with its content.
#[test]
fn cp_sees_volumes_and_the_engines_etc_files() {
    let f = Fixture::new();
    f.ok(&[
        "run",
        "-d",
        "--name",
        "v",
        "-v",
        "cpvol:/vol",
        "busybox",
        "sh",
        "-c",
        "echo in-volume > /vol/f; sleep 1000",
    ]);
    let out = f.dir.join("cpout");
    std::fs::create_dir(&out).unwrap();
    assert!(wait_until(|| {
        berth(
            &f.root,
            &["cp", "v:/vol/f", out.join("f").to_str().unwrap()],
        )
        .status
        .success()
    }));
    assert_eq!(
        std::fs::read_to_string(out.join("f")).unwrap(),
        "in-volume\n"
    );
    f.ok(&["cp", "v:/etc/hosts", out.join("hosts").to_str().unwrap()]);
    let hosts = std::fs::read_to_string(out.join("hosts")).unwrap();
    assert!(
        hosts.contains("localhost"),
        "empty or wrong /etc/hosts: {hosts:?}"
    );
    std::fs::write(out.join("up"), "from-host\n").unwrap();
    f.ok(&["cp", out.join("up").to_str().unwrap(), "v:/vol/up"]);
    assert_eq!(f.ok(&["exec", "v", "cat", "/vol/up"]), "from-host\n");
    f.ok(&["rm", "-f", "v"]);
    f.ok(&["volume", "rm", "cpvol"]);
}

fn wait_until(mut ok: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ok()
}

/// `-w DIR` makes a working directory the image lacks (docker does).
#[test]
fn workdir_is_created() {
    let f = Fixture::new();
    let out = f.ok(&["run", "--rm", "-w", "/made/for/me", "busybox", "pwd"]);
    assert_eq!(out, "/made/for/me\n");
}

/// A `commit` killed while it has the container paused (SIGKILL: nothing of it runs
/// again) does not leave the container frozen: the next command thaws it.
#[test]
fn a_killed_commit_leaves_the_container_running() {
    let f = Fixture::new();
    f.ok(&[
        "run",
        "-d",
        "--name",
        "c",
        "busybox",
        "sh",
        "-c",
        "head -c 200000000 /dev/zero > /big; touch /ready; sleep 1000",
    ]);
    assert!(wait_until(|| berth(
        &f.root,
        &["exec", "c", "ls", "/ready"]
    )
    .status
    .success()));
    let mut commit = common::berth_command(&f.root)
        .args(["commit", "c", "snap:1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let paused = wait_until(|| f.state("c") == "paused");
    let _ = commit.kill();
    let _ = commit.wait();
    assert!(paused, "the commit never paused the container");
    assert_eq!(f.state("c"), "running", "left frozen by a killed commit");
    assert_eq!(f.ok(&["exec", "c", "echo", "alive"]), "alive\n");
    f.ok(&["rm", "-f", "c"]);
}

/// `berth security`: what the kernel says the container can do, for a default
/// container, a --privileged one and one with CAP_SYS_ADMIN and no seccomp.
#[test]
fn security_report_reads_the_kernel() {
    let f = Fixture::new();
    f.ok(&["run", "-d", "--name", "d", "busybox", "sleep", "1000"]);
    f.ok(&[
        "run",
        "-d",
        "--privileged",
        "--name",
        "p",
        "busybox",
        "sleep",
        "1000",
    ]);
    f.ok(&[
        "run",
        "-d",
        "--cap-add",
        "SYS_ADMIN",
        "--security-opt",
        "seccomp=unconfined",
        "--name",
        "s",
        "busybox",
        "sleep",
        "1000",
    ]);
    let report = |c: &str| -> Value {
        serde_json::from_str(&f.ok(&["security", "--format", "json", c])).unwrap()
    };
    let status = |c: &str| -> String {
        let pid = f.inspect(c)["State"]["Pid"].as_i64().unwrap();
        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap()
    };
    let field = |s: &str, k: &str| -> String {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or("")
            .trim_start_matches(':')
            .trim()
            .to_string()
    };
    let d = report("d");
    assert_eq!(d["SeccompMode"], 2, "{d}");
    assert_eq!(d["Verdict"], serde_json::json!([]), "{d}");
    assert!(
        !d["Capabilities"]["Effective"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "CAP_SYS_ADMIN"),
        "{d}"
    );
    assert_eq!(
        d["SeccompFilters"].as_u64().unwrap().to_string(),
        field(&status("d"), "Seccomp_filters")
    );
    let p = report("p");
    let verdict = p["Verdict"].to_string();
    assert!(verdict.contains("privileged"), "{p}");
    assert!(verdict.contains("every device allowed"), "{p}");
    assert_eq!(p["SeccompMode"], 0);
    let s = report("s");
    let verdict = s["Verdict"].to_string();
    assert!(
        verdict.contains("CAP_SYS_ADMIN") && verdict.contains("no seccomp"),
        "{s}"
    );
    assert!(!verdict.contains("privileged"), "{s}");
    assert_eq!(field(&status("s"), "Seccomp"), "0");
    // A stopped container has no process to read: a clear error.
    f.ok(&["stop", "-t", "0", "d"]);
    let e = f.fails(&["security", "d"], 1);
    assert!(e.contains("not running"), "{e}");
    f.ok(&["rm", "-f", "d", "p", "s"]);
}

/// `--group-add` gives the process more supplementary groups (docker's flag).
#[test]
fn group_add_adds_supplementary_groups() {
    let f = Fixture::new();
    let out = f.ok(&[
        "run",
        "--rm",
        "--group-add",
        "1234",
        "--group-add",
        "4321",
        "busybox",
        "id",
        "-G",
    ]);
    let groups: Vec<&str> = out.split_whitespace().collect();
    assert!(
        groups.contains(&"1234") && groups.contains(&"4321"),
        "{out}"
    );
    // A name the image's /etc/group does not have: a clear error.
    let e = f.fails(
        &[
            "run",
            "--rm",
            "--group-add",
            "nosuchgroup",
            "busybox",
            "true",
        ],
        125,
    );
    assert!(e.contains("nosuchgroup"), "{e}");
}

/// docker 28 (CLI on dockerd 20.10): `rm -f` of a container that is not there exits 0
/// silently; `run -it` with a stdin that is not a terminal is refused.
#[test]
fn rm_force_of_a_missing_container_and_it_without_a_tty() {
    let f = Fixture::new();
    assert_eq!(f.ok(&["rm", "-f", "no-such-container"]), "");
    let e = f.fails(&["rm", "no-such-container"], 1);
    assert!(e.contains("no-such-container"), "{e}");
    let e = f.fails(&["run", "--rm", "-it", "busybox", "true"], 1);
    assert!(e.contains("the input device is not a TTY"), "{e}");
}

/// `rmi` racing `create` of the same image, made certain with a pause point
/// (BERTH_TEST_PAUSE) right after `create` resolved the image: the image is removed
/// meanwhile, and `create` then fails naming it instead of recording a container on a
/// root filesystem whose layers were collected. With the container recorded first,
/// `rmi` refuses (the image is in use).
#[test]
fn rmi_racing_create_never_leaves_a_container_without_its_image() {
    let f = Fixture::new();
    f.ok(&["tag", "busybox", "racer:1"]);
    let gate = f.dir.join("gate");
    std::fs::create_dir(&gate).unwrap();
    let create = berth_command(&f.root)
        .args(["create", "--name", "raced", "racer:1", "true"])
        .env(
            "BERTH_TEST_PAUSE",
            format!("create-image-resolved:{}", gate.display()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(|| gate.join("reached").exists()),
        "no pause point"
    );
    // The tag is the image's only other name than busybox's: untag busybox first so
    // that removing racer:1 deletes the image.
    f.ok(&["rmi", "busybox"]);
    f.ok(&["rmi", "racer:1"]);
    std::fs::write(gate.join("go"), "").unwrap();
    let o = create.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "create succeeded on a removed image");
    assert!(err.contains("racer:1"), "{err}");
    assert_eq!(f.ok(&["ps", "-aq"]), "", "a container was left behind");
}

/// docker 28 (`docker inspect c img vol nosuch`): every name is looked up as
/// a container, an image, a volume, a network; what exists is printed, each
/// missing name is reported as "No such object", and the status is 1.
#[test]
fn inspect_mixes_object_kinds_and_names_the_missing() {
    let f = Fixture::new();
    let id = f
        .ok(&["create", "--name", "mixc", "busybox", "true"])
        .trim()
        .to_string();
    f.ok(&["volume", "create", "mixv"]);
    f.ok(&["network", "create", "mixn"]);
    let o = berth(
        &f.root,
        &["inspect", "mixc", "busybox", "nosuchthing", "mixv", "mixn"],
    );
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let v = v.as_array().unwrap();
    assert_eq!(v.len(), 4, "{v:?}");
    assert_eq!(v[0]["Id"], id);
    assert!(v[1]["RepoTags"][0] == "busybox:latest", "{:?}", v[1]);
    assert_eq!(v[2]["Name"], "mixv");
    assert_eq!(v[2]["Driver"], "local");
    assert_eq!(v[3]["Name"], "mixn");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err, "Error: No such object: nosuchthing\n");
    // --format applies to each object found.
    let o = berth(
        &f.root,
        &["inspect", "-f", "{{.Name}}", "mixv", "gone", "mixn"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "mixv\nmixn\n");
    // --type narrows the lookup.
    let e = f.fails(&["inspect", "--type", "volume", "mixc"], 1);
    assert!(e.contains("mixc"), "{e}");
    f.ok(&["inspect", "--type", "container", "mixc"]);
    f.ok(&["rm", "mixc"]);
    f.ok(&["volume", "rm", "mixv"]);
    f.ok(&["network", "rm", "mixn"]);
}

/// docker 28 `ps`: COMMAND is the program and its arguments, those with a
/// space in single quotes, cut at 20 characters with "…", then Go-quoted.
#[test]
fn ps_command_is_quoted_and_truncated_as_docker() {
    let f = Fixture::new();
    f.ok(&[
        "run",
        "-d",
        "--name",
        "q1",
        "busybox",
        "sh",
        "-c",
        "sleep 100",
    ]);
    f.ok(&[
        "run",
        "-d",
        "--name",
        "q2",
        "busybox",
        "sh",
        "-c",
        "echo \"hi\"; sleep 100",
    ]);
    let full = f.ok(&["ps", "--no-trunc", "--format", "{{.Names}} {{.Command}}"]);
    assert!(full.contains("q1 \"sh -c 'sleep 100'\"\n"), "{full}");
    assert!(
        full.contains("q2 \"sh -c 'echo \\\"hi\\\"; sleep 100'\"\n"),
        "{full}"
    );
    let cut = f.ok(&["ps", "--format", "{{.Names}} {{.Command}}"]);
    assert!(cut.contains("q1 \"sh -c 'sleep 100'\"\n"), "{cut}");
    assert!(cut.contains("q2 \"sh -c 'echo \\\"hi\\\"; s…\"\n"), "{cut}");
    let table = f.ok(&["ps"]);
    assert!(table.contains("\"sh -c 'sleep 100'\""), "{table}");
    f.ok(&["rm", "-f", "q1", "q2"]);
}

/// docker 28's `{{.Label "key"}}` in `ps`, `volume ls` and `network ls`
/// formats (docker's image list rows have no Label method).
#[test]
fn label_method_in_list_formats() {
    let f = Fixture::new();
    f.ok(&[
        "create",
        "--name",
        "lab",
        "-l",
        "app=web",
        "-l",
        "tier=front",
        "busybox",
        "true",
    ]);
    f.ok(&["create", "--name", "nolab", "busybox", "true"]);
    let ps = f.ok(&["ps", "-a", "--format", "{{.Names}}:{{.Label \"app\"}}"]);
    let mut lines: Vec<&str> = ps.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["lab:web", "nolab:"]);
    f.ok(&["volume", "create", "--label", "tier=db", "labv"]);
    assert_eq!(
        f.ok(&["volume", "ls", "--format", "{{.Name}} {{.Label \"tier\"}}"]),
        "labv db\n"
    );
    f.ok(&["network", "create", "--label", "zone=a", "labn"]);
    assert_eq!(
        f.ok(&[
            "network",
            "ls",
            "--filter",
            "name=labn",
            "--format",
            "{{.Name}} {{.Label \"zone\"}}"
        ]),
        "labn a\n"
    );
    f.ok(&["rm", "lab", "nolab"]);
    f.ok(&["volume", "rm", "labv"]);
    f.ok(&["network", "rm", "labn"]);
}

/// docker 28 `volume create --label` and the local driver's `-o` options:
/// a tmpfs volume (`type=tmpfs,device=tmpfs,o=size=…`) and a bind volume
/// (`type=none,o=bind,device=/path`); `volume ls --filter` (name, label,
/// dangling, driver) and `--format`.
#[test]
fn volumes_with_labels_options_filters_and_formats() {
    let f = Fixture::new();
    f.ok(&[
        "volume",
        "create",
        "--label",
        "k=v",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=2m,mode=0750",
        "tv",
    ]);
    let host = f.dir.join("bindsrc");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("from-host"), "hello\n").unwrap();
    let dev = format!("device={}", host.display());
    f.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &dev,
        "bv",
    ]);
    f.ok(&["volume", "create", "pv"]);
    let v: Value = serde_json::from_str(&f.ok(&["volume", "inspect", "tv"])).unwrap();
    assert_eq!(v[0]["Labels"]["k"], "v");
    assert_eq!(v[0]["Options"]["type"], "tmpfs");
    assert_eq!(v[0]["Options"]["o"], "size=2m,mode=0750");
    // The tmpfs is what the container sees, with its options; the bind
    // volume is the host directory, both ways.
    let out = f.ok(&[
        "run",
        "--rm",
        "-v",
        "tv:/t",
        "-v",
        "bv:/b",
        "busybox",
        "sh",
        "-c",
        "grep ' /t ' /proc/mounts; cat /b/from-host; echo back > /b/from-container",
    ]);
    assert!(out.contains("tmpfs /t tmpfs"), "{out}");
    assert!(out.contains("size=2048k"), "{out}");
    assert!(out.contains("mode=750"), "{out}");
    assert!(out.contains("hello"), "{out}");
    assert_eq!(
        std::fs::read_to_string(host.join("from-container")).unwrap(),
        "back\n"
    );
    // Filters and formats.
    let names = |args: &[&str]| {
        let mut a = vec!["volume", "ls", "-q"];
        a.extend_from_slice(args);
        f.ok(&a)
    };
    assert_eq!(names(&[]), "bv\npv\ntv\n");
    assert_eq!(names(&["--filter", "name=v"]), "bv\npv\ntv\n");
    assert_eq!(names(&["--filter", "name=t"]), "tv\n");
    assert_eq!(names(&["--filter", "label=k"]), "tv\n");
    assert_eq!(names(&["--filter", "label=k=v"]), "tv\n");
    assert_eq!(names(&["--filter", "label=k=w"]), "");
    assert_eq!(names(&["--filter", "driver=local", "-f", "name=p"]), "pv\n");
    f.ok(&["create", "--name", "user", "-v", "pv:/p", "busybox", "true"]);
    assert_eq!(names(&["--filter", "dangling=true"]), "bv\ntv\n");
    assert_eq!(names(&["--filter", "dangling=false"]), "pv\n");
    f.fails(&["volume", "ls", "--filter", "colour=red"], 1);
    assert_eq!(
        f.ok(&[
            "volume",
            "ls",
            "--format",
            "{{.Driver}}/{{.Name}}",
            "-f",
            "name=tv"
        ]),
        "local/tv\n"
    );
    let j: Value =
        serde_json::from_str(&f.ok(&["volume", "ls", "--format", "json", "-f", "name=tv"]))
            .unwrap();
    assert_eq!(j["Name"], "tv");
    assert_eq!(j["Labels"], "k=v");
    let table = f.ok(&["volume", "ls", "-f", "name=tv"]);
    assert_eq!(table, "DRIVER    VOLUME NAME\nlocal     tv\n");
    // What Berth cannot mount is refused at create.
    let e = f.fails(&["volume", "create", "-o", "type=nfs", "nv"], 1);
    assert!(e.contains("type=nfs is not supported"), "{e}");
    let e = f.fails(&["volume", "create", "-o", "colour=red", "nv"], 1);
    assert!(e.contains("invalid option key"), "{e}");
    // rm unmounts the tmpfs and never touches a bind volume's directory.
    f.ok(&["rm", "user"]);
    f.ok(&["volume", "rm", "tv", "bv", "pv"]);
    assert!(host.join("from-host").exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("/volumes/tv/"), "{mounts}");
}

/// docker 28's local driver mounts a tmpfs volume while containers use it:
/// mounted at the first user's start with its options (size, uid), shared
/// by its users, unmounted (its content gone) when the last one stops. A
/// bind volume whose device is missing is refused at create, and at the
/// first use when it went away since; bad tmpfs options are refused at
/// create.
#[test]
fn tmpfs_volume_is_mounted_while_used_and_bind_device_checked() {
    let f = Fixture::new();
    let opts = [
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=100m,uid=1000",
        "tmpv",
    ];
    f.ok(&opts);
    let data = f.root.join("volumes/tmpv/_data");
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.contains(&format!(" {} ", data.display())))
    };
    assert!(!mounted(), "mounted before any container uses it");
    let v: Value = serde_json::from_str(&f.ok(&["volume", "inspect", "tmpv"])).unwrap();
    assert_eq!(v[0]["Options"]["o"], "size=100m,uid=1000");
    assert_eq!(v[0]["Options"]["device"], "tmpfs");

    f.ok(&[
        "run", "-d", "--name", "tu1", "-v", "tmpv:/t", "busybox", "sleep", "1000",
    ]);
    assert!(mounted());
    let out = f.ok(&[
        "exec",
        "tu1",
        "sh",
        "-c",
        "grep ' /t ' /proc/mounts; stat -c %u /t; echo shared > /t/f",
    ]);
    assert!(out.contains("tmpfs /t tmpfs"), "{out}");
    assert!(out.contains("size=102400k"), "{out}");
    assert!(out.contains("uid=1000"), "{out}");
    assert!(out.ends_with("\n1000\n"), "{out}");
    // A second user sees the same tmpfs; its end leaves it mounted.
    let out = f.ok(&["run", "--rm", "-v", "tmpv:/t", "busybox", "cat", "/t/f"]);
    assert_eq!(out, "shared\n");
    assert!(mounted());
    // The last user's end unmounts it; the next use starts empty.
    f.ok(&["stop", "-t", "1", "tu1"]);
    assert!(!mounted(), "still mounted after its last user stopped");
    let out = f.ok(&[
        "run",
        "--rm",
        "-v",
        "tmpv:/t",
        "busybox",
        "sh",
        "-c",
        "ls /t; echo end",
    ]);
    assert_eq!(out, "end\n");
    assert!(!mounted());
    // Started again, the container gets the tmpfs again.
    f.ok(&["start", "tu1"]);
    assert!(mounted());
    f.ok(&["rm", "-f", "tu1"]);
    assert!(!mounted());

    // Bad options are refused at create, and nothing is left.
    let e = f.fails(
        &[
            "volume",
            "create",
            "-o",
            "type=tmpfs",
            "-o",
            "device=tmpfs",
            "-o",
            "o=colour=red",
            "badv",
        ],
        1,
    );
    assert!(e.contains("volumes/badv/_data"), "{e}");
    assert_eq!(f.ok(&["volume", "ls", "-q", "-f", "name=badv"]), "");
    assert!(!f.root.join("volumes/badv").exists());

    // A bind volume's device: missing at create is refused; removed later,
    // the container that uses it does not start, with the device named.
    let missing = f.dir.join("nope");
    let dev = format!("device={}", missing.display());
    let bind = [
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &dev,
        "bindv",
    ];
    let e = f.fails(&bind, 1);
    assert!(
        e.contains(&missing.display().to_string()) && e.contains("No such file"),
        "{e}"
    );
    std::fs::create_dir(&missing).unwrap();
    f.ok(&bind);
    std::fs::write(missing.join("h"), "host\n").unwrap();
    let out = f.ok(&["run", "--rm", "-v", "bindv:/b", "busybox", "cat", "/b/h"]);
    assert_eq!(out, "host\n");
    std::fs::remove_dir_all(&missing).unwrap();
    let e = f.fails(&["run", "--rm", "-v", "bindv:/b", "busybox", "true"], 125);
    assert!(
        e.contains("bindv") && e.contains(&missing.display().to_string()),
        "{e}"
    );
    f.ok(&["volume", "rm", "tmpv", "bindv"]);
}

/// docker 28 `inspect` fields scripts read: HostConfig.RestartPolicy, the
/// memory fields (MemorySwap is twice the memory, the swap limit the
/// container gets), GraphDriver, SizeRw/SizeRootFs with `-s`, and a
/// Config.Env of only the image's variables and `-e`.
#[test]
fn inspect_has_the_fields_scripts_read() {
    let f = Fixture::new();
    f.ok(&[
        "create",
        "--name",
        "fields",
        "-m",
        "64m",
        "--restart",
        "on-failure:3",
        "-e",
        "FOO=1",
        "-t",
        "busybox",
        "sh",
        "-c",
        "echo data > /written",
    ]);
    let v = f.inspect("fields");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);
    assert_eq!(v["HostConfig"]["Memory"], 64 << 20);
    assert_eq!(v["HostConfig"]["MemorySwap"], 128 << 20);
    assert_eq!(v["HostConfig"]["CpuQuota"], 0);
    assert_eq!(v["HostConfig"]["ShmSize"], 64 << 20);
    assert_eq!(v["GraphDriver"]["Name"], "overlay2");
    let merged = v["GraphDriver"]["Data"]["MergedDir"].as_str().unwrap();
    assert!(merged.ends_with("/rootfs"), "{merged}");
    // The process gets HOSTNAME, HOME and TERM; Config.Env does not list them.
    assert_eq!(v["Config"]["Env"], serde_json::json!(["FOO=1"]));
    assert!(v.get("SizeRw").is_none());
    f.ok(&["start", "-a", "fields"]);
    let v: Value = serde_json::from_str(&f.ok(&["inspect", "-s", "fields"])).unwrap();
    assert!(v[0]["SizeRw"].as_u64().unwrap() > 0, "{:?}", v[0]["SizeRw"]);
    assert!(v[0]["SizeRootFs"].as_u64().unwrap() > v[0]["SizeRw"].as_u64().unwrap());
    let plain = f.inspect(&{ f.ok(&["create", "busybox", "true"]).trim().to_string() });
    assert_eq!(plain["HostConfig"]["RestartPolicy"]["Name"], "no");
    assert_eq!(plain["HostConfig"]["MemorySwap"], 0);
    let id = plain["Id"].as_str().unwrap().to_string();
    f.ok(&["rm", "fields", &id]);
}

/// docker 20.10's restart manager: `unless-stopped` leaves a container the
/// user killed exited, where `always` starts it again.
#[test]
fn unless_stopped_is_not_restarted_after_a_kill() {
    let f = Fixture::new();
    f.ok(&[
        "run",
        "-d",
        "--name",
        "us",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "100",
    ]);
    f.ok(&[
        "run",
        "-d",
        "--name",
        "al",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "100",
    ]);
    f.ok(&["kill", "us", "al"]);
    f.wait_for("us", "exited");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(f.state("us"), "exited");
    assert_eq!(f.ok(&["inspect", "-f", "{{.RestartCount}}", "us"]), "0\n");
    f.wait_for("al", "running");
    assert_eq!(f.ok(&["inspect", "-f", "{{.RestartCount}}", "al"]), "1\n");
    // A start by the user clears it: a crash after that is restarted.
    f.ok(&["start", "us"]);
    f.wait_for("us", "running");
    f.ok(&["rm", "-f", "us", "al"]);
}

/// A reader that went away ends berth quietly, as docker's SIGPIPE does
/// (`berth info | head -1`, `berth logs -f c | head`, `berth attach c |
/// head`): the reader is closed before berth writes.
#[test]
fn a_closed_pipe_ends_output_quietly() {
    let f = Fixture::new();
    f.ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "while true; do echo tick; sleep 0.05; done",
    ]);
    for args in [
        &["info"][..],
        &["logs", "-f", "talker"],
        &["attach", "talker"],
        &["ps", "-a"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut child = berth_command(&f.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > Duration::from_secs(15) {
                let _ = child.kill();
                panic!("berth {args:?} still writing to a closed pipe");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(status.success(), "{args:?}: {status:?} {err}");
        assert_eq!(err, "", "{args:?}");
    }
    assert_eq!(f.state("talker"), "running");
    f.ok(&["rm", "-f", "talker"]);
}

/// docker 23+ (CLI 28 on dockerd 20.10 resolves `./` in the CLI): `-v` takes a
/// relative host path, and a missing `-v` host directory is created, while
/// `--mount` keeps refusing a missing source.
#[test]
fn dash_v_takes_relative_paths_and_creates_missing_dirs() {
    let f = Fixture::new();
    let work = f.dir.join("work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    std::fs::write(work.join("sub/hello"), "from the host\n").unwrap();
    let o = berth_command(&f.root)
        .current_dir(&work)
        .args([
            "run",
            "--rm",
            "-v",
            "./sub:/x:ro",
            "busybox",
            "cat",
            "/x/hello",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "from the host\n");
    let missing = f.dir.join("not/there/yet");
    let v = format!("{}:/m", missing.display());
    f.ok(&["run", "--rm", "-v", &v, "busybox", "touch", "/m/made"]);
    assert!(missing.join("made").exists());
    let gone = f.dir.join("still-missing");
    let m = format!("type=bind,source={},target=/m", gone.display());
    let e = f.fails(&["run", "--rm", "--mount", &m, "busybox", "true"], 125);
    assert!(e.contains("does not exist"), "{e}");
    assert!(!gone.exists());
}

/// `berth completion bash` completes the names a command takes (its usage
/// line's first operand: CONTAINER, IMAGE, VOLUME, NETWORK), read from the
/// same `--root`, as docker's completion does.
#[test]
fn bash_completion_offers_names() {
    let f = Fixture::new();
    f.ok(&["create", "--name", "compme", "busybox", "true"]);
    f.ok(&["volume", "create", "compvol"]);
    let script = f.dir.join("berth.bash");
    std::fs::write(&script, f.ok(&["completion", "bash"])).unwrap();
    let complete = |words: &str| {
        let cmd = format!(
            "source {}; COMP_WORDS=({} --root {} {words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _berth; echo \"${{COMPREPLY[*]}}\"",
            script.display(),
            env!("CARGO_BIN_EXE_berth"),
            f.root.display()
        );
        let o = Command::new("bash")
            .args(["-c", &cmd])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    assert_eq!(complete("start comp"), "compme");
    assert_eq!(complete("container rm comp"), "compme");
    assert_eq!(complete("run busy"), "busybox:latest");
    assert_eq!(complete("volume inspect comp"), "compvol");
    f.ok(&["rm", "compme"]);
    f.ok(&["volume", "rm", "compvol"]);
}

/// docker 28 `cp`: `-L` copies what a source symlink leads to (under the
/// source's name); modification times are kept both ways; `cp - C:DIR`
/// extracts a tar from stdin into DIR; a destination that is a symlink in
/// the container is followed there, inside the container's root.
#[test]
fn cp_follows_links_keeps_mtimes_and_takes_a_tar() {
    let f = Fixture::new();
    f.ok(&[
        "run",
        "-d",
        "--name",
        "cpx",
        "busybox",
        "sh",
        "-c",
        "echo data > /tmp/real; touch -d '2020-01-02 03:04:05' /tmp/real; \
         ln -s /tmp/real /tmp/link; echo old > /tmp/target; \
         ln -s ../../../../../tmp/target /tmp/rel; mkdir /tmp/in; touch /tmp/ready; sleep 100",
    ]);
    assert!(wait_until(|| berth(
        &f.root,
        &["exec", "cpx", "cat", "/tmp/ready"]
    )
    .status
    .success()));
    let out = f.dir.join("out");
    std::fs::create_dir(&out).unwrap();
    let mtime = |p: &Path| {
        std::fs::metadata(p)
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    // 2020-01-02T03:04:05Z
    let stamp = 1_577_934_245;
    f.ok(&["cp", "cpx:/tmp/link", out.join("l1").to_str().unwrap()]);
    assert!(
        std::fs::symlink_metadata(out.join("l1"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    f.ok(&[
        "cp",
        "-L",
        "cpx:/tmp/link",
        out.join("l2").to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(out.join("l2")).unwrap(), "data\n");
    assert_eq!(mtime(&out.join("l2")), stamp);
    f.ok(&["cp", "cpx:/tmp", out.join("dir").to_str().unwrap()]);
    assert_eq!(mtime(&out.join("dir/real")), stamp);
    // Into the container: the host file's mtime stays.
    let h = out.join("h");
    std::fs::write(&h, "new\n").unwrap();
    let old = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(&h)
        .unwrap()
        .set_modified(old)
        .unwrap();
    f.ok(&["cp", h.to_str().unwrap(), "cpx:/tmp/h"]);
    assert_eq!(
        f.ok(&["exec", "cpx", "/bin/busybox", "stat", "-c", "%Y", "/tmp/h"]),
        "1000000000\n"
    );
    // Onto a symlink: its target in the container is written (the `..`
    // stop at the container's root), the link stays.
    f.ok(&["cp", h.to_str().unwrap(), "cpx:/tmp/rel"]);
    assert_eq!(f.ok(&["exec", "cpx", "cat", "/tmp/target"]), "new\n");
    assert!(
        f.ok(&["exec", "cpx", "ls", "-l", "/tmp/rel"])
            .contains("-> ../../../../../tmp/target")
    );
    // A tar on stdin.
    let mut b = tar::Builder::new(Vec::new());
    let mut hdr = tar::Header::new_gnu();
    hdr.set_mode(0o644);
    hdr.set_size(9);
    hdr.set_mtime(1_234_567_890);
    b.append_data(&mut hdr, "fromtar", &b"from tar\n"[..])
        .unwrap();
    let data = b.into_inner().unwrap();
    let mut child = berth_command(&f.root)
        .args(["cp", "-", "cpx:/tmp/in"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        f.ok(&["exec", "cpx", "cat", "/tmp/in/fromtar"]),
        "from tar\n"
    );
    let e = f.fails(&["cp", "-", "cpx:/no/such/dir"], 1);
    assert!(e.contains("/no/such/dir"), "{e}");
    f.ok(&["rm", "-f", "cpx"]);
}

/// `--pid`, `--ipc`, `--uts` (host, container:X, and IPC's shareable and none),
/// `--shm-size`, `--sysctl`, `--domainname`, `--oom-score-adj` and `--cidfile`, as docker
/// has them: each seen from inside the container and in `inspect`, and docker's refusals.
#[test]
fn namespace_modes_and_kernel_parameters() {
    let f = Fixture::new();
    let run = |extra: &[&str], script: &str| {
        let mut a = vec!["run", "--rm", "--network", "none"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["busybox", "sh", "-c", script]);
        f.ok(&a)
    };
    let ns = |t: &str| std::fs::read_link(format!("/proc/self/ns/{t}")).unwrap();
    // Host namespaces: this test process is visible, the host's name and IPC are theirs.
    let me = std::process::id();
    let out = run(
        &["--pid", "host"],
        &format!("test -d /proc/{me} && echo sees-host"),
    );
    assert_eq!(out, "sees-host\n");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(run(&["--uts", "host"], "hostname"), host);
    let out = run(&["--ipc", "host"], "readlink /proc/self/ns/ipc");
    assert_eq!(out.trim(), ns("ipc").to_string_lossy());
    // Their own by default, with docker's 64 MiB /dev/shm; --shm-size; --ipc none.
    let out = run(
        &[],
        "for t in ipc pid uts; do readlink /proc/self/ns/$t; done",
    );
    for t in ["ipc", "pid", "uts"] {
        assert!(!out.contains(&*ns(t).to_string_lossy()), "{t}: {out}");
    }
    assert!(run(&[], "df -k /dev/shm").contains(" 65536 "));
    assert!(run(&["--shm-size", "10m"], "df -k /dev/shm").contains(" 10240 "));
    assert_eq!(
        run(&["--ipc", "none"], "test -e /dev/shm || echo no-shm"),
        "no-shm\n"
    );
    // Shareable and container:X: the same IPC namespace and /dev/shm, X's processes.
    f.ok(&[
        "run",
        "-d",
        "--name",
        "donor",
        "--network",
        "none",
        "--ipc",
        "shareable",
        "busybox",
        "sh",
        "-c",
        "echo shared > /dev/shm/x; exec sleep 60",
    ]);
    f.ok(&[
        "run",
        "-d",
        "--name",
        "private",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ]);
    let donor_ipc = f.ok(&["exec", "donor", "readlink", "/proc/self/ns/ipc"]);
    let out = run(
        &["--ipc", "container:donor", "--pid", "container:donor"],
        "cat /dev/shm/x; readlink /proc/self/ns/ipc; tr '\\0' ' ' < /proc/1/cmdline",
    );
    assert_eq!(out, format!("shared\n{donor_ipc}sleep 60 "), "{out}");
    let e = f.fails(
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--ipc",
            "container:private",
            "busybox",
            "true",
        ],
        125,
    );
    assert!(e.contains("non-shareable IPC"), "{e}");
    let v = f.inspect("donor");
    assert_eq!(v["HostConfig"]["IpcMode"], "shareable");
    assert_eq!(f.inspect("private")["HostConfig"]["IpcMode"], "private");
    f.ok(&["stop", "-t", "0", "donor"]);
    let e = f.fails(
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--ipc",
            "container:donor",
            "busybox",
            "true",
        ],
        125,
    );
    assert!(e.contains("non running container"), "{e}");
    f.ok(&["rm", "-f", "donor", "private"]);
    // Kernel parameters of its own namespaces; the domain name; the OOM score.
    let out = run(
        &[
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "--sysctl",
            "kernel.shmmax=1000000",
            "--domainname",
            "berth.test",
            "--oom-score-adj",
            "500",
        ],
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax /proc/sys/kernel/domainname \
         /proc/self/oom_score_adj",
    );
    assert_eq!(out, "1\n1000000\nberth.test\n500\n");
    f.ok(&[
        "create",
        "--name",
        "k",
        "--sysctl",
        "net.core.somaxconn=1024",
        "--shm-size",
        "1g",
        "--pid",
        "host",
        "--uts",
        "host",
        "--oom-score-adj",
        "-5",
        "busybox",
        "true",
    ]);
    let h = f.inspect("k")["HostConfig"].clone();
    assert_eq!(
        h["Sysctls"],
        serde_json::json!({"net.core.somaxconn": "1024"})
    );
    assert_eq!(h["ShmSize"], 1 << 30);
    assert_eq!(
        (h["PidMode"].clone(), h["UTSMode"].clone()),
        ("host".into(), "host".into())
    );
    assert_eq!(h["OomScoreAdj"], -5);
    f.ok(&["rm", "k"]);
    // docker's refusals, before anything is made.
    for (args, msg) in [
        (
            &["--sysctl", "kernel.core_pattern=|/x"][..],
            "is not allowed",
        ),
        (
            &["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"],
            "host network namespace",
        ),
        (
            &["--ipc", "host", "--sysctl", "kernel.shmmax=1"],
            "hosts ipc namespace",
        ),
        (&["--pid", "nope"], "--pid: invalid PID mode"),
        (&["--ipc", "nope"], "--ipc: invalid IPC mode"),
        (&["--uts", "nope"], "--uts: invalid UTS mode"),
        (
            &["--uts", "host", "--hostname", "x"],
            "conflicting options: hostname and the UTS mode",
        ),
        (
            &["--oom-score-adj", "1001"],
            "range for oom score adj is [-1000, 1000]",
        ),
    ] {
        f.create_refused(args, msg);
    }
    assert_eq!(f.ok(&["ps", "-aq"]), "");
    // --cidfile: written with the id; an existing one is never replaced.
    let cid = f.dir.join("cid");
    let id = f.ok(&[
        "create",
        "--cidfile",
        cid.to_str().unwrap(),
        "busybox",
        "true",
    ]);
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id.trim());
    let e = f.fails(
        &[
            "create",
            "--cidfile",
            cid.to_str().unwrap(),
            "busybox",
            "true",
        ],
        125,
    );
    assert!(e.contains("Container ID file found"), "{e}");
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id.trim());
    f.ok(&["rm", id.trim()]);
}

/// `--device HOST[:CONTAINER][:PERMISSIONS]`: the host's node made in the container with
/// its numbers, and the device cgroup allowing only what was asked (here opening
/// /dev/kmsg for writing, which nothing is then written to); docker's refusals.
#[test]
fn devices_from_the_host() {
    let f = Fixture::new();
    let run = |dev: &str, script: &str| {
        berth(
            &f.root,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "--device",
                dev,
                "busybox",
                "sh",
                "-c",
                script,
            ],
        )
    };
    let o = run(
        "/dev/null:/dev/mynull",
        "echo x > /dev/mynull && echo written",
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "written\n", "{o:?}");
    let o = run("/dev/kmsg:/dev/k:w", "exec 4>/dev/k && echo opened");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "opened\n", "{o:?}");
    let o = run("/dev/kmsg:/dev/k:r", "exec 4>/dev/k && echo opened");
    assert!(!o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Operation not permitted"),
        "{o:?}"
    );
    // Not there without the flag.
    let o = run("/dev/null", "test -e /dev/kmsg || echo absent");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "absent\n");
    f.ok(&[
        "create",
        "--name",
        "d",
        "--device",
        "/dev/kmsg:/dev/k:r",
        "busybox",
        "true",
    ]);
    assert_eq!(
        f.inspect("d")["HostConfig"]["Devices"],
        serde_json::json!([{"PathOnHost": "/dev/kmsg", "PathInContainer": "/dev/k", "CgroupPermissions": "r"}])
    );
    f.ok(&["rm", "d"]);
    for (dev, msg) in [
        ("/dev/nope", "error gathering device information"),
        ("/etc/passwd", "is not a device node"),
        ("/dev/null:/dev/x:rwq", "bad mode specified: rwq"),
        ("/dev/null:relative", "bad format for path: relative"),
    ] {
        let e = f.fails(&["create", "--device", dev, "busybox", "true"], 125);
        assert!(e.contains(msg), "{dev}: {e}");
    }
}

/// `--expose` (a port, or a range: one entry per port, as docker stores them) is in
/// `Config.ExposedPorts` and published by `-P`; `--label-file` reads KEY=VALUE lines, and a
/// later `--label` wins.
#[test]
fn expose_and_label_file() {
    let f = Fixture::new();
    let labels = f.dir.join("labels");
    std::fs::write(&labels, "a=1\n# a comment\n\nb=2\n").unwrap();
    f.ok(&[
        "run",
        "-d",
        "--name",
        "x",
        "--expose",
        "80",
        "--expose",
        "7000-7001/udp",
        "-P",
        "--label-file",
        labels.to_str().unwrap(),
        "--label",
        "b=3",
        "busybox",
        "sleep",
        "60",
    ]);
    let v = f.inspect("x");
    assert_eq!(
        v["Config"]["ExposedPorts"],
        serde_json::json!({"80/tcp": {}, "7000/udp": {}, "7001/udp": {}})
    );
    assert_eq!(v["Config"]["Labels"]["a"], "1");
    assert_eq!(v["Config"]["Labels"]["b"], "3");
    let ports = f.ok(&["port", "x"]);
    for p in [
        "80/tcp -> 0.0.0.0:",
        "7000/udp -> 0.0.0.0:",
        "7001/udp -> 0.0.0.0:",
    ] {
        assert!(ports.contains(p), "{p} in {ports}");
    }
    f.ok(&["rm", "-f", "x"]);
    let e = f.fails(&["create", "--expose", "8080:80", "busybox", "true"], 125);
    assert!(e.contains("invalid range format for --expose"), "{e}");
}

/// `--volumes-from X[:ro|rw]`: X's volumes (its anonymous ones too) and binds, shared; `:ro`
/// makes them read-only; the container's own `-v` at the same path wins; `rm -v` of the
/// joiner leaves them, and they count as in use. `--platform`: the host's is accepted,
/// another refused (no emulation).
#[test]
fn volumes_from_and_platform() {
    let f = Fixture::new();
    f.ok(&[
        "run",
        "-d",
        "--name",
        "data",
        "--network",
        "none",
        "-v",
        "/anon",
        "-v",
        "named:/named",
        "busybox",
        "sh",
        "-c",
        "echo A > /anon/f; echo N > /named/f; exec sleep 60",
    ]);
    let t = Instant::now();
    while f.ok(&["exec", "data", "cat", "/named/f"]) != "N\n" {
        assert!(t.elapsed() < Duration::from_secs(10));
    }
    let run = |extra: &[&str], script: &str| {
        let mut a = vec!["run", "--rm", "--network", "none"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["busybox", "sh", "-c", script]);
        f.ok(&a)
    };
    assert_eq!(
        run(
            &["--volumes-from", "data"],
            "cat /anon/f /named/f; echo B >> /anon/f"
        ),
        "A\nN\n"
    );
    assert_eq!(f.ok(&["exec", "data", "cat", "/anon/f"]), "A\nB\n");
    assert_eq!(
        run(
            &["--volumes-from", "data:ro"],
            "echo x >> /anon/f 2>/dev/null || echo refused"
        ),
        "refused\n"
    );
    let own = f.dir.join("own");
    std::fs::create_dir(&own).unwrap();
    std::fs::write(own.join("mine"), "").unwrap();
    let v = format!("{}:/named", own.display());
    assert_eq!(
        run(&["--volumes-from", "data", "-v", &v], "ls /named"),
        "mine\n"
    );
    f.ok(&[
        "create",
        "--name",
        "j",
        "--volumes-from",
        "data",
        "busybox",
        "true",
    ]);
    assert_eq!(
        f.inspect("j")["HostConfig"]["VolumesFrom"],
        serde_json::json!(["data"])
    );
    f.ok(&["rm", "-f", "data"]);
    let e = f.fails(&["volume", "rm", "named"], 1);
    assert!(e.contains("in use"), "{e}");
    f.ok(&["rm", "-v", "j"]);
    f.ok(&["volume", "rm", "named"]);
    for (args, msg) in [
        (&["--volumes-from", "nosuch"][..], "no such container"),
        (&["--volumes-from", "j:xx"], "invalid mode: xx"),
        (&["--platform", "linux/s390x"], "is not supported"),
    ] {
        f.create_refused(args, msg);
    }
    let host = format!(
        "linux/{}",
        std::env::consts::ARCH.replace("x86_64", "amd64")
    );
    assert_eq!(run(&["--platform", &host], "echo ok"), "ok\n");
}

/// The parent cgroups a `--cgroup-parent` test made (in every hierarchy), removed on drop.
struct CgroupParent(String);

impl Drop for CgroupParent {
    fn drop(&mut self) {
        let mut dirs = vec![PathBuf::from("/sys/fs/cgroup")];
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            dirs.extend(rd.flatten().map(|e| e.path()));
        }
        for d in dirs {
            let _ = std::fs::remove_dir(d.join(&self.0));
        }
    }
}

/// `--cgroupns host|private` (private, the default: the container's cgroup is its root) and
/// `--cgroup-parent` (its cgroup made under that one).
#[test]
fn cgroup_namespace_and_parent() {
    let f = Fixture::new();
    let run = |extra: &[&str], script: &str| {
        let mut a = vec!["run", "--rm", "--network", "none"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["busybox", "sh", "-c", script]);
        f.ok(&a)
    };
    let own = run(&[], "cat /proc/self/cgroup");
    assert!(own.lines().all(|l| l.ends_with(":/")), "{own}");
    let host = run(&["--cgroupns", "host"], "cat /proc/self/cgroup");
    assert!(host.contains("/berth-"), "{host}");
    let parent = CgroupParent(format!("berthtest-{}", std::process::id()));
    let id = f.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--cgroup-parent",
        &format!("/{}", parent.0),
        "busybox",
        "sleep",
        "60",
    ]);
    let id = id.trim();
    let v = f.inspect(id);
    assert_eq!(v["HostConfig"]["CgroupParent"], format!("/{}", parent.0));
    let pid = v["State"]["Pid"].as_i64().unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = format!("/{}/berth-{id}", parent.0);
    assert!(cg.lines().any(|l| l.ends_with(&want)), "{want} in {cg}");
    f.ok(&["rm", "-f", id]);
    assert!(cgroup_gone(id));
    for (args, msg) in [
        (
            &["--cgroupns", "nope"][..],
            "--cgroupns: invalid CGROUP mode",
        ),
        (&["--cgroup-parent", "a/../../b"], "no '.' or '..'"),
    ] {
        f.create_refused(args, msg);
    }
}

/// `run -a STREAM`: only the streams named reach the client (any case, repeatable);
/// docker's refusals of a bad stream and of `-a` with `-d`.
#[test]
fn run_attach_selects_streams() {
    let f = Fixture::new();
    let run = |a: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(a);
        args.extend_from_slice(&["busybox", "sh", "-c", "echo out; echo err >&2; exit 3"]);
        let o = berth(&f.root, &args);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert_eq!(run(&[]), (Some(3), "out\n".into(), "err\n".into()));
    assert_eq!(
        run(&["-a", "stdout"]),
        (Some(3), "out\n".into(), String::new())
    );
    assert_eq!(
        run(&["-a", "STDERR"]),
        (Some(3), String::new(), "err\n".into())
    );
    assert_eq!(
        run(&["-a", "stdout", "--attach", "stderr"]),
        (Some(3), "out\n".into(), "err\n".into())
    );
    let e = f.fails(&["run", "-a", "nope", "busybox", "true"], 125);
    assert!(
        e.contains("valid streams are STDIN, STDOUT and STDERR"),
        "{e}"
    );
    let e = f.fails(&["run", "-d", "-a", "stdout", "busybox", "true"], 125);
    assert!(e.contains("Conflicting options: -a and -d"), "{e}");
    assert_eq!(f.ok(&["ps", "-aq"]), "");
}

/// `--memory-reservation`, `--memory-swappiness`, `--oom-kill-disable` and `--cpuset-mems`
/// reach the container's cgroup (v1 here: the cgroup v2 files differ, and v2 has no
/// swappiness or OOM-killer switch, which are dropped there with docker's warnings);
/// docker's refusals.
#[test]
fn memory_and_cpuset_tuning() {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        eprintln!("skipped: cgroup v1 files");
        return;
    }
    let f = Fixture::new();
    let id = f.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "-m",
        "64m",
        "--memory-reservation",
        "32m",
        "--memory-swappiness",
        "10",
        "--oom-kill-disable",
        "--cpuset-mems",
        "0",
        "busybox",
        "sleep",
        "60",
    ]);
    let id = id.trim();
    let v = f.inspect(id);
    let pid = v["State"]["Pid"].as_i64().unwrap();
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let dir = |ctl: &str| {
        let rel = cgroups
            .lines()
            .find_map(|l| {
                let mut p = l.splitn(3, ':');
                let (_, ctls, path) = (p.next()?, p.next()?, p.next()?);
                ctls.split(',').any(|c| c == ctl).then(|| path.to_string())
            })
            .unwrap_or_else(|| panic!("{ctl} in {cgroups}"));
        PathBuf::from(format!("/sys/fs/cgroup/{ctl}{rel}"))
    };
    let read = |ctl: &str, file: &str| {
        std::fs::read_to_string(dir(ctl).join(file))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(
        read("memory", "memory.soft_limit_in_bytes"),
        (32 << 20).to_string()
    );
    assert_eq!(read("memory", "memory.swappiness"), "10");
    assert!(read("memory", "memory.oom_control").contains("oom_kill_disable 1"));
    assert_eq!(read("cpuset", "cpuset.mems"), "0");
    let h = &v["HostConfig"];
    assert_eq!(h["MemoryReservation"], 32 << 20);
    assert_eq!(h["MemorySwappiness"], 10);
    assert_eq!(h["OomKillDisable"], true);
    assert_eq!(h["CpusetMems"], "0");
    f.ok(&["rm", "-f", id]);
    for (args, msg) in [
        (
            &["-m", "16m", "--memory-reservation", "32m"][..],
            "can not be less than memory reservation",
        ),
        (
            &["--memory-reservation", "1m"],
            "Minimum memory reservation allowed is 6MB",
        ),
        (
            &["--memory-swappiness", "101"],
            "valid memory swappiness range is 0-100",
        ),
    ] {
        f.create_refused(args, msg);
    }
}

/// The block I/O flags: `--device-read-bps` and `--device-write-iops` slow the container's
/// direct I/O on a loop device to their rates (2 MiB read at 1 MiB/s, 100 writes at 50
/// per second: each takes well over a second, where unthrottled it takes milliseconds);
/// `--device-cgroup-rule` lets it open a device node it makes (major 42, which no driver
/// has: ENXIO instead of the cgroup's EPERM); `inspect` shows them as docker's
/// HostConfig does; a weight the kernel cannot enforce (no CFQ/BFQ) is dropped with
/// docker's warning; docker's refusals. `update` sets a weight, a memory reservation and
/// memory nodes.
#[test]
fn block_io_limits_and_device_cgroup_rules() {
    let f = Fixture::new();
    let lo = LoopDevice::new(&f.dir);
    let dev = lo.0.as_str();
    let timed = |args: &[&str], script: &str| {
        let mut a = vec!["run", "--rm", "--network", "none"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["busybox", "sh", "-c", script]);
        let t = Instant::now();
        let o = berth(&f.root, &a);
        (o, t.elapsed())
    };
    let dev_b = format!("{dev}:/dev/b");
    let read_limit = format!("{dev}:1mb");
    let (o, took) = timed(
        &["--device", &dev_b, "--device-read-bps", &read_limit],
        "busybox dd if=/dev/b of=/dev/null bs=256k count=8 iflag=direct 2>&1",
    );
    assert!(o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("8+0 records in"),
        "{o:?}"
    );
    assert!(
        took >= Duration::from_millis(1200),
        "2 MiB read in {took:?}"
    );
    let write_limit = format!("{dev}:50");
    let (o, took) = timed(
        &["--device", &dev_b, "--device-write-iops", &write_limit],
        "busybox dd if=/dev/zero of=/dev/b bs=4k count=100 oflag=direct 2>&1",
    );
    assert!(o.status.success(), "{o:?}");
    assert!(
        took >= Duration::from_millis(1200),
        "100 writes in {took:?}"
    );

    let open42 = "busybox mknod /tmp/c c 42 0 && exec 3</tmp/c";
    let (o, _) = timed(&[], open42);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Operation not permitted"), "{o:?}");
    let (o, _) = timed(&["--device-cgroup-rule", "c 42:* rmw"], open42);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && !err.contains("Operation not permitted"),
        "{o:?}"
    );

    let o = berth(
        &f.root,
        &[
            "create",
            "--name",
            "b",
            "--blkio-weight",
            "300",
            "--blkio-weight-device",
            &format!("{dev}:200"),
            "--device-read-bps",
            &read_limit,
            "--device-write-iops",
            &write_limit,
            "--device-cgroup-rule",
            "c 42:* rmw",
            "busybox",
            "true",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    let weights = ["blkio.weight", "blkio.bfq.weight"]
        .iter()
        .any(|w| Path::new("/sys/fs/cgroup/blkio").join(w).exists())
        || !Path::new("/sys/fs/cgroup/blkio").exists();
    let h = f.inspect("b")["HostConfig"].clone();
    let err = String::from_utf8_lossy(&o.stderr);
    if weights {
        assert_eq!(h["BlkioWeight"], 300);
    } else {
        // This host (cgroup v1, blk-mq without BFQ) has no weight files: docker's daemon
        // drops the weights with these warnings.
        assert!(
            err.contains("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."),
            "{err}"
        );
        assert!(err.contains("Weight-device discarded"), "{err}");
        assert_eq!(h["BlkioWeight"], 0);
    }
    assert_eq!(
        h["BlkioDeviceReadBps"],
        serde_json::json!([{"Path": dev, "Rate": 1 << 20}])
    );
    assert_eq!(
        h["BlkioDeviceWriteIOps"],
        serde_json::json!([{"Path": dev, "Rate": 50}])
    );
    assert_eq!(h["BlkioDeviceReadIOps"], serde_json::json!([]));
    assert_eq!(h["DeviceCgroupRules"], serde_json::json!(["c 42:* rmw"]));
    f.ok(&["rm", "b"]);

    f.ok(&[
        "run",
        "-d",
        "--name",
        "u",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ]);
    let o = berth(
        &f.root,
        &[
            "update",
            "--blkio-weight",
            "400",
            "--memory-reservation",
            "16m",
            "--cpuset-mems",
            "0",
            "u",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    // docker 28: the warnings on stdout, after the names.
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("u\n"), "{o:?}");
    let h = f.inspect("u")["HostConfig"].clone();
    assert_eq!(h["BlkioWeight"], if weights { 400 } else { 0 });
    assert_eq!(h["MemoryReservation"], 16 << 20);
    assert_eq!(h["CpusetMems"], "0");
    if !weights {
        assert!(stdout.contains("Weight discarded"), "{o:?}");
    }
    let soft = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "cat /sys/fs/cgroup/memory.low"
    } else {
        "cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes"
    };
    assert_eq!(
        f.ok(&["exec", "u", "sh", "-c", soft]).trim(),
        (16 << 20).to_string()
    );
    f.ok(&["rm", "-f", "u"]);

    for (args, msg) in [
        (&["--device-read-bps", "foo"][..], "bad format: foo"),
        (
            &["--device-read-bps", "/tmp/x:1mb"],
            "bad format for device path: /tmp/x:1mb",
        ),
        (
            &["--device-read-bps", "/dev/null:abc"],
            "invalid rate for device: /dev/null:abc. The correct format is <device-path>:<number>[<unit>]",
        ),
        (
            &["--device-write-iops", "/dev/null:1.5"],
            "invalid rate for device: /dev/null:1.5. The correct format is <device-path>:<number>. Number must be a positive integer",
        ),
        (
            &["--blkio-weight-device", "/dev/null:5"],
            "invalid weight for device: /dev/null:5",
        ),
        (
            &["--device-read-bps", "/dev/null:1mb"],
            "/dev/null is not a block device",
        ),
        (&["--device-read-iops", "/dev/nope:10"], "stat /dev/nope"),
        (
            &["--device-cgroup-rule", "x 1:3 r"],
            "invalid device cgroup format 'x 1:3 r'",
        ),
        (
            &["--device-cgroup-rule", "c 1:3  r"],
            "invalid device cgroup format 'c 1:3  r'",
        ),
        (&["--blkio-weight", "abc"], "--blkio-weight"),
    ] {
        f.create_refused(args, msg);
    }
    if weights {
        f.create_refused(
            &["--blkio-weight", "5"],
            "Range of blkio weight is from 10 to 1000",
        );
    }
    assert_eq!(f.ok(&["ps", "-aq"]), "");
}

/// `--annotation KEY=VALUE` (docker 24+, podman): into the OCI spec the runtime is given,
/// in `inspect`'s HostConfig.Annotations, and never among the labels (which Berth also
/// keeps as spec annotations): a `--label` with the same key keeps its own value.
#[test]
fn annotations_reach_the_runtime_and_stay_apart_from_labels() {
    let f = Fixture::new();
    f.ok(&[
        "create",
        "--name",
        "a",
        "--annotation",
        "run.oci.example=1",
        "--annotation",
        "bare",
        "--annotation",
        "both=annotation",
        "--label",
        "l=1",
        "--label",
        "both=label",
        "busybox",
        "true",
    ]);
    let v = f.inspect("a");
    assert_eq!(
        v["HostConfig"]["Annotations"],
        serde_json::json!({"run.oci.example": "1", "bare": "", "both": "annotation"})
    );
    assert_eq!(
        v["Config"]["Labels"],
        serde_json::json!({"l": "1", "both": "label"})
    );
    let dir = Path::new(v["GraphDriver"]["Data"]["MergedDir"].as_str().unwrap())
        .parent()
        .unwrap()
        .to_path_buf();
    let spec: Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["annotations"]["run.oci.example"], "1", "{spec}");
    assert_eq!(spec["annotations"]["both"], "annotation", "{spec}");
    assert_eq!(
        f.ok(&[
            "ps",
            "-a",
            "--filter",
            "label=both=label",
            "--format",
            "{{.Names}}"
        ]),
        "a\n"
    );
    assert_eq!(
        f.ok(&["ps", "-a", "--filter", "label=run.oci.example", "-q"]),
        ""
    );
    assert_eq!(
        f.ok(&[
            "inspect",
            "-f",
            "{{index .HostConfig.Annotations \"bare\"}}|{{json .Config.Labels}}",
            "a"
        ]),
        "|{\"both\":\"label\",\"l\":\"1\"}\n"
    );
    f.ok(&["start", "-a", "a"]);
    f.ok(&["rm", "a"]);
    f.create_refused(
        &["--annotation", "=x"],
        "the empty string is not permitted as an annotation key",
    );
    // Keys the engine reads back from the spec (the stop signal, the annotations' list).
    f.create_refused(
        &[
            "--annotation",
            "org.opencontainers.image.stopSignal=SIGKILL",
        ],
        "is reserved",
    );
}

/// `--cpu-rt-period`/`--cpu-rt-runtime` (cgroup v1's real-time group scheduling): a new
/// cgroup has no real-time time, so even with CAP_SYS_NICE a container's SCHED_FIFO is
/// refused; with `--cpu-rt-runtime` it is granted. inspect shows both, `update` changes the
/// running container's, and a runtime above the period is refused as docker does. Where the
/// kernel has no real-time group scheduling (cgroup v2) they are dropped with dockerd's
/// warnings.
#[test]
fn cpu_realtime_period_and_runtime() {
    let f = Fixture::new();
    let src = f.dir.join("fifo.c");
    std::fs::write(
        &src,
        "#include <sched.h>\n#include <stdio.h>\n#include <errno.h>\n#include <string.h>\n\
         int main(void) { struct sched_param p = { .sched_priority = 1 };\n\
         if (sched_setscheduler(0, SCHED_FIFO, &p) == 0) { puts(\"fifo\"); return 0; }\n\
         puts(errno == EPERM ? \"EPERM\" : strerror(errno)); return 1; }\n",
    )
    .unwrap();
    let prog = f.dir.join("fifo");
    let o = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&prog)
        .arg(&src)
        .output()
        .expect("cc (Debian's gcc and libc6-dev)");
    assert!(o.status.success(), "{o:?}");
    let bind = format!("{}:/fifo:ro", prog.display());
    let run = |flags: &[&str]| {
        let mut a = vec![
            "run",
            "--rm",
            "--network",
            "none",
            "--cap-add",
            "SYS_NICE",
            "-v",
        ];
        a.push(&bind);
        a.extend_from_slice(flags);
        a.extend_from_slice(&["busybox", "/fifo"]);
        berth(&f.root, &a)
    };
    let realtime = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"]
        .iter()
        .any(|d| Path::new(d).join("cpu.rt_runtime_us").exists());
    let o = run(&[]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "EPERM\n", "{o:?}");
    let o = run(&["--cpu-rt-runtime", "10000"]);
    if !realtime {
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(
                "Your kernel does not support cgroup cpu real-time runtime. Runtime discarded."
            ),
            "{o:?}"
        );
        return;
    }
    assert_eq!(String::from_utf8_lossy(&o.stdout), "fifo\n", "{o:?}");
    f.ok(&[
        "run",
        "-d",
        "--name",
        "rt",
        "--network",
        "none",
        "--cpu-rt-period",
        "500000",
        "--cpu-rt-runtime",
        "10000",
        "busybox",
        "sleep",
        "60",
    ]);
    let h = f.inspect("rt")["HostConfig"].clone();
    assert_eq!(
        (
            h["CpuRealtimePeriod"].clone(),
            h["CpuRealtimeRuntime"].clone()
        ),
        (500000.into(), 10000.into())
    );
    f.ok(&["update", "--cpu-rt-runtime", "20000", "rt"]);
    let cpu_dir = if Path::new("/sys/fs/cgroup/cpu").exists() {
        "cpu"
    } else {
        "cpu,cpuacct"
    };
    // The container's own cgroup: runtime, then period.
    let rt = || {
        f.ok(&[
            "exec",
            "rt",
            "cat",
            &format!("/sys/fs/cgroup/{cpu_dir}/cpu.rt_runtime_us"),
            &format!("/sys/fs/cgroup/{cpu_dir}/cpu.rt_period_us"),
        ])
    };
    assert_eq!(rt(), "20000\n500000\n");
    assert_eq!(
        f.ok(&["inspect", "-f", "{{.HostConfig.CpuRealtimeRuntime}}", "rt"]),
        "20000\n"
    );
    // A period below the current runtime: the kernel takes it only after the new runtime.
    f.ok(&[
        "update",
        "--cpu-rt-period",
        "5000",
        "--cpu-rt-runtime",
        "4000",
        "rt",
    ]);
    assert_eq!(rt(), "4000\n5000\n");
    f.ok(&["rm", "-f", "rt"]);
    f.create_refused(
        &["--cpu-rt-period", "1000000", "--cpu-rt-runtime", "2000000"],
        "cpu real-time runtime cannot be higher than cpu real-time period",
    );
}

/// `--storage-opt`: `size` needs XFS with project quotas, as docker's overlay2 driver does;
/// elsewhere (this machine's ext4, whose kernel has no quota support at all) dockerd's
/// refusal, and nothing is made. Another option is unknown, as to dockerd.
#[test]
fn storage_opt_is_refused_where_no_project_quota_can_enforce_it() {
    let f = Fixture::new();
    if berth_probe_xfs_pquota(&f.root) {
        eprintln!("skipped: this root is on XFS with project quotas");
        return;
    }
    f.create_refused(
        &["--storage-opt", "size=8m"],
        "--storage-opt is supported only for overlay over xfs with 'pquota' mount option",
    );
    f.create_refused(&["--storage-opt", "foo=bar"], "Unknown option foo");
    f.create_refused(&["--storage-opt", "size"], "invalid storage option");
    assert_eq!(f.ok(&["ps", "-aq"]), "");
}

/// Whether `root`'s filesystem is XFS mounted with project quotas (statfs's magic and the
/// mount's options).
fn berth_probe_xfs_pquota(root: &Path) -> bool {
    let o = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(root)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim() == "xfs"
        && std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains("prjquota")
}

//! Operations around running services, end to end as a user runs them:
//! `system boot` after a simulated reboot, `update` on a live container,
//! `container diff`, `system prune`, `generate systemd` and the security
//! report checked against what the kernel says. Needs root.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BusyboxRoot, RootfsTar, berth, berth_command, fails, output_with_stdin};
use serde_json::Value;

const LINKS: &[&str] = &[
    "sh", "echo", "cat", "ls", "sleep", "true", "false", "mkdir", "rm", "dd", "touch",
];

fn root() -> BusyboxRoot {
    BusyboxRoot::new(&["bin", "etc", "tmp", "data"], LINKS)
}

fn inspect(r: &BusyboxRoot, c: &str) -> Value {
    let v: Value = serde_json::from_str(&r.ok(&["inspect", c])).unwrap();
    v[0].clone()
}

fn state(r: &BusyboxRoot, c: &str) -> String {
    inspect(r, c)["State"]["Status"]
        .as_str()
        .unwrap()
        .to_string()
}

fn pid(r: &BusyboxRoot, c: &str) -> i32 {
    inspect(r, c)["State"]["Pid"].as_i64().unwrap() as i32
}

fn id(r: &BusyboxRoot, c: &str) -> String {
    inspect(r, c)["Id"].as_str().unwrap().to_string()
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn wait_gone(pids: &[i32]) {
    let t = Instant::now();
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{pids:?} still alive"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The cgroup directory of `pid` for `controller` (v1), or its unified one.
fn cgroup_dir(pid: i32, controller: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mut unified = None;
    for l in text.lines() {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let rel = path.trim_start_matches('/');
        if ctrls.split(',').any(|c| c == controller) {
            return Path::new("/sys/fs/cgroup").join(controller).join(rel);
        }
        if ctrls.is_empty() {
            unified = Some(Path::new("/sys/fs/cgroup").join(rel));
        }
    }
    unified.unwrap()
}

/// A cgroup value of a running container: the v1 file, else the v2 one.
fn cg_value(pid: i32, controller: &str, v1: &str, v2: &str) -> String {
    let d = cgroup_dir(pid, controller);
    std::fs::read_to_string(d.join(v1))
        .or_else(|_| std::fs::read_to_string(d.join(v2)))
        .unwrap()
        .trim()
        .to_string()
}

/// The mount points under `root` (deepest first).
fn mounts_under(root: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = root.to_string_lossy().into_owned();
    let mut v: Vec<String> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.len()));
    v
}

/// What a power cut does to a berth root: every monitor and container
/// SIGKILLed, the mounts gone, `<run>` (a tmpfs for the default root)
/// emptied, the bridge and firewall table gone. Cgroup directories stay (a
/// real reboot would take them too).
fn simulate_reboot(r: &BusyboxRoot, running: &[&str]) {
    let mut pids = vec![];
    for c in running {
        let cid = id(r, c);
        for m in common::monitor_pids(&cid) {
            // SAFETY: kill(2) on a pid we just read.
            unsafe { libc::kill(m, libc::SIGKILL) };
            pids.push(m);
        }
    }
    wait_gone(&pids);
    let mut inits = vec![];
    for c in running {
        // The record still has the pid (no monitor to update it).
        let out = berth(&r.root, &["inspect", "-f", "{{.State.Pid}}", c]);
        let p: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        inits.push(p);
    }
    // That command's adopters (which took over the monitorless containers) die too.
    let mut adopters = vec![];
    for c in running {
        for a in common::monitor_pids(&id(r, c)) {
            // SAFETY: kill(2) on a pid we just read.
            unsafe { libc::kill(a, libc::SIGKILL) };
            adopters.push(a);
        }
    }
    wait_gone(&adopters);
    for &p in &inits {
        // SAFETY: as above.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    wait_gone(&inits);
    for m in mounts_under(&r.root) {
        let st = Command::new("umount").args(["-l", &m]).status().unwrap();
        assert!(st.success(), "umount {m}");
    }
    let run = r.root.join("run");
    std::fs::remove_dir_all(&run).unwrap();
    // The host's network state goes too (in the namespace that plays the
    // host): the bridge and berth's nftables table.
    r.ns.sh(&["ip", "link", "del", "berth0"]);
    r.ns.sh(&["nft", "delete", "table", "inet", "berth"]);
}

/// A simulated reboot, then `system boot`: always comes back, unless-stopped
/// comes back unless the user stopped it, no and on-failure stay down, a
/// never-started container stays created; the ones started work (exec,
/// logs go on); a second boot does nothing.
#[test]
fn boot_restarts_exactly_the_right_containers() {
    let r = root();
    let script = "echo up; while true; do sleep 1; done";
    for (name, policy) in [
        ("always", "always"),
        ("unless", "unless-stopped"),
        ("stopped", "unless-stopped"),
        ("no", "no"),
        ("onfail", "on-failure"),
    ] {
        r.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--restart",
            policy,
            "busybox",
            "sh",
            "-c",
            script,
        ]);
    }
    r.ok(&[
        "create",
        "--name",
        "never",
        "--restart",
        "always",
        "busybox",
        "true",
    ]);
    r.ok(&["stop", "-t", "0", "stopped"]);
    let stale_cgroup = cgroup_dir(pid(&r, "no"), "pids");
    assert!(stale_cgroup.is_dir());
    let running = ["always", "unless", "no", "onfail"];
    simulate_reboot(&r, &running);
    assert!(stale_cgroup.is_dir(), "the simulation leaves the cgroup");

    let out = r.ok(&["system", "boot"]);
    let started: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("started "))
        .collect();
    // In the order they were created.
    assert_eq!(started, ["always", "unless"], "{out}");
    for c in ["always", "unless", "no", "onfail"] {
        assert!(
            out.lines().any(|l| l == format!("cleared {c}")),
            "{c}: {out}"
        );
    }
    for (c, want) in [
        ("always", "running"),
        ("unless", "running"),
        ("stopped", "exited"),
        ("no", "exited"),
        ("onfail", "exited"),
        ("never", "created"),
    ] {
        assert_eq!(state(&r, c), want, "{c}");
    }
    assert_eq!(inspect(&r, "no")["State"]["ExitCode"], 255);
    // The endpoints of the dead ones are released; the restarted ones have theirs.
    let net: Value = serde_json::from_str(&r.ok(&["network", "inspect", "bridge"])).unwrap();
    let mut on_bridge: Vec<String> = net[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["Name"].as_str().unwrap().to_string())
        .collect();
    on_bridge.sort();
    assert_eq!(on_bridge, ["always", "unless"], "{net}");
    // The bridge and the firewall table are back.
    r.ns.sh(&["ip", "link", "show", "berth0"]);
    r.ns.sh(&["nft", "list", "table", "inet", "berth"]);
    for c in ["always", "unless"] {
        let ip = inspect(&r, c)["NetworkSettings"]["IPAddress"].clone();
        assert!(ip.as_str().is_some_and(|a| !a.is_empty()), "{c}: {ip}");
    }
    assert!(!stale_cgroup.exists(), "{} left", stale_cgroup.display());
    // The restarted ones work: exec, and their log goes on after the old run's.
    for c in ["always", "unless"] {
        assert_eq!(
            r.ok(&["exec", c, "echo", "in", c]).trim(),
            format!("in {c}")
        );
        let t = Instant::now();
        loop {
            let logs = r.ok(&["logs", c]);
            if logs.matches("up").count() == 2 {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "{c}: {logs}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // A second boot: the running ones are left alone, nothing else starts.
    let pids = (pid(&r, "always"), pid(&r, "unless"));
    let again = r.ok(&["system", "boot"]);
    assert!(!again.contains("started"), "{again}");
    assert!(!again.contains("cleared"), "{again}");
    assert!(again.lines().any(|l| l == "running always"), "{again}");
    assert_eq!((pid(&r, "always"), pid(&r, "unless")), pids);
    assert_eq!(state(&r, "stopped"), "exited");
    // The unit that runs it at boot.
    let unit = r.ok(&["system", "boot", "--print-unit"]);
    assert!(unit.contains("Type=oneshot"), "{unit}");
    assert!(unit.contains("KillMode=process"), "{unit}");
    let exec = format!(
        "ExecStart={} --root {} system boot",
        env!("CARGO_BIN_EXE_berth"),
        r.root.display()
    );
    assert!(unit.contains(&exec), "{unit}");
    let dir = r.dir.join("units");
    std::fs::create_dir(&dir).unwrap();
    verify_unit(&dir, "berth-boot.service", &unit);
}

/// `update` on a running container: the cgroup has the new limits at once,
/// inspect shows them, the next start applies them; bad values are refused
/// as docker refuses them, with nothing changed.
#[test]
fn update_changes_a_live_container() {
    let r = root();
    // --network none: the network is not under test (and the cgroup v2 VM
    // this test also runs in has no bridge).
    r.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "u",
        "--memory",
        "64m",
        "busybox",
        "sleep",
        "1000",
    ]);
    let out = r.ok(&[
        "update",
        "--memory",
        "128m",
        "--pids-limit",
        "50",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--restart",
        "always",
        "u",
    ]);
    assert_eq!(out.trim(), "u");
    let check = |r: &BusyboxRoot| {
        let p = pid(r, "u");
        let mem = cg_value(p, "memory", "memory.limit_in_bytes", "memory.max");
        assert_eq!(mem, (128u64 << 20).to_string());
        assert_eq!(cg_value(p, "pids", "pids.max", "pids.max"), "50");
        let quota = cg_value(p, "cpu", "cpu.cfs_quota_us", "cpu.max");
        assert!(quota == "50000" || quota.starts_with("50000 "), "{quota}");
        let v = inspect(r, "u");
        let h = &v["HostConfig"];
        assert_eq!(h["Memory"], 128i64 << 20, "{h}");
        assert_eq!(h["PidsLimit"], 50);
        assert_eq!(h["NanoCpus"], 500_000_000i64);
        assert_eq!(h["CpuShares"], 512);
        assert_eq!(h["RestartPolicy"]["Name"], "always");
    };
    check(&r);
    // The next start uses them.
    r.ok(&["stop", "-t", "0", "u"]);
    r.ok(&["start", "u"]);
    check(&r);
    // docker's refusals.
    let e = fails(&r.root, &["update", "--memory", "1m", "u"], 1);
    assert!(e.contains("Minimum memory limit allowed is 6MB"), "{e}");
    let e = fails(
        &r.root,
        &["update", "--memory", "64m", "--memory-swap", "32m", "u"],
        1,
    );
    assert!(
        e.contains("memoryswap limit should be larger than memory limit"),
        "{e}"
    );
    let e = fails(&r.root, &["update", "u"], 125);
    assert!(e.contains("one or more flags"), "{e}");
    let e = fails(&r.root, &["update", "--memory", "lots", "u"], 125);
    assert!(e.contains("--memory"), "{e}");
    // Below what it uses (40 MB in its /dev/shm, no swap to move it to).
    r.ok(&[
        "exec",
        "u",
        "dd",
        "if=/dev/zero",
        "of=/dev/shm/fill",
        "bs=1M",
        "count=40",
    ]);
    let e = fails(&r.root, &["update", "--memory", "10m", "u"], 1);
    assert!(e.contains("uses now"), "{e}");
    assert_eq!(inspect(&r, "u")["HostConfig"]["Memory"], 128i64 << 20);
    assert_eq!(
        cg_value(
            pid(&r, "u"),
            "memory",
            "memory.limit_in_bytes",
            "memory.max"
        ),
        (128u64 << 20).to_string()
    );
    // run's own limit flags land in the same places.
    r.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "q",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "--memory",
        "32m",
        "--memory-swap",
        "64m",
        "--cpuset-cpus",
        "0",
        "busybox",
        "sleep",
        "1000",
    ]);
    let q = pid(&r, "q");
    assert_eq!(
        cg_value(q, "cpu", "cpu.cfs_period_us", "cpu.max")
            .rsplit(' ')
            .next(),
        Some("50000")
    );
    assert_eq!(
        cg_value(q, "cpu", "cpu.cfs_quota_us", "cpu.max")
            .split(' ')
            .next(),
        Some("25000")
    );
    assert_eq!(cg_value(q, "cpuset", "cpuset.cpus", "cpuset.cpus"), "0");
    let h = inspect(&r, "q")["HostConfig"].clone();
    assert_eq!(
        (
            &h["CpuPeriod"],
            &h["CpuQuota"],
            &h["MemorySwap"],
            &h["CpusetCpus"]
        ),
        (
            &50000.into(),
            &25000.into(),
            &(64i64 << 20).into(),
            &"0".into()
        ),
        "{h}"
    );
    let e = fails(&r.root, &["update", "--cpus", "1", "q"], 1);
    assert!(e.contains("Conflicting options"), "{e}");
    let e = fails(&r.root, &["update", "--memory", "100m", "q"], 1);
    assert!(e.contains("already set memoryswap"), "{e}");
    // A stopped container: stored for its next start.
    r.ok(&["stop", "-t", "0", "u"]);
    r.ok(&["update", "--pids-limit", "77", "u"]);
    r.ok(&["start", "u"]);
    assert_eq!(cg_value(pid(&r, "u"), "pids", "pids.max", "pids.max"), "77");
}

/// `container diff`: docker's A/C/D lines from the overlay upper
/// directory, whiteouts and an opaque directory included, in docker's
/// order, without the mount points the runtime made.
#[test]
fn diff_lists_the_containers_changes() {
    let r = root();
    let mut tar = RootfsTar::busybox(&["bin", "etc", "tmp", "data", "data/keep"], LINKS);
    tar.file("etc/a.conf", b"a\n", 0o644);
    tar.file("etc/b.conf", b"b\n", 0o644);
    tar.file("data/keep/x", b"x\n", 0o644);
    let tarball = r.dir.join("files.tar");
    tar.write(&tarball);
    r.ok(&["import", tarball.to_str().unwrap(), "files:latest"]);
    let script = "echo more >> /etc/a.conf; rm /etc/b.conf; mkdir /tmp/d; echo n > /tmp/d/n; \
                  rm -r /data/keep; mkdir /data/keep; echo y > /data/keep/y; touch /done; sleep 1000";
    r.ok(&["run", "-d", "--name", "d", "files", "sh", "-c", script]);
    let t = Instant::now();
    while !r.ok(&["diff", "d"]).contains("A /done") {
        assert!(t.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = r.ok(&["container", "diff", "d"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "C /data",
            "D /data/keep",
            "A /data/keep/y",
            "A /done",
            "C /etc",
            "C /etc/a.conf",
            "D /etc/b.conf",
            "C /tmp",
            "A /tmp/d",
            "A /tmp/d/n",
        ],
        "{out}"
    );
    // The same for a stopped container (its upper directory is kept).
    r.ok(&["stop", "-t", "0", "d"]);
    assert_eq!(r.ok(&["diff", "d"]), out);
    let e = fails(&r.root, &["diff"], 125);
    assert!(e.contains("requires exactly 1 argument"), "{e}");
}

fn with_stdin(r: &BusyboxRoot, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut c = berth_command(&r.root);
    c.args(args);
    output_with_stdin(c, Some(input))
}

/// `system prune`: docker's prompt (answering no removes nothing), then
/// stopped containers, unused networks, anonymous unused volumes (not named
/// ones), dangling images, and the total; filters narrow it.
#[test]
fn system_prune_removes_what_is_unused() {
    let r = root();
    r.ok(&["run", "-d", "--name", "keep", "busybox", "sleep", "1000"]);
    r.ok(&["run", "--name", "done", "-v", "/anon", "busybox", "true"]);
    r.ok(&[
        "run",
        "--name",
        "labelled",
        "--label",
        "tier=test",
        "busybox",
        "true",
    ]);
    r.ok(&["volume", "create", "named"]);
    r.ok(&["network", "create", "unused-net"]);
    let anon = inspect(&r, "done")["Mounts"][0]["Name"]
        .as_str()
        .unwrap()
        .to_string();
    // The prompt; "n" keeps everything.
    let o = with_stdin(&r, &["system", "prune", "--volumes"], b"n\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all anonymous volumes not used by at least one container\n  - all dangling images\n  - unused build cache\n\nAre you sure you want to continue? [y/N]"
        ),
        "{err}"
    );
    assert_eq!(state(&r, "done"), "exited");
    let o = with_stdin(
        &r,
        &[
            "system",
            "prune",
            "--filter",
            "until=24h",
            "--filter",
            "label=a=b",
        ],
        b"n\n",
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "\n  Items to be pruned will be filtered with:\n  - label=a=b\n  - until=24h\n"
        ),
        "{err}"
    );
    // A label filter: only that container goes.
    let out = r.ok(&["system", "prune", "-f", "--filter", "label=tier=test"]);
    let labelled = out.lines().nth(1).unwrap_or("").to_string();
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert_eq!(
        berth(&r.root, &["inspect", "labelled"]).status.code(),
        Some(1)
    );
    assert_eq!(state(&r, "done"), "exited");
    assert!(!labelled.is_empty());
    // until with --volumes: docker's refusal.
    let e = fails(
        &r.root,
        &["system", "prune", "-f", "--volumes", "--filter", "until=1h"],
        1,
    );
    assert!(
        e.contains("\"until\" filter is not supported with \"--volumes\""),
        "{e}"
    );
    // Everything unused.
    let out = r.ok(&["system", "prune", "-f", "--volumes"]);
    assert!(out.contains("Deleted Containers:\n"), "{out}");
    assert!(out.contains("Deleted Networks:\nunused-net\n"), "{out}");
    assert!(
        out.contains(&format!("Deleted Volumes:\n{anon}\n")),
        "{out}"
    );
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("Total reclaimed space: "),
        "{out}"
    );
    assert_eq!(berth(&r.root, &["inspect", "done"]).status.code(), Some(1));
    assert_eq!(state(&r, "keep"), "running");
    let vols = r.ok(&["volume", "ls", "-q"]);
    assert!(vols.lines().any(|v| v == "named"), "{vols}");
    assert!(!vols.contains(&anon), "{vols}");
    // The image the running container uses stays, even with -a.
    r.ok(&["system", "prune", "-a", "-f"]);
    assert!(r.ok(&["image", "ls"]).contains("busybox"));
    // Nothing left: the second run removes nothing.
    let out = r.ok(&["system", "prune", "-f"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
}

/// `generate systemd`: a unit that starts the container attached, and a
/// `--new` one that runs it afresh from the flags it was created with.
#[test]
fn generate_systemd_units() {
    let r = root();
    r.ok(&[
        "create",
        "--name",
        "web",
        "-e",
        "GREETING=hello world",
        "--memory",
        "64m",
        "busybox",
        "sleep",
        "1000",
    ]);
    let berth_bin = env!("CARGO_BIN_EXE_berth");
    let prefix = format!("{berth_bin} --root {}", r.root.display());
    let unit = r.ok(&["generate", "systemd", "--name", "web"]);
    assert!(unit.starts_with("# container-web.service\n"), "{unit}");
    assert!(
        unit.contains(&format!("ExecStart={prefix} start --attach web\n")),
        "{unit}"
    );
    assert!(
        unit.contains(&format!("ExecStop={prefix} stop -t 10 web\n")),
        "{unit}"
    );
    assert!(unit.contains("Restart=on-failure\n"), "{unit}");
    assert!(
        unit.contains("[Install]\nWantedBy=default.target\n"),
        "{unit}"
    );
    let cid = id(&r, "web");
    let by_id = r.ok(&[
        "generate",
        "systemd",
        "--restart-policy",
        "always",
        "-t",
        "5",
        "web",
    ]);
    assert!(
        by_id.contains(&format!("# container-{cid}.service")),
        "{by_id}"
    );
    assert!(
        by_id.contains("Restart=always\n") && by_id.contains("stop -t 5 "),
        "{by_id}"
    );
    let new = r.ok(&["generate", "systemd", "--new", "web"]);
    assert!(
        new.contains(&format!("ExecStartPre=-{prefix} rm -f web\n")),
        "{new}"
    );
    assert!(
        new.contains(&format!(
            "ExecStart={prefix} run --rm --name web \"--env=GREETING=hello world\" --memory=64m busybox sleep 1000\n"
        )),
        "{new}"
    );
    let units = r.dir.join("units");
    std::fs::create_dir(&units).unwrap();
    verify_unit(&units, "container-web.service", &unit);
    verify_unit(&units, "container-new.service", &new);
    let e = fails(
        &r.root,
        &[
            "generate",
            "systemd",
            "--restart-policy",
            "sometimes",
            "web",
        ],
        125,
    );
    assert!(e.contains("on-failure"), "{e}");
    let o = berth_command(&r.root)
        .args(["generate", "systemd", "--files", "--name", "web"])
        .current_dir(&r.dir)
        .output()
        .unwrap();
    assert!(o.status.success());
    let path = r.dir.join("container-web.service");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        path.to_string_lossy()
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), unit);
}

/// `systemd-analyze verify` of a unit (written as `name` in `dir`).
fn verify_unit(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "{name}: {}\n{text}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Bits of a /proc/PID/status capability mask.
fn cap_bits(status: &str, key: &str) -> Vec<u32> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap()
        .trim();
    let v = u64::from_str_radix(hex, 16).unwrap();
    (0..64).filter(|b| v & (1 << b) != 0).collect()
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The security report of a default, a --privileged and a SYS_ADMIN +
/// seccomp=unconfined container (and one with the engine's state mounted
/// in), each field checked against what this test reads from the kernel.
#[test]
fn security_report_matches_the_kernel() {
    let r = root();
    let state_mount = format!("{}:/berthroot:ro", r.root.display());
    // --network none: see update_changes_a_live_container.
    r.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "d",
        "busybox",
        "sleep",
        "1000",
    ]);
    r.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--privileged",
        "--name",
        "p",
        "busybox",
        "sleep",
        "1000",
    ]);
    r.ok(&[
        "run",
        "-d",
        "--network",
        "none",
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
    r.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "-v",
        &state_mount,
        "--name",
        "m",
        "busybox",
        "sleep",
        "1000",
    ]);
    for c in ["d", "p", "s", "m"] {
        let rep: Value =
            serde_json::from_str(&r.ok(&["inspect", "--security", "--format", "json", c])).unwrap();
        let alias: Value =
            serde_json::from_str(&r.ok(&["security", "--format", "json", c])).unwrap();
        assert_eq!(rep["Capabilities"], alias["Capabilities"]);
        let p = pid(&r, c);
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap();
        // Capabilities: the names are the kernel's bits.
        for (field, key) in [
            ("Effective", "CapEff"),
            ("Bounding", "CapBnd"),
            ("Ambient", "CapAmb"),
            ("Permitted", "CapPrm"),
        ] {
            let names = rep["Capabilities"][field].as_array().unwrap();
            let bits = cap_bits(&status, key);
            assert_eq!(
                names.len(),
                bits.len(),
                "{c} {field}: {names:?} vs {bits:?}"
            );
            // CAP_SYS_ADMIN is bit 21.
            assert_eq!(
                names.iter().any(|n| n == "CAP_SYS_ADMIN"),
                bits.contains(&21),
                "{c} {field}"
            );
        }
        assert_eq!(
            rep["NoNewPrivileges"],
            status_field(&status, "NoNewPrivs") == "1",
            "{c}"
        );
        assert_eq!(
            rep["SeccompMode"].to_string(),
            status_field(&status, "Seccomp"),
            "{c}"
        );
        assert_eq!(
            rep["SeccompFilters"].to_string(),
            status_field(&status, "Seccomp_filters"),
            "{c}"
        );
        // Namespaces against PID 1's.
        for ns in rep["Namespaces"].as_array().unwrap() {
            let t = ns["Type"].as_str().unwrap();
            let theirs = std::fs::read_link(format!("/proc/{p}/ns/{t}")).unwrap();
            // PID 1's, or where it cannot be read (a sandbox), berth's own
            // (this test's, but the net namespace berth runs in).
            let host = std::fs::read_link(format!("/proc/1/ns/{t}")).unwrap_or_else(|_| {
                match (t, common::netns_of(&r.root)) {
                    ("net", Some(ns)) => {
                        use std::os::unix::fs::MetadataExt;
                        let ino = std::fs::metadata(format!("/run/netns/{ns}")).unwrap().ino();
                        PathBuf::from(format!("net:[{ino}]"))
                    }
                    _ => std::fs::read_link(format!("/proc/self/ns/{t}")).unwrap(),
                }
            });
            assert_eq!(ns["SharedWithHost"], theirs == host, "{c} {t}");
        }
        let uid_map = std::fs::read_to_string(format!("/proc/{p}/uid_map")).unwrap();
        assert_eq!(
            rep["UidMap"].as_str().unwrap(),
            uid_map.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        assert!(
            rep["DeviceNodes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d == "null c 1:3"),
            "{c}: {}",
            rep["DeviceNodes"]
        );
        let text = r.ok(&["security", c]);
        assert!(text.contains("Verdict:"), "{text}");
        match c {
            "d" => {
                assert_eq!(rep["Verdict"], serde_json::json!([]), "{rep}");
                assert_eq!(rep["ProcSysReadOnly"], true);
                assert!(
                    rep["MaskedPaths"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|m| m[1] == true)
                );
                assert!(
                    rep["SeccompSyscallsAllowed"].as_u64().unwrap() > 200,
                    "{rep}"
                );
                assert!(text.contains("no risky settings"), "{text}");
            }
            "p" => {
                let v = rep["Verdict"].to_string();
                assert!(
                    v.contains("privileged") && v.contains("every device allowed"),
                    "{v}"
                );
                assert_eq!(rep["ProcSysReadOnly"], false);
                assert!(rep["SeccompSyscallsAllowed"].is_null());
                assert!(text.contains("RISKY"), "{text}");
            }
            "s" => {
                let v = rep["Verdict"].to_string();
                assert!(
                    v.contains("CAP_SYS_ADMIN") && v.contains("no seccomp"),
                    "{v}"
                );
                assert!(!v.contains("privileged"), "{v}");
            }
            _ => {
                let v = rep["Verdict"].to_string();
                assert!(v.contains("the engine's state is mounted in"), "{v}");
            }
        }
    }
}

/// docker's management-command forms answer as the short ones do.
#[test]
fn management_command_forms() {
    let r = root();
    r.ok(&["container", "create", "--name", "x", "busybox", "true"]);
    for args in [
        &["container", "ls", "-a", "-q"][..],
        &["container", "list", "-aq"],
        &["container", "ps", "-aq"],
        &["ps", "-aq"],
    ] {
        assert_eq!(r.ok(args).lines().count(), 1, "{args:?}");
    }
    assert!(r.ok(&["image", "ls"]).contains("busybox"));
    assert!(r.ok(&["image", "list"]).contains("busybox"));
    assert!(r.ok(&["images"]).contains("busybox"));
    r.ok(&["container", "update", "--pids-limit", "10", "x"]);
    assert_eq!(inspect(&r, "x")["HostConfig"]["PidsLimit"], 10);
    let help = r.ok(&["generate", "--help"]);
    assert!(help.contains("systemd"), "{help}");
}

/// The prune commands' `--filter`: `label=`, `label!=`, `until=`; an
/// unknown filter is an error, before anything is removed.
#[test]
fn prune_filters_per_object() {
    let r = root();
    r.ok(&["create", "--name", "a", "--label", "k=v", "busybox", "true"]);
    r.ok(&["create", "--name", "b", "busybox", "true"]);
    let e = fails(
        &r.root,
        &["container", "prune", "-f", "--filter", "bogus=1"],
        1,
    );
    assert!(e.contains("invalid filter 'bogus=1'"), "{e}");
    // Made just now: not before an hour ago.
    let out = r.ok(&["container", "prune", "-f", "--filter", "until=1h"]);
    assert!(!out.contains(&id(&r, "a")), "{out}");
    let a = id(&r, "a");
    let out = r.ok(&["container", "prune", "-f", "--filter", "label=k=v"]);
    assert!(out.contains(&a), "{out}");
    assert_eq!(state(&r, "b"), "created");
    let b = id(&r, "b");
    let out = r.ok(&["container", "prune", "-f", "--filter", "label!=k"]);
    assert_eq!(out.lines().nth(1), Some(b.as_str()), "{out}");
    assert_eq!(
        berth(&r.root, &["inspect", "--type", "container", "b"])
            .status
            .code(),
        Some(1)
    );
    r.ok(&["network", "create", "--label", "n=1", "n1"]);
    r.ok(&["network", "create", "n2"]);
    let out = r.ok(&["network", "prune", "-f", "--filter", "label=n=1"]);
    assert_eq!(out, "Deleted Networks:\nn1\n");
    r.ok(&["network", "rm", "n2"]);
    r.ok(&["volume", "create", "--label", "v=1", "vol1"]);
    r.ok(&["volume", "create", "vol2"]);
    let out = r.ok(&["volume", "prune", "-a", "-f", "--filter", "label=v=1"]);
    assert!(out.starts_with("Deleted Volumes:\nvol1\n"), "{out}");
    assert_eq!(r.ok(&["volume", "ls", "-q"]).trim(), "vol2");
    let e = fails(
        &r.root,
        &["volume", "prune", "-f", "--filter", "until=1h"],
        1,
    );
    assert!(e.contains("until"), "{e}");
    let out = r.ok(&["image", "prune", "-a", "-f", "--filter", "label=none=here"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    assert!(r.ok(&["image", "ls"]).contains("busybox"));
}

/// `update --restart` on a running container reaches its monitor: the
/// policy given after the start decides what happens at its exit.
#[test]
fn update_restart_policy_reaches_the_monitor() {
    let r = root();
    r.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "f",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 3",
    ]);
    r.ok(&["update", "--restart", "on-failure:2", "f"]);
    let cid = id(&r, "f");
    // Done when its monitor is gone: the policy gave up.
    let t = Instant::now();
    while !common::monitor_pids(&cid).is_empty() {
        assert!(t.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(100));
    }
    let v = inspect(&r, "f");
    assert_eq!(v["RestartCount"], 2, "{v}");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 3);
    assert_eq!(
        inspect(&r, "f")["HostConfig"]["RestartPolicy"],
        serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 2})
    );
}

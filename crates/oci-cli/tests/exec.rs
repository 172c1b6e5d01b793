//! `exec` into a running container.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::time::Duration;

fn sleeper(rt: &Runtime) -> (Bundle, Container) {
    let b = rt.bundle();
    b.args(&["sleep", "1000"])
        .hostname("berth-exec")
        .env("FROM_CONFIG=yes")
        .cwd("/");
    let c = rt.start_container(&b);
    (b, c)
}

#[test]
fn exec_joins_the_container_namespaces() {
    let rt = Runtime::new();
    let (_b, c) = sleeper(&rt);
    let o = rt.exec(
        &c.id,
        &[
            "sh",
            "-c",
            "echo pid=$$; cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname; \
           for n in pid uts ipc net mnt cgroup; do echo $n $(readlink /proc/self/ns/$n); done",
        ],
    );
    o.ok();
    let lines = o.lines();
    let pid: i32 = lines[0].strip_prefix("pid=").unwrap().parse().unwrap();
    assert!(pid > 1, "exec'd process must not be pid 1: {pid}");
    assert!(
        lines[1].starts_with("sleep 1000"),
        "pid 1 in the exec'd process's pid ns: {:?}",
        lines[1]
    );
    assert_eq!(lines[2], "berth-exec");
    let init = c.pid.to_string();
    for n in ["pid", "uts", "ipc", "net", "mnt", "cgroup"] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{n} ")))
            .unwrap_or_else(|| panic!("{o}"));
        assert_eq!(
            &line[n.len() + 1..],
            ns_of(&init, n),
            "{n} namespace differs from the container's"
        );
    }
}

#[test]
fn exec_env_cwd_user() {
    let rt = Runtime::new();
    let (_b, c) = sleeper(&rt);
    let o = rt.exec_with(
        &[
            "--env",
            "FOO=bar",
            "--env",
            "BAZ=qux quux",
            "--cwd",
            "/tmp",
            "--user",
            "1000:1000",
        ],
        &c.id,
        &[
            "sh",
            "-c",
            "echo \"$FOO|$BAZ|$FROM_CONFIG\"; pwd; id -u; id -g",
        ],
    );
    o.ok();
    assert_eq!(
        o.lines(),
        vec!["bar|qux quux|yes", "/tmp", "1000", "1000"],
        "{o}"
    );
}

#[test]
fn exec_short_flags_and_uid_only() {
    let rt = Runtime::new();
    let (_b, c) = sleeper(&rt);
    let o = rt.exec_with(
        &["-u", "1000", "-e", "SHORT=1"],
        &c.id,
        &["sh", "-c", "id -u; echo $SHORT"],
    );
    o.ok();
    assert_eq!(o.lines(), vec!["1000", "1"], "{o}");
}

#[test]
fn exec_defaults_come_from_config() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"])
        .cwd("/home/user")
        .user(1000, 1000)
        .env("FROM_CONFIG=cfg");
    let c = rt.start_container(&b);
    let o = rt.exec(&c.id, &["sh", "-c", "pwd; id -u; echo $FROM_CONFIG"]);
    o.ok();
    assert_eq!(o.lines(), vec!["/home/user", "1000", "cfg"], "{o}");
}

#[test]
fn exec_exit_code() {
    let rt = Runtime::new();
    let (_b, c) = sleeper(&rt);
    rt.exec(&c.id, &["sh", "-c", "exit 7"]).code_is(7);
    rt.exec(&c.id, &["true"]).code_is(0);
    // The container keeps running.
    assert_eq!(rt.status(&c.id).as_deref(), Some("running"));
}

#[test]
fn exec_stdio() {
    let rt = Runtime::new();
    let (_b, c) = sleeper(&rt);
    let o = rt.exec(&c.id, &["sh", "-c", "echo out; echo err >&2"]);
    o.ok();
    assert_eq!(o.out(), "out");
    assert!(o.stderr.contains("err"), "{o}");
}

#[test]
fn exec_process_file() {
    let rt = Runtime::new();
    let (_b, c) = sleeper(&rt);
    let file = rt.scratch().join("process.json");
    fs::write(
        &file,
        serde_json::to_string(&json!({
            "terminal": false,
            "user": {"uid": 1000, "gid": 1000},
            "args": ["sh", "-c", "echo from-process-file $X; pwd; id -u"],
            "env": ["PATH=/bin:/usr/bin", "X=y"],
            "cwd": "/tmp"
        }))
        .unwrap(),
    )
    .unwrap();
    let o = rt.cmd(&["exec", "--process", s(&file), &c.id]);
    o.ok();
    assert_eq!(
        o.lines(),
        vec!["from-process-file y", "/tmp", "1000"],
        "{o}"
    );
}

#[test]
fn exec_detached_with_pid_file() {
    let rt = Runtime::new();
    let (b, c) = sleeper(&rt);
    let pidfile = rt.scratch().join("exec.pid");
    let o = rt.cmd(&[
        "exec",
        "-d",
        "--pid-file",
        s(&pidfile),
        &c.id,
        "sleep",
        "999",
    ]);
    o.ok();
    assert!(
        o.elapsed < Duration::from_secs(15),
        "exec -d did not return"
    );
    let pid: i32 = fs::read_to_string(&pidfile)
        .expect("pid file")
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(pid), "detached exec process is not running");
    let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with("sleep\0999"), "{cmdline:?}");
    let init = c.pid.to_string();
    assert_eq!(ns_of(&pid.to_string(), "pid"), ns_of(&init, "pid"));
    assert_eq!(ns_of(&pid.to_string(), "mnt"), ns_of(&init, "mnt"));
    // Same cgroup as init.
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
        fs::read_to_string(format!("/proc/{}/cgroup", c.pid)).unwrap()
    );
    assert!(
        fs::read_to_string(cgroup_dir("pids", &b.cgroup).join("cgroup.procs"))
            .map(|p| p.lines().any(|l| l.trim() == pid.to_string()))
            .unwrap_or(true),
        "exec'd process not in the container's cgroup"
    );
    // Force delete kills exec'd processes too.
    rt.cmd(&["delete", "--force", &c.id]).ok();
    wait_pid_gone(pid, Duration::from_secs(5));
}

#[test]
fn exec_cap_adds_capability() {
    let rt = Runtime::new();
    let (_b, c) = sleeper(&rt);
    let cap_eff = |o: &Output| -> u64 {
        let l = o
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .unwrap_or_else(|| panic!("{o}"));
        u64::from_str_radix(l.trim(), 16).unwrap()
    };
    let sys_admin = 1u64 << 21;
    let o = rt.exec(&c.id, &["grep", "CapEff", "/proc/self/status"]);
    o.ok();
    assert_eq!(
        cap_eff(&o) & sys_admin,
        0,
        "CAP_SYS_ADMIN present without --cap"
    );
    let o = rt.exec_with(
        &["--cap", "CAP_SYS_ADMIN"],
        &c.id,
        &["grep", "CapEff", "/proc/self/status"],
    );
    o.ok();
    assert_ne!(
        cap_eff(&o) & sys_admin,
        0,
        "--cap CAP_SYS_ADMIN not granted:\n{o}"
    );
}

#[test]
fn exec_args_after_id_are_not_runtime_flags() {
    let rt = Runtime::new();
    let (_b, c) = sleeper(&rt);
    let o = rt.exec(&c.id, &["echo", "--env", "-d", "x"]);
    o.ok();
    assert_eq!(o.out(), "--env -d x");
}

#[test]
fn exec_missing_binary() {
    let rt = Runtime::new();
    let (_b, c) = sleeper(&rt);
    let o = rt.exec(&c.id, &["no-such-binary-berth"]);
    o.fails().stderr_mentions(&["no-such-binary-berth"]);
    assert_eq!(rt.status(&c.id).as_deref(), Some("running"));
}

#[test]
fn exec_into_stopped_container_fails() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["true"]);
    let id = rt.new_id("stopped");
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    rt.exec(&id, &["true"])
        .fails()
        .stderr_mentions(&["not running", "stopped"]);
}

#[test]
fn exec_into_unknown_container_fails() {
    let rt = Runtime::new();
    let id = rt.new_id("ghost");
    rt.exec(&id, &["true"])
        .fails()
        .stderr_mentions(&["container does not exist"]);
}

#[test]
fn exec_signal_forwarding() {
    let rt = Runtime::new();
    let (_b, c) = sleeper(&rt);
    let mut ex = rt.spawn(&[
        "exec",
        c.id.as_str(),
        "sh",
        "-c",
        "trap 'echo exec-got-term; exit 9' TERM; echo ready; while :; do sleep 0.1; done",
    ]);
    assert!(
        ex.wait_for_stdout("ready", Duration::from_secs(20)),
        "exec did not start: {}",
        ex.stderr_now()
    );
    unsafe { libc::kill(ex.pid(), libc::SIGTERM) };
    let o = ex.wait(CMD_TIMEOUT);
    o.code_is(9);
    assert!(o.stdout.contains("exec-got-term"), "{o}");
}

#[test]
fn concurrent_execs() {
    let rt = Runtime::new();
    let (_b, c) = sleeper(&rt);
    let outs: Vec<Output> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let (rt, id) = (&rt, c.id.clone());
                sc.spawn(move || rt.exec(&id, &["sh", "-c", &format!("echo n{i}")]))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, o) in outs.iter().enumerate() {
        o.ok();
        assert_eq!(o.out(), format!("n{i}"));
    }
}

/// A paused container refuses exec unless --ignore-paused (runc's flag); with it, the
/// process is made frozen and runs once the container is resumed.
#[test]
fn exec_into_a_paused_container_needs_ignore_paused() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let c = rt.start_container(&b);
    rt.cmd(&["pause", &c.id]).ok();
    let o = rt.exec(&c.id, &["echo", "ran"]);
    o.fails();
    o.stderr_mentions(&["paused", "--ignore-paused"]);
    let mut running = rt.spawn(&["exec", "--ignore-paused", &c.id, "echo", "ran"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        running.try_wait().is_none() && !running.stdout_now().contains("ran"),
        "the exec'd process ran in a paused container"
    );
    rt.cmd(&["resume", &c.id]).ok();
    let o = running.wait(CMD_TIMEOUT);
    o.ok();
    assert_eq!(o.out(), "ran", "{o}");
    rt.cmd(&["delete", "--force", &c.id]).ok();
}

/// An exec'd process lands in the container's cgroup, the one init is in (as with runc
/// without --cgroup).
#[test]
fn exec_joins_the_container_cgroup() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let c = rt.start_container(&b);
    let init = fs::read_to_string(format!("/proc/{}/cgroup", c.pid)).unwrap();
    let o = rt.exec(&c.id, &["cat", "/proc/self/cgroup"]);
    o.ok();
    // Inside a cgroup namespace the paths are relative to the container's cgroup:
    // compare through the host's view of the exec'd process instead when there is one.
    let o2 = rt.exec(&c.id, &["sh", "-c", "cat /proc/1/cgroup"]);
    o2.ok();
    assert_eq!(
        o.out(),
        o2.out(),
        "the exec'd process is not in init's cgroup"
    );
    assert!(!init.is_empty());
    rt.cmd(&["delete", "--force", &c.id]).ok();
}

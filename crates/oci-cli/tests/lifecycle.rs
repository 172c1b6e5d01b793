//! Container lifecycle: create → start → kill → delete, `state`, `run`, pid files.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::path::Path;
use std::time::Duration;

fn canon(p: &Path) -> std::path::PathBuf {
    fs::canonicalize(p).unwrap_or_else(|e| panic!("canonicalize {}: {e}", p.display()))
}

#[test]
fn create_start_kill_delete() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let id = rt.new_id("life");

    rt.create(&b, &id).ok();
    let st = rt.state(&id);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["id"], id.as_str());
    let pid = st["pid"].as_i64().expect("pid in state") as i32;
    assert!(
        pid > 0 && pid_alive(pid),
        "init process {pid} of a created container is not alive"
    );
    assert!(
        rt.root().join(&id).is_dir(),
        "no state directory under --root"
    );

    // The init waits: it has not exec'd the user process yet.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        rt.status(&id).as_deref(),
        Some("created"),
        "created container must wait for start"
    );
    let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        !cmdline.starts_with("sleep\0"),
        "user process ran before start: {cmdline:?}"
    );

    rt.start(&id).ok();
    let st = rt.state(&id);
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(
        st["pid"].as_i64(),
        Some(pid as i64),
        "pid changed across start"
    );
    assert!(
        wait_until(Duration::from_secs(5), || {
            fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .starts_with("sleep\0")
        }),
        "container process is not `sleep 1000` after start"
    );

    rt.cmd(&["kill", &id, "KILL"]).ok();
    rt.wait_status(&id, "stopped");
    wait_pid_gone(pid, Duration::from_secs(5));

    rt.cmd(&["delete", &id]).ok();
    rt.assert_gone(&id);
    assert!(
        cgroup_dirs(&b.cgroup).is_empty(),
        "cgroup left after delete: {:?}",
        cgroup_dirs(&b.cgroup)
    );
}

#[test]
fn state_json_fields() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    b.edit(|c| c["annotations"] = json!({"org.berth.test": "yes", "other": "value"}));
    let id = rt.new_id("state");
    rt.create(&b, &id).ok();
    let st = rt.state(&id);
    assert!(
        st["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "ociVersion: {st}"
    );
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["status"], "created");
    assert!(st["pid"].as_i64().unwrap_or(0) > 0, "pid: {st}");
    let bundle = st["bundle"].as_str().expect("bundle field");
    assert!(
        Path::new(bundle).is_absolute(),
        "bundle must be absolute: {bundle}"
    );
    assert_eq!(canon(Path::new(bundle)), canon(b.path()));
    let rootfs = st["rootfs"].as_str().expect("rootfs field");
    assert_eq!(canon(Path::new(rootfs)), canon(&b.rootfs()));
    let created = st["created"].as_str().expect("created field");
    // RFC 3339, e.g. 2024-01-02T03:04:05.123456789Z
    assert!(
        created.len() >= 20 && created.as_bytes()[4] == b'-' && created.as_bytes()[10] == b'T',
        "created is not an RFC 3339 timestamp: {created}"
    );
    let year: i32 = created[..4].parse().expect("year");
    assert!(year >= 2024, "created: {created}");
    assert!(st["owner"].is_string(), "owner field: {st}");
    assert_eq!(
        st["annotations"]["org.berth.test"], "yes",
        "annotations: {st}"
    );
    assert_eq!(st["annotations"]["other"], "value", "annotations: {st}");
}

#[test]
fn process_exit_makes_container_stopped() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["true"]);
    let id = rt.new_id("exit");
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    // A stopped container can be deleted without --force.
    rt.cmd(&["delete", &id]).ok();
    rt.assert_gone(&id);
}

#[test]
fn delete_created_requires_force() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let id = rt.new_id("delc");
    rt.create(&b, &id).ok();
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;

    rt.cmd(&["delete", &id]).fails();
    assert_eq!(
        rt.status(&id).as_deref(),
        Some("created"),
        "refused delete must keep the container"
    );
    assert!(pid_alive(pid));

    rt.cmd(&["delete", "--force", &id]).ok();
    rt.assert_gone(&id);
    wait_pid_gone(pid, Duration::from_secs(5));
    assert!(
        wait_until(Duration::from_secs(3), || cgroup_dirs(&b.cgroup).is_empty()),
        "cgroup left"
    );
}

#[test]
fn delete_running_requires_force() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let c = rt.start_container(&b);

    rt.cmd(&["delete", &c.id]).fails();
    assert_eq!(rt.status(&c.id).as_deref(), Some("running"));
    assert!(pid_alive(c.pid));

    rt.cmd(&["delete", "-f", &c.id]).ok();
    rt.assert_gone(&c.id);
    wait_pid_gone(c.pid, Duration::from_secs(5));
    assert!(
        wait_until(Duration::from_secs(3), || cgroup_dirs(&b.cgroup).is_empty()),
        "cgroup left"
    );
    assert!(
        rt.tagged_processes().is_empty(),
        "processes left: {:?}",
        rt.tagged_processes()
    );
}

#[test]
fn force_delete_kills_every_process_of_the_container() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.sh("sleep 1000 & sleep 1000 & wait");
    let c = rt.start_container(&b);
    assert!(
        wait_until(Duration::from_secs(5), || rt.tagged_processes().len() >= 3),
        "expected sh + 2 sleeps: {:?}",
        rt.tagged_processes()
    );
    rt.cmd(&["delete", "--force", &c.id]).ok();
    rt.assert_gone(&c.id);
    assert!(
        wait_until(Duration::from_secs(5), || rt.tagged_processes().is_empty()),
        "processes survived delete --force: {:?}",
        rt.tagged_processes()
    );
}

#[test]
fn start_twice_fails() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let c = rt.start_container(&b);
    rt.start(&c.id).fails();
    assert_eq!(rt.status(&c.id).as_deref(), Some("running"));

    rt.cmd(&["kill", &c.id, "KILL"]).ok();
    rt.wait_status(&c.id, "stopped");
    rt.start(&c.id).fails();
}

#[test]
fn run_foreground_waits_and_deletes() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.sh("echo hello-from-run");
    let id = rt.new_id("fg");
    let o = rt.cmd(&["run", "--bundle", s(b.path()), &id]);
    o.ok();
    assert!(
        o.stdout.contains("hello-from-run"),
        "container stdout not passed through:\n{o}"
    );
    rt.assert_gone(&id);
    assert!(
        wait_until(Duration::from_secs(3), || cgroup_dirs(&b.cgroup).is_empty()),
        "cgroup left"
    );
}

#[test]
fn run_without_bundle_flag_uses_cwd() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.sh("echo cwd-bundle");
    let id = rt.new_id("cwd");
    let mut c = rt.command(["run", id.as_str()]);
    c.current_dir(b.path());
    let o = run_cmd(c);
    o.ok();
    assert!(o.stdout.contains("cwd-bundle"), "{o}");
}

#[test]
fn run_detached() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let id = rt.new_id("det");
    let pidfile = rt.scratch().join("pid");
    let o = rt.cmd(&[
        "run",
        "-d",
        "--pid-file",
        s(&pidfile),
        "--bundle",
        s(b.path()),
        &id,
    ]);
    o.ok();
    assert!(
        o.elapsed < Duration::from_secs(15),
        "run -d did not return promptly"
    );
    let st = rt.state(&id);
    assert_eq!(st["status"], "running");
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(pid_alive(pid));
    let from_file: i32 = fs::read_to_string(&pidfile)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(from_file, pid);

    rt.cmd(&["kill", &id, "KILL"]).ok();
    rt.wait_status(&id, "stopped");
    rt.cmd(&["delete", &id]).ok();
    rt.assert_gone(&id);
}

#[test]
fn create_pid_file_and_flags() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.readonly_root(false);
    b.sh("echo $$ > /tmp/out");
    let id = rt.new_id("pidf");
    let pidfile = rt.scratch().join("sub.pid");
    rt.cmd(&[
        "create",
        "--bundle",
        s(b.path()),
        "--pid-file",
        s(&pidfile),
        "--no-new-keyring",
        &id,
    ])
    .ok();
    let pid: i64 = fs::read_to_string(&pidfile)
        .expect("pid file written")
        .trim()
        .parse()
        .expect("pid file is a number");
    assert_eq!(Some(pid), rt.state(&id)["pid"].as_i64());
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    assert_eq!(
        fs::read_to_string(b.rootfs().join("tmp/out"))
            .unwrap()
            .trim(),
        "1"
    );
}

#[test]
fn relative_pid_file_is_relative_to_cwd() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let id = rt.new_id("relpid");
    let dir = rt.scratch();
    let mut c = rt.command([
        "create",
        "--bundle",
        s(b.path()),
        "--pid-file",
        "rel.pid",
        id.as_str(),
    ]);
    c.current_dir(&dir);
    run_cmd(c).ok();
    let pid: i64 = fs::read_to_string(dir.join("rel.pid"))
        .expect("relative pid file")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(Some(pid), rt.state(&id)["pid"].as_i64());
}

#[test]
fn no_pivot() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.readonly_root(false);
    b.sh("ls / > /tmp/ls; echo $$ > /tmp/pid");
    let id = rt.new_id("nopivot");
    rt.cmd(&["create", "--no-pivot", "--bundle", s(b.path()), &id])
        .ok();
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    let ls = fs::read_to_string(b.rootfs().join("tmp/ls")).expect("container ran");
    assert!(ls.lines().any(|l| l == "bin"), "root listing: {ls}");
    assert!(
        !ls.lines().any(|l| l == "rootfs"),
        "container sees the host, not its rootfs: {ls}"
    );
    assert_eq!(
        fs::read_to_string(b.rootfs().join("tmp/pid"))
            .unwrap()
            .trim(),
        "1"
    );
}

#[test]
fn kill_signal_forms() {
    let rt = Runtime::new();
    for sig in ["KILL", "SIGKILL", "9"] {
        let b = rt.bundle();
        b.args(&["sleep", "1000"]);
        let c = rt.start_container(&b);
        rt.cmd(&["kill", &c.id, sig]).ok();
        rt.wait_status(&c.id, "stopped");
        wait_pid_gone(c.pid, Duration::from_secs(5));
    }
}

#[test]
fn kill_defaults_to_sigterm() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.readonly_root(false);
    b.sh("trap 'echo TERM > /tmp/sig; exit 0' TERM; echo ready > /tmp/ready; while :; do sleep 0.1; done");
    let c = rt.start_container(&b);
    assert!(
        wait_until(Duration::from_secs(10), || b
            .rootfs()
            .join("tmp/ready")
            .exists()),
        "trap not set up"
    );
    rt.cmd(&["kill", &c.id]).ok();
    rt.wait_status(&c.id, "stopped");
    assert_eq!(
        fs::read_to_string(b.rootfs().join("tmp/sig"))
            .unwrap()
            .trim(),
        "TERM"
    );
}

#[test]
fn kill_all_signals_every_process() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.readonly_root(false);
    // init survives TERM (it has a handler) and lives as long as its child.
    b.sh(
        "trap 'echo got >> /tmp/init-term' TERM; sleep 1000 & echo ready > /tmp/ready; \
          while kill -0 $! 2>/dev/null; do sleep 0.1; done; echo child-gone > /tmp/done",
    );
    let c = rt.start_container(&b);
    assert!(
        wait_until(Duration::from_secs(10), || b
            .rootfs()
            .join("tmp/ready")
            .exists()),
        "not ready"
    );

    // Without --all only init gets TERM: its trap runs, the child lives on.
    rt.cmd(&["kill", &c.id, "TERM"]).ok();
    assert!(
        wait_until(Duration::from_secs(5), || b
            .rootfs()
            .join("tmp/init-term")
            .exists()),
        "init did not get SIGTERM"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        rt.status(&c.id).as_deref(),
        Some("running"),
        "TERM without --all must only reach init"
    );

    rt.cmd(&["kill", "--all", &c.id, "TERM"]).ok();
    rt.wait_status(&c.id, "stopped");
    assert!(
        b.rootfs().join("tmp/done").exists(),
        "the child was not killed by kill --all"
    );
}

#[test]
fn kill_short_all_flag() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.sh("sleep 1000 & sleep 1000 & wait");
    let c = rt.start_container(&b);
    rt.cmd(&["kill", "-a", &c.id, "KILL"]).ok();
    rt.wait_status(&c.id, "stopped");
    assert!(
        wait_until(Duration::from_secs(5), || rt.tagged_processes().is_empty()),
        "processes survived kill -a: {:?}",
        rt.tagged_processes()
    );
}

#[test]
fn containers_are_independent() {
    let rt = Runtime::new();
    let b1 = rt.bundle();
    b1.args(&["sleep", "1000"]);
    let b2 = rt.bundle();
    b2.args(&["sleep", "1000"]);
    let c1 = rt.start_container(&b1);
    let c2 = rt.start_container(&b2);
    assert_ne!(c1.pid, c2.pid);
    rt.cmd(&["delete", "--force", &c1.id]).ok();
    rt.assert_gone(&c1.id);
    assert_eq!(
        rt.status(&c2.id).as_deref(),
        Some("running"),
        "deleting one container affected another"
    );
    assert!(pid_alive(c2.pid));
}

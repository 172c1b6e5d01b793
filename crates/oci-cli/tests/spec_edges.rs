//! Corners of the runtime spec found with the OCI runtime-tools validation suite.

mod common;

use common::*;
use serde_json::json;
use std::process::{Command, Stdio};

/// A seccomp profile that does not allow close_range (profiles older than Linux 5.9, as
/// runtime-tools' default) must not break the runtime's own last steps.
#[test]
fn seccomp_profile_without_close_range() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| {
        c["process"]["noNewPrivileges"] = json!(false);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO"}]
        });
    });
    assert_eq!(rt.sh_output(&b, "echo ran").trim(), "ran");
}

/// `process` is only required by `start`.
#[test]
fn create_without_process_then_start_fails() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| {
        c.as_object_mut().unwrap().remove("process");
    });
    let id = rt.new_id("noproc");
    rt.create(&b, &id).ok();
    assert_eq!(rt.status(&id).as_deref(), Some("created"));
    let o = rt.start(&id);
    o.fails();
    assert!(o.stderr.contains("process"), "{o}");
    rt.wait_status(&id, "stopped");
    rt.cmd(&["delete", &id]).ok();
}

/// A mount namespace joined by path: the rootfs is set up inside it.
#[test]
fn joined_mount_namespace() {
    let mut holder = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sleep", "60"])
        .stdout(Stdio::null())
        .spawn()
        .expect("unshare from util-linux");
    let ns = format!("/proc/{}/ns/mnt", holder.id());
    assert!(wait_until(std::time::Duration::from_secs(5), || {
        ns_of(&holder.id().to_string(), "mnt") != ns_of("self", "mnt")
    }));
    let want = ns_of(&holder.id().to_string(), "mnt");
    let rt = Runtime::new();
    let b = rt.bundle();
    b.namespace("mount", Some(&ns));
    let out = rt.sh_output(
        &b,
        "readlink /proc/self/ns/mnt; cat /proc/self/mountinfo | wc -l",
    );
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(out.lines().next(), Some(want.as_str()), "{out}");
}

/// `create` killed with SIGKILL half-way (here while a createRuntime hook runs):
/// `delete --force` removes what it left (state dir, cgroup) and init died with it.
#[test]
fn killed_create_is_cleaned_by_delete_force() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    b.hook(
        "createRuntime",
        json!({"path": "/bin/sleep", "args": ["sleep", "3"]}),
    );
    let id = rt.new_id("killed");
    let create = rt.spawn(&["create", "--bundle", s(b.path()), &id]);
    let dir = rt.root().join(&id);
    assert!(
        wait_until(std::time::Duration::from_secs(10), || {
            !cgroup_dirs(&b.cgroup).is_empty() && dir.join("config.json").exists()
        }),
        "create never got to its hooks"
    );
    // Let it reach the hook, then kill it.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = std::process::Command::new("kill")
        .args(["-9", &create.pid().to_string()])
        .status();
    let _ = create.wait(std::time::Duration::from_secs(5));
    rt.cmd(&["delete", "--force", &id]).ok();
    assert!(!dir.exists(), "state dir left behind");
    assert!(
        wait_until(std::time::Duration::from_secs(5), || cgroup_dirs(&b.cgroup)
            .is_empty()),
        "cgroup left behind: {:?}",
        cgroup_dirs(&b.cgroup)
    );
    assert!(
        rt.tagged_processes().is_empty(),
        "{:?}",
        rt.tagged_processes()
    );
}

//! What Kubernetes relies on through containerd's CRI plugin, checked against berth-oci
//! directly (tests/engines.rs drives the same through containerd's runc shim):
//! `rootfsPropagation: rshared` with a bidirectional volume (`mountPropagation:
//! Bidirectional`), and `kill --all` of a container whose init exited while processes it
//! started live on in a pod's shared pid namespace. `BERTH_OCI_BIN=runc` shows runc's
//! behaviour, which these tests expect.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A directory of the host made a shared mount point (as kubelet's pod volume dirs
/// are), unmounted again when dropped.
struct SharedDir {
    path: std::path::PathBuf,
}

impl SharedDir {
    fn new(path: std::path::PathBuf) -> SharedDir {
        fs::create_dir_all(&path).unwrap();
        host("mount", &["--bind", s(&path), s(&path)]);
        host("mount", &["--make-shared", s(&path)]);
        SharedDir { path }
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-R")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// A bundle whose process may mount (CAP_SYS_ADMIN), with `vol` bound at /vol.
fn mounting_bundle(rt: &Runtime, vol: &SharedDir, options: &[&str]) -> Bundle {
    let b = rt.bundle();
    b.add_mount(json!({
        "destination": "/vol",
        "type": "bind",
        "source": vol.path,
        "options": options
    }));
    b.edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_ADMIN"));
        }
    });
    b
}

fn is_mount_point(p: &Path) -> bool {
    let text = fs::read_to_string("/proc/self/mounts").unwrap();
    parse_mounts(&text)
        .iter()
        .any(|m| Path::new(&m.target) == p)
}

/// Bidirectional propagation: with `rootfsPropagation: rshared` and an `rshared` bind of
/// a shared host directory, a mount made in the container appears on the host and a
/// mount made on the host appears in the container.
#[test]
fn rshared_root_propagation_shares_mounts_both_ways() {
    let rt = Runtime::new();
    let vol = SharedDir::new(rt.scratch().join("vol"));
    let b = mounting_bundle(&rt, &vol, &["rbind", "rshared"]);
    b.edit(|c| c["linux"]["rootfsPropagation"] = json!("rshared"));
    b.sh("mkdir -p /vol/in && mount -t tmpfs -o size=1m tmpfs /vol/in && touch /vol/in/mark && sleep 1000");
    let id = rt.new_id("rshared");
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    let inside = vol.path.join("in");
    let seen = wait_until(Duration::from_secs(10), || inside.join("mark").exists());
    let host_side = vol.path.join("from-host");
    fs::create_dir_all(&host_side).unwrap();
    host(
        "mount",
        &["-t", "tmpfs", "-o", "size=1m", "tmpfs", s(&host_side)],
    );
    fs::write(host_side.join("mark"), "").unwrap();
    let o = rt.exec(
        &id,
        &["sh", "-c", "test -e /vol/from-host/mark && echo SEEN"],
    );
    let mounted_on_host = is_mount_point(&inside);
    rt.cmd(&["delete", "--force", &id]);
    assert!(
        seen && mounted_on_host,
        "the container's mount on /vol/in did not reach the host"
    );
    assert!(
        o.out().contains("SEEN"),
        "the host's mount did not reach the container:\n{o}"
    );
}

/// Default (no rootfsPropagation): nothing the container mounts reaches the host.
#[test]
fn default_root_propagation_keeps_container_mounts_inside() {
    let rt = Runtime::new();
    let vol = SharedDir::new(rt.scratch().join("vol"));
    let b = mounting_bundle(&rt, &vol, &["rbind"]);
    b.sh("mkdir -p /vol/in && mount -t tmpfs -o size=1m tmpfs /vol/in && touch /vol/in/mark && echo DONE");
    let o = rt.run_fg(&b);
    o.ok();
    assert!(o.out().contains("DONE"), "{o}");
    assert!(
        !is_mount_point(&vol.path.join("in")),
        "a container mount reached the host without rshared"
    );
}

/// containerd's shim runs `kill --all ID KILL` when a container of a pod (sharing the
/// pod's pid namespace) exits: what it started must die, and the command succeed.
#[test]
fn kill_all_of_a_stopped_container_kills_what_it_left() {
    let rt = Runtime::new();
    let pod = rt.bundle();
    pod.args(&["sleep", "1000"]);
    let pod_id = rt.new_id("pod");
    rt.create(&pod, &pod_id).ok();
    rt.start(&pod_id).ok();
    let pod_pid = rt.state(&pod_id)["pid"].as_i64().unwrap();
    let b = rt.bundle();
    b.namespace("pid", Some(&format!("/proc/{pod_pid}/ns/pid")));
    b.sh("sleep 1001 & echo $! > /tmp/child; exit 0");
    let id = rt.new_id("left");
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    let left = |_id: &str| -> Vec<i32> {
        rt.tagged_processes()
            .into_iter()
            .filter(|(_, cmd)| cmd.contains("sleep 1001"))
            .map(|(p, _)| p)
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(5), || !left(&id).is_empty()),
        "the container left no process behind to kill"
    );
    // Without --all a stopped container refuses, as runc does.
    rt.cmd(&["kill", &id, "KILL"]).fails();
    rt.cmd(&["kill", "--all", &id, "KILL"]).ok();
    assert!(
        wait_until(Duration::from_secs(10), || left(&id).is_empty()),
        "kill --all left {:?} running",
        left(&id)
    );
    // Again, with nothing left: still fine.
    rt.cmd(&["kill", "--all", &id, "KILL"]).ok();
    rt.cmd(&["delete", &id]).ok();
    rt.cmd(&["delete", "--force", &pod_id]).ok();
}

/// The state root holds containers only, plus the seccomp program cache under a name no
/// container id can have (`@seccomp`, with entries): nothing empty is left behind.
#[test]
fn state_root_holds_containers_and_a_non_empty_cache_only() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["true"]);
    let o = rt.run_fg(&b);
    o.ok();
    let left: Vec<String> = fs::read_dir(rt.root())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for name in &left {
        assert_eq!(
            name, "@seccomp",
            "unexpected entry in the state root: {left:?}"
        );
        let n = fs::read_dir(rt.root().join(name)).unwrap().count();
        assert!(n > 0, "an empty {name} left in the state root");
    }
}

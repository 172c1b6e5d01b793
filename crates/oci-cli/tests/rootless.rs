//! Rootless: berth-oci run by an unprivileged user with `spec --rootless` (a user
//! namespace mapping the caller to root, no cgroup of its own).

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::process::Command;

const UID: u32 = 1537;

fn as_user(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args([
            &format!("--reuid={UID}"),
            &format!("--regid={UID}"),
            "--clear-groups",
            "env",
        ])
        .arg(format!("XDG_RUNTIME_DIR={}", dir.join("run").display()))
        .arg(bin())
        .args(args)
        .output()
        .expect("setpriv (util-linux) runs")
}

#[test]
fn rootless_container_runs_as_mapped_root() {
    if fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone")
        .is_ok_and(|v| v.trim() == "0")
    {
        return skip("unprivileged user namespaces are disabled");
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    populate_rootfs(&dir.join("rootfs"));
    chown(dir, Some(UID), Some(UID)).unwrap();
    fs::create_dir(dir.join("run")).unwrap();
    chown(dir.join("run"), Some(UID), Some(UID)).unwrap();

    let o = as_user(dir, &["spec", "--rootless", "--bundle", s(dir)]);
    assert!(
        o.status.success(),
        "spec --rootless: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let cfg_path = dir.join("config.json");
    let mut c: Value = serde_json::from_slice(&fs::read(&cfg_path).unwrap()).unwrap();
    assert_eq!(c["linux"]["uidMappings"][0]["hostID"], UID);
    c["process"]["terminal"] = false.into();
    c["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "echo uid=$(id -u) pid=$$; cat /proc/self/uid_map"
    ]);
    fs::write(&cfg_path, serde_json::to_vec(&c).unwrap()).unwrap();

    let state = dir.join("state");
    let id = format!("rootless-{}", std::process::id());
    let o = as_user(dir, &["--root", s(&state), "run", "--bundle", s(dir), &id]);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "rootless run failed:\n{out}\n{err}");
    assert!(out.contains("uid=0 pid=1"), "{out}");
    let map: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(map, vec!["0", &UID.to_string(), "1"], "{out}");
    // Nothing left in the state root, and no cgroup was made for it.
    assert!(!state.join(&id).exists());
    assert!(cgroup_dirs(&format!("/{id}")).is_empty());
}

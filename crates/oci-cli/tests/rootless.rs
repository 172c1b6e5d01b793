//! Rootless: berth-oci run by an unprivileged user with `spec --rootless` (a user
//! namespace mapping the caller to root, no cgroup of its own), and with a wide
//! mapping of the user's subordinate ids written through newuidmap/newgidmap.

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::process::Command;

const UID: u32 = 1537;

fn as_user(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    as_ids(UID, UID, dir, args)
}

fn as_ids(uid: u32, gid: u32, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
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

/// A login user made for a test, with 65536 subordinate uids and gids from `start` in
/// /etc/subuid and /etc/subgid (newuidmap looks the caller up by name); removed with its
/// ranges on drop, also when the test fails.
struct SubidUser {
    name: String,
    uid: u32,
    /// Its primary group (newgidmap requires the caller's gid to be it).
    gid: u32,
    start: u32,
}

impl SubidUser {
    fn new() -> SubidUser {
        let pid = std::process::id();
        let name = format!("brloci{}", pid % 100_000);
        let o = Command::new("useradd")
            .args(["-M", "-N", "-s", "/bin/sh", "-K", "SUB_UID_COUNT=0"])
            .args(["-K", "SUB_GID_COUNT=0", &name])
            .output()
            .expect("useradd (passwd) runs");
        assert!(
            o.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let id = |flag: &str| -> u32 {
            let o = Command::new("id").args([flag, &name]).output().unwrap();
            String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        // Away from any login user's range and from crates/cli/tests/rootless.rs's.
        let start = 1_500_000_000 + (pid % 4_000) * 65_536;
        let u = SubidUser {
            name,
            uid,
            gid,
            start,
        };
        for f in ["/etc/subuid", "/etc/subgid"] {
            let mut t = fs::read_to_string(f).unwrap_or_default();
            t.push_str(&format!("{}:{start}:65536\n", u.name));
            fs::write(f, t).unwrap();
        }
        u
    }
}

impl Drop for SubidUser {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.name])
            .status();
        let _ = Command::new("userdel").args(["-f", &self.name]).output();
        for f in ["/etc/subuid", "/etc/subgid"] {
            if let Ok(t) = fs::read_to_string(f) {
                let kept: String = t
                    .lines()
                    .filter(|l| !l.starts_with(&format!("{}:", self.name)))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let _ = fs::write(f, kept);
            }
        }
    }
}

/// An unprivileged user runs a container whose spec maps root to the user and ids 1 to
/// 65536 to the user's subordinate ids, as podman and rootless docker hand it to a runtime.
/// berth-oci writes those maps with newuidmap/newgidmap: files of other owners in the
/// rootfs show as theirs, root inside can chown to them, and supplementary groups
/// (`additionalGids`) are set, which needs setgroups allowed in the namespace.
#[test]
fn rootless_wide_mapping_through_newuidmap() {
    if fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone")
        .is_ok_and(|v| v.trim() == "0")
    {
        return skip("unprivileged user namespaces are disabled");
    }
    let u = SubidUser::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    let rootfs = dir.join("rootfs");
    populate_rootfs(&rootfs);
    // The rootfs as a rootless engine unpacks it: root's files the user's, user 1000's
    // (home/user) the subordinate id that maps to 1000.
    chown_tree(&rootfs, u.uid, u.gid);
    chown(
        rootfs.join("home/user"),
        Some(u.start + 999),
        Some(u.start + 999),
    )
    .unwrap();
    chown(dir, Some(u.uid), Some(u.gid)).unwrap();
    fs::create_dir(dir.join("run")).unwrap();
    chown(dir.join("run"), Some(u.uid), Some(u.gid)).unwrap();

    let o = as_ids(
        u.uid,
        u.gid,
        dir,
        &["spec", "--rootless", "--bundle", s(dir)],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg_path = dir.join("config.json");
    let mut c: Value = serde_json::from_slice(&fs::read(&cfg_path).unwrap()).unwrap();
    let maps = |own: u32| {
        serde_json::json!([
            {"containerID": 0, "hostID": own, "size": 1},
            {"containerID": 1, "hostID": u.start, "size": 65536}
        ])
    };
    c["linux"]["uidMappings"] = maps(u.uid);
    c["linux"]["gidMappings"] = maps(u.gid);
    c["process"]["terminal"] = false.into();
    c["root"]["readonly"] = false.into();
    for set in [
        "bounding",
        "effective",
        "permitted",
        "inheritable",
        "ambient",
    ] {
        c["process"]["capabilities"][set] = serde_json::json!(["CAP_CHOWN", "CAP_KILL"]);
    }
    c["process"]["user"] = serde_json::json!({"uid": 0, "gid": 0, "additionalGids": [1000]});
    c["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "id; cat /proc/self/uid_map /proc/self/gid_map; stat -c 'home %u:%g' /home/user; \
         touch /tmp/f && chown 1000:1000 /tmp/f && stat -c 'tmp %u:%g' /tmp/f"
    ]);
    fs::write(&cfg_path, serde_json::to_vec(&c).unwrap()).unwrap();

    let state = dir.join("state");
    let id = format!("rootless-wide-{}", std::process::id());
    let o = as_ids(
        u.uid,
        u.gid,
        dir,
        &["--root", s(&state), "run", "--bundle", s(dir), &id],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "rootless run failed:\n{out}\n{err}");
    assert!(
        out.contains("uid=0(root) gid=0(root) groups=1000(user)"),
        "{out}\n{err}"
    );
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let (uid, gid) = (u.uid.to_string(), u.gid.to_string());
    let start = u.start.to_string();
    let same = usize::from(uid == gid);
    for (m, n) in [
        (["0", uid.as_str(), "1"], 1 + same),
        (["0", gid.as_str(), "1"], 1 + same),
        (["1", start.as_str(), "65536"], 2),
    ] {
        let found = lines.iter().filter(|l| l[..] == m[..]).count();
        assert_eq!(found, n, "{m:?} in {out}");
    }
    assert!(out.contains("home 1000:1000"), "{out}");
    assert!(out.contains("tmp 1000:1000"), "{out}");
    let meta = fs::metadata(rootfs.join("tmp/f")).unwrap();
    assert_eq!(
        (
            std::os::unix::fs::MetadataExt::uid(&meta),
            std::os::unix::fs::MetadataExt::gid(&meta)
        ),
        (u.start + 999, u.start + 999)
    );
    assert!(!state.join(&id).exists());
}

//! Bad input is refused with a clear error and leaves nothing behind: no state directory,
//! no process, no cgroup, nothing outside the rootfs.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// Remove a host path if a faulty runtime created it.
struct HostPathGuard(PathBuf);
impl Drop for HostPathGuard {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
        let _ = fs::remove_file(&self.0);
    }
}

/// `create` must fail, mention one of `words`, and leave nothing behind.
#[track_caller]
fn refused(rt: &Runtime, b: &Bundle, id: &str, words: &[&str]) {
    let o = rt.create(b, id);
    o.fails();
    assert!(!o.stderr.trim().is_empty(), "error without a message:\n{o}");
    if !words.is_empty() {
        o.stderr_mentions(words);
    }
    rt.assert_nothing_left(id, Some(b));
}

fn no_entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn missing_config_json() {
    let rt = Runtime::new();
    let b = rt.bundle();
    fs::remove_file(b.config_path()).unwrap();
    let id = rt.new_id("noconfig");
    refused(&rt, &b, &id, &["config.json"]);
}

#[test]
fn missing_bundle_dir() {
    let rt = Runtime::new();
    let id = rt.new_id("nobundle");
    let missing = rt.scratch().join("does-not-exist");
    let o = rt.cmd(&["create", "--bundle", s(&missing), &id]);
    o.fails()
        .stderr_mentions(&["does-not-exist", "config.json"]);
    rt.assert_nothing_left(&id, None);
}

#[test]
fn malformed_json() {
    let rt = Runtime::new();
    let b = rt.bundle();
    fs::write(
        b.config_path(),
        "{\"ociVersion\": \"1.2.0\", \"process\": {",
    )
    .unwrap();
    let id = rt.new_id("badjson");
    refused(&rt, &b, &id, &["json", "parse", "eof", "config"]);
}

#[test]
fn wrong_field_type() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| c["process"]["args"] = json!("sh -c true"));
    let id = rt.new_id("badtype");
    refused(
        &rt,
        &b,
        &id,
        &["args", "invalid type", "sequence", "config"],
    );
}

#[test]
fn unsupported_oci_version() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["true"]);
    b.edit(|c| c["ociVersion"] = json!("2.0.0"));
    let id = rt.new_id("ociver");
    refused(&rt, &b, &id, &["ociVersion", "2.0.0"]);
}

#[test]
fn missing_rootfs() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["true"]);
    b.edit(|c| c["root"]["path"] = json!("no-such-rootfs"));
    let id = rt.new_id("norootfs");
    refused(&rt, &b, &id, &["no-such-rootfs", "rootfs", "root.path"]);
}

#[test]
fn empty_process_args() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| c["process"]["args"] = json!([]));
    let id = rt.new_id("noargs");
    refused(&rt, &b, &id, &["args"]);
}

#[test]
fn relative_cwd() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["true"]);
    b.cwd("tmp");
    let id = rt.new_id("relcwd");
    refused(&rt, &b, &id, &["cwd"]);
}

#[test]
fn unknown_namespace_type() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["true"]);
    b.namespace("bogus", None);
    let id = rt.new_id("badns");
    refused(&rt, &b, &id, &["bogus", "namespace"]);
}

#[test]
fn missing_bind_mount_source() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["true"]);
    let missing = rt.scratch().join("no-such-source");
    b.add_mount(json!({"destination": "/data", "type": "bind", "source": s(&missing), "options": ["rbind"]}));
    let id = rt.new_id("nosrc");
    refused(&rt, &b, &id, &["no-such-source", "/data", "mount"]);
}

#[test]
fn mount_destination_dotdot_stays_in_rootfs() {
    let rt = Runtime::new();
    let b = rt.bundle();
    let escape = std::env::temp_dir().join(unique("berth-escape"));
    let _g = HostPathGuard(escape.clone());
    // "/../../../..../<tmp>/berth-escape-N": outside the rootfs unless clamped to it.
    let dest = format!("/../../../../../../../..{}", s(&escape));
    b.add_mount(
        json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
    );
    b.sh("echo ok");
    let id = rt.new_id("dotdot");
    let o = rt.create(&b, &id);
    assert!(!o.timed_out, "{o}");
    assert!(
        !escape.exists(),
        "mount destination escaped the rootfs: {} created on the host",
        escape.display()
    );
    if o.success() {
        // Accepted: the mount point must be inside the rootfs.
        rt.start(&id).ok();
        rt.wait_status(&id, "stopped");
        assert!(!escape.exists(), "{} created on the host", escape.display());
    } else {
        rt.assert_nothing_left(&id, Some(&b));
    }
}

#[test]
fn mount_destination_relative_dotdot_stays_in_rootfs() {
    let rt = Runtime::new();
    let b = rt.bundle();
    let name = unique("berth-escape-rel");
    // Resolving "../<name>" against the bundle or rootfs would land next to the bundle.
    let outside = b.path().parent().unwrap().join(&name);
    let _g = HostPathGuard(outside.clone());
    b.add_mount(
        json!({"destination": format!("../../{name}"), "type": "tmpfs", "source": "tmpfs"}),
    );
    b.args(&["true"]);
    let id = rt.new_id("reldotdot");
    let o = rt.create(&b, &id);
    assert!(!o.timed_out, "{o}");
    assert!(
        !outside.exists(),
        "{} created outside the rootfs",
        outside.display()
    );
    if !o.success() {
        rt.assert_nothing_left(&id, Some(&b));
    }
}

#[test]
fn mount_destination_through_symlink_stays_in_rootfs() {
    let rt = Runtime::new();
    let b = rt.bundle();
    let escape = std::env::temp_dir().join(unique("berth-escape-link"));
    let _g = HostPathGuard(escape.clone());
    // rootfs/evil -> <host tmp>/berth-escape-link-N (absolute: must resolve in the rootfs)
    symlink(&escape, b.rootfs().join("evil")).unwrap();
    b.add_mount(json!({"destination": "/evil/sub", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    b.args(&["true"]);
    let id = rt.new_id("symlink");
    let o = rt.create(&b, &id);
    assert!(!o.timed_out, "{o}");
    assert!(
        !escape.exists(),
        "mount through a symlink escaped the rootfs: {} created",
        escape.display()
    );
    if o.success() {
        rt.start(&id).ok();
        rt.wait_status(&id, "stopped");
        assert!(!escape.exists());
    } else {
        rt.assert_nothing_left(&id, Some(&b));
    }
}

#[test]
fn invalid_ids() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let u = unique("x");
    let parent = rt.root().parent().unwrap().to_path_buf();
    let cases = [
        format!("{u}/sub"),
        format!("../{u}"),
        "..".to_string(),
        ".".to_string(),
        format!("{u}/../{u}"),
        "".to_string(),
    ];
    for id in &cases {
        rt.track(id);
        let o = rt.create(&b, id);
        o.fails();
        assert!(
            !o.stderr.trim().is_empty(),
            "no error message for id {id:?}:\n{o}"
        );
        rt.assert_nothing_left(id, Some(&b));
    }
    assert!(
        no_entries(rt.root()).is_empty(),
        "state left in --root: {:?}",
        no_entries(rt.root())
    );
    assert!(
        !parent.join(&u).exists(),
        "an id with .. created {}",
        parent.join(&u).display()
    );
}

#[test]
fn id_already_in_use() {
    let rt = Runtime::new();
    let b1 = rt.bundle();
    b1.args(&["sleep", "1000"]);
    let id = rt.new_id("dup");
    rt.create(&b1, &id).ok();
    let st = rt.state(&id);

    let b2 = rt.bundle();
    b2.args(&["sleep", "1000"]);
    let o = rt.create(&b2, &id);
    o.fails().stderr_mentions(&["exist", "already", "in use"]);
    // The first container is untouched.
    let st2 = rt.state(&id);
    assert_eq!(st2["pid"], st["pid"]);
    assert_eq!(st2["status"], "created");
    assert_eq!(st2["bundle"], st["bundle"]);
    assert!(pid_alive(st["pid"].as_i64().unwrap() as i32));
    assert!(
        cgroup_dirs(&b2.cgroup).is_empty(),
        "second create left a cgroup"
    );

    // Same through `run`.
    let o = rt.cmd(&["run", "--bundle", s(b2.path()), &id]);
    o.fails();
    assert_eq!(rt.state(&id)["pid"], st["pid"]);
}

#[test]
fn terminal_without_console_socket() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.terminal(true).args(&["true"]);
    let id = rt.new_id("noconsole");
    refused(&rt, &b, &id, &["console", "tty", "terminal"]);
}

#[test]
fn refused_create_leaves_root_reusable() {
    // After a refused create, the same id can be used for a valid container.
    let rt = Runtime::new();
    let bad = rt.bundle();
    bad.args(&["true"]);
    bad.edit(|c| c["root"]["path"] = json!("no-such-rootfs"));
    let id = rt.new_id("reuse");
    rt.create(&bad, &id).fails();
    let good = rt.bundle();
    good.args(&["true"]);
    rt.create(&good, &id).ok();
    assert_eq!(rt.status(&id).as_deref(), Some("created"));
}

/// Errors read as errors, the way runc prints them: tools that drive runc look for
/// `level=error` on stderr besides the exit status. Without `--log`: one log line on
/// stderr (text, or JSON with `--log-format json`); with `--log`: the line in the file.
#[test]
fn errors_are_printed_as_runc_prints_them() {
    let rt = Runtime::new();
    let level_error = |o: &Output| {
        o.fails();
        assert!(
            o.stderr.contains("level=error msg=\""),
            "no runc-style error line:\n{o}"
        );
    };
    level_error(&rt.cmd(&["kill", "no-such-container", "KILL"]));
    level_error(&rt.cmd(&["delete", "no-such-container"]));
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let id = rt.new_id("err");
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    // delete of a running container, kill of a stopped one.
    level_error(&rt.cmd(&["delete", &id]));
    rt.cmd(&["kill", &id, "KILL"]).ok();
    rt.wait_status(&id, "stopped");
    let o = rt.cmd(&["kill", &id, "KILL"]);
    level_error(&o);
    assert!(o.stderr.contains("not running"), "{o}");
    let o = rt.cmd(&["--log-format", "json", "kill", &id, "KILL"]);
    o.fails();
    let v: serde_json::Value = serde_json::from_str(o.stderr.trim()).expect("one JSON line");
    assert_eq!(v["level"], "error", "{o}");
    let log = rt.scratch().join("log.json");
    let o = rt.cmd(&[
        "--log",
        s(&log),
        "--log-format",
        "json",
        "kill",
        &id,
        "KILL",
    ]);
    o.fails();
    let line = fs::read_to_string(&log).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).expect("a JSON log line");
    assert_eq!(v["level"], "error");
    assert!(
        v["msg"].as_str().unwrap_or("").contains("not running"),
        "{line}"
    );
    rt.cmd(&["delete", &id]).ok();
}

/// Refused at `create`, not at `start`: an rlimit of an unknown type, one whose soft value
/// exceeds its hard value, one listed twice.
#[test]
fn bad_rlimits_are_refused_at_create() {
    let rt = Runtime::new();
    for (rlimits, words) in [
        (
            json!([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]),
            &["RLIMIT_NOFILE", "soft"][..],
        ),
        (
            json!([{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]),
            &["RLIMIT_FOO"][..],
        ),
        (
            json!([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
                   {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}]),
            &["RLIMIT_NOFILE", "twice"][..],
        ),
    ] {
        let b = rt.bundle();
        b.args(&["true"])
            .edit(|c| c["process"]["rlimits"] = rlimits);
        let id = rt.new_id("rlimit");
        refused(&rt, &b, &id, words);
    }
}

/// A capability in the effective, permitted, inheritable or ambient set that is not in
/// the bounding set is refused at `create`.
#[test]
fn capabilities_outside_the_bounding_set_are_refused() {
    let rt = Runtime::new();
    for set in ["effective", "permitted", "inheritable", "ambient"] {
        let b = rt.bundle();
        b.args(&["true"]).edit(|c| {
            c["process"]["capabilities"][set] = json!(["CAP_SYS_ADMIN"]);
        });
        let id = rt.new_id("caps");
        refused(&rt, &b, &id, &[set, "CAP_SYS_ADMIN", "bounding"]);
    }
}

/// Joining another container's mount namespace by path (runtime-tools' linux_ns_itype):
/// the bundle's root does not exist in there, so `create` is refused with a message
/// that says so (runc refuses it too), never a crash or a half-made container.
#[test]
fn joining_a_mount_namespace_without_the_root_is_refused() {
    let rt = Runtime::new();
    let a = rt.bundle();
    a.args(&["sleep", "1000"]);
    let c = rt.start_container(&a);
    let b = rt.bundle();
    b.args(&["true"]);
    b.remove_namespace("mount");
    b.namespace("mount", Some(&format!("/proc/{}/ns/mnt", c.pid)));
    let id = rt.new_id("mntjoin");
    let o = rt.create(&b, &id);
    o.fails();
    o.stderr_mentions(&["joined mount namespace"]);
    rt.assert_gone(&id);
    rt.cmd(&["delete", "--force", &c.id]).ok();
    rt.assert_nothing_left(&id, Some(&b));
}

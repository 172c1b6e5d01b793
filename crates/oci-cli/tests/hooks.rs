//! Hooks: order, state on stdin, args/env, failures, timeouts.
//!
//! Every hook appends its name to `<bundle>/rootfs/hooklog/order` and saves its stdin to
//! `<bundle>/rootfs/hooklog/NAME.json`. That host path also resolves inside the container
//! (the rootfs holds `<bundle path>/rootfs` as a symlink to `/`), so the test holds whether
//! createContainer/startContainer paths resolve before or after pivot_root.

mod common;

use common::*;
use serde_json::{Value, json};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ALL: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Prepare the log directory and the mirror symlink; returns the log dir's host path.
fn hooklog(b: &Bundle) -> PathBuf {
    let rootfs = b.rootfs();
    let log = rootfs.join("hooklog");
    fs::create_dir_all(&log).unwrap();
    let bundle_abs = fs::canonicalize(b.path()).unwrap();
    let mirror = rootfs.join(bundle_abs.strip_prefix("/").unwrap());
    fs::create_dir_all(&mirror).unwrap();
    symlink("/", mirror.join("rootfs")).unwrap();
    bundle_abs.join("rootfs/hooklog")
}

fn recording_hook(log: &Path, name: &str) -> Value {
    let l = s(log);
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("cat > {l}/{name}.json; echo {name} >> {l}/order")]
    })
}

fn order(log: &Path) -> Vec<String> {
    fs::read_to_string(log.join("order"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn hook_state(log: &Path, name: &str) -> Value {
    let text = fs::read_to_string(log.join(format!("{name}.json")))
        .unwrap_or_else(|e| panic!("{name} hook got no state: {e}"));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{name} hook stdin is not JSON ({e}): {text:?}"))
}

#[test]
fn hooks_run_in_order_with_state_on_stdin() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.readonly_root(false);
    let log = hooklog(&b);
    for h in ALL {
        b.hook(h, recording_hook(&log, h));
    }
    b.sh("echo process >> /hooklog/order");
    let id = rt.new_id("hooks");

    rt.create(&b, &id).ok();
    assert_eq!(
        order(&log),
        ["prestart", "createRuntime", "createContainer"],
        "hooks after create"
    );

    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    assert!(
        wait_until(Duration::from_secs(5), || order(&log)
            .iter()
            .any(|l| l == "poststart")),
        "poststart did not run: {:?}",
        order(&log)
    );
    let o = order(&log);
    assert_eq!(
        &o[..4],
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer"
        ],
        "{o:?}"
    );
    let mut rest = o[4..].to_vec();
    rest.sort();
    assert_eq!(rest, ["poststart", "process"], "{o:?}");

    rt.cmd(&["delete", &id]).ok();
    let o = order(&log);
    assert_eq!(o.last().map(String::as_str), Some("poststop"), "{o:?}");
    assert_eq!(o.len(), 7, "a hook ran more than once: {o:?}");

    let bundle = fs::canonicalize(b.path()).unwrap();
    for h in ALL {
        let st = hook_state(&log, h);
        assert_eq!(st["id"], id.as_str(), "{h}: {st}");
        assert!(st["ociVersion"].is_string(), "{h}: {st}");
        assert!(st["status"].is_string(), "{h}: {st}");
        let sb = st["bundle"]
            .as_str()
            .unwrap_or_else(|| panic!("{h}: no bundle in {st}"));
        assert_eq!(fs::canonicalize(sb).ok(), Some(bundle.clone()), "{h}: {st}");
    }
    for h in ["prestart", "createRuntime", "poststart"] {
        let st = hook_state(&log, h);
        assert!(st["pid"].as_i64().unwrap_or(0) > 0, "{h}: no pid in {st}");
    }
}

#[test]
fn runtime_hooks_see_the_container_pid() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let log = hooklog(&b);
    b.hook("createRuntime", recording_hook(&log, "createRuntime"));
    let id = rt.new_id("hookpid");
    rt.create(&b, &id).ok();
    let st = hook_state(&log, "createRuntime");
    assert_eq!(
        st["pid"],
        rt.state(&id)["pid"],
        "createRuntime state pid differs from `state`"
    );
}

#[test]
fn hook_args_and_env() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["true"]);
    let out = rt.scratch().join("out");
    b.hook(
        "createRuntime",
        json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("echo \"$0|$1|$HOOK_VAR\" > {}", s(&out)), "zero", "one"],
            "env": ["HOOK_VAR=hook-value", "PATH=/usr/bin:/bin"]
        }),
    );
    let id = rt.new_id("hookargs");
    rt.create(&b, &id).ok();
    assert_eq!(
        fs::read_to_string(&out).expect("hook ran").trim(),
        "zero|one|hook-value"
    );
}

#[test]
fn poststop_runs_after_foreground_run() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["true"]);
    let log = hooklog(&b);
    b.hook("poststop", recording_hook(&log, "poststop"));
    rt.run_fg(&b).ok();
    assert_eq!(order(&log), ["poststop"]);
}

fn failing_create_hook_leaves_nothing(kind: &str) {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    b.hook(kind, json!({"path": "/bin/false", "args": ["false"]}));
    let id = rt.new_id("hookfail");
    rt.create(&b, &id).fails();
    rt.assert_nothing_left(&id, Some(&b));
}

#[test]
fn failing_prestart_hook_fails_create() {
    failing_create_hook_leaves_nothing("prestart");
}

#[test]
fn failing_create_runtime_hook_fails_create() {
    failing_create_hook_leaves_nothing("createRuntime");
}

#[test]
fn failing_create_container_hook_fails_create() {
    failing_create_hook_leaves_nothing("createContainer");
}

#[test]
fn missing_hook_binary_fails_create() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    b.hook("createRuntime", json!({"path": "/no/such/hook-berth"}));
    let id = rt.new_id("hookmissing");
    rt.create(&b, &id)
        .fails()
        .stderr_mentions(&["/no/such/hook-berth", "hook"]);
    rt.assert_nothing_left(&id, Some(&b));
}

#[test]
fn failing_start_container_hook_fails_start() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.readonly_root(false);
    b.sh("echo ran > /tmp/ran");
    b.hook(
        "startContainer",
        json!({"path": "/bin/false", "args": ["false"]}),
    );
    let id = rt.new_id("hookstart");
    rt.create(&b, &id).ok();
    rt.start(&id).fails();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !b.rootfs().join("tmp/ran").exists(),
        "user process ran although startContainer failed"
    );
}

#[test]
fn hook_timeout() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    b.hook(
        "createRuntime",
        json!({"path": "/bin/sleep", "args": ["sleep", "60"], "timeout": 1}),
    );
    let id = rt.new_id("hooktimeout");
    let t = Instant::now();
    rt.create(&b, &id).fails();
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "hook timeout not enforced: {:?}",
        t.elapsed()
    );
    rt.assert_nothing_left(&id, Some(&b));
}

/// A failing poststart hook fails `start` after the process started, and ends the
/// container, as runc does (the OCI spec only asks for a warning; engines built on runc
/// rely on the failure; runc 1.1.5 runs poststart hooks at `create` already and fails
/// `create` there). The hooks after it do not run.
#[test]
fn failing_poststart_fails_start_and_ends_the_container() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let log = hooklog(&b);
    b.hook(
        "poststart",
        json!({"path": "/bin/false", "args": ["false"]}),
    );
    b.hook("poststart", recording_hook(&log, "poststart-2"));
    let id = rt.new_id("poststartfail");
    rt.create(&b, &id).ok();
    let o = rt.start(&id);
    o.fails();
    o.stderr_mentions(&["poststart"]);
    rt.wait_status(&id, "stopped");
    assert!(
        !order(&log).contains(&"poststart-2".to_string()),
        "a hook after the failing poststart ran"
    );
    rt.cmd(&["delete", &id]).ok();
}

#[test]
fn failing_poststop_only_warns() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["true"]);
    let log = hooklog(&b);
    b.hook("poststop", json!({"path": "/bin/false", "args": ["false"]}));
    b.hook("poststop", recording_hook(&log, "poststop-2"));
    let id = rt.new_id("poststopfail");
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    rt.cmd(&["delete", &id]).ok();
    rt.assert_gone(&id);
    assert_eq!(
        order(&log),
        ["poststop-2"],
        "hooks after the failing poststop did not run"
    );
}

/// A startContainer hook without an `env` of its own runs with the container process's
/// environment (runc's behaviour); one with `env` gets exactly that.
#[test]
fn start_container_hooks_get_the_process_environment() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["true"]).env("FROM_PROCESS=yes");
    b.hook(
        "startContainer",
        json!({"path": "/bin/sh", "args": ["sh", "-c", "echo \"inherit:$FROM_PROCESS\" > /tmp/inherit"]}),
    );
    b.hook(
        "startContainer",
        json!({"path": "/bin/sh", "args": ["sh", "-c", "echo \"own:$FROM_PROCESS:$OWN\" > /tmp/own"],
               "env": ["OWN=1"]}),
    );
    b.readonly_root(false);
    rt.run_fg(&b).ok();
    let root = b.rootfs();
    assert_eq!(
        fs::read_to_string(root.join("tmp/inherit")).unwrap().trim(),
        "inherit:yes"
    );
    assert_eq!(
        fs::read_to_string(root.join("tmp/own")).unwrap().trim(),
        "own::1"
    );
}

//! The command line itself: --version, features, spec, list, error wording, logging.

mod common;

use common::*;
use serde_json::Value;
use std::fs;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn version() {
    let rt = Runtime::new();
    let o = rt.cmd(&["--version"]);
    o.ok();
    let first = o.stdout.lines().next().unwrap_or("");
    assert!(
        first.starts_with("berth-oci version "),
        "first line: {first:?}\n{o}"
    );
    assert!(
        first.len() > "berth-oci version ".len(),
        "no version number: {first:?}"
    );
    assert!(
        o.stdout.lines().any(|l| l.starts_with("spec: 1.2.")),
        "no `spec: 1.2.x` line:\n{o}"
    );
}

#[test]
fn features() {
    let rt = Runtime::new();
    let o = rt.cmd(&["features"]);
    o.ok();
    let f = o.json();
    assert!(
        f["ociVersionMin"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.0.")),
        "ociVersionMin: {f}"
    );
    assert!(
        f["ociVersionMax"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.2.")),
        "ociVersionMax: {f}"
    );
    let hooks = strings(&f["hooks"]);
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.iter().any(|x| x == h), "hooks lacks {h}: {hooks:?}");
    }
    let opts = strings(&f["mountOptions"]);
    for m in ["ro", "rw", "nosuid", "nodev", "noexec", "bind", "rbind"] {
        assert!(
            opts.iter().any(|x| x == m),
            "mountOptions lacks {m}: {opts:?}"
        );
    }
    let ns = strings(&f["linux"]["namespaces"]);
    for n in [
        "cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time",
    ] {
        assert!(
            ns.iter().any(|x| x == n),
            "linux.namespaces lacks {n}: {ns:?}"
        );
    }
    if let Some(caps) = f["linux"]["capabilities"].as_array() {
        assert!(
            caps.iter().any(|c| c == "CAP_SYS_ADMIN"),
            "capabilities: {caps:?}"
        );
    }
}

#[test]
fn spec_defaults() {
    let rt = Runtime::new();
    let dir = rt.scratch();
    rt.cmd(&["spec", "--bundle", s(&dir)]).ok();
    let text = fs::read_to_string(dir.join("config.json")).expect("spec wrote config.json");
    let c: Value = serde_json::from_str(&text).expect("config.json is JSON");

    assert!(
        c["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.2.")),
        "ociVersion: {}",
        c["ociVersion"]
    );
    assert_eq!(strings(&c["process"]["args"]), ["sh"]);
    assert_eq!(c["process"]["terminal"], true);
    assert_eq!(c["process"]["cwd"], "/");
    assert_eq!(c["process"]["user"]["uid"], 0);
    assert!(
        strings(&c["process"]["env"])
            .iter()
            .any(|e| e.starts_with("PATH="))
    );
    assert_eq!(c["root"]["path"], "rootfs");
    assert_eq!(c["root"]["readonly"], true);
    assert!(c["hostname"].is_string());

    let dests: Vec<String> = c["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap().to_string())
        .collect();
    for d in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ] {
        assert!(dests.iter().any(|x| x == d), "mount {d} missing: {dests:?}");
    }
    let sys = c["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/sys")
        .unwrap();
    assert!(
        strings(&sys["options"]).iter().any(|o| o == "ro"),
        "/sys not ro: {sys}"
    );

    let ns: Vec<String> = c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_string())
        .collect();
    for n in ["pid", "network", "ipc", "uts", "mount", "cgroup"] {
        assert!(ns.iter().any(|x| x == n), "namespace {n} missing: {ns:?}");
    }
    assert!(
        !ns.iter().any(|x| x == "user"),
        "the default spec has no user namespace: {ns:?}"
    );
    let masked = strings(&c["linux"]["maskedPaths"]);
    for p in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/sys/firmware",
    ] {
        assert!(
            masked.iter().any(|x| x == p),
            "maskedPaths lacks {p}: {masked:?}"
        );
    }
    let ro = strings(&c["linux"]["readonlyPaths"]);
    for p in [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ] {
        assert!(ro.iter().any(|x| x == p), "readonlyPaths lacks {p}: {ro:?}");
    }
    assert!(
        c["process"]["capabilities"]["bounding"].is_array(),
        "no capabilities"
    );
}

#[test]
fn spec_refuses_to_overwrite() {
    let rt = Runtime::new();
    let dir = rt.scratch();
    fs::write(dir.join("config.json"), "{\"keep\": true}").unwrap();
    rt.cmd(&["spec", "--bundle", s(&dir)])
        .fails()
        .stderr_mentions(&["config.json", "exists"]);
    assert_eq!(
        fs::read_to_string(dir.join("config.json")).unwrap(),
        "{\"keep\": true}"
    );
}

#[test]
fn spec_in_current_directory() {
    let rt = Runtime::new();
    let dir = rt.scratch();
    let mut c = rt.command(["spec"]);
    c.current_dir(&dir);
    run_cmd(c).ok();
    let v: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["root"]["path"], "rootfs");
}

#[test]
fn spec_rootless() {
    let rt = Runtime::new();
    let dir = rt.scratch();
    rt.cmd(&["spec", "--rootless", "--bundle", s(&dir)]).ok();
    let c: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let ns: Vec<&str> = c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    assert!(
        ns.contains(&"user"),
        "rootless spec needs a user namespace: {ns:?}"
    );
    assert!(
        !ns.contains(&"network"),
        "rootless spec cannot create a network namespace: {ns:?}"
    );
    for m in ["uidMappings", "gidMappings"] {
        let a = c["linux"][m].as_array().unwrap_or_else(|| panic!("no {m}"));
        assert!(!a.is_empty(), "{m} empty");
        assert_eq!(a[0]["containerID"], 0, "{m}: {}", c["linux"][m]);
    }
}

#[test]
fn list_formats() {
    let rt = Runtime::new();
    let b1 = rt.bundle();
    b1.args(&["sleep", "1000"]);
    let b2 = rt.bundle();
    b2.args(&["sleep", "1000"]);
    let created = rt.new_id("lista");
    rt.create(&b1, &created).ok();
    let running = rt.start_container(&b2);

    let o = rt.cmd(&["list"]);
    o.ok();
    let header = o.stdout.lines().next().unwrap_or("");
    assert!(
        header.contains("ID") && header.contains("STATUS") && header.contains("PID"),
        "header: {header:?}"
    );
    let row = |id: &str| {
        o.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .map(String::from)
    };
    let r1 = row(&created).unwrap_or_else(|| panic!("{created} not listed:\n{o}"));
    assert!(r1.contains("created"), "{r1}");
    let r2 = row(&running.id).unwrap_or_else(|| panic!("{} not listed:\n{o}", running.id));
    assert!(
        r2.contains("running") && r2.contains(&running.pid.to_string()),
        "{r2}"
    );

    let o = rt.cmd(&["list", "--format", "json"]);
    o.ok();
    let v = o.json();
    let arr = v
        .as_array()
        .unwrap_or_else(|| panic!("list --format json is not an array:\n{o}"));
    assert_eq!(arr.len(), 2, "{v}");
    let e = arr
        .iter()
        .find(|e| e["id"] == running.id.as_str())
        .expect("running container listed");
    assert_eq!(e["status"], "running");
    assert_eq!(e["pid"].as_i64(), Some(running.pid as i64));
    let listed = e["bundle"].as_str().and_then(|p| fs::canonicalize(p).ok());
    assert_eq!(
        listed,
        fs::canonicalize(b2.path()).ok(),
        "bundle in list: {e}"
    );
    assert!(e["created"].is_string(), "{e}");
    let e = arr
        .iter()
        .find(|e| e["id"] == created.as_str())
        .expect("created container listed");
    assert_eq!(e["status"], "created");

    let o = rt.cmd(&["list", "-q"]);
    o.ok();
    let mut ids: Vec<&str> = o
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    ids.sort();
    let mut want = vec![created.as_str(), running.id.as_str()];
    want.sort();
    assert_eq!(ids, want, "list -q prints only ids");
}

#[test]
fn list_empty() {
    let rt = Runtime::new();
    let o = rt.cmd(&["list", "--format", "json"]);
    o.ok();
    let v = o.json();
    assert!(
        v.is_null() || v.as_array().is_some_and(|a| a.is_empty()),
        "empty list: {v}"
    );
    let o = rt.cmd(&["list", "-q"]);
    o.ok();
    assert_eq!(o.out(), "");
}

#[test]
fn unknown_container_errors() {
    let rt = Runtime::new();
    let id = rt.new_id("ghost");
    for args in [
        vec!["state", id.as_str()],
        vec!["start", id.as_str()],
        vec!["kill", id.as_str(), "KILL"],
        vec!["delete", id.as_str()],
        vec!["exec", id.as_str(), "true"],
    ] {
        let o = rt.cmd(&args);
        o.fails().stderr_mentions(&["container does not exist"]);
    }
}

#[test]
fn kill_stopped_container_errors() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["true"]);
    let id = rt.new_id("killstopped");
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    rt.cmd(&["kill", &id, "KILL"])
        .fails()
        .stderr_mentions(&["container not running"]);
}

#[test]
fn kill_invalid_signal() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let c = rt.start_container(&b);
    rt.cmd(&["kill", &c.id, "NOTASIGNAL"])
        .fails()
        .stderr_mentions(&["signal", "NOTASIGNAL"]);
    assert_eq!(rt.status(&c.id).as_deref(), Some("running"));
}

#[test]
fn unknown_subcommand_and_missing_id() {
    let rt = Runtime::new();
    let o = rt.cmd(&["frobnicate"]);
    o.fails();
    assert!(!o.stderr.trim().is_empty(), "{o}");
    rt.cmd(&["state"]).fails();
    rt.cmd(&["start"]).fails();
}

#[test]
fn log_file_json() {
    let rt = Runtime::new();
    let log = rt.scratch().join("runtime.log");
    let id = rt.new_id("logged");
    let o = rt.cmd(&["--log", s(&log), "--log-format", "json", "state", &id]);
    o.fails();
    let text = fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        !lines.is_empty(),
        "nothing logged to --log FILE on an error"
    );
    for l in &lines {
        let v: Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"));
        assert!(v.is_object(), "{l}");
    }
    assert!(
        text.contains("does not exist"),
        "the error is not in the log:\n{text}"
    );
}

#[test]
fn log_file_text() {
    let rt = Runtime::new();
    let log = rt.scratch().join("runtime.log");
    let id = rt.new_id("logged");
    let o = rt.cmd(&["--log", s(&log), "--log-format", "text", "state", &id]);
    o.fails().stderr_mentions(&["does not exist"]);
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("does not exist"),
        "the error is not in the text log:\n{text}"
    );
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<Value>(l)
                .map(|v| !v.is_object())
                .unwrap_or(true),
            "--log-format text wrote JSON: {l}"
        );
    }
}

#[test]
fn debug_flag_is_accepted() {
    let rt = Runtime::with_global_args(&["--debug"]);
    let log = rt.scratch().join("runtime.log");
    let b = rt.bundle();
    b.args(&["echo", "debug-ok"]);
    let id = rt.new_id("dbg");
    let o = rt.cmd(&["--log", s(&log), "run", "--bundle", s(b.path()), &id]);
    o.ok();
    assert_eq!(
        o.out(),
        "debug-ok",
        "--debug output must not mix into the container's stdout"
    );
}

#[test]
fn global_flags_are_accepted() {
    let rt = Runtime::with_global_args(&["--rootless", "false"]);
    let b = rt.bundle();
    b.args(&["echo", "flags-ok"]);
    let o = rt.run_fg(&b);
    o.ok();
    assert_eq!(o.out(), "flags-ok");
}

#[test]
fn state_root_is_created_on_demand() {
    let rt = Runtime::new();
    let nested = rt.scratch().join("a/b/root");
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let id = unique("nested");
    let mut c = std::process::Command::new(bin());
    c.args(["--root", s(&nested), "create", "--bundle", s(b.path()), &id]);
    c.env(TAG_ENV, rt.tag()).stdin(std::process::Stdio::null());
    run_cmd(c).ok();
    assert!(nested.join(&id).is_dir(), "no state under the new --root");
    let mut c = std::process::Command::new(bin());
    c.args(["--root", s(&nested), "delete", "--force", &id])
        .stdin(std::process::Stdio::null());
    run_cmd(c).ok();
    assert!(!nested.join(&id).exists());
}

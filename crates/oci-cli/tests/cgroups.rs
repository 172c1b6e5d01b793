//! cgroups: limits enforced from inside and checked from outside, `update`,
//! `pause`/`resume`, `events`, `ps`, OOM kills, and bad resource values. The same tests
//! run on this cgroup v1 (hybrid) host and, through scripts/test.sh, in a pure cgroup v2
//! VM.

mod common;

use common::*;
use serde_json::{Value, json};
use std::fs;
use std::time::Duration;

fn read_cg(controller: &str, b: &Bundle, v1: &str, v2: &str) -> String {
    let dir = cgroup_dir(controller, &b.cgroup);
    let f = if cgroup_v2_only() { v2 } else { v1 };
    fs::read_to_string(dir.join(f))
        .unwrap_or_else(|e| panic!("{}/{f}: {e}", dir.display()))
        .trim()
        .to_string()
}

fn stats(rt: &Runtime, id: &str) -> Value {
    let o = rt.cmd(&["events", "--stats", id]);
    o.ok();
    let v = o.json();
    assert_eq!(v["type"], "stats", "{v}");
    assert_eq!(v["id"], id, "{v}");
    v["data"].clone()
}

#[test]
fn memory_limit_oom_kills_and_events_report_it() {
    if !cgroup_controller_available("memory") {
        return skip("memory controller not available");
    }
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let limit = 32 * 1024 * 1024;
    b.edit(|c| {
        // memory+swap = memory: no swap to escape into.
        c["linux"]["resources"]["memory"] = json!({"limit": limit, "swap": limit});
    });
    let c = rt.start_container(&b);
    let mut events = rt.spawn(&["events", "--interval", "100ms", &c.id]);
    // 64 MiB in a shell variable: more than the limit.
    let o = rt.exec(
        &c.id,
        &[
            "sh",
            "-c",
            "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived ${#x}",
        ],
    );
    assert!(
        !o.out().contains("survived"),
        "allocation beyond the limit survived:\n{o}"
    );
    assert!(
        events.wait_for_stdout("\"oom\"", Duration::from_secs(10)),
        "events reported no OOM: {}",
        events.stdout_now()
    );
    let line = events
        .stdout_now()
        .lines()
        .find(|l| l.contains("\"oom\""))
        .map(String::from)
        .unwrap_or_default();
    let v: Value = serde_json::from_str(&line).expect("oom event is JSON");
    assert_eq!(v, json!({"type": "oom", "id": c.id}));
    // The container's init is unharmed; usage stays under the limit.
    assert_eq!(rt.status(&c.id).as_deref(), Some("running"));
    let data = stats(&rt, &c.id);
    assert_eq!(data["memory"]["usage"]["limit"], json!(limit));
    // The peak reached the limit.
    assert!(
        data["memory"]["usage"]["max"].as_u64().unwrap_or(0) >= limit * 9 / 10,
        "{data}"
    );
}

#[test]
fn fork_beyond_pids_max_fails_with_eagain() {
    if !cgroup_controller_available("pids") {
        return skip("pids controller not available");
    }
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| c["linux"]["resources"]["pids"] = json!({"limit": 3}));
    b.sh("sleep 5 & sleep 5 & sleep 5 & echo done");
    let o = rt.run_fg(&b);
    assert!(
        o.stderr.contains("Resource temporarily unavailable"),
        "no EAGAIN from fork beyond pids.max:\n{o}"
    );
}

#[test]
fn cpu_quota_throttles() {
    if !cgroup_controller_available("cpu") {
        return skip("cpu controller not available");
    }
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    b.edit(|c| c["linux"]["resources"]["cpu"] = json!({"quota": 10000, "period": 100000}));
    let c = rt.start_container(&b);
    assert_eq!(
        read_cg("cpu", &b, "cpu.cfs_quota_us", "cpu.max")
            .split_whitespace()
            .next(),
        Some("10000")
    );
    // Busy for about a second of wall time at 10% of a CPU.
    rt.exec(
        &c.id,
        &[
            "sh",
            "-c",
            "end=$(( $(date +%s) + 2 )); while [ $(date +%s) -lt $end ]; do :; done",
        ],
    )
    .ok();
    let data = stats(&rt, &c.id);
    let throttled = data["cpu"]["throttling"]["throttled_periods"]
        .as_u64()
        .unwrap_or(0);
    assert!(throttled > 0, "no throttled periods: {data}");
    assert!(
        data["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0,
        "{data}"
    );
}

#[test]
fn update_changes_running_limits() {
    if !cgroup_controller_available("memory") || !cgroup_controller_available("pids") {
        return skip("memory or pids controller not available");
    }
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    b.edit(|c| c["linux"]["resources"]["pids"] = json!({"limit": 100}));
    let c = rt.start_container(&b);
    rt.cmd(&[
        "update",
        "--memory",
        "48m",
        "--pids-limit",
        "7",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "100000",
        &c.id,
    ])
    .ok();
    assert_eq!(read_cg("pids", &b, "pids.max", "pids.max"), "7");
    assert_eq!(
        read_cg("memory", &b, "memory.limit_in_bytes", "memory.max"),
        (48u64 << 20).to_string()
    );
    let cpu = read_cg("cpu", &b, "cpu.cfs_quota_us", "cpu.max");
    assert!(cpu.starts_with("20000"), "{cpu}");
    // --resources from stdin-like file, JSON as runc takes it.
    let f = rt.scratch().join("res.json");
    fs::write(&f, r#"{"pids": {"limit": 9}}"#).unwrap();
    rt.cmd(&["update", "--resources", s(&f), &c.id]).ok();
    assert_eq!(read_cg("pids", &b, "pids.max", "pids.max"), "9");
    // The new limit is enforced inside.
    let o = rt.exec(
        &c.id,
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 3 & done; wait",
        ],
    );
    assert!(o.stderr.contains("Resource temporarily unavailable"), "{o}");
    // A bad value is refused with the file named, and the old value stays.
    let o = rt.cmd(&["update", "--memory", "lots", &c.id]);
    o.fails();
    assert!(o.stderr.contains("lots"), "{o}");
}

#[test]
fn pause_freezes_and_resume_thaws() {
    if !cgroup_controller_available("freezer") && !cgroup_v2_only() {
        return skip("freezer not available");
    }
    let rt = Runtime::new();
    let b = rt.bundle();
    b.readonly_root(false);
    b.sh("i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done");
    let c = rt.start_container(&b);
    let count = || -> u64 {
        rt.exec(&c.id, &["cat", "/tmp/count"])
            .out()
            .trim()
            .parse()
            .unwrap_or(0)
    };
    assert!(wait_until(Duration::from_secs(5), || count() > 0));
    rt.cmd(&["pause", &c.id]).ok();
    assert_eq!(rt.status(&c.id).as_deref(), Some("paused"));
    let read_frozen = || {
        // exec cannot run in a frozen cgroup: read the file from the host.
        fs::read_to_string(b.rootfs().join("tmp/count")).unwrap_or_default()
    };
    let before = read_frozen();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(before, read_frozen(), "the container ran while paused");
    rt.cmd(&["resume", &c.id]).ok();
    assert_eq!(rt.status(&c.id).as_deref(), Some("running"));
    let after = count();
    assert!(
        wait_until(Duration::from_secs(5), || count() > after),
        "the container did not run again after resume"
    );
    // Pausing twice / resuming a running container is refused.
    rt.cmd(&["resume", &c.id]).fails();
}

#[test]
fn ps_lists_the_container_processes() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let c = rt.start_container(&b);
    let o = rt.cmd(&["ps", "--format", "json", &c.id]);
    o.ok();
    let pids: Vec<i64> = serde_json::from_str(o.out()).expect("ps json is an array");
    assert!(
        pids.contains(&(c.pid as i64)),
        "{pids:?} lacks init {}",
        c.pid
    );
    let o = rt.cmd(&["ps", &c.id]);
    o.ok();
    assert!(o.out().lines().next().unwrap_or("").contains("PID"), "{o}");
    assert!(o.out().contains("sleep 1000"), "{o}");
    assert_eq!(
        o.out().lines().count(),
        2,
        "only init should be listed:\n{o}"
    );
}

#[test]
fn stats_have_runc_shape() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    b.edit(|c| c["linux"]["resources"]["pids"] = json!({"limit": 50}));
    let c = rt.start_container(&b);
    let d = stats(&rt, &c.id);
    for key in ["cpu", "memory", "pids", "blkio", "hugetlb"] {
        assert!(d.get(key).is_some(), "stats lack {key}: {d}");
    }
    assert_eq!(d["pids"]["current"], json!(1), "{d}");
    assert_eq!(d["pids"]["limit"], json!(50), "{d}");
    assert!(
        d["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{d}"
    );
    // A stopped container has no stats.
    rt.cmd(&["kill", &c.id, "KILL"]).ok();
    rt.wait_status(&c.id, "stopped");
    rt.cmd(&["events", "--stats", &c.id]).fails();
}

#[test]
fn cgroups_path_escaping_its_parent_is_refused() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| c["linux"]["cgroupsPath"] = json!("/../../escape-berth"));
    let id = rt.new_id("esc");
    let o = rt.create(&b, &id);
    o.fails();
    assert!(o.stderr.contains("cgroupsPath"), "{o}");
    assert!(cgroup_dirs("/escape-berth").is_empty());
    assert!(cgroup_dirs("/../escape-berth").is_empty());
    rt.assert_nothing_left(&id, Some(&b));
}

#[test]
fn value_the_kernel_rejects_names_controller_file_and_value() {
    if !cgroup_controller_available("cpuset") {
        return skip("cpuset controller not available");
    }
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| c["linux"]["resources"]["cpu"] = json!({"cpus": "4095"}));
    let id = rt.new_id("badcpu");
    let o = rt.create(&b, &id);
    o.fails();
    assert!(o.stderr.contains("cpuset"), "{o}");
    assert!(o.stderr.contains("cpuset.cpus"), "{o}");
    assert!(o.stderr.contains("4095"), "{o}");
    rt.assert_nothing_left(&id, Some(&b));
}

#[test]
fn controller_that_is_not_available_is_named() {
    // net_cls is not mounted on this host nor present on cgroup v2.
    if cgroup_controller_available("net_cls") {
        return skip("net_cls is mounted here");
    }
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| c["linux"]["resources"]["network"] = json!({"classID": 1048577}));
    let id = rt.new_id("nonet");
    let o = rt.create(&b, &id);
    o.fails();
    assert!(o.stderr.contains("net_cls"), "{o}");
    rt.assert_nothing_left(&id, Some(&b));
}

#[test]
fn device_rules_are_enforced() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| {
        // /dev/kmsg (c 1:11; opening it write-only needs no capability) exists in the
        // container but only the second run may open it.
        c["linux"]["devices"] = json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11,
                                        "fileMode": 0o644, "uid": 0, "gid": 0}]);
        c["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}]);
    });
    b.sh(
        "if (: >/dev/kmsg); then echo kmsg=ok; else echo kmsg=denied; fi; \
          echo x > /dev/null && echo null=ok",
    );
    let o = rt.run_fg(&b);
    assert!(o.out().contains("kmsg=denied"), "{o}");
    assert!(o.stderr.contains("not permitted"), "{o}");
    assert!(o.out().contains("null=ok"), "{o}");
    b.edit(|c| {
        c["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}
        ]);
    });
    let o = rt.run_fg(&b);
    assert!(o.out().contains("kmsg=ok"), "{o}");
}

#[test]
fn kill_all_reaches_every_process_through_the_cgroup() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let c = rt.start_container(&b);
    rt.cmd(&["exec", "-d", &c.id, "sleep", "999"]).ok();
    let n = || {
        fs::read_to_string(cgroup_dir("pids", &b.cgroup).join("cgroup.procs"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(5), || n() == 2),
        "expected 2 processes"
    );
    rt.cmd(&["kill", "--all", &c.id, "KILL"]).ok();
    assert!(
        wait_until(Duration::from_secs(5), || n() == 0),
        "processes survived kill --all"
    );
    rt.wait_status(&c.id, "stopped");
    rt.cmd(&["delete", &c.id]).ok();
    assert!(
        wait_until(Duration::from_secs(5), || cgroup_dirs(&b.cgroup).is_empty()),
        "delete left the cgroup: {:?}",
        cgroup_dirs(&b.cgroup)
    );
}

/// hugepageLimits set the reservation limit too where the kernel has it (as runc does),
/// so pages reserved by mmap cannot escape the limit.
#[test]
fn hugetlb_limits_include_the_reservation_limit() {
    if !cgroup_controller_available("hugetlb") {
        return skip("hugetlb controller not available");
    }
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    let limit = 4 * 2 * 1024 * 1024u64;
    b.edit(|c| {
        c["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": limit}]);
    });
    let c = rt.start_container(&b);
    let dir = cgroup_dir("hugetlb", &b.cgroup);
    let (plain, rsvd) = if cgroup_v2_only() {
        ("hugetlb.2MB.max", "hugetlb.2MB.rsvd.max")
    } else {
        (
            "hugetlb.2MB.limit_in_bytes",
            "hugetlb.2MB.rsvd.limit_in_bytes",
        )
    };
    assert_eq!(read_cg("hugetlb", &b, plain, plain), limit.to_string());
    if dir.join(rsvd).exists() {
        assert_eq!(read_cg("hugetlb", &b, rsvd, rsvd), limit.to_string());
    } else {
        skip("the kernel has no hugetlb reservation limits");
    }
    rt.cmd(&["delete", "--force", &c.id]).ok();
}

/// Block I/O weights on a kernel whose blkio controller has no weight file (neither CFQ
/// nor BFQ): refused with an error that says so, not a bare "No such file".
#[test]
fn blkio_weight_without_a_weight_file_is_a_clear_error() {
    if cgroup_v2_only() || !cgroup_controller_available("blkio") {
        return skip("no cgroup v1 blkio controller");
    }
    let probe = cgroup_roots()
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "blkio"));
    let Some(root) = probe else {
        return skip("no cgroup v1 blkio hierarchy");
    };
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["true"]);
    b.edit(|c| c["linux"]["resources"]["blockIO"] = json!({"weight": 500}));
    let id = rt.new_id("blkio");
    let o = rt.create(&b, &id);
    if root.join("blkio.weight").exists() || root.join("blkio.bfq.weight").exists() {
        o.ok();
        assert_eq!(
            read_cg("blkio", &b, "blkio.weight", "io.weight").trim_start_matches("default "),
            "500"
        );
    } else {
        o.fails();
        o.stderr_mentions(&["blkio", "weight"]);
        assert!(o.stderr.contains("CFQ") || o.stderr.contains("BFQ"), "{o}");
        rt.assert_nothing_left(&id, Some(&b));
    }
}

/// `linux.resources.blockIO` throttles on a loop device over a scratch file: written to
/// `blkio.throttle.*` (v1) or one `io.max` line (v2), enforced on the container's direct
/// reads (2 MiB at 1 MiB/s takes over a second), and changed by `update`.
#[test]
fn blkio_throttles_are_written_and_enforced() {
    if !cgroup_controller_available(if cgroup_v2_only() { "io" } else { "blkio" }) {
        return skip("no blkio/io controller");
    }
    let rt = Runtime::new();
    let img = rt.scratch().join("loop.img");
    fs::File::create(&img)
        .and_then(|f| f.set_len(8 << 20))
        .unwrap();
    let o = std::process::Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&img)
        .output();
    let Some(dev) = o
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    else {
        return skip("no loop device");
    };
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = std::process::Command::new("losetup")
                .args(["-d", &self.0])
                .status();
        }
    }
    let _detach = Detach(dev.clone());
    use std::os::unix::fs::MetadataExt;
    let rdev = fs::metadata(&dev).unwrap().rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let b = rt.bundle();
    b.edit(|c| {
        c["linux"]["devices"] = json!([{"path": "/dev/b", "type": "b", "major": major,
                                        "minor": minor, "fileMode": 0o600, "uid": 0, "gid": 0}]);
        c["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "b", "major": major, "minor": minor, "access": "rw"}
        ]);
        c["linux"]["resources"]["blockIO"] = json!({
            "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1 << 20}],
            "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 50}]
        });
    });
    b.sh("busybox dd if=/dev/b of=/dev/null bs=256k count=8 iflag=direct 2>&1");
    let started = std::time::Instant::now();
    let o = rt.run_fg(&b);
    assert!(o.out().contains("8+0 records in"), "{o}");
    assert!(
        started.elapsed() >= Duration::from_millis(1200),
        "2 MiB read in {:?}",
        started.elapsed()
    );
    b.args(&["sleep", "1000"]);
    let c = rt.start_container(&b);
    let key = format!("{major}:{minor}");
    let read_bps = || read_cg("blkio", &b, "blkio.throttle.read_bps_device", "io.max");
    if cgroup_v2_only() {
        assert_eq!(
            read_bps(),
            format!("{key} rbps=1048576 wbps=max riops=max wiops=50")
        );
    } else {
        assert_eq!(read_bps(), format!("{key} 1048576"));
        assert_eq!(
            read_cg("blkio", &b, "blkio.throttle.write_iops_device", ""),
            format!("{key} 50")
        );
    }
    let f = rt.scratch().join("res.json");
    let res = json!({"blockIO": {"throttleReadBpsDevice": [
        {"major": major, "minor": minor, "rate": 2 << 20}
    ]}});
    fs::write(&f, res.to_string()).unwrap();
    rt.cmd(&["update", "--resources", s(&f), &c.id]).ok();
    let want = if cgroup_v2_only() {
        format!("{key} rbps=2097152")
    } else {
        format!("{key} 2097152")
    };
    assert!(read_bps().starts_with(&want), "{}", read_bps());
    rt.cmd(&["delete", "--force", &c.id]).ok();
}

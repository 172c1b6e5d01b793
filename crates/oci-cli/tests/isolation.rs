//! Isolation: namespaces (new, joined by path, user, time), mounts, masked and read-only
//! paths, the read-only root, /dev, cgroups.

mod common;

use common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

/// Map of namespace name → `readlink /proc/self/ns/NAME` as seen inside a container.
fn ns_inside(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.trim().to_string()))
        })
        .collect()
}

const NS_SCRIPT: &str = "for n in pid uts ipc net mnt cgroup user time; do \
     [ -e /proc/self/ns/$n ] && echo $n $(readlink /proc/self/ns/$n); done";

#[test]
fn init_is_pid_1() {
    let rt = Runtime::new();
    let b = rt.bundle();
    assert_eq!(rt.sh_output(&b, "echo $$").trim(), "1");
}

#[test]
fn hostname_from_config() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.hostname("berth-isolated");
    assert_eq!(rt.sh_output(&b, "hostname").trim(), "berth-isolated");
    // The host's hostname is untouched.
    assert_ne!(host("hostname", &[]), "berth-isolated");
}

#[test]
fn configured_namespaces_differ_from_host() {
    let rt = Runtime::new();
    let b = rt.bundle();
    for ns in ["pid", "uts", "ipc", "network", "mount", "cgroup"] {
        b.namespace(ns, None);
    }
    let inside = ns_inside(&rt.sh_output(&b, NS_SCRIPT));
    for ns in ["pid", "uts", "ipc", "net", "mnt", "cgroup"] {
        let got = inside
            .get(ns)
            .unwrap_or_else(|| panic!("no {ns} line in {inside:?}"));
        assert_ne!(got, &ns_of("self", ns), "{ns} namespace is the host's");
    }
    // No user namespace configured: the host's is kept.
    assert_eq!(
        inside.get("user"),
        Some(&ns_of("self", "user")),
        "user namespace changed"
    );
}

#[test]
fn unlisted_namespaces_are_shared_with_host() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.remove_namespace("network").remove_namespace("ipc");
    let inside = ns_inside(&rt.sh_output(&b, NS_SCRIPT));
    assert_eq!(
        inside.get("net"),
        Some(&ns_of("self", "net")),
        "network ns not shared with host"
    );
    assert_eq!(
        inside.get("ipc"),
        Some(&ns_of("self", "ipc")),
        "ipc ns not shared with host"
    );
    assert_ne!(inside.get("pid"), Some(&ns_of("self", "pid")));
}

#[test]
fn new_network_namespace_has_only_loopback() {
    let rt = Runtime::new();
    let b = rt.bundle();
    let out = rt.sh_output(&b, "ls /sys/class/net");
    let ifaces: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(ifaces, vec!["lo"], "interfaces in a new netns");
}

#[test]
fn proc_mounts_show_configured_mounts() {
    let rt = Runtime::new();
    let b = rt.bundle();
    fs::create_dir_all(b.rootfs().join("mnt/scratch")).unwrap();
    b.add_mount(json!({
        "destination": "/mnt/scratch", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "noexec", "size=4m", "mode=750"]
    }));
    let out = rt.sh_output(&b, "cat /proc/mounts");
    let mounts = parse_mounts(&out);
    let find = |target: &str| {
        mounts
            .iter()
            .rev()
            .find(|m| m.target == target)
            .unwrap_or_else(|| panic!("{target} not mounted; /proc/mounts:\n{out}"))
    };
    let has = |m: &MountLine, o: &str| m.options.iter().any(|x| x == o);

    let sys = find("/sys");
    assert_eq!(sys.fstype, "sysfs");
    assert!(has(sys, "ro"), "/sys is not read-only: {:?}", sys.options);
    assert_eq!(find("/proc").fstype, "proc");
    assert_eq!(find("/dev").fstype, "tmpfs");
    assert_eq!(find("/dev/pts").fstype, "devpts");
    assert_eq!(find("/dev/shm").fstype, "tmpfs");
    assert_eq!(find("/dev/mqueue").fstype, "mqueue");
    let cg = find("/sys/fs/cgroup");
    assert!(
        cg.fstype == "cgroup2" || cg.fstype == "tmpfs",
        "/sys/fs/cgroup: {}",
        cg.fstype
    );

    let scratch = find("/mnt/scratch");
    assert_eq!(scratch.fstype, "tmpfs");
    for o in ["nosuid", "nodev", "noexec", "size=4096k", "mode=750"] {
        assert!(
            has(scratch, o),
            "/mnt/scratch lacks option {o}: {:?}",
            scratch.options
        );
    }
    // Nothing is mounted on the host.
    let host_mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !host_mounts.contains(s(b.path())),
        "container mounts leaked to the host:\n{host_mounts}"
    );
}

#[test]
fn mount_destination_is_created() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.add_mount(json!({
        "destination": "/new/dir/here", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]
    }));
    let out = rt.sh_output(&b, "grep ' /new/dir/here ' /proc/mounts");
    assert!(out.contains("tmpfs"), "{out}");
}

#[test]
fn bind_mount_read_only() {
    let rt = Runtime::new();
    let b = rt.bundle();
    let data = rt.scratch();
    fs::write(data.join("file"), "host data\n").unwrap();
    b.add_mount(json!({
        "destination": "/data", "type": "bind", "source": s(&data), "options": ["rbind", "ro"]
    }));
    let out = rt.sh_output(
        &b,
        "cat /data/file; touch /data/new 2>/dev/null && echo WRITABLE || echo readonly",
    );
    assert!(out.contains("host data"), "{out}");
    assert!(out.contains("readonly"), "ro bind mount is writable: {out}");
    assert!(!data.join("new").exists());
}

/// The recursive atime options (mount_setattr) on a bind mount: each is accepted (the
/// kernel takes an atime value only with all of MOUNT_ATTR__ATIME cleared, EINVAL
/// otherwise) and the mount shows the setting, the last one winning.
#[test]
fn recursive_atime_options_on_bind_mounts() {
    let rt = Runtime::new();
    let data = rt.scratch();
    for (opts, want, not) in [
        (&["rnoatime"][..], Some("noatime"), None),
        (&["rrelatime"][..], Some("relatime"), Some("noatime")),
        (&["ratime"][..], None, Some("noatime")),
        (&["rstrictatime"][..], None, Some("relatime")),
        (&["rnorelatime"][..], None, Some("relatime")),
        (&["rnostrictatime"][..], Some("relatime"), None),
        (&["rnoatime", "rstrictatime"][..], None, Some("noatime")),
        (&["rstrictatime", "rnoatime"][..], Some("noatime"), None),
    ] {
        let b = rt.bundle();
        let mut o = vec!["rbind"];
        o.extend_from_slice(opts);
        b.add_mount(json!({
            "destination": "/data", "type": "bind", "source": s(&data), "options": o
        }));
        let out = rt.sh_output(&b, "grep ' /data ' /proc/self/mounts");
        let line = out.lines().find(|l| l.contains(" /data ")).unwrap_or("");
        assert!(!line.is_empty(), "{opts:?}: no /data mount: {out}");
        let flags: Vec<&str> = line.split(' ').nth(3).unwrap_or("").split(',').collect();
        if let Some(w) = want {
            assert!(flags.contains(&w), "{opts:?}: {w} missing in {line}");
        }
        if let Some(n) = not {
            assert!(!flags.contains(&n), "{opts:?}: {n} in {line}");
        }
    }
}

#[test]
fn bind_mount_read_write() {
    let rt = Runtime::new();
    let b = rt.bundle();
    let data = rt.scratch();
    b.add_mount(json!({
        "destination": "/data", "type": "bind", "source": s(&data), "options": ["rbind", "rw"]
    }));
    rt.sh_output(&b, "echo from-container > /data/written");
    assert_eq!(
        fs::read_to_string(data.join("written")).unwrap().trim(),
        "from-container"
    );
}

#[test]
fn masked_paths() {
    let rt = Runtime::new();
    let b = rt.bundle();
    fs::write(b.rootfs().join("etc/secret"), "top secret\n").unwrap();
    fs::create_dir(b.rootfs().join("etc/secretdir")).unwrap();
    fs::write(b.rootfs().join("etc/secretdir/inner"), "inner secret\n").unwrap();
    b.edit(|c| {
        let a = c["linux"]["maskedPaths"]
            .as_array_mut()
            .expect("spec has maskedPaths");
        a.push(json!("/etc/secret"));
        a.push(json!("/etc/secretdir"));
    });
    let masked = b.config()["linux"]["maskedPaths"].clone();
    let host_kcore = Path::new("/proc/kcore").exists();
    let host_firmware = fs::read_dir("/sys/firmware")
        .map(|d| d.count() > 0)
        .unwrap_or(false);
    let out = rt.sh_output(
        &b,
        "echo secret=$(cat /etc/secret 2>/dev/null); \
         echo secretdir=$(ls -A /etc/secretdir 2>/dev/null | wc -l); \
         echo kcore=$(cat /proc/kcore 2>/dev/null | wc -c); \
         echo firmware=$(ls -A /sys/firmware 2>/dev/null | wc -l)",
    );
    assert!(
        out.lines().any(|l| l == "secret="),
        "masked file readable:\n{out}"
    );
    assert!(
        out.lines().any(|l| l == "secretdir=0"),
        "masked dir not empty:\n{out}"
    );
    if host_kcore
        && masked
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/proc/kcore")
    {
        assert!(
            out.lines().any(|l| l == "kcore=0"),
            "/proc/kcore readable:\n{out}"
        );
    }
    if host_firmware
        && masked
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/sys/firmware")
    {
        assert!(
            out.lines().any(|l| l == "firmware=0"),
            "/sys/firmware not masked:\n{out}"
        );
    }
    // Masking happens inside the container only.
    assert_eq!(
        fs::read_to_string(b.rootfs().join("etc/secret")).unwrap(),
        "top secret\n"
    );
}

#[test]
fn readonly_paths() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.readonly_root(false);
    fs::create_dir(b.rootfs().join("etc/rodir")).unwrap();
    b.edit(|c| {
        c["linux"]["readonlyPaths"]
            .as_array_mut()
            .expect("spec has readonlyPaths")
            .push(json!("/etc/rodir"))
    });
    let out = rt.sh_output(
        &b,
        "touch /etc/rodir/f 2>/dev/null && echo rodir=writable || echo rodir=ro; \
         touch /etc/rw 2>/dev/null && echo etc=writable || echo etc=ro; \
         grep ' /proc/sys ' /proc/mounts",
    );
    assert!(
        out.contains("rodir=ro"),
        "readonlyPaths entry writable:\n{out}"
    );
    assert!(
        out.contains("etc=writable"),
        "the rest of the root must stay writable:\n{out}"
    );
    let procsys = parse_mounts(&out);
    let m = procsys
        .iter()
        .rev()
        .find(|m| m.target == "/proc/sys")
        .unwrap_or_else(|| panic!("/proc/sys not remounted:\n{out}"));
    assert!(
        m.options.iter().any(|o| o == "ro"),
        "/proc/sys is not ro: {:?}",
        m.options
    );
    assert!(!b.rootfs().join("etc/rodir/f").exists());
}

#[test]
fn proc_sys_write_fails() {
    let rt = Runtime::new();
    let b = rt.bundle();
    let out = rt.sh_output(
        &b,
        "echo berth-x > /proc/sys/kernel/domainname 2>/dev/null && echo WRITABLE || echo refused",
    );
    assert!(
        out.contains("refused"),
        "/proc/sys writable in the container: {out}"
    );
}

#[test]
fn readonly_root() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.readonly_root(true);
    let out = rt.sh_output(
        &b,
        "touch /newfile 2>/dev/null && echo WRITABLE || echo readonly; grep ' / ' /proc/mounts",
    );
    assert!(
        out.contains("readonly"),
        "root is writable with root.readonly=true:\n{out}"
    );
    let root = parse_mounts(&out);
    let m = root
        .iter()
        .rev()
        .find(|m| m.target == "/")
        .unwrap_or_else(|| panic!("no / in mounts:\n{out}"));
    assert!(
        m.options.iter().any(|o| o == "ro"),
        "/ options: {:?}",
        m.options
    );
    assert!(!b.rootfs().join("newfile").exists());
}

#[test]
fn writable_root() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.readonly_root(false);
    rt.sh_output(&b, "echo data > /newfile");
    assert_eq!(
        fs::read_to_string(b.rootfs().join("newfile"))
            .unwrap()
            .trim(),
        "data"
    );
}

#[test]
fn default_devices() {
    let rt = Runtime::new();
    let b = rt.bundle();
    let out = rt.sh_output(
        &b,
        "for d in null zero full random urandom tty; do \
           stat -c '%n %F %t:%T' /dev/$d 2>&1; done; \
         stat -L -c '%n %F %t:%T' /dev/ptmx 2>&1",
    );
    let expect = [
        ("/dev/null", "1:3"),
        ("/dev/zero", "1:5"),
        ("/dev/full", "1:7"),
        ("/dev/random", "1:8"),
        ("/dev/urandom", "1:9"),
        ("/dev/tty", "5:0"),
        ("/dev/ptmx", "5:2"),
    ];
    for (dev, majmin) in expect {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{dev} ")))
            .unwrap_or_else(|| panic!("{dev} missing:\n{out}"));
        assert!(
            line.contains("character special file"),
            "{dev} is not a char device: {line}"
        );
        let got = line.rsplit(' ').next().unwrap();
        let (ma, mi) = got.split_once(':').unwrap();
        let ma = i64::from_str_radix(ma, 16).unwrap();
        let mi = i64::from_str_radix(mi, 16).unwrap();
        assert_eq!(format!("{ma}:{mi}"), majmin, "{dev}: {line}");
    }
}

#[test]
fn devices_work() {
    let rt = Runtime::new();
    let b = rt.bundle();
    let out = rt.sh_output(
        &b,
        "echo x > /dev/null && echo null-ok; \
         echo zero=$(head -c 16 /dev/zero | wc -c); \
         echo urandom=$(head -c 16 /dev/urandom | wc -c); \
         echo x > /dev/full 2>/dev/null || echo full-refuses",
    );
    for want in ["null-ok", "zero=16", "urandom=16", "full-refuses"] {
        assert!(out.lines().any(|l| l == want), "missing {want}:\n{out}");
    }
}

#[test]
fn dev_symlinks() {
    let rt = Runtime::new();
    let b = rt.bundle();
    let out = rt.sh_output(
        &b,
        "for l in fd stdin stdout stderr; do echo $l $(readlink /dev/$l); done",
    );
    for (l, t) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        assert!(
            out.lines().any(|x| x == format!("{l} {t}")),
            "/dev/{l} should link to {t}:\n{out}"
        );
    }
}

#[test]
fn linux_devices_are_created() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| {
        c["linux"]["devices"] = json!([
            {"path": "/dev/berth-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 0, "gid": 0},
            {"path": "/dev/sub/berth-zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640, "uid": 1000, "gid": 1000}
        ]);
    });
    let out = rt.sh_output(
        &b,
        "stat -c '%n %F %t:%T %a %u:%g' /dev/berth-null /dev/sub/berth-zero",
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("/dev/berth-null "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("character special file 1:3 666 0:0"),
        "{line}"
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("/dev/sub/berth-zero "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("character special file 1:5 640 1000:1000"),
        "{line}"
    );
}

#[test]
fn cgroup_placement_and_limits() {
    if !cgroup_controller_available("pids") || !cgroup_controller_available("memory") {
        return skip("pids or memory cgroup controller not available");
    }
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["sleep", "1000"]);
    b.edit(|c| {
        c["linux"]["resources"]["pids"] = json!({"limit": 42});
        c["linux"]["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024});
    });
    let c = rt.start_container(&b);
    let pids = cgroup_dir("pids", &b.cgroup);
    let procs = fs::read_to_string(pids.join("cgroup.procs"))
        .expect("container cgroup exists at linux.cgroupsPath");
    assert!(
        procs.lines().any(|l| l.trim() == c.pid.to_string()),
        "init {} not in {}: {procs}",
        c.pid,
        pids.display()
    );
    assert_eq!(
        fs::read_to_string(pids.join("pids.max")).unwrap().trim(),
        "42"
    );
    let mem = cgroup_dir("memory", &b.cgroup);
    let limit = if cgroup_v2_only() {
        fs::read_to_string(mem.join("memory.max")).unwrap()
    } else {
        fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap()
    };
    assert_eq!(limit.trim(), (64 * 1024 * 1024).to_string());

    rt.cmd(&["delete", "--force", &c.id]).ok();
    assert!(
        wait_until(Duration::from_secs(5), || cgroup_dirs(&b.cgroup).is_empty()),
        "cgroup not removed by delete: {:?}",
        cgroup_dirs(&b.cgroup)
    );
}

#[test]
fn pids_limit_is_enforced() {
    if !cgroup_controller_available("pids") {
        return skip("pids cgroup controller not available");
    }
    let rt = Runtime::new();
    let b = rt.bundle();
    b.edit(|c| c["linux"]["resources"]["pids"] = json!({"limit": 5}));
    // A subshell forks sleeps until fork fails; then count processes with builtins only.
    let out = rt.sh_output(
        &b,
        "( i=0; while [ $i -lt 12 ]; do sleep 3 & i=$((i+1)); done ) 2>/dev/null; \
         n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo count=$n",
    );
    let count: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("count="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count:\n{out}"));
    assert!(
        count <= 5,
        "pids.max=5 not enforced: {count} processes in the container"
    );
    assert!(count >= 2, "no process could be forked at all: {count}");
}

#[test]
fn user_namespace_mapping() {
    if fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .map(|v| v.trim() == "0")
        .unwrap_or(true)
    {
        return skip("user namespaces disabled on this host");
    }
    let rt = Runtime::new();
    let b = rt.bundle();
    chown_tree(&b.rootfs(), 100000, 100000);
    b.readonly_root(false);
    b.remove_mount("/sys/fs/cgroup");
    b.namespace("user", None);
    b.edit(|c| {
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    let out = rt.sh_output(
        &b,
        "echo uid=$(id -u) gid=$(id -g); cat /proc/self/uid_map /proc/self/gid_map; \
         touch /tmp/owned; readlink /proc/self/ns/user",
    );
    assert!(out.contains("uid=0 gid=0"), "{out}");
    let maps: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() == 3)
        .collect();
    assert!(maps.len() >= 2, "no uid_map/gid_map lines:\n{out}");
    for m in &maps[..2] {
        assert_eq!(m, &vec!["0", "100000", "65536"], "mapping:\n{out}");
    }
    assert!(
        !out.contains(&ns_of("self", "user")),
        "user ns is the host's:\n{out}"
    );
    // A file created by container root belongs to host uid 100000.
    let meta = fs::metadata(b.rootfs().join("tmp/owned")).expect("file created in container");
    assert_eq!((meta.uid(), meta.gid()), (100000, 100000));
}

/// Idmapped bind mounts: files a host uid owns show as the container's
/// user through the mount, with the container's mapping or the mount's
/// own, and files the container writes there land with the host's ids.
#[test]
fn idmapped_mounts() {
    if fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .map(|v| v.trim() == "0")
        .unwrap_or(true)
    {
        return skip("user namespaces disabled on this host");
    }
    let rt = Runtime::new();
    let b = rt.bundle();
    chown_tree(&b.rootfs(), 100000, 100000);
    b.readonly_root(false);
    b.remove_mount("/sys/fs/cgroup");
    b.namespace("user", None);
    let src = tempfile::tempdir().unwrap();
    let data = src.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("root-owned"), "r").unwrap();
    fs::write(data.join("u1000"), "u").unwrap();
    std::os::unix::fs::chown(data.join("u1000"), Some(1000), Some(1000)).unwrap();
    b.edit(|c| {
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(
            json!({"destination": "/idm", "type": "bind", "source": data,
            "options": ["bind", "idmap"]}),
        );
        mounts.push(
            json!({"destination": "/plain", "type": "bind", "source": data,
            "options": ["bind"]}),
        );
        // The mount's own mapping: on-disk 0 is host 101000, container 1000.
        mounts.push(
            json!({"destination": "/own", "type": "bind", "source": data,
            "options": ["rbind", "ridmap", "ro"],
            "uidMappings": [{"containerID": 0, "hostID": 101000, "size": 1000}],
            "gidMappings": [{"containerID": 0, "hostID": 101000, "size": 1000}]}),
        );
    });
    let out = rt.sh_output(
        &b,
        "stat -c 'idm %n %u:%g' /idm/root-owned /idm/u1000; \
         stat -c 'plain %n %u:%g' /plain/root-owned; \
         stat -c 'own %n %u:%g' /own/root-owned; \
         touch /idm/made-inside && echo made; touch /own/x 2>/dev/null || echo own-ro",
    );
    assert!(out.contains("idm /idm/root-owned 0:0"), "{out}");
    assert!(out.contains("idm /idm/u1000 1000:1000"), "{out}");
    // Without the idmap, host root is nobody in the container.
    assert!(out.contains("plain /plain/root-owned 65534:65534"), "{out}");
    assert!(out.contains("own /own/root-owned 1000:1000"), "{out}");
    assert!(out.contains("made"), "{out}");
    assert!(out.contains("own-ro"), "{out}");
    // Written as the container's root through the idmapped mount: host root.
    let meta = fs::metadata(data.join("made-inside")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0));

    // Mappings without the option are refused, naming the mount.
    let b2 = rt.bundle();
    b2.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/m", "type": "bind",
            "source": "/tmp", "options": ["bind"],
            "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}));
    });
    let id = rt.new_id("idm");
    rt.cmd(&["run", "--bundle", s(&b2.dir), &id])
        .fails()
        .stderr_mentions(&["/m", "idmap"]);
    // An idmapped mount without a user namespace or mappings: refused.
    let b3 = rt.bundle();
    b3.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/m", "type": "bind",
            "source": "/tmp", "options": ["bind", "idmap"]}));
    });
    let id = rt.new_id("idm");
    rt.cmd(&["run", "--bundle", s(&b3.dir), &id])
        .fails()
        .stderr_mentions(&["/m", "user namespace"]);
}

#[test]
fn time_namespace_offsets() {
    time_namespace_offsets_with(None);
}

/// A time namespace with a new user namespace whose root is not the host's: the offsets
/// are written from outside (init, non-dumpable, may not open its own /proc files).
#[test]
fn time_namespace_offsets_in_a_user_namespace() {
    time_namespace_offsets_with(Some(100000));
}

fn time_namespace_offsets_with(userns_root: Option<u32>) {
    if !Path::new("/proc/self/ns/time").exists() {
        return skip("kernel has no time namespaces");
    }
    let rt = Runtime::new();
    let b = rt.bundle();
    b.namespace("time", None);
    if let Some(host) = userns_root {
        b.namespace("user", None);
        b.edit(|c| {
            let map = json!([{"containerID": 0, "hostID": host, "size": 65536}]);
            c["linux"]["uidMappings"] = map.clone();
            c["linux"]["gidMappings"] = map;
        });
    }
    b.edit(|c| {
        c["linux"]["timeOffsets"] = json!({
            "monotonic": {"secs": 86400, "nanosecs": 0},
            "boottime": {"secs": 86400, "nanosecs": 0}
        });
    });
    let uptime = |text: &str| -> f64 { text.split_whitespace().next().unwrap().parse().unwrap() };
    let before = uptime(&fs::read_to_string("/proc/uptime").unwrap());
    let out = rt.sh_output(&b, "cat /proc/uptime; readlink /proc/self/ns/time");
    let after = uptime(&fs::read_to_string("/proc/uptime").unwrap());
    let inside = uptime(&out);
    assert!(
        inside >= before + 86400.0 - 1.0 && inside <= after + 86400.0 + 1.0,
        "uptime inside {inside}, host {before}..{after}: offset not applied"
    );
    assert!(
        !out.contains(&ns_of("self", "time")),
        "time ns is the host's:\n{out}"
    );
}

// ----- joining namespaces by path -----

struct Netns(String);
impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

#[test]
fn join_named_network_namespace() {
    assert!(
        Path::new("/usr/sbin/ip").exists()
            || Path::new("/sbin/ip").exists()
            || Path::new("/usr/bin/ip").exists(),
        "`ip` missing: install Debian's iproute2 package"
    );
    let name = unique("berth-netns");
    host("ip", &["netns", "add", &name]);
    let ns = Netns(name.clone());
    let path = format!("/var/run/netns/{}", ns.0);
    let ino = fs::metadata(&path).unwrap().ino();

    let rt = Runtime::new();
    let b = rt.bundle();
    b.namespace("network", Some(&path));
    let out = rt.sh_output(&b, "readlink /proc/self/ns/net");
    assert_eq!(out.trim(), format!("net:[{ino}]"), "did not join {path}");
}

#[test]
fn join_namespace_of_another_container() {
    let rt = Runtime::new();
    let a = rt.bundle();
    a.args(&["sleep", "1000"]).hostname("berth-shared-uts");
    let ca = rt.start_container(&a);

    let b = rt.bundle();
    b.no_hostname();
    b.namespace("uts", Some(&format!("/proc/{}/ns/uts", ca.pid)));
    b.namespace("ipc", Some(&format!("/proc/{}/ns/ipc", ca.pid)));
    let out = rt.sh_output(
        &b,
        "hostname; readlink /proc/self/ns/uts; readlink /proc/self/ns/ipc",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "berth-shared-uts", "{out}");
    assert_eq!(lines[1], ns_of(&ca.pid.to_string(), "uts"));
    assert_eq!(lines[2], ns_of(&ca.pid.to_string(), "ipc"));
    // The other container's hostname was not changed.
    let o = rt.exec(&ca.id, &["hostname"]);
    o.ok();
    assert_eq!(o.out(), "berth-shared-uts");
}

#[test]
fn join_namespace_wrong_type_is_refused() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["true"]);
    b.namespace(
        "network",
        Some(&format!("/proc/{}/ns/uts", std::process::id())),
    );
    let id = rt.new_id("wrongns");
    rt.create(&b, &id).fails();
    rt.assert_nothing_left(&id, Some(&b));
}

#[test]
fn join_namespace_not_a_namespace_file_is_refused() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["true"]);
    let cfg = b.config_path();
    b.namespace("network", Some(s(&cfg)));
    let id = rt.new_id("notns");
    rt.create(&b, &id).fails();
    rt.assert_nothing_left(&id, Some(&b));
}

#[test]
fn join_namespace_missing_path_is_refused() {
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["true"]);
    let missing = format!("/var/run/netns/{}", unique("berth-missing"));
    b.namespace("network", Some(&missing));
    let id = rt.new_id("missingns");
    rt.create(&b, &id).fails().stderr_mentions(&[
        &missing,
        "no such file",
        "not exist",
        "not found",
    ]);
    rt.assert_nothing_left(&id, Some(&b));
}

#[test]
fn rootfs_permissions_are_kept() {
    // The runtime must not chmod/chown the bundle's rootfs.
    let rt = Runtime::new();
    let b = rt.bundle();
    let before = fs::metadata(b.rootfs()).unwrap().permissions().mode();
    rt.sh_output(&b, "true");
    assert_eq!(
        fs::metadata(b.rootfs()).unwrap().permissions().mode(),
        before
    );
    assert!(b.rootfs().join("bin/busybox").exists());
}

#[test]
fn tmpfs_tmpcopyup_keeps_the_image_content() {
    let rt = Runtime::new();
    let b = rt.bundle();
    let etc = b.rootfs().join("etc/app");
    fs::create_dir_all(etc.join("sub")).unwrap();
    fs::write(etc.join("conf"), "image\n").unwrap();
    fs::write(etc.join("sub/deep"), "deep\n").unwrap();
    std::os::unix::fs::symlink("conf", etc.join("link")).unwrap();
    fs::set_permissions(etc.join("conf"), fs::Permissions::from_mode(0o640)).unwrap();
    b.add_mount(
        json!({"destination": "/etc/app", "type": "tmpfs", "source": "tmpfs",
                       "options": ["tmpcopyup", "mode=755"]}),
    );
    let out = rt.sh_output(
        &b,
        "cat /etc/app/conf /etc/app/sub/deep; readlink /etc/app/link; stat -c %a /etc/app/conf; \
         echo new > /etc/app/conf && cat /etc/app/conf; grep ' /etc/app ' /proc/mounts",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 6, "{out}");
    assert_eq!(
        &lines[..5],
        &["image", "deep", "conf", "640", "new"],
        "{out}"
    );
    assert!(lines[5].contains("tmpfs"), "{out}");
    // The image itself is untouched.
    assert_eq!(fs::read_to_string(etc.join("conf")).unwrap(), "image\n");
}

/// linux.netDevices (as runc 1.3): a host interface moves into the container's network
/// namespace under the name asked for, with its IPv4 and IPv6 addresses and up. The
/// "host" is a throwaway network namespace (berth-oci runs in it through nsenter).
#[test]
fn net_devices_move_with_their_addresses() {
    let ns = Netns(unique("berthnd"));
    host("ip", &["netns", "add", &ns.0]);
    host(
        "ip",
        &[
            "-n",
            &ns.0,
            "link",
            "add",
            "hostdev0",
            "type",
            "veth",
            "peer",
            "name",
            "hostdev0p",
        ],
    );
    host(
        "ip",
        &["-n", &ns.0, "addr", "add", "10.9.8.7/24", "dev", "hostdev0"],
    );
    host(
        "ip",
        &[
            "-n",
            &ns.0,
            "addr",
            "add",
            "fd00:9::7/64",
            "dev",
            "hostdev0",
        ],
    );
    let rt = Runtime::new();
    let b = rt.bundle();
    b.args(&["ip", "addr"]);
    b.edit(|c| c["linux"]["netDevices"] = json!({"hostdev0": {"name": "ctr9"}}));
    let id = rt.new_id("netdev");
    let inner = rt.command(["run", "--bundle", s(b.path()), id.as_str()]);
    let mut cmd = std::process::Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{}", ns.0))
        .arg(inner.get_program())
        .args(inner.get_args())
        .envs(inner.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .stdin(std::process::Stdio::null());
    let o = run_cmd(cmd);
    o.ok();
    let out = o.out();
    assert!(out.contains("ctr9"), "not renamed:\n{o}");
    assert!(out.contains("10.9.8.7/24"), "IPv4 address lost:\n{o}");
    assert!(out.contains("fd00:9::7/64"), "IPv6 address lost:\n{o}");
    assert!(
        out.lines().any(|l| l.contains("ctr9") && l.contains(",UP")),
        "not up:\n{o}"
    );
    // Not the host's any more.
    let left = host("ip", &["-n", &ns.0, "-o", "link"]);
    assert!(!left.contains("hostdev0:"), "still on the host:\n{left}");
    // An interface that does not exist: a clear error naming it.
    let b = rt.bundle();
    b.args(&["true"]);
    b.edit(|c| c["linux"]["netDevices"] = json!({"nosuchdev7": {}}));
    let id = rt.new_id("netdev");
    let o = rt.create(&b, &id);
    o.fails();
    o.stderr_mentions(&["nosuchdev7"]);
    rt.assert_nothing_left(&id, Some(&b));
}

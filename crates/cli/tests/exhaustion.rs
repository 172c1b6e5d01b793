//! Resource exhaustion (issue 19): a container that forks without end, fills its disk, or
//! floods its log, and a `load` or a `pull` that fills the disk, each within its limits, leaving the
//! engine usable and the store consistent. The disk tests put Berth's whole root on a small
//! tmpfs of their own, so the machine's disk is never what fills.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../../registry/tests/common/mod.rs"]
mod regcommon;

mod common;
use common::{RootfsTar, TestNetns, berth, ok};

const LINKS: &[&str] = &[
    "sh", "true", "sleep", "head", "cat", "dd", "yes", "echo", "ls",
];

struct Fixture {
    _t: tempfile::TempDir,
    root: PathBuf,
    dir: PathBuf,
    tmpfs: Option<PathBuf>,
    _ns: TestNetns,
}

impl Fixture {
    /// A root on the machine's disk, or (with `tmpfs_mb`) on a tmpfs of that size.
    fn new(tmpfs_mb: Option<u32>) -> Fixture {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_path_buf();
        let mut tmpfs = None;
        let root = match tmpfs_mb {
            Some(mb) => {
                let m = dir.join("small");
                std::fs::create_dir(&m).unwrap();
                let st = Command::new("mount")
                    .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
                    .arg(&m)
                    .status()
                    .unwrap();
                assert!(st.success(), "mount tmpfs");
                tmpfs = Some(m.clone());
                m.join("root")
            }
            None => dir.join("root"),
        };
        let tarball = dir.join("busybox.tar");
        RootfsTar::busybox(&["bin", "etc", "tmp", "data"], LINKS).write(&tarball);
        let ns = TestNetns::new("host");
        ns.host_berth(&root);
        let f = Fixture {
            _t: t,
            root,
            dir,
            tmpfs,
            _ns: ns,
        };
        f.ok(&["import", tarball.to_str().unwrap(), "busybox:latest"]);
        f
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&self.root, args)
    }

    /// A rootfs tarball with a layer of 64 MB of incompressible bytes.
    fn big_rootfs(&self) -> PathBuf {
        let mut big = RootfsTar::busybox(&["bin"], &["sh"]);
        let mut noise = vec![0u8; 64 << 20];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for b in noise.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        big.file("noise", &noise, 0o644);
        let rootfs = self.dir.join("big-rootfs.tar");
        big.write(&rootfs);
        rootfs
    }

    /// `what` (a 64 MB layer into the 40 MB tmpfs) failed naming the full disk, the stored
    /// images are untouched, nothing of it is left taking space (no temp files, no partial
    /// download, no snapshot), and the engine still works.
    fn failed_for_space(&self, o: &std::process::Output, what: &str) {
        assert!(!o.status.success(), "{what}: a 64 MB layer fit in 40 MB");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("No space left on device"), "{what}: {err}");
        assert_eq!(
            self.ok(&["images", "--format", "{{.Repository}}"]),
            "busybox\n"
        );
        assert!(
            self.avail() > 20 << 20,
            "the failed {what} left {} bytes free",
            self.avail()
        );
        self.still_usable();
    }

    /// Bytes free on the tmpfs.
    fn avail(&self) -> u64 {
        let o = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.tmpfs.as_ref().unwrap())
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse::<u64>().ok())
            .unwrap_or(0)
    }

    /// The engine still answers and runs containers.
    fn still_usable(&self) {
        self.ok(&["ps", "-a"]);
        self.ok(&["images"]);
        assert_eq!(
            self.ok(&[
                "run",
                "--rm",
                "--network",
                "none",
                "busybox",
                "echo",
                "alive"
            ]),
            "alive\n"
        );
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let ids = berth(&self.root, &["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = berth(&self.root, &["rm", "-f", id]);
        }
        if let Some(m) = &self.tmpfs {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// `pids.current` of the container's cgroup (v1 `pids` hierarchy or v2).
fn pids_current(id: &str) -> Option<u64> {
    pids_file(id, "pids.current")?.trim().parse().ok()
}

/// How many forks the container's pids limit refused (`max` of `pids.events`).
fn pids_refused(id: &str) -> u64 {
    pids_file(id, "pids.events")
        .and_then(|e| {
            e.lines()
                .find_map(|l| l.strip_prefix("max "))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A file of the container's pids cgroup.
fn pids_file(id: &str, file: &str) -> Option<String> {
    for base in [
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/unified",
    ] {
        let out = Command::new("find")
            .args([base, "-maxdepth", "4", "-type", "d", "-name"])
            .arg(format!("*{id}*"))
            .output()
            .ok()?;
        for d in String::from_utf8_lossy(&out.stdout).lines() {
            if let Ok(v) = std::fs::read_to_string(Path::new(d).join(file)) {
                return Some(v);
            }
        }
    }
    None
}

/// A fork bomb inside `--pids-limit 64` stays at 64 tasks; the engine goes on answering, and
/// `rm -f` ends it.
#[test]
fn a_fork_bomb_stays_within_its_pids_limit() {
    let f = Fixture::new(None);
    let id = f
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--pids-limit",
            "64",
            "busybox",
            "sh",
            "-c",
            // pid 1 becomes the sleep without forking: the container outlives a bomb whose
            // shells exit when a fork fails (ash does), which could end it between samples.
            "b() { b | b & }; b; exec sleep 60",
        ])
        .trim()
        .to_string();
    let mut peak = 0;
    assert!(
        wait_until(Duration::from_secs(20), || {
            peak = peak.max(pids_current(&id).unwrap_or(0));
            peak >= 60 || pids_refused(&id) > 0
        }),
        "the bomb never reached the limit (peak {peak}, {} forks refused)",
        pids_refused(&id)
    );
    std::thread::sleep(Duration::from_millis(500));
    let now = pids_current(&id).unwrap_or(0);
    assert!(now <= 64, "{now} tasks for a limit of 64");
    f.still_usable();
    f.ok(&["rm", "-f", &id]);
    assert_eq!(f.ok(&["ps", "-aq"]), "");
}

/// A container that fills its disk gets ENOSPC; the engine, its database and its logs go on
/// working on the full filesystem, and removing the container gives the space back.
#[test]
fn a_container_filling_the_disk_leaves_the_engine_working() {
    let f = Fixture::new(Some(48));
    let o = berth(
        &f.root,
        &[
            "run",
            "--name",
            "filler",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "dd if=/dev/zero of=/data/big bs=1M count=200; echo dd-ended",
        ],
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(all.contains("No space left on device"), "{all}");
    assert!(all.contains("dd-ended"), "{all}");
    // The state database and the store still answer on the full filesystem.
    f.ok(&["ps", "-a"]);
    f.ok(&["inspect", "filler"]);
    f.ok(&["logs", "filler"]);
    f.ok(&["rm", "filler"]);
    f.still_usable();
}

/// A `load` bigger than the disk fails naming the problem, leaves nothing half-made, and the
/// images already stored are untouched.
#[test]
fn a_load_that_fills_the_disk_fails_cleanly() {
    let f = Fixture::new(Some(40));
    let rootfs = f.big_rootfs();
    let o = berth(&f.root, &["import", rootfs.to_str().unwrap(), "big:1"]);
    f.failed_for_space(&o, "import");
}

/// A `pull` of an image bigger than the disk fails naming the problem, leaves no partial
/// download or snapshot taking space, and the images already stored are untouched.
#[test]
fn a_pull_that_fills_the_disk_fails_cleanly() {
    let f = Fixture::new(Some(40));
    let Some(reg) = regcommon::Registry::start_in(&f._ns.path()) else {
        return;
    };
    // Another root, on the machine's disk, pushes the 64 MB image to the registry.
    let pusher = f.dir.join("pusher");
    f._ns.host_berth(&pusher);
    let image = format!("{}/big/noise:1", reg.addr);
    ok(
        &pusher,
        &["import", f.big_rootfs().to_str().unwrap(), &image],
    );
    ok(&pusher, &["push", &image]);
    let o = berth(&f.root, &["pull", "-q", &image]);
    f.failed_for_space(&o, "pull");
    let ids = berth(&pusher, &["images", "-q"]);
    for id in String::from_utf8_lossy(&ids.stdout).lines() {
        let _ = berth(&pusher, &["rmi", "-f", id]);
    }
}

/// A log flood (`yes`: 2-byte lines as fast as they come) under `--log-opt max-size=1m
/// max-file=2`: the log stays within its two files of 1 MiB while the engine answers and
/// runs containers, `logs --tail` reads the newest lines, and `rm -f` ends it. (How fast the
/// monitor logs a flood is measured by `bench/log-flood.sh`.)
#[test]
fn a_log_flood_stays_within_max_size() {
    let f = Fixture::new(None);
    let id = f
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--log-opt",
            "max-size=1m",
            "--log-opt",
            "max-file=2",
            "busybox",
            "yes",
        ])
        .trim()
        .to_string();
    let log = PathBuf::from(
        f.ok(&["inspect", "--format", "{{.LogPath}}", &id])
            .trim()
            .to_string(),
    );
    let rotated = PathBuf::from(format!("{}.1", log.display()));
    // Rotated at least twice: the oldest file was dropped once.
    let mut seen_rotations = 0;
    let mut last_len = 0;
    assert!(
        wait_until(Duration::from_secs(120), || {
            let len = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            if len < last_len && rotated.exists() {
                seen_rotations += 1;
            }
            last_len = len;
            seen_rotations >= 2
        }),
        "the log never rotated twice"
    );
    f.still_usable();
    for p in [&log, &rotated] {
        let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        assert!(len <= 1 << 20, "{}: {len} bytes", p.display());
    }
    assert!(!PathBuf::from(format!("{}.2", log.display())).exists());
    assert_eq!(f.ok(&["logs", "--tail", "3", &id]), "y\ny\ny\n");
    f.ok(&["rm", "-f", &id]);
    assert!(!log.exists());
}

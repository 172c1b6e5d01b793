//! Races between two commands, and commands killed half-way (issue 19's findings), each
//! made certain with a pause point (`BERTH_TEST_PAUSE=POINT:DIR`: reaching POINT writes
//! `DIR/reached` and waits for `DIR/go`) instead of being left to chance.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{BusyboxRoot, RootfsTar, berth_command};

const LINKS: &[&str] = &["sh", "sleep", "true", "cat", "echo"];

/// A busybox root (`common::BusyboxRoot`) with the pause-point helpers below.
struct Fixture(BusyboxRoot);

impl std::ops::Deref for Fixture {
    type Target = BusyboxRoot;
    fn deref(&self) -> &BusyboxRoot {
        &self.0
    }
}

impl Fixture {
    fn new() -> Fixture {
        Fixture(BusyboxRoot::new(&["bin", "etc", "tmp"], LINKS))
    }

    /// A fresh gate directory for one pause point.
    fn gate(&self, name: &str) -> PathBuf {
        let g = self.dir.join(name);
        std::fs::create_dir(&g).unwrap();
        g
    }

    /// `berth ARGS` in the background, pausing at `point` (gate `gate`).
    fn paused(&self, point: &str, gate: &Path, args: &[&str]) -> Child {
        let c = berth_command(&self.root)
            .args(args)
            .env("BERTH_TEST_PAUSE", format!("{point}:{}", gate.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert!(
            wait_until(|| gate.join("reached").exists()),
            "{args:?} never reached {point}"
        );
        c
    }

    /// `berth ARGS` in the background.
    fn background(&self, args: &[&str]) -> Child {
        berth_command(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Overlay mounts under this fixture's root.
    fn mounts(&self) -> Vec<String> {
        let root = self.root.display().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&root))
            .map(String::from)
            .collect()
    }

    /// Container directories left in the store.
    fn container_dirs(&self) -> usize {
        std::fs::read_dir(self.root.join("containers"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn go(gate: &Path) {
    std::fs::write(gate.join("go"), "").unwrap();
}

fn finish(c: Child) -> (i32, String, String) {
    let o = c.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn kill9(c: &mut Child) {
    Command::new("kill")
        .args(["-9", &c.id().to_string()])
        .status()
        .unwrap();
    let _ = c.wait();
}

/// `rm -f X` while X's monitor has locked it but not yet looked for a removal: the monitor
/// gives up with docker's message, and `rm` removes the container. Found by issue 19 as
/// "another monitor is starting it" / raw path errors / EBUSY from `rm`.
#[test]
fn rm_racing_a_starting_monitor_wins_with_a_clear_message() {
    let f = Fixture::new();
    let g = f.gate("g1");
    let run = f.paused(
        "monitor-locked",
        &g,
        &[
            "run",
            "-d",
            "--name",
            "x",
            "--network",
            "none",
            "busybox",
            "sleep",
            "60",
        ],
    );
    let rm = f.background(&["rm", "-f", "x"]);
    // rm has marked it and waits for the monitor's lock.
    std::thread::sleep(Duration::from_millis(300));
    go(&g);
    let (rc, _, err) = finish(run);
    assert_eq!(rc, 125, "{err}");
    assert!(
        err.contains("container is marked for removal and cannot be started"),
        "{err}"
    );
    let (rc, _, err) = finish(rm);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(f.ok(&["ps", "-aq"]), "");
    assert_eq!(f.container_dirs(), 0);
    assert_eq!(f.mounts(), Vec::<String>::new());
    // The name is free again.
    f.ok(&[
        "run",
        "-d",
        "--name",
        "x",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ]);
}

/// `rm -f X` while `run` is still making X (recorded, root filesystem not yet prepared):
/// `rm` waits for the container to be whole, then removes it, and `run` says why it could
/// not start it (issue 19 saw raw `rootfs.json`/`resolv.conf` ENOENT and `rm` failing with
/// EBUSY or ENOTEMPTY from this window).
#[test]
fn rm_racing_create_waits_for_the_container_to_be_whole() {
    let f = Fixture::new();
    let g = f.gate("g0");
    let run = f.paused(
        "create-recorded",
        &g,
        &[
            "run",
            "-d",
            "--name",
            "w",
            "--network",
            "none",
            "busybox",
            "sleep",
            "60",
        ],
    );
    let rm = f.background(&["rm", "-f", "w"]);
    std::thread::sleep(Duration::from_millis(300));
    go(&g);
    let (rc, _, err) = finish(rm);
    assert_eq!(rc, 0, "{err}");
    let (rc, _, err) = finish(run);
    assert_eq!(rc, 125, "{err}");
    assert!(
        err.contains("marked for removal") || err.to_lowercase().contains("no such container"),
        "{err}"
    );
    assert_eq!(f.ok(&["ps", "-aq"]), "");
    assert_eq!(f.container_dirs(), 0);
    assert_eq!(f.mounts(), Vec::<String>::new());
}

/// `rm -f X` while X's monitor is already past the removal check: the monitor starts it,
/// `rm` kills it as soon as it runs and removes it; no error on either side.
#[test]
fn rm_racing_a_committed_monitor_kills_and_removes() {
    let f = Fixture::new();
    let g = f.gate("g2");
    let run = f.paused(
        "monitor-committed",
        &g,
        &[
            "run",
            "-d",
            "--name",
            "y",
            "--network",
            "none",
            "busybox",
            "sleep",
            "60",
        ],
    );
    let rm = f.background(&["rm", "-f", "y"]);
    std::thread::sleep(Duration::from_millis(300));
    go(&g);
    let (rc, _, err) = finish(rm);
    assert_eq!(rc, 0, "{err}");
    let (rc, out, err) = finish(run);
    assert!(rc == 0 || rc == 125, "{rc} {err}");
    if rc == 0 {
        assert_eq!(out.trim().len(), 64, "{out}");
    }
    assert_eq!(f.ok(&["ps", "-aq"]), "");
    assert_eq!(f.container_dirs(), 0);
    assert_eq!(f.mounts(), Vec::<String>::new());
}

/// `rm -f` killed after the container's directory went but before its record did: the next
/// command finishes the removal (found by issue 19 as a ghost in `ps -a` whose `start`
/// rewrote its exit code to 127).
#[test]
fn an_interrupted_rm_is_finished_by_the_next_command() {
    let f = Fixture::new();
    f.ok(&[
        "create",
        "--name",
        "z",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    let g = f.gate("g3");
    let mut rm = f.paused("destroy-dir-removed", &g, &["rm", "-f", "z"]);
    kill9(&mut rm);
    assert_eq!(f.ok(&["ps", "-aq"]), "", "a ghost in ps -a");
    assert_eq!(f.container_dirs(), 0);
    let (rc, _, err) = finish(f.background(&["start", "z"]));
    assert_eq!(rc, 1, "{err}");
    assert!(err.to_lowercase().contains("no such container: z"), "{err}");
    f.ok(&[
        "create",
        "--name",
        "z",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    // Killed one step later, after the record went and before the state directory did
    // (the crash matrix found it: `system check` then named an orphaned monitor state):
    // the same `rm -f` again, which finds no container, removes that directory.
    let g = f.gate("g3b");
    let mut rm = f.paused("destroy-record-removed", &g, &["rm", "-f", "z"]);
    kill9(&mut rm);
    f.ok(&["rm", "-f", "z"]);
    let check = f.ok(&["system", "check"]);
    assert!(check.contains("No problems"), "{check}");
}

/// `run --rm` killed after its `create`, before its monitor took over: the user's `--rm`
/// is honoured by the next command (found by issue 19 as a `Created` container holding its
/// name and its overlay mount). A `run -d` killed there leaves a created container, unmounted.
#[test]
fn a_run_killed_before_its_monitor_keeps_its_word() {
    let f = Fixture::new();
    let g = f.gate("g4");
    let mut run = f.paused(
        "start-begin",
        &g,
        &[
            "run",
            "--rm",
            "--name",
            "gone",
            "--network",
            "none",
            "busybox",
            "true",
        ],
    );
    assert!(!f.mounts().is_empty(), "run mounts the rootfs at create");
    kill9(&mut run);
    assert_eq!(f.ok(&["ps", "-aq"]), "");
    assert_eq!(f.mounts(), Vec::<String>::new());
    assert_eq!(f.container_dirs(), 0);
    f.ok(&[
        "run",
        "--rm",
        "--name",
        "gone",
        "--network",
        "none",
        "busybox",
        "true",
    ]);

    let g = f.gate("g5");
    let mut run = f.paused(
        "start-begin",
        &g,
        &[
            "run",
            "-d",
            "--name",
            "kept",
            "--network",
            "none",
            "busybox",
            "sleep",
            "60",
        ],
    );
    kill9(&mut run);
    assert_eq!(
        f.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]),
        "kept created\n"
    );
    assert_eq!(f.mounts(), Vec::<String>::new());
    f.ok(&["start", "kept"]);
    assert_eq!(
        f.ok(&["ps", "--format", "{{.Names}} {{.State}}"]),
        "kept running\n"
    );
}

/// `volume rm V` racing `run -v V:/data`: removed after `run` made the volume but before its
/// container was recorded, the volume is made again and the container runs with it (issue
/// 19 saw a raw `…/_data: No such file or directory`); removed once the container is
/// recorded, `volume rm` refuses (in use) and the container keeps its data.
#[test]
fn volume_rm_racing_run_never_pulls_the_volume_from_under_it() {
    let f = Fixture::new();
    let g = f.gate("g6");
    let run = f.paused(
        "create-volumes-made",
        &g,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "v1:/data",
            "busybox",
            "sh",
            "-c",
            "echo hi > /data/f && cat /data/f",
        ],
    );
    f.ok(&["volume", "rm", "v1"]);
    go(&g);
    let (rc, out, err) = finish(run);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(out, "hi\n");
    assert_eq!(f.ok(&["volume", "ls", "-q"]), "v1\n");

    let g = f.gate("g7");
    let run = f.paused(
        "create-recorded",
        &g,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "v1:/data",
            "busybox",
            "cat",
            "/data/f",
        ],
    );
    let (rc, _, err) = finish(f.background(&["volume", "rm", "v1"]));
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("volume is in use"), "{err}");
    go(&g);
    let (rc, out, err) = finish(run);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(out, "hi\n");
    f.ok(&["volume", "rm", "v1"]);
}

/// A `load` killed after it stored its blobs, before any image record names them: `system df`
/// counts them as reclaimable (issue 19 saw ~176 MB reported as 0 B), `image prune` frees
/// them, and loading again works.
#[test]
fn a_killed_load_leaves_reclaimable_bytes_that_prune_frees() {
    let f = Fixture::new();
    let tar = f.dir.join("saved.tar");
    f.ok(&["save", "-o", tar.to_str().unwrap(), "busybox"]);
    f.ok(&["rmi", "busybox"]);
    let images_row = |f: &Fixture| {
        f.ok(&["system", "df", "--format", "{{.Type}} {{.Reclaimable}}"])
            .lines()
            .find(|l| l.starts_with("Images"))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        images_row(&f).starts_with("Images 0B"),
        "{}",
        images_row(&f)
    );
    let g = f.gate("g8");
    let mut load = f.paused(
        "load-blobs-written",
        &g,
        &["load", "-i", tar.to_str().unwrap()],
    );
    kill9(&mut load);
    let row = images_row(&f);
    assert!(
        !row.starts_with("Images 0B"),
        "the killed load's blobs are not counted"
    );
    assert!(row.contains("(100%)"), "{row}");
    f.ok(&["image", "prune", "-f"]);
    assert!(
        images_row(&f).starts_with("Images 0B"),
        "{}",
        images_row(&f)
    );
    f.ok(&["load", "-i", tar.to_str().unwrap()]);
    f.ok(&["run", "--rm", "--network", "none", "busybox", "true"]);
}

/// `system check` after the kinds of damage a crash or a bad disk leaves (issue 17): a
/// corrupt layer blob of an image no container uses, a busybox snapshot gone, a container
/// whose directory is gone, a directory of no container, a volume directory without its
/// record. Each is named; `--repair` removes the damaged image, unpacks busybox's layer
/// again from its blob, drops the dead record and the stray directory, records the volume
/// again with its data; then everything checks clean and busybox runs.
#[test]
fn system_check_names_the_damage_and_repairs_it() {
    let f = Fixture::new();
    assert!(f.ok(&["system", "check"]).contains("No problems"));
    // A second image, whose layer blob is then corrupted.
    let other = f.dir.join("other.tar");
    RootfsTar::busybox(&["bin", "other"], &["true"]).write(&other);
    f.ok(&["import", other.to_str().unwrap(), "other:1"]);
    let other_layer = {
        let v: serde_json::Value =
            serde_json::from_str(&f.ok(&["image", "inspect", "other:1"])).unwrap();
        v[0]["RootFS"]["Layers"][0].as_str().unwrap().to_string()
    };
    // The layer blob of an import is its uncompressed tar or a gzip of it: find the blob
    // that is neither busybox's nor small (configs and manifests are small).
    let blobs = f.root.join("content/blobs/sha256");
    let busybox_blobs: Vec<String> = {
        let v: serde_json::Value =
            serde_json::from_str(&f.ok(&["image", "inspect", "busybox"])).unwrap();
        v[0]["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                l.as_str()
                    .unwrap()
                    .trim_start_matches("sha256:")
                    .to_string()
            })
            .collect()
    };
    let big = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::metadata(p).unwrap().len() > 100_000)
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            !busybox_blobs.contains(&n)
        })
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .expect("the other image's layer blob");
    let mut data = std::fs::read(&big).unwrap();
    data[5000] ^= 0xff;
    std::fs::write(&big, data).unwrap();
    let _ = other_layer;
    // A container (made now, while busybox is whole) whose directory will be gone.
    let gone = f
        .ok(&[
            "create",
            "--name",
            "gone",
            "--network",
            "none",
            "busybox",
            "true",
        ])
        .trim()
        .to_string();
    // busybox's snapshot gone.
    let snaps = f.root.join("snapshots");
    let busybox_snapshot = std::fs::read_dir(&snaps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read_to_string(p.join("snapshot.json"))
                .unwrap_or_default()
                .contains(&busybox_blobs[0])
        })
        .expect("busybox's snapshot");
    std::fs::remove_dir_all(&busybox_snapshot).unwrap();
    // The container's directory gone; a directory of no container; a volume without its
    // record.
    std::fs::remove_dir_all(f.root.join("containers").join(&gone)).unwrap();
    let stray = f.root.join("containers").join("f".repeat(64));
    std::fs::create_dir_all(stray.join("rootfs")).unwrap();
    let vol = f.root.join("volumes/keepme/_data");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("data"), "precious").unwrap();

    let (rc, out, err) = finish(f.background(&["system", "check"]));
    assert_eq!(rc, 1, "{out}{err}");
    assert!(err.contains("problems found"), "{err}");
    for needle in [
        "is corrupt",
        "missing or damaged",
        "container gone",
        "belongs to no container",
        "has no record",
    ] {
        assert!(
            out.contains(needle) || out.contains(&needle.replace("is corrupt", "digest mismatch")),
            "{needle} in\n{out}"
        );
    }
    let (rc, out, err) = finish(f.background(&["system", "check", "--repair"]));
    assert_eq!(rc, 0, "{out}{err}");
    assert!(!out.contains("left:"), "{out}");
    assert!(f.ok(&["system", "check"]).contains("No problems"));
    assert_eq!(
        f.ok(&["images", "--format", "{{.Repository}}"]),
        "busybox\n"
    );
    assert_eq!(f.ok(&["ps", "-aq"]), "");
    assert!(!stray.exists());
    assert_eq!(
        std::fs::read_to_string(vol.join("data")).unwrap(),
        "precious"
    );
    assert!(f.ok(&["volume", "ls", "-q"]).contains("keepme"));
    f.ok(&["run", "--rm", "--network", "none", "busybox", "true"]);
}

/// `wait --condition` (docker's): `next-exit` does not return for an exit that already
/// happened, only for the next one; `removed` returns once the container is gone, with its
/// last exit code; a bad condition is named.
#[test]
fn wait_conditions_next_exit_and_removed() {
    let f = Fixture::new();
    let (rc, _, err) = finish(f.background(&[
        "run",
        "--name",
        "w",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]));
    assert_eq!(rc, 3, "{err}");
    let next = f.background(&["wait", "--condition", "next-exit", "w"]);
    let removed = f.background(&["wait", "--condition", "removed", "w"]);
    std::thread::sleep(Duration::from_millis(400));
    let mut next = next;
    assert!(
        next.try_wait().unwrap().is_none(),
        "next-exit returned for the old exit"
    );
    f.ok(&["start", "w"]);
    let (rc, out, err) = finish(next);
    assert_eq!((rc, out.as_str()), (0, "3\n"), "{err}");
    let mut removed = removed;
    assert!(
        removed.try_wait().unwrap().is_none(),
        "removed returned early"
    );
    f.ok(&["rm", "w"]);
    let (rc, out, err) = finish(removed);
    assert_eq!((rc, out.as_str()), (0, "3\n"), "{err}");
    f.ok(&[
        "create",
        "--name",
        "w2",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    let (rc, _, err) = finish(f.background(&["wait", "--condition", "soon", "w2"]));
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("\"soon\""), "{err}");
}

/// `logs -f` turning from what the file holds to following it while the container writes:
/// every line is shown once. (docker-py's `containers.run` follows the logs right after
/// `start`; CI saw it lose the container's last line, which was written between the read
/// of the file and the follow's open of it.) The API's logs are the same engine call.
#[test]
fn a_line_written_as_logs_starts_following_is_shown() {
    let f = Fixture::new();
    f.ok(&[
        "run",
        "-d",
        "--name",
        "l",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo first; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo second; echo third",
    ]);
    assert!(wait_until(|| f.ok(&["logs", "l"]) == "first\n"));
    let g = f.gate("g-logs");
    let follow = f.paused("logs-read", &g, &["logs", "-f", "l"]);
    f.ok(&["exec", "l", "sh", "-c", ": > /tmp/go"]);
    assert!(wait_until(|| f.ok(&["logs", "l"]).ends_with("third\n")));
    assert!(wait_until(|| f
        .ok(&["inspect", "-f", "{{.State.Status}}", "l"])
        .trim()
        == "exited"));
    std::fs::write(g.join("go"), "").unwrap();
    let (rc, out, err) = finish(follow);
    assert_eq!((rc, out.as_str()), (0, "first\nsecond\nthird\n"), "{err}");
}

/// `run --rm` killed after it took its new container's lock (its monitor state directory
/// made) and before the container was recorded (the crash matrix found it: `system check`
/// then named a monitor state that belongs to no container, after the next `run`). The next
/// command that creates a container removes such a directory once nothing holds its lock.
#[test]
fn a_create_killed_before_its_record_leaves_no_state_behind() {
    let f = Fixture::new();
    let g = f.gate("g-locked");
    let args = [
        "run",
        "--rm",
        "--name",
        "r",
        "--network",
        "none",
        "busybox",
        "true",
    ];
    let mut run = f.paused("create-locked", &g, &args);
    kill9(&mut run);
    f.ok(&args);
    let check = f.ok(&["system", "check"]);
    assert!(check.contains("No problems"), "{check}");
}

//! The crash-kill matrix (issue 19): `kill -9` of a command at a random moment, then the
//! same command again, then `berth system check`, which must find nothing: no corruption,
//! nothing leaked (mounts, monitors, state, content) once the next command has run.
//!
//! The suite runs a few trials per operation (`CRASH_TRIALS`, default 4);
//! `bench/crash-matrix.sh` runs this same test with a hundred and prints the table.
//! The kill moments come from a fixed seed (`CRASH_SEED`), spread over each operation's own
//! duration (measured first), so a failure can be replayed. In the commands, `REG` is a local
//! docker-registry in the test's namespace (pull and push are skipped without one), `CTX` a build context, `SAVED`
//! a saved image and `TRIAL` the trial's number.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../registry/tests/common/mod.rs"]
mod regcommon;

mod common;
use common::{BusyboxRoot, berth, berth_command};

const LINKS: &[&str] = &["sh", "true", "sleep", "echo", "touch", "dd"];

/// A busybox root (`common::BusyboxRoot`) with the kill helpers below.
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

    fn quiet(&self, args: &[&str]) {
        let _ = berth(&self.root, args);
    }

    /// `berth ARGS` killed with SIGKILL after `after` (or left to finish if it is faster).
    fn killed(&self, args: &[&str], after: Duration) {
        let mut c = berth_command(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while t.elapsed() < after {
            if c.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = Command::new("kill")
            .args(["-9", &c.id().to_string()])
            .status();
        let _ = c.wait();
    }

    /// How long `berth ARGS` takes when left alone.
    fn duration(&self, args: &[&str]) -> Duration {
        let t = Instant::now();
        self.quiet(args);
        t.elapsed()
    }

    /// `system check` finds nothing; the problems otherwise.
    fn check(&self) -> Result<(), String> {
        let o = berth(&self.root, &["system", "check", "-q"]);
        if o.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ))
        }
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// One operation of the matrix: set up, the command to kill, the command "again", the clean
/// up before the next trial.
struct Op {
    name: &'static str,
    setup: &'static [&'static [&'static str]],
    command: &'static [&'static str],
    /// Run quietly before `again` (what a user would wait for first).
    settle: &'static [&'static [&'static str]],
    again: &'static [&'static str],
    /// Exit codes `again` may have (the killed command may have finished its job).
    again_ok: &'static [i32],
    cleanup: &'static [&'static [&'static str]],
}

const RUN_D: &[&str] = &[
    "run",
    "-d",
    "--name",
    "c",
    "--network",
    "none",
    "busybox",
    "sleep",
    "60",
];

const OPS: &[Op] = &[
    Op {
        name: "run -d",
        setup: &[],
        command: RUN_D,
        settle: &[],
        again: &["rm", "-f", "c"],
        again_ok: &[0],
        cleanup: &[RUN_D, &["rm", "-f", "c"]],
    },
    Op {
        name: "run --rm",
        setup: &[],
        command: &[
            "run",
            "--rm",
            "--name",
            "r",
            "--network",
            "none",
            "busybox",
            "true",
        ],
        // A monitor that started before the kill still runs and removes the container.
        settle: &[&["GONE", "r"]],
        again: &[
            "run",
            "--rm",
            "--name",
            "r",
            "--network",
            "none",
            "busybox",
            "true",
        ],
        again_ok: &[0],
        cleanup: &[],
    },
    Op {
        name: "rm -f",
        setup: &[RUN_D],
        command: &["rm", "-f", "c"],
        settle: &[],
        again: &["rm", "-f", "c"],
        again_ok: &[0],
        cleanup: &[],
    },
    Op {
        name: "commit",
        setup: &[RUN_D, &["exec", "c", "touch", "/tmp/changed"]],
        command: &["commit", "c", "snap:1"],
        settle: &[],
        again: &["commit", "c", "snap:1"],
        again_ok: &[0],
        cleanup: &[&["rm", "-f", "c"], &["rmi", "snap:1"]],
    },
    Op {
        name: "load",
        setup: &[&["rmi", "-f", "saved:1"]],
        command: &["load", "-i", "SAVED"],
        settle: &[],
        again: &["load", "-i", "SAVED"],
        again_ok: &[0],
        cleanup: &[],
    },
    Op {
        name: "pull",
        // The image's 4 MiB layer is in no other image: every trial downloads it.
        setup: &[&["rmi", "-f", "REG/crash/pull:1"]],
        command: &["pull", "-q", "REG/crash/pull:1"],
        settle: &[],
        again: &["pull", "-q", "REG/crash/pull:1"],
        again_ok: &[0],
        cleanup: &[],
    },
    Op {
        name: "push",
        // A repository of its own per trial (its layers mounted from the pull's).
        setup: &[&["tag", "crashsrc:1", "REG/crash/push-TRIAL:1"]],
        command: &["push", "REG/crash/push-TRIAL:1"],
        settle: &[],
        again: &["push", "REG/crash/push-TRIAL:1"],
        again_ok: &[0],
        cleanup: &[&["rmi", "REG/crash/push-TRIAL:1"]],
    },
    Op {
        name: "build",
        setup: &[],
        command: &[
            "build",
            "-q",
            "--no-cache",
            "--network",
            "none",
            "-t",
            "crashb:1",
            "CTX",
        ],
        settle: &[],
        again: &[
            "build",
            "-q",
            "--no-cache",
            "--network",
            "none",
            "-t",
            "crashb:1",
            "CTX",
        ],
        again_ok: &[0],
        cleanup: &[&["rmi", "-f", "crashb:1"], &["builder", "prune", "-f"]],
    },
    Op {
        name: "volume rm",
        setup: &[&["volume", "create", "v"]],
        command: &["volume", "rm", "v"],
        settle: &[],
        again: &["volume", "rm", "-f", "v"],
        again_ok: &[0, 1],
        cleanup: &[],
    },
];

#[test]
fn kill_9_at_any_moment_then_the_next_command_leaves_a_sound_store() {
    let trials: u64 = std::env::var("CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let mut rng = Rng(std::env::var("CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_cafe_f00d_d00d));
    let f = Fixture::new();
    let saved = f.dir.join("saved.tar");
    f.ok(&["tag", "busybox", "saved:1"]);
    f.ok(&["save", "-o", saved.to_str().unwrap(), "saved:1"]);
    let ctx = f.dir.join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo built > /built\nRUN touch /again\n",
    )
    .unwrap();
    // An image with a layer of its own (4 MiB of random bytes) in a local registry, for
    // pull and push; then only the registry has it.
    let reg = regcommon::Registry::start_in(&f.ns.path());
    if let Some(reg) = &reg {
        f.ok(&[
            "run",
            "--name",
            "src",
            "--network",
            "none",
            "busybox",
            "dd",
            "if=/dev/urandom",
            "of=/blob",
            "bs=1M",
            "count=4",
        ]);
        f.ok(&["commit", "src", "crashsrc:1"]);
        f.ok(&["rm", "src"]);
        let pull = format!("{}/crash/pull:1", reg.addr);
        f.ok(&["tag", "crashsrc:1", &pull]);
        f.ok(&["push", &pull]);
        f.ok(&["rmi", &pull]);
    }
    let trial_no = std::cell::Cell::new(0u64);
    let subst = |a: &[&str]| -> Vec<String> {
        a.iter()
            .map(|s| match *s {
                "SAVED" => saved.display().to_string(),
                "CTX" => ctx.display().to_string(),
                s => {
                    let s = s.replace("TRIAL", &trial_no.get().to_string());
                    match &reg {
                        Some(reg) => s.replace("REG", &reg.addr),
                        None => s,
                    }
                }
            })
            .collect()
    };
    let mut table = vec![];
    let mut failures = vec![];
    for op in OPS {
        if reg.is_none() && op.command.iter().any(|a| a.contains("REG")) {
            eprintln!("{}: skipped (no docker-registry)", op.name);
            continue;
        }
        trial_no.set(u64::MAX);
        let quiet = |a: &[&str]| {
            let v = subst(a);
            let v: Vec<&str> = v.iter().map(String::as_str).collect();
            f.quiet(&v);
        };
        // The operation's own length, to spread the kills over it.
        for s in op.setup {
            quiet(s);
        }
        let span = f
            .duration(
                &subst(op.command)
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            )
            .as_micros() as u64
            + 1;
        for c in op.cleanup {
            quiet(c);
        }
        let mut bad = 0;
        for trial in 0..trials {
            trial_no.set(trial);
            let cmd = subst(op.command);
            let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
            let again = subst(op.again);
            let again: Vec<&str> = again.iter().map(String::as_str).collect();
            for s in op.setup {
                quiet(s);
            }
            let at = Duration::from_micros(rng.below(span * 3 / 2));
            f.killed(&cmd, at);
            for s in op.settle {
                match s {
                    ["GONE", name] => {
                        let t = Instant::now();
                        while berth(&f.root, &["inspect", name]).status.success()
                            && t.elapsed() < Duration::from_secs(10)
                        {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                    s => f.quiet(s),
                }
            }
            let o = berth(&f.root, &again);
            let code = o.status.code().unwrap_or(-1);
            let mut problem = None;
            if !op.again_ok.contains(&code) {
                problem = Some(format!(
                    "`{}` again exited {code}: {}",
                    op.again.join(" "),
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
            for c in op.cleanup {
                quiet(c);
            }
            // The next command a user would type.
            f.quiet(&["ps", "-a"]);
            if problem.is_none()
                && let Err(e) = f.check()
            {
                problem = Some(format!("system check: {e}"));
            }
            if let Some(p) = problem {
                bad += 1;
                failures.push(format!("{} trial {trial} (killed at {at:?}): {p}", op.name));
                // Leave the next trial a sound store.
                f.quiet(&["system", "check", "--repair"]);
            }
        }
        table.push(format!("| {} | {trials} | {} µs | {bad} |", op.name, span));
    }
    println!("| operation | trials | its length | failures |\n|---|---|---|---|");
    for row in &table {
        println!("{row}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A container whose monitor was killed (issue 19): the next command's adopter takes it
/// over. Its output pipes outlived the monitor in its keeper, so what it writes after the
/// kill reaches its log through the adopter; its exit is recorded when it happens
/// (FinishedAt is the real end, not the time of the next command); what it left is cleaned
/// and `system check` finds nothing.
#[test]
fn a_container_whose_monitor_died_is_adopted() {
    let f = Fixture::new();
    let id = f
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo before; sleep 3; echo after",
        ])
        .trim()
        .to_string();
    let pid: i32 = f
        .ok(&["inspect", "--format", "{{.State.Pid}}", &id])
        .trim()
        .parse()
        .unwrap();
    while !f.ok(&["logs", &id]).contains("before") {
        std::thread::sleep(Duration::from_millis(20));
    }
    let monitors = common::monitor_pids(&id);
    assert_eq!(monitors.len(), 1, "{monitors:?}");
    let _ = Command::new("kill")
        .args(["-9", &monitors[0].to_string()])
        .status();
    while std::path::Path::new(&format!("/proc/{}", monitors[0])).exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    // The next command: still running, adopted.
    let state = f.ok(&["inspect", "--format", "{{.State.Status}}", &id]);
    assert_eq!(state, "running\n");
    // It ends with no berth command running; some time later, the first command finds
    // its end recorded at the time it happened.
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(2));
    let later = now_secs();
    assert_eq!(f.ok(&["wait", &id]), "255\n");
    let fin = f.ok(&["inspect", "--format", "{{.State.FinishedAt}}", &id]);
    let fin = berth_engine::timefmt::parse_rfc3339(fin.trim()).unwrap_or_else(|| panic!("{fin}"));
    assert!(
        fin < later - 1,
        "FinishedAt {fin} is not the exit (before {later})"
    );
    let e = f.ok(&["inspect", "--format", "{{.State.Error}}", &id]);
    assert!(e.contains("monitor died: its output was kept"), "{e}");
    // What it wrote after its monitor died was kept by the keeper and logged by the adopter.
    assert_eq!(f.ok(&["logs", &id]), "before\nafter\n");
    assert!(common::monitor_pids(&id).is_empty());
    f.check().unwrap();
    f.ok(&["rm", &id]);

    // An adopted container is stopped and removed as any other.
    f.ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "adoptv",
    ]);
    let id = f
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "-v",
            "adoptv:/t",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    for m in common::monitor_pids(&id) {
        let _ = Command::new("kill").args(["-9", &m.to_string()]).status();
        while std::path::Path::new(&format!("/proc/{m}")).exists() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    f.ok(&["ps"]);
    // The adopter holds its tmpfs volume as the monitor did; its end lets go of it.
    let data = f.root.join("volumes/adoptv/_data");
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&format!(" {} ", data.display()))
    };
    assert!(mounted());
    f.ok(&["stop", "-t", "1", &id]);
    assert!(!mounted());
    assert_eq!(
        f.ok(&["inspect", "--format", "{{.State.Status}}", &id]),
        "exited\n"
    );
    f.ok(&["start", &id]);
    assert!(mounted());
    f.ok(&["rm", "-f", &id]);
    assert!(!mounted());
    f.ok(&["volume", "rm", "adoptv"]);
    assert_eq!(f.ok(&["ps", "-aq"]), "");
    f.check().unwrap();

    // Its restart policy still applies: adopted, then its init killed (not by the user),
    // it comes back under a new monitor.
    let id = f
        .ok(&[
            "run",
            "-d",
            "--restart",
            "always",
            "--network",
            "none",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    let pid = f.ok(&["inspect", "--format", "{{.State.Pid}}", &id]);
    for m in common::monitor_pids(&id) {
        let _ = Command::new("kill").args(["-9", &m.to_string()]).status();
        while std::path::Path::new(&format!("/proc/{m}")).exists() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    f.ok(&["ps"]);
    let _ = Command::new("kill").args(["-9", pid.trim()]).status();
    let t = Instant::now();
    let back = loop {
        let now = f.ok(&[
            "inspect",
            "--format",
            "{{.State.Status}} {{.RestartCount}} {{.State.Pid}}",
            &id,
        ]);
        if now.starts_with("running 1 ") || t.elapsed() > Duration::from_secs(60) {
            break now;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(back.starts_with("running 1 "), "{back}");
    assert_ne!(back.trim().rsplit(' ').next(), Some(pid.trim()));
    assert_eq!(common::monitor_pids(&id).len(), 1);
    f.ok(&["rm", "-f", &id]);
    f.check().unwrap();
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

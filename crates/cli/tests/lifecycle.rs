//! Healthchecks and the event journal end to end, as a user runs them: `--health-*` and an
//! image's HEALTHCHECK run by the container's monitor, seen alike by `ps`, `inspect` and
//! `events`; `berth events` followed while other commands work, its `--since`, `--until`,
//! `--filter` and `--format`, and the journal's bound.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{BusyboxRoot, berth, berth_command, fails, monitor_pids};

const LINKS: &[&str] = &[
    "sh", "sleep", "test", "touch", "rm", "echo", "true", "cat", "head", "tr",
];

fn root() -> BusyboxRoot {
    BusyboxRoot::new(&["bin", "etc", "tmp"], LINKS)
}

fn inspect(b: &BusyboxRoot, c: &str) -> Value {
    let v: Value = serde_json::from_str(&b.ok(&["inspect", c])).unwrap();
    v[0].clone()
}

/// Polls `inspect` until `pred` holds of the container (a minute at most: the probes run
/// every 200 ms; the bound only stops a broken build from hanging).
fn wait_for(b: &BusyboxRoot, c: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let t = Instant::now();
    loop {
        let v = inspect(b, c);
        if pred(&v) {
            return v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{c}: never {what}: {:#}",
            v["State"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn health_status(v: &Value) -> &str {
    v["State"]["Health"]["Status"].as_str().unwrap_or("")
}

/// The names `ps --filter health=WANT` lists.
fn ps_health(b: &BusyboxRoot, want: &str) -> Vec<String> {
    b.ok(&[
        "ps",
        "--filter",
        &format!("health={want}"),
        "--format",
        "{{.Names}}",
    ])
    .lines()
    .map(String::from)
    .collect()
}

fn ps_status(b: &BusyboxRoot, c: &str) -> String {
    b.ok(&[
        "ps",
        "--filter",
        &format!("name={c}"),
        "--format",
        "{{.Status}}",
    ])
    .trim()
    .to_string()
}

/// Now as `berth events` takes it: Unix seconds with nanoseconds.
fn stamp() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

#[test]
fn healthcheck_goes_starting_healthy_unhealthy() {
    let b = root();
    let t0 = stamp();
    // Failures inside the (long) start period leave it starting; two failures after a
    // success make it unhealthy.
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "hc",
        "--health-cmd",
        "echo probing; test -f /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-start-interval",
        "200ms",
        "--health-start-period",
        "1h",
        "--health-retries",
        "2",
        "--health-timeout",
        "5s",
        "busybox",
        "sleep",
        "1000",
    ]);
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "plain",
        "busybox",
        "sleep",
        "1000",
    ]);
    let v = inspect(&b, "hc");
    let h = &v["Config"]["Healthcheck"];
    assert_eq!(
        h["Test"],
        serde_json::json!(["CMD-SHELL", "echo probing; test -f /tmp/ok"])
    );
    assert_eq!(h["Interval"], 200_000_000);
    assert_eq!(h["StartPeriod"], 3_600_000_000_000u64);
    assert_eq!(h["Retries"], 2);
    assert!(inspect(&b, "plain")["State"]["Health"].is_null());
    // Two failed probes in the start period: still starting, no failing streak.
    let v = wait_for(&b, "hc", "probed twice", |v| {
        v["State"]["Health"]["Log"]
            .as_array()
            .is_some_and(|l| l.len() >= 2)
    });
    assert_eq!(health_status(&v), "starting", "{:#}", v["State"]);
    assert_eq!(v["State"]["Health"]["FailingStreak"], 0);
    let probe = &v["State"]["Health"]["Log"][0];
    assert_eq!(probe["ExitCode"], 1);
    assert_eq!(probe["Output"], "probing\n");
    assert!(
        probe["Start"].as_str().unwrap().ends_with('Z')
            && probe["End"].as_str().unwrap().ends_with('Z'),
        "{probe}"
    );
    assert!(
        ps_status(&b, "hc").ends_with("(health: starting)"),
        "{}",
        ps_status(&b, "hc")
    );
    assert_eq!(ps_health(&b, "starting"), ["hc"]);
    assert_eq!(ps_health(&b, "none"), ["plain"]);
    assert_eq!(
        b.ok(&["inspect", "--format", "{{.State.Health.Status}}", "hc"]),
        "starting\n"
    );

    b.ok(&["exec", "hc", "touch", "/tmp/ok"]);
    let v = wait_for(&b, "hc", "healthy", |v| health_status(v) == "healthy");
    assert_eq!(v["State"]["Health"]["FailingStreak"], 0);
    assert!(
        ps_status(&b, "hc").ends_with("(healthy)"),
        "{}",
        ps_status(&b, "hc")
    );
    assert_eq!(ps_health(&b, "healthy"), ["hc"]);
    assert!(ps_health(&b, "starting").is_empty());

    b.ok(&["exec", "hc", "rm", "/tmp/ok"]);
    let v = wait_for(&b, "hc", "unhealthy", |v| health_status(v) == "unhealthy");
    let h = &v["State"]["Health"];
    assert!(h["FailingStreak"].as_i64().unwrap() >= 2, "{h:#}");
    let log = h["Log"].as_array().unwrap();
    assert!(log.len() <= 5, "the last five results: {h:#}");
    assert_eq!(log.last().unwrap()["ExitCode"], 1);
    assert!(
        ps_status(&b, "hc").ends_with("(unhealthy)"),
        "{}",
        ps_status(&b, "hc")
    );
    assert_eq!(ps_health(&b, "unhealthy"), ["hc"]);
    assert_eq!(
        b.ok(&["inspect", "--format", "{{.State.Health.Status}}", "hc"]),
        "unhealthy\n"
    );
    // The journal says the same: one event per change, none for the first "starting".
    let t1 = stamp();
    let changes = b.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        "event=health_status",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    assert_eq!(
        changes,
        "health_status: healthy hc\nhealth_status: unhealthy hc\n"
    );
    b.ok(&["rm", "-f", "hc", "plain"]);
}

#[test]
fn a_probe_past_its_timeout_is_killed_and_fails() {
    let b = root();
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "slow",
        "--health-cmd",
        "sleep 100",
        "--health-interval",
        "200ms",
        "--health-timeout",
        "300ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "1000",
    ]);
    let v = wait_for(&b, "slow", "unhealthy", |v| health_status(v) == "unhealthy");
    let probe = &v["State"]["Health"]["Log"][0];
    assert_eq!(probe["ExitCode"], -1);
    assert_eq!(probe["Output"], "Health check exceeded timeout (300ms)");
    // Each probe is killed at its timeout: after three, at most the one in flight is left.
    wait_for(&b, "slow", "probed three times", |v| {
        v["State"]["Health"]["Log"]
            .as_array()
            .is_some_and(|l| l.len() >= 3)
    });
    let ps = b.ok(&["top", "slow"]);
    let probes = ps.lines().filter(|l| l.ends_with(" sleep 100")).count();
    assert!(probes <= 1, "{ps}");
    b.ok(&["rm", "-f", "slow"]);
}

#[test]
fn no_healthcheck_overrides_the_images() {
    let b = root();
    let ctx = b.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nHEALTHCHECK --interval=200ms --retries=4 CMD [\"test\", \"-d\", \"/tmp\"]\n",
    )
    .unwrap();
    let o = berth(&b.root, &["build", "-t", "checked", ctx.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The image's check runs as it is.
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "img",
        "checked",
        "sleep",
        "1000",
    ]);
    let v = inspect(&b, "img");
    assert_eq!(
        v["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "test", "-d", "/tmp"])
    );
    wait_for(&b, "img", "healthy", |v| health_status(v) == "healthy");
    // Flags override what they name; the rest is the image's.
    b.ok(&[
        "create",
        "--name",
        "merged",
        "--health-interval",
        "2s",
        "checked",
        "true",
    ]);
    let h = &inspect(&b, "merged")["Config"]["Healthcheck"];
    assert_eq!(h["Test"], serde_json::json!(["CMD", "test", "-d", "/tmp"]));
    assert_eq!(
        (h["Interval"].as_i64(), h["Retries"].as_i64()),
        (Some(2_000_000_000), Some(4))
    );
    // --no-healthcheck: none runs, none is reported.
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "off",
        "--no-healthcheck",
        "checked",
        "sleep",
        "1000",
    ]);
    let v = inspect(&b, "off");
    assert_eq!(
        v["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["NONE"])
    );
    assert!(v["State"]["Health"].is_null(), "{:#}", v["State"]);
    assert_eq!(ps_health(&b, "none"), ["off"]);
    assert!(!ps_status(&b, "off").contains("health"));
    // docker's refusals.
    let e = fails(
        &b.root,
        &[
            "create",
            "--no-healthcheck",
            "--health-cmd",
            "true",
            "checked",
        ],
        125,
    );
    assert!(
        e.contains("--no-healthcheck conflicts with --health-* options"),
        "{e}"
    );
    let e = fails(
        &b.root,
        &["create", "--health-interval", "soon", "checked"],
        125,
    );
    assert!(e.contains("invalid duration"), "{e}");
    let e = fails(&b.root, &["ps", "--filter", "health=sickly"], 1);
    assert!(e.contains("health"), "{e}");
    b.ok(&["rm", "-f", "img", "off", "merged"]);
}

/// `berth events` started from `since`, its stdout read line by line.
struct Follower {
    child: Child,
    lines: Option<std::io::Lines<BufReader<std::process::ChildStdout>>>,
}

impl Follower {
    fn new(b: &BusyboxRoot, args: &[&str]) -> Follower {
        let mut child = berth_command(&b.root)
            .arg("events")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        Follower {
            child,
            lines: Some(BufReader::new(out).lines()),
        }
    }

    fn next(&mut self) -> String {
        self.lines
            .as_mut()
            .and_then(|l| l.next())
            .expect("events ended")
            .expect("events output")
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn events_are_followed_while_another_process_works() {
    let b = root();
    // From a moment before the follower starts: nothing can be missed.
    let since = stamp();
    let mut f = Follower::new(
        &b,
        &[
            "--since",
            &since,
            "--filter",
            "container=ev",
            "--format",
            "{{json .}}",
        ],
    );
    let id = b
        .ok(&[
            "create",
            "--network",
            "none",
            "--name",
            "ev",
            "--label",
            "tier=web",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    b.ok(&["start", "ev"]);
    // sleep as pid 1 ignores SIGTERM: stop kills it.
    b.ok(&["stop", "-t", "0", "ev"]);
    b.ok(&["rm", "ev"]);
    let mut seen = vec![];
    while seen.last().map(|(a, _): &(String, Value)| a.as_str()) != Some("destroy") {
        let v: Value = serde_json::from_str(&f.next()).unwrap();
        seen.push((v["Action"].as_str().unwrap().to_string(), v));
    }
    let actions: Vec<&str> = seen.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        ["create", "start", "kill", "kill", "die", "stop", "destroy"]
    );
    for (_, v) in &seen {
        assert_eq!(v["Type"], "container");
        assert_eq!(v["Actor"]["ID"], id.as_str());
        assert_eq!(v["id"], id.as_str());
        assert_eq!(v["status"], v["Action"]);
        assert_eq!(v["from"], "busybox");
        assert_eq!(v["scope"], "local");
        let a = &v["Actor"]["Attributes"];
        assert_eq!(
            (a["name"].as_str(), a["image"].as_str()),
            (Some("ev"), Some("busybox"))
        );
        assert_eq!(a["tier"], "web");
        assert_eq!(
            v["time"].as_i64().unwrap(),
            v["timeNano"].as_i64().unwrap() / 1_000_000_000
        );
    }
    assert_eq!(seen[2].1["Actor"]["Attributes"]["signal"], "15");
    assert_eq!(seen[3].1["Actor"]["Attributes"]["signal"], "9");
    assert_eq!(seen[4].1["Actor"]["Attributes"]["exitCode"], "137");
    let ran = &seen[4].1["Actor"]["Attributes"]["execDuration"];
    assert!(
        ran.as_str().is_some_and(|s| s.parse::<u64>().is_ok()),
        "{ran}"
    );
    // Its reader going away ends the follower (`berth events | head -2`), though nothing
    // more happens.
    f.lines = None;
    let t = Instant::now();
    while f.child.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "events outlived its reader"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let times: Vec<i64> = seen
        .iter()
        .map(|(_, v)| v["timeNano"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[test]
fn events_since_until_filter_and_format() {
    let b = root();
    let t0 = stamp();
    b.ok(&["volume", "create", "--label", "x=1", "evvol"]);
    b.ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "once",
        "--label",
        "tier=db",
        "-v",
        "evvol:/data",
        "busybox",
        "true",
    ]);
    b.ok(&["rm", "once"]);
    b.ok(&["volume", "rm", "evvol"]);
    b.ok(&["tag", "busybox", "busybox:other"]);
    b.ok(&["rmi", "busybox:other"]);
    let t1 = stamp();
    let ev = |extra: &[&str]| -> Vec<String> {
        let mut a = vec!["events", "--since", &t0, "--until", &t1];
        a.extend_from_slice(extra);
        b.ok(&a).lines().map(String::from).collect()
    };
    let all = ev(&["--format", "{{.Type}} {{.Action}}"]);
    assert_eq!(
        all,
        [
            "volume create",
            "container create",
            "container attach",
            "volume mount",
            "container start",
            "container die",
            "volume unmount",
            "container destroy",
            "volume destroy",
            "image tag",
            "image untag",
        ]
    );
    assert_eq!(
        ev(&[
            "--filter",
            "type=volume",
            "--format",
            "{{.Action}} {{.Actor.ID}}"
        ]),
        [
            "create evvol",
            "mount evvol",
            "unmount evvol",
            "destroy evvol"
        ]
    );
    assert_eq!(
        ev(&[
            "--filter",
            "event=create",
            "--filter",
            "event=destroy",
            "--format",
            "{{.Type}} {{.Action}}"
        ]),
        [
            "volume create",
            "container create",
            "container destroy",
            "volume destroy"
        ]
    );
    // Keys are ANDed, values of one key ORed.
    assert_eq!(
        ev(&[
            "--filter",
            "type=container",
            "--filter",
            "event=die",
            "--format",
            "{{.Action}} {{index .Actor.Attributes \"exitCode\"}}"
        ]),
        ["die 0"]
    );
    assert_eq!(ev(&["--filter", "label=tier=db"]).len(), 5);
    assert_eq!(
        ev(&[
            "--filter",
            "image=busybox",
            "--filter",
            "type=image",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}"
        ])[0],
        "tag busybox:other"
    );
    let mount = ev(&[
        "--filter",
        "event=mount",
        "--format",
        "{{json .Actor.Attributes}}",
    ]);
    let a: Value = serde_json::from_str(&mount[0]).unwrap();
    assert_eq!(a["destination"], "/data");
    assert_eq!(a["read/write"], "true");
    // docker's default line: fixed nanoseconds, sorted attributes.
    let text = ev(&["--filter", "event=start"]);
    let (time, rest) = text[0].split_once(' ').unwrap();
    // Nanoseconds always nine digits; the zone the local one (`Z` for UTC).
    let (clock, zone) = time.split_at(29);
    assert!(
        clock.as_bytes()[19] == b'.' && clock[20..].bytes().all(|c| c.is_ascii_digit()),
        "{time}"
    );
    assert!(
        zone == "Z" || (zone.len() == 6 && zone.as_bytes()[3] == b':'),
        "{time}"
    );
    let id = rest.split(' ').nth(2).unwrap();
    assert_eq!(
        rest,
        format!("container start {id} (image=busybox, name=once, tier=db)")
    );
    // JSON, with --format json as with {{json .}}.
    let j = ev(&["--format", "json", "--filter", "type=container"]);
    assert_eq!(j.len(), 5);
    assert_eq!(
        j,
        ev(&["--format", "{{json .}}", "--filter", "type=container"])
    );
    let v: Value = serde_json::from_str(&j[0]).unwrap();
    assert_eq!(
        (v["status"].as_str(), v["Action"].as_str()),
        (Some("create"), Some("create"))
    );
    // Other time forms: RFC 3339 and a relative since; until a moment before the first.
    let rfc = b.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "--filter",
        "type=volume",
    ]);
    assert_eq!(rfc.lines().count(), 4, "{rfc}");
    let none = b.ok(&[
        "events",
        "--since",
        "2000-01-01T00:00:00Z",
        "--until",
        "2000-01-02",
    ]);
    assert_eq!(none, "");
    // Bad input is named.
    let e = fails(
        &b.root,
        &["events", "--filter", "colour=red", "--until", "0s"],
        1,
    );
    assert!(e.contains("invalid filter 'colour'"), "{e}");
    let e = fails(&b.root, &["events", "--since", "yesterday"], 1);
    assert!(e.contains("yesterday"), "{e}");
    let e = fails(
        &b.root,
        &["events", "--filter", "type=boat", "--until", "0s"],
        1,
    );
    assert!(e.contains("type=boat"), "{e}");
}

#[test]
fn the_journal_keeps_the_newest_events() {
    let b = root();
    let run = |args: &[&str]| {
        let o = berth_command(&b.root)
            .env("BERTH_EVENTS_MAX", "10")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    for i in 0..15 {
        run(&["volume", "create", &format!("bound{i}")]);
    }
    let kept = run(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--format",
        "{{.Actor.ID}}",
    ]);
    let want: Vec<String> = (5..15).map(|i| format!("bound{i}")).collect();
    assert_eq!(kept.lines().collect::<Vec<_>>(), want);
    for i in 0..15 {
        run(&["volume", "rm", &format!("bound{i}")]);
    }
}

#[test]
fn every_container_and_image_action_is_journalled() {
    let b = root();
    let t0 = stamp();
    let id = b
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "acts",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    b.ok(&["pause", "acts"]);
    b.ok(&["unpause", "acts"]);
    b.ok(&["rename", "acts", "acted"]);
    b.ok(&["restart", "-t", "0", "acted"]);
    b.ok(&["exec", "acted", "true"]);
    b.ok(&["rm", "-f", "acted"]);
    let archive = b.dir.join("saved.tar");
    b.ok(&["save", "-o", archive.to_str().unwrap(), "busybox"]);
    b.ok(&["load", "-i", archive.to_str().unwrap()]);
    let t1 = stamp();
    let ev = |filter: &str, format: &str| -> Vec<String> {
        b.ok(&[
            "events", "--since", &t0, "--until", &t1, "--filter", filter, "--format", format,
        ])
        .lines()
        .map(String::from)
        .collect()
    };
    let c: Vec<String> = ev("type=container", "{{json .Actor.Attributes}} {{.Action}}")
        .iter()
        .map(|l| {
            let (attrs, action) = l.split_once(' ').unwrap();
            let a: Value = serde_json::from_str(attrs).unwrap();
            let extra = ["signal", "exitCode", "oldName"]
                .iter()
                .filter_map(|k| a[k].as_str())
                .collect::<String>();
            format!("{action} {} {extra}", a["name"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        c,
        [
            "create acts ",
            "start acts ",
            "pause acts ",
            "unpause acts ",
            "rename acted /acts",
            "kill acted 15",
            "kill acted 9",
            "die acted 137",
            "stop acted ",
            "start acted ",
            "restart acted ",
            "exec_create: true acted ",
            "exec_start: true acted ",
            "exec_die acted 0",
            "kill acted 9",
            "die acted 137",
            "destroy acted ",
        ]
    );
    // Filtered by the container's id prefix too (its name changed on the way).
    assert_eq!(
        ev(&format!("container={}", &id[..12]), "{{.Action}}").len(),
        c.len()
    );
    let image_id = b.ok(&["image", "inspect", "--format", "{{.Id}}", "busybox"]);
    let image_id = image_id.trim();
    assert_eq!(
        ev("type=image", "{{.Action}} {{.Actor.ID}}"),
        [format!("save {image_id}"), format!("load {image_id}")]
    );
}

#[test]
fn a_container_whose_monitor_died_reads_unhealthy() {
    let b = root();
    let id = b
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "orphan",
            "--health-cmd",
            "true",
            "--health-interval",
            "200ms",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    let v = wait_for(&b, "orphan", "healthy", |v| health_status(v) == "healthy");
    let init = v["State"]["Pid"].as_i64().unwrap() as i32;
    // The machine's view of a crash: monitor and container killed at once.
    for pid in monitor_pids(&id).into_iter().chain([init]) {
        // SAFETY: kill(2) on pids this test started (through berth).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let v = wait_for(&b, "orphan", "exited", |v| v["State"]["Status"] == "exited");
    assert_eq!(v["State"]["ExitCode"], 255);
    assert_eq!(health_status(&v), "unhealthy", "{:#}", v["State"]);
    assert!(!v["State"]["Health"]["Log"].as_array().unwrap().is_empty());
    b.ok(&["rm", "-f", "orphan"]);
}

#[test]
fn network_and_import_events() {
    let b = root();
    // The fixture's `import` of busybox is in the journal from the start.
    let imported = b.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "event=import",
        "--format",
        "{{.Actor.ID}} {{.Actor.Attributes.name}}",
    ]);
    let image_id = b.ok(&["image", "inspect", "--format", "{{.Id}}", "busybox"]);
    assert_eq!(imported, format!("{0} {0}\n", image_id.trim()));
    let t0 = stamp();
    let net = b.ok(&["network", "create", "evnet"]).trim().to_string();
    b.ok(&[
        "run",
        "--network",
        "evnet",
        "--name",
        "netted",
        "busybox",
        "true",
    ]);
    let cid = b
        .ok(&["inspect", "--format", "{{.Id}}", "netted"])
        .trim()
        .to_string();
    b.ok(&["rm", "netted"]);
    b.ok(&["network", "rm", "evnet"]);
    let t1 = stamp();
    let lines = b.ok(&[
        "events", "--since", &t0, "--until", &t1, "--filter", "network=evnet", "--format",
        "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}} {{.Actor.Attributes.container}}",
    ]);
    assert_eq!(
        lines,
        format!(
            "create {net} evnet bridge <no value>\nconnect {net} evnet bridge {cid}\n\
             disconnect {net} evnet bridge {cid}\ndestroy {net} evnet bridge <no value>\n"
        )
    );
}

#[test]
fn an_oom_kill_is_journalled_before_the_death() {
    let b = root();
    let t0 = stamp();
    let o = berth(
        &b.root,
        &[
            "run",
            "--network",
            "none",
            "--name",
            "hog",
            "--memory",
            "8m",
            "busybox",
            "sh",
            "-c",
            "x=$(head -c 60000000 /dev/zero | tr '\\0' a); echo survived",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let t1 = stamp();
    let ev = b.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        "container=hog",
        "--filter",
        "event=oom",
        "--filter",
        "event=die",
        "--format",
        "{{.Action}} {{.Actor.Attributes.exitCode}}",
    ]);
    assert_eq!(ev, "oom <no value>\ndie 137\n");
    b.ok(&["rm", "hog"]);
}

//! `berth build` against docker's BuildKit, side by side: every Dockerfile of the corpus
//! (`tests/build-corpus/<case>/`, a Dockerfile and its context, and optionally a `builds` file
//! of `TAG ARGS…` lines when a case needs build args, a `--target` or several builds; `{ctx}`
//! there is the context's path, `-f NAME` is relative to it) is built
//! by berth and by dockerd 20.10's BuildKit (`DOCKER_BUILDKIT=1 docker build --network none`)
//! from the same copy of the context, on the same busybox base (`berth save` → `docker load`).
//! Both images are then saved (`berth save`, `docker save`) and compared field by field: the
//! config (Env, Cmd, Entrypoint, WorkingDir, User, Labels, ExposedPorts, Volumes,
//! Healthcheck, StopSignal, OnBuild, Shell, ArgsEscaped), the history (`created_by`,
//! `empty_layer`, `comment`) and every layer's entries (path, type, mode, owner, link target,
//! content; never times). Every difference of every case is listed before the test fails.
//!
//! dockerd runs on a private socket, data root and exec root under a temporary directory,
//! inside a throwaway network namespace, with `--bridge=none --iptables=false
//! --ip6tables=false`; it is stopped (and its containerd with it) and its directories
//! unmounted and removed when the test ends, also when it fails.
//!
//! Docker 20.10's BuildKit (v0.8) predates heredocs, `COPY --link/--parents/--exclude`,
//! `ADD --checksum` and the `${v#p}`/`${v%p}` forms, so those are not in this corpus; the
//! berth-only tests in `build.rs` cover them against docker's current reference.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{RootfsTar, TestNetns, berth_command, ok};

const LINKS: &[&str] = &[
    "sh", "echo", "cat", "ls", "true", "false", "id", "mkdir", "touch", "rm", "ln", "chmod",
    "chown", "wget", "test", "[", "sort", "hostname", "cut", "env", "pwd",
];

/// The docker 20.10 CLI (its built-in BuildKit client; docker 28's needs buildx).
fn docker_cli() -> &'static str {
    for c in ["/usr/bin/docker", "/usr/local/bin/docker"] {
        if Path::new(c).exists() {
            return c;
        }
    }
    panic!("build_compare needs docker.io (dockerd 20.10 and its CLI); see scripts/test.sh")
}

/// A dockerd of our own; stopped, unmounted and removed on drop.
struct Dockerd {
    dir: PathBuf,
    sock: String,
    child: Option<Child>,
    _ns: TestNetns,
}

impl Dockerd {
    fn start(dir: &Path) -> Dockerd {
        std::fs::create_dir_all(dir).expect("dockerd dir");
        let ns = TestNetns::new("dockerd");
        let sock = format!("unix://{}/docker.sock", dir.display());
        let log = std::fs::File::create(dir.join("dockerd.log")).expect("log");
        // Not the machine's /etc/docker/daemon.json.
        let config = dir.join("daemon.json");
        std::fs::write(&config, "{}").expect("daemon.json");
        let child = ns
            .command("dockerd")
            .arg("--host")
            .arg(&sock)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .arg("--config-file")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("dockerd (docker.io) must be installed");
        let mut d = Dockerd {
            dir: dir.to_path_buf(),
            sock,
            child: Some(child),
            _ns: ns,
        };
        let t0 = Instant::now();
        loop {
            if d.docker(&["version"]).status.success() {
                return d;
            }
            let exited = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && t0.elapsed() < Duration::from_secs(60),
                "dockerd did not come up: {}",
                std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new(docker_cli())
            .arg("-H")
            .arg(&self.sock)
            .args(args)
            .env("DOCKER_BUILDKIT", "1")
            .env("DOCKER_CONFIG", self.dir.join("cli"))
            .stdin(Stdio::null())
            .output()
            .expect("docker cli")
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a pid this test started; no memory is involved.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn wait_gone(pid: i32, within: Duration) -> bool {
    let t0 = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        if t0.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // containerd runs as dockerd's child; note its pid before dockerd goes.
        let containerd = std::fs::read_to_string(self.dir.join("exec/containerd/containerd.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        if let Some(mut c) = self.child.take() {
            let pid = c.id() as i32;
            signal(pid, libc::SIGTERM);
            let t0 = Instant::now();
            while c.try_wait().ok().flatten().is_none() {
                if t0.elapsed() > Duration::from_secs(20) {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if let Some(pid) = containerd
            && Path::new(&format!("/proc/{pid}")).exists()
        {
            signal(pid, libc::SIGTERM);
            if !wait_gone(pid, Duration::from_secs(10)) {
                signal(pid, libc::SIGKILL);
                wait_gone(pid, Duration::from_secs(5));
            }
        }
        // Whatever dockerd left mounted under its directories, deepest first.
        let prefix = format!("{}/", self.dir.display());
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One layer entry, times left out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    /// Symlink or hardlink target; for files, the length and a hash of the content.
    data: String,
}

/// A saved image: its config JSON and its layers' entries by path.
struct Saved {
    config: Value,
    layers: Vec<BTreeMap<String, Entry>>,
}

/// Small text files by their text (a difference reads at once), others by a hash.
fn content_hash(b: &[u8]) -> String {
    if b.len() <= 400
        && let Ok(t) = std::str::from_utf8(b)
    {
        return format!("{t:?}");
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    b.hash(&mut h);
    format!("{} bytes #{:016x}", b.len(), h.finish())
}

fn read_layer(data: &[u8]) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut a = tar::Archive::new(data);
    for e in a.entries().expect("layer tar") {
        let mut e = e.expect("layer entry");
        let path = e.path().expect("path").to_string_lossy().into_owned();
        let path = path
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        if path.is_empty() || path == "." {
            continue;
        }
        let h = e.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => 'f',
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Char => 'c',
            tar::EntryType::Block => 'b',
            tar::EntryType::Fifo => 'p',
            other => panic!("unexpected tar entry {other:?} at {path}"),
        };
        let data = match kind {
            'l' | 'h' => e
                .link_name()
                .ok()
                .flatten()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            'f' => {
                let mut b = Vec::new();
                e.read_to_end(&mut b).expect("layer file");
                content_hash(&b)
            }
            _ => String::new(),
        };
        out.insert(
            path,
            Entry {
                kind,
                mode: h.mode().unwrap_or(0) & 0o7777,
                uid: h.uid().unwrap_or(0),
                gid: h.gid().unwrap_or(0),
                data,
            },
        );
    }
    out
}

/// Reads a `docker save` format archive (manifest.json, the config, the layer tars).
fn read_saved(tarball: &Path) -> Saved {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    // docker save links a layer seen twice to its first copy.
    let mut links: Vec<(String, PathBuf)> = Vec::new();
    let f = std::fs::File::open(tarball).expect("saved image");
    let mut a = tar::Archive::new(f);
    for e in a.entries().expect("saved tar") {
        let mut e = e.expect("saved entry");
        let p = e.path().expect("path").to_string_lossy().into_owned();
        if e.header().entry_type() == tar::EntryType::Symlink {
            let target = e.link_name().ok().flatten().expect("link target");
            let joined = Path::new(&p).parent().unwrap_or(Path::new("")).join(target);
            links.push((p.trim_start_matches("./").to_string(), joined));
            continue;
        }
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let mut b = Vec::new();
        e.read_to_end(&mut b).expect("read");
        files.insert(p.trim_start_matches("./").to_string(), b);
    }
    for (name, target) in links {
        // Resolve `dir/../other/layer.tar`.
        let mut parts: Vec<String> = Vec::new();
        for c in target.components() {
            match c {
                std::path::Component::ParentDir => {
                    parts.pop();
                }
                std::path::Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
                _ => {}
            }
        }
        if let Some(data) = files.get(&parts.join("/")).cloned() {
            files.insert(name, data);
        }
    }
    let manifest: Value =
        serde_json::from_slice(files.get("manifest.json").expect("manifest.json")).expect("json");
    let m = &manifest[0];
    let cfg_name = m["Config"].as_str().expect("Config");
    let config: Value = serde_json::from_slice(files.get(cfg_name).expect("config")).expect("json");
    let layers = m["Layers"]
        .as_array()
        .expect("Layers")
        .iter()
        .map(|l| {
            let data = files.get(l.as_str().expect("layer")).expect("layer file");
            read_layer(&maybe_gunzip(data))
        })
        .collect();
    Saved { config, layers }
}

fn maybe_gunzip(data: &[u8]) -> Vec<u8> {
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut c = Command::new("gzip")
            .arg("-dc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("gzip");
        let mut stdin = c.stdin.take().expect("stdin");
        let owned = data.to_vec();
        let w = std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&owned);
        });
        let o = c.wait_with_output().expect("gzip");
        let _ = w.join();
        o.stdout
    } else {
        data.to_vec()
    }
}

/// Config fields always compared (and any other either config has; missing and null are
/// the same).
const CONFIG_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "Healthcheck",
    "StopSignal",
    "OnBuild",
    "Shell",
    "ArgsEscaped",
];

fn field<'a>(v: &'a Value, k: &str) -> &'a Value {
    v.get(k).unwrap_or(&Value::Null)
}

fn compare(
    case: &str,
    tag: &str,
    base_layers: usize,
    b: &Saved,
    d: &Saved,
    diffs: &mut Vec<String>,
) {
    let at = format!("{case} ({tag})");
    // The fields named, and any other either image has (missing and null alike).
    let keys = |v: &Value| -> BTreeSet<String> {
        v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut config_keys: BTreeSet<String> = CONFIG_FIELDS.iter().map(|k| k.to_string()).collect();
    config_keys.extend(keys(&b.config["config"]));
    config_keys.extend(keys(&d.config["config"]));
    for k in &config_keys {
        let (bv, dv) = (field(&b.config["config"], k), field(&d.config["config"], k));
        if bv != dv {
            diffs.push(format!("{at}: config.{k}: berth {bv} / docker {dv}"));
        }
    }
    let mut top = keys(&b.config);
    top.extend(keys(&d.config));
    for k in top
        .iter()
        .filter(|k| !["created", "history", "rootfs", "config"].contains(&k.as_str()))
    {
        let (bv, dv) = (field(&b.config, k), field(&d.config, k));
        if bv != dv {
            diffs.push(format!("{at}: {k}: berth {bv} / docker {dv}"));
        }
    }
    let hist = |s: &Saved| -> Vec<(String, bool, String)> {
        s.config["history"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|h| {
                (
                    h["created_by"].as_str().unwrap_or("").to_string(),
                    h["empty_layer"].as_bool().unwrap_or(false),
                    h["comment"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let (bh, dh) = (hist(b), hist(d));
    if bh.len() != dh.len() {
        diffs.push(format!(
            "{at}: history has {} entries in berth, {} in docker:\n  berth  {bh:?}\n  docker {dh:?}",
            bh.len(),
            dh.len()
        ));
    } else {
        for (i, (x, y)) in bh.iter().zip(&dh).enumerate() {
            if x != y {
                diffs.push(format!("{at}: history[{i}]: berth {x:?} / docker {y:?}"));
            }
        }
    }
    if b.layers.len() != d.layers.len() {
        diffs.push(format!(
            "{at}: {} layers in berth, {} in docker",
            b.layers.len(),
            d.layers.len()
        ));
    }
    for (i, (bl, dl)) in b.layers.iter().zip(&d.layers).enumerate().skip(base_layers) {
        let paths: BTreeSet<&String> = bl.keys().chain(dl.keys()).collect();
        for p in paths {
            match (bl.get(p), dl.get(p)) {
                (Some(x), Some(y)) if x == y => {}
                (x, y) => diffs.push(format!("{at}: layer {i} /{p}: berth {x:?} / docker {y:?}")),
            }
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a {from:?} {to:?}");
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_corpus_builds_into_the_images_buildkit_builds() {
    let t = tempfile::tempdir().expect("tempdir");
    let root = t.path().join("root");
    let ns = TestNetns::new("bc");
    ns.host_berth(&root);
    // The base: busybox with users, groups and a directory for RUN to replace.
    let mut tar = RootfsTar::busybox(
        &[
            "bin",
            "dev",
            "etc",
            "proc",
            "sys",
            "tmp",
            "opt",
            "opt/old",
            "home",
            "home/u",
            "usr",
            "usr/local",
            "usr/local/bin",
        ],
        LINKS,
    );
    tar.file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:u:/home/u:/bin/sh\nother:x:1002:50:o:/home/o:/bin/sh\n",
        0o644,
    );
    tar.file(
        "etc/group",
        b"root:x:0:\nstaff:x:50:\nuser:x:1000:\n",
        0o644,
    );
    tar.file("opt/old/stale", b"stale\n", 0o644);
    // The mount points a RUN container needs, as real images have them (BuildKit creates
    // what is missing and leaves it in the RUN's layer).
    for f in ["etc/hosts", "etc/resolv.conf", "etc/hostname"] {
        tar.file(f, b"", 0o644);
    }
    let base = t.path().join("busybox.tar");
    tar.write(&base);
    ok(
        &root,
        &["import", base.to_str().expect("utf-8"), "busybox:latest"],
    );
    let saved_base = t.path().join("base-saved.tar");
    ok(
        &root,
        &[
            "save",
            "-o",
            saved_base.to_str().expect("utf-8"),
            "busybox:latest",
        ],
    );
    let base_layers = read_saved(&saved_base).layers.len();

    let dockerd = Dockerd::start(&t.path().join("docker"));
    let o = dockerd.docker(&["load", "-i", saved_base.to_str().expect("utf-8")]);
    assert!(
        o.status.success(),
        "docker load of berth's save: {}",
        text(&o)
    );

    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/build-corpus");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    if let Ok(only) = std::env::var("BUILD_CORPUS") {
        cases.retain(|c| {
            c.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(&only))
        });
    }
    assert!(!cases.is_empty(), "no corpus cases in {corpus:?}");
    let mut diffs = Vec::new();
    let mut compared = 0;
    for case in &cases {
        let name = case
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let ctx = t.path().join(format!("ctx-{name}"));
        copy_dir(case, &ctx);
        let _ = std::fs::remove_file(ctx.join("builds"));
        let builds = std::fs::read_to_string(case.join("builds")).unwrap_or_else(|_| name.clone());
        for line in builds.lines().filter(|l| !l.trim().is_empty()) {
            let mut words = line.split_whitespace();
            let tag = words.next().expect("tag").to_string();
            // `-f NAME` is relative to the context here (the CLIs take it relative to the cwd).
            let mut args: Vec<String> = Vec::new();
            while let Some(w) = words.next() {
                args.push(w.replace("{ctx}", &ctx.to_string_lossy()));
                if w == "-f" {
                    let f = words.next().expect("-f NAME");
                    args.push(ctx.join(f).to_string_lossy().into_owned());
                }
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut bargs = vec!["build", "-q", "--network", "none", "-t", &tag];
            bargs.extend(&args);
            bargs.push(ctx.to_str().expect("utf-8"));
            let bo = berth_command(&root)
                .args(&bargs)
                .stdin(Stdio::null())
                .output()
                .expect("berth");
            let mut dargs = vec![
                "build",
                "--progress",
                "plain",
                "--network",
                "none",
                "-t",
                &tag,
            ];
            dargs.extend(&args);
            dargs.push(ctx.to_str().expect("utf-8"));
            let dout = dockerd.docker(&dargs);
            match (bo.status.success(), dout.status.success()) {
                (true, true) => {}
                (false, false) => {
                    diffs.push(format!(
                        "{name} ({tag}): both failed:\n{}\n{}",
                        text(&bo),
                        text(&dout)
                    ));
                    continue;
                }
                (b, _) => {
                    diffs.push(format!(
                        "{name} ({tag}): berth {} / docker {}:\n{}",
                        if b { "built" } else { "failed" },
                        if b { "failed" } else { "built" },
                        if b { text(&dout) } else { text(&bo) }
                    ));
                    continue;
                }
            }
            let bt = t.path().join(format!("{tag}.berth.tar"));
            let dt = t.path().join(format!("{tag}.docker.tar"));
            ok(&root, &["save", "-o", bt.to_str().expect("utf-8"), &tag]);
            let o = dockerd.docker(&["save", "-o", dt.to_str().expect("utf-8"), &tag]);
            assert!(o.status.success(), "docker save {tag}: {}", text(&o));
            compare(
                &name,
                &tag,
                base_layers,
                &read_saved(&bt),
                &read_saved(&dt),
                &mut diffs,
            );
            compared += 1;
        }
    }
    drop(dockerd);
    drop(ns);
    assert!(
        diffs.is_empty(),
        "{} difference(s) between berth and BuildKit over {} image(s):\n{}",
        diffs.len(),
        compared,
        diffs.join("\n")
    );
}

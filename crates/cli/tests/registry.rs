//! `berth pull`, `push`, `login`, `logout` as a user runs them, against
//! Debian's docker-registry on 127.0.0.1.

#[path = "../../registry/tests/common/mod.rs"]
mod regcommon;

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use regcommon::{Fault, FaultProxy, Registry};

/// A user's environment: a Berth root, a docker config dir, a registries
/// file, and extra PATH entries.
struct User {
    dir: tempfile::TempDir,
    path_prepend: Option<PathBuf>,
}

impl User {
    fn new() -> User {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("docker")).unwrap();
        User {
            dir,
            path_prepend: None,
        }
    }

    fn root(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker/config.json")
    }

    fn registries(&self) -> PathBuf {
        self.dir.path().join("registries.json")
    }

    fn cmd(&self, root: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.arg("--root")
            .arg(self.root(root))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .env("BERTH_REGISTRIES_CONFIG", self.registries());
        if let Some(p) = &self.path_prepend {
            let old = std::env::var("PATH").unwrap_or_default();
            c.env("PATH", format!("{}:{old}", p.display()));
        }
        c
    }

    fn run(&self, root: &str, args: &[&str], stdin: Option<&str>) -> Output {
        common::output_with_stdin(self.cmd(root, args), stdin.map(str::as_bytes))
    }

    fn ok(&self, root: &str, args: &[&str], stdin: Option<&str>) -> String {
        let o = self.run(root, args, stdin);
        assert!(
            o.status.success(),
            "berth {args:?}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn fails(&self, root: &str, args: &[&str], stdin: Option<&str>) -> String {
        let o = self.run(root, args, stdin);
        assert_eq!(
            o.status.code(),
            Some(1),
            "berth {args:?}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stderr).unwrap()
    }

    /// Imports a small image (`files` in one layer) as `tag` into `root`.
    fn import(&self, root: &str, tag: &str, files: &[(&str, Vec<u8>)]) {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_mtime(0);
            h.set_cksum();
            tar.append_data(&mut h, name, data.as_slice()).unwrap();
        }
        let path = self
            .dir
            .path()
            .join(format!("{}.tar", tag.replace(['/', ':'], "_")));
        std::fs::write(&path, tar.into_inner().unwrap()).unwrap();
        self.ok(root, &["import", path.to_str().unwrap(), tag], None);
    }

    fn auths(&self) -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.docker_config()).unwrap()).unwrap();
        v["auths"].clone()
    }
}

fn noise(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn login_push_pull_logout_with_basic_auth() {
    let Some(reg) = Registry::start(&[("alice", "s3cret")]) else {
        return;
    };
    let u = User::new();
    let tag = format!("{}/team/hello:1", reg.addr);
    u.import("a", &tag, &[("hello.txt", b"hello".to_vec())]);

    let e = u.fails("a", &["push", &tag], None);
    assert!(e.contains("unauthorized"), "{e}");
    let e = u.fails(
        "a",
        &["login", "-u", "alice", "--password-stdin", &reg.addr],
        Some("wrong\n"),
    );
    assert!(e.contains("unauthorized"), "{e}");
    assert!(!u.docker_config().exists());

    let out = u.ok(
        "a",
        &["login", "-u", "alice", "--password-stdin", &reg.addr],
        Some("s3cret\n"),
    );
    assert_eq!(out, "Login Succeeded\n");
    assert_eq!(
        u.auths()[&reg.addr]["auth"],
        base64_of("alice:s3cret"),
        "{}",
        u.auths()
    );
    let out = u.ok("a", &["push", &tag], None);
    assert!(
        out.starts_with(&format!(
            "The push refers to repository [{}/team/hello]",
            reg.addr
        )),
        "{out}"
    );
    assert!(out.contains(": Pushed"), "{out}");
    assert!(out.contains("1: digest: sha256:"), "{out}");
    // Again: the registry has every layer.
    let out = u.ok("a", &["push", &tag], None);
    assert!(out.contains(": Layer already exists"), "{out}");
    assert!(!out.contains(": Pushed"), "{out}");

    let out = u.ok("b", &["pull", &tag], None);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("1: Pulling from {}/team/hello", reg.addr));
    assert!(out.contains(": Pull complete"), "{out}");
    assert!(out.contains("\nDigest: sha256:"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {tag}")),
        "{out}"
    );
    assert_eq!(*lines.last().unwrap(), tag);
    let out = u.ok("b", &["pull", "-q", &tag], None);
    assert_eq!(out, format!("{tag}\n"));
    let out = u.ok(
        "b",
        &["images", "--format", "{{.Repository}}:{{.Tag}}"],
        None,
    );
    assert_eq!(out, format!("{}/team/hello:1\n", reg.addr));

    let out = u.ok("a", &["logout", &reg.addr], None);
    assert_eq!(
        out,
        format!("Removing login credentials for {}\n", reg.addr)
    );
    assert!(u.auths().get(&reg.addr).is_none());
    let out = u.ok("a", &["logout", &reg.addr], None);
    assert_eq!(out, format!("Not logged in to {}\n", reg.addr));
    let e = u.fails("c", &["pull", &tag], None);
    assert!(e.contains("unauthorized"), "{e}");
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn credential_helper_stores_and_serves_the_secret() {
    let Some(reg) = Registry::start(&[("carol", "pw1")]) else {
        return;
    };
    let mut u = User::new();
    // A credential helper keeping one secret in a file, as the helper
    // protocol has it (get/store/erase on stdin).
    let bin = u.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let store = u.dir.path().join("helper-store");
    let script = format!(
        r#"#!/bin/sh
S={store}
case "$1" in
store) cat > "$S" ;;
get) read -r server; if [ -f "$S" ]; then
       sed -e 's/"ServerURL"/"Srv"/' "$S"; else echo "credentials not found in native keychain"; exit 1; fi ;;
erase) read -r server; if [ -f "$S" ]; then rm "$S"; else echo "credentials not found in native keychain"; exit 1; fi ;;
esac
"#,
        store = store.display()
    );
    let helper = bin.join("docker-credential-berthtest");
    std::fs::write(&helper, script).unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&helper)
        .status()
        .unwrap();
    u.path_prepend = Some(bin);
    std::fs::write(u.docker_config(), r#"{"credsStore":"berthtest"}"#).unwrap();

    let tag = format!("{}/helper/app:1", reg.addr);
    u.import("a", &tag, &[("x", b"x".to_vec())]);
    u.ok(
        "a",
        &["login", "-u", "carol", "--password-stdin", &reg.addr],
        Some("pw1"),
    );
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&store).unwrap()).unwrap();
    assert_eq!(saved["Username"], "carol");
    assert_eq!(saved["Secret"], "pw1");
    // The file keeps an empty entry, never the secret.
    assert_eq!(u.auths()[&reg.addr], serde_json::json!({}));
    assert!(
        !std::fs::read_to_string(u.docker_config())
            .unwrap()
            .contains("pw1")
    );
    u.ok("a", &["push", &tag], None);
    u.ok("b", &["pull", &tag], None);
    u.ok("a", &["logout", &reg.addr], None);
    assert!(!store.exists());
    let e = u.fails("c", &["pull", &tag], None);
    assert!(e.contains("unauthorized"), "{e}");
}

#[test]
fn mirrors_and_bad_input() {
    let Some(reg) = Registry::start(&[]) else {
        return;
    };
    let u = User::new();
    let tag = format!("{}/mirrored/app:1", reg.addr);
    u.import("a", &tag, &[("m", b"m".to_vec())]);
    u.ok("a", &["push", &tag], None);
    // Pulls of a registry that does not exist go to its mirror.
    std::fs::write(
        u.registries(),
        format!(
            r#"{{"registry-mirrors": {{"registry.invalid": ["{}"]}}}}"#,
            reg.addr
        ),
    )
    .unwrap();
    let out = u.ok("b", &["pull", "registry.invalid/mirrored/app:1"], None);
    assert!(out.ends_with("registry.invalid/mirrored/app:1\n"), "{out}");
    let out = u.ok("b", &["images", "--format", "{{.Repository}}"], None);
    assert_eq!(out, "registry.invalid/mirrored/app\n");

    // Bad input: named, nothing stored.
    let e = u.fails(
        "c",
        &["pull", &format!("{}/mirrored/app:nope", reg.addr)],
        None,
    );
    // Readable, as docker prints it (docker 28 CLI on dockerd 20.10: "manifest unknown:
    // manifest unknown"), not the registry's JSON.
    assert!(e.contains("manifest unknown: manifest unknown"), "{e}");
    assert!(!e.contains("{\"errors\""), "raw JSON in the error: {e}");
    let e = u.fails("c", &["pull", "Bad//Name"], None);
    assert!(e.contains("Bad//Name"), "{e}");
    std::fs::write(u.registries(), "{ not json").unwrap();
    let e = u.fails("c", &["pull", &tag], None);
    assert!(e.contains("registries.json"), "{e}");
    std::fs::remove_file(u.registries()).unwrap();
    std::fs::write(u.docker_config(), "[1,2]").unwrap();
    let e = u.fails("c", &["pull", &tag], None);
    assert!(
        e.contains("config.json") && e.contains("not a JSON object"),
        "{e}"
    );
    let o = u.run("c", &["pull"], None);
    assert_eq!(o.status.code(), Some(125));
    let o = u.run("c", &["login", "--password-stdin", &reg.addr], Some("x"));
    assert_eq!(o.status.code(), Some(125));
    let o = u.run("c", &["images", "-q"], None);
    assert!(o.stdout.is_empty());
}

/// A pull killed with SIGKILL mid-download leaves a store the next pull
/// uses, and the next pull reuses the layers that were complete.
#[test]
fn pull_killed_mid_download_then_pulled_again() {
    let Some(reg) = Registry::start(&[]) else {
        return;
    };
    let u = User::new();
    let tag = format!("{}/kill/app:1", reg.addr);
    // A big image pulled through a proxy that stalls every blob download
    // after 1 MiB, and a small one pulled directly.
    u.import("a", &tag, &[("big", noise(4 << 20))]);
    let small = format!("{}/kill/small:1", reg.addr);
    u.import("a", &small, &[("small", b"s".to_vec())]);
    u.ok("a", &["push", &tag], None);
    u.ok("a", &["push", &small], None);

    let proxy = FaultProxy::start(
        &reg.addr,
        "/blobs/sha256:",
        Fault::Stall {
            bytes: 1 << 20,
            secs: 30,
            times: 1000,
        },
    );
    let proxied = format!("{}/kill/app:1", proxy.addr);
    let mut child = u
        .cmd("b", &["pull", &proxied])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until a blob download is under way (its ingest file exists).
    let ingest = u.root("b").join("content/ingest");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let busy = std::fs::read_dir(&ingest)
            .map(|d| {
                d.flatten()
                    .any(|e| e.metadata().map(|m| m.len() > 0).unwrap_or(false))
            })
            .unwrap_or(false);
        if busy {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pull never started a download"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // The store still works: the small image pulls, then the big one, and
    // nothing of the killed pull is left once the store was opened again.
    u.ok("b", &["pull", &small], None);
    let out = u.ok("b", &["pull", &tag], None);
    assert!(out.contains("Pull complete"), "{out}");
    let left: Vec<_> = std::fs::read_dir(&ingest).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    let incomplete: Vec<_> = std::fs::read_dir(u.root("b").join("snapshots"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("incomplete"))
        .collect();
    assert!(incomplete.is_empty(), "{incomplete:?}");
    // A complete layer is reused: pulling a second tag of the same image
    // downloads nothing.
    u.ok(
        "a",
        &["tag", &tag, &format!("{}/kill/again:1", reg.addr)],
        None,
    );
    u.ok("a", &["push", &format!("{}/kill/again:1", reg.addr)], None);
    let out = u.ok("b", &["pull", &format!("{}/kill/again:1", reg.addr)], None);
    assert!(out.contains("Already exists"), "{out}");
    assert!(!out.contains("Pull complete"), "{out}");
}

#[test]
fn proxy_variables_are_used() {
    let Some(reg) = Registry::start(&[]) else {
        return;
    };
    let u = User::new();
    let tag = format!("{}/proxied/app:1", reg.addr);
    u.import("a", &tag, &[("p", b"p".to_vec())]);
    u.ok("a", &["push", &tag], None);
    let proxy = FaultProxy::start(&reg.addr, "-", Fault::None);
    let o = u
        .cmd("b", &["pull", &tag])
        .env("HTTP_PROXY", format!("http://{}", proxy.addr))
        .env("http_proxy", format!("http://{}", proxy.addr))
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seen = proxy.seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|s| s.path.starts_with(&format!("http://{}/v2/", reg.addr))),
        "{seen:?}"
    );
    // An unreachable proxy: the error names the failure, nothing stored.
    let o = u
        .cmd("c", &["pull", &tag])
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("http_proxy", "http://127.0.0.1:9")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("onnect"), "{e}");
}

#[test]
fn token_auth_login_push_pull() {
    let Some(issuer) = regcommon::TokenIssuer::start("dave", "t0ken") else {
        return;
    };
    let Some(reg) = Registry::start_token(&issuer) else {
        return;
    };
    let u = User::new();
    let tag = format!("{}/tok/app:1", reg.addr);
    u.import("a", &tag, &[("t", b"t".to_vec())]);
    let e = u.fails("a", &["push", &tag], None);
    assert!(e.contains("unauthorized"), "{e}");
    let e = u.fails("a", &["login", "-u", "dave", "-p", "nope", &reg.addr], None);
    assert!(e.contains("unauthorized"), "{e}");
    let o = u.run(
        "a",
        &["login", "-u", "dave", "-p", "t0ken", &reg.addr],
        None,
    );
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--password-stdin"),
        "the insecure-flag warning"
    );
    u.ok("a", &["push", &tag], None);
    let out = u.ok("b", &["pull", &tag], None);
    assert!(out.contains("Pull complete"), "{out}");
    let scopes = issuer.scopes.lock().unwrap().clone();
    assert!(
        scopes.iter().any(|s| s == "repository:tok/app:pull,push"),
        "{scopes:?}"
    );
}

#[test]
fn pull_all_tags() {
    let Some(reg) = Registry::start(&[]) else {
        return;
    };
    let u = User::new();
    for t in ["1", "2"] {
        let tag = format!("{}/many/app:{t}", reg.addr);
        u.import("a", &tag, &[("v", t.as_bytes().to_vec())]);
        u.ok("a", &["push", &tag], None);
    }
    let repo = format!("{}/many/app", reg.addr);
    let out = u.ok("b", &["pull", "-a", &repo], None);
    assert!(out.ends_with(&format!("\n{repo}\n")), "{out}");
    let out = u.ok("b", &["images", "--format", "{{.Tag}}"], None);
    let mut tags: Vec<&str> = out.lines().collect();
    tags.sort();
    assert_eq!(tags, ["1", "2"]);
    let o = u.run("b", &["pull", "-a", &format!("{repo}:1")], None);
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn run_pulls_a_missing_image() {
    let Some(reg) = Registry::start(&[]) else {
        return;
    };
    let u = User::new();
    let bb = std::fs::read("/bin/busybox").expect("busybox-static is installed");
    let tag = format!("{}/run/bb:1", reg.addr);
    u.import(
        "a",
        &tag,
        &[("busybox", bb), ("hello", b"from the registry\n".to_vec())],
    );
    u.ok("a", &["push", &tag], None);

    // Not here: --pull never refuses, the default pulls (progress on
    // stderr, the container's output on stdout). `--network none`: berth
    // runs in this machine's namespace here (the registry listens on its
    // 127.0.0.1), so its containers must not make bridges or rules in it.
    let run = |flags: &[&str], cmd: &[&str]| {
        let mut a = vec!["run", "--network", "none", "--rm"];
        a.extend_from_slice(flags);
        a.push(&tag);
        a.extend_from_slice(cmd);
        u.run("b", &a, None)
    };
    let o = run(&["--pull", "never"], &["/busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    let o = run(&[], &["/busybox", "cat", "/hello"]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    assert_eq!(out, "from the registry\n");
    assert!(
        err.contains("Unable to find image") && err.contains("Pull complete"),
        "{err}"
    );
    // Here now: no pull; --pull always checks the registry again.
    let o = run(&[], &["/busybox", "true"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("Pulling"));
    let o = run(&["--pull", "always"], &["/busybox", "true"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("Image is up to date"));
    // -q: the pull says nothing (docker's "Suppress the pull output").
    let o = run(&["-q", "--pull", "always"], &["/busybox", "true"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "", "{o:?}");
    let o = u.run(
        "b",
        &[
            "run",
            "--rm",
            "--pull",
            "sometimes",
            &tag,
            "/busybox",
            "true",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(125));
    let o = u.run(
        "c",
        &[
            "run",
            "--network",
            "none",
            "--rm",
            &format!("{}/run/none:1", reg.addr),
            "true",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(125));
}

/// Lines of the registry's access log that upload a blob's bytes (the
/// `PUT …/blobs/uploads/…?digest=` that completes an upload).
fn blob_puts(reg: &Registry, repo: &str) -> usize {
    reg.log()
        .lines()
        .filter(|l| l.contains(&format!("\"PUT /v2/{repo}/blobs/uploads/")))
        .count()
}

/// docker 28's cross-repository mount: the repositories each blob was
/// pulled from or pushed to are remembered in the store, so a push to
/// another repository of the same registry mounts those layers ("Mounted
/// from …", no upload), even for an image that is not tagged in the source
/// repository (one committed on top of a pulled base). A registry that
/// does not have the blob in the remembered repository, or another
/// registry, gets an upload.
#[test]
fn push_mounts_layers_known_in_another_repository() {
    let Some(reg) = Registry::start(&[]) else {
        return;
    };
    let u = User::new();
    let base = format!("{}/team/base:1", reg.addr);
    u.import("a", &base, &[("base.txt", noise(200_000))]);
    u.ok("a", &["push", &base], None);

    // Pulled in another store, tagged into another repository, pushed.
    u.ok("b", &["pull", &base], None);
    let copy = format!("{}/team/copy:1", reg.addr);
    u.ok("b", &["tag", &base, &copy], None);
    let before = blob_puts(&reg, "team/copy");
    let out = u.ok("b", &["push", &copy], None);
    assert!(out.contains(": Mounted from team/base"), "{out}");
    assert!(!out.contains(": Pushed"), "{out}");
    assert_eq!(blob_puts(&reg, "team/copy"), before, "{}", reg.log());

    // An image made on top of the base, never tagged in team/base: its
    // base layer is mounted from where it was pulled, its own layer goes up.
    u.ok("b", &["create", "--name", "c", &base, "x"], None);
    let derived = format!("{}/team/derived:1", reg.addr);
    u.ok(
        "b",
        &["commit", "-c", "LABEL derived=1", "c", &derived],
        None,
    );
    u.ok("b", &["rm", "c"], None);
    u.ok("b", &["rmi", &base, &copy], None);
    let out = u.ok("b", &["push", &derived], None);
    assert!(out.contains(": Mounted from team/"), "{out}");
    let out2 = u.ok("c", &["pull", &derived], None);
    assert!(out2.contains("Pull complete"), "{out2}");

    // The registry lost the source repository: the mount is refused (202)
    // and the layer is uploaded.
    u.ok("d", &["pull", &base], None);
    let other = format!("{}/team/other:1", reg.addr);
    u.ok("d", &["tag", &base, &other], None);
    for r in ["base", "copy", "derived"] {
        std::fs::remove_dir_all(
            reg._dir
                .path()
                .join("storage/docker/registry/v2/repositories/team")
                .join(r),
        )
        .unwrap();
    }
    let out = u.ok("d", &["push", &other], None);
    assert!(out.contains(": Pushed"), "{out}");
    assert!(!out.contains("Mounted"), "{out}");
    assert!(blob_puts(&reg, "team/other") > 0, "{}", reg.log());

    // Another registry: nothing to mount from, uploaded.
    let Some(reg2) = Registry::start(&[]) else {
        return;
    };
    let moved = format!("{}/team/base:1", reg2.addr);
    u.ok("d", &["tag", &other, &moved], None);
    let out = u.ok("d", &["push", &moved], None);
    assert!(out.contains(": Pushed"), "{out}");
    assert!(!reg2.log().contains("mount="), "{}", reg2.log());
}

//! `berth serve` against the real docker CLI (28.x, `/usr/local/bin/docker`)
//! and raw HTTP: each test starts its own server on a private socket and a
//! private `--root`, inside a throwaway network namespace that plays the
//! host (`TestNetns`: bridges and firewall rules never touch this
//! machine's). Images come from a busybox rootfs tarball (`berth import`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
#[path = "../../registry/tests/common/mod.rs"]
mod regcommon;
use common::{RootfsTar, TestNetns, berth, berth_command, ok};

const DOCKER: &str = "/usr/local/bin/docker";

const LINKS: &[&str] = &[
    "sh", "echo", "cat", "ls", "sleep", "true", "false", "id", "hostname", "env", "ps", "wget",
];

struct Server {
    _t: tempfile::TempDir,
    root: PathBuf,
    dir: PathBuf,
    sock: PathBuf,
    child: Option<Child>,
    ns: Option<TestNetns>,
}

impl Server {
    fn new() -> Server {
        Server::with_netns(true)
    }

    /// `netns` false: berth serve in this machine's namespace (to reach a
    /// registry on its 127.0.0.1); its containers must then use
    /// `--network none`.
    fn with_netns(netns: bool) -> Server {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_path_buf();
        let root = dir.join("root");
        let sock = dir.join("berth.sock");
        let mut tar = RootfsTar::busybox(&["bin", "etc", "tmp", "data"], LINKS);
        tar.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644);
        let tarball = dir.join("busybox.tar");
        tar.write(&tarball);
        let ns = netns.then(|| TestNetns::new("api"));
        if let Some(ns) = &ns {
            ns.host_berth(&root);
        }
        ok(
            &root,
            &["import", tarball.to_str().unwrap(), "busybox:latest"],
        );
        let mut s = Server {
            _t: t,
            root,
            dir,
            sock,
            child: None,
            ns,
        };
        s.start();
        s
    }

    /// Starts `berth serve` and waits for its socket to answer.
    fn start(&mut self) {
        let child = berth_command(&self.root)
            .args(["serve", "-H", &format!("unix://{}", self.sock.display())])
            // Registry credentials only from the requests (X-Registry-Auth),
            // never this machine's docker config.
            .env("DOCKER_CONFIG", self.dir.join("server-docker-config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t = Instant::now();
        while UnixStream::connect(&self.sock).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "berth serve did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the server (SIGTERM, by its pid).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill on the pid of our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let t = Instant::now();
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if t.elapsed() > Duration::from_secs(10) {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("berth serve did not stop on SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn docker_cmd(&self) -> Command {
        let mut c = Command::new(DOCKER);
        c.env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.dir.join("docker-config"))
            .env_remove("DOCKER_API_VERSION")
            .env_remove("DOCKER_CONTEXT");
        c
    }

    /// `docker run --network none ARGS…` (the network is not under test), its output.
    fn run(&self, args: &[&str]) -> String {
        let mut a = vec!["run", "--network", "none"];
        a.extend_from_slice(args);
        self.ok(&a)
    }

    /// docker with piped stdin and stdout, running.
    fn spawn(&self, args: &[&str], envs: &[(&str, &str)]) -> Child {
        self.docker_cmd()
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// docker with `input` on its stdin (then closed); its output.
    fn with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut c = self.spawn(args, &[]);
        c.stdin.take().unwrap().write_all(input).unwrap();
        c.wait_with_output().unwrap()
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.docker_cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        succeeded(&format!("docker {args:?}"), self.docker(args))
    }

    /// docker fails with `code`; its stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let o = self.docker(args);
        assert_eq!(
            o.status.code(),
            Some(code),
            "docker {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// One raw HTTP request; the status code, headers and body.
    fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
        let mut s = UnixStream::connect(&self.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        // A server that refuses a body answers before reading all of it.
        let _ = s.write_all(body);
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let split = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = String::from_utf8_lossy(&resp[..split]).into_owned();
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap();
        let mut body = resp[split + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body);
        }
        (code, head, body)
    }

    /// A URL fetched from the test's namespace (the "host" of the server's
    /// containers), retried until it answers (10 s at most).
    fn fetch(&self, url: &str) -> String {
        let ns = self.ns.as_ref().expect("a server in a test namespace");
        let t = Instant::now();
        loop {
            let o = ns
                .command("busybox")
                .args(["wget", "-qO-", url])
                .output()
                .unwrap();
            if o.status.success() {
                return String::from_utf8_lossy(&o.stdout).into_owned();
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{url} never answered"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn json(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let (c, _, b) = self.http(method, path, body.as_bytes());
        (c, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    fn wait_state(&self, c: &str, want: &str) {
        let t = Instant::now();
        loop {
            let o = self.docker(&["inspect", "-f", "{{.State.Status}}", c]);
            if String::from_utf8_lossy(&o.stdout).trim() == want {
                return;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "{c} never {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The stdout of a command that must have succeeded.
fn succeeded(what: &str, o: Output) -> String {
    assert!(
        o.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let ids = berth(&self.root, &["ps", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = berth(&self.root, &["rm", "-f", id]);
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let root = self.root.to_string_lossy().to_string();
        for l in mounts.lines().filter(|l| l.contains(&root)) {
            let target = l.split(' ').nth(4).unwrap_or("").to_string();
            let _ = Command::new("umount").arg("-l").arg(&target).status();
        }
        drop(self.ns.take());
    }
}

#[test]
fn version_ping_and_negotiation() {
    let s = Server::new();
    let v = s.ok(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.MinAPIVersion}}",
    ]);
    assert_eq!(v.trim(), "1.45 1.24");
    let info = s.ok(&[
        "info",
        "--format",
        "{{.Images}} {{.Containers}} {{.OSType}}",
    ]);
    assert_eq!(info.trim(), "1 0 linux");
    // _ping, GET and HEAD, with dockerd's headers.
    for m in ["GET", "HEAD"] {
        let (code, head, body) = s.http(m, "/_ping", b"");
        assert_eq!(code, 200);
        let h = head.to_ascii_lowercase();
        for want in [
            "api-version: 1.45",
            "builder-version:",
            "ostype: linux",
            "docker-experimental: false",
            "cache-control: no-cache",
        ] {
            assert!(h.contains(want), "{m} /_ping lacks {want}: {head}");
        }
        assert_eq!(body, if m == "GET" { b"OK".to_vec() } else { vec![] });
    }
    // Versioned and unversioned paths; versions out of range.
    assert_eq!(s.json("GET", "/info", "").0, 200);
    assert_eq!(s.json("GET", "/v1.24/info", "").0, 200);
    let (c, v) = s.json("GET", "/v1.99/info", "");
    assert_eq!(c, 400);
    assert!(v["message"].as_str().unwrap().contains("too new"), "{v}");
    let (c, v) = s.json("GET", "/v1.12/info", "");
    assert_eq!(c, 400);
    assert!(v["message"].as_str().unwrap().contains("too old"), "{v}");
    // An old client.
    let o = s
        .docker_cmd()
        .env("DOCKER_API_VERSION", "1.24")
        .args(["version", "--format", "{{.Client.APIVersion}}"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1.24");
    let o = s
        .docker_cmd()
        .env("DOCKER_API_VERSION", "1.24")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "echo",
            "old-client",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "old-client");
}

#[test]
fn errors_are_dockers() {
    let s = Server::new();
    // Malformed JSON, a field of the wrong type, no image.
    let (c, v) = s.json("POST", "/v1.45/containers/create", "{bad");
    assert_eq!(c, 400, "{v}");
    assert!(v["message"].is_string());
    let (c, v) = s.json(
        "POST",
        "/containers/create",
        r#"{"Image":"busybox","Tty":"yes"}"#,
    );
    assert_eq!(c, 400, "{v}");
    let (c, _) = s.json("POST", "/containers/create", "{}");
    assert_eq!(c, 400);
    // Unknown ids and images.
    let (c, v) = s.json("GET", "/v1.45/containers/nosuch/json", "");
    assert_eq!(c, 404);
    assert_eq!(v["message"], "No such container: nosuch");
    let (c, v) = s.json("POST", "/containers/create", r#"{"Image":"nosuchimage"}"#);
    assert_eq!(c, 404, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("No such image"),
        "{v}"
    );
    assert_eq!(s.json("GET", "/images/nosuch/json", "").0, 404);
    assert_eq!(s.json("GET", "/volumes/nosuch", "").0, 404);
    assert_eq!(s.json("GET", "/networks/nosuch", "").0, 404);
    assert_eq!(s.json("POST", "/exec/nosuch/start", "{}").0, 404);
    assert_eq!(s.json("GET", "/nosuch/path", "").0, 404);
    // Conflicts: a name in use, removing a running container.
    s.run(&["-d", "--name", "c1", "busybox", "sleep", "60"]);
    let (c, v) = s.json(
        "POST",
        "/containers/create?name=c1",
        r#"{"Image":"busybox"}"#,
    );
    assert_eq!(c, 409, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("already in use"),
        "{v}"
    );
    let (c, _) = s.json("DELETE", "/containers/c1", "");
    assert_eq!(c, 409);
    // Starting a running container: not modified.
    assert_eq!(s.json("POST", "/containers/c1/start", "").0, 304);
    // A body larger than the limit.
    let big = format!(
        r#"{{"Image":"busybox","Env":["A={}"]}}"#,
        "x".repeat(5 << 20)
    );
    assert_eq!(s.http("POST", "/containers/create", big.as_bytes()).0, 413);
    // The docker CLI's view of the same.
    let e = s.fails(&["inspect", "--type", "container", "nosuch"], 1);
    assert!(e.contains("No such container"), "{e}");
    let e = s.fails(&["rm", "c1"], 1);
    assert!(e.contains("stop the container before removing"), "{e}");
    s.ok(&["rm", "-f", "c1"]);
    // The server survived all of it.
    assert_eq!(s.json("GET", "/_ping", "").0, 200);
}

#[test]
fn container_lifecycle() {
    let s = Server::new();
    // run --rm: output and exit code through attach and wait.
    assert_eq!(s.run(&["--rm", "busybox", "echo", "hello"]).trim(), "hello");
    let e = s.fails(
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo oops >&2; exit 3",
        ],
        3,
    );
    assert!(e.contains("oops"), "{e}");
    assert_eq!(s.ok(&["ps", "-aq"]).trim(), "", "--rm containers are gone");
    // Short containers without --rm: docker run waits with condition=next-exit,
    // sent before the start; the exit may come before the wait sees it running.
    for _ in 0..5 {
        s.run(&["busybox", "true"]);
        s.fails(
            &["run", "--network", "none", "busybox", "sh", "-c", "exit 6"],
            6,
        );
    }
    s.ok(&["container", "prune", "-f"]);
    // run -d, ps, logs, inspect, exec.
    let id = s
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "web",
            "-e",
            "X=1",
            "-l",
            "k=v",
            "busybox",
            "sh",
            "-c",
            "echo started; echo warn >&2; sleep 60",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    let ps = s.ok(&["ps", "--format", "{{.Names}} {{.State}}"]);
    assert_eq!(ps.trim(), "web running");
    let f = s.ok(&["ps", "-q", "--filter", "label=k=v"]);
    assert_eq!(f.trim(), &id[..12]);
    assert_eq!(s.ok(&["ps", "-q", "--filter", "status=exited"]).trim(), "");
    let t = Instant::now();
    loop {
        let o = s.docker(&["logs", "web"]);
        if String::from_utf8_lossy(&o.stdout).contains("started") {
            assert!(String::from_utf8_lossy(&o.stderr).contains("warn"));
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no logs");
        std::thread::sleep(Duration::from_millis(20));
    }
    let v: Value = serde_json::from_str(&s.ok(&["inspect", "web"])).unwrap();
    assert_eq!(v[0]["Id"], id.as_str());
    assert_eq!(v[0]["Name"], "/web");
    assert_eq!(v[0]["State"]["Running"], true);
    assert_eq!(v[0]["Config"]["Labels"]["k"], "v");
    // berth's own CLI sees the same container, the same way.
    let ours: Value = serde_json::from_str(&ok(&s.root, &["inspect", "web"])).unwrap();
    assert_eq!(ours[0]["Id"], v[0]["Id"]);
    assert_eq!(ours[0]["Config"], v[0]["Config"]);
    assert_eq!(s.ok(&["exec", "web", "sh", "-c", "echo $X"]).trim(), "1");
    s.fails(&["exec", "web", "sh", "-c", "exit 7"], 7);
    let out = s.with_input(&["exec", "-i", "web", "cat"], b"through stdin\n");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");
    let top = s.ok(&["top", "web"]);
    assert!(top.contains("sleep 60"), "{top}");
    // pause, rename, restart, stop, kill, wait, rm.
    s.ok(&["pause", "web"]);
    s.wait_state("web", "paused");
    s.ok(&["unpause", "web"]);
    s.ok(&["rename", "web", "web2"]);
    s.ok(&["stop", "-t", "1", "web2"]);
    s.wait_state("web2", "exited");
    s.ok(&["restart", "-t", "1", "web2"]);
    s.wait_state("web2", "running");
    s.ok(&["kill", "web2"]);
    assert_eq!(s.ok(&["wait", "web2"]).trim(), "137");
    s.ok(&["rm", "web2"]);
    s.fails(&["inspect", "--type", "container", "web2"], 1);
    // create + start + wait + rm, and prune.
    let id = s
        .ok(&[
            "create",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "exit 5",
        ])
        .trim()
        .to_string();
    s.ok(&["start", &id]);
    assert_eq!(s.ok(&["wait", &id]).trim(), "5");
    let p = s.ok(&["container", "prune", "-f"]);
    assert!(p.contains(&id), "{p}");
}

#[test]
fn logs_follow_and_attach() {
    let s = Server::new();
    s.run(&[
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo tick$i; sleep 0.2; done",
    ]);
    let out = s.ok(&["logs", "-f", "ticker"]);
    assert_eq!(out, "tick1\ntick2\ntick3\n");
    // attach to a running container with stdin (run -d -i: no StdinOnce, its
    // stdin stays open when ours ends, as dockerd's; so the client waits on,
    // and is stopped here).
    s.run(&[
        "-d",
        "-i",
        "--name",
        "cat",
        "busybox",
        "sh",
        "-c",
        "read x; echo got $x; read y || echo stdin-closed",
    ]);
    let mut c = Command::new("timeout");
    c.args([
        "-s",
        "KILL",
        "3",
        DOCKER,
        "attach",
        "--sig-proxy=false",
        "cat",
    ])
    .env("DOCKER_HOST", format!("unix://{}", s.sock.display()))
    .env("DOCKER_CONFIG", s.dir.join("docker-config"))
    .stdin(Stdio::piped())
    .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"via attach\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got via attach\n");
    s.wait_state("cat", "running");
    s.ok(&["rm", "-f", "cat"]);
    // A tty: the detach keys leave it running.
    s.run(&["-d", "-i", "-t", "--name", "tty", "busybox", "sh"]);
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "(sleep 1; printf 'echo tty-attached\\r'; sleep 0.5; printf '\\020\\021'; sleep 1) | timeout -s KILL 20 script -qec '{DOCKER} attach tty' /dev/null"
        ))
        .env("DOCKER_HOST", format!("unix://{}", s.sock.display()))
        .env("DOCKER_CONFIG", s.dir.join("docker-config"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("tty-attached") && text.contains("read escape sequence"),
        "{text}"
    );
    std::thread::sleep(Duration::from_millis(300));
    s.wait_state("tty", "running");
    s.ok(&["rm", "-f", "tty"]);
    // run -i: stdin through the attach made before the start.
    let out = s.with_input(
        &[
            "run",
            "-i",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "cat; exit 2",
        ],
        b"piped\n",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped\n");
    assert_eq!(out.status.code(), Some(2));
    // A tty through a pty (`script`): docker run -it.
    let o = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{DOCKER} run -it --rm --network none busybox sh -c 'tty; echo tty-ok'"
        ))
        .arg("/dev/null")
        .env("DOCKER_HOST", format!("unix://{}", s.sock.display()))
        .env("DOCKER_CONFIG", s.dir.join("docker-config"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("/dev/pts/") && text.contains("tty-ok"),
        "{text}"
    );
    // A client that goes away mid-stream leaves the container as it was.
    s.run(&[
        "-d",
        "--name",
        "long",
        "busybox",
        "sh",
        "-c",
        "while true; do echo x; sleep 0.05; done",
    ]);
    {
        let mut st = UnixStream::connect(&s.sock).unwrap();
        st.write_all(b"GET /containers/long/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: d\r\n\r\n")
            .unwrap();
        let mut b = [0u8; 256];
        let _ = st.read(&mut b).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    s.wait_state("long", "running");
    assert_eq!(s.json("GET", "/_ping", "").0, 200);
}

#[test]
fn images_volumes_networks_cp() {
    let s = Server::new();
    // Images.
    let imgs = s.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(imgs.trim(), "busybox:latest");
    s.ok(&["tag", "busybox", "mybox:1"]);
    assert!(s.ok(&["images"]).contains("mybox"));
    let id = s.ok(&["image", "inspect", "-f", "{{.Id}}", "mybox:1"]);
    assert!(id.starts_with("sha256:"), "{id}");
    assert!(!s.ok(&["history", "mybox:1"]).is_empty());
    let tarball = s.dir.join("saved.tar");
    s.ok(&["save", "-o", tarball.to_str().unwrap(), "mybox:1"]);
    let out = s.ok(&["rmi", "mybox:1"]);
    assert!(out.contains("Untagged: mybox:1"), "{out}");
    let out = s.ok(&["load", "-i", tarball.to_str().unwrap()]);
    assert!(out.contains("mybox:1"), "{out}");
    s.ok(&["rmi", "mybox:1"]);
    // An image in use cannot go.
    s.ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "user",
        "busybox",
        "true",
    ]);
    s.fails(&["rmi", "busybox"], 1);
    s.ok(&["rm", "user"]);
    // Volumes.
    assert_eq!(s.ok(&["volume", "create", "v1"]).trim(), "v1");
    assert!(s.ok(&["volume", "ls", "-q"]).contains("v1"));
    let mp = s.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "v1"]);
    assert!(mp.contains("v1"), "{mp}");
    let out = s.run(&[
        "--rm",
        "-v",
        "v1:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f; cat /data/f",
    ]);
    assert_eq!(out.trim(), "kept");
    let bind = s.dir.join("bind");
    std::fs::create_dir(&bind).unwrap();
    std::fs::write(bind.join("in"), "from host").unwrap();
    let out = s.run(&[
        "--rm",
        "--mount",
        &format!("type=bind,source={},target=/b,readonly", bind.display()),
        "busybox",
        "cat",
        "/b/in",
    ]);
    assert_eq!(out, "from host");
    s.ok(&["volume", "rm", "v1"]);
    s.fails(&["volume", "inspect", "v1"], 1);
    // Networks (in the test's namespace).
    let nid = s.ok(&["network", "create", "apinet"]).trim().to_string();
    assert_eq!(nid.len(), 64);
    let ls = s.ok(&["network", "ls", "--format", "{{.Name}}"]);
    for n in ["bridge", "host", "none", "apinet"] {
        assert!(ls.lines().any(|l| l == n), "{n} missing: {ls}");
    }
    s.ok(&[
        "run",
        "-d",
        "--name",
        "n1",
        "--network",
        "apinet",
        "busybox",
        "sleep",
        "60",
    ]);
    let ip = s.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.apinet.IPAddress}}",
        "n1",
    ]);
    assert!(!ip.trim().is_empty(), "no address on apinet");
    s.ok(&["network", "create", "other"]);
    s.ok(&["network", "connect", "other", "n1"]);
    let nets = s.ok(&["inspect", "-f", "{{len .NetworkSettings.Networks}}", "n1"]);
    assert_eq!(nets.trim(), "2");
    s.ok(&["network", "disconnect", "other", "n1"]);
    s.ok(&["network", "rm", "other"]);
    // cp both ways.
    let src = s.dir.join("up.txt");
    std::fs::write(&src, "uploaded\n").unwrap();
    s.ok(&["cp", src.to_str().unwrap(), "n1:/tmp/"]);
    assert_eq!(s.ok(&["exec", "n1", "cat", "/tmp/up.txt"]), "uploaded\n");
    s.ok(&[
        "exec",
        "n1",
        "sh",
        "-c",
        "mkdir /tmp/d; echo deep > /tmp/d/f",
    ]);
    let dst = s.dir.join("down");
    s.ok(&["cp", "n1:/tmp/d", dst.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(dst.join("f")).unwrap(), "deep\n");
    let e = s.fails(&["cp", "n1:/nonexistent", dst.to_str().unwrap()], 1);
    assert!(e.contains("Could not find the file"), "{e}");
    // Published ports (PortBindings) and resources through HostConfig.
    s.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "18080:80",
        "-p",
        "127.0.0.1::81",
        "--memory",
        "64m",
        "--restart",
        "on-failure:2",
        "busybox",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    let port = s.ok(&["port", "web", "80"]);
    assert_eq!(port.trim(), "0.0.0.0:18080");
    let v: Value = serde_json::from_str(&s.ok(&["inspect", "web"])).unwrap();
    assert_eq!(v[0]["HostConfig"]["Memory"], 64 << 20);
    assert_eq!(
        v[0]["HostConfig"]["PortBindings"]["81/tcp"][0]["HostIp"],
        "127.0.0.1"
    );
    s.ok(&["cp", src.to_str().unwrap(), "web:/index.html"]);
    assert_eq!(s.fetch("http://127.0.0.1:18080/index.html"), "uploaded\n");
    // Namespace modes and kernel parameters through HostConfig (PidMode, IpcMode, ShmSize,
    // Sysctls, OomScoreAdj) and Config.Domainname, as the docker CLI sends them.
    let me = std::process::id();
    let out = s.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--pid",
        "host",
        "--ipc",
        "shareable",
        "--shm-size",
        "8m",
        "--sysctl",
        "kernel.shmmax=1000000",
        "--oom-score-adj",
        "300",
        "--domainname",
        "api.test",
        "busybox",
        "sh",
        "-c",
        &format!(
            "ls -d /proc/{me}; cat /proc/sys/kernel/shmmax /proc/sys/kernel/domainname \
             /proc/self/oom_score_adj"
        ),
    ]);
    assert_eq!(out, format!("/proc/{me}\n1000000\napi.test\n300\n"));
    let e = s.fails(
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--sysctl",
            "kernel.core_pattern=x",
            "busybox",
            "true",
        ],
        125,
    );
    assert!(e.contains("is not allowed"), "{e}");
    s.ok(&["rm", "-f", "web"]);
    s.ok(&["rm", "-f", "n1"]);
    s.ok(&["network", "rm", "apinet"]);
    s.ok(&["system", "df"]);
}

#[test]
fn containers_outlive_the_server() {
    let mut s = Server::new();
    s.run(&["-d", "--name", "keep", "busybox", "sleep", "60"]);
    s.stop();
    assert!(
        !s.sock.exists(),
        "the socket is removed when the server stops"
    );
    let st = ok(&s.root, &["inspect", "-f", "{{.State.Status}}", "keep"]);
    assert_eq!(st.trim(), "running");
    s.start();
    assert_eq!(s.ok(&["ps", "--format", "{{.Names}}"]).trim(), "keep");
    // The socket: 0660.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&s.sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    // A server killed (SIGKILL) while a client waits on the container: the
    // client's connection ends, the container runs on, a new server
    // replaces the stale socket and serves the next wait.
    let waiter = s.spawn(&["wait", "keep"], &[]);
    std::thread::sleep(Duration::from_millis(300));
    if let Some(c) = s.child.as_mut() {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    s.child = None;
    let out = waiter.wait_with_output().unwrap();
    assert!(!out.status.success(), "the wait outlived its server");
    let st = ok(&s.root, &["inspect", "-f", "{{.State.Status}}", "keep"]);
    assert_eq!(st.trim(), "running");
    assert!(s.sock.exists(), "a killed server leaves its socket");
    s.start();
    let waiter = s.spawn(&["wait", "keep"], &[]);
    std::thread::sleep(Duration::from_millis(300));
    s.ok(&["kill", "keep"]);
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "137");
    s.ok(&["rm", "-f", "keep"]);

    // An attached client (`docker attach`, stdin and stdout) while the
    // server is killed: its connection ends, the container and its open
    // stdin live on, and a client attached to the next server talks to it.
    s.run(&[
        "-d",
        "-i",
        "--name",
        "talk",
        "busybox",
        "sh",
        "-c",
        "while read l; do echo got:$l; done; echo stdin-closed",
    ]);
    let talk = |s: &Server, line: &str| {
        let mut c = s.spawn(&["attach", "talk"], &[]);
        let mut stdin = c.stdin.take().unwrap();
        let mut out = std::io::BufReader::new(c.stdout.take().unwrap());
        // docker attach reads its stdin once the attach is made: the line
        // reaches the container then, and its answer this client.
        std::io::Write::write_all(&mut stdin, format!("{line}\n").as_bytes()).unwrap();
        let mut got = String::new();
        std::io::BufRead::read_line(&mut out, &mut got).unwrap();
        (c, stdin, got)
    };
    let (mut c, _stdin, got) = talk(&s, "one");
    assert_eq!(got, "got:one\n");
    if let Some(srv) = s.child.as_mut() {
        srv.kill().unwrap();
        srv.wait().unwrap();
    }
    s.child = None;
    let st = c.wait().unwrap();
    assert!(!st.success(), "the attach outlived its server");
    let st = ok(&s.root, &["inspect", "-f", "{{.State.Status}}", "talk"]);
    assert_eq!(st.trim(), "running");
    s.start();
    let (c, stdin, got) = talk(&s, "two");
    assert_eq!(got, "got:two\n");
    // Its stdin is not StdinOnce (`run -d -i`): the attach's end of input
    // does not end the container, and the attach lasts as long as it does.
    drop(stdin);
    s.ok(&["rm", "-f", "talk"]);
    let _ = c.wait_with_output();
}

#[test]
fn plain_tcp_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(t.path())
        .args(["serve", "-H", "tcp://127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("plain TCP"), "{e}");
}

#[test]
fn events_stream() {
    let s = Server::new();
    let ev = s.spawn(
        &[
            "events",
            "--filter",
            "type=container",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ],
        &[],
    );
    std::thread::sleep(Duration::from_millis(300));
    s.run(&[
        "-d",
        "--name",
        "evt",
        "busybox",
        "sh",
        "-c",
        "sleep 0.3; exit 4",
    ]);
    assert_eq!(s.ok(&["wait", "evt"]).trim(), "4");
    s.ok(&["rm", "evt"]);
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill on the pid of our own child.
    unsafe { libc::kill(ev.id() as i32, libc::SIGTERM) };
    let out = ev.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let actions: Vec<&str> = text.lines().collect();
    assert_eq!(
        actions,
        ["create evt", "start evt", "die evt", "destroy evt"],
        "{text}"
    );
}

/// Debian's python3 and its docker-py (scripts/test.sh installs
/// python3-docker): the interpreter the SDK tests run, which must have it.
const PYTHON: &str = "/usr/bin/python3";

/// A docker-py script (tests/scripts/) run against `s`; its stdout.
fn docker_py(s: &Server, script: &str, args: &[&str]) -> String {
    let have = Command::new(PYTHON)
        .args(["-c", "import docker"])
        .output()
        .unwrap_or_else(|e| panic!("{PYTHON}: {e} (scripts/test.sh installs python3-docker)"));
    assert!(
        have.status.success(),
        "{PYTHON} has no docker module (apt-get install python3-docker): {}",
        String::from_utf8_lossy(&have.stderr)
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scripts")
        .join(script);
    let o = Command::new(PYTHON)
        .arg(&path)
        .arg(format!("unix://{}", s.sock.display()))
        .args(args)
        .env("DOCKER_CONFIG", s.dir.join("docker-config"))
        .output()
        .unwrap();
    succeeded(script, o)
}

/// The Docker SDK for Python through the same socket: run -d, logs, exec,
/// archive, stats, commit, images tag/build/remove, volumes, networks,
/// events (tests/scripts/docker_py.py).
#[test]
fn docker_py_sdk() {
    let s = Server::new();
    let out = docker_py(&s, "docker_py.py", &[]);
    assert!(out.contains("docker-py ok"), "{out}");
    assert_eq!(s.ok(&["ps", "-aq"]).trim(), "");
}

/// Socket activation: systemd's protocol (`LISTEN_FDS`, `LISTEN_PID`), by
/// systemd-socket-activate, with `-H fd://`.
#[test]
fn socket_activation() {
    if !Path::new("/usr/bin/systemd-socket-activate").exists() {
        eprintln!("skipped: no systemd-socket-activate");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let sock = t.path().join("activated.sock");
    let mut child = Command::new("/usr/bin/systemd-socket-activate")
        .arg("-l")
        .arg(&sock)
        .arg(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(t.path().join("root"))
        .args(["serve", "-H", "fd://"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "no socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = Command::new(DOCKER)
        .env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .env("DOCKER_CONFIG", t.path().join("docker-config"))
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .output()
        .unwrap();
    // SAFETY: kill on the pid of our own child (systemd-socket-activate has
    // exec'd berth by now).
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1.45");
}

/// `tcp://` with `--tlsverify`: the docker CLI with a client certificate
/// signed by the CA gets in; without one it does not (in the test's
/// namespace: its loopback is its own).
#[test]
fn tls_verify() {
    let s = Server::new();
    let d = s.dir.join("tls");
    std::fs::create_dir(&d).unwrap();
    let sh = |script: &str| {
        let o = Command::new("sh")
            .arg("-ec")
            .arg(script)
            .current_dir(&d)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    sh(&format!(
        "openssl req -x509 {ec} -keyout ca-key.pem -out ca.pem -subj /CN=berth-test-ca -days 1 2>/dev/null
         printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext
         printf 'extendedKeyUsage=clientAuth\\n' > client.ext
         openssl req {ec} -keyout server-key.pem -out server.csr -subj /CN=localhost 2>/dev/null
         openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server-cert.pem -days 1 -extfile server.ext 2>/dev/null
         openssl req {ec} -keyout key.pem -out client.csr -subj /CN=client 2>/dev/null
         openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -days 1 -extfile client.ext 2>/dev/null"
    ));
    let p = |f: &str| d.join(f).display().to_string();
    let mut server = berth_command(&s.root)
        .args([
            "serve",
            "-H",
            "tcp://127.0.0.1:23760",
            "--tlsverify",
            "--tlscacert",
            &p("ca.pem"),
            "--tlscert",
            &p("server-cert.pem"),
            "--tlskey",
            &p("server-key.pem"),
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let ns = s.ns.as_ref().unwrap();
    let docker = |tls: &[&str]| {
        ns.command(DOCKER)
            .env("DOCKER_CONFIG", s.dir.join("docker-config"))
            .env_remove("DOCKER_HOST")
            .args(["-H", "tcp://127.0.0.1:23760"])
            .args(tls)
            .args(["version", "--format", "{{.Server.APIVersion}}"])
            .output()
            .unwrap()
    };
    let (ca, cert, key) = (p("ca.pem"), p("cert.pem"), p("key.pem"));
    let with = [
        "--tlsverify",
        "--tlscacert",
        &ca,
        "--tlscert",
        &cert,
        "--tlskey",
        &key,
    ];
    let t = Instant::now();
    let o = loop {
        let o = docker(&with);
        if o.status.success() || t.elapsed() > Duration::from_secs(10) {
            break o;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let without = docker(&["--tlsverify", "--tlscacert", &ca]);
    // SAFETY: kill on the pid of our own child (nsenter execs berth).
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let _ = server.wait();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1.45");
    assert!(
        !without.status.success(),
        "a client without a certificate got in"
    );
}

/// `docker push` and `docker pull` (`/images/{name}/push`, `/images/create`)
/// against Debian's docker-registry on this machine's 127.0.0.1.
#[test]
fn push_and_pull_through_a_registry() {
    let Some(reg) = regcommon::Registry::start(&[]) else {
        eprintln!("skipped: no docker-registry");
        return;
    };
    let s = Server::with_netns(false);
    let tag = format!("{}/api/bb:1", reg.addr);
    s.ok(&["tag", "busybox", &tag]);
    let out = s.ok(&["push", &tag]);
    assert!(out.contains("1"), "{out}");
    s.ok(&["rmi", &tag]);
    let images = || s.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(!images().contains(&tag));
    s.ok(&["pull", &tag]);
    assert!(images().contains(&tag));
    let out = s.ok(&["run", "--rm", "--network", "none", &tag, "echo", "pulled"]);
    assert_eq!(out.trim(), "pulled");
    // A pull that fails: docker's error message, exit 1.
    let e = s.fails(&["pull", &format!("{}/api/nosuch:1", reg.addr)], 1);
    assert!(!e.is_empty());
}

/// docker-compose 1.29 (Debian's, on docker-py 5; $BERTH_TEST_COMPOSE names
/// another): a two-service app with a user network, a named volume and a
/// published port (the server and its containers in the test's namespace);
/// ps, logs, exec, down -v.
#[test]
fn compose_two_services() {
    let compose =
        std::env::var("BERTH_TEST_COMPOSE").unwrap_or_else(|_| "/usr/bin/docker-compose".into());
    let v = Command::new(&compose)
        .arg("version")
        .output()
        .unwrap_or_else(|e| panic!("{compose}: {e} (scripts/test.sh installs docker-compose)"));
    succeeded(&format!("{compose} version"), v);
    let s = Server::new();
    let proj = s.dir.join("proj");
    std::fs::create_dir(&proj).unwrap();
    std::fs::write(
        proj.join("docker-compose.yml"),
        r#"version: "3.8"
services:
  web:
    image: busybox
    command: ["busybox", "httpd", "-f", "-p", "80", "-h", "/data"]
    ports: ["18085:80"]
    volumes: ["webdata:/data"]
    networks: [appnet]
  client:
    image: busybox
    command: ["sh", "-c", "echo client-up; sleep 1000"]
    networks: [appnet]
    links: ["web:frontend"]
networks:
  appnet: {}
volumes:
  webdata: {}
"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        let o = Command::new(&compose)
            .args(["-p", "proj"])
            .args(args)
            .current_dir(&proj)
            .env("DOCKER_HOST", format!("unix://{}", s.sock.display()))
            .env("DOCKER_CONFIG", s.dir.join("docker-config"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        succeeded(&format!("compose {args:?}"), o)
    };
    run(&["up", "-d"]);
    let ps = run(&["ps"]);
    assert!(
        ps.contains("proj_web_1") && ps.contains("proj_client_1"),
        "{ps}"
    );
    assert!(ps.contains("0.0.0.0:18085->80/tcp"), "{ps}");
    run(&[
        "exec",
        "-T",
        "web",
        "sh",
        "-c",
        "echo served > /data/index.html",
    ]);
    // The published port, from the host (the test's namespace) ...
    assert_eq!(s.fetch("http://127.0.0.1:18085/"), "served\n");
    // ... and the other service by name on the user network.
    let out = run(&["exec", "-T", "client", "wget", "-qO-", "http://web/"]);
    assert_eq!(out, "served\n");
    // ... and by its link alias (compose's `links:`, an endpoint's Links).
    let out = run(&["exec", "-T", "client", "wget", "-qO-", "http://frontend/"]);
    assert_eq!(out, "served\n");
    let t = Instant::now();
    while !run(&["logs", "client"]).contains("client-up") {
        assert!(t.elapsed() < Duration::from_secs(10), "no logs");
        std::thread::sleep(Duration::from_millis(50));
    }
    run(&["down", "-v"]);
    assert_eq!(s.ok(&["ps", "-aq"]).trim(), "");
    assert!(!s.ok(&["volume", "ls", "-q"]).contains("proj_webdata"));
    assert!(!s.ok(&["network", "ls"]).contains("proj_appnet"));
}

/// `docker diff` and `docker update` through berth serve (GET
/// /containers/{id}/changes, POST /containers/{id}/update).
#[test]
fn docker_diff_and_update() {
    let s = Server::new();
    s.run(&[
        "-d",
        "--name",
        "dd",
        "busybox",
        "sh",
        "-c",
        "mkdir /tmp/x; echo > /tmp/x/f; sleep 1000",
    ]);
    let t = Instant::now();
    let diff = loop {
        let d = s.ok(&["diff", "dd"]);
        if d.contains("A /tmp/x/f") {
            break d;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{d}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(diff, "C /tmp\nA /tmp/x\nA /tmp/x/f\n");
    assert_eq!(
        s.ok(&["update", "--memory", "64m", "--pids-limit", "20", "dd"])
            .trim(),
        "dd"
    );
    let v = s.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
        "dd",
    ]);
    assert_eq!(v.trim(), "67108864 20");
    let o = s.docker(&["update", "--memory", "1m", "dd"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Minimum memory limit allowed is 6MB"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // update's other fields (MemoryReservation, CpusetMems, BlkioWeight: dropped with the
    // daemon's warning where the kernel has no weight file).
    let o = s.docker(&[
        "update",
        "--memory-reservation",
        "16m",
        "--cpuset-mems",
        "0",
        "--blkio-weight",
        "300",
        "dd",
    ]);
    assert!(o.status.success(), "{o:?}");
    let weights = Path::new("/sys/fs/cgroup/blkio/blkio.weight").exists()
        || Path::new("/sys/fs/cgroup/blkio/blkio.bfq.weight").exists();
    if !weights {
        // docker 28's client prints the daemon's warnings on stdout.
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Weight discarded"),
            "{o:?}"
        );
    }
    let v = s.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.MemoryReservation}} {{.HostConfig.CpusetMems}} {{.HostConfig.BlkioWeight}}",
        "dd",
    ]);
    assert_eq!(
        v.trim(),
        format!("16777216 0 {}", if weights { 300 } else { 0 })
    );
    s.ok(&["rm", "-f", "dd"]);
    // The block I/O throttles and device cgroup rules of HostConfig, as the docker CLI
    // sends them (a loop device of the test's).
    let lo = common::LoopDevice::new(&s.dir);
    let rule = "c 42:* rmw";
    s.ok(&[
        "create",
        "--name",
        "io",
        "--device-read-bps",
        &format!("{}:1mb", lo.0),
        "--device-write-iops",
        &format!("{}:50", lo.0),
        "--device-cgroup-rule",
        rule,
        "busybox",
        "true",
    ]);
    let v: Value = serde_json::from_str(&s.ok(&["inspect", "io"])).unwrap();
    let h = &v[0]["HostConfig"];
    assert_eq!(h["BlkioDeviceReadBps"][0]["Rate"], 1 << 20, "{h}");
    assert_eq!(h["BlkioDeviceWriteIOps"][0]["Rate"], 50, "{h}");
    assert_eq!(h["DeviceCgroupRules"][0], rule, "{h}");
    s.ok(&["rm", "io"]);
}

/// `docker system prune` (containers, networks, volumes, images, build
/// cache: each a prune endpoint) and `docker container prune --filter`
/// through berth serve.
#[test]
fn docker_system_prune() {
    let s = Server::new();
    s.run(&["--name", "gone", "-v", "/anon", "busybox", "true"]);
    s.run(&["--name", "tagged", "--label", "tier=x", "busybox", "true"]);
    s.ok(&["volume", "create", "named"]);
    s.ok(&["network", "create", "spare"]);
    let tagged = s.ok(&["inspect", "-f", "{{.Id}}", "tagged"]);
    let out = s.ok(&["container", "prune", "-f", "--filter", "label=tier=x"]);
    assert!(out.contains(tagged.trim()), "{out}");
    s.ok(&["inspect", "gone"]);
    let out = s.ok(&["system", "prune", "-f", "--volumes"]);
    assert!(out.contains("Deleted Containers:"), "{out}");
    assert!(out.contains("Deleted Networks:\nspare"), "{out}");
    assert!(out.contains("Deleted Volumes:"), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert!(!s.docker(&["inspect", "gone"]).status.success());
    let vols = s.ok(&["volume", "ls", "-q"]);
    assert_eq!(vols.trim(), "named");
    let e = s.fails(&["container", "prune", "-f", "--filter", "bogus=1"], 1);
    assert!(e.contains("invalid filter"), "{e}");
}

/// Healthchecks and the event journal through the API, with the docker CLI: `--health-*`
/// run by the monitor, `(healthy)` in `docker ps`, `State.Health` in `docker inspect`, and
/// `/events` replaying the journal the CLI's commands wrote too.
#[test]
fn health_and_events_through_the_api() {
    let s = Server::new();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    s.run(&[
        "-d",
        "--name",
        "hapi",
        "--health-cmd",
        "cat /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "1000",
    ]);
    s.ok(&["exec", "hapi", "sh", "-c", "echo fine > /tmp/ok"]);
    let t = Instant::now();
    while s
        .ok(&["inspect", "-f", "{{.State.Health.Status}}", "hapi"])
        .trim()
        != "healthy"
    {
        assert!(t.elapsed() < Duration::from_secs(60), "never healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = s.ok(&["inspect", "-f", "{{json .State.Health.Log}}", "hapi"]);
    let log: Value = serde_json::from_str(&log).unwrap();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|p| p["ExitCode"] == 0 && p["Output"] == "fine\n"),
        "{log}"
    );
    let ps = s.ok(&[
        "ps",
        "--filter",
        "health=healthy",
        "--format",
        "{{.Names}} {{.Status}}",
    ]);
    assert!(
        ps.starts_with("hapi Up ") && ps.trim_end().ends_with("(healthy)"),
        "{ps}"
    );
    // A volume made by the berth CLI shows in the API's journal too.
    ok(&s.root, &["volume", "create", "clivol"]);
    s.ok(&["rm", "-f", "hapi"]);
    let t1 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let actions = s.ok(&[
        "events",
        "--since",
        &t0.to_string(),
        "--until",
        &t1.to_string(),
        "--filter",
        "container=hapi",
        "--format",
        "{{.Action}}",
    ]);
    let actions: Vec<&str> = actions
        .lines()
        .filter(|a| !a.starts_with("exec_"))
        .collect();
    assert_eq!(
        actions,
        [
            "create",
            "start",
            "health_status: healthy",
            "kill",
            "die",
            "destroy"
        ],
    );
    let (code, _, body) = s.http(
        "GET",
        &format!("/events?since={t0}&until={t1}&filters=%7B%22type%22%3A%5B%22volume%22%5D%7D"),
        b"",
    );
    assert_eq!(code, 200);
    let lines: Vec<Value> = String::from_utf8_lossy(&body)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        (
            lines[0]["Action"].as_str(),
            lines[0]["Actor"]["ID"].as_str()
        ),
        (Some("create"), Some("clivol"))
    );
    assert_eq!(lines[0]["scope"], "local");
    let (code, _, body) = s.http(
        "GET",
        "/events?until=1&filters=%7B%22colour%22%3A%5B%22x%22%5D%7D",
        b"",
    );
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&body));
    ok(&s.root, &["volume", "rm", "clivol"]);
}

/// `docker build` (the classic `/build`: the context tarball, build args,
/// labels, `-q`, a failing step), `docker stats` (streamed and one-shot
/// JSON), `docker commit` and `docker search` through berth serve.
#[test]
fn docker_build_stats_commit_search() {
    let s = Server::new();
    let ctx = s.dir.join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nARG MSG=none\nCOPY hello.txt /hello.txt\nRUN echo \"$MSG\" > /msg.txt\nLABEL built=by-api\nCMD [\"cat\", \"/hello.txt\", \"/msg.txt\"]\n",
    )
    .unwrap();
    std::fs::write(ctx.join("hello.txt"), "hello from the context\n").unwrap();
    std::fs::write(
        ctx.join("Failing"),
        "FROM busybox\nRUN echo step-output; exit 3\n",
    )
    .unwrap();
    let build = |args: &[&str]| {
        s.docker_cmd()
            .env("DOCKER_BUILDKIT", "0")
            .arg("build")
            .args(args)
            .arg(&ctx)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = succeeded(
        "docker build",
        build(&[
            "-t",
            "apibuilt:1",
            "--build-arg",
            "MSG=from-arg",
            "--label",
            "extra=yes",
        ]),
    );
    assert!(out.contains("Successfully built "), "{out}");
    assert!(out.contains("Successfully tagged apibuilt:1"), "{out}");
    assert_eq!(
        s.run(&["--rm", "apibuilt:1"]),
        "hello from the context\nfrom-arg\n"
    );
    let labels = s.ok(&[
        "inspect",
        "-f",
        "{{.Config.Labels.built}} {{.Config.Labels.extra}}",
        "apibuilt:1",
    ]);
    assert_eq!(labels.trim(), "by-api yes");
    // -q: the image id alone.
    let id = succeeded("docker build -q", build(&["-q", "-t", "apibuilt:2"]));
    let want = s.ok(&["inspect", "-f", "{{.Id}}", "apibuilt:2"]);
    assert_eq!(id.trim(), want.trim());
    // A failing step: docker's exit status and the step named.
    let failing = ctx.join("Failing");
    let o = build(&["-f", failing.to_str().unwrap(), "-t", "apifail"]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("exit code: 3") || e.contains("returned a non-zero code: 3"),
        "{e}"
    );
    assert!(
        !s.ok(&["images", "--format", "{{.Repository}}"])
            .contains("apifail")
    );
    // Options berth's builder cannot honour are refused, not ignored.
    let (c, v) = s.json("POST", "/build?remote=https://example.invalid/ctx.git", "");
    assert_eq!(c, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap_or("").contains("remote"),
        "{v}"
    );

    // stats: docker's one-shot table and JSON, and a streamed sample.
    s.run(&["-d", "--name", "st", "busybox", "sleep", "60"]);
    let row = s.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}} {{.MemUsage}}",
        "st",
    ]);
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[..2], ["st", "1"], "{row}");
    assert_ne!(cols[2], "0B", "{row}");
    let (c, v) = s.json("GET", "/containers/st/stats?stream=false", "");
    assert_eq!(c, 200);
    assert_eq!(v["name"], "/st");
    assert_eq!(v["pids_stats"]["current"], 1);
    assert!(v["memory_stats"]["usage"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(
        v["cpu_stats"]["system_cpu_usage"].as_u64().unwrap_or(0) > 0,
        "{v}"
    );
    assert!(
        v["precpu_stats"]["system_cpu_usage"].as_u64().unwrap_or(0) > 0,
        "{v}"
    );
    let mut conn = UnixStream::connect(&s.sock).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"GET /v1.45/containers/st/stats HTTP/1.1\r\nHost: docker\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.windows(7).filter(|w| w == b"\"read\":").count() < 2 {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    drop(conn);
    let (c, v) = s.json("GET", "/containers/nosuch/stats?stream=false", "");
    assert_eq!(
        (c, v["message"].as_str()),
        (404, Some("No such container: nosuch"))
    );

    // commit: the container's changes and a --change, as a new image.
    s.ok(&["exec", "st", "sh", "-c", "echo changed > /tmp/c.txt"]);
    let id = s.ok(&[
        "commit",
        "-c",
        "ENV COMMITTED=yes",
        "-m",
        "by the api",
        "st",
        "apicommit:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let out = s.run(&[
        "--rm",
        "apicommit:1",
        "sh",
        "-c",
        "cat /tmp/c.txt; echo $COMMITTED",
    ]);
    assert_eq!(out, "changed\nyes\n");
    let hist = s.ok(&["history", "--format", "{{.Comment}}", "apicommit:1"]);
    assert!(hist.contains("by the api"), "{hist}");
    let e = s.fails(&["commit", "nosuch", "x:1"], 1);
    assert!(e.contains("No such container: nosuch"), "{e}");
    s.ok(&["rm", "-f", "st"]);

    // search: offline, said so.
    let e = s.fails(&["search", "busybox"], 1);
    assert!(e.contains("offline"), "{e}");
}

/// `X-Registry-Auth`: push and pull against a registry that requires a
/// login, with the credentials the docker CLI and docker-py send (the
/// server's own docker config has none).
#[test]
fn registry_auth_header() {
    let Some(reg) = regcommon::Registry::start(&[("apiuser", "apipass")]) else {
        eprintln!("skipped: no docker-registry");
        return;
    };
    let s = Server::with_netns(false);
    let tag = format!("{}/api/auth:1", reg.addr);
    s.ok(&["tag", "busybox", &tag]);
    // No credentials: the registry's refusal.
    let e = s.fails(&["push", &tag], 1);
    assert!(
        e.to_lowercase().contains("unauthorized")
            || e.contains("401")
            || e.contains("authentication"),
        "{e}"
    );
    // The client's config: sent with every push and pull.
    let cfg = s.dir.join("docker-config");
    std::fs::create_dir_all(&cfg).unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("apiuser:apipass");
    std::fs::write(
        cfg.join("config.json"),
        format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, reg.addr),
    )
    .unwrap();
    s.ok(&["push", &tag]);
    s.ok(&["rmi", &tag]);
    s.ok(&["pull", &tag]);
    let out = s.ok(&["run", "--rm", "--network", "none", &tag, "echo", "pulled"]);
    assert_eq!(out.trim(), "pulled");
    // No credential file was left behind.
    let left = std::fs::read_dir(s.root.join("api"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0);
    // docker-py: auth_config on push and pull (and nothing from a config
    // file).
    std::fs::remove_file(cfg.join("config.json")).unwrap();
    let out = docker_py(&s, "docker_py_registry.py", &[&reg.addr]);
    assert!(out.contains("docker-py registry ok"), "{out}");
}

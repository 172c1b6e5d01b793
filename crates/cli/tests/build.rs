//! `berth build` end to end: Dockerfiles written here, built on a busybox image made from
//! Debian's /bin/busybox (busybox-static) under a temporary `--root`, in a throwaway network
//! namespace; every built image is run (or inspected) to check what it holds.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod common;
use common::{RootfsTar, TestNetns, berth_command, berth_shell, ok};

#[path = "../../registry/tests/common/mod.rs"]
mod regcommon;

const LINKS: &[&str] = &[
    "sh", "echo", "cat", "ls", "true", "false", "id", "mkdir", "touch", "stat", "wc", "env", "pwd",
    "sleep", "test", "readlink", "chmod", "grep", "date", "mv", "ln",
];

struct Fixture {
    _t: tempfile::TempDir,
    root: PathBuf,
    ctx: PathBuf,
    _ns: TestNetns,
}

impl Fixture {
    fn new() -> Fixture {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path().join("root");
        let ctx = t.path().join("ctx");
        std::fs::create_dir(&ctx).expect("ctx");
        let pw = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:u:/home/u:/bin/sh\n";
        let gr = "root:x:0:\nstaff:x:50:\n";
        let mut tar = RootfsTar::busybox(&["bin", "etc", "tmp"], LINKS);
        tar.file("etc/passwd", pw.as_bytes(), 0o644);
        tar.file("etc/group", gr.as_bytes(), 0o644);
        let tarball = t.path().join("busybox.tar");
        tar.write(&tarball);
        let ns = TestNetns::new("build");
        ns.host_berth(&root);
        ok(
            &root,
            &["import", tarball.to_str().expect("utf-8"), "busybox:latest"],
        );
        Fixture {
            _t: t,
            root,
            ctx,
            _ns: ns,
        }
    }

    fn write(&self, name: &str, content: &str) {
        let p = self.ctx.join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(p, content).expect("write");
    }

    fn files(&self, list: &[(&str, &str)]) {
        for (name, content) in list {
            self.write(name, content);
        }
    }

    fn berth(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut c = berth_command(&self.root);
        c.args(args).current_dir(&self.ctx);
        common::output_with_stdin(c, stdin)
    }

    /// `berth build ARGS .`: asserts success; the progress (stderr).
    fn build(&self, args: &[&str]) -> String {
        let mut a = vec!["build"];
        a.extend_from_slice(args);
        a.push(".");
        let o = self.berth(&a, None);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "build {args:?} failed:\n{err}");
        err
    }

    /// `berth build ARGS .`, expected to fail: its stderr.
    fn build_fails(&self, args: &[&str]) -> String {
        let mut a = vec!["build"];
        a.extend_from_slice(args);
        a.push(".");
        let o = self.berth(&a, None);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(1), "build {args:?}:\n{err}");
        err
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&self.root, args)
    }

    /// Runs `sh -c SCRIPT` in `image` (no network); its stdout.
    fn run(&self, image: &str, script: &str) -> String {
        self.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "sh",
            "-c",
            script,
        ])
    }

    fn inspect(&self, image: &str) -> Value {
        let v: Value =
            serde_json::from_str(&self.ok(&["image", "inspect", image])).expect("inspect json");
        v[0].clone()
    }

    fn image_ids(&self) -> String {
        self.ok(&["images", "-q", "--no-trunc"])
    }

    /// Nothing of a build is left behind: no work directory, no mount under the root, no
    /// runtime state, no container record.
    fn assert_clean(&self) {
        let work = self.root.join("builder/work");
        let left: Vec<_> = std::fs::read_dir(&work)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        let inside: Vec<_> = left
            .iter()
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
            .map(|e| e.path())
            .collect();
        assert!(
            left.is_empty(),
            "work dirs left: {left:?} holding {inside:?}"
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let root = self.root.to_string_lossy();
        assert!(
            !mounts.lines().any(|l| l.contains(root.as_ref())),
            "mounts left under {root}"
        );
        // (`@seccomp` is the runtime's compiled-filter cache, not a container.)
        let rt: Vec<_> = std::fs::read_dir(self.root.join("run/runtime"))
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('@'))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        assert!(rt.is_empty(), "runtime state left: {rt:?}");
        assert_eq!(self.ok(&["ps", "-aq"]), "");
    }
}

fn history(f: &Fixture, image: &str) -> Vec<(String, String)> {
    f.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}\t{{.Size}}",
        image,
    ])
    .lines()
    .map(|l| {
        let (a, b) = l.split_once('\t').unwrap_or((l, ""));
        (a.to_string(), b.to_string())
    })
    .collect()
}

#[test]
fn instructions_make_the_image_docker_makes() {
    let f = Fixture::new();
    f.write("payload.txt", "payload\n");
    f.write("dir/a.txt", "a\n");
    f.write("dir/sub/b.txt", "b\n");
    f.write("one.conf", "1\n");
    f.write("two.conf", "2\n");
    f.write(
        "Dockerfile",
        r#"# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM $BASE
ARG WHO=world
ENV GREETING="hello" \
    TARGET=${WHO}
LABEL org.example.name="demo" version=1
RUN echo "$GREETING $TARGET" > /greeting.txt && echo "running as $(id -u)"
COPY payload.txt /payload.txt
COPY dir /copied/
COPY *.conf /conf/
COPY --chown=user:staff --chmod=640 payload.txt /owned.txt
COPY <<EOF /heredoc.txt
from a heredoc: $GREETING "quoted" 'single'
EOF
WORKDIR /work
WORKDIR sub
COPY --chown=1000 dir/a.txt relative.txt
RUN pwd > /pwd.txt
RUN <<EOT
echo script line 1 > /script.txt
echo script line 2 >> /script.txt
EOT
RUN rm /etc/group
USER user
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s CMD true
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /greeting.txt"]
"#,
    );
    let out = f.build(&[
        "-t",
        "demo:1",
        "-t",
        "demo:latest",
        "--build-arg",
        "WHO=berth",
        "--label",
        "from.cli=yes",
    ]);
    assert!(
        out.contains("#")
            && out.contains("[2/13] RUN echo")
            && out.contains("[8/13] WORKDIR /work"),
        "{out}"
    );
    assert!(out.contains("running as 0"), "RUN output streamed: {out}");
    // Both tags name the image; the default command runs.
    let id = f.inspect("demo:1")["Id"].clone();
    assert_eq!(f.inspect("demo:latest")["Id"], id);
    assert_eq!(
        f.ok(&["run", "--rm", "--network", "none", "demo:1"]),
        "hello berth\n"
    );
    let files = f.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/sh",
        "demo:1",
        "-c",
        "cat /payload.txt /copied/a.txt /copied/sub/b.txt /conf/one.conf /conf/two.conf \
         /heredoc.txt /pwd.txt /script.txt /work/sub/relative.txt; \
         stat -c '%u:%g %a' /owned.txt /work/sub/relative.txt; id -u; \
         test -e /etc/group || echo whiteout",
    ]);
    assert_eq!(
        files,
        "payload\na\nb\n1\n2\nfrom a heredoc: hello \"quoted\" 'single'\n/work/sub\nscript line 1\nscript line 2\na\n\
         1000:50 640\n1000:1000 644\n1000\nwhiteout\n"
    );
    let c = &f.inspect("demo:1")["Config"];
    assert_eq!(c["User"], "user");
    assert_eq!(c["WorkingDir"], "/work/sub");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["cat /greeting.txt"]));
    assert_eq!(c["Labels"]["org.example.name"], "demo");
    assert_eq!(c["Labels"]["version"], "1");
    assert_eq!(c["Labels"]["from.cli"], "yes");
    assert_eq!(c["StopSignal"], "SIGINT");
    assert!(c["ExposedPorts"]["8080/tcp"].is_object());
    assert!(c["ExposedPorts"]["53/udp"].is_object());
    assert!(c["Volumes"]["/data"].is_object());
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000u64);
    let env: Vec<&str> = c["Env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(env.contains(&"GREETING=hello"), "{env:?}");
    assert!(env.contains(&"TARGET=berth"), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
    assert!(
        !env.iter().any(|e| e.starts_with("WHO=")),
        "ARGs stay out: {env:?}"
    );
    // History as BuildKit writes it: config steps are empty layers.
    let h = history(&f, "demo:1");
    let by: Vec<&str> = h.iter().map(|(c, _)| c.as_str()).collect();
    assert!(
        by.contains(&"RUN |1 WHO=berth /bin/sh -c echo \"$GREETING $TARGET\" > /greeting.txt && echo \"running as $(id -u)\" # buildkit"),
        "{by:#?}"
    );
    assert!(
        by.contains(&"COPY payload.txt /payload.txt # buildkit"),
        "{by:#?}"
    );
    assert!(by.contains(&"ENV GREETING=hello TARGET=berth"), "{by:#?}");
    assert!(by.contains(&"WORKDIR /work/sub"), "{by:#?}");
    for (c, size) in &h {
        if c.starts_with("ENV") || c.starts_with("LABEL") || c.starts_with("USER") {
            assert_eq!(size, "0B", "{c}");
        }
    }
    // The RUN layer holds what the command wrote, not the mount points it ran with.
    f.assert_clean();
}

#[test]
fn the_cache_follows_content_not_mtimes() {
    let f = Fixture::new();
    f.write("payload.txt", "one\n");
    f.write(
        "Dockerfile",
        "FROM busybox\nRUN echo built > /built.txt\nCOPY payload.txt /payload.txt\nRUN cat /payload.txt > /copy.txt\n",
    );
    let first = f.build(&["-t", "c:1"]);
    assert!(!first.contains("CACHED"), "{first}");
    let id1 = f.inspect("c:1")["Id"].clone();
    // Unchanged: every step cached, the same image.
    let second = f.build(&["-t", "c:2"]);
    assert_eq!(second.matches("CACHED").count(), 3, "{second}");
    assert_eq!(f.inspect("c:2")["Id"], id1);
    // A new mtime is not a change.
    let file = std::fs::File::options()
        .write(true)
        .open(f.ctx.join("payload.txt"))
        .expect("open");
    file.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1234))
        .expect("mtime");
    let third = f.build(&["-t", "c:3"]);
    assert_eq!(third.matches("CACHED").count(), 3, "{third}");
    // One byte more: the COPY and what follows run again, the RUN before it does not.
    f.write("payload.txt", "two\n");
    let fourth = f.build(&["-t", "c:4"]);
    assert_eq!(fourth.matches("CACHED").count(), 1, "{fourth}");
    assert_eq!(f.run("c:4", "cat /copy.txt"), "two\n");
    assert_ne!(f.inspect("c:4")["Id"], id1);
    // --no-cache runs everything.
    let fifth = f.build(&["--no-cache", "-t", "c:5"]);
    assert!(!fifth.contains("CACHED"), "{fifth}");
    assert_eq!(f.run("c:5", "cat /built.txt /copy.txt"), "built\ntwo\n");
    // A build arg is part of a RUN's key.
    f.write(
        "Dockerfile",
        "FROM busybox\nARG V=1\nRUN echo $V > /v.txt\n",
    );
    f.build(&["-t", "a:1"]);
    let again = f.build(&["-t", "a:1"]);
    assert!(again.contains("CACHED"), "{again}");
    let changed = f.build(&["-t", "a:2", "--build-arg", "V=2"]);
    assert!(!changed.contains("CACHED"), "{changed}");
    assert_eq!(f.run("a:2", "cat /v.txt"), "2\n");
    // system df counts the cache: records of every step, and as a JSON line too.
    let df = |f: &Fixture| -> Value {
        let out = f.ok(&["system", "df", "--format", "json"]);
        out.lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("json"))
            .find(|v| v["Type"] == "Build Cache")
            .expect("a Build Cache row")
    };
    let row = df(&f);
    let records: usize = row["TotalCount"]
        .as_str()
        .expect("count")
        .parse()
        .expect("n");
    assert!(records >= 6, "{row}");
    assert_eq!(row["Active"], "0");
    let verbose = f.ok(&["system", "df", "-v"]);
    assert!(
        verbose.contains("CACHE ID") && verbose.contains("regular"),
        "{verbose}"
    );
    // builder prune: --filter until= keeps what is younger; without it the cache is gone.
    let out = f.ok(&["builder", "prune", "-f", "--filter", "until=1h"]);
    assert!(!out.contains("Deleted build cache objects"), "{out}");
    let out = f.ok(&["builder", "prune", "-f"]);
    assert!(
        out.contains("Deleted build cache objects") && out.contains("Total reclaimed space"),
        "{out}"
    );
    assert_eq!(df(&f)["TotalCount"], "0", "pruned: no record left");
    let after = f.build(&["-t", "a:1"]);
    assert!(!after.contains("CACHED"), "{after}");
    f.assert_clean();
}

#[test]
fn independent_stages_build_at_the_same_time() {
    let f = Fixture::new();
    let stage = |name: &str| {
        format!(
            "FROM busybox AS {name}\nRUN date +%s > /start && sleep 2 && date +%s > /end && echo {name} > /who && echo ran-{name}\n"
        )
    };
    f.write(
        "Dockerfile",
        &format!(
            "{}{}FROM busybox\nCOPY --from=a /start /a-start\nCOPY --from=a /end /a-end\n\
             COPY --from=b /start /b-start\nCOPY --from=b /end /b-end\nCOPY --from=b /who /who\n",
            stage("a"),
            stage("b")
        ),
    );
    let out = f.build(&["-t", "par:1"]);
    // Both RUNs are reported as run, with their output (b's as its helper recorded it).
    assert!(
        out.contains("[a 2/2] RUN") && out.contains("[b 2/2] RUN"),
        "{out}"
    );
    assert!(
        out.contains("ran-a") && out.contains("ran-b") && !out.contains("CACHED"),
        "{out}"
    );
    assert_eq!(
        out.matches("load metadata for busybox").count(),
        1,
        "one metadata step per image: {out}"
    );
    let overlapped = |image: &str| {
        let times = f.run(image, "cat /a-start /a-end /b-start /b-end /who");
        let t: Vec<u64> = times
            .lines()
            .take(4)
            .map(|l| l.parse().expect("seconds"))
            .collect();
        // The two 2-second RUNs overlapped (one after the other, b would start at or after
        // a's end, to the second).
        assert!(t[0] < t[3] && t[2] < t[1], "{image}: {times}");
        assert!(times.ends_with("b\n"), "{times}");
        t
    };
    let first = overlapped("par:1");
    // Unchanged: all cached, the same image.
    let again = f.build(&["-t", "par:2"]);
    assert_eq!(
        f.inspect("par:2")["Id"],
        f.inspect("par:1")["Id"],
        "{again}"
    );
    // --no-cache runs both again, at the same time too.
    f.build(&["--no-cache", "-t", "par:nc"]);
    let again_nc = overlapped("par:nc");
    assert!(again_nc[0] > first[0], "ran again: {first:?} {again_nc:?}");
    // A stage failing in its own builder fails the build with its report, nothing stored.
    f.write(
        "Dockerfile",
        "FROM busybox AS a\nRUN sleep 1\nFROM busybox AS b\nRUN echo failing; exit 7\n\
         FROM busybox\nCOPY --from=a /bin/sh /a\nCOPY --from=b /bin/sh /b\n",
    );
    let err = f.build_fails(&["-t", "par:3"]);
    assert!(
        err.contains("exit code: 7") && err.contains("Dockerfile:4") && err.contains("failing"),
        "{err}"
    );
    assert!(f.ok(&["images", "-q", "par:3"]).is_empty());
    f.assert_clean();
}

#[test]
fn multi_stage_builds_only_what_the_target_needs() {
    let f = Fixture::new();
    f.write("src.txt", "source\n");
    f.write(
        "Dockerfile",
        "FROM busybox AS build\nCOPY src.txt /src/\nRUN mkdir -p /out && cat /src/src.txt /src/src.txt > /out/result && chmod 750 /out/result\n\
         FROM busybox AS broken\nRUN false\n\
         FROM scratch AS final\nCOPY --from=build /out/result /result\nCOPY --from=build /bin/busybox /bin/busybox\n\
         COPY --from=0 /src /src2\nCOPY --from=build /out/res* /globbed/\n\
         FROM build AS test\nRUN test -f /out/result && echo tested > /tested\n",
    );
    // The default target is the last stage; `broken` is never built.
    let out = f.build(&["-t", "t:1"]);
    assert!(!out.contains("RUN false"), "{out}");
    assert_eq!(f.run("t:1", "cat /tested"), "tested\n");
    let out = f.build(&["--target", "final", "-t", "final:1"]);
    assert!(out.contains("[build "), "{out}");
    assert!(!out.contains("RUN false"), "{out}");
    assert!(!out.contains("[test "), "{out}");
    let listing = f.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/busybox",
        "final:1",
        "sh",
        "-c",
        "/bin/busybox cat /result /src2/src.txt; /bin/busybox stat -c %a /result /globbed/result; /bin/busybox ls /",
    ]);
    assert_eq!(
        listing,
        "source\nsource\nsource\n750\n750\nbin\ndev\netc\nglobbed\nproc\nresult\nsrc2\nsys\n"
    );
    // --no-cache-filter: only the named stage runs again.
    let out = f.build(&["--no-cache-filter", "test", "-t", "t:2"]);
    assert!(
        out.contains("[build 3/3] RUN mkdir") && out.contains("CACHED"),
        "{out}"
    );
    let test_step = out
        .split("\n\n")
        .find(|b| b.contains("[test 2/2] RUN"))
        .unwrap_or("");
    assert!(!test_step.contains("CACHED"), "{out}");
    // The broken stage fails when it is the target.
    let err = f.build_fails(&["--target", "broken"]);
    assert!(
        err.contains("process \"/bin/sh -c false\" did not complete successfully: exit code: 1"),
        "{err}"
    );
    let err = f.build_fails(&["--target", "nosuch"]);
    assert!(
        err.contains("target stage \"nosuch\" could not be found"),
        "{err}"
    );
    f.assert_clean();
}

#[test]
fn dockerignore_and_named_dockerfiles() {
    let f = Fixture::new();
    f.files(&[
        ("keep.txt", "keep\n"),
        ("secret.key", "secret\n"),
        ("logs/a.log", "log\n"),
        ("logs/important.log", "important\n"),
        (".dockerignore", "*.key\nlogs\n!logs/important.log\n"),
    ]);
    f.write(
        "Dockerfile",
        "FROM busybox\nCOPY . /ctx/\nRUN ls -a /ctx /ctx/logs > /listing\n",
    );
    f.build(&["-t", "ign:1"]);
    assert_eq!(
        f.run("ign:1", "cat /listing"),
        "/ctx:\n.\n..\n.dockerignore\nDockerfile\nkeep.txt\nlogs\n\n/ctx/logs:\n.\n..\nimportant.log\n"
    );
    // COPY --exclude: .dockerignore's patterns, below the copied directory.
    f.files(&[
        ("tree/keep.c", "c\n"),
        ("tree/skip.o", "o\n"),
        ("tree/sub/deep.o", "o\n"),
        ("tree/build/out", "x\n"),
    ]);
    f.write(
        "Dockerfile",
        "FROM busybox\nCOPY --exclude=*.o --exclude=build --exclude=**/*.o tree /tree/\n",
    );
    f.build(&["-t", "ign:3"]);
    assert_eq!(
        f.run("ign:3", "cd /tree && ls -R"),
        ".:\nkeep.c\nsub\n\n./sub:\n"
    );
    // COPY --parents keeps the paths (below a `/./` pivot).
    f.write(
        "Dockerfile",
        "FROM busybox\nCOPY --parents tree/keep.c logs/important.log /p/\nCOPY --parents ./tree/./sub /q/\nCOPY --chmod=u=rw,go=r,a+x keep.txt /sym\n",
    );
    f.build(&["-t", "ign:4"]);
    assert_eq!(
        f.run(
            "ign:4",
            "cat /p/tree/keep.c /p/logs/important.log /q/sub/deep.o; stat -c %a /sym"
        ),
        "c\nimportant\no\n755\n"
    );
    // A Dockerfile named with -f reads its own NAME.dockerignore.
    f.write("build/app.Dockerfile", "FROM busybox\nCOPY . /ctx/\n");
    f.write("build/app.Dockerfile.dockerignore", "keep.txt\n");
    f.build(&["-f", "build/app.Dockerfile", "-t", "ign:2"]);
    let out = f.run("ign:2", "ls /ctx");
    assert!(
        !out.contains("keep.txt") && out.contains("secret.key"),
        "{out}"
    );
    // An excluded file is missing for COPY.
    f.write("Dockerfile", "FROM busybox\nCOPY secret.key /\n");
    let err = f.build_fails(&[]);
    assert!(err.contains("\"/secret.key\": not found"), "{err}");
    f.assert_clean();
}

#[test]
fn contexts_from_stdin_add_archives_and_outputs() {
    let f = Fixture::new();
    // A Dockerfile on stdin (no context).
    let o = f.berth(
        &["build", "-q", "-t", "stdin:1", "-"],
        Some(b"FROM busybox\nRUN echo from stdin > /f\n"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(id.starts_with("sha256:"), "-q prints the id: {id}");
    assert_eq!(f.inspect("stdin:1")["Id"], id);
    assert_eq!(f.run("stdin:1", "cat /f"), "from stdin\n");
    // A tar context on stdin, with an archive ADD unpacks.
    let mut inner = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o600);
    h.set_size(6);
    inner
        .append_data(&mut h, "pkg/data.txt", &b"inner\n"[..])
        .expect("inner");
    let inner = inner.into_inner().expect("inner tar");
    let mut ctx = tar::Builder::new(Vec::new());
    let df = b"FROM busybox\nADD pkg.tar /opt/\nCOPY pkg.tar /raw/pkg.tar\n";
    for (name, data) in [("Dockerfile", &df[..]), ("pkg.tar", &inner[..])] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        ctx.append_data(&mut h, name, data).expect("ctx");
    }
    let ctx = ctx.into_inner().expect("ctx tar");
    let o = f.berth(&["build", "-t", "tarctx:1", "-"], Some(&ctx));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        f.run(
            "tarctx:1",
            "cat /opt/pkg/data.txt; stat -c %a /opt/pkg/data.txt; wc -c < /raw/pkg.tar"
        ),
        format!("inner\n600\n{}\n", inner.len())
    );
    // -f - with a directory context.
    f.write("x.txt", "x\n");
    let o = f.berth(
        &["build", "-f", "-", "-t", "dash:1", "--iidfile", "iid", "."],
        Some(b"FROM busybox\nCOPY x.txt /\n"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let iid = std::fs::read_to_string(f.ctx.join("iid")).expect("iidfile");
    assert_eq!(f.inspect("dash:1")["Id"], iid.as_str());
    // --output: the filesystem, not an image.
    let before = f.image_ids();
    f.write("Dockerfile", "FROM scratch\nCOPY x.txt /out/x.txt\n");
    let dest = f.ctx.join("exported");
    f.build(&["--output", &format!("type=local,dest={}", dest.display())]);
    assert_eq!(
        std::fs::read_to_string(dest.join("out/x.txt")).expect("exported"),
        "x\n"
    );
    let tarfile = f.ctx.join("fs.tar");
    f.build(&["-o", &format!("type=tar,dest={}", tarfile.display())]);
    let mut a = tar::Archive::new(std::fs::File::open(&tarfile).expect("tar"));
    let names: Vec<String> = a
        .entries()
        .expect("entries")
        .flatten()
        .filter_map(|e| Some(e.path().ok()?.to_string_lossy().into_owned()))
        .collect();
    assert!(names.iter().any(|n| n.ends_with("out/x.txt")), "{names:?}");
    assert_eq!(f.image_ids(), before, "--output stores no image");
    // type=oci: an OCI layout that `load` takes back, tag included.
    let layout = f.ctx.join("img.oci.tar");
    f.write("Dockerfile", "FROM busybox\nCOPY x.txt /x.txt\n");
    f.build(&[
        "-t",
        "oci:1",
        "-o",
        &format!("type=oci,dest={}", layout.display()),
    ]);
    assert_eq!(f.image_ids(), before, "type=oci stores no image either");
    f.ok(&["load", "-i", layout.to_str().expect("utf-8")]);
    assert_eq!(f.run("oci:1", "cat /x.txt"), "x\n");
    f.assert_clean();
}

#[test]
fn bad_input_names_the_line_and_leaves_nothing() {
    let f = Fixture::new();
    let before = f.image_ids();
    f.write("Dockerfile", "FROM busybox\nRUN true\nFOO bar\n");
    let err = f.build_fails(&["-t", "bad:1"]);
    assert!(err.contains("Dockerfile:3"), "{err}");
    assert!(err.contains("unknown instruction: FOO"), "{err}");
    assert!(err.contains(">>> FOO bar"), "{err}");
    f.write(
        "Dockerfile",
        "FROM busybox\nRUN echo partial > /p\nRUN echo to stderr >&2; exit 3\n",
    );
    let err = f.build_fails(&["-t", "bad:1"]);
    assert!(
        err.contains(
            "process \"/bin/sh -c echo to stderr >&2; exit 3\" did not complete successfully: exit code: 3"
        ),
        "{err}"
    );
    assert!(
        err.contains("to stderr"),
        "the failing step's output is shown: {err}"
    );
    assert!(err.contains("Dockerfile:3"), "{err}");
    f.write("Dockerfile", "FROM busybox\nCOPY missing.txt /\n");
    let err = f.build_fails(&["-t", "bad:1"]);
    assert!(err.contains("\"/missing.txt\": not found"), "{err}");
    assert!(err.contains("Dockerfile:2"), "{err}");
    f.write("Dockerfile", "FROM busybox\nRUN <<EOF\necho unterminated\n");
    let err = f.build_fails(&["-t", "bad:1"]);
    assert!(err.contains("unterminated heredoc"), "{err}");
    f.write(
        "Dockerfile",
        "FROM busybox AS a\nCOPY --from=b /x /\nFROM busybox AS b\nCOPY --from=a /y /\n",
    );
    let err = f.build_fails(&["-t", "bad:1"]);
    assert!(err.contains("circular dependency"), "{err}");
    // Git sources are refused before any network I/O, with what to do instead.
    for src in [
        "https://github.com/moby/buildkit.git#v0.8.0",
        "git@github.com:moby/buildkit.git",
    ] {
        f.write("Dockerfile", &format!("FROM busybox\nADD {src} /src\n"));
        let err = f.build_fails(&["-t", "bad:1"]);
        assert!(
            err.contains("ADD from a git repository") && err.contains("no git client"),
            "{err}"
        );
        assert!(err.contains("Dockerfile:2"), "{err}");
    }
    // Flags.
    let o = f.berth(&["build", "--platform", "linux/s390x", "."], None);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("host's platform"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = f.berth(&["build", "--network", "bridge2", "."], None);
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(f.image_ids(), before, "a failed build stores no image");
    f.assert_clean();
}

#[test]
fn run_mounts_and_network() {
    let f = Fixture::new();
    f.write("input.txt", "bound\n");
    f.write(
        "Dockerfile",
        "FROM busybox\n\
         RUN --mount=type=cache,target=/cache echo x >> /cache/count && wc -l < /cache/count > /count\n\
         RUN --mount=type=tmpfs,target=/scratch touch /scratch/f && test ! -e /out\n\
         RUN --mount=type=bind,source=input.txt,target=/in.txt cat /in.txt > /bound\n\
         RUN cat /sys/class/net/*/operstate | wc -l > /ifaces\n\
         RUN --mount=type=secret,id=tok test \"$(cat /run/secrets/tok)\" = s3cret && echo file > /secret-ok\n\
         RUN --mount=type=secret,id=tok,env=TOK,target=/tmp/tok test \"$TOK\" = s3cret && test -f /tmp/tok && echo env >> /secret-ok\n\
         RUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /ssh-ok\n",
    );
    f.write("token", "s3cret");
    let secret = format!("id=tok,src={}", f.ctx.join("token").display());
    // An agent socket (nothing answers on it; the RUN only checks that it is there).
    let agent = f.ctx.join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&agent).expect("agent socket");
    let ssh = format!("default={}", agent.display());
    f.build(&["-t", "m:1", "--secret", &secret, "--ssh", &ssh]);
    f.build(&[
        "--no-cache",
        "-t",
        "m:2",
        "--secret",
        &secret,
        "--ssh",
        &ssh,
    ]);
    assert_eq!(f.run("m:2", "cat /ssh-ok"), "/run/buildkit/ssh_agent.0\n");
    // The secret was there for the RUNs and is nowhere in the image (the mount-point
    // directories stay, as in BuildKit's layers; no file, no socket).
    assert_eq!(
        f.run(
            "m:2",
            "cat /secret-ok; ls -R /run /tmp | grep -c -e tok -e agent || true"
        ),
        "file\nenv\n0\n"
    );
    // Without it (not `required`), the RUN runs without the file, as BuildKit's.
    let err = f.build_fails(&["--no-cache", "-t", "m:3", "--ssh", &ssh]);
    assert!(
        err.contains("did not complete successfully: exit code: 1"),
        "{err}"
    );
    // The cache mount outlives the build; tmpfs and bind mounts leave nothing in the image
    // but their (empty) mount-point directories, as BuildKit; a bound file's stub goes.
    assert_eq!(
        f.run(
            "m:2",
            "cat /count /bound; ls -A /scratch | wc -l; ls -A /cache | wc -l; test -e /in.txt || echo no-in"
        ),
        "2\nbound\n0\n0\nno-in\n"
    );
    // --network none: only the loopback.
    assert_eq!(f.run("m:2", "cat /ifaces"), "1\n");
    // builder prune -a takes the cache mounts too.
    f.ok(&["buildx", "prune", "-af"]);
    f.build(&[
        "--no-cache",
        "-t",
        "m:4",
        "--secret",
        &secret,
        "--ssh",
        &ssh,
    ]);
    assert_eq!(f.run("m:4", "cat /count"), "1\n");
    // --ssh ID=KEYFILE: the key is served by an agent of the build's own, gone afterwards.
    let key = f.ctx.join("id_test");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen (openssh-client)");
    assert!(st.success());
    f.write(
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=ssh,id=k test -S \"$SSH_AUTH_SOCK\" && echo served > /ssh-key\n",
    );
    let with_key = format!("k={}", key.display());
    f.build(&["-t", "m:5", "--ssh", &with_key]);
    assert_eq!(f.run("m:5", "cat /ssh-key"), "served\n");
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .expect("tmp")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("berth-ssh-"))
        .filter(|e| {
            // Only those of berth processes gone by now (other tests run at the same time).
            let pid = e.file_name().to_string_lossy()["berth-ssh-".len()..].to_string();
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "agent directories left: {left:?}");
    let o = f.berth(&["build", "--ssh", "k=/nonexistent/key", "."], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains("/nonexistent/key is neither an agent socket nor a key file"),
        "{err}"
    );
    f.assert_clean();
}

#[test]
fn an_interrupted_build_cleans_up() {
    let f = Fixture::new();
    f.write("Dockerfile", "FROM busybox\nRUN echo started && sleep 30\n");
    let mut c = berth_command(&f.root);
    c.env("BERTH_DEBUG", "1")
        .args(["build", "-t", "int:1", "."])
        .current_dir(&f.ctx)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let mut stderr = child.stderr.take().expect("stderr");
    let mut seen = Vec::new();
    let t = std::time::Instant::now();
    while !String::from_utf8_lossy(&seen).contains("started") {
        let mut buf = [0u8; 4096];
        let n = std::io::Read::read(&mut stderr, &mut buf).expect("read");
        assert!(
            n > 0 && t.elapsed().as_secs() < 20,
            "{}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    // The build's container is internal: not a container of `ps -a`.
    assert_eq!(f.ok(&["ps", "-aq"]), "");
    // The berth process: nsenter execs it, so the child's pid is berth's.
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let status = child.wait().expect("wait");
    assert!(t.elapsed().as_secs() < 20, "the RUN was stopped");
    assert!(!status.success());
    assert!(f.ok(&["images", "-q", "int"]).is_empty());
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    assert!(!rest.contains("left behind"), "{rest}");
    f.assert_clean();
    // A build killed outright leaves its work directory: the next build removes it.
    let mut child = berth_command(&f.root)
        .args(["build", "-t", "int:2", "."])
        .current_dir(&f.ctx)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stderr = child.stderr.take().expect("stderr");
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("started") {
        let mut buf = [0u8; 4096];
        let n = std::io::Read::read(&mut stderr, &mut buf).expect("read");
        assert!(n > 0, "{}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    child.kill().expect("kill -9");
    child.wait().expect("wait");
    f.write("Dockerfile", "FROM busybox\nRUN echo after\n");
    let mut c = berth_command(&f.root);
    c.env("BERTH_DEBUG", "1")
        .args(["build", "-t", "int:3", "."])
        .current_dir(&f.ctx);
    let o = common::output_with_stdin(c, None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !err.contains("left behind"), "{err}");
    assert_eq!(f.run("int:3", "echo ok"), "ok\n");
    f.assert_clean();
}

/// `berth` in this machine's network namespace, for tests whose servers listen on its
/// 127.0.0.1 (a registry, a web server); the RUN containers use no network, so nothing is
/// made in it. Own docker config and registries file.
struct HostBerth {
    t: tempfile::TempDir,
}

impl HostBerth {
    fn new() -> HostBerth {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(t.path().join("docker")).expect("docker config dir");
        HostBerth { t }
    }

    fn run(&self, root: &str, args: &[&str], dir: &std::path::Path) -> Output {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--root")
            .arg(self.t.path().join(root))
            .args(args)
            .current_dir(dir)
            .env("DOCKER_CONFIG", self.t.path().join("docker"))
            .env(
                "BERTH_REGISTRIES_CONFIG",
                self.t.path().join("registries.json"),
            )
            .stdin(Stdio::null())
            .output()
            .expect("berth")
    }
}

/// Asserts success; stderr then stdout.
fn okay(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout)
}

#[test]
fn a_missing_base_image_is_pulled_then_run() {
    let Some(reg) = regcommon::Registry::start(&[]) else {
        return;
    };
    let h = HostBerth::new();
    let t = &h.t;
    let berth = |root: &str, args: &[&str], dir: &std::path::Path| h.run(root, args, dir);
    let tarball = t.path().join("bb.tar");
    RootfsTar::busybox(&["bin", "etc", "tmp"], &["sh", "echo", "cat"]).write(&tarball);
    let base = format!("{}/build/busybox:1", reg.addr);
    okay(berth(
        "a",
        &["import", tarball.to_str().expect("utf-8"), &base],
        t.path(),
    ));
    okay(berth("a", &["push", &base], t.path()));
    let ctx = t.path().join("ctx");
    std::fs::create_dir(&ctx).expect("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN echo pulled and ran > /out\n"),
    )
    .expect("Dockerfile");
    // A fresh store: the build pulls the base, then runs a container (single-threaded again).
    let out = okay(berth("b", &["build", "-t", "p:1", "."], &ctx));
    assert!(out.contains("Pull complete"), "{out}");
    let o = okay(berth(
        "b",
        &["run", "--rm", "--network", "none", "p:1", "cat", "/out"],
        &ctx,
    ));
    assert!(o.ends_with("pulled and ran\n"), "{o}");
    // --pull asks the registry again even though the base is here; the steps stay cached.
    let out = okay(berth("b", &["build", "--pull", "-t", "p:1", "."], &ctx));
    assert!(out.contains("Image is up to date"), "{out}");
    assert!(out.contains("CACHED"), "{out}");
}

#[test]
fn onbuild_triggers_run_in_the_child_and_entrypoint_resets_cmd() {
    let f = Fixture::new();
    f.write(
        "Dockerfile",
        "FROM busybox\nONBUILD RUN echo triggered > /onbuild\nCMD [\"echo\", \"base cmd\"]\n",
    );
    f.build(&["-t", "parent:1"]);
    assert_eq!(
        f.inspect("parent:1")["Config"]["OnBuild"],
        serde_json::json!(["RUN echo triggered > /onbuild"])
    );
    f.write("Dockerfile", "FROM parent:1\nENTRYPOINT [\"cat\"]\n");
    let out = f.build(&["-t", "child:1"]);
    assert!(out.contains("[2/2] RUN echo triggered > /onbuild"), "{out}");
    let c = &f.inspect("child:1")["Config"];
    assert!(c["OnBuild"].is_null(), "triggers leave the image: {c}");
    assert!(
        c["Cmd"].is_null(),
        "the base's CMD is reset by ENTRYPOINT: {c}"
    );
    assert_eq!(
        f.ok(&["run", "--rm", "--network", "none", "child:1", "/onbuild"]),
        "triggered\n"
    );
    f.assert_clean();
}

#[test]
fn run_containers_take_add_host_ulimit_and_shm_size() {
    let f = Fixture::new();
    f.write(
        "Dockerfile",
        "FROM busybox\nRUN grep db /etc/hosts > /hosts; ulimit -n > /nofile; grep /dev/shm /proc/mounts > /shm\n",
    );
    f.build(&[
        "-t",
        "flags:1",
        "--add-host",
        "db:10.1.2.3",
        "--ulimit",
        "nofile=512:512",
        "--shm-size",
        "32m",
    ]);
    let out = f.run("flags:1", "cat /hosts /nofile /shm");
    assert!(out.contains("10.1.2.3\tdb\n512\n"), "{out}");
    assert!(out.contains("size=32768k"), "{out}");
    let o = f.berth(&["build", "--add-host", "nocolon", "."], None);
    assert_eq!(o.status.code(), Some(125));
    f.assert_clean();
}

#[test]
fn add_fetches_urls_checked_with_checksum() {
    let body = b"fetched over http\n".to_vec();
    let served = body.clone();
    let addr =
        regcommon::serve_http(std::sync::Arc::new(
            move |req: &regcommon::HttpRequest| match req.path.as_str() {
                "/files/hello.txt" => (200, vec![], served.clone()),
                _ => (404, vec![], b"no".to_vec()),
            },
        ));
    let h = HostBerth::new();
    let ctx = h.t.path().join("ctx");
    std::fs::create_dir(&ctx).expect("ctx");
    let tarball = h.t.path().join("bb.tar");
    RootfsTar::busybox(&["bin", "etc", "tmp"], &["sh", "cat", "stat"]).write(&tarball);
    okay(h.run(
        "r",
        &["import", tarball.to_str().expect("utf-8"), "busybox"],
        &ctx,
    ));
    let url = format!("http://{addr}/files/hello.txt");
    let sum = berth_image::Digest::sha256(&body).hex().to_string();
    let df = |text: String| std::fs::write(ctx.join("Dockerfile"), text).expect("Dockerfile");
    df(format!(
        "FROM busybox\nADD {url} /dl/\nADD --checksum=sha256:{sum} {url} /checked.txt\nRUN cat /dl/hello.txt > /ran\n"
    ));
    okay(h.run("r", &["build", "-t", "url:1", "."], &ctx));
    let out = okay(h.run(
        "r",
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "url:1",
            "sh",
            "-c",
            "cat /dl/hello.txt /checked.txt /ran; stat -c %a /dl/hello.txt",
        ],
        &ctx,
    ));
    assert!(
        out.ends_with("fetched over http\nfetched over http\nfetched over http\n600\n"),
        "{out}"
    );
    // The same body: cached (the key is the content, fetched again).
    let out = okay(h.run("r", &["build", "-t", "url:1", "."], &ctx));
    assert_eq!(out.matches("CACHED").count(), 3, "{out}");
    // A wrong checksum, a missing file, a URL for COPY: errors with the line.
    let zero = "0".repeat(64);
    df(format!(
        "FROM busybox\nADD --checksum=sha256:{zero} {url} /x\n"
    ));
    let o = h.run("r", &["build", "."], &ctx);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("digest mismatch") && err.contains("Dockerfile:2"),
        "{err}"
    );
    df(format!("FROM busybox\nADD http://{addr}/nope /x\n"));
    let o = h.run("r", &["build", "."], &ctx);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("404"), "{err}");
    df(format!("FROM busybox\nCOPY {url} /x\n"));
    let o = h.run("r", &["build", "."], &ctx);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("source can't be a URL for COPY"), "{err}");
}

#[test]
fn a_terminal_gets_the_live_view() {
    let f = Fixture::new();
    f.write("Dockerfile", "FROM busybox\nRUN echo from the step\n");
    let run = |args: &str| -> String {
        let o = Command::new("script")
            .args([
                "-qec",
                &format!("{} build {args} {}", berth_shell(&f.root), f.ctx.display()),
                "/dev/null",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("script");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = run("-t live:1");
    assert!(
        out.contains("[+] Building") && out.contains("(5/5) FINISHED"),
        "{out}"
    );
    assert!(out.contains("=> [2/2] RUN echo from the step"), "{out}");
    // --progress=plain on a terminal too.
    let out = run("--progress plain -t live:1");
    assert!(
        out.contains("#4 CACHED") && !out.contains("[+] Building"),
        "{out}"
    );
    f.write("Dockerfile", "FROM busybox\nRUN echo last words; exit 2\n");
    let out = run("-t live:2");
    assert!(out.contains("ERROR [2/2] RUN"), "{out}");
    assert!(
        out.contains("last words") && out.contains("exit code: 2"),
        "{out}"
    );
    f.assert_clean();
}

#[test]
fn hostile_contexts_never_read_outside() {
    let f = Fixture::new();
    let outside = f.ctx.parent().expect("parent").join("outside.txt");
    std::fs::write(&outside, "outside the context\n").expect("outside");
    std::os::unix::fs::symlink(&outside, f.ctx.join("link")).expect("symlink");
    std::os::unix::fs::symlink("/", f.ctx.join("rootlink")).expect("symlink");
    f.write("x", "inside\n");
    f.write("new\nline", "newline name\n");
    f.write(
        "Dockerfile",
        "FROM busybox\n\
         COPY rootlink /links/\n\
         COPY ../x /up.txt\n\
         COPY [\"new\\nline\", \"/nl/\"]\n",
    );
    f.build(&["-t", "hostile:1"]);
    // A named symlink is followed inside the context as BuildKit does (`/` is the context's
    // root: its whole content, where the symlinks inside stay symlinks), the `../` stays
    // inside the context, a name with a newline is a name.
    let out = f.run(
        "hostile:1",
        "readlink /links/link; readlink /links/rootlink; cat /links/x /up.txt; cat /nl/*; ls /nl | wc -l",
    );
    assert_eq!(
        out,
        format!(
            "{}\n/\ninside\ninside\nnewline name\n1\n",
            outside.display()
        )
    );
    // A named link out of the context resolves inside it: not found, nothing read.
    f.write("Dockerfile", "FROM busybox\nCOPY link /l\n");
    let err = f.build_fails(&[]);
    assert!(err.contains("not found"), "{err}");
    // COPY rootlink/etc/passwd would go through the link: not found, nothing read.
    f.write("Dockerfile", "FROM busybox\nCOPY rootlink/etc/passwd /p\n");
    let err = f.build_fails(&[]);
    assert!(err.contains("not found"), "{err}");
    f.assert_clean();
}

/// CVE-2024-23652: after a RUN step BuildKit removed the empty files it had made as mount
/// points, by path through the step's filesystem, which the step itself had written: a
/// step that replaced a directory above a mount point with a symlink to a host path had the
/// clean-up remove that host path's file. Here the step moves `/x` (holding the secret's
/// mount point `/x/y/victim`) away and puts a symlink to a host directory in its place; the
/// host's empty `y/victim` is still there after the build, and the layer holds what the
/// step made (the symlink, the moved empty stub), not the secret.
#[test]
fn cve_2024_23652_mount_stub_clean_up_stays_in_the_layer() {
    let f = Fixture::new();
    let host = f.ctx.parent().expect("tempdir").join("host");
    std::fs::create_dir_all(host.join("y")).expect("mkdir");
    std::fs::write(host.join("y/victim"), "").expect("victim");
    f.write("token", "s3cret\n");
    f.write(
        "Dockerfile",
        &format!(
            "FROM busybox\n\
             RUN --mount=type=secret,id=s,target=/x/y/victim mv /x /x2 && ln -s {} /x\n",
            host.display()
        ),
    );
    let secret = format!("id=s,src={}", f.ctx.join("token").display());
    f.build(&["-t", "stub:1", "--network", "none", "--secret", &secret]);
    assert!(
        host.join("y/victim").exists(),
        "the build's clean-up removed a file on the host"
    );
    let out = f.run("stub:1", "readlink /x; wc -c < /x2/y/victim");
    assert_eq!(out, format!("{}\n0\n", host.display()), "{out}");
    f.assert_clean();
}

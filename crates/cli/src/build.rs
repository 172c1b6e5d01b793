//! `berth build [OPTIONS] PATH | -` (also `image build`, `buildx build`): docker's flags parsed
//! here, the build itself in `berth_build` (executor) and `berth_engine::build` (RUN
//! containers); this file prints BuildKit's plain progress and docker's errors.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, anyhow};
use berth_build::dockerignore::{IgnoreFile, Matcher};
use berth_build::stages::{BuildOptions, Platform as BuildPlatform};
use berth_build::{BuildError, BuildRequest, Event, Export, NetworkMode, Progress};
use berth_image::{ImageStore, Platform, Reference};

use crate::args::Parsed;
use crate::containers::Failure;

/// A failure and its exit status (125: usage, as docker's flag errors).
struct Fail {
    code: u8,
    err: anyhow::Error,
}

/// ssh-agents of our own for `--ssh ID=KEYFILE`: each serves its keys on a socket in a
/// private (0700) directory; stopped, and the directory removed, on drop.
#[derive(Default)]
struct Agents {
    dir: Option<PathBuf>,
    children: Vec<std::process::Child>,
}

impl Agents {
    /// Starts `ssh-agent -D` with `keys` added; its socket.
    fn serve(&mut self, id: &str, keys: &[PathBuf]) -> Result<PathBuf, String> {
        use std::os::unix::fs::DirBuilderExt;
        use std::process::{Command, Stdio};
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => {
                let d = std::env::temp_dir().join(format!("berth-ssh-{}", std::process::id()));
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&d)
                    .map_err(|e| format!("{}: {e}", d.display()))?;
                self.dir = Some(d.clone());
                d
            }
        };
        let sock = dir.join(format!("agent.{}.sock", self.children.len()));
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("key files are served by OpenSSH's ssh-agent, which did not start ({e}); give an agent socket instead")
            })?;
        self.children.push(child);
        let t0 = Instant::now();
        while !sock.exists() {
            if t0.elapsed() > std::time::Duration::from_secs(5) {
                return Err(format!(
                    "ssh-agent for {id} did not open {}",
                    sock.display()
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let out = Command::new("ssh-add")
            .arg("-q")
            .args(keys)
            .env("SSH_AUTH_SOCK", &sock)
            .env_remove("SSH_ASKPASS")
            .env_remove("DISPLAY")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("ssh-add: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ssh-add could not load the key ({}); a key with a passphrase needs your agent: \
                 --ssh {id}=$SSH_AUTH_SOCK",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(sock)
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn usage(msg: impl Into<String>) -> Fail {
    Fail {
        code: 125,
        err: anyhow!(msg.into()),
    }
}

impl From<anyhow::Error> for Fail {
    fn from(err: anyhow::Error) -> Fail {
        Fail { code: 1, err }
    }
}

/// A failure as the command table reports it: a usage error (125) with docker's usage
/// lines, any other printed here in BuildKit's form (`ERROR: …`).
fn reported(r: Result<(), Fail>) -> Result<(), Failure> {
    match r {
        Ok(()) => Ok(()),
        Err(f) if f.code == 125 => Err(Failure {
            code: 125,
            msg: format!("{:#}", f.err),
            usage: true,
        }),
        Err(f) => {
            eprintln!("ERROR: {:#}", f.err);
            Err(Failure {
                code: f.code,
                msg: String::new(),
                usage: false,
            })
        }
    }
}

/// `build`, `image build`, `builder build`, `buildx build` (the command table's handler).
pub fn build_command(root: &Path, p: &Parsed, _out: &mut dyn Write) -> Result<(), Failure> {
    reported(build(root, p))
}

/// `builder prune`, `buildx prune` (the command table's handler).
pub fn prune_command(root: &Path, p: &Parsed, _out: &mut dyn Write) -> Result<(), Failure> {
    reported(builder_prune(root, p))
}

/// `builder prune [-a] [-f] [--filter until=DURATION]`.
fn builder_prune(root: &Path, p: &Parsed) -> Result<(), Fail> {
    if !p.args.is_empty() {
        return Err(usage("\"builder prune\" accepts no arguments"));
    }
    let mut older_than = None;
    for f in p.all("filter") {
        match f.split_once('=') {
            Some(("until", d)) => {
                let ns = berth_build::parser::parse_go_duration(d)
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| usage(format!("invalid filter 'until={d}'")))?;
                older_than = Some(std::time::Duration::from_nanos(ns as u64));
            }
            _ => return Err(usage(format!("invalid filter {f:?} (until=DURATION)"))),
        }
    }
    if !p.bool("force") {
        eprint!(
            "WARNING! This will remove all {}build cache.\nAre you sure you want to continue? [y/N] ",
            if p.bool("all") { "" } else { "dangling " }
        );
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let store = ImageStore::open(root).with_context(|| format!("opening {}", root.display()))?;
    let report = berth_build::cache::prune(&store, p.bool("all"), older_than)
        .context("pruning the build cache")?;
    if !report.keys.is_empty() {
        println!("Deleted build cache objects:");
        for k in &report.keys {
            println!("{}", &k[..k.len().min(25)]);
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        crate::fmt::human_size(report.reclaimed)
    );
    Ok(())
}

/// `name` with docker's rules (`busybox` → `docker.io/library/busybox:latest`).
fn tag_of(name: &str) -> Result<Reference, Fail> {
    let bad = || usage(format!("invalid tag {name:?}: invalid reference format"));
    let r = Reference::parse_normalized(name).map_err(|_| bad())?;
    if r.digest().is_some() {
        return Err(bad());
    }
    if r.tag().is_none() {
        return r
            .with_tag(berth_image::reference::DEFAULT_TAG)
            .map_err(|_| bad());
    }
    Ok(r)
}

/// Plain progress on stderr, as BuildKit's `--progress=plain`.
struct Plain {
    out: Box<dyn Write>,
    started: HashMap<usize, Instant>,
    partial: HashMap<usize, Vec<u8>>,
    /// The name of each vertex (for the error summary).
    names: HashMap<usize, String>,
    failed: Option<(String, String)>,
}

impl Plain {
    fn line(&mut self, id: usize, text: &str) {
        let t = self
            .started
            .get(&id)
            .map_or(0.0, |s| s.elapsed().as_secs_f64());
        let _ = writeln!(self.out, "#{id} {t:.3} {text}");
    }

    fn flush_partial(&mut self, id: usize) {
        if let Some(p) = self.partial.remove(&id)
            && !p.is_empty()
        {
            let s = String::from_utf8_lossy(&p).into_owned();
            self.line(id, &s);
        }
    }
}

impl Progress for Plain {
    fn event(&mut self, e: Event<'_>) {
        match e {
            Event::Start { id, name } => {
                self.started.insert(id, Instant::now());
                self.names.insert(id, name.to_string());
                let _ = writeln!(self.out, "\n#{id} {name}");
            }
            Event::Cached { id } => {
                let _ = writeln!(self.out, "#{id} CACHED");
            }
            Event::Log { id, line } => {
                let _ = writeln!(self.out, "#{id} {line}");
            }
            Event::Output { id, data } => {
                let mut buf = self.partial.remove(&id).unwrap_or_default();
                buf.extend_from_slice(data);
                while let Some(i) = buf.iter().position(|&b| b == b'\n') {
                    let rest = buf.split_off(i + 1);
                    let s = String::from_utf8_lossy(&buf[..i]).into_owned();
                    self.line(id, &s);
                    buf = rest;
                }
                self.partial.insert(id, buf);
            }
            Event::Done { id, secs } => {
                self.flush_partial(id);
                let _ = writeln!(self.out, "#{id} DONE {secs:.1}s");
            }
            Event::Failed { id, secs, message } => {
                self.flush_partial(id);
                let _ = writeln!(self.out, "#{id} ERROR: {message}");
                let _ = secs;
                if let Some(n) = self.names.get(&id) {
                    self.failed = Some((n.clone(), message.to_string()));
                }
            }
            Event::Warning(w) => {
                let _ = writeln!(self.out, "WARNING: {w}");
            }
        }
        let _ = self.out.flush();
    }
}

/// BuildKit's tty view (`--progress=auto` on a terminal, `tty`): a header with the time and
/// the steps done, one line per step, the last output lines of the running ones; redrawn in
/// place.
struct Tty {
    start: Instant,
    steps: Vec<TtyStep>,
    drawn: usize,
    last_draw: Option<Instant>,
    width: usize,
    warnings: Vec<String>,
    failed: Option<(String, Vec<u8>)>,
}

struct TtyStep {
    id: usize,
    name: String,
    started: Instant,
    /// None while it runs; (seconds, cached, failed) when it ended.
    ended: Option<(f64, bool, bool)>,
    output: Vec<u8>,
}

impl Tty {
    fn new() -> Tty {
        // SAFETY: fd 2 stays open for the life of the process.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(2) };
        let width = berth_runtime::sys::get_winsize(fd)
            .ok()
            .map(|(_, c)| c as usize)
            .filter(|c| *c >= 20)
            .unwrap_or(80);
        Tty {
            start: Instant::now(),
            steps: Vec::new(),
            drawn: 0,
            last_draw: None,
            width,
            warnings: Vec::new(),
            failed: None,
        }
    }

    fn step(&mut self, id: usize) -> Option<&mut TtyStep> {
        self.steps.iter_mut().find(|s| s.id == id)
    }

    fn fit(&self, line: &str) -> String {
        line.chars().take(self.width - 1).collect()
    }

    fn draw(&mut self, finished: bool) {
        let mut lines = Vec::new();
        let done = self.steps.iter().filter(|s| s.ended.is_some()).count();
        lines.push(format!(
            "[+] Building {:.1}s ({done}/{}){}",
            self.start.elapsed().as_secs_f64(),
            self.steps.len(),
            if finished { " FINISHED" } else { "" }
        ));
        for st in &self.steps {
            let (secs, cached, failed) =
                st.ended
                    .unwrap_or((st.started.elapsed().as_secs_f64(), false, false));
            let name = match (cached, failed) {
                (true, _) => format!("CACHED {}", st.name),
                (_, true) => format!("ERROR {}", st.name),
                _ => st.name.clone(),
            };
            let time = format!("{secs:.1}s");
            let room = self.width.saturating_sub(time.len() + 6);
            let name: String = name.chars().take(room).collect();
            lines.push(format!(
                " => {name}{:pad$} {time}",
                "",
                pad = room.saturating_sub(name.chars().count())
            ));
            if st.ended.is_none() || failed {
                let text = String::from_utf8_lossy(&st.output);
                let tail: Vec<&str> = text.lines().rev().take(6).collect();
                for l in tail.into_iter().rev() {
                    lines.push(self.fit(&format!(" => => # {l}")));
                }
            }
        }
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn));
        }
        out.push_str("\x1b[J");
        for l in &lines {
            out.push_str(l);
            out.push('\n');
        }
        let _ = std::io::stderr().write_all(out.as_bytes());
        let _ = std::io::stderr().flush();
        self.drawn = lines.len();
        self.last_draw = Some(Instant::now());
    }

    /// The last view, and the warnings after it.
    fn finish(&mut self, ok: bool) {
        self.draw(ok);
        for w in std::mem::take(&mut self.warnings) {
            eprintln!("WARNING: {w}");
        }
    }
}

impl Progress for Tty {
    fn event(&mut self, e: Event<'_>) {
        let mut urgent = true;
        match e {
            Event::Start { id, name } => self.steps.push(TtyStep {
                id,
                name: name.to_string(),
                started: Instant::now(),
                ended: None,
                output: Vec::new(),
            }),
            Event::Cached { id } => {
                if let Some(s) = self.step(id) {
                    s.ended = Some((0.0, true, false));
                }
            }
            Event::Log { .. } => urgent = false,
            Event::Output { id, data } => {
                if let Some(s) = self.step(id) {
                    s.output.extend_from_slice(data);
                    let n = s.output.len();
                    if n > 64 * 1024 {
                        s.output.drain(..n - 64 * 1024);
                    }
                }
                urgent = false;
            }
            Event::Done { id, secs } => {
                if let Some(s) = self.step(id) {
                    s.ended = Some((secs, false, false));
                    s.output.clear();
                }
            }
            Event::Failed { id, secs, .. } => {
                if let Some(s) = self.step(id) {
                    s.ended = Some((secs, false, true));
                    let f = (s.name.clone(), s.output.clone());
                    self.failed = Some(f);
                }
            }
            Event::Warning(w) => self.warnings.push(w.to_string()),
        }
        let due = self
            .last_draw
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_millis(100));
        if urgent || due {
            self.draw(false);
        }
    }
}

/// No progress (`-q`, `--progress=quiet`); the failed step is still named in the error.
struct Quiet {
    names: HashMap<usize, String>,
    failed: Option<String>,
    output: Vec<u8>,
}

impl Progress for Quiet {
    fn event(&mut self, e: Event<'_>) {
        match e {
            Event::Start { id, name } => {
                self.names.insert(id, name.to_string());
                self.output.clear();
            }
            Event::Output { data, .. } => {
                self.output.extend_from_slice(data);
                let n = self.output.len();
                if n > 64 * 1024 {
                    self.output.drain(..n - 64 * 1024);
                }
            }
            Event::Failed { id, .. } => self.failed = self.names.get(&id).cloned(),
            _ => {}
        }
    }
}

/// `--secret id=ID[,src=FILE|,env=VAR]` (also `source=`, `type=file|env`): docker's rules,
/// a bare `id` reads the variable of that name, else the file.
fn secret(spec: &str) -> Result<(String, Vec<u8>), Fail> {
    let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(v.to_string()),
            Some(("env", v)) => env = Some(v.to_string()),
            Some(("type", v)) => kind = Some(v.to_string()),
            _ => return Err(usage(format!("--secret: unexpected {part:?} in {spec:?}"))),
        }
    }
    let id = id.ok_or_else(|| usage(format!("--secret {spec:?}: id= is required")))?;
    let from_env = |var: &str| -> Result<Vec<u8>, Fail> {
        std::env::var(var)
            .map(String::into_bytes)
            .map_err(|_| anyhow!("secret {id}: environment variable {var} is not set").into())
    };
    let value = match (kind.as_deref(), src, env) {
        (Some("env"), s, e) => from_env(&e.or(s).unwrap_or_else(|| id.clone()))?,
        (_, None, Some(e)) => from_env(&e)?,
        (_, Some(f), _) => {
            std::fs::read(&f).with_context(|| format!("secret {id}: reading {f}"))?
        }
        (_, None, None) => match std::env::var(&id) {
            Ok(v) => v.into_bytes(),
            Err(_) => std::fs::read(&id).with_context(|| format!("secret {id}: reading {id}"))?,
        },
    };
    Ok((id, value))
}

/// docker's excerpt of the Dockerfile around `line`.
fn excerpt(name: &str, text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let from = line.saturating_sub(3).max(1);
    let to = (line + 2).min(lines.len());
    let mut s = format!("{name}:{line}\n--------------------\n");
    for n in from..=to {
        let l = lines.get(n - 1).copied().unwrap_or("");
        let mark = if n == line { ">>>" } else { "   " };
        s.push_str(&format!("{n:>4} | {mark} {l}\n"));
    }
    s.push_str("--------------------");
    s
}

fn build(root: &Path, p: &Parsed) -> Result<(), Fail> {
    let [path] = p.args.as_slice() else {
        return Err(usage("\"build\" requires exactly 1 argument"));
    };
    let tags = p
        .all("tag")
        .iter()
        .map(|t| tag_of(t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut options = BuildOptions {
        target: p.value("target").map(str::to_string),
        ..BuildOptions::default()
    };
    for a in p.all("build-arg") {
        match a.split_once('=') {
            Some((k, v)) => {
                options.build_args.insert(k.to_string(), v.to_string());
            }
            // `--build-arg NAME`: the value from our environment, if set.
            None => {
                if let Ok(v) = std::env::var(a) {
                    options.build_args.insert(a.clone(), v);
                }
            }
        }
    }
    let mut secrets = HashMap::new();
    for spec in p.all("secret") {
        let (id, value) = secret(spec)?;
        secrets.insert(id, value);
    }
    for h in p.all("add-host") {
        berth_engine::config::parse_add_host(h).map_err(|e| usage(e.to_string()))?;
    }
    for u in p.all("ulimit") {
        berth_engine::config::parse_ulimit(u).map_err(|e| usage(e.to_string()))?;
    }
    let shm_size = match p.value("shm-size") {
        Some(v) => Some(
            berth_engine::config::parse_size(v)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| usage(format!("invalid --shm-size {v:?}")))? as u64,
        ),
        None => None,
    };
    let mut ssh = HashMap::new();
    // Lives until the build is done: the agents serving `--ssh ID=KEYFILE`.
    let mut agents = Agents::default();
    for spec in p.all("ssh") {
        // `default` alone: $SSH_AUTH_SOCK; `ID=SOCKET`; or `ID=KEY[,KEY…]`, key files served by
        // an ssh-agent of our own (as docker loads them into an agent of its own).
        let (id, paths) = match spec.split_once('=') {
            Some((id, paths)) => (
                id.to_string(),
                paths.split(',').map(PathBuf::from).collect::<Vec<_>>(),
            ),
            None => match std::env::var_os("SSH_AUTH_SOCK") {
                Some(s) => (spec.clone(), vec![PathBuf::from(s)]),
                None => {
                    return Err(usage(format!(
                        "--ssh {spec}: SSH_AUTH_SOCK is not set (give --ssh {spec}=SOCKET or {spec}=KEYFILE)"
                    )));
                }
            },
        };
        use std::os::unix::fs::FileTypeExt;
        let sock = match paths.as_slice() {
            [one] if std::fs::metadata(one).is_ok_and(|m| m.file_type().is_socket()) => one.clone(),
            keys => {
                if let Some(bad) = keys.iter().find(|k| !k.is_file()) {
                    return Err(usage(format!(
                        "--ssh {spec}: {} is neither an agent socket nor a key file",
                        bad.display()
                    )));
                }
                agents
                    .serve(&id, keys)
                    .map_err(|e| usage(format!("--ssh {spec}: {e}")))?
            }
        };
        ssh.insert(id, sock);
    }
    let mut labels = Vec::new();
    for l in p.all("label") {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.push((k.to_string(), v.to_string()));
    }
    let network = match p.value("network").unwrap_or("default") {
        "default" | "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        other => {
            return Err(usage(format!(
                "network mode {other:?} not supported by berth build (none, host)"
            )));
        }
    };
    if let Some(pl) = p.value("platform") {
        let want: Platform = pl.parse().map_err(|e| usage(format!("--platform: {e}")))?;
        let host = Platform::host();
        if want.normalized() != host.normalized() {
            return Err(usage(format!(
                "--platform {pl} is not supported: berth builds for the host's platform ({}/{}) only, without emulation",
                host.os, host.architecture
            )));
        }
    }
    options.target_platform = BuildPlatform::host();
    let quiet = p.bool("quiet") || p.value("progress") == Some("quiet");
    let tty = !quiet
        && match p.value("progress").unwrap_or("auto") {
            "tty" => true,
            "auto" => std::io::stderr().is_terminal(),
            _ => false,
        };
    match p.value("progress").unwrap_or("auto") {
        "auto" | "plain" | "tty" | "quiet" => {}
        other => return Err(usage(format!("invalid progress mode {other:?}"))),
    }
    let mut export = Export::Image;
    for o in p.all("output") {
        let mut kind = None;
        let mut dest = None;
        if !o.contains('=') {
            kind = Some("local".to_string());
            dest = Some(o.clone());
        }
        for part in o.split(',').filter(|s| s.contains('=')) {
            match part.split_once('=') {
                Some(("type", v)) => kind = Some(v.to_string()),
                Some(("dest", v)) => dest = Some(v.to_string()),
                _ => return Err(usage(format!("--output: unknown attribute in {part:?}"))),
            }
        }
        let dest = dest.ok_or_else(|| usage("--output: dest= is required"))?;
        export = match kind.as_deref() {
            Some("local") => Export::Local(PathBuf::from(dest)),
            Some(t @ ("tar" | "oci")) => {
                let w: Box<dyn Write> = if dest == "-" {
                    if std::io::stdout().is_terminal() {
                        return Err(usage("refusing to write a tar to a terminal"));
                    }
                    Box::new(std::io::stdout())
                } else {
                    Box::new(
                        std::fs::File::create(&dest).with_context(|| format!("creating {dest}"))?,
                    )
                };
                if t == "tar" {
                    Export::Tar(w)
                } else {
                    Export::Oci(w)
                }
            }
            Some(t) => return Err(usage(format!("--output type={t} is not supported"))),
            None => return Err(usage("--output: type= is required")),
        };
    }

    // The context and the Dockerfile.
    let store = ImageStore::open(root).with_context(|| format!("opening {}", root.display()))?;
    let mut tmp_context: Option<PathBuf> = None;
    let file = p.value("file");
    let (context, dockerfile_path, dockerfile): (Option<PathBuf>, Option<PathBuf>, String) = if path
        == "-"
    {
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .context("reading the context from stdin")?;
        let looks_tar = |d: &[u8]| d.len() >= 262 && &d[257..262] == b"ustar";
        let gz = data.starts_with(&[0x1f, 0x8b]);
        if looks_tar(&data) || gz {
            let dir = root
                .join("builder")
                .join(format!("context-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            tmp_context = Some(dir.clone());
            let rd: Box<dyn Read> = if gz {
                Box::new(
                    berth_image::layer::decompress(data.as_slice())
                        .context("decompressing the context from stdin")?
                        .1,
                )
            } else {
                Box::new(data.as_slice())
            };
            tar::Archive::new(rd)
                .unpack(&dir)
                .context("unpacking the context from stdin")?;
            let df = dir.join(file.unwrap_or("Dockerfile"));
            let text = std::fs::read_to_string(&df).with_context(|| {
                format!("reading {} from the context", file.unwrap_or("Dockerfile"))
            })?;
            (Some(dir), Some(df), text)
        } else {
            if file.is_some_and(|f| f != "-") {
                return Err(usage(
                    "-f cannot name a file when the Dockerfile comes from stdin",
                ));
            }
            let text = String::from_utf8(data).context("the Dockerfile is not UTF-8")?;
            (None, None, text)
        }
    } else {
        let ctx = match std::fs::canonicalize(path) {
            Ok(c) if c.is_dir() => c,
            _ => {
                return Err(anyhow!("unable to prepare context: path {path:?} not found").into());
            }
        };
        match file {
            Some("-") => {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading the Dockerfile from stdin")?;
                (Some(ctx), None, text)
            }
            Some(f) => {
                let df = PathBuf::from(f);
                let text = std::fs::read_to_string(&df)
                    .with_context(|| format!("failed to read dockerfile: open {f}"))?;
                (Some(ctx), Some(df), text)
            }
            None => {
                let df = ctx.join("Dockerfile");
                let text = std::fs::read_to_string(&df)
                    .with_context(|| format!("failed to read dockerfile: open {}", df.display()))?;
                (Some(ctx), Some(df), text)
            }
        }
    };
    let ignore = match &context {
        Some(c) => {
            IgnoreFile::find(c, dockerfile_path.as_deref())
                .context("reading .dockerignore")?
                .matcher
        }
        None => Matcher::default(),
    };
    let df_name = dockerfile_path
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Dockerfile".into());
    let image_export = matches!(export, Export::Image);
    let req = BuildRequest {
        dockerfile: dockerfile.clone(),
        context,
        ignore,
        options,
        tags: tags.clone(),
        labels,
        no_cache: p.bool("no-cache"),
        pull: p.bool("pull"),
        network,
        export,
        secrets,
        ssh,
        add_hosts: p.all("add-host").to_vec(),
        ulimits: p.all("ulimit").to_vec(),
        shm_size,
        no_cache_filter: p
            .all("no-cache-filter")
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::to_string)
            .collect(),
    };

    let engine = berth_engine::Engine::open(root).map_err(|e| anyhow!("{e}"))?;
    let mut pull = |name: &str| -> Result<(), String> {
        // Ctrl-C stops a pull as it stops `berth pull` (nothing of the build exists yet).
        let _signals = berth_engine::build::SignalsDefault::new();
        crate::registry::pull_for_run(&store, name, false).map_err(|f| match f {
            crate::Fail::Cmd(m) | crate::Fail::Usage(m) => m,
        })
    };
    let mut plain = Plain {
        out: Box::new(std::io::stderr()),
        started: HashMap::new(),
        partial: HashMap::new(),
        names: HashMap::new(),
        failed: None,
    };
    let mut live = Tty::new();
    let mut q = Quiet {
        names: HashMap::new(),
        failed: None,
        output: Vec::new(),
    };
    let result = {
        let mut runner =
            berth_engine::build::BuildRunner::new(&engine).map_err(|e| anyhow!("{e}"))?;
        let progress: &mut dyn Progress = if quiet {
            &mut q
        } else if tty {
            &mut live
        } else {
            &mut plain
        };
        berth_build::build(&store, &mut runner, &mut pull, progress, req)
    };
    if tty {
        live.finish(result.is_ok());
    }
    if let Some(d) = &tmp_context {
        let _ = std::fs::remove_dir_all(d);
    }
    let built = match result {
        Ok(b) => b,
        Err(e) => {
            // The failed step, with its output when the progress did not show all of it.
            let step = if quiet {
                q.failed.clone().map(|n| (n, q.output.clone()))
            } else if tty {
                live.failed.clone()
            } else {
                plain.failed.as_ref().map(|(n, _)| (n.clone(), Vec::new()))
            };
            if let Some((n, output)) = step {
                eprintln!("------\n > {n}:\n------");
                if !output.is_empty() {
                    eprint!("{}", String::from_utf8_lossy(&output));
                }
            }
            if let Some(line) = e.line().filter(|l| *l > 0) {
                eprintln!("{}", excerpt(&df_name, &dockerfile, line));
            }
            let code = if matches!(e, BuildError::Interrupted) {
                130
            } else {
                1
            };
            return Err(Fail {
                code,
                err: anyhow!("failed to solve: {e}"),
            });
        }
    };
    let id = built.id.to_string();
    if let Some(f) = p.value("iidfile") {
        std::fs::write(f, &id).with_context(|| format!("writing the image id to {f}"))?;
    }
    if quiet && image_export {
        println!("{id}");
    }
    Ok(())
}

//! The executor: a parsed, planned Dockerfile into an image in the store.
//!
//! Stages run in dependency order (only those `--target` needs). Each stage carries the image
//! config being built (a JSON document as the image spec has it), its layer descriptors, the
//! chain ids of its snapshots and a running cache key. Instructions that only change the
//! config (`ENV`, `LABEL`, `CMD`, …) update it and add an `empty_layer` history entry;
//! `RUN`, `COPY` and `ADD` work on a container filesystem prepared from the stage's snapshots
//! (an overlay whose upper directory collects the changes), and the upper directory becomes a
//! layer blob and a snapshot through `berth_image::create_layer`. `RUN` executes through a
//! [`Runner`] (the engine's, with the default security profile); `COPY`/`ADD` are file
//! operations on the mounted filesystem (see [`crate::files`]), no container.
//!
//! Before anything runs, every base image is resolved (pulled when missing or with `--pull`),
//! so that no network I/O thread is alive when a container is cloned.
//!
//! Cleanup: every step's filesystem lives under `<root>/builder/work/<pid>-<start>/` and is
//! unmounted and removed when the step ends (also on errors and interrupts); a build killed
//! with SIGKILL leaves that directory, which the next build removes (its owner is dead). The
//! store only gains a record when the whole build succeeded; blobs of a failed build are
//! unreferenced and go with the next GC (the build holds a lease meanwhile).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use berth_image::archive::{config_map_insert, config_set_env};
use berth_image::manifest::media_types as mt;
use berth_image::{
    ApplyOptions, ContainerRootfs, Digest, ImageRecord, ImageStore, Platform, Reference,
    RootfsMode, TreeKind,
};
use serde_json::{Map, Value, json};

use crate::cache::{self, Cache, KeyHasher};
use crate::dockerignore::{Entry, Matcher};
use crate::files::{self, FilesError, Overrides};
use crate::history;
use crate::parser::{
    Command, CommandLine, CopyArgs, CopySource, Healthcheck, Instruction, MountType, NetworkMode,
    ParseError, Run,
};
use crate::shell::Lexer;
use crate::stages::{self, ArgScope, Base, BuildOptions, Plan, StageError};

/// The history comment BuildKit writes.
pub const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// A mount of a `RUN` container besides its root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMount {
    /// A host directory (a cache mount's directory, the context, another stage's filesystem).
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
    },
    Tmpfs {
        target: String,
        size: Option<u64>,
    },
}

impl RunMount {
    pub fn target(&self) -> &str {
        match self {
            RunMount::Bind { target, .. } | RunMount::Tmpfs { target, .. } => target,
        }
    }
}

/// What a `RUN` executes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub args: Vec<String>,
    /// `KEY=VALUE`.
    pub env: Vec<String>,
    pub cwd: String,
    /// `USER` (empty: root).
    pub user: String,
    pub network: NetworkMode,
    pub mounts: Vec<RunMount>,
    /// `--add-host HOST:IP` entries for /etc/hosts.
    pub add_hosts: Vec<String>,
    /// `--ulimit NAME=SOFT[:HARD]`.
    pub ulimits: Vec<String>,
    /// `--shm-size` in bytes (default 64 MiB).
    pub shm_size: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("{0}")]
    Failed(String),
    #[error("interrupted")]
    Interrupted,
}

/// Runs `RUN` containers (implemented by the engine).
pub trait Runner {
    /// Runs `spec` as container `id` on the mounted root filesystem `rootfs`; `dir` is a
    /// private directory for the container's files. The output (stdout and stderr) goes to
    /// `output` as it comes. Returns the exit code (128+N for a signal).
    fn run(
        &mut self,
        id: &str,
        rootfs: &Path,
        dir: &Path,
        spec: &RunSpec,
        output: &mut dyn FnMut(&[u8]),
    ) -> std::result::Result<i32, RunnerError>;
    /// Whether the user asked the build to stop (checked between steps).
    fn interrupted(&mut self) -> bool;
    /// Removes whatever the runtime may still hold of container `id` (a build that died).
    fn cleanup(&mut self, id: &str);
}

/// Fetches an image into the store (`berth pull`'s way).
pub type Pull<'a> = dyn FnMut(&str) -> std::result::Result<(), String> + 'a;

/// Progress, as BuildKit's vertices.
#[derive(Debug)]
pub enum Event<'a> {
    Start {
        id: usize,
        name: &'a str,
    },
    Cached {
        id: usize,
    },
    Log {
        id: usize,
        line: &'a str,
    },
    Output {
        id: usize,
        data: &'a [u8],
    },
    Done {
        id: usize,
        secs: f64,
    },
    Failed {
        id: usize,
        secs: f64,
        message: &'a str,
    },
    Warning(&'a str),
}

pub trait Progress {
    fn event(&mut self, e: Event<'_>);
}

/// Where the result goes.
pub enum Export {
    /// An image in the store (tagged with the request's tags).
    Image,
    /// The final filesystem into a directory (`--output type=local,dest=`).
    Local(PathBuf),
    /// The final filesystem as a tar (`--output type=tar,dest=`).
    Tar(Box<dyn Write>),
    /// The image as an OCI layout tar (`--output type=oci,dest=`), not stored.
    Oci(Box<dyn Write>),
}

pub struct BuildRequest {
    pub dockerfile: String,
    /// The directory the context is in (None: no context, as `docker build - < Dockerfile`).
    pub context: Option<PathBuf>,
    pub ignore: Matcher,
    pub options: BuildOptions,
    pub tags: Vec<Reference>,
    pub labels: Vec<(String, String)>,
    pub no_cache: bool,
    pub pull: bool,
    /// `--network` (RUN's default).
    pub network: NetworkMode,
    pub export: Export,
    /// `--secret id=…`: the values `RUN --mount=type=secret` mounts (never in a layer, the
    /// history or a cache key).
    pub secrets: HashMap<String, Vec<u8>>,
    /// `--ssh ID=SOCKET`: the agent sockets `RUN --mount=type=ssh` mounts.
    pub ssh: HashMap<String, PathBuf>,
    /// `--add-host`, `--ulimit`, `--shm-size`: every `RUN` container gets them.
    pub add_hosts: Vec<String>,
    pub ulimits: Vec<String>,
    pub shm_size: Option<u64>,
    /// `--no-cache-filter`: the stages (names or indexes) whose steps run without the cache.
    pub no_cache_filter: Vec<String>,
}

/// The result.
#[derive(Debug, Clone)]
pub struct Built {
    /// The image id (the config's digest).
    pub id: Digest,
    /// The record, when exported as an image.
    pub image: Option<ImageRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("dockerfile parse error on line {}: {}", .0.line, .0.kind)]
    Parse(#[from] ParseError),
    #[error("{0}")]
    Stage(#[from] StageError),
    #[error("process \"{command}\" did not complete successfully: exit code: {code}")]
    RunFailed {
        line: usize,
        command: String,
        code: i32,
    },
    #[error("{instruction}: {source}")]
    Files {
        line: usize,
        instruction: &'static str,
        source: FilesError,
    },
    #[error("{what} is not supported")]
    Unsupported { line: usize, what: String },
    #[error("{message}")]
    Step { line: usize, message: String },
    #[error("{image}: {message}")]
    Pull { image: String, message: String },
    #[error("{0}")]
    Image(#[from] berth_image::Error),
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("the build was interrupted")]
    Interrupted,
}

impl BuildError {
    /// The Dockerfile line at fault, when there is one.
    pub fn line(&self) -> Option<usize> {
        match self {
            BuildError::Parse(e) => Some(e.line),
            BuildError::RunFailed { line, .. }
            | BuildError::Files { line, .. }
            | BuildError::Unsupported { line, .. }
            | BuildError::Step { line, .. } => Some(*line),
            BuildError::Stage(
                StageError::NoStageContext { line, .. }
                | StageError::DuplicateStageName { line, .. }
                | StageError::InvalidStageIndex { line, .. }
                | StageError::Cycle { line, .. }
                | StageError::Substitution { line, .. }
                | StageError::BlankBase { line, .. },
            ) => Some(*line),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, BuildError>;

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |err| BuildError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// A stage's image as it is being built.
#[derive(Debug, Clone)]
struct StageState {
    /// The image config document (an object), less its `config`, which is `run`.
    config: Value,
    /// The config's `config` (Cmd, Env, WorkingDir, …).
    run: Map<String, Value>,
    /// Manifest layer descriptors.
    layers: Vec<Value>,
    chain: Vec<Digest>,
    key: Digest,
    /// The `created` of the history entries from here on (the last layer's time).
    time: String,
    /// The `Cmd` came from the base image (an `ENTRYPOINT` then resets it).
    cmd_from_base: bool,
}

impl StageState {
    fn run_config(&mut self) -> &mut Map<String, Value> {
        &mut self.run
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.run.get(key).filter(|v| !v.is_null())
    }

    fn env(&self) -> Vec<(String, String)> {
        self.get("Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|e| match e.split_once('=') {
                        Some((k, v)) => (k.to_string(), v.to_string()),
                        None => (e.to_string(), String::new()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn workdir(&self) -> String {
        self.get("WorkingDir")
            .and_then(Value::as_str)
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string()
    }

    fn shell(&self) -> Vec<String> {
        self.get("Shell")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    fn history(&mut self, created_by: String, empty: bool) {
        let mut h = json!({
            "created": self.time,
            "created_by": created_by,
            "comment": HISTORY_COMMENT,
        });
        if empty {
            h["empty_layer"] = json!(true);
        }
        match self.config["history"].as_array_mut() {
            Some(a) => a.push(h),
            None => self.config["history"] = json!([h]),
        }
    }

    fn push_layer(&mut self, digest: &Digest, size: u64, diff_id: &Digest) {
        let chain = berth_image::chain_id(self.chain.last(), diff_id);
        self.chain.push(chain);
        self.layers.push(
            json!({"mediaType": mt::OCI_LAYER_GZIP, "digest": digest.to_string(), "size": size}),
        );
        match self.config["rootfs"]["diff_ids"].as_array_mut() {
            Some(ids) => ids.push(json!(diff_id.to_string())),
            None => {
                self.config["rootfs"] = json!({"type": "layers", "diff_ids": [diff_id.to_string()]})
            }
        }
    }
}

/// A step's container filesystem, unmounted and removed when dropped.
struct StepFs {
    rootfs: Option<ContainerRootfs>,
    dir: PathBuf,
}

impl StepFs {
    fn path(&self) -> PathBuf {
        self.rootfs
            .as_ref()
            .map(ContainerRootfs::path)
            .unwrap_or_else(|| self.dir.join("rootfs"))
    }

    /// The changes and how to read them: the overlay's upper directory, or the whole tree of a
    /// filesystem made from no layer.
    fn changes(&self, chain_len: usize) -> Result<(PathBuf, TreeKind)> {
        let Some(r) = &self.rootfs else {
            return Err(BuildError::Step {
                line: 0,
                message: "no filesystem".into(),
            });
        };
        match r.upper() {
            Some(u) => Ok((u, TreeKind::OverlayUpper)),
            None if chain_len == 0 => Ok((r.path(), TreeKind::Full)),
            None => Err(BuildError::Step {
                line: 0,
                message: format!(
                    "the builder needs overlayfs for its layers ({})",
                    r.overlay_fallback().unwrap_or("overlay unavailable")
                ),
            }),
        }
    }
}

impl Drop for StepFs {
    fn drop(&mut self) {
        let mut r = match self.rootfs.take() {
            Some(r) => r.remove().err().map(|e| e.to_string()),
            None => None,
        };
        // A RUN container killed a moment ago may still hold the overlay (its processes
        // die after its init, and on a loaded machine its mount namespace can outlive them
        // by seconds): the directory goes once they are gone (10 s at most).
        for _ in 0..400 {
            match fs::remove_dir_all(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(e) => r = Some(e.to_string()),
            }
            // Still mounted (a dead build's filesystem that could not be opened, or one whose
            // unmount raced its container's end): detach it.
            detach(&self.dir.join("rootfs"));
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        if std::env::var_os("BERTH_DEBUG").is_some_and(|v| !v.is_empty()) {
            eprintln!(
                "berth build: {} left behind ({}); the next build removes it",
                self.dir.display(),
                r.unwrap_or_default()
            );
        }
    }
}

/// `EXPOSE` ports as docker's nat.ParsePortSpecs makes them: `80` → `80/tcp`, the protocol
/// in lower case, a range `8000-8002[/udp]` as each of its ports.
fn expose_ports(spec: &str) -> Vec<String> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if let Some((a, b)) = ports.split_once('-')
        && let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>())
        && a <= b
    {
        return (a..=b).map(|p| format!("{p}/{proto}")).collect();
    }
    vec![format!("{ports}/{proto}")]
}

/// A git source as BuildKit tells one (`isGitURL`): `git@…`, `git://…`, `ssh://…`,
/// `github.com/…`, or an http(s) URL whose path ends in `.git` (a `#ref[:dir]` after it). A
/// local path named `x.git` is a path.
fn is_git_source(p: &str) -> bool {
    if ["git@", "git://", "ssh://", "github.com/"]
        .iter()
        .any(|pre| p.starts_with(pre))
    {
        return true;
    }
    (p.starts_with("http://") || p.starts_with("https://"))
        && p.split('#').next().is_some_and(|u| u.ends_with(".git"))
}

/// `umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW)`, errors ignored (nothing mounted there).
fn detach(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    // SAFETY: a NUL-terminated path; umount2 reads it and touches no memory of ours.
    unsafe {
        libc::umount2(c.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW);
    }
}

/// This build's work directory, removed at the end.
struct Work {
    dir: PathBuf,
    prefix: String,
    next: usize,
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The forked builders of a level (`None` once waited for); on drop (this build failed),
/// each is asked to stop as Ctrl-C would (it kills its RUN and cleans up), then waited for.
struct Helpers(Vec<Option<i32>>);

impl Helpers {
    /// Waits for the `k`th helper to end (whoever reaped it: the runner reaps any child).
    /// Waits for the `k`th helper; true when it built its stage (exit status 0 seen here).
    fn wait(&mut self, k: usize) -> bool {
        match self.0.get_mut(k).and_then(Option::take) {
            Some(pid) => wait_pid(pid) == Some(0),
            None => false,
        }
    }
}

impl Drop for Helpers {
    fn drop(&mut self) {
        for pid in self.0.iter_mut().filter_map(Option::take) {
            // SAFETY: kill(2) of a child this process forked and has not waited for.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            wait_pid(pid);
        }
    }
}

/// What a helper's steps printed (by vertex id) and how long they took.
#[derive(Default)]
struct Recorded {
    output: HashMap<usize, Vec<u8>>,
    secs: HashMap<usize, f64>,
}

impl Recorded {
    fn take(&mut self, id: usize) -> (Vec<u8>, f64) {
        (
            self.output.remove(&id).unwrap_or_default(),
            self.secs.remove(&id).unwrap_or(0.0),
        )
    }
}

/// A helper's progress: nothing printed, the steps' output recorded for the parent, which
/// reports the stage.
struct Recorder(Rc<RefCell<Recorded>>);

impl Progress for Recorder {
    fn event(&mut self, e: Event<'_>) {
        let mut r = self.0.borrow_mut();
        match e {
            Event::Output { id, data } => r.output.entry(id).or_default().extend_from_slice(data),
            Event::Log { id, line } => {
                let o = r.output.entry(id).or_default();
                o.extend_from_slice(line.as_bytes());
                o.push(b'\n');
            }
            Event::Done { id, secs } => {
                r.secs.insert(id, secs);
            }
            _ => {}
        }
    }
}

/// fork(2): Some(0) in the child, Some(pid) in the parent, None on failure.
fn fork_process() -> Option<i32> {
    // SAFETY: called only when /proc/self/task shows one thread, so no lock can be held by
    // another thread in the child; the child runs the builder's own code and leaves with
    // _exit.
    let pid = unsafe { libc::fork() };
    (pid >= 0).then_some(pid)
}

/// Leaves a forked helper without running the parent's destructors or atexit handlers.
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends this process at once; nothing is unwound.
    unsafe { libc::_exit(code) }
}

/// Makes this process the reaper of its orphans (a RUN's init when the runtime double-forks).
fn set_subreaper() {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Waits for child `pid` to end; also when another waitpid reaped it first (ECHILD).
/// Its exit code; None when it did not exit normally or was reaped elsewhere.
fn wait_pid(pid: i32) -> Option<i32> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on a child pid with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
        }
    }
}

/// The start time of a live process (field 22 of /proc/PID/stat), to tell a pid reused;
/// None for a zombie (dead, not yet reaped) or no process.
fn start_time(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    let mut fields = after.split(' ');
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Builds `req` into the store.
pub fn build(
    store: &ImageStore,
    runner: &mut dyn Runner,
    pull: &mut Pull<'_>,
    progress: &mut dyn Progress,
    req: BuildRequest,
) -> Result<Built> {
    let mut ex = Executor::new(store, runner, progress, &req)?;
    ex.run(pull, req)
}

struct Executor<'a> {
    store: &'a ImageStore,
    runner: &'a mut dyn Runner,
    progress: &'a mut dyn Progress,
    cache: Cache,
    work: Work,
    vertex: usize,
    entries: Option<Vec<Entry>>,
    images: HashMap<String, ImageRecord>,
    context: Option<PathBuf>,
    ignore: Matcher,
    no_cache: bool,
    /// The stage being built is in `--no-cache-filter`.
    stage_no_cache: bool,
    /// The stage being built was just built by a helper of this build: its entries are used
    /// even with `--no-cache`.
    helped: bool,
    /// Where helpers leave what their steps printed, by cache key (`<work>/replay/`), for
    /// the parent to show in place of `CACHED`.
    replay: PathBuf,
    /// In a helper: the output and time of each step, recorded by its progress.
    recorded: Option<Rc<RefCell<Recorded>>>,
    secrets: HashMap<String, Vec<u8>>,
    ssh: HashMap<String, PathBuf>,
    _lease: berth_image::Lease,
}

impl<'a> Executor<'a> {
    fn new(
        store: &'a ImageStore,
        runner: &'a mut dyn Runner,
        progress: &'a mut dyn Progress,
        req: &BuildRequest,
    ) -> Result<Executor<'a>> {
        let base = store.root().join("builder").join("work");
        fs::create_dir_all(&base).map_err(io_at(&base))?;
        // What builds that died left.
        if let Ok(rd) = fs::read_dir(&base) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let alive = name
                    .split_once('-')
                    .and_then(|(p, s)| Some((p.parse::<u32>().ok()?, s.parse::<u64>().ok()?)))
                    .is_some_and(|(p, s)| start_time(p) == Some(s));
                if alive {
                    continue;
                }
                let steps: Vec<_> = fs::read_dir(e.path())
                    .map(|d| d.flatten().collect())
                    .unwrap_or_default();
                // Its containers first (they may still run on its filesystems), then those.
                for s in &steps {
                    runner.cleanup(&s.file_name().to_string_lossy());
                }
                for s in &steps {
                    drop(StepFs {
                        rootfs: ContainerRootfs::open(store.snapshots(), &s.path()).ok(),
                        dir: s.path(),
                    });
                }
                let _ = fs::remove_dir_all(e.path());
            }
        }
        let pid = std::process::id();
        let dir = base.join(format!("{pid}-{}", start_time(pid).unwrap_or(0)));
        let replay = dir.join("replay");
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        Ok(Executor {
            store,
            runner,
            progress,
            cache: Cache::new(store.root()),
            work: Work {
                dir,
                prefix: format!("berth-build-{pid}"),
                next: 0,
            },
            vertex: 0,
            entries: None,
            images: HashMap::new(),
            context: req.context.clone(),
            ignore: req.ignore.clone(),
            no_cache: req.no_cache,
            stage_no_cache: false,
            helped: false,
            replay,
            recorded: None,
            secrets: req.secrets.clone(),
            ssh: req.ssh.clone(),
            _lease: store.lease()?,
        })
    }

    fn start(&mut self, name: &str) -> (usize, Instant) {
        self.vertex += 1;
        self.progress.event(Event::Start {
            id: self.vertex,
            name,
        });
        (self.vertex, Instant::now())
    }

    fn done(&mut self, v: (usize, Instant)) {
        self.progress.event(Event::Done {
            id: v.0,
            secs: v.1.elapsed().as_secs_f64(),
        });
    }

    /// A fresh step directory and container id.
    fn step_dir(&mut self) -> (String, PathBuf) {
        self.work.next += 1;
        let id = format!("{}-{}", self.work.prefix, self.work.next);
        (id.clone(), self.work.dir.join(id))
    }

    /// A container filesystem of `chain`, mounted.
    fn mount(&mut self, chain: &[Digest]) -> Result<StepFs> {
        let (_, dir) = self.step_dir();
        let r = ContainerRootfs::prepare(self.store.snapshots(), chain, &dir, RootfsMode::Auto)?;
        Ok(StepFs {
            rootfs: Some(r),
            dir,
        })
    }

    fn image(&mut self, name: &str, pull: &mut Pull<'_>, always: bool) -> Result<ImageRecord> {
        if let Some(r) = self.images.get(name) {
            return Ok(r.clone());
        }
        let found = if always {
            None
        } else {
            self.store.get(name).ok()
        };
        let rec = match found {
            Some(r) => r,
            None => {
                pull(name).map_err(|message| BuildError::Pull {
                    image: name.to_string(),
                    message,
                })?;
                self.store.get(name)?
            }
        };
        self.images.insert(name.to_string(), rec.clone());
        Ok(rec)
    }

    fn run(&mut self, pull: &mut Pull<'_>, req: BuildRequest) -> Result<Built> {
        let v = self.start("[internal] load build definition from Dockerfile");
        self.progress.event(Event::Log {
            id: v.0,
            line: &format!("transferring dockerfile: {}B done", req.dockerfile.len()),
        });
        let df = crate::parser::parse(&req.dockerfile)?;
        for w in &df.warnings {
            self.progress.event(Event::Warning(&format!(
                "Dockerfile:{}: {}",
                w.line, w.message
            )));
        }
        let plan = stages::plan(&df, &req.options)?;
        self.done(v);
        for a in &plan.unused_build_args {
            self.progress.event(Event::Warning(&format!(
                "One or more build-args [{a}] were not consumed"
            )));
        }
        if req.options.target_platform != stages::Platform::host() {
            return Err(BuildError::Unsupported {
                line: 0,
                what: format!(
                    "building for {} on {} (no emulation)",
                    req.options.target_platform,
                    stages::Platform::host()
                ),
            });
        }
        // Every image first: no registry I/O once containers run.
        let mut shown = std::collections::HashSet::new();
        for &i in &plan.needed {
            let st = &plan.stages[i];
            // One step per image, as BuildKit shows it, however many stages use it.
            if let Base::Image(name) = &st.base
                && shown.insert(name.clone())
            {
                let v = self.start(&format!("[internal] load metadata for {name}"));
                self.image(name, pull, req.pull)?;
                self.done(v);
            }
            for (name, _) in &st.images {
                self.image(name, pull, req.pull)?;
            }
        }
        let mut done: HashMap<usize, StageState> = HashMap::new();
        for level in &plan.levels {
            // The stages of a level are independent: all but the first are built at the same
            // time in forked builders of their own (filling the cache), the first one here;
            // then each of the others here in turn, once its builder is done, from the cache
            // (a step that failed there runs again here and fails with its full report).
            // With --no-cache (or --no-cache-filter) the entries a helper made in this build
            // are used all the same: they are this build's.
            let mut helpers = if level.len() > 1 {
                self.fork_helpers(&plan, &level[1..], &done, &req)
            } else {
                Helpers(Vec::new())
            };
            for (k, &i) in level.iter().enumerate() {
                self.helped = k > 0 && helpers.wait(k - 1);
                let st = self.stage(&plan, i, &done, &req);
                self.helped = false;
                done.insert(i, st?);
            }
        }
        let Some(mut last) = done.remove(&plan.target) else {
            return Err(BuildError::Step {
                line: 0,
                message: "the target stage was not built".into(),
            });
        };
        self.export(&mut last, req)
    }

    /// Forks a builder for each of `stages` (independent of each other and of the stage
    /// built here meanwhile). A helper builds its stage silently into the store and the cache
    /// with a work directory of its own, then exits without touching what this process owns.
    /// None are forked (the stages are then built one after the other) unless this process
    /// is single-threaded, as the runtime needs.
    fn fork_helpers(
        &mut self,
        plan: &Plan,
        stages: &[usize],
        done: &HashMap<usize, StageState>,
        req: &BuildRequest,
    ) -> Helpers {
        let mut pids = Vec::new();
        for &i in stages {
            let threads = fs::read_dir("/proc/self/task").map_or(2, |d| d.count());
            if threads != 1 {
                break;
            }
            match fork_process() {
                Some(0) => {
                    // A panic must not unwind into the parent's destructors (its lease).
                    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.helper(plan, i, done, req)
                    }))
                    .unwrap_or(101);
                    exit_now(code);
                }
                Some(pid) => pids.push(Some(pid)),
                None => break,
            }
        }
        Helpers(pids)
    }

    /// In a forked helper: builds stage `i`; the exit code.
    fn helper(
        &mut self,
        plan: &Plan,
        i: usize,
        done: &HashMap<usize, StageState>,
        req: &BuildRequest,
    ) -> i32 {
        set_subreaper();
        // The parent's work directory, lease and progress are the parent's: never dropped or
        // written here.
        let pid = std::process::id();
        let dir = self
            .work
            .dir
            .with_file_name(format!("{pid}-{}", start_time(pid).unwrap_or(0)));
        if fs::create_dir_all(&dir).is_err() {
            return 1;
        }
        let parent_work = std::mem::replace(
            &mut self.work,
            Work {
                dir,
                prefix: format!("berth-build-{pid}"),
                next: 0,
            },
        );
        std::mem::forget(parent_work);
        let recorded = Rc::new(RefCell::new(Recorded::default()));
        self.recorded = Some(recorded.clone());
        self.progress = Box::leak(Box::new(Recorder(recorded)));
        let ok = self.stage(plan, i, done, req).is_ok();
        let work = std::mem::replace(
            &mut self.work,
            Work {
                dir: PathBuf::new(),
                prefix: String::new(),
                next: 0,
            },
        );
        drop(work);
        i32::from(!ok)
    }

    fn stage(
        &mut self,
        plan: &Plan,
        idx: usize,
        done: &HashMap<usize, StageState>,
        req: &BuildRequest,
    ) -> Result<StageState> {
        let stage = &plan.stages[idx];
        let lex = Lexer::new(plan.escape);
        self.stage_no_cache = req.no_cache_filter.iter().any(|f| {
            stage.name.as_deref() == Some(f.to_ascii_lowercase().as_str()) || *f == idx.to_string()
        });
        let mut st = match &stage.base {
            Base::Scratch => {
                let p = Platform::host();
                let mut run = Map::new();
                run.insert("WorkingDir".into(), json!("/"));
                run.insert(
                    "Env".into(),
                    json!([format!(
                        "PATH={}",
                        berth_image::runtime_config::DEFAULT_PATH
                    )]),
                );
                StageState {
                    config: json!({
                        "architecture": p.architecture, "os": p.os,
                        "rootfs": {"type": "layers", "diff_ids": []},
                        "history": [],
                    }),
                    run,
                    layers: Vec::new(),
                    chain: Vec::new(),
                    key: KeyHasher::new("scratch").finish(),
                    time: berth_image::archive::rfc3339_now(),
                    cmd_from_base: false,
                }
            }
            Base::Image(name) => {
                let rec = self
                    .images
                    .get(name)
                    .cloned()
                    .ok_or_else(|| berth_image::Error::ImageNotFound(name.clone()))?;
                self.image_state(&rec)?
            }
            Base::Stage(j) => {
                let mut s = done.get(j).cloned().ok_or_else(|| BuildError::Step {
                    line: stage.from.start_line,
                    message: format!("stage {j} was not built"),
                })?;
                s.cmd_from_base = s.get("Cmd").is_some();
                s
            }
        };
        if let Some(p) = &stage.platform
            && p.parse::<Platform>()
                .map(|p| p.normalized() != Platform::host().normalized())
                .unwrap_or(true)
        {
            return Err(BuildError::Unsupported {
                line: stage.from.start_line,
                what: format!("FROM --platform={p} (only the host's platform can be built)"),
            });
        }
        // ONBUILD triggers of the base run first, then leave the image.
        let mut instructions: Vec<Instruction> = Vec::new();
        if let Some(triggers) = st.get("OnBuild").and_then(Value::as_array).cloned() {
            for t in triggers.iter().filter_map(Value::as_str) {
                let df = crate::parser::parse(t).map_err(|e| BuildError::Step {
                    line: stage.from.start_line,
                    message: format!("ONBUILD trigger {t:?}: {e}"),
                })?;
                instructions.extend(df.instructions.into_iter().map(|mut i| {
                    i.start_line = stage.from.start_line;
                    i.end_line = stage.from.start_line;
                    i
                }));
            }
            st.run_config().remove("OnBuild");
        }
        instructions.extend(stage.instructions.iter().cloned());
        // The steps BuildKit numbers: FROM, and what makes a layer (WORKDIR other than `/`).
        let is_step = |c: &Command| match c {
            Command::Run(_) | Command::Copy(_) | Command::Add(_) => true,
            Command::Workdir(w) => !w.trim_end_matches('/').is_empty(),
            _ => false,
        };
        let steps = 1 + instructions.iter().filter(|i| is_step(&i.command)).count();
        let label = |k: usize, text: &str| {
            if plan.stages.len() > 1 {
                let name = stage.name.clone().unwrap_or_else(|| format!("stage-{idx}"));
                format!("[{name} {k}/{steps}] {text}")
            } else {
                format!("[{k}/{steps}] {text}")
            }
        };
        let from_text = match &stage.base {
            Base::Image(n) => self
                .images
                .get(n)
                .and_then(|r| r.repo_tags.first().cloned())
                .unwrap_or_else(|| n.clone()),
            Base::Scratch => "scratch".into(),
            Base::Stage(j) => plan.stages[*j].display_name(),
        };
        let v = self.start(&label(1, &format!("FROM {from_text}")));
        self.done(v);
        let env = st.env();
        let mut scope = ArgScope::for_plan(plan, &req.options, &env);
        let mut k = 1;
        for ins in &instructions {
            if self.runner.interrupted() {
                return Err(BuildError::Interrupted);
            }
            if is_step(&ins.command) {
                k += 1;
            }
            let name = label(
                k,
                &format!("{} {}", ins.command.name(), instruction_text(ins)),
            );
            self.instruction(&mut st, ins, &mut scope, &lex, &name, plan, done, req)?;
        }
        Ok(st)
    }

    fn image_state(&mut self, rec: &ImageRecord) -> Result<StageState> {
        let config = berth_image::archive::config_json(self.store, rec)?;
        let bytes = self
            .store
            .content()
            .read_blob(&rec.manifest, berth_image::image::MANIFEST_LIMIT)?;
        let berth_image::Document::Manifest(m) =
            berth_image::manifest::parse_document(&bytes, None)?
        else {
            return Err(berth_image::Error::InvalidDocument {
                what: format!("image {}", rec.id),
                reason: "its manifest is an index".into(),
            }
            .into());
        };
        let layers = m
            .layers
            .iter()
            .map(|l| {
                let d = &l.descriptor;
                let media = match d.media_type.as_str() {
                    mt::DOCKER_LAYER => mt::OCI_LAYER,
                    mt::DOCKER_LAYER_GZIP => mt::OCI_LAYER_GZIP,
                    mt::DOCKER_LAYER_ZSTD => mt::OCI_LAYER_ZSTD,
                    other => other,
                };
                json!({"mediaType": media, "digest": d.digest.to_string(), "size": d.size})
            })
            .collect();
        let time = config["created"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(berth_image::archive::rfc3339_now);
        let mut key = KeyHasher::new("image");
        key.str(&rec.id.to_string());
        // The store checked the config when it took the image (an object, rootfs.diff_ids
        // a list); what else a hostile one may hold is normalised here.
        let mut config = config;
        let Some(top) = config.as_object_mut() else {
            return Err(berth_image::Error::InvalidDocument {
                what: format!("the config of image {}", rec.id),
                reason: "not an object".into(),
            }
            .into());
        };
        let run = match top.remove("config") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        if !top.get("history").is_some_and(Value::is_array) {
            top.insert("history".into(), json!([]));
        }
        if !top.get("rootfs").is_some_and(|r| r["diff_ids"].is_array()) {
            return Err(berth_image::Error::InvalidDocument {
                what: format!("the config of image {}", rec.id),
                reason: "no rootfs.diff_ids list".into(),
            }
            .into());
        }
        let mut st = StageState {
            config,
            run,
            layers,
            chain: rec.chain_ids.clone(),
            key: key.finish(),
            time,
            cmd_from_base: false,
        };
        st.cmd_from_base = st.get("Cmd").is_some();
        // BuildKit gives every stage a PATH.
        if !st.env().iter().any(|(k, _)| k == "PATH") {
            let mut env: Vec<Value> = st
                .get("Env")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            env.insert(
                0,
                json!(format!(
                    "PATH={}",
                    berth_image::runtime_config::DEFAULT_PATH
                )),
            );
            st.run_config().insert("Env".into(), Value::Array(env));
        }
        Ok(st)
    }

    #[allow(clippy::too_many_arguments)]
    fn instruction(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        scope: &mut ArgScope<'_>,
        lex: &Lexer,
        name: &str,
        plan: &Plan,
        done: &HashMap<usize, StageState>,
        req: &BuildRequest,
    ) -> Result<()> {
        let line = ins.start_line;
        // Expanded in the scope before this instruction; ARG/ENV then join the scope.
        let cmd = scope.process(ins, lex)?;
        let mut key = KeyHasher::new("step");
        key.str(&st.key.to_string())
            .str(&serde_json::to_string(&cmd).unwrap_or_default());
        match &cmd {
            Command::Run(run) => {
                self.run_step(st, run, key, scope, name, line, plan, done, req)?;
                return Ok(());
            }
            Command::Copy(c) | Command::Add(c) => {
                let is_add = matches!(cmd, Command::Add(_));
                // Heredoc bodies with an unquoted delimiter see the variables (quotes and
                // escapes in them stay as written, BuildKit's raw mode).
                let mut c = c.clone();
                let vars = scope.vars();
                for s in &mut c.sources {
                    if let CopySource::Heredoc(h) = s
                        && h.expand
                    {
                        h.content = expand_raw(lex, &h.content, &vars)
                            .map_err(|source| StageError::Substitution { line, source })?;
                    }
                }
                self.copy_step(st, &c, is_add, key, name, line, plan, done)?;
                return Ok(());
            }
            _ => {}
        }
        let created_by = match &cmd {
            Command::Env(kvs) => {
                for kv in kvs {
                    config_set_env(st.run_config(), &kv.key, &kv.value);
                }
                format!("ENV {}", kv_text(kvs))
            }
            Command::Label(kvs) => {
                for kv in kvs {
                    config_map_insert(st.run_config(), "Labels", &kv.key, json!(kv.value));
                }
                format!("LABEL {}", kv_text(kvs))
            }
            Command::Expose(ports) => {
                // Go prints a map with its keys sorted.
                let mut shown = std::collections::BTreeSet::new();
                for p in ports.iter().flat_map(|p| expose_ports(p)) {
                    shown.insert(format!("{p}:{{}}"));
                    config_map_insert(st.run_config(), "ExposedPorts", &p, json!({}));
                }
                format!(
                    "EXPOSE map[{}]",
                    shown.into_iter().collect::<Vec<_>>().join(" ")
                )
            }
            Command::Workdir(w) => {
                let wd = if w.starts_with('/') {
                    w.clone()
                } else {
                    format!("{}/{w}", st.workdir().trim_end_matches('/'))
                };
                let wd = format!("/{}", files::clean_source(&wd));
                st.run_config().insert("WorkingDir".into(), json!(wd));
                if wd != "/" {
                    // BuildKit makes the directory in a step of its own (a layer, even when
                    // the directory exists), owned by the USER at that point.
                    return self.workdir_step(st, &wd, key, name, ins.start_line);
                }
                format!("WORKDIR {wd}")
            }
            Command::User(u) => {
                st.run_config().insert("User".into(), json!(u));
                format!("USER {u}")
            }
            Command::Cmd(c) => {
                let v = command_vec(c, &st.shell());
                // `CMD []` leaves none (BuildKit's nil slice), as does `ENTRYPOINT []`.
                let value = if v.is_empty() { Value::Null } else { json!(v) };
                st.run_config().insert("Cmd".into(), value);
                // BuildKit v0.8 marks every CMD/ENTRYPOINT so (docker 20.10 images have it).
                st.run_config().insert("ArgsEscaped".into(), json!(true));
                st.cmd_from_base = false;
                format!("CMD {}", history::go_quote_list(&v))
            }
            Command::Entrypoint(c) => {
                let v = command_vec(c, &st.shell());
                let value = if v.is_empty() { Value::Null } else { json!(v) };
                st.run_config().insert("Entrypoint".into(), value);
                if st.cmd_from_base {
                    st.run_config().insert("Cmd".into(), Value::Null);
                    st.cmd_from_base = false;
                }
                st.run_config().insert("ArgsEscaped".into(), json!(true));
                format!("ENTRYPOINT {}", history::go_quote_list(&v))
            }
            Command::Volume(vols) => {
                for v in vols {
                    config_map_insert(st.run_config(), "Volumes", v, json!({}));
                }
                format!("VOLUME [{}]", vols.join(" "))
            }
            Command::Stopsignal(s) => {
                st.run_config().insert("StopSignal".into(), json!(s));
                format!("STOPSIGNAL {s}")
            }
            Command::Healthcheck(h) => {
                let mut v = json!({"Test": h.test()});
                let mut shown = [0u64; 4];
                if let Healthcheck::Check {
                    interval,
                    timeout,
                    start_period,
                    start_interval,
                    retries,
                    ..
                } = h
                {
                    for (k, n) in [
                        ("Interval", interval),
                        ("Timeout", timeout),
                        ("StartPeriod", start_period),
                        ("StartInterval", start_interval),
                        ("Retries", retries),
                    ] {
                        if *n != 0 {
                            v[k] = json!(n);
                        }
                    }
                    shown = [*interval, *timeout, *start_period, *retries];
                }
                st.run_config().insert("Healthcheck".into(), v);
                history::healthcheck(&h.test(), shown[0], shown[1], shown[2], shown[3])
            }
            Command::Shell(s) => {
                st.run_config().insert("Shell".into(), json!(s));
                format!("SHELL {}", history::go_list(s))
            }
            Command::Onbuild { expression, .. } => {
                let mut list = st
                    .get("OnBuild")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                list.push(json!(expression));
                st.run_config().insert("OnBuild".into(), json!(list));
                // BuildKit records no history for ONBUILD.
                st.key = key.finish();
                return Ok(());
            }
            Command::Maintainer(m) => {
                st.config["author"] = json!(m);
                format!("MAINTAINER {m}")
            }
            Command::Arg(decls) => {
                let parts: Vec<String> = decls
                    .iter()
                    .map(|d| match &d.default {
                        Some(v) => format!("{}={v}", d.name),
                        None => d.name.clone(),
                    })
                    .collect();
                format!("ARG {}", parts.join(" "))
            }
            Command::From { .. } | Command::Run(_) | Command::Copy(_) | Command::Add(_) => {
                return Ok(());
            }
        };
        st.key = key.finish();
        st.history(created_by, true);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn run_step(
        &mut self,
        st: &mut StageState,
        run: &Run,
        mut key: KeyHasher,
        scope: &ArgScope<'_>,
        name: &str,
        line: usize,
        plan: &Plan,
        done: &HashMap<usize, StageState>,
        req: &BuildRequest,
    ) -> Result<()> {
        let shell = st.shell();
        let (args, shown) = match &run.command {
            CommandLine::Shell(s) => {
                let script = with_heredocs(s, &run.heredocs);
                let mut a = shell.clone();
                a.push(script.clone());
                (a, format!("{} {script}", shell.join(" ")))
            }
            CommandLine::Exec(v) => (v.clone(), v.join(" ")),
        };
        let hist_args = scope.history_args();
        let created_by = if hist_args.is_empty() {
            format!("RUN {shown} # buildkit")
        } else {
            let kv: Vec<String> = hist_args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("RUN |{} {} {shown} # buildkit", kv.len(), kv.join(" "))
        };
        let env: Vec<String> = scope
            .run_env()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let network = run.network.unwrap_or(req.network);
        let user = st
            .get("User")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let cwd = st.workdir();
        key.str(&env.join("\0"))
            .str(&req.add_hosts.join("\0"))
            .str(&req.ulimits.join("\0"))
            .str(&format!("{:?}", req.shm_size))
            .str(&user)
            .str(&cwd)
            .str(&format!("{network:?}"))
            .str(&created_by);
        let key = key.finish();
        let v = self.start(name);
        if self.cached(st, &key, &created_by, v)? {
            return Ok(());
        }
        let fsys = self.mount(&st.chain)?;
        let rootfs = fsys.path();
        // The working directory exists when the command starts.
        self.ensure_dir(&rootfs, &cwd, line)?;
        let mut extra: Vec<StepFs> = Vec::new();
        let mut mounts = Vec::new();
        let mut secret_env = Vec::new();
        // SSH agents (`--ssh ID=SOCKET`): the socket at /run/buildkit/ssh_agent.N (or
        // target=), SSH_AUTH_SOCK naming the first; a missing one skips unless required.
        for (n, m) in run
            .mounts
            .iter()
            .filter(|m| m.kind == MountType::Ssh)
            .enumerate()
        {
            let id = m.id.clone().unwrap_or_else(|| "default".into());
            let Some(sock) = self.ssh.get(&id).cloned() else {
                if m.required {
                    return Err(BuildError::Step {
                        line,
                        message: format!(
                            "no SSH key {id:?} forwarded from the client (--ssh {id}=SOCKET)"
                        ),
                    });
                }
                continue;
            };
            let target = m
                .target
                .clone()
                .unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{n}"));
            if !secret_env
                .iter()
                .any(|e: &String| e.starts_with("SSH_AUTH_SOCK="))
            {
                secret_env.push(format!("SSH_AUTH_SOCK={target}"));
            }
            mounts.push(RunMount::Bind {
                source: sock,
                target,
                readonly: false,
            });
        }
        for m in run.mounts.iter().filter(|m| m.kind == MountType::Secret) {
            let id = m.secret_id().unwrap_or_default();
            let Some(value) = self.secrets.get(&id).cloned() else {
                if m.required {
                    return Err(BuildError::Step {
                        line,
                        message: format!("secret {id} not found"),
                    });
                }
                continue;
            };
            if let Some(var) = &m.env {
                secret_env.push(format!("{var}={}", String::from_utf8_lossy(&value)));
            }
            if let Some(target) = m.secret_target() {
                // A file only this step's container reads, outside the image (its mount
                // point is a stub, removed from the layer).
                let (_, dir) = self.step_dir();
                let guard = StepFs {
                    rootfs: None,
                    dir: dir.clone(),
                };
                std::os::unix::fs::DirBuilderExt::mode(
                    fs::DirBuilder::new().recursive(true),
                    0o700,
                )
                .create(&dir)
                .map_err(io_at(&dir))?;
                let file = dir.join("secret");
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    let mut f = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(m.mode.unwrap_or(0o400))
                        .open(&file)
                        .map_err(io_at(&file))?;
                    f.write_all(&value).map_err(io_at(&file))?;
                }
                let target = if target.starts_with('/') {
                    target
                } else {
                    format!("{}/{target}", cwd.trim_end_matches('/'))
                };
                mounts.push(RunMount::Bind {
                    source: file,
                    target,
                    readonly: true,
                });
                extra.push(guard);
            }
        }
        for m in run
            .mounts
            .iter()
            .filter(|m| !matches!(m.kind, MountType::Secret | MountType::Ssh))
        {
            let target = match &m.target {
                Some(t) if t.starts_with('/') => t.clone(),
                Some(t) => format!("{}/{t}", cwd.trim_end_matches('/')),
                None => {
                    return Err(BuildError::Step {
                        line,
                        message: "mount target is required".into(),
                    });
                }
            };
            match m.kind {
                MountType::Tmpfs => mounts.push(RunMount::Tmpfs {
                    target,
                    size: m.size,
                }),
                MountType::Cache => {
                    let id = m.id.clone().unwrap_or_else(|| target.clone());
                    let dir = self
                        .store
                        .root()
                        .join("builder")
                        .join("mounts")
                        .join(Digest::sha256(id.as_bytes()).hex());
                    fs::create_dir_all(&dir).map_err(io_at(&dir))?;
                    mounts.push(RunMount::Bind {
                        source: dir,
                        target,
                        readonly: m.readonly,
                    });
                }
                MountType::Bind => {
                    let src = files::clean_source(m.source.as_deref().unwrap_or("."));
                    let source = match &m.from {
                        None => {
                            let ctx = req.context.clone().ok_or_else(|| BuildError::Step {
                                line,
                                message: "a bind mount needs a build context".into(),
                            })?;
                            ctx.join(&src)
                        }
                        Some(f) => {
                            let chain = self.chain_of(f, plan, done, line)?;
                            let sfs = self.mount(&chain)?;
                            let p = sfs.path().join(&src);
                            extra.push(sfs);
                            p
                        }
                    };
                    mounts.push(RunMount::Bind {
                        source,
                        target,
                        readonly: m.readonly,
                    });
                }
                MountType::Secret | MountType::Ssh => {}
            }
        }
        // Mount points the runtime may create in the image (BuildKit removes the files).
        let mut stubs: Vec<String> = [
            "/proc",
            "/sys",
            "/dev",
            "/etc/hosts",
            "/etc/hostname",
            "/etc/resolv.conf",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(mounts.iter().map(|m| m.target().to_string()))
        .collect();
        stubs.retain(|p| matches!(berth_image::copy::stat_in_root(&rootfs, p, false), Ok(None)));
        let mut env = env;
        env.extend(secret_env);
        let spec = RunSpec {
            args: args.clone(),
            env,
            cwd,
            user,
            network,
            mounts,
            add_hosts: req.add_hosts.clone(),
            ulimits: req.ulimits.clone(),
            shm_size: req.shm_size,
        };
        let (id, cdir) = self.step_dir();
        fs::create_dir_all(&cdir).map_err(io_at(&cdir))?;
        let vid = v.0;
        let progress = &mut *self.progress;
        let mut out = |data: &[u8]| progress.event(Event::Output { id: vid, data });
        let r = self.runner.run(&id, &rootfs, &cdir, &spec, &mut out);
        let _ = fs::remove_dir_all(&cdir);
        drop(extra);
        let code = match r {
            Ok(c) => c,
            Err(RunnerError::Interrupted) => return Err(BuildError::Interrupted),
            Err(RunnerError::Failed(message)) => {
                let message = format!("{name}: {message}");
                self.fail(v, &message);
                return Err(BuildError::Step { line, message });
            }
        };
        if code != 0 {
            let command = match &run.command {
                CommandLine::Shell(_) => shown,
                CommandLine::Exec(v) => json!(v).to_string(),
            };
            let e = BuildError::RunFailed {
                line,
                command,
                code,
            };
            self.fail(v, &e.to_string());
            return Err(e);
        }
        self.finish_step(st, fsys, &stubs, key, created_by, v, line)
    }

    /// The end of a step that ran: its changes (less the mount-point `stubs`) become the
    /// stage's next layer, recorded in the cache under `key`.
    #[allow(clippy::too_many_arguments)]
    fn finish_step(
        &mut self,
        st: &mut StageState,
        fsys: StepFs,
        stubs: &[String],
        key: Digest,
        created_by: String,
        v: (usize, Instant),
        line: usize,
    ) -> Result<()> {
        if let Some(r) = &fsys.rootfs {
            r.unmount()?;
        }
        let (changes, kind) = fsys
            .changes(st.chain.len())
            .map_err(|e| with_line(e, line))?;
        if kind == TreeKind::OverlayUpper {
            remove_stubs(&changes, stubs);
        }
        let entry = self.commit_changes(st, &changes, kind)?;
        drop(fsys);
        let _ = self.cache.put(&key, &entry);
        st.key = key;
        st.history(created_by, entry.empty);
        self.done(v);
        self.leave_replay(st, v);
        Ok(())
    }

    /// A step found in the cache (unless `--no-cache`): its layer on the stage; false on a
    /// miss.
    fn cached(
        &mut self,
        st: &mut StageState,
        key: &Digest,
        created_by: &str,
        v: (usize, Instant),
    ) -> Result<bool> {
        if (self.no_cache || self.stage_no_cache) && !self.helped {
            return Ok(false);
        }
        let Some(e) = self.cache.get(self.store, key) else {
            return Ok(false);
        };
        self.apply_cached(st, &e)?;
        st.key = key.clone();
        st.history(created_by.to_string(), e.empty);
        // A step a helper ran in this build shows as run, with its output.
        let replay = self.replay.join(key.hex());
        match fs::read(&replay).ok().filter(|_| self.helped) {
            Some(data) => {
                let (secs, out) = match data.iter().position(|b| *b == b'\n') {
                    Some(i) => (
                        std::str::from_utf8(&data[..i])
                            .ok()
                            .and_then(|t| t.parse().ok())
                            .unwrap_or(0.0),
                        &data[i + 1..],
                    ),
                    None => (0.0, &data[..]),
                };
                if !out.is_empty() {
                    self.progress.event(Event::Output { id: v.0, data: out });
                }
                self.progress.event(Event::Done { id: v.0, secs });
                let _ = fs::remove_file(&replay);
            }
            None => self.progress.event(Event::Cached { id: v.0 }),
        }
        Ok(true)
    }

    /// In a helper: what step `v` printed and its time, left for the parent under the key.
    fn leave_replay(&mut self, st: &StageState, v: (usize, Instant)) {
        let Some(rec) = &self.recorded else {
            return;
        };
        let (out, secs) = rec.borrow_mut().take(v.0);
        if fs::create_dir_all(&self.replay).is_err() {
            return;
        }
        let path = self.replay.join(st.key.hex());
        let tmp = self.replay.join(format!(".{}.tmp", st.key.hex()));
        let mut data = format!("{secs}\n").into_bytes();
        data.extend_from_slice(&out);
        if fs::write(&tmp, data).is_ok() {
            let _ = fs::rename(&tmp, &path);
        }
    }

    fn fail(&mut self, v: (usize, Instant), message: &str) {
        self.progress.event(Event::Failed {
            id: v.0,
            secs: v.1.elapsed().as_secs_f64(),
            message,
        });
    }

    /// `WORKDIR dir` (not `/`): `mkdir -p` as the stage's user, as a layer of its own.
    fn workdir_step(
        &mut self,
        st: &mut StageState,
        wd: &str,
        mut key: KeyHasher,
        name: &str,
        line: usize,
    ) -> Result<()> {
        let user = st
            .get("User")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        key.str(&user);
        let key = key.finish();
        let created_by = format!("WORKDIR {wd}");
        let v = self.start(name);
        if self.cached(st, &key, &created_by, v)? {
            return Ok(());
        }
        let fsys = self.mount(&st.chain)?;
        let rootfs = fsys.path();
        let owner = if user.is_empty() {
            None
        } else {
            Some(
                files::parse_chown(&user, Some(&rootfs)).map_err(|source| BuildError::Files {
                    line,
                    instruction: "WORKDIR",
                    source,
                })?,
            )
        };
        self.ensure_dir_owned(&rootfs, wd, owner, line)?;
        self.finish_step(st, fsys, &[], key, created_by, v, line)
    }

    /// `mkdir -p dir` inside `rootfs` (missing parts 0755, root).
    fn ensure_dir(&mut self, rootfs: &Path, dir: &str, line: usize) -> Result<()> {
        self.ensure_dir_owned(rootfs, dir, None, line)
    }

    /// `mkdir -p dir` inside `rootfs`, the missing parts 0755 and owned by `owner` (else root).
    fn ensure_dir_owned(
        &mut self,
        rootfs: &Path,
        dir: &str,
        owner: Option<(u32, u32)>,
        line: usize,
    ) -> Result<()> {
        let p = files::place(
            rootfs,
            &format!("{}/", dir.trim_end_matches('/')),
            &[],
            owner,
            Vec::new(),
        )
        .map_err(|source| BuildError::Files {
            line,
            instruction: "WORKDIR",
            source,
        })?;
        if !p.empty {
            berth_image::copy::extract_to(rootfs, &p.under, p.tar.as_slice(), true)?;
        }
        Ok(())
    }

    /// The changes of a step as a layer on the stage (none when nothing changed); the cache
    /// entry that records it.
    fn commit_changes(
        &mut self,
        st: &mut StageState,
        changes: &Path,
        kind: TreeKind,
    ) -> Result<cache::Entry> {
        let now = berth_image::archive::rfc3339_now();
        st.time = now.clone();
        // A step that changed nothing still makes a (empty) layer, as BuildKit's RUN, COPY,
        // ADD and WORKDIR do: `empty_layer` is for the metadata instructions only.
        let layer = berth_image::create_layer(
            self.store,
            changes,
            kind,
            st.chain.last(),
            &ApplyOptions::default(),
        )?;
        st.push_layer(&layer.digest, layer.size, &layer.diff_id);
        Ok(cache::Entry {
            empty: false,
            digest: Some(layer.digest),
            size: layer.size,
            diff_id: Some(layer.diff_id),
            created: now,
        })
    }

    /// A cached step's layer on the stage (its snapshot made again from the blob if the GC
    /// took it).
    fn apply_cached(&mut self, st: &mut StageState, e: &cache::Entry) -> Result<()> {
        st.time = e.created.clone();
        if e.empty {
            return Ok(());
        }
        let (Some(digest), Some(diff_id)) = (&e.digest, &e.diff_id) else {
            return Ok(());
        };
        let chain = berth_image::chain_id(st.chain.last(), diff_id);
        if !self.store.snapshots().exists(&chain) {
            let blob = self.store.content().open_blob(digest)?;
            let (_, rd) = berth_image::layer::decompress(blob)?;
            self.store
                .snapshots()
                .apply(st.chain.last(), rd, diff_id, &ApplyOptions::default())?;
        }
        st.push_layer(digest, e.size, diff_id);
        Ok(())
    }

    /// The snapshots of `--from=NAME`: a stage (name or index) or an image.
    fn chain_of(
        &mut self,
        from: &str,
        plan: &Plan,
        done: &HashMap<usize, StageState>,
        line: usize,
    ) -> Result<Vec<Digest>> {
        let lower = from.to_ascii_lowercase();
        let idx = if !from.is_empty() && from.bytes().all(|b| b.is_ascii_digit()) {
            from.parse::<usize>().ok()
        } else {
            plan.stages
                .iter()
                .position(|s| s.name.as_deref() == Some(lower.as_str()))
        };
        if let Some(i) = idx {
            return done
                .get(&i)
                .map(|s| s.chain.clone())
                .ok_or_else(|| BuildError::Step {
                    line,
                    message: format!("stage {from} is not built before it is used"),
                });
        }
        let rec = match self.images.get(from) {
            Some(r) => r.clone(),
            None => self.store.get(from)?,
        };
        Ok(rec.chain_ids.clone())
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_step(
        &mut self,
        st: &mut StageState,
        c: &CopyArgs,
        is_add: bool,
        mut key: KeyHasher,
        name: &str,
        line: usize,
        plan: &Plan,
        done: &HashMap<usize, StageState>,
    ) -> Result<()> {
        let instruction = if is_add { "ADD" } else { "COPY" };
        let ferr = |source| BuildError::Files {
            line,
            instruction,
            source,
        };
        let exclude = crate::dockerignore::Matcher::from_patterns(&c.exclude).map_err(|e| {
            BuildError::Step {
                line,
                message: format!("{instruction} --exclude: {e}"),
            }
        })?;
        let is_url = |p: &str| p.starts_with("http://") || p.starts_with("https://");
        let git = c.sources.iter().find_map(|s| match s {
            CopySource::Path(p) if is_git_source(p) => Some(p.as_str()),
            _ => None,
        });
        if let Some(g) = git.or(c.keep_git_dir.then_some("--keep-git-dir")) {
            return Err(BuildError::Unsupported {
                line,
                what: format!(
                    "{instruction} from a git repository ({g}: berth has no git client; clone it \
                     into the build context and COPY it)"
                ),
            });
        }
        let urls: Vec<&str> = c
            .sources
            .iter()
            .filter_map(|s| match s {
                CopySource::Path(p) if is_url(p) => Some(p.as_str()),
                _ => None,
            })
            .collect();
        if !urls.is_empty() && (!is_add || c.from.is_some()) {
            return Err(BuildError::Step {
                line,
                message: "source can't be a URL for COPY".into(),
            });
        }
        if c.checksum.is_some() && (urls.len() != 1 || c.sources.len() != 1) {
            return Err(BuildError::Step {
                line,
                message: "ADD --checksum needs one URL source".into(),
            });
        }
        if c.from.is_none()
            && c.sources
                .iter()
                .any(|s| matches!(s, CopySource::Path(p) if !is_url(p)))
        {
            self.context_entries(line)?;
        }
        // --parents: a source keeps its path (below the pattern's `/./`, if any).
        let parents = |s: files::Source, pattern: &str| match (c.parents, pattern.split_once("/./"))
        {
            (false, _) => s,
            (true, Some((pivot, _))) => files::with_parents(s, pivot),
            (true, None) => files::with_parents(s, ""),
        };
        let v = self.start(name);
        let mode = c
            .chmod
            .as_deref()
            .map(files::parse_chmod)
            .transpose()
            .map_err(ferr)?;
        // Owners by number are known now; names are looked up in the stage's files below
        // (the text of --chown is in the key either way).
        let numeric_owner = match &c.chown {
            Some(s) => files::parse_chown(s, None).ok(),
            None => None,
        };
        let ov = Overrides {
            owner: numeric_owner,
            mode,
        };
        let dest = if c.dest.starts_with('/') {
            c.dest.clone()
        } else {
            let wd = st.workdir();
            let d = format!("{}/{}", wd.trim_end_matches('/'), c.dest);
            if c.dest.ends_with('/') || c.dest == "." {
                format!("{}/", d.trim_end_matches('/'))
            } else {
                d
            }
        };
        // The sources, and the archives ADD unpacks.
        let mut downloads: Vec<StepFs> = Vec::new();
        let mut from_fs: Option<StepFs> = None;
        let mut sources = Vec::new();
        let mut archives: Vec<PathBuf> = Vec::new();
        match &c.from {
            Some(f) => {
                let chain = self.chain_of(f, plan, done, line)?;
                let sfs = self.mount(&chain)?;
                for s in &c.sources {
                    match s {
                        CopySource::Path(p) => sources.extend(
                            files::rootfs_sources(&sfs.path(), p, &ov)
                                .map_err(ferr)?
                                .into_iter()
                                .map(|s| parents(s, p)),
                        ),
                        CopySource::Heredoc(h) => {
                            sources.push(files::heredoc_source(&h.name, &h.content, &ov))
                        }
                    }
                }
                from_fs = Some(sfs);
            }
            None => {
                let paths: Vec<String> = c
                    .sources
                    .iter()
                    .filter_map(|s| match s {
                        CopySource::Path(p) if !is_url(p) => Some(p.clone()),
                        _ => None,
                    })
                    .collect();
                for url in &urls {
                    let (dir, src) = self.download(url, c.checksum.as_deref(), &ov, line)?;
                    downloads.push(dir);
                    sources.push(src);
                }
                if !paths.is_empty() {
                    let ctx = self.context_entries(line)?;
                    let (root, entries) = ctx;
                    let mut found = Vec::new();
                    for p in &paths {
                        found.extend(
                            files::context_sources(&root, &entries, std::slice::from_ref(p), &ov)
                                .map_err(ferr)?
                                .into_iter()
                                .map(|s| parents(s, p)),
                        );
                    }
                    for s in found {
                        let archive = is_add
                            && c.unpack != Some(false)
                            && !s.is_dir
                            && matches!(s.items.first().map(|i| &i.kind),
                                Some(files::Kind::File(files::Content::File(p))) if files::is_archive(p));
                        if archive
                            && let Some(files::Kind::File(files::Content::File(p))) =
                                s.items.first().map(|i| &i.kind)
                        {
                            archives.push(p.clone());
                        }
                        sources.push(s);
                    }
                }
                for s in &c.sources {
                    if let CopySource::Heredoc(h) = s {
                        sources.push(files::heredoc_source(&h.name, &h.content, &ov));
                    }
                }
            }
        }
        if !c.exclude.is_empty() {
            files::exclude(&mut sources, &exclude);
        }
        let digest = files::digest(&dest, &sources).map_err(ferr)?;
        key.str(&dest).str(&digest.to_string());
        for a in &archives {
            key.str("unpack").str(&a.to_string_lossy());
        }
        let key = key.finish();
        // BuildKit v0.8: the instruction, its sources and destination after substitution, no
        // flags (`COPY --from=build /a /b` reads `COPY /a /b`).
        let mut created_by = instruction.to_string();
        for src in &c.sources {
            created_by.push(' ');
            match src {
                CopySource::Path(p) => created_by.push_str(p),
                CopySource::Heredoc(h) => {
                    created_by.push_str("<<");
                    created_by.push_str(&h.name);
                }
            }
        }
        created_by.push(' ');
        created_by.push_str(&c.dest);
        created_by.push_str(" # buildkit");
        // --link changes how BuildKit stores the layer, not its content: the same here.
        if self.cached(st, &key, &created_by, v)? {
            return Ok(());
        }
        let fsys = self.mount(&st.chain)?;
        let rootfs = fsys.path();
        if c.chown.is_some() && numeric_owner.is_none() {
            let owner = files::parse_chown(c.chown.as_deref().unwrap_or(""), Some(&rootfs))
                .map_err(ferr)?;
            for s in &mut sources {
                for it in &mut s.items {
                    it.uid = owner.0;
                    it.gid = owner.1;
                }
            }
        }
        let owner = sources
            .first()
            .and_then(|s| s.items.first())
            .filter(|_| c.chown.is_some())
            .map(|i| (i.uid, i.gid));
        let (plain, unpacked): (Vec<_>, Vec<_>) = sources.into_iter().partition(|s| {
            !matches!(s.items.first().map(|i| &i.kind),
                Some(files::Kind::File(files::Content::File(p))) if archives.contains(p))
        });
        if !plain.is_empty() {
            let dest_for = if !unpacked.is_empty() {
                format!("{}/", dest.trim_end_matches('/'))
            } else {
                dest.clone()
            };
            // The tar beside the step's filesystem (removed with it), not in memory.
            let path = fsys.dir.join("copy.tar");
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(io_at(&path))?;
            let p = files::place(&rootfs, &dest_for, &plain, owner, file).map_err(ferr)?;
            let mut file = p.tar;
            std::io::Seek::rewind(&mut file).map_err(io_at(&path))?;
            berth_image::copy::extract_to(&rootfs, &p.under, file, true)?;
            let _ = fs::remove_file(&path);
        }
        for s in &unpacked {
            let Some(files::Kind::File(files::Content::File(path))) =
                s.items.first().map(|i| &i.kind)
            else {
                continue;
            };
            let dir = format!("{}/", dest.trim_end_matches('/'));
            self.ensure_dir_owned(&rootfs, &dir, owner, line)?;
            let scratch = fsys.dir.join("unpacked.tar");
            let rd = files::archive_reader(path, &scratch).map_err(ferr)?;
            berth_image::copy::extract_to(&rootfs, &dir, rd, true)?;
            let _ = fs::remove_file(&scratch);
        }
        drop(from_fs);
        self.finish_step(st, fsys, &[], key, created_by, v, line)
    }

    /// `ADD URL`: the body in a file of its own step directory (removed with the returned
    /// guard), checked against `--checksum`; a source named after the URL's last path
    /// segment, mode 0600 as docker gives it.
    fn download(
        &mut self,
        url: &str,
        checksum: Option<&str>,
        ov: &Overrides,
        line: usize,
    ) -> Result<(StepFs, files::Source)> {
        let (_, dir) = self.step_dir();
        let guard = StepFs {
            rootfs: None,
            dir: dir.clone(),
        };
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let path = dir.join("download");
        let mut f = fs::File::create(&path).map_err(io_at(&path))?;
        let got = berth_registry::fetch(url, &mut f, 64 << 30).map_err(|e| BuildError::Step {
            line,
            message: format!("ADD {url}: {e}"),
        })?;
        if let Some(want) = checksum
            && want != got.digest.to_string()
        {
            return Err(BuildError::Step {
                line,
                message: format!(
                    "ADD {url}: digest mismatch: --checksum says {want}, the download is {}",
                    got.digest
                ),
            });
        }
        let name = url
            .split(['?', '#'])
            .next()
            .and_then(|u| u.rsplit('/').next())
            .filter(|n| !n.is_empty() && !n.contains(':'))
            .unwrap_or("download")
            .to_string();
        let mut item = files::Item {
            name: String::new(),
            kind: files::Kind::File(files::Content::File(path)),
            mode: 0o600,
            uid: 0,
            gid: 0,
            mtime: 0,
        };
        ov.apply(&mut item);
        Ok((
            guard,
            files::Source {
                base: name.clone(),
                path: name,
                is_dir: false,
                items: vec![item],
            },
        ))
    }

    /// The context's root and its included entries (walked once).
    fn context_entries(&mut self, line: usize) -> Result<(PathBuf, Vec<Entry>)> {
        let Some(root) = self.context.clone() else {
            return Err(BuildError::Step {
                line,
                message: "COPY from the context, but the build has no context".into(),
            });
        };
        if self.entries.is_none() {
            let v = self.start("[internal] load build context");
            let entries =
                crate::dockerignore::walk(&root, &self.ignore).map_err(|e| BuildError::Step {
                    line,
                    message: e.to_string(),
                })?;
            self.progress.event(Event::Log {
                id: v.0,
                line: &format!("transferring context: {} entries done", entries.len()),
            });
            self.done(v);
            self.entries = Some(entries);
        }
        Ok((root, self.entries.clone().unwrap_or_default()))
    }

    fn export(&mut self, st: &mut StageState, req: BuildRequest) -> Result<Built> {
        let v = self.start("exporting to image");
        for (k, val) in &req.labels {
            config_map_insert(st.run_config(), "Labels", k, json!(val));
        }
        st.config["created"] = json!(st.time);
        st.config["config"] = Value::Object(st.run.clone());
        let p = Platform::host();
        st.config["architecture"] = json!(p.architecture);
        st.config["os"] = json!(p.os);
        let cb = serde_json::to_vec(&st.config).map_err(|e| BuildError::Step {
            line: 0,
            message: format!("the image config: {e}"),
        })?;
        let mut oci_out = None;
        match req.export {
            Export::Image => {}
            Export::Oci(w) => oci_out = Some(w),
            Export::Local(dest) => {
                let fsys = self.mount(&st.chain)?;
                // Through a file beside the filesystem, not memory.
                let path = fsys.dir.join("export.tar");
                let mut file = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(io_at(&path))?;
                berth_image::copy::archive_path(&fsys.path(), "/.", false, None, &mut file)?;
                std::io::Seek::rewind(&mut file).map_err(io_at(&path))?;
                fs::create_dir_all(&dest).map_err(io_at(&dest))?;
                let mut a = tar::Archive::new(file);
                a.set_preserve_permissions(true);
                a.set_preserve_mtime(true);
                a.unpack(&dest).map_err(io_at(&dest))?;
                drop(fsys);
                self.done(v);
                return Ok(Built {
                    id: Digest::sha256(&cb),
                    image: None,
                });
            }
            Export::Tar(mut w) => {
                let fsys = self.mount(&st.chain)?;
                berth_image::copy::archive_path(&fsys.path(), "/.", false, None, &mut w)?;
                w.flush().map_err(io_at(Path::new("-")))?;
                drop(fsys);
                self.done(v);
                return Ok(Built {
                    id: Digest::sha256(&cb),
                    image: None,
                });
            }
        }
        let content = self.store.content();
        let config = content.write_blob_bytes(&cb, None)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": mt::OCI_MANIFEST,
            "config": {"mediaType": mt::OCI_CONFIG, "digest": config.digest.to_string(), "size": config.size},
            "layers": st.layers,
        });
        let mb = serde_json::to_vec(&manifest).map_err(|e| BuildError::Step {
            line: 0,
            message: format!("the image manifest: {e}"),
        })?;
        let md = content.write_blob_bytes(&mb, None)?;
        if let Some(w) = oci_out {
            self.write_oci_layout(w, &config, &md, &st.layers, &req.tags)?;
            self.done(v);
            return Ok(Built {
                id: config.digest,
                image: None,
            });
        }
        self.progress.event(Event::Log {
            id: v.0,
            line: &format!("writing image {} done", config.digest),
        });
        let rec = self
            .store
            .transaction(|t| t.add(&md.digest, &p, &req.tags, &ApplyOptions::default()))?;
        for t in &req.tags {
            self.progress.event(Event::Log {
                id: v.0,
                line: &format!("naming to {t} done"),
            });
        }
        self.done(v);
        Ok(Built {
            id: rec.id.clone(),
            image: Some(rec),
        })
    }
}

/// Removes from an overlay upper directory the empty files the runtime made as mount points
/// (`stubs`: `/etc/hosts`, a secret's or a bound file's target) when the image had none.
/// Directories made as mount points stay, and so do the directories holding a removed stub,
/// as in BuildKit's layers (the side-by-side corpus shows `/cache`, `/run/secrets` there).
///
/// The step's container wrote this directory: a component of a stub's path may now be a
/// symlink (to a host path, as an absolute one reads outside the container). Nothing is
/// followed: the parent is opened beneath `upper` with no symlinks (CVE-2024-23652, where
/// BuildKit's clean-up of such stubs removed files on the host), and a stub whose path
/// leads through one is left where it is.
fn remove_stubs(upper: &Path, stubs: &[String]) {
    use berth_image::sys;
    use std::os::fd::AsFd;
    let Ok(root) = sys::open_dir(upper) else {
        return;
    };
    for s in stubs {
        let rel = Path::new(s.trim_start_matches('/'));
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            continue;
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let Ok(dir) = sys::openat2(
            root.as_fd(),
            parent,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
        ) else {
            continue;
        };
        if let Ok(st) = sys::lstatat(dir.as_fd(), name)
            && sys::file_type(&st) == libc::S_IFREG
            && st.st_size == 0
        {
            let _ = sys::unlinkat(dir.as_fd(), name, false);
        }
    }
}

impl Executor<'_> {
    /// `--output type=oci`: an OCI image layout as a tar (`oci-layout`, `index.json` naming
    /// the manifest with the first tag, the blobs from the content store).
    fn write_oci_layout(
        &self,
        w: Box<dyn Write>,
        config: &berth_image::BlobInfo,
        manifest: &berth_image::BlobInfo,
        layers: &[Value],
        tags: &[Reference],
    ) -> Result<()> {
        let content = self.store.content();
        let err = io_at(Path::new("--output"));
        let mut b = tar::Builder::new(w);
        let file = |b: &mut tar::Builder<Box<dyn Write>>, name: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, name, data)
        };
        let mut desc = json!({
            "mediaType": mt::OCI_MANIFEST,
            "digest": manifest.digest.to_string(),
            "size": manifest.size,
        });
        if let Some(t) = tags.first() {
            desc["annotations"] = json!({
                "io.containerd.image.name": t.to_string(),
                "org.opencontainers.image.ref.name": t.tag().unwrap_or("latest"),
            });
        }
        let index = json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": [desc]});
        let result = (|| -> std::io::Result<()> {
            file(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            file(&mut b, "index.json", index.to_string().as_bytes())?;
            let mut blobs: Vec<(Digest, u64)> = vec![
                (config.digest.clone(), config.size),
                (manifest.digest.clone(), manifest.size),
            ];
            for l in layers {
                if let (Some(d), Some(n)) = (
                    l["digest"].as_str().and_then(|d| d.parse::<Digest>().ok()),
                    l["size"].as_u64(),
                ) {
                    blobs.push((d, n));
                }
            }
            blobs.dedup();
            for (d, size) in blobs {
                let f = content.open_blob(&d).map_err(std::io::Error::other)?;
                let mut h = tar::Header::new_ustar();
                h.set_mode(0o644);
                h.set_size(size);
                b.append_data(
                    &mut h,
                    format!("blobs/{}/{}", d.algorithm().name(), d.hex()),
                    std::io::Read::take(f, size),
                )?;
            }
            b.into_inner()?.flush()
        })();
        result.map_err(err)
    }
}

fn with_line(e: BuildError, line: usize) -> BuildError {
    match e {
        BuildError::Step { message, .. } => BuildError::Step { line, message },
        e => e,
    }
}

/// The instruction as the progress shows it: its arguments on one line (continuations
/// joined, heredoc bodies left out).
fn instruction_text(ins: &Instruction) -> String {
    let mut line = String::new();
    for l in ins.original.lines() {
        let t = l.trim_end();
        match t.strip_suffix(['\\', '`']) {
            Some(part) => {
                line.push_str(part.trim_end());
                line.push(' ');
            }
            None => {
                line.push_str(t);
                break;
            }
        }
    }
    let t = line.trim_start();
    match t.find(char::is_whitespace) {
        Some(i) => t[i..].split_whitespace().collect::<Vec<_>>().join(" "),
        None => String::new(),
    }
}

fn kv_text(kvs: &[crate::parser::KeyValue]) -> String {
    kvs.iter()
        .map(|kv| format!("{}={}", kv.key, kv.value))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Variables expanded in `text`, its quotes and escape characters kept as written.
fn expand_raw(
    lex: &Lexer,
    text: &str,
    vars: &[(String, String)],
) -> std::result::Result<String, crate::shell::ShellError> {
    let e = lex.escape;
    let mut quoted = String::with_capacity(text.len());
    for ch in text.chars() {
        if ch == e || ch == '"' || ch == '\'' {
            quoted.push(e);
        }
        quoted.push(ch);
    }
    lex.process_word(&quoted, &vars.to_vec())
}

/// Exec form as is; shell form through the stage's SHELL.
fn command_vec(c: &CommandLine, shell: &[String]) -> Vec<String> {
    match c {
        CommandLine::Exec(v) => v.clone(),
        CommandLine::Shell(s) => {
            let mut v = shell.to_vec();
            v.push(s.clone());
            v
        }
    }
}

/// A shell-form RUN with heredocs as one script: a command that is only `<<EOF` runs the
/// body; otherwise the bodies follow the command line, as a shell reads heredocs.
fn with_heredocs(cmd: &str, heredocs: &[crate::parser::Heredoc]) -> String {
    if heredocs.is_empty() {
        return cmd.to_string();
    }
    let t = cmd.trim();
    if heredocs.len() == 1 && t.starts_with("<<") && !t.contains(char::is_whitespace) {
        return heredocs[0].content.clone();
    }
    let mut s = cmd.to_string();
    s.push('\n');
    for h in heredocs {
        s.push_str(&h.content);
        s.push_str(&h.name);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::Heredoc;

    fn heredoc(name: &str, content: &str) -> Heredoc {
        Heredoc {
            name: name.into(),
            content: content.into(),
            expand: true,
            chomp: false,
            fd: None,
        }
    }

    #[test]
    fn run_heredocs_become_one_script() {
        // A lone heredoc is the script.
        assert_eq!(
            with_heredocs("<<EOF", &[heredoc("EOF", "echo a\necho b\n")]),
            "echo a\necho b\n"
        );
        // Otherwise the bodies follow the command line, as a shell reads them.
        assert_eq!(
            with_heredocs("cat <<A > /a", &[heredoc("A", "x\n")]),
            "cat <<A > /a\nx\nA\n"
        );
        assert_eq!(with_heredocs("echo hi", &[]), "echo hi");
    }

    #[test]
    fn copy_heredocs_expand_variables_raw() {
        let vars = vec![("V".to_string(), "value".to_string())];
        let lex = Lexer::default();
        assert_eq!(
            expand_raw(&lex, "a $V \"q\" 'x' b\\c ${V}s\n", &vars).expect("expand"),
            "a value \"q\" 'x' b\\c values\n"
        );
    }

    #[test]
    fn progress_text_and_commands() {
        let df = crate::parser::parse("FROM x\nRUN echo a \\\n  b\nCMD echo hi\n").expect("parse");
        assert_eq!(instruction_text(&df.instructions[1]), "echo a b");
        let shell = vec!["/bin/sh".to_string(), "-c".to_string()];
        assert_eq!(
            command_vec(&CommandLine::Shell("echo hi".into()), &shell),
            vec!["/bin/sh", "-c", "echo hi"]
        );
        assert_eq!(
            command_vec(&CommandLine::Exec(vec!["a".into()]), &shell),
            vec!["a"]
        );
    }

    #[test]
    fn expose_ranges_expand() {
        assert_eq!(expose_ports("80"), vec!["80/tcp"]);
        assert_eq!(expose_ports("53/UDP"), vec!["53/udp"]);
        assert_eq!(
            expose_ports("8000-8002/udp"),
            vec!["8000/udp", "8001/udp", "8002/udp"]
        );
    }

    #[test]
    fn git_sources_as_buildkit_tells_them() {
        for g in [
            "git@github.com:moby/buildkit.git",
            "https://github.com/moby/buildkit.git",
            "https://github.com/moby/buildkit.git#v0.8.0:docs",
            "git://example.com/r",
            "ssh://git@example.com/r.git",
            "github.com/moby/buildkit",
        ] {
            assert!(is_git_source(g), "{g}");
        }
        for p in [
            "repo.git",
            "./x.git",
            "https://example.com/file.tar",
            "dir/github.com",
        ] {
            assert!(!is_git_source(p), "{p}");
        }
    }

    #[test]
    fn mount_stubs_leave_the_upper_directory() {
        let t = tempfile::tempdir().expect("tempdir");
        let u = t.path();
        for d in ["etc", "proc", "run/secrets", "data"] {
            fs::create_dir_all(u.join(d)).expect("mkdir");
        }
        fs::write(u.join("etc/hosts"), "").expect("stub");
        fs::write(u.join("run/secrets/tok"), "").expect("stub");
        fs::write(u.join("data/kept"), "written by the step").expect("file");
        remove_stubs(
            u,
            &[
                "/etc/hosts".into(),
                "/proc".into(),
                "/run/secrets/tok".into(),
                "/data/kept".into(),
            ],
        );
        // What the step wrote stays, even at a stub's path; empty file stubs go, directories
        // (mount points, and those that held a stub) stay as BuildKit leaves them.
        assert!(u.join("data/kept").exists());
        assert!(!u.join("etc/hosts").exists() && u.join("etc").is_dir());
        assert!(!u.join("run/secrets/tok").exists() && u.join("run/secrets").is_dir());
        assert!(u.join("proc").is_dir());
    }
}

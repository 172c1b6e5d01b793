//! `pull`, `push`, `login`, `logout` over berth-registry.

use std::fs::File;
use std::io::{self, BufRead, IsTerminal, Write};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_image::{Descriptor, Digest, ImageStore, Platform, Reference};
use berth_registry::config::{auth_key, hostname};
use berth_registry::{
    AuthFile, BlobPush, Client, Credentials, LayerState, Progress, PullOptions, PushProgress,
    RegistriesConfig,
};

use crate::args::Parsed;
use crate::fmt::human_size;
use crate::{Fail, Res, usage};

impl From<berth_registry::Error> for Fail {
    fn from(e: berth_registry::Error) -> Fail {
        Fail::Cmd(e.to_string())
    }
}

fn runtime() -> Res<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Fail::Cmd(format!("starting the I/O runtime: {e}")))
}

/// A reference as typed, with the registries file's default registry for
/// names that do not name one.
fn resolve(name: &str, cfg: &RegistriesConfig) -> Res<Reference> {
    let r = Reference::parse_normalized(name)?;
    let explicit = name
        .split_once('/')
        .is_some_and(|(first, _)| first.contains(['.', ':']) || first == "localhost");
    if explicit || hostname(&cfg.default_registry) == "docker.io" {
        return Ok(r);
    }
    // `busybox` → `<default>/busybox` (the path as typed, no `library/`).
    let path = name.split(['@']).next().unwrap_or(name);
    let path = match path.rfind(':') {
        Some(i) if !path[i..].contains('/') => &path[..i],
        _ => path,
    };
    let mut s = format!("{}/{}", cfg.default_registry, path);
    if let Some(t) = r.tag() {
        s = format!("{s}:{t}");
    }
    if let Some(d) = r.digest() {
        s = format!("{s}@{d}");
    }
    Ok(Reference::parse_normalized(&s)?)
}

/// `reference` with docker's default tag when it has neither tag nor
/// digest.
fn with_default_tag(reference: Reference) -> Res<Reference> {
    if reference.tag().is_none() && reference.digest().is_none() {
        Ok(reference.with_tag(berth_image::reference::DEFAULT_TAG)?)
    } else {
        Ok(reference)
    }
}

fn client_for(cfg: &RegistriesConfig, registry: &str, endpoint: &str) -> Res<Client> {
    let mut opts = cfg.client_options(endpoint)?;
    let auth = AuthFile::load(AuthFile::default_path())?;
    opts.credentials = auth.credentials(registry)?;
    Ok(Client::new(endpoint, opts)?)
}

/// Writes to the process's stdout without its lock (the command holds it
/// while worker threads report progress).
struct RawOut(Mutex<File>);

impl RawOut {
    fn new(stderr: bool) -> Res<RawOut> {
        let fd = if stderr {
            io::stderr().as_fd().try_clone_to_owned()?
        } else {
            io::stdout().as_fd().try_clone_to_owned()?
        };
        Ok(RawOut(Mutex::new(File::from(fd))))
    }
    fn write(&self, s: &str) {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = f.write_all(s.as_bytes());
    }
}

fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

/// Docker-style progress: on a terminal a line per layer redrawn in place
/// with a bar; otherwise one plain line per change of state.
struct Display {
    out: RawOut,
    tty: bool,
    state: Mutex<DisplayState>,
}

#[derive(Default)]
struct DisplayState {
    /// (short id, status text) in manifest order.
    lines: Vec<(String, String)>,
    drawn: usize,
    last_draw: Option<Instant>,
}

impl Display {
    /// Progress on stdout (`pull`) or stderr (`run`, whose stdout is the
    /// container's); drawn in place when that is a terminal.
    fn new(stderr: bool) -> Res<Display> {
        let tty = if stderr {
            io::stderr().is_terminal()
        } else {
            io::stdout().is_terminal()
        };
        Ok(Display {
            out: RawOut::new(stderr)?,
            tty,
            state: Mutex::new(DisplayState::default()),
        })
    }

    fn line(&self, s: &str) {
        self.out.write(&format!("{s}\n"));
    }

    fn set(&self, id: String, status: String, force: bool) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !self.tty {
            if st.lines.iter().any(|(i, s)| *i == id && *s == status) {
                return;
            }
            match st.lines.iter_mut().find(|(i, _)| *i == id) {
                Some(l) => l.1 = status.clone(),
                None => st.lines.push((id.clone(), status.clone())),
            }
            drop(st);
            self.line(&format!("{id}: {status}"));
            return;
        }
        match st.lines.iter_mut().find(|(i, _)| *i == id) {
            Some(l) => l.1 = status,
            None => st.lines.push((id, status)),
        }
        if !force
            && st
                .last_draw
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        let mut s = String::new();
        if st.drawn > 0 {
            s.push_str(&format!("\x1b[{}A", st.drawn));
        }
        for (i, status) in &st.lines {
            s.push_str(&format!("\x1b[2K{i}: {status}\n"));
        }
        st.drawn = st.lines.len();
        st.last_draw = Some(Instant::now());
        drop(st);
        self.out.write(&s);
    }
}

fn bar(done: u64, total: u64) -> String {
    let width = 50;
    let filled = if total == 0 {
        width
    } else {
        ((done.min(total) as u128 * width as u128) / total as u128) as usize
    };
    let arrow = if filled < width { ">" } else { "" };
    format!(
        "[{}{}{}] {:>8}/{}",
        "=".repeat(filled.saturating_sub(usize::from(filled < width && filled > 0))),
        if filled > 0 { arrow } else { "" },
        " ".repeat(width - filled),
        human_size(done),
        human_size(total)
    )
}

struct PullDisplay(Option<Display>);

impl Progress for PullDisplay {
    fn resolved(&self, _manifest: &Digest, _layers: &[Descriptor]) {}
    fn layer(&self, layer: &Digest, state: LayerState) {
        let Some(d) = &self.0 else { return };
        let (status, force) = match state {
            LayerState::Exists => ("Already exists".to_string(), true),
            LayerState::Waiting => ("Pulling fs layer".to_string(), true),
            LayerState::Downloading { done, total } if d.tty => {
                (format!("Downloading {}", bar(done, total)), done == total)
            }
            // Plain output: one line when the download starts.
            LayerState::Downloading { .. } => ("Downloading".to_string(), false),
            LayerState::Complete => ("Pull complete".to_string(), true),
        };
        d.set(short(layer), status, force);
    }
}

pub fn pull(store: &ImageStore, p: &Parsed, out: &mut dyn Write) -> Res {
    let [name] = p.args.as_slice() else {
        return usage("\"pull\" requires exactly 1 argument");
    };
    let cfg = RegistriesConfig::load_default()?;
    let mut reference = resolve(name, &cfg)?;
    let all_tags = p.bool("all-tags");
    if all_tags && (reference.tag().is_some() || reference.digest().is_some()) {
        return usage("tag can't be used with --all-tags/-a");
    }
    reference = with_default_tag(reference)?;
    let mut opts = PullOptions::default();
    if let Some(pl) = p.value("platform") {
        opts.platform = pl.parse::<Platform>()?;
    }
    if let Some(n) = p.value("max-concurrent-downloads") {
        opts.max_concurrent_downloads = match n.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return usage(format!("invalid --max-concurrent-downloads {n:?}")),
        };
    }
    let quiet = p.bool("quiet");
    out.flush()?;
    let registry = reference.domain().to_string();
    let repo = reference.path().to_string();
    let rt = runtime()?;
    let references = if all_tags {
        let client = client_for(&cfg, &registry, &RegistriesConfig::endpoint(&registry))?;
        let tags = rt.block_on(client.list_tags(&repo))?;
        if tags.is_empty() {
            return Err(Fail::Cmd(format!("{} has no tags", reference.name())));
        }
        tags.iter()
            .map(|t| reference.with_tag(t))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        vec![reference.clone()]
    };
    for reference in &references {
        pull_one(&cfg, &rt, store, reference, &opts, quiet, false)?;
        let f = reference.familiar();
        berth_engine::events::record_image(store.root(), "pull", &f, &f);
    }
    if all_tags {
        writeln!(out, "{}", reference.name())?;
    } else {
        writeln!(out, "{reference}")?;
    }
    Ok(())
}

/// `run`/`create` of an image that is not here (or `--pull always`):
/// pulled as `pull` would, the progress on stderr.
pub fn pull_for_run(store: &ImageStore, name: &str, quiet: bool) -> Res {
    let cfg = RegistriesConfig::load_default()?;
    let reference = with_default_tag(resolve(name, &cfg)?)?;
    let rt = runtime()?;
    pull_one(
        &cfg,
        &rt,
        store,
        &reference,
        &PullOptions::default(),
        quiet,
        true,
    )?;
    let f = reference.familiar();
    berth_engine::events::record_image(store.root(), "pull", &f, &f);
    Ok(())
}

/// One reference, from the first endpoint (mirrors, then the registry)
/// that has it; progress and docker's closing lines on stdout (or stderr).
fn pull_one(
    cfg: &RegistriesConfig,
    rt: &tokio::runtime::Runtime,
    store: &ImageStore,
    reference: &Reference,
    opts: &PullOptions,
    quiet: bool,
    to_stderr: bool,
) -> Res {
    let registry = reference.domain();
    let repo = reference.path();
    // The mirrors first, then the registry itself.
    let mut endpoints: Vec<String> = cfg.mirrors(registry).to_vec();
    endpoints.push(RegistriesConfig::endpoint(registry));
    let display = if quiet {
        None
    } else {
        Some(Display::new(to_stderr)?)
    };
    let what = match reference.digest() {
        Some(d) => d.to_string(),
        None => reference.tag().unwrap_or("latest").to_string(),
    };
    if let Some(d) = &display {
        d.line(&format!(
            "{what}: Pulling from {}",
            Reference::parse_normalized(&reference.name())
                .map(|r| r.familiar_name())
                .unwrap_or_else(|_| reference.name())
                .trim_start_matches("library/")
        ));
    }
    let progress = Arc::new(PullDisplay(display));
    let mut last_err = None;
    let mut pulled = None;
    for (i, endpoint) in endpoints.iter().enumerate() {
        let mirror = i + 1 < endpoints.len();
        let client = match client_for(cfg, if mirror { endpoint } else { registry }, endpoint) {
            Ok(c) => c,
            Err(e) if mirror => {
                last_err = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let r = rt.block_on(berth_registry::pull(
            &client,
            store,
            repo,
            reference,
            opts,
            progress.clone(),
        ));
        match r {
            Ok(p) => {
                pulled = Some(p);
                break;
            }
            Err(e) if mirror => last_err = Some(e.into()),
            Err(e) => return Err(e.into()),
        }
    }
    let Some(pulled) = pulled else {
        return Err(last_err.unwrap_or_else(|| Fail::Cmd("no registry to pull from".into())));
    };
    let familiar = reference.familiar();
    if let Some(d) = &progress.0 {
        d.line(&format!("Digest: {}", pulled.digest));
        if pulled.changed {
            d.line(&format!("Status: Downloaded newer image for {familiar}"));
        } else {
            d.line(&format!("Status: Image is up to date for {familiar}"));
        }
    }
    Ok(())
}

struct PushDisplay(Option<Display>);

impl PushProgress for PushDisplay {
    fn blob(&self, digest: &Digest, state: BlobPush) {
        let Some(d) = &self.0 else { return };
        let status = match state {
            BlobPush::Preparing => "Preparing".to_string(),
            BlobPush::Waiting => "Waiting".to_string(),
            BlobPush::Exists => "Layer already exists".to_string(),
            BlobPush::Mounted(from) => format!("Mounted from {from}"),
            BlobPush::Pushed => "Pushed".to_string(),
        };
        d.set(short(digest), status, true);
    }
}

pub fn push(store: &ImageStore, p: &Parsed, out: &mut dyn Write) -> Res {
    let [name] = p.args.as_slice() else {
        return usage("\"push\" requires exactly 1 argument");
    };
    let cfg = RegistriesConfig::load_default()?;
    let mut reference = resolve(name, &cfg)?;
    if reference.digest().is_some() {
        return usage(format!(
            "cannot push a digest reference {name:?}: push a tag"
        ));
    }
    let tags: Vec<Reference> = if p.bool("all-tags") {
        if reference.tag().is_some() {
            return usage("tag can't be used with --all-tags/-a");
        }
        let repo = reference.name();
        let mut v: Vec<Reference> = store
            .list()?
            .iter()
            .flat_map(|r| r.repo_tags.iter())
            .filter_map(|t| Reference::parse(t).ok())
            .filter(|t| t.name() == repo)
            .collect();
        v.sort_by_key(|r| r.to_string());
        if v.is_empty() {
            return Err(Fail::Cmd(format!(
                "An image does not exist locally with the tag: {}",
                reference.familiar_name()
            )));
        }
        v
    } else {
        // (A digest was refused above.)
        reference = with_default_tag(reference)?;
        vec![reference.clone()]
    };
    let concurrency = match p.value("max-concurrent-uploads") {
        None => 5,
        Some(n) => match n.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return usage(format!("invalid --max-concurrent-uploads {n:?}")),
        },
    };
    let quiet = p.bool("quiet");
    let registry = reference.domain().to_string();
    let endpoint = RegistriesConfig::endpoint(&registry);
    let client = client_for(&cfg, &registry, &endpoint)?;
    let rt = runtime()?;
    out.flush()?;
    if !quiet {
        writeln!(out, "The push refers to repository [{}]", reference.name())?;
        out.flush()?;
    }
    for tag in tags {
        let image = store.get(&tag.to_string()).map_err(|_| {
            Fail::Cmd(format!(
                "An image does not exist locally with the tag: {}",
                tag.familiar()
            ))
        })?;
        let display = if quiet {
            None
        } else {
            Some(Display::new(false)?)
        };
        let progress = Arc::new(PushDisplay(display));
        let t = tag.tag().unwrap_or("latest").to_string();
        let pushed = rt.block_on(berth_registry::push(
            &client,
            store,
            &image,
            tag.path(),
            &t,
            concurrency,
            progress,
        ))?;
        let repo_digest = tag.repository().with_digest(pushed.digest.clone());
        store.transaction(|txn| txn.add_repo_digest(&image.id, &repo_digest))?;
        let f = tag.familiar();
        berth_engine::events::record_image(store.root(), "push", &f, &f);
        if quiet {
            writeln!(out, "{tag}")?;
        } else {
            writeln!(out, "{t}: digest: {} size: {}", pushed.digest, pushed.size)?;
        }
    }
    Ok(())
}

/// Turns terminal echo off while reading a password; restored on drop.
struct NoEcho {
    saved: Option<libc::termios>,
}

impl NoEcho {
    fn new() -> NoEcho {
        // SAFETY: termios is plain data; tcgetattr fills it for fd 0 and
        // reports failure (not a terminal) by its return value.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `t` is a valid termios to write.
        if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
            return NoEcho { saved: None };
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        // SAFETY: sets fd 0's attributes from a termios tcgetattr filled.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        NoEcho { saved: Some(saved) }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            // SAFETY: restores the attributes read in `new`.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
    }
}

fn read_line(prompt: &str, secret: bool) -> Res<String> {
    let mut err = io::stderr();
    let _ = write!(err, "{prompt}");
    let _ = err.flush();
    let guard = secret.then(NoEcho::new);
    let mut s = String::new();
    io::stdin().lock().read_line(&mut s)?;
    drop(guard);
    if secret {
        let _ = writeln!(err);
    }
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

pub fn login(p: &Parsed, out: &mut dyn Write) -> Res {
    let server = match p.args.as_slice() {
        [] => "docker.io".to_string(),
        [s] => s.clone(),
        _ => return usage("\"login\" requires at most 1 argument"),
    };
    let registry = hostname(&server);
    if registry.is_empty() {
        return usage(format!("invalid server address {server:?}"));
    }
    let stdin_tty = io::stdin().is_terminal();
    let mut username = p.value("username").map(str::to_string);
    let password = if p.bool("password-stdin") {
        if p.has("password") {
            return usage("--password and --password-stdin are mutually exclusive");
        }
        if username.is_none() {
            return usage("Must provide --username with --password-stdin");
        }
        let mut s = String::new();
        io::Read::read_to_string(&mut io::stdin(), &mut s)?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(pw) = p.value("password") {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        pw.to_string()
    } else {
        if !stdin_tty {
            return Err(Fail::Cmd(
                "cannot perform an interactive login from a non TTY device".into(),
            ));
        }
        if username.is_none() {
            username = Some(read_line("Username: ", false)?);
        }
        read_line("Password: ", true)?
    };
    let username = match username {
        Some(u) if !u.is_empty() => u,
        _ => return Err(Fail::Cmd("Error: Non-null Username Required".into())),
    };
    if password.is_empty() {
        return Err(Fail::Cmd("Error: Password Required".into()));
    }
    let creds = Credentials::new(username, password);
    let cfg = RegistriesConfig::load_default()?;
    let endpoint = RegistriesConfig::endpoint(&registry);
    let mut opts = cfg.client_options(&endpoint)?;
    opts.credentials = Some(creds.clone());
    let client = Client::new(&endpoint, opts)?;
    let rt = runtime()?;
    rt.block_on(client.ping())
        .map_err(|e| Fail::Cmd(format!("login to {registry} failed: {e}")))?;
    let mut auth = AuthFile::load(AuthFile::default_path())?;
    auth.store(&registry, &creds)?;
    writeln!(out, "Login Succeeded")?;
    Ok(())
}

pub fn logout(p: &Parsed, out: &mut dyn Write) -> Res {
    let server = match p.args.as_slice() {
        [] => "docker.io".to_string(),
        [s] => s.clone(),
        _ => return usage("\"logout\" requires at most 1 argument"),
    };
    let key = auth_key(&server);
    let mut auth = AuthFile::load(AuthFile::default_path())?;
    if auth.erase(&server)? {
        writeln!(out, "Removing login credentials for {key}")?;
    } else {
        writeln!(out, "Not logged in to {key}")?;
    }
    Ok(())
}

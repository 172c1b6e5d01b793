//! `berth-oci`: an OCI runtime with runc's command line.

mod args;
mod log;
mod update;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use berth_runtime::container::{ExecOverrides, exec_process_from_config};
use berth_runtime::{CreateOpts, ExecOpts, Runtime, Status, foreground, sys};

use crate::args::{Cli, Cmd, CreateArgs};

const DEFAULT_ROOT: &str = "/run/berth-oci";

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let cli = match args::parse(&argv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-oci: {e:#}");
            std::process::exit(2);
        }
    };
    let logger = log::Logger::new(cli.log.as_deref(), &cli.log_format, cli.debug);
    if cli.debug {
        berth_runtime::timing::enable();
    }
    match run(cli, &logger) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = format!("{e:#}");
            logger.error(&msg);
            std::process::exit(1);
        }
    }
}

fn rootless(flag: &str) -> Result<bool> {
    Ok(match flag {
        "auto" => sys::geteuid() != 0,
        "true" => true,
        "false" => false,
        other => bail!("--rootless: {other:?} is not auto, true or false"),
    })
}

fn run(cli: Cli, logger: &log::Logger) -> Result<i32> {
    if cli.version {
        out(&format!(
            "berth-oci version {}\nspec: {}\n",
            env!("CARGO_PKG_VERSION"),
            berth_runtime::spec::OCI_VERSION
        ));
        return Ok(0);
    }
    if cli.systemd_cgroup {
        bail!(
            "--systemd-cgroup: the systemd cgroup driver is not supported yet; use cgroupfs (omit the flag)"
        );
    }
    let rootless = rootless(&cli.rootless)?;
    let root = cli.root.clone().unwrap_or_else(|| default_root(rootless));
    let rt = Runtime::new(root, rootless);
    let Some(cmd) = cli.cmd else {
        eprint!("{}", args::USAGE);
        bail!("no command given");
    };
    match cmd {
        Cmd::Create { args, id } => {
            let bundle = berth_runtime::spec::load_bundle(&args.bundle)?;
            seal_if_needed(&bundle.spec, bundle.spec.process().as_ref())?;
            let opts = create_opts(&args, &id)?;
            rt.create_from(&bundle, opts)?;
            Ok(0)
        }
        Cmd::Start { id } => {
            rt.start(&id)?;
            Ok(0)
        }
        Cmd::State { id } => {
            let st = rt.state(&id)?;
            out(&(serde_json::to_string_pretty(&st)? + "\n"));
            Ok(0)
        }
        Cmd::Kill { all, id, signal } => {
            let sig = parse_signal(signal.as_deref().unwrap_or("SIGTERM"))?;
            rt.kill(&id, sig, all)?;
            Ok(0)
        }
        Cmd::Delete { force, id } => {
            rt.delete(&id, force)?;
            Ok(0)
        }
        Cmd::Run {
            args,
            detach,
            keep,
            id,
        } => run_container(&rt, &args, &id, detach, keep, logger),
        Cmd::Exec(e) => {
            let args::ExecArgs {
                process,
                detach,
                pid_file,
                tty,
                console_socket,
                cwd,
                env,
                user,
                cap,
                no_new_privs,
                preserve_fds,
                pidfd_socket,
                ignore_paused,
                id,
                command,
            } = *e;
            let c = rt.load(&id)?;
            let spec = c.config()?;
            let proc = match process {
                Some(f) => {
                    let data = std::fs::read(&f).with_context(|| format!("{}", f.display()))?;
                    serde_json::from_slice(&data)
                        .with_context(|| format!("parsing process file {}", f.display()))?
                }
                None => {
                    if command.is_empty() {
                        bail!("exec: no command given (pass ARGS or --process FILE)");
                    }
                    let user = user.as_deref().map(parse_user).transpose()?;
                    exec_process_from_config(
                        &spec,
                        ExecOverrides {
                            args: command,
                            env,
                            cwd,
                            user,
                            add_caps: cap,
                            tty,
                            no_new_privs: no_new_privs.then_some(true),
                        },
                    )?
                }
            };
            seal_if_needed(&spec, Some(&proc))?;
            let terminal = proc.terminal() == Some(true);
            let (console, local_master) = console_for(terminal, console_socket.as_deref(), detach)?;
            if !detach {
                foreground::prepare();
            }
            let pid = rt.exec(
                &id,
                ExecOpts {
                    process: proc,
                    console,
                    pid_file,
                    preserve_fds,
                    pidfd_socket: connect(pidfd_socket.as_deref(), "--pidfd-socket")?,
                    ignore_paused,
                },
            )?;
            if detach {
                return Ok(0);
            }
            let master = local_master
                .map(|s| foreground::recv_master(&s))
                .transpose()?;
            Ok(foreground::wait(pid, master, None))
        }
        Cmd::List { format, quiet } => list(&rt, &format, quiet),
        Cmd::Spec { rootless, bundle } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("File {} exists. Remove it first", path.display());
            }
            let v = berth_runtime::specgen::default_spec(rootless, sys::geteuid(), sys::getegid());
            std::fs::write(&path, serde_json::to_string_pretty(&v)? + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(0)
        }
        Cmd::Help => {
            out(args::USAGE);
            Ok(0)
        }
        Cmd::Features => {
            out(&(serde_json::to_string_pretty(&berth_runtime::features::features())? + "\n"));
            Ok(0)
        }
        Cmd::Pause { id } => {
            let c = rt.load(&id)?;
            match c.status() {
                Status::Running => {}
                Status::Stopped => return Err(berth_runtime::Error::NotRunning(id).into()),
                s => bail!("container {id} is {s}, not running"),
            }
            berth_runtime::resources::set_frozen(&c.record.cgroup, true)?;
            Ok(0)
        }
        Cmd::Update(u) => {
            update::update(&rt, *u)?;
            Ok(0)
        }
        Cmd::Events {
            stats,
            interval,
            id,
        } => update::events(&rt, &id, stats, &interval),
        Cmd::Ps {
            format,
            id,
            ps_args,
        } => update::ps(&rt, &id, &format, &ps_args),
        Cmd::Resume { id } => {
            let c = rt.load(&id)?;
            if c.status() != Status::Paused {
                bail!("container {id} is not paused");
            }
            berth_runtime::resources::set_frozen(&c.record.cgroup, false)?;
            Ok(0)
        }
    }
}

/// Writes to stdout in one go; a reader that went away (`| head -1`) is
/// not an error worth a panic.
pub fn out(s: &str) {
    let _ = std::io::stdout().lock().write_all(s.as_bytes());
}

fn default_root(rootless: bool) -> PathBuf {
    if rootless {
        if let Ok(x) = std::env::var("XDG_RUNTIME_DIR") {
            return Path::new(&x).join("berth-oci");
        }
        return PathBuf::from(format!("/tmp/berth-oci-{}", sys::geteuid()));
    }
    PathBuf::from(DEFAULT_ROOT)
}

fn create_opts(args: &CreateArgs, id: &str) -> Result<CreateOpts> {
    let console = connect(args.console_socket.as_deref(), "--console-socket")?;
    let pidfd_socket = connect(args.pidfd_socket.as_deref(), "--pidfd-socket")?;
    let mut preserve_fds = args.preserve_fds;
    let mut extra_env = vec![];
    // systemd socket activation: pass the listening fds through.
    if let Some(n) = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| *n > 0)
    {
        preserve_fds = preserve_fds.max(n);
        extra_env.push(format!("LISTEN_FDS={n}"));
        extra_env.push("LISTEN_PID=1".into());
    }
    Ok(CreateOpts {
        id: id.to_string(),
        bundle: args.bundle.clone(),
        pid_file: args.pid_file.clone(),
        console,
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        preserve_fds,
        extra_env,
        pidfd_socket,
    })
}

fn connect(path: Option<&Path>, flag: &str) -> Result<Option<OwnedFd>> {
    path.map(|p| {
        UnixStream::connect(p)
            .map(OwnedFd::from)
            .with_context(|| format!("{flag} {}", p.display()))
    })
    .transpose()
}

/// The console for a process: the user's socket, or (foreground with a
/// terminal) a socket pair whose other end we read the master from.
fn console_for(
    terminal: bool,
    socket: Option<&Path>,
    detach: bool,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    if !terminal {
        if socket.is_some() {
            bail!("--console-socket given but process.terminal is false");
        }
        return Ok((None, None));
    }
    if let Some(p) = socket {
        let s =
            UnixStream::connect(p).with_context(|| format!("--console-socket {}", p.display()))?;
        return Ok((Some(OwnedFd::from(s)), None));
    }
    if detach {
        bail!("cannot allocate a tty when detaching without --console-socket");
    }
    let (a, b) = UnixStream::pair().context("socketpair")?;
    Ok((Some(OwnedFd::from(a)), Some(OwnedFd::from(b))))
}

fn run_container(
    rt: &Runtime,
    args: &CreateArgs,
    id: &str,
    detach: bool,
    keep: bool,
    _logger: &log::Logger,
) -> Result<i32> {
    let bundle = berth_runtime::spec::load_bundle(&args.bundle)?;
    seal_if_needed(&bundle.spec, bundle.spec.process().as_ref())?;
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let (console, local_master) = console_for(terminal, args.console_socket.as_deref(), detach)?;
    let mut opts = create_opts(
        &CreateArgs {
            console_socket: None,
            ..args.clone()
        },
        id,
    )?;
    opts.console = console;
    if !detach {
        foreground::prepare();
    }
    let c = rt.create_from(&bundle, opts)?;
    let master = local_master
        .map(|s| foreground::recv_master(&s))
        .transpose();
    let started = rt.start_container(&c, Some(&bundle.spec)).and(
        master
            .as_ref()
            .map(drop)
            .map_err(|e| berth_runtime::Error::Container(e.to_string())),
    );
    if let Err(e) = started {
        let _ = rt.delete(id, true);
        return Err(e.into());
    }
    if detach {
        return Ok(0);
    }
    let code = foreground::wait(c.record.pid, master?, Some((rt, &c)));
    if !keep && let Err(e) = rt.destroy_container(&c, Some(&bundle.spec)) {
        eprintln!("berth-oci: cleaning up {id}: {e}");
    }
    Ok(code)
}

/// Re-executes sealed (a read-only bind of our binary, or a sealed memfd
/// copy) when the container could reach our binary before the exec helper
/// takes over, or the helper could not run (see `exeseal`, CVE-2019-5736).
fn seal_if_needed(
    spec: &oci_spec::runtime::Spec,
    process: Option<&oci_spec::runtime::Process>,
) -> Result<()> {
    use berth_runtime::exeseal;
    if exeseal::needs_sealed_runtime(spec, process) && !exeseal::exe_is_sealed() {
        let e = exeseal::reexec_sealed();
        bail!("re-executing from a sealed copy of berth-oci: {e}");
    }
    Ok(())
}

fn parse_user(s: &str) -> Result<(u32, Option<u32>)> {
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let uid = u
        .parse()
        .with_context(|| format!("--user {s:?}: uid must be a number"))?;
    let gid = g
        .map(|g| g.parse())
        .transpose()
        .with_context(|| format!("--user {s:?}: gid must be a number"))?;
    Ok((uid, gid))
}

/// A signal by name (KILL, SIGKILL) or number.
pub fn parse_signal(s: &str) -> Result<i32> {
    match berth_runtime::signal::parse(s) {
        Some(n) => Ok(n),
        None => bail!("invalid signal {s:?}"),
    }
}

fn list(rt: &Runtime, format: &str, quiet: bool) -> Result<i32> {
    let mut states = vec![];
    for id in rt.root.list()? {
        if let Ok(c) = rt.load(&id) {
            states.push(c.oci_state());
        }
    }
    if quiet {
        for s in &states {
            out(&format!("{}\n", s.id));
        }
        return Ok(0);
    }
    match format {
        "json" => {
            out(&(serde_json::to_string(&states)? + "\n"));
        }
        "table" => {
            let rows: Vec<[String; 6]> = states
                .iter()
                .map(|s| {
                    [
                        s.id.clone(),
                        s.pid.to_string(),
                        s.status.to_string(),
                        s.bundle.display().to_string(),
                        s.created.clone(),
                        s.owner.clone(),
                    ]
                })
                .collect();
            let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            let mut widths = [0usize; 6];
            for r in std::iter::once(&header).chain(rows.iter()) {
                for (i, c) in r.iter().enumerate() {
                    widths[i] = widths[i].max(c.len());
                }
            }
            let mut table = String::new();
            for r in std::iter::once(&header).chain(rows.iter()) {
                let line: Vec<String> = r
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        if i == 5 {
                            c.clone()
                        } else {
                            format!("{c:<w$}", w = widths[i] + 3)
                        }
                    })
                    .collect();
                table.push_str(&line.concat());
                table.push('\n');
            }
            out(&table);
        }
        other => bail!("--format {other:?}: use table or json"),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("sigusr1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse_signal("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }
}

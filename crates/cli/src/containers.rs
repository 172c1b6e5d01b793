//! docker's container commands over berth-engine: `run`, `create`,
//! `start`, `stop`, `kill`, `restart`, `rm`, `ps`, `logs`, `wait`,
//! `inspect` (containers), `attach`, `rename`, `pause`, `unpause`,
//! `container prune`, and the hidden `__monitor` the engine re-executes.
//!
//! Exit status as docker's: 125 when berth itself fails (bad flag, no
//! such image, …), 126 when the program cannot be invoked, 127 when it is
//! not found, otherwise the container's own status for `run`/`start -a`;
//! 1 for a failed command of the other kinds.

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

use berth_engine::config::{self, RunConfig};
use berth_engine::db::{self, ContainerRow};
use berth_engine::{CreateRequest, Engine, Error as EngineError, attach, logs, row_config};
use berth_runtime::sys;
use serde_json::{Value, json};

use crate::args::{Flag, Parsed, Usage, flag, parse};
use crate::fmt;
use berth_engine::inspect::{command_of, labels_of, status_text};

/// A failure with its exit status.
pub struct Failure {
    pub code: u8,
    pub msg: String,
    pub usage: bool,
}

impl From<Usage> for Failure {
    fn from(u: Usage) -> Failure {
        Failure {
            code: 125,
            msg: u.0,
            usage: true,
        }
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Failure {
        let code = match &e {
            EngineError::Start { code, .. } => *code as u8,
            _ => 1,
        };
        Failure {
            code,
            msg: e.to_string(),
            usage: false,
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure {
            code: 1,
            msg: e.to_string(),
            usage: false,
        }
    }
}

type R<T = ()> = Result<T, Failure>;

pub fn fail<T>(code: u8, msg: impl Into<String>) -> R<T> {
    Err(Failure {
        code,
        msg: msg.into(),
        usage: false,
    })
}

fn usage<T>(msg: impl Into<String>) -> R<T> {
    Err(Usage(msg.into()).into())
}

/// Run/create failures before the container runs are berth's own: 125.
fn engine125(e: EngineError) -> Failure {
    let mut f = Failure::from(e);
    if f.code == 1 {
        f.code = 125;
    }
    f
}

const GLOBAL: &[Flag] = &[
    flag("root", None, true),
    flag("help", Some('h'), false),
    flag("version", Some('v'), false),
];

pub const HELP: &str = "
Container commands:
  attach      Attach local standard input, output, and error streams to a running container
  commit      Create a new image from a container's changes
  cp          Copy files/folders between a container and the local filesystem
  create      Create a new container
  exec        Execute a command in a running container
  export      Export a container's filesystem as a tar archive
  inspect     Return low-level information on containers or images
  kill        Kill one or more running containers
  logs        Fetch the logs of a container
  pause       Pause all processes within one or more containers
  ps          List containers
  rename      Rename a container
  restart     Restart one or more containers
  rm          Remove one or more containers
  run         Create and run a new container from an image
  start       Start one or more stopped containers
  stats       Display a live stream of container(s) resource usage statistics (--no-stream)
  stop        Stop one or more running containers
  top         Display the running processes of a container
  unpause     Unpause all processes within one or more containers
  wait        Block until one or more containers stop, then print their exit codes
  container   Manage containers (the commands above, and prune)
  volume      Manage volumes (create, ls, inspect, rm, prune)
  network     Manage networks (create, ls, inspect, rm, prune, connect, disconnect)
  port        List port mappings or a specific mapping for the container
  system      Manage Berth (df, info)
  info        Display system-wide information
  version     Show the berth version information
";

/// Handles the container and volume commands; None for the others (and
/// for `inspect` of something that is not a container).
pub fn dispatch(argv: &[String]) -> Option<ExitCode> {
    let g = parse(argv, GLOBAL, true).ok()?;
    let (cmd, rest) = g.args.split_first()?;
    let (cmd, rest): (&str, &[String]) = match cmd.as_str() {
        "container" => {
            let (sub, r) = rest.split_first()?;
            let c = match sub.as_str() {
                "ls" | "list" | "ps" => "ps",
                "remove" => "rm",
                "prune" => "container prune",
                s @ ("run" | "create" | "start" | "stop" | "kill" | "restart" | "rm" | "logs"
                | "wait" | "inspect" | "rename" | "pause" | "unpause" | "attach" | "exec"
                | "top" | "stats" | "cp" | "export" | "commit" | "port") => s,
                _ => return None,
            };
            (c, r)
        }
        "system" => {
            let Some((sub, r)) = rest.split_first() else {
                return Some(report(usage("'berth system' requires a subcommand")));
            };
            let c = match sub.as_str() {
                "df" => "system df",
                "info" => "info",
                s => {
                    return Some(report(usage(format!(
                        "'system {s}' is not a berth command"
                    ))));
                }
            };
            (c, r)
        }
        "network" => {
            let Some((sub, r)) = rest.split_first() else {
                return Some(report(usage("'berth network' requires a subcommand")));
            };
            let c = match sub.as_str() {
                "create" => "network create",
                "ls" | "list" => "network ls",
                "inspect" => "network inspect",
                "rm" | "remove" => "network rm",
                "prune" => "network prune",
                "connect" => "network connect",
                "disconnect" => "network disconnect",
                s => {
                    return Some(report(usage(format!(
                        "'network {s}' is not a berth command"
                    ))));
                }
            };
            (c, r)
        }
        "volume" => {
            let Some((sub, r)) = rest.split_first() else {
                return Some(report(usage("'berth volume' requires a subcommand")));
            };
            let c = match sub.as_str() {
                "create" => "volume create",
                "ls" | "list" => "volume ls",
                "inspect" => "volume inspect",
                "rm" | "remove" => "volume rm",
                "prune" => "volume prune",
                s => {
                    return Some(report(usage(format!(
                        "'volume {s}' is not a berth command"
                    ))));
                }
            };
            (c, r)
        }
        c @ ("run" | "create" | "start" | "stop" | "kill" | "restart" | "rm" | "ps" | "logs"
        | "wait" | "rename" | "pause" | "unpause" | "attach" | "inspect" | "exec" | "top"
        | "stats" | "info" | "cp" | "export" | "commit" | "port" | "security") => (c, rest),
        "version" => {
            let mut out = io::stdout().lock();
            return Some(report(crate::engine_info::version(&mut out)));
        }
        berth_engine::monitor::SUBCOMMAND => {
            let root = crate::state_root(&g);
            let id = rest.first()?;
            let fd: i32 = rest.get(1)?.parse().ok()?;
            let code = berth_engine::monitor::main(&root, id, fd);
            return Some(ExitCode::from(code as u8));
        }
        _ => return None,
    };
    let root = crate::state_root(&g);
    let mut engine = match Engine::open(&root) {
        Ok(e) => e,
        Err(e) => return Some(report(Err(engine125(e)))),
    };
    if cmd == "inspect" && !all_containers(&mut engine, rest) {
        return None;
    }
    let mut out = io::stdout().lock();
    let r = match cmd {
        "run" => run(&mut engine, rest, &mut out),
        "create" => create_cmd(&mut engine, rest, &mut out),
        "start" => start(&mut engine, rest, &mut out),
        "stop" => each(&mut engine, rest, STOP, "stop", &mut out, |e, p, id| {
            let t = time_flag(p)?;
            e.stop(id, t).map_err(Failure::from)
        }),
        "restart" => each(&mut engine, rest, STOP, "restart", &mut out, |e, p, id| {
            let t = time_flag(p)?;
            e.stop(id, t)?;
            e.start(id, &exe()).map(drop).map_err(Failure::from)
        }),
        "kill" => each(&mut engine, rest, KILL, "kill", &mut out, |e, p, id| {
            let s = p.value("signal").unwrap_or("KILL");
            let Some(sig) = berth_runtime::signal::parse(s) else {
                return fail(1, format!("invalid signal: {s}"));
            };
            e.kill(id, sig).map_err(Failure::from)
        }),
        "rm" => each(&mut engine, rest, RM, "rm", &mut out, |e, p, id| {
            match e.remove(id, p.bool("force"), p.bool("volumes")) {
                // docker 28: `rm -f` of a container that is not there is no error.
                Err(EngineError::NoSuchContainer(_)) if p.bool("force") => Err(Failure {
                    code: 0,
                    msg: String::new(),
                    usage: false,
                }),
                r => r.map_err(Failure::from),
            }
        }),
        "pause" => each(&mut engine, rest, &[], "pause", &mut out, |e, _, id| {
            e.pause(id).map_err(Failure::from)
        }),
        "unpause" => each(&mut engine, rest, &[], "unpause", &mut out, |e, _, id| {
            e.unpause(id).map_err(Failure::from)
        }),
        "wait" => wait(&mut engine, rest, &mut out),
        "ps" => ps(&mut engine, rest, &mut out),
        "logs" => logs_cmd(&mut engine, rest, &mut out),
        "inspect" => inspect(&mut engine, rest, &mut out),
        "rename" => rename(&mut engine, rest),
        "attach" => attach_cmd(&mut engine, rest),
        "exec" => exec(&mut engine, rest),
        "top" => crate::engine_info::top(&mut engine, rest, &mut out),
        "stats" => crate::engine_info::stats(&mut engine, rest, &mut out),
        "info" => crate::engine_info::info(&mut engine, &mut out),
        "cp" => cp(&mut engine, rest, &mut out),
        "export" => export(&mut engine, rest, &mut out),
        "commit" => commit(&mut engine, rest, &mut out),
        "security" => crate::security::run(&mut engine, rest, &mut out),
        "container prune" => prune(&mut engine, rest, &mut out),
        "system df" => crate::engine_info::system_df(&mut engine, rest, &mut out),
        v if v.starts_with("volume ") => crate::volumes::run(&mut engine, v, rest, &mut out),
        v if v.starts_with("network ") => crate::networks::run(&mut engine, v, rest, &mut out),
        "port" => crate::networks::port(&mut engine, rest, &mut out),
        _ => return None,
    };
    let _ = out.flush();
    Some(report(r))
}

fn report(r: R) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) if f.msg.is_empty() => ExitCode::from(f.code),
        Err(f) if f.usage => {
            eprintln!("berth: {}\nSee 'berth --help'.", f.msg);
            ExitCode::from(f.code)
        }
        Err(f) => {
            eprintln!("Error: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

/// The running executable (re-executed as the monitor).
fn exe() -> PathBuf {
    PathBuf::from("/proc/self/exe")
}

fn all_containers(e: &mut Engine, argv: &[String]) -> bool {
    let Ok(p) = parse(argv, INSPECT, false) else {
        return false;
    };
    if p.value("type") == Some("image") {
        return false;
    }
    !p.args.is_empty() && p.args.iter().all(|a| e.db.find(a).is_ok())
}

const STOP: &[Flag] = &[
    flag("time", Some('t'), true),
    flag("timeout", None, true),
    flag("signal", Some('s'), true),
];
const KILL: &[Flag] = &[flag("signal", Some('s'), true)];
const RM: &[Flag] = &[
    flag("force", Some('f'), false),
    flag("volumes", Some('v'), false),
    flag("link", Some('l'), false),
];

fn time_flag(p: &Parsed) -> R<Option<i64>> {
    match p.value("time").or(p.value("timeout")) {
        Some(t) => match t.parse() {
            Ok(n) => Ok(Some(n)),
            Err(_) => usage(format!("invalid argument {t:?} for \"-t, --time\"")),
        },
        None => Ok(None),
    }
}

/// A command applied to each container argument; prints each as docker
/// does and fails (1) if any failed.
fn each(
    e: &mut Engine,
    argv: &[String],
    flags: &[Flag],
    what: &str,
    out: &mut dyn Write,
    f: impl Fn(&mut Engine, &Parsed, &str) -> R,
) -> R {
    let p = parse(argv, flags, false)?;
    if p.args.is_empty() {
        return usage(format!("\"{what}\" requires at least 1 argument"));
    }
    let mut failed = false;
    for a in &p.args {
        match f(e, &p, a) {
            Ok(()) => writeln!(out, "{a}")?,
            // Nothing to do and nothing to say (rm -f of a missing container).
            Err(x) if x.code == 0 && x.msg.is_empty() => {}
            Err(x) => {
                let _ = out.flush();
                eprintln!("Error: {}", x.msg);
                failed = true;
            }
        }
    }
    if failed {
        return fail(1, "");
    }
    Ok(())
}

const RUN: &[Flag] = &[
    flag("detach", Some('d'), false),
    flag("interactive", Some('i'), false),
    flag("tty", Some('t'), false),
    flag("rm", None, false),
    flag("name", None, true),
    flag("env", Some('e'), true),
    flag("env-file", None, true),
    flag("workdir", Some('w'), true),
    flag("user", Some('u'), true),
    flag("entrypoint", None, true),
    flag("volume", Some('v'), true),
    flag("mount", None, true),
    flag("tmpfs", None, true),
    flag("read-only", None, false),
    flag("hostname", Some('h'), true),
    flag("add-host", None, true),
    flag("group-add", None, true),
    flag("network", None, true),
    flag("net", None, true),
    flag("publish", Some('p'), true),
    flag("publish-all", Some('P'), false),
    flag("ip", None, true),
    flag("ip6", None, true),
    flag("mac-address", None, true),
    flag("network-alias", None, true),
    flag("net-alias", None, true),
    flag("dns", None, true),
    flag("dns-search", None, true),
    flag("dns-option", None, true),
    flag("dns-opt", None, true),
    flag("memory", Some('m'), true),
    flag("cpus", None, true),
    flag("pids-limit", None, true),
    flag("cpu-shares", Some('c'), true),
    flag("ulimit", None, true),
    flag("cap-add", None, true),
    flag("cap-drop", None, true),
    flag("privileged", None, false),
    flag("security-opt", None, true),
    flag("stop-signal", None, true),
    flag("stop-timeout", None, true),
    flag("label", Some('l'), true),
    flag("log-opt", None, true),
    flag("log-driver", None, true),
    flag("sig-proxy", None, false),
    flag("detach-keys", None, true),
    flag("init", None, false),
    flag("pull", None, true),
    flag("restart", None, true),
];

/// Flags to a `RunConfig`; the positionals are IMAGE [COMMAND [ARG...]].
fn run_config(p: &Parsed) -> R<RunConfig> {
    let Some((image, cmd)) = p.args.split_first() else {
        return usage("requires at least 1 argument");
    };
    if let Some(pull) = p.value("pull")
        && !matches!(pull, "always" | "missing" | "never")
    {
        return usage(format!(
            "invalid pull option: {pull:?}: must be one of \"always\", \"missing\" or \"never\""
        ));
    }
    if let Some(d) = p.value("log-driver")
        && d != "json-file"
    {
        return fail(
            125,
            format!("log driver {d:?} is not supported (json-file is)"),
        );
    }
    let mut c = RunConfig {
        image: image.clone(),
        cmd: cmd.to_vec(),
        tty: p.bool("tty"),
        open_stdin: p.bool("interactive"),
        auto_remove: p.bool("rm"),
        init: p.bool("init"),
        restart: p.value("restart").unwrap_or("no").to_string(),
        read_only: p.bool("read-only"),
        privileged: p.bool("privileged"),
        hostname: p.value("hostname").map(String::from),
        workdir: p.value("workdir").map(String::from),
        user: p.value("user").map(String::from),
        entrypoint: p.value("entrypoint").map(|e| {
            if e.is_empty() {
                vec![]
            } else {
                vec![e.to_string()]
            }
        }),
        network: p
            .value("network")
            .or(p.value("net"))
            .unwrap_or("bridge")
            .to_string(),
        publish: p.all("publish").to_vec(),
        publish_all: p.bool("publish-all"),
        ip: p.value("ip").map(String::from),
        ip6: p.value("ip6").map(String::from),
        mac_address: p.value("mac-address").map(String::from),
        network_aliases: [p.all("network-alias"), p.all("net-alias")].concat(),
        dns: p.all("dns").to_vec(),
        dns_search: p.all("dns-search").to_vec(),
        dns_options: [p.all("dns-option"), p.all("dns-opt")].concat(),
        cap_add: p.all("cap-add").to_vec(),
        cap_drop: p.all("cap-drop").to_vec(),
        stop_signal: p.value("stop-signal").map(String::from),
        add_hosts: p.all("add-host").to_vec(),
        group_add: p.all("group-add").to_vec(),
        log_max_file: 1,
        ..Default::default()
    };
    for f in p.all("env-file") {
        let data = std::fs::read_to_string(f).map_err(|e| Failure {
            code: 125,
            msg: format!("open {f}: {e}"),
            usage: false,
        })?;
        for l in data.lines() {
            let l = l.trim_start();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            c.env.push(env_entry(l)?);
        }
    }
    for e in p.all("env") {
        c.env.push(env_entry(e)?);
    }
    for l in p.all("label") {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        c.labels.push((k.to_string(), v.to_string()));
    }
    let bad = |e: EngineError| engine125(e);
    for v in p.all("volume") {
        c.mounts.push(config::parse_volume_flag(v).map_err(bad)?);
    }
    for m in p.all("mount") {
        c.mounts.push(config::parse_mount_flag(m).map_err(bad)?);
    }
    for t in p.all("tmpfs") {
        c.mounts.push(config::parse_tmpfs_flag(t).map_err(bad)?);
    }
    for h in &c.add_hosts {
        config::parse_add_host(h).map_err(bad)?;
    }
    if let Some(m) = p.value("memory") {
        c.memory = Some(config::parse_size(m).map_err(bad)?);
    }
    if let Some(v) = p.value("cpus") {
        c.nano_cpus = Some(config::parse_cpus(v).map_err(bad)?);
    }
    if let Some(v) = p.value("pids-limit") {
        c.pids_limit = Some(
            v.parse()
                .or_else(|_| usage(format!("invalid argument {v:?} for \"--pids-limit\"")))?,
        );
    }
    if let Some(v) = p.value("cpu-shares") {
        c.cpu_shares = Some(
            v.parse()
                .or_else(|_| usage(format!("invalid argument {v:?} for \"-c, --cpu-shares\"")))?,
        );
    }
    if let Some(v) = p.value("stop-timeout") {
        c.stop_timeout = Some(
            v.parse()
                .or_else(|_| usage(format!("invalid argument {v:?} for \"--stop-timeout\"")))?,
        );
    }
    for u in p.all("ulimit") {
        c.ulimits.push(config::parse_ulimit(u).map_err(bad)?);
    }
    for s in p.all("security-opt") {
        match s.split_once(['=', ':']) {
            None if s == "no-new-privileges" => c.no_new_privileges = true,
            Some(("no-new-privileges", v)) => c.no_new_privileges = v != "false",
            Some(("seccomp", "unconfined")) => c.seccomp = Some("unconfined".into()),
            Some(("seccomp", f)) => {
                let data = std::fs::read_to_string(f).map_err(|e| Failure {
                    code: 125,
                    msg: format!("opening seccomp profile ({f}) failed: {e}"),
                    usage: false,
                })?;
                berth_engine::seccomp::parse_profile(&data).map_err(bad)?;
                c.seccomp = Some(data);
            }
            _ => return fail(125, format!("invalid --security-opt: {s:?}")),
        }
    }
    for o in p.all("log-opt") {
        match o.split_once('=') {
            Some(("max-size", v)) => c.log_max_size = config::parse_size(v).map_err(bad)? as u64,
            Some(("max-file", v)) => {
                c.log_max_file = match v.parse() {
                    Ok(n) if n >= 1 => n,
                    _ => return fail(125, format!("invalid value for max-file: {v}")),
                }
            }
            _ => {
                return fail(
                    125,
                    format!("unknown log opt {o:?} for json-file log driver"),
                );
            }
        }
    }
    c.validate().map_err(engine125)?;
    Ok(c)
}

/// `-e KEY=VALUE` as is; `-e KEY` takes KEY from our environment (or
/// drops it when unset), as docker does.
fn env_entry(e: &str) -> R<String> {
    if e.is_empty() || e.starts_with('=') {
        return fail(125, format!("invalid environment variable: {e:?}"));
    }
    if e.contains('=') {
        return Ok(e.to_string());
    }
    Ok(match std::env::var(e) {
        Ok(v) => format!("{e}={v}"),
        Err(_) => e.to_string(),
    })
}

fn create_from_flags(e: &mut Engine, p: &Parsed, starting: bool) -> R<ContainerRow> {
    let cfg = run_config(p)?;
    // --pull: missing (docker's default) pulls an image that is not here.
    let policy = p.value("pull").unwrap_or("missing");
    if policy != "never" {
        let store = e.images().map_err(engine125)?;
        let here = store.get(&cfg.image).is_ok();
        if policy == "always" || !here {
            if !here {
                eprintln!("Unable to find image '{}' locally", cfg.image);
            }
            crate::registry::pull_for_run(&store, &cfg.image).map_err(|f| match f {
                crate::Fail::Usage(m) | crate::Fail::Cmd(m) => Failure {
                    code: 125,
                    msg: m,
                    usage: false,
                },
            })?;
        }
    }
    e.create(CreateRequest {
        name: p.value("name").map(String::from),
        config: cfg,
        keep_mounted: starting,
    })
    .map_err(engine125)
}

/// `run`/`create` flags: they end at the image; what follows is the command.
fn parse_run(argv: &[String]) -> R<Parsed> {
    let split = split_at_image(argv, RUN);
    let mut p = parse(&argv[..split], RUN, false)?;
    p.args.extend(argv[split..].iter().cloned());
    Ok(p)
}

fn create_cmd(e: &mut Engine, argv: &[String], out: &mut dyn Write) -> R {
    let p = parse_run(argv)?;
    let row = create_from_flags(e, &p, false)?;
    writeln!(out, "{}", row.id)?;
    Ok(())
}

fn run(e: &mut Engine, argv: &[String], out: &mut dyn Write) -> R {
    let p = parse_run(argv)?;
    berth_runtime::timing::phase("cli: parsed");
    let detach = p.bool("detach");
    // docker: -i and -t together need a terminal on stdin.
    // SAFETY: isatty only inspects the descriptor.
    if p.bool("interactive") && p.bool("tty") && !detach && unsafe { libc::isatty(0) } == 0 {
        return fail(1, "the input device is not a TTY");
    }
    let row = create_from_flags(e, &p, true)?;
    berth_runtime::timing::phase("cli: created");
    let conn = e.start(&row.id, &exe()).map_err(engine125)?;
    berth_runtime::timing::phase("cli: started");
    if detach {
        writeln!(out, "{}", row.id)?;
        return Ok(());
    }
    let Some(conn) = conn else {
        return fail(125, "container did not start");
    };
    let cfg = row_config(&row);
    let keys = detach_keys(p.value("detach-keys"))?;
    let code = stream(
        e,
        &row.id,
        conn,
        &cfg,
        p.value("sig-proxy") != Some("false"),
        &keys,
    )?;
    berth_runtime::timing::phase("cli: container done");
    exit_with(code)
}

fn exit_with(code: i32) -> R {
    if code == 0 {
        Ok(())
    } else {
        fail((code & 0xff) as u8, "")
    }
}

/// Index of the first positional (the image) of a `run` command line.
fn split_at_image(argv: &[String], flags: &[Flag]) -> usize {
    let mut i = 0;
    while i < argv.len() {
        let a = &argv[i];
        if a == "--" {
            return i + 1;
        }
        if let Some(long) = a.strip_prefix("--") {
            if !long.contains('=') && flags.iter().any(|f| f.long == long && f.value) {
                i += 1;
            }
        } else if a.len() > 1 && a.starts_with('-') {
            let chars: Vec<char> = a[1..].chars().collect();
            for (j, c) in chars.iter().enumerate() {
                if flags.iter().any(|f| f.short == Some(*c) && f.value) {
                    if j + 1 == chars.len() {
                        i += 1;
                    }
                    break;
                }
            }
        } else {
            return i;
        }
        i += 1;
    }
    argv.len()
}

const START: &[Flag] = &[
    flag("attach", Some('a'), false),
    flag("interactive", Some('i'), false),
    flag("detach-keys", None, true),
];

fn start(e: &mut Engine, argv: &[String], out: &mut dyn Write) -> R {
    let p = parse(argv, START, false)?;
    if p.args.is_empty() {
        return usage("\"start\" requires at least 1 argument");
    }
    let attach = p.bool("attach") || p.bool("interactive");
    if attach && p.args.len() > 1 {
        return fail(1, "you cannot start and attach multiple containers at once");
    }
    let mut failed = false;
    for a in &p.args {
        match e.start(a, &exe()) {
            Ok(conn) if attach => {
                let row = e.get(a)?;
                let cfg = row_config(&row);
                let Some(conn) = conn else {
                    return fail(1, format!("container {a} is already running"));
                };
                let keys = detach_keys(p.value("detach-keys"))?;
                let code = stream(e, &row.id, conn, &cfg, true, &keys)?;
                return exit_with(code);
            }
            Ok(_) => writeln!(out, "{a}")?,
            Err(x) => {
                eprintln!("Error: {x}");
                failed = true;
            }
        }
    }
    if failed {
        return fail(1, "");
    }
    Ok(())
}

fn attach_cmd(e: &mut Engine, argv: &[String]) -> R {
    let p = parse(
        argv,
        &[
            flag("no-stdin", None, false),
            flag("sig-proxy", None, false),
            flag("detach-keys", None, true),
        ],
        false,
    )?;
    let [key] = p.args.as_slice() else {
        return usage("\"attach\" requires exactly 1 argument");
    };
    let row = e.get(key)?;
    if row.state != db::RUNNING {
        return fail(
            1,
            "You cannot attach to a stopped container, start it first",
        );
    }
    let conn = e.attach(&row.id)?;
    let mut cfg = row_config(&row);
    if p.bool("no-stdin") {
        cfg.open_stdin = false;
    }
    let keys = detach_keys(p.value("detach-keys"))?;
    let code = stream(
        e,
        &row.id,
        conn,
        &cfg,
        p.value("sig-proxy") != Some("false"),
        &keys,
    )?;
    exit_with(code)
}

/// `CONTAINER:PATH` (a path alone is the host's).
fn container_path(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('/') || s.starts_with('.') {
        return None;
    }
    s.split_once(':')
}

fn cp(e: &mut Engine, argv: &[String], out: &mut dyn Write) -> R {
    let p = parse(
        argv,
        &[
            flag("archive", Some('a'), false),
            flag("follow-link", Some('L'), false),
            flag("quiet", Some('q'), false),
        ],
        false,
    )?;
    let [src, dst] = p.args.as_slice() else {
        return usage("\"cp\" requires exactly 2 arguments");
    };
    match (container_path(src), container_path(dst)) {
        (Some((c, path)), None) if dst == "-" => Ok(e.copy_from_tar(c, path, out)?),
        (Some((c, path)), None) => Ok(e.copy_from(c, path, std::path::Path::new(dst))?),
        (None, Some((c, path))) => Ok(e.copy_to(c, std::path::Path::new(src), path)?),
        (Some(_), Some(_)) => fail(1, "copying between containers is not supported"),
        (None, None) => fail(
            1,
            "must specify at least one container source (CONTAINER:PATH)",
        ),
    }
}

fn export(e: &mut Engine, argv: &[String], out: &mut dyn Write) -> R {
    let p = parse(argv, &[flag("output", Some('o'), true)], false)?;
    let [key] = p.args.as_slice() else {
        return usage("\"export\" requires exactly 1 argument");
    };
    match p.value("output") {
        Some(f) => {
            let mut file = std::fs::File::create(f)?;
            e.export(key, &mut file)?;
        }
        None => {
            if sys::isatty(1) {
                return fail(
                    1,
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect",
                );
            }
            e.export(key, out)?;
        }
    }
    Ok(())
}

/// `commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]`: prints the new
/// image's id.
fn commit(e: &mut Engine, argv: &[String], out: &mut dyn Write) -> R {
    let p = parse(
        argv,
        &[
            flag("author", Some('a'), true),
            flag("message", Some('m'), true),
            flag("change", Some('c'), true),
            flag("pause", Some('p'), false),
        ],
        false,
    )?;
    let (key, reference) = match p.args.as_slice() {
        [k] => (k, None),
        [k, r] => {
            let mut r = berth_image::Reference::parse_normalized(r)
                .map_err(|err| Failure::from(berth_engine::Error::from(err)))?;
            if r.digest().is_some() {
                return usage(format!(
                    "invalid reference format: {} has a digest",
                    p.args[1]
                ));
            }
            if r.tag().is_none() {
                r = r
                    .with_tag(berth_image::reference::DEFAULT_TAG)
                    .map_err(|err| Failure::from(berth_engine::Error::from(err)))?;
            }
            (k, Some(r))
        }
        _ => return usage("\"commit\" requires at least 1 and at most 2 arguments"),
    };
    let req = berth_engine::commit::CommitRequest {
        reference,
        author: p.value("author").map(String::from),
        message: p.value("message").map(String::from),
        changes: p.all("change").to_vec(),
        // docker's --pause defaults to true; --pause=false turns it off.
        pause: !p.has("pause") || p.bool("pause"),
    };
    let rec = e.commit(key, &req)?;
    writeln!(out, "{}", rec.id)?;
    Ok(())
}

const EXEC: &[Flag] = &[
    flag("detach", Some('d'), false),
    flag("interactive", Some('i'), false),
    flag("tty", Some('t'), false),
    flag("env", Some('e'), true),
    flag("env-file", None, true),
    flag("user", Some('u'), true),
    flag("workdir", Some('w'), true),
    flag("privileged", None, false),
    flag("detach-keys", None, true),
];

/// `exec`: the process is our child; its status is ours (126/127 when it
/// cannot run, as docker's).
fn exec(e: &mut Engine, argv: &[String]) -> R {
    use std::os::fd::AsRawFd;
    let split = split_at_image(argv, EXEC);
    let mut p = parse(&argv[..split], EXEC, false)?;
    p.args.extend(argv[split..].iter().cloned());
    let Some((key, cmd)) = p.args.split_first() else {
        return usage("\"exec\" requires at least 2 arguments");
    };
    if cmd.is_empty() {
        return usage("\"exec\" requires at least 2 arguments");
    }
    let mut env = vec![];
    for f in p.all("env-file") {
        let data = std::fs::read_to_string(f).or_else(|x| fail(1, format!("open {f}: {x}")))?;
        for l in data.lines().map(str::trim_start) {
            if !l.is_empty() && !l.starts_with('#') {
                env.push(env_entry(l)?);
            }
        }
    }
    for x in p.all("env") {
        env.push(env_entry(x)?);
    }
    let tty = p.bool("tty");
    if e.exec_needs_sealed_runtime(key, p.bool("privileged"))?
        && !berth_runtime::exeseal::exe_is_sealed()
    {
        // The container could reach our binary before the exec helper takes
        // over (CVE-2019-5736): run again from a read-only view of it.
        let x = berth_runtime::exeseal::reexec_sealed();
        return fail(1, format!("re-executing from a sealed copy of berth: {x}"));
    }
    let req = berth_engine::ExecRequest {
        cmd: cmd.to_vec(),
        env,
        user: p.value("user").map(String::from),
        workdir: p.value("workdir").map(String::from),
        tty,
        privileged: p.bool("privileged"),
    };
    let detach = p.bool("detach");
    let null = sys::open(std::path::Path::new("/dev/null"), libc::O_RDWR, 0)?;
    if detach {
        for fd in 0..3 {
            sys::dup2(null.as_raw_fd(), fd)?;
        }
    } else if !p.bool("interactive") {
        sys::dup2(null.as_raw_fd(), 0)?;
    }
    let (console, ours) = if tty && !detach {
        let (a, b) = UnixStream::pair()?;
        (Some(std::os::fd::OwnedFd::from(b)), Some(a))
    } else {
        (None, None)
    };
    if !detach {
        berth_runtime::foreground::prepare();
    }
    let (_, pid) = match e.exec(key, req, console) {
        Ok(r) => r,
        Err(EngineError::Runtime(x)) => {
            let m = x.to_string();
            let code = if m.contains("executable file not found") || m.contains("No such file") {
                127
            } else if m.contains("ermission denied") || m.contains("is a directory") {
                126
            } else {
                1
            };
            return fail(code, m);
        }
        Err(x) => return Err(x.into()),
    };
    if detach {
        return Ok(());
    }
    let master = match &ours {
        Some(s) => Some(
            berth_runtime::foreground::recv_master(&std::os::fd::OwnedFd::from(s.try_clone()?))
                .or_else(|x| fail(1, x.to_string()))?,
        ),
        None => None,
    };
    if master.is_some() && !p.bool("interactive") {
        sys::dup2(null.as_raw_fd(), 0)?;
    }
    let code = berth_runtime::foreground::wait(pid, master, None);
    exit_with(code)
}

fn stdin_fd() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

/// `--detach-keys` (`berth_engine::attach::parse_detach_keys`).
fn detach_keys(spec: Option<&str>) -> R<Vec<u8>> {
    attach::parse_detach_keys(spec).or_else(|e| match e {
        EngineError::Invalid { reason, .. } => fail(1, reason),
        e => fail(1, e.to_string()),
    })
}

/// Copies the container's output to ours and our stdin to it until it
/// exits; returns its exit code.
fn stream(
    e: &mut Engine,
    id: &str,
    conn: UnixStream,
    cfg: &RunConfig,
    proxy: bool,
    detach: &[u8],
) -> R<i32> {
    use std::io::Read;
    let tty_in = cfg.tty && cfg.open_stdin && sys::isatty(0);
    let saved = if tty_in {
        sys::make_raw(stdin_fd()).ok()
    } else {
        None
    };
    let restore = |saved: &Option<libc::termios>| {
        if let Some(t) = saved {
            sys::restore_termios(stdin_fd(), t);
        }
    };
    sys::block_all_signals();
    let sfd = sys::signalfd_all()?;
    let mut w = &conn;
    if cfg.tty
        && let Ok((r, c)) = sys::get_winsize(stdin_fd())
    {
        let _ = attach::write_frame(&mut w, attach::RESIZE, format!("{r} {c}").as_bytes());
    }
    let mut stdin_open = cfg.open_stdin;
    let mut dec = attach::Decoder::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut code = None;
    // How much of the detach sequence was just typed.
    let mut matched = 0usize;
    let mut stdout = io::stdout().lock();
    let mut stderr = io::stderr().lock();
    'outer: loop {
        let mut fds = vec![sfd.as_fd(), conn.as_fd()];
        if stdin_open {
            fds.push(stdin_fd());
        }
        let ready = match sys::poll_in(&fds, -1) {
            Ok(r) => r,
            Err(_) => continue,
        };
        if ready[0]
            && let Ok(sig) = sys::read_signal(sfd.as_fd())
        {
            match sig {
                libc::SIGCHLD | libc::SIGPIPE | libc::SIGURG => {}
                libc::SIGWINCH => {
                    if let Ok((r, c)) = sys::get_winsize(stdin_fd()) {
                        let _ = attach::write_frame(
                            &mut w,
                            attach::RESIZE,
                            format!("{r} {c}").as_bytes(),
                        );
                    }
                }
                s if proxy => {
                    let _ = attach::write_frame(&mut w, attach::SIGNAL, s.to_string().as_bytes());
                }
                _ => {}
            }
        }
        if ready[1] {
            let n = (&conn).read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            dec.push(&buf[..n]);
            while let Ok(Some((kind, data))) = dec.next_frame() {
                match kind {
                    attach::STDOUT => {
                        let _ = stdout.write_all(&data);
                        let _ = stdout.flush();
                    }
                    attach::STDERR => {
                        let _ = stderr.write_all(&data);
                    }
                    attach::EXITED => {
                        code = String::from_utf8_lossy(&data).parse().ok();
                        break 'outer;
                    }
                    _ => {}
                }
            }
        }
        if stdin_open && ready.get(2) == Some(&true) {
            match sys::read(stdin_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    if tty_in {
                        for &b in &buf[..n] {
                            matched = if detach.get(matched) == Some(&b) {
                                matched + 1
                            } else {
                                usize::from(detach.first() == Some(&b))
                            };
                            if !detach.is_empty() && matched == detach.len() {
                                restore(&saved);
                                eprintln!("\r\nread escape sequence\r");
                                return Ok(0);
                            }
                        }
                    }
                    let _ = attach::write_frame(&mut w, attach::STDIN, &buf[..n]);
                }
                _ => {
                    stdin_open = false;
                    let _ = attach::write_frame(&mut w, attach::STDIN_CLOSE, b"");
                }
            }
        }
    }
    restore(&saved);
    let _ = stdout.flush();
    match code {
        Some(c) => Ok(c),
        // The monitor went away: the database has the truth.
        None => Ok(e.wait(id, None)?.unwrap_or(255)),
    }
}

fn wait(e: &mut Engine, argv: &[String], out: &mut dyn Write) -> R {
    let p = parse(argv, &[flag("condition", None, true)], false)?;
    if p.args.is_empty() {
        return usage("\"wait\" requires at least 1 argument");
    }
    let mut failed = false;
    for a in &p.args {
        match e.wait(a, None) {
            Ok(code) => writeln!(out, "{}", code.unwrap_or(255))?,
            Err(x) => {
                eprintln!("Error: {x}");
                failed = true;
            }
        }
    }
    if failed {
        return fail(1, "");
    }
    Ok(())
}

fn rename(e: &mut Engine, argv: &[String]) -> R {
    let p = parse(argv, &[], false)?;
    let [old, new] = p.args.as_slice() else {
        return usage("\"rename\" requires exactly 2 arguments");
    };
    e.rename(old, new)?;
    Ok(())
}

fn prune(e: &mut Engine, argv: &[String], out: &mut dyn Write) -> R {
    let p = parse(
        argv,
        &[flag("force", Some('f'), false), flag("filter", None, true)],
        false,
    )?;
    if !p.bool("force") && !confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(());
    }
    let (removed, bytes) = e.prune()?;
    writeln!(out, "Deleted Containers:")?;
    for id in &removed {
        writeln!(out, "{id}")?;
    }
    writeln!(out, "\nTotal reclaimed space: {}", fmt::human_size(bytes))?;
    Ok(())
}

/// docker's `Are you sure you want to continue? [y/N]`.
pub fn confirm(warning: &str) -> R<bool> {
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    let mut s = String::new();
    io::stdin().read_line(&mut s)?;
    Ok(matches!(s.trim(), "y" | "Y" | "yes"))
}

// ---- ps -------------------------------------------------------------

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn ellipsis(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

const PS: &[Flag] = &[
    flag("all", Some('a'), false),
    flag("quiet", Some('q'), false),
    flag("last", Some('n'), true),
    flag("latest", Some('l'), false),
    flag("filter", Some('f'), true),
    flag("format", None, true),
    flag("no-trunc", None, false),
    flag("size", Some('s'), false),
];

fn ps(e: &mut Engine, argv: &[String], out: &mut dyn Write) -> R {
    let p = parse(argv, PS, false)?;
    if !p.args.is_empty() {
        return usage("\"ps\" accepts no arguments");
    }
    let no_trunc = p.bool("no-trunc");
    let with_size = p.bool("size");
    let mut last: Option<usize> = match p.value("last") {
        Some(n) => Some(
            n.parse()
                .or_else(|_| usage(format!("invalid argument {n:?} for \"-n, --last\"")))?,
        ),
        None => None,
    };
    if p.bool("latest") {
        last = Some(1);
    }
    let all = p.bool("all") || last.is_some();
    let kept = berth_engine::inspect::select_containers(e, all, p.all("filter"), last)?;
    if p.bool("quiet") {
        for r in &kept {
            writeln!(out, "{}", if no_trunc { &r.id } else { &r.id[..12] })?;
        }
        return Ok(());
    }
    let values: Vec<Value> = kept
        .iter()
        .map(|r| {
            let cmd = command_of(e, r);
            let cmd = if no_trunc { cmd } else { ellipsis(&cmd, 20) };
            let labels = labels_of(e, r);
            let label_str = labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",");
            let created = fmt::parse_rfc3339(&r.created_at).unwrap_or(0);
            let cfg = row_config(r);
            json!({
                "ID": if no_trunc { r.id.clone() } else { r.id[..12].to_string() },
                "Image": r.image,
                "Command": format!("\"{cmd}\""),
                "CreatedAt": fmt::go_time(created),
                "RunningFor": fmt::human_ago(Some(&r.created_at), now_secs()),
                "Ports": berth_engine::inspect::ports_text(e, r),
                "State": r.state,
                "Status": status_text(r),
                "Size": if with_size {
                    let rw = e.container_size(&r.id);
                    let image = e.images().ok().and_then(|s| s.get(&r.image_id).ok()).map_or(0, |i| i.size);
                    format!("{} (virtual {})", fmt::human_size(rw), fmt::human_size(rw + image))
                } else {
                    String::new()
                },
                "Names": r.name,
                "Labels": label_str,
                "Mounts": cfg.mounts.iter().map(|m| if m.kind == "volume" { m.source.clone() } else { m.target.clone() }).collect::<Vec<_>>().join(","),
                "Networks": berth_engine::inspect::networks_text(e, r),
                "LocalVolumes": cfg.mounts.iter().filter(|m| m.kind == "volume").count().to_string(),
            })
        })
        .collect();
    let default = if with_size {
        "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}"
    } else {
        "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    };
    let header = json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
        "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS",
        "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES",
    });
    let format = p
        .value("format")
        .filter(|f| !f.is_empty())
        .unwrap_or("table");
    crate::write_formatted(out, format, default, &header, &values).map_err(|f| match f {
        crate::Fail::Usage(m) => Failure {
            code: 125,
            msg: m,
            usage: true,
        },
        crate::Fail::Cmd(m) => Failure {
            code: 1,
            msg: m,
            usage: false,
        },
    })
}

// ---- logs -----------------------------------------------------------

const LOGS: &[Flag] = &[
    flag("follow", Some('f'), false),
    flag("tail", Some('n'), true),
    flag("since", None, true),
    flag("until", None, true),
    flag("timestamps", Some('t'), false),
    flag("details", None, false),
];

/// `--since`: RFC 3339, unix seconds, or a duration (`10m`, `1h30m`).
fn parse_since(s: &str) -> R<f64> {
    if let Some(t) = fmt::parse_rfc3339(s) {
        return Ok(t as f64);
    }
    if let Ok(t) = s.parse::<f64>() {
        return Ok(t);
    }
    let mut total = 0f64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num
            .parse()
            .or_else(|_| fail(1, format!("invalid value for \"since\": {s}")))?;
        total += n * match c {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            _ => return fail(1, format!("invalid value for \"since\": {s}")),
        };
        num.clear();
    }
    if !num.is_empty() || total == 0.0 {
        return fail(1, format!("invalid value for \"since\": {s}"));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    Ok(now - total)
}

fn print_record(rec: &logs::Record, ts: bool) {
    let line = if ts {
        format!("{} {}", rec.time, rec.log)
    } else {
        rec.log.clone()
    };
    if rec.stream == "stderr" {
        let mut e = io::stderr().lock();
        let _ = e.write_all(line.as_bytes());
    } else {
        let mut o = io::stdout().lock();
        let _ = o.write_all(line.as_bytes());
        let _ = o.flush();
    }
}

fn logs_cmd(e: &mut Engine, argv: &[String], _out: &mut dyn Write) -> R {
    let p = parse(argv, LOGS, false)?;
    let [key] = p.args.as_slice() else {
        return usage("\"logs\" requires exactly 1 argument");
    };
    let since = p.value("since").map(parse_since).transpose()?;
    let until = p.value("until").map(parse_since).transpose()?;
    let tail: Option<usize> = match p.value("tail") {
        None | Some("all") => None,
        Some(n) => Some(
            n.parse()
                .or_else(|_| fail(1, format!("invalid value for \"tail\": {n}")))?,
        ),
    };
    let ts = p.bool("timestamps");
    let opts = logs::LogOptions {
        since,
        until,
        tail,
        follow: p.bool("follow"),
    };
    e.logs(key, &opts, &mut |r| {
        print_record(r, ts);
        true
    })?;
    Ok(())
}

// ---- inspect --------------------------------------------------------

const INSPECT: &[Flag] = &[
    flag("format", Some('f'), true),
    flag("size", Some('s'), false),
    flag("type", None, true),
];

fn inspect(e: &mut Engine, argv: &[String], out: &mut dyn Write) -> R {
    let p = parse(argv, INSPECT, false)?;
    let mut values = vec![];
    for a in &p.args {
        let r = e.get(a)?;
        values.push(berth_engine::inspect::container_json(e, &r));
    }
    match p.value("format").filter(|f| !f.is_empty()) {
        Some("json") => {
            for v in &values {
                writeln!(out, "{v}")?;
            }
        }
        Some(f) => {
            let t = crate::parse_template(f).map_err(|_| Failure {
                code: 1,
                msg: "template parsing error".into(),
                usage: false,
            })?;
            for v in &values {
                let s = t.execute(v, false).map_err(|x| Failure {
                    code: 1,
                    msg: x.0,
                    usage: false,
                })?;
                writeln!(out, "{s}")?;
            }
        }
        None => {
            let s = serde_json::to_string_pretty(&values).unwrap_or_default();
            writeln!(out, "{s}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_key_specs() {
        assert_eq!(detach_keys(None).ok(), Some(vec![0x10, 0x11]));
        assert_eq!(detach_keys(Some("ctrl-a,x")).ok(), Some(vec![1, b'x']));
        assert!(detach_keys(Some("ctrl-")).is_err());
        assert!(detach_keys(Some("ctrl-ab")).is_err());
        let argv: Vec<String> = ["-d", "--name", "x", "-e", "A=1", "img", "sh", "-c", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(split_at_image(&argv, RUN), 5);
    }
}

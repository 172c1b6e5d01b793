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

use berth_engine::config::{self, RunConfig};
use berth_engine::db::{self, ContainerRow};
use berth_engine::inspect::labels_of;
use berth_engine::{
    CreateRequest, Engine, Error as EngineError, attach, logs, row_config, row_spec,
};
use berth_runtime::sys;
use serde_json::{Value, json};

use crate::args::{Parsed, Usage};
use crate::fmt;

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

impl From<crate::Fail> for Failure {
    fn from(f: crate::Fail) -> Failure {
        match f {
            crate::Fail::Usage(msg) => Failure {
                code: 125,
                msg,
                usage: true,
            },
            crate::Fail::Cmd(msg) => Failure {
                code: 1,
                msg,
                usage: false,
            },
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
pub fn engine125(e: EngineError) -> Failure {
    let mut f = Failure::from(e);
    if f.code == 1 {
        f.code = 125;
    }
    f
}

/// The running executable (re-executed as the monitor).
fn exe() -> PathBuf {
    PathBuf::from("/proc/self/exe")
}

pub fn stop(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    each(e, p, "stop", out, |e, p, id| {
        let t = time_flag(p)?;
        e.stop(id, t).map_err(Failure::from)
    })
}

pub fn restart(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    each(e, p, "restart", out, |e, p, id| {
        let t = time_flag(p)?;
        e.restart(id, t, &exe()).map_err(Failure::from)
    })
}

pub fn kill(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    each(e, p, "kill", out, |e, p, id| {
        let s = p.value("signal").unwrap_or("KILL");
        let Some(sig) = berth_runtime::signal::parse(s) else {
            return fail(1, format!("invalid signal: {s}"));
        };
        e.kill(id, sig).map_err(Failure::from)
    })
}

pub fn rm(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    each(e, p, "rm", out, |e, p, id| {
        match e.remove(id, p.bool("force"), p.bool("volumes")) {
            // docker 28: `rm -f` of a container that is not there is no error.
            Err(EngineError::NoSuchContainer(_)) if p.bool("force") => Err(Failure {
                code: 0,
                msg: String::new(),
                usage: false,
            }),
            r => r.map_err(Failure::from),
        }
    })
}

pub fn pause(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    each(e, p, "pause", out, |e, _, id| {
        e.pause(id).map_err(Failure::from)
    })
}

pub fn unpause(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    each(e, p, "unpause", out, |e, _, id| {
        e.unpause(id).map_err(Failure::from)
    })
}

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
    p: &Parsed,
    what: &str,
    out: &mut dyn Write,
    f: impl Fn(&mut Engine, &Parsed, &str) -> R,
) -> R {
    if p.args.is_empty() {
        return usage(format!("\"{what}\" requires at least 1 argument"));
    }
    let mut failed = false;
    for a in &p.args {
        match f(e, p, a) {
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

/// `--health-*` and `--no-healthcheck` as docker's CLI reads them: None when none is given
/// (the image's HEALTHCHECK applies), `["NONE"]` for `--no-healthcheck`.
fn health_flags(p: &Parsed) -> R<Option<berth_engine::health::HealthConfig>> {
    use berth_engine::health::{HealthConfig, parse_duration};
    let durations = [
        "health-interval",
        "health-timeout",
        "health-start-period",
        "health-start-interval",
    ];
    let given =
        p.has("health-cmd") || p.has("health-retries") || durations.iter().any(|d| p.has(d));
    if p.bool("no-healthcheck") {
        if given {
            return usage("--no-healthcheck conflicts with --health-* options");
        }
        return Ok(Some(HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        }));
    }
    if !given {
        return Ok(None);
    }
    let mut n = [0i64; 4];
    for (i, d) in durations.iter().enumerate() {
        if let Some(v) = p.value(d) {
            let parsed = parse_duration(v).or_else(|_| {
                usage(format!(
                    "invalid argument {v:?} for \"--{d}\" flag: time: invalid duration {v:?}"
                ))
            })?;
            n[i] = i64::try_from(parsed.as_nanos())
                .or_else(|_| usage(format!("--{d} {v}: too long")))?;
        }
    }
    let retries = match p.value("health-retries") {
        Some(v) => v.parse::<i64>().or_else(|_| {
            usage(format!(
                "invalid argument {v:?} for \"--health-retries\" flag"
            ))
        })?,
        None => 0,
    };
    if retries < 0 {
        return usage("--health-retries cannot be negative");
    }
    Ok(Some(HealthConfig {
        test: p
            .value("health-cmd")
            .filter(|c| !c.is_empty())
            .map(|c| vec!["CMD-SHELL".into(), c.to_string()])
            .unwrap_or_default(),
        interval: n[0],
        timeout: n[1],
        start_period: n[2],
        start_interval: n[3],
        retries,
    }))
}

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
        // docker's StdinOnce: an attached `run -i` (and `create -i`, started
        // with `start -ai`) closes the container's stdin when its client's
        // input ends; `run -d -i` keeps it open for later attaches.
        stdin_once: p.bool("interactive") && !p.bool("detach"),
        auto_remove: p.bool("rm"),
        init: p.bool("init"),
        restart: p.value("restart").unwrap_or("no").to_string(),
        read_only: p.bool("read-only"),
        privileged: p.bool("privileged"),
        userns: p.value("userns").unwrap_or_default().to_string(),
        uid_maps: p.all("uidmap").to_vec(),
        gid_maps: p.all("gidmap").to_vec(),
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
    for l in key_value_lines(p.all("env-file"))? {
        c.env.push(env_entry(&l)?);
    }
    for e in p.all("env") {
        c.env.push(env_entry(e)?);
    }
    // docker's order: the files' labels first, then --label (a later one wins).
    let from_files = key_value_lines(p.all("label-file"))?;
    let file_labels = from_files.iter().map(|l| l.trim_end());
    for l in file_labels.chain(p.all("label").iter().map(String::as_str)) {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        c.labels.push((k.to_string(), v.to_string()));
    }
    let bad = |e: EngineError| engine125(e);
    for v in p.all("volume") {
        let m = config::parse_volume_flag(&absolute_bind(v)?).map_err(bad)?;
        // docker 23+: a `-v` bind of a missing host path creates the
        // directory (`--mount` keeps refusing it).
        let src = std::path::Path::new(&m.source);
        if m.kind == "bind" && !src.exists() {
            std::fs::create_dir_all(src).or_else(|x| {
                fail(
                    125,
                    format!("error while creating mount source path '{}': {x}", m.source),
                )
            })?;
        }
        c.mounts.push(m);
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
    crate::ops::limit_flags(p, &mut c)?;
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
    c.healthcheck = health_flags(p)?;
    c.pid_mode = p.value("pid").unwrap_or_default().to_string();
    c.ipc_mode = p.value("ipc").unwrap_or_default().to_string();
    c.uts_mode = p.value("uts").unwrap_or_default().to_string();
    c.domainname = p.value("domainname").map(String::from);
    if let Some(v) = p.value("shm-size") {
        c.shm_size = Some(config::parse_size(v).map_err(bad)?);
    }
    if let Some(v) = p.value("oom-score-adj") {
        c.oom_score_adj = Some(
            v.parse()
                .or_else(|_| usage(format!("invalid argument {v:?} for \"--oom-score-adj\"")))?,
        );
    }
    for s in p.all("sysctl") {
        let Some((k, v)) = s.split_once('=') else {
            return usage(format!(
                "invalid argument {s:?} for \"--sysctl\" flag: sysctl '{s}' is not allowed"
            ));
        };
        if !config::sysctl_whitelisted(k) {
            return usage(format!(
                "invalid argument {s:?} for \"--sysctl\" flag: sysctl '{s}' is not allowed"
            ));
        }
        c.sysctls.insert(k.to_string(), v.to_string());
    }
    c.expose = p.all("expose").to_vec();
    c.volumes_from = p.all("volumes-from").to_vec();
    c.cgroupns_mode = p.value("cgroupns").unwrap_or_default().to_string();
    if let Some(v) = p.value("memory-reservation") {
        c.memory_reservation = Some(config::parse_size(v).map_err(bad)?);
    }
    if let Some(v) = p.value("memory-swappiness") {
        c.memory_swappiness = Some(v.parse().or_else(|_| {
            usage(format!(
                "invalid argument {v:?} for \"--memory-swappiness\""
            ))
        })?)
        .filter(|s| *s != -1);
    }
    c.oom_kill_disable = p.bool("oom-kill-disable");
    c.cpuset_mems = p
        .value("cpuset-mems")
        .filter(|v| !v.is_empty())
        .map(String::from);
    c.cgroup_parent = p
        .value("cgroup-parent")
        .filter(|v| !v.is_empty())
        .map(String::from);
    if let Some(pl) = p.value("platform").filter(|v| !v.is_empty()) {
        let want: berth_image::Platform = pl.parse().or_else(|e| {
            usage(format!(
                "invalid argument {pl:?} for \"--platform\" flag: {e}"
            ))
        })?;
        let host = berth_image::Platform::host();
        if want.normalized() != host.normalized() {
            return fail(
                125,
                format!(
                    "--platform {pl} is not supported: berth runs containers of the host's platform ({}/{}) only, without emulation",
                    host.os, host.architecture
                ),
            );
        }
    }
    for a in p.all("annotation") {
        let (k, v) = a.split_once('=').unwrap_or((a, ""));
        c.annotations.insert(k.to_string(), v.to_string());
    }
    for o in p.all("storage-opt") {
        let Some((k, v)) = o.split_once('=') else {
            return usage(format!(
                "invalid argument {o:?} for \"--storage-opt\" flag: invalid storage option"
            ));
        };
        c.storage_opt.insert(k.to_string(), v.to_string());
    }
    for l in p.all("link") {
        berth_engine::links::parse(l).map_err(bad)?;
        c.links.push(l.clone());
    }
    for r in p.all("device-cgroup-rule") {
        config::device_cgroup_rule(r).map_err(bad)?;
        c.device_cgroup_rules.push(r.clone());
    }
    if let Some(v) = p.value("blkio-weight") {
        c.blkio_weight = Some(v.parse().or_else(|_| {
            usage(format!(
                "invalid argument {v:?} for \"--blkio-weight\" flag: not a number from 0 to 65535"
            ))
        })?)
        .filter(|w| *w != 0);
    }
    for d in p.all("blkio-weight-device") {
        c.blkio_weight_device
            .push(config::parse_weight_device(d).map_err(bad)?);
    }
    for (flag, list, iops) in [
        ("device-read-bps", &mut c.device_read_bps, false),
        ("device-write-bps", &mut c.device_write_bps, false),
        ("device-read-iops", &mut c.device_read_iops, true),
        ("device-write-iops", &mut c.device_write_iops, true),
    ] {
        for d in p.all(flag) {
            list.push(config::parse_throttle_device(&format!("--{flag}"), d, iops).map_err(bad)?);
        }
    }
    for d in p.all("device") {
        c.devices.push(config::parse_device(d).map_err(bad)?);
    }
    c.validate_namespaces().map_err(bad)?;
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
    if c.log_max_file > 1 && c.log_max_size == 0 {
        return fail(125, "max-file cannot be set without max-size");
    }
    let restart = berth_engine::config::parse_restart(&c.restart).map_err(engine125)?;
    if restart != berth_engine::config::RestartPolicy::No && c.auto_remove {
        return fail(125, "Conflicting options: --restart and --rm");
    }
    Ok(c)
}

/// docker 23+'s `-v ./rel:/x` (a source starting with `.`): the host path
/// made absolute against our working directory, `.` and `..` resolved.
fn absolute_bind(v: &str) -> R<String> {
    let Some((src, rest)) = v.split_once(':').filter(|(s, _)| s.starts_with('.')) else {
        return Ok(v.to_string());
    };
    let mut abs = std::env::current_dir()?;
    for part in std::path::Path::new(src).components() {
        match part {
            std::path::Component::ParentDir => {
                abs.pop();
            }
            std::path::Component::Normal(n) => abs.push(n),
            _ => {}
        }
    }
    Ok(format!("{}:{rest}", abs.display()))
}

/// The lines of `--env-file`/`--label-file` files as docker reads them: leading blanks
/// dropped, empty lines and `#` comments skipped.
fn key_value_lines(files: &[String]) -> R<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let data = std::fs::read_to_string(f).map_err(|e| Failure {
            code: 125,
            msg: format!("open {f}: {e}"),
            usage: false,
        })?;
        for l in data.lines() {
            let l = l.trim_start();
            if !l.is_empty() && !l.starts_with('#') {
                out.push(l.to_string());
            }
        }
    }
    Ok(out)
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
    // --cidfile: made (never replaced) before anything else, as docker does; removed again
    // when the container is not made.
    let cidfile = match p.value("cidfile").filter(|f| !f.is_empty()) {
        Some(f) => match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(f)
        {
            Ok(file) => Some((f, file)),
            Err(x) if x.kind() == std::io::ErrorKind::AlreadyExists => {
                return fail(
                    125,
                    format!(
                        "Container ID file found, make sure the other container isn't running or delete {f}"
                    ),
                );
            }
            Err(x) => return fail(125, format!("failed to create the container ID file: {x}")),
        },
        None => None,
    };
    let row = create_with(e, p, cfg, starting);
    match (&row, cidfile) {
        (Ok(row), Some((f, mut file))) => {
            if let Err(x) = file.write_all(row.id.as_bytes()) {
                return fail(125, format!("failed to write the container ID to {f}: {x}"));
            }
        }
        (Err(_), Some((f, _))) => {
            let _ = std::fs::remove_file(f);
        }
        _ => {}
    }
    row
}

fn create_with(e: &mut Engine, p: &Parsed, cfg: RunConfig, starting: bool) -> R<ContainerRow> {
    // --pull: missing (docker's default) pulls an image that is not here.
    let policy = p.value("pull").unwrap_or("missing");
    if policy != "never" {
        let store = e.images().map_err(engine125)?;
        let here = store.get(&cfg.image).is_ok();
        // -q: docker's client says nothing of the pull.
        let quiet = p.bool("quiet");
        if policy == "always" || !here {
            if !here && !quiet {
                eprintln!("Unable to find image '{}' locally", cfg.image);
            }
            crate::registry::pull_for_run(&store, &cfg.image, quiet).map_err(|f| match f {
                crate::Fail::Usage(m) | crate::Fail::Cmd(m) => Failure {
                    code: 125,
                    msg: m,
                    usage: false,
                },
            })?;
        }
    }
    let row = e
        .create(CreateRequest {
            name: p.value("name").map(String::from),
            config: cfg,
            keep_mounted: starting,
        })
        .map_err(engine125)?;
    for w in e.warnings.take() {
        eprintln!("WARNING: {w}");
    }
    crate::ops::record_create_args(e, &row.id, p);
    Ok(row)
}

pub fn create(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    let row = create_from_flags(e, p, false)?;
    writeln!(out, "{}", row.id)?;
    Ok(())
}

pub fn run(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    berth_runtime::timing::phase("cli: parsed");
    let detach = p.bool("detach");
    // docker: -i and -t together need a terminal on stdin.
    // SAFETY: isatty only inspects the descriptor.
    if p.bool("interactive") && p.bool("tty") && !detach && unsafe { libc::isatty(0) } == 0 {
        return fail(1, "the input device is not a TTY");
    }
    let streams = attach_streams(p)?;
    if detach && !p.all("attach").is_empty() {
        return fail(125, "Conflicting options: -a and -d");
    }
    let row = create_from_flags(e, p, true)?;
    berth_runtime::timing::phase("cli: created");
    // docker's client attaches before it starts the container.
    if !detach {
        e.container_event(&row, "attach", &[]);
    }
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
        (p.value("sig-proxy") != Some("false"), streams),
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

pub fn start(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    if p.args.is_empty() {
        return usage("\"start\" requires at least 1 argument");
    }
    let attach = p.bool("attach") || p.bool("interactive");
    if attach && p.args.len() > 1 {
        return fail(1, "you cannot start and attach multiple containers at once");
    }
    let mut failed = false;
    for a in &p.args {
        if attach && let Ok(row) = e.db.find(a) {
            e.container_event(&row, "attach", &[]);
        }
        match e.start(a, &exe()) {
            Ok(conn) if attach => {
                let row = e.get(a)?;
                let cfg = row_config(&row);
                let Some(conn) = conn else {
                    return fail(1, format!("container {a} is already running"));
                };
                let keys = detach_keys(p.value("detach-keys"))?;
                let code = stream(e, &row.id, conn, &cfg, (true, Streams::ALL), &keys)?;
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

pub fn attach(e: &mut Engine, p: &Parsed, _out: &mut dyn Write) -> R {
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
    e.container_event(&row, "attach", &[]);
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
        (p.value("sig-proxy") != Some("false"), Streams::ALL),
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

pub fn cp(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    let [src, dst] = p.args.as_slice() else {
        return usage("\"cp\" requires exactly 2 arguments");
    };
    let follow = p.bool("follow-link");
    match (container_path(src), container_path(dst)) {
        (Some((c, path)), None) if dst == "-" => Ok(e.copy_from_tar(c, path, follow, out)?),
        (Some((c, path)), None) => Ok(e.copy_from(c, path, std::path::Path::new(dst), follow)?),
        (None, Some((c, path))) if src == "-" => {
            Ok(e.copy_tar_to(c, path, &mut io::stdin().lock())?)
        }
        (None, Some((c, path))) => Ok(e.copy_to(c, std::path::Path::new(src), path, follow)?),
        (Some(_), Some(_)) => fail(1, "copying between containers is not supported"),
        (None, None) => fail(
            1,
            "must specify at least one container source (CONTAINER:PATH)",
        ),
    }
}

pub fn export(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
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
pub fn commit(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
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

/// `exec`: the process is our child; its status is ours (126/127 when it
/// cannot run, as docker's).
pub fn exec(e: &mut Engine, p: &Parsed, _out: &mut dyn Write) -> R {
    use std::os::fd::AsRawFd;
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
    let exec = match e.exec(key, req, console) {
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
    let code = berth_runtime::foreground::wait(exec.pid, master, None);
    e.exec_died(&exec, code);
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

/// Which of the container's streams a client attaches to (`run -a`; all otherwise).
#[derive(Clone, Copy)]
struct Streams {
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

impl Streams {
    const ALL: Streams = Streams {
        stdin: true,
        stdout: true,
        stderr: true,
    };
}

/// `-a/--attach STDIN|STDOUT|STDERR` (any case, repeatable); all when not given.
fn attach_streams(p: &Parsed) -> R<Streams> {
    let given = p.all("attach");
    if given.is_empty() {
        return Ok(Streams::ALL);
    }
    let mut s = Streams {
        stdin: false,
        stdout: false,
        stderr: false,
    };
    for a in given {
        match a.to_ascii_lowercase().as_str() {
            "stdin" => s.stdin = true,
            "stdout" => s.stdout = true,
            "stderr" => s.stderr = true,
            _ => {
                return usage(format!(
                    "invalid argument {a:?} for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR"
                ));
            }
        }
    }
    Ok(s)
}

/// Copies the container's output to ours and our stdin to it until it exits (only the
/// `streams` attached; signals proxied when `proxy`); returns its exit code.
fn stream(
    e: &mut Engine,
    id: &str,
    conn: UnixStream,
    cfg: &RunConfig,
    (proxy, streams): (bool, Streams),
    detach: &[u8],
) -> R<i32> {
    use std::io::Read;
    let tty_in = cfg.tty && cfg.open_stdin && streams.stdin && sys::isatty(0);
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
    let mut stdin_open = cfg.open_stdin && streams.stdin;
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
                    attach::STDOUT if !streams.stdout => {}
                    attach::STDERR if !streams.stderr => {}
                    attach::STDOUT | attach::STDERR => {
                        let written = if kind == attach::STDOUT {
                            stdout.write_all(&data).and_then(|()| stdout.flush())
                        } else {
                            stderr.write_all(&data)
                        };
                        // Our reader went away (`attach … | head`): we are
                        // done, quietly; the container goes on.
                        if written.is_err_and(|x| x.kind() == io::ErrorKind::BrokenPipe) {
                            restore(&saved);
                            return Ok(0);
                        }
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

pub fn wait(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    if p.args.is_empty() {
        return usage("\"wait\" requires at least 1 argument");
    }
    let condition = p.value("condition").unwrap_or("not-running");
    let mut failed = false;
    for a in &p.args {
        match e.wait_condition(a, condition) {
            Ok(code) => writeln!(out, "{code}")?,
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

pub fn rename(e: &mut Engine, p: &Parsed, _out: &mut dyn Write) -> R {
    let [old, new] = p.args.as_slice() else {
        return usage("\"rename\" requires exactly 2 arguments");
    };
    e.rename(old, new)?;
    Ok(())
}

pub fn prune(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    let filter = berth_engine::prune::PruneFilter::parse(p.all("filter"))?;
    if !p.bool("force") && !confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(());
    }
    let (removed, bytes) = e.prune_containers(&filter)?;
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

/// go-units HumanDuration since `t` (no " ago").
fn human_since(t: &str) -> String {
    let s = fmt::human_ago(Some(t), now_secs());
    s.strip_suffix(" ago").unwrap_or(&s).to_string()
}

fn status_text(e: &Engine, r: &ContainerRow) -> String {
    match r.state.as_str() {
        db::RUNNING => format!(
            "Up {}{}",
            human_since(&r.started_at),
            berth_engine::health::status_suffix(&e.db, r)
        ),
        db::PAUSED => format!("Up {} (Paused)", human_since(&r.started_at)),
        db::EXITED => format!(
            "Exited ({}) {} ago",
            r.exit_code,
            human_since(&r.finished_at)
        ),
        db::CREATED => "Created".into(),
        s => {
            let mut c = s.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
    }
}

/// docker's COMMAND of a container: the program, then its arguments,
/// those with a space in single quotes (the daemon's list).
fn command_of(e: &Engine, r: &ContainerRow) -> String {
    let args = row_spec(e, r)
        .and_then(|s| s.process().clone())
        .and_then(|p| p.args().clone())
        .unwrap_or_default();
    let mut words = args.iter();
    let mut s = words.next().cloned().unwrap_or_default();
    for a in words {
        s.push(' ');
        if a.contains(' ') {
            s.push_str(&format!("'{a}'"));
        } else {
            s.push_str(a);
        }
    }
    s
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

fn matches_filter(e: &Engine, r: &ContainerRow, f: &str) -> R<bool> {
    let Some((k, v)) = f.split_once('=') else {
        return fail(
            1,
            format!("bad format of filter (expected name=value): {f}"),
        );
    };
    let cfg = row_config(r);
    Ok(match k {
        "id" => r.id.starts_with(v),
        "name" => r.name.contains(v.trim_start_matches('/')),
        "status" => {
            if !matches!(
                v,
                "created" | "restarting" | "running" | "removing" | "paused" | "exited" | "dead"
            ) {
                return fail(1, format!("invalid filter 'status={v}'"));
            }
            r.state == v
        }
        "exited" => r.state == db::EXITED && v.parse::<i32>().ok() == Some(r.exit_code),
        "health" => berth_engine::health::matches_filter(&e.db, r, v)?,
        "label" => {
            let (lk, lv) = match v.split_once('=') {
                Some((a, b)) => (a, Some(b)),
                None => (v, None),
            };
            let labels = labels_of(e, r);
            labels
                .get(lk)
                .is_some_and(|x| lv.is_none_or(|lv| x.as_str() == Some(lv)))
        }
        "ancestor" => cfg.image == v || r.image_id.contains(v),
        "volume" => cfg.mounts.iter().any(|m| m.source == v || m.target == v),
        "network" => {
            cfg.network == v
                || berth_engine::network::container_networks(e, &r.id)?
                    .iter()
                    .any(|(_, n)| n.name == v || n.id.starts_with(v))
        }
        _ => return fail(1, format!("invalid filter '{k}'")),
    })
}

pub fn ps(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    if !p.args.is_empty() {
        return usage("\"ps\" accepts no arguments");
    }
    let no_trunc = p.bool("no-trunc");
    let with_size = p.bool("size");
    let mut rows = e.list()?;
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
    let filters = p.all("filter");
    for f in filters {
        let k = f.split_once('=').map_or(f.as_str(), |(k, _)| k);
        if !matches!(
            k,
            "id" | "name"
                | "status"
                | "exited"
                | "health"
                | "label"
                | "ancestor"
                | "volume"
                | "network"
        ) {
            return fail(1, format!("invalid filter '{k}'"));
        }
    }
    let filters_status = filters.iter().any(|f| f.starts_with("status="));
    let mut kept = vec![];
    for r in rows.drain(..) {
        if !all && !filters_status && r.state != db::RUNNING && r.state != db::PAUSED {
            continue;
        }
        let mut ok = true;
        for f in filters {
            ok &= matches_filter(e, &r, f)?;
        }
        if ok {
            kept.push(r);
        }
    }
    if let Some(n) = last {
        kept.truncate(n);
    }
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
                "Command": fmt::go_quote(&cmd),
                "CreatedAt": fmt::go_time(created),
                "RunningFor": fmt::human_ago(Some(&r.created_at), now_secs()),
                "Ports": crate::networks::ports_text(e, r),
                "State": r.state,
                "Status": status_text(e, r),
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
                "Networks": crate::networks::networks_text(e, r),
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

/// One log record to our stdout or stderr. A reader that went away
/// (`logs -f | head`) is an error, which ends `logs` quietly.
fn print_record(rec: &logs::Record, ts: bool) -> io::Result<()> {
    let line = if ts {
        format!("{} {}", rec.time, rec.log)
    } else {
        rec.log.clone()
    };
    if rec.stream == "stderr" {
        io::stderr().lock().write_all(line.as_bytes())
    } else {
        let mut o = io::stdout().lock();
        o.write_all(line.as_bytes())?;
        o.flush()
    }
}

pub fn logs(e: &mut Engine, p: &Parsed, _out: &mut dyn Write) -> R {
    let [key] = p.args.as_slice() else {
        return usage("\"logs\" requires exactly 1 argument");
    };
    let opts = berth_engine::logs::LogOptions {
        since: p.value("since").map(parse_since).transpose()?,
        until: p.value("until").map(parse_since).transpose()?,
        tail: match p.value("tail") {
            None | Some("all") => None,
            Some(n) => Some(
                n.parse()
                    .or_else(|_| fail(1, format!("invalid value for \"tail\": {n}")))?,
            ),
        },
        follow: p.bool("follow"),
    };
    let ts = p.bool("timestamps");
    // A reader that went away (`logs -f | head`) ends the follow.
    let mut failed = None;
    e.logs(key, &opts, &mut |r| match print_record(r, ts) {
        Ok(()) => true,
        Err(err) => {
            failed = Some(err);
            false
        }
    })?;
    match failed {
        Some(err) => Err(err.into()),
        None => Ok(()),
    }
}

// ---- inspect --------------------------------------------------------

#[cfg(test)]
use berth_engine::inspect::config_env;

pub use berth_engine::inspect::container_json as inspect_json;

pub fn inspect(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    crate::inspect::typed(e, p, out, "container")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_binds_become_absolute() {
        let cwd = std::env::current_dir().unwrap();
        let up = cwd.parent().unwrap_or(&cwd).display().to_string();
        assert_eq!(
            absolute_bind("./:/x").ok(),
            Some(format!("{}:/x", cwd.display()))
        );
        assert_eq!(absolute_bind("../:/x:ro").ok(), Some(format!("{up}:/x:ro")));
        assert_eq!(absolute_bind("vol:/x").ok(), Some("vol:/x".into()));
        assert_eq!(absolute_bind("/abs:/x").ok(), Some("/abs:/x".into()));
    }

    #[test]
    fn config_env_merges_as_docker() {
        let image = [
            "PATH=/bin".to_string(),
            "A=1".to_string(),
            "B=2".to_string(),
        ];
        let user = ["A=x".to_string(), "C=3".to_string(), "B".to_string()];
        assert_eq!(config_env(&image, &user), ["PATH=/bin", "A=x", "C=3"]);
    }

    #[test]
    fn detach_key_specs() {
        assert_eq!(detach_keys(None).ok(), Some(vec![0x10, 0x11]));
        assert_eq!(detach_keys(Some("ctrl-a,x")).ok(), Some(vec![1, b'x']));
        assert!(detach_keys(Some("ctrl-")).is_err());
        assert!(detach_keys(Some("ctrl-ab")).is_err());
    }
}

//! runc's command line, parsed by hand.
//!
//! A small table-driven parser instead of a general argument library: it
//! keeps start-up (paid by every container) short and the binary small, and
//! it accepts what runc's Go flag parser accepts: `--flag value`,
//! `--flag=value`, `-flag value` for long names, `--bool=false`.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Result, bail};

/// One flag: its spellings, the key it is stored under, and whether it
/// takes a value.
struct Flag {
    names: &'static [&'static str],
    key: &'static str,
    value: bool,
}

const fn f(names: &'static [&'static str], key: &'static str, value: bool) -> Flag {
    Flag { names, key, value }
}

const GLOBAL: &[Flag] = &[
    f(&["root"], "root", true),
    f(&["log"], "log", true),
    f(&["log-format"], "log-format", true),
    f(&["debug"], "debug", false),
    f(&["systemd-cgroup"], "systemd-cgroup", false),
    f(&["rootless"], "rootless", true),
    f(&["version", "v"], "version", false),
    f(&["help", "h"], "help", false),
    // runc flags engines pass that change nothing here.
    f(&["criu"], "criu", true),
];

const CREATE: &[Flag] = &[
    f(&["bundle", "b"], "bundle", true),
    f(&["pid-file"], "pid-file", true),
    f(&["console-socket"], "console-socket", true),
    f(&["no-pivot"], "no-pivot", false),
    f(&["no-new-keyring"], "no-new-keyring", false),
    f(&["preserve-fds"], "preserve-fds", true),
    f(&["pidfd-socket"], "pidfd-socket", true),
    f(&["detach", "d"], "detach", false),
    f(&["keep"], "keep", false),
    f(&["no-subreaper"], "no-subreaper", false),
];

const EXEC: &[Flag] = &[
    f(&["process", "p"], "process", true),
    f(&["detach", "d"], "detach", false),
    f(&["pid-file"], "pid-file", true),
    f(&["tty", "t"], "tty", false),
    f(&["console-socket"], "console-socket", true),
    f(&["cwd"], "cwd", true),
    f(&["env", "e"], "env", true),
    f(&["user", "u"], "user", true),
    f(&["additional-gids", "g"], "additional-gids", true),
    f(&["cap", "c"], "cap", true),
    f(&["no-new-privs"], "no-new-privs", false),
    f(&["preserve-fds"], "preserve-fds", true),
    f(&["pidfd-socket"], "pidfd-socket", true),
    f(&["process-label"], "process-label", true),
    f(&["apparmor"], "apparmor", true),
    f(&["ignore-paused"], "ignore-paused", false),
    f(&["cgroup"], "cgroup", true),
];

const UPDATE: &[Flag] = &[
    f(&["resources", "r"], "resources", true),
    f(&["blkio-weight"], "blkio-weight", true),
    f(&["cpu-period"], "cpu-period", true),
    f(&["cpu-quota"], "cpu-quota", true),
    f(&["cpu-burst"], "cpu-burst", true),
    f(&["cpu-rt-period"], "cpu-rt-period", true),
    f(&["cpu-rt-runtime"], "cpu-rt-runtime", true),
    f(&["cpu-share"], "cpu-share", true),
    f(&["cpu-idle"], "cpu-idle", true),
    f(&["cpuset-cpus"], "cpuset-cpus", true),
    f(&["cpuset-mems"], "cpuset-mems", true),
    f(&["memory"], "memory", true),
    f(&["memory-reservation"], "memory-reservation", true),
    f(&["memory-swap"], "memory-swap", true),
    f(&["kernel-memory"], "kernel-memory", true),
    f(&["kernel-memory-tcp"], "kernel-memory-tcp", true),
    f(&["pids-limit"], "pids-limit", true),
];

/// Options of `create` and `run`.
#[derive(Clone, Default)]
pub struct CreateArgs {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub pidfd_socket: Option<PathBuf>,
}

/// Options of `exec`.
pub struct ExecArgs {
    pub process: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub cap: Vec<String>,
    pub no_new_privs: bool,
    pub preserve_fds: u32,
    pub pidfd_socket: Option<PathBuf>,
    pub ignore_paused: bool,
    pub id: String,
    pub command: Vec<String>,
}

/// Options of `update`.
#[derive(Default)]
pub struct UpdateArgs {
    pub resources: Option<PathBuf>,
    pub blkio_weight: Option<u16>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_burst: Option<u64>,
    pub cpu_rt_period: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpu_share: Option<u64>,
    pub cpu_idle: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub kernel_memory_tcp: Option<String>,
    pub pids_limit: Option<i64>,
    pub id: String,
}

pub enum Cmd {
    Create {
        args: CreateArgs,
        id: String,
    },
    Start {
        id: String,
    },
    State {
        id: String,
    },
    Kill {
        all: bool,
        id: String,
        signal: Option<String>,
    },
    Delete {
        force: bool,
        id: String,
    },
    Run {
        args: CreateArgs,
        detach: bool,
        keep: bool,
        id: String,
    },
    Exec(Box<ExecArgs>),
    List {
        format: String,
        quiet: bool,
    },
    Spec {
        rootless: bool,
        bundle: PathBuf,
    },
    Features,
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    Update(Box<UpdateArgs>),
    Events {
        stats: bool,
        interval: String,
        id: String,
    },
    Ps {
        format: String,
        id: String,
        ps_args: Vec<String>,
    },
    Help,
}

pub struct Cli {
    pub root: Option<PathBuf>,
    pub log: Option<PathBuf>,
    pub log_format: String,
    pub debug: bool,
    pub systemd_cgroup: bool,
    pub rootless: String,
    pub version: bool,
    pub cmd: Option<Cmd>,
}

pub const USAGE: &str = "\
berth-oci: an OCI runtime with runc's command line

usage: berth-oci [global options] COMMAND [options] [ID] [args]

global options:
  --root DIR            state directory (default /run/berth-oci)
  --log FILE            log file;  --log-format text|json
  --debug               print phase timings;  --rootless auto|true|false
  --systemd-cgroup      (not supported);  --version, -v

commands:
  create [--bundle DIR] [--pid-file F] [--console-socket S] [--no-pivot]
         [--no-new-keyring] [--preserve-fds N] [--pidfd-socket S] ID
  start ID                       state ID
  run [create options] [--detach] [--keep] ID
  exec [--process FILE | options] [--detach] [--tty] [--console-socket S]
       [--cwd DIR] [--env K=V]... [--user UID[:GID]] [--cap CAP]... ID [CMD...]
  kill [--all] ID [SIGNAL]       delete [--force] ID
  list [--format table|json] [-q]
  pause ID | resume ID | ps [--format table|json] ID [ps args]
  update [--resources FILE|-] [--memory N] [--cpu-quota N] ... ID
  events [--stats] [--interval 5s] ID
  spec [--rootless] [--bundle DIR]
  features
";

/// Flags and positional arguments of one command line segment.
#[derive(Default)]
struct Parsed {
    flags: HashMap<&'static str, Vec<String>>,
    pos: Vec<String>,
}

impl Parsed {
    fn has(&self, k: &str) -> bool {
        self.flags
            .get(k)
            .and_then(|v| v.last())
            .is_some_and(|v| v != "false")
    }
    fn one(&self, k: &str) -> Option<String> {
        self.flags.get(k).and_then(|v| v.last().cloned())
    }
    fn all(&self, k: &str) -> Vec<String> {
        self.flags.get(k).cloned().unwrap_or_default()
    }
    fn path(&self, k: &str) -> Option<PathBuf> {
        self.one(k).map(PathBuf::from)
    }
    fn num<T: std::str::FromStr>(&self, k: &str) -> Result<Option<T>> {
        match self.one(k) {
            None => Ok(None),
            Some(v) => match v.parse() {
                Ok(n) => Ok(Some(n)),
                Err(_) => bail!("--{k}: {v:?} is not a valid number"),
            },
        }
    }
    fn id(&self, cmd: &str) -> Result<String> {
        match self.pos.first() {
            Some(id) => Ok(id.clone()),
            None => bail!("{cmd}: a container id is required"),
        }
    }
}

fn find<'a>(specs: &[&'a [Flag]], name: &str) -> Option<&'a Flag> {
    specs
        .iter()
        .flat_map(|s| s.iter())
        .find(|f| f.names.contains(&name))
}

/// Parses flags from `args[*i..]` with `specs`. Positional arguments are
/// collected; after `stop_after` of them (exec's id) everything left is
/// positional. `--` ends the flags.
fn parse_segment(
    args: &[String],
    i: &mut usize,
    specs: &[&[Flag]],
    stop_after: Option<usize>,
    stop_at_first_word: bool,
) -> Result<Parsed> {
    let mut p = Parsed::default();
    while *i < args.len() {
        let a = &args[*i];
        if stop_after.is_some_and(|n| p.pos.len() >= n) {
            p.pos.extend(args[*i..].iter().cloned());
            *i = args.len();
            break;
        }
        if a == "--" {
            p.pos.extend(args[*i + 1..].iter().cloned());
            *i = args.len();
            break;
        }
        let Some(body) = a
            .strip_prefix("--")
            .or_else(|| a.strip_prefix('-'))
            .filter(|b| !b.is_empty() && a != "-")
        else {
            if stop_at_first_word {
                break;
            }
            p.pos.push(a.clone());
            *i += 1;
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(flag) = find(specs, name) else {
            bail!("unknown flag {a:?} (see --help)");
        };
        *i += 1;
        let v = if flag.value {
            match inline {
                Some(v) => v,
                None => {
                    let Some(v) = args.get(*i) else {
                        bail!("flag --{} needs a value", flag.names[0]);
                    };
                    *i += 1;
                    v.clone()
                }
            }
        } else {
            match inline.as_deref() {
                None | Some("true") | Some("1") => "true".into(),
                Some("false") | Some("0") => "false".into(),
                Some(v) => bail!("flag --{}: {v:?} is not true or false", flag.names[0]),
            }
        };
        p.flags.entry(flag.key).or_default().push(v);
    }
    Ok(p)
}

fn create_args(p: &Parsed) -> Result<CreateArgs> {
    Ok(CreateArgs {
        bundle: p.path("bundle").unwrap_or_else(|| PathBuf::from(".")),
        pid_file: p.path("pid-file"),
        console_socket: p.path("console-socket"),
        no_pivot: p.has("no-pivot"),
        no_new_keyring: p.has("no-new-keyring"),
        preserve_fds: p.num("preserve-fds")?.unwrap_or(0),
        pidfd_socket: p.path("pidfd-socket"),
    })
}

/// Parses a whole command line (argv[0] included).
pub fn parse(argv: &[String]) -> Result<Cli> {
    let mut i = 1;
    let g = parse_segment(argv, &mut i, &[GLOBAL], None, true)?;
    let mut cli = Cli {
        root: g.path("root"),
        log: g.path("log"),
        log_format: g.one("log-format").unwrap_or_else(|| "text".into()),
        debug: g.has("debug"),
        systemd_cgroup: g.has("systemd-cgroup"),
        rootless: g.one("rootless").unwrap_or_else(|| "auto".into()),
        version: g.has("version"),
        cmd: None,
    };
    if g.has("help") {
        cli.cmd = Some(Cmd::Help);
        return Ok(cli);
    }
    let Some(name) = argv.get(i).cloned() else {
        return Ok(cli);
    };
    i += 1;
    let seg = |specs: &[&[Flag]], stop: Option<usize>, i: &mut usize| {
        parse_segment(argv, i, specs, stop, false)
    };
    let cmd = match name.as_str() {
        "create" => {
            let p = seg(&[CREATE, GLOBAL], None, &mut i)?;
            Cmd::Create {
                args: create_args(&p)?,
                id: p.id("create")?,
            }
        }
        "run" => {
            let p = seg(&[CREATE, GLOBAL], None, &mut i)?;
            Cmd::Run {
                args: create_args(&p)?,
                detach: p.has("detach"),
                keep: p.has("keep"),
                id: p.id("run")?,
            }
        }
        "start" => Cmd::Start {
            id: seg(&[GLOBAL], None, &mut i)?.id("start")?,
        },
        "state" => Cmd::State {
            id: seg(&[GLOBAL], None, &mut i)?.id("state")?,
        },
        "kill" => {
            let p = seg(&[&[f(&["all", "a"], "all", false)], GLOBAL], None, &mut i)?;
            Cmd::Kill {
                all: p.has("all"),
                id: p.id("kill")?,
                signal: p.pos.get(1).cloned(),
            }
        }
        "delete" => {
            let p = seg(
                &[&[f(&["force", "f"], "force", false)], GLOBAL],
                None,
                &mut i,
            )?;
            Cmd::Delete {
                force: p.has("force"),
                id: p.id("delete")?,
            }
        }
        "exec" => {
            let p = seg(&[EXEC, GLOBAL], Some(1), &mut i)?;
            Cmd::Exec(Box::new(ExecArgs {
                process: p.path("process"),
                detach: p.has("detach"),
                pid_file: p.path("pid-file"),
                tty: p.has("tty"),
                console_socket: p.path("console-socket"),
                cwd: p.path("cwd"),
                env: p.all("env"),
                user: p.one("user"),
                cap: p.all("cap"),
                no_new_privs: p.has("no-new-privs"),
                preserve_fds: p.num("preserve-fds")?.unwrap_or(0),
                pidfd_socket: p.path("pidfd-socket"),
                ignore_paused: p.has("ignore-paused"),
                id: p.id("exec")?,
                command: p.pos[1..].to_vec(),
            }))
        }
        "list" | "ls" => {
            let p = seg(
                &[
                    &[
                        f(&["format", "f"], "format", true),
                        f(&["quiet", "q"], "quiet", false),
                    ],
                    GLOBAL,
                ],
                None,
                &mut i,
            )?;
            Cmd::List {
                format: p.one("format").unwrap_or_else(|| "table".into()),
                quiet: p.has("quiet"),
            }
        }
        "spec" => {
            let p = seg(
                &[&[
                    f(&["rootless"], "rootless", false),
                    f(&["bundle", "b"], "bundle", true),
                ]],
                None,
                &mut i,
            )?;
            Cmd::Spec {
                rootless: p.has("rootless"),
                bundle: p.path("bundle").unwrap_or_else(|| PathBuf::from(".")),
            }
        }
        "features" => Cmd::Features,
        "pause" => Cmd::Pause {
            id: seg(&[GLOBAL], None, &mut i)?.id("pause")?,
        },
        "resume" => Cmd::Resume {
            id: seg(&[GLOBAL], None, &mut i)?.id("resume")?,
        },
        "update" => {
            let p = seg(&[UPDATE, GLOBAL], None, &mut i)?;
            Cmd::Update(Box::new(UpdateArgs {
                resources: p.path("resources"),
                blkio_weight: p.num("blkio-weight")?,
                cpu_period: p.num("cpu-period")?,
                cpu_quota: p.num("cpu-quota")?,
                cpu_burst: p.num("cpu-burst")?,
                cpu_rt_period: p.num("cpu-rt-period")?,
                cpu_rt_runtime: p.num("cpu-rt-runtime")?,
                cpu_share: p.num("cpu-share")?,
                cpu_idle: p.num("cpu-idle")?,
                cpuset_cpus: p.one("cpuset-cpus"),
                cpuset_mems: p.one("cpuset-mems"),
                memory: p.one("memory"),
                memory_reservation: p.one("memory-reservation"),
                memory_swap: p.one("memory-swap"),
                kernel_memory_tcp: p.one("kernel-memory-tcp"),
                pids_limit: p.num("pids-limit")?,
                id: p.id("update")?,
            }))
        }
        "events" => {
            let p = seg(
                &[
                    &[
                        f(&["stats"], "stats", false),
                        f(&["interval"], "interval", true),
                    ],
                    GLOBAL,
                ],
                None,
                &mut i,
            )?;
            Cmd::Events {
                stats: p.has("stats"),
                interval: p.one("interval").unwrap_or_else(|| "5s".into()),
                id: p.id("events")?,
            }
        }
        "ps" => {
            let p = seg(&[&[f(&["format", "f"], "format", true)]], Some(1), &mut i)?;
            Cmd::Ps {
                format: p.one("format").unwrap_or_else(|| "table".into()),
                id: p.id("ps")?,
                ps_args: p.pos[1..].to_vec(),
            }
        }
        "help" => Cmd::Help,
        other => bail!("unknown command {other:?} (see --help)"),
    };
    cli.cmd = Some(cmd);
    Ok(cli)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Cli> {
        let mut a = vec!["berth-oci".to_string()];
        a.extend(v.iter().map(|s| s.to_string()));
        parse(&a)
    }

    #[test]
    fn runc_style_command_lines() {
        let c = p(&[
            "-root",
            "/r",
            "--log-format=json",
            "create",
            "-bundle",
            "/b",
            "--pid-file",
            "p",
            "x",
        ])
        .unwrap();
        assert_eq!(c.root, Some(PathBuf::from("/r")));
        assert_eq!(c.log_format, "json");
        match c.cmd {
            Some(Cmd::Create { args, id }) => {
                assert_eq!(args.bundle, PathBuf::from("/b"));
                assert_eq!(args.pid_file, Some(PathBuf::from("p")));
                assert_eq!(id, "x");
            }
            _ => panic!("not create"),
        }
        match p(&[
            "exec", "-e", "A=1", "--env", "B=2", "-t=false", "id", "ls", "-all", "--", "-x",
        ])
        .unwrap()
        .cmd
        {
            Some(Cmd::Exec(e)) => {
                assert_eq!(e.env, vec!["A=1", "B=2"]);
                assert!(!e.tty);
                assert_eq!(e.id, "id");
                assert_eq!(e.command, vec!["ls", "-all", "--", "-x"]);
            }
            _ => panic!("not exec"),
        }
        match p(&["kill", "--all", "id", "KILL"]).unwrap().cmd {
            Some(Cmd::Kill { all, id, signal }) => {
                assert!(all);
                assert_eq!(id, "id");
                assert_eq!(signal.as_deref(), Some("KILL"));
            }
            _ => panic!("not kill"),
        }
        assert!(p(&["delete", "--nope", "x"]).is_err());
        assert!(p(&["create"]).is_err());
        assert!(p(&["create", "--bundle"]).is_err());
        assert!(p(&["frobnicate"]).is_err());
        assert!(p(&["-v"]).unwrap().version);
    }
}

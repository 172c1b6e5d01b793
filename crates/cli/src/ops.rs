//! Operations on containers a user running services needs around them:
//! `system boot` (and its systemd unit), `generate systemd`, `update`,
//! `container diff` and `system prune`. What each does lives in the engine
//! (`berth_engine::{boot, update, diff, prune}`); this is the command line.

use std::io::Write;
use std::path::{Path, PathBuf};

use berth_engine::Engine;
use berth_engine::config::{self, parse_restart};
use berth_engine::prune::PruneFilter;
use berth_engine::update::UpdateRequest;
use serde_json::json;

use crate::args::{Parsed, Usage};
use crate::containers::{Failure, confirm, fail};
use crate::fmt::human_size;

type R<T = ()> = Result<T, Failure>;

fn usage<T>(msg: impl Into<String>) -> R<T> {
    Err(Usage(msg.into()).into())
}

/// The file in a container's directory holding the flags and arguments
/// `create`/`run` were given (podman's CreateCommand): `generate systemd
/// --new` runs the container from them.
const CREATE_ARGS: &str = "create-args.json";

/// Records what the container was created with (best effort: a container
/// without the file cannot have a `--new` unit, nothing else needs it).
pub fn record_create_args(e: &Engine, id: &str, p: &Parsed) {
    let v = json!({ "flags": p.flag_words(&[]), "args": p.args });
    let _ = std::fs::write(e.container_dir(id).join(CREATE_ARGS), v.to_string());
}

/// The berth binary as units must name it.
fn berth_path() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/local/bin/berth"))
}

/// `berth` with `--root` when it is not the default, as unit words.
fn berth_words(e: &Engine) -> Vec<String> {
    let mut v = vec![berth_path().to_string_lossy().into_owned()];
    if e.root != Path::new(berth_engine::DEFAULT_ROOT) {
        v.push("--root".into());
        v.push(e.root.to_string_lossy().into_owned());
    }
    v
}

/// One word of a systemd command line: quoted when it must be, `%` and
/// `$` doubled (systemd's specifiers and variables).
fn unit_word(w: &str) -> String {
    let w = w.replace('%', "%%").replace('$', "$$");
    if !w.is_empty()
        && !w
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';'))
    {
        return w;
    }
    let mut q = String::from("\"");
    for c in w.chars() {
        match c {
            '"' | '\\' => {
                q.push('\\');
                q.push(c);
            }
            '\n' => q.push_str("\\n"),
            _ => q.push(c),
        }
    }
    q.push('"');
    q
}

fn unit_line(words: &[String]) -> String {
    words
        .iter()
        .map(|w| unit_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

// ---- system boot ------------------------------------------------------

/// The boot unit (contrib/systemd/berth-boot.service) for this binary and
/// root.
fn boot_unit(e: &Engine) -> String {
    let template = include_str!("../../../contrib/systemd/berth-boot.service");
    let mut exec = berth_words(e);
    exec.extend(["system".to_string(), "boot".to_string()]);
    template
        .replace(
            "ExecStart=/usr/local/bin/berth system boot",
            &format!("ExecStart={}", unit_line(&exec)),
        )
        .replace(
            "RequiresMountsFor=/var/lib/berth",
            &format!("RequiresMountsFor={}", unit_word(&e.root.to_string_lossy())),
        )
}

/// Where `--install-unit` writes the boot unit.
const UNIT_DIR: &str = "/etc/systemd/system";

pub fn boot(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    if !p.args.is_empty() {
        return usage("\"system boot\" accepts no arguments");
    }
    if p.bool("print-unit") {
        write!(out, "{}", boot_unit(e))?;
        return Ok(());
    }
    if p.bool("install-unit") {
        let path = Path::new(UNIT_DIR).join("berth-boot.service");
        std::fs::write(&path, boot_unit(e))
            .or_else(|x| fail(1, format!("writing {}: {x}", path.display())))?;
        writeln!(out, "{}", path.display())?;
        eprintln!("Enable it with: systemctl daemon-reload && systemctl enable berth-boot.service");
        return Ok(());
    }
    let r = e.boot(Path::new("/proc/self/exe"))?;
    if p.value("format") == Some("json") {
        let text = serde_json::to_string(&r).or_else(|x| fail(1, x.to_string()))?;
        writeln!(out, "{text}")?;
    } else {
        for n in &r.cleared {
            writeln!(out, "cleared {n}")?;
        }
        for n in &r.started {
            writeln!(out, "started {n}")?;
        }
        for n in &r.running {
            writeln!(out, "running {n}")?;
        }
    }
    for (n, why) in &r.failed {
        eprintln!("Error: starting {n}: {why}");
    }
    if !r.failed.is_empty() {
        return fail(1, "");
    }
    Ok(())
}

// ---- generate systemd -------------------------------------------------

/// systemd's `Restart=` values.
const SYSTEMD_RESTART: &[&str] = &[
    "no",
    "on-success",
    "on-failure",
    "on-abnormal",
    "on-watchdog",
    "on-abort",
    "always",
];

/// Flags of `run` that a `--new` unit drops: it runs in the foreground of
/// the unit, without a terminal, under its own name, removed when it ends,
/// restarted by systemd.
const NOT_IN_UNIT: &[&str] = &[
    "detach",
    "rm",
    "name",
    "restart",
    "interactive",
    "tty",
    "detach-keys",
    "attach",
];

pub fn generate_systemd(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    let [key] = p.args.as_slice() else {
        return usage("\"generate systemd\" requires exactly 1 argument: a container");
    };
    let row = e.get(key)?;
    let restart = p.value("restart-policy").unwrap_or("on-failure");
    if !SYSTEMD_RESTART.contains(&restart) {
        return usage(format!(
            "--restart-policy {restart:?}: one of {}",
            SYSTEMD_RESTART.join(", ")
        ));
    }
    let cfg = berth_engine::row_config(&row);
    let time: i64 = match p.value("time") {
        Some(t) => t
            .parse()
            .or_else(|_| usage(format!("--time {t:?}: a number of seconds")))?,
        None => cfg.stop_timeout.unwrap_or(10),
    };
    let new = p.bool("new");
    let ident = if p.bool("name") || new {
        row.name.clone()
    } else {
        row.id.clone()
    };
    let prefix = p.value("container-prefix").unwrap_or("container");
    let sep = p.value("separator").unwrap_or("-");
    let unit = format!("{prefix}{sep}{ident}.service");
    if parse_restart(&cfg.restart).is_ok_and(|r| r != config::RestartPolicy::No) {
        eprintln!(
            "Warning: container {} has its own restart policy ({}); with a unit, let systemd restart it (berth update --restart no {})",
            row.name, cfg.restart, row.name
        );
    }
    let berth = berth_words(e);
    let cmd = |words: &[&str]| {
        let mut v = berth.clone();
        v.extend(words.iter().map(|w| w.to_string()));
        unit_line(&v)
    };
    let t = time.to_string();
    let mut service = vec![format!("Restart={restart}")];
    service.push(format!("TimeoutStopSec={}", time.max(0) + 60));
    if new {
        let text = std::fs::read_to_string(e.container_dir(&row.id).join(CREATE_ARGS))
            .or_else(|_| {
                fail(
                    1,
                    format!(
                        "container {} has no record of the flags it was created with (made by the API or an older berth): generate its unit without --new",
                        row.name
                    ),
                )
            })?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .or_else(|x| fail(1, format!("{CREATE_ARGS} of {}: {x}", row.name)))?;
        let words = |k: &str| -> Vec<String> {
            v[k].as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| w.as_str().map(String::from))
                .collect()
        };
        let flags: Vec<String> = words("flags")
            .into_iter()
            .filter(|f| {
                let name = f.trim_start_matches("--").split('=').next().unwrap_or("");
                !NOT_IN_UNIT.contains(&name)
            })
            .collect();
        let mut run = berth.clone();
        run.extend(["run", "--rm", "--name", &row.name].map(String::from));
        run.extend(flags);
        run.extend(words("args"));
        service.push(format!("ExecStartPre=-{}", cmd(&["rm", "-f", &row.name])));
        service.push(format!("ExecStart={}", unit_line(&run)));
        service.push(format!("ExecStop={}", cmd(&["stop", "-t", &t, &row.name])));
        service.push(format!("ExecStopPost=-{}", cmd(&["rm", "-f", &row.name])));
    } else {
        service.push(format!("ExecStart={}", cmd(&["start", "--attach", &ident])));
        service.push(format!("ExecStop={}", cmd(&["stop", "-t", &t, &ident])));
    }
    // The unit's main process is the attached berth: it ends with the
    // container, with its exit status (143 when `stop` ended it with
    // SIGTERM: a clean stop, not a failure).
    service.push("Type=simple".into());
    service.push("SuccessExitStatus=143".into());
    let mut text = String::new();
    if !p.bool("no-header") {
        text.push_str(&format!(
            "# {unit}\n# autogenerated by berth generate systemd (berth {})\n\n",
            env!("CARGO_PKG_VERSION")
        ));
    }
    text.push_str(&format!(
        "[Unit]\nDescription=Berth {unit}\nWants=network-online.target\nAfter=network-online.target\nRequiresMountsFor={}\n\n[Service]\n{}\n\n[Install]\nWantedBy=default.target\n",
        unit_word(&e.root.to_string_lossy()),
        service.join("\n")
    ));
    if p.bool("files") {
        let dir = std::env::current_dir().or_else(|x| fail(1, x.to_string()))?;
        let path = dir.join(&unit);
        std::fs::write(&path, &text)
            .or_else(|x| fail(1, format!("writing {}: {x}", path.display())))?;
        writeln!(out, "{}", path.display())?;
    } else {
        write!(out, "{text}")?;
    }
    Ok(())
}

// ---- update -----------------------------------------------------------

fn size_flag(p: &Parsed, name: &str) -> R<Option<i64>> {
    match p.value(name) {
        None => Ok(None),
        Some("-1") => Ok(Some(-1)),
        Some(v) => config::parse_size(v)
            .map(Some)
            .or_else(|x| usage(format!("invalid argument {v:?} for \"--{name}\" flag: {x}"))),
    }
}

fn int_flag<T: std::str::FromStr>(p: &Parsed, name: &str) -> R<Option<T>> {
    match p.value(name) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).or_else(|_| {
            usage(format!(
                "invalid argument {v:?} for \"--{name}\" flag: not a number"
            ))
        }),
    }
}

/// `run`/`create`'s `--memory-swap`, `--cpu-period`, `--cpu-quota`,
/// `--cpuset-cpus` (their combinations are checked with the spec's).
pub fn limit_flags(p: &Parsed, c: &mut berth_engine::RunConfig) -> R {
    c.memory_swap = size_flag(p, "memory-swap")?;
    c.cpu_period = int_flag(p, "cpu-period")?;
    c.cpu_quota = int_flag(p, "cpu-quota")?;
    c.cpu_rt_period = int_flag(p, "cpu-rt-period")?;
    c.cpu_rt_runtime = int_flag(p, "cpu-rt-runtime")?;
    c.cpuset_cpus = p.value("cpuset-cpus").map(String::from);
    if let Some(v) = &c.cpuset_cpus {
        berth_engine::update::validate_cpuset(v)?;
    }
    Ok(())
}

pub fn update(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    if p.args.is_empty() {
        return usage("\"update\" requires at least 1 argument");
    }
    let req =
        UpdateRequest {
            memory: size_flag(p, "memory")?,
            memory_swap: size_flag(p, "memory-swap")?,
            nano_cpus: match p.value("cpus") {
                None => None,
                Some(v) => Some(config::parse_cpus(v).or_else(|x| {
                    usage(format!("invalid argument {v:?} for \"--cpus\" flag: {x}"))
                })?),
            },
            cpu_shares: int_flag(p, "cpu-shares")?,
            cpu_period: int_flag(p, "cpu-period")?,
            cpu_quota: int_flag(p, "cpu-quota")?,
            cpuset_cpus: p.value("cpuset-cpus").map(String::from),
            pids_limit: int_flag(p, "pids-limit")?,
            restart: p.value("restart").map(String::from),
            memory_reservation: size_flag(p, "memory-reservation")?,
            cpuset_mems: p.value("cpuset-mems").map(String::from),
            blkio_weight: int_flag(p, "blkio-weight")?,
            cpu_rt_period: int_flag(p, "cpu-rt-period")?,
            cpu_rt_runtime: int_flag(p, "cpu-rt-runtime")?,
        };
    if req.is_empty() {
        return usage("you must provide one or more flags when using this command");
    }
    let mut failed = false;
    let mut warnings = vec![];
    for a in &p.args {
        match e.update(a, &req) {
            Ok(()) => writeln!(out, "{a}")?,
            Err(x) => {
                eprintln!("Error: {x}");
                failed = true;
            }
        }
        warnings.extend(e.warnings.take());
    }
    // docker's client (28): the daemon's warnings on stdout, after the names.
    for w in warnings {
        writeln!(out, "{w}")?;
    }
    if failed {
        return fail(1, "");
    }
    Ok(())
}

// ---- container diff ---------------------------------------------------

pub fn diff(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    let [key] = p.args.as_slice() else {
        return usage("\"diff\" requires exactly 1 argument");
    };
    for c in e.diff(key)? {
        writeln!(out, "{} {}", c.kind.letter(), c.path)?;
    }
    Ok(())
}

// ---- system prune -----------------------------------------------------

pub fn system_prune(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    if !p.args.is_empty() {
        return usage("\"system prune\" accepts no arguments");
    }
    let all = p.bool("all");
    let volumes = p.bool("volumes");
    let filters = p.all("filter");
    let f = PruneFilter::parse(filters)?;
    if volumes && f.until.is_some() {
        return fail(
            1,
            "ERROR: The \"until\" filter is not supported with \"--volumes\"",
        );
    }
    if !p.bool("force") {
        let mut warning = String::from(
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container",
        );
        if volumes {
            warning.push_str("\n  - all anonymous volumes not used by at least one container");
        }
        warning.push_str(if all {
            "\n  - all images without at least one container associated to them\n  - all build cache"
        } else {
            "\n  - all dangling images\n  - unused build cache"
        });
        warning.push('\n');
        if !filters.is_empty() {
            warning.push_str("\n  Items to be pruned will be filtered with:");
            for d in PruneFilter::describe(filters) {
                warning.push_str(&format!("\n  - {d}"));
            }
            warning.push('\n');
        }
        if !confirm(&warning)? {
            return Ok(());
        }
    }
    let r = e.system_prune(all, volumes, &f)?;
    let section = |out: &mut dyn Write, title: &str, items: &[String]| -> std::io::Result<()> {
        if !items.is_empty() {
            writeln!(out, "{title}:")?;
            for i in items {
                writeln!(out, "{i}")?;
            }
            writeln!(out)?;
        }
        Ok(())
    };
    section(out, "Deleted Containers", &r.containers)?;
    section(out, "Deleted Networks", &r.networks)?;
    section(out, "Deleted Volumes", &r.volumes)?;
    if !r.images.deleted.is_empty() || !r.images.untagged.is_empty() {
        writeln!(out, "Deleted Images:")?;
        for t in &r.images.untagged {
            let f = berth_image::Reference::parse(t)
                .map(|r| r.familiar())
                .unwrap_or_else(|_| t.clone());
            writeln!(out, "untagged: {f}")?;
        }
        for d in &r.images.deleted {
            writeln!(out, "deleted: {d}")?;
        }
        writeln!(out)?;
    }
    let keys: Vec<String> = r
        .build_keys
        .iter()
        .map(|k| k[..k.len().min(25)].to_string())
        .collect();
    section(out, "Deleted build cache objects", &keys)?;
    writeln!(out, "Total reclaimed space: {}", human_size(r.reclaimed()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_words() {
        assert_eq!(unit_word("plain"), "plain");
        assert_eq!(unit_word("a b"), "\"a b\"");
        assert_eq!(unit_word("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(unit_word("100%"), "100%%");
        assert_eq!(unit_word("$HOME"), "$$HOME");
        assert_eq!(unit_word(""), "\"\"");
    }
}

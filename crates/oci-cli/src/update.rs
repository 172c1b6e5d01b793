//! `update`, `events` and `ps`: the commands over a container's cgroup.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use berth_runtime::state::{CONFIG_FILE, write_atomic};
use berth_runtime::{Runtime, Status, resources, stats};
use oci_spec::runtime::LinuxResources;
use serde_json::{Value, json};

use crate::args::UpdateArgs;

/// Bytes with docker's units (`512m`, `1g`, `100k`, plain bytes, `-1`).
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a size (bytes, or a number with k, m, g, t)"))?;
    if n < 0.0 {
        bail!("{s:?}: a size must not be negative (except -1)");
    }
    Ok((n * mult as f64) as i64)
}

/// Go's duration syntax for the common cases: 5s, 500ms, 1m, 1h, 1m30s.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        bail!("empty duration");
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let n: f64 = num
            .parse()
            .with_context(|| format!("invalid duration {s:?}"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let secs = match unit {
            "ns" => n / 1e9,
            "us" | "µs" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => bail!("invalid duration {s:?}: unknown unit {unit:?}"),
        };
        total += Duration::from_secs_f64(secs);
        rest = tail;
    }
    Ok(total)
}

fn resources_from_flags(u: &UpdateArgs) -> Result<Value> {
    let mut r = json!({});
    let mut set = |path: &[&str], v: Value| {
        let mut cur = &mut r;
        for p in &path[..path.len() - 1] {
            cur = cur
                .as_object_mut()
                .expect("object")
                .entry(p.to_string())
                .or_insert_with(|| json!({}));
        }
        cur[path[path.len() - 1]] = v;
    };
    if let Some(v) = u.blkio_weight {
        set(&["blockIO", "weight"], json!(v));
    }
    if let Some(v) = u.cpu_period {
        set(&["cpu", "period"], json!(v));
    }
    if let Some(v) = u.cpu_quota {
        set(&["cpu", "quota"], json!(v));
    }
    if let Some(v) = u.cpu_burst {
        set(&["cpu", "burst"], json!(v));
    }
    if let Some(v) = u.cpu_rt_period {
        set(&["cpu", "realtimePeriod"], json!(v));
    }
    if let Some(v) = u.cpu_rt_runtime {
        set(&["cpu", "realtimeRuntime"], json!(v));
    }
    if let Some(v) = u.cpu_share {
        set(&["cpu", "shares"], json!(v));
    }
    if let Some(v) = u.cpu_idle {
        set(&["cpu", "idle"], json!(v));
    }
    if let Some(v) = &u.cpuset_cpus {
        set(&["cpu", "cpus"], json!(v));
    }
    if let Some(v) = &u.cpuset_mems {
        set(&["cpu", "mems"], json!(v));
    }
    if let Some(v) = &u.memory {
        set(
            &["memory", "limit"],
            json!(parse_bytes(v).context("--memory")?),
        );
    }
    if let Some(v) = &u.memory_reservation {
        set(
            &["memory", "reservation"],
            json!(parse_bytes(v).context("--memory-reservation")?),
        );
    }
    if let Some(v) = &u.memory_swap {
        set(
            &["memory", "swap"],
            json!(parse_bytes(v).context("--memory-swap")?),
        );
    }
    if let Some(v) = &u.kernel_memory_tcp {
        set(
            &["memory", "kernelTCP"],
            json!(parse_bytes(v).context("--kernel-memory-tcp")?),
        );
    }
    if let Some(v) = u.pids_limit {
        set(&["pids", "limit"], json!(v));
    }
    Ok(r)
}

fn merge(base: &mut Value, update: &Value) {
    match (base, update) {
        (Value::Object(b), Value::Object(u)) => {
            for (k, v) in u {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, u) => *b = u.clone(),
    }
}

/// `update`: applies the new limits, then records them in the container's
/// stored config so later commands see them.
pub fn update(rt: &Runtime, u: UpdateArgs) -> Result<()> {
    let c = rt.load(&u.id)?;
    if c.status() == Status::Stopped {
        return Err(berth_runtime::Error::NotRunning(u.id.clone()).into());
    }
    let mut upd = match &u.resources {
        Some(p) => {
            let mut data = Vec::new();
            if p.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_end(&mut data)
                    .context("reading stdin")?;
            } else {
                data = std::fs::read(p).with_context(|| format!("{}", p.display()))?;
            }
            serde_json::from_slice::<Value>(&data).context("parsing --resources JSON")?
        }
        None => json!({}),
    };
    merge(&mut upd, &resources_from_flags(&u)?);
    let res: LinuxResources =
        serde_json::from_value(upd.clone()).context("invalid linux.resources")?;
    resources::apply(&c.record.cgroup, &res)?;
    let cfg_path = c.dir.join(CONFIG_FILE);
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&cfg_path)?)?;
    if !cfg["linux"].is_object() {
        cfg["linux"] = json!({});
    }
    let mut cur = cfg["linux"]["resources"].take();
    if cur.is_null() {
        cur = json!({});
    }
    merge(&mut cur, &upd);
    cfg["linux"]["resources"] = cur;
    write_atomic(&cfg_path, &serde_json::to_vec(&cfg)?)?;
    Ok(())
}

fn stats_event(id: &str, cg: &berth_runtime::cgroups::CgroupPaths) -> Value {
    json!({ "type": "stats", "id": id, "data": stats::collect(cg) })
}

/// `events`: one stats event with --stats; otherwise a stats event every
/// interval and an `oom` event whenever the kernel OOM-kills in the
/// container, until it stops.
pub fn events(rt: &Runtime, id: &str, once: bool, interval: &str) -> Result<i32> {
    let c = rt.load(id)?;
    if c.status() == Status::Stopped {
        return Err(berth_runtime::Error::NotRunning(id.into()).into());
    }
    let cg = c.record.cgroup.clone();
    let mut out = std::io::stdout().lock();
    if once {
        writeln!(out, "{}", stats_event(id, &cg))?;
        return Ok(0);
    }
    let every = parse_duration(interval).context("--interval")?;
    if every.is_zero() {
        bail!("--interval must be greater than 0");
    }
    let tick = Duration::from_millis(100).min(every);
    let mut ooms = stats::oom_kills(&cg);
    let mut since = Duration::ZERO;
    loop {
        let now_ooms = stats::oom_kills(&cg);
        if now_ooms > ooms {
            ooms = now_ooms;
            writeln!(out, "{}", json!({ "type": "oom", "id": id }))?;
            out.flush()?;
        }
        if c.status() == Status::Stopped {
            return Ok(0);
        }
        if since >= every {
            since = Duration::ZERO;
            writeln!(out, "{}", stats_event(id, &cg))?;
            out.flush()?;
        }
        std::thread::sleep(tick);
        since += tick;
    }
}

/// `ps`: the container's pids as JSON, or ps(1)'s table filtered to them.
pub fn ps(rt: &Runtime, id: &str, format: &str, args: &[String]) -> Result<i32> {
    let c = rt.load(id)?;
    let pids = c.record.cgroup.procs();
    match format {
        "json" => {
            crate::out(&(serde_json::to_string(&pids)? + "\n"));
            Ok(0)
        }
        "table" => {
            let args: Vec<String> = if args.is_empty() {
                vec!["-ef".into()]
            } else {
                args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("running ps")?;
            if !out.status.success() {
                bail!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let text_out = berth_runtime::stats::filter_ps(&text, &pids)
                .context("ps output has no PID column")?;
            crate::out(&text_out);
            Ok(0)
        }
        other => bail!("--format {other:?}: use table or json"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert_eq!(parse_bytes("1.5k").unwrap(), 1536);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("5x").is_err());
    }
}

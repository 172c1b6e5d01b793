//! `top`, `stats --no-stream`, `version` and `info`.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_engine::{Engine, db};
use serde_json::json;

use crate::args::{flag, parse};
use crate::containers::Failure;

type R<T = ()> = Result<T, Failure>;

use crate::containers::fail;

/// Processes of a running container (its cgroup).
fn procs(e: &mut Engine, key: &str) -> R<(db::ContainerRow, Vec<i32>)> {
    let row = e.get(key)?;
    if row.state != db::RUNNING && row.state != db::PAUSED {
        return fail(1, format!("container {} is not running", row.id));
    }
    let c = e
        .runtime()
        .load(&row.id)
        .map_err(berth_engine::Error::from)?;
    Ok((row, c.record.cgroup.procs()))
}

/// `top CONTAINER [ps OPTIONS]`: the host's `ps` limited to the
/// container's processes, as docker does.
pub fn top(e: &mut Engine, argv: &[String], out: &mut dyn Write) -> R {
    let Some((key, opts)) = argv.split_first() else {
        return Err(crate::args::Usage("\"top\" requires at least 1 argument".into()).into());
    };
    let (_, pids) = procs(e, key)?;
    let opts: Vec<String> = if opts.is_empty() {
        vec!["-ef".into()]
    } else {
        opts.to_vec()
    };
    let o = Command::new("ps")
        .args(&opts)
        .output()
        .or_else(|x| fail(1, format!("running ps: {x}")))?;
    if !o.status.success() {
        return fail(
            1,
            format!(
                "ps {}: {}",
                opts.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        );
    }
    let text = String::from_utf8_lossy(&o.stdout);
    let Some(rows) = berth_runtime::stats::filter_ps(&text, &pids) else {
        return fail(1, "Couldn't find PID field in ps output");
    };
    write!(out, "{rows}")?;
    Ok(())
}

/// go-units BytesSize: binary units, 4 significant digits.
fn bytes_size(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    let s = format!("{v:.4}");
    let s = if s.contains('.') {
        let digits_before = s.split('.').next().map_or(0, str::len);
        let keep = 4usize.saturating_sub(digits_before);
        let t = format!("{v:.keep$}");
        if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t
        }
    } else {
        s
    };
    format!("{s}{}", units[i])
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// `stats --no-stream`: one sample (CPU over 200 ms).
pub fn stats(e: &mut Engine, argv: &[String], out: &mut dyn Write) -> R {
    let p = parse(
        argv,
        &[
            flag("no-stream", None, false),
            flag("all", Some('a'), false),
            flag("no-trunc", None, false),
            flag("format", None, true),
        ],
        false,
    )?;
    if !p.bool("no-stream") {
        return fail(1, "berth stats streams only with --no-stream for now");
    }
    let rows = if p.args.is_empty() {
        e.list()?
            .into_iter()
            .filter(|r| r.state == db::RUNNING || r.state == db::PAUSED)
            .collect()
    } else {
        let mut v = vec![];
        for a in &p.args {
            v.push(e.get(a)?);
        }
        v
    };
    let rt = e.runtime();
    let mut first = vec![];
    for r in &rows {
        let cg = rt.load(&r.id).ok().map(|c| c.record.cgroup);
        let s = cg.as_ref().map(berth_runtime::stats::collect);
        first.push((cg, s.map(|s| s.cpu.usage.total)));
    }
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    let wall = t0.elapsed().as_nanos() as f64;
    let host_mem = mem_total();
    let mut table = vec![
        [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let mut values = vec![];
    for (r, (cg, cpu0)) in rows.iter().zip(first) {
        let Some(cg) = cg else { continue };
        let s = berth_runtime::stats::collect(&cg);
        let cpu = match cpu0 {
            Some(c0) => (s.cpu.usage.total.saturating_sub(c0)) as f64 / wall * 100.0,
            None => 0.0,
        };
        let usage = s.memory.usage.usage;
        let limit = match s.memory.usage.limit {
            0 => host_mem,
            l if l > host_mem && host_mem > 0 => host_mem,
            l => l,
        };
        let (mut rd, mut wr) = (0u64, 0u64);
        for b in &s.blkio.io_service_bytes_recursive {
            match b.op.to_ascii_lowercase().as_str() {
                "read" => rd += b.value,
                "write" => wr += b.value,
                _ => {}
            }
        }
        let id = if p.bool("no-trunc") {
            r.id.clone()
        } else {
            r.id[..12].to_string()
        };
        let memp = if limit > 0 {
            usage as f64 / limit as f64 * 100.0
        } else {
            0.0
        };
        let row = vec![
            id.clone(),
            r.name.clone(),
            format!("{cpu:.2}%"),
            format!("{} / {}", bytes_size(usage), bytes_size(limit)),
            format!("{memp:.2}%"),
            "0B / 0B".to_string(),
            format!(
                "{} / {}",
                crate::fmt::human_size(rd),
                crate::fmt::human_size(wr)
            ),
            s.pids.current.to_string(),
        ];
        values.push(json!({
            "ID": id, "Container": id, "Name": r.name, "CPUPerc": row[2], "MemUsage": row[3],
            "MemPerc": row[4], "NetIO": row[5], "BlockIO": row[6], "PIDs": row[7],
        }));
        table.push(row);
    }
    if let Some(f) = p.value("format").filter(|f| !f.is_empty()) {
        let header = json!({
            "ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
            "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
            "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
        });
        let default = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";
        return crate::write_formatted(out, f, default, &header, &values).map_err(|x| match x {
            crate::Fail::Usage(m) | crate::Fail::Cmd(m) => Failure {
                code: 1,
                msg: m,
                usage: false,
            },
        });
    }
    write!(out, "{}", crate::fmt::table(&table))?;
    Ok(())
}

pub fn version(out: &mut dyn Write) -> R {
    let v = env!("CARGO_PKG_VERSION");
    writeln!(
        out,
        "Client:\n Version:           {v}\n OS/Arch:           linux/{arch}\n\nServer: (none: berth is daemonless)\n Engine:\n  Version:          {v}\n  OS/Arch:          linux/{arch}\n  Runtime:          berth-runtime (in-process)",
        arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        }
    )?;
    Ok(())
}

pub fn info(e: &mut Engine, out: &mut dyn Write) -> R {
    let rows = e.list()?;
    let count = |s: &str| rows.iter().filter(|r| r.state == s).count();
    let images = e.images()?.list().map_err(berth_engine::Error::from)?.len();
    let cgv = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        2
    } else {
        1
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    writeln!(
        out,
        "Server:\n Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}\n Images: {images}\n \
         Server Version: {}\n Storage Driver: overlay2\n Logging Driver: json-file\n \
         Cgroup Driver: cgroupfs\n Cgroup Version: {cgv}\n Runtimes: berth-runtime\n \
         Default Runtime: berth-runtime\n Security Options:\n  seccomp\n   Profile: builtin\n \
         Kernel Version: {}\n Operating System: linux\n CPUs: {cpus}\n Total Memory: {}\n \
         Docker Root Dir: {}",
        rows.len(),
        count(db::RUNNING),
        count(db::PAUSED),
        rows.len() - count(db::RUNNING) - count(db::PAUSED),
        env!("CARGO_PKG_VERSION"),
        kernel.trim(),
        bytes_size(mem_total()),
        e.root.display()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_size_as_go_units() {
        assert_eq!(super::bytes_size(0), "0B");
        assert_eq!(super::bytes_size(1536), "1.5KiB");
        assert_eq!(super::bytes_size(2_080_000), "1.984MiB");
        assert_eq!(super::bytes_size(64 << 20), "64MiB");
    }
}

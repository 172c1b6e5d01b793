//! `top`, `stats --no-stream`, `version` and `info`.

use std::io::Write;
use std::time::{Duration, Instant};

use berth_engine::{Engine, db};
use serde_json::json;

use crate::args::Parsed;
use crate::containers::Failure;

type R<T = ()> = Result<T, Failure>;

/// `top CONTAINER [ps OPTIONS]`: the host's `ps` limited to the
/// container's processes, as docker does.
pub fn top(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    let Some((key, opts)) = p.args.split_first() else {
        return Err(crate::args::Usage("\"top\" requires at least 1 argument".into()).into());
    };
    let rows = e.top(key, opts).map_err(|x| match x {
        berth_engine::Error::BadState { id, .. } => Failure {
            code: 1,
            msg: format!("container {id} is not running"),
            usage: false,
        },
        x => x.into(),
    })?;
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

/// `stats --no-stream`: one sample (CPU over 200 ms).
pub fn stats(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    let stream = !p.bool("no-stream");
    let tty = stream && std::io::IsTerminal::is_terminal(&std::io::stdout());
    // CPU % is the share of one CPU since the previous sample: 200 ms for
    // --no-stream, a second while streaming (docker's interval).
    let mut prev: std::collections::HashMap<String, (u64, Instant)> = Default::default();
    let mut first = true;
    loop {
        let rows = stats_rows(e, p)?;
        let samples: Vec<_> = rows.iter().map(|r| (r, e.stats(r))).collect();
        if first {
            for (r, s) in &samples {
                if let Some(s) = s {
                    prev.insert(r.id.clone(), (s.cgroup.cpu.usage.total, Instant::now()));
                }
            }
            first = false;
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let (table, values) = stats_table(p, &samples, &mut prev);
        if let Some(f) = p.value("format").filter(|f| !f.is_empty()) {
            let header = json!({
                "ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
                "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
            });
            let default = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";
            if tty {
                write!(out, "\x1b[2J\x1b[H")?;
            }
            crate::write_formatted(out, f, default, &header, &values).map_err(|x| match x {
                crate::Fail::Usage(m) | crate::Fail::Cmd(m) => Failure {
                    code: 1,
                    msg: m,
                    usage: false,
                },
            })?;
        } else {
            if tty {
                write!(out, "\x1b[2J\x1b[H")?;
            }
            write!(out, "{}", crate::fmt::table(&table))?;
        }
        out.flush()?;
        if !stream {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The containers `stats` shows: those named (each must exist), else the
/// running ones (all with `-a`), looked up again for every sample.
fn stats_rows(e: &mut Engine, p: &crate::args::Parsed) -> R<Vec<db::ContainerRow>> {
    if p.args.is_empty() {
        return Ok(e
            .list()?
            .into_iter()
            .filter(|r| p.bool("all") || r.state == db::RUNNING || r.state == db::PAUSED)
            .collect());
    }
    let mut v = vec![];
    for a in &p.args {
        v.push(e.get(a)?);
    }
    Ok(v)
}

type Sample<'a> = (&'a db::ContainerRow, Option<berth_engine::stats::Sample>);

/// One table of samples; `prev` holds each container's CPU time at its
/// previous sample (updated).
fn stats_table(
    p: &crate::args::Parsed,
    samples: &[Sample<'_>],
    prev: &mut std::collections::HashMap<String, (u64, Instant)>,
) -> (Vec<Vec<String>>, Vec<serde_json::Value>) {
    let host_mem = berth_engine::inspect::mem_total();
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
    for (r, s) in samples {
        let id = if p.bool("no-trunc") {
            r.id.clone()
        } else {
            r.id[..12.min(r.id.len())].to_string()
        };
        let row = match s {
            // Not running: docker shows zeros.
            None => ["0.00%", "0B / 0B", "0.00%", "0B / 0B", "0B / 0B", "0"]
                .map(String::from)
                .to_vec(),
            Some(s) => sample_columns(s, prev.get(&r.id).copied(), host_mem),
        };
        if let Some(s) = s {
            prev.insert(r.id.clone(), (s.cgroup.cpu.usage.total, Instant::now()));
        }
        let row: Vec<String> = [id.clone(), r.name.clone()]
            .into_iter()
            .chain(row)
            .collect();
        values.push(json!({
            "ID": id, "Container": id, "Name": r.name, "CPUPerc": row[2], "MemUsage": row[3],
            "MemPerc": row[4], "NetIO": row[5], "BlockIO": row[6], "PIDs": row[7],
        }));
        table.push(row);
    }
    (table, values)
}

/// CPU %, memory usage / limit, memory %, net and block I/O and pids of
/// one sample; CPU % over the time since `prev` (CPU time, when).
fn sample_columns(
    sample: &berth_engine::stats::Sample,
    prev: Option<(u64, Instant)>,
    host_mem: u64,
) -> Vec<String> {
    let s = &sample.cgroup;
    let (net_rx, net_tx) = sample.net_io();
    let cpu = match prev {
        Some((c0, t0)) => {
            let wall = t0.elapsed().as_nanos().max(1) as f64;
            s.cpu.usage.total.saturating_sub(c0) as f64 / wall * 100.0
        }
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
    let memp = if limit > 0 {
        usage as f64 / limit as f64 * 100.0
    } else {
        0.0
    };
    vec![
        format!("{cpu:.2}%"),
        format!("{} / {}", bytes_size(usage), bytes_size(limit)),
        format!("{memp:.2}%"),
        format!(
            "{} / {}",
            crate::fmt::human_size(net_rx),
            crate::fmt::human_size(net_tx)
        ),
        format!(
            "{} / {}",
            crate::fmt::human_size(rd),
            crate::fmt::human_size(wr)
        ),
        s.pids.current.to_string(),
    ]
}

/// `version` (`--format` over docker's `{"Client": …, "Server": …}`).
pub fn version(p: &Parsed, out: &mut dyn Write) -> R {
    use berth_engine::system::{API_VERSION, arch};
    let server = berth_engine::system::version();
    let v = env!("CARGO_PKG_VERSION");
    if let Some(f) = p.value("format") {
        let client = json!({"Platform": {"Name": "Berth"}, "Version": v,
            "ApiVersion": API_VERSION, "DefaultAPIVersion": API_VERSION, "GitCommit": "",
            "GoVersion": "", "Os": "linux", "Arch": arch(), "BuildTime": "", "Context": "default"});
        let both = json!({"Client": client, "Server": server});
        return crate::inspect::print(&[crate::inspect::Object::Value(both)], Some(f), out);
    }
    writeln!(
        out,
        "Client:\n Version:           {v}\n OS/Arch:           linux/{arch}\n\nServer: (none: berth is daemonless)\n Engine:\n  Version:          {v}\n  OS/Arch:          linux/{arch}\n  Runtime:          berth-runtime (in-process)",
        arch = arch()
    )?;
    Ok(())
}

/// `info`: docker's layout of the engine's `/info` (`berth_engine::system::info`), or
/// `--format` over it (with docker's `ClientInfo`); dockerd's warnings on stderr.
pub fn info(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    let mut v = berth_engine::system::info(e)?;
    if let Some(f) = p.value("format") {
        v["ClientInfo"] = json!({"Debug": false, "Context": "default", "Plugins": [],
            "Warnings": null});
        return crate::inspect::print(&[crate::inspect::Object::Value(v)], Some(f), out);
    }
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let security: String = v["SecurityOptions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.as_str())
        .filter_map(|o| {
            let name = o.split(',').next()?.strip_prefix("name=")?;
            Some(match name {
                "seccomp" => "  seccomp\n   Profile: builtin\n".to_string(),
                "cgroupns" => String::new(),
                n => format!("  {n}\n"),
            })
        })
        .collect();
    writeln!(
        out,
        "Server:\n Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}\n Images: {}\n \
         Server Version: {}\n Storage Driver: overlay2\n Logging Driver: json-file\n \
         Cgroup Driver: cgroupfs\n Cgroup Version: {}\n Runtimes: berth-runtime\n \
         Default Runtime: berth-runtime\n Security Options:\n{security} \
         Kernel Version: {}\n Operating System: linux\n CPUs: {}\n Total Memory: {}\n \
         Docker Root Dir: {}",
        n("Containers"),
        n("ContainersRunning"),
        n("ContainersPaused"),
        n("ContainersStopped"),
        n("Images"),
        v["ServerVersion"].as_str().unwrap_or_default(),
        v["CgroupVersion"].as_str().unwrap_or_default(),
        v["KernelVersion"].as_str().unwrap_or_default(),
        n("NCPU"),
        bytes_size(n("MemTotal")),
        e.root.display()
    )?;
    let ns = berth_engine::rootless::info();
    if ns.rootless {
        let text = |m: &[(u32, u32, u32)]| {
            m.iter()
                .map(|(a, b, n)| format!("{a}:{b}:{n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        writeln!(
            out,
            " Rootless: true
  Run Dir: {}
  Network: slirp4netns
  ID Mappings:
   UID: {}
   GID: {}",
            e.run_dir.display(),
            text(&ns.uid_map),
            text(&ns.gid_map)
        )?;
        if ns.uid_map.len() == 1 {
            writeln!(
                out,
                "WARNING: no subordinate ids for this user in /etc/subuid and /etc/subgid: \
                 files of other owners in images are given to root"
            )?;
        }
    }
    // docker's client: the daemon's warnings after the rest, on stderr.
    for w in v["Warnings"].as_array().into_iter().flatten() {
        eprintln!("{}", w.as_str().unwrap_or_default());
    }
    Ok(())
}

/// `system migrate` (podman's): a rootless user's namespace is made once, with the
/// subordinate ids of that moment; this stops every container and the process that holds
/// the namespace, so the next command makes it anew from /etc/subuid and /etc/subgid.
pub fn system_migrate(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    if !p.args.is_empty() {
        return Err(Failure {
            code: 125,
            msg: "\"system migrate\" accepts no arguments".into(),
            usage: true,
        });
    }
    if !berth_engine::rootless::active() {
        writeln!(out, "Not rootless: nothing to migrate.")?;
        return Ok(());
    }
    for r in e.list()? {
        if r.state == db::RUNNING || r.state == db::PAUSED {
            e.stop(&r.id, Some(10))?;
            writeln!(out, "stopped {}", r.name)?;
        }
    }
    if let Some(pid) = berth_engine::rootless::stop_pause().map_err(berth_engine::Error::from)? {
        writeln!(out, "stopped the user namespace's holder (pid {pid})")?;
    }
    Ok(())
}

/// `system check [--repair] [-q]`: every problem of the store and the state, with what the
/// repair does (or did); exit 1 while any is left (podman's `system check` is the model).
pub fn system_check(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    if !p.args.is_empty() {
        return Err(Failure {
            code: 125,
            msg: "\"system check\" accepts no arguments".into(),
            usage: true,
        });
    }
    let repair = p.has("repair");
    let r = e.check(repair)?;
    if !p.has("quiet") {
        writeln!(
            out,
            "Checked {} blobs, {} layer snapshots, {} images, {} containers, {} volumes.",
            r.images.blobs, r.images.snapshots, r.images.images, r.containers, r.volumes
        )?;
    }
    for pr in r.all() {
        if pr.repaired {
            writeln!(out, "repaired: {} ({})", pr.what, pr.repair)?;
        } else if repair {
            writeln!(out, "left: {} ({})", pr.what, pr.repair)?;
        } else {
            writeln!(out, "problem: {} (--repair would {})", pr.what, pr.repair)?;
        }
    }
    let left = r.unresolved();
    if left > 0 {
        return Err(Failure {
            code: 1,
            msg: format!(
                "{left} problem{} {}",
                if left == 1 { "" } else { "s" },
                if repair {
                    "could not be repaired"
                } else {
                    "found (berth system check --repair)"
                }
            ),
            usage: false,
        });
    }
    if !p.has("quiet") {
        writeln!(out, "No problems{}.", if repair { " left" } else { "" })?;
    }
    Ok(())
}

/// `system df [-v]`: space used by images, containers and volumes, and
/// what removing the unused ones would give back (docker's columns).
pub fn system_df(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    use std::collections::{BTreeMap, BTreeSet};
    if !p.args.is_empty() {
        return Err(Failure {
            code: 125,
            msg: "\"system df\" accepts no arguments".into(),
            usage: true,
        });
    }
    let rows = e.list()?;
    let store = e.images()?;
    let images = store.list().map_err(berth_engine::Error::from)?;
    let used: BTreeSet<String> = rows.iter().map(|r| r.image_id.clone()).collect();
    // Layers are shared: each snapshot counts once; a snapshot is
    // reclaimable when no image in use has it.
    let mut snap_size: BTreeMap<String, u64> = BTreeMap::new();
    let mut active_snaps: BTreeSet<String> = BTreeSet::new();
    for img in &images {
        let in_use = used.contains(&img.id.to_string());
        for c in &img.chain_ids {
            snap_size
                .entry(c.to_string())
                .or_insert_with(|| store.snapshots().info(c).map(|i| i.size).unwrap_or(0));
            if in_use {
                active_snaps.insert(c.to_string());
            }
        }
    }
    // Content no image references (a killed pull, load or commit left it): reclaimable by
    // `image prune`, so counted here as docker counts its dangling content.
    let image_blobs: std::collections::HashSet<_> = images
        .iter()
        .flat_map(|i| i.blobs.iter().cloned())
        .collect();
    // The builder's cache: its layers no image uses, and its cache mounts (counted there, not
    // as dangling image content).
    let build_cache = berth_build::cache::records(&store, &image_blobs);
    let cache_size: u64 = build_cache
        .iter()
        .filter(|r| !r.shared)
        .map(|r| r.size)
        .sum();
    let cache_blobs: u64 = build_cache
        .iter()
        .filter(|r| !r.shared && r.kind == "regular")
        .map(|r| r.size)
        .sum();
    let orphaned = store
        .unreferenced_size()
        .map_err(berth_engine::Error::from)?
        .saturating_sub(cache_blobs);
    let images_size: u64 = snap_size.values().sum::<u64>() + orphaned;
    let images_reclaim: u64 = snap_size
        .iter()
        .filter(|(k, _)| !active_snaps.contains(*k))
        .map(|(_, v)| v)
        .sum::<u64>()
        + orphaned;
    let active_images = images
        .iter()
        .filter(|i| used.contains(&i.id.to_string()))
        .count();
    let ctr_sizes: Vec<(db::ContainerRow, u64)> = rows
        .into_iter()
        .map(|r| {
            let s = e.container_size(&r.id);
            (r, s)
        })
        .collect();
    let running = |r: &db::ContainerRow| r.state == db::RUNNING || r.state == db::PAUSED;
    let ctr_size: u64 = ctr_sizes.iter().map(|(_, s)| s).sum();
    let ctr_reclaim: u64 = ctr_sizes
        .iter()
        .filter(|(r, _)| !running(r))
        .map(|(_, s)| s)
        .sum();
    let active_ctrs = ctr_sizes.iter().filter(|(r, _)| running(r)).count();
    let volumes = e.db.volume_list()?;
    let mut vol_rows = Vec::new();
    for v in &volumes {
        let users = berth_engine::volumes::users(e, &v.name)?;
        let size = berth_engine::dir_size(&berth_engine::spec::volume_data(&e.root, &v.name));
        vol_rows.push((v.name.clone(), users.len(), size));
    }
    let vol_size: u64 = vol_rows.iter().map(|v| v.2).sum();
    let vol_reclaim: u64 = vol_rows.iter().filter(|v| v.1 == 0).map(|v| v.2).sum();
    let active_vols = vol_rows.iter().filter(|v| v.1 > 0).count();
    let pct = |part: u64, whole: u64| {
        if whole == 0 {
            0
        } else {
            (part as f64 * 100.0 / whole as f64).round() as u64
        }
    };
    let reclaim =
        |part: u64, whole: u64| format!("{} ({}%)", crate::fmt::human_size(part), pct(part, whole));
    let summary = [
        (
            "Images",
            images.len(),
            active_images,
            images_size,
            reclaim(images_reclaim, images_size),
        ),
        (
            "Containers",
            ctr_sizes.len(),
            active_ctrs,
            ctr_size,
            reclaim(ctr_reclaim, ctr_size),
        ),
        (
            "Local Volumes",
            volumes.len(),
            active_vols,
            vol_size,
            reclaim(vol_reclaim, vol_size),
        ),
        (
            "Build Cache",
            build_cache.len(),
            0,
            cache_size,
            // Nothing is in use between builds: all of it is reclaimable.
            crate::fmt::human_size(cache_size),
        ),
    ];
    if let Some(f) = p.value("format") {
        for (t, total, active, size, rec) in &summary {
            let v = json!({"Type": t, "TotalCount": total.to_string(), "Active": active.to_string(),
                "Size": crate::fmt::human_size(*size), "Reclaimable": rec});
            if f == "json" || f == "{{json .}}" {
                writeln!(out, "{v}")?;
            } else {
                let bad =
                    |e: String| Failure::from(berth_engine::Error::Other(format!("--format: {e}")));
                let t = crate::tmpl::Template::parse(f).map_err(|e| bad(e.to_string()))?;
                let s = t.execute(&v, false).map_err(|e| bad(e.to_string()))?;
                writeln!(out, "{s}")?;
            }
        }
        return Ok(());
    }
    let mut table = vec![vec![
        "TYPE".to_string(),
        "TOTAL".into(),
        "ACTIVE".into(),
        "SIZE".into(),
        "RECLAIMABLE".into(),
    ]];
    for (t, total, active, size, rec) in &summary {
        table.push(vec![
            t.to_string(),
            total.to_string(),
            active.to_string(),
            crate::fmt::human_size(*size),
            rec.clone(),
        ]);
    }
    if !p.bool("verbose") {
        write!(out, "{}", crate::fmt::table(&table))?;
        return Ok(());
    }
    writeln!(out, "Images space usage:\n")?;
    let mut t = vec![vec![
        "REPOSITORY".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "SIZE".into(),
        "CONTAINERS".into(),
    ]];
    for img in &images {
        let n = ctr_sizes
            .iter()
            .filter(|(r, _)| r.image_id == img.id.to_string())
            .count();
        let (repo, tag) = img
            .familiar_tags()
            .first()
            .and_then(|t| {
                t.rsplit_once(':')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            })
            .unwrap_or_else(|| ("<none>".into(), "<none>".into()));
        t.push(vec![
            repo,
            tag,
            img.id.hex()[..12].to_string(),
            crate::fmt::human_size(img.size),
            n.to_string(),
        ]);
    }
    write!(out, "{}", crate::fmt::table(&t))?;
    writeln!(out, "\nContainers space usage:\n")?;
    let mut t = vec![vec![
        "CONTAINER ID".to_string(),
        "IMAGE".into(),
        "SIZE".into(),
        "STATUS".into(),
        "NAMES".into(),
    ]];
    for (r, s) in &ctr_sizes {
        t.push(vec![
            r.id[..12.min(r.id.len())].to_string(),
            r.image.clone(),
            crate::fmt::human_size(*s),
            r.state.clone(),
            r.name.trim_start_matches('/').to_string(),
        ]);
    }
    write!(out, "{}", crate::fmt::table(&t))?;
    writeln!(out, "\nLocal Volumes space usage:\n")?;
    let mut t = vec![vec![
        "VOLUME NAME".to_string(),
        "LINKS".into(),
        "SIZE".into(),
    ]];
    for (name, links, size) in &vol_rows {
        t.push(vec![
            name.clone(),
            links.to_string(),
            crate::fmt::human_size(*size),
        ]);
    }
    write!(out, "{}", crate::fmt::table(&t))?;
    writeln!(
        out,
        "\nBuild cache usage: {}",
        crate::fmt::human_size(cache_size)
    )?;
    if !build_cache.is_empty() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let ago = |t: &str| berth_engine::timefmt::human_ago(Some(t), now);
        let mut t = vec![vec![
            "CACHE ID".to_string(),
            "CACHE TYPE".into(),
            "SIZE".into(),
            "CREATED".into(),
            "LAST USED".into(),
            "USAGE".into(),
            "SHARED".into(),
        ]];
        for r in &build_cache {
            t.push(vec![
                r.id[..r.id.len().min(25)].to_string(),
                r.kind.to_string(),
                crate::fmt::human_size(r.size),
                ago(&r.created),
                ago(&r.last_used),
                "1".into(),
                r.shared.to_string(),
            ]);
        }
        writeln!(out)?;
        write!(out, "{}", crate::fmt::table(&t))?;
    }
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

//! `GET /containers/{id}/stats`: docker's stats JSON, streamed (a sample
//! a second) or one-shot (`stream=false`), from the engine's samples (the
//! same `berth stats` prints).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_engine::stats::{Sample, system_cpu_usage};
use bytes::Bytes;
use hyper::Response;
use serde_json::{Map, Value, json};

use crate::body::{self, Body};
use crate::error::ApiError;
use crate::{Query, Shared, engine, engine_own};

/// docker's interval between streamed samples.
const INTERVAL: Duration = Duration::from_secs(1);

/// The CPU part of a sample (`cpu_stats` and `precpu_stats`).
#[derive(Clone, Default)]
struct Cpu {
    v: Value,
    /// When it was read (RFC 3339).
    read: String,
}

pub async fn stats(st: &Shared, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let stream = q.get("stream").is_none() || q.flag("stream");
    let one_shot = !stream && q.flag("one-shot");
    let key = id.to_string();
    // Unknown containers are a 404 before the stream starts.
    let row = engine(st, move |e| Ok(e.get(&key)?)).await?;
    let (tx, body) = body::channel();
    let id = row.id.clone();
    let job = engine_own(st, move |e| {
        let mut pre = Cpu {
            v: json!({"cpu_usage": {"total_usage": 0}, "throttling_data": {}}),
            read: String::new(),
        };
        if !stream && !one_shot {
            // One sample with its CPU % base: a first reading, a short wait.
            let row = e.get(&id)?;
            pre = cpu(e.stats(&row).as_ref());
            std::thread::sleep(Duration::from_millis(500));
        }
        loop {
            let row = e.get(&id)?;
            let s = e.stats(&row);
            let now = cpu(s.as_ref());
            let v = sample_json(&row, s.as_ref(), &now, &pre);
            let line = Bytes::from(v.to_string() + "\n");
            if tx.blocking_send(line).is_err() || !stream {
                return Ok(());
            }
            pre = now;
            std::thread::sleep(INTERVAL);
        }
    });
    tokio::spawn(async move {
        // A container removed while streamed ends the stream.
        let _ = job.await;
    });
    let mut r = Response::new(body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let base = berth_engine::timefmt::rfc3339(d.as_secs() as i64);
    format!("{}.{:09}Z", base.trim_end_matches('Z'), d.subsec_nanos())
}

fn cpu(s: Option<&Sample>) -> Cpu {
    let Some(s) = s else {
        return Cpu {
            read: now_rfc3339(),
            v: json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}),
        };
    };
    let c = &s.cgroup.cpu;
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut usage = json!({
        "total_usage": c.usage.total,
        "usage_in_kernelmode": c.usage.kernel,
        "usage_in_usermode": c.usage.user,
    });
    if !c.usage.percpu.is_empty() {
        usage["percpu_usage"] = json!(c.usage.percpu);
    }
    Cpu {
        read: now_rfc3339(),
        v: json!({
            "cpu_usage": usage,
            "system_cpu_usage": system_cpu_usage(),
            "online_cpus": online,
            "throttling_data": {
                "periods": c.throttling.periods,
                "throttled_periods": c.throttling.throttled_periods,
                "throttled_time": c.throttling.throttled_time,
            },
        }),
    }
}

/// One sample in docker's shape (zeros for a container that is not
/// running, as docker's).
fn sample_json(
    row: &berth_engine::db::ContainerRow,
    s: Option<&Sample>,
    now: &Cpu,
    pre: &Cpu,
) -> Value {
    let mut v = json!({
        "read": now.read,
        "preread": if pre.read.is_empty() { "0001-01-01T00:00:00Z" } else { &pre.read },
        "name": format!("/{}", row.name),
        "id": row.id,
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": now.v,
        "precpu_stats": pre.v,
    });
    let Some(s) = s else {
        v["pids_stats"] = json!({});
        v["blkio_stats"] =
            json!({"io_service_bytes_recursive": null, "io_serviced_recursive": null});
        v["memory_stats"] = json!({});
        return v;
    };
    let c = &s.cgroup;
    let host_mem = berth_engine::inspect::mem_total();
    let limit = match c.memory.usage.limit {
        0 => host_mem,
        l if l > host_mem && host_mem > 0 => host_mem,
        l => l,
    };
    let mut pids = json!({"current": c.pids.current});
    if c.pids.limit > 0 && c.pids.limit != u64::MAX {
        pids["limit"] = json!(c.pids.limit);
    }
    v["pids_stats"] = pids;
    let entries = |e: &[berth_runtime::stats::BlkioEntry]| -> Value {
        if e.is_empty() {
            return Value::Null;
        }
        e.iter()
            .map(|b| json!({"major": b.major, "minor": b.minor, "op": b.op, "value": b.value}))
            .collect()
    };
    v["blkio_stats"] = json!({
        "io_service_bytes_recursive": entries(&c.blkio.io_service_bytes_recursive),
        "io_serviced_recursive": entries(&c.blkio.io_serviced_recursive),
    });
    let mut mem = json!({
        "usage": c.memory.usage.usage,
        "stats": c.memory.raw,
        "limit": limit,
    });
    if c.memory.usage.max > 0 {
        mem["max_usage"] = json!(c.memory.usage.max);
    }
    if c.memory.usage.failcnt > 0 {
        mem["failcnt"] = json!(c.memory.usage.failcnt);
    }
    v["memory_stats"] = mem;
    if !s.networks.is_empty() {
        let mut nets = Map::new();
        for n in &s.networks {
            nets.insert(
                n.name.clone(),
                json!({
                    "rx_bytes": n.rx_bytes, "rx_packets": n.rx_packets,
                    "rx_errors": n.rx_errors, "rx_dropped": n.rx_dropped,
                    "tx_bytes": n.tx_bytes, "tx_packets": n.tx_packets,
                    "tx_errors": n.tx_errors, "tx_dropped": n.tx_dropped,
                }),
            );
        }
        v["networks"] = Value::Object(nets);
    }
    v
}

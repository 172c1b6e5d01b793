//! `/_ping`, `/version`, `/info`, `/system/df`, `/events`, `/auth`.

use bytes::Bytes;
use hyper::{Method, Response, header};
use serde_json::{Value, json};

use crate::body::{self, Body};
use crate::error::ApiError;
use crate::{API_VERSION, MIN_API_VERSION, Query, Shared, engine, ok_json};

/// `GET`/`HEAD /_ping`: what clients negotiate their version with.
pub fn ping(m: &Method) -> Response<Body> {
    let mut r = Response::new(if m == Method::HEAD {
        body::empty()
    } else {
        body::full("OK")
    });
    let h = r.headers_mut();
    h.insert("Builder-Version", header::HeaderValue::from_static("1"));
    h.insert(
        "Docker-Experimental",
        header::HeaderValue::from_static("false"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, header::HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

pub fn version() -> Response<Body> {
    let v = env!("CARGO_PKG_VERSION");
    ok_json(&json!({
        "Platform": {"Name": "Berth"},
        "Components": [{"Name": "Engine", "Version": v, "Details": {
            "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
            "Arch": arch(), "KernelVersion": kernel(),
        }}],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": arch(),
        "KernelVersion": kernel(),
        "Experimental": false,
        "BuildTime": "",
    }))
}

pub async fn info(st: &Shared) -> Result<Response<Body>, ApiError> {
    let root = st.root.clone();
    let (total, running, paused, images) = engine(st, |e| {
        let rows = e.db.list()?;
        let count = |s: &str| rows.iter().filter(|r| r.state == s).count();
        let images = e.images()?.list()?.len();
        Ok((
            rows.len(),
            count(berth_engine::db::RUNNING),
            count(berth_engine::db::PAUSED),
            images,
        ))
    })
    .await?;
    let cgv = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    Ok(ok_json(&json!({
        "ID": "",
        "Containers": total,
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": total - running - paused,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Log": ["json-file"]},
        "MemoryLimit": true,
        "SwapLimit": false,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0,
        "NGoroutines": 0,
        "SystemTime": berth_engine::timefmt::rfc3339(berth_engine::timefmt::now_secs()),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgv,
        "NEventsListener": 0,
        "KernelVersion": kernel(),
        "OperatingSystem": "linux",
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": [], "Mirrors": []},
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "MemTotal": berth_engine::inspect::mem_total(),
        "DockerRootDir": root,
        "Name": host.trim(),
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": {"berth-runtime": {"path": "berth-runtime"}},
        "DefaultRuntime": "berth-runtime",
        "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "berth-init",
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"],
        "Warnings": [],
    })))
}

pub async fn df(st: &Shared) -> Result<Response<Body>, ApiError> {
    let v = engine(st, |e| {
        let store = e.images()?;
        let rows = e.list()?;
        let used: Vec<String> = rows.iter().map(|r| r.image_id.clone()).collect();
        let images: Vec<_> = store
            .list()?
            .iter()
            .map(|r| {
                let n = used.iter().filter(|u| **u == r.id.to_string()).count();
                json!({
                    "Id": r.id.to_string(), "ParentId": "", "RepoTags": r.familiar_tags(),
                    "RepoDigests": [], "Created": r.added, "Size": r.size, "SharedSize": -1,
                    "Labels": {}, "Containers": n,
                })
            })
            .collect();
        let containers: Vec<_> = rows
            .iter()
            .map(|r| {
                let mut v = berth_engine::inspect::container_summary(e, r);
                v["SizeRw"] = json!(e.container_size(&r.id));
                v
            })
            .collect();
        let volumes: Vec<_> =
            e.db.volume_list()?
                .iter()
                .filter_map(|v| berth_engine::inspect::volume_json(e, &v.name).ok())
                .collect();
        let layers: u64 = store.list()?.iter().map(|r| r.size).sum();
        let build_cache = berth_engine::build::cache_json(&store)?;
        Ok(json!({
            "LayersSize": layers, "Images": images, "Containers": containers,
            "Volumes": volumes, "BuildCache": build_cache,
        }))
    })
    .await?;
    Ok(ok_json(&v))
}

/// `/events`: container events (create, start, die, destroy, pause,
/// unpause, rename is not seen) found by watching the engine's records,
/// so what the berth CLI does shows too. The engine keeps no journal:
/// `since` in the past replays nothing; `until` ends the stream.
pub async fn events(st: &Shared, q: &Query) -> Result<Response<Body>, ApiError> {
    let filters = q.filters()?;
    for f in &filters {
        let k = f.split_once('=').map_or(f.as_str(), |(k, _)| k);
        if !matches!(k, "container" | "type" | "event" | "image" | "label") {
            return Err(ApiError::bad(format!("invalid filter '{k}'")));
        }
    }
    let until = match q.get("until").filter(|u| !u.is_empty()) {
        Some(u) => Some(
            u.split('.')
                .next()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| ApiError::bad(format!("invalid value for until: {u:?}")))?,
        ),
        None => None,
    };
    let (tx, body) = body::channel();
    let st = st.clone();
    tokio::spawn(async move {
        let mut last = snapshot(&st).await.unwrap_or_default();
        loop {
            let now = berth_engine::timefmt::now_secs();
            if until.is_some_and(|u| now >= u) || tx.is_closed() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let Ok(cur) = snapshot(&st).await else {
                continue;
            };
            for ev in diff(&st, &last, &cur) {
                if !wanted(&ev, &filters) {
                    continue;
                }
                if tx.send(Bytes::from(ev.to_string() + "\n")).await.is_err() {
                    return;
                }
            }
            last = cur;
        }
    });
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// A container as the event watcher sees it.
#[derive(Clone, Default)]
struct Seen {
    name: String,
    image: String,
    state: String,
    exit_code: i32,
    started_at: String,
}

async fn snapshot(st: &Shared) -> Result<std::collections::HashMap<String, Seen>, ApiError> {
    engine(st, |e| {
        Ok(e.list()?
            .into_iter()
            .map(|r| {
                (
                    r.id.clone(),
                    Seen {
                        name: r.name,
                        image: r.image,
                        state: r.state,
                        exit_code: r.exit_code,
                        started_at: r.started_at,
                    },
                )
            })
            .collect())
    })
    .await
}

fn event(id: &str, s: &Seen, action: &str, extra: &[(&str, String)]) -> Value {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let mut attrs = serde_json::Map::new();
    attrs.insert("name".into(), json!(s.name));
    attrs.insert("image".into(), json!(s.image));
    for (k, v) in extra {
        attrs.insert((*k).into(), json!(v));
    }
    json!({
        "status": action, "id": id, "from": s.image,
        "Type": "container", "Action": action,
        "Actor": {"ID": id, "Attributes": attrs},
        "scope": "local", "time": nanos / 1_000_000_000, "timeNano": nanos,
    })
}

fn diff(
    st: &Shared,
    old: &std::collections::HashMap<String, Seen>,
    new: &std::collections::HashMap<String, Seen>,
) -> Vec<Value> {
    use berth_engine::db;
    let live = |s: &str| s == db::RUNNING || s == db::PAUSED;
    let mut out = vec![];
    for (id, n) in new {
        let o = old.get(id);
        if o.is_none() {
            out.push(event(id, n, "create", &[]));
        }
        let o_state = o.map_or(db::CREATED, |o| o.state.as_str());
        let restarted = o.is_some_and(|o| o.started_at != n.started_at && !n.started_at.is_empty());
        let was_live = live(o_state);
        let exited = n.state == db::EXITED;
        if restarted || (!was_live && live(&n.state)) || (o_state == db::CREATED && exited) {
            out.push(event(id, n, "start", &[]));
        }
        if exited && (was_live || o_state == db::CREATED || restarted) {
            out.push(event(
                id,
                n,
                "die",
                &[("exitCode", n.exit_code.to_string())],
            ));
        }
        if o_state == db::RUNNING && n.state == db::PAUSED {
            out.push(event(id, n, "pause", &[]));
        }
        if o_state == db::PAUSED && n.state == db::RUNNING {
            out.push(event(id, n, "unpause", &[]));
        }
    }
    for (id, o) in old {
        if new.contains_key(id) {
            continue;
        }
        // Gone: it ran and died first when it removed itself (--rm).
        if o.state != db::EXITED {
            if o.state == db::CREATED {
                out.push(event(id, o, "start", &[]));
            }
            let code = crate::lock(&st.exits).get(id).copied().unwrap_or(0);
            out.push(event(id, o, "die", &[("exitCode", code.to_string())]));
        }
        out.push(event(id, o, "destroy", &[]));
    }
    out
}

fn wanted(ev: &Value, filters: &[String]) -> bool {
    let mut by: std::collections::HashMap<&str, Vec<&str>> = std::collections::HashMap::new();
    for f in filters {
        let (k, v) = f.split_once('=').unwrap_or((f, ""));
        by.entry(k).or_default().push(v);
    }
    by.iter().all(|(k, vals)| {
        vals.iter().any(|v| match *k {
            "type" => *v == "container",
            "event" => ev["Action"] == *v,
            "container" => {
                ev["Actor"]["Attributes"]["name"] == *v
                    || ev["id"].as_str().is_some_and(|i| i.starts_with(v))
            }
            "image" => ev["from"] == *v,
            _ => true,
        })
    })
}

/// `/auth`: credentials are checked by the registry at pull/push time.
pub fn auth() -> Response<Body> {
    ok_json(&json!({"Status": "Login Succeeded", "IdentityToken": ""}))
}

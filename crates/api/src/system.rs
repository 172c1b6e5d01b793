//! `/_ping`, `/version`, `/info`, `/system/df`, `/events`, `/auth`.

use bytes::Bytes;
use hyper::{Method, Response, header};
use serde_json::json;

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

/// docker's `SecurityOptions` (`name=rootless` for a rootless engine).
fn security_options() -> Vec<&'static str> {
    let mut v = vec!["name=seccomp,profile=builtin", "name=cgroupns"];
    if berth_engine::rootless::active() {
        v.push("name=rootless");
    }
    v
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
        "SecurityOptions": security_options(),
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

/// `/events`: the engine's event journal (`berth_engine::events`, written by every berth
/// command and monitor, the CLI's as much as this server's), replayed from `since` (or
/// `until` alone), then followed (polled every 100 ms) until `until` passes or the client
/// goes; docker's JSON messages, one a line.
pub async fn events(st: &Shared, q: &Query) -> Result<Response<Body>, ApiError> {
    use berth_engine::events;
    let filters = events::Filters::parse(&q.filters()?)?;
    let now = events::now_nano();
    let time = |k: &str| -> Result<Option<i64>, ApiError> {
        match q.get(k).filter(|v| !v.is_empty()) {
            Some(v) => Ok(Some(events::parse_time(v, now, k).map_err(|e| {
                ApiError::bad(format!("invalid value for {k}: {v:?}: {e}"))
            })?)),
            None => Ok(None),
        }
    };
    let since = time("since")?;
    let until = time("until")?;
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        return Err(ApiError::bad("since time cannot be after until time"));
    }
    let mut after = if since.is_some() || until.is_some() {
        0
    } else {
        engine(st, |e| Ok(events::last_seq(&e.db)?)).await?
    };
    let (tx, body) = body::channel();
    let st = st.clone();
    tokio::spawn(async move {
        loop {
            let batch = engine(&st, move |e| {
                Ok(events::read(&e.db, after, since, until, 1000)?)
            })
            .await
            .unwrap_or_default();
            let full = batch.len() == 1000;
            for ev in batch {
                after = ev.seq;
                if !filters.matches(&ev) {
                    continue;
                }
                let line = Bytes::from(ev.to_json().to_string() + "\n");
                if tx.send(line).await.is_err() {
                    return;
                }
            }
            if full {
                continue;
            }
            if until.is_some_and(|u| events::now_nano() > u) || tx.is_closed() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// `/auth`: credentials are checked by the registry at pull/push time.
pub fn auth() -> Response<Body> {
    ok_json(&json!({"Status": "Login Succeeded", "IdentityToken": ""}))
}

//! `/containers/...`: docker's JSON in, the engine's `RunConfig` and calls
//! out. The JSON shapes of inspect and list come from
//! `berth_engine::inspect`, the same code `berth inspect` and `berth ps`
//! print.

use std::collections::BTreeMap;

use berth_engine::config::{self, MountSpec, RunConfig, Ulimit};
use berth_engine::db;
use berth_engine::{CreateRequest, Engine, row_config};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::body::{self, Body, ChanWriter};
use crate::error::ApiError;
use crate::stream::{self, AttachOpts};
use crate::{Query, Shared, engine, engine_own, json_response, lock, no_content, ok_json};

/// A string or a list of strings (`Cmd`, `Entrypoint`: docker takes both).
#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
pub enum StrOrVec {
    One(String),
    Many(Vec<String>),
}

impl StrOrVec {
    fn into_vec(self) -> Vec<String> {
        match self {
            StrOrVec::One(s) => vec![s],
            StrOrVec::Many(v) => v,
        }
    }
}

/// `POST /containers/create`'s body: the fields berth honours (others are accepted and not
/// acted on).
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    hostname: Option<String>,
    user: Option<String>,
    tty: Option<bool>,
    open_stdin: Option<bool>,
    stdin_once: Option<bool>,
    env: Option<Vec<String>>,
    cmd: Option<StrOrVec>,
    entrypoint: Option<StrOrVec>,
    image: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    working_dir: Option<String>,
    stop_signal: Option<String>,
    stop_timeout: Option<i64>,
    healthcheck: Option<berth_engine::health::HealthConfig>,
    mac_address: Option<String>,
    domainname: Option<String>,
    exposed_ports: Option<BTreeMap<String, Value>>,
    volumes: Option<BTreeMap<String, Value>>,
    host_config: Option<HostConfig>,
    networking_config: Option<NetworkingConfig>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct HostConfig {
    binds: Option<Vec<String>>,
    mounts: Option<Vec<MountBody>>,
    tmpfs: Option<BTreeMap<String, String>>,
    port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    publish_all_ports: Option<bool>,
    network_mode: Option<String>,
    restart_policy: Option<RestartPolicy>,
    auto_remove: Option<bool>,
    privileged: Option<bool>,
    readonly_rootfs: Option<bool>,
    cap_add: Option<Vec<String>>,
    cap_drop: Option<Vec<String>>,
    dns: Option<Vec<String>>,
    dns_search: Option<Vec<String>>,
    dns_options: Option<Vec<String>>,
    extra_hosts: Option<Vec<String>>,
    group_add: Option<Vec<String>>,
    memory: Option<i64>,
    memory_swap: Option<i64>,
    nano_cpus: Option<i64>,
    cpu_shares: Option<i64>,
    cpu_period: Option<i64>,
    cpu_quota: Option<i64>,
    cpuset_cpus: Option<String>,
    pids_limit: Option<i64>,
    ulimits: Option<Vec<UlimitBody>>,
    security_opt: Option<Vec<String>>,
    log_config: Option<LogConfig>,
    init: Option<bool>,
    pid_mode: Option<String>,
    ipc_mode: Option<String>,
    #[serde(rename = "UTSMode")]
    uts_mode: Option<String>,
    shm_size: Option<i64>,
    sysctls: Option<BTreeMap<String, String>>,
    oom_score_adj: Option<i64>,
    devices: Option<Vec<berth_engine::config::DeviceMapping>>,
    volumes_from: Option<Vec<String>>,
    cgroupns_mode: Option<String>,
    cgroup_parent: Option<String>,
    memory_reservation: Option<i64>,
    memory_swappiness: Option<i64>,
    oom_kill_disable: Option<bool>,
    cpuset_mems: Option<String>,
    blkio_weight: Option<u16>,
    blkio_weight_device: Option<Vec<berth_engine::config::WeightDevice>>,
    blkio_device_read_bps: Option<Vec<berth_engine::config::ThrottleDevice>>,
    blkio_device_write_bps: Option<Vec<berth_engine::config::ThrottleDevice>>,
    #[serde(rename = "BlkioDeviceReadIOps")]
    blkio_device_read_iops: Option<Vec<berth_engine::config::ThrottleDevice>>,
    #[serde(rename = "BlkioDeviceWriteIOps")]
    blkio_device_write_iops: Option<Vec<berth_engine::config::ThrottleDevice>>,
    device_cgroup_rules: Option<Vec<String>>,
    links: Option<Vec<String>>,
    annotations: Option<BTreeMap<String, String>>,
    cpu_realtime_period: Option<i64>,
    cpu_realtime_runtime: Option<i64>,
    storage_opt: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct MountBody {
    #[serde(rename = "Type")]
    kind: Option<String>,
    source: Option<String>,
    target: Option<String>,
    read_only: Option<bool>,
    bind_options: Option<BindOptions>,
    volume_options: Option<VolumeOptions>,
    tmpfs_options: Option<TmpfsOptions>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct BindOptions {
    propagation: Option<String>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct VolumeOptions {
    no_copy: Option<bool>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct TmpfsOptions {
    size_bytes: Option<i64>,
    mode: Option<u32>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct PortBinding {
    host_ip: Option<String>,
    host_port: Option<String>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct RestartPolicy {
    name: Option<String>,
    maximum_retry_count: Option<u32>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct UlimitBody {
    name: String,
    soft: i64,
    hard: i64,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct LogConfig {
    #[serde(rename = "Type")]
    kind: Option<String>,
    config: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct NetworkingConfig {
    endpoints_config: Option<BTreeMap<String, Option<EndpointConfig>>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointConfig {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<IpamConfig>,
    pub aliases: Option<Vec<String>>,
    pub mac_address: Option<String>,
    /// Links on a user-defined network (compose's `links:`): the same as HostConfig's.
    pub links: Option<Vec<String>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct IpamConfig {
    #[serde(rename = "IPv4Address")]
    pub ipv4: Option<String>,
    #[serde(rename = "IPv6Address")]
    pub ipv6: Option<String>,
}

fn engine_bad(e: berth_engine::Error) -> ApiError {
    ApiError::bad(e.to_string())
}

/// `-p`'s syntax of one port binding.
fn publish_spec(port: &str, b: &PortBinding) -> String {
    let ip = b.host_ip.as_deref().unwrap_or("");
    let ip = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    let hp = b.host_port.as_deref().unwrap_or("");
    match (ip.is_empty(), hp.is_empty()) {
        (true, true) => port.to_string(),
        (true, false) => format!("{hp}:{port}"),
        (false, _) => format!("{ip}:{hp}:{port}"),
    }
}

/// The bytes of a `POST /containers/create` body as the engine's `RunConfig`: the API's
/// whole parse of it, before the engine sees it (also the fuzz target `api_create`).
pub fn container_config(body: &[u8]) -> Result<RunConfig, ApiError> {
    run_config(body::parse_json(body)?)
}

/// A create body as the engine's `RunConfig` (what `berth create`'s flags
/// make).
pub fn run_config(b: CreateBody) -> Result<RunConfig, ApiError> {
    let image = b.image.filter(|i| !i.is_empty()).ok_or_else(|| {
        ApiError::bad("config cannot be empty in order to create a container: no image given")
    })?;
    let h = b.host_config.unwrap_or_default();
    let mut c = RunConfig {
        image,
        cmd: b.cmd.map(StrOrVec::into_vec).unwrap_or_default(),
        entrypoint: b.entrypoint.map(|e| {
            let v = e.into_vec();
            // `--entrypoint ""` arrives as [""]: no entrypoint.
            if v.iter().all(String::is_empty) {
                vec![]
            } else {
                v
            }
        }),
        env: b.env.unwrap_or_default(),
        workdir: b.working_dir.filter(|w| !w.is_empty()),
        user: b.user.filter(|u| !u.is_empty()),
        tty: b.tty.unwrap_or(false),
        open_stdin: b.open_stdin.unwrap_or(false),
        stdin_once: b.stdin_once.unwrap_or(false),
        auto_remove: h.auto_remove.unwrap_or(false),
        hostname: b.hostname.filter(|x| !x.is_empty()),
        labels: b.labels.unwrap_or_default().into_iter().collect(),
        read_only: h.readonly_rootfs.unwrap_or(false),
        network: h
            .network_mode
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "bridge".into()),
        publish_all: h.publish_all_ports.unwrap_or(false),
        mac_address: b.mac_address.filter(|m| !m.is_empty()),
        dns: h.dns.unwrap_or_default(),
        dns_search: h.dns_search.unwrap_or_default(),
        dns_options: h.dns_options.unwrap_or_default(),
        add_hosts: h.extra_hosts.unwrap_or_default(),
        group_add: h.group_add.unwrap_or_default(),
        cap_add: h.cap_add.unwrap_or_default(),
        cap_drop: h.cap_drop.unwrap_or_default(),
        privileged: h.privileged.unwrap_or(false),
        stop_signal: b.stop_signal.filter(|s| !s.is_empty()),
        stop_timeout: b.stop_timeout,
        healthcheck: b.healthcheck,
        init: h.init.unwrap_or(false),
        memory: h.memory.filter(|m| *m > 0),
        nano_cpus: h.nano_cpus.filter(|m| *m > 0),
        cpu_shares: h.cpu_shares.filter(|m| *m > 0).map(|m| m as u64),
        pids_limit: h.pids_limit.filter(|m| *m != 0),
        memory_swap: h.memory_swap.filter(|m| *m != 0),
        cpu_period: h.cpu_period.filter(|m| *m != 0),
        cpu_quota: h.cpu_quota.filter(|m| *m != 0),
        cpuset_cpus: h.cpuset_cpus.filter(|c| !c.is_empty()),
        log_max_file: 1,
        pid_mode: h.pid_mode.unwrap_or_default(),
        ipc_mode: h.ipc_mode.unwrap_or_default(),
        uts_mode: h.uts_mode.unwrap_or_default(),
        shm_size: h.shm_size.filter(|s| *s != 0),
        sysctls: h.sysctls.unwrap_or_default(),
        oom_score_adj: h.oom_score_adj.filter(|a| *a != 0),
        domainname: b.domainname.filter(|d| !d.is_empty()),
        devices: h.devices.unwrap_or_default(),
        volumes_from: h.volumes_from.unwrap_or_default(),
        cgroupns_mode: h.cgroupns_mode.unwrap_or_default(),
        cgroup_parent: h.cgroup_parent.filter(|p| !p.is_empty()),
        memory_reservation: h.memory_reservation.filter(|m| *m > 0),
        memory_swappiness: h.memory_swappiness.filter(|s| *s != -1),
        oom_kill_disable: h.oom_kill_disable.unwrap_or(false),
        cpuset_mems: h.cpuset_mems.filter(|m| !m.is_empty()),
        blkio_weight: h.blkio_weight.filter(|w| *w != 0),
        blkio_weight_device: h.blkio_weight_device.unwrap_or_default(),
        device_read_bps: h.blkio_device_read_bps.unwrap_or_default(),
        device_write_bps: h.blkio_device_write_bps.unwrap_or_default(),
        device_read_iops: h.blkio_device_read_iops.unwrap_or_default(),
        device_write_iops: h.blkio_device_write_iops.unwrap_or_default(),
        device_cgroup_rules: h.device_cgroup_rules.unwrap_or_default(),
        links: h.links.unwrap_or_default(),
        annotations: h.annotations.unwrap_or_default(),
        cpu_rt_period: h.cpu_realtime_period.filter(|p| *p != 0),
        cpu_rt_runtime: h.cpu_realtime_runtime.filter(|r| *r != 0),
        storage_opt: h.storage_opt.unwrap_or_default(),
        expose: b.exposed_ports.unwrap_or_default().into_keys().collect(),
        ..Default::default()
    };
    c.network = berth_engine::network::network_mode(&c.network).to_string();
    for (port, bindings) in h.port_bindings.unwrap_or_default() {
        let bindings = bindings.unwrap_or_default();
        if bindings.is_empty() {
            c.publish.push(port.clone());
        }
        for b in &bindings {
            c.publish.push(publish_spec(&port, b));
        }
    }
    for h in &c.add_hosts {
        config::parse_add_host(h).map_err(engine_bad)?;
    }
    // Anonymous volumes (`-v /data`).
    for (target, _) in b.volumes.unwrap_or_default() {
        c.mounts
            .push(config::parse_volume_flag(&target).map_err(engine_bad)?);
    }
    for bind in h.binds.unwrap_or_default() {
        c.mounts
            .push(config::parse_volume_flag(&bind).map_err(engine_bad)?);
    }
    for m in h.mounts.unwrap_or_default() {
        c.mounts.push(mount_spec(m)?);
    }
    for (target, opts) in h.tmpfs.unwrap_or_default() {
        let s = if opts.is_empty() {
            target
        } else {
            format!("{target}:{opts}")
        };
        c.mounts
            .push(config::parse_tmpfs_flag(&s).map_err(engine_bad)?);
    }
    if let Some(rp) = h.restart_policy {
        let name = rp.name.unwrap_or_default();
        c.restart = match (name.as_str(), rp.maximum_retry_count.unwrap_or(0)) {
            ("" | "no", _) => "no".into(),
            ("on-failure", n) if n > 0 => format!("on-failure:{n}"),
            (n, _) => n.to_string(),
        };
    }
    for u in h.ulimits.unwrap_or_default() {
        if config::rlimit_type(&u.name).is_none() {
            return Err(ApiError::bad(format!("invalid ulimit {:?}", u.name)));
        }
        let v = |x: i64| if x < 0 { u64::MAX } else { x as u64 };
        c.ulimits.push(Ulimit {
            name: u.name,
            soft: v(u.soft),
            hard: v(u.hard),
        });
    }
    for s in h.security_opt.unwrap_or_default() {
        match s.split_once(['=', ':']) {
            None if s == "no-new-privileges" => c.no_new_privileges = true,
            Some(("no-new-privileges", v)) => c.no_new_privileges = v != "false",
            Some(("seccomp", "unconfined")) => c.seccomp = Some("unconfined".into()),
            // The client sends the profile's content, not its file.
            Some(("seccomp", profile)) => {
                berth_engine::seccomp::parse_profile(profile).map_err(engine_bad)?;
                c.seccomp = Some(profile.to_string());
            }
            Some(("label" | "apparmor", _)) => {}
            _ => return Err(ApiError::bad(format!("invalid SecurityOpt: {s:?}"))),
        }
    }
    if let Some(l) = h.log_config {
        if let Some(t) = l.kind.filter(|t| !t.is_empty() && t != "json-file") {
            return Err(ApiError::bad(format!(
                "log driver {t:?} is not supported (json-file is)"
            )));
        }
        for (k, v) in l.config.unwrap_or_default() {
            match k.as_str() {
                "max-size" => {
                    c.log_max_size = config::parse_size(&v).map_err(engine_bad)? as u64;
                }
                "max-file" => {
                    c.log_max_file =
                        v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                            ApiError::bad(format!("invalid value for max-file: {v}"))
                        })?;
                }
                _ => {
                    return Err(ApiError::bad(format!(
                        "unknown log opt {k:?} for json-file log driver"
                    )));
                }
            }
        }
    }
    // The endpoint of the container's network: its address and aliases.
    let eps = b
        .networking_config
        .and_then(|n| n.endpoints_config)
        .unwrap_or_default();
    let ep = eps
        .iter()
        .find(|(n, _)| **n == c.network)
        .or_else(|| eps.iter().next())
        .and_then(|(_, e)| e.as_ref());
    if let Some(ep) = ep {
        if let Some(ipam) = &ep.ipam_config {
            c.ip = ipam.ipv4.clone().filter(|x| !x.is_empty());
            c.ip6 = ipam.ipv6.clone().filter(|x| !x.is_empty());
        }
        c.network_aliases = ep.aliases.clone().unwrap_or_default();
        for l in ep.links.iter().flatten() {
            if !c.links.contains(l) {
                c.links.push(l.clone());
            }
        }
        if let Some(m) = ep.mac_address.clone().filter(|m| !m.is_empty()) {
            c.mac_address = Some(m);
        }
    }
    c.validate().map_err(engine_bad)?;
    Ok(c)
}

/// `HostConfig.Mounts[]`, through `--mount`'s parser (one set of rules).
fn mount_spec(m: MountBody) -> Result<MountSpec, ApiError> {
    let mut parts = vec![format!(
        "type={}",
        m.kind
            .as_deref()
            .filter(|k| !k.is_empty())
            .unwrap_or("volume")
    )];
    for (k, v) in [("source", &m.source), ("target", &m.target)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            if v.contains(',') {
                return Err(ApiError::bad(format!("invalid mount {k} {v:?}")));
            }
            parts.push(format!("{k}={v}"));
        }
    }
    if m.read_only == Some(true) {
        parts.push("readonly".into());
    }
    if let Some(p) = m.bind_options.and_then(|b| b.propagation) {
        parts.push(format!("bind-propagation={p}"));
    }
    if m.volume_options.and_then(|v| v.no_copy) == Some(true) {
        parts.push("volume-nocopy".into());
    }
    if let Some(t) = m.tmpfs_options {
        if let Some(s) = t.size_bytes.filter(|s| *s > 0) {
            parts.push(format!("tmpfs-size={s}"));
        }
        if let Some(mode) = t.mode.filter(|m| *m > 0) {
            parts.push(format!("tmpfs-mode={mode:o}"));
        }
    }
    config::parse_mount_flag(&parts.join(",")).map_err(engine_bad)
}

pub async fn create(
    st: &Shared,
    q: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let cfg = container_config(&body::collect(req.into_body()).await?)?;
    let name = q.get("name").filter(|n| !n.is_empty()).map(String::from);
    let (row, warnings) = engine(st, move |e| {
        let row = e.create(CreateRequest {
            name,
            config: cfg,
            keep_mounted: false,
        })?;
        Ok((row, e.warnings.take()))
    })
    .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"Id": row.id, "Warnings": warnings}),
    ))
}

pub async fn list(st: &Shared, q: &Query) -> Result<Response<Body>, ApiError> {
    let filters = q.filters()?;
    let limit = q
        .int::<i64>("limit")?
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    let all = q.flag("all") || limit.is_some();
    let size = q.flag("size");
    let v = engine(st, move |e| {
        let rows = berth_engine::inspect::select_containers(e, all, &filters, limit)?;
        Ok(rows
            .iter()
            .map(|r| {
                let mut v = berth_engine::inspect::container_summary(e, r);
                if size {
                    v["SizeRw"] = json!(e.container_size(&r.id));
                }
                v
            })
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(ok_json(&json!(v)))
}

pub async fn inspect(st: &Shared, id: &str) -> Result<Response<Body>, ApiError> {
    let id = id.to_string();
    let v = engine(st, move |e| {
        let r = e.get(&id)?;
        Ok(berth_engine::inspect::container_json(e, &r))
    })
    .await?;
    Ok(ok_json(&v))
}

pub async fn start(st: &Shared, id: &str) -> Result<Response<Body>, ApiError> {
    let id = id.to_string();
    let exe = st.exe.clone();
    let (id, conn) = engine(st, move |e| {
        let row = e.get(&id)?;
        let conn = e.start(&row.id, &exe)?;
        Ok((row.id, conn))
    })
    .await?;
    let Some(mut conn) = conn else {
        let mut r = Response::new(body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(r);
    };
    // An attach made before the start (docker run) takes the monitor's
    // first connection, so it misses no output.
    let waiters = lock(&st.pending_attach).remove(&id).unwrap_or_default();
    for w in waiters {
        match w.send(conn) {
            Ok(()) => return Ok(no_content()),
            Err(c) => conn = c,
        }
    }
    // Otherwise this server holds it while it runs (reading and dropping
    // the output): the monitor closes a StdinOnce stdin when its last
    // client goes, and the exit code it sends serves the waits of
    // containers that remove themselves.
    tokio::spawn(hold(st.clone(), id, conn));
    Ok(no_content())
}

pub async fn stop(
    st: &Shared,
    id: &str,
    q: &Query,
    restart: bool,
) -> Result<Response<Body>, ApiError> {
    let id = id.to_string();
    let t = q.int::<i64>("t")?.or(q.int::<i64>("timeout")?);
    let exe = st.exe.clone();
    let modified = engine_own(st, move |e| {
        let row = e.get(&id)?;
        let running = matches!(row.state.as_str(), db::RUNNING | db::PAUSED);
        if restart {
            e.restart(&row.id, t, &exe)?;
            return Ok(true);
        }
        e.stop(&row.id, t)?;
        Ok(running)
    })
    .await?;
    if modified {
        Ok(no_content())
    } else {
        let mut r = Response::new(body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        Ok(r)
    }
}

pub async fn kill(st: &Shared, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let id = id.to_string();
    let sig = match q.get("signal").filter(|s| !s.is_empty()) {
        None => libc::SIGKILL,
        Some(s) => berth_runtime::signal::parse(s)
            .ok_or_else(|| ApiError::bad(format!("Invalid signal: {s}")))?,
    };
    engine(st, move |e| {
        let row = e.get(&id)?;
        if !matches!(row.state.as_str(), db::RUNNING | db::PAUSED) {
            return Err(ApiError::conflict(format!(
                "Cannot kill container: {id}: Container {} is not running",
                row.id
            )));
        }
        Ok(e.kill(&row.id, sig)?)
    })
    .await?;
    Ok(no_content())
}

pub async fn pause(st: &Shared, id: &str, on: bool) -> Result<Response<Body>, ApiError> {
    let id = id.to_string();
    engine(st, move |e| {
        if on {
            Ok(e.pause(&id)?)
        } else {
            Ok(e.unpause(&id)?)
        }
    })
    .await?;
    Ok(no_content())
}

pub async fn rename(st: &Shared, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let id = id.to_string();
    let name = q
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad("Neither old nor new names may be empty"))?
        .to_string();
    engine(st, move |e| Ok(e.rename(&id, &name)?)).await?;
    Ok(no_content())
}

pub async fn remove(st: &Shared, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let id = id.to_string();
    let (force, vols) = (q.flag("force"), q.flag("v"));
    engine_own(st, move |e| Ok(e.remove(&id, force, vols)?)).await?;
    Ok(no_content())
}

pub async fn prune(st: &Shared, q: &Query) -> Result<Response<Body>, ApiError> {
    let f = q.prune_filter()?;
    let (ids, bytes) = engine_own(st, move |e| Ok(e.prune_containers(&f)?)).await?;
    Ok(ok_json(
        &json!({"ContainersDeleted": ids, "SpaceReclaimed": bytes}),
    ))
}

/// The body of POST /containers/{id}/update (docker's `UpdateConfig`).
#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UpdateBody {
    memory: Option<i64>,
    memory_swap: Option<i64>,
    nano_cpus: Option<i64>,
    cpu_shares: Option<u64>,
    cpu_period: Option<i64>,
    cpu_quota: Option<i64>,
    cpuset_cpus: Option<String>,
    pids_limit: Option<i64>,
    restart_policy: Option<RestartPolicy>,
    memory_reservation: Option<i64>,
    cpuset_mems: Option<String>,
    blkio_weight: Option<u16>,
    cpu_realtime_period: Option<i64>,
    cpu_realtime_runtime: Option<i64>,
}

/// POST /containers/{id}/update: `berth update` (zeros leave a value as
/// it is, as docker's do).
pub async fn update(
    st: &Shared,
    id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let b: UpdateBody = body::json(req.into_body()).await?;
    let restart = b
        .restart_policy
        .and_then(|r| Some((r.name.filter(|n| !n.is_empty())?, r.maximum_retry_count)))
        .map(|(name, n)| match (name.as_str(), n) {
            ("on-failure", Some(n)) if n > 0 => format!("on-failure:{n}"),
            _ => name,
        });
    let u = berth_engine::update::UpdateRequest {
        memory: b.memory.filter(|v| *v != 0),
        memory_swap: b.memory_swap.filter(|v| *v != 0),
        nano_cpus: b.nano_cpus.filter(|v| *v != 0),
        cpu_shares: b.cpu_shares.filter(|v| *v != 0),
        cpu_period: b.cpu_period.filter(|v| *v != 0),
        cpu_quota: b.cpu_quota.filter(|v| *v != 0),
        cpuset_cpus: b.cpuset_cpus.filter(|v| !v.is_empty()),
        pids_limit: b.pids_limit.filter(|v| *v != 0),
        restart,
        memory_reservation: b.memory_reservation.filter(|v| *v != 0),
        cpuset_mems: b.cpuset_mems.filter(|v| !v.is_empty()),
        blkio_weight: b.blkio_weight.filter(|v| *v != 0),
        cpu_rt_period: b.cpu_realtime_period.filter(|v| *v != 0),
        cpu_rt_runtime: b.cpu_realtime_runtime.filter(|v| *v != 0),
    };
    let id = id.to_string();
    let warnings = engine(st, move |e| {
        e.update(&id, &u)?;
        Ok(e.warnings.take())
    })
    .await?;
    Ok(ok_json(&json!({"Warnings": warnings})))
}

/// GET /containers/{id}/changes: `container diff` (Kind 0 modified, 1
/// added, 2 deleted).
pub async fn changes(st: &Shared, id: &str) -> Result<Response<Body>, ApiError> {
    let id = id.to_string();
    let list = engine(st, move |e| Ok(e.diff(&id)?)).await?;
    let v: Vec<serde_json::Value> = list
        .iter()
        .map(|c| json!({"Path": c.path, "Kind": c.kind.api()}))
        .collect();
    Ok(ok_json(&json!(v)))
}

/// Sends a window size to a container's monitor (its tty).
pub async fn resize(st: &Shared, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let id = id.to_string();
    let h = q.int::<u16>("h")?.unwrap_or(0);
    let w = q.int::<u16>("w")?.unwrap_or(0);
    engine(st, move |e| {
        let row = e.get(&id)?;
        if row.state != db::RUNNING {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                row.id
            )));
        }
        let mut c = e.attach(&row.id)?;
        use std::io::Write;
        c.write_all(&stream::monitor_frame(
            berth_engine::attach::RESIZE,
            format!("{h} {w}").as_bytes(),
        ))?;
        Ok(())
    })
    .await?;
    Ok(Response::new(body::empty()))
}

pub async fn top(st: &Shared, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let id = id.to_string();
    let args: Vec<String> = q
        .get("ps_args")
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    let text = engine(st, move |e| Ok(e.top(&id, &args)?)).await?;
    let mut lines = text.lines();
    let titles: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let n = titles.len().max(1);
    let procs: Vec<Vec<String>> = lines
        .map(|l| {
            // The last column (the command) keeps its spaces.
            let mut cols: Vec<String> = Vec::new();
            let mut rest = l.trim_start();
            while cols.len() + 1 < n {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                cols.push(rest[..end].to_string());
                rest = rest[end..].trim_start();
            }
            cols.push(rest.to_string());
            cols
        })
        .collect();
    Ok(ok_json(&json!({"Titles": titles, "Processes": procs})))
}

/// Reads a monitor connection until the container exits; its exit code
/// (None when the monitor went away first).
async fn read_exit(conn: std::os::unix::net::UnixStream) -> Option<i32> {
    use tokio::io::AsyncReadExt;
    conn.set_nonblocking(true).ok()?;
    let mut conn = tokio::net::UnixStream::from_std(conn).ok()?;
    let mut dec = berth_engine::attach::Decoder::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => n,
        };
        dec.push(&buf[..n]);
        while let Ok(Some((kind, data))) = dec.next_frame() {
            if kind == berth_engine::attach::EXITED {
                return String::from_utf8_lossy(&data).trim().parse::<i32>().ok();
            }
        }
    }
}

async fn hold(st: Shared, id: String, conn: std::os::unix::net::UnixStream) {
    if let Some(c) = read_exit(conn).await {
        st.record_exit(&id, c);
    }
}

/// `wait`: the headers go out at once (docker run sends its wait before
/// the start), the status code when the condition is met.
pub async fn wait(st: &Shared, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let cond = q
        .get("condition")
        .filter(|c| !c.is_empty())
        .unwrap_or("not-running");
    if !matches!(cond, "not-running" | "next-exit" | "removed") {
        return Err(ApiError::bad(format!("invalid condition: {cond:?}")));
    }
    let cond = cond.to_string();
    let key = id.to_string();
    let row = engine(st, move |e| Ok(e.get(&key)?)).await?;
    let (tx, body) = body::channel();
    let st = st.clone();
    tokio::spawn(async move {
        let code = wait_for(&st, &row.id, &cond).await;
        let v = match code {
            Ok(c) => json!({"StatusCode": c, "Error": null}),
            Err(e) => json!({"StatusCode": -1, "Error": {"Message": e.message}}),
        };
        let _ = tx.send(Bytes::from(v.to_string() + "\n")).await;
    });
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

async fn state_of(st: &Shared, id: &str) -> Result<Option<db::ContainerRow>, ApiError> {
    let id = id.to_string();
    engine(st, move |e| match e.get(&id) {
        Ok(r) => Ok(Some(r)),
        Err(berth_engine::Error::NoSuchContainer(_)) => Ok(None),
        Err(e) => Err(e.into()),
    })
    .await
}

/// The exit code a self-removing container left with an attached stream
/// (or 0 when none saw it).
async fn exit_seen(st: &Shared, id: &str) -> i32 {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
    loop {
        let notified = st.exits_changed.notified();
        if let Some(c) = lock(&st.exits).get(id) {
            return *c;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return 0;
        }
    }
}

async fn wait_for(st: &Shared, id: &str, cond: &str) -> Result<i32, ApiError> {
    let live = |s: &str| s == db::RUNNING || s == db::PAUSED;
    let Some(first) = state_of(st, id).await? else {
        return Ok(exit_seen(st, id).await);
    };
    if cond == "not-running" && !live(&first.state) {
        return Ok(first.exit_code);
    }
    // next-exit and removed: the exit of a run that has begun, or begins,
    // after the request (docker run sends its wait before the start, and
    // a short container may be done before it is seen running).
    let mut row = first.clone();
    let code = loop {
        if live(&row.state) {
            break wait_exit(st, &row).await?;
        }
        if row.started_at != first.started_at || (cond == "removed" && row.state != db::CREATED) {
            break row.exit_code;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        match state_of(st, id).await? {
            Some(r) => row = r,
            None => return Ok(exit_seen(st, id).await),
        }
    };
    if cond == "removed" {
        while state_of(st, id).await?.is_some() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    Ok(code)
}

/// Waits for a running container to exit: told by its monitor (as an
/// attached client that reads nothing in) when that is harmless, else by
/// the record.
async fn wait_exit(st: &Shared, row: &db::ContainerRow) -> Result<i32, ApiError> {
    let cfg = row_config(row);
    // A client leaving closes a non-tty stdin (StdinOnce): not for waits.
    if !(cfg.open_stdin && cfg.stdin_once) || cfg.tty {
        let id = row.id.clone();
        let conn = engine(st, move |e| Ok(e.attach(&id).ok())).await?;
        if let Some(conn) = conn
            && let Some(c) = read_exit(conn).await
        {
            st.record_exit(&row.id, c);
            return Ok(c);
        }
    }
    // The record, read again whenever a connection this server holds sees
    // an exit, and at least every 50 ms.
    loop {
        let changed = st.exits_changed.notified();
        match state_of(st, &row.id).await? {
            None => return Ok(exit_seen(st, &row.id).await),
            Some(r) if !matches!(r.state.as_str(), db::RUNNING | db::PAUSED) => {
                return Ok(r.exit_code);
            }
            Some(_) => {}
        }
        let _ = tokio::time::timeout(std::time::Duration::from_millis(50), changed).await;
    }
}

/// A log record as docker streams it: raw for a tty, else a multiplexed
/// frame; None when its stream was not asked for.
fn log_frame(
    r: &berth_engine::logs::Record,
    tty: bool,
    ts: bool,
    out: bool,
    err: bool,
) -> Option<Bytes> {
    let stream = if r.stream == "stderr" { 2 } else { 1 };
    if (stream == 1 && !out) || (stream == 2 && !err) {
        return None;
    }
    let line = if ts {
        format!("{} {}", r.time, r.log)
    } else {
        r.log.clone()
    };
    Some(if tty {
        Bytes::from(line)
    } else {
        stream::mux(stream, line.as_bytes())
    })
}

/// `logs`: docker's multiplexed frames (raw bytes for a tty), followed
/// while the container runs; a client going away stops the reader only.
pub async fn logs(st: &Shared, id: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let (out, err) = (q.flag("stdout"), q.flag("stderr"));
    if !out && !err {
        return Err(ApiError::bad(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let secs = |k: &str| -> Result<Option<f64>, ApiError> {
        match q.get(k).filter(|v| !v.is_empty() && *v != "0") {
            None => Ok(None),
            Some(v) => v
                .parse::<f64>()
                .map(Some)
                .map_err(|_| ApiError::bad(format!("invalid value for {k}: {v:?}"))),
        }
    };
    let opts = berth_engine::logs::LogOptions {
        since: secs("since")?,
        until: secs("until")?,
        tail: match q.get("tail") {
            None | Some("" | "all") => None,
            Some(n) => Some(
                n.parse()
                    .map_err(|_| ApiError::bad(format!("invalid value for tail: {n:?}")))?,
            ),
        },
        follow: q.flag("follow"),
    };
    let ts = q.flag("timestamps");
    let key = id.to_string();
    let row = engine(st, move |e| Ok(e.get(&key)?)).await?;
    let tty = row_config(&row).tty;
    let (tx, body) = body::channel();
    let id = row.id.clone();
    tokio::spawn(engine_own(st, move |e| {
        let w = tx;
        e.logs(&id, &opts, &mut |r| match log_frame(r, tty, ts, out, err) {
            Some(frame) => w.blocking_send(frame).is_ok(),
            None => true,
        })?;
        drop(w);
        Ok(())
    }));
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(if tty { stream::RAW } else { stream::MUX }),
    );
    Ok(r)
}

/// `attach` with the connection hijack. Before the container starts (docker
/// run attaches first) the attach waits for `start` to hand it the
/// monitor's first connection.
pub async fn attach(
    st: &Shared,
    id: &str,
    q: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    stream::require_upgrade(&req)?;
    let key = id.to_string();
    let row = engine(st, move |e| Ok(e.get(&key)?)).await?;
    let cfg = row_config(&row);
    let opts = AttachOpts {
        tty: cfg.tty,
        stdin_once: cfg.stdin_once && !cfg.tty,
        detach: berth_engine::attach::parse_detach_keys(q.get("detachKeys"))?,
        stdin: q.flag("stdin") && cfg.open_stdin,
        stdout: q.flag("stdout"),
        stderr: q.flag("stderr"),
    };
    let id = row.id.clone();
    // `logs=1`: what the container wrote so far comes first (compose's
    // foreground `up`).
    let backlog = if q.flag("logs") {
        let (i, (out, err)) = (id.clone(), (opts.stdout, opts.stderr));
        engine_own(st, move |e| {
            let mut v = Vec::new();
            let all = berth_engine::logs::LogOptions::default();
            e.logs(&i, &all, &mut |r| {
                v.extend(log_frame(r, cfg.tty, false, out, err));
                true
            })?;
            Ok(v)
        })
        .await?
    } else {
        Vec::new()
    };
    if !q.flag("stream") {
        // Only the backlog: no stream to follow.
        tokio::spawn(async move {
            if let Ok(client) = hyper::upgrade::on(req).await {
                use tokio::io::AsyncWriteExt;
                let mut c = hyper_util::rt::TokioIo::new(client);
                tokio::time::sleep(stream::AFTER_UPGRADE).await;
                for b in backlog {
                    if c.write_all(&b).await.is_err() {
                        return;
                    }
                }
                let _ = c.shutdown().await;
            }
        });
        return Ok(stream::upgraded(if opts.tty {
            stream::RAW
        } else {
            stream::MUX
        }));
    }
    let now = if matches!(row.state.as_str(), db::RUNNING | db::PAUSED) {
        let i = id.clone();
        Some(
            engine(st, move |e| {
                let c = e.attach(&i)?;
                if let Ok(r) = e.db.find(&i) {
                    e.container_event(&r, "attach", &[]);
                }
                Ok(c)
            })
            .await?,
        )
    } else {
        None
    };
    let later = if now.is_none() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        lock(&st.pending_attach)
            .entry(id.clone())
            .or_default()
            .push(tx);
        Some(rx)
    } else {
        None
    };
    let st = st.clone();
    tokio::spawn(async move {
        let Ok(client) = hyper::upgrade::on(req).await else {
            return;
        };
        let conn = match (now, later) {
            (Some(c), _) => c,
            (None, Some(rx)) => match rx.await {
                Ok(c) => c,
                Err(_) => return,
            },
            (None, None) => return,
        };
        stream::bridge_monitor(st, id, client, conn, opts, backlog).await;
    });
    Ok(stream::upgraded(if cfg.tty {
        stream::RAW
    } else {
        stream::MUX
    }))
}

fn path_param(q: &Query) -> Result<String, ApiError> {
    Ok(q.get("path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad("path cannot be empty"))?
        .to_string())
}

/// A tar stream's response.
pub fn tar_response(body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-tar"),
    );
    r
}

/// Go's `os.FileMode` of a stat (what docker's path-stat header carries).
fn go_mode(m: u32) -> u32 {
    let mut g = m & 0o777;
    match m & libc::S_IFMT {
        libc::S_IFDIR => g |= 1 << 31,
        libc::S_IFLNK => g |= 1 << 27,
        libc::S_IFIFO => g |= 1 << 25,
        libc::S_IFSOCK => g |= 1 << 24,
        libc::S_IFCHR => g |= (1 << 26) | (1 << 21),
        libc::S_IFBLK => g |= 1 << 26,
        _ => {}
    }
    if m & libc::S_ISUID != 0 {
        g |= 1 << 23;
    }
    if m & libc::S_ISGID != 0 {
        g |= 1 << 22;
    }
    if m & libc::S_ISVTX != 0 {
        g |= 1 << 20;
    }
    g
}

/// `HEAD`/`GET /containers/{id}/archive?path=`: the path's stat in
/// `X-Docker-Container-Path-Stat`, and (GET) a tar of it.
pub async fn archive_get(
    st: &Shared,
    id: &str,
    q: &Query,
    m: &Method,
) -> Result<Response<Body>, ApiError> {
    use base64::Engine as _;
    let path = path_param(q)?;
    let key = id.to_string();
    let p = path.clone();
    let (row_id, stat) = engine(st, move |e| {
        let row = e.get(&key)?;
        let stat = e.stat_path(&row.id, &p)?;
        Ok((row.id, stat))
    })
    .await?;
    let Some((s, link)) = stat else {
        return Err(ApiError::not_found(format!(
            "Could not find the file {path} in container {id}"
        )));
    };
    let name = std::path::Path::new(path.trim_end_matches("/."))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into());
    let stat = json!({
        "name": name,
        "size": s.st_size,
        "mode": go_mode(s.st_mode),
        "mtime": berth_engine::timefmt::rfc3339(s.st_mtime),
        "linkTarget": link.map(|l| l.display().to_string()).unwrap_or_default(),
    });
    let header_value = base64::engine::general_purpose::STANDARD.encode(stat.to_string());
    let mut r = if m == Method::HEAD {
        Response::new(body::empty())
    } else {
        let (tx, body) = body::channel();
        tokio::spawn(engine_own(st, move |e| {
            let mut w = ChanWriter(tx);
            // A client that goes away ends the copy (a write error).
            let _ = e.copy_from_tar(&row_id, &path, false, &mut w);
            Ok(())
        }));
        tar_response(body)
    };
    if let Ok(v) = header::HeaderValue::from_str(&header_value) {
        r.headers_mut().insert("X-Docker-Container-Path-Stat", v);
    }
    Ok(r)
}

/// `PUT /containers/{id}/archive?path=DIR`: a tar extracted into DIR.
pub async fn archive_put(
    st: &Shared,
    id: &str,
    q: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let path = path_param(q)?;
    let owners = q.flag("copyUIDGID");
    let key = id.to_string();
    let p = path.clone();
    let found = engine(st, move |e| {
        let row = e.get(&key)?;
        Ok(e.stat_path(&row.id, &p)?
            .map(|(s, _)| s.st_mode & libc::S_IFMT))
    })
    .await?;
    match found {
        None => {
            return Err(ApiError::not_found(format!(
                "Could not find the file {path} in container {id}"
            )));
        }
        Some(libc::S_IFDIR) => {}
        Some(_) => {
            return Err(ApiError::bad(format!(
                "extraction point is not a directory: {path}"
            )));
        }
    }
    let mut input = body::reader(req.into_body());
    let key = id.to_string();
    engine_own(st, move |e| {
        Ok(e.extract_tar(&key, &path, &mut input, owners)?)
    })
    .await?;
    Ok(Response::new(body::empty()))
}

pub async fn export(st: &Shared, id: &str) -> Result<Response<Body>, ApiError> {
    let key = id.to_string();
    let row = engine(st, move |e| Ok(e.get(&key)?)).await?;
    let (tx, body) = body::channel();
    tokio::spawn(engine_own(st, move |e: &mut Engine| {
        let _ = e.export(&row.id, &mut ChanWriter(tx));
        Ok(())
    }));
    Ok(tar_response(body))
}

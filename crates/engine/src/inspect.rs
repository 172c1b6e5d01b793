//! docker's JSON views of containers and networks (`inspect`, the
//! fields `ps` and the API's `/containers/json` show): one producer for
//! the CLI and the API, so both answer the same.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use berth_image::archive::config_json;
use berth_image::{ImageRecord, ImageStore, Reference};

use crate::db::{self, ContainerRow};
use crate::error::{Error, Result};
use crate::network::{self, NetworkRow};
use crate::{Engine, RunConfig, row_config, row_spec};

pub fn running(r: &ContainerRow) -> bool {
    r.state == db::RUNNING || r.state == db::PAUSED
}

pub fn prefix_len(net: &NetworkRow) -> u8 {
    net.ipam4().map_or(0, |c| c.subnet.prefix_len())
}

/// docker's `network inspect` object.
pub fn network_json(e: &mut Engine, n: &NetworkRow) -> Result<Value> {
    let mut containers = serde_json::Map::new();
    for ep in network::endpoints_on(e, &n.id)? {
        let Ok(row) = e.get(&ep.container_id) else {
            continue;
        };
        if !running(&row) {
            continue;
        }
        containers.insert(
            row.id.clone(),
            json!({
                "Name": row.name,
                "EndpointID": ep.endpoint_id,
                "MacAddress": ep.mac,
                "IPv4Address": format!("{}/{}", ep.address, prefix_len(n)),
                "IPv6Address": match (ep.address6, n.ipam6().ok().flatten()) {
                    (Some(a), Some(c)) => format!("{a}/{}", c.subnet.prefix_len()),
                    _ => String::new(),
                },
            }),
        );
    }
    let config: Vec<Value> = n
        .config
        .ipam
        .iter()
        .map(|c| {
            let mut v = json!({"Subnet": c.subnet, "Gateway": c.gateway});
            if let Some(r) = &c.ip_range {
                v["IPRange"] = json!(r);
            }
            v
        })
        .collect();
    let mut options = n.config.options.clone();
    if n.is_default() {
        options.insert("com.docker.network.bridge.name".into(), n.bridge.clone());
    }
    Ok(json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created_at,
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": n.config.ipv6,
        "IPAM": { "Driver": "default", "Options": {}, "Config": config },
        "Internal": n.config.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": n.config.labels,
    }))
}

/// `host` and `none`, which docker lists beside the bridge networks.
pub fn pseudo_network(name: &str) -> Value {
    json!({
        "Name": name,
        "Id": format!("{:0<64}", name.bytes().map(|b| format!("{b:02x}")).collect::<String>()),
        "Created": "0001-01-01T00:00:00Z",
        "Scope": "local",
        "Driver": if name == "host" { "host" } else { "null" },
        "EnableIPv6": false,
        "IPAM": { "Driver": "default", "Options": null, "Config": [] },
        "Internal": false,
        "Containers": {},
        "Options": {},
        "Labels": {},
    })
}

/// A container's published ports: (`80/tcp`, host ip, host port), when it runs.
pub fn published(e: &Engine, r: &ContainerRow) -> Vec<(String, String, u16)> {
    if !running(r) {
        return vec![];
    }
    let mut v = vec![];
    let slirp = if row_config(r).network == network::SLIRP4NETNS {
        network::slirp_ports(e, &r.id)
    } else {
        vec![]
    };
    for p in &slirp {
        v.push((
            format!("{}/{}", p.container_port, p.protocol),
            p.host_ip_text(),
            p.host_port,
        ));
    }
    for ep in network::endpoints_of(e, &r.id).unwrap_or_default() {
        for p in &ep.ports {
            v.push((
                format!("{}/{}", p.container_port, p.protocol),
                p.host_ip_text(),
                p.host_port,
            ));
        }
    }
    v
}

/// `ps`'s NETWORKS column: the networks the container has endpoints on (its mode otherwise).
pub fn networks_text(e: &Engine, r: &ContainerRow) -> String {
    let names: Vec<String> = network::container_networks(e, &r.id)
        .unwrap_or_default()
        .into_iter()
        .map(|(_, n)| n.name)
        .collect();
    if names.is_empty() {
        row_config(r).network
    } else {
        names.join(",")
    }
}

/// `ps`'s PORTS column: `0.0.0.0:8080->80/tcp, …`.
pub fn ports_text(e: &Engine, r: &ContainerRow) -> String {
    published(e, r)
        .iter()
        .map(|(c, ip, hp)| format!("{ip}:{hp}->{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `HostConfig.PortBindings` from the `-p` flags as given.
pub fn port_bindings(cfg: &RunConfig) -> Value {
    let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in &cfg.publish {
        let Ok(maps) = berth_net::ports::parse_port_spec(p) else {
            continue;
        };
        for x in maps {
            let host_port = match x.host_port {
                Some((a, b)) if a == b => a.to_string(),
                Some((a, b)) => format!("{a}-{b}"),
                None => String::new(),
            };
            m.entry(format!("{}/{}", x.container_port, x.protocol))
                .or_default()
                .push(json!({
                    "HostIp": x.host_ip.map(|a| a.to_string()).unwrap_or_default(),
                    "HostPort": host_port,
                }));
        }
    }
    json!(m)
}

/// docker's `NetworkSettings` of a container.
pub fn network_settings(e: &Engine, r: &ContainerRow) -> Value {
    let cfg = row_config(r);
    let live = running(r);
    let mut ports: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (c, ip, hp) in published(e, r) {
        ports
            .entry(c)
            .or_default()
            .push(json!({"HostIp": ip, "HostPort": hp.to_string()}));
    }
    let mut networks = serde_json::Map::new();
    let mut top = json!({
        "IPAddress": "", "IPPrefixLen": 0, "Gateway": "", "MacAddress": "",
    });
    match cfg.network.as_str() {
        "host" | "none" => {
            networks.insert(
                cfg.network.clone(),
                json!({
                    "IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
                    "NetworkID": pseudo_network(&cfg.network)["Id"], "EndpointID": "",
                    "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                    "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": null,
                }),
            );
        }
        _ => {
            for (ep, n) in network::container_networks(e, &r.id).unwrap_or_default() {
                let gw = n.ipam4().map(|c| c.gateway.to_string()).unwrap_or_default();
                let plen = prefix_len(&n);
                let v6 = n.ipam6().ok().flatten();
                let (ip6, plen6, gw6) = match (ep.address6, &v6) {
                    (Some(a), Some(c)) if live => {
                        (a.to_string(), c.subnet.prefix_len(), c.gateway.to_string())
                    }
                    _ => (String::new(), 0, String::new()),
                };
                let ip = if live {
                    ep.address.to_string()
                } else {
                    String::new()
                };
                let mut dns = vec![r.name.clone(), r.id[..12].to_string()];
                dns.extend(ep.aliases.iter().cloned());
                let v = json!({
                    "IPAMConfig": cfg.ip.as_ref().filter(|_| ep.seq == 0).map(|ip| json!({"IPv4Address": ip})),
                    "Links": null,
                    // docker 20.10 (API < 1.44) lists the short id among a user
                    // network's aliases; compose 1.x reconnects a container whose
                    // aliases lack it.
                    "Aliases": if n.is_default() {
                        if ep.aliases.is_empty() { Value::Null } else { json!(ep.aliases) }
                    } else {
                        json!(ep.aliases.iter().cloned().chain([r.id[..12].to_string()]).collect::<Vec<_>>())
                    },
                    "MacAddress": if live { ep.mac.clone() } else { String::new() },
                    "NetworkID": n.id,
                    "EndpointID": if live { ep.endpoint_id.clone() } else { String::new() },
                    "Gateway": if live { gw.clone() } else { String::new() },
                    "IPAddress": ip,
                    "IPPrefixLen": if live { plen } else { 0 },
                    "IPv6Gateway": gw6,
                    "GlobalIPv6Address": ip6,
                    "GlobalIPv6PrefixLen": plen6,
                    "DNSNames": if n.is_default() { Value::Null } else { json!(dns) },
                });
                // docker fills the top-level fields from the default bridge network only.
                if n.is_default() && live {
                    top = json!({
                        "IPAddress": ep.address.to_string(), "IPPrefixLen": plen,
                        "Gateway": gw, "MacAddress": ep.mac,
                    });
                }
                networks.insert(n.name.clone(), v);
            }
        }
    }
    json!({
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": if live && !matches!(cfg.network.as_str(), "host") { format!("/proc/{}/ns/net", r.pid) } else { String::new() },
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": top["IPAddress"],
        "IPPrefixLen": top["IPPrefixLen"],
        "IPv6Gateway": "",
        "Gateway": top["Gateway"],
        "MacAddress": top["MacAddress"],
        "Networks": networks,
    })
}

pub fn status_text(e: &Engine, r: &ContainerRow) -> String {
    match r.state.as_str() {
        db::RUNNING => format!(
            "Up {}{}",
            human_since(&r.started_at),
            crate::health::status_suffix(&e.db, r)
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

/// What `ps` needs of a container's OCI spec: its command and annotations,
/// read without the rest (the full spec's parse is most of a list's time).
#[derive(Default, serde::Deserialize)]
pub(crate) struct SpecSummary {
    #[serde(default)]
    process: Option<ProcessSummary>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Default, serde::Deserialize)]
pub(crate) struct ProcessSummary {
    #[serde(default)]
    args: Option<Vec<String>>,
}

/// Spec summaries by container id, with the file's (mtime, size).
pub(crate) type SummaryCache =
    std::collections::HashMap<String, ((i64, i64, u64), std::sync::Arc<SpecSummary>)>;

fn spec_summary(e: &Engine, r: &ContainerRow) -> std::sync::Arc<SpecSummary> {
    use std::os::unix::fs::MetadataExt;
    let path = e.container_dir(&r.id).join("config.json");
    let Ok(meta) = std::fs::metadata(&path) else {
        return Default::default();
    };
    let stamp = (meta.mtime(), meta.mtime_nsec(), meta.size());
    if let Some((s, v)) = e.summaries.borrow().get(&r.id)
        && *s == stamp
    {
        return v.clone();
    }
    let v: std::sync::Arc<SpecSummary> = std::fs::read(&path)
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .map(std::sync::Arc::new)
        .unwrap_or_default();
    let mut cache = e.summaries.borrow_mut();
    if cache.len() > 4096 {
        cache.clear();
    }
    cache.insert(r.id.clone(), (stamp, v.clone()));
    v
}

pub fn command_of(e: &Engine, r: &ContainerRow) -> String {
    command_in(&spec_summary(e, r))
}

fn command_in(s: &SpecSummary) -> String {
    s.process
        .as_ref()
        .and_then(|p| p.args.as_ref())
        .map(|a| a.join(" "))
        .unwrap_or_default()
}

pub fn matches_filter(e: &Engine, r: &ContainerRow, f: &str) -> Result<bool> {
    let Some((k, v)) = f.split_once('=') else {
        return Err(Error::BadFilter(format!(
            "bad format of filter (expected name=value): {f}"
        )));
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
                return Err(Error::BadFilter(format!("invalid filter 'status={v}'")));
            }
            r.state == v
        }
        "exited" => r.state == db::EXITED && v.parse::<i32>().ok() == Some(r.exit_code),
        "health" => crate::health::matches_filter(&e.db, r, v)?,
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
                || crate::network::container_networks(e, &r.id)?
                    .iter()
                    .any(|(_, n)| n.name == v || n.id.starts_with(v))
        }
        _ => return Err(Error::BadFilter(format!("invalid filter '{k}'"))),
    })
}

/// A container's labels (the image's and `--label`s): its spec's annotations but the stop
/// signal's and the `--annotation`s.
pub fn labels_of(e: &Engine, r: &ContainerRow) -> serde_json::Map<String, Value> {
    labels_in(&spec_summary(e, r), r)
}

fn labels_in(s: &SpecSummary, r: &ContainerRow) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    if let Some(a) = &s.annotations {
        // Which keys are `--annotation`s: the record says (an image's label could claim
        // the spec's list), read only when the spec has the list.
        let annotations: Vec<String> = if a.contains_key(crate::spec::ANNOTATION_KEYS) {
            let cfg = row_config(r);
            // A `--label` whose key an `--annotation` also has (the annotation's value is
            // in the spec): its value from the record.
            for (k, v) in &cfg.labels {
                if cfg.annotations.contains_key(k) {
                    m.insert(k.clone(), Value::String(v.clone()));
                }
            }
            cfg.annotations.into_keys().collect()
        } else {
            vec![]
        };
        for (k, v) in a {
            if k != berth_image::runtime_config::STOP_SIGNAL_ANNOTATION
                && k != crate::spec::ANNOTATION_KEYS
                && !annotations.contains(k)
            {
                m.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }
    m
}

/// docker's `Config.Env`: the image's variables with `-e` replacing or adding to them (a bare
/// `-e KEY` of an unset variable removes KEY). The process's own (PATH default, HOSTNAME,
/// HOME, TERM) are not part of it; they are in the OCI spec.
pub fn config_env(image: &[String], user: &[String]) -> Vec<String> {
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let mut env: Vec<String> = image.to_vec();
    for u in user {
        let k = key(u);
        let at = env.iter().position(|e| key(e) == k);
        match (u.contains('='), at) {
            (true, Some(i)) => env[i] = u.clone(),
            (true, None) => env.push(u.clone()),
            (false, Some(i)) => {
                env.remove(i);
            }
            (false, None) => {}
        }
    }
    env
}

/// The config of a container's image (None when the image is gone).
pub fn image_config(e: &Engine, r: &ContainerRow) -> Option<berth_image::ImageConfig> {
    let store = e.images().ok()?;
    let image = store.get(&r.image_id).ok()?;
    store.config(&image).ok()
}

/// The `Env` of an image config (empty without one).
pub fn image_config_env(c: Option<&berth_image::ImageConfig>) -> Vec<String> {
    c.and_then(|c| c.config.config().as_ref()?.env().clone())
        .unwrap_or_default()
}

pub fn container_json(e: &Engine, r: &ContainerRow) -> Value {
    let cfg = row_config(r);
    let spec = row_spec(e, r);
    let process = spec.as_ref().and_then(|s| s.process().clone());
    let args = process
        .as_ref()
        .and_then(|p| p.args().clone())
        .unwrap_or_default();
    let dir = e.container_dir(&r.id);
    let labels = labels_of(e, r);
    let running = r.state == db::RUNNING || r.state == db::PAUSED;
    let zero = "0001-01-01T00:00:00Z";
    let or_zero = |s: &str| {
        if s.is_empty() {
            zero.to_string()
        } else {
            s.to_string()
        }
    };
    let mounts = mounts_json(e, &cfg);
    let user = process
        .as_ref()
        .map(|_| cfg.user.clone().unwrap_or_default())
        .unwrap_or_default();
    let store = e.images().ok();
    let image = store.as_ref().and_then(|s| s.get(&r.image_id).ok());
    let image_cfg = store
        .as_ref()
        .zip(image.as_ref())
        .and_then(|(s, i)| s.config(i).ok());
    let image_env = image_config_env(image_cfg.as_ref());
    // docker's omitempty when none.
    let exposed: serde_json::Map<String, Value> = crate::exposed_ports(image_cfg.as_ref(), &cfg)
        .into_iter()
        .map(|p| (p, json!({})))
        .collect();
    let (policy, retries) = match crate::config::parse_restart(&cfg.restart) {
        Ok(crate::config::RestartPolicy::OnFailure(n)) => ("on-failure", n.unwrap_or(0)),
        Ok(crate::config::RestartPolicy::Always) => ("always", 0),
        Ok(crate::config::RestartPolicy::UnlessStopped) => ("unless-stopped", 0),
        _ => ("no", 0),
    };
    // docker's overlay2 paths: the container's layers over the image's,
    // top first.
    let graph = if dir.join("upper").exists() {
        let lower: Vec<String> = store
            .as_ref()
            .zip(image.as_ref())
            .map(|(s, i)| {
                i.chain_ids
                    .iter()
                    .rev()
                    .map(|c| s.snapshots().fs_path(c).display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        json!({"Name": "overlay2", "Data": {
            "LowerDir": lower.join(":"),
            "MergedDir": dir.join("rootfs"),
            "UpperDir": dir.join("upper"),
            "WorkDir": dir.join("work"),
        }})
    } else {
        json!({"Name": "overlay2", "Data": {"MergedDir": dir.join("rootfs")}})
    };
    let memory = cfg.memory.unwrap_or(0);
    let mut v = json!({
        "Id": r.id,
        "Created": r.created_at,
        "Path": args.first().cloned().unwrap_or_default(),
        "Args": args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": r.state,
            "Running": running,
            "Paused": r.state == db::PAUSED,
            "Restarting": false,
            "OOMKilled": r.oom_killed,
            "Dead": r.state == db::DEAD,
            "Pid": if running { r.pid } else { 0 },
            "ExitCode": r.exit_code,
            "Error": r.error,
            "StartedAt": or_zero(&r.started_at),
            "FinishedAt": or_zero(&r.finished_at),
        },
        "Image": r.image_id,
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        "LogPath": e.log_path(&r.id),
        "Name": format!("/{}", r.name),
        "RestartCount": r.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "HostConfig": {
            "NetworkMode": cfg.network,
            "PortBindings": port_bindings(&cfg),
            "PublishAllPorts": cfg.publish_all,
            "Dns": cfg.dns,
            "DnsSearch": cfg.dns_search,
            "DnsOptions": cfg.dns_options,
            "AutoRemove": cfg.auto_remove,
            "Privileged": cfg.privileged,
            "ReadonlyRootfs": cfg.read_only,
            "CapAdd": cfg.cap_add,
            "CapDrop": cfg.cap_drop,
            "ExtraHosts": cfg.add_hosts,
            "SecurityOpt": if cfg.no_new_privileges { json!(["no-new-privileges"]) } else { Value::Null },
            "RestartPolicy": {"Name": policy, "MaximumRetryCount": retries},
            "Memory": memory,
            // The spec's swap limit: as given, else twice the memory (docker's default).
            "MemorySwap": cfg.memory_swap.filter(|s| *s != 0).unwrap_or(memory * 2),
            "MemoryReservation": cfg.memory_reservation.unwrap_or(0),
            "MemorySwappiness": cfg.memory_swappiness,
            "KernelMemory": 0,
            "OomKillDisable": cfg.oom_kill_disable,
            "CpuPeriod": cfg.cpu_period.unwrap_or(0),
            "CpuQuota": cfg.cpu_quota.unwrap_or(0),
            "CpuRealtimePeriod": cfg.cpu_rt_period.unwrap_or(0),
            "CpuRealtimeRuntime": cfg.cpu_rt_runtime.unwrap_or(0),
            "CpusetCpus": cfg.cpuset_cpus.clone().unwrap_or_default(),
            "CpusetMems": cfg.cpuset_mems.clone().unwrap_or_default(),
            "BlkioWeight": cfg.blkio_weight.unwrap_or(0),
            "BlkioWeightDevice": cfg.blkio_weight_device,
            "BlkioDeviceReadBps": cfg.device_read_bps,
            "BlkioDeviceWriteBps": cfg.device_write_bps,
            "BlkioDeviceReadIOps": cfg.device_read_iops,
            "BlkioDeviceWriteIOps": cfg.device_write_iops,
            "DeviceCgroupRules": if cfg.device_cgroup_rules.is_empty() { Value::Null } else { json!(cfg.device_cgroup_rules) },
            "ShmSize": cfg.shm_size.filter(|s| *s > 0).unwrap_or(crate::config::DEFAULT_SHM_SIZE),
            "PidMode": cfg.pid_mode,
            "IpcMode": if cfg.ipc_mode.is_empty() { "private" } else { cfg.ipc_mode.as_str() },
            "UTSMode": cfg.uts_mode,
            "Sysctls": if cfg.sysctls.is_empty() { Value::Null } else { json!(cfg.sysctls) },
            "OomScoreAdj": cfg.oom_score_adj.unwrap_or(0),
            "Devices": cfg.devices,
            "StorageOpt": if cfg.storage_opt.is_empty() { Value::Null } else { json!(cfg.storage_opt) },
            "Annotations": if cfg.annotations.is_empty() { Value::Null } else { json!(cfg.annotations) },
            "Links": if cfg.links.is_empty() { Value::Null } else { json!(crate::links::inspect_form(e, r)) },
            "VolumesFrom": if cfg.volumes_from.is_empty() { Value::Null } else { json!(cfg.volumes_from) },
            "CgroupnsMode": if cfg.cgroupns_mode.is_empty() { "private" } else { cfg.cgroupns_mode.as_str() },
            "CgroupParent": cfg.cgroup_parent.clone().unwrap_or_default(),
            "Init": cfg.init,
            "GroupAdd": cfg.group_add,
            "NanoCpus": cfg.nano_cpus.unwrap_or(0),
            "CpuShares": cfg.cpu_shares.unwrap_or(0),
            "PidsLimit": cfg.pids_limit,
            "Ulimits": cfg.ulimits.iter().map(|u| json!({"Name": u.name, "Soft": u.soft, "Hard": u.hard})).collect::<Vec<_>>(),
            "LogConfig": {
                "Type": "json-file",
                "Config": if cfg.log_max_size > 0 { json!({"max-size": cfg.log_max_size.to_string(), "max-file": cfg.log_max_file.to_string()}) } else { json!({}) },
            },
            "Binds": cfg.mounts.iter().filter(|m| m.kind != "tmpfs" && !m.anonymous).map(|m| format!("{}:{}{}", m.source, m.target, if m.readonly { ":ro" } else { "" })).collect::<Vec<_>>(),
            "Tmpfs": cfg.mounts.iter().filter(|m| m.kind == "tmpfs").map(|m| (m.target.clone(), Value::String(m.options.join(",")))).collect::<serde_json::Map<_, _>>(),
        },
        "GraphDriver": graph,
        "Mounts": mounts,
        "Config": {
            "Hostname": spec.as_ref().and_then(|s| s.hostname().clone()).unwrap_or_default(),
            "Domainname": cfg.domainname.clone().unwrap_or_default(),
            "User": user,
            "AttachStdin": cfg.open_stdin,
            "AttachStdout": true,
            "AttachStderr": true,
            "Tty": cfg.tty,
            "OpenStdin": cfg.open_stdin,
            "StdinOnce": cfg.stdin_once,
            "Env": config_env(&image_env, &cfg.env),
            "Cmd": if cfg.cmd.is_empty() { Value::Null } else { json!(cfg.cmd) },
            "Image": r.image,
            "WorkingDir": process.as_ref().map(|p| p.cwd().display().to_string()).unwrap_or_default(),
            "Entrypoint": cfg.entrypoint,
            "Labels": labels,
            "StopSignal": cfg.stop_signal,
            "StopTimeout": cfg.stop_timeout,
        },
        "NetworkSettings": network_settings(e, r),
    });
    // docker's omitempty: Config.Healthcheck when one is set (the image's merged in),
    // State.Health once the container has a healthcheck it runs.
    if let Some(h) = &cfg.healthcheck {
        v["Config"]["Healthcheck"] = json!(h);
    }
    if !exposed.is_empty() {
        v["Config"]["ExposedPorts"] = Value::Object(exposed);
    }
    if crate::health::active_config(r).is_some() {
        let h = crate::health::load(&e.db, &r.id).ok().flatten();
        if let Some(h) = h.or_else(|| {
            running.then(|| crate::health::Health {
                status: crate::health::STARTING.into(),
                ..Default::default()
            })
        }) {
            v["State"]["Health"] = h.to_json();
        }
    }
    v
}

/// go-units HumanDuration since `t` (no " ago").
pub fn human_since(t: &str) -> String {
    let s = crate::timefmt::human_ago(Some(t), crate::timefmt::now_secs());
    s.strip_suffix(" ago").unwrap_or(&s).to_string()
}

/// docker's `image inspect` fields, in its order.
pub fn image_fields(store: &ImageStore, r: &ImageRecord) -> Result<Vec<(&'static str, Value)>> {
    let c = config_json(store, r)?;
    let get = |k: &str| c.get(k).cloned().unwrap_or(json!(""));
    let comment = c["history"]
        .as_array()
        .and_then(|h| h.last())
        .and_then(|h| h.get("comment"))
        .cloned()
        .unwrap_or(json!(""));
    let fields = [
        ("Id", json!(r.id.to_string())),
        ("RepoTags", json!(familiar(&r.repo_tags))),
        ("RepoDigests", json!(familiar(&r.repo_digests))),
        ("Parent", json!("")),
        ("Comment", comment),
        ("Created", get("created")),
        ("DockerVersion", get("docker_version")),
        ("Author", get("author")),
        ("Config", c.get("config").cloned().unwrap_or(Value::Null)),
        ("Architecture", get("architecture")),
        ("Variant", c.get("variant").cloned().unwrap_or(Value::Null)),
        ("Os", get("os")),
        ("Size", json!(r.size)),
        (
            "RootFS",
            json!({"Type": "layers", "Layers": c["rootfs"]["diff_ids"].clone()}),
        ),
        ("Metadata", json!({"LastTagTime": "0001-01-01T00:00:00Z"})),
        (
            "Descriptor",
            json!({"mediaType": r.target_media_type, "digest": r.target.to_string()}),
        ),
    ];
    Ok(fields.to_vec())
}

/// docker's `volume inspect` object.
pub fn volume_json(e: &Engine, name: &str) -> Result<Value> {
    let v = e.db.volume_get(name)?;
    let labels: Value = serde_json::from_str(&v.labels).unwrap_or(json!({}));
    Ok(json!({
        "CreatedAt": v.created_at,
        "Driver": "local",
        "Labels": labels,
        "Mountpoint": crate::spec::volume_data(&e.root, &v.name),
        "Name": v.name,
        "Options": null,
        "Scope": "local",
    }))
}

/// An image's history entries (its config's `history`, oldest first), each
/// with the size of the layer it made (0 for an empty layer).
pub fn history_entries(store: &ImageStore, r: &ImageRecord) -> Result<Vec<(Value, u64)>> {
    let c = config_json(store, r)?;
    let hist = c["history"].as_array().cloned().unwrap_or_default();
    // Sizes of the non-empty layers, bottom first.
    let mut layer_sizes = r
        .chain_ids
        .iter()
        .map(|ch| store.snapshots().info(ch).map(|i| i.size));
    let mut entries = Vec::new();
    for h in &hist {
        let empty = h["empty_layer"].as_bool().unwrap_or(false);
        let size = if empty {
            0
        } else {
            layer_sizes.next().transpose()?.unwrap_or(0)
        };
        entries.push((h.clone(), size));
    }
    Ok(entries)
}

/// docker's `Mounts` of a container.
pub fn mounts_json(e: &Engine, cfg: &RunConfig) -> Vec<Value> {
    cfg.mounts
        .iter()
        .map(|m| {
            let source = match m.kind.as_str() {
                "volume" => crate::spec::volume_data(&e.root, &m.source)
                    .display()
                    .to_string(),
                _ => m.source.clone(),
            };
            let mut v = json!({
                "Type": m.kind, "Source": source, "Destination": m.target,
                "Mode": if m.readonly { "ro" } else { "" }, "RW": !m.readonly,
                "Propagation": if m.kind == "bind" { "rprivate" } else { "" },
            });
            if m.kind == "volume" {
                v["Name"] = json!(m.source);
                v["Driver"] = json!("local");
            }
            v
        })
        .collect()
}

/// docker's `/containers/json` entry (what `ps` lists).
pub fn container_summary(e: &Engine, r: &ContainerRow) -> Value {
    let cfg = row_config(r);
    let created = crate::timefmt::parse_rfc3339(&r.created_at).unwrap_or(0);
    let ports: Vec<Value> = published(e, r)
        .iter()
        .map(|(c, ip, hp)| {
            let (port, proto) = c.split_once('/').unwrap_or((c, "tcp"));
            json!({"IP": ip, "PrivatePort": port.parse::<u16>().unwrap_or(0), "PublicPort": hp, "Type": proto})
        })
        .collect();
    let ns = network_settings(e, r);
    let spec = spec_summary(e, r);
    json!({
        "Id": r.id,
        "Names": [format!("/{}", r.name)],
        "Image": r.image,
        "ImageID": r.image_id,
        "Command": command_in(&spec),
        "Created": created,
        "Ports": ports,
        "Labels": labels_in(&spec, r),
        "State": r.state,
        "Status": status_text(e, r),
        "HostConfig": {"NetworkMode": cfg.network},
        "NetworkSettings": {"Networks": ns["Networks"]},
        "Mounts": mounts_json(e, &cfg),
    })
}

/// The containers `ps` lists: running ones (every one with `all` or a
/// `status` filter) that match every `name=value` filter, at most `last`.
pub fn select_containers(
    e: &mut Engine,
    all: bool,
    filters: &[String],
    last: Option<usize>,
) -> Result<Vec<ContainerRow>> {
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
            return Err(Error::BadFilter(format!("invalid filter '{k}'")));
        }
    }
    let filters_status = filters.iter().any(|f| f.starts_with("status="));
    let mut kept = vec![];
    for r in e.list()? {
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
    Ok(kept)
}

/// Go's `path.Match`: `*` and `?` never match `/`; `[...]` classes.
pub fn glob(pattern: &str, name: &str) -> bool {
    fn m(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len())
                .take_while(|&i| i == 0 || n[i - 1] != '/')
                .any(|i| m(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && n[0] != '/' && m(&p[1..], &n[1..]),
            Some('[') => {
                let Some(end) = p.iter().position(|&c| c == ']') else {
                    return false;
                };
                let Some(&c) = n.first() else { return false };
                let class = &p[1..end];
                let (neg, class) = match class.first() {
                    Some('^') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit != neg && m(&p[end + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && m(&p[2..], &n[1..]),
            Some(&c) => n.first() == Some(&c) && m(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    m(&p, &n)
}

/// References as docker shows them (`busybox:latest`, not
/// `docker.io/library/busybox:latest`).
pub fn familiar(refs: &[String]) -> Vec<String> {
    refs.iter()
        .map(|t| {
            Reference::parse_normalized(t)
                .map(|x| x.familiar())
                .unwrap_or_else(|_| t.clone())
        })
        .collect()
}

/// The host's memory (MemTotal of /proc/meminfo), bytes; 0 when unreadable.
pub fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

//! `/volumes/...` and `/networks/...`.

use std::collections::BTreeMap;

use berth_engine::network::{self, CreateNetwork};
use berth_engine::volumes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::body::{self, Body};
use crate::containers::EndpointConfig;
use crate::error::ApiError;
use crate::{Query, Shared, engine, engine_own, json_response, no_content, ok_json};

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct VolumeBody {
    name: Option<String>,
    driver: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    /// The local driver's options (`type`, `device`, `o`), as `volume create -o`.
    driver_opts: Option<BTreeMap<String, String>>,
}

pub async fn volume_list(st: &Shared, q: &Query) -> Result<Response<Body>, ApiError> {
    let filters = q.filters()?;
    let v = engine(st, move |e| {
        let mut out = vec![];
        for vol in e.db.volume_list()? {
            let mut ok = true;
            for f in &filters {
                let (k, v) = f.split_once('=').unwrap_or((f, ""));
                ok &= match k {
                    "name" => vol.name.contains(v),
                    "dangling" => {
                        volumes::users(e, &vol.name)?.is_empty() == matches!(v, "true" | "1")
                    }
                    "driver" => v == "local",
                    "label" => {
                        let labels: BTreeMap<String, String> =
                            serde_json::from_str(&vol.labels).unwrap_or_default();
                        let (lk, lv) = v.split_once('=').map_or((v, None), |(a, b)| (a, Some(b)));
                        labels.get(lk).is_some_and(|x| lv.is_none_or(|lv| x == lv))
                    }
                    _ => return Err(ApiError::bad(format!("invalid filter '{k}'"))),
                };
            }
            if ok {
                out.push(berth_engine::inspect::volume_json(e, &vol.name)?);
            }
        }
        Ok(out)
    })
    .await?;
    Ok(ok_json(&json!({"Volumes": v, "Warnings": []})))
}

pub async fn volume_create(
    st: &Shared,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let b: VolumeBody = body::json(req.into_body()).await?;
    if let Some(d) = b
        .driver
        .as_deref()
        .filter(|d| !d.is_empty() && *d != "local")
    {
        return Err(ApiError::bad(format!(
            "volume driver {d:?} is not supported (local is)"
        )));
    }
    let v = engine(st, move |e| {
        let name = match b.name.filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => berth_engine::names::new_id()?,
        };
        volumes::create(
            e,
            &name,
            false,
            &b.labels.unwrap_or_default(),
            &b.driver_opts.unwrap_or_default(),
        )?;
        Ok(berth_engine::inspect::volume_json(e, &name)?)
    })
    .await?;
    Ok(json_response(StatusCode::CREATED, &v))
}

pub async fn volume_inspect(st: &Shared, name: &str) -> Result<Response<Body>, ApiError> {
    let name = name.to_string();
    let v = engine(st, move |e| {
        Ok(berth_engine::inspect::volume_json(e, &name)?)
    })
    .await?;
    Ok(ok_json(&v))
}

pub async fn volume_remove(st: &Shared, name: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    let name = name.to_string();
    let force = q.flag("force");
    engine(st, move |e| match volumes::remove(e, &name, false) {
        Err(berth_engine::Error::NoSuchVolume(_)) if force => Ok(()),
        r => Ok(r?),
    })
    .await?;
    Ok(no_content())
}

pub async fn volume_prune(st: &Shared, q: &Query) -> Result<Response<Body>, ApiError> {
    let all = q.filters()?.iter().any(|f| f == "all=true" || f == "all=1");
    let f = q.prune_filter()?;
    let (names, bytes) = engine_own(st, move |e| Ok(e.prune_volumes(all, &f)?)).await?;
    Ok(ok_json(
        &json!({"VolumesDeleted": names, "SpaceReclaimed": bytes}),
    ))
}

pub async fn network_list(st: &Shared, q: &Query) -> Result<Response<Body>, ApiError> {
    let filters = q.filters()?;
    let v = engine(st, move |e| {
        let _ = network::ensure_default(e);
        let mut all = vec![];
        for n in network::list(e)? {
            all.push(berth_engine::inspect::network_json(e, &n)?);
        }
        all.push(berth_engine::inspect::pseudo_network("host"));
        all.push(berth_engine::inspect::pseudo_network("none"));
        let mut out = vec![];
        for n in all {
            let mut ok = true;
            for f in &filters {
                let (k, v) = f.split_once('=').unwrap_or((f, ""));
                let s = |key: &str| n[key].as_str().unwrap_or("").to_string();
                ok &= match k {
                    "name" => s("Name").contains(v),
                    "id" => s("Id").starts_with(v),
                    "driver" => s("Driver") == v,
                    "scope" => v == "local",
                    "type" => match v {
                        "builtin" => matches!(s("Name").as_str(), "bridge" | "host" | "none"),
                        "custom" => !matches!(s("Name").as_str(), "bridge" | "host" | "none"),
                        _ => false,
                    },
                    "label" => {
                        let (lk, lv) = v.split_once('=').map_or((v, None), |(a, b)| (a, Some(b)));
                        n["Labels"]
                            .get(lk)
                            .is_some_and(|x| lv.is_none_or(|lv| x.as_str() == Some(lv)))
                    }
                    _ => return Err(ApiError::bad(format!("invalid filter '{k}'"))),
                };
            }
            if ok {
                out.push(n);
            }
        }
        Ok(out)
    })
    .await?;
    Ok(ok_json(&json!(v)))
}

fn pseudo_or(e: &mut berth_engine::Engine, key: &str) -> Result<Value, ApiError> {
    if matches!(key, "host" | "none") {
        return Ok(berth_engine::inspect::pseudo_network(key));
    }
    let _ = network::ensure_default(e);
    let n = network::find(e, key)?;
    Ok(berth_engine::inspect::network_json(e, &n)?)
}

pub async fn network_inspect(st: &Shared, id: &str) -> Result<Response<Body>, ApiError> {
    let id = id.to_string();
    let v = engine(st, move |e| pseudo_or(e, &id)).await?;
    Ok(ok_json(&v))
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct NetworkBody {
    name: Option<String>,
    driver: Option<String>,
    internal: Option<bool>,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    labels: Option<BTreeMap<String, String>>,
    options: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    config: Option<Vec<IpamPool>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct IpamPool {
    subnet: Option<String>,
    gateway: Option<String>,
    #[serde(rename = "IPRange")]
    ip_range: Option<String>,
}

pub async fn network_create(
    st: &Shared,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let b: NetworkBody = body::json(req.into_body()).await?;
    let name = b
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad("network name is required"))?;
    let pools = b.ipam.and_then(|i| i.config).unwrap_or_default();
    let pick = |f: fn(&IpamPool) -> Option<String>| -> Vec<String> {
        pools
            .iter()
            .filter_map(f)
            .filter(|s| !s.is_empty())
            .collect()
    };
    let req = CreateNetwork {
        name,
        driver: b.driver.filter(|d| !d.is_empty()),
        subnets: pick(|p| p.subnet.clone()),
        gateways: pick(|p| p.gateway.clone()),
        ip_ranges: pick(|p| p.ip_range.clone()),
        internal: b.internal.unwrap_or(false),
        ipv6: b.enable_ipv6.unwrap_or(false),
        labels: b.labels.unwrap_or_default(),
        options: b.options.unwrap_or_default(),
    };
    let row = engine_own(st, move |e| {
        let _ = network::ensure_default(e);
        Ok(network::create(e, req)?)
    })
    .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"Id": row.id, "Warning": ""}),
    ))
}

pub async fn network_remove(st: &Shared, id: &str) -> Result<Response<Body>, ApiError> {
    let id = id.to_string();
    engine_own(st, move |e| {
        network::remove(e, &id)?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}

pub async fn network_prune(st: &Shared, q: &Query) -> Result<Response<Body>, ApiError> {
    let f = q.prune_filter()?;
    let names = engine_own(st, move |e| Ok(e.prune_networks(&f)?)).await?;
    Ok(ok_json(&json!({"NetworksDeleted": names})))
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: Option<String>,
    endpoint_config: Option<EndpointConfig>,
}

pub async fn network_connect(
    st: &Shared,
    id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let b: ConnectBody = body::json(req.into_body()).await?;
    let container = b
        .container
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad("container is required"))?;
    let ep = b.endpoint_config.unwrap_or_default();
    let (ip, ip6) = ep.ipam_config.map(|i| (i.ipv4, i.ipv6)).unwrap_or_default();
    let aliases = ep.aliases.unwrap_or_default();
    let id = id.to_string();
    engine_own(st, move |e| {
        network::connect(
            e,
            &id,
            &container,
            ip.as_deref().filter(|s| !s.is_empty()),
            ip6.as_deref().filter(|s| !s.is_empty()),
            aliases,
        )?;
        Ok(())
    })
    .await?;
    Ok(Response::new(body::empty()))
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "PascalCase", default)]
struct DisconnectBody {
    container: Option<String>,
}

pub async fn network_disconnect(
    st: &Shared,
    id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let b: DisconnectBody = body::json(req.into_body()).await?;
    let container = b
        .container
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad("container is required"))?;
    let id = id.to_string();
    engine_own(st, move |e| Ok(network::disconnect(e, &id, &container)?)).await?;
    Ok(Response::new(body::empty()))
}

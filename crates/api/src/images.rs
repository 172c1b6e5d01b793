//! `/images/...`.

use berth_image::{ArchiveFormat, ImportOptions, LoadOptions, Reference};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::body::{self, Body, ChanWriter};
use crate::error::ApiError;
use crate::helper::{self, Run, line};
use crate::{Query, Shared, engine, engine_own, json_response, ok_json};

use berth_engine::inspect::familiar;

/// docker's `[{"Untagged": …}, {"Deleted": …}]` of a removal.
fn removed(rep: &berth_image::RemoveReport) -> Vec<Value> {
    familiar(&rep.untagged)
        .into_iter()
        .map(|t| json!({"Untagged": t}))
        .chain(
            rep.deleted
                .iter()
                .map(|d| json!({"Deleted": d.to_string()})),
        )
        .collect()
}

fn unix_time(t: Option<&str>) -> i64 {
    t.and_then(berth_engine::timefmt::parse_rfc3339)
        .unwrap_or(0)
}

/// Whether an image matches a `reference=` pattern (familiar or full,
/// with or without its tag).
fn matches_reference(r: &berth_image::ImageRecord, pat: &str) -> bool {
    r.repo_tags.iter().any(|t| {
        let Ok(rf) = Reference::parse_normalized(t) else {
            return false;
        };
        let tag = rf.tag().unwrap_or("latest").to_string();
        [rf.familiar_name(), rf.name()].iter().any(|n| {
            berth_engine::inspect::glob(pat, n)
                || berth_engine::inspect::glob(pat, &format!("{n}:{tag}"))
        })
    })
}

pub async fn list(st: &Shared, q: &Query) -> Result<Response<Body>, ApiError> {
    let filters = q.filters()?;
    let v = engine(st, move |e| {
        let store = e.images()?;
        let used = e.images_in_use()?;
        let mut out = vec![];
        'images: for r in store.list()? {
            for f in &filters {
                let (k, v) = f.split_once('=').unwrap_or((f, ""));
                let ok = match k {
                    "dangling" => r.is_dangling() == matches!(v, "true" | "1"),
                    "reference" => matches_reference(&r, v),
                    _ => return Err(ApiError::bad(format!("invalid filter '{k}'"))),
                };
                if !ok {
                    continue 'images;
                }
            }
            let c = berth_image::archive::config_json(&store, &r)?;
            let labels = c["config"]["Labels"].clone();
            out.push(json!({
                "Id": r.id.to_string(),
                "ParentId": "",
                "RepoTags": familiar(&r.repo_tags),
                "RepoDigests": familiar(&r.repo_digests),
                "Created": unix_time(r.created.as_deref()),
                "Size": r.size,
                "VirtualSize": r.size,
                "SharedSize": -1,
                "Labels": if labels.is_object() { labels } else { json!({}) },
                "Containers": used.iter().filter(|u| **u == r.id.to_string()).count(),
            }));
        }
        Ok(out)
    })
    .await?;
    Ok(ok_json(&json!(v)))
}

/// `/images/{name}/{action}`: the name may hold slashes (`a/b:c`).
pub async fn by_name(
    st: &Shared,
    m: &Method,
    rest: &[&str],
    q: &Query,
    h: &hyper::HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let (name, action) = match (m, rest.split_last()) {
        (&Method::DELETE, _) => (rest.join("/"), ""),
        (_, Some((a, n))) if !n.is_empty() => (n.join("/"), *a),
        _ => return Err(ApiError::not_found("page not found")),
    };
    match (m, action) {
        (&Method::GET, "json") => inspect(st, name).await,
        (&Method::GET, "history") => history(st, name).await,
        (&Method::GET, "get") => get(st, vec![name.as_str()]).await,
        (&Method::POST, "tag") => tag(st, name, q).await,
        (&Method::POST, "push") => push(st, name, q, h).await,
        (&Method::DELETE, "") => remove(st, name, q).await,
        _ => Err(ApiError::not_found("page not found")),
    }
}

async fn inspect(st: &Shared, name: String) -> Result<Response<Body>, ApiError> {
    let v = engine(st, move |e| {
        let store = e.images()?;
        let r = store.get(&name)?;
        let fields = berth_engine::inspect::image_fields(&store, &r)?;
        Ok(Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        ))
    })
    .await?;
    Ok(ok_json(&v))
}

async fn history(st: &Shared, name: String) -> Result<Response<Body>, ApiError> {
    let v = engine(st, move |e| {
        let store = e.images()?;
        let r = store.get(&name)?;
        let entries = berth_engine::inspect::history_entries(&store, &r)?;
        let n = entries.len();
        Ok(entries
            .into_iter()
            .rev()
            .enumerate()
            .map(|(i, (h, size))| {
                json!({
                    "Id": if i == 0 { r.id.to_string() } else { "<missing>".into() },
                    "Created": unix_time(h["created"].as_str()),
                    "CreatedBy": h["created_by"].as_str().unwrap_or(""),
                    "Tags": if i == 0 { json!(familiar(&r.repo_tags)) } else { Value::Null },
                    "Size": size,
                    "Comment": h["comment"].as_str().unwrap_or(""),
                })
            })
            .chain((n == 0).then(|| {
                json!({"Id": r.id.to_string(), "Created": unix_time(r.created.as_deref()),
                       "CreatedBy": "", "Tags": familiar(&r.repo_tags), "Size": r.size, "Comment": ""})
            }))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(ok_json(&json!(v)))
}

async fn tag(st: &Shared, name: String, q: &Query) -> Result<Response<Body>, ApiError> {
    let repo = q
        .get("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad("repository name must have at least one component"))?;
    let target = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    let t = Reference::parse(&target)?;
    if t.digest().is_some() {
        return Err(ApiError::bad(format!(
            "refusing to create a tag with a digest reference: {target}"
        )));
    }
    engine(st, move |e| {
        let store = e.images()?;
        store.tag(&name, &t)?;
        if let Ok(r) = store.get(&t.to_string()) {
            e.event(
                "image",
                "tag",
                &r.id.to_string(),
                &[("name", &t.familiar())],
            );
        }
        Ok(())
    })
    .await?;
    Ok(json_response(StatusCode::CREATED, &json!({})).map(|_| body::empty()))
}

async fn remove(st: &Shared, name: String, q: &Query) -> Result<Response<Body>, ApiError> {
    let force = q.flag("force");
    let rep = engine(st, move |e| Ok(e.remove_image(&name, force)?)).await?;
    Ok(ok_json(&json!(removed(&rep))))
}

pub async fn prune(st: &Shared, q: &Query) -> Result<Response<Body>, ApiError> {
    let all = q
        .filters()?
        .iter()
        .any(|f| matches!(f.as_str(), "dangling=false" | "dangling=0"));
    let f = q.prune_filter()?;
    let rep = engine_own(st, move |e| Ok(e.prune_images_filtered(all, &f)?)).await?;
    Ok(ok_json(
        &json!({"ImagesDeleted": removed(&rep), "SpaceReclaimed": rep.gc.bytes_freed}),
    ))
}

/// POST /build/prune (`all`, `filters` until=): the build cache, as
/// `builder prune` (what `docker system prune` calls last).
pub async fn build_prune(st: &Shared, q: &Query) -> Result<Response<Body>, ApiError> {
    let all = q.flag("all");
    let f = q.prune_filter()?;
    let (keys, bytes) = engine_own(st, move |e| Ok(e.prune_build_cache(all, &f)?)).await?;
    Ok(ok_json(
        &json!({"CachesDeleted": keys, "SpaceReclaimed": bytes}),
    ))
}

/// `GET /images/get?names=…` and `/images/{name}/get`: a docker archive.
pub async fn get(st: &Shared, names: Vec<&str>) -> Result<Response<Body>, ApiError> {
    let names: Vec<String> = names.into_iter().map(String::from).collect();
    if names.is_empty() {
        return Err(ApiError::bad("no image names given"));
    }
    // Unknown names are a 404 before the stream starts.
    let check = names.clone();
    engine(st, move |e| {
        let store = e.images()?;
        for n in &check {
            store.get(n)?;
        }
        Ok(())
    })
    .await?;
    let (tx, body) = body::channel();
    tokio::spawn(engine_own(st, move |e| {
        let store = e.images()?;
        let _ = berth_image::save(&store, &names, ArchiveFormat::Docker, &mut ChanWriter(tx));
        Ok(())
    }));
    Ok(crate::containers::tar_response(body))
}

/// A JSON-lines progress stream (docker's `{"status": …}` messages).
fn progress_response(body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// `POST /images/load`: a docker or OCI archive in the body.
pub async fn load(
    st: &Shared,
    q: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let _quiet = q.flag("quiet");
    let mut input = body::reader(req.into_body());
    let recs = engine_own(st, move |e| {
        let store = e.images()?;
        Ok(berth_image::load(
            &store,
            std::io::BufReader::new(&mut input),
            &LoadOptions::default(),
        )?)
    })
    .await?;
    let mut out = Vec::new();
    for r in recs {
        if r.repo_tags.is_empty() {
            out.extend_from_slice(&line(
                json!({"stream": format!("Loaded image ID: {}\n", r.id)}),
            ));
        }
        for t in r.familiar_tags() {
            out.extend_from_slice(&line(json!({"stream": format!("Loaded image: {t}\n")})));
        }
    }
    Ok(progress_response(body::full(out)))
}

/// `POST /images/create`: `fromSrc=-` imports the body as a root
/// filesystem; `fromImage` pulls (through `berth pull`, whose progress
/// lines become docker's status messages).
pub async fn create(
    st: &Shared,
    q: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    if let Some(src) = q.get("fromSrc").filter(|s| !s.is_empty()) {
        if src != "-" {
            return Err(ApiError::bad(
                "importing from a URL is not supported: send the tarball in the body (fromSrc=-)",
            ));
        }
        let reference = match q.get("repo").filter(|r| !r.is_empty()) {
            Some(repo) => {
                let t = q.get("tag").filter(|t| !t.is_empty()).unwrap_or("latest");
                Some(Reference::parse(&format!("{repo}:{t}"))?)
            }
            None => None,
        };
        let opts = ImportOptions {
            changes: q.all("changes").into_iter().map(String::from).collect(),
            message: q.get("message").filter(|m| !m.is_empty()).map(String::from),
            load: LoadOptions::default(),
        };
        let mut input = body::reader(req.into_body());
        let rec = engine_own(st, move |e| {
            let store = e.images()?;
            Ok(berth_image::import(
                &store,
                &mut input,
                reference.as_ref(),
                &opts,
            )?)
        })
        .await?;
        return Ok(progress_response(body::full(line(
            json!({"status": rec.id.to_string()}),
        ))));
    }
    let image = q
        .get("fromImage")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad("fromImage or fromSrc is required"))?;
    let name = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{image}@{t}"),
        Some(t) => format!("{image}:{t}"),
        None => image.to_string(),
    };
    let r = Reference::parse_normalized(&name)?;
    let run = auth_run(st, req.headers(), &r)?;
    Ok(progress_response(helper::progress(
        st,
        &["pull".into(), name],
        run,
    )))
}

/// A subprocess's docker config with the credentials of `X-Registry-Auth`,
/// for the registry of `r`.
fn auth_run(st: &Shared, h: &hyper::HeaderMap, r: &Reference) -> Result<Run, ApiError> {
    Ok(Run {
        config: match helper::registry_auth(h)? {
            Some(c) => Some(helper::config_dir(st, r.domain(), c)?),
            None => None,
        },
        ..Run::default()
    })
}

async fn push(
    st: &Shared,
    name: String,
    q: &Query,
    h: &hyper::HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let name = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name,
    };
    let check = name.clone();
    engine(st, move |e| {
        e.images()?.get(&check)?;
        Ok(())
    })
    .await?;
    let run = auth_run(st, h, &Reference::parse_normalized(&name)?)?;
    Ok(progress_response(helper::progress(
        st,
        &["push".into(), name],
        run,
    )))
}

//! `/_ping`, `/version`, `/info`, `/system/df`, `/events`, `/auth`.

use bytes::Bytes;
use hyper::{Method, Response, header};
use serde_json::json;

use crate::body::{self, Body};
use crate::error::ApiError;
use crate::{Query, Shared, engine, ok_json};

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

pub fn version() -> Response<Body> {
    ok_json(&berth_engine::system::version())
}

pub async fn info(st: &Shared) -> Result<Response<Body>, ApiError> {
    let v = engine(st, |e| Ok(berth_engine::system::info(e)?)).await?;
    Ok(ok_json(&v))
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

//! `POST /build` (the classic builder's endpoint) and `POST /commit`.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::body::{self, Body};
use crate::error::ApiError;
use crate::helper::{self, Run, TempDir, error_line, line};
use crate::{Query, Shared, engine, json_response};

/// `POST /build`: the body is the context (a tar, maybe compressed), the
/// query the options; answered with docker's JSON stream (`stream` lines
/// of progress, `aux` with the image id, `error` when it fails).
pub async fn build(
    st: &Shared,
    q: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let args = build_args(q)?;
    let quiet = q.flag("q");
    let tags: Vec<String> = q
        .all("t")
        .into_iter()
        .filter(|t| !t.is_empty())
        .map(|t| {
            berth_image::Reference::parse_normalized(t)
                .map(|r| {
                    let r = if r.tag().is_none() && r.digest().is_none() {
                        r.with_tag(berth_image::reference::DEFAULT_TAG).unwrap_or(r)
                    } else {
                        r
                    };
                    r.familiar()
                })
                .map_err(|e| ApiError::bad(format!("invalid tag {t:?}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let dir = TempDir::new(st, "build")?;
    let iid = dir.path().join("iid");
    let mut argv: Vec<String> = vec!["build".into(), "--progress".into(), "plain".into()];
    argv.push("--iidfile".into());
    argv.push(iid.to_string_lossy().into_owned());
    argv.extend(args);
    argv.push("-".into());
    let mut out = helper::spawn(
        st,
        &argv,
        Run {
            input: Some(req.into_body()),
            ..Run::default()
        },
    )?;
    let (tx, body) = body::channel();
    tokio::spawn(async move {
        // The build's progress (stderr, BuildKit's plain lines).
        let mut err_text = String::new();
        while let Some(l) = out.stderr.recv().await {
            err_text.push_str(&l);
            if !quiet && !l.starts_with("Error: ") {
                // A client gone: the build goes on, its output dropped.
                let _ = tx.send(line(json!({"stream": l}))).await;
            }
        }
        while out.stdout.recv().await.is_some() {}
        let ok = out.done.await.unwrap_or(false);
        let id = helper::read_file(&iid).await;
        drop(dir);
        match (
            ok,
            id.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
        ) {
            (true, Some(id)) => {
                let _ = tx.send(line(json!({"aux": {"ID": id}}))).await;
                if quiet {
                    let _ = tx.send(line(json!({"stream": format!("{id}\n")}))).await;
                } else {
                    let short = id.trim_start_matches("sha256:");
                    let short = &short[..12.min(short.len())];
                    // One message each, as docker's (clients match them
                    // one by one).
                    let built = format!("Successfully built {short}\n");
                    let _ = tx.send(line(json!({"stream": built}))).await;
                    for t in &tags {
                        let tagged = format!("Successfully tagged {t}\n");
                        let _ = tx.send(line(json!({"stream": tagged}))).await;
                    }
                }
            }
            (true, None) => {
                let _ = tx
                    .send(error_line("the build did not report its image id"))
                    .await;
            }
            (false, _) => {
                let _ = tx.send(error_line(&helper::failure(&err_text))).await;
            }
        }
    });
    let mut r = Response::new(body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// `berth build` flags of `/build`'s query.
fn build_args(q: &Query) -> Result<Vec<String>, ApiError> {
    let mut a: Vec<String> = vec![];
    let mut push = |f: &str, v: String| {
        a.push(f.to_string());
        a.push(v);
    };
    if q.get("remote").is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::bad(
            "remote build contexts are not supported by berth serve: send the context as a tarball",
        ));
    }
    if q.get("version") == Some("2") {
        return Err(ApiError::bad(
            "BuildKit sessions are not supported by berth serve: use the classic builder (version=1, DOCKER_BUILDKIT=0)",
        ));
    }
    if q.get("outputs").is_some_and(|o| !o.is_empty() && o != "[]") {
        return Err(ApiError::bad(
            "build outputs are not supported by berth serve: the result is an image",
        ));
    }
    // Resource limits of the build's containers: docker's classic client
    // sends zeros; other values are refused rather than ignored.
    for k in ["memory", "memswap", "cpushares", "cpuperiod", "cpuquota"] {
        if q.int::<i64>(k)?.unwrap_or(0) != 0 {
            return Err(ApiError::bad(format!(
                "{k} is not supported by berth build (limits of the RUN containers)"
            )));
        }
    }
    for k in ["cpusetcpus", "cpusetmems"] {
        if q.get(k).is_some_and(|v| !v.is_empty()) {
            return Err(ApiError::bad(format!(
                "{k} is not supported by berth build"
            )));
        }
    }
    for t in q.all("t").into_iter().filter(|t| !t.is_empty()) {
        push("-t", t.to_string());
    }
    if let Some(f) = q.get("dockerfile").filter(|f| !f.is_empty()) {
        push("-f", f.to_string());
    }
    for (k, v) in json_map(q, "buildargs")? {
        match v {
            Value::Null => push("--build-arg", k),
            Value::String(s) => push("--build-arg", format!("{k}={s}")),
            other => push("--build-arg", format!("{k}={other}")),
        }
    }
    for (k, v) in json_map(q, "labels")? {
        push(
            "--label",
            format!(
                "{k}={}",
                v.as_str().map_or_else(|| v.to_string(), String::from)
            ),
        );
    }
    if let Some(t) = q.get("target").filter(|t| !t.is_empty()) {
        push("--target", t.to_string());
    }
    match q.get("networkmode").unwrap_or("") {
        "" | "default" => {}
        n => push("--network", n.to_string()),
    }
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        push("--platform", p.to_string());
    }
    for h in q.all("extrahosts") {
        for h in h.split(',').filter(|h| !h.is_empty()) {
            push("--add-host", h.to_string());
        }
    }
    if let Some(n) = q.int::<u64>("shmsize")?.filter(|n| *n > 0) {
        push("--shm-size", n.to_string());
    }
    if let Some(u) = q.get("ulimits").filter(|u| !u.is_empty() && *u != "null") {
        let v: Vec<Value> =
            serde_json::from_str(u).map_err(|e| ApiError::bad(format!("invalid ulimits: {e}")))?;
        for l in v {
            let name = l.get("Name").and_then(Value::as_str).unwrap_or("");
            let (Some(soft), Some(hard)) = (
                l.get("Soft").and_then(Value::as_i64),
                l.get("Hard").and_then(Value::as_i64),
            ) else {
                return Err(ApiError::bad(format!("invalid ulimit {l}")));
            };
            push("--ulimit", format!("{name}={soft}:{hard}"));
        }
    }
    if let Some(f) = q.get("nocachefilter").filter(|f| !f.is_empty()) {
        let v: Vec<String> = serde_json::from_str(f)
            .map_err(|e| ApiError::bad(format!("invalid nocachefilter: {e}")))?;
        for s in v {
            push("--no-cache-filter", s);
        }
    }
    if q.flag("nocache") {
        a.push("--no-cache".into());
    }
    if q.flag("pull") {
        a.push("--pull".into());
    }
    Ok(a)
}

/// A query parameter holding a JSON object (`buildargs`, `labels`).
fn json_map(q: &Query, k: &str) -> Result<Vec<(String, Value)>, ApiError> {
    match q.get(k).filter(|v| !v.is_empty() && *v != "null") {
        None => Ok(vec![]),
        Some(v) => match serde_json::from_str::<Value>(v) {
            Ok(Value::Object(m)) => Ok(m.into_iter().collect()),
            Ok(_) => Err(ApiError::bad(format!("invalid {k}: not a JSON object"))),
            Err(e) => Err(ApiError::bad(format!("invalid {k}: {e}"))),
        },
    }
}

/// `POST /commit?container=…&repo=…&tag=…`: a new image of the
/// container's changes (the engine's commit, as `berth commit`).
pub async fn commit(
    st: &Shared,
    q: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let key = q
        .get("container")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad("container is required"))?
        .to_string();
    // The body (a container config to apply) is read and refused when it
    // would change something: the changes go in `changes`.
    let conf: Value = body::json(req.into_body()).await?;
    if let Some(c) = conf.as_object()
        && c.values().any(|v| !is_empty_value(v))
    {
        return Err(ApiError::bad(
            "a container config in the commit body is not supported by berth serve: use changes (Dockerfile instructions)",
        ));
    }
    let reference = match q.get("repo").filter(|r| !r.is_empty()) {
        None => None,
        Some(repo) => {
            let t = q.get("tag").filter(|t| !t.is_empty()).unwrap_or("latest");
            let r = berth_image::Reference::parse_normalized(&format!("{repo}:{t}"))
                .map_err(|e| ApiError::bad(format!("invalid reference {repo}:{t}: {e}")))?;
            Some(r)
        }
    };
    let req = berth_engine::commit::CommitRequest {
        reference,
        author: q.get("author").filter(|a| !a.is_empty()).map(String::from),
        message: q.get("comment").filter(|c| !c.is_empty()).map(String::from),
        changes: q
            .all("changes")
            .into_iter()
            .flat_map(|c| c.lines())
            .filter(|c| !c.trim().is_empty())
            .map(String::from)
            .collect(),
        pause: q.get("pause").is_none() || q.flag("pause"),
    };
    let rec = engine(st, move |e| Ok(e.commit(&key, &req)?)).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"Id": rec.id.to_string()}),
    ))
}

/// JSON that sets nothing (docker-py sends its defaults).
fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty_value),
        Value::Number(n) => n.as_f64() == Some(0.0),
    }
}

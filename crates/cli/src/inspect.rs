//! `inspect` of any object, and the output all the `X inspect` commands
//! share: docker's JSON array (four-space indent), `--format json` one
//! object a line, or a Go template per object.
//!
//! `berth inspect A B` looks each name up as docker 28 does: a container,
//! else an image, a volume, a network; it prints what it found and
//! reports each missing name as "No such object" (exit 1).

use std::io::Write;

use berth_engine::Engine;
use serde_json::Value;

use crate::args::Parsed;
use crate::containers::{Failure, fail};
use crate::images::{compact_object, inspect_fields, ordered_object, pretty4};

type R<T = ()> = Result<T, Failure>;

/// One inspected object: a JSON value, or fields in docker's key order
/// (images, whose order serde_json's map would not keep).
pub enum Object {
    Value(Value),
    Ordered(Vec<(&'static str, Value)>),
}

/// The object kinds `--type` names, in the order docker tries them.
const KINDS: &[&str] = &["container", "image", "volume", "network"];

/// The object `name` of `kind`; Ok(Err(why)) when there is none.
fn lookup(e: &mut Engine, kind: &str, name: &str, size: bool) -> R<Result<Object, String>> {
    Ok(match kind {
        "container" => match e.get(name) {
            Ok(r) => {
                let mut v = crate::containers::inspect_json(e, &r);
                if size {
                    // docker's -s: what the container wrote, and that
                    // with its image.
                    let rw = e.container_size(&r.id);
                    let image = e
                        .images()
                        .ok()
                        .and_then(|s| s.get(&r.image_id).ok())
                        .map_or(0, |i| i.size);
                    v["SizeRw"] = rw.into();
                    v["SizeRootFs"] = (rw + image).into();
                }
                Ok(Object::Value(v))
            }
            Err(x @ berth_engine::Error::NoSuchContainer(_)) => Err(x.to_string()),
            Err(x) => return Err(x.into()),
        },
        "image" => {
            let store = e.images()?;
            match store.get(name) {
                Ok(r) => Ok(Object::Ordered(inspect_fields(&store, &r)?)),
                Err(x) => Err(x.to_string()),
            }
        }
        "volume" => match e.db.volume_get(name) {
            Ok(_) => Ok(Object::Value(crate::volumes::volume_json(e, name)?)),
            Err(x) => Err(x.to_string()),
        },
        "network" if matches!(name, "host" | "none") => {
            Ok(Object::Value(crate::networks::pseudo_network(name)))
        }
        "network" => match berth_engine::network::find(e, name) {
            Ok(n) => Ok(Object::Value(crate::networks::network_json(e, &n)?)),
            Err(x) => Err(x.to_string()),
        },
        _ => Err(format!("\"{kind}\" is not a valid value for --type")),
    })
}

/// `berth inspect [--type T] [-f FORMAT] NAME...`.
pub fn inspect(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    if p.bool("security") {
        return crate::security::run(e, p, out);
    }
    match p.value("type").filter(|t| !t.is_empty()) {
        Some(t) if KINDS.contains(&t) => typed(e, p, out, t),
        Some(t) => fail(1, format!("\"{t}\" is not a valid value for --type")),
        None => {
            if p.args.is_empty() {
                return Err(
                    crate::args::Usage("\"inspect\" requires at least 1 argument".into()).into(),
                );
            }
            let mut found = Vec::new();
            let mut errors = Vec::new();
            'names: for name in &p.args {
                for k in KINDS {
                    if let Ok(o) = lookup(e, k, name, p.bool("size"))? {
                        found.push(o);
                        continue 'names;
                    }
                }
                errors.push(format!("No such object: {name}"));
            }
            finish(&found, &errors, p, out)
        }
    }
}

/// `berth container|image|volume|network inspect`: objects of one kind.
pub fn typed(e: &mut Engine, p: &Parsed, out: &mut dyn Write, kind: &str) -> R {
    if p.args.is_empty() {
        let msg = format!("\"{kind} inspect\" requires at least 1 argument");
        return Err(crate::args::Usage(msg).into());
    }
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in &p.args {
        match lookup(e, kind, name, p.bool("size"))? {
            Ok(o) => found.push(o),
            Err(why) => errors.push(why),
        }
    }
    finish(&found, &errors, p, out)
}

/// Prints what was found, then each error (exit 1 if any).
fn finish(found: &[Object], errors: &[String], p: &Parsed, out: &mut dyn Write) -> R {
    print(found, p.value("format"), out)?;
    if errors.is_empty() {
        return Ok(());
    }
    let _ = out.flush();
    for m in errors {
        eprintln!("Error: {m}");
    }
    fail(1, "")
}

/// The objects as `--format` asks (docker's indented array without it).
pub fn print(objects: &[Object], format: Option<&str>, out: &mut dyn Write) -> R {
    match format.filter(|f| !f.is_empty()) {
        Some("json" | "{{json .}}") => {
            for o in objects {
                let line = match o {
                    Object::Value(v) => v.to_string(),
                    Object::Ordered(f) => compact_object(f),
                };
                writeln!(out, "{line}")?;
            }
        }
        Some(f) => {
            let t = crate::parse_template(f)
                .or_else(|_| fail(1, format!("template parsing error: {f}")))?;
            for o in objects {
                let v = match o {
                    Object::Value(v) => v.clone(),
                    Object::Ordered(f) => Value::Object(
                        f.iter()
                            .filter(|(_, v)| !v.is_null())
                            .map(|(k, v)| (k.to_string(), v.clone()))
                            .collect(),
                    ),
                };
                let s = t.execute(&v, false).or_else(|x| fail(1, x.0))?;
                writeln!(out, "{s}")?;
            }
        }
        None => {
            let items: Vec<String> = objects
                .iter()
                .map(|o| match o {
                    Object::Value(v) => pretty4(v).replace('\n', "\n    "),
                    Object::Ordered(f) => ordered_object(f, 4),
                })
                .collect();
            if items.is_empty() {
                writeln!(out, "[]")?;
            } else {
                writeln!(out, "[\n    {}\n]", items.join(",\n    "))?;
            }
        }
    }
    Ok(())
}

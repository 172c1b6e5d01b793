//! docker's image commands (`images`, `image inspect`, `history`, `tag`,
//! `rmi`, `image prune`, `load`, `save`, `import`) over the berth-image
//! store, and the output helpers the other commands share (`--format`
//! templates, docker's JSON layout).

use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;

use crate::args::Parsed;
use crate::{fmt, tmpl};
use berth_image::archive::config_json;
use berth_image::{
    ArchiveFormat, Digest, ImageRecord, ImageStore, ImportOptions, LoadOptions, Platform, Reference,
};
use serde_json::{Value, json};

/// A failure: usage (125) or the command's own (1).
pub enum Fail {
    Usage(String),
    Cmd(String),
}

impl From<crate::args::Usage> for Fail {
    fn from(u: crate::args::Usage) -> Fail {
        Fail::Usage(u.0)
    }
}

impl From<berth_image::Error> for Fail {
    fn from(e: berth_image::Error) -> Fail {
        Fail::Cmd(e.to_string())
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Fail {
        Fail::Cmd(e.to_string())
    }
}

pub type Res<T = ()> = Result<T, Fail>;

pub fn usage<T>(s: impl Into<String>) -> Res<T> {
    Err(Fail::Usage(s.into()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The image ids containers use (from the engine's records): `rmi` and
/// `image prune` keep those.
fn images_in_use(store: &ImageStore) -> Res<Vec<String>> {
    berth_engine::Engine::open(store.root())
        .and_then(|e| e.images_in_use())
        .map_err(|e| Fail::Cmd(e.to_string()))
}

fn short_id(d: &Digest, no_trunc: bool) -> String {
    if no_trunc {
        d.to_string()
    } else {
        d.hex()[..12].to_string()
    }
}

/// (repository, tag) pairs of an image, `<none>` when untagged.
fn repo_tags(r: &ImageRecord) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = r
        .repo_tags
        .iter()
        .filter_map(|t| Reference::parse(t).ok())
        .map(|t| (t.familiar_name(), t.tag().unwrap_or("<none>").to_string()))
        .collect();
    if v.is_empty() {
        // Untagged but with a digest: docker shows the repository.
        for d in &r.repo_digests {
            if let Ok(rf) = Reference::parse_normalized(d) {
                v.push((rf.familiar_name(), "<none>".into()));
            }
        }
        v.dedup();
    }
    if v.is_empty() {
        v.push(("<none>".into(), "<none>".into()));
    }
    v
}

fn repo_digest(r: &ImageRecord, repo: &str) -> String {
    r.repo_digests
        .iter()
        .filter_map(|d| Reference::parse_normalized(d).ok())
        .find(|d| d.familiar_name() == repo)
        .and_then(|d| d.digest().map(ToString::to_string))
        .unwrap_or_else(|| "<none>".into())
}

pub fn images(store: &ImageStore, p: &Parsed, out: &mut dyn Write) -> Res {
    if p.args.len() > 1 {
        return usage("\"images\" requires at most 1 argument");
    }
    let mut dangling: Option<bool> = None;
    let mut patterns: Vec<String> = p.args.clone();
    for f in p.all("filter") {
        match f.split_once('=') {
            Some(("dangling", v)) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" => dangling = Some(true),
                "false" | "0" => dangling = Some(false),
                _ => return Err(Fail::Cmd(format!("invalid filter 'dangling={v}'"))),
            },
            Some(("reference", v)) => patterns.push(v.to_string()),
            _ => return Err(Fail::Cmd(format!("invalid filter '{f}'"))),
        }
    }
    let no_trunc = p.bool("no-trunc");
    let digests = p.bool("digests");
    let mut rows = Vec::new();
    let mut header = vec!["REPOSITORY", "TAG"];
    if digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    rows.push(header.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let mut ids = Vec::new();
    let mut values = Vec::new();
    let now = now();
    for r in store.list()? {
        if let Some(d) = dangling
            && d != r.is_dangling()
        {
            continue;
        }
        for (repo, tag) in repo_tags(&r) {
            if !patterns.is_empty() {
                // docker matches `repo` or `repo:tag`, familiar or full.
                let full = Reference::parse_normalized(&repo)
                    .map(|x| x.name())
                    .unwrap_or_default();
                let hit = patterns.iter().any(|pat| {
                    if tag == "<none>" && repo == "<none>" {
                        return false;
                    }
                    let with_tag = |n: &str| format!("{n}:{tag}");
                    fmt::glob(pat, &repo)
                        || fmt::glob(pat, &with_tag(&repo))
                        || fmt::glob(pat, &full)
                        || fmt::glob(pat, &with_tag(&full))
                });
                if !hit {
                    continue;
                }
            }
            if !ids.contains(&r.id) {
                ids.push(r.id.clone());
            }
            let mut row = vec![repo.clone(), tag];
            if digests {
                row.push(repo_digest(&r, &repo));
            }
            let id = short_id(&r.id, no_trunc);
            let since = fmt::human_ago(r.created.as_deref(), now);
            let size = fmt::human_size(r.size);
            let created_at = r
                .created
                .as_deref()
                .and_then(fmt::parse_rfc3339)
                .map(fmt::go_time)
                .unwrap_or_default();
            values.push(json!({
                "Containers": "N/A",
                "CreatedAt": created_at,
                "CreatedSince": since,
                "Digest": repo_digest(&r, &repo),
                "ID": id,
                "Repository": repo,
                "SharedSize": "N/A",
                "Size": size,
                "Tag": row[1],
                "UniqueSize": "N/A",
                "VirtualSize": size,
            }));
            row.extend([id, since, size]);
            rows.push(row);
        }
    }
    if p.bool("quiet") {
        for id in ids {
            writeln!(out, "{}", short_id(&id, no_trunc))?;
        }
    } else if let Some(f) = p.value("format").filter(|f| !f.is_empty()) {
        let default = if digests {
            "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
        } else {
            "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
        };
        let header = json!({
            "Containers": "CONTAINERS",
            "CreatedAt": "CREATED AT",
            "CreatedSince": "CREATED",
            "Digest": "DIGEST",
            "ID": "IMAGE ID",
            "Repository": "REPOSITORY",
            "SharedSize": "SHARED SIZE",
            "Size": "SIZE",
            "Tag": "TAG",
            "UniqueSize": "UNIQUE SIZE",
            "VirtualSize": "VIRTUAL SIZE",
        });
        write_formatted(out, f, default, &header, &values)?;
    } else {
        write!(out, "{}", fmt::table(&rows))?;
    }
    Ok(())
}

pub fn inspect(store: &ImageStore, p: &Parsed, out: &mut dyn Write) -> Res {
    if p.args.is_empty() {
        return usage("\"image inspect\" requires at least 1 argument");
    }
    let format = p.value("format").filter(|f| !f.is_empty());
    // docker's `--format json` is `{{json .}}`.
    let json_line = matches!(format, Some("json" | "{{json .}}"));
    let template = match format {
        Some(f) if !json_line => Some(parse_template(f)?),
        _ => None,
    };
    let mut list = Vec::new();
    let mut errors = Vec::new();
    for name in &p.args {
        match store.get(name) {
            Ok(r) => {
                let fields = inspect_fields(store, &r)?;
                if json_line {
                    writeln!(out, "{}", compact_object(&fields))?;
                } else if let Some(t) = &template {
                    let data: serde_json::Map<String, Value> = fields
                        .into_iter()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, v)| (k.to_string(), v))
                        .collect();
                    let s = t
                        .execute(&Value::Object(data), false)
                        .map_err(|e| Fail::Cmd(e.0))?;
                    writeln!(out, "{s}")?;
                } else {
                    list.push(ordered_object(&fields, 4));
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    // With --format each image was written as it came.
    if format.is_none() {
        if list.is_empty() {
            writeln!(out, "[]")?;
        } else {
            writeln!(out, "[\n    {}\n]", list.join(",\n    "))?;
        }
    }
    if !errors.is_empty() {
        return Err(Fail::Cmd(errors.join("\n")));
    }
    Ok(())
}

/// `v` as docker's `json.MarshalIndent(v, "", "    ")` writes it.
pub fn pretty4(v: &Value) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    v.serialize(&mut ser).expect("json");
    String::from_utf8(buf).expect("utf-8")
}

/// A JSON object with its keys in the given order (docker's), indented by
/// four spaces per level, starting at `indent` (null fields left out).
pub fn ordered_object(fields: &[(&str, Value)], indent: usize) -> String {
    let pad = " ".repeat(indent + 4);
    let mut s = String::from("{\n");
    let fields: Vec<_> = fields.iter().filter(|(_, v)| !v.is_null()).collect();
    for (i, (k, v)) in fields.iter().enumerate() {
        let body = pretty4(v).replace('\n', &format!("\n{pad}"));
        s.push_str(&format!("{pad}{}: {body}", Value::from(*k)));
        s.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
    }
    s.push_str(&" ".repeat(indent));
    s.push('}');
    s
}

/// The same object on one line (`{{json .}}`), keys in docker's order.
pub fn compact_object(fields: &[(&str, Value)]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// A `--format` template: docker's `template parsing error` (exit 1).
pub fn parse_template(f: &str) -> Res<tmpl::Template> {
    tmpl::Template::parse(f).map_err(|e| Fail::Cmd(format!("template parsing error: {e}")))
}

/// docker's list `--format`: `json` (one object a line), `table TEMPLATE`
/// (a header, tabwriter columns; `table` alone is the default columns) or a
/// bare template, one line a row; a literal `\t` / `\n` is a tab / newline.
pub fn write_formatted(
    out: &mut dyn Write,
    format: &str,
    default: &str,
    header: &Value,
    rows: &[Value],
) -> Res {
    if format == "json" {
        for r in rows {
            writeln!(out, "{r}")?;
        }
        return Ok(());
    }
    let (table, body) = match format.strip_prefix("table") {
        Some(rest) if rest.trim().is_empty() => (true, default),
        Some(rest) => (true, rest),
        None => (false, format),
    };
    let body = body
        .trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n");
    let t = parse_template(&body)?;
    let mut s = String::new();
    if table {
        // docker ignores the header's own errors.
        s.push_str(&t.execute_header(header).unwrap_or_default());
        s.push('\n');
    }
    for r in rows {
        s.push_str(&t.execute(r, true).map_err(|e| Fail::Cmd(e.0))?);
        s.push('\n');
    }
    if table {
        s = tmpl::tabwriter(&s);
    }
    write!(out, "{s}")?;
    Ok(())
}
/// docker's image inspect fields: the engine's (`berth_engine::inspect::image_fields`),
/// shared with the API.
pub fn inspect_fields(store: &ImageStore, r: &ImageRecord) -> Res<Vec<(&'static str, Value)>> {
    berth_engine::inspect::image_fields(store, r).map_err(|e| Fail::Cmd(e.to_string()))
}

pub fn history(store: &ImageStore, p: &Parsed, out: &mut dyn Write) -> Res {
    let [name] = p.args.as_slice() else {
        return usage("\"history\" requires exactly 1 argument");
    };
    let human = !p.has("human") || p.bool("human");
    let no_trunc = p.bool("no-trunc");
    let r = store.get(name)?;
    let c = config_json(store, &r)?;
    let hist = c["history"].as_array().cloned().unwrap_or_default();
    // Sizes of the non-empty layers, bottom first.
    let mut layer_sizes = r
        .chain_ids
        .iter()
        .map(|ch| store.snapshots().info(ch).map(|i| i.size));
    let mut rows = vec![
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
            .map(String::from)
            .to_vec(),
    ];
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
    let now = now();
    let n = entries.len();
    let mut ids = Vec::new();
    let mut values = Vec::new();
    for (i, (h, size)) in entries.into_iter().rev().enumerate() {
        let id = if i == 0 {
            short_id(&r.id, no_trunc)
        } else {
            "<missing>".into()
        };
        ids.push(id.clone());
        let created = h["created"].as_str();
        let created_at = created
            .and_then(fmt::parse_rfc3339)
            .map(fmt::rfc3339)
            .unwrap_or_default();
        let created = if human {
            fmt::human_ago(created, now)
        } else {
            created.unwrap_or("").to_string()
        };
        let mut by = h["created_by"].as_str().unwrap_or("").replace('\t', " ");
        if !no_trunc && by.chars().count() > 45 {
            by = by.chars().take(44).collect::<String>() + "…";
        }
        let size = if human {
            fmt::human_size(size)
        } else {
            size.to_string()
        };
        let comment = h["comment"].as_str().unwrap_or("").to_string();
        values.push(json!({
            "Comment": comment,
            "CreatedAt": created_at,
            "CreatedBy": by,
            "CreatedSince": created,
            "ID": id,
            "Size": size,
        }));
        rows.push(vec![id, created, by, size, comment]);
    }
    if n == 0 {
        let row = vec![
            short_id(&r.id, no_trunc),
            fmt::human_ago(r.created.as_deref(), now),
            String::new(),
            fmt::human_size(r.size),
            String::new(),
        ];
        values.push(json!({
            "Comment": "",
            "CreatedAt": r.created.as_deref().and_then(fmt::parse_rfc3339).map(fmt::rfc3339).unwrap_or_default(),
            "CreatedBy": "",
            "CreatedSince": row[1],
            "ID": row[0],
            "Size": row[3],
        }));
        rows.push(row);
        ids.push(short_id(&r.id, no_trunc));
    }
    if p.bool("quiet") {
        for id in ids {
            writeln!(out, "{id}")?;
        }
    } else if let Some(f) = p.value("format").filter(|f| !f.is_empty()) {
        let header = json!({
            "Comment": "COMMENT",
            "CreatedAt": "CREATED AT",
            "CreatedBy": "CREATED BY",
            "CreatedSince": "CREATED",
            "ID": "IMAGE",
            "Size": "SIZE",
        });
        let default = "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
        write_formatted(out, f, default, &header, &values)?;
    } else {
        write!(out, "{}", fmt::table(&rows))?;
    }
    Ok(())
}

pub fn tag(store: &ImageStore, p: &Parsed, _out: &mut dyn Write) -> Res {
    let [src, target] = p.args.as_slice() else {
        return usage("\"tag\" requires exactly 2 arguments");
    };
    let t = Reference::parse(target)?;
    if t.digest().is_some() {
        return Err(Fail::Cmd(format!(
            "refusing to create a tag with a digest reference: {target}"
        )));
    }
    store.tag(src, &t)?;
    if let Ok(r) = store.get(&t.to_string()) {
        berth_engine::events::record_image(store.root(), "tag", &r.id.to_string(), &t.familiar());
    }
    Ok(())
}

pub fn rmi(store: &ImageStore, p: &Parsed, out: &mut dyn Write) -> Res {
    if p.args.is_empty() {
        return usage("\"rmi\" requires at least 1 argument");
    }
    let mut errors = Vec::new();
    // Asked inside the store's transaction (under its lock), where a
    // concurrent `create` checks its image again after recording its
    // container: one of the two always sees the other.
    images_in_use(store)?;
    let in_use =
        |d: &Digest| images_in_use(store).map_or(true, |used| used.contains(&d.to_string()));
    for name in &p.args {
        match store.remove(name, p.bool("force"), &in_use) {
            Ok(rep) => {
                berth_engine::events::image_removal_events(store, name, &rep);
                for t in &rep.untagged {
                    let f = Reference::parse(t)
                        .map(|r| r.familiar())
                        .unwrap_or_else(|_| t.clone());
                    writeln!(out, "Untagged: {f}")?;
                }
                for d in &rep.deleted {
                    writeln!(out, "Deleted: {d}")?;
                }
                for s in &rep.snapshots_removed {
                    writeln!(out, "Deleted: {s}")?;
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(Fail::Cmd(errors.join("\nError: ")));
    }
    Ok(())
}

pub fn prune(store: &ImageStore, p: &Parsed, out: &mut dyn Write) -> Res {
    let filter = berth_engine::prune::PruneFilter::parse(p.all("filter"))
        .map_err(|e| Fail::Cmd(e.to_string()))?;
    let all = p.bool("all");
    if !p.bool("force") {
        let what = if all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        write!(
            out,
            "WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] "
        )?;
        out.flush()?;
        let mut line = String::new();
        io::stdin().read_line(&mut line)?;
        if !matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Ok(());
        }
    }
    let keep = berth_engine::prune::images_filtered_out(store, &filter)
        .map_err(|e| Fail::Cmd(e.to_string()))?;
    images_in_use(store)?;
    let rep = store.prune(all, &|d: &Digest| {
        keep.contains(&d.to_string())
            || images_in_use(store).map_or(true, |used| used.contains(&d.to_string()))
    })?;
    berth_engine::events::image_removal_events(store, "", &rep);
    if !rep.deleted.is_empty() {
        writeln!(out, "Deleted Images:")?;
        for t in &rep.untagged {
            let f = Reference::parse(t)
                .map(|r| r.familiar())
                .unwrap_or_else(|_| t.clone());
            writeln!(out, "untagged: {f}")?;
        }
        for d in &rep.deleted {
            writeln!(out, "deleted: {d}")?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        fmt::human_size(rep.gc.bytes_freed)
    )?;
    Ok(())
}

pub fn load(store: &ImageStore, p: &Parsed, out: &mut dyn Write) -> Res {
    if !p.args.is_empty() {
        return usage("\"load\" accepts no arguments (use -i FILE)");
    }
    let opts = load_options(p)?;
    let recs = match p.value("input") {
        Some(f) if f != "-" => {
            let file = std::fs::File::open(f).map_err(|e| Fail::Cmd(format!("{f}: {e}")))?;
            berth_image::load(store, io::BufReader::new(file), &opts)?
        }
        _ => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                return Err(Fail::Cmd(
                    "requested load from stdin, but stdin is empty".into(),
                ));
            }
            berth_image::load(store, io::BufReader::new(stdin.lock()), &opts)?
        }
    };
    for r in recs {
        let id = r.id.to_string();
        berth_engine::events::record_image(store.root(), "load", &id, &id);
        if r.repo_tags.is_empty() {
            writeln!(out, "Loaded image ID: {}", r.id)?;
        }
        for t in r.familiar_tags() {
            writeln!(out, "Loaded image: {t}")?;
        }
    }
    Ok(())
}

fn load_options(p: &Parsed) -> Res<LoadOptions> {
    let mut opts = LoadOptions::default();
    if let Some(pl) = p.value("platform") {
        opts.platform = pl.parse::<Platform>()?;
    }
    Ok(opts)
}

pub fn save(store: &ImageStore, p: &Parsed, out: &mut dyn Write) -> Res {
    save_archive(store, p, out)?;
    for a in &p.args {
        if let Ok(r) = store.get(a) {
            let id = r.id.to_string();
            berth_engine::events::record_image(store.root(), "save", &id, &id);
        }
    }
    Ok(())
}

fn save_archive(store: &ImageStore, p: &Parsed, out: &mut dyn Write) -> Res {
    if p.args.is_empty() {
        return usage("\"save\" requires at least 1 argument");
    }
    let format = match p.value("format").unwrap_or("docker") {
        "docker" | "docker-archive" => ArchiveFormat::Docker,
        "oci" | "oci-archive" => ArchiveFormat::Oci,
        f => return usage(format!("unknown --format {f:?} (docker or oci)")),
    };
    match p.value("output") {
        Some(f) if f != "-" => {
            // A temp file beside the target, renamed over it when whole.
            let path = Path::new(f);
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = dir.join(format!(
                ".{}.berth-save-{}",
                path.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default(),
                std::process::id()
            ));
            let res = (|| -> Res {
                let file =
                    std::fs::File::create(&tmp).map_err(|e| Fail::Cmd(format!("{f}: {e}")))?;
                let mut w = io::BufWriter::new(file);
                berth_image::save(store, &p.args, format, &mut w)?;
                let file = w.into_inner().map_err(|e| Fail::Cmd(e.to_string()))?;
                file.sync_all()?;
                std::fs::rename(&tmp, path).map_err(|e| Fail::Cmd(format!("{f}: {e}")))?;
                Ok(())
            })();
            if res.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            res
        }
        _ => {
            if io::stdout().is_terminal() {
                return Err(Fail::Cmd(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
                ));
            }
            berth_image::save(store, &p.args, format, &mut *out)?;
            out.flush()?;
            Ok(())
        }
    }
}

pub fn import(store: &ImageStore, p: &Parsed, out: &mut dyn Write) -> Res {
    let (src, reference) = match p.args.as_slice() {
        [s] => (s, None),
        [s, r] => (s, Some(Reference::parse(r)?)),
        _ => return usage("\"import\" requires 1 or 2 arguments: file|- [REPOSITORY[:TAG]]"),
    };
    if let Some(r) = &reference
        && r.digest().is_some()
    {
        return Err(Fail::Cmd(format!(
            "refusing to import as a digest reference: {r}"
        )));
    }
    let opts = ImportOptions {
        changes: p.all("change").to_vec(),
        message: p.value("message").map(str::to_string),
        load: load_options(p)?,
    };
    let input: Box<dyn Read> = if src == "-" {
        Box::new(io::stdin().lock())
    } else if src.contains("://") {
        return Err(Fail::Cmd(format!(
            "importing from a URL is not supported: {src}"
        )));
    } else {
        Box::new(std::fs::File::open(src).map_err(|e| Fail::Cmd(format!("{src}: {e}")))?)
    };
    let rec = berth_image::import(store, io::BufReader::new(input), reference.as_ref(), &opts)?;
    let id = rec.id.to_string();
    berth_engine::events::record_image(store.root(), "import", &id, &id);
    writeln!(out, "{}", rec.id)?;
    Ok(())
}

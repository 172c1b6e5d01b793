//! The event journal: docker's events (`docker events`, `GET /events`) kept in the state
//! database's `events` table. There is no daemon to hear them: whichever process does an
//! action records it (a `berth` command through the engine, the container's monitor for
//! `start`, `die`, `oom` and `health_status`), and readers page through the table by its
//! sequence number. The journal is bounded: each insert drops what is older than the newest
//! [`DEFAULT_KEEP`] events (`BERTH_EVENTS_MAX` overrides it).
//!
//! Recording is best effort: an action that succeeded is not failed by a journal that could
//! not be written (a full disk, a locked database past its timeout).

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::params;
use serde_json::{Value, json};

use crate::db::{ContainerRow, Db};
use crate::error::{Error, Result, invalid};
use crate::{Engine, row_config};

/// How many events the journal keeps.
pub const DEFAULT_KEEP: i64 = 10_000;

/// The bound in force: `BERTH_EVENTS_MAX` when set to a positive number.
pub fn keep() -> i64 {
    std::env::var("BERTH_EVENTS_MAX")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_KEEP)
}

/// One recorded event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    /// Its place in the journal (increasing).
    pub seq: i64,
    pub time_nano: i64,
    /// `container`, `image`, `volume`, `network`.
    pub typ: String,
    pub action: String,
    pub actor: String,
    pub attributes: BTreeMap<String, String>,
}

/// Nanoseconds since the epoch, now.
pub fn now_nano() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The local time zone's offset from UTC at `secs` (seconds east; 0 when unknown), as
/// docker's CLI uses the local zone to print and to read times without one.
pub fn local_offset(secs: i64) -> i64 {
    let t = secs as libc::time_t;
    // SAFETY: tm is plain data; localtime_r fills it from `t` and returns null on failure.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals for the duration of the call.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() { 0 } else { tm.tm_gmtoff }
}

/// Go's RFC3339NanoFixed in the local zone: `2026-12-05T04:21:17.123456789Z` (UTC) or
/// `…+01:00`.
pub fn fixed_time(nanos: i64) -> String {
    fixed_time_at(nanos, local_offset(nanos.div_euclid(1_000_000_000)))
}

/// [`fixed_time`] at a zone `offset` seconds east of UTC.
pub fn fixed_time_at(nanos: i64, offset: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let (y, mo, d, h, mi, s) = crate::timefmt::utc_parts(secs + offset);
    let zone = if offset == 0 {
        "Z".to_string()
    } else {
        let a = offset.abs();
        format!(
            "{}{:02}:{:02}",
            if offset < 0 { '-' } else { '+' },
            a / 3600,
            a / 60 % 60
        )
    };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:09}{zone}")
}

impl Event {
    /// docker's `events.Message` as the API sends it (with the legacy `status`, `id`, `from`
    /// of container and image events).
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        if self.typ == "container" || self.typ == "image" {
            m.insert("status".into(), json!(self.action));
            m.insert("id".into(), json!(self.actor));
            if let Some(image) = self
                .attributes
                .get("image")
                .filter(|_| self.typ == "container")
            {
                m.insert("from".into(), json!(image));
            }
        }
        m.insert("Type".into(), json!(self.typ));
        m.insert("Action".into(), json!(self.action));
        m.insert(
            "Actor".into(),
            json!({"ID": self.actor, "Attributes": self.attributes}),
        );
        m.insert("scope".into(), json!("local"));
        m.insert("time".into(), json!(self.time_nano / 1_000_000_000));
        m.insert("timeNano".into(), json!(self.time_nano));
        Value::Object(m)
    }

    /// What a Go template sees of the event: the JSON fields and the Go struct's names
    /// (`{{.Status}}`, `{{.ID}}`, `{{.From}}`, `{{.Scope}}`, `{{.Time}}`, `{{.TimeNano}}`).
    pub fn template_data(&self) -> Value {
        let mut v = self.to_json();
        v["Status"] = json!(if v["status"].is_null() {
            ""
        } else {
            &self.action
        });
        v["ID"] = v.get("id").cloned().unwrap_or(json!(""));
        v["From"] = v.get("from").cloned().unwrap_or(json!(""));
        v["Scope"] = json!("local");
        v["Time"] = v["time"].clone();
        v["TimeNano"] = v["timeNano"].clone();
        v
    }

    /// docker's default line: `TIME TYPE ACTION ACTOR (k=v, k=v)`, attributes sorted.
    pub fn text(&self) -> String {
        let mut s = format!(
            "{} {} {} {}",
            fixed_time(self.time_nano),
            self.typ,
            self.action,
            self.actor
        );
        if !self.attributes.is_empty() {
            let a: Vec<String> = self
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            s.push_str(&format!(" ({})", a.join(", ")));
        }
        s
    }
}

/// Appends an event and prunes the journal to its bound.
pub fn record(db: &Db, typ: &str, action: &str, actor: &str, attrs: &[(&str, &str)]) -> Result<()> {
    let map: BTreeMap<&str, &str> = attrs.iter().copied().collect();
    let attributes = serde_json::to_string(&map).map_err(|e| Error::Other(e.to_string()))?;
    let conn = db.conn();
    let err = |e| Error::Db {
        path: db.path().to_path_buf(),
        err: e,
    };
    conn.execute(
        "INSERT INTO events (time_nano, type, action, actor, attributes) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now_nano(), typ, action, actor, attributes],
    )
    .map_err(err)?;
    let seq = conn.last_insert_rowid();
    conn.execute("DELETE FROM events WHERE seq <= ?1", [seq - keep()])
        .map_err(err)?;
    Ok(())
}

/// Records an event in the state database of `root` (for what runs without an engine: the
/// image commands). Best effort.
pub fn record_at(root: &Path, typ: &str, action: &str, actor: &str, attrs: &[(&str, &str)]) {
    if let Ok(db) = Db::open(&root.join("engine").join("state.db")) {
        let _ = record(&db, typ, action, actor, attrs);
    }
}

/// An image event as docker's `LogImageEvent(actor, name, action)`: the actor is the
/// reference (pull, push) or the image id (tag, untag, delete, load, save, import).
pub fn record_image(root: &Path, action: &str, actor: &str, name: &str) {
    record_at(root, "image", action, actor, &[("name", name)]);
}

/// docker's events of an `rmi`: `untag` for each name removed, `delete` for each image.
pub fn image_removal_events(
    store: &berth_image::ImageStore,
    name: &str,
    rep: &berth_image::RemoveReport,
) {
    let id = rep
        .deleted
        .first()
        .map(|d| d.to_string())
        .or_else(|| store.get(name).ok().map(|r| r.id.to_string()))
        .unwrap_or_else(|| name.to_string());
    let Ok(db) = Db::open(&store.root().join("engine").join("state.db")) else {
        return;
    };
    for _ in &rep.untagged {
        let _ = record(&db, "image", "untag", &id, &[("name", &id)]);
    }
    for d in &rep.deleted {
        let d = d.to_string();
        let _ = record(&db, "image", "delete", &d, &[("name", &d)]);
    }
}

/// A container's attributes: `image`, `name` and its labels, with `extra`.
pub fn container_attrs(row: &ContainerRow, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut a: Vec<(String, String)> = row_config(row).labels;
    a.push(("image".into(), row.image.clone()));
    a.push(("name".into(), row.name.clone()));
    a.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    a
}

impl Engine {
    /// Records an event (best effort).
    pub fn event(&self, typ: &str, action: &str, actor: &str, attrs: &[(&str, &str)]) {
        let _ = record(&self.db, typ, action, actor, attrs);
    }

    /// Records a container event with docker's attributes (best effort).
    pub fn container_event(&self, row: &ContainerRow, action: &str, extra: &[(&str, &str)]) {
        let a = container_attrs(row, extra);
        let a: Vec<(&str, &str)> = a.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.event("container", action, &row.id, &a);
    }
}

/// The events after `after_seq` (oldest first) whose time is in `since..=until`
/// (nanoseconds), at most `limit`.
pub fn read(
    db: &Db,
    after_seq: i64,
    since: Option<i64>,
    until: Option<i64>,
    limit: i64,
) -> Result<Vec<Event>> {
    let err = |e| Error::Db {
        path: db.path().to_path_buf(),
        err: e,
    };
    let mut st = db
        .conn()
        .prepare_cached(
            "SELECT seq, time_nano, type, action, actor, attributes FROM events \
             WHERE seq > ?1 AND time_nano >= ?2 AND time_nano <= ?3 ORDER BY seq LIMIT ?4",
        )
        .map_err(err)?;
    st.query_map(
        params![
            after_seq,
            since.unwrap_or(i64::MIN),
            until.unwrap_or(i64::MAX),
            limit
        ],
        |r| {
            let attrs: String = r.get(5)?;
            Ok(Event {
                seq: r.get(0)?,
                time_nano: r.get(1)?,
                typ: r.get(2)?,
                action: r.get(3)?,
                actor: r.get(4)?,
                attributes: serde_json::from_str(&attrs).unwrap_or_default(),
            })
        },
    )
    .and_then(|r| r.collect())
    .map_err(err)
}

/// The newest sequence number in the journal (0 when empty).
pub fn last_seq(db: &Db) -> Result<i64> {
    db.conn()
        .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))
        .map_err(|e| Error::Db {
            path: db.path().to_path_buf(),
            err: e,
        })
}

/// docker's event filters: values of one key are alternatives, keys all have to match.
#[derive(Clone, Debug, Default)]
pub struct Filters(BTreeMap<String, Vec<String>>);

const TYPES: &[&str] = &[
    "container",
    "image",
    "volume",
    "network",
    "daemon",
    "plugin",
    "node",
    "service",
    "secret",
    "config",
];

impl Filters {
    /// Parses `key=value` filters (docker's keys; `type` values checked).
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<Filters> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in list {
            let f = f.as_ref();
            let Some((k, v)) = f.split_once('=') else {
                return Err(Error::BadFilter(format!(
                    "bad format of filter (expected name=value): {f}"
                )));
            };
            if !matches!(
                k,
                "container"
                    | "event"
                    | "image"
                    | "label"
                    | "network"
                    | "volume"
                    | "type"
                    | "scope"
                    | "daemon"
                    | "plugin"
                    | "node"
                    | "service"
                    | "secret"
                    | "config"
            ) {
                return Err(Error::BadFilter(format!("invalid filter '{k}'")));
            }
            if k == "type" && !TYPES.contains(&v) {
                return Err(Error::BadFilter(format!("invalid filter 'type={v}'")));
            }
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
        Ok(Filters(m))
    }

    fn values(&self, k: &str) -> Option<&[String]> {
        self.0.get(k).map(|v| v.as_slice())
    }

    /// docker's ExactMatch: no values for `k`, or one equal to `s`.
    fn exact(&self, k: &str, s: &str) -> bool {
        self.values(k).is_none_or(|vs| vs.iter().any(|v| v == s))
    }

    /// docker's FuzzyMatch: no values for `k`, or one equal to or a prefix of `s`.
    fn fuzzy(&self, k: &str, s: &str) -> bool {
        self.values(k)
            .is_none_or(|vs| vs.iter().any(|v| v == s || s.starts_with(v.as_str())))
    }

    /// The actor's id or `name` attribute, for the filter named after the event's type.
    fn name(&self, ev: &Event, typ: &str) -> bool {
        let name = ev.attributes.get("name").map_or("", |s| s.as_str());
        self.values(typ).is_none()
            || (ev.typ == typ && (self.fuzzy(typ, &ev.actor) || self.fuzzy(typ, name)))
    }

    /// Whether `ev` passes every filter.
    pub fn matches(&self, ev: &Event) -> bool {
        let event_ok = match self.values("event") {
            None => true,
            Some(vs) => vs.iter().any(|v| {
                // docker: health_status, exec_create and exec_start match with their detail.
                ev.action == *v
                    || (matches!(v.as_str(), "health_status" | "exec_create" | "exec_start")
                        && ev.action.starts_with(v.as_str()))
            }),
        };
        let strip_tag = |s: &str| -> String {
            match s.rsplit_once(':') {
                Some((a, t)) if !t.contains('/') => a.to_string(),
                _ => s.to_string(),
            }
        };
        let image_attr = if ev.typ == "image" { "name" } else { "image" };
        let image = ev.attributes.get(image_attr).map_or("", |s| s.as_str());
        let image_ok = self.values("image").is_none()
            || self.exact("image", &ev.actor)
            || self.exact("image", image)
            || self.exact("image", &strip_tag(&ev.actor))
            || self.exact("image", &strip_tag(image));
        let labels_ok = self.values("label").is_none_or(|vs| {
            vs.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => ev.attributes.get(k).is_some_and(|x| x == v),
                None => ev.attributes.contains_key(l.as_str()),
            })
        });
        event_ok
            && self.exact("type", &ev.typ)
            && self.exact("scope", "local")
            && self.name(ev, "container")
            && self.name(ev, "volume")
            && self.name(ev, "network")
            && image_ok
            && labels_ok
            && self.values("daemon").is_none()
            && self.values("plugin").is_none()
            && self.values("node").is_none()
            && self.values("service").is_none()
            && self.values("secret").is_none()
            && self.values("config").is_none()
    }
}

/// docker's `--since`/`--until` values (`GetTimestamp`): a Go duration before `now_nanos`
/// (`10m`, `1h30m`), RFC 3339 with or without fraction and zone (no zone: the local one), a
/// date (`2026-12-05`, local), or Unix seconds with an optional fraction (`1733372477.5`). Nanoseconds.
pub fn parse_time(s: &str, now_nanos: i64, what: &str) -> Result<i64> {
    let bad = || {
        invalid(
            what,
            format!("failed to parse value as time or duration: {s:?}"),
        )
    };
    if s != "0"
        && let Ok(d) = crate::health::parse_duration(s)
    {
        return Ok(now_nanos - d.as_nanos() as i64);
    }
    if s.contains('-') {
        let b = s.as_bytes();
        let date = |t: &str| -> Option<i64> {
            let (y, rest) = t.split_once('-')?;
            let (m, d) = rest.split_once('-')?;
            Some(crate::timefmt::days_from_civil(
                y.parse().ok()?,
                m.parse().ok()?,
                d.parse().ok()?,
            ))
        };
        // No zone: the local one (docker's client does the same).
        let local = |secs: i64| secs - local_offset(secs);
        if b.len() == 10 {
            return date(s)
                .map(|d| local(d * 86_400) * 1_000_000_000)
                .ok_or_else(bad);
        }
        let Some((day, time)) = s.split_once(['T', 't']) else {
            return Err(bad());
        };
        let days = date(day).ok_or_else(bad)?;
        // The zone: Z, +hh:mm, -hh:mm or none (UTC).
        let (clock, off) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
            (c, Some(0))
        } else if let Some(i) = time.rfind(['+', '-']) {
            let z = &time[i + 1..];
            let (h, m) = z.split_once(':').unwrap_or((z, "0"));
            let v = h.parse::<i64>().map_err(|_| bad())? * 3600
                + m.parse::<i64>().map_err(|_| bad())? * 60;
            (
                &time[..i],
                Some(if time.as_bytes()[i] == b'-' { -v } else { v }),
            )
        } else {
            (time, None)
        };
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
        let mut parts = hms.split(':').map(|p| p.parse::<i64>());
        let h = parts.next().and_then(|r| r.ok()).ok_or_else(bad)?;
        let mi = parts.next().map_or(Ok(0), |r| r).map_err(|_| bad())?;
        let se = parts.next().map_or(Ok(0), |r| r).map_err(|_| bad())?;
        let nanos = frac_nanos(frac).ok_or_else(bad)?;
        let wall = days * 86_400 + h * 3600 + mi * 60 + se;
        let secs = match off {
            Some(o) => wall - o,
            None => local(wall),
        };
        return Ok(secs * 1_000_000_000 + nanos);
    }
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    Ok(secs * 1_000_000_000 + frac_nanos(frac).ok_or_else(bad)?)
}

/// A decimal fraction's digits as nanoseconds (`5` is 500000000).
fn frac_nanos(frac: &str) -> Option<i64> {
    if frac.is_empty() {
        return Some(0);
    }
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(frac.parse::<i64>().ok()? * 10_i64.pow(9 - frac.len() as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(typ: &str, action: &str, actor: &str, attrs: &[(&str, &str)]) -> Event {
        Event {
            seq: 1,
            time_nano: 1_733_372_477_123_456_789,
            typ: typ.into(),
            action: action.into(),
            actor: actor.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn text_and_json_are_dockers() {
        let e = ev(
            "container",
            "start",
            "abc",
            &[("name", "web"), ("image", "busybox")],
        );
        let off = local_offset(1_733_372_477);
        assert_eq!(
            e.text(),
            format!(
                "{} container start abc (image=busybox, name=web)",
                fixed_time_at(e.time_nano, off)
            )
        );
        assert_eq!(
            fixed_time_at(e.time_nano, 0),
            "2024-12-05T04:21:17.123456789Z"
        );
        assert_eq!(
            fixed_time_at(e.time_nano, -5400),
            "2024-12-05T02:51:17.123456789-01:30"
        );
        let j = e.to_json();
        assert_eq!(j["status"], "start");
        assert_eq!(j["from"], "busybox");
        assert_eq!(j["Actor"]["Attributes"]["name"], "web");
        assert_eq!(j["time"], 1_733_372_477);
        let n = ev("network", "create", "n1", &[("name", "net")]).to_json();
        assert!(n.get("status").is_none());
    }

    #[test]
    fn filters_follow_docker() {
        let start = ev(
            "container",
            "start",
            "abcdef",
            &[("name", "web"), ("image", "busybox:latest"), ("tier", "db")],
        );
        let health = ev(
            "container",
            "health_status: healthy",
            "abcdef",
            &[("name", "web"), ("image", "busybox")],
        );
        let pull = ev(
            "image",
            "pull",
            "busybox:latest",
            &[("name", "busybox:latest")],
        );
        let f = |l: &[&str]| Filters::parse(l).unwrap();
        assert!(f(&["container=web"]).matches(&start));
        assert!(f(&["container=abc"]).matches(&start));
        assert!(!f(&["container=web"]).matches(&pull));
        assert!(f(&["event=health_status"]).matches(&health));
        assert!(!f(&["event=start"]).matches(&health));
        assert!(f(&["event=start", "event=die"]).matches(&start));
        assert!(f(&["image=busybox"]).matches(&start));
        assert!(f(&["image=busybox"]).matches(&pull));
        assert!(f(&["label=tier=db"]).matches(&start));
        assert!(!f(&["label=tier=web"]).matches(&start));
        assert!(f(&["type=image"]).matches(&pull));
        assert!(!f(&["type=image"]).matches(&start));
        assert!(Filters::parse(&["type=bogus"]).is_err());
        assert!(Filters::parse(&["colour=red"]).is_err());
    }

    #[test]
    fn times_parse_as_dockers() {
        let now = 2_000_000_000 * 1_000_000_000;
        assert_eq!(
            parse_time("10m", now, "--since").unwrap(),
            now - 600_000_000_000
        );
        assert_eq!(
            parse_time("1733372477", now, "--since").unwrap(),
            1_733_372_477_000_000_000
        );
        assert_eq!(
            parse_time("1733372477.5", now, "--since").unwrap(),
            1_733_372_477_500_000_000
        );
        assert_eq!(
            parse_time("2024-12-05T04:21:17Z", now, "--since").unwrap(),
            1_733_372_477_000_000_000
        );
        assert_eq!(
            parse_time("2024-12-05T06:21:17.25+02:00", now, "--since").unwrap(),
            1_733_372_477_250_000_000
        );
        let midnight = 1_733_356_800;
        assert_eq!(
            parse_time("2024-12-05", now, "--since").unwrap(),
            (midnight - local_offset(midnight)) * 1_000_000_000
        );
        let wall = 1_733_372_477;
        assert_eq!(
            parse_time("2024-12-05T04:21:17", now, "--since").unwrap(),
            (wall - local_offset(wall)) * 1_000_000_000
        );
        assert!(parse_time("yesterday", now, "--since").is_err());
    }

    #[test]
    fn the_journal_is_bounded() {
        let t = tempfile::tempdir().unwrap();
        let db = Db::open(&t.path().join("state.db")).unwrap();
        for i in 0..(DEFAULT_KEEP + 5) {
            if i % 1000 == 0 || i >= DEFAULT_KEEP {
                record(&db, "volume", "create", &format!("v{i}"), &[]).unwrap();
            } else {
                // Filler, cheaper than one statement each.
                db.conn()
                    .execute(
                        "INSERT INTO events (time_nano, type, action, actor) VALUES (0, 'x', 'y', 'z')",
                        [],
                    )
                    .unwrap();
            }
        }
        let all = read(&db, 0, None, None, i64::MAX).unwrap();
        assert_eq!(all.len() as i64, DEFAULT_KEEP);
        assert_eq!(all.last().unwrap().actor, format!("v{}", DEFAULT_KEEP + 4));
        assert_eq!(last_seq(&db).unwrap(), DEFAULT_KEEP + 5);
    }
}

//! `system prune` and the prune commands' `--filter until=`/`label=`: what
//! docker 23+ removes, through the engine's own prune functions (stopped
//! containers, unused networks, dangling or unused images, the build cache
//! and, with `--volumes`, unused anonymous volumes).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::{Engine, db, network, row_config, timefmt, volumes};

/// One `label=` / `label!=` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelCond {
    pub key: String,
    pub value: Option<String>,
    /// `label!=`: the object must not have it.
    pub negated: bool,
}

/// The prune filters (docker's `until` and `label`, `label!`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneFilter {
    /// Only objects created before this (seconds since the epoch).
    pub until: Option<i64>,
    pub labels: Vec<LabelCond>,
}

/// docker's `until`: a Unix timestamp (`1700000000`, `1700000000.5`), an
/// RFC 3339 time or date (`2024-01-02T15:04:05Z`, `2024-01-02`), or a Go
/// duration before now (`24h`, `1h30m`).
pub fn parse_until(s: &str, now: i64) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        return Some(f as i64);
    }
    if let Some(t) = timefmt::parse_rfc3339(s) {
        return Some(t);
    }
    if s.len() == 10
        && let Some(t) = timefmt::parse_rfc3339(&format!("{s}T00:00:00Z"))
    {
        return Some(t);
    }
    let ns = berth_build::parser::parse_go_duration(s)?;
    (ns >= 0).then(|| now - (ns / 1_000_000_000) as i64)
}

impl PruneFilter {
    /// `--filter` values (`until=24h`, `label=a=b`, `label!=a`).
    pub fn parse(values: &[String]) -> Result<PruneFilter> {
        let mut f = PruneFilter::default();
        let now = timefmt::now_secs();
        for v in values {
            let bad = || Error::BadFilter(format!("invalid filter '{v}'"));
            let (key, val) = v.split_once('=').ok_or_else(bad)?;
            match key {
                "until" => f.until = Some(parse_until(val, now).ok_or_else(|| {
                    Error::BadFilter(format!(
                        "invalid filter 'until={val}': a timestamp, a date or a duration like 24h"
                    ))
                })?),
                "label" | "label!" => {
                    let (k, value) = match val.split_once('=') {
                        Some((k, v)) => (k, Some(v.to_string())),
                        None => (val, None),
                    };
                    if k.is_empty() {
                        return Err(bad());
                    }
                    f.labels.push(LabelCond {
                        key: k.to_string(),
                        value,
                        negated: key == "label!",
                    });
                }
                _ => return Err(bad()),
            }
        }
        Ok(f)
    }

    pub fn is_empty(&self) -> bool {
        self.until.is_none() && self.labels.is_empty()
    }

    /// Whether an object created at `created` (unknown: never "before")
    /// with `labels` is to be pruned.
    pub fn matches(&self, created: Option<i64>, labels: &BTreeMap<String, String>) -> bool {
        if let Some(u) = self.until
            && created.is_none_or(|c| c >= u)
        {
            return false;
        }
        self.labels.iter().all(|c| {
            let has = match (&c.value, labels.get(&c.key)) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(want), Some(v)) => v == want,
            };
            has != c.negated
        })
    }

    /// The text docker's confirmation lists (`label=a=b`, `until=24h`).
    pub fn describe(values: &[String]) -> Vec<String> {
        let mut v = values.to_vec();
        v.sort();
        v
    }
}

/// What `system prune` removed.
#[derive(Debug, Default)]
pub struct SystemPruneReport {
    pub containers: Vec<String>,
    pub container_bytes: u64,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
    pub volume_bytes: u64,
    pub images: berth_image::RemoveReport,
    pub build_keys: Vec<String>,
    pub build_bytes: u64,
}

impl SystemPruneReport {
    pub fn reclaimed(&self) -> u64 {
        self.container_bytes + self.volume_bytes + self.images.gc.bytes_freed + self.build_bytes
    }
}

/// The ids of the images a prune filter keeps (their config's `created`
/// and labels do not match it).
pub fn images_filtered_out(
    store: &berth_image::ImageStore,
    f: &PruneFilter,
) -> Result<std::collections::HashSet<String>> {
    let mut keep = std::collections::HashSet::new();
    for r in store.list()? {
        let labels: BTreeMap<String, String> = store
            .config(&r)
            .ok()
            .and_then(|c| c.config.config().as_ref().and_then(|c| c.labels().clone()))
            .map(|l| l.into_iter().collect())
            .unwrap_or_default();
        let created = r.created.as_deref().and_then(timefmt::parse_rfc3339);
        if !f.matches(created, &labels) {
            keep.insert(r.id.to_string());
        }
    }
    Ok(keep)
}

fn labels_of(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    pairs.iter().cloned().collect()
}

impl Engine {
    /// `container prune --filter`: the stopped containers the filter
    /// matches; their ids and the bytes they wrote.
    pub fn prune_containers(&mut self, f: &PruneFilter) -> Result<(Vec<String>, u64)> {
        let mut removed = vec![];
        let mut bytes = 0;
        for r in self.list()? {
            if !matches!(r.state.as_str(), db::EXITED | db::CREATED | db::DEAD) {
                continue;
            }
            let cfg = row_config(&r);
            if !f.matches(
                timefmt::parse_rfc3339(&r.created_at),
                &labels_of(&cfg.labels),
            ) {
                continue;
            }
            let size = self.container_size(&r.id);
            self.remove(&r.id, false, false)?;
            bytes += size;
            removed.push(r.id);
        }
        Ok((removed, bytes))
    }

    /// `network prune --filter`: user networks no container uses.
    pub fn prune_networks(&mut self, f: &PruneFilter) -> Result<Vec<String>> {
        let mut removed = vec![];
        for n in network::list(self)? {
            if n.is_default()
                || !network::endpoints_on(self, &n.id)?.is_empty()
                || !f.matches(timefmt::parse_rfc3339(&n.created_at), &n.config.labels)
            {
                continue;
            }
            if network::remove(self, &n.id).is_ok() {
                removed.push(n.name);
            }
        }
        Ok(removed)
    }

    /// `volume prune --filter label=`: unused anonymous volumes (`all`:
    /// named ones too). docker has no `until` for volumes.
    pub fn prune_volumes(&mut self, all: bool, f: &PruneFilter) -> Result<(Vec<String>, u64)> {
        if f.until.is_some() {
            return Err(Error::BadFilter(
                "The \"until\" filter is not supported with \"--volumes\"".into(),
            ));
        }
        let mut removed = Vec::new();
        let mut bytes = 0;
        for v in self.db.volume_list()? {
            let labels: BTreeMap<String, String> =
                serde_json::from_str(&v.labels).unwrap_or_default();
            if !(v.anonymous || all)
                || !f.matches(None, &labels)
                || !volumes::users(self, &v.name)?.is_empty()
            {
                continue;
            }
            bytes += crate::dir_size(&crate::spec::volume_data(&self.root, &v.name));
            volumes::remove(self, &v.name, true)?;
            removed.push(v.name);
        }
        Ok((removed, bytes))
    }

    /// `image prune --filter`: dangling images (`all`: every unused one)
    /// the filter matches (their config's `created` and labels).
    pub fn prune_images_filtered(
        &self,
        all: bool,
        f: &PruneFilter,
    ) -> Result<berth_image::RemoveReport> {
        if f.is_empty() {
            return self.prune_images(all);
        }
        let store = self.images()?;
        let keep = images_filtered_out(&store, f)?;
        self.images_in_use()?;
        let in_use = |d: &berth_image::Digest| {
            keep.contains(&d.to_string())
                || self
                    .images_in_use()
                    .map_or(true, |used| used.contains(&d.to_string()))
        };
        Ok(store.prune(all, &in_use)?)
    }

    /// `system prune [-a] [--volumes] [--filter]`: docker's order
    /// (containers, networks, volumes, images, build cache).
    pub fn system_prune(
        &mut self,
        all: bool,
        with_volumes: bool,
        f: &PruneFilter,
    ) -> Result<SystemPruneReport> {
        if with_volumes && f.until.is_some() {
            return Err(Error::BadFilter(
                "The \"until\" filter is not supported with \"--volumes\"".into(),
            ));
        }
        let mut r = SystemPruneReport::default();
        (r.containers, r.container_bytes) = self.prune_containers(f)?;
        r.networks = self.prune_networks(f)?;
        if with_volumes {
            // docker 23+: anonymous volumes only, even with -a.
            (r.volumes, r.volume_bytes) = self.prune_volumes(false, f)?;
        }
        r.images = self.prune_images_filtered(all, f)?;
        (r.build_keys, r.build_bytes) = self.prune_build_cache(all, f)?;
        Ok(r)
    }

    /// `builder prune` with a prune filter: the cache keys removed and the
    /// bytes freed. Build cache entries have no labels: a `label=` filter
    /// matches none of them, a `label!=` one all.
    pub fn prune_build_cache(&self, all: bool, f: &PruneFilter) -> Result<(Vec<String>, u64)> {
        if !f.labels.iter().all(|c| c.negated) {
            return Ok((Vec::new(), 0));
        }
        let older_than = f
            .until
            .map(|u| std::time::Duration::from_secs((timefmt::now_secs() - u).max(0) as u64));
        let c = berth_build::cache::prune(&self.images()?, all, older_than)?;
        Ok((c.keys, c.reclaimed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        let f = PruneFilter::parse(&["label=a=b".into(), "label!=c".into()]).unwrap();
        let mut l = BTreeMap::new();
        l.insert("a".to_string(), "b".to_string());
        assert!(f.matches(None, &l));
        l.insert("c".to_string(), String::new());
        assert!(!f.matches(None, &l));
        assert!(PruneFilter::parse(&["bogus=1".into()]).is_err());
        assert!(PruneFilter::parse(&["until=yesterday".into()]).is_err());
        let u = PruneFilter::parse(&["until=1000".into()]).unwrap();
        assert!(u.matches(Some(999), &BTreeMap::new()));
        assert!(!u.matches(Some(1000), &BTreeMap::new()));
        assert!(!u.matches(None, &BTreeMap::new()));
        assert_eq!(parse_until("1h", 10_000), Some(10_000 - 3600));
        assert_eq!(parse_until("1970-01-02", 0), Some(86_400));
        assert_eq!(parse_until("1970-01-01T00:01:00Z", 0), Some(60));
    }
}

//! Healthchecks (docker's `HEALTHCHECK`, `--health-*`): the configuration, the state kept in
//! the state database's `health` table, and the probe runner the container's monitor drives.
//!
//! There is no daemon: the monitor runs each probe through the engine's exec path (the probe
//! is a process in the container, a child of the monitor), reads its output (at most 4096
//! bytes kept, as docker), reaps it with the container's other children, and writes the
//! result in one transaction: status, failing streak and the last five results. Readers
//! (`inspect`, `ps`, the API) read that row; a monitor that dies leaves the last state written,
//! never a half-written one. Status changes are journalled as `health_status: STATUS` events.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Engine;
use crate::db::{ContainerRow, Db};
use crate::error::{Error, Result, invalid};

/// docker's defaults.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: i64 = 3;
/// Output kept of one probe.
pub const MAX_OUTPUT: usize = 4096;
/// Results kept.
pub const MAX_LOG: usize = 5;

pub const STARTING: &str = "starting";
pub const HEALTHY: &str = "healthy";
pub const UNHEALTHY: &str = "unhealthy";

/// docker's `Config.Healthcheck`: durations in nanoseconds, 0 inherits (from the image) or
/// takes the default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `[]` inherits, `["NONE"]` disables, `["CMD", args...]`, `["CMD-SHELL", command]`.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub test: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: i64,
}

/// docker's clients send `"Test": null` for a healthcheck that only sets durations.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl HealthConfig {
    /// docker's merge of a container's healthcheck over its image's: what the container
    /// leaves unset (an empty test, zero durations) comes from the image.
    pub fn merged(user: Option<&HealthConfig>, image: Option<&HealthConfig>) -> Option<Self> {
        let (u, i) = match (user, image) {
            (None, None) => return None,
            (Some(u), None) => return Some(u.clone()),
            (None, Some(i)) => return Some(i.clone()),
            (Some(u), Some(i)) => (u, i),
        };
        let pick = |a: i64, b: i64| if a != 0 { a } else { b };
        Some(HealthConfig {
            test: if u.test.is_empty() {
                i.test.clone()
            } else {
                u.test.clone()
            },
            interval: pick(u.interval, i.interval),
            timeout: pick(u.timeout, i.timeout),
            start_period: pick(u.start_period, i.start_period),
            start_interval: pick(u.start_interval, i.start_interval),
            retries: pick(u.retries, i.retries),
        })
    }

    /// The command a probe runs, None when the check is disabled or has no test.
    pub fn command(&self) -> Option<Vec<String>> {
        match self.test.split_first() {
            Some((k, rest)) if k == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
            Some((k, rest)) if k == "CMD-SHELL" && !rest.is_empty() => {
                Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
            }
            _ => None,
        }
    }

    fn dur(n: i64, default: Duration) -> Duration {
        if n > 0 {
            Duration::from_nanos(n as u64)
        } else {
            default
        }
    }
    pub fn interval(&self) -> Duration {
        Self::dur(self.interval, DEFAULT_INTERVAL)
    }
    pub fn timeout(&self) -> Duration {
        Self::dur(self.timeout, DEFAULT_TIMEOUT)
    }
    pub fn start_period(&self) -> Duration {
        Self::dur(self.start_period, Duration::ZERO)
    }
    pub fn start_interval(&self) -> Duration {
        Self::dur(self.start_interval, DEFAULT_START_INTERVAL)
    }
    pub fn retries(&self) -> i64 {
        if self.retries > 0 {
            self.retries
        } else {
            DEFAULT_RETRIES
        }
    }

    /// docker's checks of a healthcheck's values (the daemon's, at create).
    pub fn validate(&self) -> Result<()> {
        let min = 1_000_000; // 1ms
        for (what, n) in [
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
        ] {
            if n != 0 && n < min {
                return Err(Error::BadConfig(format!(
                    "{what} in Healthcheck cannot be less than 1ms"
                )));
            }
        }
        if self.retries < 0 {
            return Err(Error::BadConfig(
                "Retries in Healthcheck cannot be negative".into(),
            ));
        }
        Ok(())
    }

    /// The healthcheck of an image's config JSON (`config.Healthcheck`).
    pub fn of_image(config: &Value) -> Option<HealthConfig> {
        let h = &config["config"]["Healthcheck"];
        if h.is_null() {
            return None;
        }
        serde_json::from_value(h.clone()).ok()
    }
}

/// Go's `time.ParseDuration`: `300ms`, `1.5h`, `2h45m`, `-1s`; units ns, us (µs), ms, s, m, h.
/// Negative durations are refused (nothing here takes them).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || invalid("duration", format!("time: invalid duration {s:?}"));
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if let Some(neg) = rest.strip_prefix('-') {
        if !neg.is_empty() && neg.chars().all(|c| c == '0') {
            return Ok(Duration::ZERO);
        }
        return Err(invalid(
            "duration",
            format!("{s:?}: a negative duration is not allowed"),
        ));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_end..];
        total += n * mult;
    }
    if total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Go's `time.Duration.String()`: `30s`, `1m30s`, `1.5s`, `500ms`, `0s`.
pub fn go_duration(d: Duration) -> String {
    let n = d.as_nanos();
    if n == 0 {
        return "0s".into();
    }
    let frac = |v: u128, unit: u128| -> String {
        let whole = v / unit;
        let rem = v % unit;
        if rem == 0 {
            whole.to_string()
        } else {
            let digits = unit.ilog10() as usize;
            let f = format!("{rem:0digits$}");
            format!("{whole}.{}", f.trim_end_matches('0'))
        }
    };
    if n < 1_000 {
        return format!("{n}ns");
    }
    if n < 1_000_000 {
        return format!("{}µs", frac(n, 1_000));
    }
    if n < 1_000_000_000 {
        return format!("{}ms", frac(n, 1_000_000));
    }
    let secs_n = n % 60_000_000_000;
    let mins = n / 60_000_000_000;
    let s = format!("{}s", frac(secs_n, 1_000_000_000));
    if mins == 0 {
        return s;
    }
    let (h, m) = (mins / 60, mins % 60);
    if h == 0 {
        format!("{m}m{s}")
    } else {
        format!("{h}h{m}m{s}")
    }
}

/// One probe's result, as docker's `HealthcheckResult`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Probe {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

/// docker's `State.Health`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<Probe>,
}

impl Health {
    pub fn to_json(&self) -> Value {
        json!({"Status": self.status, "FailingStreak": self.failing_streak, "Log": self.log})
    }

    /// docker's `handleProbeResult`: the result joins the log (the last five kept); success
    /// makes the container healthy; a failure counts toward `retries` unless the container
    /// is still starting within its start period. The status before and after.
    pub fn apply(&mut self, probe: Probe, in_start_period: bool, retries: i64) -> (String, String) {
        let old = self.status.clone();
        self.log.push(probe);
        if self.log.len() > MAX_LOG {
            let extra = self.log.len() - MAX_LOG;
            self.log.drain(..extra);
        }
        let Some(last) = self.log.last() else {
            return (old.clone(), old);
        };
        if last.exit_code == 0 {
            self.failing_streak = 0;
            self.status = HEALTHY.into();
        } else if !(self.status == STARTING && in_start_period) {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = UNHEALTHY.into();
            }
        }
        (old, self.status.clone())
    }
}

fn db_err(db: &Db, e: rusqlite::Error) -> Error {
    Error::Db {
        path: db.path().to_path_buf(),
        err: e,
    }
}

/// The container's health, None when it has no healthcheck state.
pub fn load(db: &Db, id: &str) -> Result<Option<Health>> {
    db.conn()
        .query_row(
            "SELECT status, failing_streak, log FROM health WHERE container_id = ?1",
            [id],
            |r| {
                let log: String = r.get(2)?;
                Ok(Health {
                    status: r.get(0)?,
                    failing_streak: r.get(1)?,
                    log: serde_json::from_str(&log).unwrap_or_default(),
                })
            },
        )
        .optional()
        .map_err(|e| db_err(db, e))
}

/// Writes the container's health (one statement: readers see the old or the new state).
pub fn store(db: &Db, id: &str, h: &Health) -> Result<()> {
    let log = serde_json::to_string(&h.log).map_err(|e| Error::Other(e.to_string()))?;
    db.conn()
        .execute(
            "INSERT OR REPLACE INTO health (container_id, status, failing_streak, log) \
             VALUES (?1, ?2, ?3, ?4)",
            params![id, h.status, h.failing_streak, log],
        )
        .map(drop)
        .map_err(|e| db_err(db, e))
}

/// A container whose monitor died is no longer probed: its health (if it has one) becomes
/// `unhealthy`, as docker reports a stopped healthcheck. Best effort.
pub fn monitor_gone(db: &Db, id: &str) {
    let _ = db.conn().execute(
        "UPDATE health SET status = ?2 WHERE container_id = ?1",
        params![id, UNHEALTHY],
    );
}

/// The healthcheck a container runs (its config merged with its image's at create), None
/// when it has none or `--no-healthcheck`.
pub fn active_config(row: &ContainerRow) -> Option<HealthConfig> {
    let cfg = crate::row_config(row).healthcheck?;
    cfg.command().map(|_| cfg)
}

/// What `ps` shows after `Up …` for a running container: ` (healthy)`,
/// ` (health: starting)`, ` (unhealthy)`, or nothing.
pub fn status_suffix(db: &Db, row: &ContainerRow) -> String {
    if row.state != crate::db::RUNNING {
        return String::new();
    }
    match load(db, &row.id).ok().flatten() {
        Some(h) if h.status == STARTING => " (health: starting)".into(),
        Some(h) if !h.status.is_empty() => format!(" ({})", h.status),
        _ => String::new(),
    }
}

/// `ps --filter health=`: `starting`, `healthy`, `unhealthy` or `none` (no healthcheck).
pub fn matches_filter(db: &Db, row: &ContainerRow, want: &str) -> Result<bool> {
    if !matches!(want, STARTING | HEALTHY | UNHEALTHY | "none") {
        return Err(Error::BadFilter(format!(
            "Unrecognised filter value for health: {want}"
        )));
    }
    if active_config(row).is_none() {
        return Ok(want == "none");
    }
    let status = load(db, &row.id)?.map(|h| h.status).unwrap_or_default();
    Ok(status == want)
}

/// A probe in flight.
struct Running {
    pid: i32,
    start: String,
    deadline: Instant,
    output: Option<OwnedFd>,
    buf: Vec<u8>,
    truncated: bool,
    /// Its exit status, once reaped (output may still be draining).
    status: Option<i32>,
    timed_out: bool,
}

/// The monitor's healthcheck: when the next probe is due and the one in flight.
pub struct Runner {
    cfg: HealthConfig,
    started: Instant,
    next: Instant,
    running: Option<Running>,
    health: Health,
}

impl Runner {
    /// For a container that just started: the status is `starting` (the log of earlier runs
    /// kept, as docker), written at once; the first probe after the start interval (inside
    /// the start period) or the interval.
    pub fn start(db: &Db, row: &ContainerRow) -> Option<Runner> {
        let cfg = active_config(row)?;
        let mut health = load(db, &row.id).ok().flatten().unwrap_or_default();
        health.status = STARTING.into();
        health.failing_streak = 0;
        let _ = store(db, &row.id, &health);
        let now = Instant::now();
        let mut r = Runner {
            cfg,
            started: now,
            next: now,
            running: None,
            health,
        };
        r.next = now + r.gap();
        Some(r)
    }

    /// The container stopped: docker reports a healthcheck whose monitor stopped as
    /// `unhealthy` (its log kept); no event, as docker.
    pub fn stopped(mut self, db: &Db, id: &str) {
        self.health.status = UNHEALTHY.into();
        let _ = store(db, id, &self.health);
    }

    /// The wait before the next probe: docker's start interval while the container is
    /// starting within its start period, else the interval.
    fn gap(&self) -> Duration {
        let sp = self.cfg.start_period();
        if !sp.is_zero() && self.health.status == STARTING && self.started.elapsed() < sp {
            self.cfg.start_interval()
        } else {
            self.cfg.interval()
        }
    }

    /// The next moment the monitor has to call [`Runner::tick`].
    pub fn deadline(&self) -> Instant {
        match &self.running {
            Some(r) if r.status.is_none() => r.deadline,
            // Reaped, output draining: soon.
            Some(_) => Instant::now() + Duration::from_millis(20),
            None => self.next,
        }
    }

    /// The probe's output pipe, to poll.
    pub fn output_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.running
            .as_ref()
            .and_then(|r| r.output.as_ref())
            .map(|f| f.as_fd())
    }

    /// The probe's pid, while it runs.
    pub fn probe_pid(&self) -> Option<i32> {
        self.running
            .as_ref()
            .filter(|r| r.status.is_none())
            .map(|r| r.pid)
    }

    /// Reads what the probe wrote (at most [`MAX_OUTPUT`] bytes kept).
    pub fn read_output(&mut self) {
        let Some(r) = self.running.as_mut() else {
            return;
        };
        let Some(fd) = r.output.as_ref() else {
            return;
        };
        let mut b = [0u8; 4096];
        match berth_runtime::sys::read(fd.as_fd(), &mut b) {
            Ok(0) => r.output = None,
            Ok(n) => {
                let keep = n.min(MAX_OUTPUT.saturating_sub(r.buf.len()));
                r.buf.extend_from_slice(&b[..keep]);
                if keep < n {
                    r.truncated = true;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => r.output = None,
        }
    }

    /// The probe was reaped with `code`.
    pub fn reaped(&mut self, code: i32) {
        if let Some(r) = self.running.as_mut() {
            r.status = Some(code);
        }
    }

    /// The monitor's turn: starts a probe when one is due (through the engine's exec path),
    /// kills one past its timeout, records one that ended, and journals a changed status as
    /// docker's `health_status: STATUS` event.
    pub fn tick(&mut self, engine: &mut Engine, row: &ContainerRow) {
        if let Some(status) = self.step(engine, &row.id) {
            // Read afresh: the container may have been renamed since it started.
            let now = engine.db.find(&row.id).unwrap_or_else(|_| row.clone());
            engine.container_event(&now, &format!("health_status: {status}"), &[]);
        }
    }

    /// Starts a probe when one is due, kills one past its timeout, records one that ended.
    /// A changed status is returned.
    fn step(&mut self, engine: &mut Engine, id: &str) -> Option<String> {
        let now = Instant::now();
        if let Some(r) = self.running.as_mut() {
            if r.status.is_none() && now >= r.deadline && !r.timed_out {
                r.timed_out = true;
                let _ = berth_runtime::sys::kill(r.pid, libc::SIGKILL);
            }
            // Done once reaped and its output read to the end (or its timeout passed: a
            // process it left may hold the pipe).
            let drained = r.output.is_none() || r.timed_out;
            if r.status.is_none() || !drained {
                return None;
            }
            let r = self.running.take()?;
            let mut output = String::from_utf8_lossy(&r.buf).into_owned();
            if r.truncated {
                output.push_str("...");
            }
            let exit_code = if r.timed_out {
                output = format!(
                    "Health check exceeded timeout ({})",
                    go_duration(self.cfg.timeout())
                );
                -1
            } else {
                i64::from(r.status.unwrap_or(-1))
            };
            return self.finish(&engine.db, id, r.start, exit_code, output);
        }
        if now < self.next {
            return None;
        }
        let start = crate::logs::now_nano();
        let cmd = self.cfg.command()?;
        let spawned = berth_runtime::sys::pipe()
            .map_err(|e| Error::Sys {
                what: "pipe".into(),
                err: e,
            })
            .and_then(|(rd, wr)| {
                let _ = berth_runtime::sys::set_nonblocking(rd.as_fd());
                // A paused container is not probed (its exec would fail and count).
                if engine
                    .db
                    .find(id)
                    .is_ok_and(|r| r.state == crate::db::PAUSED)
                {
                    return Ok((None, rd));
                }
                spawn_probe(engine, id, cmd, wr).map(|pid| (Some(pid), rd))
            });
        match spawned {
            Ok((None, _)) => {
                self.next = now + self.gap();
                None
            }
            Ok((Some(pid), rd)) => {
                self.running = Some(Running {
                    pid,
                    start,
                    deadline: now + self.cfg.timeout(),
                    output: Some(rd),
                    buf: vec![],
                    truncated: false,
                    status: None,
                    timed_out: false,
                });
                None
            }
            // docker: a probe that cannot be run is a failed result (-1) with the error.
            Err(e) => self.finish(&engine.db, id, start, -1, e.to_string()),
        }
    }

    fn finish(
        &mut self,
        db: &Db,
        id: &str,
        start: String,
        exit_code: i64,
        output: String,
    ) -> Option<String> {
        let probe = Probe {
            start,
            end: crate::logs::now_nano(),
            exit_code,
            output,
        };
        let in_start_period = self.started.elapsed() < self.cfg.start_period();
        let (old, new) = self
            .health
            .apply(probe, in_start_period, self.cfg.retries());
        let _ = store(db, id, &self.health);
        self.next = Instant::now() + self.gap();
        (old != new).then_some(new)
    }
}

/// Starts `cmd` in the container through the engine's exec path with its stdout and stderr
/// on `out`: the probe inherits the monitor's stdio, pointed at the pipe for the moment of
/// the spawn (the monitor is single-threaded; its stdio is /dev/null otherwise).
fn spawn_probe(engine: &mut Engine, id: &str, cmd: Vec<String>, out: OwnedFd) -> Result<i32> {
    if !berth_runtime::exeseal::exe_is_sealed() && engine.exec_needs_sealed_runtime(id, false)? {
        return Err(Error::Other(
            "the probe needs a sealed runtime binary and the monitor's is not".into(),
        ));
    }
    let saved = [dup_cloexec(1)?, dup_cloexec(2)?];
    let redirect = |fd: i32| {
        berth_runtime::sys::dup2(out.as_raw_fd(), fd).map_err(|e| Error::Sys {
            what: "dup2".into(),
            err: e,
        })
    };
    let r = redirect(1)
        .and_then(|_| redirect(2))
        .and_then(|_| engine.exec_probe(id, cmd));
    for (fd, s) in [1, 2].into_iter().zip(&saved) {
        let _ = berth_runtime::sys::dup2(s.as_raw_fd(), fd);
    }
    r
}

/// A close-on-exec copy of `fd`.
fn dup_cloexec(fd: i32) -> Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on an integer descriptor returns a new one or -1.
    let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if n < 0 {
        return Err(Error::Sys {
            what: format!("dup of descriptor {fd}"),
            err: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: `n` was just returned by fcntl and nothing else owns it.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(n) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(code: i64) -> Probe {
        Probe {
            exit_code: code,
            ..Default::default()
        }
    }

    #[test]
    fn durations_parse_and_print_as_gos() {
        let p = |s| parse_duration(s).unwrap();
        assert_eq!(p("30s"), Duration::from_secs(30));
        assert_eq!(p("1m30s"), Duration::from_secs(90));
        assert_eq!(p("1.5h"), Duration::from_secs(5400));
        assert_eq!(p("250ms"), Duration::from_millis(250));
        assert_eq!(p("0"), Duration::ZERO);
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    }

    #[test]
    fn status_follows_dockers_rules() {
        let mut h = Health {
            status: STARTING.into(),
            ..Default::default()
        };
        // Failures in the start period do not count.
        assert_eq!(h.apply(probe(1), true, 2).1, STARTING);
        assert_eq!(h.failing_streak, 0);
        assert_eq!(h.apply(probe(1), false, 2).1, STARTING);
        assert_eq!(h.failing_streak, 1);
        assert_eq!(h.apply(probe(0), false, 2).1, HEALTHY);
        assert_eq!(h.failing_streak, 0);
        assert_eq!(h.apply(probe(1), true, 2).1, HEALTHY);
        assert_eq!(h.apply(probe(-1), true, 2).1, UNHEALTHY);
        assert_eq!(h.failing_streak, 2);
        for _ in 0..4 {
            h.apply(probe(1), false, 2);
        }
        assert_eq!(h.log.len(), MAX_LOG);
    }

    #[test]
    fn image_and_container_checks_merge() {
        let image = HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: 5_000_000_000,
            retries: 2,
            ..Default::default()
        };
        let user = HealthConfig {
            interval: 1_000_000_000,
            ..Default::default()
        };
        let m = HealthConfig::merged(Some(&user), Some(&image)).unwrap();
        assert_eq!(m.test, image.test);
        assert_eq!((m.interval, m.retries), (1_000_000_000, 2));
        let none = HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        };
        let m = HealthConfig::merged(Some(&none), Some(&image)).unwrap();
        assert_eq!(m.command(), None);
        assert_eq!(
            HealthConfig {
                test: vec!["CMD-SHELL".into(), "test -f /x".into()],
                ..Default::default()
            }
            .command()
            .unwrap(),
            ["/bin/sh", "-c", "test -f /x"]
        );
    }
}

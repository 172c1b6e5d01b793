//! The state database: one SQLite file (`<root>/engine/state.db`, WAL,
//! busy timeout) with the containers and the named volumes. Every change
//! is one transaction; readers never block writers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::error::{Error, Result};

const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image TEXT NOT NULL,
    image_id TEXT NOT NULL,
    config TEXT NOT NULL,
    state TEXT NOT NULL,
    pid INTEGER NOT NULL DEFAULT 0,
    pid_start INTEGER NOT NULL DEFAULT 0,
    monitor_pid INTEGER NOT NULL DEFAULT 0,
    monitor_start INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER NOT NULL DEFAULT 0,
    oom_killed INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    started_at TEXT NOT NULL DEFAULT '',
    finished_at TEXT NOT NULL DEFAULT '',
    restart_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    anonymous INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    bridge TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    config TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    container_id TEXT NOT NULL,
    network_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    address TEXT NOT NULL,
    address6 TEXT NOT NULL DEFAULT '',
    mac TEXT NOT NULL,
    host_ifname TEXT NOT NULL UNIQUE,
    ifname TEXT NOT NULL,
    aliases TEXT NOT NULL DEFAULT '[]',
    ports TEXT NOT NULL DEFAULT '[]',
    seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (container_id, network_id),
    UNIQUE (network_id, address)
);
-- Addresses given back while the veth that carried them may still be on the bridge (the
-- kernel deletes a stopped container's veth with its namespace, a moment later): not handed
-- out again until that veth is gone (`network::addresses_in_use`).
CREATE TABLE IF NOT EXISTS released_endpoints (
    host_ifname TEXT PRIMARY KEY,
    network_id TEXT NOT NULL,
    address TEXT NOT NULL,
    address6 TEXT NOT NULL DEFAULT '',
    released_at INTEGER NOT NULL
);
-- Version 4: the event journal (`events.rs`; bounded, the oldest pruned on insert) and each
-- container's health (`health.rs`; written by its monitor, read by inspect and ps).
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_nano INTEGER NOT NULL,
    type TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    attributes TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_time ON events (time_nano);
CREATE TABLE IF NOT EXISTS health (
    container_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    failing_streak INTEGER NOT NULL DEFAULT 0,
    log TEXT NOT NULL DEFAULT '[]'
);
";

/// Deletes the endpoints `clause` selects (with `params`), keeping their addresses in
/// `released_endpoints` until their veths are gone.
pub fn release_endpoints(
    tx: &rusqlite::Transaction<'_>,
    clause: &str,
    params: impl rusqlite::Params + Clone,
) -> rusqlite::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    tx.execute(
        &format!(
            "INSERT OR REPLACE INTO released_endpoints \
             (host_ifname, network_id, address, address6, released_at) \
             SELECT host_ifname, network_id, address, address6, {now} FROM endpoints WHERE {clause}"
        ),
        params.clone(),
    )?;
    tx.execute(&format!("DELETE FROM endpoints WHERE {clause}"), params)?;
    Ok(())
}

/// docker's container states.
pub const CREATED: &str = "created";
pub const RUNNING: &str = "running";
pub const PAUSED: &str = "paused";
pub const EXITED: &str = "exited";
pub const DEAD: &str = "dead";

/// One container as the database holds it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerRow {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    /// `RunConfig` as JSON.
    pub config: String,
    pub state: String,
    pub pid: i32,
    pub pid_start: u64,
    pub monitor_pid: i32,
    pub monitor_start: u64,
    pub exit_code: i32,
    pub oom_killed: bool,
    pub error: String,
    pub created_at: String,
    pub started_at: String,
    pub finished_at: String,
    pub restart_count: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VolumeRow {
    pub name: String,
    pub created_at: String,
    pub labels: String,
    pub anonymous: bool,
}

pub struct Db {
    conn: Connection,
    path: PathBuf,
}

fn row_to_container(r: &Row<'_>) -> rusqlite::Result<ContainerRow> {
    Ok(ContainerRow {
        id: r.get(0)?,
        name: r.get(1)?,
        image: r.get(2)?,
        image_id: r.get(3)?,
        config: r.get(4)?,
        state: r.get(5)?,
        pid: r.get(6)?,
        pid_start: r.get::<_, i64>(7)? as u64,
        monitor_pid: r.get(8)?,
        monitor_start: r.get::<_, i64>(9)? as u64,
        exit_code: r.get(10)?,
        oom_killed: r.get::<_, i64>(11)? != 0,
        error: r.get(12)?,
        created_at: r.get(13)?,
        started_at: r.get(14)?,
        finished_at: r.get(15)?,
        restart_count: r.get(16)?,
    })
}

const COLS: &str = "id, name, image, image_id, config, state, pid, pid_start, monitor_pid, \
    monitor_start, exit_code, oom_killed, error, created_at, started_at, finished_at, restart_count";

impl Db {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Db> {
        let err = |e| Error::Db {
            path: path.to_path_buf(),
            err: e,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                path: dir.to_path_buf(),
                err: e,
            })?;
        }
        let mut conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        // WAL: readers do not block the writer; NORMAL: no fsync per
        // commit (a power cut may lose the last transactions, never
        // corrupt the file; crash truth is re-derived from processes).
        // Switching a new file to WAL needs it to itself for a moment, and
        // SQLite does not wait for that with the busy timeout: commands
        // that start at once on a new root retry.
        let mut tries = 0;
        loop {
            match conn.pragma_update(None, "journal_mode", "WAL") {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && tries < 200 =>
                {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                r => break r.map_err(err)?,
            }
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if version < SCHEMA_VERSION {
            // IMMEDIATE: the write lock first (waiting with the busy
            // timeout), then the check again: a deferred transaction that
            // read first could not upgrade while another command creates
            // the schema ("database is locked" at once).
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            let version: i64 = tx
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .map_err(err)?;
            if version < SCHEMA_VERSION {
                tx.execute_batch(SCHEMA).map_err(err)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(err)?;
            }
            tx.commit().map_err(err)?;
        } else if version > SCHEMA_VERSION {
            return Err(Error::Other(format!(
                "state database {}: schema version {version} is newer than this berth ({SCHEMA_VERSION})",
                path.display()
            )));
        }
        Ok(Db {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        Error::Db {
            path: self.path.clone(),
            err: e,
        }
    }

    /// Runs `f` in an IMMEDIATE transaction (the write lock is taken at
    /// once, so two writers never deadlock upgrading a read lock).
    fn write<T>(&mut self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| Error::Db {
                path: self.path.clone(),
                err: e,
            })?;
        let v = f(&tx)?;
        tx.commit().map_err(|e| Error::Db {
            path: self.path.clone(),
            err: e,
        })?;
        Ok(v)
    }

    /// One statement in its own write transaction.
    fn exec1(&mut self, sql: &str, params: impl rusqlite::Params) -> Result<()> {
        let path = self.path.clone();
        self.write(|tx| {
            tx.execute(sql, params)
                .map_err(|e| Error::Db { path, err: e })?;
            Ok(())
        })
    }

    /// Adds a container; its name must be free.
    pub fn insert(&mut self, c: &ContainerRow) -> Result<()> {
        let path = self.path.clone();
        self.write(|tx| {
            let owner: Option<String> = tx
                .query_row("SELECT id FROM containers WHERE name = ?1", [&c.name], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| Error::Db {
                    path: path.clone(),
                    err: e,
                })?;
            if let Some(id) = owner {
                return Err(Error::NameInUse {
                    name: format!("/{}", c.name),
                    id,
                });
            }
            tx.execute(
                &format!("INSERT INTO containers ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"),
                params![
                    c.id, c.name, c.image, c.image_id, c.config, c.state, c.pid,
                    c.pid_start as i64, c.monitor_pid, c.monitor_start as i64, c.exit_code,
                    c.oom_killed as i64, c.error, c.created_at, c.started_at, c.finished_at,
                    c.restart_count
                ],
            )
            .map_err(|e| Error::Db { path: path.clone(), err: e })?;
            Ok(())
        })
    }

    /// Whether a container is named `name`.
    pub fn name_taken(&self, name: &str) -> Result<bool> {
        self.conn
            .query_row("SELECT 1 FROM containers WHERE name = ?1", [name], |_| {
                Ok(())
            })
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| self.err(e))
    }

    /// A container by full id, name (with or without `/`), or unique id
    /// prefix.
    pub fn find(&self, key: &str) -> Result<ContainerRow> {
        let name = key.strip_prefix('/').unwrap_or(key);
        let q = format!("SELECT {COLS} FROM containers WHERE id = ?1 OR name = ?2");
        if let Some(c) = self
            .conn
            .query_row(&q, [key, name], row_to_container)
            .optional()
            .map_err(|e| self.err(e))?
        {
            return Ok(c);
        }
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            let q = format!("SELECT {COLS} FROM containers WHERE id LIKE ?1 || '%' LIMIT 2");
            let mut st = self.conn.prepare_cached(&q).map_err(|e| self.err(e))?;
            let rows: Vec<ContainerRow> = st
                .query_map([key.to_ascii_lowercase()], row_to_container)
                .and_then(|r| r.collect())
                .map_err(|e| self.err(e))?;
            match rows.len() {
                1 => return Ok(rows.into_iter().next().unwrap_or_default()),
                0 => {}
                _ => return Err(Error::Ambiguous(key.into())),
            }
        }
        Err(Error::NoSuchContainer(key.into()))
    }

    /// Every container, newest first.
    pub fn list(&self) -> Result<Vec<ContainerRow>> {
        let q = format!("SELECT {COLS} FROM containers ORDER BY created_at DESC, rowid DESC");
        let mut st = self.conn.prepare_cached(&q).map_err(|e| self.err(e))?;
        st.query_map([], row_to_container)
            .and_then(|r| r.collect())
            .map_err(|e| self.err(e))
    }

    /// The id of every container (without reading whole records).
    pub fn ids(&self) -> Result<std::collections::HashSet<String>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id FROM containers")
            .map_err(|e| self.err(e))?;
        st.query_map([], |r| r.get(0))
            .and_then(|r| r.collect())
            .map_err(|e| self.err(e))
    }

    /// The image id of every container (`images_in_use` without reading
    /// whole records).
    pub fn image_ids(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT image_id FROM containers")
            .map_err(|e| self.err(e))?;
        st.query_map([], |r| r.get(0))
            .and_then(|r| r.collect())
            .map_err(|e| self.err(e))
    }

    /// The container started: its init and monitor.
    pub fn set_running(
        &mut self,
        id: &str,
        pid: (i32, u64),
        monitor: (i32, u64),
        started_at: &str,
    ) -> Result<()> {
        self.exec1(
            "UPDATE containers SET state = ?2, pid = ?3, pid_start = ?4, monitor_pid = ?5, \
             monitor_start = ?6, started_at = ?7, exit_code = 0, oom_killed = 0, error = '' \
             WHERE id = ?1",
            params![
                id,
                RUNNING,
                pid.0,
                pid.1 as i64,
                monitor.0,
                monitor.1 as i64,
                started_at
            ],
        )
    }

    /// A restart policy started the container again.
    pub fn bump_restart_count(&mut self, id: &str) -> Result<()> {
        self.exec1(
            "UPDATE containers SET restart_count = restart_count + 1 WHERE id = ?1",
            params![id],
        )
    }

    /// The container ended (or failed to start): `state` is `exited` or
    /// `created` (a failed start leaves the container created, as docker).
    pub fn set_exited(
        &mut self,
        id: &str,
        state: &str,
        exit_code: i32,
        oom: bool,
        error: &str,
        finished_at: &str,
    ) -> Result<()> {
        self.exec1(
            "UPDATE containers SET state = ?2, pid = 0, pid_start = 0, monitor_pid = 0, \
             monitor_start = 0, exit_code = ?3, oom_killed = ?4, error = ?5, finished_at = ?6 \
             WHERE id = ?1",
            params![id, state, exit_code, oom as i64, error, finished_at],
        )
    }

    pub fn set_state(&mut self, id: &str, state: &str) -> Result<()> {
        self.exec1(
            "UPDATE containers SET state = ?2 WHERE id = ?1",
            params![id, state],
        )
    }

    pub fn rename(&mut self, id: &str, name: &str) -> Result<()> {
        let path = self.path.clone();
        self.write(|tx| {
            let owner: Option<String> = tx
                .query_row("SELECT id FROM containers WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| Error::Db {
                    path: path.clone(),
                    err: e,
                })?;
            if let Some(owner) = owner {
                return Err(Error::NameInUse {
                    name: format!("/{name}"),
                    id: owner,
                });
            }
            tx.execute(
                "UPDATE containers SET name = ?2 WHERE id = ?1",
                params![id, name],
            )
            .map_err(|e| Error::Db { path, err: e })?;
            Ok(())
        })
    }

    /// Removes a container and its endpoints (its address leases) in one
    /// transaction.
    pub fn remove(&mut self, id: &str) -> Result<()> {
        let path = self.path.clone();
        self.write(|tx| {
            let e = |err| Error::Db {
                path: path.clone(),
                err,
            };
            release_endpoints(tx, "container_id = ?1", [id]).map_err(e)?;
            tx.execute("DELETE FROM health WHERE container_id = ?1", [id])
                .map_err(e)?;
            tx.execute("DELETE FROM containers WHERE id = ?1", [id])
                .map_err(e)?;
            Ok(())
        })
    }

    /// Runs `f` in one IMMEDIATE transaction (the write lock is taken first, so
    /// concurrent `berth` processes queue): what reads and then writes, such as
    /// address allocation, is atomic across processes.
    pub fn immediate<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        self.write(f)
    }

    /// The connection, for reads.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The database file (for error messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn volume_insert(&mut self, v: &VolumeRow) -> Result<bool> {
        let path = self.path.clone();
        self.write(|tx| {
            let n = tx
                .execute(
                    "INSERT OR IGNORE INTO volumes (name, created_at, labels, anonymous) VALUES (?1, ?2, ?3, ?4)",
                    params![v.name, v.created_at, v.labels, v.anonymous as i64],
                )
                .map_err(|e| Error::Db { path, err: e })?;
            Ok(n == 1)
        })
    }

    pub fn volume_get(&self, name: &str) -> Result<VolumeRow> {
        self.conn
            .query_row(
                "SELECT name, created_at, labels, anonymous FROM volumes WHERE name = ?1",
                [name],
                |r| {
                    Ok(VolumeRow {
                        name: r.get(0)?,
                        created_at: r.get(1)?,
                        labels: r.get(2)?,
                        anonymous: r.get::<_, i64>(3)? != 0,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| Error::NoSuchVolume(name.into()))
    }

    pub fn volume_list(&self) -> Result<Vec<VolumeRow>> {
        let mut st = self
            .conn
            .prepare("SELECT name, created_at, labels, anonymous FROM volumes ORDER BY name")
            .map_err(|e| self.err(e))?;
        st.query_map([], |r| {
            Ok(VolumeRow {
                name: r.get(0)?,
                created_at: r.get(1)?,
                labels: r.get(2)?,
                anonymous: r.get::<_, i64>(3)? != 0,
            })
        })
        .and_then(|r| r.collect())
        .map_err(|e| self.err(e))
    }

    pub fn volume_remove(&mut self, name: &str) -> Result<()> {
        self.exec1("DELETE FROM volumes WHERE name = ?1", [name])
    }

    /// Deletes volume `name`'s record in one IMMEDIATE transaction with `check`, which sees
    /// every container and may refuse.
    pub fn remove_volume_unless_used(
        &mut self,
        name: &str,
        check: impl FnOnce(&[ContainerRow]) -> Result<()>,
    ) -> Result<()> {
        let path = self.path.clone();
        self.write(|tx| {
            let e = |err| Error::Db {
                path: path.clone(),
                err,
            };
            let rows: Vec<ContainerRow> = {
                let mut st = tx
                    .prepare(&format!("SELECT {COLS} FROM containers"))
                    .map_err(e)?;
                st.query_map([], row_to_container)
                    .and_then(|r| r.collect())
                    .map_err(e)?
            };
            check(&rows)?;
            tx.execute("DELETE FROM volumes WHERE name = ?1", [name])
                .map_err(e)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, name: &str) -> ContainerRow {
        ContainerRow {
            id: id.into(),
            name: name.into(),
            image: "busybox".into(),
            image_id: "sha256:x".into(),
            config: "{}".into(),
            state: CREATED.into(),
            created_at: "2026-01-01T00:00:00.000000000Z".into(),
            ..Default::default()
        }
    }

    #[test]
    fn containers_names_prefixes_and_states() {
        let t = tempfile::tempdir().unwrap();
        let mut db = Db::open(&t.path().join("e/state.db")).unwrap();
        db.insert(&row("abc123", "web")).unwrap();
        db.insert(&row("abd456", "db")).unwrap();
        let e = db.insert(&row("ffff", "web")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "name \"/web\" is already in use by container abc123"
        );
        assert_eq!(db.find("web").unwrap().id, "abc123");
        assert_eq!(db.find("/db").unwrap().id, "abd456");
        assert_eq!(db.find("abc").unwrap().name, "web");
        assert!(matches!(db.find("ab"), Err(Error::Ambiguous(_))));
        assert!(matches!(db.find("zz"), Err(Error::NoSuchContainer(_))));
        db.set_running("abc123", (10, 20), (30, 40), "t1").unwrap();
        let c = db.find("web").unwrap();
        assert_eq!(
            (c.state.as_str(), c.pid, c.monitor_start),
            (RUNNING, 10, 40)
        );
        db.set_exited("abc123", EXITED, 137, true, "", "t2")
            .unwrap();
        let c = db.find("web").unwrap();
        assert_eq!(
            (c.state.as_str(), c.exit_code, c.oom_killed, c.pid),
            (EXITED, 137, true, 0)
        );
        db.rename("abc123", "front").unwrap();
        assert!(db.rename("abc123", "db").is_err());
        db.remove("abc123").unwrap();
        assert_eq!(db.list().unwrap().len(), 1);
        // A second connection sees the same state (WAL, one file).
        let db2 = Db::open(&t.path().join("e/state.db")).unwrap();
        assert_eq!(db2.list().unwrap()[0].name, "db");
    }

    #[test]
    fn a_version_3_database_keeps_its_data_and_gains_the_journal() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("state.db");
        {
            let c = Connection::open(&path).unwrap();
            let v3 = SCHEMA.split("-- Version 4").next().unwrap();
            c.execute_batch(v3).unwrap();
            c.pragma_update(None, "user_version", 3).unwrap();
            c.execute(
                &format!("INSERT INTO containers ({COLS}) VALUES ('abc', 'kept', 'busybox', 'sha256:x', '{{}}', 'exited', 0, 0, 0, 0, 3, 0, '', 't0', '', '', 0)"),
                [],
            )
            .unwrap();
            c.execute(
                "INSERT INTO volumes (name, created_at) VALUES ('vol', 't0')",
                [],
            )
            .unwrap();
        }
        let db = Db::open(&path).unwrap();
        let c = db.find("kept").unwrap();
        assert_eq!((c.id.as_str(), c.exit_code), ("abc", 3));
        assert_eq!(db.volume_get("vol").unwrap().name, "vol");
        crate::events::record(&db, "container", "start", "abc", &[("name", "kept")]).unwrap();
        let evs = crate::events::read(&db, 0, None, None, 10).unwrap();
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].attributes["name"], "kept");
        let v: i64 = db
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, 4);
        // The health row goes with its container.
        let h = crate::health::Health {
            status: "healthy".into(),
            ..Default::default()
        };
        crate::health::store(&db, "abc", &h).unwrap();
        assert_eq!(crate::health::load(&db, "abc").unwrap(), Some(h));
        let mut db = db;
        db.remove("abc").unwrap();
        assert_eq!(crate::health::load(&db, "abc").unwrap(), None);
    }

    #[test]
    fn a_version_1_database_is_migrated() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("state.db");
        {
            // Schema 1: containers and volumes only.
            let c = Connection::open(&path).unwrap();
            let v1 = SCHEMA
                .split("CREATE TABLE IF NOT EXISTS networks")
                .next()
                .unwrap();
            c.execute_batch(v1).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
        }
        {
            let mut db = Db::open(&path).unwrap();
            db.insert(&row("abc", "old")).unwrap();
        }
        let c = Connection::open(&path).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        for table in ["networks", "endpoints"] {
            let n: i64 = c
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "{table}");
        }
        // The lease table refuses one address twice on a network.
        c.execute(
            "INSERT INTO endpoints (container_id, network_id, endpoint_id, address, mac, host_ifname, ifname) VALUES ('a', 'n', 'e1', '10.0.0.2', 'm', 'v1', 'eth0')",
            [],
        )
        .unwrap();
        assert!(
            c.execute(
                "INSERT INTO endpoints (container_id, network_id, endpoint_id, address, mac, host_ifname, ifname) VALUES ('b', 'n', 'e2', '10.0.0.2', 'm', 'v2', 'eth0')",
                [],
            )
            .is_err()
        );
        let mut db = Db::open(&path).unwrap();
        assert_eq!(db.find("old").unwrap().id, "abc");
        // Removing a container releases its leases.
        db.remove("a").unwrap();
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM endpoints", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}

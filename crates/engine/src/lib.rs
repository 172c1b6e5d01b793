//! Berth's container engine: docker's container workflow over the OCI
//! runtime library (`berth-runtime`) and the image store (`berth-image`),
//! without a daemon. Each `berth` command opens the engine, does its work
//! and exits; a monitor process per running container (see `monitor`)
//! outlives the command. Process model, schema and crash rules:
//! `docs/engine.md`.
//!
//! ```text
//! <root>/engine/state.db                 the state database (db.rs)
//! <root>/containers/<id>/                rootfs/ upper/ work/ (berth-image),
//!                                        config.json (the OCI spec),
//!                                        hosts hostname resolv.conf, <id>-json.log
//! <root>/volumes/<name>/_data            named and anonymous volumes
//! <run>/<id>/monitor.lock attach.sock    held / served by the monitor
//! <run>/runtime/<id>/                    berth-runtime's state
//! ```
//!
//! `<run>` is `/run/berth` for the default root, `$XDG_RUNTIME_DIR/berth`
//! for a rootless user's (`rootless`), else `<root>/run`.

#![recursion_limit = "256"]

pub mod attach;
pub mod boot;
pub mod build;
pub mod check;
pub mod commit;
pub mod config;
pub mod cp;
pub mod db;
pub mod diff;
pub mod dns;
pub mod error;
pub mod events;
pub mod health;
pub mod inspect;
pub mod keeper;
pub mod links;
pub mod logs;
pub mod monitor;
pub mod names;
pub mod network;
pub mod prune;
pub mod quota;
pub mod rootless;
pub mod seccomp;
pub mod security;
pub mod shm;
pub mod spec;
pub mod stats;
pub mod system;
pub mod timefmt;
pub mod update;
pub mod volumes;

use std::fs;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_image::{ContainerRootfs, ImageStore, RootfsMode};
use berth_runtime::{Runtime, sys};

pub use config::RunConfig;
pub use db::{ContainerRow, Db};
pub use error::{Error, Result};

use error::{Context, invalid};

/// The default state root (the same as the image store's).
pub const DEFAULT_ROOT: &str = berth_image::DEFAULT_ROOT;

/// The state root a command works on: `--root`, else `$BERTH_ROOT`, else
/// the default (`/var/lib/berth`, or the user's store when rootless).
pub fn state_root(flag: Option<&str>) -> PathBuf {
    flag.map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("BERTH_ROOT")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(rootless::default_root)
}

/// The ports a container exposes (docker's `Config.ExposedPorts`): its image's `EXPOSE`
/// (none when the image is gone) and its own `--expose`, as `PORT/PROTO` or
/// `FIRST-LAST/PROTO`, each once.
pub fn exposed_ports(image_cfg: Option<&berth_image::ImageConfig>, cfg: &RunConfig) -> Vec<String> {
    let mut v: Vec<String> = image_cfg
        .and_then(|c| c.config.config().as_ref()?.exposed_ports().clone())
        .unwrap_or_default();
    // `create` keeps `--expose` as PORT/PROTO, one port each.
    for e in &cfg.expose {
        if !v.contains(e) {
            v.push(e.clone());
        }
    }
    v
}

/// A rootless container's network: the default one is slirp4netns (there
/// is no bridge an unprivileged user could make on the host); its
/// published ports are checked here and `-P` becomes one `-p` for each
/// exposed port, so that every start forwards the same ones.
fn rootless_network(cfg: &mut RunConfig, image_cfg: &berth_image::ImageConfig) -> Result<()> {
    match cfg.network.as_str() {
        network::DEFAULT_NETWORK | network::SLIRP4NETNS => {}
        "none" | "host" => return Ok(()),
        m if m.starts_with("container:") => return Ok(()),
        // A user-defined network: in the rootless network namespace
        // (`rootless::enter_netns`), its ports forwarded by its slirp4netns.
        _ => return Ok(()),
    }
    cfg.network = network::SLIRP4NETNS.to_string();
    if cfg.ip.is_some() || cfg.ip6.is_some() || !cfg.network_aliases.is_empty() {
        return Err(invalid(
            "--network",
            "--ip, --ip6 and --network-alias need a user-defined network (not available rootless)",
        ));
    }
    let mut published = vec![];
    for p in &cfg.publish {
        for m in berth_net::ports::parse_port_spec(p).map_err(|e| invalid("-p", e.to_string()))? {
            published.push((m.container_port, m.protocol));
            if m.protocol == berth_net::ports::Protocol::Sctp {
                return Err(invalid(
                    "-p",
                    format!("{p:?}: rootless ports cannot be sctp"),
                ));
            }
            if m.host_ip.is_some_and(|a| a.is_ipv6()) {
                return Err(invalid(
                    "-p",
                    format!("{p:?}: rootless ports are published on IPv4 addresses only"),
                ));
            }
        }
    }
    if std::mem::take(&mut cfg.publish_all) {
        for e in exposed_ports(Some(image_cfg), cfg) {
            for m in berth_net::ports::parse_port_spec(&e)
                .map_err(|err| invalid("EXPOSE", err.to_string()))?
            {
                if !published.contains(&(m.container_port, m.protocol)) {
                    published.push((m.container_port, m.protocol));
                    cfg.publish
                        .push(format!("{}/{}", m.container_port, m.protocol.as_str()));
                }
            }
        }
    }
    Ok(())
}

/// The engine bound to a root.
pub struct Engine {
    pub root: PathBuf,
    pub run_dir: PathBuf,
    pub db: Db,
    /// What `ps` reads of each container's spec, by id, with the file's
    /// mtime and size (an engine kept open, as the API's are, parses each
    /// spec once).
    pub(crate) summaries: std::cell::RefCell<inspect::SummaryCache>,
    /// The image store, once opened (its records are read afresh by each
    /// call; opening checks the directories and the record file).
    images: std::cell::OnceCell<ImageStore>,
    /// What the last calls warn about (docker's `Warnings`: limits a
    /// rootless engine ignores…), for the front end to show.
    pub warnings: std::cell::RefCell<Vec<String>>,
}

/// What `create` makes a container from.
pub struct CreateRequest {
    pub name: Option<String>,
    pub config: RunConfig,
    /// Leave the root filesystem mounted: it starts at once (`run`).
    pub keep_mounted: bool,
}

fn now() -> String {
    berth_runtime::state::now_rfc3339()
}

/// The marker file (in a container's state dir) of a `kill` by the user.
const KILLED_BY_USER: &str = "killed-by-user";

impl Engine {
    pub fn open(root: &Path) -> Result<Engine> {
        let run_dir = if root == Path::new(DEFAULT_ROOT) {
            PathBuf::from("/run/berth")
        } else if rootless::active() && rootless::data_root().is_ok_and(|d| d == root) {
            rootless::run_root()?
        } else {
            root.join("run")
        };
        // Only root (the engine) reads the state: 0700 when created.
        std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
            .create(root)
            .at(root)?;
        let db = Db::open(&root.join("engine").join("state.db"))?;
        Ok(Engine {
            root: root.to_path_buf(),
            run_dir,
            db,
            summaries: Default::default(),
            images: std::cell::OnceCell::new(),
            warnings: Default::default(),
        })
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// The monitor's directory (lock, attach socket).
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.run_dir.join(id)
    }

    pub fn runtime(&self) -> Runtime {
        Runtime::new(self.run_dir.join("runtime"), false)
    }

    pub fn images(&self) -> Result<ImageStore> {
        if let Some(s) = self.images.get() {
            return Ok(s.clone());
        }
        let s = ImageStore::open(&self.root)?;
        let _ = self.images.set(s.clone());
        Ok(s)
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        logs::log_path(&self.container_dir(id), id)
    }

    /// `create`: the record, the root filesystem and the OCI spec.
    pub fn create(&mut self, req: CreateRequest) -> Result<ContainerRow> {
        // This create's warnings only (an engine serves many API requests; a failed one
        // left its own).
        self.warnings.borrow_mut().clear();
        let mut cfg = req.config;
        let images = self.images()?;
        let image = images.get(&cfg.image).map_err(|e| match e {
            berth_image::Error::ImageNotFound(_) => Error::NoSuchImage(cfg.image.clone()),
            e => e.into(),
        })?;
        let image_cfg = images.config(&image)?;
        // docker's merge: what the container leaves unset of its healthcheck is the image's.
        let image_health = berth_image::archive::config_json(&images, &image)
            .ok()
            .and_then(|c| health::HealthConfig::of_image(&c));
        cfg.healthcheck =
            health::HealthConfig::merged(cfg.healthcheck.as_ref(), image_health.as_ref());
        test_pause("create-image-resolved");
        cfg.network = network::network_mode(&cfg.network).to_string();
        cfg.validate_namespaces()?;
        // What cgroup v2 has no file for, dropped with docker's warnings.
        if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            if std::mem::take(&mut cfg.oom_kill_disable) {
                self.warnings.borrow_mut().push(
                    "Your kernel does not support OomKillDisable. OomKillDisable discarded.".into(),
                );
            }
            if cfg.memory_swappiness.take().is_some_and(|s| s != -1) {
                self.warnings.borrow_mut().push(
                    "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.".into(),
                );
            }
        }
        for w in spec::drop_unsupported(&mut cfg) {
            self.warnings.borrow_mut().push(w);
        }
        if cfg.oom_kill_disable && cfg.memory.is_none_or(|m| m <= 0) {
            self.warnings.borrow_mut().push(
                "Disabling the OOM killer on containers without setting a '-m/--memory' limit may be dangerous.".into(),
            );
        }
        // docker's form: one PORT/PROTO per port of a range.
        let mut expose = Vec::new();
        for e in &cfg.expose {
            if e.contains(':') {
                return Err(invalid(
                    "--expose",
                    format!(
                        "invalid range format for --expose: {e} (a port or a range, not a mapping)"
                    ),
                ));
            }
            for m in berth_net::ports::parse_port_spec(e)
                .map_err(|err| invalid("--expose", format!("{e:?}: {err}")))?
            {
                let p = format!("{}/{}", m.container_port, m.protocol.as_str());
                if !expose.contains(&p) {
                    expose.push(p);
                }
            }
        }
        cfg.expose = expose;
        for (flag, mode) in [("--pid", &cfg.pid_mode), ("--ipc", &cfg.ipc_mode)] {
            if let Some(other) = config::mode_container(mode) {
                let o = self.db.find(other)?;
                if flag == "--ipc" && row_config(&o).ipc_mode != "shareable" {
                    return Err(Error::BadConfig(format!(
                        "non-shareable IPC (hint: use IpcMode:shareable for the donor container {other})"
                    )));
                }
            }
        }
        links::check(self, &cfg)?;
        cfg.links = links::resolved(self, &cfg)?;
        let storage_size = quota::requested(self, &cfg)?;
        if rootless::active() {
            rootless_network(&mut cfg, &image_cfg)?;
            if let Some(w) = rootless::drop_limits(&mut cfg) {
                self.warnings.borrow_mut().push(w);
            }
        }
        // The network and what the container asks of it, checked before anything is made.
        let net = match cfg.network.as_str() {
            "none" | "host" | network::SLIRP4NETNS => None,
            m if m.starts_with("container:") => {
                let other = self.db.find(&m["container:".len()..])?;
                // docker's conflicts: the namespace and its files are the other container's.
                let conflict = |what: &str| {
                    Err(invalid(
                        "--network",
                        format!("conflicting options: {what} and the container type network mode"),
                    ))
                };
                if !cfg.publish.is_empty() || cfg.publish_all {
                    return conflict("port publishing");
                }
                if cfg.hostname.is_some() {
                    return conflict("hostname");
                }
                if !cfg.dns.is_empty() || !cfg.dns_search.is_empty() || !cfg.dns_options.is_empty()
                {
                    return conflict("dns");
                }
                if !cfg.add_hosts.is_empty() {
                    return conflict("custom host-to-IP mapping");
                }
                if cfg.mac_address.is_some() || cfg.ip.is_some() || !cfg.network_aliases.is_empty()
                {
                    return conflict("--ip, --mac-address and --network-alias");
                }
                cfg.network = format!("container:{}", other.id);
                None
            }
            m => Some(network::find(self, m)?),
        };
        let mut ep_req = network::EndpointRequest::default();
        if net.is_none()
            && cfg.network != network::SLIRP4NETNS
            && (!cfg.publish.is_empty()
                || cfg.publish_all
                || cfg.ip.is_some()
                || !cfg.network_aliases.is_empty())
        {
            if !cfg.publish.is_empty() || cfg.publish_all {
                // docker drops published ports with --network host/none (with a warning).
                cfg.publish.clear();
                cfg.publish_all = false;
            }
            if cfg.ip.is_some() || !cfg.network_aliases.is_empty() {
                return Err(invalid(
                    "--network",
                    "--ip and --network-alias need a bridge or user-defined network",
                ));
            }
        }
        if let Some(n) = &net {
            if let Some(ip) = &cfg.ip {
                ep_req.ip = Some(network::parse_ip(ip)?);
            }
            if let Some(ip6) = &cfg.ip6 {
                ep_req.ip6 = Some(
                    berth_net::ipam::parse_address(ip6)
                        .map_err(|e| invalid("--ip6", e.to_string()))?,
                );
            }
            if let Some(m) = &cfg.mac_address {
                ep_req.mac = Some(network::parse_mac(m)?);
            }
            if n.is_default()
                && (ep_req.ip.is_some() || ep_req.ip6.is_some() || !cfg.network_aliases.is_empty())
            {
                return Err(invalid(
                    "--network",
                    "user specified IP address and aliases are supported only for user-defined networks",
                ));
            }
            ep_req.aliases = cfg.network_aliases.clone();
            for p in &cfg.publish {
                ep_req.ports.extend(
                    berth_net::ports::parse_port_spec(p)
                        .map_err(|e| invalid("-p", e.to_string()))?,
                );
            }
            if cfg.publish_all {
                for e in exposed_ports(Some(&image_cfg), &cfg) {
                    for m in berth_net::ports::parse_port_spec(&e)
                        .map_err(|err| invalid("EXPOSE", err.to_string()))?
                    {
                        if !ep_req.ports.iter().any(|p| {
                            p.container_port == m.container_port && p.protocol == m.protocol
                        }) {
                            ep_req.ports.push(m);
                        }
                    }
                }
            }
        }
        for h in &cfg.add_hosts {
            config::parse_add_host(h)?;
        }
        if let Some(s) = &cfg.stop_signal
            && berth_runtime::signal::parse(s).is_none()
        {
            return Err(invalid("--stop-signal", format!("{s:?} is not a signal")));
        }
        spec::capabilities(&cfg)?;
        if cfg.log_max_file == 0 {
            cfg.log_max_file = 1;
        }
        // --volumes-from X[:ro|rw]: X's volumes and binds (not its tmpfs), where no mount of
        // this container's own is; shared, not anonymous here (an `rm -v` of this one
        // leaves them to X), read-only or writable as asked, else as X has them.
        let mut inherited = Vec::new();
        for vf in &cfg.volumes_from {
            let (other, mode) = match vf.split_once(':') {
                None => (vf.as_str(), None),
                Some((o, m @ ("ro" | "rw"))) => (o, Some(m == "ro")),
                Some((_, m)) => {
                    return Err(invalid("--volumes-from", format!("invalid mode: {m}")));
                }
            };
            let o = self.db.find(other)?;
            for m in row_config(&o).mounts {
                if !matches!(m.kind.as_str(), "volume" | "bind")
                    || cfg.mounts.iter().any(|x| x.target == m.target)
                    || inherited
                        .iter()
                        .any(|x: &config::MountSpec| x.target == m.target)
                {
                    continue;
                }
                inherited.push(config::MountSpec {
                    anonymous: false,
                    readonly: mode.unwrap_or(m.readonly),
                    ..m
                });
            }
        }
        cfg.mounts.extend(inherited);
        // Image volumes become anonymous volumes unless a mount covers them.
        let run_cfg = image_cfg.config.config().clone();
        if let Some(vols) = run_cfg.as_ref().and_then(|c| c.volumes().clone()) {
            for v in vols {
                if !cfg.mounts.iter().any(|m| m.target == v) {
                    cfg.mounts.push(config::MountSpec {
                        kind: "volume".into(),
                        source: String::new(),
                        target: v,
                        readonly: false,
                        options: vec![],
                        anonymous: true,
                    });
                }
            }
        }
        for m in cfg.mounts.iter_mut().filter(|m| m.kind == "volume") {
            if m.anonymous && m.source.is_empty() {
                m.source = names::new_id()?;
            }
            volumes::ensure(self, &m.source, m.anonymous)?;
        }
        test_pause("create-volumes-made");
        let id = names::new_id()?;
        let name = match &req.name {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(n);
                if !names::valid_name(n) {
                    return Err(Error::InvalidName(n.into()));
                }
                n.to_string()
            }
            None => self.free_name(0)?,
        };
        let mut row = ContainerRow {
            id: id.clone(),
            name,
            image: cfg.image.clone(),
            image_id: image.id.to_string(),
            config: serde_json::to_string(&cfg).map_err(|e| invalid("config", e.to_string()))?,
            state: db::CREATED.into(),
            created_at: now(),
            ..Default::default()
        };
        // The container's lock is held while it is made: an `rm -f` racing this create waits
        // until the record, root filesystem and spec are complete instead of removing them
        // from under it (issue 19 saw raw ENOENT and ENOTEMPTY errors from that race).
        // What a create or rm killed before it recorded (or after it removed) a container
        // left is swept first, so the next create finishes the job (the crash matrix saw a
        // `run --rm` killed here leave a state directory no command removed).
        self.sweep_unrecorded_state();
        let _making = self.locked_new(&id)?;
        test_pause("create-locked");
        // A `run` claims the container before it exists: if this process dies before the
        // monitor takes over, the next command finishes the job (`finish_interrupted`).
        if req.keep_mounted {
            let lease = self.run_lease_file(&id);
            fs::write(&lease, lease_text()).at(&lease)?;
        }
        let mut tries = 1;
        let mut reconciled = false;
        let inserted = loop {
            match self.db.insert(&row) {
                // A generated name taken by a concurrent create: another.
                Err(Error::NameInUse { .. }) if req.name.is_none() && tries < 20 => {
                    row.name = self.free_name(tries)?;
                    tries += 1;
                }
                // The name's holder may be what a killed command left (a `run --rm` that
                // died before its monitor started): finishing that frees the name.
                Err(Error::NameInUse { id, .. }) if !reconciled => {
                    reconciled = true;
                    if !matches!(self.get(&id), Err(Error::NoSuchContainer(_))) {
                        break Err(Error::NameInUse {
                            name: format!("/{}", row.name),
                            id,
                        });
                    }
                }
                r => break r,
            }
        };
        if let Err(e) = inserted {
            let _ = fs::remove_dir_all(self.state_dir(&id));
            return Err(e);
        }
        // `rmi` decides "in use" under the image store's lock: checking the
        // image again under that lock, now that the container is recorded,
        // means either rmi saw this container (and kept the image) or the
        // image is gone now and this create fails cleanly, never a container
        // on a root filesystem whose layers were collected under it.
        let image_id = image.id.to_string();
        let still_there = images
            .transaction(|t| Ok(t.get(&image_id).is_ok()))
            .unwrap_or(false);
        if !still_there {
            let _ = self.db.remove(&id);
            let _ = fs::remove_dir_all(self.state_dir(&id));
            for m in cfg.mounts.iter().filter(|m| m.anonymous) {
                let _ = volumes::remove(self, &m.source, true);
            }
            return Err(Error::NoSuchImage(format!(
                "{} (removed while the container was being created)",
                cfg.image
            )));
        }
        // Likewise its volumes: a `volume rm` that ran before the record was in saw no
        // user and removed one; made anew here (as `-v NAME:` makes a missing volume). Any
        // later `volume rm` sees this container and refuses.
        test_pause("create-recorded");
        for m in cfg.mounts.iter().filter(|m| m.kind == "volume") {
            if let Err(e) = volumes::ensure(self, &m.source, m.anonymous) {
                let _ = self.db.remove(&id);
                let _ = fs::remove_dir_all(self.state_dir(&id));
                return Err(e);
            }
        }
        let dir = self.container_dir(&id);
        let made = (|| -> Result<()> {
            // The size limit is the container directory's project, set before its upper
            // and work directories are made so both inherit it (overlayfs renames copied-up
            // files from work into upper, which XFS refuses across projects).
            if let Some(bytes) = storage_size {
                fs::create_dir_all(&dir).at(&dir)?;
                quota::apply(self, &dir, bytes)?;
            }
            let rootfs = ContainerRootfs::prepare(
                images.snapshots(),
                &image.chain_ids,
                &dir,
                RootfsMode::Auto,
            )?;
            if storage_size.is_some() && rootfs.upper().is_none() {
                return Err(Error::BadConfig(
                    "--storage-opt size needs an overlay rootfs (this one is a copy)".into(),
                ));
            }
            if let Some(n) = &net {
                network::allocate_endpoint(self, &id, n, &ep_req)?;
            }
            let hn = spec::hostname(&id, &cfg);
            let nets: Vec<network::NetworkRow> = network::container_networks(self, &id)?
                .into_iter()
                .map(|(_, n)| n)
                .collect();
            let embedded_dns = dns::uses_resolver(&nets);
            let mut files = [
                ("hosts", network::hosts_file(self, &row)?),
                ("hostname", format!("{hn}\n")),
                ("resolv.conf", network::resolv_conf(&cfg, embedded_dns)),
            ];
            // --network container:X: X's view of names, as of now.
            if let Some(other) = cfg.network.strip_prefix("container:") {
                let odir = self.container_dir(other);
                for (f, content) in files.iter_mut().filter(|(f, _)| *f != "hostname") {
                    if let Ok(c) = fs::read_to_string(odir.join(f)) {
                        *content = c;
                    }
                }
            }
            for (f, content) in files {
                let p = dir.join(f);
                fs::write(&p, content).at(&p)?;
            }
            // docker's rule: an empty volume mounted over a directory of
            // the image starts with that directory's content.
            for m in cfg
                .mounts
                .iter()
                .filter(|m| m.kind == "volume" && !m.options.iter().any(|o| o == "nocopy"))
            {
                volumes::seed(&self.root, &m.source, &rootfs.path(), &m.target)?;
            }
            berth_runtime::timing::phase("rootfs prepared");
            let (mut spec, _) = spec::build(
                &id,
                &cfg,
                run_cfg.as_ref(),
                &rootfs.path(),
                &dir,
                &self.root,
            )?;
            // docker's link variables, under what the container sets itself.
            let link_env = links::env(self, &row)?;
            if let Some(p) = spec.process_mut().as_mut().filter(|_| !link_env.is_empty()) {
                let mut env = p.env().clone().unwrap_or_default();
                let set = |k: &str| env.iter().any(|v| v.split('=').next() == Some(k));
                let extra: Vec<String> = link_env
                    .into_iter()
                    .filter(|v| !set(v.split('=').next().unwrap_or_default()))
                    .collect();
                env.extend(extra);
                p.set_env(Some(env));
            }
            let p = dir.join("config.json");
            let data = serde_json::to_vec(&spec).map_err(|e| invalid("spec", e.to_string()))?;
            fs::write(&p, data).at(&p)?;
            berth_runtime::timing::phase("spec written");
            // Unmounted until the container starts, unless that is now.
            if !req.keep_mounted {
                rootfs.unmount()?;
            }
            Ok(())
        })();
        if let Err(e) = made {
            if let Ok(r) = ContainerRootfs::open(images.snapshots(), &dir) {
                let _ = r.remove();
            }
            let _ = fs::remove_dir_all(&dir);
            let _ = self.db.remove(&id);
            let _ = fs::remove_dir_all(self.state_dir(&id));
            for m in cfg.mounts.iter().filter(|m| m.anonymous) {
                let _ = volumes::remove(self, &m.source, true);
            }
            return Err(e);
        }
        self.container_event(&row, "create", &[]);
        Ok(row)
    }

    /// A generated name no container has (yet).
    fn free_name(&self, mut retry: u32) -> Result<String> {
        loop {
            let n = names::generate_name(retry)?;
            if !self.db.name_taken(&n)? {
                return Ok(n);
            }
            retry += 1;
        }
    }

    /// A container by id, name or id prefix, its state checked against
    /// the processes (crash truth).
    pub fn get(&mut self, key: &str) -> Result<ContainerRow> {
        let row = self.db.find(key)?;
        self.reconcile(row)
    }

    /// Every container, reconciled.
    pub fn list(&mut self) -> Result<Vec<ContainerRow>> {
        let rows = self.db.list()?;
        self.sweep_stale_state(&rows);
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            match self.reconcile(r) {
                Ok(r) => out.push(r),
                // Its interrupted removal (or `run --rm`) was finished just now.
                Err(Error::NoSuchContainer(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Opens (creating) the monitor lock of a container.
    pub(crate) fn lock_file(&self, id: &str) -> Result<fs::File> {
        let dir = self.state_dir(id);
        fs::create_dir_all(&dir).at(&dir)?;
        let p = dir.join("monitor.lock");
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .at(&p)
    }

    /// The lock of a container being made, taken: a lock file that a concurrent sweep
    /// removed between its opening and its locking is taken again (the lock must be the
    /// file at the path, or a later sweep could remove the state of a live create).
    fn locked_new(&self, id: &str) -> Result<fs::File> {
        use std::os::unix::fs::MetadataExt;
        let p = self.state_dir(id).join("monitor.lock");
        for _ in 0..10 {
            // A sweep may remove the new directory between its making and the opening.
            let f = match self.lock_file(id) {
                Err(Error::Io { err, .. }) if err.kind() == std::io::ErrorKind::NotFound => {
                    continue;
                }
                r => r?,
            };
            berth_image::sys::flock_exclusive(f.as_fd(), true).what(|| "flock".into())?;
            let held = f.metadata().at(&p)?;
            if fs::metadata(&p).is_ok_and(|m| m.ino() == held.ino() && m.dev() == held.dev()) {
                return Ok(f);
            }
        }
        Err(Error::Other(format!(
            "{}: the lock file kept being removed",
            p.display()
        )))
    }

    /// Whether a monitor holds the container (its lock is taken).
    pub fn monitor_alive(&self, id: &str) -> bool {
        if !self.state_dir(id).join("monitor.lock").exists() {
            return false;
        }
        match self.lock_file(id) {
            Ok(f) => berth_image::sys::flock_exclusive(f.as_fd(), false).is_err(),
            Err(_) => false,
        }
    }

    /// The crash-truth rule: a container the database calls running (or
    /// created with runtime leftovers) whose monitor is gone is running
    /// if its init is alive, else exited with an unknown status (255),
    /// and what it left (cgroup, runtime state, overlay mount) is cleaned.
    pub fn reconcile(&mut self, row: ContainerRow) -> Result<ContainerRow> {
        let row = self.lift_orphaned_commit_pause(row)?;
        let row = self.finish_interrupted(row)?;
        let active = matches!(row.state.as_str(), db::RUNNING | db::PAUSED);
        let leftovers = self.run_dir.join("runtime").join(&row.id).exists();
        if !active && !leftovers {
            return Ok(row);
        }
        let lock = self.lock_file(&row.id)?;
        if berth_image::sys::flock_exclusive(lock.as_fd(), false).is_err() {
            return Ok(row); // a monitor has it
        }
        // Read again under the lock: a monitor may have just finished.
        let row = match self.db.find(&row.id) {
            Ok(r) => r,
            Err(Error::NoSuchContainer(_)) => {
                // Removed meanwhile; taking the lock may have made its directory again.
                self.forget_state(&row.id);
                return Ok(row);
            }
            Err(e) => return Err(e),
        };
        let active = matches!(row.state.as_str(), db::RUNNING | db::PAUSED);
        if active && berth_runtime::state::pid_is(row.pid, row.pid_start) {
            // Running, its monitor gone: an adopter takes it over.
            drop(lock);
            self.adopt(&row.id);
            return Ok(row);
        }
        // Output its keeper still held (its monitor died before it ended).
        let pipes = keeper::take(&self.state_dir(&row.id));
        if !pipes.is_empty() {
            let cfg = row_config(&row);
            if let Ok(mut log) =
                logs::LogWriter::open(&self.log_path(&row.id), cfg.log_max_size, cfg.log_max_file)
            {
                keeper::drain(&pipes, &mut log);
            }
        }
        self.cleanup_runtime(&row.id);
        if active {
            self.db.set_exited(
                &row.id,
                db::EXITED,
                255,
                false,
                "the container's monitor died; its exit status is unknown",
                &now(),
            )?;
            // Its prober died with it: docker's status for a stopped healthcheck.
            health::monitor_gone(&self.db, &row.id);
        }
        self.db.find(&row.id)
    }

    /// Spawns an adopter (this executable with [`monitor::ADOPT`]) for a
    /// running container whose monitor died, and waits until it holds the
    /// container (see [`monitor::adopt_main`]). Best effort: without one,
    /// the next command tries again.
    fn adopt(&self, id: &str) {
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        // Only berth itself has the subcommand (not a test harness
        // linking the engine).
        if !exe
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("berth"))
        {
            return;
        }
        let child = std::process::Command::new(&exe)
            .arg("--root")
            .arg(&self.root)
            .arg(monitor::ADOPT)
            .arg(id)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Ok(mut c) = child {
            let _ = c.wait();
        }
    }

    /// Finishes what a killed command began: an `rm` (the container marked for removal, no
    /// command holding it) is completed; a `run` that died between its `create` and its
    /// monitor (its lease's process gone) is removed when it had `--rm` (the user asked for
    /// it to go, as dockerd would have removed it), else left created with its root
    /// filesystem unmounted. `NoSuchContainer` when the container is gone now.
    fn finish_interrupted(&mut self, row: ContainerRow) -> Result<ContainerRow> {
        let removal = fs::read_to_string(self.removal_file(&row.id)).ok();
        let run_lease = fs::read_to_string(self.run_lease_file(&row.id)).ok();
        if removal.is_none() && run_lease.is_none() {
            return Ok(row);
        }
        if let Some(lease) = &run_lease
            && removal.is_none()
            && lease_holder_alive(lease)
        {
            return Ok(row);
        }
        let lock = self.lock_file(&row.id)?;
        if berth_image::sys::flock_exclusive(lock.as_fd(), false).is_err() {
            return Ok(row); // the rm, or the monitor, is at work
        }
        let row = match self.db.find(&row.id) {
            Ok(r) => r,
            Err(e) => {
                self.forget_state(&row.id);
                return Err(e);
            }
        };
        let _ = fs::remove_file(self.run_lease_file(&row.id));
        let auto_remove = row_config(&row).auto_remove;
        match removal {
            Some(v) => {
                self.destroy(&row, v.trim() == "v", Some(lock))?;
                Err(Error::NoSuchContainer(row.id))
            }
            None if auto_remove && row.state == db::CREATED => {
                self.destroy(&row, true, Some(lock))?;
                Err(Error::NoSuchContainer(row.id))
            }
            None => {
                self.cleanup_runtime(&row.id);
                Ok(row)
            }
        }
    }

    /// Monitor state directories of containers that are gone (a command killed after
    /// removing a record, before its directory): removed when no one holds their lock (a
    /// `create` in progress holds it from before its record exists).
    fn sweep_stale_state(&self, rows: &[ContainerRow]) {
        let known: std::collections::HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        self.sweep_state_except(&known);
    }

    /// `sweep_state_except` of the containers the database records (their ids only).
    fn sweep_unrecorded_state(&self) {
        if let Ok(ids) = self.db.ids() {
            self.sweep_state_except(&ids.iter().map(String::as_str).collect());
        }
    }

    /// Removes the monitor state directories of containers not in `known` whose lock
    /// nothing holds: what a command killed while it made or removed a container left.
    fn sweep_state_except(&self, known: &std::collections::HashSet<&str>) {
        let Ok(dir) = fs::read_dir(&self.run_dir) else {
            return;
        };
        for e in dir.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if id.len() != 64 || known.contains(id.as_str()) || !e.path().is_dir() {
                continue;
            }
            let Ok(lock) = fs::File::open(e.path().join("monitor.lock")) else {
                continue;
            };
            if berth_image::sys::flock_exclusive(lock.as_fd(), false).is_ok() {
                self.forget_state(&id);
            }
        }
    }

    /// Removes the monitor state directory of a container that is gone (call it holding the
    /// container's lock, which taking made the directory again).
    pub(crate) fn forget_state(&self, id: &str) {
        if matches!(self.db.find(id), Err(Error::NoSuchContainer(_))) {
            let _ = fs::remove_dir_all(self.state_dir(id));
        }
    }

    /// The mark of an `rm` in progress (`v` inside when it removes anonymous volumes too).
    fn removal_file(&self, id: &str) -> PathBuf {
        self.state_dir(id).join("removing")
    }

    /// Whether an `rm` of the container is in progress (or was interrupted).
    pub fn removal_pending(&self, id: &str) -> bool {
        self.removal_file(id).exists()
    }

    /// A `run`'s claim on the container it created, until its monitor takes over: the run
    /// process's pid and start time.
    fn run_lease_file(&self, id: &str) -> PathBuf {
        self.state_dir(id).join("run-pending")
    }

    /// The monitor has the container: the `run` that created it no longer answers for it.
    pub(crate) fn release_run_lease(&self, id: &str) {
        let _ = fs::remove_file(self.run_lease_file(id));
    }

    /// Removes runtime state, cgroup and overlay mount of a stopped
    /// container (best effort: each piece may already be gone).
    pub(crate) fn cleanup_runtime(&self, id: &str) {
        self.delete_runtime_state(id);
        // Its veths went with its namespace; its published ports did not.
        let _ = network::disconnect_container(self, id);
        if let Ok(images) = self.images()
            && let Ok(r) = ContainerRootfs::open(images.snapshots(), &self.container_dir(id))
        {
            let _ = r.unmount();
        }
        shm::unmount(&self.container_dir(id));
    }

    /// The runtime's state (cgroup, state dir) and the attach socket.
    fn delete_runtime_state(&self, id: &str) {
        let _ = self.runtime().delete(id, true);
        let _ = fs::remove_file(self.state_dir(id).join("attach.sock"));
    }

    /// `start`: spawns the container's monitor (this executable, `exe`,
    /// with `__monitor`) and waits until the container runs or failed.
    /// Returns the attach connection (the monitor sends the output there).
    pub fn start(&mut self, key: &str, exe: &Path) -> Result<Option<UnixStream>> {
        let row = self.get(key)?;
        match row.state.as_str() {
            db::RUNNING => return Ok(None),
            db::PAUSED => {
                return Err(Error::BadState {
                    id: row.id,
                    state: row.state,
                    what: "cannot start a paused container, try unpause instead".into(),
                });
            }
            _ => {}
        }
        test_pause("start-begin");
        if self.removal_pending(&row.id) {
            return Err(marked_for_removal(&row));
        }
        links::check_running(self, &row)?;
        berth_runtime::timing::phase("engine start");
        self.mark_stopped(&row.id, false);
        let _ = fs::remove_file(self.container_dir(&row.id).join(KILLED_BY_USER));
        let (ours, theirs) = UnixStream::pair().what(|| "socketpair".into())?;
        // Re-executed, not just forked: a fork would carry this process's
        // SQLite state (its connection and the library's per-file lock
        // bookkeeping) into the monitor, whose own connection then loses
        // writes; exec starts it clean (~2.5 ms).
        sys::clear_cloexec(theirs.as_raw_fd()).what(|| "fcntl".into())?;
        // The monitor runs from a read-only view of our binary (or, where no
        // mount can be made, a sealed copy), and so does everything it clones
        // (the container's init): nothing in the container can reach a
        // writable runtime binary through /proc/PID/exe (CVE-2019-5736).
        let sealed = berth_runtime::exeseal::read_only_exe(exe)
            .or_else(|_| berth_runtime::exeseal::sealed_self())
            .ok();
        let program = match &sealed {
            Some(fd) => sys::fd_path(fd.as_fd()),
            None => exe.to_path_buf(),
        };
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new(program)
            .arg0(exe)
            .arg("--root")
            .arg(&self.root)
            .arg(monitor::SUBCOMMAND)
            .arg(&row.id)
            .arg(theirs.as_raw_fd().to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(if berth_runtime::timing::requested() {
                std::process::Stdio::inherit()
            } else {
                std::process::Stdio::null()
            })
            .spawn()
            .at(exe)?;
        berth_runtime::timing::phase("monitor spawned");
        drop(theirs);
        // The monitor forks and its first process exits at once.
        let _ = child.wait();
        self.await_started(&row, ours)
    }

    /// Waits for the monitor's first word: the container started (the
    /// attach connection is returned), or why it did not.
    fn await_started(&self, row: &ContainerRow, ours: UnixStream) -> Result<Option<UnixStream>> {
        let mut r = &ours;
        match attach::read_frame(&mut r) {
            Ok(Some((attach::STARTED, _))) => Ok(Some(ours)),
            Ok(Some((attach::FAILED, p))) => {
                let s = String::from_utf8_lossy(&p);
                let (code, msg) = s.split_once('\n').unwrap_or(("125", &s));
                Err(Error::Start {
                    msg: msg.to_string(),
                    code: code.parse().unwrap_or(125),
                })
            }
            Ok(_) | Err(_) => Err(Error::Other(format!(
                "the monitor of container {} exited before the container started",
                row.id
            ))),
        }
    }

    /// Connects to a running container's monitor.
    pub fn attach(&self, id: &str) -> Result<UnixStream> {
        let dir = self.state_dir(id);
        let dfd = sys::open(&dir, libc::O_PATH | libc::O_DIRECTORY, 0).at(&dir)?;
        UnixStream::connect(sys::fd_path(dfd.as_fd()).join("attach.sock"))
            .at(dir.join("attach.sock"))
    }

    /// Waits until the container is no longer running; its exit code.
    /// `timeout` None waits for ever.
    pub fn wait(&mut self, key: &str, timeout: Option<Duration>) -> Result<Option<i32>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut nap = Duration::from_millis(5);
        let id = self.db.find(key)?.id;
        loop {
            let row = match self.get(&id) {
                Ok(r) => r,
                // Removed by --rm once it ended.
                Err(Error::NoSuchContainer(_)) => return Ok(Some(0)),
                Err(e) => return Err(e),
            };
            if !matches!(row.state.as_str(), db::RUNNING | db::PAUSED) {
                return Ok(Some(row.exit_code));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(100));
        }
    }

    /// `wait --condition`: `not-running` is [`wait`](Self::wait); `next-exit` waits for an exit
    /// that has not happened yet (a stopped container: its next run's); `removed` waits until
    /// the container is gone. The exit code of the exit waited for.
    pub fn wait_condition(&mut self, key: &str, condition: &str) -> Result<i32> {
        let first = self.get(key)?;
        let id = first.id.clone();
        if condition == "not-running" {
            return Ok(self.wait(&id, None)?.unwrap_or(255));
        }
        if !matches!(condition, "next-exit" | "removed") {
            return Err(invalid(
                "--condition",
                format!("{condition:?}: not \"not-running\", \"next-exit\" or \"removed\""),
            ));
        }
        let mut last = first.exit_code;
        let mut nap = Duration::from_millis(5);
        loop {
            let row = match self.get(&id) {
                Ok(r) => r,
                Err(Error::NoSuchContainer(_)) => return Ok(last),
                Err(e) => return Err(e),
            };
            last = row.exit_code;
            let running = matches!(row.state.as_str(), db::RUNNING | db::PAUSED);
            if condition == "next-exit" && !running && row.finished_at != first.finished_at {
                return Ok(row.exit_code);
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(100));
        }
    }

    fn signal(&self, row: &ContainerRow, sig: i32, all: bool) -> Result<()> {
        // Journalled first: the container's `die` (its monitor's) must come after it.
        self.container_event(row, "kill", &[("signal", &sig.to_string())]);
        match self.runtime().kill(&row.id, sig, all) {
            Ok(()) => Ok(()),
            Err(berth_runtime::Error::NotRunning(_) | berth_runtime::Error::NotExist(_)) => {
                Err(Error::BadState {
                    id: row.id.clone(),
                    state: "not running".into(),
                    what: "cannot kill it".into(),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A running (or paused) container; BadState otherwise.
    pub fn get_running(&mut self, key: &str) -> Result<ContainerRow> {
        let row = self.get(key)?;
        if row.state != db::RUNNING && row.state != db::PAUSED {
            return Err(Error::BadState {
                id: row.id,
                state: row.state,
                what: "container is not running".into(),
            });
        }
        Ok(row)
    }

    /// `kill -s SIG`.
    pub fn kill(&mut self, key: &str, sig: i32) -> Result<()> {
        let row = self.get_running(key)?;
        // docker's HasBeenManuallyStopped: `unless-stopped` leaves a
        // container the user killed exited (`always` still restarts it).
        // Kept with the container, not in <run>: `system boot` reads it
        // after a reboot has emptied /run.
        let _ = fs::write(self.container_dir(&row.id).join(KILLED_BY_USER), b"");
        self.signal(&row, sig, false)
    }

    /// Whether the user killed the container since its last start.
    pub fn killed_by_user(&self, id: &str) -> bool {
        self.container_dir(id).join(KILLED_BY_USER).exists()
    }

    /// The signal `stop` sends.
    pub fn stop_signal(&self, row: &ContainerRow) -> i32 {
        let cfg = row_config(row);
        let from_spec = || -> Option<String> {
            let data = fs::read(self.container_dir(&row.id).join("config.json")).ok()?;
            let v: serde_json::Value = serde_json::from_slice(&data).ok()?;
            v["annotations"][berth_image::runtime_config::STOP_SIGNAL_ANNOTATION]
                .as_str()
                .map(String::from)
        };
        cfg.stop_signal
            .or_else(from_spec)
            .and_then(|s| berth_runtime::signal::parse(&s))
            .unwrap_or(libc::SIGTERM)
    }

    /// `stop`: the stop signal, then SIGKILL after `timeout` seconds.
    pub fn stop(&mut self, key: &str, timeout: Option<i64>) -> Result<()> {
        let row = self.get(key)?;
        // Stopped by the user: a restart policy leaves it stopped.
        self.mark_stopped(&row.id, true);
        if row.state != db::RUNNING && row.state != db::PAUSED {
            return Ok(());
        }
        let cfg = row_config(&row);
        let secs = timeout.or(cfg.stop_timeout).unwrap_or(10);
        if row.state == db::PAUSED {
            self.unpause(&row.id)?;
        }
        let _ = self.signal(&row, self.stop_signal(&row), false);
        if secs >= 0
            && self
                .wait(&row.id, Some(Duration::from_secs(secs as u64)))?
                .is_some()
        {
            self.container_event(&row, "stop", &[]);
            return Ok(());
        }
        let _ = self.signal(&row, libc::SIGKILL, true);
        self.wait(&row.id, None)?;
        self.container_event(&row, "stop", &[]);
        Ok(())
    }

    /// `restart`: [`stop`](Self::stop), then [`start`](Self::start) (its monitor's
    /// connection dropped), then docker's `restart` event.
    pub fn restart(&mut self, key: &str, timeout: Option<i64>, exe: &Path) -> Result<()> {
        self.stop(key, timeout)?;
        self.start(key, exe)?;
        if let Ok(row) = self.db.find(key) {
            self.container_event(&row, "restart", &[]);
        }
        Ok(())
    }

    /// The marker a restart policy reads: the user stopped the container.
    /// Kept with the container (not in `<run>`, a tmpfs): `system boot`
    /// reads it after a reboot (docker's persisted HasBeenManuallyStopped).
    pub fn mark_stopped(&self, id: &str, stopped: bool) {
        let p = self.container_dir(id).join("stopped-by-user");
        if stopped {
            let _ = fs::write(&p, b"");
        } else {
            let _ = fs::remove_file(&p);
        }
    }

    /// Whether the user stopped the container since its last start.
    pub fn stopped_by_user(&self, id: &str) -> bool {
        self.container_dir(id).join("stopped-by-user").exists()
    }

    /// The file a `commit` holds while it has the container paused: the
    /// committing process's pid and start time.
    pub(crate) fn commit_pause_file(&self, id: &str) -> PathBuf {
        self.state_dir(id).join("paused-for-commit")
    }

    /// A container paused by a `commit` whose process is gone (killed, even
    /// with SIGKILL) is thawed: the user never paused it.
    fn lift_orphaned_commit_pause(&mut self, row: ContainerRow) -> Result<ContainerRow> {
        let p = self.commit_pause_file(&row.id);
        let Ok(text) = fs::read_to_string(&p) else {
            return Ok(row);
        };
        if lease_holder_alive(&text) {
            return Ok(row); // the commit is still at work
        }
        // Gone first: unpause looks the container up, which comes here again.
        let _ = fs::remove_file(&p);
        if row.state == db::PAUSED {
            let _ = self.unpause(&row.id);
        }
        self.db.find(&row.id)
    }

    /// `pause` / `unpause`: the cgroup freezer.
    pub fn pause(&mut self, key: &str) -> Result<()> {
        let row = self.get(key)?;
        if row.state != db::RUNNING {
            return Err(Error::BadState {
                id: row.id,
                state: row.state,
                what: "container is not running".into(),
            });
        }
        let c = self.runtime().load(&row.id)?;
        berth_runtime::resources::set_frozen(&c.record.cgroup, true)?;
        self.db.set_state(&row.id, db::PAUSED)?;
        self.container_event(&row, "pause", &[]);
        Ok(())
    }

    pub fn unpause(&mut self, key: &str) -> Result<()> {
        let row = self.get(key)?;
        if row.state != db::PAUSED {
            return Err(Error::BadState {
                id: row.id,
                state: row.state,
                what: "container is not paused".into(),
            });
        }
        let c = self.runtime().load(&row.id)?;
        berth_runtime::resources::set_frozen(&c.record.cgroup, false)?;
        self.db.set_state(&row.id, db::RUNNING)?;
        self.container_event(&row, "unpause", &[]);
        Ok(())
    }

    /// `rm` (`force` kills a running container; `volumes` removes its
    /// anonymous volumes).
    pub fn remove(&mut self, key: &str, force: bool, volumes: bool) -> Result<()> {
        let row = match self.get(key) {
            Ok(r) => r,
            Err(e @ Error::NoSuchContainer(_)) => {
                // An `rm` killed after the record went, before the state directory: the
                // same `rm` again finishes it (as `ps` would).
                self.sweep_unrecorded_state();
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let running_refusal = |row: &ContainerRow| Error::BadState {
            id: row.id.clone(),
            state: row.state.clone(),
            what: format!(
                "cannot remove container \"/{}\": container is {}: stop the container before removing or force remove",
                row.name, row.state
            ),
        };
        if !force && matches!(row.state.as_str(), db::RUNNING | db::PAUSED) {
            return Err(running_refusal(&row));
        }
        // Marked first: a monitor about to start it gives up ("marked for removal"), and
        // if this process dies from here on, the next command finishes the removal.
        let mark = self.removal_file(&row.id);
        let _ = fs::create_dir_all(self.state_dir(&row.id));
        fs::write(&mark, if volumes { "v" } else { "" }).at(&mark)?;
        // A restart policy must not start it again while it goes.
        if force {
            self.mark_stopped(&row.id, true);
        }
        if matches!(row.state.as_str(), db::RUNNING | db::PAUSED) {
            if row.state == db::PAUSED {
                let _ = self.unpause(&row.id);
            }
            let _ = self.signal(&row, libc::SIGKILL, true);
            self.wait(&row.id, None)?;
        }
        // Wait for the monitor to finish its cleanup, and keep new ones out. A monitor that
        // was starting the container meanwhile (a `run`/`start` racing this `rm -f`) is made
        // to let go by killing what it started.
        let lock = self.lock_file(&row.id)?;
        let t = Instant::now();
        while berth_image::sys::flock_exclusive(lock.as_fd(), false).is_err() {
            let now = self.db.find(&row.id).ok();
            let running = now
                .as_ref()
                .is_some_and(|r| r.pid > 0 && berth_runtime::state::pid_is(r.pid, r.pid_start));
            if !force && t.elapsed() > Duration::from_secs(2) {
                let _ = fs::remove_file(&mark);
                return Err(match now {
                    Some(r) if running => running_refusal(&r),
                    _ => Error::BadState {
                        id: row.id.clone(),
                        state: row.state.clone(),
                        what: "you cannot remove a restarting container: stop the container before attempting removal or force remove".into(),
                    },
                });
            }
            if force
                && running
                && let Some(r) = &now
            {
                if r.state == db::PAUSED {
                    let _ = self.unpause(&r.id);
                }
                // Repeated while the monitor holds on: not journalled each time.
                let _ = self.runtime().kill(&r.id, libc::SIGKILL, true);
            }
            if t.elapsed() > Duration::from_secs(60) {
                return Err(Error::Other(format!(
                    "container {}: its monitor still holds it after 60 s",
                    row.id
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let row = match self.db.find(&row.id) {
            Ok(r) => r,
            // --rm removed it meanwhile.
            Err(Error::NoSuchContainer(_)) => {
                self.forget_state(&row.id);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.destroy(&row, volumes, Some(lock))
    }

    /// Removes everything of a stopped container. `lock` is its monitor
    /// lock, held.
    pub fn destroy(
        &mut self,
        row: &ContainerRow,
        volumes: bool,
        lock: Option<fs::File>,
    ) -> Result<()> {
        // The overlay is unmounted by its removal below (one store open).
        self.delete_runtime_state(&row.id);
        berth_runtime::timing::phase("destroy: runtime cleaned");
        let dir = self.container_dir(&row.id);
        shm::unmount(&dir);
        let images = self.images()?;
        berth_runtime::timing::phase("destroy: images opened");
        match ContainerRootfs::open(images.snapshots(), &dir) {
            Ok(r) => {
                r.remove()?;
                berth_runtime::timing::phase("destroy: rootfs removed");
            }
            Err(_) => {
                // Killed before the rootfs was recorded: it may still be
                // mounted.
                let _ = sys::umount2(&dir.join("rootfs"), libc::MNT_DETACH);
                if dir.exists() {
                    fs::remove_dir_all(&dir).at(&dir)?;
                }
            }
        }
        test_pause("destroy-dir-removed");
        let _ = network::disconnect_container(self, &row.id);
        self.db.remove(&row.id)?;
        test_pause("destroy-record-removed");
        self.container_event(row, "destroy", &[]);
        berth_runtime::timing::phase("destroy: record removed");
        if volumes {
            for m in row_config(row).mounts.iter().filter(|m| m.anonymous) {
                let _ = volumes::remove(self, &m.source, true);
            }
        }
        let sd = self.state_dir(&row.id);
        let _ = fs::remove_dir_all(&sd);
        drop(lock);
        Ok(())
    }

    pub fn rename(&mut self, key: &str, name: &str) -> Result<()> {
        let row = self.get(key)?;
        let name = name.strip_prefix('/').unwrap_or(name);
        if !names::valid_name(name) {
            return Err(Error::InvalidName(name.into()));
        }
        // Its peers' resolvers read names from the database: nothing else to tell.
        self.db.rename(&row.id, name)?;
        let renamed = ContainerRow {
            name: name.to_string(),
            ..row.clone()
        };
        self.container_event(
            &renamed,
            "rename",
            &[("oldName", &format!("/{}", row.name))],
        );
        Ok(())
    }

    /// `container prune`: removes every stopped container; their ids and
    /// the bytes they wrote.
    pub fn prune(&mut self) -> Result<(Vec<String>, u64)> {
        self.prune_containers(&prune::PruneFilter::default())
    }

    /// `rmi`: removes an image (or one of its tags) unless a container
    /// uses it (`force` untags an image with several names).
    pub fn remove_image(&self, name: &str, force: bool) -> Result<berth_image::RemoveReport> {
        let store = self.images()?;
        // Asked inside the store's transaction (under its lock), where a
        // concurrent `create` checks its image again after recording its
        // container: one of the two always sees the other.
        self.images_in_use()?;
        let in_use = |d: &berth_image::Digest| {
            self.images_in_use()
                .map_or(true, |used| used.contains(&d.to_string()))
        };
        let rep = store.remove(name, force, &in_use)?;
        events::image_removal_events(&store, name, &rep);
        Ok(rep)
    }

    /// `image prune`: dangling images (`all`: every image no container
    /// uses).
    pub fn prune_images(&self, all: bool) -> Result<berth_image::RemoveReport> {
        let store = self.images()?;
        self.images_in_use()?;
        let in_use = |d: &berth_image::Digest| {
            self.images_in_use()
                .map_or(true, |used| used.contains(&d.to_string()))
        };
        let rep = store.prune(all, &in_use)?;
        events::image_removal_events(&store, "", &rep);
        Ok(rep)
    }

    /// `top`: the host's `ps` (with `ps_args`, `-ef` by default) limited to
    /// the container's processes, as docker does; ps's header and rows.
    pub fn top(&mut self, key: &str, ps_args: &[String]) -> Result<String> {
        let row = self.get_running(key)?;
        let pids = self.runtime().load(&row.id)?.record.cgroup.procs();
        let args: Vec<String> = if ps_args.is_empty() {
            vec!["-ef".into()]
        } else {
            ps_args.to_vec()
        };
        let o = std::process::Command::new("ps")
            .args(&args)
            .output()
            .what(|| "running ps".into())?;
        if !o.status.success() {
            return Err(invalid(
                "ps options",
                format!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            ));
        }
        let text = String::from_utf8_lossy(&o.stdout);
        berth_runtime::stats::filter_ps(&text, &pids)
            .ok_or_else(|| Error::Other("Couldn't find PID field in ps output".into()))
    }

    /// Image ids that containers use (for `rmi`).
    pub fn images_in_use(&self) -> Result<Vec<String>> {
        self.db.image_ids()
    }
}

/// An exec process started ([`Engine::exec`]).
pub struct Exec {
    /// The container's id.
    pub container: String,
    /// The process (a child of the caller).
    pub pid: i32,
    /// docker's exec id, as the `exec_*` events carry it.
    pub id: String,
}

/// What `exec` runs in a container.
#[derive(Default)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub tty: bool,
    pub privileged: bool,
}

impl Engine {
    /// `exec`: starts a process in a running container as a child of the
    /// caller (stdio inherited, or the pty through `console`); its pid.
    /// Whether `exec` into `key` must run from a sealed binary
    /// (`berth_runtime::exeseal::needs_sealed_runtime`: the container could
    /// ptrace our exec process before it execs, or its seccomp profile may
    /// refuse the exec helper). The caller then re-executes itself sealed
    /// (`exeseal::reexec_sealed`) before calling [`Engine::exec`].
    pub fn exec_needs_sealed_runtime(&mut self, key: &str, privileged: bool) -> Result<bool> {
        let row = self.get(key)?;
        let Some(spec) = row_spec(self, &row) else {
            return Ok(false);
        };
        let own_userns = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|n| {
                n.iter()
                    .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
            });
        Ok(
            (privileged && !own_userns)
                || berth_runtime::exeseal::needs_sealed_runtime(&spec, None),
        )
    }

    pub fn exec(
        &mut self,
        key: &str,
        req: ExecRequest,
        console: Option<std::os::fd::OwnedFd>,
    ) -> Result<Exec> {
        self.exec_process(key, req, console, true)
    }

    /// The exec process ended with `code`: docker's `exec_die` event.
    pub fn exec_died(&self, exec: &Exec, code: i32) {
        if let Ok(row) = self.db.find(&exec.container) {
            self.container_event(
                &row,
                "exec_die",
                &[("execID", &exec.id), ("exitCode", &code.to_string())],
            );
        }
    }

    /// A healthcheck probe: [`exec`](Self::exec) without `exec_create`/`exec_start` events
    /// (a probe every few seconds would push everything else out of the bounded journal).
    pub fn exec_probe(&mut self, key: &str, cmd: Vec<String>) -> Result<i32> {
        let req = ExecRequest {
            cmd,
            ..Default::default()
        };
        self.exec_process(key, req, None, false).map(|x| x.pid)
    }

    fn exec_process(
        &mut self,
        key: &str,
        req: ExecRequest,
        console: Option<std::os::fd::OwnedFd>,
        record: bool,
    ) -> Result<Exec> {
        let row = self.get(key)?;
        match row.state.as_str() {
            db::RUNNING => {}
            db::PAUSED => {
                return Err(Error::BadState {
                    id: row.id,
                    state: row.state,
                    what: "unpause the container before exec".into(),
                });
            }
            _ => {
                return Err(Error::BadState {
                    id: row.id,
                    state: row.state,
                    what: "container is not running".into(),
                });
            }
        }
        if req.cmd.is_empty() {
            return Err(invalid("exec", "no command given"));
        }
        let spec = row_spec(self, &row).ok_or_else(|| {
            Error::Other(format!("container {}: its config.json is missing", row.id))
        })?;
        let rootfs = self.container_dir(&row.id).join("rootfs");
        let user = match &req.user {
            Some(u) => Some(berth_image::runtime_config::resolve_user(&rootfs, u, &[])?),
            None => None,
        };
        let mut process = berth_runtime::container::exec_process_from_config(
            &spec,
            berth_runtime::container::ExecOverrides {
                args: req.cmd,
                env: req.env,
                cwd: req.workdir.map(PathBuf::from),
                user: user.as_ref().map(|u| (u.uid, Some(u.gid))),
                tty: req.tty,
                ..Default::default()
            },
        )?;
        if let Some(u) = &user {
            let mut pu = process.user().clone();
            pu.set_additional_gids(Some(u.additional_gids.clone()));
            process.set_user(pu);
        }
        if req.privileged {
            let mut caps = process.capabilities().clone().unwrap_or_default();
            let all: Vec<oci_spec::runtime::Capability> = spec::all_caps()
                .iter()
                .filter_map(|c| serde_json::from_value(serde_json::Value::String(c.clone())).ok())
                .collect();
            let set = Some(all.into_iter().collect());
            caps.set_bounding(set.clone());
            caps.set_effective(set.clone());
            caps.set_permitted(set);
            process.set_capabilities(Some(caps));
        }
        // docker's exec events: the action carries the command line, `execID` the exec.
        let exec_id = names::new_id()?;
        let line = process.args().clone().unwrap_or_default().join(" ");
        if record {
            self.container_event(
                &row,
                &format!("exec_create: {line}"),
                &[("execID", &exec_id)],
            );
        }
        let pid = self.runtime().exec(
            &row.id,
            berth_runtime::ExecOpts {
                process,
                console,
                pid_file: None,
                preserve_fds: 0,
                pidfd_socket: None,
                ignore_paused: false,
            },
        )?;
        if record {
            self.container_event(
                &row,
                &format!("exec_start: {line}"),
                &[("execID", &exec_id)],
            );
        }
        Ok(Exec {
            container: row.id,
            pid,
            id: exec_id,
        })
    }
}

/// Bytes of the regular files under `path` (symlinks not followed;
/// missing is 0).
pub fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return if meta.is_file() { meta.len() } else { 0 };
    }
    fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

impl Engine {
    /// What a container wrote: its overlay upper dir (the whole copy for a
    /// copied rootfs).
    pub fn container_size(&self, id: &str) -> u64 {
        let dir = self.container_dir(id);
        if dir.join("upper").exists() {
            dir_size(&dir.join("upper"))
        } else {
            dir_size(&dir.join("rootfs"))
        }
    }
}

/// The `RunConfig` of a row (a damaged one reads as the default).
pub fn row_config(row: &ContainerRow) -> RunConfig {
    serde_json::from_str(&row.config).unwrap_or_default()
}

/// Reads the OCI spec a container was created with.
pub fn row_spec(engine: &Engine, row: &ContainerRow) -> Option<oci_spec::runtime::Spec> {
    let data = fs::read(engine.container_dir(&row.id).join("config.json")).ok()?;
    serde_json::from_slice(&data).ok()
}

/// docker's refusal to start a container an `rm` is removing.
pub(crate) fn marked_for_removal(row: &ContainerRow) -> Error {
    Error::BadState {
        id: row.id.clone(),
        state: "removing".into(),
        what: "container is marked for removal and cannot be started".into(),
    }
}

/// A lease held by this process, as a lease file's text: its pid and start time (a pid
/// alone could be reused by another process after this one dies).
pub(crate) fn lease_text() -> String {
    let me = sys::getpid();
    let start = berth_runtime::state::pid_start_time(me).unwrap_or(0);
    format!("{me} {start}\n")
}

/// Whether the process that wrote a lease (`lease_text`) is still alive.
pub(crate) fn lease_holder_alive(text: &str) -> bool {
    let mut it = text.split_whitespace().map(|w| w.parse::<u64>().ok());
    matches!((it.next(), it.next()), (Some(Some(pid)), Some(Some(start)))
        if berth_runtime::state::pid_is(pid as i32, start))
}

pub use berth_image::sys::test_pause;

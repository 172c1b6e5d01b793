//! `commit`: a container's changes (its overlay upper directory) become a
//! new image on top of the container's image, with the container's config
//! (its command, environment, working directory, user, labels), as docker
//! commit does. The container is paused meanwhile unless told otherwise.

use berth_image::{CommitOptions, ContainerRootfs, ImageRecord, Reference};
use serde_json::{Map, Value, json};

use crate::config::RunConfig;
use crate::error::{Context, Error, Result};
use crate::{Engine, db};

/// What `commit` takes besides the container.
#[derive(Clone, Debug, Default)]
pub struct CommitRequest {
    pub reference: Option<Reference>,
    pub author: Option<String>,
    pub message: Option<String>,
    /// `--change` Dockerfile instructions.
    pub changes: Vec<String>,
    /// Pause a running container while its changes are read (docker's
    /// default).
    pub pause: bool,
}

/// The image config's `config` with the container's run flags applied
/// over it (docker commit keeps the container's Config).
pub fn container_config(image: Option<&Value>, cfg: &RunConfig) -> Map<String, Value> {
    let mut c = image
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if !cfg.cmd.is_empty() {
        c.insert("Cmd".into(), json!(cfg.cmd));
    }
    if let Some(e) = &cfg.entrypoint {
        c.insert("Entrypoint".into(), json!(e));
        if cfg.cmd.is_empty() {
            c.remove("Cmd");
        }
    }
    if !cfg.env.is_empty() {
        let mut env: Vec<String> = c
            .get("Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for e in &cfg.env {
            let key = e.split('=').next().unwrap_or(e);
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        c.insert("Env".into(), json!(env));
    }
    if let Some(w) = &cfg.workdir {
        c.insert("WorkingDir".into(), json!(w));
    }
    if let Some(u) = &cfg.user {
        c.insert("User".into(), json!(u));
    }
    if !cfg.labels.is_empty() {
        let mut labels = c
            .get("Labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in &cfg.labels {
            labels.insert(k.clone(), json!(v));
        }
        c.insert("Labels".into(), Value::Object(labels));
    }
    if let Some(s) = &cfg.stop_signal {
        c.insert("StopSignal".into(), json!(s));
    }
    c
}

impl Engine {
    /// Commits container `key`; returns the new image's record.
    pub fn commit(&mut self, key: &str, req: &CommitRequest) -> Result<ImageRecord> {
        let row = self.get(key)?;
        let images = self.images()?;
        let base = images.get(&row.image_id).ok();
        let cfg: RunConfig = serde_json::from_str(&row.config).map_err(|e| {
            Error::Other(format!(
                "container {}: its stored config does not parse: {e}",
                row.id
            ))
        })?;
        let image_config = match &base {
            Some(b) => Some(berth_image::archive::config_json(&images, b)?),
            None => None,
        };
        let config = container_config(image_config.as_ref().and_then(|v| v.get("config")), &cfg);
        let dir = self.container_dir(&row.id);
        let rootfs = ContainerRootfs::open(images.snapshots(), &dir)?;
        let upper = rootfs.upper().ok_or_else(|| {
            Error::Other(format!(
                "container {}: its filesystem is a copy, not an overlay; commit needs the overlay's changes",
                row.id
            ))
        })?;
        let paused = req.pause && row.state == db::RUNNING;
        // While the container is paused for us: Ctrl-C, SIGTERM, SIGHUP and
        // SIGQUIT wait until it is thawed again, and a lease names this
        // process, so that even a SIGKILL leaves a container the next
        // command thaws (Engine::reconcile).
        let _mask = paused.then(SignalsHeld::hold);
        if paused {
            let lease = self.commit_pause_file(&row.id);
            std::fs::write(&lease, crate::lease_text()).at(&lease)?;
            if let Err(e) = self.pause(&row.id) {
                let _ = std::fs::remove_file(&lease);
                return Err(e);
            }
        }
        let created_by = {
            let mut v = cfg.entrypoint.clone().unwrap_or_default();
            v.extend(cfg.cmd.iter().cloned());
            (!v.is_empty()).then(|| v.join(" "))
        };
        let opts = CommitOptions {
            container_config: Some(config),
            changes: req.changes.clone(),
            author: req.author.clone(),
            message: req.message.clone(),
            created_by,
            ..CommitOptions::default()
        };
        let r = berth_image::commit(
            &images,
            base.as_ref(),
            &upper,
            req.reference.as_ref(),
            &opts,
        );
        if paused {
            let thawed = self.unpause(&row.id);
            let _ = std::fs::remove_file(self.commit_pause_file(&row.id));
            thawed?;
        }
        Ok(r?)
    }
}

/// Blocks the terminating signals a user sends (SIGINT, SIGTERM, SIGHUP,
/// SIGQUIT) until dropped; a signal that came meanwhile is delivered then.
struct SignalsHeld {
    old: libc::sigset_t,
}

impl SignalsHeld {
    fn hold() -> SignalsHeld {
        // SAFETY: sigset_t is plain data, initialised by sigemptyset.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid sigset pointers; pthread_sigmask only changes this
        // thread's mask (the CLI is single-threaded here).
        unsafe {
            libc::sigemptyset(&mut set);
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
                libc::sigaddset(&mut set, s);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        }
        SignalsHeld { old }
    }
}

impl Drop for SignalsHeld {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `hold`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut());
        }
    }
}

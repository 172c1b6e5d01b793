//! `berth system check [--repair]` (issue 17): after a crash or a power loss, is everything
//! the engine keeps consistent? The image store (`berth_image::check`), then the containers
//! against their directories, images, processes, mounts and interrupted commands, then what
//! belongs to no container or volume. Each problem names the object and what `--repair`
//! does; a repair removes or rebuilds what is broken and leaves what is sound alone.

use std::collections::HashSet;
use std::fs;

use berth_image::ContainerRootfs;
use berth_image::check::Problem;

use crate::db::{self, ContainerRow};
use crate::error::Result;
use crate::{Engine, row_config};

/// What `system check` found.
#[derive(Debug, Default)]
pub struct SystemCheck {
    pub images: berth_image::check::CheckReport,
    pub containers: usize,
    pub volumes: usize,
    /// Problems outside the image store.
    pub problems: Vec<Problem>,
}

impl SystemCheck {
    /// Every problem, the image store's first.
    pub fn all(&self) -> impl Iterator<Item = &Problem> {
        self.images.problems.iter().chain(&self.problems)
    }

    /// Problems that are still there (all of them without `--repair`).
    pub fn unresolved(&self) -> usize {
        self.all().filter(|p| !p.repaired).count()
    }

    fn problem(&mut self, what: String, repair: &str, fix: Option<bool>) {
        self.problems.push(Problem {
            what,
            repair: repair.to_string(),
            repaired: fix.unwrap_or(false),
        });
    }
}

fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

impl Engine {
    /// Checks everything (reads and hashes every blob); with `repair`, fixes what it can.
    pub fn check(&mut self, repair: bool) -> Result<SystemCheck> {
        let rows = self.db.list()?;
        let used: HashSet<String> = rows.iter().map(|r| r.image_id.clone()).collect();
        let images = self.images()?;
        let mut report = SystemCheck {
            images: images.check(repair, &|id| used.contains(&id.to_string()))?,
            ..Default::default()
        };
        let image_ids: HashSet<String> = images
            .list()?
            .into_iter()
            .map(|i| i.id.to_string())
            .collect();
        let mut known = HashSet::new();
        for row in rows {
            report.containers += 1;
            known.insert(row.id.clone());
            self.check_container(row, repair, &image_ids, &images, &mut report)?;
        }
        self.check_orphans(repair, &known, &mut report)?;
        self.check_volumes(repair, &mut report)?;
        Ok(report)
    }

    fn check_container(
        &mut self,
        row: ContainerRow,
        repair: bool,
        image_ids: &HashSet<String>,
        images: &berth_image::ImageStore,
        report: &mut SystemCheck,
    ) -> Result<()> {
        let name = format!("container {} ({})", row.name, short(&row.id));
        let dir = self.container_dir(&row.id);
        if !dir.is_dir() {
            let fix = repair.then(|| {
                self.cleanup_runtime(&row.id);
                let _ = fs::remove_dir_all(self.state_dir(&row.id));
                self.db.remove(&row.id).is_ok()
            });
            report.problem(
                format!("{name}: its directory {} is gone", dir.display()),
                "remove its record and runtime state (it cannot run again)",
                fix,
            );
            return Ok(());
        }
        if !image_ids.contains(&row.image_id) {
            report.problem(
                format!("{name}: its image {} is gone", row.image_id),
                "nothing (it runs from its own layers; commit it to keep it as an image)",
                None,
            );
        }
        // What a killed command left: an rm or run to finish, a commit's pause to lift, a
        // running state whose processes are gone. `reconcile` is the repair.
        let sd = self.state_dir(&row.id);
        let monitor = self.monitor_alive(&row.id);
        let mut interrupted = vec![];
        for (file, what) in [
            ("removing", "an interrupted rm"),
            ("run-pending", "a run killed before its monitor started"),
            ("paused-for-commit", "a commit's pause"),
        ] {
            if let Ok(text) = fs::read_to_string(sd.join(file))
                && (file == "removing" || !crate::lease_holder_alive(&text))
                && !monitor
            {
                interrupted.push(what);
            }
        }
        let active = matches!(row.state.as_str(), db::RUNNING | db::PAUSED);
        if active && !monitor && !berth_runtime::state::pid_is(row.pid, row.pid_start) {
            interrupted.push("recorded running, its processes are gone");
        }
        if !interrupted.is_empty() {
            let fix = repair.then(|| {
                matches!(
                    self.reconcile(row.clone()),
                    Ok(_) | Err(crate::Error::NoSuchContainer(_))
                )
            });
            report.problem(
                format!("{name}: {}", interrupted.join(", ")),
                "finish or undo what was interrupted",
                fix,
            );
            return Ok(());
        }
        if !active
            && !monitor
            && let Ok(rootfs) = ContainerRootfs::open(images.snapshots(), &dir)
            && rootfs.is_mounted()
        {
            let fix = repair.then(|| rootfs.unmount().is_ok());
            report.problem(
                format!("{name}: its root filesystem is mounted while it is stopped"),
                "unmount it",
                fix,
            );
        }
        let cfg = row_config(&row);
        for m in cfg.mounts.iter().filter(|m| m.kind == "volume") {
            if self.db.volume_get(&m.source).is_err() {
                let fix =
                    repair.then(|| crate::volumes::ensure(self, &m.source, m.anonymous).is_ok());
                report.problem(
                    format!("{name}: its volume {} is gone", m.source),
                    "make the volume again (empty)",
                    fix,
                );
            }
        }
        Ok(())
    }

    /// Directories of containers the database does not know.
    fn check_orphans(
        &mut self,
        repair: bool,
        known: &HashSet<String>,
        report: &mut SystemCheck,
    ) -> Result<()> {
        let images = self.images()?;
        let containers = self.root.join("containers");
        for e in fs::read_dir(&containers).into_iter().flatten().flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if known.contains(&id) || id.starts_with('.') {
                continue;
            }
            let fix = repair.then(|| {
                if let Ok(r) = ContainerRootfs::open(images.snapshots(), &e.path()) {
                    let _ = r.unmount();
                }
                let _ = berth_image::sys::umount2(&e.path().join("rootfs"), libc::MNT_DETACH);
                fs::remove_dir_all(e.path()).is_ok()
            });
            report.problem(
                format!("{} belongs to no container", e.path().display()),
                "unmount and remove it",
                fix,
            );
        }
        let runtime = self.runtime();
        for e in fs::read_dir(self.run_dir.join("runtime"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let id = e.file_name().to_string_lossy().into_owned();
            // `@seccomp` and the like: the runtime's own caches, not containers.
            if known.contains(&id) || id.starts_with('@') || !e.path().is_dir() {
                continue;
            }
            let fix = repair
                .then(|| runtime.delete(&id, true).is_ok() || fs::remove_dir_all(e.path()).is_ok());
            report.problem(
                format!(
                    "runtime state {} belongs to no container",
                    e.path().display()
                ),
                "delete it (its processes killed, its cgroup removed)",
                fix,
            );
        }
        for e in fs::read_dir(&self.run_dir).into_iter().flatten().flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if id.len() != 64 || known.contains(&id) || !e.path().is_dir() {
                continue;
            }
            let fix = repair.then(|| fs::remove_dir_all(e.path()).is_ok());
            report.problem(
                format!(
                    "monitor state {} belongs to no container",
                    e.path().display()
                ),
                "remove it",
                fix,
            );
        }
        Ok(())
    }

    /// Volume records against their directories.
    fn check_volumes(&mut self, repair: bool, report: &mut SystemCheck) -> Result<()> {
        let rows = self.db.volume_list()?;
        report.volumes = rows.len();
        let names: HashSet<String> = rows.iter().map(|v| v.name.clone()).collect();
        for v in &rows {
            let data = crate::spec::volume_data(&self.root, &v.name);
            if !data.is_dir() {
                let fix = repair.then(|| fs::create_dir_all(&data).is_ok());
                report.problem(
                    format!(
                        "volume {}: its data directory {} is gone",
                        v.name,
                        data.display()
                    ),
                    "make it again (empty)",
                    fix,
                );
            }
        }
        for e in fs::read_dir(self.root.join("volumes"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if names.contains(&name) || !e.path().join("_data").is_dir() {
                continue;
            }
            let fix = repair.then(|| crate::volumes::ensure(self, &name, false).is_ok());
            report.problem(
                format!("volume directory {} has no record", e.path().display()),
                "record it as a volume again (its data kept)",
                fix,
            );
        }
        Ok(())
    }
}

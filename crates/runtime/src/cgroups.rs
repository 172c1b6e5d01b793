//! Control groups: finding the host's layout (v1, hybrid or unified v2),
//! creating the container's cgroup in every hierarchy, placing processes in
//! it, and removing it.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchy {
    /// Where it is mounted on the host, e.g. `/sys/fs/cgroup/memory`.
    pub mountpoint: PathBuf,
    /// Its controllers as the mount options name them (`cpu,cpuacct`,
    /// `name=systemd`); empty for the unified (v2) hierarchy.
    pub controllers: Vec<String>,
    /// True for the cgroup2 hierarchy.
    pub unified: bool,
}

impl Hierarchy {
    /// The directory name a container sees for it under /sys/fs/cgroup.
    pub fn dir_name(&self) -> String {
        if self.unified {
            return "unified".into();
        }
        self.mountpoint
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.controllers.join(","))
    }
}

/// The host's cgroup layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub hierarchies: Vec<Hierarchy>,
}

impl Layout {
    /// Reads the layout from /proc/self/mountinfo.
    pub fn detect() -> Result<Layout> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| Error::Cgroup {
            controller: "*".into(),
            msg: format!("/proc/self/mountinfo: {e}"),
        })?;
        Ok(Self::parse(&info))
    }

    pub fn parse(mountinfo: &str) -> Layout {
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 5 || post.len() < 3 {
                continue;
            }
            // Only whole hierarchies mounted at their root.
            if pre[3] != "/" {
                continue;
            }
            let mountpoint = PathBuf::from(unescape(pre[4]));
            let h = match post[0] {
                "cgroup2" => Hierarchy {
                    mountpoint,
                    controllers: vec![],
                    unified: true,
                },
                "cgroup" => {
                    let controllers: Vec<String> = post[2]
                        .split(',')
                        .filter(|o| is_v1_controller(o))
                        .map(String::from)
                        .collect();
                    if controllers.is_empty() {
                        continue;
                    }
                    Hierarchy {
                        mountpoint,
                        controllers,
                        unified: false,
                    }
                }
                _ => continue,
            };
            // A hierarchy may be mounted twice; keep the first.
            if !hierarchies
                .iter()
                .any(|x| x.controllers == h.controllers && x.unified == h.unified)
            {
                hierarchies.push(h);
            }
        }
        Layout { hierarchies }
    }

    /// Pure cgroup v2: only the unified hierarchy is mounted.
    pub fn is_unified(&self) -> bool {
        !self.hierarchies.is_empty() && self.hierarchies.iter().all(|h| h.unified)
    }
}

fn is_v1_controller(opt: &str) -> bool {
    matches!(
        opt,
        "cpu"
            | "cpuacct"
            | "cpuset"
            | "memory"
            | "devices"
            | "freezer"
            | "blkio"
            | "pids"
            | "hugetlb"
            | "net_cls"
            | "net_prio"
            | "perf_event"
            | "rdma"
            | "misc"
    ) || opt.starts_with("name=")
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Turns the spec's `cgroupsPath` into a clean absolute path inside every
/// hierarchy. Absent: `/<id>` (runc's cgroupfs default). Relative paths
/// are taken from the hierarchy root as runc does. `..` that would climb
/// out of the root is refused.
pub fn resolve_path(cgroups_path: Option<&Path>, id: &str) -> Result<PathBuf> {
    let raw = match cgroups_path {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from(id),
    };
    if raw.to_string_lossy().contains(':') && !raw.is_absolute() {
        return Err(Error::Cgroup {
            controller: "*".into(),
            msg: format!(
                "cgroupsPath {:?} looks like a systemd slice:prefix:name path; the systemd cgroup driver is not supported (use --systemd-cgroup=false)",
                raw.display()
            ),
        });
    }
    let mut out = PathBuf::from("/");
    for c in raw.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::Cgroup {
                    controller: "*".into(),
                    msg: format!("cgroupsPath {:?} must not contain \"..\"", raw.display()),
                });
            }
        }
    }
    if out == Path::new("/") {
        return Err(Error::Cgroup {
            controller: "*".into(),
            msg: "cgroupsPath must not be the root cgroup".into(),
        });
    }
    Ok(out)
}

/// The container's cgroup in every hierarchy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CgroupPaths {
    /// The path inside each hierarchy, e.g. `/default/abc`.
    pub path: PathBuf,
    pub hierarchies: Vec<Hierarchy>,
}

impl CgroupPaths {
    pub fn new(layout: &Layout, path: PathBuf) -> Self {
        CgroupPaths {
            path,
            hierarchies: layout.hierarchies.clone(),
        }
    }

    /// Directory of the cgroup in hierarchy `h`.
    pub fn dir(&self, h: &Hierarchy) -> PathBuf {
        h.mountpoint
            .join(self.path.strip_prefix("/").unwrap_or(&self.path))
    }

    /// The hierarchy holding `controller` (v1), or the unified one.
    pub fn hierarchy_of(&self, controller: &str) -> Option<&Hierarchy> {
        self.hierarchies
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .or_else(|| self.unified())
    }

    pub fn unified(&self) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| h.unified)
    }

    pub fn is_v2(&self) -> bool {
        !self.hierarchies.is_empty() && self.hierarchies.iter().all(|h| h.unified)
    }

    /// Creates the cgroup directory in every hierarchy. On v2, enables every
    /// available controller on the way down so limits can be set.
    pub fn create(&self) -> Result<()> {
        for h in &self.hierarchies {
            let dir = self.dir(h);
            // On v2 every controller is enabled down the path. On a hybrid
            // host the unified hierarchy's controllers are left alone here:
            // enabling one there takes it from v1 for the whole host, so it
            // is done only when a limit needs it (see `enable`).
            if h.unified && self.is_v2() {
                enable_controllers(&h.mountpoint, &self.path, None)?;
            }
            std::fs::create_dir_all(&dir).map_err(|e| Error::Cgroup {
                controller: h.dir_name(),
                msg: format!("mkdir {}: {e}", dir.display()),
            })?;
            if h.controllers.iter().any(|c| c == "cpuset") {
                inherit_cpuset(&h.mountpoint, &self.path)?;
            }
        }
        Ok(())
    }

    /// Moves `pid` into the cgroup in every hierarchy.
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        for h in &self.hierarchies {
            let f = self.dir(h).join("cgroup.procs");
            std::fs::write(&f, pid.to_string()).map_err(|e| Error::Cgroup {
                controller: h.dir_name(),
                msg: format!("writing {pid} to {}: {e}", f.display()),
            })?;
        }
        Ok(())
    }

    /// Moves the calling process (single-threaded) into the cgroup on every
    /// v1 hierarchy by writing `0` to `tasks`. Moving the current thread
    /// skips the global threadgroup lock that moving another process (its
    /// pid into `cgroup.procs`) takes for writing, and with it an RCU grace
    /// period: ~0.3 ms instead of ~10 ms here. The unified hierarchy is not
    /// touched (a child is born there with CLONE_INTO_CGROUP).
    pub fn move_self_v1(&self) -> Result<()> {
        for h in self.hierarchies.iter().filter(|h| !h.unified) {
            let f = self.dir(h).join("tasks");
            std::fs::write(&f, "0").map_err(|e| Error::Cgroup {
                controller: h.dir_name(),
                msg: format!("moving into {}: {e}", f.display()),
            })?;
        }
        Ok(())
    }

    /// Every process in the cgroup (read from the pids or unified
    /// hierarchy, else the first one).
    pub fn procs(&self) -> Vec<i32> {
        let h = self
            .hierarchies
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == "pids"))
            .or_else(|| self.unified())
            .or(self.hierarchies.first());
        let Some(h) = h else { return vec![] };
        std::fs::read_to_string(self.dir(h).join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Removes the cgroup from every hierarchy. Missing dirs are fine; a
    /// cgroup that stays busy (processes still exiting) is retried briefly.
    pub fn destroy(&self) -> Result<()> {
        let mut last_err = None;
        for h in &self.hierarchies {
            let dir = self.dir(h);
            let mut tries = 0;
            loop {
                match std::fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Err(e) => {
                        last_err = Some(Error::Cgroup {
                            controller: h.dir_name(),
                            msg: format!("rmdir {}: {e}", dir.display()),
                        });
                        break;
                    }
                }
            }
        }
        last_err.map_or(Ok(()), Err)
    }

    /// Whether the cgroup is frozen (paused).
    pub fn is_frozen(&self) -> bool {
        if let Some(h) = self
            .hierarchies
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == "freezer"))
        {
            return std::fs::read_to_string(self.dir(h).join("freezer.state"))
                .is_ok_and(|s| s.trim() == "FROZEN");
        }
        if let Some(h) = self.unified() {
            return std::fs::read_to_string(self.dir(h).join("cgroup.freeze"))
                .is_ok_and(|s| s.trim() == "1");
        }
        false
    }
}

/// A new v1 cpuset cgroup starts with empty cpus and mems, and no task can
/// join it: copy them down from the parent at every level.
fn inherit_cpuset(mountpoint: &Path, path: &Path) -> Result<()> {
    let mut parent = mountpoint.to_path_buf();
    for c in path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
    {
        let dir = parent.join(c.as_os_str());
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let cur = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            if !cur.trim().is_empty() {
                continue;
            }
            let val = std::fs::read_to_string(parent.join(f)).unwrap_or_default();
            std::fs::write(dir.join(f), val.trim()).map_err(|e| Error::Cgroup {
                controller: "cpuset".into(),
                msg: format!("writing {:?} to {}: {e}", val.trim(), dir.join(f).display()),
            })?;
        }
        parent = dir;
    }
    Ok(())
}

impl CgroupPaths {
    /// Enables `controller` on the unified hierarchy down to the container's
    /// cgroup (a hybrid host's limit that lives on cgroup2, e.g. hugetlb).
    pub fn enable(&self, controller: &str) -> Result<()> {
        if let Some(h) = self.unified() {
            enable_controllers(&h.mountpoint, &self.path, Some(controller))?;
        }
        Ok(())
    }
}

/// Writes `+ctrl` into the `cgroup.subtree_control` of each ancestor of
/// `path` for every available controller, or only `only`.
fn enable_controllers(mountpoint: &Path, path: &Path, only: Option<&str>) -> Result<()> {
    let avail = std::fs::read_to_string(mountpoint.join("cgroup.controllers")).unwrap_or_default();
    let want: Vec<&str> = avail
        .split_whitespace()
        .filter(|c| only.is_none_or(|o| o == *c))
        .collect();
    if want.is_empty() {
        return Ok(());
    }
    let mut cur = mountpoint.to_path_buf();
    let comps: Vec<_> = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            std::fs::create_dir_all(&cur).map_err(|e| Error::Cgroup {
                controller: "unified".into(),
                msg: format!("mkdir {}: {e}", cur.display()),
            })?;
        }
        let ctl = cur.join("cgroup.subtree_control");
        let enabled = std::fs::read_to_string(&ctl).unwrap_or_default();
        let avail_here =
            std::fs::read_to_string(cur.join("cgroup.controllers")).unwrap_or_default();
        for w in &want {
            if enabled.split_whitespace().any(|e| e == *w)
                || !avail_here.split_whitespace().any(|e| e == *w)
            {
                continue;
            }
            // A controller can fail to enable (e.g. cpu with realtime
            // tasks); the limits that need it report that later.
            let _ = std::fs::write(&ctl, format!("+{w}"));
        }
        cur.push(c.as_os_str());
    }
    Ok(())
}

/// What of `linux.resources.blockIO` the host's kernel can enforce (docker's `sysinfo`
/// checks, which drop what is missing with a warning instead of failing the start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockIoSupport {
    /// A weight (v1 `blkio.weight` or `blkio.bfq.weight`, v2 `io.weight` or
    /// `io.bfq.weight`: the CFQ or BFQ scheduler, or v2's io.cost).
    pub weight: bool,
    /// A weight per device.
    pub weight_device: bool,
    /// Throttling (v1 `blkio.throttle.*`, v2 `io.max`).
    pub throttle: bool,
}

impl Layout {
    /// Where the v1 hierarchy of `controller` is mounted.
    pub fn v1_mountpoint(&self, controller: &str) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| !h.unified && h.controllers.iter().any(|c| c == controller))
            .map(|h| h.mountpoint.as_path())
    }

    /// A cgroup of the unified hierarchy with `marker` (a file of the controller in
    /// question): the root lacks most controllers' files, so such a cgroup (ours, else one
    /// right under the root) shows which ones the kernel has.
    pub fn v2_sample(&self, marker: &str) -> Option<PathBuf> {
        let root = &self.hierarchies.iter().find(|h| h.unified)?.mountpoint;
        let own = own_unified_path()
            .map(|p| root.join(p.strip_prefix("/").unwrap_or(&p)))
            .filter(|d| d != root);
        let children = std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path());
        own.into_iter()
            .chain(children)
            .find(|d| d.join(marker).exists() && d.join("cgroup.procs").exists())
    }

    /// What of blockIO this host supports (see [`BlockIoSupport`]).
    pub fn block_io_support(&self) -> BlockIoSupport {
        let has = |dir: &Path, f: &str| dir.join(f).exists();
        if self.is_unified() {
            let Some(root) = self.hierarchies.first().map(|h| h.mountpoint.clone()) else {
                return BlockIoSupport::default();
            };
            let io = std::fs::read_to_string(root.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|x| x == "io"));
            if !io {
                return BlockIoSupport::default();
            }
            // The root has no io.max nor io.weight.
            return match self.v2_sample("io.stat") {
                Some(d) => {
                    let weight = has(&d, "io.weight") || has(&d, "io.bfq.weight");
                    BlockIoSupport {
                        weight,
                        weight_device: weight,
                        throttle: has(&d, "io.max"),
                    }
                }
                None => BlockIoSupport {
                    weight: has(&root, "io.cost.qos"),
                    weight_device: has(&root, "io.cost.qos"),
                    throttle: true,
                },
            };
        }
        let Some(d) = self.v1_mountpoint("blkio") else {
            return BlockIoSupport::default();
        };
        BlockIoSupport {
            weight: has(d, "blkio.weight") || has(d, "blkio.bfq.weight"),
            weight_device: has(d, "blkio.weight_device") || has(d, "blkio.bfq.weight_device"),
            throttle: has(d, "blkio.throttle.read_bps_device"),
        }
    }
}

/// The cgroup of the calling process in the unified hierarchy (the `0::`
/// line of /proc/self/cgroup).
pub fn own_unified_path() -> Option<PathBuf> {
    let s = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
24 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 24 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct
33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
36 24 0:29 /sub /mnt/x rw - cgroup cgroup rw,memory
";

    #[test]
    fn parses_hybrid() {
        let l = Layout::parse(HYBRID);
        assert_eq!(l.hierarchies.len(), 5);
        assert!(!l.is_unified());
        assert_eq!(l.hierarchies[0].controllers, vec!["cpu"]);
        assert_eq!(l.hierarchies[3].controllers, vec!["name=systemd"]);
        assert!(l.hierarchies[4].unified);
        let p = CgroupPaths::new(&l, PathBuf::from("/a/b"));
        assert_eq!(
            p.dir(p.hierarchy_of("memory").unwrap()),
            PathBuf::from("/sys/fs/cgroup/memory/a/b")
        );
    }

    #[test]
    fn parses_v2() {
        let l = Layout::parse("25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        assert!(l.is_unified());
    }

    #[test]
    fn paths() {
        assert_eq!(resolve_path(None, "x").unwrap(), PathBuf::from("/x"));
        assert_eq!(
            resolve_path(Some(Path::new("a/b")), "x").unwrap(),
            PathBuf::from("/a/b")
        );
        assert_eq!(
            resolve_path(Some(Path::new("/a/./b")), "x").unwrap(),
            PathBuf::from("/a/b")
        );
        assert!(resolve_path(Some(Path::new("/a/../../etc")), "x").is_err());
        assert!(resolve_path(Some(Path::new("/")), "x").is_err());
        assert!(resolve_path(Some(Path::new("system.slice:berth:x")), "x").is_err());
    }
}

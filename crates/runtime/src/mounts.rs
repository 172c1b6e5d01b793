//! Mount options of the runtime spec (config.md "mounts") turned into
//! mount(2) flags, propagation changes, recursive attributes and data.

/// What a list of mount options means to mount(2).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: libc::c_ulong,
    /// Flags that an option explicitly cleared (rw, suid, dev, exec, ...).
    pub cleared: libc::c_ulong,
    pub propagation: Vec<libc::c_ulong>,
    pub bind: bool,
    pub recursive: bool,
    /// mount_setattr(2) attributes to set / clear recursively (rro, ...).
    pub attr_set: u64,
    pub attr_clr: u64,
    pub data: Vec<String>,
    pub tmpcopyup: bool,
    /// `idmap` or `ridmap`: an idmapped bind mount (made by the runtime,
    /// see `idmap.rs`).
    pub idmap: bool,
    /// `ridmap`: the submounts are idmapped too.
    pub idmap_recursive: bool,
}

const MS_NOSYMFOLLOW: libc::c_ulong = 256;

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// Every option name this runtime understands (for `features`).
pub const KNOWN_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// The propagation flag a name stands for.
pub fn propagation_flag(name: &str) -> Option<libc::c_ulong> {
    Some(match name {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

impl MountOptions {
    pub fn parse(opts: &[String]) -> MountOptions {
        let mut m = MountOptions::default();
        for o in opts {
            let o = o.as_str();
            let (set, clr): (libc::c_ulong, libc::c_ulong) = match o {
                "defaults" => (0, 0),
                "ro" => (libc::MS_RDONLY, 0),
                "rw" => (0, libc::MS_RDONLY),
                "suid" => (0, libc::MS_NOSUID),
                "nosuid" => (libc::MS_NOSUID, 0),
                "dev" => (0, libc::MS_NODEV),
                "nodev" => (libc::MS_NODEV, 0),
                "exec" => (0, libc::MS_NOEXEC),
                "noexec" => (libc::MS_NOEXEC, 0),
                "sync" => (libc::MS_SYNCHRONOUS, 0),
                "async" => (0, libc::MS_SYNCHRONOUS),
                "dirsync" => (libc::MS_DIRSYNC, 0),
                "remount" => (libc::MS_REMOUNT, 0),
                "mand" => (libc::MS_MANDLOCK, 0),
                "nomand" => (0, libc::MS_MANDLOCK),
                "atime" => (0, libc::MS_NOATIME),
                "noatime" => (libc::MS_NOATIME, 0),
                "diratime" => (0, libc::MS_NODIRATIME),
                "nodiratime" => (libc::MS_NODIRATIME, 0),
                "relatime" => (libc::MS_RELATIME, 0),
                "norelatime" => (0, libc::MS_RELATIME),
                "strictatime" => (libc::MS_STRICTATIME, 0),
                "nostrictatime" => (0, libc::MS_STRICTATIME),
                "silent" => (libc::MS_SILENT, 0),
                "loud" => (0, libc::MS_SILENT),
                "iversion" => (libc::MS_I_VERSION, 0),
                "noiversion" => (0, libc::MS_I_VERSION),
                "lazytime" => (libc::MS_LAZYTIME, 0),
                "nolazytime" => (0, libc::MS_LAZYTIME),
                "nosymfollow" => (MS_NOSYMFOLLOW, 0),
                "symfollow" => (0, MS_NOSYMFOLLOW),
                "bind" => {
                    m.bind = true;
                    (0, 0)
                }
                "rbind" => {
                    m.bind = true;
                    m.recursive = true;
                    (0, 0)
                }
                "tmpcopyup" => {
                    m.tmpcopyup = true;
                    (0, 0)
                }
                "idmap" => {
                    m.idmap = true;
                    (0, 0)
                }
                "ridmap" => {
                    m.idmap = true;
                    m.idmap_recursive = true;
                    (0, 0)
                }
                _ => {
                    if let Some(p) = propagation_flag(o) {
                        m.propagation.push(p);
                    } else if let Some((set, clr)) = recursive_attr(o) {
                        if clr & MOUNT_ATTR__ATIME != 0 {
                            // The last atime setting wins.
                            m.attr_set &= !MOUNT_ATTR__ATIME;
                        }
                        m.attr_set = (m.attr_set | set) & !(clr & !MOUNT_ATTR__ATIME);
                        m.attr_clr |= clr;
                    } else if !o.starts_with("x-") {
                        m.data.push(o.to_string());
                    }
                    (0, 0)
                }
            };
            m.flags = (m.flags | set) & !clr;
            m.cleared = (m.cleared | clr) & !set;
        }
        m
    }

    pub fn data_string(&self) -> Option<String> {
        if self.data.is_empty() {
            None
        } else {
            Some(self.data.join(","))
        }
    }
}

/// The mount_setattr(2) attributes of the recursive options (`rro`, ...).
fn recursive_attr(o: &str) -> Option<(u64, u64)> {
    Some(match o {
        "rro" => (MOUNT_ATTR_RDONLY, 0),
        "rrw" => (0, MOUNT_ATTR_RDONLY),
        "rnosuid" => (MOUNT_ATTR_NOSUID, 0),
        "rsuid" => (0, MOUNT_ATTR_NOSUID),
        "rnodev" => (MOUNT_ATTR_NODEV, 0),
        "rdev" => (0, MOUNT_ATTR_NODEV),
        "rnoexec" => (MOUNT_ATTR_NOEXEC, 0),
        "rexec" => (0, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => (0, MOUNT_ATTR_NODIRATIME),
        // The atime settings are one value (relatime, noatime or
        // strictatime), not flags: mount_setattr takes a new one in attr_set
        // only with all of MOUNT_ATTR__ATIME in attr_clr (EINVAL otherwise).
        // Undoing one falls back to the kernel's default, relatime; undoing
        // relatime means strictatime (mount(8)'s norelatime).
        "rrelatime" | "ratime" | "rnostrictatime" => (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
        "rnoatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
        "rstrictatime" | "rnorelatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
        "rnosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> MountOptions {
        MountOptions::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_data() {
        let m = p(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(m.flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(m.data_string().as_deref(), Some("mode=755,size=65536k"));
        let m = p(&["rbind", "ro", "rw", "rprivate"]);
        assert!(m.bind && m.recursive);
        assert_eq!(m.flags & libc::MS_RDONLY, 0);
        assert_eq!(m.propagation, vec![libc::MS_PRIVATE | libc::MS_REC]);
        let m = p(&["rro", "rnosuid"]);
        assert_eq!(m.attr_set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID);
    }
}

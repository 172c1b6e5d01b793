//! From an image config to the process and annotation parts of an OCI
//! runtime spec, as `docker run` builds them: Entrypoint/Cmd with the run's
//! overrides, Env merged (PATH and HOME defaulted), WorkingDir, User
//! resolved against the image's `/etc/passwd` and `/etc/group` (with
//! supplementary groups), Labels and StopSignal as annotations; exposed
//! ports and volumes returned for the engine.
//!
//! `/etc/passwd` and `/etc/group` are opened inside the container's root
//! with `openat2(RESOLVE_IN_ROOT)`: an image whose `/etc/passwd` is a
//! symlink to `/etc/shadow` reads its own `/etc/shadow`, never the host's.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use oci_spec::image::Config as ImageRunConfig;
use oci_spec::runtime::{Spec, User};

use crate::error::{Error, Result};

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The OCI image-spec annotation for the stop signal.
pub const STOP_SIGNAL_ANNOTATION: &str = "org.opencontainers.image.stopSignal";
/// /etc/passwd and /etc/group over this are refused (a hostile image).
const ID_FILE_LIMIT: u64 = 16 << 20;

/// What `docker run` can override.
#[derive(Clone, Debug, Default)]
pub struct RunOverrides {
    /// `--entrypoint` (Some(empty) clears the image's).
    pub entrypoint: Option<Vec<String>>,
    /// The command after the image name (replaces Cmd when non-empty).
    pub cmd: Vec<String>,
    /// `-e KEY=VALUE` (replace the image's KEY); `-e KEY` alone unsets.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u name|uid[:group|gid]`.
    pub user: Option<String>,
    /// `--group-add`: more supplementary groups (names or gids).
    pub group_add: Vec<String>,
    /// `--label k=v`, over the image's labels.
    pub labels: Vec<(String, String)>,
}

/// What the engine needs beyond the spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageRuntime {
    /// `80/tcp`, `53/udp`, sorted.
    pub exposed_ports: Vec<String>,
    /// Paths of anonymous volumes, sorted.
    pub volumes: Vec<String>,
    /// The signal number `docker stop` sends (SIGTERM unless the image says).
    pub stop_signal: i32,
}

fn bad(what: &str, reason: impl Into<String>) -> Error {
    Error::InvalidDocument {
        what: what.to_string(),
        reason: reason.into(),
    }
}

/// Fills `spec.process` (args, env, cwd, user) and `spec.annotations`
/// from the image config `config` (the config's `config` object) and the
/// run's overrides; `rootfs` is the container's root filesystem.
pub fn apply_image_config(
    spec: &mut Spec,
    config: Option<&ImageRunConfig>,
    rootfs: &Path,
    o: &RunOverrides,
) -> Result<ImageRuntime> {
    let empty = ImageRunConfig::default();
    let c = config.unwrap_or(&empty);

    // Entrypoint + Cmd.
    let entrypoint = match &o.entrypoint {
        Some(e) => e.clone(),
        None => c.entrypoint().clone().unwrap_or_default(),
    };
    let cmd = if !o.cmd.is_empty() {
        o.cmd.clone()
    } else if o.entrypoint.is_some() {
        // docker: --entrypoint drops the image's Cmd.
        Vec::new()
    } else {
        c.cmd().clone().unwrap_or_default()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(bad(
            "run",
            "no command specified (the image has no Entrypoint or Cmd)",
        ));
    }

    // User.
    let user_spec = o
        .user
        .clone()
        .or_else(|| c.user().clone())
        .unwrap_or_default();
    let resolved = resolve_user(rootfs, &user_spec, &o.group_add)?;

    // Env: the image's, then the run's; PATH and HOME defaulted.
    let mut env: Vec<String> = Vec::new();
    let set = |env: &mut Vec<String>, kv: &str| {
        let key = kv.split_once('=').map_or(kv, |(k, _)| k);
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        if kv.contains('=') {
            env.push(kv.to_string());
        }
    };
    for e in c.env().iter().flatten() {
        if e.is_empty() || e.starts_with('=') {
            return Err(bad("image config Env", format!("invalid entry {e:?}")));
        }
        set(&mut env, e);
    }
    for e in &o.env {
        if e.is_empty() || e.starts_with('=') {
            return Err(bad("run env", format!("invalid entry {e:?}")));
        }
        set(&mut env, e);
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", resolved.home));
    }

    // Working directory.
    let cwd = o
        .workdir
        .clone()
        .or_else(|| c.working_dir().clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(bad("working directory", format!("{cwd:?} is not absolute")));
    }

    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(args));
    process.set_env(Some(env));
    process.set_cwd(PathBuf::from(cwd));
    let mut user = User::default();
    user.set_uid(resolved.uid);
    user.set_gid(resolved.gid);
    if !resolved.additional_gids.is_empty() {
        user.set_additional_gids(Some(resolved.additional_gids.clone()));
    }
    process.set_user(user);
    spec.set_process(Some(process));

    // Labels and the stop signal as annotations.
    let mut ann: HashMap<String, String> = spec.annotations().clone().unwrap_or_default();
    for (k, v) in c.labels().iter().flatten() {
        ann.insert(k.clone(), v.clone());
    }
    for (k, v) in &o.labels {
        ann.insert(k.clone(), v.clone());
    }
    let stop_signal = match c.stop_signal() {
        Some(s) if !s.is_empty() => {
            ann.insert(STOP_SIGNAL_ANNOTATION.into(), s.clone());
            parse_signal(s)?
        }
        _ => libc::SIGTERM,
    };
    if !ann.is_empty() {
        spec.set_annotations(Some(ann));
    }

    let mut exposed_ports: Vec<String> = c.exposed_ports().iter().flatten().cloned().collect();
    exposed_ports.sort();
    let mut volumes: Vec<String> = c.volumes().iter().flatten().cloned().collect();
    volumes.sort();
    for v in &volumes {
        if !v.starts_with('/') {
            return Err(bad(
                "image config Volumes",
                format!("{v:?} is not absolute"),
            ));
        }
    }
    Ok(ImageRuntime {
        exposed_ports,
        volumes,
        stop_signal,
    })
}

/// `SIGTERM`, `TERM`, `15`, `SIGRTMIN+3` to a signal number.
pub fn parse_signal(s: &str) -> Result<i32> {
    berth_runtime::signal::parse(s)
        .ok_or_else(|| bad("stop signal", format!("{s:?} is not a signal")))
}

/// A user resolved against the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Reads a file of the rootfs, resolved inside it; missing is None.
fn read_in_root(rootfs: &Path, rel: &str) -> Result<Option<String>> {
    let root = crate::sys::open_dir(rootfs).map_err(|err| Error::Io {
        path: rootfs.to_path_buf(),
        err,
    })?;
    let fd = match berth_runtime::sys::openat2(
        root.as_fd(),
        Path::new(rel),
        libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK,
        0,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(err) => {
            return Err(Error::Io {
                path: rootfs.join(rel),
                err,
            });
        }
    };
    let f = File::from(fd);
    let meta = f.metadata().map_err(|err| Error::Io {
        path: rootfs.join(rel),
        err,
    })?;
    if !meta.is_file() {
        return Err(bad(rel, "not a regular file"));
    }
    let mut s = Vec::new();
    f.take(ID_FILE_LIMIT + 1)
        .read_to_end(&mut s)
        .map_err(|err| Error::Io {
            path: rootfs.join(rel),
            err,
        })?;
    if s.len() as u64 > ID_FILE_LIMIT {
        return Err(bad(rel, "larger than 16 MiB"));
    }
    Ok(Some(String::from_utf8_lossy(&s).into_owned()))
}

fn parse_passwd(s: &str) -> Vec<PasswdEntry> {
    s.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

fn parse_group(s: &str) -> Vec<GroupEntry> {
    s.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// Resolves `user` (`""`, `name`, `uid`, `name:group`, `uid:gid`, …) as
/// runc's `GetExecUser` does: a name must exist in /etc/passwd, a number
/// need not; the group defaults to the user's primary group (0 for an
/// unknown uid); supplementary groups are the /etc/group entries listing
/// the user (unless a group was given), plus `group_add`.
pub fn resolve_user(rootfs: &Path, user: &str, group_add: &[String]) -> Result<ResolvedUser> {
    let what = |r: String| bad(&format!("user {user:?}"), r);
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read_in_root(rootfs, "etc/passwd")?
        .map(|s| parse_passwd(&s))
        .unwrap_or_default();
    let named_group = g.filter(|g| g.parse::<u32>().is_err()).or_else(|| {
        group_add
            .iter()
            .map(String::as_str)
            .find(|g| g.parse::<u32>().is_err())
    });
    let groups_file = read_in_root(rootfs, "etc/group")?;
    if let (None, Some(name)) = (&groups_file, named_group) {
        return Err(what(format!(
            "no group {name:?}: the image has no /etc/group"
        )));
    }
    let groups = groups_file.map(|s| parse_group(&s)).unwrap_or_default();

    let (uid, mut gid, name, home) = if u.is_empty() {
        let e = passwd.iter().find(|e| e.uid == 0);
        (
            0,
            e.map_or(0, |e| e.gid),
            e.map(|e| e.name.clone()),
            e.map_or("/root".into(), |e| e.home.clone()),
        )
    } else if let Ok(n) = u.parse::<u32>() {
        let e = passwd.iter().find(|e| e.uid == n);
        (
            n,
            e.map_or(0, |e| e.gid),
            e.map(|e| e.name.clone()),
            e.map_or("/".into(), |e| e.home.clone()),
        )
    } else {
        let Some(e) = passwd.iter().find(|e| e.name == u) else {
            return Err(what(format!("no user {u:?} in the image's /etc/passwd")));
        };
        (e.uid, e.gid, Some(e.name.clone()), e.home.clone())
    };
    let lookup_group = |g: &str| -> Result<u32> {
        if let Ok(n) = g.parse::<u32>() {
            return Ok(n);
        }
        groups
            .iter()
            .find(|e| e.name == g)
            .map(|e| e.gid)
            .ok_or_else(|| what(format!("no group {g:?} in the image's /etc/group")))
    };
    let mut extra = BTreeSet::new();
    match g {
        Some("") => return Err(what("empty group".into())),
        Some(g) => gid = lookup_group(g)?,
        None => {
            if let Some(name) = &name {
                for e in &groups {
                    if e.members.iter().any(|m| m == name) {
                        extra.insert(e.gid);
                    }
                }
            }
        }
    }
    for g in group_add {
        extra.insert(lookup_group(g)?);
    }
    // The primary group stays in the list when /etc/group names the user in
    // it (runc keeps it: docker's busybox shows groups=0(root),10(wheel)).
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: extra.into_iter().collect(),
        home: if home.is_empty() { "/".into() } else { home },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn rootfs() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("etc")).unwrap();
        fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n# comment\nwww:x:33:33:www:/var/www:/bin/false\n\
             app:x:1000:1000::/home/app:/bin/sh\nbroken line\n",
        )
        .unwrap();
        fs::write(
            t.path().join("etc/group"),
            "root:x:0:\nwww:x:33:\napp:x:1000:\nwheel:x:10:app,root\naudio:x:29:app\n",
        )
        .unwrap();
        t
    }

    fn cfg(j: serde_json::Value) -> ImageRunConfig {
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn users_resolve_as_runc_does() {
        let t = rootfs();
        let r = |u: &str| resolve_user(t.path(), u, &[]);
        let ok = |uid, gid, extra: &[u32], home: &str| ResolvedUser {
            uid,
            gid,
            additional_gids: extra.to_vec(),
            home: home.into(),
        };
        assert_eq!(r("").unwrap(), ok(0, 0, &[10], "/root"));
        assert_eq!(r("app").unwrap(), ok(1000, 1000, &[10, 29], "/home/app"));
        assert_eq!(r("1000").unwrap(), ok(1000, 1000, &[10, 29], "/home/app"));
        assert_eq!(r("app:www").unwrap(), ok(1000, 33, &[], "/home/app"));
        assert_eq!(r("www:10").unwrap(), ok(33, 10, &[], "/var/www"));
        assert_eq!(r("4242").unwrap(), ok(4242, 0, &[], "/"));
        assert_eq!(r("4242:4343").unwrap(), ok(4242, 4343, &[], "/"));
        assert_eq!(
            resolve_user(t.path(), "www", &["audio".into(), "7".into()]).unwrap(),
            ok(33, 33, &[7, 29], "/var/www")
        );
        for (u, needle) in [
            ("nobody", "no user \"nobody\""),
            ("app:nogroup", "no group"),
            ("app:", "empty group"),
        ] {
            let e = r(u).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains(u), "{u}: {e}");
        }
    }

    #[test]
    fn passwd_symlink_stays_in_the_root() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("etc")).unwrap();
        // An absolute symlink to the host's /etc/passwd is resolved inside
        // the image: there is no such file there, so the name is unknown.
        let host = t
            .path()
            .parent()
            .unwrap()
            .join(format!("host-passwd-{}", std::process::id()));
        fs::write(&host, "evil:x:0:0::/:/bin/sh\n").unwrap();
        let link = format!("/../../../../..{}", host.display());
        std::os::unix::fs::symlink(&link, t.path().join("etc/passwd")).unwrap();
        let e = resolve_user(t.path(), "evil", &[]).unwrap_err();
        fs::remove_file(&host).unwrap();
        assert!(e.to_string().contains("no user \"evil\""), "{e}");
        assert_eq!(resolve_user(t.path(), "0", &[]).unwrap().uid, 0);
        // A link to itself (through the root) is an error, not a hang.
        fs::remove_file(t.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/../etc/passwd", t.path().join("etc/passwd")).unwrap();
        assert!(resolve_user(t.path(), "0", &[]).is_err());
    }

    #[test]
    fn process_from_image_config() {
        let t = rootfs();
        let c = cfg(serde_json::json!({
            "User": "app",
            "Env": ["PATH=/app/bin:/bin", "A=1", "B=2"],
            "Entrypoint": ["/entry"],
            "Cmd": ["serve", "--port", "80"],
            "WorkingDir": "/srv",
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
            "Volumes": {"/data": {}},
            "StopSignal": "SIGQUIT",
            "Labels": {"org.example": "yes"},
        }));
        let mut spec = Spec::default();
        let rt =
            apply_image_config(&mut spec, Some(&c), t.path(), &RunOverrides::default()).unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(
            p.args().as_ref().unwrap(),
            &["/entry", "serve", "--port", "80"]
        );
        assert_eq!(
            p.env().as_ref().unwrap(),
            &["PATH=/app/bin:/bin", "A=1", "B=2", "HOME=/home/app"]
        );
        assert_eq!(p.cwd(), Path::new("/srv"));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
        assert_eq!(p.user().additional_gids().as_ref().unwrap(), &[10, 29]);
        let ann = spec.annotations().as_ref().unwrap();
        assert_eq!(ann["org.example"], "yes");
        assert_eq!(ann[STOP_SIGNAL_ANNOTATION], "SIGQUIT");
        assert_eq!(
            rt,
            ImageRuntime {
                exposed_ports: vec!["53/udp".into(), "80/tcp".into()],
                volumes: vec!["/data".into()],
                stop_signal: libc::SIGQUIT,
            }
        );

        // Overrides: a command replaces Cmd; --entrypoint drops Cmd; env
        // replaces and unsets; -w, -u.
        let o = RunOverrides {
            cmd: vec!["sh".into()],
            env: vec!["A=9".into(), "B".into(), "C=3".into()],
            workdir: Some("/tmp".into()),
            user: Some("33:0".into()),
            labels: vec![("org.example".into(), "no".into())],
            ..Default::default()
        };
        let mut spec = Spec::default();
        apply_image_config(&mut spec, Some(&c), t.path(), &o).unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &["/entry", "sh"]);
        assert_eq!(
            p.env().as_ref().unwrap(),
            &["PATH=/app/bin:/bin", "A=9", "C=3", "HOME=/var/www"]
        );
        assert_eq!(p.cwd(), Path::new("/tmp"));
        assert_eq!((p.user().uid(), p.user().gid()), (33, 0));
        assert_eq!(spec.annotations().as_ref().unwrap()["org.example"], "no");
        let o = RunOverrides {
            entrypoint: Some(vec!["/bin/true".into()]),
            ..Default::default()
        };
        let mut spec = Spec::default();
        apply_image_config(&mut spec, Some(&c), t.path(), &o).unwrap();
        assert_eq!(
            spec.process().as_ref().unwrap().args().as_ref().unwrap(),
            &["/bin/true"]
        );

        // Defaults: PATH, HOME, cwd /, SIGTERM; nothing to run is an error.
        let bare = cfg(serde_json::json!({"Cmd": ["x"]}));
        let mut spec = Spec::default();
        let rt =
            apply_image_config(&mut spec, Some(&bare), t.path(), &RunOverrides::default()).unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(
            p.env().as_ref().unwrap(),
            &[format!("PATH={DEFAULT_PATH}"), "HOME=/root".into()]
        );
        assert_eq!(p.cwd(), Path::new("/"));
        assert_eq!(rt.stop_signal, libc::SIGTERM);
        let e = apply_image_config(
            &mut Spec::default(),
            None,
            t.path(),
            &RunOverrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no command"), "{e}");
        let rel = RunOverrides {
            workdir: Some("rel".into()),
            ..Default::default()
        };
        assert!(apply_image_config(&mut Spec::default(), Some(&bare), t.path(), &rel).is_err());
        let badsig = cfg(serde_json::json!({"Cmd": ["x"], "StopSignal": "SIGNOPE"}));
        let e = apply_image_config(
            &mut Spec::default(),
            Some(&badsig),
            t.path(),
            &RunOverrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("SIGNOPE"), "{e}");
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("term").unwrap(), 15);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("SIGRTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("999").is_err());
        assert!(parse_signal("FOO").is_err());
    }
}

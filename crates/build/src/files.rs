//! The files a `COPY`/`ADD` reads, and how they land in the image.
//!
//! Sources come from the build context (the entries [`crate::dockerignore::walk`] yields, so
//! nothing excluded and nothing outside the context is ever read: files are opened with
//! `O_NOFOLLOW`, symlinks copied as symlinks), from another stage's or image's filesystem (read
//! with `berth_image::copy::archive_path`, which resolves paths inside that root), or from a
//! heredoc. Each becomes a list of [`Item`]s with the owner and mode they will have (`--chown`,
//! `--chmod` applied), whose [`digest`] is the step's content key (names, kinds, modes, owners,
//! link targets and file contents; never mtimes).
//!
//! The destination follows docker's rules: relative to `WORKDIR`; a directory when it ends in
//! `/`, already is one, or the source is a directory (whose contents are copied, not the
//! directory itself); several sources need a directory destination. Missing parent
//! directories are created (0755, root). The items are then written as a tar and extracted
//! with `berth_image::copy::extract_to` under the deepest existing ancestor, which resolves
//! that ancestor inside the root (a `/bin` → `usr/bin` symlink is followed there, never out).

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use berth_image::Digest;

use crate::cache::KeyHasher;
use crate::dockerignore::{Entry, EntryKind};

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("\"/{0}\": not found")]
    NotFound(String),
    #[error("{0}: too many levels of symbolic links")]
    SymlinkLoop(String),
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{0}")]
    Image(#[from] berth_image::Error),
    #[error(
        "When using COPY with more than one source file, the destination must be a directory and end with a /"
    )]
    MultipleSources,
    #[error("invalid chmod parameter: {0:?} (an octal mode is expected)")]
    BadChmod(String),
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
}

type Result<T> = std::result::Result<T, FilesError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |err| FilesError::Io {
        path: path.to_path_buf(),
        err,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A file of the build context (absolute path, opened with `O_NOFOLLOW`).
    File(PathBuf),
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File(Content),
    Dir,
    Symlink(String),
}

/// One entry to write: `name` relative to the source's top (empty: the top itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
}

/// One source after glob expansion: a file (or symlink), or a directory whose contents go.
#[derive(Debug, Clone)]
pub struct Source {
    /// The name the top gets in a directory destination.
    pub base: String,
    /// Where the top is, relative to its root (the context or a stage's `/`).
    pub path: String,
    pub is_dir: bool,
    pub items: Vec<Item>,
}

/// `--chown` and `--chmod`, resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub owner: Option<(u32, u32)>,
    pub mode: Option<Chmod>,
}

impl Overrides {
    /// Sets the owner and mode of `it`.
    pub fn apply(&self, it: &mut Item) {
        if let Some((u, g)) = self.owner {
            it.uid = u;
            it.gid = g;
        }
        // A copied directory's own mode is not changed (BuildKit v0.8 chmods what is in it).
        let dir_itself = matches!(it.kind, Kind::Dir) && it.name.is_empty();
        if let (Some(m), false) = (
            &self.mode,
            matches!(it.kind, Kind::Symlink(_)) || dir_itself,
        ) {
            it.mode = m.apply(it.mode, matches!(it.kind, Kind::Dir));
        }
    }
}

/// A `--chmod`: octal (`755`) or symbolic as chmod(1) (`u=rwx,go=rx`, `+x`, `a+X`, `g+s`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    Octal(u32),
    /// (who: permission bits of the classes named, operator, permissions).
    Symbolic(Vec<(u32, char, String)>),
}

impl Chmod {
    /// The mode of an entry whose mode was `mode`.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let clauses = match self {
            Chmod::Octal(m) => return *m,
            Chmod::Symbolic(c) => c,
        };
        let mut mode = mode & 0o7777;
        for (who, op, perms) in clauses {
            let mut bits = 0;
            for p in perms.chars() {
                bits |= match p {
                    'r' => 0o444 & who,
                    'w' => 0o222 & who,
                    'x' => 0o111 & who,
                    'X' if is_dir || mode & 0o111 != 0 => 0o111 & who,
                    's' => {
                        (if who & 0o700 != 0 { 0o4000 } else { 0 })
                            | (if who & 0o070 != 0 { 0o2000 } else { 0 })
                    }
                    't' if who & 0o007 != 0 => 0o1000,
                    _ => 0,
                };
            }
            match op {
                '+' => mode |= bits,
                '-' => mode &= !bits,
                _ => {
                    let special = (if who & 0o700 != 0 { 0o4000 } else { 0 })
                        | (if who & 0o070 != 0 { 0o2000 } else { 0 });
                    mode = (mode & !(who | special)) | bits;
                }
            }
        }
        mode
    }
}

/// `--chmod=755` or `--chmod=u=rwx,go=rx`.
pub fn parse_chmod(s: &str) -> Result<Chmod> {
    let bad = || FilesError::BadChmod(s.to_string());
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return u32::from_str_radix(s, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .map(Chmod::Octal)
            .ok_or_else(bad);
    }
    let mut clauses = Vec::new();
    for clause in s.split(',') {
        let mut chars = clause.chars().peekable();
        let mut who = 0;
        while let Some(&c) = chars.peek() {
            who |= match c {
                'u' => 0o700,
                'g' => 0o070,
                'o' => 0o007,
                'a' => 0o777,
                _ => break,
            };
            chars.next();
        }
        if who == 0 {
            who = 0o777;
        }
        let mut any = false;
        while let Some(op) = chars.next() {
            if !matches!(op, '+' | '-' | '=') {
                return Err(bad());
            }
            let mut perms = String::new();
            while let Some(&c) = chars.peek() {
                if !"rwxXst".contains(c) {
                    break;
                }
                perms.push(c);
                chars.next();
            }
            clauses.push((who, op, perms));
            any = true;
        }
        if !any {
            return Err(bad());
        }
    }
    Ok(Chmod::Symbolic(clauses))
}

/// `--chown=user[:group]` against the destination's /etc/passwd and /etc/group (read inside
/// `rootfs`); a missing group is the user's uid, as docker does.
pub fn parse_chown(s: &str, rootfs: Option<&Path>) -> Result<(u32, u32)> {
    let (user, group) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let read = |f: &str| -> String {
        let Some(root) = rootfs else {
            return String::new();
        };
        let mut buf = Vec::new();
        if berth_image::copy::archive_path(root, f, true, None, &mut buf).is_err() {
            return String::new();
        }
        let mut a = tar::Archive::new(buf.as_slice());
        let mut out = String::new();
        if let Ok(mut entries) = a.entries()
            && let Some(Ok(mut e)) = entries.next()
        {
            let _ = e.by_ref().take(16 << 20).read_to_string(&mut out);
        }
        out
    };
    let lookup = |file: &str, name: &str| -> Option<u32> {
        read(file).lines().find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(name))
                .then(|| f.nth(1).and_then(|id| id.parse().ok()))
                .flatten()
        })
    };
    // A name without a group takes the user's primary group from passwd (BuildKit); a number
    // without one, the same number.
    let mut primary = None;
    let uid = match user.parse::<u32>() {
        Ok(u) => u,
        Err(_) => {
            let passwd = read("/etc/passwd");
            let entry = passwd
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.first() == Some(&user))
                .ok_or_else(|| FilesError::UnknownUser(user.to_string()))?;
            primary = entry.get(3).and_then(|g| g.parse::<u32>().ok());
            entry
                .get(2)
                .and_then(|u| u.parse::<u32>().ok())
                .ok_or_else(|| FilesError::UnknownUser(user.to_string()))?
        }
    };
    let gid = match group {
        None => primary.unwrap_or(uid),
        Some(g) => match g.parse::<u32>() {
            Ok(g) => g,
            Err(_) => {
                lookup("/etc/group", g).ok_or_else(|| FilesError::UnknownGroup(g.to_string()))?
            }
        },
    };
    Ok((uid, gid))
}

/// `path.Match` on one name: `*`, `?`, `[a-z]`, `[^…]`, `\` escapes.
fn match_component(pat: &[char], name: &[char]) -> bool {
    match pat.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => (0..=name.len()).any(|i| match_component(rest, &name[i..])),
        Some(('?', rest)) => !name.is_empty() && match_component(rest, &name[1..]),
        Some(('[', rest)) => {
            let Some((&c, name_rest)) = name.split_first() else {
                return false;
            };
            let (negate, mut body) = match rest.split_first() {
                Some(('^', b)) => (true, b),
                _ => (false, rest),
            };
            let mut matched = false;
            let mut first = true;
            loop {
                match body.split_first() {
                    None => return false,
                    Some((']', after)) if !first => {
                        body = after;
                        break;
                    }
                    Some((&lo, after)) => {
                        first = false;
                        let (lo, after) = match (lo, after.split_first()) {
                            ('\\', Some((&e, a))) => (e, a),
                            _ => (lo, after),
                        };
                        if let Some(('-', a2)) = after.split_first()
                            && let Some((&hi, a3)) = a2.split_first()
                            && hi != ']'
                        {
                            matched |= lo <= c && c <= hi;
                            body = a3;
                        } else {
                            matched |= lo == c;
                            body = after;
                        }
                    }
                }
            }
            matched != negate && match_component(body, name_rest)
        }
        Some(('\\', rest)) if !rest.is_empty() => {
            name.first() == Some(&rest[0]) && match_component(&rest[1..], &name[1..])
        }
        Some((&p, rest)) => name.first() == Some(&p) && match_component(rest, &name[1..]),
    }
}

/// Whether `path` (slash-separated, clean) matches the glob `pattern` component by component.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let n: Vec<&str> = path.split('/').collect();
    p.len() == n.len()
        && p.iter().zip(&n).all(|(p, n)| {
            let pc: Vec<char> = p.chars().collect();
            let nc: Vec<char> = n.chars().collect();
            match_component(&pc, &nc)
        })
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// A source path as the context sees it: relative, clean, `..` stopped at the top (docker
/// reads `COPY ../x` as `x`). Empty for the context itself.
pub fn clean_source(s: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

fn base_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// The sources a context `COPY`/`ADD` names, from the context's included `entries`.
pub fn context_sources(
    context: &Path,
    entries: &[Entry],
    patterns: &[String],
    ov: &Overrides,
) -> Result<Vec<Source>> {
    let mut out = Vec::new();
    for raw in patterns {
        let pat = clean_source(raw);
        let tops: Vec<&Entry> = if pat.is_empty() {
            Vec::new()
        } else if has_meta(&pat) {
            entries
                .iter()
                .filter(|e| glob_match(&pat, &e.path))
                .collect()
        } else {
            entries.iter().filter(|e| e.path == pat).collect()
        };
        let whole = |base: String| -> Result<Source> {
            let mut items = vec![dir_item(context, "")?];
            for e in entries {
                if let Some(it) = context_item(context, e, &e.path)? {
                    items.push(it);
                }
            }
            items.iter_mut().for_each(|i| ov.apply(i));
            Ok(Source {
                base,
                path: String::new(),
                is_dir: true,
                items,
            })
        };
        if pat.is_empty() {
            out.push(whole(String::new())?);
            continue;
        }
        if tops.is_empty() {
            return Err(FilesError::NotFound(pat));
        }
        for named in tops {
            // A symlink to the context's root (`/`, `..`) copies the whole context, as BuildKit.
            let Some(top) = follow_top(context, entries, named)? else {
                out.push(whole(base_name(&named.path))?);
                continue;
            };
            let mut items = Vec::new();
            let is_dir = top.kind == EntryKind::Dir;
            if is_dir {
                items.push(dir_item(context, &top.path)?);
                let prefix = format!("{}/", top.path);
                for e in entries.iter().filter(|e| e.path.starts_with(&prefix)) {
                    if let Some(it) = context_item(context, e, &e.path[prefix.len()..])? {
                        items.push(it);
                    }
                }
            } else if let Some(it) = context_item(context, top, "")? {
                items.push(it);
            }
            items.iter_mut().for_each(|i| ov.apply(i));
            out.push(Source {
                base: base_name(&named.path),
                path: top.path.clone(),
                is_dir,
                items,
            });
        }
    }
    Ok(out)
}

/// A source named in the instruction that is a symlink is followed, as BuildKit does (what
/// it points to is copied, under the link's name); symlinks inside a copied directory stay
/// symlinks. The target resolves inside the context as if the context were `/`: an absolute
/// target or one climbing out with `..` stays in it, so nothing outside is ever read.
/// None: the link resolves to the context's root.
fn follow_top<'a>(
    context: &Path,
    entries: &'a [Entry],
    named: &'a Entry,
) -> Result<Option<&'a Entry>> {
    let mut cur = named;
    for _ in 0..40 {
        if cur.kind != EntryKind::Symlink {
            return Ok(Some(cur));
        }
        let p = context.join(&cur.rel);
        let t = fs::read_link(&p).map_err(io(&p))?;
        let t = t.to_string_lossy();
        let joined = match (t.starts_with('/'), cur.path.rsplit_once('/')) {
            (false, Some((dir, _))) => format!("{dir}/{t}"),
            _ => t.to_string(),
        };
        let target = clean_source(&joined);
        if target.is_empty() {
            return Ok(None);
        }
        cur = entries
            .iter()
            .find(|e| e.path == target)
            .ok_or_else(|| FilesError::NotFound(format!("{} (a symlink to {t})", named.path)))?;
    }
    Err(FilesError::SymlinkLoop(named.path.clone()))
}

fn dir_item(context: &Path, rel: &str) -> Result<Item> {
    let p = context.join(rel);
    let m = fs::symlink_metadata(&p).map_err(io(&p))?;
    Ok(Item {
        name: String::new(),
        kind: Kind::Dir,
        mode: m.mode() & 0o7777,
        uid: 0,
        gid: 0,
        mtime: m.mtime().max(0) as u64,
    })
}

fn context_item(context: &Path, e: &Entry, name: &str) -> Result<Option<Item>> {
    let p = context.join(&e.rel);
    let m = fs::symlink_metadata(&p).map_err(io(&p))?;
    let kind = match e.kind {
        EntryKind::File => Kind::File(Content::File(p.clone())),
        EntryKind::Dir => Kind::Dir,
        EntryKind::Symlink => {
            let t = fs::read_link(&p).map_err(io(&p))?;
            Kind::Symlink(t.to_string_lossy().into_owned())
        }
        // Sockets, fifos, devices: not copied (BuildKit skips them too).
        EntryKind::Other => return Ok(None),
    };
    Ok(Some(Item {
        name: name.to_string(),
        kind,
        mode: m.mode() & 0o7777,
        uid: 0,
        gid: 0,
        mtime: m.mtime().max(0) as u64,
    }))
}

/// A source read from another filesystem (`COPY --from`): `path` resolved inside `root`.
/// Owners are kept (unless `--chown`).
pub fn rootfs_source(root: &Path, path: &str, ov: &Overrides) -> Result<Source> {
    let clean = format!("/{}", clean_source(path));
    let st = berth_image::copy::stat_in_root(root, &clean, true)?
        .ok_or_else(|| FilesError::NotFound(clean.trim_start_matches('/').to_string()))?;
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let mut buf = Vec::new();
    let what = if is_dir {
        format!("{}/.", clean.trim_end_matches('/'))
    } else {
        clean.clone()
    };
    berth_image::copy::archive_path(root, &what, true, None, &mut buf)?;
    let mut items = Vec::new();
    if is_dir {
        items.push(Item {
            name: String::new(),
            kind: Kind::Dir,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: st.st_mtime.max(0) as u64,
        });
    }
    let tar_err = |e: std::io::Error| FilesError::Io {
        path: root.join(clean.trim_start_matches('/')),
        err: e,
    };
    let mut a = tar::Archive::new(buf.as_slice());
    for e in a.entries().map_err(tar_err)? {
        let mut e = e.map_err(tar_err)?;
        let h = e.header().clone();
        let raw = e.path().map_err(tar_err)?.to_string_lossy().into_owned();
        let rel = clean_source(&raw);
        let name = if is_dir { rel } else { String::new() };
        let kind = match h.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink(
                e.link_name()
                    .map_err(tar_err)?
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut data = Vec::new();
                e.read_to_end(&mut data).map_err(tar_err)?;
                Kind::File(Content::Bytes(data))
            }
            // Hard links, devices, fifos: not copied.
            _ => continue,
        };
        if is_dir && name.is_empty() {
            continue;
        }
        items.push(Item {
            name,
            kind,
            mode: h.mode().unwrap_or(0o644) & 0o7777,
            uid: h.uid().unwrap_or(0) as u32,
            gid: h.gid().unwrap_or(0) as u32,
            mtime: h.mtime().unwrap_or(0),
        });
    }
    items.iter_mut().for_each(|i| ov.apply(i));
    Ok(Source {
        base: base_name(clean.trim_end_matches('/')),
        path: clean_source(&clean),
        is_dir,
        items,
    })
}

/// The sources a `COPY --from` pattern names in `root`: wildcards in its last component
/// matched against that directory's names (none matching is an error, as for the context).
pub fn rootfs_sources(root: &Path, pattern: &str, ov: &Overrides) -> Result<Vec<Source>> {
    let clean = clean_source(pattern);
    let (parent, last) = match clean.rsplit_once('/') {
        Some((p, l)) => (p.to_string(), l.to_string()),
        None => (String::new(), clean.clone()),
    };
    if !has_meta(&last) {
        if has_meta(&parent) {
            return Err(FilesError::Io {
                path: PathBuf::from(pattern),
                err: std::io::Error::other(
                    "wildcards in COPY --from are supported in the last path component only",
                ),
            });
        }
        return Ok(vec![rootfs_source(root, pattern, ov)?]);
    }
    let pat: Vec<char> = last.chars().collect();
    let mut out = Vec::new();
    for name in berth_image::copy::list_in_root(root, &format!("/{parent}"))? {
        let name = name.to_string_lossy().into_owned();
        let chars: Vec<char> = name.chars().collect();
        if match_component(&pat, &chars) {
            out.push(rootfs_source(root, &format!("{parent}/{name}"), ov)?);
        }
    }
    if out.is_empty() {
        return Err(FilesError::NotFound(clean));
    }
    Ok(out)
}

/// `COPY --parents`: the source keeps its path below `pivot` (the part of the pattern before
/// a `/./`, else the root) under the destination directory, its parent directories made
/// (0755, the source's owner).
pub fn with_parents(s: Source, pivot: &str) -> Source {
    let pivot = clean_source(pivot);
    let kept = match s.path.strip_prefix(&pivot) {
        Some(rest) if pivot.is_empty() || rest.is_empty() || rest.starts_with('/') => {
            rest.trim_start_matches('/').to_string()
        }
        _ => s.path.clone(),
    };
    if kept.is_empty() {
        return s;
    }
    let owner = s.items.first().map(|i| (i.uid, i.gid)).unwrap_or((0, 0));
    let mut items = Vec::new();
    let comps: Vec<&str> = kept.split('/').collect();
    for i in 1..comps.len() {
        items.push(Item {
            name: comps[..i].join("/"),
            kind: Kind::Dir,
            mode: 0o755,
            uid: owner.0,
            gid: owner.1,
            mtime: 0,
        });
    }
    for mut it in s.items {
        it.name = if it.name.is_empty() {
            kept.clone()
        } else {
            format!("{kept}/{}", it.name)
        };
        items.push(it);
    }
    Source {
        base: s.base,
        path: s.path,
        is_dir: true,
        items,
    }
}

/// `COPY --exclude=PATTERN`: sources and items whose path below the source (a lone file: its
/// name) the patterns exclude are left out (`.dockerignore` semantics: a pattern excludes a
/// directory's contents too).
pub fn exclude(sources: &mut Vec<Source>, m: &crate::dockerignore::Matcher) {
    sources.retain(|s| s.is_dir || !m.is_excluded(&s.base, false));
    for s in sources.iter_mut().filter(|s| s.is_dir) {
        s.items
            .retain(|it| it.name.is_empty() || !m.is_excluded(&it.name, false));
    }
}

/// A `COPY <<EOF /dest` source.
pub fn heredoc_source(name: &str, content: &str, ov: &Overrides) -> Source {
    let mut it = Item {
        name: String::new(),
        kind: Kind::File(Content::Bytes(content.as_bytes().to_vec())),
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
    };
    ov.apply(&mut it);
    Source {
        base: name.to_string(),
        path: name.to_string(),
        is_dir: false,
        items: vec![it],
    }
}

fn open_file(p: &Path) -> Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)
        .map_err(io(p))
}

/// The content key of `sources` going to `dest`.
pub fn digest(dest: &str, sources: &[Source]) -> Result<Digest> {
    let mut h = KeyHasher::new("files");
    h.str(dest);
    for s in sources {
        h.str(&s.base).field(&[s.is_dir as u8]);
        for it in &s.items {
            h.str(&it.name)
                .field(&it.mode.to_le_bytes())
                .field(&it.uid.to_le_bytes())
                .field(&it.gid.to_le_bytes());
            match &it.kind {
                Kind::Dir => {
                    h.str("dir");
                }
                Kind::Symlink(t) => {
                    h.str("symlink").str(t);
                }
                Kind::File(Content::Bytes(b)) => {
                    h.str("file")
                        .field(Digest::sha256(b).to_string().as_bytes());
                }
                Kind::File(Content::File(p)) => {
                    let mut f = open_file(p)?;
                    let mut fh = berth_image::digest::Hasher::new(berth_image::Algorithm::Sha256);
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = f.read(&mut buf).map_err(io(p))?;
                        if n == 0 {
                            break;
                        }
                        fh.update(&buf[..n]);
                    }
                    h.str("file").field(fh.finish().to_string().as_bytes());
                }
            }
        }
    }
    Ok(h.finish())
}

/// Where the items go: the directory they are extracted under (the deepest ancestor of the
/// destination that exists, resolved in the root) and the tar to extract there.
pub struct Placement<W> {
    pub under: String,
    pub tar: W,
    /// Nothing to extract (no missing directory, no item).
    pub empty: bool,
}

/// `path` with its symlinks resolved inside `root` as if it were `/` (absolute targets and
/// `..` stay in it); after 40 links, `path` as it stands. Only names already resolved (no
/// symlinks) are walked on the host, the last one with lstat.
fn resolve_in_root(root: &Path, path: &str) -> String {
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(str::to_string)
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let here = root.join(done.join("/")).join(&c);
        match fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                // Never walk a host path through a link: too many, and the path stands.
                if links == 40 {
                    return path.to_string();
                }
                links += 1;
                let Ok(t) = fs::read_link(&here) else {
                    done.push(c);
                    continue;
                };
                let t = t.to_string_lossy().into_owned();
                if t.starts_with('/') {
                    done.clear();
                }
                todo.extend(
                    t.split('/')
                        .filter(|c| !c.is_empty())
                        .rev()
                        .map(str::to_string),
                );
            }
            _ => done.push(c),
        }
    }
    format!("/{}", done.join("/"))
}

/// Lays `sources` out at `dest` (absolute; a trailing `/` kept) in `rootfs` by docker's rules
/// and writes the tar to `out` (a file for real copies: sources can be large). `dest_owner`:
/// the owner of the destination directories this creates, parents too (`--chown`, WORKDIR's
/// user), else root.
pub fn place<W: std::io::Write>(
    rootfs: &Path,
    dest: &str,
    sources: &[Source],
    dest_owner: Option<(u32, u32)>,
    out: W,
) -> Result<Placement<W>> {
    let exists_dir = |p: &str| -> Result<Option<bool>> {
        Ok(berth_image::copy::stat_in_root(rootfs, p, true)?
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR))
    };
    let mut clean = format!("/{}", clean_source(dest));
    // A destination that is a symlink to a file is written through, as BuildKit does (the
    // link resolved inside the root).
    if !dest.ends_with('/')
        && berth_image::copy::stat_in_root(rootfs, &clean, false)?
            .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
    {
        clean = resolve_in_root(rootfs, &clean);
    }
    let dest_is_dir = dest.ends_with('/')
        || dest.ends_with("/.")
        || clean == "/"
        || sources.iter().any(|s| s.is_dir)
        || exists_dir(&clean)? == Some(true);
    if sources.len() > 1 && !dest_is_dir {
        return Err(FilesError::MultipleSources);
    }
    // The directory that receives the items, and the name a lone file gets.
    let (dir, file_name) = if dest_is_dir {
        (clean.clone(), None)
    } else {
        let (parent, name) = clean.rsplit_once('/').unwrap_or(("", &clean));
        (
            if parent.is_empty() {
                "/".to_string()
            } else {
                parent.to_string()
            },
            Some(name.to_string()),
        )
    };
    // Deepest existing ancestor of `dir`.
    let comps: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
    let mut depth = comps.len();
    loop {
        let p = format!("/{}", comps[..depth].join("/"));
        match exists_dir(&p)? {
            Some(true) => break,
            Some(false) if depth == comps.len() => {
                return Err(FilesError::Io {
                    path: PathBuf::from(&p),
                    err: std::io::Error::other("the destination is not a directory"),
                });
            }
            _ => {}
        }
        if depth == 0 {
            break;
        }
        depth -= 1;
    }
    let under = format!("/{}", comps[..depth].join("/"));
    let missing: Vec<&str> = comps[depth..].to_vec();
    let mut b = tar::Builder::new(out);
    let mut empty = true;
    let io_err = |e| FilesError::Io {
        path: PathBuf::from(dest),
        err: e,
    };
    let mut prefix = String::new();
    let dir_source = sources.iter().find(|s| s.is_dir);
    for (i, m) in missing.iter().enumerate() {
        prefix = if prefix.is_empty() {
            m.to_string()
        } else {
            format!("{prefix}/{m}")
        };
        let last = i + 1 == missing.len();
        // The destination itself takes a directory source's mode; parents are 0755.
        let top = dir_source
            .filter(|_| last)
            .and_then(|s| s.items.iter().find(|it| it.name.is_empty()));
        // Every directory made gets the owner (BuildKit's MkdirAll with the user).
        let (uid, gid) = dest_owner.unwrap_or((0, 0));
        let it = Item {
            name: String::new(),
            kind: Kind::Dir,
            mode: top.map_or(0o755, |t| t.mode),
            uid,
            gid,
            mtime: top.map_or(0, |t| t.mtime),
        };
        append(&mut b, &prefix, &it).map_err(io_err)?;
        empty = false;
    }
    let join = |name: &str| -> String {
        match (prefix.is_empty(), name.is_empty()) {
            (true, _) => name.to_string(),
            (false, true) => prefix.clone(),
            (false, false) => format!("{prefix}/{name}"),
        }
    };
    for s in sources {
        for it in &s.items {
            let name = if s.is_dir {
                if it.name.is_empty() {
                    continue; // the destination directory itself (made above or existing)
                }
                it.name.clone()
            } else if let Some(f) = &file_name {
                f.clone()
            } else {
                s.base.clone()
            };
            append(&mut b, &join(&name), it).map_err(io_err)?;
            empty = false;
        }
    }
    let tar = b.into_inner().map_err(io_err)?;
    Ok(Placement { under, tar, empty })
}

fn append<W: std::io::Write>(
    b: &mut tar::Builder<W>,
    path: &str,
    it: &Item,
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_mode(it.mode);
    h.set_uid(it.uid as u64);
    h.set_gid(it.gid as u64);
    h.set_mtime(it.mtime);
    match &it.kind {
        Kind::Dir => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, format!("{path}/"), std::io::empty())
        }
        Kind::Symlink(t) => {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            berth_image::diff::append_symlink(b, &mut h, path, t)
        }
        Kind::File(Content::Bytes(data)) => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, data.as_slice())
        }
        Kind::File(Content::File(p)) => {
            let f = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(p)?;
            let len = f.metadata()?.len();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(len);
            b.append_data(&mut h, path, f.take(len))
        }
    }
}

/// Whether the file is a tar archive (plain, gzip or zstd) `ADD` unpacks.
pub fn is_archive(p: &Path) -> bool {
    let mut rd: Box<dyn Read> = match packed(p) {
        Some(Packed::Xz) => {
            // The first 512 bytes decoded, then the decoder is stopped.
            let Ok(f) = open_file(p) else {
                return false;
            };
            let mut head = Head(Vec::new());
            let _ = lzma_rs::xz_decompress(&mut std::io::BufReader::new(f), &mut head);
            Box::new(std::io::Cursor::new(head.0))
        }
        Some(Packed::Bzip2) => match open_file(p) {
            Ok(f) => Box::new(bzip2_rs::DecoderReader::new(f)),
            Err(_) => return false,
        },
        None => {
            let Ok(f) = open_file(p) else {
                return false;
            };
            match berth_image::layer::decompress(f) {
                Ok((_, rd)) => rd,
                Err(_) => return false,
            }
        }
    };
    let mut head = vec![0u8; 512];
    let mut got = 0;
    while got < head.len() {
        match rd.read(&mut head[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got == 512 && (&head[257..262] == b"ustar")
}

/// The compressions ADD unpacks beyond berth-image's gzip and zstd (docker's
/// DecompressStream has all four).
enum Packed {
    Bzip2,
    Xz,
}

fn packed(p: &Path) -> Option<Packed> {
    let mut f = open_file(p).ok()?;
    let mut m = [0u8; 6];
    f.read_exact(&mut m).ok()?;
    if m.starts_with(b"BZh") {
        Some(Packed::Bzip2)
    } else if m == [0xfd, b'7', b'z', b'X', b'Z', 0] {
        Some(Packed::Xz)
    } else {
        None
    }
}

/// Keeps the first 512 bytes written, then refuses more (stops a decoder early).
struct Head(Vec<u8>);

impl std::io::Write for Head {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let room = 512 - self.0.len();
        if room == 0 {
            return Err(std::io::Error::other("enough"));
        }
        let n = room.min(b.len());
        self.0.extend_from_slice(&b[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The tar inside the local archive `p` that ADD unpacks: plain, gzip, zstd, bzip2 or xz.
/// An xz archive is decoded first into `scratch` (a file in the step's directory).
pub fn archive_reader(p: &Path, scratch: &Path) -> Result<Box<dyn Read>> {
    let f = open_file(p)?;
    match packed(p) {
        Some(Packed::Bzip2) => Ok(Box::new(std::io::BufReader::new(
            bzip2_rs::DecoderReader::new(f),
        ))),
        Some(Packed::Xz) => {
            let mut out = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(scratch)
                .map_err(io(scratch))?;
            {
                let mut w = std::io::BufWriter::new(&mut out);
                lzma_rs::xz_decompress(&mut std::io::BufReader::new(f), &mut w).map_err(|e| {
                    FilesError::Io {
                        path: p.to_path_buf(),
                        err: std::io::Error::other(format!("xz: {e}")),
                    }
                })?;
                std::io::Write::flush(&mut w).map_err(io(scratch))?;
            }
            std::io::Seek::rewind(&mut out).map_err(io(scratch))?;
            Ok(Box::new(std::io::BufReader::new(out)))
        }
        None => Ok(berth_image::layer::decompress(f)?.1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "d/a.txt"));
        assert!(glob_match("d/*.txt", "d/a.txt"));
        assert!(glob_match("file?", "file1"));
        assert!(!glob_match("file?", "file10"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[^a-c]x", "bx"));
        assert!(glob_match("a\\*", "a*"));
        assert!(!glob_match("a\\*", "ab"));
    }

    #[test]
    fn sources_are_cleaned_inside_the_context() {
        assert_eq!(clean_source("../x"), "x");
        assert_eq!(clean_source("/a/./b/"), "a/b");
        assert_eq!(clean_source("."), "");
        assert_eq!(clean_source("a/../../.."), "");
    }

    #[test]
    fn chmod_and_chown() {
        assert_eq!(parse_chmod("755").ok(), Some(Chmod::Octal(0o755)));
        assert!(parse_chmod("99").is_err());
        assert!(parse_chmod("u*x").is_err());
        let m = |spec: &str, mode: u32, dir: bool| {
            parse_chmod(spec)
                .unwrap_or_else(|e| panic!("{spec}: {e}"))
                .apply(mode, dir)
        };
        assert_eq!(m("u+x", 0o644, false), 0o744);
        assert_eq!(m("+x", 0o644, false), 0o755);
        assert_eq!(m("go-w", 0o666, false), 0o644);
        assert_eq!(m("u=rwx,go=rx", 0o600, false), 0o755);
        assert_eq!(m("a+X", 0o644, true), 0o755);
        assert_eq!(m("a+X", 0o644, false), 0o644);
        assert_eq!(m("g+s,o+t", 0o755, true), 0o3755);
        assert_eq!(m("u=r", 0o4755, false), 0o455);
        assert_eq!(parse_chown("10", None).ok(), Some((10, 10)));
        assert_eq!(parse_chown("10:20", None).ok(), Some((10, 20)));
        assert!(matches!(
            parse_chown("nobody", None),
            Err(FilesError::UnknownUser(_))
        ));
    }

    fn context() -> (tempfile::TempDir, Vec<Entry>) {
        let t = tempfile::tempdir().expect("tempdir");
        fs::create_dir(t.path().join("d")).expect("mkdir");
        fs::write(t.path().join("d/a.txt"), "a").expect("write");
        fs::write(t.path().join("b.txt"), "b").expect("write");
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("link")).expect("symlink");
        let entries = crate::dockerignore::walk(t.path(), &Default::default()).expect("walk");
        (t, entries)
    }

    #[test]
    fn content_digest_ignores_mtimes_not_bytes() {
        let (t, entries) = context();
        let ov = Overrides::default();
        let pats = vec!["d".to_string(), "b.txt".to_string()];
        let s = context_sources(t.path(), &entries, &pats, &ov).expect("sources");
        let d1 = digest("/x/", &s).expect("digest");
        let f = fs::File::options()
            .write(true)
            .open(t.path().join("b.txt"))
            .expect("open");
        f.set_modified(std::time::SystemTime::UNIX_EPOCH)
            .expect("mtime");
        let s = context_sources(t.path(), &entries, &pats, &ov).expect("sources");
        assert_eq!(digest("/x/", &s).expect("digest"), d1);
        fs::write(t.path().join("b.txt"), "c").expect("write");
        assert_ne!(digest("/x/", &s).expect("digest"), d1);
        // Owners count.
        let ov = Overrides {
            owner: Some((1, 1)),
            mode: None,
        };
        let s2 = context_sources(t.path(), &entries, &pats, &ov).expect("sources");
        assert_ne!(
            digest("/x/", &s2).expect("digest"),
            digest("/x/", &s).expect("d")
        );
    }

    #[test]
    fn missing_sources_and_symlinks() {
        let (t, entries) = context();
        let ov = Overrides::default();
        match context_sources(t.path(), &entries, &["nope".to_string()], &ov) {
            Err(e) => assert_eq!(e.to_string(), "\"/nope\": not found"),
            Ok(_) => panic!("a missing source must fail"),
        }
        // A named symlink is followed inside the context (as if it were `/`): one pointing
        // out of it finds nothing there, and nothing outside is read.
        match context_sources(t.path(), &entries, &["link".to_string()], &ov) {
            Err(e) => assert_eq!(
                e.to_string(),
                "\"/link (a symlink to /etc/passwd)\": not found"
            ),
            Ok(s) => panic!("followed out of the context: {:?}", s[0].items),
        }
        let s = context_sources(t.path(), &entries, &["*.txt".to_string()], &ov).expect("glob");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].base, "b.txt");
    }

    #[test]
    fn placement_follows_docker_rules() {
        let (t, entries) = context();
        let root = tempfile::tempdir().expect("root");
        fs::create_dir(root.path().join("etc")).expect("etc");
        let ov = Overrides::default();
        let names = |p: &Placement<Vec<u8>>| -> Vec<String> {
            let mut a = tar::Archive::new(p.tar.as_slice());
            a.entries()
                .expect("entries")
                .map(|e| {
                    e.expect("entry")
                        .path()
                        .expect("path")
                        .to_string_lossy()
                        .into_owned()
                })
                .collect()
        };
        let file = context_sources(t.path(), &entries, &["b.txt".to_string()], &ov).expect("s");
        // An existing directory receives the file under its name.
        let p = place(root.path(), "/etc", &file, None, Vec::new()).expect("place");
        assert_eq!(
            (p.under.as_str(), names(&p)),
            ("/etc", vec!["b.txt".into()])
        );
        // A new name is the file's name.
        let p = place(root.path(), "/etc/renamed", &file, None, Vec::new()).expect("place");
        assert_eq!(names(&p), vec!["renamed".to_string()]);
        // A trailing slash makes (missing) directories.
        let p = place(root.path(), "/new/sub/", &file, None, Vec::new()).expect("place");
        assert_eq!(p.under, "/");
        assert_eq!(names(&p), vec!["new/", "new/sub/", "new/sub/b.txt"]);
        // A directory source copies its contents.
        let dir = context_sources(t.path(), &entries, &["d".to_string()], &ov).expect("s");
        let p = place(root.path(), "/etc", &dir, None, Vec::new()).expect("place");
        assert_eq!(names(&p), vec!["a.txt".to_string()]);
        // Several sources need a directory.
        let two = context_sources(
            t.path(),
            &entries,
            &["b.txt".to_string(), "d/a.txt".to_string()],
            &ov,
        )
        .expect("s");
        assert!(matches!(
            place(root.path(), "/nodir", &two, None, Vec::new()),
            Err(FilesError::MultipleSources)
        ));
    }
}

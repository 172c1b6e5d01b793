//! `.dockerignore` as docker reads it (moby's `patternmatcher` and `patternmatcher/ignorefile`).
//!
//! Reading: a line starting with `#` in column 1 is a comment; lines are trimmed and blank ones
//! skipped; `!` marks an exception; patterns are cleaned like Go's `filepath.Clean` (`./a` → `a`,
//! `a//b/` → `a/b`, `a/../b` → `b`) and a leading `/` is dropped.
//!
//! Matching: `*` is any run of characters but `/`, `?` one character but `/`, `[...]` a class
//! (`^` negates), `\` escapes, `**` any number of directories (zero included). A pattern that
//! matches a directory matches everything under it. Patterns apply in order and the last one
//! that matches decides (`!` re-includes).
//!
//! The walker ([`walk`]) never follows symlinks (they are yielded as symlinks) and so never
//! reads outside the context; an excluded directory is only entered when an exception could
//! re-include something inside it.
//!
//! The Dockerfile and the ignore file: BuildKit receives the Dockerfile on its own, so it is
//! always available to the build even when the ignore file lists it; but a listed Dockerfile or
//! `.dockerignore` is not in the context, so `COPY` cannot read it (the reference: "These files
//! are still sent to the daemon because it needs them to do its job. But the ADD and COPY
//! instructions do not copy them to the image."). [`IgnoreFile::find`] picks
//! `<Dockerfile>.dockerignore` beside the Dockerfile over the context's `.dockerignore`.

use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    #[error("illegal exclusion pattern: \"!\" (line {line})")]
    BareExclusion { line: usize },
    #[error("syntax error in pattern \"{pattern}\" (line {line})")]
    BadPattern { pattern: String, line: usize },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One pattern of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The cleaned pattern, without `!`.
    pub text: String,
    pub exclusion: bool,
    pub line: usize,
    tokens: Vec<Token>,
    /// moby's `suffixMatch`: a leading `**` followed only by literal characters is a plain
    /// suffix test (`**file` matches `myfile`; `**/dir` matches `a/dir` and `dir`).
    suffix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `*`: anything but `/`.
    Star,
    /// `?`: one character but `/`.
    One,
    /// `**/` or `**` inside: `(.*/)?`.
    AnyDirs,
    /// `**` at the end: `.*`.
    AnyRest,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

impl Pattern {
    fn compile(text: &str, exclusion: bool, line: usize) -> Result<Pattern, IgnoreError> {
        let chars: Vec<char> = text.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        let bad = || IgnoreError::BadPattern {
            pattern: text.to_string(),
            line,
        };
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' if chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    tokens.push(if i >= chars.len() {
                        Token::AnyRest
                    } else {
                        Token::AnyDirs
                    });
                }
                '*' => tokens.push(Token::Star),
                '?' => tokens.push(Token::One),
                '\\' => match chars.get(i) {
                    Some(&n) => {
                        tokens.push(Token::Char(n));
                        i += 1;
                    }
                    // A trailing backslash is a bad pattern for Go's filepath.Match.
                    None => return Err(bad()),
                },
                '[' => {
                    // Go's filepath.Match class rules: `^` negates; an endpoint may be escaped
                    // but may not be an unescaped `-` or `]`; a class is never empty.
                    let negated = chars.get(i) == Some(&'^');
                    if negated {
                        i += 1;
                    }
                    let endpoint = |i: &mut usize| -> Result<char, IgnoreError> {
                        match chars.get(*i) {
                            None | Some('-' | ']') => Err(bad()),
                            Some('\\') => {
                                let c = *chars.get(*i + 1).ok_or_else(bad)?;
                                *i += 2;
                                Ok(c)
                            }
                            Some(&c) => {
                                *i += 1;
                                Ok(c)
                            }
                        }
                    };
                    let mut items = Vec::new();
                    loop {
                        if chars.get(i) == Some(&']') && !items.is_empty() {
                            i += 1;
                            break;
                        }
                        let lo = endpoint(&mut i)?;
                        let mut hi = lo;
                        if chars.get(i) == Some(&'-') {
                            i += 1;
                            hi = endpoint(&mut i)?;
                            if hi < lo {
                                return Err(bad());
                            }
                        }
                        items.push((lo, hi));
                    }
                    tokens.push(Token::Class { negated, items });
                }
                c => tokens.push(Token::Char(c)),
            }
        }
        let suffix = text
            .strip_prefix("**")
            .filter(|rest| !rest.contains(['*', '?', '[', ']', '\\']))
            .map(str::to_string);
        Ok(Pattern {
            suffix,
            text: text.to_string(),
            exclusion,
            line,
            tokens,
        })
    }

    /// Whether the pattern matches exactly this path (`/`-separated, cleaned, relative).
    pub fn matches(&self, path: &str) -> bool {
        if let Some(suffix) = &self.suffix {
            return path.ends_with(suffix.as_str()) || suffix.strip_prefix('/') == Some(path);
        }
        let p: Vec<char> = path.chars().collect();
        match_tokens(&self.tokens, &p)
    }

    /// Whether the pattern could match something below directory `dir` (used to decide
    /// whether an excluded directory must still be walked for this exception).
    fn could_match_inside(&self, dir: &str) -> bool {
        let prefix: Vec<char> = format!("{dir}/").chars().collect();
        could_prefix(&self.tokens, &prefix)
    }
}

fn match_tokens(t: &[Token], s: &[char]) -> bool {
    match t.first() {
        None => s.is_empty(),
        Some(Token::AnyRest) => true,
        Some(Token::AnyDirs) => {
            if match_tokens(&t[1..], s) {
                return true;
            }
            // (.*/)? : any prefix that ends in '/'.
            (0..s.len()).any(|k| s[k] == '/' && match_tokens(&t[1..], &s[k + 1..]))
        }
        Some(Token::Star) => {
            let mut k = 0;
            loop {
                if match_tokens(&t[1..], &s[k..]) {
                    return true;
                }
                if k >= s.len() || s[k] == '/' {
                    return false;
                }
                k += 1;
            }
        }
        Some(tok) => {
            let Some(&c) = s.first() else { return false };
            let ok = match tok {
                Token::Char(x) => *x == c,
                Token::One => c != '/',
                Token::Class { negated, items } => {
                    items.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                }
                _ => false,
            };
            ok && match_tokens(&t[1..], &s[1..])
        }
    }
}

/// Whether some string starting with `s` could be matched by `t`.
fn could_prefix(t: &[Token], s: &[char]) -> bool {
    if s.is_empty() {
        return true;
    }
    match t.first() {
        None => false,
        Some(Token::AnyRest) | Some(Token::AnyDirs) => true,
        Some(Token::Star) => {
            let mut k = 0;
            loop {
                if could_prefix(&t[1..], &s[k..]) {
                    return true;
                }
                if k >= s.len() || s[k] == '/' {
                    return k >= s.len();
                }
                k += 1;
            }
        }
        Some(tok) => {
            let c = s[0];
            let ok = match tok {
                Token::Char(x) => *x == c,
                Token::One => c != '/',
                Token::Class { negated, items } => {
                    items.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                }
                _ => false,
            };
            ok && could_prefix(&t[1..], &s[1..])
        }
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// The patterns of a `.dockerignore`, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    pub patterns: Vec<Pattern>,
}

impl Matcher {
    /// Reads the text of an ignore file.
    pub fn parse(text: &str) -> Result<Matcher, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            if raw.starts_with('#') {
                continue;
            }
            let mut p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
                if p.is_empty() {
                    return Err(IgnoreError::BareExclusion { line });
                }
            }
            let mut cleaned = clean(p);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            patterns.push(Pattern::compile(&cleaned, exclusion, line)?);
        }
        Ok(Matcher { patterns })
    }

    /// Builds a matcher from patterns as `--exclude` or an API gives them.
    pub fn from_patterns<S: AsRef<str>>(list: &[S]) -> Result<Matcher, IgnoreError> {
        let text: Vec<&str> = list.iter().map(AsRef::as_ref).collect();
        Matcher::parse(&text.join("\n"))
    }

    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` (relative to the context, `/`-separated) is left out of the context. A
    /// pattern matches the path or any of its parent directories; the last one that matches
    /// decides. `is_dir` is accepted for callers that know it; docker's rules do not depend on
    /// it (a trailing `/` in a pattern is cleaned away).
    pub fn is_excluded(&self, path: &str, _is_dir: bool) -> bool {
        let path = clean(path.trim_start_matches('/'));
        if path == "." {
            return false;
        }
        let parents: Vec<&str> = path.split('/').collect();
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(&path);
            if !hit {
                for i in 1..parents.len() {
                    if pattern.matches(&parents[..i].join("/")) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// Whether an excluded directory must still be walked: an exception could re-include
    /// something inside it.
    pub fn must_walk_excluded_dir(&self, dir: &str) -> bool {
        let dir = clean(dir);
        self.patterns
            .iter()
            .any(|p| p.exclusion && p.could_match_inside(&dir))
    }
}

/// Which ignore file applies to a build.
#[derive(Debug, Clone)]
pub struct IgnoreFile {
    /// The file read, if any.
    pub path: Option<PathBuf>,
    pub matcher: Matcher,
}

impl IgnoreFile {
    /// `<Dockerfile>.dockerignore` beside the Dockerfile wins over `<context>/.dockerignore`;
    /// neither existing means nothing is ignored.
    pub fn find(context: &Path, dockerfile: Option<&Path>) -> Result<IgnoreFile, IgnoreError> {
        let mut candidates = Vec::new();
        if let Some(df) = dockerfile
            && let Some(name) = df.file_name()
        {
            let mut n = name.to_os_string();
            n.push(".dockerignore");
            candidates.push(df.with_file_name(n));
        }
        candidates.push(context.join(".dockerignore"));
        for path in candidates {
            match fs::read_to_string(&path) {
                Ok(text) => {
                    return Ok(IgnoreFile {
                        matcher: Matcher::parse(&text)?,
                        path: Some(path),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(IgnoreError::Io { path, source }),
            }
        }
        Ok(IgnoreFile {
            path: None,
            matcher: Matcher::default(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// Sockets, fifos, devices: yielded so the caller can refuse or skip them.
    Other,
}

/// An included entry of the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the context, `/`-separated, as matched against the patterns (a name that is
    /// not UTF-8 is converted lossily here).
    pub path: String,
    /// The real relative path, to open the entry with.
    pub rel: PathBuf,
    pub kind: EntryKind,
}

/// The included entries of `root`, sorted by name at each level, parents before children. A
/// directory that is excluded but holds re-included entries is yielded too (they need it).
/// Symlinks are yielded as symlinks and never followed, so nothing outside `root` is read (a
/// directory swapped for a symlink while the walk runs is the caller's to guard against, with
/// `openat`-style access, when it copies).
pub fn walk(root: &Path, matcher: &Matcher) -> Result<Vec<Entry>, IgnoreError> {
    let mut out = Vec::new();
    walk_dir(root, Path::new(""), "", matcher, &mut out)?;
    Ok(out)
}

fn walk_dir(
    root: &Path,
    rel: &Path,
    rel_str: &str,
    matcher: &Matcher,
    out: &mut Vec<Entry>,
) -> Result<bool, IgnoreError> {
    let dir = root.join(rel);
    let io = |source| IgnoreError::Io {
        path: dir.clone(),
        source,
    };
    let mut entries: Vec<(std::ffi::OsString, fs::FileType)> = Vec::new();
    for e in fs::read_dir(&dir).map_err(io)? {
        let e = e.map_err(io)?;
        // DirEntry::file_type does not follow symlinks.
        let ft = e.file_type().map_err(io)?;
        entries.push((e.file_name(), ft));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut any = false;
    for (name, ft) in entries {
        let lossy = name.to_string_lossy();
        let path = if rel_str.is_empty() {
            lossy.into_owned()
        } else {
            format!("{rel_str}/{lossy}")
        };
        let rel_path = rel.join(&name);
        let excluded = matcher.is_excluded(&path, ft.is_dir());
        if ft.is_dir() {
            if excluded && !matcher.must_walk_excluded_dir(&path) {
                continue;
            }
            let at = out.len();
            out.push(Entry {
                path: path.clone(),
                rel: rel_path.clone(),
                kind: EntryKind::Dir,
            });
            let inner = walk_dir(root, &rel_path, &path, matcher, out)?;
            if excluded && !inner {
                out.truncate(at);
                continue;
            }
            any = true;
        } else if !excluded {
            let kind = if ft.is_symlink() {
                EntryKind::Symlink
            } else if ft.is_file() {
                EntryKind::File
            } else {
                EntryKind::Other
            };
            out.push(Entry {
                path,
                rel: rel_path,
                kind,
            });
            any = true;
        }
    }
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Matcher {
        Matcher::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn clean_like_go() {
        assert_eq!(clean("./a/b/"), "a/b");
        assert_eq!(clean("a//b/./c/.."), "a/b");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("../a"), "../a");
        assert_eq!(clean(""), ".");
    }

    #[test]
    fn reference_examples() {
        // The reference's example file.
        let x = m("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
        assert!(x.is_excluded("somedir/temporary.txt", false));
        assert!(x.is_excluded("somedir/temp", true));
        assert!(x.is_excluded("somedir/subdir/temporary.txt", false));
        assert!(x.is_excluded("tempa", false));
        assert!(!x.is_excluded("temp", false));
        assert!(!x.is_excluded("temporary.txt", false));
        assert!(!x.is_excluded("a/b/c/temp", false));
        assert_eq!(x.patterns.len(), 3);
    }

    #[test]
    fn double_star() {
        let x = m("**/*.go");
        assert!(x.is_excluded("main.go", false));
        assert!(x.is_excluded("a/b/c.go", false));
        assert!(!x.is_excluded("a/b/c.gox", false));
        let y = m("a/**/b");
        assert!(y.is_excluded("a/b", true));
        assert!(y.is_excluded("a/x/y/b", true));
        assert!(y.is_excluded("a/x/b/file", false));
        assert!(!y.is_excluded("ab", false));
        let z = m("dir/**");
        assert!(z.is_excluded("dir/x/y", false));
        assert!(m("**").is_excluded("anything/at/all", false));
    }

    #[test]
    fn exceptions_last_match_wins() {
        let a = m("*.md\n!README*.md\nREADME-secret.md");
        assert!(a.is_excluded("CHANGES.md", false));
        assert!(!a.is_excluded("README.md", false));
        assert!(a.is_excluded("README-secret.md", false));
        let b = m("*.md\nREADME-secret.md\n!README*.md");
        assert!(!b.is_excluded("README-secret.md", false));
        assert!(b.is_excluded("other.md", false));
        let c = m("*\n!src\n");
        assert!(c.is_excluded("target", true));
        assert!(!c.is_excluded("src/main.rs", false));
    }

    #[test]
    fn leading_slash_dot_and_trailing_slash() {
        let x = m("/foo/bar\n./baz/\nqux/");
        assert!(x.is_excluded("foo/bar", true));
        assert!(x.is_excluded("foo/bar/inner.txt", false));
        assert!(!x.is_excluded("x/foo/bar", false));
        assert!(x.is_excluded("baz", true));
        assert!(x.is_excluded("qux/file", false));
        assert!(x.is_excluded("/foo/bar", true));
    }

    #[test]
    fn classes_escapes_question() {
        let x = m("file[0-9].txt\n[^a]x\nq\\*\nh?llo");
        assert!(x.is_excluded("file3.txt", false));
        assert!(!x.is_excluded("filea.txt", false));
        assert!(x.is_excluded("bx", false));
        assert!(!x.is_excluded("ax", false));
        assert!(x.is_excluded("q*", false));
        assert!(!x.is_excluded("qq", false));
        assert!(x.is_excluded("hello", false));
        assert!(!x.is_excluded("h/llo", false));
        assert!(m("*").is_excluded("a/b", false));
    }

    /// moby/patternmatcher's `TestMatches` (through parent matching, as docker applies it),
    /// its multi-pattern cases and Go's `filepath.Match` cases it borrows, checked as behaviour.
    #[test]
    fn patternmatcher_vectors() {
        let single: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "file/", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**/**", "dir/file", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/dir2/file/", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/*", "dir/dir2/file/", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/*.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            ("a\\\\", "a\\", true),
            ("a\\*b", "a*b", true),
            // Go's filepath.Match cases.
            ("*c", "abc", true),
            ("a*", "ab/c", true),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[^c]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "a", false),
            ("*x", "xxx", true),
        ];
        for (pattern, path, want) in single {
            assert_eq!(
                m(pattern).is_excluded(path, false),
                *want,
                "pattern {pattern:?} path {path:?}"
            );
        }
        assert!(!m("**\n!util/docker/web").is_excluded("util/docker/web/foo", false));
        assert!(
            m("**\n!util/docker/web\nutil/docker/web/foo")
                .is_excluded("util/docker/web/foo", false)
        );
        assert!(!m("**\n!dist/*.whl").is_excluded(
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            false
        ));
        assert!(!m("docs\n!docs/README.md").is_excluded("docs/README.md", false));
        assert!(!m("docs/\n!docs/README.md").is_excluded("docs/README.md", false));
        assert!(m("!fileutils.go\n*.go").is_excluded("fileutils.go", false));
        assert!(!m("*.go").is_excluded(".", true));
        for bad in [
            "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[",
        ] {
            assert!(
                Matcher::parse(bad).is_err(),
                "{bad:?} must be a bad pattern"
            );
        }
        // The suffix quirk of a leading ** followed by literals.
        assert!(m("**file").is_excluded("dir/myfile", false));
    }

    #[test]
    fn comments_blanks_and_errors() {
        let x = m("\n   \n# *.txt\n  #notacomment\n");
        assert_eq!(x.patterns.len(), 1);
        assert_eq!(x.patterns[0].text, "#notacomment");
        assert!(matches!(
            Matcher::parse("a\n!\n"),
            Err(IgnoreError::BareExclusion { line: 2 })
        ));
        assert!(matches!(
            Matcher::parse("[abc"),
            Err(IgnoreError::BadPattern { line: 1, .. })
        ));
        assert!(matches!(
            Matcher::parse("x\n[z-a]"),
            Err(IgnoreError::BadPattern { line: 2, .. })
        ));
    }

    #[test]
    fn excluded_dir_walked_only_for_exceptions() {
        let x = m("node_modules\n!node_modules/keep\n");
        assert!(x.must_walk_excluded_dir("node_modules"));
        let y = m("node_modules\n!src\n");
        assert!(!y.must_walk_excluded_dir("node_modules"));
        let z = m("build\n!**/*.keep\n");
        assert!(z.must_walk_excluded_dir("build"));
        let w = m("a\n!a/*/c\n");
        assert!(w.must_walk_excluded_dir("a"));
        assert!(w.must_walk_excluded_dir("a/b"));
        assert!(!m("a\n!b/*").must_walk_excluded_dir("a"));
    }

    #[test]
    fn walker_respects_patterns_and_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        for d in ["src", "node_modules/keep", "node_modules/drop", "empty"] {
            fs::create_dir_all(r.join(d)).expect("mkdir");
        }
        for f in [
            "src/main.rs",
            "node_modules/keep/a.js",
            "node_modules/drop/b.js",
            "README.md",
            "secret.md",
            "Dockerfile",
        ] {
            fs::write(r.join(f), "x").expect("write");
        }
        std::os::unix::fs::symlink("/etc", r.join("escape")).expect("symlink");
        std::os::unix::fs::symlink("/etc/passwd", r.join("src/passwd")).expect("symlink");
        let x = m("node_modules\n!node_modules/keep\n*.md\n!README.md\nDockerfile\n");
        let got: Vec<(String, EntryKind)> = walk(r, &x)
            .expect("walk")
            .into_iter()
            .map(|e| (e.path, e.kind))
            .collect();
        let want: Vec<(String, EntryKind)> = [
            ("README.md", EntryKind::File),
            ("empty", EntryKind::Dir),
            ("escape", EntryKind::Symlink),
            ("node_modules", EntryKind::Dir),
            ("node_modules/keep", EntryKind::Dir),
            ("node_modules/keep/a.js", EntryKind::File),
            ("src", EntryKind::Dir),
            ("src/main.rs", EntryKind::File),
            ("src/passwd", EntryKind::Symlink),
        ]
        .iter()
        .map(|(p, k)| (p.to_string(), *k))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn walker_on_hostile_contexts() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        fs::create_dir_all(r.join("d")).expect("mkdir");
        // A symlink loop and a symlink to the parent of the context: yielded, never followed.
        std::os::unix::fs::symlink(".", r.join("d/loop")).expect("symlink");
        std::os::unix::fs::symlink("../..", r.join("d/up")).expect("symlink");
        // A name with a newline, and a name that is not UTF-8 (a directory with a file in it).
        fs::write(r.join("new\nline"), "x").expect("write");
        let raw = std::ffi::OsStr::from_bytes(b"bad\xffname");
        fs::create_dir(r.join(raw)).expect("mkdir");
        fs::write(r.join(raw).join("inner"), "x").expect("write");
        // A FIFO is reported as Other, not opened.
        let fifo = r.join("fifo");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status();
        let have_fifo = status.is_ok_and(|s| s.success());
        let got = walk(r, &Matcher::default()).expect("walk");
        let find = |p: &str| got.iter().find(|e| e.path == p).map(|e| e.kind);
        assert_eq!(find("d/loop"), Some(EntryKind::Symlink));
        assert_eq!(find("d/up"), Some(EntryKind::Symlink));
        assert_eq!(find("new\nline"), Some(EntryKind::File));
        let inner = got
            .iter()
            .find(|e| e.path.ends_with("/inner"))
            .expect("the file in the non-UTF-8 directory");
        assert_eq!(inner.rel, Path::new(raw).join("inner"));
        assert!(r.join(&inner.rel).is_file());
        if have_fifo {
            assert_eq!(find("fifo"), Some(EntryKind::Other));
        }
        // Nothing from outside the context (the loop and `up` were not walked).
        assert!(
            got.iter()
                .all(|e| !e.path.starts_with("d/loop/") && !e.path.starts_with("d/up/"))
        );
        // A pattern for the newline name works like any other.
        let x = m("new?line");
        assert!(x.is_excluded("new\nline", false));
    }

    #[test]
    fn dockerfile_specific_ignore_file_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        fs::create_dir_all(r.join("docker")).expect("mkdir");
        fs::write(r.join(".dockerignore"), "a\n").expect("write");
        fs::write(r.join("docker/app.Dockerfile.dockerignore"), "b\n").expect("write");
        let df = r.join("docker/app.Dockerfile");
        let f = IgnoreFile::find(r, Some(&df)).expect("find");
        assert_eq!(
            f.path.as_deref(),
            Some(r.join("docker/app.Dockerfile.dockerignore").as_path())
        );
        assert!(f.matcher.is_excluded("b", false) && !f.matcher.is_excluded("a", false));
        let g = IgnoreFile::find(r, Some(&r.join("Dockerfile"))).expect("find");
        assert!(g.matcher.is_excluded("a", false));
        let h = IgnoreFile::find(&r.join("docker"), None).expect("find");
        assert!(h.path.is_none() && h.matcher.patterns.is_empty());
    }
}

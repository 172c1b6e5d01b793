//! Variable substitution as BuildKit's shell lexer (`frontend/dockerfile/shell/lex.go`) does it.
//!
//! * `$v`, `${v}`; `${v:-w}` (unset or empty → w), `${v-w}` (unset → w), `${v:+w}` (set and
//!   non-empty → w), `${v+w}` (set → w), `${v:?msg}` / `${v?msg}` (an error), `${v#p}`, `${v##p}`,
//!   `${v%p}`, `${v%%p}` (shortest/longest prefix/suffix removal), `${v/p/r}`, `${v//p/r}`
//!   (first/every match replaced). Patterns are BuildKit's: `*` and `?` only (brackets are
//!   literal), `\*` `\?` `\\` literal, `\}` `\/` only shield the lexer, any other escape an error.
//! * Outside quotes the escape character (`\` or the `# escape=` one) takes the next character
//!   literally; inside double quotes it escapes only `"`, `$` and itself; single quotes are
//!   literal. Quotes are removed.
//! * An unset variable expands to the empty string; `$` not followed by a name stays `$`.
//!
//! [`Lexer::process_word`] yields one word (ENV values, WORKDIR, USER, …);
//! [`Lexer::process_words`] also splits on unquoted whitespace, including whitespace that
//! comes from an unquoted expansion.
//!
//! [`expand`] applies substitution to the arguments docker expands: ADD, COPY, ENV, EXPOSE,
//! FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR (the reference's list), plus ARG defaults and
//! the `--chown`, `--chmod`, `--exclude`, `--checksum`, `--platform` flags and the `--mount`
//! fields (except `from=`, where BuildKit refuses variables). `COPY --from` is left as written:
//! BuildKit resolves it before substitution (an image name there is expanded with the global
//! ARGs, see [`crate::stages`]). RUN, CMD, ENTRYPOINT (both forms), SHELL, HEALTHCHECK, MAINTAINER and
//! ONBUILD are left as written: ONBUILD's trigger is expanded when it runs in the child build.

use std::collections::{BTreeMap, HashMap};

use crate::parser::{Command, CopySource, KeyValue, Mount};

/// A substitution error; the caller adds the Dockerfile line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${}`, `${:x}`, `${{x}`, a `${v/p}` without its second `/`.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    #[error("invalid escape '\\{0}'")]
    InvalidEscape(String),
    /// The modifier as written, colon included (`:=`).
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${v:?message}` with `v` unset (or empty).
    #[error("{name}: {message}")]
    Required { name: String, message: String },
}

/// Where variables come from.
pub trait Vars {
    fn lookup(&self, name: &str) -> Option<String>;
}

impl Vars for HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Vars for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Vars for [(String, String)] {
    /// The last definition wins (an ordered `KEY=VALUE` list).
    fn lookup(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

impl Vars for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.as_slice().lookup(name)
    }
}

/// No variables at all (everything expands to empty).
pub struct NoVars;

impl Vars for NoVars {
    fn lookup(&self, _: &str) -> Option<String> {
        None
    }
}

/// The lexer, parameterised by the Dockerfile's escape character.
#[derive(Debug, Clone, Copy)]
pub struct Lexer {
    pub escape: char,
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer { escape: '\\' }
    }
}

/// Accumulates the output, either as one word or split into words.
struct Out {
    split: bool,
    words: Vec<String>,
    cur: String,
    /// The current word exists even if empty (a quote was seen).
    started: bool,
}

impl Out {
    fn new(split: bool) -> Self {
        Out {
            split,
            words: Vec::new(),
            cur: String::new(),
            started: false,
        }
    }
    fn quoted(&mut self, s: &str) {
        self.cur.push_str(s);
        self.started = true;
    }
    fn start(&mut self) {
        self.started = true;
    }
    fn end_word(&mut self) {
        if self.started || !self.cur.is_empty() {
            self.words.push(std::mem::take(&mut self.cur));
        }
        self.started = false;
    }
    /// An unquoted literal character: whitespace separates words in split mode.
    fn literal(&mut self, c: char) {
        if self.split && c.is_whitespace() {
            self.end_word();
        } else {
            self.cur.push(c);
            self.started = true;
        }
    }
    /// An unquoted expansion: its whitespace splits words in split mode.
    fn expansion(&mut self, s: &str) {
        if !self.split {
            self.cur.push_str(s);
            return;
        }
        for c in s.chars() {
            if c.is_whitespace() {
                self.end_word();
            } else {
                self.cur.push(c);
                self.started = true;
            }
        }
    }
    fn finish(mut self) -> Vec<String> {
        self.end_word();
        self.words
    }
    fn single(self) -> String {
        let mut s = self.cur;
        for w in self.words.into_iter().rev() {
            s.insert_str(0, &w);
        }
        s
    }
}

struct Scan<'a> {
    chars: Vec<char>,
    pos: usize,
    lex: &'a Lexer,
    vars: &'a dyn Vars,
}

impl Scan<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes until one of `stops` (consumed, returned) or the end (`None`). With
    /// `raw_escapes` the escape character and the character after it are kept as written (the
    /// patterns of `${v#p}` and `${v/p/r}` interpret them).
    fn process(
        &mut self,
        out: &mut Out,
        stops: &[char],
        raw_escapes: bool,
    ) -> Result<Option<char>, ShellError> {
        while let Some(c) = self.peek() {
            if stops.contains(&c) {
                self.pos += 1;
                return Ok(Some(c));
            }
            match c {
                '\'' => {
                    self.pos += 1;
                    out.start();
                    let mut s = String::new();
                    loop {
                        match self.next() {
                            None => return Err(ShellError::UnterminatedSingleQuote),
                            Some('\'') => break,
                            Some(ch) => s.push(ch),
                        }
                    }
                    out.quoted(&s);
                }
                '"' => {
                    self.pos += 1;
                    out.start();
                    self.double_quoted(out)?;
                }
                '$' => {
                    self.pos += 1;
                    let value = self.dollar()?;
                    match value {
                        Dollar::Literal(s) => {
                            for ch in s.chars() {
                                out.literal(ch);
                            }
                        }
                        Dollar::Value(s) => out.expansion(&s),
                    }
                }
                c if c == self.lex.escape => {
                    self.pos += 1;
                    // The escape at the very end is dropped.
                    if let Some(n) = self.next() {
                        if raw_escapes {
                            out.quoted(&c.to_string());
                        }
                        out.quoted(&n.to_string());
                    }
                }
                c => {
                    self.pos += 1;
                    out.literal(c);
                }
            }
        }
        Ok(None)
    }

    fn double_quoted(&mut self, out: &mut Out) -> Result<(), ShellError> {
        loop {
            let Some(c) = self.next() else {
                return Err(ShellError::UnterminatedDoubleQuote);
            };
            match c {
                '"' => return Ok(()),
                '$' => match self.dollar()? {
                    Dollar::Literal(s) | Dollar::Value(s) => out.quoted(&s),
                },
                c if c == self.lex.escape => match self.peek() {
                    None => {}
                    Some(n) if n == '"' || n == '$' || n == self.lex.escape => {
                        self.pos += 1;
                        out.quoted(&n.to_string());
                    }
                    Some(_) => out.quoted(&c.to_string()),
                },
                c => out.quoted(&c.to_string()),
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        if let Some(c) = self.peek() {
            if c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if "@*#?-$!0".contains(c) {
                self.pos += 1;
                return c.to_string();
            }
        }
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    /// The word of a modifier, up to the closing brace, fully processed (quotes, nesting).
    fn word_to_brace(&mut self) -> Result<String, ShellError> {
        self.word_to(&['}'], false).map(|(w, _)| w)
    }

    /// A word up to one of `stops`; a missing stop is a missing brace.
    fn word_to(&mut self, stops: &[char], raw_escapes: bool) -> Result<(String, char), ShellError> {
        let mut out = Out::new(false);
        match self.process(&mut out, stops, raw_escapes)? {
            Some(stop) => Ok((out.single(), stop)),
            None => Err(ShellError::MissingBrace),
        }
    }

    fn dollar(&mut self) -> Result<Dollar, ShellError> {
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok(Dollar::Literal("$".into()));
            }
            return Ok(Dollar::Value(self.vars.lookup(&name).unwrap_or_default()));
        }
        self.pos += 1; // {
        let name = self.name();
        if name.is_empty() {
            return match self.peek() {
                None => Err(ShellError::MissingBrace),
                Some(_) => Err(ShellError::BadSubstitution),
            };
        }
        let value = self.vars.lookup(&name);
        let Some(c) = self.next() else {
            return Err(ShellError::MissingBrace);
        };
        match c {
            '}' => Ok(Dollar::Value(value.unwrap_or_default())),
            ':' | '-' | '+' | '?' => {
                let colon = c == ':';
                let modifier = if colon {
                    match self.next() {
                        Some(m @ ('-' | '+' | '?')) => m,
                        Some(m) => return Err(ShellError::UnsupportedModifier(format!(":{m}"))),
                        None => return Err(ShellError::MissingBrace),
                    }
                } else {
                    c
                };
                let word = self.word_to_brace()?;
                // With the colon an empty value counts as unset.
                let set = match &value {
                    Some(v) => !(colon && v.is_empty()),
                    None => false,
                };
                match modifier {
                    '-' => Ok(Dollar::Value(if set {
                        value.unwrap_or_default()
                    } else {
                        word
                    })),
                    '+' => Ok(Dollar::Value(if set { word } else { String::new() })),
                    _ => {
                        if set {
                            Ok(Dollar::Value(value.unwrap_or_default()))
                        } else {
                            let message = if word.is_empty() {
                                if colon {
                                    "is not allowed to be empty"
                                } else {
                                    "is not allowed to be unset"
                                }
                                .to_string()
                            } else {
                                word
                            };
                            Err(ShellError::Required { name, message })
                        }
                    }
                }
            }
            '#' | '%' => {
                let longest = self.peek() == Some(c);
                if longest {
                    self.pos += 1;
                }
                let (pattern, _) = self.word_to(&['}'], true)?;
                let value = value.unwrap_or_default();
                let glob = Glob::new(&pattern)?;
                let chars: Vec<char> = value.chars().collect();
                let n = chars.len();
                let result = if c == '#' {
                    let mut lens: Vec<usize> = (0..=n).collect();
                    if longest {
                        lens.reverse();
                    }
                    lens.into_iter()
                        .find(|&l| glob.matches(&chars[..l]))
                        .map(|l| chars[l..].iter().collect())
                } else {
                    let mut starts: Vec<usize> = (0..=n).collect();
                    if !longest {
                        starts.reverse();
                    }
                    starts
                        .into_iter()
                        .find(|&s| glob.matches(&chars[s..]))
                        .map(|s| chars[..s].iter().collect())
                };
                Ok(Dollar::Value(result.unwrap_or(value)))
            }
            '/' => {
                // ${v/pattern/replacement} (first match) and ${v//pattern/replacement} (all).
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let (pattern, stop) = self.word_to(&['/', '}'], true)?;
                if stop != '/' {
                    return Err(ShellError::BadSubstitution);
                }
                let (replacement, _) = self.word_to(&['}'], true)?;
                let glob = Glob::new(&pattern)?;
                Ok(Dollar::Value(glob.replace(
                    &value.unwrap_or_default(),
                    &replacement,
                    all,
                )))
            }
            other => Err(ShellError::UnsupportedModifier(other.to_string())),
        }
    }
}

enum Dollar {
    Literal(String),
    Value(String),
}

/// The glob of `${v#pattern}` and `${v/pattern/…}` as BuildKit reads it: `*` any string, `?` any
/// character, everything else literal (no `[...]` classes); `\` before `*`, `?` or `\` makes it
/// literal, before `}` or `/` it only kept the lexer from ending the word; before anything else
/// it is an error.
struct Glob {
    tokens: Vec<GlobToken>,
}

enum GlobToken {
    Char(char),
    Any,
    One,
}

impl Glob {
    fn new(pattern: &str) -> Result<Glob, ShellError> {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => tokens.push(GlobToken::Any),
                '?' => tokens.push(GlobToken::One),
                '\\' => match chars.peek().copied() {
                    Some('}' | '/') => {}
                    Some(n @ ('*' | '?' | '\\')) => {
                        chars.next();
                        tokens.push(GlobToken::Char(n));
                    }
                    Some(n) => return Err(ShellError::InvalidEscape(n.to_string())),
                    None => return Err(ShellError::InvalidEscape(String::new())),
                },
                c => tokens.push(GlobToken::Char(c)),
            }
        }
        Ok(Glob { tokens })
    }

    fn matches(&self, s: &[char]) -> bool {
        fn go(t: &[GlobToken], s: &[char]) -> bool {
            match t.first() {
                None => s.is_empty(),
                Some(GlobToken::Any) => (0..=s.len()).any(|k| go(&t[1..], &s[k..])),
                Some(GlobToken::One) => !s.is_empty() && go(&t[1..], &s[1..]),
                Some(GlobToken::Char(x)) => s.first() == Some(x) && go(&t[1..], &s[1..]),
            }
        }
        go(&self.tokens, s)
    }

    /// The longest match starting at `start`, if any.
    fn longest_at(&self, s: &[char], start: usize) -> Option<usize> {
        (start..=s.len())
            .rev()
            .find(|&end| self.matches(&s[start..end]))
    }

    /// Replaces the leftmost (longest) match, or every match, as Go's regexp replacement does
    /// (an empty match inserts the replacement and moves on by one character).
    fn replace(&self, value: &str, replacement: &str, all: bool) -> String {
        let s: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        let mut replaced = false;
        while i <= s.len() {
            match (!replaced || all).then(|| self.longest_at(&s, i)).flatten() {
                Some(end) => {
                    out.push_str(replacement);
                    replaced = true;
                    if end == i {
                        if let Some(&c) = s.get(i) {
                            out.push(c);
                        }
                        i += 1;
                    } else {
                        i = end;
                    }
                }
                None => {
                    if let Some(&c) = s.get(i) {
                        out.push(c);
                    }
                    i += 1;
                }
            }
        }
        out
    }
}

impl Lexer {
    pub fn new(escape: char) -> Self {
        Lexer { escape }
    }

    /// Expands one word (quotes removed, whitespace kept).
    pub fn process_word(&self, word: &str, vars: &dyn Vars) -> Result<String, ShellError> {
        let mut scan = Scan {
            chars: word.chars().collect(),
            pos: 0,
            lex: self,
            vars,
        };
        let mut out = Out::new(false);
        scan.process(&mut out, &[], false)?;
        Ok(out.single())
    }

    /// Expands and splits into words on unquoted whitespace (also whitespace coming from an
    /// unquoted expansion); `""` is an empty word.
    pub fn process_words(&self, input: &str, vars: &dyn Vars) -> Result<Vec<String>, ShellError> {
        let mut scan = Scan {
            chars: input.chars().collect(),
            pos: 0,
            lex: self,
            vars,
        };
        let mut out = Out::new(true);
        scan.process(&mut out, &[], false)?;
        Ok(out.finish())
    }

    /// Checks quoting and braces without caring about values (parse-time validation).
    pub fn check(&self, word: &str) -> Result<(), ShellError> {
        match self.process_word(word, &NoVars) {
            Err(ShellError::Required { .. }) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

/// Applies substitution to the arguments the builder expands (see the module docs); other
/// commands come back unchanged. `vars` is the scope at that instruction (ENV over ARG).
pub fn expand(command: &Command, lex: &Lexer, vars: &dyn Vars) -> Result<Command, ShellError> {
    let w = |s: &str| lex.process_word(s, vars);
    let opt = |s: &Option<String>| s.as_deref().map(w).transpose();
    let kvs = |list: &[KeyValue]| -> Result<Vec<KeyValue>, ShellError> {
        list.iter()
            .map(|kv| {
                Ok(KeyValue {
                    key: w(&kv.key)?,
                    value: w(&kv.value)?,
                })
            })
            .collect()
    };
    Ok(match command {
        Command::From {
            image,
            platform,
            name,
        } => Command::From {
            image: w(image)?,
            platform: opt(platform)?,
            name: name.clone(),
        },
        Command::Env(list) => Command::Env(kvs(list)?),
        Command::Label(list) => Command::Label(kvs(list)?),
        Command::Arg(list) => Command::Arg(
            list.iter()
                .map(|a| {
                    Ok(crate::parser::ArgDecl {
                        name: a.name.clone(),
                        default: opt(&a.default)?,
                    })
                })
                .collect::<Result<_, ShellError>>()?,
        ),
        Command::Expose(ports) => {
            let mut out = Vec::new();
            for p in ports {
                out.extend(lex.process_words(p, vars)?);
            }
            Command::Expose(out)
        }
        Command::User(s) => Command::User(w(s)?),
        Command::Workdir(s) => Command::Workdir(w(s)?),
        Command::Stopsignal(s) => Command::Stopsignal(w(s)?),
        Command::Volume(list) => {
            Command::Volume(list.iter().map(|s| w(s)).collect::<Result<_, _>>()?)
        }
        Command::Copy(c) | Command::Add(c) => {
            let mut c = c.clone();
            for s in &mut c.sources {
                if let CopySource::Path(p) = s {
                    *p = w(p)?;
                }
            }
            c.dest = w(&c.dest)?;
            // `--from` stays as written: stages resolve it unexpanded (see `stages`).
            c.chown = opt(&c.chown)?;
            c.chmod = opt(&c.chmod)?;
            c.checksum = opt(&c.checksum)?;
            c.exclude = c.exclude.iter().map(|s| w(s)).collect::<Result<_, _>>()?;
            if matches!(command, Command::Copy(_)) {
                Command::Copy(c)
            } else {
                Command::Add(c)
            }
        }
        Command::Run(r) => {
            let mut r = r.clone();
            r.mounts = r
                .mounts
                .iter()
                .map(|m| expand_mount(m, &w))
                .collect::<Result<_, _>>()?;
            Command::Run(r)
        }
        other => other.clone(),
    })
}

fn expand_mount(
    m: &Mount,
    w: &dyn Fn(&str) -> Result<String, ShellError>,
) -> Result<Mount, ShellError> {
    let o = |s: &Option<String>| s.as_deref().map(w).transpose();
    let mut m = m.clone();
    m.target = o(&m.target)?;
    m.source = o(&m.source)?;
    // `from=` may not hold variables (a parse error), as in BuildKit.
    m.id = o(&m.id)?;
    m.env = o(&m.env)?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(String, String)> {
        [
            ("v", "value"),
            ("empty", ""),
            ("path", "/usr/local/bin/tool.tar.gz"),
            ("sp", "a b  c"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn word(s: &str) -> Result<String, ShellError> {
        Lexer::default().process_word(s, &vars())
    }

    fn ok(s: &str) -> String {
        word(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(ok("$v"), "value");
        assert_eq!(ok("${v}_x"), "value_x");
        assert_eq!(ok("$v_x"), "");
        assert_eq!(ok("a$unset-b"), "a-b");
        assert_eq!(ok("cost $"), "cost $");
        assert_eq!(ok("$ v"), "$ v");
        assert_eq!(ok("$1x"), "x");
    }

    #[test]
    fn modifiers_with_and_without_colon() {
        assert_eq!(ok("${v:-w}"), "value");
        assert_eq!(ok("${unset:-w}"), "w");
        assert_eq!(ok("${empty:-w}"), "w");
        assert_eq!(ok("${empty-w}"), "");
        assert_eq!(ok("${unset-w}"), "w");
        assert_eq!(ok("${v:+w}"), "w");
        assert_eq!(ok("${empty:+w}"), "");
        assert_eq!(ok("${empty+w}"), "w");
        assert_eq!(ok("${unset+w}"), "");
        assert_eq!(ok("${unset:-${v}-x}"), "value-x");
        assert_eq!(ok("${unset:-\"a b\"}"), "a b");
        assert_eq!(ok("${v:?}"), "value");
    }

    #[test]
    fn required_errors() {
        assert_eq!(
            word("${unset:?must be set}"),
            Err(ShellError::Required {
                name: "unset".into(),
                message: "must be set".into()
            })
        );
        assert_eq!(
            word("${empty:?}").map_err(|e| e.to_string()),
            Err("empty: is not allowed to be empty".into())
        );
        assert_eq!(ok("${empty?}"), "");
        assert_eq!(
            word("${unset?}").map_err(|e| e.to_string()),
            Err("unset: is not allowed to be unset".into())
        );
    }

    #[test]
    fn prefix_suffix_removal() {
        assert_eq!(ok("${path#*/}"), "usr/local/bin/tool.tar.gz");
        assert_eq!(ok("${path##*/}"), "tool.tar.gz");
        assert_eq!(ok("${path%.*}"), "/usr/local/bin/tool.tar");
        assert_eq!(ok("${path%%.*}"), "/usr/local/bin/tool");
        assert_eq!(ok("${path#nomatch}"), "/usr/local/bin/tool.tar.gz");
        assert_eq!(ok("${v#v?l}"), "ue");
        // No bracket classes in these patterns (BuildKit): brackets are literal.
        assert_eq!(ok("${v%[a-u]e}"), "value");
        assert_eq!(ok("${unset#x}"), "");
    }

    fn with(input: &str, env: &[(&str, &str)]) -> Result<String, String> {
        let v: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Lexer::default()
            .process_word(input, &v)
            .map_err(|e| e.to_string())
    }

    /// Cases from BuildKit's own lexer tests (`TestProcessWithMatches` and friends), checked as
    /// behaviour.
    #[test]
    fn buildkit_vectors() {
        let xy = [("FOO", "xxyy")];
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (
                "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
                &[("FOO", "xxx"), ("BAR", "")],
                "xxx  ccc",
            ),
            (
                "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
                &[("FOO", "xxx"), ("BAR", "")],
                "xxx bbb ccc",
            ),
            (
                "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}",
                &[("FOO", "xxx"), ("BAR", "")],
                "aaa bbb ",
            ),
            (
                "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
                &[("FOO", "xxx"), ("BAR", "")],
                "aaa  ",
            ),
            ("${BAR?bbb}", &[("BAR", "")], ""),
            (
                "${FOO#()[]{\\}^$.\\*\\?|\\\\}",
                &[("FOO", "()[]{}^$.*?|\\x")],
                "x",
            ),
            ("${FOO%%\\**}", &[("FOO", "xx**")], "xx"),
            ("${FOO#*x*y}", &xy, "y"),
            ("${FOO#*}", &xy, "xxyy"),
            ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "x")], "xyy"),
            ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "")], "xxyy"),
            ("${FOO#}", &xy, "xxyy"),
            ("${FOO##*x}", &xy, "yy"),
            ("${FOO##}", &xy, "xxyy"),
            ("${FOO#?\\?}", &[("FOO", "???y")], "?y"),
            ("${ABC:-.}${FOO%x}${ABC:-.}", &xy, ".xxyy."),
            ("${FOO%%\\**\\*}", &[("FOO", "a***yy*")], "a"),
            ("${FOO%}", &xy, "xxyy"),
            (
                "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
                &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")],
                "/foo.*/*.txt - /foo..*.txt",
            ),
            (
                "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
                &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
                "/tmp/bar.txt - /bar.txt",
            ),
            (
                "${FOO/$NEEDLE/$R} - ${FOO//$NEEDLE/$R}",
                &[("FOO", "/a/foo/b/c.txt"), ("NEEDLE", "/?/"), ("R", "/")],
                "/foo/b/c.txt - /foo/c.txt",
            ),
            (
                "${FOO/$NEEDLE/$R}",
                &[
                    ("FOO", "http://google.de"),
                    ("NEEDLE", "http://"),
                    ("R", "https://"),
                ],
                "https://google.de",
            ),
            (
                "${FOO//\\//\\/}",
                &[("FOO", "/tmp/foo.txt")],
                "\\/tmp\\/foo.txt",
            ),
            ("${FOO/$BAR/ww}", &[("FOO", "xxyy"), ("BAR", "")], "wwxxyy"),
            ("${FOO///}", &xy, "xxyy"),
            ("${FOO///}", &[], ""),
            (
                "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
                &[
                    ("VERSION", "v1.2.3"),
                    ("TARGETOS", "linux"),
                    ("TARGETARCH", "arm"),
                    ("TARGETVARIANT", "v7"),
                ],
                "something-v1.2.3.linux-arm-v7.tar.gz",
            ),
        ];
        for (input, env, want) in cases {
            assert_eq!(with(input, env).as_deref(), Ok(*want), "{input}");
        }
        for input in [
            "${BAZ?ccc}",
            "${BAR:?bbb}",
            "${BAZ:?}",
            "${FOO=aaa}",
            "${FOO=:aaa}",
            "${FOO=}",
            "${FOO//ww}",
            "${FOO//}",
            "${FOO#\\x}",
        ] {
            assert!(
                with(input, &[("FOO", "xxx"), ("BAR", "")]).is_err(),
                "{input}"
            );
        }
        assert_eq!(
            with("${FOO#\\x}", &xy),
            Err("invalid escape '\\x'".to_string())
        );
        // The message of ${v:?msg} is expanded.
        let msg = |env: &[(&str, &str)], w: &str| with(w, env).err().unwrap_or_default();
        assert!(
            msg(&[("VAR", ""), ("ARG", "x")], "${VAR:?message here$ARG}").contains("message herex")
        );
        assert!(msg(&[("ARG", "x")], "${VAR?message here$ARG}").contains("message herex"));
        assert_eq!(
            with("${VAR?message here$ARG}", &[("VAR", ""), ("ARG", "x")]).as_deref(),
            Ok("")
        );
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(ok("'$v'"), "$v");
        assert_eq!(ok("\"$v\""), "value");
        assert_eq!(ok("\\$v"), "$v");
        assert_eq!(ok("\"\\$v\""), "$v");
        assert_eq!(ok("\"a\\b\""), "a\\b");
        assert_eq!(ok("\"a\\\"b\""), "a\"b");
        assert_eq!(ok("a\\ b"), "a b");
        assert_eq!(ok("'a\\'"), "a\\");
        assert_eq!(ok("x\\"), "x");
        assert_eq!(ok("a\"b c\"d"), "ab cd");
        assert_eq!(
            Lexer::new('`').process_word("`$v \\x", &vars()),
            Ok("$v \\x".into())
        );
    }

    #[test]
    fn bad_input() {
        assert_eq!(word("'abc"), Err(ShellError::UnterminatedSingleQuote));
        assert_eq!(word("\"abc"), Err(ShellError::UnterminatedDoubleQuote));
        assert_eq!(word("${v"), Err(ShellError::MissingBrace));
        assert_eq!(word("${v:-x"), Err(ShellError::MissingBrace));
        assert_eq!(
            word("${v:=x}").map_err(|e| e.to_string()),
            Err("unsupported modifier (:=) in substitution".into())
        );
        assert_eq!(
            word("${v=x}").map_err(|e| e.to_string()),
            Err("unsupported modifier (=) in substitution".into())
        );
        for bad in ["${}", "${:x}", "${{x}"] {
            assert_eq!(
                word(bad).map_err(|e| e.to_string()),
                Err("syntax error: bad substitution".into()),
                "{bad}"
            );
        }
        assert_eq!(
            word("${").map_err(|e| e.to_string()),
            Err("syntax error: missing '}'".into())
        );
        assert!(Lexer::default().check("${unset:?x}").is_ok());
        assert!(Lexer::default().check("'x").is_err());
    }

    #[test]
    fn word_splitting() {
        let l = Lexer::default();
        let v = vars();
        assert_eq!(
            l.process_words("a $sp \"$sp\"", &v),
            Ok(vec!["a", "a", "b", "c", "a b  c"]
                .into_iter()
                .map(String::from)
                .collect())
        );
        assert_eq!(
            l.process_words("x \"\" y", &v),
            Ok(vec!["x".to_string(), String::new(), "y".to_string()])
        );
        assert_eq!(l.process_words("  $unset  ", &v), Ok(vec![]));
        assert_eq!(
            l.process_words("a\\ b c", &v),
            Ok(vec!["a b".to_string(), "c".to_string()])
        );
    }
}

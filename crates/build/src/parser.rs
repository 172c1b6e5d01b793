//! The Dockerfile parser: text into a typed AST, as BuildKit's `frontend/dockerfile/parser` and
//! `instructions` packages read it.
//!
//! Lines: a UTF-8 BOM is dropped; parser directives (`# syntax=`, `# escape=`, `# check=`) are
//! read only at the top, case-insensitively, and the first line that is not a known directive
//! (an instruction, an empty line, a comment, an unknown directive) ends them. A line ending in
//! the escape character (trailing blanks allowed) continues on the next; comment lines and empty
//! lines inside a continuation are skipped (the empty ones with a warning). `RUN`, `COPY`, `ADD`
//! (also behind `ONBUILD`) in shell form read the heredocs their line names (`<<EOF`, `<<-EOF`,
//! quoted delimiters) from the lines that follow, in order.
//!
//! Arguments are kept as written (quotes included, variables unexpanded): substitution needs the
//! scope of the stage and happens in [`crate::shell::expand`]. Quoting is checked here for the
//! instructions the builder expands, so an unterminated quote is a parse error with its line.

use serde::Serialize;

use crate::shell::Lexer;

/// A parse error: the first line of the instruction at fault and docker's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Dockerfile:{line}: {kind}")]
pub struct ParseError {
    pub line: usize,
    pub kind: ParseErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("unknown instruction: {name}{}", suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownInstruction {
        name: String,
        suggestion: Option<String>,
    },
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscape(String),
    #[error("unterminated heredoc")]
    UnterminatedHeredoc,
    #[error("{0}")]
    Quote(crate::shell::ShellError),
    #[error("unknown flag: --{0}")]
    UnknownFlag(String),
    #[error("duplicate flag specified: --{0}")]
    DuplicateFlag(String),
    #[error("missing a value on flag: --{0}")]
    MissingFlagValue(String),
    #[error("expecting boolean value for flag {flag}, not: {value}")]
    BadBool { flag: String, value: String },
    #[error("{0} requires at least one argument")]
    AtLeastOneArgument(&'static str),
    #[error("{0} requires exactly one argument")]
    ExactlyOneArgument(&'static str),
    #[error(
        "{0} requires at least two arguments, but only one was provided. Destination could not be determined"
    )]
    NoDestination(&'static str),
    #[error("FROM requires either one or three arguments")]
    FromArguments,
    #[error(
        "invalid name for build stage: \"{0}\", name can't start with a number or contain symbols"
    )]
    InvalidStageName(String),
    #[error("{0} must have two arguments")]
    TwoArguments(&'static str),
    #[error("Syntax error - can't find = in \"{0}\". Must be of the form: name=value")]
    MissingEquals(String),
    #[error("{0} names can not be blank")]
    BlankName(&'static str),
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    NotStringArray,
    #[error("{0} requires the arguments to be in JSON form")]
    NotJson(&'static str),
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    #[error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")]
    OnbuildOnbuild,
    #[error("{0} isn't allowed as an ONBUILD trigger")]
    OnbuildTrigger(String),
    #[error("HEALTHCHECK NONE takes no arguments")]
    HealthcheckNoneArgs,
    #[error("Unknown type \"{0}\" in HEALTHCHECK (try CMD)")]
    HealthcheckType(String),
    #[error("Missing command after HEALTHCHECK CMD")]
    HealthcheckMissingCommand,
    #[error("invalid duration for --{flag}: \"{value}\"")]
    BadDuration { flag: String, value: String },
    #[error("Interval \"{flag}\" cannot be less than 1ms")]
    DurationTooSmall { flag: String },
    #[error("--retries must be at least 1 (not {0})")]
    NegativeRetries(String),
    #[error("{0}")]
    Mount(String),
    #[error("network mode \"{0}\" not supported")]
    Network(String),
}

impl ParseErrorKind {
    fn at(self, line: usize) -> ParseError {
        ParseError { line, kind: self }
    }
}

/// The parser directives read at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directives {
    /// `# syntax=`: noted, never acted on (Berth has one frontend).
    pub syntax: Option<String>,
    /// `# escape=`: `\` (default) or `` ` ``.
    pub escape: char,
    /// `# check=`: build-check configuration, kept as written.
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub line: usize,
    pub message: String,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dockerfile {
    pub directives: Directives,
    pub instructions: Vec<Instruction>,
    pub warnings: Vec<Warning>,
}

impl Dockerfile {
    /// The shell lexer for this file's escape character.
    pub fn lexer(&self) -> Lexer {
        Lexer::new(self.directives.escape)
    }
}

/// One instruction with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    /// First and last line (1-based), heredoc bodies included.
    pub start_line: usize,
    pub end_line: usize,
    /// The instruction as written: its lines joined with `\n`.
    pub original: String,
    pub command: Command,
}

/// Exec form (a JSON array) or shell form (one string, run through the SHELL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CommandLine {
    Exec(Vec<String>),
    Shell(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The delimiter, quotes removed.
    pub name: String,
    /// The body, each line ending in `\n` (leading tabs removed with `<<-`).
    pub content: String,
    /// False when the delimiter was quoted: no substitution in the body.
    pub expand: bool,
    /// `<<-`.
    pub chomp: bool,
    /// `3<<EOF`: the file descriptor the body feeds (RUN only).
    pub fd: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CopySource {
    Path(String),
    Heredoc(Heredoc),
}

/// `COPY` and `ADD` (ADD-only flags stay `None`/false for COPY, and the reverse).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct CopyArgs {
    pub sources: Vec<CopySource>,
    pub dest: String,
    /// True for the JSON form.
    pub json: bool,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    /// ADD only.
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
    /// ADD only: `--unpack[=bool]` when given (otherwise local archives unpack, URLs do not).
    pub unpack: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheSharing {
    Shared,
    Private,
    Locked,
}

/// A `RUN --mount=` spec, with BuildKit's defaults for `readonly` and `sharing` applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: MountType,
    pub target: Option<String>,
    pub source: Option<String>,
    pub from: Option<String>,
    pub id: Option<String>,
    /// Cache mounts only (default shared).
    pub sharing: Option<CacheSharing>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Secret and ssh mounts: fail when the secret is missing.
    pub required: bool,
    /// Default: true for bind, secret and ssh; false for cache and tmpfs.
    pub readonly: bool,
    /// tmpfs size in bytes.
    pub size: Option<u64>,
    /// Secret exposed as an environment variable.
    pub env: Option<String>,
}

impl Mount {
    /// The secret's id: `id=`, else the base name of the target (BuildKit's rule).
    pub fn secret_id(&self) -> Option<String> {
        self.id.clone().or_else(|| {
            self.target
                .as_deref()
                .map(|t| t.rsplit('/').next().unwrap_or(t).to_string())
        })
    }

    /// Where a secret lands: `target=`, else `/run/secrets/<id>`.
    pub fn secret_target(&self) -> Option<String> {
        if self.env.is_some() && self.target.is_none() {
            return None;
        }
        self.target
            .clone()
            .or_else(|| self.secret_id().map(|id| format!("/run/secrets/{id}")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub command: CommandLine,
    pub heredocs: Vec<Heredoc>,
    pub mounts: Vec<Mount>,
    pub network: Option<NetworkMode>,
    /// `--security=insecure|sandbox`, kept as written.
    pub security: Option<String>,
}

/// `HEALTHCHECK`: durations in nanoseconds (0 = inherit), as the image config stores them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Healthcheck {
    None,
    Check {
        command: CommandLine,
        interval: u64,
        timeout: u64,
        start_period: u64,
        start_interval: u64,
        retries: u64,
    },
}

impl Healthcheck {
    /// The image config's `Test`: `["NONE"]`, `["CMD", …]` or `["CMD-SHELL", "…"]`.
    pub fn test(&self) -> Vec<String> {
        match self {
            Healthcheck::None => vec!["NONE".into()],
            Healthcheck::Check {
                command: CommandLine::Exec(v),
                ..
            } => std::iter::once("CMD".to_string())
                .chain(v.iter().cloned())
                .collect(),
            Healthcheck::Check {
                command: CommandLine::Shell(s),
                ..
            } => vec!["CMD-SHELL".into(), s.clone()],
        }
    }
}

/// The instructions of the Dockerfile reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Command {
    From {
        image: String,
        platform: Option<String>,
        name: Option<String>,
    },
    Run(Run),
    Cmd(CommandLine),
    Label(Vec<KeyValue>),
    Expose(Vec<String>),
    Env(Vec<KeyValue>),
    Add(CopyArgs),
    Copy(CopyArgs),
    Entrypoint(CommandLine),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Arg(Vec<ArgDecl>),
    Onbuild {
        expression: String,
        trigger: Box<Instruction>,
    },
    Stopsignal(String),
    Healthcheck(Healthcheck),
    Shell(Vec<String>),
    Maintainer(String),
}

impl Command {
    /// The instruction's name, upper case.
    pub fn name(&self) -> &'static str {
        match self {
            Command::From { .. } => "FROM",
            Command::Run(_) => "RUN",
            Command::Cmd(_) => "CMD",
            Command::Label(_) => "LABEL",
            Command::Expose(_) => "EXPOSE",
            Command::Env(_) => "ENV",
            Command::Add(_) => "ADD",
            Command::Copy(_) => "COPY",
            Command::Entrypoint(_) => "ENTRYPOINT",
            Command::Volume(_) => "VOLUME",
            Command::User(_) => "USER",
            Command::Workdir(_) => "WORKDIR",
            Command::Arg(_) => "ARG",
            Command::Onbuild { .. } => "ONBUILD",
            Command::Stopsignal(_) => "STOPSIGNAL",
            Command::Healthcheck(_) => "HEALTHCHECK",
            Command::Shell(_) => "SHELL",
            Command::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// The instruction names of the reference, for "did you mean".
pub const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

// ---------------------------------------------------------------------------------------------
// Lines

struct DirectiveParser {
    done: bool,
    seen: Vec<String>,
    after_shebang: bool,
}

impl DirectiveParser {
    /// `#\s*name\s*=\s*value` with a known name; anything else ends the directives.
    fn line(&mut self, line: &str, lineno: usize, d: &mut Directives) -> Result<(), ParseError> {
        if self.done {
            return Ok(());
        }
        // A `#!` first line: BuildKit still finds `syntax` and `check` after it (its
        // DetectSyntax/ParseDirective skip a shebang) but its main parser stops there, so an
        // `escape` after it is a comment.
        if lineno == 1 && line.starts_with("#!") {
            self.after_shebang = true;
            return Ok(());
        }
        let Some((name, value)) = directive(line) else {
            self.done = true;
            return Ok(());
        };
        let name = name.to_ascii_lowercase();
        if !matches!(name.as_str(), "syntax" | "escape" | "check")
            || (self.after_shebang && name == "escape")
        {
            self.done = true;
            return Ok(());
        }
        if self.seen.contains(&name) {
            return Err(ParseErrorKind::DuplicateDirective(name).at(lineno));
        }
        self.seen.push(name.clone());
        match name.as_str() {
            "escape" => {
                d.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    other => {
                        return Err(ParseErrorKind::InvalidEscape(other.to_string()).at(lineno));
                    }
                }
            }
            // `# syntax = ref // opts`: the first field is the value (BuildKit's DetectSyntax).
            "syntax" => d.syntax = value.split_whitespace().next().map(str::to_string),
            _ => d.check = value.split_whitespace().next().map(str::to_string),
        }
        Ok(())
    }
}

fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let first = rest.chars().next()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let name_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let (name, after) = rest.split_at(name_len);
    let value = after.trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((name, value))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Removes a trailing escape character (blanks after it allowed); true if the line continues.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(s) => (s, true),
        None => (line, false),
    }
}

/// An instruction's text before its arguments are interpreted.
struct RawInstruction {
    start: usize,
    end: usize,
    line: String,
    original: String,
    heredocs: Vec<Heredoc>,
}

/// Parses a Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    // A final newline does not start another line.
    let count = if text.ends_with('\n') {
        lines.len() - 1
    } else {
        lines.len()
    };
    let mut directives = Directives::default();
    let mut dp = DirectiveParser {
        done: false,
        seen: Vec::new(),
        after_shebang: false,
    };
    let mut warnings = Vec::new();
    let mut instructions = Vec::new();
    let mut i = 0;
    while i < count {
        let first = lines[i].trim_start();
        dp.line(first, i + 1, &mut directives)?;
        let start = i + 1;
        i += 1;
        if is_comment(first) || first.trim().is_empty() {
            continue;
        }
        let escape = directives.escape;
        let (head, mut cont) = trim_continuation(first, escape);
        let mut line = head.to_string();
        let mut empty_continuation = false;
        while cont && i < count {
            let raw = lines[i];
            i += 1;
            if is_comment(raw) {
                continue;
            }
            if raw.trim().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, c) = trim_continuation(raw, escape);
            line.push_str(part);
            cont = c;
        }
        if empty_continuation {
            warnings.push(Warning {
                line: start,
                                message: format!(
                    "Empty continuation line found in: {}: empty continuation lines will become errors in a future release",
                    line.trim()
                ),
            });
        }
        let mut raw = RawInstruction {
            start,
            end: i,
            line,
            original: String::new(),
            heredocs: Vec::new(),
        };
        if can_contain_heredoc(&raw.line) {
            for mut heredoc in heredocs_in_line(&raw.line, escape).map_err(|k| k.at(start))? {
                let mut terminated = false;
                while i < count {
                    let body = lines[i];
                    i += 1;
                    let candidate = if heredoc.chomp {
                        body.trim_start_matches('\t')
                    } else {
                        body
                    };
                    if candidate == heredoc.name {
                        terminated = true;
                        break;
                    }
                    let body = if heredoc.chomp {
                        body.trim_start_matches('\t')
                    } else {
                        body
                    };
                    heredoc.content.push_str(body);
                    heredoc.content.push('\n');
                }
                if !terminated {
                    return Err(ParseErrorKind::UnterminatedHeredoc.at(start));
                }
                raw.heredocs.push(heredoc);
            }
        }
        raw.end = i;
        raw.original = lines[start - 1..i].join("\n");
        instructions.push(instruction(raw, escape)?);
    }
    Ok(Dockerfile {
        directives,
        instructions,
        warnings,
    })
}

/// RUN, COPY, ADD (possibly behind ONBUILD) in shell form with a `<<` somewhere.
fn can_contain_heredoc(line: &str) -> bool {
    if !line.contains("<<") {
        return false;
    }
    let (cmd, rest) = split_command(line);
    let (cmd, rest) = if cmd == "onbuild" {
        split_command(rest)
    } else {
        (cmd, rest)
    };
    if !matches!(cmd.as_str(), "run" | "copy" | "add") {
        return false;
    }
    let (_, args) = extract_flags(rest);
    !matches!(parse_json(&args), Some(Ok(_))) && !args.is_empty()
}

/// The heredocs a line names, in order: words `[n]<<[-]DELIM`, also written `<< DELIM` (BuildKit
/// accepts a space after the operator).
fn heredocs_in_line(line: &str, escape: char) -> Result<Vec<Heredoc>, ParseErrorKind> {
    let words = parse_words(line, escape);
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        let digits = word.chars().take_while(char::is_ascii_digit).count();
        let op = &word[digits..];
        let found = if (op == "<<" || op == "<<-") && i + 1 < words.len() {
            // `<< EOF`, `<<- EOF`: the name is the next word, as written (`<< -EOF` names `-EOF`).
            i += 1;
            heredoc_parts(&word[..digits], op == "<<-", &words[i])?
        } else {
            parse_heredoc_word(word)?
        };
        out.extend(found);
        i += 1;
    }
    Ok(out)
}

/// One heredoc word: `[n]<<[-]DELIM`. The delimiter is unquoted like a shell word without
/// substitution (`eo'f'` → `eof`, `eo\'f` → `eo'f`, `$EOF` stays `$EOF`); any real quoting
/// turns expansion of the body off.
fn parse_heredoc_word(word: &str) -> Result<Option<Heredoc>, ParseErrorKind> {
    let digits = word.chars().take_while(char::is_ascii_digit).count();
    let Some(rest) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    heredoc_parts(&word[..digits], chomp, rest)
}

fn heredoc_parts(digits: &str, chomp: bool, rest: &str) -> Result<Option<Heredoc>, ParseErrorKind> {
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let mut name = String::new();
    let mut quoted = false;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => name.extend(chars.next()),
            '\'' => {
                quoted = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => name.push(x),
                        None => {
                            return Err(ParseErrorKind::Quote(
                                crate::shell::ShellError::UnterminatedSingleQuote,
                            ));
                        }
                    }
                }
            }
            '"' => {
                quoted = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => name.extend(chars.next()),
                        Some(x) => name.push(x),
                        None => {
                            return Err(ParseErrorKind::Quote(
                                crate::shell::ShellError::UnterminatedDoubleQuote,
                            ));
                        }
                    }
                }
            }
            c if c.is_whitespace() => return Ok(None),
            c => name.push(c),
        }
    }
    if name.is_empty() {
        return Ok(None);
    }
    let fd = if digits.is_empty() {
        None
    } else {
        digits.parse().ok()
    };
    Ok(Some(Heredoc {
        name,
        content: String::new(),
        expand: !quoted,
        chomp,
        fd,
    }))
}

/// The command word (lower case) and the rest of the line.
fn split_command(line: &str) -> (String, &str) {
    let t = line.trim();
    match t.find(char::is_whitespace) {
        Some(p) => (t[..p].to_ascii_lowercase(), t[p..].trim_start()),
        None => (t.to_ascii_lowercase(), ""),
    }
}

/// Leading `--flag[=value]` words (quotes in them removed); a bare `--` ends the flags.
fn extract_flags(rest: &str) -> (Vec<String>, String) {
    let chars: Vec<char> = rest.chars().collect();
    let mut flags = Vec::new();
    let mut pos = 0;
    loop {
        while pos < chars.len() && chars[pos].is_whitespace() {
            pos += 1;
        }
        if pos + 1 >= chars.len() || chars[pos] != '-' || chars[pos + 1] != '-' {
            break;
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while pos < chars.len() {
            let c = chars[pos];
            match quote {
                Some(q) if c == q => quote = None,
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c.is_whitespace() => break,
                // A backslash (always `\`, whatever the escape directive) takes the next
                // character literally, in or out of quotes; at the very end it is dropped.
                _ if c == '\\' => {
                    if let Some(&n) = chars.get(pos + 1) {
                        word.push(n);
                        pos += 1;
                    }
                }
                _ => word.push(c),
            }
            pos += 1;
        }
        if word == "--" {
            break;
        }
        flags.push(word);
    }
    (
        flags,
        chars[pos.min(chars.len())..]
            .iter()
            .collect::<String>()
            .trim()
            .to_string(),
    )
}

/// Splits on whitespace outside quotes, keeping quotes and escapes (BuildKit's `parseWords`).
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut blank_ok = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match quote {
            None => {
                if c.is_whitespace() {
                    if in_word && (blank_ok || !word.is_empty()) {
                        words.push(std::mem::take(&mut word));
                    }
                    in_word = false;
                    blank_ok = false;
                    continue;
                }
                in_word = true;
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    blank_ok = true;
                }
                if c == escape {
                    if i == chars.len() {
                        continue;
                    }
                    word.push(c);
                    word.push(chars[i]);
                    i += 1;
                    continue;
                }
                word.push(c);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                }
                if c == escape && q != '\'' {
                    if i == chars.len() {
                        quote = None;
                        continue;
                    }
                    word.push(c);
                    word.push(chars[i]);
                    i += 1;
                    continue;
                }
                word.push(c);
            }
        }
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// `Some(Ok(list))` for a JSON array of strings, `Some(Err)` for a JSON array with something
/// else in it, `None` when the text is not JSON at all (shell form).
fn parse_json(rest: &str) -> Option<Result<Vec<String>, ParseErrorKind>> {
    let t = rest.trim();
    if !t.starts_with('[') {
        return None;
    }
    let value: serde_json_lite::Value = serde_json_lite::parse(t)?;
    match value {
        serde_json_lite::Value::Array(items) => Some(
            items
                .into_iter()
                .map(|v| match v {
                    serde_json_lite::Value::String(s) => Ok(s),
                    _ => Err(ParseErrorKind::NotStringArray),
                })
                .collect(),
        ),
        _ => None,
    }
}

/// A small JSON reader: enough to tell a JSON array of strings from shell form (BuildKit uses
/// `encoding/json`; a heavy dependency is not needed for this).
mod serde_json_lite {
    pub enum Value {
        Array(Vec<Value>),
        String(String),
        Other,
    }

    pub fn parse(s: &str) -> Option<Value> {
        let chars: Vec<char> = s.chars().collect();
        let mut p = P { c: chars, i: 0 };
        let v = p.value()?;
        p.ws();
        (p.i == p.c.len()).then_some(v)
    }

    struct P {
        c: Vec<char>,
        i: usize,
    }

    impl P {
        fn ws(&mut self) {
            while self.i < self.c.len() && matches!(self.c[self.i], ' ' | '\t' | '\n' | '\r') {
                self.i += 1;
            }
        }
        fn eat(&mut self, ch: char) -> bool {
            if self.c.get(self.i) == Some(&ch) {
                self.i += 1;
                true
            } else {
                false
            }
        }
        fn lit(&mut self, word: &str) -> Option<Value> {
            for ch in word.chars() {
                if !self.eat(ch) {
                    return None;
                }
            }
            Some(Value::Other)
        }
        fn value(&mut self) -> Option<Value> {
            self.ws();
            match *self.c.get(self.i)? {
                '[' => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.eat(']') {
                        return Some(Value::Array(items));
                    }
                    loop {
                        items.push(self.value()?);
                        self.ws();
                        if self.eat(']') {
                            return Some(Value::Array(items));
                        }
                        if !self.eat(',') {
                            return None;
                        }
                    }
                }
                '{' => {
                    self.i += 1;
                    self.ws();
                    if self.eat('}') {
                        return Some(Value::Other);
                    }
                    loop {
                        self.ws();
                        self.string()?;
                        self.ws();
                        if !self.eat(':') {
                            return None;
                        }
                        self.value()?;
                        self.ws();
                        if self.eat('}') {
                            return Some(Value::Other);
                        }
                        if !self.eat(',') {
                            return None;
                        }
                    }
                }
                '"' => self.string().map(Value::String),
                't' => self.lit("true"),
                'f' => self.lit("false"),
                'n' => self.lit("null"),
                c if c == '-' || c.is_ascii_digit() => {
                    let start = self.i;
                    while self.i < self.c.len()
                        && matches!(self.c[self.i], '-' | '+' | '.' | 'e' | 'E' | '0'..='9')
                    {
                        self.i += 1;
                    }
                    let n: String = self.c[start..self.i].iter().collect();
                    n.parse::<f64>().ok().map(|_| Value::Other)
                }
                _ => None,
            }
        }
        fn string(&mut self) -> Option<String> {
            if !self.eat('"') {
                return None;
            }
            let mut s = String::new();
            loop {
                let ch = *self.c.get(self.i)?;
                self.i += 1;
                match ch {
                    '"' => return Some(s),
                    '\\' => {
                        let e = *self.c.get(self.i)?;
                        self.i += 1;
                        match e {
                            '"' => s.push('"'),
                            '\\' => s.push('\\'),
                            '/' => s.push('/'),
                            'b' => s.push('\u{8}'),
                            'f' => s.push('\u{c}'),
                            'n' => s.push('\n'),
                            'r' => s.push('\r'),
                            't' => s.push('\t'),
                            'u' => {
                                let mut code = self.hex4()?;
                                if (0xD800..0xDC00).contains(&code)
                                    && self.eat('\\')
                                    && self.eat('u')
                                {
                                    let low = self.hex4()?;
                                    code = 0x10000
                                        + ((code - 0xD800) << 10)
                                        + (low.wrapping_sub(0xDC00) & 0x3ff);
                                }
                                s.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                            }
                            _ => return None,
                        }
                    }
                    c if (c as u32) < 0x20 => return None,
                    c => s.push(c),
                }
            }
        }
        fn hex4(&mut self) -> Option<u32> {
            let mut v = 0;
            for _ in 0..4 {
                v = v * 16 + self.c.get(self.i)?.to_digit(16)?;
                self.i += 1;
            }
            Some(v)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Flags

/// One flag as written: `--name=value` or `--name`.
struct Flag {
    name: String,
    value: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum FlagKind {
    Str,
    Bool,
    Repeated,
}

struct Flags {
    list: Vec<Flag>,
}

impl Flags {
    fn new(words: Vec<String>) -> Flags {
        let list = words
            .into_iter()
            .map(|w| {
                let w = &w[2..];
                match w.split_once('=') {
                    Some((n, v)) => Flag {
                        name: n.to_string(),
                        value: Some(v.to_string()),
                    },
                    None => Flag {
                        name: w.to_string(),
                        value: None,
                    },
                }
            })
            .collect();
        Flags { list }
    }

    /// Checks every flag against `allowed` (name, kind); unknown, duplicate and valueless
    /// string flags are errors.
    fn check(&self, allowed: &[(&str, FlagKind)]) -> Result<(), ParseErrorKind> {
        let mut seen: Vec<&str> = Vec::new();
        for f in &self.list {
            let Some((_, kind)) = allowed.iter().find(|(n, _)| *n == f.name) else {
                return Err(ParseErrorKind::UnknownFlag(f.name.clone()));
            };
            if *kind != FlagKind::Repeated {
                if seen.contains(&f.name.as_str()) {
                    return Err(ParseErrorKind::DuplicateFlag(f.name.clone()));
                }
                seen.push(&f.name);
            }
            match (kind, &f.value) {
                (FlagKind::Bool, Some(v)) if v.is_empty() => {
                    return Err(ParseErrorKind::MissingFlagValue(f.name.clone()));
                }
                (FlagKind::Bool, Some(v))
                    if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") =>
                {
                    return Err(ParseErrorKind::BadBool {
                        flag: f.name.clone(),
                        value: v.clone(),
                    });
                }
                (FlagKind::Str | FlagKind::Repeated, None) => {
                    return Err(ParseErrorKind::MissingFlagValue(f.name.clone()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn string(&self, name: &str) -> Option<String> {
        self.list
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.value.clone())
    }

    fn bool(&self, name: &str) -> bool {
        self.list.iter().find(|f| f.name == name).is_some_and(|f| {
            f.value
                .as_deref()
                .is_none_or(|v| v.eq_ignore_ascii_case("true"))
        })
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.list
            .iter()
            .filter(|f| f.name == name)
            .filter_map(|f| f.value.clone())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Instructions

fn instruction(raw: RawInstruction, escape: char) -> Result<Instruction, ParseError> {
    let line = raw.start;
    let mut command = command(&raw.line, raw.heredocs, escape, false).map_err(|k| k.at(line))?;
    if let Command::Onbuild { trigger, .. } = &mut command {
        trigger.start_line = raw.start;
        trigger.end_line = raw.end;
    }
    Ok(Instruction {
        start_line: raw.start,
        end_line: raw.end,
        original: raw.original,
        command,
    })
}

fn check_quotes(words: &[&str], escape: char) -> Result<(), ParseErrorKind> {
    let lex = Lexer::new(escape);
    for w in words {
        lex.check(w).map_err(ParseErrorKind::Quote)?;
    }
    Ok(())
}

fn command(
    line: &str,
    heredocs: Vec<Heredoc>,
    escape: char,
    in_onbuild: bool,
) -> Result<Command, ParseErrorKind> {
    use FlagKind::*;
    let (cmd, rest) = split_command(line);
    let (flag_words, args) = extract_flags(rest);
    let flags = Flags::new(flag_words);
    let no_flags = || flags.check(&[]);
    match cmd.as_str() {
        "from" => {
            flags.check(&[("platform", Str)])?;
            let words: Vec<&str> = args.split_whitespace().collect();
            let name = match words.len() {
                1 => None,
                3 if words[1].eq_ignore_ascii_case("as") => {
                    let name = words[2].to_ascii_lowercase();
                    if !valid_stage_name(&name) {
                        return Err(ParseErrorKind::InvalidStageName(words[2].to_string()));
                    }
                    Some(name)
                }
                _ => return Err(ParseErrorKind::FromArguments),
            };
            check_quotes(&words[..1], escape)?;
            Ok(Command::From {
                image: words[0].to_string(),
                platform: flags.string("platform"),
                name,
            })
        }
        "run" => {
            flags.check(&[("mount", Repeated), ("network", Str), ("security", Str)])?;
            let command = command_line(&args, "RUN")?;
            let mounts = flags
                .all("mount")
                .iter()
                .map(|m| parse_mount(m))
                .collect::<Result<_, _>>()?;
            let network = match flags.string("network").as_deref() {
                None => None,
                Some("default") => Some(NetworkMode::Default),
                Some("none") => Some(NetworkMode::None),
                Some("host") => Some(NetworkMode::Host),
                Some(other) => return Err(ParseErrorKind::Network(other.to_string())),
            };
            Ok(Command::Run(Run {
                command,
                heredocs,
                mounts,
                network,
                security: flags.string("security"),
            }))
        }
        "cmd" | "entrypoint" => {
            no_flags()?;
            let name = if cmd == "cmd" { "CMD" } else { "ENTRYPOINT" };
            let c = command_line(&args, name)?;
            Ok(if cmd == "cmd" {
                Command::Cmd(c)
            } else {
                Command::Entrypoint(c)
            })
        }
        "shell" => {
            no_flags()?;
            match parse_json(&args) {
                Some(Ok(v)) if !v.is_empty() => Ok(Command::Shell(v)),
                Some(Ok(_)) => Err(ParseErrorKind::AtLeastOneArgument("SHELL")),
                Some(Err(e)) => Err(e),
                None if args.is_empty() => Err(ParseErrorKind::AtLeastOneArgument("SHELL")),
                None => Err(ParseErrorKind::NotJson("SHELL")),
            }
        }
        "env" | "label" => {
            no_flags()?;
            let name = if cmd == "env" { "ENV" } else { "LABEL" };
            let kvs = name_values(&args, name, escape)?;
            Ok(if cmd == "env" {
                Command::Env(kvs)
            } else {
                Command::Label(kvs)
            })
        }
        "arg" => {
            no_flags()?;
            let words = parse_words(&args, escape);
            if words.is_empty() {
                return Err(ParseErrorKind::AtLeastOneArgument("ARG"));
            }
            let mut decls = Vec::new();
            for w in words {
                let decl = match w.split_once('=') {
                    Some(("", _)) => return Err(ParseErrorKind::BlankName("ARG")),
                    Some((k, v)) => {
                        check_quotes(&[v], escape)?;
                        ArgDecl {
                            name: k.to_string(),
                            default: Some(v.to_string()),
                        }
                    }
                    None => ArgDecl {
                        name: w,
                        default: None,
                    },
                };
                decls.push(decl);
            }
            Ok(Command::Arg(decls))
        }
        "expose" => {
            no_flags()?;
            let ports: Vec<String> = args.split_whitespace().map(str::to_string).collect();
            if ports.is_empty() {
                return Err(ParseErrorKind::AtLeastOneArgument("EXPOSE"));
            }
            check_quotes(
                &ports.iter().map(String::as_str).collect::<Vec<_>>(),
                escape,
            )?;
            Ok(Command::Expose(ports))
        }
        "user" | "workdir" | "stopsignal" | "maintainer" => {
            no_flags()?;
            let name = match cmd.as_str() {
                "user" => "USER",
                "workdir" => "WORKDIR",
                "stopsignal" => "STOPSIGNAL",
                _ => "MAINTAINER",
            };
            if args.is_empty() {
                return Err(ParseErrorKind::ExactlyOneArgument(name));
            }
            if name != "MAINTAINER" {
                check_quotes(&[&args], escape)?;
            }
            Ok(match name {
                "USER" => Command::User(args),
                "WORKDIR" => Command::Workdir(args),
                "STOPSIGNAL" => Command::Stopsignal(args),
                _ => Command::Maintainer(args),
            })
        }
        "volume" => {
            no_flags()?;
            let list = match parse_json(&args) {
                Some(r) => r?,
                None => args.split_whitespace().map(str::to_string).collect(),
            };
            if list.is_empty() {
                return Err(ParseErrorKind::AtLeastOneArgument("VOLUME"));
            }
            if list.iter().any(|v| v.trim().is_empty()) {
                return Err(ParseErrorKind::EmptyVolume);
            }
            check_quotes(&list.iter().map(String::as_str).collect::<Vec<_>>(), escape)?;
            Ok(Command::Volume(list))
        }
        "copy" | "add" => {
            let copy = cmd == "copy";
            let name = if copy { "COPY" } else { "ADD" };
            let mut allowed = vec![
                ("chown", Str),
                ("chmod", Str),
                ("link", Bool),
                ("exclude", Repeated),
            ];
            if copy {
                allowed.extend([("from", Str), ("parents", Bool)]);
            } else {
                allowed.extend([("checksum", Str), ("keep-git-dir", Bool), ("unpack", Bool)]);
            }
            flags.check(&allowed)?;
            let (json, mut list) = match parse_json(&args) {
                Some(r) => (true, r?),
                None => (false, args.split_whitespace().map(str::to_string).collect()),
            };
            if list.len() < 2 {
                return Err(ParseErrorKind::NoDestination(name));
            }
            let dest = list.pop().unwrap_or_default();
            let mut heredocs = heredocs.into_iter();
            let mut sources = Vec::new();
            for s in list {
                let is_heredoc = !json && parse_heredoc_word(&s)?.is_some();
                match (is_heredoc, is_heredoc.then(|| heredocs.next()).flatten()) {
                    (true, Some(h)) => sources.push(CopySource::Heredoc(h)),
                    _ => {
                        check_quotes(&[&s], escape)?;
                        sources.push(CopySource::Path(s));
                    }
                }
            }
            check_quotes(&[&dest], escape)?;
            let args = CopyArgs {
                sources,
                dest,
                json,
                from: flags.string("from"),
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                link: flags.bool("link"),
                parents: flags.bool("parents"),
                exclude: flags.all("exclude"),
                checksum: flags.string("checksum"),
                keep_git_dir: flags.bool("keep-git-dir"),
                unpack: flags
                    .list
                    .iter()
                    .any(|f| f.name == "unpack")
                    .then(|| flags.bool("unpack")),
            };
            Ok(if copy {
                Command::Copy(args)
            } else {
                Command::Add(args)
            })
        }
        "onbuild" => {
            no_flags()?;
            if in_onbuild {
                return Err(ParseErrorKind::OnbuildOnbuild);
            }
            let expression = rest.trim().to_string();
            if expression.is_empty() {
                return Err(ParseErrorKind::AtLeastOneArgument("ONBUILD"));
            }
            let (trigger, _) = split_command(&expression);
            match trigger.as_str() {
                "onbuild" => return Err(ParseErrorKind::OnbuildOnbuild),
                "from" | "maintainer" => {
                    return Err(ParseErrorKind::OnbuildTrigger(trigger.to_ascii_uppercase()));
                }
                _ => {}
            }
            let inner = command(&expression, heredocs, escape, true)?;
            Ok(Command::Onbuild {
                expression: expression.clone(),
                trigger: Box::new(Instruction {
                    start_line: 0,
                    end_line: 0,
                    original: expression,
                    command: inner,
                }),
            })
        }
        "healthcheck" => {
            let d = Str;
            flags.check(&[
                ("interval", d),
                ("timeout", d),
                ("start-period", d),
                ("start-interval", d),
                ("retries", d),
            ])?;
            let (typ, cmdline) = match args.find(char::is_whitespace) {
                Some(p) => (&args[..p], args[p..].trim()),
                None => (args.as_str(), ""),
            };
            if typ.is_empty() {
                return Err(ParseErrorKind::AtLeastOneArgument("HEALTHCHECK"));
            }
            match typ.to_ascii_uppercase().as_str() {
                "NONE" => {
                    if !cmdline.is_empty() || !flags.list.is_empty() {
                        return Err(ParseErrorKind::HealthcheckNoneArgs);
                    }
                    Ok(Command::Healthcheck(Healthcheck::None))
                }
                "CMD" => {
                    let command = match parse_json(cmdline) {
                        Some(r) => CommandLine::Exec(r?),
                        None => CommandLine::Shell(cmdline.to_string()),
                    };
                    if matches!(&command, CommandLine::Exec(v) if v.is_empty())
                        || matches!(&command, CommandLine::Shell(s) if s.is_empty())
                    {
                        return Err(ParseErrorKind::HealthcheckMissingCommand);
                    }
                    let dur = |n: &str| duration_flag(n, flags.string(n));
                    let retries = match flags.string("retries") {
                        None => 0,
                        Some(v) => match v.parse::<i64>() {
                            // BuildKit v0.8 (docker 20.10) refuses 0 too.
                            Ok(r) if r < 1 => return Err(ParseErrorKind::NegativeRetries(v)),
                            Ok(r) => r as u64,
                            Err(_) => {
                                return Err(ParseErrorKind::BadDuration {
                                    flag: "retries".into(),
                                    value: v,
                                });
                            }
                        },
                    };
                    Ok(Command::Healthcheck(Healthcheck::Check {
                        command,
                        interval: dur("interval")?,
                        timeout: dur("timeout")?,
                        start_period: dur("start-period")?,
                        start_interval: dur("start-interval")?,
                        retries,
                    }))
                }
                other => Err(ParseErrorKind::HealthcheckType(other.to_string())),
            }
        }
        _ => {
            // The word as written (BuildKit: `FOO` → "unknown instruction: FOO", `foo` → "…: foo").
            let name = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            Err(ParseErrorKind::UnknownInstruction {
                suggestion: suggest(&name),
                name,
            })
        }
    }
}

/// BuildKit's stage-name rule: `^[a-z][a-z0-9-_.]*$` after lower-casing.
pub fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn command_line(args: &str, name: &'static str) -> Result<CommandLine, ParseErrorKind> {
    match parse_json(args) {
        Some(r) => Ok(CommandLine::Exec(r?)),
        None if args.is_empty() => Err(ParseErrorKind::AtLeastOneArgument(name)),
        None => Ok(CommandLine::Shell(args.to_string())),
    }
}

/// ENV/LABEL: `KEY value` (old form: the rest of the line) or `k=v …`.
fn name_values(
    args: &str,
    name: &'static str,
    escape: char,
) -> Result<Vec<KeyValue>, ParseErrorKind> {
    let words = parse_words(args, escape);
    let Some(first) = words.first() else {
        return Err(ParseErrorKind::AtLeastOneArgument(name));
    };
    if !first.contains('=') {
        let Some(p) = args.find(char::is_whitespace) else {
            return Err(ParseErrorKind::TwoArguments(name));
        };
        let (k, v) = (&args[..p], args[p..].trim_start());
        check_quotes(&[k, v], escape)?;
        return Ok(vec![KeyValue {
            key: k.to_string(),
            value: v.to_string(),
        }]);
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(ParseErrorKind::MissingEquals(w));
        };
        if k.is_empty() {
            return Err(ParseErrorKind::BlankName(name));
        }
        check_quotes(&[k, v], escape)?;
        out.push(KeyValue {
            key: k.to_string(),
            value: v.to_string(),
        });
    }
    Ok(out)
}

/// A Go duration (`1m30s`, `500ms`, `1.5h`) in nanoseconds; 0 or absent = inherit.
fn duration_flag(flag: &str, value: Option<String>) -> Result<u64, ParseErrorKind> {
    let Some(v) = value else { return Ok(0) };
    let bad = || ParseErrorKind::BadDuration {
        flag: flag.to_string(),
        value: v.clone(),
    };
    let ns = parse_go_duration(&v).ok_or_else(bad)?;
    if ns < 0 {
        return Err(bad());
    }
    if ns == 0 {
        return Ok(0);
    }
    if ns < 1_000_000 {
        return Err(ParseErrorKind::DurationTooSmall {
            flag: flag.to_string(),
        });
    }
    Ok(ns as u64)
}

/// Go's `time.ParseDuration`.
pub fn parse_go_duration(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if n == 0 {
            return None;
        }
        let number: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[u..];
        total += number * unit;
    }
    let ns = total.round() as i128;
    Some(if neg { -ns } else { ns })
}

/// `--mount=` as BuildKit's `runmount.go` reads it (CSV fields, `key=value`).
fn parse_mount(spec: &str) -> Result<Mount, ParseErrorKind> {
    let err = |m: String| ParseErrorKind::Mount(m);
    let mut m = Mount {
        kind: MountType::Bind,
        target: None,
        source: None,
        from: None,
        id: None,
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        required: false,
        readonly: true,
        size: None,
        env: None,
    };
    let mut readonly: Option<bool> = None;
    for field in csv_fields(spec) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.to_string())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = |v: Option<String>| {
            v.ok_or_else(|| err(format!("invalid field '{field}' must be a key=value pair")))
        };
        // Go's strconv.ParseBool.
        let bool_value = |v: &Option<String>| -> Result<bool, ParseErrorKind> {
            match v.as_deref() {
                None => Ok(true),
                Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
                Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
                Some(s) => Err(err(format!("invalid value for {key}: {s}"))),
            }
        };
        // Like BuildKit, `required` and `size` are checked against the type seen so far.
        let unexpected = |kind: MountType| {
            err(format!(
                "unexpected key '{key}' for mount type '{}'",
                mount_type_name(kind)
            ))
        };
        match key.as_str() {
            "type" => {
                let v = need(value)?;
                m.kind = match v.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => return Err(err(format!("unsupported mount type \"{v}\""))),
                }
            }
            "target" | "dst" | "destination" => m.target = Some(need(value)?),
            "source" | "src" => m.source = Some(need(value)?),
            "from" => {
                let v = need(value)?;
                let mut chars = v.chars();
                while let Some(c) = chars.next() {
                    if c == '$' && chars.clone().next().is_some() {
                        return Err(err(
                            "'from' doesn't support variable expansion, define alias stage instead"
                                .into(),
                        ));
                    }
                }
                m.from = Some(v)
            }
            "id" => m.id = Some(need(value)?),
            "env" => m.env = Some(need(value)?),
            "readonly" | "ro" => readonly = Some(bool_value(&value)?),
            "readwrite" | "rw" => readonly = Some(!bool_value(&value)?),
            "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                m.required = bool_value(&value)?
            }
            "required" => return Err(unexpected(m.kind)),
            "sharing" => {
                let v = need(value)?;
                m.sharing = Some(match v.to_ascii_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    _ => return Err(err(format!("unsupported sharing value \"{v}\""))),
                })
            }
            "mode" => {
                let v = need(value)?;
                m.mode = Some(
                    u32::from_str_radix(&v, 8)
                        .map_err(|_| err(format!("invalid value {v} for mode")))?,
                );
            }
            "uid" | "gid" => {
                let v = need(value)?;
                let n = v
                    .parse::<u32>()
                    .map_err(|_| err(format!("invalid value {v} for {key}")))?;
                if key == "uid" {
                    m.uid = Some(n)
                } else {
                    m.gid = Some(n)
                }
            }
            "size" if m.kind != MountType::Tmpfs => return Err(unexpected(m.kind)),
            "size" => {
                let v = need(value)?;
                m.size = Some(
                    parse_size(&v).ok_or_else(|| err(format!("invalid value for size: {v}")))?,
                );
            }
            _ => return Err(err(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    m.readonly = readonly.unwrap_or(!matches!(m.kind, MountType::Cache | MountType::Tmpfs));
    let file_info = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info {
        for (set, what) in [
            (m.mode.is_some(), "mode"),
            (m.uid.is_some(), "uid"),
            (m.gid.is_some(), "gid"),
        ] {
            if set {
                return Err(err(format!(
                    "{what} not allowed for \"{}\" type mounts",
                    mount_type_name(m.kind)
                )));
            }
        }
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err(err("secret mount should not have a from".into()));
        }
        if m.sharing.is_some() {
            return Err(err("secret mount should not define sharing".into()));
        }
        if m.source.is_some() && m.id.is_some() {
            return Err(err("both source and id can't be set".into()));
        }
        if m.id.is_none() && m.source.is_none() && m.target.is_none() && m.env.is_none() {
            return Err(err(
                "invalid secret mount. one of source, target required".into()
            ));
        }
        if m.id.is_none() {
            m.id = m.source.take();
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(err(format!(
            "invalid cache sharing set for {} mount",
            mount_type_name(m.kind)
        )));
    }
    if m.kind == MountType::Cache && m.sharing.is_none() {
        m.sharing = Some(CacheSharing::Shared);
    }
    // Not a parse error in BuildKit (checked when the mount is made): Berth refuses a bind,
    // cache or tmpfs mount without a target up front.
    if matches!(
        m.kind,
        MountType::Bind | MountType::Cache | MountType::Tmpfs
    ) && m.target.is_none()
    {
        return Err(err(format!(
            "mount type {} requires a target",
            mount_type_name(m.kind)
        )));
    }
    Ok(m)
}

fn mount_type_name(t: MountType) -> &'static str {
    match t {
        MountType::Bind => "bind",
        MountType::Cache => "cache",
        MountType::Tmpfs => "tmpfs",
        MountType::Secret => "secret",
        MountType::Ssh => "ssh",
    }
}

/// Comma-separated fields; a field may be double-quoted (Go's encoding/csv).
fn csv_fields(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' if quoted && chars.get(i + 1) == Some(&'"') => {
                cur.push('"');
                i += 1;
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
        i += 1;
    }
    out.push(cur);
    out.into_iter().filter(|f| !f.is_empty()).collect()
}

/// Docker's `RAMInBytes`: `64m`, `1g`, `512k`, `100` (binary multiples).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let t = t.strip_suffix('i').unwrap_or(t);
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        'p' => (&t[..t.len() - 1], 1 << 50),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    if n < 0.0 || !n.is_finite() {
        return None;
    }
    Some((n * mult as f64) as u64)
}

/// The instruction closest to `name` (edit distance ≤ 2 or a common prefix), as BuildKit's
/// `suggest` does.
fn suggest(name: &str) -> Option<String> {
    let name = name.to_ascii_uppercase();
    let mut best: Option<(usize, &str)> = None;
    for cand in INSTRUCTIONS {
        let d = edit_distance(&name, cand);
        if d <= 2 && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    // BuildKit suggests from its lower-case command table.
    best.map(|(_, c)| c.to_ascii_lowercase())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Dockerfile {
        parse(text).unwrap_or_else(|e| panic!("{text}\n{e}"))
    }

    fn one(text: &str) -> Command {
        let df = p(text);
        assert_eq!(df.instructions.len(), 1, "{text}");
        df.instructions[0].command.clone()
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(df) => panic!("expected an error for {text:?}, got {df:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn shell(s: &str) -> CommandLine {
        CommandLine::Shell(s.into())
    }

    fn exec(v: &[&str]) -> CommandLine {
        CommandLine::Exec(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn directives_at_the_top_only() {
        let df = p("# syntax=docker/dockerfile:1\n#ESCAPE = `\n# check=skip=all\nFROM a\n");
        assert_eq!(df.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(df.directives.escape, '`');
        assert_eq!(df.directives.check.as_deref(), Some("skip=all"));
        // After an empty line, a comment, an instruction or an unknown directive: comments.
        for text in [
            "\n# escape=`\nFROM a",
            "# hello\n# escape=`\nFROM a",
            "FROM a\n# escape=`\n",
            "# unknown=x\n# escape=`\nFROM a",
        ] {
            assert_eq!(p(text).directives.escape, '\\', "{text}");
        }
        assert_eq!(
            err("# escape=`\n# ESCAPE=\\\nFROM a"),
            "Dockerfile:2: only one escape parser directive can be used"
        );
        assert_eq!(
            err("# escape=x\nFROM a"),
            "Dockerfile:1: invalid escape token 'x' does not match ` or \\"
        );
        // Not a directive without a value; a BOM is dropped.
        assert_eq!(p("\u{feff}# escape=`\nFROM a").directives.escape, '`');
    }

    #[test]
    fn continuations_and_comments() {
        let df = p("FROM a\nRUN echo a \\\n  # a comment\n    b \\\t\n\n  c\nRUN x");
        let run = &df.instructions[1];
        assert_eq!((run.start_line, run.end_line), (2, 6));
        assert_eq!(
            run.command,
            Command::Run(Run {
                command: shell("echo a     b   c"),
                heredocs: vec![],
                mounts: vec![],
                network: None,
                security: None
            })
        );
        assert_eq!(
            run.original,
            "RUN echo a \\\n  # a comment\n    b \\\t\n\n  c"
        );
        assert_eq!(df.instructions[2].start_line, 7);
        assert_eq!(df.warnings.len(), 1);
        assert_eq!(df.warnings[0].line, 2);
        // The backtick escape: a backslash is an ordinary character.
        let df = p("# escape=`\nFROM a\nRUN dir c:\\ `\n  && echo x\nWORKDIR c:\\windows");
        assert_eq!(df.instructions[1].command.name(), "RUN");
        assert!(
            matches!(&df.instructions[1].command, Command::Run(r) if r.command == shell("dir c:\\   && echo x"))
        );
        assert_eq!(
            df.instructions[2].command,
            Command::Workdir("c:\\windows".into())
        );
        // A continuation at the end of the file, CRLF line endings, indented instructions.
        let df = p("FROM a\r\n  RUN b \\\r\n");
        assert!(matches!(&df.instructions[1].command, Command::Run(r) if r.command == shell("b")));
        // '#' inside a line is an argument.
        assert!(
            matches!(one("RUN echo # not a comment"), Command::Run(r) if r.command == shell("echo # not a comment"))
        );
    }

    #[test]
    fn heredocs() {
        let df = p("FROM a\nRUN <<EOF\n#!/usr/bin/env python3\nprint(\"$HOME\")\nEOF\nRUN x");
        let Command::Run(r) = &df.instructions[1].command else {
            panic!()
        };
        assert_eq!(r.command, shell("<<EOF"));
        assert_eq!(
            r.heredocs,
            vec![Heredoc {
                name: "EOF".into(),
                content: "#!/usr/bin/env python3\nprint(\"$HOME\")\n".into(),
                expand: true,
                chomp: false,
                fd: None
            }]
        );
        assert_eq!(
            (df.instructions[1].start_line, df.instructions[1].end_line),
            (2, 5)
        );
        assert_eq!(df.instructions[2].start_line, 6);

        // Several heredocs, <<- strips tabs, quoted delimiters disable expansion, fd numbers.
        let Command::Run(r) = one("RUN <<-A 3<<'B' cat - /dev/fd/3\n\t\tone\n\tA\n$x\nB") else {
            panic!()
        };
        assert_eq!(r.heredocs.len(), 2);
        assert_eq!(
            (
                r.heredocs[0].name.as_str(),
                r.heredocs[0].content.as_str(),
                r.heredocs[0].chomp
            ),
            ("A", "one\n", true)
        );
        assert_eq!(
            (
                r.heredocs[1].name.as_str(),
                r.heredocs[1].expand,
                r.heredocs[1].fd
            ),
            ("B", false, Some(3))
        );
        let Command::Run(r) = one("RUN python3 <<\"EOT\"\nprint(1)\nEOT") else {
            panic!()
        };
        assert!(!r.heredocs[0].expand);

        // COPY <<EOF /file, and heredocs mixed with paths.
        let Command::Copy(c) = one("COPY --chmod=755 <<EOF a.txt /app/\necho hi\nEOF") else {
            panic!()
        };
        assert_eq!(c.dest, "/app/");
        assert!(matches!(&c.sources[0], CopySource::Heredoc(h) if h.content == "echo hi\n"));
        assert_eq!(c.sources[1], CopySource::Path("a.txt".into()));
        assert_eq!(c.chmod.as_deref(), Some("755"));

        // Not heredocs: quoted, exec form, other instructions, `<<` alone.
        assert!(matches!(one("RUN echo '<<EOF'"), Command::Run(r) if r.heredocs.is_empty()));
        assert!(
            matches!(one("RUN [\"cat\", \"<<EOF\"]"), Command::Run(r) if r.heredocs.is_empty())
        );
        assert!(matches!(one("LABEL a=<<EOF"), Command::Label(_)));
        assert!(matches!(one("RUN echo $((1<<2))"), Command::Run(r) if r.heredocs.is_empty()));

        // ONBUILD RUN <<EOF reads the body too.
        let Command::Onbuild { trigger, .. } = one("ONBUILD RUN <<EOF\nx\nEOF") else {
            panic!()
        };
        assert!(matches!(&trigger.command, Command::Run(r) if r.heredocs[0].content == "x\n"));

        assert_eq!(
            err("FROM a\nRUN <<EOF\nnever ends\n"),
            "Dockerfile:2: unterminated heredoc"
        );
        assert_eq!(
            err("FROM a\nRUN <<A <<B\nx\nA\n"),
            "Dockerfile:2: unterminated heredoc"
        );
    }

    /// The heredoc cases of BuildKit's parser tests (`TestParseExtractsHeredoc`,
    /// `TestParseHeredocHelpers`), checked as behaviour. BuildKit keeps `<<-` bodies unchomped
    /// until the instruction uses them; Berth stores them chomped.
    #[test]
    fn buildkit_heredoc_vectors() {
        let text = "FROM alpine:3.6\nENV NAME=me\nRUN ls\nRUN <<EMPTY\nEMPTY\nRUN 3<<EMPTY2\nEMPTY2\nRUN \"<<NOHEREDOC\"\nRUN <<INDENT\n\tfoo\n\tbar\nINDENT\nRUN <<-UNINDENT\n\tbaz\n\tquux\nUNINDENT\nRUN <<-UNINDENT2\n\tbaz\n\tquux\n\tUNINDENT2\nRUN <<-'NOEXPAND'\n\tdon't expand $NAME\nNOEXPAND\nRUN <<COMMENT\n# internal comment\necho foo bar # trailing comment\nCOMMENT\nRUN --mount=type=cache,target=/foo <<MOUNT\necho hello\nMOUNT\nCOPY <<FILE1 <<FILE2 /dest\ncontent 1\nFILE1\ncontent 2\nFILE2\nCOPY <<X <<Y /dest\nY\nX\nX\nY\nRUN <<eo'f'\necho foo\neof\nRUN <<eo\\'f\necho foo\neo'f\nRUN <<'e'o\\'f\necho foo\neo'f\nRUN <<'one two'\necho bar\none two\nRUN <<$EOF\n$EOF\nRUN <<  EOF\nEOF\nRUN <<  EOF  > foo\nEOF\nRUN << -EOF\n-EOF\n";
        let df = p(text);
        type Doc = (String, String, bool, bool, Option<u32>);
        let got: Vec<Vec<Doc>> = df
            .instructions
            .iter()
            .filter_map(|i| match &i.command {
                Command::Run(r) => Some(r.heredocs.clone()),
                Command::Copy(c) => Some(
                    c.sources
                        .iter()
                        .filter_map(|s| match s {
                            CopySource::Heredoc(h) => Some(h.clone()),
                            CopySource::Path(_) => None,
                        })
                        .collect(),
                ),
                _ => None,
            })
            .map(|hs| {
                hs.into_iter()
                    .map(|h| (h.name, h.content, h.expand, h.chomp, h.fd))
                    .collect()
            })
            .collect();
        let h = |n: &str, c: &str, e: bool, ch: bool, fd: Option<u32>| {
            (n.to_string(), c.to_string(), e, ch, fd)
        };
        let want = vec![
            vec![],
            vec![h("EMPTY", "", true, false, None)],
            vec![h("EMPTY2", "", true, false, Some(3))],
            vec![],
            vec![h("INDENT", "\tfoo\n\tbar\n", true, false, None)],
            vec![h("UNINDENT", "baz\nquux\n", true, true, None)],
            vec![h("UNINDENT2", "baz\nquux\n", true, true, None)],
            vec![h("NOEXPAND", "don't expand $NAME\n", false, true, None)],
            vec![h(
                "COMMENT",
                "# internal comment\necho foo bar # trailing comment\n",
                true,
                false,
                None,
            )],
            vec![h("MOUNT", "echo hello\n", true, false, None)],
            vec![
                h("FILE1", "content 1\n", true, false, None),
                h("FILE2", "content 2\n", true, false, None),
            ],
            vec![
                h("X", "Y\n", true, false, None),
                h("Y", "X\n", true, false, None),
            ],
            vec![h("eof", "echo foo\n", false, false, None)],
            vec![h("eo'f", "echo foo\n", true, false, None)],
            vec![h("eo'f", "echo foo\n", false, false, None)],
            vec![h("one two", "echo bar\n", false, false, None)],
            vec![h("$EOF", "", true, false, None)],
            vec![h("EOF", "", true, false, None)],
            vec![h("EOF", "", true, false, None)],
            vec![h("-EOF", "", true, false, None)],
        ];
        assert_eq!(got, want);
        // Valid and invalid heredoc words.
        for w in [
            "<<EOF",
            "<<'EOF'",
            "<<\"EOF\"",
            "<<-EOF",
            "<<-'EOF'",
            "<<-\"EOF\"",
            "<<EO\"F\"",
        ] {
            assert_eq!(
                parse_heredoc_word(w)
                    .ok()
                    .flatten()
                    .map(|h| h.name)
                    .as_deref(),
                Some("EOF"),
                "{w}"
            );
        }
        for w in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF"] {
            assert_eq!(parse_heredoc_word(w), Ok(None), "{w}");
        }
        for w in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
            assert!(parse_heredoc_word(w).is_err(), "{w}");
        }
        assert_eq!(
            err("FROM a\nRUN <<'EOF\nx\nEOF"),
            "Dockerfile:2: unexpected end of statement while looking for matching single-quote"
        );
        // JSON form never has heredocs.
        assert!(matches!(one("RUN [\"<<'EOF'\"]"), Command::Run(r) if r.heredocs.is_empty()));
    }

    #[test]
    fn shebang_and_directive_fields() {
        let df = p(
            "#!/usr/bin/env docker-build\n# syntax = docker/dockerfile:1 // opts\n# check = skip=all // x\n# escape=`\nFROM a",
        );
        assert_eq!(df.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(df.directives.check.as_deref(), Some("skip=all"));
        assert_eq!(
            df.directives.escape, '\\',
            "escape after a shebang is a comment"
        );
        assert_eq!(p("# escape=`\n# syntax=x\nFROM a").directives.escape, '`');
        assert_eq!(p("#!/bin/sh\n\n# escape=`\nFROM a").directives.escape, '\\');
        // BuildKit's TestDirectives: a non-directive comment after escape ends them.
        let df = p("#escape=\\\n# key = FOO bar\n\n# smth\nFROM a");
        assert_eq!(
            (df.directives.escape, df.directives.syntax.clone()),
            ('\\', None)
        );
    }

    /// BuildKit's `TestParseWarnsOnEmptyContinutationLine`.
    #[test]
    fn empty_continuation_warnings() {
        let df = p(
            "\nFROM alpine:3.6\n\nRUN valid \\\n    continuation\n\nRUN something \\\n\n    following \\\n\n    more\n\nRUN another \\\n\n    thing\n\nRUN non-indented \\\n# this is a comment\n   after-comment\n\nRUN indented \\\n    # this is an indented comment\n    comment\n\t",
        );
        assert_eq!(df.warnings.len(), 2);
        assert!(
            df.warnings[0]
                .message
                .contains("Empty continuation line found in")
        );
        assert!(
            df.warnings[0]
                .message
                .contains("RUN something     following     more")
        );
        assert!(df.warnings[1].message.contains("RUN another     thing"));
        assert!(
            df.warnings[0]
                .message
                .contains("will become errors in a future release")
        );
        assert_eq!(df.warnings[0].line, 7);
        let runs: Vec<String> = df
            .instructions
            .iter()
            .filter_map(|i| match &i.command {
                Command::Run(r) => Some(format!("{:?}", r.command)),
                _ => None,
            })
            .collect();
        assert_eq!(
            runs[3],
            format!("{:?}", shell("non-indented    after-comment"))
        );
        assert_eq!(runs[4], format!("{:?}", shell("indented     comment")));
    }

    /// BuildKit's `TestJSONArraysOfStrings`.
    #[test]
    fn buildkit_json_vectors() {
        let valid: &[(&str, &[&str])] = &[
            ("[]", &[]),
            ("[\"\"]", &[""]),
            ("[\"a\"]", &["a"]),
            ("[\"a\",\"b\"]", &["a", "b"]),
            ("[ \"a\", \"b\" ]", &["a", "b"]),
            ("[\t\"a\",\t\"b\"\t]", &["a", "b"]),
            ("\t[\t\"a\",\t\"b\"\t]\t", &["a", "b"]),
            (
                "[\"abc 123\", \"♥\", \"☃\", \"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000\"]",
                &["abc 123", "♥", "☃", "\" \\ / \u{8} \u{c} \n \r \t \u{0}"],
            ),
        ];
        for (json, want) in valid {
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(parse_json(json), Some(Ok(want)), "{json}");
        }
        for json in [
            "[\"a\",42,\"b\"]",
            "[\"a\",123.456,\"b\"]",
            "[\"a\",{},\"b\"]",
            "[\"a\",{\"c\": \"d\"},\"b\"]",
            "[\"a\",[\"c\"],\"b\"]",
            "[\"a\",true,\"b\"]",
            "[\"a\",false,\"b\"]",
            "[\"a\",null,\"b\"]",
        ] {
            assert_eq!(
                parse_json(json),
                Some(Err(ParseErrorKind::NotStringArray)),
                "{json}"
            );
        }
        // Old-form ENV/LABEL (BuildKit's TestParseNameVal*).
        assert_eq!(
            one("LABEL foo bar"),
            Command::Label(vec![KeyValue {
                key: "foo".into(),
                value: "bar".into()
            }])
        );
        assert_eq!(err("ENV foo"), "Dockerfile:1: ENV must have two arguments");
    }

    #[test]
    fn exec_and_shell_forms() {
        assert_eq!(
            one("CMD [\"a\", \"b c\"]"),
            Command::Cmd(exec(&["a", "b c"]))
        );
        assert_eq!(one("CMD []"), Command::Cmd(exec(&[])));
        assert_eq!(
            one("ENTRYPOINT [ \"a\\u00e9\\n\" ]"),
            Command::Entrypoint(exec(&["aé\n"]))
        );
        // Not JSON: shell form, as written.
        assert_eq!(one("CMD [a, b]"), Command::Cmd(shell("[a, b]")));
        assert_eq!(one("CMD ['a']"), Command::Cmd(shell("['a']")));
        assert_eq!(
            one("CMD [\"a\"] extra"),
            Command::Cmd(shell("[\"a\"] extra"))
        );
        assert_eq!(one("CMD echo  hi  "), Command::Cmd(shell("echo  hi")));
        // JSON, but not all strings: an error.
        assert_eq!(
            err("CMD [\"a\", 1]"),
            "Dockerfile:1: when using JSON array syntax, arrays must be comprised of strings only"
        );
        assert_eq!(
            err("RUN"),
            "Dockerfile:1: RUN requires at least one argument"
        );
        assert_eq!(
            one("SHELL [\"/bin/bash\", \"-euo\", \"pipefail\", \"-c\"]"),
            Command::Shell(vec![
                "/bin/bash".into(),
                "-euo".into(),
                "pipefail".into(),
                "-c".into()
            ])
        );
        assert_eq!(
            err("SHELL /bin/sh -c"),
            "Dockerfile:1: SHELL requires the arguments to be in JSON form"
        );
        assert_eq!(
            err("SHELL []"),
            "Dockerfile:1: SHELL requires at least one argument"
        );
    }

    #[test]
    fn from_forms() {
        assert_eq!(
            one("FROM alpine"),
            Command::From {
                image: "alpine".into(),
                platform: None,
                name: None
            }
        );
        assert_eq!(
            one("from --platform=$BUILDPLATFORM golang:1.22 As Build-Env"),
            Command::From {
                image: "golang:1.22".into(),
                platform: Some("$BUILDPLATFORM".into()),
                name: Some("build-env".into())
            }
        );
        assert_eq!(
            err("FROM"),
            "Dockerfile:1: FROM requires either one or three arguments"
        );
        assert_eq!(
            err("FROM a b"),
            "Dockerfile:1: FROM requires either one or three arguments"
        );
        assert_eq!(
            err("FROM a is b"),
            "Dockerfile:1: FROM requires either one or three arguments"
        );
        assert_eq!(
            err("FROM a AS 1x"),
            "Dockerfile:1: invalid name for build stage: \"1x\", name can't start with a number or contain symbols"
        );
        assert_eq!(
            err("FROM --plaform=x a"),
            "Dockerfile:1: unknown flag: --plaform"
        );
    }

    #[test]
    fn env_label_arg() {
        assert_eq!(
            one("ENV A b c"),
            Command::Env(vec![KeyValue {
                key: "A".into(),
                value: "b c".into()
            }])
        );
        assert_eq!(
            one("ENV A=1 B=\"two words\" C=three\\ words D="),
            Command::Env(vec![
                KeyValue {
                    key: "A".into(),
                    value: "1".into()
                },
                KeyValue {
                    key: "B".into(),
                    value: "\"two words\"".into()
                },
                KeyValue {
                    key: "C".into(),
                    value: "three\\ words".into()
                },
                KeyValue {
                    key: "D".into(),
                    value: "".into()
                },
            ])
        );
        assert_eq!(
            one("LABEL \"com.example.vendor\"=\"ACME Inc\" version=1.0 multi.line=\"a \\\nb\""),
            Command::Label(vec![
                KeyValue {
                    key: "\"com.example.vendor\"".into(),
                    value: "\"ACME Inc\"".into()
                },
                KeyValue {
                    key: "version".into(),
                    value: "1.0".into()
                },
                KeyValue {
                    key: "multi.line".into(),
                    value: "\"a b\"".into()
                },
            ])
        );
        assert_eq!(err("ENV A"), "Dockerfile:1: ENV must have two arguments");
        assert_eq!(
            err("ENV"),
            "Dockerfile:1: ENV requires at least one argument"
        );
        assert_eq!(
            err("ENV A=1 B"),
            "Dockerfile:1: Syntax error - can't find = in \"B\". Must be of the form: name=value"
        );
        assert_eq!(
            err("LABEL =x"),
            "Dockerfile:1: LABEL names can not be blank"
        );
        assert_eq!(
            err("ENV A=\"open"),
            "Dockerfile:1: unexpected end of statement while looking for matching double-quote"
        );
        assert_eq!(
            one("ARG A B=2 C=\"x y\""),
            Command::Arg(vec![
                ArgDecl {
                    name: "A".into(),
                    default: None
                },
                ArgDecl {
                    name: "B".into(),
                    default: Some("2".into())
                },
                ArgDecl {
                    name: "C".into(),
                    default: Some("\"x y\"".into())
                },
            ])
        );
        assert_eq!(
            err("ARG"),
            "Dockerfile:1: ARG requires at least one argument"
        );
        assert_eq!(err("ARG =v"), "Dockerfile:1: ARG names can not be blank");
    }

    #[test]
    fn single_argument_instructions() {
        assert_eq!(one("USER app:app"), Command::User("app:app".into()));
        assert_eq!(one("WORKDIR /a b"), Command::Workdir("/a b".into()));
        assert_eq!(
            one("STOPSIGNAL SIGQUIT"),
            Command::Stopsignal("SIGQUIT".into())
        );
        assert_eq!(
            one("MAINTAINER Jane <jane@example.com>"),
            Command::Maintainer("Jane <jane@example.com>".into())
        );
        assert_eq!(
            err("USER"),
            "Dockerfile:1: USER requires exactly one argument"
        );
        assert_eq!(
            err("FROM a\n\nWORKDIR"),
            "Dockerfile:3: WORKDIR requires exactly one argument"
        );
        assert_eq!(
            one("EXPOSE 80/tcp 53/udp ${P}"),
            Command::Expose(vec!["80/tcp".into(), "53/udp".into(), "${P}".into()])
        );
        assert_eq!(
            err("EXPOSE"),
            "Dockerfile:1: EXPOSE requires at least one argument"
        );
        assert_eq!(
            one("VOLUME [\"/a\", \"/b\"]"),
            Command::Volume(vec!["/a".into(), "/b".into()])
        );
        assert_eq!(
            one("VOLUME /a /b"),
            Command::Volume(vec!["/a".into(), "/b".into()])
        );
        assert_eq!(
            err("VOLUME [\"\"]"),
            "Dockerfile:1: VOLUME specified can not be an empty string"
        );
        assert_eq!(err("USER --foo=bar x"), "Dockerfile:1: unknown flag: --foo");
    }

    #[test]
    fn copy_and_add() {
        let Command::Copy(c) = one(
            "COPY --from=build --chown=1000:1000 --link --parents --exclude=*.md --exclude=.git [\"a b\", \"c\", \"/dst/\"]",
        ) else {
            panic!()
        };
        assert_eq!(
            c.sources,
            vec![CopySource::Path("a b".into()), CopySource::Path("c".into())]
        );
        assert_eq!(c.dest, "/dst/");
        assert!(c.json && c.link && c.parents);
        assert_eq!(c.from.as_deref(), Some("build"));
        assert_eq!(c.chown.as_deref(), Some("1000:1000"));
        assert_eq!(c.exclude, vec!["*.md".to_string(), ".git".to_string()]);
        let Command::Add(a) =
            one("ADD --checksum=sha256:abc --keep-git-dir=true --link=false https://x/y.tgz /opt/")
        else {
            panic!()
        };
        assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
        assert!(a.keep_git_dir && !a.link);
        assert_eq!(
            err("COPY a"),
            "Dockerfile:1: COPY requires at least two arguments, but only one was provided. Destination could not be determined"
        );
        assert_eq!(
            err("ADD"),
            "Dockerfile:1: ADD requires at least two arguments, but only one was provided. Destination could not be determined"
        );
        let Command::Add(a) = one("ADD --unpack=false x.tar.gz /d/") else {
            panic!()
        };
        assert_eq!(a.unpack, Some(false));
        let Command::Add(a) = one("ADD x.tar.gz /d/") else {
            panic!()
        };
        assert_eq!(a.unpack, None);
        assert_eq!(
            err("COPY --checksum=x a b"),
            "Dockerfile:1: unknown flag: --checksum"
        );
        assert_eq!(
            err("ADD --from=x a b"),
            "Dockerfile:1: unknown flag: --from"
        );
        assert_eq!(
            err("COPY --from=a --from=b a b"),
            "Dockerfile:1: duplicate flag specified: --from"
        );
        assert_eq!(
            err("COPY --from a b"),
            "Dockerfile:1: missing a value on flag: --from"
        );
        assert_eq!(
            err("COPY --link=yes a b"),
            "Dockerfile:1: expecting boolean value for flag link, not: yes"
        );
        assert_eq!(
            err("COPY --link= a b"),
            "Dockerfile:1: missing a value on flag: --link"
        );
        // A bare -- ends the flags; quotes inside flags are removed, backslashes escape.
        let Command::Copy(c) = one("COPY --chown=a\\ b --chmod=\"7\\\"55\" x /y") else {
            panic!()
        };
        assert_eq!(
            (c.chown.as_deref(), c.chmod.as_deref()),
            (Some("a b"), Some("7\"55"))
        );
        let Command::Copy(c) = one("COPY --chown=\"app:app\" -- --weird /dst") else {
            panic!()
        };
        assert_eq!(c.chown.as_deref(), Some("app:app"));
        assert_eq!(c.sources, vec![CopySource::Path("--weird".into())]);
    }

    #[test]
    fn run_flags_and_mounts() {
        let Command::Run(r) = one(
            "RUN --mount=type=cache,target=/root/.cache/go-build,id=gobuild,sharing=locked \\\n    --mount=type=secret,id=npmrc,target=/root/.npmrc,required \\\n    --mount=type=bind,from=build,source=/out,target=/in,rw \\\n    --mount=type=tmpfs,target=/tmp,size=64m \\\n    --mount=type=ssh \\\n    --mount=type=secret,id=tok,env=TOKEN \\\n    --network=none go build ./...",
        ) else {
            panic!()
        };
        assert_eq!(r.network, Some(NetworkMode::None));
        assert_eq!(r.command, shell("go build ./..."));
        let m = &r.mounts;
        assert_eq!(m.len(), 6);
        assert_eq!(
            (m[0].kind, m[0].sharing, m[0].readonly, m[0].id.as_deref()),
            (
                MountType::Cache,
                Some(CacheSharing::Locked),
                false,
                Some("gobuild")
            )
        );
        assert_eq!(
            (m[1].kind, m[1].required, m[1].readonly),
            (MountType::Secret, true, true)
        );
        assert_eq!(m[1].secret_target().as_deref(), Some("/root/.npmrc"));
        assert_eq!(
            (m[2].from.as_deref(), m[2].source.as_deref(), m[2].readonly),
            (Some("build"), Some("/out"), false)
        );
        assert_eq!(m[3].size, Some(64 << 20));
        assert_eq!(m[4].kind, MountType::Ssh);
        assert_eq!(
            (m[5].env.as_deref(), m[5].secret_target()),
            (Some("TOKEN"), None)
        );
        let Command::Run(r) = one("RUN --mount=type=secret,id=aws cat /run/secrets/aws") else {
            panic!()
        };
        assert_eq!(
            r.mounts[0].secret_target().as_deref(),
            Some("/run/secrets/aws")
        );
        let Command::Run(r) = one("RUN --mount=type=secret,target=/etc/key x") else {
            panic!()
        };
        assert_eq!(r.mounts[0].secret_id().as_deref(), Some("key"));
        let Command::Run(r) = one(
            "RUN --mount=type=cache,target=/c,mode=0700,uid=1000,gid=1000 --mount=target=/src x",
        ) else {
            panic!()
        };
        assert_eq!(
            (r.mounts[0].mode, r.mounts[0].uid, r.mounts[0].gid),
            (Some(0o700), Some(1000), Some(1000))
        );
        assert_eq!(
            (r.mounts[1].kind, r.mounts[1].readonly),
            (MountType::Bind, true)
        );

        for (spec, msg) in [
            ("type=volume,target=/x", "unsupported mount type \"volume\""),
            (
                "type=cache,target=/x,color=red",
                "unexpected key 'color' in 'color=red'",
            ),
            (
                "type=bind,target=/x,mode=0755",
                "mode not allowed for \"bind\" type mounts",
            ),
            (
                "type=tmpfs,target=/x,uid=1",
                "uid not allowed for \"tmpfs\" type mounts",
            ),
            (
                "type=cache,target=/x,required",
                "unexpected key 'required' for mount type 'cache'",
            ),
            (
                "required,type=secret,id=x",
                "unexpected key 'required' for mount type 'bind'",
            ),
            (
                "type=cache,target=/x,size=1m",
                "unexpected key 'size' for mount type 'cache'",
            ),
            (
                "type=secret,id=x,sharing=locked",
                "secret mount should not define sharing",
            ),
            (
                "type=bind,from=$STAGE,target=/x",
                "'from' doesn't support variable expansion, define alias stage instead",
            ),
            (
                "type=cache,target=/x,ro=maybe",
                "invalid value for ro: maybe",
            ),
            ("type=cache,target=/x,uid=-1", "invalid value -1 for uid"),
            (
                "type=bind,target=/x,sharing=locked",
                "invalid cache sharing set for bind mount",
            ),
            (
                "type=cache,target=/x,sharing=everyone",
                "unsupported sharing value \"everyone\"",
            ),
            (
                "type=cache,target=/x,mode=999",
                "invalid value 999 for mode",
            ),
            (
                "type=secret,id=a,from=b",
                "secret mount should not have a from",
            ),
            (
                "type=secret",
                "invalid secret mount. one of source, target required",
            ),
            ("type=cache", "mount type cache requires a target"),
            (
                "type=tmpfs,target=/t,size=lots",
                "invalid value for size: lots",
            ),
            (
                "type=cache,target",
                "invalid field 'target' must be a key=value pair",
            ),
        ] {
            assert_eq!(
                err(&format!("RUN --mount={spec} x")),
                format!("Dockerfile:1: {msg}"),
                "{spec}"
            );
        }
        assert_eq!(
            err("RUN --network=bridge x"),
            "Dockerfile:1: network mode \"bridge\" not supported"
        );
        assert_eq!(
            err("RUN --mount x"),
            "Dockerfile:1: missing a value on flag: --mount"
        );
    }

    #[test]
    fn onbuild() {
        let Command::Onbuild {
            expression,
            trigger,
        } = one("ONBUILD COPY . /app/src")
        else {
            panic!()
        };
        assert_eq!(expression, "COPY . /app/src");
        assert_eq!(trigger.command.name(), "COPY");
        assert_eq!(
            err("ONBUILD ONBUILD RUN x"),
            "Dockerfile:1: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
        );
        assert_eq!(
            err("ONBUILD from x"),
            "Dockerfile:1: FROM isn't allowed as an ONBUILD trigger"
        );
        assert_eq!(
            err("ONBUILD MAINTAINER x"),
            "Dockerfile:1: MAINTAINER isn't allowed as an ONBUILD trigger"
        );
        assert_eq!(
            err("ONBUILD"),
            "Dockerfile:1: ONBUILD requires at least one argument"
        );
        assert_eq!(
            err("ONBUILD RUNN x"),
            "Dockerfile:1: unknown instruction: RUNN (did you mean run?)"
        );
    }

    #[test]
    fn healthcheck() {
        assert_eq!(
            one("HEALTHCHECK NONE"),
            Command::Healthcheck(Healthcheck::None)
        );
        let Command::Healthcheck(h) = one(
            "HEALTHCHECK --interval=1m30s --timeout=10s --start-period=5s --start-interval=500ms --retries=3 CMD curl -f http://localhost/ || exit 1",
        ) else {
            panic!()
        };
        assert_eq!(
            h,
            Healthcheck::Check {
                command: shell("curl -f http://localhost/ || exit 1"),
                interval: 90_000_000_000,
                timeout: 10_000_000_000,
                start_period: 5_000_000_000,
                start_interval: 500_000_000,
                retries: 3
            }
        );
        assert_eq!(
            h.test(),
            vec![
                "CMD-SHELL".to_string(),
                "curl -f http://localhost/ || exit 1".to_string()
            ]
        );
        let Command::Healthcheck(h) = one("healthcheck cmd [\"/bin/check\", \"-q\"]") else {
            panic!()
        };
        assert_eq!(h.test(), vec!["CMD", "/bin/check", "-q"]);
        assert_eq!(
            err("HEALTHCHECK NONE x"),
            "Dockerfile:1: HEALTHCHECK NONE takes no arguments"
        );
        assert_eq!(
            err("HEALTHCHECK CURL x"),
            "Dockerfile:1: Unknown type \"CURL\" in HEALTHCHECK (try CMD)"
        );
        assert_eq!(
            err("HEALTHCHECK CMD"),
            "Dockerfile:1: Missing command after HEALTHCHECK CMD"
        );
        assert_eq!(
            err("HEALTHCHECK --retries=-1 CMD x"),
            "Dockerfile:1: --retries must be at least 1 (not -1)"
        );
        assert_eq!(
            err("HEALTHCHECK --retries=0 CMD x"),
            "Dockerfile:1: --retries must be at least 1 (not 0)"
        );
        assert_eq!(
            err("HEALTHCHECK --interval=10 CMD x"),
            "Dockerfile:1: invalid duration for --interval: \"10\""
        );
        assert_eq!(
            err("HEALTHCHECK --timeout=10us CMD x"),
            "Dockerfile:1: Interval \"timeout\" cannot be less than 1ms"
        );
        assert_eq!(
            err("HEALTHCHECK --every=1s CMD x"),
            "Dockerfile:1: unknown flag: --every"
        );
        assert_eq!(
            err("HEALTHCHECK"),
            "Dockerfile:1: HEALTHCHECK requires at least one argument"
        );
    }

    #[test]
    fn unknown_instructions() {
        assert_eq!(
            err("FROM a\nCOPPY a b"),
            "Dockerfile:2: unknown instruction: COPPY (did you mean copy?)"
        );
        assert_eq!(
            err("FROM a\nFOOBAR bar"),
            "Dockerfile:2: unknown instruction: FOOBAR"
        );
        assert_eq!(
            err("FROM a\nfrobnicate"),
            "Dockerfile:2: unknown instruction: frobnicate"
        );
        assert_eq!(
            err("FROM a\nworkdirr /x"),
            "Dockerfile:2: unknown instruction: workdirr (did you mean workdir?)"
        );
    }

    #[test]
    fn go_durations_and_sizes() {
        assert_eq!(parse_go_duration("1h2m3.5s"), Some(3_723_500_000_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("1.5µs"), Some(1500));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("s"), None);
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("512KiB"), Some(512 << 10));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("1.5m"), Some(3 << 19));
        assert_eq!(parse_size("x"), None);
    }
}

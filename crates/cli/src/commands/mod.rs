//! The command table: every `berth` command is one [`Command`] entry that
//! declares its name (docker's management form, `container ls`), the
//! aliases it answers to (`container ps`, `ps`), its usage line, one-line
//! description, flags (with their help) and handler. Dispatch, `--help`,
//! `berth help CMD`, "did you mean" suggestions, "not supported yet"
//! answers and the shell completion scripts are all derived from it, as
//! docker/cli derives them from its cobra commands
//! (`cli/command/<object>/<verb>.go`).
//!
//! The entries live in one file per object (`container.rs`, `image.rs`,
//! `network.rs`, `volume.rs`, `system.rs`); the handlers beside the code
//! they share (`containers.rs`, `images.rs`, …). The table is `const` data:
//! finding a command is a scan of a few dozen entries, no start-up cost.

pub mod complete;
mod container;
mod help;
mod image;
mod network;
mod system;
mod volume;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use berth_engine::Engine;
use berth_image::ImageStore;

use crate::args::{Flag, Parsed, opt, parse, switch};
use crate::containers::Failure;

type R<T = ()> = Result<T, Failure>;

/// What runs a command, by what it needs opened first.
#[derive(Clone, Copy)]
pub enum Handler {
    /// Needs the engine (containers, volumes, networks).
    Engine(fn(&mut Engine, &Parsed, &mut dyn Write) -> R),
    /// Needs the image store only.
    Store(fn(&ImageStore, &Parsed, &mut dyn Write) -> Result<(), crate::Fail>),
    /// Needs neither.
    Plain(fn(&Parsed, &mut dyn Write) -> R),
    /// Needs the state root only, and opens what it needs itself (`build`).
    Root(fn(&Path, &Parsed, &mut dyn Write) -> R),
    /// A docker command Berth does not have yet: it says so (exit 1).
    Unsupported,
}

/// One command.
pub struct Command {
    /// docker's full name: `container ls`, or `inspect` for a top-level one.
    pub path: &'static str,
    /// Other names, full: `container ps`, `ps`.
    pub aliases: &'static [&'static str],
    /// What follows the name on the usage line.
    pub usage: &'static str,
    /// The one-line description.
    pub short: &'static str,
    pub flags: &'static [Flag],
    /// false: flags end at the first argument (`run IMAGE CMD -x`).
    pub interspersed: bool,
    /// docker's flags of this command that Berth does not have yet.
    pub missing: &'static [(&'static str, Option<char>)],
    pub run: Handler,
}

impl Command {
    fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.path).chain(self.aliases.iter().copied())
    }

    /// The last word of the full name (`ls` of `container ls`).
    fn verb(&self) -> &'static str {
        self.path.rsplit(' ').next().unwrap_or(self.path)
    }

    /// The object it belongs to (`container`), none for top-level ones.
    fn object(&self) -> Option<&'static str> {
        self.path.split_once(' ').map(|(o, _)| o)
    }
}

/// A management command (`berth network ...`): a group of commands.
pub struct Object {
    pub name: &'static str,
    pub short: &'static str,
    /// false: one of docker's that Berth does not have at all.
    pub supported: bool,
}

pub const OBJECTS: &[Object] = &[
    obj("builder", "Manage builds", true),
    obj("buildx", "Docker Buildx", false),
    obj("checkpoint", "Manage checkpoints", false),
    obj("compose", "Docker Compose", false),
    obj("container", "Manage containers", true),
    obj("context", "Manage contexts", false),
    obj(
        "generate",
        "Generate structured data based on containers (podman's)",
        true,
    ),
    obj("image", "Manage images", true),
    obj(
        "manifest",
        "Manage Docker image manifests and manifest lists",
        false,
    ),
    obj("network", "Manage networks", true),
    obj("plugin", "Manage plugins", false),
    obj("system", "Manage Berth", true),
    obj("trust", "Manage trust on Docker images", false),
    obj("volume", "Manage volumes", true),
    obj("config", "Manage Swarm configs", false),
    obj("node", "Manage Swarm nodes", false),
    obj("secret", "Manage Swarm secrets", false),
    obj("service", "Manage Swarm services", false),
    obj("stack", "Manage Swarm stacks", false),
    obj("swarm", "Manage Swarm", false),
];

/// docker's swarm objects, listed apart by `--help`.
const SWARM: &[&str] = &["config", "node", "secret", "service", "stack", "swarm"];

/// docker's "Common Commands", in its order.
const COMMON: &[&str] = &[
    "run", "exec", "ps", "build", "pull", "push", "images", "login", "logout", "search", "version",
    "info",
];

const fn obj(name: &'static str, short: &'static str, supported: bool) -> Object {
    Object {
        name,
        short,
        supported,
    }
}

/// Every command, object by object.
pub fn all() -> impl Iterator<Item = &'static Command> {
    [
        container::COMMANDS,
        image::COMMANDS,
        network::COMMANDS,
        volume::COMMANDS,
        system::COMMANDS,
    ]
    .into_iter()
    .flatten()
}

/// `a` then `b` as one array: flag lists that commands share.
pub const fn join<const N: usize>(a: &[Flag], b: &[Flag]) -> [Flag; N] {
    assert!(a.len() + b.len() == N);
    let mut out = [switch("", None, ""); N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - a.len()];
        i += 1;
    }
    out
}

/// Output format of the list commands (`ps`, `images`, `volume ls`, …).
pub const FORMAT_TABLE: Flag = opt(
    "format",
    None,
    "string",
    "Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template",
);

/// Output format of the inspect commands.
pub const FORMAT_INSPECT: Flag = opt(
    "format",
    Some('f'),
    "string",
    "Format output using a custom template: 'json' (one object a line) or a Go template",
);

/// Output format of `info` and `version`.
pub const FORMAT_OBJECT: Flag = opt(
    "format",
    Some('f'),
    "string",
    "Format output using a custom template: 'json' or a Go template",
);

/// The list commands' `--filter`.
pub const FILTER: Flag = opt(
    "filter",
    Some('f'),
    "filter",
    "Filter output based on conditions provided",
);

/// The prune commands' `--filter`.
pub const PRUNE_FILTER: Flag = opt(
    "filter",
    None,
    "filter",
    "Provide filter values (e.g. \"until=<timestamp>\")",
);

/// The prune commands' `--force`.
pub const PRUNE_FORCE: Flag = switch("force", Some('f'), "Do not prompt for confirmation");

/// The flags before the command.
pub const GLOBAL: &[Flag] = &[
    opt(
        "root",
        None,
        "string",
        "State root (default \"/var/lib/berth\", or $BERTH_ROOT)",
    ),
    switch("version", Some('v'), "Print version information and quit"),
];

/// What the words after the global flags name.
enum Found<'a> {
    /// A command, the name it was called by, and its arguments.
    Command(&'static Command, String, &'a [String]),
    /// An object without a known subcommand (`berth network`).
    Object(&'static Object, Option<&'a String>),
    /// Nothing: the unknown word.
    Unknown(&'a String),
}

fn find(args: &[String]) -> Option<Found<'_>> {
    let (first, rest) = args.split_first()?;
    if let Some(o) = OBJECTS.iter().find(|o| o.name == first) {
        if let Some((sub, r)) = rest.split_first() {
            let name = format!("{first} {sub}");
            if let Some(c) = all().find(|c| c.names().any(|n| n == name)) {
                return Some(Found::Command(c, name, r));
            }
        }
        return Some(Found::Object(o, rest.first()));
    }
    match all().find(|c| c.names().any(|n| n == first)) {
        Some(c) => Some(Found::Command(c, first.clone(), rest)),
        None => Some(Found::Unknown(first)),
    }
}

/// `--root`, else $BERTH_ROOT, else /var/lib/berth (or the user's store,
/// rootless).
pub fn state_root(g: &Parsed) -> PathBuf {
    berth_engine::state_root(g.value("root"))
}

/// The whole command line to an exit status.
pub fn main(argv: &[String]) -> ExitCode {
    let g = match parse(argv, GLOBAL, true) {
        Ok(g) => g,
        Err(u) => {
            eprintln!("{u}\n\nRun 'berth --help' for more information");
            return ExitCode::from(125);
        }
    };
    let mut out = io::stdout().lock();
    let code = dispatch(&g, &mut out);
    let _ = out.flush();
    code
}

fn dispatch(g: &Parsed, out: &mut dyn Write) -> ExitCode {
    if g.bool("version") {
        let _ = writeln!(out, "berth version {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let args = g.args.as_slice();
    if g.help || args.is_empty() {
        return written(help::top(out));
    }
    if args[0] == berth_engine::monitor::SUBCOMMAND {
        let (Some(id), Some(Ok(fd))) = (args.get(1), args.get(2).map(|f| f.parse::<i32>())) else {
            return ExitCode::from(125);
        };
        let code = berth_engine::monitor::main(&state_root(g), id, fd);
        return ExitCode::from(code as u8);
    }
    if args[0] == berth_engine::monitor::ADOPT {
        let Some(id) = args.get(1) else {
            return ExitCode::from(125);
        };
        let code = berth_engine::monitor::adopt_main(&state_root(g), id);
        return ExitCode::from(code as u8);
    }
    if args[0] == "help" {
        return help_for(&args[1..], out);
    }
    match find(args) {
        None => written(help::top(out)),
        Some(Found::Command(c, name, rest)) => run_command(g, c, &name, rest, out),
        Some(Found::Object(o, sub)) => {
            if !o.supported {
                return not_supported(o.name);
            }
            match sub {
                // `berth network`, `berth network --help`: its commands.
                None => written(help::object(o, out)),
                Some(s) if s == "--help" || s == "-h" => written(help::object(o, out)),
                Some(s) => {
                    eprintln!("berth: unknown command: berth {} {s}", o.name);
                    let subs =
                        out_names().filter_map(|n| n.strip_prefix(o.name)?.strip_prefix(' '));
                    suggest(s, subs);
                    eprintln!(
                        "\nUsage:  berth {} COMMAND\n\nRun 'berth {} --help' for more information",
                        o.name, o.name
                    );
                    // docker 28 exits 1 here; berth keeps the usage status.
                    ExitCode::from(125)
                }
            }
        }
        Some(Found::Unknown(w)) => {
            eprintln!("berth: unknown command: berth {w}");
            suggest(w, out_names().filter(|n| !n.contains(' ')));
            eprintln!("\nRun 'berth --help' for more information");
            ExitCode::from(125)
        }
    }
}

fn written(r: io::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}

fn not_supported(name: &str) -> ExitCode {
    eprintln!("berth does not support '{name}' yet");
    ExitCode::from(1)
}

/// Every name a user can type: commands, aliases and objects.
fn out_names() -> impl Iterator<Item = &'static str> {
    all()
        .flat_map(|c| c.names())
        .chain(OBJECTS.iter().map(|o| o.name))
}

/// `berth help [COMMAND...]`.
fn help_for(words: &[String], out: &mut dyn Write) -> ExitCode {
    match find(words) {
        None => written(help::top(out)),
        Some(Found::Command(c, name, _)) => written(help::command(c, &name, out)),
        Some(Found::Object(o, _)) => written(help::object(o, out)),
        Some(Found::Unknown(w)) => {
            eprintln!("berth: unknown help topic: {w}");
            suggest(w, out_names());
            ExitCode::from(1)
        }
    }
}

/// Parses the command's flags and runs it.
fn run_command(
    g: &Parsed,
    c: &'static Command,
    name: &str,
    argv: &[String],
    out: &mut dyn Write,
) -> ExitCode {
    let p = match parse(argv, c.flags, !c.interspersed) {
        Ok(p) => p,
        Err(u) => return usage_error(c, name, &u.0, true),
    };
    if p.help {
        return written(help::command(c, name, out));
    }
    let r = match c.run {
        Handler::Unsupported => return not_supported(name),
        Handler::Plain(f) => f(&p, out),
        Handler::Root(f) => f(&state_root(g), &p, out),
        Handler::Store(f) => ImageStore::open(state_root(g))
            .map_err(crate::Fail::from)
            .and_then(|s| f(&s, &p, out))
            .map_err(Failure::from),
        Handler::Engine(f) => match Engine::open(&state_root(g)) {
            Ok(mut e) => f(&mut e, &p, out),
            Err(e) => Err(crate::containers::engine125(e)),
        },
    };
    let _ = out.flush();
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) if f.msg.is_empty() => ExitCode::from(f.code),
        Err(f) if f.usage => usage_error(c, name, &f.msg, false),
        Err(f) if is_broken_pipe(&f.msg) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("Error: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

/// A reader that went away (`berth ps | head -1`) ends us quietly, as
/// docker's SIGPIPE does.
fn is_broken_pipe(msg: &str) -> bool {
    msg == io::Error::from(io::ErrorKind::BrokenPipe).to_string()
        || msg.contains("Broken pipe (os error 32)")
}

/// docker's layout of a usage error; an unknown flag that docker has is
/// named as not supported yet, else the nearest flag is suggested.
fn usage_error(c: &Command, name: &str, msg: &str, flag_error: bool) -> ExitCode {
    let unknown = msg
        .strip_prefix("unknown flag: --")
        .map(|f| (f.to_string(), None))
        .or_else(|| {
            msg.strip_prefix("unknown shorthand flag: '")
                .and_then(|r| r.chars().next())
                .map(|ch| (String::new(), Some(ch)))
        });
    if flag_error && let Some((long, short)) = &unknown {
        let missing = c
            .missing
            .iter()
            .find(|(l, s)| (!long.is_empty() && l == long) || (short.is_some() && s == short));
        if let Some((l, _)) = missing {
            eprintln!("berth does not support '{name} --{l}' yet");
            return ExitCode::from(125);
        }
    }
    if flag_error {
        eprintln!("{msg}");
        if let Some((long, None)) = &unknown {
            let longs = c.flags.iter().filter(|f| !f.hidden).map(|f| f.long);
            suggest_with(long, longs, "--");
        }
    } else {
        eprintln!("berth: {msg}");
    }
    eprintln!(
        "\nUsage:  berth {name} {}\n\nRun 'berth {name} --help' for more information",
        c.usage
    );
    ExitCode::from(125)
}

fn suggest(word: &str, names: impl Iterator<Item = &'static str>) {
    suggest_with(word, names, "");
}

/// cobra's "Did you mean this?": the names fewest edits away (two at
/// most), and those that start with what was typed.
fn suggest_with(word: &str, names: impl Iterator<Item = &'static str>, prefix: &str) {
    let scored: Vec<(usize, &str)> = names.map(|n| (distance(word, n), n)).collect();
    let best = scored
        .iter()
        .filter(|(d, n)| *d <= 2 && *d < n.len().max(word.len()))
        .map(|(d, _)| *d)
        .min();
    let mut near: Vec<&str> = scored
        .iter()
        .filter(|(d, n)| Some(*d) == best || (word.len() > 1 && n.starts_with(word)))
        .map(|(_, n)| *n)
        .collect();
    near.sort_unstable();
    near.dedup();
    if !near.is_empty() {
        eprintln!("\nDid you mean this?");
        for n in near {
            eprintln!("\t{prefix}{n}");
        }
    }
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        let mut names: Vec<&str> = out_names().collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a name is declared twice");
        for c in all() {
            let mut flags: Vec<&str> = c.flags.iter().map(|f| f.long).collect();
            flags.sort_unstable();
            flags.dedup();
            assert_eq!(flags.len(), c.flags.len(), "{}: a flag twice", c.path);
            let shorts: Vec<char> = c.flags.iter().filter_map(|f| f.short).collect();
            for s in &shorts {
                assert_eq!(shorts.iter().filter(|x| *x == s).count(), 1, "{}", c.path);
            }
            if let Some(o) = c.object() {
                assert!(OBJECTS.iter().any(|x| x.name == o && x.supported), "{o}");
            }
        }
    }

    #[test]
    fn distances() {
        assert_eq!(distance("psx", "ps"), 1);
        assert_eq!(distance("imgaes", "images"), 2);
        assert_eq!(distance("", "ab"), 2);
    }
}

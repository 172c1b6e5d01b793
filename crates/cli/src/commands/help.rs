//! `--help` text from the command table, in docker 28's layout.

use std::io::{self, Write};

use super::{COMMON, Command, GLOBAL, OBJECTS, Object, SWARM, all};
use crate::args::Flag;

/// docker wraps help at 80 columns.
const WIDTH: usize = 80;

/// `berth`, `berth --help`: the commands, grouped as docker groups them.
pub fn top(out: &mut dyn Write) -> io::Result<()> {
    let mut s = String::from(
        "Usage:  berth [OPTIONS] COMMAND\n\nA daemonless container engine with docker's commands\n",
    );
    let top_level = |name: &str| all().find(|c| c.names().any(|n| n == name));
    let line = |name: &str, short: &str, supported: bool| {
        let note = if supported {
            ""
        } else {
            " (not supported yet)"
        };
        format!("  {name:<11} {short}{note}\n")
    };
    s.push_str("\nCommon Commands:\n");
    for name in COMMON {
        if let Some(c) = top_level(name) {
            s.push_str(&line(name, c.short, supported(c)));
        } else if *name == "search" {
            s.push_str(&line(name, "Search Docker Hub for images", false));
        }
    }
    s.push_str("\nManagement Commands:\n");
    for o in OBJECTS.iter().filter(|o| !SWARM.contains(&o.name)) {
        s.push_str(&line(o.name, o.short, o.supported));
    }
    s.push_str("\nSwarm Commands:\n");
    for o in OBJECTS.iter().filter(|o| SWARM.contains(&o.name)) {
        s.push_str(&line(o.name, o.short, o.supported));
    }
    s.push_str("\nCommands:\n");
    let mut rest: Vec<(&str, &Command)> = all()
        .flat_map(|c| c.names().map(move |n| (n, c)))
        .filter(|(n, _)| !n.contains(' ') && !COMMON.contains(n))
        .collect();
    rest.sort_by_key(|(n, _)| *n);
    for (n, c) in rest {
        s.push_str(&line(n, c.short, supported(c)));
    }
    s.push_str("\nGlobal Options:\n");
    s.push_str(&options(GLOBAL));
    s.push_str("\nRun 'berth COMMAND --help' for more information on a command.\n");
    out.write_all(s.as_bytes())
}

fn supported(c: &Command) -> bool {
    !matches!(c.run, super::Handler::Unsupported)
}

/// `berth network --help`: the object's commands.
pub fn object(o: &Object, out: &mut dyn Write) -> io::Result<()> {
    let mut s = format!(
        "Usage:  berth {} COMMAND\n\n{}\n\nCommands:\n",
        o.name, o.short
    );
    let mut cmds: Vec<&Command> = all().filter(|c| c.object() == Some(o.name)).collect();
    cmds.sort_by_key(|c| c.verb());
    for c in cmds {
        let note = if supported(c) {
            ""
        } else {
            " (not supported yet)"
        };
        s.push_str(&format!("  {:<11} {}{note}\n", c.verb(), c.short));
    }
    s.push_str(&format!(
        "\nRun 'berth {} COMMAND --help' for more information on a command.\n",
        o.name
    ));
    out.write_all(s.as_bytes())
}

/// `berth run --help`: usage, description, aliases, options.
pub fn command(c: &Command, name: &str, out: &mut dyn Write) -> io::Result<()> {
    let mut s = format!("Usage:  berth {name} {}\n\n{}\n", c.usage, c.short);
    if !supported(c) {
        s.push_str("\nBerth does not support this command yet.\n");
    }
    if !c.aliases.is_empty() {
        let names: Vec<String> = c.names().map(|n| format!("berth {n}")).collect();
        s.push_str(&format!("\nAliases:\n  {}\n", names.join(", ")));
    }
    let mut shown: Vec<Flag> = c.flags.iter().filter(|f| !f.hidden).copied().collect();
    // pflag lists flags sorted by name.
    shown.sort_by_key(|f| f.long);
    if !shown.is_empty() {
        s.push_str("\nOptions:\n");
        s.push_str(&options(&shown));
    }
    out.write_all(s.as_bytes())
}

/// pflag's flag listing: `  -a, --all          help (default x)`, the
/// help column aligned and wrapped at [`WIDTH`].
fn options(flags: &[Flag]) -> String {
    let heads: Vec<String> = flags
        .iter()
        .map(|f| {
            let short = f.short.map_or("    ".to_string(), |c| format!("-{c}, "));
            let value = if f.takes_value() {
                format!(" {}", f.value)
            } else {
                String::new()
            };
            format!("  {short}--{}{value}", f.long)
        })
        .collect();
    let col = heads.iter().map(|h| h.len()).max().unwrap_or(0) + 3;
    let mut s = String::new();
    for (f, head) in flags.iter().zip(heads) {
        let mut help = f.help.to_string();
        if !f.default.is_empty() {
            help.push_str(&format!(" (default {})", f.default));
        }
        let lines = wrap(&help, WIDTH.saturating_sub(col).max(24));
        for (i, l) in lines.iter().enumerate() {
            let lead = if i == 0 { head.as_str() } else { "" };
            s.push_str(&format!("{lead:<col$}{l}\n"));
        }
        if lines.is_empty() {
            s.push_str(&format!("{head}\n"));
        }
    }
    s
}

/// Words of `text` in lines of at most `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for w in text.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + w.len() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_words() {
        assert_eq!(wrap("a bb ccc dd", 6), ["a bb", "ccc dd"]);
        assert!(wrap("", 5).is_empty());
    }
}

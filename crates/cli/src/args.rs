//! docker's command line, parsed by hand (as `berth-oci` does runc's): the
//! pflag conventions docker users type: `--flag value`, `--flag=value`,
//! `-f value`, `-fvalue`, bundled short booleans (`-qa`), flags anywhere
//! among the arguments, `--` ending them.

use std::collections::HashMap;

/// A usage error (exit status 125, as docker's flag errors).
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One flag as a command declares it: long name, short letter, the kind of
/// value it takes as `--help` shows it (docker's "string", "list", "int",
/// …; empty for a boolean), its help text and default, and whether `--help`
/// leaves it out (docker's hidden and deprecated spellings).
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub long: &'static str,
    pub short: Option<char>,
    pub value: &'static str,
    pub help: &'static str,
    pub default: &'static str,
    pub hidden: bool,
}

/// A boolean flag.
pub const fn switch(long: &'static str, short: Option<char>, help: &'static str) -> Flag {
    Flag {
        long,
        short,
        value: "",
        help,
        default: "",
        hidden: false,
    }
}

/// A flag that takes a value of the kind `value` names.
pub const fn opt(
    long: &'static str,
    short: Option<char>,
    value: &'static str,
    help: &'static str,
) -> Flag {
    Flag {
        long,
        short,
        value,
        help,
        default: "",
        hidden: false,
    }
}

/// The older three-argument form (`flag("tag", Some('t'), true)`) for code
/// that parses its own flags outside the command table: the `berth build`
/// branch's `build.rs` does, until its flags move into `commands/image.rs`.
#[allow(dead_code)]
pub const fn flag(long: &'static str, short: Option<char>, value: bool) -> Flag {
    if value {
        opt(long, short, "string", "")
    } else {
        switch(long, short, "")
    }
}

impl Flag {
    pub const fn takes_value(&self) -> bool {
        !self.value.is_empty()
    }

    /// The default `--help` shows.
    pub const fn default(self, default: &'static str) -> Flag {
        Flag { default, ..self }
    }

    /// Accepted but not listed by `--help`.
    pub const fn hidden(self) -> Flag {
        Flag {
            hidden: true,
            ..self
        }
    }
}

/// Parsed flags (every value of repeated ones, in order) and positionals.
#[derive(Debug, Default)]
pub struct Parsed {
    values: HashMap<&'static str, Vec<String>>,
    pub args: Vec<String>,
    /// `--help`, or `-h` where no flag of the command has that letter.
    pub help: bool,
}

impl Parsed {
    pub fn has(&self, long: &str) -> bool {
        self.values.contains_key(long)
    }

    /// A boolean flag: present and not `=false`.
    pub fn bool(&self, long: &str) -> bool {
        self.values
            .get(long)
            .and_then(|v| v.last())
            .is_some_and(|v| v != "false" && v != "0")
    }

    pub fn value(&self, long: &str) -> Option<&str> {
        self.values
            .get(long)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    pub fn all(&self, long: &str) -> &[String] {
        self.values.get(long).map_or(&[], Vec::as_slice)
    }

    /// The flags given, as `--long=value` words (sorted by name, repeated
    /// ones in their order), without those named in `except`.
    pub fn flag_words(&self, except: &[&str]) -> Vec<String> {
        let mut names: Vec<&&str> = self.values.keys().filter(|k| !except.contains(k)).collect();
        names.sort();
        names
            .into_iter()
            .flat_map(|n| self.values[*n].iter().map(move |v| format!("--{n}={v}")))
            .collect()
    }
}

/// Parses `args` against `flags`; with `stop_at_first`, the first
/// positional ends flag parsing (for global flags before a command).
pub fn parse(args: &[String], flags: &[Flag], stop_at_first: bool) -> Result<Parsed, Usage> {
    let mut p = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            p.args.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let Some(f) = flags.iter().find(|f| f.long == name) else {
                if name == "help" {
                    p.help = true;
                    continue;
                }
                return Err(Usage(format!("unknown flag: --{name}")));
            };
            let v = if f.takes_value() {
                match inline {
                    Some(v) => v,
                    None if i < args.len() => {
                        i += 1;
                        args[i - 1].clone()
                    }
                    None => return Err(Usage(format!("flag needs an argument: --{name}"))),
                }
            } else {
                inline.unwrap_or_else(|| "true".into())
            };
            p.values.entry(f.long).or_default().push(v);
        } else if a.len() > 1 && a.starts_with('-') {
            let chars: Vec<char> = a[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                let Some(f) = flags.iter().find(|f| f.short == Some(c)) else {
                    if c == 'h' {
                        p.help = true;
                        continue;
                    }
                    return Err(Usage(format!("unknown shorthand flag: '{c}' in {a}")));
                };
                if f.takes_value() {
                    let rest: String = chars[j..].iter().collect();
                    let v = if !rest.is_empty() {
                        rest.strip_prefix('=').unwrap_or(&rest).to_string()
                    } else if i < args.len() {
                        i += 1;
                        args[i - 1].clone()
                    } else {
                        return Err(Usage(format!("flag needs an argument: '{c}' in -{c}")));
                    };
                    p.values.entry(f.long).or_default().push(v);
                    break;
                }
                p.values.entry(f.long).or_default().push("true".into());
            }
        } else {
            p.args.push(a.clone());
            if stop_at_first {
                p.args.extend(args[i..].iter().cloned());
                break;
            }
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: &[Flag] = &[
        switch("quiet", Some('q'), ""),
        switch("all", Some('a'), ""),
        opt("filter", Some('f'), "filter", ""),
        opt("output", Some('o'), "string", ""),
    ];

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn pflag_forms() {
        let p = parse(
            &s(&[
                "x",
                "-qa",
                "--filter",
                "a=b",
                "-fc=d",
                "--output=o",
                "y",
                "--",
                "-z",
            ]),
            F,
            false,
        )
        .unwrap();
        assert!(p.bool("quiet") && p.bool("all"));
        assert_eq!(p.all("filter"), ["a=b", "c=d"]);
        assert_eq!(p.value("output"), Some("o"));
        assert_eq!(p.args, ["x", "y", "-z"]);
        let p = parse(&s(&["--quiet=false", "-o", "f"]), F, false).unwrap();
        assert!(!p.bool("quiet") && p.has("quiet"));
        assert_eq!(p.value("output"), Some("f"));
        assert!(
            parse(&s(&["--nope"]), F, false)
                .unwrap_err()
                .0
                .contains("--nope")
        );
        assert!(parse(&s(&["-x"]), F, false).is_err());
        assert!(parse(&s(&["--filter"]), F, false).is_err());
        let p = parse(&s(&["cmd", "-q"]), F, true).unwrap();
        assert_eq!(p.args, ["cmd", "-q"]);
    }
}

//! The `created_by` text of history entries, as docker 20.10's BuildKit (dockerfile frontend
//! v0.8) writes it. That frontend formats some instructions with Go's `fmt` verbs: `%q` of a
//! string slice for `CMD`/`ENTRYPOINT` (`["a" "b"]`), `%v` for `SHELL` (`[a b]`) and `%q` of
//! the health-check struct pointer for `HEALTHCHECK`
//! (`&{["CMD-SHELL" "x"] "5s" "3s" "0s" '\x03'}`). The functions here reproduce those so that
//! `docker history` of a berth image reads as of a BuildKit one (the side-by-side corpus in
//! `crates/cli/tests/build_compare.rs` checks them).

use std::fmt::Write;

/// Go's `strconv.Quote`: double quotes, `\a \b \f \n \r \t \v \\ \"`, printable characters as
/// they are, other control characters as `\xNN`, other unprintable ones as `\uNNNN`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escape_char(&mut out, c, '"');
    }
    out.push('"');
    out
}

fn escape_char(out: &mut String, c: char, quote: char) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if c.is_control() => {
            if (c as u32) <= 0xffff {
                let _ = write!(out, "\\u{:04x}", c as u32);
            } else {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
        c => out.push(c),
    }
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub fn go_quote_list(v: &[String]) -> String {
    let parts: Vec<String> = v.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", parts.join(" "))
}

/// Go's `%v` of a `[]string`: `[a b]`.
pub fn go_list(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

/// Go's `%q` of an integer: the character it codes, single-quoted (`'\x03'`, `'A'`).
pub fn go_quote_rune(n: u64) -> String {
    let mut out = String::from("'");
    match u32::try_from(n).ok().and_then(char::from_u32) {
        Some(c) => escape_char(&mut out, c, '\''),
        None => out.push('\u{fffd}'),
    }
    out.push('\'');
    out
}

/// Go's `time.Duration.String()` of `ns` nanoseconds: `0s`, `1.5s`, `2m0s`, `1h0m0s`, `500ms`,
/// `10µs`, `3ns`.
pub fn go_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let (unit, div) = if ns < 1_000 {
            ("ns", 1)
        } else if ns < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(ns, div));
    }
    let h = ns / 3_600_000_000_000;
    let m = (ns / 60_000_000_000) % 60;
    let s = fraction(ns % 60_000_000_000, 1_000_000_000);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// `n / div` with its fraction, trailing zeros dropped (`1500/1000` → `1.5`).
fn fraction(n: u64, div: u64) -> String {
    let whole = n / div;
    let rest = n % div;
    if rest == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let frac = format!("{rest:0width$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// `HEALTHCHECK` as BuildKit v0.8 records it: Go's `%q` of `&HealthConfig{Test, Interval,
/// Timeout, StartPeriod, Retries}`.
pub fn healthcheck(
    test: &[String],
    interval: u64,
    timeout: u64,
    start: u64,
    retries: u64,
) -> String {
    format!(
        "HEALTHCHECK &{{{} {} {} {} {}}}",
        go_quote_list(test),
        go_quote(&go_duration(interval)),
        go_quote(&go_duration(timeout)),
        go_quote(&go_duration(start)),
        go_quote_rune(retries)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats() {
        assert_eq!(go_quote("a \"b\"\n\\"), r#""a \"b\"\n\\""#);
        assert_eq!(go_quote("\x01é"), r#""\x01é""#);
        assert_eq!(
            go_quote_list(&["/bin/sh".into(), "-c".into()]),
            r#"["/bin/sh" "-c"]"#
        );
        assert_eq!(go_list(&["/bin/sh".into(), "-xc".into()]), "[/bin/sh -xc]");
        assert_eq!(go_quote_rune(4), r"'\x04'");
        assert_eq!(go_quote_rune(0), r"'\x00'");
        assert_eq!(go_quote_rune(65), "'A'");
        assert_eq!(go_quote_rune(10), r"'\n'");
        assert_eq!(go_quote_rune(39), r"'\''");
        for (ns, s) in [
            (0, "0s"),
            (5_000_000_000, "5s"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (500_000_000, "500ms"),
            (1_500, "1.5µs"),
            (3, "3ns"),
        ] {
            assert_eq!(go_duration(ns), s);
        }
        assert_eq!(
            healthcheck(&["CMD".into(), "/bin/true".into()], 0, 0, 0, 0),
            r#"HEALTHCHECK &{["CMD" "/bin/true"] "0s" "0s" "0s" '\x00'}"#
        );
    }
}

//! docker's output conventions: tabwriter columns, human sizes and ages,
//! `path.Match` globs for `--filter reference=`.

pub use berth_engine::inspect::glob;
pub use berth_engine::timefmt::{go_time, human_ago, parse_rfc3339, rfc3339};

/// Columns as docker's tabwriter (minwidth 10, padding 3) lays them out.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut width = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count() + 3).max(10);
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                let pad = width[i] - c.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// go-units `HumanSizeWithPrecision(size, 3)`: decimal units, `%.3g`.
pub fn human_size(size: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut s = size as f64;
    let mut i = 0;
    while s >= 1000.0 && i + 1 < UNITS.len() {
        s /= 1000.0;
        i += 1;
    }
    format!("{}{}", g3(s), UNITS[i])
}

/// Go's `%.3g` for 0 <= v < 1000.
fn g3(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let mut s = format!("{v:.digits$}");
    // Rounding up to 1000 is what Go prints as 1e+03.
    if s.starts_with("1000") {
        return "1e+03".into();
    }
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_go_units() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(4_261_550), "4.26MB");
        assert_eq!(human_size(12_345), "12.3kB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(1_500_000_000), "1.5GB");
    }

    #[test]
    fn ages() {
        let t = parse_rfc3339("2024-05-01T10:00:00Z").unwrap();
        assert_eq!(t, 1_714_557_600);
        assert_eq!(parse_rfc3339("2024-05-01T12:00:00.5+02:00"), Some(t));
        assert_eq!(
            human_ago(Some("2024-05-01T10:00:00Z"), t + 30),
            "30 seconds ago"
        );
        assert_eq!(
            human_ago(Some("2024-05-01T10:00:00Z"), t + 90),
            "About a minute ago"
        );
        assert_eq!(
            human_ago(Some("2024-05-01T10:00:00Z"), t + 3 * 86400),
            "3 days ago"
        );
        assert_eq!(
            human_ago(Some("2024-05-01T10:00:00Z"), t + 3 * 365 * 86400),
            "3 years ago"
        );
        assert_eq!(human_ago(None, t), "N/A");
    }

    #[test]
    fn go_times() {
        let t = parse_rfc3339("2024-05-01T10:00:07+02:00").unwrap();
        assert_eq!(go_time(t), "2024-05-01 08:00:07 +0000 UTC");
        assert_eq!(rfc3339(t), "2024-05-01T08:00:07Z");
        assert_eq!(go_time(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn globs() {
        assert!(glob("busy*", "busybox"));
        assert!(!glob("*", "library/busybox"));
        assert!(glob("*/busybox", "library/busybox"));
        assert!(glob("b?sy[a-z]ox", "busybox"));
        assert!(!glob("b[^u]sybox", "busybox"));
    }

    #[test]
    fn tables() {
        let t = table(&[
            vec!["REPOSITORY".into(), "TAG".into(), "SIZE".into()],
            vec!["busybox".into(), "latest".into(), "1MB".into()],
        ]);
        assert_eq!(
            t,
            "REPOSITORY   TAG       SIZE\nbusybox      latest    1MB\n"
        );
    }
}

/// Go's `strconv.Quote`: double quotes, with `"`, `\\` and control
/// characters escaped (printable non-ASCII kept).
pub fn go_quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            '\r' => q.push_str("\\r"),
            '\u{7}' => q.push_str("\\a"),
            '\u{8}' => q.push_str("\\b"),
            '\u{c}' => q.push_str("\\f"),
            '\u{b}' => q.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                q.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => q.push_str(&format!("\\u{:04x}", c as u32)),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod quote_tests {
    #[test]
    fn go_quote_escapes_as_strconv() {
        assert_eq!(super::go_quote("sh -c 'a b'"), "\"sh -c 'a b'\"");
        assert_eq!(
            super::go_quote("a\"b\\c\nd\te\u{1}"),
            "\"a\\\"b\\\\c\\nd\\te\\x01\""
        );
        assert_eq!(super::go_quote("x…"), "\"x…\"");
    }
}

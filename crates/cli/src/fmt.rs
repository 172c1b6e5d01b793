//! docker's output conventions: tabwriter columns, human sizes and ages,
//! `path.Match` globs for `--filter reference=`.

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

/// go-units `HumanDuration` + " ago", as `docker images` shows CREATED.
pub fn human_ago(created: Option<&str>, now: i64) -> String {
    let Some(t) = created.and_then(parse_rfc3339) else {
        return "N/A".into();
    };
    let secs = now - t;
    if secs < 0 {
        return "Less than a second ago".into();
    }
    let d = secs;
    let s = if d < 1 {
        "Less than a second".to_string()
    } else if d == 1 {
        "1 second".to_string()
    } else if d < 60 {
        format!("{d} seconds")
    } else if d / 60 == 1 {
        "About a minute".to_string()
    } else if d / 60 < 60 {
        format!("{} minutes", d / 60)
    } else if ((d as f64) / 3600.0).round() as i64 == 1 {
        "About an hour".to_string()
    } else if d / 3600 < 48 {
        format!("{} hours", d / 3600)
    } else if d / 3600 < 24 * 7 * 2 {
        format!("{} days", d / 86400)
    } else if d / 3600 < 24 * 30 * 2 {
        format!("{} weeks", d / (86400 * 7))
    } else if d / 3600 < 24 * 365 * 2 {
        format!("{} months", d / (86400 * 30))
    } else {
        format!("{} years", d / (86400 * 365))
    };
    format!("{s} ago")
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn utc_parts(t: i64) -> (i64, i64, i64, i64, i64, i64) {
    let (y, mo, d) = civil_from_days(t.div_euclid(86400));
    let s = t.rem_euclid(86400);
    (y, mo, d, s / 3600, s / 60 % 60, s % 60)
}

/// Go's `time.Time.String()` in UTC: `2024-05-01 10:00:00 +0000 UTC`, as
/// `docker images --format '{{.CreatedAt}}'` prints it.
pub fn go_time(t: i64) -> String {
    let (y, mo, d, h, mi, s) = utc_parts(t);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} +0000 UTC")
}

/// RFC 3339 in UTC (`2024-05-01T10:00:00Z`), as `docker history` prints
/// `{{.CreatedAt}}`.
pub fn rfc3339(t: i64) -> String {
    let (y, mo, d, h, mi, s) = utc_parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `2024-05-01T10:00:00.123Z` / `…+02:00` to seconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b't') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, se) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        rest = &r[end..];
    }
    let off = match rest {
        "Z" | "z" => 0,
        r if r.len() == 6 && (r.starts_with('+') || r.starts_with('-')) => {
            let v = r[1..3].parse::<i64>().ok()? * 3600 + r[4..6].parse::<i64>().ok()? * 60;
            if r.starts_with('-') { -v } else { v }
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off)
}

/// Go's `path.Match`: `*` and `?` never match `/`; `[...]` classes.
pub fn glob(pattern: &str, name: &str) -> bool {
    fn m(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len())
                .take_while(|&i| i == 0 || n[i - 1] != '/')
                .any(|i| m(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && n[0] != '/' && m(&p[1..], &n[1..]),
            Some('[') => {
                let Some(end) = p.iter().position(|&c| c == ']') else {
                    return false;
                };
                let Some(&c) = n.first() else { return false };
                let class = &p[1..end];
                let (neg, class) = match class.first() {
                    Some('^') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit != neg && m(&p[end + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && m(&p[2..], &n[1..]),
            Some(&c) => n.first() == Some(&c) && m(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    m(&p, &n)
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

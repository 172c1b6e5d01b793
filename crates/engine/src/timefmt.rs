//! docker's time conventions: RFC 3339, Go's time.String, go-units'
//! human durations (shared by the CLI and the API).

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

pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
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

pub fn utc_parts(t: i64) -> (i64, i64, i64, i64, i64, i64) {
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

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

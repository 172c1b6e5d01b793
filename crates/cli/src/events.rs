//! `berth events` (`berth system events`): the engine's event journal
//! (`berth_engine::events`), replayed from `--since` and followed live until `--until`, an
//! interrupt, or the reader of its output going away. Following polls the journal (one indexed query every 100 ms: the newest
//! rows after the last sequence number seen); the journal is a table in the state database,
//! written by every `berth` command and monitor, so there is nothing to subscribe to.

use std::io::Write;
use std::time::Duration;

use berth_engine::Engine;
use berth_engine::events::{self, Event, Filters};

use crate::args::Parsed;
use crate::containers::{Failure, fail};

type R<T = ()> = Result<T, Failure>;

/// How often a follower looks at the journal.
const POLL: Duration = Duration::from_millis(100);

/// How each event is written.
enum Output {
    /// docker's default line.
    Text,
    /// `--format json` / `{{json .}}`: the API's message, one a line.
    Json,
    Template(crate::tmpl::Template),
}

fn output(format: Option<&str>) -> R<Output> {
    Ok(match format.map(str::trim) {
        None | Some("") => Output::Text,
        Some("json") | Some("{{json .}}") => Output::Json,
        Some(f) => Output::Template(crate::images::parse_template(f)?),
    })
}

fn write_event(out: &mut dyn Write, how: &Output, ev: &Event) -> R {
    match how {
        Output::Text => writeln!(out, "{}", ev.text())?,
        Output::Json => writeln!(out, "{}", ev.to_json())?,
        Output::Template(t) => {
            let s = t
                .execute(&ev.template_data(), false)
                .map_err(|e| Failure::from(crate::Fail::Cmd(e.to_string())))?;
            writeln!(out, "{s}")?;
        }
    }
    Ok(())
}

pub fn events(e: &mut Engine, p: &Parsed, out: &mut dyn Write) -> R {
    if !p.args.is_empty() {
        return Err(crate::Fail::Usage("\"events\" accepts no arguments".into()).into());
    }
    let filters = Filters::parse(p.all("filter")).map_err(Failure::from)?;
    let how = output(p.value("format"))?;
    let now = events::now_nano();
    let since = match p.value("since") {
        Some(s) => Some(events::parse_time(s, now, "--since").map_err(Failure::from)?),
        None => None,
    };
    let until = match p.value("until") {
        Some(s) => Some(events::parse_time(s, now, "--until").map_err(Failure::from)?),
        None => None,
    };
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        return fail(1, "--since time cannot be after --until time");
    }
    // Without --since or --until, what happens from now on; with them, the journal too
    // (docker replays its buffer when either is given).
    let mut after = if since.is_some() || until.is_some() {
        0
    } else {
        events::last_seq(&e.db)?
    };
    loop {
        let batch = events::read(&e.db, after, since, until, 1000)?;
        for ev in &batch {
            after = ev.seq;
            if filters.matches(ev) {
                write_event(out, &how, ev)?;
            }
        }
        if batch.len() == 1000 {
            continue;
        }
        if out.flush().is_err() {
            return Ok(()); // the reader went away
        }
        if until.is_some_and(|u| events::now_nano() > u) {
            return Ok(());
        }
        if !stdout_open(POLL) {
            return Ok(()); // `berth events | head -2`: the reader is gone
        }
    }
}

/// Waits up to `wait` for our stdout to report an error or hang-up (a pipe whose reader
/// closed it); false when it did. A terminal or a file never does: the wait is a sleep.
fn stdout_open(wait: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: 1,
        events: 0,
        revents: 0,
    };
    let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one pollfd that lives across the call.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    !(n > 0 && p.revents & (libc::POLLERR | libc::POLLHUP) != 0)
}

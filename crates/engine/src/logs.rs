//! docker's json-file log driver: one JSON object per line
//! (`{"log":"hi\n","stream":"stdout","time":"2024-…Z"}`) in
//! `<container dir>/<id>-json.log`, rotated to `.1`, `.2`… by size.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Context, Result};

/// Go's RFC3339Nano: trailing zeros of the fraction are dropped.
pub fn rfc3339_nano(secs: i64, nanos: u32) -> String {
    let full = berth_runtime::state::rfc3339(secs, nanos);
    match full.split_once('.') {
        Some((a, b)) => {
            let frac = b.trim_end_matches('Z').trim_end_matches('0');
            if frac.is_empty() {
                format!("{a}Z")
            } else {
                format!("{a}.{frac}Z")
            }
        }
        None => full,
    }
}

pub fn now_nano() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339_nano(d.as_secs() as i64, d.subsec_nanos())
}

pub fn log_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}-json.log"))
}

/// Partial lines longer than this are written as they are (docker: 16 KiB).
const MAX_LINE: usize = 16 * 1024;

/// Writes a container's output as json-file records.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_file: u32,
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    pub fn open(path: &Path, max_size: u64, max_file: u32) -> Result<LogWriter> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .at(path)?;
        let size = file.metadata().at(path)?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_file: max_file.max(1),
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Adds output of stream 0 (stdout) or 1 (stderr): whole lines are
    /// written, a partial one waits for its end. The lines of one call
    /// share its time and go to the file in one write (a flood of short
    /// lines costs a record's formatting each, not a syscall and a clock
    /// read each).
    pub fn write(&mut self, stream: usize, data: &[u8]) -> Result<()> {
        let mut buf = std::mem::take(&mut self.partial[stream]);
        buf.extend_from_slice(data);
        let time = now_nano();
        let mut batch = Vec::with_capacity(buf.len() * 2 + 128);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl + 1;
            self.record(&mut batch, stream, &buf[start..end], &time)?;
            start = end;
        }
        while buf.len() - start >= MAX_LINE {
            self.record(&mut batch, stream, &buf[start..start + MAX_LINE], &time)?;
            start += MAX_LINE;
        }
        buf.drain(..start);
        self.partial[stream] = buf;
        self.write_batch(&mut batch)
    }

    /// Writes what is left of partial lines (at exit).
    pub fn flush(&mut self) -> Result<()> {
        let time = now_nano();
        let mut batch = Vec::new();
        for s in 0..2 {
            let p = std::mem::take(&mut self.partial[s]);
            if !p.is_empty() {
                self.record(&mut batch, s, &p, &time)?;
            }
        }
        self.write_batch(&mut batch)
    }

    /// Appends one record to `batch`; the batch goes to the file first when
    /// the record would take the file past its size (then rotated).
    fn record(
        &mut self,
        batch: &mut Vec<u8>,
        stream: usize,
        line: &[u8],
        time: &str,
    ) -> Result<()> {
        let start = batch.len();
        batch.extend_from_slice(b"{\"log\":");
        json_string(batch, &String::from_utf8_lossy(line));
        batch.extend_from_slice(if stream == 0 {
            b",\"stream\":\"stdout\",\"time\":\""
        } else {
            b",\"stream\":\"stderr\",\"time\":\""
        });
        batch.extend_from_slice(time.as_bytes());
        batch.extend_from_slice(b"\"}\n");
        let len = (batch.len() - start) as u64;
        let pending = start as u64;
        if self.max_size > 0 && self.size + pending > 0 && self.size + pending + len > self.max_size
        {
            let rec = batch.split_off(start);
            self.write_batch(batch)?;
            self.rotate()?;
            *batch = rec;
        }
        Ok(())
    }

    fn write_batch(&mut self, batch: &mut Vec<u8>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.file.write_all(batch).at(&self.path)?;
        self.size += batch.len() as u64;
        batch.clear();
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        let name = |i: u32| PathBuf::from(format!("{}.{i}", self.path.display()));
        if self.max_file <= 1 {
            self.file.set_len(0).at(&self.path)?;
            self.size = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(name(self.max_file - 1));
        for i in (1..self.max_file - 1).rev() {
            let _ = std::fs::rename(name(i), name(i + 1));
        }
        std::fs::rename(&self.path, name(1)).at(&self.path)?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .at(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// `text` as a JSON string (serde_json's escapes: `\"`, `\\`, `\n`,
/// `\r`, `\t`, `\b`, `\f`, other control characters as `\u00XX`).
fn json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let b = text.as_bytes();
    let mut plain = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&b[plain..i]);
        plain = i + 1;
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 0xf) as usize]);
        } else {
            out.extend_from_slice(esc);
        }
    }
    out.extend_from_slice(&b[plain..]);
    out.push(b'"');
}

/// One log record.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Record {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// The log files of a container, oldest first (rotated ones, then the
/// current one).
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for i in (1..100).rev() {
        let p = PathBuf::from(format!("{}.{i}", path.display()));
        if p.exists() {
            v.push(p);
        }
    }
    v.push(path.to_path_buf());
    v
}

/// Parses complete lines of `r`; returns the records and the bytes used.
pub fn read_records(r: impl BufRead) -> (Vec<Record>, u64) {
    let mut out = Vec::new();
    let mut used = 0u64;
    for line in r.split(b'\n') {
        let Ok(line) = line else { break };
        used += line.len() as u64 + 1;
        if let Ok(rec) = serde_json::from_slice::<Record>(&line) {
            out.push(rec);
        }
    }
    (out, used)
}

/// Every record of a container's logs, oldest first.
pub fn read_all(path: &Path) -> Vec<Record> {
    read_from(path, File::open(path).ok().as_mut()).0
}

/// Every record of a container's logs, oldest first, with `current` (the
/// log file at `path`, opened by the caller) read through its descriptor;
/// also the offset in `current` after its last whole line, where a follow
/// goes on. A rotated file that is `current` itself (rotated after it was
/// opened) is not read twice.
pub fn read_from(path: &Path, current: Option<&mut File>) -> (Vec<Record>, u64) {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;
    let ino = current
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .map(|m| (m.dev(), m.ino()));
    let mut all = Vec::new();
    let files = files(path);
    for f in &files[..files.len() - 1] {
        if let Ok(file) = File::open(f) {
            let same = file.metadata().ok().map(|m| (m.dev(), m.ino()));
            if same.is_some() && same == ino {
                continue;
            }
            all.extend(read_records(BufReader::new(file)).0);
        }
    }
    let Some(file) = current else {
        return (all, 0);
    };
    let mut data = Vec::new();
    if file.seek(SeekFrom::Start(0)).is_err() || file.read_to_end(&mut data).is_err() {
        return (all, 0);
    }
    // Only whole lines: a partial one is read by the follow.
    let whole = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    all.extend(read_records(&data[..whole]).0);
    (all, whole as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_as_serde_writes_them() {
        let all: String = (0u8..0x80).map(char::from).collect();
        for t in ["", "y\n", "a\"b\\c\td\u{1}é€\u{7f}", all.as_str()] {
            let mut out = Vec::new();
            json_string(&mut out, t);
            assert_eq!(out, serde_json::to_vec(t).unwrap(), "{t:?}");
        }
    }

    #[test]
    fn lines_partials_and_rotation() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("c-json.log");
        let mut w = LogWriter::open(&p, 0, 1).unwrap();
        w.write(0, b"hel").unwrap();
        w.write(1, b"err\n").unwrap();
        w.write(0, b"lo\nwor").unwrap();
        w.flush().unwrap();
        let r = read_all(&p);
        let got: Vec<(&str, &str)> = r
            .iter()
            .map(|r| (r.log.as_str(), r.stream.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("err\n", "stderr"),
                ("hello\n", "stdout"),
                ("wor", "stdout")
            ]
        );
        assert!(r[0].time.ends_with('Z'));
        let p2 = t.path().join("r-json.log");
        let mut w = LogWriter::open(&p2, 200, 3).unwrap();
        for i in 0..40 {
            w.write(0, format!("line {i}\n").as_bytes()).unwrap();
        }
        assert!(t.path().join("r-json.log.1").exists());
        assert!(t.path().join("r-json.log.2").exists());
        assert!(!t.path().join("r-json.log.3").exists());
        for f in files(&p2) {
            assert!(std::fs::metadata(&f).unwrap().len() <= 200);
        }
        let all = read_all(&p2);
        assert_eq!(all.last().unwrap().log, "line 39\n");
        assert_eq!(rfc3339_nano(0, 120_000_000), "1970-01-01T00:00:00.12Z");
        assert_eq!(rfc3339_nano(0, 0), "1970-01-01T00:00:00Z");
    }
}

/// What `logs` shows: records from `since` to `until` (seconds since the
/// epoch), the last `tail` of them, then (`follow`) new ones while the
/// container runs.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    pub since: Option<f64>,
    pub until: Option<f64>,
    pub tail: Option<usize>,
    pub follow: bool,
}

/// Seconds since the epoch of a log record's time.
pub fn record_time(t: &str) -> f64 {
    let secs = crate::timefmt::parse_rfc3339(t).unwrap_or(0) as f64;
    let frac = t
        .split_once('.')
        .map(|(_, f)| f.trim_end_matches('Z'))
        .and_then(|f| format!("0.{f}").parse::<f64>().ok())
        .unwrap_or(0.0);
    secs + frac
}

impl crate::Engine {
    /// `logs`: each record `opts` selects goes to `emit` (which returns
    /// false to stop: its reader went away).
    pub fn logs(
        &mut self,
        key: &str,
        opts: &LogOptions,
        emit: &mut dyn FnMut(&Record) -> bool,
    ) -> Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let row = self.get(key)?;
        let path = self.log_path(&row.id);
        let keep = |r: &Record| {
            let t = record_time(&r.time);
            opts.since.is_none_or(|s| t >= s) && opts.until.is_none_or(|u| t <= u)
        };
        // The current file is opened before anything is read, and what was
        // in it is taken from that descriptor: a line the container writes
        // between the first read and the follow is then read once, never
        // skipped. Followed through the open file, not the path: the last
        // lines of a container removed right after it exits (docker-py's
        // `run` reads the follow only after its `remove`) are still read.
        let mut file = File::open(&path).ok();
        let (mut recs, mut offset) = read_from(&path, file.as_mut());
        recs.retain(|r| keep(r));
        if let Some(n) = opts.tail {
            let skip = recs.len().saturating_sub(n);
            recs.drain(..skip);
        }
        for r in &recs {
            if !emit(r) {
                return Ok(());
            }
        }
        if !opts.follow {
            return Ok(());
        }
        crate::test_pause("logs-read");
        loop {
            let running = matches!(
                self.get(&row.id).map(|r| r.state),
                Ok(ref s) if s == crate::db::RUNNING || s == crate::db::PAUSED
            );
            if file.is_none() {
                file = File::open(&path).ok();
                offset = 0;
            }
            if let Some(f) = file.as_mut() {
                let size = f.metadata().map_or(0, |m| m.len());
                if size < offset {
                    offset = 0; // truncated
                }
                if size > offset {
                    let mut data = Vec::new();
                    let _ = f.seek(SeekFrom::Start(offset));
                    let _ = f.read_to_end(&mut data);
                    // Only whole lines: a partial one is read next time.
                    if let Some(end) = data.iter().rposition(|&b| b == b'\n') {
                        let (recs, _) = read_records(&data[..=end]);
                        for r in recs.iter().filter(|r| keep(r)) {
                            if !emit(r) {
                                return Ok(());
                            }
                        }
                        offset += end as u64 + 1;
                    }
                }
                // Rotated: the path names a new file; go on there once
                // this one is read.
                use std::os::unix::fs::MetadataExt;
                let ino = f.metadata().map_or(0, |m| m.ino());
                if std::fs::metadata(&path).is_ok_and(|m| m.ino() != ino) {
                    file = None;
                    continue;
                }
            }
            if !running {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

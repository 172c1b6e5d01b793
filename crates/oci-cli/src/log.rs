//! `--log` / `--log-format`: errors (and debug lines) as runc writes them.
//! containerd reads the last JSON line of the log file to report a failure.

use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Logger {
    file: Option<PathBuf>,
    json: bool,
    #[allow(dead_code)]
    debug: bool,
}

impl Logger {
    pub fn new(file: Option<&Path>, format: &str, debug: bool) -> Logger {
        Logger {
            file: file.map(Path::to_path_buf),
            json: format == "json",
            debug,
        }
    }

    fn line(&self, level: &str, msg: &str) -> String {
        let time = berth_runtime::state::now_rfc3339();
        if self.json {
            serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
        } else {
            format!("time={time:?} level={level} msg={msg:?}")
        }
    }

    /// Reports a failure as runc does: without `--log`, one log line on
    /// stderr (`time="…" level=error msg="…"`, or JSON with `--log-format
    /// json`), which is what tools driving runc look for; with `--log`, the
    /// line goes to the file and the bare message to stderr.
    pub fn error(&self, msg: &str) {
        let line = self.line("error", msg);
        match &self.file {
            None => eprintln!("{line}"),
            Some(f) => {
                if let Ok(mut fh) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(f)
                {
                    let _ = writeln!(fh, "{line}");
                }
                eprintln!("{msg}");
            }
        }
    }
}

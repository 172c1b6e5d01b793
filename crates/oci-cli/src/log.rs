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

    /// Writes an error to the log file (if any) and always to stderr.
    pub fn error(&self, msg: &str) {
        if let Some(f) = &self.file
            && let Ok(mut fh) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)
        {
            let _ = writeln!(fh, "{}", self.line("error", msg));
        }
        eprintln!("berth-oci: {msg}");
    }
}

//! `LOG_FORMAT`: how log lines are written to stderr.

use super::ConfigError;

/// The shape of log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    /// Reads `LOG_FORMAT` (`text` or `json`, any case); unset means `text`. Anything else is
    /// refused, so a typo does not silently ship unparseable lines.
    pub fn from_lookup(var: &impl Fn(&str) -> Option<String>) -> Result<LogFormat, ConfigError> {
        match var("LOG_FORMAT") {
            None => Ok(LogFormat::Text),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err(ConfigError(format!(
                    "LOG_FORMAT: {v:?} is not a log format (use text or json)"
                ))),
            },
        }
    }
}

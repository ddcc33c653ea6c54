//! The database: `DATABASE_URL`, and how the ledger writer forms its batches
//! (`WRITER_BATCH_MAX`, `WRITER_BATCH_WAIT_US`).

use super::ConfigError;

/// Where the ledger is kept.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite file path.
    Sqlite(String),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `sqlite://PATH`, `sqlite:PATH` or `postgres://...`/`postgresql://...`.
    pub fn parse(url: &str) -> Result<DatabaseUrl, ConfigError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                ConfigError(format!(
                    "DATABASE_URL must start with sqlite:// or postgres://, got {:?}",
                    redact_url(url)
                ))
            })?;
        if path.is_empty() || path.contains(":memory:") {
            return Err(ConfigError(
                "DATABASE_URL needs an SQLite file path (an in-memory database would give each connection its own ledger)".into(),
            ));
        }
        Ok(DatabaseUrl::Sqlite(path.to_owned()))
    }

    /// True for PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, DatabaseUrl::Postgres(_))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(p) => write!(f, "sqlite://{p}"),
            DatabaseUrl::Postgres(u) => write!(f, "{}", redact_url(u)),
        }
    }
}

/// Hides a password in a URL for logs.
pub(super) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// How the writer forms batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchTuning {
    /// Most commands in one transaction.
    pub max: usize,
    /// Under load, how long to wait after the first command for as many commands as there
    /// were callers in flight around the previous batch (or until none has come for a tenth
    /// of it). Zero never waits.
    pub fill_wait: std::time::Duration,
}

impl Default for BatchTuning {
    fn default() -> BatchTuning {
        BatchTuning {
            max: 512,
            fill_wait: std::time::Duration::ZERO,
        }
    }
}

/// `WRITER_BATCH_WAIT_US` when it is not set. A PostgreSQL batch has a fixed cost (three round
/// trips at once, six in a transaction, and a commit) that a millisecond's wait lets more
/// callers share (BENCHMARKS.md, "Seventh session": 8,415 webhooks/s at 32 clients with
/// 1 ms, 8,086 with 500 µs, 7,114 with none). SQLite's writer works in-process with little
/// fixed cost: waiting only idles the one thread that writes, while the callers' HTTP work
/// could overlap its batch (BENCHMARKS.md, "Fifth session": 21% and 27%
/// more webhooks per second at 32 clients without the wait in two sets of alternating runs,
/// and no fewer at 8).
pub(super) fn default_fill_wait_us(url: &DatabaseUrl) -> usize {
    match url {
        DatabaseUrl::Sqlite(_) => 0,
        DatabaseUrl::Postgres(_) => 1000,
    }
}

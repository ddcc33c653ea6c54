//! `BACKUP_DIR`, `BACKUP_EVERY` and `BACKUP_KEEP`: backups the server takes itself.
//!
//! Off unless `BACKUP_DIR` is set. Then the server writes a backup (the same file as
//! `crowdledger backup`) every `BACKUP_EVERY` (default `6h`) and keeps the newest
//! `BACKUP_KEEP` (default 7) of its own files in that directory.

use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, parse_duration};

/// Default time between two scheduled backups.
pub const DEFAULT_BACKUP_EVERY: Duration = Duration::from_secs(6 * 3600);
/// Default number of scheduled backups kept.
pub const DEFAULT_BACKUP_KEEP: usize = 7;

/// Where and how often the server backs itself up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSchedule {
    /// The directory the backups go to (created if missing).
    pub dir: PathBuf,
    /// Time between two backups.
    pub every: Duration,
    /// How many of the newest scheduled backups are kept (older ones are deleted).
    pub keep: usize,
}

impl BackupSchedule {
    /// Reads the three settings; `None` when `BACKUP_DIR` is unset. `BACKUP_EVERY` or
    /// `BACKUP_KEEP` without `BACKUP_DIR` is an error (a schedule that silently never runs).
    pub fn from_lookup(
        var: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<BackupSchedule>, ConfigError> {
        let Some(dir) = var("BACKUP_DIR") else {
            for key in ["BACKUP_EVERY", "BACKUP_KEEP"] {
                if var(key).is_some() {
                    return Err(ConfigError(format!("{key} is set but BACKUP_DIR is not")));
                }
            }
            return Ok(None);
        };
        let every = match var("BACKUP_EVERY") {
            None => DEFAULT_BACKUP_EVERY,
            Some(t) => parse_duration(&t)
                .filter(|d| *d >= Duration::from_secs(1))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "BACKUP_EVERY: not a duration of a second or more: {t:?} (e.g. 6h, 30m)"
                    ))
                })?,
        };
        let keep = match var("BACKUP_KEEP") {
            None => DEFAULT_BACKUP_KEEP,
            Some(k) => k
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|k| *k >= 1)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "BACKUP_KEEP: not a whole number of 1 or more: {k:?}"
                    ))
                })?,
        };
        Ok(Some(BackupSchedule {
            dir: PathBuf::from(dir.trim()),
            every,
            keep,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<Option<BackupSchedule>, ConfigError> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        BackupSchedule::from_lookup(&|k: &str| map.get(k).cloned())
    }

    #[test]
    fn off_unless_a_directory_is_given() {
        assert_eq!(read(&[]).expect("valid"), None);
        let s = read(&[("BACKUP_DIR", "/var/backups/fund")])
            .expect("valid")
            .expect("on");
        assert_eq!(s.dir, PathBuf::from("/var/backups/fund"));
        assert_eq!(s.every, DEFAULT_BACKUP_EVERY);
        assert_eq!(s.keep, DEFAULT_BACKUP_KEEP);
    }

    #[test]
    fn every_and_keep_are_read_and_nonsense_is_refused() {
        let s = read(&[
            ("BACKUP_DIR", "b"),
            ("BACKUP_EVERY", "30m"),
            ("BACKUP_KEEP", "3"),
        ])
        .expect("valid")
        .expect("on");
        assert_eq!((s.every, s.keep), (Duration::from_secs(1800), 3));
        for (key, bad) in [
            ("BACKUP_EVERY", "0"),
            ("BACKUP_EVERY", "500ms"),
            ("BACKUP_EVERY", "daily"),
            ("BACKUP_KEEP", "0"),
            ("BACKUP_KEEP", "-1"),
            ("BACKUP_KEEP", "all"),
        ] {
            let err = read(&[("BACKUP_DIR", "b"), (key, bad)]).expect_err(bad);
            assert!(err.0.starts_with(key), "{key}={bad}: {err}");
        }
    }

    #[test]
    fn a_schedule_without_a_directory_is_refused() {
        for key in ["BACKUP_EVERY", "BACKUP_KEEP"] {
            let err = read(&[(key, "1")]).expect_err(key);
            assert!(err.0.contains("BACKUP_DIR"), "{err}");
        }
    }
}

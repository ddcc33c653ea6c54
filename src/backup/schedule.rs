//! Scheduled backups (`BACKUP_DIR`, `BACKUP_EVERY`, `BACKUP_KEEP`): the server writes the same
//! file as `crowdledger backup` on its own, keeps the newest few, and logs each with its head.
//!
//! A backup reads one snapshot on its own connection, in a blocking thread: on SQLite (WAL) a
//! reader never blocks the writer, on PostgreSQL a REPEATABLE READ transaction takes no lock
//! that a gift's transaction waits for. So a backup, slow or failing, never holds up a gift.
//! A failed backup is logged and retried sooner than the schedule (from a minute, doubling up
//! to `BACKUP_EVERY`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{NaiveDateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Head, backup};
use crate::config::{BackupSchedule, DatabaseUrl};

/// Scheduled backups are named `crowdledger-<UTC time>.clbk`, so their names sort by age.
const PREFIX: &str = "crowdledger-";
const SUFFIX: &str = ".clbk";
const STAMP: &str = "%Y%m%dT%H%M%S%.3fZ";
/// The first retry after a failure comes after this (or `BACKUP_EVERY`, if shorter).
const FIRST_RETRY: Duration = Duration::from_secs(60);

/// What the scheduled backups did, read by `/metrics`.
#[derive(Debug, Default)]
pub struct BackupStatus {
    /// Unix time (seconds) of the last backup written; 0 before the first.
    last_success: AtomicI64,
    /// The ledger seq the last backup ended at.
    last_seq: AtomicI64,
    /// Backups that failed since the server started.
    failures: AtomicU64,
}

impl BackupStatus {
    /// Unix time (seconds) of the last scheduled backup written, if any.
    pub fn last_success(&self) -> Option<i64> {
        Some(self.last_success.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    /// The ledger seq the last scheduled backup ended at (0 before the first).
    pub fn last_seq(&self) -> i64 {
        self.last_seq.load(Ordering::Relaxed)
    }

    /// Scheduled backups that failed since the start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// Starts the schedule: the first backup at once, unless the newest one in the directory is
/// younger than `BACKUP_EVERY` (a restart does not reset the clock). Ends when `stop` turns
/// true, abandoning a backup under way (its `.partial` file is removed at the next start).
pub fn spawn(
    url: DatabaseUrl,
    schedule: BackupSchedule,
    status: Arc<BackupStatus>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut wait = first_wait(&schedule);
        let mut retry = FIRST_RETRY.min(schedule.every);
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
            let (url, plan) = (url.clone(), schedule.clone());
            let run = tokio::task::spawn_blocking(move || take(&url, &plan));
            let outcome = tokio::select! {
                joined = run => joined.map_err(anyhow::Error::from).and_then(|r| r),
                _ = stop.changed() => return,
            };
            match outcome {
                Ok((path, head)) => {
                    tracing::info!(
                        file = %path.display(),
                        head_seq = head.seq,
                        head_hash = %head.hash,
                        rows = head.rows,
                        "scheduled backup written"
                    );
                    status
                        .last_success
                        .store(Utc::now().timestamp(), Ordering::Relaxed);
                    status.last_seq.store(head.seq, Ordering::Relaxed);
                    if let Err(e) = prune(&schedule.dir, schedule.keep) {
                        tracing::warn!(error = %e, "removing old scheduled backups");
                    }
                    wait = schedule.every;
                    retry = FIRST_RETRY.min(schedule.every);
                }
                Err(e) => {
                    status.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        error = format!("{e:#}"),
                        retry_in_s = retry.as_secs_f64(),
                        "scheduled backup failed; donations go on, the backup is retried"
                    );
                    wait = retry;
                    retry = (retry * 2).min(schedule.every);
                }
            }
        }
    })
}

/// Takes one backup into the directory (made private if created) and returns its path.
fn take(url: &DatabaseUrl, schedule: &BackupSchedule) -> anyhow::Result<(PathBuf, Head)> {
    create_private_dir(&schedule.dir)?;
    let name = format!("{PREFIX}{}{SUFFIX}", Utc::now().format(STAMP));
    let path = schedule.dir.join(name);
    let head = backup(url, &path)?;
    Ok((path, head))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// The scheduled backups in `dir`, oldest first, with the time in their names.
pub fn scheduled_backups(dir: &Path) -> std::io::Result<Vec<(NaiveDateTime, PathBuf)>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let stamp = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.strip_suffix(SUFFIX));
        if let Some(at) = stamp.and_then(|s| NaiveDateTime::parse_from_str(s, STAMP).ok()) {
            found.push((at, path));
        }
    }
    found.sort();
    Ok(found)
}

/// How long until the first backup: what is left of `every` since the newest backup in the
/// directory, or nothing. Also removes `.partial` files an interrupted backup left.
fn first_wait(schedule: &BackupSchedule) -> Duration {
    if let Ok(entries) = std::fs::read_dir(&schedule.dir) {
        for path in entries.flatten().map(|e| e.path()) {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with(PREFIX) && name.ends_with(".partial") {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let newest = scheduled_backups(&schedule.dir)
        .ok()
        .and_then(|all| all.last().map(|(at, _)| *at));
    newest.map_or(Duration::ZERO, |at| {
        let age = (Utc::now().naive_utc() - at)
            .to_std()
            .unwrap_or(Duration::ZERO);
        schedule.every.saturating_sub(age)
    })
}

/// Deletes all but the newest `keep` scheduled backups (other files are left alone).
fn prune(dir: &Path, keep: usize) -> std::io::Result<()> {
    let all = scheduled_backups(dir)?;
    let extra = all.len().saturating_sub(keep);
    for (_, path) in all.into_iter().take(extra) {
        std::fs::remove_file(path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) {
        std::fs::write(dir.join(name), b"x").expect("write");
    }

    #[test]
    fn pruning_keeps_the_newest_scheduled_backups_and_nothing_else_is_touched() {
        let dir = tempfile::tempdir().expect("dir");
        for stamp in [
            "20261201T000000.000Z",
            "20261203T000000.000Z",
            "20261202T000000.000Z",
        ] {
            touch(dir.path(), &format!("{PREFIX}{stamp}{SUFFIX}"));
        }
        touch(dir.path(), "manual.clbk");
        touch(dir.path(), "crowdledger-notes.txt");
        prune(dir.path(), 2).expect("prune");
        let left: Vec<String> = scheduled_backups(dir.path())
            .expect("list")
            .into_iter()
            .map(|(at, _)| at.format(STAMP).to_string())
            .collect();
        assert_eq!(left, ["20261202T000000.000Z", "20261203T000000.000Z"]);
        assert!(dir.path().join("manual.clbk").exists());
        assert!(dir.path().join("crowdledger-notes.txt").exists());
    }

    #[test]
    fn the_first_backup_waits_for_what_is_left_of_the_interval() {
        let dir = tempfile::tempdir().expect("dir");
        let schedule = BackupSchedule {
            dir: dir.path().to_path_buf(),
            every: Duration::from_secs(3600),
            keep: 3,
        };
        assert_eq!(
            first_wait(&schedule),
            Duration::ZERO,
            "no backup yet: at once"
        );
        let ten_minutes_ago = Utc::now().naive_utc() - chrono::Duration::minutes(10);
        touch(
            dir.path(),
            &format!("{PREFIX}{}{SUFFIX}", ten_minutes_ago.format(STAMP)),
        );
        touch(dir.path(), &format!("{PREFIX}x{SUFFIX}.partial"));
        let wait = first_wait(&schedule);
        assert!(
            wait > Duration::from_secs(49 * 60) && wait <= Duration::from_secs(50 * 60),
            "{wait:?}"
        );
        assert!(
            !dir.path()
                .join(format!("{PREFIX}x{SUFFIX}.partial"))
                .exists()
        );
    }
}

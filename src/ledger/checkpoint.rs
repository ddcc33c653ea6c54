//! SQLite only: WAL checkpoints on a thread of their own instead of inside the writer's commits.
//!
//! By default SQLite checkpoints in the commit that takes the WAL past 1,000 pages, so every
//! few batches one commit also copies the WAL back into the database file: 12.6% of the
//! writer's time in a profile of the webhook load. Here the writer's connection checkpoints
//! only as a backstop (at `BACKSTOP_PAGES`) and a second connection runs passive checkpoints
//! after commits, on the other core, without blocking the writer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Integer;

use super::writer::WriterStats;

use crate::config::DatabaseUrl;
use crate::db::{self, DbConn};

/// The writer's own automatic checkpoint, kept in case this thread falls behind or stops, so
/// the WAL stays bounded (pages of 4 KiB: about 40 MiB).
const BACKSTOP_PAGES: u32 = 10_000;

/// Least time between two checkpoints: commits in between are folded into the next one.
const PAUSE: Duration = Duration::from_millis(20);

/// Wakes the checkpoint thread after a commit; dropping it stops the thread.
pub(super) struct Checkpointer {
    wake: SyncSender<()>,
}

impl Checkpointer {
    /// For an SQLite database, moves the writer's checkpoints to a new thread; `None` for
    /// PostgreSQL (or if the thread cannot start, leaving SQLite's default in place).
    pub(super) fn start(
        url: &DatabaseUrl,
        writer: &mut DbConn,
        stats: Arc<WriterStats>,
    ) -> Option<Checkpointer> {
        if url.is_postgres() {
            return None;
        }
        let (wake, rx) = sync_channel(1);
        let url = url.clone();
        let spawned = std::thread::Builder::new()
            .name("ledger-checkpoint".into())
            .spawn(move || run(&url, &rx, &stats));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no checkpoint thread; the writer checkpoints itself");
            return None;
        }
        writer_pragmas(writer);
        Some(Checkpointer { wake })
    }

    /// The writer opened a new connection: it too checkpoints only past the backstop.
    pub(super) fn reconnected(&self, writer: &mut DbConn) {
        writer_pragmas(writer);
    }

    /// Called after each commit; never blocks.
    pub(super) fn committed(&self) {
        match self.wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                tracing::warn!("checkpoint thread stopped; the writer's backstop remains");
            }
        }
    }
}

/// The writer connection's side: checkpoint only past the backstop.
fn writer_pragmas(writer: &mut DbConn) {
    if let DbConn::Sqlite(c) = writer
        && let Err(e) = c.batch_execute(&format!("PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}"))
    {
        tracing::warn!(error = %e, "could not move checkpoints off the writer");
    }
}

/// `PRAGMA wal_checkpoint`'s answer.
#[derive(QueryableByName)]
struct Checkpointed {
    /// WAL frames copied into the database file so far (since the WAL last restarted).
    #[diesel(sql_type = Integer)]
    checkpointed: i32,
}

fn run(url: &DatabaseUrl, wake: &Receiver<()>, stats: &WriterStats) {
    let mut conn = None;
    while wake.recv().is_ok() {
        if conn.is_none() {
            conn = db::establish(url)
                .map_err(|e| tracing::warn!(error = %e, "checkpoint connection failed"))
                .ok();
        }
        if let Some(DbConn::Sqlite(c)) = conn.as_mut() {
            match diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result::<Checkpointed>(c)
            {
                Ok(done) => {
                    stats.checkpoints.fetch_add(1, Ordering::Relaxed);
                    stats.checkpointed_frames.fetch_max(
                        u64::try_from(done.checkpointed).unwrap_or(0),
                        Ordering::Relaxed,
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                    conn = None;
                }
            }
        }
        std::thread::sleep(PAUSE);
    }
}

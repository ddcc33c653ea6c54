//! The writer thread's side: forming batches (with the group-commit wait) and applying each
//! in one transaction, then answering its callers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::super::appended::Written;
use super::super::checkpoint::Checkpointer;
use super::super::context::{Appended, Ctx};
use super::super::prefetch::{BatchKeys, Prefetched};
use super::super::state::lock_and_load;
use super::super::{Effect, FundState, SnapshotCell};
use super::{Job, WriterStats};
use crate::config::BatchTuning;
use crate::config::DatabaseUrl;
use crate::db::{self, DbConn};
use crate::error::{AppError, ErrorCode};

/// Why a batch transaction ended without committing.
enum Abort {
    /// A command failed in a batch run without savepoints: run it again, isolated.
    Retry,
    /// The only command failed: nothing to commit, answer it with its own error.
    Alone,
    /// The database failed.
    Failed(AppError),
    /// A batch tried without a transaction must run in one, under the fund row's lock.
    Relock,
}

impl From<diesel::result::Error> for Abort {
    fn from(e: diesel::result::Error) -> Abort {
        Abort::Failed(e.into())
    }
}

impl From<AppError> for Abort {
    fn from(e: AppError) -> Abort {
        Abort::Failed(e)
    }
}

/// The writer thread's own state.
pub(super) struct Writer {
    pub(super) conn: Option<DbConn>,
    pub(super) url: DatabaseUrl,
    pub(super) snapshot: Arc<SnapshotCell>,
    pub(super) stats: Arc<WriterStats>,
    pub(super) tuning: BatchTuning,
    /// Estimate of the callers in flight, to size the next batch.
    pub(super) concurrency: usize,
    pub(super) cached: Option<FundState>,
    /// The fund version written by the last commit, when that commit knew no Stripe event was
    /// kept (waiting for its payment). Every batch of every instance bumps the version under
    /// the fund row's lock, so while the version is unchanged none is kept still and the batch
    /// needs no query to learn it. "Some are kept" is asked again each batch: applying kept
    /// events (which can leave none) is not tracked.
    pub(super) none_kept_at: Option<i64>,
    /// SQLite's WAL checkpoints, on their own thread.
    pub(super) checkpoint: Option<Checkpointer>,
    pub(super) effects: Option<tokio::sync::mpsc::UnboundedSender<Effect>>,
    /// Set by `LedgerWriter::close`: end once the queue is empty.
    pub(super) closing: Arc<std::sync::atomic::AtomicBool>,
}

impl Writer {
    pub(super) fn run(&mut self, rx: &Receiver<Box<dyn Job>>) {
        // Commands that arrived while the previous batch was being applied.
        let mut carried: Vec<Box<dyn Job>> = Vec::new();
        loop {
            let max = self.tuning.max;
            let mut jobs = std::mem::take(&mut carried);
            if jobs.is_empty() {
                // Woken now and then to notice a graceful stop: the queue's handles may live
                // on (a detached task holds one), so its closing is not the only way to end.
                match rx.recv_timeout(CLOSE_CHECK) {
                    Ok(job) => jobs.push(job),
                    Err(RecvTimeoutError::Timeout) => {
                        if self.closing.load(Ordering::Acquire) {
                            // Commands queued just before the close are still answered.
                            match rx.try_recv() {
                                Ok(job) => jobs.push(job),
                                Err(_) => break,
                            }
                        } else {
                            continue;
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            while jobs.len() < max {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            // Group commit: callers answered by the last batch are likely on their way back;
            // waiting a little for them lets one commit serve all of them instead of
            // splitting them into alternating half-size batches. A batch in a transaction
            // waits once it has begun and locked the fund row, so those round trips overlap
            // the wait.
            let fill =
                (!self.tuning.fill_wait.is_zero() && self.concurrency > jobs.len()).then(|| Fill {
                    rx,
                    want: self.concurrency.min(max),
                    deadline: std::time::Instant::now() + self.tuning.fill_wait,
                    gap: self.tuning.fill_wait / FILL_GAP_DIVISOR,
                });
            let len = self.batch(jobs, fill);
            self.stats.commands.fetch_add(len as u64, Ordering::Relaxed);
            while carried.len() < max {
                match rx.try_recv() {
                    Ok(job) => carried.push(job),
                    Err(_) => break,
                }
            }
            // Callers in flight: those just answered plus those who queued meanwhile.
            self.concurrency = len + carried.len();
        }
        tracing::info!("ledger writer stopped");
    }

    /// Applies one batch: first without savepoints (the common case, fewest round trips);
    /// if a command fails, again with a savepoint per command so it fails alone. Returns how
    /// many commands it answered (with those `fill` brought in).
    fn batch(&mut self, mut jobs: Vec<Box<dyn Job>>, mut fill: Option<Fill<'_>>) -> usize {
        if self.conn.is_none() {
            match db::establish_writer(&self.url) {
                Ok(mut c) => {
                    if let Some(checkpoint) = &self.checkpoint {
                        checkpoint.reconnected(&mut c);
                    }
                    self.conn = Some(c);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ledger writer cannot reach the database");
                    // Dropping the jobs answers their callers with 503.
                    let n = jobs.len();
                    drop(jobs);
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    return n;
                }
            }
        }
        let Some(c) = self.conn.as_mut() else {
            return jobs.len();
        };
        let cached = self.cached.as_ref();
        let none_kept_at = self.none_kept_at.take();
        let mut none_kept_after = None;
        let mut isolated = false;
        // PostgreSQL, when the fund row is known from this writer's last commit and every
        // command only buffers rows: the batch reads without a transaction or the fund row's
        // lock, and one statement writes it and commits by itself, if the fund row still has
        // the version the batch started from (see `pg_write`). Three round trips fewer than
        // BEGIN, the lock and COMMIT. Anything else (another instance wrote meanwhile, a
        // command asked for the connection or failed, a database error) sends the batch back
        // to run as below, in a transaction under the lock; nothing was written.
        let mut at_once =
            matches!(c, DbConn::Pg(_)) && cached.is_some() && jobs.iter().all(|j| j.buffered());
        let started = std::time::Instant::now();
        let mut effects = Vec::new();
        let outcome = loop {
            let mut body = |conn: &mut DbConn, at_once: bool| -> Result<FundState, Abort> {
                let mut st = match cached {
                    Some(st) if at_once => st.clone(),
                    _ => lock_and_load(conn, cached)?,
                };
                if let Some(fill) = fill.take() {
                    fill.wait(&mut jobs);
                }
                let mut appended = Appended::default();
                // The batch's reads, at once; only without savepoints (see Prefetched).
                let mut keys = BatchKeys::default();
                if !isolated {
                    for job in &jobs {
                        job.keys(&mut keys);
                    }
                }
                let none_kept = none_kept_at == Some(st.row.version);
                let mut cache = if keys.is_empty() {
                    None
                } else {
                    Some(Prefetched::load(conn, &keys, none_kept)?)
                };
                let now = db::now();
                let alone = jobs.len() == 1;
                for job in &mut jobs {
                    let mut cx = Ctx {
                        conn: (!at_once).then_some(&mut *conn),
                        st: &mut st,
                        now,
                        appended: &mut appended,
                        cache: cache.as_mut(),
                    };
                    if !job.run(&mut cx, isolated) && !isolated {
                        return Err(if alone { Abort::Alone } else { Abort::Retry });
                    }
                }
                if appended.needs_transaction {
                    return Err(Abort::Relock);
                }
                effects = std::mem::take(&mut appended.effects);
                st.row.version += 1;
                st.row.updated_at = now;
                let written = if at_once {
                    appended.write_at_once(conn, &st)?.ok_or(Abort::Relock)?
                } else {
                    appended.write(conn, &st)?
                };
                if written == Written::Stale {
                    return Err(if at_once {
                        Abort::Relock
                    } else {
                        AppError::internal("the fund row changed under its lock").into()
                    });
                }
                none_kept_after = cache
                    .as_ref()
                    .is_some_and(|c| !c.kept_exist)
                    .then_some(st.row.version);
                Ok(st)
            };
            let attempt = if at_once {
                // Nothing was written unless it succeeded, so any failure is asked again
                // under the lock, where the reads are the committed ones.
                body(c, true).map_err(|_| Abort::Relock)
            } else {
                c.transaction::<FundState, Abort, _>(|conn| body(conn, false))
            };
            match attempt {
                Err(Abort::Relock) => {
                    self.stats.locked_reruns.fetch_add(1, Ordering::Relaxed);
                    at_once = false;
                }
                Err(Abort::Retry) => {
                    self.stats.isolated_reruns.fetch_add(1, Ordering::Relaxed);
                    isolated = true;
                }
                other => break other,
            }
        };
        let answered = jobs.len();
        match outcome {
            Ok(st) => {
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                if let Some(h) = self.stats.histograms.get() {
                    h.commit_seconds.observe(started.elapsed().as_secs_f64());
                    #[allow(clippy::cast_precision_loss)] // a batch is far below 2^52
                    h.batch_size.observe(answered as f64);
                }
                self.snapshot.publish(&st);
                self.cached = Some(st);
                self.none_kept_at = none_kept_after;
                if let Some(checkpoint) = &self.checkpoint {
                    checkpoint.committed();
                }
                for job in jobs {
                    job.finish(Ok(()));
                }
                if let Some(sink) = &self.effects {
                    for effect in effects {
                        let _ = sink.send(effect);
                    }
                }
            }
            Err(Abort::Alone | Abort::Retry | Abort::Relock) => {
                for job in jobs {
                    job.finish(Ok(()));
                }
            }
            Err(Abort::Failed(e)) => {
                tracing::warn!(error = %e, "ledger batch rolled back");
                self.cached = None;
                // A lost connection (the database stopped or restarted) is an outage, not a
                // bug: the callers get 503 and retry; the next batch reconnects.
                let lost = c.batch_execute("SELECT 1").is_err();
                if lost {
                    self.conn = None;
                }
                let e = match e.code {
                    ErrorCode::Internal if !lost => e,
                    _ => AppError::unavailable(&e),
                };
                for job in jobs {
                    job.finish(Err(e.clone()));
                }
            }
        }
        answered
    }
}

/// The group-commit wait also ends when no command has arrived for this fraction of it: the
/// callers on their way back arrive close together, and once they stop, waiting longer for a
/// straggler only idles the writer (BENCHMARKS.md, "Fifth session": 100 µs of a 1 ms wait).
const FILL_GAP_DIVISOR: u32 = 10;

/// How often an idle writer looks whether it is asked to stop.
const CLOSE_CHECK: std::time::Duration = std::time::Duration::from_millis(50);

/// The rest of a batch's group-commit wait: more commands, up to `want` in all, until
/// `deadline`, or until none has come for `gap`.
struct Fill<'a, T = Box<dyn Job>> {
    rx: &'a Receiver<T>,
    want: usize,
    deadline: std::time::Instant,
    gap: std::time::Duration,
}

impl<T> Fill<'_, T> {
    fn wait(self, jobs: &mut Vec<T>) {
        while jobs.len() < self.want {
            let left = self
                .deadline
                .saturating_duration_since(std::time::Instant::now())
                .min(self.gap);
            match self.rx.recv_timeout(left) {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
    }
}

#[cfg(test)]
mod prepared;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;
    use std::time::{Duration, Instant};

    #[test]
    fn the_fill_wait_ends_when_callers_stop_arriving() {
        let (tx, rx) = sync_channel(16);
        for i in 0..3 {
            tx.send(i).expect("queued");
        }
        // A straggler, long after the others but well before the deadline.
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            let _ = tx.send(3);
        });
        let started = Instant::now();
        let mut got = vec![];
        Fill {
            rx: &rx,
            want: 10,
            deadline: started + Duration::from_secs(3),
            gap: Duration::from_millis(50),
        }
        .wait(&mut got);
        assert_eq!(
            got,
            vec![0, 1, 2],
            "the straggler is left to the next batch"
        );
        assert!(started.elapsed() < Duration::from_millis(400));
        late.join().expect("sender");
        // Without a gap in arrivals, the wait runs to `want`.
        let (tx, rx) = sync_channel(16);
        let steady = std::thread::spawn(move || {
            for i in 0..5 {
                let _ = tx.send(i);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let mut got = vec![];
        Fill {
            rx: &rx,
            want: 5,
            deadline: Instant::now() + Duration::from_secs(3),
            gap: Duration::from_millis(500),
        }
        .wait(&mut got);
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        steady.join().expect("sender");
    }
}

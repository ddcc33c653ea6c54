//! The handle callers use to submit commands, and the writer thread's start; the thread's
//! batch loop is in `batch`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use tokio::sync::oneshot;

use super::checkpoint::Checkpointer;
use super::context::Ctx;
use super::prefetch::BatchKeys;
use super::{Effect, FundState, SnapshotCell};
use crate::config::{BatchTuning, DatabaseUrl, FundDefaults};
use crate::db;
use crate::error::{AppError, ErrorCode};

mod batch;

/// Commands waiting beyond this are refused with 503 rather than queued without bound.
const QUEUE_CAPACITY: usize = 16_384;

/// A change to the ledger, applied by the writer inside the batch transaction.
///
/// `apply` may run twice: a batch first runs its commands without savepoints, and only if
/// one of them fails is the batch rolled back and run again with a savepoint per command.
/// So `apply` must not have effects outside `cx`.
pub trait Op: Send + 'static {
    /// What the caller gets back once the batch committed.
    type Output: Send + 'static;
    /// Applies the change.
    fn apply(&self, cx: &mut Ctx<'_>) -> Result<Self::Output, AppError>;

    /// Names what `apply` will look up, so the batch reads it all at once.
    fn keys(&self, _keys: &mut BatchKeys) {}

    /// True when `apply`, with the batch's reads prefetched, usually only buffers rows,
    /// without asking for the connection. On PostgreSQL a batch of such commands is first
    /// run without a transaction (see `batch::Writer::batch`). A wrong answer costs time,
    /// never correctness: asking for the connection there sends the batch into a transaction.
    fn buffered(&self) -> bool {
        false
    }
}

/// A submitted command with its reply channel, type-erased for the queue.
trait Job: Send {
    /// Applies the command (in its own savepoint when `isolated`); false if it failed.
    fn run(&mut self, cx: &mut Ctx<'_>, isolated: bool) -> bool;
    /// Answers the caller once the batch's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), AppError>);
    /// What the command will look up.
    fn keys(&self, keys: &mut BatchKeys);
    /// See `Op::buffered`.
    fn buffered(&self) -> bool;
}

struct Submitted<O: Op> {
    op: O,
    result: Option<Result<O::Output, AppError>>,
    reply: oneshot::Sender<Result<O::Output, AppError>>,
}

impl<O: Op> Job for Submitted<O> {
    fn run(&mut self, cx: &mut Ctx<'_>, isolated: bool) -> bool {
        let result = if isolated {
            cx.savepoint(|cx| self.op.apply(cx))
        } else {
            self.op.apply(cx)
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn keys(&self, keys: &mut BatchKeys) {
        self.op.keys(keys);
    }

    fn buffered(&self) -> bool {
        self.op.buffered()
    }

    fn finish(self: Box<Self>, commit: Result<(), AppError>) {
        let answer = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(AppError::unavailable("command was not applied")),
            (Err(e), _) => Err(e),
        };
        let _ = self.reply.send(answer);
    }
}

/// Counters of the writer's work, for benchmarks and tests.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Transactions committed.
    pub batches: AtomicU64,
    /// Commands answered (committed or refused).
    pub commands: AtomicU64,
    /// Batches re-run with a savepoint per command because one command failed.
    pub isolated_reruns: AtomicU64,
    /// PostgreSQL: batches tried without a transaction and run again in one, under the fund
    /// row's lock (another instance wrote first, or a command needed the connection).
    pub locked_reruns: AtomicU64,
    /// SQLite: WAL checkpoints run by the checkpoint thread.
    pub checkpoints: AtomicU64,
    /// SQLite: the most WAL frames one of those checkpoints reported copied.
    pub checkpointed_frames: AtomicU64,
    /// Set by the writer thread once it has stopped and closed its connection.
    pub stopped: std::sync::atomic::AtomicBool,
    /// Histograms the writer observes after each commit, once the service registered them
    /// for `/metrics` (the CLI's writers have none and observe nothing).
    pub histograms: std::sync::OnceLock<WriterHistograms>,
}

/// What `/metrics` shows of the writer's batches. Observing is a few atomic adds, so the
/// writer thread pays no lock for it.
#[derive(Debug, Clone)]
pub struct WriterHistograms {
    /// Commands per committed batch.
    pub batch_size: prometheus::Histogram,
    /// Seconds from the batch's first statement to its commit (reruns included).
    pub commit_seconds: prometheus::Histogram,
}

/// Handle to the writer thread; cheap to clone. When the last handle is dropped the thread
/// stops, and the drop waits for it.
#[derive(Clone)]
pub struct LedgerWriter {
    // Fields drop in this order: the sender first (the thread sees the channel close and
    // stops), then, with the last handle, the thread is joined.
    tx: SyncSender<Box<dyn Job>>,
    snapshot: Arc<SnapshotCell>,
    stats: Arc<WriterStats>,
    /// Set by [`LedgerWriter::close`]: new commands are refused, the thread ends once the
    /// queue is empty.
    closing: Arc<AtomicBool>,
    _thread: Arc<Joined>,
}

/// The writer thread, joined when the last handle goes. Left running, it closed its
/// PostgreSQL connection while the process was already exiting: the TLS teardown raced the
/// exit's OpenSSL cleanup and aborted the process ("double free or corruption") in 3 of 200
/// runs of `crowdledger period add`, after the period was recorded.
struct Joined(Option<std::thread::JoinHandle<()>>);

impl Drop for Joined {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take()
            && thread.join().is_err()
        {
            tracing::warn!("the ledger writer thread panicked");
        }
    }
}

impl LedgerWriter {
    /// Starts the writer thread on its own connection: it creates the fund on first start,
    /// publishes the first snapshot, then serves commands until every handle is dropped.
    pub fn start(
        url: &DatabaseUrl,
        defaults: &FundDefaults,
        tuning: BatchTuning,
        effects: Option<tokio::sync::mpsc::UnboundedSender<Effect>>,
    ) -> Result<LedgerWriter, anyhow::Error> {
        let mut conn = db::establish_writer(url)?;
        super::bootstrap::bootstrap(&mut conn, defaults)?;
        let st = FundState::load(&mut conn)?;
        let snapshot = Arc::new(SnapshotCell::default());
        snapshot.publish(&st);
        let (tx, rx) = sync_channel(QUEUE_CAPACITY);
        let stats = Arc::new(WriterStats::default());
        let checkpoint = Checkpointer::start(url, &mut conn, Arc::clone(&stats));
        let shared = (Arc::clone(&snapshot), Arc::clone(&stats));
        let done = Arc::clone(&stats);
        let closing = Arc::new(AtomicBool::new(false));
        let closed = Arc::clone(&closing);
        let url = url.clone();
        let thread = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || {
                let mut writer = batch::Writer {
                    conn: Some(conn),
                    url,
                    snapshot: shared.0,
                    stats: shared.1,
                    tuning,
                    concurrency: 0,
                    cached: Some(st),
                    none_kept_at: None,
                    checkpoint,
                    effects,
                    closing: closed,
                };
                writer.run(&rx);
                drop(writer);
                done.stopped.store(true, Ordering::Release);
            })?;
        Ok(LedgerWriter {
            tx,
            snapshot,
            stats,
            closing,
            _thread: Arc::new(Joined(Some(thread))),
        })
    }

    /// Counters of the work done so far (they outlive the handle).
    pub fn stats(&self) -> Arc<WriterStats> {
        Arc::clone(&self.stats)
    }

    /// The latest published fund figures.
    pub fn snapshot(&self) -> &Arc<SnapshotCell> {
        &self.snapshot
    }

    /// Stops the writer in order (a graceful stop): commands submitted from now on are
    /// refused with 503; those already queued are applied, committed and answered, and then
    /// the thread closes its connection and ends. Returns at once; see
    /// [`LedgerWriter::wait_stopped`].
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// Waits (asynchronously) until the writer thread has answered its last command and
    /// closed its connection, at most `within`; false if it had not by then.
    pub async fn wait_stopped(&self, within: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !self.stats.stopped.load(Ordering::Acquire) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        true
    }

    fn enqueue<O: Op>(
        &self,
        op: O,
    ) -> Result<oneshot::Receiver<Result<O::Output, AppError>>, AppError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(AppError::unavailable("ledger writer stopped"));
        }
        let (reply, rx) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Submitted {
            op,
            result: None,
            reply,
        });
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => AppError::new(
                ErrorCode::Unavailable,
                "the ledger is busy; nothing was recorded, please try again",
            ),
            TrySendError::Disconnected(_) => AppError::unavailable("ledger writer stopped"),
        })?;
        Ok(rx)
    }

    /// Applies `op` and waits (asynchronously) for the batch that contains it to commit.
    pub async fn submit<O: Op>(&self, op: O) -> Result<O::Output, AppError> {
        let rx = self.enqueue(op)?;
        rx.await
            .map_err(|_| AppError::unavailable("the batch was abandoned"))?
    }

    /// Applies `op` and blocks the calling (non-async) thread until it committed.
    pub fn submit_blocking<O: Op>(&self, op: O) -> Result<O::Output, AppError> {
        let rx = self.enqueue(op)?;
        rx.blocking_recv()
            .map_err(|_| AppError::unavailable("the batch was abandoned"))?
    }
}

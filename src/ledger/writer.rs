//! The writer thread and the handle callers use to submit commands.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use tokio::sync::oneshot;

use super::context::Ctx;
use super::state::{FUND_ID, load_fund_row, load_periods};
use super::{FundState, SnapshotCell};
use crate::config::{DatabaseUrl, FundDefaults};
use crate::db::models::{FundRow, LedgerEntryRow};
use crate::db::schema::{funds, ledger_entries};
use crate::db::{self, DbConn};
use crate::domain::{EntryFields, GENESIS_HASH, IntakeState, entry_hash};
use crate::error::{AppError, ErrorCode};

/// Commands waiting beyond this are refused with 503 rather than queued without bound.
const QUEUE_CAPACITY: usize = 16_384;

/// A change to the ledger, applied by the writer inside the batch transaction.
pub trait Op: Send + 'static {
    /// What the caller gets back once the batch committed.
    type Output: Send + 'static;
    /// Applies the change. Runs inside its own savepoint.
    fn apply(self, cx: &mut Ctx<'_>) -> Result<Self::Output, AppError>;
}

type Answer = Box<dyn FnOnce(Result<(), AppError>) + Send>;
type Job = Box<dyn FnOnce(&mut Ctx<'_>) -> Answer + Send>;

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct LedgerWriter {
    tx: SyncSender<Job>,
    snapshot: Arc<SnapshotCell>,
}

impl LedgerWriter {
    /// Starts the writer thread on its own connection: it creates the fund on first start,
    /// publishes the first snapshot, then serves commands until every handle is dropped.
    pub fn start(
        url: &DatabaseUrl,
        defaults: &FundDefaults,
        batch_max: usize,
    ) -> Result<LedgerWriter, anyhow::Error> {
        let mut conn = db::establish(url)?;
        bootstrap(&mut conn, defaults)?;
        let st = FundState::load(&mut conn)?;
        let snapshot = Arc::new(SnapshotCell::default());
        snapshot.publish(&st);
        let (tx, rx) = sync_channel(QUEUE_CAPACITY);
        let thread_snapshot = Arc::clone(&snapshot);
        let url = url.clone();
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || run(Some(conn), &url, &rx, &thread_snapshot, batch_max, Some(st)))?;
        Ok(LedgerWriter { tx, snapshot })
    }

    /// The latest published fund figures.
    pub fn snapshot(&self) -> &Arc<SnapshotCell> {
        &self.snapshot
    }

    fn enqueue<O: Op>(
        &self,
        op: O,
    ) -> Result<oneshot::Receiver<Result<O::Output, AppError>>, AppError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |cx: &mut Ctx<'_>| {
            let result = cx.savepoint(|cx| op.apply(cx));
            Box::new(move |commit: Result<(), AppError>| {
                let _ = tx.send(commit.and(result));
            })
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

/// Creates the fund row and the chain's first entry if this database has none.
fn bootstrap(conn: &mut DbConn, defaults: &FundDefaults) -> Result<(), anyhow::Error> {
    let exists = funds::table
        .find(FUND_ID)
        .select(funds::id)
        .first::<i64>(conn)
        .optional()?;
    if exists.is_some() {
        return Ok(());
    }
    let now = db::now();
    let inserted = conn.transaction::<_, diesel::result::Error, _>(|conn| {
        let memo = format!("fund created: {}", defaults.name);
        let intake = IntakeState::Open.after_totals(0, defaults.target_minor);
        let fields = EntryFields {
            seq: 1,
            created_at: now,
            kind: "fund_created",
            donation_id: None,
            amount_minor: 0,
            count_delta: 0,
            raised_after_minor: 0,
            target_after_minor: defaults.target_minor,
            intake_after: intake.as_str(),
            memo: &memo,
        };
        let hash = entry_hash(GENESIS_HASH, &fields);
        diesel::insert_into(funds::table)
            .values(&FundRow {
                id: FUND_ID,
                name: defaults.name.clone(),
                currency: defaults.currency.code().to_owned(),
                target_minor: defaults.target_minor,
                raised_minor: 0,
                donation_count: 0,
                reserved_minor: 0,
                cap_mode: defaults.cap_mode.as_str().to_owned(),
                intake_state: intake.as_str().to_owned(),
                intake_message: String::new(),
                intake_changed_at: now,
                ledger_seq: 1,
                ledger_head: hash.clone(),
                version: 1,
                created_at: now,
                updated_at: now,
            })
            .execute(conn)?;
        diesel::insert_into(ledger_entries::table)
            .values(&LedgerEntryRow {
                seq: 1,
                created_at: now,
                kind: "fund_created".into(),
                donation_id: None,
                amount_minor: 0,
                count_delta: 0,
                raised_after_minor: 0,
                target_after_minor: defaults.target_minor,
                intake_after: intake.as_str().into(),
                memo,
                prev_hash: GENESIS_HASH.into(),
                hash,
            })
            .execute(conn)?;
        Ok(())
    });
    match inserted {
        Ok(()) => {
            tracing::info!(name = %defaults.name, "fund created");
            Ok(())
        }
        // Another instance created it at the same moment.
        Err(e)
            if funds::table
                .find(FUND_ID)
                .select(funds::id)
                .first::<i64>(conn)
                .is_ok() =>
        {
            tracing::debug!(error = %e, "fund created concurrently");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Locks the fund row for this batch (so several instances serialise) and reads it.
/// On SQLite the first statement is a write, which takes the database's write lock up front
/// instead of failing later when a read transaction tries to upgrade.
fn lock_and_load(conn: &mut DbConn, cached: Option<&FundState>) -> Result<FundState, AppError> {
    match conn {
        DbConn::Pg(c) => {
            diesel::sql_query("SELECT id FROM funds WHERE id = 1 FOR UPDATE").execute(c)?;
        }
        DbConn::Sqlite(c) => {
            diesel::sql_query("UPDATE funds SET version = version WHERE id = 1").execute(c)?;
        }
    }
    let row = load_fund_row(conn)?;
    let periods = match cached {
        Some(st) if st.row.version == row.version => st.periods.clone(),
        _ => load_periods(conn)?,
    };
    FundState::from_rows(row, periods)
}

fn persist(conn: &mut DbConn, st: &FundState) -> Result<(), AppError> {
    diesel::update(funds::table.find(FUND_ID))
        .set(&st.row)
        .execute(conn)?;
    Ok(())
}

fn run(
    mut conn: Option<DbConn>,
    url: &DatabaseUrl,
    rx: &Receiver<Job>,
    snapshot: &SnapshotCell,
    batch_max: usize,
    mut cached: Option<FundState>,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = Vec::with_capacity(batch_max.min(1024));
        jobs.push(first);
        while jobs.len() < batch_max {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        if conn.is_none() {
            match db::establish(url) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "ledger writer cannot reach the database");
                    // Dropping the jobs answers their callers with 503.
                    drop(jobs);
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let mut answers: Vec<Answer> = Vec::with_capacity(jobs.len());
        let outcome = c.transaction::<FundState, AppError, _>(|conn| {
            let mut st = lock_and_load(conn, cached.as_ref())?;
            let now = db::now();
            for job in jobs.drain(..) {
                answers.push(job(&mut Ctx {
                    conn,
                    st: &mut st,
                    now,
                }));
            }
            st.row.version += 1;
            st.row.updated_at = now;
            persist(conn, &st)?;
            Ok(st)
        });
        match outcome {
            Ok(st) => {
                snapshot.publish(&st);
                cached = Some(st);
                for answer in answers {
                    answer(Ok(()));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "ledger batch rolled back");
                cached = None;
                let e = match e.code {
                    ErrorCode::Internal => e,
                    _ => AppError::unavailable(&e),
                };
                for answer in answers {
                    answer(Err(e.clone()));
                }
                if c.batch_execute("SELECT 1").is_err() {
                    conn = None;
                }
            }
        }
    }
    tracing::info!("ledger writer stopped");
}

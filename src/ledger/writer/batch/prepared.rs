//! On SQLite every statement of a webhook batch is a prepared statement diesel keeps, and none
//! binds a LIMIT (SQLite prepares such a statement again each time it runs). In profiles of the
//! webhook load, preparing took 11% of the writer thread's time, and with per-key look-ups
//! through diesel's `first()` (which binds `LIMIT ?`) preparing again took 22%.
//!
//! On PostgreSQL a steady batch of webhooks is written at once (see `Writer::batch`): three
//! statements, without BEGIN, the fund row's lock or COMMIT.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use diesel::connection::{Connection, InstrumentationEvent};
use tokio::sync::oneshot;

use super::super::super::bootstrap::bootstrap;
use super::super::super::card::{
    ApplyStripeEvent, AttachIntent, CardGift, CreateCardDonation, Created, EventOutcome,
};
use super::super::{Job, Op, Submitted};
use super::Writer;
use crate::config::BatchTuning;
use crate::config::{DatabaseUrl, FundDefaults};
use crate::db;
use crate::domain::CapMode;
use crate::error::AppError;
use crate::ledger::Fact;
use crate::ledger::FundState;
use crate::money::{AmountBounds, Currency, DonationAmount};

/// What the writer's connection did.
#[derive(Default)]
struct Log {
    /// Texts of the statements diesel prepared and kept.
    kept: HashSet<String>,
    /// While recording: texts of the statements run, and of those prepared.
    recording: bool,
    ran: Vec<String>,
    prepared: Vec<String>,
}

type Reply<T> = oneshot::Receiver<Result<T, AppError>>;

fn job<O: Op>(op: O) -> (Box<dyn Job>, Reply<O::Output>) {
    let (reply, rx) = oneshot::channel();
    let job: Box<dyn Job> = Box::new(Submitted {
        op,
        result: None,
        reply,
    });
    (job, rx)
}

/// Runs `ops` as one batch and returns their answers.
fn batch<O: Op>(w: &mut Writer, ops: Vec<O>) -> Vec<O::Output> {
    let (jobs, replies): (Vec<_>, Vec<_>) = ops.into_iter().map(job).unzip();
    w.batch(jobs, None);
    replies
        .into_iter()
        .map(|mut r| r.try_recv().expect("answered").expect("applied"))
        .collect()
}

fn succeeded(i: usize) -> ApplyStripeEvent {
    ApplyStripeEvent {
        event_id: format!("evt_{i}"),
        event_type: "payment_intent.succeeded".into(),
        created: 1,
        fact: Fact::PaymentSucceeded {
            payment_intent: format!("pi_{i}"),
            amount: 500,
            currency: "usd".into(),
            charge: Some(format!("ch_{i}")),
            donation_id: None,
        },
        keep_unknown: true,
    }
}

/// A writer on a fresh, migrated database at `url`, its connection's log, and eight pending
/// card donations with PaymentIntents `pi_0` to `pi_7`.
fn writer_with_donations(url: DatabaseUrl) -> (Writer, Arc<Mutex<Log>>) {
    let mut conn = db::establish_writer(&url).expect("connect");
    db::migrate(&mut conn).expect("migrate");
    let defaults = FundDefaults {
        name: "Test".into(),
        currency: Currency::USD,
        target_minor: 1_000_000,
        cap_mode: CapMode::Soft,
    };
    let log = Arc::new(Mutex::new(Log::default()));
    let sink = Arc::clone(&log);
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        let mut log = sink.lock().expect("log");
        match event {
            InstrumentationEvent::CacheQuery { sql, .. } => {
                log.kept.insert(sql.to_owned());
                if log.recording {
                    log.prepared.push(sql.to_owned());
                }
            }
            InstrumentationEvent::StartQuery { query, .. } if log.recording => {
                // "<sql> -- binds: [...]"
                let text = query.to_string();
                let sql = text.split(" -- binds: ").next().unwrap_or_default();
                log.ran.push(sql.to_owned());
            }
            _ => {}
        }
    });
    bootstrap(&mut conn, &defaults).expect("fund");
    let st = FundState::load(&mut conn).expect("fund state");
    let mut w = Writer {
        conn: Some(conn),
        url,
        snapshot: Arc::default(),
        stats: Arc::default(),
        tuning: BatchTuning::default(),
        concurrency: 0,
        cached: Some(st),
        none_kept_at: None,
        checkpoint: None,
        effects: None,
        closing: Arc::default(),
    };
    let bounds = AmountBounds {
        min_minor: 1,
        max_minor: 1_000_000,
    };
    let amount = DonationAmount::parse("5.00", Currency::USD, bounds).expect("amount");
    let gifts = (0..8)
        .map(|i| CreateCardDonation {
            gift: CardGift {
                amount,
                amount_minor: 500,
                donor_name: format!("Donor {i}"),
                email: format!("d{i}@example.org"),
                anonymous: false,
                locale: "en".into(),
                fee_covered_minor: 0,
            },
            idempotency: None,
            reservation_ttl: chrono::Duration::minutes(30),
        })
        .collect();
    let ids: Vec<i64> = batch(&mut w, gifts)
        .into_iter()
        .map(|c| match c {
            Created::New { donation_id } => donation_id,
            Created::Replayed(_) | Created::InFlight { .. } => panic!("not new"),
        })
        .collect();
    let attach = ids
        .iter()
        .enumerate()
        .map(|(i, &donation_id)| AttachIntent {
            donation_id,
            payment_intent: format!("pi_{i}"),
            remember: None,
            method_type: Some("card".into()),
        })
        .collect();
    batch(&mut w, attach);
    (w, log)
}

/// Two batches of webhooks, the first unrecorded: the second repeats one event of the first,
/// succeeds four more payments and brings another mode's event (stored as foreign at no
/// extra statement).
fn two_webhook_batches(w: &mut Writer, log: &Mutex<Log>) {
    // A first batch of webhooks prepares what every later one runs.
    let first = batch(w, (0..4).map(succeeded).collect());
    assert_eq!(first, vec![EventOutcome::Applied; 4]);
    log.lock().expect("log").recording = true;
    let mut foreign = succeeded(7);
    foreign.event_id = "evt_live_7".into();
    foreign.fact = Fact::Foreign {
        reason: "live-mode event".into(),
        said: Box::new(foreign.fact),
    };
    let second = batch(w, (3..8).map(succeeded).chain([foreign]).collect());
    let expected = [EventOutcome::Duplicate]
        .into_iter()
        .chain([EventOutcome::Applied; 4])
        .chain([EventOutcome::Foreign])
        .collect::<Vec<_>>();
    assert_eq!(second, expected);
}

#[test]
fn a_steady_sqlite_webhook_batch_prepares_no_statement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = DatabaseUrl::Sqlite(dir.path().join("prepared.db").display().to_string());
    let (mut w, log) = writer_with_donations(url);
    two_webhook_batches(&mut w, &log);
    let log = log.lock().expect("log");
    assert!(
        log.prepared.is_empty(),
        "prepared again: {:#?}",
        log.prepared
    );
    let statements: Vec<&String> = log
        .ran
        .iter()
        .filter(|sql| !matches!(sql.as_str(), "BEGIN" | "COMMIT"))
        .collect();
    // The fund row's lock, read and write, a look-up per event and per intent, and a write
    // per succeeded donation, event, ledger entry and receipt.
    assert!(statements.len() >= 3 + 10 + 4 * 4, "{statements:#?}");
    let not_kept: HashSet<&String> = statements
        .iter()
        .copied()
        .filter(|sql| !log.kept.contains(*sql))
        .collect();
    assert!(
        not_kept.is_empty(),
        "not kept prepared statements: {not_kept:#?}"
    );
    let limits: HashSet<&String> = statements
        .into_iter()
        .filter(|sql| sql.contains("LIMIT"))
        .collect();
    assert!(limits.is_empty(), "prepared again at each run: {limits:#?}");
}

/// On PostgreSQL a steady batch of webhooks is three statements, each a round trip: the two
/// look-ups and the one write, which commits by itself. No BEGIN, no lock on the fund row,
/// no COMMIT.
#[test]
fn a_steady_postgres_webhook_batch_is_one_write_without_a_transaction() {
    use diesel::connection::SimpleConnection;

    let Ok(base) = std::env::var("TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "TEST_POSTGRES_URL is not set"
        );
        eprintln!("skipped: TEST_POSTGRES_URL is not set");
        return;
    };
    let name = format!(
        "cl_test_unit_{}_{}",
        std::process::id(),
        rand::random::<u32>()
    );
    let mut admin = diesel::PgConnection::establish(&base).expect("PostgreSQL reachable");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    let (prefix, _) = base.rsplit_once('/').expect("a database in the URL");
    let (mut w, log) = writer_with_donations(DatabaseUrl::Postgres(format!("{prefix}/{name}")));
    two_webhook_batches(&mut w, &log);
    let ran = log.lock().expect("log").ran.clone();
    let reruns = w
        .stats
        .locked_reruns
        .load(std::sync::atomic::Ordering::Relaxed);
    drop(w);
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));

    assert_eq!(reruns, 0);
    assert_eq!(ran.len(), 3, "{ran:#?}");
    assert!(ran[0].contains("FROM \"stripe_events\""), "{ran:#?}");
    assert!(ran[1].contains("FROM \"donations\""), "{ran:#?}");
    assert!(ran[2].starts_with("WITH f AS (UPDATE funds"), "{ran:#?}");
    assert!(
        !ran.iter().any(|sql| sql.contains("FOR UPDATE")),
        "{ran:#?}"
    );
}

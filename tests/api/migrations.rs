//! Migrations applied to a running fund (issue 22): on PostgreSQL an index build does not stop
//! the writers, and the database itself refuses a period that ends before it starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crowdledger::db::{self, DbConn};
use diesel::connection::SimpleConnection;

use crate::helpers::{engine_is_postgres, fresh_database};

/// Donations already in the ledger when the upgrade runs (the figure).
const SEEDED: i64 = 200_000;

/// The migrations that build indexes on `donations` and `outbox` come after this version.
const BEFORE_INDEX_BUILDS: &str = "20261129000004";

/// One commit of the stand-in writer: when it started and how long it took.
struct Commit {
    started: Instant,
    took: Duration,
}

/// Records gifts (one donation row per commit, as the ledger writer's smallest batch does) until
/// told to stop; returns every commit's timing.
fn writer(mut conn: DbConn, stop: Arc<AtomicBool>) -> Vec<Commit> {
    let mut commits = Vec::new();
    let mut id = 10_000_000_i64;
    while !stop.load(Ordering::SeqCst) {
        id += 1;
        let sql = format!(
            "INSERT INTO donations (id, method, status, amount_minor, currency, donor_name, \
             anonymous, locale, payment_intent_id, charge_id, after_close, created_at, \
             succeeded_at) VALUES ({id}, 'card', 'succeeded', 500, 'USD', 'Writer', false, 'en', \
             'pi_w_{id}', 'ch_w_{id}', false, now(), now())"
        );
        let started = Instant::now();
        conn.batch_execute(&sql).expect("the writer's gift commits");
        commits.push(Commit {
            started,
            took: started.elapsed(),
        });
    }
    commits
}

#[test]
fn index_migrations_do_not_stall_a_writer_on_200k_donations() {
    if !engine_is_postgres() {
        println!("migration stall: PostgreSQL-only (run with TEST_DATABASE=postgres)");
        return;
    }
    let (url, _dir) = fresh_database();
    let mut conn = db::establish(&url).expect("connect");
    db::migrate(&mut conn).expect("migrate");
    // The database as it was before the index migrations, holding a fund's worth of gifts.
    let reverted = db::revert_migrations_after(&mut conn, BEFORE_INDEX_BUILDS).expect("revert");
    assert!(reverted >= 2, "the index migrations were reverted");
    conn.batch_execute(&format!(
        "INSERT INTO donations (id, method, status, amount_minor, currency, donor_name, email, \
         anonymous, locale, payment_intent_id, charge_id, after_close, created_at, succeeded_at)
         SELECT g, 'card', CASE WHEN g % 50 = 0 THEN 'pending' ELSE 'succeeded' END, 500, 'USD',
             'Seed ' || g, 'seed' || g || '@example.org', false, 'en', 'pi_seed_' || g,
             'ch_seed_' || g, false, now(), now()
         FROM generate_series(1, {SEEDED}) g;
         ANALYZE donations;"
    ))
    .expect("seed donations");

    let writer_conn = db::establish(&url).expect("writer connects");
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let stop = stop.clone();
        std::thread::spawn(move || writer(writer_conn, stop))
    };
    // The writer is committing before the upgrade starts.
    std::thread::sleep(Duration::from_millis(300));
    let began = Instant::now();
    let ran = db::migrate(&mut conn).expect("migrate while the writer writes");
    let migration = began.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    let commits = handle.join().expect("writer thread");

    let migration_ms = migration.as_secs_f64() * 1000.0;
    // Commits that overlapped the migration.
    let during: Vec<&Commit> = commits
        .iter()
        .filter(|c| c.started + c.took >= began && c.started <= began + migration)
        .collect();
    let longest = during
        .iter()
        .map(|c| c.took)
        .max()
        .unwrap_or(Duration::ZERO);
    println!(
        "migration stall: {ran} migrations over {SEEDED} donations took {migration_ms:.0} ms; \
         the writer committed {} times meanwhile, longest commit {:.1} ms",
        during.len(),
        longest.as_secs_f64() * 1000.0
    );
    assert!(ran >= reverted, "every reverted migration ran again");
    assert!(
        longest.as_secs_f64() * 1000.0 * 3.0 < migration_ms,
        "a writer's commit waited {:.0} ms of a {migration_ms:.0} ms migration: an index build \
         blocked writes",
        longest.as_secs_f64() * 1000.0
    );
    assert!(
        during.len() >= 10,
        "the writer kept committing during the migration: {} commits",
        during.len()
    );
}

/// Runs one statement, returning the database's refusal as text.
fn exec(conn: &mut DbConn, sql: &str) -> Result<(), String> {
    conn.batch_execute(sql).map_err(|e| e.to_string())
}

#[test]
fn the_database_refuses_a_period_that_ends_before_it_starts() {
    let (url, _dir) = fresh_database();
    let mut conn = db::establish(&url).expect("connect");
    db::migrate(&mut conn).expect("migrate");
    let insert = |label: &str, from: &str, to: &str| {
        format!(
            "INSERT INTO periods (label, starts_on, ends_on, budget_minor, created_at, \
             updated_at) VALUES ('{label}', '{from}', '{to}', 100, CURRENT_TIMESTAMP, \
             CURRENT_TIMESTAMP)"
        )
    };

    let backwards = exec(&mut conn, &insert("backwards", "2020-09-01", "2020-08-31"));
    assert!(
        backwards.is_err(),
        "a period ending before it starts was stored"
    );
    exec(&mut conn, &insert("one day", "2020-08-01", "2020-08-01")).expect("a one-day period");
    exec(&mut conn, &insert("August", "2020-08-01", "2020-08-31")).expect("a month");

    let moved = exec(
        &mut conn,
        "UPDATE periods SET ends_on = '2020-07-01' WHERE label = 'August'",
    );
    assert!(
        moved.is_err(),
        "a period was changed to end before it starts"
    );
    let moved = exec(
        &mut conn,
        "UPDATE periods SET starts_on = '2020-09-15' WHERE label = 'August'",
    );
    assert!(
        moved.is_err(),
        "a period was changed to start after it ends"
    );

    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel::RunQueryDsl;
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT COUNT(*) AS n FROM periods WHERE ends_on < starts_on OR label = 'backwards'",
    )
    .load(&mut conn)
    .expect("count");
    assert_eq!(rows.first().map(|r| r.n), Some(0), "nothing half-written");
}

#[test]
fn an_index_migration_interrupted_part_way_runs_again() {
    if !engine_is_postgres() {
        println!("interrupted migration: PostgreSQL-only (run with TEST_DATABASE=postgres)");
        return;
    }
    let (url, _dir) = fresh_database();
    let mut conn = db::establish(&url).expect("connect");
    db::migrate(&mut conn).expect("migrate");
    db::revert_migrations_after(&mut conn, BEFORE_INDEX_BUILDS).expect("revert");
    // What `000005_lean_indexes` leaves when stopped after a few of its statements (each
    // commits on its own): the hash constraint gone, the narrower index built beside the old.
    conn.batch_execute(
        "ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_hash_key;
         CREATE INDEX donations_charge_lean ON donations (charge_id)
             WHERE charge_id IS NOT NULL;",
    )
    .expect("a part-way state");
    db::migrate(&mut conn).expect("the migration runs again over its own partial work");

    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Index {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        def: String,
    }
    use diesel::RunQueryDsl;
    let DbConn::Pg(pg) = &mut conn else {
        panic!("a PostgreSQL connection")
    };
    let indexes: Vec<Index> = diesel::sql_query(
        "SELECT indexname::text AS name, indexdef AS def FROM pg_indexes \
         WHERE tablename = 'donations' AND indexname LIKE 'donations_%' ORDER BY indexname",
    )
    .load(pg)
    .expect("indexes");
    let names: Vec<&str> = indexes.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "donations_charge",
            "donations_created_at",
            "donations_payment_intent_id_key",
            "donations_pending_card",
            "donations_pkey",
            "donations_status"
        ],
        "{indexes:?}"
    );
    let charge = &indexes[0].def;
    assert!(charge.contains("WHERE (charge_id IS NOT NULL)"), "{charge}");
}

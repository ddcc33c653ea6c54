//! The database: one connection type over SQLite and PostgreSQL, the read pool, embedded
//! migrations, and the rows as Rust types.

pub mod models;
mod online;
pub mod schema;

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::r2d2;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::DatabaseUrl;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
/// PostgreSQL's migrations; those that build indexes on tables in use run outside a
/// transaction, statement by statement (`online`).
const POSTGRES_MIGRATIONS: online::PgMigrations =
    online::PgMigrations(embed_migrations!("migrations/postgres"));

/// How long an SQLite connection waits for another writer's lock before failing.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

/// A connection to either engine; queries written once run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    /// Production engine.
    Pg(PgConnection),
    /// Embedded default.
    Sqlite(SqliteConnection),
}

/// The read pool.
pub type Pool = r2d2::Pool<ConnectionManager>;

/// Opens connections by URL scheme (so errors are the engine's own, not "invalid url"), and
/// sets SQLite's pragmas on every connection.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ConnectionManager {
    /// A manager for `url`.
    pub fn new(url: DatabaseUrl) -> ConnectionManager {
        ConnectionManager { url }
    }
}

/// Opens one connection to `url`, with SQLite's pragmas applied.
pub fn establish(url: &DatabaseUrl) -> Result<DbConn, ConnectionError> {
    match url {
        DatabaseUrl::Postgres(u) => {
            let mut c = PgConnection::establish(u)?;
            // Custom plans always: diesel prepares and caches statements, and PostgreSQL's
            // generic plan for `= ANY($1)` chosen while a table was nearly empty (a sequential
            // scan) stays cached as the table grows, until the next ANALYZE. Measured: the
            // batch's "events already seen?" read took 25 ms at 20,000 events with it.
            c.batch_execute("SET TIME ZONE 'UTC'; SET plan_cache_mode = force_custom_plan")
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            Ok(DbConn::Pg(c))
        }
        DatabaseUrl::Sqlite(path) => {
            let mut c = SqliteConnection::establish(path)?;
            // temp_store = MEMORY keeps statement journals (every multi-row statement inside a
            // batch's transaction has one) in memory: in a profile of the webhook load they
            // spilled to a temporary file and took 12% of the writer's time.
            c.batch_execute(&format!(
                "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;"
            ))
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
            Ok(DbConn::Sqlite(c))
        }
    }
}

/// PostgreSQL settings of the ledger writer's connection. Every statement it runs looks rows
/// up by key, so it plans each once (a generic plan, cached with the prepared statement)
/// instead of again at every execution, as the other connections do. A generic plan is made
/// once, often while the tables are nearly empty, and kept as they grow; with sequential
/// scans and hash and merge joins priced out, it is made of index scans and nested loops,
/// which stay right at any size (plans checked in `ledger::writer_plans_stay_on_indexes`).
/// Measured: about 0.3 ms less planning in a 30-event batch's write statement.
pub const PG_WRITER_SETTINGS: &str = "SET plan_cache_mode = force_generic_plan; \
     SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off";

/// Opens the ledger writer's connection: [`establish`], plus [`PG_WRITER_SETTINGS`] on
/// PostgreSQL.
pub fn establish_writer(url: &DatabaseUrl) -> Result<DbConn, ConnectionError> {
    let mut c = establish(url)?;
    if let DbConn::Pg(pg) = &mut c {
        pg.batch_execute(PG_WRITER_SETTINGS)
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
    }
    Ok(c)
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConn, r2d2::Error> {
        establish(&self.url).map_err(r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConn) -> bool {
        false
    }
}

/// Builds the read pool. Connections are opened lazily so the service starts (and reports
/// 503) while the database is down.
pub fn pool(url: &DatabaseUrl, size: u32) -> Result<Pool, anyhow::Error> {
    Ok(r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(0))
        .connection_timeout(std::time::Duration::from_secs(5))
        .test_on_check_out(true)
        .build(ConnectionManager::new(url.clone()))?)
}

/// Applies the pending migrations of the connection's engine; returns how many ran.
pub fn migrate(conn: &mut DbConn) -> Result<usize, anyhow::Error> {
    let ran = match conn {
        DbConn::Pg(c) => c
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?
            .len(),
        DbConn::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?
            .len(),
    };
    Ok(ran)
}

/// How many of this binary's migrations the database has not applied yet.
pub fn pending_migrations(conn: &mut DbConn) -> Result<usize, anyhow::Error> {
    let pending = match conn {
        DbConn::Pg(c) => c.pending_migrations(POSTGRES_MIGRATIONS).map(|m| m.len()),
        DbConn::Sqlite(c) => c.pending_migrations(SQLITE_MIGRATIONS).map(|m| m.len()),
    };
    pending.map_err(|e| anyhow::anyhow!("reading the applied migrations: {e}"))
}

/// Reverts, newest first, the applied migrations of the connection's engine that are newer
/// than `version` (digits only, e.g. `20261129000004`); returns how many. The tests use it to
/// run migrations again over existing rows.
pub fn revert_migrations_after(conn: &mut DbConn, version: &str) -> Result<usize, anyhow::Error> {
    fn revert<C: MigrationHarness<B>, B: diesel::backend::Backend, S: MigrationSource<B>>(
        c: &mut C,
        source: fn() -> S,
        version: &str,
    ) -> diesel::migration::Result<usize> {
        let mut reverted = 0;
        while c
            .applied_migrations()?
            .iter()
            .any(|v| v.to_string().as_str() > version)
        {
            c.revert_last_migration(source())?;
            reverted += 1;
        }
        Ok(reverted)
    }
    match conn {
        DbConn::Pg(c) => revert(c, || POSTGRES_MIGRATIONS, version),
        DbConn::Sqlite(c) => revert(c, || SQLITE_MIGRATIONS, version),
    }
    .map_err(|e| anyhow::anyhow!("reverting migrations failed: {e}"))
}

/// The current time as stored: naive UTC, truncated to microseconds (PostgreSQL's precision)
/// so a value reads back exactly as it was hashed.
pub fn now() -> chrono::NaiveDateTime {
    let t = chrono::Utc::now().naive_utc();
    let micros = t.and_utc().timestamp_micros();
    chrono::DateTime::from_timestamp_micros(micros).map_or(t, |d| d.naive_utc())
}

//! PostgreSQL migrations that run while the fund keeps writing (issue 22).
//!
//! `serve` migrates at start, so an upgrade runs while another instance still records gifts.
//! A plain `CREATE INDEX` holds a lock that blocks every write to its table for the whole
//! build; `CREATE INDEX CONCURRENTLY` does not, but cannot run inside a transaction, nor
//! inside a multi-statement query string (PostgreSQL runs those as one implicit
//! transaction), which is how diesel applies a migration file. So a migration folder that
//! builds an index on a table in use has a `metadata.toml` with `run_in_transaction = false`
//! and is listed in [`STATEMENTWISE`]: its file is run one statement at a time, each
//! committed on its own. Such files are written to be retried after a failure part-way
//! (`IF [NOT] EXISTS`, an invalid half-built index dropped first).

use diesel::connection::BoxableConnection;
use diesel::migration::{
    Migration, MigrationMetadata, MigrationName, MigrationSource, Result as MigrationResult,
};
use diesel::pg::Pg;
use diesel_migrations::EmbeddedMigrations;

/// A PostgreSQL migration whose statements run one by one, outside any transaction.
struct Statementwise {
    name: &'static str,
    up: &'static str,
    down: &'static str,
}

/// Declares a PostgreSQL migration folder that is applied statement by statement.
macro_rules! statementwise {
    ($name:literal) => {
        Statementwise {
            name: $name,
            up: include_str!(concat!("../../migrations/postgres/", $name, "/up.sql")),
            down: include_str!(concat!("../../migrations/postgres/", $name, "/down.sql")),
        }
    };
}

/// Every PostgreSQL migration folder with `run_in_transaction = false`. A folder so marked
/// but missing here stops `migrate` with an error rather than running as one string.
const STATEMENTWISE: &[Statementwise] = &[
    statementwise!("2026-11-29-000005_lean_indexes"),
    statementwise!("2026-11-29-000006_outbox_donation"),
    statementwise!("2026-12-04-000010_intent_attach"),
    statementwise!("2026-12-04-000011_period_dates"),
];

/// The statements of a migration file: full-line `--` comments dropped, split at each `;`
/// that ends a line. (These files hold no function bodies, whose `;` would not end a
/// statement.)
pub(crate) fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        if line.trim_start().starts_with("--") {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if line.trim_end().ends_with(';') {
            let statement = current.trim().trim_end_matches(';').trim().to_string();
            if !statement.is_empty() {
                out.push(statement);
            }
            current.clear();
        }
    }
    let rest = current.trim();
    if !rest.is_empty() {
        out.push(rest.to_string());
    }
    out
}

/// Runs each statement in its own implicit transaction.
fn run_each(conn: &mut dyn BoxableConnection<Pg>, name: &str, sql: &str) -> MigrationResult<()> {
    for statement in statements(sql) {
        conn.batch_execute(&statement)
            .map_err(|e| format!("migration {name}: `{statement}` failed: {e}"))?;
    }
    Ok(())
}

/// An embedded migration whose SQL is applied statement by statement; name, version and
/// metadata are the embedded one's.
struct StatementwiseMigration {
    embedded: Box<dyn Migration<Pg>>,
    sql: &'static Statementwise,
}

impl Migration<Pg> for StatementwiseMigration {
    fn run(&self, conn: &mut dyn BoxableConnection<Pg>) -> MigrationResult<()> {
        run_each(conn, self.sql.name, self.sql.up)
    }

    fn revert(&self, conn: &mut dyn BoxableConnection<Pg>) -> MigrationResult<()> {
        run_each(conn, self.sql.name, self.sql.down)
    }

    fn metadata(&self) -> &dyn MigrationMetadata {
        self.embedded.metadata()
    }

    fn name(&self) -> &dyn MigrationName {
        self.embedded.name()
    }
}

/// The embedded PostgreSQL migrations, with those marked `run_in_transaction = false`
/// applied statement by statement.
pub(super) struct PgMigrations(pub(super) EmbeddedMigrations);

impl MigrationSource<Pg> for PgMigrations {
    fn migrations(&self) -> MigrationResult<Vec<Box<dyn Migration<Pg>>>> {
        let embedded = <EmbeddedMigrations as MigrationSource<Pg>>::migrations(&self.0)?;
        embedded
            .into_iter()
            .map(|m| -> MigrationResult<Box<dyn Migration<Pg>>> {
                if m.metadata().run_in_transaction() {
                    return Ok(m);
                }
                let name = m.name().to_string();
                let sql = STATEMENTWISE
                    .iter()
                    .find(|s| s.name == name)
                    .ok_or_else(|| {
                        format!(
                            "migration {name} runs outside a transaction but is not listed in \
                         db::online::STATEMENTWISE"
                        )
                    })?;
                Ok(Box::new(StatementwiseMigration { embedded: m, sql }))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_line_ends_and_drops_comments() {
        let sql = "-- why; it matters\nDROP INDEX CONCURRENTLY IF EXISTS a;\nCREATE INDEX \
                   CONCURRENTLY IF NOT EXISTS b\n    ON t (c) WHERE c IS NOT NULL;\n\n";
        assert_eq!(
            statements(sql),
            vec![
                "DROP INDEX CONCURRENTLY IF EXISTS a".to_string(),
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS b\n    ON t (c) WHERE c IS NOT NULL"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn listed_migrations_hold_no_function_bodies_and_build_indexes_concurrently() {
        for m in STATEMENTWISE {
            for sql in [m.up, m.down] {
                assert!(!sql.contains("$$"), "{}: a body would be split", m.name);
                for s in statements(sql) {
                    let upper = s.to_ascii_uppercase();
                    if upper.contains("CREATE INDEX") || upper.contains("CREATE UNIQUE INDEX") {
                        assert!(upper.contains("CONCURRENTLY"), "{}: {s}", m.name);
                        assert!(upper.contains("IF NOT EXISTS"), "{}: {s}", m.name);
                    }
                    if upper.starts_with("DROP INDEX") {
                        assert!(upper.contains("CONCURRENTLY IF EXISTS"), "{}: {s}", m.name);
                    }
                }
            }
        }
    }
}

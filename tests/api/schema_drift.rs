//! The checked-in `src/db/schema.rs` and the migrations cannot drift (issue 22): a fresh
//! database of the engine under test, migrated, has exactly the tables and columns (name,
//! nullability, portable type) that the `diesel::table!` definitions declare.

use std::collections::{BTreeMap, BTreeSet};

use crowdledger::db::{self, DbConn};
use diesel::RunQueryDsl;

use crate::helpers::fresh_database;

/// The schema file as checked in.
const SCHEMA_RS: &str = include_str!("../../src/db/schema.rs");

/// A column as the database reports it.
#[derive(diesel::QueryableByName, Debug, Clone)]
struct RealColumn {
    #[diesel(sql_type = diesel::sql_types::Text)]
    table_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    column_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    data_type: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    nullable: bool,
}

/// A column as `schema.rs` declares it: diesel type name (`BigInt`, ...) and nullability.
#[derive(Debug, Clone, PartialEq)]
struct DeclaredColumn {
    sql_type: String,
    nullable: bool,
}

/// Tables of `schema.rs`, by name, each with its columns by name.
fn parse_schema(text: &str) -> BTreeMap<String, BTreeMap<String, DeclaredColumn>> {
    let mut tables = BTreeMap::new();
    let mut current: Option<(String, BTreeMap<String, DeclaredColumn>)> = None;
    for line in text.lines().map(str::trim) {
        if let Some((name, _)) = line.split_once(" (").filter(|_| line.ends_with('{')) {
            current = Some((name.trim().to_string(), BTreeMap::new()));
        } else if let Some((col, ty)) = line.split_once(" -> ") {
            if let Some((_, cols)) = current.as_mut() {
                let ty = ty.trim_end_matches(',').trim();
                let (inner, nullable) = match ty.strip_prefix("Nullable<") {
                    Some(rest) => (rest.trim_end_matches('>'), true),
                    None => (ty, false),
                };
                cols.insert(
                    col.trim().to_string(),
                    DeclaredColumn {
                        sql_type: inner.to_string(),
                        nullable,
                    },
                );
            }
        } else if line == "}"
            && let Some((name, cols)) = current.take()
        {
            tables.insert(name, cols);
        }
    }
    tables
}

/// The type names an engine may report for a diesel type (SQLite: as declared; PostgreSQL:
/// `information_schema.columns.data_type`).
fn engine_types(diesel_type: &str, postgres: bool) -> &'static [&'static str] {
    // `diesel print-schema` writes PostgreSQL's aliases of the same types.
    let diesel_type = match diesel_type {
        "Int8" => "BigInt",
        "Int4" => "Integer",
        "Bytea" => "Binary",
        other => other,
    };
    match (diesel_type, postgres) {
        ("BigInt", true) => &["bigint"],
        ("Integer", true) => &["integer"],
        ("Text", true) => &["text"],
        ("Bool", true) => &["boolean"],
        ("Timestamp", true) => &["timestamp without time zone"],
        ("Date", true) => &["date"],
        ("Binary", true) => &["bytea"],
        // SQLite's rowid alias must be declared INTEGER; diesel reads it as BigInt.
        ("BigInt", false) => &["BIGINT", "INTEGER"],
        ("Integer", false) => &["INTEGER"],
        ("Text", false) => &["TEXT"],
        ("Bool", false) => &["BOOLEAN"],
        ("Timestamp", false) => &["TIMESTAMP"],
        ("Date", false) => &["DATE"],
        ("Binary", false) => &["BLOB"],
        _ => &[],
    }
}

/// Every difference between `schema.rs` text and the real columns, as readable lines; empty
/// when they agree.
fn differences(schema_rs: &str, real: &[RealColumn], postgres: bool) -> Vec<String> {
    let declared = parse_schema(schema_rs);
    let mut found: BTreeMap<&str, BTreeMap<&str, &RealColumn>> = BTreeMap::new();
    for c in real {
        found
            .entry(c.table_name.as_str())
            .or_default()
            .insert(c.column_name.as_str(), c);
    }
    let mut diffs = Vec::new();
    for (table, columns) in &declared {
        let Some(real_cols) = found.get(table.as_str()) else {
            diffs.push(format!(
                "table {table} is in schema.rs but not in the database"
            ));
            continue;
        };
        for (name, col) in columns {
            match real_cols.get(name.as_str()) {
                None => diffs.push(format!("{table}.{name} is in schema.rs only")),
                Some(r) => {
                    let accepted = engine_types(&col.sql_type, postgres);
                    if !accepted.contains(&r.data_type.to_ascii_uppercase().as_str())
                        && !accepted.contains(&r.data_type.as_str())
                    {
                        diffs.push(format!(
                            "{table}.{name}: schema.rs says {}, the database has {}",
                            col.sql_type, r.data_type
                        ));
                    }
                    if col.nullable != r.nullable {
                        diffs.push(format!(
                            "{table}.{name}: schema.rs nullable={}, the database nullable={}",
                            col.nullable, r.nullable
                        ));
                    }
                }
            }
        }
        let names: BTreeSet<&str> = columns.keys().map(String::as_str).collect();
        for name in real_cols.keys().filter(|n| !names.contains(*n)) {
            diffs.push(format!(
                "{table}.{name} is in the database but not in schema.rs"
            ));
        }
    }
    for table in found.keys().filter(|t| !declared.contains_key(**t)) {
        diffs.push(format!(
            "table {table} is in the database but not in schema.rs"
        ));
    }
    diffs
}

/// The columns of every table of a freshly migrated database (diesel's own bookkeeping table
/// aside).
fn real_columns(conn: &mut DbConn) -> Vec<RealColumn> {
    match conn {
        DbConn::Pg(c) => diesel::sql_query(
            "SELECT table_name::text AS table_name, column_name::text AS column_name, \
             data_type::text AS data_type, (is_nullable = 'YES') AS nullable \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() \
               AND table_name <> '__diesel_schema_migrations'",
        )
        .load(c),
        // A primary key column is never NULL for diesel's purposes (SQLite's INTEGER PRIMARY
        // KEY is the rowid), even when not declared NOT NULL.
        DbConn::Sqlite(c) => diesel::sql_query(
            "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type, \
             (p.\"notnull\" = 0 AND p.pk = 0) AS nullable \
             FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
               AND m.name <> '__diesel_schema_migrations'",
        )
        .load(c),
    }
    .expect("read the columns")
}

fn migrated_columns() -> (Vec<RealColumn>, bool) {
    let (url, _dir) = fresh_database();
    let mut conn = db::establish(&url).expect("connect");
    db::migrate(&mut conn).expect("migrate");
    let postgres = matches!(conn, DbConn::Pg(_));
    (real_columns(&mut conn), postgres)
}

#[test]
fn schema_rs_matches_what_the_migrations_produce() {
    let (real, postgres) = migrated_columns();
    assert!(real.len() > 50, "read the real columns: {}", real.len());
    let diffs = differences(SCHEMA_RS, &real, postgres);
    assert!(
        diffs.is_empty(),
        "schema.rs and the migrations differ:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn the_comparison_catches_a_column_missing_from_schema_rs() {
    let (real, postgres) = migrated_columns();
    let edited = SCHEMA_RS.replace("        ends_on -> Date,\n", "");
    assert_ne!(edited, SCHEMA_RS, "the column line was found");
    let diffs = differences(&edited, &real, postgres);
    assert_eq!(
        diffs,
        vec!["periods.ends_on is in the database but not in schema.rs".to_string()]
    );
    // And the other way: a type or nullability that the database does not have.
    let edited = SCHEMA_RS.replace(
        "        label -> Text,\n",
        "        label -> Nullable<BigInt>,\n",
    );
    let diffs = differences(&edited, &real, postgres);
    assert_eq!(diffs.len(), 2, "{diffs:?}");
    assert!(
        diffs.iter().all(|d| d.starts_with("periods.label")),
        "{diffs:?}"
    );
    // A table missing from schema.rs.
    let start = SCHEMA_RS
        .find("diesel::table! {\n    login_limits")
        .expect("login_limits");
    let end = start + SCHEMA_RS[start..].find("\n}\n").expect("end") + 3;
    let edited = format!("{}{}", &SCHEMA_RS[..start], &SCHEMA_RS[end..]);
    let diffs = differences(&edited, &real, postgres);
    assert_eq!(
        diffs,
        vec!["table login_limits is in the database but not in schema.rs".to_string()]
    );
}

//! `crowdledger backup` and `crowdledger restore`: one portable file for both engines.
//!
//! The format (version 1) is text, one JSON object per line: a header
//! `{"format":"crowdledger-backup","version":1,"engine":..,"head_seq":..,"head_hash":..,
//! "taken_at":..,"tables":[..]}`, then `{"t":TABLE,"r":ROW}` for every row of every table in
//! [`TABLES`] order (each table by primary key), then a trailer `{"end":{"rows":N,"sha256":H}}`
//! where `H` is the SHA-256 of every byte before the trailer. Every row is read in ONE read
//! transaction (REPEATABLE READ on PostgreSQL, a WAL snapshot on SQLite), so the head in the
//! header and every row are one snapshot while the server keeps writing.
//!
//! Restore reads the same file into an empty database in one transaction, then runs the
//! checks of `verify` inside it and rolls everything back when anything differs.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::{self, DbConn, schema};
use crate::ledger::verify::verify_snapshot;

mod copy;
pub mod schedule;
mod tables;
pub use copy::copy;
pub use tables::TABLES;
use tables::{dump_tables, insert_rows};

/// The `format` value of a backup's header.
pub const FORMAT: &str = "crowdledger-backup";
/// The format version written and read.
pub const VERSION: i64 = 1;

/// The first line of a backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: i64,
    /// `sqlite` or `postgres`: where it was taken (the rows are the same either way).
    pub engine: String,
    /// The ledger's last entry at the snapshot.
    pub head_seq: i64,
    /// That entry's hash.
    pub head_hash: String,
    /// When the snapshot was taken (UTC).
    pub taken_at: NaiveDateTime,
    /// The tables, in the order their rows follow.
    pub tables: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Trailer {
    rows: u64,
    sha256: String,
}

/// PostgreSQL tables whose `id` is a BIGSERIAL: their sequences move past the restored ids.
const PG_SERIAL_TABLES: &[&str] = &[
    "periods",
    "users",
    "audit_log",
    "outbox",
    "refund_requests",
    "lookup_codes",
    "recovery_codes",
    "disbursements",
];

/// Creates `path` readable by its owner only: a backup holds donors' names and emails.
fn private_file(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Writes lines and hashes every byte written, for the trailer.
pub(crate) struct Sink {
    out: BufWriter<File>,
    digest: Sha256,
    rows: u64,
}

impl Sink {
    fn line(&mut self, value: &impl Serialize) -> anyhow::Result<()> {
        let mut text = serde_json::to_string(value)?;
        text.push('\n');
        self.digest.update(text.as_bytes());
        self.out.write_all(text.as_bytes())?;
        Ok(())
    }

    pub(crate) fn row(&mut self, table: &str, row: &impl Serialize) -> anyhow::Result<()> {
        self.rows += 1;
        self.line(&serde_json::json!({ "t": table, "r": row }))
    }
}

/// What a backup or restore ended at.
#[derive(Debug, Clone)]
pub struct Head {
    /// The ledger's last entry.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
    /// Rows in the file.
    pub rows: u64,
}

/// Writes a consistent copy of the database at `url` to `out` (through a temporary file beside
/// it, renamed at the end, so a failed backup leaves no partial file under that name).
pub fn backup(url: &crate::config::DatabaseUrl, out: &Path) -> anyhow::Result<Head> {
    let mut conn = db::establish(url).context("connecting to the database")?;
    let tmp = PathBuf::from(format!("{}.partial", out.display()));
    let file = private_file(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut sink = Sink {
        out: BufWriter::new(file),
        digest: Sha256::new(),
        rows: 0,
    };
    let result = conn.transaction(|conn| -> anyhow::Result<Head> {
        let engine = match conn {
            DbConn::Pg(pg) => {
                diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(pg)?;
                "postgres"
            }
            DbConn::Sqlite(_) => "sqlite",
        };
        // The first read fixes the snapshot; the head is the fund row's as of then.
        let fund = fund_head(conn)?;
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            engine: engine.into(),
            head_seq: fund.ledger_seq,
            head_hash: fund.ledger_head.clone(),
            taken_at: chrono::Utc::now().naive_utc(),
            tables: TABLES.iter().map(|t| (*t).to_owned()).collect(),
        };
        sink.line(&header)?;
        dump_tables(conn, &mut sink)?;
        Ok(Head {
            seq: fund.ledger_seq,
            hash: fund.ledger_head,
            rows: sink.rows,
        })
    });
    let finish = result.and_then(|head| {
        let trailer = Trailer {
            rows: sink.rows,
            sha256: hex::encode(sink.digest.clone().finalize()),
        };
        sink.line(&serde_json::json!({ "end": trailer }))?;
        sink.out.flush()?;
        sink.out.get_ref().sync_all()?;
        std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
        Ok(head)
    });
    if finish.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    finish
}

/// Reads the backup `from` into the empty database at `url`: refuses a database that holds a
/// fund, then inserts every row and runs `verify`'s checks in one transaction, which is rolled
/// back (nothing written) when the file is not a whole backup or anything fails to verify.
pub fn restore(url: &crate::config::DatabaseUrl, from: &Path) -> anyhow::Result<Head> {
    let file = File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut lines = BufReader::new(file);
    let mut first = String::new();
    let not_backup = || anyhow!("{} is not a crowdledger backup", from.display());
    lines.read_line(&mut first).map_err(|_| not_backup())?;
    let header: Header = serde_json::from_str(&first).map_err(|_| not_backup())?;
    if header.format != FORMAT {
        return Err(not_backup());
    }
    if header.version != VERSION {
        bail!(
            "{} is a backup of version {}; this crowdledger reads version {VERSION}",
            from.display(),
            header.version
        );
    }
    if header
        .tables
        .iter()
        .map(String::as_str)
        .ne(TABLES.iter().copied())
    {
        bail!(
            "the backup's tables are not this version's: {:?}",
            header.tables
        );
    }
    check_whole(from)?;
    let mut conn = open_empty_target(url)?;
    let mut digest = Sha256::new();
    digest.update(first.as_bytes());
    conn.transaction(|conn| -> anyhow::Result<Head> {
        let rows = read_rows(conn, &mut lines, &mut digest)?;
        reset_sequences(conn)?;
        let report = verify_snapshot(conn).map_err(|e| anyhow!("verifying: {}", e.detail))?;
        if !report.is_ok() {
            let first_bad = report
                .first_bad_seq
                .map_or(String::new(), |s| format!(" (first bad entry: {s})"));
            bail!(
                "the backup does not verify{first_bad}: {}; nothing was restored",
                report.problems.join("; ")
            );
        }
        let fund = fund_head(conn)?;
        if fund.ledger_seq != header.head_seq || fund.ledger_head != header.head_hash {
            bail!(
                "the backup's rows do not end at the head its header names; nothing was restored"
            );
        }
        Ok(Head {
            seq: fund.ledger_seq,
            hash: fund.ledger_head,
            rows,
        })
    })
}

/// The first pass of a restore: the trailer's checksum and row count against every byte
/// before it, so a corrupt file is refused, as corrupt, before the target is touched (the
/// second pass checks the same again while it inserts).
fn check_whole(from: &Path) -> anyhow::Result<()> {
    let file = File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut reader = BufReader::new(file);
    let mut digest = Sha256::new();
    let (mut last, mut next) = (Vec::new(), Vec::new());
    let mut lines = 0_u64;
    loop {
        next.clear();
        if reader
            .read_until(b'\n', &mut next)
            .context("reading the backup")?
            == 0
        {
            break;
        }
        if !last.is_empty() {
            digest.update(&last);
            lines += 1;
        }
        std::mem::swap(&mut last, &mut next);
    }
    let trailer = serde_json::from_slice::<serde_json::Value>(&last)
        .ok()
        .and_then(|v| v.get("end").cloned())
        .and_then(|end| serde_json::from_value::<Trailer>(end).ok());
    let Some(trailer) = trailer else {
        bail!("the backup ends without its trailer (truncated or corrupt); nothing was restored");
    };
    // `lines` counts the header too.
    if trailer.sha256 != hex::encode(digest.finalize()) || trailer.rows + 1 != lines {
        bail!("the backup's checksum does not match its contents (corrupt); nothing was restored");
    }
    Ok(())
}

/// Connects to `url`, applies the migrations and refuses a database that holds a fund.
fn open_empty_target(url: &crate::config::DatabaseUrl) -> anyhow::Result<DbConn> {
    let mut conn = db::establish(url).context("connecting to the target database")?;
    db::migrate(&mut conn).context("migrating the target database")?;
    let funds: i64 = schema::funds::table.count().get_result(&mut conn)?;
    if funds > 0 {
        bail!("the target database already holds a fund; restore only into an empty database");
    }
    Ok(conn)
}

fn read_rows(
    conn: &mut DbConn,
    lines: &mut impl BufRead,
    digest: &mut Sha256,
) -> anyhow::Result<u64> {
    let mut rows = 0_u64;
    let mut table_at = 0_usize;
    let mut line = String::new();
    // Rows of one table are inserted [`INSERT_BATCH`] at a time (one statement each batch).
    let mut batch: Vec<serde_json::Value> = Vec::with_capacity(INSERT_BATCH);
    let mut batch_from = 0_u64;
    loop {
        line.clear();
        let n = lines.read_line(&mut line).context("reading the backup")?;
        let number = rows + 2;
        if n == 0 {
            bail!("the backup ends without its trailer (truncated); nothing was restored");
        }
        let mut value: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("line {number} of the backup is not JSON (corrupt)"))?;
        if let Some(end) = value.get("end") {
            let trailer: Trailer = serde_json::from_value(end.clone())
                .with_context(|| format!("line {number}: a malformed trailer"))?;
            let actual = hex::encode(digest.clone().finalize());
            if trailer.sha256 != actual || trailer.rows != rows {
                bail!(
                    "the backup's checksum does not match its contents (corrupt); nothing was restored"
                );
            }
            flush(conn, TABLES[table_at], &mut batch, batch_from)?;
            return Ok(rows);
        }
        digest.update(line.as_bytes());
        let row = value.get_mut("r").map(serde_json::Value::take);
        let (Some(table), Some(row)) = (value.get("t").and_then(|t| t.as_str()), row) else {
            bail!("line {number} of the backup is not a row");
        };
        // Tables come in the fixed order, so parents are in before the rows naming them.
        let Some(at) = TABLES.iter().position(|t| *t == table) else {
            bail!("line {number}: unknown table {table:?}");
        };
        if at < table_at {
            bail!("line {number}: table {table} out of order");
        }
        if at != table_at || batch.len() == INSERT_BATCH {
            flush(conn, TABLES[table_at], &mut batch, batch_from)?;
        }
        if batch.is_empty() {
            batch_from = number;
        }
        table_at = at;
        batch.push(row);
        rows += 1;
    }
}

/// Rows inserted per statement by a restore: well under both engines' limits on bound
/// values (SQLite 32,766; PostgreSQL 65,535) for the widest table (27 columns).
const INSERT_BATCH: usize = 500;

fn flush(
    conn: &mut DbConn,
    table: &str,
    batch: &mut Vec<serde_json::Value>,
    from: u64,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let to = from + batch.len() as u64 - 1;
    insert_rows(conn, table, std::mem::take(batch)).with_context(|| format!("lines {from} to {to}"))
}

/// The fund row's ledger head (a database holds one fund).
struct FundHead {
    ledger_seq: i64,
    ledger_head: String,
}

fn fund_head(conn: &mut DbConn) -> anyhow::Result<FundHead> {
    let (ledger_seq, ledger_head) = schema::funds::table
        .select((schema::funds::ledger_seq, schema::funds::ledger_head))
        .order(schema::funds::id.asc())
        .first::<(i64, String)>(conn)
        .optional()?
        .ok_or_else(|| anyhow!("the database holds no fund"))?;
    Ok(FundHead {
        ledger_seq,
        ledger_head,
    })
}

fn reset_sequences(conn: &mut DbConn) -> anyhow::Result<()> {
    if let DbConn::Pg(pg) = conn {
        for table in PG_SERIAL_TABLES {
            diesel::sql_query(format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                 COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            ))
            .execute(pg)?;
        }
    }
    Ok(())
}

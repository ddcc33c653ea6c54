//! Queuing year-end statements: each donor's statement once, and again only when it changed
//! (a late check, a refund), marked as a correction; the command reports what it really did.
//!
//! A statement's dedupe key ends with a fingerprint of what it says (the gifts and the total),
//! so the outbox takes each version of a donor's statement once however often the command runs.

use diesel::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{CHUNK, Statement, payload};
use crate::config::Config;
use crate::db::DbConn;
use crate::db::schema::outbox;
use crate::ledger::ops::{QueueEmails, QueuedEmail};

/// What a run queued.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// First statements of donors who had none for the year.
    pub new: usize,
    /// Statements of donors whose earlier statement no longer matches their gifts.
    pub corrections: usize,
    /// Donors whose latest statement still says what their gifts say (nothing queued).
    pub unchanged: usize,
}

/// What a statement says, as a short fingerprint.
fn fingerprint(p: &Value) -> String {
    let said = serde_json::json!([p["gifts"], p["total"]]).to_string();
    hex::encode(&Sha256::digest(said.as_bytes())[..8])
}

/// The statements already queued for `email` in `year` (any version, and the keys of older
/// releases, which had no fingerprint): their payloads.
fn earlier(conn: &mut DbConn, year: i32, email: &str) -> QueryResult<Vec<Value>> {
    let plain = format!("year_end:{year}:{email}");
    let rows: Vec<String> = outbox::table
        .filter(
            outbox::dedupe_key
                .eq(&plain)
                .or(outbox::dedupe_key.like(format!("{plain}:%"))),
        )
        .order(outbox::id.asc())
        .select(outbox::payload)
        .load(conn)?;
    Ok(rows
        .iter()
        .filter_map(|p| serde_json::from_str(p).ok())
        .collect())
}

/// Queues what is new or changed of `list` and says what it did.
pub(super) fn queue(
    config: &mut Config,
    conn: &mut DbConn,
    year: i32,
    list: &[Statement],
    currency: crate::money::Currency,
) -> anyhow::Result<Sent> {
    let mut sent = Sent::default();
    let mut emails = Vec::new();
    for s in list {
        let mut p = payload(s, year, currency);
        let fp = fingerprint(&p);
        let before = earlier(conn, year, &s.email)?;
        match before.last() {
            Some(last) if fingerprint(last) == fp => {
                sent.unchanged += 1;
                continue;
            }
            Some(_) => {
                p["correction"] = Value::Bool(true);
                sent.corrections += 1;
            }
            None => sent.new += 1,
        }
        emails.push(QueuedEmail {
            kind: "year_end".into(),
            dedupe_key: format!("year_end:{year}:{}:{fp}", s.email),
            locale: s.locale.clone(),
            payload: p,
        });
    }
    if !emails.is_empty() {
        let writer = crate::commands::writer(config)?;
        for chunk in emails.chunks(CHUNK) {
            writer
                .submit_blocking(QueueEmails(chunk.to_vec()))
                .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
        }
    }
    Ok(sent)
}

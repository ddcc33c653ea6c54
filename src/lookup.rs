//! Donors find their own gifts (issue 24): a one-time code sent to the address they gave with,
//! or the emailed link (whose GET only shows a button, so a mail scanner that opens it spends
//! nothing); then a short signed session on that address. Codes and links are stored as
//! SHA-256 hashes; a code dies after [`CODE_TTL`], [`MAX_ATTEMPTS`] wrong tries or its first
//! use, and a new code replaces the old ones.

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::DbConn;
use crate::db::schema::{donations, ledger_entries, lookup_codes};
use crate::error::AppError;
use crate::money::{Currency, Money};

/// How long a code (and its link) can be used.
pub const CODE_TTL: TimeDelta = TimeDelta::minutes(10);
/// Wrong codes before a code is dead (then the donor asks for a new one).
pub const MAX_ATTEMPTS: i32 = 5;
/// How long a donor's session lasts once the code was right.
pub const SESSION_TTL: TimeDelta = TimeDelta::minutes(30);
/// Receipt resends per gift per day (UTC).
pub const RESENDS_PER_DAY: i64 = 3;

/// The address as looked up: trimmed, lower-cased.
pub fn normalize(email: &str) -> String {
    email.trim().to_lowercase()
}

fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// True when any donation was given with `email` (as normalized).
pub fn has_gifts(conn: &mut DbConn, email: &str) -> QueryResult<bool> {
    let n: i64 = donations::table
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("LOWER(email) = ")
                .bind::<diesel::sql_types::Text, _>(email),
        )
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// A new code and link for `email`: `(six digits, link token)`. Earlier codes of the address
/// are spent, so only the newest works.
pub fn issue(conn: &mut DbConn, email: &str, now: NaiveDateTime) -> QueryResult<(String, String)> {
    let code = format!("{:06}", rand::random_range(0..1_000_000_u32));
    let link: [u8; 24] = rand::random();
    let link = hex::encode(link);
    conn.transaction(|conn| {
        diesel::update(
            lookup_codes::table
                .filter(lookup_codes::email.eq(email))
                .filter(lookup_codes::spent_at.is_null()),
        )
        .set(lookup_codes::spent_at.eq(Some(now)))
        .execute(conn)?;
        diesel::insert_into(lookup_codes::table)
            .values((
                lookup_codes::email.eq(email),
                lookup_codes::code_hash.eq(digest(&format!("{email}:{code}"))),
                lookup_codes::link_hash.eq(digest(&link)),
                lookup_codes::attempts.eq(0),
                lookup_codes::created_at.eq(now),
                lookup_codes::expires_at.eq(now + CODE_TTL),
            ))
            .execute(conn)
    })?;
    Ok((code, link))
}

/// Checks `code` against the live code of `email`: true (and the code is spent) when right;
/// a wrong one counts a try. An address with no live code is simply false.
pub fn check_code(
    conn: &mut DbConn,
    email: &str,
    code: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    conn.transaction(|conn| {
        let live: Option<(i64, String)> = lookup_codes::table
            .filter(lookup_codes::email.eq(email))
            .filter(lookup_codes::spent_at.is_null())
            .filter(lookup_codes::expires_at.gt(now))
            .filter(lookup_codes::attempts.lt(MAX_ATTEMPTS))
            .order(lookup_codes::id.desc())
            .select((lookup_codes::id, lookup_codes::code_hash))
            .first(conn)
            .optional()?;
        let Some((id, hash)) = live else {
            return Ok(false);
        };
        let right = digest(&format!("{email}:{}", code.trim())) == hash;
        let row = lookup_codes::table.find(id);
        if right {
            diesel::update(row)
                .set(lookup_codes::spent_at.eq(Some(now)))
                .execute(conn)?;
        } else {
            diesel::update(row)
                .set(lookup_codes::attempts.eq(lookup_codes::attempts + 1))
                .execute(conn)?;
        }
        Ok(right)
    })
}

/// Spends the emailed link `token`; the address it was sent to when it was live.
pub fn spend_link(
    conn: &mut DbConn,
    token: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<String>> {
    conn.transaction(|conn| {
        let live: Option<(i64, String)> = lookup_codes::table
            .filter(lookup_codes::link_hash.eq(digest(token.trim())))
            .filter(lookup_codes::spent_at.is_null())
            .filter(lookup_codes::expires_at.gt(now))
            .select((lookup_codes::id, lookup_codes::email))
            .first(conn)
            .optional()?;
        if let Some((id, _)) = &live {
            diesel::update(lookup_codes::table.find(*id))
                .set(lookup_codes::spent_at.eq(Some(now)))
                .execute(conn)?;
        }
        Ok(live.map(|(_, email)| email))
    })
}

/// A donor's session: `email|expires (unix)|mac`, signed with a key derived from `secret`.
pub fn session_token(secret: &[u8], email: &str, now: NaiveDateTime) -> String {
    let expires = (now + SESSION_TTL).and_utc().timestamp();
    let body = format!("{}|{expires}", hex::encode(email.as_bytes()));
    format!("{body}|{}", mac(secret, &body))
}

/// The address a session token was made for, while it lasts.
pub fn session_email(secret: &[u8], token: &str, now: NaiveDateTime) -> Option<String> {
    let (body, given) = token.rsplit_once('|')?;
    let expected = mac(secret, body);
    if !same(expected.as_bytes(), given.as_bytes()) {
        return None;
    }
    let (email, expires) = body.split_once('|')?;
    let expires: i64 = expires.parse().ok()?;
    if now.and_utc().timestamp() >= expires {
        return None;
    }
    String::from_utf8(hex::decode(email).ok()?).ok()
}

/// A form token tied to the session (a page of another site cannot know it).
pub fn form_token(secret: &[u8], session: &str) -> String {
    mac(secret, &format!("form|{session}"))
}

fn mac(secret: &[u8], body: &str) -> String {
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    m.update(b"donor-lookup:");
    m.update(body.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Equal bytes, compared in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One gift as its donor sees it.
#[derive(Debug, Clone, Serialize)]
pub struct GiftView {
    /// The donation.
    pub id: i64,
    /// The day it was given (received, for a check).
    pub date: NaiveDate,
    /// The amount given.
    pub amount: Money,
    /// What was refunded of it.
    pub refunded: Money,
    /// `card`, `check`, `wire`, `cash`, `other`.
    pub method: String,
    /// `succeeded`, `pending`, `failed`, `canceled`.
    pub status: String,
    /// The amount, minor units.
    pub amount_minor: i64,
    /// Refunded, minor units.
    pub refunded_minor: i64,
    /// The ledger entry that recorded it (its proof), once recorded.
    pub entry_seq: Option<i64>,
    /// That entry's hash.
    pub entry_hash: Option<String>,
}

type Row = (
    i64,
    Option<NaiveDate>,
    Option<NaiveDateTime>,
    NaiveDateTime,
    i64,
    i64,
    String,
    String,
);

/// Every gift given with `email`, oldest first, with the entry that recorded each; a card
/// gift's day is its day in the fund's time zone `tz`.
pub fn gifts(
    conn: &mut DbConn,
    email: &str,
    currency: Currency,
    tz: chrono_tz::Tz,
) -> Result<Vec<GiftView>, AppError> {
    let rows: Vec<Row> = donations::table
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("LOWER(email) = ")
                .bind::<diesel::sql_types::Text, _>(email),
        )
        .order(donations::id.asc())
        .select((
            donations::id,
            donations::received_on,
            donations::succeeded_at,
            donations::created_at,
            donations::amount_minor,
            donations::refunded_minor,
            donations::method,
            donations::status,
        ))
        .load(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, received, succeeded, created, amount, refunded, method, status) in rows {
        let entry: Option<(i64, String)> = ledger_entries::table
            .filter(ledger_entries::donation_id.eq(id))
            .order(ledger_entries::seq.asc())
            .select((ledger_entries::seq, ledger_entries::hash))
            .first(conn)
            .optional()?;
        out.push(GiftView {
            id,
            date: received
                .or(succeeded.map(|t| t.and_utc().with_timezone(&tz).date_naive()))
                .unwrap_or(created.date()),
            amount: Money::new(amount, currency),
            refunded: Money::new(refunded, currency),
            amount_minor: amount,
            refunded_minor: refunded,
            method,
            status,
            entry_seq: entry.as_ref().map(|e| e.0),
            entry_hash: entry.map(|e| e.1),
        });
    }
    Ok(out)
}

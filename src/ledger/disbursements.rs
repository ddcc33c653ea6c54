//! Money out: a payment to counsel (or another cost of the case) is a hash-chained ledger
//! entry of kind `disbursement` that raises the money paid out and lowers the balance, never
//! raised; a void is a reversing `disbursement_void` entry, never an edit. Each entry's
//! public memo (JSON: payee, public memo, period, date) is what the public ledger shows;
//! the reference and internal memo stay in the database (the hash covers them by digest).

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::ops::{Idempotency, StoredResponse, remember, replay};
use super::{Ctx, Op};
use crate::db::DbConn;
use crate::db::schema::disbursements;
use crate::error::{AppError, ErrorCode};
use crate::money::Money;

/// A checked disbursement.
#[derive(Debug, Clone, Serialize)]
pub struct DisbursementInput {
    /// Positive, in the fund's currency.
    pub amount_minor: i64,
    /// Who was paid (public).
    pub payee: String,
    /// The legal-fee period it pays for, if any.
    pub period_id: Option<i64>,
    /// When it was paid.
    pub paid_on: NaiveDate,
    /// Check number, wire or invoice reference (internal).
    pub reference: String,
    /// Internal note.
    pub memo: String,
    /// What the public ledger says of it.
    pub public_memo: String,
}

/// A disbursement as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DisbursementView {
    /// The id.
    pub id: i64,
    /// Amount paid.
    pub amount: Money,
    /// Who was paid.
    pub payee: String,
    /// The period it pays for.
    pub period_id: Option<i64>,
    /// When it was paid.
    pub paid_on: NaiveDate,
    /// Check, wire or invoice reference.
    pub reference: String,
    /// Internal note.
    pub memo: String,
    /// What the public ledger says.
    pub public_memo: String,
    /// Recorded.
    pub created_at: DateTime<Utc>,
    /// By whom.
    pub created_by: String,
    /// Its ledger entry.
    pub entry_seq: i64,
    /// When it was voided, if it was.
    pub voided_at: Option<DateTime<Utc>>,
    /// The reversing entry, if voided.
    pub void_entry_seq: Option<i64>,
}

/// A disbursements row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = disbursements)]
struct Row {
    id: i64,
    amount_minor: i64,
    payee: String,
    period_id: Option<i64>,
    paid_on: NaiveDate,
    reference: String,
    memo: String,
    public_memo: String,
    created_at: chrono::NaiveDateTime,
    created_by: String,
    entry_seq: i64,
    voided_at: Option<chrono::NaiveDateTime>,
    #[allow(dead_code)]
    voided_by: Option<String>,
    void_entry_seq: Option<i64>,
}

fn view(r: Row, currency: crate::money::Currency) -> DisbursementView {
    DisbursementView {
        id: r.id,
        amount: Money::new(r.amount_minor, currency),
        payee: r.payee,
        period_id: r.period_id,
        paid_on: r.paid_on,
        reference: r.reference,
        memo: r.memo,
        public_memo: r.public_memo,
        created_at: r.created_at.and_utc(),
        created_by: r.created_by,
        entry_seq: r.entry_seq,
        voided_at: r.voided_at.map(|t| t.and_utc()),
        void_entry_seq: r.void_entry_seq,
    }
}

/// Every disbursement, newest first.
pub fn list(
    conn: &mut DbConn,
    currency: crate::money::Currency,
) -> Result<Vec<DisbursementView>, AppError> {
    let rows: Vec<Row> = disbursements::table
        .order(disbursements::id.desc())
        .select(Row::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(|r| view(r, currency)).collect())
}

fn find(
    conn: &mut DbConn,
    id: i64,
    currency: crate::money::Currency,
) -> Result<Option<DisbursementView>, AppError> {
    let row: Option<Row> = disbursements::table
        .find(id)
        .select(Row::as_select())
        .first(conn)
        .optional()?;
    Ok(row.map(|r| view(r, currency)))
}

/// The public memo of an entry: JSON with sorted keys, so it reads the same everywhere.
fn public_json(fields: serde_json::Value) -> Result<String, AppError> {
    serde_json::to_string(&fields).map_err(AppError::internal)
}

/// Records a disbursement (idempotent with a key).
#[derive(Debug)]
pub struct RecordDisbursement {
    /// What was paid.
    pub input: DisbursementInput,
    /// The treasurer recording it.
    pub actor: String,
    /// `Idempotency-Key`, if sent.
    pub idempotency: Option<Idempotency>,
}

impl Op for RecordDisbursement {
    type Output = StoredResponse;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<StoredResponse, AppError> {
        if let Some(idem) = &self.idempotency
            && let Some(previous) = replay(cx, idem)?
        {
            return Ok(previous);
        }
        let d = &self.input;
        if let Some(p) = d.period_id
            && !cx.st.periods.iter().any(|q| q.id == p)
        {
            return Err(AppError::invalid_field(
                "period_id",
                format!("no period {p}"),
            ));
        }
        let c = cx.st.currency;
        let holds = cx.st.row.raised_minor - cx.st.disbursed_minor;
        if d.amount_minor > holds {
            return Err(AppError::new(
                ErrorCode::ExceedsBalance,
                format!(
                    "the fund holds {} (raised less paid out); this pays {}",
                    c.format(holds),
                    c.format(d.amount_minor)
                ),
            ));
        }
        let seq = cx.st.row.ledger_seq + 1;
        let id: i64 = diesel::insert_into(disbursements::table)
            .values((
                disbursements::amount_minor.eq(d.amount_minor),
                disbursements::payee.eq(&d.payee),
                disbursements::period_id.eq(d.period_id),
                disbursements::paid_on.eq(d.paid_on),
                disbursements::reference.eq(&d.reference),
                disbursements::memo.eq(&d.memo),
                disbursements::public_memo.eq(&d.public_memo),
                disbursements::created_at.eq(cx.now),
                disbursements::created_by.eq(&self.actor),
                disbursements::entry_seq.eq(seq),
            ))
            .returning(disbursements::id)
            .get_result(cx.conn()?)?;
        let public = public_json(serde_json::json!({
            "disbursement": id,
            "memo": d.public_memo,
            "paid_on": d.paid_on,
            "payee": d.payee,
            "period_id": d.period_id,
        }))?;
        let memo = format!(
            "disbursement {id} by {}: {} {}",
            self.actor, d.reference, d.memo
        );
        let entry =
            cx.append_public_entry("disbursement", None, 0, 0, d.amount_minor, &memo, &public)?;
        debug_assert_eq!(entry.seq, seq);
        if let Some(p) = d.period_id {
            *cx.st.paid.entry(p).or_insert(0) += d.amount_minor;
        }
        cx.audit(
            &self.actor,
            "disbursement.recorded",
            &serde_json::json!({ "id": id, "amount": c.format(d.amount_minor), "payee": d.payee, "period_id": d.period_id }),
        )?;
        let made =
            find(cx.conn()?, id, c)?.ok_or_else(|| AppError::internal("disbursement vanished"))?;
        let resp = StoredResponse {
            status: 201,
            body: serde_json::to_string(&made).map_err(AppError::internal)?,
        };
        if let Some(idem) = &self.idempotency {
            remember(cx, idem, &resp)?;
        }
        Ok(resp)
    }
}

/// Voids a disbursement with a reversing entry (a void cannot be voided).
#[derive(Debug)]
pub struct VoidDisbursement {
    /// The disbursement.
    pub id: i64,
    /// Why (internal).
    pub reason: String,
    /// Who.
    pub actor: String,
}

impl Op for VoidDisbursement {
    type Output = DisbursementView;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<DisbursementView, AppError> {
        let c = cx.st.currency;
        let d = find(cx.conn()?, self.id, c)?.ok_or_else(|| {
            AppError::new(ErrorCode::NotFound, format!("no disbursement {}", self.id))
        })?;
        if d.voided_at.is_some() {
            return Err(AppError::new(
                ErrorCode::AlreadyVoided,
                format!(
                    "disbursement {} is already void (entry {})",
                    d.id,
                    d.void_entry_seq.unwrap_or(0)
                ),
            ));
        }
        let amount: i64 = disbursements::table
            .find(d.id)
            .select(disbursements::amount_minor)
            .first(cx.conn()?)?;
        let public = public_json(serde_json::json!({
            "voids": d.id,
            "payee": d.payee,
            "period_id": d.period_id,
        }))?;
        let memo = format!(
            "void of disbursement {} by {}: {}",
            d.id, self.actor, self.reason
        );
        let entry =
            cx.append_public_entry("disbursement_void", None, 0, 0, -amount, &memo, &public)?;
        diesel::update(disbursements::table.find(d.id))
            .set((
                disbursements::voided_at.eq(cx.now),
                disbursements::voided_by.eq(&self.actor),
                disbursements::void_entry_seq.eq(entry.seq),
            ))
            .execute(cx.conn()?)?;
        if let Some(p) = d.period_id {
            *cx.st.paid.entry(p).or_insert(0) -= amount;
        }
        cx.audit(
            &self.actor,
            "disbursement.voided",
            &serde_json::json!({ "id": d.id, "amount": c.format(amount), "reason": self.reason }),
        )?;
        find(cx.conn()?, d.id, c)?.ok_or_else(|| AppError::internal("disbursement vanished"))
    }
}

/// `disbursements.csv`: every disbursement, oldest first, voided ones marked (RFC 4180, text
/// cells that a spreadsheet would read as a formula are quoted as text).
pub fn csv(conn: &mut DbConn, currency: crate::money::Currency) -> Result<Vec<u8>, AppError> {
    use crate::reports::csv_out::text_cell;
    let mut rows = list(conn, currency)?;
    rows.reverse();
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "id",
        "paid_on",
        "payee",
        "amount",
        "currency",
        "period_id",
        "reference",
        "memo",
        "public_memo",
        "created_at",
        "created_by",
        "entry_seq",
        "voided_at",
        "void_entry_seq",
    ];
    w.write_record(header).map_err(AppError::internal)?;
    for d in rows {
        let record = [
            d.id.to_string(),
            d.paid_on.to_string(),
            text_cell(&d.payee).into_owned(),
            d.amount.to_string(),
            currency.code().to_owned(),
            d.period_id.map(|p| p.to_string()).unwrap_or_default(),
            text_cell(&d.reference).into_owned(),
            text_cell(&d.memo).into_owned(),
            text_cell(&d.public_memo).into_owned(),
            d.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            text_cell(&d.created_by).into_owned(),
            d.entry_seq.to_string(),
            d.voided_at
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default(),
            d.void_entry_seq.map(|s| s.to_string()).unwrap_or_default(),
        ];
        w.write_record(record).map_err(AppError::internal)?;
    }
    w.into_inner().map_err(AppError::internal)
}

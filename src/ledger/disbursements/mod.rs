//! Money out: a payment to counsel (or another cost of the case) is a hash-chained ledger
//! entry of kind `disbursement` that raises the money paid out and lowers the balance, never
//! raised; a void is a reversing `disbursement_void` entry, never an edit. Each entry's
//! public memo (JSON: payee, public memo, period, date) is what the public ledger shows;
//! the reference and internal memo stay in the database (the hash covers them by digest).
//! Above `APPROVAL_THRESHOLD` a disbursement waits for a second admin, as a large refund does:
//! it reaches the ledger (and lowers the balance) only when approved; the one who recorded it
//! cannot approve it; it expires after [`super::approvals::APPROVAL_TTL`].

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::ops::{Idempotency, StoredResponse, remember, replay};
use super::{Ctx, Op};
use crate::db::DbConn;
use crate::db::schema::disbursements;
use crate::error::{AppError, ErrorCode};
use crate::money::Money;

mod approval;

pub use approval::{ApproveDisbursement, RejectDisbursement};

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
    /// Its ledger entry (none while it waits for approval).
    pub entry_seq: Option<i64>,
    /// When it was voided, if it was.
    pub voided_at: Option<DateTime<Utc>>,
    /// The reversing entry, if voided.
    pub void_entry_seq: Option<i64>,
    /// `recorded`, `pending_approval` (waiting for a second admin) or `rejected`.
    pub state: String,
    /// The second admin who approved it.
    pub approved_by: Option<String>,
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
    entry_seq: Option<i64>,
    voided_at: Option<chrono::NaiveDateTime>,
    void_entry_seq: Option<i64>,
    state: String,
    approved_by: Option<String>,
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
        state: r.state,
        approved_by: r.approved_by,
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
    /// `APPROVAL_THRESHOLD` in minor units: above it a second admin approves.
    pub approval_above_minor: Option<i64>,
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
        check_balance(cx, d.amount_minor)?;
        let waits = self
            .approval_above_minor
            .is_some_and(|t| d.amount_minor > t);
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
                disbursements::state.eq(if waits { PENDING } else { RECORDED }),
            ))
            .returning(disbursements::id)
            .get_result(cx.conn()?)?;
        if waits {
            cx.audit(
                &self.actor,
                "disbursement.approval_requested",
                &serde_json::json!({ "id": id, "amount": c.format(d.amount_minor), "payee": d.payee }),
            )?;
        } else {
            let inserted =
                row(cx, id)?.ok_or_else(|| AppError::internal("disbursement vanished"))?;
            carry_out(cx, &inserted, &self.actor)?;
        }
        let made =
            find(cx.conn()?, id, c)?.ok_or_else(|| AppError::internal("disbursement vanished"))?;
        let resp = StoredResponse {
            status: if made.state == PENDING { 202 } else { 201 },
            body: serde_json::to_string(&made).map_err(AppError::internal)?,
        };
        if let Some(idem) = &self.idempotency {
            remember(cx, idem, &resp)?;
        }
        Ok(resp)
    }
}

/// Recorded: in the ledger.
const RECORDED: &str = "recorded";
/// Waiting for a second admin.
const PENDING: &str = "pending_approval";

/// 409 `exceeds_balance` when the fund holds less than `amount`.
fn check_balance(cx: &mut Ctx<'_>, amount: i64) -> Result<(), AppError> {
    let c = cx.st.currency;
    let holds = cx.st.row.raised_minor - cx.st.disbursed_minor;
    if amount > holds {
        return Err(AppError::new(
            ErrorCode::ExceedsBalance,
            format!(
                "the fund holds {} (raised less paid out); this pays {}",
                c.format(holds),
                c.format(amount)
            ),
        ));
    }
    Ok(())
}

/// Reads one disbursement's row.
fn row(cx: &mut Ctx<'_>, id: i64) -> Result<Option<Row>, AppError> {
    Ok(disbursements::table
        .find(id)
        .select(Row::as_select())
        .first(cx.conn()?)
        .optional()?)
}

/// Writes `row`'s ledger entry (the money leaves the balance) and its audit row.
fn carry_out(cx: &mut Ctx<'_>, row: &Row, actor: &str) -> Result<(), AppError> {
    let c = cx.st.currency;
    let id = row.id;
    let public = public_json(serde_json::json!({
        "disbursement": id,
        "memo": row.public_memo,
        "paid_on": row.paid_on,
        "payee": row.payee,
        "period_id": row.period_id,
    }))?;
    let memo = format!(
        "disbursement {id} by {}: {} {}",
        row.created_by, row.reference, row.memo
    );
    let entry =
        cx.append_public_entry("disbursement", None, 0, 0, row.amount_minor, &memo, &public)?;
    diesel::update(disbursements::table.find(id))
        .set((
            disbursements::entry_seq.eq(entry.seq),
            disbursements::state.eq(RECORDED),
        ))
        .execute(cx.conn()?)?;
    if let Some(p) = row.period_id {
        *cx.st.paid.entry(p).or_insert(0) += row.amount_minor;
    }
    cx.audit(
        actor,
        "disbursement.recorded",
        &serde_json::json!({ "id": id, "amount": c.format(row.amount_minor), "payee": row.payee, "period_id": row.period_id }),
    )
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
        let d = row(cx, self.id)?.ok_or_else(|| {
            AppError::new(ErrorCode::NotFound, format!("no disbursement {}", self.id))
        })?;
        if d.state != RECORDED {
            return Err(AppError::new(
                ErrorCode::ApprovalNotPending,
                format!(
                    "disbursement {} is {}, not in the ledger: nothing to void",
                    d.id, d.state
                ),
            ));
        }
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
        let amount = d.amount_minor;
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

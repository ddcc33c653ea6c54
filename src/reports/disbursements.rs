//! `disbursements.csv`: the money paid out, for the treasurer's books.

use crate::db::DbConn;
use crate::error::AppError;
use crate::ledger::disbursements::list;

/// `disbursements.csv`: every disbursement, oldest first, voided ones marked (RFC 4180, text
/// cells that a spreadsheet would read as a formula are quoted as text).
pub fn csv(conn: &mut DbConn, currency: crate::money::Currency) -> Result<Vec<u8>, AppError> {
    use super::csv_out::text_cell;
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
        "state",
        "approved_by",
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
            d.entry_seq.map(|s| s.to_string()).unwrap_or_default(),
            d.voided_at
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default(),
            d.void_entry_seq.map(|s| s.to_string()).unwrap_or_default(),
            d.state.clone(),
            text_cell(d.approved_by.as_deref().unwrap_or_default()).into_owned(),
        ];
        w.write_record(record).map_err(AppError::internal)?;
    }
    w.into_inner().map_err(AppError::internal)
}

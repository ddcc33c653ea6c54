//! The donations export and the walk over every donation that the periods export and the
//! summary share.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::csv_out::{ChunkedCsv, text_cell};
use super::{Allocator, Filters, PAGE};
use crate::db::DbConn;
use crate::db::models::DonationRow;
use crate::db::schema::{donations, outbox};
use crate::error::AppError;
use crate::ledger::FundState;
use crate::money::{Currency, format_minor};

/// One donation as reports see it.
#[derive(Debug, Clone)]
pub struct Line {
    /// The row.
    pub row: DonationRow,
    /// When the money arrived: the date on the check for offline gifts, the moment Stripe
    /// confirmed for cards (creation time while not succeeded).
    pub received_at: NaiveDateTime,
    /// What still counts in raised (0 unless succeeded).
    pub counted: i64,
    /// `(period index, minor units)`.
    pub allocation: Vec<(usize, i64)>,
    /// When its receipt was accepted by the mail server.
    pub receipt_sent_at: Option<NaiveDateTime>,
}

impl Line {
    /// The received date.
    pub fn date(&self) -> NaiveDate {
        self.received_at.date()
    }
}

/// Calls `f` for every donation in recording order (id), with allocations computed over all of
/// them; stops early when `f` returns false.
pub fn walk(
    conn: &mut DbConn,
    allocator: &mut Allocator,
    mut f: impl FnMut(&Line) -> bool,
) -> Result<(), AppError> {
    let mut after = 0_i64;
    loop {
        let page: Vec<DonationRow> = donations::table
            .filter(donations::id.gt(after))
            .order(donations::id.asc())
            .limit(PAGE)
            .select(DonationRow::as_select())
            .load(conn)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.id;
        // By `outbox_donation` (without that index this read the whole outbox for every page:
        // 0.5 s a page with 200,000 receipts).
        let ids: Vec<i64> = page.iter().map(|d| d.id).collect();
        let sent: std::collections::HashMap<i64, NaiveDateTime> = outbox::table
            .filter(outbox::donation_id.eq_any(&ids))
            .filter(outbox::kind.eq("receipt"))
            .filter(outbox::sent_at.is_not_null())
            .select((
                outbox::donation_id.assume_not_null(),
                outbox::sent_at.assume_not_null(),
            ))
            .load::<(i64, NaiveDateTime)>(conn)?
            .into_iter()
            .collect();
        for row in page {
            let counted = if row.status == "succeeded" {
                row.amount_minor - row.refunded_minor - row.disputed_minor
            } else {
                0
            };
            let allocation = if counted > 0 {
                allocator.next(counted)
            } else {
                Vec::new()
            };
            let received_at = match (row.received_on, row.succeeded_at) {
                (Some(d), _) => d.and_hms_opt(0, 0, 0).unwrap_or(row.created_at),
                (None, Some(t)) => t,
                (None, None) => row.created_at,
            };
            let receipt_sent_at = sent.get(&row.id).copied();
            let line = Line {
                row,
                received_at,
                counted,
                allocation,
                receipt_sent_at,
            };
            if !f(&line) {
                return Ok(());
            }
        }
    }
}

/// True if the line passes the donation filters (`period_ids` in allocation order).
pub fn matches(filters: &Filters, period_ids: &[i64], line: &Line) -> bool {
    filters.covers(line.date())
        && filters
            .status
            .as_ref()
            .is_none_or(|s| *s == line.row.status)
        && filters
            .method
            .as_ref()
            .is_none_or(|m| *m == line.row.method)
        && filters.period.is_none_or(|p| {
            line.allocation
                .iter()
                .any(|(i, _)| period_ids.get(*i) == Some(&p))
        })
}

/// UTC ISO 8601.
pub fn iso(t: NaiveDateTime) -> String {
    t.and_utc().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Columns; those after `created_at` came later, at the end so that earlier column positions
/// hold.
const HEADER: [&str; 23] = [
    "id",
    "received_at",
    "donor_name",
    "email",
    "anonymous",
    "method",
    "reference",
    "status",
    "amount",
    "fee",
    "net",
    "refunded",
    "disputed",
    "currency",
    "period_allocations",
    "after_close",
    "receipt_sent_at",
    "created_at",
    "fee_currency",
    "settled_amount",
    "exchange_rate",
    "fee_covered",
    "payment_method_type",
];

/// Streams the donations export into `out`.
pub fn export<F: FnMut(Vec<u8>) -> bool>(
    conn: &mut DbConn,
    filters: &Filters,
    out: &mut ChunkedCsv<F>,
    progress: &mut dyn FnMut(u64),
) -> Result<(), AppError> {
    let fund = FundState::load(conn)?;
    let c = fund.currency;
    let mut allocator = Allocator::new(fund.periods.clone());
    let labels: Vec<String> = allocator
        .periods()
        .iter()
        .map(|p| p.label.clone())
        .collect();
    let period_ids: Vec<i64> = allocator.periods().iter().map(|p| p.id).collect();
    if !out.row(HEADER) {
        return Ok(());
    }
    let mut written = 0_u64;
    walk(conn, &mut allocator, |line| {
        if !matches(filters, &period_ids, line) {
            return true;
        }
        written += 1;
        if written.is_multiple_of(10_000) {
            progress(written);
        }
        out.row(donation_fields(line, c, &labels))
    })?;
    progress(written);
    out.flush();
    Ok(())
}

fn money(c: Currency, minor: i64) -> String {
    c.format(minor)
}

fn donation_fields(line: &Line, c: Currency, labels: &[String]) -> Vec<String> {
    let d = &line.row;
    let offline = d.method != "card";
    // Fee and net are in the balance transaction's currency, which is the account's
    // settlement currency: not always the fund's (`fee_currency` says which).
    let fee_currency = d.fee_currency.as_deref().unwrap_or(&d.currency);
    let (fee, net, fee_currency) = match (d.fee_minor, d.net_minor, offline) {
        (Some(f), Some(n), _) => (
            format_minor(fee_currency, f),
            format_minor(fee_currency, n),
            fee_currency.to_owned(),
        ),
        (_, _, true) if d.status == "succeeded" => {
            (money(c, 0), money(c, d.amount_minor), d.currency.clone())
        }
        _ => (String::new(), String::new(), String::new()),
    };
    let settled = d
        .settled_minor
        .map(|m| format_minor(&fee_currency, m))
        .unwrap_or_default();
    let reference = if offline {
        d.reference.clone()
    } else {
        d.payment_intent_id.clone()
    };
    let allocations = line
        .allocation
        .iter()
        .map(|(i, m)| {
            format!(
                "{}={}",
                labels.get(*i).map_or("", String::as_str),
                money(c, *m)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    vec![
        d.id.to_string(),
        iso(line.received_at),
        text_cell(&d.donor_name).into_owned(),
        text_cell(d.email.as_deref().unwrap_or_default()).into_owned(),
        d.anonymous.to_string(),
        d.method.clone(),
        text_cell(reference.as_deref().unwrap_or_default()).into_owned(),
        d.status.clone(),
        money(c, d.amount_minor),
        fee,
        net,
        money(c, d.refunded_minor),
        money(c, d.disputed_minor),
        d.currency.clone(),
        text_cell(&allocations).into_owned(),
        d.after_close.to_string(),
        line.receipt_sent_at.map(iso).unwrap_or_default(),
        iso(d.created_at),
        fee_currency,
        settled,
        text_cell(d.exchange_rate.as_deref().unwrap_or_default()).into_owned(),
        money(c, d.fee_covered_minor),
        payment_method_type(d).to_owned(),
    ]
}

/// How a gift was paid, for reports: the type Stripe's charge named (`card`,
/// `us_bank_account`, `alipay`, `wechat_pay`, `link`, `apple_pay`, ...); for an offline gift,
/// its method (`check`, `wire`, ...); a Stripe gift recorded before the type was kept was a
/// card (cards were the only method then).
pub fn payment_method_type(d: &crate::db::models::DonationRow) -> &str {
    d.payment_method_type.as_deref().unwrap_or(&d.method)
}

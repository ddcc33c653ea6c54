//! Totals by period and by day, the periods export, and raised against the target. Every
//! figure here is a sum of rows of the donations export.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::csv_out::{ChunkedCsv, text_cell};
use super::donations::{matches, walk};
use super::{Allocator, Filters};
use crate::db::DbConn;
use crate::error::AppError;
use crate::ledger::FundState;
use crate::money::{Currency, Money, format_minor};

/// A period's line.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PeriodTotal {
    /// Period id.
    pub id: i64,
    /// Label.
    pub label: String,
    /// First day.
    pub starts_on: NaiveDate,
    /// Last day.
    pub ends_on: NaiveDate,
    /// Fees owed.
    pub budget: Money,
    /// Raised money allocated to it.
    pub covered: Money,
    /// Budget not yet covered.
    pub remaining: Money,
    /// Donations allocated (in part) to it.
    pub gift_count: u64,
    /// Paid out against it (disbursements not voided).
    pub paid: Money,
    /// Covered less paid.
    pub balance: Money,
}

/// A day's line (by the day the money arrived).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DayTotal {
    /// The day.
    pub date: NaiveDate,
    /// Succeeded donations that day.
    pub gifts: u64,
    /// Their amounts.
    pub gross: Money,
    /// Stripe's fees, of the gifts settled in the fund's currency.
    pub fees: Money,
    /// Gross less fees, of the gifts settled in the fund's currency (those settled in
    /// another are in `settled_in_other_currencies`).
    pub net: Money,
    /// Refunded since.
    pub refunds: Money,
    /// Withdrawn by disputes since.
    pub disputed: Money,
    /// Paid out that day (disbursements not voided, by the day they were paid).
    pub paid_out: Money,
}

/// `GET /api/reports/summary`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Summary {
    /// Currency.
    pub currency: &'static str,
    /// Target.
    pub target: Money,
    /// Raised (gross − refunds − disputed over every succeeded donation).
    pub raised: Money,
    /// Target − raised, never negative.
    pub remaining: Money,
    /// Donations counted in raised.
    pub donation_count: i64,
    /// Raised beyond every budget.
    pub unallocated: Money,
    /// Paid out of the fund (disbursements not voided).
    pub disbursed: Money,
    /// Raised less disbursed (before card fees, as the public ledger shows it).
    pub balance: Money,
    /// By period.
    pub periods: Vec<PeriodTotal>,
    /// By day, within the filters.
    pub days: Vec<DayTotal>,
    /// The days' sums.
    pub totals: DayTotal,
    /// The same sums by how the gifts were paid (within the filters).
    pub by_method: Vec<MethodTotal>,
    /// Card gifts (within the filters) whose Stripe account settled them in another
    /// currency, by that currency: their fees and net stay in it (not converted), so the
    /// days' fees and net leave them out rather than count them as the fund's money.
    pub settled_in_other_currencies: Vec<SettledTotal>,
}

/// The gifts paid one way.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MethodTotal {
    /// `card`, `us_bank_account`, `alipay`, `wechat_pay`, `link`, a card wallet such as
    /// `apple_pay`, or an offline method (`check`, `wire`, `cash`, `other`).
    pub method: String,
    /// Succeeded gifts.
    pub gifts: u64,
    /// Their amounts.
    pub gross: Money,
    /// Stripe's fees (of the gifts settled in the fund's currency).
    pub fees: Money,
    /// Gross less fees (likewise).
    pub net: Money,
    /// Refunded since.
    pub refunds: Money,
    /// Withdrawn by disputes (an ACH return is one) since.
    pub disputed: Money,
}

/// Gifts settled in one other currency, with that currency's figures.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SettledTotal {
    /// ISO code.
    pub currency: String,
    /// How many.
    pub gifts: u64,
    /// Their amounts as settled, in `currency` (text with its minor digits).
    pub settled: String,
    /// Stripe's fees, in `currency`.
    pub fees: String,
    /// Settled less fees, in `currency`.
    pub net: String,
}

/// Running sums of gifts settled in one other currency.
#[derive(Default, Clone, Copy)]
struct Settled {
    gifts: u64,
    settled: i64,
    fees: i64,
    net: i64,
}

#[derive(Default, Clone, Copy)]
struct Acc {
    gifts: u64,
    gross: i64,
    fees: i64,
    net: i64,
    refunds: i64,
    disputed: i64,
    paid_out: i64,
}

impl Acc {
    fn add(&mut self, other: &Acc) {
        self.gifts += other.gifts;
        self.gross += other.gross;
        self.fees += other.fees;
        self.net += other.net;
        self.refunds += other.refunds;
        self.disputed += other.disputed;
        self.paid_out += other.paid_out;
    }

    fn view(self, date: NaiveDate, c: Currency) -> DayTotal {
        DayTotal {
            date,
            gifts: self.gifts,
            gross: Money::new(self.gross, c),
            fees: Money::new(self.fees, c),
            net: Money::new(self.net, c),
            refunds: Money::new(self.refunds, c),
            disputed: Money::new(self.disputed, c),
            paid_out: Money::new(self.paid_out, c),
        }
    }
}

/// Disbursements not voided, summed by the day they were paid (a few hundred rows).
fn paid_out_by_day(conn: &mut DbConn) -> Result<BTreeMap<NaiveDate, i64>, AppError> {
    use crate::db::schema::disbursements;
    use diesel::prelude::*;
    let rows: Vec<(NaiveDate, i64)> = disbursements::table
        .filter(disbursements::voided_at.is_null())
        .filter(disbursements::state.eq("recorded"))
        .select((disbursements::paid_on, disbursements::amount_minor))
        .load(conn)?;
    let mut days = BTreeMap::new();
    for (day, amount) in rows {
        *days.entry(day).or_insert(0) += amount;
    }
    Ok(days)
}

/// Computes the summary in one pass over the donations.
pub fn summary(conn: &mut DbConn, filters: &Filters) -> Result<Summary, AppError> {
    let fund = FundState::load(conn)?;
    let c = fund.currency;
    let mut allocator = Allocator::new(fund.periods.clone());
    let periods = allocator.periods().to_vec();
    let period_ids: Vec<i64> = periods.iter().map(|p| p.id).collect();
    let mut covered = vec![0_i64; periods.len()];
    let mut gift_counts = vec![0_u64; periods.len()];
    let mut days: BTreeMap<NaiveDate, Acc> = BTreeMap::new();
    let mut elsewhere: BTreeMap<String, Settled> = BTreeMap::new();
    let mut methods: BTreeMap<String, Acc> = BTreeMap::new();
    walk(conn, &mut allocator, |line| {
        for (i, m) in &line.allocation {
            covered[*i] += m;
            gift_counts[*i] += 1;
        }
        if line.row.status == "succeeded" && matches(filters, &period_ids, line) {
            let d = &line.row;
            let mut gift = Acc {
                gifts: 1,
                gross: d.amount_minor,
                refunds: d.refunded_minor,
                disputed: d.disputed_minor,
                ..Acc::default()
            };
            match d.fee_currency.as_deref() {
                Some(other) if !other.eq_ignore_ascii_case(&d.currency) => {
                    let s = elsewhere.entry(other.to_uppercase()).or_default();
                    s.gifts += 1;
                    s.settled += d.settled_minor.unwrap_or(0);
                    s.fees += d.fee_minor.unwrap_or(0);
                    s.net += d.net_minor.unwrap_or(0);
                }
                _ => {
                    let fee = d.fee_minor.unwrap_or(0);
                    gift.fees = fee;
                    gift.net = d.net_minor.unwrap_or(d.amount_minor - fee);
                }
            }
            days.entry(line.date()).or_default().add(&gift);
            let method = super::donations::payment_method_type(d);
            match methods.get_mut(method) {
                Some(acc) => acc.add(&gift),
                None => {
                    methods.insert(method.to_owned(), gift);
                }
            }
        }
        true
    })?;
    for (day, amount) in paid_out_by_day(conn)? {
        let in_range = filters.from.is_none_or(|f| day >= f) && filters.to.is_none_or(|t| day <= t);
        if in_range {
            days.entry(day).or_default().paid_out += amount;
        }
    }
    let mut total = Acc::default();
    for d in days.values() {
        total.add(d);
    }
    let row = &fund.row;
    let budgets: i64 = periods.iter().map(|p| p.budget_minor).sum();
    Ok(Summary {
        currency: c.code(),
        target: Money::new(row.target_minor, c),
        raised: Money::new(row.raised_minor, c),
        remaining: Money::new((row.target_minor - row.raised_minor).max(0), c),
        donation_count: row.donation_count,
        unallocated: Money::new((row.raised_minor - budgets).max(0), c),
        disbursed: Money::new(fund.disbursed_minor, c),
        balance: Money::new(row.raised_minor - fund.disbursed_minor, c),
        periods: periods
            .iter()
            .enumerate()
            .map(|(i, p)| PeriodTotal {
                id: p.id,
                label: p.label.clone(),
                starts_on: p.starts_on,
                ends_on: p.ends_on,
                budget: Money::new(p.budget_minor, c),
                covered: Money::new(covered[i], c),
                remaining: Money::new(p.budget_minor - covered[i], c),
                gift_count: gift_counts[i],
                paid: Money::new(fund.paid.get(&p.id).copied().unwrap_or(0), c),
                balance: Money::new(covered[i] - fund.paid.get(&p.id).copied().unwrap_or(0), c),
            })
            .collect(),
        days: days.iter().map(|(d, a)| a.view(*d, c)).collect(),
        totals: total.view(filters.to.or(filters.from).unwrap_or_default(), c),
        by_method: methods
            .into_iter()
            .map(|(method, a)| MethodTotal {
                method,
                gifts: a.gifts,
                gross: Money::new(a.gross, c),
                fees: Money::new(a.fees, c),
                net: Money::new(a.net, c),
                refunds: Money::new(a.refunds, c),
                disputed: Money::new(a.disputed, c),
            })
            .collect(),
        settled_in_other_currencies: elsewhere
            .into_iter()
            .map(|(currency, s)| SettledTotal {
                settled: format_minor(&currency, s.settled),
                fees: format_minor(&currency, s.fees),
                net: format_minor(&currency, s.net),
                gifts: s.gifts,
                currency,
            })
            .collect(),
    })
}

/// Streams the periods export into `out`.
pub fn export_periods<F: FnMut(Vec<u8>) -> bool>(
    conn: &mut DbConn,
    out: &mut ChunkedCsv<F>,
) -> Result<(), AppError> {
    let s = summary(conn, &Filters::default())?;
    out.row([
        "id",
        "label",
        "starts_on",
        "ends_on",
        "budget",
        "covered",
        "remaining",
        "gift_count",
    ]);
    for p in s.periods {
        out.row([
            p.id.to_string(),
            text_cell(&p.label).into_owned(),
            p.starts_on.to_string(),
            p.ends_on.to_string(),
            p.budget.to_string(),
            p.covered.to_string(),
            p.remaining.to_string(),
            p.gift_count.to_string(),
        ]);
    }
    out.row([
        String::new(),
        "unallocated".into(),
        String::new(),
        String::new(),
        String::new(),
        s.unallocated.to_string(),
        String::new(),
        String::new(),
    ]);
    out.flush();
    Ok(())
}

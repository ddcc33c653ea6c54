//! Treasurer reports: CSV exports streamed from the database in pages (constant memory
//! whatever the row count), the JSON summary, and the cell rules that keep a spreadsheet safe.

pub mod audit;
pub mod csv_out;
pub mod disbursements;
pub mod donations;
pub mod ledger;
pub mod public;
pub mod summary;

use chrono::NaiveDate;
use serde::Deserialize;

use crate::db::models::PeriodRow;

/// Rows read per database round trip.
pub const PAGE: i64 = 1_000;

/// Which export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    /// One row per donation.
    Donations,
    /// One row per legal-fee period.
    Periods,
    /// Every ledger entry with its hash.
    Ledger,
}

impl Export {
    /// Parses `donations`, `periods` or `ledger`.
    pub fn parse(text: &str) -> Option<Export> {
        match text {
            "donations" => Some(Export::Donations),
            "periods" => Some(Export::Periods),
            "ledger" => Some(Export::Ledger),
            _ => None,
        }
    }

    /// The name used in URLs, file names and the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Export::Donations => "donations",
            Export::Periods => "periods",
            Export::Ledger => "ledger",
        }
    }
}

/// Filters of an export (all optional; dates inclusive, UTC).
#[derive(
    Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq, utoipa::IntoParams,
)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Filters {
    /// First day.
    pub from: Option<NaiveDate>,
    /// Last day.
    pub to: Option<NaiveDate>,
    /// Donation status.
    #[param(schema_with = crate::api_schema::donation_status)]
    pub status: Option<String>,
    /// Donation method.
    #[param(schema_with = crate::api_schema::donation_method)]
    pub method: Option<String>,
    /// Only donations allocated (in part) to this period.
    pub period: Option<i64>,
    /// `1`, `true` or `yes`: start with a UTF-8 byte-order mark so Excel reads UTF-8
    /// (Chinese names). Anything else: no mark.
    #[serde(default, deserialize_with = "flag")]
    #[param(value_type = Option<String>)]
    pub excel: bool,
}

fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v: Option<String> = Option::deserialize(d)?;
    Ok(matches!(v.as_deref(), Some("1" | "true" | "yes")))
}

impl Filters {
    /// True if `date` is within `from..=to`.
    pub fn covers(&self, date: NaiveDate) -> bool {
        self.from.is_none_or(|f| date >= f) && self.to.is_none_or(|t| date <= t)
    }
}

/// Spreads donations over the periods in the order they were recorded: each donation's
/// counted amount fills the periods (oldest first) after those before it, so the per-donation
/// splits add up to each period's coverage.
#[derive(Debug, Clone)]
pub struct Allocator {
    periods: Vec<PeriodRow>,
    filled: i64,
}

impl Allocator {
    /// Periods in allocation order (start date, then id).
    pub fn new(mut periods: Vec<PeriodRow>) -> Allocator {
        periods.sort_by_key(|p| (p.starts_on, p.id));
        Allocator { periods, filled: 0 }
    }

    /// The periods.
    pub fn periods(&self) -> &[PeriodRow] {
        &self.periods
    }

    /// Allocates the next donation's `counted` minor units: `(period index, amount)` pairs.
    pub fn next(&mut self, counted: i64) -> Vec<(usize, i64)> {
        let (start, end) = (self.filled, self.filled + counted.max(0));
        self.filled = end;
        let mut out = Vec::new();
        let mut lo = 0_i64;
        for (i, p) in self.periods.iter().enumerate() {
            let hi = lo + p.budget_minor;
            let overlap = end.min(hi) - start.max(lo);
            if overlap > 0 {
                out.push((i, overlap));
            }
            lo = hi;
            if lo >= end {
                break;
            }
        }
        out
    }
}

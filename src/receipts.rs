//! Year-end giving statements: one per donor with every gift of the year and the total,
//! queued through the outbox or written as files for review.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use chrono::TimeZone;
use chrono_tz::Tz;
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::config::Config;
use crate::db::DbConn;
use crate::db::schema::donations;
use crate::ledger::FundState;
use crate::mail::{self, templates::Templates};

mod send;
pub use send::Sent;

/// Statements queued per writer command.
const CHUNK: usize = 500;

/// One donor's year.
#[derive(Debug, Clone)]
pub struct Statement {
    /// Where it goes.
    pub email: String,
    /// Latest name the donor gave.
    pub donor_name: String,
    /// Latest language the donor chose.
    pub locale: String,
    /// `{date, amount, method, receipt_number}` per gift.
    pub gifts: Vec<Value>,
    /// Sum of what still counts of each gift, minor units.
    pub total_minor: i64,
}

type GiftRow = (
    i64,
    String,
    String,
    String,
    Option<chrono::NaiveDate>,
    Option<chrono::NaiveDateTime>,
    i64,
    i64,
    i64,
    String,
);

/// The UTC time of midnight starting 1 January `year` in `tz`.
fn new_year(year: i32, tz: Tz) -> anyhow::Result<chrono::NaiveDateTime> {
    let midnight = chrono::NaiveDate::from_ymd_opt(year, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .context("year out of range")?;
    Ok(tz
        .from_local_datetime(&midnight)
        .earliest()
        .context("no midnight on 1 January in FUND_TIMEZONE")?
        .naive_utc())
}

/// Every donor with at least one gift (still counting) in `year`, by email. A check counts in
/// the year of its `received_on` day; a card gift in the year of its moment of success in the
/// fund's time zone `tz` (a gift at 18:00 on 31 December in California is that year's).
pub fn statements(conn: &mut DbConn, year: i32, tz: Tz) -> anyhow::Result<Vec<Statement>> {
    let from = chrono::NaiveDate::from_ymd_opt(year, 1, 1).context("year out of range")?;
    let to = chrono::NaiveDate::from_ymd_opt(year + 1, 1, 1).context("year out of range")?;
    let (from_t, to_t) = (new_year(year, tz)?, new_year(year + 1, tz)?);
    let rows: Vec<GiftRow> = donations::table
        .filter(donations::status.eq("succeeded"))
        .filter(donations::email.is_not_null())
        .filter(
            donations::received_on
                .ge(from)
                .and(donations::received_on.lt(to))
                .or(donations::received_on
                    .is_null()
                    .and(donations::succeeded_at.ge(from_t))
                    .and(donations::succeeded_at.lt(to_t))),
        )
        .order(donations::id.asc())
        .select((
            donations::id,
            donations::email.assume_not_null(),
            donations::donor_name,
            donations::method,
            donations::received_on,
            donations::succeeded_at,
            donations::amount_minor,
            donations::refunded_minor,
            donations::disputed_minor,
            donations::locale,
        ))
        .load(conn)?;
    let currency = FundState::load(conn)
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?
        .currency;
    let mut by_donor: BTreeMap<String, Statement> = BTreeMap::new();
    for (id, email, name, method, received_on, succeeded_at, amount, refunded, disputed, locale) in
        rows
    {
        let counted = amount - refunded - disputed;
        if counted <= 0 {
            continue;
        }
        let date =
            received_on.or(succeeded_at.map(|t| t.and_utc().with_timezone(&tz).date_naive()));
        let s = by_donor
            .entry(email.to_lowercase())
            .or_insert_with(|| Statement {
                email: email.to_lowercase(),
                donor_name: String::new(),
                locale: String::new(),
                gifts: Vec::new(),
                total_minor: 0,
            });
        s.donor_name = name;
        s.locale = locale;
        s.total_minor += counted;
        s.gifts.push(json!({
            "date": date,
            "amount": currency.format(counted),
            "method": method,
            "receipt_number": mail::receipt_number(id),
        }));
    }
    Ok(by_donor.into_values().collect())
}

fn payload(s: &Statement, year: i32, currency: crate::money::Currency) -> Value {
    json!({
        "to": s.email,
        "donor_name": s.donor_name,
        "year": year,
        "gifts": s.gifts,
        "total": currency.format(s.total_minor),
        "currency": currency.code(),
        "correction": false,
    })
}

/// `receipts year-end`: queues the statements (`send`) or writes them to `out`. Sending a
/// year not over yet (in the fund's time zone) needs `force`.
pub fn year_end(
    config: &mut Config,
    year: i32,
    send: bool,
    out: Option<&Path>,
    force: bool,
) -> anyhow::Result<usize> {
    let tz = config.timezone;
    if send && !force {
        let today = chrono::Utc::now().with_timezone(&tz).date_naive();
        if chrono::Datelike::year(&today) <= year {
            anyhow::bail!(
                "the year {year} is not over in {tz} (FUND_TIMEZONE): statements sent now would \
                 miss the gifts still to come; to send them anyway, add --force"
            );
        }
    }
    let mut conn = crate::commands::connect(config)?;
    let fund = FundState::load(&mut conn).map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    let list = statements(&mut conn, year, tz)?;
    if send {
        let sent = send::queue(config, &mut conn, year, &list, fund.currency)?;
        println!(
            "{} statement(s) queued ({} new, {} correction(s) of a statement sent before), {} \
             unchanged since sent, for {year}",
            sent.new + sent.corrections,
            sent.new,
            sent.corrections,
            sent.unchanged
        );
        return Ok(sent.new + sent.corrections);
    }
    drop(conn);
    let total = list.len();
    let progress = |done: usize| {
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) || done == total {
            eprint!("\r{done}/{total} statements");
            if done == total {
                eprintln!();
            }
        }
    };
    let dir = out.map_or_else(
        || std::path::PathBuf::from(format!("year-end-{year}")),
        Path::to_path_buf,
    );
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let templates = Templates::load(config.mail.templates_dir.as_deref())?;
    for (i, s) in list.iter().enumerate() {
        let mut ctx = payload(s, year, fund.currency);
        mail::merge(
            &mut ctx,
            &mail::common_context(
                &config.mail,
                &fund.row.name,
                &config.public_base_url,
                &s.locale,
            ),
        );
        mail::merge(
            &mut ctx,
            &json!({ "no_goods_due": mail::no_goods_due("year_end", &Value::Null) }),
        );
        let r = templates
            .render("year_end", &s.locale, &ctx)
            .map_err(|e| anyhow::anyhow!("rendering the statement of {}: {e}", s.email))?;
        let slug: String = s
            .email
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let stem = dir.join(format!("{:05}-{slug}", i + 1));
        std::fs::write(
            stem.with_extension("txt"),
            format!("Subject: {}\nTo: {}\n\n{}", r.subject, s.email, r.text),
        )?;
        std::fs::write(stem.with_extension("html"), r.html)?;
        progress(i + 1);
    }
    println!(
        "{total} year-end statement(s) for {year} written to {}",
        dir.display()
    );
    Ok(total)
}

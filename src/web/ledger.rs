//! `GET /ledger`: the public ledger as a page (English and Simplified Chinese), rendered on
//! the server from the same public projection as `GET /api/public/ledger`; no script.
//! `?seq=N` shows the page holding entry N, highlighted (the link on each receipt).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{language, render};
use crate::error::AppError;
use crate::http::State;
use crate::reports::public::{PageFrom, PublicEntry, page};

/// Entries a page shows.
const PER_PAGE: i64 = 50;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ledger", web::get().to(ledger));
}

/// `?seq=` or `?before=` (and `lang`, read by `language`).
#[derive(Deserialize)]
struct LedgerQuery {
    seq: Option<i64>,
    before: Option<i64>,
}

/// What the "what" column says of a non-gift entry, from its public memo.
fn what(e: &PublicEntry) -> String {
    let memo: Value = serde_json::from_str(&e.hashed.public_memo).unwrap_or(Value::Null);
    let text = |k: &str| memo[k].as_str().unwrap_or_default().to_owned();
    match e.hashed.kind.as_str() {
        "disbursement" => [text("payee"), text("memo")]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" · "),
        "disbursement_void" => format!("#{} · {}", memo["voids"], text("payee")),
        "period" => format!(
            "{} ({} – {}, {})",
            text("label"),
            text("starts_on"),
            text("ends_on"),
            text("budget")
        ),
        "intake" => e.hashed.intake_after.clone(),
        _ => e.hashed.public_memo.clone(),
    }
}

async fn ledger(
    state: State,
    req: HttpRequest,
    q: web::Query<LedgerQuery>,
) -> Result<HttpResponse, AppError> {
    state.limits.public_ledger(&req)?;
    let lang = language(&req);
    let q = q.into_inner();
    let snap = state
        .writer
        .snapshot()
        .get()
        .ok_or_else(|| AppError::unavailable("no fund snapshot yet"))?;
    let last = snap.head.seq;
    // The page holding `seq` (newest first, `seq` near its middle), else the one asked.
    let before = match (q.seq, q.before) {
        (Some(s), _) if s >= 1 => (s + PER_PAGE / 2).min(last + 1),
        (_, Some(b)) if b >= 1 => b,
        _ => last + 1,
    };
    let currency = state.config.fund.currency;
    let names = state.config.public_donor_names;
    let entries = crate::http::with_conn(&state, move |c| {
        page(c, PageFrom::Before(before), PER_PAGE, currency, names)
    })
    .await?;
    let newest = entries.first().map_or(0, |e| e.hashed.seq);
    let oldest = entries.last().map_or(0, |e| e.hashed.seq);
    let rows: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "seq": e.hashed.seq,
                "time": e.hashed.created_at.get(..16).unwrap_or_default().replace('T', " "),
                "kind": e.hashed.kind,
                "donor": e.donor,
                "what": what(e),
                "amount": e.amount,
                "raised_after": e.raised_after,
                "balance_after": e.balance_after,
                "hash": e.hashed.hash,
            })
        })
        .collect();
    render(
        "ledger.html",
        lang,
        json!({
            "fund_name": snap.view.name,
            "currency": currency.code(),
            "head": snap.head,
            "entries": rows,
            "seq": q.seq.unwrap_or(0),
            "older": (oldest > 1).then_some(oldest),
            "newer": (newest < last).then_some((newest + PER_PAGE + 1).min(last + 1)),
            "base_url": state.config.public_base_url,
        }),
    )
}

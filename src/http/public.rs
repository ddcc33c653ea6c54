//! The public ledger's API: every entry's public projection, paged, and the head. No
//! credentials; pages are rate limited per address like donations (`RATE_LIMIT_PUBLIC_LEDGER`),
//! the head is served from memory like `/api/fund`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::{State, input, with_conn};
use crate::error::{AppError, ErrorCode};
use crate::reports::public::{PageFrom, PublicEntry, page};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/public/ledger", web::get().to(ledger))
        .route("/api/public/head", web::get().to(head));
}

/// Which page.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct LedgerQuery {
    /// Oldest first, the entries after this seq (0 for the first page).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// Newest first, the entries before this seq (the default: from the head).
    #[param(minimum = 1)]
    before: Option<i64>,
    /// Entries per page, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// A page of the public ledger.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct LedgerPage {
    /// Oldest first with `after`, newest first otherwise.
    entries: Vec<PublicEntry>,
    /// Ask `after=` this for the next page (oldest first), if there is one.
    next_after: Option<i64>,
    /// Ask `before=` this for the next page (newest first), if there is one.
    next_before: Option<i64>,
}

/// Every ledger entry's public fields: enough to recompute each hash and running total, and
/// never an email, address, staff name, reference or internal memo.
#[utoipa::path(
    get,
    path = "/api/public/ledger",
    operation_id = "public_ledger",
    tag = "public",
    params(LedgerQuery),
    responses((status = 200, description = "A page of entries", body = LedgerPage)),
)]
pub(super) async fn ledger(
    state: State,
    req: HttpRequest,
    q: web::Query<LedgerQuery>,
) -> Result<HttpResponse, AppError> {
    state.limits.public_ledger(&req)?;
    let LedgerQuery {
        after,
        before,
        limit,
    } = q.into_inner();
    let limit = input::page_limit(limit, 100, 500)?;
    let from = match (after, before) {
        (Some(_), Some(_)) => {
            return Err(AppError::invalid_field(
                "after",
                "send after or before, not both",
            ));
        }
        (Some(a), None) if a >= 0 => PageFrom::After(a),
        (None, Some(b)) if b >= 1 => PageFrom::Before(b),
        (None, None) => PageFrom::Before(i64::MAX),
        _ => return Err(AppError::invalid_field("after", "a seq is 0 or more")),
    };
    let currency = state.config.fund.currency;
    let names = state.config.public_donor_names;
    let entries = with_conn(&state, move |c| page(c, from, limit, currency, names)).await?;
    let full = i64::try_from(entries.len()).unwrap_or(0) == limit;
    let (next_after, next_before) = match from {
        PageFrom::After(_) => (entries.last().filter(|_| full).map(|e| e.hashed.seq), None),
        PageFrom::Before(_) => (
            None,
            entries
                .last()
                .filter(|e| full && e.hashed.seq > 1)
                .map(|e| e.hashed.seq),
        ),
    };
    Ok(HttpResponse::Ok().json(LedgerPage {
        entries,
        next_after,
        next_before,
    }))
}

/// The head of the ledger: `{seq, hash, raised, balance, at}`. The hash names every entry
/// before it (Certificate Transparency's signed tree head, without the signature).
#[utoipa::path(
    get,
    path = "/api/public/head",
    operation_id = "public_head",
    tag = "public",
    responses((status = 200, description = "The head", body = crate::ledger::PublicHead)),
)]
pub(super) async fn head(state: State) -> Result<HttpResponse, AppError> {
    let snapshot = state
        .writer
        .snapshot()
        .get()
        .ok_or_else(|| AppError::new(ErrorCode::Unavailable, "the ledger is not loaded yet"))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(snapshot.head_json.clone()))
}

//! Treasurer reports over HTTP: CSV streamed as it is read, and the JSON summary. Every
//! export is written to the audit log first.

use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};

use super::{Staff, State, input, with_conn};
use crate::auth::Role;
use crate::error::{AppError, ErrorCode};
use crate::ledger::ops::RecordAudit;
use crate::reports::csv_out::ChunkedCsv;
use crate::reports::{self, Export, Filters};

/// Bytes per streamed chunk.
const CHUNK: usize = 64 * 1024;
/// Chunks buffered between the database reader and the socket (backpressure beyond that).
const IN_FLIGHT: usize = 4;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/reports/donations.csv", web::get().to(donations))
        .route("/api/reports/periods.csv", web::get().to(periods))
        .route("/api/reports/ledger.csv", web::get().to(ledger))
        .route("/api/reports/summary", web::get().to(summary))
        .route("/api/reports/payouts", web::get().to(payouts));
}

/// One row per donation, streamed as it is read.
#[utoipa::path(
    get,
    path = "/api/reports/donations.csv",
    operation_id = "donations_csv",
    tag = "treasurer",
    security(("bearer" = [])),
    params(Filters),
    responses((status = 200, description = "RFC 4180 CSV, UTF-8", content_type = "text/csv", body = String)),
)]
pub(super) async fn donations(
    staff: Staff,
    state: State,
    q: web::Query<Filters>,
) -> Result<HttpResponse, AppError> {
    export(staff, state, Export::Donations, q.into_inner()).await
}

/// One row per legal-fee period (and unallocated).
#[utoipa::path(
    get,
    path = "/api/reports/periods.csv",
    operation_id = "periods_csv",
    tag = "treasurer",
    security(("bearer" = [])),
    params(Filters),
    responses((status = 200, description = "RFC 4180 CSV, UTF-8", content_type = "text/csv", body = String)),
)]
pub(super) async fn periods(
    staff: Staff,
    state: State,
    q: web::Query<Filters>,
) -> Result<HttpResponse, AppError> {
    export(staff, state, Export::Periods, q.into_inner()).await
}

/// Every ledger entry with its hash; refunds and disputes as negative rows.
#[utoipa::path(
    get,
    path = "/api/reports/ledger.csv",
    operation_id = "ledger_csv",
    tag = "treasurer",
    security(("bearer" = [])),
    params(Filters),
    responses((status = 200, description = "RFC 4180 CSV, UTF-8", content_type = "text/csv", body = String)),
)]
pub(super) async fn ledger(
    staff: Staff,
    state: State,
    q: web::Query<Filters>,
) -> Result<HttpResponse, AppError> {
    export(staff, state, Export::Ledger, q.into_inner()).await
}

/// Records the export in the audit log.
pub(crate) async fn audit(
    state: &State,
    actor: String,
    export: &str,
    filters: &Filters,
) -> Result<(), AppError> {
    state
        .writer
        .submit(RecordAudit {
            actor,
            action: "report.export".into(),
            detail: serde_json::json!({ "export": export, "filters": filters }),
        })
        .await
}

#[tracing::instrument(skip_all, fields(export = kind.name()))]
async fn export(
    staff: Staff,
    state: State,
    kind: Export,
    filters: Filters,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Treasurer)?;
    // Donors' names, emails and addresses: an export needs a recent password or code.
    let staff = if matches!(kind, Export::Donations) {
        staff.require_recent()?
    } else {
        staff
    };
    check_filters(&filters)?;
    audit(&state, staff.email, kind.name(), &filters).await?;
    stream_csv(
        &state,
        kind.name(),
        filters.excel,
        move |conn, out| match kind {
            Export::Donations => reports::donations::export(conn, &filters, out, &mut |_| {}),
            Export::Ledger => reports::ledger::export(conn, &filters, out, &mut |_| {}),
            Export::Periods => reports::summary::export_periods(conn, out),
        },
    )
    .await
}

/// What a CSV producer writes into.
pub(super) type CsvOut = ChunkedCsv<Box<dyn FnMut(Vec<u8>) -> bool + Send>>;

/// Streams the CSV `produce` writes, as `name.csv`, read on a pooled connection in a blocking
/// thread with backpressure (at most [`IN_FLIGHT`] chunks buffered).
pub(super) async fn stream_csv<P>(
    state: &State,
    name: &'static str,
    bom: bool,
    produce: P,
) -> Result<HttpResponse, AppError>
where
    P: FnOnce(&mut crate::db::DbConn, &mut CsvOut) -> Result<(), AppError> + Send + 'static,
{
    // Take the connection before answering, so an outage is a 503 and not a cut-off file.
    let pool = state.pool.clone();
    let mut conn = web::block(move || pool.get()).await??;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let sink: Box<dyn FnMut(Vec<u8>) -> bool + Send> =
            Box::new(move |chunk| tx.blocking_send(Bytes::from(chunk)).is_ok());
        let mut out = ChunkedCsv::new(sink, bom, CHUNK);
        if let Err(e) = produce(&mut conn, &mut out) {
            // Headers are sent: the file ends early, and the client sees a truncated body.
            tracing::error!(error = %e.detail, "export failed midway");
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, actix_web::Error>(b), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}.csv\""),
        ))
        .insert_header(("Cache-Control", "no-store"))
        .streaming(body))
}

/// `status` and `method` name values a donation can have.
fn check_filters(filters: &Filters) -> Result<(), AppError> {
    input::one_of("status", filters.status.as_deref(), &input::STATUSES)?;
    input::one_of("method", filters.method.as_deref(), &input::METHODS)
}

/// Raised against the target, per period and per day.
#[utoipa::path(
    get,
    path = "/api/reports/summary",
    operation_id = "summary",
    tag = "treasurer",
    security(("bearer" = [])),
    params(Filters),
    responses((status = 200, description = "Totals", body = reports::summary::Summary)),
)]
pub(super) async fn summary(
    staff: Staff,
    state: State,
    q: web::Query<Filters>,
) -> Result<HttpResponse, AppError> {
    staff.require(Role::Treasurer)?;
    let filters = q.into_inner();
    check_filters(&filters)?;
    let s = with_conn(&state, move |c| reports::summary::summary(c, &filters)).await?;
    Ok(HttpResponse::Ok().json(s))
}

/// A Stripe payout and its reconciliation with the ledger.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct PayoutView {
    /// `po_...`.
    id: String,
    amount: crate::money::Money,
    currency: String,
    /// Stripe's status (`pending`, `in_transit`, `paid`, `failed`, `canceled`).
    status: String,
    arrival_date: Option<chrono::NaiveDate>,
    /// When it was last reconciled (UTC, ISO 8601).
    reconciled_at: Option<String>,
    matched: i32,
    missing_in_ledger: i32,
    missing_in_stripe: i32,
    differences: i32,
    /// Reconciled and nothing missing or different.
    balanced: bool,
    /// The reconciliation's details, line by line.
    #[schema(value_type = Object)]
    report: serde_json::Value,
}

/// `GET /api/reports/payouts`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct Payouts {
    /// Newest first, at most `limit`.
    payouts: Vec<PayoutView>,
    /// Pass as `before` for the next page; absent on the last page.
    next_before: Option<String>,
}

/// Most payouts one page of `GET /api/reports/payouts` returns.
pub const MAX_PAYOUTS_PAGE: i64 = 500;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct PayoutsQuery {
    /// Payouts per page (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// Payouts older than this one (the `next_before` of the previous page).
    before: Option<String>,
}

/// Each payout Stripe told us of, newest first, with its status and the result of its
/// reconciliation; paged by `limit` and `before`.
#[utoipa::path(
    get,
    path = "/api/reports/payouts",
    tag = "treasurer",
    security(("bearer" = [])),
    params(PayoutsQuery),
    responses((status = 200, description = "Payouts", body = Payouts)),
)]
pub(super) async fn payouts(
    staff: Staff,
    state: State,
    q: web::Query<PayoutsQuery>,
) -> Result<HttpResponse, AppError> {
    use crate::db::models::PayoutRow;
    use crate::db::schema::payouts;
    use diesel::prelude::*;

    staff.require(Role::Treasurer)?;
    let q = q.into_inner();
    let limit = super::input::page_limit(q.limit, 100, MAX_PAYOUTS_PAGE)?;
    let rows: Vec<PayoutRow> = with_conn(&state, move |c| {
        let mut query = payouts::table
            .order((payouts::created.desc(), payouts::id.desc()))
            .limit(limit)
            .select(PayoutRow::as_select())
            .into_boxed();
        if let Some(before) = q.before {
            let created: i64 = payouts::table
                .find(&before)
                .select(payouts::created)
                .first(c)
                .optional()?
                .ok_or_else(|| AppError::new(ErrorCode::NotFound, "before names no payout"))?;
            query = query.filter(
                payouts::created
                    .lt(created)
                    .or(payouts::created.eq(created).and(payouts::id.lt(before))),
            );
        }
        Ok(query.load(c)?)
    })
    .await?;
    let next_before = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|p| p.id.clone()))
        .flatten();
    let payouts: Vec<PayoutView> = rows
        .into_iter()
        .map(|p| {
            let c = crate::money::Currency::from_code(&p.currency)
                .unwrap_or(state.config.fund.currency);
            PayoutView {
                amount: crate::money::Money::new(p.amount_minor, c),
                arrival_date: p
                    .arrival_date
                    .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                    .map(|t| t.date_naive()),
                reconciled_at: p.reconciled_at.map(crate::reports::donations::iso),
                balanced: p.reconciled_at.is_some()
                    && p.missing_in_ledger == 0
                    && p.missing_in_stripe == 0
                    && p.differences == 0,
                report: serde_json::from_str(&p.report).unwrap_or(serde_json::Value::Null),
                id: p.id,
                currency: p.currency,
                status: p.status,
                matched: p.matched,
                missing_in_ledger: p.missing_in_ledger,
                missing_in_stripe: p.missing_in_stripe,
                differences: p.differences,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(Payouts {
        payouts,
        next_before,
    }))
}

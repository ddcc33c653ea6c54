//! The admins' view of the outbox: counts, and retrying the rows that gave up.

use actix_web::{HttpResponse, web};

use super::{Staff, State, with_conn};
use crate::auth::Role;
use crate::error::AppError;
use crate::mail::outbox;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/outbox", web::get().to(counts))
        .route("/api/admin/outbox/retry", web::post().to(retry));
}

/// Outbox totals.
#[utoipa::path(
    get,
    path = "/api/admin/outbox",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "Counts by state", body = outbox::OutboxCounts)),
)]
pub(super) async fn counts(staff: Staff, state: State) -> Result<HttpResponse, AppError> {
    staff.require(Role::Admin)?;
    let counts = with_conn(&state, outbox::counts).await?;
    Ok(HttpResponse::Ok().json(counts))
}

/// `POST /api/admin/outbox/retry`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct Retried {
    /// Failed emails queued again.
    retried: usize,
    /// The outbox afterwards.
    outbox: outbox::OutboxCounts,
}

/// Queues every failed email again.
#[utoipa::path(
    post,
    path = "/api/admin/outbox/retry",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "Queued again", body = Retried)),
)]
#[tracing::instrument(skip_all)]
pub(super) async fn retry(staff: Staff, state: State) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Admin)?;
    let now = crate::db::now();
    let n = with_conn(&state, move |c| outbox::retry_failed(c, now)).await?;
    tracing::info!(actor = %staff.email, rows = n, "failed emails queued again");
    let counts = with_conn(&state, outbox::counts).await?;
    Ok(HttpResponse::Ok().json(Retried {
        retried: n,
        outbox: counts,
    }))
}

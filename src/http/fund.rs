//! Public progress of the fund, served from the writer's in-memory snapshot, and liveness.

use actix_web::{HttpResponse, web};

use super::State;
use crate::error::AppError;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/fund", web::get().to(fund))
        .route("/healthz", web::get().to(healthz));
}

/// Bytes already serialised by the writer: no I/O, no locking beyond an `Arc` clone.
#[utoipa::path(
    get,
    path = "/api/fund",
    tag = "public",
    responses((status = 200, description = "The fund's progress", body = crate::ledger::FundView)),
)]
pub(super) async fn fund(state: State) -> Result<HttpResponse, AppError> {
    fund_response(&state)
}

/// The fund document as published after the last commit (also the answer of the admin
/// routes that change the fund).
pub(super) fn fund_response(state: &State) -> Result<HttpResponse, AppError> {
    let snap = state
        .writer
        .snapshot()
        .get()
        .ok_or_else(|| AppError::unavailable("no fund snapshot yet"))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-cache"))
        .body(snap.json.clone()))
}

/// `GET /healthz`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct Health {
    /// Always `ok`.
    #[schema(pattern = "^ok$")]
    status: &'static str,
}

/// Liveness: the process answers HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "public",
    responses((status = 200, description = "The process is up", body = Health)),
)]
pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

//! Public progress of the fund, served from the writer's in-memory snapshot; liveness and
//! readiness.

use actix_web::{HttpResponse, web};

use super::{State, with_conn};
use crate::error::{AppError, ErrorCode};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/fund", web::get().to(fund))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
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

/// `GET /readyz`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct Ready {
    /// Always `ready`.
    #[schema(pattern = "^ready$")]
    status: &'static str,
}

/// Readiness: the database answers and has every migration this binary knows (a load
/// balancer sends traffic only then). `/healthz` stays liveness: it never touches the database.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "public",
    responses((status = 200, description = "Ready to take traffic", body = Ready)),
)]
pub(super) async fn readyz(state: State) -> Result<HttpResponse, AppError> {
    let pending = with_conn(&state, |c| {
        crate::db::pending_migrations(c).map_err(|e| AppError::unavailable(e.to_string()))
    })
    .await?;
    if pending > 0 {
        return Err(AppError::new(
            ErrorCode::Unavailable,
            format!("{pending} migration(s) of this version are not applied yet"),
        ));
    }
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-cache"))
        .json(Ready { status: "ready" }))
}

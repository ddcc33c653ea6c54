//! Public progress of the fund, served from the writer's in-memory snapshot, and liveness.

use actix_web::{HttpResponse, web};

use super::State;
use crate::error::AppError;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/fund", web::get().to(fund))
        .route("/healthz", web::get().to(healthz));
}

/// Bytes already serialised by the writer: no I/O, no locking beyond an `Arc` clone.
async fn fund(state: State) -> Result<HttpResponse, AppError> {
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

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

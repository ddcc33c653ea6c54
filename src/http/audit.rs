//! The audit trail for admins: a page at a time (`GET /api/admin/audit`) and as CSV
//! (`GET /api/reports/audit.csv`, itself recorded in the trail, like every export).

use actix_web::{HttpResponse, web};

use super::reports::{audit as record_export, stream_csv};
use super::{Staff, State, with_conn};
use crate::auth::Role;
use crate::error::AppError;
use crate::reports::Filters;
use crate::reports::audit::{self, AuditPage, AuditQuery};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/audit", web::get().to(list))
        .route("/api/reports/audit.csv", web::get().to(csv));
}

/// A page of the audit trail, oldest first; `next_after` names the next page.
#[utoipa::path(
    get,
    path = "/api/admin/audit",
    operation_id = "audit",
    tag = "admin",
    security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, description = "A page of the audit trail", body = AuditPage)),
)]
pub(super) async fn list(
    staff: Staff,
    state: State,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, AppError> {
    staff.require(Role::Admin)?;
    let q = q.into_inner();
    let page = with_conn(&state, move |c| audit::page(c, &q)).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// The filtered audit trail as CSV (`id,at,actor,action,detail`), streamed.
#[utoipa::path(
    get,
    path = "/api/reports/audit.csv",
    operation_id = "audit_csv",
    tag = "admin",
    security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, description = "RFC 4180 CSV, UTF-8", content_type = "text/csv", body = String)),
)]
pub(super) async fn csv(
    staff: Staff,
    state: State,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Admin)?;
    let q = q.into_inner();
    let filters = Filters {
        from: q.from,
        to: q.to,
        ..Filters::default()
    };
    record_export(&state, staff.email, "audit", &filters).await?;
    let bom = matches!(q.excel.as_deref(), Some("1" | "true" | "yes"));
    stream_csv(&state, "audit", bom, move |conn, out| {
        audit::export(conn, &q, out)
    })
    .await
}

//! Erase on request, for admins: `POST /api/admin/donors/erase` (see `ledger::erase`).

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{Staff, State, input};
use crate::auth::Role;
use crate::error::AppError;
use crate::ledger::erase::EraseDonor;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    use super::{JSON_LIMIT, with_body_limit};
    use actix_web::http::Method;
    cfg.service(with_body_limit("/api/admin/donors/erase", Method::POST, JSON_LIMIT).to(erase));
}

/// Whom to erase.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EraseRequest {
    /// The address the donor gave with.
    #[schema(format = "email", max_length = 254)]
    email: String,
}

/// Erases a donor's name and address from every gift and email; amounts, dates, methods and
/// the ledger entries stay (so `verify` passes and totals are unchanged). 409
/// `donor_has_open_gifts` while one of their gifts is pending or disputed.
#[utoipa::path(
    post,
    path = "/api/admin/donors/erase",
    tag = "admin",
    security(("bearer" = [])),
    request_body = EraseRequest,
    responses((status = 200, description = "Erased: `{erased: N}` gifts")),
)]
pub(super) async fn erase(
    staff: Staff,
    state: State,
    body: input::JsonObject<EraseRequest>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Admin)?.require_recent()?;
    let email = crate::lookup::normalize(&body.into_inner().email);
    if crate::auth::Email::parse(&email).is_none() {
        return Err(AppError::invalid_field(
            "email",
            "email is not an email address",
        ));
    }
    let erased = state
        .writer
        .submit(EraseDonor {
            email,
            actor: staff.email,
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "erased": erased })))
}

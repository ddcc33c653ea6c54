//! Admin actions: intake switch, fund name and target, legal-fee periods. All go through
//! the writer and its audit log. Refunds are in `refunds`.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::fund::fund_response;
use super::{Staff, State, input};
use crate::auth::Role;
use crate::error::AppError;
use crate::ledger::ops::{PeriodInput, SavePeriod, SetIntake, UpdateFund};
use crate::money::Money;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    use super::{JSON_LIMIT, with_body_limit};
    use actix_web::http::Method;
    cfg.service(with_body_limit("/api/admin/intake", Method::PUT, JSON_LIMIT).to(set_intake))
        .service(with_body_limit("/api/admin/fund", Method::PUT, JSON_LIMIT).to(update_fund))
        .service(with_body_limit("/api/admin/periods", Method::POST, JSON_LIMIT).to(add_period))
        .service(
            with_body_limit("/api/admin/periods/{id}", Method::PUT, JSON_LIMIT).to(update_period),
        );
}

/// Opens or pauses intake.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct IntakeRequest {
    /// True reopens (409 `target_reached` while raised meets the target); false pauses.
    accepting: bool,
    /// Shown to donors while paused (trimmed; no control characters).
    #[serde(default)]
    #[schema(
        max_length = 1000,
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x09\x0b-\x1f\x7f-\x9f]*[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    message: Option<String>,
}

/// Pauses or reopens intake, with a public message.
#[utoipa::path(
    put,
    path = "/api/admin/intake",
    tag = "admin",
    security(("bearer" = [])),
    request_body = IntakeRequest,
    responses((status = 200, description = "The fund after the change", body = crate::ledger::FundView)),
)]
#[tracing::instrument(skip_all)]
pub(super) async fn set_intake(
    staff: Staff,
    state: State,
    body: input::JsonObject<IntakeRequest>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Admin)?;
    let body = body.into_inner();
    let message =
        input::optional_text("message", body.message.as_deref(), 1000)?.unwrap_or_default();
    state
        .writer
        .submit(SetIntake {
            accepting: body.accepting,
            message,
            actor: staff.email,
        })
        .await?;
    fund_response(&state)
}

/// Renames the fund or changes its target.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct FundRequest {
    /// The fund's name (trimmed; no control characters).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x09\x0b-\x1f\x7f-\x9f]*[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f][^\x00-\x09\x0b-\x1f\x7f-\x9f]*[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    name: Option<String>,
    /// A positive target; at or below raised closes intake at once.
    #[schema(value_type = Option<super::openapi::AmountInput>)]
    target: Option<serde_json::Value>,
}

/// Renames the fund or changes its target (recorded in the ledger).
#[utoipa::path(
    put,
    path = "/api/admin/fund",
    tag = "admin",
    security(("bearer" = [])),
    request_body = FundRequest,
    responses((status = 200, description = "The fund after the change", body = crate::ledger::FundView)),
)]
#[tracing::instrument(skip_all)]
pub(super) async fn update_fund(
    staff: Staff,
    state: State,
    body: input::JsonObject<FundRequest>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Admin)?;
    let body = body.into_inner();
    // A target change moves when intake closes: it needs a recent password or code.
    let staff = if body.target.is_some() {
        staff.require_recent()?
    } else {
        staff
    };
    let name = match body.name {
        Some(n) => Some(input::text("name", &n, 200)?),
        None => None,
    };
    let target_minor = match &body.target {
        Some(t) => Some(positive_amount(&state, "target", t)?),
        None => None,
    };
    state
        .writer
        .submit(UpdateFund {
            name,
            target_minor,
            actor: staff.email,
        })
        .await?;
    fund_response(&state)
}

/// A positive amount of the fund's currency with no upper bound but the parser's.
pub(super) fn positive_amount(
    state: &State,
    field: &str,
    value: &serde_json::Value,
) -> Result<i64, AppError> {
    let bounds = crate::money::AmountBounds {
        min_minor: 1,
        max_minor: i64::MAX,
    };
    input::amount(field, value, state.config.fund.currency, bounds).map(|a| a.minor())
}

/// A legal-fee period.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PeriodRequest {
    /// e.g. "August 2020" (trimmed; no control characters).
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x09\x0b-\x1f\x7f-\x9f]*[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f][^\x00-\x09\x0b-\x1f\x7f-\x9f]*[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    label: String,
    /// First day.
    #[schema(value_type = chrono::NaiveDate)]
    starts_on: String,
    /// Last day, not before `starts_on`.
    #[schema(value_type = chrono::NaiveDate)]
    ends_on: String,
    /// The fees owed for it (positive).
    #[schema(value_type = super::openapi::AmountInput)]
    budget: serde_json::Value,
}

/// A saved period.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct PeriodSaved {
    id: i64,
    label: String,
    starts_on: chrono::NaiveDate,
    ends_on: chrono::NaiveDate,
    budget: Money,
}

fn parse_period(state: &State, body: PeriodRequest) -> Result<PeriodInput, AppError> {
    let starts_on = input::date("starts_on", &body.starts_on)?;
    let ends_on = input::date("ends_on", &body.ends_on)?;
    if ends_on < starts_on {
        return Err(AppError::invalid_field(
            "ends_on",
            "ends_on is before starts_on",
        ));
    }
    Ok(PeriodInput {
        label: input::text("label", &body.label, 100)?,
        starts_on,
        ends_on,
        budget_minor: positive_amount(state, "budget", &body.budget)?,
    })
}

async fn save_period(
    staff: Staff,
    state: State,
    id: Option<i64>,
    body: PeriodRequest,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Admin)?;
    let period = parse_period(&state, body)?;
    let row = state
        .writer
        .submit(SavePeriod {
            id,
            period,
            actor: staff.email,
        })
        .await?;
    let c = state.config.fund.currency;
    let body = PeriodSaved {
        id: row.id,
        label: row.label,
        starts_on: row.starts_on,
        ends_on: row.ends_on,
        budget: Money::new(row.budget_minor, c),
    };
    Ok(if id.is_some() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::Created().json(body)
    })
}

/// Adds a legal-fee period.
#[utoipa::path(
    post,
    path = "/api/admin/periods",
    tag = "admin",
    security(("bearer" = [])),
    request_body = PeriodRequest,
    responses((status = 201, description = "Added", body = PeriodSaved)),
)]
#[tracing::instrument(skip_all)]
pub(super) async fn add_period(
    staff: Staff,
    state: State,
    body: input::JsonObject<PeriodRequest>,
) -> Result<HttpResponse, AppError> {
    save_period(staff, state, None, body.into_inner()).await
}

/// Changes a legal-fee period.
#[utoipa::path(
    put,
    path = "/api/admin/periods/{id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The period")),
    request_body = PeriodRequest,
    responses((status = 200, description = "Saved", body = PeriodSaved)),
)]
#[tracing::instrument(skip_all)]
pub(super) async fn update_period(
    staff: Staff,
    state: State,
    id: web::Path<i64>,
    body: input::JsonObject<PeriodRequest>,
) -> Result<HttpResponse, AppError> {
    save_period(staff, state, Some(id.into_inner()), body.into_inner()).await
}

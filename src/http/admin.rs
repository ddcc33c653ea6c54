//! Admin actions: intake switch, fund name and target, legal-fee periods. All go through
//! the writer and its audit log.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{Staff, State, input};
use crate::auth::Role;
use crate::error::AppError;
use crate::ledger::ops::{PeriodInput, SavePeriod, SetIntake, UpdateFund};
use crate::ledger::refund::RecordRefund;
use crate::money::Money;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/intake", web::put().to(set_intake))
        .route("/api/admin/fund", web::put().to(update_fund))
        .route("/api/admin/periods", web::post().to(add_period))
        .route("/api/admin/periods/{id}", web::put().to(update_period))
        .route("/api/admin/donations/{id}/refund", web::post().to(refund));
}

fn fund_response(state: &State) -> Result<HttpResponse, AppError> {
    let snap = state
        .writer
        .snapshot()
        .get()
        .ok_or_else(|| AppError::unavailable("no fund snapshot yet"))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(snap.json.clone()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IntakeRequest {
    accepting: bool,
    #[serde(default)]
    message: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn set_intake(
    staff: Staff,
    state: State,
    body: web::Json<IntakeRequest>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FundRequest {
    name: Option<String>,
    target: Option<serde_json::Value>,
}

#[tracing::instrument(skip_all)]
async fn update_fund(
    staff: Staff,
    state: State,
    body: web::Json<FundRequest>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Admin)?;
    let body = body.into_inner();
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
fn positive_amount(state: &State, field: &str, value: &serde_json::Value) -> Result<i64, AppError> {
    let bounds = crate::money::AmountBounds {
        min_minor: 1,
        max_minor: i64::MAX,
    };
    input::amount(field, value, state.config.fund.currency, bounds).map(|a| a.minor())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeriodRequest {
    label: String,
    starts_on: String,
    ends_on: String,
    budget: serde_json::Value,
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
    let body = serde_json::json!({
        "id": row.id,
        "label": row.label,
        "starts_on": row.starts_on,
        "ends_on": row.ends_on,
        "budget": Money::new(row.budget_minor, c),
    });
    Ok(if id.is_some() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::Created().json(body)
    })
}

#[tracing::instrument(skip_all)]
async fn add_period(
    staff: Staff,
    state: State,
    body: web::Json<PeriodRequest>,
) -> Result<HttpResponse, AppError> {
    save_period(staff, state, None, body.into_inner()).await
}

#[tracing::instrument(skip_all)]
async fn update_period(
    staff: Staff,
    state: State,
    id: web::Path<i64>,
    body: web::Json<PeriodRequest>,
) -> Result<HttpResponse, AppError> {
    save_period(staff, state, Some(id.into_inner()), body.into_inner()).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundRequest {
    amount: Option<serde_json::Value>,
    reason: String,
}

/// Refunds an offline gift by recording it (the money goes back outside the system).
#[tracing::instrument(skip_all)]
async fn refund(
    staff: Staff,
    state: State,
    id: web::Path<i64>,
    body: web::Json<RefundRequest>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Admin)?;
    let body = body.into_inner();
    let amount_minor = match &body.amount {
        Some(a) => Some(positive_amount(&state, "amount", a)?),
        None => None,
    };
    let outcome = state
        .writer
        .submit(RecordRefund {
            donation_id: id.into_inner(),
            amount_minor,
            reason: input::text("reason", &body.reason, 500)?,
            actor: staff.email,
        })
        .await?;
    Ok(HttpResponse::Ok().json(outcome))
}

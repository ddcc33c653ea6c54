//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the HTTP API, generated with utoipa
//! from the handlers' `#[utoipa::path]` annotations and the request and response types.
//!
//! Two parts are added here because they cut across handlers: every operation's problem+json
//! answers (one response per status, whose `code` lists exactly what the route can answer
//! with, from [`problems::PROBLEMS`]), and the amount patterns of the fund's currency. The same document
//! answers 405 with an `Allow` header for a method a documented path does not serve.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};
use utoipa::openapi::security;
use utoipa::{OpenApi, ToSchema};

use super::State;
use crate::api_schema::{amount_input_pattern, money_pattern};
use crate::error::ErrorCode;
use crate::money::{Currency, Money};

mod problems;

pub use crate::api_schema::{
    AmountInput, donation_method, donation_status, one_of, one_of_or_null, optional_email,
};
pub use problems::problem_codes;
use problems::problem_response;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/openapi.json", web::get().to(openapi_json));
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "crowdledger",
        description = "The donation ledger of a legal-defense fund. Amounts are decimal strings \
                       with exactly the currency's minor digits; errors are \
                       application/problem+json with a stable `code`.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    paths(
        super::fund::fund,
        super::fund::healthz,
        super::fund::readyz,
        openapi_json,
        super::auth::login,
        super::auth::mfa,
        super::auth::account::me,
        super::auth::account::enrol,
        super::auth::account::confirm,
        super::auth::account::recovery_codes,
        super::auth::account::reauth,
        super::auth::account::change_password,
        super::auth::session_routes::logout,
        super::auth::session_routes::list,
        super::auth::session_routes::end,
        super::users::list,
        super::users::create,
        super::users::update,
        super::users::end_sessions,
        super::disbursements::record,
        super::disbursements::list,
        super::disbursements::void,
        super::disbursements::approve,
        super::disbursements::reject,
        super::disbursements::csv,
        super::public::ledger,
        super::public::head,
        super::payments::create_donation,
        super::payments::donation_status,
        super::payments::stripe_webhook,
        super::donations::record_offline,
        super::donations::list,
        super::admin::set_intake,
        super::admin::update_fund,
        super::admin::add_period,
        super::admin::update_period,
        super::refunds::refund,
        super::approvals::list,
        super::approvals::approve,
        super::approvals::reject,
        super::audit::list,
        super::audit::csv,
        super::donors::erase,
        super::outbox::counts,
        super::outbox::retry,
        super::reports::donations,
        super::reports::periods,
        super::reports::ledger,
        super::reports::summary,
        super::reports::payouts,
        crate::web::charts::daily,
        crate::web::charts::periods,
    ),
    components(schemas(Problem, ErrorCode)),
    modifiers(&BearerScheme),
    tags(
        (name = "public", description = "The donation page's API: no credentials"),
        (name = "treasurer", description = "Offline gifts, donations, reports (treasurer or admin)"),
        (name = "admin", description = "Intake, fund, periods, refunds, outbox, staff (admin)"),
        (name = "staff", description = "The signed-in account: second factor, sessions, password"),
        (name = "stripe", description = "Stripe's signed webhooks"),
    ),
)]
struct ApiDoc;

/// The name of the bearer security scheme, as the handlers' `security(...)` name it.
pub const BEARER: &str = "bearer";

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            security::SecurityScheme::Http(
                security::HttpBuilder::new()
                    .scheme(security::HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from POST /api/auth/login (HS256, 1 h). No or a bad \
                         token: 401; a role that may not: 403.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The problem+json document every error is (see `crate::error`).
#[derive(ToSchema)]
#[schema(title = "Problem")]
#[expect(dead_code, reason = "a schema only: errors are rendered by AppError")]
struct Problem {
    /// Always `about:blank`.
    #[schema(rename = "type", examples("about:blank"))]
    kind: String,
    /// Short human title of the code.
    title: String,
    /// The HTTP status.
    status: u16,
    /// The stable machine code.
    code: ErrorCode,
    /// What went wrong, for a person.
    detail: String,
    /// The request field at fault (`invalid_request`, `invalid_amount`).
    field: Option<String>,
    /// What can still be refunded (`refund_exceeds_remaining`).
    refundable: Option<Money>,
    /// What is left to raise (`exceeds_remaining`).
    remaining: Option<Money>,
    /// What payments under way reserve (`target_below_reserved`).
    reserved: Option<Money>,
    /// The lowest target possible now (`target_below_reserved`).
    minimum: Option<Money>,
}

/// The document for a fund kept in `currency`.
pub fn document(currency: Currency) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let digits = currency.digits();
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        if let Some(s) = schemas.get_mut("Amount") {
            s["pattern"] = json!(money_pattern(digits));
        }
        if let Some(s) = schemas.get_mut("AmountInput") {
            s["pattern"] = json!(amount_input_pattern(digits));
        }
    }
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
                for code in problem_codes(method, path) {
                    by_status
                        .entry(code.status().as_u16())
                        .or_default()
                        .push(code);
                }
                for (status, codes) in by_status {
                    op["responses"][status.to_string()] = problem_response(status, &codes);
                }
            }
        }
    }
    doc
}

/// The document as served, for the fund's configured currency.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "public",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object)),
)]
async fn openapi_json(state: State) -> HttpResponse {
    let currency = state.config.fund.currency;
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-cache"))
        .json(document(currency))
}

/// Documented paths (templates split into segments) and their methods, upper case.
static ROUTES: LazyLock<Vec<(Vec<String>, Vec<String>)>> = LazyLock::new(|| {
    let doc = document(Currency::USD);
    doc.get("paths")
        .and_then(Value::as_object)
        .map(|paths| {
            paths
                .iter()
                .map(|(path, item)| {
                    let segments = path.split('/').map(str::to_owned).collect();
                    let methods = item
                        .as_object()
                        .map(|ops| ops.keys().map(|m| m.to_ascii_uppercase()).collect())
                        .unwrap_or_default();
                    (segments, methods)
                })
                .collect()
        })
        .unwrap_or_default()
});

/// The methods the API serves at `path`, if it is a documented path (`{id}` matches any
/// segment); `None` for a path the document does not have.
pub fn allowed_methods(path: &str) -> Option<Vec<String>> {
    let given: Vec<&str> = path.split('/').collect();
    ROUTES.iter().find_map(|(segments, methods)| {
        let matches = segments.len() == given.len()
            && segments
                .iter()
                .zip(&given)
                .all(|(s, g)| (s.starts_with('{') && s.ends_with('}') && !g.is_empty()) || s == g);
        matches.then(|| methods.clone())
    })
}

#[cfg(test)]
mod tests;

//! Offline gifts recorded by treasurers, and the treasurer's list of donations.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Staff, State, input, with_conn};
use crate::auth::{Email, Role};
use crate::db::models::DonationRow;
use crate::db::schema::donations;
use crate::error::AppError;
use crate::ledger::ops::{Idempotency, OfflineGift, OfflineMethod, RecordOffline};
use crate::money::{AmountBounds, Currency, Money};

/// Most donations one page of `GET /api/donations` returns.
pub const MAX_PAGE: i64 = 200;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    use actix_web::http::Method;
    cfg.service(
        super::with_body_limit("/api/donations/offline", Method::POST, super::JSON_LIMIT)
            .to(record_offline),
    )
    .route("/api/donations", web::get().to(list));
}

/// An offline gift (check, wire, cash): money that has already arrived.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OfflineRequest {
    /// Any positive amount up to `DONATION_MAX`.
    #[schema(value_type = super::openapi::AmountInput)]
    amount: serde_json::Value,
    /// The donor's name as it goes on the receipt (trimmed; no control characters).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x09\x0b-\x1f\x7f-\x9f]*[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\x00-\x1f\x7f-\x9f][^\x00-\x09\x0b-\x1f\x7f-\x9f]*[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    donor_name: String,
    /// Where the receipt goes, if known.
    #[schema(schema_with = super::openapi::optional_email)]
    email: Option<String>,
    /// How the money arrived.
    #[schema(schema_with = offline_method)]
    method: String,
    /// Check number or wire reference (trimmed; no control characters).
    #[schema(
        max_length = 100,
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x09\x0b-\x1f\x7f-\x9f]*[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    reference: Option<String>,
    /// When the money arrived (default today; at most tomorrow).
    #[schema(value_type = Option<chrono::NaiveDate>)]
    received_on: Option<String>,
    /// Not shown publicly by name.
    anonymous: Option<bool>,
    /// Receipt language.
    #[schema(schema_with = super::payments::locale_schema)]
    locale: Option<String>,
}

fn offline_method() -> utoipa::openapi::schema::Schema {
    super::openapi::one_of(&["check", "wire", "cash", "other"])
}

impl OfflineRequest {
    fn parse(self, currency: Currency, max_minor: i64) -> Result<OfflineGift, AppError> {
        // The money has already arrived: any positive amount up to the maximum.
        let bounds = AmountBounds {
            min_minor: 1,
            max_minor,
        };
        let amount = input::amount("amount", &self.amount, currency, bounds)?;
        let method = match self.method.trim() {
            "check" => OfflineMethod::Check,
            "wire" => OfflineMethod::Wire,
            "cash" => OfflineMethod::Cash,
            "other" => OfflineMethod::Other,
            _ => {
                return Err(AppError::invalid_field(
                    "method",
                    "method must be check, wire, cash or other",
                ));
            }
        };
        let email = match input::optional_text("email", self.email.as_deref(), 254)? {
            None => None,
            Some(e) => Some(
                Email::parse(&e)
                    .ok_or_else(|| {
                        AppError::invalid_field("email", "email is not a valid address")
                    })?
                    .as_str()
                    .to_owned(),
            ),
        };
        let today = chrono::Utc::now().date_naive();
        let received_on = match self.received_on.as_deref() {
            None => today,
            Some(d) => input::date("received_on", d)?,
        };
        if received_on > today + chrono::Days::new(1) {
            return Err(AppError::invalid_field(
                "received_on",
                "received_on is in the future",
            ));
        }
        Ok(OfflineGift {
            amount,
            amount_minor: amount.minor(),
            donor_name: input::text("donor_name", &self.donor_name, 200)?,
            email,
            method,
            reference: input::optional_text("reference", self.reference.as_deref(), 100)?,
            received_on,
            anonymous: self.anonymous.unwrap_or(false),
            locale: input::locale(self.locale.as_deref())?,
        })
    }
}

/// Reads `Idempotency-Key`: 1 to 255 visible ASCII characters.
pub(super) fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, AppError> {
    let Some(v) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let key = v.to_str().unwrap_or_default();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AppError::invalid_field(
            "Idempotency-Key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

/// Records an offline gift through the writer; its receipt is queued in the same transaction.
#[utoipa::path(
    post,
    path = "/api/donations/offline",
    tag = "treasurer",
    security(("bearer" = [])),
    params(super::payments::IdempotencyKey),
    request_body = OfflineRequest,
    responses(
        (status = 201, description = "Recorded (or the same request replayed)", body = crate::ledger::ops::DonationReceipt),
    ),
)]
#[tracing::instrument(skip_all, fields(actor = tracing::field::Empty))]
pub(super) async fn record_offline(
    staff: Staff,
    state: State,
    req: HttpRequest,
    body: input::JsonObject<OfflineRequest>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Treasurer)?;
    let key = idempotency_key(&req)?;
    // The stored fund's (adopted into the configuration at start; fixed at creation).
    let currency = state.config.fund.currency;
    let gift = body
        .into_inner()
        .parse(currency, state.config.donation_bounds.max_minor)?;
    let idempotency = key.map(|k| Idempotency {
        scope_key: format!("offline:{k}"),
        request_hash: hex::encode(Sha256::digest(
            serde_json::to_vec(&gift).unwrap_or_default(),
        )),
    });
    let resp = state
        .writer
        .submit(RecordOffline {
            gift,
            actor: staff.email,
            idempotency,
        })
        .await?;
    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::CREATED);
    Ok(HttpResponse::build(status)
        .content_type("application/json")
        .body(resp.body))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only donations with this status.
    #[param(schema_with = super::openapi::donation_status)]
    status: Option<String>,
    /// Only donations that arrived this way.
    #[param(schema_with = super::openapi::donation_method)]
    method: Option<String>,
    /// Ascending pages: ids after this one.
    after: Option<i64>,
    /// Descending pages: ids before this one.
    before: Option<i64>,
    /// `asc` (default, oldest first) or `desc` (newest first).
    #[param(schema_with = order_schema)]
    order: Option<String>,
    /// Donations per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

fn order_schema() -> utoipa::openapi::schema::Schema {
    super::openapi::one_of(&["asc", "desc"])
}

/// One donation as treasurers see it.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DonationView {
    id: i64,
    #[schema(schema_with = super::openapi::donation_method)]
    method: String,
    #[schema(schema_with = super::openapi::donation_status)]
    status: String,
    amount: Money,
    refunded: Money,
    currency: String,
    donor_name: String,
    email: Option<String>,
    anonymous: bool,
    reference: Option<String>,
    received_on: Option<chrono::NaiveDate>,
    after_close: bool,
    /// True while a pending payment's money is on its way (a bank debit in `processing`).
    processing: bool,
    /// How a Stripe payment was made, as its charge named it (`card`, `us_bank_account`,
    /// `alipay`, `wechat_pay`, `link`, `apple_pay`, `google_pay`, `other`); `null` for an
    /// offline gift and until Stripe says.
    payment_method_type: Option<String>,
    /// When it was recorded.
    created_at: DateTime<Utc>,
}

/// One page of donations. `next_after` (ascending) or `next_before` (descending) is the
/// cursor of the next page, `null` on the last.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DonationPage {
    items: Vec<DonationView>,
    /// Ascending order: pass as `after` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>, nullable = true)]
    next_after: Option<Option<i64>>,
    /// Descending order: pass as `before` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>, nullable = true)]
    next_before: Option<Option<i64>>,
}

/// The treasurers' list of donations, with filters and cursor paging.
#[utoipa::path(
    get,
    path = "/api/donations",
    operation_id = "list_donations",
    tag = "treasurer",
    security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, description = "One page", body = DonationPage)),
)]
pub(super) async fn list(
    staff: Staff,
    state: State,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    staff.require(Role::Treasurer)?;
    let q = q.into_inner();
    input::one_of("status", q.status.as_deref(), &input::STATUSES)?;
    input::one_of("method", q.method.as_deref(), &input::METHODS)?;
    let descending = q.order.as_deref() == Some("desc");
    let limit = input::page_limit(q.limit, 50, MAX_PAGE)?;
    let rows: Vec<DonationRow> = with_conn(&state, move |c| {
        let mut query = donations::table
            .select(DonationRow::as_select())
            .limit(limit)
            .into_boxed();
        query = match q.order.as_deref() {
            None | Some("asc") => query.order(donations::id.asc()),
            Some("desc") => query.order(donations::id.desc()),
            Some(_) => {
                return Err(AppError::invalid_field(
                    "order",
                    "order must be asc or desc",
                ));
            }
        };
        if let Some(b) = q.before {
            query = query.filter(donations::id.lt(b));
        }
        if let Some(s) = q.status {
            query = query.filter(donations::status.eq(s));
        }
        if let Some(m) = q.method {
            query = query.filter(donations::method.eq(m));
        }
        if let Some(a) = q.after {
            query = query.filter(donations::id.gt(a));
        }
        Ok(query.load(c)?)
    })
    .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let items: Vec<DonationView> = rows
        .into_iter()
        .map(|r| {
            let c = Currency::from_code(&r.currency).unwrap_or(Currency::USD);
            let processing = r.status == "pending" && r.processing_since.is_some();
            DonationView {
                id: r.id,
                amount: Money::new(r.amount_minor, c),
                refunded: Money::new(r.refunded_minor, c),
                method: r.method,
                status: r.status,
                currency: r.currency,
                donor_name: r.donor_name,
                email: r.email,
                anonymous: r.anonymous,
                reference: r.reference,
                received_on: r.received_on,
                after_close: r.after_close,
                processing,
                payment_method_type: r.payment_method_type,
                created_at: r.created_at.and_utc(),
            }
        })
        .collect();
    let page = if descending {
        DonationPage {
            items,
            next_after: None,
            next_before: Some(next),
        }
    } else {
        DonationPage {
            items,
            next_after: Some(next),
            next_before: None,
        }
    };
    Ok(HttpResponse::Ok().json(page))
}

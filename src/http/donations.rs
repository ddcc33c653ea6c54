//! Offline gifts recorded by treasurers, and the treasurer's list of donations.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDateTime;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OfflineRequest {
    amount: serde_json::Value,
    donor_name: String,
    email: Option<String>,
    method: String,
    reference: Option<String>,
    received_on: Option<String>,
    anonymous: Option<bool>,
    locale: Option<String>,
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

#[tracing::instrument(skip_all, fields(actor = tracing::field::Empty))]
async fn record_offline(
    staff: Staff,
    state: State,
    req: HttpRequest,
    body: web::Json<OfflineRequest>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Treasurer)?;
    let key = idempotency_key(&req)?;
    let currency = state
        .writer
        .snapshot()
        .get()
        .map_or(state.config.fund.currency, |s| {
            Currency::from_code(s.view.currency).unwrap_or(state.config.fund.currency)
        });
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    method: Option<String>,
    /// Ascending pages: ids after this one.
    after: Option<i64>,
    /// Descending pages: ids before this one.
    before: Option<i64>,
    /// `asc` (default) or `desc` (newest first).
    order: Option<String>,
    limit: Option<i64>,
}

/// One donation as treasurers see it.
#[derive(Serialize)]
struct DonationView {
    id: i64,
    method: String,
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
    created_at: NaiveDateTime,
}

async fn list(
    staff: Staff,
    state: State,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    staff.require(Role::Treasurer)?;
    let q = q.into_inner();
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
                created_at: r.created_at,
            }
        })
        .collect();
    let cursor = if descending {
        "next_before"
    } else {
        "next_after"
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, cursor: next })))
}

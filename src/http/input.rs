//! Parsing request fields once, at the edge, into checked values with field-named errors.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use chrono::NaiveDate;
use serde::de::DeserializeOwned;

use crate::error::{AppError, ErrorCode};
use crate::money::{AmountBounds, Currency, DonationAmount};

/// A JSON request body that must be an object (`{...}`), read into `T`.
///
/// `web::Json<T>` alone would also take an array for a struct (serde fills the fields in
/// order: `[null, null]` is a valid `{name, target}`), which the documented contract and
/// `deny_unknown_fields` do not mean. The body goes through `web::Json` first, so the size
/// limit, the content type check and their problem documents are unchanged.
pub struct JsonObject<T>(pub T);

impl<T> JsonObject<T> {
    /// The value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonObject<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body =
            web::Json::<serde_json::Map<String, serde_json::Value>>::from_request(req, payload);
        Box::pin(async move {
            let map = body.await?.into_inner();
            serde_json::from_value(serde_json::Value::Object(map))
                .map(JsonObject)
                .map_err(|e| AppError::new(ErrorCode::InvalidRequest, e.to_string()).into())
        })
    }
}

/// An amount sent as a JSON string (`"25.00"`); numbers are refused because JSON numbers
/// pass through binary floating point in most clients.
pub fn amount(
    field: &str,
    value: &serde_json::Value,
    currency: Currency,
    bounds: AmountBounds,
) -> Result<DonationAmount, AppError> {
    match value {
        serde_json::Value::String(s) => DonationAmount::parse(s, currency, bounds)
            .map_err(|e| AppError::invalid_amount(field, e)),
        _ => Err(AppError::invalid_amount(
            field,
            crate::money::AmountError::Malformed,
        )),
    }
}

/// Required text: at most `max` characters as sent (so the limit is the schema's
/// `maxLength`), trimmed, not empty, no control characters but newlines.
pub fn text(field: &str, value: &str, max: usize) -> Result<String, AppError> {
    not_longer(field, value, max)?;
    let t = value.trim();
    if t.is_empty() {
        return Err(AppError::invalid_field(
            field,
            format!("{field} is required"),
        ));
    }
    optional_text(field, Some(t), max).map(Option::unwrap_or_default)
}

/// Optional text: blank becomes `None`; otherwise as [`text`].
pub fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, AppError> {
    if let Some(raw) = value {
        not_longer(field, raw, max)?;
    }
    let Some(t) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::invalid_field(
            field,
            format!("{field} contains control characters"),
        ));
    }
    Ok(Some(t.to_owned()))
}

fn not_longer(field: &str, value: &str, max: usize) -> Result<(), AppError> {
    if value.chars().count() > max {
        return Err(AppError::invalid_field(
            field,
            format!("{field} is longer than {max} characters"),
        ));
    }
    Ok(())
}

/// A calendar date `YYYY-MM-DD`.
pub fn date(field: &str, value: &str) -> Result<NaiveDate, AppError> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").map_err(|_| {
        AppError::invalid_field(field, format!("{field} must be a date like 2020-08-01"))
    })
}

/// A supported receipt language.
pub fn locale(value: Option<&str>) -> Result<String, AppError> {
    match value.map(str::trim) {
        None | Some("" | "en") => Ok("en".into()),
        Some("zh-CN" | "zh-cn" | "zh") => Ok("zh-CN".into()),
        Some(_) => Err(AppError::invalid_field(
            "locale",
            "locale must be en or zh-CN",
        )),
    }
}

pub use crate::domain::{METHODS, STATUSES};

/// A `status` or `method` filter: one of `allowed`, or `invalid_request` naming the field
/// (a filter is structured: a value no donation can have is a mistake, not an empty answer).
pub fn one_of(field: &str, value: Option<&str>, allowed: &[&str]) -> Result<(), AppError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(AppError::invalid_field(
            field,
            format!("{field} must be one of {}", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}

/// A page size from `?limit=`: `default` when absent, else 1 to `max` (a non-number never gets
/// here: the query extractor refuses it as `invalid_request`).
pub fn page_limit(limit: Option<i64>, default: i64, max: i64) -> Result<i64, AppError> {
    let limit = limit.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(AppError::invalid_field(
            "limit",
            format!("limit must be 1 to {max}"),
        ))
    }
}

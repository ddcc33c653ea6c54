//! Parsing request fields once, at the edge, into checked values with field-named errors.

use chrono::NaiveDate;

use crate::error::AppError;
use crate::money::{AmountBounds, Currency, DonationAmount};

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

/// Required text: trimmed, not empty, at most `max` characters, no control characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<String, AppError> {
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
    let Some(t) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if t.chars().count() > max {
        return Err(AppError::invalid_field(
            field,
            format!("{field} is longer than {max} characters"),
        ));
    }
    if t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::invalid_field(
            field,
            format!("{field} contains control characters"),
        ));
    }
    Ok(Some(t.to_owned()))
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

//! The framework's own refusals, as problem+json: a JSON body, a query string or a path that
//! does not parse, and a path no route serves (404, or 405 with `Allow`).

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, web};

use super::openapi;
use crate::error::{AppError, ErrorCode};

/// JSON bodies of at most `limit` bytes, with errors as problem+json.
pub(super) fn json_body(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|e, _req| json_error(&e).into())
}

/// 404, or 405 with `Allow` when the path is in the OpenAPI document under other methods.
pub(super) async fn not_found(req: HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    match openapi::allowed_methods(req.path()) {
        Some(methods) => {
            let mut resp = AppError::new(
                ErrorCode::MethodNotAllowed,
                format!(
                    "{} {} is not served; use {}",
                    req.method(),
                    req.path(),
                    methods.join(", ")
                ),
            )
            .error_response();
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&methods.join(", ")) {
                resp.headers_mut().insert(actix_web::http::header::ALLOW, v);
            }
            resp
        }
        None => AppError::new(
            ErrorCode::NotFound,
            format!("no route for {} {}", req.method(), req.path()),
        )
        .error_response(),
    }
}

pub(super) fn json_error(e: &JsonPayloadError) -> AppError {
    match e {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => AppError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than {limit} bytes"),
        ),
        JsonPayloadError::ContentType => AppError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as application/json",
        ),
        JsonPayloadError::Deserialize(se) => match se.classify() {
            serde_json::error::Category::Data => {
                AppError::new(ErrorCode::InvalidRequest, se.to_string())
            }
            _ => AppError::new(
                ErrorCode::MalformedJson,
                format!("the body is not valid JSON: {se}"),
            ),
        },
        other => AppError::new(ErrorCode::MalformedJson, other.to_string()),
    }
}

pub(super) fn query_error(e: &QueryPayloadError) -> AppError {
    AppError::new(ErrorCode::InvalidRequest, format!("bad query string: {e}"))
}

pub(super) fn path_error(e: &PathError) -> AppError {
    AppError::new(ErrorCode::NotFound, format!("no such resource: {e}"))
}

//! The one error type of requests and writer commands, and its problem+json form.
//!
//! What a user reads (`detail`) is separate from the cause that is logged.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::money::AmountError;

/// Stable machine codes; they are part of the public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Amount text refused.
    InvalidAmount,
    /// A field is missing, of the wrong type or out of range.
    InvalidRequest,
    /// The body is not JSON.
    MalformedJson,
    /// The body is too large.
    PayloadTooLarge,
    /// Wrong content type.
    UnsupportedMediaType,
    /// A refund larger than what is still refundable.
    RefundExceedsRemaining,
    /// A refund through Stripe asked after the payment method's refund window (Alipay 90
    /// days, WeChat Pay and bank debits 180): refund by check and record it with `outside_stripe`.
    RefundWindowPassed,
    /// Intake is not open.
    IntakeClosed,
    /// Strict cap mode: the gift is larger than what is left to raise.
    ExceedsRemaining,
    /// Card giving is not configured.
    PaymentsUnavailable,
    /// Stripe failed or refused; nothing was recorded.
    PaymentProviderError,
    /// Stripe read a new payment and refused to start it (a way to pay the account has not
    /// switched on); nothing was recorded, and trying again changes nothing.
    PaymentProviderRefused,
    /// A webhook whose signature does not verify.
    BadSignature,
    /// Reopening while raised has met the target.
    TargetReached,
    /// Strict cap mode: a new target below raised plus what payments under way reserve.
    TargetBelowReserved,
    /// Same idempotency key, different request.
    IdempotencyConflict,
    /// A refund approval or rejection of a request that is not waiting (done, rejected or
    /// expired); the problem's `state` says which.
    ApprovalNotPending,
    /// An admin approving their own refund request: a second admin must.
    ApprovalOwnRequest,
    /// A donor cannot be erased while one of their gifts is pending or disputed.
    DonorHasOpenGifts,
    /// An account that must have a second factor has none yet: it may only enrol one.
    MfaEnrolmentRequired,
    /// A dangerous action (refund, target, role, donor-data export) needs the password or a
    /// second-factor code entered in the last ten minutes (`POST /api/auth/reauth`).
    ReauthRequired,
    /// A disbursement larger than the fund holds (raised less what was paid out).
    ExceedsBalance,
    /// Voiding a disbursement that is already void.
    AlreadyVoided,
    /// Enrolling a second factor on an account that has one.
    MfaAlreadyEnabled,
    /// Disabling or demoting the last active admin.
    LastAdmin,
    /// Creating an account whose email is taken.
    UserExists,
    /// A disabled account.
    AccountDisabled,
    /// No valid credentials.
    Unauthorized,
    /// Authenticated, but the role may not do this.
    Forbidden,
    /// No such resource.
    NotFound,
    /// Method not allowed on this path.
    MethodNotAllowed,
    /// The database is unreachable or the writer is overloaded; try again.
    Unavailable,
    /// Too many requests from this client (or for this account); `Retry-After` says when.
    RateLimited,
    /// The request took longer than `REQUEST_TIMEOUT` and was stopped.
    Timeout,
    /// A bug or an unexpected failure; logged.
    Internal,
}

impl ErrorCode {
    /// HTTP status for this code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidAmount
            | ErrorCode::InvalidRequest
            | ErrorCode::RefundExceedsRemaining
            | ErrorCode::RefundWindowPassed => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::MalformedJson | ErrorCode::BadSignature => StatusCode::BAD_REQUEST,
            ErrorCode::ExceedsRemaining => StatusCode::CONFLICT,
            ErrorCode::PaymentsUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::PaymentProviderError | ErrorCode::PaymentProviderRefused => {
                StatusCode::BAD_GATEWAY
            }
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::IntakeClosed
            | ErrorCode::TargetReached
            | ErrorCode::TargetBelowReserved
            | ErrorCode::IdempotencyConflict
            | ErrorCode::ApprovalNotPending
            | ErrorCode::DonorHasOpenGifts
            | ErrorCode::MfaAlreadyEnabled
            | ErrorCode::ExceedsBalance
            | ErrorCode::AlreadyVoided
            | ErrorCode::LastAdmin
            | ErrorCode::UserExists => StatusCode::CONFLICT,
            ErrorCode::ApprovalOwnRequest
            | ErrorCode::MfaEnrolmentRequired
            | ErrorCode::ReauthRequired
            | ErrorCode::AccountDisabled => StatusCode::FORBIDDEN,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unavailable | ErrorCode::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Short human title.
    pub fn title(self) -> &'static str {
        match self {
            ErrorCode::InvalidAmount => "Invalid amount",
            ErrorCode::InvalidRequest => "Invalid request",
            ErrorCode::MalformedJson => "Malformed JSON",
            ErrorCode::PayloadTooLarge => "Payload too large",
            ErrorCode::UnsupportedMediaType => "Unsupported media type",
            ErrorCode::RefundExceedsRemaining => "Refund exceeds what remains",
            ErrorCode::RefundWindowPassed => "Past the payment method's refund window",
            ErrorCode::IntakeClosed => "Intake closed",
            ErrorCode::ExceedsRemaining => "Exceeds what remains to raise",
            ErrorCode::PaymentsUnavailable => "Card payments unavailable",
            ErrorCode::PaymentProviderError => "Payment provider error",
            ErrorCode::PaymentProviderRefused => "Payment provider refused",
            ErrorCode::BadSignature => "Bad signature",
            ErrorCode::TargetReached => "Target reached",
            ErrorCode::TargetBelowReserved => "Target below what is reserved",
            ErrorCode::IdempotencyConflict => "Idempotency key reused",
            ErrorCode::ApprovalNotPending => "Not waiting for approval",
            ErrorCode::ApprovalOwnRequest => "Own request",
            ErrorCode::DonorHasOpenGifts => "Donor has open gifts",
            ErrorCode::MfaEnrolmentRequired => "Second factor required",
            ErrorCode::ExceedsBalance => "Exceeds the balance",
            ErrorCode::AlreadyVoided => "Already void",
            ErrorCode::ReauthRequired => "Re-authentication required",
            ErrorCode::MfaAlreadyEnabled => "Second factor already enabled",
            ErrorCode::LastAdmin => "Last admin",
            ErrorCode::UserExists => "User exists",
            ErrorCode::AccountDisabled => "Account disabled",
            ErrorCode::Unauthorized => "Unauthorized",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::NotFound => "Not found",
            ErrorCode::MethodNotAllowed => "Method not allowed",
            ErrorCode::Unavailable => "Service unavailable",
            ErrorCode::RateLimited => "Too many requests",
            ErrorCode::Timeout => "Request timed out",
            ErrorCode::Internal => "Internal error",
        }
    }
}

/// A failed request or writer command.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code:?}: {detail}")]
pub struct AppError {
    /// Machine code.
    pub code: ErrorCode,
    /// What the user is told.
    pub detail: String,
    /// Extra members of the problem document (e.g. the field at fault).
    pub extra: Option<serde_json::Value>,
}

impl AppError {
    /// An error with a user-facing detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> AppError {
        AppError {
            code,
            detail: detail.into(),
            extra: None,
        }
    }

    /// `invalid_request` naming the field at fault.
    pub fn invalid_field(field: &str, detail: impl Into<String>) -> AppError {
        AppError {
            code: ErrorCode::InvalidRequest,
            detail: detail.into(),
            extra: Some(serde_json::json!({ "field": field })),
        }
    }

    /// `invalid_amount` for the field `field`.
    pub fn invalid_amount(field: &str, err: AmountError) -> AppError {
        AppError {
            code: ErrorCode::InvalidAmount,
            detail: err.to_string(),
            extra: Some(serde_json::json!({ "field": field })),
        }
    }

    /// A failure whose cause is logged and not shown.
    pub fn internal(cause: impl std::fmt::Display) -> AppError {
        tracing::error!(%cause, "internal error");
        AppError::new(
            ErrorCode::Internal,
            "something went wrong; it has been logged",
        )
    }

    /// Too many requests; the caller may try again after `wait` (sent as `Retry-After` in whole
    /// seconds, rounded up, at least one, and as `retry_after` in the body).
    pub fn rate_limited(wait: std::time::Duration) -> AppError {
        let secs = wait
            .as_secs()
            .saturating_add(u64::from(wait.subsec_nanos() > 0))
            .max(1);
        AppError {
            code: ErrorCode::RateLimited,
            detail: format!("too many attempts; please wait {secs} s and try again"),
            extra: Some(serde_json::json!({ "retry_after": secs })),
        }
    }

    /// The request ran past its deadline and was stopped.
    pub fn timeout(limit: std::time::Duration) -> AppError {
        let took = if limit.subsec_millis() == 0 {
            format!("{} s", limit.as_secs())
        } else {
            format!("{} ms", limit.as_millis())
        };
        AppError::new(
            ErrorCode::Timeout,
            format!(
                "the request took longer than {took} and was stopped; if it was a payment or a \
                 gift, retry with the same Idempotency-Key so it is not recorded twice"
            ),
        )
    }

    /// True when the problem document carries the extra member `name`.
    pub fn extra_has(&self, name: &str) -> bool {
        self.extra.as_ref().is_some_and(|e| e.get(name).is_some())
    }

    /// The problem+json document this error is answered with (stored by requests that
    /// replay their answer).
    pub fn problem(&self) -> serde_json::Value {
        let problem = Problem {
            kind: "about:blank",
            title: self.code.title(),
            status: self.code.status().as_u16(),
            code: self.code,
            detail: &self.detail,
        };
        let mut body = serde_json::to_value(&problem).unwrap_or_default();
        if let (Some(serde_json::Value::Object(extra)), serde_json::Value::Object(map)) =
            (&self.extra, &mut body)
        {
            for (k, v) in extra {
                map.insert(k.clone(), v.clone());
            }
        }
        body
    }

    /// The database could not be reached; the caller may retry.
    pub fn unavailable(cause: impl std::fmt::Display) -> AppError {
        tracing::warn!(%cause, "database unavailable");
        AppError::new(
            ErrorCode::Unavailable,
            "the ledger is unavailable right now; nothing was recorded, please try again",
        )
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> AppError {
        use diesel::result::Error as E;
        match e {
            E::NotFound => AppError::new(ErrorCode::NotFound, "no such record"),
            E::DatabaseError(kind, info) => {
                use diesel::result::DatabaseErrorKind as K;
                match kind {
                    K::ClosedConnection | K::SerializationFailure | K::ReadOnlyTransaction => {
                        AppError::unavailable(info.message())
                    }
                    _ if is_busy(info.message()) => AppError::unavailable(info.message()),
                    _ => AppError::internal(info.message()),
                }
            }
            E::BrokenTransactionManager => AppError::unavailable("broken transaction manager"),
            other => AppError::internal(other),
        }
    }
}

fn is_busy(message: &str) -> bool {
    message.contains("database is locked")
        || message.contains("server closed the connection")
        || message.contains("terminating connection")
        || message.contains("no connection to the server")
}

impl From<diesel::r2d2::PoolError> for AppError {
    fn from(e: diesel::r2d2::PoolError) -> AppError {
        AppError::unavailable(e)
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(e: actix_web::error::BlockingError) -> AppError {
        AppError::internal(e)
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    code: ErrorCode,
    detail: &'a str,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.code.status();
        let body = self.problem();
        let mut resp = HttpResponse::build(status);
        resp.content_type("application/problem+json");
        if self.code == ErrorCode::Unauthorized {
            resp.insert_header(("WWW-Authenticate", "Bearer"));
        }
        match self.code {
            ErrorCode::Unavailable => {
                resp.insert_header(("Retry-After", "1"));
            }
            ErrorCode::RateLimited => {
                let secs = self
                    .extra
                    .as_ref()
                    .and_then(|e| e["retry_after"].as_u64())
                    .unwrap_or(1);
                resp.insert_header(("Retry-After", secs.to_string()));
            }
            _ => {}
        }
        resp.body(body.to_string())
    }
}

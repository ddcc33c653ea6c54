//! What each operation can answer besides success: the table the document's problem+json
//! responses are built from, and the response for one status.

use serde_json::{Value, json};

use crate::error::ErrorCode;

use ErrorCode as E;

/// Errors of any handler that reads a JSON body.
const BODY: &[ErrorCode] = &[
    E::MalformedJson,
    E::InvalidRequest,
    E::PayloadTooLarge,
    E::UnsupportedMediaType,
];
/// Errors of a route that needs a bearer token.
const STAFF: &[ErrorCode] = &[E::Unauthorized, E::Forbidden, E::MfaEnrolmentRequired];
/// Errors of a signed-in route open to an account that must still enrol a second factor.
const SIGNED_IN: &[ErrorCode] = &[E::Unauthorized];
/// Errors of a dangerous action: a password or code from the last ten minutes is needed.
const RECENT: &[ErrorCode] = &[E::ReauthRequired];

/// What each operation can answer besides success: `(method, path, code groups)`. A route
/// that reads the database or submits to the writer may also be `unavailable` (503).
pub(super) const PROBLEMS: &[(&str, &str, &[&[ErrorCode]])] = &[
    ("get", "/api/fund", &[&[E::Unavailable]]),
    ("get", "/api/public/head", &[&[E::Unavailable]]),
    (
        "get",
        "/api/public/ledger",
        &[&[E::InvalidRequest, E::RateLimited, E::Unavailable]],
    ),
    ("get", "/readyz", &[&[E::Unavailable]]),
    (
        "post",
        "/api/auth/login",
        &[
            BODY,
            &[
                E::Unauthorized,
                E::AccountDisabled,
                E::RateLimited,
                E::Unavailable,
            ],
        ],
    ),
    (
        "post",
        "/api/auth/mfa",
        &[
            BODY,
            &[
                E::Unauthorized,
                E::AccountDisabled,
                E::RateLimited,
                E::Unavailable,
            ],
        ],
    ),
    ("get", "/api/auth/me", &[SIGNED_IN, &[E::Unavailable]]),
    (
        "post",
        "/api/auth/2fa/enrol",
        &[SIGNED_IN, &[E::MfaAlreadyEnabled, E::Unavailable]],
    ),
    (
        "post",
        "/api/auth/2fa/confirm",
        &[
            SIGNED_IN,
            BODY,
            &[E::MfaAlreadyEnabled, E::RateLimited, E::Unavailable],
        ],
    ),
    (
        "post",
        "/api/auth/2fa/recovery-codes",
        &[STAFF, RECENT, &[E::InvalidRequest, E::Unavailable]],
    ),
    (
        "post",
        "/api/auth/reauth",
        &[STAFF, BODY, &[E::RateLimited, E::Unavailable]],
    ),
    (
        "post",
        "/api/auth/password",
        &[STAFF, BODY, &[E::RateLimited, E::Unavailable]],
    ),
    ("post", "/api/auth/logout", &[SIGNED_IN, &[E::Unavailable]]),
    ("get", "/api/auth/sessions", &[STAFF, &[E::Unavailable]]),
    (
        "post",
        "/api/auth/sessions/{id}/end",
        &[STAFF, &[E::NotFound, E::InvalidRequest, E::Unavailable]],
    ),
    ("get", "/api/admin/users", &[STAFF, &[E::Unavailable]]),
    (
        "post",
        "/api/disbursements",
        &[
            STAFF,
            RECENT,
            BODY,
            &[
                E::InvalidAmount,
                E::ExceedsBalance,
                E::IdempotencyConflict,
                E::Unavailable,
            ],
        ],
    ),
    ("get", "/api/disbursements", &[STAFF, &[E::Unavailable]]),
    (
        "get",
        "/api/reports/disbursements.csv",
        &[STAFF, &[E::Unavailable]],
    ),
    (
        "post",
        "/api/disbursements/{id}/void",
        &[
            STAFF,
            RECENT,
            BODY,
            &[
                E::AlreadyVoided,
                E::ApprovalNotPending,
                E::NotFound,
                E::Unavailable,
            ],
        ],
    ),
    (
        "post",
        "/api/disbursements/{id}/approve",
        &[
            STAFF,
            RECENT,
            &[
                E::ApprovalOwnRequest,
                E::ApprovalNotPending,
                E::ExceedsBalance,
                E::NotFound,
                E::Unavailable,
            ],
        ],
    ),
    (
        "post",
        "/api/disbursements/{id}/reject",
        &[STAFF, &[E::ApprovalNotPending, E::NotFound, E::Unavailable]],
    ),
    (
        "post",
        "/api/admin/users",
        &[STAFF, RECENT, BODY, &[E::UserExists, E::Unavailable]],
    ),
    (
        "put",
        "/api/admin/users/{id}",
        &[
            STAFF,
            RECENT,
            BODY,
            &[E::LastAdmin, E::NotFound, E::Unavailable],
        ],
    ),
    (
        "post",
        "/api/admin/users/{id}/sessions/end",
        &[STAFF, &[E::NotFound, E::InvalidRequest, E::Unavailable]],
    ),
    (
        "post",
        "/api/donations",
        &[
            BODY,
            &[
                E::InvalidAmount,
                E::IntakeClosed,
                E::ExceedsRemaining,
                E::IdempotencyConflict,
                E::PaymentsUnavailable,
                E::PaymentProviderError,
                E::PaymentProviderRefused,
                E::RateLimited,
                E::Unavailable,
            ],
        ],
    ),
    (
        "get",
        "/api/donations/{id}/status",
        &[&[E::NotFound, E::InvalidRequest, E::Unavailable]],
    ),
    (
        "post",
        "/webhooks/stripe",
        &[&[
            E::PaymentsUnavailable,
            E::BadSignature,
            E::MalformedJson,
            E::InvalidRequest,
            E::PayloadTooLarge,
            E::Unavailable,
        ]],
    ),
    (
        "post",
        "/api/donations/offline",
        &[
            STAFF,
            BODY,
            &[E::InvalidAmount, E::IdempotencyConflict, E::Unavailable],
        ],
    ),
    (
        "get",
        "/api/donations",
        &[STAFF, &[E::InvalidRequest, E::Unavailable]],
    ),
    (
        "put",
        "/api/admin/intake",
        &[STAFF, BODY, &[E::TargetReached, E::Unavailable]],
    ),
    (
        "put",
        "/api/admin/fund",
        &[
            STAFF,
            RECENT,
            BODY,
            &[E::InvalidAmount, E::TargetBelowReserved, E::Unavailable],
        ],
    ),
    (
        "post",
        "/api/admin/periods",
        &[STAFF, BODY, &[E::InvalidAmount, E::Unavailable]],
    ),
    (
        "put",
        "/api/admin/periods/{id}",
        &[
            STAFF,
            BODY,
            &[E::InvalidAmount, E::NotFound, E::Unavailable],
        ],
    ),
    (
        "post",
        "/api/admin/donations/{id}/refund",
        &[
            STAFF,
            RECENT,
            BODY,
            &[
                E::InvalidAmount,
                E::RefundExceedsRemaining,
                E::RefundWindowPassed,
                E::IdempotencyConflict,
                E::NotFound,
                E::PaymentsUnavailable,
                E::PaymentProviderError,
                E::Unavailable,
            ],
        ],
    ),
    ("get", "/api/admin/approvals", &[STAFF, &[E::Unavailable]]),
    (
        "post",
        "/api/admin/approvals/{id}/approve",
        &[
            STAFF,
            RECENT,
            &[
                E::ApprovalOwnRequest,
                E::ApprovalNotPending,
                E::RefundExceedsRemaining,
                E::RefundWindowPassed,
                E::NotFound,
                E::PaymentsUnavailable,
                E::PaymentProviderError,
                E::Unavailable,
            ],
        ],
    ),
    (
        "post",
        "/api/admin/approvals/{id}/reject",
        &[STAFF, &[E::ApprovalNotPending, E::NotFound, E::Unavailable]],
    ),
    (
        "get",
        "/api/admin/audit",
        &[STAFF, &[E::InvalidRequest, E::Unavailable]],
    ),
    (
        "get",
        "/api/reports/audit.csv",
        &[STAFF, &[E::InvalidRequest, E::Unavailable]],
    ),
    (
        "post",
        "/api/admin/donors/erase",
        &[STAFF, RECENT, BODY, &[E::DonorHasOpenGifts, E::Unavailable]],
    ),
    ("get", "/api/admin/outbox", &[STAFF, &[E::Unavailable]]),
    (
        "post",
        "/api/admin/outbox/retry",
        &[STAFF, &[E::Unavailable]],
    ),
    (
        "get",
        "/api/reports/donations.csv",
        &[STAFF, RECENT, &[E::InvalidRequest, E::Unavailable]],
    ),
    (
        "get",
        "/api/reports/periods.csv",
        &[STAFF, &[E::InvalidRequest, E::Unavailable]],
    ),
    (
        "get",
        "/api/reports/ledger.csv",
        &[STAFF, &[E::InvalidRequest, E::Unavailable]],
    ),
    (
        "get",
        "/api/reports/summary",
        &[STAFF, &[E::InvalidRequest, E::Unavailable]],
    ),
    (
        "get",
        "/api/reports/payouts",
        &[STAFF, &[E::InvalidRequest, E::NotFound, E::Unavailable]],
    ),
    (
        "get",
        "/api/admin/charts/daily.svg",
        &[STAFF, &[E::Unavailable]],
    ),
    (
        "get",
        "/api/admin/charts/periods.svg",
        &[STAFF, &[E::Unavailable]],
    ),
];

/// The problem codes `method path` can answer with, in the order [`PROBLEMS`] lists them.
pub fn problem_codes(method: &str, path: &str) -> Vec<ErrorCode> {
    let mut out: Vec<ErrorCode> = Vec::new();
    for (m, p, groups) in PROBLEMS {
        if m.eq_ignore_ascii_case(method) && *p == path {
            for code in groups.iter().flat_map(|g| g.iter()) {
                if !out.contains(code) {
                    out.push(*code);
                }
            }
        }
    }
    // The request deadline wraps every route (`http::limits`).
    if !out.is_empty() {
        out.push(E::Timeout);
    }
    out
}

fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// One problem+json response: the Problem schema with `code` narrowed to `codes`.
pub(super) fn problem_response(status: u16, codes: &[ErrorCode]) -> Value {
    let names: Vec<String> = codes.iter().map(|c| code_name(*c)).collect();
    let titles: Vec<String> = codes
        .iter()
        .zip(&names)
        .map(|(c, n)| format!("{} (`{n}`)", c.title()))
        .collect();
    let mut response = json!({
        "description": titles.join("; "),
        "content": {
            "application/problem+json": {
                "schema": {
                    "allOf": [
                        { "$ref": "#/components/schemas/Problem" },
                        {
                            "type": "object",
                            "properties": {
                                "status": { "const": status },
                                "code": { "type": "string", "enum": names },
                            },
                        },
                    ],
                },
            },
        },
    });
    if status == 401 {
        response["headers"] = json!({
            "WWW-Authenticate": {
                "description": "Always `Bearer`.",
                "required": true,
                "schema": { "type": "string", "const": "Bearer" },
            },
        });
    }
    response
}

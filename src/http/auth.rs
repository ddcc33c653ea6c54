//! Logging in, and the extractor that checks a bearer token and the caller's role.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::limits::LoginAttempt;
use super::{PUBLIC_JSON_LIMIT, State, input, with_body_limit, with_conn};
use crate::auth::{Role, TOKEN_TTL_SECS, authenticate};
use crate::error::{AppError, ErrorCode};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(with_body_limit("/api/auth/login", Method::POST, PUBLIC_JSON_LIMIT).to(login));
}

/// A staff member's credentials.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginRequest {
    email: String,
    #[schema(format = Password)]
    password: String,
}

/// A bearer token for the staff API.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct LoginResponse {
    /// Send as `Authorization: Bearer ...`.
    access_token: String,
    /// Always `Bearer`.
    #[schema(pattern = "^Bearer$")]
    token_type: &'static str,
    /// Seconds the token is valid.
    expires_in: i64,
    /// What the token may do.
    role: Role,
}

/// Exchanges a staff member's email and password for a bearer token.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "public",
    request_body = LoginRequest,
    responses((status = 200, description = "Signed in", body = LoginResponse)),
)]
/// Limited per client address (before the body is read) and per account (whatever the
/// address), so neither one machine nor many can guess a password quickly.
#[tracing::instrument(skip_all)]
pub(super) async fn login(
    _attempt: LoginAttempt,
    state: State,
    req: HttpRequest,
    body: input::JsonObject<LoginRequest>,
) -> Result<HttpResponse, AppError> {
    let LoginRequest { email, password } = body.into_inner();
    state.limits.login_account_everywhere(&email).await?;
    if password.len() > 1024 {
        return Err(AppError::new(
            ErrorCode::Unauthorized,
            "wrong email or password",
        ));
    }
    // Every attempt that reaches the password check is in the audit trail, with the client's
    // address (the limits above bound how many a client can write).
    let client = super::client_ip::client_ip(
        req.peer_addr().map(|a| a.ip()),
        req.headers(),
        state.config.limits.proxy.as_ref(),
    )
    .map_or_else(String::new, |ip| ip.to_string());
    let typed: String = email.trim().to_lowercase().chars().take(254).collect();
    let checked = with_conn(&state, move |c| authenticate(c, &email, &password)).await;
    let (action, actor) = match &checked {
        Ok((email, _)) => ("auth.login", email.clone()),
        Err(e) if e.code == ErrorCode::Unauthorized => ("auth.login_failed", typed),
        Err(_) => return checked.map(|_| HttpResponse::Ok().finish()),
    };
    state
        .writer
        .submit(crate::ledger::ops::RecordAudit {
            actor,
            action: action.into(),
            detail: serde_json::json!({ "client": client }),
        })
        .await?;
    let (email, role) = checked?;
    let token = state.keys.issue(&email, role)?;
    tracing::debug!(%email, "login");
    Ok(HttpResponse::Ok().json(LoginResponse {
        access_token: token,
        token_type: "Bearer",
        expires_in: TOKEN_TTL_SECS,
        role,
    }))
}

/// An authenticated staff member (from `Authorization: Bearer ...`).
#[derive(Debug, Clone)]
pub struct Staff {
    /// The user's email.
    pub email: String,
    /// The user's role.
    pub role: Role,
}

impl Staff {
    /// Succeeds if the caller may act as `needed` (403 otherwise).
    pub fn require(self, needed: Role) -> Result<Staff, AppError> {
        if self.role.allows(needed) {
            Ok(self)
        } else {
            Err(AppError::new(
                ErrorCode::Forbidden,
                format!("this needs the {} role", needed.as_str()),
            ))
        }
    }
}

impl FromRequest for Staff {
    type Error = AppError;
    type Future = Ready<Result<Staff, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(staff_of(req))
    }
}

fn staff_of(req: &HttpRequest) -> Result<Staff, AppError> {
    let state = req
        .app_data::<State>()
        .ok_or_else(|| AppError::internal("application state missing"))?;
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| {
            AppError::new(ErrorCode::Unauthorized, "a valid access token is required")
        })?;
    let claims = state.keys.check(token.trim())?;
    Ok(Staff {
        email: claims.sub,
        role: claims.role,
    })
}

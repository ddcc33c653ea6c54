//! Logging in (a password, then a second factor when the account has one), and the
//! extractors that check a bearer token, its session and the caller's role.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::limits::LoginAttempt;
use super::{PUBLIC_JSON_LIMIT, State, input, with_body_limit, with_conn};
use crate::auth::ops::{SecondFactor, StartSession};
use crate::auth::{Account, Grant, Role, TOKEN_TTL_SECS, authenticate, sessions};
use crate::error::{AppError, ErrorCode};

pub(super) mod account;
pub(super) mod session_routes;

/// How long a password or second factor entered counts for dangerous actions, seconds.
pub const REAUTH_WINDOW_SECS: i64 = 600;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(with_body_limit("/api/auth/login", Method::POST, PUBLIC_JSON_LIMIT).to(login))
        .service(with_body_limit("/api/auth/mfa", Method::POST, PUBLIC_JSON_LIMIT).to(mfa));
    account::routes(cfg);
    session_routes::routes(cfg);
}

/// A staff member's credentials.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginRequest {
    email: String,
    #[schema(format = Password)]
    password: String,
}

/// A login's answer: a bearer token, or (`mfa_required`) the token to send with a
/// second-factor code to `POST /api/auth/mfa`.
#[derive(serde::Serialize, utoipa::ToSchema, Default)]
pub(in crate::http) struct LoginResponse {
    /// Send as `Authorization: Bearer ...`.
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    /// Always `Bearer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^Bearer$")]
    token_type: Option<&'static str>,
    /// Seconds the token is valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<i64>,
    /// What the token may do.
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    /// True when the password was right and a second factor is due: send `mfa_token` and a
    /// code to `POST /api/auth/mfa`.
    mfa_required: bool,
    /// Valid five minutes, for `POST /api/auth/mfa` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_token: Option<String>,
    /// True when this account must enrol a second factor (`REQUIRE_2FA`): the token can
    /// only enrol (`POST /api/auth/2fa/enrol`, then `/confirm`).
    enrolment_required: bool,
}

impl LoginResponse {
    /// A token for session `sid` of an account that proved who it is just now (password or
    /// second factor): dangerous actions are open to it for ten minutes.
    pub(super) fn proved_now(
        state: &State,
        email: &str,
        role: Role,
        sid: &str,
        enrol_only: bool,
    ) -> Result<LoginResponse, AppError> {
        let grant = Grant {
            email,
            role,
            sid,
            auth_time: chrono::Utc::now().timestamp(),
            enrol_only,
        };
        Ok(LoginResponse {
            access_token: Some(state.keys.issue(&grant)?),
            token_type: Some("Bearer"),
            expires_in: Some(TOKEN_TTL_SECS),
            role: Some(role),
            enrolment_required: enrol_only,
            ..LoginResponse::default()
        })
    }
}

/// The client's address as the audit records it (behind the trusted proxy, the forwarded one).
pub(super) fn client_of(req: &HttpRequest, state: &State) -> String {
    super::client_ip::client_ip(
        req.peer_addr().map(|a| a.ip()),
        req.headers(),
        state.config.limits.proxy.as_ref(),
    )
    .map_or_else(String::new, |ip| ip.to_string())
}

/// A new session for `account`, to be started by the writer.
pub(super) fn new_session(
    req: &HttpRequest,
    state: &State,
    account: &Account,
    action: &'static str,
) -> StartSession {
    let client = client_of(req, state);
    let user_agent = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    StartSession {
        user_id: account.id,
        email: account.email.clone(),
        sid: sessions::new_sid(),
        expires_at: crate::db::now() + chrono::Duration::seconds(TOKEN_TTL_SECS),
        detail: serde_json::json!({ "client": client }),
        client,
        user_agent,
        action,
    }
}

fn wrong_password() -> AppError {
    AppError::new(ErrorCode::Unauthorized, "wrong email or password")
}

/// Exchanges a staff member's email and password for a bearer token, or, when the account
/// has a second factor, for the token that goes with a code to `POST /api/auth/mfa`.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "public",
    request_body = LoginRequest,
    responses((status = 200, description = "Signed in, or a second factor is due", body = LoginResponse)),
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
        return Err(wrong_password());
    }
    // Every attempt that reaches the password check is in the audit trail, with the client's
    // address (the limits above bound how many a client can write).
    let client = client_of(&req, &state);
    let typed: String = email.trim().to_lowercase().chars().take(254).collect();
    let checked = with_conn(&state, move |c| authenticate(c, &email, &password)).await;
    let account = match checked {
        Ok(account) => account,
        Err(e) if e.code == ErrorCode::Unauthorized => {
            state
                .writer
                .submit(crate::ledger::ops::RecordAudit {
                    actor: typed,
                    action: "auth.login_failed".into(),
                    detail: serde_json::json!({ "client": client }),
                })
                .await?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    if account.disabled {
        state
            .writer
            .submit(crate::ledger::ops::RecordAudit {
                actor: account.email.clone(),
                action: "auth.login_refused".into(),
                detail: serde_json::json!({ "client": client, "reason": "disabled" }),
            })
            .await?;
        return Err(disabled());
    }
    if account.mfa_enabled {
        return Ok(HttpResponse::Ok().json(LoginResponse {
            mfa_required: true,
            mfa_token: Some(state.keys.issue_mfa(&account.email)?),
            ..LoginResponse::default()
        }));
    }
    let enrol_only = state.config.require_mfa.applies_to(account.role);
    let session = new_session(&req, &state, &account, "auth.login");
    let sid = session.sid.clone();
    state.writer.submit(session).await?;
    tracing::debug!(email = %account.email, "login");
    Ok(HttpResponse::Ok().json(LoginResponse::proved_now(
        &state,
        &account.email,
        account.role,
        &sid,
        enrol_only,
    )?))
}

fn disabled() -> AppError {
    AppError::new(ErrorCode::AccountDisabled, "this account is disabled")
}

/// The second step of a login: the token `POST /api/auth/login` gave and a code from the
/// authenticator app (or an unused recovery code).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MfaRequest {
    mfa_token: String,
    /// Six digits, or a recovery code (`xxxxx-xxxxx`).
    code: String,
}

/// Completes a login with a second factor. A code is accepted once; attempts are limited
/// per client address and per account, as passwords are.
#[utoipa::path(
    post,
    path = "/api/auth/mfa",
    tag = "public",
    request_body = MfaRequest,
    responses((status = 200, description = "Signed in", body = LoginResponse)),
)]
#[tracing::instrument(skip_all)]
pub(super) async fn mfa(
    _attempt: LoginAttempt,
    state: State,
    req: HttpRequest,
    body: input::JsonObject<MfaRequest>,
) -> Result<HttpResponse, AppError> {
    let MfaRequest { mfa_token, code } = body.into_inner();
    let claims = state.keys.check_mfa(mfa_token.trim())?;
    state.limits.login_account_everywhere(&claims.sub).await?;
    let email = claims.sub.clone();
    let account = with_conn(&state, move |c| Account::find(c, &email))
        .await?
        .ok_or_else(wrong_code)?;
    if account.disabled {
        return Err(disabled());
    }
    let session = new_session(&req, &state, &account, "auth.login");
    let sid = session.sid.clone();
    let accepted = state
        .writer
        .submit(SecondFactor {
            user_id: account.id,
            email: account.email.clone(),
            code: code.chars().take(64).collect(),
            unix_secs: unix_now(),
            client: client_of(&req, &state),
            session: Some(session),
        })
        .await?;
    if accepted.is_none() {
        return Err(wrong_code());
    }
    Ok(HttpResponse::Ok().json(LoginResponse::proved_now(
        &state,
        &account.email,
        account.role,
        &sid,
        false,
    )?))
}

pub(super) fn wrong_code() -> AppError {
    AppError::new(ErrorCode::Unauthorized, "wrong or already used code")
}

pub(super) fn unix_now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0)
}

/// An authenticated staff member (from `Authorization: Bearer ...`), whose session is open
/// and who needs no second factor enrolled first.
#[derive(Debug, Clone)]
pub struct Staff {
    /// The user's email.
    pub email: String,
    /// The user's role.
    pub role: Role,
    /// The session.
    pub sid: String,
    /// When they last entered their password or a second factor (Unix seconds).
    pub auth_time: i64,
    /// True while only enrolment is allowed.
    enrol_only: bool,
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

    /// Succeeds if the caller entered their password or a second factor in the last ten
    /// minutes ("sudo mode"); 403 `reauth_required` otherwise.
    pub fn require_recent(self) -> Result<Staff, AppError> {
        let age = chrono::Utc::now().timestamp() - self.auth_time;
        if age <= REAUTH_WINDOW_SECS {
            Ok(self)
        } else {
            Err(AppError::new(
                ErrorCode::ReauthRequired,
                "enter your password or a code again (POST /api/auth/reauth) to do this",
            ))
        }
    }
}

impl FromRequest for Staff {
    type Error = AppError;
    type Future = Ready<Result<Staff, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(staff_of(req).and_then(|s| {
            if s.enrol_only {
                Err(AppError::new(
                    ErrorCode::MfaEnrolmentRequired,
                    "enrol a second factor first (POST /api/auth/2fa/enrol)",
                ))
            } else {
                Ok(s)
            }
        }))
    }
}

/// Any signed-in staff member, including one who may only enrol a second factor.
#[derive(Debug, Clone)]
pub struct SignedIn(pub Staff);

impl FromRequest for SignedIn {
    type Error = AppError;
    type Future = Ready<Result<SignedIn, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(staff_of(req).map(SignedIn))
    }
}

fn staff_of(req: &HttpRequest) -> Result<Staff, AppError> {
    let state = req
        .app_data::<State>()
        .ok_or_else(|| AppError::internal("application state missing"))?;
    let unauthorized =
        || AppError::new(ErrorCode::Unauthorized, "a valid access token is required");
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(unauthorized)?;
    let claims = state.keys.check(token.trim())?;
    // In memory: no database read per request (see `auth::sessions`).
    if state.sessions.is_ended(&claims.sid) {
        return Err(AppError::new(
            ErrorCode::Unauthorized,
            "this session has ended; log in again",
        ));
    }
    Ok(Staff {
        email: claims.sub,
        role: claims.role,
        sid: claims.sid,
        auth_time: claims.auth_time,
        enrol_only: claims.enrol_only,
    })
}

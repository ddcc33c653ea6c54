//! A signed-in staff member's own account: enrolling a second factor, recovery codes,
//! re-authenticating for dangerous actions, changing the password, and who they are.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::super::{State, input, with_conn};
use super::{LoginResponse, SignedIn, Staff, new_session, unix_now, wrong_code};
use crate::auth::ops::{
    BeginEnrolment, ChangePassword, ConfirmEnrolment, NewRecoveryCodes, SecondFactor,
};
use crate::auth::{Account, Role, check_new_password, hash_password, password_matches, totp};
use crate::error::{AppError, ErrorCode};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/auth/me", web::get().to(me))
        .route("/api/auth/2fa/enrol", web::post().to(enrol))
        .route("/api/auth/2fa/confirm", web::post().to(confirm))
        .route(
            "/api/auth/2fa/recovery-codes",
            web::post().to(recovery_codes),
        )
        .route("/api/auth/reauth", web::post().to(reauth))
        .route("/api/auth/password", web::post().to(change_password));
}

/// The signed-in account's own record.
pub(in crate::http) async fn account_of(state: &State, email: &str) -> Result<Account, AppError> {
    let email = email.to_owned();
    with_conn(state, move |c| Account::find(c, &email))
        .await?
        .ok_or_else(|| AppError::new(ErrorCode::Unauthorized, "this account no longer exists"))
}

/// Who the caller is.
#[derive(Serialize, utoipa::ToSchema)]
pub(in crate::http) struct Me {
    email: String,
    role: Role,
    /// True once a second factor is enrolled.
    mfa_enabled: bool,
    /// True while this session may only enrol a second factor.
    enrolment_required: bool,
    /// Until when dangerous actions need no new password or code.
    reauth_until: chrono::DateTime<chrono::Utc>,
}

/// The signed-in account: role, second factor, and until when dangerous actions are open.
#[utoipa::path(
    get,
    path = "/api/auth/me",
    tag = "staff",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = Me)),
)]
pub(in crate::http) async fn me(who: SignedIn, state: State) -> Result<HttpResponse, AppError> {
    let staff = who.0;
    let account = account_of(&state, &staff.email).await?;
    let until = staff.auth_time + super::REAUTH_WINDOW_SECS;
    Ok(HttpResponse::Ok().json(Me {
        email: account.email,
        role: account.role,
        mfa_enabled: account.mfa_enabled,
        enrolment_required: staff.enrol_only,
        reauth_until: chrono::DateTime::from_timestamp(until, 0).unwrap_or_default(),
    }))
}

/// A second factor to add to an authenticator app.
#[derive(Serialize, utoipa::ToSchema)]
pub(in crate::http) struct Enrolment {
    /// The secret, base32, for typing into the app by hand.
    secret: String,
    /// The `otpauth://` URL the QR code holds.
    otpauth_url: String,
    /// The QR code, as an SVG document.
    qr_svg: String,
}

/// Starts enrolling a second factor: a new secret, its QR code and URL. Nothing changes at
/// login until `POST /api/auth/2fa/confirm` gets a first code from it.
#[utoipa::path(
    post,
    path = "/api/auth/2fa/enrol",
    tag = "staff",
    security(("bearer" = [])),
    responses((status = 200, description = "A secret to add to an authenticator app", body = Enrolment)),
)]
pub(in crate::http) async fn enrol(who: SignedIn, state: State) -> Result<HttpResponse, AppError> {
    let account = account_of(&state, &who.0.email).await?;
    let secret = totp::new_secret();
    state
        .writer
        .submit(BeginEnrolment {
            user_id: account.id,
            secret: secret.clone(),
        })
        .await?;
    let otpauth_url = totp::otpauth_url(&secret, &account.email)?;
    let qr_svg = totp::qr_svg(&otpauth_url)?;
    Ok(HttpResponse::Ok().json(Enrolment {
        secret,
        otpauth_url,
        qr_svg,
    }))
}

/// A code from the authenticator app (or a recovery code, where one is accepted).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(in crate::http) struct CodeRequest {
    code: String,
}

/// Recovery codes, shown once: each signs in once when the authenticator app is lost.
#[derive(Serialize, utoipa::ToSchema)]
pub(in crate::http) struct RecoveryCodes {
    recovery_codes: Vec<String>,
}

/// The second factor is on: the recovery codes (shown once) and a fresh token for this
/// session, no longer limited to enrolment.
#[derive(Serialize, utoipa::ToSchema)]
pub(in crate::http) struct Confirmed {
    recovery_codes: Vec<String>,
    #[serde(flatten)]
    token: LoginResponse,
}

/// Confirms the enrolment with a first code: from now on a login asks for a code. Answers
/// ten recovery codes (shown this once, stored hashed) and a token that is no longer
/// limited to enrolment.
#[utoipa::path(
    post,
    path = "/api/auth/2fa/confirm",
    tag = "staff",
    security(("bearer" = [])),
    request_body = CodeRequest,
    responses((status = 200, description = "Second factor on", body = Confirmed)),
)]
pub(in crate::http) async fn confirm(
    who: SignedIn,
    state: State,
    body: input::JsonObject<CodeRequest>,
) -> Result<HttpResponse, AppError> {
    let staff = who.0;
    state.limits.login_account_everywhere(&staff.email).await?;
    let account = account_of(&state, &staff.email).await?;
    let codes = totp::new_recovery_codes();
    let ok = state
        .writer
        .submit(ConfirmEnrolment {
            user_id: account.id,
            email: account.email.clone(),
            code: body.into_inner().code.chars().take(64).collect(),
            unix_secs: unix_now(),
            recovery_hashes: codes.iter().map(|(_, h)| h.clone()).collect(),
        })
        .await?;
    if !ok {
        return Err(wrong_code());
    }
    let token = LoginResponse::proved_now(&state, &account.email, account.role, &staff.sid, false)?;
    Ok(HttpResponse::Ok().json(Confirmed {
        recovery_codes: codes.into_iter().map(|(c, _)| c).collect(),
        token,
    }))
}

/// Replaces the recovery codes (the old ones stop working); needs a recent password or code.
#[utoipa::path(
    post,
    path = "/api/auth/2fa/recovery-codes",
    tag = "staff",
    security(("bearer" = [])),
    responses((status = 200, description = "New recovery codes", body = RecoveryCodes)),
)]
pub(in crate::http) async fn recovery_codes(
    staff: Staff,
    state: State,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require_recent()?;
    let account = account_of(&state, &staff.email).await?;
    let codes = totp::new_recovery_codes();
    state
        .writer
        .submit(NewRecoveryCodes {
            user_id: account.id,
            email: account.email,
            hashes: codes.iter().map(|(_, h)| h.clone()).collect(),
        })
        .await?;
    Ok(HttpResponse::Ok().json(RecoveryCodes {
        recovery_codes: codes.into_iter().map(|(c, _)| c).collect(),
    }))
}

/// The password, or (for an account with a second factor) a code instead.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(in crate::http) struct ReauthRequest {
    #[schema(format = Password)]
    password: Option<String>,
    code: Option<String>,
}

/// Proves again who the caller is, for the dangerous actions of the next ten minutes
/// (refunds, target changes, role changes, exports of donor data): answers a fresh token for
/// the same session. Limited per account like logins.
#[utoipa::path(
    post,
    path = "/api/auth/reauth",
    tag = "staff",
    security(("bearer" = [])),
    request_body = ReauthRequest,
    responses((status = 200, description = "A token good for dangerous actions", body = LoginResponse)),
)]
pub(in crate::http) async fn reauth(
    staff: Staff,
    state: State,
    req: HttpRequest,
    body: input::JsonObject<ReauthRequest>,
) -> Result<HttpResponse, AppError> {
    state.limits.login_account_everywhere(&staff.email).await?;
    let account = account_of(&state, &staff.email).await?;
    let client = super::client_of(&req, &state);
    let ReauthRequest { password, code } = body.into_inner();
    let proved = match (password, code) {
        (Some(password), None) if password.len() <= 1024 => {
            let id = account.id;
            let ok = with_conn(&state, move |c| password_matches(c, id, &password)).await?;
            let action = if ok {
                "auth.reauth"
            } else {
                "auth.reauth_failed"
            };
            state
                .writer
                .submit(crate::ledger::ops::RecordAudit {
                    actor: account.email.clone(),
                    action: action.into(),
                    detail: serde_json::json!({ "client": client, "with": "password" }),
                })
                .await?;
            ok
        }
        (None, Some(code)) => state
            .writer
            .submit(SecondFactor {
                user_id: account.id,
                email: account.email.clone(),
                code: code.chars().take(64).collect(),
                unix_secs: unix_now(),
                session: None,
                client,
            })
            .await?
            .is_some(),
        _ => {
            return Err(AppError::invalid_field(
                "password",
                "send either the password or a code",
            ));
        }
    };
    if !proved {
        return Err(AppError::new(
            ErrorCode::Unauthorized,
            "wrong password or code",
        ));
    }
    Ok(HttpResponse::Ok().json(LoginResponse::proved_now(
        &state,
        &account.email,
        account.role,
        &staff.sid,
        false,
    )?))
}

/// The current password and the new one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(in crate::http) struct PasswordChange {
    #[schema(format = Password)]
    current_password: String,
    /// At least 12 characters, not a common password, not the email.
    #[schema(format = Password)]
    new_password: String,
}

/// Changes the caller's own password. Every session of the account ends (on every device);
/// the answer is a token for a new one.
#[utoipa::path(
    post,
    path = "/api/auth/password",
    tag = "staff",
    security(("bearer" = [])),
    request_body = PasswordChange,
    responses((status = 200, description = "Changed; a token for a new session", body = LoginResponse)),
)]
pub(in crate::http) async fn change_password(
    staff: Staff,
    state: State,
    req: HttpRequest,
    body: input::JsonObject<PasswordChange>,
) -> Result<HttpResponse, AppError> {
    state.limits.login_account_everywhere(&staff.email).await?;
    let PasswordChange {
        current_password,
        new_password,
    } = body.into_inner();
    let account = account_of(&state, &staff.email).await?;
    check_new_password("new_password", &new_password, &account.email)?;
    if current_password.len() > 1024 || current_password == new_password {
        return Err(AppError::invalid_field(
            "new_password",
            "choose a password other than the current one",
        ));
    }
    let id = account.id;
    let hash = with_conn(&state, move |c| {
        if password_matches(c, id, &current_password)? {
            hash_password(&new_password).map(Some)
        } else {
            Ok(None)
        }
    })
    .await?
    .ok_or_else(|| AppError::invalid_field("current_password", "the current password is wrong"))?;
    let session = new_session(&req, &state, &account, "auth.password_changed");
    let sid = session.sid.clone();
    let ended = state
        .writer
        .submit(ChangePassword {
            password_hash: hash,
            session,
        })
        .await?;
    state.sessions.mark_ended(&ended);
    Ok(HttpResponse::Ok().json(LoginResponse::proved_now(
        &state,
        &account.email,
        account.role,
        &sid,
        state.config.require_mfa.applies_to(account.role) && !account.mfa_enabled,
    )?))
}

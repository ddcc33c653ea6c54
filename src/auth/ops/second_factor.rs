//! The second factor as writer commands: codes checked and spent in the statement that checks
//! them, enrolment, recovery codes, and the reset of a locked-out account.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{StartSession, user_id_of};
use crate::auth::{sessions, totp};
use crate::db::DbConn;
use crate::db::schema::{recovery_codes, users};
use crate::error::{AppError, ErrorCode};
use crate::ledger::{Ctx, Op};

/// Checks a second factor (a TOTP code, or a recovery code, each usable once) and, if it is
/// right, starts `session` (a login) or records a re-authentication. A wrong code is
/// recorded as `auth.mfa_failed`.
#[derive(Debug, Clone)]
pub struct SecondFactor {
    /// The account.
    pub user_id: i64,
    /// Its email.
    pub email: String,
    /// What was typed.
    pub code: String,
    /// The time the code is checked at, Unix seconds.
    pub unix_secs: u64,
    /// The session to start when the code is right; none for a re-authentication.
    pub session: Option<StartSession>,
    /// The client's address (for the audit).
    pub client: String,
}

impl Op for SecondFactor {
    /// The kind of code that was accepted (`totp` or `recovery_code`), or none.
    type Output = Option<&'static str>;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<Option<&'static str>, AppError> {
        let method = accept_code(cx.conn()?, self.user_id, &self.code, self.unix_secs)?;
        match (method, &self.session) {
            (Some(m), Some(session)) => {
                let mut session = session.clone();
                session.detail["second_factor"] = m.into();
                session.start(cx)?;
            }
            (Some(m), None) => cx.audit(
                &self.email,
                "auth.reauth",
                &serde_json::json!({ "client": self.client, "second_factor": m }),
            )?,
            (None, _) => cx.audit(
                &self.email,
                "auth.mfa_failed",
                &serde_json::json!({ "client": self.client }),
            )?,
        }
        Ok(method)
    }
}

/// Accepts a TOTP code of a step later than the last accepted one, or an unused recovery
/// code; marks it used in the same statement that checks it.
fn accept_code(
    conn: &mut DbConn,
    user_id: i64,
    code: &str,
    unix_secs: u64,
) -> Result<Option<&'static str>, AppError> {
    let (secret, enabled, last): (Option<String>, Option<NaiveDateTime>, Option<i64>) =
        users::table
            .find(user_id)
            .select((
                users::totp_secret,
                users::totp_enabled_at,
                users::totp_last_step,
            ))
            .first(conn)?;
    let Some(secret) = secret.filter(|_| enabled.is_some()) else {
        return Ok(None);
    };
    if let Some(step) = totp::accepted_step(&secret, code, unix_secs, last)? {
        let taken = diesel::update(
            users::table.find(user_id).filter(
                users::totp_last_step
                    .is_null()
                    .or(users::totp_last_step.lt(step)),
            ),
        )
        .set(users::totp_last_step.eq(step))
        .execute(conn)?;
        return Ok((taken == 1).then_some("totp"));
    }
    let used = diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::code_hash.eq(totp::recovery_hash(code)))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(crate::db::now()))
    .execute(conn)?;
    Ok((used > 0).then_some("recovery_code"))
}

/// Stores a new, not yet confirmed TOTP secret for an account without a second factor.
#[derive(Debug, Clone)]
pub struct BeginEnrolment {
    /// The account.
    pub user_id: i64,
    /// The new secret (base32).
    pub secret: String,
}

impl Op for BeginEnrolment {
    type Output = ();

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<(), AppError> {
        let conn = cx.conn()?;
        let changed = diesel::update(
            users::table
                .find(self.user_id)
                .filter(users::totp_enabled_at.is_null()),
        )
        .set(users::totp_secret.eq(&self.secret))
        .execute(conn)?;
        if changed == 0 {
            return Err(already_enabled());
        }
        Ok(())
    }
}

fn already_enabled() -> AppError {
    AppError::new(
        ErrorCode::MfaAlreadyEnabled,
        "this account already has a second factor; `crowdledger user reset-2fa` removes it",
    )
}

/// Confirms an enrolment with a first code: the second factor is in effect from then on,
/// with `recovery_hashes` as its recovery codes.
#[derive(Debug, Clone)]
pub struct ConfirmEnrolment {
    /// The account.
    pub user_id: i64,
    /// Its email.
    pub email: String,
    /// The first code.
    pub code: String,
    /// When it is checked.
    pub unix_secs: u64,
    /// Hashes of the new recovery codes.
    pub recovery_hashes: Vec<String>,
}

impl Op for ConfirmEnrolment {
    /// False if the code was wrong (nothing changed).
    type Output = bool;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<bool, AppError> {
        let conn = cx.conn()?;
        let (secret, enabled): (Option<String>, Option<NaiveDateTime>) = users::table
            .find(self.user_id)
            .select((users::totp_secret, users::totp_enabled_at))
            .first(conn)?;
        if enabled.is_some() {
            return Err(already_enabled());
        }
        let Some(secret) = secret else {
            return Err(AppError::invalid_field(
                "code",
                "start the enrolment first (POST /api/auth/2fa/enrol)",
            ));
        };
        let Some(step) = totp::accepted_step(&secret, &self.code, self.unix_secs, None)? else {
            return Ok(false);
        };
        diesel::update(users::table.find(self.user_id))
            .set((
                users::totp_enabled_at.eq(crate::db::now()),
                users::totp_last_step.eq(step),
            ))
            .execute(conn)?;
        replace_recovery_codes(conn, self.user_id, &self.recovery_hashes)?;
        cx.audit(&self.email, "auth.2fa_enabled", &serde_json::json!({}))?;
        Ok(true)
    }
}

fn replace_recovery_codes(
    conn: &mut DbConn,
    user_id: i64,
    hashes: &[String],
) -> Result<(), AppError> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
        .execute(conn)?;
    // One statement a code: diesel's MultiConnection has no multi-row insert; ten rows.
    for h in hashes {
        diesel::insert_into(recovery_codes::table)
            .values((
                recovery_codes::user_id.eq(user_id),
                recovery_codes::code_hash.eq(h),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Replaces an enrolled account's recovery codes.
#[derive(Debug, Clone)]
pub struct NewRecoveryCodes {
    /// The account.
    pub user_id: i64,
    /// Its email.
    pub email: String,
    /// Hashes of the new codes.
    pub hashes: Vec<String>,
}

impl Op for NewRecoveryCodes {
    type Output = ();

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<(), AppError> {
        let conn = cx.conn()?;
        let enabled: Option<NaiveDateTime> = users::table
            .find(self.user_id)
            .select(users::totp_enabled_at)
            .first(conn)?;
        if enabled.is_none() {
            return Err(AppError::invalid_field(
                "recovery_codes",
                "enrol a second factor first",
            ));
        }
        replace_recovery_codes(conn, self.user_id, &self.hashes)?;
        cx.audit(
            &self.email,
            "auth.recovery_codes_replaced",
            &serde_json::json!({}),
        )
    }
}

/// Removes an account's second factor and ends its sessions (an admin locked out: `crowdledger
/// user reset-2fa`); the account enrols again at its next login.
#[derive(Debug, Clone)]
pub struct ResetSecondFactor {
    /// The account's email.
    pub email: String,
    /// Who did it.
    pub by: String,
}

impl Op for ResetSecondFactor {
    /// The sessions ended.
    type Output = Vec<String>;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<Vec<String>, AppError> {
        let conn = cx.conn()?;
        let id = user_id_of(conn, &self.email)?;
        diesel::update(users::table.find(id))
            .set((
                users::totp_secret.eq(None::<String>),
                users::totp_enabled_at.eq(None::<NaiveDateTime>),
                users::totp_last_step.eq(None::<i64>),
            ))
            .execute(conn)?;
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(id)))
            .execute(conn)?;
        let ended = sessions::end_all_of(conn, id, &self.by)?;
        cx.audit(
            &self.by,
            "auth.2fa_reset",
            &serde_json::json!({ "user": self.email, "sessions_ended": ended.len() }),
        )?;
        Ok(ended)
    }
}

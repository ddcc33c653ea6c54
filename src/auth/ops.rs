//! Account changes as writer commands: each change and its audit row commit together, and
//! the writer applies them one at a time (so "the last active admin" cannot race).

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::{Role, sessions, totp};
use crate::db::DbConn;
use crate::db::models::NewUser;
use crate::db::schema::{recovery_codes, staff_sessions, users};
use crate::error::{AppError, ErrorCode};
use crate::ledger::{Ctx, Op};

/// A staff account as the admin page lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    /// The id.
    pub id: i64,
    /// The email (the login name).
    pub email: String,
    /// The role.
    pub role: Role,
    /// Disabled accounts cannot log in.
    pub disabled: bool,
    /// True once a second factor is enrolled.
    pub mfa_enabled: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Sessions open now.
    pub active_sessions: i64,
}

type UserFields = (
    i64,
    String,
    String,
    bool,
    Option<NaiveDateTime>,
    NaiveDateTime,
);

fn user_fields() -> (
    users::id,
    users::email,
    users::role,
    users::disabled,
    users::totp_enabled_at,
    users::created_at,
) {
    (
        users::id,
        users::email,
        users::role,
        users::disabled,
        users::totp_enabled_at,
        users::created_at,
    )
}

fn view(conn: &mut DbConn, f: UserFields) -> Result<UserView, AppError> {
    let active_sessions = staff_sessions::table
        .filter(staff_sessions::user_id.eq(f.0))
        .filter(staff_sessions::ended_at.is_null())
        .filter(staff_sessions::expires_at.gt(crate::db::now()))
        .count()
        .get_result(conn)?;
    Ok(UserView {
        id: f.0,
        email: f.1,
        role: Role::parse(&f.2).unwrap_or(Role::Treasurer),
        disabled: f.3,
        mfa_enabled: f.4.is_some(),
        created_at: f.5.and_utc(),
        active_sessions,
    })
}

/// Every staff account, by email.
pub fn list_users(conn: &mut DbConn) -> Result<Vec<UserView>, AppError> {
    let rows: Vec<UserFields> = users::table
        .order(users::email.asc())
        .select(user_fields())
        .load(conn)?;
    rows.into_iter().map(|f| view(conn, f)).collect()
}

/// One account by id.
pub fn user_by_id(conn: &mut DbConn, id: i64) -> Result<Option<UserView>, AppError> {
    let row: Option<UserFields> = users::table
        .find(id)
        .select(user_fields())
        .first(conn)
        .optional()?;
    row.map(|f| view(conn, f)).transpose()
}

/// Starts a session (and records the login, or what `action` says, in the audit trail).
#[derive(Debug, Clone)]
pub struct StartSession {
    /// The account.
    pub user_id: i64,
    /// Its email (the audit's actor).
    pub email: String,
    /// The new session's id.
    pub sid: String,
    /// When it ends by itself.
    pub expires_at: NaiveDateTime,
    /// The client's address.
    pub client: String,
    /// The client's `User-Agent`, cut to 200 characters.
    pub user_agent: String,
    /// The audit action, e.g. `auth.login`.
    pub action: &'static str,
    /// The audit detail.
    pub detail: serde_json::Value,
}

impl StartSession {
    fn start(&self, cx: &mut Ctx<'_>) -> Result<(), AppError> {
        let now = cx.now;
        diesel::insert_into(staff_sessions::table)
            .values((
                staff_sessions::id.eq(&self.sid),
                staff_sessions::user_id.eq(self.user_id),
                staff_sessions::created_at.eq(now),
                staff_sessions::expires_at.eq(self.expires_at),
                staff_sessions::client.eq(&self.client),
                staff_sessions::user_agent.eq(&self.user_agent),
            ))
            .execute(cx.conn()?)?;
        cx.audit(&self.email, self.action, &self.detail)
    }
}

impl Op for StartSession {
    type Output = ();

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<(), AppError> {
        self.start(cx)
    }
}

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

fn user_id_of(conn: &mut DbConn, email: &str) -> Result<i64, AppError> {
    users::table
        .filter(users::email.eq(email))
        .select(users::id)
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::new(ErrorCode::NotFound, "no staff account has this email"))
}

/// Ends one session or all of an account's (logout, an admin ending another's).
#[derive(Debug, Clone)]
pub struct EndSessions {
    /// The account whose sessions end.
    pub user_id: i64,
    /// Its email.
    pub email: String,
    /// One session, or all of them.
    pub sid: Option<String>,
    /// Who ends them.
    pub by: String,
    /// `auth.logout` or `auth.session_ended`.
    pub action: &'static str,
}

impl Op for EndSessions {
    /// The sessions ended.
    type Output = Vec<String>;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<Vec<String>, AppError> {
        let conn = cx.conn()?;
        let ended = match &self.sid {
            Some(sid) => sessions::end_one(conn, self.user_id, sid, &self.by)?,
            None => sessions::end_all_of(conn, self.user_id, &self.by)?,
        };
        if !ended.is_empty() {
            cx.audit(
                &self.by,
                self.action,
                &serde_json::json!({ "user": self.email, "sessions_ended": ended.len() }),
            )?;
        }
        Ok(ended)
    }
}

/// Creates a staff account (the password already hashed).
#[derive(Debug, Clone)]
pub struct CreateUser {
    /// Normalised email.
    pub email: String,
    /// Role.
    pub role: Role,
    /// argon2id hash.
    pub password_hash: String,
    /// The admin creating it.
    pub by: String,
}

impl Op for CreateUser {
    type Output = UserView;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<UserView, AppError> {
        let conn = cx.conn()?;
        let taken = users::table
            .filter(users::email.eq(&self.email))
            .count()
            .get_result::<i64>(conn)?;
        if taken > 0 {
            return Err(AppError::new(
                ErrorCode::UserExists,
                "a staff account with this email exists",
            ));
        }
        let id: i64 = diesel::insert_into(users::table)
            .values(&NewUser {
                email: &self.email,
                password_hash: &self.password_hash,
                role: self.role.as_str(),
                created_at: crate::db::now(),
            })
            .returning(users::id)
            .get_result(conn)?;
        let made = user_by_id(conn, id)?.ok_or_else(|| AppError::internal("user vanished"))?;
        cx.audit(
            &self.by,
            "user.created",
            &serde_json::json!({ "user": self.email, "role": self.role }),
        )?;
        Ok(made)
    }
}

/// Changes an account's role or disables (enables) it; a change ends all its sessions. The
/// last active admin can be neither demoted nor disabled.
#[derive(Debug, Clone)]
pub struct UpdateUser {
    /// The account.
    pub id: i64,
    /// New role, if any.
    pub role: Option<Role>,
    /// New disabled state, if any.
    pub disabled: Option<bool>,
    /// The admin (or `cli`) doing it.
    pub by: String,
}

impl Op for UpdateUser {
    /// The account after, and the sessions ended.
    type Output = (UserView, Vec<String>);

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<(UserView, Vec<String>), AppError> {
        let conn = cx.conn()?;
        let before = user_by_id(conn, self.id)?
            .ok_or_else(|| AppError::new(ErrorCode::NotFound, "no such staff account"))?;
        let role = self.role.unwrap_or(before.role);
        let disabled = self.disabled.unwrap_or(before.disabled);
        if role == before.role && disabled == before.disabled {
            return Ok((before, Vec::new()));
        }
        let was_active_admin = before.role == Role::Admin && !before.disabled;
        let stays_active_admin = role == Role::Admin && !disabled;
        if was_active_admin && !stays_active_admin {
            let active_admins: i64 = users::table
                .filter(users::role.eq(Role::Admin.as_str()))
                .filter(users::disabled.eq(false))
                .count()
                .get_result(conn)?;
            if active_admins <= 1 {
                return Err(AppError::new(
                    ErrorCode::LastAdmin,
                    "this is the last active admin; make another admin first",
                ));
            }
        }
        diesel::update(users::table.find(self.id))
            .set((users::role.eq(role.as_str()), users::disabled.eq(disabled)))
            .execute(conn)?;
        let ended = sessions::end_all_of(conn, self.id, &self.by)?;
        let after =
            user_by_id(conn, self.id)?.ok_or_else(|| AppError::internal("user vanished"))?;
        cx.audit(
            &self.by,
            "user.updated",
            &serde_json::json!({
                "user": before.email,
                "role": { "before": before.role, "after": role },
                "disabled": { "before": before.disabled, "after": disabled },
                "sessions_ended": ended.len(),
            }),
        )?;
        Ok((after, ended))
    }
}

/// Sets a new password (hashed, the current one already checked), ends every session of the
/// account and starts `session` in their place.
#[derive(Debug, Clone)]
pub struct ChangePassword {
    /// argon2id hash of the new password.
    pub password_hash: String,
    /// The session that replaces the ended ones (its account is the one changed).
    pub session: StartSession,
}

impl Op for ChangePassword {
    /// The sessions ended.
    type Output = Vec<String>;

    fn apply(&self, cx: &mut Ctx<'_>) -> Result<Vec<String>, AppError> {
        let conn = cx.conn()?;
        let id = self.session.user_id;
        diesel::update(users::table.find(id))
            .set(users::password_hash.eq(&self.password_hash))
            .execute(conn)?;
        let ended = sessions::end_all_of(conn, id, &self.session.email)?;
        self.session.start(cx)?;
        Ok(ended)
    }
}

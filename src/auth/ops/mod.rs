//! Account changes as writer commands: each change and its audit row commit together, and
//! the writer applies them one at a time (so "the last active admin" cannot race). Sessions,
//! accounts and passwords here; the second factor in `second_factor`.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::{Role, sessions};
use crate::db::DbConn;
use crate::db::models::NewUser;
use crate::db::schema::{staff_sessions, users};
use crate::error::{AppError, ErrorCode};
use crate::ledger::{Ctx, Op};

mod second_factor;

pub use second_factor::{
    BeginEnrolment, ConfirmEnrolment, NewRecoveryCodes, ResetSecondFactor, SecondFactor,
};

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
    pub(super) fn start(&self, cx: &mut Ctx<'_>) -> Result<(), AppError> {
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

pub(super) fn user_id_of(conn: &mut DbConn, email: &str) -> Result<i64, AppError> {
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

//! Staff management for admins: list, create, change role, disable (each change ends the
//! account's sessions), and end all of an account's sessions.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{Staff, State, input, with_conn};
use crate::auth::ops::{CreateUser, EndSessions, UpdateUser, UserView, list_users, user_by_id};
use crate::auth::{Email, Role, check_new_password, hash_password};
use crate::error::{AppError, ErrorCode};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/users", web::get().to(list))
        .route("/api/admin/users", web::post().to(create))
        .route("/api/admin/users/{id}", web::put().to(update))
        .route(
            "/api/admin/users/{id}/sessions/end",
            web::post().to(end_sessions),
        );
}

/// Every staff account.
#[utoipa::path(
    get,
    path = "/api/admin/users",
    operation_id = "list_users",
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "Staff accounts", body = Vec<UserView>)),
)]
pub(super) async fn list(staff: Staff, state: State) -> Result<HttpResponse, AppError> {
    staff.require(Role::Admin)?;
    let users = with_conn(&state, list_users).await?;
    Ok(HttpResponse::Ok().json(users))
}

/// A new staff account.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUserRequest {
    email: String,
    role: Role,
    /// The first password (at least 12 characters, not a common one); the new member
    /// changes it with `POST /api/auth/password`.
    #[schema(format = Password)]
    password: String,
}

/// Creates a staff account (needs a recent password or code: a new admin can do anything).
#[utoipa::path(
    post,
    path = "/api/admin/users",
    operation_id = "create_user",
    tag = "admin",
    security(("bearer" = [])),
    request_body = NewUserRequest,
    responses((status = 201, description = "Created", body = UserView)),
)]
pub(super) async fn create(
    staff: Staff,
    state: State,
    body: input::JsonObject<NewUserRequest>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Admin)?.require_recent()?;
    let NewUserRequest {
        email,
        role,
        password,
    } = body.into_inner();
    let email = Email::parse(&email)
        .ok_or_else(|| AppError::invalid_field("email", "not an email address"))?;
    check_new_password("password", &password, email.as_str())?;
    let password_hash = web::block(move || hash_password(&password)).await??;
    let made = state
        .writer
        .submit(CreateUser {
            email: email.as_str().to_owned(),
            role,
            password_hash,
            by: staff.email,
        })
        .await?;
    Ok(HttpResponse::Created().json(made))
}

/// What to change of an account.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UserChange {
    role: Option<Role>,
    disabled: Option<bool>,
}

/// Changes an account's role or disables it (or enables it again); a change ends all its
/// sessions at once. The last active admin can be neither demoted nor disabled (409
/// `last_admin`). Needs a recent password or code.
#[utoipa::path(
    put,
    path = "/api/admin/users/{id}",
    operation_id = "update_user",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The account")),
    request_body = UserChange,
    responses((status = 200, description = "The account after", body = UserView)),
)]
pub(super) async fn update(
    staff: Staff,
    state: State,
    id: web::Path<i64>,
    body: input::JsonObject<UserChange>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Admin)?.require_recent()?;
    let UserChange { role, disabled } = body.into_inner();
    if role.is_none() && disabled.is_none() {
        return Err(AppError::invalid_field(
            "role",
            "send a role, disabled, or both",
        ));
    }
    let (after, ended) = state
        .writer
        .submit(UpdateUser {
            id: id.into_inner(),
            role,
            disabled,
            by: staff.email,
        })
        .await?;
    state.sessions.mark_ended(&ended);
    Ok(HttpResponse::Ok().json(after))
}

/// Ends every open session of an account (a lost laptop).
#[utoipa::path(
    post,
    path = "/api/admin/users/{id}/sessions/end",
    operation_id = "end_user_sessions",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The account")),
    responses((status = 204, description = "Ended")),
)]
pub(super) async fn end_sessions(
    staff: Staff,
    state: State,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let staff = staff.require(Role::Admin)?;
    let id = id.into_inner();
    let user = with_conn(&state, move |c| user_by_id(c, id))
        .await?
        .ok_or_else(|| AppError::new(ErrorCode::NotFound, "no such staff account"))?;
    let ended = state
        .writer
        .submit(EndSessions {
            user_id: user.id,
            email: user.email,
            sid: None,
            by: staff.email,
            action: "auth.session_ended",
        })
        .await?;
    state.sessions.mark_ended(&ended);
    Ok(HttpResponse::NoContent().finish())
}

//! Sessions: logging out, the caller's list, and ending one (an admin may end anyone's).

use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::super::{State, with_conn};
use super::account::account_of;
use super::{SignedIn, Staff};
use crate::auth::Role;
use crate::auth::ops::EndSessions;
use crate::auth::sessions;
use crate::error::{AppError, ErrorCode};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/auth/logout", web::post().to(logout))
        .route("/api/auth/sessions", web::get().to(list))
        .route("/api/auth/sessions/{id}/end", web::post().to(end));
}

/// Ends the caller's session: its token is refused from now on.
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "staff",
    security(("bearer" = [])),
    responses((status = 204, description = "Logged out")),
)]
pub(in crate::http) async fn logout(who: SignedIn, state: State) -> Result<HttpResponse, AppError> {
    let staff = who.0;
    let account = account_of(&state, &staff.email).await?;
    let ended = state
        .writer
        .submit(EndSessions {
            user_id: account.id,
            email: account.email.clone(),
            sid: Some(staff.sid.clone()),
            by: account.email,
            action: "auth.logout",
        })
        .await?;
    state.sessions.mark_ended(&ended);
    state.sessions.mark_ended(&[staff.sid]);
    Ok(HttpResponse::NoContent().finish())
}

/// One open session.
#[derive(Serialize, utoipa::ToSchema)]
pub(in crate::http) struct SessionView {
    id: String,
    created_at: chrono::DateTime<chrono::Utc>,
    expires_at: chrono::DateTime<chrono::Utc>,
    /// The address it started from.
    client: String,
    user_agent: String,
    /// True for the session of the token that asked.
    current: bool,
}

/// The caller's open sessions, newest first.
#[utoipa::path(
    get,
    path = "/api/auth/sessions",
    tag = "staff",
    security(("bearer" = [])),
    responses((status = 200, description = "Open sessions", body = Vec<SessionView>)),
)]
pub(in crate::http) async fn list(staff: Staff, state: State) -> Result<HttpResponse, AppError> {
    let account = account_of(&state, &staff.email).await?;
    let id = account.id;
    let rows = with_conn(&state, move |c| sessions::active_of(c, id)).await?;
    let views: Vec<SessionView> = rows
        .into_iter()
        .map(|s| SessionView {
            current: s.id == staff.sid,
            id: s.id,
            created_at: s.created_at.and_utc(),
            expires_at: s.expires_at.and_utc(),
            client: s.client,
            user_agent: s.user_agent,
        })
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

/// Ends one session: one of the caller's own, or (an admin) anyone's.
#[utoipa::path(
    post,
    path = "/api/auth/sessions/{id}/end",
    tag = "staff",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The session")),
    responses((status = 204, description = "Ended")),
)]
pub(in crate::http) async fn end(
    staff: Staff,
    state: State,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let sid = id.into_inner();
    let lookup = sid.clone();
    let session = with_conn(&state, move |c| sessions::find(c, &lookup)).await?;
    let me = account_of(&state, &staff.email).await?;
    let not_found = || AppError::new(ErrorCode::NotFound, "no such session");
    let session = session.ok_or_else(not_found)?;
    if session.user_id != me.id && !staff.role.allows(Role::Admin) {
        // Not a treasurer's business whether another's session exists.
        return Err(not_found());
    }
    let owner = session.user_id;
    let email = with_conn(&state, move |c| {
        crate::auth::ops::user_by_id(c, owner).map(|u| u.map(|u| u.email))
    })
    .await?
    .ok_or_else(not_found)?;
    let ended = state
        .writer
        .submit(EndSessions {
            user_id: owner,
            email,
            sid: Some(sid),
            by: staff.email,
            action: "auth.session_ended",
        })
        .await?;
    state.sessions.mark_ended(&ended);
    Ok(HttpResponse::NoContent().finish())
}

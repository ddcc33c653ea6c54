//! Server-side sessions: each access token names one, and a session once ended refuses its
//! tokens. Requests do not read the database for this: every process keeps the set of ended,
//! unexpired sessions in memory, adds to it at once what it ends itself, and reloads it every
//! [`REFRESH`] for what other processes ended; so a session ended anywhere is refused
//! everywhere within [`STALENESS_BOUND`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::staff_sessions;
use crate::error::AppError;

/// How often the set of ended sessions is reloaded.
pub const REFRESH: Duration = Duration::from_millis(500);
/// The longest a session ended by another process can still be used here (documented in the
/// README): one reload interval plus the reload itself, rounded up.
pub const STALENESS_BOUND: Duration = Duration::from_secs(1);

/// How long a session this process ended stays refused without the database's word.
const RECENT: Duration = Duration::from_secs(10);

/// A new session id: 128 random bits, hex.
pub fn new_sid() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A session as its owner (or an admin) sees it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = staff_sessions)]
pub struct SessionRow {
    /// The id.
    pub id: String,
    /// The account.
    pub user_id: i64,
    /// Started.
    pub created_at: NaiveDateTime,
    /// Ends by itself.
    pub expires_at: NaiveDateTime,
    /// Where it started.
    pub client: String,
    /// The browser or tool that started it.
    pub user_agent: String,
}

/// The sessions of `user_id` not ended and not expired, newest first.
pub fn active_of(conn: &mut DbConn, user_id: i64) -> Result<Vec<SessionRow>, AppError> {
    Ok(staff_sessions::table
        .filter(staff_sessions::user_id.eq(user_id))
        .filter(staff_sessions::ended_at.is_null())
        .filter(staff_sessions::expires_at.gt(crate::db::now()))
        .order(staff_sessions::created_at.desc())
        .select(SessionRow::as_select())
        .load(conn)?)
}

/// The session `sid`, if it exists.
pub fn find(conn: &mut DbConn, sid: &str) -> Result<Option<SessionRow>, AppError> {
    Ok(staff_sessions::table
        .find(sid)
        .select(SessionRow::as_select())
        .first(conn)
        .optional()?)
}

/// Ends the sessions that `which` selects and are still open; returns their ids.
fn end_where(
    conn: &mut DbConn,
    user_id: i64,
    sid: Option<&str>,
    by: &str,
) -> Result<Vec<String>, AppError> {
    let now = crate::db::now();
    let mut open = staff_sessions::table
        .filter(staff_sessions::user_id.eq(user_id))
        .filter(staff_sessions::ended_at.is_null())
        .filter(staff_sessions::expires_at.gt(now))
        .select(staff_sessions::id)
        .into_boxed();
    if let Some(sid) = sid {
        open = open.filter(staff_sessions::id.eq(sid));
    }
    let ids: Vec<String> = open.load(conn)?;
    if !ids.is_empty() {
        diesel::update(staff_sessions::table.filter(staff_sessions::id.eq_any(&ids)))
            .set((
                staff_sessions::ended_at.eq(now),
                staff_sessions::ended_by.eq(by),
            ))
            .execute(conn)?;
    }
    Ok(ids)
}

/// Ends every open session of `user_id` (`by` names who ended them).
pub fn end_all_of(conn: &mut DbConn, user_id: i64, by: &str) -> Result<Vec<String>, AppError> {
    end_where(conn, user_id, None, by)
}

/// Ends one session of `user_id`, if open.
pub fn end_one(
    conn: &mut DbConn,
    user_id: i64,
    sid: &str,
    by: &str,
) -> Result<Vec<String>, AppError> {
    end_where(conn, user_id, Some(sid), by)
}

/// The ended sessions a process must refuse, kept in memory.
#[derive(Debug, Default)]
pub struct SessionGuard {
    /// Each ended session, with when this process learnt of it.
    ended: RwLock<HashMap<String, std::time::Instant>>,
}

impl SessionGuard {
    /// True if `sid` was ended (here at once, elsewhere within [`STALENESS_BOUND`]).
    pub fn is_ended(&self, sid: &str) -> bool {
        self.ended
            .read()
            .map(|set| set.contains_key(sid))
            .unwrap_or(true)
    }

    /// Refuses these sessions from now on (this process ended them).
    pub fn mark_ended(&self, sids: &[String]) {
        if let Ok(mut set) = self.ended.write() {
            let now = std::time::Instant::now();
            set.extend(sids.iter().map(|s| (s.clone(), now)));
        }
    }

    /// Reloads the ended sessions that have not expired (expired ones are refused by their
    /// tokens' own `exp`).
    pub fn reload(&self, conn: &mut DbConn) -> Result<usize, AppError> {
        let ids: HashSet<String> = staff_sessions::table
            .filter(staff_sessions::ended_at.is_not_null())
            .filter(staff_sessions::expires_at.gt(crate::db::now()))
            .select(staff_sessions::id)
            .load::<String>(conn)?
            .into_iter()
            .collect();
        let n = ids.len();
        if let Ok(mut set) = self.ended.write() {
            // Expired sessions leave the set; one this process ended while the query ran is
            // not in its answer yet, so what was learnt in the last few seconds stays.
            let now = std::time::Instant::now();
            set.retain(|id, at| ids.contains(id) || now.duration_since(*at) < RECENT);
            for id in ids {
                set.entry(id).or_insert(now);
            }
        }
        Ok(n)
    }

    /// Reloads every [`REFRESH`] on a thread of its own until `stop` is set (the caller loads
    /// it once first, with [`SessionGuard::reload`]).
    pub fn spawn(
        self: &Arc<Self>,
        pool: crate::db::Pool,
        stop: Arc<std::sync::atomic::AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let guard = Arc::clone(self);
        std::thread::Builder::new()
            .name("sessions".into())
            .spawn(move || {
                // The caller loaded the set once before serving; from then on, every REFRESH.
                loop {
                    std::thread::sleep(REFRESH);
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let reloaded = pool
                        .get()
                        .map_err(AppError::from)
                        .and_then(|mut c| guard.reload(&mut c));
                    if let Err(e) = reloaded {
                        tracing::warn!(error = %e, "reloading ended sessions failed");
                    }
                }
            })
    }
}

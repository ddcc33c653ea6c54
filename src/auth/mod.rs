//! Staff accounts: roles, argon2id password hashes, HS256 access tokens naming server-side
//! sessions, the TOTP second factor, and the account changes (each audited in the same
//! transaction, through the writer).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::db::DbConn;
use crate::db::models::{NewUser, UserRow};
use crate::db::schema::users;
use crate::error::{AppError, ErrorCode};

pub mod ops;
pub mod sessions;
mod token;
pub mod totp;

pub use token::{
    AUDIENCE, Claims, Grant, ISSUER, MFA_AUDIENCE, MFA_TOKEN_TTL_SECS, MfaClaims, TOKEN_TTL_SECS,
    TokenKeys,
};

/// What a staff account may do. An admin can do all a treasurer can.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Records offline gifts, exports reports.
    Treasurer,
    /// Also sets the target, periods and intake.
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Treasurer => "treasurer",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "treasurer" => Some(Role::Treasurer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// True if this role may act as `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

/// A normalised (trimmed, lower-case) email address with a plausible shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Checks the shape: one `@`, something on each side, no spaces, a dot in the domain,
    /// at most 254 bytes.
    pub fn parse(text: &str) -> Option<Email> {
        let t = text.trim();
        let (local, domain) = t.split_once('@')?;
        let ok = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && t.len() <= 254
            && !t
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
        ok.then(|| Email(t.to_lowercase()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, AppError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(AppError::internal)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(AppError::internal)
}

fn verify_password(password: &str, hash: &str) -> bool {
    #[cfg(test)]
    tests::VERIFICATIONS.with(|n| n.set(n.get() + 1));
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash of no one's password, with the same algorithm and cost as every real one; checked
/// when the email is unknown so that a wrong email takes as long as a wrong password.
static DUMMY_HASH: std::sync::LazyLock<Result<String, AppError>> =
    std::sync::LazyLock::new(|| hash_password("not a password of anyone"));

/// Makes the dummy hash now (at start-up), so no login pays for making it.
pub fn prepare_dummy_hash() -> Result<(), AppError> {
    DUMMY_HASH.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// Common passwords of 12 characters or more, lower-cased (see the file's head for its
/// source); shorter ones are refused by length.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// Checks a new password against the rules: 12 characters at least, at most 1,024 bytes,
/// not on the list of common passwords (case aside), not the account's email.
pub fn check_new_password(field: &str, password: &str, email: &str) -> Result<(), AppError> {
    let refuse = |why: &str| Err(AppError::invalid_field(field, why));
    if password.chars().count() < 12 {
        return refuse("use at least 12 characters");
    }
    if password.len() > 1024 {
        return refuse("use at most 1024 bytes");
    }
    let lower = password.to_lowercase();
    let common = COMMON_PASSWORDS
        .lines()
        .filter(|l| !l.starts_with('#'))
        .any(|l| l == lower);
    if common {
        return refuse("this password is on a list of common passwords; choose another");
    }
    if lower.trim() == email.trim().to_lowercase() {
        return refuse("the password must not be the email address");
    }
    Ok(())
}

/// Creates a staff account (or replaces its password and role; a replaced password ends
/// the account's sessions).
pub fn add_user(
    conn: &mut DbConn,
    email: &Email,
    role: Role,
    password: &str,
) -> Result<(), AppError> {
    check_new_password("password", password, email.as_str())?;
    let hash = hash_password(password)?;
    let existing = users::table
        .filter(users::email.eq(email.as_str()))
        .select(users::id)
        .first::<i64>(conn)
        .optional()?;
    match existing {
        Some(id) => {
            diesel::update(users::table.find(id))
                .set((
                    users::password_hash.eq(&hash),
                    users::role.eq(role.as_str()),
                ))
                .execute(conn)?;
            sessions::end_all_of(conn, id, "cli")?;
        }
        None => {
            diesel::insert_into(users::table)
                .values(&NewUser {
                    email: email.as_str(),
                    password_hash: &hash,
                    role: role.as_str(),
                    created_at: crate::db::now(),
                })
                .execute(conn)?;
        }
    }
    Ok(())
}

/// A staff account as a login sees it.
#[derive(Debug, Clone)]
pub struct Account {
    /// `users.id`.
    pub id: i64,
    /// The email.
    pub email: String,
    /// The role.
    pub role: Role,
    /// Disabled accounts cannot log in.
    pub disabled: bool,
    /// True once a second factor is enrolled.
    pub mfa_enabled: bool,
}

impl Account {
    fn of(u: UserRow) -> Option<Account> {
        Some(Account {
            id: u.id,
            role: Role::parse(&u.role)?,
            email: u.email,
            disabled: u.disabled,
            mfa_enabled: u.totp_enabled_at.is_some(),
        })
    }

    /// The account with this (normalised) email.
    pub fn find(conn: &mut DbConn, email: &str) -> Result<Option<Account>, AppError> {
        let row = users::table
            .filter(users::email.eq(email))
            .select(UserRow::as_select())
            .first(conn)
            .optional()?;
        Ok(row.and_then(Account::of))
    }
}

/// Checks a password against an account's stored hash.
pub fn password_matches(conn: &mut DbConn, user_id: i64, password: &str) -> Result<bool, AppError> {
    let hash: String = users::table
        .find(user_id)
        .select(users::password_hash)
        .first(conn)?;
    Ok(verify_password(password, &hash))
}

/// Checks an email and password; the same error (and about the same time) whether the email
/// is unknown or the password wrong.
pub fn authenticate(conn: &mut DbConn, email: &str, password: &str) -> Result<Account, AppError> {
    let user = Email::parse(email)
        .map(|e| {
            users::table
                .filter(users::email.eq(e.as_str()))
                .select(UserRow::as_select())
                .first(conn)
                .optional()
        })
        .transpose()?
        .flatten();
    let bad = || AppError::new(ErrorCode::Unauthorized, "wrong email or password");
    match user {
        Some(u) if verify_password(password, &u.password_hash) => Account::of(u).ok_or_else(bad),
        Some(_) => Err(bad()),
        None => {
            let dummy = DUMMY_HASH.as_ref().map_err(Clone::clone)?;
            let _ = verify_password(password, dummy);
            Err(bad())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// argon2 verifications run on this thread.
        pub(super) static VERIFICATIONS: Cell<u32> = const { Cell::new(0) };
    }

    fn verifications_during(f: impl FnOnce()) -> u32 {
        let before = VERIFICATIONS.with(Cell::get);
        f();
        VERIFICATIONS.with(Cell::get) - before
    }

    #[test]
    fn unknown_emails_cost_one_argon2_verification_like_wrong_passwords() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = crate::config::DatabaseUrl::Sqlite(dir.path().join("t.db").display().to_string());
        let mut conn = crate::db::establish(&url).expect("sqlite");
        crate::db::migrate(&mut conn).expect("migrations");
        let email = Email::parse("ann@example.org").expect("email");
        add_user(&mut conn, &email, Role::Admin, "a long enough password").expect("user");
        for (who, password) in [
            ("nobody@example.org", "a long enough password"),
            ("ann@example.org", "the wrong password!!"),
            ("not an email", "whatever"),
            ("", ""),
        ] {
            let mut result = None;
            let n = verifications_during(|| result = Some(authenticate(&mut conn, who, password)));
            assert_eq!(n, 1, "{who:?}: one argon2 verification");
            let err = result.and_then(Result::err).expect("refused");
            assert_eq!(err.detail, "wrong email or password", "{who:?}");
        }
        assert!(authenticate(&mut conn, "Ann@Example.org", "a long enough password").is_ok());
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        prepare_dummy_hash().expect("dummy hash");
        let dummy = DUMMY_HASH.as_ref().expect("dummy hash");
        let real = hash_password("some password of someone").expect("hash");
        let (dummy, real) = (
            PasswordHash::new(dummy).expect("parses"),
            PasswordHash::new(&real).expect("parses"),
        );
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
    }

    #[test]
    fn admin_can_act_as_treasurer_not_the_reverse() {
        assert!(Role::Admin.allows(Role::Treasurer));
        assert!(!Role::Treasurer.allows(Role::Admin));
    }

    #[test]
    fn email_shapes() {
        assert!(Email::parse(" Ann@Example.org ").is_some_and(|e| e.as_str() == "ann@example.org"));
        for bad in ["", "a", "a@b", "@b.c", "a b@c.d", "a@b.c<script>", "a@.c"] {
            assert!(Email::parse(bad).is_none(), "{bad:?}");
        }
    }
}

//! Staff accounts: roles, argon2id password hashes, and HS256 access tokens.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use diesel::prelude::*;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::db::DbConn;
use crate::db::models::{NewUser, UserRow};
use crate::db::schema::users;
use crate::error::{AppError, ErrorCode};

/// Lifetime of an access token, seconds.
pub const TOKEN_TTL_SECS: i64 = 3600;
/// `iss` of our tokens.
pub const ISSUER: &str = "crowdledger";
/// `aud` of our tokens.
pub const AUDIENCE: &str = "crowdledger-api";

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

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user's email.
    pub sub: String,
    /// The user's role.
    pub role: Role,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
}

/// Signs and checks access tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    /// Keys from the configured secret.
    pub fn new(secret: &[u8]) -> Result<TokenKeys, AppError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.leeway = 5;
        Ok(TokenKeys {
            encoding: EncodingKey::from_secret(secret).map_err(AppError::internal)?,
            decoding: DecodingKey::from_secret(secret).map_err(AppError::internal)?,
            validation,
        })
    }

    /// A token for `email` with `role`, valid for an hour from now.
    pub fn issue(&self, email: &str, role: Role) -> Result<String, AppError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: email.to_owned(),
            role,
            iat: now,
            exp: now + TOKEN_TTL_SECS,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(AppError::internal)
    }

    /// Checks the token the way RFC 8725 asks: the one algorithm we issue (HS256) pinned, never
    /// taken from the token; explicit `typ: JWT`; no key, key URL or critical extension named
    /// by the token; the signature; `exp`, `iat`, `sub`, `iss` and `aud` present; `iss` and
    /// `aud` ours; not expired, not issued in the future, no longer-lived than we issue.
    pub fn check(&self, token: &str) -> Result<Claims, AppError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| unauthorized())?;
        let typed = header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("JWT"));
        let names_keys_or_extensions = header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
            || header.crit.is_some();
        if header.alg != Algorithm::HS256 || !typed || names_keys_or_extensions {
            return Err(unauthorized());
        }
        // `iat` is not among the library's required claims; `Claims` requires it to parse.
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|_| unauthorized())?;
        let now = chrono::Utc::now().timestamp();
        let leeway = i64::try_from(self.validation.leeway).unwrap_or(0);
        if claims.iat > now.saturating_add(leeway)
            || claims.exp.saturating_sub(claims.iat) > TOKEN_TTL_SECS.saturating_add(leeway)
        {
            return Err(unauthorized());
        }
        Ok(claims)
    }
}

fn unauthorized() -> AppError {
    AppError::new(ErrorCode::Unauthorized, "a valid access token is required")
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

/// Creates a staff account (or replaces its password and role).
pub fn add_user(
    conn: &mut DbConn,
    email: &Email,
    role: Role,
    password: &str,
) -> Result<(), AppError> {
    if password.chars().count() < 12 {
        return Err(AppError::invalid_field(
            "password",
            "use at least 12 characters",
        ));
    }
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

/// Checks an email and password; the same error (and about the same time) whether the email
/// is unknown or the password wrong.
pub fn authenticate(
    conn: &mut DbConn,
    email: &str,
    password: &str,
) -> Result<(String, Role), AppError> {
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
        Some(u) if verify_password(password, &u.password_hash) => {
            let role = Role::parse(&u.role).ok_or_else(bad)?;
            Ok((u.email, role))
        }
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
    fn tokens_round_trip_and_other_secrets_fail() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef").expect("keys");
        let token = keys.issue("t@example.org", Role::Treasurer).expect("signs");
        let claims = keys.check(&token).expect("valid");
        assert_eq!(claims.role, Role::Treasurer);
        let other = TokenKeys::new(b"fedcba9876543210fedcba9876543210").expect("keys");
        assert!(other.check(&token).is_err());
    }

    #[test]
    fn email_shapes() {
        assert!(Email::parse(" Ann@Example.org ").is_some_and(|e| e.as_str() == "ann@example.org"));
        for bad in ["", "a", "a@b", "@b.c", "a b@c.d", "a@b.c<script>", "a@.c"] {
            assert!(Email::parse(bad).is_none(), "{bad:?}");
        }
    }
}

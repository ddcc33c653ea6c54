//! HS256 access tokens, each naming a server-side session, and the short-lived token that
//! carries a login from its password step to its second-factor step.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::Role;
use crate::error::{AppError, ErrorCode};

/// Lifetime of an access token (and of its session), seconds.
pub const TOKEN_TTL_SECS: i64 = 3600;
/// Lifetime of the token between a login's password and its second factor, seconds.
pub const MFA_TOKEN_TTL_SECS: i64 = 300;
/// `iss` of our tokens.
pub const ISSUER: &str = "crowdledger";
/// `aud` of our access tokens.
pub const AUDIENCE: &str = "crowdledger-api";
/// `aud` of the second-factor step's token: never accepted as an access token.
pub const MFA_AUDIENCE: &str = "crowdledger-mfa";

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
    /// The session this token belongs to (`staff_sessions.id`); ending it ends the token.
    pub sid: String,
    /// When the holder last proved who they are (password or second factor), Unix seconds:
    /// dangerous actions need this within the last ten minutes.
    pub auth_time: i64,
    /// True while the holder must enrol a second factor before anything else.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enrol_only: bool,
}

/// Claims of the second-factor step's token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MfaClaims {
    /// The user's email.
    pub sub: String,
    /// Issued at.
    pub iat: i64,
    /// Expires at.
    pub exp: i64,
    /// Issuer.
    pub iss: String,
    /// Always [`MFA_AUDIENCE`].
    pub aud: String,
}

/// What a new access token says.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    /// The user's email.
    pub email: &'a str,
    /// The user's role.
    pub role: Role,
    /// The session.
    pub sid: &'a str,
    /// When the holder last proved who they are.
    pub auth_time: i64,
    /// Enrolment only.
    pub enrol_only: bool,
}

/// Signs and checks tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    mfa_validation: Validation,
}

impl TokenKeys {
    /// Keys from the configured secret.
    pub fn new(secret: &[u8]) -> Result<TokenKeys, AppError> {
        let validation = |aud: &str| {
            let mut v = Validation::new(Algorithm::HS256);
            v.set_issuer(&[ISSUER]);
            v.set_audience(&[aud]);
            v.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
            v.leeway = 5;
            v
        };
        Ok(TokenKeys {
            encoding: EncodingKey::from_secret(secret).map_err(AppError::internal)?,
            decoding: DecodingKey::from_secret(secret).map_err(AppError::internal)?,
            validation: validation(AUDIENCE),
            mfa_validation: validation(MFA_AUDIENCE),
        })
    }

    /// An access token for `grant`, valid for [`TOKEN_TTL_SECS`] from now.
    pub fn issue(&self, grant: &Grant<'_>) -> Result<String, AppError> {
        let now = chrono::Utc::now().timestamp();
        self.sign(&Claims {
            sub: grant.email.to_owned(),
            role: grant.role,
            iat: now,
            exp: now + TOKEN_TTL_SECS,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sid: grant.sid.to_owned(),
            auth_time: grant.auth_time,
            enrol_only: grant.enrol_only,
        })
    }

    /// The token that lets `email`, whose password was right, give a second factor within
    /// [`MFA_TOKEN_TTL_SECS`].
    pub fn issue_mfa(&self, email: &str) -> Result<String, AppError> {
        let now = chrono::Utc::now().timestamp();
        self.sign(&MfaClaims {
            sub: email.to_owned(),
            iat: now,
            exp: now + MFA_TOKEN_TTL_SECS,
            iss: ISSUER.to_owned(),
            aud: MFA_AUDIENCE.to_owned(),
        })
    }

    fn sign(&self, claims: &impl Serialize) -> Result<String, AppError> {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(AppError::internal)
    }

    /// Checks an access token the way RFC 8725 asks: the one algorithm we issue (HS256)
    /// pinned, never taken from the token; explicit `typ: JWT`; no key, key URL or critical
    /// extension named by the token; the signature; `exp`, `iat`, `sub`, `iss`, `aud` and
    /// `sid` present; `iss` and `aud` ours; not expired, not issued in the future, no
    /// longer-lived than we issue. Whether its session was ended is the caller's check.
    pub fn check(&self, token: &str) -> Result<Claims, AppError> {
        let claims: Claims = self.decode(token, &self.validation, TOKEN_TTL_SECS)?;
        Ok(claims)
    }

    /// Checks a second-factor step's token (never an access token, nor the reverse).
    pub fn check_mfa(&self, token: &str) -> Result<MfaClaims, AppError> {
        self.decode(token, &self.mfa_validation, MFA_TOKEN_TTL_SECS)
    }

    fn decode<C: serde::de::DeserializeOwned + Times>(
        &self,
        token: &str,
        validation: &Validation,
        ttl: i64,
    ) -> Result<C, AppError> {
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
        // `iat` is not among the library's required claims; the claims type requires it.
        let claims = jsonwebtoken::decode::<C>(token, &self.decoding, validation)
            .map(|d| d.claims)
            .map_err(|_| unauthorized())?;
        let (iat, exp) = claims.times();
        let now = chrono::Utc::now().timestamp();
        let leeway = i64::try_from(validation.leeway).unwrap_or(0);
        if iat > now.saturating_add(leeway) || exp.saturating_sub(iat) > ttl.saturating_add(leeway)
        {
            return Err(unauthorized());
        }
        Ok(claims)
    }
}

/// `iat` and `exp` of a claims type.
trait Times {
    fn times(&self) -> (i64, i64);
}

impl Times for Claims {
    fn times(&self) -> (i64, i64) {
        (self.iat, self.exp)
    }
}

impl Times for MfaClaims {
    fn times(&self) -> (i64, i64) {
        (self.iat, self.exp)
    }
}

fn unauthorized() -> AppError {
    AppError::new(ErrorCode::Unauthorized, "a valid access token is required")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(sid: &str) -> Grant<'_> {
        Grant {
            email: "t@example.org",
            role: Role::Treasurer,
            sid,
            auth_time: 1,
            enrol_only: false,
        }
    }

    #[test]
    fn tokens_round_trip_and_other_secrets_fail() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef").expect("keys");
        let token = keys.issue(&grant("s1")).expect("signs");
        let claims = keys.check(&token).expect("valid");
        assert_eq!(claims.role, Role::Treasurer);
        assert_eq!(claims.sid, "s1");
        let other = TokenKeys::new(b"fedcba9876543210fedcba9876543210").expect("keys");
        assert!(other.check(&token).is_err());
    }

    #[test]
    fn a_second_factor_token_is_no_access_token_nor_the_reverse() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef").expect("keys");
        let mfa = keys.issue_mfa("t@example.org").expect("signs");
        assert!(keys.check(&mfa).is_err());
        assert_eq!(keys.check_mfa(&mfa).expect("valid").sub, "t@example.org");
        let access = keys.issue(&grant("s1")).expect("signs");
        assert!(keys.check_mfa(&access).is_err());
    }
}

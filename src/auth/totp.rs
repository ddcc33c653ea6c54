//! The second factor: RFC 6238 TOTP (SHA-1, 6 digits, 30-second steps, one step either side
//! accepted) through `totp-rs`, the enrolment QR code as SVG, and one-time recovery codes.

use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, TOTP};

use crate::error::AppError;

/// Seconds a code lives.
pub const STEP_SECS: u64 = 30;
/// Recovery codes made at enrolment (and when asked anew).
pub const RECOVERY_CODES: usize = 10;
/// Name shown in the authenticator app.
pub const ISSUER: &str = "crowdledger";

/// A new random secret (160 bits, RFC 4226's recommended length), base32 without padding.
pub fn new_secret() -> String {
    base32_encode(&rand::random::<[u8; 20]>())
}

fn base32_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn totp(secret_b32: &str, account: &str) -> Result<TOTP, AppError> {
    let secret = totp_rs::Secret::Encoded(secret_b32.to_owned())
        .to_bytes()
        .map_err(|e| AppError::internal(format!("stored TOTP secret unreadable: {e:?}")))?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP_SECS,
        secret,
        Some(ISSUER.to_owned()),
        account.to_owned(),
    )
    .map_err(|e| AppError::internal(format!("TOTP: {e}")))
}

/// The code for the step holding `unix_secs` (for tests and the browser test's driver).
pub fn code_at(secret_b32: &str, unix_secs: u64) -> Result<String, AppError> {
    Ok(totp(secret_b32, "x")?.generate(unix_secs))
}

/// The step of `code` if it is right for the step of `unix_secs` or one either side, and
/// later than `after` (a code once accepted is never accepted again, nor an older one).
pub fn accepted_step(
    secret_b32: &str,
    code: &str,
    unix_secs: u64,
    after: Option<i64>,
) -> Result<Option<i64>, AppError> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let t = totp(secret_b32, "x")?;
    let now_step = unix_secs / STEP_SECS;
    let mut found = None;
    for step in now_step.saturating_sub(1)..=now_step + 1 {
        let expected = t.generate(step * STEP_SECS);
        // Every candidate is compared, in constant time, whatever matched before.
        if constant_time_eq(expected.as_bytes(), code.as_bytes()) {
            found = i64::try_from(step).ok();
        }
    }
    Ok(found.filter(|s| after.is_none_or(|a| *s > a)))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `otpauth://` URL an authenticator app reads from the QR code.
pub fn otpauth_url(secret_b32: &str, account: &str) -> Result<String, AppError> {
    Ok(totp(secret_b32, account)?.get_url())
}

/// `text` as a QR code in SVG (black modules on white, four modules of quiet zone).
pub fn qr_svg(text: &str) -> Result<String, AppError> {
    use qrcodegen::{QrCode, QrCodeEcc};
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium)
        .map_err(|e| AppError::internal(format!("QR code: {e}")))?;
    let border = 4;
    let size = qr.size() + border * 2;
    let mut path = String::new();
    for y in 0..qr.size() {
        for x in 0..qr.size() {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" \
         shape-rendering=\"crispEdges\"><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\
         <path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

/// Ten new recovery codes (`xxxxx-xxxxx`, 50 random bits each) and their hashes.
pub fn new_recovery_codes() -> Vec<(String, String)> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let raw = base32_encode(&rand::random::<[u8; 7]>()).to_lowercase();
            let code = format!("{}-{}", &raw[..5], &raw[5..10]);
            let hash = recovery_hash(&code);
            (code, hash)
        })
        .collect()
}

/// The stored hash of a recovery code as typed (case, spaces and dashes ignored). The codes
/// are random, so a fast hash is enough (no dictionary to try).
pub fn recovery_hash(typed: &str) -> String {
    let normal: String = typed
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hex::encode(Sha256::digest(normal.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_vector() {
        // RFC 6238 appendix B: secret "12345678901234567890", T = 59 s gives 94287082 (8
        // digits); the 6-digit code is its last six.
        let secret = base32_encode(b"12345678901234567890");
        assert_eq!(code_at(&secret, 59).expect("code"), "287082");
        assert_eq!(code_at(&secret, 1_111_111_109).expect("code"), "081804");
    }

    #[test]
    fn one_step_either_side_once_only() {
        let secret = new_secret();
        let now = 1_700_000_000;
        let step = i64::try_from(now / STEP_SECS).expect("fits");
        let code = code_at(&secret, now).expect("code");
        assert_eq!(
            accepted_step(&secret, &code, now, None).expect("ok"),
            Some(step)
        );
        assert_eq!(
            accepted_step(&secret, &code, now + STEP_SECS, None).expect("ok"),
            Some(step)
        );
        assert_eq!(
            accepted_step(&secret, &code, now + 2 * STEP_SECS, None).expect("ok"),
            None
        );
        assert_eq!(
            accepted_step(&secret, &code, now, Some(step)).expect("ok"),
            None
        );
        assert_eq!(
            accepted_step(&secret, "12345", now, None).expect("ok"),
            None
        );
        assert_eq!(
            accepted_step(&secret, "abcdef", now, None).expect("ok"),
            None
        );
    }

    #[test]
    fn recovery_codes_are_distinct_and_hash_as_typed() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut plain: Vec<_> = codes.iter().map(|(c, _)| c.clone()).collect();
        plain.sort();
        plain.dedup();
        assert_eq!(plain.len(), RECOVERY_CODES);
        let (code, hash) = &codes[0];
        assert_eq!(&recovery_hash(&code.to_uppercase().replace('-', " ")), hash);
    }

    #[test]
    fn the_qr_code_is_an_svg() {
        let url = otpauth_url(&new_secret(), "ann@example.org").expect("url");
        assert!(url.starts_with("otpauth://totp/crowdledger:ann%40example.org?secret="));
        let svg = qr_svg(&url).expect("svg");
        assert!(svg.starts_with("<svg") && svg.contains("<path d=\"M"));
    }
}

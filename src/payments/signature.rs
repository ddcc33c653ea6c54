//! `Stripe-Signature` verification: HMAC-SHA256 over `"{t}.{raw body}"`, compared in constant
//! time against every `v1` value (several during a secret rotation) and every configured secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Oldest (or furthest in the future) a signature's timestamp may be, seconds.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No header, or no `t=` or no `v1=` in it.
    #[error("the Stripe-Signature header is missing or malformed")]
    Malformed,
    /// The timestamp is outside the tolerance (a replay, or a skewed clock).
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    /// No `v1` value matches any secret.
    #[error("no signature matches")]
    Mismatch,
}

/// The parts of a `Stripe-Signature` header that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    /// `t=`: Unix seconds when Stripe signed.
    pub timestamp: i64,
    /// Every `v1=` value, decoded.
    pub v1: Vec<Vec<u8>>,
}

impl SignatureHeader {
    /// Parses `t=...,v1=...[,v1=...][,v0=...]`; unknown schemes are ignored, undecodable
    /// `v1` values are dropped. Exactly one `t`, and a number: a header that names its time
    /// twice is ambiguous and refused (a bad first `t` must not let a second one count).
    pub fn parse(header: &str) -> Result<SignatureHeader, SignatureError> {
        let mut timestamp = None;
        let mut v1 = Vec::new();
        for part in header.split(',') {
            let Some((k, v)) = part.trim().split_once('=') else {
                continue;
            };
            match k {
                "t" if timestamp.is_none() => {
                    timestamp = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?);
                }
                "t" => return Err(SignatureError::Malformed),
                "v1" => {
                    if let Ok(bytes) = hex::decode(v) {
                        v1.push(bytes);
                    }
                }
                _ => {}
            }
        }
        match (timestamp, v1.is_empty()) {
            (Some(timestamp), false) => Ok(SignatureHeader { timestamp, v1 }),
            _ => Err(SignatureError::Malformed),
        }
    }
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    Some(m)
}

/// Checks `header` against the raw `body` with any of `secrets`, at time `now`.
pub fn verify<S: AsRef<[u8]>>(
    header: Option<&str>,
    body: &[u8],
    secrets: &[S],
    now: i64,
) -> Result<(), SignatureError> {
    let h = SignatureHeader::parse(header.ok_or(SignatureError::Malformed)?)?;
    // abs_diff: a timestamp near i64::MIN must not overflow the subtraction.
    if now.abs_diff(h.timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let matched = secrets.iter().any(|secret| {
        h.v1.iter().any(|sig| {
            mac(secret.as_ref(), h.timestamp, body).is_some_and(|m| m.verify_slice(sig).is_ok())
        })
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Signs `body` as Stripe does (used by tests and the load tool).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let sig = mac(secret, timestamp, body).map(|m| hex::encode(m.finalize().into_bytes()));
    format!("t={timestamp},v1={}", sig.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"whsec_test";
    const NOW: i64 = 1_700_000_000;

    #[test]
    fn accepts_a_good_signature_and_rotated_secrets() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(SECRET, NOW, body);
        assert_eq!(verify(Some(&header), body, &[SECRET], NOW), Ok(()));
        // Two secrets configured during a rotation; Stripe sends one v1 per secret.
        let both = format!("{header},v1={}", "00".repeat(32));
        assert_eq!(
            verify(Some(&both), body, &[b"old".as_slice(), SECRET], NOW),
            Ok(())
        );
    }

    #[test]
    fn refuses_forgeries() {
        let body = br#"{"id":"evt_1","amount":500}"#;
        let header = sign(SECRET, NOW, body);
        let changed = br#"{"id":"evt_1","amount":501}"#;
        assert_eq!(
            verify(Some(&header), changed, &[SECRET], NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&header), body, &[b"other".as_slice()], NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(None, body, &[SECRET], NOW),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some(&header), body, &[SECRET], NOW + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(verify(Some(&header), body, &[SECRET], NOW + 300), Ok(()));
        assert_eq!(
            verify(Some("t=1,v0=abc"), body, &[SECRET], 1),
            Err(SignatureError::Malformed)
        );
    }

    /// Found by fuzzing: a first `t` that is not a number let a second `t` count, and a
    /// timestamp near `i64::MIN` overflowed the staleness check.
    #[test]
    fn ambiguous_or_extreme_timestamps_are_refused() {
        let body = br#"{"id":"evt_1"}"#;
        let good = sign(SECRET, NOW, body);
        let v1 = good.split_once(',').map(|(_, v)| v).unwrap_or_default();
        for header in [
            format!("t=abc,t={NOW},{v1}"),
            format!("t={NOW},t={NOW},{v1}"),
            format!("t=,{v1}"),
        ] {
            assert_eq!(
                SignatureHeader::parse(&header),
                Err(SignatureError::Malformed),
                "{header}"
            );
        }
        let oldest = sign(SECRET, i64::MIN, body);
        assert_eq!(
            verify(Some(&oldest), body, &[SECRET], NOW),
            Err(SignatureError::Stale)
        );
        let newest = sign(SECRET, i64::MAX, body);
        assert_eq!(
            verify(Some(&newest), body, &[SECRET], i64::MIN),
            Err(SignatureError::Stale)
        );
        assert_eq!(verify(Some(&oldest), body, &[SECRET], i64::MIN), Ok(()));
    }

    proptest! {
        /// The header parser never panics, whatever it is given.
        #[test]
        fn header_parser_is_total(header in any::<String>()) {
            let _ = SignatureHeader::parse(&header);
            let _ = verify(Some(&header), b"{}", &[SECRET], NOW);
        }

        /// A signature only verifies the exact body it was made for.
        #[test]
        fn one_flipped_byte_fails(body in proptest::collection::vec(any::<u8>(), 1..200), idx in any::<usize>()) {
            let header = sign(SECRET, NOW, &body);
            let mut changed = body.clone();
            let i = idx % changed.len();
            changed[i] ^= 1;
            prop_assert_eq!(verify(Some(&header), &body, &[SECRET], NOW), Ok(()));
            prop_assert_eq!(verify(Some(&header), &changed, &[SECRET], NOW), Err(SignatureError::Mismatch));
        }
    }
}

//! The `Stripe-Signature` header (`payments::signature`): whatever the header, the body, the
//! secret and the clock say, parsing and verifying never panic; a header is either read as
//! one timestamp and its `v1` signatures or refused; a verified webhook carries a `v1` that is
//! the HMAC of that timestamp and body under the secret, within the tolerance; and what
//! `sign` makes verifies for its body only.
#![no_main]

use crowdledger::payments::signature::{
    SignatureError, SignatureHeader, TOLERANCE_SECS, sign, verify,
};
use libfuzzer_sys::fuzz_target;

/// The header's `key=value` items, as Stripe writes them (comma-separated).
fn items(header: &str) -> Vec<(&str, &str)> {
    header
        .split(',')
        .filter_map(|part| part.trim().split_once('='))
        .collect()
}

/// The `v1` value (hex) that `sign` makes for this timestamp and body.
fn expected_v1(secret: &[u8], t: i64, body: &[u8]) -> Vec<u8> {
    let header = sign(secret, t, body);
    let hex = header.rsplit_once("v1=").map_or("", |(_, h)| h);
    hex::decode(hex).unwrap_or_default()
}

/// The clock of most seeds (2023-11-14).
const NOW: i64 = 1_700_000_000;

// Input: `header NUL body NUL secret NUL now NUL t`, the last two as decimal text (readable
// seeds, and a dictionary of extreme numbers reaches the edges of `i64`).
fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(5, |b| *b == 0);
    let Ok(header) = std::str::from_utf8(parts.next().unwrap_or_default()) else {
        return;
    };
    let body = parts.next().unwrap_or_default();
    let secret = parts.next().unwrap_or(b"whsec_test");
    let number = |p: Option<&[u8]>| {
        p.and_then(|p| std::str::from_utf8(p).ok())
            .and_then(|p| p.trim().parse::<i64>().ok())
            .unwrap_or(NOW)
    };
    let now = number(parts.next());
    let t = number(parts.next());

    // Any header: parsed into one timestamp and the decodable v1 values, or refused.
    let parsed = SignatureHeader::parse(header);
    let all = items(header);
    let ts: Vec<&str> = all
        .iter()
        .filter(|(k, _)| *k == "t")
        .map(|(_, v)| *v)
        .collect();
    let v1: Vec<Vec<u8>> = all
        .iter()
        .filter(|(k, _)| *k == "v1")
        .filter_map(|(_, v)| hex::decode(v).ok())
        .collect();
    match &parsed {
        Ok(h) => {
            assert_eq!(
                ts.len(),
                1,
                "{header:?}: read although it has {} t= items",
                ts.len()
            );
            assert_eq!(ts[0].parse::<i64>().ok(), Some(h.timestamp), "{header:?}");
            assert!(!h.v1.is_empty(), "{header:?}: read without a v1");
            assert_eq!(h.v1, v1, "{header:?}");
        }
        Err(e) => {
            assert_eq!(*e, SignatureError::Malformed);
            let readable = ts.len() == 1 && ts[0].parse::<i64>().is_ok() && !v1.is_empty();
            assert!(
                !readable,
                "{header:?}: refused although it reads as one t and a v1"
            );
        }
    }

    // Verifying at any clock never panics, and accepts only a matching, fresh signature.
    let secrets = [secret];
    match verify(Some(header), body, &secrets, now) {
        Ok(()) => {
            let Ok(h) = &parsed else {
                panic!("{header:?} verified without parsing");
            };
            let age = i128::from(now) - i128::from(h.timestamp);
            assert!(
                age.abs() <= i128::from(TOLERANCE_SECS),
                "{header:?} verified at {now}"
            );
            assert!(h.v1.contains(&expected_v1(secret, h.timestamp, body)));
        }
        Err(SignatureError::Stale) => {
            let Ok(h) = &parsed else {
                panic!("{header:?} was stale without parsing");
            };
            let age = i128::from(now) - i128::from(h.timestamp);
            assert!(
                age.abs() > i128::from(TOLERANCE_SECS),
                "{header:?} stale at {now}"
            );
        }
        Err(SignatureError::Mismatch) => assert!(parsed.is_ok()),
        Err(SignatureError::Malformed) => assert!(parsed.is_err()),
    }

    // What Stripe signs verifies at its time and within the tolerance, and only for its body.
    let signed = sign(secret, t, body);
    assert_eq!(
        verify(Some(&signed), body, &secrets, t),
        Ok(()),
        "{signed:?}"
    );
    if let Some(late) = t.checked_add(TOLERANCE_SECS + 1) {
        assert_eq!(
            verify(Some(&signed), body, &secrets, late),
            Err(SignatureError::Stale)
        );
    }
    let mut other = body.to_vec();
    other.push(b' ');
    assert_eq!(
        verify(Some(&signed), &other, &secrets, t),
        Err(SignatureError::Mismatch)
    );
});

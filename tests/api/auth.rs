//! Tokens: forged, foreign, expired and misaddressed ones are refused; roles are enforced.

use crowdledger::auth::{AUDIENCE, ISSUER, Role};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{JWT_SECRET, assert_problem, gift, spawn_app};

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn claims(role: &str, exp_offset: i64, aud: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({ "sub": "mallory@example.org", "role": role, "iat": now, "exp": now + exp_offset, "iss": ISSUER, "aud": aud })
}

fn sign(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret).expect("key"),
    )
    .expect("sign")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_401_and_wrong_roles_403() {
    let app = spawn_app().await;
    let good_claims = claims("admin", 600, AUDIENCE);
    let alg_none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(good_claims.to_string().as_bytes())
    );
    let forged = [
        ("alg none", alg_none),
        (
            "wrong secret",
            sign(b"another-secret-0123456789abcdef-0123", &good_claims),
        ),
        (
            "wrong audience",
            sign(JWT_SECRET.as_bytes(), &claims("admin", 600, "someone-else")),
        ),
        (
            "expired",
            sign(JWT_SECRET.as_bytes(), &claims("admin", -3600, AUDIENCE)),
        ),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in &forged {
        let resp = app.post_offline(token, &gift("5.00"), None).await;
        assert_eq!(resp.status(), 401, "{what}");
        assert_problem(resp, 401, "unauthorized").await;
    }
    let no_exp = json!({ "sub": "m@example.org", "role": "admin", "iat": 1, "iss": ISSUER, "aud": AUDIENCE });
    let resp = app
        .put_intake(&sign(JWT_SECRET.as_bytes(), &no_exp), false, "x")
        .await;
    assert_problem(resp, 401, "unauthorized").await;
    // A correctly signed token of ours is accepted (so the refusals above are not blanket).
    let ok = sign(JWT_SECRET.as_bytes(), &good_claims);
    assert_eq!(
        app.post_offline(&ok, &gift("5.00"), None).await.status(),
        201
    );

    // No token at all.
    let resp = app
        .client
        .post(format!("{}/api/donations/offline", app.addr))
        .json(&gift("5.00"))
        .send()
        .await
        .expect("req");
    assert_problem(resp, 401, "unauthorized").await;

    // A treasurer on an admin route.
    let treasurer = app.token(Role::Treasurer).await;
    assert_problem(
        app.put_intake(&treasurer, false, "no").await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(app.fund().await["intake"]["state"], "open");
    // Only the well-signed gift was recorded.
    assert_eq!(app.fund().await["raised"], "5.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refuses_wrong_passwords_and_unknown_users_alike() {
    let app = spawn_app().await;
    let _ = app.token(Role::Admin).await;
    for body in [
        json!({ "email": "nobody@example.org", "password": "whatever-whatever" }),
        json!({ "email": "", "password": "" }),
    ] {
        let resp = app
            .send(reqwest::Method::POST, "/api/auth/login", None, Some(&body))
            .await;
        let problem = assert_problem(resp, 401, "unauthorized").await;
        assert_eq!(problem["detail"], "wrong email or password");
    }
}

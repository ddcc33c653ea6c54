//! Tokens: forged, foreign, expired and misaddressed ones are refused; roles are enforced.

use crowdledger::auth::{AUDIENCE, ISSUER, Role};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{JWT_SECRET, assert_problem, gift, spawn_app, spawn_app_with};

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
    json!({ "sub": "mallory@example.org", "role": role, "iat": now, "exp": now + exp_offset, "iss": ISSUER, "aud": aud, "sid": "a-session", "auth_time": now })
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
    let no_exp = json!({ "sub": "m@example.org", "role": "admin", "iat": 1, "iss": ISSUER, "aud": AUDIENCE, "sid": "s", "auth_time": 1 });
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

/// `header.claims.signature` with an HMAC-SHA256 signature over the first two parts, whatever
/// the header says (as an attacker would write it).
fn hand_signed(header: &Value, claims: &Value, secret: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("hmac key");
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(&mac.finalize().into_bytes()))
}

fn sign_with(header: Header, claims: &Value) -> String {
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()).expect("key"),
    )
    .expect("sign")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_not_exactly_as_we_issue_them_get_401() {
    let app = spawn_app().await;
    let secret = JWT_SECRET.as_bytes();
    let now = chrono::Utc::now().timestamp();
    let good = claims("admin", 600, AUDIENCE);
    let without = |field: &str| {
        let mut c = good.clone();
        c.as_object_mut().expect("object").remove(field);
        c
    };
    let with = |field: &str, value: Value| {
        let mut c = good.clone();
        c[field] = value;
        c
    };
    let typ = |t: Option<&str>| {
        let mut h = Header::new(Algorithm::HS256);
        h.typ = t.map(str::to_owned);
        h
    };
    let mut jku = Header::new(Algorithm::HS256);
    jku.jku = Some("https://attacker.example/keys.json".into());
    let mut crit = Header::new(Algorithm::HS256);
    crit.crit = Some(vec!["exp".into()]);
    let forged: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64url(br#"{"alg":"none","typ":"JWT"}"#),
                b64url(good.to_string().as_bytes())
            ),
        ),
        (
            "alg RS256, HMAC-signed with our secret (key confusion)",
            hand_signed(&json!({ "alg": "RS256", "typ": "JWT" }), &good, secret),
        ),
        (
            "alg RS256, unsigned",
            format!(
                "{}.{}.",
                b64url(br#"{"alg":"RS256","typ":"JWT"}"#),
                b64url(good.to_string().as_bytes())
            ),
        ),
        (
            "alg ES256, HMAC-signed with our secret",
            hand_signed(&json!({ "alg": "ES256", "typ": "JWT" }), &good, secret),
        ),
        (
            "HS384 with the right secret",
            sign_with(Header::new(Algorithm::HS384), &good),
        ),
        (
            "HS512 with the right secret",
            sign_with(Header::new(Algorithm::HS512), &good),
        ),
        ("no typ", sign_with(typ(None), &good)),
        ("typ at+jwt", sign_with(typ(Some("at+jwt")), &good)),
        ("typ JWS", sign_with(typ(Some("JWS")), &good)),
        ("a key URL in the header (jku)", sign_with(jku, &good)),
        ("a critical extension (crit)", sign_with(crit, &good)),
        ("no exp", sign(secret, &without("exp"))),
        ("no iat", sign(secret, &without("iat"))),
        ("no iss", sign(secret, &without("iss"))),
        ("no aud", sign(secret, &without("aud"))),
        ("no sub", sign(secret, &without("sub"))),
        ("no role", sign(secret, &without("role"))),
        ("no session", sign(secret, &without("sid"))),
        ("no auth_time", sign(secret, &without("auth_time"))),
        (
            "wrong iss",
            sign(secret, &with("iss", json!("someone-else"))),
        ),
        (
            "wrong aud",
            sign(secret, &with("aud", json!("crowdledger-web"))),
        ),
        (
            "aud list without ours",
            sign(secret, &with("aud", json!(["a", "b"]))),
        ),
        ("expired", sign(secret, &claims("admin", -3600, AUDIENCE))),
        (
            "issued in the future",
            sign(secret, &with("iat", json!(now + 3600))),
        ),
        (
            "lives longer than we issue",
            sign(secret, &with("exp", json!(now + 30 * 24 * 3600))),
        ),
        ("unknown role", sign(secret, &with("role", json!("root")))),
        (
            "HS256 with our header but another secret",
            hand_signed(
                &json!({ "alg": "HS256", "typ": "JWT" }),
                &good,
                b"another-secret-0123456789abcdef-0123",
            ),
        ),
    ];
    for (what, token) in &forged {
        let resp = app
            .send(reqwest::Method::GET, "/api/donations", Some(token), None)
            .await;
        assert_eq!(resp.status(), 401, "{what}");
        assert_problem(resp, 401, "unauthorized").await;
    }
    // The same claims, signed as we sign them, pass (so the refusals above are specific).
    for (what, token) in [
        ("ours", sign(secret, &good)),
        (
            "hand-signed HS256 with typ JWT",
            hand_signed(&json!({ "alg": "HS256", "typ": "JWT" }), &good, secret),
        ),
    ] {
        let resp = app
            .send(reqwest::Method::GET, "/api/donations", Some(&token), None)
            .await;
        assert_eq!(resp.status(), 200, "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_signed_with_a_rotated_out_secret_get_401() {
    // Secret A.
    let old = spawn_app().await;
    let email = old.user(Role::Treasurer);
    let login = |app: &crate::helpers::TestApp| {
        app.client
            .post(format!("{}/api/auth/login", app.addr))
            .json(&json!({ "email": email, "password": crate::helpers::PASSWORD }))
            .send()
    };
    let old_token: Value = login(&old)
        .await
        .expect("login")
        .json()
        .await
        .expect("login");
    let old_token = old_token["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let list = |app: &crate::helpers::TestApp, token: String| {
        let url = format!("{}/api/donations", app.addr);
        let client = app.client.clone();
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
        }
    };
    assert_eq!(list(&old, old_token.clone()).await.status(), 200);

    // The operator rotates to secret B: a new instance on the same database.
    let database_url = old.database_url();
    let new = spawn_app_with(&[
        ("DATABASE_URL", database_url.as_str()),
        ("JWT_SECRET", "rotated-secret-B-0123456789abcdef-01234"),
    ])
    .await;
    assert_problem(list(&new, old_token).await, 401, "unauthorized").await;
    // Logging in again works, and the new token is refused where the old secret still rules.
    let resp = login(&new).await.expect("login");
    assert_eq!(resp.status(), 200);
    let fresh: Value = resp.json().await.expect("login");
    let fresh = fresh["access_token"].as_str().expect("token").to_owned();
    assert_eq!(list(&new, fresh.clone()).await.status(), 200);
    assert_problem(list(&old, fresh).await, 401, "unauthorized").await;
}

//! Staff you can trust: the second factor (enrolment, codes once, recovery codes once),
//! sessions that end (logout, an admin, a role or password change, the CLI), staff
//! management with the last admin kept, and dangerous actions behind a recent password or
//! code. Both engines.

use std::time::{Duration, Instant};

use crowdledger::auth::{Grant, Role, TokenKeys, totp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    JWT_SECRET, PASSWORD, TestApp, assert_problem, login, login_answer, spawn_app_with, totp_now,
};

/// An app whose login limits let one test sign in a dozen times (the limits have their own
/// tests, and `hostile::second_factor_guessing_is_throttled` below keeps the defaults).
async fn spawn_app() -> TestApp {
    spawn_app_with(&[
        ("RATE_LIMIT_LOGIN", "200/min"),
        ("RATE_LIMIT_LOGIN_ACCOUNT", "200/15m"),
    ])
    .await
}

fn unix_now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).expect("after 1970")
}

async fn status(app: &TestApp, method: Method, path: &str, token: &str) -> u16 {
    app.send(method, path, Some(token), None)
        .await
        .status()
        .as_u16()
}

async fn mfa(app: &TestApp, mfa_token: &Value, code: &str) -> reqwest::Response {
    app.send(
        Method::POST,
        "/api/auth/mfa",
        None,
        Some(&json!({ "mfa_token": mfa_token, "code": code })),
    )
    .await
}

fn audit_actions(app: &TestApp) -> Vec<String> {
    use crowdledger::db::schema::audit_log;
    use diesel::prelude::*;
    audit_log::table
        .order(audit_log::id.asc())
        .select(audit_log::action)
        .load(&mut app.conn())
        .expect("audit")
}

async fn user_id(app: &TestApp, admin: &str, email: &str) -> i64 {
    let users = app.get_json("/api/admin/users", admin).await;
    users
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["email"] == email)
        .and_then(|u| u["id"].as_i64())
        .expect("listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_enrols_then_each_code_and_recovery_code_works_once() {
    let app = spawn_app().await;
    let email = app.user(Role::Admin);
    // REQUIRE_2FA=admin by default: the password alone gives a token that can only enrol.
    let first = login_answer(&app, &email, PASSWORD).await;
    assert_eq!(first["enrolment_required"], true, "{first}");
    let enrolling = first["access_token"].as_str().expect("token").to_owned();
    let refused = app
        .send(Method::GET, "/api/donations", Some(&enrolling), None)
        .await;
    assert_problem(refused, 403, "mfa_enrolment_required").await;
    let me = app.get_json("/api/auth/me", &enrolling).await;
    assert_eq!(me["enrolment_required"], true);
    assert_eq!(me["mfa_enabled"], false);

    let started = app
        .post_json("/api/auth/2fa/enrol", Some(&enrolling), &json!({}))
        .await;
    let secret = started["secret"].as_str().expect("secret").to_owned();
    assert_eq!(secret.len(), 32, "160 bits in base32");
    assert!(
        started["otpauth_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("otpauth://totp/") && u.contains(&secret))
    );
    assert!(
        started["qr_svg"]
            .as_str()
            .is_some_and(|s| s.starts_with("<svg"))
    );
    // A wrong first code changes nothing: the password alone still only enrols.
    let now = unix_now();
    let wrong = format!(
        "{:06}",
        (totp::code_at(&secret, now)
            .expect("code")
            .parse::<u32>()
            .expect("digits")
            + 1)
            % 1_000_000
    );
    let resp = app
        .send(
            Method::POST,
            "/api/auth/2fa/confirm",
            Some(&enrolling),
            Some(&json!({ "code": wrong })),
        )
        .await;
    assert_problem(resp, 401, "unauthorized").await;
    let first_code = totp_now(&secret);
    let confirmed = app
        .post_json(
            "/api/auth/2fa/confirm",
            Some(&enrolling),
            &json!({ "code": first_code }),
        )
        .await;
    let codes: Vec<String> = confirmed["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let full = confirmed["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(
        status(&app, Method::GET, "/api/donations", &full).await,
        200
    );
    let again = app
        .send(Method::POST, "/api/auth/2fa/enrol", Some(&full), None)
        .await;
    assert_problem(again, 409, "mfa_already_enabled").await;

    // Now a login asks for a code: the one used at enrolment is spent; the next step's works
    // once; a recovery code works once.
    let step = login_answer(&app, &email, PASSWORD).await;
    assert_eq!(step["mfa_required"], true, "{step}");
    assert!(
        step.get("access_token").is_none(),
        "no token before the code: {step}"
    );
    assert_problem(
        mfa(&app, &step["mfa_token"], &first_code).await,
        401,
        "unauthorized",
    )
    .await;
    let next = totp::code_at(&secret, unix_now() + totp::STEP_SECS).expect("code");
    let resp = mfa(&app, &step["mfa_token"], &next).await;
    assert_eq!(resp.status(), 200);
    let token: Value = resp.json().await.expect("json");
    assert_eq!(
        status(
            &app,
            Method::GET,
            "/api/donations",
            token["access_token"].as_str().expect("t")
        )
        .await,
        200
    );
    assert_problem(
        mfa(&app, &step["mfa_token"], &next).await,
        401,
        "unauthorized",
    )
    .await;
    let recovery = codes[3].to_uppercase().replace('-', " ");
    assert_eq!(
        mfa(&app, &step["mfa_token"], &recovery).await.status(),
        200,
        "typed any case"
    );
    assert_problem(
        mfa(&app, &step["mfa_token"], &codes[3]).await,
        401,
        "unauthorized",
    )
    .await;
    // The second-factor step's token is no access token, and an access token no mfa_token.
    assert_eq!(
        status(
            &app,
            Method::GET,
            "/api/donations",
            step["mfa_token"].as_str().expect("t")
        )
        .await,
        401
    );
    assert_problem(
        mfa(&app, &json!(full), &codes[4]).await,
        401,
        "unauthorized",
    )
    .await;

    // A treasurer needs no second factor under REQUIRE_2FA=admin.
    let treasurer = app.user(Role::Treasurer);
    let answer = login_answer(&app, &treasurer, PASSWORD).await;
    assert_eq!(answer["enrolment_required"], false);
    assert_eq!(answer["mfa_required"], false);
    let actions = audit_actions(&app);
    for action in ["auth.2fa_enabled", "auth.mfa_failed", "auth.login"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_at_logout_by_an_admin_and_on_password_and_role_changes() {
    let app = spawn_app().await;
    let admin = app.token(Role::Admin).await;
    let email = app.user(Role::Treasurer);
    let (one, two) = (login(&app, &email).await, login(&app, &email).await);
    let sessions = app.get_json("/api/auth/sessions", &one).await;
    let sessions = sessions.as_array().expect("sessions");
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let other_sid = sessions
        .iter()
        .find(|s| s["current"] == false)
        .and_then(|s| s["id"].as_str())
        .expect("the other session")
        .to_owned();

    // Logout ends this session only.
    assert_eq!(
        status(&app, Method::POST, "/api/auth/logout", &one).await,
        204
    );
    let resp = app
        .send(Method::GET, "/api/donations", Some(&one), None)
        .await;
    assert_problem(resp, 401, "unauthorized").await;
    assert_eq!(status(&app, Method::GET, "/api/donations", &two).await, 200);

    // A treasurer cannot end another's session (nor learn it exists); an admin can.
    let stranger = app.token(Role::Treasurer).await;
    let path = format!("/api/auth/sessions/{other_sid}/end");
    assert_eq!(status(&app, Method::POST, &path, &stranger).await, 404);
    assert_eq!(status(&app, Method::POST, &path, &admin).await, 204);
    assert_eq!(status(&app, Method::GET, "/api/donations", &two).await, 401);

    // A password change: the rules, then every session of the account ends.
    let (three, four) = (login(&app, &email).await, login(&app, &email).await);
    for (body, field) in [
        (
            json!({ "current_password": "not the password!", "new_password": "a brand new passphrase" }),
            "current_password",
        ),
        (
            json!({ "current_password": PASSWORD, "new_password": "short" }),
            "new_password",
        ),
        (
            json!({ "current_password": PASSWORD, "new_password": "QWERTY123456" }),
            "new_password",
        ),
        (
            json!({ "current_password": PASSWORD, "new_password": email.clone() }),
            "new_password",
        ),
    ] {
        let resp = app
            .send(
                Method::POST,
                "/api/auth/password",
                Some(&three),
                Some(&body),
            )
            .await;
        let problem = assert_problem(resp, 422, "invalid_request").await;
        assert_eq!(problem["field"], field, "{body}");
    }
    let changed = app
        .post_json(
            "/api/auth/password",
            Some(&three),
            &json!({ "current_password": PASSWORD, "new_password": "a brand new passphrase" }),
        )
        .await;
    let fresh = changed["access_token"].as_str().expect("token").to_owned();
    for old in [&three, &four] {
        assert_eq!(status(&app, Method::GET, "/api/donations", old).await, 401);
    }
    assert_eq!(
        status(&app, Method::GET, "/api/donations", &fresh).await,
        200
    );
    let resp = app
        .send(
            Method::POST,
            "/api/auth/login",
            None,
            Some(&json!({ "email": email, "password": PASSWORD })),
        )
        .await;
    assert_problem(resp, 401, "unauthorized").await;
    let relogged = login_answer(&app, &email, "a brand new passphrase").await;
    let relogged = relogged["access_token"].as_str().expect("token").to_owned();

    // A role change ends every session of the account at once.
    let id = user_id(&app, &admin, &email).await;
    let after = app
        .send(
            Method::PUT,
            &format!("/api/admin/users/{id}"),
            Some(&admin),
            Some(&json!({ "role": "admin" })),
        )
        .await;
    assert_eq!(after.status(), 200);
    for old in [&fresh, &relogged] {
        assert_eq!(status(&app, Method::GET, "/api/donations", old).await, 401);
    }
    let actions = audit_actions(&app);
    for action in [
        "auth.logout",
        "auth.session_ended",
        "auth.password_changed",
        "user.updated",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_staff_but_never_remove_the_last_admin() {
    let app = spawn_app().await;
    let admin_email = app.user(Role::Admin);
    let admin = login(&app, &admin_email).await;
    let me = user_id(&app, &admin, &admin_email).await;
    for change in [json!({ "disabled": true }), json!({ "role": "treasurer" })] {
        let resp = app
            .send(
                Method::PUT,
                &format!("/api/admin/users/{me}"),
                Some(&admin),
                Some(&change),
            )
            .await;
        assert_problem(resp, 409, "last_admin").await;
    }
    for (password, why) in [("short", "length"), ("1q2w3e4r5t6y", "common")] {
        let body = json!({ "email": "bea@example.org", "role": "admin", "password": password });
        let resp = app
            .send(Method::POST, "/api/admin/users", Some(&admin), Some(&body))
            .await;
        assert_problem(resp, 422, "invalid_request").await;
        let _ = why;
    }
    let body = json!({ "email": "Bea@Example.org", "role": "admin", "password": PASSWORD });
    let made = app
        .send(Method::POST, "/api/admin/users", Some(&admin), Some(&body))
        .await;
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.expect("json");
    assert_eq!(made["email"], "bea@example.org");
    assert_eq!(made["mfa_enabled"], false);
    let resp = app
        .send(Method::POST, "/api/admin/users", Some(&admin), Some(&body))
        .await;
    assert_problem(resp, 409, "user_exists").await;

    // Bea signs in (and enrols); disabled, her token is refused and she cannot log in; enabled
    // again, she can.
    let bea = login(&app, "bea@example.org").await;
    assert_eq!(
        status(&app, Method::GET, "/api/admin/users", &bea).await,
        200
    );
    let id = made["id"].as_i64().expect("id");
    let path = format!("/api/admin/users/{id}");
    let off = app
        .send(
            Method::PUT,
            &path,
            Some(&admin),
            Some(&json!({ "disabled": true })),
        )
        .await;
    assert_eq!(off.status(), 200);
    assert_eq!(
        status(&app, Method::GET, "/api/admin/users", &bea).await,
        401
    );
    let resp = app
        .send(
            Method::POST,
            "/api/auth/login",
            None,
            Some(&json!({ "email": "bea@example.org", "password": PASSWORD })),
        )
        .await;
    assert_problem(resp, 403, "account_disabled").await;
    let on = app
        .send(
            Method::PUT,
            &path,
            Some(&admin),
            Some(&json!({ "disabled": false })),
        )
        .await;
    assert_eq!(on.status(), 200);
    let bea = login(&app, "bea@example.org").await;
    // With two admins, one may step down.
    let down = app
        .send(
            Method::PUT,
            &format!("/api/admin/users/{me}"),
            Some(&bea),
            Some(&json!({ "role": "treasurer" })),
        )
        .await;
    assert_eq!(down.status(), 200);
    let users = app.get_json("/api/admin/users", &bea).await;
    assert_eq!(users.as_array().map(Vec::len), Some(2), "{users}");

    // A treasurer reaches no user, session-ending or approval route.
    let treasurer = app.token(Role::Treasurer).await;
    let new_user = json!({ "email": "x@example.org", "role": "admin", "password": PASSWORD });
    for (method, path, body) in [
        (Method::GET, "/api/admin/users".to_owned(), None),
        (Method::POST, "/api/admin/users".to_owned(), Some(new_user)),
        (
            Method::PUT,
            format!("/api/admin/users/{id}"),
            Some(json!({ "role": "treasurer" })),
        ),
        (
            Method::POST,
            format!("/api/admin/users/{id}/sessions/end"),
            None,
        ),
        (Method::GET, "/api/admin/approvals".to_owned(), None),
        (
            Method::POST,
            "/api/admin/approvals/1/approve".to_owned(),
            None,
        ),
        (
            Method::POST,
            "/api/admin/approvals/1/reject".to_owned(),
            None,
        ),
    ] {
        let resp = app
            .send(method.clone(), &path, Some(&treasurer), body.as_ref())
            .await;
        assert_problem(resp, 403, "forbidden").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangerous_actions_need_a_password_or_code_from_the_last_ten_minutes() {
    let app = spawn_app().await;
    let email = app.user(Role::Admin);
    let fresh = login(&app, &email).await;
    // The same account and session, signed in eleven minutes ago.
    let keys = TokenKeys::new(JWT_SECRET.as_bytes()).expect("keys");
    let stale = keys
        .issue(&Grant {
            email: &email,
            role: Role::Admin,
            sid: "an-old-session",
            auth_time: chrono::Utc::now().timestamp() - 660,
            enrol_only: false,
        })
        .expect("token");
    let refund = json!({ "amount": "1.00", "reason": "asked" });
    for (method, path, body) in [
        (
            Method::POST,
            "/api/admin/donations/1/refund",
            Some(refund.clone()),
        ),
        (
            Method::PUT,
            "/api/admin/fund",
            Some(json!({ "target": "5000" })),
        ),
        (Method::GET, "/api/reports/donations.csv", None),
        (
            Method::PUT,
            "/api/admin/users/1",
            Some(json!({ "role": "admin" })),
        ),
        (
            Method::POST,
            "/api/admin/users",
            Some(json!({ "email": "c@example.org", "role": "admin", "password": PASSWORD })),
        ),
        (Method::POST, "/api/admin/approvals/1/approve", None),
        (
            Method::POST,
            "/api/admin/donors/erase",
            Some(json!({ "email": "d@example.org" })),
        ),
        (Method::POST, "/api/auth/2fa/recovery-codes", None),
    ] {
        let resp = app
            .send(method.clone(), path, Some(&stale), body.as_ref())
            .await;
        assert_problem(resp, 403, "reauth_required").await;
    }
    // What is not dangerous still works with the old sign-in.
    assert_eq!(
        status(&app, Method::GET, "/api/reports/periods.csv", &stale).await,
        200
    );
    let name = app
        .send(
            Method::PUT,
            "/api/admin/fund",
            Some(&stale),
            Some(&json!({ "name": "Renamed" })),
        )
        .await;
    assert_eq!(name.status(), 200);
    // A wrong password does not open it; the password does, and so does a code.
    let resp = app
        .send(
            Method::POST,
            "/api/auth/reauth",
            Some(&stale),
            Some(&json!({ "password": "wrong wrong wrong" })),
        )
        .await;
    assert_problem(resp, 401, "unauthorized").await;
    let renewed = app
        .post_json(
            "/api/auth/reauth",
            Some(&stale),
            &json!({ "password": PASSWORD }),
        )
        .await;
    let renewed = renewed["access_token"].as_str().expect("token").to_owned();
    assert_eq!(
        status(&app, Method::GET, "/api/reports/donations.csv", &renewed).await,
        200
    );
    let secret = app.enrolled.lock().expect("enrolled")[&email]
        .secret
        .clone();
    let code = totp::code_at(&secret, unix_now() + totp::STEP_SECS).expect("code");
    let by_code = app
        .post_json("/api/auth/reauth", Some(&stale), &json!({ "code": code }))
        .await;
    let by_code = by_code["access_token"].as_str().expect("token").to_owned();
    assert_eq!(
        status(&app, Method::POST, "/api/auth/2fa/recovery-codes", &by_code).await,
        200
    );
    assert_eq!(
        status(&app, Method::GET, "/api/reports/donations.csv", &fresh).await,
        200
    );
    let actions = audit_actions(&app);
    for action in [
        "auth.reauth",
        "auth.reauth_failed",
        "auth.recovery_codes_replaced",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_resets_a_second_factor_and_the_server_refuses_its_sessions_within_a_second() {
    let app = spawn_app().await;
    let email = app.user(Role::Admin);
    let token = login(&app, &email).await;
    assert_eq!(
        status(&app, Method::GET, "/api/donations", &token).await,
        200
    );
    let out = app.cli(&["user", "reset-2fa", "--email", &email], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another process ended the session: this server learns of it by its reload.
    let ended = Instant::now();
    let mut refused_after = None;
    while ended.elapsed() < Duration::from_secs(3) {
        if status(&app, Method::GET, "/api/donations", &token).await == 401 {
            refused_after = Some(ended.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = refused_after.expect("the ended session is refused");
    println!(
        "session ended by the CLI refused after {} ms",
        after.as_millis()
    );
    assert!(
        after <= Duration::from_millis(1500),
        "refused only after {after:?}"
    );
    // The account enrols again at its next login.
    let answer = login_answer(&app, &email, PASSWORD).await;
    assert_eq!(answer["enrolment_required"], true, "{answer}");
    let listed = app.cli(&["user", "list"], &[]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(&format!("{email}\tadmin\tactive\t2fa off")),
        "{listed}"
    );
    let out = app.cli(&["user", "disable", "--email", &email], &[]);
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && text.contains("last active admin"),
        "{text}"
    );
    let actions = audit_actions(&app);
    assert!(actions.iter().any(|a| a == "auth.2fa_reset"), "{actions:?}");
}

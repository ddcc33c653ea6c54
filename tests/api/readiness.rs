//! `/readyz`: ready only when the database answers and has every migration of this binary;
//! `/healthz` stays liveness. (The outage test in `faults.rs` checks 503 while PostgreSQL is
//! down.)

use serde_json::Value;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_when_migrated_and_503_while_a_migration_is_pending() {
    let app = spawn_app().await;
    let ready = app.send(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "ready");

    // An older schema, as when a new version starts before its migrations ran.
    let mut conn = app.conn();
    let reverted =
        crowdledger::db::revert_migrations_after(&mut conn, "20261129000006").expect("revert");
    assert!(reverted > 0, "this version has migrations after 000006");
    let problem = assert_problem(
        app.send(reqwest::Method::GET, "/readyz", None, None).await,
        503,
        "unavailable",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&format!("{reverted} migration"))),
        "{problem}"
    );
    // Liveness does not depend on the database.
    assert_eq!(
        app.send(reqwest::Method::GET, "/healthz", None, None)
            .await
            .status(),
        200
    );
    crowdledger::db::migrate(&mut conn).expect("migrate again");
    assert_eq!(
        app.send(reqwest::Method::GET, "/readyz", None, None)
            .await
            .status(),
        200
    );
}

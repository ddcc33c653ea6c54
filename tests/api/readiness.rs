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

    // An older schema, as when a new version starts before its migrations ran: the newest
    // migration is forgotten by the migrations table (it cannot be reverted once the ledger
    // has version 2 entries, and reverting is not what an upgrade looks like anyway).
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct V {
        #[diesel(sql_type = diesel::sql_types::Text)]
        version: String,
    }
    let mut conn = app.conn();
    let newest =
        diesel::sql_query("SELECT MAX(version) AS version FROM __diesel_schema_migrations")
            .get_result::<V>(&mut conn)
            .expect("newest")
            .version;
    diesel::sql_query(format!(
        "DELETE FROM __diesel_schema_migrations WHERE version = '{newest}'"
    ))
    .execute(&mut conn)
    .expect("forget");
    let reverted = 1;
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
    diesel::sql_query(format!(
        "INSERT INTO __diesel_schema_migrations (version) VALUES ('{newest}')"
    ))
    .execute(&mut conn)
    .expect("remember");
    assert_eq!(
        app.send(reqwest::Method::GET, "/readyz", None, None)
            .await
            .status(),
        200
    );
}

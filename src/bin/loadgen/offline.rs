//! `loadgen offline`: records offline gifts through the treasurer API and checks that
//! `/api/fund` moved by exactly their total.

use std::sync::Arc;

use anyhow::Context;
use crowdledger::money::Currency;

use super::{Args, Request, fire, raised_minor, report, wire};

/// Logs in as the treasurer, then records `requests` gifts of `amount`.
pub(crate) async fn run(
    args: &Args,
    client: &reqwest::Client,
    email: &str,
    password: &str,
    requests: usize,
    amount: &str,
) -> anyhow::Result<bool> {
    let amount_minor = Currency::USD
        .parse_minor(amount)
        .map_err(|e| anyhow::anyhow!("--amount: {e}"))?;
    let login: serde_json::Value = client
        .post(format!("{}/api/auth/login", args.url))
        .json(&serde_json::json!({ "email": email, "password": password }))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .context("login failed (is the user a treasurer?)")?;
    let body = serde_json::json!({
        "amount": amount, "donor_name": "Load Test", "method": "check", "reference": "load"
    })
    .to_string()
    .into_bytes();
    let (address, path) = wire::target(&format!("{}/api/donations/offline", args.url))?;
    let bearer = format!("Bearer {token}");
    let request = wire::post(
        &address,
        &path,
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        &body,
    );
    let reqs: Vec<Request> = vec![request; requests];
    let before = raised_minor(client, &args.url).await?;
    let (lat, failures, elapsed) = fire(&address, args.clients, Arc::new(reqs), 201).await;
    let after = raised_minor(client, &args.url).await?;
    let expected = i64::try_from(requests - failures)? * amount_minor;
    Ok(report(
        args,
        "offline",
        &lat,
        failures,
        elapsed,
        after - before,
        expected,
    ))
}

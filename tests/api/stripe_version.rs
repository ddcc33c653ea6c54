//! Every call to Stripe carries the pinned `Stripe-Version` (issue 20, Stripe's go-live
//! checklist): a listener in place of Stripe records the headers of each kind of call.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crowdledger::config::Config;
use crowdledger::payments::{Payments, STRIPE_API_VERSION};

/// A fake Stripe that answers `{}` to everything and keeps each request's head.
fn recording_stripe() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&heads);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut head = String::new();
            let mut length = 0_usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0_u8; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            kept.lock().expect("lock").push(head);
            let mut out = stream;
            let _ = out.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
            );
        }
    });
    (base, heads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stripe_call_sends_the_pinned_api_version() {
    let (base, heads) = recording_stripe();
    let config = Config::from_lookup(|k| match k {
        "STRIPE_SECRET_KEY" => Some("sk_test_version".into()),
        "STRIPE_PUBLISHABLE_KEY" => Some("pk_test_version".into()),
        "STRIPE_WEBHOOK_SECRET" => Some("whsec_version".into()),
        "STRIPE_API_BASE" => Some(base.clone()),
        _ => None,
    })
    .expect("config");
    let payments = Payments::new(config.stripe.as_ref().expect("stripe")).expect("client");
    let _ = payments.intent("pi_1").await;
    let _ = payments.cancel_intent("pi_1").await;
    let _ = payments.list_intents(None).await;
    let _ = payments.undelivered_events(0, None).await;
    let _ = payments.payouts().await;
    let heads = heads.lock().expect("lock").clone();
    assert!(heads.len() >= 5, "{heads:?}");
    for head in &heads {
        let version = head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("stripe-version:")
                .map(|v| v.trim().to_owned())
        });
        assert_eq!(version.as_deref(), Some(STRIPE_API_VERSION), "{head}");
    }
}

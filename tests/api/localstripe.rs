//! A real localstripe process per test (installed by `scripts/install-test-peers.sh`), and
//! helpers that play the donor's browser (confirming an intent) and Stripe (signing events).

use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// Secret key the app and the helpers use against localstripe.
pub const SECRET_KEY: &str = "sk_test_crowdledger";

/// A running localstripe.
pub struct LocalStripe {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    child: Child,
    client: reqwest::Client,
}

fn binary() -> String {
    if let Ok(b) = std::env::var("LOCALSTRIPE") {
        return b;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/localstripe");
    assert!(
        std::path::Path::new(venv).exists(),
        "localstripe is not installed: run ./scripts/install-test-peers.sh (./scripts/test.sh does)"
    );
    venv.to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl LocalStripe {
    /// Starts localstripe on a free port with empty state and waits until it answers. The
    /// port is free when chosen but another test may bind it before localstripe does; a
    /// localstripe that exits early is started again on another port.
    pub async fn start() -> LocalStripe {
        for _attempt in 0..5 {
            let port = free_port();
            let child = Command::new(binary())
                .args(["--port", &port.to_string(), "--from-scratch"])
                // `tests/peers/sitecustomize.py` loads the extensions there: what Stripe
                // does and localstripe lacks.
                .env("CROWDLEDGER_PEER_PATCHES", "1")
                .env(
                    "PYTHONPATH",
                    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers"),
                )
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start localstripe");
            let mut ls = LocalStripe {
                base: format!("http://127.0.0.1:{port}"),
                child,
                client: reqwest::Client::new(),
            };
            // Up to 30 s: Python's start-up is slow on a loaded 2-core machine.
            for _ in 0..300 {
                if ls.get("/v1/payment_intents").await.is_ok() {
                    return ls;
                }
                if ls.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        panic!("localstripe did not start (5 attempts)");
    }

    async fn get(&self, path: &str) -> Result<Value, reqwest::Error> {
        self.client
            .get(format!("{}{path}", self.base))
            .basic_auth(SECRET_KEY, Some(""))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Value {
        self.client
            .post(format!("{}{path}", self.base))
            .basic_auth(SECRET_KEY, Some(""))
            .form(form)
            .send()
            .await
            .expect("localstripe request")
            .json()
            .await
            .expect("localstripe json")
    }

    /// Has localstripe sign and send every event to `url`.
    pub async fn register_webhook(&self, url: &str, secret: &str) {
        let resp = self
            .client
            .post(format!("{}/_config/webhooks/crowdledger", self.base))
            .form(&[("url", url), ("secret", secret)])
            .send()
            .await
            .expect("register webhook");
        assert!(resp.status().is_success(), "webhook registered");
    }

    /// Points the webhook at nowhere (localstripe cannot delete one), to lose events on purpose.
    pub async fn lose_webhooks(&self) {
        self.register_webhook("http://127.0.0.1:9/nowhere", "whsec_lost")
            .await;
    }

    /// What the donor's browser does: attach a test card, confirm. Returns the status.
    pub async fn confirm(&self, pi: &str) -> String {
        self.post(
            &format!("/v1/payment_intents/{pi}"),
            &[("payment_method", "pm_card_visa")],
        )
        .await;
        let v = self
            .post(&format!("/v1/payment_intents/{pi}/confirm"), &[])
            .await;
        v["status"].as_str().unwrap_or_default().to_owned()
    }

    /// What the donor's browser does through the Payment Element: confirms with a payment
    /// method of `kind` (`us_bank_account`, `alipay`, `wechat_pay`, `card`); the intent after.
    /// (`tests/peers/localstripe_methods.py` adds the methods other than cards.)
    pub async fn confirm_with(&self, pi: &str, kind: &str, return_url: &str) -> Value {
        let mut form = vec![
            ("payment_method_data[type]", kind),
            ("return_url", return_url),
        ];
        if kind == "wechat_pay" {
            form.push(("payment_method_options[wechat_pay][client]", "web"));
        }
        self.post(&format!("/v1/payment_intents/{pi}/confirm"), &form)
            .await
    }

    /// A form POST to localstripe with the secret key; its JSON answer (errors too).
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Value {
        self.post(path, form).await
    }

    /// Test hook: a bank debit in `processing`, or an Alipay / WeChat Pay payment waiting for
    /// the donor, ends `succeeded` or `failed` (Stripe's events follow).
    pub async fn settle(&self, pi: &str, outcome: &str) -> Value {
        self.post(
            &format!("/_test/payment_intents/{pi}/settle"),
            &[("outcome", outcome)],
        )
        .await
    }

    /// Test hook: the donor's bank returns a bank debit after it succeeded (Stripe reports
    /// it as a lost dispute).
    pub async fn return_debit(&self, pi: &str) -> Value {
        self.post(&format!("/_test/payment_intents/{pi}/return"), &[])
            .await
    }

    /// Test hook: a pending refund (Alipay, WeChat Pay) ends `succeeded` or `failed`.
    pub async fn settle_refund(&self, refund: &str, outcome: &str) -> Value {
        self.post(
            &format!("/_test/refunds/{refund}/settle"),
            &[("outcome", outcome)],
        )
        .await
    }

    /// The refunds of a payment, as Stripe lists them.
    pub async fn refunds_of(&self, pi: &str) -> Vec<Value> {
        self.get(&format!("/v1/refunds?payment_intent={pi}"))
            .await
            .expect("refunds")["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A refund made at Stripe directly (as in its dashboard), `amount` in minor units.
    pub async fn refund(&self, pi: &str, amount: i64) -> Value {
        let amount = amount.to_string();
        self.post(
            "/v1/refunds",
            &[("payment_intent", pi), ("amount", &amount)],
        )
        .await
    }

    /// A PaymentIntent as localstripe has it.
    pub async fn intent(&self, pi: &str) -> Value {
        self.get(&format!("/v1/payment_intents/{pi}"))
            .await
            .expect("intent")
    }
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Stripe event as Stripe would send it (current API shape).
pub fn event(id: &str, kind: &str, object: Value) -> Value {
    serde_json::json!({
        "id": id, "object": "event", "type": kind, "api_version": "2026-09-30",
        "created": chrono::Utc::now().timestamp(), "livemode": false,
        "data": { "object": object },
    })
}

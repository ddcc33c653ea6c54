//! A real SMTP server (aiosmtpd, from `.venv`) per test, and what it received.

use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// A running SMTP sink.
pub struct SmtpSink {
    /// Its port.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// While the sink does not listen: the port held by a listener that drops every
    /// connection (an SMTP server that is down), so no other test's server can take it.
    down: Option<Down>,
    /// Seconds the server waits before accepting each message (0: at once).
    delay: f64,
}

fn python() -> String {
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    assert!(
        std::path::Path::new(venv).exists(),
        "aiosmtpd is not installed: run ./scripts/install-test-peers.sh (./scripts/test.sh does)"
    );
    venv.to_owned()
}

impl SmtpSink {
    /// Reserves a port without serving SMTP on it yet (an SMTP outage): every connection is
    /// closed at once, and the port stays this sink's until [`SmtpSink::listen`].
    pub fn reserve() -> SmtpSink {
        let down = Down::hold();
        SmtpSink {
            port: down.port,
            dir: tempfile::tempdir().expect("dir"),
            child: None,
            down: Some(down),
            delay: 0.0,
        }
    }

    /// Starts a sink on a free port.
    pub async fn start() -> SmtpSink {
        let mut s = SmtpSink::reserve();
        s.listen().await;
        s
    }

    /// Starts a sink that takes `delay` to accept each message (a slow mail server).
    pub async fn start_slow(delay: std::time::Duration) -> SmtpSink {
        let mut s = SmtpSink::reserve();
        s.delay = delay.as_secs_f64();
        s.listen().await;
        s
    }

    /// Starts listening (ends the outage).
    pub async fn listen(&mut self) {
        drop(self.down.take());
        let child = Command::new(python())
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py"))
            .arg(self.port.to_string())
            .arg(self.dir.path())
            .arg(self.delay.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the SMTP sink");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("SMTP sink did not start");
    }

    /// The directory each received message is written to, one JSON file each.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.dir.path())
            .expect("read sink dir")
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).expect("read message");
                out.push(serde_json::from_str(&text).expect("message json"));
            }
        }
        out
    }

    /// Waits until at least `n` messages arrived (up to `secs`), then returns them all.
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let m = self.messages();
            if m.len() >= n || std::time::Instant::now() > deadline {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A port held by a listener that closes every connection it gets, on a thread of its own.
struct Down {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Down {
    fn hold() -> Down {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        let port = listener.local_addr().expect("address").port();
        listener.set_nonblocking(true).expect("non-blocking");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => drop(conn),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Down {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Down {
    /// Frees the port (the listener closes when its thread ends).
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

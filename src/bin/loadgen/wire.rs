//! `loadgen`'s HTTP/1.1 client: each simulated client keeps one connection open and sends
//! requests written out before the clock starts, reading each answer's status line and its
//! `Content-Length` body. It is lean on purpose: the load tool shares the machine's two cores
//! with the server and its database, and with reqwest it took more CPU per request than the
//! server's HTTP workers did (BENCHMARKS.md, "Fifth session").

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where requests to `url` go: its `host:port` and its path (with the query), for an
/// `http://` URL.
pub fn target(url: &str) -> anyhow::Result<(String, String)> {
    let u = reqwest::Url::parse(url).with_context(|| format!("not a URL: {url}"))?;
    if u.scheme() != "http" {
        bail!(
            "the load tool speaks plain http:// only, not {}",
            u.scheme()
        );
    }
    let host = u.host_str().context("the URL has no host")?;
    let port = u.port_or_known_default().unwrap_or(80);
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    };
    Ok((format!("{host}:{port}"), path))
}

/// A `POST` of `body` to `path` with `headers`, as bytes on the wire.
pub fn post(address: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// One keep-alive connection, opened on first use and again after the server closed it or
/// an exchange failed.
pub struct Connection {
    address: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Connection {
    /// A connection to `address` (`host:port`), not yet open.
    pub fn new(address: &str) -> Connection {
        Connection {
            address: address.to_owned(),
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends `request` and reads the whole answer; returns its status.
    pub async fn send(&mut self, request: &[u8]) -> anyhow::Result<u16> {
        let answer = self.exchange(request).await;
        if !matches!(answer, Ok((_, true))) {
            // Failed, or the server closes after this answer: open a new one next time.
            self.stream = None;
        }
        answer.map(|(status, _)| status)
    }

    /// The status, and whether the connection can carry another request.
    async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<(u16, bool)> {
        let stream = match &mut self.stream {
            Some(s) => s,
            None => {
                let s = TcpStream::connect(&self.address).await?;
                s.set_nodelay(true)?;
                self.stream.insert(s)
            }
        };
        stream.write_all(request).await?;
        self.buf.clear();
        let head_len = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if stream.read_buf(&mut self.buf).await? == 0 {
                bail!("the server closed the connection before answering");
            }
        };
        let head = std::str::from_utf8(&self.buf[..head_len]).context("answer head")?;
        let (status, length, reusable) = parse_head(head)?;
        while self.buf.len() < head_len + length {
            if stream.read_buf(&mut self.buf).await? == 0 {
                bail!("the server closed the connection inside an answer");
            }
        }
        if self.buf.len() > head_len + length {
            bail!("the server sent more than the answer's Content-Length");
        }
        Ok((status, reusable))
    }
}

/// Status, body length and keep-alive of an answer's head (`HTTP/1.1 200 OK\r\n...\r\n\r\n`).
fn parse_head(head: &str) -> anyhow::Result<(u16, usize, bool)> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = match status_line.split(' ').collect::<Vec<_>>()[..] {
        ["HTTP/1.1", code, ..] => code.parse::<u16>().context("status code")?,
        _ => bail!("not an HTTP/1.1 answer: {status_line:?}"),
    };
    let (mut length, mut reusable) = (None, true);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().context("Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("answers with Transfer-Encoding ({value}) are not read");
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            reusable = false;
        }
    }
    Ok((
        status,
        length.context("answer without Content-Length")?,
        reusable,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_give_status_length_and_keep_alive() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 42\r\ncontent-type: application/json\r\n\r\n";
        assert_eq!(parse_head(ok).expect("valid"), (200, 42, true));
        let closing =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        assert_eq!(parse_head(closing).expect("valid"), (503, 0, false));
        assert!(parse_head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head("HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").is_err());
    }

    #[test]
    fn targets_split_into_address_and_path() {
        assert_eq!(
            target("http://127.0.0.1:18191/webhooks/stripe").expect("valid"),
            ("127.0.0.1:18191".to_owned(), "/webhooks/stripe".to_owned())
        );
        assert_eq!(
            target("http://localhost/a?b=1").expect("valid"),
            ("localhost:80".to_owned(), "/a?b=1".to_owned())
        );
        assert!(target("https://example.org/").is_err());
    }

    #[test]
    fn a_post_is_written_with_its_length_and_headers() {
        let bytes = post(
            "127.0.0.1:8080",
            "/webhooks/stripe",
            &[("Stripe-Signature", "t=1,v1=ab")],
            b"{}",
        );
        assert_eq!(
            String::from_utf8(bytes).expect("ascii"),
            "POST /webhooks/stripe HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 2\r\nStripe-Signature: t=1,v1=ab\r\n\r\n{}"
        );
    }

    #[tokio::test]
    async fn answers_are_read_whole_over_one_connection() {
        // Three answers on one connection; the second's body comes in a later write, so a
        // client that stopped at the head would read it as the third answer's head.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0_u8; 1024];
            let answers: [&[u8]; 3] = [
                b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello",
                b"HTTP/1.1 409 Conflict\r\nContent-Length: 3\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            ];
            for (i, answer) in answers.into_iter().enumerate() {
                let n = s.read(&mut buf).await.expect("request");
                assert!(buf[..n].starts_with(b"POST / HTTP/1.1\r\n"));
                s.write_all(answer).await.expect("answer");
                if i == 1 {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    s.write_all(b"abc").await.expect("rest of the body");
                }
            }
        });
        let mut c = Connection::new(&addr);
        let req = post(&addr, "/", &[], b"x");
        assert_eq!(c.send(&req).await.expect("first"), 201);
        assert_eq!(c.send(&req).await.expect("second"), 409);
        assert_eq!(c.send(&req).await.expect("third"), 200);
        server.await.expect("server");
    }
}

//! Who is asking, as the rate limits see it: the TCP peer's address, or, only when the peer is
//! a proxy the operator named, the address that proxy reports in its header.
//!
//! A client can never choose its own key: without `TRUSTED_PROXY_HEADER` the header is
//! ignored, and behind a trusted proxy only the hops that proxy appended are believed (read
//! right to left, the first address that is not itself a trusted proxy).

use std::net::IpAddr;

use actix_web::http::header::HeaderMap;

pub use crate::config::{IpNet, TrustedProxy};

/// The client's address: the peer's, unless the peer is a trusted proxy, in which case the
/// right-most address in the proxy's header that is not itself a trusted proxy. An address
/// the proxies could not name (`unknown`, garbage) stops the walk at the nearest proxy.
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    proxy: Option<&TrustedProxy>,
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let Some(proxy) = proxy.filter(|p| p.trusts(peer)) else {
        return Some(peer);
    };
    let rfc7239 = proxy.header == actix_web::http::header::FORWARDED;
    let hops: Vec<&str> = headers
        .get_all(&proxy.header)
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
        .collect();
    let mut nearest = peer;
    for hop in hops.iter().rev() {
        let node = if rfc7239 {
            forwarded_for(hop)
        } else {
            Some(hop.trim())
        };
        match node.and_then(parse_node) {
            Some(ip) if proxy.trusts(ip) => nearest = ip,
            Some(ip) => return Some(ip),
            None => return Some(nearest),
        }
    }
    // Every hop is one of ours (say, a health check from inside).
    Some(nearest)
}

/// The `for=` value of one RFC 7239 element (`for=192.0.2.60;proto=http`).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then(|| v.trim())
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, optionally in double quotes.
fn parse_node(text: &str) -> Option<IpAddr> {
    let t = text.trim().trim_matches('"');
    if let Some(rest) = t.strip_prefix('[') {
        return rest.split_once(']')?.0.parse::<IpAddr>().ok();
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let (host, port) = t.split_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The rate-limit key of an address: IPv4 as is, IPv6 by its /64 (one subscriber's network,
/// which is handed out whole, so rotating within it gains nothing).
pub fn rate_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(
            u128::from(v6) & !(u128::from(u64::MAX)),
        )),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        map
    }

    fn proxy(header: &str, proxies: &str) -> TrustedProxy {
        TrustedProxy::parse(header, proxies).expect("valid proxy config")
    }

    #[test]
    fn without_a_trusted_proxy_the_header_is_ignored() {
        let h = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(
            client_ip(Some(ip("198.51.100.1")), &h, None),
            Some(ip("198.51.100.1"))
        );
        // Configured, but this peer is not the proxy: a client cannot pick its key.
        let p = proxy("X-Forwarded-For", "10.0.0.1");
        assert_eq!(
            client_ip(Some(ip("198.51.100.1")), &h, Some(&p)),
            Some(ip("198.51.100.1"))
        );
    }

    #[test]
    fn x_forwarded_for_takes_the_rightmost_untrusted_hop() {
        let p = proxy("X-Forwarded-For", "10.0.0.0/8, 127.0.0.1");
        // The client wrote "1.2.3.4" itself; the proxy appended what it saw.
        let h = headers("x-forwarded-for", &["1.2.3.4, 203.0.113.9, 10.1.2.3"]);
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &h, Some(&p)),
            Some(ip("203.0.113.9"))
        );
        // Several header lines are one list, in order.
        let h = headers("x-forwarded-for", &["1.2.3.4", "203.0.113.9"]);
        assert_eq!(
            client_ip(Some(ip("10.9.9.9")), &h, Some(&p)),
            Some(ip("203.0.113.9"))
        );
        // Garbage left of the trusted hops is never reached; garbage appended by our own
        // proxy stops at that proxy.
        let h = headers("x-forwarded-for", &["not-an-ip, 203.0.113.9"]);
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &h, Some(&p)),
            Some(ip("203.0.113.9"))
        );
        let h = headers("x-forwarded-for", &["203.0.113.9, unknown, 10.0.0.7"]);
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &h, Some(&p)),
            Some(ip("10.0.0.7"))
        );
        // No header: the proxy itself.
        let none = HeaderMap::new();
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &none, Some(&p)),
            Some(ip("127.0.0.1"))
        );
        // Ports and brackets as some proxies write them.
        let h = headers("x-forwarded-for", &["[2001:db8::7]:443"]);
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &h, Some(&p)),
            Some(ip("2001:db8::7"))
        );
        let h = headers("x-forwarded-for", &["203.0.113.9:5123"]);
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &h, Some(&p)),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn rfc7239_forwarded_is_read_by_its_for_parameter() {
        let p = proxy("Forwarded", "192.0.2.10");
        let h = headers(
            "forwarded",
            &[r#"for=1.1.1.1, for="[2001:db8:cafe::17]:4711";proto=https, for=192.0.2.10"#],
        );
        assert_eq!(
            client_ip(Some(ip("192.0.2.10")), &h, Some(&p)),
            Some(ip("2001:db8:cafe::17"))
        );
        let h = headers("forwarded", &["for=unknown;proto=http"]);
        assert_eq!(
            client_ip(Some(ip("192.0.2.10")), &h, Some(&p)),
            Some(ip("192.0.2.10"))
        );
    }

    #[test]
    fn one_address_headers_and_mapped_addresses() {
        let p = proxy("X-Real-IP", "::ffff:127.0.0.1");
        let h = headers("x-real-ip", &["203.0.113.5"]);
        assert_eq!(
            client_ip(Some(ip("::ffff:127.0.0.1")), &h, Some(&p)),
            Some(ip("203.0.113.5"))
        );
        assert!(IpNet::parse("127.0.0.1").is_some_and(|n| n.contains(ip("::ffff:127.0.0.1"))));
    }

    #[test]
    fn ranges_and_bad_settings() {
        let net = IpNet::parse("10.0.0.0/8").expect("cidr");
        assert!(net.contains(ip("10.255.1.2")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::1")));
        assert!(IpNet::parse("0.0.0.0/0").is_some_and(|n| n.contains(ip("8.8.8.8"))));
        assert!(IpNet::parse("fd00::/8").is_some_and(|n| n.contains(ip("fd12::1"))));
        for bad in ["10.0.0.0/33", "::/129", "example.org", "10.0.0.0/x", ""] {
            assert!(IpNet::parse(bad).is_none(), "{bad:?}");
        }
        assert!(TrustedProxy::parse("X-Forwarded-For", "").is_err());
        assert!(TrustedProxy::parse("X-Forwarded-For", "10.0.0.1, nope").is_err());
        assert!(TrustedProxy::parse("bad header", "10.0.0.1").is_err());
    }

    #[test]
    fn ipv6_clients_share_a_key_per_64() {
        assert_eq!(
            rate_key(ip("2001:db8:1:2:aaaa::1")),
            rate_key(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            rate_key(ip("2001:db8:1:2::1")),
            rate_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(rate_key(ip("203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(rate_key(ip("::ffff:203.0.113.9")), ip("203.0.113.9"));
    }
}

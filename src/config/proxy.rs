//! `TRUSTED_PROXY_HEADER` and `TRUSTED_PROXIES`: which proxy in front of the service is
//! believed about the client's address (the HTTP layer's `client_ip` applies it).

use std::net::IpAddr;

use actix_web::http::header::HeaderName;

/// An address range in CIDR form (`10.0.0.0/8`, `fd00::/8`) or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `ADDR` or `ADDR/PREFIX`; IPv4-mapped IPv6 addresses count as IPv4.
    pub fn parse(text: &str) -> Option<IpNet> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let addr = addr.parse::<IpAddr>().ok()?.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
        };
        Some(IpNet { addr, prefix })
    }

    /// True if `ip` lies in this range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A proxy in front of the service whose client-address header is believed.
#[derive(Debug, Clone)]
pub struct TrustedProxy {
    /// The header it sets: `X-Forwarded-For` (a list, the proxy appends its peer),
    /// `Forwarded` (RFC 7239), or a one-address header such as `X-Real-IP`.
    pub header: HeaderName,
    /// The proxies' addresses; a request from anywhere else is keyed by its peer address.
    pub proxies: Vec<IpNet>,
}

impl TrustedProxy {
    /// From `TRUSTED_PROXY_HEADER` and `TRUSTED_PROXIES` (comma-separated addresses or CIDRs).
    pub fn parse(header: &str, proxies: &str) -> Result<TrustedProxy, String> {
        let header = HeaderName::from_bytes(header.trim().as_bytes())
            .map_err(|_| format!("TRUSTED_PROXY_HEADER: not a header name: {header:?}"))?;
        let proxies = proxies
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                IpNet::parse(p)
                    .ok_or_else(|| format!("TRUSTED_PROXIES: not an address or CIDR range: {p:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if proxies.is_empty() {
            return Err(
                "TRUSTED_PROXIES must name the proxies' addresses when TRUSTED_PROXY_HEADER is set"
                    .into(),
            );
        }
        Ok(TrustedProxy { header, proxies })
    }

    /// True if a request from `ip` comes from one of the proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.proxies.iter().any(|net| net.contains(ip))
    }
}

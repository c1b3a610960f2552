//! The client's address: the socket peer, or, behind trusted proxies
//! (`[http] trusted_proxies`), the rightmost `X-Forwarded-For` entry that is
//! not one of them. Without trusted proxies the header is ignored: any
//! client can write it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;

/// One `addr/prefix` network (an [`ipnet::IpNet`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr(ipnet::IpNet);

impl Cidr {
    /// `10.0.0.0/8`, `::1/128`, or a bare address (a single host).
    pub(crate) fn parse(text: &str) -> Result<Cidr, String> {
        let t = text.trim();
        t.parse::<ipnet::IpNet>()
            .or_else(|_| t.parse::<IpAddr>().map(ipnet::IpNet::from))
            .map(Cidr)
            .map_err(|_| {
                format!(
                    "\"{text}\" is not an address or CIDR (address/prefix, the prefix 0 to 32 \
                     for IPv4, 0 to 128 for IPv6)"
                )
            })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client address of a request (see the module docs).
pub(crate) fn client_addr(parts: &Parts, trusted: &[Cidr]) -> Option<IpAddr> {
    client_addr_of(&parts.headers, &parts.extensions, trusted)
}

/// [`client_addr`] from a request's headers and extensions.
pub(crate) fn client_addr_of(
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
    trusted: &[Cidr],
) -> Option<IpAddr> {
    let peer = canonical(extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip());
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut last = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                let ip = canonical(ip);
                if !is_trusted(ip) {
                    return Some(ip);
                }
                last = ip;
            }
            // Garbage: the proxy to its right is the last hop we can vouch for.
            Err(_) => return Some(last),
        }
    }
    Some(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(peer: &str, xff: &[&str]) -> Parts {
        let mut req = Request::builder();
        for v in xff {
            req = req.header("x-forwarded-for", *v);
        }
        let (mut parts, ()) = req.body(()).unwrap().into_parts();
        parts
            .extensions
            .insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 1234)));
        parts
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        for bad in ["10.0.0.0/33", "x", "10.0.0.0/", "::/129"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        // Host bits set: the network they fall in.
        let c = Cidr::parse(" 10.1.2.3/16 ").unwrap();
        assert!(c.contains("10.1.200.1".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        // An IPv4 network never holds an IPv6 address, nor the reverse.
        assert!(
            !Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert!(
            !Cidr::parse("::/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }

    #[test]
    fn forwarded_for_counts_only_behind_trusted_proxies() {
        let none: [Cidr; 0] = [];
        let local = [Cidr::parse("127.0.0.1/32").unwrap()];
        assert_eq!(
            client_addr(&parts("127.0.0.1", &["9.9.9.9"]), &none),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_addr(&parts("127.0.0.1", &["9.9.9.9"]), &local),
            ip("9.9.9.9")
        );
        // The rightmost untrusted entry: a client cannot hide behind a forged
        // leftmost one.
        assert_eq!(
            client_addr(&parts("127.0.0.1", &["1.1.1.1, 2.2.2.2"]), &local),
            ip("2.2.2.2")
        );
        assert_eq!(
            client_addr(
                &parts("127.0.0.1", &["1.1.1.1", "2.2.2.2, 127.0.0.1"]),
                &local
            ),
            ip("2.2.2.2")
        );
        assert_eq!(
            client_addr(&parts("127.0.0.1", &["garbage"]), &local),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_addr(&parts("127.0.0.1", &[]), &local),
            ip("127.0.0.1")
        );
        // A peer that is not trusted is the client, whatever it says.
        assert_eq!(
            client_addr(&parts("5.5.5.5", &["9.9.9.9"]), &local),
            ip("5.5.5.5")
        );
    }
}

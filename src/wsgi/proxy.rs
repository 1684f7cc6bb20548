//! WSGITrustedProxyHeaders / WSGITrustedProxies: what a front-end proxy may tell the
//! application (client address, scheme, host, mount point), with mod_wsgi's semantics and its
//! CVE-2022-2255 fix: headers of a category that is trusted are removed unless they come from
//! a trusted proxy, so a client cannot spoof them.

use std::net::IpAddr;

/// The environ the rules read and rewrite (the request's subprocess_env in Apache).
pub trait Env {
    fn get(&self, key: &str) -> Option<String>;
    fn set(&mut self, key: &str, value: &str);
    fn unset(&mut self, key: &str);
}

const CLIENT: &[&str] = &["HTTP_X_FORWARDED_FOR", "HTTP_X_CLIENT_IP", "HTTP_X_REAL_IP"];
const SCHEME: &[&str] = &[
    "HTTP_X_FORWARDED_HTTPS",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_SCHEME",
    "HTTP_X_FORWARDED_SSL",
    "HTTP_X_HTTPS",
    "HTTP_X_SCHEME",
];
const HOST: &[&str] = &["HTTP_X_FORWARDED_HOST", "HTTP_X_HOST"];
const SCRIPT_NAME: &[&str] = &["HTTP_X_SCRIPT_NAME", "HTTP_X_FORWARDED_SCRIPT_NAME"];

/// `X-Forwarded-For` -> `HTTP_X_FORWARDED_FOR` (how WSGITrustedProxyHeaders names arrive).
pub fn environ_key(header: &str) -> String {
    let upper = header.to_ascii_uppercase().replace('-', "_");
    if upper.starts_with("HTTP_") {
        upper
    } else {
        format!("HTTP_{upper}")
    }
}

/// An address or a network (`10.0.0.0/8`, `::1`, `fd00::/8`) from WSGITrustedProxies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    addr: IpAddr,
    bits: u32,
}

impl Subnet {
    pub fn parse(s: &str) -> Result<Subnet, String> {
        let (a, bits) = match s.split_once('/') {
            Some((a, b)) => (
                a,
                Some(
                    b.parse::<u32>()
                        .map_err(|_| format!("{s:?}: bad prefix length"))?,
                ),
            ),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        if bits > max {
            return Err(format!("{s:?}: prefix longer than the address"));
        }
        Ok(Subnet { addr, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V6(_), IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            _ => ip,
        };
        let (a, b, width) = match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
            _ => return false,
        };
        if self.bits == 0 {
            return true;
        }
        let shift = width - self.bits;
        (a >> shift) == (b >> shift)
    }
}

fn trusted(ip: &str, proxies: &[Subnet]) -> bool {
    ip.trim()
        .parse::<IpAddr>()
        .is_ok_and(|ip| proxies.iter().any(|p| p.contains(ip)))
}

fn is_on(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Some(true),
        "off" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// X-Forwarded-For with a list of trusted proxies: the client is the address just before the
/// trailing run of trusted proxies (the rightmost untrusted one); the header is rewritten to
/// start there.
fn forwarded_for(env: &mut impl Env, value: &str, proxies: Option<&[Subnet]>) {
    let items: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let Some(proxies) = proxies else {
        if let Some(first) = items.first() {
            env.set("REMOTE_ADDR", first);
        }
        return;
    };
    if items.is_empty() {
        return;
    }
    let mut first = None;
    for i in (0..items.len()).rev() {
        if !trusted(items[i], proxies) {
            break;
        }
        first = Some(i);
    }
    let start = match first {
        Some(f) => f.saturating_sub(1),
        None => items.len() - 1,
    };
    env.set("REMOTE_ADDR", items[start]);
    env.set("HTTP_X_FORWARDED_FOR", &items[start..].join(", "));
}

/// Applies the rules; `peer` is the address of the connection (REMOTE_ADDR before any rewrite).
pub fn process(env: &mut impl Env, trusted_headers: &[String], proxies: Option<&[Subnet]>) {
    if trusted_headers.is_empty() {
        return;
    }
    let peer_trusted = match proxies {
        None => true,
        Some(p) => env.get("REMOTE_ADDR").is_some_and(|ip| trusted(&ip, p)),
    };
    let (mut client, mut scheme, mut host, mut script) = (None, None, None, None);
    let mut categories = [false; 4];
    for name in trusted_headers {
        let name = name.as_str();
        let value = if peer_trusted { env.get(name) } else { None };
        if CLIENT.contains(&name) {
            categories[0] = true;
            if let Some(v) = value {
                if name == "HTTP_X_FORWARDED_FOR" {
                    forwarded_for(env, &v, proxies);
                } else {
                    env.set("REMOTE_ADDR", &v);
                }
                client = Some(name);
            }
        } else if HOST.contains(&name) {
            categories[2] = true;
            if let Some(v) = value {
                env.set("HTTP_HOST", &v);
                host = Some(name);
            }
        } else if name == "HTTP_X_FORWARDED_SERVER" {
            if let Some(v) = value {
                env.set("SERVER_NAME", &v);
            }
        } else if name == "HTTP_X_FORWARDED_PORT" {
            if let Some(v) = value {
                env.set("SERVER_PORT", &v);
            }
        } else if SCRIPT_NAME.contains(&name) {
            categories[3] = true;
            if let Some(v) = value {
                env.set("mod_wsgi.mount_point", &v);
                env.set("SCRIPT_NAME", &v);
                script = Some(name);
            }
        } else if SCHEME.contains(&name) {
            categories[1] = true;
            if let Some(v) = value {
                let https = if matches!(
                    name,
                    "HTTP_X_FORWARDED_PROTO" | "HTTP_X_FORWARDED_SCHEME" | "HTTP_X_SCHEME"
                ) {
                    match v.to_ascii_lowercase().as_str() {
                        "https" => Some(true),
                        "http" => Some(false),
                        _ => None,
                    }
                } else {
                    is_on(&v)
                };
                match https {
                    Some(true) => env.set("HTTPS", "1"),
                    Some(false) => env.unset("HTTPS"),
                    None => {}
                }
                scheme = Some(name);
            }
        }
    }
    // Every header of a trusted category that was not the one used is removed: a client
    // cannot slip in X-Real-IP when the proxy sets X-Forwarded-For.
    for (used, (wanted, names)) in
        [client, scheme, host, script]
            .into_iter()
            .zip(
                categories
                    .into_iter()
                    .zip([CLIENT, SCHEME, HOST, SCRIPT_NAME]),
            )
    {
        if wanted {
            for n in names.iter().filter(|n| Some(**n) != used) {
                env.unset(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    impl Env for HashMap<String, String> {
        fn get(&self, k: &str) -> Option<String> {
            HashMap::get(self, k).cloned()
        }
        fn set(&mut self, k: &str, v: &str) {
            self.insert(k.into(), v.into());
        }
        fn unset(&mut self, k: &str) {
            self.remove(k);
        }
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn headers() -> Vec<String> {
        vec![
            environ_key("X-Forwarded-For"),
            environ_key("X-Forwarded-Proto"),
        ]
    }

    #[test]
    fn subnets() {
        let n = Subnet::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!(Subnet::parse("127.0.0.1")
            .unwrap()
            .contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(Subnet::parse("::1")
            .unwrap()
            .contains("::1".parse().unwrap()));
        assert!(Subnet::parse("nope").is_err());
        assert!(Subnet::parse("1.2.3.4/33").is_err());
    }

    #[test]
    fn trusted_proxy_rewrites_client_and_scheme() {
        let proxies = vec![
            Subnet::parse("127.0.0.1").unwrap(),
            Subnet::parse("10.0.0.0/8").unwrap(),
        ];
        let mut e = env(&[
            ("REMOTE_ADDR", "127.0.0.1"),
            ("HTTP_X_FORWARDED_FOR", "1.1.1.1, 2.2.2.2, 10.0.0.5"),
            ("HTTP_X_FORWARDED_PROTO", "https"),
            ("HTTP_X_REAL_IP", "6.6.6.6"),
        ]);
        process(&mut e, &headers(), Some(&proxies));
        assert_eq!(e["REMOTE_ADDR"], "2.2.2.2");
        assert_eq!(e["HTTP_X_FORWARDED_FOR"], "2.2.2.2, 10.0.0.5");
        assert_eq!(e["HTTPS"], "1");
        assert!(!e.contains_key("HTTP_X_REAL_IP"));
    }

    #[test]
    fn untrusted_peer_loses_the_headers() {
        let proxies = vec![Subnet::parse("10.0.0.1").unwrap()];
        let mut e = env(&[
            ("REMOTE_ADDR", "127.0.0.1"),
            ("HTTP_X_FORWARDED_FOR", "1.1.1.1"),
            ("HTTP_X_FORWARDED_PROTO", "https"),
        ]);
        process(&mut e, &headers(), Some(&proxies));
        assert_eq!(e["REMOTE_ADDR"], "127.0.0.1");
        assert!(
            !e.contains_key("HTTP_X_FORWARDED_FOR") && !e.contains_key("HTTP_X_FORWARDED_PROTO")
        );
        assert!(!e.contains_key("HTTPS"));
    }

    #[test]
    fn no_directives_pass_through_and_no_proxy_list_trusts_first() {
        let mut e = env(&[
            ("REMOTE_ADDR", "127.0.0.1"),
            ("HTTP_X_FORWARDED_FOR", "9.9.9.9"),
        ]);
        process(&mut e, &[], None);
        assert_eq!(e["REMOTE_ADDR"], "127.0.0.1");
        process(&mut e, &headers(), None);
        assert_eq!(e["REMOTE_ADDR"], "9.9.9.9");
        assert_eq!(e["HTTP_X_FORWARDED_FOR"], "9.9.9.9");
    }
}

//! Push for offline devices: where a home relay wakes a device that is not
//! connected when mail arrives for it ([`PushTarget`], registered with
//! `OwnerRequest::SetPush`), and the wake-up it sends ([`PushTarget::wake_body`]).
//!
//! A wake-up carries nothing about the mail: no sender, no size, no count,
//! only the random token the device chose when it registered (a new one at
//! every registration), so the endpoint can tell which registration it
//! belongs to and drop stale ones.

use crate::codec::{DecodeError, Reader, Writer};

/// Longest push endpoint URL, in bytes.
pub const MAX_PUSH_ENDPOINT_LEN: usize = 512;

/// A push endpoint and the token its wake-ups carry.
#[derive(Clone, PartialEq, Eq)]
pub struct PushTarget {
    /// An `https://` URL (or `http://` where the relay allows it): a
    /// UnifiedPush endpoint or any webhook that takes a POST.
    pub endpoint: String,
    /// Random, chosen by the device at each registration.
    pub token: [u8; 16],
}

impl std::fmt::Debug for PushTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // An endpoint URL often holds a secret of its own (UnifiedPush
        // endpoints are capability URLs): only its host is shown.
        let host = PushUrl::parse(&self.endpoint).map_or_else(|_| "?".to_owned(), |u| u.host);
        f.debug_struct("PushTarget")
            .field("host", &host)
            .finish_non_exhaustive()
    }
}

impl PushTarget {
    /// The POST body of a wake-up: JSON with the token alone.
    pub fn wake_body(&self) -> String {
        format!(
            r#"{{"type":"hush.wake","token":"{}"}}"#,
            hex::encode(self.token)
        )
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.str(&self.endpoint);
        w.raw(&self.token);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            endpoint: r.str("push endpoint", MAX_PUSH_ENDPOINT_LEN)?.to_owned(),
            token: r.array()?,
        })
    }

    /// Encodes an optional target (0: none, 1: one follows).
    pub(crate) fn encode_option(target: Option<&Self>, w: &mut Writer) {
        match target {
            None => w.u8(0),
            Some(t) => {
                w.u8(1);
                t.encode(w);
            }
        }
    }

    pub(crate) fn decode_option(r: &mut Reader<'_>) -> Result<Option<Self>, DecodeError> {
        match r.u8()? {
            0 => Ok(None),
            1 => Ok(Some(Self::decode(r)?)),
            tag => Err(DecodeError::UnknownTag {
                what: "push target",
                tag,
            }),
        }
    }
}

/// A push endpoint taken apart: what a relay checks and connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushUrl {
    pub https: bool,
    /// A DNS name (lower case) or an IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// The path and query, starting with `/`.
    pub path: String,
}

impl PushUrl {
    /// Parses `http(s)://host[:port][/path][?query]`: no user info, no
    /// fragment, nothing but printable ASCII.
    pub fn parse(url: &str) -> Result<Self, &'static str> {
        if url.len() > MAX_PUSH_ENDPOINT_LEN {
            return Err("the endpoint is longer than 512 bytes");
        }
        if !url.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the endpoint holds spaces, control or non-ASCII characters");
        }
        let (https, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "http://") {
            (false, rest)
        } else {
            return Err("the endpoint must start with https:// (or http://)");
        };
        if rest.contains('#') {
            return Err("the endpoint must not have a #fragment");
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('?') => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            return Err("the endpoint must not carry a user name or password");
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("an IPv6 host lacks its ]")?;
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| "the IPv6 host is not an address")?;
            let port = match after {
                "" => default_port,
                p => parse_port(p.strip_prefix(':').ok_or("junk after the IPv6 host")?)?,
            };
            (host.to_owned(), port)
        } else {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, parse_port(port)?),
                None => (authority, default_port),
            };
            (host.to_ascii_lowercase(), port)
        };
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
        if !name_ok {
            return Err("the endpoint's host is not a valid name or address");
        }
        Ok(Self {
            https,
            host,
            port,
            path,
        })
    }

    /// Whether the host is `allowed` or a subdomain of it.
    pub fn host_is_under(&self, allowed: &str) -> bool {
        let allowed = allowed.trim_start_matches('.').to_ascii_lowercase();
        self.host == allowed
            || self
                .host
                .strip_suffix(&allowed)
                .is_some_and(|sub| sub.ends_with('.'))
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn parse_port(port: &str) -> Result<u16, &'static str> {
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err("the endpoint's port is not a number from 1 to 65535"),
        Ok(p) => Ok(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_into_host_port_and_path() {
        let u = PushUrl::parse("https://ntfy.example.org/up1234?x=1").unwrap();
        assert_eq!(
            u,
            PushUrl {
                https: true,
                host: "ntfy.example.org".into(),
                port: 443,
                path: "/up1234?x=1".into(),
            }
        );
        let u = PushUrl::parse("HTTP://127.0.0.1:8080").unwrap();
        assert_eq!((u.https, u.port, u.path.as_str()), (false, 8080, "/"));
        let u = PushUrl::parse("http://[::1]:9/p").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        let u = PushUrl::parse("https://Push.Example.org?a").unwrap();
        assert_eq!(
            (u.host.as_str(), u.path.as_str()),
            ("push.example.org", "/?a")
        );
    }

    #[test]
    fn malformed_endpoints_are_refused() {
        for bad in [
            "ftp://x.org/",
            "https://user:pw@x.org/",
            "https://x.org:0/",
            "https://x.org:99999/",
            "https://x.org/a b",
            "https:///path",
            "https://x.org/#frag",
            "https://[::1/",
            "https://exa_mple.org/",
            "https://x.org/\u{7f}",
        ] {
            assert!(PushUrl::parse(bad).is_err(), "{bad} parsed");
        }
        assert!(PushUrl::parse(&format!("https://x.org/{}", "a".repeat(600))).is_err());
    }

    #[test]
    fn an_allowed_host_covers_its_subdomains_only() {
        let u = PushUrl::parse("https://up.ntfy.sh/x").unwrap();
        assert!(u.host_is_under("ntfy.sh"));
        assert!(u.host_is_under(".NTFY.sh"));
        assert!(!u.host_is_under("fy.sh"));
        assert!(
            !PushUrl::parse("https://evilntfy.sh/")
                .unwrap()
                .host_is_under("ntfy.sh")
        );
    }

    #[test]
    fn a_wake_up_carries_the_token_and_nothing_else() {
        let target = PushTarget {
            endpoint: "https://x.org/secret-capability".into(),
            token: [0xab; 16],
        };
        assert_eq!(
            target.wake_body(),
            r#"{"type":"hush.wake","token":"abababababababababababababababab"}"#
        );
        assert!(!format!("{target:?}").contains("secret"));
    }
}

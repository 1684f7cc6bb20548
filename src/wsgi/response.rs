//! What a WSGI application may answer: the status line and headers it passes to
//! start_response, checked before anything reaches Apache (DESIGN.md hard rule 7).

/// Hop-by-hop headers (RFC 7230 6.1, PEP 3333 "hop-by-hop features"): the server's business,
/// never the application's.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// A parsed `"200 OK"`: the code and the reason phrase (which may be empty).
#[derive(Debug, PartialEq, Eq)]
pub struct Status<'a> {
    pub code: u16,
    pub reason: &'a str,
}

/// Parses a WSGI status string: three digits (100-999), then a space and a reason phrase of
/// printable latin-1 characters, or nothing.
pub fn parse_status(s: &str) -> Result<Status<'_>, String> {
    let b = s.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "status {s:?} does not start with a three-digit code"
        ));
    }
    let code: u16 = s[..3]
        .parse()
        .map_err(|_| format!("status {s:?}: bad code"))?;
    if code < 100 {
        return Err(format!("status {s:?}: code below 100"));
    }
    let reason = match &s[3..] {
        "" => "",
        r if r.starts_with(' ') => &r[1..],
        _ => {
            return Err(format!(
                "status {s:?}: the code must be followed by a space"
            ))
        }
    };
    if let Some(c) = reason
        .chars()
        .find(|&c| (c as u32) < 0x20 && c != '\t' || c as u32 == 0x7f || c as u32 > 0xff)
    {
        return Err(format!("status {s:?} contains the character {c:?}"));
    }
    Ok(Status { code, reason })
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Checks one response header from start_response: a token name, a value without CR, LF or
/// NUL (so no header can be injected), latin-1 only, and no hop-by-hop header.
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(is_tchar) {
        return Err(format!("header name {name:?} is not a valid HTTP token"));
    }
    if HOP_BY_HOP.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "hop-by-hop header {name:?} is not allowed from a WSGI application"
        ));
    }
    if value.contains(['\r', '\n', '\0']) {
        return Err(format!(
            "header {name:?} has a value containing CR, LF or NUL"
        ));
    }
    if let Some(c) = value.chars().find(|&c| c as u32 > 0xff) {
        return Err(format!(
            "header {name:?} has a value containing {c:?}, which is not latin-1"
        ));
    }
    Ok(())
}

/// The bytes Apache sends for a header value: latin-1, as PEP 3333 says.
pub fn latin1(value: &str) -> Vec<u8> {
    value.chars().map(|c| c as u32 as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(
            parse_status("200 OK"),
            Ok(Status {
                code: 200,
                reason: "OK"
            })
        );
        assert_eq!(parse_status("299 Odd Code").unwrap().reason, "Odd Code");
        assert_eq!(
            parse_status("404").unwrap(),
            Status {
                code: 404,
                reason: ""
            }
        );
        assert!(parse_status("20 OK").is_err());
        assert!(parse_status("200OK").is_err());
        assert!(parse_status("099 x").is_err());
        assert!(parse_status("abc").is_err());
        assert!(parse_status("200 OK\r\nX: y").is_err());
        assert!(parse_status("").is_err());
    }

    #[test]
    fn headers() {
        assert!(check_header("Content-Type", "text/plain").is_ok());
        assert!(check_header("X-Latin", "caf\u{e9}").is_ok());
        assert!(check_header("X-Bad", "a\r\nSet-Cookie: x")
            .unwrap_err()
            .contains("CR, LF or NUL"));
        assert!(check_header("X-Bad", "a\nb").is_err());
        assert!(check_header("X-Uni", "\u{20ac}")
            .unwrap_err()
            .contains("not latin-1"));
        assert!(check_header("Bad Name", "x").unwrap_err().contains("token"));
        assert!(check_header("", "x").is_err());
        assert!(check_header("Connection", "close")
            .unwrap_err()
            .contains("hop-by-hop"));
        assert!(check_header("transfer-encoding", "chunked").is_err());
        assert_eq!(latin1("caf\u{e9}"), b"caf\xe9");
    }
}

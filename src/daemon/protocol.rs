//! The wire protocol between an Apache child (client) and a daemon worker (server), over a
//! UNIX stream socket. pylib/modpy/daemon.py is the other end; keep the two in step.
//!
//! Every message is a frame: an 8-byte header — kind (u8), flags (u8, 0), reserved (u16, 0),
//! payload length (u32, big-endian) — then the payload. A frame longer than `MAX_FRAME` or of an
//! unknown kind is a protocol error: the connection is closed, nothing else is affected.
//!
//! ```text
//! client                                   worker
//! HELLO  magic, version, group secret  ->               (once per connection)
//!                                      <-  HELLO_OK version
//! REQUEST  k\0v\0k\0v\0... (CGI/WSGI environ) ->
//!                                      <-  READ n        (the app wants up to n body bytes)
//! BODY  <= n bytes (empty: end of body) ->               (or BODY_ERROR message)
//!                                      <-  START  "200 OK"\0 name\0value\0...
//!                                      <-  DATA  chunk   (any number)
//!                                      <-  END           (the connection can be reused)
//!                                      <-  ABORT message (the app failed after START)
//! ```
//! The worker pulls the request body, so neither side ever buffers more than one frame and an
//! app that answers without reading its body cannot deadlock the pair.

use std::io::{self, Read, Write};

pub const MAGIC: &[u8; 8] = b"MODPYD\0\0";
pub const VERSION: u16 = 1;
pub const SECRET_LEN: usize = 32;
/// Hard limit on any frame's payload (environ, header block or body chunk).
pub const MAX_FRAME: u32 = 1 << 20;
/// Body chunks the client sends (and the worker asks for) are at most this long.
pub const MAX_CHUNK: u32 = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Hello = 1,
    HelloOk = 2,
    Request = 10,
    Read = 11,
    Body = 12,
    BodyError = 13,
    Start = 20,
    Data = 21,
    End = 22,
    Abort = 23,
}

impl Kind {
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Hello,
            2 => Kind::HelloOk,
            10 => Kind::Request,
            11 => Kind::Read,
            12 => Kind::Body,
            13 => Kind::BodyError,
            20 => Kind::Start,
            21 => Kind::Data,
            22 => Kind::End,
            23 => Kind::Abort,
            _ => return None,
        })
    }
}

#[derive(Debug)]
pub enum Error {
    Io(io::Error),
    /// The peer closed the connection cleanly before a frame began.
    Closed,
    /// A malformed frame: the connection must be closed.
    Protocol(String),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Error::Closed
        } else {
            Error::Io(e)
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Closed => write!(f, "connection closed by the daemon process"),
            Error::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

pub fn header(kind: Kind, len: usize) -> [u8; 8] {
    let n = (len as u32).to_be_bytes();
    [kind as u8, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

/// Writes one frame (header and payload in one write up to 64 KiB).
pub fn write_frame<W: Write>(w: &mut W, kind: Kind, payload: &[u8]) -> io::Result<()> {
    if payload.len() > MAX_FRAME as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame over MAX_FRAME",
        ));
    }
    let h = header(kind, payload.len());
    if payload.len() <= 64 * 1024 {
        let mut buf = Vec::with_capacity(8 + payload.len());
        buf.extend_from_slice(&h);
        buf.extend_from_slice(payload);
        w.write_all(&buf)
    } else {
        w.write_all(&h)?;
        w.write_all(payload)
    }
}

/// Reads one frame header: (kind, payload length), checked against the limits.
pub fn read_header<R: Read>(r: &mut R) -> Result<(Kind, u32), Error> {
    let mut h = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        match r.read(&mut h[got..]) {
            Ok(0) if got == 0 => return Err(Error::Closed),
            Ok(0) => return Err(Error::Protocol("truncated frame header".into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
    let kind = Kind::from_u8(h[0])
        .ok_or_else(|| Error::Protocol(format!("unknown frame kind {}", h[0])))?;
    if h[1] != 0 || h[2] != 0 || h[3] != 0 {
        return Err(Error::Protocol("reserved header bytes are not zero".into()));
    }
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    if len > MAX_FRAME {
        return Err(Error::Protocol(format!(
            "frame of {len} bytes is over the limit of {MAX_FRAME}"
        )));
    }
    Ok((kind, len))
}

/// Reads a whole frame into `buf` (cleared first).
pub fn read_frame<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> Result<Kind, Error> {
    let (kind, len) = read_header(r)?;
    buf.clear();
    buf.resize(len as usize, 0);
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Error::Protocol("truncated frame".into()),
        _ => Error::Io(e),
    })?;
    Ok(kind)
}

/// The HELLO payload: magic, version, secret.
pub fn hello(secret: &[u8; SECRET_LEN]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + 2 + SECRET_LEN);
    p.extend_from_slice(MAGIC);
    p.extend_from_slice(&VERSION.to_be_bytes());
    p.extend_from_slice(secret);
    p
}

/// Appends `key\0value\0` to a REQUEST or START payload. NUL cannot occur in what Apache
/// hands us (it refuses it in request lines and headers); a value holding one is cut there.
pub fn push_pair(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let cut = |s: &[u8]| s.iter().position(|&b| b == 0).unwrap_or(s.len());
    out.extend_from_slice(&key[..cut(key)]);
    out.push(0);
    out.extend_from_slice(&value[..cut(value)]);
    out.push(0);
}

/// Splits a `k\0v\0...` payload into pairs; an odd count or missing final NUL is an error.
/// A name and its value, borrowed from a payload.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

pub fn pairs(payload: &[u8]) -> Result<Vec<Pair<'_>>, Error> {
    if payload.is_empty() {
        return Ok(Vec::new());
    }
    if *payload.last().unwrap_or(&1) != 0 {
        return Err(Error::Protocol("pair block does not end in NUL".into()));
    }
    let parts: Vec<&[u8]> = payload[..payload.len() - 1].split(|&b| b == 0).collect();
    if !parts.len().is_multiple_of(2) {
        return Err(Error::Protocol(
            "pair block has an odd number of items".into(),
        ));
    }
    Ok(parts.chunks(2).map(|c| (c[0], c[1])).collect())
}

/// A START payload: the status line, then the headers.
pub struct Start<'a> {
    pub status: u16,
    pub status_line: &'a [u8],
    pub headers: Vec<Pair<'a>>,
}

pub fn parse_start(payload: &[u8]) -> Result<Start<'_>, Error> {
    let nul = payload
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| Error::Protocol("START without a status line".into()))?;
    let status_line = &payload[..nul];
    let status = std::str::from_utf8(status_line.get(..3).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| {
            Error::Protocol(format!(
                "bad status line {:?}",
                String::from_utf8_lossy(status_line)
            ))
        })?;
    let headers = pairs(&payload[nul + 1..])?;
    for (k, v) in &headers {
        if k.is_empty() || k.iter().chain(v.iter()).any(|&b| b == b'\r' || b == b'\n') {
            return Err(Error::Protocol("bad header in START".into()));
        }
    }
    Ok(Start {
        status,
        status_line,
        headers,
    })
}

/// Checks a HELLO payload against the group's secret (constant time).
pub fn check_hello(payload: &[u8], secret: &[u8; SECRET_LEN]) -> Result<(), Error> {
    if payload.len() != 8 + 2 + SECRET_LEN || &payload[..8] != MAGIC {
        return Err(Error::Protocol(
            "the connection did not start with HELLO".into(),
        ));
    }
    let version = u16::from_be_bytes([payload[8], payload[9]]);
    if version != VERSION {
        return Err(Error::Protocol(format!(
            "protocol version {version}, expected {VERSION}"
        )));
    }
    let diff = payload[10..]
        .iter()
        .zip(secret.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(Error::Protocol("wrong group secret".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, Kind::Request, b"A\0b\0").unwrap();
        write_frame(&mut buf, Kind::End, b"").unwrap();
        let big = vec![7u8; 100_000];
        write_frame(&mut buf, Kind::Data, &big).unwrap();
        let mut r = Cursor::new(buf);
        let mut p = Vec::new();
        assert_eq!(read_frame(&mut r, &mut p).unwrap(), Kind::Request);
        assert_eq!(pairs(&p).unwrap(), vec![(&b"A"[..], &b"b"[..])]);
        assert_eq!(read_frame(&mut r, &mut p).unwrap(), Kind::End);
        assert!(p.is_empty());
        assert_eq!(read_frame(&mut r, &mut p).unwrap(), Kind::Data);
        assert_eq!(p, big);
        assert!(matches!(read_frame(&mut r, &mut p), Err(Error::Closed)));
    }

    #[test]
    fn limits_and_malformed_frames() {
        let mut over = header(Kind::Data, 0).to_vec();
        over[4..8].copy_from_slice(&(MAX_FRAME + 1).to_be_bytes());
        let mut p = Vec::new();
        assert!(matches!(
            read_frame(&mut Cursor::new(over), &mut p),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            read_frame(&mut Cursor::new(vec![99u8, 0, 0, 0, 0, 0, 0, 0]), &mut p),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            read_frame(&mut Cursor::new(vec![21u8, 1, 0, 0, 0, 0, 0, 0]), &mut p),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            read_frame(&mut Cursor::new(vec![21u8, 0, 0]), &mut p),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            read_frame(&mut Cursor::new(vec![21u8, 0, 0, 0, 0, 0, 0, 9, 1]), &mut p),
            Err(Error::Protocol(_))
        ));
        assert!(write_frame(
            &mut Vec::new(),
            Kind::Data,
            &vec![0; MAX_FRAME as usize + 1]
        )
        .is_err());
        assert!(pairs(b"a\0b").is_err());
        assert!(pairs(b"a\0").is_err());
    }

    #[test]
    fn start_and_hello() {
        let s = parse_start(b"404 Not Found\0Content-Type\0text/plain\0").unwrap();
        assert_eq!(s.status, 404);
        assert_eq!(s.headers, vec![(&b"Content-Type"[..], &b"text/plain"[..])]);
        assert!(parse_start(b"abc\0").is_err());
        assert!(parse_start(b"200 OK\0X\0a\rb\0").is_err());
        let secret = [5u8; SECRET_LEN];
        check_hello(&hello(&secret), &secret).unwrap();
        assert!(check_hello(&hello(&[6u8; SECRET_LEN]), &secret).is_err());
        let mut v2 = hello(&secret);
        v2[9] = 2;
        assert!(check_hello(&v2, &secret).is_err());
    }

    #[test]
    fn push_pair_cuts_at_nul() {
        let mut out = Vec::new();
        push_pair(&mut out, b"K", b"v\0injected");
        assert_eq!(out, b"K\0v\0");
    }

    /// A bounded fuzz run (CI runs it with every `cargo test`): random and mutated byte
    /// streams never panic the reader, never allocate past MAX_FRAME, and always end in a
    /// frame, Closed or a Protocol/Io error.
    #[test]
    fn fuzz_reader() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut valid = Vec::new();
        write_frame(&mut valid, Kind::Hello, &hello(&[1; SECRET_LEN])).unwrap();
        write_frame(&mut valid, Kind::Request, b"REQUEST_METHOD\0GET\0").unwrap();
        write_frame(&mut valid, Kind::Start, b"200 OK\0A\0b\0").unwrap();
        let iterations = std::env::var("MODPY_FUZZ_ITERATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200_000u64);
        let mut p = Vec::new();
        for i in 0..iterations {
            let mut data = if i % 2 == 0 {
                valid.clone()
            } else {
                (0..(next() % 64)).map(|_| next() as u8).collect()
            };
            for _ in 0..(next() % 4) {
                if !data.is_empty() {
                    let at = (next() as usize) % data.len();
                    data[at] = next() as u8;
                }
            }
            let mut r = Cursor::new(data);
            for _ in 0..8 {
                match read_frame(&mut r, &mut p) {
                    Ok(Kind::Start) => {
                        let _ = parse_start(&p);
                    }
                    Ok(Kind::Request) => {
                        let _ = pairs(&p);
                    }
                    Ok(Kind::Hello) => {
                        let _ = check_hello(&p, &[1; SECRET_LEN]);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
                assert!(p.len() <= MAX_FRAME as usize);
            }
        }
    }
}

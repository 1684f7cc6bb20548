//! Python strings for the bytes that come back request after request (environ keys such as
//! `HTTP_USER_AGENT`, values such as the server name, `GET` or `HTTP/1.1`): a small
//! direct-mapped cache hands out the same immutable `str` object again instead of making,
//! hashing and freeing a new one each time. Strings are decoded as latin-1 (PEP 3333).

use pyo3::prelude::*;
use pyo3::types::PyString;
use std::sync::Mutex;

/// Slots of the cache (a power of two). A miss replaces the slot's string.
const SLOTS: usize = 1024;
/// Longer byte strings are rarely repeated (cookies, query strings): never cached.
const MAX_LEN: usize = 96;

type Slot = Option<(Box<[u8]>, Py<PyString>)>;

static CACHE: Mutex<Vec<Slot>> = Mutex::new(Vec::new());

/// A WSGI string (PEP 3333 "native string"): bytes decoded as latin-1.
pub fn latin1_str<'py>(py: Python<'py>, b: &[u8]) -> Bound<'py, PyString> {
    if b.is_ascii() {
        // ASCII is valid UTF-8 and decodes the same either way.
        PyString::new(py, std::str::from_utf8(b).unwrap_or_default())
    } else {
        PyString::new(py, &b.iter().map(|&c| c as char).collect::<String>())
    }
}

/// Looks strings up in the cache; one lock for a whole batch (an environ).
pub struct Strings<'a>(std::sync::MutexGuard<'a, Vec<Slot>>);

impl Strings<'_> {
    /// Locks the cache. Only called with the GIL held, so the lock is never contended.
    pub fn lock(_py: Python<'_>) -> Strings<'static> {
        let mut g = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_empty() {
            g.resize_with(SLOTS, || None);
        }
        Strings(g)
    }

    /// `b` decoded as latin-1, shared with earlier calls for the same bytes.
    pub fn get<'py>(&mut self, py: Python<'py>, b: &[u8]) -> Bound<'py, PyString> {
        if b.len() > MAX_LEN {
            return latin1_str(py, b);
        }
        let slot = &mut self.0[hash(b) & (SLOTS - 1)];
        if let Some((k, s)) = slot {
            if same(k, b) {
                return s.bind(py).clone();
            }
        }
        let s = latin1_str(py, b);
        // The replaced string (if any) is released here, with the GIL held.
        *slot = Some((b.into(), s.clone().unbind()));
        s
    }
}

/// A hash of up to MAX_LEN bytes, 8 at a time (a byte-at-a-time hash cost more than the
/// lookup it saves: an environ is some 80 strings).
fn hash(b: &[u8]) -> usize {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = b.len() as u64;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        h = (h ^ u64::from_le_bytes(w.try_into().unwrap_or_default())).wrapping_mul(K);
        h ^= h >> 29;
    }
    let mut last = [0u8; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    h = (h ^ u64::from_le_bytes(last)).wrapping_mul(K);
    (h ^ (h >> 32)) as usize
}

/// a == b, compared 8 bytes at a time inline (no call to memcmp for these short strings).
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    for (p, q) in (&mut x).zip(&mut y) {
        if p.try_into().map(u64::from_ne_bytes).ok() != q.try_into().map(u64::from_ne_bytes).ok() {
            return false;
        }
    }
    x.remainder().iter().zip(y.remainder()).all(|(p, q)| p == q)
}

#[cfg(test)]
mod tests {
    use super::{hash, same};

    #[test]
    fn hash_spreads_similar_keys() {
        assert_ne!(hash(b"HTTP_HOST") & 1023, hash(b"HTTP_HOSU") & 1023);
        assert_ne!(hash(b"HTTP_ACCEPT") & 1023, hash(b"HTTP_ACCEPS") & 1023);
        assert_ne!(hash(b"") & 1023, hash(b"\0") & 1023);
        let slots: std::collections::HashSet<usize> = (0..200)
            .map(|i| hash(format!("HTTP_X_HEADER_{i}").as_bytes()) & 1023)
            .collect();
        assert!(slots.len() > 150, "{}", slots.len());
    }

    #[test]
    fn same_compares_every_byte() {
        assert!(same(b"", b""));
        assert!(same(b"HTTP_USER_AGENT", b"HTTP_USER_AGENT"));
        assert!(!same(b"HTTP_USER_AGENT", b"HTTP_USER_AGENS"));
        assert!(!same(b"HTTP_USER_AGENT", b"HTTP_USER_AGENT_"));
        assert!(!same(b"XTTP_USER_AGENT", b"HTTP_USER_AGENT"));
    }
}

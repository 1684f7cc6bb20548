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
        let slot = &mut self.0[fnv1a(b) & (SLOTS - 1)];
        if let Some((k, s)) = slot {
            if **k == *b {
                return s.bind(py).clone();
            }
        }
        let s = latin1_str(py, b);
        // The replaced string (if any) is released here, with the GIL held.
        *slot = Some((b.into(), s.clone().unbind()));
        s
    }
}

fn fnv1a(b: &[u8]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in b {
        h = (h ^ u64::from(c)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as usize
}

#[cfg(test)]
mod tests {
    #[test]
    fn fnv1a_spreads_similar_keys() {
        use super::fnv1a;
        assert_ne!(fnv1a(b"HTTP_HOST") & 1023, fnv1a(b"HTTP_HOSU") & 1023);
    }
}

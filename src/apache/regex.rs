//! ap_regex_t: Apache's PCRE wrapper (ap_pregcomp / ap_regexec / ap_pregsub), for directives
//! that match URIs with regular expressions, such as WSGIScriptAliasMatch. Matching only
//! reports offsets (no allocation per request); substitution is done in src/wsgi/route.rs.

use super::pool::c_string;
use crate::sys;

const MAX_MATCH: usize = sys::AP_MAX_REG_MATCH as usize;

/// A compiled regular expression living in the configuration pool.
pub struct Regex {
    re: *mut sys::ap_regex_t,
}

// SAFETY: a compiled ap_regex_t is read-only after ap_pregcomp; ap_regexec is thread-safe.
unsafe impl Send for Regex {}
unsafe impl Sync for Regex {}

impl std::fmt::Debug for Regex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Regex")
    }
}

impl Regex {
    /// ap_pregcomp in `pool` (freed with it).
    ///
    /// # Safety
    /// `pool` must be a valid pool that outlives every use of the Regex.
    pub unsafe fn compile(pool: *mut sys::apr_pool_t, pattern: &str) -> Result<Regex, String> {
        let p = c_string(pattern.as_bytes());
        // SAFETY: per the contract; ap_pregcomp copies the pattern.
        let re = unsafe { sys::ap_pregcomp(pool, p.as_ptr(), 0) };
        if re.is_null() {
            return Err(format!("{pattern:?} is not a valid regular expression"));
        }
        Ok(Regex { re })
    }

    /// ap_regexec: the byte ranges of the whole match ($0) and of each group ($1..$9).
    pub fn captures(&self, subject: &[u8]) -> Option<Vec<Option<(usize, usize)>>> {
        let s = c_string(subject);
        let mut m = [sys::ap_regmatch_t {
            rm_so: -1,
            rm_eo: -1,
        }; MAX_MATCH];
        // SAFETY: the regex is compiled; m has MAX_MATCH slots.
        if unsafe { sys::ap_regexec(self.re, s.as_ptr(), MAX_MATCH, m.as_mut_ptr(), 0) } != 0 {
            return None;
        }
        Some(
            m.iter()
                .map(|g| (g.rm_so >= 0).then_some((g.rm_so as usize, g.rm_eo as usize)))
                .collect(),
        )
    }
}

impl crate::wsgi::route::UriRegex for Regex {
    fn captures(&self, subject: &[u8]) -> Option<Vec<Option<(usize, usize)>>> {
        Regex::captures(self, subject)
    }
}

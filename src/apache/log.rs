//! ap_log_rerror / ap_log_error / ap_log_cerror, through bindings/shim.c (they are macros).

use super::pool::c_string;
use crate::sys;

/// Apache's error-log levels (APLOG_EMERG = 0 ... APLOG_TRACE8 = 15).
pub const APLOG_EMERG: i32 = sys::APLOG_EMERG as i32;
pub const APLOG_ALERT: i32 = sys::APLOG_ALERT as i32;
pub const APLOG_CRIT: i32 = sys::APLOG_CRIT as i32;
pub const APLOG_ERR: i32 = sys::APLOG_ERR as i32;
pub const APLOG_WARNING: i32 = sys::APLOG_WARNING as i32;
pub const APLOG_NOTICE: i32 = sys::APLOG_NOTICE as i32;
pub const APLOG_INFO: i32 = sys::APLOG_INFO as i32;
pub const APLOG_DEBUG: i32 = sys::APLOG_DEBUG as i32;

const FILE: &std::ffi::CStr = c"mod_py.c";

/// Logs against a request (its log id, client and URI context).
pub(crate) fn rerror(r: *const sys::request_rec, level: i32, status: i32, msg: &str) {
    let m = c_string(msg.as_bytes());
    // SAFETY: callers pass a live request (RequestRef) or NULL; the shim formats with "%s".
    unsafe { sys::modpy_log_rerror(FILE.as_ptr(), 0, level, status, r, m.as_ptr()) }
}

/// Logs against a server (NULL: the main server's log).
pub(crate) fn error(s: *const sys::server_rec, level: i32, status: i32, msg: &str) {
    let m = c_string(msg.as_bytes());
    // SAFETY: s is NULL or a server_rec of the running configuration.
    unsafe { sys::modpy_log_error(FILE.as_ptr(), 0, level, status, s, m.as_ptr()) }
}

pub(crate) fn cerror(c: *const sys::conn_rec, level: i32, status: i32, msg: &str) {
    let m = c_string(msg.as_bytes());
    // SAFETY: callers pass a live connection.
    unsafe { sys::modpy_log_cerror(FILE.as_ptr(), 0, level, status, c, m.as_ptr()) }
}

/// apr_strerror as a String.
pub fn strerror(status: sys::apr_status_t) -> String {
    let mut buf = [0 as std::os::raw::c_char; 256];
    // SAFETY: apr_strerror writes at most buf.len() bytes, NUL-terminated.
    unsafe {
        sys::apr_strerror(status, buf.as_mut_ptr(), buf.len());
        std::ffi::CStr::from_ptr(buf.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

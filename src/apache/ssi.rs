//! mod_include's `python` element (mod_python's `<!--#python exec="..."-->` and
//! `<!--#python eval="..."-->`): bindings/shim.c registers it with mod_include and reads the
//! element's attributes; this file hands the code to the layer above and puts what it wrote
//! into mod_include's output.

use super::request::Request;
use crate::sys;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

/// Runs `code` (an expression when `eval`) for the request; what it writes goes to `out`.
/// Err: the failure, already logged; mod_include prints its error message in its place.
pub type Runner = fn(req: &Request, eval: bool, code: &str, out: &mut Vec<u8>) -> Result<(), ()>;

static RUNNER: OnceLock<Runner> = OnceLock::new();

/// Registers the element with mod_include (if it is loaded); call at post_config.
pub fn register(runner: Runner) {
    let _ = RUNNER.set(runner);
    // SAFETY: retrieves mod_include's optional functions (NULL when it is not loaded).
    unsafe { sys::modpy_ssi_register() }
}

/// # Safety
/// Called by bindings/shim.c only, from mod_include's filter: `f` and `bb` are live and
/// `code` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn modpy_ssi_run(
    f: *mut sys::ap_filter_t,
    bb: *mut sys::apr_bucket_brigade,
    eval: c_int,
    code: *const c_char,
) -> c_int {
    let Some(run) = RUNNER.get() else { return 1 };
    // SAFETY: per the contract; mod_include filters run for a request.
    let (req, code) = unsafe { (Request::from_raw((*f).r), CStr::from_ptr(code)) };
    let code = String::from_utf8_lossy(code.to_bytes());
    let mut out = Vec::new();
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(&req, eval != 0, &code, &mut out)
    }));
    if !matches!(ran, Ok(Ok(()))) {
        return 1;
    }
    if !out.is_empty() {
        // SAFETY: apr_brigade_write copies `out` into buckets of bb.
        unsafe {
            sys::apr_brigade_write(
                bb,
                None,
                std::ptr::null_mut::<c_void>(),
                out.as_ptr() as *const c_char,
                out.len(),
            )
        };
    }
    0
}

//! Subrequests (ap_sub_req_lookup_uri / _file, ap_run_sub_req, ap_destroy_sub_req) and
//! adding filters to a request (ap_add_output_filter / ap_add_input_filter).
//!
//! A subrequest's request_rec lives in a pool of its own, a child of the parent request's
//! pool: its `Request` handle gets a liveness flag tied to that pool, so it reads as gone
//! after ap_destroy_sub_req (or when the parent request ends), while the parent is untouched.

use super::pool::{c_string, cstr};
use super::request::{Request, RequestRef};
use crate::sys;
use std::sync::atomic::Ordering;

/// Why a subrequest operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubError {
    Gone(super::Gone),
    /// Only subrequests made by mod_py's lookup functions may be run or destroyed.
    NotOurs,
    /// The subrequest is running (run() from inside itself, or from another thread).
    Running,
    /// destroy() was already called.
    Destroyed,
}

impl std::fmt::Display for SubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubError::Gone(g) => write!(f, "{g}"),
            SubError::NotOurs => f.write_str(
                "only a subrequest made with lookup_uri()/lookup_file() can be run or destroyed",
            ),
            SubError::Running => f.write_str("the subrequest is running"),
            SubError::Destroyed => f.write_str("the subrequest has been destroyed"),
        }
    }
}

impl From<super::Gone> for SubError {
    fn from(g: super::Gone) -> Self {
        SubError::Gone(g)
    }
}

const ENDING: &str = "the request is being cleaned up: no new subrequests";

impl<'a> RequestRef<'a> {
    /// ap_sub_req_lookup_uri: runs the phases up to fixups for `uri` (relative URIs are
    /// relative to this request's); running it sends its output through this request's
    /// output filters. Err when this request has no URI to resolve against.
    pub fn sub_req_lookup_uri(&self, uri: &[u8]) -> Result<Option<Request>, &'static str> {
        if self.state().phase.pool_ending {
            return Err(ENDING);
        }
        // ap_sub_req_lookup_uri takes the directory of r->uri for a relative URI.
        if self.rec().uri.is_null() && !uri.starts_with(b"/") {
            return Err("a relative URI needs req.uri, which is not set");
        }
        let uri = c_string(uri);
        // SAFETY: alive; Apache copies the URI; the new request lives in a child pool of this
        // request's pool and is wrapped at once (its own liveness flag).
        unsafe {
            let r = self.raw();
            let sub = sys::ap_sub_req_lookup_uri(uri.as_ptr(), r, (*r).output_filters);
            Ok(Self::adopt(sub))
        }
    }

    /// ap_sub_req_lookup_file: as sub_req_lookup_uri for a file path (relative paths are
    /// relative to the directory of this request's file). Err before this request has a
    /// file name (Apache would dereference it).
    pub fn sub_req_lookup_file(&self, path: &[u8]) -> Result<Option<Request>, &'static str> {
        if self.state().phase.pool_ending {
            return Err(ENDING);
        }
        if self.rec().filename.is_null() {
            return Err("lookup_file needs req.filename, which is not set (before translate_name, or cleared)");
        }
        let path = c_string(path);
        // SAFETY: as in sub_req_lookup_uri; r->filename is set (checked above).
        unsafe {
            let r = self.raw();
            let sub = sys::ap_sub_req_lookup_file(path.as_ptr(), r, (*r).output_filters);
            Ok(Self::adopt(sub))
        }
    }

    /// # Safety
    /// `sub` is NULL or a subrequest just returned by ap_sub_req_lookup_*.
    unsafe fn adopt(sub: *mut sys::request_rec) -> Option<Request> {
        if sub.is_null() {
            return None;
        }
        // SAFETY: a fresh, live subrequest.
        let req = unsafe { Request::from_raw(sub) };
        if let Ok(r) = req.get() {
            r.state().phase.sub_owned = true;
        }
        Some(req)
    }

    /// ap_add_output_filter(name, NULL, r, r->connection); false if no filter has that name.
    pub fn add_output_filter(&self, name: &[u8]) -> bool {
        let n = c_string(name);
        // SAFETY: alive; Apache looks the name up and allocates the filter in the request pool.
        unsafe {
            let r = self.raw();
            !sys::ap_add_output_filter(n.as_ptr(), std::ptr::null_mut(), r, (*r).connection)
                .is_null()
        }
    }

    /// ap_add_input_filter(name, NULL, r, r->connection); false if no filter has that name.
    pub fn add_input_filter(&self, name: &[u8]) -> bool {
        let n = c_string(name);
        // SAFETY: as in add_output_filter.
        unsafe {
            let r = self.raw();
            !sys::ap_add_input_filter(n.as_ptr(), std::ptr::null_mut(), r, (*r).connection)
                .is_null()
        }
    }

    /// ap_note_auth_failure: adds the WWW-Authenticate challenge of the request's AuthType
    /// (only when one is configured; Apache logs an error otherwise).
    pub fn note_auth_failure(&self) {
        // SAFETY: alive.
        unsafe {
            let r = self.raw();
            if cstr(sys::ap_auth_type(r)).is_some() {
                sys::ap_note_auth_failure(r);
            }
        }
    }
}

impl Request {
    fn check_sub(&self) -> Result<RequestRef<'_>, SubError> {
        let r = self.get()?;
        let st = &r.state().phase;
        if !st.sub_owned {
            return Err(SubError::NotOurs);
        }
        if st.sub_destroying.load(Ordering::Acquire) {
            return Err(SubError::Destroyed);
        }
        if st.sub_running {
            return Err(SubError::Running);
        }
        Ok(r)
    }

    /// ap_run_sub_req: runs the subrequest's handler, its output going into the parent's
    /// response. A subrequest whose lookup did not end in 200 (refused by access control, not
    /// found...) is not run: its status is returned instead. Blocks on client I/O: call it
    /// without the GIL.
    pub fn run_sub_req(&self) -> Result<i32, SubError> {
        let r = self.check_sub()?;
        let status = r.rec().status;
        if status != sys::HTTP_OK as i32 {
            return Ok(status);
        }
        // The parent's buffered output goes first, so the subrequest's lands after it.
        let main = r.rec().main;
        if !main.is_null() {
            // SAFETY: the parent outlives its subrequest (its pool is the sub's parent pool).
            let parent = unsafe { Request::from_raw(main) };
            if let Ok(p) = parent.get() {
                let _ = p.finish_output();
            };
        }
        r.state().phase.sub_running = true;
        // SAFETY: alive (the guard `r` holds off the pool's destruction while it runs).
        let rc = unsafe { sys::ap_run_sub_req(r.raw()) };
        r.state().phase.sub_running = false;
        Ok(rc)
    }

    /// ap_destroy_sub_req: frees the subrequest now (otherwise it goes with the parent
    /// request). Every handle on it then reads as gone.
    pub fn destroy_sub_req(&self) -> Result<(), SubError> {
        let raw = {
            let r = self.check_sub()?;
            if !r.mark_destroying() {
                return Err(SubError::Destroyed);
            }
            r.raw()
        };
        // SAFETY: ours, not running, and marked so no other caller gets here for it; the
        // guard above is dropped, so the liveness cleanup (write lock) can run.
        unsafe { sys::ap_destroy_sub_req(raw) };
        Ok(())
    }
}

//! Hook registration (ap_hook_*): safe Rust functions behind extern "C" trampolines that
//! catch panics, so a bug in mod_py answers 500 and logs, instead of unwinding into Apache.

use super::log;
use super::pool::{cstr, Pool};
use super::request::Request;
use super::server::Server;
use crate::sys;
use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null;

/// Where a hook runs relative to other modules' (APR_HOOK_FIRST / MIDDLE / LAST).
#[derive(Clone, Copy)]
pub enum Order {
    First,
    Middle,
    Last,
}

impl Order {
    fn raw(self) -> c_int {
        match self {
            Order::First => sys::APR_HOOK_FIRST as c_int,
            Order::Middle => sys::APR_HOOK_MIDDLE as c_int,
            Order::Last => sys::APR_HOOK_LAST as c_int,
        }
    }
}

/// A request as a hook sees it: alive for the whole call, so cheap checks (r->handler) need
/// no liveness flag; `request()` makes the shareable handle when the hook decides to act.
pub struct HookRequest {
    r: *mut sys::request_rec,
}

impl HookRequest {
    pub fn handler(&self) -> Option<&[u8]> {
        // SAFETY: r is the live request of the running hook.
        unsafe { cstr((*self.r).handler) }
    }

    pub fn request(&self) -> Request {
        // SAFETY: r is the live request of the running hook.
        unsafe { Request::from_raw(self.r) }
    }
}

/// A request-phase hook (handler, fixups, ...): returns OK, DECLINED, DONE or an HTTP status.
pub trait RequestHook {
    fn run(r: &HookRequest) -> i32;
}

unsafe extern "C" fn request_trampoline<H: RequestHook>(r: *mut sys::request_rec) -> c_int {
    let hr = HookRequest { r };
    match catch_unwind(AssertUnwindSafe(|| H::run(&hr))) {
        Ok(rc) => rc,
        Err(_) => {
            log::rerror(
                r,
                log::APLOG_CRIT,
                0,
                "mod_py: internal error (panic) in a request hook",
            );
            sys::HTTP_INTERNAL_SERVER_ERROR as c_int
        }
    }
}

pub fn hook_handler<H: RequestHook>(order: Order) {
    // SAFETY: registration during register_hooks; the trampoline is a 'static fn.
    unsafe { sys::ap_hook_handler(Some(request_trampoline::<H>), null(), null(), order.raw()) }
}

/// child_init: runs in every new child, after it has dropped privileges (prefork) or before
/// its threads start (threaded MPMs). The place to start Python.
pub trait ChildInitHook {
    fn run(pchild: Pool, s: Server);
}

unsafe extern "C" fn child_init_trampoline<H: ChildInitHook>(
    p: *mut sys::apr_pool_t,
    s: *mut sys::server_rec,
) {
    // SAFETY: Apache passes the child pool and the main server_rec.
    let (server, pool) = unsafe { (Server::from_raw(s), Pool::from_raw(p)) };
    if catch_unwind(AssertUnwindSafe(|| H::run(pool, server))).is_err() {
        log::error(
            s,
            log::APLOG_CRIT,
            0,
            "mod_py: internal error (panic) in child_init",
        );
    }
}

pub fn hook_child_init<H: ChildInitHook>(order: Order) {
    // SAFETY: registration during register_hooks.
    unsafe {
        sys::ap_hook_child_init(
            Some(child_init_trampoline::<H>),
            null(),
            null(),
            order.raw(),
        )
    }
}

/// ap_mpm_query: the value of an AP_MPMQ_* query, None if the MPM does not answer it.
pub fn mpm_query(code: i32) -> Option<i32> {
    let mut v: c_int = 0;
    // SAFETY: ap_mpm_query writes one int.
    let rv = unsafe { sys::ap_mpm_query(code, &mut v) };
    (rv == sys::APR_SUCCESS as i32).then_some(v)
}

// ---- translate_name (WSGIScriptAlias) ----

/// translate_name: map the URI to a file (r->filename), or DECLINED.
pub fn hook_translate_name<H: RequestHook>(order: Order) {
    // SAFETY: registration during register_hooks; the trampoline is a 'static fn.
    unsafe {
        sys::ap_hook_translate_name(Some(request_trampoline::<H>), null(), null(), order.raw())
    }
}

impl HookRequest {
    /// r->uri (the decoded, normalised path).
    pub fn uri(&self) -> Option<&[u8]> {
        // SAFETY: r is the live request of the running hook.
        unsafe { cstr((*self.r).uri) }
    }

    /// r->filename (None until a translate_name hook set one).
    pub fn filename(&self) -> Option<&[u8]> {
        // SAFETY: r is the live request of the running hook.
        unsafe { cstr((*self.r).filename) }
    }
}

// ---- post_config ----

/// post_config: runs in the parent after every (re)configuration. Python-free.
pub trait PostConfigHook {
    fn run(pconf: Pool, s: Server) -> i32;
}

unsafe extern "C" fn post_config_trampoline<H: PostConfigHook>(
    pconf: *mut sys::apr_pool_t,
    _plog: *mut sys::apr_pool_t,
    _ptemp: *mut sys::apr_pool_t,
    s: *mut sys::server_rec,
) -> c_int {
    // SAFETY: Apache passes the configuration pool and the main server_rec.
    let (server, pool) = unsafe { (Server::from_raw(s), Pool::from_raw(pconf)) };
    match catch_unwind(AssertUnwindSafe(|| H::run(pool, server))) {
        Ok(rc) => rc,
        Err(_) => {
            log::error(
                s,
                log::APLOG_CRIT,
                0,
                "mod_py: internal error (panic) in post_config",
            );
            sys::HTTP_INTERNAL_SERVER_ERROR as c_int
        }
    }
}

pub fn hook_post_config<H: PostConfigHook>(order: Order) {
    // SAFETY: registration during register_hooks.
    unsafe {
        sys::ap_hook_post_config(
            Some(post_config_trampoline::<H>),
            null(),
            null(),
            order.raw(),
        )
    }
}
// ---- request phases for Python*Handler (issue 4) ----

impl HookRequest {
    /// # Safety
    /// `r` must be the live request Apache passed to the running hook or provider.
    pub(super) unsafe fn new(r: *mut sys::request_rec) -> HookRequest {
        HookRequest { r }
    }

    /// mod_py's per-directory config of the request as it stands in this phase (the server's
    /// defaults before the directory walk: post_read_request, translate_name).
    pub fn dir_config(&self) -> &crate::config::DirConfig {
        // SAFETY: r is live; its per_dir_config vector lives as long as the request.
        unsafe { super::config::dir_config((*self.r).per_dir_config) }
    }

    pub fn server(&self) -> Server {
        // SAFETY: r is live; server_recs live as long as the configuration.
        unsafe { Server::from_raw((*self.r).server) }
    }

    /// Has Python code added handlers for `phase` to this request (req.add_handler)?
    pub fn has_added_handlers(&self, phase: crate::phase::Phase) -> bool {
        // SAFETY: r is live.
        unsafe { super::phase_state::added_in(self.r, phase) }
    }
}

/// The request hooks `int hook(request_rec *r)` a module can register, by their C names.
#[derive(Clone, Copy, Debug)]
pub enum RequestPhaseHook {
    PostReadRequest,
    TranslateName,
    HeaderParser,
    AccessChecker,
    CheckUserId,
    AuthChecker,
    TypeChecker,
    Fixups,
    LogTransaction,
}

/// ap_hook_<which>(H::run). Legacy (per-URI) registration for the auth hooks: Apache re-runs
/// them for subrequests and redirects, which is what code that looks at the URI needs.
pub fn hook_request_phase<H: RequestHook>(which: RequestPhaseHook, order: Order) {
    let f = Some(request_trampoline::<H> as unsafe extern "C" fn(*mut sys::request_rec) -> c_int);
    let o = order.raw();
    // SAFETY: registration during register_hooks; the trampoline is a 'static fn.
    unsafe {
        match which {
            RequestPhaseHook::PostReadRequest => {
                sys::ap_hook_post_read_request(f, null(), null(), o)
            }
            RequestPhaseHook::TranslateName => sys::ap_hook_translate_name(f, null(), null(), o),
            RequestPhaseHook::HeaderParser => sys::ap_hook_header_parser(f, null(), null(), o),
            RequestPhaseHook::AccessChecker => sys::ap_hook_access_checker(f, null(), null(), o),
            RequestPhaseHook::CheckUserId => sys::ap_hook_check_user_id(f, null(), null(), o),
            RequestPhaseHook::AuthChecker => sys::ap_hook_auth_checker(f, null(), null(), o),
            RequestPhaseHook::TypeChecker => sys::ap_hook_type_checker(f, null(), null(), o),
            RequestPhaseHook::Fixups => sys::ap_hook_fixups(f, null(), null(), o),
            RequestPhaseHook::LogTransaction => sys::ap_hook_log_transaction(f, null(), null(), o),
        }
    }
}

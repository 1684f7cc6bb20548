//! The request-phase hooks behind `Python*Handler` (mod_python semantics, see
//! src/phase.rs and dispatch::run_phase). Every hook first looks at the request's config and
//! added handlers without Python or allocation, and declines when it has nothing to run.

use super::{dispatch, embed};
use crate::apache::hooks::{self, HookRequest, Order, RequestHook, RequestPhaseHook as Hook};
use crate::apache::{self, log};
use crate::phase::Phase;
use std::sync::Arc;

const OK: i32 = dispatch::OK;
const DECLINED: i32 = dispatch::DECLINED;
const HTTP_UNAUTHORIZED: i32 = crate::sys::HTTP_UNAUTHORIZED as i32;

pub fn register_hooks() {
    hooks::hook_request_phase::<PostReadRequest>(Hook::PostReadRequest, Order::Middle);
    // Before mod_alias and the core's DocumentRoot mapping (mod_python's documented order).
    hooks::hook_request_phase::<Trans>(Hook::TranslateName, Order::First);
    hooks::hook_request_phase::<HeaderParser>(Hook::HeaderParser, Order::Middle);
    hooks::hook_request_phase::<Access>(Hook::AccessChecker, Order::Middle);
    // WSGIAccessScript: mod_wsgi's access_checker (APR_HOOK_MIDDLE too).
    hooks::hook_request_phase::<WsgiAccess>(Hook::AccessChecker, Order::Middle);
    // Before mod_auth_basic / mod_auth_digest: a configured PythonAuthenHandler decides first
    // (DECLINED passes on to them).
    hooks::hook_request_phase::<Authen>(Hook::CheckUserId, Order::First);
    hooks::hook_request_phase::<Authz>(Hook::AuthChecker, Order::Middle);
    // Before mod_mime, which answers OK for any file with a known extension.
    hooks::hook_request_phase::<Type>(Hook::TypeChecker, Order::First);
    hooks::hook_request_phase::<Fixup>(Hook::Fixups, Order::Middle);
    hooks::hook_request_phase::<Log>(Hook::LogTransaction, Order::Middle);
    super::auth::register_backend();
}

/// The configured handlers of `phase`, if this request has any (configured or added).
fn wanted(hr: &HookRequest, phase: Phase) -> Option<Option<Arc<Vec<crate::config::HandlerEntry>>>> {
    let configured = hr.dir_config().phase_handlers(phase);
    if configured.is_none() && !hr.has_added_handlers(phase) {
        return None;
    }
    Some(configured.cloned())
}

fn run(hr: &HookRequest, phase: Phase) -> i32 {
    let Some(list) = wanted(hr, phase) else {
        return DECLINED;
    };
    if !embed::is_initialized() {
        return dispatch::HTTP_INTERNAL_SERVER_ERROR;
    }
    dispatch::run_phase(
        &hr.request(),
        phase,
        list.as_deref().map(Vec::as_slice),
        true,
    )
}

/// RUN_ALL phases go on after OK and DECLINED; anything else ends the request with it.
fn go_on(rc: i32) -> bool {
    rc == OK || rc == DECLINED
}

struct PostReadRequest;

impl RequestHook for PostReadRequest {
    /// PythonInitHandler of the server (here the request's config is the server's), then
    /// PythonPostReadRequestHandler.
    fn run(hr: &HookRequest) -> i32 {
        let rc = run(hr, Phase::Init);
        if !go_on(rc) {
            return rc;
        }
        run(hr, Phase::PostReadRequest)
    }
}

struct Trans;

impl RequestHook for Trans {
    fn run(hr: &HookRequest) -> i32 {
        run(hr, Phase::Trans)
    }
}

struct HeaderParser;

impl RequestHook for HeaderParser {
    /// A PythonInitHandler of a directory section (one that is not the server's, which ran at
    /// post_read_request), then PythonHeaderParserHandler.
    fn run(hr: &HookRequest) -> i32 {
        let dir_init = hr.dir_config().phase_handlers(Phase::Init);
        let server = hr.server();
        let server_init = server.dir_config().phase_handlers(Phase::Init);
        if let Some(list) = dir_init.filter(|l| !server_init.is_some_and(|s| Arc::ptr_eq(l, s))) {
            if !embed::is_initialized() {
                return dispatch::HTTP_INTERNAL_SERVER_ERROR;
            }
            let list = list.clone();
            let rc = dispatch::run_phase(&hr.request(), Phase::Init, Some(&list), false);
            if !go_on(rc) {
                return rc;
            }
        }
        run(hr, Phase::HeaderParser)
    }
}

struct Access;

impl RequestHook for Access {
    fn run(hr: &HookRequest) -> i32 {
        run(hr, Phase::Access)
    }
}

struct WsgiAccess;

impl RequestHook for WsgiAccess {
    /// DECLINED unless a WSGIAccessScript is in effect; then its allow_access() decides.
    fn run(hr: &HookRequest) -> i32 {
        if hr.dir_config().wsgi.access_script.is_none() {
            return DECLINED;
        }
        super::auth::wsgi_allow_access(&hr.request())
    }
}

struct Authen;

impl RequestHook for Authen {
    fn run(hr: &HookRequest) -> i32 {
        let rc = run(hr, Phase::Authen);
        if rc != OK && rc != HTTP_UNAUTHORIZED {
            return rc;
        }
        let req = hr.request();
        let Ok(r) = req.get() else {
            return dispatch::HTTP_INTERNAL_SERVER_ERROR;
        };
        if rc == HTTP_UNAUTHORIZED {
            // The browser gets the challenge of the configured AuthType (as mod_python).
            r.note_auth_failure();
            return rc;
        }
        if r.str_field(apache::request::StrField::User).is_none() {
            r.log_error(
                log::APLOG_ERR,
                0,
                "mod_py: PythonAuthenHandler returned OK but req.user is not set; \
                 set req.user when authentication succeeds",
            );
            return dispatch::HTTP_INTERNAL_SERVER_ERROR;
        }
        OK
    }
}

struct Authz;

impl RequestHook for Authz {
    fn run(hr: &HookRequest) -> i32 {
        run(hr, Phase::Authz)
    }
}

struct Type;

impl RequestHook for Type {
    fn run(hr: &HookRequest) -> i32 {
        run(hr, Phase::Type)
    }
}

struct Fixup;

impl RequestHook for Fixup {
    fn run(hr: &HookRequest) -> i32 {
        schedule_cleanup_if_configured(hr);
        run(hr, Phase::Fixup)
    }
}

struct Log;

impl RequestHook for Log {
    /// The response is sent: a Python log handler's result (or failure, already logged) is
    /// not passed on, so it can never stop other modules' loggers (the access log) from
    /// running, which any result but OK/DECLINED would do in this run-all hook.
    fn run(hr: &HookRequest) -> i32 {
        schedule_cleanup_if_configured(hr);
        match run(hr, Phase::Log) {
            OK => OK,
            _ => DECLINED,
        }
    }
}

/// The content handler (`PythonHandler`), for requests whose handler is one of mod_py's names.
pub fn content(hr: &HookRequest) -> i32 {
    if !hr.handler().is_some_and(super::is_our_handler) {
        return DECLINED;
    }
    let Some(list) = wanted(hr, Phase::Handler) else {
        // mod_python declines here, and Apache serves the file itself (mod_python's test
        // suite counts on it: a PythonTransHandler picking the file, no PythonHandler).
        if let Ok(r) = hr.request().get() {
            r.log_error(
                log::APLOG_WARNING,
                0,
                "mod_py: SetHandler modpy is in effect here but no PythonHandler is configured; \
                 declined (Apache's default handler serves the request)",
            );
        }
        return DECLINED;
    };
    if !embed::is_initialized() {
        return dispatch::HTTP_INTERNAL_SERVER_ERROR;
    }
    dispatch::run_phase(
        &hr.request(),
        Phase::Handler,
        list.as_deref().map(Vec::as_slice),
        true,
    )
}

// ---- PythonCleanupHandler: runs when the request's pool is cleaned up ----

fn schedule_cleanup_if_configured(hr: &HookRequest) {
    if hr.dir_config().phase_handlers(Phase::Cleanup).is_some() {
        schedule_cleanup(&hr.request());
    }
}

/// Registers (once per request) the pool cleanup that runs PythonCleanupHandler. Called when
/// the request's Python object is made, so the phase runs after the request's
/// register_cleanup() callables (cleanups run in reverse order), as in mod_python.
pub fn schedule_cleanup(req: &apache::Request) {
    let Ok(r) = req.get() else { return };
    if !r.schedule_cleanup_once() {
        return;
    }
    let req2 = req.clone();
    r.register_cleanup(Box::new(move || run_cleanup_phase(&req2)));
}

fn run_cleanup_phase(req: &apache::Request) {
    let list = {
        let Ok(r) = req.get() else { return };
        let list = r.per_dir_config().phase_handlers(Phase::Cleanup).cloned();
        if list.is_none() && !r.has_added_handlers(Phase::Cleanup) {
            return;
        }
        list
    };
    if embed::is_initialized() {
        // The result is ignored: the response is long gone.
        dispatch::run_phase(
            req,
            Phase::Cleanup,
            list.as_deref().map(Vec::as_slice),
            true,
        );
    }
}

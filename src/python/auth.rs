//! The Python side of `PythonAuthnProvider` / `PythonAuthzProvider`: Apache calls the
//! providers registered in src/apache/provider.rs, which call these in the child.
//!
//! Fail closed (DESIGN.md rule 6): an exception, a missing function or a result of the wrong
//! type gives AUTH_GENERAL_ERROR / AUTHZ_GENERAL_ERROR (Apache answers 500), with the
//! traceback in the error log against the request. Nothing but an explicit grant grants.
//!
//! mod_wsgi's `wsgi` / `wsgi-group` providers and its WSGIAccessScript run here too (the
//! `ProviderSource::WsgiScript` specs): the script in effect for the request is loaded with
//! the WSGI script loader and its function called with an environ instead of the request.

use super::convert::py_str;
use super::dispatch::{self, Serving};
use super::embed;
use super::request::Request;
use crate::apache::provider::{self as p, AuthBackend};
use crate::apache::{self, log};
use crate::auth::{normalize_realm_hash, ProviderSource, ProviderSpec};
use pyo3::exceptions::{PyAttributeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyString};

pub fn register_backend() {
    p::set_backend(AuthBackend {
        check_password,
        get_realm_hash,
        check_authorization,
    });
}

/// Imports `module`, finds `function` and calls it with (req, *args), with the request's
/// PythonPath and log context. Errors come back described, for `fail`.
fn call(
    py: Python<'_>,
    req: &apache::Request,
    module: &str,
    function: &str,
    args: impl FnOnce(Py<Request>) -> PyResult<Vec<Py<PyAny>>>,
) -> PyResult<Py<PyAny>> {
    let (python_path, autoreload) = {
        let r = req.get().map_err(super::convert::gone)?;
        let c = r.per_dir_config();
        (c.python_path.clone(), c.autoreload())
    };
    if let Some(expr) = python_path {
        dispatch::apply_python_path(py, &expr)?;
    }
    let m = dispatch::import_handler_module(py, module, None, autoreload)?;
    let f = dispatch::resolve(&m, function)?;
    let pyreq = Request::of(py, req)?;
    let args = pyo3::types::PyTuple::new(py, args(pyreq)?)?;
    Ok(f.call1(args)?.unbind())
}

/// Logs a provider failure with its traceback against the request; returns `status`.
fn fail(
    py: Python<'_>,
    req: &apache::Request,
    spec: &ProviderSpec,
    what: &str,
    err: &PyErr,
    status: i32,
) -> i32 {
    let tb = dispatch::format_traceback(py, err);
    if let Ok(r) = req.get() {
        let uri = r
            .str_field(apache::request::StrField::Uri)
            .map(|u| py_str(py, u).to_string())
            .unwrap_or_default();
        r.log_error(
            log::APLOG_ERR,
            0,
            &format!(
                "mod_py: {} {} ({what}) failed for {uri}, access denied:",
                spec.directive(),
                spec.name
            ),
        );
        for line in tb.lines() {
            r.log_error(log::APLOG_ERR, 0, line);
        }
    }
    status
}

fn describe(v: &Bound<'_, PyAny>) -> String {
    format!(
        "{} ({})",
        v.repr().map_or_else(|_| "?".into(), |r| r.to_string()),
        v.get_type()
            .name()
            .map_or_else(|_| "?".into(), |n| n.to_string())
    )
}

/// Runs `f` under the GIL with the request as this thread's log context, or returns
/// `unavailable` when Python did not start in this child.
fn with_python<T>(req: &apache::Request, unavailable: T, f: impl FnOnce(Python<'_>) -> T) -> T {
    if !embed::is_initialized() {
        if let Ok(r) = req.get() {
            r.log_error(
                log::APLOG_ERR,
                0,
                "mod_py: Python is not available in this process",
            );
        }
        return unavailable;
    }
    embed::prime_thread();
    Python::attach(|py| {
        let _serving = Serving::enter(req);
        f(py)
    })
}

/// check_password(req, user, password) -> AUTH_GRANTED / AUTH_DENIED / AUTH_USER_NOT_FOUND /
/// AUTH_GENERAL_ERROR, or True / False / None.
fn check_password(req: &apache::Request, spec: &ProviderSpec, user: &[u8], password: &[u8]) -> i32 {
    if spec.source == ProviderSource::WsgiScript {
        return wsgi_check_password(req, user, password);
    }
    with_python(req, p::AUTH_GENERAL_ERROR, |py| {
        let (module, function) = spec.check_function();
        let what = format!("{module}::{function}");
        let result = call(py, req, module, function, |pyreq| {
            Ok(vec![
                pyreq.into_any(),
                py_str(py, user).into_any().unbind(),
                py_str(py, password).into_any().unbind(),
            ])
        });
        let v = match result {
            Ok(v) => v.into_bound(py),
            Err(e) => return fail(py, req, spec, &what, &e, p::AUTH_GENERAL_ERROR),
        };
        if v.is_none() {
            return p::AUTH_USER_NOT_FOUND;
        }
        if let Ok(b) = v.cast::<PyBool>() {
            return if b.is_true() {
                p::AUTH_GRANTED
            } else {
                p::AUTH_DENIED
            };
        }
        match v.extract::<i32>() {
            Ok(
                rc @ (p::AUTH_GRANTED
                | p::AUTH_DENIED
                | p::AUTH_USER_NOT_FOUND
                | p::AUTH_GENERAL_ERROR),
            ) => rc,
            _ => {
                let e = PyTypeError::new_err(format!(
                    "{what} returned {}, not AUTH_GRANTED, AUTH_DENIED, AUTH_USER_NOT_FOUND, \
                     AUTH_GENERAL_ERROR, True, False or None",
                    describe(&v)
                ));
                fail(py, req, spec, &what, &e, p::AUTH_GENERAL_ERROR)
            }
        }
    })
}

/// get_realm_hash(req, user, realm) -> the hex MD5 of "user:realm:password", or None (user
/// not found), or AUTH_USER_NOT_FOUND / AUTH_DENIED / AUTH_GENERAL_ERROR.
fn get_realm_hash(
    req: &apache::Request,
    spec: &ProviderSpec,
    user: &[u8],
    realm: &[u8],
) -> Result<Vec<u8>, i32> {
    if spec.source == ProviderSource::WsgiScript {
        return wsgi_get_realm_hash(req, user, realm);
    }
    with_python(req, Err(p::AUTH_GENERAL_ERROR), |py| {
        let (module, function) = spec.realm_hash_function();
        let what = format!("{module}::{function}");
        let result = call(py, req, module, function, |pyreq| {
            Ok(vec![
                pyreq.into_any(),
                py_str(py, user).into_any().unbind(),
                py_str(py, realm).into_any().unbind(),
            ])
        });
        let v = match result {
            Ok(v) => v.into_bound(py),
            Err(e) => {
                let e = if e.is_instance_of::<PyAttributeError>(py) && spec.realm_hash.is_none() {
                    PyAttributeError::new_err(format!(
                        "{module} has no {function}(req, user, realm), needed for AuthDigestProvider {}: {}",
                        spec.name,
                        e.value(py)
                    ))
                } else {
                    e
                };
                return Err(fail(py, req, spec, &what, &e, p::AUTH_GENERAL_ERROR));
            }
        };
        if v.is_none() {
            return Err(p::AUTH_USER_NOT_FOUND);
        }
        let text = if let Ok(s) = v.cast::<PyString>() {
            s.to_str().ok().map(str::to_string)
        } else if let Ok(b) = v.cast::<PyBytes>() {
            std::str::from_utf8(b.as_bytes()).ok().map(str::to_string)
        } else if v.cast::<PyBool>().is_err() {
            match v.extract::<i32>() {
                Ok(rc @ (p::AUTH_USER_NOT_FOUND | p::AUTH_DENIED | p::AUTH_GENERAL_ERROR)) => {
                    return Err(rc)
                }
                _ => None,
            }
        } else {
            None
        };
        match text.as_deref().and_then(normalize_realm_hash) {
            Some(h) => Ok(h.into_bytes()),
            None => {
                let e = PyTypeError::new_err(format!(
                    "{what} returned {}, not the 32 hex digits of md5(user:realm:password), \
                     None or an AUTH_* status",
                    describe(&v)
                ));
                Err(fail(py, req, spec, &what, &e, p::AUTH_GENERAL_ERROR))
            }
        }
    })
}

/// check_authorization(req, require_args) -> AUTHZ_GRANTED / AUTHZ_DENIED /
/// AUTHZ_DENIED_NO_USER / AUTHZ_NEUTRAL / AUTHZ_GENERAL_ERROR, or True / False.
fn check_authorization(req: &apache::Request, spec: &ProviderSpec, args: &[u8]) -> i32 {
    if spec.source == ProviderSource::WsgiScript {
        return wsgi_check_authorization(req, args);
    }
    with_python(req, p::AUTHZ_GENERAL_ERROR, |py| {
        let (module, function) = spec.check_function();
        let what = format!("{module}::{function}");
        let result = call(py, req, module, function, |pyreq| {
            Ok(vec![pyreq.into_any(), py_str(py, args).into_any().unbind()])
        });
        let v = match result {
            Ok(v) => v.into_bound(py),
            Err(e) => return fail(py, req, spec, &what, &e, p::AUTHZ_GENERAL_ERROR),
        };
        if let Ok(b) = v.cast::<PyBool>() {
            return if b.is_true() {
                p::AUTHZ_GRANTED
            } else {
                p::AUTHZ_DENIED
            };
        }
        match v.extract::<i32>() {
            Ok(
                rc @ (p::AUTHZ_GRANTED
                | p::AUTHZ_DENIED
                | p::AUTHZ_DENIED_NO_USER
                | p::AUTHZ_NEUTRAL
                | p::AUTHZ_GENERAL_ERROR),
            ) if !v.is_none() => rc,
            _ => {
                let e = PyTypeError::new_err(format!(
                    "{what} returned {}, not AUTHZ_GRANTED, AUTHZ_DENIED, AUTHZ_DENIED_NO_USER, \
                     AUTHZ_NEUTRAL, AUTHZ_GENERAL_ERROR, True or False",
                    describe(&v)
                ));
                fail(py, req, spec, &what, &e, p::AUTHZ_GENERAL_ERROR)
            }
        }
    })
}

// ---- mod_wsgi: WSGIAuthUserScript, WSGIAuthGroupScript, WSGIAccessScript ----

const HTTP_FORBIDDEN: i32 = crate::sys::HTTP_FORBIDDEN as i32;
const HTTP_INTERNAL_SERVER_ERROR: i32 = crate::sys::HTTP_INTERNAL_SERVER_ERROR as i32;
/// ap_get_remote_host's REMOTE_HOST lookup type (http_core.h): the name if HostnameLookups
/// found one, else NULL.
const REMOTE_HOST: i32 = 0;

/// One of mod_wsgi's per-directory auth script directives.
#[derive(Clone, Copy)]
enum WsgiScript {
    Access,
    AuthUser,
    AuthGroup,
}

impl WsgiScript {
    fn directive(self) -> &'static str {
        match self {
            WsgiScript::Access => "WSGIAccessScript",
            WsgiScript::AuthUser => "WSGIAuthUserScript",
            WsgiScript::AuthGroup => "WSGIAuthGroupScript",
        }
    }

    fn path(self, c: &crate::wsgi::config::WsgiDirConfig) -> Option<&str> {
        match self {
            WsgiScript::Access => c.access_script.as_deref(),
            WsgiScript::AuthUser => c.auth_user_script.as_deref(),
            WsgiScript::AuthGroup => c.auth_group_script.as_deref(),
        }
    }
}

/// Where the request is going, for log lines.
fn request_uri(req: &apache::Request) -> String {
    req.get()
        .ok()
        .and_then(|r| {
            r.str_field(apache::request::StrField::Uri)
                .map(|u| String::from_utf8_lossy(u).into_owned())
        })
        .unwrap_or_default()
}

/// Logs `message` against the request, then the traceback of `err` if there is one.
fn wsgi_log(py: Python<'_>, req: &apache::Request, message: &str, err: Option<&PyErr>) {
    let Ok(r) = req.get() else { return };
    r.log_error(log::APLOG_ERR, 0, message);
    if let Some(err) = err {
        for line in dispatch::format_traceback(py, err).lines() {
            r.log_error(log::APLOG_ERR, 0, line);
        }
    }
}

/// A call to one of mod_wsgi's auth script functions that went wrong: already logged.
struct Failed;

/// Loads the `which` script in effect for the request (the WSGI script loader, script
/// reloading honoured) and calls `function(environ, *args)`. `used_by` says what needed it,
/// for the log lines. Every failure is logged against the request, naming the script.
fn wsgi_call<'py>(
    py: Python<'py>,
    req: &apache::Request,
    which: WsgiScript,
    function: &str,
    used_by: &str,
    args: Vec<Bound<'py, PyAny>>,
) -> Result<Bound<'py, PyAny>, Failed> {
    let (path, reloading) = {
        let Ok(r) = req.get() else { return Err(Failed) };
        let c = &r.per_dir_config().wsgi;
        (which.path(c).map(str::to_string), c.script_reloading())
    };
    let uri = request_uri(req);
    let Some(path) = path else {
        let m = format!(
            "mod_py: {used_by} is in effect for '{uri}' but no {} is configured there; \
             access denied",
            which.directive()
        );
        wsgi_log(py, req, &m, None);
        return Err(Failed);
    };
    let directive = which.directive();
    let module = super::wsgi::load_script(py, &path, reloading, None).map_err(|e| {
        let m = format!(
            "mod_py: {directive} '{path}' could not be loaded (for '{uri}'); access denied:"
        );
        wsgi_log(py, req, &m, Some(&e));
        Failed
    })?;
    let f = match module.getattr(function) {
        Ok(f) => f,
        Err(e) if e.is_instance_of::<PyAttributeError>(py) => {
            let m = format!(
                "mod_py: {directive} '{path}' does not define {function}(), which {used_by} \
                 needs; access denied for '{uri}'"
            );
            wsgi_log(py, req, &m, None);
            return Err(Failed);
        }
        Err(e) => {
            let m = format!(
                "mod_py: {directive} '{path}': {function} failed for '{uri}'; access denied:"
            );
            wsgi_log(py, req, &m, Some(&e));
            return Err(Failed);
        }
    };
    let environ: Bound<'py, PyDict> = super::wsgi::auth_environ(py, req, &path, function)
        .map_err(|e| {
            let m = format!("mod_py: {directive} '{path}': cannot build the environ for '{uri}'; access denied:");
            wsgi_log(py, req, &m, Some(&e));
            Failed
        })?;
    let mut all = vec![environ.into_any()];
    all.extend(args);
    let all = pyo3::types::PyTuple::new(py, all).map_err(|_| Failed)?;
    f.call1(all).map_err(|e| {
        let m = format!(
            "mod_py: {directive} '{path}': {function}() raised an exception for '{uri}'; \
             access denied:"
        );
        wsgi_log(py, req, &m, Some(&e));
        Failed
    })
}

/// Logs a result of the wrong type, naming the script and what was expected.
fn wsgi_wrong_type(
    py: Python<'_>,
    req: &apache::Request,
    which: WsgiScript,
    function: &str,
    v: &Bound<'_, PyAny>,
    expected: &str,
) {
    let path = req
        .get()
        .ok()
        .and_then(|r| which.path(&r.per_dir_config().wsgi).map(str::to_string))
        .unwrap_or_default();
    let m = format!(
        "mod_py: {} '{path}': {function}() returned {}, not {expected}; access denied for '{}'",
        which.directive(),
        describe(v),
        request_uri(req)
    );
    wsgi_log(py, req, &m, None);
}

/// `AuthBasicProvider wsgi`: check_password(environ, user, password) -> True (granted),
/// False (wrong password), None (no such user), or a str: granted, and the user's name
/// becomes that string (mod_wsgi 4.x).
fn wsgi_check_password(req: &apache::Request, user: &[u8], password: &[u8]) -> i32 {
    with_python(req, p::AUTH_GENERAL_ERROR, |py| {
        let f = crate::auth::WSGI_CHECK_PASSWORD;
        let args = vec![py_str(py, user).into_any(), py_str(py, password).into_any()];
        let Ok(v) = wsgi_call(
            py,
            req,
            WsgiScript::AuthUser,
            f,
            "AuthBasicProvider wsgi",
            args,
        ) else {
            return p::AUTH_GENERAL_ERROR;
        };
        if v.is_none() {
            return p::AUTH_USER_NOT_FOUND;
        }
        if let Ok(b) = v.cast::<PyBool>() {
            return if b.is_true() {
                p::AUTH_GRANTED
            } else {
                p::AUTH_DENIED
            };
        }
        if let Ok(name) = v.cast::<PyString>() {
            if let Ok(name) = name.to_str() {
                if !name.is_empty() && !name.contains('\0') {
                    if let Ok(r) = req.get() {
                        if r.set_str_field(apache::request::StrField::User, Some(name.as_bytes()))
                            .is_ok()
                        {
                            return p::AUTH_GRANTED;
                        }
                    }
                }
            }
        }
        wsgi_wrong_type(
            py,
            req,
            WsgiScript::AuthUser,
            f,
            &v,
            "True, False, None or a user name",
        );
        p::AUTH_GENERAL_ERROR
    })
}

/// `AuthDigestProvider wsgi`: get_realm_hash(environ, user, realm) -> the hex MD5 of
/// "user:realm:password" (str or bytes), or None (no such user).
fn wsgi_get_realm_hash(req: &apache::Request, user: &[u8], realm: &[u8]) -> Result<Vec<u8>, i32> {
    with_python(req, Err(p::AUTH_GENERAL_ERROR), |py| {
        let f = crate::auth::WSGI_GET_REALM_HASH;
        let args = vec![py_str(py, user).into_any(), py_str(py, realm).into_any()];
        let Ok(v) = wsgi_call(
            py,
            req,
            WsgiScript::AuthUser,
            f,
            "AuthDigestProvider wsgi",
            args,
        ) else {
            return Err(p::AUTH_GENERAL_ERROR);
        };
        if v.is_none() {
            return Err(p::AUTH_USER_NOT_FOUND);
        }
        let text = if let Ok(s) = v.cast::<PyString>() {
            s.to_str().ok().map(str::to_string)
        } else if let Ok(b) = v.cast::<PyBytes>() {
            std::str::from_utf8(b.as_bytes()).ok().map(str::to_string)
        } else {
            None
        };
        match text.as_deref().and_then(normalize_realm_hash) {
            Some(h) => Ok(h.into_bytes()),
            None => {
                wsgi_wrong_type(
                    py,
                    req,
                    WsgiScript::AuthUser,
                    f,
                    &v,
                    "None or the 32 hex digits of md5('user:realm:password')",
                );
                Err(p::AUTH_GENERAL_ERROR)
            }
        }
    })
}

/// The group names of groups_for_user's result: an iterable of str (latin-1, as mod_wsgi
/// encodes them) or bytes. A bare str or bytes is refused: iterating it would make a group
/// of each character.
fn group_names(v: &Bound<'_, PyAny>) -> Option<Vec<Vec<u8>>> {
    if v.is_instance_of::<PyString>() || v.is_instance_of::<PyBytes>() {
        return None;
    }
    let mut out = Vec::new();
    for item in v.try_iter().ok()? {
        let item = item.ok()?;
        if let Ok(s) = item.cast::<PyString>() {
            let s = s.to_str().ok()?;
            let mut b = Vec::with_capacity(s.len());
            for c in s.chars() {
                b.push(u8::try_from(u32::from(c)).ok()?);
            }
            out.push(b);
        } else if let Ok(b) = item.cast::<PyBytes>() {
            out.push(b.as_bytes().to_vec());
        } else {
            return None;
        }
    }
    Some(out)
}

/// `Require wsgi-group g1 g2...`: groups_for_user(environ, user) -> the user's groups;
/// granted when one of them is required. No user yet: AUTHZ_DENIED_NO_USER (Apache then
/// authenticates). Failures and wrong results: AUTHZ_GENERAL_ERROR (500), logged.
fn wsgi_check_authorization(req: &apache::Request, args: &[u8]) -> i32 {
    let user = match req.get() {
        Ok(r) => r
            .str_field(apache::request::StrField::User)
            .map(<[u8]>::to_vec),
        Err(_) => return p::AUTHZ_GENERAL_ERROR,
    };
    let Some(user) = user else {
        return p::AUTHZ_DENIED_NO_USER;
    };
    with_python(req, p::AUTHZ_GENERAL_ERROR, |py| {
        let f = crate::auth::WSGI_GROUPS_FOR_USER;
        let used_by = "Require wsgi-group";
        let uargs = vec![py_str(py, &user).into_any()];
        let Ok(v) = wsgi_call(py, req, WsgiScript::AuthGroup, f, used_by, uargs) else {
            return p::AUTHZ_GENERAL_ERROR;
        };
        let Some(groups) = group_names(&v) else {
            let exp = "a list (or other iterable) of group names as str or bytes";
            wsgi_wrong_type(py, req, WsgiScript::AuthGroup, f, &v, exp);
            return p::AUTHZ_GENERAL_ERROR;
        };
        if crate::auth::in_required_group(&groups, args) {
            return p::AUTHZ_GRANTED;
        }
        if let Ok(r) = req.get() {
            let why = if groups.is_empty() {
                "User is not a member of any groups"
            } else {
                "User is not a member of designated groups"
            };
            r.log_error(
                log::APLOG_ERR,
                0,
                &format!(
                    "mod_py: authorization of user '{}' to access '{}' failed. {why}.",
                    String::from_utf8_lossy(&user),
                    request_uri(req)
                ),
            );
        }
        p::AUTHZ_DENIED
    })
}

/// The access_checker of `WSGIAccessScript`: allow_access(environ, host) -> True (OK),
/// False (403), None (DECLINED: no opinion). `host` is the client's host name when
/// HostnameLookups found one, else its IP address. Anything else fails closed with 500.
pub fn wsgi_allow_access(req: &apache::Request) -> i32 {
    let host = {
        let Ok(r) = req.get() else {
            return HTTP_INTERNAL_SERVER_ERROR;
        };
        match r.get_remote_host(REMOTE_HOST).0 {
            Some(h) => h,
            None => r
                .str_field(apache::request::StrField::UseragentIp)
                .unwrap_or_default()
                .to_vec(),
        }
    };
    with_python(req, HTTP_INTERNAL_SERVER_ERROR, |py| {
        let f = crate::auth::WSGI_ALLOW_ACCESS;
        let args = vec![py_str(py, &host).into_any()];
        let Ok(v) = wsgi_call(py, req, WsgiScript::Access, f, "WSGIAccessScript", args) else {
            return HTTP_INTERNAL_SERVER_ERROR;
        };
        if v.is_none() {
            return dispatch::DECLINED;
        }
        match v.cast::<PyBool>() {
            Ok(b) if b.is_true() => dispatch::OK,
            Ok(_) => {
                if let Ok(r) = req.get() {
                    let file = r
                        .str_field(apache::request::StrField::Filename)
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .unwrap_or_else(|| request_uri(req));
                    r.log_error(
                        log::APLOG_ERR,
                        0,
                        &format!("mod_py: client denied by server configuration (WSGIAccessScript): '{file}'"),
                    );
                }
                HTTP_FORBIDDEN
            }
            Err(_) => {
                wsgi_wrong_type(py, req, WsgiScript::Access, f, &v, "True, False or None");
                HTTP_INTERNAL_SERVER_ERROR
            }
        }
    })
}

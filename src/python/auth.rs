//! The Python side of `PythonAuthnProvider` / `PythonAuthzProvider`: Apache calls the
//! providers registered in src/apache/provider.rs, which call these in the child.
//!
//! Fail closed (DESIGN.md rule 6): an exception, a missing function or a result of the wrong
//! type gives AUTH_GENERAL_ERROR / AUTHZ_GENERAL_ERROR (Apache answers 500), with the
//! traceback in the error log against the request. Nothing but an explicit grant grants.

use super::convert::py_str;
use super::dispatch::{self, Serving};
use super::embed;
use super::request::Request;
use crate::apache::provider::{self as p, AuthBackend};
use crate::apache::{self, log};
use crate::auth::{normalize_realm_hash, ProviderSpec};
use pyo3::exceptions::{PyAttributeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyString};

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

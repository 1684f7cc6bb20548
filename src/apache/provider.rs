//! Apache 2.4 auth providers (ap_register_auth_provider) backed by the layer above.
//!
//! `PythonAuthnProvider` / `PythonAuthzProvider` register, while the configuration is read
//! (in the parent, Python-free), one provider per name in AUTHN_PROVIDER_GROUP /
//! AUTHZ_PROVIDER_GROUP, version "0". All names share one C provider struct per group; which
//! name Apache is calling is known from the note mod_auth_basic / mod_auth_digest set
//! (AUTHN_PROVIDER_NAME_NOTE) and, for authz, from the parsed `Require` line. The names and
//! their Python functions are kept in a registry that lives as long as the configuration pool
//! (cleared by a cleanup on it, as Apache's own provider hash is), inherited by the children.
//!
//! mod_wsgi's `wsgi` (authn) and `wsgi-group` (authz) providers are registered the same way,
//! from register_hooks (as mod_wsgi does, so `AuthBasicProvider wsgi` is known whenever mod_py
//! is loaded), each with its own C provider struct: they need no name from r->notes, so
//! `AuthnProviderAlias wsgi NAME` / `AuthzProviderAlias wsgi-group ...` work as with mod_wsgi.

use super::hooks::HookRequest;
use super::log;
use super::pool::{cstr, pool_box, pstrdup, register_cleanup};
use super::request::Request;
use super::table::Table;
use crate::auth::{ProviderKind, ProviderSource, ProviderSpec};
use crate::sys;
use std::collections::HashMap;
use std::ffi::{c_void, CStr};
use std::os::raw::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock, RwLock};

pub const AUTH_DENIED: i32 = sys::authn_status_AUTH_DENIED as i32;
pub const AUTH_GRANTED: i32 = sys::authn_status_AUTH_GRANTED as i32;
pub const AUTH_USER_FOUND: i32 = sys::authn_status_AUTH_USER_FOUND as i32;
pub const AUTH_USER_NOT_FOUND: i32 = sys::authn_status_AUTH_USER_NOT_FOUND as i32;
pub const AUTH_GENERAL_ERROR: i32 = sys::authn_status_AUTH_GENERAL_ERROR as i32;
pub const AUTHZ_DENIED: i32 = sys::authz_status_AUTHZ_DENIED as i32;
pub const AUTHZ_GRANTED: i32 = sys::authz_status_AUTHZ_GRANTED as i32;
pub const AUTHZ_NEUTRAL: i32 = sys::authz_status_AUTHZ_NEUTRAL as i32;
pub const AUTHZ_GENERAL_ERROR: i32 = sys::authz_status_AUTHZ_GENERAL_ERROR as i32;
pub const AUTHZ_DENIED_NO_USER: i32 = sys::authz_status_AUTHZ_DENIED_NO_USER as i32;

/// get_realm_hash of the layer above: the hash (AUTH_USER_FOUND) or an authn_status.
pub type RealmHashFn = fn(&Request, &ProviderSpec, &[u8], &[u8]) -> Result<Vec<u8>, i32>;

/// What the layer above does when Apache calls a provider. Each returns an authn_status /
/// authz_status value; get_realm_hash returns the hash (AUTH_USER_FOUND) or a status.
pub struct AuthBackend {
    pub check_password: fn(&Request, &ProviderSpec, &[u8], &[u8]) -> i32,
    pub get_realm_hash: RealmHashFn,
    pub check_authorization: fn(&Request, &ProviderSpec, &[u8]) -> i32,
}

static BACKEND: OnceLock<AuthBackend> = OnceLock::new();

/// Called from register_hooks (no Python is started by this).
pub fn set_backend(b: AuthBackend) {
    let _ = BACKEND.set(b);
}

#[derive(Default)]
struct Registry {
    authn: HashMap<String, Arc<ProviderSpec>>,
    authz: HashMap<String, Arc<ProviderSpec>>,
    /// A cleanup on the configuration pool empties the registry when the pool goes.
    cleanup_registered: bool,
}

static REGISTRY: RwLock<Option<Registry>> = RwLock::new(None);

fn lookup(kind: ProviderKind, name: &str) -> Option<Arc<ProviderSpec>> {
    let reg = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    let reg = reg.as_ref()?;
    match kind {
        ProviderKind::Authn => reg.authn.get(name).cloned(),
        ProviderKind::Authz => reg.authz.get(name).cloned(),
    }
}

fn group(kind: ProviderKind) -> &'static CStr {
    match kind {
        ProviderKind::Authn => c"authn", // AUTHN_PROVIDER_GROUP
        ProviderKind::Authz => c"authz", // AUTHZ_PROVIDER_GROUP
    }
}

const PROVIDER_VERSION: &CStr = c"0"; // AUTHN_PROVIDER_VERSION, AUTHZ_PROVIDER_VERSION
const AUTHN_NOTE: &CStr = c"authn_provider_name"; // AUTHN_PROVIDER_NAME_NOTE
const AUTHZ_NOTE: &CStr = c"authz_provider_name"; // AUTHZ_PROVIDER_NAME_NOTE

static AUTHN_PROVIDER: sys::authn_provider = sys::authn_provider {
    check_password: Some(check_password),
    get_realm_hash: Some(get_realm_hash),
};

static AUTHZ_PROVIDER: sys::authz_provider = sys::authz_provider {
    check_authorization: Some(check_authorization),
    parse_require_line: Some(parse_require_line),
};

static WSGI_AUTHN_PROVIDER: sys::authn_provider = sys::authn_provider {
    check_password: Some(wsgi_check_password),
    get_realm_hash: Some(wsgi_get_realm_hash),
};

/// No parse_require_line (as mod_wsgi): the groups are read from the line at request time.
static WSGI_AUTHZ_PROVIDER: sys::authz_provider = sys::authz_provider {
    check_authorization: Some(wsgi_check_authorization),
    parse_require_line: None,
};

/// Registers mod_wsgi's `wsgi` and `wsgi-group` providers. Called from register_hooks, so they
/// exist before any `AuthBasicProvider` / `Require` line is read. If another module (mod_wsgi
/// itself) already has these names, its providers are left in place, with a warning.
///
/// # Safety
/// `pool` must be the pool register_hooks was given (the configuration pool).
pub unsafe fn register_wsgi_providers(pool: *mut sys::apr_pool_t) {
    for kind in [ProviderKind::Authn, ProviderKind::Authz] {
        // SAFETY: per this function's contract.
        if let Err(e) = unsafe { register(pool, ProviderSpec::wsgi(kind)) } {
            log::error(
                std::ptr::null(),
                log::APLOG_WARNING,
                0,
                &format!("mod_py: mod_wsgi's auth provider not registered: {e}"),
            );
        }
    }
}

/// Registers `spec` with Apache (ap_register_auth_provider) for the life of `pool`.
///
/// # Safety
/// `pool` must be the configuration pool (cmd->pool of a server-config directive).
pub unsafe fn register(pool: *mut sys::apr_pool_t, spec: ProviderSpec) -> Result<(), String> {
    let kind = spec.kind;
    let name_c = std::ffi::CString::new(spec.name.as_str()).map_err(|e| e.to_string())?;
    let mut guard = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    let reg = guard.get_or_insert_with(Registry::default);
    let map = match kind {
        ProviderKind::Authn => &mut reg.authn,
        ProviderKind::Authz => &mut reg.authz,
    };
    if let Some(old) = map.get(&spec.name) {
        return Err(format!(
            "'{}' is already registered (as {}); provider names are global",
            spec.name,
            old.describe()
        ));
    }
    // SAFETY: a lookup in Apache's provider hash.
    let existing = unsafe {
        sys::ap_lookup_provider(
            group(kind).as_ptr(),
            name_c.as_ptr(),
            PROVIDER_VERSION.as_ptr(),
        )
    };
    if !existing.is_null() {
        return Err(format!(
            "Apache already has an {} provider named '{}'",
            group(kind).to_string_lossy(),
            spec.name
        ));
    }
    if !reg.cleanup_registered {
        // SAFETY: per this function's contract; runs before the module is unloaded (cleanups
        // run in reverse order and LoadModule registered its unload earlier).
        unsafe {
            register_cleanup(
                pool,
                Box::new(|| {
                    *REGISTRY.write().unwrap_or_else(|e| e.into_inner()) = None;
                }),
            )
        };
        reg.cleanup_registered = true;
    }
    let authn = match spec.source {
        ProviderSource::Python => &AUTHN_PROVIDER,
        ProviderSource::WsgiScript => &WSGI_AUTHN_PROVIDER,
    };
    let authz = match spec.source {
        ProviderSource::Python => &AUTHZ_PROVIDER,
        ProviderSource::WsgiScript => &WSGI_AUTHZ_PROVIDER,
    };
    let provider: *const c_void = match kind {
        ProviderKind::Authn => authn as *const sys::authn_provider as *const c_void,
        ProviderKind::Authz => authz as *const sys::authz_provider as *const c_void,
    };
    // SAFETY: the name is copied into the pool Apache's hash lives in; the provider structs
    // are statics of this module, which stays loaded as long as the pool.
    let rv = unsafe {
        sys::ap_register_auth_provider(
            pool,
            group(kind).as_ptr(),
            pstrdup(pool, spec.name.as_bytes()),
            PROVIDER_VERSION.as_ptr(),
            provider,
            sys::AP_AUTH_INTERNAL_PER_URI as i32,
        )
    };
    if rv != sys::APR_SUCCESS as i32 {
        return Err(format!(
            "ap_register_auth_provider failed: {}",
            log::strerror(rv)
        ));
    }
    map.insert(spec.name.clone(), Arc::new(spec));
    Ok(())
}

/// Runs a provider callback: panics become `error` (never unwinding into Apache), an
/// unknown name or a missing backend fail closed with `error` too.
fn guarded(r: *mut sys::request_rec, error: i32, f: impl FnOnce() -> i32) -> u32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(rc) => rc as u32,
        Err(_) => {
            log::rerror(
                r,
                log::APLOG_CRIT,
                0,
                "mod_py: internal error (panic) in an auth provider",
            );
            error as u32
        }
    }
}

/// The provider of `kind` Apache is calling, from the name in r->notes.
fn target(
    r: *mut sys::request_rec,
    kind: ProviderKind,
    name: Option<&[u8]>,
) -> Option<(Arc<ProviderSpec>, &'static AuthBackend)> {
    let name = String::from_utf8_lossy(name.unwrap_or_default()).into_owned();
    let directive = match kind {
        ProviderKind::Authn => "PythonAuthnProvider",
        ProviderKind::Authz => "PythonAuthzProvider",
    };
    let Some(spec) = lookup(kind, &name) else {
        if BUILTIN_NAMES.contains(&name.as_str()) {
            log::rerror(
                r,
                log::APLOG_ERR,
                0,
                &format!("mod_py: the '{name}' auth provider is not registered in this process"),
            );
            return None;
        }
        let alias = match kind {
            ProviderKind::Authn => "AuthnProviderAlias",
            ProviderKind::Authz => "AuthzProviderAlias",
        };
        log::rerror(
            r,
            log::APLOG_ERR,
            0,
            &format!(
                "mod_py: no {directive} named '{name}' is known in this process \
                 ({alias} over a mod_py provider is not supported)"
            ),
        );
        return None;
    };
    let Some(backend) = BACKEND.get() else {
        log::rerror(r, log::APLOG_ERR, 0, "mod_py: Python is not available");
        return None;
    };
    Some((spec, backend))
}

/// # Safety
/// `r` must be live.
unsafe fn note(r: *mut sys::request_rec, key: &CStr) -> Option<Vec<u8>> {
    // SAFETY: r->notes lives in the request pool; the value is copied at once.
    unsafe { cstr(sys::apr_table_get((*r).notes, key.as_ptr())) }.map(<[u8]>::to_vec)
}

/// The names of the providers with their own C struct (called whatever r->notes says).
const BUILTIN_NAMES: [&str; 2] = [crate::auth::WSGI_AUTHN_NAME, crate::auth::WSGI_AUTHZ_NAME];

/// The provider name a callback serves: `fixed` for the built-in ones, else the note.
///
/// # Safety
/// `r` must be live.
unsafe fn provider_name(
    r: *mut sys::request_rec,
    key: &CStr,
    fixed: Option<&'static str>,
) -> Option<Vec<u8>> {
    match fixed {
        Some(n) => Some(n.as_bytes().to_vec()),
        // SAFETY: per this function's contract.
        None => unsafe { note(r, key) },
    }
}

unsafe extern "C" fn check_password(
    r: *mut sys::request_rec,
    user: *const c_char,
    password: *const c_char,
) -> sys::authn_status {
    // SAFETY: Apache's arguments, passed on.
    unsafe { check_password_of(r, user, password, None) }
}

unsafe extern "C" fn wsgi_check_password(
    r: *mut sys::request_rec,
    user: *const c_char,
    password: *const c_char,
) -> sys::authn_status {
    // SAFETY: Apache's arguments, passed on.
    unsafe { check_password_of(r, user, password, Some(crate::auth::WSGI_AUTHN_NAME)) }
}

/// # Safety
/// Apache's arguments to check_password: the live request, NUL-terminated strings.
unsafe fn check_password_of(
    r: *mut sys::request_rec,
    user: *const c_char,
    password: *const c_char,
    fixed: Option<&'static str>,
) -> sys::authn_status {
    guarded(r, AUTH_GENERAL_ERROR, || {
        // SAFETY: Apache calls us with the live request and NUL-terminated strings.
        let (name, user, password) = unsafe {
            (
                provider_name(r, AUTHN_NOTE, fixed),
                cstr(user).unwrap_or_default(),
                cstr(password).unwrap_or_default(),
            )
        };
        let Some((spec, backend)) = target(r, ProviderKind::Authn, name.as_deref()) else {
            return AUTH_GENERAL_ERROR;
        };
        // SAFETY: Apache calls the provider with the live request being checked.
        let req = unsafe { HookRequest::new(r) }.request();
        match (backend.check_password)(&req, &spec, user, password) {
            rc @ (AUTH_DENIED | AUTH_GRANTED | AUTH_USER_NOT_FOUND | AUTH_GENERAL_ERROR) => rc,
            _ => AUTH_GENERAL_ERROR,
        }
    })
}

unsafe extern "C" fn get_realm_hash(
    r: *mut sys::request_rec,
    user: *const c_char,
    realm: *const c_char,
    rethash: *mut *mut c_char,
) -> sys::authn_status {
    // SAFETY: Apache's arguments, passed on.
    unsafe { get_realm_hash_of(r, user, realm, rethash, None) }
}

unsafe extern "C" fn wsgi_get_realm_hash(
    r: *mut sys::request_rec,
    user: *const c_char,
    realm: *const c_char,
    rethash: *mut *mut c_char,
) -> sys::authn_status {
    // SAFETY: Apache's arguments, passed on.
    unsafe { get_realm_hash_of(r, user, realm, rethash, Some(crate::auth::WSGI_AUTHN_NAME)) }
}

/// # Safety
/// Apache's arguments to get_realm_hash: the live request, NUL-terminated strings, and where
/// the hash goes.
unsafe fn get_realm_hash_of(
    r: *mut sys::request_rec,
    user: *const c_char,
    realm: *const c_char,
    rethash: *mut *mut c_char,
    fixed: Option<&'static str>,
) -> sys::authn_status {
    guarded(r, AUTH_GENERAL_ERROR, || {
        // SAFETY: as in check_password.
        let (name, user, realm) = unsafe {
            (
                provider_name(r, AUTHN_NOTE, fixed),
                cstr(user).unwrap_or_default(),
                cstr(realm).unwrap_or_default(),
            )
        };
        let Some((spec, backend)) = target(r, ProviderKind::Authn, name.as_deref()) else {
            return AUTH_GENERAL_ERROR;
        };
        // SAFETY: Apache calls the provider with the live request being checked.
        let req = unsafe { HookRequest::new(r) }.request();
        match (backend.get_realm_hash)(&req, &spec, user, realm) {
            Ok(hash) => {
                // SAFETY: the hash is copied into the request pool, where mod_auth_digest
                // expects it.
                unsafe { *rethash = pstrdup((*r).pool, &hash) };
                AUTH_USER_FOUND
            }
            Err(rc @ (AUTH_DENIED | AUTH_USER_NOT_FOUND | AUTH_GENERAL_ERROR)) => rc,
            Err(_) => AUTH_GENERAL_ERROR,
        }
    })
}

/// What parse_require_line keeps for a `Require NAME args` line: the provider's name, so the
/// right function is called even when mod_authz_core's note names an alias.
struct AuthzParsed {
    name: String,
}

/// The provider a `Require [not] NAME args` line (or `<AuthzProviderAlias NAME alias args>`)
/// names: its first word, after a leading "not".
fn provider_word(args: &str) -> Option<&str> {
    let mut words = args.split_whitespace();
    let first = words.next()?;
    if first.eq_ignore_ascii_case("not") {
        words.next()
    } else {
        Some(first)
    }
    .map(|w| w.trim_end_matches('>'))
}

unsafe extern "C" fn parse_require_line(
    cmd: *mut sys::cmd_parms,
    _require_line: *const c_char,
    parsed: *mut *const c_void,
) -> *const c_char {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: Apache passes the cmd_parms of the Require (or AuthzProviderAlias)
        // directive being parsed, whose arguments name the provider. (The name
        // mod_authz_core leaves as temp-pool userdata is not used: an alias section parses
        // without setting it, so it may still hold an earlier line's provider.)
        unsafe {
            let args = if (*cmd).directive.is_null() {
                String::new()
            } else {
                String::from_utf8_lossy(cstr((*(*cmd).directive).args).unwrap_or_default())
                    .into_owned()
            };
            let name = provider_word(&args).unwrap_or_default().to_string();
            if lookup(ProviderKind::Authz, &name).is_none() {
                return Err(format!(
                    "mod_py: cannot tell which PythonAuthzProvider '{args}' is for"
                ));
            }
            *parsed = pool_box((*cmd).pool, AuthzParsed { name }) as *const c_void;
            Ok(())
        }
    }));
    let err = match result {
        Ok(Ok(())) => return std::ptr::null(),
        Ok(Err(e)) => e,
        Err(_) => "mod_py: internal error parsing a Require line".to_string(),
    };
    // SAFETY: the message lives in the configuration pool, as Apache expects.
    unsafe { pstrdup((*cmd).pool, err.as_bytes()) }
}

unsafe extern "C" fn check_authorization(
    r: *mut sys::request_rec,
    require_line: *const c_char,
    parsed: *const c_void,
) -> sys::authz_status {
    // SAFETY: Apache's arguments, passed on.
    unsafe { check_authorization_of(r, require_line, parsed, None) }
}

unsafe extern "C" fn wsgi_check_authorization(
    r: *mut sys::request_rec,
    require_line: *const c_char,
    _parsed: *const c_void,
) -> sys::authz_status {
    // SAFETY: Apache's arguments, passed on (this provider has no parse_require_line, so
    // nothing was parsed).
    unsafe {
        check_authorization_of(
            r,
            require_line,
            std::ptr::null(),
            Some(crate::auth::WSGI_AUTHZ_NAME),
        )
    }
}

/// # Safety
/// Apache's arguments to check_authorization; `parsed` NULL or made by parse_require_line.
unsafe fn check_authorization_of(
    r: *mut sys::request_rec,
    require_line: *const c_char,
    parsed: *const c_void,
    fixed: Option<&'static str>,
) -> sys::authz_status {
    guarded(r, AUTHZ_GENERAL_ERROR, || {
        // SAFETY: `parsed` is NULL or the AuthzParsed parse_require_line made (in a pool
        // that lives as long as the configuration); the rest as in check_password.
        let (name, args) = unsafe {
            let name = match (parsed as *const AuthzParsed).as_ref() {
                Some(p) if !p.name.is_empty() => Some(p.name.as_bytes().to_vec()),
                _ => provider_name(r, AUTHZ_NOTE, fixed),
            };
            (name, cstr(require_line).unwrap_or_default())
        };
        let Some((spec, backend)) = target(r, ProviderKind::Authz, name.as_deref()) else {
            return AUTHZ_GENERAL_ERROR;
        };
        // SAFETY: Apache calls the provider with the live request being checked.
        let req = unsafe { HookRequest::new(r) }.request();
        match (backend.check_authorization)(&req, &spec, args) {
            rc @ (AUTHZ_DENIED | AUTHZ_GRANTED | AUTHZ_NEUTRAL | AUTHZ_GENERAL_ERROR
            | AUTHZ_DENIED_NO_USER) => rc,
            _ => AUTHZ_GENERAL_ERROR,
        }
    })
}

/// The CGI variables mod_wsgi's auth scripts see, in a new table of the request's pool:
/// ap_add_common_vars (HTTP headers, SERVER_*, REMOTE_*, DOCUMENT_ROOT, REMOTE_USER and
/// AUTH_TYPE once Apache has them...) and what ap_add_cgi_vars adds, except PATH_TRANSLATED
/// (its subrequest would run the auth hooks again from inside one). r->subprocess_env is left
/// as it was, so the request's environment variables (SetEnvIf, RewriteRule [E=], ...) are
/// not passed, as mod_wsgi documents; nor are the Authorization headers, even with
/// CGIPassAuth On.
pub fn auth_cgi_vars(req: &Request) -> Result<Table, super::Gone> {
    let r = req.get()?;
    let raw = r.raw();
    // SAFETY: r is alive (RequestRef) and worked on by this thread only. ap_add_common_vars
    // writes into r->subprocess_env: a fresh table of the request pool stands in for it
    // during the call and the request's own table is put back at once (no Rust code that
    // could panic runs in between). The fresh table lives as long as the request pool, which
    // the request's liveness flag tracks.
    let fresh = unsafe {
        let saved = (*raw).subprocess_env;
        let fresh = sys::apr_table_make((*raw).pool, 32);
        (*raw).subprocess_env = fresh;
        sys::ap_add_common_vars(raw);
        (*raw).subprocess_env = saved;
        Table::from_raw(fresh, req.liveness().clone())
    };
    r.add_cgi_vars_without_path_translated(&fresh)?;
    for k in [&b"HTTP_AUTHORIZATION"[..], b"HTTP_PROXY_AUTHORIZATION"] {
        let _ = fresh.unset(k);
    }
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    #[test]
    fn provider_word() {
        use super::provider_word as w;
        assert_eq!(w("pygroup admins staff"), Some("pygroup"));
        assert_eq!(w("not pygroup admins"), Some("pygroup"));
        assert_eq!(w("NOT  pygroup"), Some("pygroup"));
        assert_eq!(w("pygroup alias admins>"), Some("pygroup"));
        assert_eq!(w("pygroup>"), Some("pygroup"));
        assert_eq!(w(""), None);
        assert_eq!(w("not"), None);
    }
}

//! Directive handlers and per-directory / per-server config creation and merging, called by
//! Apache while it parses httpd.conf and .htaccess files (in the parent: no Python here).

use super::module::get_module_config;
use super::pool::{cstr, pool_box, pstrdup};
use crate::config::{self, DirConfig, ServerConfig};
use crate::sys;
use std::ffi::c_void;
use std::os::raw::{c_char, c_int};
use std::sync::Arc;

/// # Safety
/// Called by Apache only, with the pools and configs it owns.
pub unsafe extern "C" fn create_dir_config(
    p: *mut sys::apr_pool_t,
    _dir: *mut c_char,
) -> *mut c_void {
    // SAFETY: `p` is the pool Apache gives us; the box lives exactly as long as it.
    unsafe { pool_box(p, DirConfig::default()) as *mut c_void }
}

/// # Safety
/// Called by Apache only, with the pools and configs it owns.
pub unsafe extern "C" fn merge_dir_config(
    p: *mut sys::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    // SAFETY: both come from create_dir_config/merge_dir_config of this module.
    let merged =
        unsafe { DirConfig::merge(&*(base as *const DirConfig), &*(add as *const DirConfig)) };
    // SAFETY: as in create_dir_config.
    unsafe { pool_box(p, merged) as *mut c_void }
}

/// # Safety
/// Called by Apache only, with the pools and configs it owns.
pub unsafe extern "C" fn create_server_config(
    p: *mut sys::apr_pool_t,
    _s: *mut sys::server_rec,
) -> *mut c_void {
    // SAFETY: as in create_dir_config.
    unsafe { pool_box(p, ServerConfig::default()) as *mut c_void }
}

/// # Safety
/// Called by Apache only, with the pools and configs it owns.
pub unsafe extern "C" fn merge_server_config(
    p: *mut sys::apr_pool_t,
    base: *mut c_void,
    add: *mut c_void,
) -> *mut c_void {
    // SAFETY: both come from create_server_config/merge_server_config of this module.
    let merged = unsafe {
        ServerConfig::merge(
            &*(base as *const ServerConfig),
            &*(add as *const ServerConfig),
        )
    };
    // SAFETY: as in create_dir_config.
    unsafe { pool_box(p, merged) as *mut c_void }
}

/// mod_py's merged per-directory config of a request (or a default one if none).
///
/// # Safety
/// `per_dir_config` must be a request's per_dir_config vector.
pub unsafe fn dir_config<'a>(per_dir_config: *const sys::ap_conf_vector_t) -> &'a DirConfig {
    static EMPTY: std::sync::OnceLock<DirConfig> = std::sync::OnceLock::new();
    // SAFETY: our slot holds a DirConfig created above, alive as long as the vector.
    let p = unsafe { get_module_config(per_dir_config) } as *const DirConfig;
    if p.is_null() {
        EMPTY.get_or_init(DirConfig::default)
    } else {
        // SAFETY: see above.
        unsafe { &*p }
    }
}

/// mod_py's per-server config.
///
/// # Safety
/// `s` must be a valid server_rec.
pub unsafe fn server_config<'a>(s: *const sys::server_rec) -> &'a ServerConfig {
    // SAFETY: module_config holds the ServerConfig that create_server_config made.
    unsafe { &*(get_module_config((*s).module_config) as *const ServerConfig) }
}

/// What Apache tells us about the directive being parsed.
pub(super) struct Cmd {
    pub(super) id: u32,
    pub(super) name: String,
    /// The directory of the enclosing <Directory> / .htaccess (not <Location>: a URL).
    pub(super) directory: Option<String>,
    /// Inside a <Location> / <LocationMatch> section.
    pub(super) in_location: bool,
    /// Then, its path (cmd->path).
    pub(super) location: Option<String>,
}

pub(super) unsafe fn cmd_info(cmd: *mut sys::cmd_parms) -> Cmd {
    // SAFETY: Apache passes a valid cmd_parms for the directive being parsed.
    unsafe {
        let id = sys::modpy_cmd_id(cmd) as u32;
        let c = &*cmd;
        let name = c.cmd.as_ref().and_then(|r| cstr(r.name)).unwrap_or(b"?");
        // The directory a handler's module is looked up in: the nearest <Directory>, or the
        // directory of a .htaccess file (cmd->path there); none inside <Location>, a URL.
        let mut directory: Option<String> = None;
        let mut in_location = false;
        let mut d = if c.directive.is_null() {
            std::ptr::null_mut()
        } else {
            (*c.directive).parent
        };
        while !d.is_null() {
            let sect = cstr((*d).directive)
                .unwrap_or_default()
                .to_ascii_lowercase();
            in_location |= sect.starts_with(b"<location");
            if directory.is_none() && sect == b"<directory" {
                let arg = String::from_utf8_lossy(cstr((*d).args).unwrap_or_default()).into_owned();
                let arg = arg
                    .trim()
                    .trim_end_matches('>')
                    .trim_matches('"')
                    .to_string();
                if arg.starts_with('/') && !arg.contains(['*', '?', '[']) {
                    directory = Some(arg);
                }
            }
            d = (*d).parent;
        }
        if directory.is_none() {
            directory = cstr(c.path)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .filter(|p| p.starts_with('/') && std::path::Path::new(p).is_dir());
        }
        // With a trailing slash, as Apache writes a <Directory> path (mod_python's
        // hlist.directory).
        let directory = directory.filter(|_| !in_location).map(|mut d| {
            if !d.ends_with('/') {
                d.push('/');
            }
            d
        });
        let location = cstr(c.path)
            .filter(|_| in_location)
            .map(|p| String::from_utf8_lossy(p).into_owned());
        Cmd {
            id,
            name: String::from_utf8_lossy(name).into_owned(),
            directory,
            in_location,
            location,
        }
    }
}

/// Turns a Rust error into the string Apache prints after "Syntax error on line N of FILE:".
pub(super) unsafe fn cmd_error(cmd: *mut sys::cmd_parms, name: &str, msg: &str) -> *const c_char {
    let text = format!("{name}: {msg}");
    // SAFETY: cmd->pool outlives the error report.
    unsafe { pstrdup((*cmd).pool, text.as_bytes()) }
}

/// In mod_pyd (built without the `python` feature) a directive that needs embedded Python
/// fails the configuration instead of being ignored: an access or auth script that silently
/// did nothing would let everyone in.
///
/// # Safety
/// `cmd` is the cmd_parms Apache passed to the directive's handler.
pub(super) unsafe fn embedded_only(cmd: *mut sys::cmd_parms, name: &str) -> Option<*const c_char> {
    if cfg!(feature = "python") {
        return None;
    }
    // SAFETY: per the contract.
    Some(unsafe {
        cmd_error(
            cmd,
            name,
            "needs embedded Python, which mod_pyd (the daemon-only build) does not have",
        )
    })
}

pub(super) fn arg(p: *const c_char) -> String {
    // SAFETY: Apache passes NUL-terminated arguments (or NULL for a missing optional one).
    String::from_utf8_lossy(unsafe { cstr(p) }.unwrap_or_default()).into_owned()
}

/// # Safety
/// Called by Apache only (command table in bindings/shim.c), while parsing a directive.
#[no_mangle]
pub unsafe extern "C" fn modpy_cmd_raw_args(
    cmd: *mut sys::cmd_parms,
    mconfig: *mut c_void,
    args: *const c_char,
) -> *const c_char {
    // SAFETY: cmd is the cmd_parms Apache passed.
    if let Some(err) = unsafe { embedded_only(cmd, &cmd_info(cmd).name) } {
        return err;
    }
    // SAFETY: Apache passes a valid cmd_parms, and for OR_ALL directives our DirConfig.
    let info = unsafe { cmd_info(cmd) };
    let dc = unsafe { &mut *(mconfig as *mut DirConfig) };
    let args = arg(args);
    let args = args.trim();
    let result: Result<(), String> = match info.id {
        sys::modpy_cmd_id_MODPY_CMD_HANDLER => {
            config::parse_handler_args(args, info.directory.as_deref()).map(|mut entries| {
                // Several lines in one section add up, as in mod_python.
                let mut list = dc.handlers.as_deref().cloned().unwrap_or_default();
                list.append(&mut entries);
                dc.handlers = Some(Arc::new(list));
                dc.location_handler = Some(info.in_location);
                dc.location = info.location.clone();
            })
        }
        sys::modpy_cmd_id_MODPY_CMD_PATH => {
            if unquote(args).trim().is_empty() {
                Err(
                    "expected a Python expression giving a list, e.g. \"sys.path + ['/srv/app']\""
                        .into(),
                )
            } else {
                dc.python_path = Some(unquote(args).into());
                Ok(())
            }
        }
        sys::modpy_cmd_id_MODPY_CMD_INTERPRETER => {
            dc.interpreter = Some(args.to_string());
            Ok(())
        }
        sys::modpy_cmd_id_MODPY_CMD_HANDLER_MODULE => {
            if config::is_module_name(args) {
                dc.handler_module = Some(args.to_string());
                dc.phases.set_module(args, info.directory.as_deref());
                Ok(())
            } else {
                Err(format!("'{args}' is not a Python module name"))
            }
        }
        _ => Err("internal error: unknown directive id".into()),
    };
    match result {
        Ok(()) => std::ptr::null(),
        // SAFETY: cmd is valid for the duration of this call.
        Err(e) => unsafe { cmd_error(cmd, &info.name, &e) },
    }
}

/// Apache passes a RAW_ARGS line with its quotes; PythonPath "sys.path+['x']" drops them.
fn unquote(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// # Safety
/// Called by Apache only (command table in bindings/shim.c), while parsing a directive.
#[no_mangle]
pub unsafe extern "C" fn modpy_cmd_take12(
    cmd: *mut sys::cmd_parms,
    mconfig: *mut c_void,
    a1: *const c_char,
    a2: *const c_char,
) -> *const c_char {
    // SAFETY: cmd is the cmd_parms Apache passed.
    if let Some(err) = unsafe { embedded_only(cmd, &cmd_info(cmd).name) } {
        return err;
    }
    // SAFETY: as in modpy_cmd_raw_args.
    let info = unsafe { cmd_info(cmd) };
    let (a1, a2) = (arg(a1), if a2.is_null() { None } else { Some(arg(a2)) });
    let result: Result<(), String> = match info.id {
        sys::modpy_cmd_id_MODPY_CMD_OPTION => {
            // SAFETY: PythonOption is OR_ALL: mconfig is our DirConfig.
            let dc = unsafe { &mut *(mconfig as *mut DirConfig) };
            dc.options.push((a1, a2));
            Ok(())
        }
        sys::modpy_cmd_id_MODPY_CMD_IMPORT => {
            // `module` or `module::function` (mod_python 3.5 calls the function after the
            // import).
            let module = a1.split_once("::").map_or(a1.as_str(), |(m, _)| m);
            if config::is_module_name(module) && config::check_handler_name(&a1).is_ok() {
                // SAFETY: PythonImport is RSRC_CONF: the server's config is ours to change.
                let sc = unsafe {
                    &mut *(get_module_config((*(*cmd).server).module_config) as *mut ServerConfig)
                };
                sc.imports
                    .push((a1, a2.unwrap_or_else(|| "main_interpreter".into())));
                Ok(())
            } else {
                Err(format!("'{a1}' is not a Python module name"))
            }
        }
        _ => Err("internal error: unknown directive id".into()),
    };
    match result {
        Ok(()) => std::ptr::null(),
        // SAFETY: cmd is valid for the duration of this call.
        Err(e) => unsafe { cmd_error(cmd, &info.name, &e) },
    }
}

/// # Safety
/// Called by Apache only (command table in bindings/shim.c), while parsing a directive.
#[no_mangle]
pub unsafe extern "C" fn modpy_cmd_flag(
    cmd: *mut sys::cmd_parms,
    mconfig: *mut c_void,
    on: c_int,
) -> *const c_char {
    // SAFETY: cmd is the cmd_parms Apache passed.
    if let Some(err) = unsafe { embedded_only(cmd, &cmd_info(cmd).name) } {
        return err;
    }
    // SAFETY: as in modpy_cmd_raw_args.
    let info = unsafe { cmd_info(cmd) };
    let dc = unsafe { &mut *(mconfig as *mut DirConfig) };
    match info.id {
        sys::modpy_cmd_id_MODPY_CMD_DEBUG => dc.debug = Some(on != 0),
        sys::modpy_cmd_id_MODPY_CMD_AUTORELOAD => dc.autoreload = Some(on != 0),
        // One interpreter per process (DESIGN rule 2): these only name it (req.interpreter),
        // and a one-time notice says so.
        sys::modpy_cmd_id_MODPY_CMD_INTERP_PER_DIRECTORY => dc.interp_per_directory = Some(on != 0),
        sys::modpy_cmd_id_MODPY_CMD_INTERP_PER_DIRECTIVE => dc.interp_per_directive = Some(on != 0),
        sys::modpy_cmd_id_MODPY_CMD_ENABLE_PDB if on != 0 => {
            // SAFETY: cmd is valid for the duration of this call.
            return unsafe {
                cmd_error(
                    cmd,
                    &info.name,
                    "On is not supported: mod_py runs no debugger inside Apache (PythonDebug On sends tracebacks to the client)",
                )
            };
        }
        sys::modpy_cmd_id_MODPY_CMD_ENABLE_PDB => {}
        sys::modpy_cmd_id_MODPY_CMD_OPTIMIZE => {
            // SAFETY: cmd->server is the server being configured; its config is ours.
            let sc = unsafe {
                &mut *(get_module_config((*(*cmd).server).module_config) as *mut ServerConfig)
            };
            sc.optimize = Some(on != 0);
        }
        // SAFETY: cmd is valid for the duration of this call.
        _ => return unsafe { cmd_error(cmd, &info.name, "internal error: unknown directive id") },
    }
    std::ptr::null()
}

// ---- mod_wsgi's directives ----

/// # Safety
/// Called by Apache only (command table in bindings/shim.c), while parsing a directive.
#[no_mangle]
pub unsafe extern "C" fn modpy_cmd_wsgi(
    cmd: *mut sys::cmd_parms,
    mconfig: *mut c_void,
    args: *const c_char,
) -> *const c_char {
    use crate::wsgi::config as w;
    // SAFETY: as in modpy_cmd_raw_args; RSRC_CONF directives change the server's config.
    let info = unsafe { cmd_info(cmd) };
    let args = arg(args);
    let args = args.trim();
    let sc =
        unsafe { &mut *(get_module_config((*(*cmd).server).module_config) as *mut ServerConfig) };
    // SAFETY: cmd->server is the server being configured.
    let server_is_virtual = unsafe { (*(*cmd).server).is_virtual != 0 };
    let dc = if mconfig.is_null() {
        None
    } else {
        // SAFETY: for directory-capable directives mconfig is our DirConfig.
        Some(unsafe { &mut *(mconfig as *mut DirConfig) })
    };
    let one = |what: &str| -> Result<String, String> {
        let words = w::split_args(args)?;
        match words.as_slice() {
            [v] => Ok(v.clone()),
            _ => Err(format!("expected one argument: {what}")),
        }
    };
    let flag = || one("On or Off").and_then(|v| w::parse_on_off(&v));
    let words = || -> Result<Vec<String>, String> {
        let v = w::split_args(args)?;
        if v.is_empty() {
            Err("expected at least one argument".into())
        } else {
            Ok(v)
        }
    };
    if matches!(
        info.id,
        sys::modpy_wsgi_cmd_id_MODPY_WSGI_ACCESS_SCRIPT
            | sys::modpy_wsgi_cmd_id_MODPY_WSGI_AUTH_USER_SCRIPT
            | sys::modpy_wsgi_cmd_id_MODPY_WSGI_AUTH_GROUP_SCRIPT
            | sys::modpy_wsgi_cmd_id_MODPY_WSGI_HANDLER_SCRIPT
    ) {
        // SAFETY: cmd is the cmd_parms Apache passed.
        if let Some(err) = unsafe { embedded_only(cmd, &info.name) } {
            return err;
        }
    }
    let result: Result<(), String> = (|| {
        let id = info.id;
        if id == sys::modpy_wsgi_cmd_id_MODPY_WSGI_SCRIPT_ALIAS
            || id == sys::modpy_wsgi_cmd_id_MODPY_WSGI_SCRIPT_ALIAS_MATCH
        {
            let is_match = id == sys::modpy_wsgi_cmd_id_MODPY_WSGI_SCRIPT_ALIAS_MATCH;
            let mut alias = w::parse_script_alias(args, is_match)?;
            if is_match {
                // SAFETY: cmd->pool is the configuration pool, which outlives the config.
                let re = unsafe { super::regex::Regex::compile((*cmd).pool, &alias.url)? };
                alias.regex = Some(std::sync::Arc::new(re));
            }
            sc.wsgi.script_aliases.push(alias);
            return Ok(());
        }
        match id {
            sys::modpy_wsgi_cmd_id_MODPY_WSGI_IMPORT_SCRIPT => {
                sc.wsgi.import_scripts.push(w::parse_import_script(args)?)
            }
            sys::modpy_wsgi_cmd_id_MODPY_WSGI_PYTHON_PATH
            | sys::modpy_wsgi_cmd_id_MODPY_WSGI_PYTHON_HOME
                if server_is_virtual =>
            {
                return Err("cannot occur within <VirtualHost> section (it sets up Python for the whole process)".into());
            }
            sys::modpy_wsgi_cmd_id_MODPY_WSGI_PYTHON_PATH => {
                sc.wsgi.python_path = one("directory[:directory...]")?
                    .split(':')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            sys::modpy_wsgi_cmd_id_MODPY_WSGI_PYTHON_HOME => {
                sc.wsgi.python_home = Some(one("a directory")?)
            }
            sys::modpy_wsgi_cmd_id_MODPY_WSGI_RESTRICT_EMBEDDED => {
                sc.wsgi.restrict_embedded = Some(flag()?)
            }
            sys::modpy_wsgi_cmd_id_MODPY_WSGI_DAEMON_TEMPLATE => {
                let t = crate::daemon::config::parse_daemon_template(&words()?)?;
                if sc.wsgi.daemon_templates.iter().any(|d| d.name == t.name) {
                    return Err(format!(
                        "name '{}' duplicates a previous WSGI daemon template",
                        t.name
                    ));
                }
                sc.wsgi.daemon_templates.push(t)
            }
            sys::modpy_wsgi_cmd_id_MODPY_WSGI_DAEMON_DEFAULT => {
                sc.wsgi.daemon_default = Some(flag()?)
            }
            sys::modpy_wsgi_cmd_id_MODPY_WSGI_DAEMON_PROCESS => {
                let g = crate::daemon::config::parse_daemon_process(&words()?)?;
                // As mod_wsgi: a user or group that does not exist fails the configuration.
                if let Some(u) = g
                    .user
                    .as_deref()
                    .filter(|u| super::process::lookup_user(u).is_none())
                {
                    return Err(format!(
                        "WSGI process user '{u}' of daemon process group '{}' does not exist",
                        g.name
                    ));
                }
                for gr in g.group.iter().chain(&g.supplementary_groups) {
                    if super::process::lookup_group(gr).is_none() {
                        return Err(format!(
                            "WSGI process group '{gr}' of daemon process group '{}' does not exist",
                            g.name
                        ));
                    }
                }
                if sc.wsgi.daemon_groups.iter().any(|d| d.name == g.name) {
                    return Err(format!(
                        "name '{}' duplicates a previous WSGI daemon definition",
                        g.name
                    ));
                }
                sc.wsgi.daemon_groups.push(g)
            }
            sys::modpy_wsgi_cmd_id_MODPY_WSGI_SOCKET_PREFIX => {
                sc.wsgi.socket_prefix = Some(one("a path prefix")?)
            }
            sys::modpy_wsgi_cmd_id_MODPY_WSGI_HANDLER_SCRIPT => {
                let v = words()?;
                let [name, path] = v.as_slice() else {
                    return Err("expected: name file-path".into());
                };
                sc.wsgi.handler_scripts.push((name.clone(), path.clone()));
            }
            _ => {
                let Some(dc) = dc else {
                    return Err("not allowed here".into());
                };
                let d = &mut dc.wsgi;
                match id {
                    sys::modpy_wsgi_cmd_id_MODPY_WSGI_APPLICATION_GROUP => {
                        d.application_group = Some(one("a group name")?)
                    }
                    sys::modpy_wsgi_cmd_id_MODPY_WSGI_PROCESS_GROUP => {
                        d.process_group = Some(one("a group name")?)
                    }
                    sys::modpy_wsgi_cmd_id_MODPY_WSGI_CALLABLE_OBJECT => {
                        d.callable_object = Some(one("a name")?)
                    }
                    sys::modpy_wsgi_cmd_id_MODPY_WSGI_SCRIPT_RELOADING => {
                        d.script_reloading = Some(flag()?)
                    }
                    sys::modpy_wsgi_cmd_id_MODPY_WSGI_PASS_AUTHORIZATION => {
                        d.pass_authorization = Some(flag()?)
                    }
                    sys::modpy_wsgi_cmd_id_MODPY_WSGI_CHUNKED_REQUEST => {
                        d.chunked_request = Some(flag()?)
                    }
                    sys::modpy_wsgi_cmd_id_MODPY_WSGI_ERROR_OVERRIDE => {
                        d.error_override = Some(flag()?)
                    }
                    sys::modpy_wsgi_cmd_id_MODPY_WSGI_TRUSTED_PROXIES => {
                        let v = words()?;
                        for p in &v {
                            crate::wsgi::proxy::Subnet::parse(p)?;
                        }
                        d.trusted_proxies = Some(v)
                    }
                    sys::modpy_wsgi_cmd_id_MODPY_WSGI_TRUSTED_PROXY_HEADERS => {
                        d.trusted_proxy_headers = Some(words()?)
                    }
                    sys::modpy_wsgi_cmd_id_MODPY_WSGI_ACCESS_SCRIPT => {
                        d.access_script = Some(words()?[0].clone())
                    }
                    sys::modpy_wsgi_cmd_id_MODPY_WSGI_AUTH_USER_SCRIPT => {
                        d.auth_user_script = Some(words()?[0].clone())
                    }
                    sys::modpy_wsgi_cmd_id_MODPY_WSGI_AUTH_GROUP_SCRIPT => {
                        d.auth_group_script = Some(words()?[0].clone())
                    }
                    _ => return Err("internal error: unknown directive id".into()),
                }
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => std::ptr::null(),
        // SAFETY: cmd is valid for the duration of this call.
        Err(e) => unsafe { cmd_error(cmd, &info.name, &e) },
    }
}

//! Directive handlers of the request-phase directives (`PythonAccessHandler` ... ) and of
//! `PythonAuthnProvider` / `PythonAuthzProvider` (bindings/shim.c, ids 400+). Parent only,
//! no Python: provider registration records names (src/apache/provider.rs).

use super::config::{arg, cmd_error, cmd_info};
use crate::auth::ProviderSpec;
use crate::config::{self, DirConfig};
use crate::phase::Phase;
use crate::sys;
use std::ffi::c_void;
use std::os::raw::c_char;

fn phase_of(id: u32) -> Option<Phase> {
    Some(match id {
        sys::modpy_phase_cmd_id_MODPY_CMD_POST_READ_REQUEST_HANDLER => Phase::PostReadRequest,
        sys::modpy_phase_cmd_id_MODPY_CMD_TRANS_HANDLER => Phase::Trans,
        sys::modpy_phase_cmd_id_MODPY_CMD_HEADER_PARSER_HANDLER => Phase::HeaderParser,
        sys::modpy_phase_cmd_id_MODPY_CMD_INIT_HANDLER => Phase::Init,
        sys::modpy_phase_cmd_id_MODPY_CMD_ACCESS_HANDLER => Phase::Access,
        sys::modpy_phase_cmd_id_MODPY_CMD_AUTHEN_HANDLER => Phase::Authen,
        sys::modpy_phase_cmd_id_MODPY_CMD_AUTHZ_HANDLER => Phase::Authz,
        sys::modpy_phase_cmd_id_MODPY_CMD_TYPE_HANDLER => Phase::Type,
        sys::modpy_phase_cmd_id_MODPY_CMD_FIXUP_HANDLER => Phase::Fixup,
        sys::modpy_phase_cmd_id_MODPY_CMD_LOG_HANDLER => Phase::Log,
        sys::modpy_phase_cmd_id_MODPY_CMD_CLEANUP_HANDLER => Phase::Cleanup,
        _ => return None,
    })
}

/// `Python<Phase>Handler module[::function] ... [| .ext ...]`
///
/// # Safety
/// Called by Apache only (command table in bindings/shim.c), while parsing a directive.
#[no_mangle]
pub unsafe extern "C" fn modpy_cmd_phase_handler(
    cmd: *mut sys::cmd_parms,
    mconfig: *mut c_void,
    args: *const c_char,
) -> *const c_char {
    // SAFETY: cmd is the cmd_parms Apache passed.
    if let Some(err) = unsafe { super::config::embedded_only(cmd, &cmd_info(cmd).name) } {
        return err;
    }
    // SAFETY: Apache passes a valid cmd_parms and, for these directives (OR_ALL, or RSRC_CONF
    // where mconfig is the server's default directory config), our DirConfig.
    let info = unsafe { cmd_info(cmd) };
    // SAFETY: see above; Apache gives one directive at a time exclusive use of it.
    let dc = unsafe { &mut *(mconfig as *mut DirConfig) };
    let args = arg(args);
    let result = match phase_of(info.id) {
        Some(phase) => config::parse_handler_args(args.trim(), info.directory.as_deref())
            .map(|entries| dc.phases.append(phase, entries)),
        None => Err("internal error: unknown directive id".into()),
    };
    match result {
        Ok(()) => std::ptr::null(),
        // SAFETY: cmd is valid for the duration of this call.
        Err(e) => unsafe { cmd_error(cmd, &info.name, &e) },
    }
}

/// `PythonAuthnProvider NAME module[::function] [module::function]` and
/// `PythonAuthzProvider NAME module[::function]` (server config).
///
/// # Safety
/// Called by Apache only (command table in bindings/shim.c), while parsing a directive.
#[no_mangle]
pub unsafe extern "C" fn modpy_cmd_auth_provider(
    cmd: *mut sys::cmd_parms,
    _mconfig: *mut c_void,
    a1: *const c_char,
    a2: *const c_char,
    a3: *const c_char,
) -> *const c_char {
    // SAFETY: cmd is the cmd_parms Apache passed.
    if let Some(err) = unsafe { super::config::embedded_only(cmd, &cmd_info(cmd).name) } {
        return err;
    }
    // SAFETY: as in modpy_cmd_phase_handler.
    let info = unsafe { cmd_info(cmd) };
    let (name, handler) = (arg(a1), arg(a2));
    let third = (!a3.is_null()).then(|| arg(a3));
    let spec = match info.id {
        sys::modpy_phase_cmd_id_MODPY_CMD_AUTHN_PROVIDER => {
            ProviderSpec::parse_authn(&name, &handler, third.as_deref())
        }
        sys::modpy_phase_cmd_id_MODPY_CMD_AUTHZ_PROVIDER => match third {
            Some(t) => Err(format!(
                "takes two arguments, NAME and module[::function] (unexpected '{t}')"
            )),
            None => ProviderSpec::parse_authz(&name, &handler),
        },
        _ => Err("internal error: unknown directive id".into()),
    };
    // SAFETY: cmd->pool is the configuration pool for a RSRC_CONF directive.
    let result = spec.and_then(|s| unsafe { super::provider::register((*cmd).pool, s) });
    match result {
        Ok(()) => std::ptr::null(),
        // SAFETY: cmd is valid for the duration of this call.
        Err(e) => unsafe { cmd_error(cmd, &info.name, &e) },
    }
}

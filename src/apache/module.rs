//! The `module` struct Apache's LoadModule looks up (`py_module`), filled in as
//! STANDARD20_MODULE_STUFF would, and per-module config vector access.

use super::config;
use crate::sys;
use std::ffi::c_void;
use std::ptr::{addr_of, addr_of_mut, null_mut};

/// `LoadModule py_module .../libmod_py.so` resolves this symbol. Apache writes module_index
/// and next into it, hence `static mut` (exported unmangled, see DESIGN.md pitfalls).
#[no_mangle]
pub static mut py_module: sys::module = sys::module {
    version: sys::MODULE_MAGIC_NUMBER_MAJOR as i32,
    minor_version: sys::MODULE_MAGIC_NUMBER_MINOR as i32,
    module_index: -1,
    name: c"mod_py.c".as_ptr(),
    dynamic_load_handle: null_mut(),
    next: null_mut(),
    magic: sys::MODULE_MAGIC_COOKIE as u64,
    rewrite_args: None,
    create_dir_config: Some(config::create_dir_config),
    merge_dir_config: Some(config::merge_dir_config),
    create_server_config: Some(config::create_server_config),
    merge_server_config: Some(config::merge_server_config),
    // Only the address of the C table is taken; Apache reads it, nobody writes it.
    cmds: addr_of!(sys::modpy_cmds) as *const sys::command_rec,
    register_hooks: Some(register_hooks),
    flags: 0,
};

unsafe extern "C" fn register_hooks(pool: *mut sys::apr_pool_t) {
    crate::register_hooks(pool);
    // SAFETY: `pool` is the configuration pool Apache passes to register_hooks.
    unsafe { super::provider::register_wsgi_providers(pool) };
}

pub fn module_ptr() -> *const sys::module {
    addr_of!(py_module)
}

pub fn module_index() -> i32 {
    // SAFETY: module_index is written once by Apache when the module is loaded, before any
    // hook or directive runs.
    unsafe { (*addr_of_mut!(py_module)).module_index }
}

/// ap_get_module_config(cv, &py_module).
///
/// # Safety
/// `cv` must be a valid config vector; the result is whatever mod_py stored there.
pub unsafe fn get_module_config(cv: *const sys::ap_conf_vector_t) -> *mut c_void {
    // SAFETY: per the contract; the shim indexes by module_index.
    unsafe { sys::modpy_get_module_config(cv, module_ptr()) }
}

/// ap_set_module_config(cv, &py_module, val).
///
/// # Safety
/// `cv` must be a valid config vector.
pub unsafe fn set_module_config(cv: *mut sys::ap_conf_vector_t, val: *mut c_void) {
    // SAFETY: per the contract.
    unsafe { sys::modpy_set_module_config(cv, module_ptr(), val) }
}

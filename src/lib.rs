//! mod_py: an Apache httpd module that runs Python.
//!
//! Layers (DESIGN.md), each calling only the one below:
//! `python` (pyo3 objects, handler dispatch) -> `apache` (safe httpd/APR) -> `sys` (bindgen).
//! `config` is pure data shared by both.

#[path = "../bindings/mod.rs"]
pub mod sys;

pub mod apache;
pub mod config;
pub mod phase;
// ---- auth providers (issue 4) ----
pub mod auth;
pub mod daemon;
#[cfg(feature = "python")]
pub mod python;
pub mod routing;
pub mod wsgi;

/// Called by Apache once per module load (every start and restart), in the parent.
/// Registers hooks only: no Python, no threads, nothing that outlives the config pool.
fn register_hooks(_pool: *mut sys::apr_pool_t) {
    routing::register_hooks();
    daemon::register_hooks();
    #[cfg(feature = "python")]
    python::register_hooks();
}

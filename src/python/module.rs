//! `_modpy`, the built-in module behind `modpy.apache`: the classes, the constants derived
//! from the C headers, SERVER_RETURN and the log entry point used by Python `logging`.

use super::connection::Connection;
use super::request::Request;
use super::server::Server;
use super::table::Table;
use crate::apache::log;
use crate::config::DirConfig;
use pyo3::prelude::*;
use pyo3::types::PyDict;

include!(concat!(env!("OUT_DIR"), "/constants.rs"));

pyo3::create_exception!(
    modpy.apache,
    SERVER_RETURN,
    pyo3::exceptions::PyException,
    "raise SERVER_RETURN(status) ends a handler with that status (mod_python)."
);

/// The exception a body read raises for an HTTP status (e.g. 413 or 400 from Apache).
pub fn server_return(_py: Python<'_>, status: i32) -> PyErr {
    SERVER_RETURN::new_err(status)
}

/// Logs `message` at Apache `level`: against the request being served on this thread if
/// there is one (so the line carries its client and log id), else the main server.
#[pyfunction]
#[pyo3(signature = (level, message))]
fn log_error(level: i32, message: &str) {
    super::dispatch::log_in_context(level, message);
}

/// The request this thread is serving, if any (mod_python.apache.interpreter needs it).
#[pyfunction]
fn current_request(py: Python<'_>) -> PyResult<Option<Py<Request>>> {
    super::dispatch::current_request()
        .map(|r| Request::of(py, &r))
        .transpose()
}

/// The main server_rec of this child.
#[pyfunction]
fn main_server() -> Option<Server> {
    super::main_server().map(Server::new)
}

/// ap_mpm_query(code): an AP_MPMQ_* constant in, its value out.
#[pyfunction]
fn mpm_query(code: i32) -> PyResult<i32> {
    crate::apache::hooks::mpm_query(code).ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err(format!("ap_mpm_query({code}) failed"))
    })
}

/// ap_server_root: the ServerRoot directory (mod_python's apache.server_root()).
#[pyfunction]
fn server_root() -> String {
    crate::apache::server::server_root()
}

/// ap_exists_config_define: whether httpd was started with `-D name`.
#[pyfunction]
fn exists_config_define(name: &str) -> bool {
    crate::apache::server::exists_config_define(name)
}

#[pymodule]
pub fn _modpy(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Request>()?;
    m.add_class::<Table>()?;
    m.add_class::<Connection>()?;
    m.add_class::<Server>()?;
    m.add_class::<super::request::HandlerList>()?;
    m.add("SERVER_RETURN", m.py().get_type::<SERVER_RETURN>())?;
    for (name, value) in CONSTANTS {
        m.add(*name, *value)?;
    }
    m.add("version", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(log_error, m)?)?;
    m.add_function(wrap_pyfunction!(main_server, m)?)?;
    m.add_function(wrap_pyfunction!(current_request, m)?)?;
    m.add_function(wrap_pyfunction!(mpm_query, m)?)?;
    m.add_function(wrap_pyfunction!(server_root, m)?)?;
    m.add_function(wrap_pyfunction!(exists_config_define, m)?)?;
    m.add("APLOG_DEFAULT_ERR", log::APLOG_ERR)?;
    super::wsgi::add_to_module(m)?;
    super::add_filter_classes(m)?; // issue 4: Filter, Brigade, Bucket, APRError, AP_MODE_*...
    Ok(())
}

/// req.get_config(): the directives in effect, by their names.
pub fn config_dict<'py>(py: Python<'py>, c: &DirConfig) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("PythonDebug", if c.debug() { "1" } else { "0" })?;
    d.set_item("PythonAutoReload", if c.autoreload() { "1" } else { "0" })?;
    if let Some(p) = &c.python_path {
        d.set_item("PythonPath", &**p)?;
    }
    if let Some(i) = &c.interpreter {
        d.set_item("PythonInterpreter", i)?;
    }
    if let Some(m) = &c.handler_module {
        d.set_item("PythonHandlerModule", m)?;
    }
    let handlers: Vec<String> = c
        .content_handlers()
        .iter()
        .map(|h| h.handler.clone())
        .collect();
    if !handlers.is_empty() {
        d.set_item("PythonHandler", handlers.join(" "))?;
    }
    // ---- the other phases' directives (issue 4) ----
    for phase in crate::phase::Phase::ALL {
        if let Some(list) = c.phases.get(phase) {
            let names: Vec<&str> = list.iter().map(|h| h.handler.as_str()).collect();
            d.set_item(phase.directive(), names.join(" "))?;
        }
    }
    Ok(d)
}

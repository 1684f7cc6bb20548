//! `modpy._native`: the hot path of a mod_py daemon worker (pylib/modpy/daemon.py) in Rust,
//! built for CPython's stable ABI (abi3, 3.9+) so that one build loads in every daemon
//! group's Python. The wire protocol is the Apache side's own code (src/daemon/protocol.rs),
//! the environ's strings come from the same cache as embedded mode's (src/python/strcache.rs),
//! and the response checks are embedded mode's (src/wsgi/response.rs). Where it does not load (PyPy, an old CPython, not built)
//! daemon.py runs its pure-Python loop instead.

use pyo3::prelude::*;
use pyo3::types::PyType;

mod conn;
mod sys;
mod worker;
mod wsgi;

#[allow(dead_code)] // the client side's half (hello, parse_start...) is mod_py.so's
#[path = "../../src/daemon/protocol.rs"]
mod protocol;

#[path = "../../src/python/strcache.rs"]
mod strcache;

#[allow(dead_code)] // Status's fields are embedded mode's
#[path = "../../src/wsgi/response.rs"]
mod response;

/// Logging through daemon.py's logger (set by `setup`), from threads that may not hold the GIL.
mod log {
    use pyo3::prelude::*;
    use std::sync::OnceLock;

    pub static LOG: OnceLock<Py<PyAny>> = OnceLock::new();
    const ERROR: i32 = 40;

    fn emit(msg: &str, exc: Option<PyErr>) {
        Python::attach(|py| {
            let exc = exc.map(|e| e.into_value(py));
            match LOG.get() {
                Some(log) => {
                    if let Err(e) = log.call1(py, (ERROR, msg, exc)) {
                        e.print(py);
                    }
                }
                None => eprintln!("modpy._native: {msg}"),
            }
        });
    }

    pub fn error(msg: &str) {
        emit(msg, None);
    }

    /// `msg`, then the exception's traceback.
    pub fn exception(msg: &str, e: PyErr) {
        emit(msg, Some(e));
    }
}

/// Hands over what the module raises and logs with: the exception classes for a malformed
/// frame and for an application that breaks PEP 3333; `log(level, message, exception_or_None)`.
#[pyfunction]
fn setup(protocol_error: Bound<'_, PyType>, wsgi_error: Bound<'_, PyType>, log: Py<PyAny>) {
    let _ = conn::PROTOCOL_ERROR.set(protocol_error.unbind());
    let _ = wsgi::WSGI_ERROR.set(wsgi_error.unbind());
    let _ = log::LOG.set(log);
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(setup, m)?)?;
    m.add_class::<conn::Conn>()?;
    m.add_class::<worker::Loop>()?;
    m.add_class::<wsgi::Response>()?;
    Ok(())
}

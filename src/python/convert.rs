//! Conversions between Apache's bytes and Python objects, and Rust errors to Python ones.

use crate::apache::request::Error as ReqError;
use crate::apache::Gone;
use pyo3::exceptions::{PyIOError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString};
use std::borrow::Cow;

/// Apache strings are bytes: UTF-8 when they are valid UTF-8, else latin-1 (as PEP 3333 does
/// for headers), so no byte is ever lost.
pub fn py_str<'py>(py: Python<'py>, b: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(b) {
        Ok(s) => PyString::new(py, s),
        Err(_) => {
            let s: String = b.iter().map(|&c| c as char).collect();
            PyString::new(py, &s)
        }
    }
}

pub fn py_opt_str<'py>(py: Python<'py>, b: Option<&[u8]>) -> Option<Bound<'py, PyString>> {
    b.map(|b| py_str(py, b))
}

/// str (as UTF-8), bytes or bytearray, for values going into Apache.
pub fn arg_bytes<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(s) = obj.cast::<PyString>() {
        Ok(Cow::Borrowed(s.to_str()?.as_bytes()))
    } else if let Ok(b) = obj.cast::<PyBytes>() {
        Ok(Cow::Borrowed(b.as_bytes()))
    } else if let Ok(b) = obj.cast::<PyByteArray>() {
        Ok(Cow::Owned(b.to_vec()))
    } else {
        Err(PyTypeError::new_err(format!(
            "expected str or bytes, got {}",
            obj.get_type().name()?
        )))
    }
}

pub fn gone(g: Gone) -> PyErr {
    PyRuntimeError::new_err(g.to_string())
}

pub fn req_err(py: Python<'_>, e: ReqError) -> PyErr {
    match e {
        ReqError::Gone(g) => gone(g),
        ReqError::Io(io) => PyIOError::new_err(io.to_string()),
        ReqError::Body(why) => PyIOError::new_err(why),
        ReqError::Http(status) => super::module::server_return(py, status),
    }
}

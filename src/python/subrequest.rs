//! The bodies of Request.add_handler, add_output_filter/add_input_filter and the subrequest
//! methods (lookup_uri, lookup_file, run, destroy_sub_req): src/apache/subrequest.rs and
//! src/apache/phase_state.rs do the Apache side.

use super::convert::gone;
use super::request::Request;
use crate::apache::{self, subrequest::SubError};
use crate::config::{check_handler_name, HandlerEntry};
use crate::phase::Phase;
use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

pub fn add_handler(
    req: &apache::Request,
    htype: &str,
    handler: &str,
    dir: Option<&str>,
) -> PyResult<()> {
    let phase = Phase::from_directive(htype).ok_or_else(|| {
        PyIndexError::new_err(format!(
            "Invalid phase: {htype} (expected a Python*Handler directive name such as \
             PythonFixupHandler)"
        ))
    })?;
    let handler = handler.trim();
    check_handler_name(handler).map_err(PyValueError::new_err)?;
    let r = req.get().map_err(gone)?;
    // No directory given: the one of the handler running now (mod_python).
    let directory = match dir {
        Some(d) if d.ends_with('/') => Some(d.to_string()),
        Some(d) => Some(format!("{d}/")),
        None => r.current_handler().and_then(|(_, e)| e.directory),
    };
    r.add_handler(
        phase,
        HandlerEntry {
            handler: handler.to_string(),
            directory,
            ..Default::default()
        },
    );
    if phase == Phase::Cleanup {
        drop(r);
        super::phases::schedule_cleanup(req);
    }
    Ok(())
}

pub fn add_filter(req: &apache::Request, name: &[u8], output: bool) -> PyResult<()> {
    let r = req.get().map_err(gone)?;
    // A filter this request registered comes first (mod_python looks there first too).
    if let Some(spec) = r.registered_filter(name, !output) {
        return apache::filter::add_request_filter(&r, spec).map_err(PyRuntimeError::new_err);
    }
    let added = if output {
        r.add_output_filter(name)
    } else {
        r.add_input_filter(name)
    };
    if added {
        Ok(())
    } else {
        Err(PyValueError::new_err(format!(
            "no {} filter named '{}' is registered",
            if output { "output" } else { "input" },
            String::from_utf8_lossy(name)
        )))
    }
}

/// mod_python's req.register_output_filter / register_input_filter(name, handler, dir=None):
/// a Python filter for this request only, added with add_output_filter(name).
pub fn register_filter(
    req: &apache::Request,
    name: &str,
    handler: &str,
    dir: Option<&str>,
    input: bool,
) -> PyResult<()> {
    let mut spec = crate::config::filters::parse_filter_args(input, handler.trim(), name, None)
        .map_err(PyValueError::new_err)?;
    spec.directory = dir.map(str::to_string);
    req.get().map_err(gone)?.register_filter(spec);
    Ok(())
}

fn sub_err(e: SubError) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

pub fn lookup(
    py: Python<'_>,
    req: &apache::Request,
    target: &[u8],
    file: bool,
) -> PyResult<Py<Request>> {
    // The lookup runs other modules' hooks (and Python*Handlers of the subrequest) without
    // I/O on the client connection; the GIL is released all the same for their Python code.
    let sub = py
        .detach(|| {
            req.get().map(|r| {
                if file {
                    r.sub_req_lookup_file(target)
                } else {
                    r.sub_req_lookup_uri(target)
                }
            })
        })
        .map_err(gone)?;
    let sub = sub
        .map_err(PyValueError::new_err)?
        .ok_or_else(|| PyRuntimeError::new_err("Apache could not create the subrequest"))?;
    Request::of(py, &sub)
}

pub fn run(py: Python<'_>, req: &apache::Request) -> PyResult<i32> {
    py.detach(|| req.run_sub_req()).map_err(sub_err)
}

pub fn destroy(py: Python<'_>, req: &apache::Request) -> PyResult<()> {
    py.detach(|| req.destroy_sub_req()).map_err(sub_err)
}

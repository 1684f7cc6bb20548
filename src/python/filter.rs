//! modpy.apache.Filter (mod_python's filter object, plus the brigade API) and the dispatch of
//! `PythonInputFilter` / `PythonOutputFilter` functions and `PythonConnectionHandler`.
//!
//! One Filter object per filter instance (per request for request filters, per connection
//! for connection filters); the function is called once per brigade Apache hands the filter
//! (again with the rest, if it returns without reading everything), with the GIL held only
//! while Python runs: every pass to the next filter and every read from the previous one
//! releases it.

use super::brigade::{bb_err, Brigade};
use super::connection::Connection as PyConnection;
use super::convert::{arg_bytes, py_str};
use super::dispatch::{self, format_traceback};
use super::request::Request as PyRequest;
use crate::apache::filter::{
    self as afilter, ConnectionCall, Dispatch, FilterError, FilterHandle, Outcome, ReadEv,
};
use crate::apache::request::StrField;
use crate::apache::{self, log};
use crate::config::filters::connection_handler_parts;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyInt};
use std::sync::Mutex;

pyo3::create_exception!(
    modpy.apache,
    APRError,
    pyo3::exceptions::PyOSError,
    "An Apache I/O call made by a filter or connection method failed; errno is the APR status \
     (the client went away, a read timed out...)."
);

pub fn aprerror(status: i32, msg: &str) -> PyErr {
    APRError::new_err((status, msg.to_string()))
}

fn ferr(e: FilterError) -> PyErr {
    match e {
        FilterError::Closed => PyValueError::new_err("I/O operation on closed filter"),
        FilterError::Io(s, _) => aprerror(s, &e.to_string()),
        FilterError::Bb(b) => bb_err(b),
        _ => PyRuntimeError::new_err(e.to_string()),
    }
}

fn gone(g: apache::Gone) -> PyErr {
    PyRuntimeError::new_err(g.to_string())
}

/// mod_python's filter object.
/// No instance dict (as mod_python's filter object): state goes in `ctx`, which the garbage
/// collector sees, so cycles through it are collected.
#[pyclass(module = "modpy.apache", name = "Filter", frozen, weakref)]
pub struct Filter {
    h: FilterHandle,
    ctx: Mutex<Py<PyAny>>,
}

impl Filter {
    pub fn handle(&self) -> &FilterHandle {
        &self.h
    }

    fn read_impl(&self, py: Python<'_>, len: i64, line: bool) -> PyResult<Option<Py<PyBytes>>> {
        if len == 0 {
            return Ok(Some(PyBytes::new(py, b"").unbind()));
        }
        let max = if len < 0 {
            afilter::READ_CHUNK
        } else {
            len as usize
        };
        let input = self.h.is_input().map_err(gone)?;
        loop {
            if self.h.head_needs_io() {
                // A pipe or socket bucket: its read waits, without the GIL.
                let h = &self.h;
                py.detach(|| h.prefetch()).map_err(ferr)?;
            }
            let ev = self
                .h
                .read(max, line, |n, fill| {
                    PyBytes::new_with(py, n, |buf| {
                        fill(buf);
                        Ok(())
                    })
                })
                .map_err(ferr)?;
            match ev {
                ReadEv::Data(b) => return Ok(Some(b?.unbind())),
                ReadEv::Eos => return Ok(None),
                ReadEv::Flush => {
                    let h = &self.h;
                    py.detach(|| h.pass_out(false, false)).map_err(ferr)?;
                }
                ReadEv::Empty if !input => return Ok(Some(PyBytes::new(py, b"").unbind())),
                ReadEv::Empty => {
                    let h = &self.h;
                    let got = py.detach(|| h.fill(max as i64)).map_err(ferr)?;
                    if !got {
                        // Nothing now (a non-blocking read).
                        return Ok(Some(PyBytes::new(py, b"").unbind()));
                    }
                }
            }
        }
    }
}

#[pymethods]
impl Filter {
    /// Up to `len` bytes of input (len < 0: the next chunk, at most 256 KiB); b"" when this
    /// brigade has no more data (the function is called again with the next one); None at
    /// the end of the stream.
    #[pyo3(signature = (len=-1))]
    fn read(&self, py: Python<'_>, len: i64) -> PyResult<Option<Py<PyBytes>>> {
        self.read_impl(py, len, false)
    }

    /// Like read(), stopping after the first b"\n" (a line longer than the chunk, or one
    /// cut by the end of the brigade, comes in parts).
    #[pyo3(signature = (len=-1))]
    fn readline(&self, py: Python<'_>, len: i64) -> PyResult<Option<Py<PyBytes>>> {
        self.read_impl(py, len, true)
    }

    /// Appends data to the filter's output: small pieces are copied into a heap bucket and
    /// passed on once 256 KiB have gathered, on flush()/close() and when the function
    /// returns; a piece of 64 KiB or more is passed on at once, without a copy.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = arg_bytes(data)?;
        if bytes.len() >= afilter::WRITE_THROUGH && !self.h.is_input().map_err(gone)? {
            // Big writes go down at once from Python's buffer (held by `data` meanwhile).
            let h = &self.h;
            let b: &[u8] = &bytes;
            return py.detach(|| h.write_through(b)).map_err(ferr);
        }
        let pass = self.h.write(&bytes).map_err(ferr)?;
        if pass {
            let h = &self.h;
            py.detach(|| h.pass_out(false, false)).map_err(ferr)?;
        }
        Ok(())
    }

    /// Passes what was written on, followed by a FLUSH bucket (output filters).
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        if self.h.is_input().map_err(gone)? {
            return Ok(());
        }
        let h = &self.h;
        py.detach(|| h.pass_out(true, false)).map_err(ferr)
    }

    /// Ends the stream: what was written, then EOS. Later writes raise ValueError.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.h.closed().map_err(gone)? {
            return Ok(());
        }
        let h = &self.h;
        py.detach(|| h.pass_out(false, true)).map_err(ferr)
    }

    /// Passes the rest of the input on untouched (no copy), after what was written.
    fn pass_on(&self, py: Python<'_>) -> PyResult<()> {
        let h = &self.h;
        py.detach(|| h.pass_on()).map_err(ferr)
    }

    /// From now on data passes through this filter without calling Python.
    fn disable(&self) -> PyResult<()> {
        self.h.disable().map_err(ferr)
    }

    /// The filter's name as configured (PythonOutputFilter ... NAME).
    #[getter]
    fn name(&self) -> PyResult<String> {
        Ok(self.h.spec().map_err(gone)?.name)
    }

    /// `module::function` of the filter.
    #[getter]
    fn handler(&self) -> PyResult<String> {
        Ok(self.h.spec().map_err(gone)?.handler)
    }

    /// mod_python's filter.dir: always None (filters are configured per server).
    #[getter]
    fn dir(&self) -> Option<String> {
        None
    }

    #[getter]
    fn is_input(&self) -> PyResult<bool> {
        self.h.is_input().map_err(gone)
    }

    #[getter]
    fn closed(&self) -> PyResult<bool> {
        self.h.closed().map_err(gone)
    }

    /// The request (None for connection filters).
    #[getter]
    fn req(&self, py: Python<'_>) -> PyResult<Option<Py<PyRequest>>> {
        match self.h.request().map_err(gone)? {
            Some(r) => Ok(Some(PyRequest::of(py, &r)?)),
            None => Ok(None),
        }
    }

    #[getter]
    fn connection(&self) -> PyResult<PyConnection> {
        Ok(PyConnection::new(self.h.connection().map_err(gone)?))
    }

    /// Per-request (per-connection for connection filters) state, as a C filter's f->ctx:
    /// None until set; kept across the calls of this filter.
    #[getter]
    fn ctx(&self, py: Python<'_>) -> Py<PyAny> {
        self.ctx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone_ref(py)
    }

    #[setter]
    fn set_ctx(&self, v: Py<PyAny>) {
        *self.ctx.lock().unwrap_or_else(|e| e.into_inner()) = v;
    }

    // ---- the brigade API ----

    /// The brigade of this call: the data passed in (output filters) or the brigade to fill
    /// (input filters). Using it means the function handles the call as a C filter does.
    #[getter(brigade)]
    fn call_brigade(&self) -> PyResult<Brigade> {
        Ok(Brigade::wrap(self.h.brigade().map_err(ferr)?))
    }

    /// Input filters: the mode asked for (apache.AP_MODE_*).
    #[getter]
    fn mode(&self) -> PyResult<i32> {
        Ok(self.h.call_args().map_err(ferr)?.0)
    }

    /// Input filters: apache.APR_BLOCK_READ or APR_NONBLOCK_READ.
    #[getter]
    fn block(&self) -> PyResult<i32> {
        let blocking = self.h.call_args().map_err(ferr)?.1;
        Ok(if blocking {
            crate::sys::apr_read_type_e_APR_BLOCK_READ as i32
        } else {
            crate::sys::apr_read_type_e_APR_NONBLOCK_READ as i32
        })
    }

    /// Input filters: how many bytes were asked for.
    #[getter]
    fn readbytes(&self) -> PyResult<i64> {
        Ok(self.h.call_args().map_err(ferr)?.2)
    }

    /// ap_get_brigade(f->next, ...) into a new Brigade (input filters). Raises APRError on
    /// failure; a non-blocking read with nothing available gives an empty brigade.
    #[pyo3(signature = (mode=0, block=0, readbytes=8192))]
    fn get_brigade(
        &self,
        py: Python<'_>,
        mode: i32,
        block: i32,
        readbytes: i64,
    ) -> PyResult<Brigade> {
        let h = &self.h;
        let blocking = block == crate::sys::apr_read_type_e_APR_BLOCK_READ as i32;
        let b = py
            .detach(|| h.get_brigade(mode, blocking, readbytes))
            .map_err(ferr)?;
        Ok(Brigade::wrap(b))
    }

    /// ap_pass_brigade(f->next, bb) (output filters); bb is empty afterwards. Raises
    /// APRError on failure (e.g. the client went away).
    fn pass_brigade(&self, py: Python<'_>, bb: &Brigade) -> PyResult<()> {
        let h = &self.h;
        let inner = &bb.inner;
        py.detach(|| h.pass_brigade(inner)).map_err(ferr)
    }

    /// GC support: ctx may refer back to the filter.
    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        if let Ok(ctx) = self.ctx.try_lock() {
            visit.call(&*ctx)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        if let Ok(mut ctx) = self.ctx.try_lock() {
            *ctx = Python::attach(|py| py.None());
        }
    }

    fn __repr__(&self) -> String {
        match self.h.spec() {
            Ok(s) => format!(
                "<modpy.apache.Filter {} {} ({})>",
                if s.input { "input" } else { "output" },
                s.name,
                s.handler
            ),
            Err(_) => "<modpy.apache.Filter (ended)>".into(),
        }
    }
}

// =====================================================================================
// Dispatch
// =====================================================================================

/// What the filter instance keeps on the Python side.
struct PyState {
    obj: Py<Filter>,
    func: Py<PyAny>,
}

fn python_config(
    h: &FilterHandle,
    req: Option<&apache::Request>,
) -> (Option<std::sync::Arc<str>>, bool) {
    let from_req = req.and_then(|r| {
        r.get().ok().map(|r| {
            let c = r.per_dir_config();
            (c.python_path.clone(), c.autoreload())
        })
    });
    from_req.unwrap_or_else(|| match h.server() {
        Ok(s) => {
            let c = s.dir_config();
            (c.python_path.clone(), c.autoreload())
        }
        Err(_) => (None, true),
    })
}

fn objects(
    py: Python<'_>,
    h: &FilterHandle,
    req: Option<&apache::Request>,
) -> PyResult<(Py<Filter>, Py<PyAny>)> {
    let ext = h.ext().map_err(gone)?;
    {
        let slot = ext.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slot.as_ref().and_then(|b| b.downcast_ref::<PyState>()) {
            return Ok((s.obj.clone_ref(py), s.func.clone_ref(py)));
        }
    }
    let spec = h.spec().map_err(gone)?;
    let (path, autoreload) = python_config(h, req);
    if let Some(expr) = &path {
        dispatch::apply_python_path(py, expr)?;
    }
    let (module, function) = spec.module_and_function();
    let m = dispatch::import_handler_module(py, module, spec.directory.as_deref(), autoreload)?;
    let func = dispatch::resolve(&m, function)?.unbind();
    let obj = Py::new(
        py,
        Filter {
            h: h.clone(),
            ctx: Mutex::new(py.None()),
        },
    )?;
    *ext.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(PyState {
        obj: obj.clone_ref(py),
        func: func.clone_ref(py),
    }));
    Ok((obj, func))
}

/// Logs a filter's failure: a header line and the traceback, each line with the request's
/// (or connection's) context.
fn report(py: Python<'_>, h: &FilterHandle, req: Option<&apache::Request>, err: &PyErr) {
    let tb = format_traceback(py, err);
    let what = h.describe();
    let log_line = |line: &str| match req.and_then(|r| r.get().ok()) {
        Some(r) => r.log_error(log::APLOG_ERR, 0, line),
        None => {
            if let Ok(c) = h.connection() {
                if let Ok(c) = c.get() {
                    c.log_error(log::APLOG_ERR, 0, line);
                }
            }
        }
    };
    let uri = req
        .and_then(|r| r.get().ok())
        .and_then(|r| {
            r.str_field(StrField::Uri)
                .map(|u| py_str(py, u).to_string())
        })
        .unwrap_or_default();
    if uri.is_empty() {
        log_line(&format!("mod_py: {what} failed:"));
    } else {
        log_line(&format!("mod_py: {what} failed for {uri}:"));
    }
    for line in tb.lines() {
        log_line(line);
    }
}

/// The filter function's result: None or an int status; anything else is an error.
fn classify(h: &FilterHandle, v: &Bound<'_, PyAny>) -> Result<Outcome, PyErr> {
    if v.is_none() {
        return Ok(Outcome::Ok);
    }
    if v.is_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>() {
        if let Ok(rc) = v.extract::<i32>() {
            return Ok(if rc == 0 {
                Outcome::Ok
            } else {
                Outcome::Status(rc)
            });
        }
    }
    Err(PyTypeError::new_err(format!(
        "{} returned {} ({}), not None or an int status",
        h.describe(),
        v.repr().map_or_else(|_| "?".into(), |r| r.to_string()),
        v.get_type()
            .name()
            .map_or_else(|_| "?".into(), |n| n.to_string()),
    )))
}

fn run_filter(h: &FilterHandle) -> Outcome {
    if !super::embed::is_initialized() {
        if let Ok(c) = h.connection() {
            if let Ok(c) = c.get() {
                c.log_error(
                    log::APLOG_ERR,
                    0,
                    "mod_py: Python is not running in this process",
                );
            }
        }
        return Outcome::Failed;
    }
    super::embed::prime_thread();
    Python::attach(|py| {
        let req = h.request().ok().flatten();
        let _serving = req.as_ref().map(dispatch::Serving::enter);
        let (obj, func) = match objects(py, h, req.as_ref()) {
            Ok(x) => x,
            Err(err) => {
                report(py, h, req.as_ref(), &err);
                return Outcome::Failed;
            }
        };
        match func.call1(py, (obj,)) {
            Ok(v) => match classify(h, v.bind(py)) {
                Ok(o) => o,
                Err(err) => {
                    report(py, h, req.as_ref(), &err);
                    Outcome::Failed
                }
            },
            Err(err) if err.is_instance_of::<APRError>(py) => {
                let status = err
                    .value(py)
                    .getattr("errno")
                    .and_then(|e| e.extract::<i32>())
                    .unwrap_or(afilter::APR_EGENERAL);
                let msg = format!("mod_py: {}: {}", h.describe(), err.value(py));
                match req.as_ref().and_then(|r| r.get().ok()) {
                    Some(r) => r.log_error(log::APLOG_INFO, status, &msg),
                    None => dispatch::log_in_context(log::APLOG_INFO, &msg),
                }
                Outcome::Io(if status == 0 {
                    afilter::APR_EGENERAL
                } else {
                    status
                })
            }
            Err(err) => {
                report(py, h, req.as_ref(), &err);
                Outcome::Failed
            }
        }
    })
}

fn run_connection(call: &ConnectionCall) -> i32 {
    let ok = crate::sys::OK as i32;
    if !super::embed::is_initialized() {
        return crate::sys::DECLINED;
    }
    super::embed::prime_thread();
    Python::attach(|py| {
        let log_conn = |level: i32, line: &str| {
            if let Ok(c) = call.connection.get() {
                c.log_error(level, 0, line);
            }
        };
        let config = call.server.dir_config();
        let result = (|| -> PyResult<Py<PyAny>> {
            if let Some(expr) = &config.python_path {
                dispatch::apply_python_path(py, expr)?;
            }
            let (module, function) = connection_handler_parts(&call.handler);
            let m = dispatch::import_handler_module(py, module, None, config.autoreload())?;
            let func = dispatch::resolve(&m, function)?;
            let conn = Py::new(py, PyConnection::new(call.connection.clone()))?;
            Ok(func.call1((conn,))?.unbind())
        })();
        let fail = |err: &PyErr| {
            log_conn(
                log::APLOG_ERR,
                &format!("mod_py: PythonConnectionHandler '{}' failed:", call.handler),
            );
            for line in format_traceback(py, err).lines() {
                log_conn(log::APLOG_ERR, line);
            }
            ok
        };
        match result {
            Ok(v) => {
                let v = v.bind(py);
                if v.is_none() {
                    return ok;
                }
                match v.extract::<i32>() {
                    Ok(rc) if !v.is_instance_of::<PyBool>() => rc,
                    _ => fail(&PyTypeError::new_err(format!(
                        "connection handler returned {} ({}), not apache.OK, DONE or DECLINED",
                        v.repr().map_or_else(|_| "?".into(), |r| r.to_string()),
                        v.get_type()
                            .name()
                            .map_or_else(|_| "?".into(), |n| n.to_string()),
                    ))),
                }
            }
            Err(err) if err.is_instance_of::<APRError>(py) => {
                log_conn(
                    log::APLOG_INFO,
                    &format!(
                        "mod_py: PythonConnectionHandler '{}': {}",
                        call.handler,
                        err.value(py)
                    ),
                );
                ok
            }
            Err(err) => fail(&err),
        }
    })
}

/// Filter and connection hooks (in the parent: Python-free; the Python side runs in children).
pub fn register_hooks() {
    afilter::set_dispatch(Dispatch {
        filter: run_filter,
        connection: run_connection,
    });
    afilter::hook_connection();
    afilter::register_request_filters();
}

/// The classes and constants of this part of modpy.apache.
pub fn add_to_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    use crate::sys;
    m.add_class::<Filter>()?;
    m.add_class::<Brigade>()?;
    m.add_class::<super::brigade::Bucket>()?;
    m.add("APRError", m.py().get_type::<APRError>())?;
    let consts: &[(&str, i64)] = &[
        (
            "AP_MODE_READBYTES",
            sys::ap_input_mode_t_AP_MODE_READBYTES as i64,
        ),
        (
            "AP_MODE_GETLINE",
            sys::ap_input_mode_t_AP_MODE_GETLINE as i64,
        ),
        (
            "AP_MODE_EATCRLF",
            sys::ap_input_mode_t_AP_MODE_EATCRLF as i64,
        ),
        (
            "AP_MODE_SPECULATIVE",
            sys::ap_input_mode_t_AP_MODE_SPECULATIVE as i64,
        ),
        (
            "AP_MODE_EXHAUSTIVE",
            sys::ap_input_mode_t_AP_MODE_EXHAUSTIVE as i64,
        ),
        ("AP_MODE_INIT", sys::ap_input_mode_t_AP_MODE_INIT as i64),
        ("APR_BLOCK_READ", sys::apr_read_type_e_APR_BLOCK_READ as i64),
        (
            "APR_NONBLOCK_READ",
            sys::apr_read_type_e_APR_NONBLOCK_READ as i64,
        ),
        ("APR_SUCCESS", afilter::APR_SUCCESS as i64),
        ("APR_EGENERAL", afilter::APR_EGENERAL as i64),
        ("APR_EOF", afilter::APR_EOF as i64),
        ("APR_EAGAIN", afilter::APR_EAGAIN as i64),
        ("AP_FILTER_ERROR", afilter::AP_FILTER_ERROR as i64),
        ("AP_NOBODY_READ", sys::AP_NOBODY_READ as i64),
        ("AP_NOBODY_WROTE", sys::AP_NOBODY_WROTE as i64),
        (
            "AP_FTYPE_RESOURCE",
            sys::ap_filter_type_AP_FTYPE_RESOURCE as i64,
        ),
        (
            "AP_FTYPE_CONTENT_SET",
            sys::ap_filter_type_AP_FTYPE_CONTENT_SET as i64,
        ),
        (
            "AP_FTYPE_PROTOCOL",
            sys::ap_filter_type_AP_FTYPE_PROTOCOL as i64,
        ),
        (
            "AP_FTYPE_TRANSCODE",
            sys::ap_filter_type_AP_FTYPE_TRANSCODE as i64,
        ),
        (
            "AP_FTYPE_CONNECTION",
            sys::ap_filter_type_AP_FTYPE_CONNECTION as i64,
        ),
    ];
    for (name, value) in consts {
        m.add(*name, *value)?;
    }
    Ok(())
}

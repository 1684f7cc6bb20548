//! The response half of the worker's WSGI layer: start_response, write() and the sending of
//! what the application returns, as daemon.py's `Response` does them (that one is the
//! fallback), with embedded mode's checks (src/wsgi/response.rs) and messages.

use crate::conn::Conn;
use crate::protocol::{Kind, MAX_CHUNK};
use crate::response;
use pyo3::exceptions::{PyException, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple, PyType};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// daemon.py's WSGIError: the application broke PEP 3333 (set by `setup`).
pub static WSGI_ERROR: OnceLock<Py<PyType>> = OnceLock::new();

fn wsgi_error(py: Python<'_>, msg: String) -> PyErr {
    match WSGI_ERROR.get() {
        Some(t) => PyErr::from_type(t.bind(py).clone(), msg),
        None => PyException::new_err(msg),
    }
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A str as Rust text; a lone surrogate (not UTF-8) becomes U+FFFD, which the checks then
/// refuse as not latin-1, as daemon.py's do.
fn text(s: &Bound<'_, PyString>) -> String {
    match s.to_cow() {
        Ok(t) => t.into_owned(),
        Err(_) => s.to_string_lossy().into_owned(),
    }
}

#[derive(Default)]
struct State {
    /// The status line and headers from start_response (None: not called yet).
    status: Option<String>,
    headers: Vec<(String, String)>,
    /// The application's Content-Length, if it gave one.
    length: Option<i64>,
    /// START is queued: headers can no longer change.
    sent: bool,
    /// The body is a list or tuple: it goes out in one write at END.
    batch: bool,
}

#[pyclass(frozen, module = "modpy._native")]
pub struct Response {
    conn: Py<Conn>,
    state: Mutex<State>,
}

impl Response {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write_bytes(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        self.send_start(py)?;
        let conn = self.conn.get();
        for chunk in data.chunks(MAX_CHUNK as usize) {
            conn.queue_frame(py, Kind::Data, chunk)?;
        }
        // A list body goes out in one write at END; anything else (a generator, write())
        // streams: each piece is sent as the app produces it.
        if !self.state().batch || conn.queued() > MAX_CHUNK as usize {
            conn.flush_frames(py)?;
        }
        Ok(())
    }
}

fn exact_bytes<'a, 'py>(v: &'a Bound<'py, PyAny>) -> Option<&'a Bound<'py, PyBytes>> {
    v.downcast_exact::<PyBytes>().ok()
}

#[pymethods]
impl Response {
    #[new]
    fn new(conn: Py<Conn>) -> Response {
        Response {
            conn,
            state: Mutex::new(State::default()),
        }
    }

    #[pyo3(signature = (status, response_headers, exc_info = None))]
    fn start_response<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        response_headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let this = slf.get();
        match exc_info.filter(|e| !e.is_none()) {
            Some(exc) => {
                if this.state().sent {
                    // Too late to change the response: re-raise the application's error.
                    let value = exc.get_item(1)?;
                    let value = value.call_method1("with_traceback", (exc.get_item(2)?,))?;
                    return Err(PyErr::from_value(value));
                }
            }
            None => {
                if this.state().status.is_some() {
                    return Err(wsgi_error(
                        py,
                        "start_response() called a second time without exc_info".into(),
                    ));
                }
            }
        }
        let Ok(status) = status.downcast_exact::<PyString>() else {
            return Err(wsgi_error(
                py,
                format!("status must be str, not {}", type_name(status)),
            ));
        };
        let status = text(status);
        response::parse_status(&status).map_err(|m| wsgi_error(py, m))?;
        let Ok(list) = response_headers.downcast_exact::<PyList>() else {
            return Err(wsgi_error(
                py,
                "response_headers must be a list of (name, value) tuples".into(),
            ));
        };
        let mut headers = Vec::with_capacity(list.len());
        let mut length = None;
        for h in list.iter() {
            let pair = h.downcast_exact::<PyTuple>().ok().filter(|t| t.len() == 2);
            let Some(pair) = pair else {
                return Err(wsgi_error(
                    py,
                    format!("response header {} is not a (name, value) tuple", h.repr()?),
                ));
            };
            let (name, value) = (pair.get_item(0)?, pair.get_item(1)?);
            let (Ok(name), Ok(value)) = (
                name.downcast_exact::<PyString>(),
                value.downcast_exact::<PyString>(),
            ) else {
                return Err(wsgi_error(
                    py,
                    format!("response header {} must be a pair of str", h.repr()?),
                ));
            };
            let (name, value) = (text(name), text(value));
            response::check_header(&name, &value).map_err(|m| wsgi_error(py, m))?;
            if name.eq_ignore_ascii_case("content-length") {
                match value.trim().parse::<i64>() {
                    Ok(n) => length = Some(n),
                    Err(_) => {
                        return Err(wsgi_error(
                            py,
                            format!("Content-Length {value:?} is not a number"),
                        ))
                    }
                }
            }
            headers.push((name, value));
        }
        {
            let mut st = this.state();
            st.status = Some(status);
            st.headers = headers;
            st.length = length;
        }
        slf.getattr("write")
    }

    /// The write() callable start_response returns.
    fn write(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = data.py();
        let Some(b) = exact_bytes(data) else {
            return Err(wsgi_error(
                py,
                format!("write() takes bytes, not {}", type_name(data)),
            ));
        };
        self.write_bytes(py, b.as_bytes())
    }

    /// Queues START (once): the status line and headers go out with the first data.
    fn send_start(&self, py: Python<'_>) -> PyResult<()> {
        let payload = {
            let mut st = self.state();
            if st.sent {
                return Ok(());
            }
            let Some(status) = &st.status else {
                return Err(wsgi_error(
                    py,
                    "the application returned a body without calling start_response()".into(),
                ));
            };
            let mut p = response::latin1(status);
            p.push(0);
            for (k, v) in &st.headers {
                p.extend_from_slice(&response::latin1(k));
                p.push(0);
                p.extend_from_slice(&response::latin1(v));
                p.push(0);
            }
            st.sent = true;
            p
        };
        self.conn.get().queue_frame(py, Kind::Start, &payload)
    }

    /// Sends what the application returned (not a FileWrapper: daemon.py sends those):
    /// checked first if it is a list or tuple, as embedded mode does (a 500, not a cut
    /// response), streamed as it comes otherwise. `head`: a HEAD request (a short body is
    /// then no error).
    fn finish(&self, result: &Bound<'_, PyAny>, head: bool) -> PyResult<()> {
        let py = result.py();
        if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
            let mut total: i64 = 0;
            for (i, item) in result.try_iter()?.enumerate() {
                let item = item?;
                let Some(b) = exact_bytes(&item) else {
                    return Err(wsgi_error(
                        py,
                        format!("response item {i} is {}, not bytes", type_name(&item)),
                    ));
                };
                total += b.as_bytes().len() as i64;
            }
            let mut st = self.state();
            if let Some(length) = st.length {
                if total < length && !st.sent && !head {
                    return Err(wsgi_error(
                        py,
                        format!(
                            "the application sent {total} bytes, less than its Content-Length of {length}"
                        ),
                    ));
                }
            }
            st.batch = true;
        }
        let items = match result.try_iter() {
            Ok(items) => items,
            Err(e) if e.is_instance_of::<PyTypeError>(py) => {
                return Err(wsgi_error(
                    py,
                    format!(
                        "the application returned {} , which is not an iterable of bytes",
                        type_name(result)
                    ),
                ))
            }
            Err(e) => return Err(e),
        };
        for (i, item) in items.enumerate() {
            let item = item?;
            let Some(b) = exact_bytes(&item) else {
                return Err(wsgi_error(
                    py,
                    format!("response item {i} is {}, not bytes", type_name(&item)),
                ));
            };
            if !b.as_bytes().is_empty() {
                self.write_bytes(py, b.as_bytes())?;
            }
        }
        self.send_start(py)
    }

    /// Adds a Content-Length header (send_file, for a file whose size it knows).
    fn set_length(&self, n: i64) {
        let mut st = self.state();
        st.headers.push(("Content-Length".into(), n.to_string()));
        st.length = Some(n);
    }

    #[getter]
    fn sent(&self) -> bool {
        self.state().sent
    }

    #[getter]
    fn status(&self) -> Option<String> {
        self.state().status.clone()
    }

    #[getter]
    fn length(&self) -> Option<i64> {
        self.state().length
    }

    #[getter]
    fn conn(&self, py: Python<'_>) -> Py<Conn> {
        self.conn.clone_ref(py)
    }
}

//! WSGI in Apache's children (PEP 3333, mod_wsgi's embedded mode): load the script, build the
//! environ, call the application and stream what it returns into Apache, with every rule of
//! src/wsgi enforced. `_modpy.wsgi_run(req, app)` runs any WSGI app from a PythonHandler.

use super::convert::{gone, req_err};
use super::dispatch::{self, log_in_context, DONE, HTTP_INTERNAL_SERVER_ERROR, OK};
use super::request::Request;
use super::strcache::{latin1_str, Strings};
use crate::apache::request::{StrField, TableField, SERVER_VERSION};
use crate::apache::{self, log};
use crate::wsgi::config::WsgiDirConfig;
use crate::wsgi::response::{check_header, latin1, parse_status};
use pyo3::exceptions::PyStopIteration;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyModule, PyString, PyTuple};
use std::sync::Mutex;

/// The mod_wsgi release whose behaviour mod_py reproduces (environ["mod_wsgi.version"]).
const MOD_WSGI_VERSION: (u32, u32, u32) = (4, 9, 4);

pub use crate::wsgi::target::is_wsgi_handler;
use crate::wsgi::target::{self, collapse_slashes};

/// What the WSGI handler needs to know about where the app came from.
pub struct AppInfo<'a> {
    pub script: &'a str,
    /// WSGIHandlerScript in use ("" if none).
    pub handler_script: &'a str,
    pub callable: &'a str,
    pub application_group: &'a str,
    pub pass_authorization: bool,
    pub script_reloading: bool,
    /// For modpy.wsgi under a PythonHandler: the mount point (SCRIPT_NAME).
    pub base_uri: Option<&'a str>,
    /// WSGITrustedProxyHeaders / WSGITrustedProxies in effect.
    pub proxy_headers: &'a [String],
    pub proxies: Option<&'a [String]>,
}

fn build_environ<'py>(
    py: Python<'py>,
    req: &apache::Request,
    pyreq: &Py<Request>,
    info: &AppInfo<'_>,
) -> PyResult<Bound<'py, PyDict>> {
    let r = req.get().map_err(gone)?;
    let env = r.add_wsgi_cgi_vars().map_err(gone)?;
    environ_from(py, &r, env, Some(pyreq), info)
}

/// The environ of mod_wsgi's WSGIAccessScript / WSGIAuthUserScript / WSGIAuthGroupScript
/// functions: what build_environ makes of the request's CGI variables and HTTP headers
/// (REMOTE_USER and AUTH_TYPE included once Apache has them, the mod_wsgi.* keys,
/// wsgi.errors...), but, as mod_wsgi's, without the request's environment variables
/// (SetEnvIf, RewriteRule [E=]...), the Authorization headers or PATH_TRANSLATED (see
/// apache::provider::auth_cgi_vars), and without wsgi.input / wsgi.file_wrapper (the body
/// belongs to the handler).
pub(crate) fn auth_environ<'py>(
    py: Python<'py>,
    req: &apache::Request,
    script: &str,
    function: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let env = apache::provider::auth_cgi_vars(req).map_err(gone)?;
    let r = req.get().map_err(gone)?;
    let dconf = &r.per_dir_config().wsgi;
    let info = AppInfo {
        script,
        handler_script: "",
        callable: function,
        // The global application group: mod_wsgi's default for these scripts.
        application_group: "",
        pass_authorization: false,
        script_reloading: dconf.script_reloading(),
        base_uri: None,
        proxy_headers: dconf.trusted_proxy_headers.as_deref().unwrap_or(&[]),
        proxies: dconf.trusted_proxies.as_deref(),
    };
    let d = environ_from(py, &r, env, None, &info)?;
    // An int here, as in mod_wsgi's auth environ (the application's has the string).
    d.set_item(
        "mod_wsgi.script_reloading",
        i32::from(info.script_reloading),
    )?;
    Ok(d)
}

/// The environ from `env` (CGI variables): build_environ's work once the table is filled.
fn environ_from<'py>(
    py: Python<'py>,
    r: &apache::request::RequestRef<'_>,
    env: apache::Table,
    pyreq: Option<&Py<Request>>,
    info: &AppInfo<'_>,
) -> PyResult<Bound<'py, PyDict>> {
    if info.pass_authorization {
        if let Some(auth) = r
            .table(TableField::HeadersIn)
            .get(b"Authorization")
            .map_err(gone)?
        {
            env.set(b"HTTP_AUTHORIZATION", &auth).map_err(gone)?;
        }
    }
    target::apply_trusted_proxies(&env, info.proxy_headers, info.proxies);
    let d = environ_template(py)?.copy()?;
    let mut script_name: Vec<u8> = Vec::new();
    let mut path_info: Vec<u8> = Vec::new();
    let mut https = false;
    let mut err = None;
    let mut strings = Strings::lock(py);
    env.for_each(|k, v| {
        match k {
            b"PATH" => return,
            b"SCRIPT_NAME" => script_name = collapse_slashes(v),
            b"PATH_INFO" => path_info = collapse_slashes(v),
            // Turned into wsgi.url_scheme and not passed on, as mod_wsgi does.
            b"HTTPS" => {
                https = v.eq_ignore_ascii_case(b"on") || v == b"1";
                return;
            }
            _ => {}
        }
        if let Err(e) = d.set_item(strings.get(py, k), strings.get(py, v)) {
            err = Some(e);
        }
    })
    .map_err(gone)?;
    if let Some(e) = err {
        return Err(e);
    }
    if let Some(base) = info.base_uri {
        let uri = r.str_field(StrField::Uri).unwrap_or_default();
        let base = base.trim_end_matches('/').as_bytes();
        if uri.starts_with(base) {
            script_name = base.to_vec();
            path_info = uri[base.len()..].to_vec();
        }
    }
    https |= r.is_https();
    let script_name = strings.get(py, &script_name);
    let path_info = strings.get(py, &path_info);
    d.set_item(intern!(py, "SCRIPT_NAME"), &script_name)?;
    d.set_item(intern!(py, "PATH_INFO"), &path_info)?;
    d.set_item(intern!(py, "mod_wsgi.script_name"), script_name)?;
    d.set_item(intern!(py, "mod_wsgi.path_info"), path_info)?;
    let group = strings.get(py, info.application_group.as_bytes());
    d.set_item(intern!(py, "mod_wsgi.application_group"), group)?;
    let callable = strings.get(py, info.callable.as_bytes());
    d.set_item(intern!(py, "mod_wsgi.callable_object"), callable)?;
    let handler = r.str_field(StrField::Handler).unwrap_or(b"wsgi-script");
    let handler = strings.get(py, handler);
    d.set_item(intern!(py, "mod_wsgi.request_handler"), handler)?;
    let handler_script = strings.get(py, info.handler_script.as_bytes());
    d.set_item(intern!(py, "mod_wsgi.handler_script"), handler_script)?;
    let reloading = if info.script_reloading {
        intern!(py, "1")
    } else {
        intern!(py, "0")
    };
    d.set_item(intern!(py, "mod_wsgi.script_reloading"), reloading)?;
    let c = r.connection();
    if let Ok(c) = c.get() {
        let local = c
            .str_field(apache::connection::ConnStr::LocalIp)
            .unwrap_or_default();
        let port = c.ports().0.to_string();
        d.set_item(
            intern!(py, "mod_wsgi.listener_host"),
            strings.get(py, local),
        )?;
        let port = strings.get(py, port.as_bytes());
        d.set_item(intern!(py, "mod_wsgi.listener_port"), port)?;
    }
    drop(strings);
    let start = r.rec().request_time.to_string();
    d.set_item(intern!(py, "mod_wsgi.request_start"), start)?;
    if let Some(id) = r.str_field(StrField::LogId) {
        d.set_item(intern!(py, "mod_wsgi.request_id"), latin1_str(py, id))?;
    }
    let scheme = if https {
        intern!(py, "https")
    } else {
        intern!(py, "http")
    };
    d.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
    if let Some(pyreq) = pyreq {
        let input = Input {
            req: pyreq.clone_ref(py),
        };
        d.set_item(intern!(py, "wsgi.input"), Py::new(py, input)?)?;
        d.set_item(intern!(py, "wsgi.input_terminated"), true)?;
        d.set_item(
            intern!(py, "wsgi.file_wrapper"),
            py.get_type::<FileWrapper>(),
        )?;
    }
    Ok(d)
}

/// The environ entries that are the same for every request of this process, copied into
/// each new environ (a dict copy is much cheaper than setting them one by one).
fn environ_template(py: Python<'_>) -> PyResult<&Bound<'_, PyDict>> {
    static TEMPLATE: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    TEMPLATE
        .get_or_try_init(py, || {
            let d = PyDict::new(py);
            d.set_item("mod_wsgi.process_group", "")?;
            d.set_item("mod_wsgi.enable_sendfile", "0")?;
            d.set_item("mod_wsgi.ignore_activity", "0")?;
            d.set_item("mod_wsgi.version", MOD_WSGI_VERSION)?;
            d.set_item("apache.version", SERVER_VERSION)?;
            d.set_item("wsgi.version", (1, 0))?;
            d.set_item("wsgi.errors", wsgi_errors(py)?)?;
            let threaded = crate::apache::hooks::mpm_query(crate::sys::AP_MPMQ_IS_THREADED as i32);
            d.set_item("wsgi.multithread", threaded.unwrap_or(0) != 0)?;
            d.set_item("wsgi.multiprocess", true)?;
            d.set_item("wsgi.run_once", false)?;
            Ok::<_, PyErr>(d.unbind())
        })
        .map(|d| d.bind(py))
}

/// The stream behind environ["wsgi.errors"]: lines go to the error log with the request's
/// context (modpy._logging.ErrorLogStream at error level).
fn wsgi_errors(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static ERRORS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    ERRORS
        .get_or_try_init(py, || {
            let m = py.import("modpy._logging")?;
            Ok::<_, PyErr>(
                m.getattr("ErrorLogStream")?
                    .call1(("wsgi.errors", log::APLOG_ERR))?
                    .unbind(),
            )
        })
        .map(|o| o.bind(py).clone())
}

/// environ["wsgi.input"]: the request body, read on demand (so `100 Continue` is sent only
/// when the application reads), in bounded chunks.
#[pyclass(module = "modpy.wsgi", name = "Input", frozen)]
pub struct Input {
    req: Py<Request>,
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size=-1))]
    fn read<'py>(&self, py: Python<'py>, size: Option<i64>) -> PyResult<Bound<'py, PyBytes>> {
        self.req.get().read(py, size.unwrap_or(-1))
    }
    #[pyo3(signature = (size=-1))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<i64>) -> PyResult<Bound<'py, PyBytes>> {
        self.req.get().readline(py, size.unwrap_or(-1))
    }
    #[pyo3(signature = (hint=-1))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<i64>) -> PyResult<Bound<'py, PyList>> {
        self.req.get().readlines(py, hint.unwrap_or(-1))
    }
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.req.get().readline(py, -1)?;
        if line.as_bytes().is_empty() {
            return Err(PyStopIteration::new_err(()));
        }
        Ok(line)
    }
}

/// environ["wsgi.file_wrapper"]: iterates a file in blocks; returned as the response, a real
/// file is handed to Apache as a file bucket (sendfile), never read through Python.
#[pyclass(module = "modpy.wsgi", name = "FileWrapper", frozen)]
pub struct FileWrapper {
    filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        FileWrapper {
            filelike,
            blksize: blksize.max(1),
        }
    }
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let block = self
            .filelike
            .bind(py)
            .call_method1("read", (self.blksize,))?;
        if !block.is_truthy()? {
            return Err(PyStopIteration::new_err(()));
        }
        Ok(block)
    }
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.filelike.bind(py);
        if f.hasattr("close")? {
            f.call_method0("close")?;
        }
        Ok(())
    }
}

/// Response state shared by start_response, write() and the handler's loop.
#[derive(Default)]
struct ResponseState {
    /// Set by start_response: (code, status line, headers).
    status: Option<(u16, String)>,
    headers: Vec<(String, String)>,
    content_length: Option<u64>,
    /// Headers are out (first body byte written).
    sent: bool,
    written: u64,
}

// Raised (and logged as one line) for output that breaks PEP 3333.
pyo3::create_exception!(
    modpy.wsgi,
    WSGIError,
    pyo3::exceptions::PyException,
    "A WSGI application broke PEP 3333."
);

#[pyclass(module = "modpy.wsgi", name = "Response", frozen)]
pub struct Response {
    req: apache::Request,
    state: Mutex<ResponseState>,
}

impl Response {
    fn lock(&self) -> std::sync::MutexGuard<'_, ResponseState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts status and headers into the request (before the first body byte).
    fn send_headers(&self, st: &mut ResponseState) -> PyResult<()> {
        if st.sent {
            return Ok(());
        }
        let Some((code, line)) = st.status.clone() else {
            return Err(WSGIError::new_err(
                "the application returned a body without calling start_response()",
            ));
        };
        let r = self.req.get().map_err(gone)?;
        r.set_status(code as i32);
        let _ = r.set_str_field(StrField::StatusLine, Some(line.as_bytes()));
        let out = r.table(TableField::HeadersOut);
        for (k, v) in &st.headers {
            if k.eq_ignore_ascii_case("content-type") {
                let _ = r.set_str_field(StrField::ContentType, Some(&latin1(v)));
            } else if k.eq_ignore_ascii_case("content-length") {
                r.set_content_length(st.content_length.unwrap_or(0) as i64);
            } else {
                out.add(k.as_bytes(), &latin1(v)).map_err(gone)?;
            }
        }
        st.sent = true;
        Ok(())
    }

    /// Sends one body chunk (headers first), enforcing the declared Content-Length. With
    /// `deferred`, the chunk (and a FLUSH, so the framing is the same) is only queued: the
    /// handler passes the queue down after it has let go of the GIL.
    fn write_chunk(&self, py: Python<'_>, data: &[u8], deferred: bool) -> PyResult<()> {
        let data = {
            let mut st = self.lock();
            self.send_headers(&mut st)?;
            let allowed = match st.content_length {
                Some(cl) => {
                    let left = cl.saturating_sub(st.written) as usize;
                    if data.len() > left {
                        log_in_context(
                            log::APLOG_WARNING,
                            &format!(
                                "mod_py: WSGI application wrote more than its Content-Length of {cl} bytes; the excess is not sent"
                            ),
                        );
                    }
                    left.min(data.len())
                }
                None => data.len(),
            };
            st.written += allowed as u64;
            &data[..allowed]
        };
        if data.is_empty() {
            return Ok(());
        }
        let req = &self.req;
        if deferred {
            let r = req.get().map_err(gone)?;
            return r
                .write_deferred(data, true)
                .map_err(|e| req_err(py, apache::request::Error::Io(e)));
        }
        py.detach(|| {
            let r = req.get().map_err(apache::request::Error::Gone)?;
            r.write(data, true).map_err(apache::request::Error::Io)
        })
        .map_err(|e| req_err(py, e))
    }
}

#[pymethods]
impl Response {
    /// The application's start_response is this object itself (calling it is start_response):
    /// no bound method to make per request.
    #[pyo3(signature = (status, response_headers, exc_info=None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        response_headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Self::start_response(slf, status, response_headers, exc_info)
    }

    /// PEP 3333 start_response(status, response_headers, exc_info=None) -> write.
    #[pyo3(signature = (status, response_headers, exc_info=None))]
    fn start_response<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        response_headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let st = this.lock();
            match (st.status.is_some(), exc_info) {
                (true, None) => {
                    return Err(WSGIError::new_err(
                        "start_response() called a second time without exc_info",
                    ))
                }
                (_, Some(exc)) if st.sent => {
                    // PEP 3333: too late to change the headers; re-raise the application's error.
                    let value = exc.get_item(1)?;
                    return Err(PyErr::from_value(value));
                }
                _ => {}
            }
        }
        let status = status
            .cast::<PyString>()
            .map_err(|_| {
                WSGIError::new_err(format!(
                    "status must be str, not {}",
                    status
                        .get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?
            .to_str()?
            .to_string();
        let parsed = parse_status(&status).map_err(WSGIError::new_err)?;
        let code = parsed.code;
        let list = response_headers.cast::<PyList>().map_err(|_| {
            WSGIError::new_err("response_headers must be a list of (name, value) tuples")
        })?;
        let mut headers = Vec::with_capacity(list.len());
        let mut content_length = None;
        for item in list.iter() {
            let t = item.cast::<PyTuple>().map_err(|_| {
                WSGIError::new_err(format!(
                    "response header {} is not a (name, value) tuple",
                    item.repr().map(|r| r.to_string()).unwrap_or_default()
                ))
            })?;
            if t.len() != 2 {
                return Err(WSGIError::new_err(format!(
                    "response header {} is not a (name, value) tuple",
                    t.repr()?
                )));
            }
            let (name, value) = (t.get_item(0)?, t.get_item(1)?);
            let (Ok(name), Ok(value)) = (name.cast::<PyString>(), value.cast::<PyString>()) else {
                return Err(WSGIError::new_err(format!(
                    "response header {} must be a pair of str",
                    t.repr()?
                )));
            };
            let (name, value) = (name.to_str()?.to_string(), value.to_str()?.to_string());
            check_header(&name, &value).map_err(WSGIError::new_err)?;
            if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(value.trim().parse::<u64>().map_err(|_| {
                    WSGIError::new_err(format!("Content-Length {value:?} is not a number"))
                })?);
            }
            headers.push((name, value));
        }
        let mut st = this.lock();
        st.status = Some((code, status));
        st.headers = headers;
        st.content_length = content_length;
        drop(st);
        slf.getattr("write")
    }

    /// The legacy write(data) callable start_response returns.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let b = data.cast::<PyBytes>().map_err(|_| {
            WSGIError::new_err(format!(
                "write() takes bytes, not {}",
                data.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        self.write_chunk(py, b.as_bytes(), false)
    }
}

/// Sends a FileWrapper over a real file as a file bucket; Ok(false) if it is not one.
fn send_file_wrapper(py: Python<'_>, resp: &Response, fw: &FileWrapper) -> PyResult<bool> {
    let f = fw.filelike.bind(py);
    let Ok(fd) = f.call_method0("fileno").and_then(|n| n.extract::<i32>()) else {
        return Ok(false);
    };
    let os = py.import("os")?;
    let st = os.call_method1("fstat", (fd,))?;
    let mode: u32 = st.getattr("st_mode")?.extract()?;
    if !py
        .import("stat")?
        .call_method1("S_ISREG", (mode,))?
        .extract::<bool>()?
    {
        return Ok(false);
    }
    let size: i64 = st.getattr("st_size")?.extract()?;
    let offset: i64 = f
        .call_method0("tell")
        .and_then(|t| t.extract())
        .unwrap_or(0);
    let mut len = (size - offset).max(0);
    {
        let mut st = resp.lock();
        match st.content_length {
            Some(cl) => len = len.min(cl as i64),
            // As mod_wsgi: the response's length is the file's.
            None => {
                st.content_length = Some(len as u64);
                st.headers.push(("Content-Length".into(), len.to_string()));
            }
        }
        resp.send_headers(&mut st)?;
        st.written += len as u64;
    }
    let path = format!("/proc/self/fd/{fd}");
    let req = &resp.req;
    py.detach(|| {
        let r = req.get().map_err(apache::request::Error::Gone)?;
        r.sendfile_final(path.as_bytes(), offset, Some(len))
            .map_err(apache::request::Error::Io)
    })
    .map_err(|e| req_err(py, e))?;
    Ok(true)
}

/// How a WSGI request ended, for logging and the status returned to Apache.
enum Failure {
    /// PEP 3333 broken: one log line naming the app and the fault.
    Output(String),
    /// An exception in the application: its traceback.
    Exception(PyErr),
    /// The client went away while we were writing: not the app's fault, logged at info.
    ClientGone(String),
    /// Apache refused the request body (e.g. 413 over LimitRequestBody): that status.
    Status(i32),
}

fn classify(py: Python<'_>, err: PyErr) -> Failure {
    if err.is_instance_of::<super::module::SERVER_RETURN>(py) {
        let status = err
            .value(py)
            .getattr("args")
            .ok()
            .and_then(|a| a.get_item(0).ok()?.extract::<i32>().ok());
        if let Some(status) = status.filter(|s| (400..=599).contains(s)) {
            return Failure::Status(status);
        }
    }
    if err.is_instance_of::<WSGIError>(py) {
        Failure::Output(err.value(py).to_string())
    } else if err.is_instance_of::<pyo3::exceptions::PyIOError>(py)
        && err.value(py).to_string().contains("writing to the client")
    {
        Failure::ClientGone(err.value(py).to_string())
    } else {
        Failure::Exception(err)
    }
}

/// Calls the WSGI application and streams its response; returns the status for Apache.
pub fn run_app(
    py: Python<'_>,
    req: &apache::Request,
    app: &Bound<'_, PyAny>,
    info: &AppInfo<'_>,
    error_override: bool,
) -> i32 {
    let pyreq = match Request::of(py, req) {
        Ok(p) => p,
        Err(_) => return HTTP_INTERNAL_SERVER_ERROR,
    };
    let environ = match build_environ(py, req, &pyreq, info) {
        Ok(e) => e,
        Err(err) => return report(py, req, info, Failure::Exception(err)),
    };
    let resp = match Bound::new(
        py,
        Response {
            req: req.clone(),
            state: Mutex::new(ResponseState::default()),
        },
    ) {
        Ok(r) => r,
        Err(_) => return HTTP_INTERNAL_SERVER_ERROR,
    };
    let result = match app.call1((environ, &resp)) {
        Ok(r) => r,
        Err(err) => return report(py, req, info, classify(py, err)),
    };
    let streamed = stream(py, resp.get(), &result, error_override);
    // PEP 3333: close() is called whatever happened, client gone or application failed.
    // (A plain list or tuple has none: asking would build and drop an AttributeError.)
    let plain = result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>();
    let closed = if !plain && result.hasattr("close").unwrap_or(false) {
        result.call_method0("close").map(|_| ())
    } else {
        Ok(())
    };
    match (streamed, closed) {
        (Ok(rc), Ok(())) => rc,
        (Err(f), _) => report(py, req, info, f),
        (Ok(_), Err(err)) => report(py, req, info, Failure::Exception(err)),
    }
}

fn stream(
    py: Python<'_>,
    resp: &Response,
    result: &Bound<'_, PyAny>,
    error_override: bool,
) -> Result<i32, Failure> {
    // WSGIErrorOverride: an error status goes to Apache (ErrorDocument), the body is dropped.
    let override_status = |resp: &Response| -> Option<i32> {
        let st = resp.lock();
        let code = st.status.as_ref()?.0;
        (error_override && code >= 400 && !st.sent).then_some(code as i32)
    };
    if let Ok(fw) = result.cast::<FileWrapper>() {
        if let Some(code) = override_status(resp) {
            return Ok(code);
        }
        if send_file_wrapper(py, resp, fw.get()).map_err(|e| classify(py, e))? {
            return Ok(OK);
        }
    }
    if let Some(rc) = small_sequence(py, resp, result, &override_status)? {
        return Ok(rc);
    }
    let iter = result.try_iter().map_err(|_| {
        Failure::Output(format!(
            "the application returned {} , which is not an iterable of bytes",
            result
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    for (index, item) in iter.enumerate() {
        let item = item.map_err(|e| classify(py, e))?;
        let Ok(b) = item.cast::<PyBytes>() else {
            return Err(Failure::Output(format!(
                "response item {index} is {}, not bytes",
                item.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            )));
        };
        if b.as_bytes().is_empty() {
            continue;
        }
        if let Some(code) = override_status(resp) {
            return Ok(code);
        }
        resp.write_chunk(py, b.as_bytes(), false)
            .map_err(|e| classify(py, e))?;
    }
    finish_stream(py, resp, &override_status)
}

/// Responses up to this size returned as a list or tuple are queued while the GIL is held
/// and sent after it is released: one GIL acquisition per request instead of two.
const SMALL_RESPONSE: usize = 256 * 1024;

/// The common case, a list/tuple of bytes: iterating it runs no application code, so the
/// whole body is queued (copied once into heap buckets, FLUSH after each item as for a
/// streamed body) and passed to Apache after the GIL is released. None: not that case.
fn small_sequence(
    py: Python<'_>,
    resp: &Response,
    result: &Bound<'_, PyAny>,
    override_status: &dyn Fn(&Response) -> Option<i32>,
) -> Result<Option<i32>, Failure> {
    let items: Vec<Bound<'_, PyAny>> = if let Ok(l) = result.cast::<PyList>() {
        l.iter().collect()
    } else if let Ok(t) = result.cast::<PyTuple>() {
        t.iter().collect()
    } else {
        return Ok(None);
    };
    let mut chunks = Vec::with_capacity(items.len());
    let mut total = 0usize;
    for (index, item) in items.iter().enumerate() {
        let Ok(b) = item.cast::<PyBytes>() else {
            return Err(Failure::Output(format!(
                "response item {index} is {}, not bytes",
                item.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            )));
        };
        total += b.as_bytes().len();
        chunks.push(b.as_bytes());
    }
    if total > SMALL_RESPONSE {
        return Ok(None);
    }
    for data in chunks.into_iter().filter(|d| !d.is_empty()) {
        if let Some(code) = override_status(resp) {
            return Ok(Some(code));
        }
        resp.write_chunk(py, data, true)
            .map_err(|e| classify(py, e))?;
    }
    finish_stream(py, resp, override_status).map(Some)
}

/// After the last item: headers out if no body was sent, Content-Length checked.
fn finish_stream(
    py: Python<'_>,
    resp: &Response,
    override_status: &dyn Fn(&Response) -> Option<i32>,
) -> Result<i32, Failure> {
    if let Some(code) = override_status(resp) {
        return Ok(code);
    }
    let mut st = resp.lock();
    resp.send_headers(&mut st).map_err(|e| classify(py, e))?;
    if let Some(cl) = st.content_length {
        // HEAD: frameworks drop the body but keep GET's Content-Length (Apache sends none).
        let head = resp.req.get().is_ok_and(|r| r.rec().header_only != 0);
        if st.written < cl && !head {
            let msg = format!(
                "the application sent {} bytes, less than its Content-Length of {cl}",
                st.written
            );
            drop(st);
            return Err(Failure::Output(msg));
        }
    }
    Ok(OK)
}

/// Logs a failure and decides what Apache answers: 500 before any output, else the response
/// is cut (the client sees an incomplete body, never a complete-looking one).
fn report(py: Python<'_>, req: &apache::Request, info: &AppInfo<'_>, failure: Failure) -> i32 {
    let Ok(r) = req.get() else {
        return HTTP_INTERNAL_SERVER_ERROR;
    };
    let started = r.rec().sent_bodyct != 0 || r.rec().bytes_sent != 0;
    let who = format!(
        "mod_py: WSGI application '{}' ({})",
        info.script, info.callable
    );
    match failure {
        Failure::Status(status) => {
            r.log_error(
                log::APLOG_INFO,
                0,
                &format!("{who}: request body refused by Apache with status {status}"),
            );
            if !started {
                r.discard_pending_output();
                let _ = r.table(TableField::HeadersOut).clear();
                return status;
            }
            r.abort_response();
            return DONE;
        }
        Failure::ClientGone(why) => {
            r.log_error(
                log::APLOG_INFO,
                0,
                &format!("{who}: client went away: {why}"),
            );
            return DONE;
        }
        Failure::Output(why) => r.log_error(log::APLOG_ERR, 0, &format!("{who}: {why}")),
        Failure::Exception(err) => {
            r.log_error(log::APLOG_ERR, 0, &format!("{who} raised an exception:"));
            for line in dispatch::format_traceback(py, &err).lines() {
                r.log_error(log::APLOG_ERR, 0, line);
            }
        }
    }
    if r.body_failed() {
        return DONE;
    }
    if started {
        r.abort_response();
        return DONE;
    }
    r.discard_pending_output();
    // Headers set by start_response must not leak into the error page.
    let _ = r.table(TableField::HeadersOut).clear();
    HTTP_INTERNAL_SERVER_ERROR
}

/// (script path) -> (module, mtime in µs) of loaded WSGI scripts.
static SCRIPTS: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

/// The module of the WSGI script at `path`, loaded (or, with `reloading`, reloaded when its
/// mtime changed). `finfo_mtime`: the mtime Apache's directory walk already found for it
/// (r->finfo when r->filename is the script), which spares a stat per request.
pub(crate) fn load_script<'py>(
    py: Python<'py>,
    path: &str,
    reloading: bool,
    finfo_mtime: Option<i64>,
) -> PyResult<Bound<'py, PyModule>> {
    let cache = SCRIPTS
        .get_or_init(py, || PyDict::new(py).unbind())
        .bind(py);
    let key = PyString::new(py, path);
    let entry = cache.get_item(&key)?;
    let mtime = if reloading || entry.is_none() {
        finfo_mtime.or_else(|| dispatch::file_mtime_us(path))
    } else {
        None
    };
    let fresh = entry.is_some();
    if let Some(entry) = entry {
        let (module, known): (Bound<'py, PyModule>, Option<i64>) = entry.extract()?;
        if !reloading || mtime == known {
            return Ok(module);
        }
    }
    let module = py
        .import("modpy._wsgi")?
        .call_method1("load_script", (path, fresh))?
        .cast_into::<PyModule>()?;
    cache.set_item(key, (&module, mtime))?;
    Ok(module)
}

/// DESIGN rule 2: one interpreter per process. Application groups other than %{GLOBAL}
/// (mod_wsgi's default is one per script) are accepted and said once per child to share it.
fn application_group_notice(r: &apache::request::RequestRef<'_>, group: &str) {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
        r.log_error(
            log::APLOG_NOTICE,
            0,
            &format!(
                "mod_py: WSGI application group '{group}': mod_py runs one interpreter per process, so \
                 every application group of this process shares it (scripts still load as separate \
                 modules); use daemon process groups to separate applications"
            ),
        );
    }
}

/// The content handler for `wsgi-script` (WSGIScriptAlias targets and AddHandler'd files),
/// and for WSGIHandlerScript handlers (`handler_script`: its `handle_request` serves the file).
pub fn handle(req: &apache::Request, handler_script: Option<&str>) -> i32 {
    let Ok(r) = req.get() else {
        return HTTP_INTERNAL_SERVER_ERROR;
    };
    let t = match target::resolve(&r, handler_script) {
        Ok(t) => t,
        Err(status) => return status,
    };
    let filename = t.filename.clone();
    if !t.process_group.is_empty() {
        // src/daemon's handler takes the groups it knows; this one is not configured.
        r.log_error(
            log::APLOG_ERR,
            0,
            &format!(
                "mod_py: no WSGI daemon process called '{}' has been configured (for '{filename}')",
                t.process_group
            ),
        );
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if r.server().config().wsgi.restrict_embedded == Some(true) {
        r.log_error(log::APLOG_ERR, 0, &format!("mod_py: embedded mode is disabled by WSGIRestrictEmbedded On; cannot run '{filename}'"));
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    let dconf: &WsgiDirConfig = &r.per_dir_config().wsgi;
    let (callable, group) = (t.callable, t.application_group);
    let (pass_authorization, script_reloading, error_override) =
        (t.pass_authorization, t.script_reloading, t.error_override);
    if !group.is_empty() {
        application_group_notice(&r, &group);
    }
    let finfo_mtime = t.script_mtime;
    drop(r);
    let script = handler_script.map_or_else(|| filename.clone(), str::to_string);
    super::embed::prime_thread();
    let rc = Python::attach(|py| {
        let _serving = dispatch::Serving::enter(req);
        let info = AppInfo {
            script: &script,
            handler_script: handler_script.unwrap_or(""),
            callable: &callable,
            application_group: &group,
            pass_authorization,
            script_reloading,
            base_uri: None,
            proxy_headers: dconf.trusted_proxy_headers.as_deref().unwrap_or(&[]),
            proxies: dconf.trusted_proxies.as_deref(),
        };
        let module = match load_script(py, &script, script_reloading, finfo_mtime) {
            Ok(m) => m,
            Err(err) => {
                if let Ok(r) = req.get() {
                    r.log_error(
                        log::APLOG_ERR,
                        0,
                        &format!("mod_py: failed to exec Python script file '{filename}'."),
                    );
                }
                return report(py, req, &info, Failure::Exception(err));
            }
        };
        let app = match module.getattr(callable.as_str()) {
            Ok(a) => a,
            Err(_) => {
                if let Ok(r) = req.get() {
                    r.log_error(log::APLOG_ERR, 0, &format!("mod_py: target WSGI script '{script}' does not contain WSGI application '{callable}'."));
                }
                return HTTP_INTERNAL_SERVER_ERROR;
            }
        };
        run_app(py, req, &app, &info, error_override)
    });
    send_queued(req);
    rc
}

/// Passes down what was queued while the GIL was held (it is not held here).
pub fn send_queued(req: &apache::Request) {
    if let Ok(r) = req.get() {
        if let Err(e) = r.finish_output() {
            r.log_error(log::APLOG_INFO, 0, &format!("mod_py: {e}"));
        }
    }
}

/// `_modpy.wsgi_run(req, app, base_uri=None)`: serves a WSGI application from a
/// PythonHandler (modpy.wsgi.handler); returns apache.OK / DONE / an HTTP status.
#[pyfunction]
#[pyo3(signature = (req, app, base_uri=None, name=None))]
pub fn wsgi_run(
    py: Python<'_>,
    req: PyRef<'_, Request>,
    app: &Bound<'_, PyAny>,
    base_uri: Option<&str>,
    name: Option<&str>,
) -> PyResult<i32> {
    let inner = req.inner.clone();
    drop(req);
    let r = inner.get().map_err(gone)?;
    let dconf = r.per_dir_config().wsgi.clone();
    // The app's name in log lines: what the PythonOption named, else the file Apache mapped.
    let script = name.map(str::to_string).unwrap_or_else(|| {
        String::from_utf8_lossy(r.str_field(StrField::Filename).unwrap_or_default()).into_owned()
    });
    drop(r);
    let info = AppInfo {
        script: &script,
        handler_script: "",
        callable: "application",
        application_group: "",
        pass_authorization: dconf.pass_authorization(),
        script_reloading: false,
        base_uri,
        proxy_headers: dconf.trusted_proxy_headers.as_deref().unwrap_or(&[]),
        proxies: dconf.trusted_proxies.as_deref(),
    };
    Ok(run_app(py, &inner, app, &info, dconf.error_override()))
}

pub fn add_to_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Input>()?;
    m.add_class::<FileWrapper>()?;
    m.add_class::<Response>()?;
    m.add("WSGIError", m.py().get_type::<WSGIError>())?;
    m.add_function(wrap_pyfunction!(wsgi_run, m)?)?;
    Ok(())
}

/// At child start: WSGIPythonPath (as site directories, .pth files honoured) and
/// WSGIImportScript preloads, as mod_wsgi does.
pub fn child_init(py: Python<'_>, main: apache::Server) {
    let conf = &main.config().wsgi;
    if !conf.python_path.is_empty() {
        if let Err(err) = python_path_first(py, &conf.python_path) {
            main.log_error(log::APLOG_ERR, 0, &format!("mod_py: WSGIPythonPath: {err}"));
        }
    }
    let mut server = Some(main);
    while let Some(s) = server {
        for script in &s.config().wsgi.import_scripts {
            if script
                .process_group
                .as_deref()
                .is_some_and(|g| !g.is_empty() && g != "%{GLOBAL}")
            {
                // Imported by that daemon group's workers (src/daemon), not here.
                continue;
            }
            if let Err(err) = load_script(py, &script.path, false, None) {
                s.log_error(
                    log::APLOG_ERR,
                    0,
                    &format!("mod_py: WSGIImportScript {} failed:", script.path),
                );
                for line in dispatch::format_traceback(py, &err).lines() {
                    s.log_error(log::APLOG_ERR, 0, line);
                }
            }
        }
        server = s.next();
    }
}

/// WSGIPythonPath as mod_wsgi applies it: each directory is a site directory (its .pth files
/// honoured), and all that this adds goes to the front of sys.path, in order, so the
/// application's modules win over installed packages of the same name.
fn python_path_first(py: Python<'_>, dirs: &[String]) -> PyResult<()> {
    let sys_path = py.import("sys")?.getattr("path")?.cast_into::<PyList>()?;
    let before: Vec<String> = sys_path.extract()?;
    let site = py.import("site")?;
    for dir in dirs {
        site.call_method1("addsitedir", (dir,))?;
    }
    let after: Vec<String> = sys_path.extract()?;
    let added: Vec<String> = after
        .iter()
        .filter(|p| !before.contains(p))
        .cloned()
        .collect();
    let rest: Vec<String> = after.into_iter().filter(|p| !added.contains(p)).collect();
    let new: Vec<String> = added.into_iter().chain(rest).collect();
    sys_path.set_slice(0, sys_path.len(), PyList::new(py, new)?.as_any())?;
    Ok(())
}

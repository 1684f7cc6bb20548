//! Handler dispatch, mod_python semantics: import `module` (from the <Directory> of the
//! directive, PythonPath applied, re-imported when its file changed and PythonAutoReload is
//! on), call `function(req)`, and turn its result or exception into an Apache status.

use super::convert::py_str;
use super::request::Request;
use crate::apache::{self, log};
use crate::config::HandlerEntry;
use crate::phase::Phase;
use pyo3::exceptions::{PyAttributeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyModule, PyString};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Mutex;

pub const OK: i32 = crate::sys::OK as i32;
pub const DECLINED: i32 = crate::sys::DECLINED;
pub const DONE: i32 = crate::sys::DONE;
pub const HTTP_INTERNAL_SERVER_ERROR: i32 = crate::sys::HTTP_INTERNAL_SERVER_ERROR as i32;

thread_local! {
    /// Requests being served on this thread (a stack: internal redirects nest), so that
    /// Python logging and print() land in the error log with the request's context.
    static CURRENT: RefCell<Vec<apache::Request>> = const { RefCell::new(Vec::new()) };
}

/// The request this thread is serving (innermost), if any.
pub fn current_request() -> Option<apache::Request> {
    CURRENT.with(|c| c.borrow().last().cloned())
}

/// Logs with the context of the request this thread is serving, if any.
pub fn log_in_context(level: i32, message: &str) {
    let current = CURRENT.with(|c| c.borrow().last().cloned());
    let logged = match current.as_ref().and_then(|r| r.get().ok()) {
        Some(r) => {
            r.log_error(level, 0, message);
            true
        }
        None => false,
    };
    if !logged {
        match super::main_server() {
            Some(s) => s.log_error(level, 0, message),
            None => log::error(std::ptr::null(), level, 0, message),
        }
    }
}

pub struct Serving;

impl Serving {
    pub fn enter(req: &apache::Request) -> Serving {
        CURRENT.with(|c| c.borrow_mut().push(req.clone()));
        Serving
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().pop());
    }
}

/// (module name, directory) -> (module, file, mtime) of handler modules, so a request finds
/// its module with one dict lookup (plus one stat() for PythonAutoReload).
static HANDLER_MODULES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
/// The PythonPath expressions already applied in this process. mod_python re-evaluates one
/// when it differs from the last, in an interpreter per virtual host; with one interpreter for
/// all, each is applied once, or `[dir]+sys.path` in two places would keep growing sys.path.
static APPLIED_PATHS: Mutex<Option<std::collections::HashSet<String>>> = Mutex::new(None);

/// A file's mtime in seconds (mod_python's float), None if it cannot be read.
pub fn file_mtime(path: &str) -> Option<f64> {
    modified(path).map(|d| d.as_secs_f64())
}

/// A file's mtime in microseconds (apr_time_t's unit, so it compares with r->finfo's).
pub fn file_mtime_us(path: &str) -> Option<i64> {
    i64::try_from(modified(path)?.as_micros()).ok()
}

fn modified(path: &str) -> Option<std::time::Duration> {
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    m.duration_since(std::time::UNIX_EPOCH).ok()
}

pub fn apply_python_path(py: Python<'_>, expr: &str) -> PyResult<()> {
    {
        let applied = APPLIED_PATHS.lock().unwrap_or_else(|e| e.into_inner());
        if applied.as_ref().is_some_and(|s| s.contains(expr)) {
            return Ok(());
        }
    }
    let sys = py.import("sys")?;
    let globals = PyDict::new(py);
    globals.set_item("sys", &sys)?;
    globals.set_item("os", py.import("os")?)?;
    let code = std::ffi::CString::new(expr)?;
    let value = py.eval(&code, Some(&globals), None)?;
    let list = value
        .cast::<PyList>()
        .map_err(|_| PyTypeError::new_err(format!("PythonPath {expr} does not give a list")))?;
    // Each directory once, in its first place.
    let unique = PyList::empty(py);
    let seen = pyo3::types::PySet::empty(py)?;
    for item in list.iter() {
        if !seen.contains(&item)? {
            seen.add(&item)?;
            unique.append(item)?;
        }
    }
    sys.getattr("path")?
        .set_item(pyo3::types::PySlice::full(py), unique)?;
    APPLIED_PATHS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(Default::default)
        .insert(expr.to_string());
    Ok(())
}

/// Imports (or re-imports, when its file changed and autoreload is on) a handler module;
/// first loads go through modpy._importer (a module file in the handler's directory is loaded
/// under a name of its own, so same-named modules of two directories never collide).
pub fn import_handler_module<'py>(
    py: Python<'py>,
    name: &str,
    directory: Option<&str>,
    autoreload: bool,
) -> PyResult<Bound<'py, PyModule>> {
    let cache = HANDLER_MODULES
        .get_or_init(py, || PyDict::new(py).unbind())
        .bind(py);
    let key = (name, directory);
    if let Some(entry) = cache.get_item(key)? {
        let (module, file, mtime): (
            Bound<'py, PyModule>,
            Option<Bound<'py, PyString>>,
            Option<f64>,
        ) = entry.extract()?;
        let Some(file) = file.filter(|_| autoreload) else {
            return Ok(module);
        };
        let now = file_mtime(file.to_str()?);
        if now == mtime {
            return Ok(module);
        }
        let module = importer(py)?
            .call_method1("reload", (module,))?
            .cast_into::<PyModule>()?;
        cache.set_item(key, (&module, &file, now))?;
        return Ok(module);
    }
    if let Some(dir) = directory {
        // Sibling modules of the handler import as they would under mod_python.
        // Without the trailing slash of a <Directory>: one entry, however it is spelled.
        let path = py.import("sys")?.getattr("path")?.cast_into::<PyList>()?;
        let bare = match dir.trim_end_matches('/') {
            "" => "/",
            d => d,
        };
        if !path.contains(bare)? && !path.contains(format!("{bare}/"))? {
            path.insert(0, bare)?;
        }
    }
    let module = importer(py)?
        .call_method1("import_handler", (name, directory))?
        .cast_into::<PyModule>()?;
    let file = module
        .getattr("__file__")
        .ok()
        .and_then(|f| f.cast_into::<PyString>().ok());
    let mtime = match &file {
        Some(f) => file_mtime(f.to_str()?),
        None => None,
    };
    cache.set_item(key, (&module, file, mtime))?;
    Ok(module)
}

fn importer(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("modpy._importer")
}

/// A resolved handler: the callable, and the file/mtime PythonAutoReload checks.
struct CachedHandler {
    callable: Py<PyAny>,
    file: Option<String>,
    mtime: Option<f64>,
    /// When the file was last stat()ed: PythonAutoReload looks at most once a second per
    /// handler, as mod_python does (a stat per request is a syscall under the GIL).
    checked: std::time::Instant,
}

const AUTORELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// directory ("" for none) -> handler string -> resolved handler: the per-request lookup is
/// two &str hash lookups, no Python object created. Never held across a Python call.
type HandlerCache = HashMap<String, HashMap<String, CachedHandler>>;
static HANDLERS: Mutex<Option<HandlerCache>> = Mutex::new(None);

/// The callable of a handler entry, imported and resolved once, re-resolved when its module
/// file changes (PythonAutoReload).
fn handler_callable<'py>(
    py: Python<'py>,
    e: &HandlerEntry,
    autoreload: bool,
    default_fn: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let dir = e.directory.as_deref().unwrap_or("");
    // The cache key is "module::function"; a bare module name gets the phase's default
    // function (only then is a string built).
    let key: std::borrow::Cow<'_, str> = if e.handler.contains("::") {
        std::borrow::Cow::Borrowed(e.handler.as_str())
    } else {
        std::borrow::Cow::Owned(format!("{}::{default_fn}", e.handler))
    };
    let cached = {
        let guard = HANDLERS.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .and_then(|m| m.get(dir))
            .and_then(|m| m.get(key.as_ref()))
            .map(|c| {
                (
                    c.callable.clone_ref(py),
                    c.file
                        .clone()
                        .filter(|_| autoreload && c.checked.elapsed() >= AUTORELOAD_INTERVAL),
                    c.mtime,
                )
            })
    };
    if let Some((callable, None, _)) = cached {
        return Ok(callable.into_bound(py));
    }
    if let Some((callable, Some(file), mtime)) = &cached {
        if file_mtime(file) == *mtime {
            let mut guard = HANDLERS.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = guard
                .as_mut()
                .and_then(|m| m.get_mut(dir))
                .and_then(|m| m.get_mut(key.as_ref()))
            {
                c.checked = std::time::Instant::now();
            }
            return Ok(callable.clone_ref(py).into_bound(py));
        }
    }
    // First use, or the module's file changed: (re-)import and resolve.
    let (module_name, function) = e.module_and_function(default_fn);
    let module = import_handler_module(py, module_name, e.directory.as_deref(), autoreload)?;
    let callable = resolve(&module, function)?;
    let file = module
        .getattr("__file__")
        .ok()
        .and_then(|f| f.extract::<String>().ok());
    let mtime = file.as_deref().and_then(file_mtime);
    let entry = CachedHandler {
        callable: callable.clone().unbind(),
        file,
        mtime,
        checked: std::time::Instant::now(),
    };
    let old = {
        let mut guard = HANDLERS.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .get_or_insert_with(HashMap::new)
            .entry(dir.to_string())
            .or_default()
            .insert(key.into_owned(), entry)
    };
    drop(old); // outside the lock: dropping may run Python code
    Ok(callable)
}

/// `function` may be dotted (`obj.method`), as in mod_python.
pub(crate) fn resolve<'py>(
    module: &Bound<'py, PyModule>,
    function: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let mut obj = module.clone().into_any();
    for part in function.split('.') {
        obj = obj.getattr(part).map_err(|err| {
            if !err.is_instance_of::<PyAttributeError>(module.py()) {
                return err;
            }
            // mod_python's words, which logs and its test suite look for.
            let name = module
                .getattr("__file__")
                .and_then(|f| f.extract::<String>())
                .or_else(|_| module.name().map(|n| n.to_string()))
                .unwrap_or_default();
            PyAttributeError::new_err(format!("module '{name}' contains no '{function}'"))
        })?;
    }
    Ok(obj)
}

/// How a handler ended.
enum Outcome {
    Status(i32),
    /// A PythonHandlerModule entry whose module has no function for the phase.
    Skipped,
    /// An exception or a bad return value, already described.
    Failed(PyErr),
}

/// What a handler may end with: OK, DECLINED, DONE or an HTTP status.
fn is_valid_result(rc: i32) -> bool {
    rc == OK || rc == DECLINED || rc == DONE || (100..=599).contains(&rc)
}

fn call_one(
    py: Python<'_>,
    pyreq: &Py<Request>,
    e: &HandlerEntry,
    autoreload: bool,
    default_fn: &str,
) -> Outcome {
    let result = match handler_callable(py, e, autoreload, default_fn) {
        Ok(f) => f.call1((pyreq.clone_ref(py),)),
        // PythonHandlerModule: a module without this phase's function takes no part in it.
        Err(err) if e.silent && err.is_instance_of::<PyAttributeError>(py) => {
            return Outcome::Skipped
        }
        Err(err) => Err(err),
    };
    match result {
        Ok(v) => {
            match v.extract::<i32>() {
                Ok(rc) if is_valid_result(rc) => Outcome::Status(rc),
                _ => Outcome::Failed(PyTypeError::new_err(format!(
                "handler '{}' returned {} ({}), not apache.OK, DECLINED, DONE or an HTTP status",
                e.handler,
                v.repr().map_or_else(|_| "?".into(), |r| r.to_string()),
                v.get_type().name().map_or_else(|_| "?".into(), |n| n.to_string()),
            ))),
            }
        }
        Err(err) if err.is_instance_of::<super::module::SERVER_RETURN>(py) => {
            let arg = err
                .value(py)
                .getattr("args")
                .ok()
                .and_then(|a| a.get_item(0).ok());
            match arg {
                None => Outcome::Status(OK),
                Some(a) if a.is_none() => Outcome::Status(OK),
                Some(a) => match a.extract::<i32>() {
                    Ok(rc) if is_valid_result(rc) => Outcome::Status(rc),
                    _ => Outcome::Failed(PyTypeError::new_err(format!(
                        "handler '{}' raised SERVER_RETURN({}), not apache.OK, DECLINED, DONE or an HTTP status",
                        e.handler,
                        a.repr().map_or_else(|_| "?".into(), |r| r.to_string()),
                    ))),
                },
            }
        }
        Err(err) => Outcome::Failed(err),
    }
}

pub fn format_traceback(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py
        .import("traceback")
        .and_then(|tb| {
            tb.call_method1(
                "format_exception",
                (err.get_type(py), err.value(py), err.traceback(py)),
            )
        })
        .and_then(|lines| PyString::new(py, "").call_method1("join", (lines,)));
    match formatted {
        Ok(s) => s.to_string(),
        Err(_) => err.to_string(),
    }
}

/// Logs a failed handler's traceback, one error-log line per traceback line, each with the
/// request's context, and (PythonDebug On) sends it to the client.
fn report_failure(
    py: Python<'_>,
    req: &apache::Request,
    phase: &str,
    e: &HandlerEntry,
    err: &PyErr,
    debug: bool,
) -> i32 {
    let tb = format_traceback(py, err);
    let Ok(r) = req.get() else {
        return HTTP_INTERNAL_SERVER_ERROR;
    };
    // Half-written output of a failed handler is dropped, never passed on as if whole.
    r.discard_pending_output();
    let uri = r
        .str_field(apache::request::StrField::Uri)
        .map(|u| py_str(py, u).to_string())
        .unwrap_or_default();
    r.log_error(
        log::APLOG_ERR,
        0,
        &format!("mod_py: {phase} '{}' failed for {uri}:", e.handler),
    );
    for line in tb.lines() {
        r.log_error(log::APLOG_ERR, 0, line);
    }
    if r.body_failed() {
        return DONE; // Apache has already answered the client with the body error
    }
    if !debug {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    let body = format!("mod_py: {phase} '{}' failed for {uri}\n\n{tb}", e.handler);
    r.set_status(HTTP_INTERNAL_SERVER_ERROR);
    let _ = r.set_str_field(
        apache::request::StrField::ContentType,
        Some(b"text/plain; charset=utf-8"),
    );
    drop(r);
    let sent = py.detach(|| {
        req.get()
            .map(|r| r.write(body.as_bytes(), true).is_ok())
            .unwrap_or(false)
    });
    if sent {
        DONE
    } else {
        HTTP_INTERNAL_SERVER_ERROR
    }
}

/// DESIGN rule 2: one interpreter per process. A PythonInterpreter other than the main one is
/// accepted (old configs keep working) and said once per child to share it.
fn interpreter_notice(name: &str) {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if name != "main_interpreter" && !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
        log_in_context(
            log::APLOG_NOTICE,
            &format!(
                "mod_py: PythonInterpreter {name}: mod_py runs one interpreter per process; \
                 handlers of every PythonInterpreter share it (use daemon process groups to separate applications)"
            ),
        );
    }
}

/// Runs a phase's handlers in order until one returns something other than OK; returns that
/// (or OK, or DECLINED when no handler applied to this request). `phase` is a directive name
/// (`"PythonHandler"`); see run_phase.
pub fn run_handlers(req: &apache::Request, phase: &str, entries: &[HandlerEntry]) -> i32 {
    let phase = Phase::from_directive(phase).unwrap_or(Phase::Handler);
    run_phase(req, phase, Some(entries), true)
}

/// Runs the handlers of `phase` for `req` with mod_python's semantics: the configured
/// `entries` (those whose `| .ext` matches the request's file), then (with `with_added`)
/// those added with req.add_handler, including any added while the phase runs; stops when a
/// handler's result does not let the phase go on (Phase::continues) and returns the last
/// result, or DECLINED when no handler ran. Exceptions are logged with their traceback and
/// give 500 (or the traceback with PythonDebug On, before the response only).
pub fn run_phase(
    req: &apache::Request,
    phase: Phase,
    entries: Option<&[HandlerEntry]>,
    with_added: bool,
) -> i32 {
    let entries = entries.unwrap_or_default();
    super::embed::prime_thread();
    let rc = Python::attach(|py| {
        let Ok(r) = req.get() else {
            return HTTP_INTERNAL_SERVER_ERROR;
        };
        let config = r.per_dir_config();
        let debug = config.debug() && phase.before_response();
        let autoreload = config.autoreload();
        if let Some(name) = config.interpreter.as_deref() {
            interpreter_notice(name);
        } else if config.interp_per_directory == Some(true) {
            interpreter_notice("per directory (PythonInterpPerDirectory On)");
        } else if config.interp_per_directive == Some(true) {
            interpreter_notice("per directive (PythonInterpPerDirective On)");
        }
        let python_path = config.python_path.clone();
        // Only `| .ext` restrictions need the file name.
        let filename = if entries.iter().any(|e| !e.extensions.is_empty()) {
            r.str_field(apache::request::StrField::Filename)
                .map(<[u8]>::to_vec)
        } else {
            None
        };
        let previous = r.enter_phase(phase);
        drop(r);
        let _serving = Serving::enter(req);
        let rc = run_entries(
            py,
            req,
            phase,
            entries,
            filename,
            with_added,
            python_path,
            debug,
            autoreload,
        );
        if let Ok(r) = req.get() {
            r.leave_phase(previous);
        }
        rc
    });
    // Output queued by the handlers (flush=0 writes, small WSGI bodies) goes down now,
    // after the GIL is released, before Apache finishes the response.
    if phase.before_response() {
        if let Ok(r) = req.get() {
            if let Err(io) = r.finish_output() {
                r.log_error(log::APLOG_INFO, 0, &format!("mod_py: {io}"));
            }
        }
    }
    rc
}

#[allow(clippy::too_many_arguments)]
fn run_entries(
    py: Python<'_>,
    req: &apache::Request,
    phase: Phase,
    entries: &[HandlerEntry],
    filename: Option<Vec<u8>>,
    with_added: bool,
    python_path: Option<std::sync::Arc<str>>,
    debug: bool,
    autoreload: bool,
) -> i32 {
    let pyreq = match Request::of(py, req) {
        Ok(p) => p,
        Err(_) => return HTTP_INTERNAL_SERVER_ERROR,
    };
    if let Some(expr) = &python_path {
        if let Err(err) = apply_python_path(py, expr) {
            let e = HandlerEntry {
                handler: format!("PythonPath {expr}"),
                ..Default::default()
            };
            return report_failure(py, req, "setting", &e, &err, debug);
        }
    }
    let name = phase.directive();
    let mut rc = DECLINED;
    let mut step = |e: &HandlerEntry| -> bool {
        if let Ok(r) = req.get() {
            r.set_current_handler(e);
        }
        match call_one(py, &pyreq, e, autoreload, phase.default_function()) {
            Outcome::Status(s) => rc = s,
            Outcome::Skipped => return true,
            Outcome::Failed(err) => {
                rc = report_failure(py, req, name, e, &err, debug);
                return false;
            }
        }
        phase.continues(rc, OK, DECLINED)
    };
    // As in mod_python, handlers restricted to the file's extension (`| .py`) replace the
    // unrestricted ones when any of them applies.
    let f = filename.as_deref();
    let by_extension = entries
        .iter()
        .any(|e| !e.extensions.is_empty() && e.applies_to(f));
    for e in entries
        .iter()
        .filter(|e| e.applies_to(f) && (!by_extension || !e.extensions.is_empty()))
    {
        if !step(e) {
            return rc;
        }
    }
    if with_added {
        // Read one at a time: a handler may add more to its own phase while it runs.
        let mut n = 0;
        while let Some(e) = req.get().ok().and_then(|r| r.added_handler(phase, n)) {
            n += 1;
            if !step(&e) {
                break;
            }
        }
    }
    rc
}

/// Runs a cleanup registered from Python (request or child pool), logging its exceptions.
pub fn run_cleanup(server: apache::Server, callable: Py<PyAny>, data: Py<PyAny>) {
    if !super::embed::is_initialized() {
        return;
    }
    super::embed::prime_thread();
    Python::attach(|py| {
        if let Err(err) = callable.call1(py, (data,)) {
            let tb = format_traceback(py, &err);
            server.log_error(log::APLOG_ERR, 0, "mod_py: a registered cleanup raised:");
            for line in tb.lines() {
                server.log_error(log::APLOG_ERR, 0, line);
            }
        }
    });
}

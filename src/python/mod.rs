//! The Python layer: pyo3 classes over src/apache, handler dispatch, interpreter lifecycle.
//! Python starts in each child (child_init), never in the Apache parent.

mod connection;
mod convert;
pub mod dispatch;
mod embed;
mod module;
mod request;
mod server;
mod ssi;
mod strcache;
mod table;
mod wsgi;
// ---- request phases, auth providers (issue 4) ----
mod auth;
mod phases;
mod subrequest;

// ---- issue 4: filters, brigades, buckets, connection handler ----
mod brigade;
mod connio;
mod filter;
pub(crate) use filter::add_to_module as add_filter_classes;
// ---- end issue 4 ----

use crate::apache::hooks::{self, ChildInitHook, HookRequest, Order, RequestHook};
use crate::apache::pool::Pool;
use crate::apache::{log, Server};
use pyo3::prelude::*;
use std::sync::OnceLock;

/// The Python mod_py was built against: its home and executable (see build.rs).
const PYTHON_HOME: &str = env!("MODPY_PYTHON_HOME");
const PYTHON_EXECUTABLE: &str = env!("MODPY_PYTHON_EXECUTABLE");
/// Where the `modpy` package lives: MODPY_PYLIB in Apache's environment, else the
/// checkout mod_py was built from.
const PYLIB_DEFAULT: &str = env!("MODPY_PYLIB_DEFAULT");

static MAIN_SERVER: OnceLock<Server> = OnceLock::new();
static CHILD_POOL: OnceLock<Pool> = OnceLock::new();

pub fn main_server() -> Option<Server> {
    MAIN_SERVER.get().copied()
}

/// Runs `f` when this child exits (server.register_cleanup).
pub fn register_child_cleanup(f: Box<dyn FnOnce() + Send>) {
    if let Some(p) = CHILD_POOL.get() {
        p.register_cleanup(f);
    }
}

pub fn register_hooks() {
    filter::register_hooks(); // issue 4: filters, connection handler
    hooks::hook_child_init::<ChildInit>(Order::Middle);
    hooks::hook_handler::<ContentHandler>(Order::Middle);
    hooks::hook_translate_name::<LocationHandler>(Order::Middle);
    phases::register_hooks();
    ssi::register_hooks();
}

/// The handler names `SetHandler` / `AddHandler` may use for mod_py.
fn is_our_handler(h: &[u8]) -> bool {
    matches!(h, b"modpy" | b"mod_py" | b"mod_python" | b"python-program")
}

struct ContentHandler;

impl RequestHook for ContentHandler {
    fn run(hr: &HookRequest) -> i32 {
        let Some(handler) = hr.handler() else {
            return dispatch::DECLINED;
        };
        if wsgi::is_wsgi_handler(handler) {
            if !embed::is_initialized() {
                return dispatch::HTTP_INTERNAL_SERVER_ERROR;
            }
            return wsgi::handle(&hr.request(), None);
        }
        if let Some(script) = hr.server().config().wsgi.handler_script(handler) {
            if !embed::is_initialized() {
                return dispatch::HTTP_INTERNAL_SERVER_ERROR;
            }
            return wsgi::handle(&hr.request(), Some(script));
        }
        phases::content(hr)
    }
}

struct ChildInit;

impl ChildInitHook for ChildInit {
    fn run(pchild: Pool, s: Server) {
        let _ = MAIN_SERVER.set(s);
        let _ = CHILD_POOL.set(pchild);
        // WSGIPythonHome: a prefix, or a virtual environment (pyvenv.cfg), as mod_wsgi reads it.
        let wsgi_home = s.config().wsgi.python_home.clone();
        let venv_python = wsgi_home
            .as_deref()
            .filter(|h| std::path::Path::new(h).join("pyvenv.cfg").exists())
            .map(|h| format!("{h}/bin/python"));
        let optimize = s.config().optimize == Some(true);
        let started = match (&wsgi_home, &venv_python) {
            (_, Some(exe)) => embed::initialize(None, exe, optimize),
            (Some(home), None) => embed::initialize(Some(home), PYTHON_EXECUTABLE, optimize),
            (None, None) => embed::initialize(Some(PYTHON_HOME), PYTHON_EXECUTABLE, optimize),
        };
        if let Err(e) = started {
            s.log_error(log::APLOG_CRIT, 0, &format!("mod_py: {e}"));
            return;
        }
        let pylib = std::env::var("MODPY_PYLIB").unwrap_or_else(|_| PYLIB_DEFAULT.to_string());
        embed::prime_thread();
        Python::attach(|py| {
            if let Err(err) = start_modpy(py, &pylib, s) {
                let msg = format!("mod_py: cannot load the modpy package from {pylib}: {err}");
                s.log_error(log::APLOG_CRIT, 0, &msg);
            }
            python_imports(py, s);
            wsgi::child_init(py, s);
        });
        pchild.register_cleanup(Box::new(|| {
            Python::attach(|py| {
                let _ = py
                    .import("modpy")
                    .and_then(|m| m.call_method0("_child_exit"));
            })
        }));
    }
}

fn start_modpy(py: Python<'_>, pylib: &str, s: Server) -> PyResult<()> {
    let path = py.import("sys")?.getattr("path")?;
    if !path.contains(pylib)? {
        path.call_method1("insert", (0, pylib))?;
    }
    py.import("modpy")?
        .call_method1("_child_init", (s.loglevel(),))?;
    Ok(())
}

/// `PythonImport module interpreter` lines of every server, in order, each at most once,
/// after the server-level PythonPath is applied (as mod_python does).
fn python_imports(py: Python<'_>, main: Server) {
    let mut seen = std::collections::HashSet::new();
    let mut server = Some(main);
    while let Some(s) = server {
        if s.config().imports.is_empty() {
            server = s.next();
            continue;
        }
        if let Some(expr) = &s.dir_config().python_path {
            if let Err(err) = dispatch::apply_python_path(py, expr) {
                s.log_error(
                    log::APLOG_ERR,
                    0,
                    &format!("mod_py: PythonPath {expr} failed: {err}"),
                );
            }
        }
        for (spec, _interp) in &s.config().imports {
            if !seen.insert(spec.clone()) {
                continue;
            }
            let (module, function) = match spec.split_once("::") {
                Some((m, f)) => (m, Some(f)),
                None => (spec.as_str(), None),
            };
            let imported =
                dispatch::import_handler_module(py, module, None, false).and_then(
                    |m| match function {
                        Some(f) => m.getattr(f)?.call0().map(drop),
                        None => Ok(()),
                    },
                );
            if let Err(err) = imported {
                s.log_error(
                    log::APLOG_ERR,
                    0,
                    &format!("mod_py: PythonImport {spec} failed: {err}"),
                );
            }
        }
        server = s.next();
    }
}

/// A PythonHandler set in a <Location> serves a URL with no file behind it: as mod_python
/// does, translation ends here without a file name, so Apache does not walk the file system
/// (one stat per path component) for every request. (The core's directory walk then logs
/// "Module bug? Request filename is missing" at info level, as it does under mod_python.)
struct LocationHandler;

impl RequestHook for LocationHandler {
    fn run(hr: &HookRequest) -> i32 {
        let c = hr.dir_config();
        // A file name set by another translate hook (a PythonTransHandler, mod_rewrite) is
        // walked as usual.
        if c.location_handler == Some(true)
            && c.handlers.as_ref().is_some_and(|h| !h.is_empty())
            && hr.filename().is_none()
        {
            dispatch::OK
        } else {
            dispatch::DECLINED
        }
    }
}

//! mod_python's SSI element under mod_py: `<!--#python exec="code"-->` runs code and
//! `<!--#python eval="expr"-->` prints str(expr) (unless None), in a page served through
//! mod_include's INCLUDES filter. As in mod_python, the code sees `req.ssi_globals` (a dict made
//! on first use, kept for the request's other elements), `filter` (its write() goes into the
//! page) and `__file__` (req.filename). src/apache/ssi.rs is the Apache side.

use super::dispatch;
use super::request::Request;
use crate::apache::{self, hooks, log};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use std::sync::Mutex;

struct Register;

impl hooks::PostConfigHook for Register {
    fn run(_pconf: apache::pool::Pool, _s: apache::Server) -> i32 {
        apache::ssi::register(run);
        dispatch::OK
    }
}

pub fn register_hooks() {
    hooks::hook_post_config::<Register>(hooks::Order::Middle);
}

/// `filter` in the element's code: collects what the code writes.
#[pyclass(module = "modpy.apache", name = "SSIFilter", frozen)]
struct SsiFilter {
    out: Mutex<Vec<u8>>,
    #[pyo3(get)]
    req: Py<Request>,
}

#[pymethods]
impl SsiFilter {
    /// Adds `data` (str, as UTF-8, or bytes) to the page.
    fn write(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = match data.cast::<PyString>() {
            Ok(s) => s.to_str()?.as_bytes().to_vec(),
            Err(_) => super::convert::arg_bytes(data)?.to_vec(),
        };
        self.out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(bytes);
        Ok(())
    }

    fn flush(&self) {}
}

fn run(req: &apache::Request, eval: bool, code: &str, out: &mut Vec<u8>) -> Result<(), ()> {
    if !super::embed::is_initialized() {
        return Err(());
    }
    super::embed::prime_thread();
    let _serving = dispatch::Serving::enter(req);
    Python::attach(|py| {
        let ran = (|| -> PyResult<()> {
            let pyreq = Request::of(py, req)?;
            let r = pyreq.bind(py);
            let globals = match r.getattr("ssi_globals") {
                Ok(g) if g.is_instance_of::<PyDict>() => g.cast_into::<PyDict>()?,
                _ => {
                    let d = PyDict::new(py);
                    r.setattr("ssi_globals", &d)?;
                    d
                }
            };
            let sink = Bound::new(
                py,
                SsiFilter {
                    out: Mutex::new(Vec::new()),
                    req: pyreq.clone_ref(py),
                },
            )?;
            globals.set_item("filter", &sink)?;
            globals.set_item("__file__", r.getattr("filename")?)?;
            // mod_python's cleaning: Windows line ends and trailing blanks would be errors.
            let code = std::ffi::CString::new(code.replace("\r\n", "\n").trim_end())?;
            if eval {
                let value = py.eval(&code, Some(&globals), None)?;
                if !value.is_none() {
                    sink.get().write(value.str()?.as_any())?;
                }
            } else {
                py.run(&code, Some(&globals), None)?;
            }
            out.append(&mut sink.get().out.lock().unwrap_or_else(|e| e.into_inner()));
            Ok(())
        })();
        ran.map_err(|err| {
            let tb = dispatch::format_traceback(py, &err);
            if let Ok(r) = req.get() {
                r.log_error(
                    log::APLOG_ERR,
                    0,
                    "mod_py: the python element of an SSI page failed:",
                );
                for line in tb.lines() {
                    r.log_error(log::APLOG_ERR, 0, line);
                }
            }
        })
    })
}

//! modpy.apache.Server: server_rec under its C names.

use super::convert::{gone, py_opt_str};
use crate::apache::server::ServerStr;
use crate::apache::{self, log};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

#[pyclass(module = "modpy.apache", name = "Server", frozen)]
pub struct Server {
    inner: apache::Server,
}

impl Server {
    pub fn new(inner: apache::Server) -> Server {
        Server { inner }
    }

    fn s<'py>(&self, py: Python<'py>, f: ServerStr) -> Option<Bound<'py, PyString>> {
        py_opt_str(py, self.inner.str_field(f))
    }
}

#[pymethods]
impl Server {
    #[getter]
    fn server_hostname<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyString>> {
        self.s(py, ServerStr::ServerHostname)
    }
    #[getter]
    fn server_admin<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyString>> {
        self.s(py, ServerStr::ServerAdmin)
    }
    #[getter]
    fn error_fname<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyString>> {
        self.s(py, ServerStr::ErrorFname)
    }
    #[getter]
    fn defn_name<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyString>> {
        self.s(py, ServerStr::DefnName)
    }
    #[getter]
    fn path<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyString>> {
        self.s(py, ServerStr::Path)
    }
    #[getter]
    fn server_scheme<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyString>> {
        self.s(py, ServerStr::ServerScheme)
    }
    /// The ServerAlias names of this virtual host, as a tuple (mod_python's server.names).
    #[getter]
    fn names<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        pyo3::types::PyTuple::new(py, self.inner.names(false))
    }
    /// The ServerAlias names with wildcards.
    #[getter]
    fn wild_names<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        pyo3::types::PyTuple::new(py, self.inner.names(true))
    }
    #[getter]
    fn pathlen(&self) -> PyResult<i64> {
        Ok(self.inner.get().map_err(gone)?.pathlen as i64)
    }
    #[getter]
    fn defn_line_number(&self) -> PyResult<i64> {
        Ok(self.inner.get().map_err(gone)?.defn_line_number as i64)
    }
    #[getter]
    fn port(&self) -> PyResult<i64> {
        Ok(self.inner.get().map_err(gone)?.port as i64)
    }
    #[getter]
    fn is_virtual(&self) -> PyResult<bool> {
        Ok(self.inner.get().map_err(gone)?.is_virtual != 0)
    }
    /// Seconds, as mod_python gives them.
    #[getter]
    fn timeout(&self) -> PyResult<f64> {
        Ok(self.inner.get().map_err(gone)?.timeout as f64 / 1e6)
    }
    #[getter]
    fn keep_alive_timeout(&self) -> PyResult<f64> {
        Ok(self.inner.get().map_err(gone)?.keep_alive_timeout as f64 / 1e6)
    }
    #[getter]
    fn keep_alive_max(&self) -> PyResult<i64> {
        Ok(self.inner.get().map_err(gone)?.keep_alive_max as i64)
    }
    #[getter]
    fn keep_alive(&self) -> PyResult<bool> {
        Ok(self.inner.get().map_err(gone)?.keep_alive != 0)
    }
    #[getter]
    fn limit_req_line(&self) -> PyResult<i64> {
        Ok(self.inner.get().map_err(gone)?.limit_req_line as i64)
    }
    #[getter]
    fn limit_req_fieldsize(&self) -> PyResult<i64> {
        Ok(self.inner.get().map_err(gone)?.limit_req_fieldsize as i64)
    }
    #[getter]
    fn limit_req_fields(&self) -> PyResult<i64> {
        Ok(self.inner.get().map_err(gone)?.limit_req_fields as i64)
    }
    #[getter]
    fn loglevel(&self) -> i32 {
        self.inner.loglevel()
    }
    #[getter]
    fn next(&self) -> Option<Server> {
        self.inner.next().map(Server::new)
    }

    /// The directives set at this server's level (outside any section), by name, as
    /// req.get_config() gives them for a request; PythonImport lines too.
    fn get_config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = super::module::config_dict(py, self.inner.dir_config())?;
        let imports: Vec<(String, String)> = self.inner.config().imports.clone();
        d.set_item("PythonImport", imports)?;
        Ok(d)
    }

    /// The PythonOption values set at this server's level. As in mod_python, the same
    /// object each time in this process: what a handler or PythonImport stores in it stays.
    fn get_options<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        static OPTIONS: pyo3::sync::PyOnceLock<Py<PyDict>> = pyo3::sync::PyOnceLock::new();
        let all = OPTIONS
            .get_or_init(py, || PyDict::new(py).unbind())
            .bind(py);
        let key = self.inner.get().map_err(gone)? as *const _ as usize;
        if let Some(d) = all.get_item(key)? {
            return Ok(d.cast_into()?);
        }
        let d = PyDict::new(py);
        for (k, v) in self.inner.dir_config().effective_options() {
            d.set_item(k, v)?;
        }
        all.set_item(key, &d)?;
        Ok(d)
    }

    /// ap_log_error at `level` (default APLOG_ERR) on this server's log.
    #[pyo3(signature = (message, level=log::APLOG_ERR))]
    fn log_error(&self, message: &str, level: i32) {
        self.inner.log_error(level, 0, message);
    }

    /// mod_python's server.register_cleanup(req, callable, data): runs when the child exits.
    #[pyo3(signature = (_req, callable, data=None))]
    fn register_cleanup(
        &self,
        py: Python<'_>,
        _req: &Bound<'_, PyAny>,
        callable: Py<PyAny>,
        data: Option<Py<PyAny>>,
    ) {
        let data = data.unwrap_or_else(|| py.None());
        let server = self.inner;
        super::register_child_cleanup(Box::new(move || {
            super::dispatch::run_cleanup(server, callable, data)
        }));
    }
}

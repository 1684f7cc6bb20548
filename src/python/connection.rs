//! modpy.apache.Connection: conn_rec under its C names (plus mod_python's remote_ip).

use super::convert::{gone, py_opt_str};
use super::server::Server;
use super::table::Table;
use crate::apache::connection::ConnStr;
use crate::apache::{self, log};
use pyo3::prelude::*;
use pyo3::types::PyString;

#[pyclass(module = "modpy.apache", name = "Connection", frozen)]
pub struct Connection {
    inner: apache::Connection,
}

impl Connection {
    pub fn new(inner: apache::Connection) -> Connection {
        Connection { inner }
    }

    fn s<'py>(&self, py: Python<'py>, f: ConnStr) -> PyResult<Option<Bound<'py, PyString>>> {
        Ok(py_opt_str(py, self.inner.get().map_err(gone)?.str_field(f)))
    }
}

#[pymethods]
impl Connection {
    #[getter]
    fn client_ip<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.s(py, ConnStr::ClientIp)
    }
    /// mod_python / Apache 2.2 name of client_ip.
    #[getter]
    fn remote_ip<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.s(py, ConnStr::ClientIp)
    }
    #[getter]
    fn remote_host<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.s(py, ConnStr::RemoteHost)
    }
    #[getter]
    fn remote_logname<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.s(py, ConnStr::RemoteLogname)
    }
    #[getter]
    fn local_ip<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.s(py, ConnStr::LocalIp)
    }
    #[getter]
    fn local_host<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.s(py, ConnStr::LocalHost)
    }
    #[getter]
    fn log_id<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.s(py, ConnStr::LogId)
    }
    /// (client_ip, port), as mod_python's remote_addr.
    #[getter]
    fn remote_addr<'py>(&self, py: Python<'py>) -> PyResult<(Option<Bound<'py, PyString>>, u16)> {
        let c = self.inner.get().map_err(gone)?;
        Ok((py_opt_str(py, c.str_field(ConnStr::ClientIp)), c.ports().1))
    }
    /// c->client_addr as (ip, port): the peer of the connection (Apache 2.4's name).
    #[getter]
    fn client_addr<'py>(&self, py: Python<'py>) -> PyResult<(Option<Bound<'py, PyString>>, u16)> {
        self.remote_addr(py)
    }
    #[getter]
    fn double_reverse(&self) -> PyResult<i64> {
        Ok(self.inner.get().map_err(gone)?.rec().double_reverse() as i64)
    }
    #[getter]
    fn local_addr<'py>(&self, py: Python<'py>) -> PyResult<(Option<Bound<'py, PyString>>, u16)> {
        let c = self.inner.get().map_err(gone)?;
        Ok((py_opt_str(py, c.str_field(ConnStr::LocalIp)), c.ports().0))
    }
    #[getter]
    fn id(&self) -> PyResult<i64> {
        Ok(self.inner.get().map_err(gone)?.rec().id)
    }
    #[getter]
    fn keepalive(&self) -> PyResult<i64> {
        Ok(self.inner.get().map_err(gone)?.rec().keepalive as i64)
    }
    #[getter]
    fn keepalives(&self) -> PyResult<i64> {
        Ok(self.inner.get().map_err(gone)?.rec().keepalives as i64)
    }
    #[getter]
    fn aborted(&self) -> PyResult<bool> {
        Ok(self.inner.get().map_err(gone)?.aborted())
    }
    #[getter]
    fn notes(&self) -> PyResult<Table> {
        Ok(Table::new(self.inner.get().map_err(gone)?.notes()))
    }
    #[getter]
    fn base_server(&self) -> PyResult<Server> {
        Ok(Server::new(self.inner.get().map_err(gone)?.base_server()))
    }

    #[pyo3(signature = (message, level=log::APLOG_ERR))]
    fn log_error(&self, message: &str, level: i32) -> PyResult<()> {
        self.inner.get().map_err(gone)?.log_error(level, 0, message);
        Ok(())
    }

    // ---- issue 4: reading and writing the connection (src/python/connio.rs) ----

    /// Up to `len` bytes from the client: len 0 (the default) gives what has arrived (at most
    /// 8192 bytes), len < 0 everything until the client closes; b"" at the end.
    #[pyo3(signature = (len=0))]
    fn read<'py>(&self, py: Python<'py>, len: i64) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        super::connio::read(py, &self.inner, len)
    }

    /// One line (up to and including b"\n"; at most `len` bytes if len > 0); b"" at the end.
    #[pyo3(signature = (len=0))]
    fn readline<'py>(
        &self,
        py: Python<'py>,
        len: i64,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        super::connio::readline(py, &self.inner, len)
    }

    /// Sends data to the client (then a FLUSH, unless flush=0), the GIL released meanwhile.
    #[pyo3(signature = (data, flush=1))]
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>, flush: i32) -> PyResult<()> {
        super::connio::write(py, &self.inner, data, flush != 0)
    }
}

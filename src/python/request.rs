//! modpy.apache.Request: request_rec's fields under their C names and mod_python 3.5's
//! request methods. One object per request, shared by every phase (cached in the request's
//! state); after the request ends every use raises RuntimeError.

use super::connection::Connection;
use super::convert::{arg_bytes, gone, py_opt_str, py_str, req_err};
use super::server::Server;
use super::table::Table;
use crate::apache::request::{StrField, StrList, TableField};
use crate::apache::{self, log};
use pyo3::exceptions::{PyAttributeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use std::sync::Mutex;

#[pyclass(module = "modpy.apache", name = "Request", frozen, dict, weakref)]
pub struct Request {
    pub inner: apache::Request,
    /// Body bytes read ahead by readline() and not yet returned.
    rbuf: Mutex<Vec<u8>>,
}

impl Request {
    /// The Python object of `req`, created on first use and then reused by every phase.
    pub fn of(py: Python<'_>, req: &apache::Request) -> PyResult<Py<Request>> {
        let r = req.get().map_err(gone)?;
        let mut slot = r.ext().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(obj) = slot.as_ref().and_then(|b| b.downcast_ref::<Py<Request>>()) {
            return Ok(obj.clone_ref(py));
        }
        let obj = Py::new(
            py,
            Request {
                inner: req.clone(),
                rbuf: Mutex::new(Vec::new()),
            },
        )?;
        *slot = Some(Box::new(obj.clone_ref(py)));
        drop(slot);
        drop(r);
        // PythonCleanupHandler runs after this request's register_cleanup() callables.
        super::phases::schedule_cleanup(req);
        Ok(obj)
    }

    fn str_of<'py>(
        &self,
        py: Python<'py>,
        f: StrField,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        let r = self.inner.get().map_err(gone)?;
        Ok(py_opt_str(py, r.str_field(f)))
    }

    fn set_str(&self, f: StrField, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let r = self.inner.get().map_err(gone)?;
        let bytes = v.map(arg_bytes).transpose()?;
        r.set_str_field(f, bytes.as_deref())
            .map_err(|f| PyAttributeError::new_err(format!("{f:?} is read-only")))
    }

    fn table(&self, f: TableField) -> PyResult<Table> {
        Ok(Table::new(self.inner.get().map_err(gone)?.table(f)))
    }

    fn str_tuple<'py>(&self, py: Python<'py>, which: StrList) -> PyResult<Bound<'py, PyTuple>> {
        let r = self.inner.get().map_err(gone)?;
        PyTuple::new(py, r.str_list(which).into_iter().map(|b| py_str(py, b)))
    }

    fn int_of(&self, f: impl Fn(&crate::sys::request_rec) -> i64) -> PyResult<i64> {
        Ok(f(self.inner.get().map_err(gone)?.rec()))
    }

    /// `n` body bytes read straight into a new bytes object, GIL released (fewer only if
    /// the body ends early).
    fn read_exact_or_eof<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyBytes>> {
        let req = &self.inner;
        super::embed::bytes_filled(py, n, |buf| {
            py.detach(|| {
                req.get()
                    .map_err(apache::request::Error::Gone)?
                    .read_into_uninit(buf)
            })
            .map_err(|e| req_err(py, e))
        })
    }

    /// Reads up to `n` body bytes (fewer only at the end of the body), GIL released.
    fn read_n(&self, py: Python<'_>, n: usize) -> PyResult<Vec<u8>> {
        let mut buf = vec![0u8; n];
        let req = &self.inner;
        let got = py
            .detach(|| {
                req.get()
                    .map_err(apache::request::Error::Gone)?
                    .read_into(&mut buf)
            })
            .map_err(|e| req_err(py, e))?;
        buf.truncate(got);
        Ok(buf)
    }
}

/// apr_time_t (microseconds) as mod_python's float seconds.
fn seconds(t: i64) -> f64 {
    t as f64 / 1_000_000.0
}

const READ_CHUNK: usize = 64 * 1024;

#[pymethods]
impl Request {
    // ---- request_rec fields ----
    #[getter]
    fn the_request<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::TheRequest)
    }
    #[getter]
    fn protocol<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::Protocol)
    }
    #[getter]
    fn hostname<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::Hostname)
    }
    #[getter]
    fn method<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::Method)
    }
    #[getter]
    fn range<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::Range)
    }
    #[getter]
    fn log_id<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::LogId)
    }
    #[getter]
    fn useragent_ip<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::UseragentIp)
    }
    #[getter]
    fn useragent_host<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::UseragentHost)
    }
    #[getter]
    fn unparsed_uri<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::UnparsedUri)
    }
    #[setter]
    fn set_unparsed_uri(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.set_str(StrField::UnparsedUri, v)
    }
    #[getter]
    fn status_line<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::StatusLine)
    }
    #[setter]
    fn set_status_line(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.set_str(StrField::StatusLine, v)
    }
    #[getter]
    fn content_type<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::ContentType)
    }
    #[setter]
    fn set_content_type(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.set_str(StrField::ContentType, v)
    }
    #[getter]
    fn handler<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::Handler)
    }
    #[setter]
    fn set_handler(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.set_str(StrField::Handler, v)
    }
    #[getter]
    fn content_encoding<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::ContentEncoding)
    }
    #[setter]
    fn set_content_encoding(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.set_str(StrField::ContentEncoding, v)
    }
    #[getter]
    fn vlist_validator<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::VlistValidator)
    }
    #[setter]
    fn set_vlist_validator(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.set_str(StrField::VlistValidator, v)
    }
    #[getter]
    fn user<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::User)
    }
    #[setter]
    fn set_user(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.set_str(StrField::User, v)
    }
    #[getter]
    fn ap_auth_type<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::ApAuthType)
    }
    #[setter]
    fn set_ap_auth_type(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.set_str(StrField::ApAuthType, v)
    }
    #[getter]
    fn uri<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::Uri)
    }
    #[setter]
    fn set_uri(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.set_str(StrField::Uri, v)
    }
    #[getter]
    fn filename<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::Filename)
    }
    #[setter]
    fn set_filename(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.set_str(StrField::Filename, v)
    }
    #[getter]
    fn canonical_filename<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::CanonicalFilename)
    }
    #[setter]
    fn set_canonical_filename(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.set_str(StrField::CanonicalFilename, v)
    }
    #[getter]
    fn path_info<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::PathInfo)
    }
    #[setter]
    fn set_path_info(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.set_str(StrField::PathInfo, v)
    }
    #[getter]
    fn args<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        self.str_of(py, StrField::Args)
    }
    #[setter]
    fn set_args(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.set_str(StrField::Args, v)
    }

    #[getter]
    fn status(&self) -> PyResult<i64> {
        self.int_of(|r| r.status as i64)
    }
    #[setter]
    fn set_status(&self, v: i32) -> PyResult<()> {
        if !(100..=999).contains(&v) {
            return Err(PyValueError::new_err(format!(
                "{v} is not an HTTP status (100-999)"
            )));
        }
        self.inner.get().map_err(gone)?.set_status(v);
        Ok(())
    }
    #[getter]
    fn proto_num(&self) -> PyResult<i64> {
        self.int_of(|r| r.proto_num as i64)
    }
    #[getter]
    fn method_number(&self) -> PyResult<i64> {
        self.int_of(|r| r.method_number as i64)
    }
    #[getter]
    fn header_only(&self) -> PyResult<bool> {
        Ok(self.int_of(|r| r.header_only as i64)? != 0)
    }
    #[getter]
    fn allowed(&self) -> PyResult<i64> {
        self.int_of(|r| r.allowed)
    }
    #[getter]
    fn sent_bodyct(&self) -> PyResult<i64> {
        self.int_of(|r| r.sent_bodyct)
    }
    #[getter]
    fn bytes_sent(&self) -> PyResult<i64> {
        self.int_of(|r| r.bytes_sent)
    }
    #[getter]
    fn clength(&self) -> PyResult<i64> {
        self.int_of(|r| r.clength)
    }
    #[getter]
    fn chunked(&self) -> PyResult<i64> {
        self.int_of(|r| r.chunked as i64)
    }
    #[getter]
    fn read_body(&self) -> PyResult<i64> {
        self.int_of(|r| r.read_body as i64)
    }
    #[getter]
    fn read_chunked(&self) -> PyResult<bool> {
        Ok(self.int_of(|r| r.read_chunked as i64)? != 0)
    }
    #[getter]
    fn remaining(&self) -> PyResult<i64> {
        self.int_of(|r| r.remaining)
    }
    #[getter]
    fn read_length(&self) -> PyResult<i64> {
        self.int_of(|r| r.read_length)
    }
    #[getter]
    fn eos_sent(&self) -> PyResult<bool> {
        Ok(self.int_of(|r| r.eos_sent as i64)? != 0)
    }
    #[getter]
    fn request_time(&self) -> PyResult<f64> {
        Ok(seconds(self.int_of(|r| r.request_time)?))
    }
    #[getter]
    fn mtime(&self) -> PyResult<f64> {
        Ok(seconds(self.int_of(|r| r.mtime)?))
    }
    #[getter]
    fn assbackwards(&self) -> PyResult<i64> {
        self.int_of(|r| r.assbackwards as i64)
    }
    #[setter]
    fn set_assbackwards(&self, v: i32) -> PyResult<()> {
        self.inner
            .get()
            .map_err(gone)?
            .set_int_field("assbackwards", v);
        Ok(())
    }
    #[getter]
    fn proxyreq(&self) -> PyResult<i64> {
        self.int_of(|r| r.proxyreq as i64)
    }
    #[setter]
    fn set_proxyreq(&self, v: i32) -> PyResult<()> {
        self.inner.get().map_err(gone)?.set_int_field("proxyreq", v);
        Ok(())
    }
    #[getter]
    fn no_cache(&self) -> PyResult<i64> {
        self.int_of(|r| r.no_cache as i64)
    }
    #[setter]
    fn set_no_cache(&self, v: i32) -> PyResult<()> {
        self.inner.get().map_err(gone)?.set_int_field("no_cache", v);
        Ok(())
    }
    #[getter]
    fn no_local_copy(&self) -> PyResult<i64> {
        self.int_of(|r| r.no_local_copy as i64)
    }
    #[setter]
    fn set_no_local_copy(&self, v: i32) -> PyResult<()> {
        self.inner
            .get()
            .map_err(gone)?
            .set_int_field("no_local_copy", v);
        Ok(())
    }
    #[getter]
    fn used_path_info(&self) -> PyResult<i64> {
        self.int_of(|r| r.used_path_info as i64)
    }
    #[setter]
    fn set_used_path_info(&self, v: i32) -> PyResult<()> {
        self.inner
            .get()
            .map_err(gone)?
            .set_int_field("used_path_info", v);
        Ok(())
    }
    #[getter]
    fn expecting_100(&self) -> PyResult<i64> {
        self.int_of(|r| r.expecting_100 as i64)
    }
    #[getter]
    fn allowed_xmethods<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        self.str_tuple(py, StrList::AllowedXmethods)
    }
    #[getter]
    fn allowed_methods<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        self.str_tuple(py, StrList::AllowedMethods)
    }
    #[getter]
    fn content_languages<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        self.str_tuple(py, StrList::ContentLanguages)
    }
    /// mod_python's flag: has a content type been set for the response?
    #[getter]
    fn _content_type_set(&self) -> PyResult<bool> {
        let r = self.inner.get().map_err(gone)?;
        Ok(r.str_field(StrField::ContentType).is_some())
    }
    /// (useragent_ip, port): the client as mod_remoteip and the like see it.
    #[getter]
    fn useragent_addr<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Option<Bound<'py, PyString>>, u16)> {
        let r = self.inner.get().map_err(gone)?;
        let (ip, port) = r.useragent_addr();
        Ok((py_opt_str(py, ip), port))
    }
    /// r->finfo as mod_python's tuple: (mode, ino, dev, nlink, uid, gid, size, atime, mtime,
    /// ctime, fname, name, filetype); a field APR did not fill is None, times in seconds.
    #[getter]
    fn finfo<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        use crate::sys;
        let r = self.inner.get().map_err(gone)?;
        let f = r.finfo();
        let has = |bits: u32| f.valid & bits as i32 == bits as i32;
        let int = |bits: u32, v: i64| -> PyResult<Bound<'py, PyAny>> {
            Ok(has(bits).then_some(v).into_pyobject(py)?.into_any())
        };
        let time = |bits: u32, v: i64| -> PyResult<Bound<'py, PyAny>> {
            Ok(has(bits).then(|| seconds(v)).into_pyobject(py)?.into_any())
        };
        let name = if f.name.is_null() {
            None
        } else {
            // SAFETY: a string of the request pool (alive while `r` is).
            unsafe { std::ffi::CStr::from_ptr(f.name) }.to_str().ok()
        };
        PyTuple::new(
            py,
            [
                int(sys::APR_FINFO_PROT, f.protection as i64)?,
                int(sys::APR_FINFO_INODE, f.inode as i64)?,
                int(sys::APR_FINFO_DEV, f.device as i64)?,
                int(sys::APR_FINFO_NLINK, f.nlink as i64)?,
                int(sys::APR_FINFO_USER, f.user as i64)?,
                int(sys::APR_FINFO_GROUP, f.group as i64)?,
                int(sys::APR_FINFO_SIZE, f.size)?,
                time(sys::APR_FINFO_ATIME, f.atime)?,
                time(sys::APR_FINFO_MTIME, f.mtime)?,
                time(sys::APR_FINFO_CTIME, f.ctime)?,
                py_opt_str(py, r.finfo_fname())
                    .into_pyobject(py)?
                    .into_any(),
                name.into_pyobject(py)?.into_any(),
                int(sys::APR_FINFO_TYPE, f.filetype as i64)?,
            ],
        )
    }

    /// (scheme, hostinfo, user, password, hostname, port, path, query, fragment)
    #[getter]
    fn parsed_uri<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let r = self.inner.get().map_err(gone)?;
        let u = r.parsed_uri();
        let s = |b: Option<&[u8]>| py_opt_str(py, b);
        (
            s(u.scheme),
            s(u.hostinfo),
            s(u.user),
            s(u.password),
            s(u.hostname),
            u.port,
            s(u.path),
            s(u.query),
            s(u.fragment),
        )
            .into_pyobject(py)
    }

    #[getter]
    fn headers_in(&self) -> PyResult<Table> {
        self.table(TableField::HeadersIn)
    }
    #[getter]
    fn headers_out(&self) -> PyResult<Table> {
        self.table(TableField::HeadersOut)
    }
    #[getter]
    fn err_headers_out(&self) -> PyResult<Table> {
        self.table(TableField::ErrHeadersOut)
    }
    #[getter]
    fn subprocess_env(&self) -> PyResult<Table> {
        self.table(TableField::SubprocessEnv)
    }
    #[getter]
    fn notes(&self) -> PyResult<Table> {
        self.table(TableField::Notes)
    }
    #[getter]
    fn trailers_in(&self) -> PyResult<Table> {
        self.table(TableField::TrailersIn)
    }
    #[getter]
    fn trailers_out(&self) -> PyResult<Table> {
        self.table(TableField::TrailersOut)
    }

    #[getter]
    fn connection(&self) -> PyResult<Connection> {
        Ok(Connection::new(
            self.inner.get().map_err(gone)?.connection(),
        ))
    }
    #[getter]
    fn server(&self) -> PyResult<Server> {
        Ok(Server::new(self.inner.get().map_err(gone)?.server()))
    }
    #[getter]
    fn main(&self, py: Python<'_>) -> PyResult<Option<Py<Request>>> {
        self.related(py, "main")
    }
    #[getter]
    fn prev(&self, py: Python<'_>) -> PyResult<Option<Py<Request>>> {
        self.related(py, "prev")
    }
    #[getter]
    fn next(&self, py: Python<'_>) -> PyResult<Option<Py<Request>>> {
        self.related(py, "next")
    }

    // ---- output ----

    /// mod_python's write(data, flush=1): flush=1 sends now (no copy of a bytes object);
    /// flush=0 buffers (passed down every 64 KiB, on flush() and at the end of the handler).
    #[pyo3(signature = (data, flush=1))]
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>, flush: i32) -> PyResult<()> {
        let bytes = arg_bytes(data)?;
        let req = &self.inner;
        if flush == 0 {
            let r = req.get().map_err(gone)?;
            if !r.write_passes_down(bytes.len()) {
                // Only a copy into the pending brigade: no I/O, so the GIL is kept (releasing
                // it costs a thread switch when other threads wait for it).
                return r
                    .write(&bytes, false)
                    .map_err(|e| req_err(py, apache::request::Error::Io(e)));
            }
        }
        py.detach(|| {
            let r = req.get().map_err(apache::request::Error::Gone)?;
            r.write(&bytes, flush != 0)
                .map_err(apache::request::Error::Io)
        })
        .map_err(|e| req_err(py, e))
    }

    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let req = &self.inner;
        py.detach(|| {
            req.get()
                .map_err(apache::request::Error::Gone)?
                .flush()
                .map_err(apache::request::Error::Io)
        })
        .map_err(|e| req_err(py, e))
    }

    #[pyo3(signature = (path, offset=0, len=-1))]
    fn sendfile(
        &self,
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        offset: i64,
        len: i64,
    ) -> PyResult<i64> {
        let path = arg_bytes(path)?;
        let req = &self.inner;
        py.detach(|| {
            let r = req.get().map_err(apache::request::Error::Gone)?;
            r.sendfile(&path, offset, (len >= 0).then_some(len))
                .map_err(apache::request::Error::Io)
        })
        .map_err(|e| req_err(py, e))
    }

    fn set_content_length(&self, n: i64) -> PyResult<()> {
        self.inner.get().map_err(gone)?.set_content_length(n);
        Ok(())
    }

    // ---- input ----

    /// Reads the body: all of it (len < 0), or up to `len` bytes; b"" at the end.
    #[pyo3(signature = (len=-1))]
    pub(crate) fn read<'py>(&self, py: Python<'py>, len: i64) -> PyResult<Bound<'py, PyBytes>> {
        let mut out = std::mem::take(&mut *self.rbuf.lock().unwrap_or_else(|e| e.into_inner()));
        if len >= 0 && out.len() >= len as usize {
            let rest = out.split_off(len as usize);
            *self.rbuf.lock().unwrap_or_else(|e| e.into_inner()) = rest;
            return Ok(PyBytes::new(py, &out));
        }
        let req = &self.inner;
        if len >= 0 {
            // read(n) with nothing read ahead and a known body length (the common case of
            // WSGI frameworks): straight into the bytes object, no zero-filled buffer, no copy.
            if out.is_empty() {
                let remaining = py
                    .detach(|| {
                        req.get()
                            .map_err(apache::request::Error::Gone)?
                            .body_remaining()
                    })
                    .map_err(|e| req_err(py, e))?;
                if let Some(rem) = remaining {
                    return self.read_exact_or_eof(py, (len as u64).min(rem) as usize);
                }
            }
            let more = self.read_n(py, len as usize - out.len())?;
            out.extend_from_slice(&more);
            return Ok(PyBytes::new(py, &out));
        }
        // Everything: Content-Length bodies in one read of the known size, else by chunks.
        let remaining = py
            .detach(|| {
                req.get()
                    .map_err(apache::request::Error::Gone)?
                    .body_remaining()
            })
            .map_err(|e| req_err(py, e))?;
        if let Some(n) = remaining {
            if out.is_empty() {
                return self.read_exact_or_eof(py, n as usize);
            }
        }
        loop {
            let chunk = self.read_n(py, READ_CHUNK)?;
            let done = chunk.len() < READ_CHUNK;
            out.extend_from_slice(&chunk);
            if done {
                return Ok(PyBytes::new(py, &out));
            }
        }
    }

    /// One line of the body (up to and including b"\n"), at most `len` bytes if len >= 0.
    #[pyo3(signature = (len=-1))]
    pub(crate) fn readline<'py>(&self, py: Python<'py>, len: i64) -> PyResult<Bound<'py, PyBytes>> {
        let limit = if len < 0 { usize::MAX } else { len as usize };
        let mut buf = std::mem::take(&mut *self.rbuf.lock().unwrap_or_else(|e| e.into_inner()));
        let mut scanned = 0;
        loop {
            if let Some(i) = buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = (scanned + i + 1).min(limit);
                let rest = buf.split_off(end);
                *self.rbuf.lock().unwrap_or_else(|e| e.into_inner()) = rest;
                return Ok(PyBytes::new(py, &buf));
            }
            if buf.len() >= limit {
                let rest = buf.split_off(limit);
                *self.rbuf.lock().unwrap_or_else(|e| e.into_inner()) = rest;
                return Ok(PyBytes::new(py, &buf));
            }
            scanned = buf.len();
            let chunk = self.read_n(py, 8192)?;
            if chunk.is_empty() {
                return Ok(PyBytes::new(py, &buf));
            }
            buf.extend_from_slice(&chunk);
        }
    }

    /// All remaining lines (stopping once `sizehint` bytes have been read, if > 0).
    #[pyo3(signature = (sizehint=-1))]
    pub(crate) fn readlines<'py>(
        &self,
        py: Python<'py>,
        sizehint: i64,
    ) -> PyResult<Bound<'py, PyList>> {
        let lines = PyList::empty(py);
        let mut total = 0i64;
        loop {
            let line = self.readline(py, -1)?;
            let n = line.as_bytes().len();
            if n == 0 {
                return Ok(lines);
            }
            total += n as i64;
            lines.append(line)?;
            if sizehint > 0 && total >= sizehint {
                return Ok(lines);
            }
        }
    }

    fn discard_request_body(&self, py: Python<'_>) -> PyResult<i32> {
        let req = &self.inner;
        py.detach(|| req.get().map(|r| r.discard_request_body()))
            .map_err(gone)
    }

    // ---- the rest of mod_python's request API ----

    /// The Basic auth password (ap_get_basic_auth_pw; sets req.user), or None when the
    /// request has no Basic credentials.
    fn get_basic_auth_pw<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        let (rc, pw) = self.inner.get().map_err(gone)?.get_basic_auth_pw();
        if rc != 0 {
            return Ok(None);
        }
        Ok(py_opt_str(py, pw.as_deref()))
    }

    fn add_common_vars(&self) -> PyResult<()> {
        self.inner.get().map_err(gone)?.add_common_vars();
        Ok(())
    }

    fn add_cgi_vars(&self) -> PyResult<()> {
        self.inner.get().map_err(gone)?.add_cgi_vars();
        Ok(())
    }

    /// ap_internal_redirect: serves `uri` as a new request now; the caller should then
    /// return apache.OK (or DONE).
    fn internal_redirect(&self, py: Python<'_>, uri: &Bound<'_, PyAny>) -> PyResult<()> {
        let uri = arg_bytes(uri)?;
        let req = &self.inner;
        py.detach(|| req.get().map(|r| r.internal_redirect(&uri)))
            .map_err(gone)
    }

    fn construct_url<'py>(
        &self,
        py: Python<'py>,
        uri: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, pyo3::types::PyString>> {
        let u = self
            .inner
            .get()
            .map_err(gone)?
            .construct_url(&arg_bytes(uri)?);
        Ok(py_str(py, &u))
    }

    fn meets_conditions(&self) -> PyResult<i32> {
        Ok(self.inner.get().map_err(gone)?.meets_conditions())
    }

    fn set_etag(&self) -> PyResult<()> {
        self.inner.get().map_err(gone)?.set_etag();
        Ok(())
    }

    fn set_last_modified(&self) -> PyResult<()> {
        self.inner.get().map_err(gone)?.set_last_modified();
        Ok(())
    }

    /// dependency_mtime in seconds, as mod_python takes it.
    fn update_mtime(&self, dependency_mtime: f64) -> PyResult<()> {
        self.inner
            .get()
            .map_err(gone)?
            .update_mtime((dependency_mtime * 1_000_000.0) as i64);
        Ok(())
    }

    /// ap_get_remote_host(type=REMOTE_NAME(1)); with str_is_ip=True returns (host, is_ip).
    #[pyo3(signature = (r#type=1, str_is_ip=false))]
    fn get_remote_host<'py>(
        &self,
        py: Python<'py>,
        r#type: i32,
        str_is_ip: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (h, is_ip) = self.inner.get().map_err(gone)?.get_remote_host(r#type);
        let h = py_opt_str(py, h.as_deref());
        if str_is_ip {
            Ok((h, is_ip).into_pyobject(py)?.into_any())
        } else {
            Ok(h.into_pyobject(py)?.into_any())
        }
    }

    /// The effective mod_py directives of this request's directory, as a dict.
    fn get_config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.inner.get().map_err(gone)?.per_dir_config().clone();
        super::module::config_dict(py, &c)
    }

    /// The PythonOption values of this request's directory, as a dict.
    fn get_options<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self
            .inner
            .get()
            .map_err(gone)?
            .per_dir_config()
            .effective_options();
        let d = PyDict::new(py);
        for (k, v) in c {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    #[pyo3(signature = (methods, reset=0))]
    fn allow_methods(&self, methods: Vec<Bound<'_, PyAny>>, reset: i32) -> PyResult<()> {
        let ms = methods
            .iter()
            .map(|m| arg_bytes(m).map(|b| b.into_owned()))
            .collect::<PyResult<Vec<_>>>()?;
        self.inner
            .get()
            .map_err(gone)?
            .allow_methods(&ms, reset != 0);
        Ok(())
    }

    fn auth_type<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        Ok(py_opt_str(
            py,
            self.inner.get().map_err(gone)?.auth_type().as_deref(),
        ))
    }

    fn auth_name<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        Ok(py_opt_str(
            py,
            self.inner.get().map_err(gone)?.auth_name().as_deref(),
        ))
    }

    fn some_auth_required(&self) -> PyResult<bool> {
        Ok(self.inner.get().map_err(gone)?.some_auth_required())
    }

    fn is_initial_req(&self) -> PyResult<bool> {
        Ok(self.inner.get().map_err(gone)?.is_initial_req())
    }

    fn is_https(&self) -> PyResult<bool> {
        Ok(self.inner.get().map_err(gone)?.is_https())
    }

    fn ssl_var_lookup<'py>(
        &self,
        py: Python<'py>,
        name: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        let v = self
            .inner
            .get()
            .map_err(gone)?
            .ssl_var_lookup(&arg_bytes(name)?);
        Ok(py_opt_str(py, v.as_deref()))
    }

    /// Calls callable(data) after the request ends (errors go to the error log).
    #[pyo3(signature = (callable, data=None))]
    fn register_cleanup(
        &self,
        py: Python<'_>,
        callable: Py<PyAny>,
        data: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let data = data.unwrap_or_else(|| py.None());
        let server = self.inner.get().map_err(gone)?.server();
        self.inner
            .get()
            .map_err(gone)?
            .register_cleanup(Box::new(move || {
                super::dispatch::run_cleanup(server, callable, data)
            }));
        Ok(())
    }

    // ---- request phases, subrequests, filters (issue 4; src/python/subrequest.rs) ----

    /// The phase running now, by its directive name ("PythonFixupHandler"); None outside a
    /// Python*Handler (mod_python's req.phase).
    #[getter]
    fn phase<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, pyo3::types::PyString>>> {
        let r = self.inner.get().map_err(gone)?;
        Ok(r.current_phase()
            .map(|p| pyo3::types::PyString::new(py, p.directive())))
    }

    /// The handler being called now (mod_python's req.hlist; None outside a Python*Handler).
    #[getter]
    fn hlist(&self) -> PyResult<Option<HandlerList>> {
        let r = self.inner.get().map_err(gone)?;
        let c = r.per_dir_config();
        let is_location = c.location_handler == Some(true);
        Ok(r.current_handler().map(|(_, e)| HandlerList {
            handler: e.handler,
            directory: e
                .directory
                .or_else(|| c.location.clone().filter(|_| is_location)),
            silent: e.silent,
            is_location,
        }))
    }

    /// The name mod_python 3.5 gives this request's interpreter (PythonInterpreter,
    /// PythonInterpPerDirectory, PythonInterpPerDirective, else the server's name). mod_py
    /// runs every handler in one interpreter; the name lets code that looks at it go on.
    #[getter]
    fn interpreter(&self) -> PyResult<String> {
        let r = self.inner.get().map_err(gone)?;
        let c = r.per_dir_config();
        let parent_dir = |f: &str| f.rfind('/').map(|i| f[..=i].to_string());
        let name = if let Some(i) = &c.interpreter {
            Some(i.clone())
        } else if c.interp_per_directory == Some(true) {
            r.str_field(StrField::Filename)
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .and_then(|f| {
                    if std::path::Path::new(&f).is_dir() && !f.ends_with('/') {
                        Some(format!("{f}/"))
                    } else {
                        parent_dir(&f)
                    }
                })
        } else if c.interp_per_directive == Some(true) {
            r.current_handler()
                .and_then(|(_, e)| e.directory)
                .filter(|d| !d.is_empty())
        } else {
            let server = r.server();
            let host = server.str_field(crate::apache::server::ServerStr::ServerHostname);
            host.map(|h| String::from_utf8_lossy(h).into_owned())
        };
        Ok(name.unwrap_or_else(|| "main_interpreter".into()))
    }

    /// ap_document_root(): the DocumentRoot of the request's (virtual) server.
    fn document_root<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyString>> {
        Ok(py_str(py, self.inner.get().map_err(gone)?.document_root()))
    }

    /// mod_python's add_handler(htype, handler, dir=None): runs `handler` in phase `htype`
    /// ("PythonFixupHandler"...) of this request, after the configured ones.
    #[pyo3(signature = (htype, handler, dir=None))]
    fn add_handler(&self, htype: &str, handler: &str, dir: Option<&str>) -> PyResult<()> {
        super::subrequest::add_handler(&self.inner, htype, handler, dir)
    }

    /// ap_add_output_filter(name): adds a registered output filter (C or Python) by name.
    fn add_output_filter(&self, name: &Bound<'_, PyAny>) -> PyResult<()> {
        super::subrequest::add_filter(&self.inner, &arg_bytes(name)?, true)
    }

    /// mod_python's register_output_filter(filter_name, filter, dir=None): `filter`
    /// (module[::function]) becomes an output filter of this request named `filter_name`,
    /// for add_output_filter(filter_name).
    #[pyo3(signature = (filter_name, filter, dir=None))]
    fn register_output_filter(
        &self,
        filter_name: &str,
        filter: &str,
        dir: Option<&str>,
    ) -> PyResult<()> {
        super::subrequest::register_filter(&self.inner, filter_name, filter, dir, false)
    }

    /// The input-filter twin of register_output_filter.
    #[pyo3(signature = (filter_name, filter, dir=None))]
    fn register_input_filter(
        &self,
        filter_name: &str,
        filter: &str,
        dir: Option<&str>,
    ) -> PyResult<()> {
        super::subrequest::register_filter(&self.inner, filter_name, filter, dir, true)
    }

    /// ap_add_input_filter(name): adds a registered input filter (C or Python) by name.
    fn add_input_filter(&self, name: &Bound<'_, PyAny>) -> PyResult<()> {
        super::subrequest::add_filter(&self.inner, &arg_bytes(name)?, false)
    }

    /// ap_sub_req_lookup_uri: a subrequest for `uri` (phases up to fixups have run; see its
    /// status). run() sends its response into this request's.
    fn lookup_uri(&self, py: Python<'_>, uri: &Bound<'_, PyAny>) -> PyResult<Py<Request>> {
        super::subrequest::lookup(py, &self.inner, &arg_bytes(uri)?, false)
    }

    fn sub_req_lookup_uri(&self, py: Python<'_>, uri: &Bound<'_, PyAny>) -> PyResult<Py<Request>> {
        self.lookup_uri(py, uri)
    }

    /// ap_sub_req_lookup_file: a subrequest for a file (relative to this request's directory).
    fn lookup_file(&self, py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<Py<Request>> {
        super::subrequest::lookup(py, &self.inner, &arg_bytes(path)?, true)
    }

    fn sub_req_lookup_file(
        &self,
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
    ) -> PyResult<Py<Request>> {
        self.lookup_file(py, path)
    }

    /// ap_run_sub_req: runs this subrequest (made by lookup_uri/lookup_file); returns its
    /// handler's status. Not run (its status returned) when the lookup did not give 200.
    fn run(&self, py: Python<'_>) -> PyResult<i32> {
        super::subrequest::run(py, &self.inner)
    }

    fn run_sub_req(&self, py: Python<'_>) -> PyResult<i32> {
        self.run(py)
    }

    /// ap_destroy_sub_req: frees this subrequest now; the object then raises RuntimeError.
    fn destroy_sub_req(&self, py: Python<'_>) -> PyResult<()> {
        super::subrequest::destroy(py, &self.inner)
    }

    fn destroy(&self, py: Python<'_>) -> PyResult<()> {
        self.destroy_sub_req(py)
    }

    // ---- end of issue 4 ----

    /// ap_log_rerror at `level` (default APLOG_ERR), with the request's context.
    #[pyo3(signature = (message, level=log::APLOG_ERR))]
    fn log_error(&self, message: &str, level: i32) -> PyResult<()> {
        self.inner.get().map_err(gone)?.log_error(level, 0, message);
        Ok(())
    }

    /// True while the request is being served; False once it has ended.
    fn is_alive(&self) -> bool {
        self.inner.liveness().is_alive()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        match self.inner.get() {
            Ok(r) => format!(
                "<modpy.apache.Request {} {}>",
                py_opt_str(py, r.str_field(StrField::Method))
                    .map_or(String::new(), |s| s.to_string()),
                py_opt_str(py, r.str_field(StrField::Uri)).map_or(String::new(), |s| s.to_string())
            ),
            Err(_) => "<modpy.apache.Request (ended)>".into(),
        }
    }
}

impl Request {
    fn related(&self, py: Python<'_>, which: &str) -> PyResult<Option<Py<Request>>> {
        match self.inner.get().map_err(gone)?.related(which) {
            Some(r) => Ok(Some(Request::of(py, &r)?)),
            None => Ok(None),
        }
    }
}

/// mod_python's hlist object: the handler being called, where it was configured.
#[pyclass(module = "modpy.apache", name = "HandlerList", frozen, get_all)]
pub struct HandlerList {
    handler: String,
    /// The <Directory> of the directive (with a trailing slash), the one given to
    /// add_handler, or the path of its <Location>; None at the server level.
    directory: Option<String>,
    /// PythonHandlerModule: a module without the phase's function is skipped silently.
    silent: bool,
    is_location: bool,
}

#[pymethods]
impl HandlerList {
    fn __repr__(&self) -> String {
        format!(
            "<HandlerList {:?} directory={:?}>",
            self.handler, self.directory
        )
    }
}

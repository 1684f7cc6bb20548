//! modpy.apache.Brigade and Bucket: apr_bucket_brigade and apr_bucket for filters written
//! close to C. Usable only inside a call of their filter, on its thread; a bucket handed to
//! Apache (passed on, deleted, or left in the brigade Apache lent the call) can no longer be
//! used, and says so instead of touching freed memory.

use super::filter::{aprerror, Filter};
use crate::apache::brigade::{BbError, Brigade as ABrigade, Bucket as ABucket, Origin};
use crate::apache::Gone;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::sync::Mutex;

pub fn bb_err(e: BbError) -> PyErr {
    match e {
        BbError::Gone(g) => PyRuntimeError::new_err(g.to_string()),
        BbError::NotActive | BbError::Dead(_) => PyRuntimeError::new_err(e.to_string()),
        BbError::Invalid(_) => PyValueError::new_err(e.to_string()),
        BbError::Status(s, _) => aprerror(s, &e.to_string()),
    }
}

fn gone(g: Gone) -> PyErr {
    PyRuntimeError::new_err(g.to_string())
}

/// The connection and pool new brigades and buckets come from: a Filter or a Brigade.
fn origin_of(src: &Bound<'_, PyAny>) -> PyResult<Origin> {
    if let Ok(f) = src.cast::<Filter>() {
        return f.get().handle().origin().map_err(gone);
    }
    if let Ok(b) = src.cast::<Brigade>() {
        return Ok(b.get().inner.origin().clone());
    }
    Err(PyTypeError::new_err(
        "expected a Filter or a Brigade (where the new object's memory comes from)",
    ))
}

/// apr_bucket_brigade.
#[pyclass(module = "modpy.apache", name = "Brigade", frozen, weakref)]
pub struct Brigade {
    pub(crate) inner: ABrigade,
}

impl Brigade {
    pub fn wrap(inner: ABrigade) -> Brigade {
        Brigade { inner }
    }
}

fn bucket(py: Python<'_>, b: Option<ABucket>) -> PyResult<Option<Py<Bucket>>> {
    b.map(|b| Py::new(py, Bucket { inner: b })).transpose()
}

#[pymethods]
impl Brigade {
    /// Brigade(f): a new empty brigade (apr_brigade_create) in the filter's pool.
    #[new]
    fn new(src: &Bound<'_, PyAny>) -> PyResult<Brigade> {
        let o = origin_of(src)?;
        Ok(Brigade {
            inner: ABrigade::create(&o).map_err(bb_err)?,
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> BrigadeIter {
        BrigadeIter {
            bb: slf.inner.clone(),
            state: Mutex::new(IterState::Start),
        }
    }

    /// Number of buckets.
    fn __len__(&self) -> PyResult<usize> {
        self.inner.count().map_err(bb_err)
    }

    #[getter]
    fn first(&self, py: Python<'_>) -> PyResult<Option<Py<Bucket>>> {
        bucket(py, self.inner.first().map_err(bb_err)?)
    }

    #[getter]
    fn last(&self, py: Python<'_>) -> PyResult<Option<Py<Bucket>>> {
        bucket(py, self.inner.last().map_err(bb_err)?)
    }

    fn is_empty(&self) -> PyResult<bool> {
        self.inner.is_empty().map_err(bb_err)
    }

    /// apr_brigade_length: bytes of data (reads pipes and sockets to find out with
    /// read_all=True; else None for such a brigade).
    #[pyo3(signature = (read_all=true))]
    fn length(&self, py: Python<'_>, read_all: bool) -> PyResult<Option<i64>> {
        let b = &self.inner;
        py.detach(|| b.length(read_all)).map_err(bb_err)
    }

    /// All the data of the brigade as one bytes object (apr_brigade_flatten).
    fn read<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = &self.inner;
        py.detach(|| b.load_all()).map_err(bb_err)?;
        self.inner
            .flatten_with(|n, fill| {
                PyBytes::new_with(py, n, |buf| {
                    fill(buf);
                    Ok(())
                })
            })
            .map_err(bb_err)?
    }

    /// APR_BRIGADE_INSERT_TAIL (the bucket leaves the brigade it was in).
    fn append(&self, b: &Bucket) -> PyResult<()> {
        self.inner.insert(&b.inner, false).map_err(bb_err)
    }

    /// APR_BRIGADE_INSERT_HEAD.
    fn prepend(&self, b: &Bucket) -> PyResult<()> {
        self.inner.insert(&b.inner, true).map_err(bb_err)
    }

    /// apr_brigade_cleanup: destroys every bucket.
    fn cleanup(&self) -> PyResult<()> {
        self.inner.cleanup().map_err(bb_err)
    }

    /// apr_brigade_split_ex: `bucket` and all after it move to a new brigade, returned.
    fn split(&self, bucket: &Bucket) -> PyResult<Brigade> {
        Ok(Brigade {
            inner: self.inner.split_at(&bucket.inner).map_err(bb_err)?,
        })
    }

    /// APR_BRIGADE_CONCAT: moves every bucket of `other` to the end of this brigade.
    fn concat(&self, other: &Brigade) -> PyResult<()> {
        self.inner.concat(&other.inner).map_err(bb_err)
    }

    /// Sets aside every bucket (kept brigades are set aside at the end of each call anyway).
    fn setaside(&self) -> PyResult<()> {
        self.inner.setaside().map_err(bb_err)
    }

    fn __repr__(&self) -> String {
        match self.inner.count() {
            Ok(n) => format!("<modpy.apache.Brigade of {n} bucket(s)>"),
            Err(_) => "<modpy.apache.Brigade (not usable here)>".into(),
        }
    }
}

enum IterState {
    Start,
    At(ABucket),
    Done,
}

#[pyclass(module = "modpy.apache", name = "BrigadeIterator", frozen)]
pub struct BrigadeIter {
    bb: ABrigade,
    state: Mutex<IterState>,
}

#[pymethods]
impl BrigadeIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<Bucket>>> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let next = match &*st {
            IterState::Start => self.bb.first().map_err(bb_err)?,
            IterState::At(b) => b.next_in(&self.bb).map_err(bb_err)?,
            IterState::Done => None,
        };
        *st = match &next {
            Some(b) => IterState::At(b.clone()),
            None => IterState::Done,
        };
        bucket(py, next)
    }
}

/// apr_bucket.
#[pyclass(module = "modpy.apache", name = "Bucket", frozen, weakref)]
pub struct Bucket {
    inner: ABucket,
}

#[pymethods]
impl Bucket {
    /// Bucket.heap(f_or_brigade, data): a HEAP bucket holding a copy of data.
    #[staticmethod]
    fn heap(src: &Bound<'_, PyAny>, data: &Bound<'_, PyAny>) -> PyResult<Bucket> {
        let o = origin_of(src)?;
        let bytes = super::convert::arg_bytes(data)?;
        Ok(Bucket {
            inner: ABucket::heap(&o, &bytes).map_err(bb_err)?,
        })
    }

    /// Bucket.flush(f_or_brigade): a FLUSH bucket.
    #[staticmethod]
    fn flush(src: &Bound<'_, PyAny>) -> PyResult<Bucket> {
        Ok(Bucket {
            inner: ABucket::flush(&origin_of(src)?).map_err(bb_err)?,
        })
    }

    /// Bucket.eos(f_or_brigade): an EOS bucket.
    #[staticmethod]
    fn eos(src: &Bound<'_, PyAny>) -> PyResult<Bucket> {
        Ok(Bucket {
            inner: ABucket::eos(&origin_of(src)?).map_err(bb_err)?,
        })
    }

    /// Bucket.error(f_or_brigade, status): an ERROR bucket (ap_bucket_error_create).
    #[staticmethod]
    fn error(src: &Bound<'_, PyAny>, status: i32) -> PyResult<Bucket> {
        Ok(Bucket {
            inner: ABucket::error(&origin_of(src)?, status).map_err(bb_err)?,
        })
    }

    /// b->type->name: "HEAP", "TRANSIENT", "FILE", "MMAP", "POOL", "IMMORTAL", "FLUSH",
    /// "EOS", "ERROR", "EOC", "SOCKET", "PIPE"...
    #[getter]
    fn r#type(&self) -> PyResult<String> {
        Ok(self.inner.info().map_err(bb_err)?.type_name)
    }

    #[getter]
    fn is_metadata(&self) -> PyResult<bool> {
        Ok(self.inner.info().map_err(bb_err)?.is_metadata)
    }

    #[getter]
    fn is_eos(&self) -> PyResult<bool> {
        Ok(self.inner.info().map_err(bb_err)?.type_name == "EOS")
    }

    #[getter]
    fn is_flush(&self) -> PyResult<bool> {
        Ok(self.inner.info().map_err(bb_err)?.type_name == "FLUSH")
    }

    #[getter]
    fn is_error(&self) -> PyResult<bool> {
        Ok(self.inner.info().map_err(bb_err)?.error_status.is_some())
    }

    /// The HTTP status of an ERROR bucket, else None.
    #[getter]
    fn error_status(&self) -> PyResult<Option<i32>> {
        Ok(self.inner.info().map_err(bb_err)?.error_status)
    }

    /// Bytes of data; None while unknown (pipes, sockets: read() finds out).
    #[getter]
    fn length(&self) -> PyResult<Option<u64>> {
        Ok(self.inner.info().map_err(bb_err)?.length)
    }

    /// Offset of the data in its file/mmap/heap buffer (b->start).
    #[getter]
    fn start(&self) -> PyResult<i64> {
        Ok(self.inner.info().map_err(bb_err)?.start)
    }

    /// The bucket's data (apr_bucket_read; b"" for metadata). A FILE bucket reads one chunk
    /// (up to 4 MiB, memory-mapped) and becomes an MMAP or HEAP bucket of that chunk, with a
    /// new FILE bucket for the rest inserted after it.
    #[pyo3(signature = (block=true))]
    fn read<'py>(&self, py: Python<'py>, block: bool) -> PyResult<Bound<'py, PyBytes>> {
        if self.inner.needs_io() {
            // Waiting on a pipe or socket happens without the GIL.
            let b = &self.inner;
            py.detach(|| b.load(block)).map_err(bb_err)?;
        }
        self.inner
            .read_with(block, |d| PyBytes::new(py, d))
            .map_err(bb_err)
    }

    /// apr_bucket_split: this bucket keeps the first `point` bytes; the rest becomes a new
    /// bucket right after it, returned.
    fn split(&self, point: usize) -> PyResult<Bucket> {
        Ok(Bucket {
            inner: self.inner.split(point).map_err(bb_err)?,
        })
    }

    /// APR_BUCKET_REMOVE: out of its brigade; insert it elsewhere during this call, or it is
    /// destroyed at the end of the call.
    fn remove(&self) -> PyResult<()> {
        self.inner.remove().map_err(bb_err)
    }

    /// apr_bucket_delete.
    fn delete(&self) -> PyResult<()> {
        self.inner.delete().map_err(bb_err)
    }

    /// APR_BUCKET_INSERT_BEFORE(self, b).
    fn insert_before(&self, b: &Bucket) -> PyResult<()> {
        self.inner.insert(&b.inner, false).map_err(bb_err)
    }

    /// APR_BUCKET_INSERT_AFTER(self, b).
    fn insert_after(&self, b: &Bucket) -> PyResult<()> {
        self.inner.insert(&b.inner, true).map_err(bb_err)
    }

    #[getter]
    fn next(&self, py: Python<'_>) -> PyResult<Option<Py<Bucket>>> {
        bucket(py, self.inner.neighbour(true).map_err(bb_err)?)
    }

    #[getter]
    fn prev(&self, py: Python<'_>) -> PyResult<Option<Py<Bucket>>> {
        bucket(py, self.inner.neighbour(false).map_err(bb_err)?)
    }

    /// apr_bucket_setaside into the filter's pool.
    fn setaside(&self) -> PyResult<()> {
        self.inner.setaside().map_err(bb_err)
    }

    /// apr_bucket_copy: a new bucket (not in any brigade) sharing the data.
    fn copy(&self) -> PyResult<Bucket> {
        Ok(Bucket {
            inner: self.inner.copy().map_err(bb_err)?,
        })
    }

    /// False once the bucket was deleted or passed on, or its filter call ended.
    #[getter]
    fn alive(&self) -> bool {
        self.inner.is_alive()
    }

    fn __repr__(&self) -> String {
        match self.inner.info() {
            Ok(i) => match i.length {
                Some(n) if !i.is_metadata => {
                    format!("<modpy.apache.Bucket {} {n} bytes>", i.type_name)
                }
                _ => format!("<modpy.apache.Bucket {}>", i.type_name),
            },
            Err(_) => "<modpy.apache.Bucket (gone)>".into(),
        }
    }
}

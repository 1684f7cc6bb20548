//! modpy.apache.Table: a live, case-insensitive, multi-valued mapping over apr_table_t.

use super::convert::{arg_bytes, gone, py_str};
use crate::apache;
use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

#[pyclass(module = "modpy.apache", name = "Table", frozen, mapping)]
pub struct Table {
    pub inner: apache::Table,
}

impl Table {
    pub fn new(inner: apache::Table) -> Table {
        Table { inner }
    }
}

#[pymethods]
impl Table {
    /// The value of `key`; a list when the key has several values (as mod_python does).
    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let k = arg_bytes(key)?;
        let mut all = self.inner.get_all(&k).map_err(gone)?;
        match all.len() {
            0 => Err(PyKeyError::new_err(key.clone().unbind())),
            1 => Ok(py_str(py, &all.remove(0)).into_any()),
            _ => Ok(PyList::new(py, all.iter().map(|v| py_str(py, v)))?.into_any()),
        }
    }

    fn __setitem__(&self, key: &Bound<'_, PyAny>, val: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner
            .set(&arg_bytes(key)?, &arg_bytes(val)?)
            .map_err(gone)
    }

    fn __delitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let k = arg_bytes(key)?;
        if self.inner.get(&k).map_err(gone)?.is_none() {
            return Err(PyKeyError::new_err(key.clone().unbind()));
        }
        self.inner.unset(&k).map_err(gone)
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.inner.get(&arg_bytes(key)?).map_err(gone)?.is_some())
    }

    fn __len__(&self) -> PyResult<usize> {
        self.inner.len().map_err(gone)
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.keys(py)?.as_any().try_iter()?.into_any())
    }

    /// As a dict prints (mod_python's tables print so): `{'Host': 'example.org'}`; a key
    /// with several values appears once per value.
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut parts = Vec::new();
        for item in self.items(py)?.iter() {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
            parts.push(format!("{}: {}", k.repr()?, v.repr()?));
        }
        Ok(format!("{{{}}}", parts.join(", ")))
    }

    #[pyo3(signature = (key, default=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.inner.get(&arg_bytes(key)?).map_err(gone)? {
            Some(v) => Ok(Some(py_str(py, &v).into_any())),
            None => Ok(default),
        }
    }

    /// Every value of `key`, in order (an empty list when there is none).
    fn getall<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let all = self.inner.get_all(&arg_bytes(key)?).map_err(gone)?;
        PyList::new(py, all.iter().map(|v| py_str(py, v)))
    }

    fn add(&self, key: &Bound<'_, PyAny>, val: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner
            .add(&arg_bytes(key)?, &arg_bytes(val)?)
            .map_err(gone)
    }

    fn set(&self, key: &Bound<'_, PyAny>, val: &Bound<'_, PyAny>) -> PyResult<()> {
        self.__setitem__(key, val)
    }

    fn merge(&self, key: &Bound<'_, PyAny>, val: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner
            .merge(&arg_bytes(key)?, &arg_bytes(val)?)
            .map_err(gone)
    }

    fn unset(&self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.unset(&arg_bytes(key)?).map_err(gone)
    }

    fn clear(&self) -> PyResult<()> {
        self.inner.clear().map_err(gone)
    }

    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let e = self.inner.entries().map_err(gone)?;
        PyList::new(py, e.iter().map(|(k, _)| py_str(py, k)))
    }

    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let e = self.inner.entries().map_err(gone)?;
        PyList::new(py, e.iter().map(|(_, v)| py_str(py, v)))
    }

    /// (key, value) pairs in order, repeated keys included.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let e = self.inner.entries().map_err(gone)?;
        PyList::new(py, e.iter().map(|(k, v)| (py_str(py, k), py_str(py, v))))
    }

    /// A plain dict copy (the last value wins for repeated keys).
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.inner.entries().map_err(gone)? {
            d.set_item(py_str(py, &k), py_str(py, &v))?;
        }
        Ok(d)
    }
}

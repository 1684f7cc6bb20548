//! Connection.read / readline / write for PythonConnectionHandler code: the connection's
//! input and output filter chains, with the GIL released around every network read and write.

use super::convert::{arg_bytes, gone};
use super::filter::aprerror;
use crate::apache::connio::{self, ConnError, ReadMode, DEFAULT_READ};
use crate::apache::Connection;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

fn cerr(e: ConnError) -> PyErr {
    aprerror(e.status, &e.to_string())
}

/// Up to `max` bytes (one line with `line`) once the buffer can answer; None at the end.
fn next_chunk<'py>(
    py: Python<'py>,
    conn: &Connection,
    max: usize,
    line: bool,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let mode = if line {
        ReadMode::Line
    } else {
        ReadMode::Bytes
    };
    loop {
        let ready = connio::ready(&conn.get().map_err(gone)?, mode, max);
        if ready {
            let c = conn.get().map_err(gone)?;
            let got = connio::take(&c, max, line, |n, fill| {
                PyBytes::new_with(py, n, |buf| {
                    fill(buf);
                    Ok(())
                })
            })
            .map_err(cerr)?;
            match got {
                Some(b) => return Ok(Some(b?)),
                None if connio::at_eof(&c) => return Ok(None),
                None => {}
            }
        }
        py.detach(|| {
            let c = conn.get().map_err(|g| ConnError {
                status: crate::apache::filter::APR_EGENERAL,
                what: g.0,
            })?;
            connio::fill(&c, mode, max)
        })
        .map_err(cerr)?;
    }
}

pub fn read<'py>(py: Python<'py>, conn: &Connection, len: i64) -> PyResult<Bound<'py, PyBytes>> {
    if len >= 0 {
        let max = if len == 0 { DEFAULT_READ } else { len as usize };
        return Ok(next_chunk(py, conn, max, false)?.unwrap_or_else(|| PyBytes::new(py, b"")));
    }
    let mut all = Vec::new();
    while let Some(b) = next_chunk(py, conn, 64 * 1024, false)? {
        all.extend_from_slice(b.as_bytes());
    }
    Ok(PyBytes::new(py, &all))
}

pub fn readline<'py>(
    py: Python<'py>,
    conn: &Connection,
    len: i64,
) -> PyResult<Bound<'py, PyBytes>> {
    let max = if len > 0 {
        len as usize
    } else {
        usize::MAX / 2
    };
    let mut line: Vec<u8> = Vec::new();
    // A line can arrive in several reads; collect until b"\n", `len` bytes or the end.
    while line.len() < max && !line.ends_with(b"\n") {
        match next_chunk(py, conn, max - line.len(), true)? {
            Some(b) => {
                if line.is_empty() && (b.as_bytes().ends_with(b"\n") || b.as_bytes().len() >= max) {
                    return Ok(b);
                }
                line.extend_from_slice(b.as_bytes());
            }
            None => break,
        }
    }
    Ok(PyBytes::new(py, &line))
}

pub fn write(
    py: Python<'_>,
    conn: &Connection,
    data: &Bound<'_, PyAny>,
    flush: bool,
) -> PyResult<()> {
    let bytes = arg_bytes(data)?;
    py.detach(|| {
        let c = conn.get().map_err(|g| ConnError {
            status: crate::apache::filter::APR_EGENERAL,
            what: g.0,
        })?;
        connio::write(&c, &bytes, flush)
    })
    .map_err(cerr)
}

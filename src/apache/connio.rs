//! Reading and writing a connection directly, as a protocol module does in its
//! process_connection hook (mod_echo): ap_get_brigade on c->input_filters, ap_pass_brigade on
//! c->output_filters. Used by `PythonConnectionHandler` code through Connection.read /
//! readline / write. Reads go through a per-connection buffer (one brigade, created once), so
//! data read ahead by one call is returned by the next.

use super::connection::ConnectionRef;
use super::filter::{read_head, Head};
use super::pool::pool_box;
use crate::sys;
use std::ffi::c_void;
use std::os::raw::c_char;
use std::sync::Mutex;

/// How much one read asks from the network at most, when the caller gives no length.
pub const DEFAULT_READ: usize = 8192;

struct ConnIo {
    buf: *mut sys::apr_bucket_brigade,
    tmp: *mut sys::apr_bucket_brigade,
    out: *mut sys::apr_bucket_brigade,
    eof: bool,
    /// A read (or write) is in Apache's filters right now: a nested one (from a filter of
    /// this connection) must not touch the same brigades.
    reading: bool,
    writing: bool,
}

const BUSY: ConnError = ConnError {
    status: sys::APR_EGENERAL as i32,
    what: "reading or writing the connection from inside its own read or write",
};

// SAFETY: used only by the thread serving the connection, under the Mutex.
unsafe impl Send for ConnIo {}

const KEY: &std::ffi::CStr = c"modpy-conn-io";

fn io<'a>(c: &ConnectionRef<'_>) -> &'a Mutex<ConnIo> {
    let cp = c.as_ptr();
    // SAFETY: the connection is alive (c proves it); the state lives in its pool.
    unsafe {
        let pool = (*cp).pool;
        let mut data: *mut c_void = std::ptr::null_mut();
        sys::apr_pool_userdata_get(&mut data, KEY.as_ptr(), pool);
        if data.is_null() {
            let alloc = (*cp).bucket_alloc;
            let st = Mutex::new(ConnIo {
                buf: sys::apr_brigade_create(pool, alloc),
                tmp: sys::apr_brigade_create(pool, alloc),
                out: sys::apr_brigade_create(pool, alloc),
                eof: false,
                reading: false,
                writing: false,
            });
            data = pool_box(pool, st) as *mut c_void;
            sys::apr_pool_userdata_setn(data, KEY.as_ptr(), None, pool);
        }
        &*(data as *const Mutex<ConnIo>)
    }
}

fn lock<'a>(c: &ConnectionRef<'_>) -> std::sync::MutexGuard<'a, ConnIo> {
    io(c).lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// AP_MODE_READBYTES: up to n bytes, whatever has arrived (at least one byte).
    Bytes,
    /// AP_MODE_GETLINE: one line.
    Line,
}

/// A failed connection read or write: the APR status.
#[derive(Debug, Clone, Copy)]
pub struct ConnError {
    pub status: i32,
    pub what: &'static str,
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed: {}",
            self.what,
            super::log::strerror(self.status)
        )
    }
}

/// Is there an answer in the buffer for this read (data, a full line, or EOF)?
pub fn ready(c: &ConnectionRef<'_>, mode: ReadMode, max: usize) -> bool {
    let st = lock(c);
    if st.eof {
        return true;
    }
    // SAFETY: our brigade, on the connection's thread.
    unsafe {
        if sys::modpy_brigade_empty(st.buf) != 0 {
            return false;
        }
        match mode {
            ReadMode::Bytes => true,
            ReadMode::Line => line_ready(st.buf, max),
        }
    }
}

/// Does `bb` hold a complete line (or `max` bytes, or metadata such as EOS)?
///
/// # Safety
/// `bb` must be a valid brigade of a connection served by this thread.
unsafe fn line_ready(bb: *mut sys::apr_bucket_brigade, max: usize) -> bool {
    // SAFETY: per this function's contract (see # Safety above).
    unsafe {
        let end = sys::modpy_brigade_sentinel(bb);
        let mut e = sys::modpy_brigade_first(bb);
        let mut n = 0;
        while e != end {
            if sys::modpy_bucket_is_metadata(e) != 0 {
                return true;
            }
            let mut data: *const c_char = std::ptr::null();
            let mut len: sys::apr_size_t = 0;
            if sys::modpy_bucket_read(e, &mut data, &mut len, sys::apr_read_type_e_APR_BLOCK_READ)
                != 0
            {
                return true;
            }
            if len > 0 && std::slice::from_raw_parts(data as *const u8, len).contains(&b'\n') {
                return true;
            }
            n += len;
            if n >= max {
                return true;
            }
            e = sys::modpy_bucket_next(e);
        }
    }
    false
}

/// Reads from the network into the buffer (blocking). Call with the GIL released.
/// Ok(()) also at the end of the connection (then `take` returns None).
pub fn fill(c: &ConnectionRef<'_>, mode: ReadMode, max: usize) -> Result<(), ConnError> {
    let (tmp, buf) = {
        let mut st = lock(c);
        if st.reading {
            return Err(BUSY);
        }
        st.reading = true;
        (st.tmp, st.buf)
    };
    let m = match mode {
        ReadMode::Bytes => sys::ap_input_mode_t_AP_MODE_READBYTES,
        ReadMode::Line => sys::ap_input_mode_t_AP_MODE_GETLINE,
    };
    // SAFETY: our brigades; the connection's input filter chain is live.
    let rv = unsafe {
        let rv = sys::ap_get_brigade(
            (*c.as_ptr()).input_filters,
            tmp,
            m,
            sys::apr_read_type_e_APR_BLOCK_READ,
            max as sys::apr_off_t,
        );
        let got = sys::modpy_brigade_empty(tmp) == 0;
        sys::modpy_brigade_concat(buf, tmp);
        let mut st = lock(c);
        st.reading = false;
        if rv == sys::APR_SUCCESS as i32 && !got {
            // A blocking read that returns nothing: the peer is gone.
            st.eof = true;
        }
        rv
    };
    if rv == sys::APR_SUCCESS as i32 {
        return Ok(());
    }
    if rv == sys::APR_EOF as i32 {
        lock(c).eof = true;
        return Ok(());
    }
    Err(ConnError {
        status: rv,
        what: "reading from the connection",
    })
}

/// Takes up to `max` bytes (one line with `line`) from the buffer, handed to `make` to copy.
/// None: the buffer is empty (at EOF: nothing more will come).
pub fn take<R>(
    c: &ConnectionRef<'_>,
    max: usize,
    line: bool,
    make: impl FnOnce(usize, &mut dyn FnMut(&mut [u8])) -> R,
) -> Result<Option<R>, ConnError> {
    let st = lock(c);
    if st.reading {
        return Err(BUSY);
    }
    loop {
        // SAFETY: our brigade, on the connection's thread.
        match unsafe { read_head(st.buf, max.max(1), line) } {
            Err(rv) => {
                return Err(ConnError {
                    status: rv,
                    what: "reading a bucket",
                })
            }
            Ok(Head::Empty) => return Ok(None),
            Ok(Head::Eos(e)) | Ok(Head::Meta(e, _)) => {
                // SAFETY: the first bucket of our brigade.
                unsafe { sys::modpy_bucket_delete(e) };
                continue;
            }
            Ok(Head::Data(d)) => {
                let r = make(d.total, &mut |buf: &mut [u8]| d.copy_to(buf));
                // SAFETY: read and copied; at the head of our brigade.
                unsafe { d.consume() };
                return Ok(Some(r));
            }
        }
    }
}

pub fn at_eof(c: &ConnectionRef<'_>) -> bool {
    lock(c).eof
}

/// Writes `data` to the connection (and a FLUSH with `flush`): one transient bucket, no
/// copy unless a filter keeps it. Call with the GIL released.
pub fn write(c: &ConnectionRef<'_>, data: &[u8], flush: bool) -> Result<(), ConnError> {
    let out = {
        let mut st = lock(c);
        if st.writing {
            return Err(BUSY);
        }
        st.writing = true;
        st.out
    };
    // SAFETY: our brigade; `data` outlives the pass (transient buckets are set aside by any
    // filter that keeps them).
    let rv = unsafe {
        let alloc = (*c.as_ptr()).bucket_alloc;
        if !data.is_empty() {
            sys::modpy_brigade_append_transient(out, data.as_ptr() as *const c_char, data.len());
        }
        if flush {
            sys::modpy_brigade_insert_tail(out, sys::modpy_bucket_flush(alloc));
        }
        let rv = if sys::modpy_brigade_empty(out) != 0 {
            sys::APR_SUCCESS as i32
        } else {
            sys::ap_pass_brigade((*c.as_ptr()).output_filters, out)
        };
        sys::apr_brigade_cleanup(out as *mut c_void);
        rv
    };
    lock(c).writing = false;
    if rv != sys::APR_SUCCESS as i32 {
        return Err(ConnError {
            status: rv,
            what: "writing to the connection",
        });
    }
    Ok(())
}

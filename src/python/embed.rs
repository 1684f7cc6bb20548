//! Interpreter lifecycle through the Python C-API: the only unsafe code above src/apache,
//! because starting an embedded interpreter has no safe pyo3 equivalent that lets us fix
//! Python's home (DESIGN.md: never guessed from PATH) and keep per-thread states. Also the
//! one C-API object pyo3 cannot make without zero-filling it first: a bytes object filled
//! in place (bytes_filled).

use pyo3::exceptions::PyMemoryError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::cell::Cell;
use std::ffi::CString;
use std::mem::MaybeUninit;

/// Starts the one interpreter of this process: Python's home fixed to `home` (the Python
/// mod_py was built against, or WSGIPythonHome), or for a virtual environment no home and
/// `executable` inside it (Python then reads its pyvenv.cfg); no signal handlers (signals
/// belong to Apache), no user site-packages; the GIL is released before returning.
pub fn initialize(home: Option<&str>, executable: &str, optimize: bool) -> Result<(), String> {
    // SAFETY: called once per process, from child_init, before any other Python use; the
    // config struct is initialised by PyConfig_InitPythonConfig and cleared after use.
    unsafe {
        if ffi::Py_IsInitialized() != 0 {
            return Ok(());
        }
        pyo3::append_to_inittab!(_modpy_module);
        let mut config: ffi::PyConfig = std::mem::zeroed();
        ffi::PyConfig_InitPythonConfig(&mut config);
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        config.user_site_directory = 0;
        // PythonOptimize On: python -O.
        config.optimization_level = i32::from(optimize);
        let exe_c = CString::new(executable).map_err(|e| e.to_string())?;
        let mut status =
            ffi::PyConfig_SetBytesString(&mut config, &mut config.program_name, exe_c.as_ptr());
        if let (Some(home), 0) = (home, ffi::PyStatus_Exception(status)) {
            let home_c = CString::new(home).map_err(|e| e.to_string())?;
            status = ffi::PyConfig_SetBytesString(&mut config, &mut config.home, home_c.as_ptr());
        }
        if ffi::PyStatus_Exception(status) == 0 {
            status = ffi::Py_InitializeFromConfig(&config);
        }
        ffi::PyConfig_Clear(&mut config);
        if ffi::PyStatus_Exception(status) != 0 {
            let msg = if status.err_msg.is_null() {
                "unknown error".to_string()
            } else {
                std::ffi::CStr::from_ptr(status.err_msg)
                    .to_string_lossy()
                    .into_owned()
            };
            return Err(format!(
                "Python failed to start (home {}, executable {executable}): {msg}",
                home.unwrap_or("from the executable's pyvenv.cfg")
            ));
        }
        // This thread's state stays (see prime_thread); only the GIL is released.
        PRIMED.with(|p| p.set(true));
        ffi::PyEval_SaveThread();
    }
    Ok(())
}

thread_local! {
    static PRIMED: Cell<bool> = const { Cell::new(false) };
}

/// Gives the calling Apache thread a Python thread state that lives as long as the thread,
/// so that each request's attach/detach only takes and drops the GIL instead of creating and
/// destroying a thread state (what PyGILState_Ensure/Release do on a thread without one).
pub fn prime_thread() {
    PRIMED.with(|p| {
        if !p.get() {
            // SAFETY: the interpreter is initialised (child_init ran); the GILState count taken
            // here is never released, which keeps the thread state; SaveThread drops the GIL.
            unsafe {
                if ffi::Py_IsInitialized() != 0 {
                    ffi::PyGILState_Ensure();
                    ffi::PyEval_SaveThread();
                    p.set(true);
                }
            }
        }
    });
}

pub fn is_initialized() -> bool {
    // SAFETY: a plain query, valid at any time.
    unsafe { ffi::Py_IsInitialized() != 0 }
}

use super::module::_modpy as _modpy_module;

/// A bytes object of `n` bytes written in place by `fill`, which returns how many bytes it
/// wrote from the start (the object is shrunk to that). pyo3's PyBytes::new_with zero-fills
/// the buffer first: a megabyte memset for each 1 MiB request body read.
pub fn bytes_filled<'py>(
    py: Python<'py>,
    n: usize,
    fill: impl FnOnce(&mut [MaybeUninit<u8>]) -> PyResult<usize>,
) -> PyResult<Bound<'py, PyBytes>> {
    let size = ffi::Py_ssize_t::try_from(n).map_err(|_| PyMemoryError::new_err(()))?;
    // SAFETY: with the GIL held (py), PyBytes_FromStringAndSize(NULL, n) returns a new bytes
    // object (or NULL and an exception) whose n-byte buffer is writable and uninitialised.
    let obj = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyBytes_FromStringAndSize(std::ptr::null(), size))?
    };
    // SAFETY: the buffer is n bytes long and only ours: the object has not been shown to any
    // Python code (refcount 1), so no one reads it while `fill` writes, even without the GIL.
    let buf = unsafe {
        std::slice::from_raw_parts_mut(
            ffi::PyBytes_AsString(obj.as_ptr()) as *mut MaybeUninit<u8>,
            n,
        )
    };
    let got = fill(buf)?.min(n);
    if got < n {
        let mut p = obj.into_ptr();
        // SAFETY: p is our only reference (refcount 1), as _PyBytes_Resize requires; on
        // failure it frees the object, sets p to NULL and raises MemoryError.
        if unsafe { ffi::_PyBytes_Resize(&mut p, got as ffi::Py_ssize_t) } != 0 {
            return Err(PyErr::fetch(py));
        }
        // SAFETY: p is the (possibly moved) bytes object, a new reference.
        return Ok(unsafe { Bound::from_owned_ptr(py, p).cast_into_unchecked() });
    }
    // SAFETY: obj is a bytes object, now fully written.
    Ok(unsafe { obj.cast_into_unchecked() })
}

//! apr_pool_t: cleanups, and the liveness flag that keeps Python objects from outliving the
//! Apache structure they wrap (DESIGN.md hard rule 3).

use crate::sys;
use std::ffi::{c_void, CStr, CString};
use std::os::raw::c_char;
use std::sync::{Arc, RwLock, RwLockReadGuard};

/// The error every accessor returns once the wrapped structure's pool is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone(pub &'static str);

impl std::fmt::Display for Gone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {} this object wraps has ended; it cannot be used any more",
            self.0
        )
    }
}

/// Shared "is it still alive" flag, cleared by a cleanup on the owning pool.
///
/// Readers hold the read lock for as long as they touch the C structure, so the cleanup (which
/// takes the write lock) cannot free the memory under them, whichever thread they run on.
#[derive(Clone)]
pub struct Liveness {
    flag: Arc<RwLock<bool>>,
    what: &'static str,
}

/// Proof that the structure is alive; the pool cannot be cleaned up while it exists.
pub struct Alive<'a>(#[allow(dead_code)] RwLockReadGuard<'a, bool>);

impl Liveness {
    /// A flag tied to `pool`: alive until the pool is cleared or destroyed.
    ///
    /// # Safety
    /// `pool` must be a valid APR pool.
    pub unsafe fn tied_to(pool: *mut sys::apr_pool_t, what: &'static str) -> Liveness {
        let flag = Arc::new(RwLock::new(true));
        let data = Arc::into_raw(flag.clone()) as *const c_void;
        // SAFETY: `data` is an Arc reference owned by the cleanup, released in `liveness_cleanup`.
        sys::apr_pool_cleanup_register(
            pool,
            data,
            Some(liveness_cleanup),
            Some(sys::apr_pool_cleanup_null),
        );
        Liveness { flag, what }
    }

    /// A flag for something that lives as long as the process (never cleared).
    pub fn forever(what: &'static str) -> Liveness {
        Liveness {
            flag: Arc::new(RwLock::new(true)),
            what,
        }
    }

    pub fn check(&self) -> Result<Alive<'_>, Gone> {
        let guard = self.flag.read().unwrap_or_else(|e| e.into_inner());
        if *guard {
            Ok(Alive(guard))
        } else {
            Err(Gone(self.what))
        }
    }

    pub fn is_alive(&self) -> bool {
        self.check().is_ok()
    }
}

unsafe extern "C" fn liveness_cleanup(data: *mut c_void) -> sys::apr_status_t {
    // SAFETY: `data` came from Arc::into_raw in `Liveness::tied_to`; this is its only release.
    let flag = unsafe { Arc::from_raw(data as *const RwLock<bool>) };
    *flag.write().unwrap_or_else(|e| e.into_inner()) = false;
    sys::APR_SUCCESS as sys::apr_status_t
}

/// Registers `Box<T>`'s drop as a cleanup of `pool` and returns the raw pointer, which stays
/// valid until the pool is cleared: how Rust-owned config structs live in Apache pools.
///
/// # Safety
/// `pool` must be a valid APR pool.
pub unsafe fn pool_box<T>(pool: *mut sys::apr_pool_t, value: T) -> *mut T {
    unsafe extern "C" fn drop_box<T>(data: *mut c_void) -> sys::apr_status_t {
        // SAFETY: `data` is the Box::into_raw below; the pool runs this cleanup once.
        drop(unsafe { Box::from_raw(data as *mut T) });
        sys::APR_SUCCESS as sys::apr_status_t
    }
    let ptr = Box::into_raw(Box::new(value));
    // SAFETY: the cleanup owns `ptr` and frees it when the pool goes.
    unsafe {
        sys::apr_pool_cleanup_register(
            pool,
            ptr as *const c_void,
            Some(drop_box::<T>),
            Some(sys::apr_pool_cleanup_null),
        )
    };
    ptr
}

/// A copy of `s` in `pool` (apr_pstrdup); interior NULs are cut there.
///
/// # Safety
/// `pool` must be a valid APR pool.
pub unsafe fn pstrdup(pool: *mut sys::apr_pool_t, s: &[u8]) -> *mut c_char {
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    // SAFETY: apr_pstrndup copies `end` bytes and NUL-terminates.
    unsafe { sys::apr_pstrndup(pool, s.as_ptr() as *const c_char, end as sys::apr_size_t) }
}

/// The bytes of a C string owned by Apache, or None for NULL.
///
/// # Safety
/// `p` must be NULL or a NUL-terminated string that outlives `'a`.
pub unsafe fn cstr<'a>(p: *const c_char) -> Option<&'a [u8]> {
    if p.is_null() {
        None
    } else {
        // SAFETY: per the contract above.
        Some(unsafe { CStr::from_ptr(p) }.to_bytes())
    }
}

/// A C string for an Apache call; interior NULs are cut (Apache would stop there anyway).
pub fn c_string(s: &[u8]) -> CString {
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    CString::new(&s[..end]).expect("no interior NUL after truncation")
}

/// Runs `f` when `pool` is cleared or destroyed (apr_pool_cleanup_register).
///
/// # Safety
/// `pool` must be a valid APR pool.
pub unsafe fn register_cleanup(pool: *mut sys::apr_pool_t, f: Box<dyn FnOnce() + Send>) {
    unsafe extern "C" fn run(data: *mut c_void) -> sys::apr_status_t {
        // SAFETY: `data` is the Box below; the pool runs each cleanup once.
        let f = unsafe { Box::from_raw(data as *mut Box<dyn FnOnce() + Send>) };
        // A panic must not unwind into APR.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        sys::APR_SUCCESS as sys::apr_status_t
    }
    let data = Box::into_raw(Box::new(f)) as *const c_void;
    // SAFETY: the cleanup owns `data`.
    unsafe {
        sys::apr_pool_cleanup_register(pool, data, Some(run), Some(sys::apr_pool_cleanup_null))
    };
}

/// A pool that lives as long as the process part it belongs to (the child pool given to
/// child_init): cleanups registered on it run when the child exits.
#[derive(Clone, Copy)]
pub struct Pool(*mut sys::apr_pool_t);

// SAFETY: a long-lived pool handle; apr_pool_cleanup_register on it happens under the GIL or
// in child_init, never concurrently with its destruction.
unsafe impl Send for Pool {}
unsafe impl Sync for Pool {}

impl Pool {
    /// # Safety
    /// `p` must be a valid pool that outlives every use of this handle.
    pub unsafe fn from_raw(p: *mut sys::apr_pool_t) -> Pool {
        Pool(p)
    }

    pub fn register_cleanup(&self, f: Box<dyn FnOnce() + Send>) {
        // SAFETY: per from_raw's contract.
        unsafe { register_cleanup(self.0, f) }
    }

    pub fn raw(&self) -> *mut sys::apr_pool_t {
        self.0
    }

    /// ap_server_root_relative(p, path): `path` if absolute, else under ServerRoot.
    pub fn server_root_relative(&self, path: &str) -> String {
        let Ok(c) = std::ffi::CString::new(path) else {
            return path.to_string();
        };
        // SAFETY: per from_raw's contract; the result is a pool string or NULL.
        unsafe {
            let p = sys::ap_server_root_relative(self.0, c.as_ptr());
            cstr(p).map_or_else(
                || path.to_string(),
                |b| String::from_utf8_lossy(b).into_owned(),
            )
        }
    }

    /// ap_runtime_dir_relative(p, name): under DefaultRuntimeDir.
    pub fn runtime_dir_relative(&self, name: &str) -> String {
        // SAFETY: per from_raw's contract.
        unsafe { super::process::runtime_dir_relative(self.0, name) }
    }

    /// ap_add_version_component: "name/version" in the Server header and SERVER_SOFTWARE
    /// (this pool must be the configuration pool given to post_config).
    pub fn add_version_component(&self, component: &str) {
        // SAFETY: the string is copied into the pool; Apache keeps the pointer for the
        // configuration's lifetime.
        unsafe { sys::ap_add_version_component(self.0, pstrdup(self.0, component.as_bytes())) }
    }
}

/// The strings of an apr_array_header_t of `char *` (NULL: none).
///
/// # Safety
/// `a` is NULL or an array of NUL-terminated strings that live at least as long as `'a`.
pub unsafe fn str_array<'a>(a: *const sys::apr_array_header_t) -> Vec<&'a [u8]> {
    if a.is_null() {
        return Vec::new();
    }
    // SAFETY: per the contract, `nelts` elements of type `char *`.
    unsafe {
        let a = &*a;
        std::slice::from_raw_parts(a.elts as *const *const c_char, a.nelts.max(0) as usize)
            .iter()
            .filter_map(|&p| cstr(p))
            .collect()
    }
}

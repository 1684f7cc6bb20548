//! apr_bucket_brigade and apr_bucket, safe to hand to code running inside a filter call.
//!
//! APR's brigades and buckets are neither thread-safe nor reference counted: a bucket is freed
//! by whoever deletes it (a downstream filter, the caller of a filter after it returns, a pool
//! cleanup), and the bucket allocator belongs to one connection, used by one thread at a time.
//! The handles here make misuse an error instead of a use-after-free:
//!
//! - every handle may be used only while a filter call (or connection handler) of its
//!   connection runs on the current thread ([`Active`]);
//! - every handle checks the liveness of its pool and of the connection (the allocator);
//! - a brigade borrowed from Apache (the `bb` argument of a filter) is valid during that call
//!   only; handing a brigade to Apache (`ap_pass_brigade`, `ap_get_brigade`, cleanup)
//!   invalidates every bucket handle in it;
//! - there is one [`BucketCell`] per live `apr_bucket` (a per-connection registry), so two
//!   handles never disagree about whether a bucket still exists.

use super::pool::{Alive, Gone, Liveness};
use crate::sys;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// What went wrong using a brigade or bucket handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BbError {
    /// The pool (request or connection) the object lives in has been destroyed.
    Gone(Gone),
    /// Used outside a filter call of its connection, or from another thread.
    NotActive,
    /// The bucket was deleted or passed on, or the brigade's filter call ended.
    Dead(&'static str),
    /// The operation is not possible in this state (the text says why).
    Invalid(&'static str),
    /// An APR call failed.
    Status(sys::apr_status_t, &'static str),
}

impl From<Gone> for BbError {
    fn from(g: Gone) -> Self {
        BbError::Gone(g)
    }
}

impl std::fmt::Display for BbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BbError::Gone(g) => write!(f, "{g}"),
            BbError::NotActive => write!(
                f,
                "brigades and buckets can only be used inside a call of their filter, on its thread"
            ),
            BbError::Dead(why) => write!(f, "{why}"),
            BbError::Invalid(why) => write!(f, "{why}"),
            BbError::Status(s, what) => {
                write!(f, "{what} failed: {} ({s})", super::log::strerror(*s))
            }
        }
    }
}

// ---- which connections may be touched on this thread ----

thread_local! {
    /// Connections with a filter call or connection handler running on this thread (a stack:
    /// filter calls nest when one filter passes data to the next).
    static ACTIVE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// While it exists, the objects of its connection may be used on this thread.
pub struct Active {
    c: *mut sys::conn_rec,
    conn_live: Liveness,
}

impl Active {
    /// # Safety
    /// `c` must be the live connection whose filter (or handler) is running on this thread.
    pub unsafe fn enter(c: *mut sys::conn_rec, conn_live: Liveness) -> Active {
        ACTIVE.with(|a| a.borrow_mut().push(c as usize));
        Active { c, conn_live }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        let outermost = ACTIVE.with(|a| {
            let mut a = a.borrow_mut();
            if let Some(i) = a.iter().rposition(|&x| x == self.c as usize) {
                a.remove(i);
            }
            !a.contains(&(self.c as usize))
        });
        if outermost {
            // Buckets created (or removed) and never put into a brigade are freed when the
            // outermost call on their connection ends.
            if let Ok(_alive) = self.conn_live.check() {
                // SAFETY: the connection is alive and still served by this thread.
                if let Some(reg) = unsafe { registry(self.c, false) } {
                    sweep_floating(reg);
                }
            }
        }
    }
}

pub fn is_active(c: *mut sys::conn_rec) -> bool {
    ACTIVE.with(|a| a.borrow().contains(&(c as usize)))
}

// ---- where new brigades and buckets come from ----

/// A connection (its bucket allocator) plus the pool new brigades and set-aside buckets go
/// into: the request pool for request filters, the connection pool for connection filters.
#[derive(Clone)]
pub struct Origin {
    pub(crate) c: *mut sys::conn_rec,
    pub(crate) conn_live: Liveness,
    pub(crate) pool: *mut sys::apr_pool_t,
    pub(crate) live: Liveness,
    pub(crate) keeper: Arc<Keeper>,
}

/// The brigades created for one filter: at the end of each of its calls, those still
/// referenced have their buckets set aside (they may hold the caller's transient data), the
/// others are emptied and reused by the next `Brigade::create`, so a filter that makes a
/// brigade per call does not grow its pool.
#[derive(Default)]
pub struct Keeper {
    list: Mutex<Vec<(Weak<BrigadeInner>, usize)>>,
    spares: Mutex<Vec<usize>>,
}

impl Keeper {
    /// The end of a call of the filter owning `o` (on its thread).
    pub fn end_call(&self, o: &Origin) {
        if o.check().is_err() {
            return;
        }
        let list = std::mem::take(&mut *self.list.lock().unwrap_or_else(|e| e.into_inner()));
        let mut keep = Vec::with_capacity(list.len());
        let mut spare = Vec::new();
        for (w, raw) in list {
            let bb = raw as *mut sys::apr_bucket_brigade;
            if w.strong_count() > 0 {
                // SAFETY: a brigade of this filter's pool (checked alive), on its thread.
                let _ = unsafe { setaside_all(bb, o.pool) };
                keep.push((w, raw));
            } else {
                // SAFETY: nobody refers to it any more: empty it for reuse.
                unsafe {
                    kill_in(o.c, bb);
                    sys::apr_brigade_cleanup(bb as *mut c_void);
                }
                spare.push(raw);
            }
        }
        self.list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(keep);
        let mut spares = self.spares.lock().unwrap_or_else(|e| e.into_inner());
        spares.extend(spare);
        spares.truncate(16);
    }

    fn raw_brigade(&self, o: &Origin) -> *mut sys::apr_bucket_brigade {
        let spare = self.spares.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match spare {
            Some(raw) => raw as *mut sys::apr_bucket_brigade,
            // SAFETY: pool and allocator alive (callers checked the origin).
            None => unsafe { sys::apr_brigade_create(o.pool, o.alloc()) },
        }
    }

    fn register(&self, b: &Brigade) {
        self.list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((Arc::downgrade(&b.0), b.0.bb as usize));
    }
}

// SAFETY: every use checks `is_active(c)` (the connection's own thread) and the liveness flags.
unsafe impl Send for Origin {}
unsafe impl Sync for Origin {}

struct Checked<'a> {
    _conn: Alive<'a>,
    _pool: Alive<'a>,
}

impl Origin {
    fn check(&self) -> Result<Checked<'_>, BbError> {
        if !is_active(self.c) {
            return Err(BbError::NotActive);
        }
        Ok(Checked {
            _conn: self.conn_live.check()?,
            _pool: self.live.check()?,
        })
    }

    fn alloc(&self) -> *mut sys::apr_bucket_alloc_t {
        // SAFETY: called after check(): the connection is alive.
        unsafe { (*self.c).bucket_alloc }
    }
}

// ---- per-connection bucket registry ----

struct Registry {
    cells: HashMap<usize, Weak<BucketCell>>,
    /// Buckets not in any brigade (created, removed or copied), freed by `sweep_floating`.
    floating: Vec<Weak<BucketCell>>,
}

type RegistrySlot = Mutex<Registry>;

const REGISTRY_KEY: &std::ffi::CStr = c"modpy-bucket-registry";

/// The connection's registry (created on first use when `create`).
///
/// # Safety
/// `c` must be alive and served by this thread.
unsafe fn registry<'a>(c: *mut sys::conn_rec, create: bool) -> Option<&'a RegistrySlot> {
    // SAFETY: per this function's contract (see # Safety above).
    unsafe {
        let pool = (*c).pool;
        let mut data: *mut c_void = std::ptr::null_mut();
        sys::apr_pool_userdata_get(&mut data, REGISTRY_KEY.as_ptr(), pool);
        if data.is_null() {
            if !create {
                return None;
            }
            let slot: RegistrySlot = Mutex::new(Registry {
                cells: HashMap::new(),
                floating: Vec::new(),
            });
            data = super::pool::pool_box(pool, slot) as *mut c_void;
            sys::apr_pool_userdata_setn(data, REGISTRY_KEY.as_ptr(), None, pool);
        }
        Some(&*(data as *const RegistrySlot))
    }
}

fn lock(reg: &RegistrySlot) -> std::sync::MutexGuard<'_, Registry> {
    reg.lock().unwrap_or_else(|e| e.into_inner())
}

fn sweep_floating(reg: &RegistrySlot) {
    let floating = std::mem::take(&mut lock(reg).floating);
    for w in floating {
        if let Some(cell) = w.upgrade() {
            let mut st = cell.state();
            if !st.dead && st.brigade.is_none() {
                st.dead = true;
                drop(st);
                lock(reg).cells.remove(&(cell.b as usize));
                // SAFETY: the bucket is in no brigade and owned by this cell; the connection
                // (allocator) is alive and served by this thread (checked by the caller).
                unsafe { sys::modpy_bucket_destroy(cell.b) };
            }
        }
    }
}

/// Marks every bucket handle of brigade `bb` dead (Apache code is about to own its buckets).
///
/// # Safety
/// `c` must be alive and served by this thread.
pub(crate) unsafe fn kill_in(c: *mut sys::conn_rec, bb: *mut sys::apr_bucket_brigade) {
    // SAFETY: per the contract.
    let Some(reg) = (unsafe { registry(c, false) }) else {
        return;
    };
    let mut r = lock(reg);
    r.cells.retain(|_, w| match w.upgrade() {
        None => false,
        Some(cell) => {
            let mut st = cell.state();
            if st.dead {
                return false;
            }
            if st.brigade.as_ref().is_some_and(|b| b.raw() == bb) {
                st.dead = true;
                st.brigade = None;
                return false;
            }
            true
        }
    });
}

/// After buckets moved from one brigade to `to` (split, concat), their handles follow.
///
/// # Safety
/// `c` must be alive and served by this thread; `to` a valid brigade.
unsafe fn rehome(c: *mut sys::conn_rec, to: &Brigade) {
    // SAFETY: per the contract.
    let Some(reg) = (unsafe { registry(c, false) }) else {
        return;
    };
    let r = lock(reg);
    let bb = to.raw();
    // SAFETY: walking a valid brigade's ring.
    unsafe {
        let end = sys::modpy_brigade_sentinel(bb);
        let mut e = sys::modpy_brigade_first(bb);
        while e != end {
            if let Some(cell) = r.cells.get(&(e as usize)).and_then(Weak::upgrade) {
                let mut st = cell.state();
                if !st.dead {
                    st.brigade = Some(to.clone());
                }
            }
            e = sys::modpy_bucket_next(e);
        }
    }
}

// ---- brigades ----

struct BrigadeInner {
    bb: *mut sys::apr_bucket_brigade,
    origin: Origin,
    /// Cleared when a borrowed brigade's call ends (or a brigade is destroyed).
    valid: AtomicBool,
    borrowed: bool,
}

/// A handle on an apr_bucket_brigade.
#[derive(Clone)]
pub struct Brigade(Arc<BrigadeInner>);

// SAFETY: see Origin.
unsafe impl Send for BrigadeInner {}
unsafe impl Sync for BrigadeInner {}

impl Brigade {
    /// A new empty brigade in the origin's pool (apr_brigade_create).
    pub fn create(o: &Origin) -> Result<Brigade, BbError> {
        let _ok = o.check()?;
        let b = Brigade::wrap(o.keeper.raw_brigade(o), o.clone(), false);
        o.keeper.register(&b);
        Ok(b)
    }

    /// A brigade Apache lent to a filter call; `invalidate` it when the call ends.
    ///
    /// # Safety
    /// `bb` must stay valid until `invalidate()` is called.
    pub unsafe fn borrowed(bb: *mut sys::apr_bucket_brigade, o: Origin) -> Brigade {
        Brigade::wrap(bb, o, true)
    }

    fn wrap(bb: *mut sys::apr_bucket_brigade, origin: Origin, borrowed: bool) -> Brigade {
        Brigade(Arc::new(BrigadeInner {
            bb,
            origin,
            valid: AtomicBool::new(true),
            borrowed,
        }))
    }

    pub(crate) fn raw(&self) -> *mut sys::apr_bucket_brigade {
        self.0.bb
    }

    pub fn origin(&self) -> &Origin {
        &self.0.origin
    }

    pub fn is_borrowed(&self) -> bool {
        self.0.borrowed
    }

    pub fn same(&self, other: &Brigade) -> bool {
        self.0.bb == other.0.bb
    }

    /// The end of a borrowed brigade's call: every later use fails.
    pub fn invalidate(&self) {
        if self.0.valid.swap(false, Ordering::AcqRel) && self.0.origin.check().is_ok() {
            // SAFETY: checked: the connection is alive and served by this thread.
            unsafe { kill_in(self.0.origin.c, self.0.bb) };
        }
    }

    /// Is the handle usable (valid, alive, on its connection's thread)?
    fn check(&self) -> Result<Checked<'_>, BbError> {
        let ok = self.0.origin.check()?;
        if !self.0.valid.load(Ordering::Acquire) {
            return Err(BbError::Dead(
                "this brigade belonged to a filter call that has ended",
            ));
        }
        Ok(ok)
    }

    pub fn is_usable(&self) -> bool {
        self.check().is_ok()
    }

    fn bucket_at(&self, e: *mut sys::apr_bucket) -> Option<Bucket> {
        // SAFETY: callers checked the brigade; `e` is a bucket of it or its sentinel.
        if e == unsafe { sys::modpy_brigade_sentinel(self.0.bb) } {
            return None;
        }
        Some(Bucket::lookup(e, Some(self.clone()), &self.0.origin))
    }

    pub fn first(&self) -> Result<Option<Bucket>, BbError> {
        let _ok = self.check()?;
        // SAFETY: valid brigade.
        Ok(self.bucket_at(unsafe { sys::modpy_brigade_first(self.0.bb) }))
    }

    pub fn last(&self) -> Result<Option<Bucket>, BbError> {
        let _ok = self.check()?;
        // SAFETY: valid brigade.
        Ok(self.bucket_at(unsafe { sys::modpy_brigade_last(self.0.bb) }))
    }

    pub fn is_empty(&self) -> Result<bool, BbError> {
        let _ok = self.check()?;
        // SAFETY: valid brigade.
        Ok(unsafe { sys::modpy_brigade_empty(self.0.bb) } != 0)
    }

    /// Number of buckets.
    pub fn count(&self) -> Result<usize, BbError> {
        let _ok = self.check()?;
        let mut n = 0;
        // SAFETY: walking a valid brigade.
        unsafe {
            let end = sys::modpy_brigade_sentinel(self.0.bb);
            let mut e = sys::modpy_brigade_first(self.0.bb);
            while e != end {
                n += 1;
                e = sys::modpy_bucket_next(e);
            }
        }
        Ok(n)
    }

    /// apr_brigade_length: bytes of data; with `read_all`, buckets of unknown length (pipes,
    /// sockets) are read to find out, else such a brigade gives None.
    pub fn length(&self, read_all: bool) -> Result<Option<i64>, BbError> {
        let _ok = self.check()?;
        let mut len: sys::apr_off_t = 0;
        // SAFETY: valid brigade; reading may morph buckets in place (no bucket is freed).
        let rv = unsafe { sys::apr_brigade_length(self.0.bb, read_all as i32, &mut len) };
        if rv != 0 {
            return Err(BbError::Status(rv, "apr_brigade_length"));
        }
        Ok((len >= 0).then_some(len))
    }

    /// Reads every bucket that may wait (PIPE, SOCKET, unknown length) into memory,
    /// so that `flatten_with` then only copies. Call without the GIL.
    pub fn load_all(&self) -> Result<(), BbError> {
        let _ok = self.check()?;
        // SAFETY: walking a valid brigade on its connection's thread; reading morphs buckets
        // in place and may insert new ones after them, it frees none.
        unsafe {
            let end = sys::modpy_brigade_sentinel(self.0.bb);
            let mut e = sys::modpy_brigade_first(self.0.bb);
            while e != end {
                if super::filter::needs_io(e, self.0.bb) {
                    let mut data: *const c_char = std::ptr::null();
                    let mut len: sys::apr_size_t = 0;
                    let rv = sys::modpy_bucket_read(
                        e,
                        &mut data,
                        &mut len,
                        sys::apr_read_type_e_APR_BLOCK_READ,
                    );
                    if rv != 0 {
                        return Err(BbError::Status(rv, "apr_bucket_read"));
                    }
                }
                e = sys::modpy_bucket_next(e);
            }
        }
        Ok(())
    }

    /// All data of the brigade, copied once into the buffer `make(total)` returns.
    pub fn flatten_with<R>(
        &self,
        make: impl FnOnce(usize, &mut dyn FnMut(&mut [u8])) -> R,
    ) -> Result<R, BbError> {
        let total = self.length(true)?.unwrap_or(0) as usize;
        let _ok = self.check()?;
        let bb = self.0.bb;
        let mut status = 0;
        let r = make(total, &mut |buf: &mut [u8]| {
            let mut len = buf.len() as sys::apr_size_t;
            // SAFETY: apr_brigade_flatten writes at most `len` bytes into buf.
            status =
                unsafe { sys::apr_brigade_flatten(bb, buf.as_mut_ptr() as *mut c_char, &mut len) };
        });
        if status != 0 {
            return Err(BbError::Status(status, "apr_brigade_flatten"));
        }
        Ok(r)
    }

    /// Appends (or prepends) `b`, taking it out of the brigade it was in.
    pub fn insert(&self, b: &Bucket, at_head: bool) -> Result<(), BbError> {
        let _ok = self.check()?;
        let mut st = b.0.check_state(&self.0.origin)?;
        b.0.unlink(&mut st);
        // SAFETY: `b` is now in no brigade; self is valid.
        unsafe {
            if at_head {
                sys::modpy_brigade_insert_head(self.0.bb, b.0.b);
            } else {
                sys::modpy_brigade_insert_tail(self.0.bb, b.0.b);
            }
        }
        st.brigade = Some(self.clone());
        Ok(())
    }

    /// Destroys every bucket (apr_brigade_cleanup); the brigade stays usable.
    pub fn cleanup(&self) -> Result<(), BbError> {
        let _ok = self.check()?;
        // SAFETY: checked; the handles of its buckets die first.
        unsafe {
            kill_in(self.0.origin.c, self.0.bb);
            sys::apr_brigade_cleanup(self.0.bb as *mut c_void);
        }
        Ok(())
    }

    /// apr_brigade_split_ex: `e` and everything after it move to a new brigade.
    pub fn split_at(&self, e: &Bucket) -> Result<Brigade, BbError> {
        let _ok = self.check()?;
        let st = e.0.check_state(&self.0.origin)?;
        if !st.brigade.as_ref().is_some_and(|b| b.same(self)) {
            return Err(BbError::Invalid("the bucket is not in this brigade"));
        }
        drop(st);
        let o = &self.0.origin;
        let nb = o.keeper.raw_brigade(o);
        // SAFETY: checked; the new brigade lives in the origin's pool; `e` is in self.
        let new = unsafe { sys::apr_brigade_split_ex(self.0.bb, e.0.b, nb) };
        let new = Brigade::wrap(new, o.clone(), false);
        o.keeper.register(&new);
        // SAFETY: checked (connection alive, this thread).
        unsafe { rehome(o.c, &new) };
        Ok(new)
    }

    /// APR_BRIGADE_CONCAT: moves every bucket of `other` to the end of self.
    pub fn concat(&self, other: &Brigade) -> Result<(), BbError> {
        let _ok = self.check()?;
        let _ok2 = other.check()?;
        if self.same(other) {
            return Err(BbError::Invalid("cannot concatenate a brigade with itself"));
        }
        if self.0.origin.c != other.0.origin.c {
            return Err(BbError::Invalid(
                "the brigades belong to different connections",
            ));
        }
        // SAFETY: both valid, same allocator.
        unsafe {
            sys::modpy_brigade_concat(self.0.bb, other.0.bb);
            rehome(self.0.origin.c, self);
        }
        Ok(())
    }

    /// Sets aside every bucket into the origin's pool, so they outlive the current call.
    pub fn setaside(&self) -> Result<(), BbError> {
        let _ok = self.check()?;
        // SAFETY: walking a valid brigade; setaside morphs buckets in place.
        unsafe { setaside_all(self.0.bb, self.0.origin.pool) }
    }

    /// Gives the brigade to Apache code (ap_pass_brigade, ap_get_brigade): its bucket handles
    /// die first. Returns the raw pointer for that call.
    pub(crate) fn hand_over(&self) -> Result<*mut sys::apr_bucket_brigade, BbError> {
        let _ok = self.check()?;
        // SAFETY: checked.
        unsafe { kill_in(self.0.origin.c, self.0.bb) };
        Ok(self.0.bb)
    }
}

/// Sets aside every bucket of `bb` into `pool`.
///
/// # Safety
/// `bb` must be a valid brigade whose connection is served by this thread.
pub(crate) unsafe fn setaside_all(
    bb: *mut sys::apr_bucket_brigade,
    pool: *mut sys::apr_pool_t,
) -> Result<(), BbError> {
    // SAFETY: per this function's contract (see # Safety above).
    unsafe {
        let end = sys::modpy_brigade_sentinel(bb);
        let mut e = sys::modpy_brigade_first(bb);
        while e != end {
            let rv = sys::modpy_bucket_setaside(e, pool);
            if rv != 0 && rv != sys::APR_ENOTIMPL as i32 {
                return Err(BbError::Status(rv, "apr_bucket_setaside"));
            }
            e = sys::modpy_bucket_next(e);
        }
    }
    Ok(())
}

// ---- buckets ----

struct CellState {
    dead: bool,
    /// The brigade the bucket is in; None: floating (owned by this cell).
    brigade: Option<Brigade>,
    /// Where the bucket was when it was removed: (brigade, its successor then), so that an
    /// iteration that removes the current bucket can go on.
    removed_from: Option<(Brigade, *mut sys::apr_bucket)>,
}

/// The one state of one apr_bucket, shared by every handle on it.
pub struct BucketCell {
    b: *mut sys::apr_bucket,
    origin: Origin,
    st: Mutex<CellState>,
}

// SAFETY: see Origin.
unsafe impl Send for BucketCell {}
unsafe impl Sync for BucketCell {}

impl BucketCell {
    fn state(&self) -> std::sync::MutexGuard<'_, CellState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state, after checking the bucket is alive and usable here.
    fn check_state(&self, o: &Origin) -> Result<std::sync::MutexGuard<'_, CellState>, BbError> {
        if o.c != self.origin.c {
            return Err(BbError::Invalid("the bucket belongs to another connection"));
        }
        if !is_active(self.origin.c) {
            return Err(BbError::NotActive);
        }
        self.origin.conn_live.check()?;
        // As for filters: a held lock here means re-entry, an error rather than a deadlock.
        let st = match self.st.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(BbError::Invalid(
                    "the bucket is in use by the operation in progress",
                ))
            }
        };
        if st.dead {
            return Err(BbError::Dead(
                "this bucket no longer exists (deleted, passed on, or its filter call ended)",
            ));
        }
        if let Some(bb) = &st.brigade {
            bb.check()?;
        }
        Ok(st)
    }

    /// Takes the bucket out of its brigade (it becomes floating).
    fn unlink(&self, st: &mut CellState) {
        if let Some(bb) = st.brigade.take() {
            // SAFETY: the bucket is in `bb` (valid, checked by the caller).
            unsafe {
                let next = sys::modpy_bucket_next(self.b);
                sys::modpy_bucket_remove(self.b);
                st.removed_from = Some((bb, next));
            }
            self.float();
        }
    }

    fn float(&self) {
        // SAFETY: checked by callers (connection alive, this thread).
        if let Some(reg) = unsafe { registry(self.origin.c, true) } {
            let mut r = lock(reg);
            if let Some(w) = r.cells.get(&(self.b as usize)).cloned() {
                r.floating.push(w);
            }
        }
    }
}

impl Drop for BucketCell {
    fn drop(&mut self) {
        // A floating bucket nobody refers to any more is freed now if that is safe here;
        // otherwise the sweep at the end of the call (or the connection's end) takes it.
        let st = self.st.get_mut().unwrap_or_else(|e| e.into_inner());
        if !st.dead && st.brigade.is_none() && is_active(self.origin.c) {
            if let Ok(_alive) = self.origin.conn_live.check() {
                st.dead = true;
                // SAFETY: floating bucket owned by this cell; its allocator is alive and used
                // by this thread.
                unsafe { sys::modpy_bucket_destroy(self.b) };
            }
        }
    }
}

/// A handle on an apr_bucket.
#[derive(Clone)]
pub struct Bucket(Arc<BucketCell>);

/// What kind of bucket this is (apr_bucket_type_t).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    /// b->type->name: "HEAP", "TRANSIENT", "FILE", "MMAP", "POOL", "IMMORTAL", "FLUSH", "EOS",
    /// "ERROR", "EOC", "SOCKET", "PIPE", ...
    pub type_name: String,
    pub is_metadata: bool,
    /// None for buckets of unknown length (sockets, pipes) until read.
    pub length: Option<u64>,
    pub start: i64,
    /// The HTTP status of an ERROR bucket.
    pub error_status: Option<i32>,
}

impl Bucket {
    /// The handle of bucket `e` (the same cell for every lookup while it lives).
    fn lookup(e: *mut sys::apr_bucket, bb: Option<Brigade>, o: &Origin) -> Bucket {
        // SAFETY: callers checked the origin (connection alive, this thread).
        let reg = unsafe { registry(o.c, true) }.expect("registry");
        let mut r = lock(reg);
        if let Some(cell) = r.cells.get(&(e as usize)).and_then(Weak::upgrade) {
            let mut st = cell.state();
            if !st.dead {
                if bb.is_some() {
                    st.brigade = bb;
                }
                drop(st);
                return Bucket(cell);
            }
        }
        let floating = bb.is_none();
        let cell = Arc::new(BucketCell {
            b: e,
            origin: o.clone(),
            st: Mutex::new(CellState {
                dead: false,
                brigade: bb,
                removed_from: None,
            }),
        });
        if r.cells.len() > 4096 {
            r.cells.retain(|_, w| w.strong_count() > 0);
        }
        r.cells.insert(e as usize, Arc::downgrade(&cell));
        if floating {
            r.floating.push(Arc::downgrade(&cell));
        }
        Bucket(cell)
    }

    fn new_floating(o: &Origin, e: *mut sys::apr_bucket) -> Result<Bucket, BbError> {
        if e.is_null() {
            return Err(BbError::Invalid("bucket creation failed"));
        }
        Ok(Bucket::lookup(e, None, o))
    }

    /// A heap bucket holding a copy of `data`.
    pub fn heap(o: &Origin, data: &[u8]) -> Result<Bucket, BbError> {
        let _ok = o.check()?;
        // SAFETY: the allocator is alive; the data is copied.
        let e = unsafe {
            sys::modpy_bucket_heap_copy(data.as_ptr() as *const c_char, data.len(), o.alloc())
        };
        Bucket::new_floating(o, e)
    }

    pub fn flush(o: &Origin) -> Result<Bucket, BbError> {
        let _ok = o.check()?;
        // SAFETY: the allocator is alive.
        Bucket::new_floating(o, unsafe { sys::modpy_bucket_flush(o.alloc()) })
    }

    pub fn eos(o: &Origin) -> Result<Bucket, BbError> {
        let _ok = o.check()?;
        // SAFETY: the allocator is alive.
        Bucket::new_floating(o, unsafe { sys::modpy_bucket_eos(o.alloc()) })
    }

    /// An ERROR bucket (ap_bucket_error_create) with an HTTP status.
    pub fn error(o: &Origin, status: i32) -> Result<Bucket, BbError> {
        let _ok = o.check()?;
        // SAFETY: pool and allocator alive.
        Bucket::new_floating(o, unsafe {
            sys::modpy_bucket_error(status, o.pool, o.alloc())
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut CellState) -> Result<R, BbError>) -> Result<R, BbError> {
        let mut st = self.0.check_state(&self.0.origin)?;
        f(&mut st)
    }

    pub fn info(&self) -> Result<BucketInfo, BbError> {
        self.with(|_| {
            // SAFETY: live bucket; its type is a static apr_bucket_type_t.
            unsafe {
                let b = &*self.0.b;
                let t = &*b.type_;
                let name = super::pool::cstr(t.name).unwrap_or(b"?");
                Ok(BucketInfo {
                    type_name: String::from_utf8_lossy(name).into_owned(),
                    is_metadata: t.is_metadata == sys::apr_bucket_type_t_APR_BUCKET_METADATA,
                    length: (b.length != sys::apr_size_t::MAX).then_some(b.length as u64),
                    start: b.start,
                    error_status: {
                        let s = sys::modpy_bucket_error_status(self.0.b);
                        (s >= 0).then_some(s)
                    },
                })
            }
        })
    }

    /// apr_bucket_read, the data handed to `f` (valid only during it). FILE, PIPE and SOCKET
    /// buckets read part of their data into memory and insert a bucket for the rest after
    /// themselves, so they must be in a brigade.
    pub fn read_with<R>(&self, block: bool, f: impl FnOnce(&[u8]) -> R) -> Result<R, BbError> {
        self.with(|st| {
            // SAFETY: live bucket; see above for the brigade requirement.
            unsafe {
                if st.brigade.is_none() {
                    let t = &*(*self.0.b).type_;
                    let name = super::pool::cstr(t.name).unwrap_or_default();
                    if matches!(name, b"FILE" | b"PIPE" | b"SOCKET") {
                        return Err(BbError::Invalid(
                            "a FILE, PIPE or SOCKET bucket must be in a brigade to be read",
                        ));
                    }
                }
                let mut data: *const c_char = std::ptr::null();
                let mut len: sys::apr_size_t = 0;
                let mode = if block {
                    sys::apr_read_type_e_APR_BLOCK_READ
                } else {
                    sys::apr_read_type_e_APR_NONBLOCK_READ
                };
                let rv = sys::modpy_bucket_read(self.0.b, &mut data, &mut len, mode);
                if rv != 0 {
                    return Err(BbError::Status(rv, "apr_bucket_read"));
                }
                let slice = if len == 0 || data.is_null() {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(data as *const u8, len)
                };
                Ok(f(slice))
            }
        })
    }

    /// Would reading this bucket wait for another process or the network (see
    /// filter::needs_io)?
    pub fn needs_io(&self) -> bool {
        self.with(|st| {
            let Some(bb) = &st.brigade else {
                return Ok(false);
            };
            // SAFETY: a live bucket of its valid brigade.
            Ok(unsafe { super::filter::needs_io(self.0.b, bb.raw()) })
        })
        .unwrap_or(false)
    }

    /// apr_bucket_read into memory, data unused: the I/O part of a read, done without the
    /// GIL before `read_with` copies the data.
    pub fn load(&self, block: bool) -> Result<(), BbError> {
        self.read_with(block, |_| ())
    }

    /// apr_bucket_split: self keeps the first `point` bytes; the rest becomes a new bucket
    /// right after it, which is returned.
    pub fn split(&self, point: usize) -> Result<Bucket, BbError> {
        let bb = self.with(|st| {
            let Some(bb) = st.brigade.clone() else {
                return Err(BbError::Invalid("only a bucket in a brigade can be split"));
            };
            // SAFETY: live bucket in a valid brigade.
            let rv = unsafe { sys::modpy_bucket_split(self.0.b, point) };
            if rv != 0 {
                return Err(BbError::Status(rv, "apr_bucket_split"));
            }
            Ok(bb)
        })?;
        // SAFETY: split inserted the new bucket after self, inside bb.
        let next = unsafe { sys::modpy_bucket_next(self.0.b) };
        Ok(Bucket::lookup(next, Some(bb.clone()), &bb.0.origin))
    }

    /// Takes the bucket out of its brigade; it can be inserted elsewhere during this call.
    pub fn remove(&self) -> Result<(), BbError> {
        self.with(|st| {
            self.0.unlink(st);
            Ok(())
        })
    }

    /// Removes and destroys the bucket (apr_bucket_delete).
    pub fn delete(&self) -> Result<(), BbError> {
        self.with(|st| {
            self.0.unlink(st);
            st.dead = true;
            // SAFETY: the bucket is now in no brigade, and dead for every handle.
            unsafe { sys::modpy_bucket_destroy(self.0.b) };
            Ok(())
        })?;
        // SAFETY: connection alive and on this thread (checked in with()).
        if let Some(reg) = unsafe { registry(self.0.origin.c, false) } {
            lock(reg).cells.remove(&(self.0.b as usize));
        }
        Ok(())
    }

    /// Inserts `other` right before (or after) self, taking it out of where it was.
    pub fn insert(&self, other: &Bucket, after: bool) -> Result<(), BbError> {
        if Arc::ptr_eq(&self.0, &other.0) {
            return Err(BbError::Invalid(
                "a bucket cannot be inserted next to itself",
            ));
        }
        let bb = self.with(|st| {
            st.brigade
                .clone()
                .ok_or(BbError::Invalid("the bucket is not in a brigade"))
        })?;
        let mut ost = other.0.check_state(&self.0.origin)?;
        other.0.unlink(&mut ost);
        // SAFETY: self is in a valid brigade; other is floating.
        unsafe {
            if after {
                sys::modpy_bucket_insert_after(self.0.b, other.0.b);
            } else {
                sys::modpy_bucket_insert_before(self.0.b, other.0.b);
            }
        }
        ost.brigade = Some(bb);
        Ok(())
    }

    /// The bucket after (or before) this one in its brigade.
    pub fn neighbour(&self, next: bool) -> Result<Option<Bucket>, BbError> {
        let bb = self.with(|st| Ok(st.brigade.clone()))?;
        let Some(bb) = bb else { return Ok(None) };
        // SAFETY: live bucket in a valid brigade.
        let e = unsafe {
            if next {
                sys::modpy_bucket_next(self.0.b)
            } else {
                sys::modpy_bucket_prev(self.0.b)
            }
        };
        Ok(bb.bucket_at(e))
    }

    /// For iterations: the next bucket of `bb` after this one, also when this one has just
    /// been removed or deleted (then: its successor at that moment, if still in `bb`).
    pub fn next_in(&self, bb: &Brigade) -> Result<Option<Bucket>, BbError> {
        let _ok = bb.check()?;
        let st = self.0.state();
        if !st.dead && st.brigade.as_ref().is_some_and(|b| b.same(bb)) {
            drop(st);
            return self.neighbour(true);
        }
        if let Some((from, succ)) = &st.removed_from {
            if from.same(bb) {
                let succ = *succ;
                drop(st);
                // SAFETY: valid brigade.
                if succ == unsafe { sys::modpy_brigade_sentinel(bb.raw()) } {
                    return Ok(None);
                }
                // The successor must still be a live member of bb.
                // SAFETY: connection alive, this thread (bb checked).
                let reg = unsafe { registry(bb.0.origin.c, false) };
                let known =
                    reg.and_then(|r| lock(r).cells.get(&(succ as usize)).and_then(Weak::upgrade));
                match known {
                    Some(cell) => {
                        let cst = cell.state();
                        if !cst.dead && cst.brigade.as_ref().is_some_and(|b| b.same(bb)) {
                            drop(cst);
                            return Ok(Some(Bucket(cell)));
                        }
                    }
                    None => {
                        // Not seen by any handle: it is where it was, unless the brigade
                        // changed through Apache (which kills handles); walk to be sure.
                        // SAFETY: walking a valid brigade.
                        unsafe {
                            let end = sys::modpy_brigade_sentinel(bb.raw());
                            let mut e = sys::modpy_brigade_first(bb.raw());
                            while e != end {
                                if e == succ {
                                    return Ok(bb.bucket_at(e));
                                }
                                e = sys::modpy_bucket_next(e);
                            }
                        }
                    }
                }
            }
        }
        Err(BbError::Invalid(
            "the brigade changed under the iteration (the current bucket was moved elsewhere)",
        ))
    }

    /// apr_bucket_setaside into the bucket's pool (request or connection).
    pub fn setaside(&self) -> Result<(), BbError> {
        self.with(|_| {
            // SAFETY: live bucket; the pool is alive (checked with the origin).
            let rv = unsafe { sys::modpy_bucket_setaside(self.0.b, self.0.origin.pool) };
            if rv != 0 && rv != sys::APR_ENOTIMPL as i32 {
                return Err(BbError::Status(rv, "apr_bucket_setaside"));
            }
            Ok(())
        })
    }

    /// apr_bucket_copy: a new floating bucket sharing the data.
    pub fn copy(&self) -> Result<Bucket, BbError> {
        let o = self.0.origin.clone();
        let e = self.with(|_| {
            let mut c: *mut sys::apr_bucket = std::ptr::null_mut();
            // SAFETY: live bucket.
            let rv = unsafe { sys::modpy_bucket_copy(self.0.b, &mut c) };
            if rv != 0 {
                return Err(BbError::Status(rv, "apr_bucket_copy"));
            }
            Ok(c)
        })?;
        Bucket::new_floating(&o, e)
    }

    pub fn is_alive(&self) -> bool {
        self.0.check_state(&self.0.origin).is_ok()
    }

    pub fn in_brigade(&self) -> bool {
        let st = self.0.state();
        !st.dead && st.brigade.is_some()
    }
}

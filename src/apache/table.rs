//! apr_table_t: Apache's case-insensitive, multi-valued string table (headers, notes, env).

use super::pool::{c_string, cstr, Gone, Liveness};
use crate::sys;

/// One (key, value) pair of a table, copied out.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A live view of an apr_table_t owned by a pool (request, connection or server).
#[derive(Clone)]
pub struct Table {
    t: *mut sys::apr_table_t,
    live: Liveness,
}

// SAFETY: every access goes through `live.check()`, which keeps the owning pool alive; APR
// tables are not internally synchronised, but Apache gives a request to one thread at a time
// and Python callers hold the GIL.
unsafe impl Send for Table {}
unsafe impl Sync for Table {}

impl Table {
    /// # Safety
    /// `t` must be a valid table that lives as long as the pool `live` is tied to.
    pub unsafe fn from_raw(t: *mut sys::apr_table_t, live: Liveness) -> Table {
        Table { t, live }
    }

    pub fn entries(&self) -> Result<Vec<Entry>, Gone> {
        let _alive = self.live.check()?;
        // SAFETY: the table is alive; apr_table_elts returns its entry array.
        let arr = unsafe { &*sys::apr_table_elts(self.t) };
        let elts = arr.elts as *const sys::apr_table_entry_t;
        let mut out = Vec::with_capacity(arr.nelts as usize);
        for i in 0..arr.nelts as usize {
            // SAFETY: i < nelts; keys and values are NUL-terminated strings of the table's pool.
            let e = unsafe { &*elts.add(i) };
            if let Some(k) = unsafe { cstr(e.key) } {
                let v = unsafe { cstr(e.val) }.unwrap_or_default();
                out.push((k.to_vec(), v.to_vec()));
            }
        }
        Ok(out)
    }

    /// Calls `f` on every (key, value) in order without copying them out.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) -> Result<(), Gone> {
        let _alive = self.live.check()?;
        // SAFETY: the table is alive; apr_table_elts returns its entry array.
        let arr = unsafe { &*sys::apr_table_elts(self.t) };
        let elts = arr.elts as *const sys::apr_table_entry_t;
        for i in 0..arr.nelts as usize {
            // SAFETY: i < nelts; keys and values are NUL-terminated strings of the table's pool
            // that stay alive (and unmodified: f cannot reach this table) during the call.
            let e = unsafe { &*elts.add(i) };
            if let Some(k) = unsafe { cstr(e.key) } {
                f(k, unsafe { cstr(e.val) }.unwrap_or_default());
            }
        }
        Ok(())
    }

    /// The first value of `key` (apr_table_get).
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Gone> {
        let _alive = self.live.check()?;
        let k = c_string(key);
        // SAFETY: live table, NUL-terminated key; the result is copied before the guard drops.
        Ok(unsafe { cstr(sys::apr_table_get(self.t, k.as_ptr())) }.map(<[u8]>::to_vec))
    }

    /// Every value of `key`, in order.
    pub fn get_all(&self, key: &[u8]) -> Result<Vec<Vec<u8>>, Gone> {
        Ok(self
            .entries()?
            .into_iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
            .collect())
    }

    pub fn len(&self) -> Result<usize, Gone> {
        let _alive = self.live.check()?;
        // SAFETY: live table.
        Ok(unsafe { (*sys::apr_table_elts(self.t)).nelts } as usize)
    }

    pub fn is_empty(&self) -> Result<bool, Gone> {
        Ok(self.len()? == 0)
    }

    fn op(
        &self,
        key: &[u8],
        val: &[u8],
        f: unsafe extern "C" fn(*mut sys::apr_table_t, *const i8, *const i8),
    ) -> Result<(), Gone> {
        let _alive = self.live.check()?;
        let (k, v) = (c_string(key), c_string(val));
        // SAFETY: live table; the apr_table_{set,add,merge} variants copy key and value.
        unsafe { f(self.t, k.as_ptr(), v.as_ptr()) };
        Ok(())
    }

    /// apr_table_set: replace every value of `key` with `val`.
    pub fn set(&self, key: &[u8], val: &[u8]) -> Result<(), Gone> {
        self.op(key, val, sys::apr_table_set)
    }

    /// apr_table_add: one more value for `key`.
    pub fn add(&self, key: &[u8], val: &[u8]) -> Result<(), Gone> {
        self.op(key, val, sys::apr_table_add)
    }

    /// apr_table_merge: append `val` to the existing value with ", ".
    pub fn merge(&self, key: &[u8], val: &[u8]) -> Result<(), Gone> {
        self.op(key, val, sys::apr_table_merge)
    }

    /// apr_table_unset: remove every value of `key`.
    pub fn unset(&self, key: &[u8]) -> Result<(), Gone> {
        let _alive = self.live.check()?;
        let k = c_string(key);
        // SAFETY: live table, NUL-terminated key.
        unsafe { sys::apr_table_unset(self.t, k.as_ptr()) };
        Ok(())
    }

    /// apr_table_clear.
    pub fn clear(&self) -> Result<(), Gone> {
        let _alive = self.live.check()?;
        // SAFETY: live table.
        unsafe { sys::apr_table_clear(self.t) };
        Ok(())
    }

    pub fn is_alive(&self) -> bool {
        self.live.is_alive()
    }
}

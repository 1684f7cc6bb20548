//! What mod_py remembers per request about its Python handler phases: handlers added at run
//! time (mod_python's `req.add_handler`), the phase running now, whether the cleanup phase is
//! scheduled, and the bookkeeping of subrequests mod_py created (src/apache/subrequest.rs).
//! Pure bookkeeping on the request's state; no Python.

use super::request::RequestRef;
use crate::config::HandlerEntry;
use crate::phase::Phase;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
pub struct PhaseState {
    /// Handlers added with add_handler, in order, each with its phase.
    added: Vec<(Phase, HandlerEntry)>,
    /// One bit per phase that has added handlers: hooks test it without touching `added`.
    added_mask: u16,
    /// The phase running now and the handler being called in it.
    current: Option<(Phase, Option<HandlerEntry>)>,
    cleanup_scheduled: bool,
    /// Python filters registered for this request only (req.register_output_filter).
    filters: Vec<crate::config::filters::FilterSpec>,
    /// This request is a subrequest made by mod_py's lookup functions: only those may be run
    /// and destroyed from Python.
    pub(super) sub_owned: bool,
    pub(super) sub_running: bool,
    pub(super) sub_destroying: AtomicBool,
    /// Set by a pre-cleanup when the request's pool starts being destroyed: no new
    /// subrequests (their pools would be children of a pool being freed).
    pub(super) pool_ending: bool,
}

impl PhaseState {
    pub fn has_added(&self, phase: Phase) -> bool {
        self.added_mask & (1 << phase.index()) != 0
    }
}

/// The phase a request was in before `RequestRef::enter_phase`, restored by `leave_phase`.
pub struct PreviousPhase(Option<(Phase, Option<HandlerEntry>)>);

impl<'a> RequestRef<'a> {
    /// mod_python's req.add_handler: `entry` runs after the configured handlers of `phase`
    /// (of this request only); added during that phase, it runs in the same pass.
    pub fn add_handler(&self, phase: Phase, entry: HandlerEntry) {
        let st = &mut self.state().phase;
        st.added.push((phase, entry));
        st.added_mask |= 1 << phase.index();
    }

    /// The `n`th handler added for `phase` (None past the last).
    pub fn added_handler(&self, phase: Phase, n: usize) -> Option<HandlerEntry> {
        let st = &self.state().phase;
        if !st.has_added(phase) {
            return None;
        }
        st.added
            .iter()
            .filter(|(p, _)| *p == phase)
            .nth(n)
            .map(|(_, e)| e.clone())
    }

    pub fn has_added_handlers(&self, phase: Phase) -> bool {
        self.state().phase.has_added(phase)
    }

    /// Records that `phase` is running (set_current_handler says which handler).
    pub fn enter_phase(&self, phase: Phase) -> PreviousPhase {
        PreviousPhase(self.state().phase.current.replace((phase, None)))
    }

    pub fn set_current_handler(&self, entry: &HandlerEntry) {
        if let Some((_, e)) = self.state().phase.current.as_mut() {
            *e = Some(entry.clone());
        }
    }

    pub fn leave_phase(&self, prev: PreviousPhase) {
        self.state().phase.current = prev.0;
    }

    /// The phase running now.
    pub fn current_phase(&self) -> Option<Phase> {
        self.state().phase.current.as_ref().map(|(p, _)| *p)
    }

    /// The phase running now and the handler being called (mod_python's req.hlist).
    pub fn current_handler(&self) -> Option<(Phase, HandlerEntry)> {
        let (p, e) = self.state().phase.current.as_ref()?;
        Some((*p, e.clone()?))
    }

    /// Registers a Python filter for this request (a later one of the same name and
    /// direction replaces it).
    pub fn register_filter(&self, spec: crate::config::filters::FilterSpec) {
        let filters = &mut self.state().phase.filters;
        filters.retain(|f| !(f.input == spec.input && f.key() == spec.key()));
        filters.push(spec);
    }

    /// The filter of that name registered for this request, if any.
    pub fn registered_filter(
        &self,
        name: &[u8],
        input: bool,
    ) -> Option<crate::config::filters::FilterSpec> {
        let key = String::from_utf8_lossy(name).to_ascii_lowercase();
        let st = &self.state().phase;
        st.filters
            .iter()
            .find(|f| f.input == input && f.key() == key)
            .cloned()
    }

    /// True the first time it is called for this request: the caller schedules the cleanup
    /// phase then.
    pub fn schedule_cleanup_once(&self) -> bool {
        !std::mem::replace(&mut self.state().phase.cleanup_scheduled, true)
    }

    pub(super) fn sub_destroying(&self) -> &AtomicBool {
        &self.state().phase.sub_destroying
    }

    pub(super) fn mark_destroying(&self) -> bool {
        !self.sub_destroying().swap(true, Ordering::AcqRel)
    }
}

/// Registers the pre-cleanup that sets `pool_ending` (called once, when the state is made).
///
/// # Safety
/// `pool` must be the request's pool and `state` its RequestState, freed by a (normal)
/// cleanup of that pool, which runs after every pre-cleanup.
pub(super) unsafe fn register_pool_end(
    pool: *mut crate::sys::apr_pool_t,
    state: *mut super::request::RequestState,
) {
    unsafe extern "C" fn mark(data: *mut std::ffi::c_void) -> crate::sys::apr_status_t {
        // SAFETY: `data` is the request's state, alive until the normal cleanups run.
        unsafe {
            (*(data as *mut super::request::RequestState))
                .phase
                .pool_ending = true
        };
        crate::sys::APR_SUCCESS as crate::sys::apr_status_t
    }
    // SAFETY: per this function's contract.
    unsafe {
        crate::sys::apr_pool_pre_cleanup_register(
            pool,
            state as *const std::ffi::c_void,
            Some(mark),
        )
    };
}

/// Has Python added handlers for `phase` to this request? Reads the state only if mod_py has
/// made one (so a request no Python code touched costs one config-vector lookup).
///
/// # Safety
/// `r` must be the live request of the running hook.
pub(super) unsafe fn added_in(r: *mut crate::sys::request_rec, phase: Phase) -> bool {
    // SAFETY: r is live; our slot is NULL or the RequestState made by Request::from_raw.
    unsafe {
        let st = super::module::get_module_config((*r).request_config)
            as *const super::request::RequestState;
        !st.is_null() && (*st).phase.has_added(phase)
    }
}

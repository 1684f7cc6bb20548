//! ap_filter_t: `PythonInputFilter` / `PythonOutputFilter` registration (at config time, in the
//! parent: no Python), the C entry points Apache calls for every brigade, the per-filter
//! state, and the streaming operations (read/write/flush/close/pass_on) the layer above
//! exposes as mod_python's filter object. Also the connection hooks: connection-level filters
//! added to every connection (pre_connection) and `PythonConnectionHandler`
//! (process_connection).
//!
//! Memory stays bounded: reads hand out at most one chunk at a time, written data is passed
//! down once `PASS_AT` bytes have gathered, and buckets passed on untouched are never copied.
//! Failures close the response: see `fail_output` / `fail_input`.

use super::brigade::{kill_in, setaside_all, Active, BbError, Brigade, Origin};
use super::connection::Connection;
use super::log;
use super::pool::{cstr, pool_box, pstrdup, Gone, Liveness};
use super::request::Request;
use super::server::Server;
use crate::config::check_handler_name;
use crate::config::filters::{parse_filter_args, FilterSpec, FilterType};
use crate::sys;
use std::any::Any;
use std::ffi::c_void;
use std::os::raw::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Output written by a filter is passed down once this much has gathered.
pub const PASS_AT: usize = 256 * 1024;
/// Output written in one piece at least this big is passed down at once, without a copy.
pub const WRITE_THROUGH: usize = 64 * 1024;
/// Largest chunk a read without a length returns.
pub const READ_CHUNK: usize = 256 * 1024;
/// How much an input filter asks from upstream at a time (at least).
const UPSTREAM_READ: i64 = 64 * 1024;
/// Per direction: how many differently named Python filters one configuration can have.
pub const MAX_FILTERS: usize = 64;

pub const APR_SUCCESS: i32 = sys::APR_SUCCESS as i32;
pub const APR_EGENERAL: i32 = sys::APR_EGENERAL as i32;
pub const APR_EOF: i32 = sys::APR_EOF as i32;
pub const APR_EAGAIN: i32 = libc::EAGAIN;
pub const AP_FILTER_ERROR: i32 = sys::AP_FILTER_ERROR;

// =====================================================================================
// Configuration: which names are registered, and the spec of each per server
// =====================================================================================

struct Registered {
    server: usize,
    is_main: bool,
    index: usize,
    spec: FilterSpec,
}

/// Kept in the configuration pool (userdata of pconf), so it lives exactly as long as the
/// configuration it describes and is rebuilt on every restart.
#[derive(Default)]
struct ConfRegistry {
    /// Lower-case filter names by trampoline index, per direction.
    out_names: Vec<String>,
    in_names: Vec<String>,
    filters: Vec<Registered>,
    /// (server, is_main, handler)
    conn_handlers: Vec<(usize, bool, String)>,
}

const CONF_KEY: &std::ffi::CStr = c"modpy-filter-registry";

/// # Safety
/// `pconf` must be the configuration pool.
unsafe fn conf_registry<'a>(
    pconf: *mut sys::apr_pool_t,
    create: bool,
) -> Option<&'a mut ConfRegistry> {
    // SAFETY: userdata of the config pool; the box lives as long as the pool.
    unsafe {
        let mut data: *mut c_void = std::ptr::null_mut();
        sys::apr_pool_userdata_get(&mut data, CONF_KEY.as_ptr(), pconf);
        if data.is_null() {
            if !create {
                return None;
            }
            data = pool_box(pconf, ConfRegistry::default()) as *mut c_void;
            sys::apr_pool_userdata_setn(data, CONF_KEY.as_ptr(), None, pconf);
        }
        Some(&mut *(data as *mut ConfRegistry))
    }
}

/// The registry of the running configuration, found from any of its servers. Read-only once
/// the configuration is parsed (children only read it).
fn registry_of<'a>(s: *mut sys::server_rec) -> Option<&'a ConfRegistry> {
    // SAFETY: server_recs and their process_rec live as long as the configuration.
    unsafe {
        if s.is_null() || (*s).process.is_null() {
            return None;
        }
        conf_registry((*(*s).process).pconf, false).map(|r| &*r)
    }
}

impl ConfRegistry {
    /// The spec of filter `index` as seen from server `s`: its own line, else the main
    /// server's (virtual hosts inherit the main server's filters).
    fn spec(&self, input: bool, index: usize, s: *mut sys::server_rec) -> Option<&FilterSpec> {
        let mine = |r: &&Registered| r.index == index && r.spec.input == input;
        self.filters
            .iter()
            .filter(mine)
            .find(|r| r.server == s as usize)
            .or_else(|| self.filters.iter().filter(mine).find(|r| r.is_main))
            .map(|r| &r.spec)
    }

    fn conn_handler(&self, s: *mut sys::server_rec) -> Option<&str> {
        self.conn_handlers
            .iter()
            .find(|h| h.0 == s as usize)
            .or_else(|| self.conn_handlers.iter().find(|h| h.1))
            .map(|h| h.2.as_str())
    }

    /// Connection-level filters in effect for server `s` (own lines override the main
    /// server's of the same name and direction).
    fn connection_filters(&self, s: *mut sys::server_rec) -> Vec<&FilterSpec> {
        let mut out: Vec<&FilterSpec> = Vec::new();
        for r in self.filters.iter().filter(|r| r.spec.ftype.is_connection()) {
            if r.server != s as usize && !r.is_main {
                continue;
            }
            if let Some(spec) = self.spec(r.spec.input, r.index, s) {
                if spec.ftype.is_connection()
                    && !out
                        .iter()
                        .any(|o| o.key() == spec.key() && o.input == spec.input)
                {
                    out.push(spec);
                }
            }
        }
        out
    }
}

fn arg(p: *const c_char) -> Option<String> {
    // SAFETY: Apache passes NUL-terminated arguments or NULL.
    unsafe { cstr(p) }.map(|b| String::from_utf8_lossy(b).into_owned())
}

/// The error string Apache prints after "Syntax error on line N of FILE:".
///
/// # Safety
/// `cmd` must be the cmd_parms of the directive being parsed.
unsafe fn cmd_error(cmd: *mut sys::cmd_parms, name: &str, msg: &str) -> *const c_char {
    let text = format!("{name}: {msg}");
    // SAFETY: cmd->pool outlives the error report.
    unsafe { pstrdup((*cmd).pool, text.as_bytes()) }
}

/// `PythonInputFilter` / `PythonOutputFilter module[::function] NAME [TYPE]`.
///
/// # Safety
/// Called by Apache only (command table in bindings/shim.c), while parsing a directive.
#[no_mangle]
pub unsafe extern "C" fn modpy_cmd_filter(
    cmd: *mut sys::cmd_parms,
    _mconfig: *mut c_void,
    a1: *const c_char,
    a2: *const c_char,
    a3: *const c_char,
) -> *const c_char {
    // SAFETY: cmd is the cmd_parms Apache passed.
    if let Some(err) =
        unsafe { super::config::embedded_only(cmd, &super::config::cmd_info(cmd).name) }
    {
        return err;
    }
    // SAFETY: Apache passes a valid cmd_parms.
    let input =
        unsafe { sys::modpy_cmd_id(cmd) } as u32 == sys::modpy_filter_cmd_id_MODPY_CMD_INPUT_FILTER;
    let dname = if input {
        "PythonInputFilter"
    } else {
        "PythonOutputFilter"
    };
    let handler = arg(a1).unwrap_or_default();
    let Some(name) = arg(a2) else {
        // SAFETY: cmd is valid during this call.
        return unsafe { cmd_error(cmd, dname, "expected module[::function] NAME [TYPE]") };
    };
    let spec = match parse_filter_args(input, &handler, &name, arg(a3).as_deref()) {
        Ok(s) => s,
        // SAFETY: cmd is valid during this call.
        Err(e) => return unsafe { cmd_error(cmd, dname, &e) },
    };
    // SAFETY: cmd->pool is the configuration pool; cmd->server the server being configured.
    unsafe {
        let reg = conf_registry((*cmd).pool, true).expect("registry");
        let names = if input {
            &mut reg.in_names
        } else {
            &mut reg.out_names
        };
        let key = spec.key();
        let index = match names.iter().position(|n| *n == key) {
            Some(i) => i,
            None => {
                if names.len() >= MAX_FILTERS {
                    return cmd_error(
                        cmd,
                        dname,
                        &format!("more than {MAX_FILTERS} Python filters of one direction"),
                    );
                }
                names.push(key);
                names.len() - 1
            }
        };
        let cname = super::pool::c_string(spec.name.as_bytes());
        let ftype = match spec.ftype {
            FilterType::Resource => sys::ap_filter_type_AP_FTYPE_RESOURCE,
            FilterType::ContentSet => sys::ap_filter_type_AP_FTYPE_CONTENT_SET,
            FilterType::Protocol => sys::ap_filter_type_AP_FTYPE_PROTOCOL,
            FilterType::Transcode => sys::ap_filter_type_AP_FTYPE_TRANSCODE,
            FilterType::Connection => sys::ap_filter_type_AP_FTYPE_CONNECTION,
        };
        if input {
            sys::ap_register_input_filter(cname.as_ptr(), Some(IN_FNS[index]), None, ftype);
        } else {
            // Only mod_filter reads these flags (FilterProvider): the content and its length
            // change, so it drops Content-Length, Content-MD5 and ETag.
            sys::ap_register_output_filter_protocol(
                cname.as_ptr(),
                Some(OUT_FNS[index]),
                None,
                ftype,
                sys::AP_FILTER_PROTO_CHANGE | sys::AP_FILTER_PROTO_CHANGE_LENGTH,
            );
        }
        let s = (*cmd).server;
        let is_main = (*s).is_virtual == 0;
        reg.filters
            .retain(|r| !(r.server == s as usize && r.index == index && r.spec.input == input));
        reg.filters.push(Registered {
            server: s as usize,
            is_main,
            index,
            spec,
        });
    }
    std::ptr::null()
}

/// `PythonConnectionHandler module[::function]`.
///
/// # Safety
/// Called by Apache only (command table in bindings/shim.c), while parsing a directive.
#[no_mangle]
pub unsafe extern "C" fn modpy_cmd_connection_handler(
    cmd: *mut sys::cmd_parms,
    _mconfig: *mut c_void,
    a1: *const c_char,
) -> *const c_char {
    // SAFETY: cmd is the cmd_parms Apache passed.
    if let Some(err) =
        unsafe { super::config::embedded_only(cmd, &super::config::cmd_info(cmd).name) }
    {
        return err;
    }
    let handler = arg(a1).unwrap_or_default();
    if let Err(e) = check_handler_name(&handler) {
        // SAFETY: cmd is valid during this call.
        return unsafe { cmd_error(cmd, "PythonConnectionHandler", &e) };
    }
    // SAFETY: as in modpy_cmd_filter.
    unsafe {
        let reg = conf_registry((*cmd).pool, true).expect("registry");
        let s = (*cmd).server;
        reg.conn_handlers.retain(|h| h.0 != s as usize);
        reg.conn_handlers
            .push((s as usize, (*s).is_virtual == 0, handler));
    }
    std::ptr::null()
}

// =====================================================================================
// Entry points: one per registered name (the name is how mod_filter's FilterProvider and our
// lookup find the spec; f->frec is mod_filter's own record when it calls us)
// =====================================================================================

type OutFn =
    unsafe extern "C" fn(*mut sys::ap_filter_t, *mut sys::apr_bucket_brigade) -> sys::apr_status_t;
type InFn = unsafe extern "C" fn(
    *mut sys::ap_filter_t,
    *mut sys::apr_bucket_brigade,
    sys::ap_input_mode_t,
    sys::apr_read_type_e,
    sys::apr_off_t,
) -> sys::apr_status_t;

unsafe extern "C" fn out_tramp<const I: usize>(
    f: *mut sys::ap_filter_t,
    bb: *mut sys::apr_bucket_brigade,
) -> sys::apr_status_t {
    guard(f, || output_entry(I, f, bb))
}

unsafe extern "C" fn in_tramp<const I: usize>(
    f: *mut sys::ap_filter_t,
    bb: *mut sys::apr_bucket_brigade,
    mode: sys::ap_input_mode_t,
    block: sys::apr_read_type_e,
    readbytes: sys::apr_off_t,
) -> sys::apr_status_t {
    guard(f, || input_entry(I, f, bb, mode, block, readbytes))
}

/// A panic in mod_py must not unwind into Apache: it is logged and the filter fails.
fn guard(f: *mut sys::ap_filter_t, run: impl FnOnce() -> i32) -> i32 {
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(rv) => rv,
        Err(_) => {
            // SAFETY: f is the live filter Apache called.
            let c = unsafe { (*f).c };
            log::cerror(
                c,
                log::APLOG_CRIT,
                0,
                "mod_py: internal error (panic) in a filter",
            );
            APR_EGENERAL
        }
    }
}

macro_rules! table {
    ($f:ident; $($i:literal)*) => { [$($f::<$i>),*] };
}

static OUT_FNS: [OutFn; MAX_FILTERS] = table!(out_tramp;
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
    32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63);
static IN_FNS: [InFn; MAX_FILTERS] = table!(in_tramp;
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
    32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63);

// =====================================================================================
// The layer above (Python) plugs in here
// =====================================================================================

/// How one call of the filter function ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Returned None or 0.
    Ok,
    /// Returned another int: handed to Apache as the filter's status (C semantics).
    Status(i32),
    /// An I/O error of Apache escaped the function (the client went away, a read timed out).
    Io(i32),
    /// An exception or a wrong return value; already logged.
    Failed,
}

/// What the Python layer provides (plain function pointers: nothing allocated in the parent).
#[derive(Clone, Copy)]
pub struct Dispatch {
    /// Calls the filter's function once.
    pub filter: fn(&FilterHandle) -> Outcome,
    /// Serves a connection (PythonConnectionHandler): OK, DONE, DECLINED...
    pub connection: fn(&ConnectionCall) -> i32,
}

static DISPATCH: OnceLock<Dispatch> = OnceLock::new();

pub fn set_dispatch(d: Dispatch) {
    let _ = DISPATCH.set(d);
}

// =====================================================================================
// Per-filter state
// =====================================================================================

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    None,
    /// Output filter failed before the response headers went out: the handler is told; an
    /// EOS arriving later turns into a 500 (error bucket).
    Unsent,
    /// The response is finished (error sent, or aborted): everything else is dropped.
    Done(i32),
}

struct CallInfo {
    bb: *mut sys::apr_bucket_brigade,
    mode: sys::ap_input_mode_t,
    block: sys::apr_read_type_e,
    readbytes: i64,
    /// The brigade API was used (f.brigade, get_brigade, pass_brigade): C semantics.
    raw: bool,
    borrowed: Option<Brigade>,
    /// Status of the last upstream read (input filters).
    upstream: i32,
    /// Input filters: this call has read its brigade from upstream (one per call, so that a
    /// read loop ends once per brigade and memory stays bounded).
    filled: bool,
}

struct Stream {
    call: Option<CallInfo>,
    /// Inside ap_pass_brigade / ap_get_brigade.
    busy: bool,
    /// The Python function is running (a nested call of the same filter passes through).
    in_python: bool,
    transparent: bool,
    failure: Failure,
    closed: bool,
    eos_seen: bool,
    progress: u64,
    /// Output filters: what the filter wrote, not yet passed down.
    out: *mut sys::apr_bucket_brigade,
    out_bytes: usize,
    /// Input filters: data from upstream not yet read by the filter.
    inbb: *mut sys::apr_bucket_brigade,
    /// Input filters: what the filter wrote, not yet handed to the reader.
    pending: *mut sys::apr_bucket_brigade,
    scratch: *mut sys::apr_bucket_brigade,
}

const MAGIC: u64 = 0x6d6f_6470_795f_6669;

/// The state of one ap_filter_t (f->ctx), in the pool of its request (or connection).
pub struct Instance {
    magic: u64,
    f: *mut sys::ap_filter_t,
    c: *mut sys::conn_rec,
    input: bool,
    spec: FilterSpec,
    server: Server,
    origin: Origin,
    st: Mutex<Stream>,
    ext: Mutex<Option<Box<dyn Any + Send>>>,
}

// SAFETY: the raw pointers are used only on the connection's thread (Active) while the pool
// is alive; the mutable state is behind a Mutex.
unsafe impl Send for Instance {}
unsafe impl Sync for Instance {}

/// The handle the Python Filter object keeps: every use checks the pool's liveness and that
/// a call of this connection runs on the current thread.
#[derive(Clone)]
pub struct FilterHandle {
    inst: *const Instance,
    live: Liveness,
    c: *mut sys::conn_rec,
}

// SAFETY: see Instance.
unsafe impl Send for FilterHandle {}
unsafe impl Sync for FilterHandle {}

/// Errors of the streaming and brigade operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterError {
    Gone(Gone),
    NotActive,
    NotInCall,
    Busy,
    Closed,
    Io(i32, &'static str),
    Bb(BbError),
}

impl From<Gone> for FilterError {
    fn from(g: Gone) -> Self {
        FilterError::Gone(g)
    }
}

impl From<BbError> for FilterError {
    fn from(e: BbError) -> Self {
        FilterError::Bb(e)
    }
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilterError::Gone(g) => write!(f, "{g}"),
            FilterError::NotActive => {
                write!(
                    f,
                    "a filter object can only be used inside its filter's call, on its thread"
                )
            }
            FilterError::NotInCall => write!(f, "the filter is not running (its call has ended)"),
            FilterError::Busy => write!(
                f,
                "the filter is passing data; it cannot be used from there"
            ),
            FilterError::Closed => write!(f, "I/O operation on closed filter"),
            FilterError::Io(s, what) => write!(f, "{what} failed: {} ({s})", log::strerror(*s)),
            FilterError::Bb(e) => write!(f, "{e}"),
        }
    }
}

/// Data read by a streaming read: what `make` returned, or what happened instead.
pub enum ReadEv<R> {
    Data(R),
    /// A FLUSH bucket was moved to the output: call `pass_out` now, then read again.
    Flush,
    /// End of stream (the EOS bucket was consumed).
    Eos,
    /// Nothing more in this brigade (output), or nothing available now (input, non-blocking).
    Empty,
}

fn mode_name(mode: sys::ap_input_mode_t) -> &'static str {
    match mode {
        sys::ap_input_mode_t_AP_MODE_READBYTES => "READBYTES",
        sys::ap_input_mode_t_AP_MODE_GETLINE => "GETLINE",
        sys::ap_input_mode_t_AP_MODE_EATCRLF => "EATCRLF",
        sys::ap_input_mode_t_AP_MODE_SPECULATIVE => "SPECULATIVE",
        sys::ap_input_mode_t_AP_MODE_EXHAUSTIVE => "EXHAUSTIVE",
        _ => "INIT",
    }
}

impl Instance {
    fn lock(&self) -> MutexGuard<'_, Stream> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn alloc(&self) -> *mut sys::apr_bucket_alloc_t {
        // SAFETY: the connection is alive while the instance is.
        unsafe { (*self.c).bucket_alloc }
    }

    fn new_brigade(&self) -> *mut sys::apr_bucket_brigade {
        // SAFETY: the instance's pool and the allocator are alive.
        unsafe { sys::apr_brigade_create(self.origin.pool, self.alloc()) }
    }

    fn next(&self) -> *mut sys::ap_filter_t {
        // SAFETY: f lives in the instance's pool.
        unsafe { (*self.f).next }
    }

    fn request_ptr(&self) -> *mut sys::request_rec {
        // SAFETY: f lives in the instance's pool.
        unsafe { (*self.f).r }
    }
}

/// The instance of `f` (created on its first call), or None if f->ctx belongs to someone else.
///
/// # Safety
/// `f` must be the live filter Apache is calling, `index` its trampoline index.
unsafe fn instance<'a>(
    f: *mut sys::ap_filter_t,
    index: usize,
    input: bool,
) -> Result<&'a Instance, String> {
    // SAFETY: per the contract.
    unsafe {
        let ctx = (*f).ctx as *const Instance;
        if !ctx.is_null() {
            if (*ctx).magic == MAGIC {
                return Ok(&*ctx);
            }
            return Err("the filter's context was set by another module".into());
        }
        let r = (*f).r;
        let c = (*f).c;
        let server = if r.is_null() {
            (*c).base_server
        } else {
            (*r).server
        };
        let reg = registry_of(server).ok_or("no mod_py filter configuration")?;
        let spec = reg
            .spec(input, index, server)
            .ok_or_else(|| {
                let names = if input { &reg.in_names } else { &reg.out_names };
                format!(
                    "Python filter '{}' is not configured for this server",
                    names.get(index).map(String::as_str).unwrap_or("?")
                )
            })?
            .clone();
        make_instance(f, spec, input, server)
    }
}

/// The filter's state, made when `f` first runs (or when a request adds a filter it
/// registered), kept in f->ctx for the filter's life.
///
/// # Safety
/// `f` is a live filter of ours whose ctx is NULL; `server` is its request's or connection's.
unsafe fn make_instance<'a>(
    f: *mut sys::ap_filter_t,
    spec: FilterSpec,
    input: bool,
    server: *mut sys::server_rec,
) -> Result<&'a Instance, String> {
    // SAFETY: per the contract.
    unsafe {
        let r = (*f).r;
        let c = (*f).c;
        let pool = if r.is_null() { (*c).pool } else { (*r).pool };
        let conn = Connection::from_raw(c);
        let conn_live = conn.get().map_err(|e| e.to_string())?.liveness();
        let live = if r.is_null() {
            conn_live.clone()
        } else {
            Request::from_raw(r).liveness().clone()
        };
        let origin = Origin {
            c,
            conn_live,
            pool,
            live,
            keeper: Default::default(),
        };
        let empty = std::ptr::null_mut();
        let inst = Instance {
            magic: MAGIC,
            f,
            c,
            input,
            spec,
            server: Server::from_raw(server),
            origin,
            st: Mutex::new(Stream {
                call: None,
                busy: false,
                in_python: false,
                transparent: false,
                failure: Failure::None,
                closed: false,
                eos_seen: false,
                progress: 0,
                out: empty,
                out_bytes: 0,
                inbb: empty,
                pending: empty,
                scratch: empty,
            }),
            ext: Mutex::new(None),
        };
        let p = pool_box(pool, inst);
        (*f).ctx = p as *mut c_void;
        if !input && !r.is_null() && (*(*f).frec).providers.is_null() {
            // Not under mod_filter (which does this itself from the protocol flags): the
            // filter may change the body, so what described the old one goes (as mod_lua).
            for h in [c"Content-Length", c"Content-MD5", c"ETag"] {
                sys::apr_table_unset((*r).headers_out, h.as_ptr());
            }
        }
        Ok(&*p)
    }
}

impl FilterHandle {
    fn of(inst: &Instance) -> FilterHandle {
        FilterHandle {
            inst,
            live: inst.origin.live.clone(),
            c: inst.c,
        }
    }

    /// The instance, if alive and used on its connection's thread.
    fn get(&self) -> Result<&Instance, FilterError> {
        if !super::brigade::is_active(self.c) {
            return Err(FilterError::NotActive);
        }
        let _alive = self.live.check()?;
        // SAFETY: alive (the pool holding the instance exists) and used on its thread.
        Ok(unsafe { &*self.inst })
    }

    /// Like get(), and a call is running.
    fn in_call(&self) -> Result<(&Instance, MutexGuard<'_, Stream>), FilterError> {
        let inst = self.get()?;
        // Only this thread uses the instance now: a held lock means re-entry from inside one
        // of our own operations, which must fail rather than deadlock.
        let st = match inst.st.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Err(FilterError::Busy),
        };
        if st.call.is_none() {
            return Err(FilterError::NotInCall);
        }
        if st.busy {
            return Err(FilterError::Busy);
        }
        Ok((inst, st))
    }

    // ---- what the filter is ----

    /// Static facts, readable at any time while the pool lives (no thread requirement).
    fn facts(&self) -> Result<&Instance, Gone> {
        let _alive = self.live.check()?;
        // SAFETY: alive; only immutable fields are read through this.
        Ok(unsafe { &*self.inst })
    }

    pub fn spec(&self) -> Result<FilterSpec, Gone> {
        Ok(self.facts()?.spec.clone())
    }

    pub fn is_input(&self) -> Result<bool, Gone> {
        Ok(self.facts()?.input)
    }

    pub fn server(&self) -> Result<Server, Gone> {
        Ok(self.facts()?.server)
    }

    /// f->r (None for connection filters).
    pub fn request(&self) -> Result<Option<Request>, Gone> {
        let inst = self.facts()?;
        let r = inst.request_ptr();
        // SAFETY: f->r is the live request the filter belongs to (its pool holds f).
        Ok((!r.is_null()).then(|| unsafe { Request::from_raw(r) }))
    }

    pub fn connection(&self) -> Result<Connection, Gone> {
        let inst = self.facts()?;
        // SAFETY: the connection outlives its filters.
        Ok(unsafe { Connection::from_raw(inst.c) })
    }

    pub fn origin(&self) -> Result<Origin, Gone> {
        Ok(self.facts()?.origin.clone())
    }

    /// Storage for the layer above (its filter object, function, state).
    pub fn ext(&self) -> Result<&Mutex<Option<Box<dyn Any + Send>>>, Gone> {
        Ok(&self.facts()?.ext)
    }

    pub fn is_alive(&self) -> bool {
        self.live.is_alive()
    }

    pub fn closed(&self) -> Result<bool, Gone> {
        Ok(self.facts()?.lock().closed)
    }

    /// mod_python's disable(): from now on data passes through without calling Python.
    pub fn disable(&self) -> Result<(), FilterError> {
        let inst = self.get()?;
        let mut st = inst.lock();
        st.transparent = true;
        st.progress += 1;
        Ok(())
    }

    /// (mode, block, readbytes) of the running call (input filters).
    pub fn call_args(&self) -> Result<(i32, bool, i64), FilterError> {
        let (_, st) = self.in_call()?;
        let c = st.call.as_ref().expect("in call");
        Ok((
            c.mode as i32,
            c.block == sys::apr_read_type_e_APR_BLOCK_READ,
            c.readbytes,
        ))
    }

    /// The log line prefix: `PythonOutputFilter NAME (module::function)`.
    pub fn describe(&self) -> String {
        match self.facts() {
            Ok(i) => format!(
                "{} {} ({})",
                if i.input {
                    "PythonInputFilter"
                } else {
                    "PythonOutputFilter"
                },
                i.spec.name,
                i.spec.handler
            ),
            Err(_) => "Python filter".into(),
        }
    }

    // ---- streaming: reading ----

    /// Reads up to `max` bytes (one line with `line`) of the filter's input: the brigade
    /// Apache passed (output filters; FLUSH buckets met on the way are passed on in order,
    /// other metadata is kept in order with the output) or what was read from upstream
    /// (input filters; call `fill` when this returns Empty). The data is handed to `make`
    /// (copy it there: it is valid only during the call).
    pub fn read<R>(
        &self,
        max: usize,
        line: bool,
        make: impl FnOnce(usize, &mut dyn FnMut(&mut [u8])) -> R,
    ) -> Result<ReadEv<R>, FilterError> {
        let (inst, mut st) = self.in_call()?;
        if st.closed && !inst.input {
            return Err(FilterError::Closed);
        }
        let max = max.max(1);
        loop {
            let src = if inst.input {
                if st.inbb.is_null() {
                    return Ok(if st.eos_seen {
                        ReadEv::Eos
                    } else {
                        ReadEv::Empty
                    });
                }
                st.inbb
            } else {
                st.call.as_ref().expect("in call").bb
            };
            // SAFETY: this thread serves the connection; src is the call's brigade or ours.
            unsafe {
                if st.eos_seen && sys::modpy_brigade_empty(src) != 0 {
                    return Ok(ReadEv::Eos);
                }
                kill_in(inst.c, src);
            }
            // SAFETY: as above; buckets are only read/split/moved/deleted on this thread.
            let head = unsafe { read_head(src, max, line) };
            match head {
                Err(rv) => return Err(FilterError::Io(rv, "reading a bucket")),
                Ok(Head::Empty) => return Ok(ReadEv::Empty),
                Ok(Head::Eos(e)) => {
                    // SAFETY: e is the first bucket of src.
                    unsafe { sys::modpy_bucket_delete(e) };
                    st.eos_seen = true;
                    st.progress += 1;
                    return Ok(ReadEv::Eos);
                }
                Ok(Head::Meta(e, flush)) => {
                    st.progress += 1;
                    if inst.input {
                        // SAFETY: e is the first bucket of src.
                        unsafe { sys::modpy_bucket_delete(e) };
                        continue;
                    }
                    let out = ensure(&mut st.out, || inst.new_brigade());
                    // SAFETY: moving the first bucket of src to the tail of our brigade.
                    unsafe {
                        sys::modpy_bucket_remove(e);
                        sys::modpy_brigade_insert_tail(out, e);
                    }
                    if flush {
                        // A FLUSH goes on at once, with what was written before it: the
                        // caller passes it (with the GIL released) and reads again.
                        return Ok(ReadEv::Flush);
                    }
                    continue;
                }
                Ok(Head::Data(d)) => {
                    let r = make(d.total, &mut |buf: &mut [u8]| d.copy_to(buf));
                    // SAFETY: read and copied; at the head of src.
                    unsafe { d.consume() };
                    st.progress += 1;
                    return Ok(ReadEv::Data(r));
                }
            }
        }
    }

    /// Does the next read have to wait (a PIPE or SOCKET bucket, or one of unknown length, at
    /// the head of the input)? Then call `prefetch` first, without the GIL.
    pub fn head_needs_io(&self) -> bool {
        let Ok((inst, st)) = self.in_call() else {
            return false;
        };
        let src = if inst.input {
            st.inbb
        } else {
            st.call.as_ref().expect("in call").bb
        };
        // SAFETY: our brigade or the call's, on the connection's thread.
        !src.is_null() && unsafe { needs_io(sys::modpy_brigade_first(src), src) }
    }

    /// Reads the head bucket into memory (apr_bucket_read: a PIPE or SOCKET bucket waits for
    /// data), so that `read` then only copies.
    /// Call with the GIL released.
    pub fn prefetch(&self) -> Result<(), FilterError> {
        let (inst, st) = self.in_call()?;
        let src = if inst.input {
            st.inbb
        } else {
            st.call.as_ref().expect("in call").bb
        };
        if src.is_null() {
            return Ok(());
        }
        // SAFETY: our brigade or the call's, on the connection's thread; reading morphs the
        // bucket in place (and may insert one after it), it frees none.
        unsafe {
            let e = sys::modpy_brigade_first(src);
            if needs_io(e, src) {
                kill_in(inst.c, src);
                let mut data: *const c_char = std::ptr::null();
                let mut len: sys::apr_size_t = 0;
                let rv = sys::modpy_bucket_read(
                    e,
                    &mut data,
                    &mut len,
                    sys::apr_read_type_e_APR_BLOCK_READ,
                );
                if rv != APR_SUCCESS {
                    return Err(FilterError::Io(rv, "reading a bucket"));
                }
            }
        }
        Ok(())
    }

    /// Input filters: reads the next brigade from upstream (ap_get_brigade) into the read
    /// buffer, once per call. Ok(false): nothing (more) in this call: a non-blocking read
    /// found nothing, or this call has had its brigade. Call with the GIL released.
    pub fn fill(&self, want: i64) -> Result<bool, FilterError> {
        let (inst, mut st) = self.in_call()?;
        let call = st.call.as_mut().expect("in call");
        if call.filled {
            // One upstream brigade per call: the function returns, the reader gets what it
            // wrote, and the function is called again for more.
            return Ok(false);
        }
        call.filled = true;
        let getline = call.mode == sys::ap_input_mode_t_AP_MODE_GETLINE;
        let mode = if getline {
            sys::ap_input_mode_t_AP_MODE_GETLINE
        } else {
            sys::ap_input_mode_t_AP_MODE_READBYTES
        };
        let block = call.block;
        let readbytes = want.max(call.readbytes).max(UPSTREAM_READ);
        let scratch = ensure(&mut st.scratch, || inst.new_brigade());
        let inbb = ensure(&mut st.inbb, || inst.new_brigade());
        st.busy = true;
        drop(st);
        // SAFETY: scratch is our empty brigade; f->next is the live upstream filter.
        let rv = unsafe { sys::ap_get_brigade(inst.next(), scratch, mode, block, readbytes) };
        let mut st = inst.lock();
        st.busy = false;
        if let Some(c) = st.call.as_mut() {
            c.upstream = rv;
        }
        // SAFETY: both ours; the buckets move to the read buffer.
        let got = unsafe {
            let got = sys::modpy_brigade_empty(scratch) == 0;
            sys::modpy_brigade_concat(inbb, scratch);
            got
        };
        if rv == APR_SUCCESS {
            return Ok(got);
        }
        // SAFETY: plain status checks.
        if unsafe { sys::modpy_status_is_eagain(rv) } != 0 {
            return Ok(got);
        }
        Err(FilterError::Io(rv, "reading from the upstream filter"))
    }

    // ---- streaming: writing ----

    /// Appends a copy of `data` (one heap bucket) to the filter's output. Returns true when
    /// enough has gathered that the caller should `pass_out` (output filters).
    pub fn write(&self, data: &[u8]) -> Result<bool, FilterError> {
        let (inst, mut st) = self.in_call()?;
        if st.closed {
            return Err(FilterError::Closed);
        }
        st.progress += 1;
        if data.is_empty() {
            return Ok(false);
        }
        let target = if inst.input {
            ensure(&mut st.pending, || inst.new_brigade())
        } else {
            ensure(&mut st.out, || inst.new_brigade())
        };
        // SAFETY: our brigade; the data is copied into the new bucket.
        unsafe {
            let e = sys::modpy_bucket_heap_copy(
                data.as_ptr() as *const c_char,
                data.len(),
                inst.alloc(),
            );
            sys::modpy_brigade_insert_tail(target, e);
        }
        st.out_bytes += data.len();
        Ok(!inst.input && st.out_bytes >= PASS_AT)
    }

    /// Output filters: passes `data` down now, after what was written before, without a
    /// copy: a transient bucket (a filter that keeps it past the pass sets it aside, i.e.
    /// copies it then). `data` must stay valid until this returns. Call with the GIL released.
    pub fn write_through(&self, data: &[u8]) -> Result<(), FilterError> {
        let (inst, mut st) = self.in_call()?;
        if inst.input {
            return Err(FilterError::Bb(BbError::Invalid(
                "write_through is for output filters",
            )));
        }
        if st.closed {
            return Err(FilterError::Closed);
        }
        st.progress += 1;
        let out = ensure(&mut st.out, || inst.new_brigade());
        st.out_bytes = 0;
        st.busy = true;
        drop(st);
        // SAFETY: our brigade; `data` outlives the pass, and the brigade is emptied before
        // returning, so no bucket refers to it afterwards.
        let rv = unsafe {
            sys::modpy_brigade_append_transient(out, data.as_ptr() as *const c_char, data.len());
            let rv = sys::ap_pass_brigade(inst.next(), out);
            sys::apr_brigade_cleanup(out as *mut c_void);
            rv
        };
        inst.lock().busy = false;
        if rv != APR_SUCCESS {
            return Err(FilterError::Io(rv, "passing data to the next filter"));
        }
        Ok(())
    }

    /// Output filters: passes what was written down the chain (after a FLUSH with `flush`,
    /// an EOS with `eos`: then the filter is closed). Input filters: `eos` ends the stream
    /// the reader sees, `flush` does nothing. Call with the GIL released.
    pub fn pass_out(&self, flush: bool, eos: bool) -> Result<(), FilterError> {
        let (inst, mut st) = self.in_call()?;
        if inst.input {
            if eos && !st.closed {
                let p = ensure(&mut st.pending, || inst.new_brigade());
                // SAFETY: our brigade.
                unsafe { sys::modpy_brigade_insert_tail(p, sys::modpy_bucket_eos(inst.alloc())) };
                st.closed = true;
                st.progress += 1;
            }
            return Ok(());
        }
        if st.closed {
            return if flush || eos {
                Err(FilterError::Closed)
            } else {
                Ok(())
            };
        }
        let out = ensure(&mut st.out, || inst.new_brigade());
        // SAFETY: our brigade.
        unsafe {
            if flush {
                sys::modpy_brigade_insert_tail(out, sys::modpy_bucket_flush(inst.alloc()));
            }
            if eos {
                sys::modpy_brigade_insert_tail(out, sys::modpy_bucket_eos(inst.alloc()));
                st.closed = true;
            }
            if sys::modpy_brigade_empty(out) != 0 {
                return Ok(());
            }
        }
        st.out_bytes = 0;
        st.progress += 1;
        st.busy = true;
        drop(st);
        // SAFETY: our brigade, handed to the next filter; emptied afterwards for reuse.
        let rv = unsafe {
            let rv = sys::ap_pass_brigade(inst.next(), out);
            sys::apr_brigade_cleanup(out as *mut c_void);
            rv
        };
        inst.lock().busy = false;
        if rv != APR_SUCCESS {
            return Err(FilterError::Io(rv, "passing data to the next filter"));
        }
        Ok(())
    }

    /// mod_python's pass_on(): the rest of the input goes on untouched (after what was
    /// written). Output: passed down now. Input: the rest of the upstream data and the next
    /// upstream brigade become the reader's data. Call with the GIL released.
    pub fn pass_on(&self) -> Result<(), FilterError> {
        let (inst, mut st) = self.in_call()?;
        st.progress += 1;
        if inst.input {
            let pending = ensure(&mut st.pending, || inst.new_brigade());
            let had = !st.inbb.is_null()
                // SAFETY: our brigade.
                && unsafe { sys::modpy_brigade_empty(st.inbb) } == 0;
            if had {
                // SAFETY: our brigades.
                unsafe { sys::modpy_brigade_concat(pending, st.inbb) };
                return Ok(());
            }
            drop(st);
            self.fill(0)?;
            let mut st = inst.lock();
            if !st.inbb.is_null() {
                // SAFETY: our brigades.
                unsafe { sys::modpy_brigade_concat(pending, st.inbb) };
            }
            st.progress += 1;
            return Ok(());
        }
        let bb = st.call.as_ref().expect("in call").bb;
        let out = ensure(&mut st.out, || inst.new_brigade());
        // SAFETY: the call's brigade and ours; its buckets move to the end of ours.
        unsafe {
            kill_in(inst.c, bb);
            if brigade_has_eos(bb) {
                st.eos_seen = true;
            }
            sys::modpy_brigade_concat(out, bb);
        }
        let eos_moved = st.eos_seen;
        drop(st);
        self.pass_out(false, false)?;
        if eos_moved {
            inst.lock().closed = true;
        }
        Ok(())
    }

    // ---- the brigade API ----

    /// The brigade of this call (f's `bb`): for output filters the data passed in, for input
    /// filters the brigade to fill. Using it switches the call to C semantics: what is left
    /// in it afterwards is not looked at.
    pub fn brigade(&self) -> Result<Brigade, FilterError> {
        let (inst, mut st) = self.in_call()?;
        let call = st.call.as_mut().expect("in call");
        call.raw = true;
        if let Some(b) = &call.borrowed {
            return Ok(b.clone());
        }
        // SAFETY: bb is valid until the call ends, when the handle is invalidated.
        let b = unsafe { Brigade::borrowed(call.bb, inst.origin.clone()) };
        call.borrowed = Some(b.clone());
        st.progress += 1;
        Ok(b)
    }

    /// ap_pass_brigade(f->next, bb) (output filters), after anything written with write().
    /// The brigade is empty afterwards. Call with the GIL released.
    pub fn pass_brigade(&self, b: &Brigade) -> Result<(), FilterError> {
        let (inst, mut st) = self.in_call()?;
        if inst.input {
            return Err(FilterError::Bb(BbError::Invalid(
                "pass_brigade is for output filters (input filters fill f.brigade)",
            )));
        }
        if b.origin().c != inst.c {
            return Err(FilterError::Bb(BbError::Invalid(
                "the brigade belongs to another connection",
            )));
        }
        let raw = b.hand_over()?;
        if let Some(c) = st.call.as_mut() {
            c.raw = true;
        }
        st.progress += 1;
        // SAFETY: both brigades are valid; what was written goes first.
        let send = unsafe {
            if brigade_has_eos(raw) {
                st.closed = true;
            }
            if !st.out.is_null() && sys::modpy_brigade_empty(st.out) == 0 {
                sys::modpy_brigade_concat(st.out, raw);
                st.out_bytes = 0;
                st.out
            } else {
                raw
            }
        };
        st.busy = true;
        drop(st);
        // SAFETY: valid brigade handed to the next filter, emptied afterwards.
        let rv = unsafe {
            let rv = sys::ap_pass_brigade(inst.next(), send);
            sys::apr_brigade_cleanup(send as *mut c_void);
            rv
        };
        inst.lock().busy = false;
        if rv != APR_SUCCESS {
            return Err(FilterError::Io(rv, "ap_pass_brigade"));
        }
        Ok(())
    }

    /// ap_get_brigade(f->next, new brigade, mode, block, readbytes) (input filters). EAGAIN
    /// gives an empty brigade. Call with the GIL released.
    pub fn get_brigade(
        &self,
        mode: i32,
        block: bool,
        readbytes: i64,
    ) -> Result<Brigade, FilterError> {
        let (inst, mut st) = self.in_call()?;
        if !inst.input {
            return Err(FilterError::Bb(BbError::Invalid(
                "get_brigade is for input filters (output filters read f.brigade)",
            )));
        }
        if !(0..=5).contains(&mode) {
            return Err(FilterError::Bb(BbError::Invalid(
                "mode must be one of apache.AP_MODE_*",
            )));
        }
        if let Some(c) = st.call.as_mut() {
            c.raw = true;
        }
        st.progress += 1;
        drop(st);
        let b = Brigade::create(&inst.origin)?;
        let raw = b.hand_over()?;
        inst.lock().busy = true;
        let block = if block {
            sys::apr_read_type_e_APR_BLOCK_READ
        } else {
            sys::apr_read_type_e_APR_NONBLOCK_READ
        };
        // SAFETY: a new empty brigade of ours; f->next is the live upstream filter.
        let rv = unsafe {
            sys::ap_get_brigade(
                inst.next(),
                raw,
                mode as sys::ap_input_mode_t,
                block,
                readbytes,
            )
        };
        inst.lock().busy = false;
        // SAFETY: plain status check.
        if rv != APR_SUCCESS && unsafe { sys::modpy_status_is_eagain(rv) } == 0 {
            return Err(FilterError::Io(rv, "ap_get_brigade"));
        }
        Ok(b)
    }
}

fn ensure(
    slot: &mut *mut sys::apr_bucket_brigade,
    make: impl FnOnce() -> *mut sys::apr_bucket_brigade,
) -> *mut sys::apr_bucket_brigade {
    if slot.is_null() {
        *slot = make();
    }
    *slot
}

/// Is `e` a data bucket whose read may wait for another process or the network (PIPE,
/// SOCKET, or any bucket of unknown length, such as mod_cgi's)?
///
/// # Safety
/// `bb` must be a valid brigade and `e` one of its buckets (or its sentinel).
pub(crate) unsafe fn needs_io(e: *mut sys::apr_bucket, bb: *mut sys::apr_bucket_brigade) -> bool {
    // SAFETY: per the contract; bucket types are static.
    unsafe {
        if e == sys::modpy_brigade_sentinel(bb) || sys::modpy_bucket_is_metadata(e) != 0 {
            return false;
        }
        if (*e).length == sys::apr_size_t::MAX {
            return true;
        }
        // FILE buckets are memory-mapped (or read from the page cache): no waiting worth a
        // GIL hand-over; the page faults come with the copy anyway.
        matches!(
            cstr((*(*e).type_).name).unwrap_or_default(),
            b"PIPE" | b"SOCKET"
        )
    }
}

/// # Safety
/// `bb` must be a valid brigade.
unsafe fn brigade_has_eos(bb: *mut sys::apr_bucket_brigade) -> bool {
    // SAFETY: per this function's contract (see # Safety above).
    unsafe {
        let end = sys::modpy_brigade_sentinel(bb);
        let mut e = sys::modpy_brigade_first(bb);
        while e != end {
            if sys::modpy_bucket_is_eos(e) != 0 {
                return true;
            }
            e = sys::modpy_bucket_next(e);
        }
    }
    false
}

pub(crate) struct DataHead {
    slices: Vec<(*const u8, usize)>,
    taken: Vec<*mut sys::apr_bucket>,
    pub(crate) total: usize,
}

impl DataHead {
    /// Copies the data into `buf` (exactly `total` bytes long).
    pub(crate) fn copy_to(&self, buf: &mut [u8]) {
        let mut at = 0;
        for &(p, n) in &self.slices {
            // SAFETY: the buckets holding these bytes are still in their brigade, unchanged.
            let s = unsafe { std::slice::from_raw_parts(p, n) };
            buf[at..at + n].copy_from_slice(s);
            at += n;
        }
    }

    /// Deletes the buckets the data came from.
    ///
    /// # Safety
    /// Only once, after copying, on the connection's thread; the buckets are still there.
    pub(crate) unsafe fn consume(self) {
        for e in self.taken {
            // SAFETY: per the contract.
            unsafe { sys::modpy_bucket_delete(e) };
        }
    }
}

pub(crate) enum Head {
    Data(DataHead),
    Eos(*mut sys::apr_bucket),
    /// A metadata bucket at the head (true: FLUSH).
    Meta(*mut sys::apr_bucket, bool),
    Empty,
}

/// Looks at the head of `bb`: up to `max` bytes of data from the leading data buckets
/// (splitting the last one; with `line`, up to and including the first LF), or the metadata
/// bucket that comes first. Buckets are not removed: the caller deletes `taken` after copying.
///
/// # Safety
/// `bb` must be a valid brigade of a connection served by this thread.
pub(crate) unsafe fn read_head(
    bb: *mut sys::apr_bucket_brigade,
    max: usize,
    line: bool,
) -> Result<Head, i32> {
    // SAFETY: per this function's contract (see # Safety above).
    unsafe {
        let end = sys::modpy_brigade_sentinel(bb);
        let mut head = DataHead {
            slices: Vec::new(),
            taken: Vec::new(),
            total: 0,
        };
        let mut e = sys::modpy_brigade_first(bb);
        while e != end {
            if sys::modpy_bucket_is_metadata(e) != 0 {
                if head.total > 0 {
                    break;
                }
                if sys::modpy_bucket_is_eos(e) != 0 {
                    return Ok(Head::Eos(e));
                }
                return Ok(Head::Meta(e, sys::modpy_bucket_is_flush(e) != 0));
            }
            if head.total > 0 && needs_io(e, bb) {
                // Data in hand: return it rather than wait (with the GIL) for a pipe.
                break;
            }
            let mut data: *const c_char = std::ptr::null();
            let mut len: sys::apr_size_t = 0;
            let rv =
                sys::modpy_bucket_read(e, &mut data, &mut len, sys::apr_read_type_e_APR_BLOCK_READ);
            if rv != APR_SUCCESS {
                return Err(rv);
            }
            if len == 0 {
                let next = sys::modpy_bucket_next(e);
                if head.total == 0 {
                    sys::modpy_bucket_delete(e);
                } else {
                    head.taken.push(e);
                }
                e = next;
                continue;
            }
            let room = max - head.total;
            let mut take = len.min(room);
            let mut done = take == room;
            if line {
                let s = std::slice::from_raw_parts(data as *const u8, take);
                if let Some(i) = s.iter().position(|&b| b == b'\n') {
                    take = i + 1;
                    done = true;
                }
            }
            if take < len {
                let rv = sys::modpy_bucket_split(e, take);
                if rv != APR_SUCCESS {
                    return Err(rv);
                }
                done = true;
            }
            head.slices.push((data as *const u8, take));
            head.taken.push(e);
            head.total += take;
            if done {
                break;
            }
            e = sys::modpy_bucket_next(e);
        }
        if head.total == 0 && head.taken.is_empty() {
            return Ok(Head::Empty);
        }
        if head.total == 0 {
            for t in head.taken {
                sys::modpy_bucket_delete(t);
            }
            return Ok(Head::Empty);
        }
        Ok(Head::Data(head))
    }
}

// =====================================================================================
// Output filter entry
// =====================================================================================

fn output_entry(index: usize, f: *mut sys::ap_filter_t, bb: *mut sys::apr_bucket_brigade) -> i32 {
    // SAFETY: Apache calls us with a live filter and brigade.
    let inst = match unsafe { instance(f, index, false) } {
        Ok(i) => i,
        Err(e) => {
            // SAFETY: live filter.
            let c = unsafe { (*f).c };
            log::cerror(c, log::APLOG_ERR, 0, &format!("mod_py: {e}"));
            // SAFETY: the caller's brigade: its data is dropped, not passed on unfiltered.
            unsafe { sys::apr_brigade_cleanup(bb as *mut c_void) };
            return APR_EGENERAL;
        }
    };
    let mut st = inst.lock();
    match st.failure {
        Failure::None => {}
        Failure::Unsent => {
            // SAFETY: the caller's brigade.
            let eos = unsafe { brigade_has_eos(bb) };
            // SAFETY: dropped: never passed on as if filtered.
            unsafe { sys::apr_brigade_cleanup(bb as *mut c_void) };
            if !eos {
                return APR_EGENERAL;
            }
            st.failure = Failure::Done(AP_FILTER_ERROR);
            drop(st);
            // The handler finished as if nothing happened: the client gets a 500.
            return send_error(inst, sys::HTTP_INTERNAL_SERVER_ERROR as i32);
        }
        Failure::Done(rv) => {
            // SAFETY: dropped.
            unsafe { sys::apr_brigade_cleanup(bb as *mut c_void) };
            return rv;
        }
    }
    if st.in_python || st.busy {
        // A nested call while the filter runs or passes data (an error document Apache
        // makes meanwhile): through, untouched; our own brigades are in use.
        drop(st);
        // SAFETY: live filter and the caller's brigade.
        return unsafe { sys::ap_pass_brigade(inst.next(), bb) };
    }
    if st.transparent {
        // Disabled: through, after anything the filter wrote.
        let out = st.out;
        drop(st);
        // SAFETY: live filter and brigades.
        unsafe {
            if !out.is_null() && sys::modpy_brigade_empty(out) == 0 {
                sys::modpy_brigade_concat(out, bb);
                let rv = sys::ap_pass_brigade(inst.next(), out);
                sys::apr_brigade_cleanup(out as *mut c_void);
                return rv;
            }
            return sys::ap_pass_brigade(inst.next(), bb);
        }
    }
    if st.closed && inst.request_ptr().is_null() {
        // A connection filter sees one EOS per response: the next response starts afresh.
        st.closed = false;
        st.eos_seen = false;
    }
    if st.closed {
        // After EOS: nothing more belongs to this response.
        // SAFETY: the caller's brigade.
        unsafe { sys::apr_brigade_cleanup(bb as *mut c_void) };
        return APR_SUCCESS;
    }
    let Some(dispatch) = DISPATCH.get().copied() else {
        drop(st);
        return fail_output(inst, "mod_py is not initialised in this process");
    };
    st.call = Some(CallInfo {
        bb,
        mode: 0,
        block: sys::apr_read_type_e_APR_BLOCK_READ,
        readbytes: 0,
        raw: false,
        borrowed: None,
        upstream: APR_SUCCESS,
        filled: false,
    });
    drop(st);
    // SAFETY: this thread serves the connection for the duration of the call.
    let _active = unsafe { Active::enter(inst.c, inst.origin.conn_live.clone()) };
    let h = FilterHandle::of(inst);
    let rv = run_output(inst, &h, dispatch);
    end_call(inst);
    rv
}

fn run_output(inst: &Instance, h: &FilterHandle, dispatch: Dispatch) -> i32 {
    loop {
        let before = {
            let mut st = inst.lock();
            st.in_python = true;
            st.progress
        };
        let outcome = (dispatch.filter)(h);
        let mut st = inst.lock();
        st.in_python = false;
        match outcome {
            Outcome::Ok => {}
            Outcome::Status(rv) => {
                st.failure = Failure::Done(rv);
                return rv;
            }
            Outcome::Io(rv) => {
                st.failure = Failure::Done(rv);
                drop(st);
                discard_output(inst);
                return rv;
            }
            Outcome::Failed => {
                drop(st);
                return fail_output(inst, "");
            }
        }
        let call = st.call.as_ref().expect("in call");
        let bb = call.bb;
        if call.raw {
            // C semantics: the filter owned bb; nothing else to do.
            break;
        }
        // SAFETY: the caller's brigade, valid during the call.
        let empty = unsafe { sys::modpy_brigade_empty(bb) } != 0;
        if st.transparent && !empty {
            let out = ensure(&mut st.out, || inst.new_brigade());
            // SAFETY: moving the rest of the input, untouched, after the output.
            unsafe {
                kill_in(inst.c, bb);
                if brigade_has_eos(bb) {
                    st.closed = true;
                }
                sys::modpy_brigade_concat(out, bb);
            }
            break;
        }
        if empty || st.closed {
            break;
        }
        if st.progress == before {
            drop(st);
            return fail_output(
                inst,
                "returned without reading its input (call f.read() until it returns None, or f.pass_on())",
            );
        }
        // Input left: the function is called again with the rest.
    }
    // Finish the call: what was written goes down; EOS seen by read() closes the stream.
    let (eos, closed) = {
        let st = inst.lock();
        (st.eos_seen, st.closed)
    };
    let h = FilterHandle::of(inst);
    let r = if eos && !closed {
        h.pass_out(false, true)
    } else {
        let st = inst.lock();
        // SAFETY: our brigade.
        let pending = !st.out.is_null() && unsafe { sys::modpy_brigade_empty(st.out) } == 0;
        drop(st);
        if pending {
            h.pass_out(false, false)
        } else {
            Ok(())
        }
    };
    match r {
        Ok(()) => APR_SUCCESS,
        Err(FilterError::Io(rv, _)) => {
            inst.lock().failure = Failure::Done(rv);
            rv
        }
        Err(e) => fail_output(inst, &e.to_string()),
    }
}

/// The call is over: the brigade Apache lent us and every handle on its buckets die.
fn end_call(inst: &Instance) {
    let mut st = inst.lock();
    if let Some(call) = st.call.take() {
        if let Some(b) = call.borrowed {
            b.invalidate();
        }
        // SAFETY: this thread still serves the connection.
        unsafe { kill_in(inst.c, call.bb) };
    }
    drop(st);
    inst.origin.keeper.end_call(&inst.origin);
    let st = inst.lock();
    // Buckets kept in our brigades must survive the caller's data (transient buckets).
    for bb in [st.inbb, st.pending] {
        if !bb.is_null() {
            // SAFETY: our brigades, in the instance's pool.
            let _ = unsafe { setaside_all(bb, inst.origin.pool) };
        }
    }
}

/// Drops everything not yet passed (never sent on as if it were filtered).
fn discard_output(inst: &Instance) {
    let st = inst.lock();
    // SAFETY: our brigade and the call's (valid during the call).
    unsafe {
        if !st.out.is_null() {
            sys::apr_brigade_cleanup(st.out as *mut c_void);
        }
        if let Some(call) = &st.call {
            kill_in(inst.c, call.bb);
            sys::apr_brigade_cleanup(call.bb as *mut c_void);
        }
    }
}

/// An output filter failed (the Python layer has logged why, or `why` says it). Nothing
/// half-filtered goes out as if complete:
/// - response headers not sent yet: the handler gets an error from ap_pass_brigade (Apache
///   answers 500; if the handler finishes anyway, its EOS turns into a 500 error bucket);
/// - headers sent: an error bucket (502, as mod_proxy does for a backend failing mid-body)
///   and EOS end the stream without its last chunk, and the connection is aborted, so the
///   client sees a truncated response;
/// - connection filters: the connection is aborted.
fn fail_output(inst: &Instance, why: &str) -> i32 {
    if !why.is_empty() {
        log_filter(
            inst,
            log::APLOG_ERR,
            &format!("mod_py: {} {why}", FilterHandle::of(inst).describe()),
        );
    }
    discard_output(inst);
    let r = inst.request_ptr();
    if !r.is_null() && !headers_sent(r) {
        inst.lock().failure = Failure::Unsent;
        return APR_EGENERAL;
    }
    inst.lock().failure = Failure::Done(AP_FILTER_ERROR);
    if r.is_null() {
        // SAFETY: live connection.
        unsafe {
            (*inst.c).keepalive = sys::ap_conn_keepalive_e_AP_CONN_CLOSE;
            (*inst.c).aborted = 1;
        }
        return APR_EGENERAL;
    }
    let rv = send_error(inst, sys::HTTP_BAD_GATEWAY as i32);
    // SAFETY: live connection: whatever else comes for it is dropped, and it is closed.
    unsafe { (*inst.c).aborted = 1 };
    if rv == APR_SUCCESS {
        AP_FILTER_ERROR
    } else {
        rv
    }
}

/// Have the response headers gone to the client? For a subrequest (mod_include's virtual
/// includes...) that is the main request's response.
fn headers_sent(r: *mut sys::request_rec) -> bool {
    // SAFETY: a live request; its main requests outlive it.
    unsafe {
        let mut top = r;
        while !(*top).main.is_null() {
            top = (*top).main;
        }
        (*top).sent_bodyct != 0
    }
}

/// Passes an ERROR bucket with `status` and EOS down the chain.
fn send_error(inst: &Instance, status: i32) -> i32 {
    let mut st = inst.lock();
    let out = ensure(&mut st.out, || inst.new_brigade());
    st.closed = true;
    st.busy = true;
    drop(st);
    // SAFETY: our brigade; the request's pool and connection are alive.
    let rv = unsafe {
        (*inst.c).keepalive = sys::ap_conn_keepalive_e_AP_CONN_CLOSE;
        sys::apr_brigade_cleanup(out as *mut c_void);
        sys::modpy_brigade_insert_tail(
            out,
            sys::modpy_bucket_error(status, inst.origin.pool, inst.alloc()),
        );
        sys::modpy_brigade_insert_tail(out, sys::modpy_bucket_eos(inst.alloc()));
        let rv = sys::ap_pass_brigade(inst.next(), out);
        sys::apr_brigade_cleanup(out as *mut c_void);
        rv
    };
    inst.lock().busy = false;
    rv
}

fn log_filter(inst: &Instance, level: i32, msg: &str) {
    let r = inst.request_ptr();
    if r.is_null() {
        log::cerror(inst.c, level, 0, msg);
    } else {
        log::rerror(r, level, 0, msg);
    }
}

// =====================================================================================
// Input filter entry
// =====================================================================================

fn input_entry(
    index: usize,
    f: *mut sys::ap_filter_t,
    bb: *mut sys::apr_bucket_brigade,
    mode: sys::ap_input_mode_t,
    block: sys::apr_read_type_e,
    readbytes: sys::apr_off_t,
) -> i32 {
    // SAFETY: Apache calls us with a live filter and brigade.
    let inst = match unsafe { instance(f, index, true) } {
        Ok(i) => i,
        Err(e) => {
            // SAFETY: live filter.
            let c = unsafe { (*f).c };
            log::cerror(c, log::APLOG_ERR, 0, &format!("mod_py: {e}"));
            return APR_EGENERAL;
        }
    };
    let mut st = inst.lock();
    if let Failure::Done(rv) = st.failure {
        return rv;
    }
    // SAFETY: our brigade (NULL-checked).
    let pending_empty = st.pending.is_null()
        || unsafe {
            drop_empty_head(st.pending);
            sys::modpy_brigade_empty(st.pending) != 0
        };
    if mode == sys::ap_input_mode_t_AP_MODE_INIT
        || (mode == sys::ap_input_mode_t_AP_MODE_EATCRLF && pending_empty)
        || st.in_python
        || st.busy
        || (st.transparent && pending_empty && st.inbb_empty())
    {
        drop(st);
        // SAFETY: live filters and the caller's brigade.
        return unsafe { sys::ap_get_brigade(inst.next(), bb, mode, block, readbytes) };
    }
    if st.transparent {
        // Disabled: what was produced or read is served first, untouched.
        if !st.inbb_empty() {
            let p = ensure(&mut st.pending, || inst.new_brigade());
            // SAFETY: our brigades.
            unsafe { sys::modpy_brigade_concat(p, st.inbb) };
        }
        // SAFETY: our brigade and the caller's.
        return match unsafe { answer(st.pending, bb, mode, readbytes) } {
            Some(rv) => rv,
            None => APR_SUCCESS,
        };
    }
    if mode == sys::ap_input_mode_t_AP_MODE_EATCRLF {
        // SAFETY: our brigade.
        unsafe { eat_crlf(st.pending) };
        return APR_SUCCESS;
    }
    if st.closed && pending_empty && inst.request_ptr().is_null() {
        // A connection filter: an EOS ended one read sequence, not the connection.
        st.closed = false;
        st.eos_seen = false;
    }
    if st.closed && pending_empty {
        // The reader has had the EOS: it gets another (as Apache's HTTP input filter does).
        // SAFETY: the caller's brigade.
        unsafe { sys::modpy_brigade_insert_tail(bb, sys::modpy_bucket_eos(inst.alloc())) };
        return APR_SUCCESS;
    }
    let Some(dispatch) = DISPATCH.get().copied() else {
        drop(st);
        return fail_input(inst, "mod_py is not initialised in this process");
    };
    drop(st);
    // SAFETY: this thread serves the connection for the duration of the call.
    let _active = unsafe { Active::enter(inst.c, inst.origin.conn_live.clone()) };
    let h = FilterHandle::of(inst);
    loop {
        {
            let mut st = inst.lock();
            // SAFETY: our brigade and the caller's.
            if let Some(rv) = unsafe { answer(st.pending, bb, mode, readbytes) } {
                return rv;
            }
            st.call = Some(CallInfo {
                bb,
                mode,
                block,
                readbytes,
                raw: false,
                borrowed: None,
                upstream: APR_SUCCESS,
                filled: false,
            });
            st.in_python = true;
        }
        let before = inst.lock().progress;
        let outcome = (dispatch.filter)(&h);
        let (raw, upstream, progress, eos, closed) = {
            let mut st = inst.lock();
            st.in_python = false;
            let call = st.call.as_ref().expect("in call");
            (call.raw, call.upstream, st.progress, st.eos_seen, st.closed)
        };
        end_call(inst);
        match outcome {
            Outcome::Ok => {}
            Outcome::Status(rv) => return rv,
            Outcome::Io(rv) => {
                inst.lock().failure = Failure::Done(rv);
                return rv;
            }
            Outcome::Failed => return fail_input(inst, ""),
        }
        if eos && !closed {
            // read() returned None and the filter did not close: end the stream for it.
            let mut st = inst.lock();
            let p = ensure(&mut st.pending, || inst.new_brigade());
            // SAFETY: our brigade.
            unsafe { sys::modpy_brigade_insert_tail(p, sys::modpy_bucket_eos(inst.alloc())) };
            st.closed = true;
        }
        // SAFETY: the caller's brigade.
        if raw && unsafe { sys::modpy_brigade_empty(bb) } == 0 {
            return APR_SUCCESS;
        }
        if progress == before {
            // SAFETY: plain status check.
            if unsafe { sys::modpy_status_is_eagain(upstream) } != 0
                || block == sys::apr_read_type_e_APR_NONBLOCK_READ
            {
                // A non-blocking read with nothing there (Apache's core answers SUCCESS and
                // an empty brigade then): the same answer.
                return upstream;
            }
            if raw {
                return APR_SUCCESS;
            }
            return fail_input(
                inst,
                &format!(
                    "made no progress ({} read): it must read with f.read() and write with f.write()",
                    mode_name(mode)
                ),
            );
        }
    }
}

impl Stream {
    fn inbb_empty(&self) -> bool {
        // SAFETY: our brigade.
        self.inbb.is_null() || unsafe { sys::modpy_brigade_empty(self.inbb) } != 0
    }
}

/// Removes leading CR/LF bytes from `bb` (AP_MODE_EATCRLF).
///
/// # Safety
/// `bb` must be NULL or a valid brigade of a connection served by this thread.
unsafe fn eat_crlf(bb: *mut sys::apr_bucket_brigade) {
    if bb.is_null() {
        return;
    }
    // SAFETY: per this function's contract (see # Safety above).
    unsafe {
        loop {
            let e = sys::modpy_brigade_first(bb);
            if e == sys::modpy_brigade_sentinel(bb) || sys::modpy_bucket_is_metadata(e) != 0 {
                return;
            }
            let mut data: *const c_char = std::ptr::null();
            let mut len: sys::apr_size_t = 0;
            if sys::modpy_bucket_read(e, &mut data, &mut len, sys::apr_read_type_e_APR_BLOCK_READ)
                != 0
            {
                return;
            }
            let s = std::slice::from_raw_parts(data as *const u8, len);
            let n = s.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
            if n < len {
                if n > 0 {
                    sys::modpy_bucket_split(e, n);
                    sys::modpy_bucket_delete(e);
                }
                return;
            }
            sys::modpy_bucket_delete(e);
        }
    }
}

/// Serves the reader from what the filter produced, if that is enough for `mode`:
/// Some(status) when answered.
///
/// # Safety
/// `p` must be NULL or our pending brigade, `bb` the caller's (empty) brigade; this thread
/// serves the connection.
unsafe fn answer(
    p: *mut sys::apr_bucket_brigade,
    bb: *mut sys::apr_bucket_brigade,
    mode: sys::ap_input_mode_t,
    readbytes: i64,
) -> Option<i32> {
    if p.is_null() {
        return None;
    }
    // SAFETY: per this function's contract (see # Safety above).
    unsafe {
        drop_empty_head(p);
        if sys::modpy_brigade_empty(p) != 0 {
            return None;
        }
        let first = sys::modpy_brigade_first(p);
        let at_eos = sys::modpy_bucket_is_eos(first) != 0;
        match mode {
            sys::ap_input_mode_t_AP_MODE_GETLINE => {
                if !at_eos && !has_line(p, sys::HUGE_STRING_LEN as usize) {
                    return None;
                }
                let rv = sys::apr_brigade_split_line(
                    bb,
                    p,
                    sys::apr_read_type_e_APR_BLOCK_READ,
                    sys::HUGE_STRING_LEN as i64,
                );
                if at_eos && sys::modpy_brigade_empty(bb) != 0 {
                    move_first(p, bb);
                }
                Some(rv)
            }
            sys::ap_input_mode_t_AP_MODE_SPECULATIVE => {
                if at_eos {
                    return Some(APR_EOF);
                }
                let want = if readbytes > 0 {
                    readbytes as usize
                } else {
                    usize::MAX
                };
                Some(copy_prefix(p, bb, want))
            }
            sys::ap_input_mode_t_AP_MODE_EXHAUSTIVE => {
                sys::modpy_brigade_concat(bb, p);
                Some(APR_SUCCESS)
            }
            _ => {
                // READBYTES: at most readbytes bytes, and an EOS that follows them.
                let mut left = if readbytes > 0 {
                    readbytes as usize
                } else {
                    usize::MAX
                };
                loop {
                    let e = sys::modpy_brigade_first(p);
                    if e == sys::modpy_brigade_sentinel(p) {
                        break;
                    }
                    if sys::modpy_bucket_is_metadata(e) != 0 {
                        let eos = sys::modpy_bucket_is_eos(e) != 0;
                        move_first(p, bb);
                        if eos {
                            break;
                        }
                        continue;
                    }
                    if left == 0 {
                        break;
                    }
                    let mut data: *const c_char = std::ptr::null();
                    let mut len: sys::apr_size_t = 0;
                    let rv = sys::modpy_bucket_read(
                        e,
                        &mut data,
                        &mut len,
                        sys::apr_read_type_e_APR_BLOCK_READ,
                    );
                    if rv != APR_SUCCESS {
                        return Some(rv);
                    }
                    if len == 0 {
                        sys::modpy_bucket_delete(e);
                        continue;
                    }
                    if len > left {
                        sys::modpy_bucket_split(e, left);
                        move_first(p, bb);
                        break;
                    }
                    left -= len;
                    move_first(p, bb);
                }
                Some(APR_SUCCESS)
            }
        }
    }
}

/// Deletes zero-length data buckets at the head of `bb` (apr_brigade_split_line leaves one
/// when a line ends exactly at the end of a bucket): they are no answer to a read.
///
/// # Safety
/// A valid brigade of a connection served by this thread.
unsafe fn drop_empty_head(bb: *mut sys::apr_bucket_brigade) {
    // SAFETY: per this function's contract (see # Safety above).
    unsafe {
        loop {
            let e = sys::modpy_brigade_first(bb);
            if e == sys::modpy_brigade_sentinel(bb)
                || sys::modpy_bucket_is_metadata(e) != 0
                || (*e).length != 0
            {
                return;
            }
            sys::modpy_bucket_delete(e);
        }
    }
}

/// Moves the first bucket of `from` to the tail of `to`.
///
/// # Safety
/// Both valid brigades of one connection; `from` not empty.
unsafe fn move_first(from: *mut sys::apr_bucket_brigade, to: *mut sys::apr_bucket_brigade) {
    // SAFETY: per this function's contract (see # Safety above).
    unsafe {
        let e = sys::modpy_brigade_first(from);
        sys::modpy_bucket_remove(e);
        sys::modpy_brigade_insert_tail(to, e);
    }
}

/// Does `bb` hold a complete line (or `limit` bytes, or an EOS)?
///
/// # Safety
/// A valid brigade of a connection served by this thread.
unsafe fn has_line(bb: *mut sys::apr_bucket_brigade, limit: usize) -> bool {
    // SAFETY: per this function's contract (see # Safety above).
    unsafe {
        let end = sys::modpy_brigade_sentinel(bb);
        let mut e = sys::modpy_brigade_first(bb);
        let mut n = 0;
        while e != end {
            if sys::modpy_bucket_is_eos(e) != 0 {
                return true;
            }
            if sys::modpy_bucket_is_metadata(e) == 0 {
                let mut data: *const c_char = std::ptr::null();
                let mut len: sys::apr_size_t = 0;
                if sys::modpy_bucket_read(
                    e,
                    &mut data,
                    &mut len,
                    sys::apr_read_type_e_APR_BLOCK_READ,
                ) != 0
                {
                    return true;
                }
                if len > 0 && std::slice::from_raw_parts(data as *const u8, len).contains(&b'\n') {
                    return true;
                }
                n += len;
                if n >= limit {
                    return true;
                }
            }
            e = sys::modpy_bucket_next(e);
        }
    }
    false
}

/// Copies up to `want` bytes from the head of `from` into `to` (AP_MODE_SPECULATIVE).
///
/// # Safety
/// Both valid brigades of one connection served by this thread.
unsafe fn copy_prefix(
    from: *mut sys::apr_bucket_brigade,
    to: *mut sys::apr_bucket_brigade,
    want: usize,
) -> i32 {
    // SAFETY: per this function's contract (see # Safety above).
    unsafe {
        let end = sys::modpy_brigade_sentinel(from);
        let mut e = sys::modpy_brigade_first(from);
        let mut left = want;
        while e != end && left > 0 {
            if sys::modpy_bucket_is_metadata(e) != 0 {
                break;
            }
            let mut data: *const c_char = std::ptr::null();
            let mut len: sys::apr_size_t = 0;
            let rv =
                sys::modpy_bucket_read(e, &mut data, &mut len, sys::apr_read_type_e_APR_BLOCK_READ);
            if rv != APR_SUCCESS {
                return rv;
            }
            let n = len.min(left);
            let s = std::slice::from_raw_parts(data as *const u8, n);
            let c = sys::modpy_bucket_heap_copy(s.as_ptr() as *const c_char, n, (*to).bucket_alloc);
            sys::modpy_brigade_insert_tail(to, c);
            left -= n;
            e = sys::modpy_bucket_next(e);
        }
    }
    APR_SUCCESS
}

/// An input filter failed. Like Apache's own HTTP input filter on a bad body: if the
/// response has not started, an error bucket (500) goes to the request's output so Apache
/// answers the client, and the reader gets AP_FILTER_ERROR ("a filter has answered");
/// otherwise (or for connection filters) the reader gets APR_EGENERAL. Either way the
/// connection is not kept alive, and every later read fails the same way.
fn fail_input(inst: &Instance, why: &str) -> i32 {
    if !why.is_empty() {
        log_filter(
            inst,
            log::APLOG_ERR,
            &format!("mod_py: {} {why}", FilterHandle::of(inst).describe()),
        );
    }
    {
        let mut st = inst.lock();
        for bb in [st.inbb, st.pending] {
            if !bb.is_null() {
                // SAFETY: our brigades.
                unsafe { sys::apr_brigade_cleanup(bb as *mut c_void) };
            }
        }
        st.failure = Failure::Done(APR_EGENERAL);
    }
    // SAFETY: live connection.
    unsafe { (*inst.c).keepalive = sys::ap_conn_keepalive_e_AP_CONN_CLOSE };
    let r = inst.request_ptr();
    if r.is_null() || headers_sent(r) {
        return APR_EGENERAL;
    }
    // SAFETY: the request and connection are alive; a brigade of our pool.
    let rv = unsafe {
        let out = inst.new_brigade();
        sys::modpy_brigade_insert_tail(
            out,
            sys::modpy_bucket_error(
                sys::HTTP_INTERNAL_SERVER_ERROR as i32,
                inst.origin.pool,
                inst.alloc(),
            ),
        );
        sys::modpy_brigade_insert_tail(out, sys::modpy_bucket_eos(inst.alloc()));
        let rv = sys::ap_pass_brigade((*r).output_filters, out);
        sys::apr_brigade_cleanup(out as *mut c_void);
        rv
    };
    let status = if rv == AP_FILTER_ERROR || rv == APR_SUCCESS {
        AP_FILTER_ERROR
    } else {
        APR_EGENERAL
    };
    inst.lock().failure = Failure::Done(status);
    status
}

// =====================================================================================
// Connection hooks
// =====================================================================================

/// What `PythonConnectionHandler` needs to serve a connection.
pub struct ConnectionCall {
    pub connection: Connection,
    pub server: Server,
    pub handler: String,
}

unsafe extern "C" fn pre_connection(c: *mut sys::conn_rec, _csd: *mut c_void) -> c_int {
    let run = || {
        // SAFETY: Apache passes a live connection.
        unsafe {
            let s = (*c).base_server;
            let Some(reg) = registry_of(s) else { return };
            for spec in reg.connection_filters(s) {
                let name = super::pool::c_string(spec.name.as_bytes());
                if spec.input {
                    sys::ap_add_input_filter(
                        name.as_ptr(),
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        c,
                    );
                } else {
                    sys::ap_add_output_filter(
                        name.as_ptr(),
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        c,
                    );
                }
            }
        }
    };
    if catch_unwind(AssertUnwindSafe(run)).is_err() {
        log::cerror(
            c,
            log::APLOG_CRIT,
            0,
            "mod_py: internal error (panic) in pre_connection",
        );
    }
    sys::OK as c_int
}

unsafe extern "C" fn process_connection(c: *mut sys::conn_rec) -> c_int {
    let run = || -> c_int {
        // SAFETY: Apache passes a live connection.
        let s = unsafe { (*c).base_server };
        let Some(handler) = registry_of(s).and_then(|r| r.conn_handler(s)) else {
            return sys::DECLINED;
        };
        let Some(dispatch) = DISPATCH.get().copied() else {
            return sys::DECLINED;
        };
        // SAFETY: live connection, served by this thread during the hook.
        let connection = unsafe { Connection::from_raw(c) };
        let Ok(live) = connection.get().map(|c| c.liveness()) else {
            return sys::DECLINED;
        };
        // SAFETY: as above.
        let _active = unsafe { Active::enter(c, live) };
        let call = ConnectionCall {
            connection,
            // SAFETY: the connection's server lives as long as the configuration.
            server: unsafe { Server::from_raw(s) },
            handler: handler.to_string(),
        };
        (dispatch.connection)(&call)
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(rc) => rc,
        Err(_) => {
            log::cerror(
                c,
                log::APLOG_CRIT,
                0,
                "mod_py: internal error (panic) in a connection handler",
            );
            sys::OK as c_int
        }
    }
}

/// The filter records of filters a request registers itself (req.register_output_filter):
/// one per direction, registered at start-up; each use gets its spec in f->ctx.
static REQUEST_FRECS: OnceLock<(usize, usize)> = OnceLock::new();

/// Registers the two records (from register_hooks, in the parent).
pub fn register_request_filters() {
    // SAFETY: registration during register_hooks; the names are static strings and the
    // functions 'static (their index is past the configured ones: ctx always says the spec).
    let (out, inp) = unsafe {
        (
            sys::ap_register_output_filter_protocol(
                c"MOD_PY_REQUEST_OUTPUT".as_ptr(),
                Some(out_tramp::<MAX_FILTERS>),
                None,
                sys::ap_filter_type_AP_FTYPE_RESOURCE,
                sys::AP_FILTER_PROTO_CHANGE | sys::AP_FILTER_PROTO_CHANGE_LENGTH,
            ),
            sys::ap_register_input_filter(
                c"MOD_PY_REQUEST_INPUT".as_ptr(),
                Some(in_tramp::<MAX_FILTERS>),
                None,
                sys::ap_filter_type_AP_FTYPE_RESOURCE,
            ),
        )
    };
    let _ = REQUEST_FRECS.set((out as usize, inp as usize));
}

/// Adds to `r` a Python filter it registered (mod_python's req.register_output_filter then
/// req.add_output_filter).
pub fn add_request_filter(
    r: &super::request::RequestRef<'_>,
    spec: FilterSpec,
) -> Result<(), String> {
    let (out, inp) = *REQUEST_FRECS
        .get()
        .ok_or("request filters are not registered")?;
    let input = spec.input;
    let req = r.raw();
    // SAFETY: r is live; the records were registered at start-up; Apache allocates the filter
    // in the request pool, and make_instance fills its ctx before it can run.
    unsafe {
        let c = (*req).connection;
        let f = if input {
            sys::ap_add_input_filter_handle(
                inp as *mut sys::ap_filter_rec_t,
                std::ptr::null_mut(),
                req,
                c,
            )
        } else {
            sys::ap_add_output_filter_handle(
                out as *mut sys::ap_filter_rec_t,
                std::ptr::null_mut(),
                req,
                c,
            )
        };
        if f.is_null() {
            return Err(format!("Apache did not add filter '{}'", spec.name));
        }
        make_instance(f, spec, input, (*req).server).map(drop)
    }
}

/// pre_connection (adds connection-level Python filters) and process_connection
/// (PythonConnectionHandler). Registered in the parent: Python-free.
pub fn hook_connection() {
    // SAFETY: registration during register_hooks; the functions are 'static.
    unsafe {
        sys::ap_hook_pre_connection(
            Some(pre_connection),
            std::ptr::null(),
            std::ptr::null(),
            sys::APR_HOOK_MIDDLE as c_int,
        );
        sys::ap_hook_process_connection(
            Some(process_connection),
            std::ptr::null(),
            std::ptr::null(),
            sys::APR_HOOK_MIDDLE as c_int,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg() -> ConfRegistry {
        let spec = |h: &str, n: &str, input: bool, t: Option<&str>| {
            parse_filter_args(input, h, n, t).unwrap()
        };
        let at = |server: usize, is_main: bool, index: usize, spec: FilterSpec| Registered {
            server,
            is_main,
            index,
            spec,
        };
        ConfRegistry {
            out_names: vec!["upper".into(), "wrap".into()],
            in_names: vec!["upper".into()],
            filters: vec![
                at(1, true, 0, spec("a::main", "UPPER", false, None)),
                at(2, false, 0, spec("a::vhost", "UPPER", false, None)),
                at(1, true, 0, spec("a::in", "UPPER", true, None)),
                at(
                    3,
                    false,
                    1,
                    spec("a::conn", "WRAP", false, Some("CONNECTION")),
                ),
                at(
                    1,
                    true,
                    1,
                    spec("a::mainconn", "WRAP", false, Some("connection")),
                ),
            ],
            conn_handlers: vec![
                (1, true, "echo::main".into()),
                (4, false, "echo::four".into()),
            ],
        }
    }

    fn s(n: usize) -> *mut sys::server_rec {
        n as *mut sys::server_rec
    }

    #[test]
    fn spec_lookup_prefers_own_server_then_main() {
        let r = reg();
        assert_eq!(r.spec(false, 0, s(2)).unwrap().handler, "a::vhost");
        assert_eq!(r.spec(false, 0, s(1)).unwrap().handler, "a::main");
        assert_eq!(r.spec(false, 0, s(9)).unwrap().handler, "a::main");
        assert_eq!(r.spec(true, 0, s(2)).unwrap().handler, "a::in");
        assert!(r.spec(true, 1, s(1)).is_none());
        assert_eq!(r.spec(false, 1, s(3)).unwrap().handler, "a::conn");
    }

    #[test]
    fn connection_filters_per_server() {
        let r = reg();
        let names = |srv: usize| -> Vec<String> {
            r.connection_filters(s(srv))
                .iter()
                .map(|f| f.handler.clone())
                .collect()
        };
        assert_eq!(names(3), vec!["a::conn"]);
        assert_eq!(names(1), vec!["a::mainconn"]);
        assert_eq!(names(7), vec!["a::mainconn"]);
    }

    #[test]
    fn connection_handler_lookup() {
        let r = reg();
        assert_eq!(r.conn_handler(s(4)), Some("echo::four"));
        assert_eq!(r.conn_handler(s(5)), Some("echo::main"));
        let r2 = ConfRegistry {
            conn_handlers: vec![(4, false, "x".into())],
            ..Default::default()
        };
        assert_eq!(r2.conn_handler(s(5)), None);
    }
}

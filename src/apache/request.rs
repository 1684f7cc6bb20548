//! request_rec: fields under their C names, and the ap_* request functions mod_py exposes.

use super::connection::Connection;
use super::module::{get_module_config, set_module_config};
use super::pool::{c_string, cstr, pool_box, pstrdup, str_array, Alive, Gone, Liveness};
use super::server::Server;
use super::table::Table;
use crate::sys;
use std::any::Any;
use std::ffi::c_void;
use std::os::raw::c_char;
use std::sync::Mutex;

/// Per-request state mod_py keeps in r->request_config: one liveness flag for every object
/// wrapping this request, the output brigade reused by every write, and a slot for the layer
/// above (the Python Request object, so all phases see the same one).
pub(super) struct RequestState {
    live: Liveness,
    out: *mut sys::apr_bucket_brigade,
    /// Bytes written with flush=0 and not yet passed down.
    pending: usize,
    body_setup: Option<sys::apr_status_t>,
    /// Reading the body failed: Apache has already answered the client (413, 400, 408...).
    body_failed: bool,
    ext: ExtSlot,
    /// Python handler phases and subrequests of this request (src/apache/phase_state.rs).
    pub(super) phase: super::phase_state::PhaseState,
}

/// Storage the layer above keeps per request (see RequestState::ext).
pub type ExtSlot = Mutex<Option<Box<dyn Any + Send>>>;

/// A handle on a request_rec, valid to use from any thread; after the request's pool is gone,
/// every method returns `Gone`.
#[derive(Clone)]
pub struct Request {
    r: *mut sys::request_rec,
    live: Liveness,
}

// SAFETY: all access checks `live` first, which holds off the pool's destruction.
unsafe impl Send for Request {}
unsafe impl Sync for Request {}

/// request_rec's string fields, by their C names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrField {
    TheRequest,
    Protocol,
    Hostname,
    StatusLine,
    Method,
    Range,
    ContentType,
    Handler,
    ContentEncoding,
    VlistValidator,
    User,
    ApAuthType,
    UnparsedUri,
    Uri,
    Filename,
    CanonicalFilename,
    PathInfo,
    Args,
    LogId,
    UseragentIp,
    UseragentHost,
}

/// request_rec's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableField {
    HeadersIn,
    HeadersOut,
    ErrHeadersOut,
    SubprocessEnv,
    Notes,
    TrailersIn,
    TrailersOut,
}

/// The string lists of request_rec (RequestRef::str_list).
#[derive(Clone, Copy)]
pub enum StrList {
    AllowedXmethods,
    AllowedMethods,
    ContentLanguages,
}

/// The kind of r->finfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Directory,
    Missing,
    Other,
}

/// The httpd version mod_py was built against.
pub const SERVER_VERSION: (u32, u32, u32) = (
    sys::AP_SERVER_MAJORVERSION_NUMBER,
    sys::AP_SERVER_MINORVERSION_NUMBER,
    sys::AP_SERVER_PATCHLEVEL_NUMBER,
);

/// apr_uri_t, borrowed from a live request.
pub struct ParsedUri<'a> {
    pub scheme: Option<&'a [u8]>,
    pub hostinfo: Option<&'a [u8]>,
    pub user: Option<&'a [u8]>,
    pub password: Option<&'a [u8]>,
    pub hostname: Option<&'a [u8]>,
    pub port: Option<u16>,
    pub path: Option<&'a [u8]>,
    pub query: Option<&'a [u8]>,
    pub fragment: Option<&'a [u8]>,
}

/// A failed I/O call: the APR status and what was being done.
#[derive(Debug)]
pub struct IoError {
    pub status: sys::apr_status_t,
    pub what: &'static str,
}

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed: {}",
            self.what,
            super::log::strerror(self.status)
        )
    }
}

#[derive(Debug)]
pub enum Error {
    Gone(Gone),
    Io(IoError),
    Http(i32),
    /// Reading the request body failed; the text says why.
    Body(String),
}

/// Why a request body read failed, from what the input filters returned.
fn body_read_failure(refused: bool, status: sys::apr_status_t) -> String {
    const FAILED: &str = "reading the request body failed";
    if refused {
        return format!(
            "{FAILED}: Apache has answered the client with an error (body over \
             LimitRequestBody or malformed chunked encoding)"
        );
    }
    let closed = [
        sys::APR_EOF as i32,
        sys::APR_INCOMPLETE as i32,
        libc::ECONNRESET,
        libc::ECONNABORTED,
        libc::EPIPE,
    ];
    if closed.contains(&status) {
        return format!("{FAILED}: the client closed the connection before sending the whole body");
    }
    if status == sys::APR_TIMEUP as i32 || status == libc::ETIMEDOUT {
        return format!(
            "{FAILED}: timed out waiting for the client (Timeout / RequestReadTimeout)"
        );
    }
    format!(
        "{FAILED}: client read error: {} ({status})",
        super::log::strerror(status)
    )
}

impl From<Gone> for Error {
    fn from(g: Gone) -> Self {
        Error::Gone(g)
    }
}

impl Request {
    /// Wraps a request Apache handed to a hook; all wrappers of one request share state.
    ///
    /// # Safety
    /// `r` must be a live request_rec (the one passed to the current hook).
    pub unsafe fn from_raw(r: *mut sys::request_rec) -> Request {
        // SAFETY: r is live; request_config is its per-request vector.
        unsafe {
            let st = get_module_config((*r).request_config) as *mut RequestState;
            if !st.is_null() {
                return Request {
                    r,
                    live: (*st).live.clone(),
                };
            }
            let live = Liveness::tied_to((*r).pool, "request");
            let state = RequestState {
                live: live.clone(),
                out: std::ptr::null_mut(),
                pending: 0,
                body_setup: None,
                body_failed: false,
                ext: Mutex::new(None),
                phase: Default::default(),
            };
            let state = pool_box((*r).pool, state);
            super::phase_state::register_pool_end((*r).pool, state);
            set_module_config((*r).request_config, state as *mut c_void);
            Request { r, live }
        }
    }

    pub fn as_ptr(&self) -> *mut sys::request_rec {
        self.r
    }

    pub fn get(&self) -> Result<RequestRef<'_>, Gone> {
        let alive = self.live.check()?;
        Ok(RequestRef {
            r: self.r,
            owner: self,
            _alive: alive,
        })
    }

    pub fn liveness(&self) -> &Liveness {
        &self.live
    }
}

/// A request known to be alive for as long as this value exists.
pub struct RequestRef<'a> {
    r: *mut sys::request_rec,
    owner: &'a Request,
    _alive: Alive<'a>,
}

impl<'a> RequestRef<'a> {
    /// The plain (non-pointer) fields: ints, times, offsets.
    pub fn rec(&self) -> &sys::request_rec {
        // SAFETY: alive while self exists.
        unsafe { &*self.r }
    }

    // The state is per request and Apache runs a request on one thread at a time; callers
    // never hold two of these borrows at once.
    #[allow(clippy::mut_from_ref)]
    pub(super) fn state(&self) -> &mut RequestState {
        // SAFETY: from_raw stored the state before any RequestRef could exist; one thread at a
        // time works on a request.
        unsafe { &mut *(get_module_config((*self.r).request_config) as *mut RequestState) }
    }

    pub(super) fn pool(&self) -> *mut sys::apr_pool_t {
        self.rec().pool
    }

    fn str_ptr(&self, f: StrField) -> *const c_char {
        let r = self.rec();
        use StrField::*;
        match f {
            TheRequest => r.the_request,
            Protocol => r.protocol,
            Hostname => r.hostname,
            StatusLine => r.status_line,
            Method => r.method,
            Range => r.range,
            ContentType => r.content_type,
            Handler => r.handler,
            ContentEncoding => r.content_encoding,
            VlistValidator => r.vlist_validator,
            User => r.user,
            ApAuthType => r.ap_auth_type,
            UnparsedUri => r.unparsed_uri,
            Uri => r.uri,
            Filename => r.filename,
            CanonicalFilename => r.canonical_filename,
            PathInfo => r.path_info,
            Args => r.args,
            LogId => r.log_id,
            UseragentIp => r.useragent_ip,
            UseragentHost => r.useragent_host,
        }
    }

    /// A string field's bytes (None for NULL).
    pub fn str_field(&self, f: StrField) -> Option<&[u8]> {
        // SAFETY: request_rec strings are NULL or NUL-terminated in pools that live as long as
        // the request, and self proves it is alive.
        unsafe { cstr(self.str_ptr(f)) }
    }

    /// Sets a string field Apache lets modules change (copied into the request pool). Others
    /// return Err with the field. content_type goes through ap_set_content_type.
    pub fn set_str_field(&self, f: StrField, v: Option<&[u8]>) -> Result<(), StrField> {
        // SAFETY: alive; strings are copied into the request pool so they live as long as it.
        unsafe {
            let r = &mut *self.r;
            let p = match v {
                Some(v) => pstrdup(r.pool, v),
                None => std::ptr::null_mut(),
            };
            use StrField::*;
            match f {
                ContentType => sys::ap_set_content_type(r, p),
                Handler => r.handler = p,
                ContentEncoding => r.content_encoding = p,
                StatusLine => r.status_line = p,
                User => r.user = p,
                ApAuthType => r.ap_auth_type = p,
                Uri => r.uri = p,
                Filename => r.filename = p,
                CanonicalFilename => r.canonical_filename = p,
                PathInfo => r.path_info = p,
                Args => r.args = p,
                UnparsedUri => r.unparsed_uri = p,
                VlistValidator => r.vlist_validator = p,
                Method => r.method = p,
                _ => return Err(f),
            }
        }
        Ok(())
    }

    /// r->parsed_uri's parts.
    pub fn parsed_uri(&self) -> ParsedUri<'_> {
        let u = &self.rec().parsed_uri;
        // SAFETY: apr_uri_t strings are NULL or NUL-terminated in the request pool (alive).
        let s = |p: *mut c_char| unsafe { cstr(p) };
        ParsedUri {
            scheme: s(u.scheme),
            hostinfo: s(u.hostinfo),
            user: s(u.user),
            password: s(u.password),
            hostname: s(u.hostname),
            port: (!u.port_str.is_null()).then_some(u.port),
            path: s(u.path),
            query: s(u.query),
            fragment: s(u.fragment),
        }
    }

    /// r->allowed_xmethods, r->allowed_methods->method_list (extension methods) and
    /// r->content_languages.
    pub fn str_list(&self, which: StrList) -> Vec<&[u8]> {
        let r = self.rec();
        let a = match which {
            StrList::AllowedXmethods => r.allowed_xmethods,
            // SAFETY: allowed_methods is NULL or an ap_method_list_t of the request pool.
            StrList::AllowedMethods => unsafe { r.allowed_methods.as_ref() }
                .map_or(std::ptr::null_mut(), |m| m.method_list),
            StrList::ContentLanguages => r.content_languages,
        };
        // SAFETY: arrays of `char *` in the request pool (alive while self is).
        unsafe { str_array(a) }
    }

    /// r->finfo: what the directory walk found at r->filename.
    pub fn finfo(&self) -> &sys::apr_finfo_t {
        &self.rec().finfo
    }

    /// r->finfo.fname.
    pub fn finfo_fname(&self) -> Option<&[u8]> {
        // SAFETY: NULL or a string of the request pool.
        unsafe { cstr(self.rec().finfo.fname) }
    }

    /// r->useragent_ip and the port of r->useragent_addr.
    pub fn useragent_addr(&self) -> (Option<&[u8]>, u16) {
        let r = self.rec();
        // SAFETY: NULL or request/connection pool data, alive while self is.
        unsafe {
            (
                cstr(r.useragent_ip),
                r.useragent_addr.as_ref().map_or(0, |a| a.port),
            )
        }
    }

    /// What Apache's directory walk found at r->filename: a regular file, a directory, or
    /// nothing (r->finfo.filetype).
    pub fn file_kind(&self) -> FileKind {
        match self.rec().finfo.filetype {
            sys::apr_filetype_e_APR_REG => FileKind::File,
            sys::apr_filetype_e_APR_DIR => FileKind::Directory,
            sys::apr_filetype_e_APR_NOFILE => FileKind::Missing,
            _ => FileKind::Other,
        }
    }

    /// Stats r->filename into r->finfo (apr_stat, APR_FINFO_MIN, as the directory walk does),
    /// so that the walk does not stat it again. Returns what is there; r->finfo is left
    /// untouched (the walk stats) unless it is a regular file.
    pub fn stat_filename_if_file(&self) -> FileKind {
        let r = self.rec();
        if r.filename.is_null() {
            return FileKind::Missing;
        }
        // SAFETY: alive; r->filename is a string of the request pool, which apr_stat keeps
        // as finfo.fname; apr_finfo_t is plain data (all zero is a valid value).
        unsafe {
            let mut fi: sys::apr_finfo_t = std::mem::zeroed();
            let rv = sys::apr_stat(&mut fi, r.filename, sys::APR_FINFO_MIN as i32, r.pool);
            if rv != sys::APR_SUCCESS as sys::apr_status_t && rv != sys::APR_INCOMPLETE as i32 {
                return FileKind::Missing;
            }
            if fi.filetype == sys::apr_filetype_e_APR_REG {
                (*self.r).finfo = fi;
                return FileKind::File;
            }
            if fi.filetype == sys::apr_filetype_e_APR_DIR {
                FileKind::Directory
            } else {
                FileKind::Other
            }
        }
    }

    /// Is `Options ExecCGI` in effect for this request's directory (ap_allow_options)?
    pub fn exec_cgi_allowed(&self) -> bool {
        // SAFETY: alive.
        unsafe { sys::ap_allow_options(self.r) & sys::OPT_EXECCGI as i32 != 0 }
    }

    pub fn set_status(&self, status: i32) {
        // SAFETY: alive.
        unsafe { (*self.r).status = status };
    }

    /// Integer flags modules may set: no_cache, no_local_copy, proxyreq, used_path_info,
    /// assbackwards.
    pub fn set_int_field(&self, name: &str, v: i32) -> bool {
        // SAFETY: alive.
        let r = unsafe { &mut *self.r };
        match name {
            "no_cache" => r.no_cache = v,
            "no_local_copy" => r.no_local_copy = v,
            "proxyreq" => r.proxyreq = v,
            "used_path_info" => r.used_path_info = v,
            "assbackwards" => r.assbackwards = v,
            _ => return false,
        }
        true
    }

    pub fn table(&self, f: TableField) -> Table {
        let r = self.rec();
        let t = match f {
            TableField::HeadersIn => r.headers_in,
            TableField::HeadersOut => r.headers_out,
            TableField::ErrHeadersOut => r.err_headers_out,
            TableField::SubprocessEnv => r.subprocess_env,
            TableField::Notes => r.notes,
            TableField::TrailersIn => r.trailers_in,
            TableField::TrailersOut => r.trailers_out,
        };
        // SAFETY: request tables live in the request pool, which `live` tracks.
        unsafe { Table::from_raw(t, self.owner.live.clone()) }
    }

    pub fn connection(&self) -> Connection {
        // SAFETY: the connection outlives the request.
        unsafe { Connection::from_raw(self.rec().connection) }
    }

    pub fn server(&self) -> Server {
        // SAFETY: server_recs live as long as the configuration (the child's lifetime).
        unsafe { Server::from_raw(self.rec().server) }
    }

    /// ap_document_root(r): the DocumentRoot of the request's (virtual) server.
    pub fn document_root(&self) -> &[u8] {
        // SAFETY: r is live; the result is NULL or a string of the configuration, which
        // outlives the request.
        unsafe { cstr(sys::ap_document_root(self.r)) }.unwrap_or_default()
    }

    /// r->main, r->prev, r->next as requests of their own.
    pub fn related(&self, which: &str) -> Option<Request> {
        let r = self.rec();
        let p = match which {
            "main" => r.main,
            "prev" => r.prev,
            "next" => r.next,
            _ => return None,
        };
        // SAFETY: related requests are alive while this one is (main/prev outlive it; next is
        // the redirect in progress).
        (!p.is_null()).then(|| unsafe { Request::from_raw(p) })
    }

    /// The configuration of the request's (virtual) server.
    pub fn server_config(&self) -> &'a crate::config::ServerConfig {
        // SAFETY: r->server's config lives as long as the configuration.
        unsafe { super::config::server_config(self.rec().server) }
    }

    pub fn per_dir_config(&self) -> &'a crate::config::DirConfig {
        // SAFETY: per_dir_config is the request's merged config vector.
        unsafe { super::config::dir_config(self.rec().per_dir_config) }
    }

    /// The slot for the layer above (see RequestState::ext).
    pub fn ext(&self) -> &ExtSlot {
        &self.state().ext
    }

    // ---- output ----

    fn out_brigade(&self) -> *mut sys::apr_bucket_brigade {
        let st = self.state();
        if st.out.is_null() {
            // SAFETY: brigade in the request pool, with the connection's allocator.
            st.out = unsafe {
                sys::apr_brigade_create(self.pool(), (*self.rec().connection).bucket_alloc)
            };
        }
        st.out
    }

    /// Sends the brigade down r->output_filters and empties it for reuse.
    fn pass_out(&self) -> Result<(), IoError> {
        let bb = self.out_brigade();
        self.state().pending = 0;
        // SAFETY: bb is ours; ap_pass_brigade consumes its buckets (or leaves them for cleanup).
        let rv = unsafe { sys::ap_pass_brigade((*self.r).output_filters, bb) };
        // SAFETY: bb is ours to empty.
        unsafe { sys::apr_brigade_cleanup(bb as *mut c_void) };
        if rv != sys::APR_SUCCESS as i32 {
            return Err(IoError {
                status: rv,
                what: "writing to the client",
            });
        }
        Ok(())
    }

    /// Would write(data of `len` bytes, flush=false) pass output down the filters (I/O), or only
    /// copy it into the pending brigade?
    pub fn write_passes_down(&self, len: usize) -> bool {
        self.state().pending + len >= 64 * 1024
    }

    /// mod_python's req.write: with `flush`, `data` goes out now in a transient bucket (no
    /// copy; Apache's filters set aside what they keep), followed by FLUSH. Without, it is
    /// copied into the pending brigade, passed down once 64 KiB have gathered or on flush().
    pub fn write(&self, data: &[u8], flush: bool) -> Result<(), IoError> {
        if self.state().body_failed {
            // Apache already sent an error response; more output would be appended to it.
            return Err(IoError {
                status: sys::APR_EGENERAL as i32,
                what: "writing after a failed body read",
            });
        }
        let bb = self.out_brigade();
        if flush {
            // SAFETY: `data` outlives the pass below; transient buckets are set aside (copied)
            // by any filter that keeps them past ap_pass_brigade.
            unsafe {
                if !data.is_empty() {
                    sys::modpy_brigade_append_transient(
                        bb,
                        data.as_ptr() as *const c_char,
                        data.len(),
                    );
                }
                sys::modpy_brigade_append_flush(bb);
            }
            return self.pass_out();
        }
        // SAFETY: apr_brigade_write copies `data` into heap buckets of bb.
        let rv = unsafe {
            sys::apr_brigade_write(
                bb,
                None,
                std::ptr::null_mut(),
                data.as_ptr() as *const c_char,
                data.len(),
            )
        };
        if rv != sys::APR_SUCCESS as i32 {
            return Err(IoError {
                status: rv,
                what: "buffering output",
            });
        }
        let st = self.state();
        st.pending += data.len();
        if st.pending >= 64 * 1024 {
            self.pass_out()?;
        }
        Ok(())
    }

    /// Passes down whatever is pending, then a FLUSH bucket (ap_rflush).
    pub fn flush(&self) -> Result<(), IoError> {
        // SAFETY: bb is ours.
        unsafe { sys::modpy_brigade_append_flush(self.out_brigade()) };
        self.pass_out()
    }

    /// Is there flush=0 output not yet passed down?
    pub fn has_pending_output(&self) -> bool {
        let st = self.state();
        // SAFETY: out is NULL or our brigade.
        !st.out.is_null() && unsafe { sys::modpy_brigade_empty(st.out) } == 0
    }

    /// Queues `data` (copied into heap buckets) and, with `flush`, a FLUSH bucket, without
    /// passing anything down: no I/O, so the caller may hold the GIL. The queue goes down on
    /// the next write/flush or finish_output().
    pub fn write_deferred(&self, data: &[u8], flush: bool) -> Result<(), IoError> {
        let bb = self.out_brigade();
        // SAFETY: apr_brigade_write copies `data` into heap buckets of bb (no flush callback).
        let rv = unsafe {
            sys::apr_brigade_write(
                bb,
                None,
                std::ptr::null_mut(),
                data.as_ptr() as *const c_char,
                data.len(),
            )
        };
        if rv != sys::APR_SUCCESS as i32 {
            return Err(IoError {
                status: rv,
                what: "buffering output",
            });
        }
        if flush {
            // SAFETY: bb is ours.
            unsafe { sys::modpy_brigade_append_flush(bb) };
        }
        self.state().pending += data.len();
        Ok(())
    }

    /// Passes down pending flush=0 output without a FLUSH (end of a handler).
    pub fn finish_output(&self) -> Result<(), IoError> {
        let st = self.state();
        // SAFETY: out is NULL or our brigade.
        if st.out.is_null() || unsafe { sys::modpy_brigade_empty(st.out) } != 0 {
            return Ok(());
        }
        self.pass_out()
    }

    /// True once a body read failed (Apache answered the client itself).
    pub fn body_failed(&self) -> bool {
        self.state().body_failed
    }

    /// Ends a response that cannot be completed (an application failed after output began):
    /// an error bucket with 502 makes Apache's chunking filter omit the last chunk, and the
    /// connection is closed, so the client can tell the body is incomplete (as mod_proxy does
    /// when a backend breaks).
    pub fn abort_response(&self) {
        self.discard_pending_output();
        let bb = self.out_brigade();
        // SAFETY: alive; the buckets are created in our brigade and passed at once.
        unsafe {
            (*self.rec().connection).keepalive = sys::ap_conn_keepalive_e_AP_CONN_CLOSE;
            let e = sys::ap_bucket_error_create(
                sys::HTTP_BAD_GATEWAY as i32,
                std::ptr::null(),
                self.pool(),
                (*self.rec().connection).bucket_alloc,
            );
            sys::modpy_brigade_insert_tail(bb, e);
            sys::modpy_brigade_append_eos(bb);
        }
        let _ = self.pass_out();
    }

    /// Closes the connection after this response (no keep-alive).
    pub fn set_connection_close(&self) {
        // SAFETY: alive.
        unsafe { (*self.rec().connection).keepalive = sys::ap_conn_keepalive_e_AP_CONN_CLOSE };
    }

    /// Drops output written with flush=0 that has not been passed down yet.
    pub fn discard_pending_output(&self) {
        let st = self.state();
        st.pending = 0;
        if !st.out.is_null() {
            // SAFETY: our brigade; its buckets are destroyed.
            unsafe { sys::apr_brigade_cleanup(st.out as *mut c_void) };
        }
    }

    /// Sends a file (or part of it) as a file bucket: no copy through user space.
    pub fn sendfile(&self, path: &[u8], offset: i64, len: Option<i64>) -> Result<i64, IoError> {
        self.send_file_bucket(path, offset, len, false)
    }

    /// Sends a file as the whole rest of the response: file bucket then EOS in one brigade,
    /// so Apache's own filters see the complete body (byte ranges, Content-Length), as they
    /// do for a static file.
    pub fn sendfile_final(
        &self,
        path: &[u8],
        offset: i64,
        len: Option<i64>,
    ) -> Result<i64, IoError> {
        self.send_file_bucket(path, offset, len, true)
    }

    fn send_file_bucket(
        &self,
        path: &[u8],
        offset: i64,
        len: Option<i64>,
        eos: bool,
    ) -> Result<i64, IoError> {
        let path = c_string(path);
        let pool = self.pool();
        // SAFETY: file and finfo are owned by the request pool; the bucket refers to the file
        // until it is sent.
        unsafe {
            let mut fd: *mut sys::apr_file_t = std::ptr::null_mut();
            let rv = sys::apr_file_open(
                &mut fd,
                path.as_ptr(),
                (sys::APR_FOPEN_READ | sys::APR_FOPEN_SENDFILE_ENABLED) as i32,
                sys::APR_OS_DEFAULT as i32,
                pool,
            );
            if rv != 0 {
                return Err(IoError {
                    status: rv,
                    what: "opening the file to send",
                });
            }
            let mut finfo: sys::apr_finfo_t = std::mem::zeroed();
            let rv = sys::apr_file_info_get(&mut finfo, sys::APR_FINFO_SIZE as i32, fd);
            if rv != 0 {
                return Err(IoError {
                    status: rv,
                    what: "reading the file's size",
                });
            }
            let n = len
                .unwrap_or(finfo.size - offset)
                .min(finfo.size - offset)
                .max(0);
            // Anything buffered goes first.
            let bb = self.out_brigade();
            sys::apr_brigade_insert_file(bb, fd, offset, n, pool);
            if eos {
                sys::modpy_brigade_append_eos(bb);
            }
            self.pass_out()?;
            Ok(n)
        }
    }

    // ---- input ----

    /// ap_setup_client_block once per request (dechunking chunked bodies), then
    /// ap_should_client_block.
    fn setup_body(&self) -> Result<(), Error> {
        let st = self.state();
        let rv = *st.body_setup.get_or_insert_with(|| {
            // SAFETY: alive; done once per request.
            unsafe {
                let rv = sys::ap_setup_client_block(self.r, sys::REQUEST_CHUNKED_DECHUNK as i32);
                if rv == sys::OK as i32 {
                    sys::ap_should_client_block(self.r);
                }
                rv
            }
        });
        if rv != sys::OK as i32 {
            return Err(Error::Http(rv));
        }
        Ok(())
    }

    /// Fills `buf` from the request body; returns how many bytes were read (less than
    /// buf.len() only at the end of the body).
    pub fn read_into(&self, buf: &mut [u8]) -> Result<usize, Error> {
        // SAFETY: the same memory seen as possibly uninitialised; read_into_uninit only
        // writes initialised bytes into it.
        self.read_into_uninit(unsafe {
            &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>])
        })
    }

    /// read_into for memory not yet initialised (a bytes object's fresh buffer): the first
    /// `n` bytes (the result) are the body's, the rest stays untouched.
    pub fn read_into_uninit(&self, buf: &mut [std::mem::MaybeUninit<u8>]) -> Result<usize, Error> {
        self.setup_body()?;
        let mut got = 0;
        while got < buf.len() {
            let mut status: sys::apr_status_t = 0;
            // SAFETY: modpy_get_client_block (ap_get_client_block keeping the status) writes
            // at most buf.len()-got bytes into buf[got..] and never reads them.
            let n = unsafe {
                sys::modpy_get_client_block(
                    self.r,
                    buf[got..].as_mut_ptr() as *mut c_char,
                    buf.len() - got,
                    &mut status,
                )
            };
            match n {
                0 => break,
                n if n < 0 => {
                    // The input filters may have answered the client already (413 for a body
                    // over LimitRequestBody, 400 for bad chunking): then the request is done.
                    // On a timeout or a lost client nothing was sent, and the handler's error
                    // can still be the answer.
                    // The message says what the filters did, not whether the application
                    // had begun its response (sent_bodyct) when the client went away.
                    let refused = status == sys::AP_FILTER_ERROR;
                    let r = self.rec();
                    self.state().body_failed = refused || r.sent_bodyct != 0 || r.eos_sent != 0;
                    return Err(Error::Body(body_read_failure(refused, status)));
                }
                n => got += n as usize,
            }
        }
        Ok(got)
    }

    /// Bytes of body still to come, when Apache knows (Content-Length), else None.
    pub fn body_remaining(&self) -> Result<Option<u64>, Error> {
        self.setup_body()?;
        let r = self.rec();
        Ok((r.read_chunked == 0).then_some(r.remaining.max(0) as u64))
    }

    pub fn discard_request_body(&self) -> i32 {
        // SAFETY: alive.
        unsafe { sys::ap_discard_request_body(self.r) }
    }

    // ---- the rest of the ap_* request API ----

    pub fn set_content_length(&self, n: i64) {
        // SAFETY: alive.
        unsafe { sys::ap_set_content_length(self.r, n) }
    }

    /// ap_get_basic_auth_pw: (status, password); sets r->user on success.
    pub fn get_basic_auth_pw(&self) -> (i32, Option<Vec<u8>>) {
        let mut pw: *const c_char = std::ptr::null();
        // SAFETY: alive; pw points into the request pool afterwards.
        let rv = unsafe { sys::ap_get_basic_auth_pw(self.r, &mut pw) };
        (rv, unsafe { cstr(pw) }.map(<[u8]>::to_vec))
    }

    pub fn add_common_vars(&self) {
        // SAFETY: alive.
        unsafe { sys::ap_add_common_vars(self.r) }
    }

    pub fn add_cgi_vars(&self) {
        // SAFETY: alive.
        unsafe { sys::ap_add_cgi_vars(self.r) }
    }

    /// The CGI variables of a WSGI environ, in r->subprocess_env (returned):
    /// ap_add_common_vars, then add_cgi_vars_without_path_translated. The embedded handler and
    /// the daemon client both start their environ from it.
    pub fn add_wsgi_cgi_vars(&self) -> Result<Table, Gone> {
        let env = self.table(TableField::SubprocessEnv);
        self.add_common_vars();
        self.add_cgi_vars_without_path_translated(&env)?;
        Ok(env)
    }

    /// What ap_add_cgi_vars sets, into `env`, except PATH_TRANSLATED: GATEWAY_INTERFACE,
    /// SERVER_PROTOCOL, REQUEST_METHOD, QUERY_STRING, REQUEST_URI (as `CGIVar` says),
    /// SCRIPT_NAME and PATH_INFO. Apache finds PATH_TRANSLATED by running a whole subrequest
    /// for the path info (translate_name, a directory walk that stats each path component,
    /// the access hooks), which is most of what a WSGI hello costs above a C handler; mod_wsgi
    /// 6 leaves it out for the same reason, and PEP 3333 does not have it.
    pub fn add_cgi_vars_without_path_translated(&self, env: &Table) -> Result<(), Gone> {
        let field = |f| self.str_field(f).unwrap_or_default();
        let protocol = field(StrField::Protocol);
        let uri = field(StrField::Uri);
        let path_info = field(StrField::PathInfo);
        // SAFETY: alive; reads the core module's per-dir config of r.
        let current_uri = unsafe { sys::modpy_cgi_request_uri_is_current(self.r) } != 0;
        let request_uri = if current_uri {
            uri
        } else {
            crate::auth::original_uri(self.str_field(StrField::TheRequest))
        };
        env.set(b"GATEWAY_INTERFACE", b"CGI/1.1")?;
        env.set(b"SERVER_PROTOCOL", protocol)?;
        env.set(b"REQUEST_METHOD", field(StrField::Method))?;
        env.set(b"QUERY_STRING", field(StrField::Args))?;
        env.set(b"REQUEST_URI", request_uri)?;
        // A script run by mod_include: its subrequest carries the including page's path info.
        if protocol == b"INCLUDED" || path_info.is_empty() {
            env.set(b"SCRIPT_NAME", uri)?;
        } else {
            let n = crate::auth::find_path_info(uri, path_info);
            env.set(b"SCRIPT_NAME", &uri[..n])?;
        }
        if !path_info.is_empty() {
            env.set(b"PATH_INFO", path_info)?;
        }
        Ok(())
    }

    /// ap_internal_redirect: runs the new request to completion on this thread.
    pub fn internal_redirect(&self, uri: &[u8]) {
        let uri = c_string(uri);
        // SAFETY: alive; Apache copies the uri.
        unsafe { sys::ap_internal_redirect(uri.as_ptr(), self.r) }
    }

    pub fn construct_url(&self, uri: &[u8]) -> Vec<u8> {
        let uri = c_string(uri);
        // SAFETY: result in the request pool, copied at once.
        unsafe { cstr(sys::ap_construct_url(self.pool(), uri.as_ptr(), self.r)) }
            .unwrap_or_default()
            .to_vec()
    }

    pub fn meets_conditions(&self) -> i32 {
        // SAFETY: alive.
        unsafe { sys::ap_meets_conditions(self.r) }
    }

    pub fn set_etag(&self) {
        // SAFETY: alive.
        unsafe { sys::ap_set_etag(self.r) }
    }

    pub fn update_mtime(&self, t: i64) {
        // SAFETY: alive.
        unsafe { sys::ap_update_mtime(self.r, t) }
    }

    pub fn set_last_modified(&self) {
        // SAFETY: alive.
        unsafe { sys::ap_set_last_modified(self.r) }
    }

    /// ap_get_remote_host(c, per_dir_config, type): (name, str_is_ip).
    pub fn get_remote_host(&self, kind: i32) -> (Option<Vec<u8>>, bool) {
        let mut is_ip: i32 = 0;
        // SAFETY: alive; result in the connection pool, copied at once.
        let h = unsafe {
            cstr(sys::ap_get_remote_host(
                self.rec().connection,
                self.rec().per_dir_config as *mut c_void,
                kind,
                &mut is_ip,
            ))
        };
        (h.map(<[u8]>::to_vec), is_ip != 0)
    }

    /// ap_allow_methods(r, reset, methods..., NULL).
    pub fn allow_methods(&self, methods: &[Vec<u8>], reset: bool) {
        let cs: Vec<_> = methods.iter().map(|m| c_string(m)).collect();
        // SAFETY: alive; the list is copied by Apache. One call per method keeps it non-variadic
        // in spirit: only the first call resets.
        unsafe {
            if cs.is_empty() && reset {
                sys::ap_allow_methods(self.r, 1, std::ptr::null::<c_char>());
            }
            for (i, c) in cs.iter().enumerate() {
                sys::ap_allow_methods(
                    self.r,
                    (reset && i == 0) as i32,
                    c.as_ptr(),
                    std::ptr::null::<c_char>(),
                );
            }
        }
    }

    pub fn auth_type(&self) -> Option<Vec<u8>> {
        // SAFETY: alive; copied at once.
        unsafe { cstr(sys::ap_auth_type(self.r)) }.map(<[u8]>::to_vec)
    }

    pub fn auth_name(&self) -> Option<Vec<u8>> {
        // SAFETY: alive; copied at once.
        unsafe { cstr(sys::ap_auth_name(self.r)) }.map(<[u8]>::to_vec)
    }

    pub fn some_auth_required(&self) -> bool {
        // SAFETY: alive.
        unsafe { sys::ap_some_auth_required(self.r) != 0 }
    }

    pub fn is_initial_req(&self) -> bool {
        // SAFETY: alive.
        unsafe { sys::ap_is_initial_req(self.r) != 0 }
    }

    pub fn is_https(&self) -> bool {
        // SAFETY: alive.
        unsafe { sys::modpy_ssl_is_https(self.rec().connection) != 0 }
    }

    pub fn ssl_var_lookup(&self, name: &[u8]) -> Option<Vec<u8>> {
        let n = c_string(name);
        let r = self.rec();
        // SAFETY: alive; result in the request pool, copied at once.
        unsafe {
            cstr(sys::modpy_ssl_var_lookup(
                r.pool,
                r.server,
                r.connection,
                self.r,
                n.as_ptr(),
            ))
        }
        .map(<[u8]>::to_vec)
    }

    /// Runs `f` when the request's pool is cleaned up (after the request is logged).
    pub fn register_cleanup(&self, f: Box<dyn FnOnce() + Send>) {
        // SAFETY: the request pool is alive.
        unsafe { super::pool::register_cleanup(self.pool(), f) }
    }

    pub fn log_error(&self, level: i32, status: i32, msg: &str) {
        super::log::rerror(self.r, level, status, msg);
    }

    pub fn raw(&self) -> *mut sys::request_rec {
        self.r
    }
}

//! server_rec: a (virtual) server of the configuration.

use super::pool::{cstr, str_array, Gone};
use crate::sys;

/// server_recs live in the configuration pool: in a child, until the child exits, so a
/// Server handle needs no liveness flag.
#[derive(Clone, Copy)]
pub struct Server {
    s: *mut sys::server_rec,
}

// SAFETY: server_recs are read-only after configuration and live for the child's lifetime.
unsafe impl Send for Server {}
unsafe impl Sync for Server {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerStr {
    ServerHostname,
    ServerAdmin,
    ErrorFname,
    DefnName,
    Path,
    ServerScheme,
}

impl Server {
    /// # Safety
    /// `s` must be a server_rec of the running configuration.
    pub unsafe fn from_raw(s: *mut sys::server_rec) -> Server {
        Server { s }
    }

    pub fn get(&self) -> Result<&sys::server_rec, Gone> {
        // SAFETY: see the type's comment.
        Ok(unsafe { &*self.s })
    }

    pub fn str_field(&self, f: ServerStr) -> Option<&[u8]> {
        // SAFETY: see the type's comment.
        let s = unsafe { &*self.s };
        let p = match f {
            ServerStr::ServerHostname => s.server_hostname,
            ServerStr::ServerAdmin => s.server_admin,
            ServerStr::ErrorFname => s.error_fname,
            ServerStr::DefnName => s.defn_name as *mut _,
            ServerStr::Path => s.path as *mut _,
            ServerStr::ServerScheme => s.server_scheme as *mut _,
        };
        // SAFETY: NULL or NUL-terminated configuration strings.
        unsafe { cstr(p) }
    }

    /// The loglevel of this server's main log config.
    pub fn loglevel(&self) -> i32 {
        // SAFETY: see the type's comment.
        unsafe { (*self.s).log.level }
    }

    /// ServerAlias names without wildcards (s->names) or with them (s->wild_names).
    pub fn names(&self, wild: bool) -> Vec<String> {
        // SAFETY: see the type's comment.
        let a = unsafe {
            if wild {
                (*self.s).wild_names
            } else {
                (*self.s).names
            }
        };
        // SAFETY: an array of `char *` built by the configuration, which outlives `self`.
        unsafe { str_array(a) }
            .into_iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    pub fn next(&self) -> Option<Server> {
        // SAFETY: see the type's comment.
        let n = unsafe { (*self.s).next };
        (!n.is_null()).then_some(Server { s: n })
    }

    pub fn config(&self) -> &crate::config::ServerConfig {
        // SAFETY: see the type's comment.
        unsafe { super::config::server_config(self.s) }
    }

    /// mod_py's directives at server level (outside any section): s->lookup_defaults.
    pub fn dir_config(&self) -> &crate::config::DirConfig {
        // SAFETY: see the type's comment.
        unsafe { super::config::dir_config((*self.s).lookup_defaults) }
    }

    pub fn log_error(&self, level: i32, status: i32, msg: &str) {
        super::log::error(self.s, level, status, msg);
    }

    pub fn as_ptr(&self) -> *mut sys::server_rec {
        self.s
    }
}

/// ap_server_root: the ServerRoot directory.
pub fn server_root() -> String {
    // SAFETY: a configuration string set before any child starts.
    unsafe { cstr(sys::modpy_server_root()) }
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// ap_exists_config_define(name): whether `-D name` was given to httpd.
pub fn exists_config_define(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: reads the server's define list with a NUL-terminated name.
    unsafe { sys::modpy_exists_config_define(c.as_ptr()) != 0 }
}

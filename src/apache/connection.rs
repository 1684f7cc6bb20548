//! conn_rec: the client connection a request arrived on.

use super::module::{get_module_config, set_module_config};
use super::pool::{cstr, pool_box, Alive, Gone, Liveness};
use super::server::Server;
use super::table::Table;
use crate::sys;
use std::ffi::c_void;

#[derive(Clone)]
pub struct Connection {
    c: *mut sys::conn_rec,
    live: Liveness,
}

// SAFETY: all access checks `live` first, which holds off the pool's destruction.
unsafe impl Send for Connection {}
unsafe impl Sync for Connection {}

/// conn_rec's string fields, by their C names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnStr {
    ClientIp,
    RemoteHost,
    RemoteLogname,
    LocalIp,
    LocalHost,
    LogId,
}

impl Connection {
    /// One liveness flag per connection, kept in c->conn_config: a keep-alive connection
    /// serving thousands of requests registers one cleanup, not one per request.
    ///
    /// # Safety
    /// `c` must be a live conn_rec.
    pub unsafe fn from_raw(c: *mut sys::conn_rec) -> Connection {
        // SAFETY: c is live; conn_config is its per-connection vector.
        unsafe {
            let slot = get_module_config((*c).conn_config) as *const Liveness;
            if !slot.is_null() {
                return Connection {
                    c,
                    live: (*slot).clone(),
                };
            }
            let live = Liveness::tied_to((*c).pool, "connection");
            set_module_config(
                (*c).conn_config,
                pool_box((*c).pool, live.clone()) as *mut c_void,
            );
            Connection { c, live }
        }
    }

    pub fn get(&self) -> Result<ConnectionRef<'_>, Gone> {
        let alive = self.live.check()?;
        Ok(ConnectionRef {
            c: self.c,
            owner: self,
            _alive: alive,
        })
    }
}

pub struct ConnectionRef<'a> {
    c: *mut sys::conn_rec,
    owner: &'a Connection,
    _alive: Alive<'a>,
}

impl ConnectionRef<'_> {
    pub fn rec(&self) -> &sys::conn_rec {
        // SAFETY: alive while self exists.
        unsafe { &*self.c }
    }

    pub fn str_field(&self, f: ConnStr) -> Option<&[u8]> {
        let c = self.rec();
        let p = match f {
            ConnStr::ClientIp => c.client_ip,
            ConnStr::RemoteHost => c.remote_host,
            ConnStr::RemoteLogname => c.remote_logname,
            ConnStr::LocalIp => c.local_ip,
            ConnStr::LocalHost => c.local_host,
            ConnStr::LogId => c.log_id as *mut _,
        };
        // SAFETY: NULL or NUL-terminated strings of the connection pool, alive.
        unsafe { cstr(p) }
    }

    /// Ports of the local and client addresses.
    pub fn ports(&self) -> (u16, u16) {
        let c = self.rec();
        // SAFETY: the sockaddrs live in the connection pool.
        unsafe {
            let l = c.local_addr.as_ref().map_or(0, |a| a.port);
            let r = c.client_addr.as_ref().map_or(0, |a| a.port);
            (l, r)
        }
    }

    pub fn notes(&self) -> Table {
        // SAFETY: the notes table lives in the connection pool that `live` tracks.
        unsafe { Table::from_raw(self.rec().notes, self.owner.live.clone()) }
    }

    pub fn base_server(&self) -> Server {
        // SAFETY: server_recs outlive connections.
        unsafe { Server::from_raw(self.rec().base_server) }
    }

    pub fn aborted(&self) -> bool {
        self.rec().aborted != 0
    }

    pub fn log_error(&self, level: i32, status: i32, msg: &str) {
        super::log::cerror(self.c, level, status, msg);
    }

    // ---- issue 4 (filters, connection handler) ----

    /// The connection's liveness flag (cleared when its pool goes).
    pub fn liveness(&self) -> super::pool::Liveness {
        self.owner.live.clone()
    }

    pub fn as_ptr(&self) -> *mut sys::conn_rec {
        self.c
    }
}

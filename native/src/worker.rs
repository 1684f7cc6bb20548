//! The worker's connection loop, as daemon.py's pure-Python `Worker` runs it (that one is the
//! fallback where this module does not load, e.g. PyPy): one epoll holds the listener and
//! every idle connection, each armed for one event at a time. One thread, the leader, waits on
//! it and serves request after request; the others stand by, asleep on a timer that is always
//! due within 2 x `promote_after` of the start of the leader's request. A request that runs
//! longer than `promote_after` wakes one of them, which takes the lead. The GIL is taken only
//! to build the environ and run the WSGI layer (`serve`); waiting, accepting, the handshake
//! and reading the request happen without it.

use crate::conn::{Conn, ConnCore};
use crate::protocol::{self, Error, Kind, SECRET_LEN};
use crate::strcache::Strings;
use crate::{log, sys};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long a wait lasts before the loop looks at its state again.
const POLL: Duration = Duration::from_millis(500);

fn thread_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
    ID.with(|id| *id)
}

struct Standby {
    epoll: OwnedFd,
    timer: OwnedFd,
}

#[derive(Default)]
struct State {
    listener: Option<Arc<OwnedFd>>,
    conns: HashMap<RawFd, Arc<ConnCore>>,
    /// Connections a thread is serving (not in the epoll until re-armed).
    busy: HashSet<RawFd>,
    leader: Option<u64>,
    /// When the leader's current request started (None: the leader is idle).
    lead_start: Option<Duration>,
    /// When the standby timer is due (None: not set, or fired and read).
    deadline: Option<Duration>,
    /// Thread -> start of the request it serves.
    active: HashMap<u64, Duration>,
    requests: u64,
    last_activity: Duration,
    stopping: bool,
}

impl State {
    /// Drops a connection: out of the epoll, shut down (closed when the last `Conn` goes).
    fn forget(&mut self, epoll: RawFd, fd: RawFd) {
        if let Some(conn) = self.conns.remove(&fd) {
            let _ = sys::epoll_ctl(epoll, libc::EPOLL_CTL_DEL, fd, 0);
            sys::shutdown(conn.fd());
        }
    }
}

struct Shared {
    epoll: OwnedFd,
    standby: Option<Standby>,
    /// An eventfd in both epolls, level-triggered: written once by close(), it wakes every
    /// waiting thread, and each leaves.
    wake: OwnedFd,
    closed: AtomicBool,
    secret: [u8; SECRET_LEN],
    apache_uid: i64,
    promote_after: Duration,
    serve: Py<PyAny>,
    state: Mutex<State>,
}

#[pyclass(frozen, module = "modpy._native")]
pub struct Loop {
    shared: Arc<Shared>,
}

#[pymethods]
impl Loop {
    /// `listener`: the group's listening socket (the loop owns it from now on). `serve(conn,
    /// environ) -> bool` runs one request; False: the connection is not to be used again.
    #[new]
    fn new(
        listener: RawFd,
        secret: &[u8],
        apache_uid: i64,
        threads: usize,
        promote_after: f64,
        serve: Py<PyAny>,
    ) -> PyResult<Loop> {
        let secret: [u8; SECRET_LEN] = secret
            .try_into()
            .map_err(|_| pyo3::exceptions::PyValueError::new_err("the secret is 32 bytes"))?;
        let listener = sys::own(listener)?;
        sys::set_nonblocking(listener.as_raw_fd())?;
        let epoll = sys::epoll_create()?;
        let wake = sys::eventfd()?;
        sys::epoll_ctl(
            epoll.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            wake.as_raw_fd(),
            sys::IN,
        )?;
        sys::epoll_ctl(
            epoll.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            listener.as_raw_fd(),
            sys::IN_ONESHOT,
        )?;
        let standby = if threads > 1 {
            let sb = Standby {
                epoll: sys::epoll_create()?,
                timer: sys::timerfd_create()?,
            };
            let (e, t) = (sb.epoll.as_raw_fd(), sb.timer.as_raw_fd());
            sys::epoll_ctl(e, libc::EPOLL_CTL_ADD, t, sys::IN_ONESHOT)?;
            sys::epoll_ctl(e, libc::EPOLL_CTL_ADD, wake.as_raw_fd(), sys::IN)?;
            Some(sb)
        } else {
            None
        };
        Ok(Loop {
            shared: Arc::new(Shared {
                epoll,
                standby,
                wake,
                closed: AtomicBool::new(false),
                secret,
                apache_uid,
                promote_after: Duration::from_secs_f64(promote_after),
                serve,
                state: Mutex::new(State {
                    listener: Some(Arc::new(listener)),
                    last_activity: sys::monotonic(),
                    ..State::default()
                }),
            }),
        })
    }

    /// Serves (without the GIL but for the WSGI layer) until close().
    fn run_thread(&self, py: Python<'_>) {
        let shared = self.shared.clone();
        py.detach(move || shared.run_thread());
    }

    /// Stops taking work: the listener is closed and idle connections are dropped
    /// (connections accepted but not yet greeted carry a request on its way: they are served).
    fn stop(&self) {
        let s = &self.shared;
        let mut st = s.state();
        st.stopping = true;
        if let Some(l) = st.listener.take() {
            let _ = sys::epoll_ctl(s.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, l.as_raw_fd(), 0);
        }
        let idle: Vec<RawFd> = st
            .conns
            .iter()
            .filter(|(fd, c)| c.is_greeted() && !st.busy.contains(fd))
            .map(|(fd, _)| *fd)
            .collect();
        for fd in idle {
            st.forget(s.epoll.as_raw_fd(), fd);
        }
    }

    /// Ends run_thread() in every thread (at once for those waiting, after their request
    /// for the others).
    fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        sys::write_counter(self.shared.wake.as_raw_fd());
    }

    /// Requests in flight or on their way (a connection being served, or not yet greeted).
    fn pending(&self) -> usize {
        let st = self.shared.state();
        let waiting = st
            .conns
            .iter()
            .filter(|(fd, c)| st.busy.contains(fd) || !c.is_greeted())
            .count();
        waiting.max(st.active.len())
    }

    /// Seconds the oldest running request has run, if any.
    fn oldest_age(&self) -> Option<f64> {
        let st = self.shared.state();
        let now = sys::monotonic();
        st.active
            .values()
            .min()
            .map(|s| now.saturating_sub(*s).as_secs_f64())
    }

    /// Seconds since the last request ended (or the loop started).
    fn idle_for(&self) -> f64 {
        let st = self.shared.state();
        sys::monotonic()
            .saturating_sub(st.last_activity)
            .as_secs_f64()
    }

    /// Requests started so far.
    #[getter]
    fn requests(&self) -> u64 {
        self.shared.state().requests
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn run_thread(&self) {
        let me = thread_id();
        while !self.closed() {
            if self.standby.is_some() && !self.lead(me) {
                continue;
            }
            let fd = match sys::epoll_wait_one(self.epoll.as_raw_fd(), POLL) {
                Ok(Some(fd)) => fd,
                Ok(None) => continue,
                Err(e) => {
                    log::error(&format!("epoll_wait failed: {e}; a worker thread ends"));
                    break;
                }
            };
            if fd == self.wake.as_raw_fd() {
                continue;
            }
            let (listener, conn) = {
                let mut st = self.state();
                // Not one a thread is serving: an event that waited while stop() dropped its
                // connection may find the fd's number already taken by a newer connection,
                // which its own event also announces.
                let conn = st.conns.get(&fd).cloned().filter(|_| st.busy.insert(fd));
                let l = st.listener.clone().filter(|l| l.as_raw_fd() == fd);
                (l, conn)
            };
            if let Some(l) = listener {
                self.accept(&l);
            } else if let Some(conn) = conn {
                // Only the leader's requests count for the standby timer: a thread that lost
                // the lead while it waited serves what it got without promoting anyone.
                let leading = self.standby.is_some() && self.start_lead(me);
                self.serve_connection(fd, &conn, me);
                if leading {
                    let mut st = self.state();
                    if st.leader == Some(me) {
                        st.lead_start = None;
                    }
                }
            }
        }
        let mut st = self.state();
        if st.leader == Some(me) {
            st.leader = None;
        }
    }

    /// The leader starts a request: makes sure the timer fires between promote_after and
    /// twice that from now. False if this thread is not the leader.
    fn start_lead(&self, me: u64) -> bool {
        let Some(sb) = &self.standby else {
            return false;
        };
        let now = sys::monotonic();
        let mut st = self.state();
        if st.leader != Some(me) {
            return false;
        }
        st.lead_start = Some(now);
        if st.deadline.is_none_or(|d| d < now + self.promote_after) {
            let at = now + 2 * self.promote_after;
            match sys::timerfd_set_at(sb.timer.as_raw_fd(), at) {
                Ok(()) => st.deadline = Some(at),
                Err(e) => {
                    drop(st);
                    log::error(&format!("cannot set the standby timer: {e}"));
                }
            }
        }
        true
    }

    /// True when this thread is (or has just become) the leader; otherwise it stands by until
    /// the leader's request outlasts the timer (or POLL passes).
    fn lead(&self, me: u64) -> bool {
        let Some(sb) = &self.standby else {
            return true;
        };
        {
            let mut st = self.state();
            if st.leader.is_none() {
                st.leader = Some(me);
            }
            if st.leader == Some(me) {
                return true;
            }
        }
        match sys::epoll_wait_one(sb.epoll.as_raw_fd(), POLL) {
            Ok(Some(fd)) if fd == sb.timer.as_raw_fd() => {}
            Ok(_) => return false,
            Err(_) => {
                std::thread::sleep(POLL); // not expected: do not spin
                return false;
            }
        }
        // The timer fired: the leader is idle (nothing to do), or in a request that has run
        // for promote_after (this thread takes the lead), or in a younger one (the timer is
        // set for when that one will have).
        let mut promoted = false;
        let mut failed = None;
        {
            let mut st = self.state();
            if sys::read_counter(sb.timer.as_raw_fd()) {
                st.deadline = None;
                if let Some(start) = st.lead_start {
                    if sys::monotonic().saturating_sub(start) >= self.promote_after {
                        st.leader = Some(me);
                        st.lead_start = None;
                        promoted = true;
                    } else {
                        let at = start + self.promote_after;
                        match sys::timerfd_set_at(sb.timer.as_raw_fd(), at) {
                            Ok(()) => st.deadline = Some(at),
                            Err(e) => failed = Some(e),
                        }
                    }
                }
            }
        }
        if let Some(e) = failed {
            log::error(&format!("cannot set the standby timer: {e}"));
        }
        let (e, t) = (sb.epoll.as_raw_fd(), sb.timer.as_raw_fd());
        if let Err(e) = sys::epoll_ctl(e, libc::EPOLL_CTL_MOD, t, sys::IN_ONESHOT) {
            log::error(&format!(
                "cannot re-arm the standby timer (slow requests now hold up the others): {e}"
            ));
        }
        promoted
    }

    fn accept(&self, listener: &Arc<OwnedFd>) {
        let lfd = listener.as_raw_fd();
        loop {
            let sock = match sys::accept(lfd) {
                Ok(Some(sock)) => sock,
                Ok(None) => break,
                Err(e) => {
                    if !self.state().stopping {
                        // Out of descriptors or memory: the waiting connection would make
                        // epoll fire again at once; wait a little (and log once per turn).
                        log::error(&format!("accept() on the daemon socket failed: {e}"));
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    break;
                }
            };
            match sys::peer_uid(&sock) {
                Ok(uid) if uid == 0 || i64::from(uid) == self.apache_uid => {}
                Ok(uid) => {
                    log::error(&format!(
                        "refused a connection from uid {uid} (only Apache's uid {} may connect)",
                        self.apache_uid
                    ));
                    continue;
                }
                Err(e) => {
                    log::error(&format!(
                        "cannot check the peer of a new connection ({e}); closing it"
                    ));
                    continue;
                }
            }
            let fd = sock.as_raw_fd();
            let mut st = self.state();
            if !st
                .listener
                .as_ref()
                .is_some_and(|l| Arc::ptr_eq(l, listener))
            {
                break; // stopped meanwhile: the Apache side sends the request again elsewhere
            }
            st.conns.insert(fd, Arc::new(ConnCore::new(sock)));
            if sys::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd,
                sys::IN_ONESHOT,
            )
            .is_err()
            {
                st.conns.remove(&fd);
            }
        }
        let st = self.state();
        if st
            .listener
            .as_ref()
            .is_some_and(|l| Arc::ptr_eq(l, listener))
        {
            let _ = sys::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_MOD,
                lfd,
                sys::IN_ONESHOT,
            );
        }
    }

    /// Serves the requests waiting on conn, then re-arms it (or drops it).
    fn serve_connection(&self, fd: RawFd, conn: &Arc<ConnCore>, me: u64) {
        let keep = loop {
            match self.serve(conn, me) {
                // A request already read into the buffer will not make epoll fire.
                Ok(true) if conn.io().buffered() => continue,
                Ok(keep) => break keep,
                Err(Error::Closed | Error::Io(_)) => break false,
                Err(Error::Protocol(m)) => {
                    log::error(&format!("closing a connection: {m}"));
                    break false;
                }
            }
        };
        let epoll = self.epoll.as_raw_fd();
        let mut st = self.state();
        st.busy.remove(&fd);
        if keep && !st.stopping {
            if sys::epoll_ctl(epoll, libc::EPOLL_CTL_MOD, fd, sys::IN_ONESHOT).is_err() {
                st.forget(epoll, fd);
            }
        } else {
            st.forget(epoll, fd);
        }
    }

    /// Reads and serves one request; Ok(true) if the connection can carry another.
    fn serve(&self, conn: &Arc<ConnCore>, me: u64) -> Result<bool, Error> {
        let fd = conn.fd();
        let mut io = conn.io();
        let mut frame = io.read_frame(fd, false)?.ok_or(Error::Closed)?;
        if !conn.is_greeted() {
            if frame.kind != Kind::Hello {
                return Err(Error::Protocol(
                    "the connection did not start with HELLO".into(),
                ));
            }
            protocol::check_hello(io.payload(&frame), &self.secret)?;
            conn.greeted.store(true, Ordering::Relaxed);
            io.queue_small(Kind::HelloOk, &protocol::VERSION.to_be_bytes());
            conn.send_blocking(&mut io, b"")?;
            frame = io.read_frame(fd, false)?.ok_or(Error::Closed)?;
        }
        if frame.kind != Kind::Request {
            return Err(Error::Protocol(format!(
                "expected REQUEST, got frame kind {}",
                frame.kind as u8
            )));
        }
        // Copied out (a few hundred bytes) so that the connection is free for the WSGI layer.
        let payload = io.payload(&frame).to_vec();
        drop(io);
        let pairs = protocol::pairs(&payload)?;
        {
            let mut st = self.state();
            st.active.insert(me, sys::monotonic());
            st.requests += 1;
        }
        let keep = Python::attach(|py| {
            let environ = PyDict::new(py);
            let mut strings = Strings::lock(py);
            for (k, v) in &pairs {
                environ.set_item(strings.get(py, k), strings.get(py, v))?;
            }
            drop(strings);
            let conn = Py::new(py, Conn::for_request(conn.clone()))?;
            let keep = self.serve.call1(py, (conn.clone_ref(py), environ));
            conn.get().end();
            keep?.extract::<bool>(py)
        })
        .unwrap_or_else(|e: PyErr| {
            log::exception("internal error serving a request", e);
            false
        });
        let mut st = self.state();
        st.active.remove(&me);
        st.last_activity = sys::monotonic();
        Ok(keep)
    }
}

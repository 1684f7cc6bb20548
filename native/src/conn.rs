//! One Apache child's connection to the worker: frames in both directions
//! (src/daemon/protocol.rs). The loop reads requests from it without the GIL; the WSGI layer
//! (Python) reads body frames and queues response frames through `Conn`, keeping the GIL for
//! what does not wait and letting go of it for what does.

use crate::protocol::{self, Error, Kind};
use crate::sys;
use pyo3::exceptions::{PyEOFError, PyException, PyOSError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyType};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Receive buffer: a whole small frame fits (a request's environ, a body chunk asked for in
/// pieces of up to this much); a larger one is read into its own buffer.
const BUF: usize = 64 * 1024;
/// The receive buffer starts this small (an environ is 1-2 KiB) and grows to BUF when a frame
/// needs it: Apache keeps many idle connections to each worker.
const BUF_START: usize = 4 * 1024;
/// A payload up to this long is copied into the send buffer (one write for a small
/// response); a longer one is sent at once from the caller's bytes.
const COPY_MAX: usize = 16 * 1024;

/// daemon.py's ProtocolError, raised for a malformed frame (set by `setup`).
pub static PROTOCOL_ERROR: OnceLock<Py<PyType>> = OnceLock::new();

pub struct Io {
    buf: Vec<u8>,
    /// The unread bytes are buf[lo..hi].
    lo: usize,
    hi: usize,
    out: Vec<u8>,
}

/// A frame read: its kind and where its payload is.
pub struct Frame {
    pub kind: Kind,
    payload: Payload,
}

enum Payload {
    /// In the receive buffer, at [start..end]: valid until the next read.
    Buf(usize, usize),
    Owned(Vec<u8>),
}

impl Io {
    pub fn payload<'a>(&'a self, f: &'a Frame) -> &'a [u8] {
        match &f.payload {
            Payload::Buf(a, b) => &self.buf[*a..*b],
            Payload::Owned(v) => v,
        }
    }

    /// Receives until `n` unread bytes are buffered (n <= BUF). Ok(false): `nowait` and
    /// nothing more is there now; Err(Closed) at end of file with nothing unread.
    fn fill(&mut self, fd: RawFd, n: usize, nowait: bool) -> Result<bool, Error> {
        while self.hi - self.lo < n {
            if self.lo + n > self.buf.len() {
                self.buf.copy_within(self.lo..self.hi, 0);
                self.hi -= self.lo;
                self.lo = 0;
                if n > self.buf.len() {
                    let size = n.max(2 * self.buf.len()).min(BUF);
                    self.buf.resize(size, 0);
                }
            }
            match sys::recv(fd, &mut self.buf[self.hi..], nowait) {
                // End of file, before a frame or inside one: the peer is gone either way.
                Ok(0) => return Err(Error::Closed),
                Ok(k) => self.hi += k,
                Err(e) if nowait && e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(Error::Io(e)),
            }
        }
        Ok(true)
    }

    /// Reads the next frame. With `nowait`, None if it is not all there yet (what came is
    /// kept) or if it is too large for the buffer (read it without `nowait`).
    pub fn read_frame(&mut self, fd: RawFd, nowait: bool) -> Result<Option<Frame>, Error> {
        if !self.fill(fd, 8, nowait)? {
            return Ok(None);
        }
        let (kind, len) =
            protocol::read_header(&mut &self.buf[self.lo..self.lo + 8]).map_err(|e| match e {
                Error::Protocol(m) => Error::Protocol(format!("bad frame header ({m})")),
                e => e,
            })?;
        let len = len as usize;
        if 8 + len <= BUF {
            if !self.fill(fd, 8 + len, nowait)? {
                return Ok(None);
            }
            let start = self.lo + 8;
            self.lo += 8 + len;
            if self.lo == self.hi {
                // Empty: the next read starts at the front (after this payload is used).
                self.lo = 0;
                self.hi = 0;
            }
            return Ok(Some(Frame {
                kind,
                payload: Payload::Buf(start, start + len),
            }));
        }
        if nowait {
            return Ok(None);
        }
        let mut out = vec![0u8; len];
        let have = (self.hi - self.lo - 8).min(len);
        out[..have].copy_from_slice(&self.buf[self.lo + 8..self.lo + 8 + have]);
        self.lo = 0;
        self.hi = 0;
        let mut got = have;
        while got < len {
            match sys::recv(fd, &mut out[got..], false) {
                Ok(0) => return Err(Error::Closed),
                Ok(k) => got += k,
                Err(e) => return Err(Error::Io(e)),
            }
        }
        Ok(Some(Frame {
            kind,
            payload: Payload::Owned(out),
        }))
    }

    pub fn buffered(&self) -> bool {
        self.hi > self.lo
    }

    pub fn queue_small(&mut self, kind: Kind, payload: &[u8]) {
        self.out
            .extend_from_slice(&protocol::header(kind, payload.len()));
        self.out.extend_from_slice(payload);
    }

    /// Sends the send buffer and then `extra`; with `nowait`, as much as goes now, and how
    /// much of the whole that was.
    fn send(&mut self, fd: RawFd, extra: &[u8], nowait: bool) -> io::Result<usize> {
        let total = self.out.len() + extra.len();
        let mut sent = 0;
        while sent < total {
            let r = if sent < self.out.len() {
                sys::sendv(fd, &[&self.out[sent..], extra], nowait)
            } else {
                sys::sendv(fd, &[&extra[sent - self.out.len()..]], nowait)
            };
            match r {
                Ok(k) => sent += k,
                Err(e) if nowait && e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }
}

/// The shared part of a connection: the loop's and every `Conn` object's for it.
pub struct ConnCore {
    fd: OwnedFd,
    io: Mutex<Io>,
    pub greeted: AtomicBool,
}

impl ConnCore {
    pub fn new(fd: OwnedFd) -> ConnCore {
        ConnCore {
            fd,
            io: Mutex::new(Io {
                buf: vec![0; BUF_START],
                lo: 0,
                hi: 0,
                out: Vec::new(),
            }),
            greeted: AtomicBool::new(false),
        }
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn io(&self) -> MutexGuard<'_, Io> {
        self.io.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends what is queued, then `extra` (blocking).
    pub fn send_blocking(&self, io: &mut Io, extra: &[u8]) -> io::Result<()> {
        io.send(self.fd(), extra, false)?;
        io.out.clear();
        Ok(())
    }

    pub fn is_greeted(&self) -> bool {
        self.greeted.load(Ordering::Relaxed)
    }
}

pub fn to_pyerr(e: Error) -> PyErr {
    match e {
        Error::Closed => PyEOFError::new_err("the Apache child closed the connection"),
        Error::Io(e) => e.into(),
        Error::Protocol(m) => Python::attach(|py| match PROTOCOL_ERROR.get() {
            Some(t) => PyErr::from_type(t.bind(py).clone(), m),
            None => PyException::new_err(m),
        }),
    }
}

fn over_error() -> PyErr {
    PyOSError::new_err(OVER)
}

/// The error of a Conn used after its request.
const OVER: &str = "the request this daemon connection served is over";

fn kind_of(k: u8) -> PyResult<Kind> {
    Kind::from_u8(k).ok_or_else(|| to_pyerr(Error::Protocol(format!("no frame kind {k}"))))
}

impl Conn {
    pub fn for_request(core: std::sync::Arc<ConnCore>) -> Conn {
        Conn {
            core,
            over: AtomicBool::new(false),
        }
    }

    /// The request is over: the object no longer reaches the connection.
    pub fn end(&self) {
        self.over.store(true, Ordering::Release);
    }

    fn live(&self) -> PyResult<&std::sync::Arc<ConnCore>> {
        if self.is_over() {
            return Err(over_error());
        }
        Ok(&self.core)
    }

    fn is_over(&self) -> bool {
        self.over.load(Ordering::Acquire)
    }

    /// The connection for a blocking half, which waited for it without the GIL: the request
    /// may have ended meanwhile (an application thread that outlived it).
    fn io_after_wait(&self) -> io::Result<MutexGuard<'_, Io>> {
        let io = self.core.io();
        if self.is_over() {
            return Err(io::Error::other(OVER));
        }
        Ok(io)
    }

    /// queue() for Rust callers (the native Response).
    pub fn queue_frame(&self, py: Python<'_>, kind: Kind, payload: &[u8]) -> PyResult<()> {
        let core = self.live()?;
        if payload.len() > protocol::MAX_FRAME as usize {
            return Err(to_pyerr(Error::Protocol("frame over MAX_FRAME".into())));
        }
        if payload.len() <= COPY_MAX {
            core.io().queue_small(kind, payload);
            return Ok(());
        }
        py.detach(|| {
            let mut io = self.io_after_wait()?;
            io.out
                .extend_from_slice(&protocol::header(kind, payload.len()));
            core.send_blocking(&mut io, payload)
        })?;
        Ok(())
    }

    pub fn flush_frames(&self, py: Python<'_>) -> PyResult<()> {
        self.send_raw(py, b"")
    }

    pub fn queued(&self) -> usize {
        self.core.io().out.len()
    }
}

/// A connection as the WSGI layer (daemon.py's handle, Input, Response) sees it, for one
/// request: once that is over (`end`), using it raises, as a Request kept past its request
/// does in embedded mode. (It would read the next request's frames, and wait for the GIL
/// while holding the connection the loop waits on.)
#[pyclass(frozen, module = "modpy._native")]
pub struct Conn {
    core: std::sync::Arc<ConnCore>,
    over: AtomicBool,
}

#[pymethods]
impl Conn {
    /// A connection over `fd` (a connected stream socket; the Conn owns it from now on).
    #[new]
    fn new(fd: RawFd) -> PyResult<Conn> {
        let core = std::sync::Arc::new(ConnCore::new(sys::own(fd)?));
        Ok(Conn::for_request(core))
    }

    fn fileno(&self) -> PyResult<RawFd> {
        Ok(self.live()?.fd())
    }

    /// The next frame: (kind, payload).
    fn read_frame<'py>(&self, py: Python<'py>) -> PyResult<(u8, Bound<'py, PyBytes>)> {
        let core = self.live()?;
        {
            let mut io = core.io();
            if let Some(f) = io.read_frame(core.fd(), true).map_err(to_pyerr)? {
                return Ok((f.kind as u8, PyBytes::new(py, io.payload(&f))));
            }
        }
        let (kind, payload) = py
            .detach(|| {
                let mut io = self.io_after_wait().map_err(Error::Io)?;
                let f = io.read_frame(core.fd(), false)?.ok_or(Error::Closed)?;
                let p = match f.payload {
                    Payload::Owned(v) => v,
                    Payload::Buf(..) => io.payload(&f).to_vec(),
                };
                Ok::<_, Error>((f.kind, p))
            })
            .map_err(to_pyerr)?;
        Ok((kind as u8, PyBytes::new(py, &payload)))
    }

    /// Adds a frame to what the next flush() sends; a large payload goes out at once.
    #[pyo3(signature = (kind, payload = b"".as_slice()))]
    fn queue(&self, py: Python<'_>, kind: u8, payload: &[u8]) -> PyResult<()> {
        self.queue_frame(py, kind_of(kind)?, payload)
    }

    /// Sends what queue() kept: at once if the socket has room, else without the GIL.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.send_raw(py, b"")
    }

    #[pyo3(signature = (kind, payload = b"".as_slice()))]
    fn send(&self, py: Python<'_>, kind: u8, payload: &[u8]) -> PyResult<()> {
        self.queue(py, kind, payload)?;
        self.flush(py)
    }

    /// Sends what is queued, then `data` as it is (no frame header: send_file's header and
    /// padding).
    fn send_raw(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let core = self.live()?;
        let mut io = core.io();
        if io.out.is_empty() && data.is_empty() {
            return Ok(());
        }
        let total = io.out.len() + data.len();
        let sent = io.send(core.fd(), data, true)?;
        if sent == total {
            io.out.clear();
            return Ok(());
        }
        // Keep only what is left of the buffer; the rest of `data` follows it.
        let from_out = sent.min(io.out.len());
        io.out.drain(..from_out);
        let rest = &data[sent - from_out..];
        drop(io);
        py.detach(|| core.send_blocking(&mut *self.io_after_wait()?, rest))?;
        Ok(())
    }

    /// Bytes queued and not yet sent.
    fn pending(&self) -> usize {
        self.queued()
    }

    /// Shuts the connection down (the loop drops it); nothing once the request is over.
    fn close(&self) {
        if !self.is_over() {
            sys::shutdown(self.core.fd());
        }
    }
}

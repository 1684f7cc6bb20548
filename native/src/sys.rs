//! The Linux calls the worker's loop makes (epoll, timerfd, eventfd, socket I/O), each a thin
//! safe wrapper returning `io::Result`. This file holds all of the crate's unsafe code.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn check_len(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(fd)?;
    // SAFETY: fd was just returned by the kernel and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Takes ownership of an fd handed over by Python (socket.detach()).
pub fn own(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only checks that fd is open; the caller gave up its ownership.
    check(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: as above: open, and owned by nothing else now.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: no pointers; flags are read and written back with O_NONBLOCK added.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) }).map(|_| ())
}

pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: no pointers; the result is checked.
    owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })
}

pub const IN_ONESHOT: u32 = (libc::EPOLLIN | libc::EPOLLONESHOT) as u32;
pub const IN: u32 = libc::EPOLLIN as u32;

/// epoll_ctl with the fd itself as the event's data.
pub fn epoll_ctl(epfd: RawFd, op: libc::c_int, fd: RawFd, events: u32) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events,
        u64: fd as u64,
    };
    // SAFETY: ev is a valid epoll_event for the duration of the call.
    check(unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) }).map(|_| ())
}

/// Waits for one event: the fd it is for, or None on timeout (or a signal).
pub fn epoll_wait_one(epfd: RawFd, timeout: Duration) -> io::Result<Option<RawFd>> {
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: room for exactly the one event asked for.
    let n = unsafe { libc::epoll_wait(epfd, &mut ev, 1, timeout.as_millis() as libc::c_int) };
    match check(n) {
        Ok(0) => Ok(None),
        Ok(_) => Ok(Some(ev.u64 as RawFd)),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn timerfd_create() -> io::Result<OwnedFd> {
    // SAFETY: no pointers; the result is checked.
    owned(unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    })
}

/// Now on CLOCK_MONOTONIC (std's Instant is opaque; the timer needs absolute values).
pub fn monotonic() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Sets a one-shot timer to fire at `at` (CLOCK_MONOTONIC); replaces any setting.
pub fn timerfd_set_at(fd: RawFd, at: Duration) -> io::Result<()> {
    let at = at.max(Duration::from_nanos(1)); // zero would disarm it
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: at.as_secs() as libc::time_t,
            tv_nsec: at.subsec_nanos() as libc::c_long,
        },
    };
    // SAFETY: spec is valid for the call; the old value is not asked for.
    check(unsafe {
        libc::timerfd_settime(fd, libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut())
    })
    .map(|_| ())
}

/// Reads a timerfd or eventfd counter: false if there was nothing to read (EAGAIN).
pub fn read_counter(fd: RawFd) -> bool {
    let mut n = 0u64;
    // SAFETY: reads at most 8 bytes into n.
    unsafe { libc::read(fd, (&mut n as *mut u64).cast(), 8) == 8 }
}

pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: no pointers; the result is checked.
    owned(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })
}

pub fn write_counter(fd: RawFd) {
    let n = 1u64;
    // SAFETY: writes the 8 bytes of n.
    unsafe { libc::write(fd, (&n as *const u64).cast(), 8) };
}

/// recv(2), retried on EINTR. `nowait`: MSG_DONTWAIT (WouldBlock if nothing is there).
pub fn recv(fd: RawFd, buf: &mut [u8], nowait: bool) -> io::Result<usize> {
    let flags = if nowait { libc::MSG_DONTWAIT } else { 0 };
    loop {
        // SAFETY: buf is valid for writes of buf.len() bytes.
        let r = check_len(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) });
        match r {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Sends from each buffer in turn (one sendmsg), without SIGPIPE, retried on EINTR; how
/// many bytes went. `nowait`: MSG_DONTWAIT.
pub fn sendv(fd: RawFd, bufs: &[&[u8]], nowait: bool) -> io::Result<usize> {
    let iov: Vec<libc::iovec> = bufs
        .iter()
        .map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: msghdr is plain data; zeroed is its empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iov.len() as _;
    let flags = libc::MSG_NOSIGNAL | if nowait { libc::MSG_DONTWAIT } else { 0 };
    loop {
        // SAFETY: msg points at iov, whose buffers outlive the call; the kernel only reads them.
        let r = check_len(unsafe { libc::sendmsg(fd, &msg, flags) });
        match r {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// accept4 on a non-blocking listener: the new (blocking, close-on-exec) socket, or None when
/// no connection is waiting.
pub fn accept(listener: RawFd) -> io::Result<Option<OwnedFd>> {
    loop {
        // SAFETY: no address is asked for (null pointers are allowed).
        let fd = unsafe {
            libc::accept4(
                listener,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        match owned(fd) {
            Ok(fd) => return Ok(Some(fd)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// The uid of the process at the other end of a UNIX socket (SO_PEERCRED).
pub fn peer_uid(fd: &OwnedFd) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are valid for writes and len is cred's size.
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    Ok(cred.uid)
}

/// Shuts a socket down both ways: the peer sees the end at once, though Python may still hold
/// the fd (it is closed when the last reference goes, so its number is never reused early).
pub fn shutdown(fd: RawFd) {
    // SAFETY: no pointers; an error (not connected) does not matter.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

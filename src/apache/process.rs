//! Processes, users and sockets for daemon mode: the unixd side of httpd (os/unix/unixd.c)
//! and what the monitor needs from the OS. Safe wrappers over fork/exec/setuid/waitpid/...;
//! the monitor (src/daemon/monitor.rs) is written on top of these alone.

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The uid and gid Apache's children run as (`User`/`Group`, unixd).
pub fn apache_ids() -> (u32, u32) {
    // SAFETY: reads two integers of ap_unixd_config, set while the config was read.
    unsafe {
        (
            crate::sys::modpy_unixd_user_id() as u32,
            crate::sys::modpy_unixd_group_id() as u32,
        )
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn getpid() -> i32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

#[derive(Debug, Clone)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub name: String,
}

/// A user by name or `#uid` (as Apache's `User` accepts).
pub fn lookup_user(name: &str) -> Option<User> {
    let mut buf = vec![0u8; 16384];
    // SAFETY: a zeroed passwd is a valid out-parameter; getpwnam_r/getpwuid_r write into
    // `pw` and `buf` only, and `res` points at `pw` on success.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut res: *mut libc::passwd = std::ptr::null_mut();
        let rc = if let Some(n) = name.strip_prefix('#') {
            let uid: u32 = n.parse().ok()?;
            libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut res)
        } else {
            let c = CString::new(name).ok()?;
            libc::getpwnam_r(
                c.as_ptr(),
                &mut pw,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut res,
            )
        };
        if rc != 0 || res.is_null() {
            return None;
        }
        Some(User {
            uid: pw.pw_uid,
            gid: pw.pw_gid,
            home: CStr::from_ptr(pw.pw_dir).to_string_lossy().into_owned(),
            name: CStr::from_ptr(pw.pw_name).to_string_lossy().into_owned(),
        })
    }
}

/// A group id by name or `#gid`.
pub fn lookup_group(name: &str) -> Option<u32> {
    if let Some(n) = name.strip_prefix('#') {
        return n.parse().ok();
    }
    let c = CString::new(name).ok()?;
    let mut buf = vec![0u8; 16384];
    // SAFETY: as in lookup_user, with getgrnam_r.
    unsafe {
        let mut gr: libc::group = std::mem::zeroed();
        let mut res: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrnam_r(
            c.as_ptr(),
            &mut gr,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut res,
        );
        if rc != 0 || res.is_null() {
            return None;
        }
        Some(gr.gr_gid)
    }
}

pub enum Fork {
    Parent(i32),
    Child,
}

/// fork(2). In the child only async-signal-safe work is sound until exec or _exit if other
/// threads existed; the Apache parent and the monitor are single-threaded.
pub fn fork() -> std::io::Result<Fork> {
    // SAFETY: fork has no memory-safety preconditions; callers are single-threaded.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// Ends this process at once: no atexit handlers, no pool cleanups, no stdio flush (a forked
/// copy of Apache must not run the parent's cleanups).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

pub fn kill(pid: i32, sig: i32) -> bool {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// From a waitpid() status.
    pub fn from_status(status: i32) -> Exit {
        if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit status {c}"),
            Exit::Signal(s) => write!(f, "signal {s} ({})", signal_name(*s)),
        }
    }
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGINT => "SIGINT",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGBUS => "SIGBUS",
        _ => "signal",
    }
}

/// Reaps one exited child without blocking.
pub fn reap_any() -> Option<(i32, Exit)> {
    let mut status = 0;
    // SAFETY: status is a valid out-pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid <= 0 {
        return None;
    }
    Some((pid, Exit::from_status(status)))
}

static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, Ordering::SeqCst);
}

extern "C" fn on_chld(_: libc::c_int) {}

/// For a freshly forked monitor: default dispositions and an unblocked mask (Apache's
/// parent blocks and handles signals of its own), SIGTERM/SIGINT set a flag that
/// `terminated()` reads, SIGCHLD interrupts sleeps, and SIGTERM arrives when the parent dies.
pub fn monitor_signals() {
    // SAFETY: installs async-signal-safe handlers (they store an atomic) and resets the
    // mask of this single-threaded process.
    unsafe {
        libc::signal(libc::SIGQUIT, libc::SIG_DFL);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGUSR1, libc::SIG_IGN);
        libc::signal(libc::SIGWINCH, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGCHLD, on_chld as *const () as libc::sighandler_t);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
}

pub fn terminated() -> bool {
    TERM.load(Ordering::SeqCst)
}

/// The process name shown by ps/top (15 bytes at most).
pub fn set_name(name: &str) {
    if let Ok(c) = CString::new(&name.as_bytes()[..name.len().min(15)]) {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
        unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr()) };
    }
}

pub fn sleep(d: Duration) {
    // nanosleep, so that SIGCHLD cuts it short (std::thread::sleep would resume it).
    let ts = libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    };
    // SAFETY: ts is valid; the remaining time is not wanted.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}

/// A listening UNIX socket: created and bound by the Apache parent (as root, before it
/// drops privileges for the children), mode 0600, owned by `owner`.
pub fn unix_listener(path: &str, backlog: u32, owner: (u32, u32)) -> std::io::Result<RawFd> {
    use std::os::fd::IntoRawFd;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(path);
    let l = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    if is_root() {
        std::os::unix::fs::chown(path, Some(owner.0), Some(owner.1))?;
    }
    let fd = l.into_raw_fd();
    // SAFETY: fd is the listening socket just created; listen again only changes the backlog.
    unsafe {
        libc::listen(fd, backlog as libc::c_int);
    }
    Ok(fd)
}

pub fn close(fd: RawFd) {
    // SAFETY: the caller owns fd.
    unsafe { libc::close(fd) };
}

/// Whether fd is an open descriptor of a UNIX socket (one a previous generation left open).
pub fn is_socket(fd: RawFd) -> bool {
    // SAFETY: st is a valid out-parameter; fstat on a closed fd fails harmlessly.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK
    }
}

/// `n` random bytes from the kernel.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    let mut got = 0;
    while got < N {
        // SAFETY: writes at most N - got bytes into b[got..].
        let n = unsafe { libc::getrandom(b[got..].as_mut_ptr().cast(), N - got, 0) };
        if n > 0 {
            got += n as usize;
        }
    }
    b
}

/// What a daemon worker becomes before exec.
pub struct Spawn<'a> {
    pub program: &'a str,
    /// The whole argv, argv[0] included (ps shows it: display-name).
    pub args: &'a [String],
    pub env: &'a [(String, String)],
    /// The listening socket, passed as fd 3.
    pub listen_fd: RawFd,
    pub user: Option<&'a User>,
    pub gid: Option<u32>,
    pub supplementary: &'a [u32],
    pub chroot: Option<&'a str>,
    pub home: Option<&'a str>,
    pub umask: Option<u32>,
    pub cpu_seconds: u64,
    /// Nice value (0: unchanged) and `sched_setscheduler` policy, set while still root.
    pub cpu_priority: i32,
    pub cpu_policy: i32,
    pub memory_bytes: u64,
    pub virtual_memory_bytes: u64,
}

/// Forks and execs a daemon worker: rlimits, nice and scheduling policy, chroot, groups, gid,
/// uid (in that order, and any failure ends the child with a log line before anything runs as
/// the wrong user), then the working directory, umask, fd 3, and exec. Returns the child's pid.
pub fn spawn_worker(s: &Spawn<'_>, name: &str) -> std::io::Result<i32> {
    let cstr = |v: &str| CString::new(v).map_err(|_| std::io::ErrorKind::InvalidInput);
    let program = cstr(s.program)?;
    let argv_c: Vec<CString> = s.args.iter().map(|a| cstr(a)).collect::<Result<_, _>>()?;
    let env_c: Vec<CString> = s
        .env
        .iter()
        .map(|(k, v)| cstr(&format!("{k}={v}")))
        .collect::<Result<_, _>>()?;
    let chroot_c = s.chroot.map(cstr).transpose()?;
    let home_c = s.home.map(cstr).transpose()?;
    let user_c = s.user.map(|u| cstr(&u.name)).transpose()?;
    let mut argv: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env_c.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    let name = name.to_string();
    match fork()? {
        Fork::Parent(pid) => Ok(pid),
        Fork::Child => {
            let fail = |what: &str| -> ! {
                let err = std::io::Error::last_os_error();
                eprintln!(
                    "{} mod_py: daemon process '{name}' (pid {}): {what}: {err}; not starting it",
                    log_prefix("crit"),
                    getpid()
                );
                exit_now(1)
            };
            // SAFETY: the single-threaded monitor just forked; every pointer passed below
            // was built before the fork and stays alive until exec or _exit.
            unsafe {
                let limit = |res, v: u64| {
                    if v > 0 {
                        let l = libc::rlimit {
                            rlim_cur: v,
                            rlim_max: v,
                        };
                        libc::setrlimit(res, &l) == 0
                    } else {
                        true
                    }
                };
                if !limit(libc::RLIMIT_CPU, s.cpu_seconds)
                    || !limit(libc::RLIMIT_DATA, s.memory_bytes)
                    || !limit(libc::RLIMIT_AS, s.virtual_memory_bytes)
                {
                    fail("cannot set resource limits");
                }
                // As mod_wsgi does for cpu-priority: a failure is logged, the worker starts.
                let warn = |what: &str| {
                    let err = std::io::Error::last_os_error();
                    eprintln!(
                        "{} mod_py: daemon process '{name}' (pid {}): {what}: {err}",
                        log_prefix("warn"),
                        getpid()
                    );
                };
                if s.cpu_priority != 0
                    && libc::setpriority(libc::PRIO_PROCESS, 0, s.cpu_priority) != 0
                {
                    warn(&format!("cannot set cpu-priority={}", s.cpu_priority));
                }
                let param = libc::sched_param { sched_priority: 0 };
                if s.cpu_policy != libc::SCHED_OTHER
                    && libc::sched_setscheduler(0, s.cpu_policy, &param) != 0
                {
                    warn("cannot set cpu-policy");
                }
                if let Some(dir) = &chroot_c {
                    if libc::chroot(dir.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                        fail("cannot chroot");
                    }
                }
                if is_root() {
                    let gid = s.gid.or(s.user.map(|u| u.gid));
                    if let (Some(u), Some(name)) = (s.user, &user_c) {
                        if libc::initgroups(name.as_ptr(), gid.unwrap_or(u.gid)) != 0 {
                            fail("cannot initgroups");
                        }
                    }
                    if !s.supplementary.is_empty() {
                        let mut groups: Vec<libc::gid_t> = s.supplementary.to_vec();
                        if let Some(g) = gid {
                            groups.push(g);
                        }
                        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
                            fail("cannot set the supplementary groups");
                        }
                    }
                    if let Some(g) = gid {
                        if libc::setgid(g) != 0 {
                            fail(&format!("cannot switch to group {g}"));
                        }
                    }
                    if let Some(u) = s.user {
                        if libc::setuid(u.uid) != 0 {
                            fail(&format!("cannot switch to user {}", u.name));
                        }
                    }
                    // Never run an application as root by accident (mod_wsgi CVE-2014-8583).
                    if s.user.is_some_and(|u| u.uid != 0) && libc::setuid(0) == 0 {
                        fail("could still regain root after switching user");
                    }
                } else if s.user.is_some_and(|u| u.uid != libc::geteuid()) {
                    fail("Apache is not running as root, so it cannot switch user");
                }
                if let Some(h) = &home_c {
                    if libc::chdir(h.as_ptr()) != 0 {
                        fail("cannot change to the home directory");
                    }
                }
                if let Some(m) = s.umask {
                    libc::umask(m as libc::mode_t);
                }
                if s.listen_fd != 3 {
                    if libc::dup2(s.listen_fd, 3) != 3 {
                        fail("cannot pass the listening socket");
                    }
                } else {
                    let flags = libc::fcntl(3, libc::F_GETFD);
                    libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                }
                // Nothing else of Apache's (listeners, logs, scoreboard) leaks into Python.
                libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
                for sig in [
                    libc::SIGTERM,
                    libc::SIGINT,
                    libc::SIGCHLD,
                    libc::SIGPIPE,
                    libc::SIGHUP,
                    libc::SIGUSR1,
                ] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
            }
            fail(&format!("cannot execute {}", s.program))
        }
    }
}

/// `[Thu Nov 26 00:08:50.383929 2026] [py:LEVEL] [pid N]`: the start of an error log line
/// written without Apache (monitor, forked children before exec).
pub fn log_prefix(level: &str) -> String {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut buf = [0 as libc::c_char; 64];
    // SAFETY: valid out-pointers; strftime writes at most buf.len() bytes incl. the NUL.
    let stamp = unsafe {
        libc::gettimeofday(&mut tv, std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&tv.tv_sec, &mut tm);
        let n = libc::strftime(
            buf.as_mut_ptr(),
            buf.len(),
            c"%a %b %d %H:%M:%S".as_ptr(),
            &tm,
        );
        let head = String::from_utf8_lossy(std::slice::from_raw_parts(buf.as_ptr().cast(), n))
            .into_owned();
        let n = libc::strftime(buf.as_mut_ptr(), buf.len(), c"%Y".as_ptr(), &tm);
        let year = String::from_utf8_lossy(std::slice::from_raw_parts(buf.as_ptr().cast(), n))
            .into_owned();
        format!("{head}.{:06} {year}", tv.tv_usec)
    };
    format!("[{stamp}] [py:{level}] [pid {}]", getpid())
}

/// Why Apache's parent calls an "other child" callback (apr_proc_other_child_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherChild {
    /// It died (already reaped); the status is waitpid's.
    Death(Exit),
    /// Apache is restarting or unregistering it.
    Restart,
    /// Anything else (unwritable, lost, running): not acted on.
    Other,
}

unsafe extern "C" fn other_child_trampoline(
    reason: libc::c_int,
    data: *mut libc::c_void,
    status: libc::c_int,
) {
    // SAFETY: data is the fn pointer register_other_child stored.
    let f: fn(OtherChild) =
        unsafe { std::mem::transmute::<*mut libc::c_void, fn(OtherChild)>(data) };
    let ev = match reason as u32 {
        crate::sys::APR_OC_REASON_DEATH => OtherChild::Death(if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        }),
        crate::sys::APR_OC_REASON_LOST => OtherChild::Death(Exit::Signal(0)),
        crate::sys::APR_OC_REASON_RESTART | crate::sys::APR_OC_REASON_UNREGISTER => {
            OtherChild::Restart
        }
        _ => OtherChild::Other,
    };
    f(ev)
}

/// Registers `pid` (a process forked by the Apache parent) so that the parent's MPM loop,
/// which reaps it, calls `on_event`; the registration ends with `pool` (pconf).
///
/// # Safety
/// `pool` must be the configuration pool of the running generation, in the parent.
pub unsafe fn register_other_child(
    pool: *mut crate::sys::apr_pool_t,
    pid: i32,
    on_event: fn(OtherChild),
) {
    // SAFETY: the fn pointer is 'static and is only turned back into the same type.
    unsafe {
        crate::sys::modpy_other_child_register(
            pid,
            Some(other_child_trampoline),
            on_event as *mut libc::c_void,
            pool,
        )
    }
}

pub fn unregister_other_child(on_event: fn(OtherChild)) {
    // SAFETY: unregistering an unknown key is a no-op.
    unsafe { crate::sys::modpy_other_child_unregister(on_event as *mut libc::c_void) }
}

/// ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG: the first configuration
/// pass at startup, after which Apache reads everything again.
pub fn is_preflight_config() -> bool {
    // SAFETY: ap_state_query has no preconditions.
    unsafe {
        crate::sys::ap_state_query(crate::sys::AP_SQ_MAIN_STATE as i32)
            == crate::sys::AP_SQ_MS_CREATE_PRE_CONFIG as i32
    }
}

/// ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_EXITING: Apache's parent is stopping for
/// good (its process pool is being destroyed), not restarting.
pub fn is_exiting() -> bool {
    // SAFETY: ap_state_query has no preconditions.
    unsafe {
        crate::sys::ap_state_query(crate::sys::AP_SQ_MAIN_STATE as i32)
            == crate::sys::AP_SQ_MS_EXITING as i32
    }
}

/// What wait_for() found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// It ended, and is reaped now.
    Exited(Exit),
    /// Not (or no longer) a child of this process: someone reaped it already.
    NotAChild,
    /// Still running when the limit passed (an unreaped child: its pid cannot be reused).
    Running,
}

/// Waits (polling, so that a lost SIGCHLD cannot hang it) until child `pid` has ended or
/// `limit` has passed, and reaps it.
pub fn wait_for(pid: i32, limit: Duration) -> Waited {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer.
        let got = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if got == pid {
            return Waited::Exited(Exit::from_status(status));
        }
        if got < 0 {
            return Waited::NotAChild;
        }
        if std::time::Instant::now() >= deadline {
            return Waited::Running;
        }
        sleep(Duration::from_millis(20));
    }
}

/// The name of process `pid` (/proc/PID/comm), if it exists.
pub fn name_of(pid: i32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.trim_end().to_string())
}

/// Closes every descriptor above 2 but those in `keep`: a process forked from Apache's parent
/// that does not exec (the monitor) must not hold Apache's listening sockets, log pipes...
pub fn close_fds_except(keep: &[RawFd]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    // Collected first: the directory's own descriptor is among them until it is dropped.
    let fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if fd > 2 && !keep.contains(&fd) {
            close(fd);
        }
    }
}

/// A string kept in the process pool: it survives restarts, and the module's reloads.
pub fn process_note(s: &super::Server, key: &str) -> Option<String> {
    let k = CString::new(key).ok()?;
    let raw = s.get().ok()? as *const crate::sys::server_rec as *mut crate::sys::server_rec;
    // SAFETY: s is a live server_rec; the value is a NUL-terminated string or NULL.
    unsafe {
        let v = crate::sys::modpy_process_note_get(raw, k.as_ptr());
        (!v.is_null()).then(|| CStr::from_ptr(v).to_string_lossy().into_owned())
    }
}

pub fn set_process_note(s: &super::Server, key: &str, value: &str) {
    let (Ok(k), Ok(v)) = (CString::new(key), CString::new(value)) else {
        return;
    };
    let Ok(rec) = s.get() else { return };
    let raw = rec as *const crate::sys::server_rec as *mut crate::sys::server_rec;
    // SAFETY: both strings are copied into the process pool.
    unsafe { crate::sys::modpy_process_note_set(raw, k.as_ptr(), v.as_ptr()) }
}

/// ap_runtime_dir_relative(p, name): DefaultRuntimeDir-relative paths (mod_wsgi's default
/// WSGISocketPrefix is `<DefaultRuntimeDir>/wsgi`).
///
/// # Safety
/// `pool` must be a live pool.
pub unsafe fn runtime_dir_relative(pool: *mut crate::sys::apr_pool_t, name: &str) -> String {
    let Ok(n) = CString::new(name) else {
        return name.to_string();
    };
    // SAFETY: per the contract; the result is a pool string.
    unsafe {
        let p = crate::sys::modpy_runtime_dir_relative(pool, n.as_ptr());
        if p.is_null() {
            name.to_string()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

pub fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor this process owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// Waits up to `timeout` for `fd` to be readable (a signal cuts it short: false).
pub fn wait_readable(fd: RawFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, timeout.as_millis() as libc::c_int) > 0 }
}

/// Accepts one connection on a non-blocking listening socket `fd` (None: none waiting).
pub fn accept_unix(fd: RawFd) -> Option<std::os::unix::net::UnixStream> {
    use std::os::fd::FromRawFd;
    // SAFETY: accept4 on our listening socket; a new descriptor is owned by the stream.
    unsafe {
        let c = libc::accept4(
            fd,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        );
        (c >= 0).then(|| std::os::unix::net::UnixStream::from_raw_fd(c))
    }
}

/// Creates (or truncates) `path`, mode 0644, owned by `owner` when running as root.
pub fn create_owned_file(path: &str, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    std::fs::write(path, b"")?;
    if let (Some((uid, gid)), true) = (owner, is_root()) {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    Ok(())
}

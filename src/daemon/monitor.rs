//! The monitor: a Python-free process forked by the Apache parent after each configuration.
//! It starts every daemon group's workers (`python -m modpy.daemon`, after switching user,
//! group, root directory and limits), restarts those that exit (at once after a planned exit,
//! with a growing delay after a crash), and on SIGTERM (restart or stop of Apache) asks them
//! to finish their requests and exit, killing what is left after shutdown-timeout.

use super::runtime::Group;
use crate::apache::process::{self, Exit, Spawn};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PYLIB_DEFAULT: &str = env!("MODPY_PYLIB_DEFAULT");
const PYTHON_EXECUTABLE: &str = env!("MODPY_PYTHON_EXECUTABLE");

fn say(level: &str, msg: &str) {
    eprintln!("{} {msg}", process::log_prefix(level));
}

/// One worker process of a group.
struct Slot {
    group: usize,
    index: u32,
    pid: i32,
    started: Instant,
    /// Crashes in a row (each soon after its start): the restart delay doubles.
    crashes: u32,
    next_start: Instant,
}

/// The worker's environment: settings for modpy.daemon plus what mod_wsgi sets (LANG,
/// LC_ALL, PYTHONHOME, PYTHON_EGG_CACHE, HOME).
fn worker_env(g: &Group, user: Option<&process::User>, pylib: &str) -> Vec<(String, String)> {
    let c = &g.config;
    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/local/bin:/usr/bin:/bin".to_string(),
        ),
        ("PYTHONPATH".into(), pylib.to_string()),
        ("PYTHONUNBUFFERED".into(), "1".into()),
        // Body chunks (256 KiB) stay in glibc's heap instead of a fresh mmap (and its page
        // faults) per chunk.
        ("MALLOC_MMAP_THRESHOLD_".into(), "4194304".into()),
        ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
        ("MODPY_DAEMON_GROUP".into(), c.name.clone()),
        ("MODPY_DAEMON_FD".into(), "3".into()),
        (
            "MODPY_DAEMON_SECRET".into(),
            g.secret.iter().map(|b| format!("{b:02x}")).collect(),
        ),
        ("MODPY_DAEMON_THREADS".into(), c.threads.to_string()),
        (
            "MODPY_DAEMON_MAXIMUM_REQUESTS".into(),
            c.maximum_requests.to_string(),
        ),
        (
            "MODPY_DAEMON_INACTIVITY_TIMEOUT".into(),
            c.inactivity_timeout.as_secs().to_string(),
        ),
        (
            "MODPY_DAEMON_REQUEST_TIMEOUT".into(),
            c.request_timeout.as_secs().to_string(),
        ),
        (
            "MODPY_DAEMON_RESTART_INTERVAL".into(),
            c.restart_interval.as_secs().to_string(),
        ),
        (
            "MODPY_DAEMON_GRACEFUL_TIMEOUT".into(),
            c.graceful_timeout.as_secs().to_string(),
        ),
        (
            "MODPY_DAEMON_SHUTDOWN_TIMEOUT".into(),
            c.shutdown_timeout.as_secs().to_string(),
        ),
        // Who may connect: Apache's user, or socket-user= (root always may).
        ("MODPY_DAEMON_APACHE_UID".into(), peer_uid(g).to_string()),
        (
            "MODPY_DAEMON_LOGLEVEL".into(),
            loglevel_name(g.loglevel).into(),
        ),
        ("MODPY_DAEMON_PYTHON_PATH".into(), c.python_path.join(":")),
        (
            "MODPY_DAEMON_PRELOAD".into(),
            g.preload
                .iter()
                .map(|(p, c)| format!("{p}\t{c}\n"))
                .collect(),
        ),
    ];
    // python-home= as WSGIPythonHome: a virtual environment (pyvenv.cfg) is entered through
    // its own bin/python (see spawn), anything else is a prefix for PYTHONHOME.
    if let Some(h) = c.python_home.as_ref().filter(|h| !is_venv(h)) {
        env.push(("PYTHONHOME".into(), h.clone()));
    }
    if let Some(l) = &c.lang {
        env.push(("LANG".into(), l.clone()));
    }
    if let Some(l) = &c.locale {
        env.push(("LC_ALL".into(), l.clone()));
    }
    if let Some(e) = &c.python_eggs {
        env.push(("PYTHON_EGG_CACHE".into(), e.clone()));
    }
    let home = c.home.clone().or_else(|| user.map(|u| u.home.clone()));
    if let Some(h) = home {
        env.push(("HOME".into(), h));
    }
    env
}

fn peer_uid(g: &Group) -> u32 {
    g.config
        .socket_user
        .as_deref()
        .and_then(process::lookup_user)
        .map_or(process::apache_ids().0, |u| u.uid)
}

fn is_venv(home: &str) -> bool {
    std::path::Path::new(home).join("pyvenv.cfg").exists()
}

fn loglevel_name(level: i32) -> &'static str {
    match level {
        0..=2 => "crit",
        3 => "error",
        4 => "warn",
        5 => "notice",
        6 => "info",
        _ => "debug",
    }
}

fn spawn(g: &Group, index: u32) -> Result<i32, String> {
    let c = &g.config;
    let user = match &c.user {
        Some(name) => Some(process::lookup_user(name).ok_or_else(|| {
            format!(
                "user '{name}' of WSGI daemon process '{}' does not exist",
                c.name
            )
        })?),
        // Apache's own user, as mod_wsgi does.
        None if process::is_root() => {
            let (uid, gid) = process::apache_ids();
            let mut u = process::lookup_user(&format!("#{uid}"))
                .ok_or_else(|| format!("Apache's user (uid {uid}) does not exist"))?;
            u.gid = gid;
            Some(u)
        }
        None => None,
    };
    let gid = match &c.group {
        Some(name) => Some(process::lookup_group(name).ok_or_else(|| {
            format!(
                "group '{name}' of WSGI daemon process '{}' does not exist",
                c.name
            )
        })?),
        None => None,
    };
    let supplementary = c
        .supplementary_groups
        .iter()
        .map(|n| {
            process::lookup_group(n).ok_or_else(|| {
                format!(
                    "supplementary group '{n}' of WSGI daemon process '{}' does not exist",
                    c.name
                )
            })
        })
        .collect::<Result<Vec<u32>, String>>()?;
    let pylib = std::env::var("MODPY_PYLIB").unwrap_or_else(|_| PYLIB_DEFAULT.to_string());
    let venv_python = c
        .python_home
        .as_ref()
        .filter(|h| is_venv(h))
        .map(|h| format!("{h}/bin/python"));
    let program = c
        .python_executable
        .as_deref()
        .or(venv_python.as_deref())
        .unwrap_or(PYTHON_EXECUTABLE);
    // argv[0] stays the executable (Python finds its prefix from it); the display name is
    // the last argument (ps) and the worker makes it its comm (top, ps -e).
    let title = c
        .process_title()
        .unwrap_or_else(|| format!("(wsgi:{}:{index})", c.name));
    let args = [
        program.to_string(),
        "-m".to_string(),
        "modpy.daemon".to_string(),
        title,
    ];
    let env = worker_env(g, user.as_ref(), &pylib);
    let spec = Spawn {
        program,
        args: &args,
        env: &env,
        listen_fd: g.fd,
        user: user.as_ref(),
        gid,
        supplementary: &supplementary,
        chroot: c.chroot.as_deref(),
        home: c.home.as_deref(),
        umask: c.umask,
        cpu_seconds: c.cpu_time_limit,
        memory_bytes: c.memory_limit,
        virtual_memory_bytes: c.virtual_memory_limit,
    };
    process::spawn_worker(&spec, &c.name).map_err(|e| {
        format!(
            "cannot start a process of WSGI daemon group '{}': {e}",
            c.name
        )
    })
}

/// The monitor's life; never returns.
pub fn run(groups: Vec<Arc<Group>>, parent: i32) -> ! {
    process::monitor_signals();
    process::set_name("modpy-monitor");
    // SAFETY-free check: the parent may have died between fork and PDEATHSIG.
    if !process::kill(parent, 0) {
        process::exit_now(0);
    }
    say(
        "notice",
        &format!(
            "mod_py: daemon monitor started for {} process group(s): {}",
            groups.len(),
            groups
                .iter()
                .map(|g| g.config.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let now = Instant::now();
    let mut slots: Vec<Slot> = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        for index in 0..g.config.processes {
            slots.push(Slot {
                group: gi,
                index,
                pid: 0,
                started: now,
                crashes: 0,
                next_start: now,
            });
        }
    }
    loop {
        if process::terminated() {
            stop_all(&groups, &mut slots);
        }
        while let Some((pid, exit)) = process::reap_any() {
            let Some(slot) = slots.iter_mut().find(|s| s.pid == pid) else {
                continue;
            };
            let g = &groups[slot.group].config;
            let lived = slot.started.elapsed();
            slot.pid = 0;
            let planned = exit == Exit::Code(0);
            if planned {
                slot.crashes = 0;
                slot.next_start = Instant::now();
                say("info", &format!("mod_py: daemon process '{}' (pid {pid}) exited after {:.1}s; starting another", g.name, lived.as_secs_f64()));
            } else {
                slot.crashes = if lived < Duration::from_secs(10) {
                    slot.crashes + 1
                } else {
                    1
                };
                let delay = Duration::from_millis(100u64 << slot.crashes.min(8))
                    .min(Duration::from_secs(20));
                slot.next_start = Instant::now() + delay;
                say("error", &format!(
                    "mod_py: daemon process '{}' (pid {pid}) died with {exit} after {:.1}s; restarting it in {:.1}s",
                    g.name, lived.as_secs_f64(), delay.as_secs_f64()
                ));
            }
        }
        let now = Instant::now();
        for slot in slots
            .iter_mut()
            .filter(|s| s.pid == 0 && s.next_start <= now)
        {
            let g = &groups[slot.group];
            match spawn(g, slot.index) {
                Ok(pid) => {
                    slot.pid = pid;
                    slot.started = now;
                }
                Err(e) => {
                    slot.crashes += 1;
                    let delay = Duration::from_millis(100u64 << slot.crashes.min(8))
                        .min(Duration::from_secs(20));
                    slot.next_start = now + delay;
                    say(
                        "error",
                        &format!("mod_py: {e}; trying again in {:.1}s", delay.as_secs_f64()),
                    );
                }
            }
        }
        // SIGCHLD and SIGTERM cut this short.
        process::sleep(Duration::from_millis(200));
    }
}

/// SIGTERM to every worker (each finishes its requests), SIGKILL to those still there after
/// the longest shutdown-timeout, then exit.
fn stop_all(groups: &[Arc<Group>], slots: &mut [Slot]) -> ! {
    for s in slots.iter().filter(|s| s.pid > 0) {
        process::kill(s.pid, libc::SIGTERM);
    }
    let wait = groups
        .iter()
        .map(|g| g.config.shutdown_timeout)
        .max()
        .unwrap_or_default()
        + Duration::from_secs(1);
    let deadline = Instant::now() + wait;
    while slots.iter().any(|s| s.pid > 0) && Instant::now() < deadline {
        while let Some((pid, _)) = process::reap_any() {
            if let Some(s) = slots.iter_mut().find(|s| s.pid == pid) {
                s.pid = 0;
            }
        }
        process::sleep(Duration::from_millis(50));
    }
    for s in slots.iter().filter(|s| s.pid > 0) {
        say(
            "warn",
            &format!(
                "mod_py: daemon process (pid {}) still running after shutdown-timeout; killing it",
                s.pid
            ),
        );
        process::kill(s.pid, libc::SIGKILL);
    }
    process::exit_now(0)
}

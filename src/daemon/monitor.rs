//! The monitor: a Python-free process forked by the Apache parent after each configuration.
//! It starts every daemon group's workers (`python -m modpy.daemon`, after switching user,
//! group, root directory and limits), restarts those that exit (at once after a planned exit,
//! with a growing delay after a crash), and on SIGTERM (restart or stop of Apache) asks them
//! to finish their requests and exit, killing what is left after shutdown-timeout.

use super::config::TemplateValues;
use super::protocol::{self as proto, Kind};
use super::runtime::{Group, OnDemandSetup};
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
    /// Not to be started again (its instance is stopping).
    retired: bool,
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
        ("MALLOC_TRIM_THRESHOLD_".into(), "33554432".into()),
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
        (
            "MODPY_DAEMON_DEADLOCK_TIMEOUT".into(),
            c.deadlock_timeout.as_secs().to_string(),
        ),
        (
            "MODPY_DAEMON_QUEUE_TIMEOUT".into(),
            c.queue_timeout.as_secs().to_string(),
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

fn spawn(g: &Group, index: u32, activity: Option<&str>) -> Result<i32, String> {
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
    let mut env = worker_env(g, user.as_ref(), &pylib);
    if let Some(a) = activity {
        // An instance of a template: it tells the monitor when it was last used, and stops
        // (for good) after its inactivity-timeout.
        env.push(("MODPY_DAEMON_ACTIVITY_FILE".into(), a.to_string()));
        env.push(("MODPY_DAEMON_INSTANCE".into(), "1".into()));
    }
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
        cpu_priority: c.cpu_priority,
        cpu_policy: c.cpu_policy.sched_policy(),
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

/// A group the monitor runs: configured, or an instance of a template.
struct Entry {
    group: Arc<Group>,
    /// For an instance: its template's index, its activity file, and whether it is being
    /// stopped (evicted or idle).
    template: Option<usize>,
    activity: Option<String>,
    stopping: bool,
}

struct Monitor {
    entries: Vec<Option<Entry>>,
    slots: Vec<Slot>,
    on_demand: Option<Arc<OnDemandSetup>>,
}

/// Exit status of a worker that stopped after its inactivity-timeout (modpy.daemon): an
/// instance of a template is then stopped, not restarted.
const EXIT_INACTIVE: i32 = 4;

/// The monitor's life; never returns.
pub fn run(groups: Vec<Arc<Group>>, on_demand: Option<Arc<OnDemandSetup>>, parent: i32) -> ! {
    process::monitor_signals();
    process::set_name(super::runtime::MONITOR_NAME);
    // Only its groups' sockets: not Apache's listeners (a monitor that outlives Apache would
    // keep its port accepting connections nobody answers), log pipes or anything else.
    let mut keep: Vec<i32> = groups.iter().map(|g| g.fd).collect();
    keep.extend(on_demand.as_ref().map(|d| d.control_fd));
    process::close_fds_except(&keep);
    // The parent may have died between fork and PDEATHSIG.
    if !process::kill(parent, 0) {
        process::exit_now(0);
    }
    say(
        "notice",
        &format!(
            "mod_py: daemon monitor started for {} process group(s): {}{}",
            groups.len(),
            groups
                .iter()
                .map(|g| g.config.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            on_demand.as_ref().map_or(String::new(), |d| format!(
                "; templates: {}",
                d.templates
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        ),
    );
    let mut m = Monitor {
        entries: Vec::new(),
        slots: Vec::new(),
        on_demand,
    };
    for g in groups {
        m.add(Entry {
            group: g,
            template: None,
            activity: None,
            stopping: false,
        });
    }
    let control = m.on_demand.as_ref().map(|d| d.control_fd);
    if let Some(fd) = control {
        process::set_nonblocking(fd);
    }
    loop {
        if process::terminated() {
            let groups: Vec<Arc<Group>> = m
                .entries
                .iter()
                .flatten()
                .map(|e| e.group.clone())
                .collect();
            stop_all(&groups, &mut m.slots);
        }
        m.reap();
        m.start_due();
        // SIGCHLD and SIGTERM cut the wait short; so does a request on the control socket.
        match control {
            Some(fd) if process::wait_readable(fd, Duration::from_millis(200)) => m.control(fd),
            Some(_) => {}
            None => process::sleep(Duration::from_millis(200)),
        }
    }
}

impl Monitor {
    fn add(&mut self, e: Entry) -> usize {
        let idx = self.entries.len();
        let now = Instant::now();
        for index in 0..e.group.config.processes {
            self.slots.push(Slot {
                group: idx,
                index,
                pid: 0,
                started: now,
                crashes: 0,
                next_start: now,
                retired: false,
            });
        }
        self.entries.push(Some(e));
        idx
    }

    fn reap(&mut self) {
        while let Some((pid, exit)) = process::reap_any() {
            let Some(slot) = self.slots.iter_mut().find(|s| s.pid == pid) else {
                continue;
            };
            let Some(entry) = self.entries[slot.group].as_mut() else {
                slot.pid = 0;
                continue;
            };
            let g = &entry.group.config;
            let lived = slot.started.elapsed();
            slot.pid = 0;
            if entry.template.is_some() && (entry.stopping || exit == Exit::Code(EXIT_INACTIVE)) {
                slot.retired = true;
                if !entry.stopping {
                    say("info", &format!("mod_py: daemon instance '{}' (pid {pid}) stopped after its inactivity-timeout", g.name));
                }
            } else if exit == Exit::Code(0) || exit == Exit::Code(EXIT_INACTIVE) {
                slot.crashes = 0;
                slot.next_start = Instant::now();
                say("info", &format!("mod_py: daemon process '{}' (pid {pid}) exited after {:.1}s; starting another", g.name, lived.as_secs_f64()));
            } else {
                slot.crashes = if lived < Duration::from_secs(10) {
                    slot.crashes + 1
                } else {
                    1
                };
                let delay = backoff(slot.crashes);
                slot.next_start = Instant::now() + delay;
                say("error", &format!(
                    "mod_py: daemon process '{}' (pid {pid}) died with {exit} after {:.1}s; restarting it in {:.1}s",
                    g.name, lived.as_secs_f64(), delay.as_secs_f64()
                ));
            }
        }
        // Instances whose processes have all stopped are gone: socket and files removed.
        for idx in 0..self.entries.len() {
            let done = self.entries[idx]
                .as_ref()
                .is_some_and(|e| e.template.is_some())
                && self
                    .slots
                    .iter()
                    .filter(|s| s.group == idx)
                    .all(|s| s.retired && s.pid == 0);
            if done {
                if let Some(e) = self.entries[idx].take() {
                    process::close(e.group.fd);
                    let _ = std::fs::remove_file(&e.group.socket);
                    if let Some(a) = &e.activity {
                        let _ = std::fs::remove_file(a);
                    }
                    say(
                        "info",
                        &format!("mod_py: daemon instance '{}' removed", e.group.config.name),
                    );
                }
                self.slots.retain(|s| s.group != idx);
            }
        }
    }

    fn start_due(&mut self) {
        let now = Instant::now();
        for slot in self
            .slots
            .iter_mut()
            .filter(|s| s.pid == 0 && !s.retired && s.next_start <= now)
        {
            let Some(e) = self.entries[slot.group].as_ref() else {
                continue;
            };
            match spawn(&e.group, slot.index, e.activity.as_deref()) {
                Ok(pid) => {
                    slot.pid = pid;
                    slot.started = now;
                }
                Err(err) => {
                    slot.crashes += 1;
                    let delay = backoff(slot.crashes);
                    slot.next_start = now + delay;
                    say(
                        "error",
                        &format!("mod_py: {err}; trying again in {:.1}s", delay.as_secs_f64()),
                    );
                }
            }
        }
    }

    /// Answers the Apache children waiting on the control socket.
    fn control(&mut self, fd: std::os::fd::RawFd) {
        let Some(setup) = self.on_demand.clone() else {
            return;
        };
        while let Some(stream) = process::accept_unix(fd) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
            let mut reader = std::io::BufReader::new(&stream);
            let mut buf = Vec::new();
            let answer = match read_start_request(&mut reader, &mut buf, &setup.secret) {
                Ok((template, values)) => self.start_instance(&setup, &template, &values),
                Err(e) => {
                    say(
                        "error",
                        &format!("mod_py: daemon monitor: bad control request: {e}"),
                    );
                    continue;
                }
            };
            let (status, why) = match answer {
                Ok(()) => ("200 OK", String::new()),
                Err((status, why)) => {
                    say("info", &format!("mod_py: daemon instance refused: {why}"));
                    (status, why)
                }
            };
            let mut payload = Vec::new();
            payload.extend_from_slice(status.as_bytes());
            payload.push(0);
            proto::push_pair(&mut payload, b"reason", why.as_bytes());
            let mut w = &stream;
            let _ = proto::write_frame(&mut w, Kind::Start, &payload);
        }
    }

    /// Starts the instance of `template` for `values` unless it runs; checks everything the
    /// Apache child could have lied about (the monitor trusts no child).
    fn start_instance(
        &mut self,
        setup: &OnDemandSetup,
        name: &str,
        values: &TemplateValues,
    ) -> Result<(), (&'static str, String)> {
        const FORBIDDEN: &str = "403 Forbidden";
        const UNAVAILABLE: &str = "503 Service Unavailable";
        let tidx = setup.templates.iter().position(|t| t.name == name).ok_or((
            UNAVAILABLE,
            format!("no WSGIDaemonTemplate called '{name}'"),
        ))?;
        let t = &setup.templates[tidx];
        let config = t
            .expand(values)
            .map_err(|e| (FORBIDDEN, format!("template '{name}': {e}")))?;
        if self
            .entries
            .iter()
            .flatten()
            .any(|e| e.group.config.name == config.name && !e.stopping)
        {
            return Ok(());
        }
        // Who it would run as: never root, never a system account, never Apache's own user
        // through a template (the built-in default template runs as Apache's user by design).
        if let Some(u) = &config.user {
            let who = process::lookup_user(u).ok_or((
                FORBIDDEN,
                format!("template '{name}': user '{u}' has no account"),
            ))?;
            if who.uid == 0 || who.uid < t.min_uid || who.uid == process::apache_ids().0 {
                return Err((FORBIDDEN, format!("template '{name}': user '{u}' (uid {}) may not run a daemon instance (min-uid={}, never root or Apache's user)", who.uid, t.min_uid)));
            }
        }
        if let Some(users) = &t.users {
            let u = values.user.as_deref().unwrap_or("");
            if !users.iter().any(|x| x == u) {
                return Err((
                    FORBIDDEN,
                    format!("template '{name}': user '{u}' is not in users="),
                ));
            }
        }
        let live: Vec<usize> = (0..self.entries.len())
            .filter(|&i| {
                self.entries[i]
                    .as_ref()
                    .is_some_and(|e| e.template == Some(tidx) && !e.stopping)
            })
            .collect();
        if live.len() >= t.max_instances {
            // Evict the least recently used idle instance (no request for a second).
            let idle = live
                .iter()
                .filter_map(|&i| {
                    let e = self.entries[i].as_ref()?;
                    let used = activity_time(e.activity.as_deref()?)?;
                    (used.elapsed().unwrap_or_default() > Duration::from_secs(1))
                        .then_some((used, i))
                })
                .min();
            let Some((_, victim)) = idle else {
                return Err((
                    UNAVAILABLE,
                    format!(
                        "template '{name}': max-instances={} reached and none is idle",
                        t.max_instances
                    ),
                ));
            };
            self.stop_instance(victim, "evicted: max-instances reached");
        }
        let socket = setup.instance_socket(&config.name);
        // The socket belongs to whoever connects (Apache's user, or socket-user=).
        let socket_owner = config
            .socket_user
            .as_deref()
            .and_then(process::lookup_user)
            .map_or(process::apache_ids(), |u| (u.uid, u.gid));
        let fd = process::unix_listener(&socket, config.listen_backlog, socket_owner)
            .map_err(|e| (UNAVAILABLE, format!("cannot create {socket}: {e}")))?;
        let activity = format!("{socket}.active");
        // The activity file belongs to the user the workers run as (user=, else Apache's).
        let owner = match config.user.as_deref() {
            Some(u) => process::lookup_user(u).map(|u| (u.uid, u.gid)),
            None => Some(process::apache_ids()),
        };
        if let Err(e) = process::create_owned_file(&activity, owner) {
            process::close(fd);
            return Err((UNAVAILABLE, format!("cannot create {activity}: {e}")));
        }
        say(
            "info",
            &format!(
                "mod_py: daemon instance '{}' of template '{name}' starting ({} process(es))",
                config.name, config.processes
            ),
        );
        let group = Arc::new(Group {
            config,
            socket,
            secret: setup.secret,
            fd,
            preload: Vec::new(),
            apache_timeout: setup.apache_timeout,
            loglevel: setup.loglevel,
            on_demand: None,
        });
        self.add(Entry {
            group,
            template: Some(tidx),
            activity: Some(activity),
            stopping: false,
        });
        self.start_due();
        Ok(())
    }

    fn stop_instance(&mut self, idx: usize, why: &str) {
        if let Some(e) = self.entries[idx].as_mut() {
            e.stopping = true;
            say(
                "info",
                &format!(
                    "mod_py: daemon instance '{}' stopping: {why}",
                    e.group.config.name
                ),
            );
            // Its socket goes now, so that new requests start a new instance.
            let _ = std::fs::remove_file(&e.group.socket);
        }
        for s in self.slots.iter_mut().filter(|s| s.group == idx) {
            s.retired = true;
            if s.pid > 0 {
                process::kill(s.pid, libc::SIGTERM);
            }
        }
    }
}

fn backoff(crashes: u32) -> Duration {
    Duration::from_millis(100u64 << crashes.min(8)).min(Duration::from_secs(20))
}

fn activity_time(path: &str) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

/// A control request: HELLO with the secret, then REQUEST with template=, server=, user=
/// and env:NAME= pairs.
fn read_start_request<R: std::io::Read>(
    r: &mut R,
    buf: &mut Vec<u8>,
    secret: &[u8; proto::SECRET_LEN],
) -> Result<(String, TemplateValues), String> {
    match proto::read_frame(r, buf) {
        Ok(Kind::Hello) => proto::check_hello(buf, secret).map_err(|e| e.to_string())?,
        Ok(k) => return Err(format!("expected HELLO, got {k:?}")),
        Err(e) => return Err(e.to_string()),
    }
    match proto::read_frame(r, buf) {
        Ok(Kind::Request) => {}
        Ok(k) => return Err(format!("expected REQUEST, got {k:?}")),
        Err(e) => return Err(e.to_string()),
    }
    let mut template = String::new();
    let mut values = TemplateValues::default();
    for (k, v) in proto::pairs(buf).map_err(|e| e.to_string())? {
        let v = String::from_utf8_lossy(v).into_owned();
        match k {
            b"template" => template = v,
            b"server" => values.server = v,
            b"user" => values.user = Some(v),
            k if k.starts_with(b"env:") => values
                .env
                .push((String::from_utf8_lossy(&k[4..]).into_owned(), v)),
            _ => {}
        }
    }
    Ok((template, values))
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

//! Daemon groups at run time, in the Apache parent: each group's socket (bound once, kept
//! across restarts in the process pool), its secret, and the monitor process (forked after
//! every configuration, re-forked if it dies). Children inherit all of it through fork.

use super::config::{DaemonGroup, DaemonTemplate, TemplateValues};
use super::protocol::SECRET_LEN;
use crate::apache::hooks::{self, ChildInitHook, Order, PostConfigHook};
use crate::apache::pool::Pool;
use crate::apache::process::{self, Exit, Fork, OtherChild};
use crate::apache::{log, Server};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// One configured group, ready to serve.
#[derive(Debug)]
pub struct Group {
    pub config: DaemonGroup,
    pub socket: String,
    pub secret: [u8; SECRET_LEN],
    /// The listening socket (the parent's; the monitor passes it to each worker as fd 3).
    pub fd: RawFd,
    /// Scripts a worker loads at start: (path, callable; "" = import only).
    pub preload: Vec<(String, String)>,
    /// Apache's `Timeout`, the default socket-timeout.
    pub apache_timeout: Duration,
    pub loglevel: i32,
    /// For an instance of a template: how to ask the monitor to start it.
    pub on_demand: Option<OnDemand>,
}

/// What an Apache child sends the monitor to have a template instance started.
#[derive(Debug, Clone)]
pub struct OnDemand {
    pub template: String,
    pub values: TemplateValues,
}

/// Templates and the monitor's control socket, for daemon groups made on demand.
#[derive(Debug, Clone)]
pub struct OnDemandSetup {
    pub templates: Vec<Arc<DaemonTemplate>>,
    /// The control socket: the parent binds it, the monitor listens, children connect.
    pub control: String,
    pub control_fd: RawFd,
    /// Checked on the control socket and by every instance's workers.
    pub secret: [u8; SECRET_LEN],
    /// Socket paths start with this (WSGISocketPrefix + the parent's pid).
    pub prefix: String,
    pub apache_timeout: Duration,
    pub loglevel: i32,
}

impl OnDemandSetup {
    pub fn template(&self, name: &str) -> Option<&Arc<DaemonTemplate>> {
        self.templates.iter().find(|t| t.name == name)
    }

    /// An instance's socket: named by a hash of the instance name.
    pub fn instance_socket(&self, instance: &str) -> String {
        format!("{}.i{}.sock", self.prefix, name_tag(instance))
    }

    /// The Group an Apache child talks to for this instance (no descriptor: it connects).
    pub fn instance_group(
        &self,
        t: &DaemonTemplate,
        values: &TemplateValues,
    ) -> Result<Group, String> {
        let config = t.expand(values)?;
        Ok(Group {
            socket: self.instance_socket(&config.name),
            config,
            secret: self.secret,
            fd: -1,
            preload: Vec::new(),
            apache_timeout: self.apache_timeout,
            loglevel: self.loglevel,
            on_demand: Some(OnDemand {
                template: t.name.clone(),
                values: values.clone(),
            }),
        })
    }
}

/// The built-in template of `WSGIDaemonDefault On`: one group per virtual host, as Apache's
/// user, with the module's Python.
pub fn default_template() -> DaemonTemplate {
    DaemonTemplate {
        name: "default".into(),
        options: vec![
            "processes=1".into(),
            "threads=15".into(),
            "display-name=modpy:default:%{SERVER}".into(),
        ],
        max_instances: 64,
        min_uid: 0,
        users: None,
    }
}

static GROUPS: RwLock<Vec<Arc<Group>>> = RwLock::new(Vec::new());
static ON_DEMAND: RwLock<Option<Arc<OnDemandSetup>>> = RwLock::new(None);

pub fn on_demand() -> Option<Arc<OnDemandSetup>> {
    ON_DEMAND.read().ok()?.clone()
}
static MONITOR_PID: AtomicI32 = AtomicI32::new(0);
/// The monitor's process name (ps, /proc/PID/comm).
pub const MONITOR_NAME: &str = "modpy-monitor";
static PCONF: AtomicPtr<crate::sys::apr_pool_t> = AtomicPtr::new(std::ptr::null_mut());
static MAIN_SERVER: RwLock<Option<Server>> = RwLock::new(None);

/// The group called `name`, if this configuration defines it.
pub fn group(name: &str) -> Option<Arc<Group>> {
    GROUPS
        .read()
        .ok()?
        .iter()
        .find(|g| g.config.name == name)
        .cloned()
}

pub fn register_hooks() {
    hooks::hook_post_config::<PostConfig>(Order::Middle);
    hooks::hook_child_init::<ChildInit>(Order::First);
    hooks::hook_handler::<super::client::DaemonHandler>(Order::First);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; SECRET_LEN]> {
    if s.len() != SECRET_LEN * 2 {
        return None;
    }
    let mut out = [0u8; SECRET_LEN];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A short stable tag for a group name (socket paths must stay under 108 bytes).
fn name_tag(name: &str) -> String {
    // FNV-1a
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!("{:08x}", h as u32)
}

/// The socket of `group`: reused from an earlier generation if its path is unchanged (so
/// requests queue instead of failing across restarts), else bound now.
fn socket_for(
    s: &Server,
    prefix: &str,
    g: &DaemonGroup,
) -> Result<(String, RawFd, [u8; SECRET_LEN]), String> {
    let path = format!("{prefix}.{}.{}.sock", process::getpid(), name_tag(&g.name));
    let key = format!("modpy.daemon.{}", g.name);
    if let Some(note) = process::process_note(s, &key) {
        let mut it = note.split('\t');
        if let (Some(p), Some(fd), Some(secret)) = (it.next(), it.next(), it.next()) {
            let fd: RawFd = fd.parse().unwrap_or(-1);
            if p == path && process::is_socket(fd) && std::path::Path::new(&path).exists() {
                if let Some(secret) = unhex(secret) {
                    return Ok((path, fd, secret));
                }
            }
            if fd >= 0 && process::is_socket(fd) {
                process::close(fd);
            }
        }
    }
    let owner = match &g.socket_user {
        Some(u) => {
            let u = process::lookup_user(u).ok_or_else(|| {
                format!(
                    "socket-user '{u}' of WSGI daemon process '{}' does not exist",
                    g.name
                )
            })?;
            (u.uid, u.gid)
        }
        None => process::apache_ids(),
    };
    let fd = process::unix_listener(&path, g.listen_backlog, owner).map_err(|e| {
        format!(
            "cannot create the socket {path} of WSGI daemon process '{}': {e} (see WSGISocketPrefix)",
            g.name
        )
    })?;
    let secret = process::random_bytes::<SECRET_LEN>();
    process::set_process_note(s, &key, &format!("{path}\t{fd}\t{}", hex(&secret)));
    Ok((path, fd, secret))
}

struct PostConfig;

impl PostConfigHook for PostConfig {
    fn run(pconf: Pool, s: Server) -> i32 {
        if process::is_preflight_config() {
            return crate::sys::OK as i32;
        }
        match configure(pconf, s) {
            Ok(()) => crate::sys::OK as i32,
            Err(e) => {
                s.log_error(log::APLOG_CRIT, 0, &format!("mod_py: {e}"));
                crate::sys::HTTP_INTERNAL_SERVER_ERROR as i32
            }
        }
    }
}

fn configure(pconf: Pool, main: Server) -> Result<(), String> {
    let mut defs: Vec<DaemonGroup> = Vec::new();
    let mut templates: Vec<Arc<DaemonTemplate>> = Vec::new();
    let mut preload: Vec<(String, String, String)> = Vec::new(); // (group, path, callable)
    let mut server = Some(main);
    while let Some(s) = server {
        let w = &s.config().wsgi;
        for g in &w.daemon_groups {
            if defs.iter().any(|d| d.name == g.name) {
                return Err(format!(
                    "WSGIDaemonProcess name '{}' duplicates a previous WSGI daemon definition",
                    g.name
                ));
            }
            defs.push(g.clone());
        }
        for t in &w.daemon_templates {
            if templates.iter().any(|d| d.name == t.name) {
                return Err(format!(
                    "WSGIDaemonTemplate name '{}' duplicates a previous template",
                    t.name
                ));
            }
            templates.push(Arc::new(t.clone()));
        }
        if w.daemon_default == Some(true) && !templates.iter().any(|t| t.name == "default") {
            templates.push(Arc::new(default_template()));
        }
        // mod_wsgi preloads a script whose alias names both groups; WSGIImportScript too.
        for a in &w.script_aliases {
            if let (Some(pg), Some(_), false) = (&a.process_group, &a.application_group, a.is_match)
            {
                let callable = a
                    .callable_object
                    .clone()
                    .unwrap_or_else(|| "application".into());
                preload.push((pg.clone(), a.path.clone(), callable));
            }
        }
        for a in &w.import_scripts {
            if let Some(pg) = &a.process_group {
                preload.push((pg.clone(), a.path.clone(), String::new()));
            }
        }
        server = s.next();
    }
    *MAIN_SERVER.write().unwrap_or_else(|e| e.into_inner()) = Some(main);
    if defs.is_empty() && templates.is_empty() {
        GROUPS.write().unwrap_or_else(|e| e.into_inner()).clear();
        *ON_DEMAND.write().unwrap_or_else(|e| e.into_inner()) = None;
        return Ok(());
    }
    let prefix = match &main.config().wsgi.socket_prefix {
        Some(p) if p.starts_with('/') => p.clone(),
        // A relative prefix is ServerRoot-relative, as mod_wsgi reads it.
        Some(p) => pconf.server_root_relative(p),
        None => pconf.runtime_dir_relative("wsgi"),
    };
    let apache_timeout =
        Duration::from_micros(main.get().map(|s| s.timeout as u64).unwrap_or(60_000_000));
    let mut groups = Vec::new();
    for g in defs {
        let (socket, fd, secret) = socket_for(&main, &prefix, &g)?;
        let preload = preload
            .iter()
            .filter(|(pg, _, _)| *pg == g.name)
            .map(|(_, p, c)| (p.clone(), c.clone()))
            .collect();
        groups.push(Arc::new(Group {
            config: g,
            socket,
            secret,
            fd,
            preload,
            apache_timeout,
            loglevel: main.loglevel(),
            on_demand: None,
        }));
    }
    *GROUPS.write().unwrap_or_else(|e| e.into_inner()) = groups;
    let setup = if templates.is_empty() {
        None
    } else {
        // The control socket is a group of its own as far as binding and keeping go.
        let mut control = DaemonGroup::new("%control");
        control.listen_backlog = 512;
        let (path, fd, secret) = socket_for(&main, &prefix, &control)?;
        Some(Arc::new(OnDemandSetup {
            templates,
            control: path,
            control_fd: fd,
            secret,
            prefix: format!("{prefix}.{}", process::getpid()),
            apache_timeout,
            loglevel: main.loglevel(),
        }))
    };
    *ON_DEMAND.write().unwrap_or_else(|e| e.into_inner()) = setup;
    PCONF.store(pconf.raw(), Ordering::SeqCst);
    start_monitor(pconf)?;
    // The monitor goes with this generation: SIGTERM makes it stop its workers gracefully.
    // On a restart the new generation's monitor starts meanwhile (the old one's workers
    // finish their requests on their own). When Apache stops, its parent waits for the
    // monitor, which waits for its workers: once Apache has exited nothing of mod_py is left
    // (service managers then have no stragglers to kill, and apps' exit handlers have run).
    pconf.register_cleanup(Box::new(move || {
        let pid = MONITOR_PID.swap(0, Ordering::SeqCst);
        let mut stopping = stopping_monitors(&main);
        if pid > 0 {
            process::unregister_other_child(on_monitor_event);
            process::kill(pid, libc::SIGTERM);
            stopping.push(pid);
        }
        if process::is_exiting() {
            // The monitor kills workers still there after the longest shutdown-timeout plus
            // 1 s; one more second for it to reap them and exit.
            let limit = longest_shutdown_timeout() + Duration::from_secs(2);
            let deadline = std::time::Instant::now() + limit;
            for pid in stopping {
                wait_for_monitor(pid, deadline);
            }
        } else {
            // A restart: earlier generations' monitors that have ended (Apache's main loop
            // reaps them) are forgotten.
            stopping.retain(|&pid| is_our_monitor(pid));
            let list: Vec<String> = stopping.iter().map(i32::to_string).collect();
            process::set_process_note(&main, STOPPING_NOTE, &list.join(","));
        }
    }));
    Ok(())
}

/// Monitors of this and earlier generations, sent SIGTERM, not yet seen to exit (a graceful
/// restart leaves the old one finishing its workers' requests while the new one serves):
/// kept in the process pool, as this module is unloaded and loaded again at each restart.
const STOPPING_NOTE: &str = "mod_py.stopping_monitors";

fn stopping_monitors(main: &Server) -> Vec<i32> {
    process::process_note(main, STOPPING_NOTE)
        .unwrap_or_default()
        .split(',')
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// True if `pid` is still a monitor process: its name says so (the pid of one that Apache
/// has reaped may belong to anything by now).
fn is_our_monitor(pid: i32) -> bool {
    process::name_of(pid).is_some_and(|n| n == MONITOR_NAME)
}

/// Waits for a stopping monitor until `deadline`, then SIGKILLs it.
fn wait_for_monitor(pid: i32, deadline: std::time::Instant) {
    if !is_our_monitor(pid) {
        return;
    }
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    if process::wait_for(pid, left) == process::Waited::Running {
        process::kill(pid, libc::SIGKILL);
        process::wait_for(pid, Duration::from_secs(1));
    }
}

/// The longest shutdown-timeout of the groups and templates. A template's is read from its
/// options (the default when it has none); one set by a placeholder is only known to the
/// monitor, and counts as a minute (the wait ends when the monitor does, this is a bound).
fn longest_shutdown_timeout() -> Duration {
    let groups = GROUPS.read().map(|g| g.clone()).unwrap_or_default();
    let configured = groups.iter().map(|g| g.config.shutdown_timeout);
    let templates = on_demand().map(|d| d.templates.clone()).unwrap_or_default();
    let from_templates = templates.iter().map(|t| {
        match t
            .options
            .iter()
            .filter_map(|o| o.strip_prefix("shutdown-timeout="))
            .next_back()
        {
            None => DaemonGroup::new("").shutdown_timeout,
            Some(v) => v
                .parse::<u64>()
                .map_or(Duration::from_secs(60), Duration::from_secs),
        }
    });
    configured.chain(from_templates).max().unwrap_or_default()
}

fn start_monitor(pconf: Pool) -> Result<(), String> {
    let groups: Vec<Arc<Group>> = GROUPS.read().map(|g| g.clone()).unwrap_or_default();
    let parent = process::getpid();
    match process::fork().map_err(|e| format!("cannot fork the daemon monitor: {e}"))? {
        Fork::Child => super::monitor::run(groups, on_demand(), parent),
        Fork::Parent(pid) => {
            MONITOR_PID.store(pid, Ordering::SeqCst);
            // SAFETY: pconf is this generation's configuration pool, in the parent.
            unsafe { process::register_other_child(pconf.raw(), pid, on_monitor_event) };
            Ok(())
        }
    }
}

/// Apache's parent reaped the monitor: log how it ended and start another (not while Apache
/// stops: prefork's stop signals its whole process group, the monitor included, and then
/// reaps children).
fn on_monitor_event(ev: OtherChild) {
    let OtherChild::Death(exit) = ev else {
        return;
    };
    let pid = MONITOR_PID.swap(0, Ordering::SeqCst);
    let main = *MAIN_SERVER.read().unwrap_or_else(|e| e.into_inner());
    let pconf = PCONF.load(Ordering::SeqCst);
    if pid == 0 || pconf.is_null() {
        return;
    }
    let stopping = hooks::mpm_query(crate::sys::AP_MPMQ_MPM_STATE as i32)
        == Some(crate::sys::AP_MPMQ_STOPPING as i32);
    if stopping {
        if let Some(s) = main {
            s.log_error(
                log::APLOG_INFO,
                0,
                &format!("mod_py: the daemon monitor (pid {pid}) ended ({exit}) as Apache stops"),
            );
        }
        return;
    }
    let how = match exit {
        Exit::Signal(0) => "was lost".to_string(),
        e => format!("died ({e})"),
    };
    if let Some(s) = main {
        s.log_error(
            log::APLOG_ERR,
            0,
            &format!("mod_py: the daemon monitor (pid {pid}) {how}; starting a new one"),
        );
    }
    // SAFETY: pconf is this generation's configuration pool (cleared only on restart, when
    // the cleanup above unregisters this callback first).
    let pool = unsafe { Pool::from_raw(pconf) };
    if let Err(e) = start_monitor(pool) {
        if let Some(s) = main {
            s.log_error(log::APLOG_CRIT, 0, &format!("mod_py: {e}"));
        }
    }
}

struct ChildInit;

impl ChildInitHook for ChildInit {
    /// Apache's children only connect to the sockets: their copies of the listening
    /// descriptors are closed.
    fn run(_pchild: Pool, _s: Server) {
        for g in GROUPS.read().map(|g| g.clone()).unwrap_or_default() {
            process::close(g.fd);
        }
        if let Some(d) = on_demand() {
            process::close(d.control_fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_tags() {
        let s = [0xabu8; SECRET_LEN];
        assert_eq!(unhex(&hex(&s)), Some(s));
        assert_eq!(unhex("zz"), None);
        assert_eq!(name_tag("site").len(), 8);
        assert_ne!(name_tag("a"), name_tag("b"));
    }
}

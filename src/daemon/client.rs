//! The Apache-child side of daemon mode: the content handler for `wsgi-script` requests whose
//! process group is a daemon group. It sends the environ to a worker of the group, answers
//! the worker's requests for body bytes, and writes the response it streams back. No Python:
//! this runs the same in mod_py and in the daemon-only mod_pyd.

use super::config::TemplateValues;
use super::protocol::{self as proto, Kind, MAX_CHUNK};
use super::runtime::{self, Group};
use crate::apache::hooks::{HookRequest, RequestHook};
use crate::apache::request::{RequestRef, StrField, TableField, SERVER_VERSION};
use crate::apache::{log, Request};
use crate::wsgi::target::{self, collapse_slashes, is_wsgi_handler, Target};
use std::collections::HashMap;
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const OK: i32 = crate::sys::OK as i32;
const DECLINED: i32 = crate::sys::DECLINED;
const DONE: i32 = crate::sys::DONE;
const HTTP_INTERNAL_SERVER_ERROR: i32 = crate::sys::HTTP_INTERNAL_SERVER_ERROR as i32;
const HTTP_SERVICE_UNAVAILABLE: i32 = crate::sys::HTTP_SERVICE_UNAVAILABLE as i32;
const HTTP_GATEWAY_TIME_OUT: i32 = crate::sys::HTTP_GATEWAY_TIME_OUT as i32;
const HTTP_FORBIDDEN: i32 = crate::sys::HTTP_FORBIDDEN as i32;
/// Version tuples go as "a,b,c"; the worker makes tuples of them.
const MOD_WSGI_VERSION: &str = "4,9,4";

/// A connection to a worker, kept between requests.
struct Conn {
    reader: BufReader<UnixStream>,
    /// The socket timeouts set on it (set once, not per request).
    timeout: Option<Duration>,
    /// Frame and body buffers, kept with the connection (no allocation per request).
    buf: Vec<u8>,
    body: Vec<u8>,
}

/// Idle connections of this child, per group.
static IDLE: Mutex<Option<HashMap<String, Vec<Conn>>>> = Mutex::new(None);

fn take_idle(group: &str) -> Option<Conn> {
    IDLE.lock().ok()?.as_mut()?.get_mut(group)?.pop()
}

fn put_idle(group: &str, c: Conn, max: usize) {
    if let Ok(mut idle) = IDLE.lock() {
        let list = idle
            .get_or_insert_with(HashMap::new)
            .entry(group.to_string())
            .or_default();
        if list.len() < max {
            list.push(c);
        }
    }
}

/// Connects (retrying until connect-timeout: the socket exists from Apache's start, but a
/// full backlog refuses) and sends HELLO; HELLO_OK is read with the first response.
fn connect(g: &Group) -> Result<Conn, (i32, String)> {
    let deadline = Instant::now() + g.config.connect_timeout.max(Duration::from_millis(100));
    let mut delay = Duration::from_millis(5);
    let mut asked = false;
    let stream = loop {
        match UnixStream::connect(&g.socket) {
            // HELLO fails (EPIPE) when the worker that accepted is stopping: nothing was
            // sent, so connect again.
            Ok(s) => match proto::write_frame(&mut &s, Kind::Hello, &proto::hello(&g.secret)) {
                Ok(()) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err((HTTP_SERVICE_UNAVAILABLE, format!("sending HELLO: {e}")))
                }
                Err(_) => std::thread::sleep(delay),
            },
            // An instance of a template that is not running: the monitor starts it.
            Err(_) if g.on_demand.is_some() && !asked => {
                asked = true;
                ask_monitor(g)?;
            }
            Err(e) if Instant::now() >= deadline => {
                return Err((
                    HTTP_SERVICE_UNAVAILABLE,
                    format!(
                        "unable to connect to WSGI daemon process '{}' on '{}': {e}",
                        g.config.name, g.socket
                    ),
                ))
            }
            Err(_) => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(200));
            }
        }
    };
    Ok(Conn {
        reader: BufReader::with_capacity(64 * 1024, stream),
        timeout: None,
        buf: Vec::new(),
        body: Vec::new(),
    })
}

/// Asks the monitor to start the template instance `g` (it re-checks everything).
fn ask_monitor(g: &Group) -> Result<(), (i32, String)> {
    let unavailable = |e: String| (HTTP_SERVICE_UNAVAILABLE, e);
    let (Some(od), Some(setup)) = (&g.on_demand, runtime::on_demand()) else {
        return Err(unavailable("no daemon templates are configured".into()));
    };
    let stream = UnixStream::connect(&setup.control).map_err(|e| {
        unavailable(format!(
            "cannot reach the daemon monitor on {}: {e}",
            setup.control
        ))
    })?;
    let wait = g.config.connect_timeout.max(Duration::from_secs(1));
    let _ = stream.set_read_timeout(Some(wait));
    let mut payload = Vec::new();
    proto::push_pair(&mut payload, b"template", od.template.as_bytes());
    proto::push_pair(&mut payload, b"server", od.values.server.as_bytes());
    if let Some(u) = &od.values.user {
        proto::push_pair(&mut payload, b"user", u.as_bytes());
    }
    for (k, v) in &od.values.env {
        proto::push_pair(&mut payload, format!("env:{k}").as_bytes(), v.as_bytes());
    }
    let mut w = &stream;
    proto::write_frame(&mut w, Kind::Hello, &proto::hello(&setup.secret))
        .and_then(|_| proto::write_frame(&mut w, Kind::Request, &payload))
        .map_err(|e| unavailable(format!("daemon monitor: {e}")))?;
    let mut buf = Vec::new();
    let mut r = &stream;
    match proto::read_frame(&mut r, &mut buf) {
        Ok(Kind::Start) => {}
        Ok(k) => return Err(unavailable(format!("daemon monitor answered {k:?}"))),
        Err(e) => return Err(unavailable(format!("daemon monitor: {e}"))),
    }
    let start = proto::parse_start(&buf).map_err(|e| unavailable(e.to_string()))?;
    if start.status == 200 {
        return Ok(());
    }
    let why = start
        .headers
        .iter()
        .find(|(k, _)| *k == b"reason")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    Err((start.status as i32, why))
}

/// Instances of templates this child has talked to, by instance name.
static INSTANCES: Mutex<Option<HashMap<String, Arc<Group>>>> = Mutex::new(None);

/// The template instance for this request (`%{TEMPLATE:NAME}`); Err: status, logged.
fn instance_for(r: &RequestRef<'_>, name: &str) -> Result<Arc<Group>, i32> {
    let fail = |status: i32, why: String| {
        r.log_error(log::APLOG_ERR, 0, &format!("mod_py: {why}"));
        status
    };
    let Some(setup) = runtime::on_demand() else {
        return Err(fail(
            HTTP_INTERNAL_SERVER_ERROR,
            format!("no WSGIDaemonTemplate called '{name}' has been configured"),
        ));
    };
    let Some(t) = setup.template(name) else {
        return Err(fail(
            HTTP_INTERNAL_SERVER_ERROR,
            format!("no WSGIDaemonTemplate called '{name}' has been configured"),
        ));
    };
    let server = r.server();
    let server_name = server
        .str_field(crate::apache::server::ServerStr::ServerHostname)
        .unwrap_or_default();
    let env = r.table(TableField::SubprocessEnv);
    let values = TemplateValues {
        server: String::from_utf8_lossy(server_name).into_owned(),
        user: r
            .str_field(StrField::User)
            .map(|u| String::from_utf8_lossy(u).into_owned()),
        env: t
            .placeholders()
            .iter()
            .filter_map(|p| p.strip_prefix("ENV:"))
            .filter_map(|k| {
                Some((
                    k.to_string(),
                    String::from_utf8_lossy(&env.get(k.as_bytes()).ok()??).into_owned(),
                ))
            })
            .collect(),
    };
    let instance = t
        .instance_name(&values)
        .map_err(|e| fail(HTTP_FORBIDDEN, format!("template '{name}': {e}")))?;
    let mut cache = INSTANCES.lock().unwrap_or_else(|e| e.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(g) = cache.get(&instance) {
        return Ok(g.clone());
    }
    let g = Arc::new(
        setup
            .instance_group(t, &values)
            .map_err(|e| fail(HTTP_FORBIDDEN, format!("template '{name}': {e}")))?,
    );
    cache.insert(instance, g.clone());
    Ok(g)
}

pub struct DaemonHandler;

impl RequestHook for DaemonHandler {
    fn run(hr: &HookRequest) -> i32 {
        let Some(handler) = hr.handler() else {
            return DECLINED;
        };
        // A WSGIHandlerScript name: that script's handle_request serves the file.
        let server = hr.server();
        let handler_script = (!is_wsgi_handler(handler))
            .then(|| server.config().wsgi.handler_script(handler))
            .flatten();
        if !is_wsgi_handler(handler) && handler_script.is_none() {
            return DECLINED;
        }
        let req = hr.request();
        let Ok(r) = req.get() else {
            return DECLINED;
        };
        // Embedded requests are left to the embedded handler (which resolves them) without
        // resolving them here too: only a daemon group's requests are resolved.
        let daemon_default = r.server_config().wsgi.daemon_default == Some(true);
        let (alias, group) = target::process_group(&r);
        if group.is_empty() && !(daemon_default && alias.is_some()) {
            return embedded_or_declined(&r);
        }
        let t = match target::resolve(&r, handler_script) {
            Ok(t) => t,
            Err(status) => return status,
        };
        let pg = match t.process_group.as_str() {
            "" => "%{TEMPLATE:default}",
            pg => pg,
        };
        let template = pg
            .strip_prefix("%{TEMPLATE:")
            .and_then(|x| x.strip_suffix('}'));
        let found = match template {
            Some(name) => match instance_for(&r, name) {
                Ok(g) => Some(g),
                Err(status) => return status,
            },
            None => runtime::group(pg),
        };
        let Some(g) = found else {
            r.log_error(
                log::APLOG_ERR,
                0,
                &format!(
                    "mod_py: no WSGI daemon process called '{}' has been configured (for '{}')",
                    t.process_group, t.filename
                ),
            );
            return HTTP_INTERNAL_SERVER_ERROR;
        };
        let script = t.handler_script.as_deref().unwrap_or(&t.filename);
        if let Err(why) = check_script_owner(&g, script) {
            r.log_error(log::APLOG_ERR, 0, &format!("mod_py: {why}"));
            return HTTP_FORBIDDEN;
        }
        drop(r);
        serve(&req, &g, &t)
    }
}

#[cfg(feature = "python")]
fn embedded_or_declined(_r: &RequestRef<'_>) -> i32 {
    DECLINED
}

#[cfg(not(feature = "python"))]
fn embedded_or_declined(r: &RequestRef<'_>) -> i32 {
    r.log_error(log::APLOG_ERR, 0, "mod_py: this is mod_pyd, the daemon-only build: WSGI applications need a WSGIProcessGroup or process-group= of a WSGIDaemonProcess");
    HTTP_INTERNAL_SERVER_ERROR
}

/// `script-user=` / `script-group=`: the script must be owned by them and sit in a directory
/// nobody else can write to (mod_wsgi's checks).
fn check_script_owner(g: &Group, path: &str) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let c = &g.config;
    if c.script_user.is_none() && c.script_group.is_none() {
        return Ok(());
    }
    let m =
        std::fs::metadata(path).map_err(|e| format!("cannot stat WSGI script '{path}': {e}"))?;
    if let Some(u) = &c.script_user {
        let uid = crate::apache::process::lookup_user(u).map(|u| u.uid);
        if uid != Some(m.uid()) {
            return Err(format!("WSGI script '{path}' is not owned by script-user '{u}' of daemon process group '{}'", c.name));
        }
    }
    if let Some(gr) = &c.script_group {
        if crate::apache::process::lookup_group(gr) != Some(m.gid()) {
            return Err(format!("WSGI script '{path}' is not owned by script-group '{gr}' of daemon process group '{}'", c.name));
        }
    }
    let dir = std::path::Path::new(path)
        .parent()
        .unwrap_or(std::path::Path::new("/"));
    let dm = std::fs::metadata(dir).map_err(|e| format!("cannot stat {}: {e}", dir.display()))?;
    if dm.mode() & 0o022 != 0 {
        return Err(format!(
            "the directory of WSGI script '{path}' is writable by group or others"
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "WSGI script '{path}' is writable by group or others"
        ));
    }
    Ok(())
}

/// The REQUEST payload: the CGI variables Apache gives, as the embedded environ has them,
/// plus the mod_wsgi.* keys (wsgi.* objects are made by the worker).
fn environ(r: &RequestRef<'_>, g: &Group, t: &Target) -> Vec<u8> {
    let env = r
        .add_wsgi_cgi_vars()
        .unwrap_or_else(|_| r.table(TableField::SubprocessEnv));
    if t.pass_authorization {
        if let Ok(Some(auth)) = r.table(TableField::HeadersIn).get(b"Authorization") {
            let _ = env.set(b"HTTP_AUTHORIZATION", &auth);
        }
    }
    let dconf = &r.per_dir_config().wsgi;
    target::apply_trusted_proxies(
        &env,
        dconf.trusted_proxy_headers.as_deref().unwrap_or(&[]),
        dconf.trusted_proxies.as_deref(),
    );
    let mut out = Vec::with_capacity(4096);
    let mut https = r.is_https();
    let (mut script_name, mut path_info) = (Vec::new(), Vec::new());
    let _ = env.for_each(|k, v| match k {
        b"PATH" => {}
        b"SCRIPT_NAME" => script_name = collapse_slashes(v),
        b"PATH_INFO" => path_info = collapse_slashes(v),
        b"HTTPS" => https |= v.eq_ignore_ascii_case(b"on") || v == b"1",
        _ => proto::push_pair(&mut out, k, v),
    });
    let mut kv = |k: &str, v: &[u8]| proto::push_pair(&mut out, k.as_bytes(), v);
    kv("SCRIPT_NAME", &script_name);
    kv("PATH_INFO", &path_info);
    kv("mod_py.url_scheme", if https { b"https" } else { b"http" });
    kv("mod_wsgi.script_name", &script_name);
    kv("mod_wsgi.path_info", &path_info);
    kv("mod_wsgi.process_group", g.config.name.as_bytes());
    kv("mod_wsgi.application_group", t.application_group.as_bytes());
    kv("mod_wsgi.callable_object", t.callable.as_bytes());
    kv(
        "mod_wsgi.request_handler",
        r.str_field(StrField::Handler).unwrap_or(b"wsgi-script"),
    );
    kv(
        "mod_wsgi.handler_script",
        t.handler_script.as_deref().unwrap_or_default().as_bytes(),
    );
    kv(
        "mod_wsgi.script_reloading",
        if t.script_reloading { b"1" } else { b"0" },
    );
    if let Ok(c) = r.connection().get() {
        kv(
            "mod_wsgi.listener_host",
            c.str_field(crate::apache::connection::ConnStr::LocalIp)
                .unwrap_or_default(),
        );
        kv("mod_wsgi.listener_port", c.ports().0.to_string().as_bytes());
    }
    kv("mod_wsgi.enable_sendfile", b"0");
    kv("mod_wsgi.ignore_activity", b"0");
    kv(
        "mod_wsgi.request_start",
        r.rec().request_time.to_string().as_bytes(),
    );
    // When the request was handed to the daemon group (microseconds, as request_start): the
    // worker refuses it with 503 once it has waited longer than queue-timeout.
    let queued = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    kv("mod_wsgi.queue_start", queued.to_string().as_bytes());
    if let Some(id) = r.str_field(StrField::LogId) {
        kv("mod_wsgi.request_id", id);
    }
    kv("mod_wsgi.version", MOD_WSGI_VERSION.as_bytes());
    let (a, b, c) = SERVER_VERSION;
    kv("apache.version", format!("{a},{b},{c}").as_bytes());
    kv("SCRIPT_FILENAME", t.filename.as_bytes());
    // The worker's reload check uses it instead of a stat of its own.
    if let Some(mtime) = t.script_mtime {
        kv("mod_py.script_mtime", mtime.to_string().as_bytes());
    }
    out
}

/// How an exchange with a worker ended, before or after the response began.
enum Outcome {
    Done,
    /// The connection failed before any response frame. `safe`: the worker cannot have read
    /// the request (a reused connection it closed while idle, or a fresh one it never
    /// greeted), so it is sent again on a fresh connection.
    Unanswered(String, bool),
    Failed(i32, String),
}

fn serve(req: &Request, g: &Arc<Group>, t: &Target) -> i32 {
    let Ok(r) = req.get() else {
        return HTTP_INTERNAL_SERVER_ERROR;
    };
    let payload = environ(&r, g, t);
    drop(r);
    let max_idle = g.config.threads.max(16) as usize;
    let mut last = String::new();
    // A restart replaces workers: a request can meet a worker that is closing its idle
    // connections several times in a row; it is resent (never read by any worker) with a
    // growing pause, about 1.5 s in all.
    for attempt in 0..8 {
        if attempt > 1 {
            std::thread::sleep(Duration::from_millis(10 << attempt.min(7)));
        }
        let (conn, reused) = match take_idle(&g.config.name).filter(|_| attempt == 0) {
            Some(c) => (c, true),
            None => match connect(g) {
                Ok(c) => (c, false),
                Err((status, e)) => {
                    log_req(req, log::APLOG_ERR, &format!("mod_py: {e}"));
                    return status;
                }
            },
        };
        let mut conn = conn;
        let (outcome, status) = exchange(req, g, t, &mut conn, &payload, !reused);
        match outcome {
            Outcome::Done => {
                put_idle(&g.config.name, conn, max_idle);
                return status;
            }
            Outcome::Unanswered(why, true) => last = why,
            Outcome::Unanswered(why, false) => {
                log_req(
                    req,
                    log::APLOG_ERR,
                    &format!(
                        "mod_py: daemon process of group '{}' gave no response for '{}': {why}",
                        g.config.name, t.filename
                    ),
                );
                return HTTP_SERVICE_UNAVAILABLE;
            }
            Outcome::Failed(status, why) => {
                log_req(
                    req,
                    log::APLOG_ERR,
                    &format!(
                        "mod_py: daemon process of group '{}' ({}): {why}",
                        g.config.name, t.filename
                    ),
                );
                return status;
            }
        }
    }
    log_req(
        req,
        log::APLOG_ERR,
        &format!(
            "mod_py: daemon process of group '{}' gave no response for '{}' in 8 attempts: {last}",
            g.config.name, t.filename
        ),
    );
    HTTP_SERVICE_UNAVAILABLE
}

fn log_req(req: &Request, level: i32, msg: &str) {
    if let Ok(r) = req.get() {
        r.log_error(level, 0, msg);
    }
}

/// One request over `conn`; returns the outcome and the status for Apache.
fn exchange(
    req: &Request,
    g: &Group,
    t: &Target,
    conn: &mut Conn,
    payload: &[u8],
    fresh: bool,
) -> (Outcome, i32) {
    let c = &g.config;
    let timeout = [c.request_timeout, c.socket_timeout, g.apache_timeout]
        .into_iter()
        .find(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(60));
    if conn.timeout != Some(timeout) {
        let _ = conn.reader.get_ref().set_read_timeout(Some(timeout));
        let _ = conn.reader.get_ref().set_write_timeout(Some(timeout));
        conn.timeout = Some(timeout);
    }
    if let Err(e) = proto::write_frame(&mut conn.reader.get_ref(), Kind::Request, payload) {
        return (Outcome::Unanswered(e.to_string(), true), 0);
    }
    let (mut buf, mut body) = (
        std::mem::take(&mut conn.buf),
        std::mem::take(&mut conn.body),
    );
    let result = exchange_frames(req, t, conn, fresh, timeout, &mut buf, &mut body);
    (conn.buf, conn.body) = (buf, body);
    result
}

/// The frame loop of exchange(); `buf` and `body` are the connection's reused buffers.
#[allow(clippy::too_many_arguments)]
fn exchange_frames(
    req: &Request,
    t: &Target,
    conn: &mut Conn,
    fresh: bool,
    timeout: Duration,
    buf: &mut Vec<u8>,
    body: &mut Vec<u8>,
) -> (Outcome, i32) {
    let mut started = false;
    let mut greeted = !fresh;
    let mut body_read = false;
    // Apache refused the body (413 over LimitRequestBody...): that status is the answer,
    // whatever the application makes of the failed read.
    let mut body_refused: Option<i32> = None;
    let mut declared: Option<u64> = None;
    let mut written: u64 = 0;
    let mut redirect: Option<Vec<u8>> = None;
    let mut override_status: Option<i32> = None;
    loop {
        let kind = match proto::read_frame(&mut conn.reader, buf) {
            Ok(k) => k,
            Err(proto::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                let why = format!(
                    "no response within {}s (request-timeout/socket-timeout)",
                    timeout.as_secs()
                );
                if started {
                    abort(req);
                    return (Outcome::Failed(DONE, why), DONE);
                }
                return (Outcome::Failed(HTTP_GATEWAY_TIME_OUT, why), 0);
            }
            Err(e) if !started && !matches!(e, proto::Error::Protocol(_)) => {
                let safe = !fresh || !greeted;
                return (Outcome::Unanswered(e.to_string(), safe && !body_read), 0);
            }
            Err(e) => {
                let why = format!("the daemon process went away mid-response: {e}");
                return (Outcome::Failed(cut_or_503(req), why), 0);
            }
        };
        if !greeted {
            if kind != Kind::HelloOk {
                return (
                    Outcome::Failed(
                        HTTP_SERVICE_UNAVAILABLE,
                        "the daemon process did not accept the connection".into(),
                    ),
                    0,
                );
            }
            greeted = true;
            continue;
        }
        match kind {
            Kind::Read => {
                let want = buf
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0)
                    .clamp(1, MAX_CHUNK);
                body_read = true;
                body.resize(want as usize, 0);
                let Ok(r) = req.get() else {
                    return (
                        Outcome::Failed(HTTP_INTERNAL_SERVER_ERROR, "request gone".into()),
                        0,
                    );
                };
                let sent = match r.read_into(body) {
                    Ok(n) => proto::write_frame(&mut conn.reader.get_ref(), Kind::Body, &body[..n]),
                    Err(e) => {
                        let msg = match e {
                            crate::apache::request::Error::Body(m) => m.to_string(),
                            crate::apache::request::Error::Http(status) => {
                                body_refused = Some(status);
                                format!("request body refused by Apache with status {status}")
                            }
                            _ => "reading the request body failed".to_string(),
                        };
                        proto::write_frame(
                            &mut conn.reader.get_ref(),
                            Kind::BodyError,
                            msg.as_bytes(),
                        )
                    }
                };
                if let Err(e) = sent {
                    return (
                        Outcome::Failed(
                            HTTP_SERVICE_UNAVAILABLE,
                            format!("sending the request body: {e}"),
                        ),
                        0,
                    );
                }
            }
            Kind::Start if !started => {
                started = true;
                let Ok(start) = proto::parse_start(buf) else {
                    return (
                        Outcome::Failed(
                            HTTP_INTERNAL_SERVER_ERROR,
                            "malformed response headers".into(),
                        ),
                        0,
                    );
                };
                let Ok(r) = req.get() else {
                    return (
                        Outcome::Failed(HTTP_INTERNAL_SERVER_ERROR, "request gone".into()),
                        0,
                    );
                };
                let location = start
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(b"location"))
                    .map(|(_, v)| v.to_vec());
                if start.status == 200 && location.as_ref().is_some_and(|l| l.starts_with(b"/")) {
                    // mod_wsgi daemon mode: Location with 200 is an internal redirect.
                    redirect = location;
                    continue;
                }
                if t.error_override && start.status >= 400 {
                    override_status = Some(start.status as i32);
                    continue;
                }
                if r.body_failed() || body_refused.is_some() {
                    continue;
                }
                r.set_status(start.status as i32);
                let _ = r.set_str_field(StrField::StatusLine, Some(start.status_line));
                let out = r.table(TableField::HeadersOut);
                for (k, v) in &start.headers {
                    if k.eq_ignore_ascii_case(b"content-type") {
                        let _ = r.set_str_field(StrField::ContentType, Some(v));
                    } else if k.eq_ignore_ascii_case(b"content-length") {
                        match std::str::from_utf8(v)
                            .ok()
                            .and_then(|s| s.trim().parse::<u64>().ok())
                        {
                            Some(n) => {
                                declared = Some(n);
                                r.set_content_length(n as i64);
                            }
                            None => {
                                return (
                                    Outcome::Failed(
                                        HTTP_INTERNAL_SERVER_ERROR,
                                        format!(
                                            "Content-Length {:?} is not a number",
                                            String::from_utf8_lossy(v)
                                        ),
                                    ),
                                    0,
                                )
                            }
                        }
                    } else {
                        let _ = out.add(k, v);
                    }
                }
            }
            Kind::Data if started => {
                if redirect.is_some() || override_status.is_some() || body_refused.is_some() {
                    continue;
                }
                let Ok(r) = req.get() else {
                    return (
                        Outcome::Failed(HTTP_INTERNAL_SERVER_ERROR, "request gone".into()),
                        0,
                    );
                };
                let mut data = &buf[..];
                if let Some(cl) = declared {
                    let left = cl.saturating_sub(written) as usize;
                    if data.len() > left {
                        r.log_error(log::APLOG_WARNING, 0, &format!("mod_py: WSGI application wrote more than its Content-Length of {cl} bytes; the excess is not sent"));
                        data = &data[..left];
                    }
                }
                written += data.len() as u64;
                // Flush when no more data is already waiting on the socket, or when END is all
                // that follows: the whole response is here, so it goes to the client now
                // rather than after the handler returns. (Measured under mpm_event, hello,
                // 16 connections: without this, Apache closed ~2500 kept-alive connections
                // per 10 s for "all workers busy"; with it, ~130.) A big chunk is copied into the
                // brigade's 8 KiB buckets instead (passed on at once, being over 64 KiB): set
                // aside as a transient bucket it would be one fresh allocation (and page
                // faults) per chunk.
                let next = conn.reader.buffer();
                let last = next.is_empty() || next[0] == Kind::End as u8;
                let flush = last && data.len() < 64 * 1024;
                if !data.is_empty() {
                    if let Err(e) = r.write(data, flush) {
                        // The client went away: drain the worker's response so the
                        // connection stays usable, nothing else to do.
                        r.log_error(
                            log::APLOG_INFO,
                            0,
                            &format!("mod_py: client went away: {e}"),
                        );
                        return drain(conn, buf, DONE);
                    }
                }
            }
            Kind::End if started => {
                let Ok(r) = req.get() else {
                    return (Outcome::Done, OK);
                };
                if let Some(loc) = redirect {
                    r.internal_redirect(&loc);
                    return (Outcome::Done, OK);
                }
                if let Some(status) = override_status {
                    return (Outcome::Done, status);
                }
                if r.body_failed() {
                    return (Outcome::Done, DONE);
                }
                if let Some(status) = body_refused {
                    r.log_error(log::APLOG_INFO, 0, &format!("mod_py: WSGI application '{}': request body refused by Apache with status {status}", t.filename));
                    return (Outcome::Done, status);
                }
                if let Some(cl) = declared {
                    if written < cl && r.rec().header_only == 0 {
                        // What was written goes out first, so the client sees a cut body.
                        let _ = r.flush();
                        abort(req);
                        return (Outcome::Failed(DONE, format!("the application sent {written} bytes, less than its Content-Length of {cl}")), DONE);
                    }
                }
                if let Err(e) = r.finish_output() {
                    r.log_error(log::APLOG_INFO, 0, &format!("mod_py: {e}"));
                }
                return (Outcome::Done, OK);
            }
            Kind::Abort if started && body_refused.is_some() => {
                return (
                    Outcome::Failed(
                        body_refused.unwrap_or(DONE),
                        "request body refused by Apache".into(),
                    ),
                    0,
                );
            }
            Kind::Abort if started => {
                abort(req);
                let why = String::from_utf8_lossy(buf).into_owned();
                return (Outcome::Failed(DONE, format!("the application failed after its response began ({why}); the response was cut")), DONE);
            }
            other => {
                return (
                    Outcome::Failed(
                        if started {
                            DONE
                        } else {
                            HTTP_INTERNAL_SERVER_ERROR
                        },
                        format!("unexpected frame {other:?}"),
                    ),
                    0,
                );
            }
        }
    }
}

/// Reads and drops frames up to END (the client left); the connection can then be reused.
fn drain(conn: &mut Conn, buf: &mut Vec<u8>, status: i32) -> (Outcome, i32) {
    loop {
        match proto::read_frame(&mut conn.reader, buf) {
            Ok(Kind::End) => return (Outcome::Done, status),
            Ok(Kind::Read) => {
                if proto::write_frame(&mut conn.reader.get_ref(), Kind::BodyError, b"client gone")
                    .is_err()
                {
                    break;
                }
            }
            Ok(Kind::Data | Kind::Start) => {}
            _ => break,
        }
    }
    (Outcome::Failed(status, "client went away".into()), status)
}

/// The worker failed after START: if nothing has reached the client yet, a clean 503 (the
/// headers the worker sent are dropped); otherwise the response is cut.
fn cut_or_503(req: &Request) -> i32 {
    let Ok(r) = req.get() else {
        return DONE;
    };
    if r.rec().sent_bodyct == 0 && r.rec().bytes_sent == 0 {
        r.discard_pending_output();
        let _ = r.table(TableField::HeadersOut).clear();
        return HTTP_SERVICE_UNAVAILABLE;
    }
    r.abort_response();
    DONE
}

fn abort(req: &Request) {
    if let Ok(r) = req.get() {
        r.abort_response();
    }
}

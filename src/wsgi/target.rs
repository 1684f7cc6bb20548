//! Which WSGI application a request goes to, by mod_wsgi's rules: the script file, callable,
//! application group, process group and per-request flags, from the WSGIScriptAlias that
//! matched (its options win) and the per-directory WSGI directives. Unlike the rest of
//! src/wsgi this reads the request (through src/apache); embedded mode (src/python/wsgi.rs)
//! and daemon mode (src/daemon/client.rs) both start here.

use super::config::{expand_application_group, ScriptAlias, WsgiDirConfig};
use crate::apache::log;
use crate::apache::request::{FileKind, RequestRef, StrField, TableField};

pub const HTTP_NOT_FOUND: i32 = crate::sys::HTTP_NOT_FOUND as i32;
pub const HTTP_FORBIDDEN: i32 = crate::sys::HTTP_FORBIDDEN as i32;
pub const HTTP_LENGTH_REQUIRED: i32 = crate::sys::HTTP_LENGTH_REQUIRED as i32;

/// The handler names mod_wsgi answers to.
pub fn is_wsgi_handler(h: &[u8]) -> bool {
    matches!(h, b"wsgi-script" | b"application/x-httpd-wsgi")
}

/// Collapses runs of '/' (mod_wsgi does so for SCRIPT_NAME and PATH_INFO).
pub fn collapse_slashes(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for &c in s {
        if !(c == b'/' && out.last() == Some(&b'/')) {
            out.push(c);
        }
    }
    out
}

/// The WSGIScriptAlias that matched (its index in the server's list, a note of the
/// translate hook) and the process group in force: the alias's `process-group=`, else
/// WSGIProcessGroup; "" for embedded mode (none, or %{GLOBAL}). Cheap: no I/O, no copies.
pub fn process_group<'a>(r: &'a RequestRef<'_>) -> (Option<&'a ScriptAlias>, &'a str) {
    let sconf = &r.server_config().wsgi;
    let alias = r
        .table(TableField::Notes)
        .get(b"modpy.wsgi.alias")
        .ok()
        .flatten()
        .and_then(|i| std::str::from_utf8(&i).ok()?.parse::<usize>().ok())
        .and_then(|i| sconf.script_aliases.get(i));
    let group = alias
        .and_then(|a| a.process_group.as_deref())
        .or(r.per_dir_config().wsgi.process_group.as_deref())
        .unwrap_or("");
    (alias, if group == "%{GLOBAL}" { "" } else { group })
}

#[derive(Debug, Clone)]
pub struct Target {
    /// The script file Apache mapped the request to.
    pub filename: String,
    /// The WSGIScriptAlias(Match) that matched, if any.
    pub alias: Option<ScriptAlias>,
    /// "" for embedded mode (no group, or %{GLOBAL}).
    pub process_group: String,
    pub callable: String,
    /// Expanded (%{GLOBAL} is "").
    pub application_group: String,
    pub pass_authorization: bool,
    pub script_reloading: bool,
    pub error_override: bool,
    /// WSGIHandlerScript: the script whose handle_request serves `filename`.
    pub handler_script: Option<String>,
    /// The script's mtime (µs) as Apache's directory walk found it (r->finfo), so reload
    /// checks need no stat of their own; None under WSGIHandlerScript, where r->finfo is the
    /// file served, not the script.
    pub script_mtime: Option<i64>,
}

/// Resolves the target of a `wsgi-script` request (or of a WSGIHandlerScript handler, whose
/// callable is `handle_request`). Err is the status to answer, already logged.
pub fn resolve(r: &RequestRef<'_>, handler_script: Option<&str>) -> Result<Target, i32> {
    let filename =
        String::from_utf8_lossy(r.str_field(StrField::Filename).unwrap_or_default()).into_owned();
    match r.file_kind() {
        FileKind::File => {}
        FileKind::Directory => {
            r.log_error(
                log::APLOG_ERR,
                0,
                &format!("mod_py: attempt to invoke directory '{filename}' as a WSGI application"),
            );
            return Err(HTTP_FORBIDDEN);
        }
        _ => {
            r.log_error(
                log::APLOG_ERR,
                0,
                &format!("mod_py: target WSGI script not found or unable to stat: {filename}"),
            );
            return Err(HTTP_NOT_FOUND);
        }
    }
    let dconf: &WsgiDirConfig = &r.per_dir_config().wsgi;
    let (alias, process_group) = process_group(r);
    let chunked = r.rec().read_chunked != 0
        || r.table(TableField::HeadersIn)
            .get(b"Transfer-Encoding")
            .ok()
            .flatten()
            .is_some();
    if chunked && !dconf.chunked_request() {
        r.log_error(log::APLOG_ERR, 0, "mod_py: request data read error: chunked request bodies are not enabled (WSGIChunkedRequest Off)");
        return Err(HTTP_LENGTH_REQUIRED);
    }
    // Files served through AddHandler (not a WSGIScriptAlias target) need Options ExecCGI,
    // as with mod_wsgi and CGI scripts.
    if alias.is_none() && !r.exec_cgi_allowed() {
        r.log_error(
            log::APLOG_ERR,
            0,
            &format!("mod_py: Options ExecCGI is off in this directory: {filename}"),
        );
        return Err(HTTP_FORBIDDEN);
    }
    let callable = match handler_script {
        // WSGIHandlerScript: the script's handle_request serves the file (mod_wsgi).
        Some(_) => "handle_request".to_string(),
        None => alias
            .and_then(|a| a.callable_object.clone())
            .unwrap_or_else(|| dconf.callable_object().to_string()),
    };
    let group_spec = alias
        .and_then(|a| a.application_group.clone())
        .unwrap_or_else(|| dconf.application_group().to_string());
    // %{RESOURCE}: host[:port]|SCRIPT_NAME, the port taken from the Host header as mod_wsgi does.
    let host_header = r
        .table(TableField::HeadersIn)
        .get(b"Host")
        .ok()
        .flatten()
        .unwrap_or_default();
    let host_header = String::from_utf8_lossy(&host_header).into_owned();
    let (host, port) = match host_header.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.contains(']') => (h.to_string(), Some(p.to_string())),
        _ => (host_header.clone(), None),
    };
    let host = if host.is_empty() {
        String::from_utf8_lossy(r.str_field(StrField::Hostname).unwrap_or_default()).into_owned()
    } else {
        host
    };
    let uri = r.str_field(StrField::Uri).unwrap_or_default();
    let path_info = r.str_field(StrField::PathInfo).unwrap_or_default();
    let script_name = String::from_utf8_lossy(&collapse_slashes(
        &uri[..uri.len() - path_info.len().min(uri.len())],
    ))
    .into_owned();
    let env = r.table(TableField::SubprocessEnv);
    let application_group =
        expand_application_group(&group_spec, &host, port.as_deref(), &script_name, |k| {
            env.get(k.as_bytes())
                .ok()
                .flatten()
                .map(|v| String::from_utf8_lossy(&v).into_owned())
        });
    Ok(Target {
        filename,
        process_group: process_group.to_string(),
        callable,
        application_group,
        pass_authorization: alias
            .and_then(|a| a.pass_authorization)
            .unwrap_or(dconf.pass_authorization()),
        script_reloading: dconf.script_reloading(),
        error_override: dconf.error_override(),
        alias: alias.cloned(),
        handler_script: handler_script.map(str::to_string),
        // r->finfo is a regular file here (checked above).
        script_mtime: handler_script.is_none().then(|| r.finfo().mtime),
    })
}

/// The request's subprocess_env as the environ the proxy rules (proxy.rs) rewrite.
pub struct TableEnv(pub crate::apache::Table);

impl super::proxy::Env for TableEnv {
    fn get(&self, key: &str) -> Option<String> {
        self.0
            .get(key.as_bytes())
            .ok()
            .flatten()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }
    fn set(&mut self, key: &str, value: &str) {
        let _ = self.0.set(key.as_bytes(), value.as_bytes());
    }
    fn unset(&mut self, key: &str) {
        let _ = self.0.unset(key.as_bytes());
    }
}

/// WSGITrustedProxyHeaders / WSGITrustedProxies applied to the CGI variables in `env`
/// (mod_wsgi's rules, proxy.rs): the environ of embedded and daemon mode alike.
pub fn apply_trusted_proxies(
    env: &crate::apache::Table,
    headers: &[String],
    proxies: Option<&[String]>,
) {
    if headers.is_empty() {
        return;
    }
    let keys: Vec<String> = headers
        .iter()
        .map(|h| super::proxy::environ_key(h))
        .collect();
    let subnets: Option<Vec<super::proxy::Subnet>> = proxies.map(|p| {
        p.iter()
            .filter_map(|s| super::proxy::Subnet::parse(s).ok())
            .collect()
    });
    super::proxy::process(&mut TableEnv(env.clone()), &keys, subnets.as_deref());
}

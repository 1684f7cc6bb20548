//! Values of mod_wsgi's directives, with mod_wsgi 4.x's defaults, parsed from their argument
//! strings (src/apache/config.rs hands them over).

/// `WSGIScriptAlias` / `WSGIScriptAliasMatch` (and their options).
#[derive(Debug, Clone, Default)]
pub struct ScriptAlias {
    /// URL prefix, or a regular expression for WSGIScriptAliasMatch.
    pub url: String,
    /// The script file (may hold $1.. for WSGIScriptAliasMatch).
    pub path: String,
    pub is_match: bool,
    pub process_group: Option<String>,
    pub application_group: Option<String>,
    pub callable_object: Option<String>,
    pub pass_authorization: Option<bool>,
    /// The compiled `url` of a WSGIScriptAliasMatch (compiled by Apache at config time).
    pub regex: Option<std::sync::Arc<dyn super::route::UriRegex>>,
}

impl PartialEq for ScriptAlias {
    fn eq(&self, o: &Self) -> bool {
        (
            &self.url,
            &self.path,
            self.is_match,
            &self.process_group,
            &self.application_group,
        ) == (
            &o.url,
            &o.path,
            o.is_match,
            &o.process_group,
            &o.application_group,
        ) && (&self.callable_object, self.pass_authorization)
            == (&o.callable_object, o.pass_authorization)
    }
}
impl Eq for ScriptAlias {}

/// Per-directory WSGI settings. `None` = not set here (the enclosing section's value applies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WsgiDirConfig {
    pub application_group: Option<String>,
    pub process_group: Option<String>,
    pub callable_object: Option<String>,
    pub script_reloading: Option<bool>,
    pub pass_authorization: Option<bool>,
    pub chunked_request: Option<bool>,
    pub error_override: Option<bool>,
    pub trusted_proxies: Option<Vec<String>>,
    pub trusted_proxy_headers: Option<Vec<String>>,
    pub access_script: Option<String>,
    pub auth_user_script: Option<String>,
    pub auth_group_script: Option<String>,
}

impl WsgiDirConfig {
    pub fn merge(base: &Self, add: &Self) -> Self {
        fn pick<T: Clone>(a: &Option<T>, b: &Option<T>) -> Option<T> {
            a.clone().or_else(|| b.clone())
        }
        WsgiDirConfig {
            application_group: pick(&add.application_group, &base.application_group),
            process_group: pick(&add.process_group, &base.process_group),
            callable_object: pick(&add.callable_object, &base.callable_object),
            script_reloading: pick(&add.script_reloading, &base.script_reloading),
            pass_authorization: pick(&add.pass_authorization, &base.pass_authorization),
            chunked_request: pick(&add.chunked_request, &base.chunked_request),
            error_override: pick(&add.error_override, &base.error_override),
            trusted_proxies: pick(&add.trusted_proxies, &base.trusted_proxies),
            trusted_proxy_headers: pick(&add.trusted_proxy_headers, &base.trusted_proxy_headers),
            access_script: pick(&add.access_script, &base.access_script),
            auth_user_script: pick(&add.auth_user_script, &base.auth_user_script),
            auth_group_script: pick(&add.auth_group_script, &base.auth_group_script),
        }
    }

    /// mod_wsgi's defaults: application group %{RESOURCE}, callable `application`,
    /// script reloading On, the rest Off.
    pub fn application_group(&self) -> &str {
        self.application_group.as_deref().unwrap_or("%{RESOURCE}")
    }
    pub fn callable_object(&self) -> &str {
        self.callable_object.as_deref().unwrap_or("application")
    }
    pub fn script_reloading(&self) -> bool {
        self.script_reloading.unwrap_or(true)
    }
    pub fn pass_authorization(&self) -> bool {
        self.pass_authorization.unwrap_or(false)
    }
    pub fn chunked_request(&self) -> bool {
        self.chunked_request.unwrap_or(false)
    }
    pub fn error_override(&self) -> bool {
        self.error_override.unwrap_or(false)
    }
}

/// Per-server WSGI settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WsgiServerConfig {
    pub script_aliases: Vec<ScriptAlias>,
    /// `WSGIImportScript path [process-group=] [application-group=]`.
    pub import_scripts: Vec<ScriptAlias>,
    /// `WSGIHandlerScript name path`: `AddHandler name .ext` runs files through `path`.
    pub handler_scripts: Vec<(String, String)>,
    pub python_home: Option<String>,
    pub python_path: Vec<String>,
    pub restrict_embedded: Option<bool>,
    pub socket_prefix: Option<String>,
    /// `WSGIDaemonProcess` groups defined in this server (names are global, as in mod_wsgi).
    pub daemon_groups: Vec<crate::daemon::config::DaemonGroup>,
    /// `WSGIDaemonTemplate` definitions of this server (names are global).
    pub daemon_templates: Vec<crate::daemon::config::DaemonTemplate>,
    /// `WSGIDaemonDefault On`: scripts with no process group run in the virtual host's group.
    pub daemon_default: Option<bool>,
}

impl WsgiServerConfig {
    /// The script of the WSGIHandlerScript named `handler` (a request's r->handler), if any.
    pub fn handler_script(&self, handler: &[u8]) -> Option<&str> {
        self.handler_scripts
            .iter()
            .find(|(n, _)| n.as_bytes() == handler)
            .map(|(_, p)| p.as_str())
    }

    pub fn merge(base: &Self, add: &Self) -> Self {
        // A virtual host's aliases come first, then the main server's, as mod_wsgi searches.
        let mut script_aliases = add.script_aliases.clone();
        script_aliases.extend(base.script_aliases.iter().cloned());
        let mut import_scripts = base.import_scripts.clone();
        import_scripts.extend(add.import_scripts.iter().cloned());
        let mut handler_scripts = add.handler_scripts.clone();
        handler_scripts.extend(base.handler_scripts.iter().cloned());
        WsgiServerConfig {
            script_aliases,
            import_scripts,
            handler_scripts,
            python_home: add.python_home.clone().or_else(|| base.python_home.clone()),
            python_path: if add.python_path.is_empty() {
                base.python_path.clone()
            } else {
                add.python_path.clone()
            },
            restrict_embedded: add.restrict_embedded.or(base.restrict_embedded),
            socket_prefix: add
                .socket_prefix
                .clone()
                .or_else(|| base.socket_prefix.clone()),
            // Each server keeps its own definitions; runtime.rs gathers them from all servers.
            daemon_groups: add.daemon_groups.clone(),
            daemon_templates: add.daemon_templates.clone(),
            daemon_default: add.daemon_default.or(base.daemon_default),
        }
    }
}

/// Splits directive arguments like Apache's ap_getword_conf: whitespace-separated words,
/// double or single quotes group, backslash escapes the quote character inside quotes.
pub fn split_args(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return Ok(out);
        };
        let mut word = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == '\\' && chars.peek() == Some(&first) {
                    word.push(first);
                    chars.next();
                } else if c == first {
                    closed = true;
                    break;
                } else {
                    word.push(c);
                }
            }
            if !closed {
                return Err(format!("unterminated quote in {s:?}"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        out.push(word);
    }
}

/// `WSGIScriptAlias URL-path file-path [option=value ...]` (also the Match form).
pub fn parse_script_alias(args: &str, is_match: bool) -> Result<ScriptAlias, String> {
    let words = split_args(args)?;
    if words.len() < 2 {
        return Err("expected URL-path, file-path and optional options (process-group=, application-group=, callable-object=, pass-authorization=)".into());
    }
    let mut alias = ScriptAlias {
        url: words[0].clone(),
        path: words[1].clone(),
        is_match,
        ..Default::default()
    };
    if !is_match && !alias.url.starts_with('/') {
        return Err(format!("URL-path {:?} must start with /", alias.url));
    }
    parse_options(&words[2..], &mut alias)?;
    Ok(alias)
}

/// `WSGIImportScript file-path process-group=... application-group=...`.
pub fn parse_import_script(args: &str) -> Result<ScriptAlias, String> {
    let words = split_args(args)?;
    let Some(path) = words.first() else {
        return Err("expected file-path process-group=NAME application-group=NAME".into());
    };
    let mut alias = ScriptAlias {
        path: path.clone(),
        ..Default::default()
    };
    parse_options(&words[1..], &mut alias)?;
    if alias.callable_object.is_some() || alias.pass_authorization.is_some() {
        return Err(
            "WSGIImportScript takes only the process-group= and application-group= options".into(),
        );
    }
    Ok(alias)
}

fn parse_options(words: &[String], alias: &mut ScriptAlias) -> Result<(), String> {
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!("{w:?} is not an option=value"));
        };
        match k {
            "process-group" => alias.process_group = Some(v.to_string()),
            "application-group" => alias.application_group = Some(v.to_string()),
            "callable-object" => alias.callable_object = Some(v.to_string()),
            "pass-authorization" => alias.pass_authorization = Some(parse_on_off(v)?),
            _ => return Err(format!("unknown option {k:?} (expected process-group, application-group, callable-object or pass-authorization)")),
        }
    }
    Ok(())
}

pub fn parse_on_off(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{v:?} must be On or Off")),
    }
}

/// The application group name for a request (mod_wsgi's expansion): `%{GLOBAL}` is "",
/// `%{RESOURCE}` is `host[:port]|script_name`, `%{SERVER}` is `host[:port]`; `%{ENV:X}` is
/// looked up with `env`.
pub fn expand_application_group(
    spec: &str,
    host: &str,
    port: Option<&str>,
    script_name: &str,
    env: impl Fn(&str) -> Option<String>,
) -> String {
    let server = match port {
        Some(p) if !p.is_empty() => format!("{host}:{p}"),
        _ => host.to_string(),
    };
    match spec {
        "%{GLOBAL}" => String::new(),
        "%{RESOURCE}" => format!("{server}|{script_name}"),
        "%{SERVER}" => server,
        s if s.starts_with("%{ENV:") && s.ends_with('}') => {
            env(&s[6..s.len() - 1]).unwrap_or_default()
        }
        s => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split() {
        assert_eq!(
            split_args(r#"/ "/a b/c.wsgi" x=1"#).unwrap(),
            vec!["/", "/a b/c.wsgi", "x=1"]
        );
        assert_eq!(split_args(r#"'it\'s'"#).unwrap(), vec!["it's"]);
        assert!(split_args(r#""open"#).is_err());
        assert!(split_args("   ").unwrap().is_empty());
    }

    #[test]
    fn script_alias() {
        let a = parse_script_alias(
            "/app /srv/app.wsgi process-group=g application-group=%{GLOBAL} pass-authorization=On",
            false,
        )
        .unwrap();
        assert_eq!(a.url, "/app");
        assert_eq!(a.path, "/srv/app.wsgi");
        assert_eq!(a.process_group.as_deref(), Some("g"));
        assert_eq!(a.application_group.as_deref(), Some("%{GLOBAL}"));
        assert_eq!(a.pass_authorization, Some(true));
        assert!(parse_script_alias("/app", false)
            .unwrap_err()
            .contains("expected"));
        assert!(parse_script_alias("app /x", false)
            .unwrap_err()
            .contains("must start with /"));
        assert!(parse_script_alias("/a /x bogus=1", false)
            .unwrap_err()
            .contains("unknown option"));
        assert!(parse_script_alias("/a /x pass-authorization=maybe", false).is_err());
        assert!(parse_script_alias("^/(\\w+)$ /srv/$1.wsgi", true).is_ok());
    }

    #[test]
    fn groups() {
        let env = |k: &str| (k == "X").then(|| "fromenv".to_string());
        assert_eq!(
            expand_application_group("%{GLOBAL}", "h", Some("80"), "/s", env),
            ""
        );
        assert_eq!(
            expand_application_group("%{RESOURCE}", "127.0.0.1", Some("8080"), "/sub", env),
            "127.0.0.1:8080|/sub"
        );
        assert_eq!(
            expand_application_group("%{RESOURCE}", "h", None, "", env),
            "h|"
        );
        assert_eq!(
            expand_application_group("%{SERVER}", "h", Some("81"), "/s", env),
            "h:81"
        );
        assert_eq!(
            expand_application_group("%{ENV:X}", "h", None, "/s", env),
            "fromenv"
        );
        assert_eq!(
            expand_application_group("mine", "h", None, "/s", env),
            "mine"
        );
    }

    #[test]
    fn merges() {
        let base = WsgiDirConfig {
            script_reloading: Some(false),
            ..Default::default()
        };
        let add = WsgiDirConfig {
            callable_object: Some("app".into()),
            ..Default::default()
        };
        let m = WsgiDirConfig::merge(&base, &add);
        assert!(!m.script_reloading());
        assert_eq!(m.callable_object(), "app");
        assert_eq!(WsgiDirConfig::default().application_group(), "%{RESOURCE}");
        assert!(WsgiDirConfig::default().script_reloading());
    }
}

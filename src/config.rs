//! mod_py's configuration values, as parsed from httpd.conf / .htaccess: pure data and pure
//! parsing, no Apache calls (src/apache/config.rs is the glue that Apache calls).

use std::sync::Arc;

/// One `PythonHandler` line: handlers in order, the extensions it is restricted to
/// (`| .py .txt`), and the directory of its `<Directory>` section (prepended to sys.path).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandlerEntry {
    pub handler: String,
    pub extensions: Vec<String>,
    pub directory: Option<String>,
    /// From `PythonHandlerModule`: a module without the phase's function is skipped.
    pub silent: bool,
}

impl HandlerEntry {
    /// `module[::function]` split in two; the function defaults to `default_fn`.
    pub fn module_and_function<'a>(&'a self, default_fn: &'a str) -> (&'a str, &'a str) {
        match self.handler.split_once("::") {
            Some((m, f)) => (m, f),
            None => (self.handler.as_str(), default_fn),
        }
    }

    /// Does a `| .ext` restriction allow this file name?
    pub fn applies_to(&self, filename: Option<&[u8]>) -> bool {
        if self.extensions.is_empty() {
            return true;
        }
        let Some(name) = filename else { return false };
        self.extensions.iter().any(|e| name.ends_with(e.as_bytes()))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirConfig {
    /// Handlers of the content phase (`PythonHandler`), in the order they were configured.
    pub handlers: Option<Arc<Vec<HandlerEntry>>>,
    pub handler_module: Option<String>,
    pub python_path: Option<Arc<str>>,
    /// `PythonOption key value` in order; a `None` value is `PythonOption key` (unset).
    pub options: Vec<(String, Option<String>)>,
    pub debug: Option<bool>,
    pub autoreload: Option<bool>,
    pub interpreter: Option<String>,
    /// `PythonInterpPerDirectory` / `PythonInterpPerDirective`: only name the interpreter
    /// (req.interpreter); one interpreter runs every handler (DESIGN rule 2).
    pub interp_per_directory: Option<bool>,
    pub interp_per_directive: Option<bool>,
    /// PythonHandler was set inside <Location>: there is no file behind the URL, so the
    /// translate phase skips the file-system walk (mod_python's d_is_location).
    pub location_handler: Option<bool>,
    /// That <Location>'s path (mod_python's hlist.directory there).
    pub location: Option<String>,
    /// mod_wsgi's per-directory directives.
    pub wsgi: crate::wsgi::config::WsgiDirConfig,
    // ---- request phases other than the content phase (src/phase.rs) ----
    pub phases: crate::phase::PhaseLists,
}

impl DirConfig {
    /// Apache's merge: what the inner section sets wins, options accumulate.
    pub fn merge(base: &DirConfig, add: &DirConfig) -> DirConfig {
        let mut options = base.options.clone();
        options.extend(add.options.iter().cloned());
        // An inner PythonHandlerModule stands for every phase, the content phase included.
        let inherit_handlers = add.phases.module.is_none();
        DirConfig {
            handlers: add
                .handlers
                .clone()
                .or_else(|| base.handlers.clone().filter(|_| inherit_handlers)),
            handler_module: add
                .handler_module
                .clone()
                .or_else(|| base.handler_module.clone()),
            python_path: add.python_path.clone().or_else(|| base.python_path.clone()),
            options,
            debug: add.debug.or(base.debug),
            autoreload: add.autoreload.or(base.autoreload),
            interpreter: add.interpreter.clone().or_else(|| base.interpreter.clone()),
            interp_per_directory: add.interp_per_directory.or(base.interp_per_directory),
            interp_per_directive: add.interp_per_directive.or(base.interp_per_directive),
            location_handler: add.location_handler.or(base.location_handler),
            location: add.location.clone().or_else(|| base.location.clone()),
            wsgi: crate::wsgi::config::WsgiDirConfig::merge(&base.wsgi, &add.wsgi),
            phases: crate::phase::PhaseLists::merge(&base.phases, &add.phases),
        }
    }

    /// The effective `PythonOption` values (later lines win, a bare key removes it).
    pub fn effective_options(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.options {
            out.retain(|(ok, _)| ok != k);
            if let Some(v) = v {
                out.push((k.clone(), v.clone()));
            }
        }
        out
    }

    pub fn debug(&self) -> bool {
        self.debug.unwrap_or(false)
    }

    /// mod_python's default: On.
    pub fn autoreload(&self) -> bool {
        self.autoreload.unwrap_or(true)
    }

    /// The handler list of the content phase; `PythonHandlerModule` stands in when none is set.
    pub fn content_handlers(&self) -> Arc<Vec<HandlerEntry>> {
        match (&self.handlers, &self.phases.module) {
            (Some(h), _) => h.clone(),
            (None, Some(m)) => m.clone(),
            _ => Arc::new(vec![]),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerConfig {
    /// `PythonImport module [interpreter]`, imported at child start.
    pub imports: Vec<(String, String)>,
    /// mod_wsgi's server-level directives.
    pub wsgi: crate::wsgi::config::WsgiServerConfig,
    /// `PythonOptimize On`: Python's -O (set when the child starts Python).
    pub optimize: Option<bool>,
}

impl ServerConfig {
    pub fn merge(base: &ServerConfig, add: &ServerConfig) -> ServerConfig {
        let mut imports = base.imports.clone();
        imports.extend(add.imports.iter().cloned());
        ServerConfig {
            imports,
            wsgi: crate::wsgi::config::WsgiServerConfig::merge(&base.wsgi, &add.wsgi),
            optimize: add.optimize.or(base.optimize),
        }
    }
}

/// A dotted Python module name: `pkg.mod`.
pub fn is_module_name(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_identifier)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// Validates `module[::function]` (the function may be dotted: `obj.method`).
pub fn check_handler_name(h: &str) -> Result<(), String> {
    let (m, f) = h.split_once("::").unwrap_or((h, "handler"));
    if !is_module_name(m) {
        return Err(format!("'{h}': '{m}' is not a Python module name"));
    }
    if !f.split('.').all(is_identifier) {
        return Err(format!("'{h}': '{f}' is not a Python function name"));
    }
    Ok(())
}

/// Parses the arguments of `PythonHandler` and the other handler directives:
/// `module[::function] [more handlers...] [| .ext [.ext...]]`.
pub fn parse_handler_args(
    args: &str,
    directory: Option<&str>,
) -> Result<Vec<HandlerEntry>, String> {
    let (names, exts) = match args.split_once('|') {
        Some((n, e)) => (n, Some(e)),
        None => (args, None),
    };
    let extensions: Vec<String> = exts
        .map(|e| e.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    if exts.is_some() && extensions.is_empty() {
        return Err("'|' must be followed by file extensions such as .py".into());
    }
    if let Some(bad) = extensions.iter().find(|e| !e.starts_with('.')) {
        return Err(format!("'{bad}' is not a file extension (expected .ext)"));
    }
    let handlers: Vec<&str> = names.split_whitespace().collect();
    if handlers.is_empty() {
        return Err("expected at least one handler: module[::function]".into());
    }
    handlers
        .into_iter()
        .map(|h| {
            check_handler_name(h)?;
            Ok(HandlerEntry {
                handler: h.to_string(),
                extensions: extensions.clone(),
                directory: directory.map(str::to_string),
                silent: false,
            })
        })
        .collect()
}

/// `On`/`Off` style flags arrive from Apache as ints; strings are for PythonOption-like values.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_args() {
        let h = parse_handler_args("app::hello other | .py .txt", Some("/srv")).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].module_and_function("handler"), ("app", "hello"));
        assert_eq!(h[1].module_and_function("handler"), ("other", "handler"));
        assert_eq!(h[0].extensions, vec![".py", ".txt"]);
        assert_eq!(h[1].directory.as_deref(), Some("/srv"));
        assert!(h[0].applies_to(Some(b"/srv/x.py")));
        assert!(!h[0].applies_to(Some(b"/srv/x.html")));
        assert!(!h[0].applies_to(None));
    }

    #[test]
    fn handler_args_errors() {
        assert!(parse_handler_args("", None)
            .unwrap_err()
            .contains("at least one"));
        assert!(parse_handler_args("9bad", None)
            .unwrap_err()
            .contains("module name"));
        assert!(parse_handler_args("a::b-c", None)
            .unwrap_err()
            .contains("function name"));
        assert!(parse_handler_args("a |", None)
            .unwrap_err()
            .contains("extensions"));
        assert!(parse_handler_args("a | py", None)
            .unwrap_err()
            .contains("not a file extension"));
        assert!(parse_handler_args("pkg.mod::Obj.method", None).is_ok());
    }

    #[test]
    fn merge_and_options() {
        let base = DirConfig {
            options: vec![
                ("a".into(), Some("1".into())),
                ("b".into(), Some("2".into())),
            ],
            debug: Some(true),
            ..Default::default()
        };
        let add = DirConfig {
            options: vec![("a".into(), Some("3".into())), ("b".into(), None)],
            autoreload: Some(false),
            ..Default::default()
        };
        let m = DirConfig::merge(&base, &add);
        assert_eq!(
            m.effective_options(),
            vec![("a".to_string(), "3".to_string())]
        );
        assert!(m.debug());
        assert!(!m.autoreload());
        assert!(DirConfig::default().autoreload());
        assert!(!DirConfig::default().debug());
    }

    #[test]
    fn handler_module_fallback() {
        let mut c = DirConfig {
            handler_module: Some("mymod".into()),
            ..Default::default()
        };
        c.phases.set_module("mymod", None);
        assert_eq!(c.content_handlers()[0].handler, "mymod");
        assert!(c.content_handlers()[0].silent);
        // an inner PythonHandlerModule hides inherited PythonHandler lines
        let outer = DirConfig {
            handlers: Some(Arc::new(parse_handler_args("a", None).unwrap())),
            ..Default::default()
        };
        assert_eq!(
            DirConfig::merge(&outer, &c).content_handlers()[0].handler,
            "mymod"
        );
        assert_eq!(
            DirConfig::merge(&c, &outer).content_handlers()[0].handler,
            "a"
        );
        assert!(DirConfig::default().content_handlers().is_empty());
    }
}

// ---- issue 4: filter and connection-handler directives (src/config/filters.rs) ----
pub mod filters;

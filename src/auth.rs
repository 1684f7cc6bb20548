//! `PythonAuthnProvider` / `PythonAuthzProvider` values: which Python functions an Apache
//! 2.4 auth provider name stands for; and mod_wsgi's built-in providers `wsgi` /
//! `wsgi-group` (WSGIAuthUserScript / WSGIAuthGroupScript). Pure data and parsing
//! (src/apache/provider.rs registers them with Apache, src/python/auth.rs calls them).

use crate::config::check_handler_name;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// AUTHN_PROVIDER_GROUP: `AuthBasicProvider NAME`, `AuthDigestProvider NAME`.
    Authn,
    /// AUTHZ_PROVIDER_GROUP: `Require NAME args...`.
    Authz,
}

/// Where a provider's Python code comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderSource {
    /// `PythonAuthnProvider` / `PythonAuthzProvider`: `module::function`, called with the
    /// request object.
    Python,
    /// mod_wsgi's `wsgi` / `wsgi-group`, registered whenever mod_py is loaded: the
    /// WSGIAuthUserScript / WSGIAuthGroupScript in effect for the request, whose functions are
    /// called with a WSGI environ.
    WsgiScript,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSpec {
    pub kind: ProviderKind,
    pub source: ProviderSource,
    pub name: String,
    /// `module[::function]` of check_password (authn) / check_authorization (authz); empty
    /// for the WsgiScript providers (the script comes from the request's configuration).
    pub handler: String,
    /// Authn only: `module::function` of get_realm_hash when given explicitly.
    pub realm_hash: Option<String>,
}

/// The function called when the handler names only its module.
pub const CHECK_PASSWORD: &str = "check_password";
pub const GET_REALM_HASH: &str = "get_realm_hash";
pub const CHECK_AUTHORIZATION: &str = "check_authorization";

/// mod_wsgi's provider names (`AuthBasicProvider wsgi`, `Require wsgi-group ...`) and the
/// functions its scripts define.
pub const WSGI_AUTHN_NAME: &str = "wsgi";
pub const WSGI_AUTHZ_NAME: &str = "wsgi-group";
pub const WSGI_CHECK_PASSWORD: &str = "check_password";
pub const WSGI_GET_REALM_HASH: &str = "get_realm_hash";
pub const WSGI_GROUPS_FOR_USER: &str = "groups_for_user";
pub const WSGI_ALLOW_ACCESS: &str = "allow_access";

fn split<'a>(h: &'a str, default_fn: &'static str) -> (&'a str, &'a str) {
    h.split_once("::").unwrap_or((h, default_fn))
}

/// Apache provider names are single words; keep them to what a `Require` line can spell.
fn check_provider_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(format!(
            "'{name}' is not a provider name (letters, digits, '_', '-', '.')"
        ));
    }
    Ok(())
}

impl ProviderSpec {
    /// `PythonAuthnProvider NAME module[::function] [module::get_realm_hash_function]`
    pub fn parse_authn(
        name: &str,
        handler: &str,
        realm_hash: Option<&str>,
    ) -> Result<ProviderSpec, String> {
        check_provider_name(name)?;
        check_handler_name(handler)?;
        if let Some(r) = realm_hash {
            if !r.contains("::") {
                return Err(format!(
                    "'{r}': the get_realm_hash function must be given as module::function"
                ));
            }
            check_handler_name(r)?;
        }
        Ok(ProviderSpec {
            kind: ProviderKind::Authn,
            source: ProviderSource::Python,
            name: name.to_string(),
            handler: handler.to_string(),
            realm_hash: realm_hash.map(str::to_string),
        })
    }

    /// `PythonAuthzProvider NAME module[::function]`
    pub fn parse_authz(name: &str, handler: &str) -> Result<ProviderSpec, String> {
        check_provider_name(name)?;
        check_handler_name(handler)?;
        Ok(ProviderSpec {
            kind: ProviderKind::Authz,
            source: ProviderSource::Python,
            name: name.to_string(),
            handler: handler.to_string(),
            realm_hash: None,
        })
    }

    /// mod_wsgi's `wsgi` (authn) or `wsgi-group` (authz) provider.
    pub fn wsgi(kind: ProviderKind) -> ProviderSpec {
        ProviderSpec {
            kind,
            source: ProviderSource::WsgiScript,
            name: match kind {
                ProviderKind::Authn => WSGI_AUTHN_NAME,
                ProviderKind::Authz => WSGI_AUTHZ_NAME,
            }
            .to_string(),
            handler: String::new(),
            realm_hash: None,
        }
    }

    /// The directive that configures this provider's code.
    pub fn directive(&self) -> &'static str {
        match (self.source, self.kind) {
            (ProviderSource::Python, ProviderKind::Authn) => "PythonAuthnProvider",
            (ProviderSource::Python, ProviderKind::Authz) => "PythonAuthzProvider",
            (ProviderSource::WsgiScript, ProviderKind::Authn) => "WSGIAuthUserScript",
            (ProviderSource::WsgiScript, ProviderKind::Authz) => "WSGIAuthGroupScript",
        }
    }

    /// What the provider's name stands for, for "already registered (as ...)".
    pub fn describe(&self) -> String {
        match self.source {
            ProviderSource::Python => self.handler.clone(),
            ProviderSource::WsgiScript => format!(
                "mod_wsgi's built-in provider for {}, which mod_py registers",
                self.directive()
            ),
        }
    }

    /// (module, function) of check_password / check_authorization.
    pub fn check_function(&self) -> (&str, &str) {
        match self.kind {
            ProviderKind::Authn => split(&self.handler, CHECK_PASSWORD),
            ProviderKind::Authz => split(&self.handler, CHECK_AUTHORIZATION),
        }
    }

    /// (module, function) of get_realm_hash: the one given, else `get_realm_hash` of the
    /// check_password function's module.
    pub fn realm_hash_function(&self) -> (&str, &str) {
        match &self.realm_hash {
            Some(r) => split(r, GET_REALM_HASH),
            None => (split(&self.handler, CHECK_PASSWORD).0, GET_REALM_HASH),
        }
    }
}

/// A digest realm hash as mod_auth_digest compares it: 32 hex digits, lower case.
pub fn normalize_realm_hash(h: &str) -> Option<String> {
    let h = h.trim();
    (h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit())).then(|| h.to_ascii_lowercase())
}

// ---- the environ of mod_wsgi's auth scripts (what ap_add_cgi_vars would add) ----

/// The request-URI of the request line, as ap_add_cgi_vars' REQUEST_URI: the word after the
/// method ("" without a request line).
pub fn original_uri(the_request: Option<&[u8]>) -> &[u8] {
    let Some(line) = the_request else {
        return b"";
    };
    let rest = match line.iter().position(|c| c.is_ascii_whitespace()) {
        Some(i) => &line[i..],
        None => return b"",
    };
    let start = rest
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let rest = &rest[start..];
    let end = rest
        .iter()
        .position(|c| c.is_ascii_whitespace())
        .unwrap_or(rest.len());
    &rest[..end]
}

/// ap_find_path_info: where PATH_INFO starts in `uri` (so SCRIPT_NAME is `uri[..n]`), runs of
/// '/' in the URI matching one in the path info.
pub fn find_path_info(uri: &[u8], path_info: &[u8]) -> usize {
    let mut lu = uri.len() as isize;
    let mut lp = path_info.len() as isize;
    loop {
        // while (lu-- && lp-- && uri[lu] == path_info[lp])
        if lu == 0 {
            lu = -1;
            break;
        }
        lu -= 1;
        if lp == 0 {
            break;
        }
        lp -= 1;
        if uri[lu as usize] != path_info[lp as usize] {
            break;
        }
        if path_info[lp as usize] == b'/' {
            while lu > 0 && uri[lu as usize - 1] == b'/' {
                lu -= 1;
            }
        }
    }
    let mut lu = lu.max(0) as usize;
    while lu < uri.len() && uri[lu] != b'/' {
        lu += 1;
    }
    lu
}

/// `Require wsgi-group g1 "g 2" ...`: is any required group among the user's groups?
/// Group names compare as mod_wsgi compares them (apr_table keys: ASCII case-insensitive).
pub fn in_required_group(groups: &[Vec<u8>], require_args: &[u8]) -> bool {
    let args = String::from_utf8_lossy(require_args);
    let words = crate::wsgi::config::split_args(&args)
        .unwrap_or_else(|_| args.split_whitespace().map(str::to_string).collect());
    words
        .iter()
        .any(|w| groups.iter().any(|g| g.eq_ignore_ascii_case(w.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authn() {
        let s = ProviderSpec::parse_authn("pyauth", "auth.users", None).unwrap();
        assert_eq!(s.check_function(), ("auth.users", "check_password"));
        assert_eq!(s.realm_hash_function(), ("auth.users", "get_realm_hash"));
        let s = ProviderSpec::parse_authn("p", "m::check", Some("other::realm")).unwrap();
        assert_eq!(s.check_function(), ("m", "check"));
        assert_eq!(s.realm_hash_function(), ("other", "realm"));
        assert_eq!(s.directive(), "PythonAuthnProvider");
        assert!(ProviderSpec::parse_authn("p", "m", Some("other"))
            .unwrap_err()
            .contains("module::function"));
        assert!(ProviderSpec::parse_authn("bad name", "m", None)
            .unwrap_err()
            .contains("provider name"));
        assert!(ProviderSpec::parse_authn("p", "9m", None)
            .unwrap_err()
            .contains("module name"));
    }

    #[test]
    fn authz() {
        let s = ProviderSpec::parse_authz("py-group", "groups::allowed").unwrap();
        assert_eq!(s.check_function(), ("groups", "allowed"));
        let s = ProviderSpec::parse_authz("g", "groups").unwrap();
        assert_eq!(s.check_function(), ("groups", "check_authorization"));
        assert!(ProviderSpec::parse_authz("", "m").is_err());
        assert!(ProviderSpec::parse_authz("x", "m::f-g").is_err());
    }

    #[test]
    fn wsgi_specs() {
        let a = ProviderSpec::wsgi(ProviderKind::Authn);
        assert_eq!(
            (a.name.as_str(), a.directive()),
            ("wsgi", "WSGIAuthUserScript")
        );
        assert_eq!(a.source, ProviderSource::WsgiScript);
        let z = ProviderSpec::wsgi(ProviderKind::Authz);
        assert_eq!(
            (z.name.as_str(), z.directive()),
            ("wsgi-group", "WSGIAuthGroupScript")
        );
        assert!(z.describe().contains("WSGIAuthGroupScript"));
        let p = ProviderSpec::parse_authz("g", "groups").unwrap();
        assert_eq!(p.describe(), "groups");
    }

    #[test]
    fn cgi_vars() {
        assert_eq!(original_uri(Some(b"GET /a/b?x=1 HTTP/1.1")), b"/a/b?x=1");
        assert_eq!(original_uri(Some(b"GET  /a")), b"/a");
        assert_eq!(original_uri(Some(b"GET")), b"");
        assert_eq!(original_uri(None), b"");
        fn f<'a>(u: &'a str, p: &str) -> &'a str {
            &u[..find_path_info(u.as_bytes(), p.as_bytes())]
        }
        assert_eq!(f("/app.wsgi/extra", "/extra"), "/app.wsgi");
        assert_eq!(f("/app.wsgi//extra", "/extra"), "/app.wsgi");
        assert_eq!(f("/a/b/c", "/b/c"), "/a");
        assert_eq!(f("/abc", "/abc"), "");
        assert_eq!(f("/x/y", ""), "/x/y");
        assert_eq!(f("/x/yz", "z"), "/x/yz");
    }

    #[test]
    fn groups() {
        let g = vec![b"admins".to_vec(), b"Staff".to_vec()];
        assert!(in_required_group(&g, b"other admins"));
        assert!(in_required_group(&g, b"staff"));
        assert!(!in_required_group(&g, b"others"));
        assert!(!in_required_group(&g, b""));
        assert!(in_required_group(&[b"a b".to_vec()], b"x \"a b\""));
        assert!(!in_required_group(&[], b"admins"));
    }

    #[test]
    fn realm_hash() {
        assert_eq!(
            normalize_realm_hash("0123456789ABCDEF0123456789abcdef").as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(normalize_realm_hash("xyz"), None);
        assert_eq!(normalize_realm_hash(&"g".repeat(32)), None);
    }
}

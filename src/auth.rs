//! `PythonAuthnProvider` / `PythonAuthzProvider` values: which Python functions an Apache
//! 2.4 auth provider name stands for. Pure data and parsing (src/apache/provider.rs registers
//! them with Apache, src/python/auth.rs calls them).

use crate::config::check_handler_name;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// AUTHN_PROVIDER_GROUP: `AuthBasicProvider NAME`, `AuthDigestProvider NAME`.
    Authn,
    /// AUTHZ_PROVIDER_GROUP: `Require NAME args...`.
    Authz,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSpec {
    pub kind: ProviderKind,
    pub name: String,
    /// `module[::function]` of check_password (authn) / check_authorization (authz).
    pub handler: String,
    /// Authn only: `module::function` of get_realm_hash when given explicitly.
    pub realm_hash: Option<String>,
}

/// The function called when the handler names only its module.
pub const CHECK_PASSWORD: &str = "check_password";
pub const GET_REALM_HASH: &str = "get_realm_hash";
pub const CHECK_AUTHORIZATION: &str = "check_authorization";

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
            name: name.to_string(),
            handler: handler.to_string(),
            realm_hash: None,
        })
    }

    pub fn directive(&self) -> &'static str {
        match self.kind {
            ProviderKind::Authn => "PythonAuthnProvider",
            ProviderKind::Authz => "PythonAuthzProvider",
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
    fn realm_hash() {
        assert_eq!(
            normalize_realm_hash("0123456789ABCDEF0123456789abcdef").as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(normalize_realm_hash("xyz"), None);
        assert_eq!(normalize_realm_hash(&"g".repeat(32)), None);
    }
}

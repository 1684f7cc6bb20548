//! WSGIScriptAlias routing, as mod_alias / mod_wsgi match URL prefixes.

use super::config::ScriptAlias;

/// A compiled regular expression (Apache's, in embedded mode): byte ranges of $0..$9.
pub trait UriRegex: Send + Sync + std::fmt::Debug {
    fn captures(&self, subject: &[u8]) -> Option<Vec<Option<(usize, usize)>>>;
}

/// `$0`..`$9` in `template` replaced by the groups of a match of `subject` (as ap_pregsub;
/// `\$` is a literal dollar).
pub fn substitute(template: &str, subject: &[u8], groups: &[Option<(usize, usize)>]) -> Vec<u8> {
    let t = template.as_bytes();
    let mut out = Vec::with_capacity(t.len());
    let mut i = 0;
    while i < t.len() {
        match (t[i], t.get(i + 1)) {
            (b'\\', Some(&c)) if c == b'$' || c == b'\\' => {
                out.push(c);
                i += 2;
            }
            (b'$', Some(d)) if d.is_ascii_digit() => {
                if let Some(Some((s, e))) = groups.get((d - b'0') as usize) {
                    out.extend_from_slice(&subject[*s..*e]);
                }
                i += 2;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// How many bytes of `uri` the alias `alias` matches (mod_alias's alias_matches): a run of
/// slashes in the alias matches any run of slashes in the URI, and the alias must end on a
/// path-segment boundary. 0 = no match.
pub fn alias_matches(uri: &[u8], alias: &[u8]) -> usize {
    let (mut a, mut u) = (0, 0);
    while a < alias.len() {
        if alias[a] == b'/' {
            if uri.get(u) != Some(&b'/') {
                return 0;
            }
            while alias.get(a) == Some(&b'/') {
                a += 1;
            }
            while uri.get(u) == Some(&b'/') {
                u += 1;
            }
        } else {
            if uri.get(u) != Some(&alias[a]) {
                return 0;
            }
            a += 1;
            u += 1;
        }
    }
    if alias.last() != Some(&b'/') && u < uri.len() && uri[u] != b'/' {
        return 0;
    }
    u
}

/// The first WSGIScriptAlias matching `uri`: its index and the file name Apache should map
/// the request to (the script followed by the rest of the URI, which Apache's directory walk
/// turns into PATH_INFO, as for ScriptAlias).
pub fn route(uri: &[u8], aliases: &[ScriptAlias]) -> Option<(usize, Vec<u8>)> {
    if !uri.is_empty() && uri[0] != b'/' {
        return None;
    }
    aliases.iter().enumerate().find_map(|(i, a)| {
        if let Some(re) = &a.regex {
            // WSGIScriptAliasMatch: the script is the substituted path; the rest of the URI
            // after the match follows it (as mod_wsgi does).
            let groups = re.captures(uri)?;
            let (_, end) = groups.first().copied().flatten()?;
            let mut filename = substitute(&a.path, uri, &groups);
            filename.extend_from_slice(&uri[end..]);
            return Some((i, filename));
        }
        if a.is_match {
            return None;
        }
        let l = alias_matches(uri, a.url.as_bytes());
        if l == 0 {
            return None;
        }
        let mut filename = a.path.as_bytes().to_vec();
        filename.extend_from_slice(if a.url == "/" { uri } else { &uri[l..] });
        Some((i, filename))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(url: &str, path: &str) -> ScriptAlias {
        ScriptAlias {
            url: url.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    #[test]
    fn matching() {
        assert_eq!(alias_matches(b"/sub/x", b"/sub"), 4);
        assert_eq!(alias_matches(b"/sub", b"/sub"), 4);
        assert_eq!(alias_matches(b"/subway", b"/sub"), 0);
        assert_eq!(alias_matches(b"//sub//x", b"/sub"), 5);
        assert_eq!(alias_matches(b"/x", b"/"), 1);
        assert_eq!(alias_matches(b"/other", b"/sub"), 0);
        assert_eq!(alias_matches(b"/sub/", b"/sub/"), 5);
    }

    #[test]
    fn substitution() {
        let subject = b"/app/blog/x";
        let groups = vec![Some((0, 9)), Some((5, 9))];
        assert_eq!(
            substitute("/srv/$1.wsgi", subject, &groups),
            b"/srv/blog.wsgi"
        );
        assert_eq!(substitute("/srv/\\$1/$2", subject, &groups), b"/srv/$1/");
    }

    #[test]
    fn routing() {
        let aliases = vec![alias("/sub", "/srv/sub.wsgi"), alias("/", "/srv/root.wsgi")];
        assert_eq!(
            route(b"/sub/x/y", &aliases),
            Some((0, b"/srv/sub.wsgi/x/y".to_vec()))
        );
        assert_eq!(
            route(b"/sub", &aliases),
            Some((0, b"/srv/sub.wsgi".to_vec()))
        );
        assert_eq!(
            route(b"/other", &aliases),
            Some((1, b"/srv/root.wsgi/other".to_vec()))
        );
        assert_eq!(route(b"*", &aliases), None);
        assert_eq!(route(b"/x", &[]), None);
    }
}

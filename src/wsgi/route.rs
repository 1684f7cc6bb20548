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

/// Where a WSGIScriptAlias sends a request: the alias's index, the script (the alias target,
/// substituted for WSGIScriptAliasMatch) and the rest of the URI after the matched part.
#[derive(Debug, PartialEq, Eq)]
pub struct Route {
    pub index: usize,
    pub script: Vec<u8>,
    pub rest: Vec<u8>,
}

impl Route {
    /// The file name as mod_alias and mod_wsgi give it to Apache: the script followed by the
    /// rest of the URI, which the directory walk splits into r->filename and r->path_info
    /// (stat-ing each component of the path, since the whole does not exist).
    pub fn filename(&self) -> Vec<u8> {
        [&self.script[..], &self.rest[..]].concat()
    }

    /// The rest as r->path_info, when Apache's directory walk would leave it unchanged (it
    /// starts with '/', has no empty, "." or ".." segment): handing the walk r->filename =
    /// script and this path_info gives the same split with one stat of the script instead of
    /// a failed stat of script+rest and one lstat per path component. None: let the walk
    /// split and canonicalise it as before.
    pub fn path_info(&self) -> Option<&[u8]> {
        let rest = &self.rest[..];
        if rest.is_empty() || rest[0] != b'/' {
            return None;
        }
        let canonical = !rest.windows(2).any(|w| w == b"//")
            && rest
                .split(|&b| b == b'/')
                .all(|seg| seg != b"." && seg != b"..");
        canonical.then_some(rest)
    }
}

/// The first WSGIScriptAlias matching `uri`.
pub fn route(uri: &[u8], aliases: &[ScriptAlias]) -> Option<Route> {
    if !uri.is_empty() && uri[0] != b'/' {
        return None;
    }
    aliases.iter().enumerate().find_map(|(index, a)| {
        if let Some(re) = &a.regex {
            // WSGIScriptAliasMatch: the script is the substituted path; the rest of the URI
            // after the match follows it (as mod_wsgi does).
            let groups = re.captures(uri)?;
            let (_, end) = groups.first().copied().flatten()?;
            let script = substitute(&a.path, uri, &groups);
            return Some(Route {
                index,
                script,
                rest: uri[end..].to_vec(),
            });
        }
        if a.is_match {
            return None;
        }
        let l = alias_matches(uri, a.url.as_bytes());
        if l == 0 {
            return None;
        }
        let rest = if a.url == "/" { uri } else { &uri[l..] };
        Some(Route {
            index,
            script: a.path.as_bytes().to_vec(),
            rest: rest.to_vec(),
        })
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
        let filename = |uri: &[u8]| route(uri, &aliases).map(|r| (r.index, r.filename()));
        assert_eq!(
            filename(b"/sub/x/y"),
            Some((0, b"/srv/sub.wsgi/x/y".to_vec()))
        );
        assert_eq!(filename(b"/sub"), Some((0, b"/srv/sub.wsgi".to_vec())));
        assert_eq!(
            filename(b"/other"),
            Some((1, b"/srv/root.wsgi/other".to_vec()))
        );
        assert_eq!(route(b"*", &aliases), None);
        assert_eq!(route(b"/x", &[]), None);
    }

    #[test]
    fn path_info_only_when_the_walk_would_not_change_it() {
        let aliases = vec![alias("/sub", "/srv/sub.wsgi"), alias("/d/", "/srv/dir/")];
        let pi = |uri: &[u8]| {
            route(uri, &aliases)
                .unwrap()
                .path_info()
                .map(<[u8]>::to_vec)
        };
        assert_eq!(pi(b"/sub/x/y"), Some(b"/x/y".to_vec()));
        assert_eq!(pi(b"/sub/x/"), Some(b"/x/".to_vec()));
        assert_eq!(pi(b"/sub/"), Some(b"/".to_vec()));
        assert_eq!(pi(b"/sub"), None);
        assert_eq!(pi(b"/sub/x//y"), None);
        assert_eq!(pi(b"/sub/./y"), None);
        assert_eq!(pi(b"/sub/x/.."), None);
        assert_eq!(pi(b"/sub/x/."), None);
        assert_eq!(pi(b"/sub/x/.y"), Some(b"/x/.y".to_vec()));
        // A directory of scripts: the rest does not start with '/'.
        assert_eq!(pi(b"/d/app.wsgi/x"), None);
    }
}

//! The request phases Python handlers take part in (mod_python's `Python*Handler`
//! directives): their names, default function names, which results let the next handler of a
//! phase run, and the per-directory handler lists. Pure data, no Apache calls.

use crate::config::HandlerEntry;
use std::sync::Arc;

/// A request phase, in the order Apache runs them. `Init` is mod_python's PythonInitHandler:
/// run at post_read_request when configured at server level, at header_parser when
/// configured in a directory section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    PostReadRequest,
    Trans,
    HeaderParser,
    Init,
    Access,
    Authen,
    Authz,
    Type,
    Fixup,
    Handler,
    Log,
    Cleanup,
}

pub const PHASE_COUNT: usize = 12;

impl Phase {
    pub const ALL: [Phase; PHASE_COUNT] = [
        Phase::PostReadRequest,
        Phase::Trans,
        Phase::HeaderParser,
        Phase::Init,
        Phase::Access,
        Phase::Authen,
        Phase::Authz,
        Phase::Type,
        Phase::Fixup,
        Phase::Handler,
        Phase::Log,
        Phase::Cleanup,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The directive's name, which is also mod_python's `req.phase` value.
    pub fn directive(self) -> &'static str {
        match self {
            Phase::PostReadRequest => "PythonPostReadRequestHandler",
            Phase::Trans => "PythonTransHandler",
            Phase::HeaderParser => "PythonHeaderParserHandler",
            Phase::Init => "PythonInitHandler",
            Phase::Access => "PythonAccessHandler",
            Phase::Authen => "PythonAuthenHandler",
            Phase::Authz => "PythonAuthzHandler",
            Phase::Type => "PythonTypeHandler",
            Phase::Fixup => "PythonFixupHandler",
            Phase::Handler => "PythonHandler",
            Phase::Log => "PythonLogHandler",
            Phase::Cleanup => "PythonCleanupHandler",
        }
    }

    pub fn from_directive(name: &str) -> Option<Phase> {
        Phase::ALL
            .into_iter()
            .find(|p| p.directive().eq_ignore_ascii_case(name))
    }

    /// The function called when a handler names only its module: the directive's name, lower
    /// case, without "python" (`PythonAuthenHandler` -> `authenhandler`).
    pub fn default_function(self) -> &'static str {
        match self {
            Phase::PostReadRequest => "postreadrequesthandler",
            Phase::Trans => "transhandler",
            Phase::HeaderParser => "headerparserhandler",
            Phase::Init => "inithandler",
            Phase::Access => "accesshandler",
            Phase::Authen => "authenhandler",
            Phase::Authz => "authzhandler",
            Phase::Type => "typehandler",
            Phase::Fixup => "fixuphandler",
            Phase::Handler => "handler",
            Phase::Log => "loghandler",
            Phase::Cleanup => "cleanuphandler",
        }
    }

    /// mod_python's rule for several handlers in one phase: after a handler returns `rc`, does
    /// the next one run? (apache.py `_status_values`: phases Apache runs as "run first"
    /// continue only on DECLINED; "run all" phases on OK and DECLINED; the content handler and
    /// cleanups only on OK.)
    pub fn continues(self, rc: i32, ok: i32, declined: i32) -> bool {
        match self {
            Phase::Trans | Phase::Authen | Phase::Authz | Phase::Type => rc == declined,
            Phase::Handler | Phase::Cleanup => rc == ok,
            Phase::PostReadRequest
            | Phase::HeaderParser
            | Phase::Init
            | Phase::Access
            | Phase::Fixup
            | Phase::Log => rc == ok || rc == declined,
        }
    }

    /// Phases whose directive is only allowed at server / virtual host level: Apache runs
    /// them before it knows which directory a request maps to.
    pub fn server_only(self) -> bool {
        matches!(self, Phase::PostReadRequest | Phase::Trans)
    }

    /// Phases that run before the response is sent: only these may answer the client with a
    /// traceback (PythonDebug On).
    pub fn before_response(self) -> bool {
        !matches!(self, Phase::Log | Phase::Cleanup)
    }
}

/// The handler lists of every phase but the content phase (which is `DirConfig::handlers`),
/// plus the implicit list of `PythonHandlerModule`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhaseLists {
    lists: [Option<Arc<Vec<HandlerEntry>>>; PHASE_COUNT],
    /// `PythonHandlerModule m`: one silent entry (a missing function is skipped), used by
    /// every phase that has no list of its own.
    pub module: Option<Arc<Vec<HandlerEntry>>>,
}

impl PhaseLists {
    /// The list configured for `phase` by its own directive (never for Phase::Handler).
    pub fn get(&self, phase: Phase) -> Option<&Arc<Vec<HandlerEntry>>> {
        self.lists[phase.index()].as_ref()
    }

    /// Adds a directive's entries: several lines in one section add up, as in mod_python.
    pub fn append(&mut self, phase: Phase, mut entries: Vec<HandlerEntry>) {
        let slot = &mut self.lists[phase.index()];
        let mut list = slot.as_deref().cloned().unwrap_or_default();
        list.append(&mut entries);
        *slot = Some(Arc::new(list));
    }

    /// `PythonHandlerModule module` in a section with directory `directory`.
    pub fn set_module(&mut self, module: &str, directory: Option<&str>) {
        self.module = Some(Arc::new(vec![HandlerEntry {
            handler: module.to_string(),
            extensions: vec![],
            directory: directory.map(str::to_string),
            silent: true,
        }]));
    }

    /// Apache's merge, per phase: the inner section's list replaces the outer one. An inner
    /// `PythonHandlerModule` replaces every inherited list (it stands for all phases).
    pub fn merge(base: &PhaseLists, add: &PhaseLists) -> PhaseLists {
        if add.module.is_some() {
            return add.clone();
        }
        let mut out = base.clone();
        for (o, a) in out.lists.iter_mut().zip(add.lists.iter()) {
            if a.is_some() {
                o.clone_from(a);
            }
        }
        out
    }

    /// True when nothing is configured for any phase (the common case outside Python apps).
    pub fn is_empty(&self) -> bool {
        self.module.is_none() && self.lists.iter().all(Option::is_none)
    }
}

impl crate::config::DirConfig {
    /// The handlers of `phase` in this directory: its own directive's list, else the
    /// `PythonHandlerModule` entry, else None. Never allocates (hooks call it per request).
    pub fn phase_handlers(&self, phase: Phase) -> Option<&Arc<Vec<HandlerEntry>>> {
        let own = match phase {
            Phase::Handler => self.handlers.as_ref(),
            p => self.phases.get(p),
        };
        own.or(self.phases.module.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: i32 = 0;
    const DECLINED: i32 = -1;

    fn entry(h: &str) -> HandlerEntry {
        HandlerEntry {
            handler: h.into(),
            ..Default::default()
        }
    }

    #[test]
    fn names() {
        for p in Phase::ALL {
            assert_eq!(Phase::from_directive(p.directive()), Some(p));
            assert_eq!(
                p.default_function(),
                p.directive()["Python".len()..].to_ascii_lowercase()
            );
            assert_eq!(Phase::ALL[p.index()], p);
        }
        assert_eq!(
            Phase::from_directive("pythonauthenhandler"),
            Some(Phase::Authen)
        );
        assert_eq!(Phase::from_directive("PythonOutputFilter"), None);
        assert!(Phase::Trans.server_only() && !Phase::Init.server_only());
    }

    #[test]
    fn continue_rules() {
        // mod_python 3.5 apache.py _status_values
        for p in [Phase::Trans, Phase::Authen, Phase::Authz, Phase::Type] {
            assert!(p.continues(DECLINED, OK, DECLINED));
            assert!(!p.continues(OK, OK, DECLINED));
            assert!(!p.continues(401, OK, DECLINED));
        }
        for p in [Phase::Handler, Phase::Cleanup] {
            assert!(p.continues(OK, OK, DECLINED));
            assert!(!p.continues(DECLINED, OK, DECLINED));
        }
        for p in [
            Phase::PostReadRequest,
            Phase::HeaderParser,
            Phase::Init,
            Phase::Access,
            Phase::Fixup,
            Phase::Log,
        ] {
            assert!(p.continues(OK, OK, DECLINED));
            assert!(p.continues(DECLINED, OK, DECLINED));
            assert!(!p.continues(403, OK, DECLINED));
        }
    }

    #[test]
    fn lists_append_and_merge() {
        let mut outer = PhaseLists::default();
        assert!(outer.is_empty());
        outer.append(Phase::Access, vec![entry("a")]);
        outer.append(Phase::Access, vec![entry("b")]);
        outer.append(Phase::Fixup, vec![entry("f")]);
        assert!(!outer.is_empty());
        assert_eq!(outer.get(Phase::Access).unwrap().len(), 2);

        let mut inner = PhaseLists::default();
        inner.append(Phase::Fixup, vec![entry("g")]);
        let m = PhaseLists::merge(&outer, &inner);
        assert_eq!(m.get(Phase::Access).unwrap()[1].handler, "b");
        assert_eq!(m.get(Phase::Fixup).unwrap()[0].handler, "g");
        // inherited lists are shared, not copied
        assert!(Arc::ptr_eq(
            m.get(Phase::Access).unwrap(),
            outer.get(Phase::Access).unwrap()
        ));

        let mut modsec = PhaseLists::default();
        modsec.set_module("mymod", Some("/srv"));
        let m = PhaseLists::merge(&outer, &modsec);
        assert!(m.get(Phase::Access).is_none());
        let module = m.module.as_ref().unwrap();
        assert!(module[0].silent);
        assert_eq!(module[0].directory.as_deref(), Some("/srv"));
    }

    #[test]
    fn dir_config_lookup() {
        let mut c = crate::config::DirConfig::default();
        assert!(c.phase_handlers(Phase::Fixup).is_none());
        assert!(c.phase_handlers(Phase::Handler).is_none());
        c.phases.append(Phase::Fixup, vec![entry("f")]);
        c.handlers = Some(Arc::new(vec![entry("h")]));
        assert_eq!(c.phase_handlers(Phase::Fixup).unwrap()[0].handler, "f");
        assert_eq!(c.phase_handlers(Phase::Handler).unwrap()[0].handler, "h");
        assert!(c.phase_handlers(Phase::Log).is_none());
        c.phases.set_module("m", None);
        assert_eq!(c.phase_handlers(Phase::Log).unwrap()[0].handler, "m");
        assert_eq!(c.phase_handlers(Phase::Fixup).unwrap()[0].handler, "f");
    }
}

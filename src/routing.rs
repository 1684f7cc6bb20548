//! Python-free hooks of both builds (mod_py and the daemon-only mod_pyd): WSGIScriptAlias
//! translation and the Server header's version component.

use crate::apache::hooks::{self, HookRequest, Order, PostConfigHook, RequestHook};
use crate::apache::pool::Pool;
use crate::apache::request::{FileKind, StrField, TableField};
use crate::apache::Server;

const OK: i32 = crate::sys::OK as i32;
const DECLINED: i32 = crate::sys::DECLINED;

pub fn register_hooks() {
    hooks::hook_post_config::<PostConfig>(Order::Middle);
    hooks::hook_translate_name::<WsgiScriptAlias>(Order::Middle);
}

/// WSGIScriptAlias: maps matching URIs to the script and the wsgi-script handler. The rest of
/// the URI becomes r->path_info here when the directory walk would split it the same way
/// (Route::path_info), which spares the walk four or more stats per request; otherwise
/// r->filename = script + rest, split by the walk as mod_wsgi and mod_alias do.
struct WsgiScriptAlias;

impl RequestHook for WsgiScriptAlias {
    fn run(hr: &HookRequest) -> i32 {
        let server = hr.server();
        let aliases = &server.config().wsgi.script_aliases;
        if aliases.is_empty() {
            return DECLINED;
        }
        let Some(route) = hr.uri().and_then(|u| crate::wsgi::route::route(u, aliases)) else {
            return DECLINED;
        };
        let req = hr.request();
        let Ok(r) = req.get() else {
            return DECLINED;
        };
        // Only for a script that is a regular file: for a directory of scripts
        // (`WSGIScriptAlias /app /srv/scripts`), the walk would refuse an absolute path_info
        // (AH00033, 500) and has to find the script in the rest itself. The stat lands in
        // r->finfo, so the walk does not repeat it.
        let fast = match route.path_info() {
            Some(path_info) => {
                let _ = r.set_str_field(StrField::Filename, Some(&route.script));
                (r.stat_filename_if_file() == FileKind::File).then_some(path_info)
            }
            None => None,
        };
        if let Some(path_info) = fast {
            let _ = r.set_str_field(StrField::PathInfo, Some(path_info));
        } else {
            let _ = r.set_str_field(StrField::Filename, Some(&route.filename()));
        }
        let _ = r.set_str_field(StrField::Handler, Some(b"wsgi-script"));
        let notes = r.table(TableField::Notes);
        let _ = notes.set(b"alias-forced-type", b"wsgi-script");
        let _ = notes.set(b"modpy.wsgi.alias", route.index.to_string().as_bytes());
        OK
    }
}

/// In the parent, after each configuration: says who we are in the Server header (as
/// mod_wsgi does); no Python.
struct PostConfig;

impl PostConfigHook for PostConfig {
    fn run(pconf: Pool, _s: Server) -> i32 {
        #[cfg(feature = "python")]
        pconf.add_version_component(concat!(
            "mod_py/",
            env!("CARGO_PKG_VERSION"),
            " Python/",
            env!("MODPY_PYTHON_VERSION")
        ));
        #[cfg(not(feature = "python"))]
        pconf.add_version_component(concat!("mod_pyd/", env!("CARGO_PKG_VERSION")));
        OK
    }
}

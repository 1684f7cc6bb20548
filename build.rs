//! Finds httpd and APR with `apxs` / `apr-1-config`, generates the raw bindings with bindgen
//! (allowlisted: only what mod_py uses) and compiles bindings/shim.c for the C macros.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn query(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("mod_py needs `{cmd}` (apt-get install apache2-dev): {e}"));
    assert!(out.status.success(), "`{cmd} {}` failed", args.join(" "));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `-I` and `-D` flags out of a compiler flag string.
fn flags(s: &str) -> Vec<String> {
    s.split_whitespace()
        .filter(|f| f.starts_with("-I") || f.starts_with("-D"))
        .filter(|f| !f.starts_with("-D_FORTIFY_SOURCE"))
        .map(str::to_string)
        .collect()
}

fn main() {
    println!("cargo:rerun-if-changed=bindings/shim.c");
    println!("cargo:rerun-if-changed=bindings/shim.h");
    println!("cargo:rerun-if-changed=bindings/wrapper.h");
    println!("cargo:rerun-if-env-changed=APXS");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");

    let apxs = env::var("APXS").unwrap_or_else(|_| "apxs".into());
    let mut cflags = vec![format!("-I{}", query(&apxs, &["-q", "INCLUDEDIR"]))];
    cflags.extend(flags(&query(&apxs, &["-q", "EXTRA_CPPFLAGS"])));
    cflags.extend(flags(&query("apr-1-config", &["--includes", "--cppflags"])));
    if let Ok(apu) = Command::new("apu-1-config").arg("--includes").output() {
        cflags.extend(flags(&String::from_utf8_lossy(&apu.stdout)));
    }
    cflags.push("-Ibindings".into());

    let mut cc = cc::Build::new();
    cc.file("bindings/shim.c").warnings(true);
    for f in &cflags {
        if let Some(dir) = f.strip_prefix("-I") {
            cc.include(dir);
        } else if let Some(def) = f.strip_prefix("-D") {
            let (k, v) = def
                .split_once('=')
                .map_or((def, None), |(k, v)| (k, Some(v)));
            cc.define(k, v);
        }
    }
    cc.compile("modpy_shim");

    let bindings = bindgen::Builder::default()
        .header("bindings/wrapper.h")
        .clang_args(&cflags)
        .allowlist_type("request_rec|conn_rec|server_rec|module|command_rec|cmd_parms|ap_directive_t|modpy_cmd_id|modpy_wsgi_cmd_id")
        .allowlist_type("ap_filter_t|ap_filter_rec_t|ap_conf_vector_t|process_rec")
        .allowlist_type("apr_table_t|apr_table_entry_t|apr_array_header_t|apr_pool_t")
        .allowlist_type("apr_bucket_brigade|apr_bucket|apr_bucket_alloc_t|apr_finfo_t|apr_uri_t")
        .allowlist_type("authn_provider|authn_status|authz_provider|authz_status")
        .allowlist_function("ap_(hook_|rwrite|rflush|set_content_length|set_content_type|get_server_).*")
        .allowlist_function("ap_(setup_client_block|should_client_block|get_client_block|discard_request_body).*")
        .allowlist_function("ap_(get_basic_auth_pw|add_common_vars|add_cgi_vars|internal_redirect).*")
        .allowlist_function("ap_(construct_url|meets_conditions|set_etag|update_mtime|get_remote_host).*")
        .allowlist_function("ap_(allow_methods|requires|some_auth_required|auth_type|auth_name).*")
        .allowlist_function("ap_(pass_brigade|get_brigade|fflush|send_fd|set_last_modified|mpm_query).*")
        .allowlist_function("ap_(get_server_name|get_server_port|document_root|make_etag|method_number_of).*")
        .allowlist_function("ap_(filter_flush|send_error_response|get_status_line|is_initial_req).*")
        .allowlist_function("ap_(register_auth_provider|register_provider|lookup_provider|log_rerror_|log_error_).*")
        .allowlist_function("ap_(get_remote_logname|state_query|exists_config_define|server_root_relative).*")
        .allowlist_function("apr_(table_|pool_cleanup_|pool_userdata_|pstrdup|pstrndup|palloc|pcalloc|pool_create|pool_destroy).*")
        .allowlist_function("apr_(brigade_|bucket_|file_open|file_close|file_info_get|stat|strerror|time_now|dynamic_fn_retrieve).*")
        .allowlist_function("modpy_.*|ap_bucket_error_create|ap_no2slash|ap_add_version_component|ap_pregcomp|ap_regexec|ap_pregsub|ap_regfree|ap_allow_options")
        .allowlist_type("ap_regex_t|ap_regmatch_t")
        // ---- request phases, auth providers, subrequests (issue 4) ----
        .allowlist_type("modpy_phase_cmd_id")
        .allowlist_function("ap_(sub_req_lookup_uri|sub_req_lookup_file|run_sub_req|destroy_sub_req)")
        .allowlist_function("ap_(add_output_filter|add_input_filter|note_auth_failure)")
        .allowlist_function("apr_pool_pre_cleanup_register")
        .allowlist_var("AUTHN_.*")
        // ---- issue 4: filters, brigades, buckets, connection handler ----
        .allowlist_type("modpy_filter_cmd_id|ap_input_mode_t|ap_filter_type|conn_state_t")
        .allowlist_function("ap_(register_output_filter_protocol|register_input_filter|add_input_filter|add_output_filter|remove_input_filter|remove_output_filter).*")
        .allowlist_var("AP_NOBODY_READ|AP_NOBODY_WROTE|AP_FILTER_ERROR|APR_EOF|APR_ENOTIMPL|HUGE_STRING_LEN|AP_CONN_.*")
        // ---- end issue 4 ----
        .allowlist_function("modpy_.*")
        .allowlist_var("APR_OC_REASON_.*|AP_SQ_.*")
        .allowlist_var("modpy_.*|APR_EGENERAL")
        .allowlist_var("MODULE_MAGIC_.*|OK|DECLINED|DONE|HTTP_.*|M_.*|APLOG_.*|AP_MPMQ_.*|RSRC_CONF|ACCESS_CONF|OR_.*")
        .allowlist_var("OPT_EXECCGI|AP_MAX_REG_MATCH|AP_SERVER_.*_NUMBER|PROXYREQ_.*|APR_SUCCESS|APR_EOF|APR_HOOK_.*|REQUEST_.*|AP_REQ_.*|AP_CONDITIONAL_.*|APR_FINFO_.*|APR_READ|APR_FOPEN_.*|APR_OS_DEFAULT|AP_FILTER_.*|AP_MODE_.*|APR_BLOCK_READ|APR_NONBLOCK_READ|APR_INCOMPLETE|APR_TIMEUP|APR_ENOTIMPL|AP_AUTH.*|AUTHZ_.*|AUTH_.*")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen failed on bindings/wrapper.h");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings.write_to_file(&out).expect("writing bindings.rs");
    write_constants(&out);

    // Where Python lives, fixed at build time from the interpreter pyo3 links against, so that a
    // PATH leading to another Python never changes the stdlib Apache's children load.
    let python = env::var("PYO3_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    let home = query(&python, &["-c", "import sys; print(sys.base_prefix)"]);
    println!("cargo:rustc-env=MODPY_PYTHON_HOME={home}");
    let version = query(
        &python,
        &["-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
    );
    println!("cargo:rustc-env=MODPY_PYTHON_VERSION={version}");
    let exe = query(&python, &["-c", "import sys; print(sys.executable)"]);
    println!("cargo:rustc-env=MODPY_PYTHON_EXECUTABLE={exe}");
    let libdir = query(
        &python,
        &[
            "-c",
            "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))",
        ],
    );
    println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,{libdir}");
    println!(
        "cargo:rustc-env=MODPY_PYLIB_DEFAULT={}/pylib",
        env::var("CARGO_MANIFEST_DIR").unwrap()
    );
}

/// modpy.apache's constants, derived from the C headers rather than typed in again:
/// every OK/DECLINED/DONE, HTTP_*, M_*, APLOG_*, AUTH_*/AUTHZ_*, MODULE_MAGIC_NUMBER_* that
/// bindgen saw.
fn write_constants(bindings: &std::path::Path) {
    let text = std::fs::read_to_string(bindings).expect("reading bindings.rs");
    let mut rows = String::from("pub const CONSTANTS: &[(&str, i64)] = &[\n");
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("pub const ") else {
            continue;
        };
        let Some((name, rest)) = rest.split_once(':') else {
            continue;
        };
        let Some((_, value)) = rest.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_end_matches(';');
        let name = name
            .trim_start_matches("authn_status_")
            .trim_start_matches("authz_status_");
        let wanted = ["OK", "DECLINED", "DONE"].contains(&name)
            || [
                "HTTP_",
                "M_",
                "APLOG_",
                "AUTH_",
                "AUTHZ_",
                "PROXYREQ_",
                "REQUEST_",
                "AP_MPMQ_",
                "MODULE_MAGIC_NUMBER",
            ]
            .iter()
            .any(|p| name.starts_with(p));
        if wanted && value.parse::<i64>().is_ok() {
            rows.push_str(&format!("    (\"{name}\", {value}),\n"));
        }
    }
    rows.push_str("];\n");
    let out = bindings.with_file_name("constants.rs");
    std::fs::write(out, rows).expect("writing constants.rs");
}

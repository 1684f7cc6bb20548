/* shim.c: the few pieces of the httpd/APR API that are C macros, not functions.
 * Everything else is called from Rust through bindgen's declarations. */
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "apr_buckets.h"
#include "shim.h"

/* Declares `extern module py_module` (defined in Rust, src/lib.rs) for APLOG_MODULE_INDEX. */
APLOG_USE_MODULE(py);

static const int id_handler = MODPY_CMD_HANDLER, id_path = MODPY_CMD_PATH,
                 id_option = MODPY_CMD_OPTION, id_import = MODPY_CMD_IMPORT,
                 id_debug = MODPY_CMD_DEBUG, id_autoreload = MODPY_CMD_AUTORELOAD,
                 id_interpreter = MODPY_CMD_INTERPRETER,
                 id_handler_module = MODPY_CMD_HANDLER_MODULE,
                 id_interp_per_directory = MODPY_CMD_INTERP_PER_DIRECTORY,
                 id_interp_per_directive = MODPY_CMD_INTERP_PER_DIRECTIVE,
                 id_enable_pdb = MODPY_CMD_ENABLE_PDB, id_optimize = MODPY_CMD_OPTIMIZE;

#define INFO(id) ((void *)&(id))

/* The WSGI directives' ids are their cmd->info. */
static const int wsgi_ids[] = {
    MODPY_WSGI_SCRIPT_ALIAS, MODPY_WSGI_SCRIPT_ALIAS_MATCH, MODPY_WSGI_APPLICATION_GROUP,
    MODPY_WSGI_PROCESS_GROUP, MODPY_WSGI_CALLABLE_OBJECT, MODPY_WSGI_IMPORT_SCRIPT,
    MODPY_WSGI_PYTHON_PATH, MODPY_WSGI_PYTHON_HOME, MODPY_WSGI_SCRIPT_RELOADING,
    MODPY_WSGI_PASS_AUTHORIZATION, MODPY_WSGI_CHUNKED_REQUEST, MODPY_WSGI_ERROR_OVERRIDE,
    MODPY_WSGI_TRUSTED_PROXIES, MODPY_WSGI_TRUSTED_PROXY_HEADERS, MODPY_WSGI_HANDLER_SCRIPT,
    MODPY_WSGI_RESTRICT_EMBEDDED, MODPY_WSGI_ACCESS_SCRIPT, MODPY_WSGI_AUTH_USER_SCRIPT,
    MODPY_WSGI_AUTH_GROUP_SCRIPT, MODPY_WSGI_SOCKET_PREFIX, MODPY_WSGI_DAEMON_PROCESS,
    MODPY_WSGI_DAEMON_TEMPLATE, MODPY_WSGI_DAEMON_DEFAULT
};
#define WSGI_CMD(name, id, where, help) \
    AP_INIT_RAW_ARGS(name, modpy_cmd_wsgi, (void *)&wsgi_ids[(id) - MODPY_WSGI_SCRIPT_ALIAS], where, help)
/* ---- issue 4: request phases and auth providers ---- */
static const int id_post_read_request = MODPY_CMD_POST_READ_REQUEST_HANDLER,
                 id_trans = MODPY_CMD_TRANS_HANDLER,
                 id_header_parser = MODPY_CMD_HEADER_PARSER_HANDLER,
                 id_init = MODPY_CMD_INIT_HANDLER, id_access = MODPY_CMD_ACCESS_HANDLER,
                 id_authen = MODPY_CMD_AUTHEN_HANDLER, id_authz = MODPY_CMD_AUTHZ_HANDLER,
                 id_type = MODPY_CMD_TYPE_HANDLER, id_fixup = MODPY_CMD_FIXUP_HANDLER,
                 id_log = MODPY_CMD_LOG_HANDLER, id_cleanup = MODPY_CMD_CLEANUP_HANDLER,
                 id_authn_provider = MODPY_CMD_AUTHN_PROVIDER,
                 id_authz_provider = MODPY_CMD_AUTHZ_PROVIDER;
#define PHASE_SYNTAX " module[::function] [module[::function] ...] [| .ext ...]"
/* ---- issue 4 (filters, connection handler): directives; implemented in src/apache/filter.rs ---- */
static const int id_input_filter = MODPY_CMD_INPUT_FILTER,
                 id_output_filter = MODPY_CMD_OUTPUT_FILTER,
                 id_connection_handler = MODPY_CMD_CONNECTION_HANDLER;
#define MODPY_FILTER_CMDS                                                                         \
    AP_INIT_TAKE23("PythonInputFilter", modpy_cmd_filter, INFO(id_input_filter), RSRC_CONF,      \
                   "PythonInputFilter module[::function] NAME [CONNECTION|RESOURCE|CONTENT_SET|" \
                   "PROTOCOL|TRANSCODE]: registers an input filter"),                            \
    AP_INIT_TAKE23("PythonOutputFilter", modpy_cmd_filter, INFO(id_output_filter), RSRC_CONF,    \
                   "PythonOutputFilter module[::function] NAME [CONNECTION|RESOURCE|CONTENT_SET|"\
                   "PROTOCOL|TRANSCODE]: registers an output filter"),                           \
    AP_INIT_TAKE1("PythonConnectionHandler", modpy_cmd_connection_handler,                       \
                  INFO(id_connection_handler), RSRC_CONF,                                        \
                  "PythonConnectionHandler module[::function]: Python serves the connection"),
/* ---- end issue 4 directives ---- */

const command_rec modpy_cmds[] = {
    MODPY_FILTER_CMDS /* issue 4: see above */
    AP_INIT_RAW_ARGS("PythonHandler", modpy_cmd_raw_args, INFO(id_handler), OR_ALL,
                     "PythonHandler module[::function] [module[::function] ...] [| .ext ...]"),
    /* ---- issue 4: request phases and auth providers ---- */
    AP_INIT_RAW_ARGS("PythonPostReadRequestHandler", modpy_cmd_phase_handler,
                     INFO(id_post_read_request), RSRC_CONF,
                     "PythonPostReadRequestHandler" PHASE_SYNTAX " (server config only)"),
    AP_INIT_RAW_ARGS("PythonTransHandler", modpy_cmd_phase_handler, INFO(id_trans), RSRC_CONF,
                     "PythonTransHandler" PHASE_SYNTAX " (server config only)"),
    AP_INIT_RAW_ARGS("PythonHeaderParserHandler", modpy_cmd_phase_handler,
                     INFO(id_header_parser), OR_ALL, "PythonHeaderParserHandler" PHASE_SYNTAX),
    AP_INIT_RAW_ARGS("PythonInitHandler", modpy_cmd_phase_handler, INFO(id_init), OR_ALL,
                     "PythonInitHandler" PHASE_SYNTAX),
    AP_INIT_RAW_ARGS("PythonAccessHandler", modpy_cmd_phase_handler, INFO(id_access), OR_ALL,
                     "PythonAccessHandler" PHASE_SYNTAX),
    AP_INIT_RAW_ARGS("PythonAuthenHandler", modpy_cmd_phase_handler, INFO(id_authen), OR_ALL,
                     "PythonAuthenHandler" PHASE_SYNTAX),
    AP_INIT_RAW_ARGS("PythonAuthzHandler", modpy_cmd_phase_handler, INFO(id_authz), OR_ALL,
                     "PythonAuthzHandler" PHASE_SYNTAX),
    AP_INIT_RAW_ARGS("PythonTypeHandler", modpy_cmd_phase_handler, INFO(id_type), OR_ALL,
                     "PythonTypeHandler" PHASE_SYNTAX),
    AP_INIT_RAW_ARGS("PythonFixupHandler", modpy_cmd_phase_handler, INFO(id_fixup), OR_ALL,
                     "PythonFixupHandler" PHASE_SYNTAX),
    AP_INIT_RAW_ARGS("PythonLogHandler", modpy_cmd_phase_handler, INFO(id_log), OR_ALL,
                     "PythonLogHandler" PHASE_SYNTAX),
    AP_INIT_RAW_ARGS("PythonCleanupHandler", modpy_cmd_phase_handler, INFO(id_cleanup), OR_ALL,
                     "PythonCleanupHandler" PHASE_SYNTAX),
    AP_INIT_TAKE23("PythonAuthnProvider", modpy_cmd_auth_provider, INFO(id_authn_provider),
                   RSRC_CONF,
                   "PythonAuthnProvider NAME module[::check_password] [module::get_realm_hash]: "
                   "an authn provider for AuthBasicProvider / AuthDigestProvider NAME"),
    AP_INIT_TAKE23("PythonAuthzProvider", modpy_cmd_auth_provider, INFO(id_authz_provider),
                   RSRC_CONF,
                   "PythonAuthzProvider NAME module[::check_authorization]: "
                   "an authz provider for Require NAME args..."),
    /* ---- end of issue 4 ---- */
    AP_INIT_RAW_ARGS("PythonPath", modpy_cmd_raw_args, INFO(id_path), OR_ALL,
                     "PythonPath <python list expression>, e.g. \"sys.path + ['/srv/app']\""),
    AP_INIT_TAKE12("PythonOption", modpy_cmd_take12, INFO(id_option), OR_ALL,
                   "PythonOption key [value]: a value for req.get_options(); no value unsets the key"),
    AP_INIT_TAKE12("PythonImport", modpy_cmd_take12, INFO(id_import), RSRC_CONF,
                   "PythonImport module [interpreter]: import a module when each child starts"),
    AP_INIT_FLAG("PythonDebug", modpy_cmd_flag, INFO(id_debug), OR_ALL,
                 "PythonDebug On|Off: send Python tracebacks to the client"),
    AP_INIT_FLAG("PythonAutoReload", modpy_cmd_flag, INFO(id_autoreload), OR_ALL,
                 "PythonAutoReload On|Off: re-import handler modules whose file changed"),
    AP_INIT_FLAG("PythonInterpPerDirectory", modpy_cmd_flag, INFO(id_interp_per_directory), OR_ALL,
                 "PythonInterpPerDirectory On|Off: accepted; mod_py runs one interpreter per process"),
    AP_INIT_FLAG("PythonInterpPerDirective", modpy_cmd_flag, INFO(id_interp_per_directive), OR_ALL,
                 "PythonInterpPerDirective On|Off: accepted; mod_py runs one interpreter per process"),
    AP_INIT_FLAG("PythonEnablePdb", modpy_cmd_flag, INFO(id_enable_pdb), OR_ALL,
                 "PythonEnablePdb Off (On is refused: no debugger runs inside Apache)"),
    AP_INIT_FLAG("PythonOptimize", modpy_cmd_flag, INFO(id_optimize), RSRC_CONF,
                 "PythonOptimize On|Off: Python's -O in every child"),
    AP_INIT_TAKE1("PythonInterpreter", modpy_cmd_raw_args, INFO(id_interpreter), OR_ALL,
                  "PythonInterpreter name: accepted; mod_py runs one interpreter per process"),
    AP_INIT_TAKE1("PythonHandlerModule", modpy_cmd_raw_args, INFO(id_handler_module), OR_ALL,
                  "PythonHandlerModule module: the module used for every phase that has no handler"),
    /* ---- mod_wsgi's directives ---- */
    WSGI_CMD("WSGIScriptAlias", MODPY_WSGI_SCRIPT_ALIAS, RSRC_CONF,
             "WSGIScriptAlias URL-path file-path [process-group=] [application-group=] [callable-object=] [pass-authorization=]"),
    WSGI_CMD("WSGIScriptAliasMatch", MODPY_WSGI_SCRIPT_ALIAS_MATCH, RSRC_CONF,
             "WSGIScriptAliasMatch regex file-path [options]"),
    WSGI_CMD("WSGIApplicationGroup", MODPY_WSGI_APPLICATION_GROUP, RSRC_CONF | ACCESS_CONF,
             "WSGIApplicationGroup name|%{GLOBAL}|%{RESOURCE}|%{SERVER}|%{ENV:variable}"),
    WSGI_CMD("WSGIProcessGroup", MODPY_WSGI_PROCESS_GROUP, RSRC_CONF | ACCESS_CONF,
             "WSGIProcessGroup name|%{GLOBAL}"),
    WSGI_CMD("WSGICallableObject", MODPY_WSGI_CALLABLE_OBJECT, OR_FILEINFO,
             "WSGICallableObject name (default: application)"),
    WSGI_CMD("WSGIImportScript", MODPY_WSGI_IMPORT_SCRIPT, RSRC_CONF,
             "WSGIImportScript file-path [process-group=] [application-group=]"),
    WSGI_CMD("WSGIPythonPath", MODPY_WSGI_PYTHON_PATH, RSRC_CONF,
             "WSGIPythonPath directory[:directory...]"),
    WSGI_CMD("WSGIPythonHome", MODPY_WSGI_PYTHON_HOME, RSRC_CONF,
             "WSGIPythonHome prefix|virtualenv-directory"),
    WSGI_CMD("WSGIScriptReloading", MODPY_WSGI_SCRIPT_RELOADING, OR_FILEINFO,
             "WSGIScriptReloading On|Off (default On)"),
    WSGI_CMD("WSGIPassAuthorization", MODPY_WSGI_PASS_AUTHORIZATION, OR_FILEINFO,
             "WSGIPassAuthorization On|Off (default Off)"),
    WSGI_CMD("WSGIChunkedRequest", MODPY_WSGI_CHUNKED_REQUEST, OR_FILEINFO,
             "WSGIChunkedRequest On|Off (default Off)"),
    WSGI_CMD("WSGIErrorOverride", MODPY_WSGI_ERROR_OVERRIDE, OR_FILEINFO,
             "WSGIErrorOverride On|Off (default Off)"),
    WSGI_CMD("WSGITrustedProxies", MODPY_WSGI_TRUSTED_PROXIES, RSRC_CONF | ACCESS_CONF,
             "WSGITrustedProxies ip|cidr ..."),
    WSGI_CMD("WSGITrustedProxyHeaders", MODPY_WSGI_TRUSTED_PROXY_HEADERS, RSRC_CONF | ACCESS_CONF,
             "WSGITrustedProxyHeaders header ..."),
    WSGI_CMD("WSGIHandlerScript", MODPY_WSGI_HANDLER_SCRIPT, RSRC_CONF,
             "WSGIHandlerScript name file-path"),
    WSGI_CMD("WSGIRestrictEmbedded", MODPY_WSGI_RESTRICT_EMBEDDED, RSRC_CONF,
             "WSGIRestrictEmbedded On|Off (default Off)"),
    WSGI_CMD("WSGIAccessScript", MODPY_WSGI_ACCESS_SCRIPT, OR_AUTHCFG,
             "WSGIAccessScript file-path [application-group=]"),
    WSGI_CMD("WSGIAuthUserScript", MODPY_WSGI_AUTH_USER_SCRIPT, OR_AUTHCFG,
             "WSGIAuthUserScript file-path [application-group=]"),
    WSGI_CMD("WSGIAuthGroupScript", MODPY_WSGI_AUTH_GROUP_SCRIPT, OR_AUTHCFG,
             "WSGIAuthGroupScript file-path [application-group=]"),
    WSGI_CMD("WSGISocketPrefix", MODPY_WSGI_SOCKET_PREFIX, RSRC_CONF,
             "WSGISocketPrefix path-prefix"),
    WSGI_CMD("WSGIDaemonTemplate", MODPY_WSGI_DAEMON_TEMPLATE, RSRC_CONF,
             "WSGIDaemonTemplate name [WSGIDaemonProcess options with %{SERVER} %{USER} %{ENV:X} %{GROUP}] [max-instances=64] [min-uid=1000] [users=a,b]"),
    WSGI_CMD("WSGIDaemonDefault", MODPY_WSGI_DAEMON_DEFAULT, RSRC_CONF,
             "WSGIDaemonDefault On|Off: WSGIScriptAlias without a process group runs in a daemon group of its virtual host"),
    WSGI_CMD("WSGIDaemonProcess", MODPY_WSGI_DAEMON_PROCESS, RSRC_CONF,
             "WSGIDaemonProcess name [processes=N threads=N user=U group=G python-executable=... ...]"),
    {NULL}
};

int modpy_cmd_id(const cmd_parms *cmd) { return cmd->info ? *(const int *)cmd->info : 0; }

void modpy_log_rerror(const char *file, int line, int level, apr_status_t status,
                      const request_rec *r, const char *msg)
{
    ap_log_rerror_(file, line, APLOG_MODULE_INDEX, level, status, r, "%s", msg);
}

void modpy_log_error(const char *file, int line, int level, apr_status_t status,
                     const server_rec *s, const char *msg)
{
    ap_log_error_(file, line, APLOG_MODULE_INDEX, level, status, s, "%s", msg);
}

void modpy_log_cerror(const char *file, int line, int level, apr_status_t status,
                      const conn_rec *c, const char *msg)
{
    ap_log_cerror_(file, line, APLOG_MODULE_INDEX, level, status, c, "%s", msg);
}

int modpy_module_index(void) { return APLOG_MODULE_INDEX; }

void modpy_brigade_insert_tail(apr_bucket_brigade *bb, apr_bucket *b) { APR_BRIGADE_INSERT_TAIL(bb, b); }
int modpy_brigade_empty(apr_bucket_brigade *bb) { return APR_BRIGADE_EMPTY(bb); }
apr_bucket *modpy_brigade_first(apr_bucket_brigade *bb) { return APR_BRIGADE_FIRST(bb); }
apr_bucket *modpy_brigade_sentinel(apr_bucket_brigade *bb) { return APR_BRIGADE_SENTINEL(bb); }
apr_bucket *modpy_bucket_next(apr_bucket *b) { return APR_BUCKET_NEXT(b); }
int modpy_bucket_is_eos(const apr_bucket *b) { return APR_BUCKET_IS_EOS(b); }
int modpy_bucket_is_flush(const apr_bucket *b) { return APR_BUCKET_IS_FLUSH(b); }
int modpy_bucket_is_metadata(const apr_bucket *b) { return APR_BUCKET_IS_METADATA(b); }
apr_status_t modpy_bucket_read(apr_bucket *b, const char **str, apr_size_t *len, apr_read_type_e block)
{
    return apr_bucket_read(b, str, len, block);
}
void modpy_bucket_delete(apr_bucket *b) { apr_bucket_delete(b); }

void *modpy_get_module_config(const ap_conf_vector_t *cv, const module *m)
{
    return ap_get_module_config(cv, m);
}

void modpy_set_module_config(ap_conf_vector_t *cv, const module *m, void *val)
{
    ap_set_module_config(cv, m, val);
}

#include "mod_ssl.h"
int modpy_ssl_is_https(conn_rec *c)
{
    APR_OPTIONAL_FN_TYPE(ssl_is_https) *fn = APR_RETRIEVE_OPTIONAL_FN(ssl_is_https);
    return fn ? fn(c) : 0;
}

const char *modpy_ssl_var_lookup(apr_pool_t *p, server_rec *s, conn_rec *c, request_rec *r,
                                 const char *name)
{
    APR_OPTIONAL_FN_TYPE(ssl_var_lookup) *fn = APR_RETRIEVE_OPTIONAL_FN(ssl_var_lookup);
    return fn ? fn(p, s, c, r, (char *)name) : NULL;
}

void modpy_brigade_append_transient(apr_bucket_brigade *bb, const char *buf, apr_size_t len)
{
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_transient_create(buf, len, bb->bucket_alloc));
}

void modpy_brigade_append_flush(apr_bucket_brigade *bb)
{
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(bb->bucket_alloc));
}

void modpy_brigade_append_eos(apr_bucket_brigade *bb)
{
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
}

/* ---- issue 4 (filters, brigades, buckets, connection I/O): APR ring macros as functions ---- */
#include "http_protocol.h"

void modpy_bucket_remove(apr_bucket *b) { APR_BUCKET_REMOVE(b); }
void modpy_bucket_insert_before(apr_bucket *at, apr_bucket *b) { APR_BUCKET_INSERT_BEFORE(at, b); }
void modpy_bucket_insert_after(apr_bucket *at, apr_bucket *b) { APR_BUCKET_INSERT_AFTER(at, b); }
void modpy_brigade_insert_head(apr_bucket_brigade *bb, apr_bucket *b) { APR_BRIGADE_INSERT_HEAD(bb, b); }
apr_bucket *modpy_brigade_last(apr_bucket_brigade *bb) { return APR_BRIGADE_LAST(bb); }
apr_bucket *modpy_bucket_prev(apr_bucket *b) { return APR_BUCKET_PREV(b); }
void modpy_brigade_concat(apr_bucket_brigade *a, apr_bucket_brigade *b) { APR_BRIGADE_CONCAT(a, b); }
apr_status_t modpy_bucket_split(apr_bucket *b, apr_size_t point) { return apr_bucket_split(b, point); }
apr_status_t modpy_bucket_setaside(apr_bucket *b, apr_pool_t *p) { return apr_bucket_setaside(b, p); }
apr_status_t modpy_bucket_copy(apr_bucket *b, apr_bucket **c) { return apr_bucket_copy(b, c); }
void modpy_bucket_destroy(apr_bucket *b) { apr_bucket_destroy(b); }
int modpy_bucket_error_status(const apr_bucket *b)
{
    return AP_BUCKET_IS_ERROR(b) ? ((const ap_bucket_error *)b->data)->status : -1;
}
apr_bucket *modpy_bucket_heap_copy(const char *buf, apr_size_t len, apr_bucket_alloc_t *list)
{
    return apr_bucket_heap_create(buf, len, NULL, list);
}
apr_bucket *modpy_bucket_flush(apr_bucket_alloc_t *list) { return apr_bucket_flush_create(list); }
apr_bucket *modpy_bucket_eos(apr_bucket_alloc_t *list) { return apr_bucket_eos_create(list); }
apr_bucket *modpy_bucket_error(int status, apr_pool_t *p, apr_bucket_alloc_t *list)
{
    return ap_bucket_error_create(status, NULL, p, list);
}
int modpy_status_is_eagain(apr_status_t s) { return APR_STATUS_IS_EAGAIN(s); }
int modpy_status_is_timeup(apr_status_t s) { return APR_STATUS_IS_TIMEUP(s); }
/* ---- end issue 4 ---- */

/* ---- daemon mode ---- */
#include "apr_strings.h"
#include "unixd.h"
#include "apr_thread_proc.h"
#include "http_main.h"

long modpy_unixd_user_id(void) { return (long)ap_unixd_config.user_id; }
long modpy_unixd_group_id(void) { return (long)ap_unixd_config.group_id; }

void modpy_other_child_register(int pid, void (*maintenance)(int, void *, int), void *data, apr_pool_t *p)
{
    apr_proc_t *proc = apr_pcalloc(p, sizeof(*proc));
    proc->pid = pid;
    apr_proc_other_child_register(proc, maintenance, data, NULL, p);
}

void modpy_other_child_unregister(void *data) { apr_proc_other_child_unregister(data); }

const char *modpy_process_note_get(server_rec *s, const char *key)
{
    void *v = NULL;
    apr_pool_userdata_get(&v, key, s->process->pool);
    return v;
}

void modpy_process_note_set(server_rec *s, const char *key, const char *value)
{
    /* The key must outlive the pool too: both are copied into the process pool. */
    apr_pool_userdata_set(apr_pstrdup(s->process->pool, value),
                          apr_pstrdup(s->process->pool, key), NULL, s->process->pool);
}

const char *modpy_runtime_dir_relative(apr_pool_t *p, const char *name)
{
    return ap_runtime_dir_relative(p, name);
}

#include "http_core.h"
#include "apr_hash.h"
#include <string.h>
const char *modpy_server_root(void) { return ap_server_root; }
int modpy_exists_config_define(const char *name) { return ap_exists_config_define(name); }

/* `CGIVar REQUEST_URI current-uri` in r's directory (core_dir_config is C only): as
 * ap_add_cgi_vars decides REQUEST_URI. */
int modpy_cgi_request_uri_is_current(request_rec *r)
{
    core_dir_config *conf = ap_get_core_module_config(r->per_dir_config);
    const char *rule = conf->cgi_var_rules
        ? apr_hash_get(conf->cgi_var_rules, "REQUEST_URI", APR_HASH_KEY_STRING) : NULL;
    return rule && !strcmp(rule, "current-uri");
}

/* ap_get_client_block, line for line (httpd 2.4 http_filters.c), but the status of the read
 * is kept in *status instead of lost: the caller can then tell a client that closed the
 * connection from one that timed out. */
long modpy_get_client_block(request_rec *r, char *buffer, apr_size_t bufsiz,
                            apr_status_t *status)
{
    apr_bucket_brigade *bb;
    apr_status_t rv;

    *status = APR_SUCCESS;
    if (r->remaining < 0 || (!r->read_chunked && r->remaining == 0)) {
        return 0;
    }
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES, APR_BLOCK_READ, bufsiz);
    *status = rv;
    if (rv == AP_FILTER_ERROR) {
        /* a filter has answered the client already */
        apr_brigade_destroy(bb);
        return -1;
    }
    if (rv != APR_SUCCESS) {
        r->connection->keepalive = AP_CONN_CLOSE;
        apr_brigade_destroy(bb);
        return -1;
    }
    if (!APR_BRIGADE_EMPTY(bb) && APR_BUCKET_IS_EOS(APR_BRIGADE_LAST(bb))) {
        r->remaining = r->read_chunked ? -1 : 0;
    }
    rv = apr_brigade_flatten(bb, buffer, &bufsiz);
    if (rv != APR_SUCCESS) {
        *status = rv;
        apr_brigade_destroy(bb);
        return -1;
    }
    r->read_length += bufsiz;
    apr_brigade_destroy(bb);
    return (long)bufsiz;
}

/* ---- mod_python's SSI element: <!--#python exec="..."--> / <!--#python eval="..."--> ---- */
#include "mod_include.h"

static APR_OPTIONAL_FN_TYPE(ap_ssi_get_tag_and_value) *ssi_get_tag_and_value;

/* mod_include calls this for each `python` element (its attributes are read here: the
 * include_ctx_t macros and optional functions are C only). */
static apr_status_t modpy_ssi_python(include_ctx_t *ctx, ap_filter_t *f, apr_bucket_brigade *bb)
{
    char *tag = NULL, *val = NULL;
    if (!(ctx->flags & SSI_FLAG_PRINTING))
        return APR_SUCCESS;
    if (!ctx->argc) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, f->r,
                      "mod_py: the python element in %s needs exec=\"...\" or eval=\"...\"",
                      f->r->filename);
        SSI_CREATE_ERROR_BUCKET(ctx, f, bb);
        return APR_SUCCESS;
    }
    for (;;) {
        ssi_get_tag_and_value(ctx, &tag, &val, SSI_VALUE_DECODED);
        if (!tag || !val)
            break;
        if (strcmp(tag, "exec") == 0 || strcmp(tag, "eval") == 0) {
            if (modpy_ssi_run(f, bb, tag[1] == 'v', val) != 0)
                SSI_CREATE_ERROR_BUCKET(ctx, f, bb);
        } else {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, f->r,
                          "mod_py: unknown attribute \"%s\" of the python element in %s "
                          "(expected exec or eval)", tag, f->r->filename);
            SSI_CREATE_ERROR_BUCKET(ctx, f, bb);
        }
    }
    return APR_SUCCESS;
}

void modpy_ssi_register(void)
{
    APR_OPTIONAL_FN_TYPE(ap_register_include_handler) *reg =
        APR_RETRIEVE_OPTIONAL_FN(ap_register_include_handler);
    ssi_get_tag_and_value = APR_RETRIEVE_OPTIONAL_FN(ap_ssi_get_tag_and_value);
    if (reg && ssi_get_tag_and_value)
        reg("python", modpy_ssi_python);
}

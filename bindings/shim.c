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
                 id_handler_module = MODPY_CMD_HANDLER_MODULE;

#define INFO(id) ((void *)&(id))

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
    AP_INIT_TAKE1("PythonInterpreter", modpy_cmd_raw_args, INFO(id_interpreter), OR_ALL,
                  "PythonInterpreter name: accepted; mod_py runs one interpreter per process"),
    AP_INIT_TAKE1("PythonHandlerModule", modpy_cmd_raw_args, INFO(id_handler_module), OR_ALL,
                  "PythonHandlerModule module: the module used for every phase that has no handler"),
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

/* shim.h: what bindgen cannot express, written once in C (see shim.c). */
#ifndef MODPY_SHIM_H
#define MODPY_SHIM_H

#include "httpd.h"
#include "http_config.h"
#include "apr_buckets.h"

/* Directive identifiers: cmd->info of every entry in modpy_cmds points at one of these. */
enum modpy_cmd_id {
    MODPY_CMD_HANDLER = 1,
    MODPY_CMD_PATH,
    MODPY_CMD_OPTION,
    MODPY_CMD_IMPORT,
    MODPY_CMD_DEBUG,
    MODPY_CMD_AUTORELOAD,
    MODPY_CMD_INTERPRETER,
    MODPY_CMD_HANDLER_MODULE,
    MODPY_CMD_INTERP_PER_DIRECTORY,
    MODPY_CMD_INTERP_PER_DIRECTIVE,
    MODPY_CMD_ENABLE_PDB,
    MODPY_CMD_OPTIMIZE
};

/* mod_wsgi's directives: all RAW_ARGS, parsed in Rust (src/wsgi/config.rs). */
enum modpy_wsgi_cmd_id {
    MODPY_WSGI_SCRIPT_ALIAS = 100,
    MODPY_WSGI_SCRIPT_ALIAS_MATCH,
    MODPY_WSGI_APPLICATION_GROUP,
    MODPY_WSGI_PROCESS_GROUP,
    MODPY_WSGI_CALLABLE_OBJECT,
    MODPY_WSGI_IMPORT_SCRIPT,
    MODPY_WSGI_PYTHON_PATH,
    MODPY_WSGI_PYTHON_HOME,
    MODPY_WSGI_SCRIPT_RELOADING,
    MODPY_WSGI_PASS_AUTHORIZATION,
    MODPY_WSGI_CHUNKED_REQUEST,
    MODPY_WSGI_ERROR_OVERRIDE,
    MODPY_WSGI_TRUSTED_PROXIES,
    MODPY_WSGI_TRUSTED_PROXY_HEADERS,
    MODPY_WSGI_HANDLER_SCRIPT,
    MODPY_WSGI_RESTRICT_EMBEDDED,
    MODPY_WSGI_ACCESS_SCRIPT,
    MODPY_WSGI_AUTH_USER_SCRIPT,
    MODPY_WSGI_AUTH_GROUP_SCRIPT,
    MODPY_WSGI_SOCKET_PREFIX,
    MODPY_WSGI_DAEMON_PROCESS,
    MODPY_WSGI_DAEMON_TEMPLATE,
    MODPY_WSGI_DAEMON_DEFAULT
};
const char *modpy_cmd_wsgi(cmd_parms *cmd, void *mconfig, const char *args);
/* ---- issue 4: request phases and auth providers (ids 400+, handled in
 * src/apache/config_phases.rs) ---- */
enum modpy_phase_cmd_id {
    MODPY_CMD_POST_READ_REQUEST_HANDLER = 400,
    MODPY_CMD_TRANS_HANDLER,
    MODPY_CMD_HEADER_PARSER_HANDLER,
    MODPY_CMD_INIT_HANDLER,
    MODPY_CMD_ACCESS_HANDLER,
    MODPY_CMD_AUTHEN_HANDLER,
    MODPY_CMD_AUTHZ_HANDLER,
    MODPY_CMD_TYPE_HANDLER,
    MODPY_CMD_FIXUP_HANDLER,
    MODPY_CMD_LOG_HANDLER,
    MODPY_CMD_CLEANUP_HANDLER,
    MODPY_CMD_AUTHN_PROVIDER = 450,
    MODPY_CMD_AUTHZ_PROVIDER
};
const char *modpy_cmd_phase_handler(cmd_parms *cmd, void *mconfig, const char *args);
const char *modpy_cmd_auth_provider(cmd_parms *cmd, void *mconfig, const char *a1,
                                    const char *a2, const char *a3);

/* The command table (AP_INIT_* macros), defined in shim.c; referenced by py_module in Rust. */
extern const command_rec modpy_cmds[];

/* Implemented in Rust (src/apache/config.rs): one entry point per directive argument shape. */
const char *modpy_cmd_raw_args(cmd_parms *cmd, void *mconfig, const char *args);
const char *modpy_cmd_take12(cmd_parms *cmd, void *mconfig, const char *a1, const char *a2);
const char *modpy_cmd_flag(cmd_parms *cmd, void *mconfig, int on);

/* cmd->info as the directive id. */
int modpy_cmd_id(const cmd_parms *cmd);

/* ap_log_rerror / ap_log_error / ap_log_cerror are variadic macros: one fixed-format wrapper each. */
void modpy_log_rerror(const char *file, int line, int level, apr_status_t status,
                      const request_rec *r, const char *msg);
void modpy_log_error(const char *file, int line, int level, apr_status_t status,
                     const server_rec *s, const char *msg);
void modpy_log_cerror(const char *file, int line, int level, apr_status_t status,
                      const conn_rec *c, const char *msg);
int modpy_module_index(void);

/* APR ring / brigade macros. */
void modpy_brigade_insert_tail(apr_bucket_brigade *bb, apr_bucket *b);
int modpy_brigade_empty(apr_bucket_brigade *bb);
apr_bucket *modpy_brigade_first(apr_bucket_brigade *bb);
apr_bucket *modpy_brigade_sentinel(apr_bucket_brigade *bb);
apr_bucket *modpy_bucket_next(apr_bucket *b);
int modpy_bucket_is_eos(const apr_bucket *b);
int modpy_bucket_is_flush(const apr_bucket *b);
int modpy_bucket_is_metadata(const apr_bucket *b);
apr_status_t modpy_bucket_read(apr_bucket *b, const char **str, apr_size_t *len,
                               apr_read_type_e block);
void modpy_bucket_delete(apr_bucket *b);

/* ap_get_module_config on any module (the macro indexes by module_index). */
void *modpy_get_module_config(const ap_conf_vector_t *cv, const module *m);


/* ap_set_module_config (a macro). */
void modpy_set_module_config(ap_conf_vector_t *cv, const module *m, void *val);

/* APR_RETRIEVE_OPTIONAL_FN(ssl_is_https) / (ssl_var_lookup), NULL-safe. */
int modpy_ssl_is_https(conn_rec *c);
const char *modpy_ssl_var_lookup(apr_pool_t *p, server_rec *s, conn_rec *c, request_rec *r,
                                 const char *name);

/* Typed bucket constructors, appended at the brigade's tail. */
void modpy_brigade_append_transient(apr_bucket_brigade *bb, const char *buf, apr_size_t len);
void modpy_brigade_append_flush(apr_bucket_brigade *bb);
void modpy_brigade_append_eos(apr_bucket_brigade *bb);

/* ---- issue 4 (filters, brigades, buckets, connection handler): see shim.c ---- */
enum modpy_filter_cmd_id {
    MODPY_CMD_INPUT_FILTER = 101,
    MODPY_CMD_OUTPUT_FILTER,
    MODPY_CMD_CONNECTION_HANDLER
};
/* Implemented in Rust (src/apache/filter.rs). */
const char *modpy_cmd_filter(cmd_parms *cmd, void *mconfig, const char *a1, const char *a2,
                             const char *a3);
const char *modpy_cmd_connection_handler(cmd_parms *cmd, void *mconfig, const char *a1);

void modpy_bucket_remove(apr_bucket *b);
void modpy_bucket_insert_before(apr_bucket *at, apr_bucket *b);
void modpy_bucket_insert_after(apr_bucket *at, apr_bucket *b);
void modpy_brigade_insert_head(apr_bucket_brigade *bb, apr_bucket *b);
apr_bucket *modpy_brigade_last(apr_bucket_brigade *bb);
apr_bucket *modpy_bucket_prev(apr_bucket *b);
void modpy_brigade_concat(apr_bucket_brigade *a, apr_bucket_brigade *b);
apr_status_t modpy_bucket_split(apr_bucket *b, apr_size_t point);
apr_status_t modpy_bucket_setaside(apr_bucket *b, apr_pool_t *p);
apr_status_t modpy_bucket_copy(apr_bucket *b, apr_bucket **c);
void modpy_bucket_destroy(apr_bucket *b);
/* The status of an ERROR bucket (ap_bucket_error), -1 for any other bucket. */
int modpy_bucket_error_status(const apr_bucket *b);
/* A heap bucket holding a copy of buf. */
apr_bucket *modpy_bucket_heap_copy(const char *buf, apr_size_t len, apr_bucket_alloc_t *list);
apr_bucket *modpy_bucket_flush(apr_bucket_alloc_t *list);
apr_bucket *modpy_bucket_eos(apr_bucket_alloc_t *list);
apr_bucket *modpy_bucket_error(int status, apr_pool_t *p, apr_bucket_alloc_t *list);
int modpy_status_is_eagain(apr_status_t s);
int modpy_status_is_timeup(apr_status_t s);
/* ---- end issue 4 ---- */

/* ---- daemon mode ---- */
/* ap_unixd_config.user_id / group_id: who Apache's children run as. */
long modpy_unixd_user_id(void);
long modpy_unixd_group_id(void);
/* apr_proc_other_child_register for pid, in pool p: Apache's parent calls
 * maintenance(reason, data, status) when that process dies (APR_OC_REASON_DEATH) or on restart. */
void modpy_other_child_register(int pid, void (*maintenance)(int, void *, int), void *data, apr_pool_t *p);
void modpy_other_child_unregister(void *data);
/* Process-pool userdata: a string that outlives restarts (and the DSO's reloads). */
const char *modpy_process_note_get(server_rec *s, const char *key);
void modpy_process_note_set(server_rec *s, const char *key, const char *value);
/* ap_server_root, ap_exists_config_define (mod_python's apache.server_root / exists_config_define). */
const char *modpy_server_root(void);
int modpy_exists_config_define(const char *name);
int modpy_cgi_request_uri_is_current(request_rec *r);
long modpy_get_client_block(request_rec *r, char *buffer, apr_size_t bufsiz,
                            apr_status_t *status);
/* DefaultRuntimeDir-relative path. */
const char *modpy_runtime_dir_relative(apr_pool_t *p, const char *name);

/* mod_python's SSI element (`<!--#python exec|eval="..."-->`): registered with mod_include
 * when it is loaded (call at post_config). modpy_ssi_run is Rust (src/apache/ssi.rs): it runs
 * the code and appends its output to bb; non-zero on failure. */
void modpy_ssi_register(void);
int modpy_ssi_run(struct ap_filter_t *f, apr_bucket_brigade *bb, int eval, const char *code);

#endif

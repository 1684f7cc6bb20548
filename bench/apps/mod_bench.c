/* mod_bench: the same three responses as apps/mp_app.py, in C -- the "no Python" ceiling.
 *
 *   SetHandler bench_hello  -> "Hello, World!\n" (text/plain, Content-Length 14)
 *   SetHandler bench_64k    -> 65536 bytes "0123456789abcdef..." (application/octet-stream)
 *   SetHandler bench_echo   -> reads the whole request body into one malloc()ed buffer (freed by
 *                              a request-pool cleanup), then writes it back in one ap_rwrite
 *
 * bench/lib/bench.py builds it at run time: apxs -c mod_bench.c */
#include <stdlib.h>
#include <string.h>
#include "httpd.h"
#include "http_config.h"
#include "http_protocol.h"

static const char HELLO[] = "Hello, World!\n";
static char BIG[65536];
#define ECHO_MAX ((apr_off_t)64 << 20)

static int reply(request_rec *r, const char *ctype, const char *buf, apr_off_t len)
{
    ap_set_content_type(r, ctype);
    ap_set_content_length(r, len);
    if (!r->header_only && len > 0)
        ap_rwrite(buf, (int)len, r);
    return OK;
}

static apr_status_t free_buf(void *p)
{
    free(p);
    return APR_SUCCESS;
}

static int echo(request_rec *r)
{
    apr_off_t total, got = 0;
    long n;
    char *buf;
    int rc = ap_setup_client_block(r, REQUEST_CHUNKED_ERROR);

    if (rc != OK)
        return rc;
    total = r->remaining; /* Content-Length */
    if (total > ECHO_MAX)
        return HTTP_REQUEST_ENTITY_TOO_LARGE;
    if (!(buf = malloc(total + 1)))
        return HTTP_INTERNAL_SERVER_ERROR;
    apr_pool_cleanup_register(r->pool, buf, free_buf, apr_pool_cleanup_null);
    if (ap_should_client_block(r))
        while (got < total && (n = ap_get_client_block(r, buf + got, total - got)) > 0)
            got += n;
    return reply(r, "application/octet-stream", buf, got);
}

static int handler(request_rec *r)
{
    if (!r->handler || strncmp(r->handler, "bench_", 6) != 0)
        return DECLINED;
    if (!strcmp(r->handler, "bench_hello"))
        return reply(r, "text/plain", HELLO, sizeof(HELLO) - 1);
    if (!strcmp(r->handler, "bench_64k"))
        return reply(r, "application/octet-stream", BIG, sizeof(BIG));
    if (!strcmp(r->handler, "bench_echo"))
        return echo(r);
    return DECLINED;
}

static void register_hooks(apr_pool_t *p)
{
    size_t i;

    (void)p;
    for (i = 0; i < sizeof(BIG); i++)
        BIG[i] = "0123456789abcdef"[i % 16];
    ap_hook_handler(handler, NULL, NULL, APR_HOOK_MIDDLE);
}

module AP_MODULE_DECLARE_DATA bench_module = {
    STANDARD20_MODULE_STUFF, NULL, NULL, NULL, NULL, NULL, register_hooks
};

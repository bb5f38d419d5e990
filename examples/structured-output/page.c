/* SPDX-License-Identifier: MIT */
/*
 * page.c — serves the embedded page (see page.h). The bytes live in the binary for its
 * whole life, so libmicrohttpd sends them without a copy.
 */
#include "page.h"

#include <stddef.h>

extern const unsigned char page_html[];
extern const size_t page_html_len;

enum MHD_Result page_handle(struct MHD_Connection *conn)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(page_html_len, (void *)page_html, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* SPDX-License-Identifier: MIT */
/*
 * page.h — GET /: the example's web page (page.html, embedded at build time by embed.cmake
 * as the array page_html).
 */
#ifndef SO_PAGE_H
#define SO_PAGE_H

#include <microhttpd.h>

enum MHD_Result page_handle(struct MHD_Connection *conn);

#endif

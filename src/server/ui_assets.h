/* SPDX-License-Identifier: MIT */
/*
 * ui_assets.h — the dashboard's files (src/server/ui/), compiled into the binary by
 * cmake/embed_assets.cmake: the server needs nothing installed beside it to serve its UI.
 */
#ifndef ERRAND_SERVER_UI_ASSETS_H
#define ERRAND_SERVER_UI_ASSETS_H

#include <stddef.h>

struct ui_asset {
    const char *name;         /* "app.js": the file name under src/server/ui/ */
    const char *content_type; /* "text/javascript; charset=utf-8" */
    const unsigned char *data;
    size_t size;
};

/* Every asset, ended by an entry whose name is NULL. */
extern const struct ui_asset ui_assets[];

#endif

/* SPDX-License-Identifier: MIT */
/*
 * openapi_document.h — the OpenAPI 3.1 document of the HTTP API (docs/openapi.json), compiled
 * into the binary by cmake/embed_assets.cmake like the dashboard's files, and served verbatim
 * at GET /api/openapi.json. The document is the machine-readable contract: the unit test
 * test_openapi checks it against the route table and the request field tables.
 */
#ifndef ERRAND_SERVER_OPENAPI_DOCUMENT_H
#define ERRAND_SERVER_OPENAPI_DOCUMENT_H

#include "server/ui_assets.h"

/* The document ("openapi.json", application/json), then an entry whose name is NULL. */
extern const struct ui_asset openapi_assets[];

#endif

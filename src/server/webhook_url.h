/* SPDX-License-Identifier: MIT */
/*
 * webhook_url.h — the check a webhook's URL passes before it is stored: an absolute http or
 * https URL with a host, at most WEBHOOK_URL_MAX bytes, as libcurl parses it.
 */
#ifndef ERRAND_SERVER_WEBHOOK_URL_H
#define ERRAND_SERVER_WEBHOOK_URL_H

#include "errand/errand.h"

/* 0 when url is a webhook URL; else ERRAND_EINVAL with a message naming field. */
int webhook_url_check(const char *url, const char *field, errand_error *err);

#endif

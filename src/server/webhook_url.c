/* SPDX-License-Identifier: MIT */
/*
 * webhook_url.c — the check of a webhook's URL (see webhook_url.h).
 */
#include "server/webhook_url.h"

#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "core/error.h"
#include "store/webhook_row.h"

int webhook_url_check(const char *url, const char *field, errand_error *err)
{
    if (strlen(url) > WEBHOOK_URL_MAX)
        return error_set(err, ERRAND_EINVAL, field, "field '%s' is longer than %d bytes", field,
                         WEBHOOK_URL_MAX);
    CURLU *u = curl_url();
    if (!u)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    char *scheme = NULL, *host = NULL;
    bool ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host[0] &&
              (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0);
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    if (!ok)
        return error_set(err, ERRAND_EINVAL, field,
                         "field '%s' must be an absolute http:// or https:// URL with a host, "
                         "got '%.200s'",
                         field, url);
    return 0;
}

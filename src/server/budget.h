/* SPDX-License-Identifier: MIT */
/*
 * budget.h — the memory budget: how much request work (bodies, the JSON parsed from them,
 * the rows and answers built for them) the server takes on at once. Each request reserves its
 * estimated cost when its headers arrive, from its Content-Length (or as a chunked body
 * grows), and gives it back when its reply has gone out. A request that would pass the budget
 * is refused at once with 503 and Retry-After instead of growing the process; one request
 * larger than the whole budget is still served when nothing else is in flight, so every body
 * under ERRAND_MAX_BODY_BYTES can get through.
 *
 * The estimate is a multiple of the body size: parsing and answering a batch costs far more
 * than its text (a 150 KB batch of 10,000 small runs took about 56 MB before the budget).
 */
#ifndef ERRAND_SERVER_BUDGET_H
#define ERRAND_SERVER_BUDGET_H

#include <stdbool.h>
#include <stddef.h>

/* Work reserved per body byte, and per request whatever its body. */
#define BUDGET_PER_BODY_BYTE 64
#define BUDGET_PER_REQUEST 4096

typedef struct budget budget;

/* A budget of limit bytes; NULL when out of memory. */
budget *budget_new(size_t limit);
void budget_free(budget *b);

/* The estimated work of a request with a body of body_bytes. */
size_t budget_cost(size_t body_bytes);

/* Reserves bytes: true when they fit under the limit, or when nothing else is reserved. */
bool budget_take(budget *b, size_t bytes);
/* Gives back what budget_take reserved. */
void budget_give(budget *b, size_t bytes);

/* Bytes reserved now, and the most reserved at once since the last call to budget_peak_reset. */
size_t budget_used(const budget *b);
size_t budget_peak_reset(budget *b);

#endif

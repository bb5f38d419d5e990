/* SPDX-License-Identifier: MIT */
/*
 * submit_slot.c — a submission's runs as both backends carry them (submit_slot.h).
 */
#include "store/submit_slot.h"

#include <string.h>

#include "core/error.h"
#include "core/mem.h"

int submit_slots_new(const struct run_spec *specs, size_t n, int64_t now_ms,
                     struct submit_slot **out, errand_error *err)
{
    struct submit_slot *slots = *out = mem_calloc(n ? n : 1, sizeof *slots);
    unsigned char *rnd = mem_alloc((n ? n : 1) * UUID_V7_RANDOM_BYTES);
    if (!slots || !rnd) {
        mem_free(rnd);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    /* The ids' randomness in one draw: a CSPRNG call per id was 8 % of the handler threads'
     * time under errand bench. */
    int drawn = random_bytes(rnd, n * UUID_V7_RANDOM_BYTES);
    for (size_t i = 0; i < n && drawn == 0; i++)
        uuid_v7_from(now_ms, rnd + i * UUID_V7_RANDOM_BYTES, slots[i].id);
    mem_free(rnd);
    if (drawn < 0)
        return error_set(err, ERRAND_EIO, NULL, "cannot generate a task-run id");
    for (size_t i = 0; i < n; i++) {
        struct submit_slot *slot = &slots[i];
        int rc;
        if (!(slot->delays_text = run_spec_delays_json(&specs[i])))
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        if ((rc = submit_slot_created_row(&specs[i], slot, now_ms, &slot->prebuilt, err)) < 0)
            return rc;
        const char *tags = specs[i].tags;
        if (tags && strcmp(tags, "[]") != 0 && !(slot->tags = json_loads(tags, 0, NULL)))
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory"); /* specs hold valid JSON */
    }
    return 0;
}

void submit_slots_free(struct submit_slot *slots, size_t n)
{
    for (size_t i = 0; slots && i < n; i++) {
        submit_slot_clear_outputs(&slots[i]);
        run_row_clear(&slots[i].prebuilt);
        json_decref(slots[i].tags);
        mem_free(slots[i].delays_text);
    }
    mem_free(slots);
}

void submit_slots_hand_out(struct submit_slot *slots, size_t n, struct run_row *rows_out,
                           bool *created)
{
    for (size_t i = 0; i < n; i++) {
        if (created)
            created[i] = slots[i].created;
        struct run_row *from = slots[i].answered ? &slots[i].answer : &slots[i].prebuilt;
        rows_out[i] = *from;
        memset(from, 0, sizeof *from);
    }
}

void submit_slot_clear_outputs(struct submit_slot *slot)
{
    run_row_clear(&slot->answer);
    slot->answered = false;
    mem_free(slot->cache_message);
    mem_free(slot->cache_result);
    mem_free(slot->cache_result_ref);
    slot->cache_message = slot->cache_result = slot->cache_result_ref = NULL;
    slot->cached = false;
    slot->created = false;
    run_deps_plan_clear(&slot->deps);
    slot->has_deps = false;
}

int submit_slot_created_row(const struct run_spec *spec, const struct submit_slot *slot,
                            int64_t now_ms, struct run_row *out, errand_error *err)
{
    struct run_cache_hit hit = {slot->cache_message, slot->cache_result, slot->cache_result_ref};
    return run_spec_created_row(spec, slot->id, slot->delays_text, now_ms,
                                slot->cached ? &hit : NULL, out, err);
}

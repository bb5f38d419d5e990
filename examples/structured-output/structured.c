/* SPDX-License-Identifier: MIT */
/*
 * structured.c — the task function (see structured.h). Prompts are plain: the system message
 * says what to do (plus the caller's instructions), the user message carries the payload as
 * JSON. The schema does the real work: the endpoint is asked to answer in it.
 */
#include "structured.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openai.h"
#include "schema.h"
#include "target_type.h"

#define SCHEMA_NAME "structured_output"
#define WRAP_MEMBER "value"
#define WHY_MAX 512
#define PROMPT_MAX 8192
#define LOG_RESULT_EXCERPT 200

static const char system_prompt_base[] =
    "You convert the data the user gives you into the requested type. Answer with JSON "
    "that matches the response schema, and nothing else.";

static bool should_stop(void *arg)
{
    return errand_task_should_stop(arg);
}

typedef struct task_params {
    json_t *root;
    json_t *payload;          /* borrowed from root */
    const char *instructions; /* borrowed; NULL = none */
    target_type target;
} task_params;

/* Reads and checks the parameters; a bad one fails the run for good (a retry sends the same). */
static int read_params(errand_task_ctx *ctx, const char *params_json, task_params *p)
{
    json_error_t jerr;
    memset(p, 0, sizeof *p);
    p->root = json_loads(params_json ? params_json : "{}", 0, &jerr);
    if (!json_is_object(p->root)) {
        errand_task_fail(ctx, false, "parameters must be a JSON object: %s",
                         p->root ? "got another JSON value" : jerr.text);
        return -1;
    }
    p->payload = json_object_get(p->root, "payload");
    if (!p->payload) {
        errand_task_fail(ctx, false, "parameter 'payload' is missing");
        return -1;
    }
    json_t *instructions = json_object_get(p->root, "instructions");
    if (instructions && !json_is_null(instructions) && !json_is_string(instructions)) {
        errand_task_fail(ctx, false, "parameter 'instructions' must be a string or null");
        return -1;
    }
    p->instructions = json_string_value(instructions);
    json_t *target = json_object_get(p->root, "target");
    char why[TARGET_WHY_MAX];
    if (!target) {
        errand_task_fail(ctx, false, "parameter 'target' is missing");
        return -1;
    }
    if (target_type_parse_json(target, &p->target, why) != 0) {
        errand_task_fail(ctx, false, "parameter 'target': %s", why);
        return -1;
    }
    return 0;
}

static void free_params(task_params *p)
{
    target_type_clear(&p->target);
    json_decref(p->root);
}

/* The model's JSON text -> the checked, typed result (new reference), or NULL with why. */
static json_t *read_answer(const char *content, bool wrapped, json_t *schema, char *why)
{
    json_error_t jerr;
    json_t *answer = json_loads(content, JSON_DECODE_ANY, &jerr);
    if (!answer) {
        snprintf(why, WHY_MAX, "the model's answer is not JSON: %s", jerr.text);
        return NULL;
    }
    json_t *value = answer;
    if (wrapped) {
        value = json_object_get(answer, WRAP_MEMBER);
        if (!value) {
            snprintf(why, WHY_MAX, "the model's answer has no \"" WRAP_MEMBER "\" member");
            json_decref(answer);
            return NULL;
        }
    }
    char problem[WHY_MAX / 2];
    json_t *checked = schema_check(value, schema, problem, sizeof problem);
    if (!checked)
        snprintf(why, WHY_MAX, "the model's answer does not match the target type: %s", problem);
    json_decref(answer);
    return checked;
}

int structured_output_run(errand_task_ctx *ctx, const char *params_json, char **result_json,
                          void *userdata)
{
    const openai_config *cfg = userdata;
    task_params p;
    if (read_params(ctx, params_json, &p) != 0) {
        free_params(&p);
        return 1;
    }
    if (!openai_config_usable(cfg)) {
        errand_task_fail(ctx, false, OPENAI_NOT_CONFIGURED_MESSAGE);
        free_params(&p);
        return 1;
    }

    int rc = 1;
    char *target_text = json_dumps(p.target.canonical, JSON_COMPACT | JSON_ENCODE_ANY);
    char *payload_text = json_dumps(p.payload, JSON_COMPACT | JSON_ENCODE_ANY);
    bool wrapped = false;
    json_t *request_schema = schema_for_request(p.target.schema, &wrapped);
    char system_prompt[PROMPT_MAX];
    openai_answer answer = {0};
    if (!target_text || !payload_text || !request_schema) {
        errand_task_fail(ctx, true, "out of memory preparing the request");
        goto done;
    }
    snprintf(system_prompt, sizeof system_prompt, "%s%s%s%s", system_prompt_base,
             wrapped ? " Put the converted value in the \"" WRAP_MEMBER "\" member." : "",
             p.instructions && *p.instructions ? "\n\nInstructions: " : "",
             p.instructions ? p.instructions : "");

    /* Goes to the run's logs when log prints are on (the seed's PREFECT_LOGGING_LOG_PRINTS). */
    printf("create_structured_output: casting the payload to %s (attempt %d, model %s)\n",
           target_text, errand_task_attempt(ctx), cfg->model);
    fflush(stdout);

    openai_request req = {
        .system_prompt = system_prompt,
        .user_prompt = payload_text,
        .schema_name = SCHEMA_NAME,
        .schema = request_schema,
        .strict = schema_is_strict(request_schema),
        .should_stop = should_stop,
        .stop_arg = ctx,
    };
    openai_chat(cfg, &req, &answer);
    switch (answer.outcome) {
    case OPENAI_OK:
        break;
    case OPENAI_RETRYABLE:
    case OPENAI_STOPPED:
        errand_task_fail(ctx, true, "%s", answer.message);
        goto done;
    case OPENAI_FATAL:
        errand_task_fail(ctx, false, "%s", answer.message);
        goto done;
    }

    char why[WHY_MAX];
    json_t *value = read_answer(answer.content, wrapped, p.target.schema, why);
    if (!value) {
        /* A model can slip; the next attempt asks again. */
        errand_task_fail(ctx, true, "%s", why);
        goto done;
    }
    *result_json = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(value);
    if (!*result_json) {
        errand_task_fail(ctx, true, "out of memory writing the result");
        goto done;
    }
    errand_task_log(ctx, ERRAND_LOG_INFO, "structured output ready: %.*s", LOG_RESULT_EXCERPT,
                    *result_json);
    rc = 0;
done:
    openai_answer_clear(&answer);
    json_decref(request_schema);
    free(target_text);
    free(payload_text);
    free_params(&p);
    return rc;
}

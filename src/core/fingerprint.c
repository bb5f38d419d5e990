/* SPDX-License-Identifier: MIT */
/*
 * fingerprint.c — failure messages reduced to their shape (see fingerprint.h).
 */
#include "core/fingerprint.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

/* Hex runs this long or longer are ids, hashes or addresses, digits or not. */
#define HEX_RUN_MIN 8

static bool is_hex(unsigned char c)
{
    return isxdigit(c) != 0;
}

/* The length of the run of hexadecimal characters (and dashes between them, as in a UUID)
 * at s. */
static size_t hex_run(const unsigned char *s)
{
    size_t n = 0;
    while (is_hex(s[n]) || (s[n] == '-' && n > 0 && is_hex(s[n + 1])))
        n++;
    return n;
}

void failure_fingerprint(const char *message, char out[FINGERPRINT_MAX])
{
    const unsigned char *s = (const unsigned char *)(message ? message : "");
    size_t o = 0;
    bool space = false;
    while (*s && o < FINGERPRINT_MAX - 1) {
        size_t hex = hex_run(s);
        bool word_start = s == (const unsigned char *)message || !isalnum(s[-1]);
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && is_hex(s[2]))
            hex = 2 + hex_run(s + 2); /* 0x... */
        else if (!word_start || hex < HEX_RUN_MIN)
            hex = 0;
        if (isdigit(*s) || hex) {
            size_t n = hex;
            while (isdigit(s[n]) || ((s[n] == '.' || s[n] == ',') && isdigit(s[n + 1])))
                n++;
            s += n ? n : 1;
            if (o > 0 && out[o - 1] == '#')
                continue;
            if (space && o < FINGERPRINT_MAX - 2)
                out[o++] = ' ';
            out[o++] = '#';
            space = false;
            continue;
        }
        if (isspace(*s)) {
            space = o > 0;
            s++;
            continue;
        }
        if (space) {
            out[o++] = ' ';
            space = false;
            if (o >= FINGERPRINT_MAX - 1)
                break;
        }
        out[o++] = (char)*s++;
    }
    /* Never end inside a UTF-8 sequence: drop a last character the cut left incomplete. */
    size_t lead = o;
    while (lead > 0 && ((unsigned char)out[lead - 1] & 0xC0) == 0x80)
        lead--;
    if (lead > 0) {
        unsigned char c = (unsigned char)out[lead - 1];
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (o - (lead - 1) < need)
            o = lead - 1;
    }
    out[o] = '\0';
}

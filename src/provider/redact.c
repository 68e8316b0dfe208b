/*
 * redact.c - provider_redact: secrets out of every message a provider's text reaches.
 *
 * Providers echo keys back in error text, and not always whole: cut at either end
 * ("...Jkl012 is invalid"), masked ("sk-proj-********abcd"), upper-cased. What is replaced
 * with "[redacted]":
 *   - any run of 8 or more characters equal, ignoring ASCII case, to a substring of the
 *     configured key (and a shorter prefix of it that the text ends with: a key cut off);
 *   - a mask next to such a run: the '*' (or '.') run and the key fragment beyond it;
 *   - the known key shapes whoever they belong to: sk-..., AIza..., gsk_, xai-, pplx-, hf_,
 *     r8_ (a prefix that starts a word, then enough key characters, '*' counted as one), and
 *     "Bearer <token>".
 * The text is at most the caller's buffer (a few hundred bytes); the work is O(text x key).
 *
 * Pure; any thread.
 */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "switchboard/provider.h"

#define REDACTED   "[redacted]"
#define SECRET_MIN 8 /* shortest echo of the key that is redacted */

static bool key_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-';
}

static bool mask_char(char c)
{
    return c == '*' || c == '.';
}

static bool token_char(char c)
{
    return c && (isalnum((unsigned char)c) || strchr("-._~+/=", c));
}

/* Length of a key-shaped run at s: prefix + at least min key characters (or '*' masks), or
 * fewer when the run reaches the end of the text (a key cut off by truncation). 0: none. */
static size_t key_run(const char *s, size_t n, const char *prefix, size_t min, size_t min_tail)
{
    size_t p = strlen(prefix);
    if (n < p || memcmp(s, prefix, p) != 0)
        return 0;
    size_t r = 0;
    while (p + r < n && (key_char(s[p + r]) || s[p + r] == '*'))
        r++;
    if (r >= min || (p + r == n && r >= min_tail))
        return p + r;
    return 0;
}

/* The known key shapes at s (which starts a word). */
static size_t shape_run(const char *s, size_t n)
{
    static const struct {
        const char *prefix;
        size_t min, min_tail;
    } shapes[] = {
        {"sk-", 8, 4},    {"AIza", 20, 1}, {"gsk_", 20, 8}, {"xai-", 20, 8},
        {"pplx-", 20, 8}, {"hf_", 20, 8},  {"r8_", 20, 8},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(shapes); i++) {
        size_t r = key_run(s, n, shapes[i].prefix, shapes[i].min, shapes[i].min_tail);
        if (r)
            return r;
    }
    return 0;
}

/* Keys start a word: "task-manager-tool" holds no key. */
static bool at_word_start(const char *s, size_t i)
{
    return i == 0 || !isalnum((unsigned char)s[i - 1]);
}

/* "Bearer <token>": returns the length of the whole match, 0 when none. */
static size_t bearer_run(const char *s, size_t n)
{
    if (n < 7 || strncasecmp(s, "bearer", 6) != 0 || s[6] != ' ')
        return 0;
    size_t i = 6;
    while (i < n && s[i] == ' ')
        i++;
    size_t start = i;
    while (i < n && token_char(s[i]))
        i++;
    while (i > start + 1 && s[i - 1] == '.')
        i--; /* a full stop ending the sentence */
    return i > start ? i : 0;
}

/* The longest k such that s[0..k) equals, ignoring ASCII case, some substring of the secret
 * (at most n). */
static size_t secret_match(const char *s, size_t n, const char *secret, size_t slen)
{
    size_t best = 0;
    for (size_t j = 0; j < slen && best < n && best < slen - j; j++) {
        size_t k = 0;
        while (k < n && j + k < slen &&
               tolower((unsigned char)s[k]) == tolower((unsigned char)secret[j + k]))
            k++;
        if (k > best)
            best = k;
    }
    return best;
}

/* An echo of the secret at s: SECRET_MIN or more matching characters, or a prefix of the
 * secret of 4 or more that the text ends with. 0 when none. */
static size_t secret_run(const char *s, size_t n, const char *secret, size_t slen)
{
    if (slen == 0)
        return 0;
    size_t k = secret_match(s, n, secret, slen);
    if (k >= SECRET_MIN || k == slen)
        return k; /* a long enough piece, or a short secret whole */
    if (k == n && k >= 4 && strncasecmp(s, secret, k) == 0)
        return k; /* the text ends with the key's start: cut off */
    return 0;
}

/* After an echo: a mask ("****", "...") and the key fragment behind it belong to it. */
static size_t mask_tail(const char *s, size_t n, const char *secret, size_t slen)
{
    size_t m = 0;
    while (m < n && mask_char(s[m]))
        m++;
    if (m < 2)
        return 0;
    size_t f = 0;
    while (m + f < n && key_char(s[m + f]))
        f++;
    if (f > 0 && secret_match(s + m, f, secret, slen) < f)
        f = 0; /* the word after the mask is not part of the key */
    return m + f;
}

/* Before an echo: drops a mask (and the key fragment before it) already copied to out. */
static void drop_mask_before(struct buf *out, const char *secret, size_t slen)
{
    size_t end = out->len, m = end;
    while (m > 0 && mask_char(out->data[m - 1]))
        m--;
    if (end - m < 2)
        return;
    size_t f = m;
    while (f > 0 && key_char(out->data[f - 1]))
        f--;
    if (f < m && secret_match(out->data + f, m - f, secret, slen) < m - f)
        f = m;
    out->len = f;
    out->data[f] = '\0';
}

void provider_redact(char *msg, size_t size, const char *secret)
{
    if (!msg || size == 0)
        return;
    size_t len = strnlen(msg, size - 1);
    size_t slen = secret ? strlen(secret) : 0;
    struct buf out;
    buf_init(&out);
    for (size_t i = 0; i < len;) {
        size_t left = len - i, n;
        if ((n = secret_run(msg + i, left, secret, slen)) > 0) {
            drop_mask_before(&out, secret, slen);
            n += mask_tail(msg + i + n, left - n, secret, slen);
        } else if (at_word_start(msg, i) && (n = shape_run(msg + i, left)) > 0) {
            n += slen ? mask_tail(msg + i + n, left - n, secret, slen) : 0;
        } else if ((n = bearer_run(msg + i, left)) > 0) {
            buf_puts(&out, "Bearer ");
        } else {
            buf_putc(&out, msg[i++]);
            continue;
        }
        buf_puts(&out, REDACTED);
        i += n;
    }
    str_copy(msg, size, buf_str(&out));
    buf_cleanup(&out);
}

/* Parser of cron expressions. See cron.h for the grammar. */
#include "core/cron_internal.h"
#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { F_SEC, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, F_COUNT };

typedef struct field_def {
    const char *name;
    int lo, hi;           /* accepted values */
    int star_hi;          /* `*` covers lo..star_hi */
    int hash_lo, hash_hi; /* `H` picks from this range */
    const char *const *names;
} field_def_t;

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                          "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

static const field_def_t fields[F_COUNT] = {
    [F_SEC] = {"second", 0, 59, 59, 0, 59, NULL},
    [F_MIN] = {"minute", 0, 59, 59, 0, 59, NULL},
    [F_HOUR] = {"hour", 0, 23, 23, 0, 23, NULL},
    [F_DOM] = {"day-of-month", 1, 31, 31, 1, 28, NULL},
    [F_MON] = {"month", 1, 12, 12, 1, 12, month_names},
    [F_DOW] = {"day-of-week", 0, 7, 6, 0, 6, day_names},
};

/* Parser state for one field. */
typedef struct pfield {
    const char *text; /* the whole expression, for columns */
    const char *p;    /* cursor */
    const char *end;  /* end of this field */
    int f;            /* F_* */
    const char *seed;
    cron_expr_t *e;
    uint64_t bits;
    cron_error_t *err;
} pfield_t;

static int fail_at(cron_error_t *err, const char *field, int column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(cron_error_t *err, const char *field, int column, const char *fmt, ...)
{
    if (!err)
        return -EINVAL;
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    err->field = field;
    err->column = column;
    const char *sep = field[0] ? ": " : "";
    if (column > 0)
        snprintf(err->message, sizeof(err->message), "%s%s%s (column %d)", field, sep, what,
                 column);
    else
        snprintf(err->message, sizeof(err->message), "%s%s%s", field, sep, what);
    return -EINVAL;
}

#define FAIL(pf, at, ...)                                                                          \
    fail_at((pf)->err, fields[(pf)->f].name, (int)((at) - (pf)->text) + 1, __VA_ARGS__)

/* A number or a name. Returns 0 and the value, or an error. */
static int parse_value(pfield_t *pf, int *out)
{
    const field_def_t *fd = &fields[pf->f];
    const char *start = pf->p;
    if (pf->p < pf->end && isdigit((unsigned char)*pf->p)) {
        long v = 0;
        while (pf->p < pf->end && isdigit((unsigned char)*pf->p)) {
            if (v < 1000000)
                v = v * 10 + (*pf->p - '0');
            pf->p++;
        }
        if (v < fd->lo || v > fd->hi)
            return FAIL(pf, start, "%.*s is out of range %d-%d", (int)(pf->p - start), start,
                        fd->lo, fd->hi);
        *out = (int)v;
        return 0;
    }
    const char *q = start;
    while (q < pf->end && isalpha((unsigned char)*q))
        q++;
    /* a name is three letters; in day-of-week an L may follow (FRIL) */
    bool name_len =
        q - start == 3 || (pf->f == F_DOW && q - start == 4 && toupper(start[3]) == 'L');
    if (name_len && fd->names) {
        for (int i = 0; fd->names[i]; i++)
            if (strncasecmp(pf->p, fd->names[i], 3) == 0) {
                pf->p += 3;
                *out = i + (pf->f == F_MON);
                return 0;
            }
    }
    while (q < pf->end && isalnum((unsigned char)*q))
        q++;
    if (pf->f == F_DOM && q - start == 1 && toupper(*start) == 'W')
        return FAIL(pf, start, "'W' needs a day before it, as in 15W (weekday nearest the 15th)");
    if (q == start && q < pf->end)
        return FAIL(pf, start, "expected a number, found '%c'", *q);
    if (q == start)
        return FAIL(pf, start, "expected a number after '%c'", start[-1]);
    if (fd->names)
        return FAIL(pf, start, "'%.*s' is not a %s", (int)(q - start), start,
                    pf->f == F_MON ? "month name (JAN-DEC)" : "day name (SUN-SAT)");
    return FAIL(pf, start, "'%.*s' is not a number", (int)(q - start), start);
}

static bool eat(pfield_t *pf, char c)
{
    if (pf->p < pf->end && toupper((unsigned char)*pf->p) == c) {
        pf->p++;
        return true;
    }
    return false;
}

/* "/n": the step, 1 up to the width of the range it steps over. */
static int parse_step(pfield_t *pf, int width, int *step)
{
    *step = 1;
    if (!eat(pf, '/'))
        return 0;
    const char *start = pf->p;
    long v = 0;
    while (pf->p < pf->end && isdigit((unsigned char)*pf->p)) {
        if (v < 1000000)
            v = v * 10 + (*pf->p - '0');
        pf->p++;
    }
    if (pf->p == start)
        return FAIL(pf, start, "expected a step number after '/'");
    if (v < 1 || v > width)
        return FAIL(pf, start, "step %ld is out of range 1-%d", v, width);
    *step = (int)v;
    return 0;
}

static void add_range(pfield_t *pf, int a, int b, int step)
{
    for (int v = a; v <= b; v += step)
        pf->bits |= UINT64_C(1) << (pf->f == F_DOW && v == 7 ? 0 : v);
}

static uint64_t hash_of(const pfield_t *pf)
{
    const char *seed = pf->seed ? pf->seed : "cronvisor";
    size_t n = strlen(seed);
    char *buf = cv_malloc(n + 2);
    memcpy(buf, seed, n);
    buf[n] = '\0';
    buf[n + 1] = (char)('0' + pf->f);
    uint64_t h = cv_hash64(buf, n + 2);
    free(buf);
    /* FNV-1a's low bits mix poorly for short suffixes: fold the high half in. */
    return h ^ (h >> 29) ^ (h >> 47);
}

/* H, H(a-b), H/n, H(a-b)/n. */
static int parse_hash(pfield_t *pf)
{
    const field_def_t *fd = &fields[pf->f];
    int a = fd->hash_lo, b = fd->hash_hi, step, rc;
    if (eat(pf, '(')) {
        const char *at = pf->p;
        if ((rc = parse_value(pf, &a)) < 0)
            return rc;
        if (!eat(pf, '-'))
            return FAIL(pf, pf->p, "expected '-' in H(a-b)");
        if ((rc = parse_value(pf, &b)) < 0)
            return rc;
        if (b < a)
            return FAIL(pf, at, "range %d-%d is reversed", a, b);
        if (!eat(pf, ')'))
            return FAIL(pf, pf->p, "expected ')' to close H(a-b)");
    }
    if ((rc = parse_step(pf, b - a + 1, &step)) < 0)
        return rc;
    uint64_t h = hash_of(pf);
    if (step > 1)
        add_range(pf, a + (int)(h % (uint64_t)step), b, step);
    else
        add_range(pf, a + (int)(h % (uint64_t)(b - a + 1)), a + (int)(h % (uint64_t)(b - a + 1)),
                  1);
    return 0;
}

/* L, L-n, LW in day-of-month. */
static int parse_dom_last(pfield_t *pf)
{
    if (eat(pf, 'W')) {
        pf->e->dom_last_weekday = true;
        return 0;
    }
    int n = 0;
    if (eat(pf, '-')) {
        const char *at = pf->p;
        long v = 0;
        while (pf->p < pf->end && isdigit((unsigned char)*pf->p))
            v = v < 1000 ? v * 10 + (*pf->p++ - '0') : (pf->p++, v);
        if (pf->p == at || v > 30)
            return FAIL(pf, at, "L-n needs n in 0-30");
        n = (int)v;
    }
    pf->e->dom_last |= UINT32_C(1) << n;
    return 0;
}

/* After a first value v in day-of-month or day-of-week: W, L or #k. Returns 1 when consumed. */
static int parse_suffix(pfield_t *pf, int v, const char *at)
{
    if (pf->f == F_DOM && eat(pf, 'W')) {
        pf->e->dom_weekday |= UINT32_C(1) << v;
        return 1;
    }
    if (pf->f != F_DOW)
        return 0;
    int d = v % 7;
    if (eat(pf, 'L')) {
        pf->e->dow_last |= (uint8_t)(1u << d);
        return 1;
    }
    if (!eat(pf, '#'))
        return 0;
    const char *kat = pf->p;
    if (pf->p >= pf->end || *pf->p < '1' || *pf->p > '5' ||
        (pf->p + 1 < pf->end && isdigit((unsigned char)pf->p[1])))
        return FAIL(pf, kat, "'#' needs a week number 1-5 after it, as in FRI#2");
    pf->e->dow_nth[d] |= (uint8_t)(1u << (*pf->p++ - '0'));
    (void)at;
    return 1;
}

/* One element of a comma list. */
static int parse_element(pfield_t *pf)
{
    const field_def_t *fd = &fields[pf->f];
    const char *at = pf->p;
    int a, b, step, rc;
    if (eat(pf, '*')) {
        if ((rc = parse_step(pf, fd->star_hi - fd->lo + 1, &step)) < 0)
            return rc;
        add_range(pf, fd->lo, fd->star_hi, step);
        return 0;
    }
    if (eat(pf, '?')) {
        if (pf->f != F_DOM && pf->f != F_DOW)
            return FAIL(pf, at, "'?' is only allowed in day-of-month and day-of-week");
        add_range(pf, fd->lo, fd->star_hi, 1);
        return 0;
    }
    if (eat(pf, 'H'))
        return parse_hash(pf);
    if (pf->f == F_DOM && eat(pf, 'L'))
        return parse_dom_last(pf);
    if (pf->f == F_DOW && pf->p < pf->end && toupper((unsigned char)*pf->p) == 'L')
        return FAIL(pf, at, "'L' in day-of-week needs a day before it, as in 5L (last Friday)");
    if ((rc = parse_value(pf, &a)) < 0)
        return rc;
    if ((rc = parse_suffix(pf, a, at)) != 0)
        return rc < 0 ? rc : 0;
    b = a;
    if (eat(pf, '-')) {
        if ((rc = parse_value(pf, &b)) < 0)
            return rc;
        if (pf->f == F_DOW && b == 0 && a > 0)
            b = 7; /* FRI-SUN */
        if (b < a)
            return FAIL(pf, at, "range %d-%d is reversed (write it from low to high)", a, b);
    } else if (pf->p < pf->end && *pf->p == '/') {
        b = a > fd->star_hi ? a : fd->star_hi; /* a/n: from a to the field's end */
    }
    if ((rc = parse_step(pf, fd->star_hi - fd->lo + 1, &step)) < 0)
        return rc;
    add_range(pf, a, b, step);
    return 0;
}

/* One whitespace-free field [start, end): a comma list of elements. */
static int parse_field(pfield_t *pf, const char *start, const char *end)
{
    pf->p = start;
    pf->end = end;
    pf->bits = 0;
    for (;;) {
        if (pf->p >= pf->end || *pf->p == ',')
            return FAIL(pf, pf->p, "empty list element");
        int rc = parse_element(pf);
        if (rc < 0)
            return rc;
        if (pf->p >= pf->end)
            return 0;
        if (*pf->p != ',') {
            const char *q = pf->p;
            return FAIL(pf, q, "unexpected '%c'%s", *q,
                        *q == '/' ? " (a step goes after *, a range or a start value)" : "");
        }
        pf->p++;
    }
}

static void store_field(cron_expr_t *e, int f, uint64_t bits, const char *start)
{
    bool star = start[0] == '*' || start[0] == '?';
    switch (f) {
    case F_SEC:
        e->sec = bits;
        break;
    case F_MIN:
        e->min = bits;
        break;
    case F_HOUR:
        e->hour = (uint32_t)bits;
        e->hour_cadence = start[0] == '*';
        break;
    case F_DOM:
        e->dom = (uint32_t)bits;
        e->dom_star = star;
        break;
    case F_MON:
        e->month = (uint16_t)bits;
        break;
    case F_DOW:
        e->dow = (uint8_t)bits;
        e->dow_star = star;
        break;
    }
}

typedef struct token {
    const char *start, *end;
} token_t;

/* Splits text on blanks into at most max tokens; returns the count found (may exceed max). */
static int split(const char *text, token_t *tok, int max)
{
    int n = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (!*p)
            return n;
        const char *s = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            p++;
        if (n < max)
            tok[n] = (token_t){s, p};
        n++;
    }
}

static bool tok_is(const token_t *t, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(t->end - t->start) == n && strncasecmp(t->start, word, n) == 0;
}

/* "1h30m", "90s", "2d": returns seconds > 0 or an error. */
static int parse_duration(const char *text, const token_t *t, int64_t *out, cron_error_t *err)
{
    int64_t total = 0;
    const char *p = t->start;
    unsigned seen = 0;
    while (p < t->end) {
        const char *at = p;
        int64_t v = 0;
        while (p < t->end && isdigit((unsigned char)*p))
            v = v < 100000000 ? v * 10 + (*p++ - '0') : (p++, v);
        char u = p < t->end ? (char)tolower((unsigned char)*p) : 0;
        const char *units = "smhd";
        const char *up = u ? strchr(units, u) : NULL;
        static const int64_t mult[] = {1, 60, 3600, 86400};
        if (p == at || !up)
            return fail_at(err, "@every", (int)(t->start - text) + 1,
                           "'%.*s' is not a duration like 90s, 5m, 1h30m or 2d",
                           (int)(t->end - t->start), t->start);
        if (seen & (1u << (up - units)))
            return fail_at(err, "@every", (int)(p - text) + 1, "unit '%c' appears twice", u);
        seen |= 1u << (up - units);
        total += v * mult[up - units];
        p++;
    }
    if (total <= 0)
        return fail_at(err, "@every", (int)(t->start - text) + 1, "the duration must be positive");
    if (total > INT64_C(3660) * 86400)
        return fail_at(err, "@every", (int)(t->start - text) + 1, "%.*s is longer than 10 years",
                       (int)(t->end - t->start), t->start);
    *out = total;
    return 0;
}

static const struct {
    const char *name, *fields;
} macros[] = {
    {"@yearly", "0 0 0 1 1 *"}, {"@annually", "0 0 0 1 1 *"}, {"@monthly", "0 0 0 1 * *"},
    {"@weekly", "0 0 0 * * 0"}, {"@daily", "0 0 0 * * *"},    {"@midnight", "0 0 0 * * *"},
    {"@hourly", "0 0 * * * *"},
};

static int parse_fields(cron_expr_t *e, const char *text, const token_t *tok, int n,
                        const char *seed, cron_error_t *err);

static int parse_macro(cron_expr_t *e, const char *text, const token_t *tok, int n,
                       cron_error_t *err)
{
    int column = (int)(tok[0].start - text) + 1;
    if (tok_is(&tok[0], "@every")) {
        if (n != 2)
            return fail_at(err, "@every", n < 2 ? column : (int)(tok[2].start - text) + 1,
                           n < 2 ? "needs one duration, as in @every 90s"
                                 : "takes one duration, found more");
        e->kind = CRON_KIND_EVERY;
        e->has_seconds = true;
        int rc = parse_duration(text, &tok[1], &e->every, err);
        e->has_seconds = e->every % 60 != 0;
        return rc;
    }
    if (n > 1)
        return fail_at(err, "macro", (int)(tok[1].start - text) + 1, "%.*s takes no fields",
                       (int)(tok[0].end - tok[0].start), tok[0].start);
    if (tok_is(&tok[0], "@reboot")) {
        e->kind = CRON_KIND_REBOOT;
        return 0;
    }
    for (size_t i = 0; i < CV_ARRAY_SIZE(macros); i++)
        if (tok_is(&tok[0], macros[i].name)) {
            token_t sub[7]; /* one spare: parse_fields may look at a 7th token */
            int rc =
                parse_fields(e, macros[i].fields, sub, split(macros[i].fields, sub, 6), NULL, err);
            e->has_seconds = false;
            return rc;
        }
    char word[32], best[16] = "";
    snprintf(word, sizeof(word), "%.*s", (int)(tok[0].end - tok[0].start), tok[0].start);
    size_t best_dist = 3;
    static const char *const all[] = {"@yearly",   "@annually", "@monthly", "@weekly", "@daily",
                                      "@midnight", "@hourly",   "@every",   "@reboot"};
    for (size_t i = 0; i < CV_ARRAY_SIZE(all); i++) {
        size_t d = cv_edit_distance(word, all[i]);
        if (d < best_dist)
            best_dist = d, snprintf(best, sizeof(best), "%s", all[i]);
    }
    return fail_at(err, "macro", column, "unknown macro '%s'%s%s%s", word,
                   best[0] ? " (did you mean " : "", best, best[0] ? "?)" : "");
}

/* The explanation for an expression whose days never match. */
static int never_fires_reason(const cron_expr_t *e, const char *text, const token_t *dom_tok,
                              cron_error_t *err)
{
    static const char *const month_full[] = {"January",   "February", "March",    "April",
                                             "May",       "June",     "July",     "August",
                                             "September", "October",  "November", "December"};
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int column = (int)(dom_tok->start - text) + 1;
    bool plain_dom = e->dom && !e->dom_last && !e->dom_weekday && !e->dom_last_weekday;
    bool any_dow = e->dow == 0x7f && !e->dow_last;
    if (!plain_dom || !(any_dow || e->dow_star))
        return fail_at(err, "", column,
                       "never fires: no day matches day-of-month, month and day-of-week together");
    int first = __builtin_ctz(e->dom);
    char months[160] = "";
    size_t len = 0;
    int count = 0, total = __builtin_popcount(e->month);
    for (int m = 1; m <= 12; m++) {
        if (!(e->month >> m & 1))
            continue;
        if (first <= mdays[m - 1]) /* the day exists: the day-of-week restriction excludes it */
            return fail_at(err, "", column,
                           "never fires: no day matches day-of-month, month and day-of-week "
                           "together");
        count++;
        len += (size_t)snprintf(months + len, sizeof(months) - len, "%s%s",
                                count == 1       ? ""
                                : count == total ? " or "
                                                 : ", ",
                                month_full[m - 1]);
        if (len >= sizeof(months))
            len = sizeof(months) - 1;
    }
    return fail_at(err, "", column, "never fires: day-of-month %d does not occur in %s", first,
                   months);
}

/* Rejects an expression that never fires: the message has no field prefix, but the error still
 * points at day-of-month. */
static int never_fires(const cron_expr_t *e, const char *text, const token_t *dom_tok,
                       cron_error_t *err)
{
    int rc = never_fires_reason(e, text, dom_tok, err);
    if (err)
        err->field = "day-of-month";
    return rc;
}

static int parse_fields(cron_expr_t *e, const char *text, const token_t *tok, int n,
                        const char *seed, cron_error_t *err)
{
    if (n != 5 && n != 6)
        return fail_at(err, "", n > 6 ? (int)(tok[6].start - text) + 1 : 0,
                       "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with "
                       "seconds first, found %d",
                       n);
    e->kind = CRON_KIND_CRON;
    e->has_seconds = n == 6;
    e->sec = 1; /* second 0 when there is no seconds field */
    pfield_t pf = {.text = text, .seed = seed, .e = e, .err = err};
    for (int i = 0; i < n; i++) {
        pf.f = n == 6 ? i : i + 1;
        int rc = parse_field(&pf, tok[i].start, tok[i].end);
        if (rc < 0)
            return rc;
        store_field(e, pf.f, pf.bits, tok[i].start);
    }
    if (!cron__fill_days(e))
        return never_fires(e, text, &tok[n - 3], err);
    return 0;
}

int cron_parse(const char *text, const char *hash_seed, cron_expr_t **out, cron_error_t *err)
{
    cron_error_t local;
    if (!err)
        err = &local;
    memset(err, 0, sizeof(*err));
    err->field = "";
    *out = NULL;
    if (!text)
        text = "";
    token_t tok[7];
    int n = split(text, tok, 7);
    if (n == 0)
        return fail_at(err, "", 0, "the expression is empty");
    cron_expr_t *e = cv_calloc(1, sizeof(*e));
    int rc;
    if (tok[0].start[0] == '@')
        rc = parse_macro(e, text, tok, n > 7 ? 7 : n, err);
    else if (tok_is(&tok[0], "manual"))
        rc = n == 1 ? (e->kind = CRON_KIND_MANUAL, 0)
                    : fail_at(err, "", (int)(tok[1].start - text) + 1, "manual takes no fields");
    else
        rc = parse_fields(e, text, tok, n, hash_seed, err);
    if (rc < 0) {
        cron_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void cron_free(cron_expr_t *e)
{
    if (e == NULL)
        return;
    cron__days_put(e->days);
    free(e);
}

cron_kind_t cron_kind(const cron_expr_t *e)
{
    return e->kind;
}

bool cron_has_seconds(const cron_expr_t *e)
{
    return e->has_seconds;
}

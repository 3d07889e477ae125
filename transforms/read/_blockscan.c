/*
 * One pass in C over a block of JSON lines: the prefilter's candidate lines, and the validation and
 * TimeGenerated counts of every other line (transforms/read/blockscan.py holds the Python side and
 * the contract; transforms/read/prefilter.py and transforms/read/bulk.py are the references).
 *
 * scan(block, needles, validate, key_columns, max_depth, prefix_length, max_line_bytes[, end])
 *
 *   block:         bytes, whole lines, each ending with "\n"; with `end`, its first `end` bytes are
 *                  (what follows is not read: the start of a line the caller reads again later).
 *   needles:       tuple of (literal: bytes, folded: bool, confirm: int). A line is a candidate when a
 *                  needle starts in it: `folded` literals (given lower-cased) match ignoring ASCII
 *                  case (as the block lower-cased by bytes.lower() would), the others as they are; confirm 1 requires what follows an
 *                  occurrence to be one JSON whitespace (raw " \t\n\f\r" or escaped "\t\n\f\r") and
 *                  "script" (prefilter.SCRIPT_FILE_ARGUMENT).
 *   validate:      False: only the candidates are found; the result's counts are None.
 *   key_columns:   tuple of bytes: every other line must hold one of them as a top-level key
 *                  (empty: no such requirement).
 *   max_depth:     arrays and objects nest at most this deep (the line's object is level 1).
 *   prefix_length: rows are counted per this many leading characters of TimeGenerated (0: the
 *                  whole text).
 *   max_line_bytes: a longer line is not a plain row here (the line reader makes it a dead letter).
 *
 * Returns None when some other line is not a plain row this scanner can vouch for (the caller then
 * reads the block line by line), else (candidates, lines, counts, plain): the (index, start, end) of
 * each candidate line (its 0-based number in the block, the offsets of its first byte and of its
 * newline), the number of lines in the block,
 * {TimeGenerated prefix: rows} of the other lines (None without validate), and, with validate, one
 * byte per candidate: 1 when the candidate is a plain row too (see below) holding at most max_depth
 * bytes "[" and "{" in all (None without validate).
 *
 * A plain row, as accepted here: a line of at most max_line_bytes that is exactly one JSON object (RFC 8259; no NaN or
 * Infinity; no \u escape of a surrogate; no raw control character in a string; UTF-8 without
 * overlong forms, surrogates or code points past U+10FFFF; whitespace only between tokens) nested at
 * most max_depth deep, with no number longer than 4,000 characters, whose top-level keys hold no
 * backslash, include "TimeGenerated" once, with a string value in the canonical export form
 * YYYY-MM-DDThh:mm:ss[.fff...]Z (hour below 24, minutes and seconds below 60; the calendar date is
 * checked by the caller, once per prefix), include none of "properties", "Type" and "$table", and
 * include one of key_columns. Everything else makes the block go back to the line reader, which
 * decides; so accepting less than the reader accepts is always safe, accepting more never is.
 *
 * The scan itself runs without the GIL on an immutable bytes object. With validate, each line is read
 * as a row up to the newline that ends it (no separate search for the newline), and a key spelled as
 * the key at its place in the lines before it in the block is matched whole instead of being read as
 * a string (see TemplateKey): what the scan answers for a line never depends on the lines before it,
 * which tests/test_blockscan.py checks.
 *
 * typed_row(line, columns, kinds, dynamic)
 *
 * The typed row of one JSON line the scan vouched for as a plain row: {column: value} for each of
 * `columns` (a tuple of ASCII str, in that order), each typed by its kind (bytes, one code per
 * column: 's' string, 'd' datetime, 'l' long, 'y' dynamic) as transforms.read.ingest.typed_row
 * types the decoded line: a string's text (escapes decoded) or "" for null or a missing column; a
 * canonical datetime's microseconds, None for a value that is no string or a missing column; an
 * integer of at most 18 digits, None for null or a missing column; dynamic(the value's JSON text as
 * bytes) for a dynamic column. Of duplicate keys the last counts, as the decoders keep it. None
 * wherever Python must decide: any other value of a column (a number in a string column, a
 * fraction in a long column, a datetime in another form, ...), a key with escapes, text that is
 * not UTF-8, a ValueError of `dynamic`, or a line it cannot read. It reads the line's structure as
 * far as it needs and validates nothing else: it is only given lines the scan validated, and is
 * tested on any line to end with a row or None.
 *
 * canonical_us(text)
 *
 * The microseconds since the Unix epoch of a str in the canonical export form
 * YYYY-MM-DDThh:mm:ss[.f...]Z (ASCII; any number of fraction digits, the first six kept; hour below
 * 24, minutes and seconds below 60; a valid proleptic Gregorian date; within Kusto's datetime range
 * 0001-01-01 to 9999-12-31), else None: what transforms.read.ingest._parse_canonical_python returns,
 * which tests/test_ingest.py compares it with.
 */
#define PY_SSIZE_T_CLEAN
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_NEEDLES 16
#define MAX_KEYS 16
#define MAX_NUMBER_CHARS 4000
#define CONFIRM_SCRIPT_FILE 1

typedef struct {
    const unsigned char *bytes;
    Py_ssize_t length;
    int folded;
    int confirm;
    Py_ssize_t next; /* the next confirmed occurrence at or after `from`, -1: none left */
    Py_ssize_t from;
} Needle;

typedef struct {
    const unsigned char *bytes;
    Py_ssize_t length;
} Key;

typedef struct {
    Py_ssize_t *items;
    Py_ssize_t size, capacity;
} Offsets;

static int offsets_push(Offsets *list, Py_ssize_t a, Py_ssize_t b, Py_ssize_t c, int width) {
    if (list->size + 3 > list->capacity) {
        Py_ssize_t capacity = list->capacity ? list->capacity * 2 : 64;
        Py_ssize_t *items = realloc(list->items, (size_t)capacity * sizeof(Py_ssize_t));
        if (items == NULL) return 0;
        list->items = items;
        list->capacity = capacity;
    }
    list->items[list->size++] = a;
    list->items[list->size++] = b;
    if (width == 3) list->items[list->size++] = c;
    return 1;
}

/* ------------------------------------------------------------------------------------------------
 * Needles
 */

static inline unsigned char lower_ascii(unsigned char c) { return (unsigned)(c - 'A') < 26u ? c | 0x20 : c; }

/* Whether `literal` (lower-cased when `folded`) is at `at`, ignoring ASCII case when `folded`. */
static int literal_at(const unsigned char *at, const unsigned char *literal, Py_ssize_t length, int folded) {
    if (!folded) return memcmp(at, literal, (size_t)length) == 0;
    for (Py_ssize_t i = 0; i < length; i++)
        if (lower_ascii(at[i]) != literal[i]) return 0;
    return 1;
}

/* The first occurrence of `literal` in data[from:size], or -1, from `i` on, one place at a time. */
static Py_ssize_t find_scalar(const unsigned char *data, Py_ssize_t size, Py_ssize_t i, const unsigned char *literal,
                              Py_ssize_t length, int folded, unsigned char first_fold, unsigned char last_fold) {
    unsigned char first = literal[0], last = literal[length - 1];
    for (; i <= size - length; i++) {
        if ((data[i] | first_fold) == first && (data[i + length - 1] | last_fold) == last &&
            literal_at(data + i, literal, length, folded))
            return i;
    }
    return -1;
}

/* Sixteen (thirty-two) places at a time, by the literal's first and last bytes (W. Mula's
 * SIMD-friendly substring search), each place where both match checked whole. Folded: a letter
 * of the literal matches either case (x | 0x20 equals a lower-case ASCII letter only for that
 * letter in either case), as bytes.lower() then find does. */
#if defined(__SSE2__)
static Py_ssize_t find_sse2(const unsigned char *data, Py_ssize_t size, Py_ssize_t i, const unsigned char *literal,
                            Py_ssize_t length, int folded, unsigned char first_fold, unsigned char last_fold) {
    const __m128i f = _mm_set1_epi8((char)literal[0]), l = _mm_set1_epi8((char)literal[length - 1]);
    const __m128i ff = _mm_set1_epi8((char)first_fold), lf = _mm_set1_epi8((char)last_fold);
    for (; i + length - 1 + 16 <= size; i += 16) {
        __m128i a = _mm_or_si128(_mm_loadu_si128((const __m128i *)(data + i)), ff);
        __m128i b = _mm_or_si128(_mm_loadu_si128((const __m128i *)(data + i + length - 1)), lf);
        unsigned mask = (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, f), _mm_cmpeq_epi8(b, l)));
        while (mask) {
            Py_ssize_t at = i + __builtin_ctz(mask);
            if (literal_at(data + at, literal, length, folded)) return at;
            mask &= mask - 1;
        }
    }
    return find_scalar(data, size, i, literal, length, folded, first_fold, last_fold);
}
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
__attribute__((target("avx2"))) static Py_ssize_t find_avx2(const unsigned char *data, Py_ssize_t size, Py_ssize_t i,
                                                             const unsigned char *literal, Py_ssize_t length, int folded,
                                                             unsigned char first_fold, unsigned char last_fold) {
    const __m256i f = _mm256_set1_epi8((char)literal[0]), l = _mm256_set1_epi8((char)literal[length - 1]);
    const __m256i ff = _mm256_set1_epi8((char)first_fold), lf = _mm256_set1_epi8((char)last_fold);
    for (; i + length - 1 + 32 <= size; i += 32) {
        __m256i a = _mm256_or_si256(_mm256_loadu_si256((const __m256i *)(data + i)), ff);
        __m256i b = _mm256_or_si256(_mm256_loadu_si256((const __m256i *)(data + i + length - 1)), lf);
        unsigned mask = (unsigned)_mm256_movemask_epi8(_mm256_and_si256(_mm256_cmpeq_epi8(a, f), _mm256_cmpeq_epi8(b, l)));
        while (mask) {
            Py_ssize_t at = i + __builtin_ctz(mask);
            if (literal_at(data + at, literal, length, folded)) return at;
            mask &= mask - 1;
        }
    }
    return find_scalar(data, size, i, literal, length, folded, first_fold, last_fold);
}
#endif

/* The widest vector path the processor runs, chosen once when the module is imported (the
 * environment variable RARERUN_BLOCKSCAN_SIMD=sse2 or none narrows it, for tests). */
enum { SIMD_NONE, SIMD_SSE2, SIMD_AVX2 };
static int simd = SIMD_NONE;

static Py_ssize_t find(const unsigned char *data, Py_ssize_t size, Py_ssize_t from, const unsigned char *literal,
                       Py_ssize_t length, int folded) {
    if (from < 0) from = 0;
    if (length == 0 || from > size - length) return -1;
    unsigned char first_fold = folded && literal[0] >= 'a' && literal[0] <= 'z' ? 0x20 : 0;
    unsigned char last_fold = folded && literal[length - 1] >= 'a' && literal[length - 1] <= 'z' ? 0x20 : 0;
#if defined(HAVE_AVX2_PATH)
    if (simd == SIMD_AVX2) return find_avx2(data, size, from, literal, length, folded, first_fold, last_fold);
#endif
#if defined(__SSE2__)
    if (simd == SIMD_SSE2) return find_sse2(data, size, from, literal, length, folded, first_fold, last_fold);
#endif
    return find_scalar(data, size, from, literal, length, folded, first_fold, last_fold);
}

static int is_confirmed(const Needle *needle, const unsigned char *data, Py_ssize_t size, Py_ssize_t at) {
    if (needle->confirm != CONFIRM_SCRIPT_FILE) return 1;
    Py_ssize_t p = at + needle->length;
    if (p >= size) return 0;
    unsigned char c = data[p];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r') {
        p += 1;
    } else if (c == '\\' && p + 1 < size &&
               (data[p + 1] == 't' || data[p + 1] == 'n' || data[p + 1] == 'f' || data[p + 1] == 'r')) {
        p += 2;
    } else {
        return 0;
    }
    return size - p >= 6 && memcmp(data + p, "script", 6) == 0;
}

/* The first confirmed occurrence of `needle` at or after `from`. */
static Py_ssize_t next_occurrence(const Needle *needle, const unsigned char *data, Py_ssize_t size, Py_ssize_t from) {
    Py_ssize_t found = find(data, size, from, needle->bytes, needle->length, needle->folded);
    while (found >= 0 && !is_confirmed(needle, data, size, found))
        found = find(data, size, found + 1, needle->bytes, needle->length, needle->folded);
    return found;
}

/* Whether a needle starts in [start, end). */
static int line_is_candidate(Needle *needles, int count, const unsigned char *data, Py_ssize_t size,
                             Py_ssize_t start, Py_ssize_t end) {
    int candidate = 0;
    for (int i = 0; i < count; i++) {
        Needle *needle = &needles[i];
        if (needle->next >= 0 && needle->next < start) {
            needle->next = next_occurrence(needle, data, size, start);
        }
        if (needle->next >= 0 && needle->next < end) candidate = 1;
    }
    return candidate;
}

/* ------------------------------------------------------------------------------------------------
 * Validation of one line
 */

/* The keys of the lines read before in the block, by their place in the line (the n-th key read, at
 * any depth): an export's rows spell their keys alike, in one order. A key spelled byte for byte as
 * the one at its place, with the same depth, is known without reading it as a string: its span, the
 * key from its opening quote to the colon right after the closing one, holds no backslash, no control
 * character and no quote between its quotes and is valid UTF-8 (string_end read it so), so the same
 * bytes end where string_end would end them, and its kind at depth 1 is the one found then. Any other
 * key is read as a string, and takes the place in the template. */
#define MAX_TEMPLATE_KEYS 64
enum { KEY_OTHER, KEY_TIME, KEY_COLUMN };
typedef struct {
    const unsigned char *span; /* the key from its opening quote to the colon after it, in the block */
    Py_ssize_t length;         /* of span */
    int depth;                 /* of the object holding it (the row's: 1) */
    int kind;                  /* at depth 1: TimeGenerated, one of the key columns, or another */
} TemplateKey;

typedef struct {
    const Key *keys;
    int key_count;
    int max_depth;
    const unsigned char *time; /* TimeGenerated's text, set by validate_object */
    Py_ssize_t time_length;
    int template_size; /* places of `template` set, by the lines read before in the block */
    TemplateKey template[MAX_TEMPLATE_KEYS];
} Checks;

static inline const unsigned char *skip_space(const unsigned char *p, const unsigned char *end) {
    /* Exports are compact: one comparison for the usual case, a byte above the space. */
    while (p < end && *p <= ' ' && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
    return p;
}

static int hex(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* One UTF-8 sequence starting with a byte >= 0x80 at p: its length, 0 when invalid. */
static int utf8_sequence(const unsigned char *p, const unsigned char *end) {
    unsigned char c = p[0];
    Py_ssize_t left = end - p;
    if (c >= 0xC2 && c <= 0xDF) {
        return left >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && p[1] > 0x9F) return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && p[1] > 0x8F) return 0; /* past U+10FFFF */
        return 4;
    }
    return 0;
}

/* A string from its opening quote at p: the position after its closing quote, or NULL. Sets
 * *escaped when it holds a backslash. */
static const unsigned char *string_end(const unsigned char *p, const unsigned char *end, int *escaped) {
    p++;
    for (;;) {
#if defined(__SSE2__)
        if (simd == SIMD_NONE) goto one_byte;
        const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)p);
            /* signed: below 0x20, and every byte >= 0x80 */
            __m128i special = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                           _mm_cmplt_epi8(v, space));
            int mask = _mm_movemask_epi8(special);
            if (mask == 0) {
                p += 16;
                continue;
            }
            p += __builtin_ctz((unsigned)mask);
            break;
        }
    one_byte:
#endif
        if (p >= end) return NULL;
        unsigned char c = *p;
        if (c == '"') return p + 1;
        if (c == '\\') {
            *escaped = 1;
            if (end - p < 2) return NULL;
            unsigned char e = p[1];
            if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
                p += 2;
            } else if (e == 'u') {
                if (end - p < 6) return NULL;
                int h0 = hex(p[2]), h1 = hex(p[3]), h2 = hex(p[4]), h3 = hex(p[5]);
                if (h0 < 0 || h1 < 0 || h2 < 0 || h3 < 0) return NULL;
                int unit = (h0 << 12) | (h1 << 8) | (h2 << 4) | h3;
                if (unit >= 0xD800 && unit <= 0xDFFF) return NULL; /* pairs included: the reader decides */
                p += 6;
            } else {
                return NULL;
            }
        } else if (c < 0x20) {
            return NULL;
        } else if (c >= 0x80) {
            int length = utf8_sequence(p, end);
            if (!length) return NULL;
            p += length;
        } else {
            p++;
        }
    }
}

static const unsigned char *number_end(const unsigned char *p, const unsigned char *end) {
    const unsigned char *start = p;
    if (p < end && *p == '-') p++;
    if (p >= end) return NULL;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') p++;
    } else {
        return NULL;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    return p - start > MAX_NUMBER_CHARS ? NULL : p;
}

static int digits(const unsigned char *p, int count) {
    for (int i = 0; i < count; i++)
        if (p[i] < '0' || p[i] > '9') return 0;
    return 1;
}

/* YYYY-MM-DDThh:mm:ss[.f*]Z, hour below 24, minutes and seconds below 60. */
static int canonical_time(const unsigned char *t, Py_ssize_t n) {
    if (n < 20) return 0;
    if (!digits(t, 4) || t[4] != '-' || !digits(t + 5, 2) || t[7] != '-' || !digits(t + 8, 2) || t[10] != 'T')
        return 0;
    if (!digits(t + 11, 2) || t[13] != ':' || !digits(t + 14, 2) || t[16] != ':' || !digits(t + 17, 2)) return 0;
    if (t[11] > '2' || (t[11] == '2' && t[12] > '3') || t[14] > '5' || t[17] > '5') return 0;
    if (t[n - 1] != 'Z') return 0;
    if (n == 20) return 1;
    if (t[19] != '.') return 0;
    return digits(t + 20, (int)(n - 21));
}

enum { IN_OBJECT = 1, IN_ARRAY = 2 };

/* Whether a[:length] == b[:length], eight bytes at a time. */
static inline int same_bytes(const unsigned char *a, const unsigned char *b, Py_ssize_t length) {
    uint64_t x, y;
    while (length >= 8) {
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y) return 0;
        a += 8;
        b += 8;
        length -= 8;
    }
    while (length > 0) {
        if (*a++ != *b++) return 0;
        length--;
    }
    return 1;
}

/* The end of the plain row (see the top of the file) that starts at p: end, or the newline before it that
 * ends the row; NULL when none does. Sets checks->time. */
static const unsigned char *validate_object(const unsigned char *p, const unsigned char *end, Checks *checks) {
    unsigned char stack[256];
    int depth = 0, found_key = checks->key_count == 0, found_time = 0;
    int max_depth = checks->max_depth < (int)sizeof(stack) ? checks->max_depth : (int)sizeof(stack);
    if (p >= end || *p != '{') return NULL;
    /* Parsing states: a value is expected, a key is expected, or a value just ended. */
    enum { VALUE, KEY, AFTER } state = VALUE;
    int time_value = 0; /* the value expected is TimeGenerated's */
    int key_index = 0; /* of the next key of the line's object */
    for (;;) {
        if (state == VALUE) {
            p = skip_space(p, end);
            if (p >= end) return NULL;
            unsigned char c = *p;
            if (time_value && c != '"') return NULL;
            if (c == '{' || c == '[') {
                if (depth >= max_depth) return NULL;
                stack[depth++] = c == '{' ? IN_OBJECT : IN_ARRAY;
                p = skip_space(p + 1, end);
                if (p < end && *p == (c == '{' ? '}' : ']')) {
                    depth--;
                    p++;
                    state = AFTER;
                } else {
                    state = c == '{' ? KEY : VALUE;
                }
                continue;
            }
            if (c == '"') {
                int escaped = 0;
                const unsigned char *after = string_end(p, end, &escaped);
                if (after == NULL) return NULL;
                if (time_value) {
                    if (escaped || !canonical_time(p + 1, after - p - 2)) return NULL;
                    checks->time = p + 1;
                    checks->time_length = after - p - 2;
                    time_value = 0;
                }
                p = after;
            } else if (c == 't') {
                if (end - p < 4 || memcmp(p, "true", 4) != 0) return NULL;
                p += 4;
            } else if (c == 'f') {
                if (end - p < 5 || memcmp(p, "false", 5) != 0) return NULL;
                p += 5;
            } else if (c == 'n') {
                if (end - p < 4 || memcmp(p, "null", 4) != 0) return NULL;
                p += 4;
            } else {
                p = number_end(p, end);
                if (p == NULL) return NULL;
            }
            state = AFTER;
        } else if (state == KEY) {
            p = skip_space(p, end);
            const unsigned char *after;
            int kind = KEY_OTHER;
            if (key_index < checks->template_size) {
                const TemplateKey *t = &checks->template[key_index];
                if (t->depth == depth && end - p > t->length && same_bytes(p, t->span, t->length)) {
                    p += t->length;
                    key_index++;
                    if (depth == 1) {
                        if (t->kind == KEY_TIME) {
                            if (found_time) return NULL;
                            found_time = time_value = 1;
                        } else if (t->kind == KEY_COLUMN) {
                            found_key = 1;
                        }
                    }
                    state = VALUE;
                    continue;
                }
            }
            if (p >= end || *p != '"') return NULL;
            int escaped = 0;
            after = string_end(p, end, &escaped);
            if (after == NULL) return NULL;
            if (depth == 1) {
                const unsigned char *key = p + 1;
                Py_ssize_t length = after - p - 2;
                if (escaped) return NULL; /* a key spelled with escapes: the reader decides */
                if (length == 13 && memcmp(key, "TimeGenerated", 13) == 0) {
                    kind = KEY_TIME;
                } else if ((length == 10 && memcmp(key, "properties", 10) == 0) ||
                           (length == 4 && memcmp(key, "Type", 4) == 0) ||
                           (length == 6 && memcmp(key, "$table", 6) == 0)) {
                    return NULL;
                } else {
                    for (int i = 0; i < checks->key_count; i++) {
                        if (checks->keys[i].length == length && memcmp(checks->keys[i].bytes, key, (size_t)length) == 0) {
                            kind = KEY_COLUMN;
                            break;
                        }
                    }
                }
                if (kind == KEY_TIME) {
                    if (found_time) return NULL;
                    found_time = time_value = 1;
                } else if (kind == KEY_COLUMN) {
                    found_key = 1;
                }
            }
            if (!escaped && after < end && *after == ':' && key_index < MAX_TEMPLATE_KEYS) {
                checks->template[key_index] = (TemplateKey){p, after + 1 - p, depth, kind};
                if (key_index >= checks->template_size) checks->template_size = key_index + 1;
            }
            key_index++;
            p = skip_space(after, end);
            if (p >= end || *p != ':') return NULL;
            p++;
            state = VALUE;
        } else { /* AFTER */
            if (depth == 0) return (p == end || *p == '\n') && found_time && found_key ? p : NULL;
            p = skip_space(p, end);
            if (p >= end) return NULL;
            unsigned char c = *p, top = stack[depth - 1];
            if (c == ',') {
                p++;
                state = top == IN_OBJECT ? KEY : VALUE;
            } else if ((c == '}' && top == IN_OBJECT) || (c == ']' && top == IN_ARRAY)) {
                p++;
                depth--;
            } else {
                return NULL;
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 * The block
 */

typedef struct {
    unsigned char *items;
    Py_ssize_t size, capacity;
} Flags;

static int flags_push(Flags *list, unsigned char flag) {
    if (list->size + 1 > list->capacity) {
        Py_ssize_t capacity = list->capacity ? list->capacity * 2 : 64;
        unsigned char *items = realloc(list->items, (size_t)capacity);
        if (items == NULL) return 0;
        list->items = items;
        list->capacity = capacity;
    }
    list->items[list->size++] = flag;
    return 1;
}

/* Whether `data` holds at most `limit` bytes "[" and "{" (what the reader's depth bound counts). */
static int brackets_at_most(const unsigned char *data, Py_ssize_t length, int limit) {
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < length; i++) {
        count += data[i] == '[' || data[i] == '{';
    }
    return count <= limit;
}

typedef struct {
    Offsets candidates; /* (line index, start, end) of each */
    Flags plain;        /* with validate: whether each candidate is a plain row */
    Offsets groups;     /* (offset, length of a TimeGenerated text or its prefix, rows), consecutive equal ones merged */
    Py_ssize_t lines;
    int valid;
    int out_of_memory;
} Scan;

static void scan_block(const unsigned char *data, Py_ssize_t size, Needle *needles, int needle_count,
                       int validate, Checks *checks, Py_ssize_t prefix_length, Py_ssize_t max_line_bytes,
                       Scan *out) {
    for (int i = 0; i < needle_count; i++) needles[i].next = next_occurrence(&needles[i], data, size, 0);
    const unsigned char *group_text = NULL;
    Py_ssize_t group_length = 0, group_rows = 0;
    Py_ssize_t start = 0;
    out->valid = 1;
    while (start < size) {
        /* With validate, the line's row is read first, up to the newline that ends it: a line that is a
         * plain row needs no search for its end. */
        const unsigned char *row_end = NULL;
        if (validate) {
            checks->time = NULL;
            row_end = validate_object(data + start, data + size, checks);
        }
        const unsigned char *newline = row_end ? row_end : memchr(data + start, '\n', (size_t)(size - start));
        Py_ssize_t end = newline ? (Py_ssize_t)(newline - data) : size;
        int plain_row = row_end != NULL && end - start <= max_line_bytes;
        out->lines++;
        if (line_is_candidate(needles, needle_count, data, size, start, end)) {
            if (!offsets_push(&out->candidates, out->lines - 1, start, end, 3)) {
                out->out_of_memory = 1;
                break;
            }
            if (validate) {
                int plain = plain_row && brackets_at_most(data + start, end - start, checks->max_depth);
                if (!flags_push(&out->plain, (unsigned char)plain)) {
                    out->out_of_memory = 1;
                    break;
                }
            }
        } else if (validate) {
            if (!plain_row) {
                out->valid = 0;
                break; /* the caller reads the whole block line by line: nothing more is needed */
            }
            Py_ssize_t length = prefix_length && prefix_length < checks->time_length ? prefix_length
                                                                                         : checks->time_length;
            if (group_text != NULL && length == group_length && memcmp(group_text, checks->time, (size_t)length) == 0) {
                group_rows++;
            } else {
                if (group_text != NULL &&
                    !offsets_push(&out->groups, (Py_ssize_t)(group_text - data), group_length, group_rows, 3)) {
                    out->out_of_memory = 1;
                    break;
                }
                group_text = checks->time;
                group_length = length;
                group_rows = 1;
            }
        }
        start = end + 1;
    }
    if (group_text != NULL && out->valid && !out->out_of_memory &&
        !offsets_push(&out->groups, (Py_ssize_t)(group_text - data), group_length, group_rows, 3))
        out->out_of_memory = 1;
}

static PyObject *counts_of(const unsigned char *data, const Offsets *groups) {
    PyObject *counts = PyDict_New();
    if (counts == NULL) return NULL;
    for (Py_ssize_t i = 0; i < groups->size; i += 3) {
        PyObject *key = PyUnicode_DecodeASCII((const char *)data + groups->items[i], groups->items[i + 1], NULL);
        if (key == NULL) goto error;
        PyObject *previous = PyDict_GetItemWithError(counts, key);
        if (previous == NULL && PyErr_Occurred()) {
            Py_DECREF(key);
            goto error;
        }
        Py_ssize_t rows = groups->items[i + 2] + (previous ? PyLong_AsSsize_t(previous) : 0);
        PyObject *value = PyLong_FromSsize_t(rows);
        if (value == NULL || PyDict_SetItem(counts, key, value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(key);
            goto error;
        }
        Py_DECREF(value);
        Py_DECREF(key);
    }
    return counts;
error:
    Py_DECREF(counts);
    return NULL;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    PyObject *block, *needle_specs, *key_specs;
    int validate, max_depth;
    Py_ssize_t prefix_length, max_line_bytes, end = -1;
    (void)self;
    if (!PyArg_ParseTuple(args, "SO!pO!inn|n", &block, &PyTuple_Type, &needle_specs, &validate, &PyTuple_Type,
                          &key_specs, &max_depth, &prefix_length, &max_line_bytes, &end))
        return NULL;
    if (end > PyBytes_GET_SIZE(block) || end < -1) {
        PyErr_SetString(PyExc_ValueError, "end must be within the block");
        return NULL;
    }
    Needle needles[MAX_NEEDLES];
    Key keys[MAX_KEYS];
    Py_ssize_t needle_count = PyTuple_GET_SIZE(needle_specs), key_count = PyTuple_GET_SIZE(key_specs);
    if (needle_count > MAX_NEEDLES || key_count > MAX_KEYS) {
        PyErr_SetString(PyExc_ValueError, "too many needles or key columns");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < needle_count; i++) {
        PyObject *literal;
        int folded, confirm;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(needle_specs, i), "Spi", &literal, &folded, &confirm)) return NULL;
        if (PyBytes_GET_SIZE(literal) == 0) {
            PyErr_SetString(PyExc_ValueError, "empty needle");
            return NULL;
        }
        needles[i] = (Needle){(const unsigned char *)PyBytes_AS_STRING(literal), PyBytes_GET_SIZE(literal), folded,
                              confirm, -1, 0};
    }
    for (Py_ssize_t i = 0; i < key_count; i++) {
        PyObject *key = PyTuple_GET_ITEM(key_specs, i);
        if (!PyBytes_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "key columns must be bytes");
            return NULL;
        }
        keys[i] = (Key){(const unsigned char *)PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key)};
    }
    if (prefix_length < 0 || prefix_length > 64) {
        PyErr_SetString(PyExc_ValueError, "prefix_length must be 0 to 64");
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(block);
    Py_ssize_t size = end < 0 ? PyBytes_GET_SIZE(block) : end; /* the block's first `end` bytes */
    Checks checks = {keys, (int)key_count, max_depth, NULL, 0, 0};
    Scan out;
    memset(&out, 0, sizeof(out));
    Py_BEGIN_ALLOW_THREADS
    scan_block(data, size, needles, (int)needle_count, validate, &checks, prefix_length, max_line_bytes, &out);
    Py_END_ALLOW_THREADS
    PyObject *result = NULL;
    if (out.out_of_memory) {
        PyErr_NoMemory();
        goto done;
    }
    if (validate && !out.valid) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *candidates = PyList_New(out.candidates.size / 3);
    if (candidates == NULL) goto done;
    for (Py_ssize_t i = 0; i < out.candidates.size; i += 3) {
        PyObject *span = Py_BuildValue("(nnn)", out.candidates.items[i], out.candidates.items[i + 1],
                                       out.candidates.items[i + 2]);
        if (span == NULL) {
            Py_DECREF(candidates);
            goto done;
        }
        PyList_SET_ITEM(candidates, i / 3, span);
    }
    PyObject *counts = validate ? counts_of(data, &out.groups) : Py_NewRef(Py_None);
    if (counts == NULL) {
        Py_DECREF(candidates);
        goto done;
    }
    PyObject *plain = validate ? PyBytes_FromStringAndSize((const char *)out.plain.items, out.plain.size)
                               : Py_NewRef(Py_None);
    if (plain == NULL) {
        Py_DECREF(candidates);
        Py_DECREF(counts);
        goto done;
    }
    result = Py_BuildValue("(NnNN)", candidates, out.lines, counts, plain);
done:
    free(out.candidates.items);
    free(out.groups.items);
    free(out.plain.items);
    return result;
}

/* ------------------------------------------------------------------------------------------------
 * canonical_us
 */

#define US_PER_DAY 86400000000LL

static int is_leap(long year) { return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0); }

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static long long days_from_civil(long year, long month, long day) {
    year -= month <= 2;
    long era = (year >= 0 ? year : year - 399) / 400;
    long yoe = year - era * 400;
    long doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (long long)era * 146097 + doe - 719468;
}

static int digits_at(const unsigned char *text, Py_ssize_t at, Py_ssize_t count, long *value) {
    long result = 0;
    for (Py_ssize_t i = at; i < at + count; i++) {
        if (text[i] < '0' || text[i] > '9') return 0;
        result = result * 10 + (text[i] - '0');
    }
    *value = result;
    return 1;
}

/* Whether text[:size] is a canonical export datetime (see canonical_us); *value: its microseconds. */
static int canonical_micros(const unsigned char *text, Py_ssize_t size, long long *value) {
    static const int days_in_month[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    static const long place[6] = {100000, 10000, 1000, 100, 10, 1};  /* of the first six fraction digits */
    if (size < 20 || text[size - 1] != 'Z' || text[10] != 'T' || text[4] != '-' || text[7] != '-' ||
        text[13] != ':' || text[16] != ':')
        return 0;
    long micros = 0;
    if (size > 20) {  /* text[19:-1] is "." followed by digits, or "." alone */
        if (text[19] != '.') return 0;
        for (Py_ssize_t i = 20; i < size - 1; i++) {
            if (text[i] < '0' || text[i] > '9') return 0;
            if (i < 26) micros += (text[i] - '0') * place[i - 20];
        }
    }
    long year, month, day, hour, minute, second;
    if (!digits_at(text, 11, 2, &hour) || !digits_at(text, 14, 2, &minute) || !digits_at(text, 17, 2, &second) ||
        !digits_at(text, 0, 4, &year) || !digits_at(text, 5, 2, &month) || !digits_at(text, 8, 2, &day))
        return 0;
    if (hour > 23 || minute > 59 || second > 59) return 0;
    if (month < 1 || month > 12 || day < 1 || day > (month == 2 && is_leap(year) ? 29 : days_in_month[month - 1]))
        return 0;
    long long result = days_from_civil(year, month, day) * US_PER_DAY +
                       ((long long)(hour * 60 + minute) * 60 + second) * 1000000LL + micros;
    if (result < days_from_civil(1, 1, 1) * US_PER_DAY || result > days_from_civil(10000, 1, 1) * US_PER_DAY - 1)
        return 0;
    *value = result;
    return 1;
}

static PyObject *canonical_us(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "canonical_us takes a str");
        return NULL;
    }
    long long value;
    if (!PyUnicode_IS_ASCII(arg) || !canonical_micros(PyUnicode_1BYTE_DATA(arg), PyUnicode_GET_LENGTH(arg), &value))
        Py_RETURN_NONE;
    return PyLong_FromLongLong(value);
}

/* ------------------------------------------------------------------------------------------------
 * typed_row
 */

/* The position after the JSON value at p (valid JSON, as in a plain row), or NULL. Sets *escaped
 * when a string holds a backslash. */
static const unsigned char *value_end(const unsigned char *p, const unsigned char *end, int *escaped) {
    int depth = 0;
    do {
        p = skip_space(p, end);
        if (p >= end) return NULL;
        unsigned char c = *p;
        if (c == '"') {
            p = string_end(p, end, escaped);
            if (p == NULL) return NULL;
        } else if (c == '{' || c == '[') {
            depth++;
            p++;
        } else if (c == '}' || c == ']') {
            if (depth == 0) return NULL;
            depth--;
            p++;
        } else if (c == ',' || c == ':') {
            if (depth == 0) return NULL;
            p++;
        } else {
            const unsigned char *start = p;
            while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ':' && *p > ' ') p++;
            if (p == start) return NULL; /* a byte no JSON value starts with */
        }
    } while (depth > 0);
    return p;
}

/* The str of the JSON string [p, after) (quotes included), its escapes decoded; NULL with an
 * exception, or NULL without one for an escape a plain row does not hold. */
static PyObject *string_value(const unsigned char *p, const unsigned char *after, int escaped) {
    const unsigned char *start = p + 1, *stop = after - 1;
    if (!escaped) return PyUnicode_DecodeUTF8((const char *)start, stop - start, "strict");
    unsigned char *buffer = malloc((size_t)(stop - start) + 1);
    if (buffer == NULL) return PyErr_NoMemory();
    unsigned char *out = buffer;
    for (const unsigned char *q = start; q < stop;) {
        if (*q != '\\') {
            *out++ = *q++;
            continue;
        }
        unsigned char e = q[1];
        q += 2;
        switch (e) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '/': *out++ = '/'; break;
        case 'b': *out++ = '\b'; break;
        case 'f': *out++ = '\f'; break;
        case 'n': *out++ = '\n'; break;
        case 'r': *out++ = '\r'; break;
        case 't': *out++ = '\t'; break;
        case 'u': {
            int unit = (hex(q[0]) << 12) | (hex(q[1]) << 8) | (hex(q[2]) << 4) | hex(q[3]);
            q += 4;
            if (unit < 0 || (unit >= 0xD800 && unit <= 0xDFFF)) { /* not in a plain row */
                free(buffer);
                return NULL;
            }
            if (unit < 0x80) {
                *out++ = (unsigned char)unit;
            } else if (unit < 0x800) {
                *out++ = (unsigned char)(0xC0 | (unit >> 6));
                *out++ = (unsigned char)(0x80 | (unit & 0x3F));
            } else {
                *out++ = (unsigned char)(0xE0 | (unit >> 12));
                *out++ = (unsigned char)(0x80 | ((unit >> 6) & 0x3F));
                *out++ = (unsigned char)(0x80 | (unit & 0x3F));
            }
            break;
        }
        default:
            free(buffer);
            return NULL;
        }
    }
    PyObject *text = PyUnicode_DecodeUTF8((const char *)buffer, out - buffer, "strict");
    free(buffer);
    return text;
}

enum { KIND_STRING = 's', KIND_DATETIME = 'd', KIND_LONG = 'l', KIND_DYNAMIC = 'y' };
#define MAX_COLUMNS 32
#define LONG_DIGITS 18 /* any integer of at most 18 digits is a long */

/* One column's typed value from the JSON value [p, after): a new reference, Py_None for a value
 * typed as null, NULL (no exception) for a value this function leaves to the Python typing. */
static PyObject *typed_value(int kind, const unsigned char *p, const unsigned char *after, int escaped,
                             PyObject *dynamic) {
    int is_string = *p == '"';
    if (kind == KIND_STRING) {
        if (is_string) return string_value(p, after, escaped);
        if (after - p == 4 && memcmp(p, "null", 4) == 0) return PyUnicode_FromStringAndSize("", 0);
        return NULL; /* another JSON value: its compact JSON text, which Python writes */
    }
    if (kind == KIND_DATETIME) {
        long long micros;
        if (is_string) {
            if (escaped || !canonical_micros(p + 1, after - p - 2, &micros)) return NULL;
            return PyLong_FromLongLong(micros);
        }
        return Py_NewRef(Py_None); /* a value that is no string: no datetime */
    }
    if (kind == KIND_LONG) {
        if (after - p == 4 && memcmp(p, "null", 4) == 0) return Py_NewRef(Py_None);
        const unsigned char *q = p + (*p == '-');
        Py_ssize_t count = after - q;
        if (count < 1 || count > LONG_DIGITS) return NULL;
        long long value = 0;
        for (const unsigned char *d = q; d < after; d++) {
            if (*d < '0' || *d > '9') return NULL; /* a fraction, an exponent, a string: Python rounds or parses */
            value = value * 10 + (*d - '0');
        }
        return PyLong_FromLongLong(*p == '-' ? -value : value);
    }
    /* KIND_DYNAMIC: Python's typing of the decoded value. */
    PyObject *raw = PyBytes_FromStringAndSize((const char *)p, after - p);
    if (raw == NULL) return NULL;
    PyObject *value = PyObject_CallOneArg(dynamic, raw);
    Py_DECREF(raw);
    return value;
}

static PyObject *typed_row(PyObject *self, PyObject *args) {
    Py_buffer line;
    PyObject *columns, *dynamic;
    const char *kinds;
    Py_ssize_t kinds_length;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*O!y#O", &line, &PyTuple_Type, &columns, &kinds, &kinds_length, &dynamic))
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(columns);
    PyObject *values[MAX_COLUMNS] = {NULL};
    PyObject *result = NULL;
    if (count > MAX_COLUMNS || kinds_length != count) {
        PyErr_SetString(PyExc_ValueError, "one kind per column, at most 32 columns");
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *column = PyTuple_GET_ITEM(columns, i);
        if (!PyUnicode_Check(column) || !PyUnicode_IS_ASCII(column)) {
            PyErr_SetString(PyExc_TypeError, "column names must be ASCII str");
            goto done;
        }
    }
    const unsigned char *p = line.buf, *end = p + line.len;
    p = skip_space(p, end);
    if (p >= end || *p != '{') goto fallback;
    p = skip_space(p + 1, end);
    if (p < end && *p == '}') goto fallback; /* no TimeGenerated: the Python path decides */
    for (;;) {
        int escaped = 0;
        if (p >= end || *p != '"') goto fallback;
        const unsigned char *key_end = string_end(p, end, &escaped);
        if (key_end == NULL || escaped) goto fallback;
        const unsigned char *key = p + 1;
        Py_ssize_t key_length = key_end - p - 2;
        Py_ssize_t column = -1;
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *name = PyTuple_GET_ITEM(columns, i);
            if (PyUnicode_GET_LENGTH(name) == key_length && memcmp(PyUnicode_1BYTE_DATA(name), key, (size_t)key_length) == 0) {
                column = i;
                break;
            }
        }
        p = skip_space(key_end, end);
        if (p >= end || *p != ':') goto fallback;
        p = skip_space(p + 1, end);
        escaped = 0;
        const unsigned char *value_stop = value_end(p, end, &escaped);
        if (value_stop == NULL) goto fallback;
        if (column >= 0) {
            PyObject *value = typed_value(kinds[column], p, value_stop, escaped, dynamic);
            if (value == NULL) goto fallback;
            Py_XSETREF(values[column], value); /* of duplicate keys the last, as the decoders keep */
        }
        p = skip_space(value_stop, end);
        if (p < end && *p == ',') {
            p = skip_space(p + 1, end);
            continue;
        }
        if (p < end && *p == '}') break;
        goto fallback;
    }
    if (skip_space(p + 1, end) != end) goto fallback;
    result = PyDict_New();
    if (result == NULL) goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value = values[i];
        if (value == NULL) { /* a missing column: "" for a string, else null */
            value = kinds[i] == KIND_STRING ? PyUnicode_FromStringAndSize("", 0) : Py_NewRef(Py_None);
            if (value == NULL) {
                Py_CLEAR(result);
                goto done;
            }
            values[i] = value;
        }
        if (PyDict_SetItem(result, PyTuple_GET_ITEM(columns, i), value) < 0) {
            Py_CLEAR(result);
            goto done;
        }
    }
    goto done;
fallback:
    /* What this function leaves to Python: text that is not UTF-8 after all, a value the dynamic
     * typing refuses (a ValueError), or any shape it does not take. */
    if (PyErr_Occurred() && (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError) || PyErr_ExceptionMatches(PyExc_ValueError)))
        PyErr_Clear();
    if (!PyErr_Occurred()) result = Py_NewRef(Py_None);
done:
    for (Py_ssize_t i = 0; i < MAX_COLUMNS; i++) Py_XDECREF(values[i]);
    PyBuffer_Release(&line);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, "Candidates, line count and TimeGenerated counts of a block of JSON lines."},
    {"canonical_us", canonical_us, METH_O, "Microseconds since the epoch of a canonical export datetime, or None."},
    {"typed_row", typed_row, METH_VARARGS, "The typed row of a plain JSON line, or None where Python types it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_blockscan", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__blockscan(void) {
#if defined(__SSE2__)
    simd = SIMD_SSE2;
#endif
#if defined(HAVE_AVX2_PATH)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) simd = SIMD_AVX2;
#endif
    const char *narrower = getenv("RARERUN_BLOCKSCAN_SIMD");
    if (narrower != NULL && strcmp(narrower, "none") == 0) simd = SIMD_NONE;
    if (narrower != NULL && strcmp(narrower, "sse2") == 0 && simd > SIMD_SSE2) simd = SIMD_SSE2;
    PyObject *module_object = PyModule_Create(&module);
    if (module_object != NULL &&
        PyModule_AddStringConstant(module_object, "SIMD", simd == SIMD_AVX2 ? "avx2" : simd == SIMD_SSE2 ? "sse2" : "none") < 0) {
        Py_DECREF(module_object);
        return NULL;
    }
    return module_object;
}

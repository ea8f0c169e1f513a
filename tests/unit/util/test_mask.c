/*
 * Unit tests for the streaming masker: every form (raw, lines, base64 and
 * base64url at each alignment, percent-encoding, JSON escaping as jansson
 * emits it and as JSON.stringify/Python do), every split position, overlapping
 * values, 70 KiB lines, many values, the held-back bound, bad values.
 * Reference encodings come from OpenSSL, libcurl and jansson, not from mask.c.
 */
#include "vk_test.h"
#include "vulcan/mask.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

static void collect(void *ctx, const char *data, size_t len)
{
    struct vk_buf *b = ctx;
    assert_true(len > 0);
    assert_int_equal(vk_buf_add(b, data, len), 0);
}

/* Mask `in` written in pieces of `chunk` bytes (0: one write), then flush; returns owned. */
static char *mask_chunked(struct vk_mask *m, const char *in, size_t n, size_t chunk)
{
    struct vk_buf out = VK_BUF_INIT(64u << 20);
    if (chunk == 0)
        chunk = n ? n : 1;
    for (size_t i = 0; i < n; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        assert_int_equal(vk_mask_write(m, in + i, k, collect, &out), 0);
    }
    vk_mask_flush(m, collect, &out);
    assert_int_equal(vk_mask_held(m), 0);
    return vk_buf_take(&out, NULL);
}

static char *mask_str(struct vk_mask *m, const char *in)
{
    return mask_chunked(m, in, strlen(in), 0);
}

static void expect(struct vk_mask *m, const char *in, const char *want)
{
    char *got = mask_str(m, in);
    assert_string_equal(got, want);
    vk_mem_free(got);
}

static struct vk_mask *mask_of(const char *value)
{
    struct vk_mask *m = vk_mask_new();
    assert_int_equal(vk_mask_add(m, value, strlen(value)), 0);
    return m;
}

static void test_raw(void **state)
{
    struct vk_mask *m = mask_of("hunter2-SECRET");
    expect(m, "password is hunter2-SECRET\n", "password is ***\n");
    expect(m, "hunter2-SECRET", "***");
    expect(m, "a hunter2-SECRE b", "a hunter2-SECRE b");
    expect(m, "x\rhunter2-SECRET\r50%\n", "x\r***\r50%\n");
    expect(m, "hunter2-SECREThunter2-SECRET", "***");
    expect(m, "", "");
    assert_int_equal(vk_mask_values(m), 1);
    vk_mask_free(m);
}

static void test_empty_passes_through(void **state)
{
    struct vk_mask *m = vk_mask_new();
    const char *in = "nothing to hide here *** \x01\xff";
    expect(m, in, in);
    assert_int_equal(vk_mask_forms(m), 0);
    vk_mask_free(m);
}

static void test_bad_values(void **state)
{
    struct vk_mask *m = vk_mask_new();
    assert_int_equal(vk_mask_add(m, "12345", 5), VK_EINVAL);
    assert_int_equal(vk_mask_add(m, "", 0), VK_EINVAL);
    assert_int_equal(vk_mask_add(m, NULL, 10), VK_EINVAL);
    char *big = vk_mem_xalloc(VK_MASK_MAX_VALUE + 1);
    memset(big, 'q', VK_MASK_MAX_VALUE + 1);
    assert_int_equal(vk_mask_add(m, big, VK_MASK_MAX_VALUE + 1), VK_EINVAL);
    assert_int_equal(vk_mask_add(m, big, VK_MASK_MAX_VALUE), 0);
    vk_mem_free(big);
    assert_int_equal(vk_mask_add(m, "123456", 6), 0);
    expect(m, "a 123456 b", "a *** b");
    vk_mask_free(m);
}

/* Every split of the input into two writes, and byte by byte, gives the same output. */
static void test_every_split(void **state)
{
    struct vk_mask *m = vk_mask_new();
    const char *v1 = "s3cr3t-Value/+=?&\"\\x";
    assert_int_equal(vk_mask_add(m, v1, strlen(v1)), 0);
    const char *in = "start s3cr3t-Value/+=?&\"\\x mid s3cr3t-Value/+=?&\"\\x end s3cr3t-Valu";
    char *want = mask_chunked(m, in, strlen(in), 0);
    assert_string_equal(want, "start *** mid *** end s3cr3t-Valu");
    size_t n = strlen(in);
    for (size_t cut = 0; cut <= n; cut++) {
        struct vk_buf out = VK_BUF_INIT(1u << 20);
        assert_int_equal(vk_mask_write(m, in, cut, collect, &out), 0);
        assert_int_equal(vk_mask_write(m, in + cut, n - cut, collect, &out), 0);
        vk_mask_flush(m, collect, &out);
        assert_string_equal(out.data, want);
        vk_buf_release(&out);
    }
    for (size_t chunk = 1; chunk < 8; chunk++) {
        char *got = mask_chunked(m, in, n, chunk);
        assert_string_equal(got, want);
        vk_mem_free(got);
    }
    vk_mem_free(want);
    vk_mask_free(m);
}

/* Nothing of a value is emitted before it is known not to be the value. */
static void test_held_back(void **state)
{
    struct vk_mask *m = mask_of("ABCDEFGHIJ");
    struct vk_buf out = VK_BUF_INIT(1u << 20);
    assert_int_equal(vk_mask_write(m, "xx ABCDE", 8, collect, &out), 0);
    assert_string_equal(out.data, "xx ");
    assert_int_equal(vk_mask_held(m), 5);
    assert_int_equal(vk_mask_write(m, "FGHIJ yy", 8, collect, &out), 0);
    assert_string_equal(out.data, "xx *** yy");
    assert_int_equal(vk_mask_held(m), 0);
    /* A stream that ends inside a prefix: the prefix is not the value, it is emitted. */
    assert_int_equal(vk_mask_write(m, " ABC", 4, collect, &out), 0);
    vk_mask_flush(m, collect, &out);
    assert_string_equal(out.data, "xx *** yy ABC");
    vk_buf_release(&out);
    vk_mask_free(m);
}

static void test_overlapping(void **state)
{
    struct vk_mask *m = vk_mask_new();
    assert_int_equal(vk_mask_add(m, "ABCDEFGH", 8), 0);
    assert_int_equal(vk_mask_add(m, "EFGHIJKL", 8), 0);
    assert_int_equal(vk_mask_add(m, "CDEF01", 6), 0);
    expect(m, "xxABCDEFGHIJKLyy", "xx***yy");
    expect(m, "xxEFGHIJKLyyABCDEFGHzz", "xx***yy***zz");
    expect(m, "ABCDEF01", "AB***");
    expect(m, "ABCDEFGHABCDEFGH", "***"); /* adjacent occurrences merge */
    vk_mask_free(m);
    m = mask_of("aaaaaa");
    expect(m, "b aaaaaaaaaaaaaaaaaaaaa b", "b *** b");
    expect(m, "aaaaa", "aaaaa");
    vk_mask_free(m);
    /* A value that is contained in another. */
    m = vk_mask_new();
    assert_int_equal(vk_mask_add(m, "ZZtoken42ZZ", 11), 0);
    assert_int_equal(vk_mask_add(m, "token42", 7), 0);
    expect(m, "1 ZZtoken42ZZ 2 token42 3 ZZtoken42", "1 *** 2 *** 3 ZZ***");
    vk_mask_free(m);
}

static void test_lines(void **state)
{
    const char *pem = "-----BEGIN OPENSSH PRIVATE KEY-----\r\n"
                      "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\r\n"
                      "QyNTUxOQAAACDfakefakefakefakefakefakefakefakefakefakefakeAAAAJgAAAAA\n"
                      "abc\n"
                      "-----END OPENSSH PRIVATE KEY-----\n";
    struct vk_mask *m = mask_of(pem);
    expect(m, pem, "***");
    expect(m, "+ echo b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n",
           "+ echo ***\n");
    expect(m, "[x] QyNTUxOQAAACDfakefakefakefakefakefakefakefakefakefakefakeAAAAJgAAAAA\r\n",
           "[x] ***\r\n");
    expect(m, "-----END OPENSSH PRIVATE KEY-----", "***");
    /* A line shorter than 6 bytes is not a form: it would hide ordinary text. */
    expect(m, "abc abcd", "abc abcd");
    vk_mask_free(m);
}

/* base64 of `prefix` bytes of other data, the value, `suffix` bytes of other data. */
static void check_base64(struct vk_mask *m, const unsigned char *v, size_t n, size_t prefix,
                         size_t suffix, bool url, bool pad)
{
    unsigned char in[256];
    for (size_t i = 0; i < prefix; i++)
        in[i] = (unsigned char)(0xA5 ^ (i * 37));
    memcpy(in + prefix, v, n);
    for (size_t i = 0; i < suffix; i++)
        in[prefix + n + i] = (unsigned char)(0x3C ^ (i * 91));
    size_t total = prefix + n + suffix;
    char enc[400];
    int elen = EVP_EncodeBlock((unsigned char *)enc, in, (int)total);
    assert_true(elen > 0);
    if (url)
        for (int i = 0; i < elen; i++)
            enc[i] = enc[i] == '+' ? '-' : enc[i] == '/' ? '_' : enc[i];
    if (!pad)
        while (elen > 0 && enc[elen - 1] == '=')
            enc[--elen] = 0;
    /* The characters made of value bits alone are hidden; the rest is left. */
    size_t first = (8 * prefix + 5) / 6, last = 8 * (prefix + n) / 6;
    char want[420];
    snprintf(want, sizeof want, "%.*s***%s", (int)first, enc, enc + last);
    char *got = mask_str(m, enc);
    if (strcmp(got, want) != 0)
        fail_msg("prefix %zu suffix %zu url %d pad %d: %s -> %s, want %s", prefix, suffix, url, pad,
                 enc, got, want);
    vk_mem_free(got);
}

static void test_base64_alignments(void **state)
{
    /* Bytes chosen so that the encodings contain '+' and '/' (url differs). */
    const unsigned char v[] = {0xfb, 0xff, 0xbf, 0x3e, 'S', 'e', 'c', 'r', 'e', 't', 0xfc, 0x0f};
    struct vk_mask *m = vk_mask_new();
    assert_int_equal(vk_mask_add(m, (const char *)v, sizeof v), 0);
    for (size_t prefix = 0; prefix < 6; prefix++)
        for (size_t suffix = 0; suffix < 4; suffix++)
            for (int url = 0; url < 2; url++)
                for (int pad = 0; pad < 2; pad++)
                    check_base64(m, v, sizeof v, prefix, suffix, url, pad);
    vk_mask_free(m);
    /* A token-like value, the shortest allowed length, every alignment. */
    m = mask_of("tok_42");
    for (size_t prefix = 0; prefix < 3; prefix++)
        check_base64(m, (const unsigned char *)"tok_42", 6, prefix, 2, false, true);
    vk_mask_free(m);
}

static void test_percent(void **state)
{
    const char *v = "p@ss w/rd:S3cr3t!(x)*+&=~";
    struct vk_mask *m = mask_of(v);
    char *esc = curl_easy_escape(NULL, v, (int)strlen(v)); /* RFC 3986, upper hex */
    assert_non_null(esc);
    char in[512];
    snprintf(in, sizeof in, "https://h/?q=%s&x=1", esc);
    expect(m, in, "https://h/?q=***&x=1");
    for (char *p = esc; *p; p++) /* lower-case hex digits */
        if (p > esc + 1 && (p[-1] == '%' || p[-2] == '%') && *p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    snprintf(in, sizeof in, "q=%s", esc);
    expect(m, in, "q=***");
    curl_free(esc);
    /* encodeURIComponent leaves !'()* alone; Python's quote leaves '/'; quote_plus: '+'. */
    expect(m, "a=p%40ss%20w%2Frd%3AS3cr3t!(x)*%2B%26%3D~", "a=***");
    expect(m, "a=p%40ss%20w/rd%3AS3cr3t%21%28x%29%2A%2B%26%3D~", "a=***");
    expect(m, "a=p%40ss+w%2Frd%3AS3cr3t%21%28x%29%2A%2B%26%3D~", "a=***");
    vk_mask_free(m);
    /* A value without reserved characters: the raw form, and every byte as %XX. */
    m = mask_of("tok_42.x");
    expect(m, "u=tok_42.x", "u=***");
    expect(m, "u=%74%6F%6B%5F%34%32%2E%78&", "u=***&");
    expect(m, "u=%74%6f%6b%5f%34%32%2e%78&", "u=***&");
    vk_mask_free(m);
}

static void check_json(struct vk_mask *m, const char *v, size_t flags)
{
    json_t *s = json_stringn(v, strlen(v));
    assert_non_null(s);
    char *dump = json_dumps(s, flags | JSON_ENCODE_ANY);
    json_decref(s);
    assert_non_null(dump);
    assert_true(strlen(dump) >= 2);
    char in[1024];
    snprintf(in, sizeof in, "{\"k\":%s}", dump);
    char *got = mask_str(m, in);
    if (strcmp(got, "{\"k\":\"***\"}") != 0)
        fail_msg("flags %zx: %s -> %s", flags, in, got);
    vk_mem_free(got);
    /* The same with lower-case \u digits, as JSON.stringify and Python write them. */
    for (char *p = dump; (p = strstr(p, "\\u")) != NULL; p += 2)
        for (int i = 2; i < 6; i++)
            if (p[i] >= 'A' && p[i] <= 'F')
                p[i] = (char)(p[i] - 'A' + 'a');
    snprintf(in, sizeof in, "[%s]", dump);
    got = mask_str(m, in);
    if (strcmp(got, "[\"***\"]") != 0)
        fail_msg("flags %zx lower: %s -> %s", flags, in, got);
    vk_mem_free(got);
    free(dump);
}

static void test_json(void **state)
{
    const char *v = "he said \"hi\"\\ tab\there\nnew/line\x01\x1f caf\xc3\xa9 \xf0\x9f\x94\x91 end";
    struct vk_mask *m = mask_of(v);
    check_json(m, v, 0);
    check_json(m, v, JSON_ENSURE_ASCII);
    check_json(m, v, JSON_ESCAPE_SLASH);
    check_json(m, v, JSON_ENSURE_ASCII | JSON_ESCAPE_SLASH);
    /* Python's json.dumps (ensure_ascii, lower-case hex, surrogate pair). */
    expect(m,
           "\"he said \\\"hi\\\"\\\\ tab\\there\\nnew/line\\u0001\\u001f caf\\u00e9 "
           "\\ud83d\\udd11 end\"",
           "\"***\"");
    vk_mask_free(m);
}

/* A 70 KiB line with the value at its start, middle and end, in chunks of several sizes. */
static void test_long_line(void **state)
{
    const char *v = "ghp_0123456789abcdefGHIJKLMNOPqrstuvwxyz";
    size_t vn = strlen(v), n = 70 * 1024;
    struct vk_mask *m = mask_of(v);
    char *in = vk_mem_xalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        in[i] = (char)('#' + i % 3);
    size_t at[] = {0, n / 2 - 7, n - vn};
    for (size_t i = 0; i < VK_ARRAY_LEN(at); i++)
        memcpy(in + at[i], v, vn);
    in[n] = 0;
    struct vk_buf want = VK_BUF_INIT(1u << 20);
    size_t prev = 0;
    for (size_t i = 0; i < VK_ARRAY_LEN(at); i++) {
        assert_int_equal(vk_buf_add(&want, in + prev, at[i] - prev), 0);
        assert_int_equal(vk_buf_adds(&want, "***"), 0);
        prev = at[i] + vn;
    }
    size_t chunks[] = {0, 1, 7, 4096, 65536};
    for (size_t c = 0; c < VK_ARRAY_LEN(chunks); c++) {
        char *got = mask_chunked(m, in, n, chunks[c]);
        assert_int_equal(strlen(got), want.len);
        assert_memory_equal(got, want.data, want.len);
        vk_mem_free(got);
    }
    /* Between writes no more than the longest form minus one byte is held back. */
    struct vk_buf out = VK_BUF_INIT(1u << 20);
    for (size_t i = 0; i < n; i += 1000) {
        assert_int_equal(vk_mask_write(m, in + i, n - i < 1000 ? n - i : 1000, collect, &out), 0);
        assert_true(vk_mask_held(m) < 3 * vn);
    }
    vk_mask_flush(m, collect, &out);
    assert_memory_equal(out.data, want.data, want.len);
    vk_buf_release(&out);
    vk_buf_release(&want);
    vk_mem_free(in);
    vk_mask_free(m);
}

/* 200 values, random text with them embedded; checked against a naive search for raw values. */
static void test_many_values(void **state)
{
    enum { NV = 200, VLEN = 16, N = 200000 };
    static char vals[NV][VLEN + 1];
    unsigned seed = 12345;
    struct vk_mask *m = vk_mask_new();
    for (int i = 0; i < NV; i++) {
        for (int j = 0; j < VLEN; j++) {
            seed = seed * 1103515245u + 12345u;
            vals[i][j] = (char)('g' + (seed >> 16) % 20); /* g..z */
        }
        assert_int_equal(vk_mask_add(m, vals[i], VLEN), 0);
    }
    assert_int_equal(vk_mask_values(m), NV);
    assert_true(vk_mask_forms(m) >= NV * 4); /* raw + three alignments (url = std here) */
    char *in = vk_mem_xalloc(N + 1);
    unsigned char *hide = vk_mem_xcalloc(N, 1);
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        in[i] = (char)(' ' + (seed >> 16) % 12); /* punctuation: no form can match it */
    }
    for (int k = 0; k < 500; k++) {
        seed = seed * 1103515245u + 12345u;
        size_t at = (seed >> 8) % (N - VLEN);
        memcpy(in + at, vals[k % NV], VLEN);
    }
    in[N] = 0;
    for (int i = 0; i + VLEN <= N; i++)
        for (int k = 0; k < NV; k++)
            if (in[i] == vals[k][0] && memcmp(in + i, vals[k], VLEN) == 0)
                memset(hide + i, 1, VLEN);
    struct vk_buf want = VK_BUF_INIT(1u << 20);
    for (int i = 0; i < N; i++) {
        if (!hide[i])
            assert_int_equal(vk_buf_addch(&want, in[i]), 0);
        else if (i == 0 || !hide[i - 1])
            assert_int_equal(vk_buf_adds(&want, "***"), 0);
    }
    char *got = mask_chunked(m, in, N, 4093);
    assert_int_equal(strlen(got), want.len);
    assert_memory_equal(got, want.data, want.len);
    vk_mem_free(got);
    vk_buf_release(&want);
    vk_mem_free(hide);
    vk_mem_free(in);
    vk_mask_free(m);
}

/*
 * Differential: values and text over {a, b} (so every form but the raw one is absent from
 * the text), overlapping and nested all the time, random write sizes; compared with a
 * naive search that flags every occurrence of every value.
 */
static void test_random_overlaps(void **state)
{
    unsigned seed = 777;
    for (int round = 0; round < 200; round++) {
        struct vk_mask *m = vk_mask_new();
        char vals[8][12];
        size_t vl[8];
        int nv = 1 + round % 8;
        for (int k = 0; k < nv; k++) {
            seed = seed * 1103515245u + 12345u;
            vl[k] = 6 + (seed >> 16) % 6;
            for (size_t j = 0; j < vl[k]; j++) {
                seed = seed * 1103515245u + 12345u;
                vals[k][j] = (seed >> 16) % 3 ? 'a' : 'b';
            }
            assert_int_equal(vk_mask_add(m, vals[k], vl[k]), 0);
        }
        enum { N = 600 };
        char in[N];
        unsigned char hide[N] = {0};
        for (int i = 0; i < N; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = (seed >> 16) % 3 ? 'a' : 'b';
        }
        for (int i = 0; i < N; i++)
            for (int k = 0; k < nv; k++)
                if ((size_t)i + vl[k] <= N && memcmp(in + i, vals[k], vl[k]) == 0)
                    memset(hide + i, 1, vl[k]);
        struct vk_buf want = VK_BUF_INIT(1u << 20);
        for (int i = 0; i < N; i++) {
            if (!hide[i])
                assert_int_equal(vk_buf_addch(&want, in[i]), 0);
            else if (i == 0 || !hide[i - 1])
                assert_int_equal(vk_buf_adds(&want, "***"), 0);
        }
        struct vk_buf out = VK_BUF_INIT(1u << 20);
        for (size_t i = 0; i < N;) {
            seed = seed * 1103515245u + 12345u;
            size_t k = 1 + (seed >> 16) % 40;
            if (k > N - i)
                k = N - i;
            assert_int_equal(vk_mask_write(m, in + i, k, collect, &out), 0);
            i += k;
        }
        vk_mask_flush(m, collect, &out);
        assert_int_equal(out.len, want.len);
        assert_memory_equal(out.data, want.data, want.len);
        vk_buf_release(&out);
        vk_buf_release(&want);
        vk_mask_free(m);
    }
}

/* The worst case for the marking: a 64 KiB value of one byte in 4 MiB of that byte. */
static void test_pathological_is_linear(void **state)
{
    size_t vn = VK_MASK_MAX_VALUE, n = 4u << 20;
    char *v = vk_mem_xalloc(vn), *in = vk_mem_xalloc(n);
    memset(v, 'a', vn);
    memset(in, 'a', n);
    struct vk_mask *m = vk_mask_new();
    assert_int_equal(vk_mask_add(m, v, vn), 0);
    int64_t t0 = vk_time_mono_ns();
    char *got = mask_chunked(m, in, n, 65536);
    int64_t ms = (vk_time_mono_ns() - t0) / 1000000;
    assert_string_equal(got, "***");
    assert_true(ms < 3000 * VK_TEST_SLOWDOWN);
    vk_mem_free(got);
    vk_mask_free(m);
    vk_mem_free(v);
    vk_mem_free(in);
}

/* A value added while bytes are held back still applies to them. */
static void test_add_mid_stream(void **state)
{
    struct vk_mask *m = mask_of("first-secret");
    struct vk_buf out = VK_BUF_INIT(1u << 20);
    assert_int_equal(vk_mask_write(m, "a first-sec", 11, collect, &out), 0);
    assert_int_equal(vk_mask_add(m, "second-secret", 13), 0);
    assert_int_equal(vk_mask_write(m, "ret b second-secret c", 21, collect, &out), 0);
    vk_mask_flush(m, collect, &out);
    assert_string_equal(out.data, "a *** b *** c");
    vk_buf_release(&out);
    vk_mask_free(m);
}

/* Out of memory at each allocation of a write: the write fails as if it had not happened,
 * and writing the same chunk again gives what one write would have. */
static void test_write_fails_cleanly(void **state)
{
    const char *v = "hunter2-SECRET";
    size_t n = 200000;
    char *big = vk_mem_xalloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    memcpy(big + 1000, v, strlen(v));
    memcpy(big + n - 5, "hunte", 5); /* held back at the end */
    int fails = 0;
    for (unsigned long k = 1; k < 8; k++) {
        struct vk_mask *m = mask_of(v);
        struct vk_buf out = VK_BUF_INIT(1u << 20);
        assert_int_equal(vk_buf_grow(&out, 2 * n), 0); /* the collector allocates nothing */
        assert_int_equal(vk_mask_write(m, "start ", 6, collect, &out), 0);
        vk_mem_fail_after(k);
        int rc = vk_mask_write(m, big, n, collect, &out);
        vk_mem_fail_after(0);
        if (rc != 0) {
            fails++;
            assert_int_equal(rc, VK_ENOMEM);
            assert_string_equal(out.data, "start ");
            assert_int_equal(vk_mask_write(m, big, n, collect, &out), 0);
        }
        vk_mask_flush(m, collect, &out);
        assert_int_equal(out.len, 6 + 1000 + 3 + (n - 1000 - strlen(v)));
        assert_memory_equal(out.data, "start ", 6);
        assert_memory_equal(out.data + 6 + 1000, "***", 3);
        assert_memory_equal(out.data + out.len - 5, "hunte", 5);
        vk_buf_release(&out);
        vk_mask_free(m);
    }
    assert_true(fails >= 3); /* the held-back buffer, its marks, the output */
    vk_mem_free(big);
}

static void test_buf(void **state)
{
    struct vk_mask *m = mask_of("Bearer abc.def.ghi");
    struct vk_buf out = VK_BUF_INIT(1024);
    assert_int_equal(vk_mask_buf(m, "Authorization: Bearer abc.def.ghi\n", 34, &out), 0);
    assert_string_equal(out.data, "Authorization: ***\n");
    vk_buf_release(&out);
    struct vk_buf tiny = VK_BUF_INIT(4);
    assert_int_equal(vk_mask_buf(m, "0123456789", 10, &tiny), VK_ETOOBIG);
    vk_buf_release(&tiny);
    vk_mask_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw),
        cmocka_unit_test(test_empty_passes_through),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_held_back),
        cmocka_unit_test(test_overlapping),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_base64_alignments),
        cmocka_unit_test(test_percent),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_many_values),
        cmocka_unit_test(test_random_overlaps),
        cmocka_unit_test(test_pathological_is_linear),
        cmocka_unit_test(test_add_mid_stream),
        cmocka_unit_test(test_write_fails_cleanly),
        cmocka_unit_test(test_buf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* AES-128-GCM with VAES and VPCLMULQDQ (AVX-512), for _srtp_gcm.c: four AES blocks per instruction, eight
 * registers (512 bytes) per step, GHASH of each step with one reduction.
 *
 * OpenSSL 3.0's AES-GCM runs AES-NI one block per instruction, and its EVP interface costs about as much per
 * call as the AES-GCM of a 1,000-byte RTP payload: with one encryption per receiver, that is most of what
 * SRTP adds to a fan-out. Here a key's round keys and GHASH's key powers are computed once (gcm_init) and a
 * packet is one call. Used only where the CPU has these instructions (gcm_vaes_available); elsewhere
 * _srtp_gcm.c uses OpenSSL. The tests compare the two, and libsrtp, byte for byte.
 *
 * GHASH follows Gueron and Kounavis, "Intel Carry-Less Multiplication Instruction and its Usage for Computing
 * the GCM Mode" (the bit-reflected representation, blocks with their bytes reversed, the product shifted left
 * by one bit and reduced); n blocks are aggregated as (X ^ B1) H^n ^ B2 H^(n-1) ^ ... ^ Bn H.
 */
#ifndef CONF_GCM_VAES_H
#define CONF_GCM_VAES_H

#if defined(__x86_64__) && defined(__GNUC__) && (defined(__clang__) || __GNUC__ >= 10)
#define GCM_VAES 1
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define GCM_LANES 8 /* 512-bit registers per step */
#define GCM_CHUNK (GCM_LANES * 64)
#define GCM_POWERS (GCM_LANES * 4)
#define VAES_TARGET __attribute__((target("aes,pclmul,avx2,avx512f,avx512bw,avx512vl,vaes,vpclmulqdq")))

typedef struct {
    uint8_t rk[11][16]; /* the AES-128 round keys */
    uint8_t h[GCM_LANES * 4 + 4][16];  /* GHASH's key powers H^n .. H^1 (bytes reversed), then zeros */
} Gcm;

VAES_TARGET static inline __m128i gcm_bswap(__m128i x) {
    return _mm_shuffle_epi8(x, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}

VAES_TARGET static inline __m128i gcm_expand(__m128i key, __m128i assist) {
    assist = _mm_shuffle_epi32(assist, 0xff);
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    return _mm_xor_si128(key, assist);
}

/* The product's 256 bits (low, high), shifted left by one and reduced modulo GCM's polynomial, in the
 * bit-reflected representation (Gueron and Kounavis, Intel's carry-less multiplication paper, figure 5). */
VAES_TARGET static inline __m128i gcm_reduce(__m128i lo, __m128i hi) {
    __m128i t7 = _mm_srli_epi32(lo, 31), t8 = _mm_srli_epi32(hi, 31);
    lo = _mm_slli_epi32(lo, 1);
    hi = _mm_slli_epi32(hi, 1);
    __m128i t9 = _mm_srli_si128(t7, 12);
    t8 = _mm_slli_si128(t8, 4);
    t7 = _mm_slli_si128(t7, 4);
    lo = _mm_or_si128(lo, t7);
    hi = _mm_or_si128(_mm_or_si128(hi, t8), t9);
    t7 = _mm_xor_si128(_mm_xor_si128(_mm_slli_epi32(lo, 31), _mm_slli_epi32(lo, 30)), _mm_slli_epi32(lo, 25));
    t8 = _mm_srli_si128(t7, 4);
    lo = _mm_xor_si128(lo, _mm_slli_si128(t7, 12));
    __m128i t2 = _mm_xor_si128(_mm_xor_si128(_mm_srli_epi32(lo, 1), _mm_srli_epi32(lo, 2)), _mm_srli_epi32(lo, 7));
    lo = _mm_xor_si128(lo, _mm_xor_si128(t2, t8));
    return _mm_xor_si128(hi, lo);
}

VAES_TARGET static inline __m128i gcm_combine(__m128i lo, __m128i mid, __m128i hi) {
    return gcm_reduce(_mm_xor_si128(lo, _mm_slli_si128(mid, 8)), _mm_xor_si128(hi, _mm_srli_si128(mid, 8)));
}

VAES_TARGET static inline __m128i gcm_mul(__m128i a, __m128i b) {
    __m128i mid = _mm_xor_si128(_mm_clmulepi64_si128(a, b, 0x10), _mm_clmulepi64_si128(a, b, 0x01));
    return gcm_combine(_mm_clmulepi64_si128(a, b, 0x00), mid, _mm_clmulepi64_si128(a, b, 0x11));
}

VAES_TARGET static inline __m128i gcm_fold(__m512i v) {
    __m256i a = _mm256_xor_si256(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
    return _mm_xor_si128(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
}

VAES_TARGET static inline __m128i gcm_block(const Gcm *g, __m128i x) {
    x = _mm_xor_si128(x, _mm_loadu_si128((const __m128i *)g->rk[0]));
    for (int r = 1; r < 10; r++) x = _mm_aesenc_si128(x, _mm_loadu_si128((const __m128i *)g->rk[r]));
    return _mm_aesenclast_si128(x, _mm_loadu_si128((const __m128i *)g->rk[10]));
}

#define GCM_ROUND(i, rcon)                                                                       \
    k = gcm_expand(k, _mm_aeskeygenassist_si128(k, rcon));                                      \
    _mm_storeu_si128((__m128i *)g->rk[i], k)

VAES_TARGET static void gcm_init(Gcm *g, const uint8_t key[16]) {
    __m128i k = _mm_loadu_si128((const __m128i *)key);
    _mm_storeu_si128((__m128i *)g->rk[0], k);
    GCM_ROUND(1, 0x01); GCM_ROUND(2, 0x02); GCM_ROUND(3, 0x04); GCM_ROUND(4, 0x08); GCM_ROUND(5, 0x10);
    GCM_ROUND(6, 0x20); GCM_ROUND(7, 0x40); GCM_ROUND(8, 0x80); GCM_ROUND(9, 0x1b); GCM_ROUND(10, 0x36);
    __m128i h = gcm_bswap(gcm_block(g, _mm_setzero_si128())), power = h;
    for (int i = GCM_POWERS - 1; i >= 0; i--) {
        _mm_storeu_si128((__m128i *)g->h[i], power);
        power = gcm_mul(power, h);
    }
    memset(g->h[GCM_POWERS], 0, 4 * 16);
}

static inline __mmask64 gcm_mask(size_t bytes) { return bytes >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << bytes) - 1; }

/* GHASH `x` over up to GCM_POWERS blocks held in GCM_LANES registers (`blocks` of them, the rest zero),
 * whose bytes are already reversed: x = (x ^ B1) H^n ^ B2 H^(n-1) ^ ... ^ Bn H. */
VAES_TARGET static inline __m128i gcm_ghash_step(const Gcm *g, __m128i x, __m512i d[GCM_LANES], size_t blocks) {
    const uint8_t *powers = g->h[GCM_POWERS - blocks];
    __m512i lo = _mm512_setzero_si512(), mid = lo, hi = lo;
    d[0] = _mm512_xor_si512(d[0], _mm512_zextsi128_si512(x));
    for (size_t q = 0; q < GCM_LANES && 4 * q < blocks; q++) {
        __m512i h = _mm512_loadu_si512(powers + 64 * q);
        lo = _mm512_xor_si512(lo, _mm512_clmulepi64_epi128(d[q], h, 0x00));
        hi = _mm512_xor_si512(hi, _mm512_clmulepi64_epi128(d[q], h, 0x11));
        mid = _mm512_xor_si512(mid, _mm512_xor_si512(_mm512_clmulepi64_epi128(d[q], h, 0x01),
                                                     _mm512_clmulepi64_epi128(d[q], h, 0x10)));
    }
    return gcm_combine(gcm_fold(lo), gcm_fold(mid), gcm_fold(hi));
}

VAES_TARGET static __m128i gcm_ghash(const Gcm *g, __m128i x, const uint8_t *p, size_t len) {
    const __m512i reverse = _mm512_broadcast_i32x4(_mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    while (len > 0) {
        size_t bytes = len < GCM_CHUNK ? len : GCM_CHUNK;
        __m512i d[GCM_LANES];
        for (size_t q = 0; q < GCM_LANES; q++) {
            size_t avail = bytes > 64 * q ? bytes - 64 * q : 0;
            d[q] = _mm512_shuffle_epi8(_mm512_maskz_loadu_epi8(gcm_mask(avail), p + 64 * q), reverse);
        }
        x = gcm_ghash_step(g, x, d, (bytes + 15) / 16);
        p += bytes;
        len -= bytes;
    }
    return x;
}

/* AES-128-GCM of `len` bytes from `in` to `out` with a 12-byte IV and `aad`: encrypts (`encrypt`) or
 * decrypts, and writes the 16-byte tag (computed over the ciphertext) to `tag`. */
VAES_TARGET static void gcm_crypt(const Gcm *g, const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
                                  const uint8_t *in, uint8_t *out, size_t len, int encrypt, uint8_t tag[16]) {
    const __m512i reverse = _mm512_broadcast_i32x4(_mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    uint8_t j0[16];
    memcpy(j0, iv, 12);
    j0[12] = j0[13] = j0[14] = 0;
    j0[15] = 1;
    __m128i first = _mm_loadu_si128((const __m128i *)j0);
    /* counters kept with their bytes reversed, so that the 32-bit counter is the low lane of each block */
    __m512i ctr = _mm512_add_epi32(_mm512_broadcast_i32x4(gcm_bswap(first)),
                                   _mm512_set_epi32(0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 1));
    const __m512i four = _mm512_set_epi32(0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4);
    __m512i rk[11];
    for (int r = 0; r < 11; r++) rk[r] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)g->rk[r]));
    __m128i x = gcm_ghash(g, _mm_setzero_si128(), aad, aad_len);
    size_t left = len;
    while (left > 0) {
        size_t bytes = left < GCM_CHUNK ? left : GCM_CHUNK;
        __m512i c[GCM_LANES], d[GCM_LANES];
        __mmask64 m[GCM_LANES];
        for (int q = 0; q < GCM_LANES; q++) {
            c[q] = _mm512_xor_si512(_mm512_shuffle_epi8(ctr, reverse), rk[0]);
            ctr = _mm512_add_epi32(ctr, four);
        }
        for (int r = 1; r < 10; r++)
            for (int q = 0; q < GCM_LANES; q++) c[q] = _mm512_aesenc_epi128(c[q], rk[r]);
        for (int q = 0; q < GCM_LANES; q++) {
            size_t avail = bytes > 64 * (size_t)q ? bytes - 64 * (size_t)q : 0;
            m[q] = gcm_mask(avail);
            __m512i data = _mm512_maskz_loadu_epi8(m[q], in + 64 * q);
            __m512i result = _mm512_xor_si512(_mm512_aesenclast_epi128(c[q], rk[10]), data);
            _mm512_mask_storeu_epi8(out + 64 * q, m[q], result);
            d[q] = _mm512_shuffle_epi8(encrypt ? _mm512_maskz_mov_epi8(m[q], result) : data, reverse);
        }
        x = gcm_ghash_step(g, x, d, (bytes + 15) / 16);
        in += bytes;
        out += bytes;
        left -= bytes;
    }
    __m128i lengths = _mm_set_epi64x((long long)aad_len * 8, (long long)len * 8);
    x = gcm_mul(_mm_xor_si128(x, lengths), _mm_loadu_si128((const __m128i *)g->h[GCM_POWERS - 1]));
    _mm_storeu_si128((__m128i *)tag, _mm_xor_si128(gcm_bswap(x), gcm_block(g, first)));
}

static int gcm_vaes_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("vaes") && __builtin_cpu_supports("vpclmulqdq");
}

#endif /* x86-64 */
#endif /* CONF_GCM_VAES_H */

/* The emulator's CPU kernel: all layers of a NetX net, for a range of samples, over all time steps,
 * in exactly the integers of Lava's Loihi2SimCfg(select_tag='fixed_pt').
 * Compiled on first use by sj2lava/emulator/ckernel.py; see that module for the data layout.
 *
 * Per step t of one sample (the same order as PyDenseModelBitAcc/PyConvModelBitAcc + PyLifModelBitAcc):
 *   acc    = the weighted sum of this step's input spikes (dot, table or fan-out path, channels-last)
 *   use   += shift(W_rec s(t-1))                                      (dense_rec only)
 *   LIF on use (the sums of step t-1: one step of synaptic delay):
 *     u = rs0(u * (4096 - iDecay)) + (use << 6)   then Lava's wrap into (-2^23, 2^23]
 *     v = rs0(v * (4096 - vDecay)) + u + (bias << 6), clipped to +-(2^23 - 1)
 *     (in int32 that wraps, as the int32 registers of Lava's numpy models do: with graded input the current
 *     can pass 2^31)
 *     s = v > (vThMant << 6);  v = 0 where s
 *   use    = shift(acc) (dense: Lava's weight exponent, flooring) or wrap24(acc) (conv)
 *
 * Sigma-delta layers (NetX SDNN: Lava's PyDeltaModelFixed, PySigmaDeltaModelFixed, PySigmaModelFixed) send
 * int32 messages instead of spikes, in int32 arithmetic that wraps as Lava's numpy int32 arrays do:
 *     sigma += use;  act = max(sigma + bias, 0)      (a Delta input layer: act = a_in << sd_shift)
 *     d = act - act_prev + residue;  s = sd_fire(d, vth);  residue = d - s;  act_prev = act;  message = s >> 6
 * (a Sigma layer sends sigma itself). A synapse fed by them sums w * message over the non-zero messages; a
 * step whose largest |message| times the layer's row bound reaches 2^31 stops the run (the torch backend
 * refuses the same). Resonate-and-fire layers (PyRFModelFixed / PyRF_IZModelFixed) add an imaginary synapse:
 *     re' = rs0(cos re) - rs0(sin im) + (use << 6);  im' = rs0(sin re) + rs0(cos im) + (use_imag << 6)
 *     both clipped to +-(2^23 - 1); RF: s = re' >= vth && im' >= 0 && im < 0;  RF_IZ: s = im' >= vth, then
 *     re' = 0, im' = vth - 1 where s.
 *
 * rs0, lava_wrap, conv_wrap and sd_fire are the C twins of sj2lava.quant.rs0 / lava_wrap / conv_wrap, written with the same
 * operators (a scalar and a 16-lane version of each); tests compare this kernel with the torch backend
 * and with Lava itself.
 * The Python side checks statically that no int32 register here can overflow.
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime under -std=c99 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define HALF (1 << 23)
#define FULL (1 << 24)
#define VMAX (HALF - 1)

static inline int64_t rs0(int64_t x) { return (x + ((x >> 63) & 4095)) >> 12; }

static inline int32_t lava_wrap(int32_t u) { return u - (u > HALF) * FULL + (u <= -HALF) * FULL; }

static inline int32_t conv_wrap(int32_t a) { return ((a + HALF) & (FULL - 1)) - HALF; }

/* int32 arithmetic that wraps, as Lava's numpy int32 arrays do (signed overflow is undefined in C) */
static inline int32_t wadd(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t wsub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }
static inline int32_t wshl(int32_t a, int64_t k) { return (int32_t)((uint32_t)a << k); }

/* An SDNN neuron's message before its >> 6: d where |d| >= vth, else 0, with numpy's int32 |d|
 * (|-2^31| stays -2^31, below any threshold) */
static inline int32_t sd_fire(int32_t d, int32_t vth) { return (d < 0 ? wsub(0, d) : d) >= vth ? d : 0; }

/* The same two rules on 16 lanes (vector comparisons give -1 for true, so masks select). v16 is
 * sixteen int32 lanes (GCC/Clang vector extension), one AVX-512 register or two AVX2 ones; written out
 * because GCC 12 turns a plain 16-iteration loop into 16 scalar registers. */
typedef int32_t v16 __attribute__((vector_size(64)));
typedef uint32_t v16u __attribute__((vector_size(64)));
typedef int32_t v8 __attribute__((vector_size(32)));
typedef int64_t v8l __attribute__((vector_size(64)));
typedef uint64_t v8lu __attribute__((vector_size(64)));
typedef uint8_t v16b __attribute__((vector_size(16)));

static inline v8l rs0_8(v8l x) { return (x + ((x >> 63) & 4095)) >> 12; }

/* rs0(x * keep) for 16 int32 lanes (keep in [0, 4096]) in int32 alone: with x = 4096 hi + lo (0 <= lo < 4096),
 * floor(x keep / 4096) = hi keep + (lo keep >> 12), where neither product can pass int32 (|hi keep| <= 2^31 -
 * 4096 at keep 4096, lo keep < 2^24); rs0 rounds toward zero, so a negative x whose product leaves a remainder
 * gets 1 back. */
static inline v16 decay16(v16 x, v16 keep) {
    const v16 lo = (x & 4095) * keep, floor = (v16)((v16u)((x >> 12) * keep) + (v16u)(lo >> 12));
    const v16 zero = {0};
    return floor - ((x < zero) & ((lo & 4095) != zero)); /* masks are -1: subtracting one adds 1 */
}

/* v clipped to +-VMAX: min/max instructions where the compiler has them, else masks */
static inline v16 clip16(v16 v) {
#if defined(__AVX512F__)
    return (v16)_mm512_max_epi32(_mm512_min_epi32((__m512i)v, _mm512_set1_epi32(VMAX)), _mm512_set1_epi32(-VMAX));
#else
    v = (v & (v <= VMAX)) | ((v > VMAX) & VMAX);
    return (v & (v >= -VMAX)) | ((v < -VMAX) & -VMAX);
#endif
}

static inline v16 lava_wrap16(v16 u) { return u - ((u > HALF) & FULL) + ((u <= -HALF) & FULL); }

/* wadd and wshl on 16 lanes (graded input can carry a current past int32, which wraps as in Lava's numpy) */
static inline v16 wadd16(v16 a, v16 b) { return (v16)((v16u)a + (v16u)b); }
static inline v16 wshl16(v16 a, int k) { return (v16)((v16u)a << k); }

/* sd_fire on 16 lanes: d where numpy's int32 |d| >= vth (|-2^31| stays negative), else 0 */
static inline v16 sd_fire16(v16 d, int32_t vth) {
    const v16 zero = {0}, neg = d < zero;
    const v16 a = (neg & (v16)((v16u)zero - (v16u)d)) | (~neg & d);
    return d & (a >= vth);
}

/* Lava Dense's weight exponent: an arithmetic (flooring) right shift, or a left shift (as a multiply:
 * shifting a negative int left is undefined in C) */
static inline int32_t exp_shift(int32_t a, int64_t shift) {
    return shift > 0 ? a >> shift : (shift < 0 ? (int32_t)(uint32_t)((uint64_t)(int64_t)a << -shift) : a);
}

static inline v16 load16(const int32_t *p) {
    v16 r;
    memcpy(&r, p, sizeof r);
    return r;
}

typedef int32_t v4 __attribute__((vector_size(16)));

/* row += m * w over n channels: a graded message's weights (the sums stay below 2^31: checked per step), or a
 * spike's (m = 1). Vectors of 16, then 8 and 4 lanes, then single lanes: no masked stores (slow on some CPUs), and
 * nothing written past the row, which the next output position's row follows. */
static inline __attribute__((always_inline)) void add_row_of(int32_t *restrict row, const int32_t *restrict w,
                                                             int64_t n, int32_t m, int graded) {
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const v16 r = load16(row + j) + (graded ? m * load16(w + j) : load16(w + j));
        memcpy(row + j, &r, sizeof r);
    }
#define ADD_LANES(T) /* one vector of type T (8 or 4 lanes) at j */                                                  \
    do {                                                                                                              \
        T a, b;                                                                                                       \
        memcpy(&a, row + j, sizeof a);                                                                                \
        memcpy(&b, w + j, sizeof b);                                                                                  \
        a += graded ? m * b : b;                                                                                      \
        memcpy(row + j, &a, sizeof a);                                                                                \
        j += (int64_t)(sizeof a / sizeof(int32_t));                                                                   \
    } while (0)
    if (j + 8 <= n)
        ADD_LANES(v8);
    if (j + 4 <= n)
        ADD_LANES(v4);
#undef ADD_LANES
    for (; j < n; j++) row[j] += graded ? m * w[j] : w[j];
}

static void add_row_times(int32_t *restrict row, const int32_t *restrict w, int64_t n, int32_t m) {
    add_row_of(row, w, n, m, 1);
}

static void add_row(int32_t *restrict row, const int32_t *restrict w, int64_t n) { add_row_of(row, w, n, 1, 0); }

/* The indices of the inputs that spiked (bytes 0/1), eight at a time: a zero word is skipped, and in
 * the others each set byte holds one set bit, found with count-trailing-zeros. */
static int64_t spiking(const uint8_t *restrict s, int64_t n, int32_t *restrict events) {
    int64_t m = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, s + i, 8);
        while (word) {
            events[m++] = (int32_t)(i + (__builtin_ctzll(word) >> 3));
            word &= word - 1;
        }
    }
    for (; i < n; i++) {
        events[m] = (int32_t)i;
        m += s[i];
    }
    return m;
}

/* The number of spikes among n bytes 0/1 (a byte sum, eight bytes to a popcount) */
static int64_t spike_count(const uint8_t *restrict s, int64_t n) {
    int64_t m = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, s + i, 8);
        m += __builtin_popcountll(word);
    }
    for (; i < n; i++) m += s[i];
    return m;
}

/* The indices of the non-zero graded messages */
static int64_t messages(const int32_t *restrict m, int64_t n, int32_t *restrict events) {
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        events[k] = (int32_t)i;
        k += m[i] != 0;
    }
    return k;
}

/* the largest |message|, in int64 (|-2^31| included), and in *count the number of non-zero ones */
static int64_t top_message(const int32_t *restrict m, int64_t n, int64_t *count) {
    uint32_t top = 0; /* |m| as uint32: 2^31 for -2^31 */
    int32_t nz = 0;
    for (int64_t i = 0; i < n; i++) {
        const uint32_t a = m[i] < 0 ? 0u - (uint32_t)m[i] : (uint32_t)m[i];
        top = a > top ? a : top;
        nz += m[i] != 0;
    }
    *count = nz;
    return top;
}

typedef struct {
    int64_t n_in, n_out, cig, co, groups, shift, wrap, u_mode, v_decays, u_may_wrap;
    const int32_t *pos, *chan;                     /* [n_in]: input position and channel */
    const int32_t *fan_start, *fan_out, *fan_tap;  /* the fan-out table */
    const int32_t *w;                              /* [taps][cig][co] */
    const int32_t *w_rec;                          /* [n_out][n_out] (row = source) or NULL */
    const int32_t *keep_u, *keep_v;                /* [n_out]: 4096 - decay */
    const int32_t *bias, *vth;                     /* [n_out]: bias << 6 (or NULL), vThMant << 6 */
    /* the table path (a convolution without groups), else lut == NULL and the fan-out table is used: */
    const int32_t *lut;                            /* [n_nib][16][co]: sum of w over a nibble's spikes */
    const int32_t *nib_at;                         /* [out positions][n_nib][4 or 1]: input byte offsets */
    int64_t n_nib, nib_bytes;                      /* nibbles per output position; 1: 4 adjacent bytes */
    /* the dot path (AVX512-VNNI; a convolution without groups, or a dense layer), else w8 == NULL: */
    const int8_t *w8;                              /* [co / 16 rounded up][n_grp][16 lanes][4]: w >> w8_shift */
    const int32_t *rel;                            /* [n_grp]: byte offset of group g from a position's base */
    const int32_t *base;                           /* [out positions]: byte offset in the padded input */
    int64_t n_grp, w8_shift;
    int64_t in_h, in_w, in_c, pad_top, pad_left, padded_w, padded_bytes; /* the zero-padded input copy */
    /* graded input on the dot path: each message m (|m| < 2^15) as two bytes, lo = m & 255 and hi = (m >> 8) + 128
     * (unsigned, as VPDPBUSD takes them), so that sum(m w) = sum(lo w) + 256 (sum(hi w) - w8_corr), w8_corr being
     * 128 sum(w) per output channel ([co / 16 rounded up][16]); in int32 that wraps, exact where the sum fits */
    const int32_t *w8_corr;
    /* a layer with both the dot path and the fan-out table takes the dot path at a step with at least this many
     * input events (spikes, or non-zero messages), else the fan-out path; 0: always the dot path */
    int64_t dot_min;
    /* a depthwise convolution (one input channel per output channel, as NetX's sum pooling is) on the dot path's
     * padded input and positions (base, rel: a tap's byte offset, n_grp: the taps), else NULL: [taps][co / 16
     * rounded up][16] int32 weights */
    const int32_t *dw_w;
    uint8_t *rec_s;                                /* [samples][steps][n_out] or NULL */
    int32_t *rec_u, *rec_v;                        /* likewise, or NULL */
    int64_t reset_interval, reset_phase;           /* u = v = 0 before step t when (t + 1) % interval == phase
                                                    * (NetX's LIFReset; interval 0: never) */
    /* input neurons (NetX's Input block), else a_in == NULL: no synapse; this step's a_in (rows as x) goes
     * straight to the neurons, with a bias per sample ([samples][n_out], bias_mant << 6, or NULL) */
    const int32_t *a_in, *sample_bias;
    int64_t a_in_rows;                             /* 0: a_in is one row for every step and sample (zeros) */
    /* axonal delays (Lava's DelayDense; a dense layer on the fan-out path), else dly == NULL: synapse (i, o)
     * delays by dly[i * n_out + o] in [0, n_ring); each delay's sum is shifted apart, then waits in a ring */
    const uint8_t *dly;
    int64_t n_ring;
    /* the neuron model: 0 CUBA LIF (above), 1 SDNN, 2 resonate-and-fire */
    int64_t neuron, role;                          /* SDNN: 0 delta, 1 sigma-delta, 2 sigma; RF: 0 RF, 1 RF_IZ */
    int64_t graded_in;                             /* the input is int32 messages (the layer before is SDNN) */
    double graded_bound;                           /* a step's max |message| times this must stay below 2^31 */
    int64_t sd_vth, sd_shift;                      /* SDNN: vThMant << (spike_exp + 6); a Delta's a_in shift */
    const int64_t *rf_sin, *rf_cos;                /* RF: [n_out] decays in 1/4096 */
    int64_t rf_vth;
    const int32_t *w_imag;                         /* RF: the imaginary synapse's weights, like w */
    int64_t shift_imag;
    int32_t *rec_m, *rec_sigma;                    /* SDNN recordings (messages, sigma), or NULL */
    /* the first layer only: its input rows (x, or a_in) are read through this, value i of the stored
     * (channels-last) row being value in_order[i] of the row as given; NULL: as given */
    const int32_t *in_order;
    /* per neuron, its non-zero outputs (spikes, or an SDNN layer's messages) at steps [cnt_lo, cnt_hi), summed over
     * the samples, and those at step cnt_hi - 1 alone (cnt_last); cnt == NULL: not counted. Each thread counts in
     * its own scratch and adds its counts in once, at the end. */
    int64_t *cnt, *cnt_last;
    int64_t cnt_lo, cnt_hi;
    /* nanoseconds this layer's steps took, summed over threads, or NULL: not timed (the benchmark's per-layer
     * figures; two clock reads per layer and step) */
    int64_t *nanos;
    /* CUBA neurons whose keep_u, keep_v, bias and vth repeat every `period` neurons (per channel, channels-last):
     * those arrays hold period + 16 values, neuron i's at i % period (the 16 past the period repeat its start, so
     * that 16 neurons load at once from anywhere). A layer's parameters then stay in L1 instead of streaming
     * 24 bytes a neuron through the caches at every step. */
    int64_t period;
} layer_t;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* bytes of the dot path's input copy: the padded input, or for graded input two planes (lo, hi) of it */
static int64_t plane_bytes(const layer_t *L) {
    if (!L->w8 && !L->dw_w)
        return 0;
    const int64_t one = (L->padded_bytes ? L->padded_bytes : L->n_in) + 64;
    return L->graded_in ? 2 * one : (L->padded_bytes ? one : 0);
}

/* room for the events of the input, or of the layer's own spikes (dense_rec) */
static int64_t ev_len(const layer_t *L) { return (L->n_in > L->n_out ? L->n_in : L->n_out) + 8; }

/* Per layer and sample. SDNN neurons keep sigma in u, act_prev in v and their residue in r, and send m;
 * RF neurons keep re in u, im in v, and their imaginary synapse's sums in acc_i / use_i. */
typedef struct {
    int32_t *acc, *use, *u, *v, *rec, *events, *ring, *r, *m, *acc_i, *use_i;
    int64_t head;
    uint8_t *s, *padded;
    int64_t *cnt, *cnt_last; /* this thread's counts, or NULL */
    int64_t nanos;           /* this thread's time in the layer, where timed */
} state_t;

/* Count step t's non-zero outputs of layer L into this thread's counters (within L's counted steps). */
static void count_outputs(const layer_t *L, const state_t *S, int64_t t) {
    if (!S->cnt || t < L->cnt_lo || t >= L->cnt_hi) return;
    const int64_t n = L->n_out;
    if (L->neuron == 1) {
        for (int64_t i = 0; i < n; i++) S->cnt[i] += S->m[i] != 0;
        if (t == L->cnt_hi - 1)
            for (int64_t i = 0; i < n; i++) S->cnt_last[i] += S->m[i] != 0;
    } else {
        for (int64_t i = 0; i < n; i++) S->cnt[i] += S->s[i];
        if (t == L->cnt_hi - 1)
            for (int64_t i = 0; i < n; i++) S->cnt_last[i] += S->s[i];
    }
}

/* A DelayDense step: use = the ring's row for this step (what Lava's a_buff[:, 0] sends), the row cleared and
 * the ring advanced; then the n events' sums per delay d (acc holds n_ring rows), each shifted by the weight
 * exponent, are added to the row d steps ahead. */
static void delayed_sums(const layer_t *L, state_t *S, const int32_t *restrict events, const int32_t *restrict vals,
                         int64_t n) {
    const int64_t n_out = L->n_out, R = L->n_ring;
    int32_t *now = S->ring + S->head * n_out;
    memcpy(S->use, now, (size_t)n_out * sizeof(int32_t));
    memset(now, 0, (size_t)n_out * sizeof(int32_t));
    S->head = (S->head + 1) % R;
    memset(S->acc, 0, (size_t)(R * n_out) * sizeof(int32_t));
    for (int64_t e = 0; e < n; e++) {
        const int64_t i = events[e];
        const int32_t *w = L->w + i * n_out;
        const uint8_t *d = L->dly + i * n_out;
        const int32_t m = vals ? vals[i] : 1;
        for (int64_t o = 0; o < n_out; o++) S->acc[d[o] * n_out + o] += m * w[o];
    }
    for (int64_t k = 0; k < R; k++) {
        int32_t *row = S->ring + ((S->head + k) % R) * n_out;
        const int32_t *a = S->acc + k * n_out;
        for (int64_t o = 0; o < n_out; o++) row[o] += exp_shift(a[o], L->shift);
    }
}

/* acc = the sums of the n events (input indices; with their messages vals, or 1 where vals is NULL) through
 * the fan-out table and the weights w (the layer's, or its imaginary ones) */
static void synaptic_sums(const layer_t *L, const int32_t *restrict w, const int32_t *restrict events,
                          const int32_t *restrict vals, int64_t n, int32_t *restrict acc) {
    memset(acc, 0, (size_t)L->n_out * sizeof(int32_t));
    const int64_t cig = L->cig, co = L->co, cog = co / L->groups;
    for (int64_t e = 0; e < n; e++) {
        const int32_t i = events[e];
        const int64_t p = L->pos[i], c = L->chan[i];
        const int64_t g = L->groups > 1 ? c / cig : 0;
        const int32_t *wc = w + (c - g * cig) * co + g * cog; /* w[tap][c_local][g*cog ...] */
        if (vals)
            for (int64_t k = L->fan_start[p]; k < L->fan_start[p + 1]; k++)
                add_row_times(acc + L->fan_out[k] + g * cog, wc + (int64_t)L->fan_tap[k] * cig * co, cog, vals[i]);
        else
            for (int64_t k = L->fan_start[p]; k < L->fan_start[p + 1]; k++)
                add_row(acc + L->fan_out[k] + g * cog, wc + (int64_t)L->fan_tap[k] * cig * co, cog);
    }
}

/* acc = the sums of output positions [o0, o1) (from acc[0]) of the input spikes s (with >= 4 zero
 * bytes after them, where padding points) by table: the (tap, channel) pairs of an output position
 * in groups of four (a nibble of spikes), each group's weight rows pre-summed for all 16 values of
 * the nibble. Branch-free, and each output row is summed in registers: no read-after-write of a row
 * that was just stored, as in the scatter. */
static void table_sums(const layer_t *L, const uint8_t *restrict s, int64_t o0, int64_t o1,
                       int32_t *restrict acc) {
    const int64_t co = L->co, n_nib = L->n_nib;
    const int32_t *restrict lut = L->lut;
    const int64_t step = L->nib_bytes == 1 ? 1 : 4;
    for (int64_t o = o0; o < o1; o++) {
        const int32_t *restrict at = L->nib_at + o * n_nib * step;
        for (int64_t cb = 0; cb + 16 <= co; cb += 16) {
            v16 sum = {0};
            const int32_t *restrict rows = lut + cb;
            if (L->nib_bytes == 1) {
                for (int64_t g = 0; g < n_nib; g++, rows += 16 * co) {
                    uint32_t word; /* four adjacent bytes 0/1 -> bits 0..3 */
                    memcpy(&word, s + at[g], 4);
                    sum += load16(rows + ((word * 0x01020408u) >> 24) * co);
                }
            } else {
                for (int64_t g = 0; g < n_nib; g++, rows += 16 * co) {
                    const int32_t *a4 = at + 4 * g;
                    const uint32_t nib = s[a4[0]] | s[a4[1]] << 1 | s[a4[2]] << 2 | s[a4[3]] << 3;
                    sum += load16(rows + nib * co);
                }
            }
            memcpy(acc + (o - o0) * co + cb, &sum, sizeof sum);
        }
    }
}

/* One LIF step of neurons [0, n) of the layer (pointers offset to them) on the delayed sums `use`,
 * a pass per term: the scalar form of neurons16, for the last n % 16 neurons of a range. */
static void neuron_block(const layer_t *L, int64_t n, const int32_t *restrict use, int32_t *restrict u,
                         int32_t *restrict v, const int32_t *restrict keep_u, const int32_t *restrict keep_v,
                         const int32_t *restrict bias, const int32_t *restrict vth, uint8_t *restrict out) {
    if (L->u_mode == 2) { /* iDecay == 4096: u is this step's input */
        for (int64_t i = 0; i < n; i++) u[i] = wshl(use[i], 6);
    } else if (L->u_mode == 1) {
        for (int64_t i = 0; i < n; i++) u[i] = wadd((int32_t)rs0((int64_t)u[i] * keep_u[i]), wshl(use[i], 6));
    } else {
        for (int64_t i = 0; i < n; i++) u[i] = wadd(u[i], wshl(use[i], 6));
    }
    if (L->u_may_wrap)
        for (int64_t i = 0; i < n; i++) u[i] = lava_wrap(u[i]);
    if (L->v_decays) {
        for (int64_t i = 0; i < n; i++) v[i] = wadd((int32_t)rs0((int64_t)v[i] * keep_v[i]), u[i]);
    } else {
        for (int64_t i = 0; i < n; i++) v[i] = wadd(v[i], u[i]);
    }
    if (bias)
        for (int64_t i = 0; i < n; i++) v[i] = wadd(v[i], bias[i]);
    for (int64_t i = 0; i < n; i++) {
        const int32_t x = v[i] > VMAX ? VMAX : (v[i] < -VMAX ? -VMAX : v[i]);
        const int32_t spike = x > vth[i];
        out[i] = (uint8_t)spike;
        v[i] = spike ? 0 : x;
    }
}

#if defined(__AVX512VNNI__) && defined(__AVX512F__)
int sj2lava_has_dot(void) { return 1; }

static inline void store_lanes(int32_t *p, __m512i x, int64_t lanes) {
    if (lanes == 16) /* a masked store is much slower on some CPUs (Zen 4) */
        _mm512_storeu_si512(p, x);
    else
        _mm512_mask_storeu_epi32(p, (__mmask16)((1u << lanes) - 1), x);
}

/* The sums of one block of 16 output channels from the accumulators of the two planes: a + 256 (b - corr), then
 * the weights' shift (int32 that wraps: exact where the true sum fits, which the graded bound checks) */
static inline __m512i plane_sum(__m512i a, __m512i b, __m512i corr, __m512i shift, int graded) {
    if (graded)
        a = _mm512_add_epi32(a, _mm512_slli_epi32(_mm512_sub_epi32(b, corr), 8));
    return _mm512_sllv_epi32(a, shift);
}

/* The sums of np output positions (d: their input offsets from the first's, whose input starts at b) for nb blocks
 * of 16 output channels from block cb on, into acc (co per position): np nb sums in flight (twice that for graded
 * input, whose hi plane lies dh bytes after the lo one), each group's four input bytes broadcast once for all
 * blocks. Constant np (4 or 8), nb (1 or 2) and graded make its loops unroll into registers. */
static inline __attribute__((always_inline)) void dot_tile(const layer_t *L, const uint8_t *restrict b,
                                                           const int64_t *d, int64_t dh, int64_t cb, int np, int nb,
                                                           int graded, int32_t *restrict acc) {
    const int64_t co = L->co, n_grp = L->n_grp;
    const int8_t *restrict w8 = L->w8 + cb * n_grp * 64;
    __m512i s[2][8], h[2][8];
    for (int k = 0; k < nb; k++)
        for (int j = 0; j < np; j++) s[k][j] = h[k][j] = _mm512_setzero_si512();
    for (int64_t g = 0; g < n_grp; g++) {
        const uint8_t *restrict bg = b + L->rel[g];
        __m512i x[8], xh[8];
        for (int j = 0; j < np; j++) {
            int32_t v;
            memcpy(&v, bg + d[j], 4);
            x[j] = _mm512_set1_epi32(v);
            if (graded) {
                memcpy(&v, bg + dh + d[j], 4);
                xh[j] = _mm512_set1_epi32(v);
            }
        }
        for (int k = 0; k < nb; k++) {
            const __m512i w = _mm512_loadu_si512(w8 + (k * n_grp + g) * 64);
            for (int j = 0; j < np; j++) {
                s[k][j] = _mm512_dpbusd_epi32(s[k][j], x[j], w);
                if (graded)
                    h[k][j] = _mm512_dpbusd_epi32(h[k][j], xh[j], w);
            }
        }
    }
    const __m512i shift = _mm512_set1_epi32((int)L->w8_shift);
    for (int k = 0; k < nb; k++) {
        const __m512i corr = graded ? _mm512_loadu_si512(L->w8_corr + (cb + k) * 16) : shift;
        const int64_t lanes = co - (cb + k) * 16 < 16 ? co - (cb + k) * 16 : 16;
        for (int j = 0; j < np; j++)
            store_lanes(acc + j * co + (cb + k) * 16, plane_sum(s[k][j], h[k][j], corr, shift, graded), lanes);
    }
}

/* Group g of one position (input at b, the hi plane dh bytes on) into the sums *s (and *h for graded input) */
static inline __attribute__((always_inline)) void dot_group(const layer_t *L, const uint8_t *restrict b, int64_t dh,
                                                            const int8_t *restrict w8, int64_t g, int graded,
                                                            __m512i *s, __m512i *h) {
    int32_t x;
    const __m512i w = _mm512_loadu_si512(w8 + g * 64);
    memcpy(&x, b + L->rel[g], 4);
    *s = _mm512_dpbusd_epi32(*s, _mm512_set1_epi32(x), w);
    if (graded) {
        memcpy(&x, b + dh + L->rel[g], 4);
        *h = _mm512_dpbusd_epi32(*h, _mm512_set1_epi32(x), w);
    }
}

/* acc = the sums of output positions [o0, o1) (from acc[0], co per position) by dot products: the
 * input bytes of a position are taken four adjacent ones at a time (a group), and VPDPBUSD
 * multiplies them with the group's int8 weights for 16 output channels at once (exact: int32 sums of
 * products), then the sums are shifted back by w8_shift. Spikes are one plane of bytes 0/1; graded
 * messages two (hi != NULL: see w8_corr), each group then taking two instructions. Inlined into its two
 * callers, so that each is compiled for one kind of input. */
static inline __attribute__((always_inline)) void dot_sums_of(const layer_t *L, const uint8_t *restrict in,
                                                              const uint8_t *restrict hi, int64_t o0, int64_t o1,
                                                              int32_t *restrict acc) {
    const int64_t co = L->co, n_grp = L->n_grp, n_cb = (co + 15) / 16;
    const int graded = hi != NULL;
    const int64_t dh = graded ? hi - in : 0; /* the hi plane, as an offset from the lo one */
    /* eight sums in flight: one block of channels for eight positions, else two blocks for four */
    for (int64_t step = n_cb == 1 ? 8 : 4; o0 + 4 <= o1; o0 += step, acc += step * co) {
        step = n_cb == 1 && o0 + 8 <= o1 ? 8 : 4;
        const uint8_t *restrict b = in + L->base[o0];
        int64_t d[8];
        for (int j = 0; j < step; j++) d[j] = L->base[o0 + j] - L->base[o0];
        if (step == 8) {
            dot_tile(L, b, d, dh, 0, 8, 1, graded, acc);
            continue;
        }
        int64_t cb = 0;
        for (; cb + 2 <= n_cb; cb += 2)
            dot_tile(L, b, d, dh, cb, 4, 2, graded, acc);
        if (cb < n_cb)
            dot_tile(L, b, d, dh, cb, 4, 1, graded, acc);
    }
    const __m512i shift = _mm512_set1_epi32((int)L->w8_shift);
    for (int64_t o = o0; o < o1; o++) /* the last positions (up to three; a dense layer's one), one at a time */
        for (int64_t cb = 0; cb < n_cb; cb++) {
            /* four partial sums over the groups, so that four instructions are in flight, not one */
            __m512i s[4], h[4];
            for (int k = 0; k < 4; k++) s[k] = h[k] = _mm512_setzero_si512();
            const int8_t *restrict w8 = L->w8 + cb * n_grp * 64;
            const uint8_t *restrict b = in + L->base[o];
            int64_t g = 0;
            for (; g + 4 <= n_grp; g += 4)
                for (int k = 0; k < 4; k++) dot_group(L, b, dh, w8, g + k, graded, &s[k], &h[k]);
            for (; g < n_grp; g++) dot_group(L, b, dh, w8, g, graded, &s[0], &h[0]);
            const __m512i sum = _mm512_add_epi32(_mm512_add_epi32(s[0], s[1]), _mm512_add_epi32(s[2], s[3]));
            const __m512i high = _mm512_add_epi32(_mm512_add_epi32(h[0], h[1]), _mm512_add_epi32(h[2], h[3]));
            const __m512i corr = graded ? _mm512_loadu_si512(L->w8_corr + cb * 16) : sum;
            const int64_t lanes = co - cb * 16 < 16 ? co - cb * 16 : 16;
            store_lanes(acc + (o - o0) * co + cb * 16, plane_sum(sum, high, corr, shift, graded), lanes);
        }
}

static void dot_sums(const layer_t *L, const uint8_t *restrict in, int64_t o0, int64_t o1, int32_t *restrict acc) {
    dot_sums_of(L, in, NULL, o0, o1, acc);
}

static void dot_sums_graded(const layer_t *L, const uint8_t *restrict lo, const uint8_t *restrict hi, int64_t o0,
                            int64_t o1, int32_t *restrict acc) {
    dot_sums_of(L, lo, hi, o0, o1, acc);
}

/* VPDPBUSD's peak on this core: rounds of 12 independent dot products on registers (4 * 16 int8 products each
 * into 16 int32 lanes: 64 MACs); returns a lane of the sums so that nothing is optimised away. */
int64_t sj2lava_dot_peak(int64_t rounds) {
    __m512i a[12];
    const __m512i x = _mm512_set1_epi32(0x01010101), w = _mm512_set1_epi32(0x01ff01ff);
    for (int k = 0; k < 12; k++) a[k] = _mm512_set1_epi32(k);
    for (int64_t r = 0; r < rounds; r++) {
        for (int k = 0; k < 12; k++) a[k] = _mm512_dpbusd_epi32(a[k], x, w);
        __asm__ volatile("" : "+v"(a[0]), "+v"(a[1]), "+v"(a[2]), "+v"(a[3]), "+v"(a[4]), "+v"(a[5]));
    }
    __m512i sum = a[0];
    for (int k = 1; k < 12; k++) sum = _mm512_add_epi32(sum, a[k]);
    return _mm512_cvtsi512_si32(sum);
}
#else
int sj2lava_has_dot(void) { return 0; }

int64_t sj2lava_dot_peak(int64_t rounds) { return rounds; }

static void dot_sums(const layer_t *L, const uint8_t *restrict in, int64_t o0, int64_t o1, int32_t *restrict acc) {
    (void)L, (void)in, (void)o0, (void)o1, (void)acc; /* never called: Python builds no dot layers */
}

static void dot_sums_graded(const layer_t *L, const uint8_t *restrict lo, const uint8_t *restrict hi, int64_t o0,
                            int64_t o1, int32_t *restrict acc) {
    (void)L, (void)lo, (void)hi, (void)o0, (void)o1, (void)acc;
}
#endif

/* Graded messages m (|m| < 2^15) as the dot path's two planes of bytes (channels-last rows, inside the padding):
 * lo = m & 255 and hi = (m >> 8) + 128, at planes and planes + plane_bytes / 2. Returns the lo plane. */
static const uint8_t *graded_planes(const layer_t *L, const int32_t *restrict m, uint8_t *restrict planes) {
    uint8_t *restrict hi = planes + plane_bytes(L) / 2;
    if (L->padded_bytes == 0) {
        for (int64_t i = 0; i < L->n_in; i++) {
            planes[i] = (uint8_t)(m[i] & 255);
            hi[i] = (uint8_t)((m[i] >> 8) + 128);
        }
        return planes;
    }
    const int64_t row = L->in_w * L->in_c;
    for (int64_t y = 0; y < L->in_h; y++) {
        const int64_t at = ((y + L->pad_top) * L->padded_w + L->pad_left) * L->in_c;
        const int32_t *restrict r = m + y * row;
        for (int64_t i = 0; i < row; i++) {
            planes[at + i] = (uint8_t)(r[i] & 255);
            hi[at + i] = (uint8_t)((r[i] >> 8) + 128);
        }
    }
    return planes;
}

/* acc = the sums of output positions [o0, o1) (from acc[0], co per position) of a depthwise convolution: per tap,
 * the 16 channels' input bytes (0/1) at that tap select its 16 weights. Reads up to 15 bytes past a position's
 * channels (the input buffers have room), whose lanes have weight 0. */
static void dw_sums(const layer_t *L, const uint8_t *restrict in, int64_t o0, int64_t o1, int32_t *restrict acc) {
    const int64_t co = L->co, n_cb = (co + 15) / 16, taps = L->n_grp;
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *restrict b = in + L->base[o];
        for (int64_t cb = 0; cb < n_cb; cb++) {
            v16 sum = {0};
            for (int64_t t = 0; t < taps; t++) {
                v16b x;
                memcpy(&x, b + L->rel[t] + cb * 16, sizeof x);
                sum += load16(L->dw_w + (t * n_cb + cb) * 16) & -__builtin_convertvector(x, v16);
            }
            const int64_t lanes = co - cb * 16 < 16 ? co - cb * 16 : 16;
            memcpy(acc + (o - o0) * co + cb * 16, &sum, (size_t)lanes * sizeof(int32_t));
        }
    }
}

/* The layer's input with its zero padding around it (channels-last rows), for the dot path */
static const uint8_t *padded_input(const layer_t *L, const uint8_t *s, uint8_t *padded) {
    if (L->padded_bytes == 0)
        return s;
    const int64_t row = L->in_w * L->in_c;
    for (int64_t y = 0; y < L->in_h; y++)
        memcpy(padded + ((y + L->pad_top) * L->padded_w + L->pad_left) * L->in_c, s + y * row, (size_t)row);
    return padded;
}

enum { BLOCK = 512 }; /* neurons per block of the dot/table paths: the block's sums and state stay in L1 */

/* neuron_block's step for neurons [0, n), n a multiple of 16, 16 at a time with all terms in
 * registers. Everything is read into locals first: the vector stores are memcpy's, which may alias
 * anything, so fields read in the loop would be reloaded at every step. Inlined into neurons16 once per
 * combination of the constant flags u_mode, v_decays and has_bias, so that the loop tests none of them. */
static inline __attribute__((always_inline)) void lif16(
    int64_t n, const int32_t *restrict use, int32_t *restrict u_, int32_t *restrict v_, const int32_t *restrict keep_u,
    const int32_t *restrict keep_v, const int32_t *restrict bias, const int32_t *restrict vth, uint8_t *restrict out,
    int64_t p, int64_t period, int u_mode, int v_decays, int has_bias, int u_may_wrap, int keep_current) {
    for (int64_t i = 0; i < n; i += 16) { /* neuron i's parameters at p (i, or i % period) */
        const v16 x = wshl16(load16(use + i), 6);
        v16 u = u_mode == 2 ? x : wadd16(u_mode == 1 ? decay16(load16(u_ + i), load16(keep_u + p)) : load16(u_ + i), x);
        if (u_may_wrap)
            u = lava_wrap16(u);
        v16 v = wadd16(v_decays ? decay16(load16(v_ + i), load16(keep_v + p)) : load16(v_ + i), u);
        if (has_bias)
            v = wadd16(v, load16(bias + p));
        v = clip16(v);
#if defined(__AVX512BW__) && defined(__AVX512VL__)
        /* the comparison's mask straight to bytes 0/1 and to the reset: one instruction each */
        const __mmask16 spike = _mm512_cmpgt_epi32_mask((__m512i)v, (__m512i)load16(vth + p));
        const __m128i bytes = _mm_maskz_mov_epi8(spike, _mm_set1_epi8(1));
        v = (v16)_mm512_maskz_mov_epi32((__mmask16)~spike, (__m512i)v);
#else
        const v16 spike = v > load16(vth + p);
        const v16b bytes = __builtin_convertvector(spike, v16b) & 1;
        v &= ~spike;
#endif
        if (keep_current)
            memcpy(u_ + i, &u, sizeof u);
        memcpy(v_ + i, &v, sizeof v);
        memcpy(out + i, &bytes, sizeof bytes);
        p += 16;
        if (period)
            while (p >= period) p -= period;
    }
}

static void neurons16(const layer_t *L, int64_t n, const int32_t *restrict use, int32_t *restrict u_,
                      int32_t *restrict v_, const int32_t *restrict keep_u, const int32_t *restrict keep_v,
                      const int32_t *restrict bias, const int32_t *restrict vth, uint8_t *restrict out, int64_t p,
                      int64_t period) {
    const int u_may_wrap = (int)L->u_may_wrap, v_decays = (int)L->v_decays, has_bias = bias != NULL;
    /* u_mode 2: u is this step's input alone, so it is kept only where it is recorded */
    const int keep_current = L->u_mode != 2 || L->rec_u;
#define LIF16(U_MODE, V_DECAYS, HAS_BIAS)                                                                             \
    lif16(n, use, u_, v_, keep_u, keep_v, bias, vth, out, p, period, U_MODE, V_DECAYS, HAS_BIAS, u_may_wrap,        \
          keep_current)
    switch (L->u_mode * 4 + v_decays * 2 + has_bias) {
    case 0: LIF16(0, 0, 0); break;
    case 1: LIF16(0, 0, 1); break;
    case 2: LIF16(0, 1, 0); break;
    case 3: LIF16(0, 1, 1); break;
    case 4: LIF16(1, 0, 0); break;
    case 5: LIF16(1, 0, 1); break;
    case 6: LIF16(1, 1, 0); break;
    case 7: LIF16(1, 1, 1); break;
    case 8: LIF16(2, 0, 0); break;
    case 9: LIF16(2, 0, 1); break;
    case 10: LIF16(2, 1, 0); break;
    default: LIF16(2, 1, 1); break;
    }
#undef LIF16
}

/* One LIF step of neurons [i0, i1) of the layer on their delayed sums S->use, with the given bias (the
 * layer's, or an input layer's bias for this sample); spikes to S->s. */
static void neurons(const layer_t *L, state_t *S, int64_t i0, int64_t i1, const int32_t *bias) {
    const int64_t n16 = (i1 - i0) & ~(int64_t)15, period = L->period; /* 0 where input neurons take a sample's bias */
    neurons16(L, n16, S->use + i0, S->u + i0, S->v + i0, L->keep_u, L->keep_v, bias, L->vth, S->s + i0,
              period ? i0 % period : i0, period);
    i0 += n16;
    const int64_t p = period ? i0 % period : i0; /* the last i1 - i0 < 16 neurons' parameters, from p on */
    neuron_block(L, i1 - i0, S->use + i0, S->u + i0, S->v + i0, L->keep_u + p, L->keep_v + p,
                 bias ? bias + p : NULL, L->vth + p, S->s + i0);
}

/* One SDNN step of neurons [i0, i1) on their delayed sums S->use; messages to S->m. */
static void sdnn_neurons(const layer_t *L, state_t *S, int64_t i0, int64_t i1) {
    const int32_t *restrict use = S->use + i0, *restrict bias = L->bias ? L->bias + i0 : NULL;
    int32_t *restrict sigma = S->u + i0, *restrict act_prev = S->v + i0, *restrict res = S->r + i0,
                      *restrict m = S->m + i0;
    const int32_t vth = (int32_t)L->sd_vth;
    const int64_t n = i1 - i0, n16 = n & ~(int64_t)15, shift = L->sd_shift, role = L->role;
    const v16 zero = {0};
    for (int64_t i = 0; i < n16; i += 16) { /* 16 at a time: sd_fire16 and the rest in registers */
        v16 act, sg = load16(sigma + i);
        if (role == 0) { /* Delta: act is the input */
            act = wshl16(load16(use + i), (int)shift);
        } else {
            sg = wadd16(sg, load16(use + i));
            memcpy(sigma + i, &sg, sizeof sg);
            if (role == 2) { /* Sigma: sends its sigma */
                memcpy(m + i, &sg, sizeof sg);
                continue;
            }
            act = bias ? wadd16(sg, load16(bias + i)) : sg;
            act &= act > zero; /* ReLU */
        }
        const v16 d = wadd16((v16)((v16u)act - (v16u)load16(act_prev + i)), load16(res + i));
        const v16 fire = sd_fire16(d, vth);
        const v16 r = (v16)((v16u)d - (v16u)fire), msg = fire >> 6;
        memcpy(res + i, &r, sizeof r);
        memcpy(act_prev + i, &act, sizeof act);
        memcpy(m + i, &msg, sizeof msg);
    }
    for (int64_t i = n16; i < n; i++) { /* the last n % 16, one at a time: the same rules */
        int32_t act;
        if (role == 0) {
            act = wshl(use[i], shift);
        } else {
            sigma[i] = wadd(sigma[i], use[i]);
            if (role == 2) {
                m[i] = sigma[i];
                continue;
            }
            act = bias ? wadd(sigma[i], bias[i]) : sigma[i];
            act = act < 0 ? 0 : act; /* ReLU */
        }
        const int32_t d = wadd(wsub(act, act_prev[i]), res[i]);
        const int32_t s = sd_fire(d, vth);
        res[i] = wsub(d, s);
        act_prev[i] = act;
        m[i] = s >> 6; /* Lava's state_exp: the message drops 6 fraction bits */
    }
}

/* One resonate-and-fire step of neurons [i0, i1) on their delayed real and imaginary sums; spikes to S->s. */
static void rf_neurons(const layer_t *L, state_t *S, int64_t i0, int64_t i1) {
    int32_t *restrict re = S->u, *restrict im = S->v;
    const int64_t vth = L->rf_vth;
    for (int64_t i = i0; i < i1; i++) {
        const int64_t r = re[i], q = im[i], c = L->rf_cos[i], sn = L->rf_sin[i];
        int64_t nr = rs0(c * r) - rs0(sn * q) + wshl(S->use[i], 6);
        int64_t ni = rs0(sn * r) + rs0(c * q) + wshl(S->use_i[i], 6);
        nr = nr > VMAX ? VMAX : (nr < -VMAX ? -VMAX : nr);
        ni = ni > VMAX ? VMAX : (ni < -VMAX ? -VMAX : ni);
        int spike;
        if (L->role == 1) { /* RF_IZ */
            spike = ni >= vth;
            if (spike) {
                nr = 0;
                ni = vth - 1;
            }
        } else {
            spike = nr >= vth && ni >= 0 && q < 0;
        }
        re[i] = (int32_t)nr;
        im[i] = (int32_t)ni;
        S->s[i] = (uint8_t)spike;
    }
}

/* One step of neurons [i0, i1) of the layer, whatever their model */
static void step_neurons(const layer_t *L, state_t *S, int64_t i0, int64_t i1, const int32_t *bias) {
    if (L->neuron == 1)
        sdnn_neurons(L, S, i0, i1);
    else if (L->neuron == 2)
        rf_neurons(L, S, i0, i1);
    else
        neurons(L, S, i0, i1, bias);
}

/* The sums a as the synaptic input of the next step, in place: Lava Conv's 24-bit wrap, or Lava
 * Dense's weight exponent */
static void next_input(const layer_t *L, int32_t *restrict a, int64_t n) {
    if (L->wrap) {
        for (int64_t i = 0; i < n; i++) a[i] = conv_wrap(a[i]);
    } else if (L->shift) {
        for (int64_t i = 0; i < n; i++) a[i] = exp_shift(a[i], L->shift);
    }
}

/* Samples of x (bytes 0/1, or int32 messages where the first layer is graded_in; sample b's step t at row
 * b * sb + t * st of n_in values) through all layers, time-major as Lava steps them: at every step each layer
 * takes the spikes (messages) the layer before made at that step. Recorded rows go to the same row index of
 * rec_s/rec_u/rec_v/rec_m/rec_sigma. The samples are those below b1 claimed one at a time from *next, which
 * threads running this at once share: a thread that gets less of the CPU (a busy neighbour) simply does fewer
 * of them. A graded sum that could reach 2^31 stops every thread: fault[0] = its layer + 1, fault[1] = the
 * largest |message| (the first thread to see one writes them).
 * Returns 0, or -1 when scratch memory could not be had. */
int sj2lava_run(const layer_t *layers, int64_t n_layers, const void *x, int64_t sb, int64_t st_,
                int64_t *next, int64_t b1, int64_t steps, int64_t *fault) {
    size_t words = 0;
    for (int64_t j = 0; j < n_layers; j++)
        words += 9 * (size_t)layers[j].n_out + (size_t)ev_len(&layers[j]) + 8 + (size_t)(layers[j].n_out + 64) / 4 + 1 +
                 (size_t)(plane_bytes(&layers[j]) + 64) / 4 +
                 (layers[j].dly ? 2 * (size_t)layers[j].n_ring * (size_t)layers[j].n_out : 0);
    words += (size_t)layers[0].n_in + 8; /* the input row: bytes, or int32 messages */
    size_t counted = 0;
    for (int64_t j = 0; j < n_layers; j++)
        counted += layers[j].cnt ? 2 * (size_t)layers[j].n_out : 0;
    int32_t *buf = calloc(words, sizeof(int32_t)); /* zeroed: the bytes after each spike vector stay 0 */
    state_t *st = malloc((size_t)n_layers * sizeof(state_t));
    int64_t *cnt = calloc(counted + 1, sizeof(int64_t));
    if (!buf || !st || !cnt) {
        free(buf);
        free(st);
        free(cnt);
        return -1;
    }
    int64_t *cnt_at = cnt;
    int32_t *at = buf;
    for (int64_t j = 0; j < n_layers; j++) {
        const int64_t n = layers[j].n_out;
        state_t *S = &st[j];
        S->acc = at; S->use = at + n; S->u = at + 2 * n; S->v = at + 3 * n; S->rec = at + 4 * n;
        S->r = at + 5 * n; S->m = at + 6 * n; S->acc_i = at + 7 * n; S->use_i = at + 8 * n;
        S->events = at + 9 * n;
        at += 9 * n + ev_len(&layers[j]) + 8;
        S->s = (uint8_t *)at; /* 64 zero bytes after it: vector reads past the end stay inside */
        at += (n + 64) / 4 + 1;
        S->padded = (uint8_t *)at; /* zeroed once: only the inside is written */
        if (layers[j].graded_in && layers[j].w8) /* the hi plane's padding: a message of 0 is the byte 128 */
            memset(S->padded + plane_bytes(&layers[j]) / 2, 128, (size_t)plane_bytes(&layers[j]) / 2);
        at += (plane_bytes(&layers[j]) + 64) / 4;
        S->ring = NULL;
        S->head = 0;
        S->cnt = S->cnt_last = NULL;
        S->nanos = 0;
        if (layers[j].cnt) {
            S->cnt = cnt_at;
            S->cnt_last = cnt_at + n;
            cnt_at += 2 * n;
        }
        if (layers[j].dly) { /* the ring, and per-delay sums in place of acc */
            S->ring = at;
            S->acc = at + layers[j].n_ring * n;
            at += 2 * layers[j].n_ring * n;
        }
    }
    void *x_row = at; /* the input row, copied to have zero bytes after it */
    const size_t x_size = layers[0].graded_in ? sizeof(int32_t) : 1;
    for (int64_t b; (b = __atomic_fetch_add(next, 1, __ATOMIC_RELAXED)) < b1;) {
        for (int64_t j = 0; j < n_layers; j++) {
            const size_t n = (size_t)layers[j].n_out * sizeof(int32_t);
            state_t *S = &st[j];
            memset(S->use, 0, n); memset(S->u, 0, n); memset(S->v, 0, n);
            memset(S->r, 0, n); memset(S->m, 0, n); memset(S->use_i, 0, n);
            memset(S->s, 0, (size_t)layers[j].n_out);
            if (S->ring) {
                memset(S->ring, 0, (size_t)(layers[j].n_ring * layers[j].n_out) * sizeof(int32_t));
                S->head = 0;
            }
        }
        for (int64_t t = 0; t < steps; t++) {
            const int64_t row = b * sb + t * st_;
            if (x) { /* NULL when the net starts with input neurons, which read their own a_in */
                const int64_t n_in = layers[0].n_in;
                const int32_t *order = layers[0].in_order;
                if (!order)
                    memcpy(x_row, (const char *)x + row * n_in * x_size, (size_t)n_in * x_size);
                else if (x_size == 1)
                    for (int64_t i = 0; i < n_in; i++) ((uint8_t *)x_row)[i] = ((const uint8_t *)x)[row * n_in + order[i]];
                else
                    for (int64_t i = 0; i < n_in; i++) ((int32_t *)x_row)[i] = ((const int32_t *)x)[row * n_in + order[i]];
            }
            const uint8_t *s_in = x_row; /* the layer's input: spikes, or messages where the layer is graded_in */
            const int32_t *m_in = x_row;
            for (int64_t j = 0; j < n_layers; j++) {
                const layer_t *L = &layers[j];
                state_t *S = &st[j];
                const int64_t n_out = L->n_out;
                const int64_t t0 = L->nanos ? now_ns() : 0;
                if (L->reset_interval > 0 && (t + 1) % L->reset_interval == L->reset_phase) {
                    memset(S->u, 0, (size_t)n_out * sizeof(int32_t));
                    memset(S->v, 0, (size_t)n_out * sizeof(int32_t));
                }
                int64_t n_ev = 0, top = 0; /* graded input: the non-zero messages, checked first */
                const int32_t *vals = NULL;
                if (L->graded_in && !L->a_in) {
                    top = top_message(m_in, L->n_in, &n_ev);
                    if ((double)top * L->graded_bound >= 2147483648.0) {
                        int64_t none = 0;
                        if (__atomic_compare_exchange_n(&fault[0], &none, j + 1, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
                            fault[1] = top;
                        __atomic_store_n(next, b1, __ATOMIC_RELAXED); /* every thread stops at its next sample */
                        goto done;
                    }
                    vals = m_in;
                }
                if (L->a_in) { /* input neurons: a_in reaches them at the same step, plus this sample's bias */
                    const int32_t *a = L->a_in + (L->a_in_rows ? row : 0) * n_out;
                    if (!L->a_in_rows) /* the one shared row is zeros */
                        memset(S->use, 0, (size_t)n_out * sizeof(int32_t));
                    else if (L->in_order)
                        for (int64_t i = 0; i < n_out; i++) S->use[i] = a[L->in_order[i]];
                    else
                        memcpy(S->use, a, (size_t)n_out * sizeof(int32_t));
                    step_neurons(L, S, 0, n_out, L->sample_bias ? L->sample_bias + b * n_out : L->bias);
                } else if (L->dly) { /* axonal delays: this step's input from the ring, then the new sums into it */
                    n_ev = vals ? messages(m_in, L->n_in, S->events) : spiking(s_in, L->n_in, S->events);
                    delayed_sums(L, S, S->events, vals, n_ev);
                    step_neurons(L, S, 0, n_out, L->bias);
                    /* acc and use stay where they are: the ring holds what is in flight */
                } else if (L->lut || L->dw_w ||
                           (L->w8 && (vals ? n_ev >= L->dot_min && top < 32768 : !L->fan_start ||
                                                                   spike_count(s_in, L->n_in) >= L->dot_min))) {
                    /* block by block, so that the block stays in L1: sums, then the neurons on the previous
                     * step's sums */
                    /* positions per block: a multiple of four where it can be (the dot path's unit) */
                    const int64_t co = L->co, per = 4 * co <= BLOCK ? (BLOCK / co) & ~(int64_t)3 : co < BLOCK ? BLOCK / co : 1;
                    const uint8_t *in = !L->w8 && !L->dw_w ? s_in : vals ? graded_planes(L, m_in, S->padded)
                                                                        : padded_input(L, s_in, S->padded);
                    for (int64_t o = 0; o < n_out / co; o += per) {
                        const int64_t o1 = o + per < n_out / co ? o + per : n_out / co;
                        if (vals)
                            dot_sums_graded(L, in, in + plane_bytes(L) / 2, o, o1, S->acc + o * co);
                        else if (L->w8)
                            dot_sums(L, in, o, o1, S->acc + o * co);
                        else if (L->dw_w)
                            dw_sums(L, in, o, o1, S->acc + o * co);
                        else
                            table_sums(L, in, o, o1, S->acc + o * co);
                        step_neurons(L, S, o * co, o1 * co, L->bias);
                        next_input(L, S->acc + o * co, (o1 - o) * co);
                    }
                } else {
                    n_ev = vals ? messages(m_in, L->n_in, S->events) : spiking(s_in, L->n_in, S->events);
                    synaptic_sums(L, L->w, S->events, vals, n_ev, S->acc);
                    if (L->w_imag) /* RF: the imaginary synapse, on the same events */
                        synaptic_sums(L, L->w_imag, S->events, vals, n_ev, S->acc_i);
                    if (L->w_rec && t > 0) { /* its own spikes of step t-1 (still in S->s), through W_rec */
                        const int64_t m = spiking(S->s, n_out, S->events);
                        memset(S->rec, 0, (size_t)n_out * sizeof(int32_t));
                        for (int64_t e = 0; e < m; e++)
                            add_row(S->rec, L->w_rec + (int64_t)S->events[e] * n_out, n_out);
                        for (int64_t i = 0; i < n_out; i++) S->use[i] = wadd(S->use[i], exp_shift(S->rec[i], L->shift));
                    }
                    step_neurons(L, S, 0, n_out, L->bias);
                    next_input(L, S->acc, n_out);
                    if (L->w_imag) {
                        for (int64_t i = 0; i < n_out; i++) S->acc_i[i] = exp_shift(S->acc_i[i], L->shift_imag);
                        int32_t *sums = S->acc_i;
                        S->acc_i = S->use_i;
                        S->use_i = sums;
                    }
                }
                if (!L->a_in && !L->dly) { /* this step's sums are the next step's input */
                    int32_t *sums = S->acc;
                    S->acc = S->use;
                    S->use = sums;
                }
                if (L->rec_s) memcpy(L->rec_s + row * n_out, S->s, (size_t)n_out);
                if (L->rec_u) memcpy(L->rec_u + row * n_out, S->u, (size_t)n_out * sizeof(int32_t));
                if (L->rec_v) memcpy(L->rec_v + row * n_out, S->v, (size_t)n_out * sizeof(int32_t));
                if (L->rec_m) memcpy(L->rec_m + row * n_out, S->m, (size_t)n_out * sizeof(int32_t));
                if (L->rec_sigma) memcpy(L->rec_sigma + row * n_out, S->u, (size_t)n_out * sizeof(int32_t));
                count_outputs(L, S, t);
                if (L->nanos)
                    S->nanos += now_ns() - t0;
                s_in = S->s;
                m_in = S->m;
            }
        }
    }
done:
    for (int64_t j = 0; j < n_layers; j++) { /* this thread's counts into the shared ones */
        const state_t *S = &st[j];
        if (layers[j].nanos)
            __atomic_fetch_add(layers[j].nanos, S->nanos, __ATOMIC_RELAXED);
        if (!S->cnt) continue;
        for (int64_t i = 0; i < layers[j].n_out; i++) {
            __atomic_fetch_add(&layers[j].cnt[i], S->cnt[i], __ATOMIC_RELAXED);
            __atomic_fetch_add(&layers[j].cnt_last[i], S->cnt_last[i], __ATOMIC_RELAXED);
        }
    }
    free(cnt);
    free(st);
    free(buf);
    return 0;
}

/* out = x (float32 0.0/1.0) as bytes 0/1, in one pass. Returns -1, or the index of the first value that
 * is not 0 or 1 (NaN included); out is then incomplete. -0.0 counts as 0, as it compares equal. */
int64_t sj2lava_spike_bytes(const float *restrict x, uint8_t *restrict out, int64_t n) {
    enum { CHUNK = 4096 };
    for (int64_t i0 = 0; i0 < n; i0 += CHUNK) { /* checked per chunk so the loop itself vectorizes */
        const int64_t i1 = i0 + CHUNK < n ? i0 + CHUNK : n;
        int bad = 0;
        for (int64_t i = i0; i < i1; i++) {
            uint32_t bits;
            memcpy(&bits, x + i, 4);
            bad |= (bits & 0x7fffffffu) != 0 && bits != 0x3f800000u;
            out[i] = (uint8_t)(bits == 0x3f800000u);
        }
        if (bad)
            for (int64_t i = i0; i < i1; i++)
                if (!(x[i] == 0.0f || x[i] == 1.0f))
                    return i;
    }
    return -1;
}

/* The twins of sj2lava.quant's rules on an array, for the test that runs every twin on the same
 * boundary values: rule 0 rs0, 1 rs0 on 8 lanes, 2 lava_wrap, 3 lava_wrap on 16 lanes, 4 conv_wrap,
 * 5 sd_fire with threshold arg, 6 decay16 (rs0(x * arg) on 16 lanes, arg in [0, 4096]), 7 sd_fire16 (sd_fire on
 * 16 lanes). Rules 2-7 take int32 values. n must be a multiple of 16. */
void sj2lava_twin(int64_t rule, const int64_t *restrict x, int64_t *restrict out, int64_t n, int64_t arg) {
    for (int64_t i = 0; i < n; i += 16) {
        if (rule == 1) {
            for (int h = 0; h < 16; h += 8) {
                v8l a;
                for (int k = 0; k < 8; k++) a[k] = x[i + h + k];
                const v8l r = rs0_8(a);
                for (int k = 0; k < 8; k++) out[i + h + k] = r[k];
            }
        } else if (rule == 3 || rule == 6 || rule == 7) {
            v16 a, keep;
            for (int k = 0; k < 16; k++) {
                a[k] = (int32_t)x[i + k];
                keep[k] = (int32_t)arg;
            }
            const v16 r = rule == 3 ? lava_wrap16(a) : rule == 6 ? decay16(a, keep) : sd_fire16(a, (int32_t)arg);
            for (int k = 0; k < 16; k++) out[i + k] = r[k];
        } else {
            for (int k = 0; k < 16; k++) {
                const int64_t v = x[i + k];
                out[i + k] = rule == 0 ? rs0(v) : rule == 2 ? lava_wrap((int32_t)v) :
                             rule == 4 ? conv_wrap((int32_t)v) : sd_fire((int32_t)v, (int32_t)arg);
            }
        }
    }
}

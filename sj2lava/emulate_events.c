/* The emulator's event-driven CPU kernel: one synaptic layer of a NetX net, for a range of samples,
 * over all time steps, in exactly the integers of Lava's Loihi2SimCfg(select_tag='fixed_pt').
 * Compiled on first use by sj2lava/emulate_events.py; see that module for the data layout.
 *
 * Per step t of one sample (the same order as PyDenseModelBitAcc/PyConvModelBitAcc + PyLifModelBitAcc):
 *   acc    = sum over this step's input spikes of their weight rows  (fan-out table, channels-last)
 *   use   += shift(W_rec s(t-1))                                      (dense_rec only)
 *   LIF on use (the sums of step t-1: one step of synaptic delay):
 *     u = rs0(u * (4096 - iDecay)) + (use << 6)   then Lava's wrap into (-2^23, 2^23]
 *     v = rs0(v * (4096 - vDecay)) + u + (bias << 6), clipped to +-(2^23 - 1)
 *     s = v > (vThMant << 6);  v = 0 where s
 *   use    = shift(acc) (dense: Lava's weight exponent, flooring) or wrap24(acc) (conv)
 *
 * rs0 and the wrap are the C twins of sj2lava.quant.rs0 / quant.lava_wrap, written with the same
 * operators; tests compare this kernel with the torch backend and with Lava itself.
 * The Python side checks statically that no int32 register here can overflow.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HALF (1 << 23)
#define FULL (1 << 24)
#define VMAX (HALF - 1)

static inline int64_t rs0(int64_t x) { return (x + ((x >> 63) & 4095)) >> 12; }

static inline int32_t lava_wrap(int32_t u) { return u - (u > HALF) * FULL + (u <= -HALF) * FULL; }

/* Lava Dense's weight exponent: an arithmetic (flooring) right shift, or a left shift (as a multiply:
 * shifting a negative int left is undefined in C) */
static inline int32_t exp_shift(int32_t a, int64_t shift) {
    return shift > 0 ? a >> shift : (shift < 0 ? a * (1 << -shift) : a);
}

static void add_row(int32_t *restrict row, const int32_t *restrict w, int64_t n) {
    if (n == 16) { /* the common channel count: one fixed-size vector add */
        for (int j = 0; j < 16; j++) row[j] += w[j];
        return;
    }
    for (int64_t j = 0; j < n; j++) row[j] += w[j];
}

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

typedef struct {
    int64_t n_in, n_out, cig, co, groups, shift, wrap, u_mode, v_decays, u_may_wrap;
    const int32_t *pos, *chan;                     /* [n_in]: input position and channel */
    const int32_t *fan_start, *fan_out, *fan_tap;  /* the fan-out table */
    const int32_t *w;                              /* [taps][cig][co] */
    const int32_t *w_rec;                          /* [n_out][n_out] (row = source) or NULL */
    const int64_t *keep_u, *keep_v;                /* [n_out]: 4096 - decay */
    const int32_t *bias, *vth;                     /* [n_out]: bias << 6 (or NULL), vThMant << 6 */
    /* the table path (a convolution without groups), else lut == NULL and the fan-out table is used: */
    const int32_t *lut;                            /* [n_nib][16][co]: sum of w over a nibble's spikes */
    const int32_t *nib_at;                         /* [out positions][n_nib][4 or 1]: input byte offsets */
    int64_t n_nib, nib_bytes;                      /* nibbles per output position; 1: 4 adjacent bytes */
    uint8_t *rec_s;                                /* [samples][steps][n_out] or NULL */
    int32_t *rec_u, *rec_v;                        /* likewise, or NULL */
} layer_t;

/* room for the events of the input, or of the layer's own spikes (dense_rec) */
static int64_t ev_len(const layer_t *L) { return (L->n_in > L->n_out ? L->n_in : L->n_out) + 8; }

typedef struct { int32_t *acc, *use, *u, *v, *rec, *events; uint8_t *s; } state_t;

/* acc = the sums of the n events (input indices) through the fan-out table */
static void synaptic_sums(const layer_t *L, const int32_t *restrict events, int64_t n, int32_t *restrict acc) {
    memset(acc, 0, (size_t)L->n_out * sizeof(int32_t));
    const int64_t cig = L->cig, co = L->co, cog = co / L->groups;
    for (int64_t e = 0; e < n; e++) {
        const int32_t i = events[e];
        const int64_t p = L->pos[i], c = L->chan[i];
        const int64_t g = L->groups > 1 ? c / cig : 0;
        const int32_t *wc = L->w + (c - g * cig) * co + g * cog; /* w[tap][c_local][g*cog ...] */
        for (int64_t k = L->fan_start[p]; k < L->fan_start[p + 1]; k++)
            add_row(acc + L->fan_out[k] + g * cog, wc + (int64_t)L->fan_tap[k] * cig * co, cog);
    }
}

/* acc = the sums of the input spikes s (with >= 4 zero bytes after them, where padding points) by
 * table: the (tap, channel) pairs of an output position in groups of four (a nibble of spikes), each
 * group's weight rows pre-summed for all 16 values of the nibble. Branch-free, and each output row is
 * summed in registers: no read-after-write of a row that was just stored, as in the scatter. */
static void table_sums(const layer_t *L, const uint8_t *restrict s, int32_t *restrict acc) {
    const int64_t co = L->co, n_nib = L->n_nib, positions = L->n_out / co;
    const int32_t *restrict lut = L->lut;
    for (int64_t o = 0; o < positions; o++) {
        const int32_t *restrict at = L->nib_at + o * n_nib * (L->nib_bytes == 1 ? 1 : 4);
        for (int64_t cb = 0; cb + 16 <= co; cb += 16) {
            int32_t sum[16] = {0};
            for (int64_t g = 0; g < n_nib; g++) {
                uint32_t nib;
                if (L->nib_bytes == 1) { /* four adjacent bytes 0/1 -> bits 0..3 */
                    uint32_t word;
                    memcpy(&word, s + at[g], 4);
                    nib = (word * 0x01020408u) >> 24;
                } else {
                    const int32_t *a4 = at + 4 * g;
                    nib = s[a4[0]] | s[a4[1]] << 1 | s[a4[2]] << 2 | s[a4[3]] << 3;
                }
                const int32_t *restrict row = lut + (g * 16 + nib) * co + cb;
                for (int j = 0; j < 16; j++) sum[j] += row[j];
            }
            memcpy(acc + o * co + cb, sum, sizeof sum);
        }
    }
}

/* One LIF step of the layer on the delayed sums `use`; spikes to S->s. A pass per term, each simple
 * enough to vectorize (a fused loop with the int64 decay products does not). */
static void neurons(const layer_t *L, state_t *S) {
    const int64_t n = L->n_out;
    int32_t *restrict u = S->u, *restrict v = S->v;
    const int32_t *restrict use = S->use, *restrict vth = L->vth;
    if (L->u_mode == 2) { /* iDecay == 4096: u is this step's input */
        for (int64_t i = 0; i < n; i++) u[i] = use[i] * 64;
    } else if (L->u_mode == 1) {
        const int64_t *restrict keep = L->keep_u;
        for (int64_t i = 0; i < n; i++) u[i] = (int32_t)rs0((int64_t)u[i] * keep[i]) + use[i] * 64;
    } else {
        for (int64_t i = 0; i < n; i++) u[i] += use[i] * 64;
    }
    if (L->u_may_wrap)
        for (int64_t i = 0; i < n; i++) u[i] = lava_wrap(u[i]);
    if (L->v_decays) {
        const int64_t *restrict keep = L->keep_v;
        for (int64_t i = 0; i < n; i++) v[i] = (int32_t)rs0((int64_t)v[i] * keep[i]) + u[i];
    } else {
        for (int64_t i = 0; i < n; i++) v[i] += u[i];
    }
    if (L->bias) {
        const int32_t *restrict bias = L->bias;
        for (int64_t i = 0; i < n; i++) v[i] += bias[i];
    }
    uint8_t *restrict out = S->s;
    for (int64_t i = 0; i < n; i++) {
        const int32_t x = v[i] > VMAX ? VMAX : (v[i] < -VMAX ? -VMAX : v[i]);
        const int32_t spike = x > vth[i];
        out[i] = (uint8_t)spike;
        v[i] = spike ? 0 : x;
    }
}

/* Samples [b0, b1) of x (bytes 0/1, sample b's step t at row b * sb + t * st of n_in bytes) through all
 * layers, time-major as Lava steps them: at every step each layer takes the spikes the layer before
 * made at that step. Recorded rows go to the same row index of rec_s/rec_u/rec_v.
 * Returns 0, or -1 when scratch memory could not be had. */
int sj2lava_run(const layer_t *layers, int64_t n_layers, const uint8_t *x, int64_t sb, int64_t st_,
                int64_t b0, int64_t b1, int64_t steps) {
    size_t words = 0;
    for (int64_t j = 0; j < n_layers; j++) words += 5 * (size_t)layers[j].n_out + (size_t)ev_len(&layers[j]) + (size_t)(layers[j].n_out + 8) / 4 + 1;
    words += (size_t)(layers[0].n_in + 8) / 4 + 1;
    int32_t *buf = calloc(words, sizeof(int32_t)); /* zeroed: the bytes after each spike vector stay 0 */
    state_t *st = malloc((size_t)n_layers * sizeof(state_t));
    if (!buf || !st) {
        free(buf);
        free(st);
        return -1;
    }
    int32_t *at = buf;
    for (int64_t j = 0; j < n_layers; j++) {
        const int64_t n = layers[j].n_out;
        st[j].acc = at; st[j].use = at + n; st[j].u = at + 2 * n; st[j].v = at + 3 * n; st[j].rec = at + 4 * n;
        st[j].events = at + 5 * n;
        st[j].s = (uint8_t *)(at + 5 * n + ev_len(&layers[j]));
        at += 5 * n + ev_len(&layers[j]) + (n + 8) / 4 + 1;
    }
    uint8_t *x_row = (uint8_t *)at; /* the input row, copied to have zero bytes after it */
    for (int64_t b = b0; b < b1; b++) {
        for (int64_t j = 0; j < n_layers; j++) {
            const size_t n = (size_t)layers[j].n_out * sizeof(int32_t);
            memset(st[j].use, 0, n); memset(st[j].u, 0, n); memset(st[j].v, 0, n);
            memset(st[j].s, 0, (size_t)layers[j].n_out);
        }
        for (int64_t t = 0; t < steps; t++) {
            const int64_t row = b * sb + t * st_;
            memcpy(x_row, x + row * layers[0].n_in, (size_t)layers[0].n_in);
            const uint8_t *s_in = x_row;
            for (int64_t j = 0; j < n_layers; j++) {
                const layer_t *L = &layers[j];
                state_t *S = &st[j];
                const int64_t n_out = L->n_out;
                if (L->lut) {
                    table_sums(L, s_in, S->acc);
                } else {
                    const int64_t n = spiking(s_in, L->n_in, S->events);
                    synaptic_sums(L, S->events, n, S->acc);
                }
                if (L->w_rec && t > 0) { /* the layer's own spikes of step t-1 (still in S->s), through W_rec */
                    const int64_t m = spiking(S->s, n_out, S->events);
                    memset(S->rec, 0, (size_t)n_out * sizeof(int32_t));
                    for (int64_t e = 0; e < m; e++) add_row(S->rec, L->w_rec + (int64_t)S->events[e] * n_out, n_out);
                    for (int64_t i = 0; i < n_out; i++) S->use[i] += exp_shift(S->rec[i], L->shift);
                }
                neurons(L, S);
                if (L->rec_s) memcpy(L->rec_s + row * n_out, S->s, (size_t)n_out);
                if (L->rec_u) memcpy(L->rec_u + row * n_out, S->u, (size_t)n_out * sizeof(int32_t));
                if (L->rec_v) memcpy(L->rec_v + row * n_out, S->v, (size_t)n_out * sizeof(int32_t));
                /* this step's sums become the next step's input */
                int32_t *restrict use = S->use;
                const int32_t *restrict acc = S->acc;
                if (L->wrap) {
                    for (int64_t i = 0; i < n_out; i++) use[i] = ((acc[i] + HALF) & (FULL - 1)) - HALF;
                } else {
                    for (int64_t i = 0; i < n_out; i++) use[i] = exp_shift(acc[i], L->shift);
                }
                s_in = S->s;
            }
        }
    }
    free(st);
    free(buf);
    return 0;
}

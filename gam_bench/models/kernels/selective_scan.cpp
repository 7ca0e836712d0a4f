// Mamba's selective scan on the CPU: one fused kernel for the forward, one for the backward, and
// one decode step. Loaded with ctypes by gam_bench/models/cpu_scan.py, which owns shapes, dtypes
// and autograd; plain C++ on raw pointers (no torch headers), so it compiles in about a second.
//
// Per batch b, time t, channel d and state n (mamba_ssm's selective_scan_ref):
//     delta = softplus(dt + bias[d])   (or dt + bias, without softplus)
//     a = exp(delta A[d, n]),  h_t[n] = a h_{t-1}[n] + delta u B_t[n],  ys = sum_n C_t[n] h_t[n]
//     out = (ys + D[d] u) * silu(z)    (or without the gate)
//
// Layout: time-major, channels innermost: u, dt, z, out and their gradients are (Bsz, L, D) with
// strides (sb, st, 1), B and C (Bsz, L, N) with strides (sb, st, 1): what nn.Linear produces, so
// the caller passes views, no copies. Lanes run over W channels (one GCC vector): the state of
// a block of W channels is N vectors, the scan is vertical FMAs, the sum over n needs no
// horizontal adds, and delta, the skip and the gate are vector ops. D must be a multiple of W
// (the caller pads). A is passed transposed, (N, D). Internal states are (N, D) per batch.
//
// Time is walked in chunks of K steps. Forward stores the state entering each chunk, (Bsz,
// n_chunks, N, D). Backward goes through the chunks in reverse, recomputes each channel
// block's decays and states from that entry state (K x N vectors), then runs the adjoint
//     g_t = gys_t C_t + a_{t+1} g_{t+1}
// backwards through the chunk. dB and dC sum over channels: each chunk accumulates them per
// lane and sums the lanes once per chunk.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int W = 16;  // float lanes: 64 bytes (one AVX-512 register, two AVX2 ones)
typedef float VF __attribute__((vector_size(W * sizeof(float))));
typedef int32_t VI __attribute__((vector_size(W * sizeof(int32_t))));

// exp of W floats: Cephes' expf (range reduction by ln 2, degree-5 polynomial, scaling by 2^n
// through the exponent bits), about 1 ulp; x clamped to [-87.3, 88.7] (no inf, no denormals).
inline VF vexp(VF x) {
    x = x < -87.3f ? VF{} - 87.3f : x;
    x = x > 88.7f ? VF{} + 88.7f : x;
    VF fx = x * 1.44269504088896341f + 0.5f;
    VF n = __builtin_convertvector(__builtin_convertvector(fx, VI), VF);
    n = n > fx ? n - 1.0f : n;  // floor
    VF r = x - n * 0.693359375f + n * 2.12194440e-4f;
    VF p = VF{} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    VI bits = (__builtin_convertvector(n, VI) + 127) << 23;
    VF scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

// log of W positive floats: Cephes' logf (exponent from the bits, mantissa in [sqrt(1/2),
// sqrt(2)), degree-8 polynomial), about 1 ulp.
inline VF vlog(VF x) {
    VI bits;
    std::memcpy(&bits, &x, sizeof bits);
    VI e = ((bits >> 23) & 0xff) - 126;
    VI mbits = (bits & 0x807fffff) | 0x3f000000;  // mantissa scaled into [0.5, 1)
    VF m;
    std::memcpy(&m, &mbits, sizeof m);
    VF ef = __builtin_convertvector(e, VF);
    const auto small = m < 0.707106781186547524f;
    ef = small ? ef - 1.0f : ef;
    m = small ? m + m - 1.0f : m - 1.0f;
    VF z = m * m;
    VF p = VF{} + 7.0376836292e-2f;
    p = p * m - 1.1514610310e-1f;
    p = p * m + 1.1676998740e-1f;
    p = p * m - 1.2420140846e-1f;
    p = p * m + 1.4249322787e-1f;
    p = p * m - 1.6668057665e-1f;
    p = p * m + 2.0000714765e-1f;
    p = p * m - 2.4999993993e-1f;
    p = p * m + 3.3333331174e-1f;
    VF y = p * m * z;
    y += ef * -2.12194440e-4f;
    y -= 0.5f * z;
    return m + y + ef * 0.693359375f;
}

inline double vexp(double x) { return std::exp(x); }

// softplus as torch's (beta 1, threshold 20), and its derivative, the sigmoid.
inline VF softplus(VF x) { return x > 20.0f ? x : vlog(1.0f + vexp(x)); }
inline double softplus(double x) { return x > 20.0 ? x : std::log1p(std::exp(x)); }
template <typename V>
inline V sigmoid(V x) {
    return 1.0f / (1.0f + vexp(-x));
}
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Lanes per vector type: W floats, or 1 double (float64 runs for gradcheck, not for speed).
template <typename V>
struct Lanes;
template <>
struct Lanes<VF> {
    typedef float T;
    static constexpr int n = W;
};
template <>
struct Lanes<double> {
    typedef double T;
    static constexpr int n = 1;
};

template <typename V, typename T>
inline V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

template <typename V, typename T>
inline void store(T* p, V v) {
    std::memcpy(p, &v, sizeof v);
}

template <typename V>
inline typename Lanes<V>::T lane_sum(V v) {
    if constexpr (Lanes<V>::n == 1) {
        return v;
    } else {
        typename Lanes<V>::T s = 0;
        for (int i = 0; i < Lanes<V>::n; ++i) s += v[i];
        return s;
    }
}

// Everything a scan call needs; pointers not used by a call are null. Mirrored by
// cpu_scan.py's ctypes Structure: keep the two in the same order.
struct ScanArgs {
    const void *u, *dt, *A_t, *B, *C, *D, *bias, *z;  // A_t: (N, D)
    int64_t su[2], sdt[2], sB[2], sC[2], sz[2];        // (batch, time) strides; channel/state stride 1
    void *out, *entry, *last;                          // out (Bsz, L, D) contiguous; last (Bsz, N, D)
    const void* gout;                                  // (Bsz, L, D) contiguous
    void *gu, *gdt, *gA_t, *gB, *gC, *gD, *gbias, *gz;  // gu, gdt, gz (Bsz, L, D); gB, gC (Bsz, L, N)
    int64_t batch, length, dim, n_state, chunk, softplus, gate;
};

template <typename V>
struct Scan {
    typedef typename Lanes<V>::T T;
    static constexpr int LW = Lanes<V>::n;
    const ScanArgs& a;
    const int64_t L, D, N, K, n_chunks;

    explicit Scan(const ScanArgs& args)
        : a(args),
          L(args.length),
          D(args.dim),
          N(args.n_state),
          K(args.chunk),
          n_chunks((args.length + args.chunk - 1) / args.chunk) {}

    const T* p(const void* ptr) const { return static_cast<const T*>(ptr); }
    T* w(void* ptr) const { return static_cast<T*>(ptr); }

    // delta (and the sigmoid of dt + bias, softplus's derivative) of channels d.. at (b, t).
    V delta(int64_t b, int64_t t, int64_t d, V* sig) const {
        V x = load<V>(p(a.dt) + b * a.sdt[0] + t * a.sdt[1] + d) + load<V>(p(a.bias) + d);
        if (!a.softplus) return x;
        if (sig) *sig = sigmoid(x);
        return softplus(x);
    }

    void forward() const {
        std::vector<V> h(N);
        for (int64_t b = 0; b < a.batch; ++b) {
            for (int64_t d = 0; d < D; d += LW) {
                std::fill(h.begin(), h.end(), V{});
                const V Dd = load<V>(p(a.D) + d);
                for (int64_t c = 0; c < n_chunks; ++c) {
                    for (int64_t n = 0; n < N; ++n) store(w(a.entry) + ((b * n_chunks + c) * N + n) * D + d, h[n]);
                    const int64_t lo = c * K, hi = std::min(lo + K, L);
                    for (int64_t t = lo; t < hi; ++t) {
                        const V dl = delta(b, t, d, nullptr);
                        const V u = load<V>(p(a.u) + b * a.su[0] + t * a.su[1] + d);
                        const V du = dl * u;
                        const T* Bt = p(a.B) + b * a.sB[0] + t * a.sB[1];
                        const T* Ct = p(a.C) + b * a.sC[0] + t * a.sC[1];
                        V ys{};
                        for (int64_t n = 0; n < N; ++n) {
                            h[n] = vexp(dl * load<V>(p(a.A_t) + n * D + d)) * h[n] + du * Bt[n];
                            ys += Ct[n] * h[n];
                        }
                        V o = ys + Dd * u;
                        if (a.gate) {
                            const V z = load<V>(p(a.z) + b * a.sz[0] + t * a.sz[1] + d);
                            o *= z * sigmoid(z);
                        }
                        store(w(a.out) + (b * L + t) * D + d, o);
                    }
                }
                for (int64_t n = 0; n < N; ++n) store(w(a.last) + (b * N + n) * D + d, h[n]);
            }
        }
    }

    void backward() const {
        std::vector<V> hs((K + 1) * N), as(K * N), dls(K), sigs(K), gys(K), g(N);
        std::vector<V> carry(D / LW * N);            // a_{t+1} g_{t+1} per channel block, at the chunk start
        std::vector<V> gB_lanes(K * N), gC_lanes(K * N);  // per-lane partial sums over channel blocks
        std::vector<V> gA(N * D / LW);
        std::fill(gA.begin(), gA.end(), V{});
        std::vector<V> gD(D / LW), gbias(D / LW);
        std::fill(gD.begin(), gD.end(), V{});
        std::fill(gbias.begin(), gbias.end(), V{});
        for (int64_t b = 0; b < a.batch; ++b) {
            std::fill(carry.begin(), carry.end(), V{});
            for (int64_t c = n_chunks - 1; c >= 0; --c) {
                const int64_t lo = c * K, hi = std::min(lo + K, L);
                std::fill(gB_lanes.begin(), gB_lanes.end(), V{});
                std::fill(gC_lanes.begin(), gC_lanes.end(), V{});
                for (int64_t d = 0; d < D; d += LW) {
                    const int64_t blk = d / LW;
                    recompute(b, c, d, lo, hi, hs.data(), as.data(), dls.data(), sigs.data(), gys.data(), gD[blk]);
                    adjoint(b, d, lo, hi, hs.data(), as.data(), dls.data(), sigs.data(), gys.data(),
                            carry.data() + blk * N, gA.data(), gbias[blk], gB_lanes.data(), gC_lanes.data());
                }
                for (int64_t t = lo; t < hi; ++t) {
                    for (int64_t n = 0; n < N; ++n) {
                        w(a.gB)[(b * L + t) * N + n] = lane_sum(gB_lanes[(t - lo) * N + n]);
                        w(a.gC)[(b * L + t) * N + n] = lane_sum(gC_lanes[(t - lo) * N + n]);
                    }
                }
            }
        }
        for (int64_t d = 0; d < D; d += LW) {
            for (int64_t n = 0; n < N; ++n) store(w(a.gA_t) + n * D + d, gA[n * (D / LW) + d / LW]);
            store(w(a.gD) + d, gD[d / LW]);
            store(w(a.gbias) + d, gbias[d / LW]);
        }
    }

    // Steps lo..hi-1 of channels d..: decays as[t-lo][n], states hs[t-lo+1][n] (hs[0]: entry),
    // delta, its sigmoid, dL/dys into gys, dL/dz straight into gz; adds dL/dD into gD.
    void recompute(int64_t b, int64_t c, int64_t d, int64_t lo, int64_t hi, V* hs, V* as, V* dls, V* sigs, V* gys,
                   V& gD) const {
        for (int64_t n = 0; n < N; ++n) hs[n] = load<V>(p(a.entry) + ((b * n_chunks + c) * N + n) * D + d);
        const V Dd = load<V>(p(a.D) + d);
        for (int64_t t = lo; t < hi; ++t) {
            const int64_t i = t - lo;
            const V dl = delta(b, t, d, sigs + i);
            const V u = load<V>(p(a.u) + b * a.su[0] + t * a.su[1] + d);
            const V du = dl * u;
            const T* Bt = p(a.B) + b * a.sB[0] + t * a.sB[1];
            const T* Ct = p(a.C) + b * a.sC[0] + t * a.sC[1];
            V ys{};
            for (int64_t n = 0; n < N; ++n) {
                const V an = vexp(dl * load<V>(p(a.A_t) + n * D + d));
                const V hn = an * hs[i * N + n] + du * Bt[n];
                as[i * N + n] = an;
                hs[(i + 1) * N + n] = hn;
                ys += Ct[n] * hn;
            }
            dls[i] = dl;
            V go = load<V>(p(a.gout) + (b * L + t) * D + d);
            if (a.gate) {
                const V z = load<V>(p(a.z) + b * a.sz[0] + t * a.sz[1] + d);
                const V sz = sigmoid(z);
                const V gz = go * (ys + Dd * u) * sz * (1.0f + z * (1.0f - sz));  // d silu(z) / dz
                store(w(a.gz) + (b * L + t) * D + d, gz);
                go *= z * sz;
            }
            gys[i] = go;
            gD += go * u;
        }
    }

    // The adjoint backwards through steps hi-1..lo of channels d..; g_next (N vectors) holds
    // a_{t+1} g_{t+1} on entry and a_lo g_lo on exit.
    void adjoint(int64_t b, int64_t d, int64_t lo, int64_t hi, const V* hs, const V* as, const V* dls,
                 const V* sigs, const V* gys, V* g_next, V* gA, V& gbias, V* gB_lanes, V* gC_lanes) const {
        const int64_t blocks = D / LW, blk = d / LW;
        const V Dd = load<V>(p(a.D) + d);
        for (int64_t t = hi - 1; t >= lo; --t) {
            const int64_t i = t - lo;
            const V dl = dls[i], gy = gys[i];
            const V u = load<V>(p(a.u) + b * a.su[0] + t * a.su[1] + d);
            const V du = dl * u;
            const T* Bt = p(a.B) + b * a.sB[0] + t * a.sB[1];
            const T* Ct = p(a.C) + b * a.sC[0] + t * a.sC[1];
            V gb{}, gda{};
            for (int64_t n = 0; n < N; ++n) {
                const V an = as[i * N + n];
                const V g = gy * Ct[n] + g_next[n];  // dL/dh_t
                const V q = g * an * hs[i * N + n];  // dL/d(delta A), before the chain to delta
                const V An = load<V>(p(a.A_t) + n * D + d);
                gb += g * Bt[n];
                gda += q * An;
                gA[n * blocks + blk] += q * dl;
                gB_lanes[i * N + n] += g * du;
                gC_lanes[i * N + n] += gy * hs[(i + 1) * N + n];
                g_next[n] = an * g;
            }
            store(w(a.gu) + (b * L + t) * D + d, gb * dl + gy * Dd);
            V gdl = gb * u + gda;
            if (a.softplus) gdl *= sigs[i];
            gbias += gdl;
            store(w(a.gdt) + (b * L + t) * D + d, gdl);
        }
    }
};

// Mamba's causal depthwise conv and its SiLU, time-major: x (Bsz, L, D) with strides (sb, st, 1),
// w_t (K, D) (the conv weight transposed), bias (D,), u (Bsz, L, D) contiguous:
//     u[t, d] = silu(bias[d] + sum_k w_t[k, d] x[t - (K-1) + k, d])   (x = 0 before t = 0)
// as torch's Conv1d(groups=D, padding=K-1)[..., :L]. Lanes over channels; D a multiple of W.
template <typename V>
struct Conv {
    typedef typename Lanes<V>::T T;
    static constexpr int LW = Lanes<V>::n;
    const T *x, *w_t, *bias;
    int64_t sb, st, batch, L, D, K;

    V pre(int64_t b, int64_t t, int64_t d) const {
        V acc = load<V>(bias + d);
        for (int64_t k = 0; k < K; ++k) {
            const int64_t s = t - (K - 1) + k;
            if (s >= 0) acc += load<V>(w_t + k * D + d) * load<V>(x + b * sb + s * st + d);
        }
        return acc;
    }

    void forward(T* u) const {
        for (int64_t b = 0; b < batch; ++b)
            for (int64_t t = 0; t < L; ++t)
                for (int64_t d = 0; d < D; d += LW) {
                    const V p = pre(b, t, d);
                    store(u + (b * L + t) * D + d, p * sigmoid(p));
                }
    }

    // gu (Bsz, L, D) contiguous -> gx (Bsz, L, D) contiguous, gw_t (K, D), gbias (D,).
    void backward(const T* gu, T* gx, T* gw_t, T* gbias) const {
        std::vector<V> gw(K * D / LW), gb(D / LW);
        std::fill(gw.begin(), gw.end(), V{});
        std::fill(gb.begin(), gb.end(), V{});
        std::memset(gx, 0, sizeof(T) * batch * L * D);
        for (int64_t b = 0; b < batch; ++b)
            for (int64_t t = 0; t < L; ++t)
                for (int64_t d = 0; d < D; d += LW) {
                    const V p = pre(b, t, d), sg = sigmoid(p);
                    const V gp = load<V>(gu + (b * L + t) * D + d) * sg * (1.0f + p * (1.0f - sg));
                    gb[d / LW] += gp;
                    for (int64_t k = 0; k < K; ++k) {
                        const int64_t s = t - (K - 1) + k;
                        if (s < 0) continue;
                        T* gx_s = gx + (b * L + s) * D + d;
                        store(gx_s, load<V>(gx_s) + gp * load<V>(w_t + k * D + d));
                        gw[k * (D / LW) + d / LW] += gp * load<V>(x + b * sb + s * st + d);
                    }
                }
        for (int64_t d = 0; d < D; d += LW) {
            for (int64_t k = 0; k < K; ++k) store(gw_t + k * D + d, gw[k * (D / LW) + d / LW]);
            store(gbias + d, gb[d / LW]);
        }
    }
};

// One decode step, in place on state (Bsz, D, N): delta = softplus(dt + dt_bias), the state
// update, y = (C . h + D u) * silu(z). u, dt, z, y (Bsz, D); Bv, Cv (Bsz, N); A (D, N).
template <typename T>
void scan_step(const T* u, const T* dt, const T* dt_bias, const T* A, const T* Bv, const T* Cv, const T* Dv,
               const T* z, T* state, T* y, int64_t batch, int64_t dim, int64_t N) {
    for (int64_t b = 0; b < batch; ++b) {
        for (int64_t d = 0; d < dim; ++d) {
            const int64_t i = b * dim + d;
            const T delta = softplus(double(dt[i] + dt_bias[d]));
            const T du = delta * u[i];
            T* h = state + i * N;
            T acc = 0;
            for (int64_t n = 0; n < N; ++n) {
                h[n] = std::exp(delta * A[d * N + n]) * h[n] + du * Bv[b * N + n];
                acc += Cv[b * N + n] * h[n];
            }
            y[i] = (acc + Dv[d] * u[i]) * (z[i] / (T(1) + std::exp(-z[i])));
        }
    }
}

}  // namespace

extern "C" {

int64_t scan_lanes_f32() { return W; }

#define GAM_CONV_EXPORT(T, V, suffix)                                                                        \
    void conv_silu_forward_##suffix(const T* x, int64_t sb, int64_t st, const T* w_t, const T* bias, T* u,     \
                                    int64_t batch, int64_t L, int64_t D, int64_t K) {                          \
        Conv<V>{x, w_t, bias, sb, st, batch, L, D, K}.forward(u);                                               \
    }                                                                                                          \
    void conv_silu_backward_##suffix(const T* x, int64_t sb, int64_t st, const T* w_t, const T* bias,          \
                                     const T* gu, T* gx, T* gw_t, T* gbias, int64_t batch, int64_t L,          \
                                     int64_t D, int64_t K) {                                                   \
        Conv<V>{x, w_t, bias, sb, st, batch, L, D, K}.backward(gu, gx, gw_t, gbias);                            \
    }
GAM_CONV_EXPORT(float, VF, f32)
GAM_CONV_EXPORT(double, double, f64)

void scan_forward_f32(const ScanArgs* args) { Scan<VF>(*args).forward(); }
void scan_backward_f32(const ScanArgs* args) { Scan<VF>(*args).backward(); }
void scan_forward_f64(const ScanArgs* args) { Scan<double>(*args).forward(); }
void scan_backward_f64(const ScanArgs* args) { Scan<double>(*args).backward(); }

void scan_step_f32(const float* u, const float* dt, const float* dt_bias, const float* A, const float* Bv,
                   const float* Cv, const float* Dv, const float* z, float* state, float* y, int64_t batch,
                   int64_t dim, int64_t n) {
    scan_step<float>(u, dt, dt_bias, A, Bv, Cv, Dv, z, state, y, batch, dim, n);
}

void scan_step_f64(const double* u, const double* dt, const double* dt_bias, const double* A, const double* Bv,
                   const double* Cv, const double* Dv, const double* z, double* state, double* y, int64_t batch,
                   int64_t dim, int64_t n) {
    scan_step<double>(u, dt, dt_bias, A, Bv, Cv, Dv, z, state, y, batch, dim, n);
}

}  // extern "C"

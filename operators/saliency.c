/*
 * The pixel loops of the classical saliency maps (operators/saliency.ts), compiled to
 * WebAssembly by models/kernels/build.mjs (`npm run build:kernels`) into saliency-wasm.ts.
 *
 * Every function here gives the same bits as the JavaScript it replaced, so maps, masks and
 * every run that uses them are unchanged: each value is computed in double precision with the
 * same operations in the same order, and rounded to float32 where the JavaScript stored into a
 * Float32Array. Math.cbrt is V8's port of fdlibm's cbrt; `ieee_cbrt` is the same algorithm, so
 * it rounds the same way (test/saliency-wasm.test.ts checks both against JavaScript).
 *
 * Everything a function touches is passed in: no globals, no stack, memory owned by the caller.
 */
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(name)))

typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;

static inline u64 bits_of(double x) {
  union { double d; u64 u; } v = { .d = x };
  return v.u;
}
static inline double of_bits(u64 u) {
  union { u64 u; double d; } v = { .u = u };
  return v.d;
}

/* fdlibm's cube root (the algorithm of V8's base::ieee754::cbrt, which Math.cbrt calls). */
static double ieee_cbrt(double x) {
  const u32 B1 = 715094163, B2 = 696219795;
  const double P0 = 1.87595182427177009643, P1 = -1.88497979543377169875, P2 = 1.621429720105354466140,
               P3 = -0.758397934778766047437, P4 = 0.145996192886612446982;
  const u64 ux = bits_of(x);
  u32 hx = (u32)(ux >> 32);
  const u32 low = (u32)ux;
  const u32 sign = hx & 0x80000000u;
  hx ^= sign;
  if (hx >= 0x7ff00000u) return x + x; /* NaN, ±Infinity */
  double t;
  if (hx < 0x00100000u) { /* zero or subnormal */
    if ((hx | low) == 0) return x;
    t = of_bits((u64)0x43500000u << 32) * x; /* x·2⁵⁴ */
    const u32 high = (u32)(bits_of(t) >> 32);
    t = of_bits((u64)(sign | ((high & 0x7fffffffu) / 3 + B2)) << 32);
  } else {
    t = of_bits((u64)(sign | (hx / 3 + B1)) << 32);
  }
  double r = (t * t) * (t / x);
  t = t * ((P0 + r * (P1 + r * P2)) + ((r * r) * r) * (P3 + r * P4));
  t = of_bits((bits_of(t) + 0x80000000ull) & 0xffffffffc0000000ull);
  const double s = t * t;
  r = x / s;
  const double w = t + t;
  r = (r - t) / (w + r);
  return t + t * r;
}

/* cbrt for the Lab conversion, exported so a test can compare it with Math.cbrt value for value. */
EXPORT("cube_root")
double cube_root(double x) { return ieee_cbrt(x); }

static inline double lab_f(double t) { return t > 0.008856 ? ieee_cbrt(t) : 7.787 * t + 16.0 / 116.0; }

/*
 * ieee_cbrt in two f64x2 lanes, for positive normal x (the only lanes whose result lab_f2 keeps):
 * the same operations lane by lane, the integer `hx / 3` as (hx · 0xAAAAAAAB) >> 33, exact for
 * every 32-bit hx.
 */
static inline v128_t cbrt2(v128_t x) {
  const double P0 = 1.87595182427177009643, P1 = -1.88497979543377169875, P2 = 1.621429720105354466140,
               P3 = -0.758397934778766047437, P4 = 0.145996192886612446982;
  const v128_t hx = wasm_u64x2_shr(x, 32);
  const v128_t third = wasm_u64x2_shr(wasm_i64x2_mul(hx, wasm_i64x2_splat(0xAAAAAAABll)), 33);
  v128_t t = wasm_i64x2_shl(wasm_i64x2_add(third, wasm_i64x2_splat(715094163)), 32);
  v128_t r = wasm_f64x2_mul(wasm_f64x2_mul(t, t), wasm_f64x2_div(t, x));
  const v128_t inner = wasm_f64x2_add(wasm_f64x2_splat(P0), wasm_f64x2_mul(r, wasm_f64x2_add(wasm_f64x2_splat(P1), wasm_f64x2_mul(r, wasm_f64x2_splat(P2)))));
  const v128_t outer = wasm_f64x2_mul(wasm_f64x2_mul(wasm_f64x2_mul(r, r), r), wasm_f64x2_add(wasm_f64x2_splat(P3), wasm_f64x2_mul(r, wasm_f64x2_splat(P4))));
  t = wasm_f64x2_mul(t, wasm_f64x2_add(inner, outer));
  t = wasm_v128_and(wasm_i64x2_add(t, wasm_i64x2_splat(0x80000000ll)), wasm_i64x2_splat((long long)0xffffffffc0000000ull));
  const v128_t sq = wasm_f64x2_mul(t, t);
  r = wasm_f64x2_div(x, sq);
  const v128_t w = wasm_f64x2_add(t, t);
  r = wasm_f64x2_div(wasm_f64x2_sub(r, t), wasm_f64x2_add(w, r));
  return wasm_f64x2_add(t, wasm_f64x2_mul(t, r));
}

/* lab_f in two lanes: where t > 0.008856 the cube root, elsewhere the linear segment. */
static inline v128_t lab_f2(v128_t t) {
  const v128_t linear = wasm_f64x2_add(wasm_f64x2_mul(wasm_f64x2_splat(7.787), t), wasm_f64x2_splat(16.0 / 116.0));
  return wasm_v128_bitselect(cbrt2(t), linear, wasm_f64x2_gt(t, wasm_f64x2_splat(0.008856)));
}

/*
 * The area-averaged downscale of 8-bit pixels to a w × h map of linear-light RGB (averaged in
 * linear light), then CIE Lab (D65), into `lab` [w·h·3]; the pixels arrive in bands of rows, so a
 * large image needs no copy of its own in this memory. geometry: source width, height, channels,
 * then w, h, and the band's first row and row count. `lab_band` adds a band (the first band,
 * row 0, clears the sums), `lab_finish` turns the sums into Lab once every band is in. `linear`
 * is the sRGB → linear table (256 floats); `counts` (w·h floats) and `column` (one int per
 * source column) are scratch kept between the calls. Bands in row order add each cell's pixels
 * in the order one pass would.
 */
EXPORT("lab_band")
void lab_band(const int* geometry, const u8* band, const float* linear, float* lab, float* counts, int* column) {
  const int sw = geometry[0], sh = geometry[1], c = geometry[2], w = geometry[3], h = geometry[4], y0 = geometry[5], rows = geometry[6];
  const int n = w * h;
  const int g = c == 3 ? 1 : 0, b = c == 3 ? 2 : 0;
  if (w == sw && h == sh) {
    /* One pixel per cell (a map at the image's own size): its linear values, as the average gives. */
    for (int m = y0 * w, i = 0; m < (y0 + rows) * w; m++, i += c) {
      lab[m * 3] = linear[band[i]];
      lab[m * 3 + 1] = linear[band[i + g]];
      lab[m * 3 + 2] = linear[band[i + b]];
    }
    return;
  }
  if (y0 == 0) {
    for (int m = 0; m < n * 3; m++) lab[m] = 0.0f;
    for (int m = 0; m < n; m++) counts[m] = 0.0f;
    for (int x = 0; x < sw; x++) {
      const int col = (int)(((long long)x * w) / sw);
      column[x] = col < w - 1 ? col : w - 1;
    }
  }
  for (int y = y0; y < y0 + rows; y++) {
    const int r = (int)(((long long)y * h) / sh);
    const int row = (r < h - 1 ? r : h - 1) * w;
    for (int x = 0, i = (y - y0) * sw * c; x < sw; x++, i += c) {
      const int m = row + column[x];
      lab[m * 3] += linear[band[i]];
      lab[m * 3 + 1] += linear[band[i + g]];
      lab[m * 3 + 2] += linear[band[i + b]];
      counts[m] += 1.0f;
    }
  }
}

EXPORT("lab_finish")
void lab_finish(const int* geometry, float* lab, const float* counts) {
  const int sw = geometry[0], sh = geometry[1], w = geometry[3], h = geometry[4];
  const int n = w * h;
  if (!(w == sw && h == sh)) {
    for (int m = 0; m < n; m++) {
      const double k = 1.0 / (counts[m] > 1.0f ? (double)counts[m] : 1.0);
      lab[m * 3] = (float)(lab[m * 3] * k);
      lab[m * 3 + 1] = (float)(lab[m * 3 + 1] * k);
      lab[m * 3 + 2] = (float)(lab[m * 3 + 2] * k);
    }
  }
  /* Two pixels a pass in f64x2 lanes, each the scalar code's operations; then the odd one. */
  int i = 0;
  for (; i + 3 < n * 3; i += 6) {
    const v128_t r = wasm_f64x2_make(lab[i], lab[i + 3]), gg = wasm_f64x2_make(lab[i + 1], lab[i + 4]),
                 bb = wasm_f64x2_make(lab[i + 2], lab[i + 5]);
#define MIX(a, b, c) wasm_f64x2_add(wasm_f64x2_add(wasm_f64x2_mul(wasm_f64x2_splat(a), r), wasm_f64x2_mul(wasm_f64x2_splat(b), gg)), wasm_f64x2_mul(wasm_f64x2_splat(c), bb))
    const v128_t fx = lab_f2(wasm_f64x2_div(MIX(0.4124, 0.3576, 0.1805), wasm_f64x2_splat(0.95047)));
    const v128_t fy = lab_f2(MIX(0.2126, 0.7152, 0.0722));
    const v128_t fz = lab_f2(wasm_f64x2_div(MIX(0.0193, 0.1192, 0.9505), wasm_f64x2_splat(1.08883)));
#undef MIX
    const v128_t l = wasm_f64x2_sub(wasm_f64x2_mul(wasm_f64x2_splat(116.0), fy), wasm_f64x2_splat(16.0));
    const v128_t a = wasm_f64x2_mul(wasm_f64x2_splat(500.0), wasm_f64x2_sub(fx, fy));
    const v128_t b = wasm_f64x2_mul(wasm_f64x2_splat(200.0), wasm_f64x2_sub(fy, fz));
    lab[i] = (float)wasm_f64x2_extract_lane(l, 0), lab[i + 3] = (float)wasm_f64x2_extract_lane(l, 1);
    lab[i + 1] = (float)wasm_f64x2_extract_lane(a, 0), lab[i + 4] = (float)wasm_f64x2_extract_lane(a, 1);
    lab[i + 2] = (float)wasm_f64x2_extract_lane(b, 0), lab[i + 5] = (float)wasm_f64x2_extract_lane(b, 1);
  }
  for (; i < n * 3; i += 3) {
    const double r = lab[i], gg = lab[i + 1], bb = lab[i + 2];
    const double fx = lab_f((0.4124 * r + 0.3576 * gg + 0.1805 * bb) / 0.95047);
    const double fy = lab_f(0.2126 * r + 0.7152 * gg + 0.0722 * bb);
    const double fz = lab_f((0.0193 * r + 0.1192 * gg + 0.9505 * bb) / 1.08883);
    lab[i] = (float)(116.0 * fy - 16.0);
    lab[i + 1] = (float)(500.0 * (fx - fy));
    lab[i + 2] = (float)(200.0 * (fy - fz));
  }
}

/* One pass of a 1-D kernel along rows or columns of a w × h × 3 image, edges clamped. */
static void blur_pass(const float* src, float* dst, int w, int h, const float* kernel, int taps, int vertical) {
  const int r = (taps - 1) / 2;
  const int n = vertical ? h : w, outers = vertical ? w : h;
  const int step = (vertical ? w : 1) * 3, across = (vertical ? 1 : w) * 3;
  for (int outer = 0; outer < outers; outer++) {
    const int base = outer * across;
    for (int k = 0; k < n; k++) {
      double a = 0.0, b = 0.0, c = 0.0;
      if (k >= r && k < n - r) {
        /* Channels 0 and 1 in the two lanes of an f64x2, each the scalar sum in its order. */
        v128_t ab = wasm_f64x2_splat(0.0);
        for (int t = 0, j = base + (k - r) * step; t < taps; t++, j += step) {
          const double wt = kernel[t];
          const v128_t pair = wasm_f64x2_promote_low_f32x4(wasm_v128_load64_zero(src + j));
          ab = wasm_f64x2_add(ab, wasm_f64x2_mul(wasm_f64x2_splat(wt), pair));
          c += wt * src[j + 2];
        }
        a = wasm_f64x2_extract_lane(ab, 0);
        b = wasm_f64x2_extract_lane(ab, 1);
      } else {
        for (int t = 0; t < taps; t++) {
          int q = k - r + t;
          q = q < 0 ? 0 : q;
          q = q > n - 1 ? n - 1 : q;
          const int j = base + q * step;
          const double wt = kernel[t];
          a += wt * src[j];
          b += wt * src[j + 1];
          c += wt * src[j + 2];
        }
      }
      const int o = base + k * step;
      dst[o] = (float)a;
      dst[o + 1] = (float)b;
      dst[o + 2] = (float)c;
    }
  }
}

/* Separable blur of a w × h × 3 image by `kernel` (`taps` floats, odd) along rows then columns, via `tmp`. */
EXPORT("blur3")
void blur3(const float* src, float* tmp, float* dst, int w, int h, const float* kernel, int taps) {
  blur_pass(src, tmp, w, h, kernel, taps, 0);
  blur_pass(tmp, dst, w, h, kernel, taps, 1);
}

static inline double d2(const float* lab, int p, int q) {
  const double l = (double)lab[p * 3] - (double)lab[q * 3];
  const double a = (double)lab[p * 3 + 1] - (double)lab[q * 3 + 1];
  const double b = (double)lab[p * 3 + 2] - (double)lab[q * 3 + 2];
  return l * l + a * a + b * b;
}

/*
 * Boundary contrast on a w × h Lab map: `k` border colours picked by farthest-point sampling
 * (from the first border pixel), each pixel's distance to the nearest, min–max normalised into
 * `out` [w·h]. Scratch: `border` and `nearest` 2·(w + h) each, `colours` 3·k doubles.
 * Returns the number of colours used (k or fewer on a tiny map).
 */
EXPORT("boundary_contrast")
int boundary_contrast(const float* lab, int w, int h, int k, int* border, double* nearest, double* colours, float* out) {
  int count = 0;
  for (int x = 0; x < w; x++) {
    border[count++] = x;
    border[count++] = (h - 1) * w + x;
  }
  for (int y = 1; y < h - 1; y++) {
    border[count++] = y * w;
    border[count++] = y * w + w - 1;
  }
  if (k > count) k = count;
  int centre = border[0];
  for (int i = 0; i < count; i++) nearest[i] = d2(lab, border[i], centre);
  colours[0] = lab[centre * 3];
  colours[1] = lab[centre * 3 + 1];
  colours[2] = lab[centre * 3 + 2];
  for (int j = 1; j < k; j++) {
    int best = 0;
    for (int i = 1; i < count; i++)
      if (nearest[i] > nearest[best]) best = i;
    centre = border[best];
    colours[j * 3] = lab[centre * 3];
    colours[j * 3 + 1] = lab[centre * 3 + 1];
    colours[j * 3 + 2] = lab[centre * 3 + 2];
    for (int i = 0; i < count; i++) {
      const double e = d2(lab, border[i], centre);
      if (e < nearest[i]) nearest[i] = e;
    }
  }
  const double inf = 1.0 / 0.0;
  const int n = w * h;
  /* Two pixels a pass, one per f64x2 lane: each lane does the scalar loop's operations in its
     order (pmin(d, e) is `e < d ? e : d`), so the values are the scalar loop's. */
  int p = 0;
  for (; p + 1 < n; p += 2) {
    const float* q = lab + p * 3;
    const v128_t l = wasm_f64x2_make(q[0], q[3]), a = wasm_f64x2_make(q[1], q[4]), b = wasm_f64x2_make(q[2], q[5]);
    v128_t d = wasm_f64x2_splat(inf);
    for (int j = 0; j < k * 3; j += 3) {
      const v128_t dl = wasm_f64x2_sub(l, wasm_f64x2_splat(colours[j]));
      const v128_t da = wasm_f64x2_sub(a, wasm_f64x2_splat(colours[j + 1]));
      const v128_t db = wasm_f64x2_sub(b, wasm_f64x2_splat(colours[j + 2]));
      const v128_t e = wasm_f64x2_add(wasm_f64x2_add(wasm_f64x2_mul(dl, dl), wasm_f64x2_mul(da, da)), wasm_f64x2_mul(db, db));
      d = wasm_f64x2_pmin(d, e);
    }
    d = wasm_f64x2_sqrt(d);
    out[p] = (float)wasm_f64x2_extract_lane(d, 0);
    out[p + 1] = (float)wasm_f64x2_extract_lane(d, 1);
  }
  for (; p < n; p++) {
    const double l = lab[p * 3], a = lab[p * 3 + 1], b = lab[p * 3 + 2];
    double d = inf;
    for (int j = 0; j < k * 3; j += 3) {
      const double dl = l - colours[j], da = a - colours[j + 1], db = b - colours[j + 2];
      const double e = dl * dl + da * da + db * db;
      if (e < d) d = e;
    }
    out[p] = (float)__builtin_sqrt(d);
  }
  double lo = inf, hi = -inf;
  for (int i = 0; i < n; i++) {
    const double v = out[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const double span = hi - lo;
  for (int p = 0; p < w * h; p++) out[p] = span > 0.0 ? (float)((out[p] - lo) / span) : 0.0f;
  return k;
}

/*
 * Labels the 4-connected components of pixels equal to `target` in `mask` (w × h) into `labels`
 * (0 = another value; components numbered from 1 in scan order) and their sizes into `sizes`
 * (`sizes[0]` unused). `stack` holds w·h ints. Returns the number of components.
 */
static int components(const u8* mask, int w, int h, u8 target, int* labels, int* sizes, int* stack) {
  const int n = w * h;
  int count = 0;
  for (int p = 0; p < n; p++) labels[p] = 0;
  for (int start = 0; start < n; start++) {
    if (mask[start] != target || labels[start] != 0) continue;
    const int id = ++count;
    int size = 0, top = 0;
    labels[start] = id;
    stack[top++] = start;
    while (top > 0) {
      const int p = stack[--top];
      size++;
      const int x = p % w;
      if (x > 0 && mask[p - 1] == target && labels[p - 1] == 0) labels[p - 1] = id, stack[top++] = p - 1;
      if (x < w - 1 && mask[p + 1] == target && labels[p + 1] == 0) labels[p + 1] = id, stack[top++] = p + 1;
      if (p >= w && mask[p - w] == target && labels[p - w] == 0) labels[p - w] = id, stack[top++] = p - w;
      if (p < w * (h - 1) && mask[p + w] == target && labels[p + w] == 0) labels[p + w] = id, stack[top++] = p + w;
    }
    sizes[id] = size;
  }
  return count;
}

/*
 * The foreground mask of an attention map (foreground-mask.ts's maskFromAttention): the map
 * min–max normalised, thresholded by Otsu's method (256 bins), then cleaned: foreground
 * components smaller than `min_area`·w·h dropped, background regions that do not touch the
 * border filled. An unusable map (not finite, nowhere positive, or constant) gives all
 * foreground; returns 0 then, else 1. Scratch: `norm` w·h floats, `bins` 256 doubles, `labels`,
 * `stack` and `sizes` w·h (+1) ints, `touches` w·h + 1 bytes.
 */
EXPORT("mask_from_map")
int mask_from_map(const float* data, int w, int h, double min_area, u8* out, float* norm, double* bins, int* labels, int* stack,
                  int* sizes, u8* touches) {
  const int n = w * h;
  const double inf = 1.0 / 0.0;
  double lo = inf, hi = -inf;
  for (int i = 0; i < n; i++) {
    const double v = data[i];
    if (!(v - v == 0.0)) { /* NaN or ±Infinity */
      for (int p = 0; p < n; p++) out[p] = 1;
      return 0;
    }
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!(hi > 0.0 && hi - lo > 1e-6)) {
    for (int p = 0; p < n; p++) out[p] = 1;
    return 0;
  }
  for (int i = 0; i < n; i++) norm[i] = (float)((data[i] - lo) / (hi - lo));
  /* Otsu: the threshold maximising the between-class variance. */
  for (int i = 0; i < 256; i++) bins[i] = 0.0;
  for (int i = 0; i < n; i++) {
    double b = __builtin_floor((double)norm[i] * 256.0);
    b = b > 0.0 ? b : 0.0;
    b = b < 255.0 ? b : 255.0;
    bins[(int)b] += 1.0;
  }
  double sum_all = 0.0;
  for (int i = 0; i < 256; i++) sum_all += i * bins[i];
  double weight_b = 0.0, sum_b = 0.0, best = 0.0, threshold = 0.5;
  for (int i = 0; i < 256; i++) {
    weight_b += bins[i];
    if (weight_b == 0.0) continue;
    const double weight_f = n - weight_b;
    if (weight_f == 0.0) break;
    sum_b += i * bins[i];
    const double gap = sum_b / weight_b - (sum_all - sum_b) / weight_f;
    const double between = weight_b * weight_f * (gap * gap);
    if (between > best) {
      best = between;
      threshold = (i + 1) / 256.0;
    }
  }
  for (int i = 0; i < n; i++) out[i] = norm[i] >= threshold ? 1 : 0;
  /* Small foreground components dropped, enclosed background filled. */
  components(out, w, h, 1, labels, sizes, stack);
  for (int p = 0; p < n; p++)
    if (labels[p] > 0 && sizes[labels[p]] < min_area * w * h) out[p] = 0;
  const int regions = components(out, w, h, 0, labels, sizes, stack);
  for (int r = 0; r <= regions; r++) touches[r] = 0;
  for (int x = 0; x < w; x++) touches[labels[x]] = 1, touches[labels[(h - 1) * w + x]] = 1;
  for (int y = 0; y < h; y++) touches[labels[y * w]] = 1, touches[labels[y * w + w - 1]] = 1;
  for (int p = 0; p < n; p++)
    if (out[p] == 0 && !touches[labels[p]]) out[p] = 1;
  return 1;
}

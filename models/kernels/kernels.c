/*
 * densestream's own WebAssembly SIMD kernels for the tfjs wasm backend.
 *
 * Built by `npm run build:kernels` (scripts/build-kernels.sh) with Debian's clang/lld into
 * models/kernels/kernels-wasm.ts. The module imports the backend's own memory, so kernels read
 * and write tfjs tensors where they live: no copies. It has no data, no globals it writes and no
 * stack frames (the build checks), so it cannot touch memory it was not handed.
 *
 * Every kernel takes (part, parts) and does a disjoint share of the work: the main thread runs
 * part 0 while worker threads run the others on the same (shared) memory.
 */
#include <wasm_simd128.h>

#define INLINE static inline __attribute__((always_inline))

/*
 * a·b + c in the products' inner loops. Built with relaxed SIMD (the `relaxed` variants), one
 * fused multiply-add where the CPU has it, rounded once; otherwise a multiply, then an add.
 */
#ifdef __wasm_relaxed_simd__
#define MADD(a, b, c) wasm_f32x4_relaxed_madd((a), (b), (c))
#else
#define MADD(a, b, c) wasm_f32x4_add(wasm_f32x4_mul((a), (b)), (c))
#endif

/* Pixels of dy/x streamed per pass, sized so both slices stay in L2 (≈128 KiB). */
#ifndef CHUNK_BYTES
#define CHUNK_BYTES (128 * 1024)
#endif

typedef struct {
  int batch, in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w;
  int stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
} conv_t;

/*
 * One register tile of the filter gradient: rows c0..c0+CR of tap (p,q) times output
 * channels o0..o0+4·OV, accumulated over output rows [r0,r1) (row = b·Ho + i).
 * dw[p,q,c,o] += Σ x[b, i·s+p·d−pad, j·s+q·d−pad, c] · dy[b,i,j,o]
 */
INLINE void filter_tile(const conv_t* g, const float* x, const float* dy, float* dw,
                        int p, int q, int c0, int o0, int r0, int r1, const int CR, const int OV) {
  v128_t acc[4][2];
  float* out = dw + ((p * g->k_w + q) * g->in_c + c0) * g->out_c + o0;
  for (int r = 0; r < CR; r++)
    for (int v = 0; v < OV; v++) acc[r][v] = wasm_v128_load(out + r * g->out_c + 4 * v);
  const int xs = g->stride_w * g->in_c;
  /* Output columns j whose tap column j·s + q·d − pad lies inside the image. */
  const int off = q * g->dil_w - g->pad_left;
  int jlo = off >= 0 ? 0 : (-off + g->stride_w - 1) / g->stride_w;
  int jhi = (g->in_w - off + g->stride_w - 1) / g->stride_w;
  if (jhi > g->out_w) jhi = g->out_w;
  for (int row = r0; row < r1; row++) {
    const int b = row / g->out_h, i = row - b * g->out_h;
    const int ih = i * g->stride_h + p * g->dil_h - g->pad_top;
    if (ih < 0 || ih >= g->in_h || jlo >= jhi) continue;
    const float* xp = x + ((b * g->in_h + ih) * g->in_w + jlo * g->stride_w + off) * g->in_c + c0;
    const float* dp = dy + (row * g->out_w + jlo) * g->out_c + o0;
    for (int j = jlo; j < jhi; j++, xp += xs, dp += g->out_c) {
      v128_t d[2];
      for (int v = 0; v < OV; v++) d[v] = wasm_v128_load(dp + 4 * v);
      for (int r = 0; r < CR; r++) {
        const v128_t a = wasm_v128_load32_splat(xp + r);
        for (int v = 0; v < OV; v++) acc[r][v] = MADD(a, d[v], acc[r][v]);
      }
    }
  }
  for (int r = 0; r < CR; r++)
    for (int v = 0; v < OV; v++) wasm_v128_store(out + r * g->out_c + 4 * v, acc[r][v]);
}

/* The output channels past the last multiple of 4, one channel at a time. */
INLINE void filter_tail(const conv_t* g, const float* x, const float* dy, float* dw,
                        int p, int q, int c, int o, int r0, int r1) {
  float* out = dw + ((p * g->k_w + q) * g->in_c + c) * g->out_c + o;
  float acc = *out;
  const int off = q * g->dil_w - g->pad_left;
  for (int row = r0; row < r1; row++) {
    const int b = row / g->out_h, i = row - b * g->out_h;
    const int ih = i * g->stride_h + p * g->dil_h - g->pad_top;
    if (ih < 0 || ih >= g->in_h) continue;
    for (int j = 0; j < g->out_w; j++) {
      const int iw = j * g->stride_w + off;
      if (iw < 0 || iw >= g->in_w) continue;
      acc += x[((b * g->in_h + ih) * g->in_w + iw) * g->in_c + c] * dy[(row * g->out_w + j) * g->out_c + o];
    }
  }
  *out = acc;
}

/*
 * One work item: rows c0..c0+4 of tap `tap` of dw, zeroed, then accumulated over every output
 * row in slices sized for L2.
 */
static void filter_item(const conv_t* g, const float* x, const float* dy, float* dw, int it) {
  const int blocks = (g->in_c + 3) / 4;
  const int tap = it / blocks, c0 = (it - tap * blocks) * 4;
  const int p = tap / g->k_w, q = tap - p * g->k_w;
  const int cn = g->in_c - c0 < 4 ? g->in_c - c0 : 4;
  float* out = dw + (tap * g->in_c + c0) * g->out_c;
  for (int k = 0; k < cn * g->out_c; k++) out[k] = 0.0f;
  const int rows = g->batch * g->out_h;
  int chunk = CHUNK_BYTES / (4 * (g->in_c + g->out_c) * (g->out_w > 0 ? g->out_w : 1));
  if (chunk < 1) chunk = 1;
  for (int r0 = 0; r0 < rows; r0 += chunk) {
    const int r1 = r0 + chunk < rows ? r0 + chunk : rows;
    int o = 0;
    if (cn == 4) {
      for (; o + 8 <= g->out_c; o += 8) filter_tile(g, x, dy, dw, p, q, c0, o, r0, r1, 4, 2);
      for (; o + 4 <= g->out_c; o += 4) filter_tile(g, x, dy, dw, p, q, c0, o, r0, r1, 4, 1);
    } else {
      for (int c = c0; c < c0 + cn; c++) {
        int oc = 0;
        for (; oc + 8 <= g->out_c; oc += 8) filter_tile(g, x, dy, dw, p, q, c, oc, r0, r1, 1, 2);
        for (; oc + 4 <= g->out_c; oc += 4) filter_tile(g, x, dy, dw, p, q, c, oc, r0, r1, 1, 1);
      }
      o = g->out_c - g->out_c % 4;
    }
    for (int c = c0; c < c0 + cn; c++)
      for (int ot = o; ot < g->out_c; ot++) filter_tail(g, x, dy, dw, p, q, c, ot, r0, r1);
  }
}

/*
 * Conv2D filter gradient, NHWC: x [B,H,W,Ci], dy [B,Ho,Wo,Co] → dw [kh,kw,Ci,Co] (overwritten).
 * geometry: 15 ints in conv_t order, then a counter the caller zeroes. Work items are
 * (tap, block of 4 input channels). With threads, each part claims the next item from the
 * counter until none are left, so a part whose core is busy elsewhere (another process, the
 * XNNPACK pool still spinning) takes fewer; without, the one part takes them all.
 */
__attribute__((export_name("conv2d_filter_grad")))
void conv2d_filter_grad(const int* geometry, const float* x, const float* dy, float* dw, int part, int parts) {
  const conv_t g = *(const conv_t*)geometry;
  const int items = g.k_h * g.k_w * ((g.in_c + 3) / 4);
#ifdef __wasm_atomics__
  int* counter = (int*)geometry + 15;
  (void)part;
  (void)parts;
  for (int it = __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED); it < items; it = __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED))
    filter_item(&g, x, dy, dw, it);
#else
  const int first = (int)((long long)items * part / parts), last = (int)((long long)items * (part + 1) / parts);
  for (int it = first; it < last; it++) filter_item(&g, x, dy, dw, it);
#endif
}

/*
 * Conv2D forward, NHWC, summed directly: out[b,i,j,o] = Σ_{p,q,c} x[b, i·s+p·d−pad, j·s+q·d−pad, c]
 * · w[p,q,c,o], for the convolutions Winograd does not take (strided or dilated ones, filters other
 * than 3×3, the phases of a strided convolution's input gradient, a ViT's patch embedding, 3×3
 * ones whose channels are not in fours). tfjs's XNNPACK ships prebuilt without
 * fused multiply-adds; here the products go through MADD. Register tile: two output pixels × 16
 * output channels, so each (tap, input channel) loads four filter vectors and two input values
 * for eight multiply-adds. The two pixels are any two consecutive ones of the flattened output,
 * each with its own taps, so a row's end and the image's border need no separate tile shape.
 */
#define CONV_PIXELS 32 /* output pixels per work item */

/* Where a pixel's tap (p, q) reads x (`img`: its image; ih0, iw0: its tap (0, 0)), or 0 where it falls in the padding. */
INLINE const float* conv_tap(const conv_t* g, const float* img, int ih0, int iw0, int p, int q) {
  const int ih = ih0 + p * g->dil_h, iw = iw0 + q * g->dil_w;
  if (ih < 0 || ih >= g->in_h || iw < 0 || iw >= g->in_w) return 0;
  return img + ((long long)ih * g->in_w + iw) * g->in_c;
}

/* Output pixels a and b (imb = 0: a alone), each given by its image and tap (0, 0), × channels o0 .. o0 + 4·OV. */
INLINE void conv_tile(const conv_t* g, const float* w, float* outa, float* outb, const float* ima, int iha, int iwa,
                      const float* imb, int ihb, int iwb, int o0, const int OV) {
  v128_t acc[2][4];
  for (int v = 0; v < OV; v++) acc[0][v] = acc[1][v] = wasm_f32x4_splat(0.0f);
  const int ci = g->in_c, co = g->out_c;
  for (int p = 0; p < g->k_h; p++)
    for (int q = 0; q < g->k_w; q++) {
      const float* xa = conv_tap(g, ima, iha, iwa, p, q);
      const float* xb = imb ? conv_tap(g, imb, ihb, iwb, p, q) : 0;
      const float* wp = w + (long long)(p * g->k_w + q) * ci * co + o0;
      if (xa && xb) {
        for (int c = 0; c < ci; c++, wp += co) {
          const v128_t a = wasm_v128_load32_splat(xa + c), b = wasm_v128_load32_splat(xb + c);
          for (int v = 0; v < OV; v++) {
            const v128_t f = wasm_v128_load(wp + 4 * v);
            acc[0][v] = MADD(a, f, acc[0][v]);
            acc[1][v] = MADD(b, f, acc[1][v]);
          }
        }
      } else if (xa) {
        for (int c = 0; c < ci; c++, wp += co) {
          const v128_t a = wasm_v128_load32_splat(xa + c);
          for (int v = 0; v < OV; v++) acc[0][v] = MADD(a, wasm_v128_load(wp + 4 * v), acc[0][v]);
        }
      } else if (xb) {
        for (int c = 0; c < ci; c++, wp += co) {
          const v128_t b = wasm_v128_load32_splat(xb + c);
          for (int v = 0; v < OV; v++) acc[1][v] = MADD(b, wasm_v128_load(wp + 4 * v), acc[1][v]);
        }
      }
    }
  for (int v = 0; v < OV; v++) wasm_v128_store(outa + o0 + 4 * v, acc[0][v]);
  if (imb)
    for (int v = 0; v < OV; v++) wasm_v128_store(outb + o0 + 4 * v, acc[1][v]);
}

/*
 * Output pixels [first, last) × channels o0 .. o0 + 4·OV, two at a time. Each pixel's image, row
 * and column advance by one from the last, not by divisions: a 1×1 filter's tile has only Ci
 * products a pixel, and dividing per tile cost as much as they did.
 */
INLINE void conv_block(const conv_t* g, const float* x, const float* w, float* out, int first, int last, int o0, const int OV) {
  const int hw = g->out_h * g->out_w;
  const long long image = (long long)g->in_h * g->in_w * g->in_c;
  int b = first / hw, i = (first - b * hw) / g->out_w, j = first - b * hw - i * g->out_w;
  for (int pix = first; pix < last; pix += 2) {
    const float* ima = x + b * image;
    const int iha = i * g->stride_h - g->pad_top, iwa = j * g->stride_w - g->pad_left;
    if (++j == g->out_w) {
      j = 0;
      if (++i == g->out_h) i = 0, b++;
    }
    const float* imb = 0;
    int ihb = 0, iwb = 0;
    if (pix + 1 < last) {
      imb = x + b * image;
      ihb = i * g->stride_h - g->pad_top;
      iwb = j * g->stride_w - g->pad_left;
      if (++j == g->out_w) {
        j = 0;
        if (++i == g->out_h) i = 0, b++;
      }
    }
    conv_tile(g, w, out + (long long)pix * g->out_c, out + (long long)(pix + 1) * g->out_c, ima, iha, iwa, imb, ihb, iwb, o0, OV);
  }
}

/* One work item: output pixels [first, last), every output channel (a multiple of 4), 16 at a time. */
static void conv_item(const conv_t* g, const float* x, const float* w, float* out, int first, int last) {
  int o = 0;
  for (; o + 16 <= g->out_c; o += 16) conv_block(g, x, w, out, first, last, o, 4);
  for (; o + 8 <= g->out_c; o += 8) conv_block(g, x, w, out, first, last, o, 2);
  for (; o + 4 <= g->out_c; o += 4) conv_block(g, x, w, out, first, last, o, 1);
}

/*
 * x [B,H,W,Ci] ⊛ w [kh,kw,Ci,Co] → out [B,Ho,Wo,Co] (overwritten), Co a multiple of 4. geometry:
 * 15 ints in conv_t order, then a counter the caller zeroes; parts claim items of CONV_PIXELS
 * output pixels from it, as the filter gradient's do.
 */
__attribute__((export_name("conv2d_direct")))
void conv2d_direct(const int* geometry, const float* x, const float* w, float* out, int part, int parts) {
  const conv_t g = *(const conv_t*)geometry;
  const int pixels = g.batch * g.out_h * g.out_w;
  const int items = (pixels + CONV_PIXELS - 1) / CONV_PIXELS;
#ifdef __wasm_atomics__
  int* counter = (int*)geometry + 15;
  (void)part;
  (void)parts;
  for (int it = __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED); it < items; it = __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED)) {
#else
  const int lo = (int)((long long)items * part / parts), hi = (int)((long long)items * (part + 1) / parts);
  for (int it = lo; it < hi; it++) {
#endif
    const int first = it * CONV_PIXELS;
    conv_item(&g, x, w, out, first, first + CONV_PIXELS < pixels ? first + CONV_PIXELS : pixels);
  }
}

/*
 * Sum over the leading axes: x [rows, cols] → out [cols] = Σ_rows x, divided by rows when
 * `mean` is set. tfjs's wasm Sum
 * and Mean transpose such reductions (bias gradients, batch-norm moments) to reduce the
 * innermost axis, single-threaded; here the rows stream once. Parts split the columns in
 * blocks of 4; rows are summed in blocks of 256 first, which keeps float32 error near
 * pairwise summation's.
 */
#define ROW_BLOCK 256

/*
 * Where part `part` of `parts` starts in n values split in blocks of 4: a multiple of 4, so every
 * part but the last covers whole SIMD vectors. block_edge(n, parts, parts) is n rounded down to 4.
 */
INLINE int block_edge(int n, int part, int parts) { return (int)((long long)(n / 4) * part / parts) * 4; }


INLINE void sum_columns(const float* x, float* out, int rows, int cols, float scale, int c0, const int V) {
  v128_t total[4];
  for (int v = 0; v < V; v++) total[v] = wasm_f32x4_splat(0.0f);
  for (int r0 = 0; r0 < rows; r0 += ROW_BLOCK) {
    const int r1 = r0 + ROW_BLOCK < rows ? r0 + ROW_BLOCK : rows;
    v128_t acc[4];
    for (int v = 0; v < V; v++) acc[v] = wasm_f32x4_splat(0.0f);
    const float* p = x + r0 * cols + c0;
    for (int r = r0; r < r1; r++, p += cols)
      for (int v = 0; v < V; v++) acc[v] = wasm_f32x4_add(acc[v], wasm_v128_load(p + 4 * v));
    for (int v = 0; v < V; v++) total[v] = wasm_f32x4_add(total[v], acc[v]);
  }
  const v128_t s = wasm_f32x4_splat(scale);
  for (int v = 0; v < V; v++) wasm_v128_store(out + c0 + 4 * v, wasm_f32x4_mul(total[v], s));
}

__attribute__((export_name("sum_leading")))
void sum_leading(const float* x, float* out, int rows, int cols, int mean, int part, int parts) {
  const float scale = mean ? 1.0f / (float)rows : 1.0f;
  const int first = block_edge(cols, part, parts), last = block_edge(cols, part + 1, parts);
  int c = first;
  for (; c + 16 <= last; c += 16) sum_columns(x, out, rows, cols, scale, c, 4);
  for (; c + 4 <= last; c += 4) sum_columns(x, out, rows, cols, scale, c, 1);
  if (part == parts - 1) {
    for (c = last; c < cols; c++) {
      float total = 0.0f;
      for (int r0 = 0; r0 < rows; r0 += ROW_BLOCK) {
        const int r1 = r0 + ROW_BLOCK < rows ? r0 + ROW_BLOCK : rows;
        float acc = 0.0f;
        for (int r = r0; r < r1; r++) acc += x[r * cols + c];
        total += acc;
      }
      out[c] = total * scale;
    }
  }
}

/*
 * out[r,c] = a[r,c] ∘ b[c] (or b[c] ∘ a[r,c] when `swap`) for ∘ in add, sub, mul, div: small
 * same-shape operands (one row) and a scalar (rows of one), on the calling thread. tfjs's
 * kernels set XNNPACK up per call. Parts split the rows.
 */
enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV };

INLINE v128_t apply_v(v128_t x, v128_t y, const int op) {
  switch (op) {
    case OP_ADD: return wasm_f32x4_add(x, y);
    case OP_SUB: return wasm_f32x4_sub(x, y);
    case OP_MUL: return wasm_f32x4_mul(x, y);
    default: return wasm_f32x4_div(x, y);
  }
}

INLINE float apply_s(float x, float y, const int op) {
  switch (op) {
    case OP_ADD: return x + y;
    case OP_SUB: return x - y;
    case OP_MUL: return x * y;
    default: return x / y;
  }
}

INLINE void rows_op(const float* a, const float* b, float* out, int r0, int r1, int cols, const int op, const int swap) {
  const int vc = cols - cols % 4;
  for (int r = r0; r < r1; r++) {
    const float* ar = a + r * cols;
    float* o = out + r * cols;
    int c = 0;
    for (; c < vc; c += 4) {
      const v128_t x = wasm_v128_load(ar + c), y = wasm_v128_load(b + c);
      wasm_v128_store(o + c, swap ? apply_v(y, x, op) : apply_v(x, y, op));
    }
    for (; c < cols; c++) o[c] = swap ? apply_s(b[c], ar[c], op) : apply_s(ar[c], b[c], op);
  }
}

__attribute__((export_name("binary_rows")))
void binary_rows(const float* a, const float* b, float* out, int rows, int cols, int op, int swap, int part, int parts) {
  const int r0 = (int)((long long)rows * part / parts);
  const int r1 = (int)((long long)rows * (part + 1) / parts);
  switch (op * 2 + (swap != 0)) {
    case 0: rows_op(a, b, out, r0, r1, cols, OP_ADD, 0); break;
    case 1: rows_op(a, b, out, r0, r1, cols, OP_ADD, 1); break;
    case 2: rows_op(a, b, out, r0, r1, cols, OP_SUB, 0); break;
    case 3: rows_op(a, b, out, r0, r1, cols, OP_SUB, 1); break;
    case 4: rows_op(a, b, out, r0, r1, cols, OP_MUL, 0); break;
    case 5: rows_op(a, b, out, r0, r1, cols, OP_MUL, 1); break;
    case 6: rows_op(a, b, out, r0, r1, cols, OP_DIV, 0); break;
    default: rows_op(a, b, out, r0, r1, cols, OP_DIV, 1); break;
  }
}

/*
 * out[o, m, i] = full[o, m, i] op small[o, i] (swap: small op full): an operand repeated along
 * one block of axes, as batch norm's and biases' per-channel [C] · [N, H, W, C] (outer 1), L2
 * normalisation's [N, D] · [N, 1] and a pooled gradient's [B, 1, 1, C] · [B, H, W, C]. tfjs's
 * wasm kernels take these shapes through their general broadcasting loop, an index computation
 * per value. With inner = 1 each o's value is splatted over its m run; otherwise each (o, m) row
 * runs as binary_rows' rows do. Parts split o (inner = 1) or the (o, m) rows.
 */
INLINE void middle_op(const float* full, const float* small, float* out, long long u0, long long u1, int mid, int inner, const int op, const int swap) {
  if (inner == 1) {
    const int vm = mid - mid % 4;
    for (long long o = u0; o < u1; o++) {
      const float* f = full + o * mid;
      float* d = out + o * mid;
      const float y = small[o];
      const v128_t yv = wasm_f32x4_splat(y);
      int m = 0;
      for (; m < vm; m += 4) {
        const v128_t x = wasm_v128_load(f + m);
        wasm_v128_store(d + m, swap ? apply_v(yv, x, op) : apply_v(x, yv, op));
      }
      for (; m < mid; m++) d[m] = swap ? apply_s(y, f[m], op) : apply_s(f[m], y, op);
    }
    return;
  }
  long long o = u0 / mid;
  int m = (int)(u0 - o * mid);
  for (long long u = u0; u < u1; u++) {
    rows_op(full + u * inner, small + o * inner, out + u * inner, 0, 1, inner, op, swap);
    if (++m == mid) m = 0, o++; /* no division a row: a per-channel [C] · [N, H, W, C] has N·H·W rows of C */
  }
}

__attribute__((export_name("binary_middle")))
void binary_middle(const float* full, const float* small, float* out, int outer, int mid, int inner, int op, int swap, int part, int parts) {
  const long long units = inner == 1 ? (long long)outer : (long long)outer * mid;
  const long long u0 = units * part / parts, u1 = units * (part + 1) / parts;
  switch (op * 2 + (swap != 0)) {
    case 0: middle_op(full, small, out, u0, u1, mid, inner, OP_ADD, 0); break;
    case 1: middle_op(full, small, out, u0, u1, mid, inner, OP_ADD, 1); break;
    case 2: middle_op(full, small, out, u0, u1, mid, inner, OP_SUB, 0); break;
    case 3: middle_op(full, small, out, u0, u1, mid, inner, OP_SUB, 1); break;
    case 4: middle_op(full, small, out, u0, u1, mid, inner, OP_MUL, 0); break;
    case 5: middle_op(full, small, out, u0, u1, mid, inner, OP_MUL, 1); break;
    case 6: middle_op(full, small, out, u0, u1, mid, inner, OP_DIV, 0); break;
    default: middle_op(full, small, out, u0, u1, mid, inner, OP_DIV, 1); break;
  }
}

/*
 * Transpose of the form [outer, X, Y, inner] → [outer, Y, X, inner]: one block of axes moved
 * before its neighbour (matrix transposes, the input gradient's phase interleave). tfjs's wasm
 * Transpose walks the output with a general index computation; this copies `inner`-long runs in
 * 16×16 tiles of (X, Y) so both sides stay in cache. Parts split the (outer, Y-tile) rows.
 */
#define TILE 16

__attribute__((export_name("transpose_blocks")))
void transpose_blocks(const float* x, float* out, int outer, int nx, int ny, int inner, int part, int parts) {
  const int ytiles = (ny + TILE - 1) / TILE;
  const long long units = (long long)outer * ytiles;
  const long long u0 = units * part / parts, u1 = units * (part + 1) / parts;
  for (long long u = u0; u < u1; u++) {
    const int o = (int)(u / ytiles), y0 = (int)(u % ytiles) * TILE;
    const int y1 = y0 + TILE < ny ? y0 + TILE : ny;
    const float* src = x + (long long)o * nx * ny * inner;
    float* dst = out + (long long)o * nx * ny * inner;
    for (int x0 = 0; x0 < nx; x0 += TILE) {
      const int x1 = x0 + TILE < nx ? x0 + TILE : nx;
      if (inner == 1) {
        for (int y = y0; y < y1; y++)
          for (int i = x0; i < x1; i++) dst[y * nx + i] = src[i * ny + y];
      } else {
        for (int y = y0; y < y1; y++)
          for (int i = x0; i < x1; i++) {
            const float* s = src + ((long long)i * ny + y) * inner;
            float* d = dst + ((long long)y * nx + i) * inner;
            int k = 0;
            for (; k + 4 <= inner; k += 4) wasm_v128_store(d + k, wasm_v128_load(s + k));
            for (; k < inner; k++) d[k] = s[k];
          }
      }
    }
  }
}

/*
 * out[r,c] = scale · b[c]: the gradient of a leading-axis Sum or Mean, which tfjs builds by
 * multiplying with a ones tensor that it first fills in JavaScript and copies in.
 */
__attribute__((export_name("broadcast_rows")))
void broadcast_rows(const float* b, float* out, int rows, int cols, int mean, int part, int parts) {
  const float scale = mean ? 1.0f / (float)rows : 1.0f;
  const int r0 = (int)((long long)rows * part / parts);
  const int r1 = (int)((long long)rows * (part + 1) / parts);
  const int vc = cols - cols % 4;
  const v128_t s = wasm_f32x4_splat(scale);
  for (int r = r0; r < r1; r++) {
    float* o = out + (long long)r * cols;
    int c = 0;
    for (; c < vc; c += 4) wasm_v128_store(o + c, wasm_f32x4_mul(wasm_v128_load(b + c), s));
    for (; c < cols; c++) o[c] = b[c] * scale;
  }
}

/*
 * Batch norm in training, over x [rows, cols] (cols = channels): the moments, the normalised
 * output, and its gradient, each one pass or two over x. Written as tfjs ops, batch norm is ten
 * elementwise kernels and four reductions a layer, each a full pass over the activation: a fifth
 * of a MoCo v2 step on wasm (measured).
 *
 * bn_moments: mean[c] and the biased variance var[c] (two passes, mean first, for float32
 * accuracy), then bn_apply's coefficient rows: mean, γ/√(var+ε), β.
 * Parts split the columns in blocks of 4, as sum_leading does.
 */
/*
 * Σ_rows x (or with `centre`, Σ_rows (x − m)²) over columns c0..c0+4V, summed in blocks of
 * ROW_BLOCK rows as sum_columns does.
 */
INLINE void column_pass(const float* x, int rows, int cols, int c0, const int V, const int centre, const v128_t* m, v128_t* total) {
  for (int v = 0; v < V; v++) total[v] = wasm_f32x4_splat(0.0f);
  for (int r0 = 0; r0 < rows; r0 += ROW_BLOCK) {
    const int r1 = r0 + ROW_BLOCK < rows ? r0 + ROW_BLOCK : rows;
    v128_t acc[4];
    for (int v = 0; v < V; v++) acc[v] = wasm_f32x4_splat(0.0f);
    const float* p = x + (long long)r0 * cols + c0;
    for (int r = r0; r < r1; r++, p += cols)
      for (int v = 0; v < V; v++) {
        v128_t d = wasm_v128_load(p + 4 * v);
        if (centre) {
          d = wasm_f32x4_sub(d, m[v]);
          d = wasm_f32x4_mul(d, d);
        }
        acc[v] = wasm_f32x4_add(acc[v], d);
      }
    for (int v = 0; v < V; v++) total[v] = wasm_f32x4_add(total[v], acc[v]);
  }
}

INLINE void moments_columns(const float* x, const float* gamma, const float* beta, float eps, float* mean, float* var,
                            float* coef, int rows, int cols, int c0, const int V) {
  v128_t total[4], centred[4], m[4];
  column_pass(x, rows, cols, c0, V, 0, m, total);
  const v128_t inv = wasm_f32x4_splat(1.0f / (float)rows);
  for (int v = 0; v < V; v++) m[v] = wasm_f32x4_mul(total[v], inv);
  column_pass(x, rows, cols, c0, V, 1, m, centred);
  const v128_t e = wasm_f32x4_splat(eps), one = wasm_f32x4_splat(1.0f);
  for (int v = 0; v < V; v++) {
    const int c = c0 + 4 * v;
    const v128_t variance = wasm_f32x4_mul(centred[v], inv);
    const v128_t a = wasm_f32x4_mul(wasm_v128_load(gamma + c), wasm_f32x4_div(one, wasm_f32x4_sqrt(wasm_f32x4_add(variance, e))));
    wasm_v128_store(mean + c, m[v]);
    wasm_v128_store(var + c, variance);
    wasm_v128_store(coef + c, m[v]);
    wasm_v128_store(coef + cols + c, a);
    wasm_v128_store(coef + 2 * cols + c, wasm_v128_load(beta + c));
  }
}

/* The columns past the last multiple of 4, one at a time. */
static void moments_column(const float* x, const float* gamma, const float* beta, float eps, float* mean, float* var, float* coef,
                           int rows, int cols, int c) {
  float total = 0.0f, centred = 0.0f;
  for (int r0 = 0; r0 < rows; r0 += ROW_BLOCK) {
    const int r1 = r0 + ROW_BLOCK < rows ? r0 + ROW_BLOCK : rows;
    float acc = 0.0f;
    for (int r = r0; r < r1; r++) acc += x[(long long)r * cols + c];
    total += acc;
  }
  const float m = total / (float)rows;
  for (int r0 = 0; r0 < rows; r0 += ROW_BLOCK) {
    const int r1 = r0 + ROW_BLOCK < rows ? r0 + ROW_BLOCK : rows;
    float acc = 0.0f;
    for (int r = r0; r < r1; r++) {
      const float d = x[(long long)r * cols + c] - m;
      acc += d * d;
    }
    centred += acc;
  }
  const float variance = centred / (float)rows;
  const float a = gamma[c] / __builtin_sqrtf(variance + eps);
  mean[c] = m;
  var[c] = variance;
  coef[c] = m;
  coef[cols + c] = a;
  coef[2 * cols + c] = beta[c];
}

/* A float passed through an int32 argument (the pool passes int32 words). */
INLINE float float_of(int bits) { return __builtin_bit_cast(float, bits); }

__attribute__((export_name("bn_moments")))
void bn_moments(const float* x, const float* gamma, const float* beta, int eps_bits, float* mean, float* var, float* coef,
                int rows, int cols, int part, int parts) {
  const float eps = float_of(eps_bits);
  const int first = block_edge(cols, part, parts), last = block_edge(cols, part + 1, parts);
  int c = first;
  for (; c + 16 <= last; c += 16) moments_columns(x, gamma, beta, eps, mean, var, coef, rows, cols, c, 4);
  for (; c + 4 <= last; c += 4) moments_columns(x, gamma, beta, eps, mean, var, coef, rows, cols, c, 1);
  if (part == parts - 1)
    for (c = last; c < cols; c++) moments_column(x, gamma, beta, eps, mean, var, coef, rows, cols, c);
}

/*
 * out[r,c] = s[c]·(x[r,c] − m[c]) + b[c] (+ t[c]·dy[r,c] with `third`), coef holding rows m, s,
 * b (and t) of `cols` each: the normalisation, out = a·(x − mean) + β, and the batch-norm
 * gradient, dx = B·(x − mean) + T + A·dy (below). Centring first, as PyTorch does: folding the
 * mean into the offset (a·x + β − a·mean) loses float32 digits when |mean| ≫ std, and that
 * moved DenseCL's 20-step parity curve by 3e-2 (a feature match flipped). Parts split the rows.
 */
INLINE void centred_affine_rows(const float* x, const float* dy, const float* coef, float* out, int r0, int r1, int cols, const int third) {
  const int vc = cols - cols % 4;
  const float* m = coef;
  const float* sc = coef + cols;
  const float* b = coef + 2 * cols;
  const float* t = coef + 3 * cols;
  for (int r = r0; r < r1; r++) {
    const float* xr = x + (long long)r * cols;
    const float* dr = dy + (long long)r * cols;
    float* o = out + (long long)r * cols;
    int c = 0;
    for (; c < vc; c += 4) {
      const v128_t d = wasm_f32x4_sub(wasm_v128_load(xr + c), wasm_v128_load(m + c));
      v128_t v = wasm_f32x4_add(wasm_f32x4_mul(d, wasm_v128_load(sc + c)), wasm_v128_load(b + c));
      if (third) v = MADD(wasm_v128_load(dr + c), wasm_v128_load(t + c), v);
      wasm_v128_store(o + c, v);
    }
    for (; c < cols; c++) o[c] = (xr[c] - m[c]) * sc[c] + b[c] + (third ? dr[c] * t[c] : 0.0f);
  }
}

/*
 * out = s·(x − m) + b, then, fused, + residual (non-null) and ReLU (`relu`): a ResNet's
 * relu(bn(conv) + skip) in one pass where tfjs ran three (normalise, Add, Relu), each a full
 * read and write of the activation. The same float operations in the same order as the three
 * kernels, so the values are theirs bit for bit; ReLU keeps NaN as relu_values does.
 */
__attribute__((export_name("bn_apply")))
void bn_apply(const float* x, const float* coef, const float* residual, float* out, int rows, int cols, int relu, int part, int parts) {
  const int r0 = (int)((long long)rows * part / parts);
  const int r1 = (int)((long long)rows * (part + 1) / parts);
  if (!residual && !relu) {
    centred_affine_rows(x, x, coef, out, r0, r1, cols, 0);
    return;
  }
  const v128_t zero = wasm_f32x4_splat(0.0f);
  const int vc = cols - cols % 4;
  /* Row by row, so the second step reads the row back from L1. */
  for (int r = r0; r < r1; r++) {
    centred_affine_rows(x, x, coef, out, r, r + 1, cols, 0);
    float* o = out + (long long)r * cols;
    const float* s = residual ? residual + (long long)r * cols : 0;
    int c = 0;
    for (; c < vc; c += 4) {
      v128_t v = wasm_v128_load(o + c);
      if (s) v = wasm_f32x4_add(v, wasm_v128_load(s + c));
      if (relu) v = wasm_v128_andnot(v, wasm_f32x4_lt(v, zero));
      wasm_v128_store(o + c, v);
    }
    for (; c < cols; c++) {
      float v = o[c];
      if (s) v += s[c];
      if (relu) v = v < 0.0f ? 0.0f : v;
      o[c] = v;
    }
  }
}

/*
 * The batch-norm gradient's sums: Σ dy and Σ dy·(x − mean) per column, then the gradients of
 * γ and β and the coefficients of dx = B·(x − μ) + T + A·dy, in coef rows μ, B, T, A:
 *   dβ = Σdy,  dγ = r·Σdy(x−μ)  (r = 1/√(var+ε), N = rows),
 *   A = γr,  B = −γr³·Σdy(x−μ)/N + 2·dvar/N,  T = −γr·Σdy/N + dmean/N,
 * where dmean, dvar are the gradients reaching the mean and variance outputs (0 = none).
 */
INLINE void grad_columns(const float* dy, const float* x, const float* mean, const float* var, const float* gamma, const float* dmean,
                         const float* dvar, float eps, float* dgamma, float* dbeta, float* coef, int rows, int cols, int c0, const int V) {
  v128_t sdy[4], sdx[4], m[4];
  for (int v = 0; v < V; v++) {
    sdy[v] = sdx[v] = wasm_f32x4_splat(0.0f);
    m[v] = wasm_v128_load(mean + c0 + 4 * v);
  }
  for (int r0 = 0; r0 < rows; r0 += ROW_BLOCK) {
    const int r1 = r0 + ROW_BLOCK < rows ? r0 + ROW_BLOCK : rows;
    v128_t a1[4], a2[4];
    for (int v = 0; v < V; v++) a1[v] = a2[v] = wasm_f32x4_splat(0.0f);
    const float* p = x + (long long)r0 * cols + c0;
    const float* d = dy + (long long)r0 * cols + c0;
    for (int r = r0; r < r1; r++, p += cols, d += cols)
      for (int v = 0; v < V; v++) {
        const v128_t g = wasm_v128_load(d + 4 * v);
        a1[v] = wasm_f32x4_add(a1[v], g);
        a2[v] = wasm_f32x4_add(a2[v], wasm_f32x4_mul(g, wasm_f32x4_sub(wasm_v128_load(p + 4 * v), m[v])));
      }
    for (int v = 0; v < V; v++) {
      sdy[v] = wasm_f32x4_add(sdy[v], a1[v]);
      sdx[v] = wasm_f32x4_add(sdx[v], a2[v]);
    }
  }
  const v128_t inv = wasm_f32x4_splat(1.0f / (float)rows), e = wasm_f32x4_splat(eps), one = wasm_f32x4_splat(1.0f);
  const v128_t two = wasm_f32x4_splat(2.0f), zero = wasm_f32x4_splat(0.0f);
  for (int v = 0; v < V; v++) {
    const int c = c0 + 4 * v;
    const v128_t r = wasm_f32x4_div(one, wasm_f32x4_sqrt(wasm_f32x4_add(wasm_v128_load(var + c), e)));
    const v128_t gr = wasm_f32x4_mul(wasm_v128_load(gamma + c), r);
    const v128_t dv = dvar ? wasm_v128_load(dvar + c) : zero;
    const v128_t dm = dmean ? wasm_v128_load(dmean + c) : zero;
    const v128_t b = wasm_f32x4_mul(wasm_f32x4_sub(wasm_f32x4_mul(two, dv), wasm_f32x4_mul(wasm_f32x4_mul(gr, wasm_f32x4_mul(r, r)), sdx[v])), inv);
    const v128_t t = wasm_f32x4_mul(wasm_f32x4_sub(dm, wasm_f32x4_mul(gr, sdy[v])), inv);
    wasm_v128_store(dbeta + c, sdy[v]);
    wasm_v128_store(dgamma + c, wasm_f32x4_mul(r, sdx[v]));
    wasm_v128_store(coef + c, m[v]);
    wasm_v128_store(coef + cols + c, b);
    wasm_v128_store(coef + 2 * cols + c, t);
    wasm_v128_store(coef + 3 * cols + c, gr);
  }
}

static void grad_column(const float* dy, const float* x, const float* mean, const float* var, const float* gamma, const float* dmean,
                        const float* dvar, float eps, float* dgamma, float* dbeta, float* coef, int rows, int cols, int c) {
  float sdy = 0.0f, sdx = 0.0f;
  const float m = mean[c];
  for (int r0 = 0; r0 < rows; r0 += ROW_BLOCK) {
    const int r1 = r0 + ROW_BLOCK < rows ? r0 + ROW_BLOCK : rows;
    float a1 = 0.0f, a2 = 0.0f;
    for (int r = r0; r < r1; r++) {
      const float g = dy[(long long)r * cols + c];
      a1 += g;
      a2 += g * (x[(long long)r * cols + c] - m);
    }
    sdy += a1;
    sdx += a2;
  }
  const float inv = 1.0f / (float)rows;
  const float r = 1.0f / __builtin_sqrtf(var[c] + eps);
  const float gr = gamma[c] * r;
  const float b = (2.0f * (dvar ? dvar[c] : 0.0f) - gr * r * r * sdx) * inv;
  dbeta[c] = sdy;
  dgamma[c] = r * sdx;
  coef[c] = m;
  coef[cols + c] = b;
  coef[2 * cols + c] = ((dmean ? dmean[c] : 0.0f) - gr * sdy) * inv;
  coef[3 * cols + c] = gr;
}

__attribute__((export_name("bn_grad_sums")))
void bn_grad_sums(const float* dy, const float* x, const float* mean, const float* var, const float* gamma, const float* dmean,
                  const float* dvar, int eps_bits, float* dgamma, float* dbeta, float* coef, int rows, int cols, int part, int parts) {
  const float eps = float_of(eps_bits);
  const int first = block_edge(cols, part, parts), last = block_edge(cols, part + 1, parts);
  int c = first;
  for (; c + 16 <= last; c += 16) grad_columns(dy, x, mean, var, gamma, dmean, dvar, eps, dgamma, dbeta, coef, rows, cols, c, 4);
  for (; c + 4 <= last; c += 4) grad_columns(dy, x, mean, var, gamma, dmean, dvar, eps, dgamma, dbeta, coef, rows, cols, c, 1);
  if (part == parts - 1)
    for (c = last; c < cols; c++) grad_column(dy, x, mean, var, gamma, dmean, dvar, eps, dgamma, dbeta, coef, rows, cols, c);
}

/* dx = B·(x − mean) + T + A·dy per column (coefficients from bn_grad_sums). Parts split the rows. */
__attribute__((export_name("bn_grad_apply")))
void bn_grad_apply(const float* dy, const float* x, const float* coef, float* dx, int rows, int cols, int part, int parts) {
  const int r0 = (int)((long long)rows * part / parts);
  const int r1 = (int)((long long)rows * (part + 1) / parts);
  centred_affine_rows(x, dy, coef, dx, r0, r1, cols, 1);
}

/*
 * The ReLU gradient in one pass, as tfjs's dy·Step(x) (Step, Cast, Multiply): dy where x > 0,
 * dy·0 elsewhere (so a NaN or ∞ dy stays NaN), NaN where x is NaN.
 */
__attribute__((export_name("relu_grad")))
void relu_grad(const float* dy, const float* x, float* dx, int n, int part, int parts) {
  const int first = block_edge(n, part, parts), last = part == parts - 1 ? n : block_edge(n, part + 1, parts);
  const v128_t zero = wasm_f32x4_splat(0.0f);
  int i = first;
  for (; i + 4 <= last; i += 4) {
    const v128_t g = wasm_v128_load(dy + i), v = wasm_v128_load(x + i);
    const v128_t r = wasm_v128_bitselect(g, wasm_f32x4_mul(g, zero), wasm_f32x4_gt(v, zero));
    wasm_v128_store(dx + i, wasm_v128_bitselect(v, r, wasm_f32x4_ne(v, v)));
  }
  for (; i < last; i++) dx[i] = x[i] != x[i] ? x[i] : x[i] > 0.0f ? dy[i] : dy[i] * 0.0f;
}

/*
 * Batched matrix product out[b] = op(A[b]) · op(B[b]), op a transpose or not: A [batch, M, K]
 * (or [batch, K, M] transposed), B [batch, K, N] (or [batch, N, K]), out [batch, M, N]. A batch
 * stride of 0 repeats one matrix over the batch. tfjs's wasm BatchMatMul runs its batched form
 * at about 0.5 GMAC/s (HAPiCL's per-image pixel products, the per-view colour matrices); its
 * single-matrix form goes through XNNPACK, which keeps products with B wider than 512. Work
 * items are (batch, block of 4 rows), or (batch, group of MM_ROWS rows) for the plain product,
 * split evenly over the parts.
 */
typedef struct {
  int batch, m, k, n, trans_a, trans_b, stride_a, stride_b;
} matmul_t;

/* A[i, kk] for op(A) = A or Aᵀ. */
INLINE float a_at(const matmul_t* g, const float* a, int i, int kk) { return g->trans_a ? a[kk * g->m + i] : a[i * g->k + kk]; }

/* Rows i0..i0+R of out for A transposed and B not: out[i, j] = Σ_k A[k,i]·B[k,j], j in blocks of 8 and 4, then the tail (the plain product is mm_group_nn's). */
INLINE void mm_rows_nn(const matmul_t* g, const float* a, const float* b, float* out, int i0, const int R) {
  const int n = g->n;
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    v128_t acc[4][2];
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = wasm_f32x4_splat(0.0f);
    for (int kk = 0; kk < g->k; kk++) {
      const v128_t b0 = wasm_v128_load(b + kk * n + j), b1 = wasm_v128_load(b + kk * n + j + 4);
      for (int r = 0; r < R; r++) {
        const v128_t s = wasm_f32x4_splat(a_at(g, a, i0 + r, kk));
        acc[r][0] = MADD(s, b0, acc[r][0]);
        acc[r][1] = MADD(s, b1, acc[r][1]);
      }
    }
    for (int r = 0; r < R; r++) {
      wasm_v128_store(out + (i0 + r) * n + j, acc[r][0]);
      wasm_v128_store(out + (i0 + r) * n + j + 4, acc[r][1]);
    }
  }
  for (; j + 4 <= n; j += 4) {
    v128_t acc[4];
    for (int r = 0; r < R; r++) acc[r] = wasm_f32x4_splat(0.0f);
    for (int kk = 0; kk < g->k; kk++) {
      const v128_t b0 = wasm_v128_load(b + kk * n + j);
      for (int r = 0; r < R; r++) acc[r] = MADD(wasm_f32x4_splat(a_at(g, a, i0 + r, kk)), b0, acc[r]);
    }
    for (int r = 0; r < R; r++) wasm_v128_store(out + (i0 + r) * n + j, acc[r]);
  }
  for (; j < n; j++)
    for (int r = 0; r < R; r++) {
      float acc = 0.0f;
      for (int kk = 0; kk < g->k; kk++) acc += a_at(g, a, i0 + r, kk) * b[kk * n + j];
      out[(i0 + r) * n + j] = acc;
    }
}

/* Rows i0..i0+R of out for B transposed ([N, K]) and A not: dot products of rows, k in blocks of 4. */
/* Full unrolling keeps the 4×4 accumulators in wasm locals; a loop left rolled puts them on a stack. */
INLINE void mm_rows_nt(const matmul_t* g, const float* a, const float* b, float* out, int i0, const int R) {
  const int n = g->n, k = g->k, vk = k - k % 4;
  for (int j = 0; j < n; j += 4) {
    const int C = n - j < 4 ? n - j : 4;
    v128_t acc[4][4];
    #pragma clang loop unroll(full)
    for (int r = 0; r < R; r++)
      #pragma clang loop unroll(full)
      for (int c = 0; c < 4; c++) acc[r][c] = wasm_f32x4_splat(0.0f);
    for (int kk = 0; kk < vk; kk += 4) {
      v128_t bv[4];
      #pragma clang loop unroll(full)
      for (int c = 0; c < 4; c++) bv[c] = c < C ? wasm_v128_load(b + (j + c) * k + kk) : wasm_f32x4_splat(0.0f);
      #pragma clang loop unroll(full)
      for (int r = 0; r < R; r++) {
        const v128_t av = wasm_v128_load(a + (i0 + r) * k + kk);
        #pragma clang loop unroll(full)
        for (int c = 0; c < 4; c++) acc[r][c] = MADD(av, bv[c], acc[r][c]);
      }
    }
    #pragma clang loop unroll(full)
    for (int r = 0; r < R; r++)
      #pragma clang loop unroll(full)
      for (int c = 0; c < 4; c++) { /* constant bounds throughout, so acc stays in registers */
        const v128_t v = acc[r][c];
        float s = (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) + (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
        if (c < C) {
          for (int kk = vk; kk < k; kk++) s += a[(i0 + r) * k + kk] * b[(j + c) * k + kk];
          out[(i0 + r) * n + j + c] = s;
        }
      }
  }
}

INLINE void mm_item(const matmul_t* g, const float* a, const float* b, float* out, int item) {
  const int blocks = (g->m + 3) / 4;
  const int bi = item / blocks, i0 = (item - bi * blocks) * 4;
  const float* ab = a + (long long)bi * g->stride_a;
  const float* bb = b + (long long)bi * g->stride_b;
  float* ob = out + (long long)bi * g->m * g->n;
  const int rows = g->m - i0 < 4 ? g->m - i0 : 4;
  if (g->trans_a && g->trans_b) {
    /* Both transposed (rare): out[i,j] = Σ_k A[k,i]·B[j,k], one value at a time. */
    for (int i = i0; i < i0 + rows; i++)
      for (int j = 0; j < g->n; j++) {
        float acc = 0.0f;
        for (int kk = 0; kk < g->k; kk++) acc += ab[kk * g->m + i] * bb[j * g->k + kk];
        ob[i * g->n + j] = acc;
      }
  } else if (g->trans_b) {
    switch (rows) {
      case 4: mm_rows_nt(g, ab, bb, ob, i0, 4); break;
      case 3: mm_rows_nt(g, ab, bb, ob, i0, 3); break;
      case 2: mm_rows_nt(g, ab, bb, ob, i0, 2); break;
      default: mm_rows_nt(g, ab, bb, ob, i0, 1); break;
    }
  } else {
    switch (rows) {
      case 4: mm_rows_nn(g, ab, bb, ob, i0, 4); break;
      case 3: mm_rows_nn(g, ab, bb, ob, i0, 3); break;
      case 2: mm_rows_nn(g, ab, bb, ob, i0, 2); break;
      default: mm_rows_nn(g, ab, bb, ob, i0, 1); break;
    }
  }
}

/*
 * The plain product (neither operand transposed) in blocks that stay in L1: rows in groups of
 * MM_ROWS, k in blocks of MM_KC. Within a group and a k block, an 8-column panel of B (MM_KC·32
 * bytes) serves every 4-row tile of the group, and the group's A block (MM_ROWS·MM_KC·4 bytes)
 * every panel. Unblocked, each 4-row tile streamed all of B from L2 (512 KB for a [1024, 128]
 * B). A tile's partial sums go to out between k blocks and come back, so every value is summed
 * over k in the same order, with the same operations, as the unblocked loop: the results are
 * the same bits.
 */
#define MM_ROWS 16
#define MM_KC 256

/* out[r, j..j+8) += Σ_{k0 ≤ kk < k1} A[r, kk]·B[kk, j..j+8), R rows. */
INLINE void mm_tile_nn8(const float* a, int lda, const float* b, int n, float* out, int k0, int k1, const int R) {
  v128_t acc[4][2];
  for (int r = 0; r < R; r++) {
    acc[r][0] = wasm_v128_load(out + r * n);
    acc[r][1] = wasm_v128_load(out + r * n + 4);
  }
  for (int kk = k0; kk < k1; kk++) {
    const v128_t b0 = wasm_v128_load(b + kk * n), b1 = wasm_v128_load(b + kk * n + 4);
    for (int r = 0; r < R; r++) {
      const v128_t s = wasm_f32x4_splat(a[r * lda + kk]);
      acc[r][0] = MADD(s, b0, acc[r][0]);
      acc[r][1] = MADD(s, b1, acc[r][1]);
    }
  }
  for (int r = 0; r < R; r++) {
    wasm_v128_store(out + r * n, acc[r][0]);
    wasm_v128_store(out + r * n + 4, acc[r][1]);
  }
}

/* The same over 4 columns. */
INLINE void mm_tile_nn4(const float* a, int lda, const float* b, int n, float* out, int k0, int k1, const int R) {
  v128_t acc[4];
  for (int r = 0; r < R; r++) acc[r] = wasm_v128_load(out + r * n);
  for (int kk = k0; kk < k1; kk++) {
    const v128_t b0 = wasm_v128_load(b + kk * n);
    for (int r = 0; r < R; r++) acc[r] = MADD(wasm_f32x4_splat(a[r * lda + kk]), b0, acc[r]);
  }
  for (int r = 0; r < R; r++) wasm_v128_store(out + r * n, acc[r]);
}

/* Rows [i0, i1) of one column panel (width 8 or 4) over k in [k0, k1), in tiles of 4 rows. */
INLINE void mm_panel_nn(const float* a, int k, const float* b, int n, float* out, int i0, int i1, int k0, int k1, const int W) {
  int i = i0;
  for (; i + 4 <= i1; i += 4) {
    if (W == 8) mm_tile_nn8(a + (long long)i * k, k, b, n, out + (long long)i * n, k0, k1, 4);
    else mm_tile_nn4(a + (long long)i * k, k, b, n, out + (long long)i * n, k0, k1, 4);
  }
  for (; i < i1; i++) {
    if (W == 8) mm_tile_nn8(a + (long long)i * k, k, b, n, out + (long long)i * n, k0, k1, 1);
    else mm_tile_nn4(a + (long long)i * k, k, b, n, out + (long long)i * n, k0, k1, 1);
  }
}

/* Item (batch, group of MM_ROWS rows) of the plain product. */
INLINE void mm_group_nn(const matmul_t* g, const float* a, const float* b, float* out, int item) {
  const int groups = (g->m + MM_ROWS - 1) / MM_ROWS;
  const int bi = item / groups, g0 = (item - bi * groups) * MM_ROWS;
  const int g1 = g0 + MM_ROWS < g->m ? g0 + MM_ROWS : g->m;
  const int k = g->k, n = g->n, vn = n - n % 4;
  const float* ab = a + (long long)bi * g->stride_a;
  const float* bb = b + (long long)bi * g->stride_b;
  float* ob = out + (long long)bi * g->m * n;
  /* The sums start from 0 in out (0 + x is x: the same bits as an accumulator started at 0). */
  for (long long i = (long long)g0 * n; i < (long long)g1 * n; i++) ob[i] = 0.0f;
  for (int k0 = 0; k0 < k; k0 += MM_KC) {
    const int k1 = k0 + MM_KC < k ? k0 + MM_KC : k;
    int j = 0;
    for (; j + 8 <= n; j += 8) mm_panel_nn(ab, k, bb + j, n, ob + j, g0, g1, k0, k1, 8);
    for (; j + 4 <= n; j += 4) mm_panel_nn(ab, k, bb + j, n, ob + j, g0, g1, k0, k1, 4);
  }
  for (int i = g0; i < g1; i++)
    for (int j = vn; j < n; j++) {
      float acc = 0.0f;
      for (int kk = 0; kk < k; kk++) acc += ab[(long long)i * k + kk] * bb[(long long)kk * n + j];
      ob[(long long)i * n + j] = acc;
    }
}

/* geometry: 8 ints in matmul_t order. */
__attribute__((export_name("batch_matmul")))
void batch_matmul(const int* geometry, const float* a, const float* b, float* out, int part, int parts) {
  const matmul_t* g = (const matmul_t*)geometry;
  const int plain = !g->trans_a && !g->trans_b;
  const int items = g->batch * (plain ? (g->m + MM_ROWS - 1) / MM_ROWS : (g->m + 3) / 4);
  const int first = (int)((long long)items * part / parts), last = (int)((long long)items * (part + 1) / parts);
  for (int it = first; it < last; it++) {
    if (plain) mm_group_nn(g, a, b, out, it);
    else mm_item(g, a, b, out, it);
  }
}

/*
 * Weaves the sh·sw phase outputs of a strided convolution's input gradient, each
 * [B, Hp, Wp, C], into out [B, Hp·sh, Wp·sw, C]: row m of phase (a, b) lands on row a + sh·m,
 * column n on column b + sw·n. geometry: batch, Hp, Wp, C, sh, sw, then the sh·sw phase
 * pointers (row phase major). tfjs's form, a Pack then a Transpose, copies everything twice.
 * Parts split the (batch, phase row) pairs.
 */
__attribute__((export_name("interleave_phases")))
void interleave_phases(const int* geometry, float* out, int part, int parts) {
  const int batch = geometry[0], ph = geometry[1], pw = geometry[2], c = geometry[3], sh = geometry[4], sw = geometry[5];
  const int width = pw * sw;
  const long long rows = (long long)batch * ph;
  const long long r0 = rows * part / parts, r1 = rows * (part + 1) / parts;
  for (long long r = r0; r < r1; r++) {
    const int b = (int)(r / ph), m = (int)(r % ph);
    for (int a = 0; a < sh; a++) {
      float* dst_row = out + (((long long)b * ph * sh + (long long)m * sh + a) * width) * c;
      for (int q = 0; q < sw; q++) {
        const float* src = (const float*)(long)geometry[6 + a * sw + q] + ((long long)r * pw) * c;
        float* dst = dst_row + (long long)q * c;
        for (int n = 0; n < pw; n++, src += c, dst += (long long)sw * c) {
          int k = 0;
          for (; k + 4 <= c; k += 4) wasm_v128_store(dst + k, wasm_v128_load(src + k));
          for (; k < c; k++) dst[k] = src[k];
        }
      }
    }
  }
}

/*
 * The flipped taps of a [kh, kw, A, B] filter as a Conv2D's input gradient reads them: tap (i, j)
 * of the [nr, nc, B, A] result is filter tap (r0 − rs·i, c0 − cs·j), its A × B matrix
 * transposed. A copy, so the values are the filter's. It spared the step a read of every filter
 * into JavaScript, a loop there and an upload back. Parts split the result's taps.
 */
__attribute__((export_name("flip_filter")))
void flip_filter(const float* w, float* out, int kw, int a, int b, int r0, int rs, int nr, int c0, int cs, int nc, int part, int parts) {
  const int taps = nr * nc;
  const int first = (int)((long long)taps * part / parts), last = (int)((long long)taps * (part + 1) / parts);
  for (int t = first; t < last; t++) {
    const int i = t / nc, j = t % nc;
    const float* src = w + ((long long)(r0 - rs * i) * kw + (c0 - cs * j)) * a * b;
    float* dst = out + (long long)t * a * b;
    for (int y = 0; y < b; y++)
      for (int x = 0; x < a; x++) dst[(long long)y * a + x] = src[(long long)x * b + y];
  }
}

/*
 * out = eˣ elementwise, 4 lanes at a time: Cephes' expf (range reduction by ln 2 in two parts,
 * a degree-5 polynomial, the exponent written into the bits), within 2 ulp of the exact value
 * (tested).
 * Results below 2⁻¹²⁶ flush to 0; above the float range, +∞; NaN stays NaN. tfjs's wasm Exp
 * calls the scalar expf once per value on one thread: 9 ms for InfoNCE's [128, 4097] logits.
 * Parts split the values in blocks of 4.
 */
INLINE v128_t exp_v(v128_t x) {
  const v128_t hi = wasm_f32x4_splat(88.72283935546875f), lo = wasm_f32x4_splat(-87.3365447504f); /* ln FLT_MAX, ln 2⁻¹²⁶ */
  const v128_t over = wasm_f32x4_gt(x, hi), under = wasm_f32x4_lt(x, lo), nan = wasm_f32x4_ne(x, x);
  v128_t v = wasm_f32x4_pmin(wasm_f32x4_pmax(x, lo), hi);
  const v128_t n = wasm_f32x4_floor(wasm_f32x4_add(wasm_f32x4_mul(v, wasm_f32x4_splat(1.44269504088896341f)), wasm_f32x4_splat(0.5f)));
  v = wasm_f32x4_sub(v, wasm_f32x4_mul(n, wasm_f32x4_splat(0.693359375f)));
  v = wasm_f32x4_sub(v, wasm_f32x4_mul(n, wasm_f32x4_splat(-2.12194440e-4f)));
  v128_t y = wasm_f32x4_splat(1.9875691500e-4f);
  y = wasm_f32x4_add(wasm_f32x4_mul(y, v), wasm_f32x4_splat(1.3981999507e-3f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, v), wasm_f32x4_splat(8.3334519073e-3f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, v), wasm_f32x4_splat(4.1665795894e-2f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, v), wasm_f32x4_splat(1.6666665459e-1f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, v), wasm_f32x4_splat(5.0000001201e-1f));
  y = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_mul(y, v), v), v), wasm_f32x4_splat(1.0f));
  /* 2ⁿ as 2^⌊n/2⌋·2^(n−⌊n/2⌋): n reaches 128 near the top of the range, past one exponent field. */
  const v128_t ni = wasm_i32x4_trunc_sat_f32x4(n), half = wasm_i32x4_shr(ni, 1);
  const v128_t bias = wasm_i32x4_splat(127);
  v128_t r = wasm_f32x4_mul(y, wasm_i32x4_shl(wasm_i32x4_add(half, bias), 23));
  r = wasm_f32x4_mul(r, wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_sub(ni, half), bias), 23));
  r = wasm_v128_bitselect(wasm_f32x4_splat(__builtin_inff()), r, over);
  r = wasm_v128_andnot(r, under);
  return wasm_v128_bitselect(x, r, nan);
}

__attribute__((export_name("exp_values")))
void exp_values(const float* x, float* out, int n, int part, int parts) {
  const int first = block_edge(n, part, parts), last = part == parts - 1 ? n : block_edge(n, part + 1, parts);
  int i = first;
  for (; i + 4 <= last; i += 4) wasm_v128_store(out + i, exp_v(wasm_v128_load(x + i)));
  if (i < last) {
    /* The tail through the same lanes, loaded one by one so nothing past n is read. */
    const int m = last - i;
    const v128_t r = exp_v(wasm_f32x4_make(x[i], m > 1 ? x[i + 1] : 0.0f, m > 2 ? x[i + 2] : 0.0f, 0.0f));
    out[i] = wasm_f32x4_extract_lane(r, 0);
    if (m > 1) out[i + 1] = wasm_f32x4_extract_lane(r, 1);
    if (m > 2) out[i + 2] = wasm_f32x4_extract_lane(r, 2);
  }
}

/*
 * InfoNCE's log-probabilities (methods/losses.ts): per row n of the logits [pos_n, neg_n…]/τ,
 * out[n] = log softmax(row)[0], as tfjs's logSoftmax computes it (the row's max subtracted, the
 * log of the sum of exponentials), without materialising the [N, 1 + K] logits: tfjs ran Concat,
 * RealDiv, Max, Sub, Exp, Sum, Log, Sub and Slice over them, and their gradients, which took
 * about 45 of DenseCL's 370 ms a step on its [1024, 1025] logits (tf.profile); InfoNCE forward
 * and backward, products included, went 63 → 35 ms there and 48 → 25 at MoCo's [128, 4097].
 * stats keeps each row's max and sum for the gradient. Parts split the rows.
 */

/* ln x for x ≥ 1, finite (a sum of exponentials, the largest e⁰): Cephes' logf, about 1 ulp. */
INLINE float log_ge1(float x) {
  const int bits = __builtin_bit_cast(int, x);
  int e = ((bits >> 23) & 0xff) - 126;
  float m = __builtin_bit_cast(float, (bits & 0x007fffff) | 0x3f000000); /* x = 2^e · m, m ∈ [½, 1) */
  if (m < 0.70710678118654752f) {
    e -= 1;
    m = m + m - 1.0f;
  } else {
    m = m - 1.0f;
  }
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y += -2.12194440e-4f * (float)e;
  y += -0.5f * z;
  return m + y + 0.693359375f * (float)e;
}

INLINE float exp_s(float x) { return wasm_f32x4_extract_lane(exp_v(wasm_f32x4_splat(x)), 0); }

/* Σ_j exp(neg[j]·(1/τ) − m) over k values, four lanes at a time, then the lanes in order. */
INLINE float row_exp_sum(const float* neg, int k, float inv, float m) {
  v128_t acc = wasm_f32x4_splat(0.0f);
  const v128_t mv = wasm_f32x4_splat(m), iv = wasm_f32x4_splat(inv);
  int j = 0;
  for (; j + 4 <= k; j += 4) acc = wasm_f32x4_add(acc, exp_v(wasm_f32x4_sub(wasm_f32x4_mul(wasm_v128_load(neg + j), iv), mv)));
  float s = wasm_f32x4_extract_lane(acc, 0) + wasm_f32x4_extract_lane(acc, 1) + wasm_f32x4_extract_lane(acc, 2) + wasm_f32x4_extract_lane(acc, 3);
  for (; j < k; j++) s += exp_s(neg[j] * inv - m);
  return s;
}

/* Logits are similarities times 1/τ (one rounding from tfjs's division by τ). */
__attribute__((export_name("contrast_log_prob")))
void contrast_log_prob(const float* pos, const float* neg, float* out, float* stats, int n, int k, int tau_bits, int part, int parts) {
  const float inv = 1.0f / float_of(tau_bits);
  const v128_t iv = wasm_f32x4_splat(inv);
  const int r0 = (int)((long long)n * part / parts), r1 = (int)((long long)n * (part + 1) / parts);
  for (int r = r0; r < r1; r++) {
    const float* row = neg + (long long)r * k;
    const float l0 = pos[r] * inv;
    v128_t mv = wasm_f32x4_splat(l0);
    int j = 0;
    for (; j + 4 <= k; j += 4) mv = wasm_f32x4_max(mv, wasm_f32x4_mul(wasm_v128_load(row + j), iv));
    const float m01 = wasm_f32x4_extract_lane(mv, 0) > wasm_f32x4_extract_lane(mv, 1) ? wasm_f32x4_extract_lane(mv, 0) : wasm_f32x4_extract_lane(mv, 1);
    const float m23 = wasm_f32x4_extract_lane(mv, 2) > wasm_f32x4_extract_lane(mv, 3) ? wasm_f32x4_extract_lane(mv, 2) : wasm_f32x4_extract_lane(mv, 3);
    float m = m01 > m23 ? m01 : m23;
    for (; j < k; j++) {
      const float v = row[j] * inv;
      m = v > m ? v : m;
    }
    const float s = exp_s(l0 - m) + row_exp_sum(row, k, inv, m);
    /* A NaN or infinite logit makes s NaN (the max may pass a NaN over; its exponential keeps it):
     * the loss must be NaN too, as tfjs's is, for the divergence guard. log_ge1(NaN) is not. */
    out[r] = s != s ? s : (l0 - m) - log_ge1(s);
    stats[2 * r] = m;
    stats[2 * r + 1] = s;
  }
}

/*
 * Its gradient: with p_j = exp(l_j − m)/s the row's softmax, d l_j = dy_n·(δ_j0 − p_j), and
 * through the scaling by 1/τ, dpos = d l_0/τ, dneg_j = d l_j/τ. Parts split the rows.
 */
__attribute__((export_name("contrast_log_prob_grad")))
void contrast_log_prob_grad(const float* pos, const float* neg, const float* stats, const float* dy, float* dpos, float* dneg, int n, int k,
                            int tau_bits, int part, int parts) {
  const float inv = 1.0f / float_of(tau_bits);
  const v128_t iv = wasm_f32x4_splat(inv);
  const int r0 = (int)((long long)n * part / parts), r1 = (int)((long long)n * (part + 1) / parts);
  for (int r = r0; r < r1; r++) {
    const float* row = neg + (long long)r * k;
    float* drow = dneg + (long long)r * k;
    const float m = stats[2 * r], s = stats[2 * r + 1], g = dy[r];
    const float c = -g * inv / s; /* dneg_j = −g·p_j/τ = c·exp(l_j − m) */
    const v128_t mv = wasm_f32x4_splat(m), cv = wasm_f32x4_splat(c);
    dpos[r] = g * (1.0f - exp_s(pos[r] * inv - m) / s) * inv;
    int j = 0;
    for (; j + 4 <= k; j += 4)
      wasm_v128_store(drow + j, wasm_f32x4_mul(cv, exp_v(wasm_f32x4_sub(wasm_f32x4_mul(wasm_v128_load(row + j), iv), mv))));
    for (; j < k; j++) drow[j] = c * exp_s(row[j] * inv - m);
  }
}

/*
 * The weight updates of a step, each in one pass where tfjs's ops made three or four, with their
 * roundings: a product, then a sum, never fused (so the values are the ops' bit for bit).
 *   ema_values:   out = k·m + q·c             (θ_k ← m·θ_k + (1 − m)·θ_q, c = 1 − m; the batch-norm
 *                                             running variance's c = (1 − m)·n/(n − 1))
 *   sgd_momentum: a' = m·a + g;  v' = c·a' + v (tfjs's MomentumOptimizer, c = −lr)
 * Parts split the values.
 */
__attribute__((export_name("ema_values")))
void ema_values(const float* k, const float* q, float* out, int n, int m_bits, int c_bits, int part, int parts) {
#pragma clang fp contract(off) /* a product, then a sum: a newer clang may lower a contracted pair to relaxed_madd */
  const int first = block_edge(n, part, parts), last = part == parts - 1 ? n : block_edge(n, part + 1, parts);
  const float m = float_of(m_bits), c = float_of(c_bits);
  const v128_t mv = wasm_f32x4_splat(m), cv = wasm_f32x4_splat(c);
  int i = first;
  for (; i + 4 <= last; i += 4)
    wasm_v128_store(out + i, wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(k + i), mv), wasm_f32x4_mul(wasm_v128_load(q + i), cv)));
  for (; i < last; i++) out[i] = k[i] * m + q[i] * c;
}

__attribute__((export_name("sgd_momentum")))
void sgd_momentum(const float* v, const float* a, const float* g, float* v_out, float* a_out, int n, int m_bits, int c_bits, int part,
                  int parts) {
#pragma clang fp contract(off)
  const int first = block_edge(n, part, parts), last = part == parts - 1 ? n : block_edge(n, part + 1, parts);
  const float m = float_of(m_bits), c = float_of(c_bits);
  const v128_t mv = wasm_f32x4_splat(m), cv = wasm_f32x4_splat(c);
  int i = first;
  for (; i + 4 <= last; i += 4) {
    const v128_t acc = wasm_f32x4_add(wasm_f32x4_mul(mv, wasm_v128_load(a + i)), wasm_v128_load(g + i));
    wasm_v128_store(a_out + i, acc);
    wasm_v128_store(v_out + i, wasm_f32x4_add(wasm_f32x4_mul(cv, acc), wasm_v128_load(v + i)));
  }
  for (; i < last; i++) {
    const float acc = m * a[i] + g[i];
    a_out[i] = acc;
    v_out[i] = c * acc + v[i];
  }
}

/* out = max(x, 0) on SIMD lanes (tfjs's wasm Relu runs one value at a time). Parts split the values. */
__attribute__((export_name("relu_values")))
void relu_values(const float* x, float* out, int n, int part, int parts) {
  const int first = block_edge(n, part, parts), last = part == parts - 1 ? n : block_edge(n, part + 1, parts);
  const v128_t zero = wasm_f32x4_splat(0.0f);
  int i = first;
  /* Keeps NaN, as tfjs's kernels do: a NaN activation must reach the divergence guard. */
  for (; i + 4 <= last; i += 4) {
    const v128_t v = wasm_v128_load(x + i);
    wasm_v128_store(out + i, wasm_v128_andnot(v, wasm_f32x4_lt(v, zero)));
  }
  for (; i < last; i++) out[i] = x[i] < 0.0f ? 0.0f : x[i];
}

/*
 * 3×3 stride-1 convolution by Winograd's F(2×2, 3×3) (Lavin & Gray, 2016): each 2×2 block of
 * outputs is Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A over the 4×4 input patch d, so the products become 16
 * matrix products of [tiles × Ci]·[Ci × Co] with 2.25× fewer multiplies than the direct sum.
 * XNNPACK (tfjs's wasm Conv2D) convolves directly; 3×3 stride-1 convolutions, forward and as
 * input gradients, are most of a ResNet step. F(2×2) keeps the transforms' constants at 0.5 and
 * 1, so its rounding stays at the direct sum's (F(4×4) would not).
 *
 * U = G g Gᵀ, the filter's transform [16, Ci, Co], is its own call (winograd_filter).
 */
typedef struct {
  int batch, in_h, in_w, in_c, out_h, out_w, out_c, pad_top, pad_left, block;
} wino_t;

/* U[ξ, c, o] for w [3,3,Ci,Co]; Co a multiple of 4. Parts split the input channels. */
__attribute__((export_name("winograd_filter")))
void winograd_filter(const int* geometry, const float* w, float* u, int part, int parts) {
  const int in_c = geometry[3], out_c = geometry[6];
  const int first = (int)((long long)in_c * part / parts), last = (int)((long long)in_c * (part + 1) / parts);
  const v128_t half = wasm_f32x4_splat(0.5f);
  for (int c = first; c < last; c++)
    for (int o = 0; o < out_c; o += 4) {
      v128_t g[3][3], t[4][3];
      #pragma clang loop unroll(full)
      for (int p = 0; p < 3; p++)
        #pragma clang loop unroll(full)
        for (int q = 0; q < 3; q++) g[p][q] = wasm_v128_load(w + ((p * 3 + q) * in_c + c) * out_c + o);
      /* G g: rows g0, (g0+g1+g2)/2, (g0−g1+g2)/2, g2. */
      #pragma clang loop unroll(full)
      for (int q = 0; q < 3; q++) {
        const v128_t s = wasm_f32x4_add(g[0][q], g[2][q]);
        t[0][q] = g[0][q];
        t[1][q] = wasm_f32x4_mul(half, wasm_f32x4_add(s, g[1][q]));
        t[2][q] = wasm_f32x4_mul(half, wasm_f32x4_sub(s, g[1][q]));
        t[3][q] = g[2][q];
      }
      /* (G g) Gᵀ: the same on the columns. */
      #pragma clang loop unroll(full)
      for (int r = 0; r < 4; r++) {
        const v128_t s = wasm_f32x4_add(t[r][0], t[r][2]);
        float* dst = u + ((r * 4) * in_c + c) * out_c + o;
        const int step = in_c * out_c;
        wasm_v128_store(dst, t[r][0]);
        wasm_v128_store(dst + step, wasm_f32x4_mul(half, wasm_f32x4_add(s, t[r][1])));
        wasm_v128_store(dst + 2 * step, wasm_f32x4_mul(half, wasm_f32x4_sub(s, t[r][1])));
        wasm_v128_store(dst + 3 * step, t[r][2]);
      }
    }
}

/* V[ξ, t, c..c+4] = (Bᵀ d B)[ξ] for the 4×4 patch of tile `tile` at channels c..c+4 (zeros outside the image). */
INLINE void wino_input(const wino_t* g, const float* x, float* v, int tile, int t, int c) {
  const int th = (g->out_h + 1) / 2, tw = (g->out_w + 1) / 2;
  const int b = tile / (th * tw), rest = tile - b * th * tw;
  const int y0 = (rest / tw) * 2 - g->pad_top, x0 = (rest % tw) * 2 - g->pad_left;
  v128_t d[4][4], e[4][4];
  const v128_t zero = wasm_f32x4_splat(0.0f);
  #pragma clang loop unroll(full)
  for (int r = 0; r < 4; r++)
    #pragma clang loop unroll(full)
    for (int s = 0; s < 4; s++) {
      const int yy = y0 + r, xx = x0 + s;
      d[r][s] = yy >= 0 && yy < g->in_h && xx >= 0 && xx < g->in_w ? wasm_v128_load(x + ((b * g->in_h + yy) * g->in_w + xx) * g->in_c + c) : zero;
    }
  /* Bᵀ d: rows d0−d2, d1+d2, d2−d1, d1−d3. */
  #pragma clang loop unroll(full)
  for (int s = 0; s < 4; s++) {
    e[0][s] = wasm_f32x4_sub(d[0][s], d[2][s]);
    e[1][s] = wasm_f32x4_add(d[1][s], d[2][s]);
    e[2][s] = wasm_f32x4_sub(d[2][s], d[1][s]);
    e[3][s] = wasm_f32x4_sub(d[1][s], d[3][s]);
  }
  const int step = g->block * g->in_c;
  float* dst = v + t * g->in_c + c;
  #pragma clang loop unroll(full)
  for (int r = 0; r < 4; r++) {
    wasm_v128_store(dst + (r * 4 + 0) * step, wasm_f32x4_sub(e[r][0], e[r][2]));
    wasm_v128_store(dst + (r * 4 + 1) * step, wasm_f32x4_add(e[r][1], e[r][2]));
    wasm_v128_store(dst + (r * 4 + 2) * step, wasm_f32x4_sub(e[r][2], e[r][1]));
    wasm_v128_store(dst + (r * 4 + 3) * step, wasm_f32x4_sub(e[r][1], e[r][3]));
  }
}

/* out[b, 2i.., 2j.., o..o+4] = (Aᵀ m A) for tile `tile`, from M[ξ, t, o..o+4]; rows and columns past the output are dropped. */
INLINE void wino_output(const wino_t* g, const float* m, float* out, int tile, int t, int o) {
  const int th = (g->out_h + 1) / 2, tw = (g->out_w + 1) / 2;
  const int b = tile / (th * tw), rest = tile - b * th * tw;
  const int y0 = (rest / tw) * 2, x0 = (rest % tw) * 2;
  const int step = g->block * g->out_c;
  const float* src = m + t * g->out_c + o;
  v128_t e[2][4];
  /* Aᵀ m: rows m0+m1+m2, m1−m2−m3. */
  #pragma clang loop unroll(full)
  for (int s = 0; s < 4; s++) {
    const v128_t m0 = wasm_v128_load(src + s * step), m1 = wasm_v128_load(src + (4 + s) * step);
    const v128_t m2 = wasm_v128_load(src + (8 + s) * step), m3 = wasm_v128_load(src + (12 + s) * step);
    e[0][s] = wasm_f32x4_add(wasm_f32x4_add(m0, m1), m2);
    e[1][s] = wasm_f32x4_sub(wasm_f32x4_sub(m1, m2), m3);
  }
  #pragma clang loop unroll(full)
  for (int r = 0; r < 2; r++) {
    if (y0 + r >= g->out_h) break;
    float* dst = out + ((b * g->out_h + y0 + r) * g->out_w + x0) * g->out_c + o;
    wasm_v128_store(dst, wasm_f32x4_add(wasm_f32x4_add(e[r][0], e[r][1]), e[r][2]));
    if (x0 + 1 < g->out_w) wasm_v128_store(dst + g->out_c, wasm_f32x4_sub(wasm_f32x4_sub(e[r][1], e[r][2]), e[r][3]));
  }
}

/* M[t0..t0+R, o..o+4·OV] = V[t0..t0+R, :] · U[:, o..o+4·OV] for one ξ (the matrices already offset to it). */
INLINE void wino_gemm_tile(const float* a, const float* bm, float* c, int k, int n, int t0, int o, const int R, const int OV) {
  v128_t acc[4][2];
  #pragma clang loop unroll(full)
  for (int r = 0; r < R; r++)
    #pragma clang loop unroll(full)
    for (int v = 0; v < OV; v++) acc[r][v] = wasm_f32x4_splat(0.0f);
  const float* ap = a + t0 * k;
  const float* bp = bm + o;
  for (int kk = 0; kk < k; kk++, bp += n) {
    v128_t bv[2];
    #pragma clang loop unroll(full)
    for (int v = 0; v < OV; v++) bv[v] = wasm_v128_load(bp + 4 * v);
    #pragma clang loop unroll(full)
    for (int r = 0; r < R; r++) {
      const v128_t s = wasm_v128_load32_splat(ap + r * k + kk);
      #pragma clang loop unroll(full)
      for (int v = 0; v < OV; v++) acc[r][v] = MADD(s, bv[v], acc[r][v]);
    }
  }
  #pragma clang loop unroll(full)
  for (int r = 0; r < R; r++)
    #pragma clang loop unroll(full)
    for (int v = 0; v < OV; v++) wasm_v128_store(c + (t0 + r) * n + o + 4 * v, acc[r][v]);
}

/*
 * F(4×4, 3×3): each 4×4 block of outputs from a 6×6 input patch, 36 products [tiles × Ci]·[Ci × Co]
 * for 16 outputs where F(2×2) takes 16 for 4: 1.78× fewer multiplies again (4× fewer than the
 * direct sum). Its transforms (Lavin & Gray's points 0, ±1, ±2) multiply by up to 8 and divide by
 * 24, so it rounds worse than F(2×2): 3–9e-6 from the cpu backend on ResNet layers (tested
 * within 2e-5), where F(2×2) keeps about 1e-6. winograd.ts takes it wherever it needs fewer
 * products than F(2×2), forward and filter gradient (winograd4_filter_grad, below).
 * U [36, Ci, Co] from winograd4_filter; V, M [36, block, C] per work item.
 */
/* G applied to three: g0/4, −(g0+g1+g2)/6, −(g0−g1+g2)/6, g0/24 + g1/12 + g2/6, g0/24 − g1/12 + g2/6, g2. */
INLINE void wino4_g(v128_t a, v128_t b, v128_t c, v128_t* r) {
  const v128_t s6 = wasm_f32x4_splat(1.0f / 6.0f), s12 = wasm_f32x4_splat(1.0f / 12.0f);
  const v128_t ac = wasm_f32x4_add(a, c);
  const v128_t mid = wasm_f32x4_add(wasm_f32x4_mul(a, wasm_f32x4_splat(1.0f / 24.0f)), wasm_f32x4_mul(c, s6));
  r[0] = wasm_f32x4_mul(a, wasm_f32x4_splat(0.25f));
  r[1] = wasm_f32x4_neg(wasm_f32x4_mul(wasm_f32x4_add(ac, b), s6));
  r[2] = wasm_f32x4_neg(wasm_f32x4_mul(wasm_f32x4_sub(ac, b), s6));
  r[3] = wasm_f32x4_add(mid, wasm_f32x4_mul(b, s12));
  r[4] = wasm_f32x4_sub(mid, wasm_f32x4_mul(b, s12));
  r[5] = c;
}

__attribute__((export_name("winograd4_filter")))
void winograd4_filter(const int* geometry, const float* w, float* u, int part, int parts) {
  const int in_c = geometry[3], out_c = geometry[6];
  const int first = (int)((long long)in_c * part / parts), last = (int)((long long)in_c * (part + 1) / parts);
  for (int c = first; c < last; c++)
    for (int o = 0; o < out_c; o += 4) {
      v128_t g[3][3], t[6][3];
      #pragma clang loop unroll(full)
      for (int p = 0; p < 3; p++)
        #pragma clang loop unroll(full)
        for (int q = 0; q < 3; q++) g[p][q] = wasm_v128_load(w + ((p * 3 + q) * in_c + c) * out_c + o);
      /* G g, column by column, then (G g) Gᵀ, row by row. */
      #pragma clang loop unroll(full)
      for (int q = 0; q < 3; q++) {
        v128_t col[6];
        wino4_g(g[0][q], g[1][q], g[2][q], col);
        #pragma clang loop unroll(full)
        for (int r = 0; r < 6; r++) t[r][q] = col[r];
      }
      #pragma clang loop unroll(full)
      for (int r = 0; r < 6; r++) {
        v128_t row[6];
        wino4_g(t[r][0], t[r][1], t[r][2], row);
        #pragma clang loop unroll(full)
        for (int s = 0; s < 6; s++) wasm_v128_store(u + ((r * 6 + s) * in_c + c) * out_c + o, row[s]);
      }
    }
}

/* Bᵀ applied to a column of six: 4d0−5d2+d4, −4(d1+d2)+d3+d4, 4(d1−d2)−d3+d4, 2(d3−d1)−d2+d4, 2(d1−d3)−d2+d4, 4d1−5d3+d5. */
INLINE void wino4_bt(const v128_t* d, v128_t* r) {
  const v128_t four = wasm_f32x4_splat(4.0f), five = wasm_f32x4_splat(5.0f), two = wasm_f32x4_splat(2.0f);
  const v128_t d4_d2 = wasm_f32x4_sub(d[4], d[2]);
  const v128_t d3_d1 = wasm_f32x4_sub(d[3], d[1]);
  r[0] = wasm_f32x4_add(wasm_f32x4_sub(wasm_f32x4_mul(four, d[0]), wasm_f32x4_mul(five, d[2])), d[4]);
  r[1] = wasm_f32x4_sub(wasm_f32x4_add(d[3], d[4]), wasm_f32x4_mul(four, wasm_f32x4_add(d[1], d[2])));
  r[2] = wasm_f32x4_add(wasm_f32x4_mul(four, wasm_f32x4_sub(d[1], d[2])), wasm_f32x4_sub(d[4], d[3]));
  r[3] = wasm_f32x4_add(wasm_f32x4_mul(two, d3_d1), d4_d2);
  r[4] = wasm_f32x4_sub(d4_d2, wasm_f32x4_mul(two, d3_d1));
  r[5] = wasm_f32x4_add(wasm_f32x4_sub(wasm_f32x4_mul(four, d[1]), wasm_f32x4_mul(five, d[3])), d[5]);
}

/* V[ξ, t, c..c+4] = (Bᵀ d B)[ξ] for the 6×6 patch of tile `tile` (zeros outside the image). */
INLINE void wino4_input(const wino_t* g, const float* x, float* v, int tile, int t, int c) {
  const int th = (g->out_h + 3) / 4, tw = (g->out_w + 3) / 4;
  const int b = tile / (th * tw), rest = tile - b * th * tw;
  const int y0 = (rest / tw) * 4 - g->pad_top, x0 = (rest % tw) * 4 - g->pad_left;
  const v128_t zero = wasm_f32x4_splat(0.0f);
  v128_t e[6][6];
  #pragma clang loop unroll(full)
  for (int s = 0; s < 6; s++) {
    v128_t d[6];
    const int xx = x0 + s;
    #pragma clang loop unroll(full)
    for (int r = 0; r < 6; r++) {
      const int yy = y0 + r;
      d[r] = yy >= 0 && yy < g->in_h && xx >= 0 && xx < g->in_w ? wasm_v128_load(x + ((b * g->in_h + yy) * g->in_w + xx) * g->in_c + c) : zero;
    }
    v128_t col[6];
    wino4_bt(d, col);
    #pragma clang loop unroll(full)
    for (int r = 0; r < 6; r++) e[r][s] = col[r];
  }
  const int step = g->block * g->in_c;
  float* dst = v + t * g->in_c + c;
  #pragma clang loop unroll(full)
  for (int r = 0; r < 6; r++) {
    v128_t row[6];
    wino4_bt(e[r], row);
    #pragma clang loop unroll(full)
    for (int s = 0; s < 6; s++) wasm_v128_store(dst + (r * 6 + s) * step, row[s]);
  }
}

/* Aᵀ applied to a column of six: m0+m1+m2+m3+m4, m1−m2+2(m3−m4), m1+m2+4(m3+m4), m1−m2+8(m3−m4)+m5. */
INLINE void wino4_at(const v128_t* m, v128_t* r) {
  const v128_t p12 = wasm_f32x4_add(m[1], m[2]), d12 = wasm_f32x4_sub(m[1], m[2]);
  const v128_t p34 = wasm_f32x4_add(m[3], m[4]), d34 = wasm_f32x4_sub(m[3], m[4]);
  r[0] = wasm_f32x4_add(wasm_f32x4_add(m[0], p12), p34);
  r[1] = wasm_f32x4_add(d12, wasm_f32x4_mul(wasm_f32x4_splat(2.0f), d34));
  r[2] = wasm_f32x4_add(p12, wasm_f32x4_mul(wasm_f32x4_splat(4.0f), p34));
  r[3] = wasm_f32x4_add(wasm_f32x4_add(d12, wasm_f32x4_mul(wasm_f32x4_splat(8.0f), d34)), m[5]);
}

/* out[b, 4i.., 4j.., o..o+4] = (Aᵀ m A) for tile `tile`, from M[ξ, t, o..o+4]; rows and columns past the output dropped. */
INLINE void wino4_output(const wino_t* g, const float* m, float* out, int tile, int t, int o) {
  const int th = (g->out_h + 3) / 4, tw = (g->out_w + 3) / 4;
  const int b = tile / (th * tw), rest = tile - b * th * tw;
  const int y0 = (rest / tw) * 4, x0 = (rest % tw) * 4;
  const int step = g->block * g->out_c;
  const float* src = m + t * g->out_c + o;
  v128_t e[4][6];
  #pragma clang loop unroll(full)
  for (int s = 0; s < 6; s++) {
    v128_t col[6], r[4];
    #pragma clang loop unroll(full)
    for (int q = 0; q < 6; q++) col[q] = wasm_v128_load(src + (q * 6 + s) * step);
    wino4_at(col, r);
    #pragma clang loop unroll(full)
    for (int q = 0; q < 4; q++) e[q][s] = r[q];
  }
  const int cols = g->out_w - x0;
  #pragma clang loop unroll(full)
  for (int r = 0; r < 4; r++) {
    if (y0 + r >= g->out_h) break;
    v128_t row[4];
    wino4_at(e[r], row);
    float* dst = out + ((b * g->out_h + y0 + r) * g->out_w + x0) * g->out_c + o;
    wasm_v128_store(dst, row[0]);
    if (cols > 1) wasm_v128_store(dst + g->out_c, row[1]);
    if (cols > 2) wasm_v128_store(dst + 2 * g->out_c, row[2]);
    if (cols > 3) wasm_v128_store(dst + 3 * g->out_c, row[3]);
  }
}

/* M[ξ] = V[ξ] · U[ξ] for the `points` transform points of one work item of `n` tiles. */
static void wino_products(const wino_t* g, const float* v, const float* u, float* m, int n, int points) {
  const int rows4 = n - n % 4;
  for (int xi = 0; xi < points; xi++) {
    const float* a = v + xi * g->block * g->in_c;
    const float* bm = u + xi * g->in_c * g->out_c;
    float* c = m + xi * g->block * g->out_c;
    int o = 0;
    for (; o + 8 <= g->out_c; o += 8) {
      for (int t = 0; t < rows4; t += 4) wino_gemm_tile(a, bm, c, g->in_c, g->out_c, t, o, 4, 2);
      for (int t = rows4; t < n; t++) wino_gemm_tile(a, bm, c, g->in_c, g->out_c, t, o, 1, 2);
    }
    for (; o < g->out_c; o += 4) {
      for (int t = 0; t < rows4; t += 4) wino_gemm_tile(a, bm, c, g->in_c, g->out_c, t, o, 4, 1);
      for (int t = rows4; t < n; t++) wino_gemm_tile(a, bm, c, g->in_c, g->out_c, t, o, 1, 1);
    }
  }
}

/* One work item: `n` tiles from `first`, through V and M in this part's scratch; `tile` 2 (F(2×2)) or 4 (F(4×4)). */
static void wino_item(const wino_t* g, const float* x, const float* u, float* out, float* v, float* m, int first, int n, int tile) {
  for (int t = 0; t < n; t++)
    for (int c = 0; c < g->in_c; c += 4) {
      if (tile == 4) wino4_input(g, x, v, first + t, t, c);
      else wino_input(g, x, v, first + t, t, c);
    }
  wino_products(g, v, u, m, n, tile == 4 ? 36 : 16);
  for (int t = 0; t < n; t++)
    for (int o = 0; o < g->out_c; o += 4) {
      if (tile == 4) wino4_output(g, m, out, first + t, t, o);
      else wino_output(g, m, out, first + t, t, o);
    }
}

/* The convolution's work items, claimed from the counter after the geometry, for tiles of `tile`. */
static void wino_conv_items(const int* geometry, const float* x, const float* u, float* out, float* scratch, int part, int parts, int tile) {
  const wino_t g = *(const wino_t*)geometry;
  const int points = (tile + 2) * (tile + 2);
  const int tiles = g.batch * ((g.out_h + tile - 1) / tile) * ((g.out_w + tile - 1) / tile);
  const int items = (tiles + g.block - 1) / g.block;
  float* v = scratch + (long long)part * points * g.block * (g.in_c + g.out_c);
  float* m = v + points * g.block * g.in_c;
#ifdef __wasm_atomics__
  int* counter = (int*)geometry + 10;
  (void)parts;
  for (int it = __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED); it < items; it = __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED)) {
#else
  const int first = (int)((long long)items * part / parts), last = (int)((long long)items * (part + 1) / parts);
  for (int it = first; it < last; it++) {
#endif
    const int t0 = it * g.block;
    wino_item(&g, x, u, out, v, m, t0, tiles - t0 < g.block ? tiles - t0 : g.block, tile);
  }
}

/*
 * x [B,H,W,Ci] ⊛ w → out [B,Ho,Wo,Co] for a 3×3 filter, stride and dilation 1, from its
 * transform u (winograd_filter). Ci and Co multiples of 4. geometry: 10 ints in wino_t order
 * (`block`: tiles per work item), then a counter the caller zeroes. scratch holds, per part,
 * 16·block·(Ci+Co) floats. Work items are blocks of tiles, claimed as conv2d_filter_grad does.
 */
__attribute__((export_name("winograd_conv")))
void winograd_conv(const int* geometry, const float* x, const float* u, float* out, float* scratch, int part, int parts) {
  wino_conv_items(geometry, x, u, out, scratch, part, parts, 2);
}

/* As winograd_conv, by F(4×4, 3×3): scratch holds 36·block·(Ci+Co) floats per part. */
__attribute__((export_name("winograd4_conv")))
void winograd4_conv(const int* geometry, const float* x, const float* u, float* out, float* scratch, int part, int parts) {
  wino_conv_items(geometry, x, u, out, scratch, part, parts, 4);
}

/*
 * The filter gradient of the same convolution, through the same transforms: with Z = U ⊙ V per
 * tile, dZ = A dY Aᵀ, dU[ξ] = Σ_tiles Vᵀ[ξ] dZ[ξ] (16 products whose inner axis is the tiles)
 * and dw = Gᵀ dU G. Each part sums its share of the tiles into a dU of its own;
 * winograd_filter_grad_sum adds the parts' in order and transforms them.
 */

/* dZ[ξ, t, o..o+4] = (A dy Aᵀ)[ξ] for tile `tile` (dy zero past the output's edge). */
INLINE void wino_dy(const wino_t* g, const float* dy, float* dz, int tile, int t, int o) {
  const int th = (g->out_h + 1) / 2, tw = (g->out_w + 1) / 2;
  const int b = tile / (th * tw), rest = tile - b * th * tw;
  const int y0 = (rest / tw) * 2, x0 = (rest % tw) * 2;
  const v128_t zero = wasm_f32x4_splat(0.0f);
  const float* src = dy + ((b * g->out_h + y0) * g->out_w + x0) * g->out_c + o;
  const int right = x0 + 1 < g->out_w, below = y0 + 1 < g->out_h;
  const v128_t a = wasm_v128_load(src);
  const v128_t bb = right ? wasm_v128_load(src + g->out_c) : zero;
  const v128_t c = below ? wasm_v128_load(src + g->out_w * g->out_c) : zero;
  const v128_t d = right && below ? wasm_v128_load(src + (g->out_w + 1) * g->out_c) : zero;
  /* A dy: rows (a, b), (a+c, b+d), (a−c, b−d), (−c, −d); then each row (u, v) → (u, u+v, u−v, −v). */
  v128_t r[4][2];
  r[0][0] = a, r[0][1] = bb;
  r[1][0] = wasm_f32x4_add(a, c), r[1][1] = wasm_f32x4_add(bb, d);
  r[2][0] = wasm_f32x4_sub(a, c), r[2][1] = wasm_f32x4_sub(bb, d);
  r[3][0] = wasm_f32x4_neg(c), r[3][1] = wasm_f32x4_neg(d);
  const int step = g->block * g->out_c;
  float* dst = dz + t * g->out_c + o;
  #pragma clang loop unroll(full)
  for (int i = 0; i < 4; i++) {
    const v128_t u = r[i][0], v = r[i][1];
    wasm_v128_store(dst + (i * 4 + 0) * step, u);
    wasm_v128_store(dst + (i * 4 + 1) * step, wasm_f32x4_add(u, v));
    wasm_v128_store(dst + (i * 4 + 2) * step, wasm_f32x4_sub(u, v));
    wasm_v128_store(dst + (i * 4 + 3) * step, wasm_f32x4_neg(v));
  }
}

/* dU[c0..c0+CR, o..o+4·OV] += Σ_t V[t, c]·dZ[t, o] over n tiles, for one ξ (matrices offset to it). */
INLINE void wino_grad_tile(const float* v, const float* dz, float* du, int in_c, int out_c, int n, int c0, int o, const int CR, const int OV) {
  v128_t acc[4][2];
  #pragma clang loop unroll(full)
  for (int r = 0; r < CR; r++)
    #pragma clang loop unroll(full)
    for (int q = 0; q < OV; q++) acc[r][q] = wasm_v128_load(du + (c0 + r) * out_c + o + 4 * q);
  const float* vp = v + c0;
  const float* dp = dz + o;
  for (int t = 0; t < n; t++, vp += in_c, dp += out_c) {
    v128_t d[2];
    #pragma clang loop unroll(full)
    for (int q = 0; q < OV; q++) d[q] = wasm_v128_load(dp + 4 * q);
    #pragma clang loop unroll(full)
    for (int r = 0; r < CR; r++) {
      const v128_t s = wasm_v128_load32_splat(vp + r);
      #pragma clang loop unroll(full)
      for (int q = 0; q < OV; q++) acc[r][q] = MADD(s, d[q], acc[r][q]);
    }
  }
  #pragma clang loop unroll(full)
  for (int r = 0; r < CR; r++)
    #pragma clang loop unroll(full)
    for (int q = 0; q < OV; q++) wasm_v128_store(du + (c0 + r) * out_c + o + 4 * q, acc[r][q]);
}

/* A applied to four: y0, y0+y1+y2+y3, y0−y1+y2−y3, y0+2y1+4y2+8y3, y0−2y1+4y2−8y3, y3. */
INLINE void wino4_a(const v128_t* y, v128_t* z) {
  const v128_t p02 = wasm_f32x4_add(y[0], y[2]), p13 = wasm_f32x4_add(y[1], y[3]);
  const v128_t q02 = wasm_f32x4_add(y[0], wasm_f32x4_mul(wasm_f32x4_splat(4.0f), y[2]));
  const v128_t q13 = wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_splat(2.0f), y[1]), wasm_f32x4_mul(wasm_f32x4_splat(8.0f), y[3]));
  z[0] = y[0];
  z[1] = wasm_f32x4_add(p02, p13);
  z[2] = wasm_f32x4_sub(p02, p13);
  z[3] = wasm_f32x4_add(q02, q13);
  z[4] = wasm_f32x4_sub(q02, q13);
  z[5] = y[3];
}

/* dZ[ξ, t, o..o+4] = (A dy Aᵀ)[ξ] for tile `tile` (dy zero past the output's edge). */
INLINE void wino4_dy(const wino_t* g, const float* dy, float* dz, int tile, int t, int o) {
  const int th = (g->out_h + 3) / 4, tw = (g->out_w + 3) / 4;
  const int b = tile / (th * tw), rest = tile - b * th * tw;
  const int y0 = (rest / tw) * 4, x0 = (rest % tw) * 4;
  const v128_t zero = wasm_f32x4_splat(0.0f);
  v128_t e[6][4];
  #pragma clang loop unroll(full)
  for (int q = 0; q < 4; q++) {
    v128_t col[4], z[6];
    #pragma clang loop unroll(full)
    for (int r = 0; r < 4; r++)
      col[r] = y0 + r < g->out_h && x0 + q < g->out_w ? wasm_v128_load(dy + ((b * g->out_h + y0 + r) * g->out_w + x0 + q) * g->out_c + o) : zero;
    wino4_a(col, z);
    #pragma clang loop unroll(full)
    for (int r = 0; r < 6; r++) e[r][q] = z[r];
  }
  const int step = g->block * g->out_c;
  float* dst = dz + t * g->out_c + o;
  #pragma clang loop unroll(full)
  for (int r = 0; r < 6; r++) {
    v128_t row[6];
    wino4_a(e[r], row);
    #pragma clang loop unroll(full)
    for (int s = 0; s < 6; s++) wasm_v128_store(dst + (r * 6 + s) * step, row[s]);
  }
}

/* One work item of the filter gradient: V and dZ of `n` tiles from `first`, added into this part's dU; `tile` 2 or 4. */
static void wino_grad_item(const wino_t* g, const float* x, const float* dy, float* v, float* dz, float* du, int first, int n, int tile) {
  for (int t = 0; t < n; t++) {
    for (int c = 0; c < g->in_c; c += 4) {
      if (tile == 4) wino4_input(g, x, v, first + t, t, c);
      else wino_input(g, x, v, first + t, t, c);
    }
    for (int o = 0; o < g->out_c; o += 4) {
      if (tile == 4) wino4_dy(g, dy, dz, first + t, t, o);
      else wino_dy(g, dy, dz, first + t, t, o);
    }
  }
  const int points = (tile + 2) * (tile + 2);
  for (int xi = 0; xi < points; xi++) {
    const float* a = v + xi * g->block * g->in_c;
    const float* b = dz + xi * g->block * g->out_c;
    float* d = du + xi * g->in_c * g->out_c;
    for (int c = 0; c < g->in_c; c += 4) {
      int o = 0;
      for (; o + 8 <= g->out_c; o += 8) wino_grad_tile(a, b, d, g->in_c, g->out_c, n, c, o, 4, 2);
      for (; o < g->out_c; o += 4) wino_grad_tile(a, b, d, g->in_c, g->out_c, n, c, o, 4, 1);
    }
  }
}

/* This part's dU over its fixed share of the work items, for tiles of `tile`. */
static void wino_grad_items(const int* geometry, const float* x, const float* dy, float* scratch, int part, int parts, int tile) {
  const wino_t g = *(const wino_t*)geometry;
  const int points = (tile + 2) * (tile + 2);
  const int tiles = g.batch * ((g.out_h + tile - 1) / tile) * ((g.out_w + tile - 1) / tile);
  const int items = (tiles + g.block - 1) / g.block;
  float* v = scratch + (long long)part * points * (g.block * (g.in_c + g.out_c) + g.in_c * g.out_c);
  float* dz = v + points * g.block * g.in_c;
  float* du = dz + points * g.block * g.out_c;
  for (int i = 0; i < points * g.in_c * g.out_c; i++) du[i] = 0.0f;
  /* A fixed share of the tiles per part, not claimed from a counter as elsewhere: which tiles a
   * part sums decides the rounding of its dU, and a run must repeat bit for bit (an exact
   * resume, optimizers like Adam that magnify the last bits of a small gradient). */
  const int first = (int)((long long)items * part / parts), last = (int)((long long)items * (part + 1) / parts);
  for (int it = first; it < last; it++) {
    const int t0 = it * g.block;
    wino_grad_item(&g, x, dy, v, dz, du, t0, tiles - t0 < g.block ? tiles - t0 : g.block, tile);
  }
}

/*
 * x [B,H,W,Ci], dy [B,Ho,Wo,Co] → each part's dU [16, Ci, Co] in scratch, which holds per part
 * 16·(block·(Ci+Co) + Ci·Co) floats. geometry as winograd_conv's.
 */
__attribute__((export_name("winograd_filter_grad")))
void winograd_filter_grad(const int* geometry, const float* x, const float* dy, float* scratch, int part, int parts) {
  wino_grad_items(geometry, x, dy, scratch, part, parts, 2);
}

/* Σ over `used` parts of the 4 values at `at` in each part's dU, `stride` floats apart, in part order (so the bits repeat). */
INLINE v128_t parts_sum(const float* at, long long stride, int used) {
  v128_t s = wasm_v128_load(at);
  for (int p = 1; p < used; p++) s = wasm_f32x4_add(s, wasm_v128_load(at + p * stride));
  return s;
}

/* dw [3,3,Ci,Co] = Gᵀ (Σ over `used` parts' dU) G. Parts split the input channels. */
__attribute__((export_name("winograd_filter_grad_sum")))
void winograd_filter_grad_sum(const int* geometry, const float* scratch, float* dw, int used, int part, int parts) {
  const wino_t g = *(const wino_t*)geometry;
  const long long stride = 16LL * (g.block * (g.in_c + g.out_c) + g.in_c * g.out_c);
  const float* du = scratch + 16 * g.block * (g.in_c + g.out_c);
  const int first = (int)((long long)g.in_c * part / parts), last = (int)((long long)g.in_c * (part + 1) / parts);
  const v128_t half = wasm_f32x4_splat(0.5f);
  const int step = g.in_c * g.out_c;
  for (int c = first; c < last; c++)
    for (int o = 0; o < g.out_c; o += 4) {
      v128_t m[4][4], e[3][4];
      #pragma clang loop unroll(full)
      for (int xi = 0; xi < 16; xi++) {
        m[xi / 4][xi % 4] = parts_sum(du + xi * step + c * g.out_c + o, stride, used);
      }
      /* Gᵀ m: rows m0 + (m1+m2)/2, (m1−m2)/2, (m1+m2)/2 + m3; then the same on the columns. */
      #pragma clang loop unroll(full)
      for (int s = 0; s < 4; s++) {
        const v128_t h = wasm_f32x4_mul(half, wasm_f32x4_add(m[1][s], m[2][s]));
        e[0][s] = wasm_f32x4_add(m[0][s], h);
        e[1][s] = wasm_f32x4_mul(half, wasm_f32x4_sub(m[1][s], m[2][s]));
        e[2][s] = wasm_f32x4_add(h, m[3][s]);
      }
      #pragma clang loop unroll(full)
      for (int p = 0; p < 3; p++) {
        const v128_t h = wasm_f32x4_mul(half, wasm_f32x4_add(e[p][1], e[p][2]));
        float* dst = dw + (p * 3 * g.in_c + c) * g.out_c + o;
        wasm_v128_store(dst, wasm_f32x4_add(e[p][0], h));
        wasm_v128_store(dst + g.in_c * g.out_c, wasm_f32x4_mul(half, wasm_f32x4_sub(e[p][1], e[p][2])));
        wasm_v128_store(dst + 2 * g.in_c * g.out_c, wasm_f32x4_add(h, e[p][3]));
      }
    }
}

/*
 * The filter gradient by F(4×4, 3×3), as winograd_filter_grad and _sum with 36 transform
 * points: dZ = A dY Aᵀ (6×6 from a 4×4 block of dy), dU[ξ] = Σ_tiles Vᵀ[ξ] dZ[ξ], dw = Gᵀ dU G.
 * scratch holds per part 36·(block·(Ci+Co) + Ci·Co) floats.
 */

__attribute__((export_name("winograd4_filter_grad")))
void winograd4_filter_grad(const int* geometry, const float* x, const float* dy, float* scratch, int part, int parts) {
  wino_grad_items(geometry, x, dy, scratch, part, parts, 4);
}

/* Gᵀ applied to six: m0/4 − (m1+m2)/6 + (m3+m4)/24, (m2−m1)/6 + (m3−m4)/12, (m3+m4−m1−m2)/6 + m5. */
INLINE void wino4_gt(const v128_t* m, v128_t* w) {
  const v128_t s6 = wasm_f32x4_splat(1.0f / 6.0f);
  const v128_t p12 = wasm_f32x4_add(m[1], m[2]), p34 = wasm_f32x4_add(m[3], m[4]);
  w[0] = wasm_f32x4_add(wasm_f32x4_sub(wasm_f32x4_mul(m[0], wasm_f32x4_splat(0.25f)), wasm_f32x4_mul(p12, s6)),
                        wasm_f32x4_mul(p34, wasm_f32x4_splat(1.0f / 24.0f)));
  w[1] = wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_sub(m[2], m[1]), s6), wasm_f32x4_mul(wasm_f32x4_sub(m[3], m[4]), wasm_f32x4_splat(1.0f / 12.0f)));
  w[2] = wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_sub(p34, p12), s6), m[5]);
}

/* dw [3,3,Ci,Co] = Gᵀ (Σ over `used` parts' dU) G. Parts split the input channels. */
__attribute__((export_name("winograd4_filter_grad_sum")))
void winograd4_filter_grad_sum(const int* geometry, const float* scratch, float* dw, int used, int part, int parts) {
  const wino_t g = *(const wino_t*)geometry;
  const long long stride = 36LL * (g.block * (g.in_c + g.out_c) + g.in_c * g.out_c);
  const float* du = scratch + 36 * g.block * (g.in_c + g.out_c);
  const int first = (int)((long long)g.in_c * part / parts), last = (int)((long long)g.in_c * (part + 1) / parts);
  const int step = g.in_c * g.out_c;
  for (int c = first; c < last; c++)
    for (int o = 0; o < g.out_c; o += 4) {
      v128_t e[3][6];
      #pragma clang loop unroll(full)
      for (int s = 0; s < 6; s++) {
        v128_t col[6], w[3];
        #pragma clang loop unroll(full)
        for (int r = 0; r < 6; r++) {
          const int xi = r * 6 + s;
          col[r] = parts_sum(du + xi * step + c * g.out_c + o, stride, used);
        }
        wino4_gt(col, w);
        #pragma clang loop unroll(full)
        for (int p = 0; p < 3; p++) e[p][s] = w[p];
      }
      #pragma clang loop unroll(full)
      for (int p = 0; p < 3; p++) {
        v128_t w[3];
        wino4_gt(e[p], w);
        float* dst = dw + (p * 3 * g.in_c + c) * g.out_c + o;
        wasm_v128_store(dst, w[0]);
        wasm_v128_store(dst + step, w[1]);
        wasm_v128_store(dst + 2 * step, w[2]);
      }
    }
}

/*
 * Rows [ylo, yend) of an RGB byte image `fw` pixels wide, `count` values of each from column xlo,
 * as float32 rows one after another in `conv`: the part of an image a view reads, converted once
 * (each source value serves several output pixels, and converting per tap cost as much as the sums).
 */
INLINE void rows_to_float(const unsigned char* src, int fw, int xlo, int ylo, int yend, int count, float* conv) {
  for (int y = ylo; y < yend; y++) {
    const unsigned char* from = src + ((long long)y * fw + xlo) * 3;
    float* to = conv + (long long)(y - ylo) * count;
    int x = 0;
    for (; x + 16 <= count; x += 16) {
      const v128_t v = wasm_v128_load(from + x);
      const v128_t lo16 = wasm_u16x8_extend_low_u8x16(v), hi16 = wasm_u16x8_extend_high_u8x16(v);
      wasm_v128_store(to + x, wasm_f32x4_convert_u32x4(wasm_u32x4_extend_low_u16x8(lo16)));
      wasm_v128_store(to + x + 4, wasm_f32x4_convert_u32x4(wasm_u32x4_extend_high_u16x8(lo16)));
      wasm_v128_store(to + x + 8, wasm_f32x4_convert_u32x4(wasm_u32x4_extend_low_u16x8(hi16)));
      wasm_v128_store(to + x + 12, wasm_f32x4_convert_u32x4(wasm_u32x4_extend_high_u16x8(hi16)));
    }
    for (; x < count; x++) to[x] = (float)from[x];
  }
}

/*
 * Views cut from a batch of source images in one pass per view (operators/
 * augment-views.ts): each view's crop, resize, flip and blur as rows · image · colsᵀ from its
 * resampling weights, its 3×3 colour matrix and offset, clamp to 0–255, round half to even,
 * solarize, then a per-channel scale and shift (normalisation; 1 and 0 for bytes). The op graph
 * it replaces ran ten kernels a view index, most of them scalar loops over the whole batch.
 *
 * geometry: batch, height, width (the tallest and widest, with a layout), size, a
 * counter (0), the weights' band. layout: null for float32 sources of one size, or per image
 * [first word, height, width] of byte sources (each image's bytes padded to whole
 * words). params: scale[3], shift[3], then per view colour m[3][3] (out_r = Σ_c m[r][c]·in_c),
 * offset, solarize (0/1). weights: per view `size` row entries then `size` column entries of
 * [lo, n, band weights] (resample_view, below). scratch: size²·3 + size·fw·3 floats per part
 * (+ fh·fw·3 with a layout, fh and fw the tallest and widest), and 4 after.
 * Parts claim the views one at a time.
 */
/* Entry `w` of an axis `len` long: its first source pixel and weight count, kept within the axis whatever the caller wrote. */
INLINE void band_of(const float* w, int len, int* lo, int* n) {
  int a = (int)w[0], c = (int)w[1];
  if (a < 0) a = 0;
  if (a > len) a = len;
  if (c > len - a) c = len - a;
  if (c < 0) c = 0;
  *lo = a, *n = c;
}

/*
 * t[0 … count) = Σ_m w_m · img[(lo + m)·stride + 0 … count), w_m = rw[2 + m] (m < n): four vectors at a
 * time summed over the taps in registers (in order, zero weights skipped: each value is the
 * scalar loop's) and stored once.
 */
INLINE void weighted_rows(const float* img, long long stride, const float* rw, int lo, int n, float* t, int count) {
  int x = 0;
  for (; x + 16 <= count; x += 16) {
    v128_t a0 = wasm_f32x4_splat(0.0f), a1 = a0, a2 = a0, a3 = a0;
    for (int m = 0; m < n; m++) {
      const float w = rw[2 + m];
      if (w == 0.0f) continue;
      const v128_t wv = wasm_f32x4_splat(w);
      const float* line = img + (long long)(lo + m) * stride + x;
      a0 = MADD(wv, wasm_v128_load(line), a0);
      a1 = MADD(wv, wasm_v128_load(line + 4), a1);
      a2 = MADD(wv, wasm_v128_load(line + 8), a2);
      a3 = MADD(wv, wasm_v128_load(line + 12), a3);
    }
    wasm_v128_store(t + x, a0);
    wasm_v128_store(t + x + 4, a1);
    wasm_v128_store(t + x + 8, a2);
    wasm_v128_store(t + x + 12, a3);
  }
  for (; x < count; x++) {
    float a = 0.0f;
    for (int m = 0; m < n; m++) {
      const float w = rw[2 + m];
      if (w != 0.0f) a += w * img[(long long)(lo + m) * stride + x];
    }
    t[x] = a;
  }
}

/* acc + entry `w`'s weight m times the pixel (r, g, b as lanes 0–2) at p + 3m: one tap of a horizontal band. */
INLINE v128_t band_tap(v128_t acc, const float* w, const float* p, int m) {
  return MADD(wasm_f32x4_splat(w[2 + m]), wasm_v128_load(p + 3 * m), acc);
}

/*
 * View b's crop is rows · image · colsᵀ,
 * the weights read as bands (resample-weights.ts, blur folded in): each axis has `size` entries
 * of [lo, n, w_0 … w_band−1], output pixel i taking w_0 … w_n−1 from source pixels lo, lo + 1, …
 * (the rest of an entry is padding: a batch's entries share the widest view's width, and a view
 * drawn without blur needs a third of it). An entry reaching outside its image is cut to it.
 * Only the rows and columns some band reaches are read: a crop of a third of a photo reads a
 * third of it. `tall` holds rows · image. `conv` (byte images only) holds that part of the image
 * as float32, converted once: each source row serves several output rows, and converting per
 * tap cost as much as the sums.
 */
INLINE void resample_view(const void* src, const float* rows, const float* cols, float* crop, float* tall, float* conv, int fh, int fw, int size,
                          int band, const int bytes) {
  const int e = band + 2;
  int xlo = fw, xhi = 0, ylo = fh, yhi = 0;
  for (int j = 0; j < size; j++) {
    int lo, n;
    band_of(cols + j * e, fw, &lo, &n);
    if (lo < xlo) xlo = lo;
    if (lo + n > xhi) xhi = lo + n;
    band_of(rows + j * e, fh, &lo, &n);
    if (lo < ylo) ylo = lo;
    if (lo + n > yhi) yhi = lo + n;
  }
  if (xhi < xlo) xhi = xlo;
  if (yhi < ylo) yhi = ylo;
  const int count = (xhi - xlo) * 3;
  const float* img;
  long long stride;
  int shift;
  if (bytes) {
    rows_to_float((const unsigned char*)src, fw, xlo, ylo, yhi, count, conv);
    img = conv, stride = count, shift = ylo;
  } else {
    img = (const float*)src + xlo * 3, stride = (long long)fw * 3, shift = 0;
  }
  for (int i = 0; i < size; i++) {
    int lo, n;
    band_of(rows + i * e, fh, &lo, &n);
    weighted_rows(img, stride, rows + i * e, lo - shift, n, tall + i * fw * 3 + xlo * 3, count);
  }
  /* Each output pixel's r, g, b as lanes 0–2 of one vector; lane 3 (the next pixel's r, or past
   * the row) is carried along and its store overwritten by the next pixel's, or lands in the
   * scratch after the crop. Zero weights add 0 to lanes 0–2, so the sums are the scalar loop's.
   * Four pixels at a time, each its own sum over its taps in order: one sum is a chain of
   * dependent adds, and four chains keep the adder busy where one waited on each add. */
  for (int i = 0; i < size; i++) {
    const float* t = tall + i * fw * 3;
    float* o = crop + i * size * 3;
    int j = 0;
    for (; j + 4 <= size; j += 4) {
      const float* w0 = cols + j * e;
      const float *w1 = w0 + e, *w2 = w1 + e, *w3 = w2 + e;
      int l0, n0, l1, n1, l2, n2, l3, n3;
      band_of(w0, fw, &l0, &n0);
      band_of(w1, fw, &l1, &n1);
      band_of(w2, fw, &l2, &n2);
      band_of(w3, fw, &l3, &n3);
      const float *p0 = t + l0 * 3, *p1 = t + l1 * 3, *p2 = t + l2 * 3, *p3 = t + l3 * 3;
      v128_t a0 = wasm_f32x4_splat(0.0f), a1 = a0, a2 = a0, a3 = a0;
      int common = n0 < n1 ? n0 : n1;
      common = common < n2 ? common : n2;
      common = common < n3 ? common : n3;
      for (int m = 0; m < common; m++) {
        a0 = band_tap(a0, w0, p0, m);
        a1 = band_tap(a1, w1, p1, m);
        a2 = band_tap(a2, w2, p2, m);
        a3 = band_tap(a3, w3, p3, m);
      }
      for (int m = common; m < n0; m++) a0 = band_tap(a0, w0, p0, m);
      for (int m = common; m < n1; m++) a1 = band_tap(a1, w1, p1, m);
      for (int m = common; m < n2; m++) a2 = band_tap(a2, w2, p2, m);
      for (int m = common; m < n3; m++) a3 = band_tap(a3, w3, p3, m);
      wasm_v128_store(o + 3 * j, a0);
      wasm_v128_store(o + 3 * j + 3, a1);
      wasm_v128_store(o + 3 * j + 6, a2);
      wasm_v128_store(o + 3 * j + 9, a3);
    }
    for (; j < size; j++) {
      const float* cw = cols + j * e;
      int lo, n;
      band_of(cw, fw, &lo, &n);
      const float* tp = t + lo * 3;
      v128_t acc = wasm_f32x4_splat(0.0f);
      for (int m = 0; m < n; m++) acc = band_tap(acc, cw, tp, m);
      wasm_v128_store(o + 3 * j, acc);
    }
  }
}

__attribute__((export_name("cut_views")))
void cut_views(const int* geometry, const void* sources, const float* params, float* out, float* scratch, const float* weights,
               const int* layout, int part, int parts) {
  const int batch = geometry[0], size = geometry[3], band = geometry[5];
  /* With a layout the sources are bytes, image b's from word layout[3b], layout[3b+1] ×
   * layout[3b+2]; without, float32 images of geometry[1] × geometry[2] one after another. `tall`
   * has room for the widest (geometry[2]). */
  const int widest = geometry[2];
  const int stride = 11, plane = size * size * 3;
  const long long tall_size = (long long)size * widest * 3, conv_size = layout ? (long long)geometry[1] * widest * 3 : 0;
  float* crop = scratch + (long long)part * (plane + tall_size + conv_size);
  float* tall = crop + plane;
  float* conv = tall + tall_size;
#ifdef __wasm_atomics__
  /* Views claimed one at a time: their costs differ (a band of a dozen rows or two), and a fixed
   * half each left one thread waiting. Each view is one thread's alone, so which thread cuts it
   * changes no value. geometry[4]: the counter, zeroed by the caller. */
  int* counter = (int*)geometry + 4;
  (void)parts;
  for (int b = __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED); b < batch; b = __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED)) {
#else
  const int first = (int)((long long)batch * part / parts), last = (int)((long long)batch * (part + 1) / parts);
  for (int b = first; b < last; b++) {
#endif
    const float* p = params + 6 + (long long)b * stride;
    const int fh = layout ? layout[3 * b + 1] : geometry[1], fw = layout ? layout[3 * b + 2] : geometry[2];
    const unsigned char* src = (const unsigned char*)sources + (layout ? (long long)layout[3 * b] * 4 : (long long)b * fh * fw * 3 * 4);
    const float* rows = weights + (long long)b * 2 * size * (band + 2);
    if (layout) resample_view(src, rows, rows + size * (band + 2), crop, tall, conv, fh, fw, size, band, 1);
    else resample_view(src, rows, rows + size * (band + 2), crop, tall, conv, fh, fw, size, band, 0);
    const float* m = p;
    const float offset = p[9];
    const int solarize = p[10] != 0.0f;
    float* dst = out + (long long)b * plane;
    /* Pixel by pixel, its r, g, b as lanes 0–2 (lane 3 as in resample_view): the scalar loop's
     * operations in its order, so the same values. The last pixel is stored lane by lane: past it
     * lies the next view, another thread's. */
    const v128_t m0 = wasm_f32x4_make(m[0], m[3], m[6], 0.0f), m1 = wasm_f32x4_make(m[1], m[4], m[7], 0.0f);
    const v128_t m2 = wasm_f32x4_make(m[2], m[5], m[8], 0.0f), off = wasm_f32x4_splat(offset);
    const v128_t scale = wasm_f32x4_make(params[0], params[1], params[2], 0.0f), shift = wasm_f32x4_make(params[3], params[4], params[5], 0.0f);
    const v128_t lowest = wasm_f32x4_splat(0.0f), highest = wasm_f32x4_splat(255.0f), half = wasm_f32x4_splat(128.0f);
    for (int q = 0; q < size * size; q++) {
      const v128_t px = wasm_v128_load(crop + q * 3);
      v128_t v = wasm_f32x4_add(wasm_f32x4_mul(wasm_i32x4_shuffle(px, px, 0, 0, 0, 0), m0), wasm_f32x4_mul(wasm_i32x4_shuffle(px, px, 1, 1, 1, 1), m1));
      v = wasm_f32x4_add(wasm_f32x4_add(v, wasm_f32x4_mul(wasm_i32x4_shuffle(px, px, 2, 2, 2, 2), m2)), off);
      v = wasm_f32x4_pmax(lowest, wasm_f32x4_pmin(highest, v));
      v = wasm_f32x4_nearest(v);
      if (solarize) v = wasm_v128_bitselect(wasm_f32x4_sub(highest, v), v, wasm_f32x4_ge(v, half));
      v = wasm_f32x4_add(wasm_f32x4_mul(v, scale), shift);
      if (q + 1 < size * size) wasm_v128_store(dst + q * 3, v);
      else {
        dst[q * 3] = wasm_f32x4_extract_lane(v, 0);
        dst[q * 3 + 1] = wasm_f32x4_extract_lane(v, 1);
        dst[q * 3 + 2] = wasm_f32x4_extract_lane(v, 2);
      }
    }
  }
}

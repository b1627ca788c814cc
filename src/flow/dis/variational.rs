//! OpenCV's `VariationalRefinement` (`modules/video/src/variational_refinement.cpp`) as DIS
//! runs it at each level: fixed-point iterations of a linearised energy (colour and gradient
//! constancy, normalised, Charbonnier-weighted; a smoothness term), each solved by red-black
//! SOR. The data term and the smoothness weights are computed on the full grid; the SOR works,
//! as OpenCV's, on two packed buffers (red and black cells, each with a zero border: zero
//! increments and weights outside the frame), updating one colour in place from the other.
//! The edge terms (`A`, `b`) are added in OpenCV's order for each colour.

use super::{Params, floor, min_len};
use rayon::prelude::*;
use std::cell::RefCell;

thread_local! {
    /// Planes that earlier refinements on this thread freed, reused: a 512x512 DIS Medium
    /// allocates about 40 planes per level, and fresh pages cost it about 5% in page faults.
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// The most planes [`POOL`] keeps.
const POOL_MAX: usize = 64;

/// `n` zeros, in a plane from [`POOL`] when it has one.
fn zeros(n: usize) -> Vec<f32> {
    let mut v = POOL.with_borrow_mut(Vec::pop).unwrap_or_default();
    v.clear();
    v.resize(n, 0.0);
    v
}

/// `n` values to be overwritten, in a plane from [`POOL`] when it has one (stale values, not
/// zeroed: every caller writes all `n` before reading).
fn scratch(n: usize) -> Vec<f32> {
    let mut v = POOL.with_borrow_mut(Vec::pop).unwrap_or_default();
    if v.len() >= n {
        v.truncate(n);
    } else {
        v.resize(n, 0.0);
    }
    v
}

/// Hands planes back to [`POOL`].
fn recycle(planes: impl IntoIterator<Item = Vec<f32>>) {
    POOL.with_borrow_mut(|p| {
        for v in planes {
            if p.len() < POOL_MAX {
                p.push(v);
            }
        }
    });
}

/// SOR iterations per fixed-point iteration (DIS sets 5).
const SOR_ITERATIONS: usize = 5;
/// SOR relaxation factor ω.
const OMEGA: f32 = 1.6;
/// Normalisation floor ζ.
const ZETA: f32 = 0.1;

/// `warpImage`: I1 sampled bilinearly at `(x + u, y + v)`, replicated outside.
fn warp(i1: &[u8], w: usize, h: usize, u: &[f32], v: &[f32]) -> Vec<f32> {
    let mut out = scratch(w * h);
    out.par_chunks_mut(w)
        .enumerate()
        .with_min_len(min_len(w * h))
        .for_each(|(y, row)| {
            let px = |yy: isize, xx: isize| {
                let yy = yy.clamp(0, h as isize - 1) as usize;
                let xx = xx.clamp(0, w as isize - 1) as usize;
                f32::from(i1[yy * w + xx])
            };
            for (x, o) in row.iter_mut().enumerate() {
                let mx = x as f32 + u[y * w + x];
                let my = y as f32 + v[y * w + x];
                let (fx, fy) = (floor(mx), floor(my));
                let (ax, ay) = (mx - fx, my - fy);
                let (x0, y0) = (fx as isize, fy as isize);
                let top = px(y0, x0) * (1.0 - ax) + px(y0, x0 + 1) * ax;
                let bot = px(y0 + 1, x0) * (1.0 - ax) + px(y0 + 1, x0 + 1) * ax;
                *o = top * (1.0 - ay) + bot * ay;
            }
        });
    out
}

/// `Sobel(ksize = 1, BORDER_REPLICATE)` along x: `s[x+1] − s[x−1]`.
fn dx(s: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut out = scratch(w * h);
    out.par_chunks_mut(w)
        .enumerate()
        .with_min_len(min_len(w * h))
        .for_each(|(y, row)| {
            let r = &s[y * w..(y + 1) * w];
            for x in 0..w {
                row[x] = r[(x + 1).min(w - 1)] - r[x.saturating_sub(1)];
            }
        });
    out
}

/// `Sobel(ksize = 1, BORDER_REPLICATE)` along y.
fn dy(s: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut out = scratch(w * h);
    out.par_chunks_mut(w)
        .enumerate()
        .with_min_len(min_len(w * h))
        .for_each(|(y, row)| {
            let a = &s[(y + 1).min(h - 1) * w..];
            let b = &s[y.saturating_sub(1) * w..];
            for x in 0..w {
                row[x] = a[x] - b[x];
            }
        });
    out
}

/// The linear system of one pixel: `A = [[a11, a12], [a12, a22]]`, `b = [b1, b2]`.
#[derive(Clone, Copy, Default)]
struct System {
    a11: f32,
    a12: f32,
    a22: f32,
    b1: f32,
    b2: f32,
}

/// One colour of the red-black grid, as OpenCV's `RedBlackBuffer` stores it: the cells of row
/// `y` with `x ≡ y + colour (mod 2)`, packed (cell `k` at `x = 2k + offset`), with a zero
/// border of one cell all round, so the SOR reads its neighbours without branches.
struct Colour {
    /// Increments `du`, `dv` (zero in the border).
    du: Vec<f32>,
    dv: Vec<f32>,
    /// Smoothness weights of the cells (zero in the border).
    weight: Vec<f32>,
    /// Each cell's system.
    a11: Vec<f32>,
    a12: Vec<f32>,
    a22: Vec<f32>,
    b1: Vec<f32>,
    b2: Vec<f32>,
}

impl Colour {
    /// Zero increments and weights (their borders and padding are read as neighbours);
    /// systems not zeroed: the SOR reads only the cells that each iteration writes.
    fn new(len: usize) -> Self {
        let z = || zeros(len);
        let s = || scratch(len);
        Colour {
            du: z(),
            dv: z(),
            weight: z(),
            a11: s(),
            a12: s(),
            a22: s(),
            b1: s(),
            b2: s(),
        }
    }
}

/// Rows of SOR work handed to one rayon task.
const ROWS_PER_TASK: usize = 16;

/// One half-sweep of the red-black SOR: the cells of colour `c` (whose buffer is `me`) from
/// their neighbours, all of the other colour (`other`), in place. `pw` is the padded row length.
fn half_sweep(me: &mut Colour, other: &Colour, c: usize, w: usize, h: usize, pw: usize) {
    let (ou, ov, ow) = (&other.du, &other.dv, &other.weight);
    let (mw, a11, a12, a22, b1, b2) = (&me.weight, &me.a11, &me.a12, &me.a22, &me.b1, &me.b2);
    me.du[pw..(h + 1) * pw]
        .par_chunks_mut(ROWS_PER_TASK * pw)
        .zip(me.dv[pw..(h + 1) * pw].par_chunks_mut(ROWS_PER_TASK * pw))
        .enumerate()
        .with_min_len(min_len(w * h))
        .for_each(|(t, (du_rows, dv_rows))| {
            for (ry, (du_row, dv_row)) in du_rows
                .chunks_exact_mut(pw)
                .zip(dv_rows.chunks_exact_mut(pw))
                .enumerate()
            {
                let y = t * ROWS_PER_TASK + ry;
                let off = (y + c) & 1;
                let nc = (w - off).div_ceil(2);
                let r = (y + 1) * pw;
                // Own cell k sits at r + 1 + k; its left neighbour at r + off + k, right at
                // r + off + 1 + k, up and down at r + 1 + k ∓ pw (all in the other colour).
                let (ul, ur) = (
                    &ou[r + off..r + off + nc],
                    &ou[r + off + 1..r + off + 1 + nc],
                );
                let (vl, vr) = (
                    &ov[r + off..r + off + nc],
                    &ov[r + off + 1..r + off + 1 + nc],
                );
                let wl = &ow[r + off..r + off + nc];
                let (uu, ud) = (
                    &ou[r + 1 - pw..r + 1 - pw + nc],
                    &ou[r + 1 + pw..r + 1 + pw + nc],
                );
                let (vu, vd) = (
                    &ov[r + 1 - pw..r + 1 - pw + nc],
                    &ov[r + 1 + pw..r + 1 + pw + nc],
                );
                let wu = &ow[r + 1 - pw..r + 1 - pw + nc];
                let o = r + 1..r + 1 + nc;
                let (wp, a11, a12, a22) = (
                    &mw[o.clone()],
                    &a11[o.clone()],
                    &a12[o.clone()],
                    &a22[o.clone()],
                );
                let (b1, b2) = (&b1[o.clone()], &b2[o]);
                let (du, dv) = (&mut du_row[1..1 + nc], &mut dv_row[1..1 + nc]);
                let row = SorRow {
                    ul,
                    ur,
                    vl,
                    vr,
                    wl,
                    uu,
                    ud,
                    vu,
                    vd,
                    wu,
                    wp,
                    a11,
                    a12,
                    a22,
                    b1,
                    b2,
                };
                #[cfg(target_arch = "x86_64")]
                if crate::cpu::has("avx2") {
                    // SAFETY: the processor has AVX2, the feature `run_avx2` is compiled with
                    unsafe { row.run_avx2(du, dv) };
                    continue;
                }
                row.run(du, dv);
            }
        });
}

/// The inputs of one SOR row: the other colour's increments and weights left, right, up and
/// down of each own cell, and the own cells' weights and systems (all `nc` long).
struct SorRow<'a> {
    ul: &'a [f32],
    ur: &'a [f32],
    vl: &'a [f32],
    vr: &'a [f32],
    wl: &'a [f32],
    uu: &'a [f32],
    ud: &'a [f32],
    vu: &'a [f32],
    vd: &'a [f32],
    wu: &'a [f32],
    wp: &'a [f32],
    a11: &'a [f32],
    a12: &'a [f32],
    a22: &'a [f32],
    b1: &'a [f32],
    b2: &'a [f32],
}

impl SorRow<'_> {
    /// Updates the row's increments `du`, `dv` in place.
    #[inline(always)]
    fn run(&self, du: &mut [f32], dv: &mut [f32]) {
        let nc = du.len().min(dv.len());
        let (ul, ur, vl, vr, wl) = (
            &self.ul[..nc],
            &self.ur[..nc],
            &self.vl[..nc],
            &self.vr[..nc],
            &self.wl[..nc],
        );
        let (uu, ud, vu, vd, wu) = (
            &self.uu[..nc],
            &self.ud[..nc],
            &self.vu[..nc],
            &self.vd[..nc],
            &self.wu[..nc],
        );
        let (wp, a11, a12, a22) = (
            &self.wp[..nc],
            &self.a11[..nc],
            &self.a12[..nc],
            &self.a22[..nc],
        );
        let (b1, b2) = (&self.b1[..nc], &self.b2[..nc]);
        for k in 0..nc {
            let su = wl[k] * ul[k] + wp[k] * ur[k] + wu[k] * uu[k] + wp[k] * ud[k];
            let sv = wl[k] * vl[k] + wp[k] * vr[k] + wu[k] * vu[k] + wp[k] * vd[k];
            let mut cu = du[k];
            let mut cv = dv[k];
            cu += OMEGA * ((su + b1[k] - cv * a12[k]) / a11[k] - cu);
            cv += OMEGA * ((sv + b2[k] - cu * a12[k]) / a22[k] - cv);
            du[k] = cu;
            dv[k] = cv;
        }
    }

    /// [`SorRow::run`] with AVX2 enabled, so that it vectorises 8 cells wide (the same
    /// operations per cell, no fused multiply-add, so the same values).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn run_avx2(&self, du: &mut [f32], dv: &mut [f32]) {
        self.run(du, dv);
    }
}

/// Refines the flow `(u, v)` of a `w`×`h` level in place (`calcUV`), with `p`'s variational
/// refinement iterations and weights; `i0`, `i1` and the flow planes hold `w · h` values.
pub fn refine(i0: &[u8], i1: &[u8], w: usize, h: usize, u: &mut [f32], v: &mut [f32], p: &Params) {
    let n = w * h;
    let warped = warp(i1, w, h, u, v);
    let mut avg = scratch(n);
    let mut iz = scratch(n);
    for (((o, z), &a), &b) in avg.iter_mut().zip(iz.iter_mut()).zip(i0).zip(&warped) {
        *o = 0.5 * f32::from(a) + 0.5 * b;
        *z = b - f32::from(a);
    }
    let ix = dx(&avg, w, h);
    let iy = dy(&avg, w, h);
    let ixz = dx(&iz, w, h);
    let iyz = dy(&iz, w, h);
    let ixx = dx(&ix, w, h);
    let ixy = dy(&ix, w, h);
    let iyy = dy(&iy, w, h);

    let zeta2 = ZETA * ZETA;
    let eps2 = p.variational_refinement_epsilon * p.variational_refinement_epsilon;
    let delta2 = p.variational_refinement_delta / 2.0;
    let gamma2 = p.variational_refinement_gamma / 2.0;
    let alpha2 = p.variational_refinement_alpha / 2.0;
    let d = Derivs::new(ix, iy, iz, ixx, ixy, iyy, ixz, iyz, zeta2);

    let copy = |s: &[f32]| {
        let mut v = scratch(s.len());
        v.copy_from_slice(s);
        v
    };
    let (w_u, w_v) = (copy(u), copy(v));
    let mut tu = copy(u);
    let mut tv = copy(v);
    let mut du = zeros(n);
    let mut dv = zeros(n);
    let mut sys = Systems::new(n);
    let mut weight = scratch(n);
    let pw = w.div_ceil(2) + 2;
    let mut colours = [Colour::new(pw * (h + 2)), Colour::new(pw * (h + 2))];

    for _ in 0..p.variational_refinement_iterations {
        data_term(&d, &du, &dv, &mut sys, delta2, gamma2, zeta2, eps2);
        // Smoothness weights from the current flow (replicated at the right and bottom).
        weight
            .par_chunks_mut(w)
            .enumerate()
            .with_min_len(min_len(n))
            .for_each(|(y, row)| {
                let yn = (y + 1).min(h - 1);
                let (u0, v0) = (&tu[y * w..(y + 1) * w], &tv[y * w..(y + 1) * w]);
                let (ud, vd) = (&tu[yn * w..(yn + 1) * w], &tv[yn * w..(yn + 1) * w]);
                let smooth = |ux: f32, vx: f32, uy: f32, vy: f32| {
                    alpha2 / (ux * ux + vx * vx + uy * uy + vy * vy + eps2).sqrt()
                };
                for x in 0..w - 1 {
                    row[x] = smooth(
                        u0[x + 1] - u0[x],
                        v0[x + 1] - v0[x],
                        ud[x] - u0[x],
                        vd[x] - v0[x],
                    );
                }
                // The last column's right neighbour is itself (replicated border).
                let x = w - 1;
                let (ur, vr) = (u0[x], v0[x]);
                row[x] = smooth(ur - u0[x], vr - v0[x], ud[x] - u0[x], vd[x] - v0[x]);
            });
        // Smoothness edges into A and b, in OpenCV's order per colour (red: own edge first),
        // each colour's cells packed into its buffer.
        for (c, col) in colours.iter_mut().enumerate() {
            let Colour {
                weight: cw,
                a11,
                a12,
                a22,
                b1,
                b2,
                ..
            } = col;
            let rows = cw[pw..(h + 1) * pw]
                .par_chunks_mut(pw)
                .zip(a11[pw..(h + 1) * pw].par_chunks_mut(pw))
                .zip(a12[pw..(h + 1) * pw].par_chunks_mut(pw))
                .zip(a22[pw..(h + 1) * pw].par_chunks_mut(pw))
                .zip(b1[pw..(h + 1) * pw].par_chunks_mut(pw))
                .zip(b2[pw..(h + 1) * pw].par_chunks_mut(pw));
            rows.enumerate().with_min_len(min_len(n)).for_each(
                |(y, (((((rw, r11), r12), r22), rb1), rb2))| {
                    let off = (y + c) & 1;
                    let edges = Edges {
                        weight: &weight,
                        w_u: &w_u,
                        w_v: &w_v,
                        w,
                        h,
                    };
                    let interior_row = y > 0 && y + 1 < h;
                    for (kk, x) in (off..w).step_by(2).enumerate() {
                        let k = y * w + x;
                        let mut s = System {
                            a11: sys.a11[k],
                            a12: sys.a12[k],
                            a22: sys.a22[k],
                            b1: sys.b1[k],
                            b2: sys.b2[k],
                        };
                        if interior_row && x > 0 && x + 1 < w {
                            edges.interior(&mut s, k, c == 0);
                        } else {
                            edges.border(&mut s, k, x, y, c == 0);
                        }
                        let o = kk + 1;
                        rw[o] = weight[k];
                        r11[o] = s.a11;
                        r12[o] = s.a12;
                        r22[o] = s.a22;
                        rb1[o] = s.b1;
                        rb2[o] = s.b2;
                    }
                },
            );
        }
        // Red-black SOR on the increments (zero outside the frame), each colour in place.
        for _ in 0..SOR_ITERATIONS {
            let [red, black] = &mut colours;
            half_sweep(red, black, 0, w, h, pw);
            half_sweep(black, red, 1, w, h, pw);
        }
        // Back to the full grid.
        du.par_chunks_mut(w)
            .zip(dv.par_chunks_mut(w))
            .zip(tu.par_chunks_mut(w))
            .zip(tv.par_chunks_mut(w))
            .enumerate()
            .with_min_len(min_len(n))
            .for_each(|(y, (((ru, rv), rtu), rtv))| {
                let (wu, wv) = (&w_u[y * w..(y + 1) * w], &w_v[y * w..(y + 1) * w]);
                let base = (y + 1) * pw + 1;
                for (c, col) in colours.iter().enumerate() {
                    let off = (y + c) & 1;
                    let (cu, cv) = (&col.du[base..base + pw - 2], &col.dv[base..base + pw - 2]);
                    for (k, x) in (off..w).step_by(2).enumerate() {
                        ru[x] = cu[k];
                        rv[x] = cv[k];
                        rtu[x] = wu[x] + cu[k];
                        rtv[x] = wv[x] + cv[k];
                    }
                }
            });
    }
    u.copy_from_slice(&tu);
    v.copy_from_slice(&tv);
    recycle([warped, avg, w_u, w_v, tu, tv, du, dv, weight]);
    let Derivs {
        ix,
        iy,
        iz,
        ixx,
        ixy,
        iyy,
        ixz,
        iyz,
        norm,
        n1,
        n2,
        g11,
        g12,
        g22,
        gb1,
        gb2,
    } = d;
    recycle([
        ix, iy, iz, ixx, ixy, iyy, ixz, iyz, norm, n1, n2, g11, g12, g22, gb1, gb2,
    ]);
    let Systems {
        a11,
        a12,
        a22,
        b1,
        b2,
    } = sys;
    recycle([a11, a12, a22, b1, b2]);
    for c in colours {
        recycle([c.du, c.dv, c.weight, c.a11, c.a12, c.a22, c.b1, c.b2]);
    }
}

/// The image derivatives of one refinement call and what the data term derives from them
/// alone (normalisers and the gradient-constancy matrix), computed once for all fixed-point
/// iterations with OpenCV's expressions, hence the same values.
struct Derivs {
    ix: Vec<f32>,
    iy: Vec<f32>,
    iz: Vec<f32>,
    ixx: Vec<f32>,
    ixy: Vec<f32>,
    iyy: Vec<f32>,
    ixz: Vec<f32>,
    iyz: Vec<f32>,
    /// `Ix² + Iy² + ζ²`.
    norm: Vec<f32>,
    /// `Ixx² + Ixy² + ζ²`, `Iyy² + Ixy² + ζ²`.
    n1: Vec<f32>,
    n2: Vec<f32>,
    /// The gradient-constancy terms of `A` and `b` before their weight.
    g11: Vec<f32>,
    g12: Vec<f32>,
    g22: Vec<f32>,
    gb1: Vec<f32>,
    gb2: Vec<f32>,
}

impl Derivs {
    #[allow(clippy::too_many_arguments)]
    fn new(
        ix: Vec<f32>,
        iy: Vec<f32>,
        iz: Vec<f32>,
        ixx: Vec<f32>,
        ixy: Vec<f32>,
        iyy: Vec<f32>,
        ixz: Vec<f32>,
        iyz: Vec<f32>,
        zeta2: f32,
    ) -> Self {
        let n = ix.len();
        let map = |f: &(dyn Fn(usize) -> f32 + Sync)| -> Vec<f32> {
            let mut v = scratch(n);
            v.par_chunks_mut(BLOCK)
                .enumerate()
                .with_min_len(min_len(n))
                .for_each(|(t, c)| {
                    for (i, o) in c.iter_mut().enumerate() {
                        *o = f(t * BLOCK + i);
                    }
                });
            v
        };
        let norm = map(&|k| ix[k] * ix[k] + iy[k] * iy[k] + zeta2);
        let n1 = map(&|k| ixx[k] * ixx[k] + ixy[k] * ixy[k] + zeta2);
        let n2 = map(&|k| iyy[k] * iyy[k] + ixy[k] * ixy[k] + zeta2);
        let (xx, xy, yy, xz, yz) = (&ixx, &ixy, &iyy, &ixz, &iyz);
        let g11 = map(&|k| xx[k] * xx[k] / n1[k] + xy[k] * xy[k] / n2[k]);
        let g12 = map(&|k| xx[k] * xy[k] / n1[k] + xy[k] * yy[k] / n2[k]);
        let g22 = map(&|k| xy[k] * xy[k] / n1[k] + yy[k] * yy[k] / n2[k]);
        let gb1 = map(&|k| xx[k] * xz[k] / n1[k] + xy[k] * yz[k] / n2[k]);
        let gb2 = map(&|k| xy[k] * xz[k] / n1[k] + yy[k] * yz[k] / n2[k]);
        Derivs {
            ix,
            iy,
            iz,
            ixx,
            ixy,
            iyy,
            ixz,
            iyz,
            norm,
            n1,
            n2,
            g11,
            g12,
            g22,
            gb1,
            gb2,
        }
    }
}

/// The per-pixel systems of the full grid, one plane per coefficient.
struct Systems {
    a11: Vec<f32>,
    a12: Vec<f32>,
    a22: Vec<f32>,
    b1: Vec<f32>,
    b2: Vec<f32>,
}

impl Systems {
    fn new(n: usize) -> Self {
        let z = || scratch(n);
        Systems {
            a11: z(),
            a12: z(),
            a22: z(),
            b1: z(),
            b2: z(),
        }
    }
}

/// Pixels per rayon task in the full-grid passes.
const BLOCK: usize = 4096;

/// The data term (`ComputeDataTerm_ParBody`): colour and gradient constancy, Charbonnier
/// weighted at the current increments `du`, `dv`, into `sys`.
#[allow(clippy::too_many_arguments)]
fn data_term(
    d: &Derivs,
    du: &[f32],
    dv: &[f32],
    sys: &mut Systems,
    delta2: f32,
    gamma2: f32,
    zeta2: f32,
    eps2: f32,
) {
    let Systems {
        a11,
        a12,
        a22,
        b1,
        b2,
    } = sys;
    a11.par_chunks_mut(BLOCK)
        .zip(a12.par_chunks_mut(BLOCK))
        .zip(a22.par_chunks_mut(BLOCK))
        .zip(b1.par_chunks_mut(BLOCK))
        .zip(b2.par_chunks_mut(BLOCK))
        .enumerate()
        .with_min_len(min_len(d.ix.len()))
        .for_each(|(t, ((((o11, o12), o22), ob1), ob2))| {
            let r = t * BLOCK..t * BLOCK + o11.len();
            let c = DataConsts {
                delta2,
                gamma2,
                zeta2,
                eps2,
            };
            let out = [o11, o12, o22, ob1, ob2];
            #[cfg(target_arch = "x86_64")]
            if crate::cpu::has("avx2") {
                // SAFETY: the processor has AVX2, the feature `data_block_avx2` is compiled with
                unsafe { data_block_avx2(d, du, dv, r, out, &c) };
                return;
            }
            data_block(d, du, dv, r, out, &c);
        });
}

/// The data term's weights (see [`refine`]).
struct DataConsts {
    delta2: f32,
    gamma2: f32,
    zeta2: f32,
    eps2: f32,
}

/// The data term of the pixels `r` into `out` (`a11`, `a12`, `a22`, `b1`, `b2`, each `r.len()`
/// long).
#[inline(always)]
fn data_block(
    d: &Derivs,
    du: &[f32],
    dv: &[f32],
    r: std::ops::Range<usize>,
    out: [&mut [f32]; 5],
    c: &DataConsts,
) {
    let DataConsts {
        delta2,
        gamma2,
        zeta2,
        eps2,
    } = *c;
    let [o11, o12, o22, ob1, ob2] = out;
    let m = r.len();
    let (o11, o12, o22, ob1, ob2) = (
        &mut o11[..m],
        &mut o12[..m],
        &mut o22[..m],
        &mut ob1[..m],
        &mut ob2[..m],
    );
    let (x, y, z) = (&d.ix[r.clone()], &d.iy[r.clone()], &d.iz[r.clone()]);
    let (xx, xy, yy) = (&d.ixx[r.clone()], &d.ixy[r.clone()], &d.iyy[r.clone()]);
    let (xz, yz) = (&d.ixz[r.clone()], &d.iyz[r.clone()]);
    let (norm, n1, n2) = (&d.norm[r.clone()], &d.n1[r.clone()], &d.n2[r.clone()]);
    let (g11, g12, g22) = (&d.g11[r.clone()], &d.g12[r.clone()], &d.g22[r.clone()]);
    let (gb1, gb2) = (&d.gb1[r.clone()], &d.gb2[r.clone()]);
    let (du, dv) = (&du[r.clone()], &dv[r]);
    for k in 0..m {
        let (x, y, z) = (x[k], y[k], z[k]);
        let ik1z = z + x * du[k] + y * dv[k];
        let wt = (delta2 / (ik1z * ik1z / norm[k] + eps2).sqrt()) / norm[k];
        let zx = xz[k] + xx[k] * du[k] + xy[k] * dv[k];
        let zy = yz[k] + xy[k] * du[k] + yy[k] * dv[k];
        let wg = gamma2 / (zx * zx / n1[k] + zy * zy / n2[k] + eps2).sqrt();
        o11[k] = (wt * (x * x) + zeta2) + wg * g11[k];
        o12[k] = wt * (x * y) + wg * g12[k];
        o22[k] = (wt * (y * y) + zeta2) + wg * g22[k];
        ob1[k] = -wt * (z * x) + -wg * gb1[k];
        ob2[k] = -wt * (z * y) + -wg * gb2[k];
    }
}

/// [`data_block`] with AVX2 enabled, so that it vectorises 8 pixels wide (the same operations
/// per pixel, no fused multiply-add, so the same values).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn data_block_avx2(
    d: &Derivs,
    du: &[f32],
    dv: &[f32],
    r: std::ops::Range<usize>,
    out: [&mut [f32]; 5],
    c: &DataConsts,
) {
    data_block(d, du, dv, r, out, c);
}

/// The smoothness edges of one cell, added to its system in OpenCV's order for its colour.
struct Edges<'a> {
    weight: &'a [f32],
    w_u: &'a [f32],
    w_v: &'a [f32],
    w: usize,
    h: usize,
}

impl Edges<'_> {
    /// A cell with all four edges (not on the frame's border).
    #[inline]
    fn interior(&self, s: &mut System, k: usize, red: bool) {
        let (wt, u, v, w) = (self.weight, self.w_u, self.w_v, self.w);
        let own_h = |s: &mut System| {
            s.b1 += wt[k] * (u[k + 1] - u[k]);
            s.a11 += wt[k];
            s.b2 += wt[k] * (v[k + 1] - v[k]);
            s.a22 += wt[k];
        };
        let left_h = |s: &mut System| {
            s.b1 -= wt[k - 1] * (u[k] - u[k - 1]);
            s.a11 += wt[k - 1];
            s.b2 -= wt[k - 1] * (v[k] - v[k - 1]);
            s.a22 += wt[k - 1];
        };
        let own_v = |s: &mut System| {
            s.b1 += wt[k] * (u[k + w] - u[k]);
            s.a11 += wt[k];
            s.b2 += wt[k] * (v[k + w] - v[k]);
            s.a22 += wt[k];
        };
        let up_v = |s: &mut System| {
            s.b1 -= wt[k - w] * (u[k] - u[k - w]);
            s.a11 += wt[k - w];
            s.b2 -= wt[k - w] * (v[k] - v[k - w]);
            s.a22 += wt[k - w];
        };
        if red {
            own_h(s);
            left_h(s);
            own_v(s);
            up_v(s);
        } else {
            left_h(s);
            own_h(s);
            up_v(s);
            own_v(s);
        }
    }

    /// A cell on the frame's border: the edges that leave the frame are missing.
    fn border(&self, s: &mut System, k: usize, x: usize, y: usize, red: bool) {
        let (wt, u, v, w, h) = (self.weight, self.w_u, self.w_v, self.w, self.h);
        let own_h =
            (x + 1 < w).then(|| (wt[k], wt[k] * (u[k + 1] - u[k]), wt[k] * (v[k + 1] - v[k])));
        let left_h = (x > 0).then(|| {
            let e = wt[k - 1];
            (e, e * (u[k] - u[k - 1]), e * (v[k] - v[k - 1]))
        });
        let own_v =
            (y + 1 < h).then(|| (wt[k], wt[k] * (u[k + w] - u[k]), wt[k] * (v[k + w] - v[k])));
        let up_v = (y > 0).then(|| {
            let e = wt[k - w];
            (e, e * (u[k] - u[k - w]), e * (v[k] - v[k - w]))
        });
        let add = |s: &mut System, e: Option<(f32, f32, f32)>, plus: bool| {
            if let Some((e, eu, ev)) = e {
                if plus {
                    s.b1 += eu;
                    s.b2 += ev;
                } else {
                    s.b1 -= eu;
                    s.b2 -= ev;
                }
                s.a11 += e;
                s.a22 += e;
            }
        };
        if red {
            add(s, own_h, true);
            add(s, left_h, false);
            add(s, own_v, true);
            add(s, up_v, false);
        } else {
            add(s, left_h, false);
            add(s, own_h, true);
            add(s, up_v, false);
            add(s, own_v, true);
        }
    }
}

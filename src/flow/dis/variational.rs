//! OpenCV's `VariationalRefinement` (`modules/video/src/variational_refinement.cpp`) as DIS
//! runs it at each level: fixed-point iterations of a linearised energy (colour and gradient
//! constancy, normalised, Charbonnier-weighted; a smoothness term), each solved by red-black
//! SOR. Everything after the image derivatives works, as OpenCV's SOR does, on the red and the
//! black cells packed apart (each colour's cells of a row side by side, with a zero border:
//! zero increments and weights outside the frame), so that every per-iteration pass reads and
//! writes contiguous rows: the smoothness weights, the data term with the edge terms (`A`,
//! `b`, added in OpenCV's order for each colour), and the SOR, which updates one colour in
//! place from the other. The values are OpenCV's: the same operations on the same operands.

use super::{Params, floor, min_len};
use rayon::prelude::*;
use std::cell::RefCell;

thread_local! {
    /// Planes that earlier refinements on this thread freed, reused: a 512x512 DIS Medium
    /// allocates about 40 planes per level, and fresh pages cost it about 5% in page faults.
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// The most planes [`POOL`] keeps: enough for every level of a DIS pyramid (each refinement
/// takes 22 planes of its level's sizes), so that each finds its own sizes again.
const POOL_MAX: usize = 128;

/// A plane of `n` values from [`POOL`]: one of exactly that length when it has one, else the
/// last one, resized; a new one when it is empty. Its values are stale.
fn take(n: usize) -> Vec<f32> {
    POOL.with_borrow_mut(|p| match p.iter().rposition(|v| v.len() == n) {
        Some(i) => p.swap_remove(i),
        None => {
            let mut v = p.pop().unwrap_or_default();
            v.resize(n, 0.0);
            v
        }
    })
}

/// `n` zeros, in a plane from [`POOL`] when it has one.
fn zeros(n: usize) -> Vec<f32> {
    let mut v = take(n);
    v.fill(0.0);
    v
}

/// `n` values to be overwritten, in a plane from [`POOL`] when it has one (stale values, not
/// zeroed: every caller writes all `n` before reading).
fn scratch(n: usize) -> Vec<f32> {
    take(n)
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

/// The red-black layout of a `w`×`h` grid, as OpenCV's `RedBlackBuffer` stores it: colour `c`
/// holds the cells of row `y` with `x ≡ y + c (mod 2)`, packed (cell `k` at `x = 2k + off`), in
/// rows of `pw` values with a zero border of one cell all round. The red cells are colour 0.
#[derive(Clone, Copy)]
struct Grid {
    w: usize,
    h: usize,
    /// Padded row length.
    pw: usize,
    /// The most cells of one colour in a row (the row length of the unpadded derivative planes).
    cw: usize,
}

impl Grid {
    fn new(w: usize, h: usize) -> Self {
        Grid {
            w,
            h,
            pw: w.div_ceil(2) + 2,
            cw: w.div_ceil(2),
        }
    }

    /// The length of a padded colour buffer.
    fn len(&self) -> usize {
        self.pw * (self.h + 2)
    }

    /// Colour `c`'s cells of row `y`: the column of the first, how many, and the padded index
    /// of the first. Its neighbours (all of the other colour) in the other colour's buffer:
    /// left of own cell `k` at `left + k`, right at `left + 1 + k`, up and down at `first + k ∓ pw`.
    #[inline]
    fn row(&self, y: usize, c: usize) -> RowCells {
        let off = (y + c) & 1;
        let r = (y + 1) * self.pw;
        RowCells {
            off,
            n: (self.w - off).div_ceil(2),
            first: r + 1,
            left: r + off,
        }
    }
}

/// See [`Grid::row`].
#[derive(Clone, Copy)]
struct RowCells {
    off: usize,
    n: usize,
    first: usize,
    left: usize,
}

impl RowCells {
    /// The own cells of the row from `lo` have their left neighbour in the frame (`x > 0`),
    /// those before `hi` their right one (`x < w − 1`).
    #[inline]
    fn inner(&self, w: usize) -> (usize, usize) {
        let lo = usize::from(self.off == 0);
        let last_on_edge = self.n > 0 && self.off + 2 * (self.n - 1) == w - 1;
        (lo, self.n - usize::from(last_on_edge))
    }
}

/// The planes of one colour. The increments and weights are zero in the border, which the SOR
/// reads as neighbours; the systems are written for every own cell before they are read.
struct Colour {
    /// Increments `du`, `dv`.
    du: Vec<f32>,
    dv: Vec<f32>,
    /// The flow the refinement started from (`w_u`, `w_v`), packed.
    u0: Vec<f32>,
    v0: Vec<f32>,
    /// Smoothness weights of the cells.
    weight: Vec<f32>,
    /// Each cell's system `A = [[a11, a12], [a12, a22]]`, `b = [b1, b2]`.
    a11: Vec<f32>,
    a12: Vec<f32>,
    a22: Vec<f32>,
    b1: Vec<f32>,
    b2: Vec<f32>,
    /// The data term's inputs for this colour's cells: [`DERIVS`] planes per row, each `cw`
    /// long (row `y`'s plane `p` at `(y · DERIVS + p) · cw`), no border.
    derivs: Vec<f32>,
}

impl Colour {
    fn new(g: &Grid) -> Self {
        let len = g.len();
        Colour {
            du: zeros(len),
            dv: zeros(len),
            u0: scratch(len),
            v0: scratch(len),
            weight: zeros(len),
            a11: scratch(len),
            a12: scratch(len),
            a22: scratch(len),
            b1: scratch(len),
            b2: scratch(len),
            derivs: scratch(DERIVS * g.cw * g.h),
        }
    }

    fn recycle(self) {
        recycle([
            self.du,
            self.dv,
            self.u0,
            self.v0,
            self.weight,
            self.a11,
            self.a12,
            self.a22,
            self.b1,
            self.b2,
            self.derivs,
        ]);
    }
}

/// The planes of [`Colour::derivs`]: the image derivatives, and the gradient-constancy matrix
/// before its weight (divisions by the normalisers, which the data term recomputes: three
/// products read fewer bytes than three planes), computed once for all fixed-point iterations
/// with OpenCV's expressions.
const DERIVS: usize = 13;
const IX: usize = 0;
const IY: usize = 1;
const IZ: usize = 2;
const IXX: usize = 3;
const IXY: usize = 4;
const IYY: usize = 5;
const IXZ: usize = 6;
const IYZ: usize = 7;
const G11: usize = 8;
const G12: usize = 9;
const G22: usize = 10;
const GB1: usize = 11;
const GB2: usize = 12;

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
    let g = Grid::new(w, h);
    let zeta2 = ZETA * ZETA;
    let eps2 = p.variational_refinement_epsilon * p.variational_refinement_epsilon;
    let k = Consts {
        delta2: p.variational_refinement_delta / 2.0,
        gamma2: p.variational_refinement_gamma / 2.0,
        alpha2: p.variational_refinement_alpha / 2.0,
        zeta2,
        eps2,
    };
    let mut colours = [Colour::new(&g), Colour::new(&g)];
    derivatives(i0, i1, &g, u, v, zeta2, &mut colours);
    pack_flow(&g, u, v, &mut colours);
    for _ in 0..p.variational_refinement_iterations {
        weights(&g, &mut colours, &k);
        for c in 0..2 {
            let [red, black] = &mut colours;
            let (me, other) = if c == 0 {
                (red, &*black)
            } else {
                (black, &*red)
            };
            systems(&g, c, me, other, &k);
        }
        // Red-black SOR on the increments (zero outside the frame), each colour in place.
        for _ in 0..SOR_ITERATIONS {
            let [red, black] = &mut colours;
            half_sweep(red, black, 0, w, h, g.pw);
            half_sweep(black, red, 1, w, h, g.pw);
        }
    }
    // The refined flow: the start plus the increments.
    u.par_chunks_mut(w)
        .zip(v.par_chunks_mut(w))
        .enumerate()
        .with_min_len(min_len(w * h))
        .for_each(|(y, (ru, rv))| {
            for (c, col) in colours.iter().enumerate() {
                let rc = g.row(y, c);
                let (cu, cv) = (&col.du[rc.first..][..rc.n], &col.dv[rc.first..][..rc.n]);
                for (kk, x) in (rc.off..w).step_by(2).enumerate() {
                    ru[x] += cu[kk];
                    rv[x] += cv[kk];
                }
            }
        });
    let [red, black] = colours;
    red.recycle();
    black.recycle();
}

/// The refinement's weights (halved as OpenCV halves them) and floors.
struct Consts {
    delta2: f32,
    gamma2: f32,
    alpha2: f32,
    zeta2: f32,
    eps2: f32,
}

/// The image derivatives (OpenCV's `warpImage`, the average and difference images, their
/// `Sobel(ksize = 1, BORDER_REPLICATE)` derivatives) and the data term's fixed planes, into each
/// colour's [`Colour::derivs`].
fn derivatives(
    i0: &[u8],
    i1: &[u8],
    g: &Grid,
    u: &[f32],
    v: &[f32],
    zeta2: f32,
    colours: &mut [Colour; 2],
) {
    let (w, h) = (g.w, g.h);
    let n = w * h;
    // I1 warped by the flow, sampled bilinearly (replicated outside): the mean of it and I0,
    // and their difference.
    let mut avg = scratch(n);
    let mut iz = scratch(n);
    avg.par_chunks_mut(w)
        .zip(iz.par_chunks_mut(w))
        .enumerate()
        .with_min_len(min_len(n))
        .for_each(|(y, (ra, rz))| {
            let px = |yy: isize, xx: isize| {
                let yy = yy.clamp(0, h as isize - 1) as usize;
                let xx = xx.clamp(0, w as isize - 1) as usize;
                f32::from(i1[yy * w + xx])
            };
            for x in 0..w {
                let mx = x as f32 + u[y * w + x];
                let my = y as f32 + v[y * w + x];
                let (fx, fy) = (floor(mx), floor(my));
                let (ax, ay) = (mx - fx, my - fy);
                let (x0, y0) = (fx as isize, fy as isize);
                // The four samples; inside the frame without the clamps.
                let [s00, s01, s10, s11] =
                    if x0 >= 0 && y0 >= 0 && x0 + 1 < w as isize && y0 + 1 < h as isize {
                        let t = &i1[y0 as usize * w + x0 as usize..];
                        let t = &t[..w + 2];
                        [t[0], t[1], t[w], t[w + 1]].map(f32::from)
                    } else {
                        [
                            px(y0, x0),
                            px(y0, x0 + 1),
                            px(y0 + 1, x0),
                            px(y0 + 1, x0 + 1),
                        ]
                    };
                let top = s00 * (1.0 - ax) + s01 * ax;
                let bot = s10 * (1.0 - ax) + s11 * ax;
                let b = top * (1.0 - ay) + bot * ay;
                let a = f32::from(i0[y * w + x]);
                ra[x] = 0.5 * a + 0.5 * b;
                rz[x] = b - a;
            }
        });
    // First derivatives: `s[x+1] − s[x−1]` and `s[y+1] − s[y−1]`, replicated at the edges.
    let dx = |r: &[f32], out: &mut [f32]| {
        for x in 0..w {
            out[x] = r[(x + 1).min(w - 1)] - r[x.saturating_sub(1)];
        }
    };
    let dy = |s: &[f32], y: usize, out: &mut [f32]| {
        let a = &s[(y + 1).min(h - 1) * w..][..w];
        let b = &s[y.saturating_sub(1) * w..][..w];
        for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
            *o = a - b;
        }
    };
    let (mut ix, mut iy, mut ixz, mut iyz) = (scratch(n), scratch(n), scratch(n), scratch(n));
    ix.par_chunks_mut(w)
        .zip(iy.par_chunks_mut(w))
        .zip(ixz.par_chunks_mut(w))
        .zip(iyz.par_chunks_mut(w))
        .enumerate()
        .with_min_len(min_len(n))
        .for_each(|(y, (((rx, ry), rxz), ryz))| {
            dx(&avg[y * w..][..w], rx);
            dy(&avg, y, ry);
            dx(&iz[y * w..][..w], rxz);
            dy(&iz, y, ryz);
        });
    // Second derivatives and the fixed planes, a row at a time, then each colour's cells.
    let cw = g.cw;
    let [red, black] = colours;
    red.derivs
        .par_chunks_mut(DERIVS * cw)
        .zip(black.derivs.par_chunks_mut(DERIVS * cw))
        .enumerate()
        .with_min_len(min_len(n))
        .for_each_init(
            || vec![0f32; DERIVS * w],
            |row, (y, (dr, db))| {
                let (first, rest) = row.split_at_mut(IXX * w);
                first[IX * w..][..w].copy_from_slice(&ix[y * w..][..w]);
                first[IY * w..][..w].copy_from_slice(&iy[y * w..][..w]);
                first[IZ * w..][..w].copy_from_slice(&iz[y * w..][..w]);
                let (second, rest) = rest.split_at_mut((IXZ - IXX) * w);
                dx(&ix[y * w..][..w], &mut second[..w]);
                dy(&ix, y, &mut second[w..2 * w]);
                dy(&iy, y, &mut second[2 * w..]);
                let (zs, fixed) = rest.split_at_mut((G11 - IXZ) * w);
                zs[..w].copy_from_slice(&ixz[y * w..][..w]);
                zs[w..].copy_from_slice(&iyz[y * w..][..w]);
                fixed_planes(second, zs, fixed, w, zeta2);
                // Deal each plane's row to the colours: the even columns to the colour whose
                // cells start at 0 (red on even rows), the odd ones to the other.
                let (even, odd) = if y % 2 == 0 { (dr, db) } else { (db, dr) };
                for p in 0..DERIVS {
                    let src = &row[p * w..][..w];
                    let (e, o) = (&mut even[p * cw..][..cw], &mut odd[p * cw..][..cw]);
                    for ((pair, e), o) in src.chunks_exact(2).zip(e.iter_mut()).zip(o.iter_mut()) {
                        *e = pair[0];
                        *o = pair[1];
                    }
                    if w % 2 == 1 {
                        e[cw - 1] = src[w - 1];
                    }
                }
            },
        );
    recycle([avg, iz, ix, iy, ixz, iyz]);
}

/// The data term's fixed planes of one row (OpenCV's expressions): `second` holds `Ixx, Ixy,
/// Iyy`, `zs` `Ixz, Iyz`, each `w` long; `fixed` gets `G11..=GB2`.
#[inline]
fn fixed_planes(second: &[f32], zs: &[f32], fixed: &mut [f32], w: usize, zeta2: f32) {
    let (xx, xy, yy) = (&second[..w], &second[w..2 * w], &second[2 * w..3 * w]);
    let (xz, yz) = (&zs[..w], &zs[w..2 * w]);
    let (g11, rest) = fixed.split_at_mut(w);
    let (g12, rest) = rest.split_at_mut(w);
    let (g22, rest) = rest.split_at_mut(w);
    let (gb1, gb2) = rest.split_at_mut(w);
    let gb2 = &mut gb2[..w];
    for k in 0..w {
        // `Ixx² + Ixy² + ζ²`, `Iyy² + Ixy² + ζ²`.
        let n1 = xx[k] * xx[k] + xy[k] * xy[k] + zeta2;
        let n2 = yy[k] * yy[k] + xy[k] * xy[k] + zeta2;
        g11[k] = xx[k] * xx[k] / n1 + xy[k] * xy[k] / n2;
        g12[k] = xx[k] * xy[k] / n1 + xy[k] * yy[k] / n2;
        g22[k] = xy[k] * xy[k] / n1 + yy[k] * yy[k] / n2;
        gb1[k] = xx[k] * xz[k] / n1 + xy[k] * yz[k] / n2;
        gb2[k] = xy[k] * xz[k] / n1 + yy[k] * yz[k] / n2;
    }
}

/// The start flow packed into each colour's `u0`, `v0`.
fn pack_flow(g: &Grid, u: &[f32], v: &[f32], colours: &mut [Colour; 2]) {
    let (w, pw) = (g.w, g.pw);
    let rows = pw..(g.h + 1) * pw;
    let [red, black] = colours;
    red.u0[rows.clone()]
        .par_chunks_mut(pw)
        .zip(red.v0[rows.clone()].par_chunks_mut(pw))
        .zip(black.u0[rows.clone()].par_chunks_mut(pw))
        .zip(black.v0[rows].par_chunks_mut(pw))
        .enumerate()
        .with_min_len(min_len(w * g.h))
        .for_each(|(y, (((ru, rv), bu), bv))| {
            let (su, sv) = (&u[y * w..][..w], &v[y * w..][..w]);
            for (c, (pu, pv)) in [(ru, rv), (bu, bv)].into_iter().enumerate() {
                let off = (y + c) & 1;
                for ((o, &s), (q, &t)) in pu[1..]
                    .iter_mut()
                    .zip(su.iter().skip(off).step_by(2))
                    .zip(pv[1..].iter_mut().zip(sv.iter().skip(off).step_by(2)))
                {
                    *o = s;
                    *q = t;
                }
            }
        });
}

/// The smoothness weights of the current flow (start plus increments; replicated at the right
/// and bottom), into each colour's `weight`.
fn weights(g: &Grid, colours: &mut [Colour; 2], k: &Consts) {
    let pw = g.pw;
    let rows = pw..(g.h + 1) * pw;
    let [red, black] = colours;
    let flows = [
        (&red.u0[..], &red.v0[..], &red.du[..], &red.dv[..]),
        (&black.u0[..], &black.v0[..], &black.du[..], &black.dv[..]),
    ];
    red.weight[rows.clone()]
        .par_chunks_mut(pw)
        .zip(black.weight[rows].par_chunks_mut(pw))
        .enumerate()
        .with_min_len(min_len(g.w * g.h))
        .for_each(|(y, (rw, bw))| {
            for (c, out) in [rw, bw].into_iter().enumerate() {
                let (own, other) = (flows[c], flows[1 - c]);
                let rc = g.row(y, c);
                let out = &mut out[1..1 + rc.n];
                let (_, hi) = rc.inner(g.w);
                // The current flow of a cell: start plus increment (OpenCV's `w_u + du`).
                let at = |f: (&[f32], &[f32], &[f32], &[f32]), i: usize| {
                    (f.0[i] + f.2[i], f.1[i] + f.3[i])
                };
                let smooth = |ux: f32, vx: f32, uy: f32, vy: f32| {
                    k.alpha2 / (ux * ux + vx * vx + uy * uy + vy * vy + k.eps2).sqrt()
                };
                let last_row = y + 1 == g.h;
                let row = WeightRow {
                    own,
                    other,
                    first: rc.first,
                    right: rc.left + 1,
                    pw,
                };
                if last_row {
                    // The neighbour below is the cell itself.
                    for (kk, o) in out.iter_mut().enumerate() {
                        let (cu, cv) = at(own, rc.first + kk);
                        let x = rc.off + 2 * kk;
                        let (ru, rv) = if x + 1 < g.w {
                            at(other, rc.left + 1 + kk)
                        } else {
                            (cu, cv)
                        };
                        // Below is the cell itself: a zero difference (NaN for a non-finite flow).
                        let (bu, bv) = (cu, cv);
                        *o = smooth(ru - cu, rv - cv, bu - cu, bv - cv);
                    }
                    continue;
                }
                #[cfg(target_arch = "x86_64")]
                if crate::cpu::has("avx2") {
                    // SAFETY: the processor has AVX2, the feature `run_avx2` is compiled with
                    unsafe { row.run_avx2(&mut out[..hi], k) };
                } else {
                    row.run(&mut out[..hi], k);
                }
                #[cfg(not(target_arch = "x86_64"))]
                row.run(&mut out[..hi], k);
                // Cells `..hi` have their right neighbour in the frame.
                for (kk, o) in out.iter_mut().enumerate().skip(hi) {
                    // The last column: its right neighbour is itself.
                    let (cu, cv) = at(own, rc.first + kk);
                    let (du, dv) = at(other, rc.first + pw + kk);
                    let (ru, rv) = (cu, cv);
                    *o = smooth(ru - cu, rv - cv, du - cu, dv - cv);
                }
            }
        });
}

/// One row of [`weights`]' cells with both neighbours (right, below) in the frame.
struct WeightRow<'a> {
    own: (&'a [f32], &'a [f32], &'a [f32], &'a [f32]),
    other: (&'a [f32], &'a [f32], &'a [f32], &'a [f32]),
    first: usize,
    right: usize,
    pw: usize,
}

impl WeightRow<'_> {
    /// The weights of the row's first `out.len()` cells.
    #[inline(always)]
    fn run(&self, out: &mut [f32], k: &Consts) {
        let n = out.len();
        let (a, b, d) = (self.first, self.right, self.first + self.pw);
        let (ou, ov, odu, odv) = self.own;
        let (pu, pv, pdu, pdv) = self.other;
        let (ou, ov, odu, odv) = (&ou[a..a + n], &ov[a..a + n], &odu[a..a + n], &odv[a..a + n]);
        let (ru, rv, rdu, rdv) = (&pu[b..b + n], &pv[b..b + n], &pdu[b..b + n], &pdv[b..b + n]);
        let (bu, bv, bdu, bdv) = (&pu[d..d + n], &pv[d..d + n], &pdu[d..d + n], &pdv[d..d + n]);
        for i in 0..n {
            let (cu, cv) = (ou[i] + odu[i], ov[i] + odv[i]);
            let (xu, xv) = (ru[i] + rdu[i], rv[i] + rdv[i]);
            let (yu, yv) = (bu[i] + bdu[i], bv[i] + bdv[i]);
            let (ux, vx, uy, vy) = (xu - cu, xv - cv, yu - cu, yv - cv);
            out[i] = k.alpha2 / (ux * ux + vx * vx + uy * uy + vy * vy + k.eps2).sqrt();
        }
    }

    /// [`WeightRow::run`] with AVX2 enabled, so that it vectorises 8 cells wide (the same
    /// operations per cell, no fused multiply-add, so the same values).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn run_avx2(&self, out: &mut [f32], k: &Consts) {
        self.run(out, k);
    }
}

/// The systems of colour `c`'s cells (`me`; `other` is the other colour): the data term
/// (`ComputeDataTerm_ParBody`: colour and gradient constancy, Charbonnier weighted at the
/// current increments), then the smoothness edges (`ComputeSmoothnessTermHorPass_ParBody` and
/// its vertical twin) in OpenCV's order for the colour (red: own edge first).
fn systems(g: &Grid, c: usize, me: &mut Colour, other: &Colour, k: &Consts) {
    let (w, h, pw, cw) = (g.w, g.h, g.pw, g.cw);
    let rows = pw..(h + 1) * pw;
    let Colour {
        du,
        dv,
        u0,
        v0,
        weight,
        a11,
        a12,
        a22,
        b1,
        b2,
        derivs,
    } = me;
    let (du, dv, u0, v0, weight, derivs) = (&*du, &*dv, &*u0, &*v0, &*weight, &*derivs);
    a11[rows.clone()]
        .par_chunks_mut(pw)
        .zip(a12[rows.clone()].par_chunks_mut(pw))
        .zip(a22[rows.clone()].par_chunks_mut(pw))
        .zip(b1[rows.clone()].par_chunks_mut(pw))
        .zip(b2[rows].par_chunks_mut(pw))
        .enumerate()
        .with_min_len(min_len(w * h))
        .for_each(|(y, ((((r11, r12), r22), rb1), rb2))| {
            let rc = g.row(y, c);
            let n = rc.n;
            let mut out = [
                &mut r11[1..1 + n],
                &mut r12[1..1 + n],
                &mut r22[1..1 + n],
                &mut rb1[1..1 + n],
                &mut rb2[1..1 + n],
            ];
            let data = DataRow {
                d: &derivs[y * DERIVS * cw..][..DERIVS * cw],
                cw,
                du: &du[rc.first..][..n],
                dv: &dv[rc.first..][..n],
            };
            #[cfg(target_arch = "x86_64")]
            if crate::cpu::has("avx2") {
                // SAFETY: the processor has AVX2, the feature `run_avx2` is compiled with
                unsafe { data.run_avx2(&mut out, k) };
            } else {
                data.run(&mut out, k);
            }
            #[cfg(not(target_arch = "x86_64"))]
            data.run(&mut out, k);
            let e = EdgeRow {
                own: (weight, u0, v0),
                other: (&other.weight, &other.u0, &other.v0),
                first: rc.first,
                left: rc.left,
                pw,
            };
            let (lo, hi) = if y > 0 && y + 1 < h {
                rc.inner(w)
            } else {
                (n, n)
            };
            if lo < hi {
                #[cfg(target_arch = "x86_64")]
                if crate::cpu::has("avx2") {
                    // SAFETY: the processor has AVX2, the feature `interior_avx2` is compiled with
                    unsafe { e.interior_avx2(&mut out, lo, hi, c == 0) };
                } else {
                    e.interior(&mut out, lo, hi, c == 0);
                }
                #[cfg(not(target_arch = "x86_64"))]
                e.interior(&mut out, lo, hi, c == 0);
            }
            for i in (0..n).filter(|&i| i < lo || i >= hi.max(lo)) {
                e.border(&mut out, i, rc.off + 2 * i, y, g, c == 0);
            }
        });
}

/// One row of [`systems`]' data term: the colour's derivative planes of the row (each `cw`
/// long) and its cells' increments.
struct DataRow<'a> {
    d: &'a [f32],
    cw: usize,
    du: &'a [f32],
    dv: &'a [f32],
}

impl DataRow<'_> {
    /// The data term of the row's cells into `out` (`a11`, `a12`, `a22`, `b1`, `b2`).
    #[inline(always)]
    fn run(&self, out: &mut [&mut [f32]; 5], k: &Consts) {
        let Consts {
            delta2,
            gamma2,
            zeta2,
            eps2,
            ..
        } = *k;
        let m = self.du.len().min(self.dv.len());
        let [o11, o12, o22, ob1, ob2] = out;
        let (o11, o12, o22, ob1, ob2) = (
            &mut o11[..m],
            &mut o12[..m],
            &mut o22[..m],
            &mut ob1[..m],
            &mut ob2[..m],
        );
        let pl = |p: usize| &self.d[p * self.cw..][..m];
        let (x, y, z) = (pl(IX), pl(IY), pl(IZ));
        let (xx, xy, yy) = (pl(IXX), pl(IXY), pl(IYY));
        let (xz, yz) = (pl(IXZ), pl(IYZ));
        let (g11, g12, g22) = (pl(G11), pl(G12), pl(G22));
        let (gb1, gb2) = (pl(GB1), pl(GB2));
        let (du, dv) = (&self.du[..m], &self.dv[..m]);
        for k in 0..m {
            let (x, y, z) = (x[k], y[k], z[k]);
            // The normalisers `Ix² + Iy² + ζ²`, `Ixx² + Ixy² + ζ²`, `Iyy² + Ixy² + ζ²`.
            let norm = x * x + y * y + zeta2;
            let n1 = xx[k] * xx[k] + xy[k] * xy[k] + zeta2;
            let n2 = yy[k] * yy[k] + xy[k] * xy[k] + zeta2;
            let ik1z = z + x * du[k] + y * dv[k];
            let wt = (delta2 / (ik1z * ik1z / norm + eps2).sqrt()) / norm;
            let zx = xz[k] + xx[k] * du[k] + xy[k] * dv[k];
            let zy = yz[k] + xy[k] * du[k] + yy[k] * dv[k];
            let wg = gamma2 / (zx * zx / n1 + zy * zy / n2 + eps2).sqrt();
            o11[k] = (wt * (x * x) + zeta2) + wg * g11[k];
            o12[k] = wt * (x * y) + wg * g12[k];
            o22[k] = (wt * (y * y) + zeta2) + wg * g22[k];
            ob1[k] = -wt * (z * x) + -wg * gb1[k];
            ob2[k] = -wt * (z * y) + -wg * gb2[k];
        }
    }

    /// [`DataRow::run`] with AVX2 enabled, so that it vectorises 8 cells wide (the same
    /// operations per cell, no fused multiply-add, so the same values).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn run_avx2(&self, out: &mut [&mut [f32]; 5], k: &Consts) {
        self.run(out, k);
    }
}

/// The smoothness edges of one row of one colour: the weights and start flow of the own
/// colour and of the other (whose cells are the neighbours), padded buffers.
struct EdgeRow<'a> {
    own: (&'a [f32], &'a [f32], &'a [f32]),
    other: (&'a [f32], &'a [f32], &'a [f32]),
    /// Padded index of the row's first own cell, and of its left neighbour.
    first: usize,
    left: usize,
    pw: usize,
}

impl EdgeRow<'_> {
    /// Adds all four edges to cells `lo..hi` (not on the frame's border) of `out`.
    #[inline(always)]
    fn interior(&self, out: &mut [&mut [f32]; 5], lo: usize, hi: usize, red: bool) {
        let n = hi - lo;
        let (f, l, pw) = (self.first + lo, self.left + lo, self.pw);
        let (wt, u, v) = self.own;
        let (owt, ou, ov) = self.other;
        let (wo, uo, vo) = (&wt[f..f + n], &u[f..f + n], &v[f..f + n]);
        let (wl, ul, vl) = (&owt[l..l + n], &ou[l..l + n], &ov[l..l + n]);
        let (ur, vr) = (&ou[l + 1..l + 1 + n], &ov[l + 1..l + 1 + n]);
        let (wu, uu, vu) = (
            &owt[f - pw..f - pw + n],
            &ou[f - pw..f - pw + n],
            &ov[f - pw..f - pw + n],
        );
        let (ud, vd) = (&ou[f + pw..f + pw + n], &ov[f + pw..f + pw + n]);
        let [o11, _, o22, ob1, ob2] = out;
        let (o11, o22, ob1, ob2) = (
            &mut o11[lo..hi],
            &mut o22[lo..hi],
            &mut ob1[lo..hi],
            &mut ob2[lo..hi],
        );
        for i in 0..n {
            let (mut a11, mut a22, mut b1, mut b2) = (o11[i], o22[i], ob1[i], ob2[i]);
            let own_h = |a11: &mut f32, a22: &mut f32, b1: &mut f32, b2: &mut f32| {
                *b1 += wo[i] * (ur[i] - uo[i]);
                *a11 += wo[i];
                *b2 += wo[i] * (vr[i] - vo[i]);
                *a22 += wo[i];
            };
            let left_h = |a11: &mut f32, a22: &mut f32, b1: &mut f32, b2: &mut f32| {
                *b1 -= wl[i] * (uo[i] - ul[i]);
                *a11 += wl[i];
                *b2 -= wl[i] * (vo[i] - vl[i]);
                *a22 += wl[i];
            };
            let own_v = |a11: &mut f32, a22: &mut f32, b1: &mut f32, b2: &mut f32| {
                *b1 += wo[i] * (ud[i] - uo[i]);
                *a11 += wo[i];
                *b2 += wo[i] * (vd[i] - vo[i]);
                *a22 += wo[i];
            };
            let up_v = |a11: &mut f32, a22: &mut f32, b1: &mut f32, b2: &mut f32| {
                *b1 -= wu[i] * (uo[i] - uu[i]);
                *a11 += wu[i];
                *b2 -= wu[i] * (vo[i] - vu[i]);
                *a22 += wu[i];
            };
            let s = (&mut a11, &mut a22, &mut b1, &mut b2);
            if red {
                own_h(s.0, s.1, s.2, s.3);
                left_h(s.0, s.1, s.2, s.3);
                own_v(s.0, s.1, s.2, s.3);
                up_v(s.0, s.1, s.2, s.3);
            } else {
                left_h(s.0, s.1, s.2, s.3);
                own_h(s.0, s.1, s.2, s.3);
                up_v(s.0, s.1, s.2, s.3);
                own_v(s.0, s.1, s.2, s.3);
            }
            (o11[i], o22[i], ob1[i], ob2[i]) = (a11, a22, b1, b2);
        }
    }

    /// [`EdgeRow::interior`] with AVX2 enabled, so that it vectorises 8 cells wide (the same
    /// operations per cell, no fused multiply-add, so the same values).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn interior_avx2(&self, out: &mut [&mut [f32]; 5], lo: usize, hi: usize, red: bool) {
        self.interior(out, lo, hi, red);
    }

    /// Own cell `i` at `(x, y)` on the frame's border: the edges that leave the frame are
    /// missing.
    fn border(&self, out: &mut [&mut [f32]; 5], i: usize, x: usize, y: usize, g: &Grid, red: bool) {
        let (wt, u, v) = self.own;
        let (owt, ou, ov) = self.other;
        let (f, l, pw) = (self.first + i, self.left + i, self.pw);
        let own_h = (x + 1 < g.w).then(|| {
            (
                wt[f],
                wt[f] * (ou[l + 1] - u[f]),
                wt[f] * (ov[l + 1] - v[f]),
            )
        });
        let left_h = (x > 0).then(|| {
            let e = owt[l];
            (e, e * (u[f] - ou[l]), e * (v[f] - ov[l]))
        });
        let own_v = (y + 1 < g.h).then(|| {
            (
                wt[f],
                wt[f] * (ou[f + pw] - u[f]),
                wt[f] * (ov[f + pw] - v[f]),
            )
        });
        let up_v = (y > 0).then(|| {
            let e = owt[f - pw];
            (e, e * (u[f] - ou[f - pw]), e * (v[f] - ov[f - pw]))
        });
        let [o11, _, o22, ob1, ob2] = out;
        let mut add = |e: Option<(f32, f32, f32)>, plus: bool| {
            if let Some((e, eu, ev)) = e {
                if plus {
                    ob1[i] += eu;
                    ob2[i] += ev;
                } else {
                    ob1[i] -= eu;
                    ob2[i] -= ev;
                }
                o11[i] += e;
                o22[i] += e;
            }
        };
        if red {
            add(own_h, true);
            add(left_h, false);
            add(own_v, true);
            add(up_v, false);
        } else {
            add(left_h, false);
            add(own_h, true);
            add(up_v, false);
            add(own_v, true);
        }
    }
}

//! OpenCV's `VariationalRefinement` (`modules/video/src/variational_refinement.cpp`) as DIS
//! runs it at each level: fixed-point iterations of a linearised energy (colour and gradient
//! constancy, normalised, Charbonnier-weighted; a smoothness term), each solved by red-black
//! SOR. OpenCV stores the red and black cells in two padded buffers; this port keeps one full
//! grid and reproduces what those buffers mean: replicated flow at the borders, zero increments
//! and zero smoothness weights outside the frame, the edge terms (`A`, `b`) added in OpenCV's
//! order for each colour.

use super::Params;
use rayon::prelude::*;

/// SOR iterations per fixed-point iteration (DIS sets 5).
const SOR_ITERATIONS: usize = 5;
/// SOR relaxation factor ω.
const OMEGA: f32 = 1.6;
/// Normalisation floor ζ.
const ZETA: f32 = 0.1;

/// `warpImage`: I1 sampled bilinearly at `(x + u, y + v)`, replicated outside.
fn warp(i1: &[u8], w: usize, h: usize, u: &[f32], v: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        let px = |yy: isize, xx: isize| {
            let yy = yy.clamp(0, h as isize - 1) as usize;
            let xx = xx.clamp(0, w as isize - 1) as usize;
            f32::from(i1[yy * w + xx])
        };
        for (x, o) in row.iter_mut().enumerate() {
            let mx = x as f32 + u[y * w + x];
            let my = y as f32 + v[y * w + x];
            let (fx, fy) = (mx.floor(), my.floor());
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
    let mut out = vec![0f32; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        let r = &s[y * w..(y + 1) * w];
        for x in 0..w {
            row[x] = r[(x + 1).min(w - 1)] - r[x.saturating_sub(1)];
        }
    });
    out
}

/// `Sobel(ksize = 1, BORDER_REPLICATE)` along y.
fn dy(s: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut out = vec![0f32; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
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
    fn new(len: usize) -> Self {
        let z = || vec![0f32; len];
        Colour {
            du: z(),
            dv: z(),
            weight: z(),
            a11: z(),
            a12: z(),
            a22: z(),
            b1: z(),
            b2: z(),
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
        });
}

/// Refines the flow `(u, v)` of a `w`×`h` level in place (`calcUV`), with `p`'s variational
/// refinement iterations and weights; `i0`, `i1` and the flow planes hold `w · h` values.
pub fn refine(i0: &[u8], i1: &[u8], w: usize, h: usize, u: &mut [f32], v: &mut [f32], p: &Params) {
    let n = w * h;
    let warped = warp(i1, w, h, u, v);
    let avg: Vec<f32> = i0
        .iter()
        .zip(&warped)
        .map(|(&a, &b)| 0.5 * f32::from(a) + 0.5 * b)
        .collect();
    let iz: Vec<f32> = i0
        .iter()
        .zip(&warped)
        .map(|(&a, &b)| b - f32::from(a))
        .collect();
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

    let (w_u, w_v) = (u.to_vec(), v.to_vec());
    let mut tu = w_u.clone();
    let mut tv = w_v.clone();
    let mut du = vec![0f32; n];
    let mut dv = vec![0f32; n];
    let mut sys = vec![System::default(); n];
    let mut weight = vec![0f32; n];
    let pw = w.div_ceil(2) + 2;
    let mut colours = [Colour::new(pw * (h + 2)), Colour::new(pw * (h + 2))];

    for _ in 0..p.variational_refinement_iterations {
        // Data term.
        sys.par_iter_mut().enumerate().for_each(|(k, s)| {
            let (x, y, z) = (ix[k], iy[k], iz[k]);
            let norm = x * x + y * y + zeta2;
            let ik1z = z + x * du[k] + y * dv[k];
            let wt = (delta2 / (ik1z * ik1z / norm + eps2).sqrt()) / norm;
            s.a11 = wt * (x * x) + zeta2;
            s.a12 = wt * (x * y);
            s.a22 = wt * (y * y) + zeta2;
            s.b1 = -wt * (z * x);
            s.b2 = -wt * (z * y);
            let (xx, xy, yy, xz, yz) = (ixx[k], ixy[k], iyy[k], ixz[k], iyz[k]);
            let n1 = xx * xx + xy * xy + zeta2;
            let n2 = yy * yy + xy * xy + zeta2;
            let zx = xz + xx * du[k] + xy * dv[k];
            let zy = yz + xy * du[k] + yy * dv[k];
            let wt = gamma2 / (zx * zx / n1 + zy * zy / n2 + eps2).sqrt();
            s.a11 += wt * (xx * xx / n1 + xy * xy / n2);
            s.a12 += wt * (xx * xy / n1 + xy * yy / n2);
            s.a22 += wt * (xy * xy / n1 + yy * yy / n2);
            s.b1 += -wt * (xx * xz / n1 + xy * yz / n2);
            s.b2 += -wt * (xy * xz / n1 + yy * yz / n2);
        });
        // Smoothness weights from the current flow (replicated at the right and bottom).
        weight.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
            let yn = (y + 1).min(h - 1);
            for (x, o) in row.iter_mut().enumerate() {
                let k = y * w + x;
                let kr = y * w + (x + 1).min(w - 1);
                let kd = yn * w + x;
                let ux = tu[kr] - tu[k];
                let vx = tv[kr] - tv[k];
                let uy = tu[kd] - tu[k];
                let vy = tv[kd] - tv[k];
                *o = alpha2 / (ux * ux + vx * vx + uy * uy + vy * vy + eps2).sqrt();
            }
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
            rows.enumerate()
                .for_each(|(y, (((((rw, r11), r12), r22), rb1), rb2))| {
                    let off = (y + c) & 1;
                    for (kk, x) in (off..w).step_by(2).enumerate() {
                        let k = y * w + x;
                        let mut s = sys[k];
                        let own_h = (x + 1 < w).then(|| {
                            let wt = weight[k];
                            (wt, wt * (w_u[k + 1] - w_u[k]), wt * (w_v[k + 1] - w_v[k]))
                        });
                        let left_h = (x > 0).then(|| {
                            let wt = weight[k - 1];
                            (wt, wt * (w_u[k] - w_u[k - 1]), wt * (w_v[k] - w_v[k - 1]))
                        });
                        let own_v = (y + 1 < h).then(|| {
                            let wt = weight[k];
                            (wt, wt * (w_u[k + w] - w_u[k]), wt * (w_v[k + w] - w_v[k]))
                        });
                        let up_v = (y > 0).then(|| {
                            let wt = weight[k - w];
                            (wt, wt * (w_u[k] - w_u[k - w]), wt * (w_v[k] - w_v[k - w]))
                        });
                        let add = |s: &mut System, e: Option<(f32, f32, f32)>, sign: f32| {
                            if let Some((wt, eu, ev)) = e {
                                if sign > 0.0 {
                                    s.b1 += eu;
                                    s.a11 += wt;
                                    s.b2 += ev;
                                    s.a22 += wt;
                                } else {
                                    s.b1 -= eu;
                                    s.a11 += wt;
                                    s.b2 -= ev;
                                    s.a22 += wt;
                                }
                            }
                        };
                        if c == 0 {
                            add(&mut s, own_h, 1.0);
                            add(&mut s, left_h, -1.0);
                            add(&mut s, own_v, 1.0);
                            add(&mut s, up_v, -1.0);
                        } else {
                            add(&mut s, left_h, -1.0);
                            add(&mut s, own_h, 1.0);
                            add(&mut s, up_v, -1.0);
                            add(&mut s, own_v, 1.0);
                        }
                        let o = kk + 1;
                        rw[o] = weight[k];
                        r11[o] = s.a11;
                        r12[o] = s.a12;
                        r22[o] = s.a22;
                        rb1[o] = s.b1;
                        rb2[o] = s.b2;
                    }
                });
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
            .enumerate()
            .for_each(|(y, (ru, rv))| {
                for x in 0..w {
                    let col = &colours[(x + y) & 1];
                    let i = (y + 1) * pw + x / 2 + 1;
                    ru[x] = col.du[i];
                    rv[x] = col.dv[i];
                }
            });
        for k in 0..n {
            tu[k] = w_u[k] + du[k];
            tv[k] = w_v[k] + dv[k];
        }
    }
    u.copy_from_slice(&tu);
    v.copy_from_slice(&tv);
}

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
    let mut nu = vec![0f32; n];
    let mut nv = vec![0f32; n];
    let mut sys = vec![System::default(); n];
    let mut weight = vec![0f32; n];

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
        // Smoothness edges into A and b, in OpenCV's order per colour (red: own edge first).
        sys.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
            for (x, s) in row.iter_mut().enumerate() {
                let k = y * w + x;
                let red = (x + y).is_multiple_of(2);
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
                if red {
                    add(s, own_h, 1.0);
                    add(s, left_h, -1.0);
                    add(s, own_v, 1.0);
                    add(s, up_v, -1.0);
                } else {
                    add(s, left_h, -1.0);
                    add(s, own_h, 1.0);
                    add(s, up_v, -1.0);
                    add(s, own_v, 1.0);
                }
            }
        });
        // Red-black SOR on the increments (zero outside the frame).
        for _ in 0..SOR_ITERATIONS {
            for colour in [0usize, 1] {
                nu.par_chunks_mut(w)
                    .zip(nv.par_chunks_mut(w))
                    .enumerate()
                    .for_each(|(y, (ru, rv))| {
                        for x in 0..w {
                            let k = y * w + x;
                            if (x + y) % 2 != colour {
                                ru[x] = du[k];
                                rv[x] = dv[k];
                                continue;
                            }
                            let (wl, ul, vl) = if x > 0 {
                                (weight[k - 1], du[k - 1], dv[k - 1])
                            } else {
                                (0.0, 0.0, 0.0)
                            };
                            let (ur, vr) = if x + 1 < w {
                                (du[k + 1], dv[k + 1])
                            } else {
                                (0.0, 0.0)
                            };
                            let (wu, uu, vu) = if y > 0 {
                                (weight[k - w], du[k - w], dv[k - w])
                            } else {
                                (0.0, 0.0, 0.0)
                            };
                            let (ud, vd) = if y + 1 < h {
                                (du[k + w], dv[k + w])
                            } else {
                                (0.0, 0.0)
                            };
                            let wp = weight[k];
                            let su = wl * ul + wp * ur + wu * uu + wp * ud;
                            let sv = wl * vl + wp * vr + wu * vu + wp * vd;
                            let s = &sys[k];
                            let mut cu = du[k];
                            let mut cv = dv[k];
                            cu += OMEGA * ((su + s.b1 - cv * s.a12) / s.a11 - cu);
                            cv += OMEGA * ((sv + s.b2 - cu * s.a12) / s.a22 - cv);
                            ru[x] = cu;
                            rv[x] = cv;
                        }
                    });
                std::mem::swap(&mut du, &mut nu);
                std::mem::swap(&mut dv, &mut nv);
            }
        }
        for k in 0..n {
            tu[k] = w_u[k] + du[k];
            tv[k] = w_v[k] + dv[k];
        }
    }
    u.copy_from_slice(&tu);
    v.copy_from_slice(&tv);
}

//! Camera Shakify (Forge Deforum's `shake_name`, `shake_intensity`, `shake_speed`): recorded
//! hand-held camera shakes, looped, added to the 3D camera's per-frame values.
//!
//! The data is Camera Shakify's `shake_data.py` (EatTheFuture/camera_shakify, dedicated to the
//! public domain under CC0 1.0 by its LICENSE_DATA.md), converted into
//! `presets/shakify/shake_data.tsv` by scripts/make_shakify_data.py and bundled into the binary.
//!
//! Semantics are Deforum's (its `Shaker`, read as a specification): per axis, a cubic spline
//! with SciPy's default not-a-knot ends through (frame, value · intensity), sampled at
//! `linspace(0, n + 1, int((n + 1) · fps / 24))` for a curve of n points, frame i reading entry
//! `i % len`. In 3D mode the six values are added to `translation_x/y/z` (the shake's `location`,
//! Blender metres, added as Deforum translation units) and `rotation_3d_x/y/z` (its
//! `rotation_euler`, radians, added as degrees), as Deforum adds them. Speed keeps the setting's
//! promise rather than Deforum's code (docs/deforum-differences.md): frame i reads the speed-1
//! curve at loop position `(i · speed) mod len`, so speed 1 is Deforum's result exactly.
//!
//! Depends on nothing but the bundled data; [`crate::motion::apply`] calls [`apply`].

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The bundled data file (CC0, see the module documentation).
const DATA: &str = include_str!("../../presets/shakify/shake_data.tsv");

/// The schedules a shake adds to, in the order of [`ShakeLoop::at`]'s values.
pub const AXES: [&str; 6] = [
    "translation_x",
    "translation_y",
    "translation_z",
    "rotation_3d_x",
    "rotation_3d_y",
    "rotation_3d_z",
];

/// The largest `shake.intensity` (Deforum's slider).
pub const MAX_INTENSITY: f64 = 3.0;
/// The largest `shake.speed` (Deforum's slider); the speed must be above 0.
pub const MAX_SPEED: f64 = 3.0;

/// The shake setting of a scene (`[motion] shake = { name = "Investigation", intensity = 1.0,
/// speed = 1.0 }`; Deforum's `shake_name`, `shake_intensity`, `shake_speed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShakeSettings {
    /// A shake's key (`INVESTIGATION`) or display name (`Investigation`); `None` = off.
    pub name: String,
    /// Factor on the recorded values, 0..=3.
    pub intensity: f64,
    /// How many times as fast as recorded the loop plays, above 0 and at most 3.
    pub speed: f64,
}

impl Default for ShakeSettings {
    fn default() -> Self {
        ShakeSettings {
            name: "None".into(),
            intensity: 1.0,
            speed: 1.0,
        }
    }
}

impl ShakeSettings {
    /// True when no shake is chosen (`name = "None"` or empty), for serde's
    /// `skip_serializing_if`.
    pub fn is_off(&self) -> bool {
        let n = self.name.trim();
        n.is_empty() || n.eq_ignore_ascii_case("none")
    }

    /// The chosen shake with the settings checked; `None` when off.
    ///
    /// # Errors
    /// An unknown name (listing the valid ones and the closest), an intensity outside 0..=3 or a
    /// speed outside (0, 3], naming `[motion] shake.<key>`.
    pub fn shake(&self) -> Result<Option<&'static Shake>, String> {
        if self.is_off() {
            return Ok(None);
        }
        let shake = find(&self.name).ok_or_else(|| {
            let mut names: Vec<&str> = vec!["None"];
            names.extend(shakes().iter().map(|s| s.name));
            let keys: Vec<&str> = shakes().iter().map(|s| s.key).collect();
            let mut msg =
                crate::scene::unknown_value("[motion] shake.name", self.name.trim(), &names);
            msg.push_str(&format!(" (or a key: {})", keys.join(", ")));
            msg
        })?;
        if !(0.0..=MAX_INTENSITY).contains(&self.intensity) {
            return Err(format!(
                "[motion] shake.intensity = {}: must be within 0..={MAX_INTENSITY} (Deforum's range)",
                self.intensity
            ));
        }
        if !(self.speed > 0.0 && self.speed <= MAX_SPEED) {
            return Err(format!(
                "[motion] shake.speed = {}: must be above 0 and at most {MAX_SPEED} (1 plays the \
                 shake as recorded, 2 twice as fast)",
                self.speed
            ));
        }
        Ok(Some(shake))
    }
}

/// One recorded shake.
#[derive(Debug)]
pub struct Shake {
    /// Camera Shakify's key (`INVESTIGATION`).
    pub key: &'static str,
    /// Its display name (`Investigation`), as Deforum's menu shows it.
    pub name: &'static str,
    /// The frame rate it was recorded at (24).
    pub fps: f64,
    /// Per axis of [`AXES`], the recorded curve (first frame, one value per frame); `None` for
    /// the location of a 2D shake, which Deforum reads as 0.
    curves: [Option<(i64, Vec<f64>)>; 6],
}

impl Shake {
    /// True when the shake has no location curves (a "(2D)" shake: rotation only).
    pub fn is_2d(&self) -> bool {
        self.curves[..3].iter().all(Option::is_none)
    }

    /// The shake's per-frame loop at `intensity`, `speed` and the scene's `fps`.
    ///
    /// # Errors
    /// An fps so low that a curve's table has no entry (`int((n + 1) · fps / 24) = 0`), or so
    /// high that its length is not a usable number.
    pub fn looped(&self, intensity: f64, speed: f64, fps: f64) -> Result<ShakeLoop, String> {
        let mut axes: [Option<AxisLoop>; 6] = Default::default();
        for (slot, curve) in axes.iter_mut().zip(&self.curves) {
            let Some((first, values)) = curve else {
                continue;
            };
            let n = values.len();
            // Deforum's target frame count: int((n + 1) * fps / source_fps)
            let len = ((n + 1) as f64 * fps / self.fps).floor();
            if !(1.0..1e15).contains(&len) {
                return Err(format!(
                    "[output] fps = {fps}: the shake \"{}\" has {n} frames at {} fps, which give \
                     {len} frames at this rate; use an fps of at least {:.3}",
                    self.name,
                    self.fps,
                    self.fps / (n + 1) as f64
                ));
            }
            let x: Vec<f64> = (0..n as i64).map(|k| (first + k) as f64).collect();
            let y: Vec<f64> = values.iter().map(|v| v * intensity).collect();
            *slot = Some(AxisLoop {
                spline: NotAKnotSpline::new(&x, &y),
                len,
                stop: (n + 1) as f64,
                speed,
            });
        }
        Ok(ShakeLoop { axes })
    }
}

/// One axis of a shake, sampled as Deforum samples it.
#[derive(Debug, Clone)]
struct AxisLoop {
    spline: NotAKnotSpline,
    /// Entries in one loop: `int((n + 1) · fps / 24)`.
    len: f64,
    /// The last sample position, `n + 1`.
    stop: f64,
    speed: f64,
}

impl AxisLoop {
    fn at(&self, frame: usize) -> f64 {
        // the loop position: entry `frame % len` at speed 1, as Deforum
        let u = (frame as f64 * self.speed) % self.len;
        // numpy.linspace(0, stop, len): j * (stop / (len - 1)), the last entry exactly `stop`
        let x = if self.len <= 1.0 {
            0.0
        } else if u == self.len - 1.0 {
            self.stop
        } else {
            u * (self.stop / (self.len - 1.0))
        };
        self.spline.eval(x)
    }
}

/// A shake ready to sample: the six values to add at each frame.
#[derive(Debug, Clone)]
pub struct ShakeLoop {
    axes: [Option<AxisLoop>; 6],
}

impl ShakeLoop {
    /// The values added at `frame` to the schedules of [`AXES`], in that order (translations in
    /// Deforum units, rotations in degrees, as Deforum adds them).
    pub fn at(&self, frame: usize) -> [f64; 6] {
        std::array::from_fn(|k| self.axes[k].as_ref().map_or(0.0, |a| a.at(frame)))
    }
}

/// Adds the scene's shake to `numeric` (column name, one value per frame) in 3D mode; other modes
/// are left unchanged (Deforum applies the shake in its 3D warp only).
///
/// # Errors
/// As [`ShakeSettings::shake`] and [`Shake::looped`].
pub fn apply(
    settings: &ShakeSettings,
    fps: f64,
    three_d: bool,
    numeric: &mut [(String, Vec<f64>)],
) -> Result<(), String> {
    let Some(shake) = settings.shake()? else {
        return Ok(());
    };
    if !three_d {
        return Ok(());
    }
    let looped = shake.looped(settings.intensity, settings.speed, fps)?;
    for (name, values) in numeric.iter_mut() {
        if let Some(k) = AXES.iter().position(|a| a == name)
            && let Some(axis) = &looped.axes[k]
        {
            for (i, v) in values.iter_mut().enumerate() {
                *v += axis.at(i);
            }
        }
    }
    Ok(())
}

/// Every bundled shake, in Camera Shakify's order.
pub fn shakes() -> &'static [Shake] {
    static SHAKES: OnceLock<Vec<Shake>> = OnceLock::new();
    SHAKES.get_or_init(|| parse(DATA).expect("the bundled shake data parses (tested)"))
}

/// The shake with this key or display name (exact, as Deforum matches them).
pub fn find(name: &str) -> Option<&'static Shake> {
    let name = name.trim();
    shakes().iter().find(|s| s.key == name || s.name == name)
}

/// Reads the data file's format (scripts/make_shakify_data.py describes it).
fn parse(text: &'static str) -> Result<Vec<Shake>, String> {
    let mut out: Vec<Shake> = Vec::new();
    for (no, line) in text.lines().enumerate() {
        let bad = |what: &str| format!("shake_data.tsv line {}: {what}", no + 1);
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&'static str> = line.split('\t').collect();
        match f.as_slice() {
            ["shake", key, fps, name] => out.push(Shake {
                key,
                name,
                fps: fps.parse().map_err(|_| bad("bad fps"))?,
                curves: Default::default(),
            }),
            ["curve", path, axis, first, values] => {
                let axis: usize = axis.parse().map_err(|_| bad("bad axis"))?;
                let base = match *path {
                    "location" => 0,
                    "rotation_euler" => 3,
                    _ => return Err(bad("unknown curve")),
                };
                let values = values
                    .split(' ')
                    .map(str::parse)
                    .collect::<Result<Vec<f64>, _>>()
                    .map_err(|_| bad("bad value"))?;
                if axis > 2 || values.len() < 4 {
                    return Err(bad("axis above 2 or fewer than 4 points"));
                }
                let shake = out.last_mut().ok_or_else(|| bad("curve before shake"))?;
                shake.curves[base + axis] =
                    Some((first.parse().map_err(|_| bad("bad frame"))?, values));
            }
            _ => return Err(bad("unknown line")),
        }
    }
    Ok(out)
}

/// A cubic spline with SciPy's default not-a-knot end conditions (`scipy.interpolate.
/// CubicSpline(x, y)`), extrapolating with its end pieces, for 4 or more points.
///
/// Hand-written (60 lines): the spline crates on crates.io (`splines`, `bspline`, `enterpolation`)
/// have natural or Catmull-Rom ends, not not-a-knot, and the values must match SciPy's. The
/// system and coefficients are SciPy's formulation; evaluation sums powers as SciPy's `PPoly`.
#[derive(Debug, Clone)]
struct NotAKnotSpline {
    x: Vec<f64>,
    /// Per interval: the coefficients of (x − x_i)³, ², ¹, ⁰.
    c: Vec<[f64; 4]>,
}

impl NotAKnotSpline {
    /// `x` strictly increasing, `x.len() == y.len() >= 4` (the bundled curves; checked by the
    /// parser).
    fn new(x: &[f64], y: &[f64]) -> NotAKnotSpline {
        let n = x.len();
        assert!(n >= 4 && y.len() == n, "not-a-knot spline needs 4+ points");
        let dx: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
        let slope: Vec<f64> = (0..n - 1).map(|i| (y[i + 1] - y[i]) / dx[i]).collect();
        // tridiagonal system for the slopes s: sub, diag, sup, rhs
        let (mut sub, mut diag, mut sup, mut b) =
            (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for i in 1..n - 1 {
            sub[i] = dx[i];
            diag[i] = 2.0 * (dx[i - 1] + dx[i]);
            sup[i] = dx[i - 1];
            b[i] = 3.0 * (dx[i] * slope[i - 1] + dx[i - 1] * slope[i]);
        }
        let d = x[2] - x[0];
        diag[0] = dx[1];
        sup[0] = d;
        b[0] = ((dx[0] + 2.0 * d) * dx[1] * slope[0] + dx[0] * dx[0] * slope[1]) / d;
        let d = x[n - 1] - x[n - 3];
        diag[n - 1] = dx[n - 3];
        sub[n - 1] = d;
        b[n - 1] = (dx[n - 2] * dx[n - 2] * slope[n - 3]
            + (2.0 * d + dx[n - 2]) * dx[n - 3] * slope[n - 2])
            / d;
        // Thomas algorithm (the matrix is diagonally dominant but for the end rows, whose
        // elimination is stable for these spacings)
        for i in 1..n {
            let m = sub[i] / diag[i - 1];
            diag[i] -= m * sup[i - 1];
            b[i] -= m * b[i - 1];
        }
        let mut s = vec![0.0; n];
        s[n - 1] = b[n - 1] / diag[n - 1];
        for i in (0..n - 1).rev() {
            s[i] = (b[i] - sup[i] * s[i + 1]) / diag[i];
        }
        let c = (0..n - 1)
            .map(|i| {
                let t = (s[i] + s[i + 1] - 2.0 * slope[i]) / dx[i];
                [t / dx[i], (slope[i] - s[i]) / dx[i] - t, s[i], y[i]]
            })
            .collect();
        NotAKnotSpline { x: x.to_vec(), c }
    }

    /// The spline at `t`; outside the knots, the first or last piece continued.
    fn eval(&self, t: f64) -> f64 {
        let last = self.c.len() - 1;
        // the interval i with x[i] <= t < x[i + 1], clamped to the end pieces
        let i = self
            .x
            .partition_point(|&k| k <= t)
            .saturating_sub(1)
            .min(last);
        let h = t - self.x[i];
        let c = &self.c[i];
        let (mut res, mut z) = (0.0, 1.0);
        for k in (0..4).rev() {
            res += c[k] * z;
            z *= h;
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_data_has_the_nine_shakes() {
        let s = shakes();
        assert_eq!(s.len(), 9);
        assert_eq!(
            (s[0].key, s[0].name, s[0].fps),
            ("INVESTIGATION", "Investigation", 24.0)
        );
        assert_eq!(s.iter().filter(|s| s.is_2d()).count(), 3);
        assert!(s.iter().all(|s| s.curves[3..].iter().all(Option::is_some)));
        assert!(find("The Zeek (2D)").is_some_and(Shake::is_2d));
        assert!(find("HANDYCAM_RUN").is_some_and(|s| s.name == "HandyCam Run"));
        assert!(find("investigation").is_none(), "exact names, as Deforum");
    }

    #[test]
    fn spline_reproduces_cubics_and_extrapolates() {
        // not-a-knot is exact on a cubic, inside and outside the knots
        let f = |x: f64| 0.5 * x * x * x - 2.0 * x * x + x - 3.0;
        let x = [-1.0, 0.0, 1.0, 2.0, 3.0, 4.0];
        let y = x.map(f);
        let s = NotAKnotSpline::new(&x, &y);
        for t in [-2.5, -1.0, 0.3, 2.0, 3.7, 4.0, 6.0] {
            assert!((s.eval(t) - f(t)).abs() < 1e-12, "{t}: {}", s.eval(t));
        }
    }

    #[test]
    fn bad_settings_are_errors() {
        let set = |name: &str, intensity, speed| ShakeSettings {
            name: name.into(),
            intensity,
            speed,
        };
        assert!(set("None", 9.0, 0.0).shake().unwrap().is_none());
        let e = set("Investigaton", 1.0, 1.0).shake().unwrap_err();
        assert!(
            e.contains("shake.name") && e.contains("The Closeup") && e.contains("INVESTIGATION"),
            "{e}"
        );
        assert!(
            set("Investigation", 3.5, 1.0)
                .shake()
                .unwrap_err()
                .contains("intensity")
        );
        assert!(
            set("Investigation", 1.0, 0.0)
                .shake()
                .unwrap_err()
                .contains("speed")
        );
        assert!(
            set("Investigation", 1.0, f64::NAN)
                .shake()
                .unwrap_err()
                .contains("speed")
        );
        let e = find("INVESTIGATION")
            .unwrap()
            .looped(1.0, 1.0, 0.01)
            .unwrap_err();
        assert!(e.contains("fps"), "{e}");
    }
}

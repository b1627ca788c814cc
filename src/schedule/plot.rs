//! `anim schedule --format png`: one panel per numeric schedule, drawn with plotters.

use anyhow::{Result, anyhow};
use image::RgbImage;
use plotters::prelude::*;

use crate::scene::ScheduleColumns;

const PANEL_W: u32 = 420;
const PANEL_H: u32 = 200;
const COLUMNS: u32 = 3;

pub(crate) fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Hack (MIT/Bitstream Vera licence), shipped by the epaint_default_fonts crate
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::HACK_REGULAR,
        );
    });
}

/// Draws every numeric schedule of `s` as a grid of panels (3 per row).
pub fn plot(s: &ScheduleColumns) -> Result<RgbImage> {
    register_font();
    let n = s.numeric().len().max(1) as u32;
    let rows = n.div_ceil(COLUMNS);
    let (w, h) = (PANEL_W * COLUMNS.min(n), PANEL_H * rows);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
        let panels = root.split_evenly((rows as usize, COLUMNS.min(n) as usize));
        for ((name, values), area) in s.numeric().iter().zip(panels.iter()) {
            let (lo, hi) = values
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                    (a.min(*v), b.max(*v))
                });
            let pad = if hi > lo {
                (hi - lo) * 0.08
            } else {
                lo.abs().max(1.0) * 0.05
            };
            let last = (values.len().max(2) - 1) as f64;
            let mut chart = ChartBuilder::on(area)
                .caption(name, ("sans-serif", 15))
                .margin(6)
                .x_label_area_size(22)
                .y_label_area_size(58)
                .build_cartesian_2d(0f64..last, (lo - pad)..(hi + pad))
                .map_err(|e| anyhow!("plot {name}: {e}"))?;
            chart
                .configure_mesh()
                .x_labels(6)
                .x_label_formatter(&|x| format!("{}", *x as i64))
                .y_labels(5)
                .label_style(("sans-serif", 11))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(|e| anyhow!("plot {name}: {e}"))?;
            chart
                .draw_series(LineSeries::new(
                    values.iter().enumerate().map(|(i, v)| (i as f64, *v)),
                    BLUE.stroke_width(2),
                ))
                .map_err(|e| anyhow!("plot {name}: {e}"))?;
        }
        root.present().map_err(|e| anyhow!("plot: {e}"))?;
    }
    RgbImage::from_raw(w, h, buf).ok_or_else(|| anyhow!("plot buffer has the wrong size"))
}

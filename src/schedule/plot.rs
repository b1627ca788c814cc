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
    plot_with_audio(s, None)
}

/// [`plot`], then one panel per audio variable of `audio` (in orange, captioned `audio: NAME`),
/// beside the schedules.
pub fn plot_with_audio(
    s: &ScheduleColumns,
    audio: Option<&crate::audio::AudioFeatures>,
) -> Result<RgbImage> {
    let mut panels: Vec<(String, &[f64], RGBColor)> = s
        .numeric()
        .iter()
        .map(|(n, v)| (n.clone(), v.as_slice(), BLUE))
        .collect();
    let audio_series = audio.map(|a| a.series()).unwrap_or_default();
    let frames = s.numeric().first().map_or(usize::MAX, |(_, v)| v.len());
    for (name, values) in &audio_series {
        panels.push((
            format!("audio: {name}"),
            &values[..values.len().min(frames)],
            RGBColor(230, 120, 0),
        ));
    }
    draw(&panels)
}

fn draw(panels: &[(String, &[f64], RGBColor)]) -> Result<RgbImage> {
    register_font();
    let n = panels.len().max(1) as u32;
    let rows = n.div_ceil(COLUMNS);
    let (w, h) = (PANEL_W * COLUMNS.min(n), PANEL_H * rows);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
        let areas = root.split_evenly((rows as usize, COLUMNS.min(n) as usize));
        for ((name, values, colour), area) in panels.iter().zip(areas.iter()) {
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
                .caption(name.as_str(), ("sans-serif", 15))
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
                    colour.stroke_width(2),
                ))
                .map_err(|e| anyhow!("plot {name}: {e}"))?;
        }
        root.present().map_err(|e| anyhow!("plot: {e}"))?;
    }
    RgbImage::from_raw(w, h, buf).ok_or_else(|| anyhow!("plot buffer has the wrong size"))
}

//! `--plot FILE.svg`: latency percentile curves and, for `ramp`, throughput and p99 per
//! step (plotters, SVG backend only).

use std::path::Path;

use plotters::prelude::*;

use super::report::Report;
use super::stats::Lat;

/// Errors drawing the SVG.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("drawing {0}: {1}")]
    Draw(String, String),
}

fn err<E: std::fmt::Debug>(what: &str) -> impl Fn(E) -> PlotError + '_ {
    move |e| PlotError::Draw(what.to_string(), format!("{e:?}"))
}

/// Percentile axis: x = -log10(1 - q), so 1 = p90, 2 = p99, 3 = p99.9.
fn nines(q: f64) -> f64 {
    -(1.0 - q.min(0.99999)).log10()
}

const COLORS: [RGBColor; 6] = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];

/// Draws `r` into an SVG file at `path`.
pub fn plot(r: &Report, path: &Path) -> Result<(), PlotError> {
    let ramp = !r.steps.is_empty();
    let size = if ramp { (900, 1000) } else { (900, 500) };
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(err("background"))?;
    let (top, bottom) = if ramp {
        let (a, b) = root.split_vertically(500);
        (a, Some(b))
    } else {
        (root.clone(), None)
    };

    // Latency percentile distribution of every measured latency.
    let hists = &r.figures.histograms;
    let ymax = hists
        .values()
        .map(|h| h.value_at_quantile(0.99999) as f64 / 1000.0)
        .fold(0.1_f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!("mc-loadgen {}: latency by percentile", r.scenario),
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..5.0_f64, 0.0..ymax)
        .map_err(err("latency chart"))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("ms")
        .x_label_formatter(&|x| match x.round() as i64 {
            0 => "0%".into(),
            1 => "90%".into(),
            2 => "99%".into(),
            3 => "99.9%".into(),
            4 => "99.99%".into(),
            _ => "99.999%".into(),
        })
        .draw()
        .map_err(err("latency mesh"))?;
    for (i, (name, h)) in hists.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = h
            .iter_quantiles(5)
            .map(|v| {
                (
                    nines(v.quantile_iterated_to()),
                    v.value_iterated_to() as f64 / 1000.0,
                )
            })
            .collect();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(err("latency series"))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err("legend"))?;

    // Ramp: throughput and p99 per step.
    if let Some(area) = bottom {
        let pts: Vec<(f64, f64, f64)> = r
            .steps
            .iter()
            .map(|s| {
                let f = &s.figures;
                let tput = f
                    .throughput
                    .get("deliveries_per_s")
                    .or_else(|| f.throughput.get("round_trips_per_s"))
                    .copied()
                    .unwrap_or(0.0);
                let p99 = f
                    .latency(Lat::Fanout)
                    .or(f.latency(Lat::Rtt))
                    .map_or(0.0, |l| l.p99_ms);
                (s.step as f64, tput, p99)
            })
            .collect();
        let xmax = pts.len().max(1) as f64 + 0.5;
        let tmax = pts.iter().map(|p| p.1).fold(1.0_f64, f64::max) * 1.1;
        let pmax = pts.iter().map(|p| p.2).fold(1.0_f64, f64::max) * 1.1;
        let mut c = ChartBuilder::on(&area)
            .caption(
                "ramp: throughput (blue) and p99 latency (red) per step",
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .right_y_label_area_size(60)
            .build_cartesian_2d(0.5..xmax, 0.0..tmax)
            .map_err(err("ramp chart"))?
            .set_secondary_coord(0.5..xmax, 0.0..pmax);
        c.configure_mesh()
            .x_desc("step")
            .y_desc("per second")
            .draw()
            .map_err(err("ramp mesh"))?;
        c.configure_secondary_axes()
            .y_desc("p99 ms")
            .draw()
            .map_err(err("ramp axis"))?;
        c.draw_series(LineSeries::new(
            pts.iter().map(|p| (p.0, p.1)),
            BLUE.stroke_width(2),
        ))
        .map_err(err("throughput"))?;
        c.draw_series(
            pts.iter()
                .map(|p| Circle::new((p.0, p.1), 4, BLUE.filled())),
        )
        .map_err(err("throughput points"))?;
        c.draw_secondary_series(LineSeries::new(
            pts.iter().map(|p| (p.0, p.2)),
            RED.stroke_width(2),
        ))
        .map_err(err("p99"))?;
        c.draw_secondary_series(pts.iter().map(|p| Circle::new((p.0, p.2), 4, RED.filled())))
            .map_err(err("p99 points"))?;
    }
    root.present().map_err(err("svg file"))?;
    Ok(())
}

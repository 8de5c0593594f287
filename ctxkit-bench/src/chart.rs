//! SVG line charts of the scale series (`compare --scale --charts DIR`), drawn with plotters'
//! SVG backend. Text is written as SVG `<text>` elements (the viewer picks the font), so no
//! font files are needed: plotters' built-in size estimate lays the labels out.

use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;

use crate::compare::{kind, Kind};

/// One line of a chart: a label (the implementation) and its (x, y) points, x ascending.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChartLine {
    pub(crate) label: String,
    pub(crate) points: Vec<(f64, f64)>,
}

/// An axis is logarithmic when its positive values span 100x or more.
fn log_axis(lo: f64, hi: f64) -> bool {
    lo > 0.0 && hi / lo >= 100.0
}

/// A tick label: whole thousands and millions as `10k`, `1M`, other integers as they are,
/// the rest with about three digits.
fn tick(v: f64) -> String {
    let whole = |x: f64| x.fract().abs() < 1e-9;
    let a = v.abs();
    if a >= 1e6 && whole(v / 1e6) {
        format!("{}M", v / 1e6)
    } else if a >= 1e3 && whole(v / 1e3) {
        format!("{}k", v / 1e3)
    } else if whole(v) {
        format!("{v:.0}")
    } else {
        crate::compare::fmt_value(v)
    }
}

/// The colour of a line: ctxkit's forms warm colours, Go blue, a peer green.
fn colour(label: &str, nth_ctxkit: usize) -> RGBColor {
    const CTXKIT: [RGBColor; 3] = [
        RGBColor(200, 30, 40),
        RGBColor(230, 120, 20),
        RGBColor(150, 60, 170),
    ];
    match kind(label) {
        Kind::Ctxkit => CTXKIT[nth_ctxkit % CTXKIT.len()],
        Kind::Go => RGBColor(20, 100, 200),
        Kind::Peer => RGBColor(30, 150, 60),
    }
}

/// Draws `lines` into an SVG file at `path`: x = n, y described by `metric`, a legend and a
/// title.
pub(crate) fn svg(
    path: &Path,
    title: &str,
    metric: &str,
    lines: &[ChartLine],
) -> Result<(), String> {
    let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let ys = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let (Some(x_lo), Some(x_hi)) = (xs.clone().reduce(f64::min), xs.reduce(f64::max)) else {
        return Err(format!("{title}: no points to draw"));
    };
    let (y_lo, y_hi) = (
        ys.clone().reduce(f64::min).unwrap_or(0.0),
        ys.reduce(f64::max).unwrap_or(1.0),
    );
    // Room on the x axis for a single point, and above the lines for the legend.
    let (x_lo, x_hi) = if x_hi > x_lo {
        (x_lo, x_hi)
    } else {
        (x_lo * 0.5, x_hi * 2.0 + 1.0)
    };
    let result = match (log_axis(x_lo, x_hi), log_axis(y_lo, y_hi)) {
        (true, true) => draw(
            path,
            title,
            metric,
            lines,
            (x_lo..x_hi).log_scale(),
            (y_lo / 1.5..y_hi * 4.0).log_scale(),
        ),
        (true, false) => draw(
            path,
            title,
            metric,
            lines,
            (x_lo..x_hi).log_scale(),
            0.0..linear_top(y_hi),
        ),
        (false, true) => draw(
            path,
            title,
            metric,
            lines,
            x_lo..x_hi,
            (y_lo / 1.5..y_hi * 4.0).log_scale(),
        ),
        (false, false) => draw(
            path,
            title,
            metric,
            lines,
            x_lo..x_hi,
            0.0..linear_top(y_hi),
        ),
    };
    result.map_err(|e| format!("cannot draw {}: {e}", path.display()))
}

/// The top of a linear y axis from 0: room above the highest point for the legend.
fn linear_top(y_hi: f64) -> f64 {
    if y_hi > 0.0 {
        y_hi * 1.4
    } else {
        1.0
    }
}

fn draw<X, Y>(
    path: &Path,
    title: &str,
    metric: &str,
    lines: &[ChartLine],
    x: X,
    y: Y,
) -> Result<(), Box<dyn std::error::Error>>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc("n")
        .y_desc(metric)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    let mut nth_ctxkit = 0;
    for line in lines {
        let colour = colour(&line.label, nth_ctxkit);
        if kind(&line.label) == Kind::Ctxkit {
            nth_ctxkit += 1;
        }
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                colour.stroke_width(2),
            ))?
            .label(line.label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(2))
            });
        chart.draw_series(PointSeries::of_element(
            line.points.iter().copied(),
            4,
            colour.filled(),
            &|c, s, st| Circle::new(c, s, st),
        ))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::fixtures::scratch;

    #[test]
    fn ticks_and_axes() {
        assert_eq!(tick(1000.0), "1k");
        assert_eq!(tick(100_000.0), "100k");
        assert_eq!(tick(1_000_000.0), "1M");
        assert_eq!(tick(50.0), "50");
        assert_eq!(tick(2.5), "2.50");
        assert!(log_axis(1000.0, 100_000.0));
        assert!(!log_axis(1.0, 8.0));
        assert!(!log_axis(0.0, 1000.0));
    }

    #[test]
    fn chart_of_a_single_point_and_a_linear_axis() {
        let dir = scratch("chart-one");
        let path = dir.join("one.svg");
        let lines = [ChartLine {
            label: "ctxkit/thread".into(),
            points: vec![(4.0, 12.0)],
        }];
        svg(&path, "one point", "mops_per_s", &lines).unwrap();
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("ctxkit/thread"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

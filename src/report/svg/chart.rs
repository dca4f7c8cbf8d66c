//! The one chart renderer: an x/y plot with axes, grid, legend, lines (with gaps), hover
//! titles on points and horizontal markers (gate thresholds).

use std::fmt::Write;

use super::axis::{Axis, Scale, Unit};
use crate::report::markup::escape;
use crate::report::numbers::{format_count, format_latency, trim_number};

/// Margins around the plot, in SVG user units; the page scales the whole `<svg>` to its column.
const LEFT: f64 = 64.0;
const RIGHT: f64 = 40.0;
const BOTTOM: f64 = 46.0;
/// Height of one legend row above the plot.
const LEGEND_ROW: f64 = 18.0;
/// Width of a character of 12-unit text, rounded up so labels never overlap.
const CHAR_WIDTH: f64 = 7.0;

/// How big a chart is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Half a page wide (two side by side).
    Half,
    /// A whole column: for the distributions.
    Wide,
}

impl Size {
    fn dimensions(self) -> (f64, f64) {
        match self {
            Size::Half => (640.0, 280.0),
            Size::Wide => (900.0, 360.0),
        }
    }
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    /// Any CSS colour.
    pub color: &'static str,
    pub dashed: bool,
    /// A dot with a hover title on every point (for short series such as per-second values).
    pub dots: bool,
    /// `None` leaves a gap: no measurement there, which is not the same as zero.
    pub points: Vec<Option<(f64, f64)>>,
}

/// A horizontal line across the plot, e.g. a gate's threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub label: String,
    pub y: f64,
    pub color: &'static str,
}

/// A vertical line where something begins (a stage of the run), named at the top.
#[derive(Debug, Clone, PartialEq)]
pub struct Boundary {
    pub label: String,
    pub x: f64,
}

/// A chart: what it shows and its data; [`Chart::render`] turns it into one `<svg>` element.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The element id; the page and its render check refer to charts by it.
    pub id: String,
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
    pub markers: Vec<Marker>,
    /// Vertical lines: where each stage of the run begins.
    pub boundaries: Vec<Boundary>,
    pub size: Size,
}

impl Chart {
    /// The chart as an `<svg class="chart">` element. Series are `<path class="series">`; the
    /// plot area is `<rect class="plot-area">`; a chart without data says so in its middle.
    pub fn render(&self) -> String {
        let points = || self.series.iter().flat_map(|s| s.points.iter().flatten());
        let x = Scale::fit(&self.x, points().map(|p| p.0).chain(self.boundaries.iter().map(|b| b.x)));
        let y = Scale::fit(&self.y, points().map(|p| p.1).chain(self.markers.iter().map(|m| m.y)));
        let drawn: Vec<&Series> =
            self.series.iter().filter(|s| s.points.iter().any(Option::is_some)).collect();
        let (width, height) = self.size.dimensions();
        let legend = legend_items(&drawn, &self.markers);
        let rows = legend_rows(&legend, width);
        let top = 16.0 + LEGEND_ROW * rows.iter().map(|(row, _)| row + 1).max().unwrap_or(1) as f64;
        let plot = Plot { x, y, width, height, top };
        let id = escape(&self.id);
        let mut svg = String::with_capacity(8 * 1024);
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{id}" viewBox="0 0 {width} {height}" role="img" aria-labelledby="{id}-title" font-family="system-ui, sans-serif" font-size="12">"#
        );
        let _ = write!(svg, r#"<title id="{id}-title">{}</title>"#, escape(&self.title));
        let _ = write!(
            svg,
            r##"<rect class="plot-area" x="{LEFT}" y="{}" width="{}" height="{}" fill="#fcfcfd" stroke="#c8ccd2"/>"##,
            plot.top,
            plot.plot_width(),
            plot.plot_height()
        );
        self.render_axes(&mut svg, &plot);
        if drawn.is_empty() {
            let _ = write!(
                svg,
                r##"<text class="no-data" x="{}" y="{}" text-anchor="middle" fill="#6b7280">no data recorded</text>"##,
                LEFT + plot.plot_width() / 2.0,
                plot.top + plot.plot_height() / 2.0
            );
        }
        for marker in &self.markers {
            render_marker(&mut svg, &plot, marker, &self.y);
        }
        for boundary in &self.boundaries {
            render_boundary(&mut svg, &plot, boundary);
        }
        for series in &drawn {
            self.render_series(&mut svg, &plot, series);
        }
        render_legend(&mut svg, &legend, &rows);
        svg.push_str("</svg>");
        svg
    }

    fn render_axes(&self, svg: &mut String, plot: &Plot) {
        svg.push_str(r##"<g class="grid" stroke="#e5e7eb" stroke-width="1">"##);
        for (value, _) in plot.y.ticks() {
            let py = plot.py(value);
            let _ = write!(
                svg,
                r#"<line x1="{LEFT}" x2="{:.1}" y1="{py:.1}" y2="{py:.1}"/>"#,
                LEFT + plot.plot_width()
            );
        }
        for (value, _) in plot.x.ticks() {
            let px = plot.px(value);
            let _ = write!(
                svg,
                r#"<line x1="{px:.1}" x2="{px:.1}" y1="{:.1}" y2="{:.1}"/>"#,
                plot.top,
                plot.top + plot.plot_height()
            );
        }
        svg.push_str("</g>");
        svg.push_str(r##"<g class="axis" fill="#374151">"##);
        for (value, label) in plot.y.ticks() {
            let _ = write!(
                svg,
                r#"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="end" dominant-baseline="middle">{}</text>"#,
                LEFT - 6.0,
                plot.py(value),
                escape(&label)
            );
        }
        for (value, label) in plot.x.ticks() {
            let _ = write!(
                svg,
                r#"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                plot.px(value),
                plot.top + plot.plot_height() + 16.0,
                escape(&label)
            );
        }
        let _ = write!(
            svg,
            r#"<text class="axis-label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + plot.plot_width() / 2.0,
            plot.height - 8.0,
            escape(&self.x.label)
        );
        let _ = write!(
            svg,
            r#"<text class="axis-label" transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            plot.top + plot.plot_height() / 2.0,
            escape(&self.y.label)
        );
        svg.push_str("</g>");
    }

    fn render_series(&self, svg: &mut String, plot: &Plot, series: &Series) {
        let mut d = String::new();
        let mut pen_down = false;
        let mut singles = Vec::new();
        for (i, point) in series.points.iter().enumerate() {
            match point {
                Some((x, y)) => {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1}",
                        if pen_down { 'L' } else { 'M' },
                        plot.px(*x),
                        plot.py(*y)
                    );
                    let next_is_gap = !matches!(series.points.get(i + 1), Some(Some(_)));
                    if !pen_down && next_is_gap {
                        singles.push((*x, *y));
                    }
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let label = escape(&series.label);
        let _ = write!(
            svg,
            r#"<g class="series-group"><path class="series" data-label="{label}" d="{d}" fill="none" stroke="{}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"{}><title>{label}</title></path>"#,
            series.color,
            if series.dashed { r#" stroke-dasharray="6 4""# } else { "" }
        );
        if series.dots || !singles.is_empty() {
            let dotted: Vec<(f64, f64)> =
                if series.dots { series.points.iter().flatten().copied().collect() } else { singles };
            for (x, y) in dotted {
                let _ = write!(
                    svg,
                    r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"><title>{label}: {} at {}</title></circle>"#,
                    plot.px(x),
                    plot.py(y),
                    series.color,
                    escape(&format_value(self.y.unit, y)),
                    escape(&format_value(self.x.unit, x)),
                );
            }
        }
        svg.push_str("</g>");
    }
}

/// The fitted scales, the frame, and the pixel positions they give.
struct Plot {
    x: Scale,
    y: Scale,
    width: f64,
    height: f64,
    /// Where the plot area starts, below the legend.
    top: f64,
}

impl Plot {
    fn plot_width(&self) -> f64 {
        self.width - LEFT - RIGHT
    }

    fn plot_height(&self) -> f64 {
        self.height - self.top - BOTTOM
    }

    fn px(&self, value: f64) -> f64 {
        LEFT + self.x.unit_position(value) * self.plot_width()
    }

    fn py(&self, value: f64) -> f64 {
        self.top + (1.0 - self.y.unit_position(value)) * self.plot_height()
    }
}

fn render_marker(svg: &mut String, plot: &Plot, marker: &Marker, y_axis: &Axis) {
    let py = plot.py(marker.y);
    let label = escape(&marker.label);
    let _ = write!(
        svg,
        r#"<g class="marker"><line x1="{LEFT}" x2="{:.1}" y1="{py:.1}" y2="{py:.1}" stroke="{}" stroke-width="1.5" stroke-dasharray="2 3"><title>{label}: {}</title></line>"#,
        LEFT + plot.plot_width(),
        marker.color,
        escape(&format_value(y_axis.unit, marker.y))
    );
    // Inside the plot at its left, where rising lines leave room: above the line, or below it
    // when the line runs along the top.
    let label_y = if py - plot.top < 16.0 { py + 14.0 } else { py - 5.0 };
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{label_y:.1}" fill="{}">{label}</text></g>"#,
        LEFT + 6.0,
        marker.color
    );
}

fn render_boundary(svg: &mut String, plot: &Plot, boundary: &Boundary) {
    let px = plot.px(boundary.x);
    let label = escape(&boundary.label);
    let _ = write!(
        svg,
        r##"<g class="boundary"><line x1="{px:.1}" x2="{px:.1}" y1="{:.1}" y2="{:.1}" stroke="#9ca3af" stroke-width="1" stroke-dasharray="4 3"><title>{label} from {}</title></line><text x="{:.1}" y="{:.1}" fill="#6b7280" font-size="10">{label}</text></g>"##,
        plot.top,
        plot.top + plot.plot_height(),
        escape(&format_value(Unit::Seconds, boundary.x)),
        px + 3.0,
        plot.top + 11.0,
    );
}

/// A legend entry: label, colour, dash pattern.
type LegendItem<'a> = (&'a str, &'static str, &'static str);

fn legend_items<'a>(series: &[&'a Series], markers: &'a [Marker]) -> Vec<LegendItem<'a>> {
    series
        .iter()
        .map(|s| (s.label.as_str(), s.color, if s.dashed { "6 4" } else { "" }))
        .chain(markers.iter().map(|m| (m.label.as_str(), m.color, "2 3")))
        .collect()
}

/// Each legend entry's (row, x), wrapping to a new row when the next would pass the right edge.
fn legend_rows(items: &[LegendItem], width: f64) -> Vec<(usize, f64)> {
    let mut placed = Vec::with_capacity(items.len());
    let (mut row, mut x) = (0, LEFT);
    for (label, _, _) in items {
        let item_width = 23.0 + CHAR_WIDTH * label.chars().count() as f64 + 16.0;
        if x > LEFT && x + item_width > width - 8.0 {
            row += 1;
            x = LEFT;
        }
        placed.push((row, x));
        x += item_width;
    }
    placed
}

/// Swatches and labels above the plot, at the places [`legend_rows`] gave them.
fn render_legend(svg: &mut String, items: &[LegendItem], places: &[(usize, f64)]) {
    svg.push_str(r##"<g class="legend" fill="#111827">"##);
    for ((label, color, dash), (row, x)) in items.iter().zip(places) {
        let y = 14.0 + LEGEND_ROW * *row as f64;
        let dash = if dash.is_empty() { String::new() } else { format!(r#" stroke-dasharray="{dash}""#) };
        let _ = write!(
            svg,
            r#"<line x1="{x:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="{color}" stroke-width="2.5"{dash}/>"#,
            x + 18.0
        );
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" dominant-baseline="middle">{}</text>"#,
            x + 23.0,
            y,
            escape(label)
        );
    }
    svg.push_str("</g>");
}

/// A value as a hover title reads it.
fn format_value(unit: Unit, value: f64) -> String {
    match unit {
        Unit::Count => format_count(value),
        Unit::Seconds => format!("{value:.0}s"),
        Unit::Micros => format_latency(value),
        Unit::Nines => format_nines_exact(value),
    }
}

/// The percentile a fractional number of nines stands for: 2.5 nines is 99.684 %.
fn format_nines_exact(nines: f64) -> String {
    let percent = 100.0 * (1.0 - 10f64.powf(-nines));
    let decimals = (nines.ceil() as usize).saturating_sub(1).min(6);
    format!("{}%", trim_number(percent, decimals))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::svg::axis::AxisKind;

    fn chart(series: Vec<Series>) -> Chart {
        Chart {
            id: "c<1>".into(),
            title: "t & u".into(),
            x: Axis { label: "seconds".into(), kind: AxisKind::Linear, unit: Unit::Seconds },
            y: Axis { label: "events/s".into(), kind: AxisKind::Linear, unit: Unit::Count },
            series,
            markers: vec![],
            boundaries: Vec::new(),
            size: Size::Half,
        }
    }

    fn line(points: Vec<Option<(f64, f64)>>) -> Series {
        Series { label: "delivered".into(), color: "#0072b2", dashed: false, dots: true, points }
    }

    #[test]
    fn draws_a_path_through_the_points_inside_the_plot() {
        let svg = chart(vec![line(vec![Some((0.0, 0.0)), Some((5.0, 50.0)), Some((10.0, 25.0))])]).render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"id="c&lt;1&gt;""#), "escaped id");
        // x 0..10 over 64..600, y 0..50 over 234..34 (below one legend row).
        assert!(svg.contains(r#"d="M64.0,234.0L332.0,34.0L600.0,134.0""#), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("delivered: 25 at 10s"));
        assert!(!svg.contains("no data"));
    }

    #[test]
    fn gaps_split_the_line_and_lone_points_get_a_dot() {
        let mut series = line(vec![Some((1.0, 10.0)), None, Some((3.0, 10.0)), Some((4.0, 20.0))]);
        series.dots = false;
        let svg = chart(vec![series]).render();
        let d = svg.split(r#" d=""#).nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(svg.matches("<circle").count(), 1, "the lone first point");
    }

    #[test]
    fn a_chart_without_data_says_so() {
        let svg = chart(vec![line(vec![None, None])]).render();
        assert!(svg.contains("no data recorded"));
        assert!(!svg.contains(r#"class="series""#));
    }

    #[test]
    fn markers_widen_the_axis_to_stay_visible() {
        let mut c = chart(vec![line(vec![Some((0.0, 10.0)), Some((1.0, 20.0))])]);
        c.markers.push(Marker { label: "gate < 100".into(), y: 100.0, color: "#d55e00" });
        let svg = c.render();
        assert!(svg.contains(">100</text>"), "the y axis reaches the marker: {svg}");
        assert!(svg.contains(r#"class="marker""#) && svg.contains("gate &lt; 100"));
    }

    #[test]
    fn hover_titles_name_percentiles() {
        assert_eq!(format_value(Unit::Nines, 2.0), "99%");
        assert_eq!(format_value(Unit::Nines, 2.5), "99.68%");
        assert_eq!(format_value(Unit::Nines, 0.0), "0%");
        assert_eq!(format_value(Unit::Micros, 44_200.0), "44.2ms");
    }
}

#[cfg(test)]
mod legend_tests {
    use super::*;

    #[test]
    fn a_long_legend_wraps_and_pushes_the_plot_down() {
        let items: Vec<LegendItem> = vec![
            ("connect → connection_established", "#000", ""),
            ("subscribe → subscription_confirmed", "#000", ""),
            ("publish → ack", "#000", ""),
        ];
        let rows = legend_rows(&items, 640.0);
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 0, 1]);
        assert_eq!(legend_rows(&items, 900.0).iter().map(|r| r.0).max(), Some(0));
        assert!(rows.iter().all(|(_, x)| *x >= LEFT));
    }
}

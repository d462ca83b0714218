//! Charts for `corral plot`: the runtime-against-cores plot of a scaling sweep (the training's
//! `nyc-taxi-runtimes.png`, generated), with the ideal (linear) curve and the knee marked.
//!
//! The plot is laid out once as a [`Scene`] of simple shapes in an 800×500 coordinate space;
//! [`svg::render`] writes it as SVG text and [`raster::render_png`] rasterises it (anti-aliased
//! lines and discs, 8×8 bitmap glyphs) and encodes a PNG — so both files show the same plot, and
//! no font files or system libraries are needed. Both axes are logarithmic (cores in doublings,
//! seconds in decades), so perfect scaling is a straight line.

pub mod raster;
pub mod svg;

use corral_core::scaling::{Analysis, Point};

/// A colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

const WHITE: Rgb = Rgb(255, 255, 255);
const INK: Rgb = Rgb(0x22, 0x22, 0x22);
const GREY: Rgb = Rgb(0x66, 0x66, 0x66);
const GRID: Rgb = Rgb(0xe3, 0xe3, 0xe3);
const MEASURED: Rgb = Rgb(0x1f, 0x77, 0xb4);
const IDEAL: Rgb = Rgb(0x8c, 0x8c, 0x8c);
const KNEE: Rgb = Rgb(0xd6, 0x27, 0x28);

/// Where a text's x coordinate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

/// A stroke: colour, width, and the dash length (`None`: solid).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stroke {
    pub color: Rgb,
    pub width: f64,
    pub dash: Option<f64>,
}

/// One thing drawn. `class` names what it is (`point`, `ideal`, `knee`, …) in the SVG, so a
/// reader (or a test) can find the data in it.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Line {
        from: (f64, f64),
        to: (f64, f64),
        stroke: Stroke,
        class: &'static str,
    },
    Polyline {
        points: Vec<(f64, f64)>,
        stroke: Stroke,
        class: &'static str,
    },
    /// A filled disc, optionally ringed (`ring`: colour and width of an outline).
    Circle {
        at: (f64, f64),
        r: f64,
        fill: Option<Rgb>,
        ring: Option<(Rgb, f64)>,
        class: &'static str,
        /// Data the SVG carries as attributes (`data-<key>`) and as a tooltip.
        data: Vec<(&'static str, String)>,
        title: String,
    },
    /// Text with its baseline at `at.1`.
    Text {
        at: (f64, f64),
        text: String,
        size: f64,
        anchor: Anchor,
        color: Rgb,
    },
}

/// A plot in an abstract `width` × `height` space, shapes painted in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub width: f64,
    pub height: f64,
    pub background: Rgb,
    pub shapes: Vec<Shape>,
}

/// What a runtime plot shows.
pub struct RuntimePlot<'a> {
    pub title: &'a str,
    /// Every run (one point per ledger entry, repeats included).
    pub runs: &'a [Point],
    /// The analysis of the runs (best run per core count, the knee, the sentence).
    pub analysis: &'a Analysis,
}

const W: f64 = 800.0;
const H: f64 = 500.0;
/// The plotting area.
const LEFT: f64 = 78.0;
const RIGHT: f64 = 770.0;
const TOP: f64 = 74.0;
const BOTTOM: f64 = 430.0;

/// A logarithmic axis mapping `[lo, hi]` (in log units) onto `[a, b]` pixels.
#[derive(Debug, Clone, Copy)]
struct LogAxis {
    base: f64,
    lo: f64,
    hi: f64,
    a: f64,
    b: f64,
}

impl LogAxis {
    fn new(base: f64, min: f64, max: f64, pad: f64, a: f64, b: f64) -> LogAxis {
        let (mut lo, mut hi) = (min.log(base), max.log(base));
        if hi - lo < 1e-9 {
            lo -= 0.5;
            hi += 0.5;
        }
        LogAxis {
            base,
            lo: lo - pad,
            hi: hi + pad,
            a,
            b,
        }
    }

    fn at(&self, v: f64) -> f64 {
        let t = (v.log(self.base) - self.lo) / (self.hi - self.lo);
        self.a + t * (self.b - self.a)
    }

    fn range(&self) -> (f64, f64) {
        (self.base.powf(self.lo), self.base.powf(self.hi))
    }
}

/// Seconds as a tick label: `0.05`, `1`, `20`, `300`.
fn secs_label(v: f64) -> String {
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `m × 10^d`, dividing for negative `d` so that 0.7 is 0.7 (7 × 0.1 is not).
fn decade(m: f64, d: i32) -> f64 {
    if d < 0 {
        m / 10f64.powi(-d)
    } else {
        m * 10f64.powi(d)
    }
}

/// Runtime ticks: 1-2-5 per decade (only the decades when there would be too many).
fn runtime_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let (d0, d1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    for d in d0..=d1 {
        for m in [1.0, 2.0, 5.0] {
            let v = decade(m, d);
            if v >= lo && v <= hi {
                ticks.push(v);
            }
        }
    }
    if ticks.len() > 10 {
        ticks.retain(|v| (v.log10() - v.log10().round()).abs() < 1e-9);
    }
    if ticks.len() < 3 {
        // Less than a decade shown: finer steps, so the axis still reads.
        ticks.clear();
        for d in d0..=d1 {
            for m in [1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0] {
                let v = decade(m, d);
                if v >= lo && v <= hi {
                    ticks.push(v);
                }
            }
        }
    }
    ticks
}

/// Core ticks: the core counts measured (only the powers of two when there are many).
fn core_ticks(cores: &[u32]) -> Vec<u32> {
    let mut t: Vec<u32> = cores.to_vec();
    t.sort_unstable();
    t.dedup();
    if t.len() > 12 {
        t.retain(|c| c.is_power_of_two());
    }
    t
}

fn text(at: (f64, f64), s: impl Into<String>, size: f64, anchor: Anchor, color: Rgb) -> Shape {
    Shape::Text {
        at,
        text: s.into(),
        size,
        anchor,
        color,
    }
}

/// Lays out the runtime-against-cores plot. Needs at least one run.
pub fn runtime_scene(p: &RuntimePlot) -> Scene {
    let mut shapes = Vec::new();
    let best = &p.analysis.points;
    let cores: Vec<u32> = p.runs.iter().map(|r| r.cores).collect();
    let cmin = cores.iter().copied().min().unwrap_or(1).max(1);
    let cmax = cores.iter().copied().max().unwrap_or(1).max(cmin);
    let x = LogAxis::new(2.0, f64::from(cmin), f64::from(cmax), 0.3, LEFT, RIGHT);

    // The ideal curve: the smallest run's time divided by the added cores (a line in log-log).
    let ideal = best.first().map(|f| {
        let at = |c: f64| f.seconds * f64::from(f.cores) / c;
        (
            (f64::from(f.cores), at(f64::from(f.cores))),
            (f64::from(cmax), at(f64::from(cmax))),
        )
    });
    let mut secs: Vec<f64> = p.runs.iter().map(|r| r.seconds).collect();
    if let Some((a, b)) = ideal {
        secs.extend([a.1, b.1]);
    }
    let secs: Vec<f64> = secs
        .into_iter()
        .filter(|s| s.is_finite() && *s > 0.0)
        .collect();
    let smin = secs.iter().copied().fold(f64::INFINITY, f64::min);
    let smax = secs.iter().copied().fold(0.0, f64::max);
    let (smin, smax) = if smin.is_finite() && smax > 0.0 {
        (smin, smax)
    } else {
        (1.0, 1.0)
    };
    let y = LogAxis::new(10.0, smin, smax, 0.08, BOTTOM, TOP);

    // Grid and tick labels.
    let (ylo, yhi) = y.range();
    for v in runtime_ticks(ylo, yhi) {
        let py = y.at(v);
        shapes.push(Shape::Line {
            from: (LEFT, py),
            to: (RIGHT, py),
            stroke: Stroke {
                color: GRID,
                width: 1.0,
                dash: None,
            },
            class: "grid",
        });
        shapes.push(text(
            (LEFT - 8.0, py + 4.0),
            secs_label(v),
            11.0,
            Anchor::End,
            GREY,
        ));
    }
    for c in core_ticks(&cores) {
        let px = x.at(f64::from(c));
        shapes.push(Shape::Line {
            from: (px, TOP),
            to: (px, BOTTOM),
            stroke: Stroke {
                color: GRID,
                width: 1.0,
                dash: None,
            },
            class: "grid",
        });
        shapes.push(text(
            (px, BOTTOM + 18.0),
            c.to_string(),
            11.0,
            Anchor::Middle,
            GREY,
        ));
    }
    // Axes.
    let axis = Stroke {
        color: INK,
        width: 1.5,
        dash: None,
    };
    shapes.push(Shape::Line {
        from: (LEFT, BOTTOM),
        to: (RIGHT, BOTTOM),
        stroke: axis,
        class: "axis",
    });
    shapes.push(Shape::Line {
        from: (LEFT, TOP),
        to: (LEFT, BOTTOM),
        stroke: axis,
        class: "axis",
    });
    shapes.push(text(
        ((LEFT + RIGHT) / 2.0, BOTTOM + 40.0),
        "cores (log scale)",
        12.0,
        Anchor::Middle,
        INK,
    ));
    shapes.push(text(
        (12.0, TOP - 12.0),
        "runtime in seconds (log scale)",
        12.0,
        Anchor::Start,
        INK,
    ));

    // The knee: where another doubling stopped paying.
    if let Some(k) = p.analysis.knee {
        let px = x.at(f64::from(k));
        shapes.push(Shape::Line {
            from: (px, TOP),
            to: (px, BOTTOM),
            stroke: Stroke {
                color: KNEE,
                width: 1.5,
                dash: Some(6.0),
            },
            class: "knee",
        });
        let (anchor, dx) = if px > (LEFT + RIGHT) / 2.0 {
            (Anchor::End, -6.0)
        } else {
            (Anchor::Start, 6.0)
        };
        shapes.push(text(
            (px + dx, BOTTOM - 8.0),
            format!("knee: {}", corral_core::text::count(k, "core")),
            12.0,
            anchor,
            KNEE,
        ));
    }
    if let Some((a, b)) = ideal {
        shapes.push(Shape::Line {
            from: (x.at(a.0), y.at(a.1)),
            to: (x.at(b.0), y.at(b.1)),
            stroke: Stroke {
                color: IDEAL,
                width: 2.0,
                dash: Some(8.0),
            },
            class: "ideal",
        });
    }
    shapes.push(Shape::Polyline {
        points: best
            .iter()
            .map(|b| (x.at(f64::from(b.cores)), y.at(b.seconds)))
            .collect(),
        stroke: Stroke {
            color: MEASURED,
            width: 2.5,
            dash: None,
        },
        class: "measured",
    });
    if let Some(k) = p.analysis.knee
        && let Some(b) = best.iter().find(|b| b.cores == k)
    {
        shapes.push(Shape::Circle {
            at: (x.at(f64::from(k)), y.at(b.seconds)),
            r: 9.0,
            fill: None,
            ring: Some((KNEE, 2.0)),
            class: "knee-point",
            data: vec![("cores", k.to_string())],
            title: format!(
                "knee: {}, {:.3} s",
                corral_core::text::count(k, "core"),
                b.seconds
            ),
        });
    }
    for r in p
        .runs
        .iter()
        .filter(|r| r.cores > 0 && r.seconds.is_finite() && r.seconds > 0.0)
    {
        shapes.push(Shape::Circle {
            at: (x.at(f64::from(r.cores)), y.at(r.seconds)),
            r: 4.5,
            fill: Some(MEASURED),
            ring: Some((WHITE, 1.0)),
            class: "point",
            data: vec![
                ("cores", r.cores.to_string()),
                ("seconds", format!("{}", r.seconds)),
            ],
            title: format!(
                "{}: {:.3} s",
                corral_core::text::count(r.cores, "core"),
                r.seconds
            ),
        });
    }

    // Legend, top right inside the plot, placed by its longest label (8 units a character at
    // this size in the PNG's bitmap font, the widest of the two renderings).
    let labels = ["measured (best run)", "ideal (linear scaling)"];
    let longest = labels.iter().map(|l| l.len()).max().unwrap_or(0) as f64;
    let lx = RIGHT - 12.0 - 34.0 - 8.0 * longest;
    let mut ly = TOP + 18.0;
    for (label, stroke) in [
        (
            labels[0],
            Stroke {
                color: MEASURED,
                width: 2.5,
                dash: None,
            },
        ),
        (
            labels[1],
            Stroke {
                color: IDEAL,
                width: 2.0,
                dash: Some(8.0),
            },
        ),
    ] {
        shapes.push(Shape::Line {
            from: (lx, ly - 4.0),
            to: (lx + 26.0, ly - 4.0),
            stroke,
            class: "legend",
        });
        shapes.push(text((lx + 34.0, ly), label, 11.0, Anchor::Start, INK));
        ly += 18.0;
    }

    // Title and the recommendation.
    shapes.push(text((12.0, 24.0), p.title, 15.0, Anchor::Start, INK));
    shapes.push(text(
        (12.0, 44.0),
        p.analysis.recommendation.as_str(),
        12.0,
        Anchor::Start,
        if p.analysis.knee.is_some() {
            KNEE
        } else {
            GREY
        },
    ));
    Scene {
        width: W,
        height: H,
        background: WHITE,
        shapes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_core::scaling::{DEFAULT_THRESHOLD, analyze};

    fn pts(v: &[(u32, f64)]) -> Vec<Point> {
        v.iter()
            .map(|&(cores, seconds)| Point { cores, seconds })
            .collect()
    }

    #[test]
    fn every_run_is_a_point_and_the_knee_is_marked() {
        let runs = pts(&[
            (1, 80.0),
            (2, 40.0),
            (4, 20.0),
            (8, 10.0),
            (16, 9.0),
            (16, 9.5),
        ]);
        let a = analyze(&runs, DEFAULT_THRESHOLD);
        let s = runtime_scene(&RuntimePlot {
            title: "t",
            runs: &runs,
            analysis: &a,
        });
        let points: Vec<&Shape> = s
            .shapes
            .iter()
            .filter(|sh| matches!(sh, Shape::Circle { class: "point", .. }))
            .collect();
        assert_eq!(points.len(), 6);
        assert!(
            s.shapes
                .iter()
                .any(|sh| matches!(sh, Shape::Line { class: "knee", .. }))
        );
        // Everything drawn is inside the canvas.
        for sh in &s.shapes {
            if let Shape::Circle { at, .. } = sh {
                assert!(at.0 >= LEFT && at.0 <= RIGHT && at.1 >= TOP && at.1 <= BOTTOM);
            }
        }
        // Longer runtimes are higher up (smaller y): 1 core (80 s) above 8 cores (10 s).
        let y_of = |c: &str| {
            points.iter().find_map(|sh| match sh {
                Shape::Circle { at, data, .. } if data[0].1 == c => Some(at.1),
                _ => None,
            })
        };
        assert!(y_of("1") < y_of("8"));
    }

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(runtime_ticks(0.8, 25.0), vec![1.0, 2.0, 5.0, 10.0, 20.0]);
        assert_eq!(runtime_ticks(0.65, 3.1), vec![0.7, 1.0, 1.5, 2.0, 3.0]);
        assert_eq!(core_ticks(&[8, 1, 2, 4, 2]), vec![1, 2, 4, 8]);
        assert_eq!(secs_label(0.05), "0.05");
        assert_eq!(secs_label(20.0), "20");
        assert_eq!(secs_label(1.5), "1.5");
    }

    #[test]
    fn one_core_count_still_lays_out() {
        let runs = pts(&[(4, 2.0)]);
        let a = analyze(&runs, DEFAULT_THRESHOLD);
        let s = runtime_scene(&RuntimePlot {
            title: "t",
            runs: &runs,
            analysis: &a,
        });
        for sh in &s.shapes {
            if let Shape::Circle { at, .. } = sh {
                assert!(at.0.is_finite() && at.1.is_finite());
            }
        }
    }
}

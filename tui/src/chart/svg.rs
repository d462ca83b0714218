//! A [`Scene`] as SVG text, written by hand: a handful of elements, every value escaped.

use std::fmt::Write;

use super::{Anchor, Scene, Shape, Stroke};

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

fn n(v: f64) -> String {
    // Two decimals are far below a pixel; trailing zeros only make the file longer.
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn stroke_attrs(s: &Stroke) -> String {
    let mut a = format!(
        r#" stroke="{}" stroke-width="{}" fill="none""#,
        s.color.hex(),
        n(s.width)
    );
    if let Some(d) = s.dash {
        let _ = write!(a, r#" stroke-dasharray="{} {}""#, n(d), n(d * 0.6));
    }
    a
}

/// The SVG document of `scene`.
pub fn render(scene: &Scene) -> String {
    let mut out = String::new();
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace">"#,
        w = n(scene.width),
        h = n(scene.height)
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="{}"/>"#,
        scene.background.hex()
    );
    for shape in &scene.shapes {
        match shape {
            Shape::Line {
                from,
                to,
                stroke,
                class,
            } => {
                let _ = writeln!(
                    out,
                    r#"<line class="{class}" x1="{}" y1="{}" x2="{}" y2="{}"{}/>"#,
                    n(from.0),
                    n(from.1),
                    n(to.0),
                    n(to.1),
                    stroke_attrs(stroke)
                );
            }
            Shape::Polyline {
                points,
                stroke,
                class,
            } => {
                let pts = points
                    .iter()
                    .map(|(x, y)| format!("{},{}", n(*x), n(*y)))
                    .collect::<Vec<_>>()
                    .join(" ");
                let _ = writeln!(
                    out,
                    r#"<polyline class="{class}" points="{pts}"{} stroke-linejoin="round"/>"#,
                    stroke_attrs(stroke)
                );
            }
            Shape::Circle {
                at,
                r,
                fill,
                ring,
                class,
                data,
                title,
            } => {
                let mut attrs = format!(
                    r#" fill="{}""#,
                    fill.map_or_else(|| "none".to_string(), |f| f.hex())
                );
                if let Some((c, w)) = ring {
                    let _ = write!(attrs, r#" stroke="{}" stroke-width="{}""#, c.hex(), n(*w));
                }
                for (k, v) in data {
                    let _ = write!(attrs, r#" data-{k}="{}""#, escape(v));
                }
                let _ = writeln!(
                    out,
                    r#"<circle class="{class}" cx="{}" cy="{}" r="{}"{attrs}><title>{}</title></circle>"#,
                    n(at.0),
                    n(at.1),
                    n(*r),
                    escape(title)
                );
            }
            Shape::Text {
                at,
                text,
                size,
                anchor,
                color,
            } => {
                let anchor = match anchor {
                    Anchor::Start => "start",
                    Anchor::Middle => "middle",
                    Anchor::End => "end",
                };
                let _ = writeln!(
                    out,
                    r#"<text x="{}" y="{}" font-size="{}" text-anchor="{anchor}" fill="{}">{}</text>"#,
                    n(at.0),
                    n(at.1),
                    n(*size),
                    color.hex(),
                    escape(text)
                );
            }
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Rgb, Scene, Shape};
    use super::*;

    #[test]
    fn text_is_escaped_and_the_document_closes() {
        let scene = Scene {
            width: 10.0,
            height: 10.0,
            background: Rgb(255, 255, 255),
            shapes: vec![Shape::Text {
                at: (1.0, 2.5),
                text: "saves < 15 % & \"more\"".into(),
                size: 12.0,
                anchor: Anchor::Start,
                color: Rgb(0, 0, 0),
            }],
        };
        let s = render(&scene);
        assert!(s.contains("saves &lt; 15 % &amp; &quot;more&quot;"), "{s}");
        assert!(s.contains(r#"x="1" y="2.5""#), "{s}");
        assert!(s.trim_end().ends_with("</svg>"));
    }
}

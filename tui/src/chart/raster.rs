//! A [`Scene`] as pixels, then PNG: lines and discs are drawn anti-aliased from their distance
//! to each pixel (coverage = how far inside the shape's edge the pixel centre is), text with the
//! 8×8 bitmap glyphs of `font8x8`, scaled by whole pixels so it stays crisp. Scene units are
//! drawn at [`SCALE`] pixels each, so an 800×500 plot is a 1600×1000 image.

use super::{Anchor, Rgb, Scene, Shape, Stroke};

/// Pixels per scene unit.
pub const SCALE: f64 = 2.0;

/// An RGB image being drawn on.
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    /// Row-major RGB, 3 bytes per pixel.
    pub pixels: Vec<u8>,
}

impl Canvas {
    pub fn new(width: u32, height: u32, bg: Rgb) -> Canvas {
        let n = width as usize * height as usize;
        let mut pixels = Vec::with_capacity(n * 3);
        for _ in 0..n {
            pixels.extend_from_slice(&[bg.0, bg.1, bg.2]);
        }
        Canvas {
            width,
            height,
            pixels,
        }
    }

    /// Mixes `c` into pixel (x, y) with weight `a` (0..=1); outside the canvas is ignored.
    fn blend(&mut self, x: i64, y: i64, c: Rgb, a: f64) {
        if x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) || a <= 0.0 {
            return;
        }
        let a = a.min(1.0);
        let i = (y as usize * self.width as usize + x as usize) * 3;
        for (k, v) in [c.0, c.1, c.2].into_iter().enumerate() {
            let old = f64::from(self.pixels[i + k]);
            self.pixels[i + k] = (old + (f64::from(v) - old) * a).round() as u8;
        }
    }

    /// The colour of pixel (x, y), for tests.
    #[cfg(test)]
    pub fn at(&self, x: u32, y: u32) -> Option<Rgb> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        Some(Rgb(self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]))
    }

    /// A segment of `width` pixels with round caps, anti-aliased.
    fn segment(&mut self, a: (f64, f64), b: (f64, f64), width: f64, c: Rgb) {
        let half = width / 2.0;
        let pad = half + 1.0;
        let (x0, x1) = (a.0.min(b.0) - pad, a.0.max(b.0) + pad);
        let (y0, y1) = (a.1.min(b.1) - pad, a.1.max(b.1) + pad);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        for py in (y0.floor() as i64)..=(y1.ceil() as i64) {
            for px in (x0.floor() as i64)..=(x1.ceil() as i64) {
                // Distance from the pixel centre to the segment.
                let (cx, cy) = (px as f64 + 0.5, py as f64 + 0.5);
                let t = if len2 > 0.0 {
                    (((cx - a.0) * dx + (cy - a.1) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (qx, qy) = (a.0 + t * dx - cx, a.1 + t * dy - cy);
                let d = (qx * qx + qy * qy).sqrt();
                self.blend(px, py, c, (half + 0.5 - d).clamp(0.0, 1.0));
            }
        }
    }

    /// A stroked line, split into dashes when the stroke has them.
    fn line(&mut self, a: (f64, f64), b: (f64, f64), s: &Stroke) {
        let Some(dash) = s.dash else {
            self.segment(a, b, s.width, s.color);
            return;
        };
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt();
        if len <= 0.0 {
            return;
        }
        let gap = dash * 0.6;
        let mut t = 0.0;
        while t < len {
            let e = (t + dash).min(len);
            let p = |u: f64| (a.0 + dx * u / len, a.1 + dy * u / len);
            self.segment(p(t), p(e), s.width, s.color);
            t = e + gap;
        }
    }

    /// A disc of radius `r` (filled with `fill`) and/or a ring of `ring.1` pixels around it.
    fn disc(&mut self, at: (f64, f64), r: f64, fill: Option<Rgb>, ring: Option<(Rgb, f64)>) {
        let outer = r + ring.map_or(0.0, |(_, w)| w / 2.0) + 1.0;
        for py in ((at.1 - outer).floor() as i64)..=((at.1 + outer).ceil() as i64) {
            for px in ((at.0 - outer).floor() as i64)..=((at.0 + outer).ceil() as i64) {
                let (cx, cy) = (px as f64 + 0.5 - at.0, py as f64 + 0.5 - at.1);
                let d = (cx * cx + cy * cy).sqrt();
                if let Some(f) = fill {
                    self.blend(px, py, f, (r + 0.5 - d).clamp(0.0, 1.0));
                }
                if let Some((c, w)) = ring {
                    self.blend(px, py, c, (w / 2.0 + 0.5 - (d - r).abs()).clamp(0.0, 1.0));
                }
            }
        }
    }

    /// Text in 8×8 glyphs `scale` pixels each, baseline at `y` (glyph row 7 sits on it).
    fn text(&mut self, x: f64, y: f64, s: &str, scale: u32, anchor: Anchor, c: Rgb) {
        let glyphs: Vec<[u8; 8]> = s.chars().flat_map(glyphs_of).collect();
        let advance = 8 * scale as i64;
        let width = advance * glyphs.len() as i64;
        let left = match anchor {
            Anchor::Start => x.round() as i64,
            Anchor::Middle => x.round() as i64 - width / 2,
            Anchor::End => x.round() as i64 - width,
        };
        // Rows 0..7 of a glyph; row 7 is the descender line, so row 6 rests on the baseline.
        let top = y.round() as i64 - 7 * scale as i64;
        let scale = i64::from(scale);
        for (i, g) in glyphs.iter().enumerate() {
            let gx = left + i as i64 * advance;
            for (row, bits) in g.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) == 0 {
                        continue;
                    }
                    for sy in 0..scale {
                        for sx in 0..scale {
                            self.blend(
                                gx + col * scale + sx,
                                top + row as i64 * scale + sy,
                                c,
                                1.0,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The glyphs of a character: ASCII from the font; the few non-ASCII characters corral's
/// texts use are spelled in ASCII; anything else is `?`.
fn glyphs_of(c: char) -> Vec<[u8; 8]> {
    let ascii = |s: &str| -> Vec<[u8; 8]> {
        s.bytes()
            .map(|b| font8x8::legacy::BASIC_LEGACY[usize::from(b & 0x7f)])
            .collect()
    };
    match c {
        c if c.is_ascii() && !c.is_ascii_control() => ascii(c.encode_utf8(&mut [0; 4])),
        '×' => ascii("x"),
        '—' | '–' | '−' => ascii("-"),
        '…' => ascii("..."),
        '≥' => ascii(">="),
        '≤' => ascii("<="),
        _ => ascii("?"),
    }
}

/// Glyph scale of a text `size` (scene units) at [`SCALE`] pixels per unit: whole pixels, at
/// least one.
fn glyph_scale(size: f64) -> u32 {
    ((size * SCALE / 10.0).floor() as u32).max(1)
}

/// Draws `scene` at [`SCALE`] pixels per unit.
pub fn rasterize(scene: &Scene) -> Canvas {
    let (w, h) = (
        (scene.width * SCALE).round() as u32,
        (scene.height * SCALE).round() as u32,
    );
    let mut canvas = Canvas::new(w, h, scene.background);
    let p = |(x, y): (f64, f64)| (x * SCALE, y * SCALE);
    for shape in &scene.shapes {
        match shape {
            Shape::Line {
                from, to, stroke, ..
            } => {
                let s = Stroke {
                    width: stroke.width * SCALE,
                    dash: stroke.dash.map(|d| d * SCALE),
                    ..*stroke
                };
                canvas.line(p(*from), p(*to), &s);
            }
            Shape::Polyline { points, stroke, .. } => {
                let s = Stroke {
                    width: stroke.width * SCALE,
                    dash: stroke.dash.map(|d| d * SCALE),
                    ..*stroke
                };
                for pair in points.windows(2) {
                    canvas.line(p(pair[0]), p(pair[1]), &s);
                }
            }
            Shape::Circle {
                at, r, fill, ring, ..
            } => canvas.disc(p(*at), r * SCALE, *fill, ring.map(|(c, w)| (c, w * SCALE))),
            Shape::Text {
                at,
                text,
                size,
                anchor,
                color,
            } => {
                let (x, y) = p(*at);
                canvas.text(x, y, text, glyph_scale(*size), *anchor, *color);
            }
        }
    }
    canvas
}

/// The PNG file of `scene`.
pub fn render_png(scene: &Scene) -> Result<Vec<u8>, png::EncodingError> {
    let canvas = rasterize(scene);
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, canvas.width, canvas.height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header()?;
        writer.write_image_data(&canvas.pixels)?;
        writer.finish()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(shapes: Vec<Shape>) -> Scene {
        Scene {
            width: 50.0,
            height: 20.0,
            background: Rgb(255, 255, 255),
            shapes,
        }
    }

    #[test]
    fn lines_discs_and_text_leave_ink() {
        let red = Rgb(255, 0, 0);
        let c = rasterize(&scene(vec![
            Shape::Line {
                from: (0.0, 5.0),
                to: (50.0, 5.0),
                stroke: Stroke {
                    color: red,
                    width: 2.0,
                    dash: None,
                },
                class: "x",
            },
            Shape::Circle {
                at: (40.0, 15.0),
                r: 3.0,
                fill: Some(Rgb(0, 0, 255)),
                ring: None,
                class: "point",
                data: Vec::new(),
                title: String::new(),
            },
            Shape::Text {
                at: (2.0, 18.0),
                text: "A×".into(),
                size: 10.0,
                anchor: Anchor::Start,
                color: Rgb(0, 0, 0),
            },
        ]));
        assert_eq!((c.width, c.height), (100, 40));
        assert_eq!(c.at(50, 10), Some(red), "on the line");
        assert_eq!(c.at(50, 20), Some(Rgb(255, 255, 255)), "off it");
        assert_eq!(c.at(80, 30), Some(Rgb(0, 0, 255)), "disc centre");
        let inked = (0..40u32)
            .flat_map(|x| (22..40u32).map(move |y| (x, y)))
            .filter(|&(x, y)| c.at(x, y) == Some(Rgb(0, 0, 0)))
            .count();
        assert!(inked > 20, "text drew {inked} pixels");
    }

    #[test]
    fn png_has_its_signature_and_size() {
        let bytes = render_png(&scene(Vec::new())).expect("encodes");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&bytes[12..16], b"IHDR");
        assert_eq!(
            u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]),
            100
        );
        assert_eq!(
            u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]),
            40
        );
    }
}

//! Pictures of an env's state, as Gymnasium's `render_mode="rgb_array"`.

/// An RGB image, row-major from the top-left corner.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbFrame {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width × height` pixels.
    pub pixels: Vec<[u8; 3]>,
}

impl RgbFrame {
    /// A frame filled with one colour.
    pub fn filled(width: usize, height: usize, color: [u8; 3]) -> Self {
        RgbFrame {
            width,
            height,
            pixels: vec![color; width * height],
        }
    }

    /// Fills the convex polygon `points` (pixel coordinates, y down).
    pub fn fill_polygon(&mut self, points: &[(f64, f64)], color: [u8; 3]) {
        let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
        for &(_, y) in points {
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        let top = y0.floor().max(0.0) as usize;
        let bottom = (y1.ceil() as usize).min(self.height);
        for py in top..bottom {
            let yc = py as f64 + 0.5;
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for i in 0..points.len() {
                let (a, b) = (points[i], points[(i + 1) % points.len()]);
                if (a.1 <= yc && b.1 > yc) || (b.1 <= yc && a.1 > yc) {
                    let x = a.0 + (yc - a.1) / (b.1 - a.1) * (b.0 - a.0);
                    lo = lo.min(x);
                    hi = hi.max(x);
                }
            }
            if lo <= hi {
                let from = (lo - 0.5).ceil().max(0.0) as usize;
                let to = ((hi - 0.5).floor() as i64 + 1).clamp(0, self.width as i64) as usize;
                for px in from..to {
                    self.pixels[py * self.width + px] = color;
                }
            }
        }
    }

    /// Draws a straight line `width` pixels thick from `a` to `b` (pixel coordinates, y down),
    /// as a filled rectangle: hard edges keep the frame's palette small.
    pub fn draw_line(&mut self, a: (f64, f64), b: (f64, f64), width: f64, color: [u8; 3]) {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = dx.hypot(dy);
        if len == 0.0 || !len.is_finite() {
            return;
        }
        // Half the width along the line's normal.
        let (nx, ny) = (-dy / len * width / 2.0, dx / len * width / 2.0);
        self.fill_polygon(
            &[
                (a.0 + nx, a.1 + ny),
                (b.0 + nx, b.1 + ny),
                (b.0 - nx, b.1 - ny),
                (a.0 - nx, a.1 - ny),
            ],
            color,
        );
    }

    /// Draws connected line segments through `points`.
    pub fn draw_polyline(&mut self, points: &[(f64, f64)], width: f64, color: [u8; 3]) {
        for pair in points.windows(2) {
            self.draw_line(pair[0], pair[1], width, color);
        }
    }

    /// How many distinct colours the frame uses (a GIF palette holds at most 256).
    pub fn color_count(&self) -> usize {
        let mut seen: Vec<[u8; 3]> = self.pixels.clone();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }

    /// Fills a disc.
    pub fn fill_circle(&mut self, cx: f64, cy: f64, r: f64, color: [u8; 3]) {
        let n = 24;
        let pts: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                let a = i as f64 * std::f64::consts::TAU / n as f64;
                (cx + r * a.cos(), cy + r * a.sin())
            })
            .collect();
        self.fill_polygon(&pts, color);
    }
}

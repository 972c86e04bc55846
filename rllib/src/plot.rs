//! `rllib plot`: learning curves of runs as a PNG. Runs of one config that differ only in
//! their seed are drawn as one median line inside a min-max band; other runs each get a line.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

/// The font every label is drawn in (DejaVu Sans, cut down to ASCII; its licence is beside it).
static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans-subset.ttf");
const FAMILY: &str = "sans-serif";
/// Points of the common x grid a group's median and band are computed on.
const GRID: usize = 200;

const PALETTE: [RGBColor; 8] = [
    RGBColor(47, 111, 222),
    RGBColor(217, 48, 37),
    RGBColor(24, 128, 56),
    RGBColor(242, 153, 0),
    RGBColor(147, 52, 230),
    RGBColor(18, 181, 203),
    RGBColor(232, 113, 10),
    RGBColor(95, 99, 104),
];

/// What the x axis measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XAxis {
    /// Env steps sampled so far.
    #[default]
    EnvSteps,
    /// Seconds of training.
    Time,
    /// Training iterations.
    Iteration,
}

impl XAxis {
    /// `env_steps`, `time` or `iteration`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "env_steps" | "steps" => Ok(XAxis::EnvSteps),
            "time" => Ok(XAxis::Time),
            "iteration" | "iterations" | "training_iteration" => Ok(XAxis::Iteration),
            other => Err(format!(
                "--x {other:?}: expected env_steps, time or iteration"
            )),
        }
    }

    fn columns(self) -> &'static [&'static str] {
        match self {
            XAxis::EnvSteps => &[
                "num_env_steps_sampled_lifetime",
                "env_runners/num_env_steps_sampled_lifetime",
                "timesteps_total",
            ],
            XAxis::Time => &["time_total_s"],
            XAxis::Iteration => &["training_iteration"],
        }
    }

    fn label(self) -> &'static str {
        match self {
            XAxis::EnvSteps => "env steps sampled",
            XAxis::Time => "training time (s)",
            XAxis::Iteration => "training iteration",
        }
    }
}

/// How to draw.
#[derive(Debug, Clone)]
pub struct PlotOptions {
    /// The column to draw (default: `env_runners/episode_return_mean`, or the older names).
    pub metric: Option<String>,
    pub x: XAxis,
    pub width: u32,
    pub height: u32,
    /// Compress quickly (a run's own `curves.png`, written as it ends) rather than small.
    pub fast: bool,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            metric: None,
            x: XAxis::EnvSteps,
            width: 1000,
            height: 600,
            fast: false,
        }
    }
}

/// What was drawn.
#[derive(Debug, Clone)]
pub struct PlotSummary {
    pub metric: String,
    /// Each curve's legend and how many runs it stands for.
    pub curves: Vec<(String, usize)>,
    /// Runs left out, with why.
    pub skipped: Vec<String>,
}

/// One run's (x, y) points, sorted by x.
struct Series {
    dir: PathBuf,
    points: Vec<(f64, f64)>,
}

/// The runs under `paths`: each a run folder (with `progress.csv`) or a folder of them.
pub fn find_runs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if !p.is_dir() {
            return Err(format!(
                "{}: no such folder (expected a run folder with progress.csv, or an experiment folder holding runs)",
                p.display()
            ));
        }
        // Folders only: each run's progress.csv is read once, by the caller.
        let mut dirs = ray::dashboard::run_folders(p);
        if dirs.is_empty() {
            return Err(format!(
                "{}: no runs in it (no progress.csv here or up to three folders down)",
                p.display()
            ));
        }
        dirs.sort();
        out.extend(dirs);
    }
    out.dedup();
    Ok(out)
}

/// The run's config without its seed: runs with equal keys differ only in their seed.
fn config_key(dir: &Path) -> String {
    if let Ok(text) = std::fs::read_to_string(dir.join("params.json"))
        && let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&text)
    {
        if let Some(m) = v.as_object_mut() {
            m.remove("seed");
            if let Some(c) = m.get_mut("config").and_then(|c| c.as_object_mut()) {
                c.remove("seed");
            }
        }
        return v.to_string();
    }
    match std::fs::read_to_string(dir.join("params.yaml")) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.starts_with("seed:"))
            .collect::<Vec<_>>()
            .join("\n"),
        // Without a config, a run is its own group.
        Err(_) => dir.display().to_string(),
    }
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Draws the runs under `paths` into the PNG at `out`.
pub fn plot(paths: &[PathBuf], o: &PlotOptions, out: &Path) -> Result<PlotSummary, String> {
    if !(200..=8000).contains(&o.width) || !(150..=8000).contains(&o.height) {
        return Err(format!(
            "a {}x{} picture: expected a width in [200, 8000] and a height in [150, 8000]",
            o.width, o.height
        ));
    }
    let dirs = find_runs(paths)?;
    let mut skipped = Vec::new();
    let mut tables = Vec::new();
    for d in dirs {
        match ray::dashboard::read_progress(&d) {
            Some(t) => tables.push((d, t)),
            None => skipped.push(format!("{}: progress.csv unreadable", d.display())),
        }
    }
    let metric = match &o.metric {
        Some(m) => m.clone(),
        None => ray::dashboard::RETURN_COLUMNS
            .iter()
            .find(|m| tables.iter().any(|(_, t)| t.iter().any(|(c, _)| c == *m)))
            .map(|m| m.to_string())
            .ok_or("the runs have no episode_return_mean column; name one with --metric")?,
    };
    let mut series = Vec::new();
    for (dir, t) in &tables {
        let col = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| t.iter().find(|(c, _)| c == n).map(|(_, v)| v.clone()))
        };
        let (Some(xs), Some(ys)) = (col(o.x.columns()), col(&[metric.as_str()])) else {
            skipped.push(format!(
                "{}: no {} column",
                dir.display(),
                if col(o.x.columns()).is_none() {
                    o.x.columns()[0]
                } else {
                    metric.as_str()
                }
            ));
            continue;
        };
        let mut points: Vec<(f64, f64)> = xs
            .iter()
            .zip(&ys)
            .filter_map(|(x, y)| Some(((*x)?, (*y)?)))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        if points.is_empty() {
            skipped.push(format!("{}: no values of {metric}", dir.display()));
            continue;
        }
        series.push(Series {
            dir: dir.clone(),
            points,
        });
    }
    if series.is_empty() {
        let mut columns: Vec<&str> = tables
            .iter()
            .flat_map(|(_, t)| t.iter().map(|(c, _)| c.as_str()))
            .collect();
        columns.sort_unstable();
        columns.dedup();
        return Err(format!(
            "no run has values of {metric:?}; columns they have: {}",
            columns.join(", ")
        ));
    }
    // Group runs by config (seed aside), in the order they were found.
    let mut groups: Vec<(String, Vec<Series>)> = Vec::new();
    for s in series {
        let key = config_key(&s.dir);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(s),
            None => groups.push((key, vec![s])),
        }
    }
    let mut curves = Vec::new();
    for (_, g) in &groups {
        let exp = g[0]
            .dir
            .parent()
            .map(name_of)
            .unwrap_or_else(|| name_of(&g[0].dir));
        let label = if g.len() > 1 {
            format!("{exp}: median of {} seeds, band min-max", g.len())
        } else {
            format!("{exp}/{}", name_of(&g[0].dir))
        };
        curves.push((label, g.len()));
    }
    // Two groups of one experiment: tell them apart by a trial name.
    let labels: Vec<String> = curves.iter().map(|c| c.0.clone()).collect();
    for (i, (label, _)) in curves.iter_mut().enumerate() {
        if labels.iter().filter(|l| **l == labels[i]).count() > 1 {
            label.push_str(&format!(" ({})", name_of(&groups[i].1[0].dir)));
        }
    }
    draw(&groups, &curves, &metric, o, out)?;
    Ok(PlotSummary {
        metric,
        curves,
        skipped,
    })
}

/// Median, min and max over the runs of a group on a common grid of x (each run counts where
/// its x range covers the point).
fn band(g: &[Series]) -> Vec<(f64, f64, f64, f64)> {
    let lo = g
        .iter()
        .map(|s| s.points[0].0)
        .fold(f64::INFINITY, f64::min);
    let hi = g
        .iter()
        .map(|s| s.points[s.points.len() - 1].0)
        .fold(f64::NEG_INFINITY, f64::max);
    let mut out = Vec::with_capacity(GRID);
    for i in 0..GRID {
        let x = if GRID == 1 || hi <= lo {
            lo
        } else {
            lo + (hi - lo) * i as f64 / (GRID - 1) as f64
        };
        let mut ys: Vec<f64> = g.iter().filter_map(|s| interpolate(&s.points, x)).collect();
        if ys.is_empty() {
            continue;
        }
        ys.sort_by(f64::total_cmp);
        let n = ys.len();
        let median = if n % 2 == 1 {
            ys[n / 2]
        } else {
            (ys[n / 2 - 1] + ys[n / 2]) / 2.0
        };
        out.push((x, median, ys[0], ys[n - 1]));
    }
    out
}

/// The run's value at `x` by linear interpolation; `None` outside its range.
fn interpolate(p: &[(f64, f64)], x: f64) -> Option<f64> {
    let (first, last) = (p.first()?, p.last()?);
    if x < first.0 || x > last.0 {
        return None;
    }
    let i = p.partition_point(|q| q.0 < x);
    if i == 0 {
        return Some(p[0].1);
    }
    let (a, b) = (p[i - 1], p[i.min(p.len() - 1)]);
    if b.0 <= a.0 {
        return Some(b.1);
    }
    Some(a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0))
}

fn draw(
    groups: &[(String, Vec<Series>)],
    curves: &[(String, usize)],
    metric: &str,
    o: &PlotOptions,
    out: &Path,
) -> Result<(), String> {
    // Registering twice is harmless; a font that does not load is our bug, said plainly.
    plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
        .map_err(|_| "the compiled-in font does not load".to_string())?;
    let (w, h) = (o.width, o.height);
    let mut pixels = vec![255u8; w as usize * h as usize * 3];
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for (_, g) in groups {
            for s in g {
                for (x, y) in &s.points {
                    x0 = x0.min(*x);
                    x1 = x1.max(*x);
                    y0 = y0.min(*y);
                    y1 = y1.max(*y);
                }
            }
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        let pad = ((y1 - y0) * 0.05).max(1e-9);
        let (y0, y1) = (y0 - pad, y1 + pad);
        let scale = (f64::from(h) / 600.0).max(0.5);
        let px = |v: f64| (v * scale).round() as u32;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{metric} vs {}", o.x.label()),
                (FAMILY, px(22.0)).into_font(),
            )
            .margin(px(16.0))
            .x_label_area_size(px(48.0))
            .y_label_area_size(px(72.0))
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(o.x.label())
            .y_desc(metric)
            .label_style((FAMILY, px(14.0)))
            .axis_desc_style((FAMILY, px(16.0)))
            .x_label_formatter(&|v| short_number(*v))
            .y_label_formatter(&|v| short_number(*v))
            .light_line_style(TRANSPARENT)
            .draw()?;
        for (i, ((_, g), (label, _))) in groups.iter().zip(curves).enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            if g.len() > 1 {
                let b = band(g);
                let mut outline: Vec<(f64, f64)> = b.iter().map(|p| (p.0, p.3)).collect();
                outline.extend(b.iter().rev().map(|p| (p.0, p.2)));
                chart.draw_series(std::iter::once(Polygon::new(outline, color.mix(0.18))))?;
                chart
                    .draw_series(LineSeries::new(
                        b.iter().map(|p| (p.0, p.1)),
                        color.stroke_width(px(2.5).max(1)),
                    ))?
                    .label(label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                    });
            } else {
                chart
                    .draw_series(LineSeries::new(
                        g[0].points.iter().copied(),
                        color.stroke_width(px(2.0).max(1)),
                    ))?
                    .label(label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                    });
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font((FAMILY, px(14.0)))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 204, 212))
            .draw()?;
        root.present()?;
        Ok(())
    })();
    drawn.map_err(|e| format!("drawing the plot: {e}"))?;
    write_png(out, &pixels, w, h, o.fast)
}

/// `12000` as `12k`, `1500000` as `1.5M`, small numbers as they are.
fn short_number(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if a >= 1e6 {
        format!("{}M", trim(format!("{:.2}", v / 1e6)))
    } else if a >= 1e3 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        trim(format!("{v:.2}"))
    } else {
        trim(format!("{v:.4}"))
    }
}

/// Writes RGB pixels as a PNG, atomically (a temporary file renamed into place).
fn write_png(out: &Path, rgb: &[u8], w: u32, h: u32, fast: bool) -> Result<(), String> {
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(if fast {
            png::Compression::Fast
        } else {
            png::Compression::Best
        });
        let mut writer = enc
            .write_header()
            .map_err(|e| format!("encoding the PNG: {e}"))?;
        writer
            .write_image_data(rgb)
            .map_err(|e| format!("encoding the PNG: {e}"))?;
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let tmp = out.with_extension(format!("png.tmp-{}", std::process::id()));
    std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::rename(&tmp, out))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write {}: {e}", out.display())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_stays_inside_a_run() {
        let p = [(0.0, 0.0), (10.0, 100.0)];
        assert_eq!(interpolate(&p, 5.0), Some(50.0));
        assert_eq!(interpolate(&p, 0.0), Some(0.0));
        assert_eq!(interpolate(&p, 10.0), Some(100.0));
        assert_eq!(interpolate(&p, 11.0), None);
    }

    #[test]
    fn a_band_has_the_median_and_the_extremes() {
        let s = |k: f64| Series {
            dir: PathBuf::new(),
            points: vec![(0.0, k), (100.0, 10.0 * k)],
        };
        let b = band(&[s(1.0), s(2.0), s(4.0)]);
        assert_eq!(b.len(), GRID);
        assert_eq!(b[0], (0.0, 2.0, 1.0, 4.0));
        assert_eq!(b[GRID - 1], (100.0, 20.0, 10.0, 40.0));
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(short_number(12000.0), "12k");
        assert_eq!(short_number(2500.0), "2.5k");
        assert_eq!(short_number(1_500_000.0), "1.5M");
        assert_eq!(short_number(250.0), "250");
        assert_eq!(short_number(0.25), "0.25");
        assert_eq!(short_number(0.0), "0");
    }
}

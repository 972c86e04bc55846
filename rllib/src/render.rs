//! Writing rendered frames as an animated GIF (`rllib evaluate --render out.gif`).

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use envs::RgbFrame;

/// Writes `frames` as a looping GIF at `fps` frames per second. Frames use few colours, so
/// the palette is exact (no quantisation); more than 256 colours is an error.
pub fn write_gif(path: &Path, frames: &[RgbFrame], fps: u16) -> Result<(), String> {
    let first = frames.first().ok_or("no frames to write")?;
    let (w, h) = (first.width, first.height);
    let mut palette: Vec<[u8; 3]> = Vec::new();
    let mut indexed = Vec::with_capacity(frames.len());
    for f in frames {
        let mut buf = Vec::with_capacity(f.pixels.len());
        let mut last: Option<([u8; 3], u8)> = None;
        for &p in &f.pixels {
            let i = match last {
                Some((c, i)) if c == p => i,
                _ => {
                    let i = match palette.iter().position(|&c| c == p) {
                        Some(i) => i,
                        None if palette.len() < 256 => {
                            palette.push(p);
                            palette.len() - 1
                        }
                        None => return Err("frames use more than 256 colours".into()),
                    } as u8;
                    last = Some((p, i));
                    i
                }
            };
            buf.push(i);
        }
        indexed.push(buf);
    }
    let flat: Vec<u8> = palette.iter().flatten().copied().collect();
    let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let too_big = |_| format!("{}: frames larger than 65535 pixels", path.display());
    let (gw, gh) = (
        u16::try_from(w).map_err(too_big)?,
        u16::try_from(h).map_err(too_big)?,
    );
    let mut enc = gif::Encoder::new(BufWriter::new(file), gw, gh, &flat)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    enc.set_repeat(gif::Repeat::Infinite)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let delay = (100 / fps.max(1)).max(1);
    for buf in indexed {
        let mut frame = gif::Frame::from_indexed_pixels(gw, gh, buf, None);
        frame.delay = delay;
        enc.write_frame(&frame)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

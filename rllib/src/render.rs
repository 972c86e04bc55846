//! Writing rendered frames as an animated GIF (`rllib evaluate --render out.gif`), one frame
//! at a time as the episode runs, so that a long episode takes the memory of one frame.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use envs::RgbFrame;

/// A looping GIF being written frame by frame. Frames use few colours, so each gets an exact
/// palette of its own (no quantisation); a frame of more than 256 colours is an error.
pub struct GifWriter {
    path: PathBuf,
    file: Option<File>,
    encoder: Option<(gif::Encoder<BufWriter<File>>, u16, u16)>,
    delay: u16,
    frames: usize,
}

impl std::fmt::Debug for GifWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GifWriter")
            .field("path", &self.path)
            .field("frames", &self.frames)
            .finish()
    }
}

impl GifWriter {
    /// Creates `path` for an animation at `fps` frames per second.
    pub fn create(path: &Path, fps: u16) -> Result<Self, String> {
        let file = File::create(path).map_err(|e| {
            format!(
                "--render {}: cannot be written: {}",
                path.display(),
                crate::fsio::describe(path, &e)
            )
        })?;
        Ok(GifWriter {
            path: path.to_path_buf(),
            file: Some(file),
            encoder: None,
            delay: (100 / fps.max(1)).max(1),
            frames: 0,
        })
    }

    fn fail(&self, e: impl std::fmt::Display) -> String {
        format!("{}: {e}", self.path.display())
    }

    /// Encodes and writes one frame.
    pub fn push(&mut self, f: &RgbFrame) -> Result<(), String> {
        if self.encoder.is_none() {
            let too_big = |_| self.fail("frames larger than 65535 pixels");
            let (w, h) = (
                u16::try_from(f.width).map_err(too_big)?,
                u16::try_from(f.height).map_err(too_big)?,
            );
            let file = self
                .file
                .take()
                .ok_or_else(|| self.fail("already closed"))?;
            let mut enc =
                gif::Encoder::new(BufWriter::new(file), w, h, &[]).map_err(|e| self.fail(e))?;
            enc.set_repeat(gif::Repeat::Infinite)
                .map_err(|e| self.fail(e))?;
            self.encoder = Some((enc, w, h));
        }
        let mut palette: Vec<[u8; 3]> = Vec::new();
        let mut indexed = Vec::with_capacity(f.pixels.len());
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
                        None => return Err(self.fail("a frame uses more than 256 colours")),
                    } as u8;
                    last = Some((p, i));
                    i
                }
            };
            indexed.push(i);
        }
        let flat: Vec<u8> = palette.iter().flatten().copied().collect();
        let delay = self.delay;
        let path = self.path.display().to_string();
        let Some((enc, w, h)) = self.encoder.as_mut() else {
            unreachable!("the encoder was made above")
        };
        if usize::from(*w) * usize::from(*h) != indexed.len() {
            return Err(format!("{path}: frames of different sizes"));
        }
        let mut frame = gif::Frame::from_indexed_pixels(*w, *h, indexed, None);
        frame.palette = Some(flat);
        frame.delay = delay;
        enc.write_frame(&frame)
            .map_err(|e| format!("{path}: {e}"))?;
        self.frames += 1;
        Ok(())
    }

    /// Finishes the file; returns the number of frames written.
    pub fn finish(self) -> Result<usize, String> {
        if let Some((enc, _, _)) = self.encoder {
            let mut out = enc
                .into_inner()
                .map_err(|e| format!("{}: {e}", self.path.display()))?;
            std::io::Write::flush(&mut out).map_err(|e| format!("{}: {e}", self.path.display()))?;
        }
        Ok(self.frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_stream_into_a_gif() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.gif");
        let mut w = GifWriter::create(&path, 50).unwrap();
        for c in 0..3u8 {
            let mut f = RgbFrame::filled(4, 3, [c, 0, 0]);
            f.pixels[0] = [255, 255, 255];
            w.push(&f).unwrap();
        }
        assert_eq!(w.finish().unwrap(), 3);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..6], b"GIF89a");
        let mut dec = gif::DecodeOptions::new();
        dec.set_color_output(gif::ColorOutput::RGBA);
        let mut d = dec.read_info(std::fs::File::open(&path).unwrap()).unwrap();
        let mut n = 0;
        while let Some(f) = d.read_next_frame().unwrap() {
            assert_eq!(&f.buffer[..4], &[255, 255, 255, 255]);
            assert_eq!(&f.buffer[4..8], &[n, 0, 0, 255]);
            n += 1;
        }
        assert_eq!(n, 3);
    }
}

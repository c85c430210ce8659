//! Video decoding with FFmpeg (through `ffmpeg-next`): any container and
//! codec the system's libavformat/libavcodec read, frames converted to RGB
//! and resized with swscale.
//!
//! * [`decode_all`] returns every frame: packets are read until the end of
//!   the stream and the decoder is then flushed, so the frames it still
//!   holds (B-frame reordering, frame threading) are delivered too.
//! * [`decode_frames`] returns the frames at given indices, seeking (to the
//!   keyframe before the next wanted frame) instead of decoding through
//!   gaps longer than [`SEEK_GAP`] frames; frame indices after a seek come
//!   from the frames' timestamps and the stream's frame rate (calibrated on
//!   the first frame). Where a seek lands on a frame without a timestamp
//!   (AVI with B-frames), it decodes through instead.
//!
//! A file that cannot be opened, has no video stream, fails to decode, or
//! yields no frame (or fewer than its container declares: a truncated file)
//! is an [`Error::Data`] naming the file.

use crate::{Error, Result};
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling::{context::Context as Scaler, flag::Flags};
use ffmpeg::util::frame::video::Video as VideoFrame;
use ffmpeg_next as ffmpeg;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Once;

/// Gaps (in frames) between wanted frames above which [`decode_frames`]
/// seeks rather than decoding through.
pub const SEEK_GAP: usize = 96;

/// The output size of decoded frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resize {
    /// The stream's own size.
    #[default]
    Original,
    /// Scale so the shorter side has this many pixels, keeping the aspect
    /// ratio (rounded to even sizes), as mmaction2's `Resize(scale=(-1, s))`.
    ShortSide(u32),
    /// Exactly this size.
    Exact {
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
    },
}

impl Resize {
    /// The output size for a `width x height` stream.
    pub fn apply(self, width: u32, height: u32) -> (u32, u32) {
        match self {
            Resize::Original => (width, height),
            Resize::Exact { width, height } => (width, height),
            Resize::ShortSide(s) => {
                let even = |v: f64| ((v / 2.0).round() as u32 * 2).max(2);
                if width <= height {
                    (s, even(height as f64 * s as f64 / width as f64))
                } else {
                    (even(width as f64 * s as f64 / height as f64), s)
                }
            }
        }
    }
}

/// Decoded RGB frames: `data` holds `count` frames of `height x width x 3`
/// bytes each, frame after frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frames {
    /// Frame width in pixels.
    pub width: usize,
    /// Frame height in pixels.
    pub height: usize,
    /// The number of frames.
    pub count: usize,
    /// `count * height * width * 3` bytes, RGB, row-major.
    pub data: Vec<u8>,
}

impl Frames {
    /// The bytes of frame `i`.
    pub fn frame(&self, i: usize) -> &[u8] {
        let n = self.width * self.height * 3;
        &self.data[i * n..(i + 1) * n]
    }
}

/// Registers FFmpeg's formats once and keeps its log to fatal errors.
pub(crate) fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // Registration cannot fail on FFmpeg >= 5; the log level keeps
        // FFmpeg's own messages about damaged files out of training logs
        // (the errors returned here name the file instead).
        let _ = ffmpeg::init();
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    });
}

/// An open video stream and its decoder.
struct Source<'p> {
    path: &'p Path,
    input: ffmpeg::format::context::Input,
    decoder: ffmpeg::decoder::Video,
    stream: usize,
    declared_frames: usize,
    /// Frames per stream time-base tick (from the average frame rate).
    ticks_to_frames: Option<f64>,
    /// The stream's start time, in its time base.
    start: i64,
    /// Seconds per frame, for seeking.
    frame_seconds: Option<f64>,
    resize: Resize,
    scaler: Option<(Scaler, (Pixel, u32, u32))>,
}

impl<'p> Source<'p> {
    fn open(path: &'p Path, resize: Resize) -> Result<Self> {
        init();
        let err = |what: &str, e: ffmpeg::Error| Error::data(path, format!("{what}: {e}"));
        if !path.is_file() {
            return Err(Error::data(path, "no such video file"));
        }
        let input = ffmpeg::format::input(path).map_err(|e| err("cannot open as a video", e))?;
        let stream = input
            .streams()
            .best(ffmpeg::media::Type::Video)
            .ok_or_else(|| Error::data(path, "no video stream"))?;
        let context = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| err("unsupported codec parameters", e))?;
        let decoder = context
            .decoder()
            .video()
            .map_err(|e| err("no decoder for the video codec", e))?;
        let rate = stream.avg_frame_rate();
        let tb = stream.time_base();
        let fps = (rate.denominator() != 0 && rate.numerator() > 0)
            .then(|| rate.numerator() as f64 / rate.denominator() as f64);
        let ticks_to_frames = fps
            .filter(|_| tb.denominator() != 0)
            .map(|fps| fps * tb.numerator() as f64 / tb.denominator() as f64);
        let start = stream.start_time();
        Ok(Self {
            path,
            declared_frames: stream.frames().max(0) as usize,
            stream: stream.index(),
            ticks_to_frames,
            start: if start == ffmpeg::ffi::AV_NOPTS_VALUE {
                0
            } else {
                start
            },
            frame_seconds: fps.map(|f| 1.0 / f),
            input,
            decoder,
            resize,
            scaler: None,
        })
    }

    /// The index of a decoded frame from its timestamp.
    fn frame_index(&self, frame: &VideoFrame) -> Option<usize> {
        let ts = frame.timestamp()?;
        let k = self.ticks_to_frames?;
        Some(((ts - self.start) as f64 * k).round().max(0.0) as usize)
    }

    /// Converts a decoded frame to RGB at the output size, appending it.
    fn convert(&mut self, frame: &VideoFrame, out: &mut Frames) -> Result<()> {
        let key = (frame.format(), frame.width(), frame.height());
        let (w, h) = self.resize.apply(frame.width(), frame.height());
        if self.scaler.as_ref().map(|(_, k)| *k) != Some(key) {
            let scaler = Scaler::get(key.0, key.1, key.2, Pixel::RGB24, w, h, Flags::BILINEAR)
                .map_err(|e| Error::data(self.path, format!("cannot convert frames: {e}")))?;
            self.scaler = Some((scaler, key));
        }
        if out.count == 0 {
            out.width = w as usize;
            out.height = h as usize;
        } else if (out.width, out.height) != (w as usize, h as usize) {
            return Err(Error::data(
                self.path,
                "the frame size changes within the stream",
            ));
        }
        let mut rgb = VideoFrame::empty();
        if let Some((scaler, _)) = self.scaler.as_mut() {
            scaler
                .run(frame, &mut rgb)
                .map_err(|e| Error::data(self.path, format!("cannot convert frames: {e}")))?;
        }
        let row = out.width * 3;
        let stride = rgb.stride(0);
        let plane = rgb.data(0);
        for y in 0..out.height {
            out.data
                .extend_from_slice(&plane[y * stride..y * stride + row]);
        }
        out.count += 1;
        Ok(())
    }

    /// Reads the next packet of the video stream into the decoder; false at
    /// the end of the file (after sending EOF to the decoder once).
    fn feed(&mut self, at_eof: &mut bool) -> Result<bool> {
        if *at_eof {
            return Ok(false);
        }
        let mut packet = ffmpeg::Packet::empty();
        loop {
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() == self.stream => {
                    return match self.decoder.send_packet(&packet) {
                        Ok(()) => Ok(true),
                        Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::error::EAGAIN => {
                            Ok(true)
                        }
                        Err(e) => Err(Error::data(self.path, format!("damaged video data: {e}"))),
                    };
                }
                Ok(()) => continue,
                Err(ffmpeg::Error::Eof) => {
                    *at_eof = true;
                    self.decoder.send_eof().map_err(|e| {
                        Error::data(self.path, format!("cannot flush decoder: {e}"))
                    })?;
                    return Ok(true);
                }
                Err(e) => {
                    return Err(Error::data(self.path, format!("cannot read packets: {e}")));
                }
            }
        }
    }

    /// The next decoded frame, or `None` at the end of the stream.
    fn next_frame(&mut self, at_eof: &mut bool) -> Result<Option<VideoFrame>> {
        let mut frame = VideoFrame::empty();
        loop {
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => return Ok(Some(frame)),
                Err(ffmpeg::Error::Eof) => return Ok(None),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::error::EAGAIN => {
                    if !self.feed(at_eof)? {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(Error::data(self.path, format!("damaged video data: {e}"))),
            }
        }
    }

    /// Seeks to the keyframe at or before frame `target`.
    fn seek(&mut self, target: usize) -> Result<()> {
        let secs = self.frame_seconds.unwrap_or(0.0) * target as f64;
        let ts = (secs * f64::from(ffmpeg::ffi::AV_TIME_BASE)) as i64;
        self.input
            .seek(ts, ..ts)
            .map_err(|e| Error::data(self.path, format!("cannot seek: {e}")))?;
        self.decoder.flush();
        Ok(())
    }

    fn check_complete(&self, decoded: usize) -> Result<()> {
        if decoded == 0 {
            return Err(Error::data(self.path, "no decodable video frame"));
        }
        if self.declared_frames > 0 && decoded < self.declared_frames {
            return Err(Error::data(
                self.path,
                format!(
                    "truncated: decoded {decoded} of the {} frames the container declares",
                    self.declared_frames
                ),
            ));
        }
        Ok(())
    }
}

/// Every frame of the video at `path`.
pub fn decode_all(path: &Path, resize: Resize) -> Result<Frames> {
    let mut src = Source::open(path, resize)?;
    let mut out = Frames {
        width: 0,
        height: 0,
        count: 0,
        data: Vec::new(),
    };
    let mut eof = false;
    while let Some(frame) = src.next_frame(&mut eof)? {
        src.convert(&frame, &mut out)?;
    }
    src.check_complete(out.count)?;
    Ok(out)
}

/// The number of frames in the video at `path` (every frame decoded, so
/// the count is exact; no conversion).
pub fn count_frames(path: &Path) -> Result<usize> {
    let mut src = Source::open(path, Resize::Original)?;
    let mut eof = false;
    let mut n = 0;
    while src.next_frame(&mut eof)?.is_some() {
        n += 1;
    }
    src.check_complete(n)?;
    Ok(n)
}

/// The frames at `indices` (any order, repeats allowed), in that order.
/// An index past the last frame is an error naming the file.
pub fn decode_frames(path: &Path, indices: &[usize], resize: Resize) -> Result<Frames> {
    let mut wanted: Vec<usize> = indices.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let got = match select(path, &wanted, resize, true)? {
        Some(got) => got,
        None => select(path, &wanted, resize, false)?
            .ok_or_else(|| Error::data(path, "cannot locate frames"))?,
    };
    // Reorder the unique frames into the order (and repeats) asked for.
    let n = got.width * got.height * 3;
    let mut data = Vec::with_capacity(indices.len() * n);
    for i in indices {
        let k = wanted.binary_search(i).unwrap_or(0);
        data.extend_from_slice(&got.data[k * n..(k + 1) * n]);
    }
    Ok(Frames {
        count: indices.len(),
        data,
        ..got
    })
}

/// The frames at the sorted, distinct `wanted` indices, seeking over long
/// gaps when `seek` is set. `None` when a seek lands on a frame without a
/// timestamp (AVI with B-frames), so that the caller decodes through.
fn select(path: &Path, wanted: &[usize], resize: Resize, seek: bool) -> Result<Option<Frames>> {
    let mut src = Source::open(path, resize)?;
    let can_seek = seek && src.ticks_to_frames.is_some() && src.frame_seconds.is_some();
    let mut got = Frames {
        width: 0,
        height: 0,
        count: 0,
        data: Vec::new(),
    };
    let mut eof = false;
    let mut next = 0; // position in `wanted`
    let mut here = 0; // index of the next frame the decoder delivers
    let mut after_seek = false;
    // Timestamp-derived index minus true index, from the first frame: some
    // containers number frames from 1.
    let mut offset: Option<i64> = None;
    while next < wanted.len() {
        if can_seek && offset.is_some() && wanted[next] >= here + SEEK_GAP {
            src.seek(wanted[next])?;
            eof = false;
            after_seek = true;
        }
        let Some(frame) = src.next_frame(&mut eof)? else {
            break;
        };
        let stamped = src.frame_index(&frame).map(|i| i as i64);
        let index = if after_seek {
            match (stamped, offset) {
                (Some(t), Some(o)) => (t - o).max(0) as usize,
                _ => return Ok(None),
            }
        } else {
            here
        };
        after_seek = false;
        if offset.is_none() {
            offset = stamped.map(|t| t - index as i64);
        }
        here = index + 1;
        while next < wanted.len() && wanted[next] < index {
            // A seek landed past a wanted frame: take this one instead.
            next += 1;
            src.convert(&frame, &mut got)?;
        }
        if next < wanted.len() && wanted[next] == index {
            src.convert(&frame, &mut got)?;
            next += 1;
        }
    }
    if next < wanted.len() {
        return Err(Error::data(
            path,
            format!(
                "frame {} requested, but the video ends after {here} frames",
                wanted[next]
            ),
        ));
    }
    Ok(Some(got))
}

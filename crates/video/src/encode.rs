//! Video encoding with FFmpeg's libraries (through `ffmpeg-next`), for the
//! suite's embedded data sets: RGB frames in, a WebM (VP9) or MP4 (H.264)
//! file out, with the settings of [`Codec`].
//!
//! The frames reach the encoder as the `ffmpeg` command-line tool would
//! pass them: RGB converted to YUV 4:2:0 by swscale with bicubic filtering
//! (the tool's default `sws_flags`), timestamps `0, 1, 2, ...` in a time base
//! of `1 / fps`, one encoder thread, and the codec and muxer in bit-exact
//! mode (no version strings, no random ids). A test checks that the VP9
//! files decode to the pictures of the tool's files with the same settings,
//! and are the same file for the same frames; H.264 files come within half
//! a level of the tool's pictures (x264 inside the process sometimes takes
//! another B-frame decision, for a cause not found).
//!
//! Why not the tool itself: starting an `ffmpeg` process takes about 110 ms
//! on the 2-core machine of `experiments/RESULTS.md`, longer than encoding
//! a data set's clip of 8-12 frames at 64x64. The comparisons' Fashion-SSv2
//! has 2,880 such clips, and the tool took 176 s of the main command's
//! budget to write them.

use crate::decode::init;
use crate::{Error, Result};
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling::{context::Context as Scaler, flag::Flags};
use ffmpeg::util::frame::video::Video as VideoFrame;
use ffmpeg_next as ffmpeg;
use std::path::Path;

/// The container, codec and settings of a written file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// WebM with VP9 (Something-Something v2's format): libvpx at constant
    /// quality (`crf 30`, no bit-rate target), real-time speed
    /// (`deadline realtime`, `cpu-used 8`).
    Vp9Webm,
    /// MP4 with H.264 (Kinetics' format): x264, `preset veryfast`, `crf 20`.
    H264Mp4,
}

impl Codec {
    /// The muxer's name.
    fn container(self) -> &'static str {
        match self {
            Codec::Vp9Webm => "webm",
            Codec::H264Mp4 => "mp4",
        }
    }

    /// The encoder's name and its private options.
    fn encoder(self) -> (&'static str, &'static [(&'static str, &'static str)]) {
        match self {
            Codec::Vp9Webm => (
                "libvpx-vp9",
                &[
                    ("crf", "30"),
                    ("deadline", "realtime"),
                    ("cpu-used", "8"),
                    ("row-mt", "1"),
                ],
            ),
            Codec::H264Mp4 => ("libx264", &[("preset", "veryfast"), ("crf", "20")]),
        }
    }
}

/// Encodes `rgb` (`frames x height x width x 3` bytes, at least one frame)
/// at `fps` frames per second into `path`, in the codec's container
/// whatever the file's extension. A failed write leaves no file behind.
pub fn encode_video(
    path: &Path,
    rgb: &[u8],
    (width, height): (u32, u32),
    fps: u32,
    codec: Codec,
) -> Result<()> {
    let frame_bytes = width as usize * height as usize * 3;
    if frame_bytes == 0 || fps == 0 || rgb.is_empty() || !rgb.len().is_multiple_of(frame_bytes) {
        return Err(Error::data(
            path,
            format!(
                "cannot encode {} bytes as {width}x{height} RGB frames at {fps} fps",
                rgb.len()
            ),
        ));
    }
    let result = write(path, rgb, (width, height), fps, codec);
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}

fn write(path: &Path, rgb: &[u8], (w, h): (u32, u32), fps: u32, codec: Codec) -> Result<()> {
    init();
    let err = |what: &str, e: ffmpeg::Error| Error::data(path, format!("{what}: {e}"));
    let (name, options) = codec.encoder();
    let found = ffmpeg::encoder::find_by_name(name)
        .ok_or_else(|| Error::data(path, format!("this FFmpeg has no {name} encoder")))?;
    let mut output =
        ffmpeg::format::output_as(path, codec.container()).map_err(|e| err("cannot create", e))?;
    // SAFETY: a flag of the format context `output` owns, set before the
    // header is written (what `-fflags +bitexact` does).
    unsafe {
        (*output.as_mut_ptr()).flags |= ffmpeg::ffi::AVFMT_FLAG_BITEXACT;
    }
    let global_header = output
        .format()
        .flags()
        .contains(ffmpeg::format::Flags::GLOBAL_HEADER);
    let time_base = ffmpeg::Rational::new(1, fps as i32);
    let mut video = ffmpeg::codec::context::Context::new_with_codec(found)
        .encoder()
        .video()
        .map_err(|e| err("cannot set up the encoder", e))?;
    video.set_width(w);
    video.set_height(h);
    video.set_format(Pixel::YUV420P);
    video.set_time_base(time_base);
    video.set_frame_rate(Some(ffmpeg::Rational::new(fps as i32, 1)));
    video.set_bit_rate(0);
    let mut flags = ffmpeg::codec::Flags::BITEXACT;
    if global_header {
        flags |= ffmpeg::codec::Flags::GLOBAL_HEADER;
    }
    video.set_flags(flags);
    for (key, value) in options.iter().chain(&[("threads", "1")]) {
        // Set one by one so that an option the encoder lacks is an error,
        // as it is for the tool (`open_with` would drop it silently).
        let (k, v) = (c_string(path, key)?, c_string(path, value)?);
        // SAFETY: the context and its private options were allocated with
        // the codec (`new_with_codec`); the strings outlive the call.
        let ret = unsafe {
            ffmpeg::ffi::av_opt_set(
                video.as_mut_ptr().cast(),
                k.as_ptr(),
                v.as_ptr(),
                ffmpeg::ffi::AV_OPT_SEARCH_CHILDREN,
            )
        };
        if ret < 0 {
            return Err(err(
                &format!("the {name} encoder refuses `{key} = {value}`"),
                ffmpeg::Error::from(ret),
            ));
        }
    }
    let mut encoder = video
        .open()
        .map_err(|e| err(&format!("cannot open the {name} encoder"), e))?;
    {
        let mut stream = output
            .add_stream(found)
            .map_err(|e| err("cannot add a video stream", e))?;
        stream.set_parameters(&encoder);
        stream.set_time_base(time_base);
        // The tool records the frame rate on the stream too: WebM writes it
        // as the track's default frame duration.
        stream.set_rate(time_base.invert());
        stream.set_avg_frame_rate(time_base.invert());
    }
    output
        .write_header()
        .map_err(|e| err("cannot write the header", e))?;
    let stream_base = output.stream(0).map(|s| s.time_base()).unwrap_or(time_base);
    let mut scaler = Scaler::get(Pixel::RGB24, w, h, Pixel::YUV420P, w, h, Flags::BICUBIC)
        .map_err(|e| err("cannot convert frames", e))?;
    let mut source = VideoFrame::new(Pixel::RGB24, w, h);
    // The rows' padding, which the frames never fill, starts zeroed: its
    // bytes are otherwise whatever the allocator left.
    source.data_mut(0).fill(0);
    let row = w as usize * 3;
    let drain = |encoder: &mut ffmpeg::encoder::Video,
                 output: &mut ffmpeg::format::context::Output|
     -> Result<()> {
        let mut packet = ffmpeg::Packet::empty();
        loop {
            match encoder.receive_packet(&mut packet) {
                Ok(()) => {}
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::error::EAGAIN => break,
                Err(ffmpeg::Error::Eof) => break,
                Err(e) => return Err(err("cannot encode", e)),
            }
            packet.set_stream(0);
            // One frame long, as the tool marks it: without a duration an
            // MP4's last frame lasts zero time and players drop it.
            if packet.duration() == 0 {
                packet.set_duration(1);
            }
            packet.rescale_ts(time_base, stream_base);
            packet
                .write_interleaved(output)
                .map_err(|e| err("cannot write a packet", e))?;
        }
        Ok(())
    };
    for (i, frame) in rgb.chunks_exact(row * h as usize).enumerate() {
        let stride = source.stride(0);
        let plane = source.data_mut(0);
        for (y, line) in frame.chunks_exact(row).enumerate() {
            plane[y * stride..y * stride + row].copy_from_slice(line);
        }
        let mut yuv = VideoFrame::empty();
        scaler
            .run(&source, &mut yuv)
            .map_err(|e| err("cannot convert frames", e))?;
        yuv.set_pts(Some(i as i64));
        encoder
            .send_frame(&yuv)
            .map_err(|e| err("cannot encode", e))?;
        drain(&mut encoder, &mut output)?;
    }
    encoder.send_eof().map_err(|e| err("cannot encode", e))?;
    drain(&mut encoder, &mut output)?;
    output
        .write_trailer()
        .map_err(|e| err("cannot finish the file", e))
}

fn c_string(path: &Path, s: &str) -> Result<std::ffi::CString> {
    std::ffi::CString::new(s).map_err(|_| Error::data(path, format!("`{s}` holds a NUL byte")))
}

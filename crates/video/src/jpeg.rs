//! The clip cache's JPEG frames, through the libjpeg API of MozJPEG
//! (`mozjpeg-sys`, which builds MozJPEG, a libjpeg-turbo fork, with its
//! SIMD code).
//!
//! **Encoding** keeps MozJPEG's default compression profile (its own
//! quantization tables, trellis quantization, optimized Huffman tables),
//! with chroma subsampled 4:2:0, but writes one sequential (baseline) scan
//! instead of the profile's progressive scans, which decode slower. At an
//! equal error that takes about a fifth less space than the `jpeg-encoder`
//! crate the cache used before (crates/video/README.md has the
//! measurements).
//!
//! **Decoding** can stop at a window of columns `[c0, c1)`: libjpeg-turbo's
//! `jpeg_crop_scanline` skips the inverse DCT, upsampling and colour
//! conversion of the blocks outside it (the entropy decoding still reads
//! them all). Chroma upsampling treats the edges of a cropped region as
//! the image's edges, so the region decoded reaches a few pixels past the
//! window on each side (`MARGIN`). The window's pixels then equal those
//! of decoding the whole frame, exactly (tested).
//!
//! Written by hand on `mozjpeg-sys` because no Rust JPEG crate offers a
//! cropped decode: neither the safe `mozjpeg` wrapper, nor zune-jpeg, nor
//! `image`. libjpeg reports a fatal error through a callback that must not
//! return; here it unwinds (`mozjpeg-sys` builds the C code with unwind
//! tables for that) with `resume_unwind`, which skips the panic hook, and
//! the call catches it and returns the message as an error. (A build with
//! `panic = "abort"` would abort instead: the workspace's profiles unwind.)
//! Warnings of corrupt data are errors too, so a damaged frame is never
//! half decoded.

use crate::{Error, Result};
use mozjpeg_sys as ffi;
use std::ffi::c_int;
use std::ops::Range;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::Path;

/// Columns decoded past each side of a window. Fancy (triangle) upsampling
/// of 4:2:0 chroma reads one chroma sample, two pixels, past a pixel's own;
/// this is twice that. (With 1 the window test fails; with 2 it passes.)
const MARGIN: usize = 4;

/// What libjpeg's error callback unwinds with.
struct JpegFailure(String);

/// libjpeg's message for its current error or warning.
fn message(cinfo: &mut ffi::jpeg_common_struct) -> String {
    // SAFETY: `err` points at the error manager set up with `jpeg_std_error`,
    // whose `format_message` writes at most JMSG_LENGTH_MAX (200) bytes,
    // NUL-terminated, into the buffer it is given. mozjpeg-sys declares the
    // buffer as `&[u8; 80]`; the C function takes a `char *` it writes to,
    // so it is called with a pointer to a writable 200-byte buffer.
    unsafe {
        let Some(err) = cinfo.err.as_ref() else {
            return "libjpeg error".into();
        };
        let Some(format) = err.format_message else {
            return format!("libjpeg error code {}", err.msg_code);
        };
        let format: unsafe extern "C-unwind" fn(&mut ffi::jpeg_common_struct, *mut u8) =
            std::mem::transmute(format);
        let mut buffer = [0u8; 200];
        format(cinfo, buffer.as_mut_ptr());
        let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
        String::from_utf8_lossy(&buffer[..end]).into_owned()
    }
}

/// libjpeg's fatal-error callback: unwinds to the `catch_unwind` of [`guarded`].
extern "C-unwind" fn error_exit(cinfo: &mut ffi::jpeg_common_struct) {
    resume_unwind(Box::new(JpegFailure(message(cinfo))))
}

/// libjpeg's message callback: warnings (level -1, e.g. corrupt or
/// truncated data) are fatal; trace messages are dropped.
extern "C-unwind" fn emit_message(cinfo: &mut ffi::jpeg_common_struct, level: c_int) {
    if level < 0 {
        error_exit(cinfo)
    }
}

/// Installs [`error_exit`] and [`emit_message`] in `err`, which
/// `jpeg_std_error` fills in first.
///
/// # Safety
/// `err` points at a zero-initialised `jpeg_error_mgr`.
unsafe fn init_error_manager(err: *mut ffi::jpeg_error_mgr) {
    // SAFETY: see the function's contract.
    unsafe {
        ffi::jpeg_std_error(&mut *err);
        (*err).error_exit = Some(error_exit);
        (*err).emit_message = Some(emit_message);
    }
}

/// Runs `f`, turning a libjpeg failure into an error naming `source`.
fn guarded<T>(source: &Path, what: &str, f: impl FnOnce() -> T) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| match payload.downcast::<JpegFailure>() {
        Ok(failure) => Error::data(source, format!("JPEG {what}: {}", failure.0)),
        Err(other) => resume_unwind(other),
    })
}

/// A compressor and what it points at, in one allocation: its error
/// manager, and a destination manager that writes into `out` (libjpeg's
/// own memory destination reallocates its buffer without telling the
/// caller until the end, so an error midway could not free it).
#[repr(C)]
struct Encoder {
    /// First, so that libjpeg's `cinfo` pointer is the `Encoder`'s.
    cinfo: ffi::jpeg_compress_struct,
    err: ffi::jpeg_error_mgr,
    dest: ffi::jpeg_destination_mgr,
    /// The file: `len` bytes final, up to `capacity` handed to libjpeg.
    out: Vec<u8>,
}

/// The [`Encoder`] whose `cinfo` this is.
///
/// # Safety
/// `cinfo` is the `cinfo` field of a live `Encoder`.
unsafe fn encoder(cinfo: &mut ffi::jpeg_compress_struct) -> *mut Encoder {
    (cinfo as *mut ffi::jpeg_compress_struct).cast()
}

/// Hands libjpeg the free part of `out`'s allocation, after growing it to
/// hold at least `more` bytes past what it holds.
///
/// # Safety
/// `enc` points at a live `Encoder` whose first `out.len()` bytes are written.
unsafe fn hand_out(enc: *mut Encoder, more: usize) {
    // SAFETY: see the function's contract; the pointer libjpeg gets covers
    // exactly the allocation's unused capacity.
    unsafe {
        let out = &mut (*enc).out;
        out.reserve(more);
        (*enc).dest.next_output_byte = out.as_mut_ptr().add(out.len());
        (*enc).dest.free_in_buffer = out.capacity() - out.len();
    }
}

extern "C-unwind" fn init_destination(cinfo: &mut ffi::jpeg_compress_struct) {
    // SAFETY: libjpeg calls this with the `cinfo` of an `Encoder`.
    unsafe {
        let enc = encoder(cinfo);
        (*enc).out.clear();
        hand_out(enc, 1 << 16);
    }
}

/// libjpeg filled the whole buffer: keep it and hand out more.
extern "C-unwind" fn empty_output_buffer(cinfo: &mut ffi::jpeg_compress_struct) -> ffi::boolean {
    // SAFETY: as above; libjpeg wrote every byte handed out.
    unsafe {
        let enc = encoder(cinfo);
        let full = (*enc).out.capacity();
        (*enc).out.set_len(full);
        hand_out(enc, full);
    }
    1
}

extern "C-unwind" fn term_destination(cinfo: &mut ffi::jpeg_compress_struct) {
    // SAFETY: as above; libjpeg wrote all but the `free_in_buffer` last bytes
    // handed out.
    unsafe {
        let enc = encoder(cinfo);
        let written = (*enc).out.capacity() - (*enc).dest.free_in_buffer;
        (*enc).out.set_len(written);
    }
}

/// An [`Encoder`] on the heap, destroyed however the call ends.
struct OwnedEncoder(*mut Encoder);

impl OwnedEncoder {
    /// A created compressor writing into its `out`.
    fn new() -> Self {
        // SAFETY: all-zero bytes are valid for the three libjpeg structs
        // (null pointers, `None` callbacks, zero numbers and enums whose 0 is
        // a variant); the `Vec` is built properly. The pointers between the
        // fields stay valid because the allocation never moves until `drop`.
        unsafe {
            let enc = Box::into_raw(Box::new(Encoder {
                cinfo: std::mem::zeroed(),
                err: std::mem::zeroed(),
                dest: std::mem::zeroed(),
                out: Vec::new(),
            }));
            init_error_manager(&raw mut (*enc).err);
            (*enc).cinfo.common.err = &raw mut (*enc).err;
            ffi::jpeg_create_compress(&raw mut (*enc).cinfo);
            (*enc).dest.init_destination = Some(init_destination);
            (*enc).dest.empty_output_buffer = Some(empty_output_buffer);
            (*enc).dest.term_destination = Some(term_destination);
            (*enc).cinfo.dest = &raw mut (*enc).dest;
            OwnedEncoder(enc)
        }
    }
}

impl Drop for OwnedEncoder {
    fn drop(&mut self) {
        // SAFETY: created in `new`; destroying frees libjpeg's pools, then
        // the box (and `out`) is freed once.
        unsafe {
            ffi::jpeg_destroy_compress(&mut (*self.0).cinfo);
            drop(Box::from_raw(self.0));
        }
    }
}

/// A decompressor and its error manager, in one allocation.
#[repr(C)]
struct Decoder {
    cinfo: ffi::jpeg_decompress_struct,
    err: ffi::jpeg_error_mgr,
}

/// A [`Decoder`] on the heap, destroyed however the call ends.
struct OwnedDecoder(*mut Decoder);

impl OwnedDecoder {
    /// A created decompressor.
    fn new() -> Self {
        // SAFETY: as `OwnedEncoder::new`.
        unsafe {
            let dec = Box::into_raw(Box::new(Decoder {
                cinfo: std::mem::zeroed(),
                err: std::mem::zeroed(),
            }));
            init_error_manager(&raw mut (*dec).err);
            (*dec).cinfo.common.err = &raw mut (*dec).err;
            ffi::jpeg_create_decompress(&raw mut (*dec).cinfo);
            OwnedDecoder(dec)
        }
    }
}

impl Drop for OwnedDecoder {
    fn drop(&mut self) {
        // SAFETY: created in `new`.
        unsafe {
            ffi::jpeg_destroy_decompress(&mut (*self.0).cinfo);
            drop(Box::from_raw(self.0));
        }
    }
}

/// One `width x height` RGB frame (`rgb`: `height * width * 3` bytes,
/// row-major) as a JPEG file of quality `quality` (1-100), chroma 4:2:0,
/// one sequential scan, trellis-quantized (see the module docs).
pub fn encode_jpeg(
    rgb: &[u8],
    width: usize,
    height: usize,
    quality: u8,
    source: &Path,
) -> Result<Vec<u8>> {
    if width == 0 || height == 0 || width > 65_500 || height > 65_500 {
        return Err(Error::data(
            source,
            format!("a frame of {width}x{height} pixels cannot be a JPEG file"),
        ));
    }
    if rgb.len() != width * height * 3 {
        return Err(Error::data(
            source,
            format!(
                "a {width}x{height} RGB frame of {} bytes (expected {})",
                rgb.len(),
                width * height * 3
            ),
        ));
    }
    let stride = width * 3;
    let written = guarded(source, "encoding", || {
        let enc = OwnedEncoder::new();
        // SAFETY: libjpeg.txt's compression sequence on a created
        // compressor. Every scanline pointer points into `rgb`, which holds
        // `height` rows of `stride` bytes (checked above); libjpeg reads them.
        unsafe {
            let c = &raw mut (*enc.0).cinfo;
            (*c).image_width = width as u32;
            (*c).image_height = height as u32;
            (*c).input_components = 3;
            (*c).in_color_space = ffi::J_COLOR_SPACE::JCS_RGB;
            ffi::jpeg_set_defaults(&mut *c);
            // One sequential scan instead of the profile's progressive ones.
            (*c).num_scans = 0;
            (*c).scan_info = std::ptr::null();
            ffi::jpeg_set_quality(&mut *c, c_int::from(quality), 1);
            ffi::jpeg_start_compress(&mut *c, 1);
            while ((*c).next_scanline as usize) < height {
                let rows = [rgb.as_ptr().add((*c).next_scanline as usize * stride)];
                if ffi::jpeg_write_scanlines(&mut *c, rows.as_ptr(), 1) != 1 {
                    return None;
                }
            }
            ffi::jpeg_finish_compress(&mut *c);
            Some(std::mem::take(&mut (*enc.0).out))
        }
    })?;
    written.ok_or_else(|| Error::data(source, "JPEG encoding: a scanline was not taken"))
}

/// Appends the columns `columns` of a `width x height` JPEG frame to `out`
/// as RGB bytes: `height` rows of `columns.len() * 3` bytes. Only the
/// blocks around the window are reconstructed (see the module docs); the
/// pixels equal those of the whole frame decoded.
pub fn decode_jpeg_columns(
    bytes: &[u8],
    width: usize,
    height: usize,
    columns: Range<usize>,
    source: &Path,
    out: &mut Vec<u8>,
) -> Result<()> {
    if columns.start >= columns.end || columns.end > width {
        return Err(Error::data(
            source,
            format!("columns {columns:?} of a {width}-pixel-wide frame"),
        ));
    }
    let start = out.len();
    let got = guarded(source, "decoding", || {
        let dec = OwnedDecoder::new();
        // SAFETY: libjpeg.txt's decompression sequence on a created
        // decompressor. The memory source reads `bytes`, which outlives it.
        // Each scanline is written to `row`, which holds `output_width`
        // (after the crop) pixels of 3 bytes: libjpeg writes exactly that.
        unsafe {
            let d = &raw mut (*dec.0).cinfo;
            ffi::jpeg_mem_src(&mut *d, bytes.as_ptr(), bytes.len() as _);
            ffi::jpeg_read_header(&mut *d, 1);
            let (w, h) = ((*d).image_width as usize, (*d).image_height as usize);
            if (w, h) != (width, height) {
                return Err(format!(
                    "a JPEG frame of {w}x{h} pixels where the cache says {width}x{height}"
                ));
            }
            (*d).out_color_space = ffi::J_COLOR_SPACE::JCS_RGB;
            ffi::jpeg_start_decompress(&mut *d);
            let first = columns.start.saturating_sub(MARGIN);
            let last = (columns.end + MARGIN).min(width);
            let (mut x, mut w) = (first as u32, (last - first) as u32);
            if (x, w) != (0, width as u32) {
                ffi::jpeg_crop_scanline(&mut *d, &mut x, &mut w);
            }
            // libjpeg moved the region's start to a block boundary, `x <=
            // first`, and keeps its end: `x + output_width >= columns.end`.
            let decoded = (*d).output_width as usize * 3;
            let (skip, keep) = ((columns.start - x as usize) * 3, columns.len() * 3);
            let mut row = vec![0u8; decoded];
            out.reserve(height * keep);
            while ((*d).output_scanline as usize) < height {
                let mut rows = [row.as_mut_ptr()];
                if ffi::jpeg_read_scanlines(&mut *d, rows.as_mut_ptr(), 1) != 1 {
                    return Err("a scanline was not delivered".into());
                }
                out.extend_from_slice(&row[skip..skip + keep]);
            }
            ffi::jpeg_finish_decompress(&mut *d);
            Ok(())
        }
    })
    .and_then(|r| r.map_err(|msg| Error::data(source, msg)));
    if got.is_err() {
        out.truncate(start);
    }
    got
}

/// The RGB bytes of a whole `width x height` JPEG frame.
pub fn decode_jpeg(bytes: &[u8], width: usize, height: usize, source: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(width * height * 3);
    decode_jpeg_columns(bytes, width, height, 0..width, source, &mut out)?;
    Ok(out)
}

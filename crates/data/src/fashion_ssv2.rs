//! Fashion-SSv2 and Fashion-Kinetics: the suite's embedded video data sets,
//! the same clips written in the Something-Something v2 layout (VP9 webm,
//! SSv2 JSON) or the Kinetics-400 layout (H.264 mp4, CSV), so that the real
//! loaders read them back.
//!
//! Each video moves one real Fashion-MNIST garment (tinted in a light
//! colour) over a dark textured background, in one of [`TEMPLATES`]: pushed
//! left to right or right to left, moved up or down, approached or left by
//! the camera (growing or shrinking), turned clockwise or counterclockwise,
//! or only pretended to be pushed (it stays, trembling by a pixel). Every
//! class uses every garment, start position and colour, so a single frame
//! cannot tell the classes apart: only the order of frames can. Videos last
//! a random number of frames at 12 fps. Train videos use garments of the
//! Fashion-MNIST train split, validation videos those of the t10k split;
//! everything is a function of the seed (each video has its own generator,
//! so videos are rendered in parallel).
//!
//! Encoding goes through FFmpeg's libraries in this process
//! ([`wsbcn_video::encode`]), with the settings the `ffmpeg` tool was given
//! before (VP9 at `crf 30`, real time; H.264 `veryfast`, `crf 20`).

use crate::fashion_mnist::{FashionMnist, Split, CLASSES};
use crate::garment_canvas::{background, random_color, Garment, Placement};
use crate::{Error, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::f32::consts::PI;
use std::path::{Path, PathBuf};
use wsbcn_video::encode::{encode_video, Codec};
use wsbcn_video::ssv2::strip_template;

/// The classes, as SSv2 templates (`[something]` is the garment).
pub const TEMPLATES: [&str; 9] = [
    "Pushing [something] from left to right",
    "Pushing [something] from right to left",
    "Moving [something] up",
    "Moving [something] down",
    "Approaching [something] with your camera",
    "Moving away from [something] with your camera",
    "Turning [something] clockwise",
    "Turning [something] counterclockwise",
    "Pretending to push [something]",
];

/// What to generate.
#[derive(Clone, Debug)]
pub struct FashionSsv2Config {
    /// Side of the square frames.
    pub size: u32,
    /// Frames per video, inclusive range.
    pub frames: (usize, usize),
    /// Frame rate of the files.
    pub fps: u32,
    /// Training videos.
    pub train: usize,
    /// Validation videos.
    pub val: usize,
    /// Garment scale (28 px times this) at the start, range.
    pub scale: (f32, f32),
    /// Seed of everything.
    pub seed: u64,
}

impl Default for FashionSsv2Config {
    fn default() -> Self {
        Self {
            size: 64,
            frames: (16, 24),
            fps: 12,
            train: 1800,
            val: 270,
            scale: (0.8, 1.1),
            seed: 0,
        }
    }
}

impl FashionSsv2Config {
    /// Checks the ranges, and that a garment grown by the camera approach
    /// (up to 1.8x) still fits the frame.
    pub fn validate(&self) -> Result<()> {
        let (s0, s1) = self.scale;
        let problem = if self.size < 16 {
            Some(format!("size {} below 16", self.size))
        } else if !(2 <= self.frames.0 && self.frames.0 <= self.frames.1) {
            Some(format!("frames {:?}: need 2 <= MIN <= MAX", self.frames))
        } else if self.fps == 0 {
            Some("fps must be positive".to_string())
        } else if !(s0 > 0.0 && s0 <= s1) {
            Some(format!("scale ({s0}, {s1}): need 0 < MIN <= MAX"))
        } else if 28.0 * s1 * 1.8 > self.size as f32 {
            Some(format!(
                "scale {s1}: a garment grown to {:.0} px does not fit {} px frames",
                28.0 * s1 * 1.8,
                self.size
            ))
        } else {
            None
        };
        problem.map_or(Ok(()), |p| Err(Error::Config(format!("fashion-ssv2: {p}"))))
    }
}

/// One rendered video.
struct Clip {
    class: usize,
    garment: usize,
    /// `frames * size * size * 3` RGB bytes.
    rgb: Vec<u8>,
}

/// Renders video `i` of a split: its class cycles through the templates so
/// every split is balanced.
fn render(data: &FashionMnist, cfg: &FashionSsv2Config, salt: u64, i: usize) -> Clip {
    let mut rng = StdRng::seed_from_u64(
        cfg.seed
            .wrapping_mul(0x9E37_79B9)
            .wrapping_add(salt.wrapping_mul(1_000_003))
            .wrapping_add(i as u64),
    );
    let class = i % TEMPLATES.len();
    let n = cfg.size as usize;
    let frames = rng.random_range(cfg.frames.0..=cfg.frames.1);
    let idx = rng.random_range(0..data.len());
    let garment = Garment::new(data.image(idx), random_color(&mut rng, 0.55, 1.0));
    let ground = background(n, &mut rng);
    let scale0 = rng.random_range(cfg.scale.0..=cfg.scale.1);
    let side = n as f32;
    let box0 = 28.0 * scale0;
    // Start centre with room for the motion; travel as a fraction of the frame.
    let travel = rng.random_range(0.35..0.55f32) * side;
    let grow = rng.random_range(1.5..1.8f32);
    let turn = rng.random_range(0.5..1.0f32) * PI;
    let angle0 = rng.random_range(-0.3..0.3f32);
    let free = |extent: f32, rng: &mut StdRng| {
        let lo = extent / 2.0;
        let hi = (side - extent / 2.0).max(lo + 1e-3);
        rng.random_range(lo..hi)
    };
    let (mut cx, mut cy) = (free(box0, &mut rng), free(box0, &mut rng));
    match class {
        0 | 1 => cx = free(box0 + travel, &mut rng) - travel / 2.0,
        2 | 3 => cy = free(box0 + travel, &mut rng) - travel / 2.0,
        4 | 5 => {
            cx = free(box0 * grow, &mut rng);
            cy = free(box0 * grow, &mut rng);
        }
        _ => {}
    }
    let mut rgb = Vec::with_capacity(frames * n * n * 3);
    for f in 0..frames {
        let p = f as f32 / (frames - 1) as f32;
        let (mut x, mut y, mut scale, mut angle) = (cx, cy, scale0, angle0);
        match class {
            0 => x += p * travel,
            1 => x += (1.0 - p) * travel,
            2 => y += (1.0 - p) * travel,
            3 => y += p * travel,
            4 => scale *= 1.0 + p * (grow - 1.0),
            5 => scale *= grow - p * (grow - 1.0),
            6 => angle += p * turn,
            7 => angle -= p * turn,
            _ => {
                x += rng.random_range(-1.0..1.0f32);
                y += rng.random_range(-1.0..1.0f32);
            }
        }
        let half = 14.0 * scale;
        let at = Placement {
            x0: x - half,
            y0: y - half,
            scale,
            angle,
        };
        let mut canvas = ground.clone();
        garment.paint(&mut canvas, at, |_, _| {});
        rgb.extend(canvas.to_rgb8());
    }
    Clip {
        class,
        garment: data.labels[idx] as usize,
        rgb,
    }
}

/// The two splits: name, Fashion-MNIST split, count, seed salt.
fn splits(cfg: &FashionSsv2Config) -> [(&'static str, Split, usize, u64); 2] {
    [
        ("train", Split::Train, cfg.train, 1),
        ("validation", Split::Test, cfg.val, 2),
    ]
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::data(dir, e))
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::data(path, e))
}

/// Writes Fashion-SSv2 under `out`: `videos/<id>.webm`, `labels.json`,
/// `train.json`, `validation.json`. Video ids are `1, 2, ...` over both
/// splits. Returns `out`.
pub fn generate_ssv2(mnist_dir: &Path, out: &Path, cfg: &FashionSsv2Config) -> Result<PathBuf> {
    cfg.validate()?;
    let videos = out.join("videos");
    create_dir(&videos)?;
    let labels: serde_json::Map<String, serde_json::Value> = TEMPLATES
        .iter()
        .enumerate()
        .map(|(i, t)| (strip_template(t), i.to_string().into()))
        .collect();
    write_file(&out.join("labels.json"), &json(&labels, out)?)?;
    let mut first_id = 1;
    for (split, mnist_split, count, salt) in splits(cfg) {
        let data = FashionMnist::load(mnist_dir, mnist_split)?;
        let entries = (0..count)
            .into_par_iter()
            .map(|i| {
                let clip = render(&data, cfg, salt, i);
                let id = (first_id + i).to_string();
                encode_video(
                    &videos.join(format!("{id}.webm")),
                    &clip.rgb,
                    (cfg.size, cfg.size),
                    cfg.fps,
                    Codec::Vp9Webm,
                )?;
                let garment = CLASSES[clip.garment].to_lowercase();
                let template = TEMPLATES[clip.class];
                Ok(serde_json::json!({
                    "id": id,
                    "label": template.replace("[something]", &garment).to_lowercase(),
                    "template": template,
                    "placeholders": [garment],
                }))
            })
            .collect::<Result<Vec<_>>>()?;
        first_id += count;
        write_file(&out.join(format!("{split}.json")), &json(&entries, out)?)?;
    }
    Ok(out.to_path_buf())
}

fn json<T: serde::Serialize>(value: &T, out: &Path) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::data(out, e))
}

/// The Kinetics-style class name of a template: placeholders stripped,
/// lower case (`"pushing something from left to right"`).
pub fn kinetics_label(template: &str) -> String {
    strip_template(template).to_lowercase()
}

/// Writes Fashion-Kinetics under `out`: `train.csv`, `val.csv` and
/// `<split>/<label>/<youtube_id>_<start:06>_<end:06>.mp4`, the same clips as
/// [`generate_ssv2`] with the same config. Returns `out`.
pub fn generate_kinetics(mnist_dir: &Path, out: &Path, cfg: &FashionSsv2Config) -> Result<PathBuf> {
    cfg.validate()?;
    const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (split, mnist_split, count, salt) in splits(cfg) {
        let split = if split == "validation" { "val" } else { split };
        let data = FashionMnist::load(mnist_dir, mnist_split)?;
        let rows = (0..count)
            .into_par_iter()
            .map(|i| {
                let clip = render(&data, cfg, salt, i);
                // A YouTube-like id and clip times, from the video's own seed.
                let mut rng = StdRng::seed_from_u64(cfg.seed ^ (salt << 32) ^ i as u64);
                let id: String = (0..11)
                    .map(|_| ID_CHARS[rng.random_range(0..ID_CHARS.len())] as char)
                    .collect();
                let start = rng.random_range(0..300u32);
                let end = start + 10;
                let label = kinetics_label(TEMPLATES[clip.class]);
                let dir = out.join(split).join(&label);
                create_dir(&dir)?;
                encode_video(
                    &dir.join(format!("{id}_{start:06}_{end:06}.mp4")),
                    &clip.rgb,
                    (cfg.size, cfg.size),
                    cfg.fps,
                    Codec::H264Mp4,
                )?;
                Ok(format!("{label},{id},{start},{end},{split}\n"))
            })
            .collect::<Result<Vec<_>>>()?;
        let csv = std::iter::once("label,youtube_id,time_start,time_end,split\n".to_string())
            .chain(rows)
            .collect::<String>();
        write_file(&out.join(format!("{split}.csv")), &csv)?;
    }
    Ok(out.to_path_buf())
}

//! Which frames of a video make a clip, as mmaction2's `SampleFrames`.
//!
//! * [`Sampler::Segments`] (TSN/TSM): the video is split into `num_segments`
//!   equal segments of `avg = F / S` frames and one frame is taken from each,
//!   at a uniformly random offset in training and at the segment's centre in
//!   testing: `i avg + r`, `r ~ U[0, avg)` or `r = avg / 2`. A video shorter
//!   than `S` frames repeats frames (`floor(i F / S)`).
//! * [`Sampler::Dense`] (C3D, I3D, R(2+1)D): `num_clips` clips of `clip_len`
//!   frames `frame_interval` apart (span `s = clip_len * frame_interval`).
//!   Testing spreads the clips evenly, `base_k = floor(k a + a / 2)` with
//!   `a = (F - s + 1) / num_clips`; training takes `k floor(a) + U{0..floor(a)}`,
//!   random sorted starts when there are fewer start positions than clips,
//!   and 0 when the video is shorter than the span. Indices past the end
//!   loop (`mod F`).
//!
//! Indices are returned in clip order (all of clip 0, then clip 1, ...).

use crate::{Error, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// A frame sampling strategy.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sampler {
    /// One frame from each of `num_segments` equal segments (TSN, TSM).
    Segments {
        /// Frames per clip.
        num_segments: usize,
    },
    /// Clips of consecutive frames at a fixed interval.
    Dense {
        /// Frames per clip.
        clip_len: usize,
        /// Step between sampled frames.
        frame_interval: usize,
        /// Clips per video (1 in training; 10 for multi-view testing).
        num_clips: usize,
    },
}

impl Sampler {
    /// Checks that every count is positive.
    pub fn validate(&self) -> Result<()> {
        let ok = match *self {
            Sampler::Segments { num_segments } => num_segments > 0,
            Sampler::Dense {
                clip_len,
                frame_interval,
                num_clips,
            } => clip_len > 0 && frame_interval > 0 && num_clips > 0,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "sampler {self:?}: every count must be positive"
            )))
        }
    }

    /// Frames per clip.
    pub fn clip_len(&self) -> usize {
        match *self {
            Sampler::Segments { num_segments } => num_segments,
            Sampler::Dense { clip_len, .. } => clip_len,
        }
    }

    /// Clips per video.
    pub fn num_clips(&self) -> usize {
        match *self {
            Sampler::Segments { .. } => 1,
            Sampler::Dense { num_clips, .. } => num_clips,
        }
    }

    /// The frame indices for a video of `frames` frames: random offsets
    /// with `Some(rng)` (training), centred ones with `None` (testing).
    pub fn indices<R: Rng>(&self, frames: usize, rng: Option<&mut R>) -> Result<Vec<usize>> {
        self.validate()?;
        if frames == 0 {
            return Err(Error::Config(
                "cannot sample frames from an empty video".into(),
            ));
        }
        Ok(match *self {
            Sampler::Segments { num_segments } => segments(frames, num_segments, rng),
            Sampler::Dense {
                clip_len,
                frame_interval,
                num_clips,
            } => {
                let span = clip_len * frame_interval;
                dense_offsets(frames, span, num_clips, rng)
                    .into_iter()
                    .flat_map(|base| {
                        (0..clip_len).map(move |j| (base + j * frame_interval) % frames)
                    })
                    .collect()
            }
        })
    }
}

impl Sampler {
    /// Test-time indices of `views` temporal views, one `Vec` per view:
    /// dense sampling with `num_clips = views`, or segment sampling at
    /// offset `(k + 1/2) / views` of every segment for view `k`.
    pub fn test_views(&self, frames: usize, views: usize) -> Result<Vec<Vec<usize>>> {
        self.validate()?;
        if frames == 0 || views == 0 {
            return Err(Error::Config(format!(
                "{views} views of a {frames}-frame video"
            )));
        }
        Ok(match *self {
            Sampler::Segments { num_segments } => (0..views)
                .map(|k| {
                    if frames < num_segments {
                        return segments::<rand::rngs::StdRng>(frames, num_segments, None);
                    }
                    let avg = frames as f64 / num_segments as f64;
                    let r = avg * (k as f64 + 0.5) / views as f64;
                    (0..num_segments)
                        .map(|i| ((i as f64 * avg + r) as usize).min(frames - 1))
                        .collect()
                })
                .collect(),
            Sampler::Dense {
                clip_len,
                frame_interval,
                ..
            } => {
                let all = Sampler::Dense {
                    clip_len,
                    frame_interval,
                    num_clips: views,
                }
                .indices::<rand::rngs::StdRng>(frames, None)?;
                all.chunks(clip_len).map(<[usize]>::to_vec).collect()
            }
        })
    }
}

fn segments<R: Rng>(frames: usize, num_segments: usize, rng: Option<&mut R>) -> Vec<usize> {
    if frames < num_segments {
        return (0..num_segments)
            .map(|i| i * frames / num_segments)
            .collect();
    }
    let avg = frames as f64 / num_segments as f64;
    let offsets: Vec<f64> = match rng {
        Some(rng) => (0..num_segments)
            .map(|_| rng.random::<f64>() * avg)
            .collect(),
        None => vec![avg / 2.0; num_segments],
    };
    offsets
        .into_iter()
        .enumerate()
        .map(|(i, r)| ((i as f64 * avg + r) as usize).min(frames - 1))
        .collect()
}

fn dense_offsets<R: Rng>(
    frames: usize,
    span: usize,
    num_clips: usize,
    rng: Option<&mut R>,
) -> Vec<usize> {
    // Start positions that keep the span inside the video (may be <= 0).
    let starts = frames as i64 - span as i64 + 1;
    let Some(rng) = rng else {
        if starts <= 0 {
            return vec![0; num_clips];
        }
        let a = starts as f64 / num_clips as f64;
        return (0..num_clips)
            .map(|k| (k as f64 * a + a / 2.0) as usize)
            .collect();
    };
    let a = starts.max(0) as usize / num_clips;
    if a > 0 {
        (0..num_clips)
            .map(|k| k * a + rng.random_range(0..a))
            .collect()
    } else if frames > num_clips.max(span) {
        // Fewer start positions than clips: random sorted starts.
        let mut v: Vec<usize> = (0..num_clips)
            .map(|_| rng.random_range(0..starts as usize))
            .collect();
        v.sort_unstable();
        v
    } else if starts > 0 {
        let ratio = starts as f64 / num_clips as f64;
        (0..num_clips)
            .map(|k| (k as f64 * ratio).round() as usize)
            .collect()
    } else {
        vec![0; num_clips]
    }
}

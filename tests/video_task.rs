//! The video task on a generated Fashion-SSv2 tree: the clip data set from
//! a cache and from files (skipping a bad video), and a short training run
//! that resumes.

use rand::{rngs::StdRng, SeedableRng};
use std::path::PathBuf;
use wsbcn_tests::{tiny_fashion_ssv2, tiny_video_sections};
use wsbcn_train::{Dataset, Loader, Trainer};
use wsbcn_video::clip_data::ClipSet;
use wsbcn_video::clip_transform::ClipAugment;
use wsbcn_video::task::{VideoConfig, VideoTask};
use wsbcn_video::{build_cache, CacheOptions, FrameFormat, Sampler, VideoSource};

fn fresh_dir(name: &str) -> PathBuf {
    wsbcn_testkit::fresh_dir("vrun", name)
}

#[test]
fn clip_sets_read_the_same_clips_from_cache_and_files_and_skip_bad_videos() {
    let d = fresh_dir("clipset");
    let root = tiny_fashion_ssv2(&d);
    let list = VideoSource::ssv2_dir(&root, "train").read().unwrap();
    let cache = d.join("train.h5");
    // Raw frames: the clips from the cache equal those from the files.
    let raw = CacheOptions {
        format: FrameFormat::Raw,
        ..CacheOptions::new(40)
    };
    build_cache(&list, &cache, &raw, |_, _| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    let sampler = Sampler::Segments { num_segments: 4 };
    let aug = ClipAugment {
        crop: 32,
        ..ClipAugment::default()
    };
    let from_cache = ClipSet::from_cache(
        wsbcn_video::ClipCache::open(&cache).unwrap(),
        sampler,
        aug.clone(),
        false,
    )
    .unwrap();
    let from_files = ClipSet::from_files(list.clone(), 40, sampler, aug.clone(), false).unwrap();
    for v in [0, 4, 8] {
        let a = from_cache
            .train_sample(v, &mut StdRng::seed_from_u64(v as u64))
            .unwrap();
        let b = from_files
            .train_sample(v, &mut StdRng::seed_from_u64(v as u64))
            .unwrap();
        assert_eq!((a.t, a.side, a.data.len()), (4, 32, 3 * 4 * 32 * 32));
        assert_eq!(a, b, "video {v}: cache and files differ");
        let views = from_cache.test_views(v, 2, 3).unwrap();
        assert_eq!(views.len(), 6);
    }

    // A damaged second video: skipped (once logged, counted) with
    // skip_bad, an error naming it without.
    let mut bad = list.clone();
    std::fs::write(d.join("bad.webm"), "not a video").unwrap();
    bad.records[1].path = d.join("bad.webm");
    let strict = ClipSet::from_files(bad.clone(), 40, sampler, aug.clone(), false).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let e = strict.train_sample(1, &mut rng).unwrap_err().to_string();
    assert!(e.contains("bad.webm"), "{e}");
    let lenient = ClipSet::from_files(bad, 40, sampler, aug, true).unwrap();
    let got = lenient.get(1, &mut rng).unwrap();
    assert_eq!(got.label, list.records[2].label, "video 2 stands in for 1");
    lenient.get(1, &mut rng).unwrap();
    assert_eq!(lenient.skipped(), 1);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_short_video_run_trains_evaluates_and_resumes_where_it_stopped() {
    let d = fresh_dir("run");
    let root = tiny_fashion_ssv2(&d);
    let sampler = r#"{ kind = "dense", clip_len = 4, frame_interval = 1, num_clips = 1 }"#;
    let text = format!(
        r#"{}
        [train]
        steps = 4
        eval_interval = 2
        checkpoint_interval = 2
        diag_interval = 0
        [train.data]
        batch_size = 2
        workers = 1
        "#,
        tiny_video_sections(&root, sampler)
    );
    let cfg: VideoConfig = wsbcn_train::parse_config(&text, "test.toml", &[]).unwrap();
    let run = |stop: Option<u64>| {
        let mut task = VideoTask::new(&cfg, &candle_core::Device::Cpu).unwrap();
        let loader = Loader::new(task.train_set().unwrap(), cfg.train.data.clone(), 0).unwrap();
        let mut trainer = Trainer::new(cfg.train.clone(), &d.join("run"));
        if let Some(s) = stop {
            trainer = trainer.stop_after(s);
        }
        trainer.run(&mut task, &loader).unwrap()
    };
    run(Some(2));
    let summary = run(None);
    // Batched evaluation (6 views per video, two videos per pass of up to
    // 16) scores every video as one video per pass does.
    let task = VideoTask::new(&cfg, &candle_core::Device::Cpu).unwrap();
    let (one, batched) = (
        task.scores(2, 3, 1).unwrap().0,
        task.scores(2, 3, 16).unwrap().0,
    );
    assert_eq!(one.len(), batched.len());
    for ((a, la), (b, lb)) in one.iter().zip(&batched) {
        assert_eq!(la, lb);
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} against {b:?}");
        }
    }
    let log = wsbcn_train::RunLog::read(&summary.log).unwrap();
    let top1 = log.eval("top1").unwrap();
    assert_eq!(top1.len(), 2, "evaluations at steps 2 and 4");
    assert!(top1.iter().all(|a| (0.0..=1.0).contains(a)));
    assert_eq!(log.eval("skipped_videos").unwrap(), [0.0, 0.0]);
    let _ = std::fs::remove_dir_all(&d);
}

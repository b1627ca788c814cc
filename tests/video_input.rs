//! Video Input mode: a short generated video in, the same number of frames out, in order.

use std::path::Path;
use std::process::Command;

fn make_video(dir: &Path, frames: usize) -> std::path::PathBuf {
    let mut paths = Vec::new();
    for k in 0..frames {
        let img = image::RgbImage::from_pixel(
            64,
            48,
            image::Rgb([(k * 20) as u8, 60, 200 - (k * 10) as u8]),
        );
        let p = dir.join(format!("src{k:03}.png"));
        img.save(&p).unwrap();
        paths.push(p);
    }
    let video = dir.join("input.mp4");
    let settings = anim::output::VideoSettings::h264(12.0, 10, "fast");
    anim::output::encode_mp4(&paths, &video, &settings).unwrap();
    video
}

fn mean_red(p: &Path) -> f64 {
    let img = image::open(p).unwrap().to_rgb8();
    img.pixels().map(|p| p.0[0] as f64).sum::<f64>() / (img.width() * img.height()) as f64
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_anim"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn video_frames_in_order_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let video = make_video(dir.path(), 12);
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-sd");
    let scene = dir.path().join("scene.toml");
    std::fs::write(
        &scene,
        format!(
            "[image]\nwidth = 64\nheight = 48\n[animation]\nmode = \"Video Input\"\nmax_frames = 99\n\
             [video_input]\nvideo_init_path = \"{}\"\nextract_nth_frame = 2\nextract_from_frame = 1\n\
             [generation]\nseed = 3\nsteps = 4\nstrength = \"0:(0.9)\"\n[model]\nfolder = \"{}\"\n",
            video.display(),
            model.display()
        ),
    )
    .unwrap();
    // preview: the extracted frames themselves, 1, 3, 5, 7, 9, 11 -> 6 frames
    let out = dir.path().join("preview");
    let o = run(&[
        "preview",
        scene.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reds: Vec<f64> = (0..6)
        .map(|i| mean_red(&out.join(format!("frames/{i:06}.png"))))
        .collect();
    assert!(!out.join("frames/000006.png").exists());
    for (i, r) in reds.iter().enumerate() {
        let want = ((2 * i + 1) * 20) as f64;
        assert!(
            (r - want).abs() < 6.0,
            "frame {i}: red {r}, want about {want} ({reds:?})"
        );
    }
    assert_eq!(
        anim::output::probe_video(&out.join("video.mp4"))
            .unwrap()
            .frames,
        6
    );
    // render: each video frame img2img'd, same count
    let out = dir.path().join("render");
    let o = run(&[
        "render",
        scene.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        anim::output::probe_video(&out.join("video.mp4"))
            .unwrap()
            .frames,
        6
    );
    // a missing video is a clear error
    std::fs::write(
        &scene,
        std::fs::read_to_string(&scene)
            .unwrap()
            .replace("input.mp4", "missing.mp4"),
    )
    .unwrap();
    let o = run(&[
        "preview",
        scene.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("missing.mp4"));
}

#[test]
fn video_input_colour_coherence_and_motion_on_top() {
    let dir = tempfile::tempdir().unwrap();
    // a red video: colour coherence against it makes the 2D animation red
    let mut paths = Vec::new();
    for k in 0..6 {
        let p = dir.path().join(format!("r{k}.png"));
        image::RgbImage::from_pixel(64, 64, image::Rgb([200 + 5 * k as u8, 30, 40]))
            .save(&p)
            .unwrap();
        paths.push(p);
    }
    let video = dir.path().join("red.mp4");
    anim::output::encode_mp4(
        &paths,
        &video,
        &anim::output::VideoSettings::h264(6.0, 10, "fast"),
    )
    .unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-sd");
    let scene = dir.path().join("scene.toml");
    std::fs::write(
        &scene,
        format!(
            "[image]\nwidth = 64\nheight = 64\n[animation]\nmax_frames = 4\n[generation]\nseed = 3\nsteps = 4\n\
             [coherence]\ncolor_coherence = \"Video Input\"\ncolor_coherence_video_every_N_frames = 2\n\
             [video_input]\nvideo_init_path = \"{}\"\n[model]\nfolder = \"{}\"\n[output]\nvideo = false\n",
            video.display(),
            model.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = run(&[
        "render",
        scene.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = image::open(out.join("frames/000003.png"))
        .unwrap()
        .to_rgb8();
    let mean = |c: usize| img.pixels().map(|p| p.0[c] as f64).sum::<f64>() / 4096.0;
    assert!(
        mean(0) > mean(2) + 60.0,
        "frame 3 is not matched to the red video: R {} B {}",
        mean(0),
        mean(2)
    );

    // Video Input mode with the camera on top: frames are the video frames, moved
    let scene2 = dir.path().join("scene2.toml");
    std::fs::write(
        &scene2,
        format!(
            "[image]\nwidth = 64\nheight = 64\n[animation]\nmode = \"Video Input\"\n[motion]\ntranslation_x = 8\n\
             [video_input]\nvideo_init_path = \"{}\"\nmotion = true\n[output]\nvideo = false\n",
            video.display()
        ),
    )
    .unwrap();
    let o = run(&[
        "preview",
        scene2.to_str().unwrap(),
        "--out",
        dir.path().join("p").to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_dir(dir.path().join("p/frames"))
            .unwrap()
            .count(),
        6
    );
}

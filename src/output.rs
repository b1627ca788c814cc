//! Output: frames as PNG files written atomically, and videos (H.264/H.265 mp4, VP9 webm, gif)
//! encoded in-process with FFmpeg (ffmpeg-next), frame by frame and, during a render, on a thread
//! of their own ([`BackgroundVideo`]); subtitle streams in mp4 files ([`mov_text`]).

pub mod mov_text;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use ffmpeg_next as ffmpeg;
use image::RgbImage;

/// `OUT/frames/NNNNNN.png`.
pub fn frame_path(out: &Path, index: usize) -> PathBuf {
    out.join("frames").join(format!("{index:06}.png"))
}

/// Test hook for kills inside a write: with `ANIM_HALT_IN_WRITE=NAME` (or `NAME#N`, its N-th
/// write) in the environment, writing a file named NAME (`000003.png`, `state.json`,
/// `video.mp4`, …) stands still once its temporary file is complete, before the rename, until
/// the process is killed.
fn halt_in_write(path: &Path) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SPEC: std::sync::OnceLock<Option<(String, usize)>> = std::sync::OnceLock::new();
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    let spec = SPEC.get_or_init(|| {
        let v = std::env::var("ANIM_HALT_IN_WRITE").ok()?;
        Some(match v.split_once('#') {
            Some((name, n)) => (name.to_string(), n.parse().ok()?),
            None => (v, 1),
        })
    });
    if let Some((name, n)) = spec
        && path.file_name().is_some_and(|f| f == name.as_str())
        && SEEN.fetch_add(1, Ordering::SeqCst) + 1 == *n
    {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}

/// Writes `path` through `write` into a temporary file in the same folder (`<name>.tmp`), then
/// renames it into place, so a killed process never leaves a half-written file.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<()>,
) -> Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create folder {}", dir.display()))?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let written = write(&mut out)
        .and_then(|()| out.flush().map_err(Into::into))
        .with_context(|| format!("cannot write {}", tmp.display()));
    drop(out);
    if written.is_ok() {
        halt_in_write(path);
    }
    let done = written.and_then(|()| {
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot move {} into place", path.display()))
    });
    if done.is_err() {
        // a full disk or a write error: leave no partial file behind
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// Creates the output folder `dir` and checks, before any work, that anim can write there and
/// that nothing it writes leaves it: a probe file is written and removed, and no entry of the
/// folder or of its sub-folders is a symbolic link (through which a frame, the video or the
/// state would be written elsewhere).
///
/// # Errors
/// A folder that cannot be created or written (read-only, no permission), or a symbolic link in
/// it, naming the path and what to do.
pub fn prepare_folder(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the output folder {}", dir.display()))?;
    // one probe name per process and call: parts of one scene rendered at once on a farm share
    // the output folder, and a shared name would let one remove another's probe
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = dir.join(format!(".anim-write-probe-{}-{n}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .with_context(|| {
            format!(
                "the output folder {} is not writable; choose another with --out DIR",
                dir.display()
            )
        })?;
    let links = |d: &Path| -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(d) {
            // another render sharing the folder (a farm part) removed it meanwhile
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && d != dir => return Ok(out),
            r => r.with_context(|| format!("cannot list {}", d.display()))?,
        };
        for e in entries {
            let e = e?;
            if e.file_type()?.is_symlink() {
                out.push(e.path());
            }
        }
        Ok(out)
    };
    let mut found = links(dir)?;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            found.extend(links(&e.path())?);
        }
    }
    if let Some(l) = found.first() {
        bail!(
            "{} is a symbolic link (to {}); anim writes only below the output folder {}: remove the link",
            l.display(),
            std::fs::read_link(l).unwrap_or_default().display(),
            dir.display()
        );
    }
    Ok(())
}

/// Writes a PNG with [`write_atomic`], so a killed process never leaves a half-written frame.
pub fn write_png_atomic(path: &Path, img: &RgbImage) -> Result<()> {
    write_atomic(path, |w| {
        img.write_to(w, image::ImageFormat::Png)?;
        Ok(())
    })
}

/// Reads an image file as RGB8, naming the file on failure.
pub fn read_rgb(path: &Path) -> Result<RgbImage> {
    if !path.is_file() {
        bail!("image {} does not exist", path.display());
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    // a cut JPEG decodes "successfully" into grey: its end marker (FF D9, which the compressed
    // data cannot contain) tells it from a whole file
    if bytes.starts_with(&[0xFF, 0xD8]) && !bytes.windows(2).any(|w| w == [0xFF, 0xD9]) {
        bail!(
            "image {} is a JPEG without its end marker: the file is cut short (copy it again)",
            path.display()
        );
    }
    let img = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(anyhow::Error::from)
        .and_then(|r| r.decode().map_err(anyhow::Error::from))
        .with_context(|| {
            format!(
                "cannot read image {} (PNG, JPEG, WebP, BMP or TIFF expected)",
                path.display()
            )
        })?;
    Ok(img.to_rgb8())
}

/// Video encoding settings.
#[derive(Debug, Clone)]
pub struct VideoSettings {
    /// Frames per second.
    pub fps: f64,
    /// Constant rate factor (x264/x265/VP9).
    pub crf: u32,
    /// Encoder preset (x264/x265).
    pub preset: String,
    /// Encoder name: `libx264` (default), `libx265`, `libvpx-vp9`, `gif`.
    pub codec: String,
    /// Pixel format name, e.g. `yuv420p` (the default), `yuv444p`.
    pub pixel_format: String,
}

impl VideoSettings {
    /// H.264, yuv420p, at `fps`, CRF and preset as given.
    pub fn h264(fps: f64, crf: u32, preset: &str) -> VideoSettings {
        VideoSettings {
            fps,
            crf,
            preset: preset.into(),
            codec: "libx264".into(),
            pixel_format: "yuv420p".into(),
        }
    }
}

/// `path`, if FFmpeg can be given it: ffmpeg-next passes paths as UTF-8 text (and panics on
/// others), so a path that is not UTF-8 is an error here.
fn ffmpeg_path(path: &Path) -> Result<&Path> {
    if path.to_str().is_none() {
        bail!(
            "{}: FFmpeg opens only paths that are UTF-8 text; rename the file or folder (or \
             choose another with --out DIR)",
            path.display()
        );
    }
    Ok(path)
}

/// Whether FFmpeg can write or read `path` (it must be UTF-8 text), so a render refuses a video
/// it could not write before frame 0.
///
/// # Errors
/// A path that is not UTF-8, naming it.
pub fn check_ffmpeg_path(path: &Path) -> Result<()> {
    ffmpeg_path(path).map(|_| ())
}

fn init_ffmpeg() -> Result<()> {
    ffmpeg::init().map_err(|e| anyhow!("cannot initialise FFmpeg: {e}"))?;
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
    Ok(())
}

/// Encodes `frames` (all the same size) into a video; the container follows the file extension
/// (`.mp4` with `+faststart`, `.webm`, `.gif`), the codec and pixel format the settings.
pub fn encode_mp4(frames: &[PathBuf], out: &Path, settings: &VideoSettings) -> Result<()> {
    let first = frames
        .first()
        .ok_or_else(|| anyhow!("no frames to encode"))?;
    let first_img = read_rgb(first)?;
    let mut video = VideoWriter::create(out, settings, first_img.width(), first_img.height())?;
    video.push(&first_img)?;
    for path in &frames[1..] {
        video
            .push(&read_rgb(path)?)
            .with_context(|| path.display().to_string())?;
    }
    video.finish()
}

/// A video written frame by frame into `OUT.tmp`, moved into place by [`VideoWriter::finish`];
/// dropped unfinished, it removes the temporary file.
pub struct VideoWriter {
    octx: ffmpeg::format::context::Output,
    enc: ffmpeg::encoder::Video,
    scaler: ffmpeg::software::scaling::Context,
    rgb: ffmpeg::frame::Video,
    yuv: ffmpeg::frame::Video,
    ost_index: usize,
    time_base: ffmpeg::Rational,
    stream_tb: ffmpeg::Rational,
    frames: i64,
    tmp: PathBuf,
    out: PathBuf,
    finished: bool,
}

impl VideoWriter {
    /// Opens the encoder for `width`x`height` frames (both even) and writes the header; the
    /// container follows the extension of `out` (`.mp4` with `+faststart`, `.webm`, `.gif`).
    ///
    /// # Errors
    /// An odd size, an encoder or pixel format this FFmpeg lacks, a file that cannot be created.
    pub fn create(
        out: &Path,
        settings: &VideoSettings,
        width: u32,
        height: u32,
    ) -> Result<VideoWriter> {
        init_ffmpeg()?;
        let (w, h) = (width, height);
        if w % 2 != 0 || h % 2 != 0 {
            bail!("video encoding needs an even frame size, got {w}x{h}");
        }
        let container = match out.extension().and_then(|e| e.to_str()) {
            Some("webm") => "webm",
            Some("gif") => "gif",
            _ => "mp4",
        };
        let tmp = out.with_extension(format!("{container}.tmp"));
        let mut octx = ffmpeg::format::output_as(ffmpeg_path(&tmp)?, container)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let codec = ffmpeg::encoder::find_by_name(&settings.codec).ok_or_else(|| {
            anyhow!(
                "this FFmpeg has no encoder `{}` (try libx264, libx265, libvpx-vp9 or gif)",
                settings.codec
            )
        })?;
        let pix: ffmpeg::format::Pixel = settings.pixel_format.parse().map_err(|_| {
            anyhow!(
                "unknown pixel format `{}` (e.g. yuv420p, yuv444p)",
                settings.pixel_format
            )
        })?;
        let x26x = settings.codec.starts_with("libx26");
        let global_header = octx
            .format()
            .flags()
            .contains(ffmpeg::format::Flags::GLOBAL_HEADER);
        let mut ost = octx.add_stream(codec)?;
        let ost_index = ost.index();
        let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()?;
        let rate = ffmpeg::Rational::from(settings.fps);
        let time_base = rate.invert();
        enc.set_width(w);
        enc.set_height(h);
        enc.set_format(pix);
        enc.set_frame_rate(Some(rate));
        enc.set_time_base(time_base);
        if global_header {
            enc.set_flags(ffmpeg::codec::Flags::GLOBAL_HEADER);
        }
        let mut opts = ffmpeg::Dictionary::new();
        if x26x || settings.codec == "libvpx-vp9" {
            opts.set("crf", &settings.crf.to_string());
        }
        if x26x {
            opts.set("preset", &settings.preset);
        }
        if settings.codec == "libvpx-vp9" {
            opts.set("b", "0");
            opts.set("row-mt", "1");
        }
        let enc = enc
            .open_with(opts)
            .with_context(|| format!("cannot open the {} encoder", settings.codec))?;
        ost.set_parameters(&enc);
        ost.set_time_base(time_base);
        ost.set_avg_frame_rate(rate);
        let mut header_opts = ffmpeg::Dictionary::new();
        // no random segment id (webm) or version strings: the same frames give the same file
        header_opts.set("fflags", "+bitexact");
        if container == "mp4" {
            header_opts.set("movflags", "+faststart");
        }
        octx.write_header_with(header_opts)
            .with_context(|| format!("cannot write the header of {}", tmp.display()))?;
        let stream_tb = octx
            .stream(ost_index)
            .map(|s| s.time_base())
            .unwrap_or(time_base);
        let scaler = ffmpeg::software::scaling::Context::get(
            ffmpeg::format::Pixel::RGB24,
            w,
            h,
            pix,
            w,
            h,
            ffmpeg::software::scaling::Flags::BILINEAR
                | ffmpeg::software::scaling::Flags::ACCURATE_RND
                | ffmpeg::software::scaling::Flags::FULL_CHR_H_INT,
        )?;
        Ok(VideoWriter {
            octx,
            enc,
            scaler,
            rgb: ffmpeg::frame::Video::new(ffmpeg::format::Pixel::RGB24, w, h),
            yuv: ffmpeg::frame::Video::new(pix, w, h),
            ost_index,
            time_base,
            stream_tb,
            frames: 0,
            tmp,
            out: out.to_path_buf(),
            finished: false,
        })
    }

    /// Encodes the next frame.
    ///
    /// # Errors
    /// A frame of another size than the video's, or an encoder or write failure.
    pub fn push(&mut self, img: &RgbImage) -> Result<()> {
        let (w, h) = (self.rgb.width(), self.rgb.height());
        if img.dimensions() != (w, h) {
            bail!(
                "a {}x{} frame for a {w}x{h} video",
                img.width(),
                img.height()
            );
        }
        let stride = self.rgb.stride(0);
        let row = w as usize * 3;
        let data = self.rgb.data_mut(0);
        for y in 0..h as usize {
            data[y * stride..y * stride + row]
                .copy_from_slice(&img.as_raw()[y * row..(y + 1) * row]);
        }
        self.scaler.run(&self.rgb, &mut self.yuv)?;
        self.yuv.set_pts(Some(self.frames));
        self.frames += 1;
        self.enc.send_frame(&self.yuv)?;
        self.drain()
    }

    fn drain(&mut self) -> Result<()> {
        let mut pkt = ffmpeg::Packet::empty();
        while self.enc.receive_packet(&mut pkt).is_ok() {
            if pkt.duration() == 0 {
                pkt.set_duration(1);
            }
            pkt.set_stream(self.ost_index);
            pkt.rescale_ts(self.time_base, self.stream_tb);
            pkt.write_interleaved(&mut self.octx)?;
        }
        Ok(())
    }

    /// Flushes the encoder, writes the trailer and moves the file into place.
    ///
    /// # Errors
    /// An encoder or write failure.
    pub fn finish(mut self) -> Result<()> {
        self.enc.send_eof()?;
        self.drain()?;
        self.octx.write_trailer()?;
        self.finished = true;
        halt_in_write(&self.out);
        std::fs::rename(&self.tmp, &self.out)
            .with_context(|| format!("cannot move {} into place", self.out.display()))
    }
}

impl Drop for VideoWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Videos encoded on a thread of their own from frame files as a render writes them, so the
/// encoding overlaps the work on the next frames. Every video gets every frame, in the order
/// queued; the result is the same file [`encode_mp4`] makes from the same frames. Dropped without
/// [`BackgroundVideo::finish`], it stops and leaves no video behind.
pub struct BackgroundVideo {
    tx: Option<std::sync::mpsc::Sender<VideoMsg>>,
    handle: Option<std::thread::JoinHandle<Result<()>>>,
    /// Set when dropped unfinished: the thread stops without encoding what is still queued.
    abandon: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// What the encoding thread of a [`BackgroundVideo`] is sent.
enum VideoMsg {
    /// A frame file to read and encode.
    File(PathBuf),
    /// A frame already in memory (the one just written), named by its file for messages.
    Image(RgbImage, PathBuf),
    /// No more frames: finish the videos.
    Finish,
}

impl BackgroundVideo {
    /// Starts the encoding thread for `videos` (each a file and its settings).
    pub fn start(videos: Vec<(PathBuf, VideoSettings)>) -> BackgroundVideo {
        let (tx, rx) = std::sync::mpsc::channel::<VideoMsg>();
        let abandon = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = abandon.clone();
        let handle = std::thread::spawn(move || -> Result<()> {
            let mut writers: Vec<VideoWriter> = Vec::new();
            while let Ok(msg) = rx.recv() {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let (img, path) = match msg {
                    VideoMsg::Finish => {
                        if writers.is_empty() {
                            bail!("no frames to encode");
                        }
                        for (w, (out, _)) in writers.into_iter().zip(&videos) {
                            w.finish()
                                .with_context(|| format!("encoding {}", out.display()))?;
                        }
                        return Ok(());
                    }
                    VideoMsg::File(path) => (read_rgb(&path)?, path),
                    VideoMsg::Image(img, path) => (img, path),
                };
                if writers.is_empty() {
                    for (out, settings) in &videos {
                        writers.push(
                            VideoWriter::create(out, settings, img.width(), img.height())
                                .with_context(|| format!("encoding {}", out.display()))?,
                        );
                    }
                }
                for (w, (out, _)) in writers.iter_mut().zip(&videos) {
                    w.push(&img).with_context(|| {
                        format!("encoding {} ({})", out.display(), path.display())
                    })?;
                }
            }
            // the sender went away without asking to finish: abandoned, the writers clean up
            Ok(())
        });
        BackgroundVideo {
            tx: Some(tx),
            handle: Some(handle),
            abandon,
        }
    }

    /// Queues the next frame file. After a failure of the thread this does nothing;
    /// [`BackgroundVideo::finish`] reports it.
    pub fn push(&mut self, frame: PathBuf) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(VideoMsg::File(frame));
        }
    }

    /// Queues the next frame as the picture `img` just written to `frame` (the same pixels the
    /// file decodes to, without reading it back). As [`BackgroundVideo::push`] otherwise.
    pub fn push_image(&mut self, img: RgbImage, frame: PathBuf) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(VideoMsg::Image(img, frame));
        }
    }

    /// Waits for the queued frames, finishes the videos and moves them into place.
    ///
    /// # Errors
    /// The first failure of the encoding thread (unreadable frame, encoder or write error).
    pub fn finish(mut self) -> Result<()> {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(VideoMsg::Finish);
        }
        match self.handle.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => bail!("the video encoding thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for BackgroundVideo {
    fn drop(&mut self) {
        self.abandon
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What a video file holds, found by decoding it.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Frames decoded.
    pub frames: usize,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Codec name.
    pub codec: String,
    /// Pixel format name.
    pub pixel_format: String,
    /// Frame rate of the stream.
    pub fps: f64,
}

/// Decodes every frame of the first video stream of `path`.
pub fn probe_video(path: &Path) -> Result<VideoInfo> {
    init_ffmpeg()?;
    let mut ictx = ffmpeg::format::input(ffmpeg_path(path)?)
        .with_context(|| format!("cannot open video {}", path.display()))?;
    let stream = ictx
        .streams()
        .best(ffmpeg::media::Type::Video)
        .ok_or_else(|| anyhow!("{} has no video stream", path.display()))?;
    let index = stream.index();
    let rate = stream.avg_frame_rate();
    let fps = if rate.denominator() != 0 {
        rate.numerator() as f64 / rate.denominator() as f64
    } else {
        0.0
    };
    let mut dec = ffmpeg::codec::context::Context::from_parameters(stream.parameters())?
        .decoder()
        .video()?;
    let codec = dec
        .codec()
        .map(|c| c.name().to_string())
        .unwrap_or_default();
    let pixel_format = format!("{:?}", dec.format()).to_lowercase();
    let (width, height) = (dec.width(), dec.height());
    let mut frames = 0;
    let mut frame = ffmpeg::frame::Video::empty();
    for (s, pkt) in ictx.packets() {
        if s.index() == index {
            dec.send_packet(&pkt).with_context(|| {
                format!(
                    "{}: cannot decode the video after frame {frames}; a damaged or cut file?",
                    path.display()
                )
            })?;
            while dec.receive_frame(&mut frame).is_ok() {
                frames += 1;
            }
        }
    }
    dec.send_eof()?;
    while dec.receive_frame(&mut frame).is_ok() {
        frames += 1;
    }
    Ok(VideoInfo {
        frames,
        width,
        height,
        codec,
        pixel_format,
        fps,
    })
}

/// The audio codecs [`mux_soundtrack`] copies into an mp4 as they are; others are re-encoded.
fn is_muxable(codec: ffmpeg::codec::Id) -> bool {
    use ffmpeg::codec::Id;
    matches!(
        codec,
        Id::AAC | Id::MP3 | Id::ALAC | Id::AC3 | Id::EAC3 | Id::OPUS | Id::FLAC
    )
}

/// Encodes the first audio stream of `src` as AAC (stereo, or mono for a mono source; 192 kbit/s
/// at the source's rate when AAC allows it, else 48 kHz) into the mp4/m4a file `dst`: how
/// [`mux_soundtrack`] takes a codec an mp4 cannot hold (PCM in a WAV, Vorbis, …).
///
/// # Errors
/// An undecodable source, or an encoder or write error.
pub fn transcode_to_aac(src: &Path, dst: &Path) -> Result<()> {
    use ffmpeg::ChannelLayout;
    use ffmpeg::codec::Id;
    use ffmpeg::format::Sample;
    use ffmpeg::format::sample::Type as SampleType;
    init_ffmpeg()?;
    let (src_rate, src_channels) = audio_stream_format(src)?;
    const AAC_RATES: [u32; 12] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000,
    ];
    let rate = if AAC_RATES.contains(&src_rate) {
        src_rate
    } else {
        48000
    };
    let channels: u16 = if src_channels == 1 { 1 } else { 2 };
    let layout = if channels == 1 {
        ChannelLayout::MONO
    } else {
        ChannelLayout::STEREO
    };
    let samples = decode_audio(src, rate, channels)?;
    let codec =
        ffmpeg::encoder::find(Id::AAC).ok_or_else(|| anyhow!("this FFmpeg has no AAC encoder"))?;
    let mut octx = ffmpeg::format::output_as(ffmpeg_path(dst)?, "mp4")
        .with_context(|| format!("cannot create {}", dst.display()))?;
    let global_header = octx
        .format()
        .flags()
        .contains(ffmpeg::format::Flags::GLOBAL_HEADER);
    let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
        .encoder()
        .audio()?;
    let time_base = ffmpeg::Rational::new(1, rate as i32);
    enc.set_rate(rate as i32);
    enc.set_channel_layout(layout);
    enc.set_format(Sample::F32(SampleType::Planar));
    enc.set_bit_rate(192_000);
    enc.set_time_base(time_base);
    if global_header {
        enc.set_flags(ffmpeg::codec::Flags::GLOBAL_HEADER);
    }
    let mut enc = enc.open_as(codec).context("cannot open the AAC encoder")?;
    let mut ost = octx.add_stream(codec)?;
    ost.set_parameters(&enc);
    ost.set_time_base(time_base);
    octx.write_header()
        .with_context(|| format!("cannot write the header of {}", dst.display()))?;
    let stream_tb = octx.stream(0).map_or(time_base, |s| s.time_base());
    let frame_size = (enc.frame_size() as usize).max(1);
    let width = usize::from(channels);
    let mut packet = ffmpeg::Packet::empty();
    let mut drain = |enc: &mut ffmpeg::encoder::Audio,
                     octx: &mut ffmpeg::format::context::Output|
     -> Result<()> {
        while enc.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            packet.rescale_ts(time_base, stream_tb);
            packet.write_interleaved(octx)?;
        }
        Ok(())
    };
    for (i, chunk) in samples.chunks(frame_size * width).enumerate() {
        let n = chunk.len() / width;
        let mut frame = ffmpeg::frame::Audio::new(Sample::F32(SampleType::Planar), n, layout);
        frame.set_rate(rate);
        for c in 0..width {
            for (dst, src) in frame.plane_mut::<f32>(c)[..n]
                .iter_mut()
                .zip(chunk.iter().skip(c).step_by(width))
            {
                *dst = *src;
            }
        }
        frame.set_pts(Some((i * frame_size) as i64));
        enc.send_frame(&frame)
            .context("the AAC encoder refused a frame")?;
        drain(&mut enc, &mut octx)?;
    }
    enc.send_eof()?;
    drain(&mut enc, &mut octx)?;
    octx.write_trailer()?;
    Ok(())
}

/// Muxes the first audio stream of `audio` into the mp4 `video` (rewritten in place), as Deforum's
/// `add_soundtrack`: audio stream-copied (AAC, MP3, ALAC, AC-3, E-AC-3, Opus, FLAC; any other
/// codec, such as a WAV's PCM, re-encoded by [`transcode_to_aac`] first), cut at the end of the
/// video, `offset` seconds of the audio skipped (negative: the audio starts that much later).
pub fn mux_soundtrack(video: &Path, audio: &Path, offset: f64) -> Result<()> {
    init_ffmpeg()?;
    if !audio.is_file() {
        bail!("soundtrack {} does not exist", audio.display());
    }
    let mut vin = ffmpeg::format::input(ffmpeg_path(video)?)
        .with_context(|| format!("cannot open {}", video.display()))?;
    let mut ain = ffmpeg::format::input(ffmpeg_path(audio)?)
        .with_context(|| format!("cannot read soundtrack {}", audio.display()))?;
    let vstream = vin
        .streams()
        .best(ffmpeg::media::Type::Video)
        .ok_or_else(|| anyhow!("{} has no video", video.display()))?;
    let (vidx, vtb) = (vstream.index(), vstream.time_base());
    let vparams = vstream.parameters();
    let vdur = vstream.duration() as f64 * f64::from(vtb);
    let astream = ain
        .streams()
        .best(ffmpeg::media::Type::Audio)
        .ok_or_else(|| anyhow!("soundtrack {} has no audio stream", audio.display()))?;
    let (aidx, atb) = (astream.index(), astream.time_base());
    let aparams = astream.parameters();
    use ffmpeg::codec::Id;
    if !is_muxable(aparams.id()) {
        drop(ain);
        let aac = video.with_extension("soundtrack.tmp");
        let done = transcode_to_aac(audio, &aac)
            .with_context(|| {
                format!(
                    "cannot re-encode soundtrack {} ({:?}) as AAC for the mp4",
                    audio.display(),
                    aparams.id()
                )
            })
            .and_then(|()| mux_soundtrack(video, &aac, offset));
        let _ = std::fs::remove_file(&aac);
        return done;
    }
    let tmp = video.with_extension("mux.tmp");
    let mut out = ffmpeg::format::output_as(ffmpeg_path(&tmp)?, "mp4")
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut ov = out.add_stream(ffmpeg::encoder::find(Id::None))?;
    ov.set_parameters(vparams);
    ov.set_time_base(vtb);
    let mut oa = out.add_stream(ffmpeg::encoder::find(Id::None))?;
    oa.set_parameters(aparams);
    oa.set_time_base(atb);
    // SAFETY: plain field writes on the parameters the muxer owns; a zero tag lets mp4 pick its own
    unsafe {
        (*out
            .stream_mut(0)
            .ok_or_else(|| anyhow!("no video stream"))?
            .parameters()
            .as_mut_ptr())
        .codec_tag = 0;
        (*out
            .stream_mut(1)
            .ok_or_else(|| anyhow!("no audio stream"))?
            .parameters()
            .as_mut_ptr())
        .codec_tag = 0;
    }
    let mut opts = ffmpeg::Dictionary::new();
    opts.set("movflags", "+faststart");
    out.write_header_with(opts)
        .context("cannot write the mp4 header")?;
    let (ovtb, oatb) = (
        out.stream(0).map(|s| s.time_base()).unwrap_or(vtb),
        out.stream(1).map(|s| s.time_base()).unwrap_or(atb),
    );
    for (s, mut pkt) in vin.packets() {
        if s.index() != vidx {
            continue;
        }
        pkt.set_stream(0);
        pkt.rescale_ts(vtb, ovtb);
        pkt.set_position(-1);
        pkt.write_interleaved(&mut out)?;
    }
    let shift = (-offset / f64::from(atb)).round() as i64;
    for (s, mut pkt) in ain.packets() {
        if s.index() != aidx {
            continue;
        }
        let pts = pkt.pts().unwrap_or(0) + shift;
        if pts < 0 {
            continue;
        }
        if pts as f64 * f64::from(atb) >= vdur {
            break;
        }
        pkt.set_pts(Some(pts));
        pkt.set_dts(pkt.dts().map(|d| d + shift));
        pkt.set_stream(1);
        pkt.rescale_ts(atb, oatb);
        pkt.set_position(-1);
        pkt.write_interleaved(&mut out)?;
    }
    out.write_trailer()?;
    drop(out);
    std::fs::rename(&tmp, video)
        .with_context(|| format!("cannot move {} into place", video.display()))?;
    Ok(())
}

/// Checks that `path` is a media file FFmpeg can open with an audio stream in it.
///
/// # Errors
/// An unreadable file, or one without audio, named.
pub fn check_audio(path: &Path) -> Result<()> {
    init_ffmpeg()?;
    // FFmpeg's own log line for a damaged file would come before anim's message: quiet it here
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    let opened = ffmpeg::format::input(ffmpeg_path(path)?);
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
    let ictx = opened.with_context(|| {
        format!(
            "cannot read {} as audio or video (FFmpeg cannot open it)",
            path.display()
        )
    })?;
    if ictx.streams().best(ffmpeg::media::Type::Audio).is_none() {
        bail!("{} has no audio stream", path.display());
    }
    Ok(())
}

/// Longest audio [`decode_audio_mono`] decodes, in seconds (one hour): the samples are held in
/// memory (an hour at 22 050 Hz is 318 MB of f32).
pub const MAX_AUDIO_SECONDS: f64 = 3600.0;

/// Decodes the first audio stream of `path` to mono f32 samples at `rate` Hz: channels averaged,
/// resampled with FFmpeg's swresample.
///
/// # Errors
/// A missing or unreadable file, a file without audio, a damaged stream (naming the second
/// where decoding stopped), a `rate` outside 1000..=192000, or more than [`MAX_AUDIO_SECONDS`].
pub fn decode_audio_mono(path: &Path, rate: u32) -> Result<Vec<f32>> {
    decode_audio(path, rate, 1)
}

/// Sample rate and channel count of the first audio stream of `path`.
fn audio_stream_format(path: &Path) -> Result<(u32, u16)> {
    let ictx = ffmpeg::format::input(ffmpeg_path(path)?)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let stream = ictx
        .streams()
        .best(ffmpeg::media::Type::Audio)
        .ok_or_else(|| anyhow!("{} has no audio stream", path.display()))?;
    let dec = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
        .and_then(|c| c.decoder().audio())
        .with_context(|| format!("{}: FFmpeg has no decoder for its audio", path.display()))?;
    Ok((dec.rate(), dec.channels()))
}

/// [`decode_audio_mono`] to `channels` (1 or 2) interleaved channels.
fn decode_audio(path: &Path, rate: u32, channels: u16) -> Result<Vec<f32>> {
    use ffmpeg::ChannelLayout;
    use ffmpeg::format::Sample;
    use ffmpeg::format::sample::Type as SampleType;
    if !(1000..=192_000).contains(&rate) {
        bail!("audio sample rate {rate} Hz: must be within 1000..=192000");
    }
    if !path.is_file() {
        bail!("{} does not exist", path.display());
    }
    check_audio(path)?;
    let mut ictx = ffmpeg::format::input(ffmpeg_path(path)?)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let stream = ictx
        .streams()
        .best(ffmpeg::media::Type::Audio)
        .ok_or_else(|| anyhow!("{} has no audio stream", path.display()))?;
    let index = stream.index();
    let mut dec = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
        .and_then(|c| c.decoder().audio())
        .with_context(|| format!("{}: FFmpeg has no decoder for its audio", path.display()))?;
    let max_samples = (MAX_AUDIO_SECONDS * f64::from(rate)) as usize * usize::from(channels);
    let out_format = Sample::F32(SampleType::Packed);
    let out_layout = if channels == 1 {
        ChannelLayout::MONO
    } else {
        ChannelLayout::STEREO
    };
    let width = usize::from(channels.clamp(1, 2));
    let mut resampler: Option<ffmpeg::software::resampling::Context> = None;
    let mut samples: Vec<f32> = Vec::new();
    let damaged = |e: ffmpeg::Error, at: usize| {
        anyhow!(
            "{}: cannot decode the audio after {:.2} s ({e}); a damaged or cut file? re-encode \
             it, e.g. `ffmpeg -i in -c:a flac out.flac`",
            path.display(),
            at as f64 / f64::from(rate) / width as f64
        )
    };
    // one decoded frame through the resampler (created on the first frame, whose format and
    // layout are the stream's)
    let push = |frame: Option<&ffmpeg::frame::Audio>,
                resampler: &mut Option<ffmpeg::software::resampling::Context>,
                samples: &mut Vec<f32>|
     -> Result<()> {
        if resampler.is_none() {
            let Some(f) = frame else { return Ok(()) };
            let layout = f.channel_layout();
            *resampler = Some(
                ffmpeg::software::resampling::Context::get(
                    f.format(),
                    layout,
                    f.rate(),
                    out_format,
                    out_layout,
                    rate,
                )
                .with_context(|| {
                    format!(
                        "{}: cannot convert its audio ({} Hz, {} channels) to mono",
                        path.display(),
                        f.rate(),
                        f.channels()
                    )
                })?,
            );
        }
        let Some(r) = resampler.as_mut() else {
            return Ok(());
        };
        loop {
            let cap = match frame {
                Some(f) => {
                    (f.samples() as u64 * u64::from(rate) / u64::from(f.rate().max(1))) as usize
                        + 256
                }
                None => 4096,
            };
            let mut out = ffmpeg::frame::Audio::new(out_format, cap, out_layout);
            out.set_rate(rate);
            match frame {
                Some(f) => r.run(f, &mut out),
                None => r.flush(&mut out),
            }
            .map_err(|e| damaged(e, samples.len()))?;
            let n = out.samples();
            // packed: one plane of n·width floats
            samples.extend(
                out.data(0)[..n * width * 4]
                    .chunks_exact(4)
                    .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
            );
            if samples.len() > max_samples {
                bail!(
                    "{}: longer than {MAX_AUDIO_SECONDS} s; cut the part the animation uses, \
                     e.g. `ffmpeg -i in -t 600 -c:a flac out.flac`",
                    path.display()
                );
            }
            // a flush drains until nothing is left; a frame is converted once
            if frame.is_some() || n == 0 {
                return Ok(());
            }
        }
    };
    // PCM in WAV often has no channel layout: the default one for its channel count, which the
    // resampler then expects on every frame
    let fix_layout = |f: &mut ffmpeg::frame::Audio| {
        if f.channel_layout().is_empty() {
            f.set_channel_layout(ChannelLayout::default(i32::from(f.channels().max(1))));
        }
    };
    let mut frame = ffmpeg::frame::Audio::empty();
    for (s, pkt) in ictx.packets() {
        if s.index() != index {
            continue;
        }
        dec.send_packet(&pkt)
            .map_err(|e| damaged(e, samples.len()))?;
        while dec.receive_frame(&mut frame).is_ok() {
            fix_layout(&mut frame);
            push(Some(&frame), &mut resampler, &mut samples)?;
        }
    }
    dec.send_eof().map_err(|e| damaged(e, samples.len()))?;
    while dec.receive_frame(&mut frame).is_ok() {
        fix_layout(&mut frame);
        push(Some(&frame), &mut resampler, &mut samples)?;
    }
    push(None, &mut resampler, &mut samples)?;
    if samples.is_empty() {
        bail!("{}: the audio stream holds no samples", path.display());
    }
    Ok(samples)
}

/// Duration in seconds of the first audio stream of `path` (0 when it has none).
pub fn audio_duration(path: &Path) -> Result<f64> {
    init_ffmpeg()?;
    let ictx = ffmpeg::format::input(ffmpeg_path(path)?)
        .with_context(|| format!("cannot open {}", path.display()))?;
    Ok(ictx
        .streams()
        .best(ffmpeg::media::Type::Audio)
        .map(|s| s.duration() as f64 * f64::from(s.time_base()))
        .unwrap_or(0.0))
}

/// Decodes the video `path` and writes every `nth` frame from `from` up to `to` (inclusive; `None`
/// = to the end) as `dir/NNNNNN.png`, numbered from 0; returns how many were written. Deforum's
/// `extract_nth_frame`, `extract_from_frame` and `extract_to_frame`.
pub fn extract_frames(
    path: &Path,
    dir: &Path,
    nth: usize,
    from: usize,
    to: Option<usize>,
) -> Result<usize> {
    select_frames(path, Some(dir), nth, from, to)
}

/// How many `.png` files `dir` holds (0 when it cannot be read): the frames an earlier
/// [`extract_frames`] into it left, which a resumed render reuses.
pub fn count_pngs(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png"))
        })
        .count()
    })
}

/// How many frames [`extract_frames`] would write for the same arguments, found by decoding
/// the video without converting or writing its frames (how many frames a Video Input scene has).
///
/// # Errors
/// As [`extract_frames`].
pub fn count_extracted_frames(
    path: &Path,
    nth: usize,
    from: usize,
    to: Option<usize>,
) -> Result<usize> {
    select_frames(path, None, nth, from, to)
}

/// [`extract_frames`] into `dir`, or only counting with `None`.
fn select_frames(
    path: &Path,
    dir: Option<&Path>,
    nth: usize,
    from: usize,
    to: Option<usize>,
) -> Result<usize> {
    init_ffmpeg()?;
    if !path.is_file() {
        bail!("video {} does not exist", path.display());
    }
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut ictx = ffmpeg::format::input(ffmpeg_path(path)?)
        .with_context(|| format!("cannot open video {}", path.display()))?;
    let stream = ictx
        .streams()
        .best(ffmpeg::media::Type::Video)
        .ok_or_else(|| anyhow!("{} has no video stream", path.display()))?;
    let index = stream.index();
    // frames the container's index lists (0: unknown), to tell a cut file from a short video
    let listed = usize::try_from(stream.frames()).unwrap_or(0);
    let mut dec = ffmpeg::codec::context::Context::from_parameters(stream.parameters())?
        .decoder()
        .video()?;
    let nth = nth.max(1);
    let (mut decoded, mut written) = (0usize, 0usize);
    let mut frame = ffmpeg::frame::Video::empty();
    let mut rgb = ffmpeg::frame::Video::empty();
    // made from the first decoded frame's format and size (a damaged file may have none)
    let mut scaler: Option<(ffmpeg::software::scaling::Context, u32, u32)> = None;
    let mut take =
        |frame: &ffmpeg::frame::Video, decoded: &mut usize, written: &mut usize| -> Result<bool> {
            let i = *decoded;
            *decoded += 1;
            if to.is_some_and(|t| i > t) {
                return Ok(false);
            }
            if i < from || !(i - from).is_multiple_of(nth) {
                return Ok(true);
            }
            let Some(dir) = dir else {
                *written += 1;
                return Ok(true);
            };
            let (w, h) = (frame.width(), frame.height());
            if frame.format() == ffmpeg::format::Pixel::None || w == 0 || h == 0 {
                bail!(
                    "{}: frame {i} has no picture (a damaged video?)",
                    path.display()
                );
            }
            let sc = match &mut scaler {
                Some((sc, sw, sh)) if (*sw, *sh) == (w, h) => sc,
                Some((_, sw, sh)) => bail!(
                    "{}: frame {i} is {w}x{h}, the frames before it {sw}x{sh}; anim reads videos \
                     of one frame size",
                    path.display()
                ),
                None => {
                    let sc = ffmpeg::software::scaling::Context::get(
                        frame.format(),
                        w,
                        h,
                        ffmpeg::format::Pixel::RGB24,
                        w,
                        h,
                        ffmpeg::software::scaling::Flags::BICUBIC
                            | ffmpeg::software::scaling::Flags::ACCURATE_RND
                            | ffmpeg::software::scaling::Flags::FULL_CHR_H_INT,
                    )
                    .with_context(|| format!("{}: frame {i}", path.display()))?;
                    &mut scaler.insert((sc, w, h)).0
                }
            };
            sc.run(frame, &mut rgb)
                .with_context(|| format!("{}: frame {i}", path.display()))?;
            let stride = rgb.stride(0);
            let row = w as usize * 3;
            let mut img = RgbImage::new(w, h);
            for y in 0..h as usize {
                img.as_mut()[y * row..(y + 1) * row]
                    .copy_from_slice(&rgb.data(0)[y * stride..y * stride + row]);
            }
            write_png_atomic(&dir.join(format!("{:06}.png", *written)), &img)?;
            *written += 1;
            Ok(true)
        };
    let damaged = |e: ffmpeg::Error, decoded: usize| {
        anyhow!(
            "{}: cannot decode the video after frame {decoded} ({e}); a damaged or cut file?",
            path.display()
        )
    };
    let mut stopped = false;
    'packets: for (s, pkt) in ictx.packets() {
        if s.index() != index {
            continue;
        }
        dec.send_packet(&pkt).map_err(|e| damaged(e, decoded))?;
        while dec.receive_frame(&mut frame).is_ok() {
            if !take(&frame, &mut decoded, &mut written)? {
                stopped = true;
                break 'packets;
            }
        }
    }
    if !stopped {
        dec.send_eof().map_err(|e| damaged(e, decoded))?;
        while dec.receive_frame(&mut frame).is_ok() {
            if !take(&frame, &mut decoded, &mut written)? {
                stopped = true;
                break;
            }
        }
    }
    if !stopped && listed > 0 && decoded < listed {
        bail!(
            "{}: the video ends after {decoded} of the {listed} frames its index lists (a cut or \
             damaged file?)",
            path.display()
        );
    }
    if written == 0 {
        bail!(
            "no frames extracted from {} (it has {decoded} frames; check extract_from_frame/extract_to_frame)",
            path.display()
        );
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parts of one scene rendered at once (a farm job) check the same output folder together;
    /// none may see the folder as not writable because another removed its probe.
    #[test]
    fn renders_sharing_a_folder_prepare_it_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    s.spawn(|| {
                        (0..300)
                            .try_for_each(|_| prepare_folder(&dir).map_err(|e| format!("{e:#}")))
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap().unwrap();
            }
        });
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "a probe was left behind"
        );
    }
}

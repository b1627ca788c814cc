//! Frame output off the loop's critical path: the PNG encoding and atomic rename of frame i, its
//! record in the journal and the checkpoint after a key frame run on a thread of their own while
//! the loop computes frame i+1.
//!
//! One thread does every write, in the order the loop asks for them, so the crash safety of the
//! loop is unchanged: a frame is on disk, renamed into place, before its record is appended and
//! before a checkpoint names it. The queue holds one job beside the one being written, so the
//! loop is at most two frames ahead of the disk. The first failed write stops the thread; the
//! loop's next request (or [`Writer::finish`]) returns that error, which names the file.

use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Result, anyhow};
use image::RgbImage;
use indicatif::ProgressBar;

use super::manifest::{FrameRecord, ms};
use super::state::{Checkpoint, Journal};
use crate::flow::Flow;
use crate::output::{self, BackgroundVideo};

/// What the writing thread is asked to do, in order.
enum Job {
    /// Write frame `index` and append its record (its `write_ms` filled in here).
    Frame {
        index: usize,
        image: RgbImage,
        record: FrameRecord,
    },
    /// Save the checkpoint after key frame `cp.key_frame` (already queued as a frame).
    Checkpoint {
        cp: Checkpoint,
        color_sample: Option<RgbImage>,
        prev_flow: Option<Flow>,
    },
    /// Answer once everything queued before is written.
    Flush(SyncSender<()>),
}

/// What the writing thread hands back when it is done: the journal (for the manifest) and the
/// videos, fed with every frame written.
pub(super) struct Written {
    /// The frame records and checkpoints.
    pub journal: Journal,
    /// The videos being encoded, when the render makes them.
    pub video: Option<BackgroundVideo>,
}

/// The writing thread of a render.
pub(super) struct Writer {
    tx: Option<SyncSender<Job>>,
    handle: Option<JoinHandle<Result<Written>>>,
}

impl Writer {
    /// Starts the thread that writes frames into `out/frames/`, records them in `journal`,
    /// passes each written frame to `video` and advances `bar`.
    pub fn start(
        out: PathBuf,
        mut journal: Journal,
        mut video: Option<BackgroundVideo>,
        bar: ProgressBar,
    ) -> Writer {
        let (tx, rx) = sync_channel::<Job>(1);
        let handle = std::thread::spawn(move || -> Result<Written> {
            while let Ok(job) = rx.recv() {
                match job {
                    Job::Frame {
                        index,
                        image,
                        mut record,
                    } => {
                        let t = Instant::now();
                        let path = output::frame_path(&out, index);
                        output::write_png_atomic(&path, &image)?;
                        record.write_ms = ms(t.elapsed());
                        journal.record(&record)?;
                        if let Some(v) = &mut video {
                            v.push_image(image, path);
                        }
                        bar.inc(1);
                    }
                    Job::Checkpoint {
                        mut cp,
                        color_sample,
                        prev_flow,
                    } => {
                        let key = output::frame_path(&out, cp.key_frame);
                        journal.save(&mut cp, &key, color_sample.as_ref(), prev_flow.as_ref())?;
                    }
                    Job::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
            Ok(Written { journal, video })
        });
        Writer {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    /// Queues frame `index` (waits while the queue is full).
    ///
    /// # Errors
    /// An earlier write that failed (naming its file).
    pub fn frame(&mut self, index: usize, image: RgbImage, record: FrameRecord) -> Result<()> {
        self.send(Job::Frame {
            index,
            image,
            record,
        })
    }

    /// Queues the checkpoint `cp` after its key frame (with the colour sample and hybrid
    /// motion's last flow).
    ///
    /// # Errors
    /// An earlier write that failed (naming its file).
    pub fn checkpoint(
        &mut self,
        cp: Checkpoint,
        color_sample: Option<RgbImage>,
        prev_flow: Option<Flow>,
    ) -> Result<()> {
        self.send(Job::Checkpoint {
            cp,
            color_sample,
            prev_flow,
        })
    }

    /// Waits until everything queued so far is written.
    ///
    /// # Errors
    /// A write that failed (naming its file).
    pub fn flush(&mut self) -> Result<()> {
        let (tx, rx) = sync_channel(1);
        self.send(Job::Flush(tx))?;
        if rx.recv().is_ok() {
            return Ok(());
        }
        self.send(Job::Flush(sync_channel(1).0))
    }

    fn send(&mut self, job: Job) -> Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // the thread stopped: its error is the reason
        self.tx = None;
        match self.join() {
            Err(e) => Err(e),
            Ok(_) => Err(anyhow!("the frame writing thread stopped")),
        }
    }

    fn join(&mut self) -> Result<Written> {
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(anyhow!("the frame writing thread panicked")),
            None => Err(anyhow!("the frame writing thread stopped after an error")),
        }
    }

    /// Waits until every queued frame and checkpoint is written.
    ///
    /// # Errors
    /// The first write that failed (naming its file).
    pub fn finish(mut self) -> Result<Written> {
        self.tx = None;
        self.join()
    }
}

impl Drop for Writer {
    /// Lets the thread write what is queued (each write is complete and in order, as when the
    /// loop wrote them itself) and waits for it; the videos are then abandoned.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

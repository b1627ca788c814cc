//! Many renders at once: several scenes ([`batch`], N at a time on this machine), the variants
//! of one scene ([`sweep`]), and the same work handed to a cluster's workload manager ([`slurm`]
//! job arrays with a dependent job that writes a [`summary`]; [`k8s`] Indexed Job manifests).
//!
//! A unit of work is a [`plan::Task`]: a scene rendered into a folder, whole or a range of its
//! frames. Every task runs the `anim` binary itself (`anim render … --resume=auto`), so a task
//! that runs again after a failure, a cancellation or a requeue continues from its last
//! checkpoint. This module reads scenes and the outputs renders leave behind (manifests,
//! checkpoints); it never loads a model.

pub mod batch;
pub mod encode;
pub mod k8s;
pub mod plan;
pub mod slurm;
pub mod summary;
pub mod sweep;

pub use plan::Task;

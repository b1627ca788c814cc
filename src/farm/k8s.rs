//! Kubernetes: the same tasks as an Indexed Job (one completion index per task, `parallelism`
//! at once, `nvidia.com/gpu` limits, the shared volume from a PersistentVolumeClaim) and a
//! ConfigMap holding the task list and the script that runs task `$JOB_COMPLETION_INDEX` with
//! `anim render --resume=auto`. anim writes the manifests (`kubectl apply -f` them); it does not
//! talk to a cluster. The claim is mounted at the same path as on the submitting machine, so the
//! absolute scene and output paths hold in the pods (docs/farm.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::plan::{RenderArgs, Task, check_tasks};

/// What the manifests are made with.
#[derive(Debug, Clone)]
pub struct K8sOptions {
    /// Container image with `anim` on its PATH and ONNX Runtime (`--image`).
    pub image: String,
    /// GPUs per pod (`nvidia.com/gpu` limit); 0 for none.
    pub gpus: u32,
    /// PersistentVolumeClaim holding the scenes, models and outputs (`--pvc`).
    pub pvc: Option<String>,
    /// Where the claim is mounted: default, the deepest folder holding every scene, output
    /// and model path.
    pub mount_path: Option<PathBuf>,
    /// `metadata.namespace` (`--namespace`).
    pub namespace: Option<String>,
    /// Pods at once (`--max-parallel`; default all).
    pub max_parallel: Option<usize>,
    /// Name of the Job and ConfigMap (a DNS label).
    pub name: String,
}

/// Object metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Object name.
    pub name: String,
    /// Namespace, where given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A ConfigMap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMap {
    /// `v1`.
    pub api_version: String,
    /// `ConfigMap`.
    pub kind: String,
    /// Name and namespace.
    pub metadata: Metadata,
    /// `tasks.tsv` (index, scene, output, frames per line) and `run.sh`.
    pub data: BTreeMap<String, String>,
}

/// A batch/v1 Job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// `batch/v1`.
    pub api_version: String,
    /// `Job`.
    pub kind: String,
    /// Name and namespace.
    pub metadata: Metadata,
    /// The job.
    pub spec: JobSpec,
}

/// The Job's spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    /// `Indexed`: each pod gets `JOB_COMPLETION_INDEX`.
    pub completion_mode: String,
    /// One per task.
    pub completions: usize,
    /// Pods at once.
    pub parallelism: usize,
    /// Retries of each index before it counts as failed (a retry resumes); the other
    /// indexes run whatever one does (Kubernetes 1.29 and later).
    pub backoff_limit_per_index: u32,
    /// The pods.
    pub template: PodTemplate,
}

/// The pod template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodTemplate {
    /// Labels of the pods.
    pub metadata: Metadata,
    /// The pod spec.
    pub spec: PodSpec,
}

/// A pod spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// `Never`: a failed pod is replaced (and resumes), as the index's backoff allows.
    pub restart_policy: String,
    /// The one container.
    pub containers: Vec<Container>,
    /// The task list and the shared storage.
    pub volumes: Vec<Volume>,
}

/// A container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// `anim`.
    pub name: String,
    /// The image.
    pub image: String,
    /// `sh /etc/anim-farm/run.sh`.
    pub command: Vec<String>,
    /// GPU limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The mounts.
    pub volume_mounts: Vec<VolumeMount>,
}

/// Resource limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// `nvidia.com/gpu: N`.
    pub limits: BTreeMap<String, String>,
}

/// A volume mount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    /// Volume name.
    pub name: String,
    /// Path in the container.
    pub mount_path: String,
    /// Read-only (the task list).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// A volume: a ConfigMap or a claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// Name the mounts use.
    pub name: String,
    /// The task list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<NameRef>,
    /// The shared storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<ClaimRef>,
}

/// A ConfigMap reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameRef {
    /// Its name.
    pub name: String,
}

/// A claim reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRef {
    /// Its name.
    pub claim_name: String,
}

/// Where the ConfigMap is mounted in the pods.
const CONFIG_DIR: &str = "/etc/anim-farm";

/// The deepest folder holding every path.
fn common_ancestor<'a>(paths: impl Iterator<Item = &'a Path>) -> PathBuf {
    let mut common: Option<PathBuf> = None;
    for p in paths {
        let dir = p.to_path_buf();
        common = Some(match common {
            None => dir,
            Some(c) => {
                let mut c = c;
                while !dir.starts_with(&c) {
                    if !c.pop() {
                        break;
                    }
                }
                c
            }
        });
    }
    common.unwrap_or_else(|| PathBuf::from("/"))
}

/// `text` as a DNS-1123 label (lower case letters, digits and `-`, at most 63).
fn dns_label(text: &str) -> String {
    let s: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let s = s.trim_matches('-').chars().take(52).collect::<String>();
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() { "anim-farm".into() } else { s }
}

/// The ConfigMap and the Indexed Job of `tasks`.
///
/// # Errors
/// No tasks or too many, or an empty image name.
pub fn manifests(tasks: &[Task], render: &RenderArgs, o: &K8sOptions) -> Result<(ConfigMap, Job)> {
    check_tasks(tasks)?;
    if o.image.trim().is_empty() {
        bail!("--image: the container image with anim and ONNX Runtime is needed for --k8s");
    }
    if o.gpus > super::slurm::MAX_PER_TASK {
        bail!("--gpu {}: at most {}", o.gpus, super::slurm::MAX_PER_TASK);
    }
    let name = dns_label(&o.name);
    let render = RenderArgs {
        resume: true,
        ..render.clone()
    };
    let mut tsv = String::new();
    for (i, t) in tasks.iter().enumerate() {
        let frames = t
            .frames
            .map_or_else(|| "-".into(), |[a, b]| format!("{a}..{b}"));
        tsv.push_str(&format!(
            "{i}\t{}\t{}\t{frames}\n",
            t.scene.display(),
            t.out.display()
        ));
    }
    // run.sh: the task's line, then the same `anim render` a Slurm task runs
    let mut common: Vec<String> = vec!["--quiet".into(), "--device".into(), render.device.clone()];
    if let Some(m) = &render.model {
        common.extend(["--model".into(), m.display().to_string()]);
    }
    common.push("--resume=auto".into());
    if let Some(t) = render.threads {
        common.extend(["--threads".into(), t.to_string()]);
    }
    if render.allow_unsupported {
        common.push("--allow-unsupported".into());
    }
    let quoted: Vec<String> = common
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let script = format!(
        "#!/bin/sh\n\
         # anim farm: task $JOB_COMPLETION_INDEX of tasks.tsv (index, scene, output, frames)\n\
         set -eu\n\
         line=$(awk -F '\\t' -v i=\"$JOB_COMPLETION_INDEX\" '$1 == i' {CONFIG_DIR}/tasks.tsv)\n\
         [ -n \"$line\" ] || {{ echo \"anim farm: no task $JOB_COMPLETION_INDEX\" >&2; exit 2; }}\n\
         scene=$(printf '%s' \"$line\" | cut -f2)\n\
         out=$(printf '%s' \"$line\" | cut -f3)\n\
         frames=$(printf '%s' \"$line\" | cut -f4)\n\
         set -- render \"$scene\" --out \"$out\" {}\n\
         if [ \"$frames\" != - ]; then set -- \"$@\" --frames \"$frames\" --no-video; fi\n\
         echo \"anim farm: task $JOB_COMPLETION_INDEX on $(hostname): $scene\"\n\
         exec anim \"$@\"\n",
        quoted.join(" ")
    );
    let labels = BTreeMap::from([(
        "app.kubernetes.io/name".to_string(),
        "anim-farm".to_string(),
    )]);
    let meta = |n: &str| Metadata {
        name: n.to_string(),
        namespace: o.namespace.clone(),
        labels: labels.clone(),
    };
    let config = ConfigMap {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        metadata: meta(&format!("{name}-tasks")),
        data: BTreeMap::from([
            ("tasks.tsv".to_string(), tsv),
            ("run.sh".to_string(), script),
        ]),
    };
    let mut volumes = vec![Volume {
        name: "tasks".into(),
        config_map: Some(NameRef {
            name: config.metadata.name.clone(),
        }),
        persistent_volume_claim: None,
    }];
    let mut mounts = vec![VolumeMount {
        name: "tasks".into(),
        mount_path: CONFIG_DIR.into(),
        read_only: true,
    }];
    if let Some(pvc) = &o.pvc {
        let mount = o.mount_path.clone().unwrap_or_else(|| {
            common_ancestor(
                tasks
                    .iter()
                    .flat_map(|t| [t.scene.parent().unwrap_or(&t.scene), t.out.as_path()])
                    .chain(render.model.as_deref()),
            )
        });
        volumes.push(Volume {
            name: "shared".into(),
            config_map: None,
            persistent_volume_claim: Some(ClaimRef {
                claim_name: pvc.clone(),
            }),
        });
        mounts.push(VolumeMount {
            name: "shared".into(),
            mount_path: mount.display().to_string(),
            read_only: false,
        });
    }
    let job = Job {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        metadata: meta(&name),
        spec: JobSpec {
            completion_mode: "Indexed".into(),
            completions: tasks.len(),
            parallelism: o.max_parallel.unwrap_or(tasks.len()).clamp(1, tasks.len()),
            backoff_limit_per_index: 3,
            template: PodTemplate {
                metadata: Metadata {
                    name: name.clone(),
                    namespace: None,
                    labels: labels.clone(),
                },
                spec: PodSpec {
                    restart_policy: "Never".into(),
                    containers: vec![Container {
                        name: "anim".into(),
                        image: o.image.clone(),
                        command: vec!["/bin/sh".into(), format!("{CONFIG_DIR}/run.sh")],
                        resources: (o.gpus > 0).then(|| Resources {
                            limits: BTreeMap::from([(
                                "nvidia.com/gpu".to_string(),
                                o.gpus.to_string(),
                            )]),
                        }),
                        volume_mounts: mounts,
                    }],
                    volumes,
                },
            },
        },
    };
    Ok((config, job))
}

/// The manifests as one YAML stream (ConfigMap, then Job).
///
/// # Errors
/// Serialisation failure.
pub fn to_yaml(config: &ConfigMap, job: &Job) -> Result<String> {
    Ok(format!(
        "{}---\n{}",
        yaml_serde::to_string(config)?,
        yaml_serde::to_string(job)?
    ))
}

/// Writes `configmap.yaml` and `job.yaml` into `dir`; returns their paths.
///
/// # Errors
/// A file that cannot be written.
pub fn write(dir: &Path, config: &ConfigMap, job: &Job) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let files = [
        (dir.join("configmap.yaml"), yaml_serde::to_string(config)?),
        (dir.join("job.yaml"), yaml_serde::to_string(job)?),
    ];
    for (p, text) in &files {
        std::fs::write(p, text)?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_mounts() {
        assert_eq!(dns_label("My Scene_2!"), "my-scene-2");
        assert_eq!(
            common_ancestor(
                [
                    Path::new("/data/a/s"),
                    Path::new("/data/out/x"),
                    Path::new("/data/a")
                ]
                .into_iter()
            ),
            Path::new("/data")
        );
    }
}

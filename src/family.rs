//! Families: files given to one build that hold the same model (same
//! architecture, same tensor names and shapes, different storage types),
//! the choice of their reference, the quantization ladder ggviz makes from
//! that reference, and the family's measurements.
//!
//! Every step is a function with explicit inputs and a serde output, so the
//! build can run the llama.cpp parts in a worker process.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::analysis::embeddings::EmbeddingError;
use crate::analysis::quant_impact::generations::{self, PromptGenerations};
use crate::analysis::quant_impact::imatrix::{self, Imatrix, ImatrixOptions};
use crate::analysis::quant_impact::layers::{LensHeads, MemberLayers, measure_family_layers};
use crate::analysis::quant_impact::lens_kl::HeadParts;
use crate::analysis::quant_impact::neighbours::{self, NeighbourOverlap};
use crate::analysis::quant_impact::output::{self, EvalOptions, FamilyOutputs};
use crate::analysis::quant_impact::speed::{self, Speed, SpeedOptions};
use crate::analysis::quant_impact::weights::{TensorError, weight_errors};
use crate::engine::quantize::{QuantType, QuantizeRequest, Quantized, quantize_cached};
use crate::engine::{Device, EngineError, Session, SessionOptions, TokenId};
use crate::gguf::{GgufError, GgufModel};

/// An error while forming or measuring a family.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FamilyError {
    /// A file could not be read.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// llama.cpp failed (quantizing, computing the matrix or evaluating).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Two files have the same tensors but one tensor's shape differs.
    #[error(
        "{member} cannot join the family of {reference}: tensor `{tensor}` has shape \
         {member_dims:?} there and {reference_dims:?} in the reference"
    )]
    ShapeMismatch {
        reference: PathBuf,
        member: PathBuf,
        tensor: String,
        reference_dims: Vec<u64>,
        member_dims: Vec<u64>,
    },
    /// `--reference` names a file that is not among the models.
    #[error("the reference {0} is not one of the models given")]
    UnknownReference(PathBuf),
    /// The token embeddings could not be compared.
    #[error(transparent)]
    Embedding(#[from] EmbeddingError),
    /// Writing the importance matrix failed.
    #[error("cannot write the importance matrix {path}: {source}")]
    Imatrix {
        path: PathBuf,
        #[source]
        source: GgufError,
    },
}

/// One file of a family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub path: PathBuf,
    /// Storage bits per weight over all tensors.
    pub bits_per_weight: f64,
    pub file_size: u64,
    /// The type the file was made as, when ggviz made it.
    pub made_as: Option<QuantType>,
}

/// Files of one model; `members[reference]` is the base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Family {
    pub architecture: String,
    pub reference: usize,
    pub members: Vec<Member>,
}

/// What files of one model share: architecture and tensor names.
type Identity = (String, BTreeSet<String>);

/// The identity of a model for grouping.
fn identity(model: &GgufModel) -> Identity {
    let arch = model
        .get("general.architecture")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let names = model.tensors().iter().map(|t| t.name.clone()).collect();
    (arch, names)
}

/// Storage bits per weight of the whole file.
pub fn bits_per_weight(model: &GgufModel) -> f64 {
    let (bytes, n) = model
        .tensors()
        .iter()
        .fold((0u64, 0u64), |(b, n), t| (b + t.n_bytes, n + t.n_elements));
    if n == 0 {
        0.0
    } else {
        bytes as f64 * 8.0 / n as f64
    }
}

/// Describes one file as a member.
pub fn member(path: &Path, made_as: Option<QuantType>) -> Result<Member, FamilyError> {
    let model = GgufModel::open(path)?;
    Ok(Member {
        path: path.to_path_buf(),
        bits_per_weight: bits_per_weight(&model),
        file_size: model.file_size(),
        made_as,
    })
}

/// Checks that `member` has exactly `reference`'s tensor shapes (the caller
/// has matched architecture and tensor names).
pub fn check_shapes(reference: &GgufModel, member: &GgufModel) -> Result<(), FamilyError> {
    for t in reference.tensors() {
        if let Some(u) = member.tensor(&t.name)
            && u.dims != t.dims
        {
            return Err(FamilyError::ShapeMismatch {
                reference: reference.path().to_path_buf(),
                member: member.path().to_path_buf(),
                tensor: t.name.clone(),
                reference_dims: t.dims.clone(),
                member_dims: u.dims.clone(),
            });
        }
    }
    Ok(())
}

/// Groups `paths` into families of two or more files (a file alone forms
/// none). Within a family the reference is `reference` when it is a member,
/// else the member with the most bits per weight.
pub fn group(paths: &[PathBuf], reference: Option<&Path>) -> Result<Vec<Family>, FamilyError> {
    let models = paths
        .iter()
        .map(GgufModel::open)
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(r) = reference
        && !paths.iter().any(|p| p == r)
    {
        return Err(FamilyError::UnknownReference(r.to_path_buf()));
    }
    let mut groups: Vec<(Identity, Vec<usize>)> = Vec::new();
    for (i, m) in models.iter().enumerate() {
        let id = identity(m);
        match groups.iter_mut().find(|(g, _)| *g == id) {
            Some((_, members)) => {
                check_shapes(&models[members[0]], m)?;
                members.push(i);
            }
            None => groups.push((id, vec![i])),
        }
    }
    let mut families = Vec::new();
    for ((architecture, _), idx) in groups.into_iter().filter(|(_, v)| v.len() > 1) {
        let members: Vec<Member> = idx
            .iter()
            .map(|&i| Member {
                path: paths[i].clone(),
                bits_per_weight: bits_per_weight(&models[i]),
                file_size: models[i].file_size(),
                made_as: None,
            })
            .collect();
        let chosen = reference.and_then(|r| members.iter().position(|m| m.path == r));
        // The first of equals wins, so the order given breaks ties.
        let best = (0..members.len()).fold(0, |best, i| {
            if members[i].bits_per_weight > members[best].bits_per_weight {
                i
            } else {
                best
            }
        });
        families.push(Family {
            architecture,
            reference: chosen.unwrap_or(best),
            members,
        });
    }
    Ok(families)
}

/// How to make a quantization ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LadderOptions {
    pub types: Vec<QuantType>,
    /// Compute an importance matrix and use it for every type (it is
    /// computed anyway when a type needs one).
    pub imatrix: bool,
    /// Calibration text (the bundled one when `None`).
    pub calibration: Option<String>,
    /// At most this many calibration chunks.
    pub calibration_chunks: Option<usize>,
    /// Cache root (`.cache/ggviz/quant` by default).
    pub cache: PathBuf,
    pub session: SessionOptions,
}

/// What making a ladder did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ladder {
    pub made: Vec<Quantized>,
    /// Where the importance matrix was written, if one was computed.
    pub imatrix: Option<PathBuf>,
    /// Milliseconds spent on the importance matrix.
    pub imatrix_ms: f64,
}

/// Makes `options.types` from `reference` (reusing cached files), computing
/// the importance matrix first when asked or needed.
pub fn make_ladder(reference: &Path, options: &LadderOptions) -> Result<Ladder, FamilyError> {
    let needs = options.imatrix || options.types.iter().any(|t| t.needs_imatrix());
    let mut imatrix_path = None;
    let mut imatrix_ms = 0.0;
    let values = if needs {
        let start = Instant::now();
        let text = options
            .calibration
            .as_deref()
            .unwrap_or(imatrix::CALIBRATION_TEXT);
        let dir = crate::engine::quantize::cache_dir(&options.cache, reference, None)?;
        let path = dir.join(format!(
            "imatrix-{:016x}-{}.gguf",
            fnv(text.as_bytes()),
            options.calibration_chunks.unwrap_or(0)
        ));
        let matrix = match Imatrix::read(&path) {
            Ok(m) => m,
            Err(_) => {
                let mut session = Session::load(reference, options.session)?;
                let m = imatrix::compute(
                    &mut session,
                    text,
                    &ImatrixOptions {
                        max_chunks: options.calibration_chunks,
                        ..ImatrixOptions::default()
                    },
                )?;
                std::fs::create_dir_all(&dir).map_err(|e| FamilyError::Imatrix {
                    path: path.clone(),
                    source: GgufError::Io {
                        path: dir.clone(),
                        action: "cannot create the cache folder",
                        source: e,
                    },
                })?;
                m.write(&path).map_err(|source| FamilyError::Imatrix {
                    path: path.clone(),
                    source,
                })?;
                m
            }
        };
        imatrix_ms = start.elapsed().as_secs_f64() * 1e3;
        imatrix_path = Some(path);
        Some(matrix.values())
    } else {
        None
    };
    let made = options
        .types
        .iter()
        .map(|&ty| {
            quantize_cached(&QuantizeRequest {
                reference,
                ty,
                cache: &options.cache,
                threads: options.session.threads,
                imatrix: values.as_ref(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Ladder {
        made,
        imatrix: imatrix_path,
        imatrix_ms,
    })
}

/// A 64-bit FNV-1a digest, to name cached files after their inputs.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A family's measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyMeasurements {
    pub family: Family,
    /// Output statistics; `outputs.members[i]` is `family.members[i]`
    /// against the reference (the reference against itself included).
    pub outputs: FamilyOutputs,
    /// Milliseconds spent evaluating.
    pub evaluation_ms: f64,
    /// Per layer and head, each member against the reference on the
    /// prompts (`layers[i]` is member `i`), the logit lens's KL included.
    pub layers: Vec<MemberLayers>,
    /// Milliseconds spent capturing and comparing the layers.
    pub capture_ms: f64,
    /// Per tensor, each member's weight error (`weights[i]` is member `i`).
    pub weights: Vec<Vec<TensorError>>,
    /// Milliseconds spent on the weight errors.
    pub weights_ms: f64,
    /// Greedy continuations of every prompt by every member.
    #[serde(default)]
    pub generations: Vec<PromptGenerations>,
    #[serde(default)]
    pub generation_ms: f64,
    /// Each member's token-embedding neighbour overlap with the reference
    /// (`None` for a model without `token_embd.weight`).
    #[serde(default)]
    pub neighbours: Vec<Option<NeighbourOverlap>>,
    #[serde(default)]
    pub neighbours_ms: f64,
    /// Each member's speed and memory, measured in this process, one member
    /// loaded afresh at a time.
    #[serde(default)]
    pub speed: Vec<Speed>,
    #[serde(default)]
    pub speed_ms: f64,
}

/// Loads every member, scores it against the reference on `text`, compares
/// it layer by layer (and through the logit lens) on `prompts`, lets it
/// continue each prompt greedily, compares its token embeddings' neighbours
/// and times it: [`measure_batched`] then [`measure_decoding`], in this
/// process.
pub fn measure(
    family: &Family,
    text: &str,
    prompts: &[String],
    eval: &EvalOptions,
    session: SessionOptions,
) -> Result<FamilyMeasurements, FamilyError> {
    let mut m = measure_batched(family, text, prompts, eval, session, session.device)?;
    measure_decoding(family, text, prompts, session)?.apply(&mut m);
    Ok(m)
}

/// What is measured one token at a time: greedy continuations and speed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decoding {
    pub generations: Vec<PromptGenerations>,
    pub generation_ms: f64,
    pub speed: Vec<Speed>,
    pub speed_ms: f64,
}

impl Decoding {
    /// Puts the continuations and speeds into `m`.
    pub fn apply(self, m: &mut FamilyMeasurements) {
        m.generations = self.generations;
        m.generation_ms = self.generation_ms;
        m.speed = self.speed;
        m.speed_ms = self.speed_ms;
    }
}

/// The family's measurements made on whole batches: output statistics on
/// `text`, layers, logit lens and attention on `prompts`, weight errors and
/// embedding neighbours (generations and speed left empty). The logit
/// lens's products run on `analytics` (`--analytics-device`).
pub fn measure_batched(
    family: &Family,
    text: &str,
    prompts: &[String],
    eval: &EvalOptions,
    session: SessionOptions,
    analytics: Device,
) -> Result<FamilyMeasurements, FamilyError> {
    let start = Instant::now();
    let (mut reference, mut sessions) = load_members(family, session)?;
    let mut refs: Vec<&mut Session> = sessions.iter_mut().collect();
    let outputs = output::evaluate(&mut reference, &mut refs, text, eval)?;
    let evaluation_ms = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let ids = prompt_ids(&reference, prompts)?;
    // The logit lens: each model's own output norm and head, on the
    // analytics device.
    let parts = std::iter::once(&reference)
        .chain(refs.iter().map(|s| &**s))
        .map(HeadParts::of)
        .collect::<Result<Vec<_>, _>>()?;
    let mut heads = parts
        .iter()
        .zip(std::iter::once(&reference).chain(refs.iter().map(|s| &**s)))
        .map(|(p, s)| p.head(s, analytics))
        .collect::<Result<Vec<_>, _>>()?;
    let (base_head, member_heads) = heads
        .split_first_mut()
        .ok_or_else(|| EngineError::InvalidRequest("no output head".into()))?;
    let layers = measure_family_layers(
        &mut reference,
        &mut refs,
        &ids,
        Some(LensHeads {
            reference: base_head,
            members: member_heads,
        }),
    )?;
    drop(heads);
    let capture_ms = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let weights = refs
        .iter()
        .map(|m| weight_errors(&reference, m))
        .collect::<Result<Vec<_>, _>>()?;
    let weights_ms = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let neighbours = if reference.gguf().tensor(neighbours::TENSOR).is_some() {
        let base = neighbours::sample_neighbours(reference.gguf())?;
        let piece = |id: u32| {
            reference
                .token(TokenId::try_from(id).unwrap_or_default())
                .map(|t| t.piece)
                .unwrap_or_default()
        };
        refs.iter()
            .map(|m| {
                let mine = neighbours::sample_neighbours(m.gguf())?;
                Ok(Some(neighbours::summarise(&base, &mine, &piece)))
            })
            .collect::<Result<Vec<_>, FamilyError>>()?
    } else {
        vec![None; refs.len()]
    };
    let neighbours_ms = start.elapsed().as_secs_f64() * 1e3;
    Ok(FamilyMeasurements {
        family: family.clone(),
        outputs,
        evaluation_ms,
        layers,
        capture_ms,
        weights,
        weights_ms,
        generations: Vec::new(),
        generation_ms: 0.0,
        neighbours,
        neighbours_ms,
        speed: Vec::new(),
        speed_ms: 0.0,
    })
}

/// The reference and every member (the reference among them, loaded
/// again), each in a session of its own.
fn load_members(
    family: &Family,
    session: SessionOptions,
) -> Result<(Session, Vec<Session>), EngineError> {
    let reference = Session::load(&family.members[family.reference].path, session)?;
    let members = family
        .members
        .iter()
        .map(|m| Session::load(&m.path, session))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((reference, members))
}

/// The prompts' token ids, by the reference's tokenizer.
fn prompt_ids(reference: &Session, prompts: &[String]) -> Result<Vec<Vec<TokenId>>, EngineError> {
    prompts
        .iter()
        .map(|p| Ok(reference.tokenize(p)?.into_iter().map(|t| t.id).collect()))
        .collect()
}

/// The family's measurements made one token at a time: each member's
/// greedy continuation of every prompt, then its speed and memory, one
/// member loaded afresh at a time with every other session freed.
/// llama.cpp's threads wait between the small graphs of single-token
/// decodes; the CLI runs this part without the passive wait policy it
/// gives batched work (see `worker`), as llama-bench runs.
pub fn measure_decoding(
    family: &Family,
    text: &str,
    prompts: &[String],
    session: SessionOptions,
) -> Result<Decoding, FamilyError> {
    let start = Instant::now();
    let (mut reference, mut sessions) = load_members(family, session)?;
    let mut refs: Vec<&mut Session> = sessions.iter_mut().collect();
    let ids = prompt_ids(&reference, prompts)?;
    let generations = generations::generate(
        &mut reference,
        &mut refs,
        prompts,
        &ids,
        generations::DEFAULT_TOKENS,
    )?;
    let generation_ms = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let options = SpeedOptions::default();
    let mut bench: Vec<TokenId> = reference
        .tokenize(text)?
        .into_iter()
        .map(|t| t.id)
        .collect();
    bench.truncate(options.prompt_tokens);
    drop(refs);
    drop(sessions);
    drop(reference);
    let speed = family
        .members
        .iter()
        .map(|m| speed::measure(&m.path, session, &bench, &options))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Decoding {
        generations,
        generation_ms,
        speed,
        speed_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::synthetic::SyntheticModel;

    fn write(dir: &Path, name: &str, model: &SyntheticModel) -> PathBuf {
        let p = dir.join(name);
        model.writer().write(&p).expect("written");
        p
    }

    #[test]
    fn a_file_alone_forms_no_family_and_two_copies_form_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write(dir.path(), "a.gguf", &SyntheticModel::default());
        assert!(
            group(std::slice::from_ref(&a), None)
                .expect("grouped")
                .is_empty()
        );
        let b = write(dir.path(), "b.gguf", &SyntheticModel::default());
        let fams = group(&[a.clone(), b.clone()], Some(&b)).expect("grouped");
        assert_eq!(fams.len(), 1);
        assert_eq!(fams[0].members.len(), 2);
        assert_eq!(fams[0].members[fams[0].reference].path, b);
    }

    #[test]
    fn a_member_with_another_shape_is_refused_naming_the_tensor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write(dir.path(), "a.gguf", &SyntheticModel::default());
        let wider = SyntheticModel {
            n_ff: 192,
            ..SyntheticModel::default()
        };
        let b = write(dir.path(), "b.gguf", &wider);
        let err = group(&[a, b], None).unwrap_err().to_string();
        assert!(err.contains("b.gguf") && err.contains("ffn_"), "{err}");
    }

    #[test]
    fn the_reference_defaults_to_the_most_bits_per_weight() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = write(dir.path(), "q.gguf", &SyntheticModel::default());
        let f = write(
            dir.path(),
            "f.gguf",
            &SyntheticModel {
                types: crate::gguf::synthetic::all_f32,
                ..SyntheticModel::default()
            },
        );
        let fams = group(&[q, f.clone()], None).expect("grouped");
        assert_eq!(fams[0].members[fams[0].reference].path, f);
        let unknown = group(std::slice::from_ref(&f), Some(Path::new("elsewhere.gguf")));
        assert!(unknown.unwrap_err().to_string().contains("elsewhere.gguf"));
    }
}

//! Data parallelism over the ranks of [`wsbcn_dist::world`], as PyTorch's
//! DistributedDataParallel does it: rank 0's variables are broadcast at the
//! start, every optimizer step averages the gradients over the ranks, and
//! the buffers that take no gradient (BN running statistics, estimated-BN
//! estimates) are broadcast from rank 0 after it (DDP's
//! `broadcast_buffers`; the trainer skips this for estimates kept per rank,
//! `NormConfig::local_estimates`), so every rank holds the same model.
//!
//! Tensors travel in sorted-name order (a `VarMap` is a hash map, whose
//! order differs between processes; a different order would pair unrelated
//! tensors in a reduction), flattened into host buckets of one dtype and at
//! most [`BUCKET_BYTES`] each: one collective per bucket instead of one per
//! tensor. Tensors on a GPU are staged through host memory (copied to a
//! host vector and back); a direct NCCL path is not part of wsbcn.

use crate::optim::Grads;
use crate::{Error, Result};
use candle_core::{DType, Tensor, WithDType};
use candle_nn::VarMap;
use std::collections::BTreeMap;
use wsbcn_dist::{Element, World};

/// The largest bucket, in bytes: PyTorch DDP's default `bucket_cap_mb`
/// of 25.
pub const BUCKET_BYTES: usize = 25 << 20;

/// What a bucket goes through.
#[derive(Clone, Copy)]
enum Collective {
    /// Summed over the ranks, then scaled.
    Mean,
    /// Rank 0's values on every rank.
    FromMain,
}

/// `grads <- mean over ranks of grads`, on every rank. Returns the bytes
/// this rank put into the reductions (0 in one process). Every rank must
/// hold gradients of the same names and sizes (a parameter one rank did
/// not use would pair unrelated tensors): that is checked first, and a
/// mismatch is an error on every rank.
pub fn average_gradients(world: &World, grads: &mut Grads) -> Result<usize> {
    if world.size() == 1 {
        return Ok(0);
    }
    if !world.all_agree(fingerprint(grads)) {
        return Err(Error::Invalid(format!(
            "the ranks hold gradients of different parameters or sizes (rank {} has {}): a \
             parameter some ranks did not use this step",
            world.rank(),
            grads.len()
        )));
    }
    through_buckets(world, grads, Collective::Mean)
}

/// FNV-1a over the names and element counts of `grads`, in order.
fn fingerprint(grads: &Grads) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, t) in grads {
        let count = t.elem_count() as u64;
        for b in name.bytes().chain(count.to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Sets every variable of `varmap` for which `pick(name)` holds to rank
/// 0's value, on every rank. Returns the bytes broadcast (0 in one
/// process).
pub fn broadcast_vars(
    world: &World,
    varmap: &VarMap,
    pick: impl Fn(&str) -> bool,
) -> Result<usize> {
    if world.size() == 1 {
        return Ok(0);
    }
    let data = varmap.data().lock().unwrap_or_else(|p| p.into_inner());
    let mut named: BTreeMap<String, Tensor> = data
        .iter()
        .filter(|(n, _)| pick(n))
        .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
        .collect();
    let bytes = through_buckets(world, &mut named, Collective::FromMain)?;
    for (name, t) in named {
        data[&name].set(&t)?;
    }
    Ok(bytes)
}

/// Runs `op` on `tensors` bucket by bucket (see the module docs) and
/// replaces each tensor by its result; returns the bytes carried.
fn through_buckets(
    world: &World,
    tensors: &mut BTreeMap<String, Tensor>,
    op: Collective,
) -> Result<usize> {
    let mut bucket: Vec<String> = vec![];
    let (mut bytes, mut dtype, mut total) = (0, None, 0);
    let names: Vec<String> = tensors.keys().cloned().collect();
    for name in names {
        let this = tensors[&name].dtype();
        let size = tensors[&name].elem_count() * this.size_in_bytes();
        if !bucket.is_empty() && (dtype != Some(this) || bytes + size > BUCKET_BYTES) {
            bucket_op(world, tensors, &bucket, op)?;
            bucket.clear();
            bytes = 0;
        }
        dtype = Some(this);
        bucket.push(name);
        bytes += size;
        total += size;
    }
    if !bucket.is_empty() {
        bucket_op(world, tensors, &bucket, op)?;
    }
    Ok(total)
}

fn bucket_op(
    world: &World,
    tensors: &mut BTreeMap<String, Tensor>,
    names: &[String],
    op: Collective,
) -> Result<()> {
    match tensors[&names[0]].dtype() {
        DType::F32 => bucket_as::<f32>(world, tensors, names, op),
        DType::F64 => bucket_as::<f64>(world, tensors, names, op),
        other => Err(Error::Invalid(format!(
            "data parallelism carries f32 and f64 tensors, `{}` is {other:?}",
            names[0]
        ))),
    }
}

/// One bucket of element type `T`: flattened to the host in name order,
/// through the collective, and split back onto each tensor's device.
fn bucket_as<T: Element + WithDType>(
    world: &World,
    tensors: &mut BTreeMap<String, Tensor>,
    names: &[String],
    op: Collective,
) -> Result<()> {
    let mut flat: Vec<T> = vec![];
    for n in names {
        flat.extend(tensors[n].flatten_all()?.to_vec1::<T>()?);
    }
    match op {
        Collective::Mean => world.all_reduce_sum(&mut flat),
        Collective::FromMain => world.broadcast(&mut flat, 0),
    }
    let mut at = 0;
    for n in names {
        let t = &tensors[n];
        let len = t.elem_count();
        let mut back = Tensor::from_slice(&flat[at..at + len], t.shape(), t.device())?;
        if let Collective::Mean = op {
            back = (back / world.size() as f64)?;
        }
        tensors.insert(n.clone(), back);
        at += len;
    }
    Ok(())
}

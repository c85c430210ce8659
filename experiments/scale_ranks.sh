#!/usr/bin/env bash
# Issue 16 point 5: 1 rank x 2 threads against 2 ranks x 1 thread at the
# same global batch, DeepLabV3 (fashion_voc_gn_ws: ResNet-18 x0.25, crop 64)
# and R(2+1)D-18 x0.25 (fashion_ssv2_gn_ws), 3 interleaved rounds; prints
# the median step time and, on 2 ranks, the collectives' time and bytes per
# step from the run logs. Needs release binaries built with `--features mpi`
# (cargo build --release --features mpi -p wsbcn-seg -p wsbcn-video), the
# data sets data/fashion-voc and data/fashion-ssv2 (wsbcn-data, see the
# configs), Open MPI, and h5py. Results: the README's "Scaling" section.
set -u
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
OUT=/tmp/scale; rm -rf $OUT; mkdir -p $OUT
common=(--set train.steps=40 --set train.eval_interval=0 --set 'train.eval_steps=[]' --set train.checkpoint_interval=0 --set train.log_interval=1000 --set train.diag_interval=0 --set data.val_limit=8 --set train.data.workers=1)
for round in 1 2 3; do
  for task in seg video; do
    if [ $task = seg ]; then bin=target/release/wsbcn-seg; cfg=configs/seg/fashion_voc_gn_ws.toml; gb=8; else bin=target/release/wsbcn-video; cfg=configs/video/fashion_ssv2_gn_ws.toml; gb=8; fi
    $bin train --config $cfg "${common[@]}" --set train.data.batch_size=$gb --run-dir $OUT/$task-1x2-r$round > $OUT/$task-1x2-r$round.log 2>&1
    mpirun --oversubscribe --bind-to none -np 2 $bin train --config $cfg "${common[@]}" --set train.data.batch_size=$((gb/2)) --run-dir $OUT/$task-2x1-r$round > $OUT/$task-2x1-r$round.log 2>&1
  done
done
/usr/bin/python3 - <<'PY'
import h5py, numpy as np, glob
for task in ["seg", "video"]:
    for mode in ["1x2", "2x1"]:
        steps, comm, nbytes = [], [], []
        for r in (1, 2, 3):
            with h5py.File(f"/tmp/scale/{task}-{mode}-r{r}/run.h5") as f:
                w = f["steps/wall_s"][:]
                dt = np.diff(w)[9:]  # steps 11..40
                steps.append(np.median(dt))
                if "steps/comm_s" in f:
                    comm.append(np.median(f["steps/comm_s"][10:]))
                    nbytes.append(f["steps/comm_bytes"][-1])
        line = f"{task} {mode}: step median over rounds {np.median(steps)*1000:.1f} ms (rounds {', '.join(f'{s*1000:.1f}' for s in steps)})"
        if comm:
            line += f"; comm {np.median(comm)*1000:.2f} ms/step, {nbytes[0]/1e6:.2f} MB per rank per step"
        print(line)
PY

set -e
export FMNIST=$PWD/.devdata PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__)"
L=conv1:mean,conv2:mean,pool2,fc1,fc2
E="python3 tools/export-activations --model jobs/demo/train.py:SmallCNN --layers $L --job .devdata/job.yaml --dataset fmnist --batch 100 --shard 200"
time $E --checkpoints "jobs/demo/checkpoints/seed*/epoch_*.*" --out /tmp/acts --device cuda
time $E --checkpoints "jobs/demo/checkpoints/seed*/epoch_05.*" --out /tmp/acts_tf32 --device cuda --allow-tf32
for s in 0 1 2; do tar -C /tmp/acts -czf $OUT/acts_seed$s.tgz seed$s; done
tar -C /tmp/acts_tf32 -czf $OUT/acts_tf32.tgz .
ls -la $OUT

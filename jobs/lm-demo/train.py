#!/usr/bin/env python3
"""Train the language-model demo's GPT-NeoX models on fortunes (Debian's `fortunes`
package) from several seeds and save Hugging Face model folders at several steps:
OUTDIR/seed{S}/step{N}/ with config.json, generation_config.json, model.safetensors
(float16) and the tokenizer files. CPU, deterministic.

The training text is folds 1-4 of the five categories' fortunes (lmtext.split; fold 0
is the demo's held-out test set), each followed by <|endoftext|>, packed into one
stream; a step takes --batch windows of --context + 1 tokens at random offsets and
minimises the next-token cross-entropy (AdamW, linear warm-up, cosine decay).

usage: train.py OUTDIR [--seeds 1 2 3] [--save 0 30 120 500] [--jobs 2]
       train.py --check     (retrain the first seed to its first save after step 0 and
                             compare with the committed folders in models/)
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lmtext  # noqa: E402
import neox  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256,
             max_position_embeddings=128)


def token_streams(tokenizer):
    """(training stream, held-out stream, vocabulary size): each fortune's ids then
    <|endoftext|>, in corpus order."""
    enc = lmtext.Encoder(tokenizer)
    eot = enc.special[lmtext.EOT]
    out = []
    for part in lmtext.split(lmtext.corpus()):
        ids = []
        for text, _ in part:
            ids += enc.encode(text) + [eot]
        out.append(torch.tensor(ids, dtype=torch.int64))
    return out[0], out[1], len(enc.vocab)


def heldout_loss(model, heldout, ctx, windows=64):
    """Mean next-token loss over the first `windows` disjoint windows of the held-out stream."""
    n = min(windows, (len(heldout) - 1) // ctx)
    win = torch.stack([heldout[k * ctx:k * ctx + ctx + 1] for k in range(n)])
    model.eval()
    with torch.no_grad():
        logits, _ = model(win[:, :-1])
        return float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), win[:, 1:].reshape(-1)))


def lr_at(step, total, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train_seed(seed, stream, heldout, vocab, args, out, stop=None):
    """Train from seed, saving at args.save into out/seed{seed}/step{N}; the schedule
    runs to max(args.save), `stop` ends the run early (for --check). Returns the
    held-out loss at the last save."""
    torch.manual_seed(seed)
    cfg = neox.make_config(vocab, **SIZES)
    model = neox.GPTNeoXForCausalLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    g = torch.Generator().manual_seed(10_000 + seed)
    total = max(args.save)
    end = total if stop is None else min(stop, total)
    ctx = args.context
    t0, run, held = time.monotonic(), 0.0, None
    for step in range(end + 1):
        if step in args.save:
            neox.save_folder(model, os.path.join(out, f"seed{seed}", f"step{step}"), args.tokenizer)
            held = heldout_loss(model, heldout, ctx)
            print(f"seed {seed} step {step}: held-out loss {held:.3f}, saved", flush=True)
        if step == end:
            break
        starts = torch.randint(0, len(stream) - ctx - 1, (args.batch,), generator=g)
        win = torch.stack([stream[s:s + ctx + 1] for s in starts.tolist()])
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total, args.lr, args.warmup)
        model.train()
        logits, _ = model(win[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab), win[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run = float(loss) if step == 0 else 0.95 * run + 0.05 * float(loss)
        if (step + 1) % args.log_every == 0 or step == 0:
            print(f"seed {seed} step {step + 1}: loss {run:.3f} ({time.monotonic() - t0:.0f} s)", flush=True)
    return held


def compare(made, committed, tol):
    """Differences between a folder made now and the committed one: the JSON and
    tokenizer files byte for byte, the tensors within tol (0: bit for bit)."""
    problems = []
    for f in ("config.json", "generation_config.json") + neox.TOKENIZER_FILES:
        with open(os.path.join(made, f), "rb") as a, open(os.path.join(committed, f), "rb") as b:
            if a.read() != b.read():
                problems.append(f"{f} differs")
    x = neox.load_safetensors(os.path.join(made, "model.safetensors"))
    y = neox.load_safetensors(os.path.join(committed, "model.safetensors"))
    if sorted(x) != sorted(y):
        return problems + ["the tensor names differ"]
    worst = max(float((x[k].float() - y[k].float()).abs().max()) for k in x)
    if worst > tol or (tol == 0 and any(not torch.equal(x[k], y[k]) for k in x)):
        problems.append(f"tensors differ by up to {worst:.3g} (allowed {tol:g})")
    return problems


def check(args, stream, heldout, vocab):
    """Retrain the first seed to its first save after step 0 and compare with the
    committed folders: step 0 (the initialisation) bit for bit, the trained step
    within 1e-3 (float rounding of another CPU may differ); and the held-out loss fell
    by 0.5 below that of uniform predictions."""
    import tempfile
    seed, stop = args.seeds[0], sorted(args.save)[1]
    with tempfile.TemporaryDirectory(prefix="lm-demo-check-") as tmp:
        loss = train_seed(seed, stream, heldout, vocab, args, tmp, stop=stop)
        problems = []
        for step in [s for s in sorted(args.save) if s <= stop]:
            name = os.path.join(f"seed{seed}", f"step{step}")
            problems += [f"{name}: {p}" for p in compare(os.path.join(tmp, name), os.path.join(args.models, name),
                                                       0.0 if step == 0 else 1e-3)]
    if loss > math.log(vocab) - 0.5:
        problems.append(f"the held-out loss after {stop} steps is {loss:.3f} (uniform: {math.log(vocab):.3f})")
    for p in problems:
        print(f"check: {p}")
    print(f"check: seed {seed} to step {stop} {'reproduces the committed folders' if not problems else 'FAILED'}")
    return not problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?")
    ap.add_argument("--tokenizer", default=os.path.join(HERE, "tokenizer"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--save", type=int, nargs="+", default=[0, 30, 120, 500])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per seed")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="seeds trained at once")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--models", default=os.path.join(HERE, "models"), help="--check: the committed folders")
    args = ap.parse_args()
    if not args.check and not args.out:
        ap.error("give OUTDIR (or --check)")
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    t0 = time.monotonic()
    stream, heldout, vocab = token_streams(args.tokenizer)
    print(f"{len(stream)} training tokens, {len(heldout)} held out, vocabulary {vocab}", flush=True)
    if args.check:
        sys.exit(0 if check(args, stream, heldout, vocab) else 1)
    work = [(seed, stream, heldout, vocab, args, args.out) for seed in args.seeds]
    if args.jobs > 1 and len(work) > 1:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(min(args.jobs, len(work))) as pool:
            pool.starmap(train_seed, work)
    else:
        for w in work:
            train_seed(*w)
    print(f"trained {len(args.seeds)} seeds in {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()

"""Train a small AutoFocusFormer classifier on synthetic images (pure PyTorch, CPU, minutes).

    python tools/aff_synthetic_train.py [--steps 1000] [--batch 32] [--size 64] [--seed 0]
                                        [--threads 1] [--alpha 4.0]

Each image is a smooth random grey gradient (plus noise) with two small squares (6x6 px) at random
places, each red or green; the label is the number of red squares (0, 1, 2). The
squares are the only thing that matters, and they cover a few stride-4 tokens only, so
a backbone that keeps the tokens on them after downsampling has an easier task. The
script shows what the paper claims for adaptive downsampling (Sec. 3.3):

* the loss falls (and accuracy rises) over training;
* the importance scores learned only through the merge weights change which tokens
  the first downsampling keeps: on a fixed evaluation batch it prints the fraction of
  kept tokens that differ from those kept at initialisation, the fraction of kept
  tokens that lie on a square, and the mean score of square vs background tokens,
  before and after training.

No mmcv/mmengine needed; ``--threads 1`` avoids OpenMP oversubscription on a shared
machine. Output of one run is recorded in docs/autofocusformer.md.
"""
import argparse
import os.path as osp
import sys
import time
from typing import Dict, Tuple

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from fusion_necks.backbones.autofocusformer import AutoFocusFormerNet  # noqa: E402

SQUARE = 6


def make_batch(g: torch.Generator, batch: int,
               size: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images ``B x 3 x S x S``, labels ``B`` (number of red squares) and the stride-4
    token mask ``B x (S/4)^2`` of tokens whose 4x4 patch overlaps a square."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing='ij')
    coef = torch.rand(batch, 1, 3, generator=g) * 0.4 - 0.2  # grey gradient, random tilt
    img = (0.5 + coef[..., 0, None, None] * xs + coef[..., 1, None, None] * ys
           + coef[..., 2, None, None])
    img = img.expand(-1, 3, -1, -1) + 0.03 * torch.randn(batch, 3, size, size, generator=g)
    red = torch.rand(batch, 2, generator=g) < 0.5
    corner = torch.randint(0, size - SQUARE + 1, (batch, 2, 2), generator=g)  # (x, y)
    pix = torch.arange(size)
    inside = ((pix.view(1, 1, 1, size) >= corner[..., 0, None, None])
              & (pix.view(1, 1, 1, size) < corner[..., 0, None, None] + SQUARE)
              & (pix.view(1, 1, size, 1) >= corner[..., 1, None, None])
              & (pix.view(1, 1, size, 1) < corner[..., 1, None, None] + SQUARE))  # B x 2 x S x S
    colour = torch.where(red.unsqueeze(-1), torch.tensor([0.9, 0.1, 0.1]),
                         torch.tensor([0.1, 0.8, 0.1]))
    for k in range(2):
        m = inside[:, k].unsqueeze(1)
        img = torch.where(m, colour[:, k].view(batch, 3, 1, 1), img)
    labels = red.sum(1)
    token_mask = F.max_pool2d(inside.any(1, keepdim=True).float(), 4).flatten(1) > 0
    return (img - 0.5) / 0.25, labels, token_mask


@torch.no_grad()
def kept_tokens(model: AutoFocusFormerNet, x: torch.Tensor,
                token_mask: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Tokens kept by the first downsampling, as canvas cell ids, and score statistics."""
    was_training = model.training
    model.eval()
    stage, down = model.forward_stages(x)[0]
    model.train(was_training)
    w = stage.canvas[1]
    lin = stage.pos[..., 1] * w + stage.pos[..., 0]  # B x N (stage-1 order)
    kept = lin.gather(1, down.kept_idx)
    on_obj = token_mask.gather(1, lin)  # B x N, in the stage order
    score = down.score
    kept_on = token_mask.gather(1, kept)
    return dict(kept=kept, on_object=kept_on.float().mean(),
                recall=kept_on.sum().float() / token_mask.sum().clamp_min(1),
                score_obj=score[on_obj].mean(), score_bg=score[~on_obj].mean())


def jaccard_change(a: torch.Tensor, b: torch.Tensor, cells: int) -> float:
    """Mean fraction of kept tokens that differ between two selections of equal size."""
    ma = torch.zeros(a.shape[0], cells, dtype=torch.bool).scatter_(1, a, True)
    mb = torch.zeros(b.shape[0], cells, dtype=torch.bool).scatter_(1, b, True)
    return 1.0 - (ma & mb).sum(1).float().div(a.shape[1]).mean().item()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--steps', type=int, default=1000)
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--size', type=int, default=64)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--alpha', type=float, default=4.0)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--log-every', type=int, default=100)
    args = p.parse_args(argv)
    if args.size % 16:
        raise SystemExit(f'--size must be a multiple of 16, got {args.size}')
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    model = AutoFocusFormerNet('mini', embed_dims=(32, 64, 96, 128), depths=(1, 1, 2, 1),
                            num_heads=(2, 2, 4, 4), mlp_ratio=2.0, alpha=args.alpha,
                            num_classes=3)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.steps, pct_start=0.1)
    g_eval = torch.Generator().manual_seed(10_000 + args.seed)
    x_eval, y_eval, m_eval = make_batch(g_eval, 128, args.size)
    cells = (args.size // 4) ** 2
    before = kept_tokens(model, x_eval, m_eval)
    print(f'AFF classifier, {sum(q.numel() for q in model.parameters()) / 1e6:.2f}M params, '
          f'{args.size}x{args.size} images ({cells} stride-4 tokens), ds_rate 0.25, '
          f'alpha {args.alpha}, {args.steps} steps of batch {args.batch}')
    history = []
    start = time.perf_counter()
    model.train()
    for step in range(1, args.steps + 1):
        x, y, _ = make_batch(g, args.batch, args.size)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        history.append(loss.item())
        if step % args.log_every == 0 or step == args.steps:
            recent = sum(history[-args.log_every:]) / len(history[-args.log_every:])
            print(f'step {step:4d}  loss {recent:.3f}  ({time.perf_counter() - start:.0f} s)')
    model.eval()
    with torch.no_grad():
        acc = (model(x_eval).argmax(1) == y_eval).float().mean().item()
    after = kept_tokens(model, x_eval, m_eval)
    changed = jaccard_change(before['kept'], after['kept'], cells)
    first = sum(history[:args.log_every]) / len(history[:args.log_every])
    last = sum(history[-args.log_every:]) / len(history[-args.log_every:])
    print(f'loss: first {args.log_every} steps {first:.3f} -> '
          f'last {args.log_every} steps {last:.3f}; '
          f'eval accuracy {acc:.3f} (always predicting the majority class: 0.5)')
    print(f'kept tokens after stage 1 (eval batch of 128): {changed * 100:.1f}% differ from those '
          f'kept at initialisation')
    print(f'fraction of kept tokens on a square: '
          f'{before["on_object"]:.3f} -> {after["on_object"]:.3f} '
          f'(squares cover {m_eval.float().mean():.3f} of the tokens)')
    print(f'fraction of square tokens that are kept: '
          f'{before["recall"]:.3f} -> {after["recall"]:.3f} '
          f'(ds_rate keeps 0.25 of all tokens)')
    print(f'mean importance score, square / background tokens: '
          f'{before["score_obj"]:.3f} / {before["score_bg"]:.3f} -> '
          f'{after["score_obj"]:.3f} / {after["score_bg"]:.3f}')
    return dict(history=history, accuracy=acc, changed=changed, before=before, after=after)


if __name__ == '__main__':
    main()

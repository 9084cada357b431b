"""Train a GraphTransformer on Multi30k.

    python -m dgl_transformer.train --config repro/configs/default.yaml [--set key=value ...]
    python -m dgl_transformer.train --config ... --resume          # continue an interrupted run
    torchrun --nproc_per_node=2 -m dgl_transformer.train --config ...   # data-parallel (DDP)

One loop, no framework: token-budget batches (no padding), label-smoothed cross-entropy, Adam
with linear warm-up then inverse-sqrt decay, gradient clipping. A checkpoint (model,
optimizer, schedule, RNG and data position) is written atomically every
``train.checkpoint_every`` updates and at each epoch end, so ``--resume`` continues exactly
where a killed run stopped. After every epoch: validation loss and greedy validation BLEU.
At the end, the last epoch and the average of the last ``train.average_last`` epochs are
compared on validation BLEU and the better becomes ``final.pt``, which carries everything
``translate`` needs (model config, weights, subword model).

With DDP each global batch is the one a single process would use; rank ``r`` takes its
sentences ``r, r + world, ...`` and the loss is normalised by the global token count, so the
update equals the single-process update on the same global batch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from tqdm import tqdm

from . import checkpoint
from .batching import make_batches
from .config import TransformerConfig
from .data import DataError, fetch, filter_pairs, read_split
from .evaluate import bleu_tok_lc, translate_ids
from .model import GraphTransformer
from .objective import smoothed_and_nll, teacher_forcing
from .run_config import ConfigError, RunConfig, load_config
from .text import TextPipeline


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss)."""


@dataclass
class Split:
    src: list[Tensor]
    tgt: list[Tensor]
    refs_tok: list[str]  # official lowercased tokenised target side, for BLEU


def model_config(cfg: RunConfig, vocab: int) -> TransformerConfig:
    return TransformerConfig(src_vocab=vocab, tgt_vocab=vocab, **vars(cfg.model))


def ensure_data(cfg: RunConfig) -> Path:
    """The data root, fetched (from ``MULTI30K_DIR`` or the canonical URLs) if absent."""
    root = Path(cfg.data.root)
    langs = (cfg.data.src_lang, cfg.data.tgt_lang)
    report = fetch(root, langs=langs)
    if report.fetched:
        print(report.summary(), file=sys.stderr)
    return root


def encode_split(pipeline: TextPipeline, src: list[str], tgt: list[str], refs: list[str]) -> Split:
    def as_tensor(text: str) -> Tensor:
        return torch.tensor(pipeline.encode(text), dtype=torch.int64)

    return Split([as_tensor(s) for s in src], [as_tensor(t) for t in tgt], refs)


def load_splits(cfg: RunConfig, pipeline: TextPipeline, root: Path) -> tuple[Split, Split]:
    """Training pairs (blank and over-long ones dropped, with counts reported) and val."""
    src, tgt = pipeline.read(root, "train")
    if cfg.data.train_limit:
        src, tgt = src[: cfg.data.train_limit], tgt[: cfg.data.train_limit]
    length = lru_cache(maxsize=None)(lambda text: len(pipeline.encode(text)))
    src, tgt, report = filter_pairs(src, tgt, cfg.data.max_len, length_fn=length)
    print(f"train: {report}", file=sys.stderr)
    val_refs = read_split(root, "val", pipeline.tgt_lang, "tok")
    return (
        encode_split(pipeline, src, tgt, []),
        encode_split(pipeline, *pipeline.read(root, "val"), val_refs),
    )


def inverse_sqrt(step: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up to 1 at ``warmup``, then ``sqrt(warmup / step)``."""
    step = max(step, 1)
    return step / warmup if step < warmup else math.sqrt(warmup / step)


class Trainer:
    def __init__(self, cfg: RunConfig, resume: bool) -> None:
        self.cfg = cfg
        self.out = Path(cfg.train.out_dir)
        self.rank, self.world = _init_distributed()
        torch.set_num_threads(cfg.train.threads)
        torch.manual_seed(cfg.train.seed)
        state = checkpoint.load_latest(self.out) if resume else None
        if state is None and (self.out / "last.pt").exists():
            raise TrainingError(
                f"{self.out} already holds checkpoints: pass --resume, or choose another "
                "train.out_dir"
            )
        root = ensure_data(cfg) if self.rank == 0 else Path(cfg.data.root)
        _barrier()
        if state is None:
            d = cfg.data
            self.pipeline = TextPipeline.train(
                root, d.variant, d.src_lang, d.tgt_lang, d.vocab_size
            )
        else:
            self.pipeline = TextPipeline.from_state(state["pipeline"])
        self.train_set, self.val_set = load_splits(cfg, self.pipeline, root)
        self.model_cfg = model_config(cfg, self.pipeline.tokenizer.vocab_size)
        self.model = GraphTransformer(self.model_cfg)
        self.ddp = (
            torch.nn.parallel.DistributedDataParallel(self.model) if self.world > 1 else self.model
        )
        t = cfg.train
        self.opt = torch.optim.Adam(
            self.model.parameters(), lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: inverse_sqrt(s, t.warmup_steps)
        )
        self.step, self.epoch, self.batch_pos, self.elapsed = 0, 0, 0, 0.0
        self.history: list[dict[str, Any]] = []
        self.stopped: str | None = None
        if state is not None:
            self._restore(state)
        self.out.mkdir(parents=True, exist_ok=True)
        self.log = (
            open(self.out / "metrics.jsonl", "a", encoding="utf-8") if self.rank == 0 else None
        )

    # -- checkpoints ---------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "run_config": self.cfg.to_dict(), "model_config": self.model_cfg.to_dict(),
            "pipeline": self.pipeline.to_state(), "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "step": self.step, "epoch": self.epoch, "batch_pos": self.batch_pos,
            "elapsed": self.elapsed, "history": self.history, "rng": torch.get_rng_state(),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.step, self.epoch, self.batch_pos = state["step"], state["epoch"], state["batch_pos"]
        self.elapsed, self.history = state["elapsed"], state["history"]
        torch.set_rng_state(state["rng"])
        print(f"resuming at epoch {self.epoch}, batch {self.batch_pos}, step {self.step}",
              file=sys.stderr)

    def save(self) -> None:
        if self.rank == 0:
            checkpoint.rotate_and_save(self._state(), self.out)

    def write_log(self, record: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.write(json.dumps(record) + "\n")
            self.log.flush()

    # -- training ------------------------------------------------------------------------
    def batches(self, epoch: int) -> list[list[int]]:
        lens_s = [len(s) for s in self.train_set.src]
        lens_t = [len(t) + 1 for t in self.train_set.tgt]
        return make_batches(lens_s, lens_t, self.cfg.train.max_tokens, shuffle=True,
                            seed=self.cfg.train.seed, epoch=epoch)

    def train_step(self, batch: list[int]) -> tuple[float, float, int]:
        """One update on a global batch; returns its smoothed loss, NLL and target tokens."""
        mine = batch[self.rank :: self.world]
        weight = 1.0 if mine else 0.0  # a rank with no sentence still joins the all-reduce
        mine = mine or batch[:1]
        n_tokens = sum(len(self.train_set.tgt[i]) + 1 for i in batch)
        tgt_in, gold = teacher_forcing([self.train_set.tgt[i] for i in mine])
        logits = self.ddp([self.train_set.src[i] for i in mine], tgt_in)
        loss_sum, nll_sum = smoothed_and_nll(logits, gold, self.cfg.train.label_smoothing)
        # DDP averages gradients over ranks: scale so the update is that of the global mean
        (loss_sum * (weight * self.world / n_tokens)).backward()
        sums = torch.stack([loss_sum.detach() * weight, nll_sum * weight])
        if self.world > 1:
            dist.all_reduce(sums)
        loss, nll = (sums / n_tokens).tolist()
        if not math.isfinite(loss):
            raise TrainingError(
                f"non-finite loss ({loss}) at step {self.step + 1} (epoch {self.epoch}, batch "
                f"{self.batch_pos}); stopped, last good checkpoint kept in {self.out}"
            )
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.clip_norm)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        return loss, nll, n_tokens

    def tick(self) -> None:
        """Add the wall time since the last tick (training and validation) to ``elapsed``."""
        now = time.perf_counter()
        self.elapsed += now - self._last_tick
        self._last_tick = now

    def out_of_time(self) -> bool:
        t = self.cfg.train
        if t.max_steps and self.step >= t.max_steps:
            self.stopped = f"max_steps={t.max_steps}"
        elif t.time_limit_minutes and self.elapsed >= 60 * t.time_limit_minutes:
            self.stopped = f"time_limit_minutes={t.time_limit_minutes}"
        stop = self.stopped is not None
        if self.world > 1:  # every rank must stop at the same step
            flag = torch.tensor([float(stop)])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
            self.stopped = self.stopped or ("another rank stopped" if stop else None)
        return stop

    def fit(self) -> None:
        t = self.cfg.train
        self._last_tick = time.perf_counter()
        per_epoch = len(self.batches(0))
        bar = tqdm(total=per_epoch * t.max_epochs, initial=self.epoch * per_epoch + self.batch_pos,
                   disable=self.rank != 0, unit="batch", dynamic_ncols=True)
        window = {"loss": 0.0, "nll": 0.0, "tokens": 0, "time": 0.0}
        while self.epoch < t.max_epochs and not self.out_of_time():
            self.model.train()
            batches = self.batches(self.epoch)
            epoch_loss = epoch_tokens = 0.0
            while self.batch_pos < len(batches) and not self.out_of_time():
                started = time.perf_counter()
                loss, nll, n = self.train_step(batches[self.batch_pos])
                spent = time.perf_counter() - started
                self.tick()
                self.step += 1
                self.batch_pos += 1
                epoch_loss, epoch_tokens = epoch_loss + nll * n, epoch_tokens + n
                for key, value in (("loss", loss * n), ("nll", nll * n), ("tokens", n),
                                   ("time", spent)):
                    window[key] += value
                bar.update()
                if self.step % t.log_every == 0:
                    self._log_window(window, bar)
                if self.step % t.checkpoint_every == 0:
                    self.save()
            if self.batch_pos < len(batches):
                break  # out of time mid-epoch; the last checkpoint is written below
            self.end_epoch(epoch_loss / max(epoch_tokens, 1))
        bar.close()
        self.save()
        if self.rank == 0:
            self.finish()

    def _log_window(self, window: dict[str, float], bar: tqdm) -> None:
        tokens = max(window["tokens"], 1)
        rate = window["tokens"] / max(window["time"], 1e-9)
        record = {
            "kind": "train", "step": self.step, "epoch": self.epoch,
            "loss": window["loss"] / tokens, "nll": window["nll"] / tokens,
            "lr": self.sched.get_last_lr()[0], "tokens_per_s": rate, "elapsed_s": self.elapsed,
        }
        bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{rate:,.0f}", epoch=self.epoch)
        self.write_log(record)
        window.update(loss=0.0, nll=0.0, tokens=0, time=0.0)

    def end_epoch(self, train_nll: float) -> None:
        record = {"kind": "epoch", "epoch": self.epoch, "step": self.step,
                  "train_nll": train_nll, "elapsed_s": self.elapsed}
        if self.rank == 0:
            record.update(self.validate(self.model))
            self.tick()
            record["elapsed_s"] = self.elapsed
            path = self.out / f"epoch{self.epoch:03d}.pt"
            checkpoint.save_atomic({"model": self.model.state_dict()}, path)
        self.history.append(record)
        self.write_log(record)
        print(json.dumps(record), file=sys.stderr)
        self.epoch += 1
        self.batch_pos = 0
        self.save()

    @torch.no_grad()
    def validate(self, model: GraphTransformer) -> dict[str, float]:
        """Validation NLL per token and greedy BLEU (``bleu_tok_lc`` protocol)."""
        model.eval()
        val = self.val_set
        nll = tokens = 0
        for batch in make_batches([len(s) for s in val.src], [len(t) + 1 for t in val.tgt],
                                  self.cfg.train.max_tokens, shuffle=False):
            tgt_in, gold = teacher_forcing([val.tgt[i] for i in batch])
            nll += smoothed_and_nll(model([val.src[i] for i in batch], tgt_in), gold, 0.0)[1]
            tokens += len(gold)
        n = self.cfg.train.val_bleu_sentences or len(val.src)
        e = self.cfg.eval
        hyps = translate_ids(model, [s.tolist() for s in val.src[:n]], 1, e.length_penalty,
                             e.max_len_a, e.max_len_b, e.batch_sentences)
        plain = [self.pipeline.decode_tgt(h, plain=True) for h in hyps]
        bleu = bleu_tok_lc(plain, val.refs_tok[:n], self.pipeline.tgt_lang)
        model.train()
        return {"val_nll": float(nll) / tokens, "val_bleu_greedy": round(bleu, 2)}

    def finish(self) -> None:
        """Pick last epoch vs. averaged last epochs on val BLEU; write ``final.pt``."""
        epochs = sorted(self.out.glob("epoch*.pt"))[-self.cfg.train.average_last :]
        candidates = {"last": self.model.state_dict()}
        if len(epochs) > 1:
            states = [checkpoint.load(p)["model"] for p in epochs]
            candidates[f"average_last_{len(states)}"] = {
                k: sum(s[k].float() for s in states) / len(states) for k in states[0]
            }
        scores = {}
        probe = GraphTransformer(self.model_cfg)
        for name, weights in candidates.items():
            probe.load_state_dict(weights)
            scores[name] = self.validate(probe)
            print(f"final candidate {name}: {scores[name]}", file=sys.stderr)
        best = max(scores, key=lambda k: scores[k]["val_bleu_greedy"])
        checkpoint.save_atomic({
            "run_config": self.cfg.to_dict(), "model_config": self.model_cfg.to_dict(),
            "pipeline": self.pipeline.to_state(), "model": candidates[best], "chosen": best,
            "candidates": scores, "history": self.history, "stopped": self.stopped,
            "train_seconds": self.elapsed, "steps": self.step,
        }, self.out / "final.pt")
        self.write_log({"kind": "final", "chosen": best, "candidates": scores,
                        "stopped": self.stopped, "train_seconds": self.elapsed})


def _init_distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dgl_transformer.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML run configuration")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override config values, e.g. train.max_epochs=2")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    args = parser.parse_args(argv)
    try:
        Trainer(load_config(args.config, args.set), args.resume).fit()
    except (ConfigError, DataError, checkpoint.CheckpointError, TrainingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())

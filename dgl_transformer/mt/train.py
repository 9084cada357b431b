"""Train a GraphTransformer on Multi30k.

    dgl-transformer train --config repro/configs/default.yaml [--set key=value ...]
    dgl-transformer train --config ... --resume          # continue an interrupted run
    python -m dgl_transformer.mt.train --config ...      # the same
    torchrun --nproc_per_node=2 -m dgl_transformer.mt.train --config ...   # data-parallel (DDP)

One loop, no framework: token-budget batches (no padding; our count or fairseq's, and
``train.batches_per_update`` of them in one update), label-smoothed cross-entropy, Adam with
linear warm-up (or none) then inverse-sqrt decay, gradient clipping. A run stops at
``train.max_steps`` updates (the recorded runs are limited by updates, so that they do not
depend on the machine's load), at ``train.max_epochs``, when val NLL has not improved for
``train.patience`` epochs, or at the safety time limit. A progress bar shows loss, tokens/s and
ETA; ``metrics.jsonl`` in the run directory gets one JSON record per ``train.log_every``
updates (``kind: train``, with the machine's 1-minute load average), per epoch (``epoch``) and
at the end (``final``).

A checkpoint (model, optimizer, schedule, RNG states, data position, running sums and the
metrics log's size) is written atomically every ``train.checkpoint_every`` updates and at
each epoch end. ``--resume`` continues exactly where a killed run's last checkpoint stopped:
on CPU the resumed run's losses and weights equal an uninterrupted run's bit for bit. Ctrl-C
or SIGTERM stops a run at the end of the current update with a checkpoint, so a run of many
hours can be trained in pieces.
``metrics.jsonl`` is cut back to its size at that checkpoint, so the records a killed run
wrote after it are not duplicated. A non-finite loss or gradient stops training before the
update, with the last good checkpoint untouched. After every epoch: validation loss and greedy
validation BLEU. At the end, the last epoch and the average of the last ``train.average_last``
epochs are both scored on val, and ``final.pt`` gets the one ``train.keep`` names (by default
the better on greedy val BLEU in the run's headline protocol, ``eval.protocol``). It carries
everything ``translate`` needs (model config, weights, subword model).

With DDP each global batch is the one a single process would use; rank ``r`` takes its
sentences ``r, r + world, ...`` and the loss is normalised by the global token count, so the
update equals the single-process update on the same global batch (up to float summation
order). Every rank stops at the same step; rank 0 alone writes checkpoints and logs, and
validates while the others wait in their next collective. Each rank draws dropout from its
own random stream, and all of them are checkpointed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import torch
import torch.distributed as dist
from torch import Tensor
from tqdm import tqdm

from ..nn.batch import PackedBatch
from ..nn.model import GraphTransformer
from ..training import NonFiniteLoss, build_optimizer, train_step
from . import checkpoint
from .batching import group_updates, make_batches
from .command import main as run_command
from .configs import VAL_BLEU_KEYS, ConfigError, RunConfig, add_overrides_argument, load_config
from .corpus import ensure_data, load_splits
from .data import DataError
from .evaluate import validation_scores
from .text import TextPipeline


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss)."""


class Interrupted(Exception):
    """The run was asked to stop (Ctrl-C, SIGTERM) and saved a checkpoint to resume from."""


#: Keys a resumed run may change; every other data/model/train key must match the checkpoint.
RESUMABLE_CHANGES = {
    "data.root", "data.val_limit", "train.out_dir", "train.threads", "train.max_epochs",
    "train.max_steps", "train.time_limit_minutes", "train.checkpoint_every", "train.log_every",
    "train.average_last", "train.val_bleu_sentences", "train.patience", "train.keep",
}
#: Gloo's default (30 min) is too short when rank 0 validates alone on a slow CPU.
COLLECTIVE_TIMEOUT = timedelta(hours=3)


def check_resumable(path: Path, saved: dict[str, Any], cfg: RunConfig) -> None:
    """Raise if ``cfg`` changes a setting that the run saved in ``path`` must keep."""
    now = cfg.to_dict()
    for section in ("data", "model", "train"):
        for key, value in now[section].items():
            name = f"{section}.{key}"
            old = saved.get(section, {}).get(key)
            if name not in RESUMABLE_CHANGES and old != value:
                raise TrainingError(
                    f"--resume: {path} was trained with {name}={old!r} but the config says "
                    f"{value!r}; keep it, or choose another train.out_dir"
                )


class Trainer:
    """One training run: data, model, optimizer, checkpoints and logs (see the module doc)."""

    def __init__(self, cfg: RunConfig, resume: bool) -> None:
        self.cfg = cfg
        self.out = Path(cfg.train.out_dir)
        self.rank, self.world = _init_distributed()
        torch.set_num_threads(cfg.train.threads)
        torch.manual_seed(cfg.train.seed)
        latest = checkpoint.load_latest(self.out) if resume else None
        if latest is None and checkpoint.has_checkpoint(self.out):
            raise TrainingError(
                f"{self.out} already holds checkpoints: pass --resume, or choose another "
                "train.out_dir"
            )
        if resume and latest is None:
            self.say(f"--resume: no checkpoint in {self.out}; starting a new run")
        path, state = latest or (None, None)
        if state is not None:
            check_resumable(path, state["run_config"], cfg)
        root = ensure_data(cfg) if self.rank == 0 else Path(cfg.data.root)
        _barrier()
        if state is None:
            d = cfg.data
            self.pipeline = TextPipeline.train(
                root, d.variant, d.src_lang, d.tgt_lang, d.vocab_size
            )
        else:
            try:
                self.pipeline = TextPipeline.from_state(state["pipeline"])
            except DataError as err:
                raise checkpoint.CheckpointError(f"{path}: {err}") from None
        self.train_set, self.val_set, report = load_splits(cfg, self.pipeline, root)
        self.say(report)
        self.model_cfg = cfg.model_config(self.pipeline.tokenizer.vocab_size)
        self.model = GraphTransformer(self.model_cfg)
        torch.manual_seed(cfg.train.seed + self.rank)  # each rank its own dropout stream
        t = cfg.train
        self.opt, self.sched = build_optimizer(
            self.model.parameters(), lr=t.lr, warmup_steps=t.warmup_steps, betas=t.betas,
            weight_decay=t.weight_decay, warmup=t.warmup)
        self.step, self.epoch, self.batch_pos, self.elapsed = 0, 0, 0, 0.0
        # running sums: the log window, and the epoch's training NLL
        self.sums = dict.fromkeys(("loss", "nll", "tokens", "time", "epoch_nll",
                                   "epoch_tokens"), 0.0)
        self.history: list[dict[str, Any]] = []
        self.stopped: str | None = None
        self.interrupted = False
        self.saved_step: int | None = None
        log_offset = 0
        if state is not None:
            log_offset = self._restore(state)
        self.ddp = (
            torch.nn.parallel.DistributedDataParallel(self.model) if self.world > 1 else self.model
        )
        self.log = self._open_log(log_offset) if self.rank == 0 else None

    def say(self, message: str) -> None:
        """A line on stderr, from rank 0 only."""
        if self.rank == 0:
            print(message, file=sys.stderr)

    # -- checkpoints and the metrics log -------------------------------------------------
    def _state(self, rng: list[Tensor], log_offset: int) -> dict[str, Any]:
        return {
            "run_config": self.cfg.to_dict(), "model_config": self.model_cfg.to_dict(),
            "pipeline": self.pipeline.to_state(), "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "step": self.step, "epoch": self.epoch, "batch_pos": self.batch_pos,
            "elapsed": self.elapsed, "sums": dict(self.sums), "history": self.history,
            "rng": rng, "log_offset": log_offset,
        }

    def _restore(self, state: dict[str, Any]) -> int:
        """Load a checkpoint's state; returns the size the metrics log had when it was saved."""
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.step, self.epoch, self.batch_pos = state["step"], state["epoch"], state["batch_pos"]
        self.elapsed, self.history, self.sums = state["elapsed"], state["history"], state["sums"]
        self.saved_step = self.step
        rng = state["rng"]
        if len(rng) == self.world:
            torch.set_rng_state(rng[self.rank])
        else:
            self.say(f"warning: the checkpoint was written by {len(rng)} processes, this run has "
                     f"{self.world}: dropout streams start afresh (valid, not bit-identical)")
        self.say(f"resuming at epoch {self.epoch}, batch {self.batch_pos}, step {self.step}")
        return state["log_offset"]

    def _open_log(self, offset: int) -> BinaryIO:
        """``metrics.jsonl`` for appending, cut back to ``offset`` bytes (its size at the
        checkpoint resumed from): records a killed run wrote after it are written again."""
        self.out.mkdir(parents=True, exist_ok=True)
        log = open(self.out / "metrics.jsonl", "ab")
        size = log.tell()
        if size > offset:
            log.truncate(offset)
            log.seek(offset)
            self.say(f"metrics.jsonl: dropped {size - offset} bytes of records that no "
                     "checkpoint covers")
        elif size < offset:
            self.say(f"warning: metrics.jsonl is {offset - size} bytes shorter than at the "
                     "checkpoint; records were lost")
        return log

    def save(self) -> None:
        """Rotate in a new ``last.pt`` (every rank calls this: the RNG states are gathered)."""
        rng = [torch.get_rng_state()]
        if self.world > 1:
            rng = [torch.empty_like(rng[0]) for _ in range(self.world)]
            dist.all_gather(rng, torch.get_rng_state())
        if self.log is not None:
            self.log.flush()
            os.fsync(self.log.fileno())  # the log is durable up to the offset recorded
            checkpoint.rotate_and_save(self._state(rng, self.log.tell()), self.out)
        self.saved_step = self.step

    def write_log(self, record: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.write(json.dumps(record).encode("utf-8") + b"\n")
            self.log.flush()

    # -- training ------------------------------------------------------------------------
    def batches(self, epoch: int) -> list[list[int]]:
        """The updates of ``epoch``: each a list of training pairs (``batches_per_update``
        batches joined)."""
        t = self.cfg.train
        src, tgt = self.train_set.lengths()
        if t.batch_rule == "fairseq":  # fairseq counts the source's EOS, which we do not feed
            src = [n + 1 for n in src]
        batches = make_batches(src, tgt, t.max_tokens, shuffle=True, seed=t.seed, epoch=epoch,
                               rule=t.batch_rule)
        return group_updates(batches, t.batches_per_update)

    def update(self, batch: list[int]) -> tuple[float, float, int]:
        """One update on a global batch (this rank collates its share); returns its smoothed
        loss, NLL and target tokens.

        Raises :class:`TrainingError`, before updating anything, if the loss or the gradient
        norm is not finite.
        """
        mine = batch[self.rank :: self.world]
        # a rank with no sentence still joins the all-reduce, with a zero-weight batch
        share = self.collate(mine or batch[:1])
        tgt = self.train_set.tgt
        n_tokens = sum(PackedBatch.decoder_length(len(tgt[i])) for i in batch)
        t = self.cfg.train
        try:
            stats = train_step(
                self.ddp, share, self.opt, self.sched, label_smoothing=t.label_smoothing,
                clip_norm=t.clip_norm, tokens=n_tokens,
                # DDP averages gradients over ranks: scale so the update is the global mean's
                grad_scale=self.world if mine else 0.0,
                all_reduce=dist.all_reduce if self.world > 1 else None,
            )
        except NonFiniteLoss as err:
            kept = f"step {self.saved_step}" if self.saved_step is not None else "none yet"
            raise TrainingError(
                f"{err} at step {self.step + 1} (epoch {self.epoch}, batch {self.batch_pos}); "
                f"stopped before the update; last good checkpoint in {self.out}: {kept}"
            ) from None
        return stats.loss, stats.nll, stats.tokens

    def collate(self, pairs: list[int]) -> PackedBatch:
        """The packed batch of training pairs ``pairs``."""
        train = self.train_set
        return self.model.collate([train.src[i] for i in pairs], [train.tgt[i] for i in pairs])

    def tick(self) -> None:
        """Add the wall time since the last tick (training and validation) to ``elapsed``."""
        now = time.perf_counter()
        self.elapsed += now - self._last_tick
        self._last_tick = now

    def out_of_time(self) -> bool:
        """Whether to stop before the next update: a limit was reached (``stopped`` says
        which), or the run was interrupted."""
        self.stopped = self.stopped or self._limit_reached()
        flags = [float(self.stopped is not None), float(self.interrupted)]
        if self.world > 1:  # every rank must stop at the same step
            both = torch.tensor(flags)
            dist.all_reduce(both, op=dist.ReduceOp.MAX)
            flags = both.tolist()
            self.stopped = self.stopped or ("another rank stopped" if flags[0] else None)
            self.interrupted = bool(flags[1])
        return any(flags)

    def _on_signal(self, signum: int, frame: object) -> None:
        """Ctrl-C / SIGTERM: stop after the current update (a second one stops at once)."""
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        self.say(f"\n{signal.Signals(signum).name}: stopping after this update with a checkpoint")

    def fit(self) -> None:
        """Train to the epoch, step or time limit, then write ``final.pt`` (rank 0). Raises
        :class:`Interrupted` after saving a checkpoint when stopped by Ctrl-C or SIGTERM."""
        handlers = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._fit()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            if self.log is not None:
                self.log.close()

    def _fit(self) -> None:
        t = self.cfg.train
        self._last_tick = time.perf_counter()
        total = len(self.batches(0)) * t.max_epochs
        with tqdm(total=min(total, t.max_steps) if t.max_steps else total, initial=self.step,
                  disable=self.rank != 0, unit="step", dynamic_ncols=True,
                  desc=self.cfg.name) as bar:  # closed on errors too: they start a new line
            while self.epoch < t.max_epochs and not self.out_of_time():
                self.train_epoch(bar)
        if self.saved_step != self.step:
            self.save()
        if self.interrupted:
            raise Interrupted(f"stopped at step {self.step} with a checkpoint in {self.out}; "
                              "--resume continues")
        if self.rank == 0:
            self.finish()
        _barrier()  # ranks leave together: one exiting while rank 0 still validates can abort

    def train_epoch(self, bar: tqdm) -> None:
        """The rest of the current epoch, up to the step or time limit."""
        t = self.cfg.train
        self.model.train()
        batches = self.batches(self.epoch)
        while self.batch_pos < len(batches) and not self.out_of_time():
            started = time.perf_counter()
            loss, nll, n = self.update(batches[self.batch_pos])
            self.tick()
            self.step += 1
            self.batch_pos += 1
            for key, value in (("loss", loss * n), ("nll", nll * n), ("tokens", n),
                               ("time", time.perf_counter() - started),
                               ("epoch_nll", nll * n), ("epoch_tokens", n)):
                self.sums[key] += value
            bar.update()
            if self.step % t.log_every == 0:
                self._log_window(bar)
            if self.step % t.checkpoint_every == 0:
                self.save()
        if self.batch_pos == len(batches):
            self.end_epoch()

    def _log_window(self, bar: tqdm) -> None:
        s = self.sums
        tokens = max(s["tokens"], 1)
        rate = s["tokens"] / max(s["time"], 1e-9)
        record = {
            "kind": "train", "step": self.step, "epoch": self.epoch,
            "loss": s["loss"] / tokens, "nll": s["nll"] / tokens,
            "lr": self.sched.get_last_lr()[0], "tokens_per_s": rate, "elapsed_s": self.elapsed,
            "load_1m": os.getloadavg()[0],
        }
        bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{rate:,.0f}", epoch=self.epoch)
        self.write_log(record)
        s.update(loss=0.0, nll=0.0, tokens=0.0, time=0.0)

    def end_epoch(self) -> None:
        """Validate (rank 0; the other ranks wait in the next collective), write the epoch's
        weights and record, and checkpoint at the start of the next epoch."""
        train_nll = self.sums["epoch_nll"] / max(self.sums["epoch_tokens"], 1)
        record = {"kind": "epoch", "epoch": self.epoch, "step": self.step,
                  "train_nll": train_nll, "elapsed_s": self.elapsed}
        if self.rank == 0:
            record.update(self.validate(self.model))
            self.tick()
            record["elapsed_s"] = self.elapsed
            path = self.out / f"epoch{self.epoch:03d}.pt"
            checkpoint.save_atomic({"model": self.model.state_dict()}, path)
            self.say(json.dumps(record))
        self.history.append(record)
        self.write_log(record)
        self.epoch += 1
        self.batch_pos = 0
        self.sums.update(epoch_nll=0.0, epoch_tokens=0.0)
        self.save()

    def _limit_reached(self) -> str | None:
        """Which limit stops the run now, if any: the update or time limit, or patience (val
        NLL not lower for ``train.patience`` epochs, fairseq's rule; val runs on rank 0, which
        tells the others)."""
        t = self.cfg.train
        if t.max_steps and self.step >= t.max_steps:
            return f"max_steps={t.max_steps}"
        if t.time_limit_minutes and self.elapsed >= 60 * t.time_limit_minutes:
            return f"time_limit_minutes={t.time_limit_minutes}"
        if t.patience and self.rank == 0 and self.history:
            nll = [h["val_nll"] for h in self.history]
            best = min(range(len(nll)), key=nll.__getitem__)
            if len(nll) - 1 - best >= t.patience:
                return (f"patience={t.patience}: val_nll last improved at epoch "
                        f"{self.history[best]['epoch']}")
        return None

    def validate(self, model: GraphTransformer) -> dict[str, float]:
        """:func:`~dgl_transformer.mt.evaluate.validation_scores` on the val split."""
        scores = validation_scores(model, self.val_set, self.pipeline, self.cfg.train.max_tokens,
                                   self.cfg.eval, self.cfg.train.val_bleu_sentences)
        model.train()
        return scores

    def finish(self) -> None:
        """Score the last weights and the average of the last epochs on val, keep the one
        ``train.keep`` names, and write ``final.pt``."""
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
        keep = self.cfg.train.keep
        average = next((k for k in scores if k.startswith("average")), "last")
        if keep == "better":
            key = VAL_BLEU_KEYS[self.cfg.eval.protocol]
            best = max(scores, key=lambda k: scores[k][key])
        else:
            best = average if keep == "average" else "last"
        checkpoint.TrainedModel(
            run_config=self.cfg.to_dict(), model_config=self.model_cfg.to_dict(),
            pipeline=self.pipeline.to_state(), model=candidates[best], chosen=best,
            candidates=scores, history=self.history, stopped=self.stopped,
            train_seconds=self.elapsed, steps=self.step,
        ).save(self.out / "final.pt")
        self.write_log({"kind": "final", "step": self.step, "chosen": best, "candidates": scores,
                        "stopped": self.stopped, "train_seconds": self.elapsed})


def _init_distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    dist.init_process_group("gloo", timeout=COLLECTIVE_TIMEOUT)  # training runs on the CPU
    return dist.get_rank(), world


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


HELP = "train a model from a YAML run configuration"
ERRORS = (ConfigError, DataError, checkpoint.CheckpointError, TrainingError, OSError)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``dgl-transformer train``'s options."""
    parser.add_argument("--config", required=True, help="YAML run configuration")
    add_overrides_argument(parser)
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")


def command(args: argparse.Namespace) -> int:
    """``dgl-transformer train``: one run, from its config (and ``--set`` overrides)."""
    try:
        Trainer(load_config(args.config, args.set), args.resume).fit()
    except Interrupted as stop:
        print(f"interrupted: {stop}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted; --resume continues from the last checkpoint", file=sys.stderr)
        return 130
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m dgl_transformer.mt.train`` (and ``torchrun -m ...``)."""
    return run_command("python -m dgl_transformer.mt.train", HELP, add_arguments, command,
                       ERRORS, argv)


if __name__ == "__main__":
    sys.exit(main())

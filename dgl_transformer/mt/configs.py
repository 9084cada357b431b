"""A training run's configuration: YAML file -> typed, validated dataclasses.

Unknown keys, values of the wrong type and values out of range are rejected with one line
naming the file and the key (``repro/configs/x.yaml: train.lr must be float, got 'fast'``).
Command-line overrides use dotted keys (``--set train.max_epochs=2 model.d_model=128``); an
error in one names ``--set`` instead of the file. A float may be written as a string that
Python reads as a number (YAML 1.1 reads ``1e-3``, without a dot, as a string).

A file may start from another one: ``base: default.yaml`` (relative to the file's own folder;
a base may have a base) and then names only what it changes. Sections merge key by key, lists
and scalars replace, and every file is checked on its own first, so a mistake names the file
that holds it; ``--set`` applies last. We extend this validator rather than adopt OmegaConf
because it already gives the one-line file-and-key errors the tests pin, without a dependency.

**One source of defaults.** The dataclasses below hold the default recipe (``make repro``'s
one-hour run, explained in the comment above ``DataSection``); ``repro/configs/default.yaml``
names the run and inherits everything else, so a file without ``base:`` gets exactly these
values. The model section is :class:`TransformerConfig` less its two vocabulary sizes, which
come from the trained subword model: same fields, with the recipe's values where it sets them
(:data:`MODEL_RECIPE`) and the network's defaults elsewhere.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..nn.batch import PackedBatch
from ..nn.config import TransformerConfig
from ..nn.graphs import CUSTOM as CUSTOM_GRAPH
from ..training import WARMUPS
from .batching import RULES as BATCH_RULES
from .data import LANGS
from .text import VARIANTS


class ConfigError(ValueError):
    """A configuration file or override the run cannot use."""


# The default recipe, and why (the dataclass defaults below hold it):
# Multi30k en->de on a 2-core CPU in under an hour (data to results), cased. Trains on the raw
# cased text with one joint 8k BPE model (training split only) and writes plain, cased German.
# The recipe starts from the strongest small text-only model on Multi30k, Transformer-Tiny
# (LividWo/Revisit-MMT: 4+4 layers, d_model 128, FFN 256, 4 heads, dropout 0.3, label smoothing
# 0.1, Adam (0.9, 0.98), lr 0.005 with 2,000 warm-up updates, average of the last 10 epochs,
# beam 5), with a token budget and length that fit two CPU cores. The run is limited by updates,
# not minutes, so that it is the same run on every machine whatever its load: 2,400 updates of
# 6,000 tokens, what 54 minutes of training gave on the slower of our machines (a 2-core AMD
# EPYC: 2,387; an Intel Xeon made 3,096), leaving the rest of the hour for data and
# evaluation; the time limit is only a safety stop. The warm-up is counted in updates:
# Transformer-Tiny warmed up for a quarter of its 8,000 updates, and we keep that quarter (600)
# rather than spend most of the run warming up. Dropout 0.1, not Transformer-Tiny's 0.3,
# which suits its 130 epochs (the hour gives about 16): [Repro 3]'s search chose it on val
# BLEU among dropout 0.3, 0.2, 0.1 and 0.0 and 4,000 tokens per update, each a full run
# (repro/README.md). Tuned on val only.


#: Which weights a run keeps (``train.keep``).
KEEP = ("better", "average", "last")
#: The protocols a run may lead with (``eval.protocol``), and the greedy val BLEU key that
#: measures each during training (``mt.evaluate.validation_scores``).
VAL_BLEU_KEYS = {"bleu_dgl": "val_bleu_dgl", "bleu_cased": "val_bleu_cased",
                 "bleu_tok_lc": "val_bleu_greedy"}
HEADLINE_PROTOCOLS = tuple(VAL_BLEU_KEYS)


@dataclass
class DataSection:
    root: str = "data/multi30k"
    src_lang: str = "en"
    tgt_lang: str = "de"
    variant: str = "raw"  # "raw" (cased), "lc_tok" (official lowercased tokenised), "word"
    vocab_size: int = 8000  # one joint subword vocabulary
    max_len: int = 100  # training pairs with a side longer than this (subwords) are dropped
    train_limit: int = 0  # 0: all training pairs; else the first N (quick checks and tests)
    val_limit: int = 0  # 0: all validation pairs; else the first N (quick checks and tests)


#: The fields of :class:`TransformerConfig` that a run configuration does not set.
VOCAB_FIELDS = ("src_vocab", "tgt_vocab")


#: The recipe's model, where it differs from :class:`TransformerConfig`'s defaults.
MODEL_RECIPE: dict[str, Any] = {
    "d_model": 128, "d_ff": 256, "n_enc_layers": 4, "n_dec_layers": 4, "dropout": 0.1,
    "max_len": 128, "share_embeddings": True,  # one joint BPE vocabulary
}


def _model_section() -> type:
    """A dataclass with :class:`TransformerConfig`'s fields less the vocabularies, defaulting
    to :data:`MODEL_RECIPE` and else to the network's defaults."""
    hints = typing.get_type_hints(TransformerConfig)
    return dataclasses.make_dataclass("ModelSection", [
        (f.name, hints[f.name], field(default=MODEL_RECIPE.get(f.name, f.default)))
        for f in dataclasses.fields(TransformerConfig) if f.name not in VOCAB_FIELDS
    ], namespace={"__module__": __name__})


ModelSection = _model_section()


@dataclass
class TrainSection:
    out_dir: str = "runs/default"
    seed: int = 1
    threads: int = 2
    max_tokens: int = 6000  # per batch, measured by batch_rule
    batch_rule: str = "tokens"  # "tokens": source + target tokens (graph nodes); "fairseq":
    # sentences x longest side, each side counted with EOS as fairseq counts it (mt/batching.py)
    batches_per_update: int = 1  # batches joined into one update (fairseq: GPUs x update-freq)
    max_epochs: int = 200
    max_steps: int = 2400  # 0: no limit; otherwise stop after this many updates
    time_limit_minutes: float = 90.0  # 0: no limit; a safety stop, recorded when it fires
    patience: int = 0  # stop after this many epochs without a lower val NLL (0: never)
    lr: float = 5e-3
    warmup_steps: int = 600  # the update at which the learning rate peaks
    warmup: str = "linear"  # "linear": ramp from 0 to the peak; "none": the peak from update 1
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    weight_decay: float = 0.0
    label_smoothing: float = 0.1
    clip_norm: float = 1.0
    checkpoint_every: int = 200  # updates between checkpoints (and one at every epoch end)
    log_every: int = 20
    average_last: int = 10  # average the parameters of the last N epoch ends
    keep: str = "better"  # final weights: "better" of the last and the average on val BLEU
    # in eval.protocol, or always the "average" or the "last"
    val_bleu_sentences: int = 0  # 0: all of val; greedy BLEU on val after every epoch


@dataclass
class EvalSection:
    """The headline protocol, and the decoding settings: the keyword arguments of
    ``mt.generate.translate_ids``."""

    protocol: str = "bleu_dgl"  # the headline BLEU: leads the results, picks the final weights
    beam_size: int = 5
    length_penalty: float = 0.6
    max_len_a: float = 1.2  # decode at most a * source length + b tokens
    max_len_b: int = 10
    batch_sentences: int = 200

    def decoding(self) -> dict[str, Any]:
        """The keyword arguments of ``mt.generate.translate_ids``: all but ``protocol``."""
        return {k: v for k, v in vars(self).items() if k != "protocol"}


@dataclass
class RunConfig:
    name: str = "default"
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_config(self, vocab: int) -> TransformerConfig:
        """The network for one joint source/target vocabulary of ``vocab`` subwords."""
        return TransformerConfig(src_vocab=vocab, tgt_vocab=vocab, **vars(self.model))

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "config") -> RunConfig:
        """Build and validate; errors name ``where`` (a file, or ``--set``) and the key."""
        cfg = _build(cls, values, where, "")
        try:
            cfg.model_config(1)
        except ValueError as err:
            raise ConfigError(f"{where}: model: {err}") from None
        if cfg.model.encoder_graph == CUSTOM_GRAPH:
            raise ConfigError(f"{where}: model.encoder_graph 'custom' is what a model built with "
                              "a builder in code records; a config names a registered graph")
        if cfg.data.src_lang == cfg.data.tgt_lang:
            raise ConfigError(f"{where}: data.src_lang and data.tgt_lang are both "
                              f"'{cfg.data.src_lang}'")
        if PackedBatch.decoder_length(cfg.data.max_len) > cfg.model.max_len:
            raise ConfigError(f"{where}: data.max_len={cfg.data.max_len} needs model.max_len "
                              f"> {cfg.data.max_len}, got {cfg.model.max_len}")
        return cfg


Rule = tuple[Callable[[Any], bool], str]


def _at_least(low: float) -> Rule:
    return (lambda v: v >= low), f">= {low}"


def _above(low: float) -> Rule:
    return (lambda v: v > low), f"> {low}"


def _one_of(choices: tuple[str, ...]) -> Rule:
    return (lambda v: v in choices), f"one of {', '.join(choices)}"


#: Allowed values of the keys that have a range, checked after the type. The model section is
#: checked as a whole by :class:`TransformerConfig`.
RULES: dict[str, Rule] = {
    "data.src_lang": _one_of(LANGS),
    "data.tgt_lang": _one_of(LANGS),
    "data.variant": _one_of(VARIANTS),
    "train.batch_rule": _one_of(BATCH_RULES),
    "train.warmup": _one_of(WARMUPS),
    "train.keep": _one_of(KEEP),
    "eval.protocol": _one_of(HEADLINE_PROTOCOLS),
    **dict.fromkeys(["data.vocab_size", "data.max_len", "train.threads", "train.max_tokens",
                     "train.max_epochs", "train.warmup_steps", "train.checkpoint_every",
                     "train.log_every", "train.average_last", "train.batches_per_update",
                     "eval.beam_size",
                     "eval.max_len_b", "eval.batch_sentences"], _at_least(1)),
    **dict.fromkeys(["data.train_limit", "data.val_limit", "train.max_steps",
                     "train.time_limit_minutes", "train.weight_decay", "train.val_bleu_sentences",
                     "train.patience",
                     "eval.length_penalty", "eval.max_len_a"], _at_least(0)),
    **dict.fromkeys(["train.lr", "train.clip_norm"], _above(0)),
    "train.label_smoothing": ((lambda v: 0 <= v < 1), "in [0, 1)"),
    "train.betas": ((lambda v: len(v) == 2 and all(0 <= b < 1 for b in v)),
                    "two numbers in [0, 1)"),
}


def _check_value(value: Any, kind: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):  # ``X | None``: null, or an X
        if value is None:
            return None
        (kind,) = [k for k in typing.get_args(kind) if k is not type(None)]
        origin = typing.get_origin(kind)
    if origin is list:
        (item,) = typing.get_args(kind)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key} must be a list, got {value!r}")
        return [_check_value(v, item, where, f"{key}[{i}]") for i, v in enumerate(value)]
    if kind is float and not isinstance(value, bool) and isinstance(value, int | str):
        try:
            value = float(value)
        except ValueError:
            pass
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: {key} must be {kind.__name__}, got {value!r}")
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{where}: {key} must be a finite number, got {value!r}")
    return value


def _build(cls: type, values: Any, where: str, prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: {prefix.rstrip('.') or 'the file'} must be a mapping")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            choices = ", ".join(sorted(known))
            raise ConfigError(f"{where}: unknown key '{prefix}{key}' (known: {choices})")
        kind = hints[key]
        if dataclasses.is_dataclass(kind):
            kwargs[key] = _build(kind, value, where, f"{prefix}{key}.")
        else:
            kwargs[key] = _check_value(value, kind, where, f"{prefix}{key}")
            rule = RULES.get(f"{prefix}{key}")
            if rule and not rule[0](kwargs[key]):
                raise ConfigError(f"{where}: {prefix}{key} must be {rule[1]}, got {value!r}")
    return cls(**kwargs)


def add_overrides_argument(parser: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE ...``, repeatable: every occurrence adds to ``args.set``."""
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config values, e.g. train.max_epochs=2")


def overrides_args(overrides: list[str]) -> list[str]:
    """The ``--set`` part of a child command line (nothing when there are no overrides)."""
    return ["--set", *overrides] if overrides else []


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``child`` over ``base``: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resolve(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The values of ``path`` over those of its bases; ``chain``: the files that led here."""
    if path.resolve() in {p.resolve() for p in chain}:
        files = " -> ".join(str(p) for p in (*chain, path))
        raise ConfigError(f"{chain[-1]}: base cycle: {files}")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        via = f" (base of {chain[-1]})" if chain else ""
        raise ConfigError(f"{path}: no such config file{via}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: must be a mapping of sections")
    own = {key: value for key, value in values.items() if key != "base"}
    _build(RunConfig, own, str(path), "")  # this file's own keys, types and ranges
    if "base" not in values:
        return own
    base = _check_value(values["base"], str, str(path), "base")
    return _merge(_resolve(path.parent / base, (*chain, path)), own)


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML run configuration and its bases, then apply ``section.key=value`` overrides."""
    path = Path(path)
    values = _resolve(path)
    cfg = RunConfig.from_dict(values, str(path))
    if not overrides:
        return cfg
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        *sections, leaf = key.split(".")
        node = values
        for s in sections:
            node = node.setdefault(s, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {s} is not a section")
        try:
            node[leaf] = yaml.safe_load(raw)
        except yaml.YAMLError:
            node[leaf] = raw  # e.g. a path with a colon: let the type check judge it
    return RunConfig.from_dict(values, "--set")

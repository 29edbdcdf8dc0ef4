"""LoRA fine-tuning of the local base model on QA pairs: the "fine-tuning" side of RAG versus fine-tuning.

A plain torch loop (no Trainer), small enough to run on 2 CPU cores in
minutes: LoRA r=8/alpha=16 on q_proj and v_proj, AdamW, loss on the answer
tokens only. Pairs are formatted with the tokenizer's own chat template and
the same system prompt the closed-book arms use at evaluation time, so the
adapter is evaluated on the format it was trained on. The adapter folder gets
`training.json` (config, sha256 of the pairs, split ids, losses) and the loss
curve (JSON, and PNG when matplotlib is installed).

Example:
    >>> pairs = [QAPair("q1", "Who wrote Hamlet?", "Shakespeare")]
    >>> result = finetune(pairs, out_dir=Path("adapter"), home=Path(".rag"))
    >>> result.val_perplexity
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rag.llm.local_model import DEFAULT_LOCAL_MODEL, resolve_local_model

CLOSED_BOOK_SYSTEM = "Answer the question with a short phrase, no explanation."


@dataclass(frozen=True)
class QAPair:
    """One training example; `passage`, when set, is put before the question."""

    id: str
    question: str
    answer: str
    passage: str | None = None
    text_only: bool = False
    """Corpus text, not a question: `answer` holds the passage and every token is learned
    (knowledge injection, the fine-tuning counterpart of putting the passage in the index)."""


def corpus_pairs(passages: dict[str, tuple[str, str]], n: int, *, seed: int = 13,
                 exclude: set[str] | frozenset[str] = frozenset()) -> list[QAPair]:
    """`n` passages (all when n < 0) as text-only examples, seeded; `exclude` keeps removed passages out."""
    ids = sorted(pid for pid in passages if pid not in exclude)
    random.Random(seed).shuffle(ids)
    chosen = ids if n < 0 else ids[:n]
    return [QAPair(f"text:{pid}", "", f"{passages[pid][0]}\n\n{passages[pid][1]}".strip(), text_only=True)
            for pid in sorted(chosen)]


@dataclass(frozen=True)
class FinetuneConfig:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    lr: float = 2e-4
    batch_size: int = 8
    max_len: int = 256
    epochs: int = 1
    max_steps: int | None = None
    val_fraction: float = 0.1
    seed: int = 13
    threads: int | None = None
    """torch threads while training (None: torch's default). On cores shared with other work, 1 is
    often faster: measured here under load, 11 s per step with 1 thread against 24-43 s with 2."""


@dataclass
class FinetuneResult:
    adapter_dir: Path
    steps: int
    seconds: float
    train_losses: list[float] = field(default_factory=list)
    val_loss_before: float | None = None
    val_loss: float | None = None
    val_perplexity: float | None = None
    train_ids: list[str] = field(default_factory=list)
    val_ids: list[str] = field(default_factory=list)


def chat_messages(question: str, passage: str | None = None) -> list[dict[str, str]]:
    """The closed-book prompt, shared by training and evaluation."""
    user = f"{passage}\n\nQuestion: {question}" if passage else question
    return [{"role": "system", "content": CLOSED_BOOK_SYSTEM}, {"role": "user", "content": user}]


def data_hash(pairs: list[QAPair]) -> str:
    """sha256 of the pairs in order: the same data gives the same hash on any machine."""
    blob = json.dumps([asdict(p) for p in pairs], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def split_pairs(pairs: list[QAPair], val_fraction: float, seed: int) -> tuple[list[QAPair], list[QAPair]]:
    """A seeded train/validation split (at least one of each when there are two pairs or more)."""
    order = list(pairs)
    random.Random(seed).shuffle(order)
    n_val = min(len(order) - 1, max(1, round(len(order) * val_fraction))) if len(order) > 1 else 0
    return order[n_val:], order[:n_val]


def encode(tokenizer: Any, pair: QAPair, max_len: int) -> tuple[list[int], list[int]]:
    """(input ids, labels): labels are -100 on the prompt, so only the answer is learned."""
    if pair.text_only:
        ids = tokenizer(pair.answer + (tokenizer.eos_token or ""), add_special_tokens=False)["input_ids"][:max_len]
        return ids, list(ids)
    msgs = chat_messages(pair.question, pair.passage)
    prompt = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template([*msgs, {"role": "assistant", "content": pair.answer}], tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt):] if full.startswith(prompt) else pair.answer,
                           add_special_tokens=False)["input_ids"]
    prompt_ids = prompt_ids[-max(1, max_len - len(answer_ids)):]  # too long: drop the start of the prompt
    ids = (prompt_ids + answer_ids)[:max_len]
    labels = ([-100] * len(prompt_ids) + answer_ids)[:max_len]
    return ids, labels


def _batches(encoded: list[tuple[list[int], list[int]]], size: int, pad_id: int) -> list[dict[str, Any]]:
    import torch

    out = []
    for i in range(0, len(encoded), size):
        chunk = encoded[i:i + size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (x, y) in enumerate(chunk):
            ids[row, :len(x)], labels[row, :len(y)], mask[row, :len(x)] = torch.tensor(x), torch.tensor(y), 1
        out.append({"input_ids": ids, "labels": labels, "attention_mask": mask})
    return out


def heldout_loss(model: Any, batches: list[dict[str, Any]]) -> float | None:
    """Mean loss per answer token over the validation batches."""
    import torch

    total, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for b in batches:
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1]
            target = b["labels"][:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                     ignore_index=-100, reduction="sum")
            total, count = total + float(loss), count + int((target != -100).sum())
    return total / count if count else None


def finetune(pairs: list[QAPair], *, out_dir: Path, home: Path, config: FinetuneConfig | None = None,
             base_model: str = DEFAULT_LOCAL_MODEL, extra: dict[str, Any] | None = None,
             console: Console | None = None) -> FinetuneResult:
    """Train a LoRA adapter on `pairs` and save it (with training.json) in `out_dir`.

    `extra` is stored in training.json as is (e.g. the evaluation split the
    harness promises never to train on).
    """
    import torch

    cfg = config or FinetuneConfig()
    console = console or Console()
    threads_before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(pairs, out_dir, home, cfg, base_model, extra or {}, console)
    finally:
        torch.set_num_threads(threads_before)


def _train(pairs: list[QAPair], out_dir: Path, home: Path, cfg: FinetuneConfig, base_model: str,
           extra: dict[str, Any], console: Console) -> FinetuneResult:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(cfg.seed)
    path = str(resolve_local_model(base_model, home))
    tokenizer = AutoTokenizer.from_pretrained(path)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                             target_modules=list(cfg.target_modules), task_type="CAUSAL_LM"))
    train, val = split_pairs(pairs, cfg.val_fraction, cfg.seed)
    val_batches = _batches([encode(tokenizer, p, cfg.max_len) for p in val], cfg.batch_size, pad_id)
    val_before = heldout_loss(model, val_batches)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = min(cfg.max_steps, steps_per_epoch * cfg.epochs) if cfg.max_steps else steps_per_epoch * cfg.epochs
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    losses: list[float] = []
    t0 = time.perf_counter()
    bar = Progress(TextColumn("[bold]fine-tune"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), console=console)
    with bar:
        task = bar.add_task("steps", total=total, loss="-")
        rng = random.Random(cfg.seed)
        while len(losses) < total:
            order = list(train)
            rng.shuffle(order)
            for batch in _batches([encode(tokenizer, p, cfg.max_len) for p in order], cfg.batch_size, pad_id):
                if len(losses) >= total:
                    break
                model.train()
                loss = model(**batch).loss
                loss.backward()
                optim.step()
                optim.zero_grad()
                losses.append(loss.item())
                bar.update(task, advance=1, loss=f"{losses[-1]:.3f}")
    seconds = time.perf_counter() - t0
    val_loss = heldout_loss(model, val_batches)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    result = FinetuneResult(out_dir, len(losses), seconds, losses, val_before, val_loss,
                            math.exp(val_loss) if val_loss is not None else None,
                            [p.id for p in train], [p.id for p in val])
    _write_record(result, cfg, pairs, base_model, extra)
    return result


def _write_record(result: FinetuneResult, cfg: FinetuneConfig, pairs: list[QAPair], base_model: str,
                  extra: dict[str, Any]) -> None:
    """training.json and the loss curve, beside the adapter."""
    import peft
    import torch
    import transformers

    curve = {"step": list(range(1, len(result.train_losses) + 1)), "train_loss": result.train_losses,
             "val_loss_before": result.val_loss_before, "val_loss_after": result.val_loss}
    (result.adapter_dir / "loss_curve.json").write_text(json.dumps(curve, indent=2))
    record = {
        "base_model": base_model, "config": asdict(cfg), "data_hash": data_hash(pairs), "pairs": len(pairs),
        "with_passage": any(p.passage for p in pairs), "corpus_texts": sum(p.text_only for p in pairs),
        "steps": result.steps, "seconds": round(result.seconds, 2),
        "final_train_loss": result.train_losses[-1] if result.train_losses else None,
        "val_loss_before": result.val_loss_before, "val_loss": result.val_loss,
        "val_perplexity": result.val_perplexity, "split": {"train_ids": result.train_ids, "val_ids": result.val_ids},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra,
    }
    (result.adapter_dir / "training.json").write_text(json.dumps(record, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(curve["step"], result.train_losses, label="train loss (batch)")
    if result.val_loss is not None:
        ax.axhline(result.val_loss, color="tab:orange", linestyle="--", label="held-out loss after")
    if result.val_loss_before is not None:
        ax.axhline(result.val_loss_before, color="tab:gray", linestyle=":", label="held-out loss before")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (answer tokens)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(result.adapter_dir / "loss_curve.png", dpi=100)
    plt.close(fig)


def training_record_hash(adapter_dir: Path) -> str | None:
    """sha256 of an adapter's training.json (None when it has none)."""
    path = Path(adapter_dir) / "training.json"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None

#!/usr/bin/env python
"""Build the shipped demo assets: a synthetic MMLU-layout data set and a tiny Llama trained on it.

Everything is deterministic from ``--seed`` and runs on CPU in a few minutes:

1. ``--out-data`` (default ``harness/assets/demo_mmlu``) gets ``dev/{subject}_dev.csv`` (5 rows) and
   ``test/{subject}_test.csv`` (200 rows) for six synthetic subjects of graded difficulty, in the
   Hendrycks layout (no header; question, A, B, C, D, answer letter).
2. A byte-level BPE tokenizer and a 2-layer Llama (h128) are trained on freshly generated items
   (a different RNG stream from the dev/test rows, exact test/dev items excluded), formatted with
   exactly the evaluation prompt of ``harness/tasks/mmlu_format.py``; the loss falls only on the
   answer-letter tokens.
3. The model and tokenizer are saved to ``--out-model`` (default ``harness/assets/demo_model``),
   every test row is evaluated (greedy, ``text.strip().startswith(letter)``) and the per-subject
   accuracies go to ``accuracy.json``.

Usage: ``python scripts/build_demo.py [--seed 0] [--steps 1800] [--data-only]``
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import pandas as pd  # noqa: E402

from harness.tasks.mmlu_format import CHOICES, format_example, gen_prompt  # noqa: E402

N_DEV = 5
N_TEST = 200
THREADS = 2

# ---------------------------------------------------------------------------------------------
# Synthetic subjects.  Word lists are fixed; every list is a sorted/ordered Python list (never a
# set) so item generation does not depend on PYTHONHASHSEED.
# ---------------------------------------------------------------------------------------------
COLORS = ["red", "blue", "green", "yellow", "orange", "purple", "pink", "brown", "black", "white"]

NOUNS = [
    "apple", "table", "river", "horse", "pencil", "window", "garden", "rabbit", "hammer", "candle",
    "bottle", "ladder", "mirror", "pillow", "basket", "kettle", "wallet", "button", "carpet", "blanket",
    "bridge", "castle", "desert", "forest", "island", "jacket", "lemon", "market", "needle", "orchard",
    "pepper", "rocket", "saddle", "tiger", "turtle", "violin", "wagon", "yacht", "zebra", "anchor",
    "barrel", "cactus", "dragon", "engine", "falcon", "glove", "helmet", "igloo", "kitten", "lizard",
    "magnet", "onion", "parrot", "quilt", "robot", "spoon", "tunnel", "umbrella", "vase", "walrus",
]

# color_facts: a fixed 60-entry table "object -> color", drawn once from its own fixed stream
# (independent of --seed so the facts are a property of the subject, not of the build).
_fact_rng = random.Random("demo-color-facts-table")
COLOR_FACTS = {noun: _fact_rng.choice(COLORS) for noun in NOUNS}


def _place(rng: random.Random, correct: str, distractors: list[str]) -> tuple[list[str], str]:
    """Put ``correct`` at a random position among three distractors; return (options, letter)."""
    options = list(distractors)
    pos = rng.randrange(4)
    options.insert(pos, correct)
    return options, CHOICES[pos]


def gen_correct_marker(rng: random.Random):
    words = rng.sample(NOUNS, 4)
    correct = f"the {words[0]} is correct"
    distractors = [f"the {w} is wrong" for w in words[1:]]
    options, letter = _place(rng, correct, distractors)
    return "Which statement is correct?", options, letter


def gen_color_category(rng: random.Random):
    color = rng.choice(COLORS)
    distractors = rng.sample(NOUNS, 3)
    options, letter = _place(rng, color, distractors)
    return "Which of the following is a color?", options, letter


def gen_largest_digit(rng: random.Random):
    digits = rng.sample(range(10), 4)
    best = max(digits)
    rest = [d for d in digits if d != best]
    options, letter = _place(rng, f"digit {best}", [f"digit {d}" for d in rest])
    return "Which digit is the largest?", options, letter


def gen_color_facts(rng: random.Random):
    # Memorise a fixed 60-entry noun -> color table (COLOR_FACTS), then pick that color.
    noun = rng.choice(NOUNS)
    true = COLOR_FACTS[noun]
    options, letter = _place(rng, true, rng.sample(sorted(c for c in COLORS if c != true), 3))
    return f"What color is the {noun}?", options, letter


def gen_word_match(rng: random.Random):
    # In-context match: the option that repeats the word named in the question (2 hops).
    words = rng.sample(NOUNS, 4)
    options, letter = _place(rng, words[0], words[1:])
    return f"Which is the word {words[0]}?", options, letter


def gen_one_digit_addition(rng: random.Random):
    # Each option is a whole equation; distractor sums lie within 3 of the true sum (0..18).
    a, b = rng.randrange(10), rng.randrange(10)
    s = a + b
    wrong = rng.sample([v for v in range(s - 3, s + 4) if v != s and 0 <= v <= 18], 3)
    options, letter = _place(rng, f"{a} + {b} = {s}", [f"{a} + {b} = {v}" for v in wrong])
    return f"What is {a} + {b}?", options, letter


# Ordered easy -> hard.  The evaluator sorts subjects by file name anyway.
EASY = ("correct_marker", "color_category", "largest_digit")
SUBJECTS = {
    "correct_marker": gen_correct_marker,
    "color_category": gen_color_category,
    "largest_digit": gen_largest_digit,
    "color_facts": gen_color_facts,
    "word_match": gen_word_match,
    "one_digit_addition": gen_one_digit_addition,
}


def _row(item) -> tuple[str, ...]:
    question, options, letter = item
    return (question, *options, letter)


def make_split(subject: str, seed: int, n: int, split: str, exclude: set) -> list[tuple[str, ...]]:
    """``n`` distinct rows for one subject/split, none of them in ``exclude``."""
    rng = random.Random(f"demo-mmlu/{seed}/{split}/{subject}")
    gen = SUBJECTS[subject]
    rows, seen = [], set(exclude)
    while len(rows) < n:
        row = _row(gen(rng))
        if row in seen:
            continue
        seen.add(row)
        rows.append(row)
    return rows


def write_dataset(out: Path, seed: int) -> dict[str, dict[str, list[tuple[str, ...]]]]:
    """Write dev/test CSVs; return {subject: {"dev": rows, "test": rows}}."""
    (out / "dev").mkdir(parents=True, exist_ok=True)
    (out / "test").mkdir(parents=True, exist_ok=True)
    data = {}
    for subject in SUBJECTS:
        test = make_split(subject, seed, N_TEST, "test", set())
        dev = make_split(subject, seed, N_DEV, "dev", set(test))
        for split, rows in (("dev", dev), ("test", test)):
            path = out / split / f"{subject}_{split}.csv"
            pd.DataFrame(rows).to_csv(path, header=False, index=False)
            check = pd.read_csv(path, header=None)
            assert check.shape == (len(rows), 6), (path, check.shape)
            for i, row in enumerate(rows):
                got = tuple(check.iloc[i, j] for j in range(6))
                assert all(isinstance(v, str) for v in got), (path, i, got)
                assert got == row, (path, i, got, row)
                format_example(check, i, include_answer=True)
        data[subject] = {"dev": dev, "test": test}
    return data


def read_frames(out: Path) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """The frames exactly as the evaluator reads them."""
    return {
        s: (pd.read_csv(out / "dev" / f"{s}_dev.csv", header=None),
            pd.read_csv(out / "test" / f"{s}_test.csv", header=None))
        for s in SUBJECTS
    }


# ---------------------------------------------------------------------------------------------
# Training documents
# ---------------------------------------------------------------------------------------------
def training_doc(rng: random.Random, subject: str, exclude: set) -> str:
    """k in 0..5 solved shots + one solved item, in the evaluation layout, all freshly generated."""
    k = rng.randrange(6)
    gen = SUBJECTS[subject]
    rows = []
    while len(rows) < k + 1:
        row = _row(gen(rng))
        if row not in exclude:
            rows.append(row)
    df = pd.DataFrame(rows)
    return gen_prompt(df.iloc[:k], subject, k) + format_example(df, k, include_answer=True)


class DocStream:
    """Deterministic infinite stream of (subject, document); the harder subjects are drawn
    ``hard_weight`` times as often as the easy ones (those are learned in a few hundred steps)."""

    def __init__(self, seed: int, exclude: dict[str, set], stream: str = "train", hard_weight: float = 1.0):
        self.rng = random.Random(f"demo-mmlu/{seed}/{stream}")
        self.exclude = exclude
        self.subjects = list(SUBJECTS)
        self.weights = [1.0 if s in EASY else hard_weight for s in self.subjects]

    def next(self) -> tuple[str, str]:
        if all(w == 1.0 for w in self.weights):
            subject = self.rng.choice(self.subjects)  # the shipped assets were drawn this way
        else:
            subject = self.rng.choices(self.subjects, weights=self.weights)[0]
        return subject, training_doc(self.rng, subject, self.exclude[subject])


CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}System: {{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}User: {{ message['content'] }}\n\n"
    "{% elif message['role'] == 'assistant' %}Assistant: {{ message['content'] }}{{ eos_token }}\n\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def build_tokenizer(corpus: list[str], max_len: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(corpus, trainer)
    bos_id = tk.token_to_id("<s>")
    # Llama-style: the tokenizer prepends <s> when add_special_tokens=True (the default).
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        model_max_length=max_len)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def check_tokenizer(tok, samples: list[str]) -> None:
    for letter in CHOICES:
        ids = tok(" " + letter, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tok.convert_ids_to_tokens(ids)[0] == "Ġ" + letter, (letter, ids)
    for text in samples:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text, text
        assert tok(text)["input_ids"] == [tok.bos_token_id] + ids
    assert tok.bos_token_id is not None and tok.eos_token_id is not None and tok.pad_token_id is not None


# ---------------------------------------------------------------------------------------------
# Evaluation (greedy next token after the prompt; scored like TensorRT-LLM's MMLU evaluator)
# ---------------------------------------------------------------------------------------------
def eval_prompts(frames) -> dict[str, list[tuple[str, str]]]:
    out = {}
    for subject, (dev_df, test_df) in frames.items():
        head = gen_prompt(dev_df, subject, N_DEV)
        out[subject] = [(head + format_example(test_df, i, include_answer=False),
                         str(test_df.iloc[i, test_df.shape[1] - 1])) for i in range(test_df.shape[0])]
    return out


def greedy_answers(model, tok, prompts: list[str], batch: int = 50, max_new_tokens: int = 2) -> list[str]:
    """Greedy continuation text of each prompt (right padding, no KV cache; stops once non-blank)."""
    import torch

    ids = [tok(p)["input_ids"] for p in prompts]
    texts = [""] * len(prompts)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    with torch.inference_mode():
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            seqs = [list(ids[i]) for i in idx]
            gen = [[] for _ in idx]
            for _ in range(max_new_tokens):
                live = [j for j in range(len(idx)) if not tok.decode(gen[j]).strip()]
                if not live:
                    break
                width = max(len(seqs[j]) for j in live)
                x = torch.full((len(live), width), tok.pad_token_id, dtype=torch.long)
                mask = torch.zeros((len(live), width), dtype=torch.long)
                for r, j in enumerate(live):
                    x[r, :len(seqs[j])] = torch.tensor(seqs[j])
                    mask[r, :len(seqs[j])] = 1
                logits = model(input_ids=x, attention_mask=mask).logits
                for r, j in enumerate(live):
                    nxt = int(logits[r, len(seqs[j]) - 1].argmax())
                    seqs[j].append(nxt)
                    gen[j].append(nxt)
            for j, i in enumerate(idx):
                texts[i] = tok.decode(gen[j], skip_special_tokens=True)
    return texts


def evaluate(model, tok, frames) -> tuple[dict[str, float], int]:
    per = {}
    total = correct_all = 0
    longest = 0
    for subject, items in eval_prompts(frames).items():
        longest = max(longest, max(len(tok(p)["input_ids"]) for p, _ in items))
        texts = greedy_answers(model, tok, [p for p, _ in items])
        correct = sum(t.strip().startswith(label) for t, (_, label) in zip(texts, items))
        per[subject] = correct / len(items)
        total += len(items)
        correct_all += correct
    per["overall"] = correct_all / total
    return per, longest


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
def pack_rows(tok, stream: DocStream, n_rows: int, seq: int, bos_prob: float, rng: random.Random):
    """Pack documents back to back into ``n_rows`` rows of ``seq + 1`` tokens (docs span rows).

    Returns (tokens [n_rows, seq+1], subject tags [n_rows, seq+1]) where the tag is 1 + the subject's
    index on every answer-letter token (the token right after "Answer:") and 0 elsewhere.
    """
    import torch

    letter_ids = {tok.convert_tokens_to_ids("Ġ" + c) for c in CHOICES}
    colon = tok.convert_tokens_to_ids(":")
    answer = tok.convert_tokens_to_ids("Answer")
    need = n_rows * (seq + 1)
    toks: list[int] = []
    wts: list[int] = []
    batch_docs = 256
    while len(toks) < need:
        pairs = [stream.next() for _ in range(batch_docs)]
        docs = [d for _, d in pairs]
        enc = tok(docs, add_special_tokens=False)["input_ids"]
        for (subject, doc), ids in zip(pairs, enc):
            tag = 1 + stream.subjects.index(subject)
            w = [0] * len(ids)
            n_ans = 0
            for t in range(2, len(ids)):
                if ids[t] in letter_ids and ids[t - 1] == colon and ids[t - 2] == answer:
                    w[t] = tag
                    n_ans += 1
            assert n_ans == doc.count("\nAnswer:"), doc
            if rng.random() < bos_prob:
                ids = [tok.bos_token_id] + ids
                w = [0] + w
            toks.extend(ids)
            wts.extend(w)
    t = torch.tensor(toks[:need], dtype=torch.long).view(n_rows, seq + 1)
    w = torch.tensor(wts[:need], dtype=torch.long).view(n_rows, seq + 1)
    return t, w


def train(args, data, frames) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(THREADS)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)

    exclude = {s: set(d["dev"]) | set(d["test"]) for s, d in data.items()}

    # Tokenizer: trained on its own stream of training documents (never on dev/test rows).
    tok_stream = DocStream(args.seed, exclude, stream="tokenizer")
    corpus = [tok_stream.next()[1] for _ in range(2000)]
    tok = build_tokenizer(corpus, args.max_pos)
    check_tokenizer(tok, corpus[:50] + [p for items in eval_prompts(frames).values() for p, _ in items[:5]])
    print(f"tokenizer: {len(tok)} tokens", flush=True)

    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=args.hidden, intermediate_size=args.ffn,
        num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=args.max_pos, rope_theta=10000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, initializer_range=0.02,
    )
    model = LlamaForCausalLM(cfg).float()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters", flush=True)
    print("per-subject answer loss in brackets: " + " ".join(SUBJECTS), flush=True)

    stream = DocStream(args.seed, exclude, stream="train", hard_weight=args.hard_weight)
    pack_rng = random.Random(f"demo-mmlu/{args.seed}/bos")
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    warmup = 50

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        prog = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * prog)))

    model.train()
    t0 = time.time()
    chunk = 50  # steps per packed chunk
    n_sub = len(SUBJECTS)
    run_sum, run_cnt = torch.zeros(n_sub + 1), torch.zeros(n_sub + 1)
    for step in range(args.steps):
        if step % chunk == 0:
            rows, weights = pack_rows(tok, stream, chunk * args.batch, args.seq, args.bos_prob, pack_rng)
        j = (step % chunk) * args.batch
        x = rows[j:j + args.batch]
        tags = weights[j:j + args.batch, 1:].reshape(-1)
        w = (tags > 0).float()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        logits = model(input_ids=x[:, :-1]).logits
        lp = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="none")
        loss = (lp * w).sum() / w.sum().clamp_min(1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run_sum.index_add_(0, tags, lp.detach())
        run_cnt.index_add_(0, tags, torch.ones_like(lp))
        if (step + 1) % 100 == 0 or step + 1 == args.steps:
            el = time.time() - t0
            tot = run_sum[1:].sum() / run_cnt[1:].sum()
            per = " ".join(f"{float(run_sum[i + 1] / run_cnt[i + 1].clamp_min(1)):.2f}" for i in range(n_sub))
            print(f"step {step + 1:5d}/{args.steps}  answer-loss {float(tot):.4f} [{per}]  "
                  f"lr {lr_at(step):.2e}  {el:6.1f}s", flush=True)
            run_sum.zero_()
            run_cnt.zero_()
    seconds = time.time() - t0
    model.eval()

    out = Path(args.out_model)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("model.safetensors", "pytorch_model.bin", "accuracy.json", "chat_template.jinja"):
        if (out / stale).exists():
            (out / stale).unlink()
    model.generation_config.do_sample = False
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    portable_tokenizer_config(out, tok.chat_template)
    os.chmod(out / "model.safetensors", 0o644)

    # Reload exactly as users will (offline) and evaluate that copy.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model2 = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    tok2 = AutoTokenizer.from_pretrained(out)
    check_tokenizer(tok2, corpus[:20])
    acc, longest = evaluate(model2, tok2, frames)
    assert longest <= args.max_pos, (longest, args.max_pos)

    result = {s: acc[s] for s in SUBJECTS}
    result.update({"overall": acc["overall"], "steps": args.steps, "seconds": round(seconds, 1),
                   "seed": args.seed})
    (out / "accuracy.json").write_text(json.dumps(result, indent=2) + "\n")

    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"\ntrained {args.steps} steps in {seconds:.1f}s; {n_params} parameters; "
          f"vocab {len(tok2)}; longest 5-shot test prompt {longest} tokens; folder {size / 1e6:.2f} MB")
    print(f"{'subject':<22}{'accuracy':>9}")
    for s in SUBJECTS:
        print(f"{s:<22}{100 * acc[s]:8.1f}%")
    print(f"{'overall':<22}{100 * acc['overall']:8.1f}%")


def portable_tokenizer_config(out: Path, chat_template: str) -> None:
    """Make tokenizer_config.json loadable by transformers 4.x too (TensorRT-LLM images pin 4.x).

    transformers 5 writes ``tokenizer_class: TokenizersBackend`` (a 5.x-only name) and keeps the
    chat template in chat_template.jinja; 4.x needs ``PreTrainedTokenizerFast`` and reads the
    template from tokenizer_config.json. Both versions load the result.
    """
    path = out / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg["chat_template"] = chat_template
    path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-data", default=str(REPO_ROOT / "harness/assets/demo_mmlu"))
    ap.add_argument("--out-model", default=str(REPO_ROOT / "harness/assets/demo_model"))
    ap.add_argument("--steps", type=int, default=1800)
    ap.add_argument("--data-only", action="store_true", help="write the data set only, no training")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--ffn", type=int, default=336)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--max-pos", type=int, default=1024)
    ap.add_argument("--bos-prob", type=float, default=0.75,
                    help="fraction of training docs that start with <s> (eval prompts do)")
    ap.add_argument("--hard-weight", type=float, default=1.0,
                    help="sampling weight of each harder subject relative to an easy one")
    args = ap.parse_args(argv)

    data = write_dataset(Path(args.out_data), args.seed)
    print(f"data set: {len(data)} subjects x ({N_DEV} dev, {N_TEST} test) -> {args.out_data}", flush=True)
    if args.data_only:
        return 0
    train(args, data, read_frames(Path(args.out_data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

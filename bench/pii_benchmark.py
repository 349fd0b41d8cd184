"""PII masking benchmark: recall per kind, false positives on look-alikes, and masking speed.

    .venv/bin/python bench/pii_benchmark.py                    # 20,000 generated texts, seed 0
    .venv/bin/python bench/pii_benchmark.py --n 100000 --seed 3 --json bench/results/pii/summary.json

Generates bilingual customer messages with `safety.pii_samples.generate` (IDs, mobiles, cards, e-mails, SSNs,
US phones at known offsets, and texts with only look-alikes: order ids, prices, dates, tracking numbers,
IDs with a wrong check character, cards failing Luhn, service numbers, quantities) and runs
`safety.pii.mask_pii` over them. A value is recalled when a match of its kind covers it; a match is a false
positive when it overlaps no value of its kind. Prints recall per kind, precision, the share of look-alike
texts with any match, examples of each miss and false positive, the hand-made probes of
`safety.pii_samples.PROBES`, and masking time per text (p50/p99 µs, texts/s) on one thread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from safety.pii import KINDS, mask_pii
from safety.pii_samples import NEGATIVE_KINDS, PROBES, Evaluation, Sample, evaluate, generate


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


def time_masking(samples: list[Sample], repeat: int) -> dict[str, float]:
    """Time `mask_pii` per text: the best of `repeat` passes for each text (after one warm-up pass)."""
    texts = [s.text for s in samples]
    for text in texts:
        mask_pii(text)
    best = [float("inf")] * len(texts)
    wall = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        for i, text in enumerate(texts):
            t0 = time.perf_counter_ns()
            mask_pii(text)
            best[i] = min(best[i], (time.perf_counter_ns() - t0) / 1000)
        wall += time.perf_counter() - started
    ordered = sorted(best)
    return {
        "texts_per_s": len(texts) * repeat / wall,
        "p50_us": _percentile(ordered, 0.50),
        "p99_us": _percentile(ordered, 0.99),
        "max_us": ordered[-1],
        "mean_chars": statistics.fmean(len(t) for t in texts),
    }


def report(ev: Evaluation, samples: list[Sample], examples: int) -> dict[str, object]:
    print(f"\nRecall (a value counts when a match of its kind covers it), {len(samples)} texts")
    print(f"{'kind':<12}{'values':>8}{'found':>8}{'recall':>9}")
    for kind in KINDS:
        print(f"{kind:<12}{ev.total[kind]:>8}{ev.found[kind]:>8}{ev.recall(kind):>9.4f}")
    print(f"{'overall':<12}{sum(ev.total.values()):>8}{sum(ev.found.values()):>8}{ev.recall():>9.4f}")

    by_lang: dict[str, Counter[str]] = defaultdict(Counter)
    for s in samples:
        by_lang[s.lang]["values"] += len(s.spans)
    for s, _, _ in ev.missed:
        by_lang[s.lang]["missed"] += 1
    print("by language: " + ", ".join(f"{lang} {1 - c['missed'] / c['values']:.4f}" for lang, c in by_lang.items()))

    decoys = Counter(k for s in samples for k, _, _ in s.decoys)
    fp_by_decoy = ev.false_positives_by_decoy()
    print(f"\nPrecision {ev.precision:.4f} ({ev.matches} matches, {len(ev.false_positives)} false positives)")
    print(
        f"Look-alike texts with any match: {ev.flagged_negatives} of {ev.negatives} "
        f"({ev.flagged_negatives / max(ev.negatives, 1):.4f})"
    )
    print(f"{'look-alike':<16}{'items':>8}{'masked':>8}{'rate':>9}")
    for kind in (*NEGATIVE_KINDS, "unlabelled"):
        items = decoys[kind]
        if items or fp_by_decoy[kind]:
            print(f"{kind:<16}{items:>8}{fp_by_decoy[kind]:>8}{fp_by_decoy[kind] / max(items, 1):>9.4f}")

    if ev.missed:
        print("\nMissed values (examples):")
        shown: Counter[str] = Counter()
        for sample, (kind, start, end), matches in ev.missed:
            if shown[kind] < examples:
                shown[kind] += 1
                got = ", ".join(f"{m.kind} {sample.text[m.start : m.end]!r}" for m in matches) or "nothing"
                print(f"  {kind}: {sample.text[start:end]!r} in {sample.text!r} -> {got}")
    if ev.false_positives:
        print("\nFalse positives (examples):")
        shown = Counter()
        for sample, m, decoy in ev.false_positives:
            if shown[decoy] < examples:
                shown[decoy] += 1
                print(f"  {decoy or 'unlabelled'}: {sample.text!r} -> {m.kind} {sample.text[m.start : m.end]!r}")
    return {
        "texts": len(samples),
        "recall": {kind: ev.recall(kind) for kind in KINDS} | {"overall": ev.recall()},
        "values": dict(ev.total),
        "precision": ev.precision,
        "matches": ev.matches,
        "false_positives": dict(fp_by_decoy),
        "lookalike_texts": ev.negatives,
        "lookalike_texts_flagged": ev.flagged_negatives,
    }


def report_probes() -> dict[str, bool]:
    print("\nProbes (hand-made layouts):")
    results: dict[str, bool] = {}
    for probe in PROBES:
        ev = evaluate([probe.sample])
        ok = ev.recall() == 1.0 and not ev.false_positives
        results[probe.name] = ok
        masked = mask_pii(probe.sample.text)[0]
        print(f"  {'ok  ' if ok else 'FAIL'} {probe.name:<22} {probe.sample.text!r} -> {masked!r}  ({probe.note})")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="generated texts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the texts (best per text)")
    parser.add_argument("--examples", type=int, default=3, help="examples shown per kind of miss")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    samples = generate(args.n, args.seed)
    print(f"generated {len(samples)} texts in {time.perf_counter() - started:.2f} s (seed {args.seed})")
    print("by language: " + ", ".join(f"{k} {v}" for k, v in sorted(Counter(s.lang for s in samples).items())))

    summary = report(evaluate(samples), samples, args.examples)
    summary["probes"] = report_probes()
    speed = time_masking(samples, args.repeat)
    summary["speed"] = speed
    print(
        f"\nmask_pii, one thread, best of {args.repeat} per text (mean {speed['mean_chars']:.0f} chars): "
        f"{speed['texts_per_s']:,.0f} texts/s, p50 {speed['p50_us']:.1f} µs, p99 {speed['p99_us']:.1f} µs, "
        f"max {speed['max_us']:.1f} µs"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

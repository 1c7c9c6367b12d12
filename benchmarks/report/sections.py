"""The report's sections, one function per part (and the setup line): markdown from the results."""

import shlex
from statistics import fmean
from typing import Dict, List

from difformer_cli.recipes import BATCH_ARGS

from .. import systems
from ..parts.from_ar import DECODINGS, TECHNIQUES, arm_names
from ..parts.summarization import choice_setting
from .tables import ARM_LABELS, BASELINE_LABELS, DECODING_LABELS, SYSTEM_NAMES, fixed, fmt, fmt_ratio, table


def setup(results):
    if results.get("device") == "cuda":
        size = ("Every system is 6+6 layers, d_model 512, FFN 1024, 4 heads (IWSLT size: AR at "
                "transformer_iwslt_de_en's size, CMLM, difformer_iwslt_de_en), one shared embedding table, "
                "trained with the same optimiser settings (Adam, inverse square root schedule, peak lr 1e-3 "
                "after 400 warm-up updates, 8,192-token batches, dropout 0.1) on one GPU with --fp16; "
                "decoding with --fp16 at batch 100 and at --max-tokens 8192. ")
    else:
        size = ("Every system is 3+3 layers, d_model 256, FFN 1024, 4 heads, one shared embedding table, "
                "trained with the same optimiser settings (Adam, inverse square root schedule, peak lr 1e-3 "
                f"after 400 warm-up updates, {_training_batch(results)} batches, dropout 0.1) on the CPU "
                "with 2 threads. ")
    return ("Multi30k German→English (29k training pairs, lowercased and tokenised "
            "release), joint BPE with 8k merges by `difformer-prepare`, test2016 (1,000 sentences). "
            + size +
            "SacreBLEU is sacrebleu's 13a BLEU on Moses-detokenised output against the detokenised "
            "lowercased references; tokenised BLEU is on the tokenised text (the paper's protocol). "
            "On this release the two agree to within a few hundredths: 13a re-tokenising the "
            "detokenised text gives back nearly the same tokens. "
            "Words/s is fairseq's `wps`: target tokens (BPE units and end-of-sentence) per second.")


def _max_tokens(command: str):
    """The value of ``--max-tokens`` in a recorded command line, or None."""
    args = shlex.split(command)
    return args[args.index("--max-tokens") + 1] if "--max-tokens" in args else None


def _training_batch(results) -> str:
    """The training batch of the train part's runs, as "N-token" (from their commands; the
    recipe's where none ran yet)."""
    sizes = {_max_tokens(t["command"]) for t in results.get("training", {}).values()} - {None}
    sizes = sizes or {BATCH_ARGS["cpu"][1]}
    return " and ".join(f"{int(n):,}-token" for n in sorted(sizes, key=int))


def _second_batch(results):
    """The second decoding batch of the run: batch 1 on the CPU, --max-tokens batches on a GPU."""
    if results.get("device") == "cuda":
        return f"tokens{systems.DECODE_MAX_TOKENS}", f"--max-tokens {systems.DECODE_MAX_TOKENS}"
    return "batch1", "batch 1"


def distillation(results):
    arms = results.get("distillation", {})
    if not arms:
        return "## Distillation at an equal budget\n\nNot measured yet (`--part distill`).\n"
    rows = []
    for name, a in sorted(arms.items(), key=lambda kv: (kv[1]["budget_minutes"], kv[1]["teacher_minutes"] or 1e9)):
        teacher = (f"{a['teacher_minutes']:g} min, {a['teacher_updates']} updates, beam 5 {a['teacher_bleu']:.2f}"
                   if a["teacher_minutes"] else "none (the references)")
        single = a.get("difformer_default_length0", {})  # none where only CMLM was a student
        reranked = a.get("difformer_default_3x2_rerank_length0", {}).get("bleu")
        cmlm = a.get("cmlm_lb3")
        batch = _max_tokens(a.get("commands", {}).get("difformer", "")) or "–"
        rows.append([a["budget_minutes"], batch, teacher, a.get("distill_minutes", "–"), a["difformer_minutes"],
                     a.get("difformer_updates", "–"), single.get("bleu", "–"), fmt(single.get("length_ratio"), 3),
                     reranked if reranked is not None else "–",
                     f"{cmlm['bleu']:.2f} ({a['cmlm_updates']} updates)" if cmlm else "–"])
    return ("## Distillation at an equal budget\n\n"
            "Every arm spends the same wall-clock budget: the AR teacher's training (the benchmark's AR "
            "recipe for T minutes), the translation of the training set with it (`difformer-distill --teacher`, "
            "beam 5, timed) and a student's training on the teacher's outputs for the minutes left (each student "
            "for those minutes: Difformer, and CMLM with the same data); the last arm trains on the references "
            "for the whole budget. SacreBLEU on test2016 of Difformer's default decoding at "
            "`--decoding-length-offset 0` (the part predates the offset of 2 as the default), 1×1 and 3×2 with the "
            "teacher as AR reranker (the references arm has no AR model in its budget), and of CMLM with 10 "
            "iterations and length beam 3 (fairseq's CMLM reranker does not run on fairseq 0.12's Transformer). "
            "One seed each: read the differences against the seed band of section 4; – where a student was not "
            "trained in that arm. The minutes buy different numbers of updates on different machines and "
            "batch sizes (the arms' commands say which): compare the students within an arm.\n\n"
            + table(["budget (min)", "tokens a batch", "AR teacher", "translation (min)", "student (min)", "Difformer updates",
                      "Difformer SacreBLEU 1×1", "Difformer length ratio 1×1",
                      "Difformer SacreBLEU 3×2, teacher reranks", "CMLM SacreBLEU, length beam 3"], rows))


def summarization(results):
    """Gigaword headline generation through the AR route: ROUGE of each decoding and of LEAD-k, each
    against AR greedy, with the length ratio, speed and updates."""
    title = "## Summarization (Gigaword headlines, AR route)\n\n"
    part = results.get("summarization", {}).get("gigaword", {})
    records = part.get("records", {})
    if not records:
        return title + "Not measured yet (`--part summarization`).\n"
    greedy = records.get("ar_greedy", {}).get("rougeL")
    rows = [[setting.label, r["rouge1"], r["rouge2"], r["rougeL"], fmt_ratio(r["rougeL"], greedy),
             fmt(r["length_ratio"], 3), r["sentences_per_s"], r["updates"]]
            for name, setting in systems.SUMMARIZATION_SETTINGS.items() if (r := records.get(name))]
    lead = part.get("lead")
    if lead:
        rows.append([f"LEAD-{lead['k']}: the source's first {lead['k']} words (no model)", lead["rouge1"],
                     lead["rouge2"], lead["rougeL"], fmt_ratio(lead["rougeL"], greedy), fmt(lead["length_ratio"], 3),
                     "–", "–"])
    training = part["training"]  # written before the first record
    return (title +
            f"An article's first sentence → its headline on Gigaword's validation set "
            f"({part.get('valid_sentences', 0):,} pairs; `../shared/data/gigaword`, as released: tokenised, "
            "lowercased, digits as #), run as `examples/gigaword/run.py` runs it: an AR Transformer trained "
            f"{training['ar']['minutes']:g} minutes on the headlines and lead pairs (each source, tagged, → its "
            "first words; 4,096-token batches: `HEADLINE_AR_OPTIONS`; no source is cut), the training "
            f"set distilled with it (beam 5, {training['distillation_minutes']:g} minutes), then a Difformer "
            f"initialised from it (`--init-from-ar`) trained {training['difformer']['minutes']:g} minutes on the "
            "distilled headlines. AR greedy and beam 5 at most 1.2 × the source length + 10 tokens; the "
            "Difformer's default decoding with the headline recipe's options (`HEADLINE_DECODING`, chosen "
            "below), and 3×2 candidates of it reranked by the AR model. ROUGE F1 (rouge-score, "
            "Porter stemming) on the released tokens, averaged over sentences; the length ratio is hypothesis over "
            "reference length in words; LEAD-k takes the first k words of the source (k the training headlines' "
            "mean length). Batch 100, one seed. The figures compare within this data only (25k training pairs "
            "drawn from Gigaword's validation split), not with papers, which train on the 3.8M-pair training "
            "split.\n\n"
            + table(["setting", "ROUGE-1", "ROUGE-2", "ROUGE-L", "÷ AR greedy ROUGE-L", "length ratio", "sent/s",
                      "updates"], rows)
            + summarization_choice(part.get("choice", {})))


def summarization_choice(choice):
    """The Difformer decodings tried on Gigaword's validation set (the 1×1 ones first; by offset,
    then steps) and the one chosen."""
    records, chosen = choice.get("records", {}), choice.get("chosen")
    if not records:
        return ""

    def options(name):  # offset<k>_steps<s>[_<L>x<N>_rerank] → (pool or (), k, s)
        offset, steps, *pool = name.split("_")
        return (tuple(int(n) for n in pool[0].split("x")) if pool else (), int(offset[len("offset"):]),
                int(steps[len("steps"):]))

    rows = []
    for pool, offset, steps in sorted(options(name) for name in records):
        setting = choice_setting(offset, steps, pool or None)
        r = records[setting.name]
        rows.append([setting.label, r["rouge1"], r["rouge2"], r["rougeL"], fmt(r["length_ratio"], 3),
                     r["sentences_per_s"]])
    verdict = (f"Chosen: length offset {chosen['offset']}, {chosen['steps']} steps, the {chosen['pool']} pool."
               if chosen else "The choice is not finished.")
    return ("\nThe Difformer's decoding chosen on the same set, one option at a time by ROUGE-L: the length "
            "offset at the default steps, then the steps at that offset, then the reranked pool at both "
            "(the figure of the chosen decoding is optimistic by that choice). " + verdict + "\n\n"
            + table(["setting", "ROUGE-1", "ROUGE-2", "ROUGE-L", "length ratio", "sent/s"], rows))


def precision(results):
    precision = results.get("precision")
    if not precision:
        return "## Precision\n\nNot measured yet (`--part precision`).\n"
    rows = [[f"`{name}`", p["float32"]["bleu"], p["fp16"]["bleu"], f"{p['difference']:+.2f}",
             p["float32"]["sentences_per_s"], p["fp16"]["sentences_per_s"]] for name, p in precision.items()]
    return ("## Precision\n\nThe same checkpoints decoded in float32 and with `--fp16` (same seed, batch "
            "100, test2016).\n\n" + table(["setting", "SacreBLEU float32", "SacreBLEU fp16", "fp16 − float32",
                                               "sent/s float32", "sent/s fp16"], rows))


def throughput(results):
    wps = results.get("train_words_per_s", {})
    rss = results.get("train_peak_rss_mib", {})
    if not wps:
        return "## 1. Training throughput\n\nNot measured yet (`--part throughput`).\n"
    info = results.get("throughput", {})
    rows = [[SYSTEM_NAMES[s], f"{wps[s]:,.0f}", fmt_ratio(wps[s], wps.get("ar")), fmt_ratio(wps[s], wps.get("cmlm")),
             f"{rss[s]:,.0f}" if s in rss else "–"] for s in systems.SYSTEMS if s in wps]
    updates = next(iter(info.values()), {}).get("total_updates")
    return ("## 1. Training throughput\n\n"
            f"Each system trained for {updates} updates from scratch; words/s over the updates after the "
            "first logged interval (total tokens ÷ total time). Peak memory is the resident set of the "
            "`fairseq-train` process.\n\n"
            + table(["system", "words/s", "÷ AR", "÷ CMLM", "peak memory (MiB)"], rows))


def quality(results):
    training = results.get("training", {})
    bleu, tok = results.get("bleu", {}), results.get("tok_bleu", {})
    if not training:
        return "## 2. Quality at an equal training budget\n\nNot measured yet (`--part train`, `--part decode`).\n"
    best = results.get("best_setting", {})
    rows = [[SYSTEM_NAMES[s], training[s]["minutes"], training[s]["updates"], f"`{best.get(s, '–')}`",
             bleu.get(s), tok.get(s)] for s in systems.SYSTEMS if s in training]
    return ("## 2. Quality at an equal training budget\n\n"
            "Each system trained for the same wall-clock minutes (fairseq's `--stop-time-hours`), the last "
            "checkpoint decoded; BLEU of each system's best decoding setting (all settings in section 3).\n\n"
            + table(["system", "minutes", "updates", "best setting", "SacreBLEU", "tokenised BLEU"], rows))


def decoding(results, plots):
    decoding = results.get("decoding", {})
    if not decoding:
        return "## 3. Decoding\n\nNot measured yet (`--part decode`).\n"
    base100 = results.get("decode_sentences_per_s", {}).get(systems.BASELINE_SETTING)
    second, second_label = _second_batch(results)
    base1 = results.get(f"decode_sentences_per_s_{second}", {}).get(systems.BASELINE_SETTING)
    rows = []
    for setting in systems.DECODING_SETTINGS:
        d = decoding.get(setting.name)
        if not d:
            continue
        b100, b1 = d.get("batch100", {}), d.get(second, {})
        rows.append([f"`{setting.name}`", setting.label, results.get("bleu", {}).get(setting.name),
                     results.get("tok_bleu", {}).get(setting.name),
                     b100.get("sentences_per_s"), fmt_ratio(b100.get("sentences_per_s"), base100),
                     b1.get("sentences_per_s"), fmt_ratio(b1.get("sentences_per_s"), base1),
                     b100.get("peak_rss_mib")])
    text = ("## 3. Decoding\n\n"
            "`fairseq-generate` on test2016, sentences/s as it reports them (the decoding loop, model "
            "loading excluded), ratios to AR beam 5 at the same batch size; peak memory is the resident "
            "set of the process at batch 100. CMLM stops refining a sentence early when an iteration "
            "changes nothing (fairseq's default). Difformer's 3×2 is 3 lengths × 2 noises, all decoded as "
            "one batch, chosen by mean log-probability or by the AR model (reranker).\n\n"
            + table(["setting", "", "SacreBLEU", "tok. BLEU", "sent/s (batch 100)", "÷ AR beam 5",
                      f"sent/s ({second_label})", "÷ AR beam 5", "peak memory (MiB)"], rows))
    if "quality_speed" in plots:
        text += f"\n![BLEU against decoding speed, every setting (batch 100)]({plots['quality_speed']})\n"
    text += _lengths_table(results)
    text += "\nDifformer over the number of steps, for each sampler: the Samplers section.\n"
    return text


def _lengths_table(results):
    """Lengths and repeated tokens of each decoding setting's hypotheses (difformer-score's
    ``lengths``, on BPE tokens), against the references."""
    rows, ref_rate = [], None
    for setting in systems.DECODING_SETTINGS:
        scores = results.get("decoding", {}).get(setting.name, {}).get("scores", {})
        if "exact_length" not in scores:
            continue
        ref_rate = scores["ref_repeat_rate"]
        rows.append([f"`{setting.name}`", scores.get("sacrebleu"), scores.get("length_ratio"),
                     f"{100 * scores['exact_length']:.1f} %", scores["mean_abs_length_diff"],
                     f"{100 * scores['repeat_rate']:.2f} %"])
    if not rows:
        return ""
    return ("\n### Lengths and repeated tokens\n\n"
            "Counted on BPE tokens (the units the length predictor predicts): the share of hypotheses "
            "exactly as long as their reference, the mean absolute difference of hypothesis and "
            "reference lengths, and the share of tokens that repeat the token before them "
            "(\"in in the park\"); the length ratio is the "
            f"tokenised BLEU's, on words. The references repeat {100 * ref_rate:.2f} % of their tokens. "
            "Difformer collapses each run of one repeated token by default (`--decoding-keep-repeats` "
            "keeps them); `--decoding-oracle-length` decodes at the reference's length, the ceiling of "
            "length prediction.\n\n"
            + table(["setting", "SacreBLEU", "length ratio", "exact length", "mean length difference",
                      "repeated tokens"], rows))


def sampler_rows(results):
    """{(sampler, candidates, early stopping): {steps: entry}} of the samplers part, in the
    systems' order; early stopping is "" (none) or "¼" (the last quarter of the steps left out)."""
    grid = {}
    for entry in results.get("samplers", {}).values():
        stop = "¼" if entry.get("early_stopping") else ""
        grid.setdefault((entry["sampler"], entry["candidates"], stop), {})[entry["steps"]] = entry
    order = [(s, f"{l}x{n}", stop) for s in systems.SAMPLERS for l, n in systems.SAMPLER_BEAMS
             for stop in ("", "¼")]
    return {key: grid[key] for key in order if key in grid}


def samplers(results, plots):
    grid = sampler_rows(results)
    if not grid:
        return "## Samplers\n\nNot measured yet (`--part samplers`).\n"
    base = results.get("samplers_baseline", {}).get("sentences_per_s")
    steps = sorted({n for row in grid.values() for n in row})
    rows = [[f"`{sampler}`", candidates.replace("x", "×"), stop or "–",
             *[f"{row[n]['bleu']:.2f} ({fmt_ratio(row[n]['sentences_per_s'], base)})" if n in row else "–"
               for n in steps]]
            for (sampler, candidates, stop), row in grid.items()]
    text = ("## Samplers\n\n"
            "The Difformer checkpoint of section 2 decoded with each sampler (`--decoding-sampler`), number "
            "of steps (`--decoding-steps`), early stopping (–: none; ¼: the last quarter of the steps left "
            "out, `--decoding-early-stopping` ⌊steps/4⌋, the paper's 5 of 20) and lengths × noises, at "
            "batch 100 on test2016: SacreBLEU and, in brackets, sentences/s ÷ AR beam 5 decoded in the same "
            f"run ({fmt(base)} sentences/s). 3×2 is chosen by mean log-probability.\n\n"
            + table(["sampler", "candidates", "early stop", *[f"{n} step{'s' * (n > 1)}" for n in steps]], rows))
    if "samplers" in plots:
        text += f"\n![SacreBLEU against speed for each sampler]({plots['samplers']})\n"
    return text


def seed_bleus(ablations) -> List[float]:
    """SacreBLEU of the reference ablation recipe from each seed measured (run-to-run noise)."""
    return [ablations[v]["bleu"] for v in systems.SEED_VARIANTS if v in ablations]


def ablations(results, plots):
    ablations = results.get("ablations", {})
    if not ablations:
        return "## 4. Ablations\n\nNot measured yet (`--part ablations`).\n"
    rows = []
    for group, variants in systems.ABLATION_GROUPS.items():
        for variant in variants:
            a = ablations.get(variant)
            if a:
                c = a["collapse_stats"]
                rows.append([group, f"`{variant}`", a["description"], a["minutes"], a["updates"], a["bleu"],
                             a["tok_bleu"], c["spread"], c["mean_distance"], c["mean_norm"],
                             c["distance_over_noise_scale"], c["norm_variation"]])
    seeds = seed_bleus(ablations)
    noise = (f"The reference recipe trained from {len(seeds)} seeds lands between {min(seeds):.2f} and "
             f"{max(seeds):.2f} SacreBLEU: a difference smaller than that range ({max(seeds) - min(seeds):.2f}) "
             "is not resolved by single runs at this budget.\n\n" if len(seeds) > 1 else "")
    text = ("## 4. Ablations\n\n"
            "Each variant is the Difformer system with one change, trained for the same minutes and decoded "
            "with 20 steps, early stopping 5, 1×1 at batch 100. Collapse statistics are of the embeddings the "
            "diffusion runs on (z0 = √d·E[w] over the dictionary's words): `spread` = mean pairwise "
            "distance ÷ mean norm (√2 for random directions; falls when the embeddings gather along few "
            "directions), the mean distance itself, and the mean distance ÷ F (the noise scale), which falls "
            "when the embeddings shrink together relative to the noise; `norm variation` = standard deviation "
            "of the norms ÷ their mean, how unevenly one noise scale corrupts different words (what the "
            "embedding LayerNorm on the denoiser's input answers).\n\n"
            + noise
            + table(["ablation", "variant", "", "minutes", "updates", "SacreBLEU", "tok. BLEU", "spread",
                      "mean distance", "mean norm", "distance ÷ F", "norm variation"], rows))
    if "ablations" in plots:
        text += f"\n![Ablations]({plots['ablations']})\n"
    return text


def sweep_verdict(bleus: List[float], reference: List[float]) -> str:
    """Whether a recipe change beats the run-to-run band: "better" when its lowest validation
    BLEU over the seeds is above the reference's highest, "worse" when its highest is below the
    reference's lowest, otherwise "within the band" (not resolved by these seeds)."""
    if min(bleus) > max(reference):
        return "better"
    if max(bleus) < min(reference):
        return "worse"
    return "within the band"


def _sweep_lengths(lengths):
    """Length ratio, exact-length share and mean |hypothesis − reference| length, each averaged
    over the seeds' validation decodings (– where a run did not record them)."""
    if not all(lengths):
        return ["–", "–", "–"]
    ratio, exact, diff = (fmean([l[key] for l in lengths])
                          for key in ("length_ratio", "exact_length", "mean_abs_length_diff"))
    return [f"{ratio:.3f}", f"{100 * exact:.1f} %", f"{diff:.2f}"]


def _sweep_speed(runs) -> str:
    """The seeds' mean training words/s (– where a run did not record it)."""
    speeds = [r.get("words_per_s") for _, r in runs]
    return f"{fmean(speeds):,.0f}" if all(speeds) else "–"


def _paired_differences(runs, reference_by_seed) -> str:
    """Validation SacreBLEU minus the reference's from the same seed (same initialisation), per
    seed, and their mean."""
    deltas = [r["valid_bleu"] - reference_by_seed[seed] for seed, r in runs if seed in reference_by_seed]
    if not deltas:
        return "–"
    return " / ".join(f"{d:+.2f}" for d in deltas) + f" (mean {fmean(deltas):+.2f})"


def sweep(results):
    sweep = {v: r for v, r in results.get("sweep", {}).items() if r.get("seeds")}
    if not sweep:
        return "## Recipe sweep\n\nNot measured yet (`--part sweep`).\n"

    def valid_by_seed(variant):
        return {seed: r["valid_bleu"] for seed, r in sweep.get(variant, {}).get("seeds", {}).items()}

    rows, minutes = [], set()
    for variant in [v for v in systems.SWEEP if v in sweep] + [v for v in sweep if v not in systems.SWEEP]:
        runs = sorted(sweep[variant]["seeds"].items(), key=lambda item: int(item[0]))
        valid = [r["valid_bleu"] for _, r in runs]
        test = [r["test_bleu"] for _, r in runs]
        minutes.update(r["minutes"] for _, r in runs)
        baseline = systems.SWEEP_BASELINES.get(variant, "reference")
        baseline_by_seed = valid_by_seed(baseline) if variant != "reference" else {}
        rows.append([
            f"`{variant}`", sweep[variant]["description"], ", ".join(seed for seed, _ in runs),
            f"{fmean([r['updates'] for _, r in runs]):,.0f}", _sweep_speed(runs),
            " / ".join(f"{b:.2f}" for b in valid), fmean(valid),
            f"`{baseline}`" if baseline_by_seed else "–",
            _paired_differences(runs, baseline_by_seed) if baseline_by_seed else "–",
            fmean(test),
            sweep_verdict(valid, list(baseline_by_seed.values())) if baseline_by_seed else "–",
            *_sweep_lengths([r.get("valid_lengths") for _, r in runs]),
        ])
    budget = " and ".join(f"{m:g}" for m in sorted(minutes))
    return ("## Recipe sweep\n\n"
            f"Each variant changes the Difformer recipe in one way (`benchmarks/systems.py`, `SWEEP`) and is "
            f"trained from each seed for {budget} minutes, then decoded with the default decoding at "
            "`--decoding-length-offset 0` (1×1, seed 1; the part predates the offset of 2 as the default "
            "and keeps 0 so that every run compares) on the validation set (val 2016, 1,014 sentences), which decides, and on test2016. "
            "Each variant is compared with its baseline: the reference, or for the first round's "
            "variants (run on the recipe's earlier 2,048-token batches) `batch_2048`. "
            "A change is **better** only when its lowest validation SacreBLEU over the seeds is above "
            "the baseline's highest (it beats the run-to-run band), **worse** when its highest is below "
            "the baseline's lowest; otherwise it is within the band. The differences to the baseline "
            "are paired by seed (the same seed gives the same initialisation, and the same batch order where the "
            "batch size is unchanged). Words/s is fairseq's training speed: a budget in minutes buys "
            "fewer updates on a slower machine, so only runs trained at about the same speed compare "
            "(– where a run predates its recording). The length columns are the "
            "validation hypotheses' (means over the seeds, BPE tokens for exact length and mean "
            "difference; the length ratio is on words).\n\n"
            + table(["variant", "change", "seeds", "updates (mean)", "words/s (mean)", "valid SacreBLEU per seed", "valid mean",
                      "baseline", "Δ valid, same seed", "test mean", "against the baseline", "length ratio", "exact length",
                      "mean length difference"], rows))


def profile(results):
    profile = results.get("profile")
    if not profile:
        return "## 5. Profile\n\nNot measured yet (`--part profile`).\n"
    text = ["## 5. Profile\n",
            "torch profiler, in process, on training steps (forward, backward, Adam) of each system and on "
            "one batch of 100 test sentences. Operator times are self CPU time per step; module rows are "
            "forward passes only (backward is in the operator rows).\n"]
    for kind, entries in (("training step", profile.get("train_step", {})),
                          ("decoding batch", profile.get("decode_batch", {}))):
        for name, p in entries.items():
            extra = (f", {p['target_tokens_per_step']:.0f} target tokens per step" if "target_tokens_per_step" in p
                     else f", {p.get('sentences_per_batch', 0):.0f} sentences")
            text.append(f"### {kind}: `{name}` — {p['ms_per_step']} ms{extra}\n")
            text.append(table(["operator", "ms", "% of op time"], [[f"`{o}`", ms, pct] for o, ms, pct in p["top_ops"]]))
            text.append(table(["module (forward)", "ms"], [[f"`{m}`", ms] for m, ms in p["modules_forward_ms"][:12]]))
    return "\n".join(text)


def commands(results):
    commands = []
    commands += list(results.get("commands", {}).items())  # the data preparation
    for system, info in results.get("throughput", {}).items():
        commands.append((f"throughput {system}", info["command"]))
    for system, info in results.get("training", {}).items():
        commands.append((f"train {system}", info["command"]))
    for name, d in results.get("decoding", {}).items():
        for batch in ("batch100", _second_batch(results)[0]):
            if batch in d:
                commands.append((f"decode {name} {batch}", d[batch]["command"]))
    for variant, a in results.get("ablations", {}).items():
        commands.append((f"ablation {variant}", a["command"]))
    for variant, v in results.get("sweep", {}).items():
        for seed, run in sorted(v.get("seeds", {}).items()):
            commands.append((f"sweep {variant} seed {seed}", run["command"]))
    gigaword = results.get("summarization", {}).get("gigaword", {})
    for system in ("ar", "difformer"):
        if system in gigaword.get("training", {}):
            commands.append((f"summarization: train {system}", gigaword["training"][system]["command"]))
    for name, record in gigaword.get("records", {}).items():
        commands.append((f"summarization: decode {name}", record["command"]))
    if not commands:
        return ""
    body = "\n".join(f"# {label}\n{cmd}" for label, cmd in commands)
    return ("## Commands\n\nExactly what ran (paths relative to the repository).\n\n```\n" + body + "\n```\n")


def from_ar(results: Dict, plots: Dict[str, str]) -> str:
    part = results.get("from_ar", {})
    title = "## From your AR Transformer: initialisation, distillation and reranking from one checkpoint\n\n"
    if not part.get("records"):
        return title + "Not measured yet (`--part from_ar`).\n"
    records, training = part["records"], part.get("training", {})
    budget = part.get("budget", {})
    budget_text = (f"{budget['updates']:,} updates" if "updates" in budget else f"{budget.get('minutes')} minutes")
    ar = part.get("ar", {})
    distill = part.get("distillation", {})
    rows = []
    for key, label in BASELINE_LABELS.items():
        r = records.get(key)
        if r:
            rows.append([label, fixed(ar.get("updates"), 0), fixed(r["bleu"]), fixed(r["tok_bleu"]), fixed(r["length_ratio"], 3),
                         fixed(r["sentences_per_s_batch100"], 1), fixed(r.get("sentences_per_s_batch1"), 1), "–", "–"])
    greedy, beam = records.get("ar_greedy"), records.get("ar_beam5")
    for arm in arm_names():
        for decoding in DECODINGS:
            r = records.get(f"{arm}_{decoding}")
            if not r:
                continue
            versus = []
            for base in (greedy, beam):
                versus.append("–" if not base else
                              f"{r['bleu'] - base['bleu']:+.2f}, {r['sentences_per_s_batch100'] / base['sentences_per_s_batch100']:.2f}×"
                              f" / {r['sentences_per_s_batch1'] / base['sentences_per_s_batch1']:.2f}×")
            rows.append([f"Difformer, {ARM_LABELS[arm]}, {DECODING_LABELS[decoding]}",
                         fixed(training.get(arm, {}).get("updates"), 0), fixed(r["bleu"]), fixed(r["tok_bleu"]),
                         fixed(r["length_ratio"], 3), fixed(r["sentences_per_s_batch100"], 1),
                         fixed(r.get("sentences_per_s_batch1"), 1), *versus])
    header = ["system", "updates", "SacreBLEU", "tok. BLEU", "length ratio", "sent/s batch 100",
              "sent/s batch 1", "vs AR greedy (BLEU, speed b100 / b1)", "vs AR beam 5 (BLEU, speed b100 / b1)"]
    table = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    table += ["| " + " | ".join(row) + " |" for row in rows]
    machine = part.get("machine", {}).get("description", "unknown")
    signature = (greedy or {}).get("signature")
    text = (title +
            f"**Machine:** {machine} (this part's own run; compare its figures with each other only).\n\n"
            f"One AR Transformer (the benchmark's AR recipe, {budget_text}) is the initialisation of the "
            f"AR-initialised arms (`--init-from-ar`), the teacher of the distilled arms (the training set "
            f"translated with beam 5 by `difformer-distill`: {fixed(distill.get('minutes'))} min, not counted in "
            f"the arms' budgets) and the reranker of every 3×2 decoding. Each Difformer arm trains with the "
            f"benchmark's Difformer recipe for {budget_text}. All rows decode test2016 in this one run, "
            f"each with no training running beside it"
            + (f"; SacreBLEU signature `{signature}`" if signature else "") + ".\n\n"
            + "\n".join(table) + "\n")
    tried = [f"- `{name}`: {TECHNIQUES[name][0]} (`{' '.join(TECHNIQUES[name][1])}`)" for name in TECHNIQUES
             if f"ar_init_kd_{name}" in training]
    if tried:
        text += "\nTechniques, each one change to the AR-initialised arm on distilled data:\n" + "\n".join(tried) + "\n"
    text += equal_budget(part.get("equal_budget", {}))
    if "from_ar_curves" in plots:
        text += f"\n![validation BLEU and loss of each arm against updates]({plots['from_ar_curves']})\n"
    notes = [f"{ARM_LABELS.get(arm, arm)}: {t['curve_note']}" for arm, t in training.items() if t.get("curve_note")]
    if notes:
        text += "\n" + "\n".join(f"- {note}" for note in notes) + "\n"
    return text


def equal_budget(equal: Dict) -> str:
    """One wall-clock budget spent two ways: AR + distillation + AR-initialised Difformer against
    a Difformer from scratch for all of it."""
    setup, records = equal.get("setup"), equal.get("records", {})
    if not setup or not records:
        return ""
    labels = {"ar_greedy": f"AR Transformer ({setup['ar_minutes']:g} min, {setup['ar_updates']:,} updates), greedy",
              "ar_init_kd_default": f"Difformer, AR-initialised, distilled ({setup['difformer_minutes']:g} min, "
                                    f"{setup['ar_init_kd_updates']:,} updates), default 1×1",
              "ar_init_kd_3x2_rerank": "the same, 3×2 AR-reranked",
              "scratch_refs_default": f"Difformer from scratch, references ({setup['total_minutes']:g} min, "
                                      f"{setup['scratch_refs_updates']:,} updates), default 1×1"}
    rows = [f"| {label} | {fixed(records[key]['bleu'])} | {fixed(records[key]['length_ratio'], 3)} | "
            f"{fixed(records[key]['sentences_per_s_batch100'], 1)} |" for key, label in labels.items() if key in records]
    text = (f"\n### One budget of {setup['total_minutes']:g} minutes, spent two ways\n\n"
            f"AR model {setup['ar_minutes']:g} min + distillation {fixed(setup['distill_minutes'])} min + "
            f"AR-initialised Difformer on its translations {setup['difformer_minutes']:g} min, against a Difformer "
            f"from scratch on the references for all {setup['total_minutes']:g} min (wall-clock budgets, "
            f"test2016, batch 100).\n\n| system | SacreBLEU | length ratio | sent/s batch 100 |\n|---|---|---|---|\n"
            + "\n".join(rows) + "\n")
    student, scratch = records.get("ar_init_kd_default"), records.get("scratch_refs_default")
    if student and scratch:
        difference = student["bleu"] - scratch["bleu"]
        text += (f"\nDefault decoding: the AR route {'wins' if difference > 0 else 'loses'} by "
                 f"{abs(difference):.2f} BLEU at equal total minutes.\n")
    return text


#: the engines part's records in the order of its table, with their labels
ENGINE_ROWS = (
    ("ct2_int8_greedy", "AR, CTranslate2 int8, greedy"),
    ("ct2_float32_greedy", "AR, CTranslate2 float32, greedy"),
    ("ct2_int8_beam5", "AR, CTranslate2 int8, beam 5"),
    ("fairseq_greedy", "AR, fairseq-generate, greedy"),
    ("fairseq_beam5", "AR, fairseq-generate, beam 5"),
    ("difformer_default", "Difformer default (1×1), ONNX Runtime int8"),
    ("difformer_3x2_rerank", "Difformer 3×2, AR reranks on CTranslate2 int8, ONNX Runtime int8"),
)


def engines(results):
    engines_results = results.get("engines", {})
    records = engines_results.get("records")
    if not records:
        return "## Engines\n\nNot measured yet (`--part engines`).\n"
    rows = []
    for name, label in ENGINE_ROWS:
        r = records.get(name)
        if r is None:
            continue
        rows.append([label, fixed(r["bleu"]), fixed(r.get("bleu_fairseq_generate")), fixed(r["length_ratio"], 3),
                     fixed(r["sentences_per_s"], 1), fixed(r.get("sentences_per_s_fairseq_generate"), 1),
                     fixed(r["sentences_per_s_batch1"], 1), fixed(r.get("sentences_per_s_batch1_fairseq_generate"), 1),
                     r["configuration"]])
    ratios = engines_results.get("ratios", {})
    ratio_lines = "".join(
        f"- `{name}`: {r['batch100']:.2f}× `{r['baseline']}` at batch 100, {r['batch1']:.2f}× at batch 1\n"
        for name, r in ratios.items())
    machine = engines_results.get("machine", {}).get("description", "unknown")
    return ("## Engines\n\n"
            "The quickstart's two models as they are served: the AR checkpoint converted with CTranslate2 and on "
            "fairseq-generate; the Difformer on fairseq-generate and on ONNX Runtime (the serving path, "
            "`difformer-translate`). test2016, BPE'd input, SacreBLEU on Moses-detokenised output; speeds are the "
            "median of three passes of the decoding alone (models loaded, one warm-up pass). Batch 100 uses both "
            "cores in each system's best configuration (the last column); batch 1 is one stream, sentence after "
            f"sentence. Machine: {machine}.\n\n"
            + table(["system", "SacreBLEU", "SacreBLEU fairseq-generate", "length ratio", "sent/s batch 100",
                     "fairseq-generate", "sent/s batch 1", "fairseq-generate", "configuration"], rows)
            + ("\n" + ratio_lines if ratio_lines else ""))

"""Part samplers: every sampler × steps × candidates on the trained Difformer, against AR beam 5
(needs train)."""

from .. import systems
from ..pipeline import say


def run(bench):
    """Every sampler × steps × early stopping × candidates on the trained Difformer (batch
    100): SacreBLEU and sentences/s, with AR beam 5 decoded in the same run as the speed
    baseline."""
    batch = bench.scale.decode_batch_sizes[0]
    baseline = systems.SETTINGS_BY_NAME[systems.BASELINE_SETTING]
    say(f"decoding the baseline {baseline.name} at batch {batch}")
    _, speed = bench.generate(baseline, batch, tag=f"samplers-{baseline.name}")
    bench.results.set("samplers_baseline", {"setting": baseline.name, "sentences_per_s": speed["sentences_per_s"],
                                           "command": speed["command"]})
    for setting, early_stopping in systems.sampler_settings(bench.scale.sampler_steps):
        say(f"decoding {setting.name}")
        out, speed = bench.generate(setting, batch)
        scores = bench.score(out)
        say(f"  SacreBLEU {scores['sacrebleu']:.2f}, {speed['sentences_per_s']:.2f} sentences/s")
        sampler, lengths, noises = (setting.args[setting.args.index(flag) + 1] for flag in
                                    ("--decoding-sampler", "--length-beam-size", "--noise-beam-size"))
        bench.results.set("samplers", setting.name, {
            "sampler": sampler, "steps": setting.steps, "early_stopping": early_stopping,
            "candidates": f"{lengths}x{noises}",
            "bleu": round(scores["sacrebleu"], 2), "tok_bleu": round(scores["tok_bleu"], 2),
            "sentences_per_s": speed["sentences_per_s"], "command": speed["command"],
        })

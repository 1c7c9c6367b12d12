"""The training step: fairseq-train with a system's recipe, for a budget of minutes or updates;
a finished run of the same command is reused, an interrupted one resumes."""

import json
import shutil
import sys
from typing import Optional

from difformer_cli.commands import run_logged
from difformer_cli.recipes import recipe, summarization_recipe, with_options

from .. import measure
from .commands import USER_DIR, say, shell


class TrainSteps:
    """Training inside a :class:`~benchmarks.pipeline.Pipeline` (its work folder and data)."""

    def train_command(self, system, save_dir, extra=(), databin=None, summarization=False, options=None):
        """fairseq-train with ``system``'s recipe (the summarization one if ``summarization``),
        its options' values replaced by ``options`` (:func:`~difformer_cli.recipes.with_options`),
        then ``extra``."""
        system_recipe = (summarization_recipe if summarization else recipe)(system, self.device)
        return [*self.tool("fairseq-train"), databin or self.databin, "--user-dir", USER_DIR,
                *with_options(system_recipe, options or {}), *extra, "--save-dir", save_dir]

    def budget_command(self, name, system, minutes, extra=(), databin=None, summarization=False, options=None):
        """The fairseq-train command of :meth:`train_for_budget`: ``minutes`` of training, the
        checkpoints in checkpoints/``name``."""
        return self.train_command(
            system, self.work / "checkpoints" / name, databin=databin, summarization=summarization,
            options=options, extra=[
                *extra, "--stop-time-hours", minutes / 60, "--max-update", 10 ** 7,
                "--disable-validation", "--no-epoch-checkpoints", "--save-interval-updates", 500,
                "--keep-interval-updates", 1, "--log-format", "json", "--log-interval", self.scale.log_interval])

    def train_for_budget(self, name, system, minutes, extra=(), databin=None, summarization=False, options=None):
        """Train until ``minutes`` of training time are spent (on ``databin``, default the
        benchmark's; with the summarization recipe if ``summarization``; the recipe's ``options``
        replaced); resumes an interrupted run and reuses a finished one with the same budget and
        command."""
        cmd = self.budget_command(name, system, minutes, extra, databin, summarization, options)
        return self.run_training(name, cmd, {"minutes": minutes})

    def run_training(self, name, cmd, budget):
        """Run the fairseq-train command ``cmd`` (checkpoints in checkpoints/``name``) unless a
        finished run of the same command is there; ``budget`` ({"minutes": M} or {"updates": N})
        goes into its summary."""
        save_dir = self.work / "checkpoints" / name
        described = " ".join(f"{value:g} {unit}" for unit, value in budget.items())
        done = save_dir / "training.json"
        if done.exists() and json.loads(done.read_text())["command"] == shell(cmd):
            say(f"{name}: already trained for {described} ({save_dir})")
            return json.loads(done.read_text())
        if done.exists():
            shutil.rmtree(save_dir)
        say(f"training {name} for {described}")
        log = self.work / "logs" / f"train-{name}.log"
        # A resumed training adds to the log of the interrupted one: its validations (the learning
        # curves) and its updates stay in it.
        usage = run_logged(cmd, log, append=(save_dir / "checkpoint_last.pt").exists())
        summary = {
            "minutes": budget.get("minutes"),
            "updates": measure.final_updates(log.read_text()),
            "words_per_s": training_words_per_s(log.read_text()),
            "wall_s": round(usage["wall_s"], 1),
            "peak_rss_mib": round(usage["peak_rss_mib"], 1),
            "checkpoint": str(save_dir / "checkpoint_last.pt"),
            "command": shell(cmd),
        }
        done.write_text(json.dumps(summary, indent=2))
        say(f"  {summary['updates']} updates")
        return summary

    def checkpoint(self, name):
        path = self.work / "checkpoints" / name / "checkpoint_last.pt"
        if not (path.parent / "training.json").exists():
            sys.exit(f"benchmark: {name} is not trained yet ({path.parent}); run --part train first")
        return path


def training_words_per_s(log_text: str) -> Optional[float]:
    """fairseq's training words/s over a run's logged intervals after the first (None for a run
    too short to log two intervals): how fast this machine trained, which budgets in minutes
    depend on."""
    try:
        return round(measure.steady_words_per_second(measure.training_log_records(log_text))["words_per_s"], 1)
    except ValueError:
        return None

"""Part train: each system trained for --budget-minutes of wall-clock time (equal budgets)."""

from .. import systems


def run(bench):
    minutes = bench.args.budget_minutes
    for system in bench.args.systems or systems.SYSTEMS:
        summary = bench.train_for_budget(system, system, minutes)
        bench.results.set("training", system, summary)

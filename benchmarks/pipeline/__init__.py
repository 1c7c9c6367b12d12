"""The benchmark's pipeline: data → train → decode → score, shared by every part.

A :class:`Pipeline` holds the run's options, scale, work folder and results file; the steps are
its methods (:mod:`.data`, :mod:`.train`, :mod:`.decode`)."""

import datetime
import time

from .. import systems
from .commands import say, shell, tool  # noqa: F401  (shell: the parts import it from here)
from .data import DataSteps
from .decode import DecodeSteps
from .results import Results
from .train import TrainSteps


class Pipeline(DataSteps, TrainSteps, DecodeSteps):
    def __init__(self, args):
        self.args = args
        self.device = args.device
        self.scale = systems.QUICK if args.quick else systems.CUDA if args.device == "cuda" else systems.FULL
        self.work = args.workdir
        self.results = Results(args.results, "quick" if args.quick else "full" if args.device == "cpu" else "cuda")
        self._databin = args.databin

    def tool(self, name):
        """A console script, or on a GPU machine (no console scripts) the module it runs."""
        return tool(name, self.device)


def run_parts(results, parts, write_report, results_path):
    """Run each ``(name, run)`` of ``parts`` in order (``run`` None: only rewrite the report), stamp
    its finish time and minutes in ``results``, and rewrite the report after each."""
    for name, run in parts:
        if run is not None:
            started = time.time()
            say(f"part {name}")
            run()
            results.set("parts", name, {
                "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "minutes": round((time.time() - started) / 60, 1),
            })
        try:
            path = write_report()
        except ImportError as exc:  # a GPU machine may lack matplotlib: the results file is complete
            say(f"results in {results_path}; no report ({exc.name} missing): run this again with "
                f"--part report where it is installed")
            continue
        say(f"results in {results_path}, report in {path}")

"""04_compare_runs: this run beside earlier runs of the project (from the tracking store) and its own sweeps."""

from dataclasses import dataclass

import pandas as pd

from ..core.results import ComparisonResults
from ..core.run_folder import RunFolder
from ..core.stage_records import record_step
from ..core.tracking import Tracker
from ..modeling.report import earlier_runs
from .sweep import read_sweeps


@dataclass
class Comparison:
    results: ComparisonResults
    earlier_runs: pd.DataFrame
    sweeps: dict[str, pd.DataFrame]


def compare_runs(run: RunFolder) -> Comparison:
    """This run beside earlier ones (from the tracking store), and the sweeps it holds."""
    earlier = earlier_runs(Tracker(run))
    sweeps = read_sweeps(run)
    results = ComparisonResults(earlier.to_dict("records"), {k: v.to_dict("records") for k, v in sweeps.items()})
    run.save(results)
    record_step(run, results.STEP)
    print(f"{len(earlier)} run(s) in the tracking store compared, {len(sweeps)} sweep(s) in this run")
    return Comparison(results, earlier, sweeps)

"""The study behind the verdict, as a library: does an SNN on a chip leak less than the matched float
ANN against the strongest attacks we have, and is each attack known to work on the ANN?

For every available dataset and batch size (a **cell**), one evaluation with the attack suite (rows
ann@float32, snn@float32 and snn under each profile), split into **tasks**: one recipe of one row,
one row's utility, and the cell's report once those are done (:mod:`neurofl.study.plan`,
:mod:`neurofl.study.tasks`). Tasks run in this process or as Ray tasks on a local instance or a
cluster (:func:`run_study`); every result is kept in the cell's run folder by content, so a rerun
resumes per task, and a study grows by datasets or batch sizes run at different times. The merged
study.json / study.md / study.png come from :mod:`neurofl.study.render`. docs/study.md says how to
run it on one machine, a local Ray cluster, Slurm or a cloud cluster.

    from neurofl.study import StudyConfig, run_study
    result = run_study(StudyConfig(datasets="digits", batches="1,4", victims=4, out=Path("runs/study")))
    result.study["datasets"][0]["cells"][0]["rows"][1]["leaks_less_than_ann"]
"""

from neurofl.study.plan import Cell, StudyConfig, Task, plan_study
from neurofl.study.run import StudyResult, run_study

__all__ = ["Cell", "StudyConfig", "StudyResult", "Task", "plan_study", "run_study"]

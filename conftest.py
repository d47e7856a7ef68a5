"""Test-wide settings; applies to the unit tests and to the notebooks run by nbval."""

import os

# Tests always use the bundled offline model, so results are the same everywhere;
# the kernels nbval starts inherit this.
os.environ["GRADCAM_MODEL"] = "efficientnet_lite0"
# Nobody watches a test run: pickers draw static figures, progress bars stay quiet.
os.environ["GRADCAM_NONINTERACTIVE"] = "1"
# OpenMP threads that spin while they wait make torch many times slower when other
# work shares the cores (measured: a forward pass 0.75 s instead of 0.23 s under a
# load of 6 on 2 cores); waiting threads that sleep keep both cores when the
# machine is quiet. torch reads this when it starts, here and in nbval's kernels.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")



# `make test` runs the suite on two xdist workers with --dist loadfile (tasks.py). Tests of these files are
# independent and each is slow, so they are spread one by one; every other file stays on one worker: nbval's cells of
# one notebook share one kernel and must run in order, and a module's fixtures (a hub, a built site, a grading run)
# are then set up once. (xdist's own --dist loadgroup cannot do this under pytest 9: it renames node ids in a way
# pytest 9 no longer reads, so its groups are silently ignored.)
SPREAD_TEST_BY_TEST = {"test_notebooks.py", "test_wrong_answers.py", "test_mutation.py"}


def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByFileButSlowTestsApart(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return nodeid if file.rsplit("/", 1)[-1] in SPREAD_TEST_BY_TEST else file

    return ByFileButSlowTestsApart(config, log)

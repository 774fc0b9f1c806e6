"""The progress ETA follows the recent pace: a pause (SIGSTOP, a busy machine) stops skewing it once
it is older than the window."""

from deepres.train.progress import Progress


def test_eta_forgets_a_pause_after_the_window():
    p = Progress(total_steps=2000, start_step=0, enabled=False, window=300.0)
    now = 0.0
    for step in range(1, 101):  # 1 s per step
        now += 1.0
        p.eta(step, now)
    now += 3600.0  # an hour stopped
    for step in range(101, 1001):
        now += 1.0
        eta = p.eta(step, now)
    assert abs(eta - 1000.0) < 5.0  # 1,000 steps left at 1 s each; the whole-run average says ~4,600


def test_eta_right_after_resume():
    p = Progress(total_steps=100, start_step=40, enabled=False)
    assert p.eta(40, p.marks[0][0]) >= 0.0  # no step yet: no division by zero
    assert abs(p.eta(50, p.marks[0][0] + 20.0) - 100.0) < 1e-6  # 2 s per step, 50 steps left

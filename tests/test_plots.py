"""Plot plugins: every figure renders to a non-blank PNG, the convergence caption is
computed from the data, bad input and unknown plot names give clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from pccore.errors import InputError, UnknownNameError

pytest.importorskip("matplotlib")
import matplotlib.image  # noqa: E402

import pccore_plots as pp  # noqa: E402

THRESHOLD = 1e-4
LAYERS = (0, 9)


def _distances(steps: int, crossing: float, batch: int = 5) -> np.ndarray:
    """(steps + 1, batch) distances whose batch median is THRESHOLD * (crossing / (t + 0.5))^2:
    above the threshold before step ceil(crossing - 0.5), below from then on."""
    t = np.arange(steps + 1)[:, None]
    median = THRESHOLD * (crossing / (t + 0.5)) ** 2
    return median * np.array([0.5, 0.8, 1.0, 1.25, 2.0])[:batch]


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts if t.get_text()]


def _assert_png_not_blank(path) -> None:
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300
    assert float(img[..., :3].std()) > 0.05
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50


@pytest.fixture
def convergence_data():
    eo = {k: _distances(200, 9.6) for k in LAYERS}  # median first below at step 10
    so = {k: _distances(2000, 999.6) for k in LAYERS}  # ... and at step 1000
    return eo, so


def test_convergence_png(tmp_path, convergence_data):
    fig = pp.convergence_figure(*convergence_data, threshold=THRESHOLD)
    path = pp.save(fig, tmp_path / "sub" / "convergence.png")
    assert path.is_file()
    _assert_png_not_blank(path)
    assert len([ax for ax in fig.axes if ax.get_xscale() == "log"]) == len(LAYERS)


def test_convergence_speedup_is_measured(convergence_data):
    from pccore_trackers.metrics import steps_to_threshold

    eo, so = convergence_data
    assert steps_to_threshold(eo[0], THRESHOLD) == 10 and steps_to_threshold(so[0], THRESHOLD) == 1000
    texts = _texts(pp.convergence_figure(eo, so, threshold=THRESHOLD))
    assert texts == ["same equilibrium,\nEO ~100× faster"] * len(LAYERS)
    # change the data, the caption follows
    so3 = {k: _distances(2000, 299.6) for k in LAYERS}
    assert _texts(pp.convergence_figure(eo, so3, threshold=THRESHOLD, layers=[9])) == [
        "same equilibrium,\nEO ~30× faster"
    ]


def test_convergence_not_reached(convergence_data):
    eo, _ = convergence_data
    so = {k: _distances(400, 999.6) for k in LAYERS}  # never below the threshold in 400 steps
    (text,) = _texts(pp.convergence_figure(eo, so, threshold=THRESHOLD, layers=[0]))
    assert text.startswith("SO: not reached in 400 steps") and ">40× faster" in text


def test_speedup_text_cases():
    assert pp.speedup_text(10, 1000, 200, 2000, "EO", "SO") == "same equilibrium,\nEO ~100× faster"
    assert pp.speedup_text(40, 10, 200, 2000, "EO", "SO") == "same equilibrium,\nSO ~4.0× faster"
    assert "EO: not reached in 200 steps" in pp.speedup_text(None, 50, 200, 2000, "EO", "SO")
    assert "not reached" in pp.speedup_text(None, None, 200, 2000, "EO", "SO")


def test_convergence_bad_input(convergence_data):
    eo, so = convergence_data
    with pytest.raises(InputError, match=r"layers \[5\] not in eo"):
        pp.convergence_figure(eo, so, layers=[5])
    with pytest.raises(InputError, match="threshold"):
        pp.convergence_figure(eo, so, threshold=-1.0)
    with pytest.raises(InputError, match=r"so\[0\] must have shape"):
        pp.convergence_figure(eo, {0: np.ones((3, 4, 5)), 9: so[9]})
    bad = {k: v.copy() for k, v in so.items()}
    bad[9][50, 2] = np.inf
    with pytest.raises(InputError, match="non-finite"):
        pp.convergence_figure(eo, bad)


def _cosines(near_zero: bool):
    t = np.arange(301, dtype=float)
    eo = {k: 0.96 + 0.04 * np.exp(-t[:101] / 10) for k in LAYERS}
    so = {k: 0.96 * (1 - np.exp(-t / 60)) if near_zero else 0.96 + 0.03 * np.exp(-t / 60) for k in LAYERS}
    for v in so.values():
        v[0] = np.nan  # a zero gradient at the start has no direction
    return eo, so, {k: 0.96 for k in LAYERS}


@pytest.mark.parametrize("near_zero", [True, False])
def test_gradient_alignment_png(tmp_path, near_zero):
    fig = pp.gradient_alignment_figure(*_cosines(near_zero))
    path = pp.save(fig, tmp_path / "alignment.png")
    _assert_png_not_blank(path)
    # broken y-axis (two rows of panels) only when some curve starts near 0
    assert len(fig.axes) == len(LAYERS) * (2 if near_zero else 1)


def test_gradient_alignment_rejects_non_cosines():
    eo, so, opt = _cosines(False)
    eo[0] = eo[0] * 3
    with pytest.raises(InputError, match=r"eo_cos\[0\].*\[-1, 1\]"):
        pp.gradient_alignment_figure(eo, so, opt)
    with pytest.raises(InputError, match="optimum_cos"):
        pp.gradient_alignment_figure(*_cosines(False)[:2], {0: 0.9})


def test_gradient_norms_png(tmp_path):
    t = np.arange(201, dtype=float)
    eo = {k: 2.0 + 0.3 * (1 - np.exp(-t[:51] / 10)) for k in LAYERS}
    so = {k: 2.3 * (1 - np.exp(-t / 50)) for k in LAYERS}
    fig = pp.gradient_norms_figure(eo, so, {k: 2.0 for k in LAYERS}, {k: 2.3 for k in LAYERS})
    _assert_png_not_blank(pp.save(fig, tmp_path / "norms.png"))
    with pytest.raises(InputError, match="norms"):
        pp.gradient_norms_figure({0: -eo[0]}, so, {0: 2.0}, {0: 2.3})


@pytest.mark.parametrize("with_accuracy", [False, True])
def test_energy_png(tmp_path, with_accuracy):
    rng = np.random.default_rng(0)
    theory = 0.5 * np.exp(-np.arange(60) / 20) + 0.1
    numerical = theory * (1 + 0.01 * rng.standard_normal(60))
    acc = (np.arange(10, 61, 10), np.linspace(0.7, 0.8, 6)) if with_accuracy else None
    fig = pp.energy_figure(theory, numerical, accuracy=acc)
    _assert_png_not_blank(pp.save(fig, tmp_path / "energy"))  # suffix added
    assert (tmp_path / "energy.png").is_file()
    assert len(fig.axes) == (2 if with_accuracy else 1)
    with pytest.raises(InputError, match="differ in length"):
        pp.energy_figure(theory, numerical[:-1])


def test_plot_registry():
    assert set(pp.plots()) >= {"convergence", "gradient_alignment", "gradient_norms", "energy"}
    assert pp.get_plot("convergence") is pp.convergence_figure
    assert pp.get_plot("energy") is pp.energy_figure
    with pytest.raises(UnknownNameError) as err:
        pp.get_plot("histogram")
    msg = str(err.value)
    assert "'histogram'" in msg and "convergence" in msg and "gradient_norms" in msg


def test_plots_need_no_pyplot(tmp_path):
    """Figures are drawn without pyplot's global state, so they work headless and in threads."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, pccore_plots as pp; "
        f"pp.save(pp.energy_figure(np.arange(3.0), np.arange(3.0)), {str(tmp_path / 'e.png')!r}); "
        "print('matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert (tmp_path / "e.png").is_file()


def test_missing_matplotlib_names_the_extra(monkeypatch):
    import sys

    from pccore.errors import MissingDependency

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    with pytest.raises(MissingDependency) as err:
        pp.energy_figure(np.ones(3), np.ones(3))
    assert err.value.package == "matplotlib" and "pccore[plots]" in str(err.value)

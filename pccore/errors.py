"""Exceptions raised by pccore. Every message names the argument and what was expected."""

from __future__ import annotations


class PCCoreError(Exception):
    """Base class of every error pccore raises on purpose."""


class InputError(PCCoreError, ValueError):
    """An argument has the wrong shape, dtype, framework or value."""


class UnknownNameError(PCCoreError, KeyError):
    """A name (backend, device, activation, loss, init, optimizer, plugin) is not known."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingDependency(PCCoreError, ImportError):
    """An optional framework is not installed; the message names the extra that provides it."""

    def __init__(self, package: str, extra: str, what: str = ""):
        self.package, self.extra = package, extra
        subject = what or f"this feature"
        super().__init__(
            f"{subject} needs the '{package}' package, which is not installed: "
            f"pip install 'pccore[{extra}]'"
        )


class DeviceNotFound(PCCoreError, ValueError):
    """The requested device does not exist on this machine."""


class InferenceDiverged(PCCoreError, FloatingPointError):
    """Inference produced inf/NaN; names the method, its setting (e.g. ``lr=0.1``) and the
    first non-finite iteration."""

    def __init__(self, method: str, setting: str, iteration: int, what: str = "energy"):
        self.method, self.setting, self.iteration = method, setting, iteration
        hint = "lower lr or use a different optimizer" if setting.startswith("lr=") else "check the inputs"
        super().__init__(
            f"{method} diverged: the {what} became non-finite at iteration {iteration}"
            + (f" with {setting}" if setting else "") + f"; {hint}"
        )


class TrainingDiverged(PCCoreError, FloatingPointError):
    """Training produced inf/NaN; names the step, what diverged and its learning rate."""

    def __init__(self, step: int, method: str, what: str, lr: float, hint: str):
        self.step, self.method, self.lr = step, method, lr
        super().__init__(f"{method} training diverged at step {step}: {what}={lr:g}); {hint}")

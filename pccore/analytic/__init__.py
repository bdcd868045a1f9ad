"""Closed forms and spectra: the exact equilibrium of deep linear networks (``linear``),
the error Hessian's extreme eigenvalues and stable EO rate (``spectrum``), the gradient of
the equilibrium energy and the state Hessian of linear nets (``theory``)."""

from .linear import (
    Equilibrium, affine_maps, error_to_output_maps, linear_equilibrium, linear_equilibrium_energy,
)
from .spectrum import Spectrum, error_hessian_spectrum
from .theory import equilibrium_energy_grads, state_hessian

__all__ = [
    "Equilibrium", "Spectrum", "affine_maps", "error_hessian_spectrum", "error_to_output_maps",
    "equilibrium_energy_grads", "linear_equilibrium", "linear_equilibrium_energy", "state_hessian",
]

"""Closed forms and spectra: the exact equilibrium of deep linear networks (``linear``),
the error Hessian's extreme eigenvalues and stable EO rate (``spectrum``)."""

from .linear import (
    Equilibrium, affine_maps, error_to_output_maps, linear_equilibrium, linear_equilibrium_energy,
)
from .spectrum import Spectrum, error_hessian_spectrum

__all__ = [
    "Equilibrium", "Spectrum", "affine_maps", "error_hessian_spectrum", "error_to_output_maps",
    "linear_equilibrium", "linear_equilibrium_energy",
]

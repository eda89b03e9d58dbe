"""Modular addition (grokking): `fourier` (spectra over Z_p, Gini, neurons' frequency fractions), `key_frequencies`
(which frequencies a model uses, by its neurons or by its embedding) and `progress` (Nanda et al.'s progress
measures over a checkpoint series, and the grokking phases)."""

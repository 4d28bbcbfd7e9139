"""The stable facade. The CLI and the web studio call only these functions.

Each area appends its functions below in its own section; implementations live in the area's package.
"""

from __future__ import annotations

# --- fast style transfer (impasto.fast) -------------------------------------------------------------------

# --- painting by optimisation (impasto.gatys) --------------------------------------------------------------

# --- optimiser study (impasto.study) -----------------------------------------------------------------------

# --- BigGAN (impasto.gan) ----------------------------------------------------------------------------------

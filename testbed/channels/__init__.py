"""Channel models: one definition (:class:`ChannelSpec`), a numpy face, a differentiable torch
face and a streaming emulator for the GNU Radio channel block (docs/architecture.md "Topologies"), with
counter-based channel matrices (:func:`generate_matrix`) every face reproduces and a software
IRS (:mod:`testbed.channels.irs`).

Importing this package registers the models ``awgn``, ``rayleigh``, ``rician`` and ``fixed`` as channel
factories in :mod:`testbed.registry`. The torch face is imported on demand
(``testbed.channels.torch_face``) so numpy-only processes such as the emulator need no torch.
"""
from testbed.channels.irs import IrsChannel
from testbed.channels.realization import Realization, draw, draw_block, generate_matrix
from testbed.channels.spec import MODELS, ChannelSpec
from testbed.channels.stream import ChannelMatrixEmulator, LinkImpairment

__all__ = [
    "MODELS",
    "ChannelMatrixEmulator",
    "ChannelSpec",
    "IrsChannel",
    "LinkImpairment",
    "Realization",
    "draw",
    "draw_block",
    "generate_matrix",
]

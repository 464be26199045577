"""Transceiver systems, one module or sub-package per family; importing registers them."""
from testbed.systems import digital, link  # noqa: F401  (registration)
from testbed.systems.deepjscc import system  # noqa: F401  (registration)
from testbed.systems.superposition import system as _superposition  # noqa: F401,E402  (registration)
from testbed.systems.mu_ascc import system as _mu_ascc  # noqa: F401,E402  (registration)
from testbed.systems.adaptive_rate import system as _adaptive_rate  # noqa: F401,E402  (registration)
from testbed.systems.anchor import system as _anchor  # noqa: F401,E402  (registration)
from testbed.systems.irs_jsce import models as _irs_jsce_models  # noqa: F401,E402  (registration)
